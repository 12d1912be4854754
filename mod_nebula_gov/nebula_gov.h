/**
 * @file nebula_gov.h
 * @brief The governance hook the relay runs after authentication and before
 *        billing reserves credit.
 *
 * It is an APR *optional* hook (like mod_status's status_hook): the relay
 * implements and runs it (ap_run_nebula_gov_check); mod_nebula_gov, and any
 * other module, registers with
 * APR_OPTIONAL_HOOK(ap, nebula_gov_check, fn, NULL, NULL, APR_HOOK_MIDDLE).
 * No module links against another, so each loads alone.
 *
 * A hook returns OK after filling @a decision when it decided, DECLINED when
 * it has no opinion; the relay runs all hooks and stops at the first that sets
 * a BLOCK decision.
 */
#ifndef NEBULA_GOV_H
#define NEBULA_GOV_H

#include <httpd.h>
#include <apr_hooks.h>
#include <apr_optional_hooks.h>
#include "nebula_types.h"

/* Linkage of the hook's functions: plain C, kept private to each DSO by its
 * -export-symbols-regex. */
#define NEBULA_DECLARE(type)        type
#define NEBULA_DECLARE_NONSTD(type) type
#define NEBULA_DECLARE_DATA

APR_DECLARE_EXTERNAL_HOOK(ap, NEBULA, int, nebula_gov_check,
                          (request_rec *r, nebula_req_t *req,
                           nebula_decision_t *decision))

#endif /* NEBULA_GOV_H */
