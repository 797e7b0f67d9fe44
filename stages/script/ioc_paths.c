/*
 * ioc_paths.c - the structured indicator passes of the extractor (see
 * ioc.c for the whole): URLs ("://" anchored; the host yields a domain or
 * an address), UNC paths and named pipes, registry keys, Windows paths
 * (drive, %VAR% and $env: rooted) and Unix paths under the usual system
 * roots.  Each claims the bytes it reports so that the word pass does not
 * report their parts again.
 *
 * Inside quotes a path may hold spaces; outside, white space and command
 * punctuation end it (with the spaced directories every Windows machine
 * has, like "Program Files (x86)", taken whole).
 *
 * Thread-compatible; no global mutable state.
 */
#include "ioc.h"
#include "ioc_int.h"

#include <arpa/inet.h>
#include <string.h>

/* ---- pass 1: URLs ------------------------------------------------------------ */

static const struct { const char *s; size_t n; } url_schemes[] = {
#define S(x) {x, sizeof(x) - 1}
    S("https"), S("http"), S("ftps"), S("sftp"), S("tftp"), S("ftp"),
    S("wss"), S("ws"), S("smb"), S("ldaps"), S("ldap"),
#undef S
};

static bool url_stop(unsigned char c)
{
    return c <= ' ' || c == 0x7f || c == '"' || c == '\'' || c == '`' ||
           c == '<' || c == '>' || c == '^' || c == '|' || c == '{' ||
           c == '}' || c == '\\' || c == ',' || c == ';';
}

void ioc_scan_urls(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    size_t from = 0;
    while (from + 3 <= n && !sc->err) {
        const char *hit = memmem(t + from, n - from, "://", 3);
        if (!hit)
            break;
        size_t p = (size_t)(hit - t);
        from = p + 3;
        /* scheme: the longest known scheme ending right before "://" */
        size_t start = 0;
        bool ok = false;
        for (size_t k = 0; k < SP_ARRAY_SIZE(url_schemes) && !ok; k++) {
            size_t sl = url_schemes[k].n;
            if (sl <= p && sp_strncaseeq(t + p - sl, url_schemes[k].s, sl)) {
                start = p - sl;
                ok = true;
            }
        }
        if (!ok)
            continue;
        /* authority first (bounded, cheap): a templated or junk host such
         * as $x, {0} or '+' ends the candidate before the body is read */
        size_t h = p + 3, q = h, hs = h;
        bool v6 = h < n && t[h] == '[';
        while (q < n && q - h < 300 && !url_stop((unsigned char)t[q]) &&
               t[q] != '/' && t[q] != '?' && t[q] != '#' && (v6 || t[q] != ')')) {
            unsigned char c = (unsigned char)t[q];
            if (c == '@')
                hs = q + 1;
            else if (!is_alnum(c) && !strchr(".-_:[]%~", c))
                break;
            q++;
        }
        if (q < n && q - h < 300 && !url_stop((unsigned char)t[q]) &&
            !strchr("/?#)", t[q])) {
            from = q;
            continue;
        }
        if (hs < n && t[hs] == '[')
            v6 = true;
        /* body */
        size_t e = q;
        int paren = 0, bracket = 0;
        while (e < n && e - start < IOC_MAX_VALUE) {
            unsigned char c = (unsigned char)t[e];
            if (url_stop(c))
                break;
            if (c == '(')
                paren++;
            else if (c == ')' && --paren < 0)
                break;
            else if (c == '[')
                bracket++;
            else if (c == ']' && --bracket < 0)
                break;
            e++;
        }
        while (e > h && strchr(".:!?)]*", t[e - 1]) &&
               !(t[e - 1] == ')' && paren > 0))
            e--;
        from = SP_MAX(e, h);
        /* host: [hs, he) inside what is left of the authority */
        size_t ae = SP_MIN(q, e), he = hs;
        if (v6) {
            while (he < ae && t[he] != ']')
                he++;
            if (he < ae)
                he++;
        } else {
            while (he < ae && t[he] != ':')
                he++;
        }
        if (he <= hs)
            continue;
        ioc_claim(sc, start, e, CLAIM_URL);
        /* scheme lower-case, the rest as written */
        char buf[IOC_MAX_VALUE];
        size_t ul = SP_MIN(e - start, sizeof(buf));
        memcpy(buf, t + start, ul);
        for (size_t i = 0; i < p - start && i < ul; i++)
            buf[i] = sp_tolower(buf[i]);
        ioc_add(sc, SP_IOC_URL, buf, ul, false);
        size_t hlen = he - hs;
        if (v6) {
            char a6[64];
            struct in6_addr in6;
            if (hlen >= 3 && hlen - 2 < sizeof(a6)) {
                memcpy(a6, t + hs + 1, hlen - 2);
                a6[hlen - 2] = '\0';
                if (inet_pton(AF_INET6, a6, &in6) == 1)
                    ioc_add(sc, SP_IOC_IPV6, a6, hlen - 2, true);
            }
        } else if (sp_ioc_ipv4_parse(t + hs, hlen, NULL)) {
            ioc_add(sc, SP_IOC_IPV4, t + hs, hlen, false);
        } else if (ioc_url_host_is_domain(t + hs, hlen)) {
            ioc_add(sc, SP_IOC_DOMAIN, t + hs, hlen, true);
        }
        if (he < ae && t[he] == ':') {
            size_t k = he + 1;
            unsigned port = 0, d = 0;
            while (k < ae && is_digit((unsigned char)t[k]) && d < 6) {
                port = port * 10 + (unsigned)(t[k] - '0');
                k++;
                d++;
            }
            if (d > 0 && port > 0 && port <= 65535)
                ioc_add(sc, SP_IOC_PORT, t + he + 1, d, false);
        }
    }
}

/* ---- pass 2: UNC paths, named pipes, registry keys, Windows paths ------------ */

/* Where a path ends.  Inside quotes spaces and most punctuation belong to
 * the path; outside, white space and command punctuation end it. */
static size_t path_end(const char *t, size_t n, size_t i, bool quoted)
{
    int paren = 0;
    while (i < n) {
        unsigned char c = (unsigned char)t[i];
        if (c < ' ' || c == '"' || c == '\'' || c == '`' || c == '<' ||
            c == '>' || c == '|')
            break;
        if (!quoted) {
            if (c == ' ' || c == ',' || c == ';' || c == '&' || c == '^' ||
                c == '{' || c == '}' || c == '[' || c == ']')
                break;
            if (c == '(')
                paren++;
            else if (c == ')' && --paren < 0)
                break;
        }
        /* a ':' belongs to the path only as an alternate data stream */
        if (c == ':' && (i + 1 >= n || t[i + 1] == '\\' || t[i + 1] == '/' ||
                         t[i + 1] == ':' || is_space((unsigned char)t[i + 1])))
            break;
        i++;
    }
    return i;
}

static size_t trim_path(const char *t, size_t s, size_t e)
{
    while (e > s && strchr(".:; ", t[e - 1]))
        e--;
    return e;
}

static bool path_boundary(unsigned char c)
{
    return is_space(c) || is_quote(c) || c == '=' || c == '(' || c == ',' ||
           c == ';' || c == '<' || c == '>' || c == '|' || c == '&' ||
           c == '[' || c == '{' || c == '@';
}

/* "C:\Program Files (x86)\..." without quotes: the spaced directories
 * every Windows machine has are taken as part of the path. */
static size_t extend_spaced_dir(const char *t, size_t n, size_t s, size_t e)
{
    static const char *const dirs[] = {
        "Program Files (x86)\\", "Program Files\\", "Common Files\\",
        "Documents and Settings\\", "Internet Explorer\\",
        "Windows Defender\\", "Windows NT\\", "Windows Media Player\\",
        "Microsoft Office\\",
    };
    for (int guard = 0; guard < 4 && e < n && t[e] == ' '; guard++) {
        /* start of the last component */
        size_t c = e;
        while (c > s && t[c - 1] != '\\')
            c--;
        bool ext = false;
        for (size_t k = 0; k < SP_ARRAY_SIZE(dirs); k++) {
            size_t dl = strlen(dirs[k]);
            if (c + dl <= n && sp_strncaseeq(t + c, dirs[k], dl)) {
                e = path_end(t, n, c + dl, false);
                ext = true;
                break;
            }
        }
        if (!ext)
            break;
    }
    return e;
}

static size_t scan_unc(struct scan *sc, size_t i)
{
    const char *t = sc->t;
    size_t n = sc->n;
    bool quoted = i > 0 && (t[i - 1] == '"' || t[i - 1] == '\'');
    size_t h = i + 2;
    if (h + 1 < n && t[h] == '.' && t[h + 1] == '\\') {
        if (h + 7 <= n && sp_strncaseeq(t + h + 2, "pipe\\", 5)) {
            size_t e = trim_path(t, i, path_end(t, n, h + 7, quoted));
            if (e > h + 7) {
                ioc_add(sc, SP_IOC_NAMED_PIPE, t + i, e - i, false);
                ioc_claim(sc, i, e, CLAIM_PATH);
                return e;
            }
        }
        return h;
    }
    size_t he = h;
    while (he < n && he - h < 253 &&
           (is_alnum((unsigned char)t[he]) || t[he] == '.' || t[he] == '-' ||
            t[he] == '_' || t[he] == '$'))
        he++;
    if (he == h || he + 1 >= n || t[he] != '\\' || t[he + 1] == '\\' ||
        is_space((unsigned char)t[he + 1]) || is_quote((unsigned char)t[he + 1]))
        return h;
    size_t e = trim_path(t, i, path_end(t, n, he + 1, quoted));
    if (e <= he + 1)
        return h;
    size_t share = he + 1, se = share;
    while (se < e && t[se] != '\\')
        se++;
    if (se - share == 4 && sp_strncaseeq(t + share, "pipe", 4) && se < e)
        ioc_add(sc, SP_IOC_NAMED_PIPE, t + i, e - i, false);
    else
        ioc_add(sc, SP_IOC_UNC_PATH, t + i, e - i, false);
    ioc_add_host(sc, t + h, he - h);
    if (sp_ioc_ipv4_parse(t + h, he - h, NULL))
        ioc_note_ip_end(sc, he);
    ioc_claim(sc, i, e, CLAIM_PATH);
    return e;
}

static const char *const hives[] = {
    "HKEY_LOCAL_MACHINE", "HKEY_CURRENT_USER", "HKEY_CLASSES_ROOT",
    "HKEY_CURRENT_CONFIG", "HKEY_USERS", "HKLM", "HKCU", "HKCR", "HKCC",
    "HKU",
};

static size_t scan_registry(struct scan *sc, size_t i)
{
    const char *t = sc->t;
    size_t n = sc->n;
    for (size_t k = 0; k < SP_ARRAY_SIZE(hives); k++) {
        size_t hl = strlen(hives[k]);
        if (i + hl >= n || !sp_strncaseeq(t + i, hives[k], hl))
            continue;
        size_t p = i + hl;
        if (t[p] == ':')
            p++;
        if (p < n && t[p] == '\\')
            p++;
        else if (p == i + hl)
            return i + 1;      /* HKLMfoo: not a key */
        if (p >= n || !(is_alnum((unsigned char)t[p]) || t[p] == '_' ||
                        t[p] == '.' || t[p] == '*'))
            return i + 1;
        bool quoted = i > 0 && (t[i - 1] == '"' || t[i - 1] == '\'');
        size_t e = trim_path(t, i, path_end(t, n, p, quoted));
        ioc_add(sc, SP_IOC_REGISTRY, t + i, e - i, false);
        ioc_claim(sc, i, e, CLAIM_PATH);
        return e;
    }
    return i + 1;
}

static size_t scan_winpath(struct scan *sc, size_t i, size_t root_end)
{
    const char *t = sc->t;
    size_t n = sc->n;
    bool quoted = i > 0 && (t[i - 1] == '"' || t[i - 1] == '\'');
    size_t e = path_end(t, n, root_end, quoted);
    if (!quoted)
        e = extend_spaced_dir(t, n, i, e);
    e = trim_path(t, i, e);
    if (e <= root_end)
        return root_end;
    ioc_add(sc, SP_IOC_FILE_PATH, t + i, e - i, false);
    ioc_claim(sc, i, e, CLAIM_PATH);
    return e;
}

/* %NAME%\ , $env:NAME\ , ${env:NAME}\ : returns the offset after the
 * separator, or 0. */
static size_t env_root(const char *t, size_t n, size_t i)
{
    size_t p = i;
    if (t[p] == '%') {
        p++;
        size_t s = p;
        while (p < n && p - s < 40 &&
               (is_alnum((unsigned char)t[p]) || t[p] == '_' || t[p] == '(' ||
                t[p] == ')'))
            p++;
        if (p == s || p + 1 >= n || t[p] != '%' ||
            (t[p + 1] != '\\' && t[p + 1] != '/'))
            return 0;
        return p + 2;
    }
    if (t[p] == '$') {
        p++;
        bool brace = p < n && t[p] == '{';
        if (brace)
            p++;
        if (p + 4 > n || !sp_strncaseeq(t + p, "env:", 4))
            return 0;
        p += 4;
        size_t s = p;
        while (p < n && p - s < 40 &&
               (is_alnum((unsigned char)t[p]) || t[p] == '_'))
            p++;
        if (p == s)
            return 0;
        if (brace) {
            if (p >= n || t[p] != '}')
                return 0;
            p++;
        }
        if (p + 1 >= n || t[p] != '\\')
            return 0;
        return p + 1;
    }
    return 0;
}

void ioc_scan_windows(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    size_t i = 0;
    while (i < n && !sc->err) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\\' && i + 1 < n && t[i + 1] == '\\' &&
            (i == 0 || path_boundary((unsigned char)t[i - 1])) &&
            !ioc_claimed(sc, i, i + 2, CLAIM_URL)) {
            i = scan_unc(sc, i);
            continue;
        }
        if ((c == 'H' || c == 'h') && i + 4 < n && (t[i + 1] | 0x20) == 'k' &&
            (i == 0 || !(is_alnum((unsigned char)t[i - 1]) || t[i - 1] == '_' ||
                         t[i - 1] == '\\')) &&
            !ioc_claimed(sc, i, i + 1, CLAIM_URL | CLAIM_PATH)) {
            i = scan_registry(sc, i);
            continue;
        }
        if (is_alpha(c) && i + 3 < n && t[i + 1] == ':' &&
            (t[i + 2] == '\\' || (t[i + 2] == '/' && t[i + 3] != '/')) &&
            (i == 0 || !(is_alnum((unsigned char)t[i - 1]) ||
                         t[i - 1] == '_' || t[i - 1] == '.')) &&
            !ioc_claimed(sc, i, i + 1, CLAIM_URL | CLAIM_PATH)) {
            i = scan_winpath(sc, i, i + 3);
            continue;
        }
        if ((c == '%' || c == '$') && (i == 0 || !is_alnum((unsigned char)t[i - 1])) &&
            !ioc_claimed(sc, i, i + 1, CLAIM_URL | CLAIM_PATH)) {
            size_t r = env_root(t, n, i);
            if (r) {
                i = scan_winpath(sc, i, r);
                continue;
            }
        }
        i++;
    }
}

/* ---- pass 3: Unix paths --------------------------------------------------- */

static const char *const unix_roots[] = {
    "tmp/", "etc/", "bin/", "sbin/", "usr/", "var/", "dev/", "home/", "opt/",
    "root/", "proc/", "lib/", "lib64/", "mnt/", "srv/", "run/", "private/",
    "Users/", "Library/", "System/", "Applications/", "Volumes/", "sys/",
    "boot/", "media/",
};

static const char *const unix_noise[] = {
    "/dev/null", "/dev/zero", "/dev/stdin", "/dev/stdout", "/dev/stderr",
    "/dev/random", "/dev/urandom", "/dev/tty",
};

static bool unix_boundary(unsigned char c)
{
    return is_space(c) || is_quote(c) || c == '=' || c == '(' || c == '<' ||
           c == '>' || c == '|' || c == ';' || c == '&' || c == ':' ||
           c == ',' || c == '{' || c == '[';
}

void ioc_scan_unix(struct scan *sc)
{
    const char *t = sc->t;
    size_t n = sc->n;
    for (size_t i = 0; i + 4 < n && !sc->err; i++) {
        if (t[i] != '/' && !(t[i] == '~' && t[i + 1] == '/'))
            continue;
        /* every root starts with one of these */
        if (t[i] == '/' && !strchr("tebsuvdhorplmASULV", t[i + 1]))
            continue;
        if (i > 0 && !unix_boundary((unsigned char)t[i - 1]))
            continue;
        size_t r = 0;
        if (t[i] == '~') {
            r = i + 2;
        } else {
            for (size_t k = 0; k < SP_ARRAY_SIZE(unix_roots); k++) {
                size_t rl = strlen(unix_roots[k]);
                if (i + 1 + rl <= n && memcmp(t + i + 1, unix_roots[k], rl) == 0) {
                    r = i + 1 + rl;
                    break;
                }
            }
        }
        if (!r || ioc_claimed(sc, i, i + 1, CLAIM_URL | CLAIM_PATH))
            continue;
        size_t e = r;
        while (e < n) {
            unsigned char c = (unsigned char)t[e];
            if (c <= ' ' || is_quote(c) || c == ';' || c == '|' || c == '&' ||
                c == '<' || c == '>' || c == ')' || c == ',' || c == '(' ||
                c == '\\')
                break;
            e++;
        }
        e = trim_path(t, i, e);
        if (e <= r)
            continue;
        bool noise = false;
        for (size_t k = 0; k < SP_ARRAY_SIZE(unix_noise) && !noise; k++) {
            size_t nl = strlen(unix_noise[k]);
            noise = e - i >= nl && memcmp(t + i, unix_noise[k], nl) == 0 &&
                    (e - i == nl || t[i + nl] == '/');
        }
        if (!noise) {
            ioc_add(sc, SP_IOC_UNIX_PATH, t + i, e - i, false);
            ioc_claim(sc, i, e, CLAIM_PATH);
        }
        i = e - 1;
    }
}

