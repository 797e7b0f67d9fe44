/*
 * deob.c - the layered deobfuscation driver and the language-neutral
 * decoders (URL encoding, HTML entities, \u / \x escapes, base64 found
 * inside a layer).
 *
 * sp_deob_run() keeps a list of layers.  Each round it offers the current
 * layer to the decoders in a fixed order (big unwraps first, generic
 * guesses last); the first one that makes progress produces the next
 * layer.  It stops at a fixpoint (no decoder progresses, or a decoder
 * would reproduce an earlier layer) or when a bound is hit: layers, output
 * bytes, decompression ratio, wall time.  Bounds are reported in the
 * result, never as errors.
 *
 * Owns nothing global; callable from any thread.
 */
#include "deob_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- techniques --------------------------------------------------------- */

struct technique {
    const char *id;
    const char *desc;
};

static const struct technique techniques[] = {
    {"input", "the input as given"},
    {"powershell.encoded_command", "base64 of UTF-16LE (-EncodedCommand)"},
    {"powershell.launcher",
     "script argument of a powershell.exe command line, quoting resolved"},
    {"powershell.base64",
     "[Convert]::FromBase64String decoded with a Text.Encoding"},
    {"powershell.deflate",
     "Deflate/GZip stream over base64 (IO.Compression) inflated"},
    {"powershell.securestring",
     "SecureString payload decrypted with the key given in the script"},
    {"powershell.bxor", "character codes XOR-ed with a constant key"},
    {"powershell.char_codes",
     "[char] code lists (decimal, hex, octal, binary) joined into text"},
    {"powershell.reverse", "reversed string put back in order"},
    {"powershell.format_operator", "format operator (-f) reordering"},
    {"powershell.replace", ".Replace() / -replace substitutions applied"},
    {"powershell.concat", "string concatenation folded"},
    {"powershell.split_join", "-split / -join / Split() reassembly"},
    {"powershell.iex_unwrap",
     "Invoke-Expression (or an IEX builder) of a known string unwrapped"},
    {"powershell.string_index",
     "characters picked out of known strings ($env:ComSpec[4,15,25])"},
    {"powershell.call_operator", "& / . with a computed command name"},
    {"powershell.variables",
     "variable indirection (Get-Variable, Set-Variable, typed variables)"},
    {"powershell.backtick", "backtick escapes removed"},
    {"cmd.caret", "cmd.exe caret escapes removed"},
    {"cmd.substring",
     "%VAR:~start,len% / %VAR:a=b% on default Windows variables"},
    {"cmd.set_vars", "set variables and %VAR% expansion (emulated cmd.exe)"},
    {"cmd.delayed_expansion",
     "delayed expansion !VAR!, FOR-coded and FIN-coded strings"},
    {"cmd.for_f", "FOR /F over assoc/ftype/set output (emulated)"},
    {"cmd.nested", "nested cmd /c command lines"},
    {"sh.base64_pipe", "echo BASE64 | base64 -d [| sh]"},
    {"sh.printf_escape", "printf / echo -e escape sequences"},
    {"sh.hex_escape", "$'\\x41' ANSI-C quoted escapes"},
    {"sh.script_base64",
     "python/perl/ruby base64 payload (exec(base64.b64decode(...)))"},
    {"url_decode", "URL percent-encoding"},
    {"html_decode", "HTML character entities"},
    {"unicode_escape", "\\u0041 / \\x41 style escapes"},
    {"base64_embedded", "base64 text embedded in the layer"},
};

const char *sp_deob_technique_description(const char *technique)
{
    if (!technique)
        return NULL;
    for (size_t i = 0; i < SP_ARRAY_SIZE(techniques); i++)
        if (!strcmp(techniques[i].id, technique))
            return techniques[i].desc;
    return NULL;
}

/* ---- generic decoders --------------------------------------------------- */

/* %XX that is really cmd's %NAME% or %NAME:~..% is left alone. */
static bool pct_is_env_ref(const char *s, size_t n, size_t i)
{
    size_t j = i + 1;
    if (j >= n || !(deob_isalpha((unsigned char)s[j]) || s[j] == '_'))
        return false;
    while (j < n && (deob_isalnum((unsigned char)s[j]) || s[j] == '_' ||
                     s[j] == '(' || s[j] == ')'))
        j++;
    return j < n && (s[j] == '%' || s[j] == ':');
}

static bool url_byte_ok(int v)
{
    return (v >= 0x20 && v < 0x7F) || v == '\t' || v == '\n' || v == '\r' ||
           v >= 0x80;
}

static enum deob_rc dec_url(struct deob_ctx *ctx, const char *s, size_t n,
                            struct deob_out *out)
{
    size_t hits = 0;
    for (size_t i = 0; i + 2 < n && hits < 2; i++) {
        if (s[i] != '%')
            continue;
        int h = deob_hexval((unsigned char)s[i + 1]);
        int l = deob_hexval((unsigned char)s[i + 2]);
        if (h >= 0 && l >= 0 && url_byte_ok(h * 16 + l) &&
            !pct_is_env_ref(s, n, i))
            hits++;
    }
    if (hits < 2)
        return DEOB_NONE;
    struct sp_buf *b = &out->buf;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%' || i + 2 >= n)
            continue;
        if ((s[i + 1] == 'u' || s[i + 1] == 'U') && i + 5 < n) {
            int v = 0, k;
            for (k = 2; k < 6; k++) {
                int d = deob_hexval((unsigned char)s[i + k]);
                if (d < 0)
                    break;
                v = v * 16 + d;
            }
            if (k == 6 && v >= 0x20) {
                sp_buf_put(b, s + run, i - run);
                deob_utf8_put(b, (uint32_t)v);
                i += 5;
                run = i + 1;
                continue;
            }
        }
        int h = deob_hexval((unsigned char)s[i + 1]);
        int l = deob_hexval((unsigned char)s[i + 2]);
        if (h < 0 || l < 0 || !url_byte_ok(h * 16 + l) ||
            pct_is_env_ref(s, n, i))
            continue;
        sp_buf_put(b, s + run, i - run);
        sp_buf_putc(b, (char)(h * 16 + l));
        i += 2;
        run = i + 1;
    }
    sp_buf_put(b, s + run, n - run);
    if (b->overflow)
        return deob_buf_rc(ctx, b);
    out->technique = "url_decode";
    return DEOB_PROGRESS;
}

struct named_entity {
    const char *name;
    uint32_t cp;
};

static const struct named_entity entities[] = {
    {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
    {"nbsp", ' '}, {"tab", '\t'}, {"newline", '\n'}, {"lpar", '('},
    {"rpar", ')'}, {"sol", '/'}, {"bsol", '\\'}, {"colon", ':'},
    {"semi", ';'}, {"equals", '='}, {"comma", ','}, {"period", '.'},
    {"percnt", '%'}, {"excl", '!'}, {"num", '#'}, {"dollar", '$'},
    {"lsqb", '['}, {"rsqb", ']'}, {"lcub", '{'}, {"rcub", '}'},
    {"verbar", '|'}, {"plus", '+'}, {"quest", '?'}, {"commat", '@'},
};

/* Parses an entity at s[i] ('&'); returns its length (0 if none) and the
 * code point; *numeric tells which kind. */
static size_t html_entity(const char *s, size_t n, size_t i, uint32_t *cp,
                          bool *numeric)
{
    size_t j = i + 1;
    if (j < n && s[j] == '#') {
        j++;
        uint32_t v = 0;
        size_t d = 0;
        bool hex = j < n && (s[j] == 'x' || s[j] == 'X');
        if (hex)
            j++;
        while (j < n && d < 8) {
            int x = hex ? deob_hexval((unsigned char)s[j])
                        : (s[j] >= '0' && s[j] <= '9' ? s[j] - '0' : -1);
            if (x < 0)
                break;
            v = v * (hex ? 16u : 10u) + (uint32_t)x;
            j++, d++;
        }
        if (d == 0 || j >= n || s[j] != ';' || v == 0 || v > 0x10FFFF)
            return 0;
        *cp = v;
        *numeric = true;
        return j + 1 - i;
    }
    size_t k = j;
    while (k < n && k - j < 10 && deob_isalpha((unsigned char)s[k]))
        k++;
    if (k >= n || s[k] != ';')
        return 0;
    for (size_t e = 0; e < SP_ARRAY_SIZE(entities); e++) {
        if (deob_ci_eqn(s + j, k - j, entities[e].name)) {
            *cp = entities[e].cp;
            *numeric = false;
            return k + 1 - i;
        }
    }
    return 0;
}

static enum deob_rc dec_html(struct deob_ctx *ctx, const char *s, size_t n,
                             struct deob_out *out)
{
    size_t named = 0, num = 0;
    for (size_t i = 0; i < n && num + named < 2; i++) {
        uint32_t cp;
        bool numeric;
        if (s[i] == '&' && html_entity(s, n, i, &cp, &numeric))
            numeric ? num++ : named++;
    }
    if (num == 0 && named < 2)
        return DEOB_NONE;
    struct sp_buf *b = &out->buf;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp;
        bool numeric;
        size_t k;
        if (s[i] != '&' || !(k = html_entity(s, n, i, &cp, &numeric)))
            continue;
        sp_buf_put(b, s + run, i - run);
        deob_utf8_put(b, cp);
        i += k - 1;
        run = i + 1;
    }
    sp_buf_put(b, s + run, n - run);
    if (b->overflow)
        return deob_buf_rc(ctx, b);
    out->technique = "html_decode";
    return DEOB_PROGRESS;
}

/* \u0041, \u{41}, \x41 at s[i] (a backslash that is not itself escaped);
 * returns the length or 0. */
static size_t uni_escape(const char *s, size_t n, size_t i, uint32_t *cp)
{
    if (i + 3 >= n || s[i] != '\\')
        return 0;
    size_t bs = 0;
    for (size_t k = i; k > 0 && s[k - 1] == '\\' && bs < 64; k--)
        bs++;
    if (bs % 2)
        return 0;
    char t = s[i + 1];
    size_t digits, start = i + 2, end;
    if (t == 'u' && s[i + 2] == '{') {
        start = i + 3;
        end = start;
        while (end < n && end - start < 6 &&
               deob_hexval((unsigned char)s[end]) >= 0)
            end++;
        if (end >= n || s[end] != '}' || end == start)
            return 0;
        digits = end - start;
        end++;
    } else if (t == 'u' || t == 'x') {
        digits = t == 'u' ? 4 : 2;
        end = start + digits;
        if (end > n)
            return 0;
    } else {
        return 0;
    }
    uint32_t v = 0;
    for (size_t k = start; k < start + digits; k++) {
        int d = deob_hexval((unsigned char)s[k]);
        if (d < 0)
            return 0;
        v = v * 16 + (uint32_t)d;
    }
    if (v < 0x09 || (v > 0x0D && v < 0x20) || v == 0x7F || v > 0x10FFFF)
        return 0;
    *cp = v;
    return end - i;
}

static enum deob_rc dec_unicode(struct deob_ctx *ctx, const char *s,
                                size_t n, struct deob_out *out)
{
    size_t hits = 0;
    for (size_t i = 0; i < n && hits < 2; i++) {
        uint32_t cp;
        if (s[i] == '\\' && uni_escape(s, n, i, &cp))
            hits++;
    }
    if (hits < 2)
        return DEOB_NONE;
    struct sp_buf *b = &out->buf;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp;
        size_t k;
        if (s[i] != '\\' || !(k = uni_escape(s, n, i, &cp)))
            continue;
        /* join a UTF-16 surrogate pair written as two \u escapes */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            size_t k2 = uni_escape(s, n, i + k, &lo);
            if (k2 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += k2;
            }
        }
        sp_buf_put(b, s + run, i - run);
        deob_utf8_put(b, cp);
        i += k - 1;
        run = i + 1;
    }
    sp_buf_put(b, s + run, n - run);
    if (b->overflow)
        return deob_buf_rc(ctx, b);
    out->technique = "unicode_escape";
    return DEOB_PROGRESS;
}

/* A run of base64 worth trying: long enough, mixed case, not hex, not a
 * plain word. */
static bool b64_candidate(const char *s, size_t n)
{
    if (n < 16)
        return false;
    bool upper = false, lower = false, digit = false, sym = false,
         nonhex = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            upper = true;
        else if (c >= 'a' && c <= 'z')
            lower = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else
            sym = true;
        if (deob_hexval(c) < 0)
            nonhex = true;
    }
    return nonhex && upper && lower && (digit || sym);
}

static bool b64_try(struct deob_ctx *ctx, const char *s, size_t n,
                    struct sp_buf *text)
{
    struct sp_buf raw;
    bool ok = false;
    sp_buf_init(&raw, n + 16);
    if (!deob_b64_decode(s, n, &raw) || raw.len < 8)
        goto out;
    const unsigned char *b = (const unsigned char *)raw.data;
    if (raw.len > 18 && b[0] == 0x1F && b[1] == 0x8B) {
        struct sp_buf z;
        sp_buf_init(&z, ctx->lim.max_output);
        if (deob_inflate(ctx, b, raw.len, DEOB_Z_GZIP, &z) &&
            deob_text_plausible((unsigned char *)z.data, z.len)) {
            ok = sp_buf_put(text, z.data, z.len) == SP_OK;
        }
        sp_buf_fini(&z);
        goto out;
    }
    if (deob_looks_utf16le(b, raw.len)) {
        struct sp_buf u;
        sp_buf_init(&u, raw.len * 2 + 16);
        if (deob_utf16le_to_utf8(b, raw.len, &u) == SP_OK &&
            deob_text_plausible((unsigned char *)u.data, u.len))
            ok = sp_buf_put(text, u.data, u.len) == SP_OK;
        sp_buf_fini(&u);
        goto out;
    }
    if (deob_text_plausible(b, raw.len))
        ok = sp_buf_put(text, raw.data, raw.len) == SP_OK;
out:
    sp_buf_fini(&raw);
    return ok;
}

static enum deob_rc dec_base64_embedded(struct deob_ctx *ctx, const char *s,
                                        size_t n, struct deob_out *out)
{
    struct sp_buf *b = &out->buf;
    struct sp_buf text;
    size_t run = 0, done = 0;
    sp_buf_init(&text, ctx->lim.max_output);
    for (size_t i = 0; i < n;) {
        if (!deob_b64_char((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && deob_b64_char((unsigned char)s[j]))
            j++;
        size_t end = j;
        while (end < n && end - j < 2 && s[end] == '=')
            end++;
        /* a run glued to a word character is part of something else */
        bool glued = (i > 0 && (s[i - 1] == '-' || s[i - 1] == '.' ||
                                s[i - 1] == '_' || s[i - 1] == '%' ||
                                s[i - 1] == '\\' || s[i - 1] == '$')) ||
                     (end < n && (s[end] == '.' || s[end] == '_' ||
                                  s[end] == '\\' || s[end] == ':'));
        sp_buf_reset(&text);
        if (!glued && b64_candidate(s + i, j - i) &&
            b64_try(ctx, s + i, end - i, &text)) {
            sp_buf_put(b, s + run, i - run);
            sp_buf_put(b, text.data, text.len);
            run = end;
            done++;
        }
        i = end;
        if (deob_time_up(ctx))
            break;
    }
    sp_buf_fini(&text);
    if (!done)
        return DEOB_NONE;
    sp_buf_put(b, s + run, n - run);
    if (b->overflow)
        return deob_buf_rc(ctx, b);
    out->technique = "base64_embedded";
    return DEOB_PROGRESS;
}

/* ---- driver ------------------------------------------------------------- */

/* Order matters: whole-text unwraps first, then language emulation, then
 * the generic encodings, base64 guessing last. */
static const deob_decoder_fn decoders[] = {
    deob_ps_encoded,
    deob_sh_base64_pipe,
    deob_cmd_env,
    deob_cmd_caret,
    deob_ps_launcher,
    deob_ps_fold,
    deob_cmd_emulate,
    deob_sh_escapes,
    deob_sh_script_b64,
    dec_url,
    dec_html,
    dec_unicode,
    dec_base64_embedded,
};

void sp_deob_limits_default(struct sp_deob_limits *lim)
{
    lim->max_layers = 16;
    lim->max_output = (size_t)1 << 20;
    lim->max_ratio = 100;
    lim->max_time_us = 200000;
}

void sp_deob_result_fini(struct sp_deob_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_layers; i++)
        free(r->layers[i].text);
    free(r->layers);
    r->layers = NULL;
    r->n_layers = 0;
    r->bounds_hit = 0;
    r->language = "unknown";
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Sanitised copy of s as a new layer text (budget bytes at most). */
static enum deob_rc make_text(struct deob_ctx *ctx, const char *s, size_t n,
                              size_t budget, char **text, size_t *len)
{
    struct sp_buf b;
    sp_buf_init(&b, budget ? budget : 1);
    if (budget == 0 && n > 0) {
        ctx->bounds |= SP_DEOB_BOUND_OUTPUT;
        return DEOB_STOP;
    }
    if (deob_utf8_sanitize(&b, s, n) != SP_OK || sp_buf_put(&b, "", 0)) {
        enum deob_rc rc = deob_buf_rc(ctx, &b);
        sp_buf_fini(&b);
        return rc;
    }
    *text = sp_buf_steal(&b, len);
    return DEOB_PROGRESS;
}

struct run {
    struct deob_ctx ctx;
    struct sp_deob_result *res;
    size_t cap;
    size_t used;          /* output bytes of decoded layers */
    uint64_t hashes[64];  /* of the most recent layers */
};

static bool seen_before(struct run *r, uint64_t h)
{
    size_t k = SP_MIN(r->res->n_layers, SP_ARRAY_SIZE(r->hashes));
    for (size_t i = 0; i < k; i++)
        if (r->hashes[i] == h)
            return true;
    return false;
}

static enum sp_err push_layer(struct run *r, const char *technique,
                              char *text, size_t len)
{
    struct sp_deob_result *res = r->res;
    if (res->n_layers == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        struct sp_deob_layer *l = realloc(res->layers, cap * sizeof(*l));
        if (!l) {
            free(text);
            return SP_ERR_NOMEM;
        }
        res->layers = l;
        r->cap = cap;
    }
    struct sp_deob_layer *l = &res->layers[res->n_layers];
    l->technique = technique;
    l->description = sp_deob_technique_description(technique);
    if (!l->description)
        l->description = technique;
    l->text = text;
    l->len = len;
    r->hashes[res->n_layers % SP_ARRAY_SIZE(r->hashes)] = fnv1a(text, len);
    res->n_layers++;
    return SP_OK;
}

/* One round: the first decoder that progresses adds a layer.  With
 * probe set nothing is added; returns DEOB_PROGRESS if one would. */
static enum deob_rc round_once(struct run *r, bool probe)
{
    struct deob_ctx *ctx = &r->ctx;
    const struct sp_deob_layer *cur = &r->res->layers[r->res->n_layers - 1];
    size_t budget = ctx->lim.max_output > r->used
                        ? ctx->lim.max_output - r->used
                        : 0;
    for (size_t d = 0; d < SP_ARRAY_SIZE(decoders); d++) {
        if (deob_time_check(ctx))
            return DEOB_STOP;
        struct deob_out o;
        ctx->budget = budget;
        sp_buf_init(&o.buf, budget ? budget : 1);
        o.technique = NULL;
        enum deob_rc rc = decoders[d](ctx, cur->text, cur->len, &o);
        if (rc == DEOB_PROGRESS && o.buf.overflow)
            rc = deob_buf_rc(ctx, &o.buf);
        if (rc == DEOB_PROGRESS && budget == 0) {
            ctx->bounds |= SP_DEOB_BOUND_OUTPUT;
            rc = DEOB_STOP;
        }
        if (rc != DEOB_PROGRESS) {
            sp_buf_fini(&o.buf);
            if (rc == DEOB_NONE)
                continue;
            return rc;
        }
        const char *data = o.buf.data ? o.buf.data : "";
        if ((o.buf.len == cur->len && !memcmp(data, cur->text, cur->len)) ||
            seen_before(r, fnv1a(data, o.buf.len))) {
            sp_buf_fini(&o.buf);
            continue;
        }
        if (probe) {
            sp_buf_fini(&o.buf);
            return DEOB_PROGRESS;
        }
        char *text;
        size_t len;
        rc = make_text(ctx, data, o.buf.len, budget, &text, &len);
        sp_buf_fini(&o.buf);
        if (rc != DEOB_PROGRESS)
            return rc;
        if (seen_before(r, fnv1a(text, len))) {
            free(text);
            continue;
        }
        if (push_layer(r, o.technique ? o.technique : "unknown", text,
                       len) != SP_OK)
            return DEOB_NOMEM;
        r->used += len;
        return DEOB_PROGRESS;
    }
    return DEOB_NONE;
}

enum sp_err sp_deob_run(const char *input, size_t len,
                        const struct sp_deob_limits *lim,
                        struct sp_deob_result *out)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    out->language = "unknown";
    r.res = out;
    sp_deob_limits_default(&r.ctx.lim);
    if (lim) {
        r.ctx.lim.max_layers = lim->max_layers;
        if (lim->max_output)
            r.ctx.lim.max_output = lim->max_output;
        if (lim->max_ratio)
            r.ctx.lim.max_ratio = lim->max_ratio;
        if (lim->max_time_us > 0)
            r.ctx.lim.max_time_us = lim->max_time_us;
    }
    r.ctx.deadline_us = sp_now_us() + r.ctx.lim.max_time_us;
    if (!input)
        len = 0;

    char *text;
    size_t tlen;
    size_t in_budget = len * 3 + 1;
    enum deob_rc rc = make_text(&r.ctx, input ? input : "", len, in_budget,
                                &text, &tlen);
    if (rc != DEOB_PROGRESS || push_layer(&r, "input", text, tlen) != SP_OK)
        goto nomem;

    for (;;) {
        if (out->n_layers - 1 >= r.ctx.lim.max_layers) {
            if (round_once(&r, true) == DEOB_PROGRESS)
                r.ctx.bounds |= SP_DEOB_BOUND_LAYERS;
            break;
        }
        rc = round_once(&r, false);
        if (rc == DEOB_NOMEM)
            goto nomem;
        if (rc != DEOB_PROGRESS)
            break;
    }
    out->bounds_hit = r.ctx.bounds;
    for (size_t i = out->n_layers; i-- > 0;) {
        enum deob_lang l =
            deob_lang_detect(out->layers[i].text, out->layers[i].len);
        if (l != DEOB_LANG_UNKNOWN) {
            out->language = deob_lang_name(l);
            break;
        }
    }
    return SP_OK;
nomem:
    sp_deob_result_fini(out);
    return SP_ERR_NOMEM;
}
