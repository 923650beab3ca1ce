/* A tiny test harness: CHECK records a failure and goes on, so one run reports every broken
 * expectation; a test's main returns check_finish(). */
#ifndef HS_TEST_CHECK_H
#define HS_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        check_count++;                                                                  \
        if (!(cond)) {                                                                  \
            check_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        check_count++;                                                                  \
        if (!(cond)) {                                                                  \
            check_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

/* Compares two float arrays: |a - b| <= atol + rtol * |b| everywhere. Reports the worst. */
static inline int check_close_impl(const char *file, int line, const char *what, const float *a,
                                   const float *b, long count, float rtol, float atol) {
    long worst = -1;
    double worst_excess = 0;
    long bad = 0;
    for (long i = 0; i < count; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double allowed = atol + rtol * fabs((double)b[i]);
        if (!(diff <= allowed)) { /* also catches NaN */
            bad++;
            if (worst < 0 || diff - allowed > worst_excess || isnan(diff)) {
                worst = i;
                worst_excess = diff - allowed;
            }
        }
    }
    check_count++;
    if (bad) {
        check_failures++;
        fprintf(stderr, "%s:%d: %s: %ld of %ld values differ; worst at %ld: %.8g vs %.8g\n",
                file, line, what, bad, count, worst, a[worst], b[worst]);
        return 0;
    }
    return 1;
}
#define CHECK_CLOSE(what, a, b, count, rtol, atol) \
    check_close_impl(__FILE__, __LINE__, what, a, b, (long)(count), rtol, atol)

static inline int check_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#define CHECK_SKIP(...)                                                                 \
    do {                                                                                \
        printf("SKIP: ");                                                               \
        printf(__VA_ARGS__);                                                            \
        printf("\n");                                                                   \
        exit(77);                                                                       \
    } while (0)

#endif
