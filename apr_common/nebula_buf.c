/* nebula_buf.c: a growable byte buffer in a pool (nebula_buf.h). */
#include <string.h>
#include "nebula_buf.h"

void nebula_buf_add(apr_pool_t *p, nebula_buf_t *b, const char *data, apr_size_t n)
{
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap * 2 : 64;
        char *ns;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        ns = apr_palloc(p, cap);
        if (b->len) {
            memcpy(ns, b->s, b->len);
        }
        b->s = ns;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->s + b->len, data, n);
    }
    b->len += n;
    b->s[b->len] = '\0';
}

const char *nebula_buf_str(const nebula_buf_t *b)
{
    return b->s ? b->s : "";
}
