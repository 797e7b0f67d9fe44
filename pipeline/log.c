/*
 * log.c - the process-wide logger declared in log.h.
 *
 * A line is built in three steps: the caller's message is formatted into
 * a bounded stack buffer (outside the lock), then, under the output lock,
 * registered secrets are masked in place, the line is escaped into one
 * static buffer sized for the worst case, and written with one fwrite()
 * and fflush().  Doing the masking under the lock lets sp_log_add_secret()
 * keep a simple sorted table without a second synchronisation scheme;
 * logging is not on the hot path, so one lock is enough.
 *
 * Escaping is what keeps alert content (attacker-controlled) from forging
 * lines: control characters, quotes, backslashes and invalid UTF-8 bytes
 * are escaped, and so are the Unicode characters that some viewers treat
 * as line breaks or that reorder text (C1 controls, U+2028/2029, bidi
 * overrides).  Valid UTF-8 text otherwise passes through unchanged.
 *
 * Any thread may call anything here; sp_log_setup() belongs at start-up.
 */
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest component name written; longer ones are cut. */
#define SP_LOG_COMP_MAX 128
/* The worst escaped byte is 6 characters ("\u0001"); the rest of a line
 * (timestamp, level, keys, markers) fits in the slack. */
#define SP_LOG_LINE_MAX (6 * (SP_LOG_MSG_MAX + SP_LOG_COMP_MAX) + 512)

struct sp_log_secret {
    char *s;
    size_t len;
};

static pthread_mutex_t sp_log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int sp_log_cur_level = SP_LOG_INFO;
/* Everything below is guarded by sp_log_lock. */
static enum sp_log_format sp_log_cur_fmt = SP_LOG_TEXT;
static FILE *sp_log_out;                  /* NULL = stderr */
static struct sp_buf *sp_log_cap;         /* test capture, borrowed */
static struct sp_log_secret sp_log_secrets[SP_LOG_SECRETS_MAX];
static size_t sp_log_nsecrets;            /* sorted by len, longest first */
static bool sp_log_secrets_full_said;
static char sp_log_line[SP_LOG_LINE_MAX];

static const char *const sp_log_level_names[] = {
    [SP_LOG_ERROR] = "error",
    [SP_LOG_WARN] = "warn",
    [SP_LOG_INFO] = "info",
    [SP_LOG_DEBUG] = "debug",
};

void sp_log_setup(enum sp_log_level level, enum sp_log_format fmt, FILE *out)
{
    atomic_store(&sp_log_cur_level, (int)level);
    pthread_mutex_lock(&sp_log_lock);
    sp_log_cur_fmt = fmt;
    sp_log_out = out;
    pthread_mutex_unlock(&sp_log_lock);
}

enum sp_err sp_log_level_parse(const char *s, enum sp_log_level *out)
{
    if (!s)
        return SP_ERR_INVALID;
    for (size_t i = 0; i < SP_ARRAY_SIZE(sp_log_level_names); i++) {
        if (sp_strcaseeq(s, sp_log_level_names[i])) {
            *out = (enum sp_log_level)i;
            return SP_OK;
        }
    }
    if (sp_strcaseeq(s, "warning")) {
        *out = SP_LOG_WARN;
        return SP_OK;
    }
    return SP_ERR_INVALID;
}

enum sp_err sp_log_format_parse(const char *s, enum sp_log_format *out)
{
    if (!s)
        return SP_ERR_INVALID;
    if (sp_strcaseeq(s, "text")) {
        *out = SP_LOG_TEXT;
        return SP_OK;
    }
    if (sp_strcaseeq(s, "json")) {
        *out = SP_LOG_JSON;
        return SP_OK;
    }
    return SP_ERR_INVALID;
}

const char *sp_log_level_name(enum sp_log_level level)
{
    if ((int)level < 0 || (size_t)level >= SP_ARRAY_SIZE(sp_log_level_names))
        return "unknown";
    return sp_log_level_names[level];
}

bool sp_log_enabled(enum sp_log_level level)
{
    return (int)level <= atomic_load_explicit(&sp_log_cur_level,
                                              memory_order_relaxed);
}

void sp_log_capture(struct sp_buf *buf)
{
    pthread_mutex_lock(&sp_log_lock);
    sp_log_cap = buf;
    pthread_mutex_unlock(&sp_log_lock);
}

/* ---- secrets ----------------------------------------------------------- */

void sp_log_add_secret(const char *secret)
{
    if (!secret)
        return;
    size_t len = strlen(secret);
    if (len < SP_LOG_SECRET_MIN)
        return;
    bool full = false;
    pthread_mutex_lock(&sp_log_lock);
    for (size_t i = 0; i < sp_log_nsecrets; i++) {
        if (sp_log_secrets[i].len == len &&
            memcmp(sp_log_secrets[i].s, secret, len) == 0)
            goto out;
    }
    if (sp_log_nsecrets == SP_LOG_SECRETS_MAX) {
        full = !sp_log_secrets_full_said;
        sp_log_secrets_full_said = true;
        goto out;
    }
    char *copy = strdup(secret);
    if (!copy)
        goto out;
    /* Insert keeping longest first: a secret that contains a shorter one
     * must be masked before the shorter one cuts it apart. */
    size_t at = 0;
    while (at < sp_log_nsecrets && sp_log_secrets[at].len >= len)
        at++;
    memmove(&sp_log_secrets[at + 1], &sp_log_secrets[at],
            (sp_log_nsecrets - at) * sizeof(sp_log_secrets[0]));
    sp_log_secrets[at].s = copy;
    sp_log_secrets[at].len = len;
    sp_log_nsecrets++;
out:
    pthread_mutex_unlock(&sp_log_lock);
    if (full)
        sp_log_warn("log", "more than %d secrets registered; the rest are "
                    "not masked", SP_LOG_SECRETS_MAX);
}

/* Replaces every registered secret in s[0..len) by "****" (never longer
 * than the secret) and returns the new length.  When the message was cut,
 * a tail that begins a secret is dropped as well, so a secret straddling
 * the cut does not leak its first bytes.  Caller holds the lock. */
static size_t sp_log_mask(char *s, size_t len, bool truncated)
{
    for (size_t i = 0; i < sp_log_nsecrets; i++) {
        const char *sec = sp_log_secrets[i].s;
        size_t slen = sp_log_secrets[i].len;
        size_t pos = 0;
        while (pos < len && len - pos >= slen) {
            char *hit = memmem(s + pos, len - pos, sec, slen);
            if (!hit)
                break;
            size_t at = (size_t)(hit - s);
            memcpy(s + at, "****", 4);
            memmove(s + at + 4, s + at + slen, len - at - slen);
            len -= slen - 4;
            pos = at + 4;
        }
        if (!truncated)
            continue;
        for (size_t k = SP_MIN(slen - 1, len); k > 0; k--) {
            if (memcmp(s + len - k, sec, k) == 0) {
                len -= k;
                break;
            }
        }
    }
    return len;
}

/* ---- escaping ---------------------------------------------------------- */

/* A bounded writer over sp_log_line.  The buffer is sized for the worst
 * case, so `full` only trips if that arithmetic is ever broken. */
struct sp_log_w {
    char *p;
    size_t len;
    size_t cap;
    bool full;
};

static void sp_log_put(struct sp_log_w *w, const char *s, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void sp_log_puts(struct sp_log_w *w, const char *s)
{
    sp_log_put(w, s, strlen(s));
}

static void sp_log_putf(struct sp_log_w *w, const char *fmt, ...)
    SP_PRINTF(2, 3);
static void sp_log_putf(struct sp_log_w *w, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        sp_log_put(w, tmp, SP_MIN((size_t)n, sizeof(tmp) - 1));
}

/* Code points written as \uXXXX although valid: C1 controls (NEL is a
 * line break to some tools), line/paragraph separators, and the marks
 * and overrides that reorder displayed text. */
static bool sp_log_cp_risky(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

/* Writes s[0..n) escaped for the inside of a double-quoted string: the
 * text format's (\xNN for bad bytes) or JSON's (\u00NN for controls, and
 * "\\xNN" - a visible backslash - for bytes that are not UTF-8, since a
 * JSON string cannot carry them). */
static void sp_log_escape(struct sp_log_w *w, const char *str, size_t n,
                          bool json)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n && !w->full) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' &&
               s[run] != '\\')
            run++;
        if (run > i) {
            sp_log_put(w, str + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        switch (c) {
        case '"': sp_log_puts(w, "\\\""); i++; continue;
        case '\\': sp_log_puts(w, "\\\\"); i++; continue;
        case '\n': sp_log_puts(w, "\\n"); i++; continue;
        case '\r': sp_log_puts(w, "\\r"); i++; continue;
        case '\t': sp_log_puts(w, "\\t"); i++; continue;
        default: break;
        }
        if (c < 0x80) { /* other C0 controls and DEL */
            sp_log_putf(w, json ? "\\u%04x" : "\\x%02x", c);
            i++;
            continue;
        }
        uint32_t cp = 0;
        size_t len = sp_utf8_seq((const char *)s + i, n - i, &cp);
        if (len == 0) {
            sp_log_putf(w, json ? "\\\\x%02x" : "\\x%02x", c);
            i++;
        } else if (sp_log_cp_risky(cp)) {
            sp_log_putf(w, "\\u%04x", (unsigned)cp);
            i += len;
        } else {
            sp_log_put(w, str + i, len);
            i += len;
        }
    }
}

/* A component name safe to write bare in the text format. */
static bool sp_log_bare(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == ':' || c == '/' || c == '@'))
            return false;
    }
    return true;
}

/* ---- writing ----------------------------------------------------------- */

static void sp_log_ts(char *out, size_t n)
{
    int64_t us = sp_wall_us();
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((us / 1000) % 1000));
}

/* Builds the line from the masked message; caller holds the lock. */
static size_t sp_log_build(enum sp_log_level level, const char *comp,
                           const char *msg, size_t len, size_t total,
                           uint64_t suppressed)
{
    struct sp_log_w w = {sp_log_line, 0, sizeof(sp_log_line), false};
    bool json = sp_log_cur_fmt == SP_LOG_JSON;
    char ts[96];
    sp_log_ts(ts, sizeof(ts));
    size_t clen = comp ? strnlen(comp, SP_LOG_COMP_MAX) : 0;

    if (json) {
        sp_log_putf(&w, "{\"ts\":\"%s\",\"level\":\"%s\"", ts,
                    sp_log_level_name(level));
        if (comp) {
            sp_log_puts(&w, ",\"comp\":\"");
            sp_log_escape(&w, comp, clen, true);
            sp_log_puts(&w, "\"");
        }
        sp_log_puts(&w, ",\"msg\":\"");
    } else {
        sp_log_putf(&w, "ts=%s level=%s", ts, sp_log_level_name(level));
        if (comp && sp_log_bare(comp, clen)) {
            sp_log_puts(&w, " comp=");
            sp_log_put(&w, comp, clen);
        } else if (comp) {
            sp_log_puts(&w, " comp=\"");
            sp_log_escape(&w, comp, clen, false);
            sp_log_puts(&w, "\"");
        }
        sp_log_puts(&w, " msg=\"");
    }
    sp_log_escape(&w, msg, len, json);
    if (total > SP_LOG_MSG_MAX)
        sp_log_putf(&w, "...[truncated, %zu bytes]", total);
    if (suppressed)
        sp_log_putf(&w, " (+%llu suppressed)", (unsigned long long)suppressed);
    sp_log_puts(&w, "\"");
    if (json && suppressed)
        sp_log_putf(&w, ",\"suppressed\":%llu", (unsigned long long)suppressed);
    sp_log_puts(&w, json ? "}\n" : "\n");
    if (w.full) {
        /* Unreachable by the sizing above; still end the line cleanly. */
        w.len = sizeof(sp_log_line) - 2;
        w.p[w.len++] = json ? ' ' : '"';
        w.p[w.len++] = '\n';
    }
    return w.len;
}

static void sp_log_emitv(enum sp_log_level level, const char *comp,
                         uint64_t suppressed, const char *fmt, va_list ap)
{
    if (!sp_log_enabled(level))
        return;
    char msg[SP_LOG_MSG_MAX + 1];
    int n = vsnprintf(msg, sizeof(msg), fmt ? fmt : "", ap);
    if (n < 0) {
        n = snprintf(msg, sizeof(msg), "(bad log format: %s)",
                     fmt ? fmt : "");
        if (n < 0)
            n = 0;
    }
    size_t total = (size_t)n;
    size_t len = SP_MIN(total, (size_t)SP_LOG_MSG_MAX);

    char cbuf[SP_LOG_COMP_MAX + 1];
    size_t clen = 0;
    if (comp) {
        clen = strnlen(comp, SP_LOG_COMP_MAX);
        memcpy(cbuf, comp, clen);
    }

    pthread_mutex_lock(&sp_log_lock);
    len = sp_log_mask(msg, len, total > len);
    if (comp) {
        clen = sp_log_mask(cbuf, clen, false);
        cbuf[clen] = '\0';
    }
    size_t line_len = sp_log_build(level, comp ? cbuf : NULL, msg, len, total,
                                   suppressed);
    if (sp_log_cap) {
        sp_buf_put(sp_log_cap, sp_log_line, line_len);
    } else {
        FILE *out = sp_log_out ? sp_log_out : stderr;
        fwrite(sp_log_line, 1, line_len, out);
        fflush(out);
    }
    pthread_mutex_unlock(&sp_log_lock);
}

void sp_log_vwrite(enum sp_log_level level, const char *comp, const char *fmt,
                   va_list ap)
{
    sp_log_emitv(level, comp, 0, fmt, ap);
}

void sp_log_write(enum sp_log_level level, const char *comp, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    sp_log_emitv(level, comp, 0, fmt, ap);
    va_end(ap);
}

void sp_log_write_sup(enum sp_log_level level, const char *comp,
                      uint64_t suppressed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sp_log_emitv(level, comp, suppressed, fmt, ap);
    va_end(ap);
}

/* ---- rate limiting ----------------------------------------------------- */

bool sp_log_rl_check(struct sp_log_rl *rl, int64_t every_ms,
                     uint64_t *suppressed)
{
    *suppressed = 0;
    if (!rl)
        return true;
    if (every_ms > 0) {
        int64_t now = sp_now_ms();
        if (now <= 0)
            now = 1;    /* 0 means "never logged" */
        int64_t last = __atomic_load_n(&rl->last_ms, __ATOMIC_ACQUIRE);
        /* Exactly one caller wins the window; the losers count. */
        if ((last != 0 && now - last < every_ms) ||
            !__atomic_compare_exchange_n(&rl->last_ms, &last, now, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            __atomic_add_fetch(&rl->suppressed, 1, __ATOMIC_RELAXED);
            return false;
        }
    }
    *suppressed = __atomic_exchange_n(&rl->suppressed, 0, __ATOMIC_ACQ_REL);
    return true;
}
