/**
 * @file nebula_log.h
 * @brief Logging for libnebula_common, which never includes httpd.h.
 *
 * The library logs through one callback that its host installs: each
 * mod_nebula_* module forwards to ap_log_error() with its own module index,
 * nebulactl prints to stderr. Until a callback is installed, messages go
 * nowhere. Messages at NEBULA_LOG_NOTICE or above must start with a unique
 * "NEB#####: " tag (range NEB00001-NEB00999 belongs to the library).
 */
#ifndef NEBULA_LOG_H
#define NEBULA_LOG_H

#include <stdarg.h>
#include <apr_errno.h>
#include <apr_pools.h>

/** Levels, numerically equal to httpd's APLOG_* levels. */
typedef enum {
    NEBULA_LOG_EMERG = 0,
    NEBULA_LOG_ALERT,
    NEBULA_LOG_CRIT,
    NEBULA_LOG_ERR,
    NEBULA_LOG_WARNING,
    NEBULA_LOG_NOTICE,
    NEBULA_LOG_INFO,
    NEBULA_LOG_DEBUG,
    NEBULA_LOG_TRACE1
} nebula_log_level_e;

#define NEBULA_LOG_MARK __FILE__, __LINE__

/** The host's sink. @a baton is what was passed to nebula_log_set(). */
typedef void nebula_log_print_cb(const char *file, int line, nebula_log_level_e level,
                                 apr_status_t rv, void *baton, const char *fmt,
                                 va_list ap);

/** Install the sink (process-wide; call once at start-up, before threads). */
void nebula_log_set(nebula_log_print_cb *print_cb, void *baton);

/** Log a message; a no-op without a sink. */
void nebula_log_perror(const char *file, int line, nebula_log_level_e level,
                       apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif /* NEBULA_LOG_H */
