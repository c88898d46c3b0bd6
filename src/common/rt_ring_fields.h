/*
 * rt_ring_fields.h: the field codec of ring record payloads (RT_REC_MESSAGE and
 * RT_REC_CHANGE, layouts in rt_ring.h): written by the extension's encoders,
 * read by the sidecar's decoders.
 */

#ifndef RT_RING_FIELDS_H
#define RT_RING_FIELDS_H

#include "rt_ring.h"

/* ------------------------------------------------------------------------
 * Record payload fields: u32 little-endian length + bytes, and little-endian
 * fixed-width integers. Every put and get is bounds-checked; a failure is
 * sticky (failed = 1), so an encoder or decoder checks once at the end.
 * ------------------------------------------------------------------------ */

typedef struct RtFieldWriter
{
	uint8_t *buf;
	uint32_t cap;
	uint32_t len;
	uint32_t failed;
} RtFieldWriter;

typedef struct RtFieldReader
{
	const uint8_t *buf;
	uint32_t len;
	uint32_t pos;
	uint32_t failed;
} RtFieldReader;

/* Start writing fields into buf (cap bytes) */
RT_INLINE void
RtFieldWriterInit(RtFieldWriter *w, void *buf, uint32_t cap)
{
	w->buf = (uint8_t *)buf;
	w->cap = buf == NULL ? 0 : cap;
	w->len = 0;
	w->failed = 0;
}

/* Start reading fields from buf (len bytes) */
RT_INLINE void
RtFieldReaderInit(RtFieldReader *r, const void *buf, uint32_t len)
{
	r->buf = (const uint8_t *)buf;
	r->len = buf == NULL ? 0 : len;
	r->pos = 0;
	r->failed = 0;
}

/* Bytes needed to encode a field of n bytes */
RT_INLINE uint64_t
RtFieldSize(uint64_t n)
{
	return 4 + n;
}

/* Append an unsigned integer of `width` bytes, little-endian */
RT_INLINE int
RtFieldPutUint(RtFieldWriter *w, uint64_t v, uint32_t width)
{
	uint32_t i;

	if (w->failed || w->cap - w->len < width)
	{
		w->failed = 1;
		return 0;
	}
	for (i = 0; i < width; i++)
		w->buf[w->len + i] = (uint8_t)(v >> (8 * i));
	w->len += width;
	return 1;
}

RT_INLINE int
RtFieldPutU32(RtFieldWriter *w, uint32_t v)
{
	return RtFieldPutUint(w, v, 4);
}

RT_INLINE int
RtFieldPutU64(RtFieldWriter *w, uint64_t v)
{
	return RtFieldPutUint(w, v, 8);
}

/* Append a length-prefixed field (n bytes at p) */
RT_INLINE int
RtFieldPutBytes(RtFieldWriter *w, const void *p, uint32_t n)
{
	if (w->failed || (n > 0 && p == NULL) || w->cap - w->len < 4 || w->cap - w->len - 4 < n)
	{
		w->failed = 1;
		return 0;
	}
	RtFieldPutU32(w, n);
	if (n > 0)
		__builtin_memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 1;
}

/* Read an unsigned integer of `width` bytes, little-endian; 0 on failure */
RT_INLINE uint64_t
RtFieldGetUint(RtFieldReader *r, uint32_t width)
{
	uint64_t v = 0;
	uint32_t i;

	if (r->failed || r->pos > r->len || r->len - r->pos < width)
	{
		r->failed = 1;
		return 0;
	}
	for (i = 0; i < width; i++)
		v |= (uint64_t)r->buf[r->pos + i] << (8 * i);
	r->pos += width;
	return v;
}

RT_INLINE int
RtFieldGetU32(RtFieldReader *r, uint32_t *out)
{
	uint32_t v = (uint32_t)RtFieldGetUint(r, 4);

	if (r->failed)
		return 0;
	*out = v;
	return 1;
}

RT_INLINE int
RtFieldGetU64(RtFieldReader *r, uint64_t *out)
{
	uint64_t v = RtFieldGetUint(r, 8);

	if (r->failed)
		return 0;
	*out = v;
	return 1;
}

/*
 * Read a length-prefixed field: *p points into the reader's buffer (no copy),
 * *n is its length. On failure *p is NULL, *n 0 and nothing more can be read.
 */
RT_INLINE int
RtFieldGetBytes(RtFieldReader *r, const uint8_t **p, uint32_t *n)
{
	uint32_t len = 0;

	*p = NULL;
	*n = 0;
	if (!RtFieldGetU32(r, &len))
		return 0;
	if (r->len - r->pos < len)
	{
		r->failed = 1;
		return 0;
	}
	*p = r->buf + r->pos;
	*n = len;
	r->pos += len;
	return 1;
}

/* Whether every byte was consumed and nothing failed */
RT_INLINE int
RtFieldReaderDone(const RtFieldReader *r)
{
	return !r->failed && r->pos == r->len;
}

#endif /* RT_RING_FIELDS_H */
