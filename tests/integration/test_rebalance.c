/*
 * test_rebalance.c - two engines in one consumer group (cooperative-sticky)
 * through the mock cluster: B joins while A is mid-stream (partitions
 * move from A to B), then A stops cleanly (its partitions move to B).
 * Nothing may be lost; duplicates from the handovers and the committed
 * offsets' lag are printed.  (librdkafka's mock cluster refuses offset
 * commits while the group rebalances -- "Group rebalance in progress" --
 * so how much is replayed after a handover depends on timing there; the
 * single-owner tests assert that committed offsets cover everything.)
 */
#include <pthread.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "gen.h"
#include "kafka.h"
#include "kit.h"
#include "log.h"
#include "t.h"

#define IN_TOPIC "rb.input"
#define PARTS 12

static const char *brokers;
static size_t n_msgs = 4000;

static void *engine_thread(void *arg)
{
    sp_engine_run(arg);
    return NULL;
}

/* slow: small batches, one in flight, so that B joins while A is still
 * working through the input. */
static struct sp_engine *start_engine(struct sp_config **cfgp, pthread_t *th,
                                      bool slow)
{
    char b[256];
    snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
    const char *sets[] = {
        b, "kafka.group=rb-group", "topics.input=" IN_TOPIC,
        "topics.alerts=rb.alerts", "topics.dlq=rb.dlq",
        "topics.incidents=rb.incidents", "pipeline.stages=decode,publish",
        "http.enabled=false", getenv("RB_LOG") ? getenv("RB_LOG") : "log.level=error",
        slow ? "pipeline.batch_size=5" : "pipeline.batch_size=50",
        slow ? "pipeline.max_inflight_batches=1" : "pipeline.max_inflight_batches=8",
        "decode.max_bytes=128KiB",
        "kafka.consumer.session.timeout.ms=6000",
        "kafka.consumer.heartbeat.interval.ms=300",
        getenv("RB_STRATEGY") ? getenv("RB_STRATEGY") : "kafka.consumer.partition.assignment.strategy=cooperative-sticky",
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
    pthread_create(th, NULL, engine_thread, eng);
    *cfgp = cfg;
    return eng;
}

static void stop_engine(struct sp_engine *eng, struct sp_config *cfg,
                        pthread_t th)
{
    sp_engine_stop(eng);
    pthread_join(th, NULL);
    sp_engine_free(eng);
    sp_config_free(cfg);
}

static void test_partitions_move_nothing_lost(void)
{
    struct gen_opts o;
    gen_opts_default(&o);
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    struct kit_producer kp;
    T_OK(kit_producer_open(&kp, brokers, 0) == 0);
    size_t want = 0;
    for (size_t i = 0; i < n_msgs; i++) {
        gen_make(&it, i, &o);
        char key[32];
        snprintf(key, sizeof(key), "m%zu", i);
        kit_produce(&kp, IN_TOPIC, i, key, it.buf.data, it.buf.len);
        want += it.reason ? 1 : (size_t)it.n_ids;
        rd_kafka_poll(kp.rk, 0);
    }
    kit_producer_close(&kp);

    const char *topics[] = {"rb.alerts", "rb.dlq"};
    rd_kafka_t *rd = kit_reader(brokers, topics, 2);
    struct kit_seen s;
    memset(&s, 0, sizeof(s));
    s.alerts_topic = "rb.alerts";
    kit_table_init(&s.alerts, want + 16);
    kit_table_init(&s.dlq, want + 16);

    struct sp_config *ca, *cb = NULL;
    pthread_t ta, tb;
    struct sp_engine *a = start_engine(&ca, &ta, true);
    T_OK(a != NULL);
    if (!a)
        return;
    int64_t deadline = sp_now_ms() + 60000;
    while (s.total_alerts + s.total_dlq < want / 10 && sp_now_ms() < deadline)
        kit_drain(rd, &s, 20);
    struct sp_engine *b = start_engine(&cb, &tb, false); /* rebalance 1 */
    T_OK(b != NULL);
    while (s.total_alerts + s.total_dlq < want * 3 / 5 && sp_now_ms() < deadline)
        kit_drain(rd, &s, 50);
    printf("rebalance: stopping A after %zu of %zu outputs\n", s.total_alerts + s.total_dlq, want);
    stop_engine(a, ca, ta);                            /* rebalance 2 */
    deadline = sp_now_ms() + 90000;
    while ((s.alerts.n + s.dlq.n) < want && sp_now_ms() < deadline)
        kit_drain(rd, &s, 100);
    if (b)
        stop_engine(b, cb, tb);
    kit_drain(rd, &s, 300);
    rd_kafka_consumer_close(rd);
    rd_kafka_destroy(rd);

    size_t missing, dupes;
    kit_outcome(&s, n_msgs, &o, &missing, &dupes);
    printf("rebalance: %zu missing, %zu duplicate output(s) across two "
           "partition handovers\n", missing, dupes);
    T_EQ_INT(missing, 0);
    long lag = 0;
    int behind = kit_committed_lag(brokers, "rb-group", IN_TOPIC, PARTS, &lag);
    printf("rebalance: committed offsets: %d partition(s) behind, %ld "
           "message(s) to replay\n", behind, lag);
    kit_table_free(&s.alerts);
    kit_table_free(&s.dlq);
    sp_buf_fini(&it.buf);
}

int main(void)
{
    t_prog = "rebalance";
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    struct sp_error err = {0};
    /* Outputs are ~2x the input: more partitions keep them under the
     * mock's ~5 MB-per-partition retention. */
    const char *topics[] = {IN_TOPIC, "rb.dlq", "rb.incidents"};
    struct sp_mock *mock = sp_mock_start(1, topics, 3, PARTS, &err);
    if (!mock || sp_mock_topic(mock, "rb.alerts", 4 * PARTS) != SP_OK) {
        fprintf(stderr, "mock cluster: %s\n", err.msg);
        return 1;
    }
    brokers = sp_mock_bootstraps(mock);
    T_RUN(test_partitions_move_nothing_lost);
    sp_mock_stop(mock);
    return t_done();
}
