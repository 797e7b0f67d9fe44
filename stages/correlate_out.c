/*
 * correlate_out.c - getting incident snapshots (and assembled Defender
 * alerts) out, exactly as often as needed:
 *
 *   change in Lua ──► outbox entry (same script, atomic)
 *        │
 *        ▼ snapshot read (one pipelined round) ──► detached batch ──► sink
 *                                                   │ all acknowledged
 *   outbox entry removed ◄── ack script ◄── queued ack ◄─ on_done
 *
 * Snapshots ride in detached batches, so an input batch's offsets never
 * wait for them; the outbox is what makes that safe.  An entry outlives a
 * crash, a refused output or a lost ack, and corr_out_recover()
 * republishes entries older than the grace period (any instance may:
 * consumers keep the highest version per incident id, so duplicates are
 * harmless).  The ack script removes an entry only if the incident did not
 * change again after the published version.
 *
 * The ack queue (struct corr_acks) is shared by the stage and its batches
 * in flight: on_done may run after the stage closed, and then only drops
 * its references.
 *
 * Engine thread.
 */
#include "correlate_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct corr_out {
    struct corr_acks *acks;          /* shared queue (one reference) */
    struct sp_batch *batch;
    struct corr_ack *pend;           /* acks this batch earns */
    size_t n, cap;
    size_t produced;
    size_t landed;                   /* where out_landed looks first */
    const char *topic;               /* the incidents topic (env's) */
    bool abandoned;
};

/* ---- the ack queue --------------------------------------------------------- */

struct corr_acks *corr_acks_new(void)
{
    struct corr_acks *acks = calloc(1, sizeof(*acks));
    if (acks)
        acks->refs = 1;
    return acks;
}

static void ack_free(struct corr_ack *a)
{
    free(a->prefix);
    free(a->id);
}

static void acks_unref(struct corr_acks *acks)
{
    if (--acks->refs > 0)
        return;
    for (size_t i = 0; i < acks->n; i++)
        ack_free(&acks->items[i]);
    free(acks->items);
    free(acks);
}

void corr_acks_release(struct corr_acks *acks)
{
    if (!acks)
        return;
    acks->dead = true;              /* the stage's reference is the first */
    acks_unref(acks);
}

static enum sp_err ack_push(struct corr_ack **items, size_t *n, size_t *cap,
                            char kind, const char *prefix, const char *id,
                            int64_t num, const char *mark)
{
    if (*n >= CORR_ACKS_MAX)
        return SP_ERR_LIMIT;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        struct corr_ack *a = realloc(*items, c * sizeof(*a));
        if (!a)
            return SP_ERR_NOMEM;
        *items = a;
        *cap = c;
    }
    struct corr_ack *a = &(*items)[*n];
    a->kind = kind;
    a->prefix = strdup(prefix);
    a->id = strdup(id);
    a->num = num;
    a->part = -1;
    a->off = -1;
    snprintf(a->mark, sizeof(a->mark), "%s", mark ? mark : "");
    if (!a->prefix || !a->id) {
        ack_free(a);
        return SP_ERR_NOMEM;
    }
    (*n)++;
    return SP_OK;
}

/* ---- detached batches ----------------------------------------------------- */

static void out_free(struct corr_out *out)
{
    for (size_t i = 0; i < out->n; i++)
        ack_free(&out->pend[i]);
    free(out->pend);
    acks_unref(out->acks);
    free(out);
}

static void out_done(struct sp_batch *batch, void *ud)
{
    struct corr_out *out = ud;
    struct corr_acks *acks = out->acks;
    /* All delivered: every ack is earned.  Otherwise only the snapshots
     * known to have landed (the rest stay in the outbox): their ack also
     * says where they landed, which an older version landing after them
     * needs to be noticed. */
    bool all = !out->abandoned && batch->failed == 0;
    if (!acks->dead) {
        /* Move the earned acks to the stage's queue; the next tick sends
         * them.  A full queue drops them: recovery republishes. */
        for (size_t i = 0; i < out->n; i++) {
            if (!all && (out->pend[i].kind != 'o' || out->pend[i].off < 0))
                continue;
            if (acks->n >= CORR_ACKS_MAX)
                break;
            if (acks->n == acks->cap) {
                size_t c = acks->cap ? acks->cap * 2 : 64;
                struct corr_ack *a = realloc(acks->items, c * sizeof(*a));
                if (!a)
                    break;
                acks->items = a;
                acks->cap = c;
            }
            acks->items[acks->n++] = out->pend[i];
            out->pend[i].prefix = out->pend[i].id = NULL;
        }
    }
    out_free(out);
}

/*
 * Where a snapshot landed goes with its ack: the ack script keeps, per
 * incident, the offset and version of the last snapshot on the partition,
 * and queues the incident again when that one is older than a version
 * already published (two instances' snapshots landing out of order), so
 * that the topic's last record of every incident is its latest version.
 * Outputs land mostly in the order they were produced: the search starts
 * where the last one was found.
 */
static void out_landed(struct sp_batch *batch, void *ud, const char *topic,
                       const void *key, size_t klen, int32_t partition,
                       int64_t offset)
{
    struct corr_out *out = ud;
    SP_UNUSED(batch);
    if (strcmp(topic, out->topic) != 0)
        return;
    for (size_t k = 0; k < out->n; k++) {
        size_t i = (out->landed + k) % out->n;
        struct corr_ack *a = &out->pend[i];
        if (a->kind == 'o' && a->off < 0 && strlen(a->id) == klen &&
            memcmp(a->id, key, klen) == 0) {
            a->part = partition;
            a->off = offset;
            out->landed = i + 1;
            return;
        }
    }
}

struct corr_out *corr_out_new(struct corr_ctx *ctx)
{
    struct corr_out *out = calloc(1, sizeof(*out));
    if (!out)
        return NULL;
    out->batch = sp_batch_new(0);
    if (!out->batch) {
        free(out);
        return NULL;
    }
    out->acks = ctx->acks;
    ctx->acks->refs++;
    out->batch->on_done = out_done;
    out->batch->on_landed = out_landed;
    out->batch->ud = out;
    out->topic = ctx->st->env->topic_incidents;
    return out;
}

size_t corr_out_seal(struct corr_ctx *ctx, struct corr_out *out)
{
    SP_UNUSED(ctx);
    size_t n = out->produced;
    if (n == 0) {
        sp_batch_free(out->batch);
        out_free(out);
        return 0;
    }
    sp_batch_seal(out->batch);      /* may run out_done right here */
    return n;
}

void corr_out_abandon(struct corr_ctx *ctx, struct corr_out *out)
{
    out->abandoned = true;
    corr_out_seal(ctx, out);
}

enum sp_err corr_out_expect_asm(struct corr_out *out, const char *prefix,
                                const char *alert_id, int64_t rev)
{
    return ack_push(&out->pend, &out->n, &out->cap, 'a', prefix, alert_id, rev,
                    NULL);
}

static enum sp_err produce(struct corr_ctx *ctx, struct corr_out *out,
                           const char *topic, const char *key,
                           const char *val, size_t vlen,
                           const struct sp_header *hdrs, size_t n_hdrs)
{
    struct sp_sink *sink = ctx->st->env->sink;
    enum sp_err e = sink->produce(sink, out->batch, topic, key, strlen(key),
                                  val, vlen, hdrs, n_hdrs);
    if (e) {
        static struct sp_log_rl rl;
        sp_counter_inc(ctx->c_publish_errors);
        sp_log_warn_rl(&rl, 5000, ctx->st->log, "cannot produce %s to %s: %s "
                       "(the outbox publishes it again)", key, topic,
                       sp_strerror(e));
        return e;
    }
    out->produced++;
    return SP_OK;
}

/* ---- snapshots ------------------------------------------------------------- */

/* Appends the read of c's snapshot, marked as a publish in flight (the
 * mark kept in c for its ack; none when the outbox grace is 0). */
static enum sp_err snapshot_append(struct corr_ctx *ctx, struct corr_changed *c)
{
    int64_t ttl = corr_mark_ttl(ctx->outbox_grace_ms);
    c->mark[0] = '\0';
    if (ttl > 0)
        corr_mark_new(c->mark);
    return corr_snapshot_append(ctx->redis, c->prefix, c->id, ctx->snapshot_why,
                                ttl > 0 ? c->mark : NULL, ttl);
}

static enum sp_err publish_snapshot(struct corr_ctx *ctx, struct corr_out *out,
                                    const struct corr_changed *c,
                                    const redisReply *rep)
{
    int64_t version = 0;
    sp_buf_reset(&ctx->json);
    enum sp_err e = corr_incident_write(rep, c->id, &ctx->json,
                                        ctx->snapshot_max, &version,
                                        ctx->vcache);
    if (e == SP_ERR_NOTFOUND) {
        /* Expired since: nothing to publish, and nothing to wait for
         * before its outbox entry goes (the ack removes it, the incident
         * being gone), or recovery would look for it at every interval. */
        e = ack_push(&ctx->acks->items, &ctx->acks->n, &ctx->acks->cap, 'o',
                     c->prefix, c->id, 0, c->mark);
        return e == SP_ERR_NOMEM ? e : SP_OK;
    }
    if (e) {
        /* Size no longer fails a snapshot (it is cut to fit); what is
         * left (out of memory, a reply not of the read's shape) stays in
         * the outbox, and recovery logs it again at every try. */
        static struct sp_log_rl rl;
        sp_counter_inc(ctx->c_publish_errors);
        sp_log_warn_rl(&rl, 5000, ctx->st->log, "incident %s: cannot write "
                       "its snapshot: %s (the outbox publishes it again)",
                       c->id, sp_strerror(e));
        return SP_OK;
    }
    char ver[24];
    snprintf(ver, sizeof(ver), "%lld", (long long)version);
    struct sp_header hdrs[] = {
        {"version", ver, strlen(ver)},
        {"socpilot-schema", "incident/1", 10},
        {"socpilot-tenant", c->tenant, strlen(c->tenant)},
    };
    /* The ack it earns first: a sink may acknowledge (and say where it
     * landed) before produce() returns. */
    if ((e = ack_push(&out->pend, &out->n, &out->cap, 'o', c->prefix, c->id,
                      version, c->mark)))
        return e;
    if (produce(ctx, out, ctx->st->env->topic_incidents, c->id,
                ctx->json.data, ctx->json.len, hdrs, SP_ARRAY_SIZE(hdrs))) {
        /* Stays in the outbox.  Never handed over, it cannot land: its
         * mark is taken back (version 0 removes nothing the topic still
         * needs), not left to hold up the next change's removal. */
        ack_free(&out->pend[--out->n]);
        e = ack_push(&ctx->acks->items, &ctx->acks->n, &ctx->acks->cap, 'o',
                     c->prefix, c->id, 0, c->mark);
        return e == SP_ERR_NOMEM ? e : SP_OK;
    }
    sp_counter_inc(ctx->c_published);
    return SP_OK;
}

/* The memo's figures since they were last counted, into the metrics. */
static void memo_count(struct corr_ctx *ctx)
{
    if (!ctx->vcache)
        return;
    uint64_t hits, misses, drops;
    size_t bytes;
    corr_vcache_stats(ctx->vcache, &hits, &misses, &drops, &bytes);
    sp_counter_add(ctx->c_memo_hits, hits - ctx->memo_hits);
    sp_counter_add(ctx->c_memo_misses, misses - ctx->memo_misses);
    sp_counter_add(ctx->c_memo_drops, drops - ctx->memo_drops);
    sp_gauge_set(ctx->g_memo_bytes, (double)bytes);
    ctx->memo_hits = hits;
    ctx->memo_misses = misses;
    ctx->memo_drops = drops;
}

enum sp_err corr_out_snapshots(struct corr_ctx *ctx, struct corr_out *out)
{
    size_t chunk = SP_MAX(ctx->pipeline_max / CORR_SNAPSHOT_REPLIES, (size_t)1);
    redisReply **reps = calloc(SP_MIN(chunk, SP_MAX(ctx->n_changed, 1)),
                               sizeof(*reps));
    if (!reps)
        return SP_ERR_NOMEM;
    enum sp_err e = SP_OK;
    for (size_t start = 0; start < ctx->n_changed && !e; start += chunk) {
        size_t len = SP_MIN(chunk, ctx->n_changed - start);
        for (size_t i = 0; i < len && !e; i++)
            e = snapshot_append(ctx, &ctx->changed[start + i]);
        /* Every reply first (the connection must end up idle, also when
         * one snapshot failed: owed replies would be read as the answers
         * to later commands), then publish. */
        bool gone = false;
        for (size_t i = 0; i < len && !gone; i++) {
            enum sp_err re = corr_snapshot_read(
                ctx->redis, ctx->changed[start + i].mark[0] != '\0', &reps[i]);
            gone = re && !sp_redis_is_up(ctx->redis);
            if (re && !e)           /* LOADING, MOVED, OOM...: try again */
                e = re == SP_ERR_NOMEM ? re : SP_ERR_RETRY;
        }
        for (size_t i = 0; i < len && !e; i++)
            e = publish_snapshot(ctx, out, &ctx->changed[start + i], reps[i]);
        for (size_t i = 0; i < len; i++) {
            freeReplyObject(reps[i]);
            reps[i] = NULL;
        }
    }
    free(reps);
    memo_count(ctx);
    return e;
}

/* ---- owed snapshots --------------------------------------------------------- */

/*
 * With correlate.snapshot_defer the snapshots of a batch are not read at
 * once: their reads go out at the head of the next batch's pipeline, and
 * the client writes and publishes them while Redis runs that batch's
 * scripts (a batch's time was Redis's plus the client's; now it is close
 * to the larger of the two).  The reads still come before any later
 * change, so every snapshot is the one the synchronous path would
 * publish, one batch later.  When no batch follows, tick() publishes them
 * after CORR_OWED_WAIT_MS; anything else that publishes snapshots does it
 * first, so versions go out in order.  A read lost with the connection
 * stays owed; one Redis refuses is left to the outbox.
 */

enum sp_err corr_owed_add(struct corr_ctx *ctx)
{
    if (ctx->n_owed == 0) {
        /* The common case: the batch's list becomes the owed one. */
        struct corr_changed *c = ctx->owed;
        size_t cap = ctx->cap_owed;
        ctx->owed = ctx->changed;
        ctx->cap_owed = ctx->cap_changed;
        ctx->n_owed = ctx->n_changed;
        ctx->changed = c;
        ctx->cap_changed = cap;
        ctx->n_changed = 0;
        ctx->owed_ms = sp_now_ms();
        return SP_OK;
    }
    /* Still owed (defensive: a batch retried after a lost connection
     * takes them again before it gets here): add the new ones. */
    for (size_t i = 0; i < ctx->n_changed; i++) {
        const struct corr_changed *c = &ctx->changed[i];
        enum sp_err e = corr_list_add(&ctx->owed, &ctx->n_owed, &ctx->cap_owed,
                                      c->prefix, c->tenant, c->id);
        if (e)
            return e;
    }
    ctx->n_changed = 0;
    return SP_OK;
}

/* Appending failed half-way (out of memory, or the connection or the
 * slot map went): replies would be owed for reads no one reads, so the
 * connection starts over. */
static void owed_abandon(struct corr_ctx *ctx)
{
    if (sp_redis_is_up(ctx->redis))
        sp_redis_disconnect(ctx->redis, "appending snapshot reads failed");
}

bool corr_owed_send(struct corr_ctx *ctx)
{
    if (ctx->n_owed == 0 || ctx->owed_sent ||
        ctx->n_owed * CORR_SNAPSHOT_REPLIES > ctx->pipeline_max)
        return false;
    for (size_t i = 0; i < ctx->n_owed; i++)
        if (snapshot_append(ctx, &ctx->owed[i])) {
            owed_abandon(ctx);
            return false;
        }
    ctx->owed_sent = ctx->n_owed;
    return true;
}

enum sp_err corr_owed_take(struct corr_ctx *ctx)
{
    size_t n = ctx->owed_sent, kept = 0, i = 0;
    if (n == 0)
        return SP_OK;
    ctx->owed_sent = 0;
    struct corr_out *out = corr_out_new(ctx);
    enum sp_err e = SP_OK;
    /* Each reply as it comes: the rest are on their way meanwhile. */
    for (; i < n; i++) {
        redisReply *rep;
        enum sp_err re = corr_snapshot_read(ctx->redis,
                                            ctx->owed[i].mark[0] != '\0', &rep);
        if (re && !sp_redis_is_up(ctx->redis)) {
            e = re;                 /* the connection is gone */
            break;
        }
        if (re || !out) {
            /* Refused (LOADING, MOVED, an ACL...) or out of memory: left
             * to the outbox, which republishes it after the grace period;
             * keeping it owed could hold everything else up as long as
             * the refusal lasts. */
            static struct sp_log_rl rl;
            sp_counter_inc(ctx->c_publish_errors);
            sp_log_warn_rl(&rl, 5000, ctx->st->log, "incident %s: cannot "
                           "read its snapshot: %s (the outbox publishes it "
                           "again)", ctx->owed[i].id,
                           sp_strerror(out ? re : SP_ERR_NOMEM));
        } else {
            publish_snapshot(ctx, out, &ctx->owed[i], rep);
        }
        freeReplyObject(rep);
    }
    for (; i < n; i++)
        ctx->owed[kept++] = ctx->owed[i];
    /* Owed entries added after the reads were sent stay too. */
    memmove(ctx->owed + kept, ctx->owed + n,
            (ctx->n_owed - n) * sizeof(*ctx->owed));
    ctx->n_owed = kept + ctx->n_owed - n;
    if (out)
        corr_out_seal(ctx, out);
    memo_count(ctx);
    return e;
}

enum sp_err corr_owed_publish(struct corr_ctx *ctx)
{
    if (ctx->n_owed == 0)
        return SP_OK;
    if (ctx->owed_sent)
        return SP_ERR_STATE;
    size_t chunk = SP_MAX(ctx->pipeline_max / CORR_SNAPSHOT_REPLIES, (size_t)1);
    while (ctx->n_owed > 0) {
        /* One pipelined round per chunk of pipeline_max commands. */
        size_t len = SP_MIN(chunk, ctx->n_owed);
        for (size_t i = 0; i < len; i++) {
            enum sp_err e = snapshot_append(ctx, &ctx->owed[i]);
            if (e) {
                owed_abandon(ctx);
                return e;
            }
        }
        ctx->owed_sent = len;
        enum sp_err e = corr_owed_take(ctx);
        if (e)
            return e;               /* the rest stays owed */
    }
    return SP_OK;
}

enum sp_err corr_out_alert(struct corr_ctx *ctx, struct corr_out *out,
                           const struct sp_alert *alert)
{
    struct sp_jw w;
    sp_buf_reset(&ctx->json);
    sp_jw_init(&w, &ctx->json);
    sp_alert_write(alert, &w, true);
    if (!sp_jw_ok(&w)) {
        /* Too big with the original rows: publish without them. */
        sp_buf_reset(&ctx->json);
        ctx->json.overflow = false;
        sp_jw_init(&w, &ctx->json);
        sp_alert_write(alert, &w, false);
        if (!sp_jw_ok(&w))
            return SP_ERR_LIMIT;
    }
    const char *tenant = corr_tenant(ctx, alert);
    struct sp_header hdrs[] = {
        {"socpilot-format", alert->source, strlen(alert->source)},
        {"socpilot-schema", "alert/" SP_ALERT_SCHEMA_VERSION,
         sizeof("alert/" SP_ALERT_SCHEMA_VERSION) - 1},
        {"socpilot-tenant", tenant, strlen(tenant)},
    };
    enum sp_err e = produce(ctx, out, ctx->st->env->topic_alerts, alert->id,
                            ctx->json.data, ctx->json.len, hdrs,
                            SP_ARRAY_SIZE(hdrs));
    if (!e)
        sp_counter_inc(ctx->c_published_alerts);
    return e;
}

/* ---- acks ---------------------------------------------------------------- */

uint64_t corr_ack_late(const redisReply *rep)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[1]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->integer < 0)
        return 0;
    return (uint64_t)rep->element[1]->integer;
}

/* Outbox acks of one tenant go out as one `ack` call of up to this many
 * (incident, version, partition, offset, mark) records. */
#define ACKS_PER_CALL 256

enum sp_err corr_out_flush_acks(struct corr_ctx *ctx)
{
    struct corr_acks *acks = ctx->acks;
    if (!acks || acks->n == 0)
        return SP_OK;
    size_t n = SP_MIN(acks->n, ctx->pipeline_max);
    char wall[24], settle[24], grace[24];
    snprintf(wall, sizeof(wall), "%lld", (long long)(sp_wall_us() / 1000));
    snprintf(grace, sizeof(grace), "%lld", (long long)ctx->outbox_grace_ms);
    snprintf(settle, sizeof(settle), "%lld", (long long)ctx->settle_ms);
    /* argv of the largest ack call: 3 slots for EVALSHA, key, P, wall ms,
     * grace, records. */
    enum { ARGC_MAX = 7 + 5 * ACKS_PER_CALL };
    const char **argv = malloc(ARGC_MAX * sizeof(*argv));
    size_t *lens = malloc(ARGC_MAX * sizeof(*lens));
    char (*nums)[3][24] = malloc(ACKS_PER_CALL * sizeof(*nums));
    bool *sent = calloc(n, sizeof(*sent));
    char *kinds = malloc(n);        /* of each call appended */
    if (!argv || !lens || !nums || !sent || !kinds) {
        free(argv);
        free(lens);
        free(nums);
        free(sent);
        free(kinds);
        return SP_ERR_NOMEM;
    }
    enum sp_err e = SP_OK;
    size_t calls = 0;
    for (size_t i = 0; i < n && !e; i++) {
        if (sent[i])
            continue;
        sent[i] = true;
        struct corr_ack *a = &acks->items[i];
        char key[CORR_PREFIX_MAX + 16];
        snprintf(key, sizeof(key), "%s%s", a->prefix,
                 a->kind == 'o' ? "out" : "asmdue");
        if (a->kind == 'o') {
            int argc = 7;
            argv[3] = key;
            lens[3] = strlen(key);
            argv[4] = a->prefix;
            lens[4] = strlen(a->prefix);
            argv[5] = wall;
            lens[5] = strlen(wall);
            argv[6] = grace;
            lens[6] = strlen(grace);
            /* This tenant's acks among the n, in any order: an ack only
             * removes an incident that did not change after its version. */
            size_t k = 0;
            for (size_t j = i; j < n && k < ACKS_PER_CALL; j++) {
                const struct corr_ack *b = &acks->items[j];
                if ((j != i && sent[j]) || b->kind != 'o' ||
                    strcmp(b->prefix, a->prefix) != 0)
                    continue;
                sent[j] = true;
                snprintf(nums[k][0], sizeof(nums[k][0]), "%lld",
                         (long long)b->num);
                snprintf(nums[k][1], sizeof(nums[k][1]), "%ld",
                         (long)b->part);
                snprintf(nums[k][2], sizeof(nums[k][2]), "%lld",
                         (long long)b->off);
                argv[argc] = b->id;
                lens[argc++] = strlen(b->id);
                for (int f = 0; f < 3; f++) {
                    argv[argc] = nums[k][f];
                    lens[argc++] = strlen(nums[k][f]);
                }
                argv[argc] = b->mark;
                lens[argc++] = strlen(b->mark);
                k++;
            }
            e = sp_redis_append_evalsha(ctx->redis, &ctx->s_ack, 1, argc,
                                        argv, lens);
        } else {
            char num[24];
            snprintf(num, sizeof(num), "%lld", (long long)a->num);
            const char *av[] = {NULL, NULL, NULL, key, a->prefix, a->id,
                                num, wall, settle};
            size_t al[] = {0, 0, 0, strlen(key), strlen(a->prefix),
                           strlen(a->id), strlen(num), strlen(wall),
                           strlen(settle)};
            e = sp_redis_append_evalsha(ctx->redis, &ctx->s_asm_done, 1, 9,
                                        av, al);
        }
        if (!e)
            kinds[calls++] = a->kind;
    }
    free(argv);
    free(lens);
    free(nums);
    free(sent);
    bool noscript = false;
    enum sp_err bad = SP_OK;
    /* Replies of the calls appended, also when appending failed half-way. */
    for (size_t i = 0; i < calls; i++) {
        redisReply *rep;
        enum sp_err re2 = sp_redis_read(ctx->redis, &rep);
        if (re2) {
            free(kinds);
            return re2;             /* connection gone: the queue stays */
        }
        enum sp_err re = sp_redis_reply_err(rep);
        if (kinds[i] == 'o')
            sp_counter_add(ctx->c_out_of_order, corr_ack_late(rep));
        freeReplyObject(rep);
        if (re == SP_ERR_NOTFOUND)
            noscript = true;
        else if (re && !bad)
            bad = re;
    }
    free(kinds);
    if (e)
        return e;
    if (noscript)
        return sp_redis_load_scripts(ctx->redis);   /* sent again next time */
    if (bad && bad != SP_ERR_REMOTE)
        return bad;
    for (size_t i = 0; i < n; i++)
        ack_free(&acks->items[i]);
    memmove(acks->items, acks->items + n, (acks->n - n) * sizeof(*acks->items));
    acks->n -= n;
    return SP_OK;
}

/* ---- recovery -------------------------------------------------------------- */

/* What keeps a tenant in <prefix>:tenants: changes to republish (out), an
 * entity index to sweep (ix), incidents that may still change (seen: an
 * incident lives no longer than its tenant's seen; see correlate_lua.c). */
static const char *const tenant_keys[] = {"out", "ix", "seen"};

/*
 * One SSCAN step of <prefix>:tenants per interval (the cursor kept), each
 * tenant of it in one pipelined round: its outbox entries past the grace
 * period, a step of its index sweep, and whether it still has any of
 * tenant_keys.  Tenants with none leave the set (corr_tenants_forget), so
 * a tenant idle past the retention is not walked for ever; the next
 * change of one puts it back (the correlate script says so).
 */
enum sp_err corr_out_recover(struct corr_ctx *ctx, int64_t wall_ms)
{
    char setkey[80];
    corr_set_key(ctx->key_prefix, CORR_SET_OUT, setkey, sizeof(setkey));
    struct corr_tenant *tn = NULL;
    size_t nt = 0;
    enum sp_err e = corr_tenants_step(ctx->redis, ctx->key_prefix, setkey,
                                      tenant_keys, SP_ARRAY_SIZE(tenant_keys),
                                      ctx->scan_cursor,
                                      sizeof(ctx->scan_cursor), "100", 1000,
                                      &tn, &nt);
    bool *idle = e ? NULL : calloc(nt ? nt : 1, sizeof(*idle));
    if (!e && !idle)
        e = SP_ERR_NOMEM;
    if (e) {
        free(tn);
        return e;
    }
    char max[24], limit[24], now[24], ittl[24];
    snprintf(max, sizeof(max), "(%lld", (long long)(wall_ms - ctx->outbox_grace_ms));
    snprintf(now, sizeof(now), "%lld", (long long)wall_ms);
    snprintf(ittl, sizeof(ittl), "%lld", (long long)ctx->index_ttl_ms);
    snprintf(limit, sizeof(limit), "%zu", ctx->outbox_batch);
    size_t sent = 0;
    for (size_t i = 0; i < nt && !e; i++) {
        if (!tn[i].tenant[0])
            continue;
        const char *prefix = tn[i].prefix;
        char key[CORR_PREFIX_MAX + 8];
        snprintf(key, sizeof(key), "%sout", prefix);
        const char *zargv[] = {"ZRANGEBYSCORE", key, "-inf", max, "LIMIT",
                               "0", limit};
        size_t zlens[] = {13, strlen(key), 4, strlen(max), 5, 1,
                          strlen(limit)};
        e = sp_redis_append(ctx->redis, 7, zargv, zlens);
        /* The entity index sweep rides along: a few hundred fields per
         * tenant and interval. */
        char ix[CORR_PREFIX_MAX + 8];
        snprintf(ix, sizeof(ix), "%six", prefix);
        const char *sargv[] = {NULL, NULL, NULL, ix, now, ittl, "500"};
        size_t slens[] = {0, 0, 0, strlen(ix), strlen(now), strlen(ittl), 3};
        if (!e)
            e = sp_redis_append_evalsha(ctx->redis, &ctx->s_sweep, 1, 7,
                                        sargv, slens);
        /* After the sweep, which may have emptied the index. */
        char names[SP_ARRAY_SIZE(tenant_keys)][CORR_PREFIX_MAX + 8];
        const char *xargv[1 + SP_ARRAY_SIZE(tenant_keys)] = {"EXISTS"};
        size_t xlens[1 + SP_ARRAY_SIZE(tenant_keys)] = {6};
        for (size_t k = 0; k < SP_ARRAY_SIZE(tenant_keys); k++) {
            snprintf(names[k], sizeof(names[k]), "%s%s", prefix,
                     tenant_keys[k]);
            xargv[k + 1] = names[k];
            xlens[k + 1] = strlen(names[k]);
        }
        if (!e)
            e = sp_redis_append(ctx->redis, 1 + SP_ARRAY_SIZE(tenant_keys),
                                xargv, xlens);
        sent = i + 1;           /* replies owed up to here (three each) */
    }
    ctx->n_changed = 0;
    bool noscript = false;
    /* Every reply is read (owed replies would answer later commands). */
    for (size_t i = 0; i < sent; i++) {
        if (!tn[i].tenant[0])
            continue;
        redisReply *z, *sw, *x;
        enum sp_err rd;
        if ((rd = sp_redis_read(ctx->redis, &z))) {
            e = rd;                 /* the connection is gone */
            break;
        }
        if ((rd = sp_redis_read(ctx->redis, &sw))) {
            freeReplyObject(z);
            e = rd;
            break;
        }
        if ((rd = sp_redis_read(ctx->redis, &x))) {
            freeReplyObject(z);
            freeReplyObject(sw);
            e = rd;
            break;
        }
        if (sp_redis_reply_err(sw) == SP_ERR_NOTFOUND)
            noscript = true;
        freeReplyObject(sw);
        idle[i] = x->type == REDIS_REPLY_INTEGER && x->integer == 0;
        freeReplyObject(x);
        if (!e && z->type == REDIS_REPLY_ARRAY) {
            for (size_t j = 0; j < z->elements && !e; j++)
                if (z->element[j]->type == REDIS_REPLY_STRING &&
                    z->element[j]->len < 80)
                    e = corr_changed_add(ctx, tn[i].prefix, tn[i].tenant,
                                         z->element[j]->str);
        }
        freeReplyObject(z);
    }
    if (!e && noscript)
        e = sp_redis_load_scripts(ctx->redis);
    if (!e)
        e = corr_tenants_forget(ctx->redis, setkey, tenant_keys,
                                SP_ARRAY_SIZE(tenant_keys), tn, idle, nt);
    free(tn);
    free(idle);
    if (e || ctx->n_changed == 0)
        return e;
    /* Versions go out in order: what the last batch changed first. */
    if ((e = corr_owed_publish(ctx)))
        return e;
    struct corr_out *out = corr_out_new(ctx);
    if (!out)
        return SP_ERR_NOMEM;
    e = corr_out_snapshots(ctx, out);
    if (e) {
        corr_out_abandon(ctx, out);
        return e;
    }
    size_t n = corr_out_seal(ctx, out);
    sp_counter_add(ctx->c_recovered, n);
    if (n)
        sp_log_info(ctx->st->log, "republished %zu incident snapshot(s) "
                    "from the outbox", n);
    return SP_OK;
}
