/*
 * analyze_int.h - private to the analyze stage (stages/analyze*.c):
 *
 *   analyze.c         stage type, config, process() scheduling, tick()
 *                     (claim, hand over, publish, complete), close
 *   analyze_jobs.c    the Lua scripts and the Redis side of a job (claim,
 *                     read, store, release, complete, renew)
 *   analyze_worker.c  worker threads: the bounded hand-over queues and
 *                     the LLM client loop (sp_llm_poll), or the template
 *   analyze_cli.c     `socpilot analyze ...`
 *
 * The engine thread owns struct an_ctx and every Redis call; workers see
 * only struct an_pool (their queues, under its mutex).
 */
#ifndef SP_ANALYZE_INT_H
#define SP_ANALYZE_INT_H

#include <pthread.h>
#include <stdio.h>

#include "analysis.h"
#include "analyze.h"
#include "correlate_int.h"
#include "llm.h"
#include "redis.h"

#define AN_MAX_WORKERS 16
#define AN_OWNER_MAX 160
#define AN_ID_MAX 80
#define AN_CLAIM_TENANTS_S "100"     /* tenants looked at per poll, about */

/* Content hashes are 64 hex digits.  A template published because the LLM
 * was away records its content hash behind AN_RETRY_MARK (fields ah, anc
 * of the incident), so that a later claim knows to try the LLM again. */
#define AN_HASH_MAX 66
#define AN_RETRY_MARK 'T'
#define AN_RETRY_MARK_S "T"             /* the same, in the scripts */
#define AN_LLM_RETRY_CAP_MS 3600000     /* longest wait between LLM tries */

/* The done script's answers: 1 done, 0 lease lost, and for a marked
 * template, the next LLM try scheduled or the template made final. */
#define AN_DONE_RETRY 2
#define AN_DONE_FINAL 3
#define AN_DONE_REARM 4                 /* not yet: due again at its try */

static inline bool an_hash_is_retry(const char *h)
{
    return h[0] == AN_RETRY_MARK;
}

static inline void an_hash_mark_retry(char out[AN_HASH_MAX], const char *hash)
{
    out[0] = AN_RETRY_MARK;
    snprintf(out + 1, AN_HASH_MAX - 1, "%s", hash);
}

/* A job handed to a worker (in) and back (out).  Strings malloc'd. */
struct an_work {
    char *prefix, *id;
    char *inc;                       /* snapshot JSON (in) */
    size_t inc_len;
    char hash[65];
    char *analysis;                  /* section JSON (out) */
    size_t analysis_len;
    bool template_used;
    bool llm_transient;              /* template because the LLM was away */
    unsigned calls, flags;
    int64_t tokens;
    struct an_work *next;
};

struct an_pool;

/* ---- analyze_worker.c ------------------------------------------------------ */

/* Starts n workers with their own LLM clients (o->enabled false: every
 * job takes the template).  prompts borrowed (may be NULL). */
struct an_pool *an_pool_new(unsigned n, const struct sp_llm_opts *lo,
                            const struct sp_analysis_opts *ao,
                            const struct sp_analysis_prompts *prompts,
                            struct sp_metrics *m, const char *log,
                            struct sp_error *err);
/* Steals w.  Never blocks (the caller bounds what is in flight). */
void an_pool_push(struct an_pool *p, struct an_work *w);
/* Finished work (a list, oldest first; caller frees with an_work_free). */
struct an_work *an_pool_take(struct an_pool *p);
/* Stops the workers (pending LLM calls cancelled, queued work dropped). */
void an_pool_free(struct an_pool *p);
void an_work_free(struct an_work *w);
/* Finished work waiting for an_pool_take. */
size_t an_pool_ready(struct an_pool *p);
/* LLM calls sent so far by every worker. */
uint64_t an_pool_calls(struct an_pool *p);

/* ---- analyze_jobs.c -------------------------------------------------------- */

extern const char an_lua_schedule[];
extern const char an_lua_claim[];
extern const char an_lua_release[];
extern const char an_lua_store[];
extern const char an_lua_done[];
extern const char an_lua_renew[];

/* What a snapshot read returned. */
struct an_snap {
    char *json;                      /* snapshot with the analysis spliced
                                        in (malloc'd), NULL when gone */
    size_t len;
    int64_t version;
    char hash[65];                   /* content hash of the snapshot */
    char ah[AN_HASH_MAX], anc[AN_HASH_MAX]; /* published / stored content
                                        hashes (maybe marked AN_RETRY_MARK) */
    bool has_analysis, merged;
    int64_t llm_next;                /* wall ms of the next LLM try of a
                                        marked template (0 = none) */
};

/* Reads incident `id` (snapshot + analysis fields, one pipelined round)
 * and splices the stored analysis into the snapshot.  SP_ERR_NOTFOUND
 * when the incident is gone; SP_ERR_RETRY for connection failures.  A
 * read whose snapshot is to be published marks it (mark not NULL: see
 * corr_snapshot_append); its ack takes the mark back. */
enum sp_err an_read(struct sp_redis *r, const char *prefix, const char *id,
                    int64_t why_max, size_t snapshot_max,
                    const char *mark, int64_t mark_ttl_ms,
                    struct an_snap *out);
void an_snap_fini(struct an_snap *s);

/* The side hashes the stage keeps per incident, under its tenant prefix
 * "<P>i:<inc>:<side>": "sc" alert id -> compact script analyses (JSON
 * array), "ad" alert id -> the alert's details (JSON object). */
void an_side_key(const char *prefix, const char *inc, const char *side,
                 char *out, size_t n);

/* analyze_side.c: an alert's "scripts" section compacted for its
 * incident (new JSON array), and its details (new JSON object); NULL on
 * failure. */
char *an_compact_scripts(const char *alert_id, const char *json, size_t len,
                         size_t *out_len);
char *an_alert_details(const struct sp_alert *alert, size_t *out_len);

#endif /* SP_ANALYZE_INT_H */
