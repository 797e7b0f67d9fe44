/*
 * scripts.c - the scripts stage: every process command line an alert
 * carries is run through the script analyser (stages/script/): decoding
 * layers, indicators, ATT&CK behaviours, risk.  The alert gains a
 * "scripts" section, and each extracted indicator becomes an entity with
 * role "extracted-from-script", so the correlate stage after it links
 * incidents that share a C2 address or a payload URL.
 *
 * Command lines repeat a lot (the same launcher on a hundred hosts), so
 * results are cached: a bounded, direct-mapped table of serialised
 * sections and indicator lists, the slot picked by the command line's
 * hash and a hit checked against the command line kept in it.  A plain command
 * line that the analyser's prefilter rejects costs one scan.
 *
 * An analysis too large for its buffer (a small, compressible payload
 * decodes to megabytes of text that JSON escaping doubles) is written
 * reduced, never dropped: texts cut or left out, verdict, behaviours and
 * indicators kept, "truncated": true.  Likewise an alert's section keeps
 * a reduced entry for each command line that no longer fits whole.
 *
 * Engine thread only.
 */
#include "alert.h"
#include "json.h"
#include "log.h"
#include "script.h"
#include "scripts_int.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct sp_cfg_key scripts_keys[] = {
    {"scripts.max_layers", SP_CFG_INT, "16", 1, 64,
     "Decoding layers at most per command line", 0, NULL},
    {"scripts.max_output", SP_CFG_SIZE, "1MiB", 4096, (int64_t)64 << 20,
     "Decoded text at most per command line (all layers)", 0, NULL},
    {"scripts.max_time", SP_CFG_DURATION, "200ms", 1, 10000,
     "Time budget per command line; hitting it is reported, not an error",
     0, NULL},
    {"scripts.max_per_alert", SP_CFG_INT, "16", 1, 1000,
     "Command lines analysed per alert at most", 0, NULL},
    {"scripts.indicator_entities", SP_CFG_BOOL, "true", 0, 0,
     "Add extracted indicators (URLs, domains, IPs, hashes, emails) as "
     "entities with role extracted-from-script", 0, NULL},
    {"scripts.max_indicator_entities", SP_CFG_INT, "32", 0, 1000,
     "Indicator entities added per alert at most", 0, NULL},
    {"scripts.cache_entries", SP_CFG_INT, "4096", 0, 1000000,
     "Analyses cached by command line (0 = no cache)", 0, NULL},
};

struct scripts_ctx {
    struct sp_script_opts opts;
    size_t max_per_alert;
    bool indicator_entities;
    size_t max_indicator_entities;
    struct cache_slot *cache;
    size_t cache_n;
    struct sp_buf buf;
    struct sp_counter *c_analysed, *c_cache_hits, *c_bounds, *c_entities;
    struct sp_counter *c_truncated;
    struct sp_hist *h_risk;
    const char *log;
};

/* An analysis larger than this also keeps a reduced copy, for an alert's
 * section that cannot take it whole. */
#define SCRIPTS_SMALL_MAX ((size_t)16 << 10)

uint64_t scripts_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ n;
}

bool scripts_slot_holds(const struct cache_slot *slot, uint64_t h,
                        const char *cmd, size_t len)
{
    return slot->json && slot->cmd && slot->hash == h &&
           slot->cmd_len == len && memcmp(slot->cmd, cmd, len) == 0;
}

static void slot_clear(struct cache_slot *c)
{
    free(c->cmd);
    free(c->json);
    free(c->small);
    for (size_t i = 0; i < c->n_iocs; i++)
        free(c->iocs[i].value);
    free(c->iocs);
    memset(c, 0, sizeof(*c));
}

static enum sp_err scripts_init(struct sp_stage *st, struct sp_error *err)
{
    struct scripts_ctx *ctx = st->ctx;
    const struct sp_config *cfg = st->env->cfg;
    sp_script_opts_default(&ctx->opts);
    ctx->opts.deob.max_layers = (unsigned)sp_config_int(cfg, "scripts.max_layers");
    ctx->opts.deob.max_output = (size_t)sp_config_int(cfg, "scripts.max_output");
    ctx->opts.deob.max_time_us = sp_config_int(cfg, "scripts.max_time") * 1000;
    ctx->max_per_alert = (size_t)sp_config_int(cfg, "scripts.max_per_alert");
    ctx->indicator_entities = sp_config_bool(cfg, "scripts.indicator_entities");
    ctx->max_indicator_entities =
        (size_t)sp_config_int(cfg, "scripts.max_indicator_entities");
    ctx->cache_n = (size_t)sp_config_int(cfg, "scripts.cache_entries");
    if (ctx->cache_n) {
        ctx->cache = calloc(ctx->cache_n, sizeof(*ctx->cache));
        if (!ctx->cache)
            return sp_error_set(err, SP_ERR_NOMEM, "scripts: out of memory");
    }
    sp_buf_init(&ctx->buf, ctx->opts.deob.max_output * 2 + 65536);
    ctx->log = st->log;
    struct sp_metrics *m = st->env->metrics;
    if (m) {
        ctx->c_analysed = sp_metrics_counter(m, "scripts_analysed_total",
                                             "Command lines analysed", NULL);
        ctx->c_cache_hits = sp_metrics_counter(
            m, "scripts_cache_hits_total",
            "Command lines answered from the analysis cache", NULL);
        ctx->c_bounds = sp_metrics_counter(
            m, "scripts_bounds_hit_total",
            "Analyses that reached a bound (layers, size, ratio, time)", NULL);
        ctx->c_entities = sp_metrics_counter(
            m, "scripts_indicator_entities_total",
            "Entities added from indicators found in scripts", NULL);
        ctx->c_truncated = sp_metrics_counter(
            m, "scripts_truncated_total",
            "Analyses written reduced (texts cut or left out, "
            "\"truncated\": true) to fit the output or the alert's section",
            NULL);
        static const double risk_buckets[] = {0, 10, 25, 50, 75, 90, 100};
        ctx->h_risk = sp_metrics_hist(m, "scripts_risk", "Risk scores",
                                      NULL, risk_buckets,
                                      SP_ARRAY_SIZE(risk_buckets));
    }
    return SP_OK;
}

static void warn_truncated(struct scripts_ctx *ctx, const char *what,
                           size_t len)
{
    static struct sp_log_rl rl;
    sp_counter_add(ctx->c_truncated, 1);
    sp_log_warn_rl(&rl, 10000, ctx->log,
                   "script analysis of a %zu-byte command line truncated: %s",
                   len, what);
}

/* Serialises the analysis fields into ctx->buf (an object), within room
 * bytes when cut; false when even that failed. */
static bool serialise(struct scripts_ctx *ctx,
                      const struct sp_script_analysis *an, bool cut,
                      size_t room)
{
    sp_buf_reset(&ctx->buf);
    struct sp_jw w;
    sp_jw_init(&w, &ctx->buf);
    sp_jw_obj_open(&w);
    if (cut)
        sp_script_write_json_fields_max(an, &w, room);
    else
        sp_script_write_json_fields(an, &w);
    sp_jw_obj_close(&w);
    return sp_jw_ok(&w);
}

/* A copy of ctx->buf's object body (without braces), so the stage can
 * prepend the entity it belongs to. */
static char *body_dup(struct scripts_ctx *ctx, size_t *len)
{
    *len = ctx->buf.len - 2;
    char *s = malloc(*len + 1);
    if (s) {
        memcpy(s, ctx->buf.data + 1, *len);
        s[*len] = '\0';
    }
    return s;
}

/* Analyses one command line into slot (fresh). */
static enum sp_err analyse(struct scripts_ctx *ctx, const char *cmd,
                           size_t len, struct cache_slot *slot)
{
    struct sp_script_analysis an;
    enum sp_err e = sp_script_analyze(cmd, len, &ctx->opts, &an);
    if (e)
        return e;
    sp_counter_add(ctx->c_analysed, 1);
    if (an.bounds_hit)
        sp_counter_add(ctx->c_bounds, 1);
    sp_hist_observe(ctx->h_risk, (double)an.risk);
    size_t max = ctx->buf.max;
    if (!serialise(ctx, &an, false, 0)) {
        warn_truncated(ctx, "larger than the output buffer", len);
        if (!serialise(ctx, &an, true, max - 2)) {
            sp_script_analysis_fini(&an);
            return SP_ERR_LIMIT;
        }
    }
    slot->json = body_dup(ctx, &slot->json_len);
    if (slot->json && slot->json_len > SCRIPTS_SMALL_MAX) {
        if (serialise(ctx, &an, true, SCRIPTS_SMALL_MAX))
            slot->small = body_dup(ctx, &slot->small_len);
    }
    slot->iocs = an.n_indicators ? calloc(an.n_indicators, sizeof(*slot->iocs))
                                 : NULL;
    slot->cmd = malloc(len + 1);
    if (!slot->json || !slot->cmd || (an.n_indicators && !slot->iocs)) {
        sp_script_analysis_fini(&an);
        slot_clear(slot);
        return SP_ERR_NOMEM;
    }
    for (size_t i = 0; i < an.n_indicators; i++) {
        slot->iocs[slot->n_iocs].type = (uint8_t)an.indicators[i].type;
        slot->iocs[slot->n_iocs].value = strdup(an.indicators[i].value);
        if (slot->iocs[slot->n_iocs].value)
            slot->n_iocs++;
    }
    memcpy(slot->cmd, cmd, len);
    slot->cmd[len] = '\0';
    slot->risk = an.risk;
    slot->cmd_len = len;
    sp_script_analysis_fini(&an);
    return SP_OK;
}

/* The analysis of cmd: from the cache, or fresh (into the cache, or into
 * tmp when caching is off).  Returns NULL on failure. */
static const struct cache_slot *lookup(struct scripts_ctx *ctx,
                                       const char *cmd, size_t len,
                                       struct cache_slot *tmp)
{
    uint64_t h = scripts_hash(cmd, len);
    struct cache_slot *slot = tmp;
    if (ctx->cache_n) {
        slot = &ctx->cache[h % ctx->cache_n];
        if (scripts_slot_holds(slot, h, cmd, len)) {
            sp_counter_add(ctx->c_cache_hits, 1);
            return slot;
        }
        slot_clear(slot);
    }
    if (analyse(ctx, cmd, len, slot) != SP_OK)
        return NULL;
    slot->hash = h;
    return slot;
}

/* Indicator -> entity (type, canonical key), or false to skip. */
static bool ioc_entity(struct sp_arena *a, const struct cached_ioc *ioc,
                       const char **type, const char **key,
                       const char **id_name)
{
    const char *v = ioc->value;
    switch ((enum sp_ioc_type)ioc->type) {
    case SP_IOC_URL: {
        const char *c = sp_canon_url(a, v);
        *type = "url";
        *id_name = "url";
        *key = c ? sp_arena_printf(a, "url:%s", c) : NULL;
        return *key != NULL;
    }
    case SP_IOC_DOMAIN:
        *type = "domain";
        *id_name = "domain";
        *key = sp_arena_printf(a, "domain:%s", v);
        if (*key)
            sp_lower((char *)*key);
        return *key != NULL;
    case SP_IOC_IPV4:
    case SP_IOC_IPV6: {
        const char *c = sp_canon_ip(a, v);
        *type = "ip";
        *id_name = "address";
        *key = c ? sp_arena_printf(a, "ip:%s", c) : NULL;
        return *key != NULL;
    }
    case SP_IOC_EMAIL:
        *type = "mailbox";
        *id_name = "address";
        *key = sp_arena_printf(a, "mailbox:%s", v);
        if (*key)
            sp_lower((char *)*key);
        return *key != NULL;
    case SP_IOC_SHA256:
    case SP_IOC_SHA1:
    case SP_IOC_MD5: {
        const char *alg = ioc->type == SP_IOC_SHA256 ? "sha256"
                          : ioc->type == SP_IOC_SHA1 ? "sha1"
                                                     : "md5";
        const char *c = sp_canon_hash(a, v);
        *type = "file";
        *id_name = alg;
        *key = c ? sp_arena_printf(a, "file:%s:%s", alg, c) : NULL;
        return *key != NULL;
    }
    default:
        return false;   /* paths, registry keys, pipes stay in the analysis */
    }
}

static enum sp_err add_indicator_entities(struct scripts_ctx *ctx,
                                          struct sp_arena *a,
                                          struct sp_alert *alert,
                                          const struct cache_slot *slot,
                                          size_t *added)
{
    for (size_t i = 0; i < slot->n_iocs && *added < ctx->max_indicator_entities;
         i++) {
        const char *type, *key, *id_name;
        if (!ioc_entity(a, &slot->iocs[i], &type, &key, &id_name))
            continue;
        struct sp_entity *ent = sp_alert_find_entity(alert, key);
        if (!ent) {
            ent = sp_alert_add_entity(a, alert, type, UINT32_MAX);
            if (!ent)
                return SP_ERR_NOMEM;
            ent->key = key;
            sp_entity_add_id(a, ent, id_name, slot->iocs[i].value);
            (*added)++;
            sp_counter_add(ctx->c_entities, 1);
        }
        bool has = false;
        for (uint8_t r = 0; r < ent->n_roles; r++)
            if (strcmp(ent->roles[r], "extracted-from-script") == 0)
                has = true;
        if (!has)
            sp_entity_add_role(ent, "extracted-from-script");
    }
    return SP_OK;
}

/* Appends {"entity":key,<body>} to sec when it fits with one byte left
 * for the closing ']'; when not, sec is left as it was and false
 * returned. */
static bool sec_put(struct sp_buf *sec, bool first, const char *key,
                    const char *body, size_t body_len)
{
    size_t len = sec->len;
    sp_buf_putc(sec, first ? '[' : ',');
    sp_buf_puts(sec, "{\"entity\":");
    sp_json_escape(sec, key, strlen(key));
    sp_buf_putc(sec, ',');
    sp_buf_put(sec, body, body_len);
    sp_buf_putc(sec, '}');
    if (!sec->overflow && sec->len < sec->max)
        return true;
    sec->len = len;
    sec->overflow = false;
    if (sec->data)
        sec->data[len] = '\0';
    return false;
}

/* Adds slot's analysis to sec: whole, else reduced (small), else only its
 * risk; false when not even that fits. */
static bool sec_add(struct scripts_ctx *ctx, struct sp_buf *sec, bool first,
                    const char *key, const struct cache_slot *slot,
                    size_t cmd_len)
{
    if (sec_put(sec, first, key, slot->json, slot->json_len))
        return true;
    char mini[64];
    int ml = snprintf(mini, sizeof(mini), "\"risk\":%u,\"truncated\":true",
                      slot->risk);
    bool put = (slot->small &&
                sec_put(sec, first, key, slot->small, slot->small_len)) ||
               sec_put(sec, first, key, mini, (size_t)ml);
    warn_truncated(ctx, put ? "reduced in the alert's full scripts section"
                            : "left out of the alert's full scripts section",
                   cmd_len);
    return put;
}

static enum sp_err process_alert(struct scripts_ctx *ctx, struct sp_msg *msg,
                                 struct sp_alert *alert)
{
    struct sp_buf sec;
    sp_buf_init(&sec, ctx->opts.deob.max_output * 4 + 65536);
    size_t analysed = 0, shown = 0, added = 0;
    enum sp_err rc = SP_OK;
    for (size_t i = 0; i < alert->n_entities && analysed < ctx->max_per_alert;
         i++) {
        struct sp_entity *ent = &alert->entities[i];
        if (strcmp(ent->type, "process") != 0)
            continue;
        const char *cmd = sp_entity_id(ent, "command_line");
        if (!cmd)
            continue;
        size_t len = strlen(cmd);
        if (!sp_script_worth_analyzing(cmd, len))
            continue;
        struct cache_slot tmp = {0};
        const struct cache_slot *slot = lookup(ctx, cmd, len, &tmp);
        if (!slot)
            continue;       /* analyser out of memory: the alert goes on */
        analysed++;
        if (sec_add(ctx, &sec, shown == 0, ent->key ? ent->key : "", slot,
                    len))
            shown++;
        if (ctx->indicator_entities)
            rc = add_indicator_entities(ctx, &msg->arena, alert, slot, &added);
        if (!ctx->cache_n)
            slot_clear(&tmp);
        if (rc)
            break;
    }
    if (shown)
        sp_buf_putc(&sec, ']');
    if (!rc && shown && !sec.overflow) {
        char *json = sp_arena_strndup(&msg->arena, sec.data, sec.len);
        rc = json ? sp_alert_add_section(&msg->arena, alert, "scripts", json,
                                         sec.len)
                  : SP_ERR_NOMEM;
    }
    sp_buf_fini(&sec);
    return rc;
}

static enum sp_err scripts_process(struct sp_stage *st, struct sp_batch *batch)
{
    struct scripts_ctx *ctx = st->ctx;
    for (size_t i = 0; i < batch->n; i++) {
        struct sp_msg *msg = &batch->msgs[i];
        for (size_t j = 0; j < msg->n_alerts; j++) {
            enum sp_err e = process_alert(ctx, msg, msg->alerts[j]);
            if (e) {
                /* The message's arena is exhausted: its alerts go out
                 * without script analyses rather than not at all. */
                static struct sp_log_rl rl;
                sp_log_warn_rl(&rl, 10000, st->log,
                               "script analysis skipped for %s: %s",
                               msg->alerts[j]->id, sp_strerror(e));
            }
        }
    }
    return SP_OK;
}

static void scripts_close(struct sp_stage *st)
{
    struct scripts_ctx *ctx = st->ctx;
    for (size_t i = 0; i < ctx->cache_n; i++)
        slot_clear(&ctx->cache[i]);
    free(ctx->cache);
    sp_buf_fini(&ctx->buf);
}

const struct sp_stage_type sp_stage_scripts = {
    .name = "scripts",
    .desc = "Deobfuscate command lines: layers, indicators, ATT&CK, risk",
    .keys = scripts_keys,
    .n_keys = SP_ARRAY_SIZE(scripts_keys),
    .ctx_size = sizeof(struct scripts_ctx),
    .init = scripts_init,
    .process = scripts_process,
    .close = scripts_close,
};
