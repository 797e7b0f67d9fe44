/*
 * deob_ps_launch.c - PowerShell launcher command lines: finding
 * `powershell|pwsh[.exe] <args>` in a line (deob_find_launcher, also used
 * by the folding engine), the -EncodedCommand decoder that accepts every
 * abbreviation of the flag (deob_ps_encoded), and the quoting decoder
 * that resolves how cmd.exe and then the C runtime split a -Command
 * argument (deob_ps_launcher).  A launcher behind a `cmd /c` prefix is
 * replaced together with that prefix.
 *
 * Owns no state: decoders write only the caller's output buffer and free
 * their scratch buffers before returning.  Called by the driver on the
 * context's thread.
 */
#include "deob_ps_int.h"

#include <string.h>

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

bool sp_ps_name_is_prefix(const char *name, size_t len, const char *full,
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
        sp_ps_name_is_prefix(name, len, "encodedcommand", 1))
        return FLAG_ENC;
    if (sp_ps_name_is_prefix(name, len, "command", 1) ||
        (len == 3 && !strncmp(name, "cwa", 3)) ||
        sp_ps_name_is_prefix(name, len, "commandwithargs", 8))
        return FLAG_CMD;
    if (sp_ps_name_is_prefix(name, len, "file", 1))
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
        if (sp_ps_name_is_prefix(name, len, vals[i].full, vals[i].min))
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
