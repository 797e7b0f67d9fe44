/*
 * kit.h - what the integration tests share: a string-keyed counter
 * table, a producer that records where each message landed, a reader
 * that drains topics from the beginning, and committed-offset checks.
 * Everything talks to a real Kafka-protocol broker (librdkafka's mock
 * cluster, in-process or in another process).
 */
#ifndef SP_TEST_KIT_H
#define SP_TEST_KIT_H

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "sp.h"

/* ---- a tiny string -> (count, payload) table ------------------------------ */

struct kit_entry {
    char *key;
    int count;
    char *value;          /* last value seen */
    size_t value_len;
    int64_t aux;
};

struct kit_table {
    struct kit_entry *e;
    size_t cap, n;
};

static inline uint64_t kit_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static inline void kit_table_init(struct kit_table *t, size_t cap)
{
    t->cap = 16;
    while (t->cap < cap * 2)
        t->cap *= 2;
    t->e = calloc(t->cap, sizeof(*t->e));
    t->n = 0;
}

static inline struct kit_entry *kit_table_get(struct kit_table *t,
                                              const char *key, size_t kl,
                                              bool create)
{
    size_t i = kit_hash(key, kl) & (t->cap - 1);
    for (;;) {
        struct kit_entry *e = &t->e[i];
        if (!e->key) {
            if (!create || t->n * 2 >= t->cap)
                return NULL;
            e->key = malloc(kl + 1);
            memcpy(e->key, key, kl);
            e->key[kl] = '\0';
            t->n++;
            return e;
        }
        if (strlen(e->key) == kl && memcmp(e->key, key, kl) == 0)
            return e;
        i = (i + 1) & (t->cap - 1);
    }
}

static inline void kit_table_free(struct kit_table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->e[i].key);
        free(t->e[i].value);
    }
    free(t->e);
}

/* ---- producing ------------------------------------------------------------- */

struct kit_where {
    int32_t partition;
    int64_t offset;
};

struct kit_producer {
    rd_kafka_t *rk;
    struct kit_where *where;   /* by message index (the opaque) */
    long acked, failed;
};

static inline void kit_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                          void *opaque)
{
    struct kit_producer *kp = opaque;
    (void)rk;
    if (m->err) {
        kp->failed++;
        return;
    }
    kp->acked++;
    size_t idx = (size_t)(uintptr_t)m->_private;
    if (kp->where) {
        kp->where[idx].partition = m->partition;
        kp->where[idx].offset = m->offset;
    }
}

static inline int kit_producer_open(struct kit_producer *kp,
                                    const char *brokers, size_t n_where)
{
    memset(kp, 0, sizeof(*kp));
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "10", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "message.max.bytes", "8000000", errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, kit_dr);
    rd_kafka_conf_set_opaque(conf, kp);
    kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!kp->rk)
        return -1;
    if (n_where)
        kp->where = calloc(n_where, sizeof(*kp->where));
    return 0;
}

static inline int kit_produce(struct kit_producer *kp, const char *topic,
                              size_t idx, const char *key, const void *val,
                              size_t len)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            kp->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY((void *)key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)val, len),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)idx), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(kp->rk, 20);
            continue;
        }
        return e ? -1 : 0;
    }
}

static inline void kit_producer_close(struct kit_producer *kp)
{
    rd_kafka_flush(kp->rk, 30000);
    rd_kafka_destroy(kp->rk);
    free(kp->where);
}

/* ---- reading ------------------------------------------------------------------ */

/* A consumer assigned to every partition of `topics` from the start. */
static inline rd_kafka_t *kit_reader(const char *brokers,
                                     const char *const *topics, int n_topics)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "kit-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "fetch.message.max.bytes", "8000000", errstr,
                      sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk)
        return NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < n_topics; t++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topics[t], NULL);
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1)
            for (int p = 0; p < md->topics[0].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(l, topics[t], p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static inline const char *kit_header(const rd_kafka_message_t *m,
                                     const char *name, char *buf, size_t n)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vl;
    buf[0] = '\0';
    if (rd_kafka_message_headers(m, &h) || !h ||
        rd_kafka_header_get_last(h, name, &v, &vl))
        return NULL;
    snprintf(buf, n, "%.*s", (int)vl, (const char *)v);
    return buf;
}

/* Output counts by key: alerts (topic alerts_topic) and DLQ records
 * (anything else the reader is assigned to). */
struct kit_seen {
    const char *alerts_topic;
    struct kit_table alerts, dlq;
    size_t total_alerts, total_dlq;
};

/* Reads for ms milliseconds, counting every record by key. */
static inline void kit_drain(rd_kafka_t *rd, struct kit_seen *s, int ms)
{
    int64_t until = sp_now_ms() + ms;
    while (sp_now_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd, 20);
        if (!m)
            continue;
        if (!m->err) {
            bool alert = strcmp(rd_kafka_topic_name(m->rkt), s->alerts_topic) == 0;
            struct kit_entry *e = kit_table_get(alert ? &s->alerts : &s->dlq,
                                                m->key ? m->key : "",
                                                m->key_len, true);
            if (e)
                e->count++;
            if (alert)
                s->total_alerts++;
            else
                s->total_dlq++;
        }
        rd_kafka_message_destroy(m);
    }
}

/*
 * Compares what was read with what messages 0..n-1 (gen_make, keyed
 * "m<i>") must produce: counts records missing and duplicated, and prints
 * the first few missing alert ids to stderr.
 */
static inline void kit_outcome(struct kit_seen *s, size_t n,
                               const struct gen_opts *o, size_t *missing,
                               size_t *dupes)
{
    struct gen_item it;
    memset(&it, 0, sizeof(it));
    sp_buf_init(&it.buf, 0);
    *missing = *dupes = 0;
    for (size_t i = 0; i < n; i++) {
        gen_make(&it, i, o);
        if (it.reason) {
            char key[32];
            snprintf(key, sizeof(key), "m%zu", i);
            struct kit_entry *e = kit_table_get(&s->dlq, key, strlen(key), false);
            if (!e)
                (*missing)++;
            else
                *dupes += (size_t)e->count - 1;
            continue;
        }
        for (int k = 0; k < it.n_ids; k++) {
            struct kit_entry *e = kit_table_get(&s->alerts, it.exp[k].id,
                                                strlen(it.exp[k].id), false);
            if (!e) {
                if ((*missing)++ < 5)
                    fprintf(stderr, "  missing: alert %s (message %zu)\n",
                            it.exp[k].id, i);
            } else {
                *dupes += (size_t)e->count - 1;
            }
        }
    }
    sp_buf_fini(&it.buf);
}

/* Sum over partitions of (committed offset) vs (high watermark) for the
 * group; returns the number of partitions whose commit lags behind. */
static inline int kit_committed_lag(const char *brokers, const char *group,
                                    const char *topic, int partitions,
                                    long *lag_msgs)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    int behind = 0;
    *lag_msgs = 0;
    if (rd_kafka_committed(rk, l, 10000) == 0) {
        for (int p = 0; p < partitions; p++) {
            int64_t lo = 0, hi = 0;
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
            int64_t c = l->elems[p].offset;
            if (c < 0)
                c = lo;
            if (c < hi) {
                behind++;
                *lag_msgs += (long)(hi - c);
            }
        }
    } else {
        behind = partitions;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return behind;
}

#endif /* SP_TEST_KIT_H */
