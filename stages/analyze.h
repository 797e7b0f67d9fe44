/*
 * analyze.h - the analyze stage: incident analyses (stages/analysis.h) as
 * durable, debounced jobs in Redis, run by worker threads so that the hot
 * path never waits on an LLM.
 *
 *   change ──► schedule (HSETNX first-pending, ZADD due) ─┐   same atomic
 *                                                         │   step as the
 *   tick: claim script (due -> leased, expired leases     ▼   change
 *         back to due, too many attempts -> dead letter)
 *   engine thread: read snapshot, content hash: unchanged -> cache hit
 *   worker thread: sp_analysis_job + sp_llm (or the template)
 *   engine thread: store script (analysis + version bump) -> snapshot ->
 *         detached batch -> on_done -> done script (lease released,
 *         content hash recorded)
 *
 * Redis keys, P = "<correlate.key_prefix>:{t:<tenant>}:" (correlate's tag
 * and prefix, built with corr_prefix):
 *   P an:due     zset  incident -> due wall ms
 *   P an:first   hash  incident -> wall ms of the first pending change
 *   P an:lease   zset  incident -> lease expiry wall ms
 *   P an:owner   hash  incident -> instance holding the lease
 *   P an:att     hash  incident -> claims without completion
 *   P an:dead    list  dead letters (JSON), newest first, bounded
 *   P i:<inc>    correlate's incident hash; fields written here: an (the
 *                analysis JSON), anc (its content hash), ah (content hash
 *                of the last analysis published), asv (last version
 *                scheduled from the stage), v (version, HINCRBY), up
 *   <correlate.key_prefix>:tenants:an   set of tenants with analysis jobs
 *                (P an:due or P an:lease), walked by the claim, which
 *                drops the tenants without any through its limbo
 *                {<prefix>:tenants:an}:limbo (no tenant tag: plain
 *                commands, see stages/correlate_tenants.c)
 *
 * Threads: stage callbacks on the engine thread; workers own their LLM
 * clients.  See stages/analyze_int.h for the split into files.
 */
#ifndef SP_ANALYZE_H
#define SP_ANALYZE_H

#include <stdint.h>

#include "config.h"
#include "stage.h"

extern const struct sp_stage_type sp_stage_analyze;

/*
 * SP_ANALYZE_LUA_SCHEDULE - Lua source defining
 *
 *     due, idle = sp_analyze_schedule(P, inc, now, quiet, max_delay)
 *
 * to be appended to a script that changes incident `inc` of the tenant
 * whose key prefix is P (the same P as correlate's keys, hash tag
 * included), and called once per changed incident in the same script:
 *   P          string, "<prefix>:{t:<tenant>}:"
 *   inc        string, incident id
 *   now        number, wall ms of the change
 *   quiet      number, ms (analyze.quiet); 0 or less = analysis off: no-op
 *   max_delay  number, ms (analyze.max_delay)
 * It touches P.."an:first" (HSETNX inc now) and P.."an:due" (ZADD inc
 * min(now + quiet, first + max_delay)), both in P's slot, and returns the
 * due time, and `idle`: true when the tenant had no analysis work before
 * (P.."an:due" and P.."an:lease" both empty), so that the claim's walk
 * may have dropped it from <prefix>:tenants:an; the caller then adds it
 * again (SADD) after the script's reply, even if it remembers having
 * added it (stages/correlate_tenants.c says why that order).  Looking
 * costs nothing while the incident has a pending change (ZADD adds no
 * member), else a ZCARD (and an EXISTS when the job is the only one) at
 * most once per script and tenant.  The calling
 * script's KEYS[1] must be a key under P (cluster routing).  Standalone
 * use: the stage's own `schedule` script.
 */
#define SP_ANALYZE_LUA_SCHEDULE                                              \
    "local sp_analyze_schedule\n"                                            \
    "do\n"                                                                   \
    "  local busy = {}   -- P -> true: known to have work in this script\n"  \
    "  sp_analyze_schedule = function(P, inc, now, quiet, maxd)\n"           \
    "    if quiet == nil or quiet <= 0 then return 0, false end\n"           \
    "    local first = now\n"                                                \
    "    if redis.call('HSETNX', P .. 'an:first', inc,\n"                    \
    "        string.format('%d', now)) == 0 then\n"                          \
    "      first = tonumber(redis.call('HGET', P .. 'an:first', inc)) or now\n" \
    "    end\n"                                                              \
    "    local due = math.min(now + quiet, first + maxd)\n"                  \
    "    local idle = false\n"                                               \
    "    if redis.call('ZADD', P .. 'an:due', string.format('%d', due),\n"   \
    "        inc) == 1 and not busy[P] then\n"                               \
    "      idle = redis.call('ZCARD', P .. 'an:due') == 1 and\n"             \
    "        redis.call('EXISTS', P .. 'an:lease') == 0\n"                   \
    "    end\n"                                                              \
    "    busy[P] = true\n"                                                   \
    "    return due, idle\n"                                                 \
    "  end\n"                                                                \
    "end\n"

struct sp_redis;
struct sp_alert;
/* Appends to r's pipeline what the stage writes for each alert passing
 * it, for an alert that does not (the Defender alerts correlate
 * assembles and produces itself): its compact script analyses and its
 * details in incident inc's side hashes under prefix (HSET and EXPIRE
 * ttl_s each).  Returns the commands appended, whose replies the caller
 * reads, or -1 (out of memory, or r refused one: what was appended is
 * still owed a read, *appended says how many). */
int sp_analyze_append_sides(struct sp_redis *r, const char *prefix,
                            const char *inc, const struct sp_alert *alert,
                            int64_t ttl_s, int *appended);

/* Declares the analysis.* and llm.* keys the stage reads (the stage type's
 * table holds analyze.* only; correlate's table declares redis.* and
 * correlate.*).  Call once per config next to the stage types' keys. */
enum sp_err sp_analyze_declare(struct sp_config *cfg, struct sp_error *err);

/* Test hook: the wall clock (ms since the epoch) used for due times,
 * leases and scheduling; NULL restores the real clock.  Engine thread. */
void sp_analyze_set_clock(struct sp_stage *st, int64_t (*now_ms)(void *ud),
                          void *ud);

/* Counters of one instance (for tests and benches; engine thread). */
struct sp_analyze_stats {
    uint64_t scheduled, claimed, llm_jobs, template_jobs, cache_hits,
        published, completed, failures, dead_letters, takeovers,
        reused, lost_leases, skipped_policy, llm_calls, in_flight;
    uint64_t llm_retries;       /* LLM tries scheduled after a template */
    uint64_t llm_gave_up;       /* templates made final (retries spent) */
    uint64_t reclaimed;         /* own jobs leased again while held */
    uint64_t claim_rounds;      /* polls that walked the tenant registry */
    uint64_t claim_calls;       /* claim scripts run (one per tenant seen) */
    uint64_t stale_results;     /* worker results dropped as stale */
    uint64_t ready;             /* analyses finished, not yet stored */
};
void sp_analyze_stats(const struct sp_stage *st, struct sp_analyze_stats *out);

/* `socpilot analyze ...` (stages/analyze_cli.c). */
int sp_cmd_analyze(int argc, char **argv);

#endif /* SP_ANALYZE_H */
