/*
 * script.c - the analyser (see script.h): runs the decoder, extracts
 * indicators and behaviours from every layer, adds the behaviours that
 * need the whole picture (obfuscation depth, reverse shell on an unusual
 * port) and scores the result.  Also the hot-path prefilter.
 *
 * Risk score (0-100, capped): the sum of
 *   - each behaviour's technique weight (attack.c's table),
 *   - 5 per decoding layer beyond the input, at most 20,
 *   - 10 for the first network indicator (URL, domain, IP) and 2 for each
 *     further one, at most 20,
 *   - 10 when a decoder bound was hit (nesting or size built to exhaust
 *     analysers is itself a signal).
 * Every contribution is listed as a reason, largest first.
 *
 * Memory: indicators, behaviours and reasons live in the analysis' arena
 * (one 16 KiB chunk covers a typical command line); the decoder owns the
 * layers.  Thread-compatible.
 */
#include "script.h"

#include <stdlib.h>
#include <string.h>

#define SCRIPT_ARENA_MAX ((size_t)8 << 20)
#define SCRIPT_MAX_REASONS 48
#define SCRIPT_MIN_SCAN ((size_t)64 << 10)   /* scanned per layer at least */

void sp_script_opts_default(struct sp_script_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    sp_deob_limits_default(&opts->deob);
    opts->max_indicators = SP_IOC_DEFAULT_MAX;
    opts->max_behaviours = SP_ATTACK_DEFAULT_MAX;
}

const char *sp_script_bound_name(unsigned bit)
{
    switch (1u << bit) {
    case SP_DEOB_BOUND_LAYERS: return "layers";
    case SP_DEOB_BOUND_OUTPUT: return "output";
    case SP_DEOB_BOUND_RATIO: return "ratio";
    case SP_DEOB_BOUND_TIME: return "time";
    case SP_SCRIPT_BOUND_INDICATORS: return "indicators";
    case SP_SCRIPT_BOUND_BEHAVIOURS: return "behaviours";
    default: return NULL;
    }
}

const char *sp_script_final_text(const struct sp_script_analysis *a,
                                 size_t *len)
{
    if (!a || a->deob.n_layers == 0 || !a->deob.layers) {
        if (len)
            *len = 0;
        return "";
    }
    const struct sp_deob_layer *last = &a->deob.layers[a->deob.n_layers - 1];
    if (len)
        *len = last->text ? last->len : 0;
    return last->text ? last->text : "";
}

void sp_script_analysis_fini(struct sp_script_analysis *a)
{
    if (!a)
        return;
    sp_deob_result_fini(&a->deob);
    sp_arena_fini(&a->arena);
    memset(a, 0, sizeof(*a));
}

/* ---- derived behaviours ----------------------------------------------------- */

static enum sp_err add_obfuscation(struct sp_script_analysis *a,
                                   struct sp_attack_list *beh)
{
    size_t depth = a->deob.n_layers > 0 ? a->deob.n_layers - 1 : 0;
    if (depth == 0)
        return SP_OK;
    char ev[SP_ATTACK_EVIDENCE_MAX];
    size_t o = 0;
    for (size_t i = 1; i < a->deob.n_layers && o + 2 < sizeof(ev); i++) {
        const char *t = a->deob.layers[i].technique;
        int w = snprintf(ev + o, sizeof(ev) - o, "%s%s", i > 1 ? " > " : "",
                         t ? t : "decode");
        if (w < 0)
            break;
        o = SP_MIN(o + (size_t)w, sizeof(ev) - 1);
    }
    return sp_attack_add(beh, "T1027",
                         depth == 1 ? "hides its real command behind one encoding layer"
                                    : "hides its real command behind several encoding layers",
                         ev, o, 1);
}

static bool standard_port(const char *v)
{
    static const char *const std[] = {"80", "443", "53", "8080", "8443", "22"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(std); i++)
        if (strcmp(v, std[i]) == 0)
            return true;
    return false;
}

static enum sp_err add_nonstandard_port(struct sp_attack_list *beh,
                                        const struct sp_ioc_list *iocs)
{
    if (!sp_attack_list_has(beh, "T1095"))
        return SP_OK;
    for (size_t i = 0; i < iocs->n; i++) {
        const struct sp_ioc *c = &iocs->v[i];
        if (c->type == SP_IOC_PORT && !standard_port(c->value)) {
            char ev[32];
            int n = snprintf(ev, sizeof(ev), "port %s", c->value);
            return sp_attack_add(beh, "T1571",
                                 "talks to its remote end on a non-standard port",
                                 ev, n > 0 ? (size_t)n : 0, c->layer);
        }
    }
    return SP_OK;
}

/* ---- score ------------------------------------------------------------------- */

static int hit_cmp(const void *pa, const void *pb)
{
    const struct sp_attack_hit *a = pa, *b = pb;
    if (a->tech->weight != b->tech->weight)
        return a->tech->weight > b->tech->weight ? -1 : 1;
    return strcmp(a->tech->id, b->tech->id);
}

static void add_reason(struct sp_script_analysis *a, int points,
                       const char *fmt, ...) SP_PRINTF(3, 4);

static void add_reason(struct sp_script_analysis *a, int points,
                       const char *fmt, ...)
{
    if (a->n_reasons >= SCRIPT_MAX_REASONS || points <= 0)
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *s = sp_arena_strdup(&a->arena, buf);
    if (!s)
        return;
    a->reasons[a->n_reasons].points = points;
    a->reasons[a->n_reasons].text = s;
    a->n_reasons++;
}

static void score(struct sp_script_analysis *a, const struct sp_ioc_list *iocs)
{
    a->reasons = sp_arena_alloc(&a->arena,
                                SCRIPT_MAX_REASONS * sizeof(*a->reasons));
    if (!a->reasons)
        return;
    int total = 0;
    for (size_t i = 0; i < a->n_behaviours; i++) {
        const struct sp_attack_hit *h = &a->behaviours[i];
        int w = (int)h->tech->weight;
        total += w;
        add_reason(a, w, "%s %s: %s", h->tech->id, h->tech->name, h->what);
    }
    size_t depth = a->deob.n_layers > 0 ? a->deob.n_layers - 1 : 0;
    if (depth) {
        int w = (int)SP_MIN(depth * 5, 20);
        total += w;
        add_reason(a, w, "%zu decoding layer%s before the real command",
                   depth, depth == 1 ? "" : "s");
    }
    size_t net = sp_ioc_list_network_count(iocs);
    if (net) {
        int w = (int)SP_MIN(10 + (net - 1) * 2, 20);
        total += w;
        add_reason(a, w, "%zu network indicator%s (URL, domain or IP address)",
                   net, net == 1 ? "" : "s");
    }
    if (a->bounds_hit & (SP_DEOB_BOUND_LAYERS | SP_DEOB_BOUND_OUTPUT |
                         SP_DEOB_BOUND_RATIO | SP_DEOB_BOUND_TIME)) {
        total += 10;
        add_reason(a, 10, "decoder limits reached (deep nesting or oversized output)");
    }
    a->risk = (unsigned)SP_MIN(total, 100);
    /* largest contribution first */
    for (size_t i = 1; i < a->n_reasons; i++) {
        struct sp_script_reason r = a->reasons[i];
        size_t j = i;
        while (j > 0 && a->reasons[j - 1].points < r.points) {
            a->reasons[j] = a->reasons[j - 1];
            j--;
        }
        a->reasons[j] = r;
    }
}

/* ---- analyse ------------------------------------------------------------------ */

static bool known_language(const char *l)
{
    return l && *l && strcmp(l, "unknown") != 0;
}

enum sp_err sp_script_analyze(const char *cmd, size_t len,
                              const struct sp_script_opts *opts,
                              struct sp_script_analysis *out)
{
    if (!out)
        return SP_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    if (!cmd && len)
        return SP_ERR_INVALID;
    struct sp_script_opts def;
    if (!opts) {
        sp_script_opts_default(&def);
        opts = &def;
    }
    sp_arena_init(&out->arena, SCRIPT_ARENA_MAX);
    enum sp_err err = sp_deob_run(cmd ? cmd : "", len, &opts->deob, &out->deob);
    if (err)
        goto fail;

    struct sp_ioc_list iocs;
    struct sp_attack_list beh;
    sp_ioc_list_init(&iocs, &out->arena, opts->max_indicators);
    sp_attack_list_init(&beh, &out->arena, opts->max_behaviours);
    /* the scans are linear, but the input layer is not bounded by the
     * decoder: look at most max_output bytes of any layer, and stop
     * scanning further layers once the time budget is spent */
    size_t scan_max = SP_MAX(opts->deob.max_output, SCRIPT_MIN_SCAN);
    int64_t deadline = opts->deob.max_time_us > 0 ? sp_now_us() + opts->deob.max_time_us : 0;
    unsigned scan_bounds = 0;
    for (size_t i = 0; i < out->deob.n_layers; i++) {
        const struct sp_deob_layer *ly = &out->deob.layers[i];
        if (!ly->text)
            continue;
        if (deadline && i > 0 && sp_now_us() > deadline) {
            scan_bounds |= SP_DEOB_BOUND_TIME;
            break;
        }
        size_t n = ly->len;
        if (n > scan_max) {
            n = scan_max;
            scan_bounds |= SP_DEOB_BOUND_OUTPUT;
        }
        err = sp_ioc_extract(&iocs, ly->text, n, (unsigned)i);
        if (err)
            goto fail;
        err = sp_attack_scan(&beh, ly->text, n, (unsigned)i);
        if (err)
            goto fail;
    }
    sp_ioc_list_prune(&iocs);
    if ((err = add_obfuscation(out, &beh)) != SP_OK && err != SP_ERR_INVALID)
        goto fail;
    if ((err = add_nonstandard_port(&beh, &iocs)) != SP_OK && err != SP_ERR_INVALID)
        goto fail;
    err = SP_OK;

    if (beh.n > 1)
        qsort(beh.v, beh.n, sizeof(*beh.v), hit_cmp);
    out->indicators = iocs.v;
    out->n_indicators = iocs.n;
    out->behaviours = beh.v;
    out->n_behaviours = beh.n;
    out->bounds_hit = out->deob.bounds_hit | scan_bounds;
    if (iocs.truncated)
        out->bounds_hit |= SP_SCRIPT_BOUND_INDICATORS;
    if (beh.truncated)
        out->bounds_hit |= SP_SCRIPT_BOUND_BEHAVIOURS;
    if (known_language(out->deob.language)) {
        out->language = out->deob.language;
    } else {
        size_t fl;
        const char *ft = sp_script_final_text(out, &fl);
        out->language = sp_attack_guess_language(ft, fl);
    }
    score(out, &iocs);
    return SP_OK;

fail:
    sp_script_analysis_fini(out);
    return err;
}

/* ---- prefilter ------------------------------------------------------------------ */

static bool b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

/* A dotted quad inside the token (ping 10.1.2.3, \\10.1.2.3\x, ip:port). */
static bool token_has_ipv4(const char *t, size_t n)
{
    for (size_t i = 0; i + 7 <= n; i++) {
        if (!(t[i] >= '0' && t[i] <= '9') || (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9'))
            continue;
        size_t e = i;
        while (e < n && e - i < 15 && ((t[e] >= '0' && t[e] <= '9') || t[e] == '.'))
            e++;
        while (e > i && t[e - 1] == '.')
            e--;
        if (e - i >= 7 && sp_ioc_ipv4_parse(t + i, e - i, NULL))
            return true;
        i = e;
    }
    return false;
}

/* Obfuscation syntax no plain command line has, at offset i: string
 * concatenation ('a'+'b'), format placeholders ({0}{1}), static members
 * (::), -join, cmd FOR /F and /L loops, delayed expansion (/v:). */
static bool obfuscation_syntax_at(const char *s, size_t n, size_t i)
{
    char c = s[i];
    if (c == '+') {
        size_t b = i, f = i + 1;
        while (b > 0 && s[b - 1] == ' ')
            b--;
        while (f < n && s[f] == ' ')
            f++;
        return b > 0 && f < n && (s[b - 1] == '\'' || s[b - 1] == '"') &&
               (s[f] == '\'' || s[f] == '"');
    }
    if (c == '{')
        return i > 0 && s[i - 1] == '}';
    if (c == ':')
        return i > 0 && s[i - 1] == ':';
    if (c == '-')
        return n - i > 5 && sp_strncaseeq(s + i + 1, "join", 4);
    if (c == '/' && i + 2 < n) {
        char d = sp_tolower(s[i + 1]);
        if (d == 'v' && s[i + 2] == ':')
            return true;
        return (d == 'f' || d == 'l') && i >= 4 && sp_strncaseeq(s + i - 4, "for ", 4);
    }
    return false;
}

bool sp_script_worth_analyzing(const char *cmd, size_t len)
{
    if (!cmd || len == 0)
        return false;
    if (len > 2048)
        return true;
    unsigned carets = 0, ticks = 0, numbers = 0;
    size_t b64run = 0, wsrun = 0, tok = 0;
    bool in_tok = false;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)cmd[i] : ' ';
        if (c == '^' && ++carets >= 3)
            return true;
        if ((c == '+' || c == '{' || c == ':' || c == '-' || c == '/') && i < len &&
            obfuscation_syntax_at(cmd, len, i))
            return true;
        if (c == '`' && ++ticks >= 2)
            return true;
        if (c == ':' && i + 2 < len && ((cmd[i + 1] == '/' && cmd[i + 2] == '/') ||
                                        cmd[i + 1] == '~'))
            return true;            /* URL, %VAR:~x,y% */
        if (c == '\\' && i + 2 < len && cmd[i + 1] == '\\' &&
            (i == 0 || cmd[i - 1] == ' ' || cmd[i - 1] == '"' || cmd[i - 1] == '\''))
            return true;            /* UNC path */
        if (b64_char(c)) {
            if (++b64run >= 64)
                return true;        /* encoded blob */
        } else {
            b64run = 0;
        }
        if (c == ' ' || c == '\t') {
            if (++wsrun >= 40)
                return true;        /* whitespace encoding */
        } else {
            wsrun = 0;
        }
        if (c == ',' && i > 0 && (cmd[i - 1] >= '0' && cmd[i - 1] <= '9')) {
            if (++numbers >= 12)
                return true;        /* a list of character codes */
        } else if (!(c >= '0' && c <= '9') && c != ' ' && c != ',' && c != '\'') {
            numbers = 0;
        }
        bool brk = c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '\n' ||
                   c == '\r' || c == '(' || c == ')' || c == ',' || c == '=' ||
                   c == '&' || c == '|' || c == ';' || c == '<' || c == '>';
        if (brk) {
            if (in_tok && i - tok >= 7 && token_has_ipv4(cmd + tok, i - tok))
                return true;
            in_tok = false;
        } else if (!in_tok) {
            in_tok = true;
            tok = i;
        }
    }
    return sp_attack_prefilter(cmd, len);
}
