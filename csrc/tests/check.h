/*
 * check.h - the smallest test harness that does the job for the C core's
 * unit tests: CHECK() records a failure with file:line and goes on, so one
 * run shows every broken expectation; main() returns check_failures != 0.
 */
#ifndef GBSIP_CHECK_H
#define GBSIP_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                        \
    do {                                                                   \
        check_count++;                                                     \
        if (!(cond)) {                                                     \
            check_failures++;                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                 \
    do {                                                                   \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);    \
        check_count++;                                                     \
        if (check_a_ != check_b_) {                                        \
            check_failures++;                                              \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n",      \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);       \
        }                                                                  \
    } while (0)

/* Compare a (pointer, length) run with a C string literal. */
#define CHECK_MEM(p, n, lit)                                               \
    do {                                                                   \
        size_t check_n_ = (size_t)(n);                                     \
        check_count++;                                                     \
        if (check_n_ != sizeof(lit) - 1 || memcmp((p), (lit), check_n_)) { \
            check_failures++;                                              \
            fprintf(stderr, "%s:%d: expected \"%s\", got \"%.*s\"\n",      \
                    __FILE__, __LINE__, lit, (int)check_n_,                \
                    (const char *)(p));                                    \
        }                                                                  \
    } while (0)

#define CHECK_DONE(name)                                                   \
    (fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count,      \
             check_failures),                                              \
     check_failures != 0)

#endif
