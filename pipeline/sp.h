/*
 * sp.h - what every socpilot module shares: the error model, a bounded
 * growable buffer, a bump arena, and a few small helpers.
 *
 * Error model (librdkafka's idea): functions return an `enum sp_err`
 * (SP_OK == 0).  Open/config paths that need to say more fill a
 * caller-owned `struct sp_error` (code, message, retriable, fatal).
 * There is no thread-local "last error".
 *
 * Ownership vocabulary (jansson's): a function's comment says whether it
 * returns a *new* reference (caller frees), a *borrowed* one, or *steals*
 * its argument.  Every `_free(NULL)` is a no-op.
 *
 * Everything here is thread-compatible: an object is used by one thread at
 * a time; nothing here has global mutable state.
 */
#ifndef SP_H
#define SP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_VERSION "0.1.0"

#define SP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SP_UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define SP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SP_PRINTF(f, a)
#endif

enum sp_err {
    SP_OK = 0,
    SP_ERR_NOMEM,      /* allocation failed or a buffer hit its maximum */
    SP_ERR_INVALID,    /* bad argument or bad input */
    SP_ERR_CONFIG,     /* bad configuration */
    SP_ERR_IO,         /* file or socket error */
    SP_ERR_LIMIT,      /* a configured bound was reached */
    SP_ERR_NOTFOUND,   /* looked-up thing does not exist */
    SP_ERR_RETRY,      /* transient: try the same work again later */
    SP_ERR_TIMEOUT,    /* deadline passed */
    SP_ERR_STATE,      /* wrong state for this call */
    SP_ERR_REMOTE,     /* an external service answered with an error */
    SP_ERR__COUNT
};

/* Returns a static string; never NULL, also for out-of-range codes. */
const char *sp_strerror(enum sp_err err);

struct sp_error {
    enum sp_err code;
    bool retriable;
    bool fatal;
    char msg[512];
};

/* Sets err (if not NULL) and returns `code`, so callers can
 * `return sp_error_set(err, SP_ERR_CONFIG, "...")`. */
enum sp_err sp_error_set(struct sp_error *err, enum sp_err code,
                         const char *fmt, ...) SP_PRINTF(3, 4);
void sp_error_clear(struct sp_error *err);

/*
 * struct sp_buf - a growable byte buffer with a hard maximum.
 * data is always NUL-terminated (not counted in len) once anything was
 * appended.  Appending past `max` fails with SP_ERR_LIMIT and leaves the
 * buffer unchanged; `overflow` is then set so a writer can check once at
 * the end instead of after every call.
 */
struct sp_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;     /* 0 = SP_BUF_DEFAULT_MAX */
    bool overflow;
};

#define SP_BUF_DEFAULT_MAX ((size_t)64 << 20)

void sp_buf_init(struct sp_buf *b, size_t max);
void sp_buf_fini(struct sp_buf *b);
void sp_buf_reset(struct sp_buf *b);                  /* len = 0, keeps memory */
enum sp_err sp_buf_reserve(struct sp_buf *b, size_t extra);
enum sp_err sp_buf_put(struct sp_buf *b, const void *p, size_t n);
enum sp_err sp_buf_puts(struct sp_buf *b, const char *s);
enum sp_err sp_buf_putc(struct sp_buf *b, char c);
enum sp_err sp_buf_printf(struct sp_buf *b, const char *fmt, ...) SP_PRINTF(2, 3);
/* Steals the buffer's memory: returns it (new reference, free()) and
 * leaves b empty. */
char *sp_buf_steal(struct sp_buf *b, size_t *len);

/*
 * struct sp_arena - bump allocator for per-message and per-batch memory.
 * Allocations live until sp_arena_reset()/sp_arena_fini().  `max` bounds
 * the total; past it allocation returns NULL.
 */
struct sp_arena_chunk;
struct sp_arena {
    struct sp_arena_chunk *head;
    size_t used;    /* bytes handed out since the last reset */
    size_t max;     /* 0 = unbounded */
};

void sp_arena_init(struct sp_arena *a, size_t max);
void sp_arena_fini(struct sp_arena *a);
void sp_arena_reset(struct sp_arena *a);   /* keeps the first chunk */
void *sp_arena_alloc(struct sp_arena *a, size_t n);        /* 16-aligned */
void *sp_arena_calloc(struct sp_arena *a, size_t n);
char *sp_arena_strndup(struct sp_arena *a, const char *s, size_t n);
char *sp_arena_strdup(struct sp_arena *a, const char *s);
char *sp_arena_printf(struct sp_arena *a, const char *fmt, ...) SP_PRINTF(2, 3);
/* v in decimal, NUL-terminated, into out (SP_INT_BUF bytes); returns the
 * length.  The hot paths' number formatting: printf costs ten times more. */
#define SP_INT_BUF 21
size_t sp_fmt_int(char *out, int64_t v);
char *sp_arena_int(struct sp_arena *a, int64_t v);

/* Monotonic and wall clocks. */
int64_t sp_now_ms(void);        /* CLOCK_MONOTONIC, milliseconds */
int64_t sp_now_us(void);        /* CLOCK_MONOTONIC, microseconds */
int64_t sp_wall_us(void);       /* CLOCK_REALTIME, microseconds since epoch */

/* Reads a whole file (bounded by max bytes); returns a new malloc'd,
 * NUL-terminated buffer or NULL with err set. */
char *sp_read_file(const char *path, size_t max, size_t *len,
                   struct sp_error *err);

/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool sp_utf8_valid(const char *s, size_t n);
/* Length (2..4) of the valid multi-byte UTF-8 sequence at s (at most n
 * bytes), with its code point in *cp (may be NULL); 0 when the bytes
 * there are not one (ASCII bytes included: callers handle those). */
size_t sp_utf8_seq(const char *s, size_t n, uint32_t *cp);

/* ASCII case helpers (locale independent). */
static inline char sp_tolower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}
bool sp_strcaseeq(const char *a, const char *b);
bool sp_strncaseeq(const char *a, const char *b, size_t n);

#endif /* SP_H */
