/*
 * analysis_index.c - reads an incident snapshot (parsed JSON) into the
 * arrays the rest of the analysis works on: alerts in time order with
 * their entities, entities with a kind, a display name and the marks
 * enrichment gives them (privileged, VIP, critical asset), and the script
 * analyses.  It also keeps the grounding corpus (every string of the
 * incident, lower-cased) and searches it.
 *
 * The snapshot format is owned by correlation (schema/incident.schema.json);
 * this reader is tolerant on purpose: alert entities may be keys or
 * objects, entities may list their alerts, times may sit in any of the
 * usual fields, and unknown members are ignored.  Bounded by
 * opts.max_alerts / max_entities and AN_MAX_SCRIPTS.
 *
 * Everything is allocated from the caller's arena; any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

static const char *const kind_names[] = {
    [AN_HOST] = "host",     [AN_USER] = "account", [AN_EMAIL] = "mailbox",
    [AN_IP] = "ip",         [AN_URL] = "url",      [AN_DOMAIN] = "domain",
    [AN_FILE] = "file",     [AN_PROCESS] = "process", [AN_OTHER] = "other",
};

const char *an_kind_name(enum an_kind k)
{
    return (unsigned)k < SP_ARRAY_SIZE(kind_names) ? kind_names[k] : "other";
}

const char *an_time(char buf[32], int64_t us)
{
    if (us == SP_TIME_NONE) {
        strcpy(buf, "unknown");
        return buf;
    }
    sp_time_format(us, buf);
    return buf;
}

/* ---- small readers ------------------------------------------------------ */

/* A member as text; an array gives its first scalar. */
static const char *member_text(const struct sp_json *obj, const char *key)
{
    const struct sp_json *v = sp_json_get(obj, key);
    if (v && v->type == SP_JSON_ARRAY)
        v = v->u.child;
    const char *s = sp_json_scalar(v);
    return s && *s ? s : NULL;
}

static int64_t first_time(const struct sp_json *obj, const char *const *keys,
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = sp_json_str(obj, keys[i]);
        int64_t us;
        if (s && sp_time_parse(s, &us))
            return us;
    }
    return SP_TIME_NONE;
}

static enum an_kind kind_of(const char *type)
{
    static const struct {
        const char *name;
        enum an_kind kind;
    } map[] = {
        {"host", AN_HOST},       {"device", AN_HOST},  {"machine", AN_HOST},
        {"account", AN_USER},    {"user", AN_USER},    {"mailbox", AN_EMAIL},
        {"email", AN_EMAIL},     {"mail", AN_EMAIL},   {"ip", AN_IP},
        {"ip-address", AN_IP},   {"url", AN_URL},      {"domain", AN_DOMAIN},
        {"dns", AN_DOMAIN},      {"file", AN_FILE},    {"filehash", AN_FILE},
        {"process", AN_PROCESS},
    };
    if (!type)
        return AN_OTHER;
    for (size_t i = 0; i < SP_ARRAY_SIZE(map); i++)
        if (sp_strcaseeq(type, map[i].name))
            return map[i].kind;
    return AN_OTHER;
}

/* An identifier from ent.ids (or ent itself, for flatter formats). */
static const char *ident(const struct sp_json *ent, const char *const *names,
                         size_t n)
{
    const struct sp_json *ids = sp_json_get(ent, "ids");
    for (size_t i = 0; i < n; i++) {
        const char *s = member_text(ids, names[i]);
        if (!s)
            s = member_text(ent, names[i]);
        if (s)
            return s;
    }
    return NULL;
}

#define IDENT(ent, ...)                                                      \
    ident((ent), (const char *const[]){__VA_ARGS__},                         \
          sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static const char *entity_name(struct sp_arena *a, const struct sp_json *ent,
                               enum an_kind kind, const char *key)
{
    const char *s = NULL;
    switch (kind) {
    case AN_HOST:
        s = IDENT(ent, "fqdn", "hostname", "host_name", "dns_name", "name",
                  "netbios");
        break;
    case AN_USER: {
        s = IDENT(ent, "upn", "user_principal_name", "email");
        if (s)
            break;
        const char *dom = IDENT(ent, "nt_domain", "domain");
        const char *name = IDENT(ent, "name", "account_name", "user");
        if (dom && name)
            s = sp_arena_printf(a, "%s\\%s", dom, name);
        else
            s = name ? name : IDENT(ent, "display_name", "sid", "aad_user_id",
                                    "object_id");
        break;
    }
    case AN_EMAIL:
        s = IDENT(ent, "address", "upn", "email", "recipient");
        break;
    case AN_IP:
        s = IDENT(ent, "address", "ip");
        break;
    case AN_URL:
        s = IDENT(ent, "url", "address");
        break;
    case AN_DOMAIN:
        s = IDENT(ent, "domain", "name", "fqdn");
        break;
    case AN_FILE:
        s = IDENT(ent, "name", "file_name", "path", "sha256", "sha1", "md5");
        break;
    case AN_PROCESS: {
        const char *img = IDENT(ent, "image_path", "name", "image");
        if (img) {
            const char *slash = strrchr(img, '\\');
            const char *fslash = strrchr(img, '/');
            if (fslash > slash)
                slash = fslash;
            s = slash && slash[1] ? slash + 1 : img;
        }
        break;
    }
    case AN_OTHER:
        s = IDENT(ent, "name", "value", "address");
        break;
    }
    if (!s && key) {
        const char *colon = strchr(key, ':');
        s = colon && colon[1] ? colon + 1 : key;
        /* "file:sha256:<hex>" -> the hash itself */
        const char *algo = kind == AN_FILE ? strchr(s, ':') : NULL;
        if (algo && algo[1] && (size_t)(algo - s) <= 6)
            s = algo + 1;
    }
    return s ? s : "(unnamed)";
}

/* ---- enrichment marks --------------------------------------------------- */

static bool truthy(const struct sp_json *v)
{
    if (!v)
        return false;
    if (v->type == SP_JSON_TRUE)
        return true;
    const char *s = sp_json_scalar(v);
    return s && (sp_strcaseeq(s, "true") || sp_strcaseeq(s, "yes"));
}

static bool word_is(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (sp_strcaseeq(s, words[i]))
            return true;
    return false;
}

static const char *const priv_words[] = {"privileged", "admin", "administrator",
                                         "domain-admin", "global-admin",
                                         "tier0", "tier-0"};
static const char *const vip_words[] = {"vip", "executive", "c-level"};
static const char *const crit_words[] = {"critical", "crown-jewel",
                                         "domain-controller", "high-value",
                                         "tier0", "tier-0"};

/* Looks through enrichment records (any depth up to 4) for the marks. */
static void marks(const struct sp_json *v, struct an_entity *e, int depth)
{
    if (!v || depth > 4)
        return;
    sp_json_foreach(v, it) {
        const char *k = it->key;
        if (k) {
            if ((sp_strcaseeq(k, "privileged") || sp_strcaseeq(k, "is_admin") ||
                 sp_strcaseeq(k, "admin") || sp_strcaseeq(k, "is_privileged")) &&
                truthy(it))
                e->privileged = true;
            if ((sp_strcaseeq(k, "vip") || sp_strcaseeq(k, "is_vip")) &&
                truthy(it))
                e->vip = true;
            if ((sp_strcaseeq(k, "critical") || sp_strcaseeq(k, "is_critical") ||
                 sp_strcaseeq(k, "crown_jewel")) && truthy(it))
                e->critical = true;
            if (sp_strcaseeq(k, "criticality") ||
                sp_strcaseeq(k, "asset_criticality") ||
                sp_strcaseeq(k, "tier")) {
                const char *s = sp_json_scalar(it);
                if (s && (sp_strcaseeq(s, "high") || sp_strcaseeq(s, "critical") ||
                          sp_strcaseeq(s, "tier0") || strcmp(s, "0") == 0))
                    e->critical = true;
            }
        }
        if (it->type == SP_JSON_STRING && !k) {   /* tags, labels, roles */
            const char *s = it->u.s;
            e->privileged |= word_is(s, priv_words, SP_ARRAY_SIZE(priv_words));
            e->vip |= word_is(s, vip_words, SP_ARRAY_SIZE(vip_words));
            e->critical |= word_is(s, crit_words, SP_ARRAY_SIZE(crit_words));
        }
        if (it->type == SP_JSON_OBJECT || it->type == SP_JSON_ARRAY)
            marks(it, e, depth + 1);
    }
}

static void entity_marks(struct an_entity *e)
{
    marks(sp_json_get(e->j, "enrichment"), e, 0);
    marks(sp_json_get(e->j, "roles"), e, 0);
    marks(sp_json_get(e->j, "tags"), e, 0);
    if (e->kind == AN_USER) {
        const char *sid = IDENT(e->j, "sid");
        size_t n = sid ? strlen(sid) : 0;
        if (n > 4 && strcmp(sid + n - 4, "-500") == 0)
            e->privileged = true;             /* built-in Administrator */
        const char *name = IDENT(e->j, "name");
        if (name && sp_strcaseeq(name, "administrator"))
            e->privileged = true;
    }
}

/* ---- building the index ------------------------------------------------- */

struct keyref {
    const char *k;
    uint32_t i;
};

static int keyref_cmp(const void *a, const void *b)
{
    return strcmp(((const struct keyref *)a)->k, ((const struct keyref *)b)->k);
}

static int64_t keyref_find(const struct keyref *v, size_t n, const char *k)
{
    if (!k)
        return -1;
    struct keyref probe = {k, 0};
    const struct keyref *hit = bsearch(&probe, v, n, sizeof(*v), keyref_cmp);
    return hit ? (int64_t)hit->i : -1;
}

static bool add_entity(struct sp_arena *a, struct an_inc *ix, size_t cap,
                       const struct sp_json *ent)
{
    if (!ent || ent->type != SP_JSON_OBJECT)
        return true;
    ix->n_ents_total++;
    if (ix->n_ents >= cap)
        return true;
    struct an_entity *e = &ix->ents[ix->n_ents++];
    memset(e, 0, sizeof(*e));
    e->j = ent;
    e->type = sp_json_str(ent, "type");
    e->key = sp_json_str(ent, "key");
    e->kind = kind_of(e->type);
    e->name = entity_name(a, ent, e->kind, e->key);
    e->t_first = SP_TIME_NONE;
    if (!e->name)
        return false;
    entity_marks(e);
    return true;
}

static int alert_cmp(const void *pa, const void *pb)
{
    const struct an_alert *a = pa, *b = pb;
    if (a->t_first != b->t_first) {
        if (a->t_first == SP_TIME_NONE)
            return 1;
        if (b->t_first == SP_TIME_NONE)
            return -1;
        return a->t_first < b->t_first ? -1 : 1;
    }
    return strcmp(a->id ? a->id : "", b->id ? b->id : "");
}

static int entity_rank(const struct an_entity *e)
{
    return (e->critical || e->privileged || e->vip ? 1000000 : 0) +
           (int)SP_MIN(e->n_alerts, 1000u) * 100 + e->sev_max * 10 +
           (AN_OTHER - (int)e->kind);
}

static int entity_cmp(const void *pa, const void *pb)
{
    const struct an_entity *a = pa, *b = pb;
    int ra = entity_rank(a), rb = entity_rank(b);
    if (ra != rb)
        return rb - ra;
    return strcmp(a->name, b->name);
}

struct link {
    uint32_t alert, ent;
};

static int link_cmp(const void *pa, const void *pb)
{
    const struct link *a = pa, *b = pb;
    if (a->alert != b->alert)
        return a->alert < b->alert ? -1 : 1;
    return a->ent < b->ent ? -1 : (a->ent > b->ent);
}

static void corpus_walk(struct sp_buf *b, const struct sp_json *v, int depth)
{
    if (!v || depth > 64 || b->overflow)
        return;
    if (v->type == SP_JSON_STRING || v->type == SP_JSON_NUMBER) {
        size_t at = b->len;
        if (sp_buf_put(b, v->u.s, v->n) != SP_OK)
            return;
        for (size_t i = at; i < b->len; i++)
            b->data[i] = sp_tolower(b->data[i]);
        sp_buf_putc(b, '\n');
        return;
    }
    sp_json_foreach(v, it) {
        if (depth == 0 && it->key &&
            (strcmp(it->key, "analysis") == 0 ||
             strcmp(it->key, "guidance") == 0 || strcmp(it->key, "ticket") == 0))
            continue;
        corpus_walk(b, it, depth + 1);
    }
}

static enum sp_err link_all(struct sp_arena *a, struct an_inc *ix)
{
    size_t na = ix->n_alerts, ne = ix->n_ents;
    struct keyref *aid = sp_arena_alloc(a, (na + 1) * sizeof(*aid));
    struct keyref *ekey = sp_arena_alloc(a, (ne + 1) * sizeof(*ekey));
    if (!aid || !ekey)
        return SP_ERR_NOMEM;
    size_t n_aid = 0, n_ekey = 0;
    for (size_t i = 0; i < na; i++)
        if (ix->alerts[i].id)
            aid[n_aid++] = (struct keyref){ix->alerts[i].id, (uint32_t)i};
    for (size_t i = 0; i < ne; i++)
        if (ix->ents[i].key)
            ekey[n_ekey++] = (struct keyref){ix->ents[i].key, (uint32_t)i};
    qsort(aid, n_aid, sizeof(*aid), keyref_cmp);
    qsort(ekey, n_ekey, sizeof(*ekey), keyref_cmp);

    /* Links from both sides, bounded, then deduplicated. */
    size_t cap = 4 * (na + ne) + 64, n = 0;
    struct link *links = sp_arena_alloc(a, cap * sizeof(*links));
    if (!links)
        return SP_ERR_NOMEM;
    for (size_t e = 0; e < ne && n < cap; e++) {
        const struct sp_json *al = sp_json_get(ix->ents[e].j, "alerts");
        if (!al)
            al = sp_json_get(ix->ents[e].j, "alert_ids");
        sp_json_foreach(al, it) {
            const char *id = it->type == SP_JSON_STRING ? it->u.s
                                                        : sp_json_str(it, "id");
            int64_t ai = keyref_find(aid, n_aid, id);
            if (ai >= 0 && n < cap)
                links[n++] = (struct link){(uint32_t)ai, (uint32_t)e};
        }
    }
    for (size_t i = 0; i < na && n < cap; i++) {
        sp_json_foreach(sp_json_get(ix->alerts[i].j, "entities"), it) {
            const char *key = it->type == SP_JSON_STRING ? it->u.s
                                                         : sp_json_str(it, "key");
            int64_t ei = keyref_find(ekey, n_ekey, key);
            if (ei >= 0 && n < cap)
                links[n++] = (struct link){(uint32_t)i, (uint32_t)ei};
        }
    }
    qsort(links, n, sizeof(*links), link_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || link_cmp(&links[m - 1], &links[i]) != 0)
            links[m++] = links[i];
    uint32_t *pool = sp_arena_alloc(a, (m + 1) * sizeof(*pool));
    if (!pool)
        return SP_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < m;) {
        struct an_alert *al = &ix->alerts[links[i].alert];
        al->ents = pool + at;
        while (i < m && &ix->alerts[links[i].alert] == al) {
            struct an_entity *e = &ix->ents[links[i].ent];
            pool[at++] = links[i].ent;
            al->n_ents++;
            e->n_alerts++;
            e->sev_max = SP_MAX(e->sev_max, al->sev);
            if (al->t_first != SP_TIME_NONE &&
                (e->t_first == SP_TIME_NONE || al->t_first < e->t_first))
                e->t_first = al->t_first;
            i++;
        }
    }
    return SP_OK;
}

/* Entities are ranked after linking; alert->ents indices follow. */
static enum sp_err rank_entities(struct sp_arena *a, struct an_inc *ix)
{
    size_t ne = ix->n_ents;
    if (ne == 0)
        return SP_OK;
    struct an_entity *sorted = sp_arena_alloc(a, ne * sizeof(*sorted));
    uint32_t *where = sp_arena_alloc(a, ne * sizeof(*where));
    if (!sorted || !where)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < ne; i++)
        ix->ents[i].orig = (uint32_t)i;
    memcpy(sorted, ix->ents, ne * sizeof(*sorted));
    qsort(sorted, ne, sizeof(*sorted), entity_cmp);
    for (size_t i = 0; i < ne; i++)
        where[sorted[i].orig] = (uint32_t)i;
    for (size_t i = 0; i < ne; i++)
        snprintf(sorted[i].label, sizeof(sorted[i].label), "E%zu", i + 1);
    ix->ents = sorted;
    for (size_t i = 0; i < ix->n_alerts; i++)
        for (uint32_t k = 0; k < ix->alerts[i].n_ents; k++)
            ix->alerts[i].ents[k] = where[ix->alerts[i].ents[k]];
    return SP_OK;
}

static int script_risk(const struct sp_json *s)
{
    const struct sp_json *r = sp_json_get(s, "risk");
    if (r && r->type == SP_JSON_OBJECT)
        r = sp_json_get(r, "score");
    if (!r)
        r = sp_json_get(s, "risk_score");
    double d;
    if (!sp_json_double(r, &d))
        return -1;
    if (d <= 1.0 && d > 0 && r->n > 1 && strchr(r->u.s, '.'))
        d *= 100;                              /* 0..1 scale */
    return (int)SP_MAX(0, SP_MIN(100, d));
}

static void index_scripts(struct an_inc *ix, struct sp_arena *a)
{
    const struct sp_json *arr = sp_json_get(ix->root, "scripts");
    if (!arr || arr->type != SP_JSON_ARRAY)
        return;
    size_t n = SP_MIN(arr->n, (uint32_t)AN_MAX_SCRIPTS);
    ix->scripts = sp_arena_calloc(a, (n + 1) * sizeof(*ix->scripts));
    if (!ix->scripts)
        return;
    sp_json_foreach(arr, it) {
        if (ix->n_scripts >= n)
            break;
        if (it->type != SP_JSON_OBJECT)
            continue;
        struct an_script *s = &ix->scripts[ix->n_scripts];
        s->j = it;
        s->alert_id = member_text(it, "alert_id");
        if (!s->alert_id)
            s->alert_id = member_text(it, "alert");
        s->language = member_text(it, "language");
        s->input = member_text(it, "command_line");
        if (!s->input)
            s->input = member_text(it, "input");
        s->layers = sp_json_get(it, "layers");
        s->final = member_text(it, "final");
        if (!s->final)
            s->final = member_text(it, "decoded");
        if (!s->final && s->layers && s->layers->type == SP_JSON_ARRAY) {
            const struct sp_json *last = NULL;
            sp_json_foreach(s->layers, l) last = l;
            s->final = last && last->type == SP_JSON_STRING
                           ? last->u.s : sp_json_str(last, "text");
        }
        s->behaviours = sp_json_get(it, "behaviours");
        if (!s->behaviours)
            s->behaviours = sp_json_get(it, "behaviors");
        s->indicators = sp_json_get(it, "indicators");
        if (!s->indicators)
            s->indicators = sp_json_get(it, "iocs");
        s->risk = script_risk(it);
        snprintf(s->label, sizeof(s->label), "S%zu", ix->n_scripts + 1);
        ix->n_scripts++;
    }
}

enum sp_err an_index(struct sp_arena *a, const struct sp_json *inc,
                     const struct sp_analysis_opts *o, struct an_inc *ix)
{
    memset(ix, 0, sizeof(*ix));
    if (!inc || inc->type != SP_JSON_OBJECT)
        return SP_ERR_INVALID;
    ix->root = inc;
    ix->id = member_text(inc, "id");
    ix->tenant = member_text(inc, "tenant");
    ix->title = member_text(inc, "title");
    ix->status = member_text(inc, "status");
    ix->sev = sp_severity_parse(member_text(inc, "severity"));

    const struct sp_json *alerts = sp_json_get(inc, "alerts");
    const struct sp_json *ents = sp_json_get(inc, "entities");
    size_t cap_a = SP_MIN(alerts && alerts->type == SP_JSON_ARRAY ? alerts->n : 0,
                          o->max_alerts);
    size_t cap_e = o->max_entities;
    size_t all_e = (ents && ents->type == SP_JSON_ARRAY ? ents->n : 0);
    ix->alerts = sp_arena_calloc(a, (cap_a + 1) * sizeof(*ix->alerts));
    ix->ents = sp_arena_calloc(a, (SP_MIN(cap_e, all_e + 4 * cap_a) + 1) *
                                      sizeof(*ix->ents));
    if (!ix->alerts || !ix->ents)
        return SP_ERR_NOMEM;
    size_t ent_cap = SP_MIN(cap_e, all_e + 4 * cap_a);

    static const char *const first_keys[] = {"first_activity", "time",
        "first_seen", "created", "timestamp", "last_activity", "updated"};
    static const char *const last_keys[] = {"last_activity", "last_seen",
        "updated", "time", "created", "first_activity"};
    sp_json_foreach(alerts, it) {
        ix->n_alerts_total++;
        if (ix->n_alerts >= cap_a)
            continue;
        struct an_alert *al = &ix->alerts[ix->n_alerts++];
        al->j = it;
        if (it->type == SP_JSON_STRING) {
            al->id = it->u.s;
            al->t_first = al->t_last = SP_TIME_NONE;
            continue;
        }
        al->id = member_text(it, "id");
        al->title = member_text(it, "title");
        al->description = member_text(it, "description");
        al->detector = member_text(it, "detector");
        al->category = member_text(it, "category");
        al->status = member_text(it, "status");
        al->provider = member_text(it, "provider");
        al->sev = sp_severity_parse(member_text(it, "severity"));
        al->t_first = first_time(it, first_keys, SP_ARRAY_SIZE(first_keys));
        al->t_last = first_time(it, last_keys, SP_ARRAY_SIZE(last_keys));
        al->tactics = sp_json_get(it, "tactics");
        al->techniques = sp_json_get(it, "techniques");
    }
    int64_t total;
    if (sp_json_int(sp_json_get(inc, "alerts_total"), &total) &&
        total > (int64_t)ix->n_alerts_total)
        ix->n_alerts_total = (size_t)total;   /* the snapshot was capped */
    sp_json_foreach(ents, it) {
        if (!add_entity(a, ix, ent_cap, it))
            return SP_ERR_NOMEM;
    }
    /* Entities only alerts carry (objects not in the incident's list). */
    for (size_t i = 0; i < ix->n_alerts; i++) {
        sp_json_foreach(sp_json_get(ix->alerts[i].j, "entities"), it) {
            if (it->type != SP_JSON_OBJECT)
                continue;
            const char *key = sp_json_str(it, "key");
            bool known = false;
            for (size_t e = 0; key && e < ix->n_ents && !known; e++)
                known = ix->ents[e].key && strcmp(ix->ents[e].key, key) == 0;
            if (!known && !add_entity(a, ix, ent_cap, it))
                return SP_ERR_NOMEM;
        }
    }
    qsort(ix->alerts, ix->n_alerts, sizeof(*ix->alerts), alert_cmp);
    for (size_t i = 0; i < ix->n_alerts; i++) {
        struct an_alert *al = &ix->alerts[i];
        snprintf(al->label, sizeof(al->label), "A%zu", i + 1);
        ix->sev = SP_MAX(ix->sev, al->sev);    /* never below its alerts */
    }
    enum sp_err e = link_all(a, ix);
    if (e == SP_OK)
        e = rank_entities(a, ix);
    if (e)
        return e;
    index_scripts(ix, a);

    static const char *const fs[] = {"first_seen", "first_activity", "created"};
    static const char *const ls[] = {"last_seen", "last_activity", "updated"};
    ix->first_seen = first_time(inc, fs, SP_ARRAY_SIZE(fs));
    ix->last_seen = first_time(inc, ls, SP_ARRAY_SIZE(ls));
    for (size_t i = 0; i < ix->n_alerts; i++) {
        const struct an_alert *al = &ix->alerts[i];
        if (al->t_first != SP_TIME_NONE &&
            (ix->first_seen == SP_TIME_NONE || al->t_first < ix->first_seen))
            ix->first_seen = al->t_first;
        int64_t l = al->t_last != SP_TIME_NONE ? al->t_last : al->t_first;
        if (l != SP_TIME_NONE &&
            (ix->last_seen == SP_TIME_NONE || l > ix->last_seen))
            ix->last_seen = l;
    }

    struct sp_buf b;
    sp_buf_init(&b, AN_CORPUS_MAX);
    sp_buf_putc(&b, '\n');
    corpus_walk(&b, inc, 0);
    ix->corpus = sp_arena_strndup(a, b.data ? b.data : "", b.len);
    ix->corpus_len = b.len;
    sp_buf_fini(&b);
    return ix->corpus ? SP_OK : SP_ERR_NOMEM;
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool an_corpus_has(const struct an_inc *ix, const char *s, size_t n)
{
    char low[512];
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '.' || s[n - 1] == ','))
        n--;
    if (n == 0 || n >= sizeof(low) || !ix->corpus)
        return false;
    for (size_t i = 0; i < n; i++)
        low[i] = sp_tolower(s[i]);
    const char *p = ix->corpus, *end = ix->corpus + ix->corpus_len;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), low, n);
        if (!hit)
            return false;
        bool left = hit == ix->corpus || !word_char(hit[-1]) ||
                    !word_char(low[0]);
        bool right = hit + n >= end || !word_char(hit[n]) ||
                     !word_char(low[n - 1]);
        if (left && right)
            return true;
        p = hit + 1;
    }
    return false;
}
