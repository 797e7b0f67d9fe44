/*
 * bench_normalize.c - normalize-only throughput of the decode path on
 * realistic 2-6 KB Microsoft Graph alerts (and, for comparison, Sentinel
 * rows), single thread.
 *
 * The messages are generated from the repository's own fixtures
 * (tests/fixtures/alerts/graph_alert.json, graph_page.json,
 * sentinel_rows.jsonl): each copy gets its own ids, host names, IPs,
 * hashes and command lines, and a subset of the evidence chosen so that
 * sizes spread over 2-6 KB.  Then every message is decoded with
 * sp_normalize() in a per-message arena (reset between messages, as the
 * engine does), and, in a second pass, decoded and serialised with
 * sp_alert_write() (what the publish path adds).
 *
 *     build/bench/bench_normalize [seconds-per-pass]   (run from the repo root)
 *
 * Prints alerts/s and MB/s for each pass, by wall clock and by the
 * thread's CPU time (the machine may be shared).  Main thread only.
 */
#include "normalize.h"

#include <jansson.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#define N_MSGS 2000

struct corpus {
    char **msgs;
    size_t *lens;
    size_t n;
    size_t bytes;
};

/* Appends "-<i>" style variation to a string member. */
static void vary(json_t *obj, const char *key, const char *fmt, unsigned i)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return;
    char buf[512];
    snprintf(buf, sizeof(buf), fmt, json_string_value(v), i);
    json_object_set_new(obj, key, json_string(buf));
}

static void vary_hash(json_t *obj, const char *key, unsigned i)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return;
    char buf[80];
    snprintf(buf, sizeof(buf), "%s", json_string_value(v));
    size_t n = strlen(buf);
    if (n >= 8)
        snprintf(buf + n - 8, 9, "%08x", i * 2654435761u);
    json_object_set_new(obj, key, json_string(buf));
}

static json_t *graph_variant(json_t *base, json_t *extra_ev, unsigned i)
{
    json_t *a = json_deep_copy(base);
    vary(a, "id", "%s-%u", i);
    vary(a, "title", "%s (%u)", i % 37);
    json_t *ev = json_object_get(a, "evidence");
    /* Keep a size-dependent subset: 2..all evidence items. */
    size_t keep = 1 + i % 7;
    while (json_array_size(ev) > keep)
        json_array_remove(ev, json_array_size(ev) - 1);
    if (i % 3 == 0) {
        size_t k;
        json_t *x;
        json_array_foreach(extra_ev, k, x) {
            if (k < (i % 4))
                json_array_append(ev, x);
        }
    }
    size_t k;
    json_t *e;
    json_array_foreach(ev, k, e) {
        vary(e, "deviceDnsName", "ws-%2$u.%1$s", i % 500);
        vary(e, "hostName", "%s-%u", i % 500);
        vary(e, "processCommandLine", "%s -ArgumentList job%u", i);
        vary(e, "ipAddress", "%.0s10.1.%u.7", i % 250);
        vary(e, "url", "%s?session=%u", i);
        vary(e, "primaryAddress", "user%2$u-%1$s", i % 900);
        json_t *fd = json_object_get(e, "fileDetails");
        if (!fd)
            fd = json_object_get(e, "imageFile");
        if (fd) {
            vary_hash(fd, "sha256", i);
            vary_hash(fd, "sha1", i);
            vary(fd, "fileName", "%.0sdrop%u.exe", i % 64);
        }
        json_t *ua = json_object_get(e, "userAccount");
        if (ua)
            vary(ua, "accountName", "%s%u", i % 300);
    }
    return a;
}

static int add(struct corpus *c, json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        return -1;
    c->msgs[c->n] = s;
    c->lens[c->n] = strlen(s);
    c->bytes += c->lens[c->n];
    c->n++;
    return 0;
}

static int build_graph(struct corpus *c)
{
    json_error_t err;
    json_t *base = json_load_file("tests/fixtures/alerts/graph_alert.json", 0,
                                  &err);
    json_t *page = json_load_file("tests/fixtures/alerts/graph_page.json", 0,
                                  &err);
    if (!base || !page) {
        fprintf(stderr, "bench: cannot load fixtures (run from the repo "
                        "root): %s\n", err.text);
        json_decref(base);
        json_decref(page);
        return -1;
    }
    json_t *mail = json_array_get(json_object_get(page, "value"), 0);
    json_t *extra = json_object_get(mail, "evidence");
    /* Variants outside 2-6 KB are skipped (bounded: a variant of every
     * size class comes up every few tries). */
    for (unsigned i = 0; c->n < N_MSGS && i < 100 * N_MSGS; i++) {
        json_t *a = graph_variant(base, extra, i);
        char *s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
        size_t n = s ? strlen(s) : 0;
        free(s);
        if (n >= 2048 && n <= 6144)
            add(c, a);
        json_decref(a);
    }
    json_decref(base);
    json_decref(page);
    return 0;
}

static int build_sentinel(struct corpus *c)
{
    size_t len;
    struct sp_error err;
    char *text = sp_read_file("tests/fixtures/alerts/sentinel_rows.jsonl",
                              1 << 20, &len, &err);
    if (!text)
        return -1;
    char *line = strtok(text, "\n");
    json_t *rows[8];
    size_t nr = 0;
    while (line && nr < 8) {
        json_error_t jerr;
        rows[nr] = json_loads(line, 0, &jerr);
        if (rows[nr])
            nr++;
        line = strtok(NULL, "\n");
    }
    free(text);
    for (unsigned i = 0; i < N_MSGS && nr; i++) {
        json_t *r = json_deep_copy(rows[i % nr]);
        vary(r, "SystemAlertId", "%s-%u", i);
        vary(r, "VendorOriginalId", "%s-%u", i);
        add(c, r);
        json_decref(r);
    }
    for (size_t i = 0; i < nr; i++)
        json_decref(rows[i]);
    return 0;
}

/* CPU time of this thread, microseconds: on a shared machine the wall
 * clock also counts other processes' time slices. */
static int64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void run(const char *name, const struct corpus *c, bool write,
                double seconds)
{
    struct sp_normalize_opts opts;
    sp_normalize_opts_default(&opts);
    struct sp_msg msg;
    memset(&msg, 0, sizeof(msg));
    sp_arena_init(&msg.arena, (size_t)64 << 20);
    struct sp_buf out;
    sp_buf_init(&out, 0);
    size_t alerts = 0, rejects = 0, bytes = 0, out_bytes = 0;
    int64_t t0 = sp_now_us(), t1 = t0, c0 = cpu_us();
    int64_t deadline = t0 + (int64_t)(seconds * 1e6);
    while (t1 < deadline) {
        for (size_t i = 0; i < c->n; i++) {
            sp_arena_reset(&msg.arena);
            msg.alerts = NULL;
            msg.n_alerts = msg.cap_alerts = 0;
            msg.rejects = NULL;
            msg.n_rejects = msg.cap_rejects = 0;
            msg.payload = c->msgs[i];
            msg.len = c->lens[i];
            sp_normalize(&msg, &opts, "bench");
            alerts += msg.n_alerts;
            rejects += msg.n_rejects;
            bytes += msg.len;
            if (write) {
                for (size_t k = 0; k < msg.n_alerts; k++) {
                    struct sp_jw w;
                    sp_buf_reset(&out);
                    sp_jw_init(&w, &out);
                    sp_alert_write(msg.alerts[k], &w, true);
                    out_bytes += out.len;
                }
            }
        }
        t1 = sp_now_us();
    }
    double secs = (double)(t1 - t0) / 1e6;
    double cpu = (double)(cpu_us() - c0) / 1e6;
    printf("%-22s %8.0f alerts/s %7.1f MB/s wall, %8.0f alerts/s %7.1f MB/s "
           "cpu (%zu alerts, %zu rejects, avg %zu B in%s)\n",
           name, (double)alerts / secs, (double)bytes / secs / 1e6,
           (double)alerts / cpu, (double)bytes / cpu / 1e6, alerts, rejects,
           c->bytes / (c->n ? c->n : 1), write ? ", with output" : "");
    if (write && alerts)
        printf("%-28s avg %zu B out per alert (raw embedded)\n", "",
               out_bytes / alerts);
    sp_buf_fini(&out);
    sp_arena_fini(&msg.arena);
}

static void corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->msgs[i]);
    free(c->msgs);
    free(c->lens);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0)
        seconds = 2.0;
    struct corpus g = {calloc(N_MSGS, sizeof(char *)),
                       calloc(N_MSGS, sizeof(size_t)), 0, 0};
    struct corpus s = {calloc(N_MSGS, sizeof(char *)),
                       calloc(N_MSGS, sizeof(size_t)), 0, 0};
    if (!g.msgs || !g.lens || !s.msgs || !s.lens || build_graph(&g) != 0 ||
        build_sentinel(&s) != 0) {
        corpus_free(&g);
        corpus_free(&s);
        return 1;
    }
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < g.n; i++) {
        lo = SP_MIN(lo, g.lens[i]);
        hi = SP_MAX(hi, g.lens[i]);
    }
    printf("bench_normalize: %zu Graph alerts of %zu-%zu bytes, %zu Sentinel "
           "rows\n", g.n, lo, hi, s.n);
    run("graph decode", &g, false, seconds);
    run("graph decode+write", &g, true, seconds);
    run("sentinel decode", &s, false, seconds);
    corpus_free(&g);
    corpus_free(&s);
    return 0;
}
