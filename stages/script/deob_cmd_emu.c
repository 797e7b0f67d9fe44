/*
 * deob_cmd_emu.c - a small cmd.exe emulator for Invoke-DOSfuscation style
 * lines (deob_cmd_emulate): percent expansion with command-line rules,
 * carets and quotes, & && || | and ( ) blocks, set, call, delayed
 * expansion (!VAR! under /V or setlocal), echo ... | cmd and
 * echo ... | powershell, nested cmd /c; FOR and IF are in deob_cmd_ctl.c.
 * The next layer lists the programs the line would start.  Nothing is
 * started.
 *
 * Owns the emulator state (struct emu: variables, output, counters),
 * created and freed per call.  Bounded by steps, nesting, variable sizes,
 * the run's time and output budgets.  Called by the driver on the
 * context's thread.
 */
#include "deob_cmd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- state and variables ---- */

bool sp_deob_cmd_tick(struct emu *e)
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

struct cvar *sp_deob_cmd_var_find(struct emu *e, const char *name, size_t n)
{
    for (size_t i = 0; i < e->nvars; i++)
        if (e->vars[i].n == n && sp_strncaseeq(e->vars[i].name, name, n))
            return &e->vars[i];
    return NULL;
}

/* Value of a variable: the script's own, else the Windows default. */
bool sp_deob_cmd_var_get(struct emu *e, const char *name, size_t n,
                         const char **val, size_t *vn)
{
    struct cvar *v = sp_deob_cmd_var_find(e, name, n);
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
    struct cvar *v = sp_deob_cmd_var_find(e, name, n);
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

/* ---- expansion phases ---- */

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
        if (nl > 0 && sp_deob_cmd_var_get(e, spec, nl, &val, &vn)) {
            size_t mark = out->len;
            if (!colon) {
                sp_buf_put(out, val, vn);
                i = j + 1;
                continue;
            }
            if (sp_deob_cmd_apply_mod(val, vn, colon + 1, sl - nl - 1, out)) {
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
        if (nl > 0 && sp_deob_cmd_var_get(e, spec, nl, &val, &vn)) {
            size_t mark = out->len;
            if (!colon) {
                sp_buf_put(out, val, vn);
                done = true;
            } else if (sp_deob_cmd_apply_mod(val, vn, colon + 1, sl - nl - 1,
                                             out)) {
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
void sp_deob_cmd_caret_pass(const char *s, size_t n, struct sp_buf *out)
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

bool sp_deob_cmd_is_delim(char c)
{
    return c == ' ' || c == '\t' || c == ',' || c == ';' || c == '=' ||
           c == '\v' || c == '\f';
}

bool sp_deob_cmd_is_fdelim(char c)
{
    return c == ' ' || c == '\t' || c == ',' || c == ';';
}

static void record(struct emu *e, const char *s, size_t n)
{
    while (n && (sp_deob_cmd_is_delim(s[0]) || s[0] == '@'))
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

/* ---- command sequences ---- */

/* A unit of a command sequence. */
enum ukind { U_SIMPLE, U_GROUP, U_FOR, U_IF };

struct unit {
    enum ukind kind;
    size_t a, b;     /* text (group: inside the parens) */
    size_t next;     /* after the operator */
    char op;         /* 0, '&' (also &&, ||) or '|' */
};

/* First word at s[i] (carets skipped), lower case. */
void sp_deob_cmd_word_at(const char *s, size_t n, size_t i, char *w, size_t cap)
{
    size_t k = 0;
    while (i < n && k + 1 < cap) {
        char c = s[i];
        if (c == '^') {
            i++;
            continue;
        }
        if (sp_deob_cmd_is_delim(c) || c == '(' || c == ')' || c == '"' ||
            c == '/' || c == '&' || c == '|' || c == '\n')
            break;
        w[k++] = sp_tolower(c);
        i++;
    }
    w[k] = '\0';
}

/* End of the current block from i: an unmatched ')' or the end. */
size_t sp_deob_cmd_block_end(const char *s, size_t n, size_t i)
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
    while (i < n && (sp_deob_cmd_is_delim(s[i]) || s[i] == '@'))
        i++;
    memset(u, 0, sizeof(*u));
    char w[8];
    sp_deob_cmd_word_at(s, n, i, w, sizeof(w));
    size_t end_of_block = in_group ? sp_deob_cmd_block_end(s, n, i) : n;
    if (i < n && s[i] == '(') {
        size_t close = sp_deob_cmd_block_end(s, n, i + 1);
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

/* ---- simple commands ---- */

/* The command text after phases 2 and 5. */
static void command_text(struct emu *e, const char *s, size_t n,
                         struct sp_buf *out)
{
    struct sp_buf p2;
    sp_buf_init(&p2, CMD_MAX_VALUE * 4);
    sp_deob_cmd_caret_pass(s, n, &p2);
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
                while (k < tn && !sp_deob_cmd_is_delim(t[k]) && t[k] != '/' &&
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
    if (!sp_deob_cmd_tick(e))
        return;
    struct sp_buf tb;
    sp_buf_init(&tb, CMD_MAX_VALUE * 4);
    command_text(e, s, n, &tb);
    const char *t = tb.data ? tb.data : "";
    size_t tn = tb.len, i = 0;
    while (i < tn && (sp_deob_cmd_is_delim(t[i]) || t[i] == '@'))
        i++;
    size_t ws = i;
    bool quoted = i < tn && t[i] == '"';
    size_t we = quoted ? i + 1 : i;
    while (we < tn && (quoted ? t[we] != '"'
                              : !(sp_deob_cmd_is_delim(t[we]) || t[we] == '/' ||
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
        while (k < tn && sp_deob_cmd_is_delim(t[k]))
            k++;
        if (k < tn && t[k] != ':' && e->depth < CMD_MAX_DEPTH) {
            e->depth++;
            e->techs |= T_SET;
            run_line(e, t + k, tn - k, in, inn);
            e->depth--;
        }
    } else if (!strcmp(w, "echo") && e->capture) {
        size_t k = rest;
        if (k < tn && (sp_deob_cmd_is_delim(t[k]) || t[k] == '.'))
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
        sp_deob_cmd_exec_seq(e, s + u->a, u->b - u->a, in, inn);
        break;
    case U_FOR:
        sp_deob_cmd_exec_for(e, s + u->a, u->b - u->a, in, inn);
        break;
    case U_IF:
        sp_deob_cmd_exec_if(e, s + u->a, u->b - u->a, in, inn);
        break;
    default:
        exec_simple(e, s + u->a, u->b - u->a, in, inn);
        break;
    }
}

void sp_deob_cmd_exec_seq(struct emu *e, const char *s, size_t n,
                          const char *in, size_t inn)
{
    size_t i = 0;
    if (++e->depth > CMD_MAX_DEPTH * 4) {
        e->depth--;
        return;
    }
    while (i < n && sp_deob_cmd_tick(e)) {
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
            while (k < u.b && (sp_deob_cmd_is_delim(s[k]) || s[k] == '@'))
                k++;
            size_t we = k;
            while (we < u.b && !sp_deob_cmd_is_delim(s[we]) && s[we] != '/')
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
        sp_deob_cmd_exec_seq(e, p1.data ? p1.data : "", p1.len, in, inn);
    sp_buf_fini(&p1);
}

/* ---- the decoder ---- */

/* Lines worth emulating: obfuscation that only running cmd.exe's rules
 * resolves (variables set and read back, delayed expansion, CALL
 * re-expansion, FOR /F over command output).  A plain loop or a plain
 * set is left alone. */
bool sp_deob_cmd_emulation_worthy(const char *s, size_t n)
{
    struct sp_buf t;
    sp_buf_init(&t, n + 1);
    sp_deob_cmd_caret_pass(s, n, &t);
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
            (sp_deob_cmd_is_delim(x[i + 3]) || x[i + 3] == '"')) {
            size_t a = i + 3;
            while (a < xn && (sp_deob_cmd_is_fdelim(x[a]) || x[a] == '"'))
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
                   (sp_deob_cmd_is_delim(x[i + 3]) || x[i + 3] == '/')) {
            size_t k = i + 3;
            while (k < xn && (sp_deob_cmd_is_delim(x[k]) || x[k] == '^'))
                k++;
            if (k + 1 < xn && x[k] == '/' && (x[k + 1] | 32) == 'f')
                worthy = true;
            if (substr)
                worthy = true;
        } else if (deob_ci_prefix(x + i, xn - i, "call") &&
                   sp_deob_cmd_is_delim(x[i + 4]) && last_pct &&
                   last_pct > x + i) {
            worthy = true;
        }
    }
    /* echo ... | powershell - : the launcher reading from a pipe */
    if (!worthy && deob_ci_find(x, xn, "echo") != (size_t)-1) {
        for (size_t i = 0; i < xn && !worthy; i++) {
            if (x[i] != '|')
                continue;
            size_t k = i + 1;
            while (k < xn && sp_deob_cmd_is_fdelim(x[k]))
                k++;
            char w[16];
            sp_deob_cmd_word_at(x, xn, k, w, sizeof(w));
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
        !sp_deob_cmd_emulation_worthy(s, n))
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
