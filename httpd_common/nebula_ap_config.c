/* nebula_ap_config.c: directive argument syntax shared by the modules. */
#include <errno.h>
#include <strings.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include "nebula_ap.h"

/* The one duration syntax of every NebulaGate directive: a whole number with an
 * optional unit ms, s (the default), m / mi / min, or h, within [min, max]. */
int nebula_ap_duration(const char *arg, apr_interval_time_t min, apr_interval_time_t max,
                          apr_interval_time_t *out)
{
    char *unit;
    apr_int64_t n;
    apr_interval_time_t t;

    if (!apr_isdigit(*arg)) {
        return 0;
    }
    errno = 0;
    n = apr_strtoi64(arg, &unit, 10);
    if (errno || n > APR_INT64_C(1000000000)) {
        return 0;
    }
    if (!*unit || !strcasecmp(unit, "s")) {
        t = apr_time_from_sec(n);
    }
    else if (!strcasecmp(unit, "ms")) {
        t = n * 1000;
    }
    else if (!strcasecmp(unit, "m") || !strcasecmp(unit, "mi") || !strcasecmp(unit, "min")) {
        t = apr_time_from_sec(n * 60);
    }
    else if (!strcasecmp(unit, "h")) {
        t = apr_time_from_sec(n * 3600);
    }
    else {
        return 0;
    }
    if (t < min || t > max) {
        return 0;
    }
    *out = t;
    return 1;
}

