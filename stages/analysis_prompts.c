/*
 * analysis_prompts.c - the editable prompt templates of config/prompts/
 * (system, summary, partial, merge, repair) and the answer schema: loaded
 * once, every {{placeholder}} checked against the known names (an unknown
 * one is an error naming file and line), the schema parsed for local
 * validation and copied without the keywords strict structured output
 * refuses for response_format.  Rendering fills placeholders into a job's
 * arena.
 *
 * Loaded on the start-up thread; read-only afterwards, so jobs on any
 * thread may share one set.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

/* ---- prompts ------------------------------------------------------------ */

static const char *const tpl_files[AN_TPL__SCHEMA] = {
    "system.txt", "summary.txt", "partial.txt", "merge.txt", "repair.txt"};

static const char *const placeholders[] = {
    "incident_id", "context", "schema", "impact_score", "impact_level",
    "batch", "batches", "overview", "partials", "errors"};

#define PROMPT_MAX ((size_t)256 << 10)
#define SCHEMA_MAX ((size_t)1 << 20)

struct sp_analysis_prompts {
    char *tpl[AN_TPL__SCHEMA];
    char *schema_text;
    char *wire;
    struct sp_arena arena;
    const struct sp_json *schema;
};

/* Checks every {{name}} of a template; err names file and line. */
static enum sp_err check_tpl(const char *path, const char *text,
                             struct sp_error *err)
{
    int line = 1;
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            line++;
        if (p[0] != '{' || p[1] != '{')
            continue;
        const char *end = strstr(p + 2, "}}");
        if (!end)
            return sp_error_set(err, SP_ERR_CONFIG, "%s:%d: unclosed {{", path,
                                line);
        size_t n = (size_t)(end - p - 2);
        bool known = false;
        for (size_t i = 0; i < SP_ARRAY_SIZE(placeholders) && !known; i++)
            known = strlen(placeholders[i]) == n &&
                    memcmp(placeholders[i], p + 2, n) == 0;
        if (!known)
            return sp_error_set(err, SP_ERR_CONFIG,
                                "%s:%d: unknown placeholder {{%.*s}}", path,
                                line, (int)SP_MIN(n, (size_t)40), p + 2);
        p = end + 1;
    }
    return SP_OK;
}

static bool wire_drop(const char *key)
{
    static const char *const drop[] = {
        "$schema", "$id", "$comment", "title", "minLength", "maxLength",
        "minItems", "maxItems", "minimum", "maximum", "pattern", "format",
        "default", "examples", "uniqueItems"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(drop); i++)
        if (strcmp(key, drop[i]) == 0)
            return true;
    return false;
}

/* Copies a schema without what strict structured output refuses.  Inside
 * "properties" member names are property names, never keywords. */
static void wire_copy(struct sp_jw *w, const struct sp_json *v, bool props,
                      int depth)
{
    if (depth > 32) {
        w->bad = true;
        return;
    }
    switch (v->type) {
    case SP_JSON_OBJECT:
        sp_jw_obj_open(w);
        sp_json_foreach(v, it) {
            if (!props && wire_drop(it->key))
                continue;
            sp_jw_key(w, it->key);
            wire_copy(w, it, !props && strcmp(it->key, "properties") == 0,
                      depth + 1);
        }
        sp_jw_obj_close(w);
        return;
    case SP_JSON_ARRAY:
        sp_jw_arr_open(w);
        sp_json_foreach(v, it) wire_copy(w, it, false, depth + 1);
        sp_jw_arr_close(w);
        return;
    case SP_JSON_STRING: sp_jw_strn(w, v->u.s, v->n); return;
    case SP_JSON_NUMBER: sp_jw_raw(w, v->u.s, v->n); return;
    case SP_JSON_TRUE: sp_jw_bool(w, true); return;
    case SP_JSON_FALSE: sp_jw_bool(w, false); return;
    case SP_JSON_NULL: sp_jw_null(w); return;
    }
}

void sp_analysis_prompts_free(struct sp_analysis_prompts *p)
{
    if (!p)
        return;
    for (int i = 0; i < AN_TPL__SCHEMA; i++)
        free(p->tpl[i]);
    free(p->schema_text);
    free(p->wire);
    sp_arena_fini(&p->arena);
    free(p);
}

struct sp_analysis_prompts *sp_analysis_prompts_load(const char *dir,
                                                     const char *schema_path,
                                                     struct sp_error *err)
{
    struct sp_analysis_prompts *p = calloc(1, sizeof(*p));
    if (!p) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    sp_arena_init(&p->arena, (size_t)64 << 20);
    char path[1024];
    for (int i = 0; i < AN_TPL__SCHEMA; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir ? dir : ".", tpl_files[i]);
        size_t len = 0;
        p->tpl[i] = sp_read_file(path, PROMPT_MAX, &len, err);
        if (!p->tpl[i] || check_tpl(path, p->tpl[i], err) != SP_OK)
            goto fail;
    }
    size_t len = 0;
    p->schema_text = sp_read_file(schema_path, SCHEMA_MAX, &len, err);
    if (!p->schema_text)
        goto fail;
    struct sp_json_error jerr;
    struct sp_json *root = sp_json_parse(&p->arena, p->schema_text, len, NULL,
                                         &jerr);
    if (!root || root->type != SP_JSON_OBJECT) {
        sp_error_set(err, SP_ERR_CONFIG, "%s: not a JSON Schema object (%s at "
                     "byte %zu)", schema_path,
                     root ? "not an object" : sp_json_errname(jerr.code),
                     root ? 0 : jerr.offset);
        goto fail;
    }
    p->schema = root;
    struct sp_buf b;
    sp_buf_init(&b, SCHEMA_MAX);
    struct sp_jw w;
    sp_jw_init(&w, &b);
    wire_copy(&w, root, false, 0);
    if (!sp_jw_ok(&w)) {
        sp_buf_fini(&b);
        sp_error_set(err, SP_ERR_CONFIG, "%s: schema too large or deep",
                     schema_path);
        goto fail;
    }
    p->wire = sp_buf_steal(&b, NULL);
    return p;
fail:
    sp_analysis_prompts_free(p);
    return NULL;
}

const char *sp_analysis_prompts_wire_schema(const struct sp_analysis_prompts *p)
{
    return p ? p->wire : NULL;
}

const struct sp_json *sp_analysis_prompts_schema(
    const struct sp_analysis_prompts *p)
{
    return p ? p->schema : NULL;
}

char *an_render(struct sp_arena *a, const char *tpl,
                const struct an_var *vars, size_t n_vars)
{
    struct sp_buf b;
    sp_buf_init(&b, (size_t)32 << 20);
    const char *p = tpl;
    while (*p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            sp_buf_puts(&b, p);
            break;
        }
        sp_buf_put(&b, p, (size_t)(open - p));
        const char *end = strstr(open + 2, "}}");
        if (!end) {
            sp_buf_puts(&b, open);
            break;
        }
        size_t n = (size_t)(end - open - 2);
        for (size_t i = 0; i < n_vars; i++) {
            if (strlen(vars[i].name) == n &&
                memcmp(vars[i].name, open + 2, n) == 0) {
                sp_buf_puts(&b, vars[i].value ? vars[i].value : "");
                break;
            }
        }
        p = end + 2;
    }
    char *out = b.overflow ? NULL
                           : sp_arena_strndup(a, b.data ? b.data : "", b.len);
    sp_buf_fini(&b);
    return out;
}

const char *an_prompt(const struct sp_analysis_prompts *p, int which)
{
    if (which == AN_TPL__SCHEMA)
        return p->schema_text;
    return which >= 0 && which < AN_TPL__SCHEMA ? p->tpl[which] : "";
}
