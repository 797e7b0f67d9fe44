/*
 * test_e2e.c - the pipeline end to end through a real Kafka-protocol
 * broker (librdkafka's mock cluster, in-process): 10,000 mixed messages
 * (Graph alerts and list pages, Sentinel rows, Event Hubs envelopes, ~5%
 * malformed of every kind) in; then
 *   - every valid alert is on the alerts topic exactly once, keyed by its
 *     id, with the right tenant, severity and canonical entity keys;
 *   - every malformed message is on the DLQ with the right reason, its
 *     original bytes and key, and its source partition/offset;
 *   - the group's committed offsets cover every input message.
 * Outputs are also written to build/e2e_alerts.jsonl for the schema check.
 * Then correlation through the same broker and a real redis-server: two
 * engines of one group change the same incidents at once, and the last
 * record of every incident on the (32-partition) incidents topic is its
 * latest version, where Redis says it landed.
 *
 * E2E_MESSAGES overrides the message count.
 */
#include <pthread.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "gen.h"
#include "json.h"
#include "kafka.h"
#include "kit.h"
#include "log.h"
#include "metrics.h"
#include "t.h"
#include "tests/tools/redis_test.h"

#define IN_TOPIC "e2e.input"
#define PARTS 32

static size_t n_msgs = 10000;
static struct sp_mock *mock;
static const char *brokers;
static struct kit_where *where;

static void *engine_thread(void *arg)
{
    struct sp_engine *eng = arg;
    enum sp_err *rc = malloc(sizeof(*rc));
    *rc = sp_engine_run(eng);
    return rc;
}

static struct sp_config *make_config(const char *group)
{
    char b[256], g[128];
    snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
    snprintf(g, sizeof(g), "kafka.group=%s", group);
    const char *sets[] = {
        b, g, "topics.input=" IN_TOPIC, "topics.alerts=e2e.alerts",
        "topics.dlq=e2e.dlq", "topics.incidents=e2e.incidents",
        "pipeline.stages=decode,publish", "http.enabled=false",
        "log.level=warn", "decode.max_bytes=128KiB",
        "kafka.producer.message.max.bytes=8000000",
        "kafka.consumer.fetch.message.max.bytes=8000000",
    };
    struct sp_cli_common co = {0};
    return sp_cli_config(&co, sets, SP_ARRAY_SIZE(sets));
}

static void produce_all(void)
{
    struct kit_producer kp;
    T_OK(kit_producer_open(&kp, brokers, n_msgs) == 0);
    struct gen_opts o;
    gen_opts_default(&o);
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    size_t bytes = 0;
    for (size_t i = 0; i < n_msgs; i++) {
        gen_make(&it, i, &o);
        bytes += it.buf.len;
        char key[32];
        snprintf(key, sizeof(key), "m%zu", i);
        T_OK(kit_produce(&kp, IN_TOPIC, i, key, it.buf.data, it.buf.len) == 0);
        rd_kafka_poll(kp.rk, 0);
    }
    rd_kafka_flush(kp.rk, 60000);
    T_EQ_INT(kp.acked, (long)n_msgs);
    printf("e2e: produced %zu messages, %.1f MB (%.1f MB per partition; the "
           "mock keeps ~5 MB)\n", n_msgs, bytes / 1e6, bytes / 1e6 / PARTS);
    where = kp.where;
    kp.where = NULL;
    kit_producer_close(&kp);
    sp_buf_fini(&it.buf);
}

struct expect_totals {
    size_t alerts;
    size_t rejects;
};

static struct expect_totals expected_totals(void)
{
    struct expect_totals t = {0, 0};
    struct gen_opts o;
    gen_opts_default(&o);
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    for (size_t i = 0; i < n_msgs; i++) {
        gen_make(&it, i, &o);
        if (it.reason)
            t.rejects++;
        else
            t.alerts += (size_t)it.n_ids;
    }
    sp_buf_fini(&it.buf);
    return t;
}

static bool has_entity_key(const struct sp_json *doc, const char *key)
{
    sp_json_foreach(sp_json_get(doc, "entities"), e)
    {
        const char *k = sp_json_str(e, "key");
        if (k && strcmp(k, key) == 0)
            return true;
    }
    return false;
}

static void test_pipeline_end_to_end(void)
{
    struct expect_totals want = expected_totals();
    printf("e2e: %zu messages -> expecting %zu alerts and %zu DLQ records\n",
           n_msgs, want.alerts, want.rejects);
    produce_all();

    struct sp_config *cfg = make_config("e2e-group");
    T_OK(cfg != NULL);
    if (!cfg)
        return;
    struct sp_error err = {0};
    struct sp_engine *eng = sp_engine_new(cfg, &err);
    T_OK(eng != NULL);
    if (!eng) {
        fprintf(stderr, "engine: %s\n", err.msg);
        sp_config_free(cfg);
        return;
    }
    pthread_t th;
    int64_t t0 = sp_now_ms();
    pthread_create(&th, NULL, engine_thread, eng);

    /* Read outputs until everything expected is there (or a deadline). */
    const char *topics[] = {"e2e.alerts", "e2e.dlq"};
    rd_kafka_t *rd = kit_reader(brokers, topics, 2);
    struct kit_table alerts, dlq;
    kit_table_init(&alerts, want.alerts + 16);
    kit_table_init(&dlq, want.rejects + 16);
    size_t seen_alerts = 0, seen_dlq = 0, bad_dlq_hdrs = 0;
    FILE *out = fopen("build/e2e_alerts.jsonl", "w");
    int64_t deadline = sp_now_ms() + 180000;
    while ((seen_alerts < want.alerts || seen_dlq < want.rejects) &&
           sp_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd, 100);
        if (!m)
            continue;
        if (!m->err) {
            const char *t = rd_kafka_topic_name(m->rkt);
            bool is_alert = strcmp(t, "e2e.alerts") == 0;
            struct kit_entry *e = kit_table_get(is_alert ? &alerts : &dlq,
                                                m->key ? m->key : "",
                                                m->key_len, true);
            if (e) {
                e->count++;
                free(e->value);
                e->value = malloc(m->len + 1);
                memcpy(e->value, m->payload, m->len);
                e->value[m->len] = '\0';
                e->value_len = m->len;
                if (!is_alert) {
                    char buf[64];
                    /* remember reason & source offset for the checks */
                    kit_header(m, "socpilot-source-offset", buf, sizeof(buf));
                    e->aux = atoll(buf);
                    /* The other provenance headers: the DLQ record must
                     * name the stage that refused it (the decode stage's
                     * instance, "decode.0") and the input topic
                     * and partition the message came from (the key m<i>
                     * says which message; where[i] where it landed).  The
                     * offset is checked with the rest below. */
                    char stage[64] = "", topic[64] = "", part[16] = "";
                    kit_header(m, "socpilot-error-stage", stage, sizeof(stage));
                    kit_header(m, "socpilot-source-topic", topic, sizeof(topic));
                    kit_header(m, "socpilot-source-partition", part, sizeof(part));
                    size_t idx = n_msgs;
                    char kbuf[32];
                    snprintf(kbuf, sizeof(kbuf), "%.*s", (int)m->key_len,
                             m->key ? (const char *)m->key : "");
                    if (kbuf[0] == 'm' && kbuf[1])
                        idx = (size_t)strtoull(kbuf + 1, NULL, 10);
                    if (idx >= n_msgs || strncmp(stage, "decode", 6) != 0 ||
                        strcmp(topic, IN_TOPIC) != 0 || part[0] == '\0' ||
                        atoi(part) != where[idx].partition) {
                        if (bad_dlq_hdrs++ < 5)
                            T_FAILF("DLQ record %.*s: stage \"%s\", topic "
                                    "\"%s\", partition \"%s\" (want decode.*, "
                                    IN_TOPIC ", %d)", (int)m->key_len,
                                    (const char *)m->key, stage, topic, part,
                                    idx < n_msgs ? (int)where[idx].partition
                                                 : -1);
                    }
                    char *r = malloc(64);
                    kit_header(m, "socpilot-error-reason", r, 64);
                    char *tmp = e->value;
                    /* stash "reason\0value": value first for byte compare */
                    size_t rl = strlen(r);
                    e->value = malloc(m->len + rl + 2);
                    memcpy(e->value, tmp, m->len);
                    e->value[m->len] = '\0';
                    memcpy(e->value + m->len + 1, r, rl + 1);
                    free(tmp);
                    free(r);
                }
            }
            if (is_alert) {
                seen_alerts++;
                if (out) {
                    fwrite(m->payload, 1, m->len, out);
                    fputc('\n', out);
                }
            } else {
                seen_dlq++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (out)
        fclose(out);
    int64_t elapsed = sp_now_ms() - t0;
    printf("e2e: %zu alerts, %zu DLQ records in %lld ms (%.0f msgs/s)\n",
           seen_alerts, seen_dlq, (long long)elapsed,
           elapsed ? n_msgs * 1000.0 / (double)elapsed : 0.0);
    rd_kafka_consumer_close(rd);
    rd_kafka_destroy(rd);

    sp_engine_stop(eng);
    void *rcp;
    pthread_join(th, &rcp);
    T_EQ_INT(*(enum sp_err *)rcp, SP_OK);
    free(rcp);
    struct sp_engine_stats stats;
    sp_engine_stats(eng, &stats);
    sp_engine_free(eng);
    sp_config_free(cfg);
    T_EQ_INT(stats.messages, n_msgs);

    /* Every expectation, message by message. */
    struct gen_opts o;
    gen_opts_default(&o);
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    struct sp_arena a;
    sp_arena_init(&a, 0);
    size_t bad_alerts = 0, bad_dlq = 0, dupes = 0, missing = 0;
    for (size_t i = 0; i < n_msgs; i++) {
        gen_make(&it, i, &o);
        if (it.reason) {
            char key[32];
            snprintf(key, sizeof(key), "m%zu", i);
            struct kit_entry *e = kit_table_get(&dlq, key, strlen(key), false);
            if (!e) {
                if (missing++ < 5)
                    T_FAILF("message %zu (%s) not on the DLQ", i, it.reason);
                continue;
            }
            const char *reason = e->value + e->value_len + 1;
            bool ok = e->count == 1 && e->value_len == it.buf.len &&
                      memcmp(e->value, it.buf.data, it.buf.len) == 0 &&
                      strcmp(reason, it.reason) == 0 &&
                      e->aux == where[i].offset;
            if (!ok && bad_dlq++ < 5)
                T_FAILF("DLQ record of message %zu: count %d, reason %s "
                        "(want %s), len %zu (want %zu), offset %lld (want %lld)",
                        i, e->count, reason, it.reason, e->value_len,
                        it.buf.len, (long long)e->aux,
                        (long long)where[i].offset);
            continue;
        }
        for (int k = 0; k < it.n_ids; k++) {
            const struct gen_expect *x = &it.exp[k];
            struct kit_entry *e = kit_table_get(&alerts, x->id, strlen(x->id), false);
            if (!e) {
                if (missing++ < 5)
                    T_FAILF("alert %s (message %zu) missing", x->id, i);
                continue;
            }
            if (e->count != 1)
                dupes++;
            sp_arena_reset(&a);
            struct sp_json *doc = sp_json_parse(&a, e->value, e->value_len, NULL, NULL);
            bool ok = doc && strcmp(sp_json_str(doc, "id") ? sp_json_str(doc, "id") : "", x->id) == 0 &&
                      sp_json_str(doc, "tenant") &&
                      strcmp(sp_json_str(doc, "tenant"), x->tenant) == 0 &&
                      sp_json_str(doc, "severity") &&
                      strcmp(sp_json_str(doc, "severity"), x->severity) == 0 &&
                      has_entity_key(doc, x->host_key) &&
                      has_entity_key(doc, x->account_key);
            if (!ok && bad_alerts++ < 5)
                T_FAILF("alert %s: fields differ from expectations (tenant %s, "
                        "severity %s, %s, %s): %.400s", x->id, x->tenant,
                        x->severity, x->host_key, x->account_key, e->value);
        }
    }
    sp_arena_fini(&a);
    sp_buf_fini(&it.buf);
    T_EQ_INT(missing, 0);
    T_EQ_INT(dupes, 0);
    T_EQ_INT(bad_alerts, 0);
    T_EQ_INT(bad_dlq, 0);
    T_EQ_INT(alerts.n, want.alerts);
    T_EQ_INT(dlq.n, want.rejects);
    kit_table_free(&alerts);
    kit_table_free(&dlq);

    long lag = 0;
    int behind = kit_committed_lag(brokers, "e2e-group", IN_TOPIC, PARTS, &lag);
    T_EQ_INT(behind, 0);
    T_EQ_INT(lag, 0);
    printf("e2e: committed offsets cover all %zu input messages\n", n_msgs);
}

/* ---- incidents through Kafka and Redis ----------------------------------- */

#define INC_IN "e2e.inc.input"
#define INC_OUT "e2e.incidents"
#define INC_PARTS 4
#define INC_MSGS 1500

struct landed {
    int32_t partition;
    int64_t offset;         /* of the last record of the key */
    long long version;      /* its version */
    long long top;          /* the highest version of the key */
    int records;
};

static struct sp_engine *inc_engine(int port, struct sp_config **cfgp)
{
    char b[256], r[64];
    snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
    snprintf(r, sizeof(r), "redis.port=%d", port);
    const char *sets[] = {
        b, r, "kafka.group=e2e-inc", "topics.input=" INC_IN,
        "topics.alerts=e2e.inc.alerts", "topics.dlq=e2e.inc.dlq",
        "topics.incidents=" INC_OUT, "redis.host=127.0.0.1",
        "pipeline.stages=decode,correlate,publish", "http.enabled=false",
        "log.level=error", "pipeline.batch_size=50",
        "correlate.outbox.interval=200ms", "correlate.window=7d",
    };
    struct sp_cli_common co = {0};
    struct sp_config *cfg = sp_cli_config(&co, sets, SP_ARRAY_SIZE(sets));
    if (!cfg)
        return NULL;
    struct sp_error err = {0};
    struct sp_engine *eng = sp_engine_new(cfg, &err);
    if (!eng) {
        fprintf(stderr, "engine: %s\n", err.msg);
        sp_config_free(cfg);
        return NULL;
    }
    *cfgp = cfg;
    return eng;
}

/* Entries left in the tenants' outboxes (-1 when Redis does not answer). */
static long long outbox_left(struct sp_test_redis *r)
{
    redisReply *k = sp_test_redis_cmd(r, "KEYS sp:*:out");
    if (!k || k->type != REDIS_REPLY_ARRAY) {
        if (k)
            freeReplyObject(k);
        return -1;
    }
    long long n = 0;
    for (size_t i = 0; i < k->elements; i++)
        n += sp_test_redis_int(r, NULL, "ZCARD %s", k->element[i]->str);
    freeReplyObject(k);
    return n;
}

/* Every record of the incidents topic, by key. */
static size_t read_incidents(struct kit_table *t)
{
    const char *topics[] = {INC_OUT};
    rd_kafka_t *rd = kit_reader(brokers, topics, 1);
    size_t n = 0;
    int64_t quiet = sp_now_ms() + 3000;
    while (sp_now_ms() < quiet) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd, 50);
        if (!m)
            continue;
        if (!m->err && m->key) {
            char v[32];
            long long version = kit_header(m, "version", v, sizeof(v))
                                    ? atoll(v) : -1;
            struct kit_entry *e = kit_table_get(t, m->key, m->key_len, true);
            struct landed *l = e ? (struct landed *)e->value : NULL;
            if (e && !l) {
                l = calloc(1, sizeof(*l));
                l->offset = -1;
                e->value = (char *)l;
            }
            if (l) {
                l->records++;
                l->top = SP_MAX(l->top, version);
                if (m->offset > l->offset) {
                    l->offset = m->offset;
                    l->partition = m->partition;
                    l->version = version;
                }
            }
            n++;
            quiet = sp_now_ms() + 1500;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rd);
    rd_kafka_destroy(rd);
    return n;
}

/*
 * Two engines of one group correlate the same stream (two partitions
 * each; alerts of one incident arrive on all four) against one Redis.
 * Once they are done and their outboxes empty, every incident's last
 * record on the topic carries its latest version (what a compacted topic
 * keeps), and Redis knows where it landed: the delivery reports' offsets
 * reach the outbox acks.
 */
static void test_incidents_through_kafka(void)
{
    struct sp_test_redis srv = {0};
    int rc = sp_test_redis_start(&srv);
    if (rc <= 0) {
        T_SKIP(rc == 0 ? "redis-server is not installed"
                       : "redis-server would not start");
        return;
    }
    T_OK(sp_mock_topic(mock, INC_IN, INC_PARTS) == SP_OK);
    struct kit_producer kp;
    T_OK(kit_producer_open(&kp, brokers, INC_MSGS) == 0);
    struct gen_opts o;
    gen_opts_default(&o);
    o.seed = 7;
    o.hosts = 12;               /* few hosts: incidents change often */
    o.bad_per_100 = 0;
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    for (size_t i = 0; i < INC_MSGS; i++) {
        gen_make(&it, i, &o);
        char key[32];
        snprintf(key, sizeof(key), "m%zu", i);
        T_OK(kit_produce(&kp, INC_IN, (int)(i % INC_PARTS), key, it.buf.data,
                         it.buf.len) == 0);
        rd_kafka_poll(kp.rk, 0);
    }
    rd_kafka_flush(kp.rk, 60000);
    T_EQ_INT(kp.acked, INC_MSGS);
    kit_producer_close(&kp);
    sp_buf_fini(&it.buf);

    struct sp_config *cfg[2] = {NULL, NULL};
    struct sp_engine *eng[2] = {NULL, NULL};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        eng[i] = inc_engine(srv.port, &cfg[i]);
        T_OK(eng[i] != NULL);
        if (!eng[i])
            goto out;
    }
    /* One after the other: the first holds the four partitions, then the
     * second joins and takes its share (a group of two joining at the
     * same instant could keep rebalancing on a loaded machine). */
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, engine_thread, eng[i]);
        int64_t until = sp_now_ms() + 30000;
        while (sp_now_ms() < until &&
               sp_kafka_assigned(sp_engine_kafka(eng[i])) == 0)
            usleep(50000);
    }
    /* Done: every input committed and the outboxes empty, for a while. */
    int64_t deadline = sp_now_ms() + 120000, calm = 0;
    while (sp_now_ms() < deadline) {
        long lag = 0;
        int behind = kit_committed_lag(brokers, "e2e-inc", INC_IN, INC_PARTS,
                                       &lag);
        if (behind == 0 && lag == 0 && outbox_left(&srv) == 0) {
            if (!calm)
                calm = sp_now_ms();
            else if (sp_now_ms() - calm > 1500)
                break;
        } else {
            calm = 0;
        }
        usleep(200000);
    }
    T_OK(calm != 0);
    uint64_t late = 0, again = 0;
    for (int i = 0; i < 2; i++) {
        struct sp_metrics *m = sp_engine_metrics(eng[i]);
        late += sp_counter_get(sp_metrics_counter(
            m, "incident_snapshots_out_of_order_total", NULL,
            "stage=\"correlate.0\""));
        again += sp_counter_get(sp_metrics_counter(
            m, "correlate_outbox_recovered_total", NULL,
            "stage=\"correlate.0\""));
    }
    for (int i = 0; i < 2; i++) {
        sp_engine_stop(eng[i]);
        void *rcp;
        pthread_join(th[i], &rcp);
        T_EQ_INT(*(enum sp_err *)rcp, SP_OK);
        free(rcp);
    }
    T_EQ_INT(outbox_left(&srv), 0);

    struct kit_table inc;
    kit_table_init(&inc, 4096);
    size_t records = read_incidents(&inc);
    size_t keys = 0, stale = 0, nowhere = 0, changed = 0;
    for (size_t i = 0; i < inc.cap; i++) {
        struct kit_entry *e = &inc.e[i];
        if (!e->key)
            continue;
        struct landed *l = (struct landed *)e->value;
        keys++;
        changed += l->top > 1;
        /* The incident's hash, whatever its tenant. */
        char pattern[160];
        snprintf(pattern, sizeof(pattern), "sp:*:i:%s", e->key);
        redisReply *k = sp_test_redis_cmd(&srv, "KEYS %s", pattern);
        long long v = -1, lp = -1, lo = -1, lv = -1, lm = -1;
        if (k && k->type == REDIS_REPLY_ARRAY && k->elements == 1) {
            redisReply *f = sp_test_redis_cmd(&srv, "HMGET %s v ld",
                                              k->element[0]->str);
            if (f && f->type == REDIS_REPLY_ARRAY && f->elements == 2) {
                if (f->element[0]->type == REDIS_REPLY_STRING)
                    v = atoll(f->element[0]->str);
                if (f->element[1]->type == REDIS_REPLY_STRING)
                    sscanf(f->element[1]->str, "%lld:%lld:%lld:%lld", &lp, &lo,
                           &lv, &lm);
            }
            if (f)
                freeReplyObject(f);
        }
        if (k)
            freeReplyObject(k);
        if (l->version != l->top || l->version != v) {
            if (stale++ < 5)
                T_FAILF("incident %s: last record v%lld of %d, highest v%lld, "
                        "Redis v%lld", e->key, l->version, l->records, l->top,
                        v);
        }
        if (lp != l->partition || lo != l->offset || lv != l->version ||
            lm != l->top) {
            if (nowhere++ < 5)
                T_FAILF("incident %s: landed at %d/%lld v%lld, Redis says "
                        "%lld/%lld v%lld", e->key, (int)l->partition,
                        (long long)l->offset, l->version, lp, lo, lv);
        }
        free(l);
        e->value = NULL;
    }
    printf("e2e: %zu incident records, %zu incidents (%zu changed after "
           "their first version); %llu landed after a newer version, %llu "
           "republished\n", records, keys, changed, (unsigned long long)late,
           (unsigned long long)again);
    T_OK(keys > 0);
    T_OK(changed > 0);
    T_EQ_INT(stale, 0);
    T_EQ_INT(nowhere, 0);
    kit_table_free(&inc);
out:
    for (int i = 0; i < 2; i++) {
        if (eng[i])
            sp_engine_free(eng[i]);
        sp_config_free(cfg[i]);
    }
    sp_test_redis_stop(&srv);
}

int main(void)
{
    t_prog = "e2e";
    const char *env = getenv("E2E_MESSAGES");
    if (env && atol(env) > 0)
        n_msgs = (size_t)atol(env);
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, stderr);
    struct sp_error err = {0};
    /* The mock keeps ~5 MB per partition: spread the outputs wider. */
    const char *topics[] = {IN_TOPIC, "e2e.dlq", "e2e.incidents"};
    mock = sp_mock_start(1, topics, SP_ARRAY_SIZE(topics), PARTS, &err);
    if (!mock || sp_mock_topic(mock, "e2e.alerts", PARTS) != SP_OK) {
        fprintf(stderr, "mock cluster: %s\n", err.msg);
        return 1;
    }
    brokers = sp_mock_bootstraps(mock);
    T_RUN(test_pipeline_end_to_end);
    T_RUN(test_incidents_through_kafka);
    free(where);
    sp_mock_stop(mock);
    return t_done();
}
