/*
 * engine.c - the pipeline loop.
 *
 *   poll micro-batch ──► stage chain ──► outputs produced ──► in-flight FIFO
 *                                                            │ delivery reports
 *   store offsets ◄── head batch fully acknowledged ◄────────┘
 *
 * At-least-once: a message's offset is stored only when every output of
 * its batch (and of every earlier batch) is acknowledged, so a crash
 * replays at most the unacknowledged tail.  Batches complete in FIFO
 * order, which keeps stored offsets monotonic per partition.
 *
 * Backpressure: at most pipeline.max_inflight_batches wait for
 * acknowledgements; past that, and while a stage asks to retry (Redis
 * away...), all assigned partitions are paused and the loop only serves
 * delivery reports, timers and rebalances.  Memory is bounded by
 * max_inflight_batches x batch_size messages.
 *
 * Rebalances: on revoke the engine first waits (bounded) for in-flight
 * outputs, stores what completed, and marks messages of the revoked
 * partitions that are still in flight as dropped (never stored: the new
 * owner processes them again); the connector then commits synchronously
 * and unassigns.
 *
 * Shutdown (sp_engine_stop from a signal handler): stop consuming, finish
 * the batch in hand, flush, store, commit, close -- bounded by
 * pipeline.shutdown_timeout.
 *
 * Everything here runs on the engine thread except sp_engine_stop (a
 * flag) and the readiness callback (reads a snapshot under a mutex).
 */
#include "engine.h"

#include "analyze.h"
#include "http.h"
#include "log.h"
#include "redis_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECOMP "engine"

const struct sp_cfg_key sp_engine_keys[] = {
    {"pipeline.stages", SP_CFG_LIST, "decode,scripts,correlate,analyze,publish", 0, 0,
     "Stage chain, in order (decode first, publish last); correlate needs "
     "Redis (redis.*)", 0, NULL},
    {"pipeline.batch_size", SP_CFG_INT, "500", 1, 100000,
     "Messages per micro-batch at most", 0, NULL},
    {"pipeline.batch_wait", SP_CFG_DURATION, "50ms", 1, 60000,
     "How long to wait for a micro-batch to fill", 0, NULL},
    {"pipeline.max_inflight_batches", SP_CFG_INT, "8", 1, 1024,
     "Batches waiting for output acknowledgements before consumption pauses",
     0, NULL},
    {"pipeline.pause_after", SP_CFG_DURATION, "500ms", 0, 600000,
     "Pause the assigned partitions when the in-flight limit stays reached "
     "this long (until then the loop just stops taking messages; pausing "
     "drops librdkafka's prefetched data, so brief stalls should not)", 0,
     NULL},
    {"pipeline.ready_delivery_max", SP_CFG_DURATION, "60s", 0, 86400000,
     "/readyz says not ready while the oldest batch has waited longer than "
     "this for its outputs to be acknowledged (brokers refusing or not "
     "answering the producer); 0: never", 0, NULL},
    {"pipeline.shutdown_timeout", SP_CFG_DURATION, "30s", 0, 3600000,
     "On SIGTERM/SIGINT: time to drain, flush and commit before exiting", 0,
     NULL},
    {"pipeline.revoke_timeout", SP_CFG_DURATION, "10s", 0, 600000,
     "On partition revocation: time to wait for in-flight outputs", 0, NULL},
    {"pipeline.retry_backoff_max", SP_CFG_DURATION, "5s", 10, 600000,
     "Longest wait between retries of a stage that failed transiently", 0,
     NULL},
    {"pipeline.instance", SP_CFG_STR, "socpilot", 0, 0,
     "Instance name in logs and metrics", 0, NULL},
    {"topics.input", SP_CFG_LIST, "socpilot.input", 0, 0,
     "Input topics (Sentinel / Defender alerts)", 0, NULL},
    {"topics.alerts", SP_CFG_STR, "socpilot.alerts", 0, 0,
     "Output topic for normalized alerts (key = alert id)", 0, NULL},
    {"topics.incidents", SP_CFG_STR, "socpilot.incidents", 0, 0,
     "Output topic for incident snapshots (key = incident id)", 0, NULL},
    {"topics.dlq", SP_CFG_STR, "socpilot.dlq", 0, 0,
     "Dead-letter topic: original bytes and key, reason in headers", 0, NULL},
    {"log.level", SP_CFG_ENUM, "info", 0, 0, "Log level", 0,
     "error|warn|info|debug"},
    {"log.format", SP_CFG_ENUM, "text", 0, 0,
     "Log line format: key=value text or JSON", 0, "text|json"},
    {"http.enabled", SP_CFG_BOOL, "true", 0, 0,
     "Serve /metrics, /healthz and /readyz", 0, NULL},
    {"http.listen", SP_CFG_STR, "127.0.0.1", 0, 0,
     "Address the HTTP endpoint binds to", 0, NULL},
    {"http.port", SP_CFG_INT, "9464", 0, 65535,
     "HTTP port (0 = any free port)", 0, NULL},
    {"redis.embedded", SP_CFG_BOOL, "false", 0, 0,
     "Start a private redis-server (Debian package) on a unix socket in a "
     "private 0700 directory and use it, no persistence (the demo); "
     "redis.host/port/unix_socket are then ignored, redis.user/password "
     "are what it asks for",
     0, NULL},
};
const size_t sp_engine_n_keys = SP_ARRAY_SIZE(sp_engine_keys);

struct sp_engine {
    struct sp_config *cfg;
    struct sp_metrics *metrics;
    struct sp_http *http;
    struct sp_redis_server redis;       /* redis.embedded */
    struct sp_kafka *kafka;
    struct sp_env env;
    struct sp_stage **stages;
    size_t n_stages;

    /* In-flight FIFO of batches whose outputs are being acknowledged. */
    struct sp_batch *head, *tail;
    size_t n_inflight;
    /* The batch a stage asked to retry (at most one: consumption pauses). */
    struct sp_batch *stuck;
    int64_t retry_at_ms;
    int64_t backoff_ms;
    uint64_t seq;
    bool failed;                        /* an output could not be delivered */

    size_t batch_size;
    int batch_wait_ms;
    size_t max_inflight;
    int64_t shutdown_timeout_ms;
    int64_t revoke_timeout_ms;
    int64_t backoff_max_ms;
    int64_t pause_after_ms;
    int64_t ready_delivery_max_ms;
    int64_t full_since_ms;              /* 0 = not at the in-flight limit */
    rd_kafka_message_t **rkms;
    rd_kafka_message_t **held;          /* taken while paused (see
                                           serve_paused): the next batch's
                                           first messages */
    size_t n_held;

    volatile sig_atomic_t stop;
    bool store_blocked;                 /* a failed batch was popped: no
                                           later one is ever stored */
    int64_t last_tick_ms;

    /* Readiness snapshot for the HTTP thread. */
    pthread_mutex_t ready_lock;
    bool ready;
    char ready_reason[192];

    struct sp_engine_stats stats;
    struct sp_counter *c_messages, *c_batches, *c_committed, *c_retries,
        *c_dropped_revoked;
    struct sp_gauge *g_inflight, *g_paused;
    struct sp_hist *h_batch_e2e;
};

/* ---- declaration -------------------------------------------------------- */

enum sp_err sp_engine_declare(struct sp_config *cfg, struct sp_error *err)
{
    enum sp_err e = sp_config_declare(cfg, sp_engine_keys, sp_engine_n_keys, err);
    if (e)
        return e;
    e = sp_config_declare(cfg, sp_kafka_keys, sp_kafka_n_keys, err);
    if (e)
        return e;
    /* analysis.* and llm.*: read by the analyze stage and its workers. */
    e = sp_analyze_declare(cfg, err);
    if (e)
        return e;
    size_t n;
    const struct sp_stage_type *const *types = sp_stage_types(&n);
    for (size_t i = 0; i < n; i++) {
        if (types[i]->n_keys) {
            e = sp_config_declare(cfg, types[i]->keys, types[i]->n_keys, err);
            if (e)
                return e;
        }
    }
    return SP_OK;
}

/* ---- readiness ---------------------------------------------------------- */

static bool ready_cb(void *ud, char *reason, size_t n)
{
    struct sp_engine *eng = ud;
    pthread_mutex_lock(&eng->ready_lock);
    bool ok = eng->ready;
    if (!ok)
        snprintf(reason, n, "%s", eng->ready_reason);
    pthread_mutex_unlock(&eng->ready_lock);
    return ok;
}

bool sp_engine_ready(struct sp_engine *eng, char *reason, size_t n)
{
    return ready_cb(eng, reason, n);
}

static void update_readiness(struct sp_engine *eng)
{
    char reason[192] = "";
    bool ok = true;
    for (size_t i = 0; i < eng->n_stages && ok; i++) {
        struct sp_stage *st = eng->stages[i];
        if (st->type->ready) {
            char r[128] = "";
            if (!st->type->ready(st, r, sizeof(r))) {
                ok = false;
                snprintf(reason, sizeof(reason), "%s: %s", st->name, r);
            }
        }
    }
    if (ok && eng->kafka &&
        !sp_kafka_reachable(eng->kafka, sp_now_ms(), reason, sizeof(reason)))
        ok = false;
    /* The consumer may be fine while the producer's outputs are not
     * acknowledged (a topic's leader gone, not enough replicas, a full
     * producer queue): the oldest batch in flight shows it. */
    int64_t waited_ms = eng->head ? (sp_now_us() - eng->head->inflight_us) / 1000
                                  : 0;
    if (ok && eng->ready_delivery_max_ms > 0 &&
        waited_ms > eng->ready_delivery_max_ms) {
        ok = false;
        snprintf(reason, sizeof(reason), "kafka: the oldest batch's outputs "
                 "unacknowledged for %llds", (long long)(waited_ms / 1000));
    }
    if (ok && eng->stuck) {
        ok = false;
        snprintf(reason, sizeof(reason), "retrying a batch after a "
                                         "transient stage failure");
    }
    if (ok && eng->stop) {
        ok = false;
        snprintf(reason, sizeof(reason), "shutting down");
    }
    pthread_mutex_lock(&eng->ready_lock);
    eng->ready = ok;
    snprintf(eng->ready_reason, sizeof(eng->ready_reason), "%s", reason);
    pthread_mutex_unlock(&eng->ready_lock);
}

/* ---- batches ------------------------------------------------------------ */

static void batch_release(struct sp_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++)
        if (batch->msgs[i].opaque)
            rd_kafka_message_destroy(batch->msgs[i].opaque);
    sp_batch_free(batch);
}

/* Stores the offsets of a completed batch: the last offset per
 * partition.  Messages of one partition are in offset order, so walking
 * the batch backwards the first message seen for a partition is its
 * last.  Topic names come from librdkafka's topic handles: one pointer
 * per topic, so pointers compare. */
static void batch_store(struct sp_engine *eng, struct sp_batch *batch)
{
    struct seen {
        const char *topic;
        int32_t partition;
    };
    /* One slot per message at most: a batch can span any number of
     * partitions, and a partition missed here would be stored again
     * with an older offset. */
    struct seen *seen = malloc(batch->n * sizeof(*seen) + 1);
    size_t n_seen = 0;
    for (size_t i = batch->n; i-- > 0;) {
        struct sp_msg *msg = &batch->msgs[i];
        if (msg->dropped)
            continue;
        eng->stats.committed++;
        bool known = false;
        for (size_t j = 0; seen && j < n_seen && !known; j++)
            known = seen[j].partition == msg->partition &&
                    seen[j].topic == msg->topic;
        if (known)
            continue;
        if (!seen && i + 1 < batch->n) {
            /* Out of memory: find out the slow way whether a later
             * message of this partition was already stored. */
            for (size_t j = i + 1; j < batch->n && !known; j++)
                known = !batch->msgs[j].dropped &&
                        batch->msgs[j].partition == msg->partition &&
                        batch->msgs[j].topic == msg->topic;
            if (known)
                continue;
        }
        sp_kafka_store(eng->kafka, msg->topic, msg->partition, msg->offset);
        if (seen)
            seen[n_seen++] = (struct seen){msg->topic, msg->partition};
    }
    free(seen);
    sp_counter_add(eng->c_committed, batch->n);
}

/* Pops every head batch whose outputs are all settled. */
static void complete_batches(struct sp_engine *eng)
{
    while (eng->head && eng->head->pending == 0) {
        struct sp_batch *batch = eng->head;
        eng->head = batch->next;
        if (!eng->head)
            eng->tail = NULL;
        eng->n_inflight--;
        if (batch->failed || batch->abandoned) {
            /* Something could not be delivered even to the DLQ, or a
             * stage gave up on the batch: never commit past it.  Stop; a
             * restart replays from here. */
            if (batch->failed)
                sp_log_error(ECOMP, "batch %llu: %lld output(s) "
                             "undeliverable; stopping without committing it",
                             (unsigned long long)batch->seq,
                             (long long)batch->failed);
            eng->failed = true;
            eng->stop = 1;
            /* Later batches must not be stored either, those in flight
             * now and any taken before the loop sees stop: storing one
             * would commit past the failed messages, never replayed. */
            eng->store_blocked = true;
            for (struct sp_batch *b = eng->head; b; b = b->next)
                for (size_t i = 0; i < b->n; i++)
                    b->msgs[i].dropped = true;
        } else if (!eng->store_blocked) {
            batch_store(eng, batch);
        }
        sp_hist_observe(eng->h_batch_e2e,
                        (double)(sp_now_us() - batch->started_us) / 1e6);
        batch_release(batch);
    }
    sp_gauge_set(eng->g_inflight, (double)eng->n_inflight);
}

static void inflight_push(struct sp_engine *eng, struct sp_batch *batch)
{
    batch->next = NULL;
    batch->inflight_us = sp_now_us();
    if (eng->tail)
        eng->tail->next = batch;
    else
        eng->head = batch;
    eng->tail = batch;
    eng->n_inflight++;
    sp_gauge_set(eng->g_inflight, (double)eng->n_inflight);
}

/*
 * A batch given up on after a stage error: never stored, and the engine
 * stops (a restart replays it).  Outputs it produced before the error
 * still point at it and acknowledge it when their reports come, so it is
 * freed only once they are settled: it waits at the tail of the in-flight
 * FIFO, marked abandoned, and complete_batches() releases it.
 */
static void batch_abandon(struct sp_engine *eng, struct sp_batch *batch)
{
    eng->failed = true;
    eng->stop = 1;
    if (batch->pending == 0) {
        batch_release(batch);
        return;
    }
    batch->abandoned = true;
    inflight_push(eng, batch);
}

/* Runs the chain from batch->next_stage.  SP_ERR_RETRY leaves
 * next_stage at the stage that must run again. */
static enum sp_err run_chain(struct sp_engine *eng, struct sp_batch *batch)
{
    while (batch->next_stage < eng->n_stages) {
        struct sp_stage *st = eng->stages[batch->next_stage];
        enum sp_err e = sp_stage_process(st, batch);
        if (e == SP_ERR_RETRY)
            return e;
        if (e != SP_OK) {
            sp_log_error(ECOMP, "%s failed on batch %llu: %s", st->name,
                         (unsigned long long)batch->seq, sp_strerror(e));
            return e;
        }
        batch->next_stage++;
    }
    return SP_OK;
}

static void count_outputs(struct sp_engine *eng, struct sp_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        eng->stats.alerts += batch->msgs[i].n_alerts;
        eng->stats.rejects += batch->msgs[i].n_rejects;
    }
}

static enum sp_err process_batch(struct sp_engine *eng, struct sp_batch *batch)
{
    enum sp_err e = run_chain(eng, batch);
    if (e == SP_ERR_RETRY) {
        eng->stuck = batch;
        eng->backoff_ms = 50;
        eng->retry_at_ms = sp_now_ms() + eng->backoff_ms;
        sp_counter_add(eng->c_retries, 1);
        sp_kafka_pause(eng->kafka, true);
        sp_gauge_set(eng->g_paused, 1);
        return SP_OK;
    }
    if (e != SP_OK)
        return e;
    count_outputs(eng, batch);
    inflight_push(eng, batch);
    return SP_OK;
}

static void retry_stuck(struct sp_engine *eng)
{
    if (!eng->stuck || sp_now_ms() < eng->retry_at_ms)
        return;
    struct sp_batch *batch = eng->stuck;
    enum sp_err e = run_chain(eng, batch);
    if (e == SP_ERR_RETRY) {
        eng->backoff_ms = SP_MIN(eng->backoff_ms * 2, eng->backoff_max_ms);
        /* Jitter keeps a fleet of instances from retrying in lockstep. */
        int64_t jitter = eng->backoff_ms / 4 ? rand() % (eng->backoff_ms / 4) : 0;
        eng->retry_at_ms = sp_now_ms() + eng->backoff_ms + jitter;
        sp_counter_add(eng->c_retries, 1);
        return;
    }
    eng->stuck = NULL;
    if (e != SP_OK) {
        sp_log_error(ECOMP, "batch %llu abandoned after a stage error; "
                     "stopping without committing it",
                     (unsigned long long)batch->seq);
        batch_abandon(eng, batch);
        return;
    }
    count_outputs(eng, batch);
    inflight_push(eng, batch);
    sp_log_info(ECOMP, "batch %llu went through after retrying",
                (unsigned long long)batch->seq);
}

static struct sp_batch *build_batch(struct sp_engine *eng,
                                    rd_kafka_message_t **rkms, size_t n)
{
    struct sp_batch *batch = sp_batch_new(n);
    if (!batch) {
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(rkms[i]);
        return NULL;
    }
    batch->seq = ++eng->seq;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *rkm = rkms[i];
        struct sp_msg *msg = sp_batch_add(batch);
        msg->opaque = rkm;
        msg->topic = rd_kafka_topic_name(rkm->rkt);
        msg->partition = rkm->partition;
        msg->offset = rkm->offset;
        msg->key = rkm->key;
        msg->key_len = rkm->key_len;
        msg->payload = rkm->payload ? rkm->payload : "";
        msg->len = rkm->len;
        rd_kafka_timestamp_type_t tt;
        msg->timestamp_ms = rd_kafka_message_timestamp(rkm, &tt);
    }
    eng->stats.messages += n;
    eng->stats.batches++;
    sp_counter_add(eng->c_messages, n);
    sp_counter_add(eng->c_batches, 1);
    return batch;
}

/* ---- rebalance hooks ----------------------------------------------------- */

static bool part_in(const rd_kafka_topic_partition_list_t *parts,
                    const struct sp_msg *msg)
{
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == msg->partition &&
            strcmp(parts->elems[i].topic, msg->topic) == 0)
            return true;
    return false;
}

static bool held_in(const rd_kafka_topic_partition_list_t *parts,
                    const rd_kafka_message_t *rkm)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == rkm->partition &&
            strcmp(parts->elems[i].topic, topic) == 0)
            return true;
    return false;
}

static void drop_revoked(struct sp_batch *batch,
                         const rd_kafka_topic_partition_list_t *parts,
                         uint64_t *count)
{
    for (size_t i = 0; i < batch->n; i++) {
        if (!batch->msgs[i].dropped && part_in(parts, &batch->msgs[i])) {
            batch->msgs[i].dropped = true;
            (*count)++;
        }
    }
}

/* Messages held for the next batch (see serve_paused) of revoked
 * partitions go back: their next owner reads them again. */
static void drop_held(struct sp_engine *eng,
                      const rd_kafka_topic_partition_list_t *parts,
                      uint64_t *count)
{
    size_t k = 0;
    for (size_t i = 0; i < eng->n_held; i++) {
        rd_kafka_message_t *rkm = eng->held[i];
        if (held_in(parts, rkm)) {
            rd_kafka_message_destroy(rkm);
            (*count)++;
        } else {
            eng->held[k++] = rkm;
        }
    }
    eng->n_held = k;
}

static void on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct sp_engine *eng = ud;
    /* Let what is in flight finish, so its offsets go out with the
     * revoke commit and the next owner does not redo it. */
    int64_t deadline = sp_now_ms() + eng->revoke_timeout_ms;
    while (eng->head && sp_now_ms() < deadline) {
        sp_kafka_poll(eng->kafka, 20);
        complete_batches(eng);
    }
    complete_batches(eng);
    uint64_t dropped = 0;
    for (struct sp_batch *b = eng->head; b; b = b->next)
        drop_revoked(b, parts, &dropped);
    if (eng->stuck)
        drop_revoked(eng->stuck, parts, &dropped);
    drop_held(eng, parts, &dropped);
    if (dropped) {
        sp_log_warn(ECOMP, "%llu in-flight message(s) of revoked partitions "
                    "left for their next owner",
                    (unsigned long long)dropped);
        sp_counter_add(eng->c_dropped_revoked, dropped);
    }
    for (size_t i = 0; i < eng->n_stages; i++)
        if (eng->stages[i]->type->flush)
            eng->stages[i]->type->flush(eng->stages[i], 1000);
}

/* ---- construction -------------------------------------------------------- */

/* Every name in pipeline.stages is a stage type, and there is one. */
static enum sp_err check_chain(const struct sp_config *cfg,
                               struct sp_error *err)
{
    const char *const *names;
    size_t n = sp_config_list(cfg, "pipeline.stages", &names);
    int line = 0;
    const char *origin = sp_config_origin(cfg, "pipeline.stages", &line);
    if (n == 0)
        return sp_error_set(err, SP_ERR_CONFIG, "%s: pipeline.stages: empty "
                            "chain", origin);
    for (size_t i = 0; i < n; i++) {
        if (sp_stage_type_find(names[i]))
            continue;
        size_t nt;
        const struct sp_stage_type *const *types = sp_stage_types(&nt);
        char known[256] = "";
        for (size_t j = 0; j < nt; j++) {
            strncat(known, types[j]->name, sizeof(known) - strlen(known) - 1);
            if (j + 1 < nt)
                strncat(known, ", ", sizeof(known) - strlen(known) - 1);
        }
        return sp_error_set(err, SP_ERR_CONFIG,
                            "%s: pipeline.stages: unknown stage '%s' "
                            "(known: %s)", origin, names[i], known);
    }
    return SP_OK;
}

enum sp_err sp_engine_check(const struct sp_config *cfg, struct sp_error *err)
{
    enum sp_err e = check_chain(cfg, err);
    if (e)
        return e;
    return sp_kafka_check_config(cfg, err);
}

static enum sp_err build_chain(struct sp_engine *eng, struct sp_error *err)
{
    enum sp_err ce = check_chain(eng->cfg, err);
    if (ce)
        return ce;
    const char *const *names;
    size_t n = sp_config_list(eng->cfg, "pipeline.stages", &names);
    eng->stages = calloc(n, sizeof(*eng->stages));
    if (!eng->stages)
        return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
    /* correlate followed by analyze: the job is scheduled in the same
     * atomic step that changes the incident (correlate's script). */
    bool seen_correlate = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], "correlate") == 0)
            seen_correlate = true;
        else if (strcmp(names[i], "analyze") == 0 && seen_correlate) {
            eng->env.analysis_quiet_ms = sp_config_int(eng->cfg, "analyze.quiet");
            eng->env.analysis_max_delay_ms =
                sp_config_int(eng->cfg, "analyze.max_delay");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct sp_stage_type *type = sp_stage_type_find(names[i]);
        int index = 0;
        for (size_t j = 0; j < i; j++)
            if (eng->stages[j]->type == type)
                index++;
        struct sp_stage *st = sp_stage_new(type, index, &eng->env);
        if (!st)
            return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        eng->stages[eng->n_stages++] = st;
        enum sp_err e = sp_stage_init(st, err);
        if (e)
            return e;
        sp_log_info(ECOMP, "stage %s ready", st->name);
    }
    return SP_OK;
}

/* redis.embedded: a private redis-server, on a unix socket in its 0700
 * directory only (no TCP port another local user could reach); the
 * redis.* keys are pointed at it before any stage reads them. */
static enum sp_err start_embedded_redis(struct sp_engine *eng,
                                        struct sp_error *err)
{
    eng->redis.unix_only = true;
    eng->redis.die_with_parent = true;
    enum sp_err e = sp_redis_server_start(&eng->redis, false, err);
    if (e)
        return e;
    /* The credentials configured for Redis work against it as against
     * any other (it used to run without, and AUTH was refused). */
    if ((e = sp_redis_server_require(&eng->redis,
                                     sp_config_str(eng->cfg, "redis.user"),
                                     sp_config_str(eng->cfg, "redis.password"),
                                     err)))
        return e;
    char sock[160];
    snprintf(sock, sizeof(sock), "redis.unix_socket=%s", eng->redis.sock);
    if (sp_config_set(eng->cfg, sock, err) ||
        sp_config_validate(eng->cfg, err))
        return SP_ERR_CONFIG;
    sp_log_info(ECOMP, "embedded redis-server on unix:%s", eng->redis.sock);
    return SP_OK;
}

struct sp_engine *sp_engine_new(struct sp_config *cfg, struct sp_error *err)
{
    struct sp_engine *eng = calloc(1, sizeof(*eng));
    if (!eng) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&eng->ready_lock, NULL);
    snprintf(eng->ready_reason, sizeof(eng->ready_reason), "starting");
    eng->cfg = cfg;
    eng->batch_size = (size_t)sp_config_int(cfg, "pipeline.batch_size");
    eng->batch_wait_ms = (int)sp_config_int(cfg, "pipeline.batch_wait");
    eng->max_inflight = (size_t)sp_config_int(cfg, "pipeline.max_inflight_batches");
    eng->shutdown_timeout_ms = sp_config_int(cfg, "pipeline.shutdown_timeout");
    eng->revoke_timeout_ms = sp_config_int(cfg, "pipeline.revoke_timeout");
    eng->backoff_max_ms = sp_config_int(cfg, "pipeline.retry_backoff_max");
    eng->pause_after_ms = sp_config_int(cfg, "pipeline.pause_after");
    eng->ready_delivery_max_ms = sp_config_int(cfg, "pipeline.ready_delivery_max");
    eng->rkms = calloc(eng->batch_size, sizeof(*eng->rkms));
    eng->held = calloc(eng->batch_size, sizeof(*eng->held));
    eng->metrics = sp_metrics_new("socpilot_");
    if (!eng->rkms || !eng->held || !eng->metrics) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    struct sp_metrics *m = eng->metrics;
    eng->c_messages = sp_metrics_counter(m, "engine_messages_total",
                                         "Messages consumed into batches", NULL);
    eng->c_batches = sp_metrics_counter(m, "engine_batches_total",
                                        "Micro-batches processed", NULL);
    eng->c_committed = sp_metrics_counter(
        m, "engine_messages_committed_total",
        "Messages whose offsets were stored after their outputs were "
        "acknowledged", NULL);
    eng->c_retries = sp_metrics_counter(
        m, "engine_stage_retries_total",
        "Times a batch was retried after a transient stage failure", NULL);
    eng->c_dropped_revoked = sp_metrics_counter(
        m, "engine_revoked_inflight_total",
        "In-flight messages left to the next owner on partition revocation",
        NULL);
    eng->g_inflight = sp_metrics_gauge(m, "engine_inflight_batches",
                                       "Batches awaiting acknowledgements", NULL);
    eng->g_paused = sp_metrics_gauge(m, "engine_paused",
                                     "1 while consumption is paused", NULL);
    eng->h_batch_e2e = sp_metrics_hist(
        m, "engine_batch_latency_seconds",
        "From consuming a batch to storing its offsets", NULL, NULL, 0);

    struct sp_kafka_hooks hooks = {.on_assign = NULL, .on_revoke = on_revoke,
                                   .ud = eng};
    eng->kafka = sp_kafka_open(cfg, m, &hooks, true, err);
    if (!eng->kafka)
        goto fail;
    eng->env.cfg = cfg;
    eng->env.metrics = m;
    eng->env.sink = sp_kafka_sink(eng->kafka);
    eng->env.instance = sp_config_str(cfg, "pipeline.instance");
    eng->env.topic_alerts = sp_config_str(cfg, "topics.alerts");
    eng->env.topic_incidents = sp_config_str(cfg, "topics.incidents");
    eng->env.topic_dlq = sp_config_str(cfg, "topics.dlq");
    if (sp_config_bool(cfg, "redis.embedded") && start_embedded_redis(eng, err))
        goto fail;
    if (build_chain(eng, err))
        goto fail;
    if (sp_config_bool(cfg, "http.enabled")) {
        eng->http = sp_http_start(sp_config_str(cfg, "http.listen"),
                                  (int)sp_config_int(cfg, "http.port"), m,
                                  ready_cb, eng, err);
        if (!eng->http)
            goto fail;
        sp_log_info(ECOMP, "metrics on http://%s:%d/metrics",
                    sp_config_str(cfg, "http.listen"), sp_http_port(eng->http));
    }
    return eng;
fail:
    sp_engine_free(eng);
    return NULL;
}

/* ---- the loop ------------------------------------------------------------ */

static void tick_stages(struct sp_engine *eng)
{
    int64_t now = sp_now_ms();
    if (now - eng->last_tick_ms < 100)
        return;
    eng->last_tick_ms = now;
    for (size_t i = 0; i < eng->n_stages; i++) {
        struct sp_stage *st = eng->stages[i];
        if (st->type->tick)
            st->type->tick(st, now);
    }
    update_readiness(eng);
}

/*
 * While paused, the consumer queue must still be served: rebalance
 * callbacks and consumer errors come through it, and a member that does
 * not serve them holds up the whole group (an eager rebalance waits up to
 * max.poll.interval.ms for it).  librdkafka serves the queue only when a
 * call may return a message, so ask for one: paused partitions fetch
 * nothing, but one assigned just before the pause took effect may, and
 * such a message is held, in order, for the head of the next batch.
 * (A revoke served during the call may drop held messages: the count is
 * read after it returns.)
 */
static void serve_paused(struct sp_engine *eng)
{
    rd_kafka_message_t *rkm;
    /* Full (a batch's worth slipped in, which pausing makes next to
     * impossible): taking one more would lose it, as a later offset of
     * its partition may be stored. */
    if (eng->n_held >= eng->batch_size)
        return;
    if (sp_kafka_consume(eng->kafka, &rkm, 1, 0) == 1)
        eng->held[eng->n_held++] = rkm;
}

/* Takes up to a batch: the held messages first, then new ones. */
static size_t take_batch(struct sp_engine *eng)
{
    size_t n = sp_kafka_consume(eng->kafka, eng->rkms,
                                eng->batch_size - eng->n_held,
                                eng->n_held ? 0 : eng->batch_wait_ms);
    size_t h = eng->n_held;         /* after any revoke in the call */
    if (h) {
        memmove(eng->rkms + h, eng->rkms, n * sizeof(*eng->rkms));
        memcpy(eng->rkms, eng->held, h * sizeof(*eng->rkms));
        eng->n_held = 0;
    }
    return h + n;
}

/* One turn of the loop; returns the number of messages consumed. */
static size_t loop_once(struct sp_engine *eng)
{
    sp_kafka_poll(eng->kafka, 0);
    complete_batches(eng);
    tick_stages(eng);
    char why[600];
    if (sp_kafka_fatal(eng->kafka, why, sizeof(why))) {
        /* Nothing more will come in or go out on this handle: stop (not
         * ready), commit what completed, and let a restart start over. */
        sp_log_error(ECOMP, "Kafka fatal error (%s); stopping", why);
        eng->failed = true;
        eng->stop = 1;
    }
    if (eng->stop)
        return 0;                   /* a failed batch stops the loop here:
                                       nothing more is taken */

    if (eng->stuck) {
        retry_stuck(eng);
        if (eng->stuck) {
            serve_paused(eng);
            sp_kafka_poll(eng->kafka, 20);
            return 0;
        }
    }
    bool full = eng->n_inflight >= eng->max_inflight;
    int64_t now = sp_now_ms();
    if (!full) {
        eng->full_since_ms = 0;
        if (sp_kafka_is_paused(eng->kafka)) {
            sp_kafka_pause(eng->kafka, false);
            sp_gauge_set(eng->g_paused, 0);
        }
    } else if (!eng->full_since_ms) {
        eng->full_since_ms = now;
    }
    if (full) {
        /* At the limit: take nothing more (librdkafka's prefetch queue is
         * bounded by queued.max.messages.kbytes); if it lasts, pause. */
        if (!sp_kafka_is_paused(eng->kafka) &&
            now - eng->full_since_ms >= eng->pause_after_ms) {
            sp_kafka_pause(eng->kafka, true);
            sp_gauge_set(eng->g_paused, 1);
        }
        sp_kafka_poll(eng->kafka, 10);
        if (sp_kafka_is_paused(eng->kafka))
            serve_paused(eng);
        return 0;
    }
    size_t n = take_batch(eng);
    if (n == 0)
        return 0;
    struct sp_batch *batch = build_batch(eng, eng->rkms, n);
    if (!batch) {
        sp_log_error(ECOMP, "out of memory building a batch; stopping");
        eng->failed = true;
        eng->stop = 1;
        return n;
    }
    if (process_batch(eng, batch) != SP_OK)
        batch_abandon(eng, batch);
    return n;
}

static enum sp_err drain(struct sp_engine *eng)
{
    int64_t deadline = sp_now_ms() + eng->shutdown_timeout_ms;
    sp_log_info(ECOMP, "draining: %zu batch(es) in flight%s", eng->n_inflight,
                eng->stuck ? ", 1 waiting to retry" : "");
    while (eng->stuck && !eng->failed && sp_now_ms() < deadline) {
        sp_kafka_poll(eng->kafka, 20);
        complete_batches(eng);
        tick_stages(eng);
        retry_stuck(eng);
    }
    for (size_t i = 0; i < eng->n_stages; i++) {
        struct sp_stage *st = eng->stages[i];
        if (st->type->flush) {
            int64_t left = deadline - sp_now_ms();
            st->type->flush(st, (int)SP_MAX(left, 0));
        }
    }
    while (eng->head && sp_now_ms() < deadline) {
        sp_kafka_poll(eng->kafka, 20);
        complete_batches(eng);
    }
    complete_batches(eng);
    if (eng->head || eng->stuck)
        sp_log_warn(ECOMP, "shutdown timeout: %zu batch(es) not acknowledged "
                    "are left uncommitted (they will be replayed)",
                    eng->n_inflight + (eng->stuck ? 1 : 0));
    /* A commit refused because the group is rebalancing is not retried
     * here: the consumer's close commits once more, and whatever is left
     * uncommitted is replayed by the next owner (at-least-once). */
    sp_kafka_commit(eng->kafka);
    return eng->failed ? SP_ERR_REMOTE : SP_OK;
}

static enum sp_err run(struct sp_engine *eng, int idle_ms, int max_ms)
{
    int64_t start = sp_now_ms();
    int64_t last_msg = start;
    int assigned = 0;
    update_readiness(eng);
    while (!eng->stop) {
        size_t n = loop_once(eng);
        int64_t now = sp_now_ms();
        /* Idle counts from the last message or the last assignment: a
         * group join can take longer than idle_ms. */
        int a = sp_kafka_assigned(eng->kafka);
        if (n || a != assigned)
            last_msg = now;
        assigned = a;
        if (idle_ms > 0 && !eng->head && !eng->stuck &&
            sp_kafka_assigned(eng->kafka) > 0 && now - last_msg >= idle_ms)
            break;
        if (max_ms > 0 && now - start >= max_ms) {
            sp_log_warn(ECOMP, "run time limit reached");
            break;
        }
    }
    update_readiness(eng);
    return drain(eng);
}

enum sp_err sp_engine_run(struct sp_engine *eng)
{
    return run(eng, 0, 0);
}

enum sp_err sp_engine_run_until_idle(struct sp_engine *eng, int idle_ms,
                                     int max_ms)
{
    return run(eng, idle_ms, max_ms);
}

void sp_engine_stop(struct sp_engine *eng)
{
    eng->stop = 1;
}

void sp_engine_free(struct sp_engine *eng)
{
    if (!eng)
        return;
    sp_http_stop(eng->http);
    /* Outputs first (their reports still reach live batches), then the
     * consumer's final revoke and commit; in-flight messages go back to
     * librdkafka before its handles are destroyed. */
    sp_kafka_shutdown(eng->kafka, 1000);
    while (eng->head) {
        struct sp_batch *b = eng->head;
        eng->head = b->next;
        batch_release(b);
    }
    if (eng->stuck)
        batch_release(eng->stuck);
    for (size_t i = 0; i < eng->n_held; i++)
        rd_kafka_message_destroy(eng->held[i]);
    eng->n_held = 0;
    for (size_t i = 0; i < eng->n_stages; i++)
        sp_stage_free(eng->stages[i]);
    sp_kafka_close(eng->kafka);
    sp_redis_server_stop(&eng->redis);
    free(eng->stages);
    free(eng->rkms);
    free(eng->held);
    sp_metrics_free(eng->metrics);
    pthread_mutex_destroy(&eng->ready_lock);
    free(eng);
}

struct sp_kafka *sp_engine_kafka(struct sp_engine *eng)
{
    return eng->kafka;
}

struct sp_metrics *sp_engine_metrics(struct sp_engine *eng)
{
    return eng->metrics;
}

int sp_engine_http_port(const struct sp_engine *eng)
{
    return eng->http ? sp_http_port(eng->http) : 0;
}

void sp_engine_stats(const struct sp_engine *eng, struct sp_engine_stats *st)
{
    *st = eng->stats;
}
