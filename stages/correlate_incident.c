/*
 * correlate_incident.c - the incident as consumers see it: the snapshot
 * JSON published on the incidents topic (schema/incident.schema.json) and
 * the text of `socpilot incident explain`, both built from one atomic
 * read of the incident (meta hash, alert summaries, why list).
 *
 * Entities are not stored per incident: each alert summary lists its
 * entities, and the snapshot derives the deduplicated list with the
 * alerts that carry each one.  Noisy and stop-listed marks come from the
 * decisions recorded in why.
 *
 * Everything read from Redis is data: summaries and decisions are parsed
 * with the bounded parser and re-emitted field by field, never spliced.
 *
 * Pure functions over their arguments; any thread.
 */
#include "correlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inc_alert {
    const char *id, *title, *severity, *source, *detector, *provider, *status,
        *pid;
    int64_t t;
    const struct sp_json *ents;
};

struct inc_entity {
    const char *key, *type, *noisy;
    uint32_t *alerts;               /* indexes into the sorted alerts */
    uint32_t n, cap;
};

struct inc_view {
    const redisReply *meta;
    struct inc_alert *alerts;
    size_t n_alerts;
    struct inc_entity *ents;
    size_t n_ents;
    struct sp_json **why;
    size_t n_why;
    const char **pids;
    size_t n_pids;
};

static const char *mget(const redisReply *meta, const char *name)
{
    for (size_t i = 0; i + 1 < meta->elements; i += 2)
        if (meta->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(meta->element[i]->str, name) == 0)
            return meta->element[i + 1]->type == REDIS_REPLY_STRING
                       ? meta->element[i + 1]->str
                       : NULL;
    return NULL;
}

static int64_t mnum(const redisReply *meta, const char *name)
{
    const char *s = mget(meta, name);
    return s ? strtoll(s, NULL, 10) : 0;
}

static int cmp_alert(const void *a, const void *b)
{
    const struct inc_alert *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_entity(const void *a, const void *b)
{
    return strcmp(((const struct inc_entity *)a)->key,
                  ((const struct inc_entity *)b)->key);
}

/* Entity table: open addressing over the keys. */
static struct inc_entity *ent_get(struct sp_arena *a, struct inc_entity **slots,
                                  size_t cap, const char *key)
{
    uint64_t h = corr_hash(CORR_HASH_INIT, key, strlen(key));
    for (size_t i = 0; i < cap; i++) {
        struct inc_entity **s = &slots[(h + i) % cap];
        if (!*s) {
            *s = sp_arena_calloc(a, sizeof(**s));
            if (*s)
                (*s)->key = key;
            return *s;
        }
        if (strcmp((*s)->key, key) == 0)
            return *s;
    }
    return NULL;
}

static bool ent_add_alert(struct sp_arena *a, struct inc_entity *e, uint32_t ai)
{
    if (e->n && e->alerts[e->n - 1] == ai)
        return true;
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 4;
        uint32_t *n = sp_arena_alloc(a, cap * sizeof(*n));
        if (!n)
            return false;
        if (e->n)
            memcpy(n, e->alerts, e->n * sizeof(*n));
        e->alerts = n;
        e->cap = cap;
    }
    e->alerts[e->n++] = ai;
    return true;
}

static void mark_noisy(struct sp_arena *a, struct inc_entity **slots,
                       size_t cap, const struct sp_json *list,
                       const char *how)
{
    sp_json_foreach(list, k) {
        if (k->type != SP_JSON_STRING)
            continue;
        struct inc_entity *e = ent_get(a, slots, cap, k->u.s);
        if (e && !e->noisy)
            e->noisy = how;
    }
}

/* ---- reading ------------------------------------------------------------ */

enum sp_err corr_snapshot_append(struct sp_redis *r, const char *prefix,
                                 const char *id, int64_t why_max)
{
    char meta[CORR_PREFIX_MAX + 100], al[CORR_PREFIX_MAX + 104],
        why[CORR_PREFIX_MAX + 104], from[24];
    snprintf(meta, sizeof(meta), "%si:%s", prefix, id);
    snprintf(al, sizeof(al), "%s:al", meta);
    snprintf(why, sizeof(why), "%s:why", meta);
    snprintf(from, sizeof(from), "%lld",
             why_max < 0 ? 0LL : -(long long)SP_MAX(why_max, 1));
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    size_t ml[] = {5}, el[] = {4};
    const char *hm[] = {"HGETALL", meta}, *ha[] = {"HGETALL", al};
    size_t hml[] = {7, strlen(meta)}, hal[] = {7, strlen(al)};
    const char *lr[] = {"LRANGE", why, from, "-1"};
    size_t lrl[] = {6, strlen(why), strlen(from), 2};
    if (why_max == 0) {
        lr[2] = "1";            /* an empty range keeps the reply's shape */
        lr[3] = "0";
        lrl[2] = lrl[3] = 1;
    }
    enum sp_err e;
    if ((e = sp_redis_append(r, 1, multi, ml)) ||
        (e = sp_redis_append(r, 2, hm, hml)) ||
        (e = sp_redis_append(r, 2, ha, hal)) ||
        (e = sp_redis_append(r, 4, lr, lrl)) ||
        (e = sp_redis_append(r, 1, exec, el)))
        return e;
    return SP_OK;
}

enum sp_err corr_snapshot_read(struct sp_redis *r, redisReply **out)
{
    enum sp_err bad = SP_OK;
    *out = NULL;
    for (int i = 0; i < CORR_SNAPSHOT_REPLIES; i++) {
        redisReply *rep;
        enum sp_err e = sp_redis_read(r, &rep);
        if (e)
            return e;
        enum sp_err re = sp_redis_reply_err(rep);
        if (re && !bad)
            bad = re;
        if (i == CORR_SNAPSHOT_REPLIES - 1 && !bad)
            *out = rep;
        else
            freeReplyObject(rep);
    }
    return bad;
}

/* Parses the reply into v (memory from a).  SP_ERR_NOTFOUND: no incident. */
static enum sp_err view_build(struct sp_arena *a, const redisReply *rep,
                              struct inc_view *v)
{
    memset(v, 0, sizeof(*v));
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return SP_ERR_NOTFOUND;
    if (rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_ARRAY ||
        rep->element[1]->type != REDIS_REPLY_ARRAY ||
        rep->element[2]->type != REDIS_REPLY_ARRAY)
        return SP_ERR_INVALID;
    if (rep->element[0]->elements == 0)
        return SP_ERR_NOTFOUND;     /* no meta: gone (expired) */
    v->meta = rep->element[0];
    const redisReply *al = rep->element[1], *why = rep->element[2];
    struct sp_json_limits lim = {(size_t)1 << 20, 16, 100000};

    size_t na = al->elements / 2, n_refs = 0;
    v->alerts = sp_arena_calloc(a, (na + 1) * sizeof(*v->alerts));
    v->pids = sp_arena_calloc(a, (na + 1) * sizeof(*v->pids));
    if (!v->alerts || !v->pids)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < na; i++) {
        const redisReply *val = al->element[2 * i + 1];
        if (val->type != REDIS_REPLY_STRING)
            continue;
        struct sp_json_error jerr;
        struct sp_json *d = sp_json_parse(a, val->str, val->len, &lim, &jerr);
        if (!d || d->type != SP_JSON_OBJECT)
            continue;           /* not ours: leave it out */
        struct inc_alert *x = &v->alerts[v->n_alerts];
        x->id = sp_json_str(d, "id");
        if (!x->id)
            continue;
        x->title = sp_json_str(d, "title");
        x->severity = sp_json_str(d, "severity");
        x->source = sp_json_str(d, "source");
        x->detector = sp_json_str(d, "detector");
        x->provider = sp_json_str(d, "provider");
        x->status = sp_json_str(d, "status");
        x->pid = sp_json_str(d, "provider_incident_id");
        sp_json_int(sp_json_get(d, "t"), &x->t);
        x->ents = sp_json_get(d, "ents");
        if (x->ents)
            n_refs += x->ents->n;
        v->n_alerts++;
        if (x->pid) {
            bool seen = false;
            for (size_t j = 0; j < v->n_pids && !seen; j++)
                seen = strcmp(v->pids[j], x->pid) == 0;
            if (!seen)
                v->pids[v->n_pids++] = x->pid;
        }
    }
    qsort(v->alerts, v->n_alerts, sizeof(*v->alerts), cmp_alert);

    size_t cap = n_refs * 2 + 16;
    for (size_t i = 0; i < why->elements; i++)
        cap += 8;
    struct inc_entity **slots = sp_arena_calloc(a, cap * sizeof(*slots));
    if (!slots)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < v->n_alerts; i++) {
        sp_json_foreach(v->alerts[i].ents, pair) {
            if (pair->type != SP_JSON_ARRAY || pair->n != 2)
                continue;
            const struct sp_json *ty = pair->u.child, *k = ty->next;
            if (ty->type != SP_JSON_STRING || k->type != SP_JSON_STRING)
                continue;
            struct inc_entity *e = ent_get(a, slots, cap, k->u.s);
            if (!e)
                return SP_ERR_NOMEM;
            if (!e->type)
                e->type = ty->u.s;
            if (!ent_add_alert(a, e, (uint32_t)i))
                return SP_ERR_NOMEM;
        }
    }

    v->why = sp_arena_calloc(a, (why->elements + 1) * sizeof(*v->why));
    if (!v->why)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < why->elements; i++) {
        const redisReply *w = why->element[i];
        if (w->type != REDIS_REPLY_STRING)
            continue;
        struct sp_json_error jerr;
        struct sp_json *d = sp_json_parse(a, w->str, w->len, &lim, &jerr);
        if (!d || d->type != SP_JSON_OBJECT)
            continue;
        v->why[v->n_why++] = d;
    }
    /* Only entities some alert carries are listed; a noisy mark on an
     * entity that left with a merge must not add it back. */
    for (size_t i = 0; i < v->n_why; i++) {
        struct inc_entity **probe = slots;
        mark_noisy(a, probe, cap, sp_json_get(v->why[i], "stoplisted"),
                   "stoplist");
        mark_noisy(a, probe, cap, sp_json_get(v->why[i], "noisy"), "auto");
    }
    v->ents = sp_arena_calloc(a, (cap + 1) * sizeof(*v->ents));
    if (!v->ents)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++)
        if (slots[i] && slots[i]->n)
            v->ents[v->n_ents++] = *slots[i];
    qsort(v->ents, v->n_ents, sizeof(*v->ents), cmp_entity);
    return SP_OK;
}

/* ---- snapshot JSON ------------------------------------------------------- */

static void jw_ms(struct sp_jw *w, const char *key, int64_t ms)
{
    sp_jw_ktime(w, key, ms > 0 ? ms * 1000 : SP_TIME_NONE);
}

static void jw_str_or_null(struct sp_jw *w, const char *key, const char *s)
{
    sp_jw_key(w, key);
    if (s && *s)
        sp_jw_str(w, s);
    else
        sp_jw_null(w);
}

static void jw_strings(struct sp_jw *w, const char *key,
                       const struct sp_json *list, size_t max)
{
    if (!list || list->type != SP_JSON_ARRAY || list->n == 0)
        return;
    sp_jw_key(w, key);
    sp_jw_arr_open(w);
    size_t n = 0;
    sp_json_foreach(list, it) {
        if (n++ >= max)
            break;
        if (it->type == SP_JSON_STRING)
            sp_jw_str(w, it->u.s);
    }
    sp_jw_arr_close(w);
}

static void jw_json_ms(struct sp_jw *w, const char *key,
                       const struct sp_json *v)
{
    int64_t ms;
    if (sp_json_int(v, &ms) && ms > 0)
        sp_jw_ktime(w, key, ms * 1000);
}

/* A recorded decision, re-emitted with the contract's names. */
static void write_why(struct sp_jw *w, const struct sp_json *d, size_t max_list)
{
    sp_jw_obj_open(w);
    const char *how = sp_json_str(d, "how");
    sp_jw_kstr(w, "how", how ? how : "unknown");
    sp_jw_kstr_opt(w, "alert", sp_json_str(d, "alert"));
    sp_jw_kstr_opt(w, "incident", sp_json_str(d, "incident"));
    jw_json_ms(w, "at", sp_json_get(d, "at"));
    jw_json_ms(w, "processed_at", sp_json_get(d, "ts"));
    sp_jw_kstr_opt(w, "rule", sp_json_str(d, "rule"));
    sp_jw_kstr_opt(w, "mode", sp_json_str(d, "mode"));
    jw_strings(w, "entities", sp_json_get(d, "via"), max_list);
    const struct sp_json *merged = sp_json_get(d, "merged");
    if (merged && merged->type == SP_JSON_ARRAY && merged->n) {
        sp_jw_key(w, "merged");
        sp_jw_arr_open(w);
        sp_json_foreach(merged, m) {
            const char *inc = sp_json_str(m, "incident");
            if (!inc)
                continue;
            sp_jw_obj_open(w);
            sp_jw_kstr(w, "incident", inc);
            jw_strings(w, "entities", sp_json_get(m, "via"), max_list);
            sp_jw_obj_close(w);
        }
        sp_jw_arr_close(w);
    }
    jw_strings(w, "merge_skipped", sp_json_get(d, "merge_skipped"), max_list);
    jw_strings(w, "noisy", sp_json_get(d, "noisy"), max_list);
    jw_strings(w, "stoplisted", sp_json_get(d, "stoplisted"), max_list);
    sp_jw_kstr_opt(w, "previous", sp_json_str(d, "previous"));
    sp_jw_kstr_opt(w, "continued_from", sp_json_str(d, "continued_from"));
    sp_jw_kstr_opt(w, "provider_incident_id",
                   sp_json_str(d, "provider_incident"));
    sp_jw_kstr_opt(w, "flood", sp_json_str(d, "flood"));
    sp_jw_kstr_opt(w, "by", sp_json_str(d, "by"));
    sp_jw_obj_close(w);
}

static const char *closed_reason(const char *cb)
{
    if (!cb || !*cb)
        return NULL;
    if (strcmp(cb, "alerts") == 0)
        return "alerts_resolved";
    return cb;                          /* merged | cli */
}

/* Limits per attempt: full, then cut, then minimal. */
struct write_lim {
    size_t ents, ent_alerts, why, list;
};

static void write_snapshot(struct sp_jw *w, const struct inc_view *v,
                           const char *id, const struct write_lim *lim,
                           bool truncated)
{
    const redisReply *m = v->meta;
    int64_t sev = mnum(m, "sev");
    if (sev < 0 || sev > SP_SEV_HIGH)
        sev = 0;
    const char *st = mget(m, "st");
    sp_jw_obj_open(w);
    sp_jw_kstr(w, "schema_version", "1");
    sp_jw_kstr(w, "id", id);
    sp_jw_kstr(w, "tenant", mget(m, "ten") ? mget(m, "ten") : "");
    sp_jw_kint(w, "version", SP_MAX(mnum(m, "v"), 1));
    sp_jw_kstr(w, "status", st ? st : "new");
    jw_str_or_null(w, "closed_reason", closed_reason(mget(m, "cb")));
    sp_jw_kstr(w, "severity", sp_severity_name((enum sp_severity)sev));
    sp_jw_kstr(w, "title", mget(m, "ti") ? mget(m, "ti") : "");
    jw_ms(w, "first_seen", mnum(m, "fs"));
    jw_ms(w, "last_seen", mnum(m, "ls"));
    jw_ms(w, "created", mnum(m, "cr"));
    jw_ms(w, "updated", mnum(m, "up"));
    sp_jw_kstr_opt(w, "rule", mget(m, "rule"));
    sp_jw_key(w, "flood");
    if (mget(m, "fl")) {
        sp_jw_obj_open(w);
        sp_jw_kstr(w, "key", mget(m, "fl"));
        sp_jw_obj_close(w);
    } else {
        sp_jw_null(w);
    }
    sp_jw_key(w, "provider_incident_ids");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < v->n_pids; i++)
        sp_jw_str(w, v->pids[i]);
    sp_jw_arr_close(w);
    sp_jw_kint(w, "alerts_total", (int64_t)v->n_alerts);
    sp_jw_key(w, "alerts");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < v->n_alerts; i++) {
        const struct inc_alert *x = &v->alerts[i];
        sp_jw_obj_open(w);
        sp_jw_kstr(w, "id", x->id);
        sp_jw_kstr(w, "title", x->title ? x->title : "");
        sp_jw_kstr(w, "severity", x->severity ? x->severity : "informational");
        jw_ms(w, "time", x->t);
        sp_jw_kstr_opt(w, "source", x->source);
        sp_jw_kstr_opt(w, "detector", x->detector);
        sp_jw_kstr_opt(w, "provider", x->provider);
        sp_jw_kstr_opt(w, "status", x->status);
        sp_jw_kstr_opt(w, "provider_incident_id", x->pid);
        sp_jw_obj_close(w);
    }
    sp_jw_arr_close(w);
    sp_jw_key(w, "entities");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < v->n_ents && i < lim->ents; i++) {
        const struct inc_entity *e = &v->ents[i];
        sp_jw_obj_open(w);
        sp_jw_kstr(w, "key", e->key);
        sp_jw_kstr(w, "type", e->type ? e->type : "other");
        sp_jw_key(w, "alerts");
        sp_jw_arr_open(w);
        for (uint32_t j = 0; j < e->n && j < lim->ent_alerts; j++)
            sp_jw_str(w, v->alerts[e->alerts[j]].id);
        sp_jw_arr_close(w);
        sp_jw_kstr_opt(w, "noisy", e->noisy);
        sp_jw_obj_close(w);
    }
    sp_jw_arr_close(w);
    sp_jw_key(w, "links");
    sp_jw_obj_open(w);
    jw_str_or_null(w, "previous", mget(m, "prev"));
    jw_str_or_null(w, "continued_from", mget(m, "cont"));
    sp_jw_key(w, "merged");
    sp_jw_arr_open(w);
    const char *mg = mget(m, "mg");
    for (const char *p = mg; p && *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l)
            sp_jw_strn(w, p, l);
        p = c ? c + 1 : p + l;
    }
    sp_jw_arr_close(w);
    sp_jw_obj_close(w);
    jw_str_or_null(w, "merged_into", mget(m, "mi"));
    sp_jw_key(w, "why");
    sp_jw_arr_open(w);
    size_t from = v->n_why > lim->why ? v->n_why - lim->why : 0;
    for (size_t i = from; i < v->n_why; i++)
        write_why(w, v->why[i], lim->list);
    sp_jw_arr_close(w);
    sp_jw_kbool(w, "truncated", truncated);
    /* Sections later stages fill. */
    sp_jw_key(w, "scripts");
    sp_jw_arr_open(w);
    sp_jw_arr_close(w);
    /* The analyze stage stores its latest result in the meta hash ("an",
     * written by our own scripts, valid JSON), so every republish keeps it. */
    sp_jw_key(w, "analysis");
    const char *an = mget(m, "an");
    if (an && *an)
        sp_jw_raw(w, an, strlen(an));
    else
        sp_jw_null(w);
    sp_jw_key(w, "guidance");
    sp_jw_arr_open(w);
    sp_jw_arr_close(w);
    sp_jw_key(w, "ticket");
    sp_jw_null(w);
    sp_jw_obj_close(w);
}

enum sp_err corr_incident_write(const redisReply *rep, const char *id,
                                struct sp_buf *out, size_t max_bytes,
                                int64_t *version)
{
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct inc_view v;
    enum sp_err e = view_build(&a, rep, &v);
    if (e)
        goto out;
    *version = SP_MAX(mnum(v.meta, "v"), 1);
    static const struct write_lim lims[] = {
        {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX},
        {500, 20, 100, 20},
        {0, 0, 0, 0},
    };
    size_t saved_max = out->max;
    out->max = max_bytes;
    e = SP_ERR_LIMIT;
    for (size_t i = 0; i < SP_ARRAY_SIZE(lims); i++) {
        sp_buf_reset(out);
        out->overflow = false;
        struct sp_jw w;
        sp_jw_init(&w, out);
        write_snapshot(&w, &v, id, &lims[i], i > 0);
        if (sp_jw_ok(&w)) {
            e = SP_OK;
            break;
        }
    }
    out->max = saved_max;
out:
    sp_arena_fini(&a);
    return e;
}

/* ---- explain ------------------------------------------------------------- */

/* Untrusted text for a terminal: control bytes become '?'. */
static void put_safe(struct sp_buf *b, const char *s)
{
    for (size_t i = 0; s && s[i] && i < 2000; i++) {
        unsigned char c = (unsigned char)s[i];
        sp_buf_putc(b, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
    }
}

static void put_list(struct sp_buf *b, const struct sp_json *list)
{
    size_t n = 0;
    sp_json_foreach(list, it) {
        if (it->type != SP_JSON_STRING)
            continue;
        if (n++)
            sp_buf_puts(b, ", ");
        put_safe(b, it->u.s);
    }
}

static void put_time(struct sp_buf *b, const struct sp_json *v)
{
    int64_t ms;
    char tmp[32];
    if (sp_json_int(v, &ms) && ms > 0) {
        sp_time_format(ms * 1000, tmp);
        sp_buf_puts(b, tmp);
    } else {
        sp_buf_puts(b, "-");
    }
}

static void explain_why(struct sp_buf *b, const struct sp_json *d,
                        const char *id)
{
    const char *how = sp_json_str(d, "how");
    const char *alert = sp_json_str(d, "alert");
    const char *inc = sp_json_str(d, "incident");
    sp_buf_puts(b, "  ");
    put_time(b, sp_json_get(d, alert ? "at" : "ts"));
    sp_buf_puts(b, "  ");
    if (alert) {
        sp_buf_puts(b, "alert ");
        put_safe(b, alert);
        sp_buf_puts(b, " ");
    }
    if (inc && strcmp(inc, id) != 0) {
        sp_buf_puts(b, "(in ");
        put_safe(b, inc);
        sp_buf_puts(b, ") ");
    }
    if (!how)
        how = "?";
    if (strcmp(how, "new") == 0) {
        sp_buf_puts(b, "opened the incident: no open incident shared a "
                       "correlating entity within the window");
    } else if (strcmp(how, "entity") == 0) {
        sp_buf_puts(b, "joined via ");
        put_list(b, sp_json_get(d, "via"));
    } else if (strcmp(how, "group") == 0) {
        sp_buf_puts(b, "joined: same entities and fields (mode all)");
    } else if (strcmp(how, "provider") == 0) {
        sp_buf_puts(b, "joined provider incident ");
        put_safe(b, sp_json_str(d, "provider_incident"));
    } else if (strcmp(how, "flood") == 0) {
        sp_buf_puts(b, "collapsed into the flood incident for \"");
        put_safe(b, sp_json_str(d, "flood"));
        sp_buf_puts(b, "\"");
    } else if (strcmp(how, "continuation") == 0) {
        sp_buf_puts(b, "opened a continuation of full incident ");
        put_safe(b, sp_json_str(d, "continued_from"));
    } else if (strcmp(how, "after_closed") == 0) {
        sp_buf_puts(b, "opened a new incident: the matching one (");
        put_safe(b, sp_json_str(d, "previous"));
        sp_buf_puts(b, ") is closed");
    } else if (strcmp(how, "update") == 0) {
        sp_buf_puts(b, "updated (newer version of the alert)");
    } else if (strcmp(how, "closed") == 0 || strcmp(how, "reopened") == 0) {
        sp_buf_puts(b, how);
        sp_buf_puts(b, " by ");
        put_safe(b, sp_json_str(d, "by"));
    } else {
        put_safe(b, how);
    }
    const char *rule = sp_json_str(d, "rule"), *mode = sp_json_str(d, "mode");
    if (rule && strcmp(how, "update") != 0) {
        sp_buf_puts(b, " [rule ");
        put_safe(b, rule);
        sp_buf_puts(b, ", mode ");
        put_safe(b, mode);
        sp_buf_puts(b, "]");
    }
    sp_buf_putc(b, '\n');
    sp_json_foreach(sp_json_get(d, "merged"), m) {
        sp_buf_puts(b, "        merged ");
        put_safe(b, sp_json_str(m, "incident"));
        sp_buf_puts(b, " into this incident (bridged by ");
        put_list(b, sp_json_get(m, "via"));
        sp_buf_puts(b, ")\n");
    }
    const struct sp_json *l;
    if ((l = sp_json_get(d, "merge_skipped")) && l->n) {
        sp_buf_puts(b, "        not merged (would pass max_alerts): ");
        put_list(b, l);
        sp_buf_putc(b, '\n');
    }
    if ((l = sp_json_get(d, "noisy")) && l->n) {
        sp_buf_puts(b, "        ignored, noisy (automatic threshold): ");
        put_list(b, l);
        sp_buf_putc(b, '\n');
    }
    if ((l = sp_json_get(d, "stoplisted")) && l->n) {
        sp_buf_puts(b, "        ignored, on the stop-list: ");
        put_list(b, l);
        sp_buf_putc(b, '\n');
    }
}

enum sp_err corr_incident_explain(const redisReply *rep, const char *id,
                                  const redisReply *noisy, struct sp_buf *out)
{
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct inc_view v;
    enum sp_err e = view_build(&a, rep, &v);
    if (e)
        goto out;
    const redisReply *m = v.meta;
    char fs[32] = "-", ls[32] = "-";
    if (mnum(m, "fs") > 0)
        sp_time_format(mnum(m, "fs") * 1000, fs);
    if (mnum(m, "ls") > 0)
        sp_time_format(mnum(m, "ls") * 1000, ls);
    int64_t sev = mnum(m, "sev");
    sp_buf_printf(out, "incident %s  version %lld  status %s", id,
                  (long long)mnum(m, "v"), mget(m, "st") ? mget(m, "st") : "?");
    if (closed_reason(mget(m, "cb"))) {
        sp_buf_puts(out, " (");
        sp_buf_puts(out, closed_reason(mget(m, "cb")));
        sp_buf_puts(out, ")");
    }
    sp_buf_puts(out, "\ntenant ");
    put_safe(out, mget(m, "ten"));
    sp_buf_printf(out, "  severity %s  alerts %zu  first seen %s  last seen "
                  "%s\ntitle: ",
                  sp_severity_name((enum sp_severity)(sev >= 0 && sev <= 4 ? sev : 0)),
                  v.n_alerts, fs, ls);
    put_safe(out, mget(m, "ti"));
    sp_buf_putc(out, '\n');
    if (mget(m, "mi")) {
        sp_buf_puts(out, "merged into ");
        put_safe(out, mget(m, "mi"));
        sp_buf_puts(out, ": its alerts and decisions moved there\n");
    }
    if (mget(m, "prev") || mget(m, "cont") || mget(m, "mg")) {
        sp_buf_puts(out, "links:");
        if (mget(m, "prev")) {
            sp_buf_puts(out, " previous (closed) ");
            put_safe(out, mget(m, "prev"));
        }
        if (mget(m, "cont")) {
            sp_buf_puts(out, " continued from ");
            put_safe(out, mget(m, "cont"));
        }
        if (mget(m, "mg")) {
            sp_buf_puts(out, " merged in: ");
            put_safe(out, mget(m, "mg"));
        }
        sp_buf_putc(out, '\n');
    }
    if (mget(m, "fl")) {
        sp_buf_puts(out, "flood incident for \"");
        put_safe(out, mget(m, "fl"));
        sp_buf_puts(out, "\"\n");
    }
    sp_buf_puts(out, "why:\n");
    for (size_t i = 0; i < v.n_why; i++)
        explain_why(out, v.why[i], id);
    size_t shown = 0;
    for (size_t i = 0; i < v.n_ents; i++) {
        const char *since = NULL;
        for (size_t j = 0; noisy && noisy->type == REDIS_REPLY_ARRAY &&
                           j + 1 < noisy->elements; j += 2)
            if (noisy->element[j]->type == REDIS_REPLY_STRING &&
                strcmp(noisy->element[j]->str, v.ents[i].key) == 0)
                since = noisy->element[j + 1]->str;
        if (!since && !v.ents[i].noisy)
            continue;
        if (!shown++)
            sp_buf_puts(out, "noisy entities (never correlate):\n");
        sp_buf_puts(out, "  ");
        put_safe(out, v.ents[i].key);
        if (v.ents[i].noisy && strcmp(v.ents[i].noisy, "stoplist") == 0)
            sp_buf_puts(out, "  on the stop-list");
        if (since) {
            char ts[32];
            sp_time_format(strtoll(since, NULL, 10) * 1000, ts);
            sp_buf_printf(out, "  automatic: linked to more unrelated "
                          "incidents than the threshold, since %s", ts);
        }
        sp_buf_putc(out, '\n');
    }
    e = out->overflow ? SP_ERR_LIMIT : SP_OK;
out:
    sp_arena_fini(&a);
    return e;
}
