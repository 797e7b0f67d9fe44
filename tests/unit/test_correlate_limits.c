/*
 * test_correlate_limits.c - the correlate stage with alerts as large as
 * the decoder can be told to let through: an incident whose alerts carry
 * long titles keeps being published (every snapshot is cut to fit
 * correlate.snapshot_max, down to a minimal form with a bound for any
 * input), and one alert or Defender row too large to correlate goes to
 * the DLQ alone while the rest of its batch correlates.
 *
 * Against a real redis-server; skips (with a message) when there is none.
 */
#include "t.h"

#include <unistd.h>

#include "correlate_int.h"
#include "correlate_test.h"

#define SKIP_WITHOUT_REDIS()                                                \
    do {                                                                    \
        const char *why_;                                                   \
        if (!ct_redis_up(&why_))                                            \
            T_SKIP(why_);                                                   \
    } while (0)

#define A(...) ((struct ct_alert){__VA_ARGS__})

#define CUT_MARK "\xe2\x80\xa6"        /* what ends a cut string */

static bool outbox_empty(struct ct *t)
{
    return sp_test_redis_int(t->redis, NULL, "ZCARD sp:{t:t1}:out") == 0;
}

/* bytes of text: head, then "é" (two bytes each) up to n, so a cut at
 * most byte counts lands inside a character (malloc'd). */
static char *long_text(const char *head, size_t n)
{
    char *s = malloc(n + 1);
    size_t h = strlen(head), o = h;
    memcpy(s, head, h);
    while (o + 2 <= n) {
        s[o++] = '\xc3';
        s[o++] = '\xa9';
    }
    s[o] = '\0';
    return s;
}

/* Whether s ends with the cut mark. */
static bool cut_marked(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 3 && strcmp(s + n - 3, CUT_MARK) == 0;
}

/* Whether the snapshots of incident inc published so far validate
 * against schema/incident.schema.json; true (not checked) where the
 * schema or python3-jsonschema is not at hand. */
static bool schema_valid(struct ct *t, const char *inc)
{
    if (access("schema/incident.schema.json", R_OK) != 0 ||
        access("tests/tools/schema_check.py", R_OK) != 0 ||
        system("python3 -c 'import jsonschema' 2>/dev/null") != 0)
        return true;
    char path[] = "/tmp/socpilot-limits-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return false;
    for (size_t i = 0; i < t->sink.n; i++)
        if (strcmp(t->sink.outs[i].topic, "incidents") == 0 &&
            strcmp(t->sink.outs[i].key, inc) == 0)
            fprintf(f, "%s\n", t->sink.outs[i].value);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "python3 tests/tools/schema_check.py --require "
             "--schema schema/incident.schema.json %s >/dev/null", path);
    bool ok = system(cmd) == 0;
    unlink(path);
    return ok;
}

/* ---- every snapshot fits ------------------------------------------------ */

#define N_LONG 20
#define LONG_TITLE 60000

/*
 * N_LONG alerts with 60 KB titles join one incident through a host, one
 * batch each: every version 1..N_LONG is published, in order, none larger
 * than snapshot_max (max), the last one cut and still counting every
 * alert; and nothing is left in the outbox.
 */
static void long_titles(const char *snapshot_max, size_t max)
{
    const char *sets[] = {snapshot_max, NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    char ids[N_LONG][16], head[32];
    char *titles[N_LONG];
    char inc[80] = "";
    for (int i = 0; i < N_LONG; i++) {
        snprintf(ids[i], sizeof(ids[i]), "long%02d", i);
        snprintf(head, sizeof(head), "Alert %02d ", i);
        titles[i] = long_text(head, LONG_TITLE);
        struct ct_res r;
        T_EQ_INT(ct_one(&t, &A(.id = ids[i], .ents = "host:target", .t = i,
                               .title = titles[i]), &r), SP_OK);
        T_EQ_INT(r.version, i + 1);
        if (i == 0)
            snprintf(inc, sizeof(inc), "%s", r.inc);
        T_EQ_STR(r.inc, inc);
    }
    /* Every version went out, in order, each within snapshot_max. */
    ct_settle(&t);
    long long next = 1;
    size_t largest = 0;
    for (size_t i = 0; i < t.sink.n; i++) {
        struct sp_test_out *o = &t.sink.outs[i];
        if (strcmp(o->topic, "incidents") != 0 || strcmp(o->key, inc) != 0)
            continue;
        T_EQ_INT(atoll(o->version), next);
        next++;
        largest = SP_MAX(largest, o->vlen);
        T_OK(o->vlen <= max);
        json_t *d = json_loads(o->value, 0, NULL);  /* valid UTF-8 too */
        T_OK(d != NULL);
        json_decref(d);
    }
    T_EQ_INT(next, N_LONG + 1);
    T_OK(largest > max / 2);            /* the cut kept what fitted */
    json_t *last = ct_latest(&t, inc);
    T_OK(last != NULL);
    T_EQ_INT(ct_jint(last, "version"), N_LONG);
    T_OK(json_is_true(json_object_get(last, "truncated")));
    T_EQ_INT(ct_jint(last, "alerts_total"), N_LONG);
    json_t *alerts = json_object_get(last, "alerts");
    T_OK(json_array_size(alerts) >= 1);
    size_t k;
    json_t *a;
    json_array_foreach(alerts, k, a) {
        const char *title = ct_jstr(a, "title");
        T_OK(cut_marked(title));
        T_OK(title && strlen(title) < 2000);
    }
    /* The newest alert is among those listed. */
    a = json_array_get(alerts, json_array_size(alerts) - 1);
    T_EQ_STR(ct_jstr(a, "id"), ids[N_LONG - 1]);
    json_decref(last);
    T_OK(schema_valid(&t, inc));
    /* Acknowledged: nothing waits in the outbox. */
    T_OK(ct_tick_until(&t, outbox_empty, 3000));
    for (int i = 0; i < N_LONG; i++)
        free(titles[i]);
    ct_close(&t);
}

static void test_long_titles_published(void)
{
    SKIP_WITHOUT_REDIS();
    long_titles("correlate.snapshot_max=900KiB", (size_t)900 << 10);
}

/* The same at the smallest snapshot_max: alerts are listed with shorter
 * titles, the latest ones only when all do not fit. */
static void test_long_titles_smallest_max(void)
{
    SKIP_WITHOUT_REDIS();
    long_titles("correlate.snapshot_max=16KiB", CORR_SNAPSHOT_MIN);
}

/*
 * The minimal form fits the smallest snapshot_max whatever the incident
 * holds: every string of its meta as long as Redis keeps it and made of
 * bytes that escape to six, many merged and provider incidents, a large
 * analysis.
 */
static void test_minimal_form_bound(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    size_t big = 100000;
    char *ctl = malloc(big + 1);
    memset(ctl, '\x01', big);
    ctl[big] = '\0';
    char pids[3][16];
    struct ct_res r[3];
    for (int i = 0; i < 3; i++) {
        snprintf(pids[i], sizeof(pids[i]), "p%d", i);
        T_EQ_INT(ct_one(&t, &A(.id = pids[i], .ents = "host:h", .t = i,
                               .title = ctl, .pid = pids[i]),
                        &r[i]), SP_OK);
    }
    /* Many merged ids, each long. */
    size_t nmg = 200, idl = 1000;
    char *mg = malloc(nmg * (idl + 1) + 1);
    for (size_t i = 0; i < nmg; i++) {
        memset(mg + i * (idl + 1), '\x02', idl);
        mg[i * (idl + 1) + idl] = ',';
    }
    mg[nmg * (idl + 1) - 1] = '\0';
    char *an = malloc(big + 3);
    an[0] = '"';
    memset(an + 1, 'a', big);
    an[big + 1] = '"';
    an[big + 2] = '\0';
    char meta[128];
    snprintf(meta, sizeof(meta), "sp:{t:t1}:i:%s", r[0].inc);
    static const char *const fields[] = {"ten", "ti", "rule", "fl", "prev",
                                         "cont", "mi", "cb", "st"};
    for (size_t f = 0; f < SP_ARRAY_SIZE(fields); f++)
        freeReplyObject(sp_test_redis_cmd(t.redis, "HSET %s %s %b", meta,
                                          fields[f], ctl, big));
    freeReplyObject(sp_test_redis_cmd(t.redis, "HSET %s mg %s", meta, mg));
    freeReplyObject(sp_test_redis_cmd(t.redis, "HSET %s an %s", meta, an));
    redisReply *rep = ct_snapshot_reply(r[0].inc, 100);
    T_OK(rep != NULL);
    struct sp_buf b;
    sp_buf_init(&b, 0);
    int64_t version = 0;
    T_EQ_INT(corr_incident_write(rep, r[0].inc, &b, CORR_SNAPSHOT_MIN,
                                 &version, NULL), SP_OK);
    T_EQ_INT(version, 3);
    T_OK(b.len > 0 && b.len <= CORR_SNAPSHOT_MIN);
    json_t *d = b.data ? json_loads(b.data, 0, NULL) : NULL;
    T_OK(d != NULL);
    T_OK(json_is_true(json_object_get(d, "truncated")));
    T_EQ_INT(ct_jint(d, "alerts_total"), 3);
    T_EQ_INT(ct_jint(d, "version"), 3);
    T_EQ_STR(ct_jstr(d, "id"), r[0].inc);
    T_OK(cut_marked(ct_jstr(d, "title")));
    T_EQ_INT(json_array_size(json_object_get(d, "alerts")), 0);
    T_OK(json_is_null(json_object_get(d, "analysis")));
    T_OK(json_array_size(json_object_get(json_object_get(d, "links"),
                                         "merged")) <= 4);
    json_decref(d);
    sp_buf_fini(&b);
    freeReplyObject(rep);
    free(an);
    free(mg);
    free(ctl);
    ct_close(&t);
}

/* ---- one item too large ------------------------------------------------- */

#define HUGE_TITLE ((size_t)5 << 20)

/* An alert whose summary is larger than the stage writes for one alert
 * (a 5 MB title, as decode.max_string may allow) between two others: it
 * is rejected with the reason, they correlate, the batch succeeds. */
static void test_oversized_alert_rejected(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    char *title = long_text("Huge ", HUGE_TITLE);
    struct ct_alert in[3] = {
        A(.id = "small1", .ents = "host:x1", .t = 1),
        A(.id = "huge", .ents = "host:x1", .t = 2, .title = title),
        A(.id = "small2", .ents = "host:x1", .t = 3)};
    struct ct_res r[3];
    T_EQ_INT(ct_run(&t, in, 3, r), SP_OK);
    T_EQ_INT((long long)r[1].rejects, 1);
    T_OK(!r[1].present);
    T_EQ_STR(r[1].reason, "too_large");
    T_CONTAINS(r[1].detail, "summary is larger than");
    T_EQ_INT((long long)(r[0].rejects + r[2].rejects), 0);
    T_OK(r[0].present && r[2].present);
    T_OK(r[0].inc[0] != '\0');
    T_EQ_STR(r[2].inc, r[0].inc);
    json_t *inc = ct_latest(&t, r[0].inc);
    T_EQ_INT(ct_jint(inc, "alerts_total"), 2);
    json_decref(inc);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"rejected\"}"), 1);
    /* A replay (a restart) goes through again the same way. */
    T_EQ_INT(ct_run(&t, in, 3, r), SP_OK);
    T_EQ_STR(r[1].reason, "too_large");
    T_OK(r[0].present && r[2].present);
    free(title);
    ct_close(&t);
}

/* The same for a Defender AlertInfo row too large to store. */
static void test_oversized_row_rejected(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    char *title = long_text("Huge row ", HUGE_TITLE);
    struct ct_alert in[3] = {
        A(.id = "small3", .ents = "host:x2", .t = 1),
        A(.id = "defender-streaming:huge", .part = SP_PART_INFO, .t = 2,
          .title = title, .source = "defender-streaming"),
        A(.id = "small4", .ents = "host:x2", .t = 3)};
    struct ct_res r[3];
    T_EQ_INT(ct_run(&t, in, 3, r), SP_OK);
    T_EQ_INT((long long)r[1].rejects, 1);
    T_EQ_STR(r[1].reason, "too_large");
    T_CONTAINS(r[1].detail, "Defender row is larger than");
    T_EQ_INT((long long)(r[0].rejects + r[2].rejects), 0);
    T_OK(r[0].present && r[2].present);
    T_EQ_STR(r[2].inc, r[0].inc);
    /* Nothing of it was stored. */
    T_EQ_INT(sp_test_redis_int(t.redis, NULL,
                               "EXISTS sp:{t:t1}:asm:defender-streaming:huge"), 0);
    free(title);
    ct_close(&t);
}

/* correlate.defender.max_rows: rows per Defender alert, the same before
 * and after its first emission (the hash's bookkeeping fields t0, rev and,
 * once emitted, em are no rows).  With max_rows=2, the third row is
 * rejected. */
static void test_defender_max_rows(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.max_rows=2", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:mr1";
    struct ct_alert in[3] = {
        A(.id = id, .part = SP_PART_INFO, .t = 1, .title = "T",
          .source = "defender-streaming"),
        A(.id = id, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:m1",
          .source = "defender-streaming", .raw = "{\"e\":1}"),
        A(.id = id, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:m2",
          .source = "defender-streaming", .raw = "{\"e\":2}")};
    struct ct_res r[3];
    for (int i = 0; i < 3; i++)
        T_EQ_INT(ct_run(&t, &in[i], 1, &r[i]), SP_OK);
    T_EQ_INT((long long)(r[0].rejects + r[1].rejects), 0);
    T_EQ_INT((long long)r[2].rejects, 1);
    T_EQ_STR(r[2].reason, "too_many_rows");
    ct_close(&t);
}

/* The AlertInfo row, the one that names the alert (title, severity,
 * times), is kept whatever the evidence took of max_rows and max_bytes:
 * rows arrive in any order, and it used to go to the DLQ when it came
 * after evidence that had filled either, the alert then going out as
 * "Defender alert <id>" of unknown severity.  Evidence past them still
 * goes to the DLQ. */
static void test_defender_info_past_limits(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.max_rows=2",
                          "correlate.defender.max_bytes=64KiB", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    static char raw[60000];
    memcpy(raw, "{\"x\":\"", 6);
    memset(raw + 6, 'a', sizeof(raw) - 16);
    strcpy(raw + sizeof(raw) - 10, "\"}");
    static char iraw[8000];     /* with raw: past 64 KiB */
    memcpy(iraw, "{\"x\":\"", 6);
    memset(iraw + 6, 'b', sizeof(iraw) - 16);
    strcpy(iraw + sizeof(iraw) - 10, "\"}");
    /* Past max_bytes: one big evidence row, then the AlertInfo row. */
    const char *id1 = "defender-streaming:ip1";
    struct ct_alert a1[3] = {
        A(.id = id1, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:i1",
          .source = "defender-streaming", .raw = raw),
        A(.id = id1, .part = SP_PART_INFO, .t = 1, .title = "Named",
          .source = "defender-streaming", .raw = iraw),
        A(.id = id1, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:i2",
          .source = "defender-streaming", .raw = "{\"e\":2}"),
    };
    struct ct_res r[3];
    for (int i = 0; i < 3; i++)
        T_EQ_INT(ct_run(&t, &a1[i], 1, &r[i]), SP_OK);
    T_EQ_INT((long long)(r[0].rejects + r[1].rejects), 0);
    T_EQ_INT((long long)r[2].rejects, 1);           /* evidence: DLQ */
    T_EQ_STR(r[2].reason, "too_many_rows");
    /* Past max_rows: two evidence rows, then the AlertInfo row. */
    const char *id2 = "defender-streaming:ip2";
    struct ct_alert a2[4] = {
        A(.id = id2, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:i3",
          .source = "defender-streaming", .raw = "{\"e\":3}"),
        A(.id = id2, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:i4",
          .source = "defender-streaming", .raw = "{\"e\":4}"),
        A(.id = id2, .part = SP_PART_INFO, .t = 1, .title = "Named too",
          .sev = SP_SEV_HIGH, .source = "defender-streaming"),
        A(.id = id2, .part = SP_PART_EVIDENCE, .t = 1, .ents = "host:i5",
          .source = "defender-streaming", .raw = "{\"e\":5}"),
    };
    struct ct_res r2[4];
    for (int i = 0; i < 4; i++)
        T_EQ_INT(ct_run(&t, &a2[i], 1, &r2[i]), SP_OK);
    T_EQ_INT((long long)(r2[0].rejects + r2[1].rejects + r2[2].rejects), 0);
    T_EQ_INT((long long)r2[3].rejects, 1);
    ct_close(&t);
}

int main(void)
{
    t_prog = "test_correlate_limits";
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    T_RUN(test_long_titles_published);
    T_RUN(test_long_titles_smallest_max);
    T_RUN(test_minimal_form_bound);
    T_RUN(test_oversized_alert_rejected);
    T_RUN(test_oversized_row_rejected);
    T_RUN(test_defender_max_rows);
    T_RUN(test_defender_info_past_limits);
    return t_done();
}
