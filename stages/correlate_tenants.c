/*
 * correlate_tenants.c - the sets of tenants the timer walks:
 * <prefix>:tenants (tenants with correlation state: outbox recovery and
 * the index sweep, correlate_out.c) and <prefix>:tenants:asm (tenants
 * with Defender assemblies, polled by correlate_asm.c).  Each walk goes
 * a bounded SSCAN step per interval and drops the tenants it finds with
 * nothing left to do, so the sets hold the tenants with work, not every
 * tenant that ever sent an alert.
 *
 * A set lives outside every tenant's hash tag, so in a Redis Cluster it
 * is on another slot than the tenant's keys, and no script can look at
 * both: adding a tenant when its keys get work, and dropping it when
 * they have none, are plain commands ordered around the tenants' own
 * scripts (see corr_tenants_forget for why a tenant with work is never
 * left out).  Registration before a batch's scripts, cached per
 * process, is in correlate.c (run_chunk); here are the walk's drop and
 * the registration again after the scripts.
 *
 * Engine thread.
 */
#include "correlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One pipelined round of one command per tenant marked in sel: SREM or
 * SADD of the tenant on setkey, or (setkey NULL) EXISTS of its keys
 * P..keys[k].  Each integer answer into res (-1 for unmarked tenants and
 * errors). */
static enum sp_err tenant_round(struct corr_ctx *ctx, const char *cmd,
                                const char *setkey, const char *const *keys,
                                size_t n_keys, const struct corr_tenant *tn,
                                const bool *sel, long long *res, size_t nt)
{
    enum sp_err e = SP_OK;
    size_t sent = 0;
    char names[CORR_TENANT_KEYS_MAX][CORR_PREFIX_MAX + 8];
    const char *argv[CORR_TENANT_KEYS_MAX + 1];
    size_t lens[CORR_TENANT_KEYS_MAX + 1];
    n_keys = SP_MIN(n_keys, (size_t)CORR_TENANT_KEYS_MAX);
    for (size_t i = 0; i < nt && !e; i++) {
        res[i] = -1;
        if (!sel[i])
            continue;
        int argc = 0;
        argv[argc++] = cmd;
        if (setkey) {
            argv[argc++] = setkey;
            argv[argc++] = tn[i].tenant;
        } else {
            for (size_t k = 0; k < n_keys; k++) {
                snprintf(names[k], sizeof(names[k]), "%s%s", tn[i].prefix,
                         keys[k]);
                argv[argc++] = names[k];
            }
        }
        for (int k = 0; k < argc; k++)
            lens[k] = strlen(argv[k]);
        if (!(e = sp_redis_append(ctx->redis, argc, argv, lens)))
            sent++;
    }
    /* Every reply is read (owed replies would answer later commands). */
    for (size_t i = 0, got = 0; i < nt && got < sent; i++) {
        if (!sel[i])
            continue;
        redisReply *rep;
        enum sp_err rd = sp_redis_read(ctx->redis, &rep);
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

/*
 * Work may arrive at any moment, and the set and the tenant's keys are on
 * different slots, so: SREM first, then (once it is done) look at the
 * keys again and SADD back a tenant that has one now.  A script that
 * gives an idle tenant work tells its caller so, and the caller SADDs
 * the tenant after that script (corr_tenants_register): either its
 * script ran before the second look, which then sees the work, or after
 * it, so after the SREM, and its SADD comes later still.  Only a process
 * that dies, or loses its connection, between SREM and SADD-back can
 * leave a tenant with work out of the set, until its next alert reaches a
 * stage with a fresh registration cache (which adds every tenant again)
 * or an idle spell sets its seen anew.
 */
enum sp_err corr_tenants_forget(struct corr_ctx *ctx, const char *setkey,
                                const char *const *keys, size_t n_keys,
                                const struct corr_tenant *tn, bool *sel,
                                size_t nt)
{
    long long *res = calloc(nt ? nt : 1, sizeof(*res));
    if (!res)
        return SP_ERR_NOMEM;
    enum sp_err e = tenant_round(ctx, "SREM", setkey, keys, n_keys, tn, sel,
                                 res, nt);
    for (size_t i = 0; i < nt; i++)
        sel[i] = res[i] == 1;
    if (!e)
        e = tenant_round(ctx, "EXISTS", NULL, keys, n_keys, tn, sel, res, nt);
    for (size_t i = 0; i < nt; i++)
        sel[i] = res[i] > 0;
    if (!e)
        e = tenant_round(ctx, "SADD", setkey, keys, n_keys, tn, sel, res, nt);
    free(res);
    return e;
}

enum sp_err corr_tenants_register(struct corr_ctx *ctx,
                                  const struct corr_item *items, size_t n)
{
    char setkey[2][80];
    snprintf(setkey[0], sizeof(setkey[0]), "%s:tenants", ctx->key_prefix);
    snprintf(setkey[1], sizeof(setkey[1]), "%s:tenants:asm", ctx->key_prefix);
    size_t sent = 0;
    enum sp_err e = SP_OK;
    for (size_t i = 0; i < n && !e; i++) {
        for (int s = 0; s < 2 && !e; s++) {
            if (s == 0 ? !items[i].out_register
                       : !items[i].row || !items[i].asm_register)
                continue;
            const char *argv[] = {"SADD", setkey[s], items[i].tenant};
            size_t lens[] = {4, strlen(setkey[s]), strlen(items[i].tenant)};
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
