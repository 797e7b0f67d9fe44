/*
 * correlate_rules.c - what correlation is told and how one alert becomes
 * the correlate script's arguments.
 *
 * Rules: a default (correlate.mode/entity_types/fields/window) and
 * overrides per source or detector from the correlate.rules map, each
 * written "mode=selected types=host,account fields=detector window=2h".
 * Per alert, C decides everything that needs no shared state: the rule,
 * which entities correlate (type in the rule, not on the stop-list), the
 * namespace that keeps rules apart in Redis, the flood key, the content
 * hash that tells a duplicate from an update, and the alert summary kept
 * in the incident.  The Lua script does the rest atomically.
 *
 * Engine thread (ctx is the stage's), except corr_prefix/corr_hash which
 * are pure.
 */
#include "correlate_int.h"

#include "log.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t corr_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    if (s)
        h = corr_hash(h, s, strlen(s));
    /* A separator, so ("ab","c") and ("a","bc") differ. */
    return corr_hash(h, "\x1f", 1);
}

static void hex16(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- tenants and prefixes ------------------------------------------------ */

const char *corr_tenant(const struct corr_ctx *ctx,
                        const struct sp_alert *alert)
{
    return alert->tenant && *alert->tenant ? alert->tenant
                                           : ctx->default_tenant;
}

/*
 * Tenants are GUIDs or names; inside a key they must not be able to
 * close the hash tag or fake a separator, so everything outside
 * [A-Za-z0-9._@-] is percent-encoded.  Very long tenants keep a prefix
 * and a hash of the whole.
 */
void corr_prefix(const char *key_prefix, const char *tenant, char *out,
                 size_t n)
{
    size_t tl = strlen(tenant), keep = tl;
    if (tl > CORR_TENANT_MAX)
        keep = 96;
    size_t o = (size_t)snprintf(out, n, "%s:{t:", key_prefix);
    for (size_t i = 0; i < keep && o + 4 < n; i++) {
        unsigned char c = (unsigned char)tenant[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                     c == '-' || c == '@';
        if (plain)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, n - o, "%%%02X", c);
    }
    if (keep < tl && o + 20 < n) {
        char hx[17];
        hex16(corr_hash(CORR_HASH_INIT, tenant, tl), hx);
        o += (size_t)snprintf(out + o, n - o, "~%s", hx);
    }
    snprintf(out + o, n - o, "}:");
}

/* The first of first activity, created, updated that is a time; a time at
 * or before 1970 is a placeholder (.NET's default "0001-01-01T00:00:00Z"
 * is common), not an event time, and the index stores only positive ones. */
int64_t corr_alert_time_ms(const struct sp_alert *alert)
{
    const int64_t cand[] = {alert->first_activity, alert->created,
                            alert->updated};
    int64_t now = sp_wall_us() / 1000;
    for (size_t i = 0; i < SP_ARRAY_SIZE(cand); i++)
        if (cand[i] != SP_TIME_NONE && cand[i] >= 1000)
            return cand[i] / 1000 > now + CORR_MAX_FUTURE_MS ? now
                                                             : cand[i] / 1000;
    return now;
}

/* ---- config -------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} field_names[] = {
    {"detector", CORR_F_DETECTOR}, {"title", CORR_F_TITLE},
    {"source", CORR_F_SOURCE},     {"provider", CORR_F_PROVIDER},
    {"category", CORR_F_CATEGORY}, {"severity", CORR_F_SEVERITY},
};

static bool parse_mode(const char *s, size_t n, enum corr_mode *out)
{
    if (n == 3 && memcmp(s, "any", 3) == 0)
        *out = CORR_ANY;
    else if (n == 3 && memcmp(s, "all", 3) == 0)
        *out = CORR_ALL;
    else if (n == 8 && memcmp(s, "selected", 8) == 0)
        *out = CORR_SELECTED;
    else
        return false;
    return true;
}

static const char *mode_name(enum corr_mode m)
{
    return m == CORR_ALL ? "all" : m == CORR_SELECTED ? "selected" : "any";
}

/* "250ms", "30s", "5m", "24h", "7d", or a bare number of ms. */
static bool parse_duration(const char *s, size_t n, int64_t *ms)
{
    int64_t v = 0;
    size_t i = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && v < ((int64_t)1 << 40); i++)
        v = v * 10 + (s[i] - '0');
    if (i == 0)
        return false;
    const char *u = s + i;
    size_t un = n - i;
    int64_t mul;
    if (un == 0 || (un == 2 && memcmp(u, "ms", 2) == 0))
        mul = 1;
    else if (un == 1 && *u == 's')
        mul = 1000;
    else if (un == 1 && *u == 'm')
        mul = 60000;
    else if (un == 1 && *u == 'h')
        mul = 3600000;
    else if (un == 1 && *u == 'd')
        mul = 86400000;
    else
        return false;
    *ms = v * mul;
    return true;
}

/* Fills rule->types from a comma-separated list (copied into types_buf). */
static bool set_types(struct corr_rule *rule, const char *s, size_t n)
{
    free(rule->types_buf);
    rule->types_buf = strndup(s, n);
    rule->n_types = 0;
    if (!rule->types_buf)
        return false;
    for (char *save = NULL, *tok = strtok_r(rule->types_buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (*tok && rule->n_types < CORR_MAX_TYPES)
            rule->types[rule->n_types++] = tok;
    }
    return true;
}

static bool set_fields(unsigned *fields, const char *s, size_t n, char *bad,
                       size_t badn)
{
    *fields = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        if (j > i) {
            bool ok = false;
            for (size_t f = 0; f < SP_ARRAY_SIZE(field_names); f++)
                if (strlen(field_names[f].name) == j - i &&
                    memcmp(field_names[f].name, s + i, j - i) == 0) {
                    *fields |= field_names[f].bit;
                    ok = true;
                }
            if (!ok) {
                snprintf(bad, badn, "unknown alert field '%.*s' (detector, "
                         "title, source, provider, category, severity)",
                         (int)(j - i), s + i);
                return false;
            }
        }
        i = j + 1;
    }
    return true;
}

/* Parses "mode=... types=... fields=... window=..." into rule. */
static bool parse_spec(struct corr_rule *rule, const char *spec, char *why,
                       size_t whyn)
{
    const char *p = spec;
    for (int guard = 0; *p && guard < 64; guard++) {
        while (*p == ' ' || *p == ';' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *end = p;
        while (*end && *end != ' ' && *end != ';' && *end != '\t')
            end++;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) {
            snprintf(why, whyn, "expected name=value, got '%.*s'",
                     (int)(end - p), p);
            return false;
        }
        size_t kn = (size_t)(eq - p), vn = (size_t)(end - eq - 1);
        const char *v = eq + 1;
        if (kn == 4 && memcmp(p, "mode", 4) == 0) {
            if (!parse_mode(v, vn, &rule->mode)) {
                snprintf(why, whyn, "mode must be any, all or selected");
                return false;
            }
        } else if (kn == 5 && memcmp(p, "types", 5) == 0) {
            if (!set_types(rule, v, vn)) {
                snprintf(why, whyn, "out of memory");
                return false;
            }
        } else if (kn == 6 && memcmp(p, "fields", 6) == 0) {
            if (!set_fields(&rule->fields, v, vn, why, whyn))
                return false;
        } else if (kn == 6 && memcmp(p, "window", 6) == 0) {
            int64_t ms;
            if (!parse_duration(v, vn, &ms) || ms < 1000 ||
                ms > 7 * 86400000LL) {
                snprintf(why, whyn, "window must be a duration between 1s "
                         "and 7d");
                return false;
            }
            rule->window_ms = ms;
        } else {
            snprintf(why, whyn, "unknown setting '%.*s' (mode, types, "
                     "fields, window)", (int)kn, p);
            return false;
        }
        p = end;
    }
    return true;
}

struct rules_load {
    struct corr_ctx *ctx;
    bool defaults_pass;      /* first pass: only the "default" entry */
    char why[256];
};

static void rule_copy_default(struct corr_rule *dst,
                              const struct corr_rule *def)
{
    dst->mode = def->mode;
    dst->fields = def->fields;
    dst->window_ms = def->window_ms;
    dst->types_buf = NULL;
    dst->n_types = 0;
    /* Types are shared with the default until the spec sets its own. */
    for (size_t i = 0; i < def->n_types; i++)
        dst->types[dst->n_types++] = def->types[i];
}

static int rule_cb(const char *name, const char *value, void *ud)
{
    struct rules_load *rl = ud;
    struct corr_ctx *ctx = rl->ctx;
    struct corr_rule *rule;
    enum corr_rule_kind kind;
    const char *match = NULL;
    if (strcmp(name, "default") == 0) {
        kind = CORR_RULE_DEFAULT;
    } else if (strncmp(name, "source", 6) == 0 &&
               (name[6] == ':' || name[6] == '.') && name[7]) {
        kind = CORR_RULE_SOURCE;
        match = name + 7;
    } else if (strncmp(name, "detector", 8) == 0 &&
               (name[8] == ':' || name[8] == '.') && name[9]) {
        kind = CORR_RULE_DETECTOR;
        match = name + 9;
    } else {
        snprintf(rl->why, sizeof(rl->why), "correlate.rules: entry '%s' must "
                 "be default, source:<name> or detector:<name>", name);
        return 1;
    }
    /* The default entry is applied first, so that every other rule
     * inherits it whatever the order of the map. */
    if ((kind == CORR_RULE_DEFAULT) != rl->defaults_pass)
        return 0;
    if (kind == CORR_RULE_DEFAULT) {
        rule = &ctx->rules[0];
    } else {
        if (ctx->n_rules >= CORR_MAX_RULES) {
            snprintf(rl->why, sizeof(rl->why), "correlate.rules: more than "
                     "%d entries", CORR_MAX_RULES - 1);
            return 1;
        }
        rule = &ctx->rules[ctx->n_rules++];
        memset(rule, 0, sizeof(*rule));
        rule_copy_default(rule, &ctx->rules[0]);
        snprintf(rule->name, sizeof(rule->name), "%s:%s",
                 kind == CORR_RULE_SOURCE ? "source" : "detector", match);
        rule->kind = kind;
        rule->match = strchr(rule->name, ':') + 1;
    }
    char why[200];
    if (!parse_spec(rule, value, why, sizeof(why))) {
        snprintf(rl->why, sizeof(rl->why), "correlate.rules.%s: %s", name, why);
        return 1;
    }
    return 0;
}

enum sp_err corr_config_load(struct corr_ctx *ctx, const struct sp_config *cfg,
                             struct sp_error *err)
{
    snprintf(ctx->key_prefix, sizeof(ctx->key_prefix), "%s",
             sp_config_str(cfg, "correlate.key_prefix"));
    snprintf(ctx->default_tenant, sizeof(ctx->default_tenant), "%s",
             sp_config_str(cfg, "correlate.default_tenant"));
    if (!ctx->key_prefix[0] || strpbrk(ctx->key_prefix, "{} \t\r\n"))
        return sp_error_set(err, SP_ERR_CONFIG, "correlate.key_prefix: must "
                            "be non-empty without braces or blanks");
    if (!ctx->default_tenant[0])
        return sp_error_set(err, SP_ERR_CONFIG,
                            "correlate.default_tenant: must not be empty");

    struct corr_rule *def = &ctx->rules[0];
    memset(def, 0, sizeof(*def));
    snprintf(def->name, sizeof(def->name), "default");
    def->kind = CORR_RULE_DEFAULT;
    const char *mode = sp_config_str(cfg, "correlate.mode");
    parse_mode(mode, strlen(mode), &def->mode);
    def->window_ms = sp_config_int(cfg, "correlate.window");
    const char *const *items;
    size_t n = sp_config_list(cfg, "correlate.entity_types", &items);
    for (size_t i = 0; i < n && def->n_types < CORR_MAX_TYPES; i++)
        def->types[def->n_types++] = items[i];
    n = sp_config_list(cfg, "correlate.fields", &items);
    char why[200];
    for (size_t i = 0; i < n; i++) {
        unsigned bit;
        if (!set_fields(&bit, items[i], strlen(items[i]), why, sizeof(why)))
            return sp_error_set(err, SP_ERR_CONFIG, "correlate.fields: %s", why);
        def->fields |= bit;
    }
    ctx->n_rules = 1;
    struct rules_load rl = {ctx, true, ""};
    if (sp_config_map_each(cfg, "correlate.rules", rule_cb, &rl))
        return sp_error_set(err, SP_ERR_CONFIG, "%s", rl.why);
    rl.defaults_pass = false;
    if (sp_config_map_each(cfg, "correlate.rules", rule_cb, &rl))
        return sp_error_set(err, SP_ERR_CONFIG, "%s", rl.why);

    n = sp_config_list(cfg, "correlate.noisy.stoplist", &items);
    if (n > CORR_MAX_STOPLIST)
        return sp_error_set(err, SP_ERR_CONFIG, "correlate.noisy.stoplist: "
                            "more than %d entries", CORR_MAX_STOPLIST);
    if (n) {
        ctx->stoplist = calloc(n, sizeof(*ctx->stoplist));
        if (!ctx->stoplist)
            return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            ctx->stoplist[i] = strdup(items[i]);
            if (!ctx->stoplist[i])
                return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
            /* Keys are canonical (lower-case); so are patterns. */
            sp_lower(ctx->stoplist[i]);
            ctx->n_stoplist = i + 1;
        }
    }

    ctx->max_alerts = sp_config_int(cfg, "correlate.max_alerts");
    ctx->max_entities = sp_config_int(cfg, "correlate.max_entities");
    ctx->max_why = sp_config_int(cfg, "correlate.max_why");
    ctx->noisy_k = sp_config_int(cfg, "correlate.noisy.threshold");
    ctx->flood_on = sp_config_bool(cfg, "correlate.flood.enabled");
    ctx->flood_n = sp_config_int(cfg, "correlate.flood.threshold");
    ctx->flood_window_ms = sp_config_int(cfg, "correlate.flood.window");
    const char *fk = sp_config_str(cfg, "correlate.flood.key");
    ctx->flood_key = strcmp(fk, "title") == 0 ? CORR_FLOOD_TITLE
                     : strcmp(fk, "detector_title") == 0
                         ? CORR_FLOOD_DETECTOR_TITLE
                         : CORR_FLOOD_DETECTOR;
    ctx->close_on_resolved = sp_config_bool(cfg, "correlate.close_on_resolved");
    ctx->retention_ms = sp_config_int(cfg, "correlate.retention");
    ctx->pipeline_max = (size_t)sp_config_int(cfg, "correlate.pipeline_max");
    ctx->snapshot_max = (size_t)sp_config_int(cfg, "correlate.snapshot_max");
    ctx->snapshot_why = sp_config_int(cfg, "correlate.snapshot_why");
    ctx->defer = sp_config_bool(cfg, "correlate.snapshot_defer");
    ctx->outbox_interval_ms = sp_config_int(cfg, "correlate.outbox.interval");
    ctx->outbox_grace_ms = sp_config_int(cfg, "correlate.outbox.grace");
    ctx->outbox_batch = (size_t)sp_config_int(cfg, "correlate.outbox.batch");
    ctx->settle_ms = sp_config_int(cfg, "correlate.defender.settle");
    ctx->max_wait_ms = sp_config_int(cfg, "correlate.defender.max_wait");
    ctx->lease_ms = sp_config_int(cfg, "correlate.defender.lease");
    ctx->poll_ms = sp_config_int(cfg, "correlate.defender.poll");
    ctx->asm_max_rows = (size_t)sp_config_int(cfg, "correlate.defender.max_rows");
    ctx->asm_max_bytes = (size_t)sp_config_int(cfg, "correlate.defender.max_bytes");
    ctx->asm_poll_bytes = (size_t)sp_config_int(cfg, "correlate.defender.poll_bytes");
    ctx->asm_batch = (size_t)sp_config_int(cfg, "correlate.defender.batch");

    /* Entity index keys live as long as the longest window needs them. */
    int64_t wmax = 0;
    for (size_t i = 0; i < ctx->n_rules; i++)
        wmax = SP_MAX(wmax, ctx->rules[i].window_ms);
    ctx->index_horizon_ms = 2 * wmax;
    ctx->index_ttl_ms = 2 * wmax + 3600000;
    if (ctx->retention_ms < wmax)
        return sp_error_set(err, SP_ERR_CONFIG, "correlate.retention: must be "
                            "at least the longest correlation window");
    for (size_t i = 0; i < ctx->n_rules; i++) {
        const struct corr_rule *r = &ctx->rules[i];
        if (r->mode == CORR_SELECTED && r->n_types == 0)
            return sp_error_set(err, SP_ERR_CONFIG, "rule %s: mode selected "
                                "needs entity types", r->name);
        sp_log_debug(ctx->st ? ctx->st->log : "correlate",
                     "rule %s: mode=%s types=%zu fields=0x%x window=%lldms",
                     r->name, mode_name(r->mode), r->n_types, r->fields,
                     (long long)r->window_ms);
    }
    return SP_OK;
}

void corr_config_free(struct corr_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_rules; i++) {
        free(ctx->rules[i].types_buf);
        ctx->rules[i].types_buf = NULL;
    }
    for (size_t i = 0; i < ctx->n_stoplist; i++)
        free(ctx->stoplist[i]);
    free(ctx->stoplist);
    ctx->stoplist = NULL;
    ctx->n_stoplist = 0;
}

const struct corr_rule *corr_rule_for(const struct corr_ctx *ctx,
                                      const struct sp_alert *alert)
{
    if (alert->detector)
        for (size_t i = 1; i < ctx->n_rules; i++)
            if (ctx->rules[i].kind == CORR_RULE_DETECTOR &&
                strcmp(ctx->rules[i].match, alert->detector) == 0)
                return &ctx->rules[i];
    if (alert->source)
        for (size_t i = 1; i < ctx->n_rules; i++)
            if (ctx->rules[i].kind == CORR_RULE_SOURCE &&
                strcmp(ctx->rules[i].match, alert->source) == 0)
                return &ctx->rules[i];
    return &ctx->rules[0];
}

bool corr_stoplisted(const struct corr_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->n_stoplist; i++)
        if (fnmatch(ctx->stoplist[i], key, 0) == 0)
            return true;
    return false;
}

static bool rule_has_type(const struct corr_rule *rule, const char *type)
{
    if (!type)
        return false;
    for (size_t i = 0; i < rule->n_types; i++)
        if (strcmp(rule->types[i], type) == 0)
            return true;
    return false;
}

/* ---- per-alert arguments ------------------------------------------------- */

#define KEY_MAX 1024        /* longer entity keys do not correlate */

static uint64_t hash_fields(uint64_t h, const struct corr_rule *rule,
                            const struct sp_alert *alert)
{
    h = hash_str(h, rule->name);
    if (rule->fields & CORR_F_DETECTOR)
        h = hash_str(h, alert->detector);
    if (rule->fields & CORR_F_TITLE)
        h = hash_str(h, alert->title);
    if (rule->fields & CORR_F_SOURCE)
        h = hash_str(h, alert->source);
    if (rule->fields & CORR_F_PROVIDER)
        h = hash_str(h, alert->provider);
    if (rule->fields & CORR_F_CATEGORY)
        h = hash_str(h, alert->category);
    if (rule->fields & CORR_F_SEVERITY)
        h = hash_str(h, sp_severity_name(alert->severity));
    return h;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What decides "same alert, same content": normalized fields only, so a
 * re-sent record with a new envelope is a duplicate, and a new
 * lastUpdate, status or piece of evidence is an update. */
static uint64_t content_hash(const struct sp_alert *alert)
{
    uint64_t h = CORR_HASH_INIT;
    h = hash_str(h, alert->title);
    h = hash_str(h, alert->description);
    h = hash_str(h, sp_severity_name(alert->severity));
    h = hash_str(h, alert->status);
    h = hash_str(h, alert->category);
    h = hash_str(h, alert->detector);
    h = hash_str(h, alert->provider_incident_id);
    int64_t times[] = {alert->first_activity, alert->last_activity,
                       alert->created, alert->updated};
    h = corr_hash(h, times, sizeof(times));
    for (size_t i = 0; i < alert->n_tactics; i++)
        h = hash_str(h, alert->tactics[i]);
    for (size_t i = 0; i < alert->n_techniques; i++)
        h = hash_str(h, alert->techniques[i]);
    for (size_t i = 0; i < alert->n_entities; i++) {
        const struct sp_entity *ent = &alert->entities[i];
        h = hash_str(h, ent->type);
        h = hash_str(h, ent->key);
        h = corr_hash(h, &ent->n_ids, sizeof(ent->n_ids));
    }
    return h;
}

/* Flood label and key: similar alerts share them. */
static const char *flood_label(struct corr_ctx *ctx,
                               const struct sp_alert *alert)
{
    const char *d = alert->detector && *alert->detector ? alert->detector : NULL;
    const char *t = alert->title && *alert->title ? alert->title : NULL;
    switch (ctx->flood_key) {
    case CORR_FLOOD_TITLE:
        return t;
    case CORR_FLOOD_DETECTOR_TITLE:
        if (!d && !t)
            return NULL;
        return sp_arena_printf(&ctx->work, "%s / %s", d ? d : "-", t ? t : "-");
    case CORR_FLOOD_DETECTOR:
    default:
        return d ? d : t;
    }
}

/* The alert summary an incident keeps (JSON, written by us). */
enum sp_err corr_json_begin(struct corr_ctx *ctx)
{
    struct sp_buf *b = &ctx->json;
    sp_buf_reset(b);
    b->overflow = false;
    /* Reserved whole, so that a write can fail only for size.  Once: the
     * buffer keeps its memory, and pages it never touched cost nothing. */
    return sp_buf_reserve(b, b->max) == SP_OK ? SP_OK : SP_ERR_NOMEM;
}

int corr_reject_too_large(struct corr_ctx *ctx, struct corr_item *item,
                          const char *what)
{
    item->err = SP_ERR_LIMIT;
    item->reason = "too_large";
    item->errmsg = sp_arena_printf(
        item->arena, "%s is larger than %zu bytes, the most the stage writes "
        "for one alert (the larger of correlate.snapshot_max and 4 MiB)",
        what, ctx->json.max);
    if (!item->errmsg)
        item->errmsg = "too large to correlate";
    return 0;
}

/* The alert's summary (in ctx->work) into *out.  SP_ERR_LIMIT: larger
 * than ctx->json holds; SP_ERR_NOMEM: out of memory. */
static enum sp_err summary_json(struct corr_ctx *ctx,
                                const struct sp_alert *alert, int64_t t_ms,
                                const char **keys, const char **types,
                                size_t n, const char **out, size_t *len)
{
    struct sp_buf *b = &ctx->json;
    enum sp_err e = corr_json_begin(ctx);
    if (e)
        return e;
    struct sp_jw w;
    sp_jw_init(&w, b);
    sp_jw_obj_open(&w);
    sp_jw_kstr(&w, "id", alert->id);
    sp_jw_kstr(&w, "title", alert->title ? alert->title : "");
    sp_jw_kstr(&w, "severity", sp_severity_name(alert->severity));
    sp_jw_kint(&w, "sn", (int64_t)alert->severity);
    sp_jw_ktime(&w, "time", t_ms * 1000);
    sp_jw_kint(&w, "t", t_ms);
    sp_jw_kstr_opt(&w, "source", alert->source);
    sp_jw_kstr_opt(&w, "detector", alert->detector);
    sp_jw_kstr_opt(&w, "provider", alert->provider);
    sp_jw_kstr(&w, "status", alert->status ? alert->status : "unknown");
    sp_jw_kstr_opt(&w, "provider_incident_id", alert->provider_incident_id);
    sp_jw_key(&w, "ents");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < n; i++) {
        sp_jw_arr_open(&w);
        sp_jw_str(&w, types[i]);
        sp_jw_str(&w, keys[i]);
        sp_jw_arr_close(&w);
    }
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);
    if (!sp_jw_ok(&w))
        return SP_ERR_LIMIT;        /* reserved: only its size fails it */
    *len = b->len;
    *out = sp_arena_strndup(&ctx->work, b->data, b->len);
    return *out ? SP_OK : SP_ERR_NOMEM;
}

/* Small open-addressing set of strings for deduplicating entity keys. */
static bool seen_add(const char **set, size_t cap, const char *key)
{
    uint64_t h = corr_hash(CORR_HASH_INIT, key, strlen(key));
    for (size_t i = 0; i < cap; i++) {
        size_t slot = (size_t)((h + i) % cap);
        if (!set[slot]) {
            set[slot] = key;
            return true;
        }
        if (strcmp(set[slot], key) == 0)
            return false;
    }
    return false;
}

#define ARG(s, n)                                                           \
    do {                                                                    \
        argv[argc] = (s);                                                   \
        lens[argc] = (n);                                                   \
        argc++;                                                             \
    } while (0)
#define ARGS(s) ARG((s), strlen(s))
#define ARGI(v)                                                             \
    do {                                                                    \
        char *num_ = sp_arena_int(&ctx->work, (v));                         \
        if (!num_)                                                          \
            return -1;                                                      \
        ARGS(num_);                                                         \
    } while (0)

int corr_build_args(struct corr_ctx *ctx, struct corr_item *item,
                    const char ***argvp, size_t **lensp)
{
    const struct sp_alert *alert = item->alert;
    const struct corr_rule *rule = corr_rule_for(ctx, alert);
    size_t max_ents = SP_MIN(alert->n_entities, (size_t)ctx->max_entities);

    /* Entities: keyed, deduplicated, at most max_entities. */
    const char **keys = sp_arena_alloc(&ctx->work, (max_ents + 1) * sizeof(*keys));
    const char **types = sp_arena_alloc(&ctx->work, (max_ents + 1) * sizeof(*types));
    char *flags = sp_arena_alloc(&ctx->work, max_ents + 1);
    size_t set_cap = max_ents * 2 + 1;
    const char **set = sp_arena_calloc(&ctx->work, set_cap * sizeof(*set));
    if (!keys || !types || !flags || !set)
        return -1;
    size_t n = 0, n_corr = 0;
    for (size_t i = 0; i < alert->n_entities && n < max_ents; i++) {
        const struct sp_entity *ent = &alert->entities[i];
        if (!ent->key || !*ent->key || strlen(ent->key) > KEY_MAX)
            continue;
        if (!seen_add(set, set_cap, ent->key))
            continue;
        keys[n] = ent->key;
        types[n] = ent->type ? ent->type : "other";
        if (!rule_has_type(rule, ent->type))
            flags[n] = 'x';
        else if (corr_stoplisted(ctx, ent->key))
            flags[n] = 's';
        else
            flags[n] = 'c', n_corr++;
        n++;
    }
    size_t n_pass = 0;          /* entities the script sees: c and s */
    item->n_stop = 0;
    for (size_t i = 0; i < n; i++) {
        n_pass += flags[i] != 'x';
        item->n_stop += flags[i] == 's';
    }

    int64_t t_ms = corr_alert_time_ms(alert);
    /* Nor less than half the index horizon ahead: an entry keeps what is
     * within the horizon of its newest member, so a member dated further
     * ahead would age out those of now (a longest window under 30 min). */
    int64_t wall = sp_wall_us() / 1000;
    if (ctx->index_horizon_ms > 0 && t_ms > wall + ctx->index_horizon_ms / 2)
        t_ms = wall;
    size_t slen = 0;
    const char *summary = NULL;
    enum sp_err e = summary_json(ctx, alert, t_ms, keys, types, n, &summary,
                                 &slen);
    if (e == SP_ERR_LIMIT)
        return corr_reject_too_large(ctx, item, "its summary");
    if (e)
        return -1;

    /* Namespace: keeps rules that group differently apart. */
    char ns[17] = "";
    if (rule->mode == CORR_SELECTED) {
        hex16(hash_fields(CORR_HASH_INIT, rule, alert), ns);
    } else if (rule->mode == CORR_ALL && n_corr > 0) {
        const char **ck = sp_arena_alloc(&ctx->work, n_corr * sizeof(*ck));
        if (!ck)
            return -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (flags[i] == 'c')
                ck[k++] = keys[i];
        qsort(ck, k, sizeof(*ck), cmp_str);
        uint64_t h = hash_fields(CORR_HASH_INIT, rule, alert);
        for (size_t i = 0; i < k; i++)
            h = hash_str(h, ck[i]);
        hex16(h, ns);
    }

    const char *flabel = ctx->flood_on ? flood_label(ctx, alert) : NULL;
    char fkey[17] = "";
    if (flabel)
        hex16(hash_str(CORR_HASH_INIT, flabel), fkey);
    char chash[17];
    hex16(content_hash(alert), chash);

    int64_t upd = alert->updated != SP_TIME_NONE ? alert->updated / 1000 : 0;
    const char *pid = alert->provider_incident_id ? alert->provider_incident_id : "";
    if (strlen(pid) > 512)
        pid = "";

    size_t cap = 3 + 2 + CORR_ALERT_ARGS + 2 * n_pass;
    const char **argv = sp_arena_alloc(&ctx->work, cap * sizeof(*argv));
    size_t *lens = sp_arena_alloc(&ctx->work, cap * sizeof(*lens));
    char *fkey_s = sp_arena_strdup(&ctx->work, fkey);
    char *ns_s = sp_arena_strdup(&ctx->work, ns);
    char *chash_s = sp_arena_strdup(&ctx->work, chash);
    /* Everything argv points to must outlive this function (the caller
     * appends it): arena memory, the alert's, or static strings. */
    if (!argv || !lens || !fkey_s || !ns_s || !chash_s)
        return -1;
    int argc = 3;               /* EVALSHA sha numkeys */
    ARG(NULL, 0);                                         /* KEYS[1] */
    ARGS(item->prefix);                                   /* ARGV[1] */
    /* The alert's block (offsets from its start B, see the script). */
    ARGS(alert->id);                                      /* 0 */
    ARG(chash_s, 16);                                     /* 1 */
    ARGI(t_ms);                                           /* 2 */
    ARGI(upd);                                            /* 3 */
    ARGI((int)alert->severity);                           /* 4 */
    ARGS(alert->title ? alert->title : "");               /* 5 */
    ARGS(alert->status ? alert->status : "unknown");      /* 6 */
    ARG(summary, slen);                                   /* 7 */
    ARGS(pid);                                            /* 8 */
    ARGS(fkey_s);                                         /* 9 */
    ARGS(flabel ? flabel : "");                           /* 10 */
    ARGS(mode_name(rule->mode));                          /* 11 */
    ARGS(ns_s);                                           /* 12 */
    ARGS(rule->name);                                     /* 13 */
    ARGI(rule->window_ms);                                /* 14 */
    ARGI(rule->mode == CORR_ALL ? 0 : ctx->noisy_k);      /* 15 */
    ARGI((int64_t)n_pass);                                /* 16 */
    for (size_t i = 0; i < n; i++) {
        if (flags[i] == 'x')
            continue;
        ARGS(keys[i]);
        ARG(flags[i] == 's' ? "s" : "c", 1);
    }
    *argvp = argv;
    *lensp = lens;
    return argc;
}

/*
 * The settings every alert of a call shares (the stage's, and the
 * tenant: a call holds one tenant's alerts), CORR_CALL_ARGS of them, at
 * ARGV[3] on; argv and lens have room for them.  Returns -1 when out of
 * work memory.
 */
int corr_call_header(struct corr_ctx *ctx, const struct corr_item *item,
                     int64_t now_ms, const char **argv, size_t *lens)
{
    const struct sp_env *env = ctx->st ? ctx->st->env : NULL;
    int argc = 0;
    ARGI(now_ms);                                         /* 3 */
    ARGI(ctx->max_alerts);                                /* 4 */
    ARGI(ctx->flood_on ? ctx->flood_n : 0);               /* 5 */
    ARGI(ctx->flood_window_ms);                           /* 6 */
    ARGI(ctx->retention_ms);                              /* 7 */
    ARGI(ctx->index_ttl_ms);                              /* 8 */
    ARGI(ctx->max_why);                                   /* 9 */
    ARGS(ctx->close_on_resolved ? "1" : "0");             /* 10 */
    ARGS(corr_tenant(ctx, item->alert));                  /* 11 */
    ARGI(env ? env->analysis_quiet_ms : 0);               /* 12 */
    ARGI(env ? env->analysis_max_delay_ms : 0);           /* 13 */
    ARGI(ctx->index_horizon_ms);                          /* 14 */
    return argc;
}
