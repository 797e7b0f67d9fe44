/*
 * deob_ps_value.c - the value model of the PowerShell folding engine:
 * the pass arena (sp_ps_alloc and friends, which turn an exhausted arena
 * into an aborted pass), constructors for every struct pv kind, strings
 * as code points, and PowerShell's conversions (to integer, to string,
 * truthiness, pipeline enumeration, equality), plus the output lists
 * statements produce.
 *
 * Values live in the pass's arena and die with it; nothing here frees.
 * Called only from the other deob_ps_*.c files, on the thread running
 * the pass.
 */
#include "deob_ps_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the pass arena ---- */

void *sp_ps_alloc(struct ps *ps, size_t n)
{
    void *p = sp_arena_calloc(&ps->ar, n);
    if (!p) {
        ps->abort = true;
        ps->ctx->bounds |= SP_DEOB_BOUND_OUTPUT;
    }
    return p;
}

char *sp_ps_strdup(struct ps *ps, const char *s, size_t n)
{
    char *p = sp_arena_alloc(&ps->ar, n + 1);
    if (!p) {
        ps->abort = true;
        ps->ctx->bounds |= SP_DEOB_BOUND_OUTPUT;
        return NULL;
    }
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sp_ps_lower(struct ps *ps, const char *s, size_t n)
{
    char *p = sp_ps_strdup(ps, s, n);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = sp_tolower(p[i]);
    return p;
}

/* Growable arrays of the pass (malloc'd, bounded). */
bool sp_ps_grow(struct ps *ps, void **arr, size_t *cap, size_t need,
                size_t elem)
{
    if (need <= *cap)
        return true;
    if (need > PS_MAX_ITEMS) {
        ps->abort = true;
        return false;
    }
    size_t nc = *cap ? *cap * 2 : 32;
    while (nc < need)
        nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p) {
        ps->abort = true;
        return false;
    }
    *arr = p;
    *cap = nc;
    return true;
}

/* ---- value constructors ---- */

struct pv *sp_ps_pv_new(struct ps *ps, int kind)
{
    struct pv *v = sp_ps_alloc(ps, sizeof(*v));
    if (v)
        v->kind = (uint8_t)kind;
    return v;
}

static bool bytes_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* A STR value referring to s (which must live as long as the pass). */
struct pv *sp_ps_pv_str_ref(struct ps *ps, const char *s, size_t n)
{
    struct pv *v = sp_ps_pv_new(ps, PV_STR);
    if (!v)
        return NULL;
    v->s = s ? s : "";
    v->n = n;
    if (bytes_ascii(v->s, n))
        v->fl |= PVF_ASCII;
    return v;
}

struct pv *sp_ps_pv_str(struct ps *ps, const char *s, size_t n)
{
    char *c = sp_ps_strdup(ps, s, n);
    return c ? sp_ps_pv_str_ref(ps, c, n) : NULL;
}

struct pv *sp_ps_pv_cstr(struct ps *ps, const char *s)
{
    return sp_ps_pv_str_ref(ps, s, strlen(s));
}

struct pv *sp_ps_pv_buf(struct ps *ps, const struct sp_buf *b)
{
    if (b->overflow) {
        ps->abort = true;
        return NULL;
    }
    return sp_ps_pv_str(ps, b->data ? b->data : "", b->len);
}

struct pv *sp_ps_pv_int(struct ps *ps, int64_t i)
{
    struct pv *v = sp_ps_pv_new(ps, PV_INT);
    if (v)
        v->i = i;
    return v;
}

struct pv *sp_ps_pv_char(struct ps *ps, int64_t c)
{
    struct pv *v = sp_ps_pv_new(ps, PV_CHAR);
    if (v)
        v->i = c;
    return v;
}

struct pv *sp_ps_pv_bool(struct ps *ps, bool b)
{
    struct pv *v = sp_ps_pv_new(ps, PV_BOOL);
    if (v)
        v->i = b;
    return v;
}

struct pv *sp_ps_pv_arr(struct ps *ps, size_t count)
{
    if (count > PS_MAX_ITEMS) {
        ps->abort = true;
        return NULL;
    }
    struct pv *v = sp_ps_pv_new(ps, PV_ARR);
    if (!v)
        return NULL;
    v->count = count;
    v->p = count ? sp_ps_alloc(ps, count * sizeof(struct pv *)) : NULL;
    if (count && !v->p)
        return NULL;
    return v;
}

struct pv *sp_ps_pv_named(struct ps *ps, int kind, const char *s, size_t n)
{
    struct pv *v = sp_ps_pv_new(ps, kind);
    if (v) {
        v->s = s;
        v->n = n;
    }
    return v;
}

struct pv *sp_ps_pv_bytes(struct ps *ps, int kind, const void *b, size_t n)
{
    struct pv *v = sp_ps_pv_new(ps, kind);
    if (!v)
        return NULL;
    unsigned char *c = n ? sp_ps_alloc(ps, n) : NULL;
    if (n && !c)
        return NULL;
    if (n)
        memcpy(c, b, n);
    v->p = c;
    v->count = n;
    return v;
}

/* ---- strings as code points ---- */

/* Code points of a non-ASCII string, cached on the value. */
static const uint32_t *str_cps(struct ps *ps, struct pv *v)
{
    if (v->p)
        return v->p;
    uint32_t *cp = sp_ps_alloc(ps, (v->n + 1) * sizeof(uint32_t));
    if (!cp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < v->n;)
        cp[k++] = deob_utf8_next(v->s, v->n, &i);
    v->p = cp;
    v->count = k;
    return cp;
}

size_t sp_ps_str_len(struct ps *ps, struct pv *v)
{
    if (v->fl & PVF_ASCII)
        return v->n;
    return str_cps(ps, v) ? v->count : 0;
}

uint32_t sp_ps_str_at(struct ps *ps, struct pv *v, size_t i)
{
    if (v->fl & PVF_ASCII)
        return (unsigned char)v->s[i];
    const uint32_t *cp = str_cps(ps, v);
    return cp ? cp[i] : 0xFFFD;
}

/* ---- conversions ---- */

bool sp_ps_is_nullish(const struct pv *v)
{
    return v->kind == PV_NULL || v->kind == PV_VOID;
}

static bool parse_int_text(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    while (i < n && deob_isspace((unsigned char)s[i]))
        i++;
    while (n > i && deob_isspace((unsigned char)s[n - 1]))
        n--;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i >= n)
        return false;
    uint64_t v = 0;
    if (i + 2 < n + 1 && n - i > 2 && s[i] == '0' &&
        (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        i += 2;
        size_t d = 0;
        for (; i < n; i++, d++) {
            int h = deob_hexval((unsigned char)s[i]);
            if (h < 0 || d >= 16)
                return false;
            v = v * 16 + (uint64_t)h;
        }
    } else {
        for (; i < n; i++) {
            if (s[i] < '0' || s[i] > '9' || v > (uint64_t)1e17)
                return false;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

bool sp_ps_to_int(struct pv *v, int64_t *out)
{
    if (!v)
        return false;
    switch (v->kind) {
    case PV_NULL:
    case PV_VOID:
        *out = 0;
        return true;
    case PV_BOOL:
    case PV_INT:
    case PV_CHAR:
        *out = v->i;
        return true;
    case PV_STR:
        if (v->n == 0) {
            *out = 0;
            return true;
        }
        return parse_int_text(v->s, v->n, out);
    default:
        return false;
    }
}

/* PowerShell's string conversion; appends to b.  False if unknown. */
bool sp_ps_put_str(struct ps *ps, struct pv *v, struct sp_buf *b, int depth)
{
    if (!v || depth > 8)
        return false;
    char tmp[32];
    switch (v->kind) {
    case PV_NULL:
    case PV_VOID:
        return true;
    case PV_BOOL:
        sp_buf_puts(b, v->i ? "True" : "False");
        return true;
    case PV_INT:
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v->i);
        sp_buf_puts(b, tmp);
        return true;
    case PV_CHAR:
        deob_utf8_put(b, (uint32_t)v->i);
        return true;
    case PV_STR:
    case PV_BLOCK:
    case PV_CMD:
    case PV_MATCH:
    case PV_TYPE:
        sp_buf_put(b, v->s, v->n);
        return true;
    case PV_ARR:
        for (size_t i = 0; i < v->count; i++) {
            if (i)
                sp_buf_putc(b, ' ');
            if (!sp_ps_put_str(ps, ITEMS(v)[i], b, depth + 1))
                return false;
        }
        return true;
    case PV_BYTES:
        for (size_t i = 0; i < v->count; i++) {
            snprintf(tmp, sizeof(tmp), i ? " %u" : "%u",
                     ((const unsigned char *)v->p)[i]);
            sp_buf_puts(b, tmp);
        }
        return true;
    case PV_HASH:
        sp_buf_puts(b, "System.Collections.Hashtable");
        return true;
    case PV_SECURE:
        sp_buf_puts(b, "System.Security.SecureString");
        return true;
    case PV_CRED:
        sp_buf_puts(b, "System.Management.Automation.PSCredential");
        return true;
    case PV_VAROBJ:
        sp_buf_puts(b, "System.Management.Automation.PSVariable");
        return true;
    case PV_METHOD: {
        const char *sig = sp_ps_method_signature(v->s, v->n);
        if (!sig)
            return false;
        sp_buf_puts(b, sig);
        return true;
    }
    default:
        return false;
    }
}

/* String form of v as (s, n) in the arena. */
bool sp_ps_to_str(struct ps *ps, struct pv *v, const char **s, size_t *n)
{
    if (!v)
        return false;
    if (v->kind == PV_STR) {
        *s = v->s;
        *n = v->n;
        return true;
    }
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = sp_ps_put_str(ps, v, &b, 0) && !b.overflow;
    if (ok) {
        *s = sp_ps_strdup(ps, b.data ? b.data : "", b.len);
        *n = b.len;
        ok = *s != NULL;
    }
    sp_buf_fini(&b);
    return ok;
}

struct pv *sp_ps_to_strv(struct ps *ps, struct pv *v)
{
    const char *s;
    size_t n;
    if (!v)
        return NULL;
    if (v->kind == PV_STR)
        return v;
    return sp_ps_to_str(ps, v, &s, &n) ? sp_ps_pv_str_ref(ps, s, n) : NULL;
}

bool sp_ps_truthy(struct pv *v)
{
    switch (v->kind) {
    case PV_NULL:
    case PV_VOID:
        return false;
    case PV_BOOL:
    case PV_INT:
    case PV_CHAR:
        return v->i != 0;
    case PV_STR:
        return v->n != 0;
    case PV_ARR:
        return v->count != 0;
    default:
        return true;
    }
}

/* Items a pipeline would enumerate.  *one is scratch for a scalar. */
size_t sp_ps_enumerate(struct ps *ps, struct pv *v, struct pv ***items,
                       struct pv **one)
{
    if (!v || sp_ps_is_nullish(v)) {
        *items = NULL;
        return 0;
    }
    if (v->kind == PV_ARR) {
        *items = ITEMS(v);
        return v->count;
    }
    if (v->kind == PV_BYTES) {
        struct pv *a = sp_ps_pv_arr(ps, v->count);
        if (!a)
            return 0;
        for (size_t i = 0; i < v->count; i++) {
            ITEMS(a)[i] = sp_ps_pv_int(ps, ((const unsigned char *)v->p)[i]);
            if (!ITEMS(a)[i])
                return 0;
        }
        *items = ITEMS(a);
        return a->count;
    }
    *one = v;
    *items = one;
    return 1;
}

bool sp_ps_pvlist_add(struct ps *ps, struct pvlist *l, struct pv *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (cap > PS_MAX_ITEMS) {
            ps->abort = true;
            return false;
        }
        struct pv **nv = sp_ps_alloc(ps, cap * sizeof(*nv));
        if (!nv)
            return false;
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(*nv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

bool sp_ps_pvlist_add_all(struct ps *ps, struct pvlist *l, struct pv *v)
{
    struct pv **items, *one;
    size_t k = sp_ps_enumerate(ps, v, &items, &one);
    for (size_t i = 0; i < k; i++)
        if (!sp_ps_pvlist_add(ps, l, items[i]))
            return false;
    return true;
}

/* A list as PowerShell returns it: nothing -> $null, one -> the item. */
struct pv *sp_ps_pvlist_value(struct ps *ps, struct pvlist *l)
{
    if (l->n == 0)
        return sp_ps_pv_new(ps, PV_NULL);
    if (l->n == 1)
        return l->v[0];
    struct pv *a = sp_ps_pv_new(ps, PV_ARR);
    if (a) {
        a->p = l->v;
        a->count = l->n;
    }
    return a;
}

bool sp_ps_pv_equal(struct pv *a, struct pv *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->kind != b->kind)
        return false;
    switch (a->kind) {
    case PV_NULL:
    case PV_VOID:
        return true;
    case PV_BOOL:
    case PV_INT:
    case PV_CHAR:
        return a->i == b->i;
    case PV_STR:
    case PV_TYPE:
    case PV_CMD:
        return a->n == b->n && !memcmp(a->s, b->s, a->n);
    default:
        return false;
    }
}
