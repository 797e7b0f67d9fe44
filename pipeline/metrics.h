/*
 * metrics.h - counters, gauges and histograms, rendered in the Prometheus
 * text exposition format 0.0.4 (served by http.c on /metrics).
 *
 * Owns: a registry (struct sp_metrics) and every metric registered in it.
 * Handles returned by the registration calls are borrowed and live as
 * long as the registry; register once at set-up and keep the handle.
 *
 * Threads: updates (sp_counter_add, sp_gauge_set, sp_hist_observe...)
 * are lock-free atomics and may come from any thread.  Registration and
 * rendering take the registry's mutex and may also come from any thread.
 * Every update function accepts NULL (a metric that failed to register
 * costs nothing and breaks nothing).
 */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"

struct sp_metrics;
struct sp_counter;
struct sp_gauge;
struct sp_hist;

/* Bounds: series per registry, buckets per histogram, name length. */
#define SP_METRICS_MAX_SERIES 10000
#define SP_METRICS_MAX_BUCKETS 64
#define SP_METRICS_NAME_MAX 200
#define SP_METRICS_LABELS_MAX 1024

/* Returns a new registry (sp_metrics_free()) or NULL on allocation
 * failure or when prefix is not a valid metric-name start.  prefix (for
 * example "socpilot_") is prepended to every name; NULL = none. */
struct sp_metrics *sp_metrics_new(const char *prefix);
void sp_metrics_free(struct sp_metrics *m);

/*
 * Registration.  Returns a borrowed handle that lives as long as m; the
 * same (name, labels) returns the same handle.  NULL when: the name is
 * not a valid Prometheus metric name, the labels are not a well-formed
 * label list, the name is already registered with another type, or the
 * registry holds SP_METRICS_MAX_SERIES series.
 *
 * labels: NULL or a label list without braces, e.g.
 * "stage=\"decode.0\",reason=\"not_json\"".  Callers pass trusted,
 * already-escaped text (see sp_metrics_label_escape() for dynamic values)
 * and always the same label order for one series.  help: the first
 * registration of a name sets it; NULL = empty.
 */
struct sp_counter *sp_metrics_counter(struct sp_metrics *m, const char *name,
                                      const char *help, const char *labels);
struct sp_gauge *sp_metrics_gauge(struct sp_metrics *m, const char *name,
                                  const char *help, const char *labels);
/* Histogram with cumulative buckets, _sum and _count.  bounds: strictly
 * increasing finite upper bounds (copied; a trailing +Inf is dropped),
 * at most SP_METRICS_MAX_BUCKETS; NULL = the default latency buckets, in
 * seconds: 0.0001 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5
 * 1 2.5 5 10.  Re-registering an existing (name, labels) returns the
 * existing histogram whatever the bounds. */
struct sp_hist *sp_metrics_hist(struct sp_metrics *m, const char *name,
                                const char *help, const char *labels,
                                const double *bounds, size_t n_bounds);

void sp_counter_add(struct sp_counter *c, uint64_t n);
static inline void sp_counter_inc(struct sp_counter *c)
{
    sp_counter_add(c, 1);
}
uint64_t sp_counter_get(const struct sp_counter *c);     /* NULL -> 0 */

void sp_gauge_set(struct sp_gauge *g, double v);
void sp_gauge_add(struct sp_gauge *g, double d);
double sp_gauge_get(const struct sp_gauge *g);           /* NULL -> 0 */

/* Counts v into the first bucket whose bound is >= v.  NaN is ignored. */
void sp_hist_observe(struct sp_hist *h, double v);
/* Observes the time since start_us (an sp_now_us() value) in seconds. */
void sp_hist_observe_since_us(struct sp_hist *h, int64_t start_us);
uint64_t sp_hist_count(const struct sp_hist *h);
double sp_hist_sum(const struct sp_hist *h);
/* Estimate of the q-quantile (q clamped to [0, 1]) by linear
 * interpolation inside the bucket that holds it, like Prometheus'
 * histogram_quantile(); the largest finite bound when it falls in the
 * +Inf bucket; NaN when nothing was observed.  For logs and benchmarks. */
double sp_hist_quantile(const struct sp_hist *h, double q);

/* Appends every metric to out, grouped by name (registration order) with
 * one # HELP / # TYPE per name.  Returns SP_ERR_LIMIT when out reached its
 * maximum (out then holds a cut exposition that must not be served). */
enum sp_err sp_metrics_render(struct sp_metrics *m, struct sp_buf *out);

/* Escapes a label *value* for use between double quotes: backslash,
 * double quote and newline are escaped; other control characters and
 * invalid UTF-8 become U+FFFD.  Writes a NUL-terminated string into
 * out[0..n); returns SP_ERR_LIMIT when it does not fit (out then holds the
 * longest prefix that ends on a whole escaped character). */
enum sp_err sp_metrics_label_escape(const char *value, char *out, size_t n);

#endif /* SP_METRICS_H */
