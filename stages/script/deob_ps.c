/*
 * deob_ps.c - PowerShell decoders: -EncodedCommand (every abbreviation),
 * launcher quoting (deob_ps_launcher), and the folding engine
 * (deob_ps_fold): the script is parsed into a small AST of the pwsh
 * grammar (expression vs argument mode), evaluated statement by statement
 * over a model of constant values (strings, chars, arrays, bytes, streams,
 * SecureStrings, types, script blocks, Windows defaults), and each known
 * sub-expression computed by an obfuscation operation is replaced by its
 * literal; Invoke-Expression of a known string (and the IEX builders)
 * becomes that code; assignments left dead are dropped.  Nothing runs.
 * Bounded by parse depth, evaluation steps, a per-pass arena, the run's
 * time budget and the zlib ratio guard.  Called by the driver only; one
 * thread per context.
 */
#include "deob_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Launcher command lines
 * ====================================================================== */

/* Matches w (lower case) at s[i] allowing carets before each letter;
 * returns the end offset or 0. */
static size_t match_caret_word(const char *s, size_t n, size_t i,
                               const char *w)
{
    for (const char *p = w; *p; p++) {
        while (i < n && s[i] == '^')
            i++;
        if (i >= n || sp_tolower(s[i]) != *p)
            return 0;
        i++;
    }
    return i;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool name_is_prefix(const char *name, size_t len, const char *full,
                           size_t min)
{
    size_t fl = strlen(full);
    return len >= min && len <= fl && !strncmp(name, full, len);
}

enum flag_kind { FLAG_SWITCH, FLAG_VALUE, FLAG_ENC, FLAG_CMD, FLAG_FILE };

static enum flag_kind classify_flag(const char *name, size_t len)
{
    if (len == 0)
        return FLAG_SWITCH;
    if ((len == 2 && !strncmp(name, "ec", 2)) ||
        name_is_prefix(name, len, "encodedcommand", 1))
        return FLAG_ENC;
    if (name_is_prefix(name, len, "command", 1) ||
        (len == 3 && !strncmp(name, "cwa", 3)) ||
        name_is_prefix(name, len, "commandwithargs", 8))
        return FLAG_CMD;
    if (name_is_prefix(name, len, "file", 1))
        return FLAG_FILE;
    static const struct {
        const char *full;
        size_t min;
    } vals[] = {
        {"executionpolicy", 2}, {"ep", 2}, {"windowstyle", 1},
        {"version", 1}, {"inputformat", 2}, {"outputformat", 1},
        {"psconsolefile", 3}, {"configurationname", 4},
        {"workingdirectory", 2}, {"wd", 2}, {"settingsfile", 2},
        {"custompipename", 2}, {"encodedarguments", 8}, {"ea", 2},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(vals); i++)
        if (name_is_prefix(name, len, vals[i].full, vals[i].min))
            return FLAG_VALUE;
    return FLAG_SWITCH;
}

/* End of one argv-style argument starting at i. */
static size_t arg_end(const char *s, size_t n, size_t i)
{
    bool q = false;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && s[i + 1] == '"') {
            i += 2;
            continue;
        }
        if (c == '"')
            q = !q;
        else if (!q && is_blank(c))
            break;
        i++;
    }
    return i;
}

static size_t skip_blank(const char *s, size_t n, size_t i)
{
    while (i < n && (is_blank(s[i]) || s[i] == '^'))
        i++;
    return i;
}

/* Closing quote of a "..." argument at s[i] == '"' (\" and "" skipped),
 * or n. */
static size_t close_quote(const char *s, size_t n, size_t i)
{
    for (size_t j = i + 1; j < n; j++) {
        if (s[j] == '\\' && j + 1 < n && s[j + 1] == '"') {
            j++;
            continue;
        }
        if (s[j] == '"') {
            if (j + 1 < n && s[j + 1] == '"') {
                j++;
                continue;
            }
            return j;
        }
    }
    return n;
}

static size_t close_brace(const char *s, size_t n, size_t i)
{
    int depth = 0;
    char q = 0;
    for (size_t j = i; j < n; j++) {
        char c = s[j];
        if (q) {
            if (c == q)
                q = 0;
            continue;
        }
        if (c == '\'' || c == '"')
            q = c;
        else if (c == '{')
            depth++;
        else if (c == '}' && --depth == 0)
            return j;
    }
    return n;
}

bool deob_find_launcher(const char *s, size_t n, size_t from,
                        struct deob_launcher *l)
{
    size_t quotes = 0;
    for (size_t k = 0; k < from && k < n; k++)
        quotes += s[k] == '"';
    for (size_t i = from; i < n; i++) {
        char c = sp_tolower(s[i]);
        if (s[i] == '"')
            quotes++;
        if (c != 'p')
            continue;
        if (i > 0 && !strchr(" \t\r\n\"'\\/(&|;,={^:", s[i - 1]))
            continue;
        size_t e = match_caret_word(s, n, i, "powershell");
        if (!e)
            e = match_caret_word(s, n, i, "pwsh");
        if (!e)
            continue;
        size_t x = match_caret_word(s, n, e, ".exe");
        if (x)
            e = x;
        while (e < n && s[e] == '^')
            e++;
        if (e < n && !strchr(" \t\r\n\"',;)", s[e]))
            continue;
        memset(l, 0, sizeof(*l));
        size_t ws = i;
        while (ws > 0 && !strchr(" \t\r\n\"'(&|;,=", s[ws - 1]))
            ws--;
        if (ws > 0 && s[ws - 1] == '"' && e < n && s[e] == '"') {
            ws--;
            e++;
        }
        l->word_start = ws;
        l->args_start = e;
        l->enc_flag = (size_t)-1;

        /* where the launcher ends: the close of an enclosing quote */
        size_t end = n, qpar = quotes;
        for (size_t k = ws; k < i; k++)
            qpar -= s[k] == '"';
        if (qpar % 2) {
            for (size_t k = n; k-- > e;) {
                if (s[k] == '"') {
                    end = k;
                    break;
                }
            }
        }
        while (end > e && is_blank(s[end - 1]))
            end--;

        size_t j = e;
        for (;;) {
            j = skip_blank(s, end, j);
            if (j >= end)
                return true;
            if (s[j] == '-' || s[j] == '/') {
                size_t ae = arg_end(s, end, j);
                char name[40];
                size_t nl = 0;
                for (size_t k = j + 1; k < ae && s[k] != ':'; k++) {
                    if (s[k] == '^' || s[k] == '-')
                        continue;
                    if (nl + 1 < sizeof(name))
                        name[nl++] = sp_tolower(s[k]);
                }
                name[nl] = '\0';
                enum flag_kind fk = classify_flag(name, nl);
                bool attached = memchr(s + j, ':', ae - j) != NULL;
                if (fk == FLAG_FILE) {
                    l->script_start = l->script_end = ae;
                    return true;
                }
                if (fk == FLAG_SWITCH || (fk == FLAG_VALUE && attached)) {
                    j = ae;
                    continue;
                }
                if (fk == FLAG_VALUE) {
                    j = arg_end(s, end, skip_blank(s, end, ae));
                    continue;
                }
                size_t v = skip_blank(s, end, ae);
                if (v >= end)
                    return true;
                if (fk == FLAG_ENC) {
                    l->enc_flag = j;
                    l->encoded = true;
                    l->has_script = true;
                    l->script_start = v;
                    l->script_end = arg_end(s, end, v);
                    return true;
                }
                j = v;
            }
            /* the script: the rest of the launcher */
            l->has_script = true;
            l->script_start = j;
            l->script_end = end;
            if (s[j] == '"') {
                size_t q = close_quote(s, end, j);
                if (q < end && skip_blank(s, end, q + 1) >= end) {
                    l->quoted = true;
                    l->script_start = j + 1;
                    l->script_end = q;
                }
            } else if (s[j] == '{') {
                size_t q = close_brace(s, end, j);
                if (q < end && skip_blank(s, end, q + 1) >= end) {
                    l->braces = true;
                    l->script_start = j + 1;
                    l->script_end = q;
                }
            }
            return true;
        }
    }
    return false;
}

/* Where a replacement of the launcher may start: the powershell word, or
 * the very beginning when only a `cmd /c`-style prefix precedes it.
 * *open_quote tells whether that prefix opened a quote. */
static size_t launcher_cut(const char *s, size_t ws, bool *open_quote)
{
    char w[32];
    size_t wend;
    *open_quote = false;
    deob_first_word(s, ws, w, sizeof(w), &wend);
    if (strcmp(w, "cmd") && strcmp(w, "start"))
        return ws;
    size_t quotes = 0;
    for (size_t i = 0; i < wend; i++)
        quotes += s[i] == '"';
    for (size_t i = wend; i < ws; i++) {
        char c = s[i];
        if (c == '"') {
            quotes++;
            continue;
        }
        if (is_blank(c) || c == ',' || c == ';' || c == '^')
            continue;
        if (c == '/') {
            while (i + 1 < ws && !is_blank(s[i + 1]) && s[i + 1] != '"')
                i++;
            continue;
        }
        return ws;
    }
    *open_quote = quotes % 2 == 1;
    return 0;
}

/* Writes s with [rs, re) replaced by rep, eating the closing quote of a
 * dropped cmd prefix. */
static void splice_launcher(struct sp_buf *b, const char *s, size_t n,
                            size_t rs, size_t re, bool open_quote,
                            const char *rep, size_t rn)
{
    if (open_quote) {
        size_t k = re;
        while (k < n && is_blank(s[k]))
            k++;
        if (k < n && s[k] == '"')
            re = k + 1;
    }
    sp_buf_put(b, s, rs);
    sp_buf_put(b, rep, rn);
    sp_buf_put(b, s + re, n - re);
}

enum deob_rc deob_ps_encoded(struct deob_ctx *ctx, const char *s, size_t n,
                             struct deob_out *out)
{
    struct deob_launcher l;
    size_t from = 0;
    for (int tries = 0; tries < 64 && from < n &&
                        deob_find_launcher(s, n, from, &l);
         tries++) {
        from = l.args_start;
        if (!l.encoded)
            continue;
        struct sp_buf clean, raw, text;
        sp_buf_init(&clean, l.script_end - l.script_start + 1);
        sp_buf_init(&raw, l.script_end - l.script_start + 1);
        sp_buf_init(&text, ctx->budget ? ctx->budget : 1);
        for (size_t k = l.script_start; k < l.script_end; k++)
            if (s[k] != '^' && s[k] != '"' && s[k] != '\'')
                sp_buf_putc(&clean, s[k]);
        bool ok = clean.len >= 4 &&
                  deob_b64_decode(clean.data, clean.len, &raw) &&
                  raw.len >= 2;
        if (ok) {
            const unsigned char *b = (const unsigned char *)raw.data;
            /* PowerShell wants UTF-16LE; a UTF-8 payload is accepted when
             * it reads as text */
            if (deob_looks_utf16le(b, raw.len))
                ok = deob_utf16le_to_utf8(b, raw.len, &text) == SP_OK;
            else if (deob_text_plausible(b, raw.len))
                ok = sp_buf_put(&text, raw.data, raw.len) == SP_OK;
            else if (raw.len % 2 == 0)
                ok = deob_utf16le_to_utf8(b, raw.len, &text) == SP_OK;
            else
                ok = false;
        }
        enum deob_rc rc = DEOB_NONE;
        if (ok) {
            bool oq;
            size_t rs = launcher_cut(s, l.word_start, &oq);
            size_t re = l.script_end;
            if (re < n && s[re] == '"' && l.script_start > 0 &&
                s[l.script_start - 1] == '"')
                re++;
            splice_launcher(&out->buf, s, n, rs, re, oq, text.data,
                            text.len);
            out->technique = "powershell.encoded_command";
            rc = out->buf.overflow ? deob_buf_rc(ctx, &out->buf)
                                   : DEOB_PROGRESS;
        } else if (text.overflow) {
            rc = deob_buf_rc(ctx, &text);
        }
        sp_buf_fini(&clean);
        sp_buf_fini(&raw);
        sp_buf_fini(&text);
        if (rc != DEOB_NONE)
            return rc;
    }
    return DEOB_NONE;
}

/* Resolves the script text of a launcher the way cmd.exe and then the
 * C runtime split it: carets before cmd metacharacters outside cmd's
 * quote state, then argv rules (\" and "" inside quotes), arguments
 * joined by one space. */
static void launcher_script(const char *s, size_t i, size_t end,
                            struct sp_buf *b)
{
    bool cq = false, q = false, started = false;
    while (i < end) {
        while (i < end && is_blank(s[i]) && !q)
            i++;
        if (i >= end)
            break;
        if (started)
            sp_buf_putc(b, ' ');
        started = true;
        while (i < end) {
            char c = s[i];
            if (c == '^' && !cq && i + 1 < end && strchr("|&<>()^", s[i + 1])) {
                sp_buf_putc(b, s[i + 1]);
                i += 2;
                continue;
            }
            if (c == '\\') {
                size_t k = i;
                while (k < end && s[k] == '\\')
                    k++;
                size_t nbs = k - i;
                if (k < end && s[k] == '"') {
                    for (size_t m = 0; m < nbs / 2; m++)
                        sp_buf_putc(b, '\\');
                    if (nbs % 2) {
                        sp_buf_putc(b, '"');
                        cq = !cq;
                        i = k + 1;
                    } else {
                        i = k;
                    }
                    continue;
                }
                sp_buf_put(b, s + i, nbs);
                i = k;
                continue;
            }
            if (c == '"') {
                cq = !cq;
                if (q && i + 1 < end && s[i + 1] == '"') {
                    sp_buf_putc(b, '"');
                    cq = !cq;
                    i += 2;
                    continue;
                }
                q = !q;
                i++;
                continue;
            }
            if (!q && is_blank(c))
                break;
            sp_buf_putc(b, c);
            i++;
        }
    }
}

enum deob_rc deob_ps_launcher(struct deob_ctx *ctx, const char *s, size_t n,
                              struct deob_out *out)
{
    struct deob_launcher l;
    if (!deob_find_launcher(s, n, 0, &l) || !l.has_script || l.encoded ||
        l.braces)
        return DEOB_NONE;
    /* only a launcher that is the whole command line (maybe behind
     * cmd /c): one inside another program's string keeps its quoting */
    bool oq0;
    size_t lead = 0;
    while (lead < l.word_start && is_blank(s[lead]))
        lead++;
    if (lead != l.word_start && launcher_cut(s, l.word_start, &oq0) != 0)
        return DEOB_NONE;
    size_t a = l.script_start, e = l.script_end;
    if (l.quoted) {
        a--;
        e++;
    }
    bool needs = false;
    for (size_t k = a; k < e && !needs; k++) {
        if (s[k] == '\\' && k + 1 < e && s[k + 1] == '"')
            needs = true;
        else if (s[k] == '^' && k + 1 < e && strchr("|&<>()", s[k + 1]))
            needs = true;
        else if (l.quoted && k > a && k + 1 < e - 1 && s[k] == '"' &&
                 s[k + 1] == '"')
            needs = true;
        else if (!l.quoted && s[a] == '"' && k > a && s[k] == '"')
            needs = true;
    }
    if (!needs)
        return DEOB_NONE;
    struct sp_buf script;
    sp_buf_init(&script, ctx->budget ? ctx->budget : 1);
    launcher_script(s, a, e, &script);
    bool oq;
    size_t rs = launcher_cut(s, l.word_start, &oq);
    splice_launcher(&out->buf, s, n, rs, e, oq,
                    script.data ? script.data : "", script.len);
    bool over = script.overflow;
    sp_buf_fini(&script);
    if (over || out->buf.overflow)
        return deob_buf_rc(ctx, &out->buf);
    out->technique = "powershell.launcher";
    return DEOB_PROGRESS;
}

/* ======================================================================
 * The folding engine: values
 * ====================================================================== */

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

enum { ENC_UTF8, ENC_UNICODE, ENC_BIGENDIAN, ENC_ASCII, ENC_LATIN1,
       ENC_UTF32 };

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

/* A step is named after its most telling operation, in this order. */
static const struct {
    unsigned op;
    const char *id;
} op_technique[] = {
    {OP_SECURE, "powershell.securestring"},
    {OP_DEFLATE, "powershell.deflate"},
    {OP_BASE64, "powershell.base64"},
    {OP_BXOR, "powershell.bxor"},
    {OP_REVERSE, "powershell.reverse"},
    {OP_FORMAT, "powershell.format_operator"},
    {OP_REPLACE, "powershell.replace"},
    {OP_CHARCODE, "powershell.char_codes"},
    {OP_CONCAT, "powershell.concat"},
    {OP_SPLITJOIN, "powershell.split_join"},
    {OP_IEX, "powershell.iex_unwrap"},
    {OP_CHARPICK, "powershell.string_index"},
    {OP_CALLOP, "powershell.call_operator"},
    {OP_VARIND | OP_TYPEVAR, "powershell.variables"},
    {OP_BACKTICK, "powershell.backtick"},
};

/* ======================================================================
 * The folding engine: syntax tree
 * ====================================================================== */

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

/* ======================================================================
 * The folding engine: pass state
 * ====================================================================== */

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

static void *ps_alloc(struct ps *ps, size_t n)
{
    void *p = sp_arena_calloc(&ps->ar, n);
    if (!p) {
        ps->abort = true;
        ps->ctx->bounds |= SP_DEOB_BOUND_OUTPUT;
    }
    return p;
}

static char *ps_strdup(struct ps *ps, const char *s, size_t n)
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

static char *ps_lower(struct ps *ps, const char *s, size_t n)
{
    char *p = ps_strdup(ps, s, n);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = sp_tolower(p[i]);
    return p;
}

/* Growable arrays of the pass (malloc'd, bounded). */
static bool grow(struct ps *ps, void **arr, size_t *cap, size_t need,
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

static struct pv *pv_new(struct ps *ps, int kind)
{
    struct pv *v = ps_alloc(ps, sizeof(*v));
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
static struct pv *pv_str_ref(struct ps *ps, const char *s, size_t n)
{
    struct pv *v = pv_new(ps, PV_STR);
    if (!v)
        return NULL;
    v->s = s ? s : "";
    v->n = n;
    if (bytes_ascii(v->s, n))
        v->fl |= PVF_ASCII;
    return v;
}

static struct pv *pv_str(struct ps *ps, const char *s, size_t n)
{
    char *c = ps_strdup(ps, s, n);
    return c ? pv_str_ref(ps, c, n) : NULL;
}

static struct pv *pv_cstr(struct ps *ps, const char *s)
{
    return pv_str_ref(ps, s, strlen(s));
}

static struct pv *pv_buf(struct ps *ps, const struct sp_buf *b)
{
    if (b->overflow) {
        ps->abort = true;
        return NULL;
    }
    return pv_str(ps, b->data ? b->data : "", b->len);
}

static struct pv *pv_int(struct ps *ps, int64_t i)
{
    struct pv *v = pv_new(ps, PV_INT);
    if (v)
        v->i = i;
    return v;
}

static struct pv *pv_char(struct ps *ps, int64_t c)
{
    struct pv *v = pv_new(ps, PV_CHAR);
    if (v)
        v->i = c;
    return v;
}

static struct pv *pv_bool(struct ps *ps, bool b)
{
    struct pv *v = pv_new(ps, PV_BOOL);
    if (v)
        v->i = b;
    return v;
}

static struct pv *pv_arr(struct ps *ps, size_t count)
{
    if (count > PS_MAX_ITEMS) {
        ps->abort = true;
        return NULL;
    }
    struct pv *v = pv_new(ps, PV_ARR);
    if (!v)
        return NULL;
    v->count = count;
    v->p = count ? ps_alloc(ps, count * sizeof(struct pv *)) : NULL;
    if (count && !v->p)
        return NULL;
    return v;
}

#define ITEMS(v) ((struct pv **)(v)->p)

static struct pv *pv_named(struct ps *ps, int kind, const char *s, size_t n)
{
    struct pv *v = pv_new(ps, kind);
    if (v) {
        v->s = s;
        v->n = n;
    }
    return v;
}

static struct pv *pv_bytes(struct ps *ps, int kind, const void *b, size_t n)
{
    struct pv *v = pv_new(ps, kind);
    if (!v)
        return NULL;
    unsigned char *c = n ? ps_alloc(ps, n) : NULL;
    if (n && !c)
        return NULL;
    if (n)
        memcpy(c, b, n);
    v->p = c;
    v->count = n;
    return v;
}

/* ---- strings as code points ---- */

static size_t str_len(struct ps *ps, struct pv *v);

/* Code points of a non-ASCII string, cached on the value. */
static const uint32_t *str_cps(struct ps *ps, struct pv *v)
{
    if (v->p)
        return v->p;
    uint32_t *cp = ps_alloc(ps, (v->n + 1) * sizeof(uint32_t));
    if (!cp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < v->n;)
        cp[k++] = deob_utf8_next(v->s, v->n, &i);
    v->p = cp;
    v->count = k;
    return cp;
}

static size_t str_len(struct ps *ps, struct pv *v)
{
    if (v->fl & PVF_ASCII)
        return v->n;
    return str_cps(ps, v) ? v->count : 0;
}

static uint32_t str_at(struct ps *ps, struct pv *v, size_t i)
{
    if (v->fl & PVF_ASCII)
        return (unsigned char)v->s[i];
    const uint32_t *cp = str_cps(ps, v);
    return cp ? cp[i] : 0xFFFD;
}

/* ---- conversions ---- */

static bool is_nullish(const struct pv *v)
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

static bool to_int(struct pv *v, int64_t *out)
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

static const char *method_signature(const char *name, size_t n);

/* PowerShell's string conversion; appends to b.  False if unknown. */
static bool put_str(struct ps *ps, struct pv *v, struct sp_buf *b, int depth)
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
            if (!put_str(ps, ITEMS(v)[i], b, depth + 1))
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
        const char *sig = method_signature(v->s, v->n);
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
static bool to_str(struct ps *ps, struct pv *v, const char **s, size_t *n)
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
    bool ok = put_str(ps, v, &b, 0) && !b.overflow;
    if (ok) {
        *s = ps_strdup(ps, b.data ? b.data : "", b.len);
        *n = b.len;
        ok = *s != NULL;
    }
    sp_buf_fini(&b);
    return ok;
}

static struct pv *to_strv(struct ps *ps, struct pv *v)
{
    const char *s;
    size_t n;
    if (!v)
        return NULL;
    if (v->kind == PV_STR)
        return v;
    return to_str(ps, v, &s, &n) ? pv_str_ref(ps, s, n) : NULL;
}

static bool truthy(struct pv *v)
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
static size_t enumerate(struct ps *ps, struct pv *v, struct pv ***items,
                        struct pv **one)
{
    if (!v || is_nullish(v)) {
        *items = NULL;
        return 0;
    }
    if (v->kind == PV_ARR) {
        *items = ITEMS(v);
        return v->count;
    }
    if (v->kind == PV_BYTES) {
        struct pv *a = pv_arr(ps, v->count);
        if (!a)
            return 0;
        for (size_t i = 0; i < v->count; i++) {
            ITEMS(a)[i] = pv_int(ps, ((const unsigned char *)v->p)[i]);
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

/* Output list of statements. */
struct pvlist {
    struct pv **v;
    size_t n, cap;
};

static bool pvlist_add(struct ps *ps, struct pvlist *l, struct pv *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (cap > PS_MAX_ITEMS) {
            ps->abort = true;
            return false;
        }
        struct pv **nv = ps_alloc(ps, cap * sizeof(*nv));
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

static bool pvlist_add_all(struct ps *ps, struct pvlist *l, struct pv *v)
{
    struct pv **items, *one;
    size_t k = enumerate(ps, v, &items, &one);
    for (size_t i = 0; i < k; i++)
        if (!pvlist_add(ps, l, items[i]))
            return false;
    return true;
}

/* A list as PowerShell returns it: nothing -> $null, one -> the item. */
static struct pv *pvlist_value(struct ps *ps, struct pvlist *l)
{
    if (l->n == 0)
        return pv_new(ps, PV_NULL);
    if (l->n == 1)
        return l->v[0];
    struct pv *a = pv_new(ps, PV_ARR);
    if (a) {
        a->p = l->v;
        a->count = l->n;
    }
    return a;
}

static bool pv_equal(struct pv *a, struct pv *b)
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

/* ======================================================================
 * The folding engine: parser
 * ====================================================================== */

struct psp {
    struct ps *ps;
    const char *s;
    size_t n, i;
    int depth;
    int nest;          /* inside ( or [: newlines are blanks */
    bool nocomma;      /* method arguments: ',' separates */
    struct sp_buf tmp; /* literal being decoded */
};

static struct psn *p_stmts(struct psp *p, int close);
static struct psn *p_stmt(struct psp *p);
static struct psn *p_pipeline(struct psp *p);
static struct psn *p_expr(struct psp *p);
static struct psn *p_unary(struct psp *p);
static struct psn *p_postfix(struct psp *p, struct psn *n);
static struct psn *p_primary(struct psp *p);

static int pc(struct psp *p)
{
    return p->i < p->n ? (unsigned char)p->s[p->i] : 0;
}

static int pk(struct psp *p, size_t k)
{
    return p->i + k < p->n ? (unsigned char)p->s[p->i + k] : 0;
}

static struct psn *mk(struct psp *p, int kind, size_t start)
{
    struct psn *n = ps_alloc(p->ps, sizeof(*n));
    if (n) {
        n->kind = (uint8_t)kind;
        n->start = start;
        n->end = p->i;
    }
    return n;
}

static bool is_word_char(int c)
{
    return deob_isalnum(c) || c == '_' || c >= 0x80;
}

/* Blanks, line continuations and comments; newlines only inside ( [. */
static void skip_ws(struct psp *p)
{
    for (;;) {
        int c = pc(p);
        if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
            p->i++;
        } else if (c == '`' && (pk(p, 1) == '\n' || pk(p, 1) == '\r')) {
            p->i += 2;
            if (pc(p) == '\n')
                p->i++;
        } else if (c == 0xC2 && pk(p, 1) == 0xA0) {
            p->i += 2;
        } else if (c == '<' && pk(p, 1) == '#') {
            size_t e = p->i + 2;
            while (e + 1 < p->n && !(p->s[e] == '#' && p->s[e + 1] == '>'))
                e++;
            p->i = SP_MIN(e + 2, p->n);
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n' && p->s[p->i] != '\r')
                p->i++;
        } else if (p->nest > 0 && (c == '\n' || c == '\r')) {
            p->i++;
        } else {
            return;
        }
    }
}

static void skip_wsnl(struct psp *p)
{
    for (;;) {
        skip_ws(p);
        if (pc(p) == '\n' || pc(p) == '\r')
            p->i++;
        else
            return;
    }
}

/* Case-insensitive keyword at the cursor, followed by a non-word char. */
static bool at_kw(struct psp *p, const char *kw)
{
    size_t k = strlen(kw);
    if (p->i + k > p->n || !sp_strncaseeq(p->s + p->i, kw, k))
        return false;
    int c = p->i + k < p->n ? (unsigned char)p->s[p->i + k] : 0;
    return !is_word_char(c) && c != '-';
}

/* Skips a balanced span from an opening bracket at the cursor. */
static void skip_balanced(struct psp *p)
{
    int depth = 0;
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '\'' || c == '"') {
            size_t j = p->i + 1;
            while (j < p->n && p->s[j] != c) {
                if (c == '"' && p->s[j] == '`')
                    j++;
                j++;
            }
            p->i = SP_MIN(j + 1, p->n);
            continue;
        }
        if (c == '`') {
            p->i = SP_MIN(p->i + 2, p->n);
            continue;
        }
        if (c == '(' || c == '{' || c == '[')
            depth++;
        else if (c == ')' || c == '}' || c == ']') {
            if (--depth <= 0) {
                p->i++;
                return;
            }
        }
        p->i++;
    }
}

/* Error recovery: to the next statement separator at this level. */
static void skip_to_sep(struct psp *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ';' || c == '\n' || c == '\r' || c == ')' || c == '}' ||
            c == ']')
            return;
        if (c == '(' || c == '{' || c == '[' || c == '\'' || c == '"') {
            if (c == '\'' || c == '"') {
                size_t j = p->i + 1;
                while (j < p->n && p->s[j] != c) {
                    if (c == '"' && p->s[j] == '`')
                        j++;
                    j++;
                }
                p->i = SP_MIN(j + 1, p->n);
            } else {
                skip_balanced(p);
            }
            continue;
        }
        if (c == '`')
            p->i++;
        p->i++;
    }
}

/* Decodes a backtick escape (the char after the tick at p->s[j]) into b;
 * returns true if it was an obfuscation tick (no special meaning). */
static bool tick_escape(struct psp *p, size_t j, struct sp_buf *b)
{
    char c = p->s[j];
    switch (c) {
    case '0':
        sp_buf_putc(b, '\0');
        return false;
    case 'a':
        sp_buf_putc(b, '\a');
        return false;
    case 'b':
        sp_buf_putc(b, '\b');
        return false;
    case 'e':
        sp_buf_putc(b, 0x1B);
        return false;
    case 'f':
        sp_buf_putc(b, '\f');
        return false;
    case 'n':
        sp_buf_putc(b, '\n');
        return false;
    case 'r':
        sp_buf_putc(b, '\r');
        return false;
    case 't':
        sp_buf_putc(b, '\t');
        return false;
    case 'v':
        sp_buf_putc(b, '\v');
        return false;
    default:
        sp_buf_putc(b, c);
        return deob_isalnum((unsigned char)c);
    }
}

static const char *tmp_take(struct psp *p, size_t *n)
{
    *n = p->tmp.len;
    const char *s = ps_strdup(p->ps, p->tmp.data ? p->tmp.data : "",
                              p->tmp.len);
    sp_buf_reset(&p->tmp);
    return s;
}

/* A bareword (command name or argument). */
static struct psn *p_word(struct psp *p, bool cmdname)
{
    size_t start = p->i;
    bool tick = false;
    sp_buf_reset(&p->tmp);
    while (p->i < p->n) {
        int c = pc(p);
        if (deob_isspace(c) || strchr(";|&(){},", c) || c == '\'' ||
            c == '"' || (!cmdname && (c == '<' || c == '>')))
            break;
        if (c == '`' && p->i + 1 < p->n) {
            if (pk(p, 1) == '\n' || pk(p, 1) == '\r')
                break;
            if (tick_escape(p, p->i + 1, &p->tmp))
                tick = true;
            p->i += 2;
            continue;
        }
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    if (p->i == start)
        return NULL;
    struct psn *n = mk(p, N_WORD, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    if (tick)
        n->flags |= NF_TICK;
    return n->s ? n : NULL;
}

/* Scans a number at the cursor; true (and advances) only if the whole
 * token is numeric. */
static bool scan_number(struct psp *p, int64_t *out, bool *isint)
{
    size_t j = p->i;
    bool neg = false;
    if (j < p->n && (p->s[j] == '-' || p->s[j] == '+'))
        neg = p->s[j++] == '-';
    uint64_t v = 0;
    size_t d = 0;
    *isint = true;
    if (j + 1 < p->n && p->s[j] == '0' &&
        (p->s[j + 1] == 'x' || p->s[j + 1] == 'X')) {
        j += 2;
        while (j < p->n && deob_hexval((unsigned char)p->s[j]) >= 0 &&
               d < 16) {
            v = v * 16 + (uint64_t)deob_hexval((unsigned char)p->s[j]);
            j++, d++;
        }
    } else {
        while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') {
            if (v < (uint64_t)1e17)
                v = v * 10 + (uint64_t)(p->s[j] - '0');
            else
                *isint = false;
            j++, d++;
        }
        if (j + 1 < p->n && p->s[j] == '.' && p->s[j + 1] >= '0' &&
            p->s[j + 1] <= '9') {
            *isint = false;
            j++;
            while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9')
                j++;
        }
        if (d && j < p->n && (p->s[j] == 'e' || p->s[j] == 'E') &&
            j + 1 < p->n && (deob_isalnum((unsigned char)p->s[j + 1]) ||
                             p->s[j + 1] == '-')) {
            size_t k = j + 1;
            if (p->s[k] == '-' || p->s[k] == '+')
                k++;
            if (k < p->n && p->s[k] >= '0' && p->s[k] <= '9') {
                *isint = false;
                j = k;
                while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9')
                    j++;
            }
        }
    }
    if (d == 0)
        return false;
    static const char *const sfx[] = {"kb", "mb", "gb", "tb", "pb"};
    for (size_t k = 0; k < SP_ARRAY_SIZE(sfx); k++) {
        if (j + 2 <= p->n && sp_strncaseeq(p->s + j, sfx[k], 2) &&
            !(j + 2 < p->n && is_word_char((unsigned char)p->s[j + 2]))) {
            for (size_t m = 0; m <= k; m++)
                v = v < ((uint64_t)1 << 50) ? v * 1024 : v;
            j += 2;
            break;
        }
    }
    if (j < p->n && (p->s[j] == 'l' || p->s[j] == 'L' || p->s[j] == 'd' ||
                     p->s[j] == 'D') &&
        !(j + 1 < p->n && is_word_char((unsigned char)p->s[j + 1])))
        j++;
    if (j < p->n && (is_word_char((unsigned char)p->s[j]) ||
                     (p->s[j] == '.' && j + 1 < p->n &&
                      deob_isalpha((unsigned char)p->s[j + 1]))))
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    p->i = j;
    return true;
}

static struct psn *p_number(struct psp *p)
{
    size_t start = p->i;
    int64_t v;
    bool isint;
    if (!scan_number(p, &v, &isint))
        return NULL;
    struct psn *n = mk(p, N_NUM, start);
    if (n) {
        n->i = v;
        if (isint)
            n->flags |= NF_NUMOK;
    }
    return n;
}

/* $name, ${name}, $_, $? ... at the cursor; NULL if not a variable. */
static struct psn *p_var(struct psp *p)
{
    size_t start = p->i, j = p->i + 1;
    bool tick = false;
    sp_buf_reset(&p->tmp);
    if (j < p->n && p->s[j] == '{') {
        j++;
        while (j < p->n && p->s[j] != '}') {
            if (p->s[j] == '`' && j + 1 < p->n) {
                sp_buf_putc(&p->tmp, p->s[j + 1]);
                tick = true;
                j += 2;
                continue;
            }
            sp_buf_putc(&p->tmp, p->s[j]);
            j++;
        }
        if (j >= p->n)
            return NULL;
        j++;
        p->i = j;
        struct psn *n = mk(p, N_VAR, start);
        if (!n)
            return NULL;
        n->s = tmp_take(p, &n->n);
        n->flags |= NF_BRACED | (tick ? NF_TICK : 0);
        return n->s ? n : NULL;
    }
    if (j < p->n && strchr("_?$^", p->s[j]) && p->s[j] &&
        !(p->s[j] == '_' && j + 1 < p->n &&
          is_word_char((unsigned char)p->s[j + 1]))) {
        sp_buf_putc(&p->tmp, p->s[j]);
        j++;
    } else {
        size_t k = j;
        while (k < p->n && is_word_char((unsigned char)p->s[k]))
            k++;
        if (k == j)
            return NULL;
        if (k + 1 < p->n && p->s[k] == ':' &&
            is_word_char((unsigned char)p->s[k + 1])) {
            k++;
            while (k < p->n && is_word_char((unsigned char)p->s[k]))
                k++;
        }
        sp_buf_put(&p->tmp, p->s + j, k - j);
        j = k;
    }
    p->i = j;
    struct psn *n = mk(p, N_VAR, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    return n->s ? n : NULL;
}

static void list_add(struct psn **head, struct psn **tail, struct psn *n)
{
    if (*tail)
        (*tail)->next = n;
    else
        *head = n;
    *tail = n;
}

/* "..." or @"..."@ at the cursor (here: whether it is a here-string). */
static struct psn *p_xstr(struct psp *p, bool here)
{
    size_t start = p->i;
    p->i += here ? 2 : 1;
    struct psn *head = NULL, *tail = NULL;
    bool tick = false;
    size_t lit_start = p->i;
    sp_buf_reset(&p->tmp);
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
#define FLUSH_LIT()                                                         \
    do {                                                                    \
        if (p->tmp.len) {                                                   \
            struct psn *l_ = mk(p, N_STR, lit_start);                       \
            if (!l_)                                                        \
                return NULL;                                                \
            l_->end = p->i;                                                 \
            l_->s = tmp_take(p, &l_->n);                                    \
            if (!l_->s)                                                     \
                return NULL;                                                \
            list_add(&head, &tail, l_);                                     \
        }                                                                   \
    } while (0)
    for (;;) {
        if (p->i >= p->n)
            return NULL;
        int c = pc(p);
        if (!here && c == '"') {
            if (pk(p, 1) == '"') {
                sp_buf_putc(&p->tmp, '"');
                p->i += 2;
                continue;
            }
            break;
        }
        if (here && (c == '\n' || c == '\r')) {
            size_t k = p->i;
            while (k < p->n && (p->s[k] == '\n' || p->s[k] == '\r'))
                k++;
            if (k + 1 < p->n && p->s[k] == '"' && p->s[k + 1] == '@') {
                p->i = k;
                break;
            }
        }
        if (c == '`' && p->i + 1 < p->n) {
            if (pk(p, 1) == 'u' && pk(p, 2) == '{') {
                size_t k = p->i + 3;
                uint32_t v = 0;
                while (k < p->n && deob_hexval((unsigned char)p->s[k]) >= 0 &&
                       k < p->i + 10)
                    v = v * 16 + (uint32_t)deob_hexval((unsigned char)p->s[k++]);
                if (k < p->n && p->s[k] == '}') {
                    deob_utf8_put(&p->tmp, v);
                    p->i = k + 1;
                    continue;
                }
            }
            if (tick_escape(p, p->i + 1, &p->tmp))
                tick = true;
            p->i += 2;
            continue;
        }
        if (c == '$' && p->i + 1 < p->n) {
            if (pk(p, 1) == '(') {
                FLUSH_LIT();
                size_t ss = p->i;
                p->i += 2;
                int nest = p->nest;
                bool nc = p->nocomma;
                p->nest = 0;
                p->nocomma = false;
                struct psn *body = p_stmts(p, ')');
                p->nest = nest;
                p->nocomma = nc;
                if (pc(p) != ')')
                    return NULL;
                p->i++;
                struct psn *sub = mk(p, N_SUB, ss);
                if (!sub)
                    return NULL;
                sub->a = body;
                list_add(&head, &tail, sub);
                lit_start = p->i;
                continue;
            }
            size_t save = p->i;
            struct sp_buf tmp_saved;
            tmp_saved = p->tmp;
            /* p_var uses tmp: park the literal being built */
            sp_buf_init(&p->tmp, PS_ARENA_MAX);
            struct psn *v = p_var(p);
            sp_buf_fini(&p->tmp);
            p->tmp = tmp_saved;
            if (v) {
                size_t vs = v->start;
                p->i = vs;
                FLUSH_LIT();
                p->i = v->end;
                list_add(&head, &tail, v);
                lit_start = p->i;
                continue;
            }
            p->i = save;
        }
        if (p->tmp.len == 0)
            lit_start = p->i;
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    FLUSH_LIT();
#undef FLUSH_LIT
    p->i += here ? 2 : 1;
    p->depth--;
    struct psn *n = mk(p, N_XSTR, start);
    if (!n)
        return NULL;
    n->a = head;
    if (tick)
        n->flags |= NF_TICK;
    return n;
}

static struct psn *p_sqstr(struct psp *p, bool here)
{
    size_t start = p->i;
    p->i += here ? 2 : 1;
    sp_buf_reset(&p->tmp);
    for (;;) {
        if (p->i >= p->n)
            return NULL;
        int c = pc(p);
        if (!here && c == '\'') {
            if (pk(p, 1) == '\'') {
                sp_buf_putc(&p->tmp, '\'');
                p->i += 2;
                continue;
            }
            p->i++;
            break;
        }
        if (here && (c == '\n' || c == '\r')) {
            size_t k = p->i;
            while (k < p->n && (p->s[k] == '\n' || p->s[k] == '\r'))
                k++;
            if (k + 1 < p->n && p->s[k] == '\'' && p->s[k + 1] == '@') {
                p->i = k + 2;
                break;
            }
        }
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    struct psn *n = mk(p, N_STR, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    return n->s ? n : NULL;
}

/* [type] at the cursor: the name with blanks removed. */
static bool scan_type(struct psp *p, const char **name, size_t *n)
{
    size_t j = p->i + 1;
    int depth = 1;
    sp_buf_reset(&p->tmp);
    while (j < p->n) {
        char c = p->s[j];
        if (c == '[')
            depth++;
        else if (c == ']' && --depth == 0)
            break;
        else if (c == '\n' || c == '\r' || c == ';' || c == '\'' ||
                 c == '"' || c == '{' || c == '}' || c == '$' || c == '|')
            return false;
        if (c == '`') {
            j++;
            if (j < p->n)
                sp_buf_putc(&p->tmp, p->s[j]);
            j++;
            continue;
        }
        if (!deob_isspace((unsigned char)c))
            sp_buf_putc(&p->tmp, c);
        j++;
    }
    if (j >= p->n || p->tmp.len == 0)
        return false;
    p->i = j + 1;
    *name = tmp_take(p, n);
    return *name != NULL;
}

/* ---- dash operators ---- */

struct dashop {
    const char *name;
    uint16_t op;
    uint8_t level;      /* 1 logic, 2 compare, 5 format, 9 unary only */
    bool unary;         /* also a unary operator */
};

static const struct dashop dashops[] = {
    {"and", B_AND, 1, false}, {"or", B_OR, 1, false},
    {"xor", B_XOR, 1, false}, {"join", B_JOIN, 2, true},
    {"split", B_SPLIT, 2, true}, {"replace", B_REPLACE, 2, false},
    {"bxor", B_BXOR, 2, false}, {"band", B_BAND, 2, false},
    {"bor", B_BOR, 2, false}, {"shl", B_SHL, 2, false},
    {"shr", B_SHR, 2, false}, {"as", B_AS, 2, false},
    {"is", B_IS, 2, false}, {"isnot", B_ISNOT, 2, false},
    {"eq", B_EQ, 2, false}, {"ne", B_NE, 2, false}, {"gt", B_GT, 2, false},
    {"ge", B_GE, 2, false}, {"lt", B_LT, 2, false}, {"le", B_LE, 2, false},
    {"like", B_LIKE, 2, false}, {"notlike", B_NOTLIKE, 2, false},
    {"match", B_MATCH, 2, false}, {"notmatch", B_NOTMATCH, 2, false},
    {"contains", B_CONTAINS, 2, false},
    {"notcontains", B_NOTCONTAINS, 2, false}, {"in", B_IN, 2, false},
    {"notin", B_NOTIN, 2, false}, {"f", B_FORMAT, 5, false},
    {"not", U_NOT, 9, true}, {"bnot", U_BNOT, 9, true},
};

/* The dash operator at the cursor ('-'), its op (with B_CASE) and
 * length, or NULL. */
static const struct dashop *peek_dashop(struct psp *p, uint16_t *op,
                                        size_t *len)
{
    if (pc(p) != '-')
        return NULL;
    size_t j = p->i + 1, k = j;
    while (k < p->n && deob_isalpha((unsigned char)p->s[k]) && k - j < 12)
        k++;
    if (k == j || (k < p->n && (is_word_char((unsigned char)p->s[k]) ||
                                p->s[k] == '-')))
        return NULL;
    char name[16];
    size_t nl = k - j;
    for (size_t m = 0; m < nl; m++)
        name[m] = sp_tolower(p->s[j + m]);
    name[nl] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const char *nm = name;
        uint16_t cs = 0;
        if (pass == 1) {
            if (nl < 2 || (name[0] != 'i' && name[0] != 'c'))
                break;
            cs = name[0] == 'c' ? B_CASE : 0;
            nm = name + 1;
        }
        for (size_t d = 0; d < SP_ARRAY_SIZE(dashops); d++) {
            if (!strcmp(dashops[d].name, nm)) {
                if (pass == 1 && dashops[d].level != 2)
                    return NULL;
                *op = (uint16_t)(dashops[d].op | cs);
                *len = k - p->i;
                return &dashops[d];
            }
        }
    }
    return NULL;
}

/* ---- expressions ---- */

static struct psn *mk_bin(struct psp *p, uint16_t op, struct psn *l,
                          struct psn *r)
{
    struct psn *n = mk(p, N_BIN, l->start);
    if (n) {
        n->op = op;
        n->a = l;
        n->b = r;
        n->end = r->end;
    }
    return n;
}

/* Method or index arguments up to close. */
static struct psn *p_args(struct psp *p, int close, bool *ok)
{
    struct psn *head = NULL, *tail = NULL;
    int nest = p->nest;
    bool nc = p->nocomma;
    p->nest = 1;
    p->nocomma = true;
    *ok = false;
    skip_wsnl(p);
    while (pc(p) != close) {
        struct psn *a = p_expr(p);
        if (!a)
            goto out;
        list_add(&head, &tail, a);
        skip_wsnl(p);
        if (pc(p) == ',') {
            p->i++;
            skip_wsnl(p);
            continue;
        }
        if (pc(p) != close)
            goto out;
    }
    p->i++;
    *ok = true;
out:
    p->nest = nest;
    p->nocomma = nc;
    return head;
}

static struct psn *p_member_name(struct psp *p)
{
    int c = pc(p);
    if (c == '\'')
        return p_sqstr(p, false);
    if (c == '"')
        return p_xstr(p, false);
    if (c == '(' || c == '$')
        return p_primary(p);
    size_t start = p->i;
    bool tick = false;
    sp_buf_reset(&p->tmp);
    while (p->i < p->n) {
        c = pc(p);
        if (c == '`' && p->i + 1 < p->n && is_word_char(pk(p, 1))) {
            sp_buf_putc(&p->tmp, (char)pk(p, 1));
            tick = true;
            p->i += 2;
            continue;
        }
        if (!is_word_char(c))
            break;
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    if (p->i == start)
        return NULL;
    struct psn *n = mk(p, N_WORD, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    if (tick)
        n->flags |= NF_TICK;
    return n->s ? n : NULL;
}

static struct psn *p_postfix(struct psp *p, struct psn *n)
{
    while (n) {
        int c = pc(p);
        if ((c == '.' && pk(p, 1) != '.' && !deob_isspace(pk(p, 1)) &&
             pk(p, 1)) ||
            (c == ':' && pk(p, 1) == ':')) {
            bool stat = c == ':';
            size_t save = p->i;
            p->i += stat ? 2 : 1;
            struct psn *name = p_member_name(p);
            if (!name) {
                p->i = save;
                return n;
            }
            struct psn *m = mk(p, N_MEMBER, n->start);
            if (!m)
                return NULL;
            m->a = n;
            m->b = name;
            if (stat)
                m->flags |= NF_STATIC;
            if (pc(p) == '(') {
                bool ok;
                p->i++;
                m->c = p_args(p, ')', &ok);
                if (!ok)
                    return NULL;
                m->flags |= NF_CALL;
            }
            m->end = p->i;
            n = m;
        } else if (c == '[') {
            p->i++;
            int nest = p->nest;
            bool nc = p->nocomma;
            p->nest = 1;
            p->nocomma = false;
            skip_wsnl(p);
            struct psn *ix = p_expr(p);
            skip_wsnl(p);
            p->nest = nest;
            p->nocomma = nc;
            if (!ix || pc(p) != ']')
                return NULL;
            p->i++;
            struct psn *m = mk(p, N_INDEX, n->start);
            if (!m)
                return NULL;
            m->a = n;
            m->b = ix;
            n = m;
        } else if ((c == '+' && pk(p, 1) == '+') ||
                   (c == '-' && pk(p, 1) == '-' && n->kind == N_VAR)) {
            if (n->kind != N_VAR)
                return n;
            p->i += 2;
            struct psn *m = mk(p, N_UN, n->start);
            if (!m)
                return NULL;
            m->op = c == '+' ? U_POSTINC : U_POSTDEC;
            m->a = n;
            n = m;
        } else {
            return n;
        }
    }
    return n;
}

static struct psn *p_block(struct psp *p)
{
    size_t start = p->i;
    p->i++;
    int nest = p->nest;
    bool nc = p->nocomma;
    p->nest = 0;
    p->nocomma = false;
    struct psn *body = p_stmts(p, '}');
    p->nest = nest;
    p->nocomma = nc;
    if (pc(p) != '}')
        return NULL;
    p->i++;
    struct psn *n = mk(p, N_BLOCK, start);
    if (n)
        n->a = body;
    return n;
}

static struct psn *p_primary(struct psp *p)
{
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    struct psn *r = NULL;
    size_t start = p->i;
    int c = pc(p);
    if (c == '$' && pk(p, 1) == '(') {
        p->i += 2;
        int nest = p->nest;
        bool nc = p->nocomma;
        p->nest = 0;
        p->nocomma = false;
        struct psn *body = p_stmts(p, ')');
        p->nest = nest;
        p->nocomma = nc;
        if (pc(p) == ')') {
            p->i++;
            r = mk(p, N_SUB, start);
            if (r)
                r->a = body;
        }
    } else if (c == '$') {
        r = p_var(p);
    } else if (c == '@' && (pk(p, 1) == '(')) {
        p->i += 2;
        int nest = p->nest;
        bool nc = p->nocomma;
        p->nest = 0;
        p->nocomma = false;
        struct psn *body = p_stmts(p, ')');
        p->nest = nest;
        p->nocomma = nc;
        if (pc(p) == ')') {
            p->i++;
            r = mk(p, N_ARRSUB, start);
            if (r)
                r->a = body;
        }
    } else if (c == '@' && pk(p, 1) == '{') {
        p->i++;
        skip_balanced(p);
        r = mk(p, N_HASH, start);
    } else if (c == '@' && pk(p, 1) == '"') {
        r = p_xstr(p, true);
    } else if (c == '@' && pk(p, 1) == '\'') {
        r = p_sqstr(p, true);
    } else if (c == '(') {
        p->i++;
        int nest = p->nest;
        bool nc = p->nocomma;
        p->nest = 1;
        p->nocomma = false;
        skip_wsnl(p);
        struct psn *in = pc(p) == ')' ? NULL : p_pipeline(p);
        skip_wsnl(p);
        p->nest = nest;
        p->nocomma = nc;
        if (pc(p) == ')') {
            p->i++;
            r = mk(p, N_PAREN, start);
            if (r)
                r->a = in;
        }
    } else if (c == '{') {
        r = p_block(p);
    } else if (c == '\'') {
        r = p_sqstr(p, false);
    } else if (c == '"') {
        r = p_xstr(p, false);
    } else if ((c >= '0' && c <= '9') ||
               (c == '.' && pk(p, 1) >= '0' && pk(p, 1) <= '9')) {
        r = p_number(p);
    }
    p->depth--;
    return r;
}

/* Can an operand start at the cursor (for [type] casts)? */
static bool operand_start(struct psp *p)
{
    int c = pc(p);
    return c == '$' || c == '(' || c == '\'' || c == '"' || c == '[' ||
           c == '@' || (c >= '0' && c <= '9') ||
           (c == '-' && (pk(p, 1) == '-' || (pk(p, 1) >= '0' && pk(p, 1) <= '9'))) ||
           (c == '+' && pk(p, 1) == '+') || c == '!' ||
           (c == '-' && deob_isalpha(pk(p, 1)));
}

static struct psn *p_unary(struct psp *p)
{
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    skip_ws(p);
    size_t start = p->i;
    int c = pc(p);
    struct psn *r = NULL;
    uint16_t op = 0;
    size_t len;
    if (c == '-' && deob_isalpha(pk(p, 1))) {
        const struct dashop *d = peek_dashop(p, &op, &len);
        if (d && d->unary) {
            p->i += len;
            skip_wsnl(p);
            struct psn *x = p_unary(p);
            if (x && (r = mk(p, N_UN, start))) {
                r->op = d->op == B_JOIN ? U_JOIN
                        : d->op == B_SPLIT ? U_SPLIT
                                           : d->op;
                r->a = x;
            }
        }
    } else if ((c == '-' || c == '+') && pk(p, 1) == c) {
        p->i += 2;
        skip_ws(p);
        struct psn *x = p_unary(p);
        if (x && (r = mk(p, N_UN, start))) {
            r->op = c == '+' ? U_PREINC : U_PREDEC;
            r->a = x;
        }
    } else if (c == '-' || c == '+' || c == '!' || c == ',') {
        p->i++;
        skip_wsnl(p);
        struct psn *x = p_unary(p);
        if (x && (r = mk(p, N_UN, start))) {
            r->op = c == '-' ? U_NEG : c == '+' ? U_PLUS
                    : c == '!' ? U_NOT : U_COMMA;
            r->a = x;
        }
    } else if (c == '[') {
        const char *tn;
        size_t tl;
        if (scan_type(p, &tn, &tl)) {
            size_t after = p->i;
            if (pc(p) == ':' && pk(p, 1) == ':') {
                struct psn *t = mk(p, N_TYPE, start);
                if (t) {
                    t->s = tn;
                    t->n = tl;
                    r = p_postfix(p, t);
                }
            } else {
                skip_ws(p);
                if (operand_start(p)) {
                    struct psn *x = p_unary(p);
                    if (x && (r = mk(p, N_CAST, start))) {
                        r->s = tn;
                        r->n = tl;
                        r->a = x;
                    }
                } else {
                    p->i = after;
                    r = mk(p, N_TYPE, start);
                    if (r) {
                        r->s = tn;
                        r->n = tl;
                    }
                }
            }
        }
    } else {
        r = p_postfix(p, p_primary(p));
    }
    p->depth--;
    return r;
}

static struct psn *p_comma(struct psp *p)
{
    struct psn *first = p_unary(p);
    if (!first || p->nocomma)
        return first;
    size_t save = p->i;
    skip_ws(p);
    if (pc(p) != ',') {
        p->i = save;
        return first;
    }
    struct psn *arr = mk(p, N_ARRAY, first->start);
    if (!arr)
        return NULL;
    struct psn *head = first, *tail = first;
    while (pc(p) == ',') {
        p->i++;
        skip_wsnl(p);
        struct psn *x = p_unary(p);
        if (!x)
            return NULL;
        list_add(&head, &tail, x);
        save = p->i;
        skip_ws(p);
    }
    p->i = save;
    arr->a = head;
    arr->end = p->i;
    return arr;
}

static struct psn *p_range(struct psp *p)
{
    struct psn *l = p_comma(p);
    if (!l)
        return NULL;
    size_t save = p->i;
    skip_ws(p);
    if (pc(p) == '.' && pk(p, 1) == '.') {
        p->i += 2;
        skip_wsnl(p);
        struct psn *r = p_comma(p);
        return r ? mk_bin(p, B_RANGE, l, r) : NULL;
    }
    p->i = save;
    return l;
}

static struct psn *p_level(struct psp *p, int level);

static struct psn *p_fmt(struct psp *p)
{
    struct psn *l = p_range(p);
    while (l) {
        size_t save = p->i;
        uint16_t op;
        size_t len;
        skip_ws(p);
        const struct dashop *d = peek_dashop(p, &op, &len);
        if (!d || d->level != 5) {
            p->i = save;
            break;
        }
        p->i += len;
        skip_wsnl(p);
        struct psn *r = p_range(p);
        l = r ? mk_bin(p, B_FORMAT, l, r) : NULL;
    }
    return l;
}

static struct psn *p_mul(struct psp *p)
{
    struct psn *l = p_fmt(p);
    while (l) {
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p);
        if ((c != '*' && c != '/' && c != '%') || pk(p, 1) == '=') {
            p->i = save;
            break;
        }
        p->i++;
        skip_wsnl(p);
        struct psn *r = p_fmt(p);
        l = r ? mk_bin(p, c == '*' ? B_MUL : c == '/' ? B_DIV : B_MOD, l, r)
              : NULL;
    }
    return l;
}

static struct psn *p_add(struct psp *p)
{
    struct psn *l = p_mul(p);
    while (l) {
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p), c1 = pk(p, 1);
        if (!(c == '+' && c1 != '+' && c1 != '=') &&
            !(c == '-' && c1 != '-' && c1 != '=' && !deob_isalpha(c1))) {
            p->i = save;
            break;
        }
        p->i++;
        skip_wsnl(p);
        struct psn *r = p_mul(p);
        l = r ? mk_bin(p, c == '+' ? B_ADD : B_SUB, l, r) : NULL;
    }
    return l;
}

static struct psn *p_level(struct psp *p, int level)
{
    struct psn *l = level == 1 ? p_level(p, 2) : p_add(p);
    while (l) {
        size_t save = p->i;
        uint16_t op;
        size_t len;
        skip_ws(p);
        const struct dashop *d = peek_dashop(p, &op, &len);
        if (!d || d->level != level) {
            p->i = save;
            break;
        }
        p->i += len;
        skip_wsnl(p);
        struct psn *r = level == 1 ? p_level(p, 2) : p_add(p);
        l = r ? mk_bin(p, op, l, r) : NULL;
    }
    return l;
}

static struct psn *p_expr(struct psp *p)
{
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    struct psn *r = p_level(p, 1);
    p->depth--;
    return r;
}

/* ---- commands and pipelines ---- */

static bool cmd_start(struct psp *p)
{
    int c = pc(p), c1 = pk(p, 1);
    if (c == '&')
        return c1 != '&';
    if (c == '.')
        return c1 == ' ' || c1 == '\t' || c1 == '$' || c1 == '(' ||
               c1 == '\'' || c1 == '"' || c1 == '{' || c1 == '&' ||
               c1 == '\\' || c1 == '/' || (c1 == '.' && (pk(p, 2) == '\\' ||
                                                         pk(p, 2) == '/'));
    if (deob_isalpha(c) || c == '_' || c == '\\' || c >= 0x80)
        return true;
    if ((c == '%' || c == '?') && (c1 == 0 || deob_isspace(c1) || c1 == '{'))
        return true;
    if (c >= '0' && c <= '9') {
        size_t save = p->i;
        int64_t v;
        bool isint;
        bool num = scan_number(p, &v, &isint);
        p->i = save;
        return !num;
    }
    return false;
}

static struct psn *p_argval(struct psp *p)
{
    int c = pc(p);
    if (c == '(' || c == '$' || c == '@' || c == '{' || c == '\'' ||
        c == '"')
        return p_postfix(p, p_primary(p));
    if ((c >= '0' && c <= '9') || ((c == '-' || c == '+' || c == '.') &&
                                   pk(p, 1) >= '0' && pk(p, 1) <= '9')) {
        struct psn *n = p_number(p);
        if (n)
            return n;
    }
    return p_word(p, false);
}

static struct psn *p_command(struct psp *p)
{
    size_t start = p->i;
    struct psn *cmd = mk(p, N_CMD, start);
    if (!cmd)
        return NULL;
    int c = pc(p);
    if (c == '&' || (c == '.' && !(pk(p, 1) == '\\' || pk(p, 1) == '/' ||
                                   pk(p, 1) == '.'))) {
        cmd->op = (uint16_t)c;
        p->i++;
        skip_ws(p);
        c = pc(p);
        if (c == '(' || c == '$' || c == '\'' || c == '"' || c == '{' ||
            c == '@')
            cmd->a = p_postfix(p, p_primary(p));
        else
            cmd->a = p_word(p, true);
    } else {
        cmd->a = p_word(p, true);
    }
    if (!cmd->a)
        return NULL;
    int nest = p->nest;
    p->nest = 0;
    struct psn *head = NULL, *tail = NULL;
    for (;;) {
        skip_ws(p);
        c = pc(p);
        if (!c || strchr("\r\n;|)}&", c))
            break;
        if (c == '>' || c == '<' ||
            ((c == '2' || c == '1' || c == '*' || (c >= '3' && c <= '6')) &&
             pk(p, 1) == '>')) {
            while (pc(p) && strchr("0123456*><&", pc(p)))
                p->i++;
            skip_ws(p);
            if (pc(p) && !strchr("\r\n;|)}", pc(p)))
                p_argval(p);
            continue;
        }
        struct psn *arg;
        if (c == '-' && (deob_isalpha(pk(p, 1)) || pk(p, 1) == '`')) {
            size_t ps0 = p->i;
            p->i++;
            bool tick = false;
            sp_buf_reset(&p->tmp);
            while (p->i < p->n) {
                int d = pc(p);
                if (d == '`' && p->i + 1 < p->n && deob_isalnum(pk(p, 1))) {
                    sp_buf_putc(&p->tmp, (char)pk(p, 1));
                    tick = true;
                    p->i += 2;
                    continue;
                }
                if (deob_isspace(d) || strchr(";|&(){},:'\"", d))
                    break;
                sp_buf_putc(&p->tmp, (char)d);
                p->i++;
            }
            arg = mk(p, N_PARAM, ps0);
            if (!arg)
                return NULL;
            arg->s = tmp_take(p, &arg->n);
            if (tick)
                arg->flags |= NF_TICK;
            if (pc(p) == ':') {
                p->i++;
                arg->a = p_argval(p);
                arg->end = p->i;
            }
        } else {
            arg = p_argval(p);
            if (!arg) {
                p->nest = nest;
                return NULL;
            }
            size_t save = p->i;
            skip_ws(p);
            if (pc(p) == ',') {
                struct psn *arr = mk(p, N_ARRAY, arg->start);
                if (!arr)
                    return NULL;
                struct psn *h = arg, *t = arg;
                while (pc(p) == ',') {
                    p->i++;
                    skip_wsnl(p);
                    struct psn *x = p_argval(p);
                    if (!x) {
                        p->nest = nest;
                        return NULL;
                    }
                    list_add(&h, &t, x);
                    save = p->i;
                    skip_ws(p);
                }
                arr->a = h;
                arr->end = save;
                arg = arr;
            }
            p->i = save;
        }
        list_add(&head, &tail, arg);
    }
    p->nest = nest;
    cmd->b = head;
    cmd->end = p->i;
    while (cmd->end > start && deob_isspace((unsigned char)p->s[cmd->end - 1]))
        cmd->end--;
    return cmd;
}

static bool lvalue(struct psn *n)
{
    if (!n)
        return false;
    switch (n->kind) {
    case N_VAR:
    case N_INDEX:
    case N_MEMBER:
        return true;
    case N_CAST:
        return lvalue(n->a);
    case N_ARRAY:
        for (struct psn *x = n->a; x; x = x->next)
            if (!lvalue(x))
                return false;
        return true;
    default:
        return false;
    }
}

static struct psn *p_pipeline(struct psp *p)
{
    size_t start = p->i;
    struct psn *head = NULL, *tail = NULL;
    struct psn *first;
    if (cmd_start(p)) {
        first = p_command(p);
    } else {
        first = p_expr(p);
        if (!first)
            return NULL;
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p), c1 = pk(p, 1);
        size_t oplen = 0;
        uint16_t op = 0;
        if (c == '=' && c1 != '=')
            oplen = 1, op = '=';
        else if (strchr("+-*/%", c) && c && c1 == '=')
            oplen = 2, op = (uint16_t)c;
        if (oplen && lvalue(first)) {
            p->i += oplen;
            skip_wsnl(p);
            struct psn *rhs = p_stmt(p);
            if (!rhs)
                return NULL;
            struct psn *as = mk(p, N_ASSIGN, start);
            if (!as)
                return NULL;
            as->op = op;
            as->a = first;
            as->b = rhs;
            as->end = rhs->end;
            return as;
        }
        p->i = save;
    }
    if (!first)
        return NULL;
    list_add(&head, &tail, first);
    for (;;) {
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p);
        if ((c == '>' || ((c == '2' || c == '*') && pk(p, 1) == '>'))) {
            while (pc(p) && strchr("0123456*><&", pc(p)))
                p->i++;
            skip_ws(p);
            if (pc(p) && !strchr("\r\n;|)}", pc(p)))
                p_argval(p);
            continue;
        }
        if (c == '|' && pk(p, 1) != '|') {
            p->i++;
            skip_wsnl(p);
            struct psn *e = cmd_start(p) ? p_command(p) : p_expr(p);
            if (!e)
                return NULL;
            list_add(&head, &tail, e);
            continue;
        }
        p->i = save;
        break;
    }
    struct psn *pipe = mk(p, N_PIPE, start);
    if (pipe) {
        pipe->a = head;
        pipe->end = tail->end;
    }
    return pipe;
}

/* Keyword statements: their parts hang off a as a list. */
static struct psn *p_keyword(struct psp *p, const char *kw)
{
    size_t start = p->i;
    struct psn *k = mk(p, N_KEYWORD, start);
    if (!k)
        return NULL;
    struct psn *head = NULL, *tail = NULL;
    p->i += strlen(kw);
    bool opaque_blocks = true;
    if (!strcmp(kw, "try"))
        opaque_blocks = false;
    for (int part = 0; part < 64; part++) {
        skip_wsnl(p);
        int c = pc(p);
        struct psn *x = NULL;
        if (c == '(') {
            size_t s0 = p->i;
            if (!strcmp(kw, "foreach") || !strcmp(kw, "for") ||
                !strcmp(kw, "param") || !strcmp(kw, "function")) {
                p->i++;
                skip_wsnl(p);
                if (!strcmp(kw, "foreach") && pc(p) == '$') {
                    struct psn *v = p_var(p);
                    if (v) {
                        v->flags |= NF_KEYVAR;
                        list_add(&head, &tail, v);
                    }
                    skip_wsnl(p);
                    if (at_kw(p, "in"))
                        p->i += 2;
                    int nest = p->nest;
                    p->nest = 1;
                    x = p_pipeline(p);
                    p->nest = nest;
                    skip_wsnl(p);
                    if (pc(p) == ')')
                        p->i++;
                    else
                        return NULL;
                } else {
                    p->i = s0;
                    skip_balanced(p);
                    x = mk(p, N_OPAQUE, s0);
                }
            } else {
                x = p_primary(p);
            }
        } else if (c == '{') {
            if (!strcmp(kw, "switch")) {
                size_t s0 = p->i;
                skip_balanced(p);
                x = mk(p, N_OPAQUE, s0);
            } else {
                struct psn *b = p_block(p);
                if (!b)
                    return NULL;
                x = mk(p, N_STMTS, b->start);
                if (x) {
                    x->a = b->a;
                    x->end = b->end;
                    if (opaque_blocks)
                        x->flags |= NF_OPAQUE;
                }
            }
            opaque_blocks = true;
            if (x)
                list_add(&head, &tail, x);
            /* continuation keywords */
            size_t save = p->i;
            skip_wsnl(p);
            if (at_kw(p, "elseif")) {
                p->i += 6;
                continue;
            }
            if (at_kw(p, "else")) {
                p->i += 4;
                continue;
            }
            if (at_kw(p, "catch")) {
                p->i += 5;
                skip_ws(p);
                while (pc(p) == '[' || pc(p) == ',') {
                    if (pc(p) == ',') {
                        p->i++;
                    } else {
                        const char *tn;
                        size_t tl;
                        if (!scan_type(p, &tn, &tl))
                            return NULL;
                    }
                    skip_wsnl(p);
                }
                continue;
            }
            if (at_kw(p, "finally")) {
                p->i += 7;
                continue;
            }
            if ((!strcmp(kw, "do")) && (at_kw(p, "while") || at_kw(p, "until"))) {
                p->i += 5;
                continue;
            }
            p->i = save;
            break;
        } else if (c == '-' && !strcmp(kw, "switch")) {
            p_word(p, false);
            continue;
        } else if (c == '[' && !strcmp(kw, "trap")) {
            const char *tn;
            size_t tl;
            if (!scan_type(p, &tn, &tl))
                return NULL;
            continue;
        } else if ((!strcmp(kw, "function") || !strcmp(kw, "filter") ||
                    !strcmp(kw, "workflow")) && part == 0) {
            if (!p_word(p, true))
                return NULL;
            continue;
        } else {
            return NULL;
        }
        if (!x)
            return NULL;
        list_add(&head, &tail, x);
    }
    k->a = head;
    k->end = p->i;
    k->s = kw;
    return k;
}

static struct psn *p_stmt(struct psp *p)
{
    static const char *const block_kws[] = {
        "if", "while", "for", "do", "switch", "function", "filter",
        "workflow", "try", "trap", "begin", "process", "end",
        "dynamicparam", "param", NULL};
    size_t start = p->i;
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    struct psn *r = NULL;
    for (size_t k = 0; block_kws[k]; k++) {
        if (at_kw(p, block_kws[k])) {
            r = p_keyword(p, block_kws[k]);
            goto out;
        }
    }
    if (at_kw(p, "foreach")) {
        size_t save = p->i;
        p->i += 7;
        skip_ws(p);
        bool stmt = pc(p) == '(';
        p->i = save;
        if (stmt) {
            r = p_keyword(p, "foreach");
            goto out;
        }
    }
    if (at_kw(p, "return") || at_kw(p, "throw") || at_kw(p, "exit")) {
        while (p->i < p->n && deob_isalpha(pc(p)))
            p->i++;
        skip_ws(p);
        if (!pc(p) || strchr("\r\n;})", pc(p))) {
            r = mk(p, N_OPAQUE, start);
            goto out;
        }
        r = p_pipeline(p);
        goto out;
    }
    if (at_kw(p, "break") || at_kw(p, "continue") || at_kw(p, "class") ||
        at_kw(p, "enum") || at_kw(p, "using") || at_kw(p, "data")) {
        while (p->i < p->n && pc(p) != ';' && pc(p) != '\n' && pc(p) != '{')
            p->i++;
        if (pc(p) == '{')
            skip_balanced(p);
        r = mk(p, N_OPAQUE, start);
        goto out;
    }
    r = p_pipeline(p);
out:
    p->depth--;
    return r;
}

static struct psn *p_stmts(struct psp *p, int close)
{
    struct psn *head = NULL, *tail = NULL;
    struct ps *ps = p->ps;
    for (size_t guard = 0; !ps->abort; guard++) {
        for (;;) {
            skip_wsnl(p);
            if (pc(p) == ';')
                p->i++;
            else if ((pc(p) == '&' && pk(p, 1) == '&') ||
                     (pc(p) == '|' && pk(p, 1) == '|'))
                p->i += 2;
            else
                break;
        }
        int c = pc(p);
        if (!c || c == close)
            break;
        if (c == ')' || c == '}' || c == ']') {
            if (close)
                break;
            p->i++;
            continue;
        }
        size_t start = p->i;
        struct psn *st = p_stmt(p);
        if (st) {
            skip_ws(p);
            c = pc(p);
            if (c && !strchr("\r\n;", c) && c != close &&
                !(c == '&' && pk(p, 1) == '&') &&
                !(c == '|' && pk(p, 1) == '|')) {
                /* trailing junk: keep what parsed, skip the rest */
                size_t j = p->i;
                skip_to_sep(p);
                if (p->i == j)
                    p->i++;
                struct psn *o = mk(p, N_OPAQUE, j);
                if (o)
                    list_add(&head, &tail, st), st = o;
            }
        } else {
            if (ps->abort)
                break;
            p->i = start;
            skip_to_sep(p);
            if (p->i == start)
                p->i++;
            st = mk(p, N_OPAQUE, start);
        }
        if (!st)
            break;
        list_add(&head, &tail, st);
        if (deob_time_up(ps->ctx)) {
            ps->abort = true;
            break;
        }
    }
    struct psn *list = head;
    return list;
}

/* ======================================================================
 * The folding engine: evaluation
 * ====================================================================== */

static struct pv *ev(struct ps *ps, struct psn *n);
static bool ev_stmts(struct ps *ps, struct psn *list, struct pvlist *out);
static struct pv *static_member(struct ps *ps, const char *type, size_t tl,
                                const char *name, struct pv **args,
                                struct psn **argn, size_t nargs, bool call,
                                struct psn *node);
static struct pv *inst_member(struct ps *ps, struct pv *ov, const char *name,
                              struct pv **args, size_t nargs, bool call,
                              struct psn *node);
static struct pv *new_object(struct ps *ps, const char *tname, size_t tl,
                             struct pv **args, size_t nargs);

/* ---- variables ---- */

static unsigned var_hash(const char *s, size_t n)
{
    unsigned h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + (unsigned char)sp_tolower(s[i]);
    return h % PS_VAR_BUCKETS;
}

/* Strips $ scopes (script:, global:, ...) and variable:. */
static void var_base(const char **s, size_t *n)
{
    static const char *const scopes[] = {"script:", "global:", "local:",
                                         "private:", "using:", "variable:"};
    for (size_t k = 0; k < SP_ARRAY_SIZE(scopes); k++) {
        size_t l = strlen(scopes[k]);
        if (*n > l && sp_strncaseeq(*s, scopes[k], l)) {
            *s += l;
            *n -= l;
            return;
        }
    }
}

static struct pvar *var_find(struct ps *ps, const char *s, size_t n)
{
    for (struct pvar *v = ps->vars[var_hash(s, n)]; v; v = v->next)
        if (v->n == n && sp_strncaseeq(v->name, s, n))
            return v;
    return NULL;
}

static void var_set(struct ps *ps, const char *s, size_t n, struct pv *val)
{
    var_base(&s, &n);
    if (ps->opaque)
        val = NULL;
    struct pvar *v = var_find(ps, s, n);
    if (!v) {
        v = ps_alloc(ps, sizeof(*v));
        if (!v)
            return;
        v->name = ps_lower(ps, s, n);
        v->n = n;
        unsigned h = var_hash(s, n);
        v->next = ps->vars[h];
        ps->vars[h] = v;
    }
    v->val = val;
}

static void note_read(struct ps *ps, size_t start, size_t end, const char *s,
                      size_t n)
{
    var_base(&s, &n);
    if (n > 4 && sp_strncaseeq(s, "env:", 4))
        return;
    if (!grow(ps, (void **)&ps->reads, &ps->capreads, ps->nreads + 1,
              sizeof(*ps->reads)))
        return;
    struct read_rec *r = &ps->reads[ps->nreads++];
    r->start = start;
    r->end = end;
    r->name = ps_lower(ps, s, n);
    r->n = n;
}

static const struct {
    const char *name;
    const char *value;
} auto_vars[] = {
    {"pshome", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0"},
    {"shellid", "Microsoft.PowerShell"},
    {"verbosepreference", "SilentlyContinue"},
    {"debugpreference", "SilentlyContinue"},
    {"erroractionpreference", "Continue"},
    {"warningpreference", "Continue"},
    {"progresspreference", "Continue"},
    {"informationpreference", "SilentlyContinue"},
    {"confirmpreference", "High"},
    {"home", "C:\\Users\\user"},
    {"maximumdrivecount", "4096"},
    {"maximumerrorcount", "256"},
    {"maximumfunctioncount", "4096"},
    {"maximumvariablecount", "4096"},
    {"maximumhistorycount", "4096"},
    {"maximumaliascount", "4096"},
};

static struct pv *env_value(struct ps *ps, const char *s, size_t n)
{
    char key[80];
    if (n + 4 >= sizeof(key))
        return NULL;
    memcpy(key, "env:", 4);
    memcpy(key + 4, s, n);
    struct pvar *ov = var_find(ps, key, n + 4);
    if (ov)
        return ov->val;
    const char *v = deob_env_lookup(s, n);
    return v ? pv_cstr(ps, v) : NULL;
}

static struct pv *read_var(struct ps *ps, struct psn *node, const char *s,
                           size_t n)
{
    var_base(&s, &n);
    if (n > 4 && sp_strncaseeq(s, "env:", 4))
        return env_value(ps, s + 4, n - 4);
    if (deob_ci_eqn(s, n, "true") || deob_ci_eqn(s, n, "false"))
        return pv_bool(ps, sp_tolower(s[0]) == 't');
    if (deob_ci_eqn(s, n, "null"))
        return pv_new(ps, PV_NULL);
    if (deob_ci_eqn(s, n, "_") || deob_ci_eqn(s, n, "psitem"))
        return ps->opaque ? NULL : ps->under;
    if (deob_ci_eqn(s, n, "?"))
        return pv_bool(ps, true);
    if (deob_ci_eqn(s, n, "executioncontext"))
        return pv_named(ps, PV_OBJ, "executioncontext", 16);
    struct pvar *v = var_find(ps, s, n);
    if (node)
        note_read(ps, node->start, node->end, s, n);
    if (v) {
        if (ps->opaque)
            return NULL;
        if (v->val && v->val->kind == PV_TYPE)
            ps->ops |= OP_TYPEVAR;
        if (v->val && v->val->kind != PV_STR && v->val->kind != PV_TYPE)
            ps->ops |= v->val->ops;
        return v->val;
    }
    for (size_t k = 0; k < SP_ARRAY_SIZE(auto_vars); k++)
        if (deob_ci_eqn(s, n, auto_vars[k].name))
            return pv_cstr(ps, auto_vars[k].value);
    return NULL;
}

/* Variable names known in the pass, for Get-Variable wildcards. */
static bool wild_match(const char *pat, size_t pn, const char *s, size_t n)
{
    size_t i = 0, j = 0, star = (size_t)-1, mark = 0;
    while (j < n) {
        if (i < pn && (pat[i] == '?' ||
                       sp_tolower(pat[i]) == sp_tolower(s[j]))) {
            i++, j++;
        } else if (i < pn && pat[i] == '*') {
            star = i++;
            mark = j;
        } else if (star != (size_t)-1) {
            i = star + 1;
            j = ++mark;
        } else {
            return false;
        }
    }
    while (i < pn && pat[i] == '*')
        i++;
    return i == pn;
}

static bool var_lookup_wild(struct ps *ps, const char *pat, size_t pn,
                            const char **name, size_t *nn)
{
    if (!memchr(pat, '*', pn) && !memchr(pat, '?', pn)) {
        *name = pat;
        *nn = pn;
        return true;
    }
    for (size_t b = 0; b < PS_VAR_BUCKETS; b++)
        for (struct pvar *v = ps->vars[b]; v; v = v->next)
            if (wild_match(pat, pn, v->name, v->n)) {
                *name = v->name;
                *nn = v->n;
                return true;
            }
    static const char *const autos[] = {
        "MaximumDriveCount", "MaximumErrorCount", "MaximumFunctionCount",
        "MaximumVariableCount", "MaximumHistoryCount", "MaximumAliasCount",
        "ExecutionContext", "ShellId", "PSHome", "VerbosePreference",
        "DebugPreference", "ErrorActionPreference", "WarningPreference",
        "ProgressPreference", "ConfirmPreference", "Home", NULL};
    for (size_t k = 0; autos[k]; k++)
        if (wild_match(pat, pn, autos[k], strlen(autos[k]))) {
            *name = autos[k];
            *nn = strlen(autos[k]);
            return true;
        }
    return false;
}

/* Everything an unparsed span may assign becomes unknown. */
static void invalidate_span(struct ps *ps, size_t start, size_t end)
{
    for (size_t i = start; i < end && i < ps->n; i++) {
        if (ps->s[i] != '$')
            continue;
        size_t j = i + 1, k = j;
        if (j < end && ps->s[j] == '{') {
            k = j + 1;
            while (k < end && ps->s[k] != '}')
                k++;
            if (k >= end)
                continue;
            size_t m = k + 1;
            while (m < end && (ps->s[m] == ' ' || ps->s[m] == '\t'))
                m++;
            if (m < end && strchr("=+-*/%", ps->s[m]))
                var_set(ps, ps->s + j + 1, k - j - 1, NULL);
            continue;
        }
        while (k < end && (is_word_char((unsigned char)ps->s[k]) ||
                           ps->s[k] == ':'))
            k++;
        if (k == j)
            continue;
        size_t m = k;
        while (m < end && (ps->s[m] == ' ' || ps->s[m] == '\t'))
            m++;
        if (m < end && strchr("=+-*/%", ps->s[m]))
            var_set(ps, ps->s + j, k - j, NULL);
    }
}

/* ---- statement unwraps (IEX and friends) ---- */

static void mark_unwrap(struct ps *ps, struct psn *elem, struct pv *script,
                        unsigned ops)
{
    if (!script || ps->unwrap_target != elem || !ps->cur_stmt)
        return;
    const char *s;
    size_t n;
    if (script->kind == PV_BLOCK || script->kind == PV_STR) {
        s = script->s;
        n = script->n;
    } else if (!to_str(ps, script, &s, &n)) {
        return;
    }
    struct psn *st = ps->cur_stmt;
    if (st->ustate == VS_NONE) {
        st->ustate = VS_KNOWN;
        st->utext = s;
        st->un = n;
        st->uops = ops;
    } else if (st->ustate == VS_KNOWN &&
               (st->un != n || memcmp(st->utext, s, n))) {
        st->ustate = VS_VARY;
    }
}

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

static size_t find_lit(const char *s, size_t n, const char *pat, size_t pn,
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
        size_t at = find_lit(s + pos, n - pos, pat, pn, ci);
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
static bool split_into(struct ps *ps, struct pvlist *l, const char *s,
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
            at = find_lit(s + pos, n - pos, pat, pn, ci);
        }
        if (at == (size_t)-1)
            break;
        if (!pvlist_add(ps, l, pv_str(ps, s + pos, at)))
            return false;
        pos += at + len;
    }
    return pvlist_add(ps, l, pv_str(ps, s + pos, n - pos));
}

static struct pv *op_split(struct ps *ps, struct pv *l, struct pv *r,
                           bool cs)
{
    struct pv **items, *one;
    const char *pat;
    size_t pn;
    if (!to_str(ps, r, &pat, &pn) || pn == 0)
        return NULL;
    struct sp_buf lit;
    sp_buf_init(&lit, pn + 1);
    bool ok = regex_literal(pat, pn, &lit);
    struct pvlist out = {0};
    size_t k = ok ? enumerate(ps, l, &items, &one) : 0;
    for (size_t i = 0; i < k && ok; i++) {
        const char *s;
        size_t sn;
        if (!to_str(ps, items[i], &s, &sn))
            ok = false;
        else
            ok = split_into(ps, &out, s, sn, lit.data, lit.len, !cs, false);
    }
    sp_buf_fini(&lit);
    if (!ok || ps->abort)
        return NULL;
    ps->ops |= OP_SPLITJOIN;
    return pvlist_value(ps, &out);
}

static struct pv *op_replace_one(struct ps *ps, struct pv *l,
                                 const char *pat, size_t pn, const char *rep,
                                 size_t rn, bool cs)
{
    const char *s;
    size_t n;
    if (!to_str(ps, l, &s, &n))
        return NULL;
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    struct pv *v = replace_all(&b, s, n, pat, pn, rep, rn, !cs)
                       ? pv_buf(ps, &b)
                       : NULL;
    sp_buf_fini(&b);
    return v;
}

static struct pv *op_replace(struct ps *ps, struct pv *l, struct pv *r,
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
    if (!to_str(ps, pv, &pat, &pn) || pn == 0)
        return NULL;
    if (rv && !to_str(ps, rv, &rep, &rn))
        return NULL;
    if (memchr(rep, '$', rn))
        return NULL;
    struct sp_buf lit;
    sp_buf_init(&lit, pn + 1);
    struct pv *res = NULL;
    if (regex_literal(pat, pn, &lit)) {
        if (l->kind == PV_ARR) {
            res = pv_arr(ps, l->count);
            for (size_t i = 0; res && i < l->count; i++) {
                ITEMS(res)[i] = op_replace_one(ps, ITEMS(l)[i], lit.data,
                                               lit.len, rep, rn, cs);
                if (!ITEMS(res)[i])
                    res = NULL;
            }
        } else {
            res = op_replace_one(ps, l, lit.data, lit.len, rep, rn, cs);
        }
    }
    sp_buf_fini(&lit);
    if (res)
        ps->ops |= OP_REPLACE;
    return res;
}

static struct pv *op_join(struct ps *ps, struct pv *l, struct pv *sep)
{
    const char *sp = "";
    size_t sn = 0;
    if (sep && !to_str(ps, sep, &sp, &sn))
        return NULL;
    struct pv **items, *one;
    size_t k = enumerate(ps, l, &items, &one);
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = true;
    for (size_t i = 0; i < k && ok; i++) {
        if (i)
            sp_buf_put(&b, sp, sn);
        ok = put_str(ps, items[i], &b, 0);
    }
    struct pv *v = ok ? pv_buf(ps, &b) : NULL;
    sp_buf_fini(&b);
    if (v)
        ps->ops |= OP_SPLITJOIN;
    return v;
}

static struct pv *op_format(struct ps *ps, struct pv *fmtv, struct pv *args)
{
    const char *f;
    size_t fn;
    if (!to_str(ps, fmtv, &f, &fn))
        return NULL;
    struct pv **items, *one;
    size_t k = enumerate(ps, args, &items, &one);
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
        ok = put_str(ps, items[idx], &b, 0);
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
    struct pv *v = ok ? pv_buf(ps, &b) : NULL;
    sp_buf_fini(&b);
    if (v)
        ps->ops |= OP_FORMAT;
    return v;
}

/* ---- casts ---- */

static void type_norm(const char *t, size_t n, char *out, size_t cap)
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

static struct pv *to_char(struct ps *ps, struct pv *v)
{
    if (!v)
        return NULL;
    if (v->kind == PV_CHAR)
        return v;
    if (v->kind == PV_INT || v->kind == PV_BOOL) {
        if (v->i < 0 || v->i > 0xFFFF)
            return NULL;
        ps->ops |= OP_CHARCODE;
        return pv_char(ps, v->i);
    }
    if (v->kind == PV_STR && str_len(ps, v) == 1)
        return pv_char(ps, str_at(ps, v, 0));
    return NULL;
}

static struct pv *cast(struct ps *ps, const char *tname, size_t tl,
                       struct pv *v)
{
    char t[64];
    type_norm(tname, tl, t, sizeof(t));
    if (!v)
        return NULL;
    if (!strcmp(t, "char"))
        return to_char(ps, v);
    if (is_int_type(t)) {
        int64_t i;
        if (v->kind == PV_CHAR) {
            ps->ops |= OP_CHARCODE;
            return pv_int(ps, v->i);
        }
        if (!to_int(v, &i))
            return NULL;
        if (!strcmp(t, "byte"))
            i &= 0xFF;
        return pv_int(ps, i);
    }
    if (!strcmp(t, "string"))
        return to_strv(ps, v);
    if (!strcmp(t, "char[]")) {
        if (v->kind == PV_STR) {
            size_t k = str_len(ps, v);
            struct pv *a = pv_arr(ps, k);
            for (size_t i = 0; a && i < k; i++)
                if (!(ITEMS(a)[i] = pv_char(ps, str_at(ps, v, i))))
                    return NULL;
            return a;
        }
        struct pv **items, *one;
        size_t k = enumerate(ps, v, &items, &one);
        struct pv *a = pv_arr(ps, k);
        for (size_t i = 0; a && i < k; i++)
            if (!(ITEMS(a)[i] = to_char(ps, items[i])))
                return NULL;
        return a;
    }
    if (!strcmp(t, "byte[]")) {
        if (v->kind == PV_BYTES)
            return v;
        struct pv **items, *one;
        size_t k = enumerate(ps, v, &items, &one);
        unsigned char *b = k ? ps_alloc(ps, k) : NULL;
        if (k && !b)
            return NULL;
        for (size_t i = 0; i < k; i++) {
            int64_t x;
            if (!to_int(items[i], &x) || x < 0 || x > 255)
                return NULL;
            b[i] = (unsigned char)x;
        }
        struct pv *r = pv_new(ps, PV_BYTES);
        if (r) {
            r->p = b;
            r->count = k;
        }
        return r;
    }
    if (!strcmp(t, "string[]") || !strcmp(t, "object[]") ||
        !strcmp(t, "array") || !strcmp(t, "int[]")) {
        struct pv **items, *one;
        size_t k = enumerate(ps, v, &items, &one);
        struct pv *a = pv_arr(ps, k);
        for (size_t i = 0; a && i < k; i++) {
            ITEMS(a)[i] = !strcmp(t, "string[]") ? to_strv(ps, items[i])
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
        if (!to_str(ps, v, &s, &n) || n == 0 || n > 200)
            return NULL;
        for (size_t i = 0; i < n; i++)
            if (!is_word_char((unsigned char)s[i]) && s[i] != '.' &&
                s[i] != '[' && s[i] != ']' && s[i] != '`')
                return NULL;
        return pv_named(ps, PV_TYPE, s, n);
    }
    if (!strcmp(t, "scriptblock") ||
        !strcmp(t, "management.automation.scriptblock")) {
        const char *s;
        size_t n;
        if (!to_str(ps, v, &s, &n))
            return NULL;
        struct pv *b = pv_named(ps, PV_BLOCK, s, n);
        if (b)
            b->fl |= PVF_CREATED;
        return b;
    }
    if (!strcmp(t, "io.memorystream") && v->kind == PV_BYTES) {
        struct pv *st = pv_bytes(ps, PV_STREAM, v->p, v->count);
        if (st)
            st->ops = v->ops;
        return st;
    }
    if (!strcmp(t, "bool") || !strcmp(t, "boolean"))
        return pv_bool(ps, truthy(v));
    return NULL;
}

/* ---- operators ---- */

static int cmp_values(struct ps *ps, struct pv *a, struct pv *b, bool cs,
                      bool *ok)
{
    int64_t x, y;
    *ok = true;
    if ((a->kind == PV_INT || a->kind == PV_CHAR || a->kind == PV_BOOL) &&
        to_int(b, &x)) {
        y = a->i;
        return y < x ? -1 : y > x;
    }
    const char *s, *t;
    size_t sn, tn;
    if (!to_str(ps, a, &s, &sn) || !to_str(ps, b, &t, &tn)) {
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

static struct pv *ev_add(struct ps *ps, struct pv *l, struct pv *r)
{
    if (is_nullish(l))
        return r;
    if (l->kind == PV_STR || l->kind == PV_CHAR) {
        struct sp_buf b;
        sp_buf_init(&b, PS_ARENA_MAX);
        bool ok = put_str(ps, l, &b, 0) && put_str(ps, r, &b, 0);
        struct pv *v = ok ? pv_buf(ps, &b) : NULL;
        sp_buf_fini(&b);
        if (v)
            ps->ops |= OP_CONCAT;
        return v;
    }
    if (l->kind == PV_INT || l->kind == PV_BOOL) {
        int64_t y;
        if (!to_int(r, &y))
            return NULL;
        return pv_int(ps, l->i + y);
    }
    if (l->kind == PV_ARR) {
        struct pv **items, *one;
        size_t k = enumerate(ps, r, &items, &one);
        if (r->kind == PV_STR || r->kind == PV_CHAR)
            k = 1, items = &r;
        struct pv *a = pv_arr(ps, l->count + k);
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

static struct pv *ev_range(struct ps *ps, struct pv *l, struct pv *r)
{
    int64_t a, b;
    if (!to_int(l, &a) || !to_int(r, &b))
        return NULL;
    uint64_t cnt = (uint64_t)(a <= b ? b - a : a - b) + 1;
    if (cnt > 65536)
        return NULL;
    struct pv *v = pv_arr(ps, (size_t)cnt);
    for (uint64_t i = 0; v && i < cnt; i++) {
        ITEMS(v)[i] = pv_int(ps, a <= b ? a + (int64_t)i : a - (int64_t)i);
        if (!ITEMS(v)[i])
            return NULL;
    }
    return v;
}

/* A long 'a'+'b'+'c'+... chain, appended into one buffer instead of
 * copying the growing left side at every '+' (which is quadratic).  Only
 * the chain's top gets a value. */
static struct pv *ev_add_chain(struct ps *ps, struct psn *n, size_t links)
{
    struct psn **rhs = malloc(links * sizeof(*rhs));
    if (!rhs) {
        ps->abort = true;
        return NULL;
    }
    size_t k = 0;
    struct psn *x = n;
    while (x->kind == N_BIN && x->op == B_ADD && k < links) {
        rhs[k++] = x->b;
        x = x->a;
    }
    struct pv *v = NULL, *first = ev(ps, x);
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = first && (first->kind == PV_STR || first->kind == PV_CHAR) &&
              put_str(ps, first, &b, 0);
    while (ok && k > 0 && !ps->abort) {
        struct pv *r = ev(ps, rhs[--k]);
        ok = r && put_str(ps, r, &b, 0) && !b.overflow;
    }
    if (ok && !ps->abort) {
        v = pv_buf(ps, &b);
        ps->ops |= OP_CONCAT;
    }
    sp_buf_fini(&b);
    free(rhs);
    return v;
}

static struct pv *ev_bin(struct ps *ps, struct psn *n)
{
    if (n->op == B_ADD) {
        size_t links = 0;
        for (struct psn *x = n; x->kind == N_BIN && x->op == B_ADD &&
                                links <= 64;
             x = x->a)
            links++;
        if (links > 64) {
            for (struct psn *x = n->a; x->kind == N_BIN && x->op == B_ADD;
                 x = x->a)
                links++;
            return ev_add_chain(ps, n, links);
        }
    }
    struct pv *l = ev(ps, n->a);
    struct pv *r = ev(ps, n->b);
    if (!l || !r)
        return NULL;
    bool cs = (n->op & B_CASE) != 0;
    int64_t x, y;
    bool ok;
    switch (n->op & ~B_CASE) {
    case B_ADD:
        return ev_add(ps, l, r);
    case B_SUB:
    case B_MUL:
    case B_DIV:
    case B_MOD:
        if ((n->op & ~B_CASE) == B_MUL && l->kind == PV_STR && to_int(r, &y) &&
            y >= 0 && (uint64_t)y * l->n < ((size_t)1 << 20)) {
            struct sp_buf b;
            sp_buf_init(&b, PS_ARENA_MAX);
            for (int64_t i = 0; i < y; i++)
                sp_buf_put(&b, l->s, l->n);
            struct pv *v = pv_buf(ps, &b);
            sp_buf_fini(&b);
            return v;
        }
        if (!to_int(l, &x) || !to_int(r, &y))
            return NULL;
        switch (n->op & ~B_CASE) {
        case B_SUB:
            return pv_int(ps, x - y);
        case B_MUL:
            return pv_int(ps, x * y);
        case B_DIV:
            return (y && x % y == 0) ? pv_int(ps, x / y) : NULL;
        default:
            return y ? pv_int(ps, x % y) : NULL;
        }
    case B_RANGE:
        return ev_range(ps, l, r);
    case B_FORMAT:
        return op_format(ps, l, r);
    case B_JOIN:
        return op_join(ps, l, r);
    case B_SPLIT:
        return op_split(ps, l, r, cs);
    case B_REPLACE:
        return op_replace(ps, l, r, cs);
    case B_BXOR:
    case B_BAND:
    case B_BOR:
    case B_SHL:
    case B_SHR:
        if (!to_int(l, &x) || !to_int(r, &y))
            return NULL;
        switch (n->op & ~B_CASE) {
        case B_BXOR:
            ps->ops |= OP_BXOR;
            return pv_int(ps, x ^ y);
        case B_BAND:
            return pv_int(ps, x & y);
        case B_BOR:
            return pv_int(ps, x | y);
        case B_SHL:
            return y >= 0 && y < 63 ? pv_int(ps, x << y) : NULL;
        default:
            return y >= 0 && y < 63 ? pv_int(ps, x >> y) : NULL;
        }
    case B_AS:
        if (r->kind != PV_TYPE)
            return NULL;
        {
            struct pv *v = cast(ps, r->s, r->n, l);
            return v ? v : pv_new(ps, PV_NULL);
        }
    case B_EQ:
    case B_NE:
    case B_GT:
    case B_GE:
    case B_LT:
    case B_LE: {
        if (l->kind == PV_ARR)
            return NULL;
        int c = cmp_values(ps, l, r, cs, &ok);
        if (!ok)
            return NULL;
        switch (n->op & ~B_CASE) {
        case B_EQ:
            return pv_bool(ps, c == 0);
        case B_NE:
            return pv_bool(ps, c != 0);
        case B_GT:
            return pv_bool(ps, c > 0);
        case B_GE:
            return pv_bool(ps, c >= 0);
        case B_LT:
            return pv_bool(ps, c < 0);
        default:
            return pv_bool(ps, c <= 0);
        }
    }
    case B_LIKE:
    case B_NOTLIKE: {
        const char *s, *t;
        size_t sn, tn;
        if (!to_str(ps, l, &s, &sn) || !to_str(ps, r, &t, &tn))
            return NULL;
        bool m = wild_match(t, tn, s, sn);
        return pv_bool(ps, (n->op & ~B_CASE) == B_LIKE ? m : !m);
    }
    case B_CONTAINS:
    case B_NOTCONTAINS:
    case B_IN:
    case B_NOTIN: {
        bool in = (n->op & ~B_CASE) == B_IN || (n->op & ~B_CASE) == B_NOTIN;
        struct pv *coll = in ? r : l, *item = in ? l : r;
        struct pv **items, *one;
        size_t k = enumerate(ps, coll, &items, &one);
        bool found = false;
        for (size_t i = 0; i < k && !found; i++) {
            int c = cmp_values(ps, items[i], item, cs, &ok);
            if (!ok)
                return NULL;
            found = c == 0;
        }
        uint16_t o = n->op & ~B_CASE;
        return pv_bool(ps, (o == B_CONTAINS || o == B_IN) ? found : !found);
    }
    case B_AND:
        return pv_bool(ps, truthy(l) && truthy(r));
    case B_OR:
        return pv_bool(ps, truthy(l) || truthy(r));
    case B_XOR:
        return pv_bool(ps, truthy(l) != truthy(r));
    default:
        return NULL;
    }
}

static void note_write(struct ps *ps, const char *s, size_t n)
{
    struct asg_rec *a = ps->cur_asg;
    if (!a)
        return;
    if (a->n == n && sp_strncaseeq(a->name, s, n))
        return;
    if (a->w2 && !(a->w2n == n && sp_strncaseeq(a->w2, s, n)))
        a->ok = false;
    a->w2 = s;
    a->w2n = n;
}

static struct pv *ev_un(struct ps *ps, struct psn *n)
{
    if (n->op == U_PREINC || n->op == U_PREDEC || n->op == U_POSTINC ||
        n->op == U_POSTDEC) {
        struct psn *t = n->a;
        if (t->kind != N_VAR)
            return NULL;
        struct pv *old = read_var(ps, t, t->s, t->n);
        int64_t x;
        note_write(ps, t->s, t->n);
        if (!old || !to_int(old, &x)) {
            var_set(ps, t->s, t->n, NULL);
            return NULL;
        }
        int64_t nx = (n->op == U_PREINC || n->op == U_POSTINC) ? x + 1 : x - 1;
        struct pv *nv = pv_int(ps, nx);
        var_set(ps, t->s, t->n, nv);
        return (n->op == U_PREINC || n->op == U_PREDEC) ? nv : pv_int(ps, x);
    }
    struct pv *v = ev(ps, n->a);
    if (!v)
        return NULL;
    int64_t x;
    switch (n->op) {
    case U_NEG:
        return to_int(v, &x) ? pv_int(ps, -x) : NULL;
    case U_PLUS:
        return to_int(v, &x) ? pv_int(ps, x) : NULL;
    case U_NOT:
        return pv_bool(ps, !truthy(v));
    case U_BNOT:
        return to_int(v, &x) ? pv_int(ps, ~x) : NULL;
    case U_JOIN:
        return op_join(ps, v, NULL);
    case U_SPLIT: {
        const char *s;
        size_t sn;
        if (!to_str(ps, v, &s, &sn))
            return NULL;
        struct pvlist out = {0};
        size_t i = 0;
        while (i < sn) {
            while (i < sn && deob_isspace((unsigned char)s[i]))
                i++;
            size_t j = i;
            while (j < sn && !deob_isspace((unsigned char)s[j]))
                j++;
            if (j > i && !pvlist_add(ps, &out, pv_str(ps, s + i, j - i)))
                return NULL;
            i = j;
        }
        ps->ops |= OP_SPLITJOIN;
        return pvlist_value(ps, &out);
    }
    case U_COMMA: {
        struct pv *a = pv_arr(ps, 1);
        if (a)
            ITEMS(a)[0] = v;
        return a;
    }
    default:
        return NULL;
    }
}

static struct pv *ev_index(struct ps *ps, struct psn *n)
{
    struct pv *ov = ev(ps, n->a);
    struct pv *iv = ev(ps, n->b);
    if (!ov || !iv)
        return NULL;
    if (ov->kind == PV_METHOD || ov->kind == PV_HASH || is_nullish(ov))
        return NULL;
    struct pv **idx, *one;
    size_t k = enumerate(ps, iv, &idx, &one);
    if (iv->kind == PV_STR)
        k = 1, idx = &iv;
    size_t len = ov->kind == PV_STR ? str_len(ps, ov)
                 : ov->kind == PV_ARR || ov->kind == PV_BYTES ? ov->count
                                                              : 0;
    if (ov->kind != PV_STR && ov->kind != PV_ARR && ov->kind != PV_BYTES)
        return NULL;
    struct pvlist out = {0};
    int64_t prev = 0;
    bool desc = k >= 2;
    for (size_t i = 0; i < k; i++) {
        int64_t x;
        if (!to_int(idx[i], &x))
            return NULL;
        if (x < 0)
            x += (int64_t)len;
        if (i && x != prev - 1)
            desc = false;
        prev = x;
        if (x < 0 || (uint64_t)x >= len)
            continue;
        struct pv *item;
        if (ov->kind == PV_STR)
            item = pv_char(ps, str_at(ps, ov, (size_t)x));
        else if (ov->kind == PV_BYTES)
            item = pv_int(ps, ((const unsigned char *)ov->p)[x]);
        else
            item = ITEMS(ov)[x];
        if (!pvlist_add(ps, &out, item))
            return NULL;
    }
    if (ov->kind == PV_STR)
        ps->ops |= desc && k + 1 >= len ? OP_REVERSE : OP_CHARPICK;
    else if (desc && k + 1 >= len)
        ps->ops |= OP_REVERSE;
    if (iv->kind != PV_ARR)
        return out.n ? out.v[0] : pv_new(ps, PV_NULL);
    struct pv *a = pv_arr(ps, 0);
    if (a) {
        a->p = out.v;
        a->count = out.n;
    }
    return a;
}

static struct pv *ev_xstr(struct ps *ps, struct psn *n)
{
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = true;
    for (struct psn *part = n->a; part && ok; part = part->next) {
        if (part->kind == N_STR) {
            sp_buf_put(&b, part->s, part->n);
            continue;
        }
        struct pv *v = ev(ps, part);
        ok = v && put_str(ps, v, &b, 0);
    }
    struct pv *v = ok ? pv_buf(ps, &b) : NULL;
    sp_buf_fini(&b);
    if (v && (n->flags & NF_TICK))
        ps->ops |= OP_BACKTICK;
    return v;
}

static struct pv *ev_member(struct ps *ps, struct psn *n)
{
    struct pv *ov = ev(ps, n->a);
    const char *name = NULL;
    size_t nl = 0;
    if (n->b->kind == N_WORD) {
        name = n->b->s;
        nl = n->b->n;
        if (n->b->flags & NF_TICK)
            ps->ops |= OP_BACKTICK;
    } else {
        struct pv *nv = ev(ps, n->b);
        if (nv && nv->kind == PV_STR)
            name = nv->s, nl = nv->n;
    }
    size_t nargs = 0;
    for (struct psn *a = n->c; a; a = a->next)
        nargs++;
    struct pv **args = nargs ? ps_alloc(ps, nargs * sizeof(*args)) : NULL;
    struct psn **argn = nargs ? ps_alloc(ps, nargs * sizeof(*argn)) : NULL;
    bool known = true;
    size_t k = 0;
    if (nargs && (!args || !argn))
        return NULL;
    for (struct psn *a = n->c; a; a = a->next, k++) {
        args[k] = ev(ps, a);
        argn[k] = a;
        if (!args[k])
            known = false;
    }
    if (!ov || !name || !known || (nargs && !args))
        return NULL;
    char *lname = ps_lower(ps, name, nl);
    if (!lname)
        return NULL;
    bool call = (n->flags & NF_CALL) != 0;
    if (n->flags & NF_STATIC) {
        if (ov->kind != PV_TYPE)
            return NULL;
        return static_member(ps, ov->s, ov->n, lname, args, argn, nargs,
                             call, n);
    }
    return inst_member(ps, ov, lname, args, nargs, call, n);
}

/* ---- SecureString ---- */

static struct pv *securestring_decrypt(struct ps *ps, struct pv *str,
                                       struct pv *keyv)
{
    const char *s;
    size_t n;
    unsigned char key[32];
    size_t kl = 0;
    if (!to_str(ps, str, &s, &n) || !keyv)
        return NULL;
    struct pv **items, *one;
    size_t k = keyv->kind == PV_BYTES ? keyv->count
                                      : enumerate(ps, keyv, &items, &one);
    if (k != 16 && k != 24 && k != 32)
        return NULL;
    for (size_t i = 0; i < k; i++) {
        int64_t x;
        if (keyv->kind == PV_BYTES)
            x = ((const unsigned char *)keyv->p)[i];
        else if (!to_int(items[i], &x) || x < 0 || x > 255)
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
    unsigned char *pt = ps_alloc(ps, ct.len);
    size_t plen;
    if (!pt || !deob_aes_cbc_decrypt(key, kl, (unsigned char *)iv.data,
                                     (unsigned char *)ct.data, ct.len, pt,
                                     &plen))
        goto out;
    struct sp_buf u;
    sp_buf_init(&u, plen * 2 + 16);
    if (deob_utf16le_to_utf8(pt, plen, &u) == SP_OK && !u.overflow) {
        res = pv_named(ps, PV_SECURE, ps_strdup(ps, u.data ? u.data : "",
                                                u.len),
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

/* ---- commands ---- */

struct carg {
    struct psn *node;
    struct pv *v;
    const char *pname;  /* lower case, for parameters */
    size_t pn;
    bool param, used;
};

struct cargs {
    struct carg *a;
    size_t n;
};

/* Value of -name (prefix of full, at least min chars); the argument after
 * the parameter unless it is attached. */
static struct pv *carg_named(struct cargs *ca, const char *full, size_t min,
                             bool *found)
{
    *found = false;
    for (size_t i = 0; i < ca->n; i++) {
        struct carg *c = &ca->a[i];
        if (!c->param || c->used || !name_is_prefix(c->pname, c->pn, full,
                                                    min))
            continue;
        c->used = true;
        *found = true;
        if (c->node->a)
            return c->v;
        if (i + 1 < ca->n && !ca->a[i + 1].param) {
            ca->a[i + 1].used = true;
            return ca->a[i + 1].v;
        }
        return NULL;
    }
    return NULL;
}

static bool carg_switch(struct cargs *ca, const char *full, size_t min)
{
    for (size_t i = 0; i < ca->n; i++) {
        struct carg *c = &ca->a[i];
        if (c->param && !c->used && name_is_prefix(c->pname, c->pn, full,
                                                   min)) {
            c->used = true;
            return true;
        }
    }
    return false;
}

static struct carg *carg_pos(struct cargs *ca, size_t k)
{
    for (size_t i = 0; i < ca->n; i++) {
        struct carg *c = &ca->a[i];
        if (c->param || c->used)
            continue;
        if (k-- == 0) {
            c->used = true;
            return c;
        }
    }
    return NULL;
}

static struct pv *carg_posv(struct cargs *ca, size_t k, bool *found)
{
    struct carg *c = carg_pos(ca, k);
    *found = c != NULL;
    return c ? c->v : NULL;
}

static const char *const known_cmds[] = {
    "Invoke-Expression", "New-Object", "Get-Variable", "Set-Variable",
    "Invoke-Command", "Write-Host", "Start-Process", "Invoke-WebRequest",
    "Invoke-RestMethod", "Get-ChildItem", "Get-Item", "ForEach-Object",
    "Where-Object", "Out-String", "Out-Null", "ConvertTo-SecureString",
    "Get-Command", "Write-Output", "Set-Item", "Start-Sleep", NULL};

static const char *cmd_alias(const char *l)
{
    static const char *const map[][2] = {
        {"iex", "invoke-expression"}, {"%", "foreach-object"},
        {"foreach", "foreach-object"}, {"?", "where-object"},
        {"where", "where-object"}, {"gv", "get-variable"},
        {"sv", "set-variable"}, {"set", "set-variable"},
        {"gci", "get-childitem"}, {"ls", "get-childitem"},
        {"dir", "get-childitem"}, {"gi", "get-item"},
        {"gc", "get-content"}, {"cat", "get-content"},
        {"type", "get-content"}, {"gcm", "get-command"},
        {"echo", "write-output"}, {"write", "write-output"},
        {"icm", "invoke-command"}, {"nv", "new-variable"},
        {"new-variable", "set-variable"}, {"saps", "start-process"},
        {"start", "start-process"}, {"sleep", "start-sleep"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(map); i++)
        if (!strcmp(l, map[i][0]))
            return map[i][1];
    return l;
}

static bool is_iex_name(const char *l)
{
    return !strcmp(l, "invoke-expression");
}

/* Runs a block's statements for each input item ($_). */
static struct pv *run_foreach(struct ps *ps, struct psn *blk,
                              struct pv *input, bool has_input)
{
    if (!has_input || !input) {
        ps->opaque++;
        ev_stmts(ps, blk->a, NULL);
        ps->opaque--;
        return NULL;
    }
    struct pv **items, *one;
    size_t k = enumerate(ps, input, &items, &one);
    struct pvlist out = {0};
    struct pv *saved = ps->under;
    bool known = true;
    for (size_t i = 0; i < k && !ps->abort; i++) {
        ps->under = items[i];
        if (!ev_stmts(ps, blk->a, &out))
            known = false;
    }
    ps->under = saved;
    if (!known || ps->abort)
        return NULL;
    return pvlist_value(ps, &out);
}

static void record_asg(struct ps *ps, struct psn *stmt, const char *s,
                       size_t n, bool ok)
{
    var_base(&s, &n);
    if (ps->cur_stmt != ps->root_stmt || stmt != ps->root_stmt ||
        (n > 4 && sp_strncaseeq(s, "env:", 4)))
        return;
    if (!grow(ps, (void **)&ps->asgs, &ps->capasgs, ps->nasgs + 1,
              sizeof(*ps->asgs)))
        return;
    struct asg_rec *a = &ps->asgs[ps->nasgs++];
    memset(a, 0, sizeof(*a));
    a->stmt = stmt;
    a->name = s;
    a->n = n;
    a->ok = ok;
}

static struct pv *ev_cmd(struct ps *ps, struct psn *n, struct pv *input,
                         bool has_input, unsigned in_ops)
{
    struct psn *nn = n->a;
    const char *name = NULL;
    size_t nl = 0;
    struct pv *nv = NULL;
    unsigned outer = ps->ops;
    ps->ops = 0;
    if (!n->op) {
        name = nn->s;
        nl = nn->n;
    } else {
        nv = ev(ps, nn);
        if (nv && (nv->kind == PV_STR || nv->kind == PV_CMD)) {
            name = nv->s;
            nl = nv->n;
        }
    }
    /* arguments */
    struct cargs ca = {0};
    for (struct psn *a = n->b; a; a = a->next)
        ca.n++;
    ca.a = ca.n ? ps_alloc(ps, ca.n * sizeof(*ca.a)) : NULL;
    if (ca.n && !ca.a) {
        ps->ops |= outer;
        return NULL;
    }
    ps->ops = 0;
    size_t k = 0;
    for (struct psn *a = n->b; a; a = a->next, k++) {
        struct carg *c = &ca.a[k];
        c->node = a;
        if (a->kind == N_PARAM) {
            c->param = true;
            c->pname = ps_lower(ps, a->s, a->n);
            c->pn = a->n;
            if (!c->pname)
                return NULL;
            if (a->a)
                c->v = ev(ps, a->a);
        } else {
            c->v = ev(ps, a);
        }
    }
    unsigned arg_ops = ps->ops;
    ps->ops |= outer;

    /* a script block invoked in place */
    if (n->op && nn->kind == N_BLOCK) {
        struct pvlist out = {0};
        if (!ev_stmts(ps, nn->a, &out))
            return NULL;
        return pvlist_value(ps, &out);
    }
    if (nv && nv->kind == PV_BLOCK) {
        if (nv->fl & PVF_CREATED)
            mark_unwrap(ps, n, nv, nv->ops);
        return NULL;
    }
    if (!name || nl == 0 || nl > 128)
        return NULL;
    char lbuf[140];
    size_t bl = 0;
    for (size_t i = 0; i < nl; i++)
        lbuf[bl++] = sp_tolower(name[i]);
    lbuf[bl] = '\0';
    if (bl > 4 && !strcmp(lbuf + bl - 4, ".exe"))
        lbuf[bl -= 4] = '\0';
    const char *l = cmd_alias(lbuf);
    bool found;
    /* PowerShell tries Get-<name> for a name it does not know */
    static const char *const getters[] = {"childitem", "item", "variable",
                                          "content", "command"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(getters); i++) {
        if (!strcmp(l, getters[i])) {
            snprintf(lbuf, sizeof(lbuf), "get-%s", getters[i]);
            l = lbuf;
            break;
        }
    }

    if (is_iex_name(l)) {
        struct pv *script = carg_named(&ca, "command", 1, &found);
        unsigned ops = arg_ops;
        if (!found)
            script = carg_posv(&ca, 0, &found);
        if (!found && has_input) {
            script = input;
            ops = in_ops;
        }
        mark_unwrap(ps, n, script, ops);
        return NULL;
    }
    if (!strcmp(l, "foreach-object")) {
        struct psn *blk = NULL;
        for (size_t i = 0; i < ca.n; i++) {
            if (ca.a[i].param &&
                name_is_prefix(ca.a[i].pname, ca.a[i].pn, "process", 1) &&
                i + 1 < ca.n && ca.a[i + 1].node->kind == N_BLOCK) {
                blk = ca.a[i + 1].node;
                break;
            }
            if (!ca.a[i].param && ca.a[i].node->kind == N_BLOCK) {
                blk = ca.a[i].node;
                break;
            }
        }
        if (!blk) {
            /* % MemberName */
            struct pv *mv = carg_posv(&ca, 0, &found);
            if (!found || !mv || mv->kind != PV_STR || !input)
                return NULL;
            char *ml = ps_lower(ps, mv->s, mv->n);
            struct pv **items, *one;
            size_t cnt = enumerate(ps, input, &items, &one);
            struct pvlist out = {0};
            for (size_t i = 0; i < cnt && ml; i++) {
                struct pv *r = inst_member(ps, items[i], ml, NULL, 0, false,
                                           n);
                if (!r || !pvlist_add(ps, &out, r))
                    return NULL;
            }
            return ml ? pvlist_value(ps, &out) : NULL;
        }
        return run_foreach(ps, blk, input, has_input);
    }
    if (!strcmp(l, "where-object")) {
        for (size_t i = 0; i < ca.n; i++) {
            if (ca.a[i].node->kind == N_BLOCK) {
                ps->opaque++;
                ev_stmts(ps, ca.a[i].node->a, NULL);
                ps->opaque--;
            }
        }
        return NULL;
    }
    if (!strcmp(l, "new-object")) {
        struct pv *tv = carg_named(&ca, "typename", 1, &found);
        if (!found)
            tv = carg_posv(&ca, 0, &found);
        struct pv *av = carg_named(&ca, "argumentlist", 1, &found);
        if (!found)
            av = carg_posv(&ca, 0, &found);
        if (!tv || tv->kind != PV_STR || (found && !av))
            return NULL;
        struct pv **items = NULL, *one;
        size_t cnt = 0;
        if (found) {
            if (av->kind == PV_ARR)
                items = ITEMS(av), cnt = av->count;
            else
                one = av, items = &one, cnt = 1;
        }
        return new_object(ps, tv->s, tv->n, items, cnt);
    }
    if (!strcmp(l, "get-variable")) {
        struct pv *nm = carg_named(&ca, "name", 1, &found);
        bool vo = carg_switch(&ca, "valueonly", 2);
        struct carg *pc0 = NULL;
        if (!found) {
            pc0 = carg_pos(&ca, 0);
            nm = pc0 ? pc0->v : NULL;
        }
        const char *vn;
        size_t vnl;
        if (!nm || nm->kind != PV_STR ||
            !var_lookup_wild(ps, nm->s, nm->n, &vn, &vnl))
            return NULL;
        struct psn *rn = pc0 ? pc0->node : n;
        struct pv *val = read_var(ps, rn, vn, vnl);
        ps->ops |= OP_VARIND;
        if (vo)
            return val;
        struct pv *o = pv_named(ps, PV_VAROBJ, vn, vnl);
        if (o)
            o->p = val;
        return o;
    }
    if (!strcmp(l, "set-variable")) {
        struct pv *nm = carg_named(&ca, "name", 1, &found);
        if (!found)
            nm = carg_posv(&ca, 0, &found);
        struct pv *val = carg_named(&ca, "value", 1, &found);
        if (!found)
            val = carg_posv(&ca, 0, &found);
        if (!found && has_input)
            val = input, found = true;
        if (!nm || nm->kind != PV_STR)
            return NULL;
        var_set(ps, nm->s, nm->n, found ? val : NULL);
        if (ps->root_stmt && ps->unwrap_target == n &&
            n == ps->root_stmt->a && !n->next)
            record_asg(ps, ps->root_stmt, nm->s, nm->n, val != NULL);
        return pv_new(ps, PV_VOID);
    }
    if (!strcmp(l, "get-childitem") || !strcmp(l, "get-item") ||
        !strcmp(l, "get-content")) {
        struct pv *path = carg_named(&ca, "path", 1, &found);
        struct carg *c0 = NULL;
        if (!found) {
            path = carg_named(&ca, "literalpath", 1, &found);
        }
        if (!found) {
            c0 = carg_pos(&ca, 0);
            path = c0 ? c0->v : NULL;
        }
        if (!path || path->kind != PV_STR)
            return NULL;
        if (path->n > 9 && sp_strncaseeq(path->s, "variable:", 9)) {
            const char *vn = path->s + 9;
            size_t vnl = path->n - 9;
            while (vnl && (*vn == '\\' || *vn == '/'))
                vn++, vnl--;
            if (!var_lookup_wild(ps, vn, vnl, &vn, &vnl))
                return NULL;
            struct pv *val = read_var(ps, c0 ? c0->node : n, vn, vnl);
            ps->ops |= OP_VARIND;
            if (!strcmp(l, "get-content"))
                return val;
            struct pv *o = pv_named(ps, PV_VAROBJ, vn, vnl);
            if (o)
                o->p = val;
            return o;
        }
        if (path->n > 4 && sp_strncaseeq(path->s, "env:", 4)) {
            const char *vn = path->s + 4;
            size_t vnl = path->n - 4;
            while (vnl && (*vn == '\\' || *vn == '/'))
                vn++, vnl--;
            struct pv *val = env_value(ps, vn, vnl);
            if (!strcmp(l, "get-content"))
                return val;
            struct pv *o = pv_named(ps, PV_VAROBJ, vn, vnl);
            if (o)
                o->p = val;
            return o;
        }
        return NULL;
    }
    if (!strcmp(l, "get-command")) {
        struct pv *nm = carg_named(&ca, "name", 1, &found);
        if (!found)
            nm = carg_posv(&ca, 0, &found);
        if (!nm || nm->kind != PV_STR || nm->n == 0)
            return NULL;
        if (memchr(nm->s, '*', nm->n) || memchr(nm->s, '?', nm->n)) {
            for (size_t i = 0; known_cmds[i]; i++)
                if (wild_match(nm->s, nm->n, known_cmds[i],
                               strlen(known_cmds[i])))
                    return pv_named(ps, PV_CMD, known_cmds[i],
                                    strlen(known_cmds[i]));
            return NULL;
        }
        return pv_named(ps, PV_CMD, nm->s, nm->n);
    }
    if (!strcmp(l, "convertto-securestring")) {
        struct pv *str = carg_named(&ca, "string", 1, &found);
        struct pv *key = carg_named(&ca, "key", 1, &found);
        bool plain = carg_switch(&ca, "asplaintext", 1);
        carg_switch(&ca, "force", 1);
        if (!str) {
            str = carg_posv(&ca, 0, &found);
            if (!found && has_input)
                str = input;
        }
        if (!str)
            return NULL;
        if (plain && !key) {
            const char *s;
            size_t sl;
            return to_str(ps, str, &s, &sl) ? pv_named(ps, PV_SECURE, s, sl)
                                            : NULL;
        }
        return securestring_decrypt(ps, str, key);
    }
    if (!strcmp(l, "write-output")) {
        if (has_input && ca.n == 0)
            return input;
        struct pvlist out = {0};
        for (size_t i = 0; i < ca.n; i++) {
            if (ca.a[i].param)
                continue;
            if (!ca.a[i].v || !pvlist_add_all(ps, &out, ca.a[i].v))
                return NULL;
        }
        return pvlist_value(ps, &out);
    }
    if (!strcmp(l, "out-string")) {
        return has_input && input ? to_strv(ps, input) : NULL;
    }
    if (!strcmp(l, "invoke-command")) {
        struct pv *sb = carg_named(&ca, "scriptblock", 1, &found);
        if (!found)
            sb = carg_posv(&ca, 0, &found);
        if (sb && sb->kind == PV_BLOCK && (sb->fl & PVF_CREATED))
            mark_unwrap(ps, n, sb, sb->ops | arg_ops);
        return NULL;
    }
    if (!strcmp(l, "write-host") || !strcmp(l, "out-null") ||
        !strcmp(l, "start-sleep") || !strcmp(l, "out-file") ||
        !strcmp(l, "write-verbose") || !strcmp(l, "write-debug") ||
        !strcmp(l, "set-strictmode") || !strcmp(l, "clear-host"))
        return pv_new(ps, PV_VOID);
    return NULL;
}

static struct pv *ev_pipe(struct ps *ps, struct psn *n)
{
    bool is_stmt = n == ps->cur_stmt;
    struct pv *v = NULL;
    bool has_in = false;
    for (struct psn *e = n->a; e && !ps->abort; e = e->next) {
        struct psn *saved = ps->unwrap_target;
        ps->unwrap_target = is_stmt && !e->next ? e : NULL;
        unsigned in_ops = ps->ops;
        if (e->kind == N_CMD) {
            v = ev_cmd(ps, e, v, has_in, in_ops);
        } else if (!has_in) {
            v = ev(ps, e);
        } else {
            ev(ps, e);
            v = NULL;
        }
        ps->unwrap_target = saved;
        has_in = true;
    }
    return v;
}

static struct pv *ev_assign(struct ps *ps, struct psn *n)
{
    struct psn *t = n->a;
    bool root = ps->cur_stmt == n && ps->root_stmt == n;
    struct asg_rec *saved = ps->cur_asg;
    struct psn *tv = t;
    while (tv->kind == N_CAST)
        tv = tv->a;
    if (root && tv->kind == N_VAR) {
        record_asg(ps, n, tv->s, tv->n, true);
        ps->cur_asg = ps->nasgs ? &ps->asgs[ps->nasgs - 1] : NULL;
        if (ps->cur_asg && ps->cur_asg->stmt != n)
            ps->cur_asg = NULL;
    }
    struct pv *v = ev(ps, n->b);
    size_t asg_idx = ps->cur_asg ? (size_t)(ps->cur_asg - ps->asgs) : 0;
    bool have_asg = ps->cur_asg != NULL;
    ps->cur_asg = saved;
    if (v && v->kind == PV_VOID)
        v = NULL;
    if (n->op != '=' && tv->kind == N_VAR) {
        struct pv *old = read_var(ps, tv, tv->s, tv->n);
        int64_t x, y;
        if (!old || !v)
            v = NULL;
        else if (n->op == '+')
            v = ev_add(ps, old, v);
        else if (n->op == '-' && to_int(old, &x) && to_int(v, &y))
            v = pv_int(ps, x - y);
        else
            v = NULL;
    }
    if (t->kind == N_CAST && v) {
        v = cast(ps, t->s, t->n, v);
    }
    if (tv->kind == N_VAR) {
        var_set(ps, tv->s, tv->n, v);
    } else if (tv->kind == N_INDEX || tv->kind == N_MEMBER) {
        struct psn *base = tv->a;
        while (base && (base->kind == N_INDEX || base->kind == N_MEMBER))
            base = base->a;
        if (tv->kind == N_INDEX)
            ev(ps, tv->b);
        if (base && base->kind == N_VAR)
            var_set(ps, base->s, base->n, NULL);
    } else if (tv->kind == N_ARRAY) {
        for (struct psn *x = tv->a; x; x = x->next)
            if (x->kind == N_VAR)
                var_set(ps, x->s, x->n, NULL);
    }
    if (have_asg)
        ps->asgs[asg_idx].ok = ps->asgs[asg_idx].ok && v != NULL;
    return v;
}

static struct pv *ev_keyword(struct ps *ps, struct psn *n)
{
    for (struct psn *c = n->a; c && !ps->abort; c = c->next) {
        if (c->flags & NF_KEYVAR) {
            var_set(ps, c->s, c->n, NULL);
            continue;
        }
        bool opq = (c->flags & NF_OPAQUE) != 0;
        if (opq)
            ps->opaque++;
        if (c->kind == N_STMTS)
            ev_stmts(ps, c->a, NULL);
        else if (c->kind == N_OPAQUE)
            invalidate_span(ps, c->start, c->end);
        else
            ev(ps, c);
        if (opq)
            ps->opaque--;
    }
    /* a loop may have run its body several times */
    invalidate_span(ps, n->start, n->end);
    return NULL;
}

static struct pv *ev_node(struct ps *ps, struct psn *n)
{
    switch (n->kind) {
    case N_NUM:
        return (n->flags & NF_NUMOK) ? pv_int(ps, n->i) : NULL;
    case N_STR:
        return pv_str_ref(ps, n->s, n->n);
    case N_WORD: {
        if (n->flags & NF_TICK)
            ps->ops |= OP_BACKTICK;
        return pv_str_ref(ps, n->s, n->n);
    }
    case N_XSTR:
        return ev_xstr(ps, n);
    case N_VAR:
        return read_var(ps, n, n->s, n->n);
    case N_BIN:
        return ev_bin(ps, n);
    case N_UN:
        return ev_un(ps, n);
    case N_CAST:
        return cast(ps, n->s, n->n, ev(ps, n->a));
    case N_TYPE:
        return pv_named(ps, PV_TYPE, n->s, n->n);
    case N_ARRAY: {
        size_t k = 0;
        for (struct psn *x = n->a; x; x = x->next)
            k++;
        struct pv *a = pv_arr(ps, k);
        bool known = a != NULL;
        k = 0;
        for (struct psn *x = n->a; x; x = x->next, k++) {
            struct pv *v = ev(ps, x);
            if (!v)
                known = false;
            else if (a)
                ITEMS(a)[k] = v;
        }
        return known ? a : NULL;
    }
    case N_INDEX:
        return ev_index(ps, n);
    case N_MEMBER:
        return ev_member(ps, n);
    case N_PAREN: {
        if (!n->a)
            return NULL;
        struct pv *v = ev(ps, n->a);
        return v && v->kind == PV_VOID ? pv_new(ps, PV_NULL) : v;
    }
    case N_SUB:
    case N_ARRSUB: {
        struct pvlist out = {0};
        struct psn *saved = ps->cur_stmt;
        bool known = ev_stmts(ps, n->a, &out);
        ps->cur_stmt = saved;
        if (!known)
            return NULL;
        if (n->kind == N_SUB)
            return pvlist_value(ps, &out);
        struct pv *a = pv_arr(ps, 0);
        if (a) {
            a->p = out.v;
            a->count = out.n;
        }
        return a;
    }
    case N_HASH:
        return pv_new(ps, PV_HASH);
    case N_BLOCK: {
        size_t s0 = n->start + 1, e0 = n->end > s0 ? n->end - 1 : s0;
        return pv_named(ps, PV_BLOCK, ps->s + s0, e0 - s0);
    }
    case N_PIPE:
        return ev_pipe(ps, n);
    case N_ASSIGN:
        return ev_assign(ps, n);
    case N_CMD:
        return ev_cmd(ps, n, NULL, false, 0);
    case N_KEYWORD:
        return ev_keyword(ps, n);
    case N_OPAQUE:
        invalidate_span(ps, n->start, n->end);
        return NULL;
    case N_PARAM:
        return n->a ? ev(ps, n->a) : NULL;
    default:
        return NULL;
    }
}

static struct pv *ev(struct ps *ps, struct psn *n)
{
    if (!n || ps->abort)
        return NULL;
    if (++ps->steps > PS_MAX_STEPS || deob_time_up(ps->ctx)) {
        ps->abort = true;
        return NULL;
    }
    unsigned saved = ps->ops;
    ps->ops = 0;
    struct pv *v = ev_node(ps, n);
    if (v && v->kind != PV_STR && v->kind != PV_CHAR && v->kind != PV_INT &&
        v->kind != PV_BOOL && v->kind != PV_NULL && v->kind != PV_TYPE)
        v->ops |= (uint16_t)ps->ops;
    if (n->vstate == VS_NONE) {
        n->vstate = v ? VS_KNOWN : VS_VARY;
        n->val = v;
        n->ops = ps->ops;
    } else if (n->vstate == VS_KNOWN) {
        if (!pv_equal(n->val, v))
            n->vstate = VS_VARY;
        n->ops |= ps->ops;
    }
    if (ps->opaque && v && n->vstate == VS_KNOWN && n->kind == N_VAR)
        n->vstate = VS_VARY;
    ps->ops |= saved;
    return v;
}

static bool ev_stmts(struct ps *ps, struct psn *list, struct pvlist *out)
{
    bool known = true;
    for (struct psn *st = list; st && !ps->abort; st = st->next) {
        struct psn *saved = ps->cur_stmt;
        ps->cur_stmt = st;
        struct pv *v = ev(ps, st);
        ps->cur_stmt = saved;
        if (!out || st->kind == N_ASSIGN)
            continue;
        if (st->kind == N_KEYWORD) {
            if (st->s && (!strcmp(st->s, "function") ||
                          !strcmp(st->s, "filter") || !strcmp(st->s, "param") ||
                          !strcmp(st->s, "trap")))
                continue;
            known = false;
            continue;
        }
        if (!v) {
            known = false;
            continue;
        }
        if (v->kind == PV_VOID)
            continue;
        if (!pvlist_add_all(ps, out, v))
            known = false;
    }
    return known;
}

/* ---- .NET members ---- */

static const struct {
    const char *name;
    const char *sig;
} method_sigs[] = {
    {"insert", "string Insert(int startIndex, string value)"},
    {"lastindexofany",
     "int LastIndexOfAny(char[] anyOf), int LastIndexOfAny(char[] anyOf, "
     "int startIndex), int LastIndexOfAny(char[] anyOf, int startIndex, int "
     "count)"},
    {"indexofany",
     "int IndexOfAny(char[] anyOf), int IndexOfAny(char[] anyOf, int "
     "startIndex), int IndexOfAny(char[] anyOf, int startIndex, int count)"},
    {"normalize",
     "string Normalize(), string Normalize(System.Text.NormalizationForm "
     "normalizationForm)"},
    {"tochararray",
     "char[] ToCharArray(), char[] ToCharArray(int startIndex, int length)"},
    {"chars", "char Chars(int index)"},
    {"padleft",
     "string PadLeft(int totalWidth), string PadLeft(int totalWidth, char "
     "paddingChar)"},
    {"trimend", "string TrimEnd(Params char[] trimChars)"},
    {"trimstart", "string TrimStart(Params char[] trimChars)"},
};

static const char *method_signature(const char *name, size_t n)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(method_sigs); i++)
        if (deob_ci_eqn(name, n, method_sigs[i].name))
            return method_sigs[i].sig;
    return NULL;
}

static struct pv *pv_method(struct ps *ps, struct pv *target,
                            const char *name)
{
    struct pv *m = pv_named(ps, PV_METHOD, name, strlen(name));
    if (m)
        m->p = target;
    return m;
}

static bool arg_int(struct pv **args, size_t nargs, size_t k, int64_t *x)
{
    return k < nargs && to_int(args[k], x);
}

static bool arg_str(struct ps *ps, struct pv **args, size_t nargs, size_t k,
                    const char **s, size_t *n)
{
    return k < nargs && to_str(ps, args[k], s, n);
}

/* Decodes bytes with a Text.Encoding. */
static struct pv *enc_decode(struct ps *ps, int enc, const unsigned char *b,
                             size_t n)
{
    struct sp_buf out;
    sp_buf_init(&out, PS_ARENA_MAX);
    switch (enc) {
    case ENC_UNICODE:
        deob_utf16le_to_utf8(b, n, &out);
        break;
    case ENC_BIGENDIAN:
        for (size_t i = 0; i + 1 < n; i += 2)
            deob_utf8_put(&out, ((uint32_t)b[i] << 8) | b[i + 1]);
        break;
    case ENC_UTF32:
        for (size_t i = 0; i + 3 < n; i += 4)
            deob_utf8_put(&out, (uint32_t)b[i] | ((uint32_t)b[i + 1] << 8) |
                                    ((uint32_t)b[i + 2] << 16) |
                                    ((uint32_t)b[i + 3] << 24));
        break;
    case ENC_ASCII:
        for (size_t i = 0; i < n; i++)
            sp_buf_putc(&out, b[i] < 0x80 ? (char)b[i] : '?');
        break;
    case ENC_LATIN1:
        for (size_t i = 0; i < n; i++)
            deob_utf8_put(&out, b[i]);
        break;
    default: {
        size_t s = n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3
                                                                         : 0;
        sp_buf_put(&out, b + s, n - s);
        break;
    }
    }
    struct pv *v = pv_buf(ps, &out);
    sp_buf_fini(&out);
    return v;
}

static int enc_by_name(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int enc;
    } names[] = {
        {"utf8", ENC_UTF8},       {"utf-8", ENC_UTF8},
        {"65001", ENC_UTF8},      {"unicode", ENC_UNICODE},
        {"utf-16", ENC_UNICODE},  {"1200", ENC_UNICODE},
        {"ascii", ENC_ASCII},     {"us-ascii", ENC_ASCII},
        {"20127", ENC_ASCII},     {"default", ENC_LATIN1},
        {"1252", ENC_LATIN1},     {"windows-1252", ENC_LATIN1},
        {"iso-8859-1", ENC_LATIN1}, {"28591", ENC_LATIN1},
        {"bigendianunicode", ENC_BIGENDIAN}, {"1201", ENC_BIGENDIAN},
        {"utf32", ENC_UTF32},     {"utf-32", ENC_UTF32},
        {"12000", ENC_UTF32},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++)
        if (deob_ci_eqn(s, n, names[i].name))
            return names[i].enc;
    return -1;
}

static struct pv *pv_enc(struct ps *ps, int enc)
{
    struct pv *v = pv_new(ps, PV_ENC);
    if (v)
        v->i = enc;
    return v;
}

static struct pv *new_object(struct ps *ps, const char *tname, size_t tl,
                             struct pv **args, size_t nargs)
{
    char t[64];
    type_norm(tname, tl, t, sizeof(t));
    if (!strcmp(t, "io.memorystream")) {
        if (nargs == 0)
            return pv_bytes(ps, PV_STREAM, NULL, 0);
        struct pv *a = args[0];
        if (a->kind == PV_ARR && a->count == 1)
            a = ITEMS(a)[0];
        if (a->kind != PV_BYTES) {
            struct pv *b = cast(ps, "byte[]", 6, a);
            if (!b)
                return NULL;
            a = b;
        }
        struct pv *st = pv_bytes(ps, PV_STREAM, a->p, a->count);
        if (st)
            st->ops = a->ops;
        return st;
    }
    if (!strcmp(t, "io.compression.deflatestream") ||
        !strcmp(t, "io.compression.gzipstream")) {
        if (nargs < 1 || args[0]->kind != PV_STREAM)
            return NULL;
        struct sp_buf out;
        sp_buf_init(&out, ps->ctx->lim.max_output);
        struct pv *v = NULL;
        int mode = t[15] == 'd' ? DEOB_Z_RAW : DEOB_Z_GZIP;
        if (deob_inflate(ps->ctx, args[0]->p, args[0]->count, mode, &out)) {
            v = pv_bytes(ps, PV_STREAM, out.data, out.len);
            if (v) {
                v->ops = (uint16_t)(args[0]->ops | OP_DEFLATE);
                ps->ops |= OP_DEFLATE;
            }
        }
        sp_buf_fini(&out);
        return v;
    }
    if (!strcmp(t, "io.streamreader")) {
        if (nargs < 1 || args[0]->kind != PV_STREAM)
            return NULL;
        int enc = ENC_UTF8;
        if (nargs >= 2 && args[1]->kind == PV_ENC)
            enc = (int)args[1]->i;
        const unsigned char *b = args[0]->p;
        size_t n = args[0]->count;
        if (n >= 2 && b[0] == 0xFF && b[1] == 0xFE)
            enc = ENC_UNICODE, b += 2, n -= 2;
        struct pv *s = enc_decode(ps, enc, b, n);
        if (!s)
            return NULL;
        struct pv *r = pv_named(ps, PV_READER, s->s, s->n);
        if (r)
            r->ops = args[0]->ops;
        return r;
    }
    if (!strcmp(t, "management.automation.pscredential")) {
        if (nargs < 2 || args[1]->kind != PV_SECURE)
            return NULL;
        struct pv *c = pv_new(ps, PV_CRED);
        if (c) {
            c->p = args[1];
            c->ops = args[1]->ops;
        }
        return c;
    }
    if (!strcmp(t, "string")) {
        if (nargs == 1)
            return op_join(ps, args[0], NULL);
        return NULL;
    }
    if (!strcmp(t, "text.utf8encoding"))
        return pv_enc(ps, ENC_UTF8);
    if (!strcmp(t, "text.unicodeencoding"))
        return pv_enc(ps, ENC_UNICODE);
    if (!strcmp(t, "text.asciiencoding"))
        return pv_enc(ps, ENC_ASCII);
    return pv_named(ps, PV_OBJ, ps_lower(ps, t, strlen(t)), strlen(t));
}

static struct pv *convert_base(struct ps *ps, struct pv **args, size_t nargs)
{
    int64_t base = 10, x;
    const char *s;
    size_t n;
    if (nargs >= 2 && !arg_int(args, nargs, 1, &base))
        return NULL;
    if (nargs == 1 || base == 10) {
        if (!arg_int(args, nargs, 0, &x))
            return NULL;
        return pv_int(ps, x);
    }
    if (!arg_str(ps, args, nargs, 0, &s, &n) || n == 0 || n > 64 ||
        (base != 2 && base != 8 && base != 16))
        return NULL;
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && deob_isspace((unsigned char)s[i]))
        i++;
    if (base == 16 && i + 1 < n && s[i] == '0' && (s[i + 1] | 32) == 'x')
        i += 2;
    size_t d = 0;
    for (; i < n && !deob_isspace((unsigned char)s[i]); i++, d++) {
        int h = deob_hexval((unsigned char)s[i]);
        if (h < 0 || h >= base || d > 63)
            return NULL;
        v = v * (uint64_t)base + (uint64_t)h;
    }
    if (!d)
        return NULL;
    ps->ops |= OP_CHARCODE;
    return pv_int(ps, (int64_t)v);
}

static struct pv *static_member(struct ps *ps, const char *type, size_t tl,
                                const char *name, struct pv **args,
                                struct psn **argn, size_t nargs, bool call,
                                struct psn *node)
{
    char t[64];
    type_norm(type, tl, t, sizeof(t));
    const char *s;
    size_t n;
    if (!strcmp(t, "convert")) {
        if (!strcmp(name, "frombase64string")) {
            if (!arg_str(ps, args, nargs, 0, &s, &n))
                return NULL;
            struct sp_buf b;
            sp_buf_init(&b, n + 4);
            struct pv *v = deob_b64_decode(s, n, &b)
                               ? pv_bytes(ps, PV_BYTES, b.data, b.len)
                               : NULL;
            sp_buf_fini(&b);
            if (v) {
                v->ops = OP_BASE64;
                ps->ops |= OP_BASE64;
            }
            return v;
        }
        if (!strncmp(name, "toint", 5) || !strncmp(name, "touint", 6) ||
            !strcmp(name, "tobyte") || !strcmp(name, "tosbyte"))
            return convert_base(ps, args, nargs);
        if (!strcmp(name, "tochar"))
            return nargs ? to_char(ps, args[0]) : NULL;
        if (!strcmp(name, "tostring") && nargs == 1)
            return to_strv(ps, args[0]);
        return NULL;
    }
    if (!strcmp(t, "text.encoding")) {
        int e = enc_by_name(name, strlen(name));
        if (e >= 0 && !call)
            return pv_enc(ps, e);
        if (!strcmp(name, "getencoding") && nargs == 1) {
            if (!to_str(ps, args[0], &s, &n) || (e = enc_by_name(s, n)) < 0)
                return NULL;
            return pv_enc(ps, e);
        }
        return NULL;
    }
    if (!strcmp(t, "string")) {
        if (!strcmp(name, "join") && nargs >= 1) {
            struct pv *list;
            if (nargs == 2) {
                list = args[1];
            } else {
                list = pv_arr(ps, nargs - 1);
                for (size_t i = 1; list && i < nargs; i++)
                    ITEMS(list)[i - 1] = args[i];
            }
            return list ? op_join(ps, list, args[0]) : NULL;
        }
        if (!strcmp(name, "concat")) {
            struct sp_buf b;
            sp_buf_init(&b, PS_ARENA_MAX);
            bool ok = true;
            for (size_t i = 0; i < nargs && ok; i++) {
                struct pv **items, *one;
                size_t k = enumerate(ps, args[i], &items, &one);
                for (size_t j = 0; j < k && ok; j++)
                    ok = put_str(ps, items[j], &b, 0);
            }
            struct pv *v = ok ? pv_buf(ps, &b) : NULL;
            sp_buf_fini(&b);
            if (v)
                ps->ops |= OP_CONCAT;
            return v;
        }
        if (!strcmp(name, "format") && nargs >= 1) {
            struct pv *list = pv_arr(ps, nargs - 1);
            for (size_t i = 1; list && i < nargs; i++)
                ITEMS(list)[i - 1] = args[i];
            if (nargs == 2 && args[1]->kind == PV_ARR)
                list = args[1];
            return list ? op_format(ps, args[0], list) : NULL;
        }
        if (!strcmp(name, "empty"))
            return pv_str_ref(ps, "", 0);
        if (!strcmp(name, "new") && nargs == 1)
            return op_join(ps, args[0], NULL);
        return NULL;
    }
    if (!strcmp(t, "char")) {
        int64_t x;
        if (!strcmp(name, "convertfromutf32") && arg_int(args, nargs, 0, &x) &&
            x > 0 && x <= 0x10FFFF) {
            struct sp_buf b;
            sp_buf_init(&b, 8);
            deob_utf8_put(&b, (uint32_t)x);
            struct pv *v = pv_buf(ps, &b);
            sp_buf_fini(&b);
            ps->ops |= OP_CHARCODE;
            return v;
        }
        if (!strcmp(name, "tostring") && nargs == 1)
            return to_strv(ps, to_char(ps, args[0]));
        return NULL;
    }
    if (!strcmp(t, "array")) {
        if (!strcmp(name, "reverse") && nargs >= 1 && argn &&
            argn[0]->kind == N_VAR) {
            struct pv *v = args[0], *r;
            if (v->kind == PV_ARR) {
                r = pv_arr(ps, v->count);
                for (size_t i = 0; r && i < v->count; i++)
                    ITEMS(r)[i] = ITEMS(v)[v->count - 1 - i];
            } else if (v->kind == PV_BYTES) {
                r = pv_bytes(ps, PV_BYTES, v->p, v->count);
                if (r) {
                    unsigned char *b = r->p;
                    for (size_t i = 0; i < r->count / 2; i++) {
                        unsigned char c = b[i];
                        b[i] = b[r->count - 1 - i];
                        b[r->count - 1 - i] = c;
                    }
                }
            } else {
                return NULL;
            }
            if (!r)
                return NULL;
            ps->ops |= OP_REVERSE;
            r->ops = (uint16_t)(v->ops | OP_REVERSE);
            var_set(ps, argn[0]->s, argn[0]->n, r);
            note_write(ps, argn[0]->s, argn[0]->n);
            return pv_new(ps, PV_VOID);
        }
        return NULL;
    }
    if (!strcmp(t, "regex") || !strcmp(t, "text.regularexpressions.regex")) {
        if (!strcmp(name, "matches") && nargs >= 2) {
            const char *pat;
            size_t pn;
            if (!arg_str(ps, args, nargs, 0, &s, &n) ||
                !arg_str(ps, args, nargs, 1, &pat, &pn))
                return NULL;
            const char *opt = "";
            size_t on = 0;
            if (nargs >= 3 && !to_str(ps, args[2], &opt, &on))
                return NULL;
            bool rtl = deob_ci_find(opt, on, "righttoleft") != (size_t)-1;
            if (pn != 1 || pat[0] != '.' || !rtl)
                return NULL;
            struct pv *sv = pv_str_ref(ps, s, n);
            size_t k = sv ? str_len(ps, sv) : 0;
            struct pv *a = pv_arr(ps, k);
            for (size_t i = 0; a && i < k; i++) {
                struct sp_buf b;
                sp_buf_init(&b, 8);
                deob_utf8_put(&b, str_at(ps, sv, k - 1 - i));
                struct pv *m = pv_str(ps, b.data, b.len);
                sp_buf_fini(&b);
                if (!m)
                    return NULL;
                m->kind = PV_MATCH;
                ITEMS(a)[i] = m;
            }
            ps->ops |= OP_REVERSE;
            return a;
        }
        if (!strcmp(name, "replace") && nargs == 3) {
            struct pv *pair = pv_arr(ps, 2);
            if (!pair)
                return NULL;
            ITEMS(pair)[0] = args[1];
            ITEMS(pair)[1] = args[2];
            return op_replace(ps, args[0], pair, false);
        }
        return NULL;
    }
    if (!strcmp(t, "scriptblock") ||
        !strcmp(t, "management.automation.scriptblock")) {
        if (!strcmp(name, "create") && nargs == 1 &&
            to_str(ps, args[0], &s, &n)) {
            struct pv *b = pv_named(ps, PV_BLOCK, s, n);
            if (b) {
                b->fl |= PVF_CREATED;
                b->ops = args[0]->ops;
            }
            return b;
        }
        return NULL;
    }
    if (!strcmp(t, "runtime.interopservices.marshal")) {
        if (nargs != 1 || args[0]->kind != PV_SECURE)
            return NULL;
        if (!strncmp(name, "securestringto", 14))
            return args[0];
        if (!strncmp(name, "ptrtostring", 11)) {
            ps->ops |= OP_SECURE;
            return pv_str_ref(ps, args[0]->s, args[0]->n);
        }
        return NULL;
    }
    if (!strcmp(t, "environment")) {
        if (!strcmp(name, "getenvironmentvariable") &&
            arg_str(ps, args, nargs, 0, &s, &n))
            return env_value(ps, s, n);
        return NULL;
    }
    if (!strcmp(t, "io.compression.compressionmode")) {
        if (!strcmp(name, "decompress"))
            return pv_int(ps, 0);
        if (!strcmp(name, "compress"))
            return pv_int(ps, 1);
        return NULL;
    }
    if (!strcmp(name, "new") && call)
        return new_object(ps, type, tl, args, nargs);
    if (!call) {
        struct pv *tv = pv_named(ps, PV_TYPE, type, tl);
        return tv ? pv_method(ps, tv, name) : NULL;
    }
    SP_UNUSED(node);
    return NULL;
}

static struct pv *str_member(struct ps *ps, struct pv *ov, const char *name,
                             struct pv **args, size_t nargs, bool call)
{
    const char *a, *b;
    size_t an, bn;
    int64_t x, y;
    if (!strcmp(name, "length") && !call)
        return pv_int(ps, (int64_t)str_len(ps, ov));
    if (!strcmp(name, "count") && !call)
        return pv_int(ps, 1);
    if (!call) {
        return method_signature(name, strlen(name)) ? pv_method(ps, ov, name)
                                                    : NULL;
    }
    if (!strcmp(name, "tostring") || !strcmp(name, "normalize") ||
        !strcmp(name, "clone"))
        return ov;
    if (!strcmp(name, "replace") && nargs == 2) {
        if (!to_str(ps, args[0], &a, &an) || !to_str(ps, args[1], &b, &bn) ||
            an == 0)
            return NULL;
        struct pv *v = op_replace_one(ps, ov, a, an, b, bn, true);
        if (v)
            ps->ops |= OP_REPLACE;
        return v;
    }
    if (!strcmp(name, "split") && nargs >= 1) {
        struct sp_buf set;
        sp_buf_init(&set, 1024);
        for (size_t i = 0; i < nargs; i++) {
            struct pv **items, *one;
            size_t k = enumerate(ps, args[i], &items, &one);
            if (args[i]->kind == PV_INT && i > 0)
                break;
            for (size_t j = 0; j < k; j++)
                if (!put_str(ps, items[j], &set, 0))
                    k = 0, nargs = 0;
        }
        struct pvlist out = {0};
        bool ok = set.len > 0 && !set.overflow &&
                  split_into(ps, &out, ov->s, ov->n, set.data, set.len, false,
                             true);
        sp_buf_fini(&set);
        if (!ok)
            return NULL;
        ps->ops |= OP_SPLITJOIN;
        struct pv *arr = pv_arr(ps, 0);
        if (arr) {
            arr->p = out.v;
            arr->count = out.n;
        }
        return arr;
    }
    if (!strcmp(name, "trim") || !strcmp(name, "trimstart") ||
        !strcmp(name, "trimend")) {
        const char *set = " \t\r\n\v\f";
        size_t sn = 6;
        struct sp_buf sb;
        sp_buf_init(&sb, 1024);
        if (nargs) {
            for (size_t i = 0; i < nargs; i++)
                if (!put_str(ps, args[i], &sb, 0))
                    nargs = (size_t)-1;
            if (nargs == (size_t)-1 || sb.overflow) {
                sp_buf_fini(&sb);
                return NULL;
            }
            set = sb.data ? sb.data : "";
            sn = sb.len;
        }
        size_t s = 0, e = ov->n;
        if (strcmp(name, "trimend"))
            while (s < e && memchr(set, ov->s[s], sn))
                s++;
        if (strcmp(name, "trimstart"))
            while (e > s && memchr(set, ov->s[e - 1], sn))
                e--;
        sp_buf_fini(&sb);
        return pv_str_ref(ps, ov->s + s, e - s);
    }
    if (!strcmp(name, "tolower") || !strcmp(name, "tolowerinvariant") ||
        !strcmp(name, "toupper") || !strcmp(name, "toupperinvariant")) {
        char *c = ps_strdup(ps, ov->s, ov->n);
        if (!c)
            return NULL;
        bool up = name[2] == 'u';
        for (size_t i = 0; i < ov->n; i++)
            if (up && c[i] >= 'a' && c[i] <= 'z')
                c[i] = (char)(c[i] - 32);
            else if (!up)
                c[i] = sp_tolower(c[i]);
        return pv_str_ref(ps, c, ov->n);
    }
    if (!strcmp(name, "substring") || !strcmp(name, "remove") ||
        !strcmp(name, "insert") || !strcmp(name, "chars")) {
        size_t len = str_len(ps, ov);
        if (!arg_int(args, nargs, 0, &x) || x < 0 || (uint64_t)x > len)
            return NULL;
        size_t from = (size_t)x, cnt = len - from;
        if (!strcmp(name, "chars"))
            return from < len ? pv_char(ps, str_at(ps, ov, from)) : NULL;
        if (!strcmp(name, "insert")) {
            if (!arg_str(ps, args, nargs, 1, &a, &an))
                return NULL;
        } else if (nargs >= 2) {
            if (!arg_int(args, nargs, 1, &y) || y < 0 || (uint64_t)y > cnt)
                return NULL;
            cnt = (size_t)y;
        }
        struct sp_buf sb;
        sp_buf_init(&sb, PS_ARENA_MAX);
        for (size_t i = 0; i < len; i++) {
            bool in = i >= from && i < from + cnt;
            if (!strcmp(name, "insert") && i == from)
                sp_buf_put(&sb, a, an);
            if ((!strcmp(name, "substring") && in) ||
                (!strcmp(name, "remove") && !in) || !strcmp(name, "insert"))
                deob_utf8_put(&sb, str_at(ps, ov, i));
        }
        if (!strcmp(name, "insert") && from == len)
            sp_buf_put(&sb, a, an);
        struct pv *v = pv_buf(ps, &sb);
        sp_buf_fini(&sb);
        return v;
    }
    if (!strcmp(name, "tochararray"))
        return cast(ps, "char[]", 6, ov);
    if (!strcmp(name, "indexof") && nargs >= 1 &&
        to_str(ps, args[0], &a, &an)) {
        size_t at = find_lit(ov->s, ov->n, a, an, false);
        return pv_int(ps, at == (size_t)-1 ? -1 : (int64_t)at);
    }
    if ((!strcmp(name, "contains") || !strcmp(name, "startswith") ||
         !strcmp(name, "endswith")) &&
        nargs >= 1 && to_str(ps, args[0], &a, &an)) {
        if (!strcmp(name, "contains"))
            return pv_bool(ps, find_lit(ov->s, ov->n, a, an, false) !=
                                   (size_t)-1 || an == 0);
        if (an > ov->n)
            return pv_bool(ps, false);
        return pv_bool(ps, !memcmp(name[0] == 's' ? ov->s
                                                  : ov->s + ov->n - an,
                                   a, an));
    }
    return NULL;
}

static struct pv *inst_member(struct ps *ps, struct pv *ov, const char *name,
                              struct pv **args, size_t nargs, bool call,
                              struct psn *node)
{
    const char *s;
    size_t n;
    switch (ov->kind) {
    case PV_STR:
        return str_member(ps, ov, name, args, nargs, call);
    case PV_ARR:
        if ((!strcmp(name, "length") || !strcmp(name, "count")) && !call)
            return pv_int(ps, (int64_t)ov->count);
        if (call)
            return NULL;
        {
            struct pv *a = pv_arr(ps, ov->count);
            for (size_t i = 0; a && i < ov->count; i++)
                if (!(ITEMS(a)[i] = inst_member(ps, ITEMS(ov)[i], name, NULL,
                                                0, false, node)))
                    return NULL;
            return a;
        }
    case PV_BYTES:
        if ((!strcmp(name, "length") || !strcmp(name, "count")) && !call)
            return pv_int(ps, (int64_t)ov->count);
        return NULL;
    case PV_CHAR:
    case PV_INT:
    case PV_BOOL:
        if (!strcmp(name, "tostring") && call && nargs == 0)
            return to_strv(ps, ov);
        return NULL;
    case PV_ENC:
        if (!strcmp(name, "getstring") && call && nargs >= 1) {
            struct pv *b = args[0];
            if (b->kind != PV_BYTES)
                b = cast(ps, "byte[]", 6, b);
            if (!b)
                return NULL;
            const unsigned char *p = b->p;
            size_t cnt = b->count;
            int64_t off, len;
            if (nargs == 3 && arg_int(args, nargs, 1, &off) &&
                arg_int(args, nargs, 2, &len) && off >= 0 && len >= 0 &&
                (uint64_t)(off + len) <= cnt)
                p += off, cnt = (size_t)len;
            struct pv *v = enc_decode(ps, (int)ov->i, p, cnt);
            if (v)
                ps->ops |= OP_BASE64 & b->ops ? OP_BASE64 : 0;
            if (v && !(b->ops & OP_BASE64))
                ps->ops |= b->ops ? b->ops : OP_CHARCODE;
            return v;
        }
        if (!strcmp(name, "getbytes") && call && nargs == 1 &&
            to_str(ps, args[0], &s, &n) && ov->i == ENC_UTF8)
            return pv_bytes(ps, PV_BYTES, s, n);
        return NULL;
    case PV_STREAM:
        if (!strcmp(name, "toarray") && call) {
            struct pv *b = pv_bytes(ps, PV_BYTES, ov->p, ov->count);
            if (b)
                b->ops = ov->ops;
            return b;
        }
        if (!strcmp(name, "copyto") && call && nargs >= 1 &&
            args[0]->kind == PV_STREAM) {
            args[0]->p = ov->p;
            args[0]->count = ov->count;
            args[0]->ops |= ov->ops;
            return pv_new(ps, PV_VOID);
        }
        if (call && (!strcmp(name, "close") || !strcmp(name, "dispose") ||
                     !strcmp(name, "flush")))
            return pv_new(ps, PV_VOID);
        return NULL;
    case PV_READER:
        if ((!strcmp(name, "readtoend") || !strcmp(name, "readline")) &&
            call) {
            ps->ops |= ov->ops;
            return pv_str_ref(ps, ov->s, ov->n);
        }
        return NULL;
    case PV_CRED:
        if (!strcmp(name, "getnetworkcredential") && call) {
            struct pv *c = pv_new(ps, PV_CRED);
            if (c) {
                c->p = ov->p;
                c->fl |= PVF_NET;
                c->ops = ov->ops;
            }
            return c;
        }
        if (!strcmp(name, "password") && !call && (ov->fl & PVF_NET)) {
            struct pv *sec = ov->p;
            ps->ops |= OP_SECURE | ov->ops;
            return pv_str_ref(ps, sec->s, sec->n);
        }
        return NULL;
    case PV_VAROBJ:
        if (!strcmp(name, "value") && !call) {
            ps->ops |= OP_VARIND;
            return ov->p;
        }
        if (!strcmp(name, "name") && !call)
            return pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_MATCH:
        if ((!strcmp(name, "value") && !call) ||
            (!strcmp(name, "tostring") && call))
            return pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_CMD:
        if (!strcmp(name, "name") && !call)
            return pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_OBJ:
        if (!strcmp(ov->s, "executioncontext") && !call) {
            if (!strcmp(name, "invokecommand"))
                return pv_named(ps, PV_OBJ, "invokecommand", 13);
            if (!strcmp(name, "sessionstate"))
                return pv_named(ps, PV_OBJ, "sessionstate", 12);
        }
        if (!strcmp(ov->s, "sessionstate") && !strcmp(name, "psvariable") &&
            !call)
            return pv_named(ps, PV_OBJ, "psvariable", 10);
        if (!strcmp(ov->s, "psvariable") && call && nargs == 1 &&
            to_str(ps, args[0], &s, &n)) {
            struct pv *val = read_var(ps, node, s, n);
            ps->ops |= OP_VARIND;
            if (!strcmp(name, "getvalue"))
                return val;
            if (!strcmp(name, "get")) {
                struct pv *o = pv_named(ps, PV_VAROBJ, s, n);
                if (o)
                    o->p = val;
                return o;
            }
        }
        if (!strcmp(ov->s, "invokecommand") && call && nargs >= 1) {
            if (!strcmp(name, "invokescript")) {
                mark_unwrap(ps, node, args[0], args[0]->ops);
                return NULL;
            }
            if (!strcmp(name, "newscriptblock") &&
                to_str(ps, args[0], &s, &n)) {
                struct pv *b = pv_named(ps, PV_BLOCK, s, n);
                if (b)
                    b->fl |= PVF_CREATED;
                return b;
            }
        }
        return NULL;
    case PV_BLOCK:
        if (call && (!strcmp(name, "invoke") ||
                     !strcmp(name, "invokereturnasis"))) {
            mark_unwrap(ps, node, ov, ov->ops);
            return NULL;
        }
        if (call && !strcmp(name, "tostring"))
            return pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_METHOD:
        if (call && !strcmp(name, "invoke")) {
            struct pv *tgt = ov->p;
            char *mn = ps_lower(ps, ov->s, ov->n);
            if (!tgt || !mn)
                return NULL;
            if (tgt->kind == PV_TYPE)
                return static_member(ps, tgt->s, tgt->n, mn, args, NULL,
                                     nargs, true, node);
            return inst_member(ps, tgt, mn, args, nargs, true, node);
        }
        if (call && !strcmp(name, "tostring"))
            return to_strv(ps, ov);
        return NULL;
    case PV_HASH:
        if (call && !strcmp(name, "tostring"))
            return to_strv(ps, ov);
        return NULL;
    default:
        return NULL;
    }
}

/* ======================================================================
 * The folding engine: rewriting
 * ====================================================================== */

enum wctx { W_EXPR, W_ARG, W_MEMBER, W_CMD };

static void emit(struct ps *ps, size_t start, size_t end, const char *text,
                 size_t n, unsigned ops, bool consume)
{
    if (!text || !grow(ps, (void **)&ps->repls, &ps->caprepls,
                       ps->nrepls + 1, sizeof(*ps->repls)))
        return;
    if (end - start == n && !memcmp(ps->s + start, text, n))
        return;
    struct repl *r = &ps->repls[ps->nrepls++];
    r->start = start;
    r->end = end;
    r->text = text;
    r->n = n;
    r->consume = consume;
    ps->pass_ops |= ops;
    if (consume)
        ps->consumed = true;
}

static bool simple_word(const char *s, size_t n, bool cmd)
{
    if (n == 0 || n > 256 || (!cmd && s[0] == '-'))
        return false;
    bool letter = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (deob_isalpha(c))
            letter = true;
        else if (!(deob_isalnum(c) || strchr("_.-\\:/", c)))
            return false;
    }
    return letter;
}

static bool ident(const char *s, size_t n)
{
    if (n == 0 || n > 256 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!deob_isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static const char *quote_sq(struct ps *ps, const char *s, size_t n,
                            size_t *out)
{
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    sp_buf_putc(&b, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            sp_buf_putc(&b, '\'');
        sp_buf_putc(&b, s[i]);
    }
    sp_buf_putc(&b, '\'');
    const char *r = b.overflow ? NULL : ps_strdup(ps, b.data, b.len);
    *out = b.len;
    sp_buf_fini(&b);
    return r;
}

/* Source text for a known value in a context, or NULL. */
static const char *render(struct ps *ps, struct pv *v, enum wctx ctx,
                          size_t *out)
{
    const char *s;
    size_t n;
    if (v->kind == PV_TYPE) {
        const char *r = ps_alloc(ps, v->n + 5);
        if (!r)
            return NULL;
        char *w = (char *)r;
        size_t k = 0;
        if (ctx == W_ARG)
            w[k++] = '(';
        w[k++] = '[';
        memcpy(w + k, v->s, v->n);
        k += v->n;
        w[k++] = ']';
        if (ctx == W_ARG)
            w[k++] = ')';
        *out = k;
        return r;
    }
    if (v->kind != PV_STR && v->kind != PV_CHAR)
        return NULL;
    if (!to_str(ps, v, &s, &n))
        return NULL;
    switch (ctx) {
    case W_ARG:
        if (simple_word(s, n, false)) {
            *out = n;
            return s;
        }
        break;
    case W_MEMBER:
        if (ident(s, n)) {
            *out = n;
            return s;
        }
        break;
    case W_CMD:
        if (simple_word(s, n, true)) {
            *out = n;
            return s;
        }
        return NULL;
    default:
        break;
    }
    return quote_sq(ps, s, n, out);
}

static bool foldable(struct psn *n)
{
    /* backticks alone are renamed in place, never evaluated away */
    if (n->vstate != VS_KNOWN || !n->val || !(n->ops & ~OP_BACKTICK))
        return false;
    switch (n->kind) {
    case N_PAREN:
    case N_BIN:
    case N_UN:
    case N_CAST:
    case N_MEMBER:
    case N_INDEX:
    case N_XSTR:
    case N_SUB:
    case N_VAR:
        return true;
    default:
        return false;
    }
}

static void walk(struct ps *ps, struct psn *n, enum wctx ctx);

static void walk_list(struct ps *ps, struct psn *list, enum wctx ctx)
{
    for (struct psn *x = list; x; x = x->next)
        walk(ps, x, ctx);
}

static void walk_stmts(struct ps *ps, struct psn *list)
{
    for (struct psn *st = list; st; st = st->next) {
        if (st->ustate == VS_KNOWN) {
            emit(ps, st->start, st->end, st->utext, st->un,
                 st->uops | OP_IEX, true);
            continue;
        }
        walk(ps, st, W_EXPR);
    }
}

/* $name for a braced or ticked variable whose name is plain. */
static void walk_var_name(struct ps *ps, struct psn *n)
{
    if (!(n->flags & NF_TICK) && !(n->flags & NF_BRACED))
        return;
    if (!(n->flags & NF_TICK))
        return;
    size_t k = n->n;
    if (!ident(n->s, k) &&
        !(k > 4 && sp_strncaseeq(n->s, "env:", 4) && ident(n->s + 4, k - 4)))
        return;
    char *t = ps_alloc(ps, k + 2);
    if (!t)
        return;
    t[0] = '$';
    memcpy(t + 1, n->s, k);
    emit(ps, n->start, n->end, t, k + 1, OP_BACKTICK, false);
}

static void walk_target(struct ps *ps, struct psn *t)
{
    if (!t)
        return;
    switch (t->kind) {
    case N_VAR:
        walk_var_name(ps, t);
        break;
    case N_CAST:
        walk_target(ps, t->a);
        break;
    case N_INDEX:
        walk_target(ps, t->a);
        walk(ps, t->b, W_EXPR);
        break;
    case N_MEMBER:
        walk(ps, t->a, W_EXPR);
        break;
    case N_ARRAY:
        for (struct psn *x = t->a; x; x = x->next)
            walk_target(ps, x);
        break;
    default:
        break;
    }
}

/* powershell/pwsh called with computed pieces: the command line it runs. */
static bool walk_launcher(struct ps *ps, struct psn *n)
{
    struct psn *nn = n->a;
    const char *name = NULL;
    size_t nl = 0;
    if (n->op && nn->vstate == VS_KNOWN && nn->val &&
        nn->val->kind == PV_STR)
        name = nn->val->s, nl = nn->val->n;
    else if (!n->op)
        name = nn->s, nl = nn->n;
    char w[32];
    if (!name)
        return false;
    deob_first_word(name, nl, w, sizeof(w), NULL);
    if (strcmp(w, "powershell") && strcmp(w, "pwsh"))
        return false;
    unsigned ops = n->op ? nn->ops | OP_CALLOP : 0;
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    sp_buf_put(&b, name, nl);
    bool ok = true;
    for (struct psn *a = n->b; a && ok; a = a->next) {
        sp_buf_putc(&b, ' ');
        if (a->kind == N_PARAM && !a->a) {
            sp_buf_putc(&b, '-');
            sp_buf_put(&b, a->s, a->n);
            continue;
        }
        struct psn *vn = a->kind == N_PARAM ? a->a : a;
        if (a->kind == N_PARAM) {
            sp_buf_putc(&b, '-');
            sp_buf_put(&b, a->s, a->n);
            sp_buf_putc(&b, ':');
        }
        if (vn->vstate != VS_KNOWN || !vn->val)
            ok = false;
        else if (vn->kind == N_WORD || vn->kind == N_NUM)
            sp_buf_put(&b, ps->s + vn->start, vn->end - vn->start);
        else
            ok = put_str(ps, vn->val, &b, 0);
        ops |= vn->ops;
    }
    if (ok && ops && !b.overflow) {
        const char *t = ps_strdup(ps, b.data, b.len);
        emit(ps, n->start, n->end, t, b.len, ops, true);
    }
    sp_buf_fini(&b);
    return ok && ops;
}

static void walk_cmd(struct ps *ps, struct psn *n)
{
    if (walk_launcher(ps, n))
        return;
    struct psn *nn = n->a;
    size_t rl;
    if (n->op && nn->kind != N_BLOCK) {
        const char *r = NULL;
        if (nn->vstate == VS_KNOWN && nn->val &&
            (nn->val->kind == PV_STR || nn->val->kind == PV_CMD)) {
            struct pv tmp = *nn->val;
            tmp.kind = PV_STR;
            r = render(ps, &tmp, W_CMD, &rl);
        }
        if (r)
            emit(ps, n->start, nn->end, r, rl, nn->ops | OP_CALLOP, true);
        else
            walk(ps, nn, W_EXPR);
    } else if (!n->op && (nn->flags & NF_TICK)) {
        emit(ps, nn->start, nn->end, nn->s, nn->n, OP_BACKTICK, false);
    }
    for (struct psn *a = n->b; a; a = a->next) {
        if (a->kind == N_PARAM) {
            if (a->flags & NF_TICK) {
                char *t = ps_alloc(ps, a->n + 2);
                if (t) {
                    t[0] = '-';
                    memcpy(t + 1, a->s, a->n);
                    size_t e = a->a ? a->a->start - 1 : a->end;
                    emit(ps, a->start, e, t, a->n + 1, OP_BACKTICK, false);
                }
            }
            walk(ps, a->a, W_ARG);
        } else {
            walk(ps, a, W_ARG);
        }
    }
}

static void walk_member(struct ps *ps, struct psn *n)
{
    walk(ps, n->a, W_EXPR);
    struct psn *nm = n->b;
    /* X::('name').Invoke(args) -> X::name(args) */
    if ((n->flags & NF_CALL) && nm->kind == N_WORD &&
        deob_ci_eqn(nm->s, nm->n, "invoke") && n->a->kind == N_MEMBER &&
        !(n->a->flags & NF_CALL) && n->a->b->kind != N_WORD) {
        struct psn *in = n->a->b;
        if (in->vstate == VS_KNOWN && in->val && in->val->kind == PV_STR &&
            ident(in->val->s, in->val->n)) {
            /* the inner walk already renamed the name; widen the span */
            for (size_t i = ps->nrepls; i-- > 0;) {
                if (ps->repls[i].start == in->start &&
                    ps->repls[i].end == in->end) {
                    ps->repls[i].end = nm->end;
                    break;
                }
            }
        }
    } else if (nm->kind == N_WORD && (nm->flags & NF_TICK)) {
        emit(ps, nm->start, nm->end, nm->s, nm->n, OP_BACKTICK, false);
    } else if (nm->kind != N_WORD) {
        size_t rl;
        const char *r = NULL;
        if (nm->vstate == VS_KNOWN && nm->val && nm->val->kind == PV_STR &&
            ident(nm->val->s, nm->val->n))
            r = render(ps, nm->val, W_MEMBER, &rl);
        if (r)
            emit(ps, nm->start, nm->end, r, rl, nm->ops ? nm->ops
                                                        : OP_CONCAT, true);
        else
            walk(ps, nm, W_EXPR);
    }
    walk_list(ps, n->c, W_EXPR);
}

static void walk(struct ps *ps, struct psn *n, enum wctx ctx)
{
    if (!n || ps->abort)
        return;
    switch (n->kind) {
    case N_PIPE:
        for (struct psn *e = n->a; e; e = e->next) {
            if (e->kind == N_CMD)
                walk_cmd(ps, e);
            else
                walk(ps, e, W_EXPR);
        }
        return;
    case N_ASSIGN:
        walk_target(ps, n->a);
        if (n->b->ustate == VS_KNOWN)
            walk_stmts(ps, n->b);
        else
            walk(ps, n->b, W_EXPR);
        return;
    case N_CMD:
        walk_cmd(ps, n);
        return;
    case N_KEYWORD:
        for (struct psn *c = n->a; c; c = c->next) {
            if (c->kind == N_STMTS)
                walk_stmts(ps, c->a);
            else if (c->kind != N_OPAQUE && !(c->flags & NF_KEYVAR))
                walk(ps, c, W_EXPR);
        }
        return;
    case N_BLOCK:
        walk_stmts(ps, n->a);
        return;
    case N_PARAM:
        walk(ps, n->a, W_ARG);
        return;
    default:
        break;
    }
    size_t rl;
    const char *r;
    if (foldable(n) && (r = render(ps, n->val, ctx, &rl))) {
        emit(ps, n->start, n->end, r, rl, n->ops, true);
        return;
    }
    switch (n->kind) {
    case N_VAR:
        walk_var_name(ps, n);
        return;
    case N_MEMBER:
        walk_member(ps, n);
        return;
    case N_XSTR:
        for (struct psn *part = n->a; part; part = part->next) {
            if (part->kind == N_SUB) {
                walk_stmts(ps, part->a);
            } else if (part->kind == N_STR && (n->flags & NF_TICK)) {
                /* drop obfuscation ticks before plain letters */
                struct sp_buf b;
                sp_buf_init(&b, PS_ARENA_MAX);
                bool changed = false;
                for (size_t i = part->start; i < part->end; i++) {
                    char c = ps->s[i];
                    if (c == '`' && i + 1 < part->end &&
                        deob_isalnum((unsigned char)ps->s[i + 1]) &&
                        !strchr("0abefnrtvu", ps->s[i + 1])) {
                        changed = true;
                        continue;
                    }
                    if (c == '`' && i + 1 < part->end) {
                        sp_buf_putc(&b, c);
                        c = ps->s[++i];
                    }
                    sp_buf_putc(&b, c);
                }
                if (changed && !b.overflow)
                    emit(ps, part->start, part->end,
                         ps_strdup(ps, b.data, b.len), b.len, OP_BACKTICK,
                         false);
                sp_buf_fini(&b);
            } else {
                walk(ps, part, W_EXPR);
            }
        }
        return;
    case N_WORD:
        if ((n->flags & NF_TICK) && n->val &&
            (r = render(ps, n->val, ctx, &rl)))
            emit(ps, n->start, n->end, r, rl, OP_BACKTICK, false);
        return;
    case N_SUB:
    case N_ARRSUB:
        walk_stmts(ps, n->a);
        return;
    case N_PAREN:
        if (n->a && n->a->kind == N_PIPE && n->a->ustate == VS_KNOWN)
            return;
        walk(ps, n->a, W_EXPR);
        return;
    case N_BIN:
        walk(ps, n->a, W_EXPR);
        walk(ps, n->b, W_EXPR);
        return;
    case N_UN:
    case N_CAST:
        walk(ps, n->a, W_EXPR);
        return;
    case N_INDEX:
        walk(ps, n->a, W_EXPR);
        walk(ps, n->b, W_EXPR);
        return;
    case N_ARRAY:
        walk_list(ps, n->a, ctx == W_ARG ? W_ARG : W_EXPR);
        return;
    default:
        return;
    }
}

/* ---- dead assignments ---- */

static bool inside(size_t s, size_t e, size_t a, size_t b)
{
    return s >= a && e <= b;
}

static bool read_live(struct ps *ps, const struct read_rec *r)
{
    for (size_t i = 0; i < ps->nrepls; i++)
        if (ps->repls[i].consume &&
            inside(r->start, r->end, ps->repls[i].start, ps->repls[i].end))
            return false;
    for (size_t i = 0; i < ps->nasgs; i++)
        if (ps->asgs[i].removed &&
            inside(r->start, r->end, ps->asgs[i].stmt->start,
                   ps->asgs[i].stmt->end))
            return false;
    return true;
}

static bool name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && sp_strncaseeq(a, b, an);
}

static bool span_dead(struct ps *ps, size_t s, size_t e)
{
    struct read_rec r = {s, e, NULL, 0};
    return !read_live(ps, &r);
}

/* Does the name still occur in live text?  Catches uses the evaluator
 * could not see (an unknown command naming variable:x, ...). */
static bool name_live_in_text(struct ps *ps, const char *name, size_t n)
{
    bool plain = ident(name, n);
    for (size_t i = 0; i + n <= ps->n; i++) {
        if (!sp_strncaseeq(ps->s + i, name, n))
            continue;
        size_t e = i + n;
        if (plain) {
            if ((i > 0 && is_word_char((unsigned char)ps->s[i - 1])) ||
                (e < ps->n && is_word_char((unsigned char)ps->s[e])))
                continue;
        } else if (i == 0 || ps->s[i - 1] != '{' || e >= ps->n ||
                   ps->s[e] != '}') {
            continue;
        }
        if (!span_dead(ps, i, e))
            return true;
    }
    return false;
}

static void dead_assignments(struct ps *ps)
{
    if (!ps->consumed || ps->nasgs == 0 || ps->nasgs > 512 ||
        ps->nreads > 20000 || ps->nasgs * ps->n > ((size_t)64 << 20))
        return;
    size_t cand = 0;
    for (size_t i = 0; i < ps->nasgs; i++) {
        struct asg_rec *a = &ps->asgs[i];
        a->removed = false;
        if (!a->ok)
            continue;
        bool used = false;
        for (size_t r = 0; r < ps->nreads && !used; r++)
            used = name_eq(ps->reads[r].name, ps->reads[r].n, a->name, a->n);
        if (used) {
            a->removed = true;
            cand++;
        }
    }
    for (int round = 0; cand && round < 64; round++) {
        bool changed = false;
        for (size_t i = 0; i < ps->nasgs; i++) {
            struct asg_rec *a = &ps->asgs[i];
            if (!a->removed)
                continue;
            for (size_t r = 0; r < ps->nreads && a->removed; r++) {
                const struct read_rec *rr = &ps->reads[r];
                bool mine = name_eq(rr->name, rr->n, a->name, a->n) ||
                            (a->w2 && name_eq(rr->name, rr->n, a->w2, a->w2n));
                if (mine && read_live(ps, rr)) {
                    a->removed = false;
                    changed = true;
                }
            }
            if (a->removed && (name_live_in_text(ps, a->name, a->n) ||
                               (a->w2 && name_live_in_text(ps, a->w2,
                                                           a->w2n)))) {
                a->removed = false;
                changed = true;
            }
        }
        if (!changed)
            break;
    }
    for (size_t i = 0; i < ps->nasgs; i++) {
        struct asg_rec *a = &ps->asgs[i];
        if (!a->removed)
            continue;
        size_t s = a->stmt->start, e = a->stmt->end;
        while (e < ps->n && (ps->s[e] == ' ' || ps->s[e] == '\t'))
            e++;
        if (e < ps->n && ps->s[e] == ';')
            e++;
        while (e < ps->n && (ps->s[e] == ' ' || ps->s[e] == '\t'))
            e++;
        if (e < ps->n && ps->s[e] == '\r')
            e++;
        if (e < ps->n && ps->s[e] == '\n')
            e++;
        /* replacements inside the statement go away with it */
        size_t k = 0;
        for (size_t j = 0; j < ps->nrepls; j++)
            if (!inside(ps->repls[j].start, ps->repls[j].end, s, e))
                ps->repls[k++] = ps->repls[j];
        ps->nrepls = k;
        if (!grow(ps, (void **)&ps->repls, &ps->caprepls, ps->nrepls + 1,
                  sizeof(*ps->repls)))
            return;
        struct repl *r = &ps->repls[ps->nrepls++];
        r->start = s;
        r->end = e;
        r->text = "";
        r->n = 0;
        r->consume = true;
    }
}

static int repl_cmp(const void *a, const void *b)
{
    const struct repl *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* ---- the decoder ---- */

static void ps_fini(struct ps *ps)
{
    sp_arena_fini(&ps->ar);
    free(ps->reads);
    free(ps->asgs);
    free(ps->repls);
}

enum deob_rc deob_ps_fold(struct deob_ctx *ctx, const char *s, size_t n,
                          struct deob_out *out)
{
    size_t rs = 0, re = n;
    enum deob_lang lang = deob_lang_detect(s, n);
    char w[32];
    deob_first_word(s, n, w, sizeof(w), NULL);
    if (lang != DEOB_LANG_PS || !strcmp(w, "powershell") ||
        !strcmp(w, "pwsh")) {
        struct deob_launcher l;
        if (!deob_find_launcher(s, n, 0, &l) || !l.has_script || l.encoded)
            return DEOB_NONE;
        rs = l.script_start;
        re = l.script_end;
    }
    if (re <= rs)
        return DEOB_NONE;

    struct ps ps;
    memset(&ps, 0, sizeof(ps));
    ps.ctx = ctx;
    ps.s = s + rs;
    ps.n = re - rs;
    sp_arena_init(&ps.ar, PS_ARENA_MAX);
    struct psp p;
    memset(&p, 0, sizeof(p));
    p.ps = &ps;
    p.s = ps.s;
    p.n = ps.n;
    sp_buf_init(&p.tmp, PS_ARENA_MAX);
    struct psn *root = p_stmts(&p, 0);
    sp_buf_fini(&p.tmp);

    enum deob_rc rc = DEOB_NONE;
    if (ps.abort)
        goto out;
    for (struct psn *st = root; st && !ps.abort; st = st->next) {
        ps.cur_stmt = st;
        ps.root_stmt = st;
        ev(&ps, st);
    }
    ps.cur_stmt = ps.root_stmt = NULL;
    if (ps.abort)
        goto out;
    walk_stmts(&ps, root);
    dead_assignments(&ps);
    if (ps.abort || ps.nrepls == 0)
        goto out;
    qsort(ps.repls, ps.nrepls, sizeof(*ps.repls), repl_cmp);

    struct sp_buf *b = &out->buf;
    sp_buf_put(b, s, rs);
    size_t pos = 0;
    for (size_t i = 0; i < ps.nrepls; i++) {
        struct repl *r = &ps.repls[i];
        if (r->start < pos)
            continue;
        sp_buf_put(b, ps.s + pos, r->start - pos);
        sp_buf_put(b, r->text, r->n);
        pos = r->end;
    }
    sp_buf_put(b, ps.s + pos, ps.n - pos);
    sp_buf_put(b, s + re, n - re);
    if (b->overflow) {
        rc = deob_buf_rc(ctx, b);
        goto out;
    }
    out->technique = "powershell.variables";
    for (size_t i = 0; i < SP_ARRAY_SIZE(op_technique); i++) {
        if (ps.pass_ops & op_technique[i].op) {
            out->technique = op_technique[i].id;
            break;
        }
    }
    rc = DEOB_PROGRESS;
out:
    ps_fini(&ps);
    return rc;
}
