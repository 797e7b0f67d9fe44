/*
 * test_crash.c - at-least-once across a crash, and a clean SIGTERM.
 *
 * The test hosts the mock cluster (a real Kafka-protocol broker on a
 * loopback port) and runs the real `socpilot run` binary as a child:
 *   1. produce N messages; start socpilot; once part of the output is
 *      there, SIGKILL it mid-stream;
 *   2. start it again (same group): it resumes from the committed
 *      offsets; wait until every expected alert and DLQ record is there;
 *   3. SIGTERM it: it must drain, commit and exit 0 in time;
 *   4. assert nothing is missing (duplicates are allowed by at-least-once:
 *      counted and reported) and committed offsets cover all input.
 *
 * SOCPILOT_BIN points at the binary (default build/socpilot).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gen.h"
#include "kafka.h"
#include "kit.h"
#include "log.h"
#include "t.h"

#define IN_TOPIC "crash.input"
#define PARTS 16

static const char *bin = "build/socpilot";
static const char *brokers;
static size_t n_msgs = 4000;

/* slow: small batches, one in flight, so a kill lands mid-stream. */
static pid_t start_socpilot(bool slow)
{
    char b[256];
    snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "run", "-s", b, "-s", "kafka.group=crash-group",
              "-s", "topics.input=" IN_TOPIC, "-s", "topics.alerts=crash.alerts",
              "-s", "topics.dlq=crash.dlq", "-s", "topics.incidents=crash.incidents",
              "-s", "pipeline.stages=decode,publish", "-s", "http.enabled=false",
              "-s", "log.level=error",
              "-s", slow ? "pipeline.batch_size=10" : "pipeline.batch_size=200",
              "-s", slow ? "pipeline.max_inflight_batches=1"
                         : "pipeline.max_inflight_batches=8",
              "-s", "pipeline.shutdown_timeout=20s",
              "-s", "decode.max_bytes=128KiB",
              "-s", "kafka.consumer.auto.commit.interval.ms=200",
              /* the killed member must leave the group quickly */
              "-s", "kafka.consumer.session.timeout.ms=6000",
              "-s", "kafka.consumer.heartbeat.interval.ms=500",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t until = sp_now_ms() + timeout_ms;
    int status;
    while (sp_now_ms() < until) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void test_kill_restart_nothing_missing(void)
{
    if (access(bin, X_OK) != 0)
        T_SKIP("socpilot binary not built");
    /* Expectations. */
    struct gen_opts o;
    gen_opts_default(&o);
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    struct kit_producer kp;
    T_OK(kit_producer_open(&kp, brokers, 0) == 0);
    size_t want_alerts = 0, want_dlq = 0;
    for (size_t i = 0; i < n_msgs; i++) {
        gen_make(&it, i, &o);
        char key[32];
        snprintf(key, sizeof(key), "m%zu", i);
        kit_produce(&kp, IN_TOPIC, i, key, it.buf.data, it.buf.len);
        if (it.reason)
            want_dlq++;
        else
            want_alerts += (size_t)it.n_ids;
        rd_kafka_poll(kp.rk, 0);
    }
    kit_producer_close(&kp);

    const char *topics[] = {"crash.alerts", "crash.dlq"};
    rd_kafka_t *rd = kit_reader(brokers, topics, 2);
    struct kit_seen c;
    memset(&c, 0, sizeof(c));
    c.alerts_topic = "crash.alerts";
    kit_table_init(&c.alerts, want_alerts + 16);
    kit_table_init(&c.dlq, want_dlq + 16);

    /* 1. first run, killed once ~30% of the alerts are out */
    pid_t pid = start_socpilot(true);
    int64_t deadline = sp_now_ms() + 60000;
    while (c.total_alerts < want_alerts / 10 && sp_now_ms() < deadline)
        kit_drain(rd, &c, 20);
    T_OK(c.total_alerts >= want_alerts / 10);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    kit_drain(rd, &c, 300);
    size_t at_kill = c.total_alerts;
    printf("crash: killed socpilot after %zu of %zu alerts\n", at_kill, want_alerts);
    T_OK(at_kill < want_alerts);   /* really mid-stream */

    /* 2. restart; wait for completeness */
    pid = start_socpilot(false);
    deadline = sp_now_ms() + 120000;
    while ((c.alerts.n < want_alerts || c.dlq.n < want_dlq) &&
           sp_now_ms() < deadline)
        kit_drain(rd, &c, 200);

    /* 3. clean stop: drain, commit, exit 0 */
    int64_t t_term = sp_now_ms();
    kill(pid, SIGTERM);
    int rc = wait_exit(pid, 30000);
    T_EQ_INT(rc, 0);
    printf("crash: SIGTERM -> exit %d in %lld ms\n", rc,
           (long long)(sp_now_ms() - t_term));
    kit_drain(rd, &c, 500);
    rd_kafka_consumer_close(rd);
    rd_kafka_destroy(rd);

    /* 4. nothing missing */
    size_t missing, dupes;
    kit_outcome(&c, n_msgs, &o, &missing, &dupes);
    printf("crash: %zu missing, %zu duplicate output(s) from the replay "
           "(allowed by at-least-once)\n", missing, dupes);
    T_EQ_INT(missing, 0);
    long lag = 0;
    T_EQ_INT(kit_committed_lag(brokers, "crash-group", IN_TOPIC, PARTS, &lag), 0);
    T_EQ_INT(lag, 0);
    kit_table_free(&c.alerts);
    kit_table_free(&c.dlq);
    sp_buf_fini(&it.buf);
}

int main(void)
{
    t_prog = "crash";
    const char *b = getenv("SOCPILOT_BIN");
    if (b && *b)
        bin = b;
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, stderr);
    struct sp_error err = {0};
    const char *topics[] = {IN_TOPIC, "crash.dlq", "crash.incidents"};
    struct sp_mock *mock = sp_mock_start(1, topics, 3, PARTS, &err);
    if (!mock || sp_mock_topic(mock, "crash.alerts", 4 * PARTS) != SP_OK) {
        fprintf(stderr, "mock cluster: %s\n", err.msg);
        return 1;
    }
    brokers = sp_mock_bootstraps(mock);
    T_RUN(test_kill_restart_nothing_missing);
    sp_mock_stop(mock);
    return t_done();
}
