/*
 * normalize_generic.c - the documented generic alert format for other
 * producers (docs/alert-format.md): the normalized alert itself, read
 * leniently.  Severities and statuses in any common spelling, tactics and
 * techniques as arrays or comma lists, timestamps in any form
 * sp_time_parse() knows, entities with a type, identifiers and roles; an
 * entity's key is derived from its identifiers by the same rules as for
 * Microsoft formats when the producer does not give one.
 *
 * Because the format is a superset of socpilot's own output, a normalized
 * alert read back through it yields the same alert (its "source" and
 * "id" are kept when the id carries that source's prefix): replays of the
 * output topic and the round-trip tests rely on this.
 *
 * Called from sp_normalize() only.
 */
#include "normalize_int.h"

static const char *const sources[] = {"graph", "sentinel",
                                      "defender-streaming", "generic"};

/* A name made of [a-z0-9_-] starting with a letter. */
static bool plain_name(const char *s, char sep)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == sep))
            return false;
    return true;
}

/* "<kind>:<identity>" with a lower-case kind and no control bytes. */
static bool key_shaped(const char *k)
{
    const char *p = k;
    if (!(*p >= 'a' && *p <= 'z'))
        return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')
        p++;
    if (*p != ':' || !p[1])
        return false;
    for (; *p; p++)
        if ((unsigned char)*p < 0x20)
            return false;
    return true;
}

static void entity(struct sp_nz *z, const struct sp_json *o)
{
    if (o->type != SP_JSON_OBJECT) {
        sp_nz_wrong(z, "entities items", "objects");
        return;
    }
    const char *type = sp_nz_str(z, sp_json_get(o, "type"), "entity type");
    const char *key = sp_nz_str(z, sp_json_get(o, "key"), "entity key");
    const struct sp_json *ids = sp_json_get(o, "ids");
    const struct sp_json *roles = sp_json_get(o, "roles");
    if (z->reason)
        return;
    if (!type || !(type = sp_nz_entity_type(z, type))) {
        sp_nz_wrong(z, "entity type", "a non-empty string");
        return;
    }
    if (ids && ids->type != SP_JSON_OBJECT && ids->type != SP_JSON_NULL) {
        sp_nz_wrong(z, "entity ids", "an object");
        return;
    }
    if (roles && roles->type != SP_JSON_ARRAY && roles->type != SP_JSON_NULL) {
        sp_nz_wrong(z, "entity roles", "an array");
        return;
    }
    struct sp_entity e;
    sp_nz_ent(&e, type);
    sp_json_foreach(ids, m) {
        const char *name = plain_name(m->key, '_') ? m->key
                                                  : sp_nz_case(z, m->key, '_');
        if (!name || !(*name >= 'a' && *name <= 'z'))
            continue;
        if (m->type == SP_JSON_ARRAY) {
            sp_json_foreach(m, v) sp_nz_id(z, &e, name, sp_nz_text(z, v));
        } else {
            sp_nz_id(z, &e, name, sp_nz_text(z, m));
        }
    }
    sp_json_foreach(roles, r) {
        if (r->type == SP_JSON_STRING)
            sp_nz_role(z, &e, r->u.s);
    }
    if (key && !key_shaped(key))
        key = NULL;
    e.key = key ? key : sp_nz_derive_key(z, &e);
    sp_nz_commit(z, &e);
}

/* tactics / techniques: an array of strings or one comma-separated list. */
static void list(struct sp_nz *z, const struct sp_json *v, const char *what,
                 void (*add)(struct sp_nz *, const char *))
{
    if (!v || v->type == SP_JSON_NULL)
        return;
    if (v->type == SP_JSON_STRING) {
        add(z, v->u.s);
        return;
    }
    if (v->type != SP_JSON_ARRAY) {
        sp_nz_wrong(z, what, "an array of strings");
        return;
    }
    sp_json_foreach(v, s) {
        if (s->type != SP_JSON_STRING) {
            sp_nz_wrong(z, what, "an array of strings");
            return;
        }
        add(z, s->u.s);
    }
}

/* A numeric severity: the documented scale is 0-4, written any way JSON
 * allows (3, 3.0, 4e0); other numbers are an unknown spelling. */
static void number_severity(struct sp_nz *z, const struct sp_json *m)
{
    double d;
    sp_nz_severity(z, m->u.s);              /* keeps the source's text */
    if (sp_json_double(m, &d) && d >= 0 && d <= 4 && d == (int)d) {
        static const char *const digits[] = {"0", "1", "2", "3", "4"};
        z->alert->severity = sp_severity_parse(digits[(int)d]);
    }
}

enum sp_err sp_nz_generic(struct sp_nz *z, const struct sp_json *rec)
{
    struct sp_alert *al = sp_nz_begin(z, "generic");
    if (!al)
        return SP_ERR_NOMEM;
    const char *id = NULL, *source = NULL, *pai = NULL, *sev_orig = NULL;
    bool has_sev_orig = false;
    const struct sp_json *ents = NULL;
    sp_json_foreach(rec, m) {
        if (SP_NZ_KEY(m, "id"))
            id = sp_nz_str(z, m, "id");
        else if (SP_NZ_KEY(m, "source"))
            source = sp_nz_str(z, m, "source");
        else if (SP_NZ_KEY(m, "provider_alert_id"))
            pai = sp_nz_str(z, m, "provider_alert_id");
        else if (SP_NZ_KEY(m, "tenant") || SP_NZ_KEY(m, "tenantId"))
            sp_nz_tenant(z, sp_nz_str(z, m, "tenant"));
        else if (SP_NZ_KEY(m, "provider"))
            al->provider = sp_nz_str(z, m, "provider");
        else if (SP_NZ_KEY(m, "provider_incident_id"))
            al->provider_incident_id = sp_nz_text(z, m);
        else if (SP_NZ_KEY(m, "title"))
            al->title = sp_nz_str(z, m, "title");
        else if (SP_NZ_KEY(m, "description"))
            al->description = sp_nz_str(z, m, "description");
        else if (SP_NZ_KEY(m, "severity")) {
            if (m->type == SP_JSON_NUMBER)
                number_severity(z, m);
            else
                sp_nz_severity(z, sp_nz_str(z, m, "severity"));
        } else if (SP_NZ_KEY(m, "severity_original")) {
            sev_orig = m->type == SP_JSON_STRING
                           ? sp_nz_str(z, m, "severity_original")
                           : sp_nz_text(z, m);
            has_sev_orig = true;
        }
        else if (SP_NZ_KEY(m, "status"))
            al->status = sp_nz_status(sp_nz_str(z, m, "status"));
        else if (SP_NZ_KEY(m, "category"))
            al->category = sp_nz_str(z, m, "category");
        else if (SP_NZ_KEY(m, "detector"))
            al->detector = sp_nz_str(z, m, "detector");
        else if (SP_NZ_KEY(m, "part")) {
            const char *p = sp_nz_str(z, m, "part");
            al->part = !p                           ? SP_PART_WHOLE
                       : strcmp(p, "info") == 0     ? SP_PART_INFO
                       : strcmp(p, "evidence") == 0 ? SP_PART_EVIDENCE
                                                    : SP_PART_WHOLE;
        } else if (SP_NZ_KEY(m, "tactics"))
            list(z, m, "tactics", sp_nz_tactics);
        else if (SP_NZ_KEY(m, "techniques"))
            list(z, m, "techniques", sp_nz_techniques);
        else if (SP_NZ_KEY(m, "first_activity"))
            al->first_activity = sp_nz_time(z, m, "first_activity");
        else if (SP_NZ_KEY(m, "last_activity"))
            al->last_activity = sp_nz_time(z, m, "last_activity");
        else if (SP_NZ_KEY(m, "created"))
            al->created = sp_nz_time(z, m, "created");
        else if (SP_NZ_KEY(m, "updated"))
            al->updated = sp_nz_time(z, m, "updated");
        else if (SP_NZ_KEY(m, "links")) {
            if (m->type == SP_JSON_OBJECT) {
                sp_json_foreach(m, l)
                    sp_nz_link(z, l->key, sp_nz_str(z, l, "links"));
            } else if (m->type != SP_JSON_NULL) {
                sp_nz_wrong(z, "links", "an object");
            }
        } else if (SP_NZ_KEY(m, "entities")) {
            if (m->type == SP_JSON_ARRAY)
                ents = m;
            else if (m->type != SP_JSON_NULL)
                sp_nz_wrong(z, "entities", "an array");
        }
    }
    /* Our own output names the original spelling (null when the source
     * had none); keep it rather than the normalized word. */
    if (has_sev_orig && al->severity_original)
        al->severity_original = sev_orig;
    /* A socpilot alert read back keeps its source and id. */
    for (size_t i = 0; id && source && i < SP_ARRAY_SIZE(sources); i++) {
        size_t n = strlen(sources[i]);
        if (strcmp(source, sources[i]) == 0 && strncmp(id, source, n) == 0 &&
            id[n] == ':' && id[n + 1]) {
            al->source = sources[i];
            al->id = id;
            id = id + n + 1;
        }
    }
    al->provider_alert_id = al->id && pai ? pai : id;
    sp_json_foreach(ents, e) {
        if (z->reason || z->nomem)
            break;
        entity(z, e);
    }
    return sp_nz_finish(z);
}
