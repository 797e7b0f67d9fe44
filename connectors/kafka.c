/*
 * kafka.c - consumer, idempotent producer and mock cluster (see kafka.h).
 *
 * Consumer: enable.auto.offset.store=false, so only offsets the engine
 * stores (after the batch's outputs are acknowledged) are ever committed;
 * auto-commit then commits stored offsets in the background, and the
 * revoke path commits synchronously.  partition.assignment.strategy
 * defaults to cooperative-sticky; the eager protocol is handled too.
 *
 * Producer: enable.idempotence=true (acks=all, ordered retries).  Each
 * output carries its batch as the message opaque; the delivery report
 * acknowledges it.  A retriable failure (the delivery timeout expired
 * while brokers were away) is produced again with the same bytes, so
 * the batch never completes without its output.  A permanent failure
 * (MSG_SIZE_TOO_LARGE, INVALID_RECORD, authorization) sends the record to
 * the DLQ with the reason, once; if that fails too the batch is marked
 * failed and the engine stops without committing it.
 *
 * Engine thread only.
 */
#include "kafka.h"

#include "json.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KCOMP "kafka"

const struct sp_cfg_key sp_kafka_keys[] = {
    {"kafka.embedded", SP_CFG_BOOL, "false", 0, 0,
     "Start librdkafka's mock cluster in-process and use it (demo, tests); "
     "kafka.brokers is then ignored", 0, NULL},
    {"kafka.embedded_brokers", SP_CFG_INT, "1", 1, 5,
     "Brokers of the embedded mock cluster", 0, NULL},
    {"kafka.embedded_partitions", SP_CFG_INT, "4", 1, 256,
     "Partitions of each topic the embedded mock cluster creates", 0, NULL},
    {"kafka.brokers", SP_CFG_STR, "localhost:9092", 0, 0,
     "Bootstrap servers (Event Hubs: <namespace>.servicebus.windows.net:9093)",
     0, NULL},
    {"kafka.group", SP_CFG_STR, "socpilot", 0, 0,
     "Consumer group id shared by all instances", 0, NULL},
    {"kafka.client_id", SP_CFG_STR, "socpilot", 0, 0, "Kafka client.id", 0,
     NULL},
    {"kafka.client", SP_CFG_MAP, NULL, 0, 0,
     "librdkafka properties for both consumer and producer (security.protocol, "
     "sasl.*, ssl.*)", 0, NULL},
    {"kafka.consumer", SP_CFG_MAP, NULL, 0, 0,
     "librdkafka consumer properties, passed through (override kafka.client)",
     0, NULL},
    {"kafka.producer", SP_CFG_MAP, NULL, 0, 0,
     "librdkafka producer properties, passed through (override kafka.client)",
     0, NULL},
};
const size_t sp_kafka_n_keys = SP_ARRAY_SIZE(sp_kafka_keys);

struct sp_mock {
    rd_kafka_t *rk;                  /* hosts the cluster's threads */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
};

struct sp_kafka {
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_queue_t *cq;            /* consumer queue */
    struct sp_mock *mock;
    char *bootstraps;
    char *dlq_topic;
    struct sp_kafka_hooks hooks;
    struct sp_sink sink;
    bool paused;
    bool shut;
    int assigned;
    bool cooperative;
    bool ever_assigned;              /* a rebalance gave it partitions */
    bool keep_consumer;              /* never destroyed (see join_settle) */
    struct sp_counter *c_produced, *c_delivered, *c_redelivered,
        *c_delivery_failed, *c_dlq_publish_failed, *c_consumed,
        *c_consume_errors, *c_rebalances, *c_redo;
    /* The consumer's view of the cluster, from librdkafka's statistics
     * (served with the consumer queue, so on the engine thread). */
    int64_t stats_interval_ms;      /* 0: no statistics, nothing known */
    int64_t last_stats_ms, last_up_ms;
    int brokers_up;                 /* connected, in the last statistics */
    struct sp_gauge *g_brokers_up;
    /* Outputs to produce again that found the producer queue full inside
     * a delivery report (see redo_push), oldest first. */
    struct redo *redo_head, *redo_tail;
    size_t n_redo;
};

struct redo {
    struct redo *next;
    struct sp_batch *batch;         /* still pending for this output */
    char *topic;
    void *key, *val;
    size_t klen, vlen;
    rd_kafka_headers_t *hdrs;       /* owned until produced */
};

enum sp_err sp_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                              const char *value, struct sp_error *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK)
        return sp_error_set(err, SP_ERR_CONFIG, "kafka property %s: %s", name,
                            errstr);
    return SP_OK;
}

/* ---- logging bridge ------------------------------------------------------ */

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    SP_UNUSED(rk);
    if (level <= 3)
        sp_log_error(KCOMP, "%s: %s", fac, buf);
    else if (level <= 4)
        sp_log_warn(KCOMP, "%s: %s", fac, buf);
    else if (level <= 6)
        sp_log_info(KCOMP, "%s: %s", fac, buf);
    else
        sp_log_debug(KCOMP, "%s: %s", fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
    static struct sp_log_rl rl;
    SP_UNUSED(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        sp_log_error(KCOMP, "fatal error %s: %s", rd_kafka_err2name(orig), buf);
        return;
    }
    sp_log_warn_rl(&rl, 5000, KCOMP, "%s: %s", rd_kafka_err2name(err), reason);
}

/* Whether member key of b is the string want. */
static bool str_is(const struct sp_json *b, const char *key, const char *want)
{
    const char *v = sp_json_str(b, key);
    return v && strcmp(v, want) == 0;
}

/* The brokers the consumer is connected to (state UP) in the statistics'
 * "brokers": the internal pseudo-broker aside, and a logical broker
 * (librdkafka's "GroupCoordinator", a connection of its own to the
 * coordinator) counted only when no other connection to its node is up,
 * so one broker counts once (a consumer with no partition led there
 * talks to the coordinator through the logical broker alone). */
static int brokers_up(const struct sp_json *brokers)
{
    int up = 0;
    sp_json_foreach(brokers, b) {
        if (!str_is(b, "state", "UP") || str_is(b, "source", "internal"))
            continue;
        int64_t id, other;
        if (str_is(b, "source", "logical") &&
            sp_json_int(sp_json_get(b, "nodeid"), &id)) {
            bool seen = false;
            sp_json_foreach(brokers, o) {
                if (!str_is(o, "source", "logical") && str_is(o, "state", "UP") &&
                    sp_json_int(sp_json_get(o, "nodeid"), &other) && other == id)
                    seen = true;
            }
            if (seen)
                continue;
        }
        up++;
    }
    return up;
}

/* Counts the brokers the consumer is connected to (brokers_up), from the
 * statistics JSON. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct sp_kafka *k = opaque;
    if (!k || rk != k->consumer)
        return 0;                   /* 0: librdkafka frees json */
    struct sp_arena a;
    sp_arena_init(&a, len * 8 + ((size_t)1 << 20));
    struct sp_json_limits lim = {len + 1, 64, 100000000};
    struct sp_json_error jerr;
    const struct sp_json *root = sp_json_parse(&a, json, len, &lim, &jerr);
    if (root) {
        int up = brokers_up(sp_json_get(root, "brokers"));
        int64_t now = sp_now_ms();
        k->last_stats_ms = now;
        k->brokers_up = up;
        if (up > 0)
            k->last_up_ms = now;
        sp_gauge_set(k->g_brokers_up, up);
    }
    sp_arena_fini(&a);
    return 0;
}

/* ---- configuration ------------------------------------------------------- */

struct conf_apply {
    rd_kafka_conf_t *conf;
    struct sp_error *err;
    const char *map;
    enum sp_err rc;
};

static int conf_apply_cb(const char *name, const char *value, void *ud)
{
    struct conf_apply *ca = ud;
    char errstr[512];
    if (rd_kafka_conf_set(ca->conf, name, value, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        ca->rc = sp_error_set(ca->err, SP_ERR_CONFIG, "%s.%s: %s", ca->map,
                              name, errstr);
        return 1;
    }
    return 0;
}

static enum sp_err conf_apply_map(rd_kafka_conf_t *conf,
                                  const struct sp_config *cfg, const char *map,
                                  struct sp_error *err)
{
    struct conf_apply ca = {conf, err, map, SP_OK};
    sp_config_map_each(cfg, map, conf_apply_cb, &ca);
    return ca.rc;
}

/* The user's maps onto conf: kafka.client, then the role's. */
static enum sp_err conf_apply_maps(rd_kafka_conf_t *conf,
                                   const struct sp_config *cfg,
                                   const char *role_map, struct sp_error *err)
{
    enum sp_err e = conf_apply_map(conf, cfg, "kafka.client", err);
    return e ? e : conf_apply_map(conf, cfg, role_map, err);
}

/*
 * What the maps make of property name: a conf gets start, then the maps,
 * and *got is what librdkafka reads back (so aliases such as
 * request.required.acks count, and spellings such as -1 for all read as
 * start does: *norm is start read back).  SP_ERR_CONFIG (err set) when a
 * map does not apply.  *got is left empty when there is nothing to
 * compare (the property cannot be read, or start is too long to), and
 * says so when only the maps' value is too long for it.
 */
static enum sp_err conf_read_back(const struct sp_config *cfg,
                                  const char *role_map, const char *name,
                                  const char *start, char (*norm)[256],
                                  char (*got)[256], struct sp_error *err)
{
    (*norm)[0] = (*got)[0] = '\0';
    char errstr[256];
    size_t nn = sizeof(*norm), n = sizeof(*got);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    enum sp_err e = SP_OK;
    if (rd_kafka_conf_set(conf, name, start, errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK &&
        rd_kafka_conf_get(conf, name, *norm, &nn) == RD_KAFKA_CONF_OK &&
        nn <= sizeof(*norm) &&
        !(e = conf_apply_maps(conf, cfg, role_map, err))) {
        if (rd_kafka_conf_get(conf, name, *got, &n) != RD_KAFKA_CONF_OK)
            (*got)[0] = '\0';
        else if (n > sizeof(*got))
            snprintf(*got, sizeof(*got), "(%zu bytes)", n - 1);
    }
    rd_kafka_conf_destroy(conf);
    return e;
}

/*
 * What socpilot sets itself, whatever the kafka.* maps say: the settings
 * its delivery semantics depend on (and group.id, from kafka.group).  A
 * map that sets one of them to something else is refused rather than
 * silently overridden: the operator meant something by it.
 */
struct forced {
    const char *name, *value, *why;
};

static const struct forced consumer_forced[] = {
    {"enable.auto.offset.store", "false",
     "only offsets of acknowledged batches may be committed"},
    {"enable.partition.eof", "false",
     "the engine does not handle end-of-partition events"},
    {NULL, NULL, NULL}};
static const struct forced producer_forced[] = {
    {"enable.idempotence", "true",
     "outputs must survive a broker failure, in order, without duplicates"},
    {"acks", "all",
     "outputs must survive a broker failure, in order, without duplicates"},
    {NULL, NULL, NULL}};

/* Refuses f when the maps set it to another value. */
static enum sp_err check_forced(const struct sp_config *cfg,
                                const char *role_map, const struct forced *f,
                                struct sp_error *err)
{
    char norm[256], got[256];
    enum sp_err e = conf_read_back(cfg, role_map, f->name, f->value, &norm,
                                   &got, err);
    if (!e && got[0] && strcmp(got, norm) != 0)
        e = sp_error_set(err, SP_ERR_CONFIG, "kafka.client/%s: %s=%s is not "
                         "allowed: socpilot sets %s=%s (%s)", role_map,
                         f->name, got, f->name, f->value, f->why);
    return e;
}

/*
 * What the forced enable.idempotence=true makes librdkafka refuse when the
 * producer is created (rd_kafka_new, so at `run`, not at check-config):
 * max.in.flight above 5, retries below 1, when the operator set them.
 * Each starts within its bound, and what the maps make of it must still
 * be within it.
 */
static const struct {
    const char *name, *start;
    long long min, max;
} idempotence_limits[] = {
    {"max.in.flight", "5", 1, 5},
    {"retries", "2147483647", 1, 2147483647LL},
};

static enum sp_err check_idempotence(const struct sp_config *cfg,
                                     struct sp_error *err)
{
    enum sp_err e = SP_OK;
    for (size_t i = 0; !e && i < SP_ARRAY_SIZE(idempotence_limits); i++) {
        const char *name = idempotence_limits[i].name;
        char norm[256], got[256];
        long long v;
        e = conf_read_back(cfg, "kafka.producer", name,
                           idempotence_limits[i].start, &norm, &got, err);
        if (!e && sscanf(got, "%lld", &v) == 1 &&
            (v < idempotence_limits[i].min || v > idempotence_limits[i].max))
            e = sp_error_set(err, SP_ERR_CONFIG, "kafka.client/"
                             "kafka.producer: %s=%s is not allowed: with "
                             "socpilot's enable.idempotence=true librdkafka "
                             "needs %lld..%lld", name, got,
                             idempotence_limits[i].min,
                             idempotence_limits[i].max);
    }
    return e;
}

enum sp_err sp_kafka_check_config(const struct sp_config *cfg,
                                  struct sp_error *err)
{
    /* librdkafka takes an empty group.id for none: the subscription then
     * fails at start-up ('Local: Unknown group'), and a group.id set in a
     * map could not be told from it. */
    const char *group = sp_config_str(cfg, "kafka.group");
    if (!group || !*group)
        return sp_error_set(err, SP_ERR_CONFIG, "kafka.group: must not be "
                            "empty (the consumer group every instance joins)");
    static const struct {
        const char *map;
        const struct forced *forced;
    } roles[] = {{"kafka.consumer", consumer_forced},
                 {"kafka.producer", producer_forced}};
    for (size_t i = 0; i < SP_ARRAY_SIZE(roles); i++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        enum sp_err e = conf_apply_maps(conf, cfg, roles[i].map, err);
        rd_kafka_conf_destroy(conf);
        for (const struct forced *f = roles[i].forced; !e && f->name; f++)
            e = check_forced(cfg, roles[i].map, f, err);
        if (e)
            return e;
    }
    const struct forced group_id = {"group.id", group,
                                    "set kafka.group instead"};
    enum sp_err e = check_forced(cfg, "kafka.consumer", &group_id, err);
    return e ? e : check_idempotence(cfg, err);
}

/*
 * Builds a handle's conf in three layers: our defaults, then the user's
 * kafka.client and role maps (so they can tune anything), then the
 * settings our delivery semantics depend on, which always win.
 */
static rd_kafka_conf_t *build_conf(const struct sp_kafka *k,
                                   const struct sp_config *cfg,
                                   const char *const (*defaults)[2],
                                   const char *role_map,
                                   const struct forced *forced,
                                   struct sp_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (sp_kafka_conf_set(conf, "bootstrap.servers", k->bootstraps, err) ||
        sp_kafka_conf_set(conf, "client.id",
                          sp_config_str(cfg, "kafka.client_id"), err))
        goto fail;
    for (size_t i = 0; defaults[i][0]; i++)
        if (sp_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err))
            goto fail;
    if (conf_apply_maps(conf, cfg, role_map, err))
        goto fail;
    for (const struct forced *f = forced; f->name; f++)
        if (sp_kafka_conf_set(conf, f->name, f->value, err))
            goto fail;
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    rd_kafka_conf_set_opaque(conf, (void *)k);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- producer ------------------------------------------------------------ */

static bool permanent_delivery_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return true;
    default:
        return false;
    }
}

static rd_kafka_resp_err_t produce_raw(struct sp_kafka *k,
                                       struct sp_batch *batch,
                                       const char *topic, const void *key,
                                       size_t klen, const void *val,
                                       size_t vlen, rd_kafka_headers_t *hdrs)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->producer, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY((void *)key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(batch), RD_KAFKA_V_END);
    return err;
}

/*
 * A delivery report must not wait for room in the producer queue: the
 * message it reports still holds its slot until the callback returns, so
 * after a broker outage longer than message.timeout.ms, with the queue
 * full, each report would poll for room from inside the last one, as deep
 * as the queue is long.  An output to produce again that finds the queue
 * full is kept here instead (its batch stays pending) and produced from
 * the engine's thread by redo_drain.
 */
static bool redo_push(struct sp_kafka *k, struct sp_batch *batch,
                      const char *topic, const void *key, size_t klen,
                      const void *val, size_t vlen, rd_kafka_headers_t *hdrs)
{
    struct redo *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->topic = strdup(topic);
    r->key = klen ? malloc(klen) : NULL;
    r->val = vlen ? malloc(vlen) : NULL;
    if (!r->topic || (klen && !r->key) || (vlen && !r->val)) {
        free(r->topic);
        free(r->key);
        free(r->val);
        free(r);
        return false;
    }
    if (klen)
        memcpy(r->key, key, klen);
    if (vlen)
        memcpy(r->val, val, vlen);
    r->klen = klen;
    r->vlen = vlen;
    r->hdrs = hdrs;
    r->batch = batch;
    if (k->redo_tail)
        k->redo_tail->next = r;
    else
        k->redo_head = r;
    k->redo_tail = r;
    k->n_redo++;
    sp_counter_add(k->c_redo, 1);
    return true;
}

static void redo_free(struct redo *r)
{
    free(r->topic);
    free(r->key);
    free(r->val);
    free(r);
}

/* Produces what redo_push kept, oldest first, while the queue has room.
 * Engine thread only (not from a delivery report). */
static void redo_drain(struct sp_kafka *k)
{
    while (k->redo_head) {
        struct redo *r = k->redo_head;
        rd_kafka_resp_err_t err = produce_raw(k, r->batch, r->topic, r->key,
                                              r->klen, r->val, r->vlen,
                                              r->hdrs);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return;
        k->redo_head = r->next;
        if (!k->redo_head)
            k->redo_tail = NULL;
        k->n_redo--;
        if (err) {
            if (r->hdrs)
                rd_kafka_headers_destroy(r->hdrs);
            sp_log_error(KCOMP, "producing to %s again failed: %s", r->topic,
                         rd_kafka_err2str(err));
            sp_counter_add(k->c_delivery_failed, 1);
            sp_batch_ack(r->batch, false);
        }
        redo_free(r);
    }
}

/* Gives up what is still kept (shutting down): not delivered, so its
 * batch is not committed and is replayed.  ack false: the batches are
 * gone already (freeing the handles), nothing to tell them. */
static void redo_abandon(struct sp_kafka *k, bool ack)
{
    while (k->redo_head) {
        struct redo *r = k->redo_head;
        k->redo_head = r->next;
        if (r->hdrs)
            rd_kafka_headers_destroy(r->hdrs);
        if (ack)
            sp_batch_ack(r->batch, false);
        redo_free(r);
    }
    k->redo_tail = NULL;
    k->n_redo = 0;
}

/* From a delivery report: produces, or keeps the output for redo_drain
 * when the queue is full.  On success (either) hdrs belong to librdkafka
 * or to the kept copy. */
static rd_kafka_resp_err_t produce_or_keep(struct sp_kafka *k,
                                           struct sp_batch *batch,
                                           const char *topic, const void *key,
                                           size_t klen, const void *val,
                                           size_t vlen, rd_kafka_headers_t *hdrs)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    if (!k->redo_head)              /* keep the order of the kept ones */
        err = produce_raw(k, batch, topic, key, klen, val, vlen, hdrs);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return err;
    return redo_push(k, batch, topic, key, klen, val, vlen, hdrs)
               ? RD_KAFKA_RESP_ERR_NO_ERROR
               : RD_KAFKA_RESP_ERR__FAIL;
}

/* How long produce_wait waits for room before it gives the batch back
 * to the engine (retried with backoff), which meanwhile serves
 * rebalances and shutdown. */
#define PRODUCE_WAIT_MAX_MS 5000

/* Produces, waiting out a full local queue (QUEUE_FULL) by serving
 * delivery reports: this is where backpressure from the brokers reaches
 * the engine.  QUEUE_FULL after PRODUCE_WAIT_MAX_MS.  Engine thread
 * only. */
static rd_kafka_resp_err_t produce_wait(struct sp_kafka *k,
                                        struct sp_batch *batch,
                                        const char *topic, const void *key,
                                        size_t klen, const void *val,
                                        size_t vlen, rd_kafka_headers_t *hdrs)
{
    int64_t deadline = sp_now_ms() + PRODUCE_WAIT_MAX_MS;
    for (;;) {
        redo_drain(k);
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
        if (!k->redo_head)
            err = produce_raw(k, batch, topic, key, klen, val, vlen, hdrs);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || sp_now_ms() >= deadline)
            return err;
        rd_kafka_poll(k->producer, 50);
    }
}

/* An output the brokers refused goes to the DLQ cut to these: the
 * refusal is often its size (the topic's max.message.bytes), and the
 * record says what failed; the output can be made again from its input.
 * A DLQ record refused as too large is sent again cut to the minimum. */
#define DLQ_OUTPUT_MAX_VALUE (64 * 1024)

static bool has_header(rd_kafka_headers_t *h, const char *name)
{
    const void *v;
    size_t n;
    return rd_kafka_header_get_last(h, name, &v, &n) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* The headers of rkm's DLQ copy: its own, plus (output) why it failed
 * and where it was going, plus what was cut (the original sizes kept
 * when a header already gives them: the input's). */
static rd_kafka_headers_t *dlq_headers(const rd_kafka_message_t *rkm,
                                       bool output, size_t vlen, size_t klen)
{
    rd_kafka_headers_t *hdrs = NULL, *orig = NULL;
    if (rd_kafka_message_headers(rkm, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        orig)
        hdrs = rd_kafka_headers_copy(orig);
    if (!hdrs)
        hdrs = rd_kafka_headers_new(8);
    if (output) {
        rd_kafka_header_remove(hdrs, "socpilot-error-reason");
        rd_kafka_header_add(hdrs, "socpilot-error-reason", -1,
                            "publish_failed", -1);
        rd_kafka_header_add(hdrs, "socpilot-error-detail", -1,
                            rd_kafka_err2str(rkm->err), -1);
        rd_kafka_header_add(hdrs, "socpilot-error-stage", -1, "publish", -1);
        rd_kafka_header_add(hdrs, "socpilot-output-topic", -1,
                            rd_kafka_topic_name(rkm->rkt), -1);
    }
    if (vlen < rkm->len || klen < rkm->key_len) {
        char size[24];
        rd_kafka_header_remove(hdrs, "socpilot-truncated");
        rd_kafka_header_add(hdrs, "socpilot-truncated", -1, "true", -1);
        if (vlen < rkm->len && !has_header(hdrs, "socpilot-original-size")) {
            snprintf(size, sizeof(size), "%zu", rkm->len);
            rd_kafka_header_add(hdrs, "socpilot-original-size", -1, size, -1);
        }
        if (klen < rkm->key_len &&
            !has_header(hdrs, "socpilot-original-key-size")) {
            snprintf(size, sizeof(size), "%zu", rkm->key_len);
            rd_kafka_header_add(hdrs, "socpilot-original-key-size", -1, size,
                                -1);
        }
    }
    return hdrs;
}

/*
 * Sends rkm, refused for good, to the DLQ in its place: an output
 * (output = true) cut to 64 KiB with why it failed, or a DLQ record the
 * brokers refused as too large cut to the minimum.  A copy the producer
 * itself finds too large is cut to the minimum too.  The refused message
 * is settled when its copy is on its way; if the copy cannot be produced
 * either, the batch fails.
 */
static void dlq_copy(struct sp_kafka *k, const rd_kafka_message_t *rkm,
                     struct sp_batch *batch, bool output)
{
    size_t vmax = output ? DLQ_OUTPUT_MAX_VALUE : SP_DLQ_MIN_VALUE;
    size_t kmax = output ? SP_DLQ_MAX_KEY : SP_DLQ_MIN_KEY;
    rd_kafka_resp_err_t err;
    for (;;) {
        size_t vlen = SP_MIN(rkm->len, vmax), klen = SP_MIN(rkm->key_len, kmax);
        rd_kafka_headers_t *hdrs = dlq_headers(rkm, output, vlen, klen);
        batch->pending++;
        err = produce_or_keep(k, batch, k->dlq_topic, rkm->key, klen,
                              rkm->payload, vlen, hdrs);
        if (!err)
            break;
        rd_kafka_headers_destroy(hdrs);
        batch->pending--;
        if (err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || vmax == SP_DLQ_MIN_VALUE)
            break;
        vmax = SP_DLQ_MIN_VALUE;
        kmax = SP_DLQ_MIN_KEY;
    }
    if (err) {
        sp_counter_add(k->c_dlq_publish_failed, 1);
        sp_batch_ack(batch, false);
        return;
    }
    sp_batch_ack(batch, true);   /* the refused message is settled */
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                      void *opaque)
{
    static struct sp_log_rl rl_retry, rl_perm;
    struct sp_kafka *k = opaque;
    struct sp_batch *batch = rkm->_private;
    SP_UNUSED(rk);
    if (!batch)
        return;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sp_counter_add(k->c_delivered, 1);
        if (batch->on_landed && rkm->offset >= 0)
            batch->on_landed(batch, batch->ud, rd_kafka_topic_name(rkm->rkt),
                             rkm->key, rkm->key_len, rkm->partition,
                             rkm->offset);
        sp_batch_ack(batch, true);
        return;
    }
    if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        /* Shutting down past the timeout: left unacknowledged on purpose,
         * so the batch is not committed and will be replayed. */
        sp_batch_ack(batch, false);
        return;
    }
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    bool to_dlq = k->dlq_topic && strcmp(topic, k->dlq_topic) == 0;
    if (!permanent_delivery_error(rkm->err) && k->shut) {
        /* Shutting down: not produced again (the batch is replayed). */
        sp_batch_ack(batch, false);
        return;
    }
    if (!permanent_delivery_error(rkm->err)) {
        /* Same bytes again; the batch stays pending. */
        sp_log_warn_rl(&rl_retry, 5000, KCOMP,
                       "delivery to %s failed (%s); producing again", topic,
                       rd_kafka_err2name(rkm->err));
        sp_counter_add(k->c_redelivered, 1);
        rd_kafka_headers_t *hdrs = NULL, *orig = NULL;
        if (rd_kafka_message_headers(rkm, &orig) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            orig)
            hdrs = rd_kafka_headers_copy(orig);
        rd_kafka_resp_err_t err =
            produce_or_keep(k, batch, topic, rkm->key, rkm->key_len,
                            rkm->payload, rkm->len, hdrs);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        sp_log_error(KCOMP, "producing to %s again failed: %s", topic,
                     rd_kafka_err2str(err));
        sp_counter_add(k->c_delivery_failed, 1);
        sp_batch_ack(batch, false);
        return;
    }
    sp_counter_add(k->c_delivery_failed, 1);
    sp_log_warn_rl(&rl_perm, 5000, KCOMP,
                   "output to %s rejected permanently (%s)%s", topic,
                   rd_kafka_err2name(rkm->err),
                   to_dlq ? "" : "; sending it to the DLQ");
    if (to_dlq && rkm->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
        (rkm->len > SP_DLQ_MIN_VALUE || rkm->key_len > SP_DLQ_MIN_KEY)) {
        dlq_copy(k, rkm, batch, false);
        return;
    }
    if (to_dlq || !k->dlq_topic) {
        sp_batch_ack(batch, false);
        return;
    }
    dlq_copy(k, rkm, batch, true);
}

static enum sp_err sink_produce(struct sp_sink *sink, struct sp_batch *batch,
                                const char *topic, const void *key,
                                size_t klen, const void *val, size_t vlen,
                                const struct sp_header *hdrs, size_t n_hdrs)
{
    struct sp_kafka *k = sink->ctx;
    rd_kafka_headers_t *h = NULL;
    if (n_hdrs) {
        h = rd_kafka_headers_new(n_hdrs);
        for (size_t i = 0; i < n_hdrs; i++)
            rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value,
                                (ssize_t)hdrs[i].len);
    }
    batch->pending++;
    rd_kafka_resp_err_t err =
        produce_wait(k, batch, topic, key, klen, val, vlen, h);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        static struct sp_log_rl rl;
        batch->pending--;
        if (h)
            rd_kafka_headers_destroy(h);
        sp_log_warn_rl(&rl, 5000, KCOMP, "producer queue full for %d ms "
                       "(brokers slow or away): the batch is retried",
                       PRODUCE_WAIT_MAX_MS);
        return SP_ERR_RETRY;
    }
    if (err) {
        batch->pending--;
        if (h)
            rd_kafka_headers_destroy(h);
        sp_log_error(KCOMP, "produce to %s: %s", topic, rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? SP_ERR_LIMIT
                                                           : SP_ERR_RETRY;
    }
    sp_counter_add(k->c_produced, 1);
    return SP_OK;
}

/* ---- consumer and rebalances --------------------------------------------- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct sp_kafka *k = opaque;
    k->cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    sp_counter_add(k->c_rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        k->ever_assigned = true;
        sp_log_info(KCOMP, "assigned %d partition(s) (%s)", parts->cnt,
                    k->cooperative ? "cooperative" : "eager");
        rd_kafka_error_t *e = NULL;
        if (k->cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        if (e) {
            sp_log_error(KCOMP, "assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        k->assigned = k->cooperative ? k->assigned + parts->cnt : parts->cnt;
        if (k->paused)
            rd_kafka_pause_partitions(rk, parts);
        if (k->hooks.on_assign)
            k->hooks.on_assign(k->hooks.ud, parts);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        sp_log_info(KCOMP, "revoking %d partition(s)", parts->cnt);
        if (k->hooks.on_revoke)
            k->hooks.on_revoke(k->hooks.ud, parts);
        /* Stored offsets of the revoked partitions go out now, before
         * another member can start on them. */
        rd_kafka_commit(rk, NULL, 0);
        if (k->cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
            k->assigned -= parts->cnt;
        } else {
            rd_kafka_assign(rk, NULL);
            k->assigned = 0;
        }
        if (k->assigned < 0)
            k->assigned = 0;
        return;
    }
    sp_log_error(KCOMP, "rebalance error: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
    k->assigned = 0;
}

static enum sp_err open_consumer(struct sp_kafka *k,
                                 const struct sp_config *cfg,
                                 struct sp_error *err)
{
    static const char *const defaults[][2] = {
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"auto.offset.reset", "earliest"},
        {"enable.auto.commit", "true"},
        /* Stored offsets go out every second: a crash or a rebalance the
         * broker refuses commits during replays at most about that much. */
        {"auto.commit.interval.ms", "1000"},
        /* Statistics say whether any broker is connected (readiness). */
        {"statistics.interval.ms", "5000"},
        {NULL, NULL}};
    /* Only offsets the engine stores (after acknowledgement) are
     * committed: not negotiable. */
    rd_kafka_conf_t *conf =
        build_conf(k, cfg, defaults, "kafka.consumer", consumer_forced, err);
    if (!conf)
        return SP_ERR_CONFIG;
    if (sp_kafka_conf_set(conf, "group.id", sp_config_str(cfg, "kafka.group"),
                          err)) {
        rd_kafka_conf_destroy(conf);
        return SP_ERR_CONFIG;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    char ival[32] = "0";
    size_t ilen = sizeof(ival);
    if (rd_kafka_conf_get(conf, "statistics.interval.ms", ival, &ilen) ==
        RD_KAFKA_CONF_OK)
        k->stats_interval_ms = strtoll(ival, NULL, 10);
    k->last_up_ms = sp_now_ms();
    char errstr[512];
    k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!k->consumer) {
        rd_kafka_conf_destroy(conf);
        return sp_error_set(err, SP_ERR_CONFIG, "kafka consumer: %s", errstr);
    }
    rd_kafka_poll_set_consumer(k->consumer);
    k->cq = rd_kafka_queue_get_consumer(k->consumer);

    const char *const *topics;
    size_t n = sp_config_list(cfg, "topics.input", &topics);
    if (n == 0)
        return sp_error_set(err, SP_ERR_CONFIG,
                            "topics.input: at least one input topic needed");
    rd_kafka_topic_partition_list_t *sub =
        rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e)
        return sp_error_set(err, SP_ERR_CONFIG, "subscribe: %s",
                            rd_kafka_err2str(e));
    return SP_OK;
}

static enum sp_err open_producer(struct sp_kafka *k,
                                 const struct sp_config *cfg,
                                 struct sp_error *err)
{
    static const char *const defaults[][2] = {
        {"linger.ms", "5"},
        {NULL, NULL}};
    rd_kafka_conf_t *conf =
        build_conf(k, cfg, defaults, "kafka.producer", producer_forced, err);
    if (!conf)
        return SP_ERR_CONFIG;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    char errstr[512];
    k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!k->producer) {
        rd_kafka_conf_destroy(conf);
        return sp_error_set(err, SP_ERR_CONFIG, "kafka producer: %s", errstr);
    }
    return SP_OK;
}

static void register_metrics(struct sp_kafka *k, struct sp_metrics *m)
{
    if (!m)
        return;
    k->c_produced = sp_metrics_counter(m, "kafka_produced_total",
                                       "Records handed to the producer", NULL);
    k->c_delivered = sp_metrics_counter(
        m, "kafka_delivered_total", "Records acknowledged by the brokers", NULL);
    k->c_redelivered = sp_metrics_counter(
        m, "kafka_reproduced_total",
        "Records produced again after a retriable delivery failure", NULL);
    k->c_delivery_failed = sp_metrics_counter(
        m, "kafka_delivery_failures_total", "Failed delivery reports", NULL);
    k->c_dlq_publish_failed = sp_metrics_counter(
        m, "kafka_dlq_publish_failures_total",
        "Records that could not be delivered even to the DLQ", NULL);
    k->c_consumed = sp_metrics_counter(m, "kafka_consumed_total",
                                       "Messages consumed", NULL);
    k->c_consume_errors = sp_metrics_counter(
        m, "kafka_consume_errors_total", "Consumer error events", NULL);
    k->c_rebalances = sp_metrics_counter(m, "kafka_rebalances_total",
                                         "Rebalance callbacks", NULL);
    k->c_redo = sp_metrics_counter(
        m, "kafka_redo_kept_total",
        "Outputs to produce again that found the producer queue full after "
        "a failed delivery, kept and produced once it had room", NULL);
    k->g_brokers_up = sp_metrics_gauge(
        m, "kafka_brokers_connected",
        "Brokers the consumer is connected to (librdkafka statistics)", NULL);
}

bool sp_kafka_reachable(const struct sp_kafka *k, int64_t now_ms,
                        char *reason, size_t n)
{
    if (!k || !k->consumer || k->stats_interval_ms <= 0)
        return true;                /* nothing known */
    int64_t grace = SP_MAX(3 * k->stats_interval_ms, (int64_t)1000);
    if (k->brokers_up > 0 || now_ms - k->last_up_ms < grace)
        return true;
    snprintf(reason, n, "kafka: no broker connected for %llds",
             (long long)((now_ms - k->last_up_ms) / 1000));
    return false;
}

struct sp_kafka *sp_kafka_open(const struct sp_config *cfg,
                               struct sp_metrics *m,
                               const struct sp_kafka_hooks *hooks,
                               bool consume, struct sp_error *err)
{
    struct sp_kafka *k = calloc(1, sizeof(*k));
    if (!k) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (sp_kafka_check_config(cfg, err)) {
        free(k);
        return NULL;
    }
    if (hooks)
        k->hooks = *hooks;
    k->sink.produce = sink_produce;
    k->sink.ctx = k;
    register_metrics(k, m);
    const char *dlq = sp_config_str(cfg, "topics.dlq");
    k->dlq_topic = dlq && *dlq ? strdup(dlq) : NULL;

    if (sp_config_bool(cfg, "kafka.embedded")) {
        const char *names[4];
        size_t nn = 0;
        const char *const *in;
        size_t n_in = sp_config_list(cfg, "topics.input", &in);
        const char *outs[] = {"topics.alerts", "topics.incidents", "topics.dlq"};
        for (size_t i = 0; i < SP_ARRAY_SIZE(outs); i++) {
            const char *t = sp_config_str(cfg, outs[i]);
            if (t && *t)
                names[nn++] = t;
        }
        int parts = (int)sp_config_int(cfg, "kafka.embedded_partitions");
        k->mock = sp_mock_start((int)sp_config_int(cfg, "kafka.embedded_brokers"),
                                names, nn, parts, err);
        if (!k->mock)
            goto fail;
        for (size_t i = 0; i < n_in; i++)
            sp_mock_topic(k->mock, in[i], parts);
        k->bootstraps = strdup(sp_mock_bootstraps(k->mock));
        sp_log_info(KCOMP, "embedded mock cluster at %s", k->bootstraps);
    } else {
        k->bootstraps = strdup(sp_config_str(cfg, "kafka.brokers"));
    }
    if (open_producer(k, cfg, err))
        goto fail;
    if (consume && open_consumer(k, cfg, err))
        goto fail;
    return k;
fail:
    sp_kafka_close(k);
    return NULL;
}

/*
 * librdkafka before 2.3.0 aborts (an assertion in the cooperative-sticky
 * assignor, librdkafka issue 4312) when a consumer is closed after its
 * group chose the assignor and before the first assignment: a socpilot
 * stopped while joining its group (a rolling restart, a SIGTERM right
 * after start) died of SIGABRT.  Such a consumer is given the time to get
 * that assignment first, briefly (its messages, never processed, are not
 * stored: they are replayed); if none comes, it is left open, the process
 * being about to exit, rather than closed into the abort (the group then
 * drops the member after session.timeout.ms).  Nothing polls it again, and
 * its log callback does not use the freed opaque.
 */
#define JOIN_SETTLE_MAX_MS 2000

static bool join_settle_needed(struct sp_kafka *k)
{
    if (!k->consumer || k->ever_assigned || rd_kafka_version() >= 0x020300ff)
        return false;
    /* Without a member id it never got as far as a JoinGroup answer (the
     * brokers unreachable, say): nothing chosen, closing is safe. */
    char *mid = rd_kafka_memberid(k->consumer);
    bool joining = mid && mid[0];
    if (mid)
        rd_kafka_mem_free(k->consumer, mid);
    if (!joining)
        return false;
    char v[256];
    size_t n = sizeof(v);
    if (rd_kafka_conf_get(rd_kafka_conf(k->consumer),
                          "partition.assignment.strategy", v, &n) !=
        RD_KAFKA_CONF_OK)
        return true;
    return strstr(v, "cooperative-sticky") != NULL;
}

static void join_settle(struct sp_kafka *k, int timeout_ms)
{
    if (!join_settle_needed(k))
        return;
    int64_t until = sp_now_ms() + SP_MIN(timeout_ms, JOIN_SETTLE_MAX_MS);
    rd_kafka_message_t *msgs[64];
    while (!k->ever_assigned && k->cq && sp_now_ms() < until) {
        ssize_t n = rd_kafka_consume_batch_queue(k->cq, 100, msgs, 64);
        for (ssize_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
    }
    if (!k->ever_assigned) {
        k->keep_consumer = true;
        sp_log_warn(KCOMP, "the consumer got no partitions while joining its "
                    "group; left open (librdkafka %s would abort closing it "
                    "now)", rd_kafka_version_str());
    }
}

void sp_kafka_shutdown(struct sp_kafka *k, int timeout_ms)
{
    if (!k || k->shut)
        return;
    k->shut = true;
    if (k->producer) {
        sp_kafka_flush(k, timeout_ms);
        redo_abandon(k, true);
        rd_kafka_purge(k->producer,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(k->producer, 0);
        redo_abandon(k, true);      /* kept by the purge's reports */
    }
    if (k->consumer) {
        join_settle(k, JOIN_SETTLE_MAX_MS);
        if (!k->keep_consumer)
            rd_kafka_consumer_close(k->consumer);
    }
}

void sp_kafka_close(struct sp_kafka *k)
{
    if (!k)
        return;
    sp_kafka_shutdown(k, 2000);
    redo_abandon(k, false);         /* kept by reports during the close */
    if (k->consumer && !k->keep_consumer) {
        if (k->cq)
            rd_kafka_queue_destroy(k->cq);
        rd_kafka_destroy(k->consumer);
    }
    if (k->producer)
        rd_kafka_destroy(k->producer);
    sp_mock_stop(k->mock);
    free(k->bootstraps);
    free(k->dlq_topic);
    free(k);
}

struct sp_sink *sp_kafka_sink(struct sp_kafka *k)
{
    return &k->sink;
}

const char *sp_kafka_bootstraps(const struct sp_kafka *k)
{
    return k->bootstraps;
}

rd_kafka_mock_cluster_t *sp_kafka_mock(struct sp_kafka *k)
{
    return k->mock ? k->mock->mc : NULL;
}

size_t sp_kafka_consume(struct sp_kafka *k, rd_kafka_message_t **msgs,
                        size_t max, int timeout_ms)
{
    static struct sp_log_rl rl;
    if (!k->cq)
        return 0;
    ssize_t n = rd_kafka_consume_batch_queue(k->cq, timeout_ms, msgs, max);
    if (n <= 0)
        return 0;
    size_t out = 0;
    for (ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *rkm = msgs[i];
        if (rkm->err) {
            sp_counter_add(k->c_consume_errors, 1);
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                sp_log_warn_rl(&rl, 5000, KCOMP, "consume: %s",
                               rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        msgs[out++] = rkm;
    }
    sp_counter_add(k->c_consumed, out);
    return out;
}

void sp_kafka_poll(struct sp_kafka *k, int timeout_ms)
{
    rd_kafka_poll(k->producer, timeout_ms);
    redo_drain(k);
}

int sp_kafka_outstanding(struct sp_kafka *k)
{
    return rd_kafka_outq_len(k->producer) + (int)k->n_redo;
}

int sp_kafka_flush(struct sp_kafka *k, int timeout_ms)
{
    int64_t deadline = sp_now_ms() + timeout_ms;
    while (sp_kafka_outstanding(k) > 0) {
        int64_t left = deadline - sp_now_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(k->producer, (int)SP_MIN(left, 100));
        redo_drain(k);
    }
    return sp_kafka_outstanding(k);
}

void sp_kafka_store(struct sp_kafka *k, const char *topic, int32_t partition,
                    int64_t offset)
{
    if (!k->consumer)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset + 1;
    rd_kafka_offsets_store(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

enum sp_err sp_kafka_commit(struct sp_kafka *k)
{
    if (!k->consumer)
        return SP_OK;
    rd_kafka_resp_err_t e = rd_kafka_commit(k->consumer, NULL, 0);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        sp_log_warn(KCOMP, "commit: %s", rd_kafka_err2str(e));
        return SP_ERR_RETRY;
    }
    return SP_OK;
}

void sp_kafka_pause(struct sp_kafka *k, bool pause)
{
    if (!k->consumer || k->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(k->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        parts) {
        if (pause)
            rd_kafka_pause_partitions(k->consumer, parts);
        else
            rd_kafka_resume_partitions(k->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    k->paused = pause;
}

bool sp_kafka_fatal(struct sp_kafka *k, char *buf, size_t size)
{
    rd_kafka_t *hs[] = {k->consumer, k->producer};
    for (size_t i = 0; i < SP_ARRAY_SIZE(hs); i++) {
        char why[512];
        rd_kafka_resp_err_t e;
        if (!hs[i] || !(e = rd_kafka_fatal_error(hs[i], why, sizeof(why))))
            continue;
        snprintf(buf, size, "%s %s: %s", i ? "producer" : "consumer",
                 rd_kafka_err2name(e), why);
        return true;
    }
    return false;
}

rd_kafka_t *sp_kafka_producer(struct sp_kafka *k)
{
    return k->producer;
}

bool sp_kafka_is_paused(const struct sp_kafka *k)
{
    return k->paused;
}

int sp_kafka_assigned(const struct sp_kafka *k)
{
    return k->assigned;
}

/* ---- mock cluster -------------------------------------------------------- */

struct sp_mock *sp_mock_start(int brokers, const char *const *topics,
                              size_t n_topics, int partitions,
                              struct sp_error *err)
{
    struct sp_mock *mk = calloc(1, sizeof(*mk));
    if (!mk) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    char errstr[512];
    mk->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!mk->rk) {
        rd_kafka_conf_destroy(conf);
        sp_error_set(err, SP_ERR_CONFIG, "mock cluster handle: %s", errstr);
        free(mk);
        return NULL;
    }
    mk->mc = rd_kafka_mock_cluster_new(mk->rk, brokers);
    if (!mk->mc) {
        sp_error_set(err, SP_ERR_IO, "could not start the mock cluster");
        sp_mock_stop(mk);
        return NULL;
    }
    mk->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(mk->mc));
    for (size_t i = 0; i < n_topics; i++) {
        if (sp_mock_topic(mk, topics[i], partitions) != SP_OK) {
            sp_error_set(err, SP_ERR_INVALID, "mock topic %s", topics[i]);
            sp_mock_stop(mk);
            return NULL;
        }
    }
    return mk;
}

enum sp_err sp_mock_topic(struct sp_mock *mk, const char *topic,
                          int partitions)
{
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(mk->mc, topic, partitions, 1);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return SP_ERR_INVALID;
    return SP_OK;
}

const char *sp_mock_bootstraps(const struct sp_mock *mk)
{
    return mk->bootstraps;
}

rd_kafka_mock_cluster_t *sp_mock_cluster(struct sp_mock *mk)
{
    return mk->mc;
}

void sp_mock_stop(struct sp_mock *mk)
{
    if (!mk)
        return;
    if (mk->mc)
        rd_kafka_mock_cluster_destroy(mk->mc);
    if (mk->rk)
        rd_kafka_destroy(mk->rk);
    free(mk->bootstraps);
    free(mk);
}
