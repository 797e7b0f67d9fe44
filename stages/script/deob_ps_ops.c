/*
 * deob_ps_ops.c - operators on PowerShell values, independent of the
 * syntax tree: -replace and -split (with patterns that are literals once
 * unescaped), -join, the -f format operator, casts ([char], [string],
 * [int], [byte[]], ...), comparisons, '+' on strings, numbers and arrays,
 * ranges, and ConvertTo-SecureString -Key decryption.  Each sets the
 * obfuscation flag (OP_*) it stands for on the pass.
 *
 * Results are allocated in the pass's arena; temporary buffers are
 * freed before returning.  Called on the thread running the pass.
 */
#include "deob_ps_int.h"

#include <string.h>

/* ---- text operations ---- */

/* A regex pattern that is really a literal: unescaped into out. */
static bool regex_literal(const char *s, size_t n, struct sp_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            if (i + 1 >= n)
                return false;
            char d = s[++i];
            if (deob_isalnum((unsigned char)d)) {
                if (d == 't')
                    sp_buf_putc(out, '\t');
                else if (d == 'n')
                    sp_buf_putc(out, '\n');
                else if (d == 'r')
                    sp_buf_putc(out, '\r');
                else
                    return false;
            } else {
                sp_buf_putc(out, d);
            }
            continue;
        }
        if (strchr(".$^[()|*+?", c))
            return false;
        if (c == '{' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
            return false;
        sp_buf_putc(out, c);
    }
    return !out->overflow;
}

size_t sp_ps_find_lit(const char *s, size_t n, const char *pat, size_t pn,
                      bool ci)
{
    if (pn == 0 || pn > n)
        return (size_t)-1;
    for (size_t i = 0; i + pn <= n; i++) {
        if (ci ? sp_strncaseeq(s + i, pat, pn) : !memcmp(s + i, pat, pn))
            return i;
    }
    return (size_t)-1;
}

static bool replace_all(struct sp_buf *b, const char *s, size_t n,
                        const char *pat, size_t pn, const char *rep,
                        size_t rn, bool ci)
{
    size_t pos = 0;
    for (;;) {
        size_t at = sp_ps_find_lit(s + pos, n - pos, pat, pn, ci);
        if (at == (size_t)-1)
            break;
        sp_buf_put(b, s + pos, at);
        sp_buf_put(b, rep, rn);
        pos += at + pn;
    }
    sp_buf_put(b, s + pos, n - pos);
    return !b->overflow;
}

/* Splits s on the literal pat (or on any char of set if set). */
bool sp_ps_split_into(struct ps *ps, struct pvlist *l, const char *s,
                      size_t n, const char *pat, size_t pn, bool ci,
                      bool anychar)
{
    size_t pos = 0;
    for (;;) {
        size_t at = (size_t)-1, len = pn;
        if (anychar) {
            for (size_t i = pos; i < n && at == (size_t)-1; i++)
                if (memchr(pat, s[i], pn))
                    at = i - pos, len = 1;
        } else {
            at = sp_ps_find_lit(s + pos, n - pos, pat, pn, ci);
        }
        if (at == (size_t)-1)
            break;
        if (!sp_ps_pvlist_add(ps, l, sp_ps_pv_str(ps, s + pos, at)))
            return false;
        pos += at + len;
    }
    return sp_ps_pvlist_add(ps, l, sp_ps_pv_str(ps, s + pos, n - pos));
}

struct pv *sp_ps_op_split(struct ps *ps, struct pv *l, struct pv *r,
                          bool cs)
{
    struct pv **items, *one;
    const char *pat;
    size_t pn;
    if (!sp_ps_to_str(ps, r, &pat, &pn) || pn == 0)
        return NULL;
    struct sp_buf lit;
    sp_buf_init(&lit, pn + 1);
    bool ok = regex_literal(pat, pn, &lit);
    struct pvlist out = {0};
    size_t k = ok ? sp_ps_enumerate(ps, l, &items, &one) : 0;
    for (size_t i = 0; i < k && ok; i++) {
        const char *s;
        size_t sn;
        if (!sp_ps_to_str(ps, items[i], &s, &sn))
            ok = false;
        else
            ok = sp_ps_split_into(ps, &out, s, sn, lit.data, lit.len, !cs,
                                  false);
    }
    sp_buf_fini(&lit);
    if (!ok || ps->abort)
        return NULL;
    ps->ops |= OP_SPLITJOIN;
    return sp_ps_pvlist_value(ps, &out);
}

struct pv *sp_ps_op_replace_one(struct ps *ps, struct pv *l,
                                const char *pat, size_t pn, const char *rep,
                                size_t rn, bool cs)
{
    const char *s;
    size_t n;
    if (!sp_ps_to_str(ps, l, &s, &n))
        return NULL;
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    struct pv *v = replace_all(&b, s, n, pat, pn, rep, rn, !cs)
                       ? sp_ps_pv_buf(ps, &b)
                       : NULL;
    sp_buf_fini(&b);
    return v;
}

struct pv *sp_ps_op_replace(struct ps *ps, struct pv *l, struct pv *r,
                            bool cs)
{
    struct pv *pv = r, *rv = NULL;
    if (r->kind == PV_ARR) {
        if (r->count == 0 || r->count > 2)
            return NULL;
        pv = ITEMS(r)[0];
        rv = r->count == 2 ? ITEMS(r)[1] : NULL;
    }
    const char *pat, *rep = "";
    size_t pn, rn = 0;
    if (!sp_ps_to_str(ps, pv, &pat, &pn) || pn == 0)
        return NULL;
    if (rv && !sp_ps_to_str(ps, rv, &rep, &rn))
        return NULL;
    if (memchr(rep, '$', rn))
        return NULL;
    struct sp_buf lit;
    sp_buf_init(&lit, pn + 1);
    struct pv *res = NULL;
    if (regex_literal(pat, pn, &lit)) {
        if (l->kind == PV_ARR) {
            res = sp_ps_pv_arr(ps, l->count);
            for (size_t i = 0; res && i < l->count; i++) {
                ITEMS(res)[i] = sp_ps_op_replace_one(ps, ITEMS(l)[i], lit.data,
                                                     lit.len, rep, rn, cs);
                if (!ITEMS(res)[i])
                    res = NULL;
            }
        } else {
            res = sp_ps_op_replace_one(ps, l, lit.data, lit.len, rep, rn, cs);
        }
    }
    sp_buf_fini(&lit);
    if (res)
        ps->ops |= OP_REPLACE;
    return res;
}

struct pv *sp_ps_op_join(struct ps *ps, struct pv *l, struct pv *sep)
{
    const char *sp = "";
    size_t sn = 0;
    if (sep && !sp_ps_to_str(ps, sep, &sp, &sn))
        return NULL;
    struct pv **items, *one;
    size_t k = sp_ps_enumerate(ps, l, &items, &one);
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = true;
    for (size_t i = 0; i < k && ok; i++) {
        if (i)
            sp_buf_put(&b, sp, sn);
        ok = sp_ps_put_str(ps, items[i], &b, 0);
    }
    struct pv *v = ok ? sp_ps_pv_buf(ps, &b) : NULL;
    sp_buf_fini(&b);
    if (v)
        ps->ops |= OP_SPLITJOIN;
    return v;
}

struct pv *sp_ps_op_format(struct ps *ps, struct pv *fmtv, struct pv *args)
{
    const char *f;
    size_t fn;
    if (!sp_ps_to_str(ps, fmtv, &f, &fn))
        return NULL;
    struct pv **items, *one;
    size_t k = sp_ps_enumerate(ps, args, &items, &one);
    if (args && args->kind == PV_ARR)
        k = args->count, items = ITEMS(args);
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = true;
    for (size_t i = 0; i < fn && ok; i++) {
        char c = f[i];
        if (c == '{' && i + 1 < fn && f[i + 1] == '{') {
            sp_buf_putc(&b, '{');
            i++;
            continue;
        }
        if (c == '}' && i + 1 < fn && f[i + 1] == '}') {
            sp_buf_putc(&b, '}');
            i++;
            continue;
        }
        if (c != '{') {
            sp_buf_putc(&b, c);
            continue;
        }
        size_t j = i + 1, idx = 0, d = 0;
        while (j < fn && f[j] == ' ')
            j++;
        while (j < fn && f[j] >= '0' && f[j] <= '9' && d < 6)
            idx = idx * 10 + (size_t)(f[j++] - '0'), d++;
        while (j < fn && f[j] == ' ')
            j++;
        long align = 0;
        if (j < fn && f[j] == ',') {
            j++;
            bool neg = j < fn && f[j] == '-';
            if (neg)
                j++;
            while (j < fn && f[j] >= '0' && f[j] <= '9' && align < 10000)
                align = align * 10 + (f[j++] - '0');
            if (neg)
                align = -align;
        }
        if (!d || j >= fn || f[j] != '}' || idx >= k) {
            ok = false;
            break;
        }
        size_t before = b.len;
        ok = sp_ps_put_str(ps, items[idx], &b, 0);
        size_t w = b.len - before;
        if (ok && align > 0 && (size_t)align > w) {
            /* right-align: shift the piece */
            size_t pad = (size_t)align - w;
            for (size_t m = 0; m < pad; m++)
                sp_buf_putc(&b, ' ');
            if (!b.overflow) {
                memmove(b.data + before + pad, b.data + before, w);
                memset(b.data + before, ' ', pad);
            }
        } else if (ok && align < 0 && (size_t)-align > w) {
            for (size_t m = 0; m < (size_t)-align - w; m++)
                sp_buf_putc(&b, ' ');
        }
        i = j;
    }
    struct pv *v = ok ? sp_ps_pv_buf(ps, &b) : NULL;
    sp_buf_fini(&b);
    if (v)
        ps->ops |= OP_FORMAT;
    return v;
}

/* ---- casts ---- */

void sp_ps_type_norm(const char *t, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    if (n > 7 && sp_strncaseeq(t, "system.", 7))
        t += 7, n -= 7;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        out[k++] = sp_tolower(t[i]);
    out[k] = '\0';
}

static bool is_int_type(const char *t)
{
    static const char *const ints[] = {
        "int", "int32", "int64", "long", "int16", "short", "byte", "sbyte",
        "uint16", "uint32", "uint64", "ushort", "uint", "ulong", "decimal",
        "double", "single", "float", "bigint", "numerics.biginteger", NULL};
    for (size_t i = 0; ints[i]; i++)
        if (!strcmp(t, ints[i]))
            return true;
    return false;
}

struct pv *sp_ps_to_char(struct ps *ps, struct pv *v)
{
    if (!v)
        return NULL;
    if (v->kind == PV_CHAR)
        return v;
    if (v->kind == PV_INT || v->kind == PV_BOOL) {
        if (v->i < 0 || v->i > 0xFFFF)
            return NULL;
        ps->ops |= OP_CHARCODE;
        return sp_ps_pv_char(ps, v->i);
    }
    if (v->kind == PV_STR && sp_ps_str_len(ps, v) == 1)
        return sp_ps_pv_char(ps, sp_ps_str_at(ps, v, 0));
    return NULL;
}

struct pv *sp_ps_cast(struct ps *ps, const char *tname, size_t tl,
                      struct pv *v)
{
    char t[64];
    sp_ps_type_norm(tname, tl, t, sizeof(t));
    if (!v)
        return NULL;
    if (!strcmp(t, "char"))
        return sp_ps_to_char(ps, v);
    if (is_int_type(t)) {
        int64_t i;
        if (v->kind == PV_CHAR) {
            ps->ops |= OP_CHARCODE;
            return sp_ps_pv_int(ps, v->i);
        }
        if (!sp_ps_to_int(v, &i))
            return NULL;
        if (!strcmp(t, "byte"))
            i &= 0xFF;
        return sp_ps_pv_int(ps, i);
    }
    if (!strcmp(t, "string"))
        return sp_ps_to_strv(ps, v);
    if (!strcmp(t, "char[]")) {
        if (v->kind == PV_STR) {
            size_t k = sp_ps_str_len(ps, v);
            struct pv *a = sp_ps_pv_arr(ps, k);
            for (size_t i = 0; a && i < k; i++)
                if (!(ITEMS(a)[i] = sp_ps_pv_char(ps, sp_ps_str_at(ps, v, i))))
                    return NULL;
            return a;
        }
        struct pv **items, *one;
        size_t k = sp_ps_enumerate(ps, v, &items, &one);
        struct pv *a = sp_ps_pv_arr(ps, k);
        for (size_t i = 0; a && i < k; i++)
            if (!(ITEMS(a)[i] = sp_ps_to_char(ps, items[i])))
                return NULL;
        return a;
    }
    if (!strcmp(t, "byte[]")) {
        if (v->kind == PV_BYTES)
            return v;
        struct pv **items, *one;
        size_t k = sp_ps_enumerate(ps, v, &items, &one);
        unsigned char *b = k ? sp_ps_alloc(ps, k) : NULL;
        if (k && !b)
            return NULL;
        for (size_t i = 0; i < k; i++) {
            int64_t x;
            if (!sp_ps_to_int(items[i], &x) || x < 0 || x > 255)
                return NULL;
            b[i] = (unsigned char)x;
        }
        struct pv *r = sp_ps_pv_new(ps, PV_BYTES);
        if (r) {
            r->p = b;
            r->count = k;
        }
        return r;
    }
    if (!strcmp(t, "string[]") || !strcmp(t, "object[]") ||
        !strcmp(t, "array") || !strcmp(t, "int[]")) {
        struct pv **items, *one;
        size_t k = sp_ps_enumerate(ps, v, &items, &one);
        struct pv *a = sp_ps_pv_arr(ps, k);
        for (size_t i = 0; a && i < k; i++) {
            ITEMS(a)[i] = !strcmp(t, "string[]") ? sp_ps_to_strv(ps, items[i])
                                                 : items[i];
            if (!ITEMS(a)[i])
                return NULL;
        }
        return a;
    }
    if (!strcmp(t, "object") || !strcmp(t, "psobject"))
        return v;
    if (!strcmp(t, "type")) {
        const char *s;
        size_t n;
        if (v->kind == PV_TYPE)
            return v;
        if (!sp_ps_to_str(ps, v, &s, &n) || n == 0 || n > 200)
            return NULL;
        for (size_t i = 0; i < n; i++)
            if (!sp_ps_is_word_char((unsigned char)s[i]) && s[i] != '.' &&
                s[i] != '[' && s[i] != ']' && s[i] != '`')
                return NULL;
        return sp_ps_pv_named(ps, PV_TYPE, s, n);
    }
    if (!strcmp(t, "scriptblock") ||
        !strcmp(t, "management.automation.scriptblock")) {
        const char *s;
        size_t n;
        if (!sp_ps_to_str(ps, v, &s, &n))
            return NULL;
        struct pv *b = sp_ps_pv_named(ps, PV_BLOCK, s, n);
        if (b)
            b->fl |= PVF_CREATED;
        return b;
    }
    if (!strcmp(t, "io.memorystream") && v->kind == PV_BYTES) {
        struct pv *st = sp_ps_pv_bytes(ps, PV_STREAM, v->p, v->count);
        if (st)
            st->ops = v->ops;
        return st;
    }
    if (!strcmp(t, "bool") || !strcmp(t, "boolean"))
        return sp_ps_pv_bool(ps, sp_ps_truthy(v));
    return NULL;
}

/* ---- operators ---- */

int sp_ps_cmp_values(struct ps *ps, struct pv *a, struct pv *b, bool cs,
                     bool *ok)
{
    int64_t x, y;
    *ok = true;
    if ((a->kind == PV_INT || a->kind == PV_CHAR || a->kind == PV_BOOL) &&
        sp_ps_to_int(b, &x)) {
        y = a->i;
        return y < x ? -1 : y > x;
    }
    const char *s, *t;
    size_t sn, tn;
    if (!sp_ps_to_str(ps, a, &s, &sn) || !sp_ps_to_str(ps, b, &t, &tn)) {
        *ok = false;
        return 0;
    }
    size_t m = SP_MIN(sn, tn);
    for (size_t i = 0; i < m; i++) {
        int c1 = cs ? (unsigned char)s[i] : (unsigned char)sp_tolower(s[i]);
        int c2 = cs ? (unsigned char)t[i] : (unsigned char)sp_tolower(t[i]);
        if (c1 != c2)
            return c1 < c2 ? -1 : 1;
    }
    return sn < tn ? -1 : sn > tn;
}

struct pv *sp_ps_ev_add(struct ps *ps, struct pv *l, struct pv *r)
{
    if (sp_ps_is_nullish(l))
        return r;
    if (l->kind == PV_STR || l->kind == PV_CHAR) {
        struct sp_buf b;
        sp_buf_init(&b, PS_ARENA_MAX);
        bool ok = sp_ps_put_str(ps, l, &b, 0) && sp_ps_put_str(ps, r, &b, 0);
        struct pv *v = ok ? sp_ps_pv_buf(ps, &b) : NULL;
        sp_buf_fini(&b);
        if (v)
            ps->ops |= OP_CONCAT;
        return v;
    }
    if (l->kind == PV_INT || l->kind == PV_BOOL) {
        int64_t y;
        if (!sp_ps_to_int(r, &y))
            return NULL;
        return sp_ps_pv_int(ps, l->i + y);
    }
    if (l->kind == PV_ARR) {
        struct pv **items, *one;
        size_t k = sp_ps_enumerate(ps, r, &items, &one);
        if (r->kind == PV_STR || r->kind == PV_CHAR)
            k = 1, items = &r;
        struct pv *a = sp_ps_pv_arr(ps, l->count + k);
        if (!a)
            return NULL;
        for (size_t i = 0; i < l->count; i++)
            ITEMS(a)[i] = ITEMS(l)[i];
        for (size_t i = 0; i < k; i++)
            ITEMS(a)[l->count + i] = items[i];
        return a;
    }
    return NULL;
}

struct pv *sp_ps_ev_range(struct ps *ps, struct pv *l, struct pv *r)
{
    int64_t a, b;
    if (!sp_ps_to_int(l, &a) || !sp_ps_to_int(r, &b))
        return NULL;
    uint64_t cnt = (uint64_t)(a <= b ? b - a : a - b) + 1;
    if (cnt > 65536)
        return NULL;
    struct pv *v = sp_ps_pv_arr(ps, (size_t)cnt);
    for (uint64_t i = 0; v && i < cnt; i++) {
        ITEMS(v)[i] =
            sp_ps_pv_int(ps, a <= b ? a + (int64_t)i : a - (int64_t)i);
        if (!ITEMS(v)[i])
            return NULL;
    }
    return v;
}

/* ---- SecureString ---- */

struct pv *sp_ps_securestring_decrypt(struct ps *ps, struct pv *str,
                                      struct pv *keyv)
{
    const char *s;
    size_t n;
    unsigned char key[32];
    size_t kl = 0;
    if (!sp_ps_to_str(ps, str, &s, &n) || !keyv)
        return NULL;
    struct pv **items, *one;
    size_t k = keyv->kind == PV_BYTES ? keyv->count
                                      : sp_ps_enumerate(ps, keyv, &items, &one);
    if (k != 16 && k != 24 && k != 32)
        return NULL;
    for (size_t i = 0; i < k; i++) {
        int64_t x;
        if (keyv->kind == PV_BYTES)
            x = ((const unsigned char *)keyv->p)[i];
        else if (!sp_ps_to_int(items[i], &x) || x < 0 || x > 255)
            return NULL;
        key[kl++] = (unsigned char)x;
    }
    static const char hdr[] = "76492d1116743f0423413b16050a5345";
    if (n < 40 || !sp_strncaseeq(s, hdr, 32))
        return NULL;
    struct sp_buf raw, txt, iv, ct;
    sp_buf_init(&raw, n);
    sp_buf_init(&txt, n * 2 + 16);
    sp_buf_init(&iv, 64);
    sp_buf_init(&ct, n);
    struct pv *res = NULL;
    if (!deob_b64_decode(s + 32, n - 32, &raw) ||
        deob_utf16le_to_utf8((unsigned char *)raw.data, raw.len, &txt))
        goto out;
    /* "<version>|<base64 IV>|<hex ciphertext>" */
    const char *t = txt.data;
    const char *p1 = t ? memchr(t, '|', txt.len) : NULL;
    const char *p2 = p1 ? memchr(p1 + 1, '|', txt.len - (size_t)(p1 + 1 - t))
                        : NULL;
    if (!p2)
        goto out;
    if (!deob_b64_decode(p1 + 1, (size_t)(p2 - p1 - 1), &iv) || iv.len != 16)
        goto out;
    const char *hx = p2 + 1;
    size_t hn = txt.len - (size_t)(hx - t);
    if (hn % 32 || hn == 0 || sp_buf_reserve(&ct, hn / 2))
        goto out;
    for (size_t i = 0; i + 1 < hn; i += 2) {
        int a = deob_hexval((unsigned char)hx[i]);
        int b = deob_hexval((unsigned char)hx[i + 1]);
        if (a < 0 || b < 0)
            goto out;
        ct.data[ct.len++] = (char)(a * 16 + b);
    }
    unsigned char *pt = sp_ps_alloc(ps, ct.len);
    size_t plen;
    if (!pt || !deob_aes_cbc_decrypt(key, kl, (unsigned char *)iv.data,
                                     (unsigned char *)ct.data, ct.len, pt,
                                     &plen))
        goto out;
    struct sp_buf u;
    sp_buf_init(&u, plen * 2 + 16);
    if (deob_utf16le_to_utf8(pt, plen, &u) == SP_OK && !u.overflow) {
        res = sp_ps_pv_named(ps, PV_SECURE,
                             sp_ps_strdup(ps, u.data ? u.data : "", u.len),
                             u.len);
        if (res) {
            res->ops = OP_SECURE;
            ps->ops |= OP_SECURE;
        }
    }
    sp_buf_fini(&u);
out:
    sp_buf_fini(&raw);
    sp_buf_fini(&txt);
    sp_buf_fini(&iv);
    sp_buf_fini(&ct);
    return res;
}
