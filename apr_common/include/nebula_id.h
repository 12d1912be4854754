/**
 * @file nebula_id.h
 * @brief Time-ordered identifiers: UUIDv7 (RFC 9562).
 *
 * Layout (RFC 9562 section 5.7, "Method 1" of section 6.2 with a 42-bit
 * counter):
 * - bits 0-47: Unix time in milliseconds, big-endian;
 * - bits 48-51: version 7; bits 52-63: high 12 bits of the counter;
 * - bits 64-65: variant 0b10; bits 66-95: low 30 bits of the counter;
 * - bits 96-127: fresh CSPRNG bits for every id.
 *
 * The counter is seeded from the CSPRNG with its top bit clear at each new
 * millisecond and incremented for each further id in the same millisecond,
 * so ids are strictly increasing (as bytes and as lowercase text) within a
 * process, across all its threads. The state is one process-wide struct
 * behind a statically initialized pthread mutex (no init call, no race). If
 * the clock steps back, or the counter would overflow, the previous
 * millisecond is kept (or advanced by one) instead, so order never breaks.
 * After fork() the child notices the new pid and reseeds, so parent and
 * child never continue the same sequence.
 */
#ifndef NEBULA_ID_H
#define NEBULA_ID_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_errno.h>

/** Length of the text form without its NUL. */
#define NEBULA_ID_UUID_LEN 36

/**
 * A new UUIDv7 as 16 bytes.
 * @param out caller's buffer
 * @return APR_SUCCESS, or APR_EGENERAL if the CSPRNG failed (then @a out is
 *         untouched)
 */
apr_status_t nebula_id_uuid7_bytes(unsigned char out[16]);

/**
 * A new UUIDv7 in lowercase 8-4-4-4-12 form, without allocating.
 * @param out caller's buffer of NEBULA_ID_UUID_LEN + 1 bytes, NUL-terminated
 *        on success
 * @return APR_SUCCESS or APR_EGENERAL (CSPRNG failure)
 */
apr_status_t nebula_id_uuid7_into(char out[NEBULA_ID_UUID_LEN + 1]);

/**
 * A new UUIDv7 in lowercase 8-4-4-4-12 form.
 * @return the string, owned by @a p; NULL only if the CSPRNG failed
 */
char *nebula_id_uuid7(apr_pool_t *p);

/**
 * Format 16 bytes as lowercase 8-4-4-4-12 text.
 * @param out caller's buffer of NEBULA_ID_UUID_LEN + 1 bytes
 */
void nebula_id_uuid_format(const unsigned char in[16], char out[NEBULA_ID_UUID_LEN + 1]);

/**
 * The creation time embedded in a UUIDv7 text (either case accepted).
 * @return microseconds since the epoch (millisecond resolution), or -1 if
 *         @a uuid is not a well-formed 8-4-4-4-12 UUID of version 7 and
 *         variant 0b10
 */
apr_time_t nebula_id_uuid7_time(const char *uuid);

#endif /* NEBULA_ID_H */
