/*
 * metrics.c - the metric registry declared in metrics.h.
 *
 * A registry is a list of families (one per metric name: name, help,
 * type) and each family a list of series (one per label set).  A series
 * is allocated once, 64-byte aligned so that counters updated by
 * different threads do not share a cache line, and never moves or goes
 * away before sp_metrics_free(): that is what makes the handles safe to
 * keep and to update without the lock.  Lists are only appended to, under
 * the registry mutex; rendering walks them under the same mutex and reads
 * the values with atomic loads.
 *
 * Histogram buckets are stored per bucket (not cumulative) and summed when
 * rendered; _count is derived from the same snapshot, so the +Inf bucket
 * and _count always agree.  Gauges and sums are doubles kept as their bit
 * patterns in 64-bit atomics and updated with compare-and-swap.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_METRICS_LINE 64  /* cache line the hot fields are aligned to */

enum sp_metric_type { SP_METRIC_COUNTER, SP_METRIC_GAUGE, SP_METRIC_HIST };

static const char *const sp_metric_type_names[] = {
    [SP_METRIC_COUNTER] = "counter",
    [SP_METRIC_GAUGE] = "gauge",
    [SP_METRIC_HIST] = "histogram",
};

static const double sp_metrics_default_bounds[] = {
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,   0.5,   1,      2.5,   5,     10,
};

struct sp_counter {
    _Atomic uint64_t v;
};

struct sp_gauge {
    _Atomic uint64_t bits;      /* a double */
};

struct sp_hist {
    _Atomic uint64_t sum_bits;  /* a double */
    size_t n;                   /* finite bounds; n + 1 buckets */
    double *bounds;
    _Atomic uint64_t *buckets;  /* per bucket, the last one is +Inf */
};

struct sp_family;

struct sp_series {
    /* First, so a handle is the series' address and the hot value sits at
     * the start of its own cache line. */
    union {
        struct sp_counter c;
        struct sp_gauge g;
        struct sp_hist h;
    } u;
    struct sp_series *next;
    char *labels;               /* "" when none */
};

struct sp_family {
    struct sp_family *next;
    enum sp_metric_type type;
    char *name;                 /* prefix included */
    char *help;
    struct sp_series *head, *tail;
};

struct sp_metrics {
    pthread_mutex_t lock;
    char *prefix;
    struct sp_family *head, *tail;
    size_t n_series;
};

static double sp_u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static uint64_t sp_d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

/* ---- registry ---------------------------------------------------------- */

static bool sp_metrics_name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':' && colon)
        return true;
    return !first && c >= '0' && c <= '9';
}

/* A metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.  Empty is valid as a prefix
 * only, which the caller decides. */
static bool sp_metrics_name_valid(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if (i >= SP_METRICS_NAME_MAX || !sp_metrics_name_char(s[i], i == 0, true))
            return false;
    }
    return true;
}

/* A label list without braces: name="value"(,name="value")*, values with
 * only the \\ \" \n escapes and no raw newline; names not reserved ("__"
 * prefix, and "le" on histograms). */
static bool sp_metrics_labels_valid(const char *s, bool hist)
{
    size_t i = 0;
    if (strlen(s) > SP_METRICS_LABELS_MAX)
        return false;
    while (s[i]) {
        size_t start = i;
        while (s[i] && s[i] != '=') {
            if (!sp_metrics_name_char(s[i], i == start, false))
                return false;
            i++;
        }
        size_t nlen = i - start;
        if (nlen == 0 || s[i] != '=' || s[i + 1] != '"')
            return false;
        if (nlen >= 2 && s[start] == '_' && s[start + 1] == '_')
            return false;
        if (hist && nlen == 2 && s[start] == 'l' && s[start + 1] == 'e')
            return false;
        i += 2;
        while (s[i] != '"') {
            if (s[i] == '\0' || s[i] == '\n')
                return false;
            if (s[i] == '\\') {
                if (s[i + 1] != '\\' && s[i + 1] != '"' && s[i + 1] != 'n')
                    return false;
                i++;
            }
            i++;
        }
        i++;
        if (s[i] == ',' && s[i + 1] != '\0')
            i++;
        else if (s[i] != '\0')
            return false;
    }
    return true;
}

struct sp_metrics *sp_metrics_new(const char *prefix)
{
    if (!prefix)
        prefix = "";
    if (!sp_metrics_name_valid(prefix))
        return NULL;
    struct sp_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->prefix = strdup(prefix);
    if (!m->prefix || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->prefix);
        free(m);
        return NULL;
    }
    return m;
}

static void sp_series_free(struct sp_series *s, enum sp_metric_type type)
{
    if (!s)
        return;
    if (type == SP_METRIC_HIST) {
        free(s->u.h.bounds);
        free((void *)s->u.h.buckets);
    }
    free(s->labels);
    free(s);
}

static void sp_family_free(struct sp_family *f)
{
    if (!f)
        return;
    struct sp_series *s = f->head;
    while (s) {
        struct sp_series *next = s->next;
        sp_series_free(s, f->type);
        s = next;
    }
    free(f->name);
    free(f->help);
    free(f);
}

void sp_metrics_free(struct sp_metrics *m)
{
    if (!m)
        return;
    struct sp_family *f = m->head;
    while (f) {
        struct sp_family *next = f->next;
        sp_family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m->prefix);
    free(m);
}

static void *sp_metrics_aligned_calloc(size_t size)
{
    size = (size + SP_METRICS_LINE - 1) & ~(size_t)(SP_METRICS_LINE - 1);
    void *p = aligned_alloc(SP_METRICS_LINE, size);
    if (p)
        memset(p, 0, size);
    return p;
}

/* Fills a new histogram series' bounds and buckets; false on bad bounds
 * or allocation failure. */
static bool sp_hist_init(struct sp_hist *h, const double *bounds, size_t n)
{
    if (!bounds) {
        bounds = sp_metrics_default_bounds;
        n = SP_ARRAY_SIZE(sp_metrics_default_bounds);
    }
    if (n > 0 && isinf(bounds[n - 1]) && bounds[n - 1] > 0)
        n--;
    if (n == 0 || n > SP_METRICS_MAX_BUCKETS)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return false;
    }
    h->bounds = malloc(n * sizeof(double));
    h->buckets = sp_metrics_aligned_calloc((n + 1) * sizeof(h->buckets[0]));
    if (!h->bounds || !h->buckets)
        return false;
    memcpy(h->bounds, bounds, n * sizeof(double));
    h->n = n;
    return true;
}

/* Finds or creates the series (name, labels) of the given type.  Returns
 * the series or NULL (see metrics.h for when). */
static struct sp_series *sp_metrics_get(struct sp_metrics *m, const char *name,
                                        const char *help, const char *labels,
                                        enum sp_metric_type type,
                                        const double *bounds, size_t n_bounds)
{
    if (!m || !name || !*name)
        return NULL;
    if (!labels)
        labels = "";
    char full[SP_METRICS_NAME_MAX + 1];
    int n = snprintf(full, sizeof(full), "%s%s", m->prefix, name);
    if (n < 0 || (size_t)n >= sizeof(full) || !sp_metrics_name_valid(full) ||
        !sp_metrics_labels_valid(labels, type == SP_METRIC_HIST))
        return NULL;

    struct sp_series *found = NULL, *s = NULL;
    struct sp_family *f, *nf = NULL;
    pthread_mutex_lock(&m->lock);
    for (f = m->head; f; f = f->next) {
        if (strcmp(f->name, full) == 0)
            break;
    }
    if (f && f->type != type)
        goto out;
    for (struct sp_series *it = f ? f->head : NULL; it; it = it->next) {
        if (strcmp(it->labels, labels) == 0) {
            found = it;
            goto out;
        }
    }
    if (m->n_series >= SP_METRICS_MAX_SERIES)
        goto out;

    s = sp_metrics_aligned_calloc(sizeof(*s));
    if (!s)
        goto out;
    s->labels = strdup(labels);
    if (!s->labels ||
        (type == SP_METRIC_HIST && !sp_hist_init(&s->u.h, bounds, n_bounds)))
        goto out;
    if (!f) {
        nf = calloc(1, sizeof(*nf));
        if (!nf)
            goto out;
        nf->type = type;
        nf->name = strdup(full);
        nf->help = strdup(help ? help : "");
        if (!nf->name || !nf->help)
            goto out;
        if (m->tail)
            m->tail->next = nf;
        else
            m->head = nf;
        m->tail = f = nf;
        nf = NULL;
    }
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    m->n_series++;
    found = s;
    s = NULL;
out:
    pthread_mutex_unlock(&m->lock);
    sp_series_free(s, type);
    sp_family_free(nf);
    return found;
}

struct sp_counter *sp_metrics_counter(struct sp_metrics *m, const char *name,
                                      const char *help, const char *labels)
{
    struct sp_series *s =
        sp_metrics_get(m, name, help, labels, SP_METRIC_COUNTER, NULL, 0);
    return s ? &s->u.c : NULL;
}

struct sp_gauge *sp_metrics_gauge(struct sp_metrics *m, const char *name,
                                  const char *help, const char *labels)
{
    struct sp_series *s =
        sp_metrics_get(m, name, help, labels, SP_METRIC_GAUGE, NULL, 0);
    return s ? &s->u.g : NULL;
}

struct sp_hist *sp_metrics_hist(struct sp_metrics *m, const char *name,
                                const char *help, const char *labels,
                                const double *bounds, size_t n_bounds)
{
    struct sp_series *s = sp_metrics_get(m, name, help, labels,
                                         SP_METRIC_HIST, bounds, n_bounds);
    return s ? &s->u.h : NULL;
}

/* ---- updates ----------------------------------------------------------- */

void sp_counter_add(struct sp_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t sp_counter_get(const struct sp_counter *c)
{
    if (!c)
        return 0;
    return atomic_load_explicit(&((struct sp_counter *)c)->v,
                                memory_order_relaxed);
}

void sp_gauge_set(struct sp_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, sp_d2u(v), memory_order_relaxed);
}

/* Adds d to the double stored in *bits. */
static void sp_metrics_add_double(_Atomic uint64_t *bits, double d)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    /* A failed exchange reloads `old`; each retry means another thread
     * made progress, so this ends. */
    while (!atomic_compare_exchange_weak_explicit(
        bits, &old, sp_d2u(sp_u2d(old) + d), memory_order_relaxed,
        memory_order_relaxed))
        ;
}

void sp_gauge_add(struct sp_gauge *g, double d)
{
    if (g)
        sp_metrics_add_double(&g->bits, d);
}

double sp_gauge_get(const struct sp_gauge *g)
{
    if (!g)
        return 0;
    return sp_u2d(atomic_load_explicit(&((struct sp_gauge *)g)->bits,
                                       memory_order_relaxed));
}

void sp_hist_observe(struct sp_hist *h, double v)
{
    if (!h || isnan(v))
        return;
    /* First bound >= v; n (the +Inf bucket) when none is. */
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    sp_metrics_add_double(&h->sum_bits, v);
}

void sp_hist_observe_since_us(struct sp_hist *h, int64_t start_us)
{
    if (h)
        sp_hist_observe(h, (double)(sp_now_us() - start_us) / 1e6);
}

/* Copies the per-bucket counts into out[0..n] and returns their total. */
static uint64_t sp_hist_snapshot(const struct sp_hist *h, uint64_t *out)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->n; i++) {
        out[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        total += out[i];
    }
    return total;
}

uint64_t sp_hist_count(const struct sp_hist *h)
{
    uint64_t snap[SP_METRICS_MAX_BUCKETS + 1];
    return h ? sp_hist_snapshot(h, snap) : 0;
}

double sp_hist_sum(const struct sp_hist *h)
{
    if (!h)
        return 0;
    return sp_u2d(atomic_load_explicit(&((struct sp_hist *)h)->sum_bits,
                                       memory_order_relaxed));
}

double sp_hist_quantile(const struct sp_hist *h, double q)
{
    uint64_t snap[SP_METRICS_MAX_BUCKETS + 1];
    if (!h)
        return NAN;
    uint64_t total = sp_hist_snapshot(h, snap);
    if (total == 0 || isnan(q))
        return NAN;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n; i++) {
        cum += snap[i];
        if (snap[i] == 0 || (double)cum < rank)
            continue;
        if (i == h->n)
            return h->bounds[h->n - 1];
        double upper = h->bounds[i];
        double lower = i > 0 ? h->bounds[i - 1] : (upper > 0 ? 0 : upper);
        double in = rank - (double)(cum - snap[i]);
        return lower + (upper - lower) * (in / (double)snap[i]);
    }
    return h->bounds[h->n - 1];    /* unreachable: cum == total >= rank */
}

/* ---- rendering --------------------------------------------------------- */

/* The shortest of %.15g..%.17g that reads back as the same double, so
 * 0.1 renders as "0.1"; Prometheus spellings for the special values. */
static void sp_metrics_fmt_double(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static void sp_metrics_put_help(struct sp_buf *out, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            sp_buf_puts(out, "\\\\");
        else if (*p == '\n')
            sp_buf_puts(out, "\\n");
        else
            sp_buf_putc(out, *p);
    }
}

/* name{labels[,extra]} — braces only when there is a label. */
static void sp_metrics_put_name(struct sp_buf *out, const char *name,
                                const char *suffix, const char *labels,
                                const char *extra)
{
    sp_buf_puts(out, name);
    sp_buf_puts(out, suffix);
    if (!*labels && !extra)
        return;
    sp_buf_putc(out, '{');
    sp_buf_puts(out, labels);
    if (extra) {
        if (*labels)
            sp_buf_putc(out, ',');
        sp_buf_puts(out, extra);
    }
    sp_buf_putc(out, '}');
}

static void sp_metrics_render_hist(struct sp_buf *out, const char *name,
                                   const struct sp_series *s)
{
    const struct sp_hist *h = &s->u.h;
    uint64_t snap[SP_METRICS_MAX_BUCKETS + 1];
    uint64_t total = sp_hist_snapshot(h, snap);
    uint64_t cum = 0;
    char num[40], le[64];
    for (size_t i = 0; i <= h->n; i++) {
        cum += snap[i];
        if (i < h->n) {
            sp_metrics_fmt_double(num, sizeof(num), h->bounds[i]);
            snprintf(le, sizeof(le), "le=\"%s\"", num);
        } else {
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        }
        sp_metrics_put_name(out, name, "_bucket", s->labels, le);
        sp_buf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    sp_metrics_fmt_double(num, sizeof(num), sp_hist_sum(h));
    sp_metrics_put_name(out, name, "_sum", s->labels, NULL);
    sp_buf_printf(out, " %s\n", num);
    sp_metrics_put_name(out, name, "_count", s->labels, NULL);
    sp_buf_printf(out, " %llu\n", (unsigned long long)total);
}

enum sp_err sp_metrics_render(struct sp_metrics *m, struct sp_buf *out)
{
    if (!m || !out)
        return SP_ERR_INVALID;
    char num[40];
    pthread_mutex_lock(&m->lock);
    for (const struct sp_family *f = m->head; f && !out->overflow;
         f = f->next) {
        sp_buf_printf(out, "# HELP %s ", f->name);
        sp_metrics_put_help(out, f->help);
        sp_buf_printf(out, "\n# TYPE %s %s\n", f->name,
                      sp_metric_type_names[f->type]);
        for (const struct sp_series *s = f->head; s && !out->overflow;
             s = s->next) {
            switch (f->type) {
            case SP_METRIC_COUNTER:
                sp_metrics_put_name(out, f->name, "", s->labels, NULL);
                sp_buf_printf(out, " %llu\n",
                              (unsigned long long)sp_counter_get(&s->u.c));
                break;
            case SP_METRIC_GAUGE:
                sp_metrics_fmt_double(num, sizeof(num), sp_gauge_get(&s->u.g));
                sp_metrics_put_name(out, f->name, "", s->labels, NULL);
                sp_buf_printf(out, " %s\n", num);
                break;
            case SP_METRIC_HIST:
                sp_metrics_render_hist(out, f->name, s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    return out->overflow ? SP_ERR_LIMIT : SP_OK;
}

/* ---- label escaping ---------------------------------------------------- */

enum sp_err sp_metrics_label_escape(const char *value, char *out, size_t n)
{
    if (!out || n == 0)
        return SP_ERR_LIMIT;
    const unsigned char *s = (const unsigned char *)(value ? value : "");
    size_t o = 0;
    for (size_t i = 0; s[i];) {
        const char *rep = (const char *)s + i;
        size_t rlen = 1, step = 1;
        unsigned char c = s[i];
        if (c == '\\') {
            rep = "\\\\";
            rlen = 2;
        } else if (c == '"') {
            rep = "\\\"";
            rlen = 2;
        } else if (c == '\n') {
            rep = "\\n";
            rlen = 2;
        } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
            rep = "\xEF\xBF\xBD";
            rlen = 3;
        } else if (c >= 0x80) {
            size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            size_t have = strnlen((const char *)s + i, want);
            if (have == want && sp_utf8_valid((const char *)s + i, want)) {
                rlen = step = want;
            } else {
                rep = "\xEF\xBF\xBD";
                rlen = 3;
            }
        }
        if (rlen >= n - o) {
            out[o] = '\0';
            return SP_ERR_LIMIT;
        }
        memcpy(out + o, rep, rlen);
        o += rlen;
        i += step;
    }
    out[o] = '\0';
    return SP_OK;
}
