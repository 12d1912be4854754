/* nebula_log.c: the library's one logging entry point, forwarded to the
 * sink the host installed (see nebula_log.h). */
#include "nebula_log.h"

static nebula_log_print_cb *log_print;
static void *log_baton;

void nebula_log_set(nebula_log_print_cb *print_cb, void *baton)
{
    log_print = print_cb;
    log_baton = baton;
}

void nebula_log_perror(const char *file, int line, nebula_log_level_e level,
                       apr_status_t rv, const char *fmt, ...)
{
    va_list ap;

    if (log_print == NULL) {
        return;
    }
    va_start(ap, fmt);
    log_print(file, line, level, rv, log_baton, fmt, ap);
    va_end(ap);
}
