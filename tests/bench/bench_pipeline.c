/*
 * bench_pipeline.c - the pipeline's throughput against its ceiling, in one
 * run, on the same messages:
 *
 *   normalize   decode + normalize + serialize, in memory (no Kafka)
 *   passthrough librdkafka consume -> produce the same bytes (keyed, so
 *               spread over partitions like the pipeline's keyed outputs)
 *               -> store offsets (no processing): the ceiling
 *   pipeline    the socpilot engine (decode, publish) end to end
 *
 * Kafka is librdkafka's mock cluster in a separate process (`socpilot
 * mock-kafka`), so the peak RSS reported for passthrough and pipeline
 * (each run in its own child process) is theirs alone.  The mock keeps
 * ~5 MB per partition, so the input topic has enough partitions to hold
 * the whole set.
 *
 * BENCH_MESSAGES (default 30000) sets the count.  Messages are keyed so
 * they spread evenly (NULL keys go to one partition per producer batch,
 * which can push a partition past the mock's retention).  Figures are printed,
 * never asserted.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../integration/gen.h"
#include "../integration/kit.h"
#include "cli.h"
#include "engine.h"
#include "kafka.h"
#include "log.h"
#include "normalize.h"

#define PARTS 128

static const char *brokers;
static size_t n_msgs = 30000;
static double total_bytes;

static void fill_input(const struct gen_opts *o)
{
    struct kit_producer kp;
    kit_producer_open(&kp, brokers, 0);
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    for (size_t i = 0; i < n_msgs; i++) {
        /* Only single Graph alerts: one alert per message, 2-6 KB. */
        gen_make(&it, i * 4, o);
        char key[32];
        snprintf(key, sizeof(key), "m%zu", i);
        kit_produce(&kp, "bench.input", i, key, it.buf.data, it.buf.len);
        total_bytes += (double)it.buf.len;
        rd_kafka_poll(kp.rk, 0);
    }
    kit_producer_close(&kp);
    sp_buf_fini(&it.buf);
}

static void bench_normalize(const struct gen_opts *o)
{
    size_t n = n_msgs < 20000 ? n_msgs : 20000;
    struct sp_buf *msgs = calloc(n, sizeof(*msgs));
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    double bytes = 0;
    for (size_t i = 0; i < n; i++) {
        gen_make(&it, i * 4, o);
        sp_buf_init(&msgs[i], 0);
        sp_buf_put(&msgs[i], it.buf.data, it.buf.len);
        bytes += (double)it.buf.len;
    }
    struct sp_normalize_opts opts;
    sp_normalize_opts_default(&opts);
    struct sp_buf out;
    sp_buf_init(&out, 0);
    size_t alerts = 0;
    int64_t t0 = sp_now_us();
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            struct sp_msg msg;
            memset(&msg, 0, sizeof(msg));
            sp_arena_init(&msg.arena, 0);
            msg.payload = msgs[i].data;
            msg.len = msgs[i].len;
            msg.topic = "bench";
            sp_normalize(&msg, &opts, "decode.0");
            for (size_t j = 0; j < msg.n_alerts; j++) {
                sp_buf_reset(&out);
                struct sp_jw w;
                sp_jw_init(&w, &out);
                sp_alert_write(msg.alerts[j], &w, true);
                alerts++;
            }
            sp_arena_fini(&msg.arena);
        }
    }
    double s = (double)(sp_now_us() - t0) / 1e6;
    printf("normalize+serialize  %8.0f alerts/s  %7.1f MB/s   (%zu alerts, "
           "avg %.1f KB, in memory)\n",
           (double)alerts / s, 3 * bytes / s / 1e6, alerts, bytes / (double)n / 1024);
    for (size_t i = 0; i < n; i++)
        sp_buf_fini(&msgs[i]);
    free(msgs);
    sp_buf_fini(&out);
}

/* ---- passthrough: the ceiling --------------------------------------------- */

static long pt_acked;

static void pt_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op)
{
    (void)rk;
    (void)op;
    if (!m->err)
        pt_acked++;
}

static double run_passthrough(void)
{
    char errstr[256];
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(pc, "enable.idempotence", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(pc, "linger.ms", "5", errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(pc, pt_dr);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    rd_kafka_conf_set(cc, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(cc, "group.id", "bench-passthrough", errstr, sizeof(errstr));
    rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_conf_set(cc, "enable.auto.offset.store", "false", errstr, sizeof(errstr));
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof(errstr));
    rd_kafka_poll_set_consumer(cons);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, "bench.input", RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(cons);
    rd_kafka_message_t *batch[500];
    size_t consumed = 0;
    int64_t t0 = 0;
    int64_t deadline = sp_now_ms() + 300000;
    int64_t last_progress = sp_now_ms();
    while ((size_t)pt_acked < n_msgs && sp_now_ms() < deadline &&
           sp_now_ms() - last_progress < 15000) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 20, batch, 500);
        if (n > 0)
            last_progress = sp_now_ms();
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (!m->err) {
                if (!t0)
                    t0 = sp_now_us();
                /* Keyed like the pipeline's outputs (which are keyed by
                 * alert id), so both spread over the same partitions. */
                while (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("bench.passthrough"),
                                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                         RD_KAFKA_V_KEY(m->key, m->key_len),
                                         RD_KAFKA_V_VALUE(m->payload, m->len),
                                         RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    rd_kafka_poll(prod, 10);
                rd_kafka_offset_store(m->rkt, m->partition, m->offset);
                consumed++;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(prod, 0);
    }
    rd_kafka_flush(prod, 30000);
    if ((size_t)pt_acked < n_msgs)
        fprintf(stderr, "bench: passthrough saw only %zu of %zu messages (the "
                "mock dropped old data?)\n", consumed, n_msgs);
    double s = (double)(sp_now_us() - t0) / 1e6;
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    rd_kafka_destroy(prod);
    return (double)pt_acked / s;
}

/* ---- the engine ------------------------------------------------------------- */

static void *engine_main(void *arg)
{
    sp_engine_run(arg);
    return NULL;
}

static bool engine_raw = true;

static double run_engine(void)
{
    char b[256];
    snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
    const char *sets[] = {
        b, engine_raw ? "publish.include_raw=true" : "publish.include_raw=false",
        engine_raw ? "kafka.group=bench-pipeline" : "kafka.group=bench-pipeline-noraw",
        "topics.input=bench.input",
        "topics.alerts=bench.alerts", "topics.dlq=bench.dlq",
        "topics.incidents=bench.incidents", "pipeline.stages=decode,publish",
        "http.enabled=false", "log.level=error", "pipeline.batch_size=1000",
        "pipeline.max_inflight_batches=16",
    };
    struct sp_cli_common co = {0};
    struct sp_config *cfg = sp_cli_config(&co, sets, SP_ARRAY_SIZE(sets));
    if (!cfg)
        return 0;
    struct sp_error err = {0};
    struct sp_engine *eng = sp_engine_new(cfg, &err);
    if (!eng) {
        fprintf(stderr, "engine: %s\n", err.msg);
        return 0;
    }
    pthread_t th;
    pthread_create(&th, NULL, engine_main, eng);
    /* From the first consumed message to the last stored offset, sampled
     * every 5 ms (the stats are plain counters: a benchmark may read them
     * racily). */
    int64_t t_first = 0, t_done = 0;
    struct sp_engine_stats st;
    int64_t deadline = sp_now_ms() + 300000;
    uint64_t last_seen = 0;
    int64_t last_progress = sp_now_ms();
    while (sp_now_ms() < deadline && sp_now_ms() - last_progress < 15000) {
        usleep(5000);
        sp_engine_stats(eng, &st);
        if (st.committed != last_seen) {
            last_seen = st.committed;
            last_progress = sp_now_ms();
        }
        if (st.messages && !t_first)
            t_first = sp_now_us();
        if (st.committed >= n_msgs) {
            t_done = sp_now_us();
            break;
        }
    }
    sp_engine_stop(eng);
    pthread_join(th, NULL);
    sp_engine_free(eng);
    sp_config_free(cfg);
    if (!t_first || !t_done)
        return 0;
    return (double)n_msgs / ((double)(t_done - t_first) / 1e6);
}

/* Runs fn in a child; returns its result and peak RSS (KiB). */
static double in_child(double (*fn)(void), long *rss_kb)
{
    int fds[2];
    if (pipe(fds))
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        double r = fn();
        if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    double r = 0;
    if (read(fds[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
        r = 0;
    close(fds[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    *rss_kb = ru.ru_maxrss;
    return r;
}

int main(void)
{
    const char *env = getenv("BENCH_MESSAGES");
    if (env && atol(env) > 0)
        n_msgs = (size_t)atol(env);
    setvbuf(stdout, NULL, _IOLBF, 0);
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    const char *bin = getenv("SOCPILOT_BIN") ? getenv("SOCPILOT_BIN")
                                             : "build/socpilot";
    int fds[2];
    if (pipe(fds))
        return 1;
    pid_t mock = fork();
    if (mock == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        char parts[16];
        snprintf(parts, sizeof(parts), "%d", PARTS);
        execl(bin, bin, "mock-kafka", "--topics",
              "bench.input,bench.passthrough,bench.alerts,bench.dlq,bench.incidents",
              "--partitions", parts, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[256] = "";
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof(line), f) || strncmp(line, "bootstrap.servers=", 18)) {
        fprintf(stderr, "bench: mock-kafka did not start\n");
        return 1;
    }
    line[strcspn(line, "\n")] = '\0';
    brokers = line + 18;

    struct gen_opts o;
    gen_opts_default(&o);
    o.bad_per_100 = 0;
    printf("== pipeline benchmark: %zu Graph alerts (2-6 KB), mock cluster in "
           "its own process, %d partitions\n", n_msgs, PARTS);
    bench_normalize(&o);
    fill_input(&o);
    long rss_pt = 0, rss_eng = 0, rss_noraw = 0;
    double pt = in_child(run_passthrough, &rss_pt);
    double eng = in_child(run_engine, &rss_eng);
    engine_raw = false;
    double noraw = in_child(run_engine, &rss_noraw);
    double mb = total_bytes / (double)n_msgs;
    printf("passthrough          %8.0f msgs/s   %7.1f MB/s   peak RSS %ld MiB "
           "(consume -> produce, no processing)\n",
           pt, pt * mb / 1e6, rss_pt / 1024);
    printf("pipeline end-to-end  %8.0f msgs/s   %7.1f MB/s   peak RSS %ld MiB "
           "(decode, publish; offsets stored after acks)\n",
           eng, eng * mb / 1e6, rss_eng / 1024);
    printf("pipeline, raw by ref  %8.0f msgs/s   %7.1f MB/s   peak RSS %ld MiB "
           "(publish.include_raw=false: the output names topic/partition/offset)\n",
           noraw, noraw * mb / 1e6, rss_noraw / 1024);
    if (pt > 0)
        printf("pipeline / passthrough = %.0f%% (raw embedded), %.0f%% (raw by "
               "reference)  (target >= 50%%)\n", 100 * eng / pt, 100 * noraw / pt);
    kill(mock, SIGTERM);
    waitpid(mock, NULL, 0);
    return 0;
}
