/**
 * @file nebula_json.h
 * @brief jansson helpers for libnebula_common: pool-owned documents, path
 *        getters and OpenAI-style error bodies.
 *
 * Ownership model: a json_t handed to nebula_json_own() (and every document
 * returned by nebula_json_parse()) is released by a cleanup on the given pool,
 * so callers never json_decref() it themselves. Getters return borrowed
 * pointers that live as long as the document they were read from.
 *
 * Thread safety: all functions are reentrant; a json_t must not be modified
 * by one thread while another reads it (jansson's own rule).
 */
#ifndef NEBULA_JSON_H
#define NEBULA_JSON_H

#include <apr_pools.h>
#include <jansson.h>

#if defined(__GNUC__)
#define NEBULA_JSON_SENTINEL __attribute__((sentinel))
#else
#define NEBULA_JSON_SENTINEL
#endif

/** nebula_json_parse() flag: reject a top level that is not an object or
 *  an array (default: any JSON value, as RFC 8259 allows). */
#define NEBULA_JSON_CONTAINER_ONLY 0x1
/** nebula_json_parse() flag: reject objects with duplicate keys (default:
 *  the last occurrence wins). */
#define NEBULA_JSON_REJECT_DUPLICATES 0x2

/**
 * Hand a jansson reference to @a p: json_decref() runs when @a p is cleared
 * or destroyed.
 * @param p the pool that becomes the owner
 * @param j the value; the caller's reference is taken over (may be NULL)
 * @return @a j, still valid until @a p is cleared
 */
json_t *nebula_json_own(apr_pool_t *p, json_t *j);

/**
 * Parse a JSON text of @a len bytes (need not be NUL-terminated).
 *
 * Strings containing "\u0000" are rejected, and so is a raw NUL byte
 * anywhere (jansson alone would skip some); trailing non-whitespace after
 * the value is an error.
 * @param p pool that owns the returned document and @a errmsg
 * @param buf the text (may be NULL when @a len is 0)
 * @param len its length in bytes
 * @param flags 0 or NEBULA_JSON_CONTAINER_ONLY | NEBULA_JSON_REJECT_DUPLICATES
 * @param errmsg if not NULL, set on failure to a pool-allocated message of
 *        the form "<reason> at line L, column C (byte B)". The reason may
 *        quote a few bytes of the input: do not log it for secret-bearing
 *        bodies. Set to NULL on success.
 * @return the document, owned by @a p; NULL on a syntax error
 */
json_t *nebula_json_parse(apr_pool_t *p, const char *buf, apr_size_t len, int flags,
                          const char **errmsg);

/** Deepest nesting jansson itself parses (its JSON_PARSER_MAX_DEPTH): the
 *  largest useful limit for nebula_json_parse_limited(). */
#define NEBULA_JSON_DEPTH_CEILING 2048

/**
 * nebula_json_parse() with a nesting limit: a text whose arrays and objects
 * nest deeper than @a max_depth levels (the top-level container is level 1)
 * is refused before anything deeper is built. Brackets inside strings do not
 * count. A text both too deep and malformed may be refused for either.
 * @param max_depth the limit; 0 (or above NEBULA_JSON_DEPTH_CEILING): jansson's
 * @param too_deep if not NULL, set to 1 when the text was refused for its
 *        nesting (then *errmsg names the limit, no position), else to 0
 * @return the document, owned by @a p; NULL on a syntax error or too deep
 */
json_t *nebula_json_parse_limited(apr_pool_t *p, const char *buf, apr_size_t len, int flags,
                                  int max_depth, int *too_deep, const char **errmsg);

/**
 * Whether a JSON text nests arrays and objects deeper than @a max_depth: a
 * scan that skips strings (and their escapes) without parsing anything. It
 * is exact for valid JSON; for malformed text it counts the brackets outside
 * what look like strings. Used by nebula_json_parse_limited() before it hands
 * a text to jansson.
 * @return 1 when deeper than @a max_depth (> 0), else 0
 */
int nebula_json_too_deep(const char *buf, apr_size_t len, int max_depth);

/**
 * The fast reader nebula_json_parse() tries first (nebula_json_fast.c): the
 * document json_loadb() would build (a new reference, not pool-owned), or
 * NULL for anything it does not take, which includes every input jansson
 * refuses (and a few it accepts: too deep, overlong numbers).
 * @param any accept a scalar at the top level (JSON_DECODE_ANY)
 * @param reject_dups refuse duplicate keys (JSON_REJECT_DUPLICATES)
 */
json_t *nebula_json_fast_loadb(const char *buf, size_t len, int any, int reject_dups);

/**
 * nebula_json_fast_loadb() with a nesting limit (see
 * nebula_json_parse_limited()): NULL with *too_deep set to 1 as soon as an
 * array or object opens at level @a max_depth + 1 (0: no limit of its own).
 */
json_t *nebula_json_fast_loadb_depth(const char *buf, size_t len, int any, int reject_dups,
                                     int max_depth, int *too_deep);

/**
 * Follow a path from @a j. Each path element is an object key; when the
 * current node is an array, an element "#N" (decimal digits) selects index N.
 * The argument list must end with NULL.
 * @return the node (borrowed: owned by @a j's document), or NULL when @a j is
 *         NULL or any step is missing or of the wrong type
 */
json_t *nebula_json_getj(json_t *j, ...) NEBULA_JSON_SENTINEL;

/**
 * String at a NULL-terminated path (see nebula_json_getj()).
 * @return the UTF-8 string (borrowed: lives as long as @a j's document), or
 *         NULL when missing or not a JSON string
 */
const char *nebula_json_gets(const json_t *j, ...) NEBULA_JSON_SENTINEL;

/**
 * Integer at a NULL-terminated path (see nebula_json_getj()).
 * @return the value if the node is a JSON integer, else @a dflt (reals such
 *         as 5.0 are not integers here)
 */
apr_int64_t nebula_json_geti(const json_t *j, apr_int64_t dflt, ...) NEBULA_JSON_SENTINEL;

/**
 * Boolean at a NULL-terminated path (see nebula_json_getj()).
 * @return 1 for true, 0 for false, @a dflt when missing or not a boolean
 */
int nebula_json_getb(const json_t *j, int dflt, ...) NEBULA_JSON_SENTINEL;

/**
 * Serialize @a j. Compact ("," and ":" without spaces) unless @a flags asks
 * for indentation via JSON_INDENT(n); scalars are allowed at top level.
 * @param p pool that owns the result
 * @param j the value to serialize
 * @param flags jansson JSON_* encoding flags, usually 0
 * @return a NUL-terminated copy in @a p, or NULL if @a j is NULL or jansson
 *         fails
 */
char *nebula_json_dumps(apr_pool_t *p, const json_t *j, size_t flags);

/**
 * Build OpenAI's error document:
 * {"error":{"message":...,"type":...,"param":...,"code":...}}.
 *
 * Every argument is escaped by jansson; bytes that are not valid UTF-8 are
 * replaced by U+FFFD so the body is always valid JSON.
 * @param p pool that owns the result
 * @param message human-readable text (NULL becomes "")
 * @param type error type, e.g. "invalid_request_error" (NULL becomes null)
 * @param param offending parameter name, or NULL for JSON null
 * @param code machine-readable code, or NULL for JSON null
 * @return the compact body, NUL-terminated, owned by @a p
 */
char *nebula_json_error_body(apr_pool_t *p, const char *message, const char *type,
                             const char *param, const char *code);

#endif /* NEBULA_JSON_H */
