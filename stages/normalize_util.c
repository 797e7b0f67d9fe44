/*
 * normalize_util.c - the shared field rules of every normalizer: the
 * record's error state, string and time fields, JSON held in strings,
 * tenants, severities, statuses, ATT&CK tactics and techniques, links,
 * and name casing.  Declared in normalize_int.h; entity rules are in
 * normalize_entity.c.
 *
 * Owns nothing: everything is allocated from the record context's arena
 * (the message's).  Loops are bounded by the input (already bounded by
 * the parser's limits) and by the alert limits.
 *
 * Same threading as sp_normalize(): one message, one thread.
 */
#include "normalize_int.h"

#include <stdarg.h>
#include <stdio.h>

/* Bounds on alert-level lists; extra items are ignored. */
#define NZ_MAX_TACTICS 32
#define NZ_MAX_TECHNIQUES 64
#define NZ_MAX_LINKS 8
#define NZ_MAX_TACTIC_LEN 64

/* ---- record state -------------------------------------------------------- */

struct sp_alert *sp_nz_begin(struct sp_nz *z, const char *source)
{
    z->reason = NULL;
    z->detail = NULL;
    z->alert = sp_alert_new(z->a);
    if (!z->alert) {
        z->nomem = true;
        return NULL;
    }
    z->alert->source = source;
    return z->alert;
}

enum sp_err sp_nz_fail(struct sp_nz *z, const char *reason, const char *fmt,
                       ...)
{
    if (z->reason)
        return SP_ERR_INVALID;
    z->reason = reason;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    z->detail = sp_arena_strdup(z->a, tmp);
    if (!z->detail)
        z->detail = reason;
    return SP_ERR_INVALID;
}

void sp_nz_wrong(struct sp_nz *z, const char *what, const char *expected)
{
    sp_nz_fail(z, SP_REJECT_WRONG_TYPE, "%s must be %s", what, expected);
}

enum sp_err sp_nz_finish(struct sp_nz *z)
{
    if (z->nomem)
        return SP_ERR_NOMEM;
    if (z->reason)
        return SP_ERR_INVALID;
    struct sp_alert *al = z->alert;
    if (!al->provider_alert_id)
        return sp_nz_fail(z, SP_REJECT_MISSING_ID,
                          "%s alert without an alert id", al->source);
    if (!al->id) {
        al->id = sp_arena_printf(z->a, "%s:%s", al->source,
                                 al->provider_alert_id);
        if (!al->id)
            return SP_ERR_NOMEM;
    }
    if (!al->tenant)
        al->tenant = z->o->default_tenant ? z->o->default_tenant : "default";
    if (!al->status)
        al->status = "unknown";
    return SP_OK;
}

/* ---- scalars ------------------------------------------------------------- */

const char *sp_nz_cut(struct sp_nz *z, const char *s, size_t n)
{
    size_t max = z->o->lim.max_string;
    if (!max || n <= max)
        return s;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    char *c = sp_arena_strndup(z->a, s, k);
    if (!c)
        z->nomem = true;
    return c;
}

const char *sp_nz_str(struct sp_nz *z, const struct sp_json *v,
                      const char *what)
{
    if (!v || v->type == SP_JSON_NULL)
        return NULL;
    if (v->type != SP_JSON_STRING) {
        sp_nz_wrong(z, what, "a string");
        return NULL;
    }
    if (v->n == 0)
        return NULL;
    return sp_nz_cut(z, v->u.s, v->n);
}

const char *sp_nz_text(struct sp_nz *z, const struct sp_json *v)
{
    if (!v)
        return NULL;
    switch (v->type) {
    case SP_JSON_STRING:
        if (v->n == 0 || (v->n == 4 && (memcmp(v->u.s, "None", 4) == 0 ||
                                        memcmp(v->u.s, "null", 4) == 0)))
            return NULL;
        return sp_nz_cut(z, v->u.s, v->n);
    case SP_JSON_NUMBER:
    case SP_JSON_TRUE:
    case SP_JSON_FALSE:
        return sp_json_scalar(v);
    default:
        return NULL;
    }
}

int64_t sp_nz_time(struct sp_nz *z, const struct sp_json *v, const char *what)
{
    if (!v || v->type == SP_JSON_NULL)
        return SP_TIME_NONE;
    if (v->type != SP_JSON_STRING) {
        sp_nz_wrong(z, what, "a timestamp string");
        return SP_TIME_NONE;
    }
    int64_t us;
    if (!sp_time_parse(v->u.s, &us))
        return SP_TIME_NONE;
    return us;
}

int64_t sp_nz_time_lax(const struct sp_json *v)
{
    int64_t us;
    if (!v || v->type != SP_JSON_STRING || !sp_time_parse(v->u.s, &us))
        return SP_TIME_NONE;
    return us;
}

struct sp_json *sp_nz_parse_inner(struct sp_nz *z, const struct sp_json *v,
                                  const char *what)
{
    if (!v || v->type == SP_JSON_NULL)
        return NULL;
    if (v->type == SP_JSON_ARRAY || v->type == SP_JSON_OBJECT)
        return (struct sp_json *)v;     /* already a document */
    if (v->type != SP_JSON_STRING) {
        if (what)
            sp_nz_wrong(z, what, "a JSON string");
        return NULL;
    }
    const char *s = v->u.s;
    size_t n = v->n;
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        n--;
    }
    if (n == 0 || (n == 4 && memcmp(s, "None", 4) == 0))
        return NULL;
    struct sp_json_error jerr;
    struct sp_json *doc = sp_json_parse(z->a, s, n, &z->o->jlim, &jerr);
    if (!doc) {
        if (jerr.code == SP_JSON_E_NOMEM)
            z->nomem = true;
        else if (what)
            sp_nz_fail(z, SP_REJECT_WRONG_TYPE,
                       "%s is not a JSON document (%s: %s)", what,
                       sp_json_errname(jerr.code), jerr.msg);
    }
    return doc;
}

/* ---- alert fields -------------------------------------------------------- */

/*
 * The tenant keys everything correlation stores, so one tenant must have
 * one spelling: blanks around it are dropped, and a tenant longer than
 * SP_TENANT_MAX or holding control characters is refused (tenants are
 * GUIDs or short names).
 */
void sp_nz_tenant(struct sp_nz *z, const char *tenant)
{
    if (!tenant || z->alert->tenant)
        return;
    size_t n = strlen(tenant);
    while (n && (*tenant == ' ' || *tenant == '\t')) {
        tenant++;
        n--;
    }
    while (n && (tenant[n - 1] == ' ' || tenant[n - 1] == '\t'))
        n--;
    if (n == 0)
        return;
    if (n > SP_TENANT_MAX) {
        sp_nz_fail(z, SP_REJECT_BAD_TENANT, "tenant longer than %d bytes",
                   SP_TENANT_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tenant[i];
        if (c < 0x20 || c == 0x7f) {
            sp_nz_fail(z, SP_REJECT_BAD_TENANT,
                       "tenant contains a control character");
            return;
        }
    }
    if (tenant[n] != '\0') {
        char *t = sp_arena_strndup(z->a, tenant, n);
        if (!t) {
            z->nomem = true;
            return;
        }
        tenant = t;
    }
    z->alert->tenant = tenant;
}

void sp_nz_severity(struct sp_nz *z, const char *s)
{
    if (!s)
        return;
    z->alert->severity_original = s;
    z->alert->severity = sp_severity_parse(s);
}

const char *sp_nz_status(const char *s)
{
    if (!s)
        return "unknown";
    char w[24];
    size_t k = 0;
    for (; *s && k < sizeof(w) - 1; s++) {
        if (*s == ' ' || *s == '_' || *s == '-')
            continue;
        w[k++] = sp_tolower(*s);
    }
    if (*s)
        return "unknown";
    w[k] = '\0';
    static const struct {
        const char *w, *status;
    } map[] = {
        {"new", "new"},           {"open", "new"},
        {"unassigned", "new"},    {"inprogress", "in_progress"},
        {"active", "in_progress"}, {"investigating", "in_progress"},
        {"acknowledged", "in_progress"}, {"resolved", "resolved"},
        {"closed", "resolved"},   {"dismissed", "resolved"},
        {"remediated", "resolved"}, {"done", "resolved"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(map); i++)
        if (strcmp(w, map[i].w) == 0)
            return map[i].status;
    return "unknown";
}

const char *sp_nz_case(struct sp_nz *z, const char *s, char sep)
{
    if (!s)
        return NULL;
    size_t n = strnlen(s, 256);
    if (n == 0 || n >= 256)
        return NULL;
    char *out = sp_arena_alloc(z->a, n * 2 + 1);
    if (!out) {
        z->nomem = true;
        return NULL;
    }
    size_t k = 0;
    char prev = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool upper = c >= 'A' && c <= 'Z';
        bool alnum = upper || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum) {
            if (k && out[k - 1] != sep)
                out[k++] = sep;
            prev = 0;
            continue;
        }
        /* a lower-to-upper step starts a word: "commandAnd" */
        if (upper && k && out[k - 1] != sep &&
            ((prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9')))
            out[k++] = sep;
        out[k++] = sp_tolower(c);
        prev = c;
    }
    while (k && out[k - 1] == sep)
        k--;
    out[k] = '\0';
    return k ? out : NULL;
}

static const char *const attack_tactics[] = {
    "reconnaissance", "resource-development", "initial-access", "execution",
    "persistence", "privilege-escalation", "defense-evasion",
    "credential-access", "discovery", "lateral-movement", "collection",
    "command-and-control", "exfiltration", "impact",
};

static void add_tactic(struct sp_nz *z, const char *t)
{
    struct sp_alert *al = z->alert;
    if (!t || strcmp(t, "unknown") == 0)
        return;
    for (size_t i = 0; i < al->n_tactics; i++)
        if (strcmp(al->tactics[i], t) == 0)
            return;
    if (al->n_tactics >= NZ_MAX_TACTICS)
        return;
    if (!al->tactics) {
        al->tactics = sp_arena_alloc(z->a, NZ_MAX_TACTICS * sizeof(char *));
        if (!al->tactics) {
            z->nomem = true;
            return;
        }
    }
    al->tactics[al->n_tactics++] = t;
}

void sp_nz_tactics(struct sp_nz *z, const char *list)
{
    if (!list)
        return;
    const char *p = list;
    for (unsigned guard = 0; *p && guard < 256; guard++) {
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *s = p, *t = e;
        while (s < t && (*s == ' ' || *s == '[' || *s == '"' || *s == '\t'))
            s++;
        while (t > s && (t[-1] == ' ' || t[-1] == ']' || t[-1] == '"' ||
                         t[-1] == '\t'))
            t--;
        if (t > s && t - s < 128) {
            char tmp[128];
            memcpy(tmp, s, (size_t)(t - s));
            tmp[t - s] = '\0';
            const char *tac = sp_nz_case(z, tmp, '-');
            if (tac && strlen(tac) <= NZ_MAX_TACTIC_LEN)
                add_tactic(z, tac);
        }
        p = *e ? e + 1 : e;
    }
}

void sp_nz_category_tactic(struct sp_nz *z, const char *category)
{
    const char *t = sp_nz_case(z, category, '-');
    if (!t)
        return;
    for (size_t i = 0; i < SP_ARRAY_SIZE(attack_tactics); i++)
        if (strcmp(t, attack_tactics[i]) == 0) {
            add_tactic(z, attack_tactics[i]);
            return;
        }
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(char c)
{
    c = sp_tolower(c);
    return is_digit(c) || (c >= 'a' && c <= 'z');
}

void sp_nz_techniques(struct sp_nz *z, const char *text)
{
    if (!text)
        return;
    struct sp_alert *al = z->alert;
    for (const char *p = text; *p; p++) {
        if ((*p != 'T' && *p != 't') || (p > text && is_alnum(p[-1])))
            continue;
        if (!is_digit(p[1]) || !is_digit(p[2]) || !is_digit(p[3]) ||
            !is_digit(p[4]))
            continue;
        size_t n = 5;
        if (p[5] == '.' && is_digit(p[6]) && is_digit(p[7]) && is_digit(p[8]))
            n = 9;
        if (is_alnum(p[n]))
            continue;
        char id[10];
        memcpy(id, p, n);
        id[0] = 'T';
        id[n] = '\0';
        bool dup = false;
        for (size_t i = 0; i < al->n_techniques && !dup; i++)
            dup = strcmp(al->techniques[i], id) == 0;
        p += n - 1;
        if (dup || al->n_techniques >= NZ_MAX_TECHNIQUES)
            continue;
        if (!al->techniques) {
            al->techniques =
                sp_arena_alloc(z->a, NZ_MAX_TECHNIQUES * sizeof(char *));
            if (!al->techniques) {
                z->nomem = true;
                return;
            }
        }
        const char *s = sp_arena_strdup(z->a, id);
        if (!s) {
            z->nomem = true;
            return;
        }
        al->techniques[al->n_techniques++] = s;
    }
}

void sp_nz_link(struct sp_nz *z, const char *name, const char *url)
{
    struct sp_alert *al = z->alert;
    if (!url || !*url)
        return;
    for (size_t i = 0; i < al->n_links; i++)
        if (strcmp(al->links[i].name, name) == 0)
            return;
    if (al->n_links >= NZ_MAX_LINKS)
        return;
    if (!al->links) {
        al->links = sp_arena_alloc(z->a, NZ_MAX_LINKS * sizeof(*al->links));
        if (!al->links) {
            z->nomem = true;
            return;
        }
    }
    al->links[al->n_links].name = name;
    al->links[al->n_links].url = url;
    al->n_links++;
}
