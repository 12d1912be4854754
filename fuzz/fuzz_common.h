/* fuzz_common.h: what the libFuzzer harnesses share: APR set up once per
 * process (state that lives as long as the process is built in
 * LLVMFuzzerInitialize, where leak detection does not look), a pool per
 * input (destroyed after it, so LeakSanitizer sees what the code under test
 * leaks), and a failure that names the broken property (libFuzzer then saves
 * the input as a crash file). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_pools.h>

/* libFuzzer's entry points (each harness defines the first) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static apr_pool_t *fuzz_root;

/* The process-wide parent pool; APR is initialised on the first call. */
static inline apr_pool_t *fuzz_root_pool(void)
{
    if (fuzz_root == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
            fprintf(stderr, "fuzz: cannot initialise APR\n");
            abort();
        }
        /* what the pools still own at exit (the pool allocator's memory is
         * not where LeakSanitizer looks) is freed, not reported */
        atexit(apr_terminate);
    }
    return fuzz_root;
}

/* A fresh pool for one input. */
static inline apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    return p;
}

/* A property does not hold: say which, and crash. */
static void fuzz_fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2), unused));
static void fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("fuzz: property violated: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#define FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fuzz_fail(__VA_ARGS__);                                                        \
        }                                                                                  \
    } while (0)

#endif /* FUZZ_COMMON_H */
