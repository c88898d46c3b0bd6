/*
 * rt_limits.h: defaults both sides must agree on, so that a message the
 * database accepts is one the sidecar will deliver.
 *
 * Included by the extension (C++17, Postgres zone) and the sidecar (C++20).
 * Plain macros and fixed-width types only: it must also compile as C11.
 */
#ifndef RT_LIMITS_H
#define RT_LIMITS_H

/* upstream's default tenant limit, max_payload_size_in_kb (PROTOCOL.md 9.1) */
#define RT_DEFAULT_MAX_PAYLOAD_KB 3000

/* upstream measures the whole push with 500 bytes of slack (PROTOCOL.md 4.2) */
#define RT_PAYLOAD_SLACK_BYTES 500

/* the largest WebSocket message accepted (PROTOCOL.md 1.2) */
#define RT_MAX_FRAME_BYTES 5000000

#endif /* RT_LIMITS_H */
