/* nebula_ap_log.c: forwards libnebula_common's log callback to httpd's error
 * log. Each module's static copy of the library gets its own bridge, so the
 * messages carry the module's name and honour its LogLevel. */
#include <apr_strings.h>
#include "nebula_ap.h"
#include "nebula_log.h"

typedef struct {
    server_rec *s;
    int module_index;
} log_baton_t;

static void bridge_print(const char *file, int line, nebula_log_level_e level,
                         apr_status_t rv, void *baton, const char *fmt, va_list ap)
{
    log_baton_t *b = baton;
    char msg[2048];

    if (!APLOG_MODULE_IS_LEVEL(b->s, b->module_index, (int)level)) {
        return;
    }
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    ap_log_error_(file, line, b->module_index, (int)level, rv, b->s, "%s", msg);
}

void nebula_ap_log_bridge(server_rec *s, int module_index)
{
    /* The baton lives in the process pool: it outlives every config pool
     * cycle of this process, and post_config replaces it on each restart. */
    log_baton_t *b = apr_pcalloc(s->process->pool, sizeof(*b));

    b->s = s;
    b->module_index = module_index;
    nebula_log_set(bridge_print, b);
}
