/*
 * correlate_test.h - scaffolding shared by the correlate stage tests: one
 * redis-server per test program (flushed between tests), a stage built
 * from "-s"-style settings, alerts written as one-line specs, and
 * questions asked of the recorded incident snapshots (latest version per
 * incident, which live incident holds an alert, the grouping as a
 * canonical string).
 *
 * Header-only; tests drive the stage through its type's callbacks, the
 * way the engine does, with the memory sink from tests/tools/redis_test.h,
 * and `socpilot incident` through its entry point (ct_cli).
 */
#ifndef SP_CORRELATE_TEST_H
#define SP_CORRELATE_TEST_H

#include <jansson.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"
#include "tests/tools/redis_test.h"

extern const struct sp_stage_type sp_stage_correlate;

#define CT_BASE_S 1704067200LL          /* 2024-01-01T00:00:00Z */
#define CT_MAX_SETS 32

static struct sp_test_redis ct_redis;
static int ct_redis_state;              /* 0 untried, 1 up, -1 unavailable */
/* SP_TEST_REDIS_CLUSTER=1: the program's server is a Redis Cluster of two
 * masters (ct_redis: the first), so the same tests run against one. */
static struct sp_test_cluster ct_cluster;

static inline void ct_redis_atexit(void)
{
    if (ct_cluster.n)
        sp_test_cluster_stop(&ct_cluster);
    else
        sp_test_redis_stop(&ct_redis);
}

/* KEYS pattern over every master of the program's server, as one array
 * reply (freeReplyObject()); NULL when out of memory. */
static inline redisReply *ct_keys(const char *pattern)
{
    redisReply *all = calloc(1, sizeof(*all));
    if (!all)
        return NULL;
    all->type = REDIS_REPLY_ARRAY;
    int masters = ct_cluster.n ? ct_cluster.n : 1;
    for (int m = 0; m < masters; m++) {
        struct sp_test_redis *r = ct_cluster.n ? &ct_cluster.node[m] : &ct_redis;
        redisReply *k = sp_test_redis_cmd(r, "KEYS %s", pattern);
        if (k && k->type == REDIS_REPLY_ARRAY && k->elements > 0) {
            redisReply **e = realloc(all->element, (all->elements + k->elements) *
                                                       sizeof(*e));
            if (e) {
                all->element = e;
                for (size_t i = 0; i < k->elements; i++) {
                    e[all->elements++] = k->element[i];
                    k->element[i] = NULL;       /* moved */
                }
            }
        }
        if (k)
            freeReplyObject(k);
    }
    return all;
}

/* cmd (words separated by single spaces, no quoting) on master m of the
 * program's server; the reply (caller frees) or NULL.  Split here, not
 * given to hiredis as one "%s" (which would be one argument). */
static inline redisReply *ct_master_cmd(int m, const char *cmd)
{
    char buf[256];
    const char *argv[16];
    int argc = 0;
    if (snprintf(buf, sizeof(buf), "%s", cmd) >= (int)sizeof(buf))
        return NULL;
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && argc < 16;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    redisContext *c = sp_test_redis_connect(ct_cluster.n ? &ct_cluster.node[m]
                                                         : &ct_redis);
    if (!c)
        return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    redisFree(c);
    return r;
}

/* A command without keys (SCRIPT FLUSH...) on every master; false when
 * one did not answer or answered an error.  With sum, the masters' replies
 * are integers, added up there. */
static inline bool ct_every_master(const char *cmd, long long *sum)
{
    bool ok = true;
    int masters = ct_cluster.n ? ct_cluster.n : 1;
    if (sum)
        *sum = 0;
    for (int m = 0; m < masters; m++) {
        redisReply *r = ct_master_cmd(m, cmd);
        if (!r || r->type == REDIS_REPLY_ERROR ||
            (sum && r->type != REDIS_REPLY_INTEGER))
            ok = false;
        else if (sum)
            *sum += r->integer;
        if (r)
            freeReplyObject(r);
    }
    return ok;
}

/* The first key matching pattern on the program's server (any master);
 * false when none. */
static inline bool ct_first_key(const char *pattern, char *out, size_t n)
{
    redisReply *k = ct_keys(pattern);
    bool found = k && k->elements > 0;
    if (found)
        snprintf(out, n, "%s", k->element[0]->str);
    if (k)
        freeReplyObject(k);
    return found;
}

/* FLUSHALL on the program's server (every master of the cluster). */
static inline void ct_flush_all(void)
{
    for (int i = 1; i < ct_cluster.n; i++) {
        redisReply *r = sp_test_redis_cmd(&ct_cluster.node[i], "FLUSHALL");
        if (r)
            freeReplyObject(r);
    }
    redisReply *r = sp_test_redis_cmd(&ct_redis, "FLUSHALL");
    if (r)
        freeReplyObject(r);
}

/* Starts the program's server once; false (and a reason) when there is
 * none, so the caller can T_SKIP. */
static inline bool ct_redis_up(const char **why)
{
    if (ct_redis_state == 0) {
        signal(SIGPIPE, SIG_IGN);
        const char *cl = getenv("SP_TEST_REDIS_CLUSTER");
        int rc;
        if (cl && strcmp(cl, "1") == 0) {
            rc = sp_test_cluster_start(&ct_cluster, 2);
            if (rc == 1)
                ct_redis = ct_cluster.node[0];
        } else {
            rc = sp_test_redis_start(&ct_redis);
        }
        ct_redis_state = rc == 1 ? 1 : -1;
        if (rc == 1)
            atexit(ct_redis_atexit);
        *why = rc == 0 ? "redis-server is not installed"
                       : "redis-server would not start";
    } else if (ct_redis_state < 0) {
        *why = "redis-server unavailable";
    }
    return ct_redis_state == 1;
}

struct ct {
    struct sp_test_redis *redis;
    struct sp_config *cfg;
    struct sp_metrics *metrics;
    struct sp_test_sink sink;
    struct sp_env env;
    struct sp_stage *st;
    bool manual;                /* ct_settle never ticks */
};

static inline bool ct_defer(void)
{
    const char *d = getenv("SP_TEST_SNAPSHOT_DEFER");
    return d && strcmp(d, "1") == 0;
}

/* Builds config + stage against server (NULL = the program's server).
 * sets: NULL-terminated "key=value" overrides.  Returns false on error. */
static inline bool ct_stage(struct ct *t, struct sp_test_redis *server,
                            const char *const *sets)
{
    memset(t, 0, sizeof(*t));
    t->redis = server ? server : &ct_redis;
    struct sp_error err = {0};
    t->cfg = sp_config_new();
    if (sp_config_declare(t->cfg, sp_stage_correlate.keys,
                          sp_stage_correlate.n_keys, &err)) {
        fprintf(stderr, "declare: %s\n", err.msg);
        return false;
    }
    char port[64];
    snprintf(port, sizeof(port), "redis.port=%d", t->redis->port);
    sp_config_set(t->cfg, port, &err);
    /* Tests start from neutral settings and turn on what they test. */
    sp_config_set(t->cfg, "correlate.flood.enabled=false", &err);
    sp_config_set(t->cfg, "correlate.noisy.threshold=0", &err);
    sp_config_set(t->cfg, "correlate.outbox.grace=0", &err);
    sp_config_set(t->cfg, "correlate.outbox.interval=100ms", &err);
    sp_config_set(t->cfg, "correlate.defender.poll=10ms", &err);
    /* Snapshots out before process() returns, so a test can look at them
     * right after a batch; test_correlate_state compares the deferred way
     * (the default) with it, and SP_TEST_SNAPSHOT_DEFER=1 runs every test
     * the deferred way: what is owed rides with the next batch, and is
     * published by a tick past the wait (as when the stream pauses) only
     * when the test looks at the snapshots (ct_settle). */
    if (!ct_defer())
        sp_config_set(t->cfg, "correlate.snapshot_defer=false", &err);
    for (size_t i = 0; sets && sets[i] && i < CT_MAX_SETS; i++)
        if (sp_config_set(t->cfg, sets[i], &err)) {
            fprintf(stderr, "set %s: %s\n", sets[i], err.msg);
            return false;
        }
    if (sp_config_validate(t->cfg, &err)) {
        fprintf(stderr, "validate: %s\n", err.msg);
        return false;
    }
    t->metrics = sp_metrics_new("socpilot_");
    sp_test_sink_init(&t->sink);
    t->env.cfg = t->cfg;
    t->env.metrics = t->metrics;
    t->env.sink = &t->sink.sink;
    t->env.instance = "test";
    t->env.topic_alerts = "alerts";
    t->env.topic_incidents = "incidents";
    t->env.topic_dlq = "dlq";
    t->st = sp_stage_new(&sp_stage_correlate, 0, &t->env);
    if (!t->st || sp_stage_init(t->st, &err)) {
        fprintf(stderr, "init: %s\n", err.msg);
        return false;
    }
    return true;
}

/* Flushes the program's server and builds a stage on it. */
static inline bool ct_open(struct ct *t, const char *const *sets)
{
    ct_flush_all();
    return ct_stage(t, NULL, sets);
}

static inline void ct_close(struct ct *t)
{
    sp_stage_free(t->st);
    sp_test_sink_fini(&t->sink);
    sp_metrics_free(t->metrics);
    sp_config_free(t->cfg);
    t->st = NULL;
}

/* ---- alerts ------------------------------------------------------------- */

struct ct_alert {
    const char *id;
    const char *ents;           /* "host:a account:b ip:1.2.3.4" */
    int64_t t;                  /* seconds after CT_BASE_S */
    const char *tenant;         /* NULL = "t1" */
    const char *detector;
    const char *provider;       /* the product */
    const char *title;
    const char *pid;            /* provider incident id */
    const char *status;         /* NULL = "new" */
    int sev;                    /* enum sp_severity, 0 = medium */
    int64_t updated;            /* seconds; 0 = t */
    const char *source;         /* NULL = "graph" */
    int part;                   /* enum sp_alert_part */
    const char *raw;
    const char *scripts;        /* a "scripts" section (JSON), or NULL */
};

static inline const char *ct_type_of(struct sp_arena *a, const char *key)
{
    const char *c = strchr(key, ':');
    return c ? sp_arena_strndup(a, key, (size_t)(c - key)) : "other";
}

/* Adds one message carrying one alert built from spec. */
static inline struct sp_alert *ct_add(struct sp_batch *b,
                                      const struct ct_alert *s)
{
    struct sp_msg *msg = sp_batch_add(b);
    if (!msg)
        return NULL;
    struct sp_arena *a = &msg->arena;
    msg->topic = "in";
    msg->payload = s->raw ? s->raw : "{}";
    msg->len = strlen(msg->payload);
    struct sp_alert *al = sp_alert_new(a);
    al->id = sp_arena_strdup(a, s->id);
    al->tenant = s->tenant ? s->tenant : "t1";
    al->source = s->source ? s->source : "graph";
    al->title = s->title ? s->title : sp_arena_printf(a, "Alert %s", s->id);
    al->detector = s->detector;
    al->provider = s->provider;
    al->provider_incident_id = s->pid;
    al->status = s->status ? s->status : "new";
    al->severity = s->sev ? (enum sp_severity)s->sev : SP_SEV_MEDIUM;
    al->first_activity = (CT_BASE_S + s->t) * 1000000LL;
    al->created = al->first_activity;
    al->updated = (CT_BASE_S + (s->updated ? s->updated : s->t)) * 1000000LL;
    al->part = (enum sp_alert_part)s->part;
    al->raw = msg->payload;
    al->raw_len = msg->len;
    if (s->ents) {
        char *buf = sp_arena_strdup(a, s->ents);
        for (char *save = NULL, *k = strtok_r(buf, " ", &save); k;
             k = strtok_r(NULL, " ", &save)) {
            struct sp_entity *e = sp_alert_add_entity(a, al, ct_type_of(a, k), 0);
            e->key = k;
            sp_entity_add_id(a, e, "name", k);
        }
    }
    if (s->scripts)
        sp_alert_add_section(a, al, "scripts", s->scripts, strlen(s->scripts));
    sp_msg_add_alert(msg, al);
    return al;
}

/* The result of one alert after process(). */
struct ct_res {
    char inc[80];
    int64_t version;
    bool present;               /* still in the batch (not a row/reject) */
    size_t rejects;
    char reason[32];            /* the first reject's reason */
    char detail[256];           /* the first reject's detail */
};

/* Runs n alerts through process() as one batch.  Returns its result. */
static inline enum sp_err ct_run(struct ct *t, const struct ct_alert *alerts,
                                 size_t n, struct ct_res *res)
{
    struct sp_batch *b = sp_batch_new(n ? n : 1);
    static uint64_t seq;
    b->seq = ++seq;
    struct sp_alert **al = calloc(n + 1, sizeof(*al));
    for (size_t i = 0; i < n; i++)
        al[i] = ct_add(b, &alerts[i]);
    enum sp_err e = sp_stage_process(t->st, b);
    for (size_t i = 0; res && i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        struct sp_msg *msg = &b->msgs[i];
        res[i].present = msg->n_alerts == 1;
        res[i].rejects = msg->n_rejects;
        if (msg->n_rejects && msg->rejects[0].reason)
            snprintf(res[i].reason, sizeof(res[i].reason), "%s",
                     msg->rejects[0].reason);
        if (msg->n_rejects && msg->rejects[0].detail)
            snprintf(res[i].detail, sizeof(res[i].detail), "%s",
                     msg->rejects[0].detail);
        if (res[i].present && al[i]->incident_id) {
            snprintf(res[i].inc, sizeof(res[i].inc), "%s", al[i]->incident_id);
            res[i].version = al[i]->incident_version;
        }
    }
    free(al);
    sp_batch_free(b);
    return e;
}

static inline enum sp_err ct_one(struct ct *t, const struct ct_alert *a,
                                 struct ct_res *res)
{
    return ct_run(t, a, 1, res);
}

/* ---- snapshots ------------------------------------------------------------ */

/* With SP_TEST_SNAPSHOT_DEFER=1, publishes the snapshots still owed (a
 * tick past the wait), before a test looks at what was published. */
static inline void ct_settle(struct ct *t)
{
    if (ct_defer() && !t->manual)
        t->st->type->tick(t->st, sp_now_ms() + 1000);
}

/* Outputs to topic so far, what is owed first. */
static inline size_t ct_count(struct ct *t, const char *topic)
{
    ct_settle(t);
    return sp_test_sink_count(&t->sink, topic);
}

/* The latest snapshot of incident id (new reference), or NULL. */
static inline json_t *ct_latest(struct ct *t, const char *id)
{
    json_t *best = NULL;
    long long bv = -1;
    ct_settle(t);
    pthread_mutex_lock(&t->sink.mu);
    for (size_t i = 0; i < t->sink.n; i++) {
        struct sp_test_out *o = &t->sink.outs[i];
        if (strcmp(o->topic, "incidents") != 0 || strcmp(o->key, id) != 0)
            continue;
        long long v = o->version ? atoll(o->version) : 0;
        if (v >= bv) {
            json_t *d = json_loads(o->value, 0, NULL);
            if (d) {
                json_decref(best);
                best = d;
                bv = v;
            }
        }
    }
    pthread_mutex_unlock(&t->sink.mu);
    return best;
}

static inline const char *ct_jstr(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

static inline long long ct_jint(json_t *doc, const char *key)
{
    return json_integer_value(json_object_get(doc, key));
}

/* The latest snapshot of every incident, parsed once. */
struct ct_view {
    size_t n;
    char **ids;
    json_t **docs;
};

struct ct_vrow {
    const char *key;
    long long version;
    size_t idx;
};

static inline int ct_vrow_cmp(const void *a, const void *b)
{
    const struct ct_vrow *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static inline void ct_view_build(struct ct *t, struct ct_view *v)
{
    ct_settle(t);
    pthread_mutex_lock(&t->sink.mu);
    struct ct_vrow *rows = calloc(t->sink.n + 1, sizeof(*rows));
    size_t nr = 0;
    for (size_t i = 0; i < t->sink.n; i++) {
        struct sp_test_out *o = &t->sink.outs[i];
        if (strcmp(o->topic, "incidents") != 0)
            continue;
        rows[nr].key = o->key;
        rows[nr].version = o->version ? atoll(o->version) : 0;
        rows[nr].idx = i;
        nr++;
    }
    qsort(rows, nr, sizeof(*rows), ct_vrow_cmp);
    v->n = 0;
    v->ids = calloc(nr + 1, sizeof(*v->ids));
    v->docs = calloc(nr + 1, sizeof(*v->docs));
    for (size_t i = 0; i < nr; i++) {
        if (i + 1 < nr && strcmp(rows[i].key, rows[i + 1].key) == 0)
            continue;               /* not the latest version */
        json_t *d = json_loads(t->sink.outs[rows[i].idx].value, 0, NULL);
        if (!d)
            continue;
        v->ids[v->n] = strdup(rows[i].key);
        v->docs[v->n] = d;
        v->n++;
    }
    pthread_mutex_unlock(&t->sink.mu);
    free(rows);
}

static inline void ct_view_free(struct ct_view *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->ids[i]);
        json_decref(v->docs[i]);
    }
    free(v->ids);
    free(v->docs);
}

static inline bool ct_view_live(const struct ct_view *v, size_t i)
{
    return json_is_null(json_object_get(v->docs[i], "merged_into")) &&
           json_array_size(json_object_get(v->docs[i], "alerts")) > 0;
}

/* Live (not merged) incidents whose latest snapshot lists alert_id; the
 * first one's id goes to inc.  Returns how many. */
static inline int ct_holders(struct ct *t, const char *alert_id, char *inc,
                             size_t n)
{
    struct ct_view v;
    ct_view_build(t, &v);
    int count = 0;
    if (inc)
        inc[0] = '\0';
    for (size_t i = 0; i < v.n; i++) {
        if (!ct_view_live(&v, i))
            continue;
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(v.docs[i], "alerts"), k, a) {
            if (strcmp(ct_jstr(a, "id"), alert_id) == 0) {
                if (!count && inc)
                    snprintf(inc, n, "%s", v.ids[i]);
                count++;
            }
        }
    }
    ct_view_free(&v);
    return count;
}

/* Live incidents (latest snapshot not merged, at least one alert). */
static inline int ct_live(struct ct *t)
{
    struct ct_view v;
    ct_view_build(t, &v);
    int live = 0;
    for (size_t i = 0; i < v.n; i++)
        live += ct_view_live(&v, i);
    ct_view_free(&v);
    return live;
}

static inline int ct_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every "alert=incident" pair of the live incidents, sorted, as one
 * string (malloc'd); *dups gets how many alerts appear twice. */
static inline char *ct_assignment(struct ct *t, int *dups)
{
    struct ct_view v;
    ct_view_build(t, &v);
    size_t cap = 64, n = 0, len = 1;
    char **pairs = calloc(cap, sizeof(*pairs));
    for (size_t i = 0; i < v.n; i++) {
        if (!ct_view_live(&v, i))
            continue;
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(v.docs[i], "alerts"), k, a) {
            if (n == cap) {
                cap *= 2;
                pairs = realloc(pairs, cap * sizeof(*pairs));
            }
            const char *id = ct_jstr(a, "id");
            size_t l = strlen(id) + strlen(v.ids[i]) + 3;
            pairs[n] = malloc(l);
            snprintf(pairs[n], l, "%s=%s;", id, v.ids[i]);
            len += l;
            n++;
        }
    }
    qsort(pairs, n, sizeof(*pairs), ct_cmp_str);
    char *out = calloc(len, 1);
    size_t o = 0;
    *dups = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            const char *eq = strchr(pairs[i], '=');
            if (strncmp(pairs[i], pairs[i - 1], (size_t)(eq - pairs[i]) + 1) == 0)
                (*dups)++;
        }
        size_t l = strlen(pairs[i]);
        memcpy(out + o, pairs[i], l);
        o += l;
    }
    for (size_t i = 0; i < n; i++)
        free(pairs[i]);
    free(pairs);
    ct_view_free(&v);
    return out;
}

/* The grouping as one canonical string: each live incident as its sorted
 * alert ids, incidents sorted (malloc'd). */
static inline char *ct_partition(struct ct *t)
{
    struct ct_view v;
    ct_view_build(t, &v);
    char **groups = calloc(v.n + 1, sizeof(*groups));
    size_t ng = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (!ct_view_live(&v, i))
            continue;
        json_t *alerts = json_object_get(v.docs[i], "alerts");
        size_t na = json_array_size(alerts);
        char **names = calloc(na, sizeof(*names));
        size_t len = 2;
        for (size_t k = 0; k < na; k++) {
            names[k] = (char *)ct_jstr(json_array_get(alerts, k), "id");
            len += strlen(names[k]) + 1;
        }
        qsort(names, na, sizeof(*names), ct_cmp_str);
        char *g = calloc(len + 1, 1);
        size_t o = 0;
        for (size_t k = 0; k < na; k++) {
            size_t l = strlen(names[k]);
            memcpy(g + o, names[k], l);
            g[o + l] = ',';
            o += l + 1;
        }
        groups[ng++] = g;
        free(names);
    }
    qsort(groups, ng, sizeof(*groups), ct_cmp_str);
    size_t len = 1;
    for (size_t i = 0; i < ng; i++)
        len += strlen(groups[i]) + 1;
    char *out = calloc(len, 1);
    size_t o = 0;
    for (size_t i = 0; i < ng; i++) {
        size_t l = strlen(groups[i]);
        memcpy(out + o, groups[i], l);
        out[o + l] = '|';
        o += l + 1;
        free(groups[i]);
    }
    free(groups);
    ct_view_free(&v);
    return out;
}

/* A metric's value from the Prometheus text ("name{labels}"); -1 if
 * absent. */
static inline double ct_metric(struct ct *t, const char *series)
{
    struct sp_buf b;
    sp_buf_init(&b, (size_t)8 << 20);
    sp_metrics_render(t->metrics, &b);
    double v = -1;
    char pat[512];
    snprintf(pat, sizeof(pat), "\n%s ", series);
    const char *p = b.data ? strstr(b.data, pat) : NULL;
    if (p)
        v = atof(p + strlen(pat));
    sp_buf_fini(&b);
    return v;
}

/* What the snapshot read returns for incident id of tenant t1 (the last
 * `why` decisions): the EXEC reply, from the master that holds it
 * (cluster runs: the others answer MOVED). */
static inline redisReply *ct_snapshot_reply(const char *id, int why)
{
    char meta[128];
    snprintf(meta, sizeof(meta), "sp:{t:t1}:i:%s", id);
    for (int m = 0; m < (ct_cluster.n ? ct_cluster.n : 1); m++) {
        redisContext *c = sp_test_redis_connect(ct_cluster.n ? &ct_cluster.node[m]
                                                             : &ct_redis);
        if (!c)
            continue;
        redisAppendCommand(c, "MULTI");
        redisAppendCommand(c, "HGETALL %s", meta);
        redisAppendCommand(c, "HGETALL %s:al", meta);
        redisAppendCommand(c, "LRANGE %s:why %d -1", meta, -why);
        redisAppendCommand(c, "EXEC");
        redisReply *rep = NULL;
        for (int i = 0; i < 5; i++) {
            void *x = NULL;
            if (redisGetReply(c, &x) != REDIS_OK)
                break;
            if (i < 4)
                freeReplyObject(x);
            else
                rep = x;
        }
        redisFree(c);
        if (rep && rep->type == REDIS_REPLY_ARRAY)
            return rep;
        if (rep)
            freeReplyObject(rep);
    }
    return NULL;
}

/* Calls tick until cond() holds or ms pass; returns cond(). */
static inline bool ct_tick_until(struct ct *t, bool (*cond)(struct ct *),
                                 int ms)
{
    int64_t deadline = sp_now_ms() + ms;
    while (sp_now_ms() < deadline) {
        t->st->type->tick(t->st, sp_now_ms());
        if (cond(t))
            return true;
        sp_test_sleep_ms(10);
    }
    t->st->type->tick(t->st, sp_now_ms());
    return cond(t);
}

/* ---- the incident CLI ------------------------------------------------------ */

/* Runs `socpilot incident <args>` against the server on redis_port, its
 * stdout into out (NUL-terminated, truncated to outn - 1).  Returns its
 * exit status. */
static inline int ct_cli(int redis_port, const char *const *args, int n,
                         char *out, size_t outn)
{
    char *argv[16];
    char port[64];
    snprintf(port, sizeof(port), "redis.port=%d", redis_port);
    int argc = 0;
    argv[argc++] = "incident";
    for (int i = 0; i < n && i < 10; i++)
        argv[argc++] = (char *)args[i];
    argv[argc++] = "-s";
    argv[argc++] = port;
    argv[argc++] = "-s";
    argv[argc++] = "log.level=error";
    argv[argc] = NULL;
    fflush(stdout);
    char path[] = "/tmp/socpilot-cli-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = sp_cmd_incident(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t got = read(fd, out, outn - 1);
    out[got > 0 ? got : 0] = '\0';
    close(fd);
    unlink(path);
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    return rc;
}

#endif /* SP_CORRELATE_TEST_H */
