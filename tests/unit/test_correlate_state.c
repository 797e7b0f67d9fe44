/*
 * test_correlate_state.c - the correlate stage's state under stress:
 * determinism (same input, same order, same incidents; two instances on
 * two threads give the grouping of one), at-least-once (a batch applied
 * in Redis whose outputs failed is republished on replay and by outbox
 * recovery in another instance), Redis killed and restarted mid-stream
 * with persistence (nothing lost, every alert in exactly one incident,
 * not ready while down), and Defender AlertInfo/AlertEvidence assembly
 * (settle delay, durable until acknowledged, late evidence, replays).
 *
 * Skips (with a message) when redis-server is not installed.
 */
#include "t.h"

#include "correlate_test.h"

#define SKIP_WITHOUT_REDIS()                                                \
    do {                                                                    \
        const char *why_;                                                   \
        if (!ct_redis_up(&why_))                                            \
            T_SKIP(why_);                                                   \
    } while (0)

#define A(...) ((struct ct_alert){__VA_ARGS__})

/* ---- a reproducible alert stream ------------------------------------------ */

struct gen {
    struct ct_alert *alerts;
    char (*ids)[24];
    char (*ents)[128];
    int n;
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* n alerts, 1-2 entities each from pools of hosts, accounts and IPs, 30 s
 * apart: a few hundred incidents with chains and bridges. */
static void gen_make(struct gen *g, int n, uint64_t seed)
{
    g->n = n;
    g->alerts = calloc((size_t)n, sizeof(*g->alerts));
    g->ids = calloc((size_t)n, sizeof(*g->ids));
    g->ents = calloc((size_t)n, sizeof(*g->ents));
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        snprintf(g->ids[i], sizeof(g->ids[i]), "gen:%d", i);
        int k = 1 + (int)(rng_next(&s) % 2);
        size_t o = 0;
        for (int j = 0; j < k; j++) {
            uint64_t r = rng_next(&s);
            switch (r % 3) {
            case 0:
                o += (size_t)snprintf(g->ents[i] + o, 128 - o, "host:ws%03d ",
                                      (int)(r / 3 % 400));
                break;
            case 1:
                o += (size_t)snprintf(g->ents[i] + o, 128 - o, "account:u%03d ",
                                      (int)(r / 3 % 300));
                break;
            default:
                o += (size_t)snprintf(g->ents[i] + o, 128 - o, "ip:10.9.%d.%d ",
                                      (int)(r / 3 % 200) / 100,
                                      (int)(r / 3 % 100));
            }
        }
        g->alerts[i] = A(.id = g->ids[i], .ents = g->ents[i], .t = i * 30);
    }
}

static void gen_free(struct gen *g)
{
    free(g->alerts);
    free(g->ids);
    free(g->ents);
}

static const char *const big_sets[] = {"correlate.window=7d",
                                       "correlate.max_alerts=10000", NULL};

/* Feeds g through t in batches of bs; asserts every batch succeeds. */
static void feed(struct ct *t, const struct gen *g, int bs)
{
    for (int i = 0; i < g->n; i += bs) {
        int n = SP_MIN(bs, g->n - i);
        T_EQ_INT(ct_run(t, g->alerts + i, (size_t)n, NULL), SP_OK);
    }
}

/* alert id -> incident id, as one string (deterministic ids make it
 * comparable between runs); every alert must be in exactly one. */
static char *assignment(struct ct *t, const struct gen *g)
{
    int dups = 0;
    char *out = ct_assignment(t, &dups);
    T_EQ_INT(dups, 0);
    size_t pairs = 0;
    for (const char *p = out; *p; p++)
        pairs += *p == ';';
    T_EQ_INT(pairs, g->n);
    return out;
}

/* Every alert of g is held by exactly one live incident. */
static void all_held_once(struct ct *t, const struct gen *g)
{
    char *a = assignment(t, g);
    free(a);
}

static void test_same_input_same_grouping(void)
{
    SKIP_WITHOUT_REDIS();
    struct gen g;
    gen_make(&g, 300, 42);
    struct ct t;
    T_OK(ct_open(&t, big_sets));
    feed(&t, &g, 25);
    char *first = assignment(&t, &g);
    int live = ct_live(&t);
    ct_close(&t);
    T_OK(ct_open(&t, big_sets));            /* flushed: a fresh start */
    feed(&t, &g, 7);                        /* other batch boundaries */
    char *second = assignment(&t, &g);
    T_OK(strcmp(first, second) == 0);
    T_OK(live > 20 && live < 280);          /* chains did form */
    free(first);
    free(second);
    ct_close(&t);
    gen_free(&g);
}

/* Dense: n alerts from small entity pools, 5 s apart, half from one
 * detector; with dense_sets every rule that carries state from alert to
 * alert is at work (the cap and its continuations, noisy entities, flood,
 * merges, expiry). */
static void gen_dense(struct gen *g, int n)
{
    *g = (struct gen){calloc((size_t)n, sizeof(*g->alerts)),
                      calloc((size_t)n, sizeof(*g->ids)),
                      calloc((size_t)n, sizeof(*g->ents)), n};
    static const char *const dets[] = {"d0", "d1", "d0", "d2"};
    uint64_t seed = 7;
    for (int i = 0; i < n; i++) {
        snprintf(g->ids[i], sizeof(g->ids[i]), "dense:%d", i);
        uint64_t r = rng_next(&seed);
        snprintf(g->ents[i], sizeof(g->ents[i]),
                 "host:ws%02d account:u%02d ip:10.1.0.%d", (int)(r % 40),
                 (int)(r / 40 % 30), (int)(r / 1200 % 25));
        g->alerts[i] = A(.id = g->ids[i], .ents = g->ents[i], .t = i * 5,
                         .detector = dets[r / 30000 % 4]);
    }
}

static const char *const dense_sets[] = {
    "correlate.window=1h", "correlate.max_alerts=8",
    "correlate.noisy.threshold=4", "correlate.flood.enabled=true",
    "correlate.flood.threshold=40", "correlate.flood.window=10m", NULL};

/* Alerts of one tenant go to Redis together (one call of up to 128, each
 * decided in turn): the grouping must be the one of alerts sent one by
 * one, with every rule that carries state from alert to alert at work
 * (the cap and its continuations, noisy entities, flood, expiry). */
static void test_one_call_same_grouping(void)
{
    SKIP_WITHOUT_REDIS();
    const char *const *sets = dense_sets;
    struct gen g;
    gen_dense(&g, 600);
    const char *m_cont = "socpilot_correlate_joins_total{stage=\"correlate.0\",how=\"continuation\"}";
    const char *m_noisy = "socpilot_correlate_noisy_entities_detected_total{stage=\"correlate.0\"}";
    const char *m_flood = "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"flood\"}";
    const char *m_merges = "socpilot_correlate_merges_total{stage=\"correlate.0\"}";
    struct ct t;
    T_OK(ct_open(&t, sets));
    feed(&t, &g, 1);
    char *one = assignment(&t, &g);
    double want[4] = {ct_metric(&t, m_cont), ct_metric(&t, m_noisy),
                      ct_metric(&t, m_flood), ct_metric(&t, m_merges)};
    ct_close(&t);
    for (int i = 0; i < 4; i++)
        T_OK(want[i] > 0);                  /* every rule at work */
    T_OK(ct_open(&t, sets));
    feed(&t, &g, 300);
    char *batched = assignment(&t, &g);
    T_OK(strcmp(one, batched) == 0);
    T_EQ_INT((long long)ct_metric(&t, m_cont), (long long)want[0]);
    T_EQ_INT((long long)ct_metric(&t, m_noisy), (long long)want[1]);
    T_EQ_INT((long long)ct_metric(&t, m_flood), (long long)want[2]);
    T_EQ_INT((long long)ct_metric(&t, m_merges), (long long)want[3]);
    free(one);
    free(batched);
    ct_close(&t);
    gen_free(&g);
}

/* "key version" of every incident snapshot published so far, in order. */
static char *published(struct ct *t)
{
    struct sp_buf b;
    sp_buf_init(&b, 0);
    pthread_mutex_lock(&t->sink.mu);
    for (size_t i = 0; i < t->sink.n; i++) {
        const struct sp_test_out *o = &t->sink.outs[i];
        if (strcmp(o->topic, "incidents") == 0)
            sp_buf_printf(&b, "%s %s\n", o->key, o->version ? o->version : "?");
    }
    pthread_mutex_unlock(&t->sink.mu);
    char *out = strndup(b.data ? b.data : "", b.len);
    sp_buf_fini(&b);
    return out;
}

/* Deferred snapshots (correlate.snapshot_defer, the default): a batch's
 * snapshots are read at the head of the next batch's pipeline and go out
 * while Redis runs it.  The published sequence must be exactly the one of
 * the synchronous path (same incidents, same versions, same order), one
 * batch late: none after the first batch, all of batch k-1's after batch
 * k; a tick once the stream pauses, or flush(), publishes the rest. */
static void test_deferred_snapshots(void)
{
    SKIP_WITHOUT_REDIS();
    if (ct_defer())
        T_SKIP("compares the two ways itself (SP_TEST_SNAPSHOT_DEFER)");
    enum { N = 600, BS = 50, NB = N / BS };
    struct gen g;
    gen_dense(&g, N);
    const char *sync_sets[CT_MAX_SETS], *defer_sets[CT_MAX_SETS + 2];
    size_t ns = 0;
    for (; dense_sets[ns]; ns++)
        sync_sets[ns] = defer_sets[ns] = dense_sets[ns];
    /* Nothing republished from the outbox: what goes out is what each
     * path published itself. */
    sync_sets[ns] = defer_sets[ns] = "correlate.outbox.grace=1h";
    ns++;
    sync_sets[ns] = NULL;
    defer_sets[ns] = "correlate.snapshot_defer=true";
    defer_sets[ns + 1] = NULL;

    struct ct t;
    size_t after[NB];
    T_OK(ct_open(&t, sync_sets));
    for (int b = 0; b < NB; b++) {
        T_EQ_INT(ct_run(&t, g.alerts + b * BS, BS, NULL), SP_OK);
        after[b] = sp_test_sink_count(&t.sink, "incidents");
    }
    char *want = published(&t);
    char *want_groups = assignment(&t, &g);
    ct_close(&t);
    T_OK(after[0] > 0 && after[NB - 1] > (size_t)NB * 5);  /* each batch some */

    T_OK(ct_open(&t, defer_sets));
    for (int b = 0; b < NB; b++) {
        T_EQ_INT(ct_run(&t, g.alerts + b * BS, BS, NULL), SP_OK);
        T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"),
                 b == 0 ? 0 : after[b - 1]);
        /* A tick before the wait is over leaves them for the next batch. */
        t.st->type->tick(t.st, sp_now_ms() - 1000);
        T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"),
                 b == 0 ? 0 : after[b - 1]);
    }
    /* The stream pauses: the next tick past the wait publishes them. */
    t.st->type->tick(t.st, sp_now_ms() + 1000);
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), after[NB - 1]);
    char *got = published(&t);
    T_OK(strcmp(want, got) == 0);
    char *got_groups = assignment(&t, &g);
    T_OK(strcmp(want_groups, got_groups) == 0);
    free(got);
    free(got_groups);
    ct_close(&t);

    /* Small pipelines: a batch runs in several chunks, and the reads owed
     * often do not fit in one pipeline (they are published first then). */
    defer_sets[ns + 1] = "correlate.pipeline_max=40";
    defer_sets[ns + 2] = NULL;
    T_OK(ct_open(&t, defer_sets));
    for (int b = 0; b < NB; b++)
        T_EQ_INT(ct_run(&t, g.alerts + b * BS, BS, NULL), SP_OK);
    t.st->type->tick(t.st, sp_now_ms() + 1000);
    got = published(&t);
    T_OK(strcmp(want, got) == 0);
    free(got);

    /* flush() (shutdown, rebalance) sends what is owed at once. */
    struct ct_alert extra = A(.id = "extra:1", .ents = "host:lonely", .t = N * 5);
    struct ct_res r;
    T_EQ_INT(ct_run(&t, &extra, 1, &r), SP_OK);
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), after[NB - 1]);
    T_EQ_INT(t.st->type->flush(t.st, 1000), SP_OK);
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), after[NB - 1] + 1);
    json_t *inc = ct_latest(&t, r.inc);
    T_OK(inc != NULL && ct_jint(inc, "version") == r.version);
    json_decref(inc);
    ct_close(&t);

    /* The connection is lost while snapshots are owed (killed between two
     * batches; the next batch's first attempt fails): they stay owed and
     * go out with the retry, none lost, none twice. */
    defer_sets[ns + 1] = NULL;
    T_OK(ct_open(&t, defer_sets));
    int retries = 0;
    for (int b = 0; b < NB; b++) {
        if (b % 3 == 1) {
            /* every master: in a cluster, the tenant's is not the first */
            long long killed = 0;
            T_OK(ct_every_master("CLIENT KILL TYPE normal", &killed) &&
                 killed >= 1);
        }
        struct sp_batch *bt = sp_batch_new(BS);
        for (int j = b * BS; j < (b + 1) * BS; j++)
            ct_add(bt, &g.alerts[j]);
        int64_t deadline = sp_now_ms() + 10000;
        enum sp_err e;
        while ((e = sp_stage_process(t.st, bt)) == SP_ERR_RETRY &&
               sp_now_ms() < deadline) {
            retries++;
            sp_test_sleep_ms(20);
        }
        T_EQ_INT(e, SP_OK);
        sp_batch_free(bt);
    }
    T_OK(retries >= NB / 3);
    T_EQ_INT(t.st->type->flush(t.st, 1000), SP_OK);
    got = published(&t);
    T_OK(strcmp(want, got) == 0);
    free(got);
    /* Each new connection's memory check ran before anything was sent
     * (the test server has no maxmemory: nothing may be evicted). */
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_redis_may_evict{stage=\"correlate.0\"}"), 0);
    ct_close(&t);
    free(want);
    free(want_groups);
    gen_free(&g);
}

static long long zcard(struct sp_test_redis *r, const char *key);
static bool outbox_empty(struct ct *t);
static bool pub_marks_gone(struct ct *t);

/* A snapshot read Redis refuses (here an ACL user without MULTI) is left
 * to the outbox, not owed for ever: the stage goes on, counts it, and
 * outbox recovery publishes it once the refusal is over. */
static void test_deferred_read_refused(void)
{
    SKIP_WITHOUT_REDIS();
    if (ct_defer())
        T_SKIP("sets its own mode (SP_TEST_SNAPSHOT_DEFER)");
    const char *sets[] = {"correlate.snapshot_defer=true", "redis.user=nomulti",
                          "redis.password=pw", "correlate.outbox.grace=1h",
                          NULL};
    /* The user on every master (in a cluster, the tenant's slot is on
     * the second). */
    T_OK(ct_every_master("ACL SETUSER nomulti reset on >pw ~* &* +@all -multi",
                         NULL));
    struct ct t;
    T_OK(ct_open(&t, sets));
    t.manual = true;
    struct ct_alert a[] = {A(.id = "r1", .ents = "host:r1", .t = 0),
                           A(.id = "r2", .ents = "host:r2", .t = 1)};
    struct ct_res res[2];
    T_EQ_INT(ct_run(&t, &a[0], 1, &res[0]), SP_OK);
    T_EQ_INT(ct_run(&t, &a[1], 1, &res[1]), SP_OK);     /* r1's read refused */
    t.st->type->tick(t.st, sp_now_ms() + 1000);         /* r2's refused */
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), 0);
    const char *pe = "socpilot_correlate_publish_errors_total{stage=\"correlate.0\"}";
    T_EQ_INT(ct_metric(&t, pe), 2);
    /* Both changes wait in the outbox; with MULTI allowed again, recovery
     * (any instance, after the grace period) publishes them. */
    T_EQ_INT(zcard(t.redis, "sp:{t:t1}:out"), 2);
    T_OK(ct_every_master("ACL SETUSER nomulti +multi", NULL));
    ct_close(&t);
    const char *later[] = {"correlate.outbox.grace=0", NULL};
    T_OK(ct_stage(&t, NULL, later));
    t.manual = true;
    /* Recovery takes changes strictly older than now - grace (wall ms). */
    sp_test_sleep_ms(5);
    t.st->type->tick(t.st, sp_now_ms() + 1000);
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), 2);
    for (int i = 0; i < 2; i++) {
        json_t *inc = ct_latest(&t, res[i].inc);
        T_OK(inc != NULL && ct_jint(inc, "version") == res[i].version);
        json_decref(inc);
    }
    ct_close(&t);
    T_OK(ct_every_master("ACL DELUSER nomulti", NULL));
}

/* More than one call for a tenant in one pipeline (over 128 alerts): when
 * the first fails on one alert, the later call stands aside and every
 * alert of both runs again one by one, so the grouping is that of the
 * stream in order without the alert at fault (here the cap of 150 alerts
 * per incident decides which alerts open the continuation). */
static void test_call_error_keeps_order(void)
{
    SKIP_WITHOUT_REDIS();
    enum { N = 200, BAD = 5 };
    struct gen g = {calloc(N, sizeof(*g.alerts)), calloc(N, sizeof(*g.ids)),
                    calloc(N, sizeof(*g.ents)), N};
    for (int i = 0; i < N; i++) {
        snprintf(g.ids[i], sizeof(g.ids[i]), "ord:%d", i);
        snprintf(g.ents[i], sizeof(g.ents[i]), "host:h1");
        g.alerts[i] = A(.id = g.ids[i], .ents = g.ents[i], .t = i);
    }
    /* The stream in order, one alert at a time, without the bad one. */
    struct ct t;
    T_OK(ct_open(&t, NULL));
    for (int i = 0; i < N; i++)
        if (i != BAD)
            T_EQ_INT(ct_run(&t, &g.alerts[i], 1, NULL), SP_OK);
    int dups = 0;
    char *want = ct_assignment(&t, &dups);
    ct_close(&t);
    /* One batch, the bad alert's record of the wrong type. */
    T_OK(ct_open(&t, NULL));
    redisReply *rep = sp_test_redis_cmd(t.redis, "HSET sp:{t:t1}:a:%s x y",
                                        g.ids[BAD]);
    if (rep)
        freeReplyObject(rep);
    struct ct_res *r = calloc(N, sizeof(*r));
    T_EQ_INT(ct_run(&t, g.alerts, N, r), SP_OK);
    T_EQ_INT((long long)r[BAD].rejects, 1);
    char *got = ct_assignment(&t, &dups);
    T_EQ_INT(dups, 0);
    T_OK(strcmp(want, got) == 0);
    T_EQ_INT((long long)ct_metric(&t, "socpilot_correlate_joins_total{stage=\"correlate.0\",how=\"continuation\"}"), 1);
    free(want);
    free(got);
    free(r);
    ct_close(&t);
    gen_free(&g);
}

struct half {
    struct ct *t;
    const struct gen *g;
    int parity;
    int failures;
};

static void *feed_half(void *ud)
{
    struct half *h = ud;
    struct ct_alert batch[16];
    int n = 0;
    for (int i = h->parity; i < h->g->n; i += 2) {
        batch[n++] = h->g->alerts[i];
        if (n == 16 || i + 2 >= h->g->n) {
            if (ct_run(h->t, batch, (size_t)n, NULL) != SP_OK)
                h->failures++;
            n = 0;
        }
    }
    return NULL;
}

static void test_two_instances(void)
{
    SKIP_WITHOUT_REDIS();
    struct gen g;
    gen_make(&g, 400, 7);
    struct ct one;
    T_OK(ct_open(&one, big_sets));
    feed(&one, &g, 20);
    char *want = ct_partition(&one);
    ct_close(&one);

    /* The outbox grace is long: every entry must go by an ack, each
     * publish's mark taken back by its own (none written off). */
    static const char *const two_sets[] = {"correlate.window=7d",
                                           "correlate.max_alerts=10000",
                                           "correlate.outbox.grace=1h", NULL};
    struct ct a, b;
    T_OK(ct_open(&a, two_sets));
    T_OK(ct_stage(&b, NULL, two_sets));
    b.env.sink = &a.sink.sink;      /* one output topic for both */
    struct half ha = {&a, &g, 0, 0}, hb = {&b, &g, 1, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, feed_half, &ha);
    pthread_create(&tb, NULL, feed_half, &hb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    T_EQ_INT(ha.failures + hb.failures, 0);
    ct_settle(&b);                  /* what b owes (a settles its own) */
    char *got = ct_partition(&a);
    T_OK(strcmp(want, got) == 0);
    if (strcmp(want, got) != 0)
        fprintf(stderr, "  one:  %.200s\n  two:  %.200s\n", want, got);
    all_held_once(&a, &g);
    for (int64_t until = sp_now_ms() + 3000;
         !(outbox_empty(&a) && pub_marks_gone(&a)) && sp_now_ms() < until;
         sp_test_sleep_ms(10)) {
        a.st->type->tick(a.st, sp_now_ms());
        b.st->type->tick(b.st, sp_now_ms());
    }
    T_OK(outbox_empty(&a));
    T_OK(pub_marks_gone(&a));
    free(want);
    free(got);
    ct_close(&b);
    ct_close(&a);
    gen_free(&g);
}

/* A merge larger than one Lua unpack() (over 1000 values) moves every
 * alert. */
static void test_big_merge(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.max_alerts=2000", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    enum { HALF = 600 };
    struct ct_alert *in = calloc(2 * HALF + 1, sizeof(*in));
    char (*ids)[16] = calloc(2 * HALF + 1, 16);
    for (int i = 0; i < 2 * HALF; i++) {
        snprintf(ids[i], 16, "bm%d", i);
        in[i] = A(.id = ids[i], .ents = i < HALF ? "host:left" : "account:right",
                  .t = i);
    }
    in[2 * HALF] = A(.id = "bridge", .ents = "host:left account:right", .t = 2 * HALF);
    T_EQ_INT(ct_run(&t, in, HALF, NULL), SP_OK);
    T_EQ_INT(ct_run(&t, in + HALF, HALF + 1, NULL), SP_OK);
    T_EQ_INT(ct_live(&t), 1);
    char inc[80];
    T_EQ_INT(ct_holders(&t, "bm0", inc, sizeof(inc)), 1);
    json_t *d = ct_latest(&t, inc);
    T_EQ_INT(ct_jint(d, "alerts_total"), 2 * HALF + 1);
    json_decref(d);
    T_EQ_INT(ct_holders(&t, "bm1199", NULL, 0), 1);
    free(in);
    free(ids);
    ct_close(&t);
}

/* ---- at-least-once -------------------------------------------------------- */

static long long zcard(struct sp_test_redis *r, const char *key)
{
    return sp_test_redis_int(r, NULL, "ZCARD %s", key);
}

static bool outbox_empty(struct ct *t)
{
    return zcard(t->redis, "sp:{t:t1}:out") == 0;
}

/* Applied in Redis, outputs lost: the replay republishes every change. */
static void test_replay_republishes(void)
{
    SKIP_WITHOUT_REDIS();
    struct gen g;
    gen_make(&g, 60, 3);
    struct ct t;
    /* Snapshots out with each batch, so that the counts are per batch
     * (deferred, a settling tick may also run recovery). */
    static const char *const sets[] = {"correlate.window=7d",
                                       "correlate.max_alerts=10000",
                                       "correlate.snapshot_defer=false", NULL};
    T_OK(ct_open(&t, sets));
    t.sink.mode = SP_TEST_ACK_FAIL;
    T_EQ_INT(ct_run(&t, g.alerts, 60, NULL), SP_OK);
    size_t first = sp_test_sink_count(&t.sink, "incidents");
    char *want = ct_partition(&t);
    sp_test_sink_clear(&t.sink);
    t.sink.mode = SP_TEST_ACK_OK;
    T_EQ_INT(ct_run(&t, g.alerts, 60, NULL), SP_OK);   /* all duplicates */
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), first);
    char *got = ct_partition(&t);
    T_OK(strcmp(want, got) == 0);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"duplicate\"}"), 60);
    /* Acknowledged now: the outbox empties and a third replay is silent. */
    T_OK(ct_tick_until(&t, outbox_empty, 3000));
    sp_test_sink_clear(&t.sink);
    T_EQ_INT(ct_run(&t, g.alerts, 60, NULL), SP_OK);
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), 0);
    free(want);
    free(got);
    ct_close(&t);
    gen_free(&g);
}

static bool has_incidents(struct ct *t)
{
    return sp_test_sink_count(&t->sink, "incidents") > 0;
}

/* An instance that died before its snapshots were acknowledged: another
 * one republishes them from the outbox. */
static void test_outbox_recovery(void)
{
    SKIP_WITHOUT_REDIS();
    struct gen g;
    gen_make(&g, 40, 5);
    struct ct a;
    T_OK(ct_open(&a, big_sets));
    a.sink.mode = SP_TEST_ACK_FAIL;
    T_EQ_INT(ct_run(&a, g.alerts, 40, NULL), SP_OK);
    char *want = ct_partition(&a);
    ct_close(&a);
    T_OK(zcard(&ct_redis, "sp:{t:t1}:out") > 0);
    struct ct b;
    T_OK(ct_stage(&b, NULL, big_sets));
    T_OK(ct_tick_until(&b, has_incidents, 3000));
    T_OK(ct_tick_until(&b, outbox_empty, 3000));
    char *got = ct_partition(&b);
    T_OK(strcmp(want, got) == 0);
    T_OK(ct_metric(&b, "socpilot_correlate_outbox_recovered_total{stage=\"correlate.0\"}") > 0);
    free(want);
    free(got);
    ct_close(&b);
    gen_free(&g);
}

/* ---- where snapshots land -------------------------------------------------- */

/* The version of the record of incident id that landed last on the
 * incidents topic (highest offset), and how many of its records landed;
 * 0 when none did. */
static long long last_landed(struct ct *t, const char *id, int *records)
{
    long long v = 0;
    int64_t best = -1;
    *records = 0;
    pthread_mutex_lock(&t->sink.mu);
    for (size_t i = 0; i < t->sink.n; i++) {
        const struct sp_test_out *o = &t->sink.outs[i];
        if (strcmp(o->topic, "incidents") != 0 || strcmp(o->key, id) != 0 ||
            o->offset < 0)
            continue;
        (*records)++;
        if (o->offset > best) {
            best = o->offset;
            v = o->version ? atoll(o->version) : 0;
        }
    }
    pthread_mutex_unlock(&t->sink.mu);
    return v;
}

static char landed_id[80];

static bool latest_landed_last(struct ct *t)
{
    int n;
    return last_landed(t, landed_id, &n) == 2 && outbox_empty(t);
}

/* Index of the only held output of key id, or (size_t)-1. */
static size_t held_of(struct ct *t, const char *id)
{
    size_t at = (size_t)-1;
    pthread_mutex_lock(&t->sink.mu);
    for (size_t i = 0; i < t->sink.n; i++)
        if (t->sink.outs[i].held && strcmp(t->sink.outs[i].key, id) == 0)
            at = i;
    pthread_mutex_unlock(&t->sink.mu);
    return at;
}

/*
 * Two instances a and b (one incidents topic, a's sink holding what both
 * publish) change one incident: versions 1 (a) and 2 (b).  Fills in where
 * their snapshots are held (*s1, *s2) and the incident's id.
 */
static void two_versions_held(struct ct *a, struct ct *b,
                              const char *const *sets, size_t *s1, size_t *s2,
                              char *id, size_t id_n)
{
    T_OK(ct_open(a, sets));
    T_OK(ct_stage(b, NULL, sets));
    b->env.sink = &a->sink.sink;
    a->sink.mode = SP_TEST_HOLD;
    struct ct_alert x1 = {.id = "x1", .ents = "host:h1", .t = 10};
    struct ct_alert x2 = {.id = "x2", .ents = "host:h1 account:u1", .t = 20};
    struct ct_res r1, r2;
    T_EQ_INT(ct_one(a, &x1, &r1), SP_OK);
    ct_settle(a);
    *s1 = held_of(a, r1.inc);
    T_EQ_INT(ct_one(b, &x2, &r2), SP_OK);
    ct_settle(b);
    T_OK(strcmp(r1.inc, r2.inc) == 0);
    T_EQ_INT(r2.version, 2);
    *s2 = held_of(a, r1.inc);
    T_OK(*s1 != (size_t)-1 && *s2 != (size_t)-1 && *s1 != *s2);
    snprintf(id, id_n, "%s", r1.inc);
}

/*
 * Two instances change one incident at the same moment (versions 1 and
 * 2) and their snapshots land out of order: version 1 after version 2.
 * The acks see it, whichever instance acknowledges first, and the
 * incident is published again, so the topic's last record of it is
 * version 2 (what a compacted topic keeps).  Landed in order, nothing is
 * published again.  The outbox grace is long: only the requeued incident
 * is due.
 */
static void test_snapshots_land_out_of_order(void)
{
    SKIP_WITHOUT_REDIS();
    static const char *const sets[] = {"correlate.outbox.grace=1h", NULL};
    for (int c = 0; c < 3; c++) {
        bool in_order = c == 2, b_acks_first = c == 1;
        struct ct a, b;
        char inc[80];
        size_t s1, s2;
        two_versions_held(&a, &b, sets, &s1, &s2, inc, sizeof(inc));
        a.sink.mode = SP_TEST_ACK_OK;
        T_OK(sp_test_sink_land(&a.sink, in_order ? s1 : s2));
        T_OK(sp_test_sink_land(&a.sink, in_order ? s2 : s1));
        snprintf(landed_id, sizeof(landed_id), "%s", inc);
        int n;
        T_EQ_INT(last_landed(&a, inc, &n), in_order ? 2 : 1);
        /* The acks go out with each instance's next tick. */
        struct ct *first = b_acks_first ? &b : &a,
                  *second = b_acks_first ? &a : &b;
        first->st->type->tick(first->st, sp_now_ms());
        second->st->type->tick(second->st, sp_now_ms());
        /* Both instances tick: each acknowledges what it published
         * (recovery may have run on both). */
        for (int64_t until = sp_now_ms() + 3000;
             !latest_landed_last(&a) && sp_now_ms() < until;
             sp_test_sleep_ms(10)) {
            a.st->type->tick(a.st, sp_now_ms());
            b.st->type->tick(b.st, sp_now_ms());
        }
        T_OK(latest_landed_last(&a));
        double recovered =
            ct_metric(&a, "socpilot_correlate_outbox_recovered_total{stage=\"correlate.0\"}") +
            ct_metric(&b, "socpilot_correlate_outbox_recovered_total{stage=\"correlate.0\"}");
        int settled;
        last_landed(&a, inc, &settled);
        /* Both instances' recovery may publish it (each saw it due):
         * published again at least once out of order, never in order,
         * and no more once the latest is last. */
        T_OK(in_order ? settled == 2 : settled >= 3);
        T_OK(in_order ? recovered == 0 : recovered >= 1);
        T_EQ_INT(ct_metric(&a, "socpilot_incident_snapshots_out_of_order_total{stage=\"correlate.0\"}") +
                     ct_metric(&b, "socpilot_incident_snapshots_out_of_order_total{stage=\"correlate.0\"}"),
                 in_order ? 0 : 1);
        for (int i = 0; i < 3; i++) {
            sp_test_sleep_ms(120);
            a.st->type->tick(a.st, sp_now_ms());
            b.st->type->tick(b.st, sp_now_ms());
        }
        T_EQ_INT(last_landed(&a, inc, &n), 2);
        T_EQ_INT(n, settled);
        ct_close(&b);
        ct_close(&a);
    }
}

/* No publish of any incident on t's incidents topic still marked in
 * flight (true when nothing landed there: look at the key then). */
static bool pub_marks_gone(struct ct *t)
{
    char (*ids)[80] = NULL;
    size_t n = 0;
    pthread_mutex_lock(&t->sink.mu);
    ids = calloc(t->sink.n + 1, sizeof(*ids));
    for (size_t i = 0; ids && i < t->sink.n; i++)
        if (strcmp(t->sink.outs[i].topic, "incidents") == 0)
            snprintf(ids[n++], sizeof(ids[0]), "%s", t->sink.outs[i].key);
    pthread_mutex_unlock(&t->sink.mu);
    long long out = ids ? 0 : 1;
    for (size_t i = 0; i < n && out == 0; i++)
        out += sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:pub:%s",
                                 ids[i]);
    free(ids);
    return out == 0;
}

/*
 * The ack that would repair an out-of-order landing never comes: a's
 * version 1 lands after b's version 2, but a's delivery report says it
 * failed (the producer timed out after the broker wrote it; to Redis the
 * same as a dying between its delivery report and its ack).  b's ack of
 * version 2 finds a's publish still marked and keeps the outbox entry
 * (before the marks it removed it, and version 1 stayed last for good);
 * once the entry has waited the grace period, recovery publishes version
 * 2 again, last, and writes a's mark off.
 */
static void test_unacked_landing_repaired(void)
{
    SKIP_WITHOUT_REDIS();
    static const char *const sets[] = {"correlate.outbox.grace=800ms", NULL};
    struct ct a, b;
    char inc[80];
    size_t s1, s2;
    two_versions_held(&a, &b, sets, &s1, &s2, inc, sizeof(inc));
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZCARD sp:{t:t1}:pub:%s",
                               inc), 2);
    /* Marks live twice the grace from the last one. */
    long long ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL sp:{t:t1}:pub:%s",
                                      inc);
    T_OK(ttl > 1000 && ttl <= 1600);
    a.sink.mode = SP_TEST_ACK_OK;
    T_OK(sp_test_sink_land(&a.sink, s2));
    b.st->type->tick(b.st, sp_now_ms());
    T_OK(sp_test_sink_land_unreported(&a.sink, s1));
    a.st->type->tick(a.st, sp_now_ms());
    int n;
    T_EQ_INT(last_landed(&a, inc, &n), 1);
    T_OK(!outbox_empty(&a));
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZCARD sp:{t:t1}:pub:%s",
                               inc), 1);
    snprintf(landed_id, sizeof(landed_id), "%s", inc);
    T_OK(ct_tick_until(&a, latest_landed_last, 5000));
    T_OK(pub_marks_gone(&a));
    T_OK(ct_metric(&a, "socpilot_correlate_outbox_recovered_total{stage=\"correlate.0\"}") >= 1);
    int settled;
    last_landed(&a, inc, &settled);
    for (int i = 0; i < 3; i++) {
        sp_test_sleep_ms(120);
        a.st->type->tick(a.st, sp_now_ms());
    }
    T_EQ_INT(last_landed(&a, inc, &n), 2);
    T_EQ_INT(n, settled);
    ct_close(&b);
    ct_close(&a);
}

/* A snapshot the producer refused outright (never handed over) cannot
 * land: its mark is taken back at once, and its outbox entry stays for
 * recovery. */
static void test_refused_publish_unmarked(void)
{
    SKIP_WITHOUT_REDIS();
    static const char *const sets[] = {"correlate.outbox.grace=1h", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    t.sink.mode = SP_TEST_REFUSE;
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "rf1", .ents = "host:rf1"), &r), SP_OK);
    ct_settle(&t);
    t.st->type->tick(t.st, sp_now_ms());
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:pub:%s",
                               r.inc), 0);
    T_OK(!outbox_empty(&t));
    ct_close(&t);
}

extern const char corr_lua_ack[];

/* The ack script's clock and grace: marks made before 50 are older than
 * the grace; an entry kept for marks out is due again at 1050. */
static long long ack_now = 1050, ack_grace = 1000;

/* One record through the ack script on incident inc1 of tenant t1:
 * *removed and *late from its reply; false on an error reply. */
static bool ack_marked(const char *ver, const char *part, const char *off,
                       const char *mark, long long *removed, long long *late)
{
    redisReply *r = sp_test_redis_cmd(&ct_redis, "EVAL %s 1 sp:{t:t1}:out "
                                      "sp:{t:t1}: %lld %lld inc1 %s %s %s %s",
                                      corr_lua_ack, ack_now, ack_grace, ver,
                                      part, off, mark);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2;
    if (ok) {
        *removed = r->element[0]->integer;
        *late = r->element[1]->integer;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "  ack: %s\n", r->str);
    }
    if (r)
        freeReplyObject(r);
    return ok;
}

/* The same without a mark of its own (a read that made none). */
static bool ack_one(const char *ver, const char *part, const char *off,
                    long long *removed, long long *late)
{
    return ack_marked(ver, part, off, "", removed, late);
}

/* Field f of inc1's hash as a string ("" when absent). */
static void inc_field(const char *f, char *out, size_t n)
{
    redisReply *r = sp_test_redis_cmd(&ct_redis, "HGET sp:{t:t1}:i:inc1 %s", f);
    snprintf(out, n, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
}

/* A command without a reply to look at (no % in it but the format's). */
static void redis_do(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = sp_test_redis_vcmd(&ct_redis, fmt, ap);
    va_end(ap);
    if (r)
        freeReplyObject(r);
}

/* The ack script case by case: an expired incident, in order, the same
 * ack again, an older version landing later, a new partition, offsets
 * past 2^53 kept as sent, an ack without an offset, and Redis over its
 * maxmemory (the landing is not recorded, the removal still happens). */
static void test_ack_script(void)
{
    SKIP_WITHOUT_REDIS();
    ct_flush_all();
    long long rm, late;
    char b[64];
    /* Expired: removed from the outbox, no hash made, its publish marks
     * gone. */
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    redis_do("ZADD sp:{t:t1}:pub:inc1 100 m0");
    T_OK(ack_marked("3", "0", "7", "m0", &rm, &late));
    T_EQ_INT(rm, 1);
    T_EQ_INT(late, 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:i:inc1"), 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:pub:inc1"), 0);
    /* In order. */
    redis_do("HSET sp:{t:t1}:i:inc1 v 5");
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    T_OK(ack_one("5", "0", "10", &rm, &late));
    T_EQ_INT(rm, 1);
    T_EQ_INT(late, 0);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "0:10:5:5");
    /* The same ack again: nothing to repair. */
    T_OK(ack_one("5", "0", "10", &rm, &late));
    T_EQ_INT(late, 0);
    /* Version 6 lands at 20, then version 5 at 21: queued again, due at
     * once; an ack of 6 at 20 again finds the last record still older. */
    redis_do("HSET sp:{t:t1}:i:inc1 v 6");
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    T_OK(ack_one("6", "0", "20", &rm, &late));
    T_EQ_INT(rm, 1);
    T_OK(ack_one("5", "0", "21", &rm, &late));
    T_EQ_INT(rm, 0);
    T_EQ_INT(late, 1);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "0:21:5:6");
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:out inc1"), 0);
    T_OK(ack_one("6", "0", "20", &rm, &late));
    T_EQ_INT(rm, 0);
    T_EQ_INT(late, 1);
    /* The republished latest lands last: removed, repaired. */
    T_OK(ack_one("6", "0", "22", &rm, &late));
    T_EQ_INT(rm, 1);
    T_EQ_INT(late, 0);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "0:22:6:6");
    /* A new partition (the topic grew): its records are compared from
     * there on; an older version there is left to the outbox entry. */
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    T_OK(ack_one("4", "1", "3", &rm, &late));
    T_EQ_INT(rm, 0);
    T_EQ_INT(late, 0);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:3:4:4");
    /* Offsets past 2^53 stay exactly as sent. */
    T_OK(ack_one("6", "1", "9007199254740993", &rm, &late));
    T_EQ_INT(rm, 1);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:9007199254740993:6:6");
    /* No offset: removal only, the landing left as it was. */
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    T_OK(ack_one("6", "0", "-1", &rm, &late));
    T_EQ_INT(rm, 1);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:9007199254740993:6:6");
    /* A landing record not of the script's making is started afresh. */
    redis_do("HSET sp:{t:t1}:i:inc1 ld x:1");
    T_OK(ack_one("6", "1", "40", &rm, &late));
    T_EQ_INT(late, 0);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:40:6:6");
    /* Two publishes in flight (marked a, b): the ack of the newer one (7,
     * b) keeps the entry, as the older one (6) may land after it, also
     * when applied twice (a resent call: marks are unique).  It landed
     * before: its ack finds version 7 last and removes the entry. */
    redis_do("HSET sp:{t:t1}:i:inc1 v 7");
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    redis_do("ZADD sp:{t:t1}:pub:inc1 100 ma 100 mb");
    for (int i = 0; i < 2; i++) {
        T_OK(ack_marked("7", "1", "41", "mb", &rm, &late));
        T_EQ_INT(rm, 0);
        T_EQ_INT(late, 0);
        T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZCARD sp:{t:t1}:pub:inc1"), 1);
        /* due one grace period from now, not at once */
        T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:out inc1"), 1050);
    }
    T_OK(ack_marked("6", "1", "39", "ma", &rm, &late));
    T_EQ_INT(rm, 1);
    T_EQ_INT(late, 0);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:41:7:7");
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:pub:inc1"), 0);
    /* A mark made before "stale" (older than the grace) is written off;
     * the entry's own score does not count (0: queued again at once). */
    redis_do("ZADD sp:{t:t1}:out 0 inc1");
    redis_do("ZADD sp:{t:t1}:pub:inc1 100 ma 10 mold");
    T_OK(ack_marked("7", "1", "42", "mc", &rm, &late));
    T_EQ_INT(rm, 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZCARD sp:{t:t1}:pub:inc1"), 1);
    redis_do("ZADD sp:{t:t1}:pub:inc1 10 ma");
    T_OK(ack_marked("7", "1", "43", "", &rm, &late));
    T_EQ_INT(rm, 1);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:pub:inc1"), 0);
    redis_do("HSET sp:{t:t1}:i:inc1 v 6");
    if (ct_cluster.n) {
        T_SKIP("maxmemory part: one server only");
        return;
    }
    /* Over maxmemory, an ack that finds the last record older keeps the
     * entry (recovery republishes it after the grace period): v5 landed
     * last (at 21) though v6 landed (at 20) and the ack of v6 comes now. */
    redis_do("HSET sp:{t:t1}:i:inc1 ld 1:21:5:5");
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    redis_do("CONFIG SET maxmemory-policy noeviction");
    redis_do("CONFIG SET maxmemory 1");
    bool kept = ack_one("6", "1", "20", &rm, &late);
    redis_do("CONFIG SET maxmemory 0");
    T_OK(kept);
    T_EQ_INT(rm, 0);
    T_EQ_INT(late, 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:out inc1"), 100);
    redis_do("HSET sp:{t:t1}:i:inc1 ld 1:40:6:6");
    /* Over maxmemory: removed all the same, nothing written. */
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    redis_do("CONFIG SET maxmemory-policy noeviction");
    redis_do("CONFIG SET maxmemory 1");
    bool ok = ack_one("6", "1", "50", &rm, &late);
    redis_do("CONFIG SET maxmemory 0");
    T_OK(ok);
    T_EQ_INT(rm, 1);
    T_EQ_INT(late, 0);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:40:6:6");
    /* The same with its mark, and with another mark out: the mark is
     * taken back (ZREM is never refused for memory), the landing not
     * written; another mark out keeps the entry, due one grace later
     * (Redis lets a script that has written write on). */
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    redis_do("ZADD sp:{t:t1}:pub:inc1 100 mz");
    redis_do("CONFIG SET maxmemory 1");
    ok = ack_marked("6", "1", "51", "mz", &rm, &late);
    redis_do("CONFIG SET maxmemory 0");
    T_OK(ok);
    T_EQ_INT(rm, 1);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS sp:{t:t1}:pub:inc1"), 0);
    redis_do("ZADD sp:{t:t1}:out 100 inc1");
    redis_do("ZADD sp:{t:t1}:pub:inc1 100 mz 100 mo");
    redis_do("CONFIG SET maxmemory 1");
    ok = ack_marked("6", "1", "52", "mz", &rm, &late);
    redis_do("CONFIG SET maxmemory 0");
    T_OK(ok);
    T_EQ_INT(rm, 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZCARD sp:{t:t1}:pub:inc1"), 1);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:out inc1"), 1050);
    inc_field("ld", b, sizeof(b));
    T_EQ_STR(b, "1:40:6:6");
}

/* Index of the held output of key id, or (size_t)-1. */
static size_t held_key(struct ct *t, const char *id)
{
    return held_of(t, id);
}

/*
 * Where a snapshot landed reaches Redis with its ack, also from a sink
 * that acknowledges inside produce(); and when a batch of snapshots
 * partly fails, those that landed are acknowledged (entry removed, where
 * recorded) while the failed one stays in the outbox.
 */
static void test_landing_recorded(void)
{
    SKIP_WITHOUT_REDIS();
    static const char *const sets[] = {"correlate.outbox.grace=1h", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "y1", .ents = "host:y1", .t = 5), &r), SP_OK);
    ct_settle(&t);
    t.st->type->tick(t.st, sp_now_ms());
    char key[128], ld[64];
    snprintf(key, sizeof(key), "sp:{t:t1}:i:%s", r.inc);
    redisReply *h = sp_test_redis_cmd(&ct_redis, "HGET %s ld", key);
    snprintf(ld, sizeof(ld), "%s", h && h->type == REDIS_REPLY_STRING ? h->str : "");
    if (h)
        freeReplyObject(h);
    T_OK(strncmp(ld, "0:", 2) == 0);
    T_OK(outbox_empty(&t));

    /* Two incidents' snapshots in one batch: one lands, one fails. */
    t.sink.mode = SP_TEST_HOLD;
    struct ct_alert two[2] = {A(.id = "z1", .ents = "host:z1", .t = 6),
                              A(.id = "z2", .ents = "host:z2", .t = 7)};
    struct ct_res rz[2];
    T_EQ_INT(ct_run(&t, two, 2, rz), SP_OK);
    ct_settle(&t);
    size_t s1 = held_key(&t, rz[0].inc), s2 = held_key(&t, rz[1].inc);
    T_OK(s1 != (size_t)-1 && s2 != (size_t)-1);
    t.sink.mode = SP_TEST_ACK_OK;
    T_OK(sp_test_sink_land(&t.sink, s1));
    T_OK(sp_test_sink_fail(&t.sink, s2));
    t.st->type->tick(t.st, sp_now_ms());
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:out %s",
                               rz[0].inc), -1);
    T_OK(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:out %s",
                           rz[1].inc) > 0);
    snprintf(key, sizeof(key), "sp:{t:t1}:i:%s", rz[0].inc);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HEXISTS %s ld", key), 1);
    snprintf(key, sizeof(key), "sp:{t:t1}:i:%s", rz[1].inc);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HEXISTS %s ld", key), 0);
    ct_close(&t);
}

/* ---- the tenants outbox recovery walks ------------------------------------ */

static long long n_tenants(void)
{
    return sp_test_redis_int(&ct_redis, NULL, "SCARD sp:tenants");
}

static bool is_tenant(const char *tenant)
{
    return sp_test_redis_int(&ct_redis, NULL, "SISMEMBER sp:tenants %s",
                             tenant) == 1;
}

/* Deletes every key of tenant except one ending in keep (NULL: none):
 * what the retention leaves of an idle tenant. */
static void expire_tenant(const char *tenant, const char *keep)
{
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "sp:{t:%s}:*", tenant);
    redisReply *k = ct_keys(pattern);
    for (size_t i = 0; k && i < k->elements; i++) {
        const char *key = k->element[i]->str;
        size_t n = strlen(key);
        if (keep && n >= strlen(keep) &&
            strcmp(key + n - strlen(keep), keep) == 0)
            continue;
        freeReplyObject(sp_test_redis_cmd(&ct_redis, "DEL %s", key));
    }
    if (k)
        freeReplyObject(k);
}

static const char *const idle_tenants[] = {"gone1", "gone2", "gone3"};

static bool acked_but_pending(struct ct *t)
{
    SP_UNUSED(t);
    long long n = zcard(&ct_redis, "sp:{t:live}:out");
    for (size_t i = 0; i < SP_ARRAY_SIZE(idle_tenants); i++) {
        char key[64];
        snprintf(key, sizeof(key), "sp:{t:%s}:out", idle_tenants[i]);
        n += zcard(&ct_redis, key);
    }
    return n == 0;
}

static bool idle_forgotten(struct ct *t)
{
    SP_UNUSED(t);
    return n_tenants() == 2;
}

/*
 * A tenant idle past the retention (its keys all expired) leaves the set
 * recovery walks; one still active, and one whose outbox holds a change
 * not yet acknowledged (its other keys expired), stay.  A forgotten
 * tenant that sends again is walked again, though the stage remembers
 * having registered it (so sends no SADD before its script).
 */
static void test_idle_tenants_forgotten(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.outbox.grace=1h", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    for (size_t i = 0; i < SP_ARRAY_SIZE(idle_tenants); i++)
        T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1",
                               .tenant = idle_tenants[i]), NULL), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1", .tenant = "live"),
                    NULL), SP_OK);
    ct_settle(&t);
    t.sink.mode = SP_TEST_ACK_FAIL;
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1", .tenant = "pending"),
                    NULL), SP_OK);
    ct_settle(&t);
    t.sink.mode = SP_TEST_ACK_OK;
    T_EQ_INT(n_tenants(), 5);
    T_OK(ct_tick_until(&t, acked_but_pending, 3000));
    T_EQ_INT(zcard(&ct_redis, "sp:{t:pending}:out"), 1);
    for (size_t i = 0; i < SP_ARRAY_SIZE(idle_tenants); i++)
        expire_tenant(idle_tenants[i], NULL);
    expire_tenant("pending", ":out");
    T_OK(ct_tick_until(&t, idle_forgotten, 3000));
    T_OK(is_tenant("live"));
    T_OK(is_tenant("pending"));
    for (size_t i = 0; i < SP_ARRAY_SIZE(idle_tenants); i++)
        T_OK(!is_tenant(idle_tenants[i]));
    /* gone1 again: registered after its script, and kept by the walks. */
    T_EQ_INT(ct_one(&t, &A(.id = "a2", .ents = "host:h2", .tenant = "gone1"),
                    NULL), SP_OK);
    T_OK(is_tenant("gone1"));
    int64_t now = sp_now_ms();
    for (int i = 1; i <= 5; i++)
        t.st->type->tick(t.st, now + 1000 * i);
    T_EQ_INT(n_tenants(), 3);
    T_OK(is_tenant("gone1"));
    ct_close(&t);
}

static bool gone_acked(struct ct *t)
{
    SP_UNUSED(t);
    redisReply *r = sp_test_redis_cmd(&ct_redis,
                                      "ZSCORE sp:{t:t1}:out inc-gone");
    bool gone = r && r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    return gone;
}

/* An outbox entry whose incident expired before it was published (its
 * publish failed for the whole retention) is removed by recovery rather
 * than looked for at every interval, keeping its tenant walked for ever. */
static void test_outbox_entry_of_expired_incident(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.outbox.grace=1ms", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1"), NULL), SP_OK);
    ct_settle(&t);
    freeReplyObject(sp_test_redis_cmd(&ct_redis,
                                      "ZADD sp:{t:t1}:out 1 inc-gone"));
    T_OK(!gone_acked(&t));
    T_OK(ct_tick_until(&t, gone_acked, 3000));
    T_EQ_INT(sp_test_sink_count(&t.sink, "incidents"), 1);
    ct_close(&t);
}

/* ---- Redis killed and restarted mid-stream -------------------------------- */

struct killer {
    struct sp_test_redis *r;
    int delay_ms, down_ms;
    bool restarted;
};

static void *kill_restart(void *ud)
{
    struct killer *k = ud;
    sp_test_sleep_ms(k->delay_ms);
    sp_test_redis_kill(k->r, SIGKILL);
    sp_test_sleep_ms(k->down_ms);
    k->restarted = sp_test_redis_restart(k->r);
    return NULL;
}

/* Every alert: its record points (through merges) at a live incident
 * whose alert hash holds it. */
static int check_redis_state(struct sp_test_redis *r, const struct gen *g)
{
    redisContext *c = sp_test_redis_connect(r);
    int bad = 0;
    for (int i = 0; c && i < g->n; i++) {
        redisReply *rec = redisCommand(c, "GET sp:{t:t1}:a:%s", g->ids[i]);
        if (!rec || rec->type != REDIS_REPLY_STRING) {
            bad++;
            freeReplyObject(rec);
            continue;
        }
        char inc[80] = "";
        sscanf(rec->str, "%*[^\t]\t%79[^\t]", inc);
        freeReplyObject(rec);
        for (int hop = 0; hop < 32; hop++) {
            redisReply *mi = redisCommand(c, "HGET sp:{t:t1}:i:%s mi", inc);
            bool more = mi && mi->type == REDIS_REPLY_STRING;
            if (more)
                snprintf(inc, sizeof(inc), "%s", mi->str);
            freeReplyObject(mi);
            if (!more)
                break;
        }
        redisReply *ex = redisCommand(c, "HEXISTS sp:{t:t1}:i:%s:al %s", inc,
                                      g->ids[i]);
        if (!ex || ex->integer != 1)
            bad++;
        freeReplyObject(ex);
    }
    if (c)
        redisFree(c);
    return c ? bad : -1;
}

/*
 * Feeds 500 alerts of tenant t1 in batches of 20 through a stage that
 * talks to entry, killing victim (SIGKILL) twice during a batch and
 * restarting it 300 ms later.  Every batch must end SP_OK after retries,
 * with the stage not ready while the server is down, the grouping that
 * of an undisturbed run, every alert in exactly one incident and nothing
 * left in the outbox.  victim holds t1's keys; entry is the server the
 * stage is configured with (the same one, or another cluster master).
 */
static void killed_midstream(struct sp_test_redis *entry,
                             struct sp_test_redis *victim, bool defer)
{
    struct gen g;
    gen_make(&g, 500, 11);
    struct ct ref;
    T_OK(ct_open(&ref, big_sets));
    feed(&ref, &g, 20);
    char *want = ct_partition(&ref);
    ct_close(&ref);

    const char *sets[] = {"correlate.window=7d", "correlate.max_alerts=10000",
                          "redis.backoff_min=20ms", "redis.backoff_max=200ms",
                          "redis.command_timeout=2s",
                          defer ? "correlate.snapshot_defer=true" : NULL, NULL};
    struct ct t;
    T_OK(ct_stage(&t, entry, sets));
    int retries = 0, kills = 0;
    bool seen_not_ready = false;
    pthread_t killer_thread;
    struct killer k = {victim, 2, 300, false};
    for (int i = 0; i < g.n; i += 20) {
        if (i == 100 || i == 300) {         /* twice, during a batch */
            k.restarted = false;
            pthread_create(&killer_thread, NULL, kill_restart, &k);
            kills++;
        }
        struct sp_batch *b = sp_batch_new(20);
        b->seq = (uint64_t)i + 1;
        for (int j = i; j < i + 20 && j < g.n; j++)
            ct_add(b, &g.alerts[j]);
        int64_t deadline = sp_now_ms() + 30000;
        enum sp_err e;
        while ((e = sp_stage_process(t.st, b)) == SP_ERR_RETRY &&
               sp_now_ms() < deadline) {
            retries++;
            char why[200];
            if (!t.st->type->ready(t.st, why, sizeof(why)))
                seen_not_ready = true;
            t.st->type->tick(t.st, sp_now_ms());
            sp_test_sleep_ms(20);
        }
        T_EQ_INT(e, SP_OK);
        /* Every alert of the batch left with its incident. */
        for (size_t m = 0; m < b->n; m++)
            T_OK(b->msgs[m].n_alerts == 1 &&
                 b->msgs[m].alerts[0]->incident_id != NULL);
        sp_batch_free(b);
        if (i == 100 || i == 300) {
            pthread_join(killer_thread, NULL);
            T_OK(k.restarted);
        }
    }
    T_EQ_INT(kills, 2);
    T_OK(retries > 0);
    T_OK(seen_not_ready);
    char why[200];
    T_OK(t.st->type->ready(t.st, why, sizeof(why)));
    /* Whatever the crash left unpublished goes out from the outbox (a
     * batch replayed after a kill reports the incidents its alerts are in
     * now, not those they were merged out of). */
    struct ct *tp = &t;
    int64_t deadline = sp_now_ms() + 5000;
    while (zcard(victim, "sp:{t:t1}:out") != 0 && sp_now_ms() < deadline) {
        tp->st->type->tick(tp->st, sp_now_ms());
        sp_test_sleep_ms(10);
    }
    T_EQ_INT(zcard(victim, "sp:{t:t1}:out"), 0);
    char *got = ct_partition(&t);
    T_OK(strcmp(want, got) == 0);
    all_held_once(&t, &g);
    T_EQ_INT(check_redis_state(victim, &g), 0);
    free(want);
    free(got);
    ct_close(&t);
    gen_free(&g);
}

static void test_redis_killed_midstream(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_test_redis pr;
    memset(&pr, 0, sizeof(pr));
    pr.persist = true;
    T_EQ_INT(sp_test_redis_start(&pr), 1);
    killed_midstream(&pr, &pr, false);
    sp_test_redis_stop(&pr);
}

/* The same with deferred snapshots: the reads owed by the batch before
 * are lost with the connection too, and must go out all the same. */
static void test_redis_killed_midstream_deferred(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_test_redis pr;
    memset(&pr, 0, sizeof(pr));
    pr.persist = true;
    T_EQ_INT(sp_test_redis_start(&pr), 1);
    killed_midstream(&pr, &pr, true);
    sp_test_redis_stop(&pr);
}

/* The same against a Redis Cluster of two persistent masters: the master
 * that holds the tenant is killed while the stage's configured endpoint
 * (the other master) stays up.  The stage must treat the lost master like
 * a lost server (wait, reconnect, resume) and lose nothing. */
static void test_cluster_master_killed_midstream(void)
{
    SKIP_WITHOUT_REDIS();
    if (ct_defer() || ct_cluster.n)
        T_SKIP("runs both modes on its own cluster (plain run only)");
    /* Both ways of publishing snapshots, each on a fresh cluster. */
    for (int defer = 0; defer < 2; defer++) {
        static struct sp_test_cluster cl;
        const char *opts[] = {"--cluster-node-timeout", "1000"};
        int rc = sp_test_cluster_start_opts(&cl, 2, true, opts, 2);
        T_EQ_INT(rc, 1);
        if (rc != 1)
            return;
        /* t1's slot: which master holds it? (the first 0-8191) */
        long long sl = sp_test_redis_int(&cl.node[0], NULL,
                                         "CLUSTER KEYSLOT %s", "sp:{t:t1}:x");
        int home = sl < 0 ? -1 : sl < 8192 ? 0 : 1;
        T_OK(home >= 0);
        if (home >= 0)
            killed_midstream(&cl.node[1 - home], &cl.node[home], defer);
        sp_test_cluster_stop(&cl);
    }
}

/* A tenant name whose keys hash into slots lo..hi. */
static bool tenant_in_slots(struct sp_test_redis *r, long long lo, long long hi,
                            char *out, size_t n)
{
    for (int i = 0; i < 1000; i++) {
        char cand[16], key[64];
        snprintf(cand, sizeof(cand), "ten%d", i);
        snprintf(key, sizeof(key), "sp:{t:%s}:x", cand);
        long long sl = sp_test_redis_int(r, NULL, "CLUSTER KEYSLOT %s", key);
        if (sl >= lo && sl <= hi) {
            snprintf(out, n, "%s", cand);
            return true;
        }
    }
    return false;
}

/* Runs a batch until it is no longer SP_ERR_RETRY (30 s at most), ticking
 * the stage in between; counts the retries. */
static enum sp_err run_until_done(struct ct *t, const struct ct_alert *in,
                                  size_t n, struct ct_res *r, int *retries)
{
    int64_t deadline = sp_now_ms() + 30000;
    enum sp_err e;
    while ((e = ct_run(t, in, n, r)) == SP_ERR_RETRY && sp_now_ms() < deadline) {
        (*retries)++;
        t->st->type->tick(t->st, sp_now_ms());
        sp_test_sleep_ms(50);
    }
    return e;
}

/*
 * The configured endpoint is a master that dies for good and its replica
 * takes over (CLUSTER FAILOVER TAKEOVER, as an operator would).  The
 * stage must find the cluster again through the other nodes it learnt
 * from the slot map, and carry on with the replica's copy of the state:
 * new alerts join the incidents made before the failover.
 */
static void test_cluster_failover_endpoint_lost(void)
{
    SKIP_WITHOUT_REDIS();
    if (ct_cluster.n)
        T_SKIP("starts its own cluster (plain and deferred runs)");
    static struct sp_test_cluster cl;
    const char *opts[] = {"--cluster-node-timeout", "1000"};
    int rc = sp_test_cluster_start_opts(&cl, 2, false, opts, 2);
    T_EQ_INT(rc, 1);
    if (rc != 1)
        return;
    int rk = sp_test_cluster_add_replica(&cl, 0, opts, 2);
    T_OK(rk == 2);
    char ta[16], tb[16];
    bool ok = rk == 2 && tenant_in_slots(&cl.node[0], 0, 8191, ta, sizeof(ta)) &&
              tenant_in_slots(&cl.node[0], 8192, 16383, tb, sizeof(tb));
    T_OK(ok);
    if (!ok) {
        sp_test_cluster_stop(&cl);
        return;
    }
    const char *sets[] = {"redis.backoff_min=20ms", "redis.backoff_max=200ms",
                          "redis.connect_timeout=500ms",
                          "redis.command_timeout=2s", NULL};
    struct ct t;
    T_OK(ct_stage(&t, &cl.node[0], sets));
    struct ct_alert in[2] = {
        A(.id = "fo-a1", .tenant = ta, .ents = "host:h1", .t = 1),
        A(.id = "fo-b1", .tenant = tb, .ents = "host:h1", .t = 1)};
    struct ct_res before[2], after[2];
    int retries = 0;
    T_EQ_INT(run_until_done(&t, in, 2, before, &retries), SP_OK);
    T_OK(before[0].present && before[1].present);
    /* The replica has every write before its master goes (WAIT would only
     * cover this connection's writes: compare replication offsets). */
    const char *info = "INFO replication";
    long long want = sp_test_redis_int(&cl.node[0], "master_repl_offset:", info);
    T_OK(want > 0);
    for (int i = 0; i < 200 && sp_test_redis_int(&cl.node[rk], "slave_repl_offset:",
                                                 info) < want; i++)
        sp_test_sleep_ms(25);
    T_OK(sp_test_redis_int(&cl.node[rk], "slave_repl_offset:", info) >= want);
    sp_test_redis_kill(&cl.node[0], SIGKILL);
    redisReply *rep;
    rep = sp_test_redis_cmd(&cl.node[rk], "CLUSTER FAILOVER TAKEOVER");
    T_OK(rep && rep->type == REDIS_REPLY_STATUS);
    if (rep)
        freeReplyObject(rep);
    for (int i = 0; i < 200 && !(sp_test_cluster_node_ok(&cl.node[1]) &&
                                 sp_test_cluster_node_ok(&cl.node[rk])); i++)
        sp_test_sleep_ms(50);

    struct ct_alert in2[2] = {
        A(.id = "fo-a2", .tenant = ta, .ents = "host:h1", .t = 2),
        A(.id = "fo-b2", .tenant = tb, .ents = "host:h1", .t = 2)};
    T_EQ_INT(run_until_done(&t, in2, 2, after, &retries), SP_OK);
    T_EQ_STR(after[0].inc, before[0].inc);
    T_EQ_STR(after[1].inc, before[1].inc);
    T_EQ_INT((long long)after[0].rejects + (long long)after[1].rejects, 0);
    char why[256] = "";
    T_OK(t.st->type->ready(t.st, why, sizeof(why)));
    T_EQ_INT((long long)sp_test_sink_count(&t.sink, "dlq"), 0);
    /* The incident now lives on the promoted replica. */
    rep = sp_test_redis_cmd(&cl.node[rk], "HGET sp:{t:%s}:i:%s n", ta, after[0].inc);
    T_OK(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "2") == 0);
    if (rep)
        freeReplyObject(rep);
    ct_close(&t);
    sp_test_cluster_stop(&cl);
}

/* An assembly is due one settle delay after its first row: later rows of
 * the same alert do not put it off (a steady trickle of evidence would
 * otherwise keep the alert from ever being emitted). */
static void test_defender_settle_from_first_row(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=10s", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:sf1";
    struct ct_alert rows[] = {
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "host:sf1", .t = 0,
          .source = "defender-streaming"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "host:sf2", .t = 1,
          .source = "defender-streaming"),
    };
    struct timespec w0, w1;               /* the scripts get wall ms */
    clock_gettime(CLOCK_REALTIME, &w0);
    T_EQ_INT(ct_run(&t, &rows[0], 1, NULL), SP_OK);
    clock_gettime(CLOCK_REALTIME, &w1);
    long long due = sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:asmdue %s", id);
    T_OK(due >= w0.tv_sec * 1000LL + w0.tv_nsec / 1000000 + 10000 &&
         due <= w1.tv_sec * 1000LL + w1.tv_nsec / 1000000 + 10000);
    sp_test_sleep_ms(50);
    T_EQ_INT(ct_run(&t, &rows[1], 1, NULL), SP_OK);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HLEN sp:{t:t1}:asm:%s", id) >= 2, 1);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "ZSCORE sp:{t:t1}:asmdue %s", id), due);
    ct_close(&t);
}

/* ---- Defender AlertInfo / AlertEvidence ------------------------------------ */

static size_t count_alerts(struct ct *t)
{
    return sp_test_sink_count(&t->sink, "alerts");
}

static bool one_alert(struct ct *t)
{
    return count_alerts(t) >= 1;
}

static bool two_alerts(struct ct *t)
{
    return count_alerts(t) >= 2;
}

static bool due_empty(struct ct *t)
{
    return zcard(t->redis, "sp:{t:t1}:asmdue") == 0;
}

static json_t *last_alert(struct ct *t)
{
    json_t *doc = NULL;
    for (size_t i = 0; i < t->sink.n; i++)
        if (strcmp(t->sink.outs[i].topic, "alerts") == 0) {
            json_decref(doc);
            doc = json_loads(t->sink.outs[i].value, 0, NULL);
        }
    return doc;
}

static bool entity_in(json_t *alert, const char *key)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(alert, "entities"), i, e)
        if (strcmp(ct_jstr(e, "key"), key) == 0)
            return true;
    return false;
}

static void test_defender_assembly(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=200ms",
                          "correlate.defender.lease=1s", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:da1";
    struct ct_alert rows[] = {
        A(.id = id, .part = SP_PART_INFO, .title = "Suspicious PowerShell",
          .sev = SP_SEV_HIGH, .t = 0, .source = "defender-streaming",
          .raw = "{\"category\":\"AdvancedHunting-AlertInfo\"}"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "host:ws7.contoso.com",
          .t = 0, .source = "defender-streaming",
          .raw = "{\"EntityType\":\"Machine\"}"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "account:eve@contoso.com",
          .t = 0, .source = "defender-streaming",
          .raw = "{\"EntityType\":\"User\"}"),
    };
    struct ct_res r[3];
    int64_t start = sp_now_ms();
    T_EQ_INT(ct_run(&t, rows, 3, r), SP_OK);
    for (int i = 0; i < 3; i++) {
        T_OK(!r[i].present);        /* stored, not published as rows */
        T_EQ_INT(r[i].rejects, 0);
    }
    t.st->type->tick(t.st, sp_now_ms());
    T_EQ_INT(count_alerts(&t), 0);  /* settling */
    T_OK(ct_tick_until(&t, one_alert, 3000));
    T_OK(sp_now_ms() - start >= 190);
    json_t *al = last_alert(&t);
    T_EQ_STR(ct_jstr(al, "id"), id);
    T_EQ_STR(ct_jstr(al, "title"), "Suspicious PowerShell");
    T_EQ_STR(ct_jstr(al, "severity"), "high");
    T_EQ_STR(ct_jstr(al, "part"), "whole");
    T_OK(entity_in(al, "host:ws7.contoso.com"));
    T_OK(entity_in(al, "account:eve@contoso.com"));
    const char *inc = ct_jstr(al, "incident_id");
    T_OK(inc != NULL);
    char incid[80];
    snprintf(incid, sizeof(incid), "%s", inc ? inc : "");
    json_decref(al);
    json_t *snap = ct_latest(&t, incid);
    T_EQ_INT(ct_jint(snap, "alerts_total"), 1);
    json_decref(snap);
    T_OK(ct_tick_until(&t, due_empty, 3000));     /* removed once acked */
    /* A replayed row changes nothing; a late row re-emits the alert. */
    T_EQ_INT(ct_run(&t, &rows[1], 1, NULL), SP_OK);
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 0);
    struct ct_alert late = A(.id = id, .part = SP_PART_EVIDENCE,
                             .ents = "ip:198.51.100.7", .t = 5,
                             .source = "defender-streaming");
    T_EQ_INT(ct_run(&t, &late, 1, NULL), SP_OK);
    T_OK(ct_tick_until(&t, two_alerts, 3000));
    al = last_alert(&t);
    T_OK(entity_in(al, "ip:198.51.100.7"));
    T_OK(entity_in(al, "host:ws7.contoso.com"));
    T_EQ_STR(ct_jstr(al, "incident_id"), incid);
    json_decref(al);
    snap = ct_latest(&t, incid);
    T_EQ_INT(ct_jint(snap, "alerts_total"), 1);
    T_EQ_INT(ct_jint(snap, "version"), 2);          /* an update */
    json_decref(snap);
    /* Other alerts correlate with it like with any alert. */
    struct ct_res rr;
    T_EQ_INT(ct_one(&t, &A(.id = "graph:x", .ents = "account:eve@contoso.com", .t = 9), &rr), SP_OK);
    T_EQ_STR(rr.inc, incid);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_defender_assembled_total{stage=\"correlate.0\"}"), 2);
    /* Produced by correlate itself, counted with the publish stage's. */
    T_EQ_INT(ct_metric(&t, "socpilot_published_alerts_total"), 2);
    ct_close(&t);
}

/* An emission whose output is not acknowledged stays due and comes back
 * after the lease. */
static void test_defender_durable(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=50ms",
                          "correlate.defender.lease=1s", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert rows[] = {
        A(.id = "defender-streaming:da2", .part = SP_PART_INFO, .title = "T",
          .t = 0, .source = "defender-streaming"),
        A(.id = "defender-streaming:da2", .part = SP_PART_EVIDENCE,
          .ents = "host:ws8", .t = 0, .source = "defender-streaming"),
    };
    T_EQ_INT(ct_run(&t, rows, 2, NULL), SP_OK);
    t.sink.mode = SP_TEST_ACK_FAIL;
    T_OK(ct_tick_until(&t, one_alert, 3000));
    t.st->type->tick(t.st, sp_now_ms());
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 1);     /* still owed */
    t.sink.mode = SP_TEST_ACK_OK;
    T_OK(ct_tick_until(&t, two_alerts, 4000));             /* after the lease */
    T_OK(ct_tick_until(&t, due_empty, 3000));
    ct_close(&t);
}

/* Rows whose parse trees together pass the tick's 256 MiB arena (40
 * evidence records of ~150k JSON nodes each, each within the decoder's
 * default limits).  The assembly used to be marked done unemitted: out of
 * memory passed for "nothing usable".  Alone in its poll and too big for
 * memory, it now goes out with the rows that fit, logged and counted. */
#define BIG_ROWS 40
static void test_defender_arena_exhausted(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=50ms",
                          "correlate.defender.lease=1s",
                          "correlate.defender.max_bytes=64MiB", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:big1";
    static char *raws[BIG_ROWS];
    static char ents[BIG_ROWS][32];
    struct ct_alert rows[BIG_ROWS + 1];
    rows[0] = A(.id = id, .part = SP_PART_INFO, .title = "Big", .t = 0,
                .source = "defender-streaming");
    size_t nodes = 150000;
    for (int i = 0; i < BIG_ROWS; i++) {
        raws[i] = malloc(nodes * 2 + 64);
        char *w = raws[i];
        w += sprintf(w, "{\"i\":%d,\"x\":[", i);
        for (size_t k = 0; k < nodes; k++) {
            *w++ = '0';
            *w++ = k + 1 < nodes ? ',' : ']';
        }
        strcpy(w, "}");
        snprintf(ents[i], sizeof(ents[i]), "host:big%02d", i);
        rows[i + 1] = A(.id = id, .part = SP_PART_EVIDENCE, .ents = ents[i],
                        .t = 0, .source = "defender-streaming",
                        .raw = raws[i]);
    }
    for (int i = 0; i <= BIG_ROWS; i++)
        T_EQ_INT(ct_run(&t, &rows[i], 1, NULL), SP_OK);
    T_OK(ct_tick_until(&t, one_alert, 10000));
    json_t *al = last_alert(&t);
    int have = 0;
    for (int i = 0; i < BIG_ROWS; i++)
        have += entity_in(al, ents[i]);
    json_decref(al);
    long long left = ct_metric(&t, "socpilot_correlate_defender_rows_left_out"
                                   "_total{stage=\"correlate.0\"}");
    T_OK(have == BIG_ROWS || (left == 1 && have > 0));
    for (int i = 0; i < BIG_ROWS; i++)
        free(raws[i]);
    ct_close(&t);
}

/* An evidence row sent again with other bytes around the same content (a
 * re-sent export: another envelope, another serialization) is the row
 * already stored: nothing to emit again.  It used to be stored as a
 * second row, and the alert emitted again. */
static void test_defender_resent_row(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=50ms",
                          "correlate.defender.lease=1s", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:rs1";
    struct ct_alert rows[] = {
        A(.id = id, .part = SP_PART_INFO, .title = "T", .t = 0,
          .source = "defender-streaming"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "host:rs1", .t = 0,
          .source = "defender-streaming",
          .raw = "{\"time\":\"2026-11-29T10:00:00Z\",\"EntityType\":\"Machine\"}"),
    };
    T_EQ_INT(ct_run(&t, rows, 2, NULL), SP_OK);
    T_OK(ct_tick_until(&t, one_alert, 3000));
    T_OK(ct_tick_until(&t, due_empty, 3000));
    struct ct_alert again = rows[1];
    again.raw = "{ \"time\": \"2026-11-29T10:05:00Z\", \"EntityType\": \"Machine\" }";
    struct ct_res r;
    T_EQ_INT(ct_run(&t, &again, 1, &r), SP_OK);
    T_EQ_INT(r.rejects, 0);
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 0);     /* nothing new */
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HLEN sp:{t:t1}:asm:%s", id),
             6);                    /* info, one row, t0, rev, sz, em */
    t.st->type->tick(t.st, sp_now_ms() + 1000);
    T_EQ_INT(count_alerts(&t), 1);
    /* Another entity is another row. */
    struct ct_alert other = rows[1];
    other.ents = "host:rs2";
    T_EQ_INT(ct_run(&t, &other, 1, NULL), SP_OK);
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 1);
    T_OK(ct_tick_until(&t, two_alerts, 3000));
    ct_close(&t);
}

/* A poll takes what its memory allows: each tenant's take brings at most
 * its share of correlate.defender.poll_bytes (1 MiB here, one tenant), and
 * the others stay due for the next poll: three assemblies of 600 KB go
 * out one per poll (the poll used to lease and hold them all at once,
 * however big).  Two assemblies of 1.2 MB, each bigger than the share,
 * are taken alone, one per poll. */
static void test_defender_poll_bytes(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=20ms",
                          "correlate.defender.poll=10ms",
                          "correlate.defender.max_wait=0",
                          "correlate.defender.lease=30s",
                          "correlate.defender.poll_bytes=1MiB",
                          "correlate.defender.max_bytes=2MiB", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    size_t big = 600000;
    char *raw = malloc(big + 16);
    T_OK(raw != NULL);
    if (!raw)
        return;
    memcpy(raw, "{\"x\":\"", 6);
    memset(raw + 6, 'a', big);
    strcpy(raw + 6 + big, "\"}");
    static const char *const ids[] = {"defender-streaming:pb1",
                                      "defender-streaming:pb2",
                                      "defender-streaming:pb3"};
    static const char *const hosts[] = {"host:pb1", "host:pb2", "host:pb3"};
    for (int i = 0; i < 3; i++) {
        struct ct_alert row = A(.id = ids[i], .part = SP_PART_EVIDENCE,
                                .ents = hosts[i], .t = 0,
                                .source = "defender-streaming", .raw = raw);
        struct ct_res r;
        T_EQ_INT(ct_run(&t, &row, 1, &r), SP_OK);
        T_EQ_INT(r.rejects, 0);
    }
    struct ct_res r;
    sp_test_sleep_ms(40);           /* settled: all three due */
    for (int poll = 1; poll <= 3; poll++) {
        sp_test_sleep_ms(15);
        t.st->type->tick(t.st, sp_now_ms());
        T_EQ_INT(count_alerts(&t), poll);
    }
    /* Two rows of 600 KB each: bigger than the share, taken alone. */
    static const char *const bigs[] = {"defender-streaming:pb5",
                                       "defender-streaming:pb6"};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            char host[32];
            snprintf(host, sizeof(host), "host:pbb%d%d", i, k);
            struct ct_alert row = A(.id = bigs[i], .part = SP_PART_EVIDENCE,
                                    .ents = host, .t = 0,
                                    .source = "defender-streaming",
                                    .raw = raw);
            T_EQ_INT(ct_run(&t, &row, 1, &r), SP_OK);
            T_EQ_INT(r.rejects, 0);
        }
    sp_test_sleep_ms(40);
    for (int poll = 1; poll <= 2; poll++) {
        sp_test_sleep_ms(15);
        t.st->type->tick(t.st, sp_now_ms());
        T_EQ_INT(count_alerts(&t), 3 + poll);
    }
    /* A fourth row of 600 KB would take an alert past max_bytes. */
    for (int k = 0; k < 4; k++) {
        char host[32];
        snprintf(host, sizeof(host), "host:pbm%d", k);
        struct ct_alert row = A(.id = "defender-streaming:pbm",
                                .part = SP_PART_EVIDENCE, .ents = host,
                                .t = 0, .source = "defender-streaming",
                                .raw = raw);
        T_EQ_INT(ct_run(&t, &row, 1, &r), SP_OK);
        T_EQ_INT(r.rejects, k == 3);
    }
    T_EQ_STR(r.reason, "too_many_rows");
    free(raw);
    ct_close(&t);
}

/* What the scripts stage adds to a row (its "scripts" section: the
 * analyses of the row's command lines) goes out with the assembled alert,
 * the rows' arrays in one, each entry once.  It used to be lost: rows
 * were stored without it. */
static void test_defender_scripts_kept(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=20ms",
                          "correlate.defender.lease=1s", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:sk1";
    struct ct_alert rows[] = {
        A(.id = id, .part = SP_PART_INFO, .title = "Encoded PowerShell",
          .t = 0, .source = "defender-streaming"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "process:p1", .t = 0,
          .source = "defender-streaming",
          .scripts = "[{\"entity\":\"process:p1\",\"verdict\":\"malicious\"}]"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "process:p2", .t = 0,
          .source = "defender-streaming",
          .scripts = "[{\"entity\":\"process:p2\",\"verdict\":\"suspicious\"},"
                     "{\"entity\":\"process:p1\",\"verdict\":\"malicious\"}]"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "host:sk1", .t = 0,
          .source = "defender-streaming"),
    };
    T_EQ_INT(ct_run(&t, rows, 4, NULL), SP_OK);
    T_OK(ct_tick_until(&t, one_alert, 3000));
    json_t *al = last_alert(&t);
    json_t *sc = json_object_get(al, "scripts");
    T_OK(json_is_array(sc));
    T_EQ_INT(json_array_size(sc), 2);
    size_t i;
    json_t *e;
    int p1 = 0, p2 = 0;
    json_array_foreach(sc, i, e) {
        p1 += strcmp(ct_jstr(e, "entity"), "process:p1") == 0;
        p2 += strcmp(ct_jstr(e, "entity"), "process:p2") == 0;
    }
    T_EQ_INT(p1, 1);
    T_EQ_INT(p2, 1);
    json_decref(al);
    ct_close(&t);
}

static long long limbo_n(const char *set)
{
    return sp_test_redis_int(&ct_redis, NULL, "SCARD {%s}:limbo", set);
}

static bool limbo_empty(struct ct *t)
{
    (void)t;
    return limbo_n("sp:tenants") == 0 && limbo_n("sp:tenants:asm") == 0;
}

static bool pending_published(struct ct *t)
{
    return sp_test_sink_count(&t->sink, "incidents") > 0;
}

/* A walk that drops a tenant moves it to the set's limbo first; a process
 * that dies (or loses Redis) before it looked again leaves it there.  The
 * next walk settles it: back to the set with work, out with none.  Here:
 * "pending" (an unacknowledged outbox entry) and "rows" (a due Defender
 * assembly) left in limbo are walked again and their work gets out;
 * "idle" (nothing) leaves.  Without the limbo, a tenant so dropped was
 * never walked again: its Defender alert never emitted while rows kept
 * its assemblies due. */
static void test_tenant_limbo(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.outbox.grace=0",
                          "correlate.outbox.interval=100ms",
                          "correlate.defender.settle=20ms",
                          "correlate.defender.poll=10ms",
                          "correlate.defender.max_wait=0", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    t.sink.mode = SP_TEST_ACK_FAIL;
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1", .tenant = "pending"),
                    NULL), SP_OK);
    ct_settle(&t);
    struct ct_alert row = A(.id = "defender-streaming:lb1",
                            .part = SP_PART_EVIDENCE, .ents = "host:lb1",
                            .t = 0, .tenant = "rows",
                            .source = "defender-streaming");
    T_EQ_INT(ct_run(&t, &row, 1, NULL), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1", .tenant = "idle"),
                    NULL), SP_OK);
    ct_settle(&t);
    t.sink.mode = SP_TEST_ACK_OK;
    sp_test_sink_clear(&t.sink);
    expire_tenant("idle", NULL);
    /* A walker died after its first move. */
    static const char *const moves[][2] = {{"sp:tenants", "pending"},
                                           {"sp:tenants", "idle"},
                                           {"sp:tenants:asm", "rows"}};
    for (size_t i = 0; i < SP_ARRAY_SIZE(moves); i++)
        T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "SMOVE %s {%s}:limbo %s",
                                   moves[i][0], moves[i][0], moves[i][1]), 1);
    T_OK(!is_tenant("pending"));
    T_OK(ct_tick_until(&t, limbo_empty, 3000));
    T_OK(is_tenant("pending"));
    T_OK(!is_tenant("idle"));
    /* Back in its set, unless the poll emitted its alert meanwhile (and
     * dropped it as idle): the alert goes out either way. */
    T_OK(sp_test_redis_int(&ct_redis, NULL,
                           "SISMEMBER sp:tenants:asm rows") == 1 ||
         one_alert(&t));
    T_OK(ct_tick_until(&t, pending_published, 3000));
    T_OK(ct_tick_until(&t, one_alert, 3000));
    ct_close(&t);
}

static bool asm_dropped(struct ct *t)
{
    SP_UNUSED(t);
    return sp_test_redis_int(&ct_redis, NULL,
                             "SISMEMBER sp:tenants:asm t1") == 0;
}

/* An instance stored the first row of a new assembly of a tenant the poll
 * had dropped (asmdue empty) and died before adding the tenant again
 * after the reply.  The row is replayed by another instance that cached
 * the tenant's registration before the drop: the row is one already
 * stored (no flag), yet the tenant must be added again, else the alert is
 * never emitted, nor any later one (no row finds asmdue empty again). */
static void test_defender_replay_registers(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=20ms",
                          "correlate.defender.poll=10ms",
                          "correlate.defender.max_wait=0", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert r1 = A(.id = "defender-streaming:rp1",
                           .part = SP_PART_EVIDENCE, .ents = "host:rp1",
                           .t = 0, .source = "defender-streaming");
    T_EQ_INT(ct_run(&t, &r1, 1, NULL), SP_OK);
    T_OK(ct_tick_until(&t, one_alert, 3000));
    T_OK(ct_tick_until(&t, due_empty, 3000));
    T_OK(ct_tick_until(&t, asm_dropped, 3000));
    /* The instance that dies: its registrations fail, its script runs. */
    struct ct x;
    T_OK(ct_stage(&x, NULL, sets));
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "SET sp:tenants:asm broken"),
             -1);
    struct ct_alert r2 = A(.id = "defender-streaming:rp2",
                           .part = SP_PART_EVIDENCE, .ents = "host:rp2",
                           .t = 0, .source = "defender-streaming");
    T_OK(ct_run(&x, &r2, 1, NULL) != SP_OK);
    ct_close(&x);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "DEL sp:tenants:asm"), 1);
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 1);
    /* The replay, by the instance that registered t1 before. */
    T_EQ_INT(ct_run(&t, &r2, 1, NULL), SP_OK);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL,
                               "SISMEMBER sp:tenants:asm t1"), 1);
    T_OK(ct_tick_until(&t, two_alerts, 3000));
    ct_close(&t);
}

/* The bytes of an assembly stored without sz (by a version before it, so
 * for as long as correlate.retention keeps such hashes) are counted when
 * its next row comes: they were taken for 0, so max_bytes let as many
 * bytes again in, and a smaller AlertInfo row replacing a big one took sz
 * below zero. */
static void test_defender_bytes_without_sz(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.max_bytes=1MiB", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    size_t big = 600000;
    char *raw = malloc(big + 16);
    T_OK(raw != NULL);
    if (!raw)
        return;
    memcpy(raw, "{\"x\":\"", 6);
    memset(raw + 6, 'a', big);
    strcpy(raw + 6 + big, "\"}");
    /* Evidence: the second big row is past max_bytes. */
    const char *id1 = "defender-streaming:ns1";
    struct ct_alert ev[] = {
        A(.id = id1, .part = SP_PART_EVIDENCE, .ents = "host:ns1", .t = 0,
          .source = "defender-streaming", .raw = raw),
        A(.id = id1, .part = SP_PART_EVIDENCE, .ents = "host:ns2", .t = 0,
          .source = "defender-streaming", .raw = raw),
    };
    struct ct_res r;
    T_EQ_INT(ct_run(&t, &ev[0], 1, &r), SP_OK);
    T_EQ_INT(r.rejects, 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HDEL sp:{t:t1}:asm:%s sz",
                               id1), 1);
    T_EQ_INT(ct_run(&t, &ev[1], 1, &r), SP_OK);
    T_EQ_INT(r.rejects, 1);
    T_EQ_STR(r.reason, "too_many_rows");
    /* AlertInfo: a smaller row in place of a big one. */
    const char *id2 = "defender-streaming:ns3";
    struct ct_alert info[] = {
        A(.id = id2, .part = SP_PART_INFO, .title = "T", .t = 0,
          .source = "defender-streaming", .raw = raw),
        A(.id = id2, .part = SP_PART_INFO, .title = "T2", .t = 0,
          .source = "defender-streaming", .raw = "{}"),
    };
    T_EQ_INT(ct_run(&t, &info[0], 1, &r), SP_OK);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HDEL sp:{t:t1}:asm:%s sz",
                               id2), 1);
    T_EQ_INT(ct_run(&t, &info[1], 1, &r), SP_OK);
    T_EQ_INT(r.rejects, 0);
    long long sz = sp_test_redis_int(&ct_redis, NULL,
                                     "HGET sp:{t:t1}:asm:%s sz", id2);
    T_EQ_INT(sz, sp_test_redis_int(&ct_redis, NULL,
                                   "HSTRLEN sp:{t:t1}:asm:%s info", id2));
    free(raw);
    ct_close(&t);
}

/* The AlertInfo row sent again in another envelope is the row already
 * stored, as an evidence row is: nothing to emit again.  Its bytes
 * differed, so it replaced the stored row and the alert went out again
 * (and, near max_bytes, a re-sent copy a few bytes longer went to the DLQ
 * as too_many_rows).  An AlertInfo row that says something else is still
 * an update. */
static void test_defender_resent_info(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=50ms",
                          "correlate.defender.lease=1s", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    const char *id = "defender-streaming:ri1";
    struct ct_alert rows[] = {
        A(.id = id, .part = SP_PART_INFO, .title = "T", .t = 0,
          .source = "defender-streaming",
          .raw = "{\"time\":\"2026-11-29T10:00:00Z\",\"Title\":\"T\"}"),
        A(.id = id, .part = SP_PART_EVIDENCE, .ents = "host:ri1", .t = 0,
          .source = "defender-streaming"),
    };
    T_EQ_INT(ct_run(&t, rows, 2, NULL), SP_OK);
    T_OK(ct_tick_until(&t, one_alert, 3000));
    T_OK(ct_tick_until(&t, due_empty, 3000));
    struct ct_alert again = rows[0];
    again.raw = "{ \"time\": \"2026-11-29T10:05:00Z\", \"Title\": \"T\" }";
    struct ct_res r;
    T_EQ_INT(ct_run(&t, &again, 1, &r), SP_OK);
    T_EQ_INT(r.rejects, 0);
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 0);     /* nothing new */
    t.st->type->tick(t.st, sp_now_ms() + 1000);
    T_EQ_INT(count_alerts(&t), 1);
    struct ct_alert upd = rows[0];
    upd.title = "T2";
    T_EQ_INT(ct_run(&t, &upd, 1, NULL), SP_OK);
    T_EQ_INT(zcard(&ct_redis, "sp:{t:t1}:asmdue"), 1);
    T_OK(ct_tick_until(&t, two_alerts, 3000));
    json_t *al = last_alert(&t);
    T_EQ_STR(ct_jstr(al, "title"), "T2");
    json_decref(al);
    ct_close(&t);
}

int main(void)
{
    t_prog = "test_correlate_state";
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    T_RUN(test_same_input_same_grouping);
    T_RUN(test_one_call_same_grouping);
    T_RUN(test_deferred_snapshots);
    T_RUN(test_deferred_read_refused);
    T_RUN(test_call_error_keeps_order);
    T_RUN(test_two_instances);
    T_RUN(test_big_merge);
    T_RUN(test_replay_republishes);
    T_RUN(test_outbox_recovery);
    T_RUN(test_snapshots_land_out_of_order);
    T_RUN(test_unacked_landing_repaired);
    T_RUN(test_refused_publish_unmarked);
    T_RUN(test_ack_script);
    T_RUN(test_landing_recorded);
    T_RUN(test_idle_tenants_forgotten);
    T_RUN(test_outbox_entry_of_expired_incident);
    T_RUN(test_redis_killed_midstream);
    T_RUN(test_redis_killed_midstream_deferred);
    T_RUN(test_cluster_master_killed_midstream);
    T_RUN(test_cluster_failover_endpoint_lost);
    T_RUN(test_defender_assembly);
    T_RUN(test_defender_settle_from_first_row);
    T_RUN(test_defender_durable);
    T_RUN(test_defender_arena_exhausted);
    T_RUN(test_defender_resent_row);
    T_RUN(test_defender_poll_bytes);
    T_RUN(test_tenant_limbo);
    T_RUN(test_defender_replay_registers);
    T_RUN(test_defender_bytes_without_sz);
    T_RUN(test_defender_resent_info);
    T_RUN(test_defender_scripts_kept);
    return t_done();
}
