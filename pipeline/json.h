/*
 * json.h - the hot path's JSON: a bounded DOM parser into an arena, and a
 * streaming writer into a struct sp_buf.
 *
 * Why not jansson here: every alert is parsed and written once per message
 * on the consumer thread, and jansson's per-node malloc and hash tables
 * cost ~5x what the rest of the decode stage costs.  This parser makes one
 * pass, allocates nodes and decoded strings from a per-message arena
 * (freed in one go), keeps each value's raw source span (so the original
 * document can be re-emitted without re-serialising), and enforces the
 * limits that attacker-controlled input needs: total size, nesting depth,
 * node count.  jansson stays the library for documents off the hot path
 * (config files, CLI output, tests).
 *
 * Objects keep members in document order; lookups are linear, which is
 * faster than hashing for the 10-60 member objects alerts have.
 * Duplicate keys are kept; lookups return the first.
 *
 * Thread-compatible: a parse uses only its arena.
 */
#ifndef SP_JSON_H
#define SP_JSON_H

#include "sp.h"

enum sp_json_type {
    SP_JSON_NULL,
    SP_JSON_FALSE,
    SP_JSON_TRUE,
    SP_JSON_NUMBER,
    SP_JSON_STRING,
    SP_JSON_ARRAY,
    SP_JSON_OBJECT,
};

struct sp_json {
    const char *key;        /* member name when inside an object, else NULL */
    struct sp_json *next;   /* next sibling */
    union {
        const char *s;          /* STRING: decoded, NUL-terminated; NUMBER: text */
        struct sp_json *child;  /* ARRAY/OBJECT: first element/member */
    } u;
    const char *src;        /* raw text of this value inside the input */
    uint32_t src_len;
    uint32_t n;             /* STRING/NUMBER: byte length; ARRAY/OBJECT: count */
    uint32_t key_len;
    uint8_t type;
};

enum sp_json_errcode {
    SP_JSON_OK = 0,
    SP_JSON_E_SYNTAX,     /* not JSON */
    SP_JSON_E_TRUNCATED,  /* input ended inside a value */
    SP_JSON_E_UTF8,       /* invalid UTF-8 */
    SP_JSON_E_DEPTH,      /* nesting deeper than max_depth */
    SP_JSON_E_SIZE,       /* input larger than max_bytes */
    SP_JSON_E_NODES,      /* more than max_nodes values, or arena full */
    SP_JSON_E_EMPTY,      /* nothing but white space */
    SP_JSON_E_NOMEM,      /* the arena is exhausted */
};

struct sp_json_limits {
    size_t max_bytes;     /* default 1 MiB */
    uint32_t max_depth;   /* default 64 */
    uint32_t max_nodes;   /* default 200000 */
};

#define SP_JSON_LIMITS_DEFAULT {(size_t)1 << 20, 64, 200000}

struct sp_json_error {
    enum sp_json_errcode code;
    size_t offset;        /* byte offset where the problem was seen */
    char msg[96];
};

/* Short stable name for an error code ("not_json", "truncated",
 * "invalid_utf8", "too_deep", "too_large", "too_many_nodes", "empty",
 * "out_of_memory"). */
const char *sp_json_errname(enum sp_json_errcode code);

/*
 * Parses exactly one JSON value spanning text[0..len) (white space around
 * it allowed).  Nodes and strings are allocated from `a` (borrowed; they
 * live until the arena is reset).  lim may be NULL for defaults.
 * Returns the root, or NULL with err filled.
 * \u0000 and lone surrogates decode to U+FFFD so every decoded string is a
 * valid NUL-terminated UTF-8 C string.
 */
struct sp_json *sp_json_parse(struct sp_arena *a, const char *text,
                              size_t len, const struct sp_json_limits *lim,
                              struct sp_json_error *err);

/*
 * Like sp_json_parse but parses the first value and stops: *used is set
 * to the offset just past it (and its trailing white space).  For JSON
 * lines and concatenated documents.
 */
struct sp_json *sp_json_parse_prefix(struct sp_arena *a, const char *text,
                                     size_t len,
                                     const struct sp_json_limits *lim,
                                     size_t *used, struct sp_json_error *err);

/* ---- lookups (all NULL-safe, all borrowed) ----------------------------- */

struct sp_json *sp_json_get(const struct sp_json *obj, const char *key);
/* Case-insensitive key lookup (Log Analytics column names vary in case). */
struct sp_json *sp_json_iget(const struct sp_json *obj, const char *key);
/* Member's string value, or NULL if absent or not a string. */
const char *sp_json_str(const struct sp_json *obj, const char *key);
/* Value as a string: strings as is, numbers as their text, true/false;
 * NULL for null/absent/arrays/objects. */
const char *sp_json_scalar(const struct sp_json *v);
bool sp_json_is_str(const struct sp_json *v);
bool sp_json_int(const struct sp_json *v, int64_t *out);   /* exact integer */
bool sp_json_double(const struct sp_json *v, double *out);

#define sp_json_foreach(parent, it)                                          \
    for (struct sp_json *it = ((parent) && ((parent)->type == SP_JSON_ARRAY || \
                                             (parent)->type == SP_JSON_OBJECT) \
                                   ? (parent)->u.child                       \
                                   : NULL);                                  \
         it; it = it->next)

/* ---- writer ------------------------------------------------------------- */

/*
 * struct sp_jw - writes compact JSON into a struct sp_buf, inserting the
 * commas and colons itself.  Errors (buffer limit, depth past 64) are
 * sticky: check sp_jw_ok() once at the end.  String values are escaped
 * and invalid UTF-8 is replaced by U+FFFD, so the output is always valid
 * JSON whatever the input bytes.
 */
struct sp_jw {
    struct sp_buf *b;
    uint64_t first;     /* bit d set: next item at depth d is the first */
    uint32_t depth;
    bool after_key;
    bool bad;
};

void sp_jw_init(struct sp_jw *w, struct sp_buf *b);
bool sp_jw_ok(const struct sp_jw *w);
void sp_jw_obj_open(struct sp_jw *w);
void sp_jw_obj_close(struct sp_jw *w);
void sp_jw_arr_open(struct sp_jw *w);
void sp_jw_arr_close(struct sp_jw *w);
void sp_jw_key(struct sp_jw *w, const char *key);
void sp_jw_str(struct sp_jw *w, const char *s);           /* NULL -> null */
void sp_jw_strn(struct sp_jw *w, const char *s, size_t n);
void sp_jw_int(struct sp_jw *w, int64_t v);
void sp_jw_double(struct sp_jw *w, double v);
void sp_jw_bool(struct sp_jw *w, bool v);
void sp_jw_null(struct sp_jw *w);
/* Trusted, already valid JSON text (e.g. a parsed value's src span). */
void sp_jw_raw(struct sp_jw *w, const char *json, size_t n);
/* RFC 3339 UTC string from microseconds since the epoch; null when
 * us == SP_TIME_NONE. */
void sp_jw_time(struct sp_jw *w, int64_t us);

/* Key + value shorthands; the *_opt forms write nothing for NULL/none. */
void sp_jw_kstr(struct sp_jw *w, const char *key, const char *s);
void sp_jw_kstr_opt(struct sp_jw *w, const char *key, const char *s);
void sp_jw_kint(struct sp_jw *w, const char *key, int64_t v);
void sp_jw_kbool(struct sp_jw *w, const char *key, bool v);
void sp_jw_ktime(struct sp_jw *w, const char *key, int64_t us);

/* Appends s escaped as a JSON string (with quotes) to b. */
void sp_json_escape(struct sp_buf *b, const char *s, size_t n);

/* ---- time ---------------------------------------------------------------- */

#define SP_TIME_NONE INT64_MIN

/*
 * Parses the timestamp forms alert sources use into microseconds since
 * the epoch (UTC): RFC 3339 / ISO 8601 with 'T' or ' ' separator, with
 * 0-9 fraction digits (extra digits truncated), 'Z', "+hh:mm", "+hhmm"
 * or no zone (taken as UTC).  Returns false for anything else, for a day
 * the month does not have (2023-02-29, 2024-04-31), and for a time whose
 * UTC value is outside years 0000-9999 (what sp_time_format writes).
 */
bool sp_time_parse(const char *s, int64_t *us);
/* Formats as "2024-01-02T03:04:05Z" / ".123Z" / ".123456Z" (shortest of
 * the three that is exact).  out must hold 32 bytes; returns length. */
size_t sp_time_format(int64_t us, char *out);

#endif /* SP_JSON_H */
