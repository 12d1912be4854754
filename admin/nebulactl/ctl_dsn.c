/* ctl_dsn.c: `nebulactl dsn`, which turns a database URL into the mod_dbd
 * driver name and parameter string (first and second line of its output).
 * The Docker entrypoint uses it to map SQL_DSN onto DBDriver / DBDParams,
 * with the same parser --dsn uses. */
#include <stdio.h>

#include "ctl.h"
#include "nebula_dbd_dsn.h"

int ctl_cmd_dsn(ctl_t *ctl)
{
    nebula_dbd_dsn_t dsn;
    const char *err = NULL;

    if (ctl->dsn == NULL || *ctl->dsn == '\0') {
        ctl_error("dsn: give --dsn URL (or set SQL_DSN)");
        return CTL_EXIT_USAGE;
    }
    if (nebula_dbd_dsn_parse(ctl->dsn, &dsn, &err, ctl->pool) != APR_SUCCESS) {
        ctl_error("dsn: %s", err ? err : "cannot parse the database URL");
        return CTL_EXIT_ERROR;
    }
    printf("%s\n%s\n", dsn.driver, dsn.params);
    return CTL_EXIT_OK;
}
