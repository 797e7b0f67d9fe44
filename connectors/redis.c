/*
 * redis.c - the blocking hiredis connection behind struct sp_redis.
 *
 * A connection is either up (ctx != NULL) or down with a time before
 * which no reconnect is attempted.  Every connection-level failure goes
 * through drop(): free the context, remember why, schedule the next
 * attempt.  Reconnecting replays the handshake (AUTH, SELECT) and loads
 * every registered script again, so a restarted or flushed server is
 * transparent to callers, who only ever see SP_ERR_RETRY and try again.
 *
 * Blocking I/O with socket timeouts is deliberate: the engine thread has
 * nothing else to do while a batch waits for Redis, and a pipeline turns
 * a batch into one round trip anyway.
 *
 * Redis Cluster: when the server answers CLUSTER SLOTS, the connection
 * becomes a set of connections, one per master, and every command goes to
 * the master of its key's slot (KEYS[1] for scripts; MULTI and EXEC travel
 * with the commands between them; keyless commands go to the node first
 * connected).  Replies are read back in the order the commands were
 * appended, whatever node they came from.  A MOVED or ASK reply (slots
 * moved) is handed to the caller as SP_ERR_RETRY, and the slot map is
 * read again before the next command.  Every node the slot map names,
 * replicas included, is remembered as a seed: when the configured
 * endpoint is down (a master lost, its replica promoted), reconnecting
 * goes through the first seed that answers.
 *
 * One thread per struct sp_redis (see redis.h).
 */
#include "redis.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#define SP_REDIS_MAX_SCRIPTS 16
#define SP_REDIS_SLOTS 16384
#define SP_REDIS_MAX_NODES 64
#define SP_REDIS_MAX_SEEDS 32

/* A cluster master and our connection to it. */
struct rnode {
    char host[128];
    int port;
    redisContext *ctx;
    bool unflushed;
};

/* A cluster node's address, remembered to reconnect through. */
struct rseed {
    char host[128];
    int port;
};

struct sp_redis {
    redisContext *ctx;           /* the endpoint (cluster: first node) */
    char ep_host[128];           /* where ctx is connected (TCP) */
    int ep_port;
    struct sp_redis_opts o;
    char *host, *unix_path, *user, *password, *comp;
    struct sp_redis_script *scripts[SP_REDIS_MAX_SCRIPTS];
    size_t n_scripts;
    size_t pending;              /* replies owed for appended commands */
    bool unflushed;              /* appended since the last read */
    int64_t next_attempt_ms;     /* while down: no reconnect before this */
    int64_t backoff_ms;          /* current backoff (0 = none yet) */
    uint64_t rng;                /* jitter */
    char last_error[160];
    struct sp_redis_stats stats;

    /* Cluster mode (empty otherwise). */
    bool cluster;
    struct rnode *nodes;         /* SP_REDIS_MAX_NODES */
    size_t n_nodes;
    uint8_t *slots;              /* SP_REDIS_SLOTS: node index + 1, 0 = none */
    int *order;                  /* owed replies: node index, -1 = ctx */
    size_t o_head, o_len, o_cap;
    bool multi_waits;            /* MULTI appended, its node not known yet */
    int last_node;               /* node of the last keyed command */
    bool remap;                  /* a redirect: read the slot map again */
    struct rseed *seeds;         /* SP_REDIS_MAX_SEEDS: masters first */
    size_t n_seeds;
    /* Addresses that refused or timed out during the current connect
     * attempt: not tried again before it ends (a dead master named by
     * every seed's slot map costs one connect timeout, not one per seed). */
    struct rseed dead[8];
    size_t n_dead;
};

/* ---- options ------------------------------------------------------------- */

void sp_redis_opts_default(struct sp_redis_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 6379;
    o->connect_timeout_ms = 2000;
    o->command_timeout_ms = 5000;
    o->backoff_min_ms = 100;
    o->backoff_max_ms = 10000;
    o->log_comp = "redis";
}

void sp_redis_opts_from_config(const struct sp_config *cfg,
                               struct sp_redis_opts *o)
{
    sp_redis_opts_default(o);
    o->host = sp_config_str(cfg, "redis.host");
    o->port = (int)sp_config_int(cfg, "redis.port");
    o->unix_path = sp_config_str(cfg, "redis.unix_socket");
    o->user = sp_config_str(cfg, "redis.user");
    o->password = sp_config_str(cfg, "redis.password");
    o->db = (int)sp_config_int(cfg, "redis.db");
    o->connect_timeout_ms = (int)sp_config_int(cfg, "redis.connect_timeout");
    o->command_timeout_ms = (int)sp_config_int(cfg, "redis.command_timeout");
    o->backoff_min_ms = (int)sp_config_int(cfg, "redis.backoff_min");
    o->backoff_max_ms = (int)sp_config_int(cfg, "redis.backoff_max");
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

struct sp_redis *sp_redis_new(const struct sp_redis_opts *o)
{
    struct sp_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->o = *o;
    r->host = strdup(o->host && *o->host ? o->host : "127.0.0.1");
    r->comp = strdup(o->log_comp ? o->log_comp : "redis");
    r->unix_path = dup_or_null(o->unix_path);
    r->user = dup_or_null(o->user);
    r->password = dup_or_null(o->password);
    if (!r->host || !r->comp || (o->unix_path && *o->unix_path && !r->unix_path) ||
        (o->user && *o->user && !r->user) ||
        (o->password && *o->password && !r->password)) {
        sp_redis_free(r);
        return NULL;
    }
    if (r->o.port <= 0)
        r->o.port = 6379;
    if (r->o.connect_timeout_ms <= 0)
        r->o.connect_timeout_ms = 2000;
    if (r->o.backoff_min_ms <= 0)
        r->o.backoff_min_ms = 100;
    if (r->o.backoff_max_ms < r->o.backoff_min_ms)
        r->o.backoff_max_ms = r->o.backoff_min_ms;
    r->rng = (uint64_t)sp_wall_us() ^ ((uint64_t)(uintptr_t)r << 16);
    snprintf(r->last_error, sizeof(r->last_error), "not connected yet");
    return r;
}

void sp_redis_free(struct sp_redis *r)
{
    if (!r)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    for (size_t i = 0; r->nodes && i < r->n_nodes; i++)
        if (r->nodes[i].ctx)
            redisFree(r->nodes[i].ctx);
    free(r->nodes);
    free(r->seeds);
    free(r->slots);
    free(r->order);
    free(r->host);
    free(r->unix_path);
    free(r->user);
    free(r->password);
    free(r->comp);
    free(r);
}

/* ---- errors: the one mapping ----------------------------------------------- */

static const struct {
    const char *prefix;
    enum sp_err code;
} reply_errors[] = {
    {"NOSCRIPT", SP_ERR_NOTFOUND},
    {"LOADING", SP_ERR_RETRY},
    {"BUSY", SP_ERR_RETRY},
    {"TRYAGAIN", SP_ERR_RETRY},
    {"CLUSTERDOWN", SP_ERR_RETRY},
    {"MASTERDOWN", SP_ERR_RETRY},
    {"READONLY", SP_ERR_RETRY},
    {"OOM", SP_ERR_RETRY},
    {"MISCONF", SP_ERR_RETRY},
    {"NOREPLICAS", SP_ERR_RETRY},
    /* A cluster node redirecting: nothing is done, try again (readiness
     * says why, see sp_redis_read()). */
    {"MOVED", SP_ERR_RETRY},
    {"ASK", SP_ERR_RETRY},
    {"NOAUTH", SP_ERR_CONFIG},
    {"WRONGPASS", SP_ERR_CONFIG},
    {"NOPERM", SP_ERR_CONFIG},
};

enum sp_err sp_redis_reply_err(const redisReply *rep)
{
    if (!rep)
        return SP_ERR_RETRY;
    if (rep->type != REDIS_REPLY_ERROR)
        return SP_OK;
    const char *s = rep->str ? rep->str : "";
    /* Script errors arrive wrapped: "ERR Error running script ...: OOM ..."
     * is still an OOM, so look at the first word after known wrappers. */
    for (size_t i = 0; i < SP_ARRAY_SIZE(reply_errors); i++) {
        size_t n = strlen(reply_errors[i].prefix);
        if (strncmp(s, reply_errors[i].prefix, n) == 0 &&
            (s[n] == ' ' || s[n] == '\0'))
            return reply_errors[i].code;
    }
    if (strstr(s, "-OOM ") || strstr(s, "OOM command not allowed"))
        return SP_ERR_RETRY;
    /* A script touching a key whose slot is migrating (Redis Cluster):
     * wait like ASK. */
    if (strstr(s, "non local key"))
        return SP_ERR_RETRY;
    return SP_ERR_REMOTE;
}

/* Connection-level (hiredis context) errors: all transient from our point
 * of view, except the client running out of memory. */
static enum sp_err map_ctx_err(int hiredis_err)
{
    return hiredis_err == REDIS_ERR_OOM ? SP_ERR_NOMEM : SP_ERR_RETRY;
}

/* ---- connection state ------------------------------------------------------ */

static int64_t jitter(struct sp_redis *r, int64_t ms)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    int64_t span = ms / 5;                      /* +-20% */
    if (span <= 0)
        return ms;
    return ms - span + (int64_t)(r->rng % (uint64_t)(2 * span + 1));
}

static void schedule_retry(struct sp_redis *r, bool immediate)
{
    int64_t now = sp_now_ms();
    if (immediate) {
        r->next_attempt_ms = now;
        return;
    }
    r->backoff_ms = r->backoff_ms ? SP_MIN(r->backoff_ms * 2,
                                           (int64_t)r->o.backoff_max_ms)
                                  : r->o.backoff_min_ms;
    r->next_attempt_ms = now + jitter(r, r->backoff_ms);
}

/* Closes the cluster connections and forgets the slot map. */
static void cluster_reset(struct sp_redis *r)
{
    for (size_t i = 0; r->nodes && i < r->n_nodes; i++) {
        if (r->nodes[i].ctx)
            redisFree(r->nodes[i].ctx);
        r->nodes[i].ctx = NULL;
        r->nodes[i].unflushed = false;
    }
    r->n_nodes = 0;
    if (r->slots)
        memset(r->slots, 0, SP_REDIS_SLOTS);
    r->cluster = false;
    r->o_head = r->o_len = 0;
    r->multi_waits = false;
    r->last_node = -1;
    r->remap = false;
}

/* Closes every connection; owed replies are forgotten. */
static void close_all(struct sp_redis *r)
{
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    cluster_reset(r);
    r->pending = 0;
    r->unflushed = false;
}

static void drop(struct sp_redis *r, const char *why, bool immediate)
{
    bool was_up = r->ctx != NULL;
    close_all(r);
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    r->stats.failures++;
    if (was_up)
        sp_log_warn(r->comp, "connection lost: %s", why);
    schedule_retry(r, immediate);
}

void sp_redis_disconnect(struct sp_redis *r, const char *why)
{
    drop(r, why ? why : "disconnected", true);
}

bool sp_redis_is_up(const struct sp_redis *r)
{
    return r->ctx != NULL;
}

void sp_redis_describe(const struct sp_redis *r, char *buf, size_t n)
{
    char where[300];
    if (r->unix_path)
        snprintf(where, sizeof(where), "unix:%s", r->unix_path);
    else
        snprintf(where, sizeof(where), "%s:%d", r->host, r->o.port);
    if (r->ctx && r->cluster && !r->unix_path &&
        (r->ep_port != r->o.port || strcmp(r->ep_host, r->host) != 0))
        snprintf(buf, n, "redis cluster of %zu masters via %s:%d up (%s did "
                 "not answer)", r->n_nodes, r->ep_host, r->ep_port, where);
    else if (r->ctx && r->cluster)
        snprintf(buf, n, "redis cluster of %zu masters via %s up", r->n_nodes,
                 where);
    else if (r->ctx)
        snprintf(buf, n, "redis %s up", where);
    else
        snprintf(buf, n, "redis %s down: %s", where, r->last_error);
}

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* A command on a raw context during the handshake. */
static enum sp_err ctx_cmd(struct sp_redis *r, redisContext *c, int argc,
                           const char **argv, const size_t *lens,
                           redisReply **out, char *why, size_t n)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, lens);
    r->stats.commands++;
    r->stats.round_trips++;
    if (!rep) {
        snprintf(why, n, "%s: %s", argv[0], c->errstr);
        return map_ctx_err(c->err);
    }
    enum sp_err e = sp_redis_reply_err(rep);
    if (e) {
        snprintf(why, n, "%s: %s", argv[0], rep->str ? rep->str : "error");
        freeReplyObject(rep);
        return e;
    }
    if (out)
        *out = rep;
    else
        freeReplyObject(rep);
    return SP_OK;
}

static enum sp_err handshake_cmd(struct sp_redis *r, int argc,
                                 const char **argv, const size_t *lens,
                                 redisReply **out, char *why, size_t n)
{
    return ctx_cmd(r, r->ctx, argc, argv, lens, out, why, n);
}

static enum sp_err load_script_on(struct sp_redis *r, redisContext *c,
                                  struct sp_redis_script *s, char *why,
                                  size_t n)
{
    const char *argv[] = {"SCRIPT", "LOAD", s->src};
    size_t lens[] = {6, 4, strlen(s->src)};
    redisReply *rep = NULL;
    enum sp_err e = ctx_cmd(r, c, 3, argv, lens, &rep, why, n);
    if (e)
        return e;
    r->stats.script_loads++;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        snprintf(why, n, "SCRIPT LOAD %s: unexpected reply", s->name);
        freeReplyObject(rep);
        return SP_ERR_REMOTE;
    }
    memcpy(s->sha, rep->str, 40);
    s->sha[40] = '\0';
    freeReplyObject(rep);
    return SP_OK;
}

/* On the endpoint and, in a cluster, on every master (the SHA is the
 * same everywhere: it is the source's). */
static enum sp_err load_script(struct sp_redis *r, struct sp_redis_script *s,
                               char *why, size_t n)
{
    enum sp_err e = load_script_on(r, r->ctx, s, why, n);
    for (size_t i = 0; !e && r->cluster && i < r->n_nodes; i++)
        e = load_script_on(r, r->nodes[i].ctx, s, why, n);
    return e;
}

/* AUTH [user] password.  A user without a password still authenticates
 * (AUTH user "", which an ACL user with `nopass` accepts): skipping it
 * would run as `default`. */
static enum sp_err auth_on(struct sp_redis *r, redisContext *c, char *why,
                           size_t n)
{
    if (!r->password && !r->user)
        return SP_OK;
    const char *pw = r->password ? r->password : "";
    const char *argv[3];
    size_t lens[3];
    int argc = 0;
    argv[argc] = "AUTH";
    lens[argc++] = 4;
    if (r->user) {
        argv[argc] = r->user;
        lens[argc++] = strlen(r->user);
    }
    argv[argc] = pw;
    lens[argc++] = strlen(pw);
    return ctx_cmd(r, c, argc, argv, lens, NULL, why, n);
}

/* ---- cluster ---------------------------------------------------------------- */

/* CRC16-CCITT (XMODEM), the cluster's key hash. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

/* The slot of a key: the hash tag ({...}, non-empty) when there is one. */
static unsigned key_slot(const char *k, size_t n)
{
    const char *o = memchr(k, '{', n);
    if (o) {
        const char *c = memchr(o + 1, '}', n - (size_t)(o + 1 - k));
        if (c && c > o + 1)
            return crc16(o + 1, (size_t)(c - o - 1)) & (SP_REDIS_SLOTS - 1);
    }
    return crc16(k, n) & (SP_REDIS_SLOTS - 1);
}

/* Address lists (seeds, dead addresses): lookup, and append once. */
static bool addr_in(const struct rseed *list, size_t n, const char *host,
                    int port)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].port == port && strcmp(list[i].host, host) == 0)
            return true;
    return false;
}

static void addr_add(struct rseed *list, size_t *n, size_t cap,
                     const char *host, int port)
{
    if (*n == cap || !*host || strlen(host) >= sizeof(list->host) ||
        port <= 0 || port > 65535 || addr_in(list, *n, host, port))
        return;
    snprintf(list[*n].host, sizeof(list->host), "%s", host);
    list[*n].port = port;
    (*n)++;
}

static bool is_dead(const struct sp_redis *r, const char *host, int port)
{
    return addr_in(r->dead, r->n_dead, host, port);
}

/* A connection to host:port, or to the unix socket when host is NULL:
 * keepalive on (TCP), the connect timeout for the handshake. */
static enum sp_err open_ctx(struct sp_redis *r, const char *host, int port,
                            redisContext **out, char *why, size_t n)
{
    *out = NULL;
    char where[200];
    if (host)
        snprintf(where, sizeof(where), "%.150s:%d", host, port);
    else
        snprintf(where, sizeof(where), "unix:%.150s", r->unix_path);
    if (!host && strlen(r->unix_path) > SP_REDIS_UNIX_PATH_MAX) {
        snprintf(why, n, "redis.unix_socket: path of %zu bytes is longer "
                 "than a unix socket allows (%d)", strlen(r->unix_path),
                 SP_REDIS_UNIX_PATH_MAX);
        return SP_ERR_CONFIG;
    }
    if (host && is_dead(r, host, port)) {
        snprintf(why, n, "connect %.70s: failed a moment ago", where);
        return SP_ERR_RETRY;
    }
    struct timeval ctv = tv_ms(r->o.connect_timeout_ms);
    redisContext *c = host ? redisConnectWithTimeout(host, port, ctv)
                           : redisConnectUnixWithTimeout(r->unix_path, ctv);
    if (!c) {
        snprintf(why, n, "connect %.70s: out of memory", where);
        return SP_ERR_NOMEM;
    }
    if (c->err) {
        snprintf(why, n, "connect %.70s: %.70s", where, c->errstr);
        redisFree(c);
        if (host)
            addr_add(r->dead, &r->n_dead, SP_ARRAY_SIZE(r->dead), host, port);
        return SP_ERR_RETRY;
    }
    if (host)
        redisEnableKeepAlive(c);
    redisSetTimeout(c, ctv);
    *out = c;
    return SP_OK;
}

static void command_timeouts(struct sp_redis *r, redisContext *c)
{
    redisSetTimeout(c, tv_ms(r->o.command_timeout_ms > 0
                                 ? r->o.command_timeout_ms : 0));
}

/* The seeds from a (validated) CLUSTER SLOTS reply: every master, then
 * every replica, each once. */
static void remember_seeds(struct sp_redis *r, const redisReply *rep)
{
    if (!r->seeds && !(r->seeds = calloc(SP_REDIS_MAX_SEEDS, sizeof(*r->seeds))))
        return;                 /* only a fallback: do without */
    r->n_seeds = 0;
    for (int replicas = 0; replicas < 2; replicas++) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            for (size_t j = replicas ? 3 : 2; j < (replicas ? e->elements : 3); j++) {
                const redisReply *a = e->element[j];
                if (a->type != REDIS_REPLY_ARRAY || a->elements < 2 ||
                    a->element[0]->type != REDIS_REPLY_STRING ||
                    a->element[1]->type != REDIS_REPLY_INTEGER)
                    continue;
                const char *h = a->element[0]->len ? a->element[0]->str : r->ep_host;
                addr_add(r->seeds, &r->n_seeds, SP_REDIS_MAX_SEEDS, h,
                         (int)a->element[1]->integer);
            }
        }
    }
}

/* Builds the node list and slot map from a CLUSTER SLOTS reply and
 * connects to every master (AUTH, scripts). */
static enum sp_err cluster_setup(struct sp_redis *r, const redisReply *rep,
                                 char *why, size_t n)
{
    if (!r->nodes)
        r->nodes = calloc(SP_REDIS_MAX_NODES, sizeof(*r->nodes));
    if (!r->slots)
        r->slots = calloc(SP_REDIS_SLOTS, 1);
    if (!r->nodes || !r->slots) {
        snprintf(why, n, "out of memory");
        return SP_ERR_NOMEM;
    }
    cluster_reset(r);
    r->cluster = true;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            snprintf(why, n, "CLUSTER SLOTS: unexpected reply");
            return SP_ERR_REMOTE;
        }
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const redisReply *m = e->element[2];
        /* An empty address means "the node you asked". */
        const char *host = m->element[0]->len ? m->element[0]->str : r->ep_host;
        int port = (int)m->element[1]->integer;
        size_t k = 0;
        while (k < r->n_nodes &&
               !(r->nodes[k].port == port && strcmp(r->nodes[k].host, host) == 0))
            k++;
        if (k == r->n_nodes) {
            if (r->n_nodes == SP_REDIS_MAX_NODES) {
                snprintf(why, n, "more than %d cluster masters",
                         SP_REDIS_MAX_NODES);
                return SP_ERR_LIMIT;
            }
            snprintf(r->nodes[k].host, sizeof(r->nodes[k].host), "%s", host);
            r->nodes[k].port = port;
            r->n_nodes++;
        }
        for (long long sl = SP_MAX(lo, 0LL); sl <= hi && sl < SP_REDIS_SLOTS; sl++)
            r->slots[sl] = (uint8_t)(k + 1);
    }
    remember_seeds(r, rep);
    for (size_t k = 0; k < r->n_nodes; k++) {
        struct rnode *nd = &r->nodes[k];
        enum sp_err e;
        if ((e = open_ctx(r, nd->host, nd->port, &nd->ctx, why, n)))
            return e;
        if ((e = auth_on(r, nd->ctx, why, n)))
            return e;
        for (size_t i = 0; i < r->n_scripts; i++)
            if ((e = load_script_on(r, nd->ctx, r->scripts[i], why, n)))
                return e;
        command_timeouts(r, nd->ctx);
    }
    return SP_OK;
}

/* Cluster mode when the endpoint answers CLUSTER SLOTS. */
static enum sp_err cluster_detect(struct sp_redis *r, char *why, size_t n)
{
    const char *argv[] = {"CLUSTER", "SLOTS"};
    size_t lens[] = {7, 5};
    redisReply *rep = redisCommandArgv(r->ctx, 2, argv, lens);
    r->stats.commands++;
    r->stats.round_trips++;
    if (!rep) {
        snprintf(why, n, "CLUSTER SLOTS: %s", r->ctx->errstr);
        return map_ctx_err(r->ctx->err);
    }
    enum sp_err e = SP_OK;
    if (rep->type == REDIS_REPLY_ARRAY) {
        if (r->o.db != 0) {
            snprintf(why, n, "redis.db must be 0 with a Redis Cluster");
            e = SP_ERR_CONFIG;
        } else {
            e = cluster_setup(r, rep, why, n);
        }
    } else if (rep->type == REDIS_REPLY_ERROR &&
               sp_redis_reply_err(rep) != SP_ERR_REMOTE) {
        /* NOPERM (an ACL without CLUSTER), LOADING...: as any command. */
        snprintf(why, n, "CLUSTER SLOTS: %s", rep->str);
        e = sp_redis_reply_err(rep);
        if (e == SP_ERR_CONFIG && rep->str && strncmp(rep->str, "NOPERM", 6) == 0)
            e = SP_OK;              /* not allowed to ask: standalone */
    }
    /* "ERR This instance has cluster support disabled": standalone. */
    freeReplyObject(rep);
    return e;
}

/* Connects r->ctx to one endpoint (unix socket when host is NULL) and runs
 * the handshake: AUTH, SELECT, scripts, cluster detection. */
static enum sp_err connect_endpoint(struct sp_redis *r, const char *host,
                                   int port, char *why, size_t n, bool *reached)
{
    enum sp_err e;
    close_all(r);
    *reached = false;
    /* (the handshake runs under the connect timeout...) */
    if ((e = open_ctx(r, host, port, &r->ctx, why, n)))
        return e;
    *reached = true;
    /* A node answering with an empty address means itself: over a unix
     * socket, the configured host stands for it. */
    snprintf(r->ep_host, sizeof(r->ep_host), "%s", host ? host : r->host);
    r->ep_port = port;
    if ((e = auth_on(r, r->ctx, why, n)))
        return e;
    if (r->o.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->o.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        if ((e = handshake_cmd(r, 2, argv, lens, NULL, why, n)))
            return e == SP_ERR_REMOTE ? SP_ERR_CONFIG : e;  /* "ERR DB index is out of range" */
    }
    for (size_t i = 0; i < r->n_scripts; i++)
        if ((e = load_script(r, r->scripts[i], why, n)))
            return e;
    return cluster_detect(r, why, n);
}

enum sp_err sp_redis_connect(struct sp_redis *r, struct sp_error *err)
{
    char why[160] = "", where[300];
    if (r->unix_path)
        snprintf(where, sizeof(where), "unix:%s", r->unix_path);
    else
        snprintf(where, sizeof(where), "%s:%d", r->host, r->o.port);
    bool reached;
    r->n_dead = 0;
    enum sp_err e = connect_endpoint(r, r->unix_path ? NULL : r->host,
                                     r->o.port, why, sizeof(why), &reached);
    /* The endpoint did not answer but a cluster was seen: the first node
     * of its last slot map that answers (a copy: a node answering
     * rewrites the list).  Its own slot map decides; if that fails too
     * (a master still down), the next attempt comes after the backoff. */
    struct rseed seeds[SP_REDIS_MAX_SEEDS];
    size_t n_seeds = e == SP_ERR_RETRY && !reached && !r->unix_path ? r->n_seeds : 0;
    if (n_seeds)
        memcpy(seeds, r->seeds, n_seeds * sizeof(*seeds));
    bool via = false;
    for (size_t i = 0; i < n_seeds; i++) {
        if (is_dead(r, seeds[i].host, seeds[i].port) ||
            (seeds[i].port == r->o.port && strcmp(seeds[i].host, r->host) == 0))
            continue;
        char why2[160];
        enum sp_err e2 = connect_endpoint(r, seeds[i].host, seeds[i].port, why2,
                                          sizeof(why2), &reached);
        if (!reached)
            continue;
        if (e2 == SP_OK && r->cluster) {
            e = SP_OK;
            via = true;
        } else {
            snprintf(why, sizeof(why), "%.60s:%d: %.90s", seeds[i].host,
                     seeds[i].port, e2 ? why2 : "not a cluster node");
            e = e2 ? e2 : SP_ERR_RETRY;
        }
        break;
    }
    if (e)
        goto fail;
    /* ...and commands under the command timeout. */
    command_timeouts(r, r->ctx);
    r->backoff_ms = 0;
    r->stats.connects++;
    snprintf(r->last_error, sizeof(r->last_error), "none");
    if (via)
        sp_log_warn(r->comp, "%s did not answer (%s): connected to the Redis "
                    "Cluster through %s:%d (%zu masters)", where, why,
                    r->ep_host, r->ep_port, r->n_nodes);
    else if (r->cluster)
        sp_log_info(r->comp, "connected to the Redis Cluster at %s (%zu "
                    "masters)", where, r->n_nodes);
    else
        sp_log_info(r->comp, "connected to %s (db %d)", where, r->o.db);
    return SP_OK;
fail:
    close_all(r);
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    r->stats.failures++;
    schedule_retry(r, false);
    if (err) {
        sp_error_set(err, e, "redis: %s", why);
        err->retriable = (e == SP_ERR_RETRY);
    }
    return e;
}

enum sp_err sp_redis_ensure(struct sp_redis *r, int64_t now_ms)
{
    if (r->ctx && r->remap && r->pending == 0) {
        /* Slots moved: read the map again (new masters are connected). */
        char why[160] = "";
        sp_log_info(r->comp, "Redis Cluster slots moved: reading the slot "
                    "map again");
        r->remap = false;
        r->n_dead = 0;
        enum sp_err e = cluster_detect(r, why, sizeof(why));
        if (e == SP_OK && !r->cluster) {
            e = SP_ERR_REMOTE;
            snprintf(why, sizeof(why), "not a cluster any more");
        }
        if (e) {
            drop(r, why, false);
            return e == SP_ERR_NOMEM ? e : SP_ERR_RETRY;
        }
        return SP_OK;
    }
    if (r->ctx)
        return SP_OK;
    if (now_ms < r->next_attempt_ms)
        return SP_ERR_RETRY;
    bool first = r->stats.connects == 0 && r->stats.failures == 0;
    enum sp_err e = sp_redis_connect(r, NULL);
    if (e == SP_OK)
        return SP_OK;
    /* Log the first failure and then rarely; readiness carries the rest. */
    static struct sp_log_rl rl;
    if (first)
        sp_log_warn(r->comp, "cannot connect: %s", r->last_error);
    else
        sp_log_warn_rl(&rl, 30000, r->comp, "still down: %s", r->last_error);
    return e == SP_ERR_NOMEM ? e : SP_ERR_RETRY;
}

enum sp_err sp_redis_add_script(struct sp_redis *r, struct sp_redis_script *s)
{
    if (r->n_scripts >= SP_REDIS_MAX_SCRIPTS)
        return SP_ERR_LIMIT;
    for (size_t i = 0; i < r->n_scripts; i++)
        if (r->scripts[i] == s)
            return SP_OK;
    r->scripts[r->n_scripts++] = s;
    if (r->ctx) {
        char why[160];
        enum sp_err e = load_script(r, s, why, sizeof(why));
        if (e) {
            if (e == SP_ERR_RETRY)
                drop(r, why, false);
            return e;
        }
    }
    return SP_OK;
}

enum sp_err sp_redis_load_scripts(struct sp_redis *r)
{
    if (!r->ctx)
        return SP_ERR_RETRY;
    if (r->pending)
        return SP_ERR_STATE;        /* replies of a pipeline still owed */
    char why[160];
    for (size_t i = 0; i < r->n_scripts; i++) {
        enum sp_err e = load_script(r, r->scripts[i], why, sizeof(why));
        if (e) {
            if (e == SP_ERR_RETRY)
                drop(r, why, false);
            return e;
        }
    }
    return SP_OK;
}

/* ---- eviction ------------------------------------------------------------- */

/* The value of "field:" in an INFO reply, up to the end of its line. */
static void info_field(const char *s, const char *field, char *out, size_t n)
{
    out[0] = '\0';
    size_t fl = strlen(field);
    while (*s) {
        if (strncmp(s, field, fl) == 0 && s[fl] == ':') {
            s += fl + 1;
            snprintf(out, n, "%.*s", (int)SP_MIN(strcspn(s, "\r\n"), n - 1), s);
            return;
        }
        const char *nl = strchr(s, '\n');
        if (!nl)
            return;
        s = nl + 1;
    }
}

/* Adds one master's figures to mem (see sp_redis_mem: max -2 = no master
 * yet); returns whether it may evict, as sp_redis_memory. */
static int node_memory(struct sp_redis *r, redisContext *c, const char *name,
                       struct sp_redis_mem *mem, char *detail, size_t n)
{
    const char *argv[] = {"INFO", "memory"};
    size_t lens[] = {4, 6};
    redisReply *rep = NULL;
    char why[160];
    /* A lost connection keeps its error: the next command drops it. */
    if (!c || ctx_cmd(r, c, 2, argv, lens, &rep, why, sizeof(why))) {
        snprintf(detail, n, "%s: %s", name, c ? why : "not connected");
        mem->used = mem->max = -1;
        return -1;
    }
    int v = -1;
    char maxmem[32] = "", policy[64] = "", used[32] = "";
    if (rep->type == REDIS_REPLY_STRING && rep->str) {
        info_field(rep->str, "maxmemory", maxmem, sizeof(maxmem));
        info_field(rep->str, "maxmemory_policy", policy, sizeof(policy));
        info_field(rep->str, "used_memory", used, sizeof(used));
        if (!maxmem[0] || !policy[0]) {
            snprintf(detail, n, "%s: INFO memory has no maxmemory", name);
        } else {
            v = strcmp(maxmem, "0") != 0 && strcmp(policy, "noeviction") != 0;
            snprintf(detail, n, "%s: maxmemory %s bytes, maxmemory-policy %s",
                     name, maxmem, policy);
        }
    } else {
        snprintf(detail, n, "%s: INFO: unexpected reply", name);
    }
    freeReplyObject(rep);
    long long u = used[0] ? strtoll(used, NULL, 10) : -1;
    long long m = maxmem[0] ? strtoll(maxmem, NULL, 10) : -1;
    mem->used = u < 0 || mem->used < 0 ? -1 : mem->used + u;
    if (m < 0 || mem->max == -1)
        mem->max = -1;                  /* not known */
    else if (m == 0 || mem->max == 0)
        mem->max = 0;                   /* some master has no limit */
    else
        mem->max = (mem->max == -2 ? 0 : mem->max) + m;
    return v;
}

int sp_redis_memory(struct sp_redis *r, struct sp_redis_mem *mem,
                    char *detail, size_t n)
{
    mem->used = -1;
    mem->max = -1;
    if (!r->ctx || r->pending) {
        snprintf(detail, n, "not connected");
        return -1;
    }
    mem->used = 0;
    mem->max = -2;
    char name[300];
    int v;
    if (!r->cluster) {
        snprintf(name, sizeof(name), "%s:%d", r->ep_host, r->ep_port);
        v = node_memory(r, r->ctx, r->unix_path ? r->unix_path : name, mem,
                        detail, n);
    } else {
        /* Every master is asked (the figures are sums); the detail is
         * that of the first that may evict, else of the first that
         * cannot tell, else of the first. */
        v = 0;
        for (size_t k = 0; k < r->n_nodes; k++) {
            char d[256];
            snprintf(name, sizeof(name), "%s:%d", r->nodes[k].host,
                     r->nodes[k].port);
            int nv = node_memory(r, r->nodes[k].ctx, name, mem, d, sizeof(d));
            if (k == 0 || (nv > 0 && v <= 0) || (nv < 0 && v == 0))
                snprintf(detail, n, "%s", d);
            if (nv > 0)
                v = 1;
            else if (nv < 0 && v == 0)
                v = -1;
        }
    }
    if (mem->max == -2)
        mem->max = -1;
    return v;
}

/* ---- commands ------------------------------------------------------------- */

static bool is_cmd(const char *a, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(a, name, n) == 0;
}

/* The node a command goes to: -1 for the endpoint (keyless commands),
 * -2 when no master holds the key's slot. */
static int route(struct sp_redis *r, int argc, const char **argv,
                 const size_t *lens)
{
    const char *key = NULL;
    size_t klen = 0;
    if (is_cmd(argv[0], lens[0], "EVALSHA") || is_cmd(argv[0], lens[0], "EVAL")) {
        if (argc > 3 && lens[2] > 0 && argv[2][0] != '0') {
            key = argv[3];
            klen = lens[3];
        }
    } else if (is_cmd(argv[0], lens[0], "EXEC") ||
               is_cmd(argv[0], lens[0], "DISCARD")) {
        return r->last_node;
    } else if (is_cmd(argv[0], lens[0], "SCAN") ||
               is_cmd(argv[0], lens[0], "PING") ||
               is_cmd(argv[0], lens[0], "INFO") ||
               is_cmd(argv[0], lens[0], "SCRIPT") ||
               is_cmd(argv[0], lens[0], "CLUSTER")) {
        return -1;
    } else if (argc > 1) {
        key = argv[1];
        klen = lens[1];
    }
    if (!key)
        return -1;
    unsigned node = r->slots[key_slot(key, klen)];
    return node ? (int)node - 1 : -2;
}

/* Appends to node's connection (-1: the endpoint's); in a cluster, records
 * which node owes the reply. */
static enum sp_err append_to(struct sp_redis *r, int node, int argc,
                             const char **argv, const size_t *lens)
{
    redisContext *c = node >= 0 ? r->nodes[node].ctx : r->ctx;
    if (r->cluster && r->o_len == r->o_cap) {
        size_t cap = r->o_cap ? r->o_cap * 2 : 1024;
        int *o = malloc(cap * sizeof(*o));
        if (!o)
            return SP_ERR_NOMEM;
        for (size_t i = 0; i < r->o_len; i++)
            o[i] = r->order[(r->o_head + i) % r->o_cap];
        free(r->order);
        r->order = o;
        r->o_cap = cap;
        r->o_head = 0;
    }
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) {
        enum sp_err e = map_ctx_err(c->err);
        char why[160];              /* drop() frees c */
        snprintf(why, sizeof(why), "%s", c->errstr);
        drop(r, why, false);
        return e;
    }
    if (r->cluster)
        r->order[(r->o_head + r->o_len++) % r->o_cap] = node;
    if (node >= 0)
        r->nodes[node].unflushed = true;
    r->pending++;
    r->unflushed = true;
    r->stats.commands++;
    return SP_OK;
}

static enum sp_err cluster_append(struct sp_redis *r, int argc,
                                  const char **argv, const size_t *lens)
{
    if (is_cmd(argv[0], lens[0], "MULTI")) {
        /* Sent with the first command after it (to that command's node;
         * callers put only commands of one slot in a transaction). */
        r->multi_waits = true;
        return SP_OK;
    }
    int node = route(r, argc, argv, lens);
    if (node == -2) {
        /* Owed replies must go: reconnect (reading the map again), with
         * backoff, as after any failure. */
        drop(r, "a key's slot has no master in the cluster's slot map", false);
        return SP_ERR_RETRY;
    }
    if (r->multi_waits) {
        const char *m[] = {"MULTI"};
        size_t ml[] = {5};
        r->multi_waits = false;
        enum sp_err e = append_to(r, node, 1, m, ml);
        if (e)
            return e;
    }
    if (!is_cmd(argv[0], lens[0], "EXEC") && !is_cmd(argv[0], lens[0], "DISCARD"))
        r->last_node = node;
    return append_to(r, node, argc, argv, lens);
}

enum sp_err sp_redis_append(struct sp_redis *r, int argc, const char **argv,
                            const size_t *lens)
{
    if (!r->ctx)
        return SP_ERR_RETRY;
    return r->cluster ? cluster_append(r, argc, argv, lens)
                      : append_to(r, -1, argc, argv, lens);
}

enum sp_err sp_redis_append_evalsha(struct sp_redis *r,
                                    const struct sp_redis_script *s,
                                    int nkeys, int argc, const char **argv,
                                    size_t *lens)
{
    char nk[16];
    if (argc < 3 || nkeys < 0 || nkeys > argc - 3)
        return SP_ERR_INVALID;
    int n = snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = s->sha;
    lens[1] = 40;
    argv[2] = nk;
    lens[2] = (size_t)n;
    /* hiredis copies the arguments while formatting: nk may go. */
    return sp_redis_append(r, argc, argv, lens);
}

/* Sends what every master has buffered, so they all work at once. */
static enum sp_err cluster_flush(struct sp_redis *r)
{
    for (size_t i = 0; i < r->n_nodes; i++) {
        struct rnode *nd = &r->nodes[i];
        if (!nd->unflushed)
            continue;
        nd->unflushed = false;
        int done = 0;
        do {
            if (redisBufferWrite(nd->ctx, &done) != REDIS_OK) {
                enum sp_err e = map_ctx_err(nd->ctx->err);
                char why[160];
                snprintf(why, sizeof(why), "%.60s:%d: %.80s", nd->host,
                         nd->port, nd->ctx->errstr);
                drop(r, why, true);
                return e;
            }
        } while (!done);
    }
    return SP_OK;
}

enum sp_err sp_redis_read(struct sp_redis *r, redisReply **out)
{
    *out = NULL;
    if (!r->ctx || r->pending == 0)
        return r->ctx ? SP_ERR_STATE : SP_ERR_RETRY;
    if (r->unflushed) {
        r->stats.round_trips++;
        r->unflushed = false;
        if (r->cluster) {
            enum sp_err e = cluster_flush(r);
            if (e)
                return e;
        }
    }
    redisContext *c = r->ctx;
    if (r->cluster) {
        int node = r->order[r->o_head];
        r->o_head = (r->o_head + 1) % r->o_cap;
        r->o_len--;
        if (node >= 0)
            c = r->nodes[node].ctx;
    }
    void *rep = NULL;
    if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
        enum sp_err e = map_ctx_err(c->err);
        char why[160];
        snprintf(why, sizeof(why), "%s", c->errstr[0] ? c->errstr : "no reply");
        if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
            snprintf(why, sizeof(why), "reply timed out");
        drop(r, why, true);
        return e;
    }
    r->pending--;
    const redisReply *rr = rep;
    if (rr->type == REDIS_REPLY_ERROR && rr->str &&
        (strncmp(rr->str, "MOVED ", 6) == 0 || strncmp(rr->str, "ASK ", 4) == 0)) {
        static struct sp_log_rl rl;
        if (r->cluster) {
            /* MOVED: slots moved (resharding, failover); the caller
             * retries after the map is read again.  ASK: a slot is being
             * migrated and the map is still right; the caller retries
             * until the migration is over. */
            if (rr->str[0] == 'M') {
                r->remap = true;
                r->stats.remaps++;
            }
        } else {
            /* A cluster behind something that hid CLUSTER SLOTS. */
            r->stats.redirects++;
            sp_log_warn_rl(&rl, 10000, r->comp, "Redis Cluster redirected a "
                           "command (%.*s) but %s:%d did not answer CLUSTER "
                           "SLOTS: allow that command to the ACL user, or "
                           "point redis.host at a cluster node or a "
                           "cluster-aware proxy; nothing is processed until "
                           "then", (int)SP_MIN(rr->len, 80), rr->str, r->host,
                           r->o.port);
        }
    }
    *out = rep;
    return SP_OK;
}

size_t sp_redis_pending(const struct sp_redis *r)
{
    return r->pending;
}

/*
 * SCAN over a cluster walks every master in turn: the cursor handed back
 * is "<node>:<cursor>" until the last master's scan ends with "0" (the
 * caller treats cursors as opaque strings).
 */
static enum sp_err cluster_scan(struct sp_redis *r, redisReply **out,
                                int argc, const char **argv,
                                const size_t *lens)
{
    char cur[32];
    snprintf(cur, sizeof(cur), "%.*s", (int)SP_MIN(lens[1], sizeof(cur) - 1),
             argv[1]);
    unsigned long node = 0;
    const char *c = cur, *colon = strchr(cur, ':');
    if (colon) {
        node = strtoul(cur, NULL, 10);
        c = colon + 1;
    }
    if (node >= r->n_nodes)
        return SP_ERR_INVALID;
    const char *av[16];
    size_t al[16];
    if (argc > 16)
        return SP_ERR_INVALID;
    for (int i = 0; i < argc; i++) {
        av[i] = argv[i];
        al[i] = lens[i];
    }
    av[1] = c;
    al[1] = strlen(c);
    enum sp_err e = append_to(r, (int)node, argc, av, al);
    if (e || (e = sp_redis_read(r, out)))
        return e;
    redisReply *rep = *out;
    if ((e = sp_redis_reply_err(rep)))
        return e;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return SP_ERR_REMOTE;
    redisReply *rc = rep->element[0];
    char next[64];
    bool done = strcmp(rc->str, "0") == 0;
    if (done && node + 1 >= r->n_nodes)
        snprintf(next, sizeof(next), "0");
    else if (done)
        snprintf(next, sizeof(next), "%lu:0", node + 1);
    else
        snprintf(next, sizeof(next), "%lu:%.30s", node, rc->str);
    char *copy = strdup(next);
    if (!copy)
        return SP_ERR_NOMEM;
    free(rc->str);
    rc->str = copy;
    rc->len = strlen(copy);
    return SP_OK;
}

enum sp_err sp_redis_call(struct sp_redis *r, redisReply **out, int argc,
                          const char **argv, const size_t *lens)
{
    *out = NULL;
    if (r->pending)
        return SP_ERR_STATE;                /* a pipeline is open */
    if (r->ctx && r->cluster && argc >= 2 && is_cmd(argv[0], lens[0], "SCAN"))
        return cluster_scan(r, out, argc, argv, lens);
    enum sp_err e = sp_redis_append(r, argc, argv, lens);
    if (e)
        return e;
    if ((e = sp_redis_read(r, out)))
        return e;
    return sp_redis_reply_err(*out);
}

enum sp_err sp_redis_eval(struct sp_redis *r, struct sp_redis_script *s,
                          redisReply **out, int nkeys, int argc,
                          const char **argv, size_t *lens)
{
    *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (r->pending)
            return SP_ERR_STATE;
        enum sp_err e = sp_redis_append_evalsha(r, s, nkeys, argc, argv, lens);
        if (e)
            return e;
        if ((e = sp_redis_read(r, out)))
            return e;
        e = sp_redis_reply_err(*out);
        if (e != SP_ERR_NOTFOUND || attempt == 1)
            return e;
        freeReplyObject(*out);
        *out = NULL;
        char why[160];
        if ((e = load_script(r, s, why, sizeof(why)))) {
            if (e == SP_ERR_RETRY)
                drop(r, why, false);
            return e;
        }
    }
    return SP_ERR_STATE;
}

void sp_redis_stats(const struct sp_redis *r, struct sp_redis_stats *st)
{
    *st = r->stats;
}

enum sp_err sp_redis_format(struct sp_buf *out, int argc, const char **argv,
                            const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || !cmd)
        return SP_ERR_NOMEM;
    enum sp_err e = sp_buf_put(out, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return e;
}
