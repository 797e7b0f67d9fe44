/*
 * attack_scan.c - the rule engine: runs the program and keyword rules of
 * attack_rules.c and the hand-written detectors over one decoded layer.
 *
 * A scan works on a lower-cased copy of the layer (same length, so
 * offsets map back to the original text for evidence):
 *   - the text is cut into command segments at & | ; and line breaks, each
 *     segment into tokens; a token whose basename (without .exe) is a
 *     known program, in a position where a program can stand, runs that
 *     program's rules against the rest of the segment;
 *   - every keyword is looked for in one pass: a 2-byte-prefix hash index
 *     gives the few keywords that can start at each offset;
 *   - detectors look for alternate data streams, hidden windows, Unicode
 *     look-alike characters and URL arguments.
 *
 * The indexes are built once (pthread_once) from the static tables; after
 * that everything is read-only, so any thread may scan.  A scan allocates
 * nothing for layers up to 4 KiB (the lower-cased copy lives on the
 * stack); larger layers take one malloc.  The prefilter is the same scan
 * in "probe" mode: it records nothing and stops at the first rule that
 * fires.
 */
#include "attack.h"
#include "attack_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PROG_SLOTS 1024        /* power of two, > 2x the distinct names */
#define KW_BUCKETS 1024        /* power of two */
#define STACK_TEXT 4096
#define ARGS_MAX 4096          /* a program's arguments looked at */
#define PROG_EVALS_MAX 1024    /* program occurrences evaluated per layer */

/* ---- indexes -------------------------------------------------------------- */

struct prog_slot {
    const char *name;    /* NULL = empty */
    uint16_t len;
    uint16_t first;
    uint16_t count;
};

static struct prog_slot prog_index[PROG_SLOTS];
static uint16_t kw_head[KW_BUCKETS];      /* 1-based rule index, 0 = none */
static uint16_t *kw_next;                 /* 1-based chain */
static uint8_t *kw_len;                   /* keyword lengths */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static bool index_ok;

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static unsigned kw_bucket(unsigned char a, unsigned char b)
{
    return ((unsigned)a * 31u + (unsigned)b) & (KW_BUCKETS - 1);
}

static void build_index(void)
{
    for (size_t i = 0; i < sp_attack_n_prog_rules;) {
        const char *name = sp_attack_prog_rules[i].prog;
        size_t j = i;
        while (j < sp_attack_n_prog_rules &&
               strcmp(sp_attack_prog_rules[j].prog, name) == 0)
            j++;
        size_t nl = strlen(name);
        uint32_t h = name_hash(name, nl) & (PROG_SLOTS - 1);
        for (unsigned probe = 0; probe < PROG_SLOTS; probe++) {
            struct prog_slot *s = &prog_index[(h + probe) & (PROG_SLOTS - 1)];
            if (!s->name) {
                s->name = name;
                s->len = (uint16_t)nl;
                s->first = (uint16_t)i;
                s->count = (uint16_t)(j - i);
                break;
            }
        }
        i = j;
    }
    if (sp_attack_n_kw_rules > SP_ATTACK_MAX_KW_RULES)
        return;
    kw_next = calloc(sp_attack_n_kw_rules + 1, sizeof(*kw_next));
    kw_len = calloc(sp_attack_n_kw_rules + 1, sizeof(*kw_len));
    if (!kw_next || !kw_len)
        return;
    for (size_t i = 0; i < sp_attack_n_kw_rules; i++) {
        size_t kl = strlen(sp_attack_kw_rules[i].kw);
        if (kl < 2 || kl > 255)
            return;
        kw_len[i] = (uint8_t)kl;
    }
    /* insert in reverse so each chain lists rules in table order */
    for (size_t i = sp_attack_n_kw_rules; i-- > 0;) {
        const char *kw = sp_attack_kw_rules[i].kw;
        unsigned b = kw_bucket((unsigned char)kw[0], (unsigned char)kw[1]);
        kw_next[i + 1] = kw_head[b];
        kw_head[b] = (uint16_t)(i + 1);
    }
    index_ok = true;
}

static bool index_ready(void)
{
    pthread_once(&index_once, build_index);
    return index_ok;
}

static const struct prog_slot *prog_find(const char *name, size_t n)
{
    uint32_t h = name_hash(name, n) & (PROG_SLOTS - 1);
    for (unsigned probe = 0; probe < PROG_SLOTS; probe++) {
        const struct prog_slot *s = &prog_index[(h + probe) & (PROG_SLOTS - 1)];
        if (!s->name)
            return NULL;
        if (s->len == n && memcmp(s->name, name, n) == 0)
            return s;
    }
    return NULL;
}

bool sp_attack_known_program(const char *name, size_t len)
{
    char low[48];
    if (len >= sizeof(low) || len < 2 || !index_ready())
        return false;
    for (size_t i = 0; i < len; i++)
        low[i] = sp_tolower(name[i]);
    if (len > 4 && memcmp(low + len - 4, ".exe", 4) == 0)
        len -= 4;
    const struct prog_slot *ps = prog_find(low, len);
    if (!ps)
        return false;
    for (unsigned k = 0; k < ps->count; k++)
        if (!(sp_attack_prog_rules[ps->first + k].flags & SP_PROG_QUIET))
            return true;
    return false;
}

/* ---- character helpers ------------------------------------------------------ */

static inline bool is_wordc(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           (c >= 'A' && c <= 'Z');
}

static inline bool is_alnum_c(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c >= 'A' && c <= 'Z');
}

static inline bool is_sep(unsigned char c)
{
    return c == '&' || c == '|' || c == ';' || c == '\n' || c == '\r';
}

static inline bool is_tokbreak(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '`' ||
           c == '(' || c == ')' || c == ',' || c == '=' || c == '{' ||
           c == '}' || c == '[' || c == ']' || c == '<' || c == '>' ||
           c == '\v' || c == '\f';
}

static const char *find(const char *h, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    return memmem(h, hn, needle, nn);
}

/* ---- detectors shared with conditions ---------------------------------------- */

static bool has_url(const char *s, size_t n)
{
    return find(s, n, "http://", 7) || find(s, n, "https://", 8) ||
           find(s, n, "ftp://", 6);
}

static bool has_unc(const char *s, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == '\\' && s[i + 1] == '\\' && is_alnum_c((unsigned char)s[i + 2]) &&
            (i == 0 || s[i - 1] != '\\'))
            return true;
    return false;
}

static bool has_nix(const char *s, size_t n)
{
    static const char *const roots[] = {
        "/etc/", "/tmp/", "/bin/", "/dev/", "/usr/", "/var/", "/home/",
        "/proc/", "~/",
    };
    for (size_t k = 0; k < SP_ARRAY_SIZE(roots); k++)
        if (find(s, n, roots[k], strlen(roots[k])))
            return true;
    return false;
}

/* A cmd.exe %NAME% (or %NAME:~x,y%) variable reference. */
static bool has_win(const char *s, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != '%')
            continue;
        size_t j = i + 1;
        while (j < n && j - i < 40 && (is_alnum_c((unsigned char)s[j]) || s[j] == '_'))
            j++;
        if (j > i + 1 && j < n && (s[j] == '%' || s[j] == ':'))
            return true;
    }
    return false;
}

/* Schemes and PowerShell drives that put a ':' right after a name. */
static bool colon_prefix_ok(const char *s, size_t n)
{
    static const char *const names[] = {
        "http", "https", "ftp", "file", "script", "javascript", "vbscript",
        "about", "mk", "res", "shell", "env", "variable", "function", "alias",
        "hklm", "hkcu", "hkcr", "hku", "registry", "cert", "wsman", "tcp",
        "udp", "exec", "system", "localhost", "data", "mailto",
    };
    for (size_t k = 0; k < SP_ARRAY_SIZE(names); k++)
        if (strlen(names[k]) == n && memcmp(names[k], s, n) == 0)
            return true;
    return false;
}

/*
 * An alternate data stream reference: name.ext:stream or dir\name:stream,
 * i.e. a ':' that is not a drive letter, scheme, port, PowerShell scope or
 * static member, switch value (/p:x) or time.  Returns the offset of the
 * name's first byte (and sets *end past the stream name), or SIZE_MAX.
 */
static size_t find_ads(const char *s, size_t n, size_t from, size_t *end)
{
    for (size_t i = from; i + 1 < n; i++) {
        if (s[i] != ':')
            continue;
        unsigned char after = (unsigned char)s[i + 1];
        if (!(is_alnum_c(after) || after == '_' || after == '$'))
            continue;
        if (i == 0 || !(is_alnum_c((unsigned char)s[i - 1]) || s[i - 1] == '_'))
            continue;
        /* the name before the colon */
        size_t b = i;
        while (b > 0 && (is_alnum_c((unsigned char)s[b - 1]) || s[b - 1] == '_' ||
                         s[b - 1] == '.' || s[b - 1] == '-' || s[b - 1] == '$'))
            b--;
        size_t nl = i - b;
        if (nl < 2 || s[b] == '$' || s[b] == '-')
            continue;
        bool in_path = b > 0 && s[b - 1] == '\\';
        const char *dot = memchr(s + b, '.', nl);
        bool has_ext = false;
        if (dot) {
            size_t el = (size_t)(s + i - dot) - 1;
            has_ext = el >= 1 && el <= 5;
            for (size_t k = 1; k <= el && has_ext; k++)
                has_ext = is_alnum_c((unsigned char)dot[k]);
        }
        if (!in_path && !has_ext)
            continue;
        if (b > 0 && (s[b - 1] == '/' || s[b - 1] == '-' || s[b - 1] == '@'))
            continue;           /* /switch:value, -flag:value, user@host:path */
        if (!dot && colon_prefix_ok(s + b, nl))
            continue;
        /* the stream name: not a port, not "//" */
        size_t e = i + 1;
        bool digits = true;
        while (e < n && (is_alnum_c((unsigned char)s[e]) || s[e] == '_' ||
                         s[e] == '.' || s[e] == '-' || s[e] == '$')) {
            digits &= s[e] >= '0' && s[e] <= '9';
            e++;
        }
        if (digits)
            continue;
        if (e < n && (s[e] == '/' || s[e] == ':'))
            continue;
        *end = e;
        return b;
    }
    return SIZE_MAX;
}

static bool has_ads(const char *s, size_t n)
{
    size_t e;
    return find_ads(s, n, 0, &e) != SIZE_MAX;
}

/* ---- conditions -------------------------------------------------------------------- */

struct scope {
    const char *s;        /* lower-case */
    size_t n;
    bool exe;             /* program written with .exe */
};

static bool flag_match(const struct scope *sc, const char *body, size_t bl)
{
    const char *s = sc->s;
    size_t n = sc->n, from = 0;
    while (from < n) {
        const char *hit = find(s + from, n - from, body, bl);
        if (!hit)
            return false;
        size_t p = (size_t)(hit - s);
        from = p + 1;
        if (p == 0 || (s[p - 1] != '-' && s[p - 1] != '/'))
            continue;
        size_t q = p - 1;
        if (q > 0 && s[q - 1] == '-')
            q--;
        if (q > 0 && !strchr(" \t\"'(,;\n", s[q - 1]))
            continue;
        size_t e = p + bl;
        if (e < n && !strchr(" \t\"':=),;\n", s[e]))
            continue;
        return true;
    }
    return false;
}

static bool word_match(const struct scope *sc, const char *w, size_t wl)
{
    const char *s = sc->s;
    size_t n = sc->n, from = 0;
    while (from < n) {
        const char *hit = find(s + from, n - from, w, wl);
        if (!hit)
            return false;
        size_t p = (size_t)(hit - s);
        from = p + 1;
        if (is_wordc((unsigned char)w[0]) && p > 0 && is_wordc((unsigned char)s[p - 1]))
            continue;
        if (is_wordc((unsigned char)w[wl - 1]) && p + wl < n &&
            is_wordc((unsigned char)s[p + wl]))
            continue;
        return true;
    }
    return false;
}

static bool term_eval(const struct scope *sc, const char *t, size_t tl)
{
    if (tl == 0)
        return true;
    switch (t[0]) {
    case '!':
        return !term_eval(sc, t + 1, tl - 1);
    case '~':
        return find(sc->s, sc->n, t + 1, tl - 1) != NULL;
    case '^': {
        size_t i = 0;
        while (i < sc->n && strchr(" \t\"'", sc->s[i]))
            i++;
        return sc->n - i >= tl - 1 && memcmp(sc->s + i, t + 1, tl - 1) == 0;
    }
    case '-':
        return tl > 1 && flag_match(sc, t + 1, tl - 1);
    case '@':
        if (tl == 4 && memcmp(t, "@url", 4) == 0)
            return has_url(sc->s, sc->n);
        if (tl == 4 && memcmp(t, "@unc", 4) == 0)
            return has_unc(sc->s, sc->n);
        if (tl == 4 && memcmp(t, "@ads", 4) == 0)
            return has_ads(sc->s, sc->n);
        if (tl == 4 && memcmp(t, "@nix", 4) == 0)
            return has_nix(sc->s, sc->n);
        if (tl == 4 && memcmp(t, "@win", 4) == 0)
            return has_win(sc->s, sc->n);
        if (tl == 4 && memcmp(t, "@exe", 4) == 0)
            return sc->exe;
        if (tl == 5 && memcmp(t, "@args", 5) == 0) {
            for (size_t i = 0; i < sc->n; i++)
                if (!strchr(" \t\"'", sc->s[i]))
                    return true;
            return false;
        }
        return false;
    default:
        return word_match(sc, t, tl);
    }
}

/* See attack_int.h for the grammar. */
static bool cond_eval(const char *cond, const struct scope *sc)
{
    if (!cond || !*cond)
        return true;
    const char *alt = cond;
    for (;;) {
        const char *alt_end = strchr(alt, '|');
        if (!alt_end)
            alt_end = alt + strlen(alt);
        bool all = true;
        const char *t = alt;
        while (t < alt_end && all) {
            const char *te = memchr(t, '+', (size_t)(alt_end - t));
            if (!te)
                te = alt_end;
            all = term_eval(sc, t, (size_t)(te - t));
            t = te + 1;
        }
        if (all)
            return true;
        if (!*alt_end)
            return false;
        alt = alt_end + 1;
    }
}

/* ---- the scan ------------------------------------------------------------------------ */

struct ctx {
    struct sp_attack_list *l;
    const char *t;        /* original text */
    const char *low;      /* lower-cased copy, same length */
    size_t n;
    unsigned layer;
    enum sp_err err;
    size_t url_s, url_e;  /* first segment handing a URL to a program */
    bool url_seen;
    unsigned prog_evals;
    bool probe;           /* prefilter: stop at the first hit */
    bool any;
    /* keyword conditions are over the whole layer: evaluated once each
     * (0 = not yet, 1 = true, 2 = false) */
    uint8_t kw_cond[SP_ATTACK_MAX_KW_RULES];
};

static void hit(struct ctx *c, const char *tech, const char *what, size_t s,
                size_t e)
{
    if (c->err)
        return;
    if (c->probe) {
        c->any = true;
        c->err = SP_ERR_LIMIT;        /* ends every loop */
        return;
    }
    if (e > c->n)
        e = c->n;
    enum sp_err r = sp_attack_add(c->l, tech, what, c->t + s, e - s, c->layer);
    if (r == SP_ERR_NOMEM)
        c->err = r;
}

struct word {
    const char *s;
    size_t n;
};
#define W(x) {x, sizeof(x) - 1}

static const struct word launchers[] = {
    W("/c"), W("/k"), W("/r"), W("-c"), W("--"), W("start"), W("call"),
    W("sudo"), W("nohup"), W("timeout"), W("exec"), W("env"), W("xargs"),
    W("nice"), W("time"), W("watch"), W("-e"), W("-command"), W("/tr"),
    W("-exec"), W("do"),
};

static bool in_words(const struct word *w, size_t nw, const char *s, size_t n)
{
    for (size_t k = 0; k < nw; k++)
        if (w[k].n == n && memcmp(w[k].s, s, n) == 0)
            return true;
    return false;
}

static bool is_launcher(const char *s, size_t n)
{
    return n <= 8 && in_words(launchers, SP_ARRAY_SIZE(launchers), s, n);
}

/* A first word after which a URL is only text, not something fetched. */
static bool url_inert(const char *s, size_t n)
{
    static const struct word words[] = {
        W("echo"), W("rem"), W("set"), W("title"), W("msg"), W("write-host"),
        W("write-output"), W("out-file"), W("print"), W("printf"),
    };
    if (n == 0 || s[0] == '$' || s[0] == '#' || s[0] == '[' || s[0] == ':')
        return true;
    return in_words(words, SP_ARRAY_SIZE(words), s, n);
}

static void run_prog_rules(struct ctx *c, const struct prog_slot *ps,
                           size_t ts, size_t te, size_t se, bool exe,
                           bool eligible)
{
    if (++c->prog_evals > PROG_EVALS_MAX)
        return;
    struct scope sc = {c->low + te, SP_MIN(se - te, ARGS_MAX), exe};
    for (unsigned k = 0; k < ps->count && !c->err; k++) {
        const struct sp_attack_prog_rule *r = &sp_attack_prog_rules[ps->first + k];
        if (!eligible && !(r->flags & SP_PROG_ANY))
            continue;
        if (cond_eval(r->cond, &sc))
            hit(c, r->tech, r->what, ts, se);
    }
}

static void scan_segment(struct ctx *c, size_t ss, size_t se)
{
    const char *L = c->low;
    unsigned tok_index = 0;
    bool after_launcher = false;
    size_t first_s = 0, first_e = 0;
    size_t i = ss;
    while (i < se && !c->err) {
        while (i < se && is_tokbreak((unsigned char)L[i]))
            i++;
        if (i >= se)
            break;
        size_t ts = i;
        while (i < se && !is_tokbreak((unsigned char)L[i]))
            i++;
        size_t te = i;
        if (tok_index == 0) {
            first_s = ts;
            first_e = te;
            if (L[ts] == '@' && te - ts > 1)
                first_s++;
        }
        /* basename, without a trailing .exe */
        size_t bs = ts;
        for (size_t k = ts; k < te; k++)
            if (L[k] == '\\' || L[k] == '/')
                bs = k + 1;
        size_t be = te;
        bool exe = false;
        if (be - bs > 4 && memcmp(L + be - 4, ".exe", 4) == 0) {
            be -= 4;
            exe = true;
        }
        if (bs < be && L[bs] == '@')
            bs++;
        bool pathy = bs > ts;
        size_t bl = be - bs;
        const struct prog_slot *ps = NULL;
        if (bl >= 2 && bl < 40 && index_ready())
            ps = prog_find(L + bs, bl);
        if (ps) {
            bool eligible = tok_index == 0 || exe || pathy || after_launcher;
            run_prog_rules(c, ps, ts, te, se, exe, eligible);
        }
        /* launcher state: a launcher makes the next real word a program */
        if (is_launcher(L + ts, te - ts)) {
            after_launcher = true;
        } else if (after_launcher &&
                   (L[ts] == '-' || L[ts] == '/' ||
                    (L[ts] >= '0' && L[ts] <= '9'))) {
            /* flags and numbers between launcher and program */
        } else {
            after_launcher = false;
        }
        tok_index++;
    }
    /* a URL handed to a program: the program will fetch it (reported
     * after the specific rules, which say more) */
    if (!c->url_seen && tok_index > 1 &&
        !url_inert(L + first_s, first_e - first_s) &&
        has_url(L + first_e, se - first_e)) {
        c->url_seen = true;
        c->url_s = first_s;
        c->url_e = se;
    }
}

static void scan_segments(struct ctx *c)
{
    size_t s = 0;
    for (size_t i = 0; i <= c->n && !c->err; i++) {
        if (i == c->n || is_sep((unsigned char)c->low[i])) {
            if (i > s)
                scan_segment(c, s, i);
            s = i + 1;
        }
    }
}

/* Start of the command segment around offset p (for evidence). */
static size_t segment_start(const struct ctx *c, size_t p)
{
    size_t lim = p > 100 ? p - 100 : 0;
    while (p > lim && !is_sep((unsigned char)c->low[p - 1]))
        p--;
    while (p < c->n && (c->low[p] == ' ' || c->low[p] == '\t'))
        p++;
    return p;
}

static size_t idx_of(const struct sp_attack_kw_rule *r)
{
    return (size_t)(r - sp_attack_kw_rules);
}

static void scan_keywords(struct ctx *c)
{
    const char *L = c->low;
    size_t n = c->n;
    struct scope whole = {L, n, false};
    for (size_t i = 0; i + 1 < n && !c->err; i++) {
        unsigned idx = kw_head[kw_bucket((unsigned char)L[i], (unsigned char)L[i + 1])];
        while (idx && !c->err) {
            const struct sp_attack_kw_rule *r = &sp_attack_kw_rules[idx - 1];
            idx = kw_next[idx];
            size_t kl = kw_len[idx_of(r)];
            if (kl > n - i || memcmp(L + i, r->kw, kl) != 0)
                continue;
            if (is_wordc((unsigned char)r->kw[0]) && i > 0 &&
                is_wordc((unsigned char)L[i - 1]))
                continue;
            if (is_wordc((unsigned char)r->kw[kl - 1]) && i + kl < n &&
                is_wordc((unsigned char)L[i + kl]))
                continue;
            if (c->l && sp_attack_list_has(c->l, r->tech))
                continue;
            uint8_t *st = &c->kw_cond[idx_of(r)];
            if (*st == 0)
                *st = cond_eval(r->cond, &whole) ? 1 : 2;
            if (*st != 1)
                continue;
            size_t s = segment_start(c, i);
            hit(c, r->tech, r->what, s, SP_MIN(n, i + kl + 120));
        }
    }
}

static void detect_ads(struct ctx *c)
{
    size_t e;
    size_t b = find_ads(c->low, c->n, 0, &e);
    if (b != SIZE_MAX)
        hit(c, "T1564.004", "uses an NTFS alternate data stream",
            segment_start(c, b), SP_MIN(c->n, e + 80));
}

static void detect_hidden_window(struct ctx *c)
{
    const char *L = c->low;
    size_t n = c->n;
    for (size_t i = 0; i + 3 < n; i++) {
        if ((L[i] != '-' && L[i] != '/') || L[i + 1] != 'w')
            continue;
        if (i > 0 && !strchr(" \t\"'", L[i - 1]))
            continue;
        size_t e = i + 1;
        while (e < n && L[e] >= 'a' && L[e] <= 'z')
            e++;
        static const char ws[] = "windowstyle";
        size_t fl = e - i - 1;
        if (fl > sizeof(ws) - 1 || memcmp(L + i + 1, ws, fl) != 0)
            continue;
        size_t v = e;
        while (v < n && (L[v] == ' ' || L[v] == '\t' || L[v] == ':'))
            v++;
        if (v == e)
            continue;
        bool hidden = (n - v >= 6 && memcmp(L + v, "hidden", 6) == 0) ||
                      (v < n && L[v] == '1' && (v + 1 == n || !is_wordc((unsigned char)L[v + 1])));
        if (hidden) {
            hit(c, "T1564.003", "starts its window hidden", segment_start(c, i),
                SP_MIN(n, v + 40));
            return;
        }
    }
}

/* Invisible, bidirectional-control and look-alike dash characters inside
 * a command: a way to slip past string matching. */
static void detect_unicode_tricks(struct ctx *c)
{
    const unsigned char *s = (const unsigned char *)c->t;
    size_t n = c->n, found = 0, first = SIZE_MAX;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] < 0x80)
            continue;
        unsigned cp = 0;
        size_t len = 0;
        if ((s[i] & 0xE0) == 0xC0 && (s[i + 1] & 0xC0) == 0x80) {
            cp = ((unsigned)(s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F);
            len = 2;
        } else if ((s[i] & 0xF0) == 0xE0 && (s[i + 1] & 0xC0) == 0x80 &&
                   (s[i + 2] & 0xC0) == 0x80) {
            cp = ((unsigned)(s[i] & 0x0F) << 12) | ((unsigned)(s[i + 1] & 0x3F) << 6) |
                 (s[i + 2] & 0x3F);
            len = 3;
        } else {
            continue;
        }
        bool trick = (cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212 ||
                     (cp >= 0x200B && cp <= 0x200F) ||
                     (cp >= 0x202A && cp <= 0x202E) ||
                     (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF;
        /* a non-ASCII letter wedged between ASCII letters */
        if (!trick && i > 0 && i + len < n && is_alnum_c(s[i - 1]) &&
            is_alnum_c(s[i + len]) && cp >= 0x370)
            trick = true;
        if (trick) {
            if (first == SIZE_MAX)
                first = i;
            found++;
        }
        i += len - 1;
    }
    if (found >= 2)
        hit(c, "T1027", "hides a command with invisible or look-alike Unicode characters",
            segment_start(c, first), SP_MIN(n, first + 120));
}

/* Runs everything over text; in probe mode stops at the first hit. */
static enum sp_err run_scan(struct sp_attack_list *l, const char *text,
                            size_t len, unsigned layer, bool probe, bool *any)
{
    if (!index_ready())
        return SP_ERR_NOMEM;
    char stackbuf[STACK_TEXT];
    char *low = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (!low)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < len; i++)
        low[i] = sp_tolower(text[i]);
    struct ctx c;
    c.l = l;
    c.t = text;
    c.low = low;
    c.n = len;
    c.layer = layer;
    c.err = SP_OK;
    c.url_s = c.url_e = 0;
    c.url_seen = false;
    c.prog_evals = 0;
    c.probe = probe;
    c.any = false;
    memset(c.kw_cond, 0, SP_MIN(sp_attack_n_kw_rules, sizeof(c.kw_cond)));
    scan_segments(&c);
    scan_keywords(&c);
    detect_ads(&c);
    detect_hidden_window(&c);
    detect_unicode_tricks(&c);
    if (c.url_seen)
        hit(&c, "T1105", "passes a remote URL to a program", c.url_s, c.url_e);
    if (low != stackbuf)
        free(low);
    if (any)
        *any = c.any;
    return probe ? SP_OK : c.err;
}

enum sp_err sp_attack_scan(struct sp_attack_list *l, const char *text,
                           size_t len, unsigned layer)
{
    if (!l || (!text && len))
        return SP_ERR_INVALID;
    return run_scan(l, text, len, layer, false, NULL);
}

bool sp_attack_prefilter(const char *text, size_t len)
{
    if (!text || len == 0)
        return false;
    if (len > STACK_TEXT)
        return true;
    bool any = false;
    if (run_scan(NULL, text, len, 0, true, &any) != SP_OK)
        return true;
    return any;
}
