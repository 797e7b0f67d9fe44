/*
 * analyze_jobs.c - the Redis side of analysis jobs: the Lua scripts that
 * move a job between its states, and the atomic read of an incident with
 * its stored analysis.
 *
 *   (change) --schedule--> due --claim--> leased --store--> (republished)
 *                           ^               |  \--done--> (gone; ah set)
 *                           +--release------+
 *                           +--claim: lease expired (crashed owner)
 *   claim: claims > analyze.max_attempts --> dead letter list
 *
 * Every script touches keys of one tenant only, all under correlate's
 * P = "<prefix>:{t:<tenant>}:" (one Redis Cluster slot); KEYS[1] is one of
 * them and is checked against P.  Numbers travel as the strings they came
 * in as or are formatted once with %d (Lua's %.14g would round).
 *
 * Any thread: constant data and functions over their arguments (the
 * connection is used by its owner, the engine thread or the CLI).
 */
#include "analyze_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AN_STR_(x) #x
#define AN_STR(x) AN_STR_(x)

#define AN_CHECK_P                                                           \
    "local P = ARGV[1]\n"                                                    \
    "if P == nil or string.sub(KEYS[1], 1, #P) ~= P then\n"                  \
    "  return redis.error_reply('ERR socpilot: bad analyze arguments')\n"    \
    "end\n"

/*
 * schedule: KEYS[1] = P.."an:due"; ARGV = P, incident, wall ms, quiet ms,
 * max delay ms, incident version (0 = unknown).  A version already
 * scheduled (field asv of the incident) is not scheduled again, so
 * replayed duplicates do not push the due time.  Returns {due time (0 =
 * not scheduled), 1 when the caller adds the tenant to
 * <prefix>:tenants:an again after this reply, else 0}: the tenant had no
 * job before, or the version was scheduled already (a replay, maybe of a
 * batch whose instance scheduled it and died before that SADD, while the
 * caller's registration cache predates the claim's drop of the tenant).
 */
const char an_lua_schedule[] =
SP_ANALYZE_LUA_SCHEDULE
AN_CHECK_P
"local inc = ARGV[2]\n"
"local ver = tonumber(ARGV[6]) or 0\n"
"local ik = P .. 'i:' .. inc\n"
"if ver > 0 then\n"
"  local s = tonumber(redis.call('HGET', ik, 'asv')) or 0\n"
"  if s >= ver then return {0, 1} end\n"
"  if redis.call('EXISTS', ik) == 1 then redis.call('HSET', ik, 'asv', ARGV[6]) end\n"
"end\n"
"local due, idle = sp_analyze_schedule(P, inc, tonumber(ARGV[3]),\n"
"  tonumber(ARGV[4]), tonumber(ARGV[5]))\n"
"return {due, idle and 1 or 0}\n";

/*
 * claim: KEYS[1] = P.."an:due"; ARGV = P, wall ms, lease ms, limit,
 * max attempts, owner, dead-letter list size.
 *  1. leases that expired go back to due (now): their owner crashed or
 *     lost Redis; the attempt they used stays counted;
 *  2. due jobs (score <= now) not leased by anybody are leased to owner,
 *     their first-pending mark is cleared (a change from now on starts a
 *     new debounce span), and their attempts counted; a job past max
 *     attempts goes to the dead-letter list instead.
 * Returns {{claimed ids}, {dead ids}, expired leases, work}: work is how
 * many of due and lease exist afterwards (0: the tenant has no job left,
 * not even one due later, and may leave <prefix>:tenants:an).
 */
const char an_lua_claim[] =
AN_CHECK_P
"local nowS = ARGV[2]\n"
"local now = tonumber(nowS)\n"
"local lease = tonumber(ARGV[3])\n"
"local lim = tonumber(ARGV[4])\n"
"local maxatt = tonumber(ARGV[5])\n"
"local owner = ARGV[6]\n"
"local deadmax = tonumber(ARGV[7])\n"
"if now == nil or lease == nil or lim == nil or maxatt == nil then\n"
"  return redis.error_reply('ERR socpilot: bad claim arguments')\n"
"end\n"
"local DUE, LEASE, OWN = KEYS[1], P .. 'an:lease', P .. 'an:owner'\n"
"local ATT, FIRST, DEAD = P .. 'an:att', P .. 'an:first', P .. 'an:dead'\n"
"local expired = 0\n"
"for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASE, '-inf', nowS,\n"
"    'LIMIT', 0, 200)) do\n"
"  redis.call('ZREM', LEASE, id)\n"
"  redis.call('HDEL', OWN, id)\n"
"  local cur = redis.call('ZSCORE', DUE, id)\n"
"  if not cur or tonumber(cur) > now then redis.call('ZADD', DUE, nowS, id) end\n"
"  expired = expired + 1\n"
"end\n"
"local out, dead = {}, {}\n"
"if lim <= 0 then\n"
"  return {out, dead, expired, redis.call('EXISTS', DUE, LEASE)}\n"
"end\n"
"local untilS = string.format('%d', now + lease)\n"
"for _, id in ipairs(redis.call('ZRANGEBYSCORE', DUE, '-inf', nowS,\n"
"    'LIMIT', 0, lim * 4 + 16)) do\n"
"  if #out >= lim then break end\n"
"  if not redis.call('ZSCORE', LEASE, id) then\n"
"    redis.call('ZREM', DUE, id)\n"
"    redis.call('HDEL', FIRST, id)\n"
"    local a = redis.call('HINCRBY', ATT, id, 1)\n"
"    if a > maxatt then\n"
"      redis.call('HDEL', ATT, id)\n"
"      redis.call('LPUSH', DEAD, cjson.encode({incident = id,\n"
"        attempts = a - 1, time = now, reason = 'max_attempts'}))\n"
"      redis.call('LTRIM', DEAD, 0, deadmax - 1)\n"
"      dead[#dead + 1] = id\n"
"    else\n"
"      redis.call('ZADD', LEASE, untilS, id)\n"
"      redis.call('HSET', OWN, id, owner)\n"
"      out[#out + 1] = id\n"
"    end\n"
"  end\n"
"end\n"
"return {out, dead, expired, redis.call('EXISTS', DUE, LEASE)}\n";

/*
 * release: KEYS[1] = P.."an:lease"; ARGV = P, incident, owner, retry at
 * (wall ms).  A job that failed goes back to due at `retry at` (or
 * earlier when a change made it due sooner), if owner still holds it.
 * Returns 1, or 0 when the lease was lost.
 */
const char an_lua_release[] =
AN_CHECK_P
"local id = ARGV[2]\n"
"if redis.call('HGET', P .. 'an:owner', id) ~= ARGV[3] then return 0 end\n"
"redis.call('ZREM', KEYS[1], id)\n"
"redis.call('HDEL', P .. 'an:owner', id)\n"
"local cur = redis.call('ZSCORE', P .. 'an:due', id)\n"
"if not cur or tonumber(cur) > tonumber(ARGV[4]) then\n"
"  redis.call('ZADD', P .. 'an:due', ARGV[4], id)\n"
"end\n"
"return 1\n";

/*
 * store: KEYS[1] = P.."i:"..incident; ARGV = P, incident, analysis JSON,
 * content hash, wall ms, owner, the stored hash (anc) the job saw when it
 * started ("" = none).  Adds the analysis to the incident and bumps its
 * version with HINCRBY on correlate's `v` field: scripts run one at a
 * time, so versions stay strictly increasing together with correlation's
 * own bumps.  Returns {code, version}: 1 stored, 2 the same content was
 * stored already (a re-run after a crash: no new version), 0 incident
 * gone, -1 lease lost (another instance took the job over), -3 another
 * claim stored an analysis since the job started (an instance's own
 * expired lease, taken over and given back: owner alone cannot tell), so
 * this result is stale and the job starts again from what is there.
 */
const char an_lua_store[] =
AN_CHECK_P
"local id, ik = ARGV[2], KEYS[1]\n"
"if redis.call('HGET', P .. 'an:owner', id) ~= ARGV[6] then return {-1, 0} end\n"
"if redis.call('EXISTS', ik) == 0 then return {0, 0} end\n"
"if ARGV[7] and (redis.call('HGET', ik, 'anc') or '') ~= ARGV[7] then\n"
"  return {-3, 0}\n"
"end\n"
"if redis.call('HGET', ik, 'anc') == ARGV[4] and\n"
"   redis.call('HEXISTS', ik, 'an') == 1 then\n"
"  return {2, tonumber(redis.call('HGET', ik, 'v')) or 0}\n"
"end\n"
"local v = redis.call('HINCRBY', ik, 'v', 1)\n"
"redis.call('HSET', ik, 'an', ARGV[3], 'anc', ARGV[4], 'up', ARGV[5],\n"
"  'asv', string.format('%d', v))\n"
"redis.call('HDEL', ik, 'alr', 'alt')\n"
"return {1, v}\n";

/*
 * done: KEYS[1] = P.."an:lease"; ARGV = P, incident, owner, content hash
 * ("" = none), and for a hash marked AN_RETRY_MARK (a template published
 * while the LLM was away): wall ms, first retry delay ms, retries, longest
 * delay ms.  The snapshot carrying the analysis of that content was
 * acknowledged (or there was nothing to do): records the hash (ah) so the
 * same content is never analysed again, and ends the job if owner holds
 * it.  A change that arrived meanwhile left the job in due: it runs again.
 * A marked hash counts a retry of its content (field alr, cleared by
 * store) and makes the job due again after the delay, doubled per retry
 * (field alt: when); past the retries, the plain hash is recorded: the
 * template is final.  ARGV[9] = "rearm": the job was claimed before its
 * next try (alt): it only becomes due at alt again, counting nothing.
 * ARGV[10] (optional): the stored hash (anc) the job saw when it started;
 * another one there now means another claim stored since, and nothing is
 * done (-3, as for store).
 * Returns 1, 0 when owner lost the lease, or AN_DONE_RETRY, AN_DONE_FINAL,
 * AN_DONE_REARM.
 */
const char an_lua_done[] =
AN_CHECK_P
"local id = ARGV[2]\n"
"local ik = P .. 'i:' .. id\n"
"local own = redis.call('HGET', P .. 'an:owner', id) == ARGV[3]\n"
"if ARGV[10] and (redis.call('HGET', ik, 'anc') or '') ~= ARGV[10] then\n"
"  return -3\n"
"end\n"
"if ARGV[9] == 'rearm' then\n"
"  -- Claimed before its next LLM try (a change that left the content as\n"
"  -- it was): due again at that try, which counts nothing.\n"
"  if not own then return 0 end\n"
"  local alt = tonumber(redis.call('HGET', ik, 'alt') or '')\n"
"  if alt then\n"
"    local cur = redis.call('ZSCORE', P .. 'an:due', id)\n"
"    if not cur or tonumber(cur) > alt then\n"
"      redis.call('ZADD', P .. 'an:due', string.format('%d', alt), id)\n"
"    end\n"
"  end\n"
"  redis.call('ZREM', KEYS[1], id)\n"
"  redis.call('HDEL', P .. 'an:owner', id)\n"
"  redis.call('HDEL', P .. 'an:att', id)\n"
"  return " AN_STR(AN_DONE_REARM) "\n"
"end\n"
"local h, r = ARGV[4], 1\n"
"if h ~= '' and redis.call('EXISTS', ik) == 1 then\n"
"  local now, base = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
"  local max, cap = tonumber(ARGV[7]), tonumber(ARGV[8])\n"
"  if now and base and max and cap and own then\n"
"    local n = redis.call('HINCRBY', ik, 'alr', 1)\n"
"    if n > max then\n"
"      h = string.sub(h, 2)\n"
"      redis.call('HDEL', ik, 'alr', 'alt')\n"
"      r = " AN_STR(AN_DONE_FINAL) "\n"
"    else\n"
"      local at = now + math.min(base * 2 ^ (n - 1), cap)\n"
"      redis.call('HSET', ik, 'alt', string.format('%d', at))\n"
"      local cur = redis.call('ZSCORE', P .. 'an:due', id)\n"
"      if not cur or tonumber(cur) > at then\n"
"        redis.call('ZADD', P .. 'an:due', string.format('%d', at), id)\n"
"      end\n"
"      r = " AN_STR(AN_DONE_RETRY) "\n"
"    end\n"
"  end\n"
"  -- A marked hash from an owner that lost the job would undo what the\n"
"  -- new owner published (an LLM answer for the same content).\n"
"  if own or string.sub(h, 1, 1) ~= '" AN_RETRY_MARK_S "' then\n"
"    redis.call('HSET', ik, 'ah', h)\n"
"  end\n"
"end\n"
"if not own then return 0 end\n"
"redis.call('ZREM', KEYS[1], id)\n"
"redis.call('HDEL', P .. 'an:owner', id)\n"
"redis.call('HDEL', P .. 'an:att', id)\n"
"return r\n";

/*
 * renew: KEYS[1] = P.."an:lease"; ARGV = P, owner, until (wall ms), then
 * incidents.  Extends the leases owner still holds (long LLM calls).
 * Returns how many.
 */
const char an_lua_renew[] =
AN_CHECK_P
"local n = 0\n"
"for i = 4, #ARGV do\n"
"  if redis.call('HGET', P .. 'an:owner', ARGV[i]) == ARGV[2] then\n"
"    redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[i])\n"
"    n = n + 1\n"
"  end\n"
"end\n"
"return n\n";

/* ---- reading an incident ------------------------------------------------- */

static const redisReply *meta_get(const redisReply *meta, const char *name)
{
    for (size_t i = 0; i + 1 < meta->elements; i += 2)
        if (meta->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(meta->element[i]->str, name) == 0 &&
            meta->element[i + 1]->type == REDIS_REPLY_STRING)
            return meta->element[i + 1];
    return NULL;
}

static void copy_hash(char out[AN_HASH_MAX], const redisReply *v)
{
    out[0] = '\0';
    if (v && v->len < AN_HASH_MAX) {
        memcpy(out, v->str, v->len);
        out[v->len] = '\0';
    }
}

/* The snapshot writer emits `"analysis":null` (the section later stages
 * fill); the stored analysis replaces the last occurrence.  JSON escaping
 * keeps the pattern out of string values (their quotes are escaped), and
 * a writer that already emits the stored analysis leaves nothing to do. */
static enum sp_err splice(struct sp_buf *snap, const char *an, size_t an_len,
                          char **out, size_t *out_len)
{
    static const char pat[] = "\"analysis\":null";
    const char *at = NULL;
    for (const char *p = snap->data; an_len && p && (p = strstr(p, pat)) != NULL;
         p++)
        at = p;
    size_t keep = at ? (size_t)(at - snap->data) + sizeof(pat) - 5 : 0;
    size_t n = at ? snap->len - 4 + an_len : snap->len;
    char *s = malloc(n + 1);
    if (!s)
        return SP_ERR_NOMEM;
    if (at) {
        memcpy(s, snap->data, keep);
        memcpy(s + keep, an, an_len);
        memcpy(s + keep + an_len, at + sizeof(pat) - 1,
               snap->len - (keep + 4));
    } else {
        memcpy(s, snap->data, snap->len);
    }
    s[n] = '\0';
    *out = s;
    *out_len = n;
    return SP_OK;
}

void an_side_key(const char *prefix, const char *inc, const char *side,
                 char *out, size_t n)
{
    snprintf(out, n, "%si:%s:%s", prefix, inc, side);
}

/* Writes v as JSON (a parsed value re-emitted). */
static void emit(struct sp_jw *w, const struct sp_json *v)
{
    switch (v->type) {
    case SP_JSON_OBJECT:
        sp_jw_obj_open(w);
        sp_json_foreach(v, m)
        {
            sp_jw_key(w, m->key);
            emit(w, m);
        }
        sp_jw_obj_close(w);
        break;
    case SP_JSON_ARRAY:
        sp_jw_arr_open(w);
        sp_json_foreach(v, m) emit(w, m);
        sp_jw_arr_close(w);
        break;
    case SP_JSON_STRING:
        sp_jw_strn(w, v->u.s, v->n);
        break;
    default:
        sp_jw_raw(w, v->src, v->src_len);
        break;
    }
}

/* Merges the kept alert details ("ad" side hash) into the snapshot's
 * alerts[] entries, so the analysis sees descriptions, tactics and
 * techniques that snapshots do not carry.  Errors leave it as it is. */
static void merge_details(struct sp_redis *r, const char *prefix,
                          const char *id, struct sp_buf *snap)
{
    char key[512];
    an_side_key(prefix, id, "ad", key, sizeof(key));
    const char *argv[] = {"HGETALL", key};
    size_t lens[] = {7, strlen(key)};
    redisReply *rep = NULL;
    if (sp_redis_append(r, 2, argv, lens) != SP_OK ||
        sp_redis_read(r, &rep) != SP_OK)
        return;
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct sp_json *doc = NULL;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2)
        doc = sp_json_parse(&a, snap->data, snap->len, NULL, NULL);
    if (doc && doc->type == SP_JSON_OBJECT) {
        struct sp_buf b;
        sp_buf_init(&b, 0);
        struct sp_jw w;
        sp_jw_init(&w, &b);
        sp_jw_obj_open(&w);
        sp_json_foreach(doc, m)
        {
            sp_jw_key(&w, m->key);
            if (strcmp(m->key, "alerts") != 0 || m->type != SP_JSON_ARRAY) {
                emit(&w, m);
                continue;
            }
            sp_jw_arr_open(&w);
            sp_json_foreach(m, al)
            {
                const char *aid = sp_json_str(al, "id");
                const struct sp_json *det = NULL;
                for (size_t i = 0; aid && i + 1 < rep->elements && !det; i += 2)
                    if (rep->element[i]->type == REDIS_REPLY_STRING &&
                        strcmp(rep->element[i]->str, aid) == 0 &&
                        rep->element[i + 1]->type == REDIS_REPLY_STRING)
                        det = sp_json_parse(&a, rep->element[i + 1]->str,
                                            rep->element[i + 1]->len, NULL, NULL);
                if (!det || al->type != SP_JSON_OBJECT) {
                    emit(&w, al);
                    continue;
                }
                sp_jw_obj_open(&w);
                sp_json_foreach(al, f)
                {
                    if (sp_json_get(det, f->key))
                        continue;       /* the details' value wins */
                    sp_jw_key(&w, f->key);
                    emit(&w, f);
                }
                sp_json_foreach(det, f)
                {
                    sp_jw_key(&w, f->key);
                    emit(&w, f);
                }
                sp_jw_obj_close(&w);
            }
            sp_jw_arr_close(&w);
        }
        sp_jw_obj_close(&w);
        if (sp_jw_ok(&w)) {
            sp_buf_fini(snap);
            *snap = b;
        } else {
            sp_buf_fini(&b);
        }
    }
    sp_arena_fini(&a);
    freeReplyObject(rep);
}

/* Replaces the snapshot's empty `"scripts":[]` with the incident's kept
 * script analyses (HVALS of an_scripts_key, at most 50, in alert order
 * of the hash).  Errors leave the snapshot as it is: scripts are an
 * addition, not a reason to fail the job. */
static void splice_scripts(struct sp_redis *r, const char *prefix,
                           const char *id, struct sp_buf *snap)
{
    static const char pat[] = "\"scripts\":[]";
    char *at = snap->data ? strstr(snap->data, pat) : NULL;
    if (!at)
        return;
    char key[512];
    an_side_key(prefix, id, "sc", key, sizeof(key));
    const char *argv[] = {"HVALS", key};
    size_t lens[] = {5, strlen(key)};
    if (sp_redis_append(r, 2, argv, lens) != SP_OK)
        return;
    redisReply *rep = NULL;
    if (sp_redis_read(r, &rep) != SP_OK)
        return;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
        struct sp_buf b;
        sp_buf_init(&b, 0);
        size_t keep = (size_t)(at - snap->data) + sizeof(pat) - 2;
        sp_buf_put(&b, snap->data, keep);
        size_t n = 0;
        for (size_t i = 0; i < rep->elements && n < 50; i++) {
            const redisReply *v = rep->element[i];
            /* each value is a JSON array of entries: splice its body */
            if (v->type != REDIS_REPLY_STRING || v->len < 3 || v->str[0] != '[')
                continue;
            if (n++)
                sp_buf_putc(&b, ',');
            sp_buf_put(&b, v->str + 1, v->len - 2);
        }
        sp_buf_put(&b, at + sizeof(pat) - 2, snap->len - keep);
        if (!b.overflow) {
            sp_buf_fini(snap);
            *snap = b;
        } else {
            sp_buf_fini(&b);
        }
    }
    freeReplyObject(rep);
}

enum sp_err an_read(struct sp_redis *r, const char *prefix, const char *id,
                    int64_t why_max, size_t snapshot_max,
                    const char *mark, int64_t mark_ttl_ms,
                    struct an_snap *out)
{
    memset(out, 0, sizeof(*out));
    enum sp_err e = corr_snapshot_append(r, prefix, id, why_max, mark,
                                         mark_ttl_ms);
    if (e)
        return e;
    redisReply *rep = NULL;
    e = corr_snapshot_read(r, mark != NULL, &rep);
    if (e == SP_ERR_RETRY || e == SP_ERR_NOMEM)
        return e;
    if (e)
        return SP_ERR_RETRY;            /* LOADING, OOM...: later */
    struct sp_buf snap;
    sp_buf_init(&snap, 0);
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    e = corr_incident_write(rep, id, &snap, snapshot_max, &out->version, NULL);
    if (e)
        goto out;
    splice_scripts(r, prefix, id, &snap);
    merge_details(r, prefix, id, &snap);
    const redisReply *meta = rep->element[0];
    copy_hash(out->ah, meta_get(meta, "ah"));
    copy_hash(out->anc, meta_get(meta, "anc"));
    const redisReply *alt = meta_get(meta, "alt");
    out->llm_next = alt ? strtoll(alt->str, NULL, 10) : 0;
    const redisReply *an = meta_get(meta, "an");
    out->merged = meta_get(meta, "mi") != NULL;
    struct sp_json_error jerr;
    struct sp_json *inc = sp_json_parse(&a, snap.data, snap.len, NULL, &jerr);
    if (!inc) {
        e = SP_ERR_INVALID;
        goto out;
    }
    if ((e = sp_analysis_content_hash(inc, out->hash)) != SP_OK)
        goto out;
    out->has_analysis = an != NULL;
    e = an ? splice(&snap, an->str, an->len, &out->json, &out->len)
           : splice(&snap, "", 0, &out->json, &out->len);
out:
    if (e && e != SP_ERR_NOTFOUND)
        e = e == SP_ERR_NOMEM ? e : SP_ERR_INVALID;
    sp_arena_fini(&a);
    sp_buf_fini(&snap);
    freeReplyObject(rep);
    return e;
}

void an_snap_fini(struct an_snap *s)
{
    free(s->json);
    s->json = NULL;
}
