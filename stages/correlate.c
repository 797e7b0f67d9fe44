/*
 * correlate.c - the correlate stage: every alert of a batch is
 * deduplicated and grouped into an incident in Redis, and each incident
 * that changed is published as a full snapshot.
 *
 * A batch costs a constant number of Redis round trips: one pipeline of
 * EVALSHA calls (one Lua script call per tenant does dedupe + lookup +
 * merge + write for each of its alerts in turn, atomically, see
 * correlate_lua.c), and snapshot reads for the incidents that changed.
 * By default (correlate.snapshot_defer) those reads lead the next batch's
 * pipeline and the snapshots are written while Redis runs its scripts
 * (correlate_out.c, "owed snapshots").  Snapshots go out in a detached batch;
 * every change is also recorded in a per-tenant outbox inside the same
 * script, and removed only once its snapshot is acknowledged, so a crash
 * anywhere between Redis and Kafka republishes instead of losing it.
 *
 * Redis down: process() returns SP_ERR_RETRY (the engine pauses and calls
 * again with the same batch; replays are duplicates to the scripts, which
 * report whether the incident still waits in the outbox), /readyz says
 * not ready, tick() reconnects with backoff.
 *
 * Owns: the Redis connection, the parsed rules, work memory, the queue of
 * acks.  All callbacks run on the engine thread.
 */
#include "correlate_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static const struct sp_cfg_key correlate_keys[] = {
    {"correlate.key_prefix", SP_CFG_STR, "sp", 0, 0,
     "Prefix of every Redis key the stage writes", 0, NULL},
    {"correlate.default_tenant", SP_CFG_STR, "default", 0, 0,
     "Tenant of alerts that carry none", 0, NULL},
    {"correlate.window", SP_CFG_DURATION, "24h", 1000, 7 * 86400000LL,
     "Alerts sharing a correlating entity within this time join one "
     "incident (1s..7d)", 0, NULL},
    {"correlate.mode", SP_CFG_ENUM, "any", 0, 0,
     "Default grouping: any shared entity, all entities equal, or selected "
     "entity types plus equal alert fields", 0, "any|all|selected"},
    {"correlate.entity_types", SP_CFG_LIST,
     "host,account,ip,file,url,domain,mailbox", 0, 0,
     "Entity types that correlate by default", 0, NULL},
    {"correlate.fields", SP_CFG_LIST, "", 0, 0,
     "Alert fields that must be equal in modes all/selected (detector, "
     "title, source, provider, category, severity)", 0, NULL},
    {"correlate.rules", SP_CFG_MAP, NULL, 0, 0,
     "Per source or detector grouping: \"source:<name>\" or "
     "\"detector:<name>\" (or \"default\") -> \"mode=selected "
     "types=host,account fields=detector window=2h\"", 0, NULL},
    {"correlate.max_alerts", SP_CFG_INT, "150", 1, 10000,
     "Alerts per incident; past it a new incident continues the story", 0,
     NULL},
    {"correlate.max_entities", SP_CFG_INT, "64", 1, 500,
     "Entities per alert considered (kept in the incident, correlating)", 0,
     NULL},
    {"correlate.max_why", SP_CFG_INT, "500", 10, 100000,
     "Decisions kept per incident for explain (oldest dropped)", 0, NULL},
    {"correlate.flood.enabled", SP_CFG_BOOL, "true", 0, 0,
     "Collapse floods of similar alerts into one overflow incident", 0, NULL},
    {"correlate.flood.threshold", SP_CFG_INT, "50", 1, 10000000,
     "More similar alerts than this within the flood window overflow", 0,
     NULL},
    {"correlate.flood.window", SP_CFG_DURATION, "10m", 1000, 86400000,
     "Flood window", 0, NULL},
    {"correlate.flood.key", SP_CFG_ENUM, "detector", 0, 0,
     "What makes alerts similar: detector (title when none), title, or both",
     0, "detector|title|detector_title"},
    {"correlate.noisy.stoplist", SP_CFG_LIST, "", 0, 0,
     "Entity keys (shell patterns, e.g. host:dc*.contoso.com) that never "
     "correlate", 0, NULL},
    {"correlate.noisy.threshold", SP_CFG_INT, "20", 0, 100000,
     "An entity that glued more than this many unrelated groups within the "
     "window stops correlating (0 = off)", 0, NULL},
    {"correlate.close_on_resolved", SP_CFG_BOOL, "true", 0, 0,
     "Close an incident when all its alerts are resolved (reopen when one "
     "is active again), unless its status was set by the CLI", 0, NULL},
    {"correlate.retention", SP_CFG_DURATION, "30d", 60000,
     366 * 86400000LL,
     "How long incidents, alert records and mappings stay in Redis after "
     "their last change", 0, NULL},
    {"correlate.pipeline_max", SP_CFG_INT, "4096", 1, 100000,
     "Commands per Redis pipeline (a batch needs ceil(alerts/this) round "
     "trips per step; the last batch's snapshot reads, up to as many "
     "again, may ride along)", 0, NULL},
    {"correlate.snapshot_max", SP_CFG_SIZE, "900KiB", CORR_SNAPSHOT_MIN,
     (int64_t)64 << 20,
     "Largest incident snapshot; past it long strings, entities, why and "
     "then alerts are cut", 0, NULL},
    {"correlate.snapshot_cache", SP_CFG_SIZE, "64MiB", 0, (int64_t)4 << 30,
     "Memory for alert summaries and decisions already parsed and written "
     "into snapshots, so a large incident's are not redone with each "
     "change (0 = off; a few MiB at least to be of use)", 0, NULL},
    {"correlate.snapshot_defer", SP_CFG_BOOL, "true", 0, 0,
     "Publish a batch's incident snapshots while Redis runs the next "
     "batch (more throughput; when no batch follows they go out after "
     "~100 ms); false publishes them before the batch completes", 0, NULL},
    {"correlate.snapshot_why", SP_CFG_INT, "100", 0, 100000,
     "Latest decisions included in each published snapshot (explain shows "
     "all kept)", 0, NULL},
    {"correlate.outbox.interval", SP_CFG_DURATION, "5s", 100, 3600000,
     "How often unacknowledged incident changes are looked for", 0, NULL},
    {"correlate.outbox.grace", SP_CFG_DURATION, "60s", 0, 86400000,
     "Age after which an unacknowledged change is republished", 0, NULL},
    {"correlate.outbox.batch", SP_CFG_INT, "200", 1, 100000,
     "Incidents republished per tenant and interval at most", 0, NULL},
    {"correlate.defender.settle", SP_CFG_DURATION, "30s", 0, 3600000,
     "Defender AlertInfo/AlertEvidence rows are assembled this long after "
     "an alert's first row", 0, NULL},
    {"correlate.defender.max_wait", SP_CFG_DURATION, "10m", 0, 86400000,
     "Evidence without its AlertInfo row is emitted anyway after this", 0,
     NULL},
    {"correlate.defender.lease", SP_CFG_DURATION, "60s", 1000, 3600000,
     "An assembly taken for emission is due again after this unless its "
     "output was acknowledged", 0, NULL},
    {"correlate.defender.poll", SP_CFG_DURATION, "500ms", 10, 60000,
     "How often due assemblies are looked for", 0, NULL},
    {"correlate.defender.max_rows", SP_CFG_INT, "500", 1, 100000,
     "Rows kept per Defender alert; more go to the DLQ", 0, NULL},
    {"correlate.defender.max_bytes", SP_CFG_SIZE, "4MiB", 65536,
     (int64_t)1 << 30,
     "Bytes of rows kept per Defender alert; a row past them goes to the "
     "DLQ", 0, NULL},
    {"correlate.defender.batch", SP_CFG_INT, "200", 1, 100000,
     "Assemblies emitted per tenant and poll at most", 0, NULL},
    {"correlate.defender.poll_bytes", SP_CFG_SIZE, "64MiB", 65536,
     (int64_t)4 << 30,
     "Bytes of rows one poll reads at most, shared by its tenants (an "
     "assembly bigger than its tenant's share is read alone)", 0, NULL},
    SP_REDIS_CFG_KEYS,
};

/* ---- metrics ------------------------------------------------------------- */

static const char *const result_names[CORR_R__COUNT] = {
    [CORR_R_NEW] = "new",         [CORR_R_JOINED] = "joined",
    [CORR_R_UPDATED] = "updated", [CORR_R_DUP] = "duplicate",
    [CORR_R_STALE] = "stale",     [CORR_R_FLOOD] = "flood",
    [CORR_R_REJECTED] = "rejected", [CORR_R_ROW] = "defender_row",
};

static void metrics_init(struct corr_ctx *ctx, struct sp_stage *st)
{
    struct sp_metrics *m = st->env ? st->env->metrics : NULL;
    if (!m)
        return;
    char l[160];
    for (int i = 0; i < CORR_R__COUNT; i++) {
        snprintf(l, sizeof(l), "stage=\"%s\",result=\"%s\"", st->name,
                 result_names[i]);
        ctx->c_result[i] = sp_metrics_counter(
            m, "correlate_alerts_total",
            "Alerts correlated, by outcome", l);
    }
    struct {
        struct sp_counter **c;
        const char *how;
    } hows[] = {
        {&ctx->c_how_entity, "entity"},
        {&ctx->c_how_provider, "provider"},
        {&ctx->c_how_group, "group"},
        {&ctx->c_how_continuation, "continuation"},
        {&ctx->c_how_after_closed, "after_closed"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(hows); i++) {
        snprintf(l, sizeof(l), "stage=\"%s\",how=\"%s\"", st->name,
                 hows[i].how);
        *hows[i].c = sp_metrics_counter(
            m, "correlate_joins_total",
            "Alerts placed by entity, provider incident, group, or into a "
            "continuation / after-closed incident", l);
    }
    snprintf(l, sizeof(l), "stage=\"%s\"", st->name);
    ctx->c_merges = sp_metrics_counter(m, "correlate_merges_total",
                                       "Incidents merged into an older one", l);
    ctx->c_merge_skips = sp_metrics_counter(
        m, "correlate_merges_skipped_total",
        "Bridges not merged because the result would pass max_alerts", l);
    ctx->c_noisy_detected = sp_metrics_counter(
        m, "correlate_noisy_entities_detected_total",
        "Entities found noisy by the automatic rule", l);
    ctx->c_published = sp_metrics_counter(
        m, "correlate_incidents_published_total",
        "Incident snapshots produced", l);
    ctx->c_recovered = sp_metrics_counter(
        m, "correlate_outbox_recovered_total",
        "Snapshots republished from the outbox (lost ack, crash, or landed "
        "out of order)", l);
    ctx->c_out_of_order = sp_metrics_counter(
        m, "incident_snapshots_out_of_order_total",
        "Acknowledgements that found an incident's last record older than "
        "a version already landed (several instances); published again", l);
    /* The analyze stage counts what passes it; assembled Defender alerts
     * do not, so their schedules are counted here, under this label. */
    ctx->c_an_scheduled = sp_metrics_counter(
        m, "analyze_scheduled_total",
        "Incident changes scheduled for analysis", l);
    ctx->c_assembled = sp_metrics_counter(
        m, "correlate_defender_assembled_total",
        "Defender alerts assembled from AlertInfo/AlertEvidence rows", l);
    /* The publish stage's counter: assembled alerts are produced here. */
    ctx->c_published_alerts = sp_metrics_counter(
        m, "published_alerts_total", "Alerts produced to the alerts topic",
        NULL);
    ctx->c_asm_dropped = sp_metrics_counter(
        m, "correlate_defender_rows_left_out_total",
        "Defender assemblies too big for memory, assembled without the "
        "rows that did not fit (logged)", l);
    ctx->c_round_trips = sp_metrics_counter(
        m, "correlate_redis_round_trips_total", "Redis round trips", l);
    ctx->c_redis_errors = sp_metrics_counter(
        m, "correlate_redis_errors_total",
        "Redis failures that made the stage retry", l);
    ctx->c_publish_errors = sp_metrics_counter(
        m, "correlate_publish_errors_total",
        "Snapshots or assembled alerts the sink refused, snapshots that "
        "could not be written, and deferred snapshot reads Redis refused "
        "(republished from the outbox later)", l);
    ctx->g_redis_up = sp_metrics_gauge(m, "correlate_redis_up",
                                       "1 while Redis is connected", l);
    ctx->g_redis_may_evict = sp_metrics_gauge(
        m, "correlate_redis_may_evict",
        "1 when Redis has a maxmemory and a policy other than noeviction: "
        "correlation state may be evicted (-1: could not be checked)", l);
    ctx->g_redis_used = sp_metrics_gauge(
        m, "correlate_redis_used_memory_bytes",
        "Memory Redis uses, all masters (INFO used_memory; -1: not known)", l);
    ctx->g_redis_max = sp_metrics_gauge(
        m, "correlate_redis_maxmemory_bytes",
        "Redis maxmemory, all masters (0: no limit; -1: not known); a full "
        "Redis pauses the stage", l);
    ctx->c_memo_hits = sp_metrics_counter(
        m, "correlate_snapshot_memo_hits_total",
        "Alert summaries and decisions a snapshot took from the memo "
        "(correlate.snapshot_cache)", l);
    ctx->c_memo_misses = sp_metrics_counter(
        m, "correlate_snapshot_memo_misses_total",
        "Alert summaries and decisions a snapshot had to parse and write "
        "(kept in the memo when it has room)", l);
    ctx->c_memo_drops = sp_metrics_counter(
        m, "correlate_snapshot_memo_drops_total",
        "Times the memo dropped its older half to make room", l);
    ctx->g_memo_bytes = sp_metrics_gauge(
        m, "correlate_snapshot_memo_bytes", "Memory the snapshot memo holds",
        l);
    ctx->h_redis = sp_metrics_hist(m, "correlate_redis_seconds",
                                   "Time waiting for a pipelined round's "
                                   "replies (deferred snapshots: after "
                                   "publishing the owed ones)", l,
                                   NULL, 0);
    snprintf(l, sizeof(l), "stage=\"%s\",reason=\"stoplist\"", st->name);
    ctx->c_noisy_stop = sp_metrics_counter(
        m, "correlate_noisy_skipped_total",
        "Entity uses ignored for correlation because the entity is noisy", l);
    snprintf(l, sizeof(l), "stage=\"%s\",reason=\"auto\"", st->name);
    ctx->c_noisy_auto = sp_metrics_counter(
        m, "correlate_noisy_skipped_total",
        "Entity uses ignored for correlation because the entity is noisy", l);
}

void corr_redis_failed(struct corr_ctx *ctx, enum sp_err e, const char *what)
{
    static struct sp_log_rl rl;
    char d[256];
    sp_redis_describe(ctx->redis, d, sizeof(d));
    sp_counter_inc(ctx->c_redis_errors);
    sp_gauge_set(ctx->g_redis_up, sp_redis_is_up(ctx->redis) ? 1 : 0);
    sp_log_warn_rl(&rl, 5000, ctx->st->log, "%s: %s (%s); will retry", what,
                   sp_strerror(e), d);
}

/* ---- changed incidents ----------------------------------------------------- */

enum sp_err corr_list_add(struct corr_changed **list, size_t *n,
                          size_t *cap, const char *prefix, const char *tenant,
                          const char *id)
{
    /* A batch changes few incidents; a linear scan stays cheap and keeps
     * snapshot order deterministic (first change first). */
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i].id, id) == 0 &&
            strcmp((*list)[i].prefix, prefix) == 0)
            return SP_OK;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        if (nc > 1000000)
            return SP_ERR_LIMIT;
        struct corr_changed *c = realloc(*list, nc * sizeof(*c));
        if (!c)
            return SP_ERR_NOMEM;
        *list = c;
        *cap = nc;
    }
    struct corr_changed *c = &(*list)[(*n)++];
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
    return SP_OK;
}

enum sp_err corr_changed_add(struct corr_ctx *ctx, const char *prefix,
                             const char *tenant, const char *id)
{
    return corr_list_add(&ctx->changed, &ctx->n_changed, &ctx->cap_changed,
                         prefix, tenant, id);
}

/* ---- the Redis rounds ------------------------------------------------------ */

/* Whether the correlate script schedules analysis jobs (an analyze stage
 * follows in the chain), whose tenants go to <prefix>:tenants:an. */
static bool analysis_on(const struct corr_ctx *ctx)
{
    return ctx->st && ctx->st->env && ctx->st->env->analysis_quiet_ms > 0;
}

static bool tenant_cached(struct corr_ctx *ctx, const char *set,
                          const char *tenant, bool add)
{
    uint64_t h = corr_hash(corr_hash(CORR_HASH_INIT, set, strlen(set)),
                           tenant, strlen(tenant));
    if (!h)
        h = 1;
    uint64_t *slot = &ctx->tenant_cache[h % CORR_TENANT_CACHE];
    if (*slot == h)
        return true;
    if (add)
        *slot = h;
    return false;
}

static void copy_str(char *dst, size_t n, const redisReply *r)
{
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)) {
        size_t l = SP_MIN(r->len, n - 1);
        memcpy(dst, r->str, l);
        dst[l] = '\0';
    } else {
        dst[0] = '\0';
    }
}

/*
 * One alert's result in the call's flat reply (see the script's header):
 * status, incident, version, pending, how (e[0..4]), N changed incidents,
 * M entities newly noisy, then noisy uses, merges, merges skipped (tail).
 */
struct result_view {
    redisReply **e, **chg, **nn, **tail;
    size_t n_chg, n_nn;
};

/* Reads the result at *pos into r and moves *pos past it; false, *pos
 * unchanged, when the reply does not have that shape there. */
static bool result_shape(const redisReply *rep, size_t *pos,
                         struct result_view *r)
{
    size_t p = *pos, n = rep->elements;
    redisReply **el = rep->element;
    if (n - p < 6 || el[p + 2]->type != REDIS_REPLY_INTEGER ||
        el[p + 3]->type != REDIS_REPLY_INTEGER ||
        el[p + 5]->type != REDIS_REPLY_INTEGER || el[p + 5]->integer < 0 ||
        (unsigned long long)el[p + 5]->integer > n - p - 6)
        return false;
    r->e = el + p;
    r->n_chg = (size_t)el[p + 5]->integer;
    r->chg = el + p + 6;
    p += 6 + r->n_chg;
    if (n - p < 1 || el[p]->type != REDIS_REPLY_INTEGER || el[p]->integer < 0 ||
        (unsigned long long)el[p]->integer > n - p - 1)
        return false;
    r->n_nn = (size_t)el[p]->integer;
    r->nn = el + p + 1;
    p += 1 + r->n_nn;
    if (n - p < 3 || el[p]->type != REDIS_REPLY_INTEGER ||
        el[p + 1]->type != REDIS_REPLY_INTEGER ||
        el[p + 2]->type != REDIS_REPLY_INTEGER)
        return false;
    r->tail = el + p;
    *pos = p + 3;
    return true;
}

/* Whether rep holds exactly n results, each of the right shape, and the
 * call's "seen set anew" flag after them. */
static bool reply_fits(const redisReply *rep, size_t n)
{
    size_t pos = 0;
    struct result_view r;
    for (size_t i = 0; i < n; i++)
        if (!result_shape(rep, &pos, &r))
            return false;
    return pos + 1 == rep->elements &&
           rep->element[pos]->type == REDIS_REPLY_INTEGER;
}

/* Takes one alert's result apart into item and counters. */
static enum sp_err take_result(struct corr_ctx *ctx, struct corr_item *item,
                               const redisReply *rep, size_t *pos,
                               bool *replay)
{
    struct result_view rv;
    if (!result_shape(rep, pos, &rv)) {
        item->err = SP_ERR_REMOTE;
        item->errmsg = "unexpected reply from the correlate script";
        return SP_OK;
    }
    redisReply **e = rv.e;
    copy_str(item->status, sizeof(item->status), e[0]);
    copy_str(item->inc, sizeof(item->inc), e[1]);
    item->version = e[2]->integer;
    copy_str(item->how, sizeof(item->how), e[4]);
    item->done = true;
    const char *s = item->status;
    enum corr_result r = strcmp(s, "new") == 0       ? CORR_R_NEW
                         : strcmp(s, "joined") == 0  ? CORR_R_JOINED
                         : strcmp(s, "updated") == 0 ? CORR_R_UPDATED
                         : strcmp(s, "flood") == 0   ? CORR_R_FLOOD
                         : strcmp(s, "stale") == 0   ? CORR_R_STALE
                                                     : CORR_R_DUP;
    sp_counter_inc(ctx->c_result[r]);
    const char *how = item->how;
    if (strcmp(how, "entity") == 0)
        sp_counter_inc(ctx->c_how_entity);
    else if (strcmp(how, "provider") == 0)
        sp_counter_inc(ctx->c_how_provider);
    else if (strcmp(how, "group") == 0)
        sp_counter_inc(ctx->c_how_group);
    else if (strcmp(how, "continuation") == 0)
        sp_counter_inc(ctx->c_how_continuation);
    else if (strcmp(how, "after_closed") == 0)
        sp_counter_inc(ctx->c_how_after_closed);
    enum sp_err err = SP_OK;
    item->changed = r != CORR_R_DUP && r != CORR_R_STALE;
    if (!item->changed) {
        /* A replay: publish again only what never got acknowledged. */
        *replay = true;
        if (e[3]->integer == 1)
            err = corr_changed_add(ctx, item->prefix, item->tenant, item->inc);
        return err;
    }
    if (item->n_stop)
        sp_counter_add(ctx->c_noisy_stop, (uint64_t)item->n_stop);
    sp_counter_add(ctx->c_noisy_auto, (uint64_t)rv.tail[0]->integer);
    sp_counter_add(ctx->c_merges, (uint64_t)rv.tail[1]->integer);
    sp_counter_add(ctx->c_merge_skips, (uint64_t)rv.tail[2]->integer);
    for (size_t i = 0; i < rv.n_nn; i++) {
        const redisReply *k = rv.nn[i];
        sp_counter_inc(ctx->c_noisy_detected);
        if (k->type == REDIS_REPLY_STRING)
            sp_log_info(ctx->st->log, "entity %.*s is noisy in tenant %s: it "
                        "no longer correlates (noisy.threshold=%lld)",
                        (int)SP_MIN(k->len, 300), k->str, item->tenant,
                        (long long)ctx->noisy_k);
    }
    for (size_t i = 0; i < rv.n_chg && !err; i++) {
        char id[80];
        copy_str(id, sizeof(id), rv.chg[i]);
        if (id[0])
            err = corr_changed_add(ctx, item->prefix, item->tenant, id);
    }
    return err;
}

static void take_row_result(struct corr_ctx *ctx, struct corr_item *item,
                            const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        item->err = SP_ERR_REMOTE;
        item->errmsg = "unexpected reply from the assembly script";
        return;
    }
    /* Kept through the chunk's retries (which replay the row as one
     * already stored).  A row already stored is added again too: it may
     * replay the row of a process that died before its SADD, whose
     * registration this process may have cached from before the poll
     * dropped the tenant (see take_call). */
    if (rep->element[1]->integer == 1 || rep->element[0]->integer == 0)
        item->asm_register = true;
    if (rep->element[0]->integer < 0) {
        item->err = SP_ERR_LIMIT;
        item->reason = "too_many_rows";
        item->errmsg = rep->element[0]->integer == -1
            ? "more rows for this Defender alert than "
              "correlate.defender.max_rows"
            : "this row would take the rows of its Defender alert past "
              "correlate.defender.max_bytes";
        return;
    }
    item->done = true;
    sp_counter_inc(ctx->c_result[CORR_R_ROW]);
}

/*
 * The alerts of one tenant go to Redis as one correlate call (at most
 * CORR_CALL_MAX alerts: a script runs alone on its server, and 128 alerts
 * take about 10 ms), each alert still decided and written atomically, one
 * after the other in batch order.  Defender rows go one call each.
 */
#define CORR_CALL_MAX 128
/* How far past its first alert a call looks for more of its tenant: many
 * tenants in one chunk cost a bounded scan each, not one over the chunk. */
#define CORR_CALL_SCAN 1024

struct corr_call {
    size_t first;                    /* the item the call starts with */
    size_t n;                        /* alerts in it (1 for a row) */
    size_t *members;                 /* item indices, batch order */
};

/* A chunk's items with each one's script arguments, while its calls are
 * put together. */
struct chunk {
    struct corr_item *items;
    size_t n;
    int *argcs;                      /* per item: its argv ... */
    const char ***argvs;
    size_t **lensv;
    uint64_t *ph;                    /* ... and the hash of its prefix */
    bool *taken;                     /* in a call already (or not sent) */
    size_t call_max;                 /* alerts per call */
    const char *token;               /* see "stop" in the script */
    int64_t now_ms;
};

/* The call of the tenant of items[i], gathered from i on (items not
 * taken yet, not rows, of the same tenant). */
static enum sp_err gather_call(struct corr_ctx *ctx, struct chunk *ck, size_t i,
                               struct corr_call *call, const char ***argvp,
                               size_t **lensp, int *argcp)
{
    const struct corr_item *items = ck->items;
    size_t n = ck->n;
    const int *argcs = ck->argcs;
    size_t cap = SP_MIN(ck->call_max, n - i);
    size_t *members = sp_arena_alloc(&ctx->work, cap * sizeof(*members));
    if (!members)
        return SP_ERR_NOMEM;
    size_t m = 0;
    /* EVALSHA sha numkeys, KEYS[1], P, token, the shared settings */
    int argc = 6 + CORR_CALL_ARGS;
    size_t end = SP_MIN(n, i + CORR_CALL_SCAN);
    for (size_t j = i; j < end && m < cap; j++) {
        if (ck->taken[j] || items[j].row || ck->ph[j] != ck->ph[i] ||
            strcmp(items[j].prefix, items[i].prefix) != 0)
            continue;
        ck->taken[j] = true;
        members[m++] = j;
        argc += argcs[j] - 5;
    }
    const char **argv = sp_arena_alloc(&ctx->work, (size_t)argc * sizeof(*argv));
    size_t *lens = sp_arena_alloc(&ctx->work, (size_t)argc * sizeof(*lens));
    /* KEYS[1], for routing: the first alert's record. */
    char *key = sp_arena_printf(&ctx->work, "%sa:%s", items[i].prefix,
                                items[i].alert->id);
    if (!argv || !lens || !key)
        return SP_ERR_NOMEM;
    memcpy(argv, ck->argvs[i], 5 * sizeof(*argv));
    memcpy(lens, ck->lensv[i], 5 * sizeof(*lens));
    argv[3] = key;
    lens[3] = strlen(key);
    argv[5] = ck->token;
    lens[5] = strlen(ck->token);
    int k = 6;
    int nh = corr_call_header(ctx, &items[i], ck->now_ms, argv + k, lens + k);
    if (nh != CORR_CALL_ARGS)
        return SP_ERR_NOMEM;
    k += nh;
    for (size_t x = 0; x < m; x++) {
        size_t j = members[x];
        memcpy(argv + k, ck->argvs[j] + 5, (size_t)(argcs[j] - 5) * sizeof(*argv));
        memcpy(lens + k, ck->lensv[j] + 5, (size_t)(argcs[j] - 5) * sizeof(*lens));
        k += argcs[j] - 5;
    }
    call->first = i;
    call->n = m;
    call->members = members;
    *argvp = argv;
    *lensp = lens;
    *argcp = argc;
    return SP_OK;
}

/* One call's reply: a row's, or the results of its alerts, one after the
 * other in one array. */
static enum sp_err take_call(struct corr_ctx *ctx, struct corr_item *items,
                             const struct corr_call *call, redisReply *rep,
                             bool *noscript)
{
    enum sp_err re = sp_redis_reply_err(rep);
    if (re == SP_ERR_NOTFOUND) {
        *noscript = true;
        return SP_OK;
    }
    if (re && re != SP_ERR_REMOTE)
        return re == SP_ERR_CONFIG ? SP_ERR_RETRY : re;
    if (items[call->first].row) {
        struct corr_item *item = &items[call->first];
        if (re) {
            item->err = SP_ERR_REMOTE;
            item->errmsg = sp_arena_printf(item->arena, "redis: %.*s",
                                           (int)SP_MIN(rep->len, 400),
                                           rep->str ? rep->str : "");
        } else {
            take_row_result(ctx, item, rep);
        }
        return SP_OK;
    }
    if (!re && rep->type == REDIS_REPLY_STATUS && rep->str &&
        strcmp(rep->str, "SKIPPED") == 0) {
        /* An earlier call of this tenant failed: all run again alone. */
        for (size_t x = 0; x < call->n; x++)
            items[call->members[x]].alone = true;
        return SP_OK;
    }
    /* A reply not of the call's shape fails the whole call, as an error
     * would: nothing of it is taken. */
    if (!re && (rep->type != REDIS_REPLY_ARRAY || !reply_fits(rep, call->n)))
        re = SP_ERR_REMOTE;
    /* The tenant's seen was gone, or it had no analysis job before this
     * call (or, the call having failed, may have been so: a failed call
     * still writes what it did): its registration for outbox recovery,
     * or for the analyze stage's claim, may be cached from before a walk
     * dropped it, so it is added again after this reply
     * (corr_tenants_register). */
    long long reg = re ? CORR_REG_SEEN | CORR_REG_AN
                       : rep->element[rep->elements - 1]->integer;
    if (reg & CORR_REG_SEEN)
        items[call->first].out_register = true;
    if ((reg & CORR_REG_AN) && analysis_on(ctx))
        items[call->first].an_register = true;
    size_t pos = 0;
    bool replay = false;
    for (size_t x = 0; x < call->n; x++) {
        struct corr_item *item = &items[call->members[x]];
        if (re && call->n > 1) {
            /* A script error aborts the whole call after writing what
             * the alerts before the one at fault did (see rcall in the
             * script): each runs again alone, those as duplicates whose
             * changes wait in the outbox, so only the one at fault is
             * rejected. */
            item->alone = true;
        } else if (re) {
            item->err = SP_ERR_REMOTE;
            item->errmsg = sp_arena_printf(
                item->arena, "redis: %.*s", (int)SP_MIN(rep->len, 400),
                rep->type == REDIS_REPLY_ERROR && rep->str
                    ? rep->str : "unexpected reply from the correlate script");
        } else {
            enum sp_err e = take_result(ctx, item, rep, &pos, &replay);
            if (e)
                return e;
        }
    }
    /* A replay (duplicates, stale alerts) may be that of a batch whose
     * process ran this call's script and died before adding its tenant
     * again after the reply (another instance after a rebalance, or the
     * Defender poll emitting an assembly whose lease expired): its script
     * then found seen set and the analysis job scheduled, so says nothing,
     * and this process may have cached the tenant's registration from
     * before a walk dropped it.  It is added again after this reply, as
     * a flag would have it; replays are rare, so this costs little. */
    if (replay) {
        items[call->first].out_register = true;
        if (analysis_on(ctx))
            items[call->first].an_register = true;
    }
    return SP_OK;
}

/* One pipeline: tenant registrations, then one correlate call per tenant
 * (and one per Defender row).  only_alone: just the items marked alone,
 * one call each. */
static enum sp_err run_chunk(struct corr_ctx *ctx, struct corr_item *items,
                             size_t n, int64_t now_ms, bool *noscript,
                             bool only_alone)
{
    enum sp_err e = SP_OK, fatal = SP_OK;
    size_t extra = 0;
    char setkey[CORR_SETS][80];
    for (int s = 0; s < CORR_SETS; s++)
        corr_set_key(ctx->key_prefix, s, setkey[s], sizeof(setkey[s]));
    bool an = analysis_on(ctx);
    sp_arena_reset(&ctx->work);
    *noscript = false;
    for (size_t i = 0; i < n; i++) {
        struct corr_item *item = &items[i];
        if (only_alone && !item->alone)
            continue;
        for (int s = 0; s < CORR_SETS; s++) {
            /* Rows are stored, not correlated: no analysis job yet. */
            if (s == CORR_SET_ASM ? !item->row
                : s == CORR_SET_AN ? !an || item->row : false)
                continue;
            /* Marked at once so a chunk registers a tenant only once; a
             * failed chunk forgets them all (below). */
            if (tenant_cached(ctx, setkey[s], item->tenant, true))
                continue;
            const char *argv[] = {"SADD", setkey[s], item->tenant};
            size_t lens[] = {4, strlen(setkey[s]), strlen(item->tenant)};
            if ((e = sp_redis_append(ctx->redis, 3, argv, lens))) {
                memset(ctx->tenant_cache, 0, sizeof(ctx->tenant_cache));
                return e;
            }
            extra++;
        }
    }
    /* The token tells this pipeline's calls apart from any other's (see
     * "stop" in the script); none when each alert runs alone. */
    char token[40] = "";
    if (!only_alone)
        snprintf(token, sizeof(token), "%016llx.%llu",
                 (unsigned long long)ctx->token_id,
                 (unsigned long long)++ctx->calls_seq);
    struct chunk ck = {
        .items = items,
        .n = n,
        .argcs = sp_arena_alloc(&ctx->work, (n + 1) * sizeof(*ck.argcs)),
        .argvs = sp_arena_alloc(&ctx->work, (n + 1) * sizeof(*ck.argvs)),
        .lensv = sp_arena_alloc(&ctx->work, (n + 1) * sizeof(*ck.lensv)),
        .ph = sp_arena_alloc(&ctx->work, (n + 1) * sizeof(*ck.ph)),
        .taken = sp_arena_calloc(&ctx->work, (n + 1) * sizeof(*ck.taken)),
        .call_max = only_alone ? 1 : CORR_CALL_MAX,
        .token = token,
        .now_ms = now_ms,
    };
    struct corr_call *calls = sp_arena_alloc(&ctx->work, (n + 1) * sizeof(*calls));
    size_t n_calls = 0;
    if (!ck.argcs || !ck.argvs || !ck.lensv || !ck.ph || !ck.taken || !calls)
        fatal = SP_ERR_NOMEM;
    for (size_t i = 0; i < n && !fatal; i++) {
        struct corr_item *item = &items[i];
        if (only_alone && !item->alone) {
            ck.taken[i] = true;
            continue;
        }
        ck.ph[i] = corr_hash(CORR_HASH_INIT, item->prefix, strlen(item->prefix));
        ck.argcs[i] = item->row
            ? corr_asm_args(ctx, item, now_ms, &ck.argvs[i], &ck.lensv[i])
            : corr_build_args(ctx, item, &ck.argvs[i], &ck.lensv[i]);
        /* One item too large is rejected alone: failing the chunk would
         * stop the stage on it, and again after every restart. */
        if (ck.argcs[i] == 0 && item->err) {
            ck.taken[i] = true;
            continue;
        }
        if (ck.argcs[i] < 5)
            fatal = SP_ERR_NOMEM;
    }
    for (size_t i = 0; i < n && !fatal; i++) {
        if (ck.taken[i])
            continue;
        struct corr_item *item = &items[i];
        const char **argv = ck.argvs[i];
        size_t *lens = ck.lensv[i];
        int argc = ck.argcs[i];
        struct corr_call *call = &calls[n_calls];
        if (item->row) {
            ck.taken[i] = true;
            *call = (struct corr_call){.first = i, .n = 1};
        } else if ((e = gather_call(ctx, &ck, i, call, &argv, &lens, &argc))) {
            fatal = e;
            break;
        }
        if ((e = sp_redis_append_evalsha(ctx->redis,
                                         item->row ? &ctx->s_asm_add
                                                   : &ctx->s_correlate,
                                         1, argc, argv, lens)))
            return e;
        n_calls++;
    }
    /* The last batch's snapshots were read first: written and published
     * now, while Redis runs the scripts just sent. */
    if ((e = corr_owed_take(ctx)))
        return e;
    /* Out of work memory: what was sent is drained, then the chunk fails. */
    int64_t t0 = sp_now_us();
    for (size_t i = 0; i < extra; i++) {
        redisReply *rep;
        if ((e = sp_redis_read(ctx->redis, &rep)))
            return e;
        enum sp_err re = sp_redis_reply_err(rep);
        freeReplyObject(rep);
        if (re && !fatal)
            fatal = re == SP_ERR_CONFIG ? SP_ERR_RETRY : re;
    }
    for (size_t c = 0; c < n_calls; c++) {
        redisReply *rep;
        if ((e = sp_redis_read(ctx->redis, &rep)))
            return e;
        enum sp_err re = take_call(ctx, items, &calls[c], rep, noscript);
        freeReplyObject(rep);
        if (re && !fatal)
            fatal = re;
    }
    sp_hist_observe_since_us(ctx->h_redis, t0);
    if (fatal)
        memset(ctx->tenant_cache, 0, sizeof(ctx->tenant_cache));
    return fatal;
}

/*
 * Correlation state must not be evicted: every key has a TTL, so with a
 * maxmemory any policy but noeviction (volatile-* included, the default
 * of some managed services) may drop part of an incident under memory
 * pressure and split what belongs together.  With noeviction a full
 * Redis refuses the scripts and the stage waits, losing nothing, so how
 * full it is matters too: the memory gauges, and a warning past 90%.
 * Checked on every new connection and every 30 s, on every master, with
 * INFO (allowed where CONFIG often is not); -1 on a gauge when it cannot
 * be told.
 */
#define CORR_MEM_CHECK_MS 30000
#define CORR_MEM_HIGH 0.9
#define CORR_MEM_LOW 0.8

static void check_memory(struct corr_ctx *ctx, bool connect)
{
    char detail[300];
    struct sp_redis_mem mem;
    int v = sp_redis_memory(ctx->redis, &mem, detail, sizeof(detail));
    sp_gauge_set(ctx->g_redis_used, (double)mem.used);
    sp_gauge_set(ctx->g_redis_max, (double)mem.max);
    if (mem.max > 0 && mem.used >= 0) {
        /* Warned once on the way up, told once on the way down. */
        double use = (double)mem.used / (double)mem.max;
        if (!ctx->mem_high && use >= CORR_MEM_HIGH) {
            ctx->mem_high = true;
            sp_log_warn(ctx->st->log, "Redis is %.0f%% full (%lld of %lld "
                        "bytes): when it is full the stage pauses until there "
                        "is room; raise maxmemory or shorten "
                        "correlate.retention", use * 100, mem.used, mem.max);
        } else if (ctx->mem_high && use < CORR_MEM_LOW) {
            ctx->mem_high = false;
            sp_log_info(ctx->st->log, "Redis is %.0f%% full again",
                        use * 100);
        }
    }
    /* A check that cannot tell (a command refused between batches) keeps
     * the last answer; a new connection always reports. */
    if (!connect && (v < 0 || v == ctx->may_evict))
        return;
    ctx->may_evict = v;
    sp_gauge_set(ctx->g_redis_may_evict, v);
    if (v > 0)
        sp_log_warn(ctx->st->log, "Redis may evict correlation state (%s): "
                    "incidents could lose alerts or split; set "
                    "maxmemory-policy noeviction (a full Redis then pauses "
                    "the stage, losing nothing)", detail);
    else if (v < 0)
        sp_log_warn(ctx->st->log, "cannot tell whether Redis may evict "
                    "correlation state (%s): make sure maxmemory-policy is "
                    "noeviction", detail);
}

/* A new connection may be a new (empty) server: tenants are registered
 * again, and its memory settings checked (with no reply pending, so
 * before anything is appended). */
static void note_connection(struct corr_ctx *ctx)
{
    struct sp_redis_stats rs;
    sp_redis_stats(ctx->redis, &rs);
    if (rs.connects == ctx->connects_seen)
        return;
    memset(ctx->tenant_cache, 0, sizeof(ctx->tenant_cache));
    ctx->connects_seen = rs.connects;
    check_memory(ctx, true);
    ctx->next_mem_ms = sp_now_ms() + CORR_MEM_CHECK_MS;
}

enum sp_err corr_run(struct corr_ctx *ctx, struct corr_item *items, size_t n)
{
    note_connection(ctx);
    int64_t now_ms = sp_wall_us() / 1000;
    for (size_t i = 0; i < n; i++) {
        items[i].alone = false;
        items[i].asm_register = false;
        items[i].out_register = false;
        items[i].an_register = false;
        items[i].changed = false;
    }
    for (size_t start = 0; start < n; start += ctx->pipeline_max) {
        size_t len = SP_MIN(ctx->pipeline_max, n - start);
        bool alone = false;             /* the pass for items run alone */
        for (int attempt = 0;; attempt++) {
            for (size_t i = start; i < start + len; i++) {
                if (alone && !items[i].alone)
                    continue;
                items[i].done = false;
                items[i].err = SP_OK;
                items[i].reason = NULL;
            }
            bool noscript;
            enum sp_err e = run_chunk(ctx, items + start, len, now_ms,
                                      &noscript, alone);
            if (e)
                return e;
            if (noscript) {
                /* The server lost our scripts (SCRIPT FLUSH, failover):
                 * load them and run the chunk again; replays are
                 * duplicates. */
                sp_log_warn(ctx->st->log, "NOSCRIPT from Redis: loading "
                            "the scripts again");
                if (attempt >= 2)
                    return SP_ERR_RETRY;
                if ((e = sp_redis_load_scripts(ctx->redis)))
                    return e == SP_ERR_CONFIG ? SP_ERR_RETRY : e;
                continue;
            }
            if (alone)
                break;
            for (size_t i = start; i < start + len && !alone; i++)
                alone = items[i].alone;
            if (!alone)
                break;
            attempt = -1;
        }
        for (size_t i = start; i < start + len; i++)
            items[i].alone = false;
    }
    return corr_tenants_register(ctx, items, n);
}

static void count_round_trips(struct corr_ctx *ctx, uint64_t before)
{
    struct sp_redis_stats rs;
    sp_redis_stats(ctx->redis, &rs);
    sp_counter_add(ctx->c_round_trips, rs.round_trips - before);
}

/* ---- process ------------------------------------------------------------- */

static enum sp_err items_reserve(struct corr_ctx *ctx, size_t n)
{
    if (n <= ctx->cap_items)
        return SP_OK;
    size_t cap = SP_MAX(n, ctx->cap_items * 2);
    struct corr_item *it = realloc(ctx->items, cap * sizeof(*it));
    if (!it)
        return SP_ERR_NOMEM;
    ctx->items = it;
    ctx->cap_items = cap;
    return SP_OK;
}

/* Applies the results to the batch: incident id/version on alerts,
 * Defender rows out of the alert list (they live in Redis until their
 * assembly is emitted), failures to the DLQ. */
static void commit(struct sp_stage *st, struct sp_batch *batch)
{
    struct corr_ctx *ctx = st->ctx;
    size_t k = 0;
    for (size_t m = 0; m < batch->n; m++) {
        struct sp_msg *msg = &batch->msgs[m];
        if (msg->dropped)
            continue;
        size_t out = 0;
        for (size_t j = 0; j < msg->n_alerts; j++, k++) {
            struct sp_alert *alert = msg->alerts[j];
            struct corr_item *item = &ctx->items[k];
            if (item->err) {
                sp_counter_inc(ctx->c_result[CORR_R_REJECTED]);
                const char *bytes = alert->raw ? alert->raw : msg->payload;
                size_t len = alert->raw ? alert->raw_len : msg->len;
                sp_msg_reject(msg, st->name,
                              item->reason ? item->reason : "correlate_failed",
                              item->errmsg, bytes, len);
                continue;
            }
            if (item->row)
                continue;
            alert->incident_id = sp_arena_strdup(&msg->arena, item->inc);
            alert->incident_version = item->version;
            alert->incident_changed = item->changed;
            msg->alerts[out++] = alert;
        }
        msg->n_alerts = out;
    }
}

static enum sp_err correlate_process(struct sp_stage *st,
                                     struct sp_batch *batch)
{
    struct corr_ctx *ctx = st->ctx;
    size_t n = 0;
    for (size_t m = 0; m < batch->n; m++)
        if (!batch->msgs[m].dropped)
            n += batch->msgs[m].n_alerts;
    if (n == 0)
        return SP_OK;               /* only rejects: nothing waits for Redis */
    enum sp_err e = sp_redis_ensure(ctx->redis, sp_now_ms());
    sp_gauge_set(ctx->g_redis_up, e == SP_OK ? 1 : 0);
    if (e)
        return e == SP_ERR_NOMEM ? e : SP_ERR_RETRY;
    if ((e = items_reserve(ctx, n)))
        return e;
    size_t k = 0;
    for (size_t m = 0; m < batch->n; m++) {
        struct sp_msg *msg = &batch->msgs[m];
        if (msg->dropped)
            continue;
        for (size_t j = 0; j < msg->n_alerts; j++) {
            struct corr_item *item = &ctx->items[k++];
            memset(item, 0, sizeof(*item));
            item->msg = msg;
            item->alert = msg->alerts[j];
            item->arena = &msg->arena;
            item->tenant = corr_tenant(ctx, item->alert);
            item->row = item->alert->part != SP_PART_WHOLE;
            corr_prefix(ctx->key_prefix, item->tenant, item->prefix,
                        sizeof(item->prefix));
        }
    }
    struct sp_redis_stats rs;
    sp_redis_stats(ctx->redis, &rs);
    /* Snapshots owed by the last batch: read ahead of this batch's calls
     * (so they see what that batch left), or, when they do not fit in the
     * pipeline, published first. */
    note_connection(ctx);
    if (ctx->n_owed && !corr_owed_send(ctx))
        e = corr_owed_publish(ctx);
    ctx->n_changed = 0;
    if (e == SP_OK)
        e = corr_run(ctx, ctx->items, n);
    if (ctx->owed_sent) {
        /* corr_run failed before reading them: the replies are owed on
         * the connection, which cannot be used any more. */
        sp_redis_disconnect(ctx->redis, "a pipeline was abandoned");
        ctx->owed_sent = 0;
    }
    struct corr_out *out = NULL;
    if (e == SP_OK && ctx->defer) {
        e = corr_owed_add(ctx);
    } else if (e == SP_OK) {
        out = corr_out_new(ctx);
        e = out ? corr_out_snapshots(ctx, out) : SP_ERR_NOMEM;
    }
    count_round_trips(ctx, rs.round_trips);
    if (e) {
        if (out)
            corr_out_abandon(ctx, out);
        if (e == SP_ERR_NOMEM)
            return e;
        corr_redis_failed(ctx, e, "correlating a batch");
        return SP_ERR_RETRY;
    }
    if (out)
        corr_out_seal(ctx, out);
    commit(st, batch);
    return SP_OK;
}

/* ---- timers, readiness ----------------------------------------------------- */

static enum sp_err correlate_tick(struct sp_stage *st, int64_t now_ms)
{
    struct corr_ctx *ctx = st->ctx;
    if (sp_redis_ensure(ctx->redis, now_ms) != SP_OK) {
        sp_gauge_set(ctx->g_redis_up, 0);
        return SP_OK;
    }
    sp_gauge_set(ctx->g_redis_up, 1);
    struct sp_redis_stats rs;
    sp_redis_stats(ctx->redis, &rs);
    int64_t wall = sp_wall_us() / 1000;
    /* No batch took the owed snapshots: the stream paused.  Only a lost
     * connection fails this (a refused read is left to the outbox), and
     * then the rest has to wait too. */
    enum sp_err e = SP_OK;
    if (ctx->n_owed && now_ms - ctx->owed_ms >= CORR_OWED_WAIT_MS)
        e = corr_owed_publish(ctx);
    if (e == SP_OK)
        e = corr_out_flush_acks(ctx);
    if (e == SP_OK && now_ms >= ctx->next_asm_ms) {
        ctx->next_asm_ms = now_ms + ctx->poll_ms;
        e = corr_asm_tick(ctx, wall);
    }
    if (e == SP_OK && ctx->next_mem_ms && now_ms >= ctx->next_mem_ms) {
        ctx->next_mem_ms = now_ms + CORR_MEM_CHECK_MS;
        check_memory(ctx, false);
    }
    if (e == SP_OK && now_ms >= ctx->next_outbox_ms) {
        ctx->next_outbox_ms = now_ms + ctx->outbox_interval_ms;
        e = corr_out_recover(ctx, wall);
    }
    count_round_trips(ctx, rs.round_trips);
    if (e && e != SP_ERR_NOMEM)
        corr_redis_failed(ctx, e, "timer work");
    return SP_OK;
}

/* A Redis Cluster node that redirects keeps the stage from working (the
 * batch is retried, nothing is rejected): not ready for 30 s after the
 * last redirect. */
#define CORR_REDIRECT_NOT_READY_MS 30000

static bool correlate_ready(struct sp_stage *st, char *reason, size_t n)
{
    struct corr_ctx *ctx = st->ctx;
    if (!sp_redis_is_up(ctx->redis)) {
        sp_redis_describe(ctx->redis, reason, n);
        return false;
    }
    struct sp_redis_stats rs;
    sp_redis_stats(ctx->redis, &rs);
    int64_t now = sp_now_ms();
    if (rs.redirects != ctx->redirects_seen) {
        ctx->redirects_seen = rs.redirects;
        ctx->redirect_ms = now;
    }
    if (ctx->redirect_ms && now - ctx->redirect_ms < CORR_REDIRECT_NOT_READY_MS) {
        snprintf(reason, n, "Redis redirects our commands (MOVED) but did "
                 "not answer CLUSTER SLOTS: allow that command to the ACL "
                 "user, or use a cluster node or a cluster-aware proxy");
        return false;
    }
    return true;
}

static enum sp_err correlate_flush(struct sp_stage *st, int timeout_ms)
{
    struct corr_ctx *ctx = st->ctx;
    SP_UNUSED(timeout_ms);
    if (sp_redis_ensure(ctx->redis, sp_now_ms()) != SP_OK)
        return SP_ERR_RETRY;
    enum sp_err e = corr_owed_publish(ctx);
    enum sp_err ae = corr_out_flush_acks(ctx);
    return e ? e : ae;
}

/* ---- life cycle ------------------------------------------------------------ */

static void script_init(struct sp_redis_script *s, const char *name,
                        const char *src)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->src = src;
}

static enum sp_err correlate_init(struct sp_stage *st, struct sp_error *err)
{
    struct corr_ctx *ctx = st->ctx;
    ctx->st = st;
    if (getrandom(&ctx->token_id, sizeof(ctx->token_id), GRND_NONBLOCK) !=
        (ssize_t)sizeof(ctx->token_id))
        ctx->token_id = (uint64_t)sp_wall_us() ^ ((uint64_t)getpid() << 32) ^
                        (uint64_t)(uintptr_t)ctx;
    sp_arena_init(&ctx->work, (size_t)512 << 20);
    enum sp_err e = corr_config_load(ctx, st->env->cfg, err);
    if (e)
        return e;
    sp_buf_init(&ctx->json, SP_MAX(ctx->snapshot_max, (size_t)4 << 20));
    int64_t vcmax = sp_config_int(st->env->cfg, "correlate.snapshot_cache");
    if (vcmax > 0 && !(ctx->vcache = corr_vcache_new((size_t)vcmax)))
        return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
    metrics_init(ctx, st);
    ctx->acks = corr_acks_new();
    if (!ctx->acks)
        return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
    snprintf(ctx->scan_cursor, sizeof(ctx->scan_cursor), "0");
    snprintf(ctx->asm_cursor, sizeof(ctx->asm_cursor), "0");

    struct sp_redis_opts o;
    sp_redis_opts_from_config(st->env->cfg, &o);
    char comp[80];
    snprintf(comp, sizeof(comp), "redis:%s", st->name);
    o.log_comp = comp;
    ctx->redis = sp_redis_new(&o);
    if (!ctx->redis)
        return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
    script_init(&ctx->s_correlate, "correlate", corr_lua_correlate);
    script_init(&ctx->s_ack, "ack", corr_lua_ack);
    script_init(&ctx->s_sweep, "sweep", corr_lua_sweep);
    script_init(&ctx->s_status, "status", corr_lua_status);
    script_init(&ctx->s_asm_add, "asm_add", corr_lua_asm_add);
    script_init(&ctx->s_asm_take, "asm_take", corr_lua_asm_take);
    script_init(&ctx->s_asm_done, "asm_done", corr_lua_asm_done);
    struct sp_redis_script *all[] = {
        &ctx->s_correlate, &ctx->s_ack, &ctx->s_status, &ctx->s_sweep,
        &ctx->s_asm_add, &ctx->s_asm_take, &ctx->s_asm_done,
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(all); i++)
        if ((e = sp_redis_add_script(ctx->redis, all[i])))
            return sp_error_set(err, e, "redis: cannot register scripts");

    /* Redis may come up after us: only refused credentials (or a bad db)
     * are fatal here; anything else leaves the stage not ready. */
    struct sp_error cerr = {0};
    e = sp_redis_connect(ctx->redis, &cerr);
    sp_gauge_set(ctx->g_redis_up, e == SP_OK ? 1 : 0);
    if (e == SP_ERR_CONFIG)
        return sp_error_set(err, e, "%s", cerr.msg);
    if (e)
        sp_log_warn(st->log, "%s; not ready until it answers", cerr.msg);
    return SP_OK;
}

static void correlate_close(struct sp_stage *st)
{
    struct corr_ctx *ctx = st->ctx;
    if (!ctx)
        return;
    if (ctx->redis && sp_redis_is_up(ctx->redis))
        corr_out_flush_acks(ctx);
    corr_acks_release(ctx->acks);
    ctx->acks = NULL;
    sp_redis_free(ctx->redis);
    ctx->redis = NULL;
    corr_config_free(ctx);
    sp_arena_fini(&ctx->work);
    sp_buf_fini(&ctx->json);
    corr_vcache_free(ctx->vcache);
    ctx->vcache = NULL;
    free(ctx->items);
    free(ctx->changed);
    free(ctx->owed);
    ctx->items = NULL;
    ctx->changed = NULL;
    ctx->owed = NULL;
}

const struct sp_stage_type sp_stage_correlate = {
    .name = "correlate",
    .desc = "Deduplicate alerts and group them into incidents in Redis",
    .keys = correlate_keys,
    .n_keys = SP_ARRAY_SIZE(correlate_keys),
    .ctx_size = sizeof(struct corr_ctx),
    .init = correlate_init,
    .process = correlate_process,
    .tick = correlate_tick,
    .flush = correlate_flush,
    .close = correlate_close,
    .ready = correlate_ready,
};
