/*
 * engine.h - the pipeline engine: consume a micro-batch, run the stage
 * chain, wait for the outputs to be acknowledged, store offsets.  Owns the
 * Kafka connector, the stage instances, metrics and the HTTP endpoint.
 *
 * One engine per process, driven by one thread (the caller of
 * sp_engine_run).  sp_engine_stop() is async-signal-safe.
 */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include "config.h"
#include "kafka.h"
#include "metrics.h"
#include "stage.h"

extern const struct sp_cfg_key sp_engine_keys[];
extern const size_t sp_engine_n_keys;

/* Declares every key the engine, the connectors and all built-in stage
 * types know into cfg (before loading). */
enum sp_err sp_engine_declare(struct sp_config *cfg, struct sp_error *err);

/* Checks, without opening anything, what sp_engine_new would refuse of a
 * validated config beyond the key tables: the stage names of
 * pipeline.stages and the librdkafka properties (check-config). */
enum sp_err sp_engine_check(const struct sp_config *cfg, struct sp_error *err);

struct sp_engine;

/* Builds the engine from a validated config: opens Kafka (embedded mock
 * when kafka.embedded), creates and initialises the stage chain, starts
 * the HTTP endpoint.  Returns a new engine (sp_engine_free). */
struct sp_engine *sp_engine_new(struct sp_config *cfg, struct sp_error *err);

/* Runs until sp_engine_stop(), then drains (finishes in-flight work,
 * flushes, commits) within pipeline.shutdown_timeout.  SP_OK on a clean
 * stop; an error if outputs could not be delivered (nothing of that work
 * was committed). */
enum sp_err sp_engine_run(struct sp_engine *eng);

/* Like sp_engine_run, but also stops by itself once nothing was consumed
 * for idle_ms and nothing is in flight (demo and tests), or after max_ms. */
enum sp_err sp_engine_run_until_idle(struct sp_engine *eng, int idle_ms,
                                     int max_ms);

void sp_engine_stop(struct sp_engine *eng);
void sp_engine_free(struct sp_engine *eng);

struct sp_kafka *sp_engine_kafka(struct sp_engine *eng);
struct sp_metrics *sp_engine_metrics(struct sp_engine *eng);
/* The HTTP port actually bound (0 when disabled). */
int sp_engine_http_port(const struct sp_engine *eng);
/* What /readyz answers: true when ready, else false with the reason
 * (the stages' readiness, Kafka brokers connected, a batch being retried,
 * shutting down).  Any thread. */
bool sp_engine_ready(struct sp_engine *eng, char *reason, size_t n);

struct sp_engine_stats {
    uint64_t messages;      /* consumed */
    uint64_t batches;
    uint64_t alerts;        /* alerts leaving the chain */
    uint64_t rejects;       /* records sent to the DLQ */
    uint64_t committed;     /* messages whose offsets were stored */
};
void sp_engine_stats(const struct sp_engine *eng, struct sp_engine_stats *st);

#endif /* SP_ENGINE_H */
