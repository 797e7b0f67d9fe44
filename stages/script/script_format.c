/*
 * script_format.c - the analysis as JSON (through sp_jw, for the CLI's
 * --json/--jsonl, alerts and incidents) and as a human-readable report
 * (the CLI's default output).
 *
 * The JSON writer escapes and replaces invalid UTF-8 itself, so decoded
 * layers with arbitrary bytes still produce valid JSON.  The text report
 * shows control bytes as \xNN so a decoded payload cannot drive the
 * analyst's terminal.
 *
 * Pure functions of the analysis; any thread.
 */
#include "script.h"

#include <string.h>

static void write_bounds(const struct sp_script_analysis *a, struct sp_jw *w)
{
    sp_jw_key(w, "bounds_hit");
    sp_jw_arr_open(w);
    for (unsigned bit = 0; bit < 32; bit++) {
        const char *name = (a->bounds_hit & (1u << bit)) ? sp_script_bound_name(bit)
                                                         : NULL;
        if (name)
            sp_jw_str(w, name);
    }
    sp_jw_arr_close(w);
}

static void write_behaviour(struct sp_jw *w, const struct sp_attack_hit *h)
{
    sp_jw_obj_open(w);
    sp_jw_kstr(w, "technique", h->tech->id);
    sp_jw_kstr(w, "name", h->tech->name);
    sp_jw_kstr(w, "tactic", h->tech->tactic);
    sp_jw_kstr(w, "what", h->what);
    sp_jw_kstr(w, "evidence", h->evidence);
    sp_jw_kint(w, "layer", h->layer);
    sp_jw_obj_close(w);
}

static void write_indicator(struct sp_jw *w, const struct sp_ioc *c)
{
    sp_jw_obj_open(w);
    sp_jw_kstr(w, "type", sp_ioc_type_name(c->type));
    sp_jw_key(w, "value");
    sp_jw_strn(w, c->value, c->len);
    sp_jw_kint(w, "layer", c->layer);
    sp_jw_obj_close(w);
}

void sp_script_write_json_fields(const struct sp_script_analysis *a,
                                 struct sp_jw *w)
{
    sp_jw_kstr(w, "language", a->language ? a->language : "unknown");
    sp_jw_kint(w, "risk", a->risk);
    sp_jw_key(w, "reasons");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->n_reasons; i++) {
        sp_jw_obj_open(w);
        sp_jw_kint(w, "points", a->reasons[i].points);
        sp_jw_kstr(w, "reason", a->reasons[i].text);
        sp_jw_obj_close(w);
    }
    sp_jw_arr_close(w);
    write_bounds(a, w);

    sp_jw_key(w, "layers");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->deob.n_layers; i++) {
        const struct sp_deob_layer *ly = &a->deob.layers[i];
        sp_jw_obj_open(w);
        sp_jw_kint(w, "index", (int64_t)i);
        sp_jw_kstr(w, "technique", ly->technique ? ly->technique : "");
        sp_jw_kstr_opt(w, "description", ly->description);
        sp_jw_key(w, "text");
        sp_jw_strn(w, ly->text ? ly->text : "", ly->text ? ly->len : 0);
        sp_jw_obj_close(w);
    }
    sp_jw_arr_close(w);
    size_t fl;
    const char *ft = sp_script_final_text(a, &fl);
    sp_jw_key(w, "decoded");
    sp_jw_strn(w, ft, fl);

    sp_jw_key(w, "indicators");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->n_indicators; i++)
        write_indicator(w, &a->indicators[i]);
    sp_jw_arr_close(w);

    sp_jw_key(w, "behaviours");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->n_behaviours; i++)
        write_behaviour(w, &a->behaviours[i]);
    sp_jw_arr_close(w);
}

/* ---- within a size ----------------------------------------------------------- */

/* The writer and its buffer as they were before an element. */
struct jw_mark {
    struct sp_jw w;
    size_t len;
    bool overflow;
};

static struct jw_mark jw_mark(const struct sp_jw *w)
{
    return (struct jw_mark){*w, w->b->len, w->b->overflow};
}

/* Did the element written since m fit below limit?  If not, it is taken
 * back whole and false returned (an overflow from before m stays). */
static bool jw_fits(struct sp_jw *w, const struct jw_mark *m, size_t limit)
{
    if (!w->b->overflow && w->b->len <= limit)
        return true;
    struct sp_buf *b = w->b;
    *w = m->w;
    b->len = m->len;
    b->overflow = m->overflow;
    if (b->data)
        b->data[b->len] = '\0';
    return false;
}

/* At most max bytes of s[0..n), not ending inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* Room kept for what follows the texts: closing brackets and braces. */
#define CUT_RESERVE 64
/* Worst case of one byte escaped in JSON (\u00XX). */
#define JSON_ESC_MAX 6
/* A layer's members other than its text, at most (technique, description). */
#define LAYER_OVERHEAD 512

/* Bytes of output one of `texts` texts may take of what is left. */
static size_t text_share(const struct sp_buf *b, size_t limit, size_t texts)
{
    size_t over = LAYER_OVERHEAD * texts;
    if (!texts || b->len + over >= limit)
        return 0;
    return (limit - b->len - over) / texts;
}

void sp_script_write_json_fields_max(const struct sp_script_analysis *a,
                                     struct sp_jw *w, size_t room)
{
    struct sp_buf *b = w->b;
    size_t max = b->max ? b->max : SP_BUF_DEFAULT_MAX;
    size_t limit = b->len < max && room < max - b->len ? b->len + room : max;
    limit = limit > CUT_RESERVE ? limit - CUT_RESERVE : 0;
    struct jw_mark m;

    /* The verdict first: it is small (reasons and bounds are few). */
    sp_jw_kstr(w, "language", a->language ? a->language : "unknown");
    sp_jw_kint(w, "risk", a->risk);
    sp_jw_kbool(w, "truncated", true);
    sp_jw_key(w, "reasons");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->n_reasons; i++) {
        m = jw_mark(w);
        sp_jw_obj_open(w);
        sp_jw_kint(w, "points", a->reasons[i].points);
        sp_jw_kstr(w, "reason", a->reasons[i].text);
        sp_jw_obj_close(w);
        if (!jw_fits(w, &m, limit))
            break;
    }
    sp_jw_arr_close(w);
    write_bounds(a, w);

    /* Then behaviours and indicators, as many as fit. */
    sp_jw_key(w, "behaviours");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->n_behaviours; i++) {
        m = jw_mark(w);
        write_behaviour(w, &a->behaviours[i]);
        if (!jw_fits(w, &m, limit))
            break;
    }
    sp_jw_arr_close(w);
    sp_jw_key(w, "indicators");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->n_indicators; i++) {
        m = jw_mark(w);
        write_indicator(w, &a->indicators[i]);
        if (!jw_fits(w, &m, limit))
            break;
    }
    sp_jw_arr_close(w);

    /* Last the texts ("decoded", then each layer's), each cut to an equal
     * share of what is left: tried at the share, then at a half and a
     * sixth of it (quotes and backslashes double when escaped, control
     * bytes take six), then empty. */
    static const unsigned divs[] = {1, 2, JSON_ESC_MAX, 0};
    size_t texts = a->deob.n_layers + 1;
    size_t fl;
    const char *ft = sp_script_final_text(a, &fl);
    for (size_t k = 0; k < SP_ARRAY_SIZE(divs); k++) {
        size_t share = text_share(b, limit, texts);
        m = jw_mark(w);
        sp_jw_key(w, "decoded");
        sp_jw_strn(w, ft, divs[k] ? utf8_cut(ft, fl, share / divs[k]) : 0);
        if (jw_fits(w, &m, limit))
            break;
    }
    texts--;
    sp_jw_key(w, "layers");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < a->deob.n_layers; i++, texts--) {
        const struct sp_deob_layer *ly = &a->deob.layers[i];
        const char *t = ly->text ? ly->text : "";
        size_t tl = ly->text ? ly->len : 0;
        bool fit = false;
        for (size_t k = 0; k < SP_ARRAY_SIZE(divs) && !fit; k++) {
            size_t share = text_share(b, limit, texts);
            m = jw_mark(w);
            sp_jw_obj_open(w);
            sp_jw_kint(w, "index", (int64_t)i);
            sp_jw_kstr(w, "technique", ly->technique ? ly->technique : "");
            sp_jw_kstr_opt(w, "description", ly->description);
            sp_jw_key(w, "text");
            sp_jw_strn(w, t, divs[k] ? utf8_cut(t, tl, share / divs[k]) : 0);
            sp_jw_obj_close(w);
            fit = jw_fits(w, &m, limit);
        }
        if (!fit)
            break;
    }
    sp_jw_arr_close(w);
}

void sp_script_write_json(const struct sp_script_analysis *a, struct sp_jw *w)
{
    sp_jw_obj_open(w);
    sp_script_write_json_fields(a, w);
    sp_jw_obj_close(w);
}

/* ---- text ------------------------------------------------------------------ */

/* Prints s[0..n) with every line indented; control bytes (other than
 * newline and tab) as \xNN. */
static void put_block(FILE *out, const char *s, size_t n, const char *indent)
{
    fputs(indent, out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            fputc('\n', out);
            if (i + 1 < n)
                fputs(indent, out);
        } else if (c == '\t' || (c >= ' ' && c != 0x7f)) {
            fputc(c, out);
        } else {
            fprintf(out, "\\x%02x", c);
        }
    }
    fputc('\n', out);
}

void sp_script_print_text(const struct sp_script_analysis *a, FILE *out)
{
    fprintf(out, "risk: %u/100   language: %s\n", a->risk,
            a->language ? a->language : "unknown");
    for (size_t i = 0; i < a->n_reasons; i++)
        fprintf(out, "  %+4d  %s\n", a->reasons[i].points, a->reasons[i].text);
    if (a->bounds_hit) {
        fputs("limits reached:", out);
        for (unsigned bit = 0; bit < 32; bit++) {
            const char *name = (a->bounds_hit & (1u << bit)) ? sp_script_bound_name(bit)
                                                             : NULL;
            if (name)
                fprintf(out, " %s", name);
        }
        fputc('\n', out);
    }

    fprintf(out, "\nlayers (%zu):\n", a->deob.n_layers);
    for (size_t i = 0; i < a->deob.n_layers; i++) {
        const struct sp_deob_layer *ly = &a->deob.layers[i];
        fprintf(out, "  [%zu] %s%s%s\n", i, ly->technique ? ly->technique : "",
                ly->description ? " - " : "", ly->description ? ly->description : "");
        put_block(out, ly->text ? ly->text : "", ly->text ? ly->len : 0, "      ");
    }

    size_t fl;
    const char *ft = sp_script_final_text(a, &fl);
    fputs("\ndecoded:\n", out);
    put_block(out, ft, fl, "  ");

    fprintf(out, "\nindicators (%zu):\n", a->n_indicators);
    for (size_t i = 0; i < a->n_indicators; i++) {
        const struct sp_ioc *c = &a->indicators[i];
        fprintf(out, "  %-12s ", sp_ioc_type_name(c->type));
        for (size_t k = 0; k < c->len; k++) {
            unsigned char ch = (unsigned char)c->value[k];
            if (ch < ' ' || ch == 0x7f)
                fprintf(out, "\\x%02x", ch);
            else
                fputc(ch, out);
        }
        fprintf(out, "   (layer %u)\n", c->layer);
    }

    fprintf(out, "\nbehaviours (%zu):\n", a->n_behaviours);
    for (size_t i = 0; i < a->n_behaviours; i++) {
        const struct sp_attack_hit *h = &a->behaviours[i];
        fprintf(out, "  %-10s %s [%s] (layer %u)\n", h->tech->id, h->tech->name,
                h->tech->tactic, h->layer);
        fprintf(out, "             %s\n", h->what);
        if (h->evidence && *h->evidence)
            fprintf(out, "             evidence: %s\n", h->evidence);
    }
}
