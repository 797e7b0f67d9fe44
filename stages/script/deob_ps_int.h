/*
 * deob_ps_int.h - private to the PowerShell decoders (deob_ps_*.c): the
 * folding engine's value model (struct pv), syntax tree (struct psn) and
 * pass state (struct ps), and the functions the files call across each
 * other, grouped by the file that defines them:
 *   deob_ps_launch.c  launcher command lines, -EncodedCommand
 *   deob_ps_value.c   pass arena, value constructors, conversions
 *   deob_ps_parse.c   tokenizer and parser: source -> struct psn
 *   deob_ps_eval.c    evaluation: variables, expressions, statements
 *   deob_ps_ops.c     operators on values: -f -join -split -replace, casts
 *   deob_ps_cmdlet.c  commands: cmdlets, aliases, Invoke-Expression
 *   deob_ps_dotnet.c  .NET members and New-Object
 *   deob_ps_fold.c    the decoder: known values written back into the text
 * Values, nodes and strings live in the pass's arena and die with it (a
 * struct pv * is borrowed; NULL means "not known").  One thread per pass.
 */
#ifndef SP_DEOB_PS_INT_H
#define SP_DEOB_PS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deob_int.h"

/* ---- values ------------------------------------------------------------- */

enum pv_kind {
    PV_NULL, PV_VOID, PV_BOOL, PV_INT, PV_CHAR, PV_STR, PV_ARR, PV_BYTES,
    PV_TYPE, PV_HASH, PV_METHOD, PV_STREAM, PV_READER, PV_SECURE, PV_CRED,
    PV_BLOCK, PV_VAROBJ, PV_ENC, PV_CMD, PV_MATCH, PV_OBJ
};

#define PVF_ASCII   0x01   /* STR: every byte < 0x80 */
#define PVF_CREATED 0x02   /* BLOCK: built from a string at run time */
#define PVF_NET     0x04   /* CRED: GetNetworkCredential() result */

/* A value.  STR: s/n (UTF-8), p/count = cached code points when not
 * ASCII.  ARR: p = struct pv *[count].  BYTES/STREAM: p = bytes, count.
 * METHOD: s/n = name, p = target (TYPE value for static methods).
 * CRED: p = SECURE.  VAROBJ: s/n = name, p = value (NULL if unknown).
 * TYPE/CMD/OBJ: s/n = name.  BLOCK/READER/SECURE/MATCH: s/n = text. */
struct pv {
    uint8_t kind;
    uint8_t fl;
    uint16_t ops;      /* obfuscation carried by intermediate objects */
    int64_t i;         /* BOOL, INT, CHAR, ENC */
    const char *s;
    size_t n;
    void *p;
    size_t count;
};

/* obfuscation operations seen while computing a value */
#define OP_CONCAT    0x0001u
#define OP_FORMAT    0x0002u
#define OP_CHARCODE  0x0004u
#define OP_REPLACE   0x0008u
#define OP_REVERSE   0x0010u
#define OP_BXOR      0x0020u
#define OP_BASE64    0x0040u
#define OP_DEFLATE   0x0080u
#define OP_SECURE    0x0100u
#define OP_BACKTICK  0x0200u
#define OP_SPLITJOIN 0x0400u
#define OP_VARIND    0x0800u
#define OP_TYPEVAR   0x1000u
#define OP_CHARPICK  0x2000u
#define OP_CALLOP    0x4000u
#define OP_IEX       0x8000u

#define ITEMS(v) ((struct pv **)(v)->p)

/* ---- syntax tree -------------------------------------------------------- */

enum psn_kind {
    N_STMTS = 1, N_PIPE, N_ASSIGN, N_CMD, N_PARAM, N_WORD, N_NUM, N_STR,
    N_XSTR, N_VAR, N_BIN, N_UN, N_CAST, N_TYPE, N_ARRAY, N_INDEX, N_MEMBER,
    N_PAREN, N_SUB, N_ARRSUB, N_HASH, N_BLOCK, N_KEYWORD, N_OPAQUE
};

#define NF_TICK   0x01   /* backtick escapes in the source */
#define NF_BRACED 0x02   /* ${name} */
#define NF_STATIC 0x04   /* :: member */
#define NF_CALL   0x08   /* member invoked with (args) */
#define NF_OPAQUE 0x10   /* keyword part that may not run, or run often */
#define NF_NUMOK  0x20   /* N_NUM holds an integer */
#define NF_KEYVAR 0x40   /* keyword child is a loop variable */

enum { VS_NONE, VS_KNOWN, VS_VARY };

enum binop {
    B_ADD = 1, B_SUB, B_MUL, B_DIV, B_MOD, B_RANGE, B_FORMAT, B_JOIN,
    B_SPLIT, B_REPLACE, B_BXOR, B_BAND, B_BOR, B_SHL, B_SHR, B_AS, B_IS,
    B_ISNOT, B_EQ, B_NE, B_GT, B_GE, B_LT, B_LE, B_LIKE, B_NOTLIKE,
    B_MATCH, B_NOTMATCH, B_CONTAINS, B_NOTCONTAINS, B_IN, B_NOTIN, B_AND,
    B_OR, B_XOR
};
#define B_CASE 0x100     /* case-sensitive variant (-creplace, -csplit) */

enum unop {
    U_NEG = 1, U_PLUS, U_NOT, U_BNOT, U_JOIN, U_SPLIT, U_PREINC, U_PREDEC,
    U_POSTINC, U_POSTDEC, U_COMMA
};

struct psn {
    uint8_t kind;
    uint8_t flags;
    uint8_t vstate;
    uint8_t ustate;      /* statement unwrap: VS_* */
    uint16_t op;
    size_t start, end;   /* span in the region */
    struct psn *a, *b, *c, *next;
    const char *s;       /* literal text / name (decoded) */
    size_t n;
    int64_t i;
    unsigned ops;        /* ops of the last evaluation */
    struct pv *val;      /* value when vstate == VS_KNOWN */
    const char *utext;   /* statement unwrap: the code */
    size_t un;
    unsigned uops;
};

/* ---- pass state --------------------------------------------------------- */

#define PS_ARENA_MAX   ((size_t)64 << 20)
#define PS_MAX_STEPS   4000000u
#define PS_MAX_DEPTH   240
#define PS_MAX_ITEMS   ((size_t)1 << 20)
#define PS_VAR_BUCKETS 128

struct pvar {
    struct pvar *next;
    const char *name;   /* lower case */
    size_t n;
    struct pv *val;     /* NULL = unknown */
};

struct read_rec {
    size_t start, end;
    const char *name;   /* lower case */
    size_t n;
};

struct asg_rec {
    struct psn *stmt;
    const char *name, *w2;
    size_t n, w2n;
    bool ok;
    bool removed;
};

struct repl {
    size_t start, end;
    const char *text;
    size_t n;
    bool consume;        /* the values it replaces are used up */
};

struct ps {
    struct deob_ctx *ctx;
    struct sp_arena ar;
    const char *s;       /* the region being folded */
    size_t n;
    struct pvar *vars[PS_VAR_BUCKETS];
    int opaque;          /* >0: code that may not run, or runs many times */
    struct psn *cur_stmt;
    struct psn *root_stmt;
    struct psn *unwrap_target;
    struct asg_rec *cur_asg;
    struct pv *under;    /* $_ */
    unsigned ops;
    size_t steps;
    bool abort;
    struct read_rec *reads;
    size_t nreads, capreads;
    struct asg_rec *asgs;
    size_t nasgs, capasgs;
    struct repl *repls;
    size_t nrepls, caprepls;
    unsigned pass_ops;
    bool consumed;
};

/* Output list of statements. */
struct pvlist {
    struct pv **v;
    size_t n, cap;
};

/* ---- deob_ps_launch.c --------------------------------------------------- */

/* True if name[0..len) abbreviates full (a C string) with at least min
 * characters, the way PowerShell matches parameter names. */
bool sp_ps_name_is_prefix(const char *name, size_t len, const char *full,
                          size_t min);

/* ---- deob_ps_value.c ---------------------------------------------------- */

/* Arena allocations of the pass.  NULL (and ps->abort set, bound
 * SP_DEOB_BOUND_OUTPUT) when the arena is full.  _alloc zero-fills;
 * _strdup and _lower NUL-terminate, _lower also lower-cases. */
void *sp_ps_alloc(struct ps *ps, size_t n);
char *sp_ps_strdup(struct ps *ps, const char *s, size_t n);
char *sp_ps_lower(struct ps *ps, const char *s, size_t n);
/* Grows a malloc'd array of the pass (reads, assignments, replacements)
 * to hold need elements; false (and ps->abort) past PS_MAX_ITEMS or when
 * out of memory.  Freed by the decoder at the end of the pass. */
bool sp_ps_grow(struct ps *ps, void **arr, size_t *cap, size_t need,
                size_t elem);

/* Value constructors, NULL when the arena is full. */
struct pv *sp_ps_pv_new(struct ps *ps, int kind);
/* A STR value referring to s (which must live as long as the pass). */
struct pv *sp_ps_pv_str_ref(struct ps *ps, const char *s, size_t n);
/* A STR value holding a copy of s. */
struct pv *sp_ps_pv_str(struct ps *ps, const char *s, size_t n);
struct pv *sp_ps_pv_cstr(struct ps *ps, const char *s);
/* A copy of b's text; NULL (and ps->abort) if b overflowed. */
struct pv *sp_ps_pv_buf(struct ps *ps, const struct sp_buf *b);
struct pv *sp_ps_pv_int(struct ps *ps, int64_t i);
struct pv *sp_ps_pv_char(struct ps *ps, int64_t c);
struct pv *sp_ps_pv_bool(struct ps *ps, bool b);
/* An ARR of count (unset) items. */
struct pv *sp_ps_pv_arr(struct ps *ps, size_t count);
/* A value of kind with s/n set (s is referred to, not copied). */
struct pv *sp_ps_pv_named(struct ps *ps, int kind, const char *s, size_t n);
/* A value of kind with a copy of b[0..n) as p/count. */
struct pv *sp_ps_pv_bytes(struct ps *ps, int kind, const void *b, size_t n);

/* Length and code point i of a STR value, in code points. */
size_t sp_ps_str_len(struct ps *ps, struct pv *v);
uint32_t sp_ps_str_at(struct ps *ps, struct pv *v, size_t i);

/* Conversions with PowerShell's rules; false or NULL when the result is
 * not known. */
bool sp_ps_is_nullish(const struct pv *v);
bool sp_ps_to_int(struct pv *v, int64_t *out);
/* PowerShell's string conversion; appends to b.  False if unknown. */
bool sp_ps_put_str(struct ps *ps, struct pv *v, struct sp_buf *b, int depth);
/* String form of v as (s, n) in the arena. */
bool sp_ps_to_str(struct ps *ps, struct pv *v, const char **s, size_t *n);
struct pv *sp_ps_to_strv(struct ps *ps, struct pv *v);
bool sp_ps_truthy(struct pv *v);
/* Items a pipeline would enumerate.  *one is scratch for a scalar. */
size_t sp_ps_enumerate(struct ps *ps, struct pv *v, struct pv ***items,
                       struct pv **one);
bool sp_ps_pv_equal(struct pv *a, struct pv *b);

/* Output lists of statements (arena-backed, bounded by PS_MAX_ITEMS). */
bool sp_ps_pvlist_add(struct ps *ps, struct pvlist *l, struct pv *v);
/* Adds the items v enumerates to. */
bool sp_ps_pvlist_add_all(struct ps *ps, struct pvlist *l, struct pv *v);
/* A list as PowerShell returns it: nothing -> $null, one -> the item. */
struct pv *sp_ps_pvlist_value(struct ps *ps, struct pvlist *l);

/* ---- deob_ps_parse.c ---------------------------------------------------- */

/* A character of a bare name: letters, digits, '_' and any non-ASCII
 * byte. */
bool sp_ps_is_word_char(int c);
/* Parses ps->s[0..ps->n) into its statement list (ps->abort is set when a
 * bound was hit). */
struct psn *sp_ps_parse(struct ps *ps);

/* ---- deob_ps_eval.c ----------------------------------------------------- */

/* Strips $ scopes (script:, global:, ...) and variable: from a name. */
void sp_ps_var_base(const char **s, size_t *n);
/* Sets a variable (val NULL: unknown; always unknown in opaque code). */
void sp_ps_var_set(struct ps *ps, const char *s, size_t n, struct pv *val);
/* $env:NAME: as the script set it, else the Windows default. */
struct pv *sp_ps_env_value(struct ps *ps, const char *s, size_t n);
/* Value of a variable (automatic ones included), NULL if unknown; node
 * (optional) records the read for the dead assignment pass. */
struct pv *sp_ps_read_var(struct ps *ps, struct psn *node, const char *s,
                          size_t n);
/* Wildcard match (* and ?), case-insensitive. */
bool sp_ps_wild_match(const char *pat, size_t pn, const char *s, size_t n);
/* The variable name a Get-Variable pattern resolves to. */
bool sp_ps_var_lookup_wild(struct ps *ps, const char *pat, size_t pn,
                           const char **name, size_t *nn);
/* Records that the current statement, when elem is its last pipeline
 * element, runs script (an Invoke-Expression and its builders). */
void sp_ps_mark_unwrap(struct ps *ps, struct psn *elem, struct pv *script,
                       unsigned ops);
/* Notes a variable written while an assignment statement is evaluated:
 * one that writes two other variables is not dropped as dead. */
void sp_ps_note_write(struct ps *ps, const char *s, size_t n);
/* Evaluates a node (bounded by PS_MAX_STEPS and the time budget). */
struct pv *sp_ps_ev(struct ps *ps, struct psn *n);
/* Evaluates a statement list; out (optional) gets the values it outputs.
 * False if the output is not fully known. */
bool sp_ps_ev_stmts(struct ps *ps, struct psn *list, struct pvlist *out);

/* ---- deob_ps_ops.c ------------------------------------------------------ */

/* Offset of pat in s (ci: case-insensitive), or (size_t)-1. */
size_t sp_ps_find_lit(const char *s, size_t n, const char *pat, size_t pn,
                      bool ci);
/* Splits s on the literal pat (or on any char of pat if anychar). */
bool sp_ps_split_into(struct ps *ps, struct pvlist *l, const char *s,
                      size_t n, const char *pat, size_t pn, bool ci,
                      bool anychar);
/* -split, -replace (r: a pattern, or a pattern and its replacement),
 * -join and -f. */
struct pv *sp_ps_op_split(struct ps *ps, struct pv *l, struct pv *r,
                          bool cs);
struct pv *sp_ps_op_replace_one(struct ps *ps, struct pv *l,
                                const char *pat, size_t pn, const char *rep,
                                size_t rn, bool cs);
struct pv *sp_ps_op_replace(struct ps *ps, struct pv *l, struct pv *r,
                            bool cs);
struct pv *sp_ps_op_join(struct ps *ps, struct pv *l, struct pv *sep);
struct pv *sp_ps_op_format(struct ps *ps, struct pv *fmtv, struct pv *args);
/* A type name lower-cased without "System.", into out[cap]. */
void sp_ps_type_norm(const char *t, size_t n, char *out, size_t cap);
/* [char]v and [type]v. */
struct pv *sp_ps_to_char(struct ps *ps, struct pv *v);
struct pv *sp_ps_cast(struct ps *ps, const char *tname, size_t tl,
                      struct pv *v);
/* Compares a and b the way -eq, -lt ... do (cs: case-sensitive); *ok
 * false if they do not compare. */
int sp_ps_cmp_values(struct ps *ps, struct pv *a, struct pv *b, bool cs,
                     bool *ok);
/* l + r and l..r. */
struct pv *sp_ps_ev_add(struct ps *ps, struct pv *l, struct pv *r);
struct pv *sp_ps_ev_range(struct ps *ps, struct pv *l, struct pv *r);
/* ConvertTo-SecureString str -Key keyv: the plain text as a SECURE
 * value, or NULL. */
struct pv *sp_ps_securestring_decrypt(struct ps *ps, struct pv *str,
                                      struct pv *keyv);

/* ---- deob_ps_cmdlet.c --------------------------------------------------- */

/* Records an assignment statement to name for the dead assignment pass
 * (top-level statements only). */
void sp_ps_record_asg(struct ps *ps, struct psn *stmt, const char *s,
                      size_t n, bool ok);
/* Evaluates a command (input: the pipeline's value if has_input, built
 * with in_ops). */
struct pv *sp_ps_ev_cmd(struct ps *ps, struct psn *n, struct pv *input,
                        bool has_input, unsigned in_ops);

/* ---- deob_ps_dotnet.c --------------------------------------------------- */

/* How PowerShell prints a method object of System.String, or NULL. */
const char *sp_ps_method_signature(const char *name, size_t n);
/* New-Object / [type]::new of tname with args. */
struct pv *sp_ps_new_object(struct ps *ps, const char *tname, size_t tl,
                            struct pv **args, size_t nargs);
/* [type]::name and value.name, invoked with args when call. */
struct pv *sp_ps_static_member(struct ps *ps, const char *type, size_t tl,
                               const char *name, struct pv **args,
                               struct psn **argn, size_t nargs, bool call,
                               struct psn *node);
struct pv *sp_ps_inst_member(struct ps *ps, struct pv *ov, const char *name,
                             struct pv **args, size_t nargs, bool call,
                             struct psn *node);

#endif /* SP_DEOB_PS_INT_H */
