/*
 * kafka.h - the Kafka connector: one consumer (consumer group, manual
 * offset store, cooperative-sticky rebalancing) and one idempotent
 * producer, both built from the `kafka.*` config keys; plus librdkafka's
 * mock cluster for the embedded default, tests and `socpilot mock-kafka`.
 *
 * The producer is exposed as a struct sp_sink: every produce() counts
 * against the batch and the delivery report acknowledges it.  Retriable
 * delivery failures are produced again (never committed past); permanent
 * ones (record too large, ...) go to the DLQ topic with the reason.
 *
 * All calls are made from the engine thread; delivery reports and
 * rebalance callbacks also run there (inside sp_kafka_poll/consume).
 */
#ifndef SP_KAFKA_H
#define SP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "metrics.h"
#include "stage.h"

extern const struct sp_cfg_key sp_kafka_keys[];
extern const size_t sp_kafka_n_keys;

/* The engine's side of a rebalance (called inside sp_kafka_consume). */
struct sp_kafka_hooks {
    void (*on_assign)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    /* Must finish or give up the work of `parts` before returning: after
     * it the partitions are unassigned and their offsets committed. */
    void (*on_revoke)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    void *ud;
};

struct sp_kafka;

/* Opens producer and consumer (and the embedded mock cluster when
 * kafka.embedded is true).  consume=false opens only the producer
 * (replay).  Returns a new connector; NULL with err set. */
struct sp_kafka *sp_kafka_open(const struct sp_config *cfg,
                               struct sp_metrics *m,
                               const struct sp_kafka_hooks *hooks,
                               bool consume, struct sp_error *err);
/* Flushes the producer (up to timeout_ms), purges what is left (its
 * batches are acknowledged as failed, so never committed), and closes the
 * consumer (final revoke + commit).  Handles stay valid for
 * rd_kafka_message_destroy until sp_kafka_close. */
void sp_kafka_shutdown(struct sp_kafka *k, int timeout_ms);
/* Shuts down if not done yet and destroys everything. */
void sp_kafka_close(struct sp_kafka *k);

/* Borrowed: the producer as a sink (outputs + DLQ). */
struct sp_sink *sp_kafka_sink(struct sp_kafka *k);
/* Bootstrap servers actually in use (the mock's when embedded). */
const char *sp_kafka_bootstraps(const struct sp_kafka *k);
rd_kafka_mock_cluster_t *sp_kafka_mock(struct sp_kafka *k);

/* Waits up to timeout_ms for up to max messages; serves rebalances.
 * Returns the count (messages with errors are logged and destroyed, not
 * returned).  Each returned message is owned by the caller
 * (rd_kafka_message_destroy). */
size_t sp_kafka_consume(struct sp_kafka *k, rd_kafka_message_t **msgs,
                        size_t max, int timeout_ms);
/* Serves delivery reports. */
void sp_kafka_poll(struct sp_kafka *k, int timeout_ms);
/* Waits for every outstanding output (serving reports) up to timeout;
 * returns the number still outstanding. */
int sp_kafka_flush(struct sp_kafka *k, int timeout_ms);
int sp_kafka_outstanding(struct sp_kafka *k);

/* Offsets: `offset` is the last processed message's offset; stores +1. */
void sp_kafka_store(struct sp_kafka *k, const char *topic, int32_t partition,
                    int64_t offset);
enum sp_err sp_kafka_commit(struct sp_kafka *k);        /* synchronous */
void sp_kafka_pause(struct sp_kafka *k, bool pause);    /* all assigned */
bool sp_kafka_is_paused(const struct sp_kafka *k);
/* Number of partitions currently assigned. */
int sp_kafka_assigned(const struct sp_kafka *k);
/* A fatal error on the consumer or the producer (e.g. a fenced static
 * member, an idempotence failure): the handle is unusable, nothing more
 * will be consumed or delivered.  Describes it in buf when true. */
bool sp_kafka_fatal(struct sp_kafka *k, char *buf, size_t size);
/* False once the consumer has been connected to no broker for three
 * statistics intervals (statistics.interval.ms, 5 s by default; 0 turns
 * this off), with the reason; true while nothing is known yet.  Engine
 * thread. */
bool sp_kafka_reachable(const struct sp_kafka *k, int64_t now_ms,
                        char *reason, size_t n);
/* The raw handles, for tests (fault injection). */
rd_kafka_t *sp_kafka_producer(struct sp_kafka *k);

/* ---- mock cluster ---------------------------------------------------- */

struct sp_mock;
/* Starts a mock cluster of `brokers` brokers with the given topics.
 * Returns a new handle (sp_mock_stop). */
struct sp_mock *sp_mock_start(int brokers, const char *const *topics,
                              size_t n_topics, int partitions,
                              struct sp_error *err);
const char *sp_mock_bootstraps(const struct sp_mock *mk);
rd_kafka_mock_cluster_t *sp_mock_cluster(struct sp_mock *mk);
enum sp_err sp_mock_topic(struct sp_mock *mk, const char *topic,
                          int partitions);
void sp_mock_stop(struct sp_mock *mk);

/* Checks the librdkafka properties under kafka.client, kafka.consumer and
 * kafka.producer as opening would (unknown names, bad values), without
 * opening anything.  SP_ERR_CONFIG with err naming the key. */
enum sp_err sp_kafka_check_config(const struct sp_config *cfg,
                                  struct sp_error *err);

/* Sets a librdkafka property, mapping the failure into err. */
enum sp_err sp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                              const char *value, struct sp_error *err);

#endif /* SP_KAFKA_H */
