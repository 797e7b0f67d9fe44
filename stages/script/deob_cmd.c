/*
 * deob_cmd.c - cmd.exe decoders that work on the text alone:
 * %VAR:~a,b% and %VAR:x=y% over the default Windows environment
 * (deob_cmd_env) and caret escapes (deob_cmd_caret), plus the variable
 * modifiers (:~a,b substring, :x=y substitution) the emulator shares.
 * Lines that only cmd.exe's own rules resolve are left to the emulator
 * (deob_cmd_emu.c), which reads the carets itself.
 *
 * Owns no state; decoders write only the caller's output buffer.  Called
 * by the driver on the context's thread.
 */
#include "deob_cmd_int.h"

#include <string.h>

/* ---- variable modifiers (:~a,b and :x=y) -------------------------------- */

bool sp_deob_cmd_parse_int(const char *s, size_t n, size_t *i, long *out)
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
bool sp_deob_cmd_apply_mod(const char *val, size_t vn, const char *spec,
                           size_t sn, struct sp_buf *out)
{
    if (sn > 0 && spec[0] == '~') {
        size_t i = 1;
        long a, b = 0;
        bool has_b = false;
        if (!sp_deob_cmd_parse_int(spec, sn, &i, &a))
            return false;
        if (i < sn && spec[i] == ',') {
            i++;
            if (!sp_deob_cmd_parse_int(spec, sn, &i, &b))
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
        if (!sp_deob_cmd_apply_mod(val, strlen(val), spec, sl, b)) {
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

enum deob_rc deob_cmd_caret(struct deob_ctx *ctx, const char *s, size_t n,
                            struct deob_out *out)
{
    enum deob_lang lang = deob_lang_detect(s, n);
    /* the emulator reads carets the way cmd.exe does; removing them
     * here first would shift the strings it indexes into */
    if (lang == DEOB_LANG_CMD && sp_deob_cmd_emulation_worthy(s, n))
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
