/*
 * analysis_context.c - the structured context a prompt carries, built
 * within a token budget (estimated as bytes / 4), and the batch plan for
 * incidents too big for one prompt.
 *
 * What matters most goes in first: the incident header and deterministic
 * impact (always), the highest-severity and newest alerts, decoded script
 * layers, entities (critical and privileged first, then by how many
 * alerts carry them), a timeline of alert labels.  What does not fit is
 * named in a note ("12 more alerts omitted: 3 medium, 9 low ...") and the
 * timeline still lists every alert label it has room for.
 *
 * Every alert-derived string passes through an_text_put(): bounded,
 * redacted, anonymized, with fence look-alikes neutralised, and is
 * written only inside <untrusted-data id="..."> ... </untrusted-data>.
 * Outside the fences there are only our own labels, enums, numbers and
 * times.  Pure functions; any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

#define FENCE_CLOSE "</untrusted-data>\n"

/* ---- untrusted text ----------------------------------------------------- */

void an_text_init(struct an_text *t, const struct sp_analysis_opts *o,
                  struct sp_analysis_anon *anon)
{
    memset(t, 0, sizeof(*t));
    t->o = o;
    t->anon = anon;
    sp_buf_init(&t->tmp1, (size_t)4 << 20);
    sp_buf_init(&t->tmp2, (size_t)4 << 20);
}

void an_text_fini(struct an_text *t)
{
    sp_buf_fini(&t->tmp1);
    sp_buf_fini(&t->tmp2);
}

static const char *const injection_phrases[] = {
    "ignore previous", "ignore all previous", "ignore the above",
    "ignore prior", "ignore your instructions", "disregard previous",
    "disregard all", "disregard the above", "forget previous",
    "forget your instructions", "new instructions", "system prompt",
    "you are now", "mark this benign", "mark this incident",
    "mark as benign", "mark it as benign", "classify as benign",
    "classify this as", "no action needed", "no action is needed",
    "as an ai", "untrusted-data",
};

bool an_looks_injected(const char *s, size_t n)
{
    char low[4096];
    size_t step = sizeof(low) - 64;
    for (size_t off = 0; off < n && off < ((size_t)1 << 20); off += step) {
        size_t m = SP_MIN(n - off, sizeof(low) - 1);
        for (size_t i = 0; i < m; i++) {
            char c = sp_tolower(s[off + i]);
            low[i] = (c == '\n' || c == '\t' || c == '\r') ? ' ' : c;
        }
        low[m] = '\0';
        for (size_t k = 0; k < SP_ARRAY_SIZE(injection_phrases); k++)
            if (strstr(low, injection_phrases[k]))
                return true;
        if (m < sizeof(low) - 1)
            break;
    }
    return false;
}

/* UTF-8-safe cut at most max bytes into s. */
static size_t cut_utf8(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t m = max;
    while (m > 0 && ((unsigned char)s[m] & 0xC0) == 0x80)
        m--;
    return m;
}

/* Where the token cut at s[len] begins, when it begins in the last
 * CUT_TOKEN_MAX bytes: text is cut there instead.  A longer token is
 * kept: it is longer than any redaction detector's minimum, so it is
 * recognised (or not) as it would be whole. */
#define CUT_TOKEN_MAX 512

static size_t before_cut_token(const char *s, size_t len)
{
    static const char seps[] = " \t\r\n\"'`;,&|()<>[]{}=";
    if (len == 0 || strchr(seps, s[len]) || strchr(seps, s[len - 1]))
        return len;
    for (size_t i = len; i > 0 && len - i < CUT_TOKEN_MAX; i--)
        if (strchr(seps, s[i - 1]))
            return i;
    return len;
}

/* Appends s with fence tags neutralised and control characters blanked. */
void an_text_neutral(struct sp_buf *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '<' && ((unsigned char)s[j] >= 0x20 ||
                                        s[j] == '\n' || s[j] == '\t'))
            j++;
        sp_buf_put(out, s + i, j - i);
        if (j >= n)
            break;
        if (s[j] != '<') {
            sp_buf_putc(out, ' ');
            i = j + 1;
            continue;
        }
        size_t k = j + 1;
        while (k < n && (s[k] == '/' || s[k] == ' ' || s[k] == '\t'))
            k++;
        bool tag = n - k >= 9 && sp_strncaseeq(s + k, "untrusted", 9);
        sp_buf_puts(out, tag ? "&lt;" : "<");
        i = j + 1;
    }
}

void an_text_put(struct an_text *t, struct sp_buf *out, const char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    if (an_looks_injected(s, n))
        t->injection = true;
    /* Redact and anonymize a little more than will be kept, then cut: a
     * secret or name straddling the cut is replaced whole, never halved.
     * Redaction shrinks text, so what is kept can reach the pre-cut: a
     * token halved there (sk-... shorter than its detector's minimum) is
     * dropped before redaction, not sent as is. */
    size_t max = t->o->field_max ? t->o->field_max : 2000;
    const char *p = s;
    size_t len = cut_utf8(s, n, max + 1024);
    if (len < n)
        len = before_cut_token(s, len);
    if (t->o->redact) {
        sp_buf_reset(&t->tmp1);
        sp_analysis_redact(p, len, t->o->redact, &t->tmp1, &t->redactions);
        p = t->tmp1.data ? t->tmp1.data : "";
        len = t->tmp1.len;
    }
    if (t->anon) {
        sp_buf_reset(&t->tmp2);
        an_anon_apply(t->anon, p, len, &t->tmp2);
        p = t->tmp2.data ? t->tmp2.data : "";
        len = t->tmp2.len;
    }
    size_t keep = cut_utf8(p, len, max);
    an_text_neutral(out, p, keep);
    if (keep < len || len < n)
        sp_buf_printf(out, " ...[truncated %zu bytes]",
                      n > keep ? n - keep : len - keep);
}

static void fence(struct sp_buf *b, const char *id)
{
    sp_buf_printf(b, "<untrusted-data id=\"%s\">\n", id);
}

/* ---- blocks ------------------------------------------------------------- */

static void put_list(struct an_text *t, struct sp_buf *b, const char *label,
                     const struct sp_json *arr)
{
    if (!arr || arr->type != SP_JSON_ARRAY || !arr->n)
        return;
    sp_buf_printf(b, "%s: ", label);
    size_t k = 0;
    sp_json_foreach(arr, it) {
        const char *s = sp_json_scalar(it);
        if (!s)
            continue;
        if (k++ > 0)
            sp_buf_puts(b, ", ");
        an_text_put(t, b, s);
        if (k >= 32)
            break;
    }
    sp_buf_putc(b, '\n');
}

static void put_field(struct an_text *t, struct sp_buf *b, const char *label,
                      const char *s)
{
    if (!s || !*s)
        return;
    sp_buf_printf(b, "%s: ", label);
    an_text_put(t, b, s);
    sp_buf_putc(b, '\n');
}

static void alert_block(const struct an_inc *ix, const struct an_alert *al,
                        struct an_text *t, struct sp_buf *b)
{
    char ts[32];
    sp_buf_printf(b, "[%s] %s severity=%s\n", al->label, an_time(ts, al->t_first),
                  sp_severity_name((enum sp_severity)al->sev));
    fence(b, al->label);
    put_field(t, b, "title", al->title);
    put_field(t, b, "description", al->description);
    put_field(t, b, "status", al->status);
    put_field(t, b, "detector", al->detector);
    put_field(t, b, "category", al->category);
    put_field(t, b, "product", al->provider);
    put_list(t, b, "tactics", al->tactics);
    put_list(t, b, "techniques", al->techniques);
    sp_buf_puts(b, FENCE_CLOSE);
    if (al->n_ents) {
        sp_buf_puts(b, "entities:");
        for (uint32_t k = 0; k < al->n_ents && k < 40; k++) {
            const struct an_entity *e = &ix->ents[al->ents[k]];
            sp_buf_printf(b, " %s (%s)", e->label, an_kind_name(e->kind));
        }
        if (al->n_ents > 40)
            sp_buf_printf(b, " and %u more", al->n_ents - 40);
        sp_buf_putc(b, '\n');
    }
    sp_buf_putc(b, '\n');
}

static void entity_ids(const struct sp_json *ids, struct sp_buf *tmp)
{
    size_t k = 0;
    sp_json_foreach(ids, it) {
        if (!it->key)
            continue;
        if (k++ > 0)
            sp_buf_puts(tmp, "; ");
        sp_buf_printf(tmp, "%s=", it->key);
        if (it->type == SP_JSON_ARRAY) {
            size_t m = 0;
            sp_json_foreach(it, v) {
                const char *s = sp_json_scalar(v);
                if (s && m < 8) {
                    if (m++)
                        sp_buf_putc(tmp, ',');
                    sp_buf_puts(tmp, s);
                }
            }
        } else if (sp_json_scalar(it)) {
            sp_buf_puts(tmp, sp_json_scalar(it));
        }
    }
}

static void entity_block(const struct an_inc *ix, const struct an_entity *e,
                         struct an_text *t, struct sp_buf *b)
{
    sp_buf_printf(b, "[%s] %s | alerts: %u | highest severity: %s", e->label,
                  an_kind_name(e->kind), e->n_alerts,
                  sp_severity_name((enum sp_severity)e->sev_max));
    if (e->critical)
        sp_buf_puts(b, " | critical asset");
    if (e->privileged)
        sp_buf_puts(b, " | privileged");
    if (e->vip)
        sp_buf_puts(b, " | VIP");
    sp_buf_putc(b, '\n');
    fence(b, e->label);
    put_field(t, b, "name", e->name);
    struct sp_buf tmp;
    sp_buf_init(&tmp, (size_t)1 << 20);
    entity_ids(sp_json_get(e->j, "ids"), &tmp);
    if (tmp.len)
        put_field(t, b, "identifiers", tmp.data);
    sp_buf_reset(&tmp);
    const struct sp_json *roles = sp_json_get(e->j, "roles");
    put_list(t, b, "roles", roles);
    const struct sp_json *enr = sp_json_get(e->j, "enrichment");
    if (enr && (enr->type == SP_JSON_ARRAY || enr->type == SP_JSON_OBJECT) &&
        enr->n && enr->src_len)
        put_field(t, b, "enrichment",
                  sp_buf_put(&tmp, enr->src, enr->src_len) == SP_OK ? tmp.data
                                                                    : NULL);
    sp_buf_fini(&tmp);
    sp_buf_puts(b, FENCE_CLOSE);
    (void)ix;
}

bool an_safe_token(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == ':'))
            return false;
    }
    return true;
}

static const char *alert_label(const struct an_inc *ix, const char *id)
{
    for (size_t i = 0; id && i < ix->n_alerts; i++)
        if (ix->alerts[i].id && strcmp(ix->alerts[i].id, id) == 0)
            return ix->alerts[i].label;
    return NULL;
}

static void script_block(const struct an_inc *ix, const struct an_script *s,
                         struct an_text *t, struct sp_buf *b, bool layers)
{
    const char *al = alert_label(ix, s->alert_id);
    sp_buf_printf(b, "[%s] alert: %s | language: %s", s->label, al ? al : "-",
                  an_safe_token(s->language) ? s->language : "unknown");
    if (s->risk >= 0)
        sp_buf_printf(b, " | risk: %d/100", s->risk);
    sp_buf_putc(b, '\n');
    char id[48];
    struct sp_buf tmp;
    sp_buf_init(&tmp, (size_t)1 << 20);
    if (s->behaviours && s->behaviours->n) {
        sp_json_foreach(s->behaviours, it) {
            const char *tech = sp_json_str(it, "technique");
            if (!tech)
                tech = sp_json_str(it, "attack");
            if (!tech)
                tech = sp_json_str(it, "id");
            const char *what = sp_json_str(it, "description");
            if (!what)
                what = sp_json_str(it, "name");
            if (!what)
                what = sp_json_scalar(it);
            sp_buf_printf(&tmp, "- %s %s\n", tech ? tech : "",
                          what ? what : "");
        }
        if (tmp.len && tmp.data[tmp.len - 1] == '\n')
            tmp.data[--tmp.len] = '\0';
        snprintf(id, sizeof(id), "%s.behaviours", s->label);
        fence(b, id);
        an_text_put(t, b, tmp.data ? tmp.data : "");
        sp_buf_putc(b, '\n');
        sp_buf_puts(b, FENCE_CLOSE);
    }
    if (s->input) {
        snprintf(id, sizeof(id), "%s.input", s->label);
        fence(b, id);
        an_text_put(t, b, s->input);
        sp_buf_putc(b, '\n');
        sp_buf_puts(b, FENCE_CLOSE);
    }
    if (layers && s->layers && s->layers->type == SP_JSON_ARRAY) {
        size_t k = 0, n = s->layers->n;
        sp_json_foreach(s->layers, l) {
            k++;
            if (k == 1 || k == n)       /* input and final shown anyway */
                continue;
            const char *text = l->type == SP_JSON_STRING ? l->u.s
                                                         : sp_json_str(l, "text");
            const char *tech = sp_json_str(l, "technique");
            if (!text)
                continue;
            sp_buf_printf(b, "layer %zu: %s\n", k - 1,
                          an_safe_token(tech) ? tech : "decoded");
            snprintf(id, sizeof(id), "%s.L%zu", s->label, k - 1);
            fence(b, id);
            an_text_put(t, b, text);
            sp_buf_putc(b, '\n');
            sp_buf_puts(b, FENCE_CLOSE);
            if (k > 16)
                break;
        }
    }
    if (s->final && (!s->input || strcmp(s->final, s->input) != 0)) {
        snprintf(id, sizeof(id), "%s.final", s->label);
        sp_buf_puts(b, "final decoded layer:\n");
        fence(b, id);
        an_text_put(t, b, s->final);
        sp_buf_putc(b, '\n');
        sp_buf_puts(b, FENCE_CLOSE);
    }
    if (s->indicators && s->indicators->n) {
        sp_buf_reset(&tmp);
        size_t k = 0;
        sp_json_foreach(s->indicators, it) {
            const char *ty = sp_json_str(it, "type");
            const char *v = sp_json_str(it, "value");
            if (!v)
                v = sp_json_scalar(it);
            if (!v || k++ >= 50)
                continue;
            sp_buf_printf(&tmp, "%s%s=%s", k > 1 ? "; " : "",
                          ty ? ty : "indicator", v);
        }
        snprintf(id, sizeof(id), "%s.indicators", s->label);
        fence(b, id);
        an_text_put(t, b, tmp.data ? tmp.data : "");
        sp_buf_putc(b, '\n');
        sp_buf_puts(b, FENCE_CLOSE);
    }
    sp_buf_fini(&tmp);
    sp_buf_putc(b, '\n');
}

static void header(const struct an_inc *ix, const struct sp_impact *imp,
                   struct an_text *t, struct sp_buf *b, size_t shown_alerts)
{
    char t1[32], t2[32];
    sp_buf_puts(b, "## Incident\n");
    sp_buf_printf(b, "id: %s | severity: %s | status: %s\n",
                  an_safe_token(ix->id) ? ix->id : "-",
                  sp_severity_name((enum sp_severity)ix->sev),
                  an_safe_token(ix->status) ? ix->status : "unknown");
    sp_buf_printf(b, "first seen: %s | last seen: %s\n",
                  an_time(t1, ix->first_seen), an_time(t2, ix->last_seen));
    sp_buf_printf(b, "alerts: %zu | entities: %zu | scripts: %zu\n",
                  SP_MAX(ix->n_alerts_total, ix->n_alerts),
                  SP_MAX(ix->n_ents_total, ix->n_ents), ix->n_scripts);
    if (ix->title) {
        fence(b, "incident.title");
        an_text_put(t, b, ix->title);
        sp_buf_putc(b, '\n');
        sp_buf_puts(b, FENCE_CLOSE);
    }
    sp_buf_puts(b, "\n## Deterministic impact (fixed by socpilot: explain it, "
                   "do not change it)\n");
    sp_buf_printf(b, "score: %d/100 | level: %s\n", imp->score, imp->level);
    for (size_t i = 0; i < imp->n_factors; i++)
        sp_buf_printf(b, "- %s +%d: %s\n", imp->factors[i].name,
                      imp->factors[i].points, imp->factors[i].detail);
    sp_buf_putc(b, '\n');
    (void)shown_alerts;
}

/* ---- assembling within the budget --------------------------------------- */

struct pick {
    uint32_t idx;
    int sev;
    int64_t t;
};

static int pick_cmp(const void *pa, const void *pb)
{
    const struct pick *a = pa, *b = pb;
    if (a->sev != b->sev)
        return b->sev - a->sev;
    if (a->t != b->t)
        return a->t > b->t ? -1 : 1;      /* newest first */
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

static int idx_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : (x > y);
}

/* Alerts of the scope ordered by importance (severity, newest). */
static struct pick *rank_alerts(const struct an_inc *ix,
                                const struct an_scope *scope, size_t *n)
{
    size_t m = scope && scope->alerts ? scope->n_alerts : ix->n_alerts;
    struct pick *p = calloc(m + 1, sizeof(*p));
    if (!p)
        return NULL;
    for (size_t i = 0; i < m; i++) {
        uint32_t k = scope && scope->alerts ? scope->alerts[i] : (uint32_t)i;
        const struct an_alert *al = &ix->alerts[k];
        p[i] = (struct pick){k, al->sev,
                             al->t_last != SP_TIME_NONE ? al->t_last
                                                        : al->t_first};
    }
    qsort(p, m, sizeof(*p), pick_cmp);
    *n = m;
    return p;
}

static void omitted_alerts_note(const struct an_inc *ix, const struct pick *p,
                                size_t from, size_t n, size_t beyond,
                                struct sp_buf *b)
{
    size_t by_sev[SP_SEV_HIGH + 1] = {0};
    for (size_t i = from; i < n; i++)
        by_sev[p[i].sev >= 0 && p[i].sev <= SP_SEV_HIGH ? p[i].sev : 0]++;
    size_t total = n - from + beyond;
    if (!total)
        return;
    sp_buf_printf(b, "Note: %zu more alert%s omitted to fit the budget (", total,
                  total == 1 ? "" : "s");
    bool first = true;
    for (int s = SP_SEV_HIGH; s >= 0; s--) {
        if (!by_sev[s])
            continue;
        sp_buf_printf(b, "%s%zu %s", first ? "" : ", ", by_sev[s],
                      sp_severity_name((enum sp_severity)s));
        first = false;
    }
    if (beyond)
        sp_buf_printf(b, "%s%zu beyond the snapshot limit", first ? "" : ", ",
                      beyond);
    sp_buf_puts(b, "); the timeline lists their labels.\n\n");
    (void)ix;
}

enum sp_err an_context(const struct an_inc *ix, const struct sp_impact *imp,
                       struct an_text *t, const struct an_scope *scope,
                       size_t budget_tokens, struct sp_buf *out,
                       struct an_ctx_stats *st)
{
    memset(st, 0, sizeof(*st));
    size_t budget = SP_MAX(budget_tokens, (size_t)256) * 4;
    size_t start = out->len;
    struct sp_buf blk;
    sp_buf_init(&blk, (size_t)8 << 20);
    header(ix, imp, t, out, 0);
    if (scope && scope->batches > 1)
        sp_buf_printf(out, "This prompt covers batch %u of %u of the incident's "
                           "alerts.\n\n", scope->batch, scope->batches);
    size_t used = out->len - start;
    size_t rest = budget > used ? budget - used : 0;

    /* Alerts: by importance until their share is spent; shown in time
     * order. */
    size_t n_pick = 0;
    struct pick *pick = rank_alerts(ix, scope, &n_pick);
    uint8_t *shown = calloc(ix->n_alerts + 1, 1);
    uint8_t *ent_shown = calloc(ix->n_ents + 1, 1);
    uint32_t *order = calloc(n_pick + 1, sizeof(*order));
    if (!pick || !shown || !ent_shown || !order) {
        free(pick);
        free(shown);
        free(ent_shown);
        free(order);
        sp_buf_fini(&blk);
        return SP_ERR_NOMEM;
    }
    size_t cap = rest * 55 / 100, spent = 0, n_order = 0, k = 0;
    for (; k < n_pick; k++) {
        sp_buf_reset(&blk);
        alert_block(ix, &ix->alerts[pick[k].idx], t, &blk);
        if (spent + blk.len > cap && n_order > 0)
            break;
        spent += blk.len;
        order[n_order++] = pick[k].idx;
        shown[pick[k].idx] = 1;
    }
    qsort(order, n_order, sizeof(*order), idx_cmp);
    sp_buf_puts(out, scope && scope->batches > 1
                         ? "## Alerts of this batch (time order)\n"
                         : "## Alerts (highest severity and newest chosen "
                           "first, shown in time order)\n");
    for (size_t i = 0; i < n_order; i++)
        alert_block(ix, &ix->alerts[order[i]], t, out);
    size_t beyond = !scope || !scope->alerts
                        ? ix->n_alerts_total - SP_MIN(ix->n_alerts_total,
                                                      ix->n_alerts)
                        : 0;
    omitted_alerts_note(ix, pick, k, n_pick, beyond, out);
    st->alerts_shown = n_order;
    st->omitted_alerts = k < n_pick || beyond > 0;

    /* Scripts of the shown alerts (or without an alert). */
    used = out->len - start;
    rest = budget > used ? budget - used : 0;
    cap = rest * 45 / 100;
    spent = 0;
    size_t scripts_total = 0;
    bool head = false;
    for (size_t i = 0; i < ix->n_scripts; i++) {
        const struct an_script *s = &ix->scripts[i];
        const char *al = alert_label(ix, s->alert_id);
        bool in_scope = !s->alert_id || !al;
        for (size_t j = 0; !in_scope && j < ix->n_alerts; j++)
            in_scope = shown[j] && strcmp(ix->alerts[j].label, al) == 0;
        if (!in_scope)
            continue;
        scripts_total++;
        sp_buf_reset(&blk);
        script_block(ix, s, t, &blk, true);
        if (spent + blk.len > cap) {
            sp_buf_reset(&blk);
            script_block(ix, s, t, &blk, false);     /* without middle layers */
            if (spent + blk.len > cap)
                continue;
        }
        if (!head) {
            sp_buf_puts(out, "## Scripts (decoded by socpilot; explain what "
                             "they do)\n");
            head = true;
        }
        sp_buf_put(out, blk.data, blk.len);
        spent += blk.len;
        st->scripts_shown++;
    }
    if (scripts_total > st->scripts_shown)
        sp_buf_printf(out, "Note: %zu more script analyses omitted.\n\n",
                      scripts_total - st->scripts_shown);

    /* Entities: those of the shown alerts first, in rank order. */
    used = out->len - start;
    rest = budget > used ? budget - used : 0;
    size_t tl_lines = SP_MIN(n_pick, (size_t)(t->o->timeline_max
                                                  ? t->o->timeline_max : 50));
    size_t tl_reserve = 64 + tl_lines * 48;
    cap = rest > tl_reserve ? rest - tl_reserve : 0;
    spent = 0;
    size_t ent_omitted[AN_OTHER + 1] = {0}, n_ent_omitted = 0;
    sp_buf_puts(out, "## Entities\n");
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < ix->n_ents; i++) {
            const struct an_entity *e = &ix->ents[i];
            if (ent_shown[i])
                continue;
            bool linked = false;
            for (size_t j = 0; j < n_order && !linked; j++) {
                const struct an_alert *al = &ix->alerts[order[j]];
                for (uint32_t q = 0; q < al->n_ents && !linked; q++)
                    linked = al->ents[q] == i;
            }
            if (pass == 0 && !linked)
                continue;
            if (pass == 1 && scope && scope->alerts && !linked)
                continue;             /* a batch shows its own entities */
            sp_buf_reset(&blk);
            entity_block(ix, e, t, &blk);
            if (spent + blk.len > cap) {
                ent_omitted[e->kind]++;
                n_ent_omitted++;
                ent_shown[i] = 2;
                continue;
            }
            sp_buf_put(out, blk.data, blk.len);
            spent += blk.len;
            ent_shown[i] = 1;
            st->entities_shown++;
        }
    }
    if (n_ent_omitted) {
        sp_buf_printf(out, "Note: %zu more entities omitted (", n_ent_omitted);
        bool first = true;
        for (int kd = 0; kd <= AN_OTHER; kd++) {
            if (!ent_omitted[kd])
                continue;
            sp_buf_printf(out, "%s%zu %s", first ? "" : ", ", ent_omitted[kd],
                          an_kind_name((enum an_kind)kd));
            first = false;
        }
        sp_buf_puts(out, ").\n");
    }
    sp_buf_putc(out, '\n');

    /* Timeline: labels only, first and last events when too many. */
    uint32_t *tl = order;
    size_t n_tl = 0;
    for (size_t i = 0; i < n_pick; i++)
        tl[n_tl++] = pick[i].idx;
    qsort(tl, n_tl, sizeof(*tl), idx_cmp);
    sp_buf_puts(out, "## Timeline (UTC; alerts not shown above are marked)\n");
    size_t head_n = tl_lines / 2 + tl_lines % 2, tail_n = tl_lines / 2;
    for (size_t i = 0; i < n_tl; i++) {
        if (n_tl > tl_lines && i == head_n)
            sp_buf_printf(out, "... %zu events ...\n", n_tl - head_n - tail_n);
        if (n_tl > tl_lines && i >= head_n && i < n_tl - tail_n)
            continue;
        const struct an_alert *al = &ix->alerts[tl[i]];
        char ts[32];
        sp_buf_printf(out, "%s %s %s%s\n", an_time(ts, al->t_first), al->label,
                      sp_severity_name((enum sp_severity)al->sev),
                      shown[tl[i]] ? "" : " (not shown)");
    }
    free(pick);
    free(shown);
    free(ent_shown);
    free(order);
    sp_buf_fini(&blk);
    return out->overflow ? SP_ERR_LIMIT : SP_OK;
}

enum sp_err an_overview(const struct an_inc *ix, const struct sp_impact *imp,
                        struct an_text *t, size_t budget_tokens,
                        struct sp_buf *out)
{
    size_t start = out->len, budget = SP_MAX(budget_tokens, (size_t)128) * 4;
    header(ix, imp, t, out, 0);
    sp_buf_puts(out, "## Entities (names only)\n");
    struct sp_buf line;
    sp_buf_init(&line, (size_t)1 << 20);
    size_t shown = 0;
    for (size_t i = 0; i < ix->n_ents; i++) {
        const struct an_entity *e = &ix->ents[i];
        sp_buf_reset(&line);
        sp_buf_printf(&line, "[%s] %s%s%s: ", e->label, an_kind_name(e->kind),
                      e->critical ? " critical" : "",
                      e->privileged || e->vip ? " privileged" : "");
        fence(&line, e->label);
        an_text_put(t, &line, e->name);
        sp_buf_puts(&line, "\n" FENCE_CLOSE);
        if (out->len - start + line.len > budget)
            break;
        sp_buf_put(out, line.data, line.len);
        shown++;
    }
    if (shown < ix->n_ents)
        sp_buf_printf(out, "Note: %zu more entities omitted.\n",
                      ix->n_ents - shown);
    sp_buf_fini(&line);
    return out->overflow ? SP_ERR_LIMIT : SP_OK;
}

/* ---- the batch plan ----------------------------------------------------- */

size_t an_plan(const struct an_inc *ix, struct sp_arena *a,
               struct an_text *t, size_t budget_tokens, unsigned max_batches,
               struct an_scope *batches, size_t *omitted)
{
    *omitted = 0;
    if (max_batches == 0 || ix->n_alerts == 0)
        return 0;
    size_t capacity = SP_MAX(budget_tokens, (size_t)256) * 4 * 45 / 100;
    size_t n_pick = 0;
    struct pick *pick = rank_alerts(ix, NULL, &n_pick);
    size_t *cost = calloc(ix->n_alerts + 1, sizeof(*cost));
    uint32_t *chosen = sp_arena_alloc(a, (ix->n_alerts + 1) * sizeof(*chosen));
    if (!pick || !cost || !chosen) {
        free(pick);
        free(cost);
        return 0;
    }
    /* Choose by importance while the total fits max_batches batches. */
    struct sp_buf blk;
    sp_buf_init(&blk, (size_t)8 << 20);
    size_t total = 0, n_chosen = 0;
    for (size_t k = 0; k < n_pick; k++) {
        sp_buf_reset(&blk);
        alert_block(ix, &ix->alerts[pick[k].idx], t, &blk);
        size_t c = SP_MIN(blk.len, capacity);
        if (total + c > capacity * max_batches)
            break;
        cost[pick[k].idx] = c;
        total += c;
        chosen[n_chosen++] = pick[k].idx;
    }
    *omitted = n_pick - n_chosen;
    sp_buf_fini(&blk);
    free(pick);
    qsort(chosen, n_chosen, sizeof(*chosen), idx_cmp);

    /* Time-ordered packing; even out the batch sizes. */
    size_t want = (total + capacity - 1) / capacity;
    want = SP_MAX((size_t)1, SP_MIN(want, (size_t)max_batches));
    size_t target = (total + want - 1) / want;
    size_t nb = 0, i = 0;
    while (i < n_chosen && nb < max_batches) {
        struct an_scope *s = &batches[nb];
        s->alerts = &chosen[i];
        s->n_alerts = 0;
        size_t sum = 0;
        while (i < n_chosen && (s->n_alerts == 0 ||
                                (sum + cost[chosen[i]] <= capacity &&
                                 (sum < target || nb == max_batches - 1)))) {
            sum += cost[chosen[i]];
            s->n_alerts++;
            i++;
        }
        nb++;
    }
    *omitted += n_chosen - i;
    for (size_t b = 0; b < nb; b++) {
        batches[b].batch = (unsigned)b + 1;
        batches[b].batches = (unsigned)nb;
    }
    free(cost);
    return nb;
}

/* ---- public: one context ------------------------------------------------ */

enum sp_err sp_analysis_build_context(const struct sp_json *inc,
                                      const struct sp_analysis_opts *o,
                                      struct sp_analysis_context *out)
{
    memset(out, 0, sizeof(*out));
    sp_buf_init(&out->text, (size_t)16 << 20);
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct an_inc ix;
    enum sp_err e = an_index(&a, inc, o, &ix);
    if (e) {
        sp_arena_fini(&a);
        return e;
    }
    struct sp_impact imp;
    an_impact(&ix, &imp);
    out->anon = an_anon_new(&ix, o->anonymize);
    struct an_text t;
    an_text_init(&t, o, out->anon);
    struct an_ctx_stats st;
    e = an_context(&ix, &imp, &t, NULL, o->context_tokens, &out->text, &st);
    out->tokens = out->text.len / 4;
    out->n_alerts = SP_MAX(ix.n_alerts_total, ix.n_alerts);
    out->n_alerts_shown = st.alerts_shown;
    out->n_entities = SP_MAX(ix.n_ents_total, ix.n_ents);
    out->n_entities_shown = st.entities_shown;
    out->n_scripts = ix.n_scripts;
    out->n_scripts_shown = st.scripts_shown;
    out->redactions = t.redactions;
    out->injection_suspected = t.injection;
    out->over_budget = st.omitted_alerts;
    an_text_fini(&t);
    /* The anonymizer keeps copies of what it needs; the index goes. */
    sp_arena_fini(&a);
    return e;
}

void sp_analysis_context_fini(struct sp_analysis_context *ctx)
{
    if (!ctx)
        return;
    sp_buf_fini(&ctx->text);
    an_anon_free(ctx->anon);
    ctx->anon = NULL;
}
