/*
 * deob_sh.c - Unix shell and script-interpreter decoders.
 *
 *  - deob_sh_base64_pipe: echo|printf BASE64 | base64 -d|--decode|-D
 *    [| gunzip] [| sh|bash|...], base64 -d <<< BASE64; the payload
 *    replaces the pipeline (or the $(...) around it).
 *  - deob_sh_escapes: $'\x41\101' ANSI-C strings, printf / echo -e with
 *    \xHH and \NNN escapes (also inside $(...) and piped into a shell).
 *  - deob_sh_script_b64: base64 payloads of python/perl/php/ruby one-liners
 *    (exec(base64.b64decode('...')), eval(decode_base64(...)), ...), and
 *    the XOR-with-a-key-in-the-script variant of python's.
 *
 * Pure text rewriting; one thread per context; called by the driver.
 */
#include "deob_int.h"

#include <stdlib.h>
#include <string.h>

static bool word_char(char c)
{
    return deob_isalnum((unsigned char)c) || c == '_' || c == '-' ||
           c == '.';
}

/* Is the word at s[i..i+len) delimited on both sides? */
static bool word_at(const char *s, size_t n, size_t i, size_t len)
{
    return (i == 0 || !word_char(s[i - 1]) || s[i - 1] == '/') &&
           (i + len >= n || !word_char(s[i + len]));
}

static size_t skip_sp(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* One shell word at i (quotes removed into w); returns its end. */
static size_t shell_word(const char *s, size_t n, size_t i, struct sp_buf *w)
{
    sp_buf_reset(w);
    while (i < n) {
        char c = s[i];
        if (c == '\'') {
            size_t j = i + 1;
            while (j < n && s[j] != '\'')
                j++;
            sp_buf_put(w, s + i + 1, j - i - 1);
            i = j < n ? j + 1 : n;
            continue;
        }
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"') {
                if (s[j] == '\\' && j + 1 < n &&
                    strchr("\"\\$`", s[j + 1])) {
                    sp_buf_putc(w, s[j + 1]);
                    j += 2;
                    continue;
                }
                sp_buf_putc(w, s[j]);
                j++;
            }
            i = j < n ? j + 1 : n;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '|' || c == ';' ||
            c == '&' || c == ')' || c == '`' || c == '<' || c == '>')
            break;
        if (c == '\\' && i + 1 < n) {
            sp_buf_putc(w, s[i + 1]);
            i += 2;
            continue;
        }
        sp_buf_putc(w, c);
        i++;
    }
    return i;
}

/* Start of the command that ends at `end` (just before a '|'). */
static size_t command_start(const char *s, size_t end)
{
    size_t i = end;
    char q = 0;
    while (i > 0) {
        char c = s[i - 1];
        if (q) {
            if (c == q)
                q = 0;
            i--;
            continue;
        }
        if (c == '\'' || c == '"') {
            q = c;
            i--;
            continue;
        }
        if (c == '|' || c == ';' || c == '&' || c == '\n' || c == '(' ||
            c == '`')
            break;
        i--;
    }
    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* End of the command starting at i (before ; && || | ) ` newline). */
static size_t command_end(const char *s, size_t n, size_t i)
{
    char q = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (q) {
            if (c == q)
                q = 0;
            continue;
        }
        if (c == '\'' || c == '"')
            q = c;
        else if (c == ';' || c == '&' || c == '|' || c == ')' ||
                 c == '`' || c == '\n')
            break;
    }
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
        i--;
    return i;
}

static bool is_shell(const char *w)
{
    static const char *const shells[] = {
        "sh", "bash", "zsh", "dash", "ksh", "ash", "busybox", "python",
        "python2", "python3", "perl", "ruby", "php", "node", NULL};
    for (size_t i = 0; shells[i]; i++)
        if (!strcmp(w, shells[i]))
            return true;
    return false;
}

/* Basename of the program word at i, lower case. */
static size_t program_at(const char *s, size_t n, size_t i, char *w,
                         size_t cap)
{
    i = skip_sp(s, n, i);
    size_t j = i, base = i;
    while (j < n && !strchr(" \t\n|;&)`", s[j])) {
        if (s[j] == '/')
            base = j + 1;
        j++;
    }
    size_t k = 0;
    for (size_t m = base; m < j && k + 1 < cap; m++)
        w[k++] = sp_tolower(s[m]);
    w[k] = '\0';
    return j;
}

static void put_sq(struct sp_buf *b, const char *s, size_t n)
{
    sp_buf_putc(b, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            sp_buf_puts(b, "'\\''");
        else
            sp_buf_putc(b, s[i]);
    }
    sp_buf_putc(b, '\'');
}

/* Writes s with [a, b) replaced: by the payload itself when piped into a
 * shell or standing for a whole $(...), else as echo '<payload>'. */
static void splice_payload(struct sp_buf *out, const char *s, size_t n,
                           size_t a, size_t b, const char *p, size_t pn,
                           bool code)
{
    size_t ca = a, cb = b;
    bool subst = false;
    if (a >= 2 && s[a - 2] == '$' && s[a - 1] == '(' && b < n &&
        s[b] == ')') {
        ca = a - 2, cb = b + 1, subst = true;
    } else if (a >= 1 && s[a - 1] == '`' && b < n && s[b] == '`') {
        ca = a - 1, cb = b + 1, subst = true;
    }
    if (subst) {
        while (pn && (p[pn - 1] == '\n' || p[pn - 1] == '\r'))
            pn--;
        a = ca, b = cb;
    }
    sp_buf_put(out, s, a);
    if (code || subst)
        sp_buf_put(out, p, pn);
    else {
        sp_buf_puts(out, "echo ");
        put_sq(out, p, pn);
    }
    sp_buf_put(out, s + b, n - b);
}

/* ---- echo BASE64 | base64 -d ------------------------------------------- */

enum deob_rc deob_sh_base64_pipe(struct deob_ctx *ctx, const char *s,
                                 size_t n, struct deob_out *out)
{
    struct sp_buf w, raw, z;
    sp_buf_init(&w, n + 1);
    sp_buf_init(&raw, n + 1);
    sp_buf_init(&z, ctx->lim.max_output);
    enum deob_rc rc = DEOB_NONE;
    for (size_t i = 0; i + 6 <= n && rc == DEOB_NONE; i++) {
        if (sp_tolower(s[i]) != 'b' || !deob_ci_prefix(s + i, n - i, "base64") ||
            !word_at(s, n, i, 6))
            continue;
        /* flags */
        size_t j = i + 6;
        bool decode = false;
        size_t here = (size_t)-1;
        for (int k = 0; k < 6; k++) {
            j = skip_sp(s, n, j);
            if (j + 3 <= n && !strncmp(s + j, "<<<", 3)) {
                here = j + 3;
                j = shell_word(s, n, skip_sp(s, n, here), &w);
                break;
            }
            if (j >= n || s[j] != '-')
                break;
            size_t e = j;
            while (e < n && !strchr(" \t\n|;&)`", s[e]))
                e++;
            if ((e - j == 2 && (s[j + 1] == 'd' || s[j + 1] == 'D')) ||
                (e - j == 3 && (s[j + 1] == 'd' || s[j + 2] == 'd')) ||
                (e - j == 8 && !strncmp(s + j, "--decode", 8)))
                decode = true;
            j = e;
        }
        if (!decode)
            continue;
        size_t a, b64_end = j;
        const char *src;
        size_t srcn;
        if (here != (size_t)-1) {
            a = command_start(s, i);
            src = w.data ? w.data : "";
            srcn = w.len;
        } else {
            size_t p = i;
            while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t'))
                p--;
            if (p == 0 || s[p - 1] != '|')
                continue;
            a = command_start(s, p - 1);
            char prog[16];
            size_t pe = program_at(s, n, a, prog, sizeof(prog));
            if (strcmp(prog, "echo") && strcmp(prog, "printf") &&
                strcmp(prog, "cat"))
                continue;
            pe = skip_sp(s, n, pe);
            while (pe < n && s[pe] == '-') {
                while (pe < n && s[pe] != ' ' && s[pe] != '\t')
                    pe++;
                pe = skip_sp(s, n, pe);
            }
            if (!strcmp(prog, "cat")) {
                if (pe + 3 > n || strncmp(s + pe, "<<<", 3))
                    continue;
                pe = skip_sp(s, n, pe + 3);
            }
            shell_word(s, n, pe, &w);
            src = w.data ? w.data : "";
            srcn = w.len;
            b64_end = command_end(s, n, i);
        }
        sp_buf_reset(&raw);
        if (srcn < 4 || !deob_b64_decode(src, srcn, &raw) || raw.len == 0)
            continue;
        const unsigned char *payload = (const unsigned char *)raw.data;
        size_t pn = raw.len;
        size_t b = b64_end;
        /* | gunzip, | gzip -d, | zcat */
        size_t q = skip_sp(s, n, b);
        if (q < n && s[q] == '|') {
            char prog[16];
            size_t pe = program_at(s, n, q + 1, prog, sizeof(prog));
            if (!strcmp(prog, "gunzip") || !strcmp(prog, "zcat") ||
                (!strcmp(prog, "gzip") &&
                 deob_ci_find(s + pe, command_end(s, n, pe) - pe, "-d") !=
                     (size_t)-1)) {
                sp_buf_reset(&z);
                if (!deob_inflate(ctx, payload, pn, DEOB_Z_AUTO, &z))
                    continue;
                payload = (const unsigned char *)z.data;
                pn = z.len;
                b = command_end(s, n, pe);
            }
        }
        if (!deob_text_plausible(payload, pn))
            continue;
        /* | sh */
        bool code = false;
        q = skip_sp(s, n, b);
        if (q < n && s[q] == '|' && (q + 1 >= n || s[q + 1] != '|')) {
            char prog[16];
            size_t pe = program_at(s, n, q + 1, prog, sizeof(prog));
            if (!strcmp(prog, "sudo"))
                pe = program_at(s, n, pe, prog, sizeof(prog));
            if (is_shell(prog)) {
                code = true;
                b = command_end(s, n, pe);
            }
        }
        splice_payload(&out->buf, s, n, a, b, (const char *)payload, pn,
                       code);
        out->technique = "sh.base64_pipe";
        rc = out->buf.overflow ? deob_buf_rc(ctx, &out->buf) : DEOB_PROGRESS;
    }
    sp_buf_fini(&w);
    sp_buf_fini(&raw);
    sp_buf_fini(&z);
    return rc;
}

/* ---- escapes ------------------------------------------------------------ */

/* Decodes C-style escapes of s into b; returns how many numeric (\x, \0NN,
 * \u) escapes there were. printf also turns %% into %. */
static size_t c_unescape(const char *s, size_t n, bool printf_fmt,
                         struct sp_buf *b)
{
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (printf_fmt && c == '%' && i + 1 < n && s[i + 1] == '%') {
            sp_buf_putc(b, '%');
            i++;
            continue;
        }
        if (c != '\\' || i + 1 >= n) {
            sp_buf_putc(b, c);
            continue;
        }
        char d = s[++i];
        uint32_t v = 0;
        size_t k;
        switch (d) {
        case 'x':
            for (k = 0; k < 2 && i + 1 < n &&
                        deob_hexval((unsigned char)s[i + 1]) >= 0;
                 k++)
                v = v * 16 + (uint32_t)deob_hexval((unsigned char)s[++i]);
            if (!k) {
                sp_buf_put(b, "\\x", 2);
                continue;
            }
            sp_buf_putc(b, (char)v);
            hits++;
            continue;
        case 'u':
        case 'U':
            for (k = 0; k < (d == 'u' ? 4u : 8u) && i + 1 < n &&
                        deob_hexval((unsigned char)s[i + 1]) >= 0;
                 k++)
                v = v * 16 + (uint32_t)deob_hexval((unsigned char)s[++i]);
            if (!k) {
                sp_buf_putc(b, '\\');
                sp_buf_putc(b, d);
                continue;
            }
            deob_utf8_put(b, v);
            hits++;
            continue;
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
            v = (uint32_t)(d - '0');
            for (k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' &&
                        s[i + 1] <= '7';
                 k++)
                v = v * 8 + (uint32_t)(s[++i] - '0');
            sp_buf_putc(b, (char)(v & 0xFF));
            hits++;
            continue;
        case 'n':
            sp_buf_putc(b, '\n');
            continue;
        case 't':
            sp_buf_putc(b, '\t');
            continue;
        case 'r':
            sp_buf_putc(b, '\r');
            continue;
        case 'a':
            sp_buf_putc(b, '\a');
            continue;
        case 'b':
            sp_buf_putc(b, '\b');
            continue;
        case 'e':
        case 'E':
            sp_buf_putc(b, 0x1B);
            continue;
        case 'f':
            sp_buf_putc(b, '\f');
            continue;
        case 'v':
            sp_buf_putc(b, '\v');
            continue;
        case '\\':
        case '\'':
        case '"':
        case '?':
            sp_buf_putc(b, d);
            continue;
        default:
            sp_buf_putc(b, '\\');
            sp_buf_putc(b, d);
            continue;
        }
    }
    return hits;
}

enum deob_rc deob_sh_escapes(struct deob_ctx *ctx, const char *s, size_t n,
                             struct deob_out *out)
{
    struct sp_buf dec, arg, *o = &out->buf;
    sp_buf_init(&dec, n + 16);
    sp_buf_init(&arg, n + 16);
    size_t run = 0, done = 0, tries = 0;
    const char *tech = NULL;
    for (size_t i = 0; i < n; i++) {
        /* $'...' */
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '\'') {
            size_t j = i + 2;
            while (j < n && s[j] != '\'') {
                if (s[j] == '\\')
                    j++;
                j++;
            }
            if (j >= n)
                break; /* nothing later can be closed either */
            sp_buf_reset(&dec);
            if (c_unescape(s + i + 2, j - i - 2, false, &dec) == 0)
                continue;
            sp_buf_put(o, s + run, i - run);
            put_sq(o, dec.data ? dec.data : "", dec.len);
            run = j + 1;
            i = j;
            done++;
            tech = tech ? tech : "sh.hex_escape";
            continue;
        }
        /* printf '...' / echo -e '...' */
        bool pf = deob_ci_prefix(s + i, n - i, "printf") && word_at(s, n, i, 6);
        bool ec = !pf && deob_ci_prefix(s + i, n - i, "echo") &&
                  word_at(s, n, i, 4);
        if (!pf && !ec)
            continue;
        if (++tries > 256)
            break;
        size_t j = skip_sp(s, n, i + (pf ? 6 : 4));
        bool e_flag = false;
        while (ec && j < n && s[j] == '-') {
            size_t e = j + 1;
            while (e < n && deob_isalpha((unsigned char)s[e])) {
                if (s[e] == 'e')
                    e_flag = true;
                e++;
            }
            j = skip_sp(s, n, e);
        }
        if ((ec && !e_flag) || j >= n || (s[j] != '\'' && s[j] != '"'))
            continue;
        size_t ae = shell_word(s, n, j, &arg);
        sp_buf_reset(&dec);
        if (!arg.data || c_unescape(arg.data, arg.len, pf, &dec) == 0 ||
            (pf && dec.data && memchr(dec.data, '%', dec.len)) ||
            !deob_text_plausible((unsigned char *)dec.data, dec.len))
            continue;
        size_t cend = command_end(s, n, i);
        if (ae < cend)
            continue;
        bool code = false;
        size_t b = ae, q = skip_sp(s, n, ae);
        if (q < n && s[q] == '|' && (q + 1 >= n || s[q + 1] != '|')) {
            char prog[16];
            size_t pe = program_at(s, n, q + 1, prog, sizeof(prog));
            if (is_shell(prog)) {
                code = true;
                b = command_end(s, n, pe);
            }
        }
        bool subst_p = i >= 2 && s[i - 2] == '$' && s[i - 1] == '(' &&
                       b < n && s[b] == ')';
        bool subst_b = i >= 1 && s[i - 1] == '`' && b < n && s[b] == '`';
        size_t rs = j, re = ae;
        if (subst_p || subst_b) {
            rs = subst_p ? i - 2 : i - 1;
            re = b + 1;
        } else if (code) {
            rs = i;
            re = b;
        }
        if (rs < run)
            continue;
        sp_buf_put(o, s + run, rs - run);
        if (subst_p || subst_b || code) {
            size_t pn = dec.len;
            while (!code && pn && dec.data[pn - 1] == '\n')
                pn--;
            sp_buf_put(o, dec.data, pn);
        } else {
            put_sq(o, dec.data, dec.len);
        }
        run = re;
        i = run ? run - 1 : 0;
        done++;
        tech = tech ? tech : "sh.printf_escape";
    }
    sp_buf_fini(&dec);
    sp_buf_fini(&arg);
    if (!done)
        return DEOB_NONE;
    sp_buf_put(o, s + run, n - run);
    if (o->overflow)
        return deob_buf_rc(ctx, o);
    out->technique = tech;
    return DEOB_PROGRESS;
}

/* ---- interpreter one-liners --------------------------------------------- */

/* The quoted literal starting at s[i] (' or "): its content [*a, *b). */
static bool quoted_at(const char *s, size_t n, size_t i, size_t *a,
                      size_t *b)
{
    if (i >= n || (s[i] != '\'' && s[i] != '"'))
        return false;
    char q = s[i];
    size_t j = i + 1;
    while (j < n && s[j] != q) {
        if (s[j] == '\\')
            j++;
        j++;
    }
    if (j >= n)
        return false;
    *a = i + 1;
    *b = j;
    return true;
}

static const char *const b64_funcs[] = {
    "base64.b64decode(", "b64decode(", "base64.decodebytes(",
    "base64.decodestring(", "decode_base64(", "MIME::Base64::decode(",
    "base64_decode(", "Base64.decode64(", NULL};

/* xor_fn(data, key) where data = "b64" and key = "text" are assigned in the
 * script and the function XORs base64-decoded data with the key. */
static bool python_xor(const char *s, size_t n, struct sp_buf *o,
                       struct sp_buf *tmp)
{
    if (deob_ci_find(s, n, "b64decode(") == (size_t)-1 ||
        deob_ci_find(s, n, "^ ord(") == (size_t)-1)
        return false;
    bool zip = deob_ci_find(s, n, "zip(") != (size_t)-1;
    size_t calls = 0;
    /* candidate calls NAME(a, b) with both arguments string variables */
    for (size_t i = 0; i < n && calls < 64; i++) {
        if (!deob_isalpha((unsigned char)s[i]) ||
            (i && (word_char(s[i - 1]))))
            continue;
        size_t j = i;
        while (j < n && (deob_isalnum((unsigned char)s[j]) || s[j] == '_'))
            j++;
        if (j >= n || s[j] != '(')
            continue;
        size_t k = j + 1, a1s = k;
        while (k < n && (deob_isalnum((unsigned char)s[k]) || s[k] == '_'))
            k++;
        size_t a1e = k;
        k = skip_sp(s, n, k);
        if (k >= n || s[k] != ',' || a1e == a1s)
            continue;
        k = skip_sp(s, n, k + 1);
        size_t a2s = k;
        while (k < n && (deob_isalnum((unsigned char)s[k]) || s[k] == '_'))
            k++;
        size_t a2e = k;
        if (k >= n || s[k] != ')' || a2e == a2s)
            continue;
        calls++;
        /* find `name = "literal"` for both */
        const char *val[2] = {NULL, NULL};
        size_t vl[2] = {0, 0};
        size_t names[2][2] = {{a1s, a1e}, {a2s, a2e}};
        for (int v = 0; v < 2; v++) {
            size_t len = names[v][1] - names[v][0];
            for (size_t m = 0; m + len < n; m++) {
                if (memcmp(s + m, s + names[v][0], len) ||
                    (m && word_char(s[m - 1])))
                    continue;
                size_t e = skip_sp(s, n, m + len);
                if (e >= n || s[e] != '=' || (e + 1 < n && s[e + 1] == '='))
                    continue;
                size_t qa, qb;
                if (quoted_at(s, n, skip_sp(s, n, e + 1), &qa, &qb)) {
                    val[v] = s + qa;
                    vl[v] = qb - qa;
                    break;
                }
            }
        }
        if (!val[0] || !val[1] || vl[1] == 0)
            continue;
        sp_buf_reset(tmp);
        if (!deob_b64_decode(val[0], vl[0], tmp) || tmp->len == 0)
            continue;
        size_t len = zip ? SP_MIN(tmp->len, vl[1]) : tmp->len;
        for (size_t m = 0; m < len; m++)
            tmp->data[m] = (char)(tmp->data[m] ^ val[1][m % vl[1]]);
        if (!deob_text_plausible((unsigned char *)tmp->data, len))
            continue;
        sp_buf_put(o, s, i);
        sp_buf_putc(o, '"');
        sp_buf_put(o, tmp->data, len);
        sp_buf_putc(o, '"');
        sp_buf_put(o, s + k + 1, n - k - 1);
        return true;
    }
    return false;
}

enum deob_rc deob_sh_script_b64(struct deob_ctx *ctx, const char *s,
                                size_t n, struct deob_out *out)
{
    struct sp_buf raw, *o = &out->buf;
    sp_buf_init(&raw, n + 16);
    size_t run = 0, done = 0, tries = 0;
    /* every function name above contains "64" */
    if (!memmem(s, n, "64", 2))
        goto none;
    for (size_t i = 0; i < n; i++) {
        const char *fn = NULL;
        if (!strchr("bdMB", s[i]) || !s[i])
            continue;
        for (size_t f = 0; b64_funcs[f] && !fn; f++) {
            size_t fl = strlen(b64_funcs[f]);
            if (i + fl <= n && !memcmp(s + i, b64_funcs[f], fl) &&
                (i == 0 || (!deob_isalnum((unsigned char)s[i - 1]) &&
                            s[i - 1] != '_' && s[i - 1] != '.')))
                fn = b64_funcs[f];
        }
        if (!fn)
            continue;
        if (++tries > 256)
            break;
        size_t fl = strlen(fn);
        size_t qa, qb;
        if (!quoted_at(s, n, skip_sp(s, n, i + fl), &qa, &qb))
            continue;
        size_t close = skip_sp(s, n, qb + 1);
        if (close >= n || s[close] != ')')
            continue;
        sp_buf_reset(&raw);
        if (!deob_b64_decode(s + qa, qb - qa, &raw) ||
            !deob_text_plausible((unsigned char *)raw.data, raw.len))
            continue;
        /* exec(...)/eval(...) around it: the payload is code */
        size_t cs = i, ce = close + 1;
        for (;;) {
            /* .decode() / .decode('utf-8') after the call */
            if (ce + 7 <= n && !memcmp(s + ce, ".decode", 7)) {
                size_t m = ce + 7;
                if (m < n && s[m] == '(') {
                    while (m < n && s[m] != ')')
                        m++;
                    ce = m < n ? m + 1 : ce;
                    continue;
                }
            }
            break;
        }
        bool code = false;
        size_t p = cs;
        while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t'))
            p--;
        if (p > 0 && s[p - 1] == '(') {
            size_t w = p - 1;
            while (w > 0 && (deob_isalnum((unsigned char)s[w - 1]) ||
                             s[w - 1] == '_'))
                w--;
            size_t after = skip_sp(s, n, ce);
            if ((deob_ci_eqn(s + w, p - 1 - w, "exec") ||
                 deob_ci_eqn(s + w, p - 1 - w, "eval")) &&
                after < n && s[after] == ')') {
                cs = w;
                ce = after + 1;
                code = true;
            }
        }
        sp_buf_put(o, s + run, cs - run);
        if (code) {
            sp_buf_put(o, raw.data, raw.len);
        } else {
            sp_buf_putc(o, '\'');
            for (size_t m = 0; m < raw.len; m++) {
                char c = raw.data[m];
                if (c == '\'' || c == '\\')
                    sp_buf_putc(o, '\\');
                sp_buf_putc(o, c);
            }
            sp_buf_putc(o, '\'');
        }
        run = ce;
        i = ce - 1;
        done++;
    }
none:
    if (!done) {
        sp_buf_reset(o);
        bool ok = python_xor(s, n, o, &raw);
        sp_buf_fini(&raw);
        if (!ok) {
            sp_buf_reset(o);
            return DEOB_NONE;
        }
        if (o->overflow)
            return deob_buf_rc(ctx, o);
        out->technique = "sh.script_base64";
        return DEOB_PROGRESS;
    }
    sp_buf_fini(&raw);
    sp_buf_put(o, s + run, n - run);
    if (o->overflow)
        return deob_buf_rc(ctx, o);
    out->technique = "sh.script_base64";
    return DEOB_PROGRESS;
}
