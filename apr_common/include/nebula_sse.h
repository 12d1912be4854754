/**
 * @file nebula_sse.h
 * @brief Incremental text/event-stream (Server-Sent Events) parser and writer.
 *
 * The parser follows the WHATWG HTML "Interpreting an event stream" rules:
 * - one UTF-8 BOM at the very start of the stream is skipped;
 * - lines end with CRLF, LF or CR; a CR ending one fed chunk and an LF
 *   starting the next are one line end;
 * - "field:value" loses one optional space after the colon; a line with no
 *   colon is a field with an empty value; field names are case-sensitive;
 * - "event" sets the event type, "data" appends value + LF to the data
 *   buffer, "id" sets the last event ID unless the value contains NUL,
 *   "retry" sets the reconnection time if the value is only ASCII digits;
 *   other fields are ignored;
 * - a line starting with ':' is a comment (reported to the comment callback);
 * - a blank line dispatches: with an empty data buffer nothing is dispatched
 *   (the event type still resets); otherwise the final LF is removed and the
 *   event is delivered;
 * - at end of stream an event not closed by a blank line is discarded:
 *   nebula_sse_finish() says whether that happened.
 *
 * Differences from a browser, on purpose: bytes are passed through as they
 * are (invalid UTF-8 is not replaced by U+FFFD), and the parser enforces a
 * memory bound (max_event_bytes).
 *
 * Memory: the parser keeps four buffers (partial line, data, event type,
 * last id) in malloc'd storage that it reuses from event to event and frees
 * in a cleanup of the pool it was created in. Each is capped at
 * max_event_bytes + 1, so however long the stream, the parser holds at most
 * about 4 * max_event_bytes and makes no pool allocation per event. A
 * parser is used by one thread at a time.
 */
#ifndef NEBULA_SSE_H
#define NEBULA_SSE_H

#include <apr_pools.h>
#include <apr_errno.h>

/** Bound used when nebula_sse_parser_create() gets max_event_bytes == 0. */
#define NEBULA_SSE_DEFAULT_MAX_EVENT (8 * 1024 * 1024)

/** One dispatched event. All pointers are borrowed from the parser and valid
 *  only during the callback. */
typedef struct nebula_sse_event_t {
    /** Event type, or NULL when none was given: per spec the type is then
     *  "message". Never the empty string. */
    const char *event;
    /** The data lines joined by "\n", NUL-terminated (may hold NUL bytes:
     *  use data_len). Empty string for a lone "data:" line. */
    const char *data;
    apr_size_t data_len;
    /** The stream's last event ID as of this event ("" if never set); per
     *  spec it persists across events until an "id" field changes it. */
    const char *id;
    /** The stream's reconnection time in ms from the last valid "retry"
     *  field, or -1 if none was seen. */
    long retry;
} nebula_sse_event_t;

/** Event callback. Return APR_SUCCESS to go on; anything else aborts
 *  nebula_sse_feed(), which returns that status. */
typedef apr_status_t nebula_sse_event_fn(void *baton, const nebula_sse_event_t *ev);

/** Comment callback: @a text is what follows the ':' (not NUL-terminated,
 *  leading space kept, so ":" + text reproduces the line). Same return
 *  convention as nebula_sse_event_fn. */
typedef apr_status_t nebula_sse_comment_fn(void *baton, const char *text, apr_size_t len);

typedef struct nebula_sse_parser_t nebula_sse_parser_t;

/**
 * Create a parser.
 * @param p pool owning the parser; its buffers are freed when @a p goes
 * @param max_event_bytes bound on what one event may hold in memory: the
 *        pending line plus the accumulated data and event type; any complete
 *        line (comments too) longer than that also fails. 0 selects
 *        NEBULA_SSE_DEFAULT_MAX_EVENT.
 * @param on_event called per dispatched event (may be NULL)
 * @param on_comment called per comment line (may be NULL)
 * @param baton passed to both callbacks
 * @return the parser, allocated in @a p
 */
nebula_sse_parser_t *nebula_sse_parser_create(apr_pool_t *p, apr_size_t max_event_bytes,
                                              nebula_sse_event_fn *on_event,
                                              nebula_sse_comment_fn *on_comment,
                                              void *baton);

/**
 * Feed the next @a len bytes of the stream; callbacks run from inside. Do
 * not feed the same parser from a callback.
 * @return APR_SUCCESS; APR_ENOSPC when an event outgrows max_event_bytes;
 *         or the non-success status a callback returned. Errors are sticky:
 *         later feeds return the same status without parsing.
 */
apr_status_t nebula_sse_feed(nebula_sse_parser_t *ps, const char *buf, apr_size_t len);

/**
 * Signal end of stream. An event not closed by a blank line (a partial line,
 * or field lines with no blank line after them) is discarded, as the spec
 * says. The parser is then ready for a new stream (a BOM is skipped again);
 * the last event ID and retry value are kept, like an EventSource keeps them
 * across reconnects, and a sticky error is cleared.
 * @return 1 if an incomplete event was discarded (a truncated stream), else 0
 */
int nebula_sse_finish(nebula_sse_parser_t *ps);

/** The last valid "retry" value in ms, or -1 if none was seen. */
long nebula_sse_retry(const nebula_sse_parser_t *ps);

/**
 * Write one event block: "event: <event>\n" (if @a event is not NULL), one
 * "data: <line>\n" per line of @a data (split at CRLF, LF or CR; an empty
 * line is written "data:"), then a blank line. Parsing the output yields
 * @a event and @a data back, except that CR and CRLF in @a data come back
 * as LF (an event stream cannot carry a CR).
 * @param p pool that owns the result
 * @param event event type, or NULL for the default "message"; must not
 *        contain CR, LF or NUL
 * @param data the payload (NULL allowed when @a len is 0)
 * @param len its length in bytes
 * @param out_len if not NULL, receives the length of the result
 * @return the NUL-terminated block in @a p, or NULL if @a event is invalid
 */
char *nebula_sse_format(apr_pool_t *p, const char *event, const char *data,
                        apr_size_t len, apr_size_t *out_len);

#endif /* NEBULA_SSE_H */
