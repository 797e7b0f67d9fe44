/*
 * json.c - bounded one-pass JSON parser into an arena, streaming writer,
 * and the timestamp parse/format pair the normalizers and writers share.
 *
 * The parser is recursive descent; recursion is bounded by max_depth
 * (checked before descending), so hostile nesting cannot blow the stack.
 * UTF-8 is validated once over the whole input before parsing (an 8-byte
 * ASCII fast path makes that nearly free), so string scanning only looks
 * for '"', '\\' and control bytes.
 *
 * Thread-compatible; no global state.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Word-at-a-time string scanning: eight bytes per step, a byte's high bit
 * set in the mask when that byte needs a look ('"', '\\', a control byte,
 * and for the writer any non-ASCII byte).  Each test is exact about
 * whether such a byte exists; the byte loops after it find which one.
 */
#define SW_ONES 0x0101010101010101ULL
#define SW_HIGH 0x8080808080808080ULL

static inline uint64_t sw_load(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t sw_zero(uint64_t v)
{
    return (v - SW_ONES) & ~v & SW_HIGH;
}

static inline uint64_t sw_special(uint64_t v)
{
    return sw_zero(v ^ (SW_ONES * '"')) | sw_zero(v ^ (SW_ONES * '\\')) |
           ((v - SW_ONES * 0x20) & ~v & SW_HIGH);
}

/* ---- parser ------------------------------------------------------------- */

struct jp {
    struct sp_arena *a;
    const char *p;      /* cursor */
    const char *start;
    const char *end;
    uint32_t nodes;
    uint32_t max_nodes;
    uint32_t max_depth;
    struct sp_json_error *err;
};

static const char *const errnames[] = {
    [SP_JSON_OK] = "ok",
    [SP_JSON_E_SYNTAX] = "not_json",
    [SP_JSON_E_TRUNCATED] = "truncated",
    [SP_JSON_E_UTF8] = "invalid_utf8",
    [SP_JSON_E_DEPTH] = "too_deep",
    [SP_JSON_E_SIZE] = "too_large",
    [SP_JSON_E_NODES] = "too_many_nodes",
    [SP_JSON_E_EMPTY] = "empty",
    [SP_JSON_E_NOMEM] = "out_of_memory",
};

const char *sp_json_errname(enum sp_json_errcode code)
{
    if ((unsigned)code >= SP_ARRAY_SIZE(errnames))
        return "unknown";
    return errnames[code];
}

static void *jp_fail(struct jp *jp, enum sp_json_errcode code,
                     const char *at, const char *what)
{
    if (jp->err && jp->err->code == SP_JSON_OK) {
        jp->err->code = code;
        jp->err->offset = (size_t)(at - jp->start);
        snprintf(jp->err->msg, sizeof(jp->err->msg), "%s at byte %zu", what,
                 jp->err->offset);
    }
    return NULL;
}

/* A syntax error at the end of input is truncation, not garbage. */
static void *jp_syntax(struct jp *jp, const char *at, const char *what)
{
    if (at >= jp->end)
        return jp_fail(jp, SP_JSON_E_TRUNCATED, at, "input ended early");
    return jp_fail(jp, SP_JSON_E_SYNTAX, at, what);
}

static inline void jp_ws(struct jp *jp)
{
    const char *p = jp->p, *e = jp->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    jp->p = p;
}

static struct sp_json *jp_node(struct jp *jp, uint8_t type, const char *src)
{
    if (++jp->nodes > jp->max_nodes)
        return jp_fail(jp, SP_JSON_E_NODES, src, "too many values");
    struct sp_json *v = sp_arena_alloc(jp->a, sizeof(*v));
    if (!v)
        return jp_fail(jp, SP_JSON_E_NOMEM, src, "out of memory");
    v->key = NULL;
    v->next = NULL;
    v->u.child = NULL;
    v->src = src;
    v->src_len = 0;
    v->n = 0;
    v->key_len = 0;
    v->type = type;
    return v;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = sp_tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int jp_hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

static char *put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Parses a string starting at the opening quote; returns the decoded
 * NUL-terminated copy and its length, advances the cursor. */
static const char *jp_string(struct jp *jp, uint32_t *out_len)
{
    const char *p = jp->p + 1, *e = jp->end;
    const char *run = p;
    /* Fast scan: find the end or the first escape. */
    while (e - p >= 8 && !sw_special(sw_load(p)))
        p += 8;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20)
            break;
        p++;
    }
    if (p >= e)
        return jp_syntax(jp, e, "unterminated string");
    if (*p == '"') {
        size_t n = (size_t)(p - run);
        if (n > UINT32_MAX)
            return jp_fail(jp, SP_JSON_E_SIZE, run, "string too long");
        char *s = sp_arena_strndup(jp->a, run, n);
        if (!s)
            return jp_fail(jp, SP_JSON_E_NOMEM, run, "out of memory");
        *out_len = (uint32_t)n;
        jp->p = p + 1;
        return s;
    }
    /* Slow path with escapes: the decoded text is never longer than the
     * source (\uXXXX = 6 bytes -> at most 3; a surrogate pair 12 -> 4), so
     * find the end first and allocate once. */
    const char *q = p;
    while (q < e && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return jp_syntax(jp, q, "control character in string");
        if (*q == '\\') {
            q++;
            if (q >= e)
                break;
        }
        q++;
    }
    if (q >= e)
        return jp_syntax(jp, e, "unterminated string");
    char *buf = sp_arena_alloc(jp->a, (size_t)(q - run) + 1);
    if (!buf)
        return jp_fail(jp, SP_JSON_E_NOMEM, run, "out of memory");
    size_t pre = (size_t)(p - run);
    memcpy(buf, run, pre);
    char *o = buf + pre;
    while (p < q) {
        char c = *p;
        if (c != '\\') {
            *o++ = c;
            p++;
            continue;
        }
        p++;
        switch (*p) {
        case '"': *o++ = '"'; p++; break;
        case '\\': *o++ = '\\'; p++; break;
        case '/': *o++ = '/'; p++; break;
        case 'b': *o++ = '\b'; p++; break;
        case 'f': *o++ = '\f'; p++; break;
        case 'n': *o++ = '\n'; p++; break;
        case 'r': *o++ = '\r'; p++; break;
        case 't': *o++ = '\t'; p++; break;
        case 'u': {
            if (q - p < 5)
                return jp_syntax(jp, p, "bad \\u escape");
            int cp = jp_hex4(p + 1);
            if (cp < 0)
                return jp_syntax(jp, p, "bad \\u escape");
            p += 5;
            uint32_t u = (uint32_t)cp;
            if (u >= 0xD800 && u <= 0xDBFF) {
                int lo = (q - p >= 6 && p[0] == '\\' && p[1] == 'u')
                             ? jp_hex4(p + 2)
                             : -1;
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    u = 0x10000 + ((u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                    p += 6;
                } else {
                    u = 0xFFFD;
                }
            } else if ((u >= 0xDC00 && u <= 0xDFFF) || u == 0) {
                u = 0xFFFD;
            }
            o = put_utf8(o, u);
            break;
        }
        default:
            return jp_syntax(jp, p, "bad escape");
        }
    }
    *o = '\0';
    *out_len = (uint32_t)(o - buf);
    jp->p = q + 1;
    return buf;
}

static struct sp_json *jp_value(struct jp *jp, uint32_t depth);

static bool jp_number(struct jp *jp)
{
    const char *p = jp->p, *e = jp->end;
    if (p < e && *p == '-')
        p++;
    if (p >= e)
        return false;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    } else {
        return false;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return false;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return false;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    jp->p = p;
    return true;
}

static struct sp_json *jp_container(struct jp *jp, uint32_t depth, bool obj)
{
    const char *src = jp->p;
    if (depth >= jp->max_depth)
        return jp_fail(jp, SP_JSON_E_DEPTH, src, "nesting too deep");
    struct sp_json *v = jp_node(jp, obj ? SP_JSON_OBJECT : SP_JSON_ARRAY, src);
    if (!v)
        return NULL;
    char close = obj ? '}' : ']';
    jp->p++;
    jp_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        v->src_len = (uint32_t)(jp->p - src);
        return v;
    }
    struct sp_json **tail = &v->u.child;
    for (;;) {
        const char *key = NULL;
        uint32_t klen = 0;
        if (obj) {
            if (jp->p >= jp->end || *jp->p != '"')
                return jp_syntax(jp, jp->p, "expected member name");
            key = jp_string(jp, &klen);
            if (!key)
                return NULL;
            jp_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':')
                return jp_syntax(jp, jp->p, "expected ':'");
            jp->p++;
            jp_ws(jp);
        }
        struct sp_json *c = jp_value(jp, depth + 1);
        if (!c)
            return NULL;
        c->key = key;
        c->key_len = klen;
        *tail = c;
        tail = &c->next;
        v->n++;
        jp_ws(jp);
        if (jp->p >= jp->end)
            return jp_syntax(jp, jp->p, "input ended early");
        if (*jp->p == ',') {
            jp->p++;
            jp_ws(jp);
            continue;
        }
        if (*jp->p == close) {
            jp->p++;
            break;
        }
        return jp_syntax(jp, jp->p, obj ? "expected ',' or '}'"
                                        : "expected ',' or ']'");
    }
    size_t sl = (size_t)(jp->p - src);
    v->src_len = sl > UINT32_MAX ? UINT32_MAX : (uint32_t)sl;
    return v;
}

static bool jp_lit(struct jp *jp, const char *lit, size_t n)
{
    if ((size_t)(jp->end - jp->p) < n) {
        /* A prefix of the literal at the end is truncation. */
        size_t have = (size_t)(jp->end - jp->p);
        if (memcmp(jp->p, lit, have) == 0)
            jp_fail(jp, SP_JSON_E_TRUNCATED, jp->end, "input ended early");
        return false;
    }
    if (memcmp(jp->p, lit, n) != 0)
        return false;
    jp->p += n;
    return true;
}

static struct sp_json *jp_value(struct jp *jp, uint32_t depth)
{
    if (jp->p >= jp->end)
        return jp_syntax(jp, jp->p, "expected a value");
    const char *src = jp->p;
    struct sp_json *v;
    switch (*jp->p) {
    case '{':
        return jp_container(jp, depth, true);
    case '[':
        return jp_container(jp, depth, false);
    case '"': {
        v = jp_node(jp, SP_JSON_STRING, src);
        if (!v)
            return NULL;
        uint32_t n = 0;
        v->u.s = jp_string(jp, &n);
        if (!v->u.s)
            return NULL;
        v->n = n;
        break;
    }
    case 't':
        if (!jp_lit(jp, "true", 4))
            return jp_syntax(jp, src, "bad literal");
        v = jp_node(jp, SP_JSON_TRUE, src);
        break;
    case 'f':
        if (!jp_lit(jp, "false", 5))
            return jp_syntax(jp, src, "bad literal");
        v = jp_node(jp, SP_JSON_FALSE, src);
        break;
    case 'n':
        if (!jp_lit(jp, "null", 4))
            return jp_syntax(jp, src, "bad literal");
        v = jp_node(jp, SP_JSON_NULL, src);
        break;
    default:
        if (!jp_number(jp)) {
            if (jp->p >= jp->end || (jp->p + 1 >= jp->end && *jp->p == '-'))
                return jp_fail(jp, SP_JSON_E_TRUNCATED, jp->end,
                               "input ended early");
            return jp_syntax(jp, src, "unexpected character");
        }
        v = jp_node(jp, SP_JSON_NUMBER, src);
        if (!v)
            return NULL;
        v->n = (uint32_t)(jp->p - src);
        v->u.s = sp_arena_strndup(jp->a, src, v->n);
        if (!v->u.s)
            return jp_fail(jp, SP_JSON_E_NOMEM, src, "out of memory");
        break;
    }
    if (!v)
        return NULL;
    v->src_len = (uint32_t)(jp->p - src);
    return v;
}

static struct sp_json *parse_common(struct sp_arena *a, const char *text,
                                    size_t len,
                                    const struct sp_json_limits *lim,
                                    size_t *used, struct sp_json_error *err)
{
    static const struct sp_json_limits defaults = SP_JSON_LIMITS_DEFAULT;
    struct sp_json_error dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof(*err));
    if (!lim)
        lim = &defaults;
    struct jp jp = {
        .a = a, .p = text, .start = text, .end = text + len,
        .max_nodes = lim->max_nodes ? lim->max_nodes : 200000,
        .max_depth = lim->max_depth ? lim->max_depth : 64,
        .err = err,
    };
    size_t max_bytes = lim->max_bytes ? lim->max_bytes : ((size_t)1 << 20);
    if (len > max_bytes || len > UINT32_MAX)
        return jp_fail(&jp, SP_JSON_E_SIZE, text, "document too large");
    if (!used && !sp_utf8_valid(text, len))
        return jp_fail(&jp, SP_JSON_E_UTF8, text, "invalid UTF-8");
    jp_ws(&jp);
    if (jp.p >= jp.end)
        return jp_fail(&jp, SP_JSON_E_EMPTY, jp.p, "empty document");
    const char *vstart = jp.p;
    struct sp_json *root = jp_value(&jp, 0);
    if (!root)
        return NULL;
    if (used) {
        /* Prefix mode validates only the value it consumed. */
        if (!sp_utf8_valid(vstart, (size_t)(jp.p - vstart)))
            return jp_fail(&jp, SP_JSON_E_UTF8, vstart, "invalid UTF-8");
        jp_ws(&jp);
        *used = (size_t)(jp.p - text);
        return root;
    }
    jp_ws(&jp);
    if (jp.p != jp.end)
        return jp_fail(&jp, SP_JSON_E_SYNTAX, jp.p, "garbage after value");
    return root;
}

struct sp_json *sp_json_parse(struct sp_arena *a, const char *text,
                              size_t len, const struct sp_json_limits *lim,
                              struct sp_json_error *err)
{
    return parse_common(a, text, len, lim, NULL, err);
}

struct sp_json *sp_json_parse_prefix(struct sp_arena *a, const char *text,
                                     size_t len,
                                     const struct sp_json_limits *lim,
                                     size_t *used, struct sp_json_error *err)
{
    size_t dummy;
    return parse_common(a, text, len, lim, used ? used : &dummy, err);
}

/* ---- lookups ------------------------------------------------------------ */

struct sp_json *sp_json_get(const struct sp_json *obj, const char *key)
{
    if (!obj || obj->type != SP_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (struct sp_json *c = obj->u.child; c; c = c->next)
        if (c->key_len == kl && memcmp(c->key, key, kl) == 0)
            return c;
    return NULL;
}

struct sp_json *sp_json_iget(const struct sp_json *obj, const char *key)
{
    if (!obj || obj->type != SP_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (struct sp_json *c = obj->u.child; c; c = c->next)
        if (c->key_len == kl && sp_strncaseeq(c->key, key, kl))
            return c;
    return NULL;
}

const char *sp_json_str(const struct sp_json *obj, const char *key)
{
    struct sp_json *v = sp_json_get(obj, key);
    return v && v->type == SP_JSON_STRING ? v->u.s : NULL;
}

const char *sp_json_scalar(const struct sp_json *v)
{
    if (!v)
        return NULL;
    switch (v->type) {
    case SP_JSON_STRING:
    case SP_JSON_NUMBER:
        return v->u.s;
    case SP_JSON_TRUE:
        return "true";
    case SP_JSON_FALSE:
        return "false";
    default:
        return NULL;
    }
}

bool sp_json_is_str(const struct sp_json *v)
{
    return v && v->type == SP_JSON_STRING;
}

bool sp_json_int(const struct sp_json *v, int64_t *out)
{
    if (!v || v->type != SP_JSON_NUMBER)
        return false;
    const char *s = v->u.s;
    bool neg = *s == '-';
    if (neg)
        s++;
    uint64_t acc = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        uint64_t d = (uint64_t)(*s - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    if (acc > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return false;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

bool sp_json_double(const struct sp_json *v, double *out)
{
    if (!v || v->type != SP_JSON_NUMBER)
        return false;
    char *end;
    double d = strtod(v->u.s, &end);
    if (*end)
        return false;
    *out = d;
    return true;
}

/* ---- writer ------------------------------------------------------------- */

void sp_jw_init(struct sp_jw *w, struct sp_buf *b)
{
    w->b = b;
    w->first = 1;
    w->depth = 0;
    w->after_key = false;
    w->bad = false;
}

bool sp_jw_ok(const struct sp_jw *w)
{
    return !w->bad && !w->b->overflow && w->depth == 0;
}

/* Separator before a value (or key) at the current depth. */
static inline void jw_sep(struct sp_jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    uint64_t bit = (uint64_t)1 << w->depth;
    if (w->first & bit)
        w->first &= ~bit;
    else
        sp_buf_putc(w->b, ',');
}

static void jw_open(struct sp_jw *w, char c)
{
    jw_sep(w);
    if (w->depth >= 63) {
        w->bad = true;
        return;
    }
    sp_buf_putc(w->b, c);
    w->depth++;
    w->first |= (uint64_t)1 << w->depth;
}

static void jw_close(struct sp_jw *w, char c)
{
    if (w->depth == 0 || w->after_key) {
        w->bad = true;
        return;
    }
    w->depth--;
    sp_buf_putc(w->b, c);
}

void sp_jw_obj_open(struct sp_jw *w) { jw_open(w, '{'); }
void sp_jw_obj_close(struct sp_jw *w) { jw_close(w, '}'); }
void sp_jw_arr_open(struct sp_jw *w) { jw_open(w, '['); }
void sp_jw_arr_close(struct sp_jw *w) { jw_close(w, ']'); }

static const char hexd[] = "0123456789abcdef";

void sp_json_escape(struct sp_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + n;
    if (sp_buf_reserve(b, n + 2) != SP_OK)
        return;
    b->data[b->len++] = '"';
    while (s < end) {
        const unsigned char *run = s;
        while (end - s >= 8) {
            uint64_t v = sw_load((const char *)s);
            if (sw_special(v) | (v & SW_HIGH))
                break;
            s += 8;
        }
        while (s < end && *s >= 0x20 && *s != '"' && *s != '\\' && *s < 0x80)
            s++;
        if (s > run)
            sp_buf_put(b, run, (size_t)(s - run));
        if (s >= end)
            break;
        unsigned char c = *s;
        if (c >= 0x80) {
            size_t l = sp_utf8_seq((const char *)s, (size_t)(end - s), NULL);
            if (l) {
                sp_buf_put(b, s, l);
                s += l;
            } else {
                sp_buf_put(b, "\xEF\xBF\xBD", 3);
                s++;
            }
            continue;
        }
        char esc[7] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hexd[c >> 4];
            esc[5] = hexd[c & 15];
            el = 6;
        }
        sp_buf_put(b, esc, el);
        s++;
    }
    sp_buf_putc(b, '"');
}

void sp_jw_key(struct sp_jw *w, const char *key)
{
    if (w->after_key || w->depth == 0) {
        w->bad = true;
        return;
    }
    jw_sep(w);
    sp_json_escape(w->b, key, strlen(key));
    sp_buf_putc(w->b, ':');
    w->after_key = true;
}

void sp_jw_strn(struct sp_jw *w, const char *s, size_t n)
{
    jw_sep(w);
    sp_json_escape(w->b, s, n);
}

void sp_jw_str(struct sp_jw *w, const char *s)
{
    if (!s) {
        sp_jw_null(w);
        return;
    }
    sp_jw_strn(w, s, strlen(s));
}

void sp_jw_int(struct sp_jw *w, int64_t v)
{
    jw_sep(w);
    char tmp[SP_INT_BUF];
    sp_buf_put(w->b, tmp, sp_fmt_int(tmp, v));
}

void sp_jw_double(struct sp_jw *w, double v)
{
    jw_sep(w);
    if (!isfinite(v)) {
        sp_buf_put(w->b, "null", 4);
        return;
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    /* Prefer the shortest form that round-trips. */
    for (int prec = 1; prec < 17; prec++) {
        char t2[32];
        int n2 = snprintf(t2, sizeof(t2), "%.*g", prec, v);
        if (strtod(t2, NULL) == v) {
            memcpy(tmp, t2, (size_t)n2 + 1);
            n = n2;
            break;
        }
    }
    sp_buf_put(w->b, tmp, (size_t)n);
}

void sp_jw_bool(struct sp_jw *w, bool v)
{
    jw_sep(w);
    sp_buf_puts(w->b, v ? "true" : "false");
}

void sp_jw_null(struct sp_jw *w)
{
    jw_sep(w);
    sp_buf_put(w->b, "null", 4);
}

void sp_jw_raw(struct sp_jw *w, const char *json, size_t n)
{
    jw_sep(w);
    sp_buf_put(w->b, json, n);
}

void sp_jw_time(struct sp_jw *w, int64_t us)
{
    if (us == SP_TIME_NONE) {
        sp_jw_null(w);
        return;
    }
    char tmp[32];
    size_t n = sp_time_format(us, tmp);
    jw_sep(w);
    sp_buf_putc(w->b, '"');
    sp_buf_put(w->b, tmp, n);
    sp_buf_putc(w->b, '"');
}

void sp_jw_kstr(struct sp_jw *w, const char *key, const char *s)
{
    sp_jw_key(w, key);
    sp_jw_str(w, s);
}

void sp_jw_kstr_opt(struct sp_jw *w, const char *key, const char *s)
{
    if (!s)
        return;
    sp_jw_key(w, key);
    sp_jw_str(w, s);
}

void sp_jw_kint(struct sp_jw *w, const char *key, int64_t v)
{
    sp_jw_key(w, key);
    sp_jw_int(w, v);
}

void sp_jw_kbool(struct sp_jw *w, const char *key, bool v)
{
    sp_jw_key(w, key);
    sp_jw_bool(w, v);
}

void sp_jw_ktime(struct sp_jw *w, const char *key, int64_t us)
{
    sp_jw_key(w, key);
    sp_jw_time(w, us);
}

/* ---- time --------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), no timegm(). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool sp_time_parse(const char *s, int64_t *us)
{
    if (!s)
        return false;
    int Y, M, D, h = 0, m = 0, sec = 0;
    if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) ||
        s[7] != '-' || !digits(s + 8, 2, &D))
        return false;
    const char *p = s + 10;
    int64_t frac_us = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &m))
            return false;
        p += 5;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec))
                return false;
            p += 3;
        }
        if (*p == '.' || *p == ',') {
            p++;
            int nd = 0;
            int64_t scale = 100000;
            while (*p >= '0' && *p <= '9') {
                if (nd < 6) {
                    frac_us += (*p - '0') * scale;
                    scale /= 10;
                }
                nd++;
                p++;
                if (nd > 12)
                    return false;
            }
            if (nd == 0)
                return false;
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0;
        int sign = *p == '-' ? -1 : 1;
        p++;
        if (!digits(p, 2, &oh))
            return false;
        p += 2;
        if (*p == ':')
            p++;
        if (*p >= '0' && *p <= '9') {
            if (!digits(p, 2, &om))
                return false;
            p += 2;
        }
        if (oh > 23 || om > 59)
            return false;
        off_s = sign * (oh * 3600 + om * 60);
    }
    if (*p != '\0')
        return false;
    if (M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) || h > 23 ||
        m > 59 || sec > 60)
        return false;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t t = days * 86400 + h * 3600 + m * 60 + sec - off_s;
    /* Only what sp_time_format can write back: a zone offset or a leap
     * second must not carry the UTC time out of years 0000-9999 (the
     * writer would clamp the year, naming another day). */
    if (t < days_from_civil(0, 1, 1) * 86400 ||
        t >= days_from_civil(10000, 1, 1) * 86400)
        return false;
    *us = t * 1000000 + frac_us;
    return true;
}

size_t sp_time_format(int64_t us, char *out)
{
    int64_t secs = us / 1000000;
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    /* civil_from_days */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned mo = mp < 10 ? mp + 3 : mp - 9;
    y += mo <= 2;
    unsigned hh = (unsigned)(rem / 3600), mm = (unsigned)(rem / 60 % 60),
             ss = (unsigned)(rem % 60);
    if (y < 0 || y > 9999)
        y = y < 0 ? 0 : 9999;
    /* By hand: snprintf was a tenth of the time spent writing an alert. */
    unsigned yy = (unsigned)y;
    char *o = out;
    *o++ = (char)('0' + yy / 1000);
    *o++ = (char)('0' + yy / 100 % 10);
    *o++ = (char)('0' + yy / 10 % 10);
    *o++ = (char)('0' + yy % 10);
    const unsigned two[5] = {mo, d, hh, mm, ss};
    const char sep[5] = {'-', '-', 'T', ':', ':'};
    for (int i = 0; i < 5; i++) {
        *o++ = sep[i];
        *o++ = (char)('0' + two[i] / 10);
        *o++ = (char)('0' + two[i] % 10);
    }
    int digits = frac == 0 ? 0 : frac % 1000 == 0 ? 3 : 6;
    if (digits) {
        unsigned f = (unsigned)(digits == 3 ? frac / 1000 : frac);
        *o++ = '.';
        for (int i = digits - 1; i >= 0; i--) {
            o[i] = (char)('0' + f % 10);
            f /= 10;
        }
        o += digits;
    }
    *o++ = 'Z';
    *o = '\0';
    return (size_t)(o - out);
}
