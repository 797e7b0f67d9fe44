/*
 * alert.c - the normalized alert: builders, the one JSON serialisation
 * (schema/alert.schema.json), the severity scale and the canonical
 * identifier helpers every normalizer shares.
 *
 * Owns nothing global.  An alert, its entities, identifiers, links and
 * sections all live in the caller's arena; every builder here is a few
 * bump allocations, and arrays grow by doubling inside the same arena
 * (the old array is simply abandoned until the arena is reset).
 *
 * Canonical keys are what correlation joins on, so each rule lives here
 * once: lower-case host names and accounts, IPs parsed and re-printed
 * (IPv4-mapped IPv6 folded to IPv4), lower-case hashes tagged with their
 * algorithm, URLs with scheme and host lower-cased.
 *
 * Thread-compatible: an alert is used by one thread at a time.
 */
#include "alert.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* ---- severity ------------------------------------------------------------ */

static const char *const sev_names[] = {
    [SP_SEV_UNKNOWN] = "informational",
    [SP_SEV_INFORMATIONAL] = "informational",
    [SP_SEV_LOW] = "low",
    [SP_SEV_MEDIUM] = "medium",
    [SP_SEV_HIGH] = "high",
};

const char *sp_severity_name(enum sp_severity s)
{
    if ((unsigned)s >= SP_ARRAY_SIZE(sev_names))
        return "informational";
    return sev_names[s];
}

static const struct {
    const char *word;
    enum sp_severity sev;
} sev_words[] = {
    {"informational", SP_SEV_INFORMATIONAL},
    {"information", SP_SEV_INFORMATIONAL},
    {"info", SP_SEV_INFORMATIONAL},
    {"verbose", SP_SEV_INFORMATIONAL},
    {"0", SP_SEV_INFORMATIONAL},
    {"sev4", SP_SEV_INFORMATIONAL},
    {"low", SP_SEV_LOW},
    {"minor", SP_SEV_LOW},
    {"1", SP_SEV_LOW},
    {"sev3", SP_SEV_LOW},
    {"medium", SP_SEV_MEDIUM},
    {"moderate", SP_SEV_MEDIUM},
    {"warning", SP_SEV_MEDIUM},
    {"2", SP_SEV_MEDIUM},
    {"sev2", SP_SEV_MEDIUM},
    {"high", SP_SEV_HIGH},
    {"critical", SP_SEV_HIGH},
    {"severe", SP_SEV_HIGH},
    {"major", SP_SEV_HIGH},
    {"error", SP_SEV_HIGH},
    {"3", SP_SEV_HIGH},
    {"4", SP_SEV_HIGH},
    {"sev1", SP_SEV_HIGH},
    {"sev0", SP_SEV_HIGH},
};

enum sp_severity sp_severity_parse(const char *s)
{
    if (!s)
        return SP_SEV_UNKNOWN;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 16)
        return SP_SEV_UNKNOWN;
    /* "Sev 2", "sev-2" -> "sev2" */
    char w[17];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = sp_tolower(s[i]);
        if ((c == ' ' || c == '-' || c == '_') && k == 3)
            continue;
        w[k++] = c;
    }
    w[k] = '\0';
    for (size_t i = 0; i < SP_ARRAY_SIZE(sev_words); i++)
        if (strcmp(w, sev_words[i].word) == 0)
            return sev_words[i].sev;
    return SP_SEV_UNKNOWN;
}

/* ---- builders ------------------------------------------------------------ */

struct sp_alert *sp_alert_new(struct sp_arena *a)
{
    struct sp_alert *alert = sp_arena_calloc(a, sizeof(*alert));
    if (!alert)
        return NULL;
    alert->first_activity = SP_TIME_NONE;
    alert->last_activity = SP_TIME_NONE;
    alert->created = SP_TIME_NONE;
    alert->updated = SP_TIME_NONE;
    return alert;
}

struct sp_entity *sp_alert_add_entity(struct sp_arena *a,
                                      struct sp_alert *alert,
                                      const char *type, uint32_t max_entities)
{
    if (max_entities && alert->n_entities >= max_entities)
        return NULL;
    if (alert->n_entities == alert->cap_entities) {
        size_t cap = alert->cap_entities ? alert->cap_entities * 2 : 8;
        if (max_entities && cap > max_entities)
            cap = max_entities;
        struct sp_entity *e = sp_arena_alloc(a, cap * sizeof(*e));
        if (!e)
            return NULL;
        if (alert->n_entities)
            memcpy(e, alert->entities, alert->n_entities * sizeof(*e));
        alert->entities = e;
        alert->cap_entities = cap;
    }
    struct sp_entity *ent = &alert->entities[alert->n_entities++];
    memset(ent, 0, sizeof(*ent));
    ent->type = type;
    return ent;
}

enum sp_err sp_entity_add_id(struct sp_arena *a, struct sp_entity *ent,
                             const char *name, const char *value)
{
    if (!value || !*value)
        return SP_OK;
    for (uint16_t i = 0; i < ent->n_ids; i++)
        if (strcmp(ent->ids[i].name, name) == 0 &&
            strcmp(ent->ids[i].value, value) == 0)
            return SP_OK;
    if (ent->n_ids == UINT16_MAX)
        return SP_ERR_LIMIT;
    if (ent->n_ids == ent->cap_ids) {
        uint32_t cap = ent->cap_ids ? (uint32_t)ent->cap_ids * 2 : 8;
        if (cap > UINT16_MAX)
            cap = UINT16_MAX;
        struct sp_ident *ids = sp_arena_alloc(a, cap * sizeof(*ids));
        if (!ids)
            return SP_ERR_NOMEM;
        if (ent->n_ids)
            memcpy(ids, ent->ids, ent->n_ids * sizeof(*ids));
        ent->ids = ids;
        ent->cap_ids = (uint16_t)cap;
    }
    const char *v = sp_arena_strdup(a, value);
    if (!v)
        return SP_ERR_NOMEM;
    ent->ids[ent->n_ids].name = name;
    ent->ids[ent->n_ids].value = v;
    ent->n_ids++;
    return SP_OK;
}

const char *sp_entity_id(const struct sp_entity *ent, const char *name)
{
    for (uint16_t i = 0; i < ent->n_ids; i++)
        if (strcmp(ent->ids[i].name, name) == 0)
            return ent->ids[i].value;
    return NULL;
}

void sp_entity_add_role(struct sp_entity *ent, const char *role)
{
    if (!role || !*role)
        return;
    for (uint8_t i = 0; i < ent->n_roles; i++)
        if (strcmp(ent->roles[i], role) == 0)
            return;
    if (ent->n_roles < SP_ARRAY_SIZE(ent->roles))
        ent->roles[ent->n_roles++] = role;
}

/* Names the writer emits itself; a section may not shadow them. */
static const char *const core_fields[] = {
    "schema_version", "id", "tenant", "source", "part", "provider",
    "provider_alert_id", "provider_incident_id", "title", "description",
    "severity", "severity_original", "status", "category", "detector",
    "tactics", "techniques", "first_activity", "last_activity", "created",
    "updated", "links", "entities", "incident_id", "incident_version", "raw",
};

enum sp_err sp_alert_add_section(struct sp_arena *a, struct sp_alert *alert,
                                 const char *name, const char *json,
                                 size_t len)
{
    if (!name || !*name || !json || !len)
        return SP_ERR_INVALID;
    for (size_t i = 0; i < SP_ARRAY_SIZE(core_fields); i++)
        if (strcmp(name, core_fields[i]) == 0)
            return SP_ERR_INVALID;
    struct sp_section **tail = &alert->sections;
    for (unsigned n = 0; *tail; tail = &(*tail)->next, n++) {
        if (strcmp((*tail)->name, name) == 0 || n >= 64)
            return SP_ERR_INVALID;
    }
    struct sp_section *sec = sp_arena_calloc(a, sizeof(*sec));
    if (!sec)
        return SP_ERR_NOMEM;
    sec->name = sp_arena_strdup(a, name);
    sec->json = sp_arena_strndup(a, json, len);
    if (!sec->name || !sec->json)
        return SP_ERR_NOMEM;
    sec->len = len;
    *tail = sec;
    return SP_OK;
}

const struct sp_section *sp_alert_find_section(const struct sp_alert *alert,
                                               const char *name)
{
    for (const struct sp_section *sec = alert->sections; sec; sec = sec->next)
        if (strcmp(sec->name, name) == 0)
            return sec;
    return NULL;
}

struct sp_entity *sp_alert_find_entity(const struct sp_alert *alert,
                                       const char *key)
{
    if (!key)
        return NULL;
    for (size_t i = 0; i < alert->n_entities; i++) {
        const char *k = alert->entities[i].key;
        if (k && strcmp(k, key) == 0)
            return &alert->entities[i];
    }
    return NULL;
}

/* ---- writer -------------------------------------------------------------- */

static const char *const part_names[] = {
    [SP_PART_WHOLE] = "whole",
    [SP_PART_INFO] = "info",
    [SP_PART_EVIDENCE] = "evidence",
};

static void write_strs(struct sp_jw *w, const char *key,
                       const char *const *v, size_t n)
{
    sp_jw_key(w, key);
    sp_jw_arr_open(w);
    for (size_t i = 0; i < n; i++)
        sp_jw_str(w, v[i]);
    sp_jw_arr_close(w);
}

static bool same_name(const char *a, const char *b)
{
    return a == b || (a[0] == b[0] && strcmp(a, b) == 0);
}

/* Identifiers as an object; a name that occurs more than once becomes an
 * array of its values (in insertion order). */
static void write_ids(struct sp_jw *w, const struct sp_entity *ent)
{
    sp_jw_key(w, "ids");
    sp_jw_obj_open(w);
    for (uint16_t i = 0; i < ent->n_ids; i++) {
        const char *name = ent->ids[i].name;
        bool seen = false;
        for (uint16_t j = 0; j < i && !seen; j++)
            seen = same_name(ent->ids[j].name, name);
        if (seen)
            continue;
        uint16_t count = 1;
        for (uint16_t j = i + 1; j < ent->n_ids; j++)
            count += same_name(ent->ids[j].name, name);
        sp_jw_key(w, name);
        if (count == 1) {
            sp_jw_str(w, ent->ids[i].value);
            continue;
        }
        sp_jw_arr_open(w);
        for (uint16_t j = i; j < ent->n_ids; j++)
            if (same_name(ent->ids[j].name, name))
                sp_jw_str(w, ent->ids[j].value);
        sp_jw_arr_close(w);
    }
    sp_jw_obj_close(w);
}

static void write_entity(struct sp_jw *w, const struct sp_entity *ent)
{
    sp_jw_obj_open(w);
    sp_jw_kstr(w, "type", ent->type);
    sp_jw_kstr(w, "key", ent->key);
    write_ids(w, ent);
    write_strs(w, "roles", ent->roles, ent->n_roles);
    sp_jw_obj_close(w);
}

/*
 * Embeds the original document.  JSON text may be pretty-printed; the
 * output must stay on one line (JSON lines, log-friendly), so white space
 * outside strings is dropped.  Valid JSON never has a raw newline inside
 * a string, so a document without '\n'/'\r' is copied as is.
 */
static void write_raw(struct sp_jw *w, const char *raw, size_t len)
{
    if (!memchr(raw, '\n', len) && !memchr(raw, '\r', len)) {
        sp_jw_raw(w, raw, len);
        return;
    }
    sp_jw_raw(w, "", 0);        /* separator only */
    struct sp_buf *b = w->b;
    if (sp_buf_reserve(b, len) != SP_OK)
        return;
    bool in_str = false;
    const char *p = raw, *end = raw + len;
    while (p < end) {
        if (in_str) {
            const char *q = p;
            while (q < end && *q != '"' && *q != '\\')
                q++;
            sp_buf_put(b, p, (size_t)(q - p));
            if (q >= end)
                break;
            if (*q == '\\') {
                sp_buf_put(b, q, (size_t)SP_MIN(2, end - q));
                p = q + 2;
                continue;
            }
            sp_buf_putc(b, '"');
            in_str = false;
            p = q + 1;
            continue;
        }
        char c = *p++;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '"')
            in_str = true;
        sp_buf_putc(b, c);
    }
}

void sp_alert_write(const struct sp_alert *alert, struct sp_jw *w,
                    bool include_raw)
{
    sp_jw_obj_open(w);
    sp_jw_kstr(w, "schema_version", SP_ALERT_SCHEMA_VERSION);
    sp_jw_kstr(w, "id", alert->id);
    sp_jw_kstr(w, "tenant", alert->tenant);
    sp_jw_kstr(w, "source", alert->source);
    sp_jw_kstr(w, "part", (unsigned)alert->part < SP_ARRAY_SIZE(part_names)
                              ? part_names[alert->part]
                              : "whole");
    sp_jw_kstr(w, "provider", alert->provider);
    sp_jw_kstr(w, "provider_alert_id", alert->provider_alert_id);
    sp_jw_kstr(w, "provider_incident_id", alert->provider_incident_id);
    sp_jw_kstr(w, "title", alert->title);
    sp_jw_kstr(w, "description", alert->description);
    sp_jw_kstr(w, "severity", sp_severity_name(alert->severity));
    sp_jw_kstr(w, "severity_original", alert->severity_original);
    sp_jw_kstr(w, "status", alert->status ? alert->status : "unknown");
    sp_jw_kstr(w, "category", alert->category);
    sp_jw_kstr(w, "detector", alert->detector);
    write_strs(w, "tactics", alert->tactics, alert->n_tactics);
    write_strs(w, "techniques", alert->techniques, alert->n_techniques);
    sp_jw_ktime(w, "first_activity", alert->first_activity);
    sp_jw_ktime(w, "last_activity", alert->last_activity);
    sp_jw_ktime(w, "created", alert->created);
    sp_jw_ktime(w, "updated", alert->updated);
    sp_jw_key(w, "links");
    sp_jw_obj_open(w);
    for (size_t i = 0; i < alert->n_links; i++)
        sp_jw_kstr(w, alert->links[i].name, alert->links[i].url);
    sp_jw_obj_close(w);
    sp_jw_key(w, "entities");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < alert->n_entities; i++)
        write_entity(w, &alert->entities[i]);
    sp_jw_arr_close(w);
    if (alert->incident_id) {
        sp_jw_kstr(w, "incident_id", alert->incident_id);
        sp_jw_kint(w, "incident_version", alert->incident_version);
    }
    for (const struct sp_section *sec = alert->sections; sec; sec = sec->next) {
        sp_jw_key(w, sec->name);
        sp_jw_raw(w, sec->json, sec->len);
    }
    if (include_raw && alert->raw && alert->raw_len) {
        sp_jw_key(w, "raw");
        write_raw(w, alert->raw, alert->raw_len);
    }
    sp_jw_obj_close(w);
}

/* ---- canonical identifiers ---------------------------------------------- */

char *sp_lower(char *s)
{
    for (char *p = s; p && *p; p++)
        *p = sp_tolower(*p);
    return s;
}

/* Longest identifier a key is built from; longer input has no identity. */
#define KEY_PART_MAX 4096

/* Trims ASCII blanks; returns the length (0 = nothing usable). */
static size_t trimmed(const char **s)
{
    if (!*s)
        return 0;
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strnlen(p, KEY_PART_MAX + 1);
    if (n > KEY_PART_MAX)
        return 0;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *s = p;
    return n;
}

/* No control bytes (a key must print on one line). */
static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* prefix + up to three lower-cased parts, joined by their separators. */
static const char *key_join(struct sp_arena *a, const char *prefix,
                            const char *p1, size_t n1, const char *sep,
                            const char *p2, size_t n2)
{
    size_t lp = strlen(prefix), ls = sep ? strlen(sep) : 0;
    char *out = sp_arena_alloc(a, lp + n1 + ls + n2 + 1);
    if (!out)
        return NULL;
    char *o = out;
    memcpy(o, prefix, lp);
    o += lp;
    for (size_t i = 0; i < n1; i++)
        *o++ = sp_tolower(p1[i]);
    if (sep && p2) {
        memcpy(o, sep, ls);
        o += ls;
        for (size_t i = 0; i < n2; i++)
            *o++ = sp_tolower(p2[i]);
    }
    *o = '\0';
    return out;
}

const char *sp_key_host(struct sp_arena *a, const char *hostname,
                        const char *domain, const char *fqdn)
{
    size_t nf = trimmed(&fqdn), nh = trimmed(&hostname),
           nd = trimmed(&domain);
    while (nf && fqdn[nf - 1] == '.')
        nf--;
    while (nd && domain[nd - 1] == '.')
        nd--;
    while (nh && hostname[nh - 1] == '.')
        nh--;
    if (nf) {
        if (!printable(fqdn, nf) || memchr(fqdn, ' ', nf))
            return NULL;
        return key_join(a, "host:", fqdn, nf, NULL, NULL, 0);
    }
    if (!nh || !printable(hostname, nh) || memchr(hostname, ' ', nh))
        return NULL;
    if (nd && !memchr(hostname, '.', nh) && printable(domain, nd) &&
        !memchr(domain, ' ', nd))
        return key_join(a, "host:", hostname, nh, ".", domain, nd);
    return key_join(a, "host:", hostname, nh, NULL, NULL, 0);
}

const char *sp_key_account(struct sp_arena *a, const char *upn,
                           const char *domain, const char *name,
                           const char *sid, const char *object_id)
{
    size_t nu = trimmed(&upn), nd = trimmed(&domain), nn = trimmed(&name),
           ns = trimmed(&sid), no = trimmed(&object_id);
    if (nu && memchr(upn, '@', nu) && printable(upn, nu))
        return key_join(a, "account:", upn, nu, NULL, NULL, 0);
    if (nn && printable(name, nn)) {
        /* A name that already is "domain\name" or a UPN stands alone. */
        if (memchr(name, '\\', nn) && name[0] != '\\' && name[nn - 1] != '\\')
            return key_join(a, "account:", name, nn, NULL, NULL, 0);
        if (!nu && memchr(name, '@', nn) && name[0] != '@')
            return key_join(a, "account:", name, nn, NULL, NULL, 0);
        if (nd && printable(domain, nd))
            return key_join(a, "account:", domain, nd, "\\", name, nn);
    }
    if (ns && printable(sid, ns))
        return key_join(a, "account:", sid, ns, NULL, NULL, 0);
    if (no && printable(object_id, no))
        return key_join(a, "account:", object_id, no, NULL, NULL, 0);
    return NULL;
}

const char *sp_canon_ip(struct sp_arena *a, const char *ip)
{
    if (!ip)
        return NULL;
    char buf[INET6_ADDRSTRLEN + 8];
    while (*ip == ' ' || *ip == '\t')      /* " 10.0.0.1" is an address */
        ip++;
    size_t n = strnlen(ip, sizeof(buf));
    while (n && n < sizeof(buf) && (ip[n - 1] == ' ' || ip[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return NULL;
    memcpy(buf, ip, n);
    buf[n] = '\0';
    char *s = buf;
    if (s[0] == '[') {              /* "[2001:db8::1]" */
        if (s[n - 1] != ']')
            return NULL;
        s[n - 1] = '\0';
        s++;
    }
    char *zone = strchr(s, '%');    /* "fe80::1%eth0": the zone is local */
    if (zone)
        *zone = '\0';
    char out[INET6_ADDRSTRLEN];
    struct in_addr v4;
    struct in6_addr v6;
    if (!zone && inet_pton(AF_INET, s, &v4) == 1) {
        if (!inet_ntop(AF_INET, &v4, out, sizeof(out)))
            return NULL;
    } else if (inet_pton(AF_INET6, s, &v6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            memcpy(&v4, &v6.s6_addr[12], 4);
            if (!inet_ntop(AF_INET, &v4, out, sizeof(out)))
                return NULL;
        } else if (!inet_ntop(AF_INET6, &v6, out, sizeof(out))) {
            return NULL;
        }
    } else {
        return NULL;
    }
    return sp_arena_strdup(a, out);
}

const char *sp_canon_hash(struct sp_arena *a, const char *hex)
{
    size_t n = trimmed(&hex);
    const char *alg;
    switch (n) {
    case 32: alg = "md5:"; break;
    case 40: alg = "sha1:"; break;
    case 64: alg = "sha256:"; break;
    case 128: alg = "sha512:"; break;
    default: return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = sp_tolower(hex[i]);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return NULL;
    }
    return key_join(a, alg, hex, n, NULL, NULL, 0);
}

static bool scheme_char(char c, bool first)
{
    c = sp_tolower(c);
    if (c >= 'a' && c <= 'z')
        return true;
    return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' ||
                      c == '.');
}

const char *sp_canon_url(struct sp_arena *a, const char *url)
{
    size_t n = trimmed(&url);
    if (!n)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return NULL;
    /* Scheme: "http://" etc.  Without one the text is taken as
     * host[/path] over http, the way proxies and EDR tables log it. */
    size_t sl = 0;
    while (sl < n && scheme_char(url[sl], sl == 0))
        sl++;
    const char *scheme = "http";
    size_t scheme_n = 4;
    const char *rest = url;
    if (sl && sl + 2 < n && url[sl] == ':' && url[sl + 1] == '/' &&
        url[sl + 2] == '/') {
        scheme = url;
        scheme_n = sl;
        rest = url + sl + 3;
    } else if (sl && sl < n && url[sl] == ':' &&
               !(sl + 1 < n && url[sl + 1] >= '0' && url[sl + 1] <= '9')) {
        /* "mailto:x@y", "urn:..": opaque; only the scheme folds. */
        char *out = sp_arena_strndup(a, url, n);
        if (out)
            for (size_t i = 0; i < sl; i++)
                out[i] = sp_tolower(out[i]);
        return out;
    }
    size_t rn = n - (size_t)(rest - url);
    /* Authority ends at the first '/', '?' or '#'. */
    size_t al = 0;
    while (al < rn && rest[al] != '/' && rest[al] != '?' && rest[al] != '#')
        al++;
    if (al == 0)
        return NULL;
    const char *auth = rest;
    const char *at = NULL;
    for (size_t i = 0; i < al; i++)
        if (auth[i] == '@')
            at = auth + i;
    size_t ui_n = at ? (size_t)(at - auth) + 1 : 0;    /* userinfo + '@' */
    const char *host = auth + ui_n;
    size_t hn = al - ui_n;
    /* Port: after the last ':' that is not inside [v6]. */
    size_t port_at = hn;
    for (size_t i = hn; i > 0; i--) {
        if (host[i - 1] == ']')
            break;
        if (host[i - 1] == ':') {
            port_at = i - 1;
            break;
        }
    }
    if (port_at == 0)
        return NULL;
    const char *port = port_at < hn ? host + port_at + 1 : NULL;
    size_t pn = port ? hn - port_at - 1 : 0;
    bool default_port = false;
    if (port) {
        if (pn == 0)
            default_port = true;     /* "host:" */
        else if (scheme_n == 4 && sp_strncaseeq(scheme, "http", 4))
            default_port = pn == 2 && memcmp(port, "80", 2) == 0;
        else if (scheme_n == 5 && sp_strncaseeq(scheme, "https", 5))
            default_port = pn == 3 && memcmp(port, "443", 3) == 0;
    }
    const char *path = rest + al;
    size_t path_n = rn - al;
    const char *frag = memchr(path, '#', path_n);
    if (frag)
        path_n = (size_t)(frag - path);
    size_t total = scheme_n + 3 + ui_n + port_at + 1 + pn + 1 + path_n + 1;
    char *out = sp_arena_alloc(a, total);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < scheme_n; i++)
        *o++ = sp_tolower(scheme[i]);
    memcpy(o, "://", 3);
    o += 3;
    memcpy(o, auth, ui_n);
    o += ui_n;
    for (size_t i = 0; i < port_at; i++)
        *o++ = sp_tolower(host[i]);
    if (port && !default_port) {
        *o++ = ':';
        memcpy(o, port, pn);
        o += pn;
    }
    if (path_n == 0 || path[0] != '/')
        *o++ = '/';
    memcpy(o, path, path_n);
    o += path_n;
    *o = '\0';
    return out;
}
