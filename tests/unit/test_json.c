/*
 * test_json.c - the hot-path JSON parser and writer: grammar, limits,
 * error kinds, escapes, raw spans, round trips, timestamps.
 */
#include "json.h"
#include "t.h"

static struct sp_arena A;

static struct sp_json *parse(const char *s, struct sp_json_error *err)
{
    return sp_json_parse(&A, s, strlen(s), NULL, err);
}

static enum sp_json_errcode code_of(const char *s)
{
    struct sp_json_error err;
    struct sp_json *v = sp_json_parse(&A, s, strlen(s), NULL, &err);
    return v ? SP_JSON_OK : err.code;
}

static void test_values(void)
{
    struct sp_json_error err;
    struct sp_json *v = parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\"],"
                              " \"b\": {}, \"c\": []} ", &err);
    T_OK(v != NULL);
    T_EQ_INT(v->type, SP_JSON_OBJECT);
    T_EQ_INT(v->n, 3);
    struct sp_json *a = sp_json_get(v, "a");
    T_EQ_INT(a->type, SP_JSON_ARRAY);
    T_EQ_INT(a->n, 6);
    int64_t i;
    T_OK(sp_json_int(a->u.child, &i) && i == 1);
    double d;
    T_OK(sp_json_double(a->u.child->next, &d) && d == -2500.0);
    T_OK(!sp_json_int(a->u.child->next, &i));
    T_EQ_STR(sp_json_scalar(a->u.child->next->next), "true");
    T_EQ_STR(sp_json_str(v, "zz") ? "x" : "absent", "absent");
    T_EQ_INT(sp_json_get(v, "b")->n, 0);
    /* raw span of a member value */
    T_OK(strncmp(a->src, "[1, -2.5e3", 10) == 0);
    T_EQ_INT(a->src[a->src_len - 1], ']');
    T_OK(sp_json_iget(v, "A") == a);
}

static void test_strings(void)
{
    struct sp_json *v = parse("\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\\u0000x\"", NULL);
    T_OK(v != NULL);
    T_EQ_STR(v->u.s, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx");
    /* lone surrogate becomes U+FFFD */
    v = parse("\"\\ud800z\"", NULL);
    T_EQ_STR(v->u.s, "\xef\xbf\xbdz");
    /* A high surrogate followed by a \u escape that is not a low
     * surrogate: U+FFFD, then the escape decoded on its own (not paired
     * into a bogus code point). */
    v = parse("\"\\ud800\\u0041\"", NULL);
    T_EQ_STR(v ? v->u.s : NULL, "\xef\xbf\xbd" "A");
    /* A lone low surrogate is U+FFFD too: encoded as is it would be
     * ED B0 80, invalid UTF-8 in every alert written from it. */
    v = parse("\"\\udc00x\"", NULL);
    T_EQ_STR(v ? v->u.s : NULL, "\xef\xbf\xbdx");
    T_EQ_INT(code_of("\"\\x\""), SP_JSON_E_SYNTAX);
    T_EQ_INT(code_of("\"a\tb\""), SP_JSON_E_SYNTAX);
}

static void test_errors(void)
{
    T_EQ_INT(code_of("not json"), SP_JSON_E_SYNTAX);
    T_EQ_INT(code_of("{\"a\": 1"), SP_JSON_E_TRUNCATED);
    T_EQ_INT(code_of("{\"a\": \"xx"), SP_JSON_E_TRUNCATED);
    T_EQ_INT(code_of("[1, 2,"), SP_JSON_E_TRUNCATED);
    T_EQ_INT(code_of("{\"a\": tr"), SP_JSON_E_TRUNCATED);
    T_EQ_INT(code_of("{\"a\": 1} x"), SP_JSON_E_SYNTAX);
    T_EQ_INT(code_of("{\"a\" 1}"), SP_JSON_E_SYNTAX);
    T_EQ_INT(code_of("[01]"), SP_JSON_E_SYNTAX);
    T_EQ_INT(code_of("[1.]"), SP_JSON_E_SYNTAX);
    T_EQ_INT(code_of("   "), SP_JSON_E_EMPTY);
    T_EQ_INT(code_of("\"\xff\""), SP_JSON_E_UTF8);
    T_EQ_INT(code_of("\"\xc0\xaf\""), SP_JSON_E_UTF8);        /* overlong */
    T_EQ_INT(code_of("\"\xed\xa0\x80\""), SP_JSON_E_UTF8);    /* surrogate */
    /* Beyond U+10FFFF: F4 90.. is U+110000.  Lead byte F4 is allowed (it
     * starts U+100000..U+10FFFF), so only the code point check refuses
     * it; U+10FFFF itself is valid. */
    T_EQ_INT(code_of("\"\xf4\x90\x80\x80\""), SP_JSON_E_UTF8);
    T_EQ_INT(code_of("\"\xf4\x8f\xbf\xbf\""), SP_JSON_OK);
    /* Overlong three- and four-byte forms ("/" as E0 80 AF and F0 80 80
     * AF): their lead bytes are legal, only the minimum value check
     * refuses them (C0 AF above never reaches it). */
    T_EQ_INT(code_of("\"\xe0\x80\xaf\""), SP_JSON_E_UTF8);
    T_EQ_INT(code_of("\"\xf0\x80\x80\xaf\""), SP_JSON_E_UTF8);
    struct sp_json_limits lim = {16, 4, 100};
    struct sp_json_error err;
    T_OK(!sp_json_parse(&A, "[[[[[1]]]]]", 11, &lim, &err));
    T_EQ_INT(err.code, SP_JSON_E_DEPTH);
    T_OK(!sp_json_parse(&A, "[1,2,3,4,5,6,7,8,9,10]", 22, &lim, &err));
    T_EQ_INT(err.code, SP_JSON_E_SIZE);
    lim.max_bytes = 1000;
    lim.max_nodes = 5;
    T_OK(!sp_json_parse(&A, "[1,2,3,4,5,6]", 13, &lim, &err));
    T_EQ_INT(err.code, SP_JSON_E_NODES);
    T_EQ_STR(sp_json_errname(SP_JSON_E_TRUNCATED), "truncated");
}

/* Each limit is a maximum that is itself allowed: a document exactly at
 * max_depth / max_bytes / max_nodes parses, one more is refused (the
 * refusals are in test_errors).  An off-by-one that refuses the limit
 * itself would reject valid alerts that test_errors alone lets through. */
static void test_limits_inclusive(void)
{
    struct sp_json_limits lim = {.max_bytes = 1000, .max_depth = 4,
                                 .max_nodes = 100};
    struct sp_json_error err;
    /* four levels of nesting with max_depth 4 */
    T_OK(sp_json_parse(&A, "[[[[1]]]]", 9, &lim, &err) != NULL);
    /* a document of exactly max_bytes (16 bytes) */
    lim.max_bytes = 16;
    T_OK(sp_json_parse(&A, "[1,2,3,4,5,6,70]", 16, &lim, &err) != NULL);
    /* exactly max_nodes values: the array and its four elements */
    lim.max_bytes = 1000;
    lim.max_nodes = 5;
    T_OK(sp_json_parse(&A, "[1,2,3,4]", 9, &lim, &err) != NULL);
}

static void test_deep_nesting_is_bounded(void)
{
    /* 100k open brackets: must fail cleanly, not blow the stack. */
    size_t n = 100000;
    char *s = malloc(n);
    memset(s, '[', n);
    struct sp_json_error err;
    T_OK(!sp_json_parse(&A, s, n, NULL, &err));
    T_EQ_INT(err.code, SP_JSON_E_DEPTH);
    free(s);
}

static void test_prefix(void)
{
    const char *s = "{\"a\":1}\n{\"b\":2}\n";
    size_t used = 0;
    struct sp_json *v = sp_json_parse_prefix(&A, s, strlen(s), NULL, &used, NULL);
    T_OK(v && sp_json_get(v, "a"));
    v = sp_json_parse_prefix(&A, s + used, strlen(s) - used, NULL, &used, NULL);
    T_OK(v && sp_json_get(v, "b"));
}

static void test_writer(void)
{
    struct sp_buf b;
    sp_buf_init(&b, 0);
    struct sp_jw w;
    sp_jw_init(&w, &b);
    sp_jw_obj_open(&w);
    sp_jw_kstr(&w, "s", "q\"\\\n\x01\xff end");
    sp_jw_kint(&w, "i", -42);
    sp_jw_key(&w, "a");
    sp_jw_arr_open(&w);
    sp_jw_bool(&w, true);
    sp_jw_null(&w);
    sp_jw_double(&w, 0.1);
    sp_jw_raw(&w, "{\"r\":1}", 7);
    sp_jw_arr_close(&w);
    sp_jw_kstr_opt(&w, "none", NULL);
    sp_jw_ktime(&w, "t", 1700000000123000LL);
    sp_jw_obj_close(&w);
    T_OK(sp_jw_ok(&w));
    T_EQ_STR(b.data, "{\"s\":\"q\\\"\\\\\\n\\u0001\xef\xbf\xbd end\",\"i\":-42,"
                     "\"a\":[true,null,0.1,{\"r\":1}],"
                     "\"t\":\"2023-11-14T22:13:20.123Z\"}");
    /* and it parses back */
    T_OK(sp_json_parse(&A, b.data, b.len, NULL, NULL) != NULL);
    /* unbalanced use is reported */
    sp_buf_reset(&b);
    sp_jw_init(&w, &b);
    sp_jw_obj_open(&w);
    T_OK(!sp_jw_ok(&w));
    /* bounded buffer */
    struct sp_buf small;
    sp_buf_init(&small, 8);
    sp_jw_init(&w, &small);
    sp_jw_str(&w, "much longer than eight bytes");
    T_OK(!sp_jw_ok(&w));
    sp_buf_fini(&small);
    /* a buffer grown by earlier contents keeps to a smaller max set since,
     * byte by byte too */
    struct sp_buf g;
    sp_buf_init(&g, 0);
    for (int i = 0; i < 1000; i++)
        sp_buf_putc(&g, 'x');
    sp_buf_reset(&g);
    g.max = 10;
    for (int i = 0; i < 20; i++)
        sp_buf_putc(&g, 'y');
    T_EQ_INT(g.len, 10);
    T_OK(g.overflow);
    sp_buf_fini(&g);
    sp_buf_fini(&b);
}

/*
 * The string scanners look at eight bytes at a time: a byte that needs
 * escaping (or ends a string) must be found in every lane of a word and in
 * the tail after the last whole word.  Each special byte at every position
 * of strings from 0 to 40 bytes, written and parsed back.
 */
static void test_string_lanes(void)
{
    static const char *const special[] = {"\"", "\\", "\n", "\x01", "\x1f",
                                          "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                          " ", "\xff"};
    static const char *const want[] = {"\\\"", "\\\\", "\\n", "\\u0001",
                                       "\\u001f", "\x7f", "\xc3\xa9",
                                       "\xe2\x82\xac", " ", "\xef\xbf\xbd"};
    struct sp_buf b, exp;
    sp_buf_init(&b, 0);
    sp_buf_init(&exp, 0);
    char in[64], back[64];
    int bad = 0;
    for (size_t k = 0; k < SP_ARRAY_SIZE(special); k++) {
        size_t sl = strlen(special[k]);
        for (size_t len = 0; len <= 40; len++) {
            for (size_t pos = 0; pos <= len; pos++) {
                /* len 'a's with the special bytes inserted at pos */
                memset(in, 'a', len);
                memcpy(in + pos, special[k], sl);
                memset(in + pos + sl, 'b', len - pos);
                size_t n = len + sl;
                in[n] = '\0';
                sp_buf_reset(&b);
                sp_json_escape(&b, in, n);
                sp_buf_reset(&exp);
                sp_buf_putc(&exp, '"');
                sp_buf_put(&exp, in, pos);
                sp_buf_puts(&exp, want[k]);
                sp_buf_put(&exp, in + pos + sl, len - pos);
                sp_buf_putc(&exp, '"');
                if (b.len != exp.len || memcmp(b.data, exp.data, b.len) != 0) {
                    if (bad++ < 3)
                        T_FAILF("escape of special %zu at %zu/%zu: %s",
                                k, pos, len, b.data);
                    continue;
                }
                /* parsed back (invalid UTF-8 came out as U+FFFD) */
                struct sp_json *v = sp_json_parse(&A, b.data, b.len, NULL, NULL);
                if (!v || v->type != SP_JSON_STRING) {
                    if (bad++ < 3)
                        T_FAILF("parse of special %zu at %zu/%zu", k, pos, len);
                    continue;
                }
                size_t wl = 0;
                for (const char *q = want[k]; *q; q++)
                    wl++;
                memset(back, 'a', pos);
                if (k < 5) {           /* escaped: the original byte */
                    memcpy(back + pos, special[k], sl);
                    wl = sl;
                } else {
                    memcpy(back + pos, want[k], wl);
                }
                memset(back + pos + wl, 'b', len - pos);
                if (v->n != len + wl || memcmp(v->u.s, back, v->n) != 0) {
                    if (bad++ < 3)
                        T_FAILF("round trip of special %zu at %zu/%zu", k, pos, len);
                }
            }
        }
    }
    /* an unterminated string whose last byte sits in a whole word */
    T_EQ_INT(code_of("\"aaaaaaaaaaaaaaaa"), SP_JSON_E_TRUNCATED);
    /* a control byte in a whole word is still refused */
    T_EQ_INT(code_of("\"aaaa\x02" "aaaaaaaaaaa\""), SP_JSON_E_SYNTAX);
    T_EQ_INT(bad, 0);
    sp_buf_fini(&b);
    sp_buf_fini(&exp);
}

static void test_time(void)
{
    int64_t us;
    char out[32];
    T_OK(sp_time_parse("2021-04-27T12:19:27.7211305Z", &us));
    sp_time_format(us, out);
    T_EQ_STR(out, "2021-04-27T12:19:27.721130Z");
    T_OK(sp_time_parse("2022-05-07 12:27:10.171000+00:00", &us));
    sp_time_format(us, out);
    T_EQ_STR(out, "2022-05-07T12:27:10.171Z");
    T_OK(sp_time_parse("2022-05-07T14:27:10+02:00", &us));
    sp_time_format(us, out);
    T_EQ_STR(out, "2022-05-07T12:27:10Z");
    T_OK(sp_time_parse("1969-12-31T23:59:59.5Z", &us));
    T_EQ_INT(us, -500000);
    sp_time_format(us, out);
    T_EQ_STR(out, "1969-12-31T23:59:59.500Z");
    T_OK(sp_time_parse("2024-02-29", &us));
    T_OK(!sp_time_parse("2024-13-01T00:00:00Z", &us));
    T_OK(!sp_time_parse("yesterday", &us));
    T_OK(!sp_time_parse("2024-01-01T00:00:00Zjunk", &us));
    /* zone offsets are at most 23:59 (RFC 3339 time-numoffset) */
    T_OK(!sp_time_parse("2024-01-01T00:00:00+24:00", &us));
    T_OK(!sp_time_parse("2024-01-01T00:00:00+01:60", &us));
    T_OK(sp_time_parse("2024-01-01T23:59:00+23:59", &us));
    /* leap day, single digits, microseconds with leading zeros */
    T_OK(sp_time_parse("2024-02-29T01:02:03.000004Z", &us));
    T_EQ_INT(sp_time_format(us, out), 27);
    T_EQ_STR(out, "2024-02-29T01:02:03.000004Z");
    T_OK(sp_time_parse("0999-01-01T00:00:00.05Z", &us));
    sp_time_format(us, out);
    T_EQ_STR(out, "0999-01-01T00:00:00.050Z");
    T_EQ_INT(sp_time_format(0, out), 20);
    T_EQ_STR(out, "1970-01-01T00:00:00Z");
    /* days the month does not have are not dates */
    T_OK(!sp_time_parse("2024-02-31", &us));
    T_OK(!sp_time_parse("2023-02-29T00:00:00Z", &us));
    T_OK(!sp_time_parse("2024-04-31T00:00:00Z", &us));
    T_OK(!sp_time_parse("1900-02-29", &us));
    T_OK(sp_time_parse("2000-02-29", &us));
    T_OK(sp_time_parse("2024-12-31T23:59:59Z", &us));
    /* a zone that moves the UTC time out of 0000-9999 is refused, not
     * written a year off */
    T_OK(!sp_time_parse("0000-01-01T00:00:00+01:00", &us));
    T_OK(!sp_time_parse("9999-12-31T23:59:59-01:00", &us));
    T_OK(!sp_time_parse("9999-12-31T23:59:60Z", &us));
    T_OK(sp_time_parse("0000-01-01T01:00:00+01:00", &us));
    sp_time_format(us, out);
    T_EQ_STR(out, "0000-01-01T00:00:00Z");
    T_OK(sp_time_parse("9999-12-31T22:59:59.999999-01:00", &us));
    sp_time_format(us, out);
    T_EQ_STR(out, "9999-12-31T23:59:59.999999Z");
    /* outside 0000-9999: clamped to a four-digit year */
    sp_time_format(INT64_C(20000) * 365 * 86400 * 1000000, out);
    T_OK(strncmp(out, "9999-", 5) == 0);
}

static void test_fmt_int(void)
{
    char out[SP_INT_BUF];
    const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0"}, {7, "7"}, {-7, "-7"}, {10, "10"}, {1732838400000, "1732838400000"},
        {INT64_MAX, "9223372036854775807"}, {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        T_EQ_INT(sp_fmt_int(out, cases[i].v), strlen(cases[i].s));
        T_EQ_STR(out, cases[i].s);
    }
    struct sp_buf b;
    struct sp_jw w;
    sp_buf_init(&b, 0);
    sp_jw_init(&w, &b);
    sp_jw_arr_open(&w);
    sp_jw_int(&w, -42);
    sp_jw_int(&w, INT64_MIN);
    sp_jw_arr_close(&w);
    T_OK(sp_jw_ok(&w));
    T_EQ_STR(b.data, "[-42,-9223372036854775808]");
    sp_buf_fini(&b);
}

int main(void)
{
    t_prog = "json";
    sp_arena_init(&A, 0);
    T_RUN(test_values);
    T_RUN(test_strings);
    T_RUN(test_errors);
    T_RUN(test_limits_inclusive);
    T_RUN(test_deep_nesting_is_bounded);
    T_RUN(test_prefix);
    T_RUN(test_writer);
    T_RUN(test_string_lanes);
    T_RUN(test_time);
    T_RUN(test_fmt_int);
    sp_arena_fini(&A);
    return t_done();
}
