/*
 * t.h - the unit-test harness: a handful of assertion macros and a
 * summary line.  Each tests/unit/test_*.c is its own program:
 *
 *     static void test_x(void) { T_EQ_INT(1 + 1, 2); }
 *     int main(void) { T_RUN(test_x); return t_done(); }
 *
 * A failed check prints file:line and what differed, and the test goes
 * on (so one run shows every failure).  t_done() prints
 * "<prog>: N passed, N failed" and returns the exit status.
 * T_SKIP(msg) marks the current test skipped with a reason.
 * T_TIME=1 in the environment prints how long each test took (to find
 * what makes a suite slow).
 */
#ifndef SP_T_H
#define SP_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int t_pass, t_fail, t_skip, t_cur_failed, t_cur_skipped;
static const char *t_prog = "test";

#define T_FAILF(...)                                                        \
    do {                                                                    \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);              \
        fprintf(stderr, __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                \
        t_cur_failed = 1;                                                   \
    } while (0)

#define T_OK(cond)                                                          \
    do {                                                                    \
        if (!(cond))                                                        \
            T_FAILF("expected: %s", #cond);                                 \
    } while (0)

#define T_EQ_INT(a, b)                                                      \
    do {                                                                    \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);             \
        if (t_a_ != t_b_)                                                   \
            T_FAILF("%s == %s: %lld != %lld", #a, #b, t_a_, t_b_);          \
    } while (0)

#define T_EQ_STR(a, b)                                                      \
    do {                                                                    \
        const char *t_a_ = (a), *t_b_ = (b);                                \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)                      \
            T_FAILF("%s == %s: \"%s\" != \"%s\"", #a, #b,                   \
                    t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");        \
    } while (0)

#define T_CONTAINS(hay, needle)                                             \
    do {                                                                    \
        const char *t_h_ = (hay), *t_n_ = (needle);                         \
        if (!t_h_ || !strstr(t_h_, t_n_))                                   \
            T_FAILF("%s does not contain \"%s\" (got: %.300s)", #hay, t_n_, \
                    t_h_ ? t_h_ : "(null)");                                \
    } while (0)

#define T_SKIP(msg)                                                         \
    do {                                                                    \
        fprintf(stderr, "  SKIP %s: %s\n", __func__, (msg));                \
        t_cur_skipped = 1;                                                  \
        return;                                                             \
    } while (0)

static inline double t_clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* T_ONLY=word runs only the tests whose name contains word. */
#define T_RUN(fn)                                                           \
    do {                                                                    \
        if (getenv("T_ONLY") && !strstr(#fn, getenv("T_ONLY")))           \
            break;                                                          \
        t_cur_failed = 0;                                                   \
        t_cur_skipped = 0;                                                  \
        double t_t0_ = t_clock_s();                                         \
        fn();                                                               \
        if (getenv("T_TIME"))                                               \
            fprintf(stderr, "  time %s: %.2f s\n", #fn, t_clock_s() - t_t0_); \
        if (t_cur_failed) {                                                 \
            t_fail++;                                                       \
            fprintf(stderr, "not ok - %s\n", #fn);                          \
        } else if (t_cur_skipped) {                                         \
            t_skip++;                                                       \
        } else {                                                            \
            t_pass++;                                                       \
        }                                                                   \
    } while (0)

static inline int t_done(void)
{
    printf("%s: %d passed, %d failed, %d skipped\n", t_prog, t_pass, t_fail,
           t_skip);
    return t_fail ? 1 : 0;
}

#endif
