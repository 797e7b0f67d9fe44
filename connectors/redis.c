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
 * One thread per struct sp_redis (see redis.h).
 */
#include "redis.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define SP_REDIS_MAX_SCRIPTS 16

struct sp_redis {
    redisContext *ctx;
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

static void drop(struct sp_redis *r, const char *why, bool immediate)
{
    bool was_up = r->ctx != NULL;
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->pending = 0;
    r->unflushed = false;
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
    if (r->ctx)
        snprintf(buf, n, "redis %s up", where);
    else
        snprintf(buf, n, "redis %s down: %s", where, r->last_error);
}

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* A command on the raw context during the handshake. */
static enum sp_err handshake_cmd(struct sp_redis *r, int argc,
                                 const char **argv, const size_t *lens,
                                 redisReply **out, char *why, size_t n)
{
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    r->stats.commands++;
    r->stats.round_trips++;
    if (!rep) {
        snprintf(why, n, "%s: %s", argv[0], r->ctx->errstr);
        return map_ctx_err(r->ctx->err);
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

static enum sp_err load_script(struct sp_redis *r, struct sp_redis_script *s,
                               char *why, size_t n)
{
    const char *argv[] = {"SCRIPT", "LOAD", s->src};
    size_t lens[] = {6, 4, strlen(s->src)};
    redisReply *rep = NULL;
    enum sp_err e = handshake_cmd(r, 3, argv, lens, &rep, why, n);
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

enum sp_err sp_redis_connect(struct sp_redis *r, struct sp_error *err)
{
    char why[160] = "";
    enum sp_err e = SP_OK;
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->pending = 0;
    r->unflushed = false;
    struct timeval ctv = tv_ms(r->o.connect_timeout_ms);
    r->ctx = r->unix_path ? redisConnectUnixWithTimeout(r->unix_path, ctv)
                          : redisConnectWithTimeout(r->host, r->o.port, ctv);
    if (!r->ctx) {
        snprintf(why, sizeof(why), "connect: out of memory");
        e = SP_ERR_NOMEM;
        goto fail;
    }
    if (r->ctx->err) {
        snprintf(why, sizeof(why), "connect: %s", r->ctx->errstr);
        e = SP_ERR_RETRY;
        goto fail;
    }
    if (!r->unix_path)
        redisEnableKeepAlive(r->ctx);
    /* The handshake runs under the connect timeout... */
    redisSetTimeout(r->ctx, ctv);
    if (r->password) {
        const char *argv[3];
        size_t lens[3];
        int argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (r->user) {
            argv[argc] = r->user;
            lens[argc++] = strlen(r->user);
        }
        argv[argc] = r->password;
        lens[argc++] = strlen(r->password);
        if ((e = handshake_cmd(r, argc, argv, lens, NULL, why, sizeof(why))))
            goto fail;
    }
    if (r->o.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->o.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        if ((e = handshake_cmd(r, 2, argv, lens, NULL, why, sizeof(why)))) {
            if (e == SP_ERR_REMOTE)
                e = SP_ERR_CONFIG;          /* "ERR DB index is out of range" */
            goto fail;
        }
    }
    for (size_t i = 0; i < r->n_scripts; i++)
        if ((e = load_script(r, r->scripts[i], why, sizeof(why))))
            goto fail;
    /* ...and commands under the command timeout. */
    if (r->o.command_timeout_ms > 0)
        redisSetTimeout(r->ctx, tv_ms(r->o.command_timeout_ms));
    else
        redisSetTimeout(r->ctx, tv_ms(0));
    r->backoff_ms = 0;
    r->stats.connects++;
    snprintf(r->last_error, sizeof(r->last_error), "none");
    char where[300];
    if (r->unix_path)
        snprintf(where, sizeof(where), "unix:%s", r->unix_path);
    else
        snprintf(where, sizeof(where), "%s:%d", r->host, r->o.port);
    sp_log_info(r->comp, "connected to %s (db %d)", where, r->o.db);
    return SP_OK;
fail:
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    r->stats.failures++;
    schedule_retry(r, false);
    if (err)
        sp_error_set(err, e, "redis: %s", why);
    if (err)
        err->retriable = (e == SP_ERR_RETRY);
    return e;
}

enum sp_err sp_redis_ensure(struct sp_redis *r, int64_t now_ms)
{
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

/* ---- commands ------------------------------------------------------------- */

enum sp_err sp_redis_append(struct sp_redis *r, int argc, const char **argv,
                            const size_t *lens)
{
    if (!r->ctx)
        return SP_ERR_RETRY;
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        enum sp_err e = map_ctx_err(r->ctx->err);
        drop(r, r->ctx->errstr, false);
        return e;
    }
    r->pending++;
    r->unflushed = true;
    r->stats.commands++;
    return SP_OK;
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

enum sp_err sp_redis_read(struct sp_redis *r, redisReply **out)
{
    *out = NULL;
    if (!r->ctx || r->pending == 0)
        return r->ctx ? SP_ERR_STATE : SP_ERR_RETRY;
    if (r->unflushed) {
        r->stats.round_trips++;
        r->unflushed = false;
    }
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
        enum sp_err e = map_ctx_err(r->ctx->err);
        char why[160];
        snprintf(why, sizeof(why), "%s",
                 r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
        if (r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
            snprintf(why, sizeof(why), "reply timed out");
        drop(r, why, true);
        return e;
    }
    r->pending--;
    const redisReply *rr = rep;
    if (rr->type == REDIS_REPLY_ERROR && rr->str &&
        (strncmp(rr->str, "MOVED ", 6) == 0 || strncmp(rr->str, "ASK ", 4) == 0)) {
        static struct sp_log_rl rl;
        r->stats.redirects++;
        sp_log_warn_rl(&rl, 10000, r->comp, "Redis Cluster redirected a "
                       "command (%.*s): socpilot talks to one endpoint, so use "
                       "a standalone server, a cluster-aware proxy, or a "
                       "cluster whose node holds every slot; nothing is "
                       "processed until then", (int)SP_MIN(rr->len, 80),
                       rr->str);
    }
    *out = rep;
    return SP_OK;
}

size_t sp_redis_pending(const struct sp_redis *r)
{
    return r->pending;
}

enum sp_err sp_redis_call(struct sp_redis *r, redisReply **out, int argc,
                          const char **argv, const size_t *lens)
{
    *out = NULL;
    if (r->pending)
        return SP_ERR_STATE;                /* a pipeline is open */
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
