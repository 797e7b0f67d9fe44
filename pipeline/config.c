/*
 * config.c - the core of the configuration module declared in config.h:
 * declared key tables, the store of loaded values, validation with ${...}
 * substitution, and the typed getters.  The YAML loader and "-s"
 * overrides live in config_load.c, the dump and documentation writers in
 * config_doc.c; the data they share is in config_int.h.
 *
 * Owns: struct sp_config and everything below it.  A loaded document is
 * kept as a flat list of leaves (dotted path, scalar or list, line) in an
 * arena of its own, so a load that fails leaves nothing behind.  Validate
 * maps leaves onto declared keys (or onto entries of a MAP key), then
 * parses and checks each key; resolved values go to cfg->arena and live
 * until sp_config_free().
 *
 * Threads: see config.h - one thread at start-up, read-only getters after.
 * Every loop is bounded by a SP_CFG_MAX_* limit, a table size or the
 * length of a string it walks.
 */
#include "config_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CFG_NAME_MAX 255            /* one declared key name */
#define CFG_ENV_NAME_MAX 255
#define CFG_SUGGEST_MAX 128         /* longest name we compute distances on */

/* ---- small hash table of (string, length) -> payload ------------------ */

static uint64_t cfg_fnv(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct cfg_hent *sp_cfg_hash_find(const struct cfg_hash *hash, const char *s,
                                  size_t len)
{
    if (!hash->cap)
        return NULL;
    uint64_t h = cfg_fnv(s, len);
    size_t mask = hash->cap - 1;
    for (size_t i = h & mask, probes = 0; probes < hash->cap;
         i = (i + 1) & mask, probes++) {
        struct cfg_hent *e = &hash->tab[i];
        if (!e->s)
            return NULL;
        if (e->h == h && e->len == len && memcmp(e->s, s, len) == 0)
            return e;
    }
    return NULL;
}

static struct cfg_hent *cfg_hash_slot(struct cfg_hent *tab, size_t cap,
                                      uint64_t h)
{
    size_t mask = cap - 1, i = h & mask;
    while (tab[i].s)        /* load factor <= 1/2: a free slot exists */
        i = (i + 1) & mask;
    return &tab[i];
}

/* Adds (s, len) if absent.  Returns the entry (new or existing; *fresh
 * says which), or NULL when out of memory. */
struct cfg_hent *sp_cfg_hash_put(struct cfg_hash *hash, const char *s,
                                 size_t len, bool *fresh)
{
    struct cfg_hent *e = sp_cfg_hash_find(hash, s, len);
    *fresh = false;
    if (e)
        return e;
    if ((hash->n + 1) * 2 > hash->cap) {
        size_t cap = hash->cap ? hash->cap * 2 : 64;
        struct cfg_hent *tab = calloc(cap, sizeof(*tab));
        if (!tab)
            return NULL;
        for (size_t i = 0; i < hash->cap; i++)
            if (hash->tab[i].s)
                *cfg_hash_slot(tab, cap, hash->tab[i].h) = hash->tab[i];
        free(hash->tab);
        hash->tab = tab;
        hash->cap = cap;
    }
    uint64_t h = cfg_fnv(s, len);
    e = cfg_hash_slot(hash->tab, hash->cap, h);
    memset(e, 0, sizeof(*e));
    e->s = s;
    e->len = len;
    e->h = h;
    hash->n++;
    *fresh = true;
    return e;
}

void sp_cfg_hash_fini(struct cfg_hash *hash)
{
    free(hash->tab);
    memset(hash, 0, sizeof(*hash));
}

static const char *const cfg_no_items[1] = { NULL };

/* ---- text helpers ------------------------------------------------------ */

static bool cfg_word(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && sp_strncaseeq(s, word, n);
}

void sp_cfg_trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

bool sp_cfg_is_null_word(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
                       !memcmp(s, "NULL", 4)));
}

/* A value for an error message: quoted, cut, control bytes as '?'. */
static const char *cfg_show(char *buf, size_t size, const char *s)
{
    size_t n = strlen(s), o = 0, room = size - 6;  /* quotes, "...", NUL */
    buf[o++] = '"';
    for (size_t i = 0; i < n && i < room; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n > room) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

bool sp_config_secret_name(const char *name)
{
    static const char *const words[] = { "password", "secret", "token",
                                         "key", "credential" };
    /* librdkafka properties it treats as sensitive (redacted in its own
     * config dumps) whose names carry none of the words above. */
    static const char *const names[] = { "sasl.oauthbearer.config" };
    size_t n = strlen(name);
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == n && sp_strncaseeq(name, names[i], n))
            return true;
    for (size_t w = 0; w < SP_ARRAY_SIZE(words); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++)
            if (sp_strncaseeq(name + i, words[w], wl))
                return true;
    }
    return false;
}

/* ---- parsing typed values ---------------------------------------------- */

static bool cfg_parse_i64(const char *s, size_t n, int64_t *out)
{
    sp_cfg_trim(&s, &n);
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return false;
    if (neg && v > (uint64_t)INT64_MAX + 1)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

struct cfg_unit {
    const char *name;
    int64_t mult;
};

static const struct cfg_unit cfg_duration_units[] = {
    { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
    { "h", 3600000 }, { "d", 86400000 },
};

static const struct cfg_unit cfg_size_units[] = {
    { "", 1 }, { "B", 1 },
    { "KB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 },
    { "TB", 1000000000000 },
    { "KiB", (int64_t)1 << 10 }, { "MiB", (int64_t)1 << 20 },
    { "GiB", (int64_t)1 << 30 }, { "TiB", (int64_t)1 << 40 },
};

/* "<digits>[ ]<unit>" with a unit from the table; no sign, no overflow. */
static bool cfg_parse_units(const char *s, size_t n,
                            const struct cfg_unit *units, size_t nunits,
                            int64_t *out)
{
    sp_cfg_trim(&s, &n);
    size_t i = 0;
    uint64_t v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (i == 0)
        return false;
    while (i < n && s[i] == ' ')
        i++;
    for (size_t u = 0; u < nunits; u++) {
        if (!cfg_word(s + i, n - i, units[u].name))
            continue;
        if (v > (uint64_t)(INT64_MAX / units[u].mult))
            return false;
        *out = (int64_t)v * units[u].mult;
        return true;
    }
    return false;
}

static bool cfg_parse_bool(const char *s, size_t n, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    sp_cfg_trim(&s, &n);
    for (size_t i = 0; i < SP_ARRAY_SIZE(yes); i++) {
        if (cfg_word(s, n, yes[i])) {
            *out = true;
            return true;
        }
        if (cfg_word(s, n, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Finds s among "a|b|c"; *canon and *clen get the declared spelling. */
static bool cfg_parse_enum(const char *values, const char *s, size_t n,
                           const char **canon, size_t *clen)
{
    sp_cfg_trim(&s, &n);
    const char *p = values;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && sp_strncaseeq(p, s, n)) {
            *canon = p;
            *clen = len;
            return true;
        }
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Formats a bound in the key's unit: 30000 ms -> "30s", 1048576 -> "1MiB". */
const char *sp_cfg_fmt_num(char *buf, size_t size, enum sp_cfg_type type,
                           int64_t v)
{
    const struct cfg_unit *units = NULL;
    size_t n = 0;
    if (type == SP_CFG_DURATION) {
        units = cfg_duration_units;
        n = SP_ARRAY_SIZE(cfg_duration_units);
    } else if (type == SP_CFG_SIZE) {
        units = cfg_size_units;
        n = SP_ARRAY_SIZE(cfg_size_units);
    }
    const struct cfg_unit *best = NULL;
    for (size_t i = 1; v > 0 && i < n; i++)
        if (v % units[i].mult == 0 && (!best || units[i].mult > best->mult))
            best = &units[i];
    if (v == 0)
        snprintf(buf, size, "0");
    else if (best && best->mult > 1)
        snprintf(buf, size, "%" PRId64 "%s", v / best->mult, best->name);
    else if (type == SP_CFG_DURATION)
        snprintf(buf, size, "%" PRId64 "ms", v);
    else
        snprintf(buf, size, "%" PRId64, v);
    return buf;
}

static bool cfg_in_range(const struct sp_cfg_key *k, int64_t v)
{
    if (k->min == 0 && k->max == 0)
        return true;
    if (v < k->min)
        return false;
    return k->max < k->min || v <= k->max;
}

/*
 * Parses text for a scalar key (not LIST, not MAP).  On success sets *num,
 * *b, *canon and *clen (the text to keep).  On failure writes what is wrong
 * into why (without the value) and returns false.
 */
static bool cfg_parse_value(const struct sp_cfg_key *k, const char *text,
                            int64_t *num, bool *b, const char **canon,
                            size_t *clen, char *why, size_t wsize)
{
    size_t n = strlen(text);
    char lo[48], hi[48];
    *num = 0;
    *b = false;
    *canon = text;
    *clen = n;
    switch (k->type) {
    case SP_CFG_STR:
        if (k->max > 0 && (int64_t)n > k->max) {
            snprintf(why, wsize, "%zu bytes, longer than the %lld allowed", n,
                     (long long)k->max);
            return false;
        }
        return true;
    case SP_CFG_BOOL:
        if (cfg_parse_bool(text, n, b))
            return true;
        snprintf(why, wsize, "expected true or false (yes/no, on/off, 1/0)");
        return false;
    case SP_CFG_ENUM:
        if (cfg_parse_enum(k->enum_values, text, n, canon, clen))
            return true;
        snprintf(why, wsize, "expected one of %s", k->enum_values);
        return false;
    case SP_CFG_INT:
        if (!cfg_parse_i64(text, n, num)) {
            snprintf(why, wsize, "expected an integer");
            return false;
        }
        break;
    case SP_CFG_DURATION:
        if (!cfg_parse_units(text, n, cfg_duration_units,
                             SP_ARRAY_SIZE(cfg_duration_units), num)) {
            snprintf(why, wsize, "expected a duration such as 250ms, 30s, "
                                 "5m, 24h or 7d");
            return false;
        }
        break;
    case SP_CFG_SIZE:
        if (!cfg_parse_units(text, n, cfg_size_units,
                             SP_ARRAY_SIZE(cfg_size_units), num)) {
            snprintf(why, wsize, "expected a size such as 512, 64KiB, 1MiB "
                                 "or 10MB");
            return false;
        }
        break;
    case SP_CFG_LIST:
    case SP_CFG_MAP:
        return true;
    }
    if (cfg_in_range(k, *num))
        return true;
    sp_cfg_fmt_num(lo, sizeof(lo), k->type, k->min);
    sp_cfg_fmt_num(hi, sizeof(hi), k->type, k->max);
    if (k->max < k->min)
        snprintf(why, wsize, "must be at least %s", lo);
    else
        snprintf(why, wsize, "must be between %s and %s", lo, hi);
    return false;
}

/* ---- errors collected by validate -------------------------------------- */

static void cfg_fail(struct sp_config *cfg, const char *origin, int line,
                     const char *key, const char *fmt, ...) SP_PRINTF(5, 6);

static void cfg_fail(struct sp_config *cfg, const char *origin, int line,
                     const char *key, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    cfg->nerrs_total++;
    if (cfg->nerrs >= SP_CFG_MAX_ERRORS)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char where[300] = "";
    if (origin && line > 0)
        snprintf(where, sizeof(where), "%s:%d: ", origin, line);
    else if (origin)
        snprintf(where, sizeof(where), "%s: ", origin);
    const char *m = sp_arena_printf(&cfg->arena, "%s%s%s%s", where,
                                    key ? key : "", key ? ": " : "", msg);
    if (!m) {
        cfg->oom = true;
        return;
    }
    /* Keep the list in document order: documents in load order, then -s,
     * then defaults; within a document by line (insertion sort, stable). */
    uint64_t doc = 0;
    const struct cfg_doc *d = cfg->docs;
    while (d && d->name != origin) {
        d = d->next;
        doc++;
    }
    if (!d)
        doc += origin && !strcmp(origin, "-s") ? 1 : 2;
    uint64_t order = doc << 32 | (uint32_t)(line > 0 ? line : 0);
    size_t i = cfg->nerrs++;
    for (; i > 0 && cfg->err_order[i - 1] > order; i--) {
        cfg->errs[i] = cfg->errs[i - 1];
        cfg->err_order[i] = cfg->err_order[i - 1];
    }
    cfg->errs[i] = m;
    cfg->err_order[i] = order;
}

const char *sp_cfg_leaf_origin(const struct cfg_leaf *leaf)
{
    return leaf->doc ? leaf->doc->name : "-s";
}

/* The line where the first plen bytes of leaf's path were written. */
static int cfg_leaf_line(const struct cfg_leaf *leaf, size_t plen)
{
    if (!leaf->doc)
        return 0;
    const struct cfg_hent *e = sp_cfg_hash_find(&leaf->doc->paths,
                                                leaf->path, plen);
    return e ? e->line : leaf->line;
}

static char *cfg_strndup(struct sp_config *cfg, const char *s, size_t n)
{
    char *p = sp_arena_strndup(&cfg->arena, s, n);
    if (!p)
        cfg->oom = true;
    return p;
}

/* ---- the store: new, free ---------------------------------------------- */

struct sp_config *sp_config_new(void)
{
    struct sp_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg)
        sp_arena_init(&cfg->arena, 0);
    return cfg;
}

void sp_config_free(struct sp_config *cfg)
{
    if (!cfg)
        return;
    struct cfg_doc *doc = cfg->docs;
    while (doc) {
        struct cfg_doc *next = doc->next;
        sp_cfg_doc_free(doc);
        doc = next;
    }
    sp_cfg_hash_fini(&cfg->names);
    free(cfg->slots);
    sp_arena_fini(&cfg->arena);
    free(cfg);
}

void sp_cfg_doc_free(struct cfg_doc *doc)
{
    if (!doc)
        return;
    sp_cfg_hash_fini(&doc->paths);
    sp_arena_fini(&doc->arena);
    free(doc);
}

/* ---- declaring keys ---------------------------------------------------- */

static bool cfg_name_ok(const char *name)
{
    size_t n = strlen(name), comps = 1;
    if (n == 0 || n > CFG_NAME_MAX || name[0] == '.' || name[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.') {
            if (name[i + 1] == '.' || ++comps > SP_CFG_MAX_DEPTH)
                return false;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* Is a a proper dotted prefix of b ("a.b" of "a.b.c")? */
static bool cfg_is_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '.';
}

static enum sp_err cfg_check_key(const struct sp_config *cfg,
                                 const struct sp_cfg_key *keys, size_t i,
                                 struct sp_error *err)
{
    const struct sp_cfg_key *k = &keys[i];
    char why[200];
    if (!k->name || !cfg_name_ok(k->name))
        return sp_error_set(err, SP_ERR_INVALID, "config key \"%s\": bad "
                            "name (dotted [A-Za-z0-9_-] words)",
                            k->name ? k->name : "(null)");
    if ((unsigned)k->type > SP_CFG_MAP)
        return sp_error_set(err, SP_ERR_INVALID, "%s: unknown type %d",
                            k->name, (int)k->type);
    if (k->type == SP_CFG_ENUM && (!k->enum_values || !*k->enum_values ||
                                   strstr(k->enum_values, "||") ||
                                   k->enum_values[0] == '|' ||
                                   k->enum_values[strlen(k->enum_values) - 1]
                                       == '|'))
        return sp_error_set(err, SP_ERR_INVALID, "%s: enum needs values "
                            "\"a|b|c\"", k->name);
    if (k->type == SP_CFG_MAP && k->def && *k->def)
        return sp_error_set(err, SP_ERR_INVALID, "%s: a map has no default",
                            k->name);
    if (k->def && k->type != SP_CFG_LIST && k->type != SP_CFG_MAP) {
        int64_t num;
        bool b;
        const char *canon;
        size_t clen;
        if (!cfg_parse_value(k, k->def, &num, &b, &canon, &clen, why,
                             sizeof(why)))
            return sp_error_set(err, SP_ERR_INVALID, "%s: bad default "
                                "\"%s\": %s", k->name, k->def, why);
    }
    const struct cfg_hent *e = sp_cfg_hash_find(&cfg->names, k->name,
                                                strlen(k->name));
    if (e && e->kind == H_KEY)
        return sp_error_set(err, SP_ERR_INVALID, "%s: declared twice",
                            k->name);
    if (e)
        return sp_error_set(err, SP_ERR_INVALID, "%s: already a group of "
                            "keys (%s)", k->name, cfg->slots[e->idx].key->name);
    for (const char *d = strchr(k->name, '.'); d; d = strchr(d + 1, '.')) {
        e = sp_cfg_hash_find(&cfg->names, k->name, (size_t)(d - k->name));
        if (e && e->kind == H_KEY)
            return sp_error_set(err, SP_ERR_INVALID, "%s: below key %s",
                                k->name, cfg->slots[e->idx].key->name);
    }
    for (size_t j = 0; j < i; j++) {
        const char *o = keys[j].name;
        if (!strcmp(o, k->name))
            return sp_error_set(err, SP_ERR_INVALID, "%s: declared twice",
                                k->name);
        if (cfg_is_prefix(o, k->name) || cfg_is_prefix(k->name, o))
            return sp_error_set(err, SP_ERR_INVALID, "%s: conflicts with %s "
                                "(a key cannot also be a group)", k->name, o);
    }
    return SP_OK;
}

enum sp_err sp_config_declare(struct sp_config *cfg,
                              const struct sp_cfg_key *keys, size_t n,
                              struct sp_error *err)
{
    enum sp_err rc;
    if (!cfg || (!keys && n))
        return sp_error_set(err, SP_ERR_INVALID, "declare: no keys");
    if (n > SP_CFG_MAX_KEYS - cfg->nslots)
        return sp_error_set(err, SP_ERR_LIMIT, "more than %d config keys",
                            SP_CFG_MAX_KEYS);
    for (size_t i = 0; i < n; i++)
        if ((rc = cfg_check_key(cfg, keys, i, err)) != SP_OK)
            return rc;
    struct cfg_slot *slots = realloc(cfg->slots,
                                     (cfg->nslots + n + 1) * sizeof(*slots));
    if (!slots)
        return sp_error_set(err, SP_ERR_NOMEM, "declare: out of memory");
    cfg->slots = slots;
    for (size_t i = 0; i < n; i++) {
        const char *name = keys[i].name;
        size_t idx = cfg->nslots;
        bool fresh;
        struct cfg_hent *e = sp_cfg_hash_put(&cfg->names, name,
                                             strlen(name), &fresh);
        if (!e)
            return sp_error_set(err, SP_ERR_NOMEM, "declare: out of memory");
        e->kind = H_KEY;
        e->idx = idx;
        for (const char *d = strchr(name, '.'); d; d = strchr(d + 1, '.')) {
            e = sp_cfg_hash_put(&cfg->names, name, (size_t)(d - name), &fresh);
            if (!e)
                return sp_error_set(err, SP_ERR_NOMEM, "out of memory");
            if (fresh) {
                e->kind = H_SECTION;
                e->idx = idx;
            }
        }
        memset(&cfg->slots[idx], 0, sizeof(cfg->slots[idx]));
        cfg->slots[idx].key = &keys[i];
        cfg->nslots++;
    }
    cfg->validated = false;
    return SP_OK;
}

/* ---- validate: leaves onto keys ---------------------------------------- */

/* Optimal-string-alignment distance (edits incl. swapped neighbours). */
static size_t cfg_distance(const char *a, size_t n, const char *b, size_t m)
{
    size_t rows[3][CFG_SUGGEST_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = SP_MIN(prev[j] + 1, cur[j - 1] + 1);
            v = SP_MIN(v, prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = SP_MIN(v, pp[j - 2] + 1);
            cur[j] = v;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

static size_t cfg_dots(const char *s, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += s[i] == '.';
    return d;
}

/* The declared key or group nearest to s[0..n) with as many components,
 * if near enough to be a likely typo; else NULL.  Sets *blen. */
static const char *cfg_suggest(const struct sp_config *cfg, const char *s,
                               size_t n, size_t *blen)
{
    if (n > CFG_SUGGEST_MAX)
        return NULL;
    size_t dots = cfg_dots(s, n), limit = SP_MIN(1 + n / 4, (size_t)3);
    size_t best_d = limit + 1;
    const char *best = NULL;
    for (size_t i = 0; i < cfg->nslots; i++) {
        const char *name = cfg->slots[i].key->name;
        /* Candidate: the prefix of name with as many components as s. */
        size_t len = 0, d = 0;
        while (name[len] && !(name[len] == '.' && d == dots)) {
            d += name[len] == '.';
            len++;
        }
        if (d != dots || len > CFG_SUGGEST_MAX)
            continue;
        if ((len > n ? len - n : n - len) >= best_d)
            continue;
        size_t dist = cfg_distance(s, n, name, len);
        if (dist < best_d) {
            best_d = dist;
            best = name;
            *blen = len;
        }
    }
    return best;
}

static void cfg_unknown(struct sp_config *cfg, const struct cfg_leaf *leaf,
                        size_t plen, struct cfg_hash *reported)
{
    bool fresh;
    if (!sp_cfg_hash_put(reported, leaf->path, plen, &fresh)) {
        cfg->oom = true;
        return;
    }
    if (!fresh)
        return;
    size_t blen = 0;
    const char *best = cfg_suggest(cfg, leaf->path, plen, &blen);
    int line = cfg_leaf_line(leaf, plen);
    if (best)
        cfg_fail(cfg, sp_cfg_leaf_origin(leaf), line, NULL,
                 "%.*s: unknown key (did you mean %.*s?)", (int)plen,
                 leaf->path, (int)blen, best);
    else
        cfg_fail(cfg, sp_cfg_leaf_origin(leaf), line, NULL,
                 "%.*s: unknown key", (int)plen, leaf->path);
}

static const char *cfg_type_noun(enum sp_cfg_type type)
{
    switch (type) {
    case SP_CFG_STR: return "a string";
    case SP_CFG_INT: return "an integer";
    case SP_CFG_BOOL: return "true or false";
    case SP_CFG_DURATION: return "a duration";
    case SP_CFG_SIZE: return "a size";
    case SP_CFG_ENUM: return "one word";
    case SP_CFG_LIST: return "a list";
    case SP_CFG_MAP: return "a mapping";
    }
    return "?";
}

static void cfg_apply_key(struct sp_config *cfg, struct cfg_slot *slot,
                          const struct cfg_leaf *leaf)
{
    enum sp_cfg_type type = slot->key->type;
    const char *got = NULL;
    switch (leaf->kind) {
    case L_NULL:
        if (type != SP_CFG_MAP) {       /* back to the default */
            slot->set = false;
            slot->leaf = NULL;
        }
        return;
    case L_EMPTYMAP:
        if (type == SP_CFG_MAP) {
            if (!slot->set)
                slot->leaf = leaf;
            slot->set = true;
            return;
        }
        got = "a mapping";
        break;
    case L_LIST:
        if (type == SP_CFG_LIST) {
            slot->set = true;
            slot->leaf = leaf;
            return;
        }
        got = "a list";
        break;
    case L_SCALAR:
        if (type != SP_CFG_MAP) {
            slot->set = true;
            slot->leaf = leaf;
            return;
        }
        got = "a single value";
        break;
    }
    cfg_fail(cfg, sp_cfg_leaf_origin(leaf), leaf->line, slot->key->name,
             "expected %s, got %s", cfg_type_noun(type), got);
}

static void cfg_apply_entry(struct sp_config *cfg, struct cfg_slot *slot,
                            const struct cfg_leaf *leaf, const char *name,
                            struct cfg_hash *entries)
{
    const char *raw = "";
    if (leaf->kind == L_EMPTYMAP)
        return;                 /* an empty group inside a map: nothing */
    if (leaf->kind == L_SCALAR) {
        raw = leaf->text;
    } else if (leaf->kind == L_LIST) {
        struct sp_buf b;
        sp_buf_init(&b, SP_CFG_MAX_VALUE);
        for (size_t i = 0; i < leaf->nitems; i++) {
            if (i)
                sp_buf_putc(&b, ',');
            sp_buf_puts(&b, leaf->items[i]);
        }
        raw = b.overflow ? NULL : cfg_strndup(cfg, b.data ? b.data : "",
                                              b.len);
        sp_buf_fini(&b);
        if (!raw) {
            cfg->oom = true;
            return;
        }
    }
    bool fresh;
    struct cfg_hent *e = sp_cfg_hash_put(entries, leaf->path, leaf->plen,
                                         &fresh);
    struct cfg_ent *ent = e && !fresh ? e->ptr : NULL;
    if (!e) {
        cfg->oom = true;
        return;
    }
    if (!ent) {
        ent = sp_arena_calloc(&cfg->arena, sizeof(*ent));
        if (!ent) {
            cfg->oom = true;
            e->ptr = NULL;
            return;
        }
        e->kind = H_ENTRY;
        e->ptr = ent;
        ent->name = name;
        if (slot->ents_tail)
            slot->ents_tail->next = ent;
        else
            slot->ents = ent;
        slot->ents_tail = ent;
        slot->nents++;
    }
    ent->raw = raw;
    ent->leaf = leaf;
    if (!slot->set)
        slot->leaf = leaf;
    slot->set = true;
}

static void cfg_apply(struct sp_config *cfg, const struct cfg_leaf *leaf,
                      struct cfg_hash *entries, struct cfg_hash *reported)
{
    const struct cfg_hent *e = sp_cfg_hash_find(&cfg->names, leaf->path,
                                                leaf->plen);
    if (e && e->kind == H_KEY) {
        cfg_apply_key(cfg, &cfg->slots[e->idx], leaf);
        return;
    }
    if (e) {        /* a group of keys */
        if (leaf->kind == L_NULL || leaf->kind == L_EMPTYMAP)
            return;
        cfg_fail(cfg, sp_cfg_leaf_origin(leaf), leaf->line, leaf->path,
                 "is a group of settings (such as %s), not a value",
                 cfg->slots[e->idx].key->name);
        return;
    }
    for (size_t i = 0; i < leaf->plen; i++) {   /* the path's prefixes */
        if (leaf->path[i] != '.')
            continue;
        e = sp_cfg_hash_find(&cfg->names, leaf->path, i);
        if (!e) {
            cfg_unknown(cfg, leaf, i, reported);
            return;
        }
        if (e->kind == H_SECTION)
            continue;
        struct cfg_slot *slot = &cfg->slots[e->idx];
        if (slot->key->type == SP_CFG_MAP) {
            cfg_apply_entry(cfg, slot, leaf, leaf->path + i + 1, entries);
            return;
        }
        bool fresh;
        if (!sp_cfg_hash_put(reported, leaf->path, i, &fresh)) {
            cfg->oom = true;
        } else if (fresh) {
            cfg_fail(cfg, sp_cfg_leaf_origin(leaf), cfg_leaf_line(leaf, i),
                     slot->key->name, "expected %s, got a mapping",
                     cfg_type_noun(slot->key->type));
        }
        return;
    }
    cfg_unknown(cfg, leaf, leaf->plen, reported);
}

/* ---- validate: substitution and types ---------------------------------- */

struct cfg_ctx {                /* what an error message may name */
    const char *origin;
    int line;
    const char *key;            /* full name, e.g. "kafka.consumer.x" */
    bool secret;
};

static bool cfg_subst_env(struct sp_config *cfg, const struct cfg_ctx *cx,
                          const char *s, size_t n, struct sp_buf *b)
{
    const char *dflt = NULL;
    size_t nlen = n, dlen = 0;
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == ':' && s[i + 1] == '-') {
            sep = s + i;
            break;
        }
    }
    if (sep) {
        nlen = (size_t)(sep - s);
        dflt = sep + 2;
        dlen = n - nlen - 2;
    }
    bool ok = nlen > 0 && nlen <= CFG_ENV_NAME_MAX &&
              !(s[0] >= '0' && s[0] <= '9');
    for (size_t i = 0; ok && i < nlen; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
             (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
    if (!ok) {
        if (cx->secret)
            cfg_fail(cfg, cx->origin, cx->line, cx->key, "bad ${...} in the "
                     "value of %s (write $${ for a literal ${)", cx->key);
        else
            cfg_fail(cfg, cx->origin, cx->line, cx->key, "bad substitution "
                     "${%.*s}: expected ${NAME}, ${NAME:-default} or "
                     "${file:PATH} (write $${ for a literal ${)", (int)n, s);
        return false;
    }
    char name[CFG_ENV_NAME_MAX + 1];
    memcpy(name, s, nlen);
    name[nlen] = '\0';
    const char *val = getenv(name);
    if (dflt && (!val || !*val))
        return sp_buf_put(b, dflt, dlen) == SP_OK;
    if (!val) {
        cfg_fail(cfg, cx->origin, cx->line, cx->key, "environment variable "
                 "%s is not set (use ${%s:-default} for a default)", name,
                 name);
        return false;
    }
    return sp_buf_puts(b, val) == SP_OK;
}

static bool cfg_subst_file(struct sp_config *cfg, const struct cfg_ctx *cx,
                           const char *s, size_t n, struct sp_buf *b)
{
    struct sp_error e;
    char path[4096];
    if (n == 0 || n >= sizeof(path) || (n == 1 && s[0] == '-')) {
        cfg_fail(cfg, cx->origin, cx->line, cx->key, "${file:PATH} needs a "
                 "file path");
        return false;
    }
    memcpy(path, s, n);
    path[n] = '\0';
    size_t len = 0;
    sp_error_clear(&e);
    char *text = sp_read_file(path, SP_CFG_MAX_SUBST_FILE, &len, &e);
    if (!text) {
        cfg_fail(cfg, cx->origin, cx->line, cx->key, "${file:%s}: %s", path,
                 e.msg);
        return false;
    }
    if (len && text[len - 1] == '\n')
        len--;
    if (len && text[len - 1] == '\r')
        len--;
    bool ok = !memchr(text, '\0', len);
    if (!ok)
        cfg_fail(cfg, cx->origin, cx->line, cx->key, "${file:%s}: contains "
                 "a NUL byte", path);
    else
        ok = sp_buf_put(b, text, len) == SP_OK;
    free(text);
    return ok;
}

/* Resolves ${...} in raw.  Returns raw itself when it holds none, a new
 * arena string, or NULL after recording an error.  The text that comes in
 * from the environment or a file is appended and never scanned again. */
static const char *cfg_expand(struct sp_config *cfg, const struct cfg_ctx *cx,
                              const char *raw)
{
    if (!strchr(raw, '$'))
        return raw;
    struct sp_buf b;
    sp_buf_init(&b, SP_CFG_MAX_VALUE);
    const char *p = raw, *res = NULL;
    bool ok = true;
    while (ok && *p) {              /* bounded: p only moves forward */
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            ok = sp_buf_put(&b, "${", 2) == SP_OK;
            p += 3;
            continue;
        }
        if (!(p[0] == '$' && p[1] == '{')) {
            const char *next = strchr(p + 1, '$');
            size_t n = next ? (size_t)(next - p) : strlen(p);
            ok = sp_buf_put(&b, p, n) == SP_OK;
            p += n;
            continue;
        }
        const char *end = strchr(p + 2, '}');
        if (!end) {
            cfg_fail(cfg, cx->origin, cx->line, cx->key, "unterminated ${ "
                     "in the value of %s (write $${ for a literal ${)",
                     cx->key);
            goto out;
        }
        const char *in = p + 2;
        size_t n = (size_t)(end - in);
        /* ${A:-${B}} is not supported: the first } would end it, leaving
         * "${B" as the default and a stray "}" after it. */
        if (memmem(in, n, "${", 2)) {
            cfg_fail(cfg, cx->origin, cx->line, cx->key, "${ inside ${...} "
                     "in the value of %s: nested substitutions are not "
                     "supported (write $${ for a literal ${)", cx->key);
            goto out;
        }
        if (n >= 5 && !memcmp(in, "file:", 5)) {
            if (!cfg_subst_file(cfg, cx, in + 5, n - 5, &b))
                goto out;
        } else if (!cfg_subst_env(cfg, cx, in, n, &b)) {
            goto out;
        }
        p = end + 1;
    }
    if (!ok || b.overflow) {
        cfg_fail(cfg, cx->origin, cx->line, cx->key, "the value of %s is "
                 "longer than %zu bytes after substitution", cx->key,
                 SP_CFG_MAX_VALUE);
        goto out;
    }
    res = cfg_strndup(cfg, b.data ? b.data : "", b.len);
out:
    sp_buf_fini(&b);
    return res;
}

/* Splits "a, b,c" into a NULL-terminated arena array; empty items go. */
static const char *const *cfg_split(struct sp_config *cfg, const char *text,
                                    size_t *nitems)
{
    size_t cap = 2;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    const char **arr = sp_arena_alloc(&cfg->arena, cap * sizeof(*arr));
    size_t n = 0;
    if (!arr) {
        cfg->oom = true;
        *nitems = 0;
        return cfg_no_items;
    }
    const char *p = text;
    while (p) {                     /* bounded by the commas counted above */
        const char *comma = strchr(p, ',');
        const char *s = p;
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        sp_cfg_trim(&s, &len);
        if (len && n + 1 < cap)
            arr[n++] = cfg_strndup(cfg, s, len);
        p = comma ? comma + 1 : NULL;
    }
    arr[n] = NULL;
    *nitems = n;
    return arr;
}

static const char *cfg_join(struct sp_config *cfg, const char *const *items,
                            size_t n)
{
    struct sp_buf b;
    sp_buf_init(&b, SP_CFG_MAX_VALUE * 2);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sp_buf_putc(&b, ',');
        sp_buf_puts(&b, items[i] ? items[i] : "");
    }
    const char *s = b.overflow ? NULL : cfg_strndup(cfg, b.data ? b.data : "",
                                                    b.len);
    if (!s)
        cfg->oom = true;
    sp_buf_fini(&b);
    return s;
}

static void cfg_resolve_list(struct sp_config *cfg, struct cfg_slot *slot,
                             const struct cfg_ctx *cx)
{
    const struct cfg_leaf *leaf = slot->set ? slot->leaf : NULL;
    if (leaf && leaf->kind == L_LIST) {
        const char **arr = sp_arena_alloc(&cfg->arena, (leaf->nitems + 1) *
                                                       sizeof(*arr));
        if (!arr) {
            cfg->oom = true;
            return;
        }
        for (size_t i = 0; i < leaf->nitems; i++)
            if (!(arr[i] = cfg_expand(cfg, cx, leaf->items[i])))
                return;
        arr[leaf->nitems] = NULL;
        slot->items = arr;
        slot->nitems = leaf->nitems;
    } else {
        const char *text = leaf ? cfg_expand(cfg, cx, leaf->text)
                                : slot->key->def;
        if (leaf && !text)
            return;
        if (text)
            slot->items = cfg_split(cfg, text, &slot->nitems);
    }
    if (leaf || slot->key->def)
        slot->str = cfg_join(cfg, slot->items, slot->nitems);
}

static void cfg_resolve(struct sp_config *cfg, struct cfg_slot *slot)
{
    const struct sp_cfg_key *k = slot->key;
    const struct cfg_leaf *leaf = slot->set ? slot->leaf : NULL;
    struct cfg_ctx cx = { "default", 0, k->name, (k->flags & SP_CFG_SECRET) };
    char why[300], shown[80];

    slot->items = cfg_no_items;
    if (leaf) {
        cx.origin = sp_cfg_leaf_origin(leaf);
        cx.line = leaf->line;
        slot->line = leaf->line;
        slot->origin = leaf->line ? sp_arena_printf(&cfg->arena, "%s:%d",
                                                    cx.origin, leaf->line)
                                  : cx.origin;
        if (!slot->origin) {
            cfg->oom = true;
            slot->origin = cx.origin;
        }
    } else {
        slot->origin = "default";
        slot->line = 0;
    }
    if (k->type == SP_CFG_MAP) {
        for (struct cfg_ent *ent = slot->ents; ent; ent = ent->next) {
            struct cfg_ctx ecx = {
                sp_cfg_leaf_origin(ent->leaf), ent->leaf->line,
                ent->leaf->path, cx.secret || sp_config_secret_name(ent->name)
            };
            ent->value = cfg_expand(cfg, &ecx, ent->raw);
            if (!ent->value)
                ent->value = "";
        }
        return;
    }
    if (k->type == SP_CFG_LIST) {
        cfg_resolve_list(cfg, slot, &cx);
        return;
    }
    const char *text = leaf ? cfg_expand(cfg, &cx, leaf->text) : k->def;
    if (!text)
        return;         /* unset without default, or an error recorded */
    const char *canon;
    size_t clen;
    if (!cfg_parse_value(k, text, &slot->num, &slot->b, &canon, &clen, why,
                         sizeof(why))) {
        if (cx.secret)
            cfg_fail(cfg, cx.origin, cx.line, k->name, "%s (value of %s not "
                     "shown)", why, k->name);
        else
            cfg_fail(cfg, cx.origin, cx.line, k->name, "%s (got %s)", why,
                     cfg_show(shown, sizeof(shown), text));
        return;
    }
    slot->str = canon == text ? text : cfg_strndup(cfg, canon, clen);
}

enum sp_err sp_config_validate(struct sp_config *cfg, struct sp_error *err)
{
    struct cfg_hash entries = { 0 }, reported = { 0 };
    if (!cfg)
        return sp_error_set(err, SP_ERR_INVALID, "no configuration");
    cfg->validated = false;
    cfg->oom = false;
    cfg->nerrs = cfg->nerrs_total = 0;
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct sp_cfg_key *k = cfg->slots[i].key;
        memset(&cfg->slots[i], 0, sizeof(cfg->slots[i]));
        cfg->slots[i].key = k;
    }
    for (const struct cfg_doc *doc = cfg->docs; doc; doc = doc->next)
        for (const struct cfg_leaf *leaf = doc->head; leaf; leaf = leaf->next)
            cfg_apply(cfg, leaf, &entries, &reported);
    for (const struct cfg_leaf *leaf = cfg->sets; leaf; leaf = leaf->next)
        cfg_apply(cfg, leaf, &entries, &reported);
    for (size_t i = 0; i < cfg->nslots; i++)
        cfg_resolve(cfg, &cfg->slots[i]);
    sp_cfg_hash_fini(&entries);
    sp_cfg_hash_fini(&reported);
    if (cfg->oom)
        return sp_error_set(err, SP_ERR_NOMEM, "config: out of memory");
    if (cfg->nerrs_total == 0) {
        cfg->validated = true;
        return SP_OK;
    }
    if (cfg->nerrs_total > 1)
        return sp_error_set(err, SP_ERR_CONFIG, "%s (and %zu more problems)",
                            cfg->errs[0], cfg->nerrs_total - 1);
    return sp_error_set(err, SP_ERR_CONFIG, "%s", cfg->errs[0]);
}

size_t sp_config_errors(const struct sp_config *cfg, const char *const **msgs)
{
    *msgs = cfg->errs;
    return cfg->nerrs;
}

/* ---- getters ----------------------------------------------------------- */

static const struct cfg_slot *cfg_slot_of(const struct sp_config *cfg,
                                          const char *key)
{
    assert(cfg && key);
    assert(cfg->validated && "config getter before a successful validate");
    const struct cfg_hent *e = sp_cfg_hash_find(&cfg->names, key, strlen(key));
    assert(e && e->kind == H_KEY && "config key was never declared");
    if (!e || e->kind != H_KEY || !cfg->validated)
        return NULL;
    return &cfg->slots[e->idx];
}

const char *sp_config_str(const struct sp_config *cfg, const char *key)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    return slot ? slot->str : NULL;
}

int64_t sp_config_int(const struct sp_config *cfg, const char *key)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    assert(!slot || slot->key->type == SP_CFG_INT ||
           slot->key->type == SP_CFG_DURATION ||
           slot->key->type == SP_CFG_SIZE);
    return slot ? slot->num : 0;
}

bool sp_config_bool(const struct sp_config *cfg, const char *key)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    assert(!slot || slot->key->type == SP_CFG_BOOL);
    return slot ? slot->b : false;
}

size_t sp_config_list(const struct sp_config *cfg, const char *key,
                      const char *const **items)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    assert(!slot || slot->key->type == SP_CFG_LIST);
    *items = slot ? slot->items : cfg_no_items;
    return slot ? slot->nitems : 0;
}

int sp_config_map_each(const struct sp_config *cfg, const char *key,
                       sp_config_map_cb cb, void *ud)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    assert(!slot || slot->key->type == SP_CFG_MAP);
    if (!slot)
        return 0;
    for (const struct cfg_ent *ent = slot->ents; ent; ent = ent->next) {
        int rc = cb(ent->name, ent->value, ud);
        if (rc)
            return rc;
    }
    return 0;
}

bool sp_config_is_set(const struct sp_config *cfg, const char *key)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    return slot && slot->set;
}

const char *sp_config_origin(const struct sp_config *cfg, const char *key,
                             int *line)
{
    const struct cfg_slot *slot = cfg_slot_of(cfg, key);
    if (line)
        *line = slot ? slot->line : 0;
    return slot ? slot->origin : "default";
}

int sp_config_each_secret(const struct sp_config *cfg, sp_config_map_cb cb,
                          void *ud)
{
    int rc = 0;
    if (!cfg->validated)
        return 0;
    for (size_t i = 0; i < cfg->nslots && !rc; i++) {
        const struct cfg_slot *slot = &cfg->slots[i];
        bool secret = slot->key->flags & SP_CFG_SECRET;
        if (slot->key->type == SP_CFG_MAP) {
            for (const struct cfg_ent *ent = slot->ents; ent && !rc;
                 ent = ent->next)
                if ((secret || sp_config_secret_name(ent->name)) &&
                    *ent->value)
                    rc = cb(ent->leaf->path, ent->value, ud);
        } else if (secret && slot->key->type == SP_CFG_LIST) {
            for (size_t j = 0; j < slot->nitems && !rc; j++)
                if (*slot->items[j])
                    rc = cb(slot->key->name, slot->items[j], ud);
        } else if (secret && slot->str && *slot->str) {
            rc = cb(slot->key->name, slot->str, ud);
        }
    }
    return rc;
}
