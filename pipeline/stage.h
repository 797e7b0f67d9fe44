/*
 * stage.h - the one stage interface, and the batch that flows through the
 * chain.
 *
 * A stage type is a static descriptor (Fluent Bit's filter plugins, curl's
 * writer types): name, config keys, context size and callbacks; missing
 * callbacks are no-ops.  An instance (`struct sp_stage`) carries its type,
 * its name ("decode.0"), its context and its standard counters.
 *
 * The engine polls a micro-batch of messages, then calls each stage's
 * process() in chain order on the whole batch.  A stage may return
 * SP_ERR_RETRY for a transient failure (Redis down, say): the engine then
 * pauses consumption and calls the same stage again on the same batch
 * later, so process() must be idempotent for the messages it has not
 * finished.  Anything a stage cannot handle goes to msg->rejects (and so
 * to the DLQ), never silently away.
 *
 * All stage callbacks run on the engine thread.  Outputs go through a
 * struct sp_sink (the Kafka producer in production, a memory sink in
 * tests); the batch counts outputs until the sink acknowledges them, and
 * only then are its input offsets stored.
 */
#ifndef SP_STAGE_H
#define SP_STAGE_H

#include "alert.h"
#include "config.h"
#include "metrics.h"
#include "sp.h"

struct sp_batch;

/* Why a record went to the DLQ; `reason` is a short stable token
 * ("not_json", "missing_id", ...), `detail` a human sentence. */
struct sp_reject {
    const char *reason;
    const char *stage;
    const char *detail;
    const char *bytes;      /* the rejected record: whole payload or the
                               sub-record of an envelope */
    size_t len;
};

struct sp_msg {
    /* Input, borrowed from the consumer for the life of the batch. */
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const char *key;
    size_t key_len;
    const char *payload;
    size_t len;
    void *opaque;                   /* engine's handle (rd_kafka_message_t) */
    /* Results. */
    struct sp_arena arena;          /* everything derived from this message */
    struct sp_alert **alerts;
    size_t n_alerts, cap_alerts;
    struct sp_reject *rejects;
    size_t n_rejects, cap_rejects;
    bool dropped;                   /* revoked partition: not ours any more */
};

struct sp_header {
    const char *name;
    const char *value;
    size_t len;
};

/*
 * DLQ record sizes, shared by the publish stage (rejected inputs) and the
 * Kafka sink (outputs the brokers refused): a record's key is cut to
 * SP_DLQ_MAX_KEY (keys route; a long one makes the record too big), and a
 * record refused as too large even so keeps SP_DLQ_MIN_VALUE bytes of its
 * value and SP_DLQ_MIN_KEY of its key, with headers saying so.
 */
#define SP_DLQ_MAX_KEY 1024
#define SP_DLQ_MIN_VALUE 1024
#define SP_DLQ_MIN_KEY 256

/*
 * Where outputs go.  produce() takes copies of key/value/headers; on
 * success the batch's `pending` count was incremented and the sink calls
 * sp_batch_ack() once the output is durably acknowledged.
 */
struct sp_sink {
    enum sp_err (*produce)(struct sp_sink *sink, struct sp_batch *batch,
                           const char *topic, const void *key, size_t klen,
                           const void *val, size_t vlen,
                           const struct sp_header *hdrs, size_t n_hdrs);
    void *ctx;
};

struct sp_batch {
    struct sp_msg *msgs;
    size_t n, cap;
    size_t next_stage;              /* first stage not yet completed */
    int64_t pending;                /* outputs not yet acknowledged */
    int64_t failed;                 /* outputs that could not be delivered */
    int64_t started_us;
    int64_t inflight_us;            /* when it began waiting for its outputs */
    uint64_t seq;
    struct sp_batch *next;          /* engine's in-flight FIFO */
    /*
     * Detached batches carry outputs that no input offset waits for (a
     * stage's timer-driven outputs, e.g. assembled Defender alerts or
     * incident republishes): a stage makes one with sp_batch_new(0), sets
     * on_done, produces into it, then calls sp_batch_seal().  When every
     * output is acknowledged (or failed: check batch->failed) on_done runs
     * on the engine thread and the batch is freed right after it.
     */
    void (*on_done)(struct sp_batch *batch, void *ud);
    /*
     * Optional, detached batches: where each output landed, told by the
     * sink as it acknowledges that output (before its ack, possibly from
     * inside produce()), so that a stage can see in which order its
     * outputs and other instances' ones ended up on a partition.  Not
     * called for an output that failed, nor by a sink that cannot tell; a
     * DLQ copy made in an output's place is told with the DLQ topic
     * (compare the topic).
     */
    void (*on_landed)(struct sp_batch *batch, void *ud, const char *topic,
                      const void *key, size_t klen, int32_t partition,
                      int64_t offset);
    void *ud;
    bool sealed;
    bool abandoned;                 /* a stage gave up: never stored */
};

/* Appends a reject to msg (strings borrowed: static or msg arena). */
enum sp_err sp_msg_reject(struct sp_msg *msg, const char *stage,
                          const char *reason, const char *detail,
                          const char *bytes, size_t len);
enum sp_err sp_msg_add_alert(struct sp_msg *msg, struct sp_alert *alert);
void sp_batch_ack(struct sp_batch *batch, bool ok);
/* Detached batch: no more outputs will be added; on_done may now run. */
void sp_batch_seal(struct sp_batch *batch);

struct sp_env;   /* shared services: config, metrics, sink, instance name */

struct sp_stage;

struct sp_stage_type {
    const char *name;
    const char *desc;
    const struct sp_cfg_key *keys;      /* full key names ("decode.x") */
    size_t n_keys;
    size_t ctx_size;
    enum sp_err (*init)(struct sp_stage *st, struct sp_error *err);
    enum sp_err (*process)(struct sp_stage *st, struct sp_batch *batch);
    /* Timers (settle delays, windows): called at least every 100 ms. */
    enum sp_err (*tick)(struct sp_stage *st, int64_t now_ms);
    /* Before shutdown and on rebalance: push out anything buffered. */
    enum sp_err (*flush)(struct sp_stage *st, int timeout_ms);
    void (*close)(struct sp_stage *st);
    /* Readiness for /readyz; NULL = always ready. */
    bool (*ready)(struct sp_stage *st, char *reason, size_t n);
};

struct sp_env {
    struct sp_config *cfg;
    struct sp_metrics *metrics;
    struct sp_sink *sink;
    const char *instance;               /* instance name for logs/metrics */
    /* Output topic names (publish.*), resolved once at start-up. */
    const char *topic_alerts;
    const char *topic_incidents;
    const char *topic_dlq;
    /* Set by the engine when an analyze stage follows correlate: correlate
     * then schedules the analysis job of every incident it changes inside
     * the same Lua script (analyze.quiet / analyze.max_delay, ms; 0 = no). */
    int64_t analysis_quiet_ms;
    int64_t analysis_max_delay_ms;
};

struct sp_stage {
    const struct sp_stage_type *type;
    char name[48];                      /* "<type>.<index>" */
    char log[64];                       /* "stage:<name>" for sp_log_* */
    void *ctx;
    struct sp_env *env;
    struct sp_counter *c_in, *c_out, *c_dropped, *c_errors;
    struct sp_hist *h_latency;
};

/* Creates an instance (ctx zeroed, counters registered); init() is called
 * by sp_stage_init.  Returns a new stage (sp_stage_free). */
struct sp_stage *sp_stage_new(const struct sp_stage_type *type, int index,
                              struct sp_env *env);
enum sp_err sp_stage_init(struct sp_stage *st, struct sp_error *err);
/* Runs process() with timing and counters. */
enum sp_err sp_stage_process(struct sp_stage *st, struct sp_batch *batch);
void sp_stage_free(struct sp_stage *st);

/* The registry of built-in stage types, by name (NULL if unknown). */
const struct sp_stage_type *sp_stage_type_find(const char *name);
/* All built-in types (for config declaration and docs). */
const struct sp_stage_type *const *sp_stage_types(size_t *n);

/* Batch memory. */
struct sp_batch *sp_batch_new(size_t cap);
void sp_batch_free(struct sp_batch *batch);
/* Adds a message slot (arena initialised); NULL when full. */
struct sp_msg *sp_batch_add(struct sp_batch *batch);

#endif /* SP_STAGE_H */
