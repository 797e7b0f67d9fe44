/*
 * log.h - the process-wide logger: levelled, one line per event, in
 * key=value text or JSON, with secrets masked and attacker-controlled
 * text escaped so that it can never forge a line of its own.
 *
 * Owns: the logger state (level, format, output stream, the table of
 * registered secrets, the output lock).  sp_log_setup() runs once at
 * start-up, before other threads exist; every other function may be
 * called from any thread.  A line is formatted, masked and escaped into
 * a bounded buffer and written with one fwrite() + fflush() under the
 * output lock, so lines from different threads never interleave.
 *
 * Text:  ts=2026-11-28T17:00:00.123Z level=warn comp=stage:decode.0 msg="..."
 * JSON:  {"ts":"...","level":"warn","comp":"stage:decode.0","msg":"..."}
 */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sp.h"

enum sp_log_level { SP_LOG_ERROR, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };
enum sp_log_format { SP_LOG_TEXT, SP_LOG_JSON };

/* Longest formatted message kept; longer ones are cut and marked
 * "...[truncated, N bytes]". */
#define SP_LOG_MSG_MAX 4096
/* At most this many secrets are remembered; shorter ones are ignored. */
#define SP_LOG_SECRETS_MAX 64
#define SP_LOG_SECRET_MIN 4

/* Sets the level, the format and the stream (borrowed; NULL = stderr).
 * Before any call the logger writes text at info level to stderr.  May be
 * called again (for example by tests); the caller makes sure no other
 * thread is logging into a stream that is being replaced. */
void sp_log_setup(enum sp_log_level level, enum sp_log_format fmt, FILE *out);

/* "error" | "warn" (or "warning") | "info" | "debug", case-insensitive.
 * Returns SP_ERR_INVALID (and leaves *out alone) for anything else. */
enum sp_err sp_log_level_parse(const char *s, enum sp_log_level *out);
/* "text" | "json", case-insensitive. */
enum sp_err sp_log_format_parse(const char *s, enum sp_log_format *out);
/* Returns a static string: "error", "warn", "info", "debug". */
const char *sp_log_level_name(enum sp_log_level level);

bool sp_log_enabled(enum sp_log_level level);

/* Registers a secret (API key, password...): from now on every log line
 * has each occurrence replaced by "****".  Copies the string.  Strings
 * shorter than SP_LOG_SECRET_MIN bytes, duplicates, and secrets past the
 * first SP_LOG_SECRETS_MAX are ignored (the last case is reported once on
 * the log).  Longer secrets are masked before shorter ones, so a secret
 * that contains another one is masked whole. */
void sp_log_add_secret(const char *secret);

/* Formats and writes one line.  comp (a component such as
 * "stage:decode.0") may be NULL.  Prefer the sp_log_<level>() macros,
 * which skip the formatting when the level is disabled. */
void sp_log_write(enum sp_log_level level, const char *comp, const char *fmt,
                  ...) SP_PRINTF(3, 4);
void sp_log_vwrite(enum sp_log_level level, const char *comp, const char *fmt,
                   va_list ap) SP_PRINTF(3, 0);

#define sp_log_error(comp, ...)                                             \
    do {                                                                    \
        if (sp_log_enabled(SP_LOG_ERROR))                                   \
            sp_log_write(SP_LOG_ERROR, (comp), __VA_ARGS__);                \
    } while (0)
#define sp_log_warn(comp, ...)                                              \
    do {                                                                    \
        if (sp_log_enabled(SP_LOG_WARN))                                    \
            sp_log_write(SP_LOG_WARN, (comp), __VA_ARGS__);                 \
    } while (0)
#define sp_log_info(comp, ...)                                              \
    do {                                                                    \
        if (sp_log_enabled(SP_LOG_INFO))                                    \
            sp_log_write(SP_LOG_INFO, (comp), __VA_ARGS__);                 \
    } while (0)
#define sp_log_debug(comp, ...)                                             \
    do {                                                                    \
        if (sp_log_enabled(SP_LOG_DEBUG))                                   \
            sp_log_write(SP_LOG_DEBUG, (comp), __VA_ARGS__);                \
    } while (0)

/*
 * Rate limiting for repeated errors: at most one line per `every_ms` per
 * call site; the next line emitted ends with "(+N suppressed)".  Use one
 * zero-initialised static struct per call site:
 *
 *     static struct sp_log_rl rl;
 *     sp_log_warn_rl(&rl, 5000, "redis", "EVAL failed: %s", why);
 *
 * The fields are updated with atomic operations, so a call site may be
 * shared by threads.  every_ms <= 0 never suppresses.
 */
struct sp_log_rl {
    int64_t last_ms;        /* sp_now_ms() of the last line; 0 = never */
    uint64_t suppressed;    /* lines dropped since then */
};

/* Returns true when a line may be written now, and then stores in
 * *suppressed how many were dropped since the previous one. */
bool sp_log_rl_check(struct sp_log_rl *rl, int64_t every_ms,
                     uint64_t *suppressed);
/* sp_log_write() with " (+N suppressed)" appended when N > 0. */
void sp_log_write_sup(enum sp_log_level level, const char *comp,
                      uint64_t suppressed, const char *fmt, ...)
    SP_PRINTF(4, 5);

#define SP_LOG_RL_(lvl, rl_ptr, every_ms, comp, ...)                        \
    do {                                                                    \
        uint64_t sp_log_sup_ = 0;                                           \
        if (sp_log_enabled(lvl) &&                                          \
            sp_log_rl_check((rl_ptr), (every_ms), &sp_log_sup_))            \
            sp_log_write_sup((lvl), (comp), sp_log_sup_, __VA_ARGS__);      \
    } while (0)
#define sp_log_error_rl(rl_ptr, every_ms, comp, ...)                        \
    SP_LOG_RL_(SP_LOG_ERROR, rl_ptr, every_ms, comp, __VA_ARGS__)
#define sp_log_warn_rl(rl_ptr, every_ms, comp, ...)                         \
    SP_LOG_RL_(SP_LOG_WARN, rl_ptr, every_ms, comp, __VA_ARGS__)

/* For tests: while `buf` is not NULL, lines are appended to it (borrowed;
 * bounded by its own max) instead of being written to the stream.  Pass
 * NULL to stop.  Read the buffer only when no thread is logging. */
void sp_log_capture(struct sp_buf *buf);

#endif /* SP_LOG_H */
