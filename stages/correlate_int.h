/*
 * correlate_int.h - private to the correlate stage (stages/correlate*.c):
 * the stage context, the grouping rules, the per-alert work item, and the
 * functions the files share.
 *
 *   correlate.c           stage type, config, process(), tick(), readiness
 *   correlate_rules.c     rules, stop-list, per-alert script arguments
 *   correlate_lua.c       the Lua scripts (the Redis side of every rule)
 *   correlate_out.c       snapshot outputs, detached batches, outbox acks
 *                         and recovery
 *   correlate_incident.c  incident snapshot JSON and `explain` text
 *   correlate_asm.c       Defender AlertInfo/AlertEvidence assembly
 *   correlate_tenants.c   the sets of tenants the timer walks
 *   correlate_cli.c       `socpilot incident ...`
 *
 * Redis key layout (P = "<key_prefix>:{t:<tenant>}:", the hash tag keeps
 * a tenant's keys in one cluster slot) is documented in
 * docs/correlation.md and in correlate_lua.c.
 *
 * Engine thread only (one stage instance = one thread at a time).
 */
#ifndef SP_CORRELATE_INT_H
#define SP_CORRELATE_INT_H

#include "alert.h"
#include "json.h"
#include "metrics.h"
#include "redis.h"
#include "sp.h"
#include "stage.h"

#define CORR_MAX_RULES        64
#define CORR_MAX_TYPES        24
#define CORR_MAX_STOPLIST     1024
#define CORR_PREFIX_MAX       600     /* "<prefix>:{t:<tenant>}:" */
#define CORR_MARK_MAX         40      /* a publish's mark: see
                                         corr_snapshot_append */
#define CORR_TENANT_MAX       128     /* tenant bytes before encoding */
#define CORR_ALERT_ARGS       17      /* fixed ARGV of an alert's block */
#define CORR_CALL_ARGS        12      /* ARGV every alert of a call shares */
#define CORR_ACKS_MAX         100000  /* queued outbox/assembly acks */
#define CORR_TENANT_CACHE     256

enum corr_mode { CORR_ANY, CORR_ALL, CORR_SELECTED };

/* Alert fields a rule may require to be equal. */
enum corr_field {
    CORR_F_DETECTOR = 1 << 0,
    CORR_F_TITLE = 1 << 1,
    CORR_F_SOURCE = 1 << 2,
    CORR_F_PROVIDER = 1 << 3,
    CORR_F_CATEGORY = 1 << 4,
    CORR_F_SEVERITY = 1 << 5,
};

enum corr_rule_kind { CORR_RULE_DEFAULT, CORR_RULE_SOURCE, CORR_RULE_DETECTOR };

/* How alerts of one source or detector group (docs/correlation.md). */
struct corr_rule {
    char name[160];                  /* "default", "source:x", "detector:y" */
    enum corr_rule_kind kind;
    const char *match;               /* into name: the source/detector */
    enum corr_mode mode;
    const char *types[CORR_MAX_TYPES];   /* correlating entity types */
    size_t n_types;
    unsigned fields;                 /* enum corr_field bits */
    int64_t window_ms;
    char *types_buf;                 /* owns the type strings */
};

enum corr_flood_key { CORR_FLOOD_DETECTOR, CORR_FLOOD_TITLE,
                      CORR_FLOOD_DETECTOR_TITLE };

/* Counted outcomes; index into ctx->c_result. */
enum corr_result {
    CORR_R_NEW, CORR_R_JOINED, CORR_R_UPDATED, CORR_R_DUP, CORR_R_STALE,
    CORR_R_FLOOD, CORR_R_REJECTED, CORR_R_ROW, CORR_R__COUNT
};

/* Shared between the context and in-flight detached batches, so an
 * on_done that runs after close() finds `dead` instead of freed memory. */
struct corr_acks {
    int refs;
    bool dead;
    /* Queued acks: "P\0id\0version" records for the outbox (kind 'o') and
     * assemblies (kind 'a'), applied to Redis by the next tick/flush. */
    struct corr_ack *items;
    size_t n, cap;
};

struct corr_ack {
    char kind;                       /* 'o' outbox, 'a' assembly */
    char *prefix;                    /* malloc'd P */
    char *id;                        /* incident id or alert id */
    int64_t num;                     /* version or assembly revision */
    int32_t part;                    /* 'o': where the snapshot landed, */
    int64_t off;                     /* or -1 when the sink cannot tell */
    char mark[CORR_MARK_MAX];        /* 'o': the mark it takes back */
};

/* One alert to correlate (or one Defender row to store). */
struct corr_item {
    struct sp_msg *msg;              /* NULL for tick-assembled alerts */
    struct sp_alert *alert;
    struct sp_arena *arena;          /* where results are copied */
    char prefix[CORR_PREFIX_MAX];
    const char *tenant;
    bool row;                        /* Defender part: store, don't correlate */
    int n_stop;                      /* stop-listed entities it carries */
    /* Results. */
    bool done;
    enum sp_err err;                 /* set: reject the alert ... */
    const char *errmsg;
    const char *reason;              /* ... with this DLQ reason (NULL:
                                        "correlate_failed") */
    char status[16];                 /* new joined updated dup stale flood */
    char how[16];
    char inc[80];
    int64_t version;
    bool alone;                      /* its tenant's call failed: run it alone */
    bool asm_register;               /* a row that made asmdue non-empty */
    bool out_register;               /* its call set the tenant's seen anew */
    bool an_register;                /* its call gave the tenant its only
                                        analysis job (<prefix>:tenants:an) */
    bool changed;                    /* it changed its incident (no replay) */
};

/* An incident to publish (deduplicated per process call / tick). */
struct corr_changed {
    char prefix[CORR_PREFIX_MAX];
    char id[80];
    char tenant[CORR_TENANT_MAX * 3 + 1];
    char mark[CORR_MARK_MAX];        /* of its read, once appended */
};

struct corr_vcache;

struct corr_ctx {
    struct sp_stage *st;
    /* Config. */
    char key_prefix[64];
    char default_tenant[CORR_TENANT_MAX + 1];
    struct corr_rule rules[CORR_MAX_RULES];
    size_t n_rules;                  /* rules[0] is the default */
    char **stoplist;
    size_t n_stoplist;
    int64_t max_alerts, max_entities, max_why;
    int64_t noisy_k;
    bool flood_on;
    int64_t flood_n, flood_window_ms;
    enum corr_flood_key flood_key;
    bool close_on_resolved;
    int64_t retention_ms, index_ttl_ms;
    int64_t index_horizon_ms;       /* 2 x the longest window */
    size_t pipeline_max;
    size_t snapshot_max;
    int64_t snapshot_why;
    int64_t outbox_interval_ms, outbox_grace_ms;
    size_t outbox_batch;
    int64_t settle_ms, max_wait_ms, lease_ms, poll_ms;
    size_t asm_max_rows, asm_max_bytes, asm_poll_bytes, asm_batch;

    /* Redis. */
    struct sp_redis *redis;
    struct sp_redis_script s_correlate, s_ack, s_status, s_sweep,
        s_asm_add, s_asm_take, s_asm_done;
    uint64_t connects_seen;          /* to notice reconnects */
    uint64_t calls_seq;              /* pipelines of correlate calls sent */
    uint64_t token_id;               /* random: this stage's pipelines apart */
    uint64_t redirects_seen;         /* MOVED/ASK replies counted so far */
    int64_t redirect_ms;             /* when the last one was noticed */
    uint64_t tenant_cache[CORR_TENANT_CACHE];

    /* Work memory, reset per process()/tick. */
    struct sp_arena work;
    struct sp_buf json;              /* snapshot/alert serialisation */
    struct corr_vcache *vcache;      /* snapshot memo (NULL: off) */
    struct corr_item *items;
    size_t cap_items;
    struct corr_changed *changed;
    size_t n_changed, cap_changed;
    /* Snapshots owed (correlate.snapshot_defer): the incidents the last
     * batch changed, read at the head of the next batch's pipeline. */
    struct corr_changed *owed;
    size_t n_owed, cap_owed;
    size_t owed_sent;                /* owed[0..owed_sent) are being read */
    int64_t owed_ms;                 /* monotonic ms they became owed */
    bool defer;

    struct corr_acks *acks;
    int64_t next_outbox_ms, next_asm_ms, next_mem_ms;
    int may_evict;                   /* last sp_redis_memory() answer */
    bool mem_high;                   /* over CORR_MEM_HIGH of maxmemory */
    char scan_cursor[32];            /* SSCAN cursor over tenants */
    char asm_cursor[32];             /* SSCAN cursor over tenants:asm */

    /* Metrics. */
    struct sp_counter *c_result[CORR_R__COUNT];
    struct sp_counter *c_how_entity, *c_how_provider, *c_how_group,
        *c_how_continuation, *c_how_after_closed;
    struct sp_counter *c_merges, *c_merge_skips, *c_noisy_auto,
        *c_noisy_stop, *c_noisy_detected, *c_published, *c_recovered,
        *c_out_of_order, *c_an_scheduled,
        *c_assembled, *c_published_alerts, *c_asm_dropped, *c_round_trips,
        *c_redis_errors, *c_publish_errors;
    struct sp_gauge *g_redis_up;
    struct sp_gauge *g_redis_may_evict, *g_redis_used, *g_redis_max;
    struct sp_counter *c_memo_hits, *c_memo_misses, *c_memo_drops;
    struct sp_gauge *g_memo_bytes;
    uint64_t memo_hits, memo_misses, memo_drops;    /* as last counted */
    struct sp_hist *h_redis;
};

/* ---- correlate_rules.c ---------------------------------------------------- */

/* Reads every correlate.* key into ctx (rules, stop-list...).  Returns
 * SP_ERR_CONFIG with err naming the key on a bad value. */
enum sp_err corr_config_load(struct corr_ctx *ctx, const struct sp_config *cfg,
                             struct sp_error *err);
void corr_config_free(struct corr_ctx *ctx);
/* The rule that applies to an alert (detector, then source, then default). */
const struct corr_rule *corr_rule_for(const struct corr_ctx *ctx,
                                      const struct sp_alert *alert);
/* "<key_prefix>:{t:<encoded tenant>}:" into out (CORR_PREFIX_MAX). */
void corr_prefix(const char *key_prefix, const char *tenant, char *out,
                 size_t n);
/* The tenant an alert belongs to (default_tenant when it has none). */
const char *corr_tenant(const struct corr_ctx *ctx,
                        const struct sp_alert *alert);
/* Event time of an alert in ms (first activity, created, updated, now).
 * A time more than CORR_MAX_FUTURE_MS ahead of this host's clock (skew, or
 * made up: alert content is attacker-controlled) is taken as now, so that
 * one alert cannot age every entity's index entry out at once. */
#define CORR_MAX_FUTURE_MS (3600LL * 1000)
int64_t corr_alert_time_ms(const struct sp_alert *alert);
/* Builds the correlate script's argv for item (allocated in ctx->work):
 * the 3 reserved EVALSHA slots, KEYS[1] (the caller fills it: one key
 * per call), P, then the alert's block.  Returns argc, 0 when the alert
 * itself cannot be sent (too large: item->err set, see
 * corr_reject_too_large), or -1 when out of memory. */
int corr_build_args(struct corr_ctx *ctx, struct corr_item *item,
                    const char ***argv, size_t **lens);
/* Empties ctx->json and reserves its maximum, so that a write into it
 * fails only for size (SP_ERR_LIMIT: the item is too large), never for
 * memory.  SP_ERR_NOMEM when the reservation fails. */
enum sp_err corr_json_begin(struct corr_ctx *ctx);
/* Marks item rejected (reason too_large) because what (an alert's summary,
 * a Defender row) does not fit in ctx->json; returns 0, the argc of an
 * item not sent. */
int corr_reject_too_large(struct corr_ctx *ctx, struct corr_item *item,
                          const char *what);
/* The settings a call's alerts share: CORR_CALL_ARGS into argv/lens.
 * Returns how many, or -1. */
int corr_call_header(struct corr_ctx *ctx, const struct corr_item *item,
                     int64_t now_ms, const char **argv, size_t *lens);
/* 64-bit FNV-1a, for namespaces and content hashes. */
uint64_t corr_hash(uint64_t h, const void *p, size_t n);
#define CORR_HASH_INIT 0xcbf29ce484222325ULL
bool corr_stoplisted(const struct corr_ctx *ctx, const char *key);

/* ---- correlate_lua.c ------------------------------------------------------ */

extern const char corr_lua_correlate[];
/* Bits of the correlate call's last reply item: the tenants it gave work
 * to after an idle spell, to add to their sets again after the reply. */
#define CORR_REG_SEEN 1                 /* seen was gone: <prefix>:tenants */
#define CORR_REG_AN 2                   /* first analysis job: :tenants:an */
extern const char corr_lua_ack[];
/* From an `ack` reply ({removed, queued again}): how many acks found an
 * incident's last record older than a version already landed (0 for any
 * other reply).  Correlate's and analyze's acks count them alike. */
uint64_t corr_ack_late(const redisReply *rep);
extern const char corr_lua_sweep[];
extern const char corr_lua_status[];
extern const char corr_lua_asm_add[];
extern const char corr_lua_asm_take[];
extern const char corr_lua_asm_done[];

/* ---- correlate.c ---------------------------------------------------------- */

/* Runs the correlate script for items[0..n) (pipelined, in chunks of
 * pipeline_max) and fills their results and ctx->changed.  Nothing in a
 * message is modified.  SP_ERR_RETRY when Redis is away (the caller
 * repeats the whole call later: the scripts are idempotent). */
enum sp_err corr_run(struct corr_ctx *ctx, struct corr_item *items, size_t n);
/* Adds incident (prefix, id) to a list of incidents to publish (*n of
 * *cap), once. */
enum sp_err corr_list_add(struct corr_changed **list, size_t *n,
                          size_t *cap, const char *prefix, const char *tenant,
                          const char *id);
/* Records incident (prefix, id) for publishing; deduplicated. */
enum sp_err corr_changed_add(struct corr_ctx *ctx, const char *prefix,
                             const char *tenant, const char *id);
/* Counts a Redis failure and logs it (rate-limited). */
void corr_redis_failed(struct corr_ctx *ctx, enum sp_err e, const char *what);

/* ---- correlate_out.c ------------------------------------------------------ */

/* A detached batch whose on_done queues the acks registered with
 * corr_out_expect(). */
struct corr_out;
struct corr_out *corr_out_new(struct corr_ctx *ctx);
/* Fetches snapshots of ctx->changed (one pipelined round) and produces
 * them into out.  SP_ERR_RETRY when Redis failed (nothing produced). */
enum sp_err corr_out_snapshots(struct corr_ctx *ctx, struct corr_out *out);
/* Moves ctx->changed into the owed snapshots (deduplicated). */
enum sp_err corr_owed_add(struct corr_ctx *ctx);
/* Appends the reads of the owed snapshots to the pipeline; false when
 * there are none, too many for one pipeline (publish them first), or
 * appending failed (the connection was dropped). */
bool corr_owed_send(struct corr_ctx *ctx);
/* Reads what corr_owed_send sent and publishes it (a read Redis refuses
 * is left to the outbox).  Fails only when the connection is lost: what
 * was not read then stays owed. */
enum sp_err corr_owed_take(struct corr_ctx *ctx);
/* Reads and publishes every owed snapshot now (an error: the connection
 * was lost, the rest stays owed). */
enum sp_err corr_owed_publish(struct corr_ctx *ctx);
#define CORR_OWED_WAIT_MS 100
/* Produces an alert (the assembled Defender alert) to the alerts topic. */
enum sp_err corr_out_alert(struct corr_ctx *ctx, struct corr_out *out,
                           const struct sp_alert *alert);
/* Registers an assembly ack for on_done. */
enum sp_err corr_out_expect_asm(struct corr_out *out, const char *prefix,
                                const char *alert_id, int64_t rev);
/* Seals the batch (on_done may run now, even inside this call) or frees
 * it when nothing was produced.  Returns how many outputs it carries. */
size_t corr_out_seal(struct corr_ctx *ctx, struct corr_out *out);
/* Drops an unsealed batch (a failed tick): outputs already produced
 * stay produced, no ack is queued (recovery publishes again). */
void corr_out_abandon(struct corr_ctx *ctx, struct corr_out *out);
/* Applies queued acks to Redis (one pipelined round). */
enum sp_err corr_out_flush_acks(struct corr_ctx *ctx);
/* Republishes incidents whose outbox entry is older than the grace
 * period (crashed instance, lost ack); bounded per call. */
enum sp_err corr_out_recover(struct corr_ctx *ctx, int64_t wall_ms);
struct corr_acks *corr_acks_new(void);
void corr_acks_release(struct corr_acks *acks);

/* ---- correlate_cli.c ------------------------------------------------------ */

/* The key prefix of incident id into prefix ("<key_prefix>:{t:<tenant>}:"):
 * checked with EXISTS when the tenant is given, else found by SCAN (every
 * master of a cluster), taking only keys that are exactly an incident's.
 * 1 found, 0 not found, -1 Redis error, -2 the id is in several tenants
 * (the caller asks for --tenant). */
int corr_find_incident(struct sp_redis *r, const char *key_prefix,
                       const char *tenant, const char *id, char *prefix,
                       size_t n);
/* What a corr_find_incident result other than 1 means (static string). */
const char *corr_find_error(int found);

/* ---- correlate_incident.c ------------------------------------------------- */

/* Reading an incident atomically: MULTI, HGETALL meta, HGETALL alerts,
 * LRANGE why (the last why_max entries; < 0 = all), EXEC.  Plain commands
 * in a transaction rather than a script: large replies then skip the
 * Lua conversion both ways.
 * A read whose snapshot is to be published first marks it (mark not
 * NULL: ZADD P.."pub:"..id <wall ms> mark, the set kept mark_ttl_ms): a
 * publish in flight, until its ack takes the mark back, so that an ack
 * of a newer version keeps the outbox entry while an older version read
 * before it may still land after it (see corr_lua_ack).  Marks are
 * unique (corr_mark_new), so taking one back twice is harmless.
 * CORR_SNAPSHOT_REPLIES counts the replies of a marked read; an unmarked
 * one has CORR_SNAPSHOT_MARKS fewer. */
#define CORR_SNAPSHOT_MARKS 2
#define CORR_SNAPSHOT_REPLIES (5 + CORR_SNAPSHOT_MARKS)
enum sp_err corr_snapshot_append(struct sp_redis *r, const char *prefix,
                                 const char *id, int64_t why_max,
                                 const char *mark, int64_t mark_ttl_ms);
/* A new mark into out (CORR_MARK_MAX bytes); any thread. */
void corr_mark_new(char *out);
/* How long a mark is kept: twice the outbox grace, after which acks write
 * marks off; 0 (no marks) when the grace is 0. */
static inline int64_t corr_mark_ttl(int64_t grace_ms)
{
    return grace_ms > 0 ? SP_MAX(2 * grace_ms, (int64_t)1000) : 0;
}
/* Reads the replies of one corr_snapshot_append() (marked: with a mark
 * there); *out is the EXEC reply {meta, alerts, why} (new reference).
 * Connection failures fail the call; an error reply of the read returns
 * its mapped code (and *out NULL); one of the mark is ignored. */
enum sp_err corr_snapshot_read(struct sp_redis *r, bool marked,
                               redisReply **out);

/* What snapshots parsed and wrote, per distinct summary or decision:
 * max_bytes of it at most (0: none kept).  One thread at a time. */
struct corr_vcache;
struct corr_vcache *corr_vcache_new(size_t max_bytes);
void corr_vcache_free(struct corr_vcache *vc);
void corr_vcache_stats(const struct corr_vcache *vc, uint64_t *hits,
                       uint64_t *misses, uint64_t *drops, size_t *bytes);
/* The smallest correlate.snapshot_max: every incident's snapshot fits in
 * it, cut to its minimal form when nothing more does. */
#define CORR_SNAPSHOT_MIN 16384
/* Writes the incident snapshot JSON for a corr_snapshot_read() reply
 * (meta, alerts, why) into out, bounded by max_bytes (long strings,
 * alerts, entities and why are cut, and "truncated" set, when needed; it
 * always fits when max_bytes >= CORR_SNAPSHOT_MIN).  *version gets the
 * snapshot's version.  vc (may be NULL) remembers parsed values between
 * calls.  SP_ERR_NOTFOUND for an empty reply. */
enum sp_err corr_incident_write(const redisReply *rep, const char *id,
                                struct sp_buf *out, size_t max_bytes,
                                int64_t *version, struct corr_vcache *vc);
/* Human explanation of an incident for `socpilot incident explain`.
 * noisy (may be NULL): the tenant's noisy-entity hash reply. */
enum sp_err corr_incident_explain(const redisReply *rep, const char *id,
                                  const redisReply *noisy, struct sp_buf *out);

/* ---- correlate_asm.c ------------------------------------------------------ */

/* Serialises a Defender row for storage in Redis (into ctx->work);
 * *norm_len: the length of its leading part without the record's own
 * bytes (what the row says).  SP_ERR_LIMIT when it is larger than
 * ctx->json holds. */
enum sp_err corr_asm_row(struct corr_ctx *ctx, const struct sp_alert *alert,
                         const char **field, const char **value,
                         size_t *vlen, size_t *norm_len);
/* Builds the asm_add argv for a row item (3 reserved slots); returns argc,
 * 0 when the row is too large (item->err set), or -1 when out of
 * memory. */
int corr_asm_args(struct corr_ctx *ctx, struct corr_item *item,
                  int64_t now_ms, const char ***argv, size_t **lens);
/* Takes due assemblies, correlates and emits them, for the next tenants
 * of <prefix>:tenants:asm (a bounded SSCAN step), and drops the tenants
 * left without any.  Called from tick. */
enum sp_err corr_asm_tick(struct corr_ctx *ctx, int64_t wall_ms);

/* ---- correlate_tenants.c -------------------------------------------------- */

/* The sets of tenants the timers walk, "<key_prefix>:tenants[:asm|:an]":
 * outbox recovery, Defender assemblies, analysis jobs (stages/analyze.c). */
enum corr_set { CORR_SET_OUT, CORR_SET_ASM, CORR_SET_AN, CORR_SETS };
void corr_set_key(const char *key_prefix, enum corr_set set, char *out,
                  size_t n);

/* A tenant as read from one of the sets, with its key prefix P. */
struct corr_tenant {
    char tenant[CORR_TENANT_MAX * 3 + 1];
    char prefix[CORR_PREFIX_MAX];
};

/* Keys that keep a tenant in a set, at most. */
#define CORR_TENANT_KEYS_MAX 4

/* Drops the tenants of tn marked in sel from setkey, except (moved back)
 * those that have one of the keys P..keys[k] by then; they wait in the
 * set's limbo meanwhile.  Plain commands on redis (borrowed; no reply
 * may be pending).  sel is overwritten. */
enum sp_err corr_tenants_forget(struct sp_redis *redis, const char *setkey,
                                const char *const *keys, size_t n_keys,
                                const struct corr_tenant *tn, bool *sel,
                                size_t nt);
/* One step of a walk of setkey (outbox recovery, the Defender poll, the
 * analyze stage's claim): up to 100 tenants a dead walker left in limbo
 * settled first (back to the set with work, else out), then one SSCAN step from cursor (advanced in
 * place; COUNT hint count), at most max tenants.  *tnp: a new array
 * (free()) of *np tenants with their prefixes; a name no tenant can have
 * is left empty, to be skipped (and so never dropped). */
enum sp_err corr_tenants_step(struct sp_redis *redis, const char *key_prefix,
                              const char *setkey, const char *const *keys,
                              size_t n_keys, char *cursor, size_t cursor_n,
                              const char *count, size_t max,
                              struct corr_tenant **tnp, size_t *np);
/* Adds the tenants of rows that made their asmdue non-empty to
 * <prefix>:tenants:asm again, those of calls that set their seen anew to
 * <prefix>:tenants, and those of calls that gave them their only
 * analysis job to <prefix>:tenants:an (after corr_run's scripts
 * answered). */
enum sp_err corr_tenants_register(struct corr_ctx *ctx,
                                  const struct corr_item *items, size_t n);

#endif /* SP_CORRELATE_INT_H */
