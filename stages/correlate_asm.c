/*
 * correlate_asm.c - Defender XDR streaming rows (AlertInfo + one
 * AlertEvidence row per entity) assembled into one alert per AlertId.
 *
 * Durability: process() stores each row in Redis (asm:<alert> hash, due
 * time in the asmdue zset, see correlate_lua.c) before the input offset
 * can be committed, and drops the row from the batch.  tick() leases due
 * assemblies, rebuilds each alert, correlates it like any other, and
 * produces the alert and its incident snapshots in a detached batch; only
 * when that batch is acknowledged does asm_done remove the due entry (or
 * schedule another emission when rows arrived meanwhile).  A crash or a
 * refused output leaves the lease to expire and the alert is emitted
 * again, which correlation sees as a duplicate.
 *
 * Which tenants to poll: <prefix>:tenants:asm, walked with SSCAN a
 * bounded step per poll (the cursor kept between polls), so every tenant
 * is reached however many there are.  A tenant whose asmdue is gone is
 * dropped from the set, which so holds the tenants with assemblies, not
 * every tenant that ever sent a row.  The set and asmdue live on
 * different slots of a cluster, so the drop is not atomic; see
 * corr_tenants_forget (correlate_tenants.c) for how a row arriving
 * meanwhile is never left unpolled: asm_add tells when a row made asmdue
 * non-empty, and the tenant is added again after it.
 *
 * Rows are stored in a compact JSON of the normalized fields this file
 * writes and reads itself (not the published alert schema).
 *
 * Engine thread.
 */
#include "analyze.h"
#include "correlate_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entities of one assembled alert at most (the decoder's default
 * limit per alert). */
#define ASM_MAX_ENTITIES 500
/* Tenants polled per poll: the SSCAN COUNT hint, and a hard bound on what
 * one SSCAN reply may hand over (a hint only; those past it come again in
 * the next round of the walk). */
#define ASM_SCAN_COUNT "1000"
#define ASM_TENANTS_MAX 2000

/* ---- rows: store ----------------------------------------------------------- */

static void kus(struct sp_jw *w, const char *key, int64_t us)
{
    if (us != SP_TIME_NONE)
        sp_jw_kint(w, key, us);
}

/* Writes the compact row; *norm_len is its length without the record's
 * own bytes (raw, written last): what tells rows apart. */
static void write_row(struct sp_jw *w, const struct sp_alert *alert,
                      bool sections, size_t *norm_len)
{
    sp_jw_obj_open(w);
    sp_jw_kstr_opt(w, "source", alert->source);
    sp_jw_kstr_opt(w, "provider", alert->provider);
    sp_jw_kstr_opt(w, "pa", alert->provider_alert_id);
    sp_jw_kstr_opt(w, "pi", alert->provider_incident_id);
    sp_jw_kstr_opt(w, "title", alert->title);
    sp_jw_kstr_opt(w, "desc", alert->description);
    sp_jw_kint(w, "sev", (int64_t)alert->severity);
    sp_jw_kstr_opt(w, "sevo", alert->severity_original);
    sp_jw_kstr_opt(w, "status", alert->status);
    sp_jw_kstr_opt(w, "cat", alert->category);
    sp_jw_kstr_opt(w, "det", alert->detector);
    sp_jw_key(w, "tac");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < alert->n_tactics; i++)
        sp_jw_str(w, alert->tactics[i]);
    sp_jw_arr_close(w);
    sp_jw_key(w, "tec");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < alert->n_techniques; i++)
        sp_jw_str(w, alert->techniques[i]);
    sp_jw_arr_close(w);
    kus(w, "fa", alert->first_activity);
    kus(w, "la", alert->last_activity);
    kus(w, "cr", alert->created);
    kus(w, "up", alert->updated);
    sp_jw_key(w, "links");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < alert->n_links; i++) {
        sp_jw_arr_open(w);
        sp_jw_str(w, alert->links[i].name);
        sp_jw_str(w, alert->links[i].url);
        sp_jw_arr_close(w);
    }
    sp_jw_arr_close(w);
    sp_jw_key(w, "ents");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < alert->n_entities; i++) {
        const struct sp_entity *ent = &alert->entities[i];
        sp_jw_obj_open(w);
        sp_jw_kstr(w, "type", ent->type ? ent->type : "other");
        sp_jw_kstr_opt(w, "key", ent->key);
        sp_jw_key(w, "ids");
        sp_jw_arr_open(w);
        for (uint16_t j = 0; j < ent->n_ids; j++) {
            sp_jw_arr_open(w);
            sp_jw_str(w, ent->ids[j].name);
            sp_jw_str(w, ent->ids[j].value);
            sp_jw_arr_close(w);
        }
        sp_jw_arr_close(w);
        sp_jw_key(w, "roles");
        sp_jw_arr_open(w);
        for (uint8_t j = 0; j < ent->n_roles; j++)
            sp_jw_str(w, ent->roles[j]);
        sp_jw_arr_close(w);
        sp_jw_obj_close(w);
    }
    sp_jw_arr_close(w);
    *norm_len = w->b->len;
    /* What stages before correlate added (the scripts stage's analyses):
     * derived from the row, so not part of what names it. */
    if (sections && alert->sections) {
        sp_jw_key(w, "sec");
        sp_jw_arr_open(w);
        for (const struct sp_section *sec = alert->sections; sec;
             sec = sec->next) {
            sp_jw_arr_open(w);
            sp_jw_str(w, sec->name);
            sp_jw_raw(w, sec->json, sec->len);
            sp_jw_arr_close(w);
        }
        sp_jw_arr_close(w);
    }
    if (alert->raw && alert->raw_len) {
        sp_jw_key(w, "raw");
        sp_jw_raw(w, alert->raw, alert->raw_len);
    }
    sp_jw_obj_close(w);
}

enum sp_err corr_asm_row(struct corr_ctx *ctx, const struct sp_alert *alert,
                         const char **field, const char **value, size_t *vlen,
                         size_t *norm_len)
{
    enum sp_err e = corr_json_begin(ctx);
    if (e)
        return e;
    struct sp_jw w;
    sp_jw_init(&w, &ctx->json);
    write_row(&w, alert, true, norm_len);
    if (!sp_jw_ok(&w) && alert->sections) {
        /* Too big with what later stages added: the row without it. */
        if ((e = corr_json_begin(ctx)))
            return e;
        sp_jw_init(&w, &ctx->json);
        write_row(&w, alert, false, norm_len);
    }
    if (!sp_jw_ok(&w))
        return SP_ERR_LIMIT;        /* reserved: only its size fails it */
    *vlen = ctx->json.len;
    *value = sp_arena_strndup(&ctx->work, ctx->json.data, ctx->json.len);
    if (alert->part == SP_PART_INFO) {
        *field = "info";
    } else {
        /* One field per distinct evidence row, named by what it says, not
         * by the record's bytes: the same row in another envelope (a
         * re-sent export, another serialization) is the same field. */
        char hx[17];
        snprintf(hx, sizeof(hx), "%016llx",
                 (unsigned long long)corr_hash(CORR_HASH_INIT, ctx->json.data,
                                               *norm_len));
        *field = sp_arena_printf(&ctx->work, "ev:%s", hx);
    }
    return *value && *field ? SP_OK : SP_ERR_NOMEM;
}

int corr_asm_args(struct corr_ctx *ctx, struct corr_item *item,
                  int64_t now_ms, const char ***argvp, size_t **lensp)
{
    const char *field, *value;
    size_t vlen, norm_len = 0;
    enum sp_err e = corr_asm_row(ctx, item->alert, &field, &value, &vlen,
                                 &norm_len);
    if (e == SP_ERR_LIMIT)
        return corr_reject_too_large(ctx, item, "the Defender row");
    if (e)
        return -1;
    const char **argv = sp_arena_alloc(&ctx->work, 14 * sizeof(*argv));
    size_t *lens = sp_arena_alloc(&ctx->work, 14 * sizeof(*lens));
    char *key = sp_arena_printf(&ctx->work, "%sasm:%s", item->prefix,
                                item->alert->id);
    char *now = sp_arena_printf(&ctx->work, "%lld", (long long)now_ms);
    char *settle = sp_arena_printf(&ctx->work, "%lld", (long long)ctx->settle_ms);
    char *rows = sp_arena_printf(&ctx->work, "%zu", ctx->asm_max_rows);
    char *ttl = sp_arena_printf(&ctx->work, "%lld", (long long)ctx->retention_ms);
    char *bytes = sp_arena_printf(&ctx->work, "%zu", ctx->asm_max_bytes);
    char *norm = sp_arena_printf(&ctx->work, "%zu", norm_len);
    if (!argv || !lens || !key || !now || !settle || !rows || !ttl || !bytes ||
        !norm)
        return -1;
    const char *args[] = {key, item->prefix, item->alert->id, field, value,
                          now, settle, rows, ttl, bytes, norm};
    int argc = 3;
    for (size_t i = 0; i < SP_ARRAY_SIZE(args); i++) {
        argv[argc] = args[i];
        lens[argc] = args[i] == value ? vlen : strlen(args[i]);
        argc++;
    }
    *argvp = argv;
    *lensp = lens;
    return argc;
}

/* ---- rows: rebuild --------------------------------------------------------- */

static int64_t jint(const struct sp_json *obj, const char *key, int64_t def)
{
    int64_t v;
    return sp_json_int(sp_json_get(obj, key), &v) ? v : def;
}

static const char **jstrings(struct sp_arena *a, const struct sp_json *list,
                             size_t *n)
{
    *n = 0;
    if (!list || list->type != SP_JSON_ARRAY || list->n == 0)
        return NULL;
    const char **v = sp_arena_alloc(a, list->n * sizeof(*v));
    if (!v)
        return NULL;
    sp_json_foreach(list, it)
        if (it->type == SP_JSON_STRING)
            v[(*n)++] = it->u.s;
    return v;
}

static void add_entities(struct sp_arena *a, struct sp_alert *alert,
                         const struct sp_json *row, uint32_t max)
{
    sp_json_foreach(sp_json_get(row, "ents"), e) {
        const char *type = sp_json_str(e, "type");
        const char *key = sp_json_str(e, "key");
        if (!type)
            continue;
        struct sp_entity *ent = key ? sp_alert_find_entity(alert, key) : NULL;
        if (!ent) {
            ent = sp_alert_add_entity(a, alert, type, max);
            if (!ent)
                return;
            ent->key = key;
        }
        sp_json_foreach(sp_json_get(e, "ids"), id) {
            if (id->type != SP_JSON_ARRAY || id->n != 2)
                continue;
            const struct sp_json *n = id->u.child, *v = n->next;
            if (n->type == SP_JSON_STRING && v->type == SP_JSON_STRING)
                sp_entity_add_id(a, ent, n->u.s, v->u.s);
        }
        sp_json_foreach(sp_json_get(e, "roles"), r)
            if (r->type == SP_JSON_STRING)
                sp_entity_add_role(ent, r->u.s);
    }
}

struct ev_row {
    const redisReply *field, *value;
};

static int cmp_field(const void *x, const void *y)
{
    const struct ev_row *a = x, *b = y;
    return strcmp(a->field->str, b->field->str);
}

/* Sections of an assembled alert at most, and entries of one array. */
#define ASM_SECTIONS_MAX 8
#define ASM_SECTION_ITEMS_MAX 64

/* The rows' sections (what stages before correlate added to each row,
 * e.g. "scripts"), one per name in the alert: arrays concatenated in row
 * order without repeats (the same command line in two rows is analysed
 * once), at most ASM_SECTION_ITEMS_MAX entries; any other value as the
 * first row has it. */
static enum sp_err add_sections(struct sp_arena *a, struct sp_alert *alert,
                                const struct sp_json *info,
                                const struct sp_json *const *rows,
                                size_t n_rows)
{
    const char *names[ASM_SECTIONS_MAX];
    size_t n_names = 0;
    for (size_t r = 0; r <= n_rows; r++) {
        const struct sp_json *row = r == 0 ? info : rows[r - 1];
        sp_json_foreach(sp_json_get(row, "sec"), s) {
            const char *name = s->type == SP_JSON_ARRAY && s->n == 2 &&
                               s->u.child->type == SP_JSON_STRING
                ? s->u.child->u.s : NULL;
            size_t k = 0;
            while (name && k < n_names && strcmp(names[k], name) != 0)
                k++;
            if (name && k == n_names && n_names < ASM_SECTIONS_MAX)
                names[n_names++] = name;
        }
    }
    for (size_t k = 0; k < n_names; k++) {
        struct sp_buf b;
        sp_buf_init(&b, (size_t)16 << 20);
        struct sp_jw w;
        sp_jw_init(&w, &b);
        const struct sp_json *seen[ASM_SECTION_ITEMS_MAX];
        size_t n_seen = 0;
        bool array = false, done = false;
        for (size_t r = 0; r <= n_rows && !done; r++) {
            const struct sp_json *row = r == 0 ? info : rows[r - 1];
            sp_json_foreach(sp_json_get(row, "sec"), s) {
                if (s->type != SP_JSON_ARRAY || s->n != 2 ||
                    s->u.child->type != SP_JSON_STRING ||
                    strcmp(s->u.child->u.s, names[k]) != 0)
                    continue;
                const struct sp_json *v = s->u.child->next;
                if (!array && n_seen == 0 && v->type != SP_JSON_ARRAY) {
                    sp_jw_raw(&w, v->src, v->src_len);    /* the first */
                    done = true;
                    break;
                }
                if (v->type != SP_JSON_ARRAY)
                    continue;
                if (!array) {
                    sp_jw_arr_open(&w);
                    array = true;
                }
                sp_json_foreach(v, it) {
                    size_t j = 0;
                    while (j < n_seen && !(seen[j]->src_len == it->src_len &&
                                           memcmp(seen[j]->src, it->src,
                                                  it->src_len) == 0))
                        j++;
                    if (j < n_seen || n_seen == ASM_SECTION_ITEMS_MAX)
                        continue;
                    seen[n_seen++] = it;
                    sp_jw_raw(&w, it->src, it->src_len);
                }
            }
        }
        if (array)
            sp_jw_arr_close(&w);
        enum sp_err e = SP_OK;
        if (sp_jw_ok(&w) && b.len) {
            char *json = sp_arena_strndup(a, b.data, b.len);
            e = json ? sp_alert_add_section(a, alert, names[k], json, b.len)
                     : SP_ERR_NOMEM;
        }
        sp_buf_fini(&b);
        if (e)
            return e;
    }
    return SP_OK;
}

/*
 * Builds the assembled alert from the asm hash (field/value pairs).
 * *ready is false when there is no AlertInfo row yet and max_wait has not
 * passed.  Returns NULL when nothing usable is stored (or no memory).
 */
static struct sp_alert *assemble(struct corr_ctx *ctx, struct sp_arena *a,
                                 const char *alert_id, const redisReply *h,
                                 int64_t wall_ms, int64_t *rev, bool *ready,
                                 bool *nomem, size_t *left_out)
{
    /* left_out NULL: every row or nothing (*nomem); else the rows past
     * half the arena are left out and counted, so that one assembly too
     * big for memory still goes out with what fits. */
    size_t used0 = a->used;
    struct sp_json_limits lim = {(size_t)16 << 20, 64, 1000000};
    const struct sp_json *info = NULL;
    size_t n_ev = 0;
    struct ev_row *ev = sp_arena_alloc(a, (h->elements / 2 + 1) * sizeof(*ev));
    int64_t t0 = wall_ms;
    *rev = 0;
    *ready = false;
    *nomem = false;
    if (!ev) {
        *nomem = true;
        return NULL;
    }
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "rev") == 0)
            *rev = strtoll(v->str, NULL, 10);
        else if (strcmp(f->str, "t0") == 0)
            t0 = strtoll(v->str, NULL, 10);
        else if (strcmp(f->str, "info") == 0) {
            struct sp_json_error jerr;
            info = sp_json_parse(a, v->str, v->len, &lim, &jerr);
            if (!info && jerr.code == SP_JSON_E_NOMEM) {
                *nomem = true;
                return NULL;
            }
        } else if (strncmp(f->str, "ev:", 3) == 0) {
            ev[n_ev].field = f;
            ev[n_ev].value = v;
            n_ev++;
        }
    }
    if (!info && wall_ms - t0 < ctx->max_wait_ms)
        return NULL;                /* wait for the AlertInfo row */
    *ready = true;
    /* Evidence in field order: the same rows give the same alert. */
    qsort(ev, n_ev, sizeof(*ev), cmp_field);
    /* From here, memory running out must not pass for "nothing usable":
     * the caller would mark the assembly done and the alert be lost. */
    const struct sp_json **rows = sp_arena_alloc(a, (n_ev + 1) * sizeof(*rows));
    if (!rows) {
        *nomem = true;
        return NULL;
    }
    size_t n_rows = 0;
    for (size_t i = 0; i < n_ev; i++) {
        const redisReply *v = ev[i].value;
        if (left_out && a->max && a->used - used0 > a->max / 2) {
            (*left_out)++;
            continue;
        }
        struct sp_json_error jerr;
        struct sp_json *d = sp_json_parse(a, v->str, v->len, &lim, &jerr);
        if (!d && jerr.code == SP_JSON_E_NOMEM && left_out) {
            (*left_out)++;
            continue;
        }
        if (!d && jerr.code == SP_JSON_E_NOMEM) {
            *nomem = true;
            return NULL;
        }
        if (d && d->type == SP_JSON_OBJECT)
            rows[n_rows++] = d;
    }
    const struct sp_json *base = info ? info : (n_rows ? rows[0] : NULL);
    if (!base || base->type != SP_JSON_OBJECT)
        return NULL;
    struct sp_alert *alert = sp_alert_new(a);
    if (!alert) {
        *nomem = true;
        return NULL;
    }
    alert->id = alert_id;
    alert->source = sp_json_str(base, "source");
    if (!alert->source)
        alert->source = "defender-streaming";
    alert->provider = sp_json_str(base, "provider");
    alert->provider_alert_id = sp_json_str(base, "pa");
    alert->provider_incident_id = sp_json_str(base, "pi");
    alert->title = sp_json_str(base, "title");
    if (!alert->title)
        alert->title = sp_arena_printf(a, "Defender alert %s",
                                       alert->provider_alert_id
                                           ? alert->provider_alert_id
                                           : alert_id);
    alert->description = sp_json_str(base, "desc");
    int64_t sev = jint(base, "sev", 0);
    alert->severity = sev >= 0 && sev <= SP_SEV_HIGH ? (enum sp_severity)sev
                                                     : SP_SEV_UNKNOWN;
    alert->severity_original = sp_json_str(base, "sevo");
    alert->status = sp_json_str(base, "status");
    alert->category = sp_json_str(base, "cat");
    alert->detector = sp_json_str(base, "det");
    alert->tactics = jstrings(a, sp_json_get(base, "tac"), &alert->n_tactics);
    alert->techniques = jstrings(a, sp_json_get(base, "tec"),
                                 &alert->n_techniques);
    alert->first_activity = jint(base, "fa", SP_TIME_NONE);
    alert->last_activity = jint(base, "la", SP_TIME_NONE);
    alert->created = jint(base, "cr", SP_TIME_NONE);
    alert->updated = jint(base, "up", SP_TIME_NONE);
    sp_json_foreach(sp_json_get(base, "links"), l) {
        if (l->type != SP_JSON_ARRAY || l->n != 2)
            continue;
        if (!alert->links)
            alert->links = sp_arena_calloc(a, sp_json_get(base, "links")->n *
                                                  sizeof(*alert->links));
        if (!alert->links)
            break;
        alert->links[alert->n_links].name = l->u.child->u.s;
        alert->links[alert->n_links].url = l->u.child->next->u.s;
        alert->n_links++;
    }
    uint32_t max = ASM_MAX_ENTITIES;
    if (info)
        add_entities(a, alert, info, max);
    for (size_t i = 0; i < n_rows; i++) {
        add_entities(a, alert, rows[i], max);
        /* The latest row time is the alert's update time. */
        int64_t up = jint(rows[i], "up", SP_TIME_NONE);
        if (up != SP_TIME_NONE && (alert->updated == SP_TIME_NONE ||
                                   up > alert->updated))
            alert->updated = up;
        if (!alert->provider_incident_id)
            alert->provider_incident_id = sp_json_str(rows[i], "pi");
    }
    if (alert->first_activity == SP_TIME_NONE)
        alert->first_activity = alert->created;
    alert->part = SP_PART_WHOLE;
    if (add_sections(a, alert, info, rows, n_rows) == SP_ERR_NOMEM) {
        *nomem = true;
        return NULL;
    }

    /* The original rows, as one document. */
    struct sp_buf raw;
    sp_buf_init(&raw, (size_t)8 << 20);
    struct sp_jw w;
    sp_jw_init(&w, &raw);
    sp_jw_obj_open(&w);
    sp_jw_key(&w, "info");
    const struct sp_json *r = info ? sp_json_get(info, "raw") : NULL;
    if (r)
        sp_jw_raw(&w, r->src, r->src_len);
    else
        sp_jw_null(&w);
    sp_jw_key(&w, "evidence");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < n_rows; i++)
        if ((r = sp_json_get(rows[i], "raw")))
            sp_jw_raw(&w, r->src, r->src_len);
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);
    if (sp_jw_ok(&w)) {
        alert->raw = sp_arena_strndup(a, raw.data, raw.len);
        alert->raw_len = alert->raw ? raw.len : 0;
    }
    sp_buf_fini(&raw);
    return alert;
}

/* ---- tick ------------------------------------------------------------------ */

/* The analyze stage's side sections of the assembled alerts (their
 * script analyses and details, for the incident's analysis): what the
 * stage writes for the alerts passing it, which these do not.  Only a
 * lost connection fails the emission; a refused write is logged (the
 * analysis then goes without it). */
static enum sp_err write_sides(struct corr_ctx *ctx,
                               const struct corr_item *items, size_t n)
{
    if (!ctx->st->env || ctx->st->env->analysis_quiet_ms <= 0)
        return SP_OK;
    int owed = 0;
    bool failed = false;
    for (size_t i = 0; i < n && !failed; i++) {
        if (items[i].err || !items[i].done || !items[i].inc[0])
            continue;
        int appended = 0;
        failed = sp_analyze_append_sides(ctx->redis, items[i].prefix,
                                         items[i].inc, items[i].alert,
                                         ctx->retention_ms / 1000,
                                         &appended) < 0;
        owed += appended;
    }
    enum sp_err e = SP_OK;
    for (int i = 0; i < owed; i++) {
        redisReply *rep = NULL;
        enum sp_err rd = sp_redis_read(ctx->redis, &rep);
        if (rd)
            return rd;              /* the connection is gone */
        if (sp_redis_reply_err(rep) && !e)
            e = SP_ERR_REMOTE;
        freeReplyObject(rep);
    }
    if (failed || e) {
        static struct sp_log_rl rl;
        sp_log_warn_rl(&rl, 10000, ctx->st->log, "assembled alerts: their "
                       "script analyses and details for the incident's "
                       "analysis were not all written");
    }
    return SP_OK;
}

/* Incidents the assembled alerts changed, each once: the correlate
 * script scheduled their analysis (when it is on), which the analyze
 * stage, which these alerts do not pass, cannot count. */
static size_t scheduled(const struct corr_ctx *ctx,
                        const struct corr_item *items, size_t n)
{
    if (!ctx->st->env || ctx->st->env->analysis_quiet_ms <= 0)
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct corr_item *it = &items[i];
        if (it->err || !it->done || !it->changed || !it->inc[0])
            continue;
        size_t j = 0;
        while (j < i && !(items[j].changed && !items[j].err && items[j].done &&
                          strcmp(items[j].inc, it->inc) == 0 &&
                          strcmp(items[j].prefix, it->prefix) == 0))
            j++;
        k += j == i;
    }
    return k;
}

static enum sp_err emit(struct corr_ctx *ctx, struct corr_item *items,
                        const int64_t *revs, size_t n)
{
    /* Versions go out in order: what the last batch changed first. */
    enum sp_err e = corr_owed_publish(ctx);
    if (e)
        return e;
    ctx->n_changed = 0;
    e = corr_run(ctx, items, n);
    if (e)
        return e;
    sp_counter_add(ctx->c_an_scheduled, scheduled(ctx, items, n));
    if ((e = write_sides(ctx, items, n)))
        return e;
    struct corr_out *out = corr_out_new(ctx);
    if (!out)
        return SP_ERR_NOMEM;
    size_t emitted = 0;
    for (size_t i = 0; i < n; i++) {
        struct corr_item *item = &items[i];
        if (item->err || !item->done) {
            static struct sp_log_rl rl;
            sp_log_warn_rl(&rl, 10000, ctx->st->log, "assembled alert %s: %s "
                           "(tried again after the lease)", item->alert->id,
                           item->errmsg ? item->errmsg : "not correlated");
            continue;
        }
        item->alert->incident_id = item->inc;
        item->alert->incident_version = item->version;
        item->alert->incident_changed = item->changed;
        if (corr_out_alert(ctx, out, item->alert) == SP_OK &&
            corr_out_expect_asm(out, item->prefix, item->alert->id,
                                revs[i]) == SP_OK)
            emitted++;
    }
    if ((e = corr_out_snapshots(ctx, out))) {
        corr_out_abandon(ctx, out);
        return e;
    }
    corr_out_seal(ctx, out);
    sp_counter_add(ctx->c_assembled, emitted);
    return SP_OK;
}

/* Queues an assembly ack: rev -1 = "not yet" (still waiting for its
 * AlertInfo row: due again after settle), else done with that revision
 * (nothing usable was stored: drop it). */
static void queue_ack(struct corr_ctx *ctx, const char *prefix,
                      const char *alert_id, int64_t rev)
{
    struct corr_acks *acks = ctx->acks;
    if (acks->n >= CORR_ACKS_MAX)
        return;                     /* the lease brings it back anyway */
    if (acks->n == acks->cap) {
        size_t c = acks->cap ? acks->cap * 2 : 64;
        struct corr_ack *a = realloc(acks->items, c * sizeof(*a));
        if (!a)
            return;
        acks->items = a;
        acks->cap = c;
    }
    struct corr_ack *a = &acks->items[acks->n];
    a->kind = 'a';
    a->prefix = strdup(prefix);
    a->id = strdup(alert_id);
    a->num = rev;
    a->part = -1;
    a->off = -1;
    if (!a->prefix || !a->id) {
        free(a->prefix);
        free(a->id);
        return;
    }
    acks->n++;
}

/* What keeps a tenant in <prefix>:tenants:asm: assemblies to poll. */
static const char *const asm_keys[] = {"asmdue"};

/*
 * Memory of a poll: one pipelined round asks every tenant of the SSCAN
 * step for its due assemblies, each up to its share of
 * correlate.defender.poll_bytes of rows, so the replies of the round hold
 * at most that.  A tenant whose
 * first due assembly alone is bigger than its share names it instead
 * (asm_take's {alert, bytes}); those are taken afterwards one at a time,
 * each in a round of its own, as long as the poll's arena has room: at
 * most correlate.defender.max_bytes plus an AlertInfo row each.
 */
/* Sends the take script of the tenants marked in sel and reads their
 * replies into reps (idle[i]: the tenant has no assembly at all). */
static enum sp_err take_round(struct corr_ctx *ctx,
                              const struct corr_tenant *takes,
                              const bool *sel, redisReply **reps, bool *idle,
                              size_t nt, const char *now, const char *lease,
                              const char *limit, const char *bytes,
                              const char *force)
{
    enum sp_err e = SP_OK;
    size_t sent = 0;
    for (size_t i = 0; i < nt && !e; i++) {
        if (!sel[i])
            continue;
        char key[CORR_PREFIX_MAX + 8];
        snprintf(key, sizeof(key), "%sasmdue", takes[i].prefix);
        const char *targv[] = {NULL, NULL, NULL, key, takes[i].prefix, now,
                               lease, limit, bytes, force};
        size_t tlens[SP_ARRAY_SIZE(targv)] = {0};
        for (size_t k = 3; k < SP_ARRAY_SIZE(targv); k++)
            tlens[k] = strlen(targv[k]);
        e = sp_redis_append_evalsha(ctx->redis, &ctx->s_asm_take, 1,
                                    (int)SP_ARRAY_SIZE(targv), targv, tlens);
        sent += e == SP_OK;
    }
    /* Every reply first: the connection must be idle before anything
     * else (a script reload) is sent. */
    bool noscript = false;
    for (size_t i = 0, got = 0; i < nt && got < sent; i++) {
        if (!sel[i])
            continue;
        got++;
        enum sp_err rd = sp_redis_read(ctx->redis, &reps[i]);
        if (rd)
            return rd;              /* the connection is gone */
        enum sp_err re = sp_redis_reply_err(reps[i]);
        idle[i] = !re && reps[i]->type == REDIS_REPLY_INTEGER &&
                  reps[i]->integer == 0;
        if (re == SP_ERR_NOTFOUND)
            noscript = true;
        else if (re && !e)
            e = re == SP_ERR_REMOTE || re == SP_ERR_CONFIG ? SP_ERR_RETRY : re;
    }
    if (!e && noscript)
        e = sp_redis_load_scripts(ctx->redis);
    return e;
}

/* Assembles the alerts of one tenant's take reply into the poll's items.
 * *full: the poll's memory is spent (the rest of this reply, and the
 * tenants after it, wait for a later poll).  *big: the reply names an
 * assembly bigger than the tenant's share, to be taken alone. */
static enum sp_err take_tenant(struct corr_ctx *ctx, struct sp_arena *a,
                               const struct corr_tenant *take,
                               const redisReply *list, int64_t wall_ms,
                               struct corr_item **itemsp, int64_t **revsp,
                               size_t *np, size_t *capp, bool *full,
                               bool *big)
{
    for (size_t j = 0; j < list->elements; j++) {
        const redisReply *it = list->element[j];
        if (it->type == REDIS_REPLY_ARRAY && it->elements == 2 &&
            it->element[1]->type == REDIS_REPLY_INTEGER) {
            *big = true;            /* bigger than its share: taken alone */
            continue;
        }
        if (it->type != REDIS_REPLY_ARRAY || it->elements != 2 ||
            it->element[0]->type != REDIS_REPLY_STRING ||
            it->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        size_t used0 = a->used;
        const char *alert_id = sp_arena_strdup(a, it->element[0]->str);
        int64_t rev = 0;
        bool ready = false, nomem = alert_id == NULL;
        struct sp_alert *alert = alert_id
            ? assemble(ctx, a, alert_id, it->element[1], wall_ms, &rev,
                       &ready, &nomem, NULL)
            : NULL;
        bool alone = *np == 0 && used0 <= a->max / 16;
        if (nomem && !alone) {
            /* This poll's memory is spent: what is assembled goes out;
             * this one and the rest keep their due entries and come
             * back when their lease runs out, in a fresh poll. */
            *full = true;
            return SP_OK;
        }
        if (nomem && alert_id) {
            /* Alone in a fresh poll and still too big for memory: it
             * never will fit, so it goes out with the rows that do,
             * said loudly and counted. */
            sp_arena_reset(a);      /* nothing else lives there */
            alert_id = sp_arena_strdup(a, it->element[0]->str);
            size_t left_out = 0;
            alert = alert_id ? assemble(ctx, a, alert_id, it->element[1],
                                        wall_ms, &rev, &ready, &nomem,
                                        &left_out)
                             : NULL;
            sp_log_error(ctx->st->log, "Defender alert %s: %zu of its "
                         "rows do not fit in memory; %s without them",
                         it->element[0]->str, left_out,
                         alert ? "assembled" : "not assembled");
            sp_counter_inc(ctx->c_asm_dropped);
        }
        if (!alert) {
            if (alert_id)
                queue_ack(ctx, take->prefix, alert_id, ready ? rev : -1);
            continue;
        }
        alert->tenant = sp_arena_strdup(a, take->tenant);
        if (*np == *capp) {
            size_t c = *capp ? *capp * 2 : 32;
            struct corr_item *ni = realloc(*itemsp, c * sizeof(*ni));
            if (ni)
                *itemsp = ni;
            int64_t *nr = realloc(*revsp, c * sizeof(*nr));
            if (nr)
                *revsp = nr;
            if (!ni || !nr)
                return SP_ERR_NOMEM;
            *capp = c;
        }
        struct corr_item *item = &(*itemsp)[*np];
        memset(item, 0, sizeof(*item));
        item->alert = alert;
        item->arena = a;
        item->tenant = alert->tenant;
        snprintf(item->prefix, sizeof(item->prefix), "%s", take->prefix);
        (*revsp)[(*np)++] = rev;
    }
    return SP_OK;
}

enum sp_err corr_asm_tick(struct corr_ctx *ctx, int64_t wall_ms)
{
    char setkey[80];
    corr_set_key(ctx->key_prefix, CORR_SET_ASM, setkey, sizeof(setkey));
    struct corr_tenant *takes = NULL;
    size_t nt = 0;
    enum sp_err e = corr_tenants_step(ctx->redis, ctx->key_prefix, setkey,
                                      asm_keys, 1, ctx->asm_cursor,
                                      sizeof(ctx->asm_cursor), ASM_SCAN_COUNT,
                                      ASM_TENANTS_MAX, &takes, &nt);
    if (e || nt == 0) {
        free(takes);
        return e;
    }
    redisReply **reps = calloc(nt, sizeof(*reps));
    bool *idle = calloc(nt, sizeof(*idle));
    bool *sel = calloc(nt, sizeof(*sel));
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct corr_item *items = NULL;
    int64_t *revs = NULL;
    size_t n = 0, cap = 0;
    if (!reps || !idle || !sel) {
        e = SP_ERR_NOMEM;
        goto out;
    }
    char now[24], lease[24], limit[24], share[24];
    snprintf(now, sizeof(now), "%lld", (long long)wall_ms);
    snprintf(lease, sizeof(lease), "%lld", (long long)ctx->lease_ms);
    snprintf(limit, sizeof(limit), "%zu", ctx->asm_batch);
    snprintf(share, sizeof(share), "%zu", SP_MAX(ctx->asm_poll_bytes / nt,
                                                 (size_t)1));
    for (size_t i = 0; i < nt; i++)
        sel[i] = takes[i].tenant[0] != '\0';
    bool full = false;
    e = take_round(ctx, takes, sel, reps, idle, nt, now, lease, limit, share,
                   "0");
    for (size_t i = 0; i < nt && !e && !full; i++) {
        sel[i] = false;
        if (reps[i] && reps[i]->type == REDIS_REPLY_ARRAY)
            e = take_tenant(ctx, &a, &takes[i], reps[i], wall_ms, &items,
                            &revs, &n, &cap, &full, &sel[i]);
    }
    /* The round's replies go before the big ones come: what was kept of
     * them is in the arena. */
    for (size_t i = 0; i < nt; i++) {
        freeReplyObject(reps[i]);
        reps[i] = NULL;
    }
    /* Each assembly bigger than its tenant's share, alone. */
    for (size_t i = 0; i < nt && !e && !full; i++) {
        if (!sel[i])
            continue;
        bool one[1] = {true}, ignored[1], big = false;
        redisReply *rep[1] = {NULL};
        e = take_round(ctx, &takes[i], one, rep, ignored, 1, now, lease, "1",
                       share, "1");
        if (!e && rep[0] && rep[0]->type == REDIS_REPLY_ARRAY)
            e = take_tenant(ctx, &a, &takes[i], rep[0], wall_ms, &items,
                            &revs, &n, &cap, &full, &big);
        freeReplyObject(rep[0]);
    }
    if (!e && n)
        e = emit(ctx, items, revs, n);
    if (!e)
        e = corr_tenants_forget(ctx->redis, setkey, asm_keys, 1, takes, idle,
                                nt);
out:
    for (size_t i = 0; i < nt && reps; i++)
        freeReplyObject(reps[i]);
    free(takes);
    free(reps);
    free(idle);
    free(sel);
    free(items);
    free(revs);
    sp_arena_fini(&a);
    return e;
}
