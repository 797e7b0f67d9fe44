/*
 * bench_analyze.c - what analysis costs the hot path, with the fake LLM
 * answering after 2 s (tests/fakes/fake_openai.py --latency-ms 2000) and
 * a real redis-server on loopback:
 *
 *   off   correlate                      per batch
 *   on    correlate -> analyze, plus analyze's tick() between batches (it
 *         runs on the engine thread, so it counts as hot path)
 *
 * Alerts form incidents of ~20 alerts (one host each), fed in batches of
 * 200 as fast as the stages take them.  Reports alerts/s for both runs,
 * LLM calls per 1,000 alerts, and p50/p99 of the time from an incident's
 * last alert to its published analysis.  The bench uses SHORT debounce
 * settings (analyze.quiet=1s, analyze.max_delay=5s) so it ends in
 * seconds; production defaults are 30 s / 5 min.  BENCH_ALERTS=N changes
 * the alert count (default 4,000).  Figures are printed, never asserted.
 * Run from the repository root (prompts, schema, fake server).
 */
#include <jansson.h>

#include "analyze.h"
#include "log.h"
#include "tests/fakes/fake_openai.h"
#include "tests/unit/correlate_test.h"

#define KEY "sk-bench"

struct run {
    struct sp_config *cfg;
    struct sp_metrics *m;
    struct sp_test_sink sink;
    struct sp_env env;
    struct sp_stage *corr, *an;
};

static bool run_open(struct run *r, bool on, const char *llm_url)
{
    memset(r, 0, sizeof(*r));
    redisReply *rep = sp_test_redis_cmd(&ct_redis, "FLUSHALL");
    if (rep)
        freeReplyObject(rep);
    struct sp_error err = {0};
    r->cfg = sp_config_new();
    if (sp_config_declare(r->cfg, sp_stage_correlate.keys,
                          sp_stage_correlate.n_keys, &err) ||
        sp_config_declare(r->cfg, sp_stage_analyze.keys,
                          sp_stage_analyze.n_keys, &err) ||
        sp_analyze_declare(r->cfg, &err))
        return false;
    char port[64];
    snprintf(port, sizeof(port), "redis.port=%d", ct_redis.port);
    const char *sets[] = {port, "correlate.flood.enabled=false",
                          "correlate.noisy.threshold=0", "analyze.quiet=1s",
                          "analyze.max_delay=5s", "analyze.poll=50ms",
                          "analyze.concurrency=512", "llm.enabled=true",
                          llm_url, "llm.model=test-model",
                          "llm.api_key=" KEY, "llm.max_concurrency=256",
                          "llm.timeout=30s", NULL};
    for (size_t i = 0; sets[i]; i++)
        if (sp_config_set(r->cfg, sets[i], &err)) {
            fprintf(stderr, "%s: %s\n", sets[i], err.msg);
            return false;
        }
    if (sp_config_validate(r->cfg, &err))
        return false;
    r->m = sp_metrics_new("socpilot_");
    sp_test_sink_init(&r->sink);
    r->env = (struct sp_env){.cfg = r->cfg, .metrics = r->m,
                             .sink = &r->sink.sink, .instance = "bench",
                             .topic_alerts = "alerts",
                             .topic_incidents = "incidents",
                             .topic_dlq = "dlq"};
    r->corr = sp_stage_new(&sp_stage_correlate, 0, &r->env);
    if (!r->corr || sp_stage_init(r->corr, &err))
        return false;
    if (on) {
        r->an = sp_stage_new(&sp_stage_analyze, 0, &r->env);
        if (!r->an || sp_stage_init(r->an, &err)) {
            fprintf(stderr, "analyze: %s\n", err.msg);
            return false;
        }
    }
    return true;
}

static void run_close(struct run *r)
{
    sp_stage_free(r->an);
    sp_stage_free(r->corr);
    sp_test_sink_fini(&r->sink);
    sp_metrics_free(r->m);
    sp_config_free(r->cfg);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Streams n alerts; returns alerts/s of the hot path.  last_ms[i]: wall
 * ms of incident i's last alert. */
static double stream(struct run *r, int n, int incs, int64_t *last_ms)
{
    enum { BATCH = 200 };
    struct ct_alert al[BATCH];
    char ids[BATCH][24], ents[BATCH][24];
    int64_t busy_us = 0;
    for (int k = 0; k < n; k += BATCH) {
        int len = SP_MIN(BATCH, n - k);
        struct sp_batch *b = sp_batch_new(BATCH);
        for (int j = 0; j < len; j++) {
            int a = k + j, inc = (a / 20) % incs;
            snprintf(ids[j], sizeof(ids[j]), "al%d", a);
            snprintf(ents[j], sizeof(ents[j]), "host:b%d", inc);
            al[j] = (struct ct_alert){.id = ids[j], .ents = ents[j],
                                      .t = a / 10};
            ct_add(b, &al[j]);
        }
        int64_t t0 = sp_now_us();
        sp_stage_process(r->corr, b);
        if (r->an) {
            sp_stage_process(r->an, b);
            r->an->type->tick(r->an, sp_now_ms());
        }
        busy_us += sp_now_us() - t0;
        int64_t wall = sp_wall_us() / 1000;
        for (int j = 0; j < len; j++)
            last_ms[((k + j) / 20) % incs] = wall;
        sp_batch_free(b);
    }
    return busy_us > 0 ? (double)n * 1e6 / (double)busy_us : 0;
}

int main(void)
{
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    const char *why = NULL;
    if (!ct_redis_up(&why)) {
        printf("bench_analyze: skipped (%s)\n", why);
        return 0;
    }
    struct fake_openai fake;
    const char *const args[] = {"--key", KEY, "--latency-ms", "2000", NULL};
    if (!fake_openai_start(&fake, args)) {
        printf("bench_analyze: skipped (%s)\n", fake.why);
        return 0;
    }
    int n = getenv("BENCH_ALERTS") ? atoi(getenv("BENCH_ALERTS")) : 4000;
    n = SP_MAX(n, 200);
    int incs = SP_MAX(n / 20, 1);
    char url[200];
    snprintf(url, sizeof(url), "llm.base_url=%s/v1", fake.base);
    int64_t *last = calloc((size_t)incs, sizeof(*last));
    struct run r;
    double off = 0, on = 0;
    if (run_open(&r, false, url))
        off = stream(&r, n, incs, last);
    run_close(&r);
    if (!run_open(&r, true, url)) {
        printf("bench_analyze: setup failed\n");
        return 1;
    }
    on = stream(&r, n, incs, last);
    /* Until every incident's analysis is out (or 60 s). */
    double *lat = calloc((size_t)incs, sizeof(*lat));
    int done = 0;
    size_t seen = 0;
    int64_t deadline = sp_now_ms() + 60000;
    while (done < incs && sp_now_ms() < deadline) {
        r.an->type->tick(r.an, sp_now_ms());
        int64_t wall = sp_wall_us() / 1000;
        pthread_mutex_lock(&r.sink.mu);
        for (; seen < r.sink.n; seen++) {
            struct sp_test_out *o = &r.sink.outs[seen];
            if (strcmp(o->topic, "incidents") != 0 ||
                strstr(o->value, "\"analysis\":null") ||
                !strstr(o->value, "\"generated_by\""))
                continue;
            const char *h = strstr(o->value, "\"key\":\"host:b");
            int inc = h ? atoi(h + 13) : -1;
            if (inc >= 0 && inc < incs && lat[inc] == 0 &&
                strstr(o->value, "\"alerts_total\":20")) {
                lat[inc] = (double)(wall - last[inc]) / 1000.0;
                done++;
            }
        }
        pthread_mutex_unlock(&r.sink.mu);
        sp_test_sleep_ms(5);
    }
    struct sp_buf unused;
    sp_buf_init(&unused, 0);
    if (getenv("BENCH_VERBOSE") && fake_openai_control(&fake, "{}") &&
        fake_openai_records(&fake, &unused))
        printf("  %zu bytes of requests recorded\n", unused.len);
    sp_buf_fini(&unused);
    qsort(lat, (size_t)incs, sizeof(*lat), cmp_d);
    int first = incs - done;            /* missing ones sort first (0) */
    double p50 = done ? lat[first + done / 2] : 0;
    double p99 = done ? lat[first + (done * 99) / 100 - (done * 99 % 100 == 0)]
                      : 0;
    long calls = fake_openai_stat(&fake, "requests");
    printf("bench_analyze: %d alerts, %d incidents, fake LLM latency 2 s, "
           "analyze.quiet=1s analyze.max_delay=5s (bench settings)\n", n,
           incs);
    printf("  hot path, analysis off: %.0f alerts/s\n", off);
    printf("  hot path, analysis on:  %.0f alerts/s (%.2fx)\n", on,
           off > 0 ? on / off : 0);
    printf("  LLM calls: %ld (%.1f per 1,000 alerts)\n", calls,
           (double)calls * 1000.0 / n);
    printf("  last alert -> published analysis: p50 %.2f s, p99 %.2f s "
           "(%d/%d incidents)\n", p50, p99, done, incs);
    free(lat);
    free(last);
    run_close(&r);
    fake_openai_stop(&fake);
    curl_global_cleanup();
    return 0;
}
