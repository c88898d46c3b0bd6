/*
 * listener.hpp: the shards' shared listening port.
 *
 * Debian's libwebsockets 4.1 sets SO_REUSEPORT only when one context has
 * several service threads, which LWS_MAX_SMP 1 forbids; so
 * LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE alone cannot put one context per core
 * on one port. Each shard instead opens its own SO_REUSEPORT socket here,
 * watches it as a raw descriptor in its own context, accepts and hands each
 * connection to lws (lws_adopt_socket_vhost). The kernel spreads connections
 * over the shards' sockets.
 *
 * Shard threads (each calls these for its own socket).
 */
#pragma once

#include <string>

namespace rt::fanout
{

/* A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT, or -1 (errno set). */
int OpenListenSocket(const std::string &host, int port);

/* Accept one pending connection (non-blocking, TCP_NODELAY), or -1 when none is left. */
int AcceptOne(int listen_fd);

} // namespace rt::fanout
