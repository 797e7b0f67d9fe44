/*
 * sp.c - the shared basics declared in sp.h: error strings, the bounded
 * buffer, the bump arena, clocks, file reading and UTF-8 validation.
 *
 * No global mutable state; every function is safe to call from any thread
 * on objects that thread owns.
 */
#include "sp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const sp_err_names[SP_ERR__COUNT] = {
    [SP_OK] = "success",
    [SP_ERR_NOMEM] = "out of memory or buffer limit",
    [SP_ERR_INVALID] = "invalid argument or input",
    [SP_ERR_CONFIG] = "configuration error",
    [SP_ERR_IO] = "I/O error",
    [SP_ERR_LIMIT] = "limit reached",
    [SP_ERR_NOTFOUND] = "not found",
    [SP_ERR_RETRY] = "transient failure, retry",
    [SP_ERR_TIMEOUT] = "timed out",
    [SP_ERR_STATE] = "wrong state",
    [SP_ERR_REMOTE] = "remote service error",
};

const char *sp_strerror(enum sp_err err)
{
    if ((int)err < 0 || err >= SP_ERR__COUNT || !sp_err_names[err])
        return "unknown error";
    return sp_err_names[err];
}

enum sp_err sp_error_set(struct sp_error *err, enum sp_err code,
                         const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->retriable = (code == SP_ERR_RETRY || code == SP_ERR_TIMEOUT);
    err->fatal = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void sp_error_clear(struct sp_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

/* ---- buffer ------------------------------------------------------------ */

void sp_buf_init(struct sp_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : SP_BUF_DEFAULT_MAX;
}

void sp_buf_fini(struct sp_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->overflow = false;
}

void sp_buf_reset(struct sp_buf *b)
{
    b->len = 0;
    b->overflow = false;
    if (b->data)
        b->data[0] = '\0';
}

enum sp_err sp_buf_reserve(struct sp_buf *b, size_t extra)
{
    size_t max = b->max ? b->max : SP_BUF_DEFAULT_MAX;
    if (extra > max || b->len > max - extra) {
        b->overflow = true;
        return SP_ERR_LIMIT;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return SP_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > max + 1)
        cap = max + 1;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->overflow = true;
        return SP_ERR_NOMEM;
    }
    b->data = p;
    b->cap = cap;
    return SP_OK;
}

enum sp_err sp_buf_put(struct sp_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        if (!b->data && sp_buf_reserve(b, 0) != SP_OK)
            return SP_ERR_NOMEM;
        if (b->data)
            b->data[b->len] = '\0';
        return SP_OK;
    }
    enum sp_err e = sp_buf_reserve(b, n);
    if (e)
        return e;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SP_OK;
}

enum sp_err sp_buf_puts(struct sp_buf *b, const char *s)
{
    return sp_buf_put(b, s, strlen(s));
}

enum sp_err sp_buf_putc(struct sp_buf *b, char c)
{
    /* The fast path keeps to max too: a buffer grown by earlier, larger
     * contents has room past a smaller max set since. */
    if (b->len + 1 < b->cap && b->len < (b->max ? b->max : SP_BUF_DEFAULT_MAX)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return SP_OK;
    }
    return sp_buf_put(b, &c, 1);
}

enum sp_err sp_buf_printf(struct sp_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return SP_ERR_INVALID;
    if ((size_t)n < sizeof(tmp))
        return sp_buf_put(b, tmp, (size_t)n);
    enum sp_err e = sp_buf_reserve(b, (size_t)n);
    if (e)
        return e;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SP_OK;
}

char *sp_buf_steal(struct sp_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p) {
        p = calloc(1, 1);
        if (len)
            *len = 0;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    b->overflow = false;
    return p;
}

/* ---- arena ------------------------------------------------------------- */

struct sp_arena_chunk {
    struct sp_arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char mem[];
};

#define SP_ARENA_CHUNK 16384

void sp_arena_init(struct sp_arena *a, size_t max)
{
    a->head = NULL;
    a->used = 0;
    a->max = max;
}

void sp_arena_fini(struct sp_arena *a)
{
    if (!a)
        return;
    struct sp_arena_chunk *c = a->head;
    while (c) {
        struct sp_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used = 0;
}

void sp_arena_reset(struct sp_arena *a)
{
    struct sp_arena_chunk *c = a->head;
    if (!c)
        return;
    /* Keep the last (oldest, first-allocated) chunk only if it is the
     * standard size; everything else goes back to malloc. */
    struct sp_arena_chunk *keep = NULL;
    while (c) {
        struct sp_arena_chunk *n = c->next;
        if (!keep && c->size == SP_ARENA_CHUNK && !n)
            keep = c;
        else
            free(c);
        c = n;
    }
    a->head = keep;
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->used = 0;
}

void *sp_arena_alloc(struct sp_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->max && (n > a->max || a->used > a->max - n))
        return NULL;
    struct sp_arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > SP_ARENA_CHUNK / 4 ? n : SP_ARENA_CHUNK;
        struct sp_arena_chunk *nc = malloc(sizeof(*nc) + size);
        if (!nc)
            return NULL;
        nc->size = size;
        nc->used = 0;
        if (size != SP_ARENA_CHUNK && c) {
            /* Big one-off allocation: slot it behind the current chunk so
             * the current chunk keeps serving small allocations. */
            nc->next = c->next;
            c->next = nc;
            nc->used = n;
            a->used += n;
            return nc->mem;
        }
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->mem + c->used;
    c->used += n;
    a->used += n;
    return p;
}

void *sp_arena_calloc(struct sp_arena *a, size_t n)
{
    void *p = sp_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *sp_arena_strndup(struct sp_arena *a, const char *s, size_t n)
{
    char *p = sp_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sp_arena_strdup(struct sp_arena *a, const char *s)
{
    return sp_arena_strndup(a, s, strlen(s));
}

char *sp_arena_printf(struct sp_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = sp_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t sp_fmt_int(char *out, int64_t v)
{
    char tmp[SP_INT_BUF];
    size_t n = 0, len = 0;
    /* In unsigned arithmetic, so INT64_MIN negates too. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

char *sp_arena_int(struct sp_arena *a, int64_t v)
{
    char tmp[SP_INT_BUF];
    size_t n = sp_fmt_int(tmp, v);
    return sp_arena_strndup(a, tmp, n);
}

/* ---- clocks ------------------------------------------------------------ */

int64_t sp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sp_now_ms(void)
{
    return sp_now_us() / 1000;
}

int64_t sp_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- files ------------------------------------------------------------- */

char *sp_read_file(const char *path, size_t max, size_t *len,
                   struct sp_error *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        sp_error_set(err, SP_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct sp_buf b;
    sp_buf_init(&b, max);
    char tmp[65536];
    size_t n;
    errno = 0;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (sp_buf_put(&b, tmp, n) != SP_OK) {
            sp_error_set(err, SP_ERR_LIMIT, "%s: larger than %zu bytes",
                         path, max);
            sp_buf_fini(&b);
            if (f != stdin)
                fclose(f);
            return NULL;
        }
    }
    bool bad = ferror(f);
    int why = errno;        /* say why: a directory reads as EISDIR */
    if (f != stdin)
        fclose(f);
    if (bad) {
        sp_error_set(err, SP_ERR_IO, "%s: %s", path,
                     why ? strerror(why) : "read error");
        sp_buf_fini(&b);
        return NULL;
    }
    return sp_buf_steal(&b, len);
}

/* ---- text -------------------------------------------------------------- */

size_t sp_utf8_seq(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    size_t need;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n <= need)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((need == 2 && v < 0x800) || (need == 3 && v < 0x10000) ||
        v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    if (cp)
        *cp = v;
    return need + 1;
}

bool sp_utf8_valid(const char *str, size_t n)
{
    const char *s = str;
    const char *end = s + n;
    while (s < end) {
        /* Fast path: 8 ASCII bytes at a time. */
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (w & 0x8080808080808080ULL)
                break;
            s += 8;
        }
        if (s >= end)
            break;
        if ((unsigned char)*s < 0x80) {
            s++;
            continue;
        }
        size_t l = sp_utf8_seq(s, (size_t)(end - s), NULL);
        if (!l)
            return false;
        s += l;
    }
    return true;
}

bool sp_strcaseeq(const char *a, const char *b)
{
    while (*a && *b) {
        if (sp_tolower(*a) != sp_tolower(*b))
            return false;
        a++;
        b++;
    }
    return *a == *b;
}

bool sp_strncaseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sp_tolower(a[i]) != sp_tolower(b[i]))
            return false;
        if (!a[i])
            return true;
    }
    return true;
}
