/*
 * correlate_tenants.c - the sets of tenants the timers walk:
 * <prefix>:tenants (tenants with correlation state: outbox recovery and
 * the index sweep, correlate_out.c), <prefix>:tenants:asm (tenants with
 * Defender assemblies, polled by correlate_asm.c) and <prefix>:tenants:an
 * (tenants with analysis jobs, claimed by the analyze stage,
 * stages/analyze.c, which uses the drop and the limbo below too).  Each
 * walk goes a bounded SSCAN step per interval and drops the tenants it
 * finds with nothing left to do, so the sets hold the tenants with work,
 * not every tenant that ever sent an alert.
 *
 * A set lives outside every tenant's hash tag, so in a Redis Cluster it
 * is on another slot than the tenant's keys, and no script can look at
 * both: adding a tenant when its keys get work, and dropping it when
 * they have none, are plain commands ordered around the tenants' own
 * scripts (see corr_tenants_forget for why a tenant with work is never
 * left out, not even by a process that dies half-way).  Registration
 * before a batch's scripts, cached per process, is in correlate.c
 * (run_chunk); here are the walk's drop, its limbo, and the registration
 * again after the scripts.
 *
 * Engine thread (corr_tenants_forget and corr_tenants_step: the thread
 * that owns the connection they are given).
 */
#include "correlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void corr_set_key(const char *key_prefix, enum corr_set set, char *out,
                  size_t n)
{
    static const char *const suffix[CORR_SETS] = {
        [CORR_SET_OUT] = ":tenants",
        [CORR_SET_ASM] = ":tenants:asm",
        [CORR_SET_AN] = ":tenants:an",
    };
    snprintf(out, n, "%s%s", key_prefix, suffix[set]);
}

/* The tenants being dropped from setkey wait in its limbo set, on the
 * same slot of a cluster (a key with a tag hashes the tag, and setkey,
 * which has no braces, hashes whole), so that SMOVE moves them between
 * the two atomically. */
static void limbo_key(const char *setkey, char *out, size_t n)
{
    snprintf(out, n, "{%s}:limbo", setkey);
}

/* One pipelined round of one command per tenant marked in sel: head[]
 * (a command and its keys) followed by the tenant, or (head NULL) EXISTS
 * of the tenant's keys P..keys[k].  Each integer answer into res (-1 for
 * unmarked tenants and errors). */
static enum sp_err tenant_round(struct sp_redis *redis, const char *const *head,
                                size_t n_head, const char *const *keys,
                                size_t n_keys, const struct corr_tenant *tn,
                                const bool *sel, long long *res, size_t nt)
{
    enum sp_err e = SP_OK;
    size_t sent = 0;
    char names[CORR_TENANT_KEYS_MAX][CORR_PREFIX_MAX + 8];
    const char *argv[CORR_TENANT_KEYS_MAX + 4];
    size_t lens[CORR_TENANT_KEYS_MAX + 4];
    n_keys = SP_MIN(n_keys, (size_t)CORR_TENANT_KEYS_MAX);
    n_head = SP_MIN(n_head, (size_t)3);
    for (size_t i = 0; i < nt && !e; i++) {
        res[i] = -1;
        if (!sel[i])
            continue;
        int argc = 0;
        if (head) {
            for (size_t k = 0; k < n_head; k++)
                argv[argc++] = head[k];
            argv[argc++] = tn[i].tenant;
        } else {
            argv[argc++] = "EXISTS";
            for (size_t k = 0; k < n_keys; k++) {
                snprintf(names[k], sizeof(names[k]), "%s%s", tn[i].prefix,
                         keys[k]);
                argv[argc++] = names[k];
            }
        }
        for (int k = 0; k < argc; k++)
            lens[k] = strlen(argv[k]);
        if (!(e = sp_redis_append(redis, argc, argv, lens)))
            sent++;
    }
    /* Every reply is read (owed replies would answer later commands). */
    for (size_t i = 0, got = 0; i < nt && got < sent; i++) {
        if (!sel[i])
            continue;
        redisReply *rep;
        enum sp_err rd = sp_redis_read(redis, &rep);
        if (rd)
            return rd;              /* the connection is gone */
        got++;
        enum sp_err re = sp_redis_reply_err(rep);
        if (!re && rep->type == REDIS_REPLY_INTEGER)
            res[i] = rep->integer;
        else if (!e)
            e = !re || re == SP_ERR_REMOTE || re == SP_ERR_CONFIG
                    ? SP_ERR_RETRY : re;
        freeReplyObject(rep);
    }
    return e;
}

/* Looks again at the tenants in limbo marked in sel: back to setkey
 * those with one of keys, out of limbo the others. */
static enum sp_err limbo_settle(struct sp_redis *redis, const char *setkey,
                                const char *limbo, const char *const *keys,
                                size_t n_keys, const struct corr_tenant *tn,
                                bool *sel, long long *res, size_t nt)
{
    enum sp_err e = tenant_round(redis, NULL, 0, keys, n_keys, tn, sel, res,
                                 nt);
    if (e)
        return e;
    bool *work = calloc(nt ? nt : 1, sizeof(*work));
    if (!work)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < nt; i++) {
        work[i] = sel[i] && res[i] > 0;
        sel[i] = sel[i] && res[i] == 0;
    }
    const char *back[] = {"SMOVE", limbo, setkey};
    const char *drop[] = {"SREM", limbo};
    e = tenant_round(redis, back, 3, NULL, 0, tn, work, res, nt);
    if (!e)
        e = tenant_round(redis, drop, 2, NULL, 0, tn, sel, res, nt);
    free(work);
    return e;
}

/*
 * Work may arrive at any moment, and the set and the tenant's keys are on
 * different slots, so: move the tenant to the set's limbo (SMOVE, atomic:
 * it is always in one of the two), then look at its keys again and move it
 * back if it has one now, else drop it from limbo.  A script that gives an
 * idle tenant work tells its caller so, and the caller SADDs the tenant
 * after that script's reply, whatever it remembers of having added it
 * (corr_tenants_register; for the analysis jobs the analyze stage
 * schedules itself, register_idle in stages/analyze.c): either its script
 * ran before the second look, which then sees the work, or after it, so
 * after the move, and its SADD comes later still.  A process that dies
 * between such a script and its SADD leaves that to the replay of its
 * batch (by another instance, maybe, whose cache predates the drop): the
 * scripts then see duplicates, a row already stored, a version already
 * scheduled, and say so, and the replay adds the tenant again after its
 * reply too.  A process that dies, or loses its connection, in the
 * middle of a drop leaves the tenant in limbo, and the
 * next walk of any instance settles it (corr_tenants_step).  Two walkers
 * settling one tenant at once are safe the same way: whichever sees no
 * work drops it, and work that comes after that look comes with its SADD.
 */
enum sp_err corr_tenants_forget(struct sp_redis *redis, const char *setkey,
                                const char *const *keys, size_t n_keys,
                                const struct corr_tenant *tn, bool *sel,
                                size_t nt)
{
    long long *res = calloc(nt ? nt : 1, sizeof(*res));
    if (!res)
        return SP_ERR_NOMEM;
    char limbo[128];
    limbo_key(setkey, limbo, sizeof(limbo));
    const char *move[] = {"SMOVE", setkey, limbo};
    enum sp_err e = tenant_round(redis, move, 3, NULL, 0, tn, sel, res, nt);
    for (size_t i = 0; i < nt; i++)
        sel[i] = res[i] == 1;
    if (!e)
        e = limbo_settle(redis, setkey, limbo, keys, n_keys, tn, sel, res,
                         nt);
    free(res);
    return e;
}

#define LIMBO_STEP "100"

/* Settles up to LIMBO_STEP tenants a forget left in setkey's limbo (its
 * process died or lost Redis half-way): back to the set with work, else
 * out. */
static enum sp_err limbo_sweep(struct sp_redis *redis, const char *key_prefix,
                               const char *setkey, const char *const *keys,
                               size_t n_keys)
{
    char limbo[128];
    limbo_key(setkey, limbo, sizeof(limbo));
    const char *argv[] = {"SRANDMEMBER", limbo, LIMBO_STEP};
    size_t lens[] = {11, strlen(limbo), strlen(LIMBO_STEP)};
    redisReply *rep = NULL;
    enum sp_err e = sp_redis_call(redis, &rep, 3, argv, lens);
    if (e || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        freeReplyObject(rep);
        return e;
    }
    size_t nt = rep->elements;
    struct corr_tenant *tn = calloc(nt, sizeof(*tn));
    bool *sel = calloc(nt, sizeof(*sel));
    long long *res = calloc(nt, sizeof(*res));
    if (!tn || !sel || !res) {
        e = SP_ERR_NOMEM;
    } else {
        for (size_t i = 0; i < nt; i++) {
            const redisReply *t = rep->element[i];
            /* A name that does not fit stays (its SREM would miss it). */
            if (t->type != REDIS_REPLY_STRING || t->len >= sizeof(tn[i].tenant))
                continue;
            snprintf(tn[i].tenant, sizeof(tn[i].tenant), "%s", t->str);
            corr_prefix(key_prefix, t->str, tn[i].prefix,
                        sizeof(tn[i].prefix));
            sel[i] = true;
        }
        e = limbo_settle(redis, setkey, limbo, keys, n_keys, tn, sel, res,
                         nt);
    }
    free(tn);
    free(sel);
    free(res);
    freeReplyObject(rep);
    return e;
}

enum sp_err corr_tenants_register(struct corr_ctx *ctx,
                                  const struct corr_item *items, size_t n)
{
    char setkey[CORR_SETS][80];
    for (int s = 0; s < CORR_SETS; s++)
        corr_set_key(ctx->key_prefix, s, setkey[s], sizeof(setkey[s]));
    size_t sent = 0;
    enum sp_err e = SP_OK;
    for (size_t i = 0; i < n && !e; i++) {
        const struct corr_item *item = &items[i];
        bool want[CORR_SETS] = {
            [CORR_SET_OUT] = item->out_register,
            [CORR_SET_ASM] = item->row && item->asm_register,
            [CORR_SET_AN] = item->an_register,
        };
        for (int s = 0; s < CORR_SETS && !e; s++) {
            if (!want[s])
                continue;
            const char *argv[] = {"SADD", setkey[s], item->tenant};
            size_t lens[] = {4, strlen(setkey[s]), strlen(item->tenant)};
            if (!(e = sp_redis_append(ctx->redis, 3, argv, lens)))
                sent++;
        }
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *rep;
        enum sp_err rd = sp_redis_read(ctx->redis, &rep);
        if (rd) {
            e = rd;
            break;
        }
        enum sp_err re = sp_redis_reply_err(rep);
        if (re && !e)
            e = re == SP_ERR_REMOTE || re == SP_ERR_CONFIG ? SP_ERR_RETRY : re;
        freeReplyObject(rep);
    }
    /* The batch fails and comes again: its rows then replay as stored
     * ones and its alerts as duplicates (no flag), so the cached
     * registrations go and the tenants are added before them instead. */
    if (e)
        memset(ctx->tenant_cache, 0, sizeof(ctx->tenant_cache));
    return e;
}

enum sp_err corr_tenants_step(struct sp_redis *redis, const char *key_prefix,
                              const char *setkey, const char *const *keys,
                              size_t n_keys, char *cursor, size_t cursor_n,
                              const char *count, size_t max,
                              struct corr_tenant **tnp, size_t *np)
{
    *tnp = NULL;
    *np = 0;
    enum sp_err e = limbo_sweep(redis, key_prefix, setkey, keys, n_keys);
    if (e)
        return e;
    const char *argv[] = {"SSCAN", setkey, cursor, "COUNT", count};
    size_t lens[] = {5, strlen(setkey), strlen(cursor), 5, strlen(count)};
    redisReply *rep = NULL;
    if ((e = sp_redis_call(redis, &rep, 5, argv, lens))) {
        freeReplyObject(rep);
        return e;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return SP_ERR_REMOTE;
    }
    snprintf(cursor, cursor_n, "%.*s",
             (int)SP_MIN(rep->element[0]->len, cursor_n - 1),
             rep->element[0]->str);
    const redisReply *names = rep->element[1];
    size_t nt = SP_MIN(names->elements, max);
    struct corr_tenant *tn = nt ? calloc(nt, sizeof(*tn)) : NULL;
    if (nt && !tn) {
        freeReplyObject(rep);
        return SP_ERR_NOMEM;
    }
    for (size_t i = 0; i < nt; i++) {
        const redisReply *t = names->element[i];
        /* A name no tenant can have is skipped, so never dropped. */
        if (t->type != REDIS_REPLY_STRING || t->len > CORR_TENANT_MAX)
            continue;
        memcpy(tn[i].tenant, t->str, t->len);
        corr_prefix(key_prefix, tn[i].tenant, tn[i].prefix,
                    sizeof(tn[i].prefix));
    }
    freeReplyObject(rep);
    *tnp = tn;
    *np = nt;
    return SP_OK;
}
