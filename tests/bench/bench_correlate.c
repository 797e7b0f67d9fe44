/*
 * bench_correlate.c - what correlation costs, against a real redis-server
 * on loopback started for the run:
 *
 *   without   decode -> publish            (the chain without correlation)
 *   with      decode -> correlate -> publish
 *
 * on the same ~2 KB Graph alerts (Microsoft Graph security alert v2), fed
 * in batches of 500 straight to the stages (no Kafka: the memory sink
 * acknowledges at once), so the difference is correlation alone.  Reports
 * alerts/s for both and their ratio, Redis round trips per batch, the
 * incidents formed, and Redis memory per incident (INFO memory delta and
 * MEMORY USAGE of sampled incidents).
 *
 * Entity overlap is realistic: alerts come from attack "stories" (a host,
 * a user, sometimes an IP and a file per story, a few alerts each), some
 * carry one of a handful of proxy IPs or the same powershell.exe hash
 * (noisy entities), half carry a provider incident id, three tenants.
 *
 * 10,000 alerts, then 1,000,000, then 20,000 from 12 tenants against one
 * server and against a Redis Cluster of two masters (BENCH_QUICK=1: the
 * first only; BENCH_ALERTS=N: N only, on BENCH_SHARDS masters (1 = a
 * plain server) with BENCH_TENANTS tenants); BENCH_SET=key=value
 * overrides one config key;
 * BENCH_VERBOSE=1 adds Redis' per-command statistics.  Figures are
 * printed, never asserted.
 */
#include <signal.h>
#include <sys/resource.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"
#include "tests/tools/redis_test.h"

#define BATCH 500
#define MAX_SHARDS SP_TEST_CLUSTER_MAX

static int g_tenants = 3;       /* BENCH_TENANTS */

/* Named here so that the linker takes the stage from the archive (the
 * registry only holds a weak reference to it). */
extern const struct sp_stage_type sp_stage_correlate;

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void put(struct sp_buf *b, const char *fmt, ...) SP_PRINTF(2, 3);
static void put(struct sp_buf *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        sp_buf_put(b, tmp, (size_t)SP_MIN(n, (int)sizeof(tmp) - 1));
}

/* Alert i of n: a Graph alert v2 of about 2 KB. */
static void make_alert(struct sp_buf *b, size_t i, size_t n)
{
    size_t stories = n / 4 + 1;
    uint64_t r = mix(i);
    size_t s = (size_t)(r % stories);
    uint64_t rs = mix(s);
    int tenant = (int)(s % (size_t)g_tenants);
    /* The organisation grows with the traffic: 3,000 hosts and 2,000
     * users for a day of alerts, about 50,000 and 32,000 for 100 days. */
    int hosts = 3000 + (int)(n / 20), users = 2000 + (int)(n / 33);
    int host = (int)(rs % (uint64_t)hosts), user = (int)(mix(rs) % (uint64_t)users);
    static const char *const sevs[] = {"low", "medium", "high", "informational"};
    static const char *const titles[] = {
        "Suspicious PowerShell command line", "Credential dumping activity",
        "Suspicious sign-in from anonymous IP", "Ransomware behavior detected",
        "Lateral movement using remote services", "Malicious file dropped",
        "Suspicious inbox forwarding rule", "Anomalous token issuance"};
    char t[32];
    /* 10,000 alerts a day, whatever the run's size: a larger run is a
     * longer stretch of the same traffic, not a flood. */
    int64_t when = (1795000000LL + (int64_t)i * 864 / 100) * 1000000LL;
    sp_time_format(when, t);
    put(b, "{\"@odata.type\":\"#microsoft.graph.security.alert\","
           "\"id\":\"da%016llx\",\"providerAlertId\":\"da%016llx\",",
        (unsigned long long)i, (unsigned long long)i);
    if (r % 2)
        put(b, "\"incidentId\":\"%zu\",", 100000 + s);
    put(b, "\"status\":\"new\",\"severity\":\"%s\",\"serviceSource\":"
           "\"microsoftDefenderForEndpoint\",\"detectionSource\":\"edr\","
           "\"detectorId\":\"det-%02d\",\"tenantId\":\"%08d-1111-2222-3333-"
           "444444444444\",\"title\":\"%s\",\"description\":\"",
        sevs[r % 4], (int)(mix(s + 7) % 40), tenant, titles[(r >> 8) % 8]);
    static const char *const words[] = {
        "suspicious", "process", "execution", "observed", "on", "the",
        "device", "attacker", "credential", "access", "lateral", "movement",
        "encoded", "command", "network", "connection", "remote", "host"};
    for (size_t k = 0, len = 0; len < 700; k++) {
        const char *w = words[mix(r + k) % SP_ARRAY_SIZE(words)];
        sp_buf_puts(b, w);
        sp_buf_putc(b, ' ');
        len += strlen(w) + 1;
    }
    put(b, "\",\"category\":\"Execution\",\"mitreTechniques\":[\"T1059.001\"],"
           "\"createdDateTime\":\"%s\",\"lastUpdateDateTime\":\"%s\","
           "\"firstActivityDateTime\":\"%s\",\"lastActivityDateTime\":\"%s\","
           "\"evidence\":[", t, t, t, t);
    put(b, "{\"@odata.type\":\"#microsoft.graph.security.deviceEvidence\","
           "\"roles\":[\"compromised\"],\"deviceDnsName\":\"ws-%04d.contoso.com\","
           "\"hostName\":\"ws-%04d\",\"mdeDeviceId\":\"%040d\"}",
        host, host, host);
    put(b, ",{\"@odata.type\":\"#microsoft.graph.security.userEvidence\","
           "\"roles\":[],\"userAccount\":{\"accountName\":\"user%d\","
           "\"domainName\":\"CONTOSO\",\"userPrincipalName\":\"user%d@contoso.com\"}}",
        user, user);
    if (mix(r) % 10 < 4)
        put(b, ",{\"@odata.type\":\"#microsoft.graph.security.ipEvidence\","
               "\"roles\":[],\"ipAddress\":\"172.%d.%d.%d\"}",
            16 + (int)(rs % 16), (int)((rs >> 8) % 256), (int)((rs >> 16) % 254) + 1);
    if (mix(r + 1) % 100 < 15)        /* one of a few proxies: noisy */
        put(b, ",{\"@odata.type\":\"#microsoft.graph.security.ipEvidence\","
               "\"roles\":[],\"ipAddress\":\"10.0.0.%d\"}", 1 + (int)(r % 4));
    if (mix(r + 2) % 100 < 30)        /* powershell.exe itself: noisy */
        put(b, ",{\"@odata.type\":\"#microsoft.graph.security.processEvidence\","
               "\"roles\":[],\"processId\":%d,\"processCommandLine\":"
               "\"powershell.exe -nop -enc SQBFAFgA\",\"imageFile\":{\"sha256\":"
               "\"%064d\",\"fileName\":\"powershell.exe\"}}",
            4000 + (int)(i % 1000), 7);
    if (mix(r + 3) % 100 < 20)
        put(b, ",{\"@odata.type\":\"#microsoft.graph.security.fileEvidence\","
               "\"roles\":[],\"fileDetails\":{\"sha256\":\"%064llx\","
               "\"fileName\":\"payload%zu.exe\"}}",
            (unsigned long long)mix(s + 99), s % 1000);
    sp_buf_puts(b, "]}");
}

/* Acknowledges at once, with an offset as a broker would (so that the
 * outbox acks record where snapshots land), and counts; keeps nothing. */
struct count_sink {
    struct sp_sink sink;
    size_t outputs, incidents;
    int64_t offset;
    double bytes;
};

static enum sp_err count_produce(struct sp_sink *sink, struct sp_batch *batch,
                                 const char *topic, const void *key,
                                 size_t klen, const void *val, size_t vlen,
                                 const struct sp_header *hdrs, size_t n_hdrs)
{
    struct count_sink *cs = sink->ctx;
    (void)hdrs;
    (void)n_hdrs;
    cs->outputs++;
    cs->bytes += (double)vlen;
    if (strcmp(topic, "incidents") == 0)
        cs->incidents++;
    batch->pending++;
    if (batch->on_landed)
        batch->on_landed(batch, batch->ud, topic, key, klen, 0, cs->offset++);
    sp_batch_ack(batch, true);
    return SP_OK;
}

struct run {
    double seconds;             /* in the stages only */
    size_t alerts, rejects, batches;
    double input_bytes;
    struct count_sink sink;
};

/* The servers of a run: one, or the masters of a cluster. */
struct servers {
    struct sp_test_cluster c;
};

static long long redis_int(struct servers *sv, const char *cmd,
                           const char *field)
{
    long long sum = 0;
    for (int i = 0; i < sv->c.n; i++)
        sum += sp_test_redis_int(&sv->c.node[i], field, cmd);
    return sum;
}

/* CPU seconds the server has used (user + system). */
static double redis_cpu1(struct sp_test_redis *r)
{
    redisReply *rep = sp_test_redis_cmd(r, "INFO cpu");
    double v = 0;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        const char *u = strstr(rep->str, "used_cpu_user:");
        const char *s = strstr(rep->str, "used_cpu_sys:");
        if (u)
            v += atof(u + 14);
        if (s)
            v += atof(s + 13);
    }
    if (rep)
        freeReplyObject(rep);
    return v;
}

static double redis_cpu(struct servers *sv)
{
    double v = 0;
    for (int i = 0; i < sv->c.n; i++)
        v += redis_cpu1(&sv->c.node[i]);
    return v;
}

static void stop_servers(struct servers *sv)
{
    sp_test_cluster_stop(&sv->c);
}

/* One plain server (n = 1) or a cluster of n masters.  Returns 1 on
 * success, 0 when redis-server is missing, -1. */
static int start_servers(struct servers *sv, int n)
{
    if (n > 1)
        return sp_test_cluster_start(&sv->c, n);
    memset(sv, 0, sizeof(*sv));
    int rc = sp_test_redis_start(&sv->c.node[0]);
    sv->c.n = 1;
    if (rc != 1)
        stop_servers(sv);
    return rc;
}

static struct sp_config *make_config(int port)
{
    struct sp_config *cfg = sp_config_new();
    struct sp_error err = {0};
    char p[64];
    snprintf(p, sizeof(p), "redis.port=%d", port);
    if (sp_engine_declare(cfg, &err) || sp_config_set(cfg, p, &err) ||
        sp_config_set(cfg, "log.level=warn", &err) ||
        (getenv("BENCH_SET") && sp_config_set(cfg, getenv("BENCH_SET"), &err)) ||
        sp_config_validate(cfg, &err)) {
        fprintf(stderr, "bench_correlate: config: %s\n", err.msg);
        exit(1);
    }
    return cfg;
}

static void run_chain(struct run *rn, struct sp_config *cfg,
                      struct sp_metrics *m, const char *const *chain,
                      size_t n_stages, size_t n)
{
    memset(rn, 0, sizeof(*rn));
    rn->sink.sink.produce = count_produce;
    rn->sink.sink.ctx = &rn->sink;
    struct sp_env env = {.cfg = cfg, .metrics = m, .sink = &rn->sink.sink,
                         .instance = "bench", .topic_alerts = "alerts",
                         .topic_incidents = "incidents", .topic_dlq = "dlq"};
    struct sp_stage *st[4];
    struct sp_error err = {0};
    for (size_t i = 0; i < n_stages; i++) {
        const struct sp_stage_type *type = strcmp(chain[i], "correlate") == 0
                                               ? &sp_stage_correlate
                                               : sp_stage_type_find(chain[i]);
        st[i] = sp_stage_new(type, 0, &env);
        if (!st[i] || sp_stage_init(st[i], &err)) {
            fprintf(stderr, "bench_correlate: %s: %s\n", chain[i], err.msg);
            exit(1);
        }
    }
    struct sp_buf *bufs = calloc(BATCH, sizeof(*bufs));
    for (size_t i = 0; i < BATCH; i++)
        sp_buf_init(&bufs[i], 0);
    for (size_t start = 0; start < n; start += BATCH) {
        size_t k = SP_MIN((size_t)BATCH, n - start);
        struct sp_batch *b = sp_batch_new(k);
        b->seq = start / BATCH + 1;
        for (size_t i = 0; i < k; i++) {
            sp_buf_reset(&bufs[i]);
            make_alert(&bufs[i], start + i, n);
            struct sp_msg *msg = sp_batch_add(b);
            msg->topic = "bench.input";
            msg->payload = bufs[i].data;
            msg->len = bufs[i].len;
            rn->input_bytes += (double)bufs[i].len;
        }
        int64_t t0 = sp_now_us();
        for (size_t s = 0; s < n_stages; s++) {
            enum sp_err e;
            while ((e = sp_stage_process(st[s], b)) == SP_ERR_RETRY)
                sp_test_sleep_ms(10);
            if (e) {
                fprintf(stderr, "bench_correlate: %s failed: %s\n", chain[s],
                        sp_strerror(e));
                exit(1);
            }
        }
        rn->seconds += (double)(sp_now_us() - t0) / 1e6;
        for (size_t i = 0; i < b->n; i++) {
            rn->alerts += b->msgs[i].n_alerts;
            rn->rejects += b->msgs[i].n_rejects;
        }
        rn->batches++;
        sp_batch_free(b);
    }
    /* Let the correlate stage flush its acks (outbox). */
    for (size_t s = 0; s < n_stages; s++)
        if (st[s]->type->tick)
            st[s]->type->tick(st[s], sp_now_ms() + 3600000);
    for (size_t s = 0; s < n_stages; s++)
        sp_stage_free(st[s]);
    for (size_t i = 0; i < BATCH; i++)
        sp_buf_fini(&bufs[i]);
    free(bufs);
}

static double metric(struct sp_metrics *m, const char *series)
{
    struct sp_buf b;
    sp_buf_init(&b, (size_t)8 << 20);
    sp_metrics_render(m, &b);
    char pat[256];
    snprintf(pat, sizeof(pat), "\n%s ", series);
    const char *p = b.data ? strstr(b.data, pat) : NULL;
    double v = p ? atof(p + strlen(pat)) : 0;
    sp_buf_fini(&b);
    return v;
}

/* MEMORY USAGE of a sample of incidents (meta + alerts + why). */
static double sample_memory1(struct sp_test_redis *r, size_t *sampled,
                             double *total)
{
    redisContext *c = sp_test_redis_connect(r);
    if (!c)
        return 0;
    char cursor[32] = "0";
    for (int step = 0; step < 10000 && *sampled < 200; step++) {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH sp:{t:*}:i:* COUNT 1000",
                                       cursor);
        if (!rep || rep->type != REDIS_REPLY_ARRAY)
            break;
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements && *sampled < 200; i++) {
            const char *k = rep->element[1]->element[i]->str;
            const char *id = strstr(k, "}:i:");
            if (!id || strchr(id + 4, ':'))
                continue;
            redisReply *mi = redisCommand(c, "HEXISTS %s mi", k);
            bool merged = mi && mi->integer == 1;
            freeReplyObject(mi);
            if (merged)
                continue;
            const char *suffix[] = {"", ":al", ":why"};
            for (int s = 0; s < 3; s++) {
                redisReply *u = redisCommand(c, "MEMORY USAGE %s%s", k, suffix[s]);
                if (u && u->type == REDIS_REPLY_INTEGER)
                    *total += (double)u->integer;
                freeReplyObject(u);
            }
            (*sampled)++;
        }
        bool done = strcmp(cursor, "0") == 0;
        freeReplyObject(rep);
        if (done)
            break;
    }
    redisFree(c);
    return 0;
}

static double sample_memory(struct servers *sv, size_t *sampled)
{
    double total = 0;
    *sampled = 0;
    for (int i = 0; i < sv->c.n; i++) {
        size_t got = 0;
        sample_memory1(&sv->c.node[i], &got, &total);
        *sampled += got;
    }
    return *sampled ? total / (double)*sampled : 0;
}

/* Live incidents by number of alerts (merged ones left out). */
static long size_histogram(struct servers *sv)
{
    long hist[6] = {0};
    for (int si = 0; si < sv->c.n; si++) {
    redisContext *c = sp_test_redis_connect(&sv->c.node[si]);
    char cursor[32] = "0";
    for (int step = 0; c && step < 100000; step++) {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH sp:{t:*}:i:* COUNT 1000",
                                       cursor);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            const char *k = rep->element[1]->element[i]->str;
            const char *id = strstr(k, "}:i:");
            if (!id || strchr(id + 4, ':'))
                continue;
            redisReply *m = redisCommand(c, "HMGET %s n mi", k);
            if (m && m->type == REDIS_REPLY_ARRAY && !m->element[1]->str) {
                long nn = m->element[0]->str ? atol(m->element[0]->str) : 0;
                hist[nn <= 1 ? 0 : nn <= 4 ? 1 : nn <= 16 ? 2 : nn <= 64 ? 3
                     : nn < 150 ? 4 : 5]++;
            }
            freeReplyObject(m);
        }
        bool done = strcmp(cursor, "0") == 0;
        freeReplyObject(rep);
        if (done)
            break;
    }
    if (c)
        redisFree(c);
    }
    printf("%-34s 1: %ld, 2-4: %ld, 5-16: %ld, 17-64: %ld, 65-149: %ld, "
           "150 (full): %ld\n", "incident sizes (alerts)", hist[0], hist[1],
           hist[2], hist[3], hist[4], hist[5]);
    long live = 0;
    for (int i = 0; i < 6; i++)
        live += hist[i];
    return live;
}

/* CPU seconds this process has used (user + system, every thread). */
static double self_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One size: decode+publish, then decode+correlate+publish, on a fresh
 * redis-server.  Returns 0, or 1 when Redis could not be started. */
static int run_size(size_t n, int shards)
{
    static struct servers sv;
    int rc = start_servers(&sv, shards);
    struct sp_test_redis *rp = &sv.c.node[0];
    if (rc != 1) {
        printf("bench_correlate: skipped (%s)\n",
               rc == 0 ? "redis-server is not installed" : "redis-server would not start");
        return 1;
    }
    struct sp_config *cfg = make_config(rp->port);
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, stderr);

    const char *without[] = {"decode", "publish"};
    const char *with[] = {"decode", "correlate", "publish"};
    struct sp_metrics *m0 = sp_metrics_new("socpilot_");
    struct run a, b;
    double ucpu0 = self_cpu();
    run_chain(&a, cfg, m0, without, 2, n);
    double ucpu1 = self_cpu();

    long long mem0 = redis_int(&sv, "INFO memory", "used_memory:");
    struct sp_metrics *m1 = sp_metrics_new("socpilot_");
    double cpu0 = redis_cpu(&sv), ucpu2 = self_cpu();
    run_chain(&b, cfg, m1, with, 3, n);
    double cpu1 = redis_cpu(&sv), ucpu3 = self_cpu();
    long long mem1 = redis_int(&sv, "INFO memory", "used_memory:");

    double rt = metric(m1, "socpilot_correlate_redis_round_trips_total{stage=\"correlate.0\"}");
    double created = metric(m1, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"new\"}");
    double flooded = metric(m1, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"flood\"}");
    double merges = metric(m1, "socpilot_correlate_merges_total{stage=\"correlate.0\"}");
    double noisy = metric(m1, "socpilot_correlate_noisy_entities_detected_total{stage=\"correlate.0\"}");
    double cont = metric(m1, "socpilot_correlate_joins_total{stage=\"correlate.0\",how=\"continuation\"}");
    long long keys = redis_int(&sv, "DBSIZE", NULL);
    size_t sampled;
    double per_inc = sample_memory(&sv, &sampled);

    if (shards > 1)
        printf("bench_correlate: %zu Graph alerts, avg %.0f bytes, batches of "
               "%d, %d tenants, a Redis Cluster of %d masters on loopback (no "
               "persistence)\n", n, a.input_bytes / (double)n, BATCH,
               g_tenants, shards);
    else
        printf("bench_correlate: %zu Graph alerts, avg %.0f bytes, batches of "
               "%d, %d tenants, redis-server on loopback (no persistence)\n",
               n, a.input_bytes / (double)n, BATCH, g_tenants);
    printf("%-34s %9.0f alerts/s  (%zu alerts, %zu rejects)\n",
           "decode+publish", (double)a.alerts / a.seconds, a.alerts, a.rejects);
    printf("%-34s %9.0f alerts/s  (%zu alerts, %zu rejects)\n",
           "decode+correlate+publish", (double)b.alerts / b.seconds, b.alerts,
           b.rejects);
    double rate_with = (double)b.alerts / b.seconds, rate_without = (double)a.alerts / a.seconds;
    printf("%-34s %9.1f %%  (target >= 50 %%: %s; >= 20000 alerts/s: %s)\n",
           "with / without correlation", 100.0 * rate_with / rate_without,
           rate_with >= 0.5 * rate_without ? "met" : "NOT met",
           rate_with >= 20000 ? "met" : "NOT met");
    double corr_s = b.seconds - a.seconds;
    printf("%-34s %9.0f alerts/s  (%.1f us per alert)\n", "correlate stage alone (difference)",
           corr_s > 0 ? (double)b.alerts / corr_s : 0,
           corr_s > 0 ? corr_s * 1e6 / (double)b.alerts : 0);
    /* Busy near 100% of a core: Redis is the limit, and only less work
     * per alert (or more masters) makes correlation faster. */
    printf("%-34s %9.1f us per alert (server CPU, user + system; busy %.0f%% "
           "of a core over the run)\n", "redis CPU",
           (cpu1 - cpu0) * 1e6 / (double)b.alerts,
           b.seconds > 0 ? 100.0 * (cpu1 - cpu0) / b.seconds : 0);
    printf("%-34s %9.1f us per alert with correlation, %.1f without "
           "(this process, every thread)\n", "client CPU",
           (ucpu3 - ucpu2) * 1e6 / (double)b.alerts,
           (ucpu1 - ucpu0) * 1e6 / (double)a.alerts);
    printf("%-34s %9.2f per batch of %d (%.0f round trips, %zu batches)\n",
           "redis round trips", rt / (double)b.batches, BATCH, rt, b.batches);
    printf("%-34s %9.0f incidents opened (%.0f merges, %.0f continuations, "
           "%.0f alerts in flood incidents, %.0f noisy entities found), %zu "
           "snapshots published\n", "grouping", created, merges, cont,
           flooded, noisy, b.sink.incidents);
    double mh = metric(m1, "socpilot_correlate_snapshot_memo_hits_total{stage=\"correlate.0\"}");
    double mm = metric(m1, "socpilot_correlate_snapshot_memo_misses_total{stage=\"correlate.0\"}");
    printf("%-34s %9.0f %% of summaries and decisions taken from it (%.0f hits, "
           "%.0f parsed, %.1f MB held)\n", "snapshot memo",
           mh + mm > 0 ? 100.0 * mh / (mh + mm) : 0.0, mh, mm,
           metric(m1, "socpilot_correlate_snapshot_memo_bytes{stage=\"correlate.0\"}") / 1e6);
    long live = size_histogram(&sv);
    printf("%-34s %9.0f bytes per live incident (used_memory delta %.1f MB "
           "/ %ld live incidents, %lld keys)\n", "redis memory (INFO)",
           (double)(mem1 - mem0) / (double)(live ? live : 1),
           (double)(mem1 - mem0) / 1e6, live, keys);
    printf("%-34s %9.0f bytes per live incident (meta + alerts + why, "
           "MEMORY USAGE of %zu)\n", "redis memory (sampled)", per_inc, sampled);
    if (getenv("BENCH_VERBOSE")) {
        redisReply *cs = sp_test_redis_cmd(rp, "INFO commandstats");
        if (cs && cs->type == REDIS_REPLY_STRING)
            printf("%s\n", cs->str);
        if (cs)
            freeReplyObject(cs);
    }
    if (getenv("BENCH_HOLD")) {             /* inspect the server by hand */
        printf("redis-server on port %d; press enter\n", rp->port);
        fflush(stdout);
        (void)getchar();
    }
    sp_metrics_free(m0);
    sp_metrics_free(m1);
    sp_config_free(cfg);
    stop_servers(&sv);
    return 0;
}

/*
 * 10,000 alerts (about a day of a mid-size SOC) and 1,000,000 (100 days),
 * each against its own fresh redis-server; BENCH_QUICK=1 runs the first
 * only, BENCH_ALERTS=N exactly N.
 */
int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, stderr);
    const char *na = getenv("BENCH_ALERTS"), *quick = getenv("BENCH_QUICK"),
               *full = getenv("BENCH_FULL"), *sh = getenv("BENCH_SHARDS"),
               *te = getenv("BENCH_TENANTS");
    int shards = sh ? atoi(sh) : 1;
    if (shards < 1 || shards > MAX_SHARDS)
        shards = 1;
    if (te && atoi(te) >= 1 && atoi(te) <= 10000)
        g_tenants = atoi(te);
    if (na && atol(na) > 0) {
        run_size((size_t)atol(na), shards);
    } else if (full && strcmp(full, "1") == 0) {
        run_size(1000000, shards);
    } else if (run_size(10000, shards) == 0 && !(quick && strcmp(quick, "1") == 0)) {
        printf("\n");
        run_size(1000000, shards);
        /* Scaling out: the same traffic from 12 tenants, one server and
         * then a cluster of two masters (on the same cores here). */
        g_tenants = 12;
        printf("\n");
        if (run_size(20000, 1) == 0) {
            printf("\n");
            run_size(20000, 2);
        }
    }
    return 0;
}
