/*
 * analysis_check.c - what is checked in a model's answer before anyone
 * sees it:
 *
 *   - finding the JSON (code fences and prose around it are tolerated) and
 *     validating it against schema/analysis.schema.json with a small
 *     validator for the JSON Schema subset that file uses;
 *   - grounding: hosts, users, IPs, URLs, hashes, domains and e-mails the
 *     answer names must exist in the incident (the corpus of its strings);
 *     structured fields (affected assets, identities, first entity,
 *     indicators) are checked token by token, free text for typed tokens;
 *   - conclusions that look dictated by injected text ("benign, no action")
 *     while the deterministic score says otherwise, and impact levels that
 *     differ from the deterministic one.
 *
 * Pure functions; any thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "analysis_int.h"

/* ---- finding the answer ------------------------------------------------- */

struct sp_json *an_parse_answer(struct sp_arena *a, const char *s, size_t n,
                                struct sp_buf *errs)
{
    const char *b = s, *e = s + n;
    const char *open = memchr(b, '{', (size_t)(e - b));
    const char *close = NULL;
    for (const char *p = e; p > b; p--) {
        if (p[-1] == '}') {
            close = p;
            break;
        }
    }
    if (!open) {
        sp_buf_puts(errs, "answer: no JSON object found\n");
        return NULL;
    }
    if (!close || close <= open)
        close = e;                  /* let the parser say where it broke */
    size_t len = (size_t)(close - open);
    struct sp_json_limits lim = {len + 1, 32, 100000};
    struct sp_json_error jerr;
    struct sp_json *root = sp_json_parse(a, open, len, &lim, &jerr);
    if (!root) {
        sp_buf_printf(errs, "answer: not valid JSON (%s at byte %zu)\n",
                      sp_json_errname(jerr.code), jerr.offset);
        return NULL;
    }
    if (root->type != SP_JSON_OBJECT) {
        sp_buf_puts(errs, "answer: not a JSON object\n");
        return NULL;
    }
    return root;
}

/* ---- schema validation -------------------------------------------------- */

#define V_MAX_ERRORS 20

struct vctx {
    struct sp_buf *errs;
    unsigned n;
};

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
    SP_PRINTF(3, 4);

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
{
    if (v->n++ >= V_MAX_ERRORS)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sp_buf_printf(v->errs, "%s: %s\n", *path ? path : "(root)", msg);
}

static bool is_integer(const struct sp_json *val)
{
    return val->type == SP_JSON_NUMBER && !strpbrk(val->u.s, ".eE");
}

static bool type_ok(const char *t, const struct sp_json *val)
{
    switch (val->type) {
    case SP_JSON_NULL: return strcmp(t, "null") == 0;
    case SP_JSON_TRUE:
    case SP_JSON_FALSE: return strcmp(t, "boolean") == 0;
    case SP_JSON_NUMBER:
        return strcmp(t, "number") == 0 ||
               (strcmp(t, "integer") == 0 && is_integer(val));
    case SP_JSON_STRING: return strcmp(t, "string") == 0;
    case SP_JSON_ARRAY: return strcmp(t, "array") == 0;
    case SP_JSON_OBJECT: return strcmp(t, "object") == 0;
    }
    return false;
}

static bool same_value(const struct sp_json *a, const struct sp_json *b)
{
    bool ab = a->type == SP_JSON_TRUE || a->type == SP_JSON_FALSE;
    bool bb = b->type == SP_JSON_TRUE || b->type == SP_JSON_FALSE;
    if (ab || bb)
        return a->type == b->type;
    if (a->type != b->type)
        return false;
    if (a->type == SP_JSON_STRING || a->type == SP_JSON_NUMBER)
        return a->n == b->n && memcmp(a->u.s, b->u.s, a->n) == 0;
    return a->type == SP_JSON_NULL;
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static void validate(const struct sp_json *sch, const struct sp_json *val,
                     char *path, size_t plen, struct vctx *v, int depth)
{
    if (!sch || sch->type != SP_JSON_OBJECT || depth > 32)
        return;
    const struct sp_json *type = sp_json_get(sch, "type");
    if (type) {
        bool ok = false;
        if (type->type == SP_JSON_STRING) {
            ok = type_ok(type->u.s, val);
        } else {
            sp_json_foreach(type, t) if (t->type == SP_JSON_STRING && !ok)
                ok = type_ok(t->u.s, val);
        }
        if (!ok) {
            verr(v, path, "expected %s",
                 type->type == SP_JSON_STRING ? type->u.s : "another type");
            return;
        }
    }
    const struct sp_json *en = sp_json_get(sch, "enum");
    if (en && en->type == SP_JSON_ARRAY) {
        bool ok = false;
        sp_json_foreach(en, it) ok = ok || same_value(it, val);
        if (!ok)
            verr(v, path, "value not allowed (%.60s)",
                 sp_json_scalar(val) ? sp_json_scalar(val) : "non-scalar");
    }
    const struct sp_json *cn = sp_json_get(sch, "const");
    if (cn && !same_value(cn, val))
        verr(v, path, "must be the constant value");
    double lim;
    if (val->type == SP_JSON_STRING) {
        size_t len = utf8_len(val->u.s, val->n);
        if (sp_json_double(sp_json_get(sch, "maxLength"), &lim) &&
            (double)len > lim)
            verr(v, path, "longer than %g characters (%zu)", lim, len);
        if (sp_json_double(sp_json_get(sch, "minLength"), &lim) &&
            (double)len < lim)
            verr(v, path, "shorter than %g characters", lim);
    }
    if (val->type == SP_JSON_NUMBER) {
        double d = 0;
        sp_json_double(val, &d);
        if (sp_json_double(sp_json_get(sch, "maximum"), &lim) && d > lim)
            verr(v, path, "above the maximum %g", lim);
        if (sp_json_double(sp_json_get(sch, "minimum"), &lim) && d < lim)
            verr(v, path, "below the minimum %g", lim);
    }
    if (val->type == SP_JSON_ARRAY) {
        if (sp_json_double(sp_json_get(sch, "maxItems"), &lim) &&
            (double)val->n > lim)
            verr(v, path, "more than %g items (%u)", lim, val->n);
        if (sp_json_double(sp_json_get(sch, "minItems"), &lim) &&
            (double)val->n < lim)
            verr(v, path, "fewer than %g items", lim);
        const struct sp_json *items = sp_json_get(sch, "items");
        size_t i = 0;
        sp_json_foreach(val, it) {
            size_t l = plen + (size_t)snprintf(path + plen, 256 - plen, "[%zu]",
                                               i++);
            validate(items, it, path, SP_MIN(l, (size_t)255), v, depth + 1);
            path[plen] = '\0';
        }
    }
    if (val->type == SP_JSON_OBJECT) {
        const struct sp_json *props = sp_json_get(sch, "properties");
        const struct sp_json *addl = sp_json_get(sch, "additionalProperties");
        sp_json_foreach(val, it) {
            const struct sp_json *ps = sp_json_get(props, it->key);
            size_t l = plen + (size_t)snprintf(path + plen, 256 - plen, "%s%s",
                                               plen ? "." : "", it->key);
            l = SP_MIN(l, (size_t)255);
            if (ps)
                validate(ps, it, path, l, v, depth + 1);
            else if (addl && addl->type == SP_JSON_FALSE)
                verr(v, path, "member not allowed");
            else if (addl && addl->type == SP_JSON_OBJECT)
                validate(addl, it, path, l, v, depth + 1);
            path[plen] = '\0';
        }
        sp_json_foreach(sp_json_get(sch, "required"), r) {
            if (r->type == SP_JSON_STRING && !sp_json_get(val, r->u.s)) {
                snprintf(path + plen, 256 - plen, "%s%s", plen ? "." : "",
                         r->u.s);
                verr(v, path, "missing");
                path[plen] = '\0';
            }
        }
    }
}

enum sp_err sp_analysis_validate(const struct sp_json *schema,
                                 const struct sp_json *v, struct sp_buf *errs)
{
    struct vctx ctx = {errs, 0};
    char path[256] = "";
    if (!v) {
        sp_buf_puts(errs, "(root): no value\n");
        return SP_ERR_INVALID;
    }
    validate(schema, v, path, 0, &ctx, 0);
    if (ctx.n > V_MAX_ERRORS)
        sp_buf_printf(errs, "(and %u more problems)\n", ctx.n - V_MAX_ERRORS);
    return ctx.n ? SP_ERR_INVALID : SP_OK;
}

/* ---- grounding ---------------------------------------------------------- */

static bool alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool hexdigit(char c)
{
    return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *const tlds[] = {
    "com", "net", "org", "io", "info", "biz", "ru", "cn", "su", "xyz", "top",
    "online", "site", "club", "app", "dev", "cloud", "co", "me", "us", "uk",
    "de", "fr", "nl", "eu", "in", "br", "jp", "kr", "tk", "ml", "ga", "cf",
    "gq", "pw", "cc", "ws", "local", "lan", "corp", "internal", "intra",
    "onion", "gov", "edu", "mil", "int", "ly", "to", "gg", "sh", "ai", "ir",
    "kp", "live", "shop", "store", "tech", "xyz", "icu", "vip", "work",
    "link", "click", "zip", "mov", "ch", "at", "be", "se", "no", "fi", "pl",
    "it", "es", "pt", "ca", "au", "nz", "za", "mx", "ar", "tw", "hk", "sg",
    "ua", "by", "kz", "ro", "bg", "cz", "sk", "hu", "gr", "tr", "il", "ae",
};

static bool is_tld(const char *s, size_t n)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(tlds); i++)
        if (strlen(tlds[i]) == n && sp_strncaseeq(s, tlds[i], n))
            return true;
    return false;
}

static bool is_ipv4(const char *s, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (i < n && parts < 4) {
        size_t d = i;
        unsigned v = 0;
        while (i < n && digit(s[i]) && i - d < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == d || v > 255)
            return false;
        parts++;
        if (parts < 4) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
    }
    return parts == 4 && i == n;
}

/* Kind of a token worth checking, or NULL.  strict: structured fields,
 * where bare host-like names count too. */
static const char *classify(const char *s, size_t n, bool strict)
{
    if (n < 3 || n > 500)
        return NULL;
    if (memmem(s, n, "://", 3))
        return "url";
    const char *at = memchr(s, '@', n);
    if (at && at > s && memchr(at, '.', n - (size_t)(at - s)))
        return "email";
    if (is_ipv4(s, n)) {
        if ((n == 9 && memcmp(s, "127.0.0.1", 9) == 0) ||
            (n == 7 && memcmp(s, "0.0.0.0", 7) == 0))
            return NULL;
        return "ip";
    }
    bool all_hex = true;
    size_t colons = 0;
    for (size_t i = 0; i < n; i++) {
        all_hex &= hexdigit(s[i]);
        colons += s[i] == ':';
    }
    if (all_hex && (n == 32 || n == 40 || n == 64))
        return "hash";
    if (colons >= 2) {
        bool v6 = true;
        for (size_t i = 0; i < n && v6; i++)
            v6 = hexdigit(s[i]) || s[i] == ':';
        if (v6)
            return "ip";
    }
    const char *bs = memchr(s, '\\', n);
    if (bs && bs > s && bs < s + n - 1 && !memchr(s, ':', n) &&
        !memchr(bs + 1, '\\', n - (size_t)(bs + 1 - s)))
        return "account";
    /* FQDN with a known top-level label. */
    const char *dot = NULL;
    for (size_t i = n; i > 0; i--) {
        if (s[i - 1] == '.') {
            dot = s + i - 1;
            break;
        }
    }
    if (dot && dot > s && !memchr(s, '/', n) && !memchr(s, '\\', n)) {
        size_t tl = n - (size_t)(dot + 1 - s);
        bool ok = tl >= 2;
        for (size_t i = 0; i < n && ok; i++)
            ok = alpha(s[i]) || digit(s[i]) || s[i] == '-' || s[i] == '.' ||
                 s[i] == '_';
        if (ok && is_tld(dot + 1, tl))
            return "domain";
    }
    if (!strict)
        return NULL;
    /* Structured fields: host-like names (letters with digits, dashes or
     * underscores: ws-042, SRV01), but not ATT&CK ids or CVEs. */
    bool has_alpha = false, has_mark = false, clean = true;
    for (size_t i = 0; i < n; i++) {
        has_alpha |= alpha(s[i]);
        has_mark |= digit(s[i]) || s[i] == '-' || s[i] == '_';
        clean &= alpha(s[i]) || digit(s[i]) || s[i] == '-' || s[i] == '_' ||
                 s[i] == '.' || s[i] == '$';
    }
    if (!has_alpha || !has_mark || !clean)
        return NULL;
    if ((s[0] == 'T' || s[0] == 't') && n >= 5 && digit(s[1]))
        return NULL;                              /* T1059.001, TA0002 */
    if ((s[0] == 'T' && s[1] == 'A' && digit(s[2])) ||
        sp_strncaseeq(s, "cve-", 4))
        return NULL;
    if (!digit(s[0]) && !memchr(s, '-', n) && !memchr(s, '_', n)) {
        bool any_digit = false;
        for (size_t i = 0; i < n; i++)
            any_digit |= digit(s[i]);
        if (!any_digit)
            return NULL;
    }
    return "host";
}

struct gctx {
    const struct an_inc *ix;
    const struct sp_analysis_anon *anon;
    struct sp_arena *a;
    struct an_ground *g;
};

static bool grounded(const struct gctx *c, const char *kind, const char *s,
                     size_t n)
{
    if (an_corpus_has(c->ix, s, n))
        return true;
    if (strcmp(kind, "url") == 0) {
        const char *h = memmem(s, n, "://", 3) + 3;
        const char *end = h;
        while (end < s + n && *end != '/' && *end != ':' && *end != '?')
            end++;
        return end > h && an_corpus_has(c->ix, h, (size_t)(end - h));
    }
    if (strcmp(kind, "account") == 0) {
        const char *bs = memchr(s, '\\', n);
        return bs && an_corpus_has(c->ix, bs + 1, n - (size_t)(bs + 1 - s));
    }
    if (strcmp(kind, "host") == 0 || strcmp(kind, "domain") == 0) {
        /* A host's short name for an FQDN the incident has is fine too. */
        const char *dot = memchr(s, '.', n);
        return dot && strcmp(kind, "host") == 0 &&
               an_corpus_has(c->ix, s, (size_t)(dot - s));
    }
    return false;
}

static void note(struct gctx *c, const char *kind, const char *s, size_t n,
                 const char *field)
{
    struct an_ground *g = c->g;
    if (g->checked >= AN_MAX_CHECKS)
        return;                     /* bounded work per answer */
    g->checked++;
    bool unknown_ph = an_anon_unknown(c->anon, s, n);
    if (!unknown_ph && grounded(c, kind, s, n))
        return;
    for (size_t i = 0; i < g->n; i++)
        if (strlen(g->items[i].value) == n &&
            sp_strncaseeq(g->items[i].value, s, n))
            return;
    if (g->n >= AN_MAX_UNGROUNDED)
        return;
    g->items[g->n].value = sp_arena_strndup(c->a, s, n);
    g->items[g->n].type = unknown_ph ? "placeholder" : kind;
    g->items[g->n].field = sp_arena_strdup(c->a, field);
    if (g->items[g->n].value && g->items[g->n].field)
        g->n++;
}

static bool delim(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' ||
           c == ';' || c == '(' || c == ')' || c == '[' || c == ']' ||
           c == '{' || c == '}' || c == '<' || c == '>' || c == '"' ||
           c == '\'' || c == '`' || c == '|' || c == '*';
}

static void scan_text(struct gctx *c, const char *s, size_t n,
                      const char *field, bool strict)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && delim(s[i]))
            i++;
        size_t j = i;
        while (j < n && !delim(s[j]))
            j++;
        size_t a = i, b = j;
        while (b > a && strchr(".:!?", s[b - 1]))
            b--;
        while (a < b && strchr(".:", s[a]))
            a++;
        if (b > a) {
            if (an_anon_unknown(c->anon, s + a, b - a)) {
                note(c, "placeholder", s + a, b - a, field);
            } else {
                const char *k = classify(s + a, b - a, strict);
                if (k)
                    note(c, k, s + a, b - a, field);
            }
        }
        i = j;
    }
}

static void check_value(struct gctx *c, const struct sp_json *v,
                        const char *field, bool strict)
{
    if (!v || v->type != SP_JSON_STRING || !v->n)
        return;
    if (strict) {
        /* The whole value may be a known name ("Finance laptop 7"). */
        if (c->g->checked < AN_MAX_CHECKS &&
            an_corpus_has(c->ix, v->u.s, v->n)) {
            c->g->checked++;
            return;
        }
    }
    scan_text(c, v->u.s, v->n, field, strict);
}

static void walk(struct gctx *c, const struct sp_json *v, char *path,
                 size_t plen, int depth)
{
    if (!v || depth > 16)
        return;
    if (v->type == SP_JSON_STRING) {
        if (strstr(path, ".time") || strcmp(path, "assessment") == 0 ||
            strcmp(path, "impact.level") == 0)
            return;
        bool strict = strcmp(path, "summary.first_entity") == 0 ||
                      strcmp(path, "summary.affected_assets") == 0 ||
                      strcmp(path, "summary.affected_identities") == 0 ||
                      strcmp(path, "summary.indicators.value") == 0;
        check_value(c, v, path, strict);
        return;
    }
    sp_json_foreach(v, it) {
        size_t l = plen;
        if (it->key) {
            if (depth == 0 && strcmp(it->key, "summary") != 0 &&
                strcmp(it->key, "timeline") != 0 &&
                strcmp(it->key, "impact") != 0)
                continue;
            l += (size_t)snprintf(path + plen, 128 - plen, "%s%s",
                                  plen ? "." : "", it->key);
            l = SP_MIN(l, (size_t)127);
        }
        if (it->key && strcmp(path, "summary.indicators") == 0) {
            sp_json_foreach(it, ind) check_value(
                c, sp_json_get(ind, "value"), "summary.indicators.value", true);
        } else {
            walk(c, it, path, l, depth + 1);
        }
        path[plen] = '\0';
    }
}

void an_ground_check(const struct an_inc *ix,
                     const struct sp_analysis_anon *anon,
                     struct sp_arena *a, const struct sp_json *answer,
                     struct an_ground *g)
{
    memset(g, 0, sizeof(*g));
    struct gctx c = {ix, anon, a, g};
    char path[128] = "";
    walk(&c, answer, path, 0, 0);
}

/* ---- conclusions -------------------------------------------------------- */

static bool contains_ci(const char *s, const char *w)
{
    if (!s)
        return false;
    size_t n = strlen(s), l = strlen(w);
    for (size_t i = 0; i + l <= n; i++)
        if (sp_strncaseeq(s + i, w, l))
            return true;
    return false;
}

static const char *const benign_words[] = {
    "benign", "no action", "false positive", "can be ignored",
    "safe to ignore", "safe to close", "close the incident", "not malicious",
    "no further action", "no threat",
};

static bool says_benign(const char *s)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(benign_words); i++)
        if (contains_ci(s, benign_words[i]))
            return true;
    return false;
}

bool an_says_benign(const struct sp_json *answer)
{
    const char *as = sp_json_str(answer, "assessment");
    if (as && sp_strcaseeq(as, "benign"))
        return true;
    const struct sp_json *sum = sp_json_get(answer, "summary");
    if (says_benign(sp_json_str(sum, "headline")))
        return true;
    sp_json_foreach(sp_json_get(sum, "next_steps"), st) {
        if (st->type == SP_JSON_STRING && says_benign(st->u.s))
            return true;
    }
    return false;
}

unsigned an_answer_flags(const struct sp_json *answer,
                         const struct sp_impact *imp, bool injection,
                         int high_score)
{
    unsigned f = 0;
    const struct sp_json *impact = sp_json_get(answer, "impact");
    const char *lvl = sp_json_str(impact, "level");
    if (lvl && !sp_strcaseeq(lvl, imp->level))
        f |= SP_ANALYSIS_F_LEVEL_MISMATCH;
    const char *expl = sp_json_str(impact, "explanation");
    static const char *const levels[] = {"low", "medium", "high", "critical"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(levels) && expl; i++) {
        if (strcmp(levels[i], imp->level) == 0)
            continue;
        char a[32], b[32], c[32];
        snprintf(a, sizeof(a), "%s impact", levels[i]);
        snprintf(b, sizeof(b), "impact is %s", levels[i]);
        snprintf(c, sizeof(c), "impact: %s", levels[i]);
        if (contains_ci(expl, a) || contains_ci(expl, b) || contains_ci(expl, c))
            f |= SP_ANALYSIS_F_LEVEL_MISMATCH;
    }
    if (an_says_benign(answer) && (imp->score >= high_score || injection))
        f |= SP_ANALYSIS_F_UNTRUSTED;
    return f;
}
