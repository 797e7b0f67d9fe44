/*
 * ioc.c - indicator extraction (see ioc.h for the contract).
 *
 * One extraction is a handful of linear passes over the text, each
 * looking for one family, in an order that lets the structured forms
 * "claim" their bytes so that later passes do not re-read them as
 * something smaller (the host inside a URL is not a second, bare domain;
 * a file name inside a path is not a domain):
 *
 *   1. URLs ("://" anchored; the host yields a domain or an address)
 *   2. UNC paths and named pipes, registry keys, Windows paths
 *   3. Unix paths
 *   4. word tokens: IPv4, hashes, e-mail addresses, bare domains
 *   5. IPv6 (':' anchored, validated with inet_pton)
 *   6. ports (after an address, in PORT= assignments, after -p/--port)
 *   7. user agents (Mozilla/... strings and -UserAgent style arguments)
 *
 * Bare domains are where false positives come from, so they need a known
 * top-level domain that is not also a common file extension (.sh, .py,
 * .ps, .zip...), and a first label that is not a .NET or script namespace
 * (System.Net, IO.Compression...).  A URL's host is a domain whatever its
 * TLD: the URL says it is a host name.
 *
 * Thread-compatible; no global mutable state.
 */
#include "ioc.h"
#include "ioc_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static const char *const ioc_type_names[SP_IOC__COUNT] = {
    [SP_IOC_URL] = "url",
    [SP_IOC_DOMAIN] = "domain",
    [SP_IOC_IPV4] = "ipv4",
    [SP_IOC_IPV6] = "ipv6",
    [SP_IOC_EMAIL] = "email",
    [SP_IOC_FILE_PATH] = "file_path",
    [SP_IOC_UNC_PATH] = "unc_path",
    [SP_IOC_UNIX_PATH] = "unix_path",
    [SP_IOC_REGISTRY] = "registry_key",
    [SP_IOC_MD5] = "md5",
    [SP_IOC_SHA1] = "sha1",
    [SP_IOC_SHA256] = "sha256",
    [SP_IOC_USER_AGENT] = "user_agent",
    [SP_IOC_NAMED_PIPE] = "named_pipe",
    [SP_IOC_PORT] = "port",
};

const char *sp_ioc_type_name(enum sp_ioc_type type)
{
    if ((int)type < 0 || type >= SP_IOC__COUNT)
        return "unknown";
    return ioc_type_names[type];
}

/* ---- the list ------------------------------------------------------------ */

void sp_ioc_list_init(struct sp_ioc_list *l, struct sp_arena *a, size_t max)
{
    memset(l, 0, sizeof(*l));
    l->arena = a;
    l->max = max ? max : SP_IOC_DEFAULT_MAX;
}

static bool value_eq(enum sp_ioc_type type, const char *a, size_t alen,
                     const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    if (type == SP_IOC_UNIX_PATH || type == SP_IOC_USER_AGENT ||
        type == SP_IOC_URL)
        return memcmp(a, b, alen) == 0;
    return sp_strncaseeq(a, b, alen);
}

bool sp_ioc_list_has(const struct sp_ioc_list *l, enum sp_ioc_type type,
                     const char *value)
{
    size_t n = strlen(value);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].type == type &&
            value_eq(type, l->v[i].value, l->v[i].len, value, n))
            return true;
    return false;
}

size_t sp_ioc_list_network_count(const struct sp_ioc_list *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].type == SP_IOC_URL || l->v[i].type == SP_IOC_DOMAIN ||
            l->v[i].type == SP_IOC_IPV4 || l->v[i].type == SP_IOC_IPV6)
            n++;
    return n;
}

/* ---- one extraction ------------------------------------------------------ */


void ioc_claim(struct scan *sc, size_t s, size_t e, unsigned kind)
{
    if (sc->n_claims < IOC_MAX_CLAIMS) {
        sc->claims[sc->n_claims].s = s;
        sc->claims[sc->n_claims].e = e;
        sc->claims[sc->n_claims].kind = kind;
        sc->n_claims++;
    }
}

/* Is any byte of [s, e) inside a claim of one of `kinds`? */
bool ioc_claimed(const struct scan *sc, size_t s, size_t e, unsigned kinds)
{
    for (unsigned i = 0; i < sc->n_claims; i++)
        if ((sc->claims[i].kind & kinds) && s < sc->claims[i].e &&
            e > sc->claims[i].s)
            return true;
    return false;
}

/* Adds (type, text[0..len)) unless already present; `lower` stores it
 * lower-cased. */
void ioc_add(struct scan *sc, enum sp_ioc_type type, const char *p,
                size_t len, bool lower)
{
    struct sp_ioc_list *l = sc->l;
    if (len > IOC_MAX_VALUE)
        len = IOC_MAX_VALUE;
    len = strnlen(p, len);           /* values are C strings */
    if (sc->err || len == 0)
        return;
    char tmp[IOC_MAX_VALUE];
    const char *val = p;
    if (lower) {
        for (size_t i = 0; i < len; i++)
            tmp[i] = sp_tolower(p[i]);
        val = tmp;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].type == type && value_eq(type, l->v[i].value, l->v[i].len,
                                             val, len))
            return;
    if (l->n >= l->max) {
        l->truncated = true;
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > l->max)
            cap = l->max;
        struct sp_ioc *v = sp_arena_alloc(l->arena, cap * sizeof(*v));
        if (!v) {
            sc->err = SP_ERR_NOMEM;
            return;
        }
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(*v));
        l->v = v;
        l->cap = cap;
    }
    char *s = sp_arena_strndup(l->arena, val, len);
    if (!s) {
        sc->err = SP_ERR_NOMEM;
        return;
    }
    l->v[l->n].type = type;
    l->v[l->n].layer = sc->layer;
    l->v[l->n].value = s;
    l->v[l->n].len = len;
    l->n++;
}

/* ---- addresses and domains ------------------------------------------------- */

bool sp_ioc_ipv4_parse(const char *p, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || p[i] != '.')
                return false;
            i++;
        }
        unsigned v = 0, digits = 0;
        while (i < len && is_digit((unsigned char)p[i]) && digits < 4) {
            v = v * 10 + (unsigned)(p[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return false;
        if (out)
            out[part] = (uint8_t)v;
    }
    return i == len;
}

/* Top-level domains accepted for a domain found outside a URL.  Left out
 * on purpose: TLDs that are everyday file extensions (sh py pl pm ps md mk
 * rs so sc ws am ac zip mov app run) and generic words that are common
 * member names (name, email, tools, services, zone, group...). */
static const char *const bare_tlds[] = {
    "ad", "ae", "af", "ag", "ai", "al", "ao", "ar", "asia", "at", "au",
    "az", "ba", "bd", "be", "bg", "bh", "bid", "biz", "bj", "bo", "br",
    "buzz", "by", "bz", "ca", "cc", "cd", "cf", "ch", "ci", "cl", "click",
    "cloud", "club", "cm", "cn", "co", "com", "cr", "cu", "cy", "cz", "de",
    "dk", "do", "download", "dz", "ec", "edu", "ee", "eg", "es", "eu", "fi",
    "fm", "fr", "fun", "ga", "gd", "ge", "gg", "gh", "gl", "gov", "gq",
    "gr", "gt", "hk", "hn", "host", "hr", "ht", "hu", "icu", "id", "ie",
    "il", "im", "in", "info", "int", "io", "iq", "ir", "is", "it", "je",
    "jo", "jp", "ke", "kg", "kh", "kp", "kr", "kw", "kz", "la", "lb", "li",
    "link", "live", "lk", "loan", "lt", "lu", "lv", "ly", "ma", "me",
    "mil", "mn", "mo", "mobi", "ms", "mt", "mu", "mx", "my", "net", "ng", "ni",
    "nl", "no", "np", "nu", "nz", "om", "onion", "online", "org", "pa",
    "party", "pe", "ph", "pk", "pro", "pt", "pw", "qa", "ro", "ru", "rw",
    "sa", "se", "sg", "si", "site", "sk", "space", "st", "store", "su",
    "sv", "sy", "th", "tj", "tk", "tm", "tn", "to", "top", "tr", "tt",
    "tv", "tw", "tz", "ua", "ug", "uk", "us", "uy", "uz", "ve", "vip",
    "vn", "website", "win", "work", "xyz", "ye", "za", "zm", "zw",
};

/* First labels that make a dotted name a type or member path. */
static const char *const namespace_labels[] = {
    "system", "microsoft", "mscorlib", "windows", "powershell", "management",
    "wscript", "cscript", "scripting", "shell", "msxml2", "adodb", "winhttp",
    "document", "window", "console", "os", "sys", "subprocess", "socket",
    "self", "this", "math", "json", "re", "base64", "process", "string",
    "io", "net", "text", "runtime", "security", "reflection", "convert",
};

static bool in_list(const char *const *list, size_t n, const char *p,
                    size_t len)
{
    if (len == 0)
        return false;
    char first = sp_tolower(p[0]);
    for (size_t i = 0; i < n; i++)
        if (list[i][0] == first && strlen(list[i]) == len &&
            sp_strncaseeq(list[i], p, len))
            return true;
    return false;
}

/* Dotted host name syntax: >= 2 labels of [A-Za-z0-9-], no empty label,
 * no label starting or ending with '-'.  *tld gets the last label. */
static bool host_syntax(const char *p, size_t len, size_t *tld_off)
{
    if (len < 3 || len > 253)
        return false;
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '.') {
            size_t ll = i - start;
            if (ll == 0 || ll > 63 || p[start] == '-' || p[i - 1] == '-')
                return false;
            labels++;
            if (i < len)
                start = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)p[i];
        if (!is_alnum(c) && c != '-')
            return false;
    }
    if (labels < 2)
        return false;
    *tld_off = start;
    return true;
}

bool sp_ioc_is_bare_domain(const char *p, size_t len)
{
    size_t tld;
    if (!host_syntax(p, len, &tld))
        return false;
    for (size_t i = tld; i < len; i++)
        if (!is_alpha((unsigned char)p[i]))
            return false;
    if (!in_list(bare_tlds, SP_ARRAY_SIZE(bare_tlds), p + tld, len - tld))
        return false;
    const char *dot = memchr(p, '.', len);
    if (in_list(namespace_labels, SP_ARRAY_SIZE(namespace_labels), p,
                (size_t)(dot - p)))
        return false;
    return true;
}

/* A URL's host: any dotted name that is not all digits and dots. */
bool ioc_url_host_is_domain(const char *p, size_t len)
{
    size_t tld;
    if (!host_syntax(p, len, &tld))
        return false;
    for (size_t i = 0; i < len; i++)
        if (is_alpha((unsigned char)p[i]))
            return true;
    return false;
}

void ioc_note_ip_end(struct scan *sc, size_t e)
{
    if (sc->n_ip_ends < IOC_MAX_IP_ENDS)
        sc->ip_ends[sc->n_ip_ends++] = e;
}

void ioc_add_host(struct scan *sc, const char *h, size_t hl)
{
    if (sp_ioc_ipv4_parse(h, hl, NULL)) {
        ioc_add(sc, SP_IOC_IPV4, h, hl, false);
    } else if (ioc_url_host_is_domain(h, hl)) {
        ioc_add(sc, SP_IOC_DOMAIN, h, hl, true);
    }
}

/* ---- pass 4: word tokens --------------------------------------------------- */

/* "Version=3.0.0.0", "v1.2.3.4", "4.18.2008.9-0": a dotted quad that is
 * really a version number. */
static bool looks_like_version(const char *t, size_t s)
{
    size_t back = s > 12 ? s - 12 : 0;
    for (size_t i = back; i + 7 <= s; i++)
        if (sp_strncaseeq(t + i, "version", 7))
            return true;
    return false;
}

static void classify_word(struct scan *sc, size_t s, size_t e)
{
    const char *t = sc->t;
    while (s < e && (t[s] == '.' || t[s] == '-' || t[s] == '_' || t[s] == '@'))
        s++;
    while (e > s && (t[e - 1] == '.' || t[e - 1] == '-' || t[e - 1] == '_' ||
                     t[e - 1] == '@'))
        e--;
    size_t len = e - s;
    if (len < 3)
        return;
    const char *p = t + s;
    const char *at = memchr(p, '@', len);
    if (at) {
        size_t ll = (size_t)(at - p);
        if (ll == 0 || ll > 64 || memchr(at + 1, '@', len - ll - 1))
            return;
        for (size_t i = 0; i < ll; i++)
            if (!(is_alnum((unsigned char)p[i]) || strchr("._-+%", p[i])))
                return;
        if (sp_ioc_is_bare_domain(at + 1, len - ll - 1) &&
            !ioc_claimed(sc, s, e, CLAIM_URL | CLAIM_PATH))
            ioc_add(sc, SP_IOC_EMAIL, p, len, true);
        return;
    }
    if (is_digit((unsigned char)p[0]) && sp_ioc_ipv4_parse(p, len, NULL)) {
        /* 0.0.0.0 and the broadcast address name no host */
        bool unspecified = (len == 7 && memcmp(p, "0.0.0.0", 7) == 0) ||
                           (len == 15 && memcmp(p, "255.255.255.255", 15) == 0);
        if (!unspecified && !looks_like_version(t, s) && !ioc_claimed(sc, s, e, CLAIM_URL)) {
            ioc_add(sc, SP_IOC_IPV4, p, len, false);
            ioc_note_ip_end(sc, e);
        }
        return;
    }
    if (ioc_claimed(sc, s, e, CLAIM_URL | CLAIM_PATH))
        return;
    if (len == 32 || len == 40 || len == 64) {
        bool hex = true, digit = false, letter = false;
        for (size_t i = 0; i < len && hex; i++) {
            unsigned char c = (unsigned char)p[i];
            hex = is_hex(c);
            digit |= is_digit(c);
            letter |= is_alpha(c);
        }
        if (hex && digit && letter) {
            ioc_add(sc, len == 32 ? SP_IOC_MD5 : len == 40 ? SP_IOC_SHA1
                                                        : SP_IOC_SHA256,
                p, len, true);
            return;
        }
    }
    if (!memchr(p, '.', len))
        return;
    /* $obj.Member, path\file.ext, obj.method( are not domains */
    unsigned char before = s > 0 ? (unsigned char)t[s - 1] : ' ';
    unsigned char after = e < sc->n ? (unsigned char)t[e] : ' ';
    if (before == '$' || before == '\\' || before == '/' || after == '(' ||
        after == '\\')
        return;
    if (sp_ioc_is_bare_domain(p, len))
        ioc_add(sc, SP_IOC_DOMAIN, p, len, true);
}

static void scan_words(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    size_t i = 0;
    while (i < n && !sc->err) {
        if (!is_word((unsigned char)t[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < n && is_word((unsigned char)t[i]))
            i++;
        if (i - s >= 3)
            classify_word(sc, s, i);
    }
}

/* ---- pass 5: IPv6 ------------------------------------------------------------ */

static void scan_ipv6(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    size_t i = 0;
    while (i < n && !sc->err) {
        const char *c = memchr(t + i, ':', n - i);
        if (!c)
            break;
        size_t s = (size_t)(c - t), e = s;
        while (s > 0 && (is_hex((unsigned char)t[s - 1]) || t[s - 1] == ':' ||
                         t[s - 1] == '.'))
            s--;
        while (e < n && (is_hex((unsigned char)t[e]) || t[e] == ':' ||
                         t[e] == '.'))
            e++;
        i = e + 1;
        while (e > s && t[e - 1] == '.')
            e--;
        size_t len = e - s, colons = 0, hexd = 0;
        for (size_t k = s; k < e; k++) {
            colons += t[k] == ':';
            hexd += is_hex((unsigned char)t[k]);
        }
        if (len < 3 || len > 45 || colons < 2 || hexd < 1)
            continue;
        unsigned char before = s > 0 ? (unsigned char)t[s - 1] : ' ';
        unsigned char after = e < n ? (unsigned char)t[e] : ' ';
        if (is_alnum(before) || before == '_' || before == ']' ||
            before == ')' || before == '$' || is_alnum(after) || after == '_' ||
            after == '(')
            continue;
        if (ioc_claimed(sc, s, e, CLAIM_URL))
            continue;
        char a6[48];
        memcpy(a6, t + s, len);
        a6[len] = '\0';
        struct in6_addr in6;
        if (inet_pton(AF_INET6, a6, &in6) != 1)
            continue;
        ioc_add(sc, SP_IOC_IPV6, a6, len, true);
        ioc_note_ip_end(sc, e);
    }
}

/* ---- pass 6: ports ------------------------------------------------------------- */

/* Parses a port number at t[p..]; returns its digit count or 0. */
static size_t port_at(const char *t, size_t n, size_t p)
{
    size_t d = 0;
    unsigned v = 0;
    while (p + d < n && is_digit((unsigned char)t[p + d]) && d < 6) {
        v = v * 10 + (unsigned)(t[p + d] - '0');
        d++;
    }
    if (d == 0 || d > 5 || v == 0 || v > 65535)
        return 0;
    if (p + d < n && (is_alnum((unsigned char)t[p + d]) || t[p + d] == '.' ||
                      t[p + d] == '_'))
        return 0;
    return d;
}

static bool ident_char(unsigned char c) { return is_alnum(c) || c == '_'; }

static void scan_ports(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    /* right after an address: 10.0.0.1:4242, "10.0.0.1",4242, ip 4242,
     * /dev/tcp/10.0.0.1/4242 */
    for (unsigned k = 0; k < sc->n_ip_ends; k++) {
        size_t p = sc->ip_ends[k], seps = 0;
        while (p < n && seps < 4 &&
               (t[p] == ':' || t[p] == '/' || t[p] == '"' || t[p] == '\'' ||
                t[p] == ',' || t[p] == ' '))
            p++, seps++;
        size_t d = seps ? port_at(t, n, p) : 0;
        if (d)
            ioc_add(sc, SP_IOC_PORT, t + p, d, false);
    }
    /* PORT=4242, RPORT="4242", $p=4242, -Port 4444, -p 4444, --port=8080 */
    for (size_t i = 0; i + 2 < n && !sc->err; i++) {
        size_t ws = i, we;
        if (!(ident_char((unsigned char)t[i]) &&
              (i == 0 || !ident_char((unsigned char)t[i - 1]))))
            continue;
        we = ws;
        while (we < n && ident_char((unsigned char)t[we]))
            we++;
        size_t wl = we - ws;
        bool name = false, flag = false;
        if (wl >= 4 && wl <= 10 && sp_strncaseeq(t + we - 4, "port", 4)) {
            name = wl == 4 || (wl == 5 && strchr("rlRL", t[ws])) ||
                   (wl == 10 && sp_strncaseeq(t + ws, "remote", 6)) ||
                   (wl == 9 && sp_strncaseeq(t + ws, "local", 5));
            flag = ws > 0 && t[ws - 1] == '-';
        } else if (wl == 1 && (t[ws] == 'p' || t[ws] == 'P') && ws > 0) {
            flag = t[ws - 1] == '-' && (ws < 2 || !ident_char((unsigned char)t[ws - 2]) ||
                                        t[ws - 2] == '-');
            name = t[ws - 1] == '$';
        }
        i = we - 1;
        if (!name && !flag)
            continue;
        size_t p = we;
        while (p < n && (t[p] == ' ' || t[p] == '=' || t[p] == ':' ||
                         t[p] == '"' || t[p] == '\'') && p - we < 4)
            p++;
        if (p == we)
            continue;
        size_t d = port_at(t, n, p);
        if (d)
            ioc_add(sc, SP_IOC_PORT, t + p, d, false);
    }
}

/* ---- pass 7: user agents -------------------------------------------------------- */

static void ua_value(struct scan *sc, size_t p, size_t min)
{
    const char *t = sc->t;
    size_t n = sc->n;
    if (p >= n)
        return;
    char q = 0;
    if (t[p] == '"' || t[p] == '\'')
        q = t[p++];
    size_t e = p;
    while (e < n && e - p < 512 && t[e] != '\n' && t[e] != '\r' &&
           (q ? t[e] != q : !is_space((unsigned char)t[e]) && t[e] != '"' &&
                                t[e] != '\''))
        e++;
    while (e > p && is_space((unsigned char)t[e - 1]))
        e--;
    if (e - p >= min && t[p] != '$' && t[p] != '-')
        ioc_add(sc, SP_IOC_USER_AGENT, t + p, e - p, false);
}

static void scan_user_agents(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    for (size_t i = 0; i + 8 <= n && !sc->err; i++) {
        unsigned char c = (unsigned char)(t[i] | 0x20);
        if (c == 'm' && sp_strncaseeq(t + i, "mozilla/", 8)) {
            size_t s = i;
            if (s > 0 && (t[s - 1] == '"' || t[s - 1] == '\''))
                s--;
            ua_value(sc, s, 8);
            i += 7;
        } else if (c == 'u' && i + 10 <= n &&
                   (sp_strncaseeq(t + i, "useragent", 9) ||
                    sp_strncaseeq(t + i, "user-agent", 10))) {
            size_t p = i + (t[i + 4] == '-' ? 10 : 9);
            bool is_flag = i > 0 && t[i - 1] == '-';
            size_t q = p;
            if (q < n && (t[q] == '"' || t[q] == '\''))
                q++;            /* 'User-Agent', '...' */
            while (q < n && q - p < 4 && (t[q] == ' ' || t[q] == ':' ||
                                          t[q] == '=' || t[q] == ','))
                q++;
            if ((is_flag || q > p) && q < n && !has_ci(t, n, q, "mozilla/"))
                ua_value(sc, q, 3);
            i = p - 1;
        }
    }
}

/* ---- defanged forms ------------------------------------------------------------ */

/* Writes the refanged text to out (at most n bytes: refanging only
 * shrinks) and returns its length; returns 0 when nothing was defanged. */
static size_t refang(const char *t, size_t n, char *out)
{
    static const struct { const char *from; const char *to; } subs[] = {
        {"[.]", "."}, {"(.)", "."}, {"{.}", "."}, {"[dot]", "."},
        {"(dot)", "."}, {"{dot}", "."}, {"[:]", ":"}, {"[://]", "://"},
        {"[@]", "@"}, {"[at]", "@"}, {"(at)", "@"}, {"hxxp", "http"},
        {"hXXp", "http"}, {"HXXP", "HTTP"}, {"fxp://", "ftp://"},
        {"[/]", "/"},
    };
    size_t o = 0;
    bool changed = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)t[i];
        bool done = false;
        if (c == '[' || c == '(' || c == '{' || c == 'h' || c == 'H' ||
            c == 'f') {
            for (size_t k = 0; k < SP_ARRAY_SIZE(subs); k++) {
                size_t fl = strlen(subs[k].from);
                if (i + fl <= n && memcmp(t + i, subs[k].from, fl) == 0) {
                    size_t tl = strlen(subs[k].to);
                    memcpy(out + o, subs[k].to, tl);
                    o += tl;
                    i += fl;
                    changed = true;
                    done = true;
                    break;
                }
            }
        }
        if (!done)
            out[o++] = t[i++];
    }
    return changed ? o : 0;
}

static bool maybe_defanged(const char *t, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if ((t[i] == '[' || t[i] == '(' || t[i] == '{') &&
            (t[i + 1] == '.' || t[i + 1] == ':' || t[i + 1] == '@' ||
             t[i + 1] == 'd' || t[i + 1] == 'a' || t[i + 1] == '/'))
            return true;
        if ((t[i] | 0x20) == 'x' && (t[i + 1] | 0x20) == 'x' &&
            (t[i + 2] | 0x20) == 'p')
            return true;
        if (t[i] == 'f' && t[i + 1] == 'x' && t[i + 2] == 'p')
            return true;
    }
    return false;
}

enum sp_err sp_ioc_extract(struct sp_ioc_list *l, const char *text,
                           size_t len, unsigned layer)
{
    if (!l || (!text && len))
        return SP_ERR_INVALID;
    char *fanged = NULL;
    if (maybe_defanged(text, len)) {
        fanged = malloc(len + 1);
        if (!fanged)
            return SP_ERR_NOMEM;
        size_t fl = refang(text, len, fanged);
        if (fl) {
            text = fanged;
            len = fl;
        }
    }
    struct scan scan_state, *sc = &scan_state;
    sc->err = SP_OK;
    sc->n_claims = 0;
    sc->n_ip_ends = 0;
    sc->t = text;
    sc->n = len;
    sc->l = l;
    sc->layer = layer;
    ioc_scan_urls(sc);
    ioc_scan_windows(sc);
    ioc_scan_unix(sc);
    scan_words(sc);
    scan_ipv6(sc);
    scan_ports(sc);
    scan_user_agents(sc);
    free(fanged);
    return sc->err;
}

void sp_ioc_list_prune(struct sp_ioc_list *l)
{
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct sp_ioc *a = &l->v[i];
        bool drop = false;
        if (a->type == SP_IOC_URL) {
            for (size_t j = 0; j < l->n && !drop; j++) {
                const struct sp_ioc *b = &l->v[j];
                drop = j != i && b->type == SP_IOC_URL && b->layer > a->layer &&
                       b->len > a->len && memcmp(b->value, a->value, a->len) == 0;
            }
        }
        if (!drop)
            l->v[o++] = *a;
    }
    l->n = o;
}
