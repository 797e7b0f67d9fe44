/*
 * redis_test.h - test helpers for anything that talks to Redis: start a
 * real `redis-server` (the Debian package) on a free loopback port with a
 * private temp dir, wait until it answers PING, kill/restart it for fault
 * tests, stop it and remove its files; and an in-memory struct sp_sink
 * that records every output and acknowledges it (or fails it) at once.
 *
 * Header-only (static inline functions) so that any test program or
 * benchmark can include it without a build rule.  A program that uses it
 * must ignore SIGPIPE (a killed server otherwise kills the test).
 *
 * Thread-compatible: one struct per thread; the sink takes a mutex so
 * two stage instances on two threads may share one.
 */
#ifndef SP_REDIS_TEST_H
#define SP_REDIS_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"
#include "stage.h"

/* The test server is the product's private redis-server (the embedded
 * default's launcher, connectors/redis_server.h): one way to start,
 * restart, kill and clean up, for the demo and the tests alike. */
#define sp_test_redis sp_redis_server

static inline void sp_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static inline int sp_test_free_port(void)
{
    return sp_free_port();
}

/* A connection to the test server (NULL when it does not answer). */
static inline redisContext *sp_test_redis_connect(const struct sp_test_redis *tr)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", tr->port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

static inline bool sp_test_redis_ping(const struct sp_test_redis *tr)
{
    redisContext *c = sp_test_redis_connect(tr);
    if (!c)
        return false;
    /* Any answer will do: a server with requirepass says NOAUTH. */
    redisReply *r = redisCommand(c, "PING");
    bool ok = r && (r->type == REDIS_REPLY_STATUS ||
                    r->type == REDIS_REPLY_ERROR);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

static inline redisReply *sp_test_redis_vcmd(const struct sp_test_redis *tr,
                                             const char *fmt, va_list ap)
{
    redisContext *c = sp_test_redis_connect(tr);
    if (!c)
        return NULL;
    va_list again;
    va_copy(again, ap);
    redisReply *r = redisvCommand(c, fmt, ap);
    redisFree(c);
    /* A cluster node that does not hold the key: ask the one that does. */
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0) {
        const char *colon = strrchr(r->str, ':');
        struct sp_test_redis other = *tr;
        other.port = colon ? atoi(colon + 1) : tr->port;
        freeReplyObject(r);
        r = NULL;
        if ((c = sp_test_redis_connect(&other)) != NULL) {
            r = redisvCommand(c, fmt, again);
            redisFree(c);
        }
    }
    va_end(again);
    if (getenv("T_REDIS_ERR") && (!r || r->type == REDIS_REPLY_ERROR))
        fprintf(stderr, "  REDIS-ERR [%s]: %s\n", fmt, r ? r->str : "no reply");
    return r;
}

/* Runs one command on a fresh connection; returns the reply (caller
 * frees) or NULL.  A MOVED reply (a cluster node) is followed once.
 * hiredis splits the format at spaces: a value with a space goes in as
 * %s.  T_REDIS_ERR=1 prints every error reply (a set-up command that
 * silently failed makes a test that cannot fail). */
static inline redisReply *sp_test_redis_cmd(const struct sp_test_redis *tr,
                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = sp_test_redis_vcmd(tr, fmt, ap);
    va_end(ap);
    return r;
}

/* A number from one command: an integer reply, or for a string reply the
 * number after field (an INFO line, e.g. "used_memory:") or, with field
 * NULL, the string itself.  -1 when there is none. */
static inline long long sp_test_redis_int(const struct sp_test_redis *tr,
                                          const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = sp_test_redis_vcmd(tr, fmt, ap);
    va_end(ap);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_INTEGER) {
        v = r->integer;
    } else if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = field ? strstr(r->str, field) : r->str;
        if (p)
            v = atoll(p + (field ? strlen(field) : 0));
    }
    if (r)
        freeReplyObject(r);
    return v;
}

/*
 * Starts a fresh server (tr->persist and tr->extra are honoured).
 * Returns 1 on success, 0 when redis-server is not installed (skip the
 * test), -1 when it would not start.
 */
static inline int sp_test_redis_start(struct sp_test_redis *tr)
{
    enum sp_err e = sp_redis_server_start(tr, tr->persist, NULL);
    return e == SP_OK ? 1 : e == SP_ERR_NOTFOUND ? 0 : -1;
}

/* The same server again (same port, same dir: persisted data returns). */
static inline bool sp_test_redis_restart(struct sp_test_redis *tr)
{
    return sp_redis_server_restart(tr);
}

static inline void sp_test_redis_kill(struct sp_test_redis *tr, int sig)
{
    sp_redis_server_kill(tr, sig);
}

static inline void sp_test_redis_stop(struct sp_test_redis *tr)
{
    sp_redis_server_stop(tr);
}

/* ---- a Redis Cluster ------------------------------------------------------- */

#define SP_TEST_CLUSTER_MAX 8

struct sp_test_cluster {
    struct sp_test_redis node[SP_TEST_CLUSTER_MAX];
    char bus[SP_TEST_CLUSTER_MAX][16];          /* cluster bus ports */
    int n;
};

static inline bool sp_test_cluster_node_ok(const struct sp_test_redis *r)
{
    redisReply *rep = sp_test_redis_cmd(r, "CLUSTER INFO");
    bool ok = rep && rep->type == REDIS_REPLY_STRING &&
              strstr(rep->str, "cluster_state:ok");
    if (rep)
        freeReplyObject(rep);
    return ok;
}

static inline void sp_test_cluster_stop(struct sp_test_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        sp_test_redis_stop(&c->node[i]);
    c->n = 0;
}

/*
 * n masters (1..SP_TEST_CLUSTER_MAX) on loopback, cluster-enabled, the
 * slots split evenly in order (node 0 holds the lowest), joined and
 * waited for (cluster_state:ok everywhere, 10 s at most); persistent
 * (AOF, so a killed node restarts with its data) when persist, with
 * n_opts more redis-server arguments (at most 4).  Returns 1 on success,
 * 0 when redis-server is not installed, -1 on failure (nothing left
 * running).
 */
static inline int sp_test_cluster_start_opts(struct sp_test_cluster *c, int n,
                                             bool persist,
                                             const char *const *opts,
                                             int n_opts)
{
    memset(c, 0, sizeof(*c));
    if (n < 1 || n > SP_TEST_CLUSTER_MAX || n_opts < 0 || n_opts > 4)
        return -1;
    for (int i = 0; i < n; i++) {
        struct sp_test_redis *r = &c->node[i];
        snprintf(c->bus[i], sizeof(c->bus[i]), "%d", sp_test_free_port());
        r->extra[0] = "--cluster-enabled";
        r->extra[1] = "yes";
        r->extra[2] = "--cluster-port";
        r->extra[3] = c->bus[i];
        r->extra[4] = "--cluster-config-file";
        r->extra[5] = "nodes.conf";
        r->n_extra = 6;
        for (int j = 0; j < n_opts; j++)
            r->extra[r->n_extra++] = opts[j];
        r->persist = persist;
        int rc = sp_test_redis_start(r);
        c->n = i + 1;
        if (rc != 1) {
            sp_test_cluster_stop(c);
            return rc;
        }
    }
    for (int i = 0; i < n; i++) {
        int lo = 16384 * i / n, hi = 16384 * (i + 1) / n - 1;
        redisReply *rep = sp_test_redis_cmd(&c->node[i],
                                            "CLUSTER ADDSLOTSRANGE %d %d", lo, hi);
        bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
        if (ok && i > 0) {
            rep = sp_test_redis_cmd(&c->node[0], "CLUSTER MEET 127.0.0.1 %d %s",
                                    c->node[i].port, c->bus[i]);
            ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (rep)
                freeReplyObject(rep);
        }
        if (!ok) {
            sp_test_cluster_stop(c);
            return -1;
        }
    }
    for (int t = 0; t < 200; t++) {
        bool ok = true;
        for (int i = 0; i < n && ok; i++)
            ok = sp_test_cluster_node_ok(&c->node[i]);
        if (ok)
            return 1;
        sp_test_sleep_ms(50);
    }
    sp_test_cluster_stop(c);
    return -1;
}

static inline int sp_test_cluster_start(struct sp_test_cluster *c, int n)
{
    return sp_test_cluster_start_opts(c, n, false, NULL, 0);
}

/* The node id of a cluster node ("" when it does not answer). */
static inline void sp_test_cluster_myid(const struct sp_test_redis *r,
                                        char *out, size_t n)
{
    redisReply *rep = sp_test_redis_cmd(r, "CLUSTER MYID");
    snprintf(out, n, "%s", rep && rep->type == REDIS_REPLY_STRING ? rep->str : "");
    if (rep)
        freeReplyObject(rep);
}

/*
 * Adds a replica of master m (started like the masters, with the same
 * options) and waits until it has synchronised (10 s at most).  Returns
 * its index in c->node, or -1.
 */
static inline int sp_test_cluster_add_replica(struct sp_test_cluster *c, int m,
                                              const char *const *opts,
                                              int n_opts)
{
    if (c->n >= SP_TEST_CLUSTER_MAX || m < 0 || m >= c->n || n_opts > 4)
        return -1;
    int k = c->n;
    struct sp_test_redis *r = &c->node[k];
    memset(r, 0, sizeof(*r));
    snprintf(c->bus[k], sizeof(c->bus[k]), "%d", sp_test_free_port());
    const char *base[] = {"--cluster-enabled", "yes", "--cluster-port", c->bus[k],
                          "--cluster-config-file", "nodes.conf"};
    for (int j = 0; j < 6; j++)
        r->extra[r->n_extra++] = base[j];
    for (int j = 0; j < n_opts; j++)
        r->extra[r->n_extra++] = opts[j];
    r->persist = c->node[m].persist;
    if (sp_test_redis_start(r) != 1)
        return -1;
    c->n = k + 1;
    char id[64];
    sp_test_cluster_myid(&c->node[m], id, sizeof(id));
    redisReply *rep = sp_test_redis_cmd(&c->node[m], "CLUSTER MEET 127.0.0.1 %d %s",
                                        r->port, c->bus[k]);
    if (rep)
        freeReplyObject(rep);
    bool ok = false;
    for (int t = 0; t < 200 && !ok; t++) {
        /* REPLICATE works once the new node has heard of the master. */
        rep = sp_test_redis_cmd(r, "CLUSTER REPLICATE %s", id);
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
        if (!ok)
            sp_test_sleep_ms(50);
    }
    for (int t = 0; t < 200 && ok; t++) {
        rep = sp_test_redis_cmd(r, "INFO replication");
        bool up = rep && rep->type == REDIS_REPLY_STRING &&
                  strstr(rep->str, "master_link_status:up");
        if (rep)
            freeReplyObject(rep);
        if (up)
            return k;
        sp_test_sleep_ms(50);
    }
    return -1;
}

/* ---- the memory sink ------------------------------------------------------- */

struct sp_test_out {
    char *topic, *key, *value, *version;
    size_t vlen;
    int64_t offset;                 /* where it landed; -1 while held */
    struct sp_batch *held;          /* SP_TEST_HOLD: not acknowledged yet */
};

/* SP_TEST_HOLD keeps outputs unacknowledged until sp_test_sink_land(). */
enum sp_test_ack { SP_TEST_ACK_OK, SP_TEST_ACK_FAIL, SP_TEST_REFUSE,
                   SP_TEST_HOLD };

struct sp_test_sink {
    struct sp_sink sink;            /* first: &ts->sink is what stages get */
    pthread_mutex_t mu;
    struct sp_test_out *outs;
    size_t n, cap;
    enum sp_test_ack mode;
};

/* Offsets of one partition shared by every memory sink of the program
 * (one test source file), so that two stages' outputs (two instances) land
 * in one order, the order they are acknowledged in. */
static pthread_mutex_t sp_test_sink_offset_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t sp_test_sink_offset;

/* Acknowledges output idx of ts for batch: when ok, it lands at the next
 * offset first (on_landed).  Called without ts->mu held. */
static inline void sp_test_sink_ack(struct sp_test_sink *ts, size_t idx,
                                    struct sp_batch *batch, bool ok)
{
    if (ok) {
        pthread_mutex_lock(&sp_test_sink_offset_mu);
        int64_t off = sp_test_sink_offset++;
        pthread_mutex_unlock(&sp_test_sink_offset_mu);
        char *topic = NULL, *key = NULL;
        pthread_mutex_lock(&ts->mu);
        if (idx < ts->n) {
            ts->outs[idx].offset = off;
            topic = strdup(ts->outs[idx].topic);
            key = strdup(ts->outs[idx].key);
        }
        pthread_mutex_unlock(&ts->mu);
        if (batch->on_landed && topic && key)
            batch->on_landed(batch, batch->ud, topic, key, strlen(key), 0, off);
        free(topic);
        free(key);
    }
    sp_batch_ack(batch, ok);
}

static inline char *sp_test_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static inline enum sp_err sp_test_sink_produce(struct sp_sink *sink,
                                               struct sp_batch *batch,
                                               const char *topic,
                                               const void *key, size_t klen,
                                               const void *val, size_t vlen,
                                               const struct sp_header *hdrs,
                                               size_t n_hdrs)
{
    struct sp_test_sink *ts = sink->ctx;
    pthread_mutex_lock(&ts->mu);
    if (ts->mode == SP_TEST_REFUSE) {
        pthread_mutex_unlock(&ts->mu);
        return SP_ERR_RETRY;
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 256;
        struct sp_test_out *o = realloc(ts->outs, cap * sizeof(*o));
        if (!o) {
            pthread_mutex_unlock(&ts->mu);
            return SP_ERR_NOMEM;
        }
        ts->outs = o;
        ts->cap = cap;
    }
    struct sp_test_out *o = &ts->outs[ts->n++];
    o->topic = strdup(topic);
    o->key = sp_test_strndup(key, klen);
    o->value = sp_test_strndup(val, vlen);
    o->vlen = vlen;
    o->version = NULL;
    o->offset = -1;
    o->held = NULL;
    for (size_t i = 0; i < n_hdrs; i++)
        if (strcmp(hdrs[i].name, "version") == 0)
            o->version = sp_test_strndup(hdrs[i].value, hdrs[i].len);
    batch->pending++;
    enum sp_test_ack mode = ts->mode;
    if (mode == SP_TEST_HOLD) {
        o->held = batch;
        pthread_mutex_unlock(&ts->mu);
        return SP_OK;
    }
    size_t idx = ts->n - 1;
    pthread_mutex_unlock(&ts->mu);
    sp_test_sink_ack(ts, idx, batch, mode == SP_TEST_ACK_OK);
    return SP_OK;
}

/* Held output i (its index among the sink's outputs) no longer held: its
 * batch, or NULL when i is not held. */
static inline struct sp_batch *sp_test_sink_take(struct sp_test_sink *ts,
                                                 size_t i)
{
    pthread_mutex_lock(&ts->mu);
    struct sp_batch *batch = i < ts->n ? ts->outs[i].held : NULL;
    if (batch)
        ts->outs[i].held = NULL;
    pthread_mutex_unlock(&ts->mu);
    return batch;
}

/* Settles held output i: ok, it lands at the next offset; else it fails,
 * as a delivery that gave up.  False when i is not held. */
static inline bool sp_test_sink_settle(struct sp_test_sink *ts, size_t i,
                                       bool ok)
{
    struct sp_batch *batch = sp_test_sink_take(ts, i);
    if (batch)
        sp_test_sink_ack(ts, i, batch, ok);
    return batch != NULL;
}

static inline bool sp_test_sink_land(struct sp_test_sink *ts, size_t i)
{
    return sp_test_sink_settle(ts, i, true);
}

static inline bool sp_test_sink_fail(struct sp_test_sink *ts, size_t i)
{
    return sp_test_sink_settle(ts, i, false);
}

/* Held output i lands (at the next offset) but its delivery report says
 * it failed: a message the broker wrote though the producer timed out,
 * or, to Redis, the same as an instance that died between its delivery
 * report and its ack.  False when i is not held. */
static inline bool sp_test_sink_land_unreported(struct sp_test_sink *ts,
                                                size_t i)
{
    struct sp_batch *batch = sp_test_sink_take(ts, i);
    if (!batch)
        return false;
    pthread_mutex_lock(&sp_test_sink_offset_mu);
    int64_t off = sp_test_sink_offset++;
    pthread_mutex_unlock(&sp_test_sink_offset_mu);
    pthread_mutex_lock(&ts->mu);
    ts->outs[i].offset = off;
    pthread_mutex_unlock(&ts->mu);
    sp_batch_ack(batch, false);
    return true;
}

static inline void sp_test_sink_init(struct sp_test_sink *ts)
{
    memset(ts, 0, sizeof(*ts));
    pthread_mutex_init(&ts->mu, NULL);
    ts->sink.produce = sp_test_sink_produce;
    ts->sink.ctx = ts;
}

static inline void sp_test_sink_clear(struct sp_test_sink *ts)
{
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->outs[i].topic);
        free(ts->outs[i].key);
        free(ts->outs[i].value);
        free(ts->outs[i].version);
    }
    ts->n = 0;
    pthread_mutex_unlock(&ts->mu);
}

static inline void sp_test_sink_fini(struct sp_test_sink *ts)
{
    sp_test_sink_clear(ts);
    free(ts->outs);
    ts->outs = NULL;
    ts->cap = 0;
    pthread_mutex_destroy(&ts->mu);
}

/* Outputs on topic (0 when none). */
static inline size_t sp_test_sink_count(struct sp_test_sink *ts,
                                        const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->n; i++)
        n += strcmp(ts->outs[i].topic, topic) == 0;
    pthread_mutex_unlock(&ts->mu);
    return n;
}

#endif /* SP_REDIS_TEST_H */
