/* SPDX-License-Identifier: MIT */
/* One bounded cursor over wire data, for every codec in the daemon (DNS
 * messages, SWIM packets, replicated records), after Knot's wire_ctx.
 *
 * A Wire reads or writes big-endian integers and byte strings at its
 * position and checks every access against its size. The first access that
 * does not fit sets a sticky error and does nothing; every later call then
 * does nothing either (reads return 0 or NULL), so a codec can write or read
 * a whole structure and check wire_ok() once at the end, and can never read
 * or write past the buffer whatever the input.
 *
 * Errors: -EBADMSG when a read runs past the end (the input is truncated or
 * malformed), -ENOBUFS when a write does not fit, -ERANGE for a seek outside
 * the buffer, -EROFS for a write to a cursor made by wire_init_const(). A
 * codec may set its own with wire_fail() (e.g. -EBADMSG for a bad value). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct Wire {
        uint8_t *buf;
        size_t size;
        size_t pos;
        int error; /* 0, or the first error (negative errno) */
        bool readonly;
} Wire;

static inline Wire wire_init(uint8_t *buf, size_t size) {
        return (Wire) { .buf = buf, .size = buf ? size : 0 };
}

static inline Wire wire_init_const(const uint8_t *buf, size_t size) {
        /* Cast away const: the readonly flag keeps every write out. */
        return (Wire) { .buf = (uint8_t *) buf, .size = buf ? size : 0, .readonly = true };
}

/* Sets the error unless one is set already (the first one sticks). */
static inline void wire_fail(Wire *w, int error) {
        if (w->error == 0)
                w->error = error;
}

static inline bool wire_ok(const Wire *w) {
        return w->error == 0;
}

static inline size_t wire_offset(const Wire *w) {
        return w->pos;
}

static inline size_t wire_available(const Wire *w) {
        return w->size - w->pos;
}

static inline bool wire_at_end(const Wire *w) {
        return w->pos == w->size;
}

/* Moves to an absolute offset (size itself allowed). Works after an error
 * too, so that a writer can go back and patch a length. */
static inline void wire_seek(Wire *w, size_t offset) {
        if (offset > w->size)
                wire_fail(w, -ERANGE);
        else
                w->pos = offset;
}

/* --- reading ---------------------------------------------------------------- */

/* The next n bytes, in place, and moves past them; NULL (and -EBADMSG) if
 * fewer than n are left. */
static inline const uint8_t *wire_read_ptr(Wire *w, size_t n) {
        const uint8_t *p;

        if (w->error != 0)
                return NULL;
        if (n > w->size - w->pos) {
                w->error = -EBADMSG;
                return NULL;
        }
        p = w->buf + w->pos;
        w->pos += n;
        return p;
}

static inline void wire_skip(Wire *w, size_t n) {
        (void) wire_read_ptr(w, n);
}

/* Copies n bytes out; on error dst is zeroed. */
static inline void wire_read(Wire *w, void *dst, size_t n) {
        const uint8_t *p = wire_read_ptr(w, n);

        if (p)
                memcpy(dst, p, n);
        else if (n > 0)
                memset(dst, 0, n);
}

static inline uint8_t wire_peek_u8(const Wire *w) {
        return w->error == 0 && w->pos < w->size ? w->buf[w->pos] : 0;
}

static inline uint16_t wire_get_u16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

static inline uint32_t wire_get_u32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline uint8_t wire_read_u8(Wire *w) {
        const uint8_t *p = wire_read_ptr(w, 1);
        return p ? p[0] : 0;
}

static inline uint16_t wire_read_u16(Wire *w) {
        const uint8_t *p = wire_read_ptr(w, 2);
        return p ? wire_get_u16(p) : 0;
}

static inline uint32_t wire_read_u32(Wire *w) {
        const uint8_t *p = wire_read_ptr(w, 4);
        return p ? wire_get_u32(p) : 0;
}

static inline uint64_t wire_read_u64(Wire *w) {
        const uint8_t *p = wire_read_ptr(w, 8);
        return p ? (uint64_t) wire_get_u32(p) << 32 | wire_get_u32(p + 4) : 0;
}

/* --- writing ---------------------------------------------------------------- */

/* Room for the next n bytes, to be filled by the caller, and moves past
 * them; NULL (and an error) if they do not fit. */
static inline uint8_t *wire_reserve(Wire *w, size_t n) {
        uint8_t *p;

        if (w->error != 0)
                return NULL;
        if (w->readonly) {
                w->error = -EROFS;
                return NULL;
        }
        if (n > w->size - w->pos) {
                w->error = -ENOBUFS;
                return NULL;
        }
        p = w->buf + w->pos;
        w->pos += n;
        return p;
}

static inline void wire_write(Wire *w, const void *src, size_t n) {
        uint8_t *p = wire_reserve(w, n);

        if (p && n > 0)
                memcpy(p, src, n);
}

static inline void wire_put_u16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static inline void wire_put_u32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static inline void wire_write_u8(Wire *w, uint8_t v) {
        uint8_t *p = wire_reserve(w, 1);
        if (p)
                p[0] = v;
}

static inline void wire_write_u16(Wire *w, uint16_t v) {
        uint8_t *p = wire_reserve(w, 2);
        if (p)
                wire_put_u16(p, v);
}

static inline void wire_write_u32(Wire *w, uint32_t v) {
        uint8_t *p = wire_reserve(w, 4);
        if (p)
                wire_put_u32(p, v);
}

static inline void wire_write_u64(Wire *w, uint64_t v) {
        uint8_t *p = wire_reserve(w, 8);
        if (p) {
                wire_put_u32(p, (uint32_t) (v >> 32));
                wire_put_u32(p + 4, (uint32_t) v);
        }
}
