/*
 * analyze.c - the analyze stage: schedules an analysis job for every
 * incident an alert changed, and runs due jobs from tick() through the
 * worker pool, republishing each incident with its `analysis` section.
 *
 * process() (hot path): one pipelined round of `schedule` scripts, one per
 * incident the batch changed (alert->incident_id, set by correlate; none
 * when correlate's script schedules or analyze.schedule is false), plus
 * an idempotent SADD of new tenants to the registry (always), and the
 * alerts' side sections; a schedule that found its tenant without jobs
 * costs one more round, the SADD of the tenant again (the claim may have
 * dropped it).  Nothing else: no snapshot, no LLM.
 *
 * tick() (every poll interval): apply acknowledged publishes (`done`),
 * store finished analyses (`store`: analysis + version bump) and publish
 * the new snapshots in detached batches, claim due jobs per tenant up to
 * analyze.concurrency in flight (the tenants of the registry found
 * without jobs leave it), read each claimed incident: unchanged
 * content (content hash == the last one published) is a cache hit and
 * costs no call; content whose analysis is stored but was not
 * acknowledged (a crash in between) is republished as it is; anything
 * else goes to a worker.  Leases of jobs at a worker or awaiting a
 * publish ack are renewed; a job whose step fails is dropped (released,
 * or left to its lease when Redis is away).
 *
 * Engine thread only; the workers live in analyze_worker.c.
 */
#include "analyze_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct sp_cfg_key analyze_keys[] = {
    {"analyze.quiet", SP_CFG_DURATION, "30s", 0, 86400000,
     "Debounce: an incident is analysed once it has not changed for this "
     "long (0 = no scheduling: analyses only on demand)", 0, NULL},
    {"analyze.max_delay", SP_CFG_DURATION, "5m", 1, 86400000,
     "Debounce cap: never later than this after the first pending change",
     0, NULL},
    {"analyze.lease", SP_CFG_DURATION, "2m", 100, 86400000,
     "A claimed job is this instance's for this long (renewed while it "
     "runs); another instance takes it over after expiry", 0, NULL},
    {"analyze.max_attempts", SP_CFG_INT, "5", 1, 1000,
     "Claims of a job without completion before it goes to the dead-letter "
     "list", 0, NULL},
    {"analyze.concurrency", SP_CFG_INT, "16", 1, 10000,
     "Jobs in flight per instance (claimed, not yet completed)", 0, NULL},
    {"analyze.workers", SP_CFG_INT, "1", 1, AN_MAX_WORKERS,
     "Worker threads running analyses (each with its own LLM client)", 0,
     NULL},
    {"analyze.poll", SP_CFG_DURATION, "500ms", 10, 600000,
     "How often due jobs are looked for", 0, NULL},
    {"analyze.llm_retry", SP_CFG_DURATION, "2m", 0, 86400000,
     "When the LLM was away (down, 5xx, timeouts, rate limit, budget, "
     "breaker open) the incident keeps the template section and is sent "
     "again after this long, doubling each time up to 1h (0 = the template "
     "stays until the incident changes)", 0, NULL},
    {"analyze.llm_retries", SP_CFG_INT, "5", 1, 100,
     "Retries of one incident content while the LLM is away, before its "
     "template section is final", 0, NULL},
    {"analyze.retry_delay", SP_CFG_DURATION, "10s", 0, 3600000,
     "Wait before a failed job (Redis, output refused) is claimed again",
     0, NULL},
    {"analyze.dead_letter_max", SP_CFG_INT, "1000", 1, 1000000,
     "Entries kept in each tenant's dead-letter list", 0, NULL},
    {"analyze.schedule", SP_CFG_BOOL, "true", 0, 0,
     "Schedule jobs from this stage's process() for the incidents each "
     "batch changed (false when the correlate script schedules them; "
     "tenants are registered for claiming either way)", 0, NULL},
};

/* AN_READ: claimed, being read (nothing outstanding yet); AN_WORKER: its
 * work is at a worker; AN_PUBLISH: its snapshot is published, the ack is
 * awaited.  Only the last two have their lease renewed. */
enum an_state { AN_READ, AN_WORKER, AN_PUBLISH };

/* A job this instance holds (claimed, not yet completed).  hash is the
 * content hash its publish records: the incident's, or AN_RETRY_MARK and
 * it for a template published while the LLM was away (analyze_jobs.c). */
struct an_job {
    char prefix[CORR_PREFIX_MAX];
    char id[AN_ID_MAX];
    char hash[AN_HASH_MAX];
    char anc[AN_HASH_MAX];          /* stored hash when it started (store
                                       checks nobody stored since) */
    bool llm_retry;                 /* claimed to try the LLM again */
    enum an_state state;
    int64_t claimed_ms;
    struct an_job *next;
};

/* A publish in flight; once acknowledged, queued on an_acks as it is (no
 * allocation in on_done, so an ack is never lost). */
struct an_pub {
    struct an_acks *acks;
    char *prefix, *id;
    char hash[AN_HASH_MAX];
    int64_t version;
    int32_t part;                   /* where it landed (off -1: unknown) */
    int64_t off;
    char mark[CORR_MARK_MAX];       /* of the read it was made from */
    const char *topic;              /* the incidents topic */
    bool failed, ok;
    struct an_pub *next;
};

/* Shared by the stage and its publishes in flight (on_done may run after
 * close: it then only drops its reference).  Acks queued, oldest first;
 * at most one per job in ctx->jobs, so bounded by analyze.concurrency. */
struct an_acks {
    int refs;
    bool dead;
    struct an_pub *head, *tail;
};

struct an_ctx {
    struct sp_stage *st;
    /* Config. */
    char key_prefix[64];
    char default_tenant[CORR_TENANT_MAX + 1];
    int64_t quiet_ms, max_delay_ms, lease_ms, poll_ms, retry_ms;
    int64_t llm_retry_ms, llm_retries;
    int64_t max_attempts, concurrency, dead_max, why_max;
    int64_t retention_s, grace_ms;
    size_t snapshot_max;
    bool schedule;
    struct sp_llm_opts lo;
    struct sp_analysis_opts ao;
    struct sp_analysis_prompts *prompts;
    char owner[AN_OWNER_MAX];
    char tenants_key[96];
    char scan_cursor[32];           /* claim's walk of tenants_key */

    struct sp_redis *redis;
    struct sp_redis_script s_schedule, s_claim, s_release, s_store, s_done,
        s_renew, s_landed;
    struct an_pool *pool;
    struct an_acks *acks;
    struct an_job *jobs;
    size_t n_jobs;
    int64_t next_poll_ms, next_renew_ms;
    uint64_t tenant_cache[CORR_TENANT_CACHE];
    int64_t (*clock)(void *ud);
    void *clock_ud;

    struct sp_analyze_stats stats;
    struct sp_counter *c_scheduled, *c_cache_hits, *c_llm, *c_template,
        *c_published, *c_failures, *c_dead, *c_takeovers, *c_reused,
        *c_llm_retries, *c_llm_gave_up, *c_out_of_order;
    struct sp_hist *h_job;
};

/* ---- small helpers ---------------------------------------------------------- */

static int64_t wall_now(struct an_ctx *ctx)
{
    return ctx->clock ? ctx->clock(ctx->clock_ud) : sp_wall_us() / 1000;
}

static void pub_free(struct an_pub *pub)
{
    free(pub->prefix);
    free(pub->id);
    free(pub);
}

static void acks_unref(struct an_acks *acks)
{
    if (--acks->refs > 0)
        return;
    while (acks->head) {
        struct an_pub *pub = acks->head;
        acks->head = pub->next;
        pub_free(pub);
    }
    free(acks);
}

static void on_published(struct sp_batch *batch, void *ud)
{
    struct an_pub *pub = ud;
    struct an_acks *acks = pub->acks;
    pub->acks = NULL;
    if (acks->dead) {
        /* Closed: the job's lease, no longer renewed, expires and the job
         * runs again (the stored analysis is reused, no LLM call). */
        pub_free(pub);
    } else {
        /* Queued for apply_acks (the job is renewed until then). */
        pub->ok = !pub->failed && batch->failed == 0;
        pub->next = NULL;
        if (acks->tail)
            acks->tail->next = pub;
        else
            acks->head = pub;
        acks->tail = pub;
    }
    acks_unref(acks);
}

/* Where the snapshot landed, for the correlate stage's ack script (see
 * correlate_out.c): an analysis is a version of the incident too. */
static void on_landed(struct sp_batch *batch, void *ud, const char *topic,
                      const void *key, size_t klen, int32_t partition,
                      int64_t offset)
{
    struct an_pub *pub = ud;
    SP_UNUSED(batch);
    if (strcmp(topic, pub->topic) == 0 && strlen(pub->id) == klen &&
        memcmp(pub->id, key, klen) == 0) {
        pub->part = partition;
        pub->off = offset;
    }
}

static struct an_job *job_find(struct an_ctx *ctx, const char *prefix,
                               const char *id)
{
    for (struct an_job *j = ctx->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0 && strcmp(j->prefix, prefix) == 0)
            return j;
    return NULL;
}

static void job_remove(struct an_ctx *ctx, struct an_job *job)
{
    for (struct an_job **pp = &ctx->jobs; *pp; pp = &(*pp)->next)
        if (*pp == job) {
            *pp = job->next;
            ctx->n_jobs--;
            free(job);
            return;
        }
}

/* Runs one script on one key of prefix; *rep new reference. */
static enum sp_err script(struct an_ctx *ctx, struct sp_redis_script *s,
                          const char *prefix, const char *key_suffix,
                          const char *const *args, size_t n_args,
                          redisReply **rep)
{
    char key[CORR_PREFIX_MAX + 128];
    snprintf(key, sizeof(key), "%s%s", prefix, key_suffix);
    const char *argv[16];
    size_t lens[16];
    int argc = 3;
    argv[argc] = key;
    lens[argc++] = strlen(key);
    for (size_t i = 0; i < n_args && argc < 16; i++) {
        argv[argc] = args[i];
        lens[argc++] = strlen(args[i]);
    }
    enum sp_err e = sp_redis_eval(ctx->redis, s, rep, 1, argc, argv, lens);
    if (e == SP_OK && *rep && (*rep)->type == REDIS_REPLY_ERROR)
        e = SP_ERR_REMOTE;
    if (e == SP_ERR_REMOTE)
        sp_log_warn(ctx->st->log, "script %s: %s", s->name,
                    *rep && (*rep)->type == REDIS_REPLY_ERROR ? (*rep)->str
                                                              : "error");
    return e;
}

/* Ends a job whose snapshot carrying content `hash` was acknowledged (or
 * that had nothing to do: hash NULL).  A template published while the LLM
 * was away (hash marked) also schedules the next LLM try, or makes the
 * template final once analyze.llm_retries are spent. */
static enum sp_err job_done_seen(struct an_ctx *ctx, const char *prefix,
                                 const char *id, const char *hash,
                                 const char *anc, long long *code)
{
    redisReply *rep = NULL;
    char now[24], base[24], cap[24], max[24];
    snprintf(now, sizeof(now), "%lld", (long long)wall_now(ctx));
    snprintf(base, sizeof(base), "%lld", (long long)ctx->llm_retry_ms);
    snprintf(cap, sizeof(cap), "%lld",
             (long long)SP_MAX(ctx->llm_retry_ms, AN_LLM_RETRY_CAP_MS));
    snprintf(max, sizeof(max), "%lld", (long long)ctx->llm_retries);
    bool retry = hash && an_hash_is_retry(hash);
    const char *args[] = {prefix, id, ctx->owner, hash ? hash : "",
                          now, base, max, cap, "", anc};
    enum sp_err e = script(ctx, &ctx->s_done, prefix, "an:lease", args,
                           anc ? 10 : retry ? 8 : 4, &rep);
    if (code)
        *code = e == SP_OK && rep && rep->type == REDIS_REPLY_INTEGER
                    ? rep->integer : 0;
    if (e == SP_OK && retry && rep && rep->type == REDIS_REPLY_INTEGER) {
        if (rep->integer == AN_DONE_RETRY) {
            ctx->stats.llm_retries++;
            sp_counter_inc(ctx->c_llm_retries);
        } else if (rep->integer == AN_DONE_FINAL) {
            ctx->stats.llm_gave_up++;
            sp_counter_inc(ctx->c_llm_gave_up);
            sp_log_warn(ctx->st->log, "incident %s: LLM still away after %lld "
                        "retries: its template analysis is final", id,
                        (long long)ctx->llm_retries);
        }
    }
    if (rep)
        freeReplyObject(rep);
    return e;
}

static enum sp_err job_done(struct an_ctx *ctx, const char *prefix,
                            const char *id, const char *hash)
{
    return job_done_seen(ctx, prefix, id, hash, NULL, NULL);
}

static enum sp_err job_release(struct an_ctx *ctx, const char *prefix,
                               const char *id)
{
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)(wall_now(ctx) + ctx->retry_ms));
    redisReply *rep = NULL;
    const char *args[] = {prefix, id, ctx->owner, at};
    enum sp_err e = script(ctx, &ctx->s_release, prefix, "an:lease", args, 4,
                           &rep);
    if (rep)
        freeReplyObject(rep);
    ctx->stats.failures++;
    sp_counter_inc(ctx->c_failures);
    return e;
}

/* A job claimed before its template's next LLM try: due again at that
 * try, with nothing counted (analyze_jobs.c, done "rearm"). */
static enum sp_err job_rearm(struct an_ctx *ctx, const char *prefix,
                             const char *id)
{
    redisReply *rep = NULL;
    const char *args[] = {prefix, id, ctx->owner, "", "", "", "", "", "rearm"};
    enum sp_err e = script(ctx, &ctx->s_done, prefix, "an:lease", args, 9,
                           &rep);
    if (rep)
        freeReplyObject(rep);
    return e;
}

/* Gives up a job after a failure: released for a retry when Redis takes
 * it, else only forgotten here, so that its lease (no longer renewed)
 * expires and any instance claims it again.  Either way its concurrency
 * slot is free. */
static void job_drop(struct an_ctx *ctx, struct an_job *job)
{
    job_release(ctx, job->prefix, job->id);
    job_remove(ctx, job);
}

/* Produces the snapshot (analysis included) in its own detached batch. */
static enum sp_err publish(struct an_ctx *ctx, struct an_job *job,
                           const struct an_snap *snap, const char *mark)
{
    struct sp_env *env = ctx->st->env;
    struct an_pub *pub = calloc(1, sizeof(*pub));
    struct sp_batch *batch = pub ? sp_batch_new(0) : NULL;
    if (pub) {
        pub->prefix = strdup(job->prefix);
        pub->id = strdup(job->id);
    }
    if (!batch || !pub->prefix || !pub->id) {
        if (pub)
            pub_free(pub);
        sp_batch_free(batch);
        return SP_ERR_NOMEM;
    }
    memcpy(pub->hash, job->hash, sizeof(pub->hash));
    pub->version = snap->version;
    pub->off = -1;
    snprintf(pub->mark, sizeof(pub->mark), "%s", mark);
    pub->topic = env->topic_incidents;
    pub->acks = ctx->acks;
    ctx->acks->refs++;
    batch->on_done = on_published;
    batch->on_landed = on_landed;
    batch->ud = pub;
    char ver[24];
    snprintf(ver, sizeof(ver), "%lld", (long long)snap->version);
    struct sp_header hdrs[] = {{"version", ver, strlen(ver)}};
    enum sp_err e = env->sink->produce(env->sink, batch, env->topic_incidents,
                                       job->id, strlen(job->id), snap->json,
                                       snap->len, hdrs, 1);
    if (e)
        pub->failed = true;
    job->state = AN_PUBLISH;
    sp_batch_seal(batch);
    if (e == SP_OK) {
        ctx->stats.published++;
        sp_counter_inc(ctx->c_published);
    }
    return SP_OK;
}

static enum sp_err landed_at(struct an_ctx *ctx, const char *prefix,
                             const char *id, int64_t version, long part,
                             int64_t off, const char *mark);

/* Reads the incident, its read marked as a publish in flight (see
 * corr_snapshot_append), and publishes it.  Gone since: the job ends and
 * the mark is taken back. */
static enum sp_err read_publish(struct an_ctx *ctx, struct an_job *job)
{
    struct an_snap snap;
    char mark[CORR_MARK_MAX] = "";
    int64_t ttl = corr_mark_ttl(ctx->grace_ms);
    if (ttl > 0)
        corr_mark_new(mark);
    enum sp_err e = an_read(ctx->redis, job->prefix, job->id, ctx->why_max,
                            ctx->snapshot_max, ttl > 0 ? mark : NULL, ttl,
                            &snap);
    if (e == SP_OK)
        e = publish(ctx, job, &snap, mark);
    an_snap_fini(&snap);
    if (e == SP_ERR_NOTFOUND) {
        landed_at(ctx, job->prefix, job->id, 0, 0, -1, mark);
        job_done(ctx, job->prefix, job->id, NULL);
        job_remove(ctx, job);
        return SP_OK;
    }
    if (e)
        job_drop(ctx, job);     /* stored: the re-run republishes it */
    return e;
}

/* ---- the job steps ------------------------------------------------------------ */

/* A claimed incident: cache hit, republish, policy skip, or a worker.
 * On failure the job is dropped (job_drop): nothing is left holding it. */
static enum sp_err start_job(struct an_ctx *ctx, struct an_job *job)
{
    struct an_snap snap;
    enum sp_err e = an_read(ctx->redis, job->prefix, job->id, ctx->why_max,
                            ctx->snapshot_max, NULL, 0, &snap);
    if (e == SP_ERR_RETRY || e == SP_ERR_NOMEM) {
        an_snap_fini(&snap);
        job_drop(ctx, job);
        return e;
    }
    if (e == SP_ERR_NOTFOUND || e) {
        /* Gone (expired) or unreadable: nothing to analyse. */
        if (e != SP_ERR_NOTFOUND)
            sp_log_warn(ctx->st->log, "incident %s: unreadable snapshot: %s",
                        job->id, sp_strerror(e));
        an_snap_fini(&snap);
        e = job_done(ctx, job->prefix, job->id, NULL);
        job_remove(ctx, job);
        return e == SP_ERR_RETRY ? e : SP_OK;
    }
    memcpy(job->hash, snap.hash, sizeof(snap.hash));
    /* The template of this content is out because the LLM was away: this
     * job tries the LLM again, if it still may. */
    job->llm_retry = !snap.merged && an_hash_is_retry(snap.ah) &&
                     strcmp(snap.ah + 1, snap.hash) == 0;
    if (job->llm_retry && (!ctx->lo.enabled || ctx->llm_retry_ms == 0)) {
        job->llm_retry = false;
        snprintf(snap.ah, sizeof(snap.ah), "%s", snap.hash);
    }
    if (job->llm_retry && snap.llm_next > wall_now(ctx)) {
        /* Claimed before its next try (a change that left the content as
         * it was, or a reclaim): due again at that try. */
        an_snap_fini(&snap);
        e = job_rearm(ctx, job->prefix, job->id);
        job_remove(ctx, job);
        return e == SP_ERR_RETRY ? e : SP_OK;
    }
    if (snap.merged || strcmp(snap.ah, snap.hash) == 0) {
        /* Merged away, or this content was analysed and published. */
        ctx->stats.cache_hits += !snap.merged;
        if (!snap.merged)
            sp_counter_inc(ctx->c_cache_hits);
        an_snap_fini(&snap);
        e = job_done(ctx, job->prefix, job->id, job->hash);
        ctx->stats.completed++;
        job_remove(ctx, job);
        return e == SP_ERR_RETRY ? e : SP_OK;
    }
    bool stored_template = an_hash_is_retry(snap.anc) &&
                           strcmp(snap.anc + 1, snap.hash) == 0 &&
                           strcmp(snap.ah, snap.anc) != 0;
    if (snap.has_analysis &&
        (strcmp(snap.anc, snap.hash) == 0 || stored_template)) {
        /* Stored before a crash or a refused publish, never acknowledged:
         * publish it again (a template of the LLM away keeps its mark, so
         * that its acknowledgement schedules the next try). */
        ctx->stats.reused++;
        sp_counter_inc(ctx->c_reused);
        snprintf(job->hash, sizeof(job->hash), "%s", snap.anc);
        an_snap_fini(&snap);
        return read_publish(ctx, job);
    }
    if (ctx->ao.policy != SP_ANALYSIS_EVERY) {
        struct sp_arena a;
        sp_arena_init(&a, (size_t)256 << 20);
        struct sp_json_error jerr;
        struct sp_json *inc = sp_json_parse(&a, snap.json, snap.len, NULL,
                                            &jerr);
        bool wanted = inc && sp_analysis_wanted(&ctx->ao, inc, false);
        sp_arena_fini(&a);
        if (!wanted) {
            ctx->stats.skipped_policy++;
            an_snap_fini(&snap);
            e = job_done(ctx, job->prefix, job->id, NULL);
            job_remove(ctx, job);
            return e == SP_ERR_RETRY ? e : SP_OK;
        }
    }
    struct an_work *w = calloc(1, sizeof(*w));
    if (!w || !(w->prefix = strdup(job->prefix)) || !(w->id = strdup(job->id))) {
        an_work_free(w);
        an_snap_fini(&snap);
        job_drop(ctx, job);
        return SP_ERR_NOMEM;
    }
    w->inc = snap.json;
    w->inc_len = snap.len;
    snap.json = NULL;
    memcpy(w->hash, snap.hash, sizeof(w->hash));
    memcpy(job->anc, snap.anc, sizeof(job->anc));
    job->state = AN_WORKER;
    an_pool_push(ctx->pool, w);
    return SP_OK;
}

/* A worker's result gone stale: the job was taken over and given back
 * while at the worker, and the other claim stored meanwhile (store or
 * done answered -3).  It starts again from what is there, most often the
 * other claim's analysis of this content: a cache hit. */
static enum sp_err restart_stale(struct an_ctx *ctx, struct an_job *job)
{
    ctx->stats.stale_results++;
    job->state = AN_READ;
    return start_job(ctx, job);
}

/* A worker finished: store the analysis, then publish the snapshot.  Any
 * failure drops the job (job_drop); a re-run reuses what was stored. */
static enum sp_err finish_job(struct an_ctx *ctx, struct an_work *w)
{
    struct an_job *job = job_find(ctx, w->prefix, w->id);
    if (!job)
        return SP_OK;
    if (!w->analysis) {
        job_drop(ctx, job);
        return SP_OK;
    }
    if (w->template_used) {
        ctx->stats.template_jobs++;
        sp_counter_inc(ctx->c_template);
    } else {
        ctx->stats.llm_jobs++;
        sp_counter_inc(ctx->c_llm);
    }
    bool retry_later = w->template_used && w->llm_transient &&
                       ctx->llm_retry_ms > 0;
    if (retry_later)
        an_hash_mark_retry(job->hash, w->hash);
    else
        snprintf(job->hash, sizeof(job->hash), "%s", w->hash);
    if (retry_later && job->llm_retry) {
        /* Still away: the template of this content is out already, so
         * nothing new is stored or published; the next try is scheduled
         * (unless another claim stored since: stale, as in store). */
        long long code = 0;
        enum sp_err e = job_done_seen(ctx, job->prefix, job->id, job->hash,
                                      job->anc, &code);
        if (e == SP_ERR_RETRY) {
            job_drop(ctx, job);
            return e;
        }
        if (code == -3)
            return restart_stale(ctx, job);
        ctx->stats.completed++;
        job_remove(ctx, job);
        return SP_OK;
    }
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)wall_now(ctx));
    char ikey[AN_ID_MAX + 4];
    snprintf(ikey, sizeof(ikey), "i:%s", w->id);
    redisReply *rep = NULL;
    const char *args[] = {w->prefix, w->id, w->analysis, job->hash, now,
                          ctx->owner, job->anc};
    enum sp_err e = script(ctx, &ctx->s_store, w->prefix, ikey, args, 7, &rep);
    long long code = rep && rep->type == REDIS_REPLY_ARRAY &&
                             rep->elements == 2 &&
                             rep->element[0]->type == REDIS_REPLY_INTEGER
                         ? rep->element[0]->integer
                         : -2;
    if (rep)
        freeReplyObject(rep);
    if (e == SP_ERR_RETRY || e == SP_ERR_NOMEM) {
        job_drop(ctx, job);
        return e;
    }
    if (e || code == -2) {
        job_drop(ctx, job);
        return SP_OK;
    }
    if (code == -1) {                   /* another instance has it now */
        ctx->stats.lost_leases++;
        job_remove(ctx, job);
        return SP_OK;
    }
    if (code == -3)
        return restart_stale(ctx, job);
    if (code == 0) {                    /* the incident is gone */
        job_done(ctx, job->prefix, job->id, NULL);
        job_remove(ctx, job);
        return SP_OK;
    }
    return read_publish(ctx, job);
}

/* Tells the correlate stage's ack script where a published snapshot
 * landed (off -1: the sink could not say) and takes its mark back: it
 * queues the incident again when a newer version landed before it, and
 * removes the incident from correlate's outbox when this version covers
 * its last change and no other publish of it is in flight. */
static enum sp_err landed_at(struct an_ctx *ctx, const char *prefix,
                             const char *id, int64_t version, long part,
                             int64_t off, const char *mark)
{
    char now[24], grace[24], ver[24], pt[16], of[24];
    snprintf(now, sizeof(now), "%lld", (long long)wall_now(ctx));
    snprintf(grace, sizeof(grace), "%lld", (long long)ctx->grace_ms);
    snprintf(ver, sizeof(ver), "%lld", (long long)version);
    snprintf(pt, sizeof(pt), "%ld", part);
    snprintf(of, sizeof(of), "%lld", (long long)off);
    const char *args[] = {prefix, now, grace, id, ver, pt, of, mark};
    redisReply *rep = NULL;
    enum sp_err e = script(ctx, &ctx->s_landed, prefix, "out", args, 8, &rep);
    if (e == SP_OK)
        sp_counter_add(ctx->c_out_of_order, corr_ack_late(rep));
    if (rep)
        freeReplyObject(rep);
    return e;
}

static enum sp_err apply_acks(struct an_ctx *ctx)
{
    struct an_acks *acks = ctx->acks;
    enum sp_err e = SP_OK;
    while (acks->head) {
        struct an_pub *a = acks->head;
        struct an_job *job = job_find(ctx, a->prefix, a->id);
        /* Landed: where, and its mark back.  Refused by the producer
         * (never handed over, so it cannot land): its mark back only
         * (version 0 removes nothing the topic still needs).  A delivery
         * that failed keeps its mark: the record may have landed. */
        if ((a->ok || a->failed) &&
            (e = landed_at(ctx, a->prefix, a->id, a->ok ? a->version : 0,
                           a->ok ? (long)a->part : 0, a->ok ? a->off : -1,
                           a->mark)) == SP_ERR_RETRY)
            break;
        if (a->ok) {
            e = job_done(ctx, a->prefix, a->id, a->hash);
            if (e != SP_ERR_RETRY) {
                ctx->stats.completed++;
                if (job) {
                    sp_hist_observe(ctx->h_job,
                                    (double)(wall_now(ctx) - job->claimed_ms) /
                                        1000.0);
                    job_remove(ctx, job);
                }
            }
        } else {
            e = job_release(ctx, a->prefix, a->id);
            if (job && e != SP_ERR_RETRY)
                job_remove(ctx, job);
        }
        if (e == SP_ERR_RETRY)
            break;
        acks->head = a->next;
        if (!acks->head)
            acks->tail = NULL;
        pub_free(a);
    }
    return e == SP_ERR_RETRY ? e : SP_OK;
}

/* What keeps a tenant in the registry: jobs due (now or later: debounced
 * changes, LLM retries) or leased (running, or their owner crashed). */
static const char *const an_work_keys[] = {"an:due", "an:lease"};

/* Claims due jobs of the registered tenants, up to the concurrency: one
 * SSCAN step of the registry per poll (about AN_CLAIM_TENANTS_S tenants, the
 * cursor kept), so that the work of a poll stays bounded however many
 * tenants there are; with more, each is visited every few polls.  Tenants
 * whose claim found no job left leave the registry (corr_tenants_forget),
 * so that it holds the tenants with work, not every tenant that ever had
 * an incident; a schedule that finds its tenant idle adds it again.  Each
 * poll first settles tenants a walk left half-dropped (its process died:
 * corr_tenants_step). */
static enum sp_err claim(struct an_ctx *ctx, int64_t now)
{
    struct corr_tenant *tn = NULL;
    size_t nt = 0;
    enum sp_err e = corr_tenants_step(ctx->redis, ctx->key_prefix,
                                      ctx->tenants_key, an_work_keys,
                                      SP_ARRAY_SIZE(an_work_keys),
                                      ctx->scan_cursor,
                                      sizeof(ctx->scan_cursor),
                                      AN_CLAIM_TENANTS_S, SIZE_MAX, &tn, &nt);
    bool *idle = e ? NULL : calloc(nt ? nt : 1, sizeof(*idle));
    if (!e && !idle)
        e = SP_ERR_NOMEM;
    if (e) {
        free(tn);
        return e == SP_ERR_RETRY || e == SP_ERR_NOMEM ? e : SP_OK;
    }
    ctx->stats.claim_rounds++;
    char nowS[24], lease[24], lim[24], att[24], dead[24];
    snprintf(nowS, sizeof(nowS), "%lld", (long long)now);
    snprintf(lease, sizeof(lease), "%lld", (long long)ctx->lease_ms);
    snprintf(att, sizeof(att), "%lld", (long long)ctx->max_attempts);
    snprintf(dead, sizeof(dead), "%lld", (long long)ctx->dead_max);
    for (size_t t = 0; t < nt && !e; t++) {
        if (!tn[t].tenant[0])
            continue;
        int64_t room = ctx->concurrency - (int64_t)ctx->n_jobs;
        snprintf(lim, sizeof(lim), "%lld", (long long)SP_MAX(room, 0));
        const char *prefix = tn[t].prefix;
        redisReply *rep = NULL;
        const char *args[] = {prefix, nowS, lease, lim, att, ctx->owner, dead};
        e = script(ctx, &ctx->s_claim, prefix, "an:due", args, 7, &rep);
        ctx->stats.claim_calls++;
        if (e == SP_OK && rep && rep->type == REDIS_REPLY_ARRAY &&
            rep->elements == 4) {
            const redisReply *got = rep->element[0], *dl = rep->element[1];
            idle[t] = rep->element[3]->type == REDIS_REPLY_INTEGER &&
                      rep->element[3]->integer == 0;
            if (rep->element[2]->type == REDIS_REPLY_INTEGER &&
                rep->element[2]->integer > 0) {
                ctx->stats.takeovers += (uint64_t)rep->element[2]->integer;
                sp_counter_add(ctx->c_takeovers,
                               (uint64_t)rep->element[2]->integer);
            }
            for (size_t i = 0; i < dl->elements; i++) {
                ctx->stats.dead_letters++;
                sp_counter_inc(ctx->c_dead);
                sp_log_warn(ctx->st->log, "incident %s: analysis failed %lld "
                            "times: dead-lettered", dl->element[i]->str,
                            (long long)ctx->max_attempts);
            }
            for (size_t i = 0; i < got->elements && e != SP_ERR_RETRY; i++) {
                const redisReply *id = got->element[i];
                if (id->type != REDIS_REPLY_STRING || id->len >= AN_ID_MAX)
                    continue;
                if (job_find(ctx, prefix, id->str)) {
                    /* Ours still (its lease ran out while Redis was away or
                     * the clock jumped): the job we hold goes on under the
                     * fresh lease, rather than a second one calling the LLM
                     * and publishing again. */
                    ctx->stats.reclaimed++;
                    /* The claim took the job off due: a change that came
                     * while we held it waited there.  Due again, it runs
                     * after the job in hand (a cache hit if nothing
                     * changed). */
                    char dkey[CORR_PREFIX_MAX + 8];
                    snprintf(dkey, sizeof(dkey), "%san:due", prefix);
                    const char *za[] = {"ZADD", dkey, "NX", nowS, id->str};
                    size_t zl[] = {4, strlen(dkey), 2, strlen(nowS), id->len};
                    redisReply *zr = NULL;
                    e = sp_redis_call(ctx->redis, &zr, 5, za, zl);
                    if (zr)
                        freeReplyObject(zr);
                    if (e != SP_ERR_RETRY)
                        e = SP_OK;
                    continue;
                }
                struct an_job *job = calloc(1, sizeof(*job));
                if (!job) {
                    e = SP_ERR_NOMEM;
                    break;
                }
                snprintf(job->prefix, sizeof(job->prefix), "%s", prefix);
                memcpy(job->id, id->str, id->len);
                job->claimed_ms = now;
                job->next = ctx->jobs;
                ctx->jobs = job;
                ctx->n_jobs++;
                ctx->stats.claimed++;
                e = start_job(ctx, job);
            }
        } else if (e == SP_ERR_REMOTE) {
            e = SP_OK;                  /* logged; other tenants go on */
        }
        if (rep)
            freeReplyObject(rep);
    }
    if (!e)
        e = corr_tenants_forget(ctx->redis, ctx->tenants_key, an_work_keys,
                                SP_ARRAY_SIZE(an_work_keys), tn, idle, nt);
    free(tn);
    free(idle);
    return e;
}

static enum sp_err renew(struct an_ctx *ctx, int64_t now)
{
    char until[24];
    snprintf(until, sizeof(until), "%lld", (long long)(now + ctx->lease_ms));
    for (struct an_job *j = ctx->jobs; j; j = j->next) {
        if (j->state != AN_WORKER && j->state != AN_PUBLISH)
            continue;                   /* nothing outstanding: let it go */
        redisReply *rep = NULL;
        const char *args[] = {j->prefix, ctx->owner, until, j->id};
        enum sp_err e = script(ctx, &ctx->s_renew, j->prefix, "an:lease", args,
                               4, &rep);
        if (rep)
            freeReplyObject(rep);
        if (e == SP_ERR_RETRY)
            return e;
    }
    return SP_OK;
}

/* ---- stage callbacks ------------------------------------------------------------ */

static enum sp_err analyze_init(struct sp_stage *st, struct sp_error *err)
{
    struct an_ctx *ctx = st->ctx;
    const struct sp_config *cfg = st->env->cfg;
    ctx->st = st;
    snprintf(ctx->key_prefix, sizeof(ctx->key_prefix), "%s",
             sp_config_str(cfg, "correlate.key_prefix"));
    snprintf(ctx->default_tenant, sizeof(ctx->default_tenant), "%s",
             sp_config_str(cfg, "correlate.default_tenant"));
    corr_set_key(ctx->key_prefix, CORR_SET_AN, ctx->tenants_key,
                 sizeof(ctx->tenants_key));
    snprintf(ctx->scan_cursor, sizeof(ctx->scan_cursor), "0");
    ctx->snapshot_max = (size_t)sp_config_int(cfg, "correlate.snapshot_max");
    ctx->why_max = sp_config_int(cfg, "correlate.snapshot_why");
    ctx->retention_s = sp_config_int(cfg, "correlate.retention") / 1000;
    ctx->grace_ms = sp_config_int(cfg, "correlate.outbox.grace");
    ctx->quiet_ms = sp_config_int(cfg, "analyze.quiet");
    ctx->max_delay_ms = sp_config_int(cfg, "analyze.max_delay");
    ctx->lease_ms = sp_config_int(cfg, "analyze.lease");
    ctx->max_attempts = sp_config_int(cfg, "analyze.max_attempts");
    ctx->concurrency = sp_config_int(cfg, "analyze.concurrency");
    ctx->poll_ms = sp_config_int(cfg, "analyze.poll");
    ctx->retry_ms = sp_config_int(cfg, "analyze.retry_delay");
    ctx->llm_retry_ms = sp_config_int(cfg, "analyze.llm_retry");
    ctx->llm_retries = sp_config_int(cfg, "analyze.llm_retries");
    ctx->dead_max = sp_config_int(cfg, "analyze.dead_letter_max");
    ctx->schedule = sp_config_bool(cfg, "analyze.schedule");
    enum sp_err e;
    if ((e = sp_llm_opts_from_config(cfg, &ctx->lo, err)) ||
        (e = sp_analysis_opts_from_config(cfg, &ctx->ao, err)))
        return e;
    if (ctx->lo.enabled) {
        ctx->prompts = sp_analysis_prompts_load(
            sp_config_str(cfg, "analysis.prompts_dir"),
            sp_config_str(cfg, "analysis.schema_file"), err);
        if (!ctx->prompts)
            return err->code ? err->code : SP_ERR_CONFIG;
    }
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(ctx->owner, sizeof(ctx->owner), "%s/%s/%d/%08llx",
             st->env->instance ? st->env->instance : "socpilot", host,
             (int)getpid(),
             (unsigned long long)((uint64_t)sp_now_us() ^
                                  ((uint64_t)(uintptr_t)ctx << 7)) &
                 0xffffffffULL);

    struct sp_redis_opts ro;
    sp_redis_opts_from_config(cfg, &ro);
    ro.log_comp = st->log;
    ctx->redis = sp_redis_new(&ro);
    ctx->acks = calloc(1, sizeof(*ctx->acks));
    if (!ctx->redis || !ctx->acks)
        return sp_error_set(err, SP_ERR_NOMEM, "analyze: out of memory");
    ctx->acks->refs = 1;
    struct { struct sp_redis_script *s; const char *name, *src; } scripts[] = {
        {&ctx->s_schedule, "analyze_schedule", an_lua_schedule},
        {&ctx->s_claim, "analyze_claim", an_lua_claim},
        {&ctx->s_release, "analyze_release", an_lua_release},
        {&ctx->s_store, "analyze_store", an_lua_store},
        {&ctx->s_done, "analyze_done", an_lua_done},
        {&ctx->s_renew, "analyze_renew", an_lua_renew},
        {&ctx->s_landed, "ack", corr_lua_ack},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(scripts); i++) {
        scripts[i].s->name = scripts[i].name;
        scripts[i].s->src = scripts[i].src;
        if ((e = sp_redis_add_script(ctx->redis, scripts[i].s)))
            return sp_error_set(err, e, "analyze: script %s", scripts[i].name);
    }
    /* Not connecting here is fine: tick and process reconnect. */
    sp_redis_ensure(ctx->redis, sp_now_ms());

    struct sp_metrics *m = st->env->metrics;
    char lab[128];
    snprintf(lab, sizeof(lab), "stage=\"%s\"", st->name);
    if (m) {
        ctx->c_scheduled = sp_metrics_counter(m, "analyze_scheduled_total",
            "Incident changes scheduled for analysis", lab);
        ctx->c_cache_hits = sp_metrics_counter(m, "analyze_cache_hits_total",
            "Due jobs whose content was already analysed (no call)", lab);
        ctx->c_llm = sp_metrics_counter(m, "analyze_llm_analyses_total",
            "Analyses written by the LLM", lab);
        ctx->c_template = sp_metrics_counter(m, "analyze_fallbacks_total",
            "Jobs that ended with the template (LLM off, failing, over "
            "budget), retries that found the LLM still away included", lab);
        ctx->c_out_of_order = sp_metrics_counter(
            m, "incident_snapshots_out_of_order_total",
            "Acknowledgements that found an incident's last record older than "
            "a version already landed (several instances); published again",
            lab);
        ctx->c_published = sp_metrics_counter(m, "analyze_published_total",
            "Snapshots republished with their analysis", lab);
        ctx->c_failures = sp_metrics_counter(m, "analyze_failures_total",
            "Job attempts that failed and were released for a retry", lab);
        ctx->c_dead = sp_metrics_counter(m, "analyze_dead_letters_total",
            "Jobs moved to the dead-letter list after max attempts", lab);
        ctx->c_takeovers = sp_metrics_counter(m, "analyze_lease_expired_total",
            "Leases that expired and went back to due (taken over)", lab);
        ctx->c_reused = sp_metrics_counter(m, "analyze_reused_total",
            "Stored analyses republished after an unacknowledged publish",
            lab);
        ctx->c_llm_retries = sp_metrics_counter(m, "analyze_llm_retries_total",
            "LLM tries scheduled again for incidents left with the template "
            "while the LLM was away", lab);
        ctx->c_llm_gave_up = sp_metrics_counter(m,
            "analyze_llm_retries_exhausted_total",
            "Template analyses made final after analyze.llm_retries", lab);
        ctx->h_job = sp_metrics_hist(m, "analyze_job_seconds",
            "Claim to acknowledged publish", lab, NULL, 0);
    }
    ctx->pool = an_pool_new((unsigned)sp_config_int(cfg, "analyze.workers"),
                            &ctx->lo, &ctx->ao, ctx->prompts, m, st->log, err);
    if (!ctx->pool)
        return err->code ? err->code : SP_ERR_NOMEM;
    return SP_OK;
}

struct sched {
    char prefix[CORR_PREFIX_MAX];
    const char *id;
    const char *tenant;
    int64_t version;
    bool sent_job, sent_sadd;       /* in this round: its schedule, SADD */
    bool idle;                      /* SADD its tenant after the reply */
    bool changed;                   /* an alert of it changed it */
};

/* An alert's script analyses, kept with its incident (an_scripts_key)
 * so that the incident's snapshot and its analysis carry them. */
struct sched_scripts {
    char prefix[CORR_PREFIX_MAX];
    const char *inc;
    const char *alert;
    const char *side;           /* "sc" or "ad" */
    char *json;                 /* compact entries, new */
    size_t len;
};

/* HSET <side hash of the incident> alert json + EXPIRE, appended to the
 * round (an_side_key: "sc" script analyses, "ad" alert details). */
static enum sp_err append_side(struct sp_redis *r, const char *prefix,
                               const char *inc, const char *side,
                               const char *alert_id, const char *json,
                               size_t len, int64_t ttl_s, int *appended)
{
    char key[CORR_PREFIX_MAX + AN_ID_MAX + 16], ttl[24];
    an_side_key(prefix, inc, side, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_s);
    const char *hs[] = {"HSET", key, alert_id, json};
    size_t hl[] = {4, strlen(key), strlen(alert_id), len};
    enum sp_err e = sp_redis_append(r, 4, hs, hl);
    if (e)
        return e;
    (*appended)++;
    const char *ex[] = {"EXPIRE", key, ttl};
    size_t el[] = {6, strlen(key), strlen(ttl)};
    if ((e = sp_redis_append(r, 3, ex, el)))
        return e;
    (*appended)++;
    return SP_OK;
}

static enum sp_err append_scripts(struct an_ctx *ctx,
                                  const struct sched_scripts *sc)
{
    int appended = 0;
    return append_side(ctx->redis, sc->prefix, sc->inc, sc->side, sc->alert,
                       sc->json, sc->len, ctx->retention_s, &appended);
}

int sp_analyze_append_sides(struct sp_redis *r, const char *prefix,
                            const char *inc, const struct sp_alert *alert,
                            int64_t ttl_s, int *appended)
{
    *appended = 0;
    if (!alert->id || strlen(inc) >= AN_ID_MAX)
        return 0;
    enum sp_err e = SP_OK;
    const struct sp_section *sec = sp_alert_find_section(alert, "scripts");
    if (sec) {
        size_t len;
        char *json = an_compact_scripts(alert->id, sec->json, sec->len, &len);
        if (!json)
            return -1;
        e = append_side(r, prefix, inc, "sc", alert->id, json, len, ttl_s,
                        appended);
        free(json);
    }
    if (!e) {
        size_t len;
        char *json = an_alert_details(alert, &len);
        if (!json)
            return -1;
        e = append_side(r, prefix, inc, "ad", alert->id, json, len, ttl_s,
                        appended);
        free(json);
    }
    return e ? -1 : *appended;
}

static bool tenant_cached(struct an_ctx *ctx, const char *tenant)
{
    uint64_t h = corr_hash(CORR_HASH_INIT, tenant, strlen(tenant)) | 1;
    uint64_t *slot = &ctx->tenant_cache[h % CORR_TENANT_CACHE];
    if (*slot == h)
        return true;
    *slot = h;
    return false;
}

/* SADDs the tenants whose schedule found them without any job (idle),
 * after that schedule's reply and whatever tenant_cached remembers: the
 * claim's walk may have dropped them from the registry since they were
 * added (see corr_tenants_forget for why after the reply). */
static enum sp_err register_idle(struct an_ctx *ctx, const struct sched *s,
                                 size_t n)
{
    size_t sent = 0;
    enum sp_err e = SP_OK;
    for (size_t i = 0; i < n && !e; i++) {
        if (!s[i].idle)
            continue;
        const char *sa[] = {"SADD", ctx->tenants_key, s[i].tenant};
        size_t sal[] = {4, strlen(ctx->tenants_key), strlen(s[i].tenant)};
        if (!(e = sp_redis_append(ctx->redis, 3, sa, sal)))
            sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *rep;
        enum sp_err rd = sp_redis_read(ctx->redis, &rep);
        if (rd)
            return rd;
        if (sp_redis_reply_err(rep) && !e)
            e = SP_ERR_RETRY;
        freeReplyObject(rep);
    }
    return e;
}

/* One reply of a schedule round: of incident job's schedule script (job
 * NULL: of a SADD or a side section).  The first error goes to *bad. */
static void take_reply(struct an_ctx *ctx, const redisReply *rep,
                       struct sched *job, bool *noscript, enum sp_err *bad)
{
    enum sp_err me = sp_redis_reply_err(rep);
    if (me == SP_ERR_NOTFOUND) {
        *noscript = true;
    } else if (me) {
        if (!*bad)
            *bad = me;
    } else if (job && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
               rep->element[0]->type == REDIS_REPLY_INTEGER &&
               rep->element[1]->type == REDIS_REPLY_INTEGER) {
        if (rep->element[0]->integer > 0) {
            ctx->stats.scheduled++;
            sp_counter_inc(ctx->c_scheduled);
        }
        job->idle = rep->element[1]->integer == 1;
    }
}

/* Appends, per incident, the schedule script (when sched) and the SADD
 * of its tenant to the registry claim() reads (always, once per process:
 * whoever schedules, a tenant not registered is never claimed), then the
 * side sections; once they answered, the tenants a schedule found idle
 * are added again (register_idle). */
static enum sp_err schedule_round(struct an_ctx *ctx, struct sched *s,
                                  size_t n, const struct sched_scripts *sc,
                                  size_t n_sc, bool sched, bool *noscript)
{
    char now[24], quiet[24], maxd[24];
    snprintf(now, sizeof(now), "%lld", (long long)wall_now(ctx));
    snprintf(quiet, sizeof(quiet), "%lld", (long long)ctx->quiet_ms);
    snprintf(maxd, sizeof(maxd), "%lld", (long long)ctx->max_delay_ms);
    enum sp_err e = SP_OK;
    for (size_t i = 0; i < n; i++)
        s[i].sent_job = s[i].sent_sadd = s[i].idle = false;
    for (size_t i = 0; i < n && !e; i++) {
        char key[CORR_PREFIX_MAX + 8], ver[24];
        snprintf(key, sizeof(key), "%san:due", s[i].prefix);
        snprintf(ver, sizeof(ver), "%lld", (long long)s[i].version);
        const char *argv[] = {NULL, NULL, NULL, key, s[i].prefix, s[i].id,
                              now, quiet, maxd, ver};
        size_t lens[SP_ARRAY_SIZE(argv)];
        for (size_t k = 3; k < SP_ARRAY_SIZE(argv); k++)
            lens[k] = strlen(argv[k]);
        /* Behind correlate in the chain, correlate's own script already
         * scheduled the job in the step that changed the incident (and
         * correlate registered the tenant again if it was idle). */
        if (sched && (!ctx->st->env || ctx->st->env->analysis_quiet_ms <= 0)) {
            e = sp_redis_append_evalsha(ctx->redis, &ctx->s_schedule, 1,
                                        (int)SP_ARRAY_SIZE(argv), argv, lens);
            s[i].sent_job = e == SP_OK;
        }
        if (!e && !tenant_cached(ctx, s[i].tenant)) {
            const char *sa[] = {"SADD", ctx->tenants_key, s[i].tenant};
            size_t sal[] = {4, strlen(ctx->tenants_key), strlen(s[i].tenant)};
            e = sp_redis_append(ctx->redis, 3, sa, sal);
            s[i].sent_sadd = e == SP_OK;
        }
    }
    for (size_t i = 0; i < n_sc && !e; i++)
        e = append_scripts(ctx, &sc[i]);
    /* The replies in the order sent: per incident its schedule's and its
     * SADD's, then the side sections'. */
    enum sp_err bad = SP_OK;
    for (size_t i = 0; i < n && !e; i++) {
        for (int k = 0; k < 2 && !e; k++) {
            if (!(k == 0 ? s[i].sent_job : s[i].sent_sadd))
                continue;
            redisReply *rep = NULL;
            if ((e = sp_redis_read(ctx->redis, &rep)))
                break;
            take_reply(ctx, rep, k == 0 ? &s[i] : NULL, noscript, &bad);
            freeReplyObject(rep);
        }
    }
    while (!e && sp_redis_pending(ctx->redis) > 0) {
        redisReply *rep = NULL;
        if ((e = sp_redis_read(ctx->redis, &rep)))
            break;
        take_reply(ctx, rep, NULL, noscript, &bad);
        freeReplyObject(rep);
    }
    /* Whatever else failed: a job scheduled is never left unclaimed. */
    if (!e)
        e = register_idle(ctx, s, n);
    /* A tenant is marked registered before its SADD is answered: after a
     * failed round the batch comes again, and must register it again. */
    if (e || bad)
        memset(ctx->tenant_cache, 0, sizeof(ctx->tenant_cache));
    if (e)
        return e == SP_ERR_NOMEM ? e : SP_ERR_RETRY;
    if (bad == SP_ERR_RETRY || bad == SP_ERR_CONFIG)
        return SP_ERR_RETRY;
    if (bad)
        sp_log_warn(ctx->st->log, "scheduling failed: %s", sp_strerror(bad));
    return SP_OK;
}

static enum sp_err analyze_process(struct sp_stage *st, struct sp_batch *batch)
{
    struct an_ctx *ctx = st->ctx;
    bool sched = ctx->schedule && ctx->quiet_ms > 0;
    size_t n = 0;
    for (size_t m = 0; m < batch->n; m++)
        if (!batch->msgs[m].dropped)
            n += batch->msgs[m].n_alerts;
    if (n == 0)
        return SP_OK;
    struct sched *s = calloc(n, sizeof(*s));
    struct sched_scripts *sc = calloc(2 * n, sizeof(*sc));
    if (!s || !sc) {
        free(s);
        free(sc);
        return SP_ERR_NOMEM;
    }
    size_t k = 0, n_sc = 0;
    for (size_t m = 0; m < batch->n; m++) {
        struct sp_msg *msg = &batch->msgs[m];
        for (size_t j = 0; !msg->dropped && j < msg->n_alerts; j++) {
            const struct sp_alert *alert = msg->alerts[j];
            if (!alert->incident_id || !*alert->incident_id ||
                strlen(alert->incident_id) >= AN_ID_MAX)
                continue;
            const char *tenant = alert->tenant && *alert->tenant
                                     ? alert->tenant : ctx->default_tenant;
            if (strlen(tenant) > CORR_TENANT_MAX)
                continue;
            const struct sp_section *sec = sp_alert_find_section(alert, "scripts");
            if (sec && alert->id) {
                struct sched_scripts *x = &sc[n_sc];
                x->json = an_compact_scripts(alert->id, sec->json, sec->len, &x->len);
                if (x->json) {
                    corr_prefix(ctx->key_prefix, tenant, x->prefix,
                                sizeof(x->prefix));
                    x->inc = alert->incident_id;
                    x->alert = alert->id;
                    x->side = "sc";
                    n_sc++;
                }
            }
            if (alert->id) {
                struct sched_scripts *x = &sc[n_sc];
                x->json = an_alert_details(alert, &x->len);
                if (x->json) {
                    corr_prefix(ctx->key_prefix, tenant, x->prefix,
                                sizeof(x->prefix));
                    x->inc = alert->incident_id;
                    x->alert = alert->id;
                    x->side = "ad";
                    n_sc++;
                }
            }
            size_t d = 0;               /* one entry per incident */
            for (; d < k; d++)
                if (strcmp(s[d].id, alert->incident_id) == 0 &&
                    strcmp(s[d].tenant, tenant) == 0)
                    break;
            if (d < k) {
                s[d].version = SP_MAX(s[d].version, alert->incident_version);
                s[d].changed |= alert->incident_changed;
                continue;
            }
            corr_prefix(ctx->key_prefix, tenant, s[k].prefix,
                        sizeof(s[k].prefix));
            s[k].id = alert->incident_id;
            s[k].tenant = tenant;
            s[k].version = alert->incident_version;
            s[k].changed = alert->incident_changed;
            k++;
        }
    }
    enum sp_err e = SP_OK;
    if (k) {
        e = sp_redis_ensure(ctx->redis, sp_now_ms());
        if (e == SP_OK) {
            bool noscript = false;
            e = schedule_round(ctx, s, k, sc, n_sc, sched, &noscript);
            if (e == SP_OK && noscript) {       /* flushed scripts: again */
                if (sp_redis_load_scripts(ctx->redis) == SP_OK)
                    e = schedule_round(ctx, s, k, NULL, 0, sched, &noscript);
                else
                    e = SP_ERR_RETRY;
            }
        } else if (e != SP_ERR_NOMEM) {
            e = SP_ERR_RETRY;
        }
    }
    /* Scheduled by correlate's own script (see schedule_round): counted
     * here, as the stage's schedule replies count its own; the incidents
     * a replay names (duplicates) were not scheduled again. */
    if (e == SP_OK && ctx->st->env && ctx->st->env->analysis_quiet_ms > 0) {
        size_t changed = 0;
        for (size_t i = 0; i < k; i++)
            changed += s[i].changed;
        ctx->stats.scheduled += changed;
        sp_counter_add(ctx->c_scheduled, changed);
    }
    for (size_t i = 0; i < n_sc; i++)
        free(sc[i].json);
    free(sc);
    free(s);
    return e;
}

static enum sp_err analyze_tick(struct sp_stage *st, int64_t now_ms)
{
    struct an_ctx *ctx = st->ctx;
    if (sp_redis_ensure(ctx->redis, now_ms) != SP_OK)
        return SP_OK;               /* leases outlive a short outage */
    int64_t wall = wall_now(ctx);
    enum sp_err e = apply_acks(ctx);
    for (struct an_work *w = an_pool_take(ctx->pool); w;) {
        struct an_work *next = w->next;
        if (e == SP_OK)
            e = finish_job(ctx, w);
        else if (job_find(ctx, w->prefix, w->id))   /* Redis went away */
            job_remove(ctx, job_find(ctx, w->prefix, w->id));
        an_work_free(w);
        w = next;
    }
    if (e == SP_OK && now_ms >= ctx->next_poll_ms &&
        (int64_t)ctx->n_jobs < ctx->concurrency) {
        ctx->next_poll_ms = now_ms + ctx->poll_ms;
        e = claim(ctx, wall);
    }
    if (e == SP_OK && ctx->n_jobs && now_ms >= ctx->next_renew_ms) {
        ctx->next_renew_ms = now_ms + SP_MAX(ctx->lease_ms / 3, 1);
        e = renew(ctx, wall);
    }
    if (e == SP_ERR_NOMEM)
        return e;
    return SP_OK;                   /* Redis failures: the next tick */
}

static enum sp_err analyze_flush(struct sp_stage *st, int timeout_ms)
{
    /* Jobs are durable in Redis: nothing buffered here needs pushing out.
     * Acks already queued are applied so that a clean shutdown does not
     * leave them to lease expiry. */
    struct an_ctx *ctx = st->ctx;
    (void)timeout_ms;
    if (sp_redis_ensure(ctx->redis, sp_now_ms()) == SP_OK)
        apply_acks(ctx);
    return SP_OK;
}

static void analyze_close(struct sp_stage *st)
{
    struct an_ctx *ctx = st->ctx;
    an_pool_free(ctx->pool);
    ctx->pool = NULL;
    while (ctx->jobs) {
        struct an_job *j = ctx->jobs;
        ctx->jobs = j->next;
        free(j);
    }
    ctx->n_jobs = 0;
    if (ctx->acks) {
        ctx->acks->dead = true;
        acks_unref(ctx->acks);
        ctx->acks = NULL;
    }
    sp_redis_free(ctx->redis);
    ctx->redis = NULL;
    sp_analysis_prompts_free(ctx->prompts);
    ctx->prompts = NULL;
}

static bool analyze_ready(struct sp_stage *st, char *reason, size_t n)
{
    struct an_ctx *ctx = st->ctx;
    if (ctx->redis && sp_redis_is_up(ctx->redis))
        return true;
    char d[200] = "not connected";
    if (ctx->redis)
        sp_redis_describe(ctx->redis, d, sizeof(d));
    snprintf(reason, n, "analyze: redis %s", d);
    return false;
}

const struct sp_stage_type sp_stage_analyze = {
    .name = "analyze",
    .desc = "Durable, debounced incident analyses (LLM or template) as Redis "
            "jobs run by worker threads; republishes incidents with their "
            "analysis section",
    .keys = analyze_keys,
    .n_keys = SP_ARRAY_SIZE(analyze_keys),
    .ctx_size = sizeof(struct an_ctx),
    .init = analyze_init,
    .process = analyze_process,
    .tick = analyze_tick,
    .flush = analyze_flush,
    .close = analyze_close,
    .ready = analyze_ready,
};

/* ---- public helpers --------------------------------------------------------------- */

enum sp_err sp_analyze_declare(struct sp_config *cfg, struct sp_error *err)
{
    enum sp_err e = sp_config_declare(cfg, sp_analysis_keys,
                                      sp_analysis_n_keys, err);
    return e ? e : sp_config_declare(cfg, sp_llm_keys, sp_llm_n_keys, err);
}

void sp_analyze_set_clock(struct sp_stage *st, int64_t (*now_ms)(void *ud),
                          void *ud)
{
    struct an_ctx *ctx = st->ctx;
    ctx->clock = now_ms;
    ctx->clock_ud = ud;
    ctx->next_poll_ms = 0;
}

void sp_analyze_stats(const struct sp_stage *st, struct sp_analyze_stats *out)
{
    const struct an_ctx *ctx = st->ctx;
    *out = ctx->stats;
    out->in_flight = ctx->n_jobs;
    out->llm_calls = ctx->pool ? an_pool_calls(ctx->pool) : 0;
    out->ready = ctx->pool ? an_pool_ready(ctx->pool) : 0;
}
