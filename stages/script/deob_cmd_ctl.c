/*
 * deob_cmd_ctl.c - control statements of the cmd.exe emulator: FOR (/L
 * ranges, lists, /F over a quoted string or over the emulated output of
 * assoc, ftype, set, echo and ver filtered by find / findstr, with
 * tokens=, delims=, skip=, eol= and usebackq) and IF (defined, exist,
 * errorlevel, ==, EQU NEQ LSS LEQ GTR GEQ, /I, NOT, else).  Loop bodies
 * run through the emulator's command sequences with the loop variables
 * substituted.
 *
 * Owns no state of its own (it works on the emulator's struct emu).
 * Called from deob_cmd_emu.c on the context's thread.
 */
#include "deob_cmd_int.h"

#include <stdio.h>
#include <string.h>

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
    while (*n && (sp_deob_cmd_is_delim(**s)))
        (*s)++, (*n)--;
    while (*n && sp_deob_cmd_is_delim((*s)[*n - 1]))
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
        struct cvar *v = sp_deob_cmd_var_find(e, d->name, strlen(d->name));
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
        while (i < an && sp_deob_cmd_is_fdelim(args[i]))
            i++;
        if (i >= an)
            break;
        if (args[i] == '/') {
            size_t j = i + 1;
            while (j < an && !sp_deob_cmd_is_fdelim(args[j]) && args[j] != '"')
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
                while (k < an && (q ? args[k] != '"'
                                    : !sp_deob_cmd_is_fdelim(args[k])))
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
            while (k < an && !sp_deob_cmd_is_fdelim(args[k]))
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
    sp_deob_cmd_caret_pass(s, n, &text);
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
        while (a < j && sp_deob_cmd_is_delim(t[a]))
            a++;
        char w[16];
        sp_deob_cmd_word_at(t, j, a, w, sizeof(w));
        size_t args = a + strlen(w);
        while (args < j && t[args] == '^')
            args++;
        sp_buf_reset(&next);
        const char *arg = t + args;
        size_t argn = j - args;
        if (first) {
            while (argn && sp_deob_cmd_is_delim(*arg))
                arg++, argn--;
            while (argn && sp_deob_cmd_is_delim(arg[argn - 1]))
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
    while (i < n && (eq ? sp_deob_cmd_is_fdelim(s[i])
                        : sp_deob_cmd_is_delim(s[i])))
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
        else if (!q && ((eq ? sp_deob_cmd_is_fdelim(c)
                            : sp_deob_cmd_is_delim(c)) ||
                        c == '(' || c == ')'))
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
        sp_deob_cmd_exec_seq(e, b.data ? b.data : "", b.len, in, inn);
    sp_buf_fini(&b);
}

void sp_deob_cmd_exec_for(struct emu *e, const char *s, size_t n,
                          const char *in, size_t inn)
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
    while (i < n && (sp_deob_cmd_is_delim(s[i]) || s[i] == '^'))
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
    while (i < n && sp_deob_cmd_is_delim(s[i]))
        i++;
    const char *body = s + i;
    size_t bn = n - i;
    const char *st = set.data ? set.data : "";
    size_t sn = set.len;

    if (mode == 'l') {
        long v[3] = {0, 1, 0};
        size_t k = 0, p = 0;
        while (k < 3 && p < sn) {
            while (p < sn && (sp_deob_cmd_is_delim(st[p]) || st[p] == ' '))
                p++;
            if (!sp_deob_cmd_parse_int(st, sn, &p, &v[k]))
                break;
            k++;
        }
        if (k < 3 || v[1] == 0)
            goto out;
        e->techs |= T_DELAYED;
        for (long x = v[0]; (v[1] > 0 ? x <= v[2] : x >= v[2]);
             x += v[1]) {
            if (!sp_deob_cmd_tick(e))
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
        while (sn && sp_deob_cmd_is_delim(*st))
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
            if (!any || !sp_deob_cmd_tick(e))
                continue;
            for_body(e, body, bn, vars, vals, lens, nv, in, inn);
        }
        sp_buf_fini(&lines);
    } else if (mode == 0) {
        size_t p = 0;
        e->techs |= T_DELAYED;
        while (p < sn && !e->abort) {
            while (p < sn && (sp_deob_cmd_is_delim(st[p]) || st[p] == '\n'))
                p++;
            if (p >= sn)
                break;
            size_t q = p;
            bool qq = false;
            while (q < sn && (qq || (!sp_deob_cmd_is_delim(st[q]) &&
                                     st[q] != '\n'))) {
                if (st[q] == '"')
                    qq = !qq;
                q++;
            }
            if (!memchr(st + p, '*', q - p) && !memchr(st + p, '?', q - p) &&
                sp_deob_cmd_tick(e)) {
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

void sp_deob_cmd_exec_if(struct emu *e, const char *s, size_t n, const char *in,
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
        cond = tok.len && sp_deob_cmd_var_get(e, tok.data, tok.len, &v, &vn);
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
            bool num = sp_deob_cmd_parse_int(x1, a.len, &p1, &x) &&
                       p1 == a.len &&
                       sp_deob_cmd_parse_int(x2, bb.len, &p2, &y) &&
                       p2 == bb.len;
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
    while (i < n && sp_deob_cmd_is_delim(s[i]))
        i++;
    if (i < n) {
        /* ( ... ) else ( ... ) */
        const char *body = s + i;
        size_t bn = n - i;
        if (body[0] == '(') {
            size_t close = sp_deob_cmd_block_end(body, bn, 1);
            size_t k = close + 1;
            while (k < bn && sp_deob_cmd_is_delim(body[k]))
                k++;
            if (close < bn && deob_ci_prefix(body + k, bn - k, "else")) {
                if (cond)
                    sp_deob_cmd_exec_seq(e, body + 1, close - 1, in, inn);
                else
                    sp_deob_cmd_exec_seq(e, body + k + 4, bn - k - 4, in, inn);
                goto out;
            }
        }
        if (cond)
            sp_deob_cmd_exec_seq(e, body, bn, in, inn);
    }
out:
    sp_buf_fini(&tok);
    sp_buf_fini(&a);
    sp_buf_fini(&bb);
}
