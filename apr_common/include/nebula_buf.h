/**
 * @file nebula_buf.h
 * @brief A growable byte buffer in a pool: text accumulated piece by piece
 *        (stream deltas, tool-call arguments, frames being reassembled).
 *
 * The buffer doubles as it grows; an outgrown block stays in the pool until
 * the pool goes (at most as much again as the buffer holds). The content is
 * always followed by a NUL byte, so text can be read as a C string; binary
 * content may hold NULs of its own (use len).
 */
#ifndef NEBULA_BUF_H
#define NEBULA_BUF_H

#include <apr_pools.h>

typedef struct {
    char *s;          /**< NULL until something was added */
    apr_size_t len;
    apr_size_t cap;
} nebula_buf_t;

/** Append @a n bytes of @a data (allocating from @a p when it must grow). */
void nebula_buf_add(apr_pool_t *p, nebula_buf_t *b, const char *data, apr_size_t n);

/** The content as a C string ("" while empty). */
const char *nebula_buf_str(const nebula_buf_t *b);

#endif /* NEBULA_BUF_H */
