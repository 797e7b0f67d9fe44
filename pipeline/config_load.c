/*
 * config_load.c - the two ways values get into a configuration: YAML
 * documents read with libyaml (sp_config_load_string/_file) and "-s
 * key=value" overrides (sp_config_set).  Declared in config.h; the data
 * it builds is described in config_int.h.
 *
 * Owns: one struct cfg_doc per loaded document - the document's leaves
 * (flattened dotted paths with their values and lines) and every key path
 * it wrote, all in the document's own arena.  A document is linked into
 * the configuration only when the whole of it loaded, so a failed load
 * leaves nothing behind.  Overrides are leaves in cfg->arena.  Nothing is
 * checked against the declared keys here; that is sp_config_validate's.
 *
 * Threads: the start-up thread only (see config.h).  Every loop is bounded
 * by the input length, SP_CFG_MAX_SCALARS or SP_CFG_MAX_DEPTH.
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CFG_DOC_ARENA_MAX ((size_t)64 << 20)

/* ---- key paths --------------------------------------------------------- */

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
           sp_cfg_is_null_word((const char *)ev->data.scalar.value,
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
    const struct cfg_hent *old = sp_cfg_hash_find(&ld->doc->paths,
                                                  ld->path, plen);
    if (old)
        return ld_fail(ld, SP_ERR_CONFIG, line,
                       "%s: duplicate key (also at line %d)", ld->path,
                       old->line);
    char *copy = sp_arena_strndup(&ld->doc->arena, ld->path, plen);
    bool fresh;
    struct cfg_hent *e = copy ? sp_cfg_hash_put(&ld->doc->paths, copy, plen,
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
    sp_cfg_doc_free(doc);
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
    sp_cfg_trim(&key, &klen);
    const char *why = cfg_key_problem(key, klen);
    if (why)
        return sp_error_set(err, SP_ERR_CONFIG, "-s: %s", why);
    if (klen > SP_CFG_MAX_PATH)
        return sp_error_set(err, SP_ERR_LIMIT, "-s: key longer than %d bytes",
                            SP_CFG_MAX_PATH);
    const char *v = eq + 1;
    size_t vlen = strlen(v);
    sp_cfg_trim(&v, &vlen);
    if (vlen > SP_CFG_MAX_VALUE)
        return sp_error_set(err, SP_ERR_LIMIT, "-s %.*s: value longer than "
                            "%zu bytes", (int)klen, key, SP_CFG_MAX_VALUE);
    enum cfg_lkind kind = L_SCALAR;
    if (vlen && sp_cfg_is_null_word(v, vlen)) {
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
