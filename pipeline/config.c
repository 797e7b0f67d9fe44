/*
 * config.c - the configuration module declared in config.h: key tables,
 * the YAML loader, "-s" overrides, validation with ${...} substitution,
 * typed getters, the effective-settings dump and the example writer.
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
#include "config.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CFG_DOC_ARENA_MAX ((size_t)64 << 20)
#define CFG_NAME_MAX 255            /* one declared key name */
#define CFG_ENV_NAME_MAX 255
#define CFG_SUGGEST_MAX 128         /* longest name we compute distances on */

/* ---- small hash table of (string, length) -> payload ------------------ */

enum cfg_hkind { H_KEY = 1, H_SECTION, H_ENTRY, H_SEEN };

struct cfg_hent {
    const char *s;      /* borrowed; must outlive the table */
    size_t len;
    uint64_t h;
    int kind;
    int line;
    size_t idx;         /* H_KEY: slot index; H_SECTION: first key below */
    void *ptr;          /* H_ENTRY: struct cfg_ent */
};

struct cfg_hash {
    struct cfg_hent *tab;
    size_t cap;         /* 0 or a power of two */
    size_t n;
};

static uint64_t cfg_fnv(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct cfg_hent *cfg_hash_find(const struct cfg_hash *hash,
                                      const char *s, size_t len)
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
static struct cfg_hent *cfg_hash_put(struct cfg_hash *hash, const char *s,
                                     size_t len, bool *fresh)
{
    struct cfg_hent *e = cfg_hash_find(hash, s, len);
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

static void cfg_hash_fini(struct cfg_hash *hash)
{
    free(hash->tab);
    memset(hash, 0, sizeof(*hash));
}

/* ---- the data ---------------------------------------------------------- */

enum cfg_lkind { L_NULL, L_SCALAR, L_LIST, L_EMPTYMAP };

/* One loaded value: a scalar, a list of scalars, an empty mapping, or a
 * null, at a flattened dotted path. */
struct cfg_leaf {
    const char *path;
    size_t plen;
    enum cfg_lkind kind;
    const char *text;           /* L_SCALAR */
    const char **items;         /* L_LIST, NULL-terminated */
    size_t nitems;
    struct cfg_doc *doc;        /* NULL for -s */
    int line;                   /* 0 for -s */
    struct cfg_leaf *next;
};

struct cfg_doc {
    struct sp_arena arena;
    const char *name;
    struct cfg_hash paths;      /* every key path of the document -> line */
    struct cfg_leaf *head, *tail;
    struct cfg_doc *next;
};

/* An entry of a MAP key. */
struct cfg_ent {
    const char *name;           /* below the map: "sasl.mechanism" */
    const char *raw;            /* as loaded */
    const char *value;          /* after substitution */
    const struct cfg_leaf *leaf;
    struct cfg_ent *next;
};

struct cfg_slot {
    const struct sp_cfg_key *key;
    /* Everything below is rebuilt by each validate. */
    bool set;
    const struct cfg_leaf *leaf;    /* what set it (MAP: its first entry) */
    const char *origin;
    int line;
    const char *str;
    int64_t num;
    bool b;
    const char *const *items;
    size_t nitems;
    struct cfg_ent *ents, *ents_tail;
    size_t nents;
};

struct sp_config {
    struct sp_arena arena;
    struct cfg_slot *slots;
    size_t nslots;
    struct cfg_hash names;          /* declared keys and their sections */
    struct cfg_doc *docs, *docs_tail;
    struct cfg_leaf *sets, *sets_tail;
    bool validated;
    bool oom;                       /* an allocation failed in validate */
    const char *errs[SP_CFG_MAX_ERRORS];
    uint64_t err_order[SP_CFG_MAX_ERRORS];  /* (document, line) */
    size_t nerrs, nerrs_total;
};

static const char *const cfg_no_items[1] = { NULL };

/* ---- text helpers ------------------------------------------------------ */

static bool cfg_word(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && sp_strncaseeq(s, word, n);
}

static void cfg_trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static bool cfg_is_null_word(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
                       !memcmp(s, "NULL", 4)));
}

/* Checks a key as written in a document or after -s (it may hold dots).
 * Returns what is wrong, or NULL. */
static const char *cfg_key_problem(const char *s, size_t n)
{
    if (n == 0)
        return "empty key";
    if (s[0] == '.' || s[n - 1] == '.')
        return "key starts or ends with '.'";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "control character in key";
        if (c == '.' && i + 1 < n && s[i + 1] == '.')
            return "empty component ('..') in key";
    }
    return NULL;
}

/* Writes s[0..n) as a YAML scalar: plain when that reads back the same,
 * otherwise double-quoted with escapes. */
static void cfg_put_scalarn(FILE *out, const char *s, size_t n)
{
    bool plain = n > 0 && !cfg_is_null_word(s, n) && s[n - 1] != ':';
    for (size_t i = 0; plain && i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9');
        if (i == 0)
            plain = alnum || c == '.' || c == '/' || c == '_';
        else
            plain = alnum || strchr("._/+@-:", c) != NULL;
    }
    if (plain) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void cfg_put_scalar(FILE *out, const char *s)
{
    cfg_put_scalarn(out, s, strlen(s));
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
    size_t n = strlen(name);
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
    cfg_trim(&s, &n);
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
    cfg_trim(&s, &n);
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
    cfg_trim(&s, &n);
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
    cfg_trim(&s, &n);
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
static const char *cfg_fmt_num(char *buf, size_t size, enum sp_cfg_type type,
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

static const char *cfg_type_name(enum sp_cfg_type type)
{
    switch (type) {
    case SP_CFG_STR: return "string";
    case SP_CFG_INT: return "int";
    case SP_CFG_BOOL: return "bool";
    case SP_CFG_DURATION: return "duration";
    case SP_CFG_SIZE: return "size";
    case SP_CFG_ENUM: return "enum";
    case SP_CFG_LIST: return "list";
    case SP_CFG_MAP: return "map";
    }
    return "?";
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
    cfg_fmt_num(lo, sizeof(lo), k->type, k->min);
    cfg_fmt_num(hi, sizeof(hi), k->type, k->max);
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

static const char *cfg_leaf_origin(const struct cfg_leaf *leaf)
{
    return leaf->doc ? leaf->doc->name : "-s";
}

/* The line where the first plen bytes of leaf's path were written. */
static int cfg_leaf_line(const struct cfg_leaf *leaf, size_t plen)
{
    if (!leaf->doc)
        return 0;
    const struct cfg_hent *e = cfg_hash_find(&leaf->doc->paths, leaf->path,
                                             plen);
    return e ? e->line : leaf->line;
}

static char *cfg_strndup(struct sp_config *cfg, const char *s, size_t n)
{
    char *p = sp_arena_strndup(&cfg->arena, s, n);
    if (!p)
        cfg->oom = true;
    return p;
}

/* ---- the YAML loader --------------------------------------------------- */

struct cfg_loader {
    yaml_parser_t parser;
    const char *input;
    size_t input_len;
    struct cfg_doc *doc;
    size_t scalars;
    struct sp_error *err;
    char path[SP_CFG_MAX_PATH + 1];
};

static enum sp_err ld_fail(struct cfg_loader *ld, enum sp_err code, int line,
                           const char *fmt, ...) SP_PRINTF(4, 5);

static enum sp_err ld_fail(struct cfg_loader *ld, enum sp_err code, int line,
                           const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        return sp_error_set(ld->err, code, "%s:%d: %s", ld->doc->name, line,
                            msg);
    return sp_error_set(ld->err, code, "%s: %s", ld->doc->name, msg);
}

static int ld_line_at(const struct cfg_loader *ld, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < ld->input_len; i++)
        line += ld->input[i] == '\n';
    return line;
}

static enum sp_err ld_syntax(struct cfg_loader *ld)
{
    const yaml_parser_t *p = &ld->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory parsing YAML");
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR)
        return ld_fail(ld, SP_ERR_CONFIG, ld_line_at(ld, p->problem_offset),
                       "YAML error: %s", problem);
    int line = (int)p->problem_mark.line + 1;
    if (p->context)
        return ld_fail(ld, SP_ERR_CONFIG, line,
                       "YAML syntax error: %s (%s at line %d)", problem,
                       p->context, (int)p->context_mark.line + 1);
    return ld_fail(ld, SP_ERR_CONFIG, line, "YAML syntax error: %s", problem);
}

/* Next event; anchors, aliases and too many scalars are errors.  On error
 * the event is left empty (deleting it again is harmless). */
static enum sp_err ld_next(struct cfg_loader *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->parser, ev))
        return ld_syntax(ld);
    int line = (int)ev->start_mark.line + 1;
    const yaml_char_t *anchor = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        yaml_event_delete(ev);
        return ld_fail(ld, SP_ERR_CONFIG, line,
                       "YAML aliases (*name) are not supported");
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        if (++ld->scalars > SP_CFG_MAX_SCALARS) {
            yaml_event_delete(ev);
            return ld_fail(ld, SP_ERR_LIMIT, line,
                           "more than %d values in one document",
                           SP_CFG_MAX_SCALARS);
        }
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        break;
    default:
        break;
    }
    if (anchor) {
        yaml_event_delete(ev);
        return ld_fail(ld, SP_ERR_CONFIG, line,
                       "YAML anchors (&name) are not supported");
    }
    return SP_OK;
}

static bool ld_is_null(const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && (!strcmp(tag, "!!null") ||
                !strcmp(tag, "tag:yaml.org,2002:null")))
        return true;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag &&
           cfg_is_null_word((const char *)ev->data.scalar.value,
                            ev->data.scalar.length);
}

static struct cfg_leaf *ld_leaf(struct cfg_loader *ld, size_t plen,
                                enum cfg_lkind kind, int line)
{
    struct cfg_doc *doc = ld->doc;
    struct cfg_leaf *leaf = sp_arena_calloc(&doc->arena, sizeof(*leaf));
    char *path = sp_arena_strndup(&doc->arena, ld->path, plen);
    if (!leaf || !path)
        return NULL;
    leaf->path = path;
    leaf->plen = plen;
    leaf->kind = kind;
    leaf->doc = doc;
    leaf->line = line;
    if (doc->tail)
        doc->tail->next = leaf;
    else
        doc->head = leaf;
    doc->tail = leaf;
    return leaf;
}

static enum sp_err ld_scalar_text(struct cfg_loader *ld, const yaml_event_t *ev,
                                  size_t plen, const char **text)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (memchr(v, '\0', n))
        return ld_fail(ld, SP_ERR_CONFIG, (int)ev->start_mark.line + 1,
                       "%.*s: value contains a NUL byte", (int)plen,
                       ld->path);
    *text = sp_arena_strndup(&ld->doc->arena, v, n);
    return *text ? SP_OK : ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
}

static enum sp_err ld_sequence(struct cfg_loader *ld, size_t plen, int depth,
                               int line)
{
    enum sp_err rc = SP_OK;
    const char **items = NULL;
    size_t n = 0, cap = 0;
    yaml_event_t ev;

    if (depth > SP_CFG_MAX_DEPTH)
        return ld_fail(ld, SP_ERR_LIMIT, line, "%.*s: nested deeper than %d "
                       "levels", (int)plen, ld->path, SP_CFG_MAX_DEPTH);
    for (;;) {      /* bounded: every item is a scalar, counted by ld_next */
        if ((rc = ld_next(ld, &ev)) != SP_OK)
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ev.type != YAML_SCALAR_EVENT) {
            rc = ld_fail(ld, SP_ERR_CONFIG, (int)ev.start_mark.line + 1,
                         "%.*s: a list may only hold plain values",
                         (int)plen, ld->path);
            goto fail;
        }
        const char *text = "";
        if (!ld_is_null(&ev) &&
            (rc = ld_scalar_text(ld, &ev, plen, &text)) != SP_OK)
            goto fail;
        if (n + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 8;
            const char **p = realloc(items, ncap * sizeof(*items));
            if (!p) {
                rc = ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
                goto fail;
            }
            items = p;
            cap = ncap;
        }
        items[n++] = text;
        yaml_event_delete(&ev);
    }
    yaml_event_delete(&ev);
    struct cfg_leaf *leaf = ld_leaf(ld, plen, L_LIST, line);
    const char **arr = sp_arena_alloc(&ld->doc->arena, (n + 1) * sizeof(*arr));
    if (!leaf || !arr) {
        rc = ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
        goto out;
    }
    if (n)
        memcpy(arr, items, n * sizeof(*arr));
    arr[n] = NULL;
    leaf->items = arr;
    leaf->nitems = n;
    goto out;
fail:
    yaml_event_delete(&ev);
out:
    free(items);
    return rc;
}

static enum sp_err ld_mapping(struct cfg_loader *ld, size_t plen, int depth,
                              int line);

/* Stores the value whose first event is ev (consumed) at ld->path[plen]. */
static enum sp_err ld_value(struct cfg_loader *ld, yaml_event_t *ev,
                            size_t plen, int line, int depth)
{
    enum sp_err rc = SP_OK;
    struct cfg_leaf *leaf;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (ld_is_null(ev)) {
            if (!ld_leaf(ld, plen, L_NULL, line))
                rc = ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
            break;
        }
        const char *text;
        if ((rc = ld_scalar_text(ld, ev, plen, &text)) != SP_OK)
            break;
        if (!(leaf = ld_leaf(ld, plen, L_SCALAR, line)))
            rc = ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
        else
            leaf->text = text;
        break;
    case YAML_MAPPING_START_EVENT:
        rc = ld_mapping(ld, plen, depth + 1, line);
        break;
    case YAML_SEQUENCE_START_EVENT:
        rc = ld_sequence(ld, plen, depth + 1, line);
        break;
    default:
        rc = ld_fail(ld, SP_ERR_CONFIG, (int)ev->start_mark.line + 1,
                     "unexpected YAML structure");
        break;
    }
    yaml_event_delete(ev);
    return rc;
}

/* Records a key path; a path seen before in this document is a duplicate. */
static enum sp_err ld_seen(struct cfg_loader *ld, size_t plen, int line)
{
    const struct cfg_hent *old = cfg_hash_find(&ld->doc->paths, ld->path,
                                               plen);
    if (old)
        return ld_fail(ld, SP_ERR_CONFIG, line,
                       "%s: duplicate key (also at line %d)", ld->path,
                       old->line);
    char *copy = sp_arena_strndup(&ld->doc->arena, ld->path, plen);
    bool fresh;
    struct cfg_hent *e = copy ? cfg_hash_put(&ld->doc->paths, copy, plen,
                                             &fresh) : NULL;
    if (!e)
        return ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
    e->kind = H_SEEN;
    e->line = line;
    return SP_OK;
}

static enum sp_err ld_mapping(struct cfg_loader *ld, size_t plen, int depth,
                              int line)
{
    enum sp_err rc;
    size_t nkeys = 0;
    yaml_event_t ev;

    if (depth > SP_CFG_MAX_DEPTH)
        return ld_fail(ld, SP_ERR_LIMIT, line, "%s: nested deeper than %d "
                       "levels", plen ? ld->path : "(top)", SP_CFG_MAX_DEPTH);
    for (;;) {      /* bounded: every key is a scalar, counted by ld_next */
        if ((rc = ld_next(ld, &ev)) != SP_OK)
            return rc;
        if (ev.type == YAML_MAPPING_END_EVENT)
            break;
        int kline = (int)ev.start_mark.line + 1;
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            return ld_fail(ld, SP_ERR_CONFIG, kline,
                           "%s: keys must be plain scalars",
                           plen ? ld->path : "(top)");
        }
        const char *k = (const char *)ev.data.scalar.value;
        size_t klen = ev.data.scalar.length;
        const char *why = cfg_key_problem(k, klen);
        size_t nlen = plen + (plen ? 1 : 0) + klen;
        if (why || nlen > SP_CFG_MAX_PATH) {
            yaml_event_delete(&ev);
            if (why)
                return ld_fail(ld, SP_ERR_CONFIG, kline, "%s below %s", why,
                               plen ? ld->path : "(top)");
            return ld_fail(ld, SP_ERR_LIMIT, kline, "key path longer than "
                           "%d bytes", SP_CFG_MAX_PATH);
        }
        if (plen)
            ld->path[plen] = '.';
        memcpy(ld->path + nlen - klen, k, klen);
        ld->path[nlen] = '\0';
        yaml_event_delete(&ev);
        if ((rc = ld_seen(ld, nlen, kline)) != SP_OK)
            return rc;
        if ((rc = ld_next(ld, &ev)) != SP_OK)
            return rc;
        if ((rc = ld_value(ld, &ev, nlen, kline, depth)) != SP_OK)
            return rc;
        ld->path[plen] = '\0';
        nkeys++;
    }
    yaml_event_delete(&ev);
    if (nkeys == 0 && plen > 0 && !ld_leaf(ld, plen, L_EMPTYMAP, line))
        return ld_fail(ld, SP_ERR_NOMEM, 0, "out of memory");
    return SP_OK;
}

/* stream-start [document-start root document-end] stream-end */
static enum sp_err ld_document(struct cfg_loader *ld)
{
    enum sp_err rc;
    yaml_event_t ev;

    if ((rc = ld_next(ld, &ev)) != SP_OK)           /* stream start */
        return rc;
    yaml_event_delete(&ev);
    if ((rc = ld_next(ld, &ev)) != SP_OK)
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {         /* empty file */
        yaml_event_delete(&ev);
        return SP_OK;
    }
    yaml_event_delete(&ev);                         /* document start */
    if ((rc = ld_next(ld, &ev)) != SP_OK)
        return rc;
    int line = (int)ev.start_mark.line + 1;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        yaml_event_delete(&ev);
        ld->path[0] = '\0';
        if ((rc = ld_mapping(ld, 0, 1, line)) != SP_OK)
            return rc;
    } else {
        bool empty = ev.type == YAML_SCALAR_EVENT && ld_is_null(&ev);
        yaml_event_delete(&ev);
        if (!empty)
            return ld_fail(ld, SP_ERR_CONFIG, line,
                           "the top level must be a mapping of keys");
    }
    if ((rc = ld_next(ld, &ev)) != SP_OK)           /* document end */
        return rc;
    yaml_event_delete(&ev);
    if ((rc = ld_next(ld, &ev)) != SP_OK)
        return rc;
    line = (int)ev.start_mark.line + 1;
    bool more = ev.type != YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    if (more)
        return ld_fail(ld, SP_ERR_CONFIG, line,
                       "only one YAML document is allowed");
    return SP_OK;
}

static void cfg_doc_free(struct cfg_doc *doc)
{
    if (!doc)
        return;
    cfg_hash_fini(&doc->paths);
    sp_arena_fini(&doc->arena);
    free(doc);
}

enum sp_err sp_config_load_string(struct sp_config *cfg, const char *name,
                                  const char *yaml, size_t len,
                                  struct sp_error *err)
{
    enum sp_err rc;
    struct cfg_loader *ld = NULL;
    struct cfg_doc *doc = NULL;

    if (!name)
        name = "(string)";
    if (!cfg || (!yaml && len))
        return sp_error_set(err, SP_ERR_INVALID, "%s: no input", name);
    if (len > SP_CFG_MAX_FILE)
        return sp_error_set(err, SP_ERR_LIMIT, "%s: %zu bytes, more than "
                            "the %zu byte limit", name, len, SP_CFG_MAX_FILE);
    doc = calloc(1, sizeof(*doc));
    ld = calloc(1, sizeof(*ld));
    if (!doc || !ld) {
        rc = sp_error_set(err, SP_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    sp_arena_init(&doc->arena, CFG_DOC_ARENA_MAX);
    if (!(doc->name = sp_arena_strdup(&doc->arena, name)) ||
        !yaml_parser_initialize(&ld->parser)) {
        rc = sp_error_set(err, SP_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    ld->doc = doc;
    ld->err = err;
    ld->input = yaml ? yaml : "";
    ld->input_len = len;
    const char *nul = len ? memchr(yaml, '\0', len) : NULL;
    if (nul) {
        rc = ld_fail(ld, SP_ERR_CONFIG, ld_line_at(ld, (size_t)(nul - yaml)),
                     "NUL byte in the document");
    } else {
        yaml_parser_set_input_string(&ld->parser,
                                     (const unsigned char *)ld->input, len);
        rc = ld_document(ld);
    }
    yaml_parser_delete(&ld->parser);
    if (rc != SP_OK)
        goto fail;
    free(ld);
    if (cfg->docs_tail)
        cfg->docs_tail->next = doc;
    else
        cfg->docs = doc;
    cfg->docs_tail = doc;
    cfg->validated = false;
    return SP_OK;
fail:
    free(ld);
    cfg_doc_free(doc);
    return rc;
}

enum sp_err sp_config_load_file(struct sp_config *cfg, const char *path,
                                struct sp_error *err)
{
    size_t len = 0;
    if (!cfg || !path)
        return sp_error_set(err, SP_ERR_INVALID, "no config file given");
    char *text = sp_read_file(path, SP_CFG_MAX_FILE, &len, err);
    if (!text)
        return err ? err->code : SP_ERR_IO;
    enum sp_err rc = sp_config_load_string(cfg, path, text, len, err);
    free(text);
    return rc;
}

/* ---- -s overrides ------------------------------------------------------ */

enum sp_err sp_config_set(struct sp_config *cfg, const char *assignment,
                          struct sp_error *err)
{
    if (!cfg || !assignment)
        return sp_error_set(err, SP_ERR_INVALID, "-s: no assignment");
    /* The value may be a secret: no message below shows it. */
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return sp_error_set(err, SP_ERR_CONFIG,
                            "-s: expected key=value (no '=' found)");
    const char *key = assignment;
    size_t klen = (size_t)(eq - assignment);
    cfg_trim(&key, &klen);
    const char *why = cfg_key_problem(key, klen);
    if (why)
        return sp_error_set(err, SP_ERR_CONFIG, "-s: %s", why);
    if (klen > SP_CFG_MAX_PATH)
        return sp_error_set(err, SP_ERR_LIMIT, "-s: key longer than %d bytes",
                            SP_CFG_MAX_PATH);
    const char *v = eq + 1;
    size_t vlen = strlen(v);
    cfg_trim(&v, &vlen);
    if (vlen > SP_CFG_MAX_VALUE)
        return sp_error_set(err, SP_ERR_LIMIT, "-s %.*s: value longer than "
                            "%zu bytes", (int)klen, key, SP_CFG_MAX_VALUE);
    enum cfg_lkind kind = L_SCALAR;
    if (vlen && cfg_is_null_word(v, vlen)) {
        kind = L_NULL;
    } else if (vlen >= 2 && (v[0] == '"' || v[0] == '\'') &&
               v[vlen - 1] == v[0]) {
        v++;
        vlen -= 2;
    }
    struct cfg_leaf *leaf = sp_arena_calloc(&cfg->arena, sizeof(*leaf));
    char *path = sp_arena_strndup(&cfg->arena, key, klen);
    char *text = sp_arena_strndup(&cfg->arena, v, vlen);
    if (!leaf || !path || !text)
        return sp_error_set(err, SP_ERR_NOMEM, "-s: out of memory");
    leaf->path = path;
    leaf->plen = klen;
    leaf->kind = kind;
    leaf->text = kind == L_SCALAR ? text : NULL;
    if (cfg->sets_tail)
        cfg->sets_tail->next = leaf;
    else
        cfg->sets = leaf;
    cfg->sets_tail = leaf;
    cfg->validated = false;
    return SP_OK;
}

/* ---- declaring keys ---------------------------------------------------- */

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
        cfg_doc_free(doc);
        doc = next;
    }
    cfg_hash_fini(&cfg->names);
    free(cfg->slots);
    sp_arena_fini(&cfg->arena);
    free(cfg);
}

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
    const struct cfg_hent *e = cfg_hash_find(&cfg->names, k->name,
                                             strlen(k->name));
    if (e && e->kind == H_KEY)
        return sp_error_set(err, SP_ERR_INVALID, "%s: declared twice",
                            k->name);
    if (e)
        return sp_error_set(err, SP_ERR_INVALID, "%s: already a group of "
                            "keys (%s)", k->name, cfg->slots[e->idx].key->name);
    for (const char *d = strchr(k->name, '.'); d; d = strchr(d + 1, '.')) {
        e = cfg_hash_find(&cfg->names, k->name, (size_t)(d - k->name));
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
        struct cfg_hent *e = cfg_hash_put(&cfg->names, name, strlen(name),
                                          &fresh);
        if (!e)
            return sp_error_set(err, SP_ERR_NOMEM, "declare: out of memory");
        e->kind = H_KEY;
        e->idx = idx;
        for (const char *d = strchr(name, '.'); d; d = strchr(d + 1, '.')) {
            e = cfg_hash_put(&cfg->names, name, (size_t)(d - name), &fresh);
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
    if (!cfg_hash_put(reported, leaf->path, plen, &fresh)) {
        cfg->oom = true;
        return;
    }
    if (!fresh)
        return;
    size_t blen = 0;
    const char *best = cfg_suggest(cfg, leaf->path, plen, &blen);
    int line = cfg_leaf_line(leaf, plen);
    if (best)
        cfg_fail(cfg, cfg_leaf_origin(leaf), line, NULL,
                 "%.*s: unknown key (did you mean %.*s?)", (int)plen,
                 leaf->path, (int)blen, best);
    else
        cfg_fail(cfg, cfg_leaf_origin(leaf), line, NULL,
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
    cfg_fail(cfg, cfg_leaf_origin(leaf), leaf->line, slot->key->name,
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
    struct cfg_hent *e = cfg_hash_put(entries, leaf->path, leaf->plen, &fresh);
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
    const struct cfg_hent *e = cfg_hash_find(&cfg->names, leaf->path,
                                             leaf->plen);
    if (e && e->kind == H_KEY) {
        cfg_apply_key(cfg, &cfg->slots[e->idx], leaf);
        return;
    }
    if (e) {        /* a group of keys */
        if (leaf->kind == L_NULL || leaf->kind == L_EMPTYMAP)
            return;
        cfg_fail(cfg, cfg_leaf_origin(leaf), leaf->line, leaf->path,
                 "is a group of settings (such as %s), not a value",
                 cfg->slots[e->idx].key->name);
        return;
    }
    for (size_t i = 0; i < leaf->plen; i++) {   /* the path's prefixes */
        if (leaf->path[i] != '.')
            continue;
        e = cfg_hash_find(&cfg->names, leaf->path, i);
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
        if (!cfg_hash_put(reported, leaf->path, i, &fresh)) {
            cfg->oom = true;
        } else if (fresh) {
            cfg_fail(cfg, cfg_leaf_origin(leaf), cfg_leaf_line(leaf, i),
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
        cfg_trim(&s, &len);
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
        cx.origin = cfg_leaf_origin(leaf);
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
                cfg_leaf_origin(ent->leaf), ent->leaf->line, ent->leaf->path,
                cx.secret || sp_config_secret_name(ent->name)
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
    cfg_hash_fini(&entries);
    cfg_hash_fini(&reported);
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
    const struct cfg_hent *e = cfg_hash_find(&cfg->names, key, strlen(key));
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

/* ---- dump, example, markdown ------------------------------------------- */

static void cfg_put_list(FILE *out, const char *const *items, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        cfg_put_scalar(out, items[i]);
    }
    fputc(']', out);
}

void sp_config_dump(const struct sp_config *cfg, FILE *out)
{
    if (!cfg->validated) {
        fputs("# configuration not validated\n", out);
        return;
    }
    fputs("# effective configuration: value  # where it was set\n", out);
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct cfg_slot *slot = &cfg->slots[i];
        const struct sp_cfg_key *k = slot->key;
        bool secret = k->flags & SP_CFG_SECRET;
        fprintf(out, "%s: ", k->name);
        if (k->type == SP_CFG_MAP) {
            fprintf(out, "%s # %s\n", slot->nents ? "" : "{} ", slot->origin);
            for (const struct cfg_ent *ent = slot->ents; ent; ent = ent->next) {
                fputs("  ", out);
                cfg_put_scalar(out, ent->name);
                fputs(": ", out);
                if (secret || sp_config_secret_name(ent->name))
                    fputs("\"****\"", out);
                else
                    cfg_put_scalar(out, ent->value);
                fprintf(out, "  # %s", cfg_leaf_origin(ent->leaf));
                if (ent->leaf->line)
                    fprintf(out, ":%d", ent->leaf->line);
                fputc('\n', out);
            }
            continue;
        }
        if (!slot->str)
            fputs("~", out);
        else if (secret)
            fputs("\"****\"", out);
        else if (k->type == SP_CFG_LIST)
            cfg_put_list(out, slot->items, slot->nitems);
        else
            cfg_put_scalar(out, slot->str);
        fprintf(out, "  # %s\n", slot->str ? slot->origin : "unset");
    }
}

/* "(int, 1 to 100000)": type, range or choices, secrecy. */
static void cfg_put_type(FILE *out, const struct sp_cfg_key *k)
{
    char lo[48], hi[48];
    fputs(cfg_type_name(k->type), out);
    if (k->type == SP_CFG_DURATION)
        fputs(": 250ms, 30s, 5m, 24h, 7d", out);
    else if (k->type == SP_CFG_SIZE)
        fputs(": 512, 64KiB, 1MiB, 10MB", out);
    else if (k->type == SP_CFG_LIST)
        fputs(": [a, b] or \"a,b\"", out);
    else if (k->type == SP_CFG_MAP)
        fputs(": free-form entries, nested keys join with dots", out);
    else if (k->type == SP_CFG_ENUM)
        fprintf(out, ": %s", k->enum_values);
    if ((k->type == SP_CFG_INT || k->type == SP_CFG_DURATION ||
         k->type == SP_CFG_SIZE) && (k->min || k->max)) {
        cfg_fmt_num(lo, sizeof(lo), k->type, k->min);
        cfg_fmt_num(hi, sizeof(hi), k->type, k->max);
        if (k->max < k->min)
            fprintf(out, "; at least %s", lo);
        else
            fprintf(out, "; %s to %s", lo, hi);
    }
    if (k->flags & SP_CFG_SECRET)
        fputs("; secret: use ${ENV} or ${file:PATH}", out);
}

/* A description as "# " comment lines at `ind`, words wrapped at 78
 * columns (a word longer than a line gets a line of its own). */
static void cfg_put_comment(FILE *out, int ind, const char *s)
{
    int width = SP_MAX(78 - ind - 2, 20), col = 0;
    while (*s) {                    /* bounded: s moves forward each turn */
        while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \n\r\t");
        if (n == 0)
            break;
        if (col > 0 && col + 1 + (int)n > width) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            fprintf(out, "%*s#", ind, "");
        fprintf(out, " %.*s", (int)n, s);
        col += 1 + (int)n;
        s += n;
    }
    if (col > 0)
        fputc('\n', out);
}

/* Writes "a, b,c" as the items of a flow list: "a, b, c". */
static void cfg_put_csv(FILE *out, const char *text)
{
    bool first = true;
    for (const char *p = text; p;) {    /* bounded: one item per comma */
        const char *comma = strchr(p, ',');
        const char *s = p;
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        cfg_trim(&s, &len);
        if (len) {
            fputs(first ? "" : ", ", out);
            cfg_put_scalarn(out, s, len);
            first = false;
        }
        p = comma ? comma + 1 : NULL;
    }
}

struct ex_node {
    const char *name;
    size_t len;
    const struct sp_cfg_key *key;
    struct ex_node *child, *tail, *next;
};

static void ex_emit(FILE *out, const struct ex_node *node, int depth)
{
    int ind = depth * 2;
    for (const struct ex_node *c = node->child; c; c = c->next) {
        const struct sp_cfg_key *k = c->key;
        if (!k) {
            fprintf(out, "%*s%.*s:\n", ind, "", (int)c->len, c->name);
            ex_emit(out, c, depth + 1);
            continue;
        }
        if (k->desc)
            cfg_put_comment(out, ind, k->desc);
        fprintf(out, "%*s# (", ind, "");
        cfg_put_type(out, k);
        fprintf(out, ")\n%*s# %.*s:", ind, "", (int)c->len, c->name);
        if (k->type == SP_CFG_MAP) {
            fputs(" {}", out);
        } else if (k->type == SP_CFG_LIST && k->def) {
            fputs(" [", out);
            cfg_put_csv(out, k->def);
            fputc(']', out);
        } else if (k->def) {
            fputc(' ', out);
            cfg_put_scalar(out, k->def);
        }
        fputs("\n\n", out);
    }
}

void sp_config_write_example(const struct sp_config *cfg, FILE *out)
{
    struct sp_arena a;
    struct ex_node root = { 0 };
    sp_arena_init(&a, 0);
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct sp_cfg_key *k = cfg->slots[i].key;
        struct ex_node *parent = &root;
        const char *p = k->name;
        while (parent && p) {       /* bounded by the name's components */
            const char *dot = strchr(p, '.');
            size_t len = dot ? (size_t)(dot - p) : strlen(p);
            struct ex_node *c = parent->child;
            while (c && !(c->len == len && !memcmp(c->name, p, len)))
                c = c->next;
            if (!c && (c = sp_arena_calloc(&a, sizeof(*c))) != NULL) {
                c->name = p;
                c->len = len;
                if (parent->tail)
                    parent->tail->next = c;
                else
                    parent->child = c;
                parent->tail = c;
            }
            if (c && !dot)
                c->key = k;
            parent = c;
            p = dot ? dot + 1 : NULL;
        }
    }
    fputs("# socpilot configuration: every key with its description, type\n"
          "# and default (commented out).  Values may use ${ENV},\n"
          "# ${ENV:-default} and ${file:PATH}; \"-s key=value\" overrides any\n"
          "# key on the command line.\n\n", out);
    ex_emit(out, &root, 0);
    sp_arena_fini(&a);
}

static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' ? ' ' : *s, out);
    }
}

void sp_config_write_markdown(const struct sp_config *cfg, FILE *out)
{
    fputs("| Key | Type | Default | Description |\n"
          "|---|---|---|---|\n", out);
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct sp_cfg_key *k = cfg->slots[i].key;
        fprintf(out, "| `%s` | ", k->name);
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (mem) {
            cfg_put_type(mem, k);
            fclose(mem);
            md_cell(out, text);
        }
        free(text);
        fputs(" | ", out);
        if (k->def && *k->def) {
            fputc('`', out);
            md_cell(out, k->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, k->desc);
        fputs(" |\n", out);
    }
}
