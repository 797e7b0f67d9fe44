/*
 * test_metrics.c - unit tests for pipeline/metrics.c: counters, gauges,
 * histograms and quantiles, the exact exposition text of a small
 * registry, handle identity, name/label validation, label escaping,
 * bounds, and concurrent updates (run it under -fsanitize=thread too).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "t.h"

static char *render(struct sp_metrics *m)
{
    struct sp_buf b;
    sp_buf_init(&b, 0);
    enum sp_err e = sp_metrics_render(m, &b);
    if (e != SP_OK) {
        sp_buf_fini(&b);
        return NULL;
    }
    return sp_buf_steal(&b, NULL);
}

static void test_exact_render(void)
{
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    T_OK(m != NULL);
    struct sp_counter *c0 = sp_metrics_counter(
        m, "alerts_in_total", "Alerts consumed.", "stage=\"decode.0\"");
    struct sp_counter *c1 = sp_metrics_counter(
        m, "alerts_in_total", "other help is ignored", "stage=\"decode.1\"");
    struct sp_gauge *g = sp_metrics_gauge(
        m, "queue_depth", "Messages waiting.\nSecond line \\ here", NULL);
    const double bounds[] = {0.25, 1, 4};
    struct sp_hist *h = sp_metrics_hist(m, "stage_seconds", "Stage latency.",
                                        "stage=\"decode.0\",kind=\"x\"",
                                        bounds, 3);
    struct sp_counter *bare = sp_metrics_counter(m, "starts_total", NULL, NULL);
    T_OK(c0 && c1 && g && h && bare);

    sp_counter_add(c0, 3);
    sp_counter_add(c1, 5);
    sp_counter_inc(bare);
    sp_gauge_set(g, 2.5);
    sp_gauge_add(g, -1);
    sp_hist_observe(h, 0.125);
    sp_hist_observe(h, 0.25);   /* le is inclusive */
    sp_hist_observe(h, 0.5);
    sp_hist_observe(h, 8);

    char *text = render(m);
    T_EQ_STR(text,
        "# HELP socpilot_alerts_in_total Alerts consumed.\n"
        "# TYPE socpilot_alerts_in_total counter\n"
        "socpilot_alerts_in_total{stage=\"decode.0\"} 3\n"
        "socpilot_alerts_in_total{stage=\"decode.1\"} 5\n"
        "# HELP socpilot_queue_depth Messages waiting.\\nSecond line \\\\ here\n"
        "# TYPE socpilot_queue_depth gauge\n"
        "socpilot_queue_depth 1.5\n"
        "# HELP socpilot_stage_seconds Stage latency.\n"
        "# TYPE socpilot_stage_seconds histogram\n"
        "socpilot_stage_seconds_bucket{stage=\"decode.0\",kind=\"x\",le=\"0.25\"} 2\n"
        "socpilot_stage_seconds_bucket{stage=\"decode.0\",kind=\"x\",le=\"1\"} 3\n"
        "socpilot_stage_seconds_bucket{stage=\"decode.0\",kind=\"x\",le=\"4\"} 3\n"
        "socpilot_stage_seconds_bucket{stage=\"decode.0\",kind=\"x\",le=\"+Inf\"} 4\n"
        "socpilot_stage_seconds_sum{stage=\"decode.0\",kind=\"x\"} 8.875\n"
        "socpilot_stage_seconds_count{stage=\"decode.0\",kind=\"x\"} 4\n"
        "# HELP socpilot_starts_total \n"
        "# TYPE socpilot_starts_total counter\n"
        "socpilot_starts_total 1\n");
    free(text);
    sp_metrics_free(m);
}

static void test_values(void)
{
    struct sp_metrics *m = sp_metrics_new(NULL);
    struct sp_counter *c = sp_metrics_counter(m, "c", "", NULL);
    T_EQ_INT(sp_counter_get(c), 0);
    sp_counter_add(c, 7);
    sp_counter_add(c, 0);
    T_EQ_INT(sp_counter_get(c), 7);

    struct sp_gauge *g = sp_metrics_gauge(m, "g", "", NULL);
    T_OK(sp_gauge_get(g) == 0);
    sp_gauge_add(g, 0.1);
    sp_gauge_add(g, 0.2);
    T_OK(fabs(sp_gauge_get(g) - 0.3) < 1e-12);
    sp_gauge_set(g, -4);
    T_OK(sp_gauge_get(g) == -4);

    struct sp_gauge *gs = sp_metrics_gauge(m, "special", "", "v=\"inf\"");
    struct sp_gauge *gn = sp_metrics_gauge(m, "special", "", "v=\"nan\"");
    struct sp_gauge *gt = sp_metrics_gauge(m, "special", "", "v=\"tenth\"");
    sp_gauge_set(gs, INFINITY);
    sp_gauge_set(gn, NAN);
    sp_gauge_set(gt, 0.1);
    char *text = render(m);
    T_CONTAINS(text, "\nspecial{v=\"inf\"} +Inf\n");
    T_CONTAINS(text, "\nspecial{v=\"nan\"} NaN\n");
    T_CONTAINS(text, "\nspecial{v=\"tenth\"} 0.1\n");
    T_CONTAINS(text, "\ng -4\n");
    T_CONTAINS(text, "\nc 7\n");
    free(text);

    /* NULL handles are accepted everywhere. */
    sp_counter_add(NULL, 1);
    sp_gauge_set(NULL, 1);
    sp_gauge_add(NULL, 1);
    sp_hist_observe(NULL, 1);
    sp_hist_observe_since_us(NULL, 0);
    T_EQ_INT(sp_counter_get(NULL), 0);
    T_OK(sp_gauge_get(NULL) == 0);
    T_EQ_INT(sp_hist_count(NULL), 0);
    T_OK(isnan(sp_hist_quantile(NULL, 0.5)));
    sp_metrics_free(NULL);
    T_OK(sp_metrics_counter(NULL, "x", "", NULL) == NULL);
    sp_metrics_free(m);
}

static void test_hist(void)
{
    struct sp_metrics *m = sp_metrics_new("p_");
    const double bounds[] = {1, 2, 4};
    struct sp_hist *h = sp_metrics_hist(m, "h", "", NULL, bounds, 3);
    T_OK(isnan(sp_hist_quantile(h, 0.5)));
    for (int i = 0; i < 10; i++)
        sp_hist_observe(h, 0.5);
    T_EQ_INT(sp_hist_count(h), 10);
    T_OK(fabs(sp_hist_quantile(h, 0.5) - 0.5) < 1e-12);
    for (int i = 0; i < 10; i++)
        sp_hist_observe(h, 3);
    T_OK(fabs(sp_hist_quantile(h, 0.75) - 3.0) < 1e-12);
    T_OK(fabs(sp_hist_quantile(h, 1.0) - 4.0) < 1e-12);
    T_OK(fabs(sp_hist_quantile(h, 7.0) - 4.0) < 1e-12);    /* clamped */
    T_OK(fabs(sp_hist_quantile(h, 0.0) - 0.0) < 1e-12);
    T_OK(fabs(sp_hist_sum(h) - 35.0) < 1e-12);
    for (int i = 0; i < 100; i++)
        sp_hist_observe(h, 50);
    T_OK(sp_hist_quantile(h, 0.99) == 4.0);    /* +Inf bucket */
    sp_hist_observe(h, NAN);                   /* ignored */
    T_EQ_INT(sp_hist_count(h), 120);

    /* Default latency buckets. */
    struct sp_hist *d = sp_metrics_hist(m, "lat_seconds", "", "s=\"a\"", NULL, 0);
    T_OK(d != NULL);
    sp_hist_observe(d, 0.003);
    sp_hist_observe_since_us(d, sp_now_us());
    T_EQ_INT(sp_hist_count(d), 2);
    char *text = render(m);
    size_t buckets = 0;
    for (const char *p = text; (p = strstr(p, "p_lat_seconds_bucket{")); p++)
        buckets++;
    T_EQ_INT(buckets, 16);
    T_CONTAINS(text, "p_lat_seconds_bucket{s=\"a\",le=\"0.0001\"} ");
    T_CONTAINS(text, "p_lat_seconds_bucket{s=\"a\",le=\"0.0025\"} ");
    T_CONTAINS(text, "p_lat_seconds_bucket{s=\"a\",le=\"0.005\"} 2\n");
    T_CONTAINS(text, "p_lat_seconds_bucket{s=\"a\",le=\"10\"} 2\n");
    T_CONTAINS(text, "p_lat_seconds_count{s=\"a\"} 2\n");
    free(text);

    /* Bounds: a trailing +Inf is dropped; bad bounds are refused. */
    const double with_inf[] = {1, 2, INFINITY};
    struct sp_hist *hi = sp_metrics_hist(m, "inf", "", NULL, with_inf, 3);
    T_OK(hi != NULL);
    sp_hist_observe(hi, 3);
    text = render(m);
    T_CONTAINS(text, "p_inf_bucket{le=\"2\"} 0\np_inf_bucket{le=\"+Inf\"} 1\n");
    free(text);
    const double unsorted[] = {1, 3, 2};
    const double dup[] = {1, 1};
    const double nan_b[] = {1, NAN};
    double many[SP_METRICS_MAX_BUCKETS + 1];
    for (size_t i = 0; i < SP_ARRAY_SIZE(many); i++)
        many[i] = (double)i;
    T_OK(sp_metrics_hist(m, "bad1", "", NULL, unsorted, 3) == NULL);
    T_OK(sp_metrics_hist(m, "bad2", "", NULL, dup, 2) == NULL);
    T_OK(sp_metrics_hist(m, "bad3", "", NULL, nan_b, 2) == NULL);
    T_OK(sp_metrics_hist(m, "bad4", "", NULL, many, SP_ARRAY_SIZE(many)) == NULL);
    T_OK(sp_metrics_hist(m, "bad5", "", NULL, bounds, 0) == NULL);
    T_OK(sp_metrics_hist(m, "bad6", "", "le=\"1\"", bounds, 3) == NULL);
    /* A refused registration leaves no trace in the output. */
    text = render(m);
    T_OK(strstr(text, "bad") == NULL);
    free(text);
    sp_metrics_free(m);
}

static void test_same_handle(void)
{
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    struct sp_counter *a = sp_metrics_counter(m, "x_total", "h", "s=\"1\"");
    struct sp_counter *b = sp_metrics_counter(m, "x_total", "h", "s=\"1\"");
    struct sp_counter *c = sp_metrics_counter(m, "x_total", "h", "s=\"2\"");
    struct sp_counter *d = sp_metrics_counter(m, "x_total", "h", NULL);
    struct sp_counter *e = sp_metrics_counter(m, "x_total", "h", "");
    T_OK(a && a == b);
    T_OK(c && c != a);
    T_OK(d && d == e && d != a);
    struct sp_hist *h1 = sp_metrics_hist(m, "h", "", NULL, NULL, 0);
    const double other[] = {1, 2};
    struct sp_hist *h2 = sp_metrics_hist(m, "h", "", NULL, other, 2);
    T_OK(h1 && h1 == h2);
    /* One name, one type. */
    T_OK(sp_metrics_gauge(m, "x_total", "h", "s=\"1\"") == NULL);
    T_OK(sp_metrics_hist(m, "x_total", "h", "s=\"3\"", NULL, 0) == NULL);
    sp_metrics_free(m);
}

static void test_validation(void)
{
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    T_OK(sp_metrics_new("bad-prefix") == NULL);
    T_OK(sp_metrics_new("9x") == NULL);
    T_OK(sp_metrics_counter(m, "", "", NULL) == NULL);
    T_OK(sp_metrics_counter(m, NULL, "", NULL) == NULL);
    T_OK(sp_metrics_counter(m, "a-b", "", NULL) == NULL);
    T_OK(sp_metrics_counter(m, "a b", "", NULL) == NULL);
    T_OK(sp_metrics_counter(m, "ok:sub_total9", "", NULL) != NULL);
    const char *bad_labels[] = {
        "stage=decode",          /* unquoted */
        "stage=\"x",             /* unterminated */
        "stage=\"x\",",          /* trailing comma */
        "a=\"1\"b=\"2\"",        /* missing comma */
        "=\"1\"",                /* empty name */
        "9a=\"1\"",              /* bad name */
        "__name__=\"x\"",        /* reserved */
        "a=\"line\nbreak\"",     /* raw newline */
        "a=\"bad \\t escape\"",  /* only \\ \" \n */
        "{a=\"1\"}",             /* braces */
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad_labels); i++) {
        if (sp_metrics_counter(m, "l_total", "", bad_labels[i]) != NULL)
            T_FAILF("labels accepted: %s", bad_labels[i]);
    }
    T_OK(sp_metrics_counter(m, "l_total", "",
                            "a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"n\\n\"") != NULL);
    T_OK(sp_metrics_counter(m, "l_total", "", "a=\"\"") != NULL);
    char long_name[SP_METRICS_NAME_MAX + 8];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    T_OK(sp_metrics_counter(m, long_name, "", NULL) == NULL);
    /* SP_METRICS_NAME_MAX is the longest name accepted, prefix included
     * ("socpilot_" + 191 bytes = 200), not the first refused */
    char max_name[SP_METRICS_NAME_MAX + 1];
    size_t plen = strlen("socpilot_");
    memset(max_name, 'n', SP_METRICS_NAME_MAX - plen);
    max_name[SP_METRICS_NAME_MAX - plen] = '\0';
    T_OK(sp_metrics_counter(m, max_name, "", NULL) != NULL);
    /* likewise a label list of exactly SP_METRICS_LABELS_MAX bytes:
     * a="vvv...v" padded to the limit is accepted, one byte more is not */
    char max_labels[SP_METRICS_LABELS_MAX + 2];
    memset(max_labels, 'v', sizeof(max_labels));
    memcpy(max_labels, "a=\"", 3);
    max_labels[SP_METRICS_LABELS_MAX - 1] = '"';
    max_labels[SP_METRICS_LABELS_MAX] = '\0';
    T_OK(sp_metrics_counter(m, "lmax_total", "", max_labels) != NULL);
    max_labels[SP_METRICS_LABELS_MAX - 1] = 'v';
    max_labels[SP_METRICS_LABELS_MAX] = '"';
    max_labels[SP_METRICS_LABELS_MAX + 1] = '\0';
    T_OK(sp_metrics_counter(m, "lmax_total", "", max_labels) == NULL);
    sp_metrics_free(m);
}

static void test_label_escape(void)
{
    char out[128];
    T_EQ_INT(sp_metrics_label_escape("a\"b\\c\nd", out, sizeof(out)), SP_OK);
    T_EQ_STR(out, "a\\\"b\\\\c\\nd");
    T_EQ_INT(sp_metrics_label_escape("caf\xc3\xa9 \xff \x01 tab\t", out,
                                     sizeof(out)), SP_OK);
    T_EQ_STR(out, "caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd tab\t");
    T_EQ_INT(sp_metrics_label_escape("cut \xe2\x82", out, sizeof(out)), SP_OK);
    T_EQ_STR(out, "cut \xef\xbf\xbd\xef\xbf\xbd");
    T_EQ_INT(sp_metrics_label_escape(NULL, out, sizeof(out)), SP_OK);
    T_EQ_STR(out, "");
    /* Too small: the longest prefix that ends on a whole escape. */
    T_EQ_INT(sp_metrics_label_escape("ab\"cd", out, 4), SP_ERR_LIMIT);
    T_EQ_STR(out, "ab");
    T_EQ_INT(sp_metrics_label_escape("abc", out, 4), SP_OK);
    T_EQ_STR(out, "abc");
    T_EQ_INT(sp_metrics_label_escape("abc", out, 0), SP_ERR_LIMIT);

    /* An escaped dynamic value makes a valid label list. */
    struct sp_metrics *m = sp_metrics_new(NULL);
    char esc[64], labels[96];
    sp_metrics_label_escape("evil\"} 1\nfake_metric 99", esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "topic=\"%s\"", esc);
    struct sp_counter *c = sp_metrics_counter(m, "in_total", "", labels);
    T_OK(c != NULL);
    sp_counter_inc(c);
    char *text = render(m);
    T_CONTAINS(text, "in_total{topic=\"evil\\\"} 1\\nfake_metric 99\"} 1\n");
    T_OK(strstr(text, "\nfake_metric") == NULL);
    free(text);
    sp_metrics_free(m);
}

static void test_limits(void)
{
    struct sp_metrics *m = sp_metrics_new(NULL);
    char labels[32];
    size_t ok = 0;
    for (int i = 0; i < SP_METRICS_MAX_SERIES + 5; i++) {
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        ok += sp_metrics_counter(m, "many_total", "", labels) != NULL;
    }
    T_EQ_INT(ok, SP_METRICS_MAX_SERIES);
    /* Existing series are still found. */
    T_OK(sp_metrics_counter(m, "many_total", "", "i=\"0\"") != NULL);

    /* A render that does not fit reports it. */
    struct sp_buf b;
    sp_buf_init(&b, 256);
    T_EQ_INT(sp_metrics_render(m, &b), SP_ERR_LIMIT);
    sp_buf_fini(&b);
    sp_metrics_free(m);
}

#define N_THREADS 4
#define N_OPS 100000

struct worker {
    struct sp_metrics *m;
    struct sp_counter *c;   /* what this thread registered */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* Registration races with the other threads' registrations. */
    w->c = sp_metrics_counter(w->m, "ops_total", "ops", "k=\"shared\"");
    struct sp_gauge *g = sp_metrics_gauge(w->m, "level", "", NULL);
    struct sp_hist *h = sp_metrics_hist(w->m, "lat_seconds", "", NULL, NULL, 0);
    for (int i = 0; i < N_OPS; i++) {
        sp_counter_inc(w->c);
        sp_gauge_add(g, 1.0);
        sp_hist_observe(h, (i % 2) ? 0.002 : 0.5);
    }
    return NULL;
}

static void *renderer_main(void *arg)
{
    struct sp_metrics *m = arg;
    for (int i = 0; i < 50; i++) {
        char *text = render(m);
        free(text);
    }
    return NULL;
}

static void test_concurrent(void)
{
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    struct worker w[N_THREADS];
    pthread_t th[N_THREADS], rt;
    for (int i = 0; i < N_THREADS; i++) {
        w[i].m = m;
        w[i].c = NULL;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    pthread_create(&rt, NULL, renderer_main, m);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_join(rt, NULL);

    for (int i = 1; i < N_THREADS; i++)
        T_OK(w[i].c == w[0].c);
    T_EQ_INT(sp_counter_get(w[0].c), N_THREADS * N_OPS);
    struct sp_gauge *g = sp_metrics_gauge(m, "level", "", NULL);
    T_OK(sp_gauge_get(g) == (double)(N_THREADS * N_OPS));
    struct sp_hist *h = sp_metrics_hist(m, "lat_seconds", "", NULL, NULL, 0);
    T_EQ_INT(sp_hist_count(h), N_THREADS * N_OPS);
    double want = N_THREADS * (N_OPS / 2) * (0.002 + 0.5);
    T_OK(fabs(sp_hist_sum(h) - want) < want * 1e-9);
    char *text = render(m);
    char line[128];
    snprintf(line, sizeof(line), "socpilot_ops_total{k=\"shared\"} %d\n",
             N_THREADS * N_OPS);
    T_CONTAINS(text, line);
    snprintf(line, sizeof(line), "socpilot_lat_seconds_bucket{le=\"0.0025\"} %d\n",
             N_THREADS * N_OPS / 2);
    T_CONTAINS(text, line);
    free(text);
    sp_metrics_free(m);
}

int main(void)
{
    t_prog = "test_metrics";
    T_RUN(test_exact_render);
    T_RUN(test_values);
    T_RUN(test_hist);
    T_RUN(test_same_handle);
    T_RUN(test_validation);
    T_RUN(test_label_escape);
    T_RUN(test_limits);
    T_RUN(test_concurrent);
    return t_done();
}
