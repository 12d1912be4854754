/* nebula_id.c: UUIDv7 generation and parsing. Owns the one process-wide
 * generator state (last millisecond, 42-bit counter, owning pid), guarded by
 * a statically initialized mutex so there is nothing to set up and no init
 * race. Layout and ordering guarantees: see nebula_id.h. */
#include <pthread.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <apr_strings.h>

#include "nebula_crypto.h"
#include "nebula_id.h"

#define ID_COUNTER_BITS 42
#define ID_COUNTER_MAX  ((APR_UINT64_C(1) << ID_COUNTER_BITS) - 1)
/* seeds leave the counter's top bit clear: 2^41 ids of headroom per ms */
#define ID_SEED_MASK ((APR_UINT64_C(1) << (ID_COUNTER_BITS - 1)) - 1)

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    apr_uint64_t ms;
    apr_uint64_t counter;
    pid_t pid;
} id_state;

/* Random bytes for ids from a per-thread reserve refilled from the CSPRNG
 * 4 KiB at a time: one RAND_bytes() call per request was 3 % of the relay's
 * CPU. The bytes are the CSPRNG's all the same; a forked child refills (it
 * must not hand out its parent's bytes). */
#define ID_RESERVE 4096

static __thread struct {
    unsigned char b[ID_RESERVE];
    apr_size_t left;
    pid_t pid;
} id_rnd;

static apr_status_t id_random(unsigned char *out, apr_size_t n)
{
    pid_t pid = getpid();

    if (id_rnd.pid != pid || id_rnd.left < n) {
        if (nebula_crypto_random(id_rnd.b, sizeof(id_rnd.b)) != APR_SUCCESS) {
            id_rnd.left = 0;
            return APR_EGENERAL;
        }
        id_rnd.left = sizeof(id_rnd.b);
        id_rnd.pid = pid;
    }
    id_rnd.left -= n;
    memcpy(out, id_rnd.b + id_rnd.left, n);
    memset(id_rnd.b + id_rnd.left, 0, n); /* handed out once */
    return APR_SUCCESS;
}

/* Next (ms, counter) pair, strictly greater than the previous one. */
static void id_next(apr_uint64_t now, apr_uint64_t seed, apr_uint64_t *ms,
                    apr_uint64_t *counter)
{
    pid_t pid = getpid();

    pthread_mutex_lock(&id_lock);
    if (id_state.pid != pid || now > id_state.ms) {
        *ms = now;
        *counter = seed;
    }
    else if (id_state.counter < ID_COUNTER_MAX) {
        /* same millisecond, or the clock stepped back: keep counting */
        *ms = id_state.ms;
        *counter = id_state.counter + 1;
    }
    else {
        *ms = id_state.ms + 1;
        *counter = seed;
    }
    id_state.ms = *ms;
    id_state.counter = *counter;
    id_state.pid = pid;
    pthread_mutex_unlock(&id_lock);
}

apr_status_t nebula_id_uuid7_bytes(unsigned char out[16])
{
    unsigned char rnd[10]; /* 4 tail bytes, 6 bytes of counter seed */
    apr_uint64_t now, ms, ctr, seed = 0, hi, lo;
    int i;

    if (id_random(rnd, sizeof(rnd)) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 4; i < 10; ++i) {
        seed = (seed << 8) | rnd[i];
    }
    now = (apr_uint64_t)apr_time_as_msec(apr_time_now());
    id_next(now, seed & ID_SEED_MASK, &ms, &ctr);

    for (i = 0; i < 6; ++i) {
        out[i] = (unsigned char)(ms >> (40 - 8 * i));
    }
    hi = ctr >> 30;         /* 12 bits: rand_a */
    lo = ctr & 0x3FFFFFFFu; /* 30 bits: top of rand_b */
    out[6] = (unsigned char)(0x70 | (hi >> 8));
    out[7] = (unsigned char)hi;
    out[8] = (unsigned char)(0x80 | (lo >> 24));
    out[9] = (unsigned char)(lo >> 16);
    out[10] = (unsigned char)(lo >> 8);
    out[11] = (unsigned char)lo;
    memcpy(out + 12, rnd, 4);
    return APR_SUCCESS;
}

void nebula_id_uuid_format(const unsigned char in[16], char out[NEBULA_ID_UUID_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    int i, o = 0;

    for (i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = digits[in[i] >> 4];
        out[o++] = digits[in[i] & 0x0F];
    }
    out[o] = '\0';
}

apr_status_t nebula_id_uuid7_into(char out[NEBULA_ID_UUID_LEN + 1])
{
    unsigned char raw[16];
    apr_status_t rv = nebula_id_uuid7_bytes(raw);

    if (rv == APR_SUCCESS) {
        nebula_id_uuid_format(raw, out);
    }
    return rv;
}

char *nebula_id_uuid7(apr_pool_t *p)
{
    char *out = apr_palloc(p, NEBULA_ID_UUID_LEN + 1);

    return nebula_id_uuid7_into(out) == APR_SUCCESS ? out : NULL;
}

static int id_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

apr_time_t nebula_id_uuid7_time(const char *uuid)
{
    apr_uint64_t ms = 0;
    int i, v, ndigits = 0;

    if (uuid == NULL || strlen(uuid) != NEBULA_ID_UUID_LEN) {
        return -1;
    }
    for (i = 0; i < NEBULA_ID_UUID_LEN; ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (uuid[i] != '-') {
                return -1;
            }
            continue;
        }
        if ((v = id_hexval(uuid[i])) < 0) {
            return -1;
        }
        if (ndigits++ < 12) {
            ms = (ms << 4) | (apr_uint64_t)v;
        }
    }
    /* version nibble is text position 14, variant nibble position 19 */
    if (uuid[14] != '7' || (id_hexval(uuid[19]) & 0xC) != 0x8) {
        return -1;
    }
    return (apr_time_t)ms * 1000;
}
