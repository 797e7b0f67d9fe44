/*
 * json_fuzz.c - libFuzzer harness for pipeline/json.c: the bounded DOM
 * parser, whole documents (sp_json_parse) and JSON lines
 * (sp_json_parse_prefix), and the sp_jw writer.
 *
 * Every input is parsed both ways with small limits (depth 16, 5000
 * nodes).  A tree that parses is checked against what json.h promises
 * (spans inside the input, counts, NUL-terminated valid UTF-8 strings),
 * written back with sp_jw walking the tree, and the output parsed again:
 * it must parse, and writing that second tree must give the same bytes.
 * Any broken promise is an abort(), which the fuzzer reports as a crash.
 *
 * Owns two arenas and two output buffers kept across inputs (reset, never
 * freed: they stay reachable, so leak checkers are quiet).  Single
 * threaded, as libFuzzer and the corpus replay call it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define FUZZ_ARENA_MAX ((size_t)64 << 20)
#define FUZZ_OUT_MAX ((size_t)8 << 20)
#define FUZZ_MAX_LINES 256          /* values read from one input */

static const struct sp_json_limits fuzz_lim = { (size_t)256 << 10, 16, 5000 };

static struct sp_arena doc_arena, rt_arena;
static struct sp_buf out1, out2;
static bool ready;

static void must(bool ok)
{
    if (!ok)
        abort();
}

static void check_error(const struct sp_json_error *err, size_t len)
{
    must(err->code != SP_JSON_OK);
    must(err->offset <= len);
    must(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
    must(sp_json_errname(err->code) != NULL);
}

static bool str_ok(const char *s, size_t n)
{
    return s && strlen(s) == n && sp_utf8_valid(s, n);
}

/* What json.h promises about a tree parsed from text[0..len).  Recursion
 * is bounded by the parser's max_depth. */
static void check_tree(const struct sp_json *v, const char *text, size_t len)
{
    must(v->src >= text && v->src_len <= len &&
         (size_t)(v->src - text) <= len - v->src_len);
    switch (v->type) {
    case SP_JSON_NULL:
    case SP_JSON_FALSE:
    case SP_JSON_TRUE:
        break;
    case SP_JSON_NUMBER: {
        double d;
        must(v->u.s && strlen(v->u.s) == v->n && v->n == v->src_len &&
             memcmp(v->u.s, v->src, v->n) == 0);
        must(sp_json_double(v, &d));
        int64_t i;
        (void)sp_json_int(v, &i);
        break;
    }
    case SP_JSON_STRING:
        must(str_ok(v->u.s, v->n));
        must(sp_json_is_str(v) && sp_json_scalar(v) == v->u.s);
        break;
    case SP_JSON_ARRAY:
    case SP_JSON_OBJECT: {
        bool obj = v->type == SP_JSON_OBJECT;
        uint32_t n = 0;
        const struct sp_json *last = NULL;
        sp_json_foreach(v, c) {
            must(obj ? str_ok(c->key, c->key_len) : c->key == NULL);
            check_tree(c, text, len);
            last = c;
            n++;
        }
        must(n == v->n);
        /* One lookup per object keeps the cost linear. */
        if (obj && last)
            must(sp_json_get(v, last->key) != NULL &&
                 sp_json_iget(v, last->key) != NULL);
        break;
    }
    default:
        must(false);
    }
}

/* Writes v with the sp_jw calls a stage would use. */
static void write_value(struct sp_jw *w, const struct sp_json *v)
{
    switch (v->type) {
    case SP_JSON_NULL:
        sp_jw_null(w);
        break;
    case SP_JSON_FALSE:
    case SP_JSON_TRUE:
        sp_jw_bool(w, v->type == SP_JSON_TRUE);
        break;
    case SP_JSON_NUMBER:
        sp_jw_raw(w, v->u.s, v->n);
        break;
    case SP_JSON_STRING:
        sp_jw_strn(w, v->u.s, v->n);
        break;
    case SP_JSON_ARRAY:
        sp_jw_arr_open(w);
        sp_json_foreach(v, c)
            write_value(w, c);
        sp_jw_arr_close(w);
        break;
    case SP_JSON_OBJECT:
        sp_jw_obj_open(w);
        sp_json_foreach(v, c) {
            sp_jw_key(w, c->key);
            write_value(w, c);
        }
        sp_jw_obj_close(w);
        break;
    default:
        must(false);
    }
}

static void write_tree(const struct sp_json *v, struct sp_buf *b)
{
    struct sp_jw w;
    sp_buf_reset(b);
    sp_jw_init(&w, b);
    write_value(&w, v);
    must(sp_jw_ok(&w) && b->data != NULL);
}

/* Write, parse the output, write again: same bytes. */
static void round_trip(const struct sp_json *root)
{
    struct sp_json_error err;
    write_tree(root, &out1);
    sp_arena_reset(&rt_arena);
    const struct sp_json *again = sp_json_parse(&rt_arena, out1.data,
                                                out1.len, &fuzz_lim, &err);
    if (!again)
        abort();
    check_tree(again, out1.data, out1.len);
    write_tree(again, &out2);
    must(out1.len == out2.len && memcmp(out1.data, out2.data, out1.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct sp_json_error err;
    size_t used = 0;

    if (!ready) {
        sp_arena_init(&doc_arena, FUZZ_ARENA_MAX);
        sp_arena_init(&rt_arena, FUZZ_ARENA_MAX);
        sp_buf_init(&out1, FUZZ_OUT_MAX);
        sp_buf_init(&out2, FUZZ_OUT_MAX);
        ready = true;
    }

    /* The whole input as one document. */
    sp_arena_reset(&doc_arena);
    const struct sp_json *root = sp_json_parse(&doc_arena, text, size,
                                               &fuzz_lim, &err);
    if (root) {
        check_tree(root, text, size);
        round_trip(root);
    } else {
        check_error(&err, size);
    }

    /* The same input as JSON lines.  The first value parses exactly when
     * the whole input does, or is followed by more text. */
    size_t pos = 0;
    for (int i = 0; i < FUZZ_MAX_LINES && pos < size; i++) {
        sp_arena_reset(&doc_arena);
        const struct sp_json *v = sp_json_parse_prefix(&doc_arena, text + pos,
                                                       size - pos, &fuzz_lim,
                                                       &used, &err);
        if (i == 0)
            must(!root == (!v || used != size));
        if (!v) {
            check_error(&err, size - pos);
            break;
        }
        must(used > 0 && used <= size - pos);
        check_tree(v, text + pos, used);
        round_trip(v);
        pos += used;
    }
    return 0;
}
