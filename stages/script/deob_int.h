/*
 * deob_int.h - private to the deobfuscation engine (deob*.c): the per-run
 * context every decoder gets, the decoder signature, and the shared helpers
 * (base64, UTF-16, UTF-8, zlib with the ratio guard, AES, Windows default
 * environment, language guess).
 *
 * A decoder reads the current layer text and, if it can make progress,
 * writes the complete next layer into out->buf (bounded by the remaining
 * output budget) and names its technique.  Decoders own no state between
 * calls; everything they allocate is freed before they return.
 *
 * Same thread rules as deob.h: a context is used by one thread.
 */
#ifndef SP_DEOB_INT_H
#define SP_DEOB_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deob.h"
#include "sp.h"

enum deob_rc {
    DEOB_NONE = 0,   /* no progress */
    DEOB_PROGRESS,   /* out holds the next layer */
    DEOB_STOP,       /* a bound was hit (see ctx->bounds); stop decoding */
    DEOB_NOMEM       /* allocation failed */
};

struct deob_ctx {
    struct sp_deob_limits lim;
    int64_t deadline_us;
    size_t budget;       /* bytes the next layer may take */
    unsigned bounds;     /* SP_DEOB_BOUND_* seen so far */
    unsigned ticks;      /* amortises clock reads */
};

struct deob_out {
    struct sp_buf buf;        /* the next layer's text, max = ctx->budget */
    const char *technique;    /* static id */
};

typedef enum deob_rc (*deob_decoder_fn)(struct deob_ctx *ctx, const char *s,
                                        size_t n, struct deob_out *out);

/* True once the time budget is spent (sets SP_DEOB_BOUND_TIME).  Cheap:
 * reads the clock every 64th call. */
bool deob_time_up(struct deob_ctx *ctx);
/* The same, reading the clock now (for coarse-grained steps). */
bool deob_time_check(struct deob_ctx *ctx);

/* Maps a buffer failure to a decoder result: overflow of the layer budget
 * is a bound (DEOB_STOP, BOUND_OUTPUT), anything else DEOB_NOMEM. */
enum deob_rc deob_buf_rc(struct deob_ctx *ctx, const struct sp_buf *b);

/* ---- languages ---------------------------------------------------------- */

enum deob_lang { DEOB_LANG_UNKNOWN = 0, DEOB_LANG_PS, DEOB_LANG_CMD,
                 DEOB_LANG_SH };

enum deob_lang deob_lang_detect(const char *s, size_t n);
const char *deob_lang_name(enum deob_lang l);

/* The first command word of s: skips blanks, quotes, '@', carets and a
 * directory path; copies the lower-cased basename without ".exe" into
 * word (NUL-terminated, truncated to cap-1).  *end (optional) gets the
 * offset just after the word. */
void deob_first_word(const char *s, size_t n, char *word, size_t cap,
                     size_t *end);

/* ---- text helpers ------------------------------------------------------- */

static inline bool deob_isalnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

static inline bool deob_isalpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool deob_isspace(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

int deob_hexval(int c);                     /* -1 if not a hex digit */
bool deob_ci_eqn(const char *a, size_t an, const char *b); /* b: C string */
bool deob_ci_prefix(const char *s, size_t n, const char *prefix);
/* Case-insensitive search of needle (C string) in s[0..n); returns the
 * offset or (size_t)-1. */
size_t deob_ci_find(const char *s, size_t n, const char *needle);

/* UTF-8: appends code point cp (invalid ones as U+FFFD). */
enum sp_err deob_utf8_put(struct sp_buf *b, uint32_t cp);
/* Decodes one code point at s[*i]; invalid bytes give U+FFFD and advance
 * by one. */
uint32_t deob_utf8_next(const char *s, size_t n, size_t *i);
/* Appends s with invalid UTF-8 and NUL bytes replaced by U+FFFD. */
enum sp_err deob_utf8_sanitize(struct sp_buf *out, const char *s, size_t n);

/* ---- encodings ---------------------------------------------------------- */

static inline bool deob_b64_char(int c)
{
    return deob_isalnum(c) || c == '+' || c == '/';
}

/* Decodes base64 (standard alphabet; '-' and '_' also accepted; blanks
 * skipped; padding optional) appending bytes to out.  False if s is not
 * base64 (out may then hold a partial result). */
bool deob_b64_decode(const char *s, size_t n, struct sp_buf *out);
/* UTF-16LE bytes to UTF-8 (surrogate pairs joined, strays as U+FFFD). */
enum sp_err deob_utf16le_to_utf8(const unsigned char *b, size_t n,
                                 struct sp_buf *out);
/* True if b looks like text a person or a shell would read: mostly
 * printable, some letters.  Used before accepting guessed encodings. */
bool deob_text_plausible(const unsigned char *b, size_t n);
/* True if b is UTF-16LE of mostly-ASCII text (every odd byte zero). */
bool deob_looks_utf16le(const unsigned char *b, size_t n);

#define DEOB_Z_RAW  0   /* raw deflate (DeflateStream) */
#define DEOB_Z_GZIP 1   /* gzip (GzipStream) */
#define DEOB_Z_AUTO 2   /* zlib or gzip header */

/* Inflates in[0..n) into out, bounded by max_ratio * n (at least 1 KiB)
 * and max_output; a bound sets ctx->bounds.  Returns false on corrupt or
 * over-bound data.  A truncated stream yields what was decoded. */
bool deob_inflate(struct deob_ctx *ctx, const unsigned char *in, size_t n,
                  int mode, struct sp_buf *out);

/* AES-CBC decryption with a 16/24/32-byte key; n must be a multiple of 16.
 * Removes PKCS#7 padding; *outlen gets the plain length.  False on a bad
 * key length or padding. */
bool deob_aes_cbc_decrypt(const unsigned char *key, size_t keylen,
                          const unsigned char iv[16],
                          const unsigned char *ct, size_t n,
                          unsigned char *out, size_t *outlen);

/* ---- Windows defaults --------------------------------------------------- */

struct deob_env {
    const char *name;
    const char *value;
};

/* Default environment of a Windows 10 session of user "user"; NULL-name
 * terminated. */
extern const struct deob_env deob_env_defaults[];
/* Value of a default variable (case-insensitive name), or NULL. */
const char *deob_env_lookup(const char *name, size_t n);

/* ---- decoders (deob_ps_*.c, deob_cmd*.c, deob_sh.c) --------------------- */

enum deob_rc deob_ps_encoded(struct deob_ctx *ctx, const char *s, size_t n,
                             struct deob_out *out);
enum deob_rc deob_ps_launcher(struct deob_ctx *ctx, const char *s, size_t n,
                              struct deob_out *out);
enum deob_rc deob_ps_fold(struct deob_ctx *ctx, const char *s, size_t n,
                          struct deob_out *out);

enum deob_rc deob_cmd_env(struct deob_ctx *ctx, const char *s, size_t n,
                          struct deob_out *out);
enum deob_rc deob_cmd_caret(struct deob_ctx *ctx, const char *s, size_t n,
                            struct deob_out *out);
enum deob_rc deob_cmd_emulate(struct deob_ctx *ctx, const char *s, size_t n,
                              struct deob_out *out);

enum deob_rc deob_sh_base64_pipe(struct deob_ctx *ctx, const char *s,
                                 size_t n, struct deob_out *out);
enum deob_rc deob_sh_escapes(struct deob_ctx *ctx, const char *s, size_t n,
                             struct deob_out *out);
enum deob_rc deob_sh_script_b64(struct deob_ctx *ctx, const char *s,
                                size_t n, struct deob_out *out);

/* PowerShell launcher parsing (deob_ps_launch.c), shared by the PowerShell
 * decoders: finds `powershell|pwsh[.exe] <args>` in s. */
struct deob_launcher {
    size_t word_start;     /* the powershell word */
    size_t args_start;     /* first byte after the word */
    size_t enc_flag;       /* offset of an -EncodedCommand flag, or -1 */
    size_t script_start;   /* the script (or encoded) argument ... */
    size_t script_end;     /* ... its end (quotes excluded) */
    bool quoted;           /* script was "..." */
    bool braces;           /* script was {...} */
    bool encoded;          /* script is -EncodedCommand base64 */
    bool has_script;
};

bool deob_find_launcher(const char *s, size_t n, size_t from,
                        struct deob_launcher *l);

#endif /* SP_DEOB_INT_H */
