/*
 * normalize.c - sp_normalize(): parse a message once, find its records
 * (a single document, an Event Hubs {"records":[...]} envelope, a Graph
 * list page {"value":[...]} with alerts or incidents holding alerts, a
 * Log Analytics query response {"tables":[...]}, or a top-level array),
 * detect each record's format unless it is pinned, and hand it to the
 * format's normalizer (normalize_graph.c, _sentinel.c, _defender.c,
 * _generic.c).  Every record ends as an alert or a reject.
 *
 * Owns nothing: all memory is the message's arena.  Bounded: the payload
 * size is checked before parsing, the parser bounds depth and node count,
 * envelopes are one level deep.
 *
 * Same threading as normalize.h: one message, one thread.
 */
#include "normalize_int.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const format_names[] = {
    [SP_FMT_AUTO] = "auto",
    [SP_FMT_GRAPH] = "graph",
    [SP_FMT_SENTINEL] = "sentinel",
    [SP_FMT_DEFENDER_STREAMING] = "defender-streaming",
    [SP_FMT_GENERIC] = "generic",
};

enum sp_err sp_format_parse(const char *s, enum sp_format *out)
{
    if (!s)
        return SP_ERR_INVALID;
    for (size_t i = 0; i < SP_ARRAY_SIZE(format_names); i++)
        if (sp_strcaseeq(s, format_names[i])) {
            *out = (enum sp_format)i;
            return SP_OK;
        }
    return SP_ERR_INVALID;
}

const char *sp_format_name(enum sp_format f)
{
    if ((unsigned)f >= SP_ARRAY_SIZE(format_names))
        return "auto";
    return format_names[f];
}

static const char *const reasons[] = {
    SP_REJECT_NOT_JSON,       SP_REJECT_TRUNCATED,
    SP_REJECT_INVALID_UTF8,   SP_REJECT_TOO_LARGE,
    SP_REJECT_TOO_DEEP,       SP_REJECT_TOO_MANY_NODES,
    SP_REJECT_EMPTY,          SP_REJECT_WRONG_TYPE,
    SP_REJECT_MISSING_ID,     SP_REJECT_TOO_MANY_ENTITIES,
    SP_REJECT_UNKNOWN_FORMAT, SP_REJECT_BAD_TENANT,
};

const char *const *sp_normalize_reasons(size_t *n)
{
    *n = SP_ARRAY_SIZE(reasons);
    return reasons;
}

void sp_normalize_opts_default(struct sp_normalize_opts *o)
{
    static const struct sp_json_limits jl = SP_JSON_LIMITS_DEFAULT;
    memset(o, 0, sizeof(*o));
    o->format = SP_FMT_AUTO;
    o->default_tenant = "default";
    o->lim.max_entities = 500;
    o->lim.max_ids_per_entity = 32;
    o->lim.max_string = 64 * 1024;
    o->jlim = jl;
    o->keep_raw = true;
}

/* ---- format detection ---------------------------------------------------- */

enum kind {
    K_UNKNOWN,
    K_GRAPH,
    K_GRAPH_INCIDENT,
    K_SENTINEL,
    K_SENTINEL_INCIDENT,
    K_DEFENDER,
    K_DEFENDER_OTHER,       /* an Advanced Hunting table that is no alert */
    K_M365D_INCIDENT,       /* the legacy Microsoft 365 Defender API */
    K_GENERIC,
};

static bool str_is(const struct sp_json *v, const char *s)
{
    return v && v->type == SP_JSON_STRING && strcmp(v->u.s, s) == 0;
}

static bool str_prefix(const struct sp_json *v, const char *p)
{
    return v && v->type == SP_JSON_STRING &&
           strncmp(v->u.s, p, strlen(p)) == 0;
}

/* One pass over the members, looking for each format's marks. */
static enum kind detect(const struct sp_json *rec)
{
    bool graph = false, ginc = false, sent = false, sinc = false;
    bool gen = false, alert_id = false, def_flat = false, m365d = false;
    enum kind def = K_UNKNOWN;
    sp_json_foreach(rec, m) {
        if (SP_NZ_KEY(m, "@odata.type")) {
            if (str_is(m, "#microsoft.graph.security.alert"))
                graph = true;
            else if (str_is(m, "#microsoft.graph.security.incident"))
                ginc = true;
        } else if (SP_NZ_KEY(m, "evidence") || SP_NZ_KEY(m, "alertWebUrl") ||
                   SP_NZ_KEY(m, "detectorId") ||
                   SP_NZ_KEY(m, "serviceSource") ||
                   SP_NZ_KEY(m, "mitreTechniques") ||
                   SP_NZ_KEY(m, "providerAlertId")) {
            graph = true;
        } else if (SP_NZ_KEY(m, "alerts")) {
            ginc = ginc || m->type == SP_JSON_ARRAY;
        } else if (SP_NZ_KEY(m, "category")) {
            if (str_is(m, "AdvancedHunting-AlertInfo") ||
                str_is(m, "AdvancedHunting-AlertEvidence"))
                def = K_DEFENDER;
            else if (str_prefix(m, "AdvancedHunting-"))
                def = K_DEFENDER_OTHER;
        } else if (SP_NZ_KEY(m, "AlertId")) {
            alert_id = true;
        } else if (SP_NZ_KEY(m, "EntityType") ||
                   SP_NZ_KEY(m, "AttackTechniques") ||
                   SP_NZ_KEY(m, "EvidenceRole")) {
            def_flat = true;
        } else if (SP_NZ_IKEY(m, "SystemAlertId") ||
                   SP_NZ_IKEY(m, "AlertName") ||
                   SP_NZ_IKEY(m, "AlertDisplayName") ||
                   SP_NZ_IKEY(m, "ProviderAlertId") ||
                   SP_NZ_IKEY(m, "VendorOriginalId")) {
            sent = true;
        } else if (SP_NZ_KEY(m, "Type")) {
            if (str_is(m, "SecurityAlert"))
                sent = true;
            else if (str_is(m, "SecurityIncident"))
                sinc = true;
        } else if (SP_NZ_KEY(m, "IncidentNumber")) {
            sinc = true;
        } else if (SP_NZ_KEY(m, "incidentId") || SP_NZ_KEY(m, "incidentName")) {
            m365d = true;
        } else if (SP_NZ_KEY(m, "id") || SP_NZ_KEY(m, "title") ||
                   SP_NZ_KEY(m, "schema_version")) {
            gen = true;
        }
    }
    if (ginc && !graph)
        return m365d && !gen ? K_M365D_INCIDENT : K_GRAPH_INCIDENT;
    if (graph)
        return K_GRAPH;
    if (def != K_UNKNOWN)
        return def;
    if (alert_id && def_flat)
        return K_DEFENDER;
    if (sinc && !sent)
        return K_SENTINEL_INCIDENT;
    if (sent)
        return K_SENTINEL;
    if (gen)
        return K_GENERIC;
    return K_UNKNOWN;
}

/* ---- records ------------------------------------------------------------- */

struct run {
    struct sp_msg *msg;
    const struct sp_normalize_opts *o;
    const char *stage;
    struct sp_buf tmp;          /* Log Analytics rows are re-serialised */
    bool nomem;
};

static enum sp_err reject(struct run *r, const char *reason,
                          const char *detail, const char *bytes, size_t len)
{
    if (sp_msg_reject(r->msg, r->stage, reason, detail, bytes, len) != SP_OK) {
        r->nomem = true;
        return SP_ERR_NOMEM;
    }
    return SP_OK;
}

static enum sp_err rejectf(struct run *r, const char *reason,
                           const char *bytes, size_t len, const char *fmt,
                           ...) SP_PRINTF(5, 6);

static enum sp_err rejectf(struct run *r, const char *reason,
                           const char *bytes, size_t len, const char *fmt,
                           ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    const char *detail = sp_arena_strdup(&r->msg->arena, tmp);
    return reject(r, reason, detail ? detail : reason, bytes, len);
}

/* Normalizes one record of a known kind into an alert or a reject. */
static enum sp_err run_one(struct run *r, enum kind k,
                           const struct sp_json *rec, const char *raw,
                           size_t raw_len, const char *incident_id)
{
    struct sp_nz z = {.a = &r->msg->arena, .o = r->o};
    enum sp_err e;
    switch (k) {
    case K_GRAPH:
        e = sp_nz_graph(&z, rec);
        break;
    case K_SENTINEL:
        e = sp_nz_sentinel(&z, rec);
        break;
    case K_DEFENDER:
        e = sp_nz_defender(&z, rec);
        break;
    case K_GENERIC:
        e = sp_nz_generic(&z, rec);
        break;
    default:
        return rejectf(r, SP_REJECT_UNKNOWN_FORMAT, raw, raw_len,
                       "record matches no known alert format");
    }
    if (e == SP_ERR_NOMEM || z.nomem) {
        r->nomem = true;
        return SP_ERR_NOMEM;
    }
    if (e == SP_OK && z.reason)
        e = SP_ERR_INVALID;         /* a problem recorded on the way (tenant) */
    if (e != SP_OK)
        return reject(r, z.reason ? z.reason : SP_REJECT_WRONG_TYPE,
                      z.detail ? z.detail : "invalid record", raw, raw_len);
    struct sp_alert *alert = z.alert;
    if (incident_id && !alert->provider_incident_id)
        alert->provider_incident_id = incident_id;
    if (r->o->keep_raw) {
        /* The record's own text: for a single document without the white
         * space around it (rejects keep the payload byte for byte). */
        alert->raw = rec->src;
        alert->raw_len = rec->src_len;
    }
    if (sp_msg_add_alert(r->msg, alert) != SP_OK) {
        r->nomem = true;
        return SP_ERR_NOMEM;
    }
    return SP_OK;
}

/* A Graph incident with its alerts expanded: each alert is a record. */
static enum sp_err run_incident(struct run *r, const struct sp_json *inc)
{
    const struct sp_json *alerts = sp_json_get(inc, "alerts");
    if (!alerts || alerts->type != SP_JSON_ARRAY)
        return rejectf(r, SP_REJECT_WRONG_TYPE, inc->src, inc->src_len,
                       "incident alerts must be an array");
    if (alerts->n == 0)
        return rejectf(r, SP_REJECT_EMPTY, inc->src, inc->src_len,
                       "incident without expanded alerts");
    const struct sp_json *idv = sp_json_get(inc, "id");
    const char *inc_id = idv ? sp_json_scalar(idv) : NULL;
    sp_json_foreach(alerts, al) {
        enum sp_err e;
        if (al->type != SP_JSON_OBJECT)
            e = rejectf(r, SP_REJECT_WRONG_TYPE, al->src, al->src_len,
                        "incident alert must be a JSON object");
        else
            e = run_one(r, K_GRAPH, al, al->src, al->src_len, inc_id);
        if (e == SP_ERR_NOMEM)
            return e;
    }
    return SP_OK;
}

static enum sp_err run_record(struct run *r, const struct sp_json *rec,
                              const char *raw, size_t raw_len)
{
    if (rec->type != SP_JSON_OBJECT)
        return rejectf(r, SP_REJECT_WRONG_TYPE, raw, raw_len,
                       "record must be a JSON object, not %s",
                       rec->type == SP_JSON_ARRAY    ? "an array"
                       : rec->type == SP_JSON_STRING ? "a string"
                       : rec->type == SP_JSON_NUMBER ? "a number"
                                                     : "a literal");
    enum kind k = detect(rec);
    switch (r->o->format) {
    case SP_FMT_GRAPH:
        if (k != K_GRAPH_INCIDENT && k != K_M365D_INCIDENT)
            k = K_GRAPH;
        break;
    case SP_FMT_SENTINEL:
        if (k != K_SENTINEL_INCIDENT)
            k = K_SENTINEL;
        break;
    case SP_FMT_DEFENDER_STREAMING:
        if (k != K_DEFENDER_OTHER)
            k = K_DEFENDER;
        break;
    case SP_FMT_GENERIC:
        k = K_GENERIC;
        break;
    default:
        break;
    }
    switch (k) {
    case K_GRAPH_INCIDENT:
        return run_incident(r, rec);
    case K_SENTINEL_INCIDENT:
        return rejectf(r, SP_REJECT_UNKNOWN_FORMAT, raw, raw_len,
                       "Sentinel SecurityIncident rows are incidents, not "
                       "alerts");
    case K_DEFENDER_OTHER:
        return rejectf(r, SP_REJECT_UNKNOWN_FORMAT, raw, raw_len,
                       "Advanced Hunting table %s is not an alert table",
                       sp_json_str(rec, "category"));
    case K_M365D_INCIDENT:
        return rejectf(r, SP_REJECT_UNKNOWN_FORMAT, raw, raw_len,
                       "Microsoft 365 Defender incidents API records are not "
                       "supported; read alerts from Graph (alerts_v2)");
    default:
        return run_one(r, k, rec, raw, raw_len, NULL);
    }
}

/* Records of an array (envelope, page, batch): one alert or reject each. */
static enum sp_err run_array(struct run *r, const struct sp_json *arr,
                             const char *what)
{
    if (arr->n == 0)
        return rejectf(r, SP_REJECT_EMPTY, r->msg->payload, r->msg->len,
                       "%s holds no records", what);
    sp_json_foreach(arr, rec) {
        if (run_record(r, rec, rec->src, rec->src_len) == SP_ERR_NOMEM)
            return SP_ERR_NOMEM;
    }
    return SP_OK;
}

_Thread_local unsigned long sp_nz_col_lookups;

/* The "name" of column c (checked to be a string), or NULL. */
static const struct sp_json *col_name(const struct sp_json *c)
{
    sp_nz_col_lookups++;
    const struct sp_json *name = sp_json_get(c, "name");
    return name && name->type == SP_JSON_STRING ? name : NULL;
}

/*
 * A Log Analytics query response: {"tables":[{"columns":[{"name":..}],
 * "rows":[[..],..]}]}.  Each row becomes an object keyed by column name;
 * its raw text is that object, re-serialised (a bare row array would not
 * say what its values are).
 */
/* names: each column's name, looked up once per table (a column object
 * may carry any number of other members). */
static struct sp_json *la_row(struct run *r,
                              const struct sp_json *const *names,
                              const struct sp_json *row)
{
    struct sp_arena *a = &r->msg->arena;
    struct sp_json *obj = sp_arena_calloc(a, sizeof(*obj));
    struct sp_json *nodes = sp_arena_alloc(a, row->n * sizeof(*nodes) + 1);
    if (!obj || !nodes)
        return NULL;
    sp_buf_reset(&r->tmp);
    sp_buf_putc(&r->tmp, '{');
    uint32_t i = 0;
    struct sp_json **tail = &obj->u.child;
    sp_json_foreach(row, v) {
        const struct sp_json *name = names[i];
        nodes[i] = *v;
        nodes[i].key = name->u.s;
        nodes[i].key_len = name->n;
        nodes[i].next = NULL;
        *tail = &nodes[i];
        tail = &nodes[i].next;
        if (i)
            sp_buf_putc(&r->tmp, ',');
        sp_json_escape(&r->tmp, name->u.s, name->n);
        sp_buf_putc(&r->tmp, ':');
        sp_buf_put(&r->tmp, v->src, v->src_len);
        i++;
    }
    sp_buf_putc(&r->tmp, '}');
    if (r->tmp.overflow)
        return NULL;
    obj->type = SP_JSON_OBJECT;
    obj->n = i;
    obj->src = sp_arena_strndup(a, r->tmp.data, r->tmp.len);
    obj->src_len = (uint32_t)r->tmp.len;
    return obj->src ? obj : NULL;
}

static enum sp_err run_tables(struct run *r, const struct sp_json *tables)
{
    const char *pl = r->msg->payload;
    size_t pn = r->msg->len;
    size_t rows_total = 0;
    sp_json_foreach(tables, t) {
        const struct sp_json *cols = sp_json_get(t, "columns");
        const struct sp_json *rows = sp_json_get(t, "rows");
        if (t->type != SP_JSON_OBJECT || !cols || !rows ||
            cols->type != SP_JSON_ARRAY || rows->type != SP_JSON_ARRAY)
            return rejectf(r, SP_REJECT_WRONG_TYPE, pl, pn,
                           "tables[] entries need columns[] and rows[]");
        sp_json_foreach(cols, c) {
            if (!col_name(c))
                return rejectf(r, SP_REJECT_WRONG_TYPE, pl, pn,
                               "every column needs a string name");
        }
        rows_total += rows->n;
    }
    if (rows_total == 0)
        return rejectf(r, SP_REJECT_EMPTY, pl, pn,
                       "query response holds no rows");
    sp_json_foreach(tables, t) {
        const struct sp_json *cols = sp_json_get(t, "columns");
        const struct sp_json *rows = sp_json_get(t, "rows");
        const struct sp_json **names =
            sp_arena_alloc(&r->msg->arena, (cols->n + 1) * sizeof(*names));
        if (!names) {
            r->nomem = true;
            return SP_ERR_NOMEM;
        }
        uint32_t k = 0;
        sp_json_foreach(cols, c) names[k++] = col_name(c);
        sp_json_foreach(rows, row) {
            enum sp_err e;
            if (row->type != SP_JSON_ARRAY || row->n != cols->n) {
                e = rejectf(r, SP_REJECT_WRONG_TYPE, row->src, row->src_len,
                            "row must be an array of %u values", cols->n);
            } else {
                struct sp_json *obj = la_row(r, names, row);
                if (!obj) {
                    r->nomem = true;
                    return SP_ERR_NOMEM;
                }
                e = run_record(r, obj, obj->src, obj->src_len);
            }
            if (e == SP_ERR_NOMEM)
                return e;
        }
    }
    return SP_OK;
}

/* ---- entry point --------------------------------------------------------- */

static enum sp_err parse_reject(struct run *r, const struct sp_json_error *je)
{
    const char *reason;
    switch (je->code) {
    case SP_JSON_E_TRUNCATED: reason = SP_REJECT_TRUNCATED; break;
    case SP_JSON_E_UTF8: reason = SP_REJECT_INVALID_UTF8; break;
    case SP_JSON_E_DEPTH: reason = SP_REJECT_TOO_DEEP; break;
    case SP_JSON_E_SIZE: reason = SP_REJECT_TOO_LARGE; break;
    case SP_JSON_E_NOMEM:
        r->nomem = true;
        return SP_ERR_NOMEM;
    case SP_JSON_E_NODES:
        reason = SP_REJECT_TOO_MANY_NODES;
        break;
    case SP_JSON_E_EMPTY: reason = SP_REJECT_EMPTY; break;
    default: reason = SP_REJECT_NOT_JSON; break;
    }
    return rejectf(r, reason, r->msg->payload, r->msg->len, "%s", je->msg);
}

enum sp_err sp_normalize(struct sp_msg *msg,
                         const struct sp_normalize_opts *opts,
                         const char *stage_name)
{
    struct sp_normalize_opts defaults;
    if (!opts) {
        sp_normalize_opts_default(&defaults);
        opts = &defaults;
    }
    struct run r = {.msg = msg, .o = opts, .stage = stage_name};
    sp_buf_init(&r.tmp, opts->jlim.max_bytes ? opts->jlim.max_bytes * 2 : 0);
    size_t max = opts->jlim.max_bytes ? opts->jlim.max_bytes : (size_t)1 << 20;
    const char *pl = msg->payload ? msg->payload : "";
    if (msg->len > max) {
        rejectf(&r, SP_REJECT_TOO_LARGE, pl, msg->len,
                "payload of %zu bytes is over the %zu byte limit", msg->len,
                max);
        goto out;
    }
    struct sp_json_error je;
    struct sp_json *root = sp_json_parse(&msg->arena, pl, msg->len,
                                         &opts->jlim, &je);
    if (!root) {
        parse_reject(&r, &je);
        goto out;
    }
    if (root->type == SP_JSON_ARRAY) {
        run_array(&r, root, "the array");
        goto out;
    }
    if (root->type == SP_JSON_OBJECT) {
        const struct sp_json *env = sp_json_get(root, "records");
        if (env && !sp_json_get(root, "id")) {
            if (env->type != SP_JSON_ARRAY)
                rejectf(&r, SP_REJECT_WRONG_TYPE, pl, msg->len,
                        "envelope records must be an array");
            else
                run_array(&r, env, "the records envelope");
            goto out;
        }
        env = sp_json_get(root, "value");
        if (env && env->type == SP_JSON_ARRAY && !sp_json_get(root, "id")) {
            run_array(&r, env, "the value page");
            goto out;
        }
        env = sp_json_get(root, "tables");
        if (env && !sp_json_get(root, "id")) {
            if (env->type != SP_JSON_ARRAY)
                rejectf(&r, SP_REJECT_WRONG_TYPE, pl, msg->len,
                        "query response tables must be an array");
            else
                run_tables(&r, env);
            goto out;
        }
    }
    run_record(&r, root, pl, msg->len);
out:
    sp_buf_fini(&r.tmp);
    return r.nomem ? SP_ERR_NOMEM : SP_OK;
}
