/*
 * deob_cmd.c - cmd.exe decoders: %VAR:~a,b% / %VAR:x=y% over the default
 * Windows environment (deob_cmd_env), caret escapes (deob_cmd_caret), and
 * a small cmd.exe emulator for Invoke-DOSfuscation style lines
 * (deob_cmd_emulate): percent expansion with command-line rules, carets
 * and quotes, & && || | and ( ) blocks, set, call, delayed expansion
 * (!VAR! with /V), FOR /L, FOR lists, FOR /F over emulated assoc / ftype /
 * set / echo output with find(str), IF, echo ... | cmd, nested cmd /c.  The
 * next layer lists the programs the line would start.  Nothing is started.
 * Bounded by steps, nesting, variable sizes, the run's time and output
 * budgets.  Called by the driver only; one thread per context.
 */
#include "deob_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_MAX_VARS   4096
#define CMD_MAX_VALUE  32768
#define CMD_MAX_STEPS  200000u
#define CMD_MAX_DEPTH  16

/* ---- variable modifiers (:~a,b and :x=y) -------------------------------- */

static bool parse_cmd_int(const char *s, size_t n, size_t *i, long *out)
{
    size_t j = *i;
    while (j < n && (s[j] == ' ' || s[j] == '\t'))
        j++;
    bool neg = false;
    if (j < n && (s[j] == '-' || s[j] == '+'))
        neg = s[j++] == '-';
    size_t d = 0;
    long v = 0;
    while (j < n && s[j] >= '0' && s[j] <= '9' && d < 9)
        v = v * 10 + (s[j++] - '0'), d++;
    if (!d)
        return false;
    while (j < n && (s[j] == ' ' || s[j] == '\t'))
        j++;
    *out = neg ? -v : v;
    *i = j;
    return true;
}

/* Applies a modifier (the text after ':') to val; false if malformed. */
static bool apply_mod(const char *val, size_t vn, const char *spec, size_t sn,
                      struct sp_buf *out)
{
    if (sn > 0 && spec[0] == '~') {
        size_t i = 1;
        long a, b = 0;
        bool has_b = false;
        if (!parse_cmd_int(spec, sn, &i, &a))
            return false;
        if (i < sn && spec[i] == ',') {
            i++;
            if (!parse_cmd_int(spec, sn, &i, &b))
                return false;
            has_b = true;
        }
        if (i != sn)
            return false;
        long len = (long)vn;
        long s = a < 0 ? len + a : a;
        if (s < 0)
            s = 0;
        if (s > len)
            s = len;
        long e = len;
        if (has_b)
            e = b < 0 ? len + b : s + b;
        if (e > len)
            e = len;
        if (e > s)
            sp_buf_put(out, val + s, (size_t)(e - s));
        return true;
    }
    const char *eq = memchr(spec, '=', sn);
    if (!eq || eq == spec)
        return false;
    const char *from = spec, *to = eq + 1;
    size_t fn = (size_t)(eq - spec), tn = sn - fn - 1;
    bool star = from[0] == '*';
    if (star)
        from++, fn--;
    if (fn == 0)
        return false;
    size_t pos = 0;
    bool first = true;
    while (pos <= vn) {
        size_t at = (size_t)-1;
        for (size_t k = pos; k + fn <= vn; k++) {
            if (sp_strncaseeq(val + k, from, fn)) {
                at = k;
                break;
            }
        }
        if (at == (size_t)-1)
            break;
        if (!(star && first))
            sp_buf_put(out, val + pos, at - pos);
        sp_buf_put(out, to, tn);
        pos = at + fn;
        if (star)
            break;
        first = false;
    }
    if (pos < vn)
        sp_buf_put(out, val + pos, vn - pos);
    return true;
}

/* %NAME:mod% at s[i] naming a default variable; returns its length. */
static size_t env_ref(const char *s, size_t n, size_t i, const char **name,
                      size_t *nl, const char **spec, size_t *sl)
{
    size_t j = i + 1;
    while (j < n && j - i < 80 && s[j] != '%' && s[j] != ':' &&
           s[j] != '\n' && s[j] != '\r')
        j++;
    if (j >= n || s[j] != ':' || j == i + 1)
        return 0;
    size_t k = j + 1;
    while (k < n && k - j < 200 && s[k] != '%' && s[k] != '\n')
        k++;
    if (k >= n || s[k] != '%')
        return 0;
    *name = s + i + 1;
    *nl = j - i - 1;
    *spec = s + j + 1;
    *sl = k - j - 1;
    return k + 1 - i;
}

/* Does the text set NAME itself (set NAME=, set "NAME=)? */
static bool text_sets(const char *s, size_t n, const char *name, size_t nl)
{
    for (size_t i = 0; i + 4 < n; i++) {
        if (!deob_ci_prefix(s + i, n - i, "set") ||
            (i && deob_isalnum((unsigned char)s[i - 1])))
            continue;
        size_t j = i + 3;
        while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '"'))
            j++;
        if (j + nl < n && sp_strncaseeq(s + j, name, nl) && s[j + nl] == '=')
            return true;
    }
    return false;
}

/* text_sets() per name, remembered: a line repeats a few names many
 * times. */
struct sets_memo {
    const char *name[32];
    size_t nl[32];
    bool sets[32];
    size_t n;
};

static bool text_sets_memo(struct sets_memo *m, const char *s, size_t n,
                           const char *name, size_t nl)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->nl[i] == nl && sp_strncaseeq(m->name[i], name, nl))
            return m->sets[i];
    if (m->n == SP_ARRAY_SIZE(m->name))
        return true; /* too many names: leave the rest alone */
    bool r = text_sets(s, n, name, nl);
    m->name[m->n] = name;
    m->nl[m->n] = nl;
    m->sets[m->n++] = r;
    return r;
}

enum deob_rc deob_cmd_env(struct deob_ctx *ctx, const char *s, size_t n,
                          struct deob_out *out)
{
    struct sp_buf *b = &out->buf;
    struct sets_memo memo;
    memo.n = 0;
    size_t run = 0, done = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%')
            continue;
        const char *name, *spec;
        size_t nl, sl;
        size_t len = env_ref(s, n, i, &name, &nl, &spec, &sl);
        if (!len)
            continue;
        const char *val = deob_env_lookup(name, nl);
        if (!val || text_sets_memo(&memo, s, n, name, nl))
            continue;
        size_t mark = b->len;
        sp_buf_put(b, s + run, i - run);
        if (!apply_mod(val, strlen(val), spec, sl, b)) {
            b->len = mark;
            continue;
        }
        done++;
        i += len - 1;
        run = i + 1;
    }
    if (!done)
        return DEOB_NONE;
    sp_buf_put(b, s + run, n - run);
    if (b->overflow)
        return deob_buf_rc(ctx, b);
    out->technique = "cmd.substring";
    return DEOB_PROGRESS;
}

/* ---- carets ------------------------------------------------------------- */

static bool caret_keep(char c)
{
    return !c || strchr("&|<>()\"!%\r\n", c) != NULL;
}

static bool emulation_worthy(const char *s, size_t n);

enum deob_rc deob_cmd_caret(struct deob_ctx *ctx, const char *s, size_t n,
                            struct deob_out *out)
{
    enum deob_lang lang = deob_lang_detect(s, n);
    /* the emulator reads carets the way cmd.exe does; removing them
     * here first would shift the strings it indexes into */
    if (lang == DEOB_LANG_CMD && emulation_worthy(s, n))
        return DEOB_NONE;
    size_t between = 0, removable = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '^')
            continue;
        size_t j = i;
        while (j < n && s[j] == '^')
            j++;
        char c = j < n ? s[j] : 0;
        if (!caret_keep(c))
            removable++;
        if (i > 0 && deob_isalnum((unsigned char)s[i - 1]) &&
            deob_isalnum((unsigned char)c))
            between++;
        i = j - 1;
    }
    if (!removable || lang == DEOB_LANG_PS || lang == DEOB_LANG_SH ||
        (lang != DEOB_LANG_CMD && between < 3))
        return DEOB_NONE;
    struct sp_buf *b = &out->buf;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '^')
            continue;
        size_t j = i;
        while (j < n && s[j] == '^')
            j++;
        if (!caret_keep(j < n ? s[j] : 0)) {
            sp_buf_put(b, s + run, i - run);
            run = j;
        }
        i = j - 1;
    }
    sp_buf_put(b, s + run, n - run);
    if (b->overflow)
        return deob_buf_rc(ctx, b);
    out->technique = "cmd.caret";
    return DEOB_PROGRESS;
}

/* ---- the emulator ------------------------------------------------------- */

#define T_SET     0x1
#define T_DELAYED 0x2
#define T_FORF    0x4
#define T_NESTED  0x8

struct cvar {
    char *name;
    size_t n;
    char *val;       /* NULL: deleted */
    size_t vn;
    bool exported;   /* shown in front of a command that reads env:NAME */
};

struct emu {
    struct deob_ctx *ctx;
    struct cvar *vars;
    size_t nvars, cap;
    bool delayed;
    struct sp_buf out;
    struct sp_buf *capture;  /* stdout of the left side of a pipe */
    uint64_t seen[256];      /* hashes of recorded lines */
    size_t nseen;
    unsigned techs;
    size_t steps;
    int depth;
    bool abort;
};

static bool emu_tick(struct emu *e)
{
    if (e->abort)
        return false;
    if (++e->steps > CMD_MAX_STEPS || deob_time_up(e->ctx) ||
        e->out.overflow) {
        e->abort = true;
        return false;
    }
    return true;
}

static struct cvar *var_find(struct emu *e, const char *name, size_t n)
{
    for (size_t i = 0; i < e->nvars; i++)
        if (e->vars[i].n == n && sp_strncaseeq(e->vars[i].name, name, n))
            return &e->vars[i];
    return NULL;
}

/* Value of a variable: the script's own, else the Windows default. */
static bool var_get(struct emu *e, const char *name, size_t n,
                    const char **val, size_t *vn)
{
    struct cvar *v = var_find(e, name, n);
    if (v) {
        if (!v->val)
            return false;
        *val = v->val;
        *vn = v->vn;
        return true;
    }
    const char *d = deob_env_lookup(name, n);
    if (!d)
        return false;
    *val = d;
    *vn = strlen(d);
    return true;
}

static void var_put(struct emu *e, const char *name, size_t n,
                    const char *val, size_t vn)
{
    if (n == 0 || n > 256 || vn > CMD_MAX_VALUE)
        return;
    struct cvar *v = var_find(e, name, n);
    if (!v) {
        if (e->nvars == e->cap) {
            size_t cap = e->cap ? e->cap * 2 : 16;
            if (cap > CMD_MAX_VARS)
                return;
            struct cvar *nv = realloc(e->vars, cap * sizeof(*nv));
            if (!nv) {
                e->abort = true;
                return;
            }
            e->vars = nv;
            e->cap = cap;
        }
        v = &e->vars[e->nvars];
        memset(v, 0, sizeof(*v));
        v->name = malloc(n + 1);
        if (!v->name) {
            e->abort = true;
            return;
        }
        memcpy(v->name, name, n);
        v->name[n] = '\0';
        v->n = n;
        e->nvars++;
    }
    free(v->val);
    v->val = NULL;
    v->vn = 0;
    if (vn == 0)
        return;
    v->val = malloc(vn + 1);
    if (!v->val) {
        e->abort = true;
        return;
    }
    memcpy(v->val, val, vn);
    v->val[vn] = '\0';
    v->vn = vn;
    v->exported = true;
}

/* Phase 1: %VAR% expansion with command-line rules (undefined stays). */
static void pct_expand(struct emu *e, const char *s, size_t n,
                       struct sp_buf *out, bool call)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c != '%') {
            size_t j = i;
            while (j < n && s[j] != '%')
                j++;
            sp_buf_put(out, s + i, j - i);
            i = j;
            continue;
        }
        if (call && i + 1 < n && s[i + 1] == '%') {
            sp_buf_putc(out, '%');
            i += 2;
            continue;
        }
        size_t j = i + 1;
        while (j < n && s[j] != '%' && s[j] != '\n')
            j++;
        if (j >= n || s[j] != '%') {
            sp_buf_put(out, s + i, j - i);
            i = j;
            continue;
        }
        const char *spec = s + i + 1;
        size_t sl = j - i - 1;
        const char *colon = memchr(spec, ':', sl);
        size_t nl = colon ? (size_t)(colon - spec) : sl;
        const char *val;
        size_t vn;
        if (nl > 0 && var_get(e, spec, nl, &val, &vn)) {
            size_t mark = out->len;
            if (!colon) {
                sp_buf_put(out, val, vn);
                i = j + 1;
                continue;
            }
            if (apply_mod(val, vn, colon + 1, sl - nl - 1, out)) {
                i = j + 1;
                continue;
            }
            out->len = mark;
        }
        /* undefined: keep the text; the closing % may open the next one */
        sp_buf_put(out, s + i, j - i);
        i = j;
    }
}

/* Phase 5: !VAR! expansion, which also consumes carets. */
static void delayed_expand(struct emu *e, const char *s, size_t n,
                           struct sp_buf *out)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '^') {
            if (i + 1 < n)
                sp_buf_putc(out, s[i + 1]);
            i += 2;
            continue;
        }
        if (c != '!') {
            sp_buf_putc(out, c);
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && s[j] != '!')
            j++;
        if (j >= n) {
            i++;
            continue;
        }
        const char *spec = s + i + 1;
        size_t sl = j - i - 1;
        const char *colon = memchr(spec, ':', sl);
        size_t nl = colon ? (size_t)(colon - spec) : sl;
        const char *val;
        size_t vn;
        bool done = false;
        if (nl > 0 && var_get(e, spec, nl, &val, &vn)) {
            size_t mark = out->len;
            if (!colon) {
                sp_buf_put(out, val, vn);
                done = true;
            } else if (apply_mod(val, vn, colon + 1, sl - nl - 1, out)) {
                done = true;
            } else {
                out->len = mark;
            }
        }
        if (done)
            e->techs |= T_DELAYED;
        else
            sp_buf_put(out, s + i, j + 1 - i);
        i = j + 1;
    }
}

/* Phase 2 for a command's text: carets outside quotes. */
static void caret_pass(const char *s, size_t n, struct sp_buf *out)
{
    bool q = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"')
            q = !q;
        if (c == '^' && !q) {
            if (i + 1 < n && s[i + 1] != '\n' && s[i + 1] != '\r')
                sp_buf_putc(out, s[++i]);
            continue;
        }
        sp_buf_putc(out, c);
    }
}

static bool is_delim(char c)
{
    return c == ' ' || c == '\t' || c == ',' || c == ';' || c == '=' ||
           c == '\v' || c == '\f';
}

static bool is_fdelim(char c)
{
    return c == ' ' || c == '\t' || c == ',' || c == ';';
}

static void record(struct emu *e, const char *s, size_t n)
{
    while (n && (is_delim(s[0]) || s[0] == '@'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    if (!n)
        return;
    /* a PowerShell reading env:NAME set by the line gets the value shown */
    for (size_t i = 0; i < e->nvars; i++) {
        struct cvar *v = &e->vars[i];
        char pat[300];
        if (!v->val || !v->exported || v->n > 250)
            continue;
        snprintf(pat, sizeof(pat), "env:%s", v->name);
        if (deob_ci_find(s, n, pat) == (size_t)-1)
            continue;
        if (e->out.len)
            sp_buf_putc(&e->out, '\n');
        sp_buf_puts(&e->out, "set ");
        sp_buf_put(&e->out, v->name, v->n);
        sp_buf_putc(&e->out, '=');
        sp_buf_put(&e->out, v->val, v->vn);
        v->exported = false;
    }
    /* a loop running the same program many times shows it once */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    for (size_t i = 0; i < e->nseen; i++)
        if (e->seen[i] == h)
            return;
    if (e->nseen < SP_ARRAY_SIZE(e->seen))
        e->seen[e->nseen++] = h;
    if (e->out.len)
        sp_buf_putc(&e->out, '\n');
    sp_buf_put(&e->out, s, n);
}

static void run_line(struct emu *e, const char *s, size_t n,
                     const char *in, size_t inn);
static void exec_seq(struct emu *e, const char *s, size_t n, const char *in,
                     size_t inn);

/* A unit of a command sequence. */
enum ukind { U_SIMPLE, U_GROUP, U_FOR, U_IF };

struct unit {
    enum ukind kind;
    size_t a, b;     /* text (group: inside the parens) */
    size_t next;     /* after the operator */
    char op;         /* 0, '&' (also &&, ||) or '|' */
};

/* First word at s[i] (carets skipped), lower case. */
static void word_at(const char *s, size_t n, size_t i, char *w, size_t cap)
{
    size_t k = 0;
    while (i < n && k + 1 < cap) {
        char c = s[i];
        if (c == '^') {
            i++;
            continue;
        }
        if (is_delim(c) || c == '(' || c == ')' || c == '"' || c == '/' ||
            c == '&' || c == '|' || c == '\n')
            break;
        w[k++] = sp_tolower(c);
        i++;
    }
    w[k] = '\0';
}

/* End of the current block from i: an unmatched ')' or the end. */
static size_t block_end(const char *s, size_t n, size_t i)
{
    int depth = 0;
    bool q = false;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '^' && !q) {
            i++;
            continue;
        }
        if (c == '"')
            q = !q;
        if (q)
            continue;
        if (c == '(')
            depth++;
        else if (c == ')' && depth-- == 0)
            return i;
        else if (c == '\n')
            return i;
    }
    return n;
}

static size_t parse_unit(const char *s, size_t n, size_t i, bool in_group,
                         struct unit *u)
{
    while (i < n && (is_delim(s[i]) || s[i] == '@'))
        i++;
    memset(u, 0, sizeof(*u));
    char w[8];
    word_at(s, n, i, w, sizeof(w));
    size_t end_of_block = in_group ? block_end(s, n, i) : n;
    if (i < n && s[i] == '(') {
        size_t close = block_end(s, n, i + 1);
        u->kind = U_GROUP;
        u->a = i + 1;
        u->b = close;
        i = close < n ? close + 1 : n;
        /* redirections after a block are ignored */
        while (i < n && s[i] != '&' && s[i] != '|' && s[i] != ')' &&
               s[i] != '\n')
            i++;
    } else if (!strcmp(w, "for") || !strcmp(w, "if")) {
        u->kind = w[0] == 'f' ? U_FOR : U_IF;
        u->a = i;
        u->b = end_of_block;
        u->next = end_of_block;
        return u->next;
    } else {
        u->kind = U_SIMPLE;
        u->a = i;
        bool q = false;
        for (; i < n; i++) {
            char c = s[i];
            if (c == '^' && !q) {
                i++;
                continue;
            }
            if (c == '"')
                q = !q;
            if (q)
                continue;
            if (c == '&' || c == '|' || c == '\n' || (c == ')' && in_group))
                break;
        }
        if (i > n)
            i = n;
        u->b = i;
    }
    if (i < n && (s[i] == '&' || s[i] == '|')) {
        u->op = s[i];
        if (i + 1 < n && s[i + 1] == s[i]) {
            u->op = '&';
            i++;
        }
        i++;
    } else if (i < n && s[i] == '\n') {
        i++;
    }
    u->next = i;
    return i;
}

/* ---- emulated command output for FOR /F ---- */

static const char *const assoc_table[] = {
    ".bat=batfile", ".cdxml=Microsoft.PowerShellCmdletDefinitionXML.1",
    ".cmd=cmdfile", ".com=comfile", ".exe=exefile", ".hta=htafile",
    ".js=JSFile", ".ps1=Microsoft.PowerShellScript.1",
    ".ps1xml=Microsoft.PowerShellXMLData.1",
    ".psc1=Microsoft.PowerShellConsole.1", ".psd1=Microsoft.PowerShellData.1",
    ".psm1=Microsoft.PowerShellModule.1", ".txt=txtfile", ".vbs=VBSFile",
    ".wsf=WSFFile", NULL};

static const char *const ftype_table[] = {
    "batfile=\"%1\" %*", "cmdfile=\"%1\" %*", "comfile=\"%1\" %*",
    "exefile=\"%1\" %*", "htafile=C:\\Windows\\SysWOW64\\mshta.exe \"%1\" {1E460BD7-F1C3-4B2E-88BF-4E770A288AF5}%U{1E460BD7-F1C3-4B2E-88BF-4E770A288AF5} %*",
    "JSFile=C:\\Windows\\System32\\WScript.exe \"%1\" %*",
    "Microsoft.PowerShellCmdletDefinitionXML.1=C:\\Windows\\System32\\notepad.exe \"%1\"",
    "Microsoft.PowerShellConsole.1=\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -p \"%1\"",
    "Microsoft.PowerShellData.1=\"C:\\Windows\\System32\\notepad.exe\" \"%1\"",
    "Microsoft.PowerShellModule.1=\"C:\\Windows\\System32\\notepad.exe\" \"%1\"",
    "Microsoft.PowerShellScript.1=\"C:\\Windows\\System32\\notepad.exe\" \"%1\"",
    "Microsoft.PowerShellXMLData.1=\"C:\\Windows\\System32\\notepad.exe\" \"%1\"",
    "txtfile=%SystemRoot%\\system32\\NOTEPAD.EXE %1",
    "VBSFile=\"%SystemRoot%\\System32\\WScript.exe\" \"%1\" %*", NULL};

struct lines {
    struct sp_buf b;   /* lines separated by '\n' */
};

static void strip_quotes(const char **s, size_t *n)
{
    while (*n && (is_delim(**s)))
        (*s)++, (*n)--;
    while (*n && is_delim((*s)[*n - 1]))
        (*n)--;
    if (*n >= 2 && (*s)[0] == '"' && (*s)[*n - 1] == '"')
        (*s)++, *n -= 2;
}

/* Lines of a table whose key starts with arg (case-insensitive). */
static void table_lines(const char *const *t, const char *arg, size_t an,
                        struct sp_buf *out)
{
    for (size_t i = 0; t[i]; i++) {
        const char *eq = strchr(t[i], '=');
        size_t kl = (size_t)(eq - t[i]);
        if (an && !(kl == an && sp_strncaseeq(t[i], arg, an)))
            continue;
        sp_buf_puts(out, t[i]);
        sp_buf_putc(out, '\n');
    }
}

static void set_lines(struct emu *e, const char *arg, size_t an,
                      struct sp_buf *out)
{
    for (const struct deob_env *d = deob_env_defaults; d->name; d++) {
        if (an && !(strlen(d->name) >= an && sp_strncaseeq(d->name, arg, an)))
            continue;
        struct cvar *v = var_find(e, d->name, strlen(d->name));
        if (v && !v->val)
            continue;
        sp_buf_puts(out, d->name);
        sp_buf_putc(out, '=');
        if (v)
            sp_buf_put(out, v->val, v->vn);
        else
            sp_buf_puts(out, d->value);
        sp_buf_putc(out, '\n');
    }
    for (size_t i = 0; i < e->nvars; i++) {
        struct cvar *v = &e->vars[i];
        if (!v->val || deob_env_lookup(v->name, v->n) ||
            (an && !(v->n >= an && sp_strncaseeq(v->name, arg, an))))
            continue;
        sp_buf_put(out, v->name, v->n);
        sp_buf_putc(out, '=');
        sp_buf_put(out, v->val, v->vn);
        sp_buf_putc(out, '\n');
    }
}

/* find / findstr over the lines in `in`. */
static void filter_lines(const char *args, size_t an, bool findstr,
                         const char *in, size_t inn, struct sp_buf *out)
{
    bool ci = false, invert = false;
    char pats[8][128];
    size_t plen[8], np = 0;
    size_t i = 0;
    while (i < an) {
        while (i < an && is_fdelim(args[i]))
            i++;
        if (i >= an)
            break;
        if (args[i] == '/') {
            size_t j = i + 1;
            while (j < an && !is_fdelim(args[j]) && args[j] != '"')
                j++;
            if (j - i >= 2 && (args[i + 1] | 32) == 'i')
                ci = true;
            if (j - i >= 2 && (args[i + 1] | 32) == 'v')
                invert = true;
            if (j - i >= 3 && (args[i + 1] | 32) == 'c' && args[i + 2] == ':') {
                size_t k = i + 3, s0;
                bool q = k < an && args[k] == '"';
                if (q)
                    k++;
                s0 = k;
                while (k < an && (q ? args[k] != '"' : !is_fdelim(args[k])))
                    k++;
                if (np < 8 && k - s0 < 128) {
                    memcpy(pats[np], args + s0, k - s0);
                    plen[np++] = k - s0;
                }
                i = k + (q ? 1 : 0);
                continue;
            }
            i = j;
            continue;
        }
        size_t s0 = i, k = i;
        if (args[i] == '"') {
            s0 = ++k;
            while (k < an && args[k] != '"')
                k++;
        } else {
            while (k < an && !is_fdelim(args[k]))
                k++;
        }
        /* findstr: words of a quoted string are alternatives */
        size_t w = s0;
        while (w < k) {
            size_t we = w;
            if (findstr)
                while (we < k && args[we] != ' ')
                    we++;
            else
                we = k;
            if (np < 8 && we > w && we - w < 128) {
                memcpy(pats[np], args + w, we - w);
                plen[np++] = we - w;
            }
            w = we + 1;
        }
        i = k + 1;
    }
    size_t pos = 0;
    while (pos < inn) {
        const char *nl = memchr(in + pos, '\n', inn - pos);
        size_t le = nl ? (size_t)(nl - in) : inn;
        bool hit = false;
        for (size_t p = 0; p < np && !hit; p++) {
            for (size_t k = pos; k + plen[p] <= le && !hit; k++)
                hit = ci ? sp_strncaseeq(in + k, pats[p], plen[p])
                         : !memcmp(in + k, pats[p], plen[p]);
        }
        if (hit != invert) {
            sp_buf_put(out, in + pos, le - pos);
            sp_buf_putc(out, '\n');
        }
        pos = le + 1;
    }
}

/* Output of a command line run for FOR /F ('...'). */
static void command_output(struct emu *e, const char *s, size_t n,
                           struct sp_buf *out)
{
    struct sp_buf text, cur, next;
    sp_buf_init(&text, CMD_MAX_VALUE * 4);
    sp_buf_init(&cur, CMD_MAX_VALUE * 4);
    sp_buf_init(&next, CMD_MAX_VALUE * 4);
    caret_pass(s, n, &text);
    const char *t = text.data ? text.data : "";
    size_t tn = text.len, i = 0;
    bool first = true;
    while (i <= tn && !e->abort) {
        bool q = false;
        size_t j = i;
        for (; j < tn; j++) {
            if (t[j] == '"')
                q = !q;
            if (!q && t[j] == '|')
                break;
        }
        size_t a = i;
        while (a < j && is_delim(t[a]))
            a++;
        char w[16];
        word_at(t, j, a, w, sizeof(w));
        size_t args = a + strlen(w);
        while (args < j && t[args] == '^')
            args++;
        sp_buf_reset(&next);
        const char *arg = t + args;
        size_t argn = j - args;
        if (first) {
            while (argn && is_delim(*arg))
                arg++, argn--;
            while (argn && is_delim(arg[argn - 1]))
                argn--;
            if (!strcmp(w, "assoc"))
                table_lines(assoc_table, arg, argn, &next);
            else if (!strcmp(w, "ftype"))
                table_lines(ftype_table, arg, argn, &next);
            else if (!strcmp(w, "set"))
                set_lines(e, arg, argn, &next);
            else if (!strcmp(w, "echo")) {
                sp_buf_put(&next, arg, argn);
                sp_buf_putc(&next, '\n');
            } else if (!strcmp(w, "ver")) {
                sp_buf_puts(&next, "\nMicrosoft Windows [Version "
                                   "10.0.19045.4529]\n");
            }
        } else if (!strcmp(w, "findstr") || !strcmp(w, "find")) {
            filter_lines(arg, argn, w[4] == 's', cur.data ? cur.data : "",
                         cur.len, &next);
        }
        struct sp_buf tmp = cur;
        cur = next;
        next = tmp;
        first = false;
        i = j + 1;
    }
    sp_buf_put(out, cur.data ? cur.data : "", cur.len);
    sp_buf_fini(&text);
    sp_buf_fini(&cur);
    sp_buf_fini(&next);
}

/* ---- FOR ---- */

/* Header tokens of FOR/IF: carets removed, quotes kept, delimiters split.
 * Returns the token's end; (tok, tn) is the processed token. */
static size_t next_token_eq(const char *s, size_t n, size_t i,
                            struct sp_buf *tok, bool eq)
{
    sp_buf_reset(tok);
    while (i < n && (eq ? is_fdelim(s[i]) : is_delim(s[i])))
        i++;
    if (eq && i + 1 < n && s[i] == '=' && s[i + 1] == '=') {
        sp_buf_put(tok, "==", 2);
        return i + 2;
    }
    bool q = false;
    while (i < n) {
        char c = s[i];
        if (c == '^' && !q) {
            if (i + 1 < n)
                sp_buf_putc(tok, s[i + 1]);
            i += 2;
            continue;
        }
        if (c == '"')
            q = !q;
        else if (!q && ((eq ? is_fdelim(c) : is_delim(c)) || c == '(' ||
                        c == ')'))
            break;
        else if (!q && eq && c == '=' && i + 1 < n && s[i + 1] == '=')
            break;
        sp_buf_putc(tok, c);
        i++;
    }
    if (tok->len == 0 && i < n && (s[i] == '(' || s[i] == ')')) {
        sp_buf_putc(tok, s[i]);
        i++;
    }
    return i;
}

static size_t next_token(const char *s, size_t n, size_t i,
                         struct sp_buf *tok)
{
    return next_token_eq(s, n, i, tok, false);
}

static bool tok_is(const struct sp_buf *t, const char *w)
{
    return t->data && deob_ci_eqn(t->data, t->len, w);
}

struct forf {
    int tokens[32];
    size_t ntok;
    bool star;
    char delims[64];
    size_t nd;
    size_t skip;
    char eol;
    bool usebackq;
};

static void parse_forf_opts(const char *s, size_t n, struct forf *o)
{
    memset(o, 0, sizeof(*o));
    o->tokens[0] = 1;
    o->ntok = 1;
    o->delims[0] = ' ';
    o->delims[1] = '\t';
    o->nd = 2;
    o->eol = ';';
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (deob_ci_prefix(s + i, n - i, "tokens=")) {
            i += 7;
            o->ntok = 0;
            while (i < n && (s[i] == ' ' || s[i] == '\t'))
                i++;
            while (i < n && o->ntok < 31) {
                if (s[i] == '+')
                    i++;
                long a = 0;
                size_t d = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9' && d < 3)
                    a = a * 10 + (s[i++] - '0'), d++;
                if (!d) {
                    if (i < n && s[i] == '*') {
                        o->star = true;
                        i++;
                    }
                    break;
                }
                long b = a;
                if (i < n && s[i] == '-') {
                    i++;
                    b = 0;
                    while (i < n && s[i] >= '0' && s[i] <= '9')
                        b = b * 10 + (s[i++] - '0');
                }
                for (long k = a; k <= b && o->ntok < 31; k++)
                    o->tokens[o->ntok++] = (int)k;
                if (i < n && s[i] == ',') {
                    i++;
                    continue;
                }
                if (i < n && s[i] == '*') {
                    o->star = true;
                    i++;
                }
                break;
            }
        } else if (deob_ci_prefix(s + i, n - i, "delims=")) {
            i += 7;
            o->nd = 0;
            size_t j = i;
            while (j < n && s[j] != ' ' && s[j] != '\t')
                j++;
            bool rest_blank = true;
            for (size_t k = j; k < n; k++)
                if (s[k] != ' ' && s[k] != '\t')
                    rest_blank = false;
            if (j == i || rest_blank)
                j = rest_blank ? n : j;
            for (size_t k = i; k < j && o->nd < sizeof(o->delims); k++)
                o->delims[o->nd++] = s[k];
            i = j;
        } else if (deob_ci_prefix(s + i, n - i, "skip=")) {
            i += 5;
            while (i < n && s[i] >= '0' && s[i] <= '9')
                o->skip = o->skip * 10 + (size_t)(s[i++] - '0');
        } else if (deob_ci_prefix(s + i, n - i, "eol=")) {
            i += 4;
            if (i < n)
                o->eol = s[i++];
        } else if (deob_ci_prefix(s + i, n - i, "usebackq")) {
            o->usebackq = true;
            i += 8;
        } else {
            i++;
        }
    }
}

/* Runs body with %v replaced by val (also %^v and %~v). */
static void for_body(struct emu *e, const char *body, size_t bn,
                     const char *vars, const char *const *vals,
                     const size_t *vlens, size_t nvars, const char *in,
                     size_t inn)
{
    struct sp_buf b;
    sp_buf_init(&b, CMD_MAX_VALUE * 4);
    for (size_t i = 0; i < bn; i++) {
        if (body[i] == '%') {
            size_t j = i + 1;
            while (j < bn && body[j] == '^')
                j++;
            bool tilde = j < bn && body[j] == '~';
            if (tilde)
                j++;
            bool hit = false;
            for (size_t k = 0; j < bn && k < nvars; k++) {
                if (body[j] == vars[k]) {
                    const char *v = vals[k];
                    size_t vl = vlens[k];
                    if (tilde && vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
                        v++, vl -= 2;
                    sp_buf_put(&b, v, vl);
                    i = j;
                    hit = true;
                    break;
                }
            }
            if (hit)
                continue;
        }
        sp_buf_putc(&b, body[i]);
    }
    if (!b.overflow)
        exec_seq(e, b.data ? b.data : "", b.len, in, inn);
    sp_buf_fini(&b);
}

static void exec_for(struct emu *e, const char *s, size_t n, const char *in,
                     size_t inn)
{
    struct sp_buf tok, opts, set;
    sp_buf_init(&tok, CMD_MAX_VALUE);
    sp_buf_init(&opts, 1024);
    sp_buf_init(&set, CMD_MAX_VALUE * 4);
    char mode = 0;
    char var = 0;
    size_t i = next_token(s, n, 0, &tok); /* "for" */
    for (int guard = 0; guard < 8; guard++) {
        size_t j = next_token(s, n, i, &tok);
        if (tok.len >= 2 && tok.data[0] == '/') {
            mode = sp_tolower(tok.data[1]);
            i = j;
            continue;
        }
        if (tok.len && tok.data[0] == '"') {
            sp_buf_put(&opts, tok.data + 1, tok.len >= 2 ? tok.len - 2 : 0);
            i = j;
            continue;
        }
        break;
    }
    i = next_token(s, n, i, &tok);
    if (tok.len >= 2 && tok.data[0] == '%')
        var = tok.data[tok.len - 1];
    i = next_token(s, n, i, &tok);
    if (!var || !tok_is(&tok, "in"))
        goto out;
    while (i < n && (is_delim(s[i]) || s[i] == '^'))
        i++;
    if (i >= n || s[i] != '(')
        goto out;
    /* the set, up to its ')' */
    {
        bool q = false;
        size_t j = i + 1;
        for (; j < n; j++) {
            char c = s[j];
            if (c == '^' && !q) {
                if (j + 1 < n)
                    sp_buf_putc(&set, s[++j]);
                continue;
            }
            if (c == '"')
                q = !q;
            if (!q && c == ')')
                break;
            sp_buf_putc(&set, c);
        }
        if (j >= n)
            goto out;
        i = next_token(s, n, j + 1, &tok);
    }
    if (!tok_is(&tok, "do"))
        goto out;
    while (i < n && is_delim(s[i]))
        i++;
    const char *body = s + i;
    size_t bn = n - i;
    const char *st = set.data ? set.data : "";
    size_t sn = set.len;

    if (mode == 'l') {
        long v[3] = {0, 1, 0};
        size_t k = 0, p = 0;
        while (k < 3 && p < sn) {
            while (p < sn && (is_delim(st[p]) || st[p] == ' '))
                p++;
            if (!parse_cmd_int(st, sn, &p, &v[k]))
                break;
            k++;
        }
        if (k < 3 || v[1] == 0)
            goto out;
        e->techs |= T_DELAYED;
        for (long x = v[0]; (v[1] > 0 ? x <= v[2] : x >= v[2]);
             x += v[1]) {
            if (!emu_tick(e))
                break;
            char num[24];
            int nl = snprintf(num, sizeof(num), "%ld", x);
            const char *vals[1] = {num};
            size_t lens[1] = {(size_t)nl};
            for_body(e, body, bn, &var, vals, lens, 1, in, inn);
        }
    } else if (mode == 'f') {
        struct forf o;
        parse_forf_opts(opts.data ? opts.data : "", opts.len, &o);
        struct sp_buf lines;
        sp_buf_init(&lines, CMD_MAX_VALUE * 4);
        const char *cs = st;
        size_t cn = sn;
        strip_quotes(&cs, &cn);
        while (sn && is_delim(*st))
            st++, sn--;
        if (sn && (st[0] == '\'' || (o.usebackq && st[0] == '`'))) {
            while (cn && (cs[0] == '\'' || cs[0] == '`'))
                cs++, cn--;
            while (cn && (cs[cn - 1] == '\'' || cs[cn - 1] == '`'))
                cn--;
            command_output(e, cs, cn, &lines);
        } else if (sn && st[0] == '"' && !o.usebackq) {
            sp_buf_put(&lines, cs, cn);
            sp_buf_putc(&lines, '\n');
        }
        e->techs |= T_FORF;
        const char *L = lines.data ? lines.data : "";
        size_t ln = lines.len, pos = 0, lineno = 0;
        while (pos < ln && !e->abort) {
            const char *nl = memchr(L + pos, '\n', ln - pos);
            size_t le = nl ? (size_t)(nl - L) : ln;
            const char *line = L + pos;
            size_t ll = le - pos;
            pos = le + 1;
            if (lineno++ < o.skip || ll == 0 || line[0] == o.eol)
                continue;
            /* split into tokens */
            const char *tk[64];
            size_t tl[64], nt = 0, p = 0;
            while (p < ll && nt < 64) {
                while (p < ll && memchr(o.delims, line[p], o.nd))
                    p++;
                if (p >= ll)
                    break;
                size_t q = p;
                while (q < ll && !memchr(o.delims, line[q], o.nd))
                    q++;
                tk[nt] = line + p;
                tl[nt++] = q - p;
                p = q;
            }
            char vars[34];
            const char *vals[34];
            size_t lens[34], nv = 0;
            bool any = false;
            for (size_t k = 0; k < o.ntok && nv < 32; k++) {
                int t = o.tokens[k];
                vars[nv] = (char)(var + (char)nv);
                if (t >= 1 && (size_t)t <= nt) {
                    vals[nv] = tk[t - 1];
                    lens[nv] = tl[t - 1];
                    any = true;
                } else {
                    vals[nv] = "";
                    lens[nv] = 0;
                }
                nv++;
            }
            if (o.star) {
                int last = o.ntok ? o.tokens[o.ntok - 1] : 0;
                vars[nv] = (char)(var + (char)nv);
                vals[nv] = "";
                lens[nv] = 0;
                if ((size_t)last < nt) {
                    vals[nv] = tk[last];
                    lens[nv] = (size_t)(line + ll - tk[last]);
                    any = true;
                }
                nv++;
            }
            if (!any || !emu_tick(e))
                continue;
            for_body(e, body, bn, vars, vals, lens, nv, in, inn);
        }
        sp_buf_fini(&lines);
    } else if (mode == 0) {
        size_t p = 0;
        e->techs |= T_DELAYED;
        while (p < sn && !e->abort) {
            while (p < sn && (is_delim(st[p]) || st[p] == '\n'))
                p++;
            if (p >= sn)
                break;
            size_t q = p;
            bool qq = false;
            while (q < sn && (qq || (!is_delim(st[q]) && st[q] != '\n'))) {
                if (st[q] == '"')
                    qq = !qq;
                q++;
            }
            if (!memchr(st + p, '*', q - p) && !memchr(st + p, '?', q - p) &&
                emu_tick(e)) {
                const char *vals[1] = {st + p};
                size_t lens[1] = {q - p};
                for_body(e, body, bn, &var, vals, lens, 1, in, inn);
            }
            p = q;
        }
    }
out:
    sp_buf_fini(&tok);
    sp_buf_fini(&opts);
    sp_buf_fini(&set);
}

/* ---- IF ---- */

static void exec_if(struct emu *e, const char *s, size_t n, const char *in,
                    size_t inn)
{
    struct sp_buf tok, a, bb;
    sp_buf_init(&tok, CMD_MAX_VALUE);
    sp_buf_init(&a, CMD_MAX_VALUE);
    sp_buf_init(&bb, CMD_MAX_VALUE);
    size_t i = next_token(s, n, 0, &tok); /* "if" */
    bool neg = false, ci = false, cond = true;
    for (int guard = 0; guard < 4; guard++) {
        size_t j = next_token(s, n, i, &tok);
        if (tok_is(&tok, "/i")) {
            ci = true;
            i = j;
        } else if (tok_is(&tok, "not")) {
            neg = true;
            i = j;
        } else {
            break;
        }
    }
    size_t j = next_token_eq(s, n, i, &tok, true);
    if (tok_is(&tok, "defined")) {
        i = next_token_eq(s, n, j, &tok, true);
        const char *v;
        size_t vn;
        cond = tok.len && var_get(e, tok.data, tok.len, &v, &vn);
    } else if (tok_is(&tok, "exist") || tok_is(&tok, "errorlevel") ||
               tok_is(&tok, "cmdextversion")) {
        i = next_token_eq(s, n, j, &tok, true);
        cond = true;
    } else {
        sp_buf_put(&a, tok.data ? tok.data : "", tok.len);
        size_t k = next_token_eq(s, n, j, &tok, true);
        char op[8] = "";
        if (tok.len >= 2 && tok.len < sizeof(op))
            for (size_t m = 0; m < tok.len; m++)
                op[m] = sp_tolower(tok.data[m]), op[m + 1] = '\0';
        i = next_token_eq(s, n, k, &bb, true);
        const char *x1 = a.data ? a.data : "", *x2 = bb.data ? bb.data : "";
        if (!strcmp(op, "==")) {
            cond = ci ? (a.len == bb.len && sp_strncaseeq(x1, x2, a.len))
                      : (a.len == bb.len && !memcmp(x1, x2, a.len));
        } else {
            long x = 0, y = 0;
            size_t p1 = 0, p2 = 0;
            bool num = parse_cmd_int(x1, a.len, &p1, &x) && p1 == a.len &&
                       parse_cmd_int(x2, bb.len, &p2, &y) && p2 == bb.len;
            int c = num ? (x < y ? -1 : x > y) : strcmp(x1, x2);
            if (!strcmp(op, "equ"))
                cond = c == 0;
            else if (!strcmp(op, "neq"))
                cond = c != 0;
            else if (!strcmp(op, "lss"))
                cond = c < 0;
            else if (!strcmp(op, "leq"))
                cond = c <= 0;
            else if (!strcmp(op, "gtr"))
                cond = c > 0;
            else if (!strcmp(op, "geq"))
                cond = c >= 0;
            else
                cond = true;
        }
    }
    if (neg)
        cond = !cond;
    while (i < n && is_delim(s[i]))
        i++;
    if (i < n) {
        /* ( ... ) else ( ... ) */
        const char *body = s + i;
        size_t bn = n - i;
        if (body[0] == '(') {
            size_t close = block_end(body, bn, 1);
            size_t k = close + 1;
            while (k < bn && is_delim(body[k]))
                k++;
            if (close < bn && deob_ci_prefix(body + k, bn - k, "else")) {
                if (cond)
                    exec_seq(e, body + 1, close - 1, in, inn);
                else
                    exec_seq(e, body + k + 4, bn - k - 4, in, inn);
                goto out;
            }
        }
        if (cond)
            exec_seq(e, body, bn, in, inn);
    }
out:
    sp_buf_fini(&tok);
    sp_buf_fini(&a);
    sp_buf_fini(&bb);
}

/* ---- simple commands ---- */

/* The command text after phases 2 and 5. */
static void command_text(struct emu *e, const char *s, size_t n,
                         struct sp_buf *out)
{
    struct sp_buf p2;
    sp_buf_init(&p2, CMD_MAX_VALUE * 4);
    caret_pass(s, n, &p2);
    if (e->delayed && p2.data && memchr(p2.data, '!', p2.len))
        delayed_expand(e, p2.data, p2.len, out);
    else
        sp_buf_put(out, p2.data ? p2.data : "", p2.len);
    sp_buf_fini(&p2);
}

static void exec_cmd_exe(struct emu *e, const char *t, size_t tn,
                         size_t i, const char *in, size_t inn)
{
    bool delayed = false, has_c = false;
    while (i < tn) {
        /* cmd.exe looks for its switches anywhere before /C; anything
         * else in between is ignored */
        while (i < tn && t[i] != '/' && t[i] != '"')
            i++;
        if (i >= tn || t[i] != '/')
            break;
        char sw = i + 1 < tn ? sp_tolower(t[i + 1]) : 0;
        size_t j = i + 2;
        if (sw == 'v' || sw == 'e' || sw == 'f' || sw == 't') {
            if (j < tn && t[j] == ':') {
                size_t k = j + 1;
                while (k < tn && !is_delim(t[k]) && t[k] != '/' &&
                       t[k] != '"')
                    k++;
                if (sw == 'v')
                    delayed = !deob_ci_eqn(t + j + 1, k - j - 1, "off");
                j = k;
            } else if (sw == 'v') {
                delayed = true;
            }
        }
        if (sw == 'c' || sw == 'k' || sw == 'r') {
            has_c = true;
            i = j;
            break;
        }
        i = j;
    }
    bool saved = e->delayed;
    e->delayed = delayed;
    e->depth++;
    if (has_c) {
        const char *r = t + i;
        size_t rn = tn - i;
        while (rn && (r[0] == ' ' || r[0] == '\t'))
            r++, rn--;
        if (rn && r[0] == '"') {
            r++, rn--;
            for (size_t k = rn; k-- > 0;) {
                if (r[k] == '"') {
                    rn = k;
                    break;
                }
            }
        }
        e->techs |= T_NESTED;
        if (e->depth <= CMD_MAX_DEPTH)
            run_line(e, r, rn, NULL, 0);
    } else if (in) {
        e->techs |= T_NESTED;
        if (e->depth <= CMD_MAX_DEPTH)
            run_line(e, in, inn, NULL, 0);
    } else {
        record(e, t, tn);
    }
    e->depth--;
    e->delayed = saved;
}

static void exec_simple(struct emu *e, const char *s, size_t n,
                        const char *in, size_t inn)
{
    if (!emu_tick(e))
        return;
    struct sp_buf tb;
    sp_buf_init(&tb, CMD_MAX_VALUE * 4);
    command_text(e, s, n, &tb);
    const char *t = tb.data ? tb.data : "";
    size_t tn = tb.len, i = 0;
    while (i < tn && (is_delim(t[i]) || t[i] == '@'))
        i++;
    size_t ws = i;
    bool quoted = i < tn && t[i] == '"';
    size_t we = quoted ? i + 1 : i;
    while (we < tn && (quoted ? t[we] != '"'
                              : !(is_delim(t[we]) || t[we] == '/' ||
                                  t[we] == '"' || t[we] == '(')))
        we++;
    if (quoted && we < tn)
        we++;
    char w[64];
    deob_first_word(t + ws, we - ws, w, sizeof(w), NULL);
    size_t rest = we;
    if (!strcmp(w, "set")) {
        size_t k = rest;
        while (k < tn && (t[k] == ' ' || t[k] == '\t'))
            k++;
        if (k < tn && t[k] == '/') {
            sp_buf_fini(&tb);
            return;
        }
        const char *a = t + k;
        size_t an = tn - k;
        if (an && a[0] == '"') {
            a++, an--;
            for (size_t m = an; m-- > 0;)
                if (a[m] == '"') {
                    an = m;
                    break;
                }
        }
        const char *eq = memchr(a, '=', an);
        if (eq && eq > a) {
            var_put(e, a, (size_t)(eq - a), eq + 1, an - (size_t)(eq - a) - 1);
            e->techs |= T_SET;
        }
    } else if (!strcmp(w, "call")) {
        size_t k = rest;
        while (k < tn && is_delim(t[k]))
            k++;
        if (k < tn && t[k] != ':' && e->depth < CMD_MAX_DEPTH) {
            e->depth++;
            e->techs |= T_SET;
            run_line(e, t + k, tn - k, in, inn);
            e->depth--;
        }
    } else if (!strcmp(w, "echo") && e->capture) {
        size_t k = rest;
        if (k < tn && (is_delim(t[k]) || t[k] == '.'))
            k++;
        size_t end = tn;
        while (end > k && (t[end - 1] == ' ' || t[end - 1] == '\t'))
            end--;
        sp_buf_put(e->capture, t + k, end - k);
        sp_buf_putc(e->capture, '\n');
    } else if (!strcmp(w, "cmd")) {
        exec_cmd_exe(e, t, tn, rest, in, inn);
    } else if (!strcmp(w, "rem") || !strcmp(w, "setlocal") ||
               !strcmp(w, "endlocal") || !strcmp(w, "goto") ||
               !strcmp(w, "exit") || !strcmp(w, "cls") || w[0] == ':' ||
               !w[0]) {
        if (!strcmp(w, "setlocal") &&
            deob_ci_find(t, tn, "enabledelayedexpansion") != (size_t)-1)
            e->delayed = true;
    } else if (in && (!strcmp(w, "powershell") || !strcmp(w, "pwsh"))) {
        /* powershell reading its commands from a pipe runs them */
        struct sp_buf line;
        sp_buf_init(&line, CMD_MAX_VALUE * 4);
        sp_buf_put(&line, t + ws, we - ws);
        sp_buf_puts(&line, " -Command ");
        sp_buf_put(&line, in, inn);
        while (line.len && (line.data[line.len - 1] == '\n' ||
                            line.data[line.len - 1] == ' '))
            line.len--;
        if (!line.overflow)
            record(e, line.data, line.len);
        sp_buf_fini(&line);
    } else {
        record(e, t + ws, tn - ws);
    }
    sp_buf_fini(&tb);
}

static void exec_unit(struct emu *e, const char *s, const struct unit *u,
                      const char *in, size_t inn)
{
    switch (u->kind) {
    case U_GROUP:
        exec_seq(e, s + u->a, u->b - u->a, in, inn);
        break;
    case U_FOR:
        exec_for(e, s + u->a, u->b - u->a, in, inn);
        break;
    case U_IF:
        exec_if(e, s + u->a, u->b - u->a, in, inn);
        break;
    default:
        exec_simple(e, s + u->a, u->b - u->a, in, inn);
        break;
    }
}

static void exec_seq(struct emu *e, const char *s, size_t n, const char *in,
                     size_t inn)
{
    size_t i = 0;
    if (++e->depth > CMD_MAX_DEPTH * 4) {
        e->depth--;
        return;
    }
    while (i < n && emu_tick(e)) {
        struct unit u;
        size_t next = parse_unit(s, n, i, false, &u);
        if (next <= i && u.b <= i) {
            i++;
            continue;
        }
        if (u.op != '|') {
            exec_unit(e, s, &u, in, inn);
            i = next;
            continue;
        }
        /* a pipeline: what the left side echoes feeds the right side;
         * two programs are shown as the pipeline they form */
        struct unit v;
        size_t after = parse_unit(s, n, next, false, &v);
        char w[16] = "";
        if (u.kind == U_SIMPLE) {
            size_t k = u.a;
            while (k < u.b && (is_delim(s[k]) || s[k] == '@'))
                k++;
            size_t we = k;
            while (we < u.b && !is_delim(s[we]) && s[we] != '/')
                we++;
            deob_first_word(s + k, we - k, w, sizeof(w), NULL);
        }
        if (u.kind == U_SIMPLE && strcmp(w, "echo") && strcmp(w, "call") &&
            strcmp(w, "cmd")) {
            struct sp_buf line;
            sp_buf_init(&line, CMD_MAX_VALUE * 4);
            command_text(e, s + u.a, u.b - u.a, &line);
            sp_buf_puts(&line, " | ");
            command_text(e, s + v.a, v.b - v.a, &line);
            record(e, line.data ? line.data : "", line.len);
            sp_buf_fini(&line);
        } else {
            struct sp_buf cap;
            sp_buf_init(&cap, CMD_MAX_VALUE * 4);
            struct sp_buf *saved = e->capture;
            e->capture = &cap;
            exec_unit(e, s, &u, in, inn);
            e->capture = saved;
            if (cap.len)
                exec_unit(e, s, &v, cap.data, cap.len);
            else
                exec_unit(e, s, &v, NULL, 0);
            sp_buf_fini(&cap);
        }
        i = after;
    }
    e->depth--;
}

static void run_line(struct emu *e, const char *s, size_t n, const char *in,
                     size_t inn)
{
    struct sp_buf p1;
    sp_buf_init(&p1, CMD_MAX_VALUE * 4);
    pct_expand(e, s, n, &p1, false);
    if (!p1.overflow)
        exec_seq(e, p1.data ? p1.data : "", p1.len, in, inn);
    sp_buf_fini(&p1);
}

/* Lines worth emulating: obfuscation that only running cmd.exe's rules
 * resolves (variables set and read back, delayed expansion, CALL
 * re-expansion, FOR /F over command output).  A plain loop or a plain
 * set is left alone. */
static bool emulation_worthy(const char *s, size_t n)
{
    struct sp_buf t;
    sp_buf_init(&t, n + 1);
    caret_pass(s, n, &t);
    const char *x = t.data ? t.data : "";
    size_t xn = t.len;
    bool worthy = false, delayed = deob_ci_find(x, xn, "/v") != (size_t)-1;
    bool substr = deob_ci_find(x, xn, ":~") != (size_t)-1;
    const char *last_pct = memrchr(x, '%', xn);
    size_t sets = 0;
    for (size_t i = 0; i + 3 < xn && !worthy && sets < 256; i++) {
        if (i && deob_isalnum((unsigned char)x[i - 1]))
            continue;
        if (deob_ci_prefix(x + i, xn - i, "set") &&
            (is_delim(x[i + 3]) || x[i + 3] == '"')) {
            size_t a = i + 3;
            while (a < xn && (is_fdelim(x[a]) || x[a] == '"'))
                a++;
            size_t e = a;
            while (e < xn && x[e] != '=' && x[e] != '&' && x[e] != '\n' &&
                   e - a < 64)
                e++;
            if (e < xn && x[e] == '=' && e > a) {
                sets++;
                /* read back as %NAME, !NAME, or env:NAME by PowerShell */
                for (size_t k = 0; k + (e - a) < xn && !worthy; k++)
                    if (((x[k] == '%' || (x[k] == '!' && delayed)) &&
                         sp_strncaseeq(x + k + 1, x + a, e - a)) ||
                        (x[k] == ':' && k >= 3 &&
                         sp_strncaseeq(x + k - 3, "env", 3) &&
                         sp_strncaseeq(x + k + 1, x + a, e - a)))
                        worthy = true;
            }
        } else if (deob_ci_prefix(x + i, xn - i, "for") &&
                   (is_delim(x[i + 3]) || x[i + 3] == '/')) {
            size_t k = i + 3;
            while (k < xn && (is_delim(x[k]) || x[k] == '^'))
                k++;
            if (k + 1 < xn && x[k] == '/' && (x[k + 1] | 32) == 'f')
                worthy = true;
            if (substr)
                worthy = true;
        } else if (deob_ci_prefix(x + i, xn - i, "call") &&
                   is_delim(x[i + 4]) && last_pct && last_pct > x + i) {
            worthy = true;
        }
    }
    /* echo ... | powershell - : the launcher reading from a pipe */
    if (!worthy && deob_ci_find(x, xn, "echo") != (size_t)-1) {
        for (size_t i = 0; i < xn && !worthy; i++) {
            if (x[i] != '|')
                continue;
            size_t k = i + 1;
            while (k < xn && is_fdelim(x[k]))
                k++;
            char w[16];
            word_at(x, xn, k, w, sizeof(w));
            worthy = !strcmp(w, "powershell") || !strcmp(w, "pwsh") ||
                     !strcmp(w, "powershell.exe");
        }
    }
    if (!worthy && delayed) {
        /* !VAR! or !VAR:~..! read back */
        for (size_t i = 0; i + 2 < xn && !worthy; i++)
            if (x[i] == '!' && (deob_isalnum((unsigned char)x[i + 1]) ||
                                strchr("_-$#@{}[]~`'.,;?*\\", x[i + 1])))
                worthy = memchr(x + i + 1, '!', xn - i - 1) != NULL;
    }
    sp_buf_fini(&t);
    return worthy;
}

enum deob_rc deob_cmd_emulate(struct deob_ctx *ctx, const char *s, size_t n,
                              struct deob_out *out)
{
    enum deob_lang lang = deob_lang_detect(s, n);
    if (lang == DEOB_LANG_PS || lang == DEOB_LANG_SH ||
        !emulation_worthy(s, n))
        return DEOB_NONE;
    struct emu e;
    memset(&e, 0, sizeof(e));
    e.ctx = ctx;
    sp_buf_init(&e.out, ctx->budget ? ctx->budget : 1);
    run_line(&e, s, n, NULL, 0);
    enum deob_rc rc = DEOB_NONE;
    if (e.out.overflow) {
        rc = deob_buf_rc(ctx, &e.out);
    } else if (e.out.len && !e.abort && e.techs) {
        sp_buf_put(&out->buf, e.out.data, e.out.len);
        out->technique = (e.techs & T_FORF)      ? "cmd.for_f"
                         : (e.techs & T_DELAYED) ? "cmd.delayed_expansion"
                         : (e.techs & T_SET)     ? "cmd.set_vars"
                                                 : "cmd.nested";
        rc = out->buf.overflow ? deob_buf_rc(ctx, &out->buf) : DEOB_PROGRESS;
    }
    for (size_t i = 0; i < e.nvars; i++) {
        free(e.vars[i].name);
        free(e.vars[i].val);
    }
    free(e.vars);
    sp_buf_fini(&e.out);
    return rc;
}
