/* nebula_ledger.c: the ledger's row hash (see nebula_ledger.h). */
#include <string.h>
#include <apr_strings.h>
#include "nebula_crypto.h"
#include "nebula_ledger.h"

static const char *const kinds[] = {
    NEBULA_LEDGER_TOPUP,      NEBULA_LEDGER_CONSUME,      NEBULA_LEDGER_REFUND,
    NEBULA_LEDGER_VOUCHER,    NEBULA_LEDGER_PLAN_GRANT,   NEBULA_LEDGER_PERIOD_RESET,
    NEBULA_LEDGER_ROLLOVER,   NEBULA_LEDGER_EXPIRY,       NEBULA_LEDGER_ADJUSTMENT,
    NULL};

int nebula_ledger_kind_valid(const char *kind)
{
    int i;

    for (i = 0; kind && kinds[i]; ++i) {
        if (strcmp(kind, kinds[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

#define S(v) ((v) ? (v) : "")

char *nebula_ledger_hash(apr_pool_t *p, const nebula_ledger_row_t *row)
{
    const char *text = apr_psprintf(
        p,
        "nebula-ledger-v1\n%" APR_INT64_T_FMT "\n%" APR_INT64_T_FMT "\n%s\n%" APR_INT64_T_FMT
        "\n%" APR_INT64_T_FMT "\n%s\n%s\n%s\n%" APR_INT64_T_FMT "\n%s\n%s",
        row->account_id, row->seq, S(row->kind), row->amount, row->balance_after,
        S(row->request_id), S(row->idem_key), S(row->actor), row->created_at, S(row->detail),
        S(row->prev_hash));

    return nebula_crypto_sha256_hex(p, text, strlen(text));
}
