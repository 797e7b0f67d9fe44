/*
 * test_correlate.c - the correlate stage against a real redis-server: one
 * scenario per rule of docs/correlation.md (chains, bridges and merges,
 * window expiry, noisy entities by stop-list and automatically, grouping
 * modes and per-detector rules, flood control, closed incidents, the
 * alert cap, tenants, duplicates and updates, provider grouping), plus
 * constant round trips per batch and the snapshot contract.
 *
 * Skips (with a message) when redis-server is not installed.
 */
#include "t.h"

#include "cli.h"
#include "correlate_int.h"
#include "correlate_test.h"

#define SKIP_WITHOUT_REDIS()                                                \
    do {                                                                    \
        const char *why_;                                                   \
        if (!ct_redis_up(&why_))                                            \
            T_SKIP(why_);                                                   \
    } while (0)

#define A(...) ((struct ct_alert){__VA_ARGS__})
#define H 3600

static bool has_entity(json_t *inc, const char *key, const char *noisy)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(inc, "entities"), i, e) {
        if (strcmp(ct_jstr(e, "key"), key) != 0)
            continue;
        const char *n = ct_jstr(e, "noisy");
        if (!noisy)
            return true;
        return n && strcmp(n, noisy) == 0;
    }
    return false;
}

/* The why entry for alert_id in an incident snapshot. */
static json_t *why_of(json_t *inc, const char *alert_id)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(inc, "why"), i, w) {
        const char *a = ct_jstr(w, "alert");
        if (a && strcmp(a, alert_id) == 0)
            return w;
    }
    return NULL;
}

static bool list_has(json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    return false;
}

/* A{h1}, B{h1,u1}, C{u1}: one incident by a transitive chain; D apart. */
static void test_chain(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_alert in[] = {
        A(.id = "a", .ents = "host:h1.contoso.com", .t = 0),
        A(.id = "b", .ents = "host:h1.contoso.com account:u1@contoso.com", .t = 60),
        A(.id = "c", .ents = "account:u1@contoso.com", .t = 120),
        A(.id = "d", .ents = "ip:203.0.113.9", .t = 130),
    };
    struct ct_res r[4];
    T_EQ_INT(ct_run(&t, in, 4, r), SP_OK);
    T_OK(r[0].inc[0]);
    T_EQ_STR(r[1].inc, r[0].inc);
    T_EQ_STR(r[2].inc, r[0].inc);
    T_OK(strcmp(r[3].inc, r[0].inc) != 0);
    T_EQ_INT(r[0].version, 1);
    T_EQ_INT(r[2].version, 3);
    json_t *inc = ct_latest(&t, r[0].inc);
    T_OK(inc != NULL);
    T_EQ_INT(ct_jint(inc, "version"), 3);
    T_EQ_INT(ct_jint(inc, "alerts_total"), 3);
    T_EQ_STR(ct_jstr(inc, "status"), "active");
    T_EQ_STR(ct_jstr(inc, "tenant"), "t1");
    T_OK(has_entity(inc, "host:h1.contoso.com", NULL));
    T_OK(has_entity(inc, "account:u1@contoso.com", NULL));
    json_t *w = why_of(inc, "a");
    T_EQ_STR(ct_jstr(w, "how"), "new");
    w = why_of(inc, "b");
    T_EQ_STR(ct_jstr(w, "how"), "entity");
    T_OK(list_has(json_object_get(w, "entities"), "host:h1.contoso.com"));
    w = why_of(inc, "c");
    T_EQ_STR(ct_jstr(w, "how"), "entity");
    T_OK(list_has(json_object_get(w, "entities"), "account:u1@contoso.com"));
    /* Entities say which alerts carry them. */
    size_t i;
    json_t *e;
    int found = 0;
    json_array_foreach(json_object_get(inc, "entities"), i, e)
        if (strcmp(ct_jstr(e, "key"), "host:h1.contoso.com") == 0) {
            found++;
            T_EQ_INT(json_array_size(json_object_get(e, "alerts")), 2);
        }
    T_EQ_INT(found, 1);
    json_decref(inc);
    T_EQ_INT(ct_live(&t), 2);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"new\"}"), 2);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"joined\"}"), 2);
    ct_close(&t);
}

/* Two incidents bridged by a third alert merge; the oldest survives. */
static void test_bridge_merge(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res ra, rb, rc, rd, ru;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &ra), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "b", .ents = "account:u1", .t = 10), &rb), SP_OK);
    T_OK(strcmp(ra.inc, rb.inc) != 0);
    T_EQ_INT(ct_one(&t, &A(.id = "c", .ents = "host:h1 account:u1", .t = 20), &rc), SP_OK);
    T_EQ_STR(rc.inc, ra.inc);
    json_t *gone = ct_latest(&t, rb.inc);
    T_EQ_STR(ct_jstr(gone, "merged_into"), ra.inc);
    T_EQ_STR(ct_jstr(gone, "status"), "closed");
    T_EQ_STR(ct_jstr(gone, "closed_reason"), "merged");
    T_EQ_INT(json_array_size(json_object_get(gone, "alerts")), 0);
    T_EQ_INT(ct_jint(gone, "version"), 2);
    json_decref(gone);
    /* b's dedupe record ("hash\tincident\tupdated\tresolved") follows
     * it to the survivor: the merged incident is never refreshed again, so
     * a record still naming it would lose b's incident once that expires
     * (an update of b would then be taken for a new alert). */
    redisReply *rec = sp_test_redis_cmd(&ct_redis, "GET sp:{t:t1}:a:b");
    T_OK(rec && rec->type == REDIS_REPLY_STRING);
    if (rec && rec->type == REDIS_REPLY_STRING) {
        const char *tab = strchr(rec->str, '\t');
        size_t n = strlen(ra.inc);
        T_OK(tab && strncmp(tab + 1, ra.inc, n) == 0 && tab[1 + n] == '\t');
    }
    if (rec)
        freeReplyObject(rec);
    json_t *inc = ct_latest(&t, ra.inc);
    T_EQ_INT(ct_jint(inc, "alerts_total"), 3);
    T_OK(list_has(json_object_get(json_object_get(inc, "links"), "merged"), rb.inc));
    json_t *w = why_of(inc, "c");
    json_t *m = json_array_get(json_object_get(w, "merged"), 0);
    T_EQ_STR(ct_jstr(m, "incident"), rb.inc);
    T_OK(list_has(json_object_get(m, "entities"), "account:u1"));
    json_decref(inc);
    /* The merged incident's alerts and entities now lead to the survivor. */
    T_EQ_INT(ct_one(&t, &A(.id = "d", .ents = "account:u1", .t = 30), &rd), SP_OK);
    T_EQ_STR(rd.inc, ra.inc);
    T_EQ_INT(ct_one(&t, &A(.id = "b", .ents = "account:u1", .t = 10, .updated = 99,
                           .sev = SP_SEV_HIGH), &ru), SP_OK);
    T_EQ_STR(ru.inc, ra.inc);
    T_EQ_INT(ct_holders(&t, "b", NULL, 0), 1);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_merges_total{stage=\"correlate.0\"}"), 1);
    T_EQ_INT(ct_live(&t), 1);
    ct_close(&t);
}

/* An entity seen again after the window starts a new incident. */
static void test_window_expiry(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.window=24h", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r1, r2, r3, r4;
    T_EQ_INT(ct_one(&t, &A(.id = "w1", .ents = "host:h1", .t = 0), &r1), SP_OK);
    /* Status: new when opened, active once a second alert joins. */
    json_t *s = ct_latest(&t, r1.inc);
    T_EQ_STR(ct_jstr(s, "status"), "new");
    json_decref(s);
    T_EQ_INT(ct_one(&t, &A(.id = "w2", .ents = "host:h1", .t = 23 * 3600), &r2), SP_OK);
    T_EQ_STR(r2.inc, r1.inc);
    s = ct_latest(&t, r1.inc);
    T_EQ_STR(ct_jstr(s, "status"), "active");
    json_decref(s);
    T_EQ_INT(ct_one(&t, &A(.id = "w3", .ents = "host:h1", .t = 48 * 3600 + 1), &r3), SP_OK);
    T_OK(strcmp(r3.inc, r1.inc) != 0);
    /* Within the window of the new incident again. */
    T_EQ_INT(ct_one(&t, &A(.id = "w4", .ents = "host:h1", .t = 60 * 3600), &r4), SP_OK);
    T_EQ_STR(r4.inc, r3.inc);
    /* The window's end belongs to it: only an entity seen again *after*
     * the window starts a new incident (exactly 24h apart still joins; a
     * second more does not). */
    struct ct_res e1, e2, l1, l2;
    T_EQ_INT(ct_one(&t, &A(.id = "e1", .ents = "host:h2", .t = 0), &e1), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "e2", .ents = "host:h2", .t = 24 * 3600), &e2), SP_OK);
    T_EQ_STR(e2.inc, e1.inc);
    T_EQ_INT(ct_one(&t, &A(.id = "l1", .ents = "host:h3", .t = 0), &l1), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "l2", .ents = "host:h3", .t = 24 * 3600 + 1), &l2), SP_OK);
    T_OK(strcmp(l2.inc, l1.inc) != 0);
    ct_close(&t);
}

/* Stop-listed entities never correlate and are marked in the snapshot. */
static void test_noisy_stoplist(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.noisy.stoplist=host:dc*.contoso.com,"
                          "file:sha256:aaaa",
                          NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r1, r2;
    T_EQ_INT(ct_one(&t, &A(.id = "s1", .ents = "host:dc01.contoso.com account:u1", .t = 0), &r1), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "s2", .ents = "host:DC01.contoso.com account:u2 file:sha256:aaaa", .t = 5), &r2), SP_OK);
    T_OK(strcmp(r1.inc, r2.inc) != 0);
    json_t *inc = ct_latest(&t, r1.inc);
    T_OK(has_entity(inc, "host:dc01.contoso.com", "stoplist"));
    T_OK(list_has(json_object_get(why_of(inc, "s1"), "stoplisted"),
                  "host:dc01.contoso.com"));
    json_decref(inc);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_noisy_skipped_total{stage=\"correlate.0\",reason=\"stoplist\"}"), 2);
    ct_close(&t);
}

/* An entity that glues more than K unrelated groups stops correlating. */
static void test_noisy_auto(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.noisy.threshold=3", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r[7];
    char ents[64], id[16];
    for (int i = 0; i < 7; i++) {
        snprintf(ents, sizeof(ents), "ip:10.0.0.1 account:user%d", i);
        snprintf(id, sizeof(id), "n%d", i);
        T_EQ_INT(ct_one(&t, &A(.id = id, .ents = ents, .t = i * 60), &r[i]), SP_OK);
    }
    /* n0 opens; n1..n3 are glued by the proxy IP (3 unrelated groups);
     * then the IP is noisy and n4.. stand alone. */
    for (int i = 1; i <= 3; i++)
        T_EQ_STR(r[i].inc, r[0].inc);
    T_OK(strcmp(r[4].inc, r[0].inc) != 0);
    T_OK(strcmp(r[5].inc, r[4].inc) != 0);
    T_OK(strcmp(r[6].inc, r[5].inc) != 0);
    json_t *inc = ct_latest(&t, r[5].inc);
    T_OK(has_entity(inc, "ip:10.0.0.1", "auto"));
    T_OK(list_has(json_object_get(why_of(inc, "n5"), "noisy"), "ip:10.0.0.1"));
    json_decref(inc);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_noisy_entities_detected_total{stage=\"correlate.0\"}"), 1);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_noisy_skipped_total{stage=\"correlate.0\",reason=\"auto\"}"), 3);
    redisReply *rep = sp_test_redis_cmd(&ct_redis, "HEXISTS sp:{t:t1}:noisy ip:10.0.0.1");
    T_OK(rep && rep->integer == 1);
    freeReplyObject(rep);
    /* An entity repeatedly seen with the same companions is not noisy. */
    struct ct_res q[6];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "q%d", i);
        T_EQ_INT(ct_one(&t, &A(.id = id, .ents = "host:ws9 account:bob", .t = 1000 + i), &q[i]), SP_OK);
        T_EQ_STR(q[i].inc, q[0].inc);
    }
    ct_close(&t);
}

/* Mode all: only alerts with the same correlating entities group. */
static void test_mode_all(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.mode=all", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert in[] = {
        A(.id = "m1", .ents = "host:h1 account:u1", .t = 0),
        A(.id = "m2", .ents = "account:u1 host:h1 process:p9", .t = 1),
        A(.id = "m3", .ents = "host:h1", .t = 2),
        A(.id = "m4", .ents = "host:h1 account:u1 ip:1.1.1.1", .t = 3),
    };
    struct ct_res r[4];
    T_EQ_INT(ct_run(&t, in, 4, r), SP_OK);
    T_EQ_STR(r[1].inc, r[0].inc);       /* process is not a correlating type */
    T_OK(strcmp(r[2].inc, r[0].inc) != 0);
    T_OK(strcmp(r[3].inc, r[0].inc) != 0);
    json_t *inc = ct_latest(&t, r[0].inc);
    T_EQ_STR(ct_jstr(why_of(inc, "m2"), "how"), "group");
    json_decref(inc);
    ct_close(&t);
}

/* Per-detector and per-source rules: selected types plus equal fields. */
static void test_rules_selected(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {
        "correlate.rules.detector:Spray=mode=selected types=host fields=detector",
        "correlate.rules.source:sentinel=mode=all",
        NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert in[] = {
        A(.id = "r1", .detector = "Spray", .ents = "host:h1 account:u1", .t = 0),
        A(.id = "r2", .detector = "Spray", .ents = "host:h1", .t = 1),
        A(.id = "r3", .detector = "Other", .ents = "host:h1", .t = 2),
        A(.id = "r4", .detector = "Spray", .ents = "account:u1", .t = 3),
        A(.id = "r5", .source = "sentinel", .ents = "host:h1", .t = 4),
        A(.id = "r6", .source = "sentinel", .ents = "host:h1", .t = 5),
    };
    struct ct_res r[6];
    T_EQ_INT(ct_run(&t, in, 6, r), SP_OK);
    T_EQ_STR(r[1].inc, r[0].inc);        /* same detector, same host */
    T_OK(strcmp(r[2].inc, r[0].inc) != 0);  /* other rule, other namespace */
    T_OK(strcmp(r[3].inc, r[0].inc) != 0);  /* account is not selected */
    T_EQ_STR(r[5].inc, r[4].inc);        /* mode all for the source */
    T_OK(strcmp(r[4].inc, r[2].inc) != 0);
    json_t *inc = ct_latest(&t, r[0].inc);
    json_t *w = why_of(inc, "r2");
    T_EQ_STR(ct_jstr(w, "rule"), "detector:Spray");
    T_EQ_STR(ct_jstr(w, "mode"), "selected");
    json_decref(inc);
    ct_close(&t);
    /* Bad rules are configuration errors naming the entry. */
    struct sp_config *cfg = sp_config_new();
    struct sp_error err = {0};
    sp_config_declare(cfg, sp_stage_correlate.keys, sp_stage_correlate.n_keys, &err);
    sp_config_set(cfg, "correlate.rules.detector:X=mode=sometimes", &err);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    struct sp_env env = {0};
    env.cfg = cfg;
    struct sp_stage *st = sp_stage_new(&sp_stage_correlate, 0, &env);
    T_EQ_INT(sp_stage_init(st, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "detector:X");
    sp_stage_free(st);
    sp_config_free(cfg);
}

/* Mode selected compares the rule's fields: with fields=title, alerts of
 * the rule on the same host group only when their titles are equal (the
 * rule above uses fields=detector, always equal within a detector rule). */
static void test_rules_selected_fields(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {
        "correlate.rules.detector:Spray=mode=selected types=host fields=title",
        NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert in[] = {
        A(.id = "t1", .detector = "Spray", .title = "Spray A", .ents = "host:h1", .t = 0),
        A(.id = "t2", .detector = "Spray", .title = "Spray B", .ents = "host:h1", .t = 1),
        A(.id = "t3", .detector = "Spray", .title = "Spray A", .ents = "host:h1", .t = 2),
    };
    struct ct_res r[3];
    T_EQ_INT(ct_run(&t, in, 3, r), SP_OK);
    T_OK(strcmp(r[1].inc, r[0].inc) != 0);      /* other title */
    T_EQ_STR(r[2].inc, r[0].inc);               /* same title, same host */
    ct_close(&t);
}

/* Flood control at 5 per 10 minutes. */
static const char *const flood_sets[] = {"correlate.flood.enabled=true",
                                         "correlate.flood.threshold=5",
                                         "correlate.flood.window=10m", NULL};

/* n alerts of one detector, each on its own host, a second apart: ids
 * "<p>0".., hosts "host:<p>box0"..; they run as one batch into r. */
static enum sp_err flood_run(struct ct *t, const char *p, const char *detector,
                             int n, struct ct_res *r)
{
    struct ct_alert in[16];
    char ids[16][16], ents[16][32];
    for (int i = 0; i < n && i < 16; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%s%d", p, i);
        snprintf(ents[i], sizeof(ents[i]), "host:%sbox%d", p, i);
        in[i] = A(.id = ids[i], .ents = ents[i], .t = i, .detector = detector);
    }
    return ct_run(t, in, (size_t)SP_MIN(n, 16), r);
}

/* More than X similar alerts within Y collapse into one overflow incident. */
static void test_flood(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, flood_sets));
    struct ct_res r[12];
    T_EQ_INT(flood_run(&t, "f", "PasswordSpray", 12, r), SP_OK);
    for (int i = 1; i < 5; i++)
        T_OK(strcmp(r[i].inc, r[0].inc) != 0);
    for (int i = 6; i < 12; i++)
        T_EQ_STR(r[i].inc, r[5].inc);
    json_t *inc = ct_latest(&t, r[5].inc);
    T_EQ_INT(ct_jint(inc, "alerts_total"), 7);
    T_EQ_STR(ct_jstr(json_object_get(inc, "flood"), "key"), "PasswordSpray");
    T_EQ_STR(ct_jstr(why_of(inc, "f7"), "how"), "flood");
    json_decref(inc);
    T_EQ_INT(ct_live(&t), 6);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"flood\"}"), 7);
    /* The stored counter: 12 alerts in 1 s buckets (a tenth of the
     * window), 'all' their sum, expiring after 3 windows. */
    char fk[128];
    T_OK(ct_first_key("sp:{t:t1}:f:*", fk, sizeof(fk)));
    redisReply *h = sp_test_redis_cmd(&ct_redis, "HGETALL %s", fk);
    T_OK(h && h->type == REDIS_REPLY_ARRAY);
    long long sum = 0, all = -1;
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        if (strcmp(h->element[i]->str, "all") == 0)
            all = atoll(h->element[i + 1]->str);
        else
            sum += atoll(h->element[i + 1]->str);
    }
    T_EQ_INT(sum, 12);
    T_EQ_INT(all, 12);
    freeReplyObject(h);
    long long ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL %s", fk);
    T_OK(ttl > 0 && ttl <= 3 * 600000);
    /* The pointer to the current overflow incident lives one flood window:
     * a flood later on opens an overflow incident of its own (and the key
     * does not stay behind forever). */
    char fo[128];
    T_OK(ct_first_key("sp:{t:t1}:fo:*", fo, sizeof(fo)));
    ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL %s", fo);
    T_OK(ttl > 0 && ttl <= 600000);
    /* After the window, the detector correlates normally again. */
    struct ct_res late;
    T_EQ_INT(ct_one(&t, &A(.id = "f99", .ents = "host:fbox1", .t = 3600,
                           .detector = "PasswordSpray"), &late), SP_OK);
    T_EQ_STR(late.inc, r[1].inc);
    ct_close(&t);
}

/* "More than X within Y": alerts before the window do not count, and
 * exactly X within it is no flood.  3 alerts, then 15 minutes later 6 more
 * (threshold 5, window 10m): the counter holds 8 when the 5th of the second
 * wave comes, but only 5 of them are in its window, so that one still
 * correlates normally; the 6th is the first overflow alert. */
static void test_flood_threshold_in_window(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, flood_sets));
    struct ct_res r[9];
    char id[16], ents[32];
    for (int i = 0; i < 9; i++) {
        snprintf(id, sizeof(id), "v%d", i);
        snprintf(ents, sizeof(ents), "host:vbox%d", i);
        int64_t at = i < 3 ? i : 900 + i;
        T_EQ_INT(ct_one(&t, &A(.id = id, .ents = ents, .t = at,
                               .detector = "Spray4"), &r[i]), SP_OK);
    }
    for (int i = 0; i < 8; i++) {
        json_t *inc = ct_latest(&t, r[i].inc);
        T_OK(json_is_null(json_object_get(inc, "flood")));
        T_EQ_INT(ct_jint(inc, "alerts_total"), 1);
        json_decref(inc);
    }
    json_t *inc = ct_latest(&t, r[8].inc);
    T_EQ_STR(ct_jstr(json_object_get(inc, "flood"), "key"), "Spray4");
    json_decref(inc);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"flood\"}"), 1);
    ct_close(&t);
}

/* A flood counter written before its running total existed (buckets, no
 * 'all') still counts every bucket. */
static void test_flood_counter_without_total(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, flood_sets));
    struct ct_res r[3];
    T_EQ_INT(flood_run(&t, "g", "Spray2", 3, r), SP_OK);
    char fk[128];
    bool found = ct_first_key("sp:{t:t1}:f:*", fk, sizeof(fk));
    T_OK(found);
    if (!found) {
        ct_close(&t);
        return;
    }
    /* The older layout: 3 more in the bucket, no total. */
    redisReply *h = sp_test_redis_cmd(&ct_redis, "HKEYS %s", fk);
    T_OK(h && h->type == REDIS_REPLY_ARRAY);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(h);
        ct_close(&t);
        return;
    }
    char bucket[32] = "";
    for (size_t i = 0; i < h->elements; i++)
        if (strcmp(h->element[i]->str, "all") != 0)
            snprintf(bucket, sizeof(bucket), "%s", h->element[i]->str);
    freeReplyObject(h);
    T_OK(bucket[0] != '\0');
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HDEL %s all", fk));
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HINCRBY %s %s 3", fk, bucket));
    /* 7 in the window now: more than 5, an overflow incident. */
    struct ct_res f;
    T_EQ_INT(ct_one(&t, &A(.id = "g9", .ents = "host:pc9", .t = 3,
                           .detector = "Spray2"), &f), SP_OK);
    json_t *inc = ct_latest(&t, f.inc);
    T_EQ_STR(ct_jstr(json_object_get(inc, "flood"), "key"), "Spray2");
    json_decref(inc);
    ct_close(&t);
}

static bool has_closed_snapshot(struct ct *t);
static char g_closed_id[80];

static int run_cli(const char *const *args, int n, char *out, size_t outn)
{
    return ct_cli(ct_redis.port, args, n, out, outn);
}

/* A late alert never joins a closed incident; close/reopen via the CLI. */
static void test_closed_incident(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r1, r2, r3;
    T_EQ_INT(ct_one(&t, &A(.id = "c1", .ents = "host:h1", .t = 0), &r1), SP_OK);
    /* Out of the set outbox recovery walks (as a tenant dropped as idle
     * while an incident of it lives: one from before P.."seen" existed). */
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "SREM sp:tenants t1"), 1);
    char out[8192];
    const char *close_args[] = {"close", r1.inc};
    T_EQ_INT(run_cli(close_args, 2, out, sizeof(out)), 0);
    T_CONTAINS(out, "closed");
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "SISMEMBER sp:tenants t1"), 1);
    /* The running stage publishes the CLI's change from the outbox. */
    snprintf(g_closed_id, sizeof(g_closed_id), "%s", r1.inc);
    T_OK(ct_tick_until(&t, has_closed_snapshot, 3000));
    T_EQ_INT(ct_one(&t, &A(.id = "c2", .ents = "host:h1", .t = 60), &r2), SP_OK);
    T_OK(strcmp(r2.inc, r1.inc) != 0);
    json_t *inc = ct_latest(&t, r2.inc);
    T_EQ_STR(ct_jstr(json_object_get(inc, "links"), "previous"), r1.inc);
    T_EQ_STR(ct_jstr(why_of(inc, "c2"), "how"), "after_closed");
    json_decref(inc);
    /* Reopened, the old incident is a candidate again: the oldest wins. */
    const char *reopen_args[] = {"reopen", r1.inc};
    T_EQ_INT(run_cli(reopen_args, 2, out, sizeof(out)), 0);
    T_EQ_INT(ct_one(&t, &A(.id = "c3", .ents = "host:h1", .t = 120), &r3), SP_OK);
    T_EQ_STR(r3.inc, r1.inc);
    /* show and explain read it back. */
    const char *show_args[] = {"show", r1.inc};
    T_EQ_INT(run_cli(show_args, 2, out, sizeof(out)), 0);
    T_CONTAINS(out, "\"alerts_total\": 3");
    const char *explain_args[] = {"explain", r1.inc, "--tenant", "t1"};
    T_EQ_INT(run_cli(explain_args, 4, out, sizeof(out)), 0);
    T_CONTAINS(out, "reopened by cli");
    T_CONTAINS(out, "merged ");
    const char *list_args[] = {"list", "--tenant", "t1"};
    T_EQ_INT(run_cli(list_args, 3, out, sizeof(out)), 0);
    T_CONTAINS(out, r1.inc);
    const char *missing[] = {"show", "inc-0000000000000000"};
    T_EQ_INT(run_cli(missing, 2, out, sizeof(out)), 1);
    const char *bad[] = {"show", "../etc"};
    T_EQ_INT(run_cli(bad, 2, out, sizeof(out)), 2);
    ct_close(&t);
}

static bool has_closed_snapshot(struct ct *t)
{
    json_t *inc = ct_latest(t, g_closed_id);
    bool ok = inc && strcmp(ct_jstr(inc, "status"), "closed") == 0 &&
              strcmp(ct_jstr(inc, "closed_reason"), "cli") == 0;
    json_decref(inc);
    return ok;
}

/* Incident status follows its alerts' statuses. */
static void test_close_on_resolved(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "x1", .ents = "host:h1", .t = 0), &r), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "x1", .ents = "host:h1", .t = 0, .updated = 100,
                           .status = "resolved"), &r), SP_OK);
    json_t *inc = ct_latest(&t, r.inc);
    T_EQ_STR(ct_jstr(inc, "status"), "closed");
    T_EQ_STR(ct_jstr(inc, "closed_reason"), "alerts_resolved");
    json_decref(inc);
    T_EQ_INT(ct_one(&t, &A(.id = "x1", .ents = "host:h1", .t = 0, .updated = 200,
                           .status = "in_progress"), &r), SP_OK);
    inc = ct_latest(&t, r.inc);
    T_EQ_STR(ct_jstr(inc, "status"), "active");
    T_OK(json_is_null(json_object_get(inc, "closed_reason")));
    json_decref(inc);
    ct_close(&t);
}

/* At most N alerts per incident; continuations link back; bridges that
 * would pass the cap are not merged. */
static void test_cap(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.max_alerts=3", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert in[7];
    char ids[7][16];
    for (int i = 0; i < 7; i++) {
        snprintf(ids[i], sizeof(ids[i]), "k%d", i);
        in[i] = A(.id = ids[i], .ents = "host:h1", .t = i);
    }
    struct ct_res r[7];
    T_EQ_INT(ct_run(&t, in, 7, r), SP_OK);
    T_EQ_STR(r[2].inc, r[0].inc);
    T_OK(strcmp(r[3].inc, r[0].inc) != 0);
    T_EQ_STR(r[5].inc, r[3].inc);
    T_OK(strcmp(r[6].inc, r[3].inc) != 0);
    json_t *i2 = ct_latest(&t, r[3].inc), *i3 = ct_latest(&t, r[6].inc);
    T_EQ_STR(ct_jstr(json_object_get(i2, "links"), "continued_from"), r[0].inc);
    T_EQ_STR(ct_jstr(json_object_get(i3, "links"), "continued_from"), r[3].inc);
    T_EQ_STR(ct_jstr(why_of(i2, "k3"), "how"), "continuation");
    T_EQ_INT(ct_jint(i2, "alerts_total"), 3);
    json_decref(i2);
    json_decref(i3);
    struct ct_alert br[] = {
        A(.id = "x1", .ents = "host:h2", .t = 100),
        A(.id = "x2", .ents = "host:h2", .t = 101),
        A(.id = "y1", .ents = "account:u2", .t = 102),
        A(.id = "y2", .ents = "account:u2", .t = 103),
        A(.id = "z", .ents = "host:h2 account:u2", .t = 104),
    };
    struct ct_res rb[5];
    T_EQ_INT(ct_run(&t, br, 5, rb), SP_OK);
    T_EQ_STR(rb[4].inc, rb[0].inc);
    T_OK(strcmp(rb[2].inc, rb[0].inc) != 0);
    json_t *x = ct_latest(&t, rb[0].inc);
    T_OK(list_has(json_object_get(why_of(x, "z"), "merge_skipped"), rb[2].inc));
    json_decref(x);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_merges_skipped_total{stage=\"correlate.0\"}"), 1);
    /* The bound is exact.  1 + 1 alerts and the bridge make 3: merged.
     * 1 + 2 and the bridge would make 4, one past the cap: not merged. */
    struct ct_alert eq[] = {
        A(.id = "e1", .ents = "host:h3", .t = 200),
        A(.id = "f1", .ents = "account:u3", .t = 201),
        A(.id = "g", .ents = "host:h3 account:u3", .t = 202),
        A(.id = "p1", .ents = "host:h4", .t = 300),
        A(.id = "q1", .ents = "account:u4", .t = 301),
        A(.id = "q2", .ents = "account:u4", .t = 302),
        A(.id = "w", .ents = "host:h4 account:u4", .t = 303),
    };
    struct ct_res re[7];
    T_EQ_INT(ct_run(&t, eq, 7, re), SP_OK);
    T_EQ_STR(re[2].inc, re[0].inc);
    json_t *g = ct_latest(&t, re[0].inc);
    T_EQ_INT(ct_jint(g, "alerts_total"), 3);
    T_OK(list_has(json_object_get(json_object_get(g, "links"), "merged"), re[1].inc));
    json_decref(g);
    T_EQ_STR(re[6].inc, re[3].inc);
    T_OK(strcmp(re[4].inc, re[3].inc) != 0);
    json_t *p = ct_latest(&t, re[3].inc);
    T_EQ_INT(ct_jint(p, "alerts_total"), 2);
    T_OK(list_has(json_object_get(why_of(p, "w"), "merge_skipped"), re[4].inc));
    json_decref(p);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_merges_skipped_total{stage=\"correlate.0\"}"), 2);
    ct_close(&t);
}

/* correlate.max_why bounds the decisions kept per incident: the newest
 * max_why stay (10, the least allowed; 12 alerts in one incident). */
static void test_max_why(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.max_why=10", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r;
    char id[16];
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof(id), "y%d", i);
        T_EQ_INT(ct_one(&t, &A(.id = id, .ents = "host:h1", .t = i), &r), SP_OK);
    }
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "LLEN sp:{t:t1}:i:%s:why", r.inc), 10);
    redisReply *last = sp_test_redis_cmd(&ct_redis, "LINDEX sp:{t:t1}:i:%s:why -1", r.inc);
    T_OK(last && last->type == REDIS_REPLY_STRING && strstr(last->str, "\"y11\""));
    if (last)
        freeReplyObject(last);
    ct_close(&t);
}

/* Same alert ids, hosts and IPs in two tenants never meet. */
static void test_tenants(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_alert in[] = {
        A(.id = "a1", .tenant = "contoso", .ents = "host:ws1 ip:10.0.0.5", .t = 0),
        A(.id = "a1", .tenant = "fabrikam", .ents = "host:ws1 ip:10.0.0.5", .t = 0),
        A(.id = "a2", .tenant = "fabrikam", .ents = "ip:10.0.0.5", .t = 1),
        A(.id = "a3", .tenant = "we}ird:{t:contoso}", .ents = "host:ws1", .t = 2),
        A(.id = "a4", .tenant = "", .ents = "host:ws1", .t = 3),
    };
    struct ct_res r[5];
    T_EQ_INT(ct_run(&t, in, 5, r), SP_OK);
    T_OK(strcmp(r[0].inc, r[1].inc) != 0);
    T_EQ_STR(r[2].inc, r[1].inc);
    T_OK(strcmp(r[3].inc, r[0].inc) != 0);
    T_OK(strcmp(r[4].inc, r[0].inc) != 0);
    T_OK(strcmp(r[4].inc, r[3].inc) != 0);
    json_t *c = ct_latest(&t, r[0].inc), *f = ct_latest(&t, r[1].inc);
    T_EQ_STR(ct_jstr(c, "tenant"), "contoso");
    T_EQ_STR(ct_jstr(f, "tenant"), "fabrikam");
    T_EQ_INT(ct_jint(c, "alerts_total"), 1);
    T_EQ_INT(ct_jint(f, "alerts_total"), 2);
    json_decref(c);
    json_decref(f);
    json_t *d = ct_latest(&t, r[4].inc);
    T_EQ_STR(ct_jstr(d, "tenant"), "default");
    json_decref(d);
    /* Every key carries its tenant's hash tag; the odd tenant is encoded
     * so it cannot close the tag. */
    redisReply *keys = ct_keys("*");
    T_OK(keys && keys->type == REDIS_REPLY_ARRAY);
    int odd = 0;
    for (size_t i = 0; keys && i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        bool tagged = strncmp(k, "sp:{t:", 6) == 0 || strncmp(k, "sp:tenants", 10) == 0;
        if (!tagged)
            T_FAILF("untagged key %s", k);
        if (strncmp(k, "sp:{t:we", 8) == 0) {
            odd++;
            T_OK(strncmp(k, "sp:{t:we%7Dird%3A%7Bt%3Acontoso%7D}:", 36) == 0);
        }
    }
    T_OK(odd > 0);              /* the odd tenant's keys were looked at */
    freeReplyObject(keys);
    /* Tenants longer than the key keeps whole (128 bytes), equal but for
     * their last byte, stay apart too (a hash of the whole tenant follows
     * the part kept). */
    char ta[201], tb[201];
    memset(ta, 'x', 200);
    ta[200] = '\0';
    memcpy(tb, ta, sizeof(tb));
    ta[199] = 'a';
    tb[199] = 'b';
    struct ct_alert lt[] = {
        A(.id = "l1", .tenant = ta, .ents = "host:ws1", .t = 10),
        A(.id = "l2", .tenant = tb, .ents = "host:ws1", .t = 11),
    };
    struct ct_res rl[2];
    T_EQ_INT(ct_run(&t, lt, 2, rl), SP_OK);
    T_OK(strcmp(rl[0].inc, rl[1].inc) != 0);
    json_t *lb = ct_latest(&t, rl[1].inc);
    T_EQ_INT(ct_jint(lb, "alerts_total"), 1);
    T_EQ_STR(ct_jstr(lb, "tenant"), tb);
    json_decref(lb);
    ct_close(&t);
}

/* Exact duplicates change nothing; newer versions update in place; older
 * versions are stale. */
static void test_duplicates_updates(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    struct ct_alert v1 = A(.id = "u1", .ents = "host:h1", .t = 0, .title = "Suspicious logon");
    T_EQ_INT(ct_one(&t, &v1, &r), SP_OK);
    T_EQ_INT(r.version, 1);
    char inc[80];
    snprintf(inc, sizeof(inc), "%s", r.inc);
    T_EQ_INT(ct_one(&t, &v1, &r), SP_OK);
    T_EQ_STR(r.inc, inc);
    T_EQ_INT(r.version, 1);
    T_OK(r.present);            /* the alert itself still goes out */
    /* Once the snapshot's ack reached Redis, a duplicate publishes
     * nothing more. */
    t.st->type->tick(t.st, sp_now_ms() + 1000000);
    size_t after_dups = ct_count(&t, "incidents");
    T_EQ_INT(ct_one(&t, &v1, &r), SP_OK);
    T_EQ_INT(ct_count(&t, "incidents"), after_dups);
    struct ct_alert v2 = A(.id = "u1", .ents = "host:h1 account:u9", .t = 0, .updated = 300,
                           .title = "Suspicious logon (confirmed)", .sev = SP_SEV_HIGH);
    T_EQ_INT(ct_one(&t, &v2, &r), SP_OK);
    T_EQ_STR(r.inc, inc);
    T_EQ_INT(r.version, 2);
    json_t *d = ct_latest(&t, inc);
    T_EQ_INT(ct_jint(d, "alerts_total"), 1);
    T_EQ_STR(ct_jstr(d, "severity"), "high");
    T_EQ_STR(ct_jstr(d, "title"), "Suspicious logon (confirmed)");
    T_OK(has_entity(d, "account:u9", NULL));
    json_decref(d);
    T_EQ_INT(ct_count(&t, "incidents"), after_dups + 1);
    T_EQ_INT(ct_one(&t, &v1, &r), SP_OK);       /* older: stale */
    T_EQ_INT(r.version, 2);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"duplicate\"}"), 2);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"stale\"}"), 1);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_alerts_total{stage=\"correlate.0\",result=\"updated\"}"), 1);
    /* The new entity of the update now leads to the incident. */
    T_EQ_INT(ct_one(&t, &A(.id = "u2", .ents = "account:u9", .t = 10), &r), SP_OK);
    T_EQ_STR(r.inc, inc);
    ct_close(&t);
}

/* A merge moves the analyze stage's side hashes with the alerts: the
 * survivor's analysis then sees the absorbed incident's script analyses
 * and alert details. */
static void test_merge_moves_side_hashes(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r[3];
    T_EQ_INT(ct_one(&t, &A(.id = "s1", .ents = "host:h1", .t = 0), &r[0]), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "s2", .ents = "host:h2", .t = 10), &r[1]), SP_OK);
    T_OK(strcmp(r[0].inc, r[1].inc) != 0);
    const char *sides[] = {"sc", "ad"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++) {
            redisReply *x = sp_test_redis_cmd(
                t.redis, "HSET sp:{t:t1}:i:%s:%s s%d {\"k\":%d}", r[i].inc,
                sides[k], i + 1, k);
            if (x)
                freeReplyObject(x);
        }
    /* Bridges both: the second merges into the first (the oldest). */
    T_EQ_INT(ct_one(&t, &A(.id = "s3", .ents = "host:h1 host:h2", .t = 20),
                    &r[2]), SP_OK);
    T_EQ_STR(r[2].inc, r[0].inc);
    for (int k = 0; k < 2; k++) {
        redisReply *n = sp_test_redis_cmd(t.redis, "HLEN sp:{t:t1}:i:%s:%s",
                                          r[0].inc, sides[k]);
        T_OK(n && n->type == REDIS_REPLY_INTEGER && n->integer == 2);
        if (n)
            freeReplyObject(n);
        redisReply *gone = sp_test_redis_cmd(t.redis, "EXISTS sp:{t:t1}:i:%s:%s",
                                             r[1].inc, sides[k]);
        T_OK(gone && gone->type == REDIS_REPLY_INTEGER && gone->integer == 0);
        if (gone)
            freeReplyObject(gone);
        redisReply *ttl = sp_test_redis_cmd(t.redis, "PTTL sp:{t:t1}:i:%s:%s",
                                            r[0].inc, sides[k]);
        T_OK(ttl && ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0);
        if (ttl)
            freeReplyObject(ttl);
    }
    ct_close(&t);
}

/* Retention: every key a first alert writes expires.  The incident, its
 * alerts and decisions, and the alert's dedupe record within
 * correlate.retention (30d); the tenant's entity index within its TTL
 * (twice the longest window plus an hour: 49 h here). */
static void test_retention_ttls(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "x1", .ents = "host:h1", .t = 0), &r), SP_OK);
    const long long ret = 30LL * 86400000;
    const char *sfx[] = {"", ":al", ":why"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(sfx); i++) {
        long long ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL sp:{t:t1}:i:%s%s",
                                          r.inc, sfx[i]);
        T_OK(ttl > ret - 60000 && ttl <= ret);
    }
    long long ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL sp:{t:t1}:a:x1");
    T_OK(ttl > ret - 60000 && ttl <= ret);
    ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL sp:{t:t1}:ix");
    T_OK(ttl > 0 && ttl <= 49LL * 3600000);
    ct_close(&t);
}

/* An alert that comes back changed after its incident expired opens a new
 * incident under a new id: the old id again at version 1 would look like a
 * replay to consumers that keep (id, version). */
static void test_new_id_after_expiry(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "x1", .ents = "host:h1", .t = 0), &r), SP_OK);
    char first[80];
    snprintf(first, sizeof(first), "%s", r.inc);
    ct_flush_all();                     /* retention: every key gone */
    struct ct_alert later = A(.id = "x1", .ents = "host:h1", .t = 0,
                              .updated = 40 * 86400, .status = "resolved");
    T_EQ_INT(ct_one(&t, &later, &r), SP_OK);
    T_EQ_INT(r.version, 1);
    T_OK(strcmp(r.inc, first) != 0);
    ct_close(&t);
}

/* Alerts with a provider incident id join that incident first. */
static void test_provider_grouping(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_alert in[] = {
        A(.id = "p1", .pid = "77", .ents = "host:h1", .t = 0),
        A(.id = "p2", .pid = "77", .ents = "host:h9", .t = 1),
        A(.id = "p3", .pid = "78", .ents = "host:h9", .t = 2),
        A(.id = "p4", .ents = "host:h5", .t = 3),
        A(.id = "p5", .pid = "77", .ents = "host:h5", .t = 4),
    };
    struct ct_res r[5];
    T_EQ_INT(ct_run(&t, in, 5, r), SP_OK);
    T_EQ_STR(r[1].inc, r[0].inc);
    T_EQ_STR(r[2].inc, r[0].inc);       /* no mapping for 78 yet: entity */
    T_OK(strcmp(r[3].inc, r[0].inc) != 0);
    T_EQ_STR(r[4].inc, r[0].inc);       /* provider first, no merge */
    json_t *inc = ct_latest(&t, r[0].inc);
    T_EQ_STR(ct_jstr(why_of(inc, "p2"), "how"), "provider");
    T_OK(list_has(json_object_get(inc, "provider_incident_ids"), "77"));
    T_OK(list_has(json_object_get(inc, "provider_incident_ids"), "78"));
    json_decref(inc);
    T_EQ_INT(ct_live(&t), 2);
    ct_close(&t);
}

/* Provider grouping keeps the closed-incident guard: an alert of a
 * provider incident whose socpilot incident was closed opens a new
 * incident linked to the closed one, and the next alert of that provider
 * incident joins the new one. */
static void test_provider_closed_incident(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r1, r2, r3;
    T_EQ_INT(ct_one(&t, &A(.id = "p1", .pid = "77", .ents = "host:h1", .t = 0), &r1), SP_OK);
    char out[4096];
    const char *close_args[] = {"close", r1.inc};
    T_EQ_INT(ct_cli(ct_redis.port, close_args, 2, out, sizeof(out)), 0);
    T_EQ_INT(ct_one(&t, &A(.id = "p2", .pid = "77", .ents = "host:h9", .t = 60), &r2), SP_OK);
    T_OK(strcmp(r2.inc, r1.inc) != 0);
    json_t *inc = ct_latest(&t, r2.inc);
    T_EQ_STR(ct_jstr(json_object_get(inc, "links"), "previous"), r1.inc);
    T_EQ_STR(ct_jstr(why_of(inc, "p2"), "how"), "after_closed");
    json_decref(inc);
    inc = ct_latest(&t, r1.inc);
    T_EQ_INT(ct_jint(inc, "alerts_total"), 1);
    json_decref(inc);
    T_EQ_INT(ct_one(&t, &A(.id = "p3", .pid = "77", .ents = "host:h8", .t = 120), &r3), SP_OK);
    T_EQ_STR(r3.inc, r2.inc);
    ct_close(&t);
}

/* Provider grouping keeps the alert cap: at max_alerts the next alert of
 * the provider incident opens a continuation of the full incident, and
 * the one after it joins that continuation. */
static void test_provider_cap(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.max_alerts=2", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert in[] = {
        A(.id = "p1", .pid = "77", .ents = "host:h1", .t = 0),
        A(.id = "p2", .pid = "77", .ents = "host:h2", .t = 1),
        A(.id = "p3", .pid = "77", .ents = "host:h3", .t = 2),
        A(.id = "p4", .pid = "77", .ents = "host:h4", .t = 3),
    };
    struct ct_res r[4];
    T_EQ_INT(ct_run(&t, in, 4, r), SP_OK);
    T_EQ_STR(r[1].inc, r[0].inc);
    T_OK(strcmp(r[2].inc, r[0].inc) != 0);
    T_EQ_STR(r[3].inc, r[2].inc);
    json_t *full = ct_latest(&t, r[0].inc), *cont = ct_latest(&t, r[2].inc);
    T_EQ_INT(ct_jint(full, "alerts_total"), 2);
    T_EQ_STR(ct_jstr(json_object_get(cont, "links"), "continued_from"), r[0].inc);
    T_EQ_STR(ct_jstr(why_of(cont, "p3"), "how"), "continuation");
    json_decref(full);
    json_decref(cont);
    ct_close(&t);
}

/* With an analyze stage behind it, correlate schedules each changed
 * incident's analysis job inside the same script that changes it:
 * first-pending mark and due time (quiet period after the change). */
static void test_schedules_analysis_atomically(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_alert a0[] = {A(.id = "s0", .ents = "host:h1", .t = 0)};
    struct ct_res r0[1];
    T_EQ_INT(ct_run(&t, a0, 1, r0), SP_OK);
    redisReply *k = ct_keys("*an:due");
    T_OK(k && k->type == REDIS_REPLY_ARRAY && k->elements == 0);
    if (k)
        freeReplyObject(k);

    t.env.analysis_quiet_ms = 30000;
    t.env.analysis_max_delay_ms = 300000;
    struct ct_alert in[] = {
        A(.id = "s1", .ents = "host:h2", .t = 1),
        A(.id = "s2", .ents = "host:h2", .t = 2),
    };
    struct ct_res r[2];
    T_EQ_INT(ct_run(&t, in, 2, r), SP_OK);
    T_EQ_STR(r[1].inc, r[0].inc);
    k = ct_keys("*an:due");
    T_OK(k && k->type == REDIS_REPLY_ARRAY && k->elements == 1);
    if (k && k->elements == 1) {
        char first_key[512];
        snprintf(first_key, sizeof(first_key), "%.*san:first",
                 (int)(k->element[0]->len - 6), k->element[0]->str);
        redisReply *due = sp_test_redis_cmd(t.redis, "ZSCORE %s %s",
                                            k->element[0]->str, r[0].inc);
        redisReply *first = sp_test_redis_cmd(t.redis, "HGET %s %s",
                                              first_key, r[0].inc);
        T_OK(due && due->type == REDIS_REPLY_STRING);
        T_OK(first && first->type == REDIS_REPLY_STRING);
        if (due && first && due->type == REDIS_REPLY_STRING &&
            first->type == REDIS_REPLY_STRING)
            T_EQ_INT(atoll(due->str) - atoll(first->str), 30000);
        /* the incident of s0, changed before analysis was on, has none */
        redisReply *none = sp_test_redis_cmd(t.redis, "ZSCORE %s %s",
                                             k->element[0]->str, r0[0].inc);
        T_OK(none && none->type == REDIS_REPLY_NIL);
        if (due)
            freeReplyObject(due);
        if (first)
            freeReplyObject(first);
        if (none)
            freeReplyObject(none);
    }
    if (k)
        freeReplyObject(k);
    ct_close(&t);
}

/* A batch costs a constant number of round trips, whatever its size: one
 * for the scripts and one for the snapshot reads, or just one when the
 * reads of the last batch's snapshots ride along (deferred, the default). */
static void test_round_trips(void)
{
    SKIP_WITHOUT_REDIS();
    enum { N = 400 };
    struct ct_alert *in = calloc(N, sizeof(*in));
    char (*ids)[16] = calloc(N, 16), (*ents)[64] = calloc(N, 64);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "rt%d", i);
        snprintf(ents[i], 64, "host:h%d account:u%d", i % 37, i % 23);
        in[i] = A(.id = ids[i], .ents = ents[i], .t = i);
    }
    const char *rt = "socpilot_correlate_redis_round_trips_total{stage=\"correlate.0\"}";
    for (int defer = 0; defer < 2; defer++) {
        const char *sets[] = {"correlate.pipeline_max=1000",
                              defer ? "correlate.snapshot_defer=true"
                                    : "correlate.snapshot_defer=false",
                              NULL};
        struct ct t;
        T_OK(ct_open(&t, sets));
        t.manual = true;
        T_EQ_INT(ct_run(&t, in, 10, NULL), SP_OK);
        double before = ct_metric(&t, rt);
        T_EQ_INT(ct_run(&t, in + 10, N - 10, NULL), SP_OK);
        T_EQ_INT((long long)(ct_metric(&t, rt) - before), defer ? 1 : 2);
        ct_close(&t);
    }
    free(in);
    free(ids);
    free(ents);
}

static long long hget_int(struct ct *t, const char *inc, const char *field)
{
    return sp_test_redis_int(t->redis, NULL, "HGET sp:{t:t1}:i:%s %s", inc,
                             field);
}

/* The alerts of a tenant go to Redis in one call; a script error there
 * (here a dedupe key of the wrong type) aborts the call.  What the alerts
 * before it did is complete in Redis (counts, index, merges, outbox), each
 * alert of the call then runs alone, so the one at fault is rejected with
 * the reason and the others correlate once, their snapshots published. */
static void test_call_error_isolated(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_alert first[3] = {A(.id = "ok1", .ents = "host:p1", .t = 1),
                                A(.id = "m1", .ents = "host:m1", .t = 2),
                                A(.id = "m2", .ents = "host:m2", .t = 3)};
    struct ct_res r1[3];
    T_EQ_INT(ct_run(&t, first, 3, r1), SP_OK);
    redisReply *rep = sp_test_redis_cmd(t.redis, "HSET sp:{t:t1}:a:%s x y",
                                        "poison");
    T_OK(rep && rep->type == REDIS_REPLY_INTEGER);
    if (rep)
        freeReplyObject(rep);
    struct ct_alert in[4] = {A(.id = "ok2", .ents = "host:p1 host:q9", .t = 4),
                             A(.id = "bridge", .ents = "host:m1 host:m2", .t = 5),
                             A(.id = "poison", .ents = "host:p1", .t = 6),
                             A(.id = "ok3", .ents = "host:p1", .t = 7)};
    struct ct_res r[4];
    T_EQ_INT(ct_run(&t, in, 4, r), SP_OK);
    T_EQ_INT((long long)r[2].rejects, 1);
    T_CONTAINS(r[2].detail, "WRONGTYPE");
    T_EQ_INT((long long)(r[0].rejects + r[1].rejects + r[3].rejects), 0);
    T_EQ_STR(r[0].inc, r1[0].inc);
    T_EQ_STR(r[3].inc, r1[0].inc);
    T_EQ_STR(r[1].inc, r1[1].inc);                  /* the older survives */
    /* What the replays did not republish waits in the outbox (due once
     * the clock has moved past the batch's millisecond). */
    sp_test_sleep_ms(5);
    t.st->type->tick(t.st, sp_now_ms() + 1000000);
    /* The incident's counts agree with its alerts, and its last snapshot
     * went out. */
    T_EQ_INT(hget_int(&t, r1[0].inc, "n"), 3);
    json_t *inc = ct_latest(&t, r1[0].inc);
    T_EQ_INT(ct_jint(inc, "alerts_total"), 3);
    T_EQ_INT(ct_jint(inc, "version"), hget_int(&t, r1[0].inc, "v"));
    json_decref(inc);
    /* The merge before the fault is whole: m2's incident points to m1's. */
    json_t *gone = ct_latest(&t, r1[2].inc);
    T_EQ_STR(ct_jstr(gone, "merged_into"), r1[1].inc);
    json_decref(gone);
    T_EQ_INT(hget_int(&t, r1[1].inc, "n"), 3);
    /* And the index learnt what ok2 and bridge brought. */
    struct ct_alert later[2] = {A(.id = "q", .ents = "host:q9", .t = 8),
                                A(.id = "m3", .ents = "host:m2", .t = 9)};
    struct ct_res r3[2];
    T_EQ_INT(ct_run(&t, later, 2, r3), SP_OK);
    T_EQ_STR(r3[0].inc, r1[0].inc);
    T_EQ_STR(r3[1].inc, r1[1].inc);
    T_EQ_INT(ct_holders(&t, "ok2", NULL, 0), 1);
    T_EQ_INT(ct_holders(&t, "m2", NULL, 0), 1);
    ct_close(&t);
}

/* A command failing after an alert was added to its incident (here the
 * incident's decision list is of the wrong type) leaves the incident's
 * count equal to its alerts, however often the alerts run again. */
static void test_call_error_counts_once(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r0;
    T_EQ_INT(ct_one(&t, &A(.id = "c1", .ents = "host:c1", .t = 1), &r0), SP_OK);
    redisReply *rep = sp_test_redis_cmd(t.redis, "DEL sp:{t:t1}:i:%s:why", r0.inc);
    if (rep)
        freeReplyObject(rep);
    rep = sp_test_redis_cmd(t.redis, "SET sp:{t:t1}:i:%s:why x", r0.inc);
    T_OK(rep && rep->type == REDIS_REPLY_STATUS);
    if (rep)
        freeReplyObject(rep);
    struct ct_alert in[2] = {A(.id = "c2", .ents = "host:c1", .t = 2),
                             A(.id = "c3", .ents = "host:c1", .t = 3)};
    struct ct_res r[2];
    T_EQ_INT(ct_run(&t, in, 2, r), SP_OK);
    T_EQ_INT((long long)(r[0].rejects + r[1].rejects), 2);
    T_CONTAINS(r[0].detail, "WRONGTYPE");
    long long held = sp_test_redis_int(t.redis, NULL, "HLEN sp:{t:t1}:i:%s:al",
                                       r0.inc);
    T_EQ_INT(hget_int(&t, r0.inc, "n"), held);
    ct_close(&t);
}

/* The port of the master that node r believes owns slot. */
static long long owner_seen_by(struct sp_test_redis *r, long long slot)
{
    redisReply *rep = sp_test_redis_cmd(r, "CLUSTER SLOTS");
    long long port = -1;
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->elements >= 3 && e->element[0]->integer <= slot &&
            slot <= e->element[1]->integer)
            port = e->element[2]->element[1]->integer;
    }
    if (rep)
        freeReplyObject(rep);
    return port;
}

/* Against a Redis Cluster of two masters: every tenant's keys go to the
 * master of its slot (scripts, snapshot reads in MULTI/EXEC, the tenant
 * registry), tenants on both correlate, and when a slot moves the batch
 * is retried once (MOVED) and then lands on the new owner. */
static void test_cluster(void)
{
    SKIP_WITHOUT_REDIS();
    static struct sp_test_cluster cl;
    int rc = sp_test_cluster_start(&cl, 2);
    T_EQ_INT(rc, 1);
    if (rc != 1)
        return;
    /* a holds slots 0-8191, b 8192-16383. */
    struct sp_test_redis *pa = &cl.node[0], *pb = &cl.node[1];
    redisReply *rep;

    /* Two tenants on each master, and a spare one on b for the move. */
    char ten[5][16];
    int on_a = 0, on_b = 0;
    for (int i = 0; i < 200 && (on_a < 2 || on_b < 3); i++) {
        char cand[16], key[64];
        snprintf(cand, sizeof(cand), "t%d", i);
        snprintf(key, sizeof(key), "sp:{t:%s}:x", cand);
        long long sl = sp_test_redis_int(pa, NULL, "CLUSTER KEYSLOT %s", key);
        if (sl >= 0 && sl < 8192 && on_a < 2)
            snprintf(ten[on_a++], 16, "%s", cand);
        else if (sl >= 8192 && on_b < 3)
            snprintf(ten[2 + on_b++], 16, "%s", cand);
    }
    T_EQ_INT(on_a + on_b, 5);

    struct ct t;
    T_OK(ct_stage(&t, pa, NULL));
    char why[256] = "";
    T_OK(t.st->type->ready(t.st, why, sizeof(why)));
    struct ct_alert in[8];
    char ids[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof(ids[i]), "cl%d", i);
        /* The same host name in every tenant: never one incident. */
        in[i] = A(.id = ids[i], .tenant = ten[i / 2], .ents = "host:h1",
                  .t = i);
    }
    struct ct_res r[8];
    T_EQ_INT(ct_run(&t, in, 8, r), SP_OK);
    for (int i = 0; i < 8; i++) {
        T_OK(r[i].present && r[i].inc[0]);
        T_EQ_INT((long long)r[i].rejects, 0);
    }
    for (int i = 0; i < 8; i += 2) {
        T_EQ_STR(r[i].inc, r[i + 1].inc);
        if (i >= 2)
            T_OK(strcmp(r[i].inc, r[i - 2].inc) != 0);
        json_t *snap = ct_latest(&t, r[i].inc);
        T_OK(snap != NULL);
        T_EQ_INT(json_integer_value(json_object_get(snap, "alerts_total")), 2);
        json_decref(snap);
        /* The incident lives on its tenant's master. */
        struct sp_test_redis *home = i < 4 ? pa : pb;
        rep = sp_test_redis_cmd(home, "EXISTS sp:{t:%s}:i:%s", ten[i / 2],
                                r[i].inc);
        T_OK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
        freeReplyObject(rep);
    }
    T_EQ_INT((long long)sp_test_sink_count(&t.sink, "dlq"), 0);
    /* Memory figures are the sums over the masters. */
    freeReplyObject(sp_test_redis_cmd(pa, "CONFIG SET maxmemory 100mb"));
    freeReplyObject(sp_test_redis_cmd(pb, "CONFIG SET maxmemory 50mb"));
    t.st->type->tick(t.st, sp_now_ms() + 31000);
    T_EQ_INT((long long)ct_metric(&t, "socpilot_correlate_redis_maxmemory_bytes"
                                      "{stage=\"correlate.0\"}"), 150LL << 20);
    long long used_a = sp_test_redis_int(pa, "used_memory:", "INFO memory");
    long long used_b = sp_test_redis_int(pb, "used_memory:", "INFO memory");
    double used = ct_metric(&t, "socpilot_correlate_redis_used_memory_bytes"
                                "{stage=\"correlate.0\"}");
    T_OK(used > 0.8 * (double)(used_a + used_b));
    T_OK(used < 1.2 * (double)(used_a + used_b));
    char incs[4][80];
    for (int i = 0; i < 4; i++)
        snprintf(incs[i], sizeof(incs[i]), "%.79s", r[2 * i].inc);

    /* The spare tenant's slot moves from b to a. */
    char key[64];
    snprintf(key, sizeof(key), "sp:{t:%s}:x", ten[4]);
    long long sl = sp_test_redis_int(pa, NULL, "CLUSTER KEYSLOT %s", key);
    char aid[64] = "";
    rep = sp_test_redis_cmd(pa, "CLUSTER MYID");
    T_OK(rep && rep->type == REDIS_REPLY_STRING);
    snprintf(aid, sizeof(aid), "%s", rep->str);
    freeReplyObject(rep);
    rep = sp_test_redis_cmd(pb, "CLUSTER SETSLOT %lld NODE %s", sl, aid);
    T_OK(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = sp_test_redis_cmd(pa, "CLUSTER SETSLOT %lld NODE %s", sl, aid);
    T_OK(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = sp_test_redis_cmd(pa, "CLUSTER BUMPEPOCH");
    if (rep)
        freeReplyObject(rep);
    for (int i = 0; i < 200 && (owner_seen_by(pa, sl) != pa->port ||
                                owner_seen_by(pb, sl) != pa->port); i++)
        sp_test_sleep_ms(50);
    T_EQ_INT(owner_seen_by(pb, sl), pa->port);
    struct ct_alert mv = A(.id = "mv1", .tenant = ten[4], .ents = "host:h9", .t = 9);
    /* The stage still sends it to b, which answers MOVED: retried. */
    const char *errs = "socpilot_correlate_redis_errors_total{stage=\"correlate.0\"}";
    double errs0 = ct_metric(&t, errs);
    T_EQ_INT(ct_one(&t, &mv, &r[0]), SP_ERR_RETRY);
    T_EQ_INT((long long)r[0].rejects, 0);
    T_OK(ct_metric(&t, errs) > errs0);
    /* The next try reads the slot map again and lands on a. */
    T_EQ_INT(ct_one(&t, &mv, &r[0]), SP_OK);
    T_OK(r[0].present && r[0].inc[0]);
    rep = sp_test_redis_cmd(pa, "EXISTS sp:{t:%s}:i:%s", ten[4], r[0].inc);
    T_OK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
    freeReplyObject(rep);
    T_OK(t.st->type->ready(t.st, why, sizeof(why)));

    /* The CLI scans every master. */
    char out[16384];
    const char *list_args[] = {"list"};
    T_EQ_INT(ct_cli(pa->port, list_args, 1, out, sizeof(out)), 0);
    for (int i = 0; i < 4; i++)
        T_CONTAINS(out, incs[i]);
    T_CONTAINS(out, r[0].inc);
    /* Found without its tenant: on b. */
    const char *show_args[] = {"show", incs[3]};
    T_EQ_INT(ct_cli(pa->port, show_args, 2, out, sizeof(out)), 0);
    T_CONTAINS(out, "\"alerts_total\": 2");
    ct_close(&t);
    sp_test_cluster_stop(&cl);
}

/* Redis under a memory limit.  A policy that evicts (here allkeys-lru) is
 * reported (gauge, warning): it could drop part of an incident.  With
 * noeviction a full Redis refuses the scripts (OOM): the batch waits,
 * nothing goes to the DLQ, and it goes through once there is room. */
static void test_redis_memory_limit(void)
{
    SKIP_WITHOUT_REDIS();
    const char *may_evict = "socpilot_correlate_redis_may_evict{stage=\"correlate.0\"}";
    const char *used_g = "socpilot_correlate_redis_used_memory_bytes{stage=\"correlate.0\"}";
    const char *max_g = "socpilot_correlate_redis_maxmemory_bytes{stage=\"correlate.0\"}";
    /* Only a limit with a policy that evicts is a risk; -1 when INFO is
     * not allowed (an ACL user without it). */
    static const struct {
        const char *maxmem, *policy;
        bool acl;
        int want;
        long long max;              /* the maxmemory gauge */
    } cases[] = {{"64mb", "allkeys-lru", false, 1, 64LL << 20},
                 {"64mb", "volatile-lru", false, 1, 64LL << 20},
                 {"64mb", "noeviction", false, 0, 64LL << 20},
                 {"0", "allkeys-lru", false, 0, 0},
                 {"0", "noeviction", true, -1, -1}};
    struct ct t;
    struct ct_alert a = A(.id = "mem1", .ents = "host:m1", .t = 1);
    struct ct_res r;
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
        struct sp_test_redis srv;
        memset(&srv, 0, sizeof(srv));
        const char *extra[] = {"--maxmemory", cases[i].maxmem,
                               "--maxmemory-policy", cases[i].policy};
        memcpy(srv.extra, extra, sizeof(extra));
        srv.n_extra = 4;
        T_EQ_INT(sp_test_redis_start(&srv), 1);
        const char *acl_sets[] = {"redis.user=noinfo", "redis.password=pw", NULL};
        if (cases[i].acl) {
            redisReply *rep = sp_test_redis_cmd(&srv, "ACL SETUSER noinfo on >pw ~* "
                                                "&* +@all -info");
            T_OK(rep && rep->type == REDIS_REPLY_STATUS);
            if (rep)
                freeReplyObject(rep);
        }
        T_OK(ct_stage(&t, &srv, cases[i].acl ? acl_sets : NULL));
        T_EQ_INT(ct_one(&t, &a, &r), SP_OK);
        T_EQ_INT((long long)ct_metric(&t, may_evict), cases[i].want);
        T_EQ_INT((long long)ct_metric(&t, max_g), cases[i].max);
        if (cases[i].acl)
            T_EQ_INT((long long)ct_metric(&t, used_g), -1);
        else
            T_OK(ct_metric(&t, used_g) > 100000);
        ct_close(&t);
        sp_test_redis_stop(&srv);
    }

    struct sp_test_redis full;
    memset(&full, 0, sizeof(full));
    T_EQ_INT(sp_test_redis_start(&full), 1);
    T_OK(ct_stage(&t, &full, NULL));
    T_EQ_INT(ct_one(&t, &a, &r), SP_OK);
    T_EQ_INT((long long)ct_metric(&t, may_evict), 0);
    /* Full from now on: the limit well under what is used. */
    long long used = sp_test_redis_int(&full, "used_memory:", "INFO memory");
    T_OK(used > 0);
    redisReply *rep = sp_test_redis_cmd(&full, "CONFIG SET maxmemory %lld",
                                        used / 2);
    T_OK(rep && rep->type == REDIS_REPLY_STATUS);
    if (rep)
        freeReplyObject(rep);
    /* The timer reads the new limit (every 30 s): over it, as operators
     * see before the first refused batch. */
    T_EQ_INT((long long)ct_metric(&t, max_g), 0);
    t.st->type->tick(t.st, sp_now_ms() + 31000);
    T_EQ_INT((long long)ct_metric(&t, max_g), used / 2);
    T_OK(ct_metric(&t, used_g) > used / 2);
    struct ct_alert b[3] = {A(.id = "mem2", .ents = "host:m1", .t = 2),
                            A(.id = "mem3", .ents = "host:m1 host:m2", .t = 3),
                            A(.id = "mem4", .ents = "host:m2", .t = 4)};
    struct ct_res rb[3];
    long long keys0 = sp_test_redis_int(&full, NULL, "DBSIZE");
    T_EQ_INT(ct_run(&t, b, 3, rb), SP_ERR_RETRY);
    T_EQ_INT(ct_run(&t, b, 3, rb), SP_ERR_RETRY);
    /* Refused before anything was written, and nothing written after. */
    T_EQ_INT(sp_test_redis_int(&full, NULL, "DBSIZE"), keys0);
    for (int i = 0; i < 3; i++)
        T_EQ_INT((long long)rb[i].rejects, 0);
    T_EQ_INT((long long)sp_test_sink_count(&t.sink, "dlq"), 0);
    rep = sp_test_redis_cmd(&full, "EXISTS sp:{t:default}:a:mem2");
    T_OK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0);
    if (rep)
        freeReplyObject(rep);
    /* Room again: the same batch goes through, every alert in the
     * incident of mem1. */
    rep = sp_test_redis_cmd(&full, "CONFIG SET maxmemory 0");
    if (rep)
        freeReplyObject(rep);
    T_EQ_INT(ct_run(&t, b, 3, rb), SP_OK);
    for (int i = 0; i < 3; i++)
        T_EQ_STR(rb[i].inc, r.inc);
    ct_close(&t);
    sp_test_redis_stop(&full);
}

/* The scripts survive SCRIPT FLUSH (NOSCRIPT -> SCRIPT LOAD). */
static void test_noscript_reload(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r1, r2;
    T_EQ_INT(ct_one(&t, &A(.id = "ns1", .ents = "host:h1", .t = 0), &r1), SP_OK);
    T_OK(ct_every_master("SCRIPT FLUSH", NULL));
    T_EQ_INT(ct_one(&t, &A(.id = "ns2", .ents = "host:h1", .t = 1), &r2), SP_OK);
    T_EQ_STR(r2.inc, r1.inc);
    ct_close(&t);
}

static bool stale_field_gone(struct ct *t)
{
    SP_UNUSED(t);
    redisReply *r = sp_test_redis_cmd(&ct_redis, "HEXISTS sp:{t:t1}:ix e:host:old");
    bool gone = r && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
    freeReplyObject(r);
    return gone;
}

/* The entity index is one hash per tenant; fields not written for the
 * index TTL are swept by the timer, live ones stay. */
static void test_index_sweep(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "live", .ents = "host:h1", .t = 0), &r), SP_OK);
    /* The value has a space: one argument (%s), not two. */
    redisReply *x = sp_test_redis_cmd(&ct_redis, "HSET sp:{t:t1}:ix e:host:old %s",
                                      "1000|inc-0000000000000000 1000");
    T_OK(x && x->type == REDIS_REPLY_INTEGER && x->integer == 1);
    freeReplyObject(x);
    T_OK(!stale_field_gone(&t));
    T_OK(ct_tick_until(&t, stale_field_gone, 3000));
    x = sp_test_redis_cmd(&ct_redis, "HEXISTS sp:{t:t1}:ix e:host:h1");
    T_OK(x && x->integer == 1);
    freeReplyObject(x);
    ct_close(&t);
}

/* An index field's members as stored ("<incident> <event ms>|..." or
 * "!<event ms>"), without the wall-clock time that leads the value. */
static void ix_members(const char *field, char *out, size_t n)
{
    redisReply *r = sp_test_redis_cmd(&ct_redis, "HGET sp:{t:t1}:ix %s", field);
    const char *bar = r && r->type == REDIS_REPLY_STRING ? strchr(r->str, '|') : NULL;
    snprintf(out, n, "%s", bar ? bar + 1 : "(none)");
    freeReplyObject(r);
}

#define IX_DAY 86400
#define IX_CAP_ALERTS 40
#define IX_FAR_ALERTS 40

/* Joins, a bridge (a member merged away), expiry past twice the window,
 * the automatic noisy rule (K = 2), members leading to a successor, and
 * a list past its cap (32 = max(32, 2K + 8)). */
static size_t ix_scenario(struct ct_alert *al)
{
    static const struct ct_alert fixed[] = {
        {.id = "a1", .ents = "host:h1", .t = 0},
        {.id = "a2", .ents = "host:h1 account:u1", .t = 10},
        {.id = "b1", .ents = "host:h2", .t = 20},
        {.id = "c1", .ents = "host:h1 host:h2", .t = 30},
        {.id = "d1", .ents = "host:h1", .t = 3 * IX_DAY},
        {.id = "e1", .ents = "ip:9.9.9.9 host:n1", .t = 40},
        {.id = "e2", .ents = "ip:9.9.9.9 host:n2", .t = 41},
        {.id = "e3", .ents = "ip:9.9.9.9 host:n3", .t = 42},
        {.id = "e4", .ents = "ip:9.9.9.9 host:n4", .t = 43},
        {.id = "e5", .ents = "ip:9.9.9.9 host:n5", .t = 44},
    };
    static char ids[IX_CAP_ALERTS][16];
    size_t n = 0;
    for (; n < SP_ARRAY_SIZE(fixed); n++)
        al[n] = fixed[n];
    for (int i = 0; i < IX_CAP_ALERTS; i++, n++) {
        snprintf(ids[i], sizeof(ids[i]), "cap%02d", i);
        al[n] = A(.id = ids[i], .ents = "host:cap", .t = 100 + i,
                  .status = "resolved");
    }
    static char fids[IX_FAR_ALERTS][16];
    for (int i = 0; i < IX_FAR_ALERTS; i++, n++) {
        snprintf(fids[i], sizeof(fids[i]), "far%02d", i);
        al[n] = A(.id = fids[i], .ents = "host:far", .t = 5000 - 2 * i,
                  .detector = "Far");
    }
    return n;
}

static const char *const ix_fields[] = {
    "e:host:h1", "e:account:u1", "e:host:h2", "e:ip:9.9.9.9", "e:host:n4",
    "e:host:cap", "e:host:far",
};

/*
 * The entity index as stored, checked member by member, and the same
 * whether the alerts run in one script call (the index changed in place
 * and written once) or one call each.
 */
static void test_index_values(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.noisy.threshold=2",
                          "correlate.rules.detector:Far=window=1s", NULL};
    struct ct_alert al[128];
    size_t n = ix_scenario(al);
    static char got[2][SP_ARRAY_SIZE(ix_fields)][4096];
    static struct ct_res res[128];
    for (int pass = 0; pass < 2; pass++) {
        struct ct t;
        T_OK(ct_open(&t, sets));
        if (pass == 0) {
            T_EQ_INT(ct_run(&t, al, n, res), SP_OK);
        } else {
            for (size_t i = 0; i < n; i++)
                T_EQ_INT(ct_one(&t, &al[i], &res[i]), SP_OK);
        }
        for (size_t f = 0; f < SP_ARRAY_SIZE(ix_fields); f++)
            ix_members(ix_fields[f], got[pass][f], sizeof(got[pass][f]));
        ct_close(&t);
        /* a1, a2 and c1 share X; b1 (Y) was merged into X by c1; d1 came
         * three days later: a new incident Z, and X expired from h1. */
        const char *x = res[0].inc, *z = res[4].inc;
        T_EQ_STR(res[3].inc, x);
        T_OK(strcmp(z, x) != 0);
        char want[512];
        snprintf(want, sizeof(want), "%s %lld", z, (CT_BASE_S + 3 * IX_DAY) * 1000);
        T_EQ_STR(got[pass][0], want);
        snprintf(want, sizeof(want), "%s %lld", x, (CT_BASE_S + 10) * 1000);
        T_EQ_STR(got[pass][1], want);
        /* h2: Y, then X with the context it bridged (~X: noisy counting);
         * Y stays until a later sighting finds it merged. */
        snprintf(want, sizeof(want), "%s %lld|%s %lld|~%s %lld", res[2].inc,
                 (CT_BASE_S + 20) * 1000, x, (CT_BASE_S + 30) * 1000, x,
                 (CT_BASE_S + 30) * 1000);
        T_EQ_STR(got[pass][2], want);
        /* e2 and e3 joined e1 through the ip, each bringing a new host (a
         * context each); at e4 the ip was in more than K: noisy, and e4
         * and e5 open incidents of their own. */
        T_EQ_STR(res[6].inc, res[5].inc);
        T_EQ_STR(res[7].inc, res[5].inc);
        T_OK(strcmp(res[8].inc, res[5].inc) != 0);
        T_OK(strcmp(res[9].inc, res[8].inc) != 0);
        snprintf(want, sizeof(want), "!%lld", (CT_BASE_S + 43) * 1000);
        T_EQ_STR(got[pass][3], want);
        snprintf(want, sizeof(want), "%s %lld", res[8].inc, (CT_BASE_S + 43) * 1000);
        T_EQ_STR(got[pass][4], want);
        /* host:cap: each resolved alert closed its incident, and the next
         * one opened a successor; members lead to their successor, so
         * the list holds the last two. */
        const size_t c0 = 10, f0 = 10 + IX_CAP_ALERTS;
        snprintf(want, sizeof(want), "%s %lld|%s %lld", res[f0 - 2].inc,
                 (CT_BASE_S + 100 + IX_CAP_ALERTS - 2) * 1000, res[f0 - 1].inc,
                 (CT_BASE_S + 100 + IX_CAP_ALERTS - 1) * 1000);
        T_EQ_STR(got[pass][5], want);
        T_OK(strcmp(res[c0].inc, res[c0 + 1].inc) != 0);
        /* host:far (window 1s, each alert 2s before the previous one):
         * every alert opens an incident and none expires, so the list
         * reaches its cap of 32: cut to the 32 latest event times, which
         * are the first 32 alerts'. */
        const char *far = got[pass][6];
        size_t members = 1;
        for (const char *c = far; *c; c++)
            members += *c == '|';
        T_EQ_INT(members, 32);
        T_OK(strstr(far, res[f0].inc) != NULL);
        T_OK(strstr(far, res[f0 + 31].inc) != NULL);
        T_OK(strstr(far, res[f0 + 32].inc) == NULL);
        T_OK(strcmp(res[f0].inc, res[f0 + 1].inc) != 0);
    }
    for (size_t f = 0; f < SP_ARRAY_SIZE(ix_fields); f++)
        T_EQ_STR(got[0][f], got[1][f]);
}

/* Event times at or before 1970 are placeholders (0001-01-01 is .NET's
 * default): the alert correlates on its next time (here updated), in one
 * call or alert by alert alike. */
static void test_placeholder_times(void)
{
    SKIP_WITHOUT_REDIS();
    const struct ct_alert al[2] = {
        A(.id = "p1", .ents = "host:neg", .t = -CT_BASE_S - 62135596800LL,
          .updated = 10),
        A(.id = "p2", .ents = "host:neg", .t = -CT_BASE_S - 3600, .updated = 20),
    };
    for (int pass = 0; pass < 2; pass++) {
        struct ct t;
        T_OK(ct_open(&t, NULL));
        struct ct_res r[2];
        if (pass == 0) {
            T_EQ_INT(ct_run(&t, al, 2, r), SP_OK);
        } else {
            T_EQ_INT(ct_one(&t, &al[0], &r[0]), SP_OK);
            T_EQ_INT(ct_one(&t, &al[1], &r[1]), SP_OK);
        }
        T_OK(r[0].inc[0] != '\0');
        T_EQ_STR(r[1].inc, r[0].inc);
        char want[128];
        snprintf(want, sizeof(want), "%s %lld", r[0].inc, (CT_BASE_S + 20) * 1000);
        char got[256];
        ix_members("e:host:neg", got, sizeof(got));
        T_EQ_STR(got, want);
        json_t *inc = ct_latest(&t, r[0].inc);
        T_EQ_STR(json_string_value(json_object_get(inc, "first_seen")),
                 "2024-01-01T00:00:10Z");
        json_decref(inc);
        ct_close(&t);
    }
}

/* Snapshots validate against schema/incident.schema.json. */
static void test_schema(void)
{
    SKIP_WITHOUT_REDIS();
    if (access("schema/incident.schema.json", R_OK) != 0 ||
        access("tests/tools/schema_check.py", R_OK) != 0)
        T_SKIP("run from the repository root to validate the schema");
    if (system("python3 -c 'import jsonschema' 2>/dev/null") != 0)
        T_SKIP("python3-jsonschema is not installed");
    const char *sets[] = {"correlate.max_alerts=4", "correlate.flood.enabled=true",
                          "correlate.flood.threshold=3",
                          "correlate.noisy.stoplist=host:dc1", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert in[] = {
        A(.id = "s1", .ents = "host:h1 host:dc1", .t = 0, .pid = "9"),
        A(.id = "s2", .ents = "account:u1", .t = 1, .detector = "d2",
          .provider = "microsoftDefenderForIdentity"),
        A(.id = "s3", .ents = "host:h1 account:u1", .t = 2, .title = "quote \" and \\ and \x01"),
        A(.id = "s4", .ents = "host:h1", .t = 3, .status = "resolved"),
        A(.id = "s5", .ents = "host:h1", .t = 4),
        A(.id = "f1", .ents = "ip:1.1.1.1", .t = 5, .detector = "F"),
        A(.id = "f2", .ents = "ip:1.1.1.2", .t = 6, .detector = "F"),
        A(.id = "f3", .ents = "ip:1.1.1.3", .t = 7, .detector = "F"),
        A(.id = "f4", .ents = "ip:1.1.1.4", .t = 8, .detector = "F"),
    };
    T_EQ_INT(ct_run(&t, in, SP_ARRAY_SIZE(in), NULL), SP_OK);
    ct_settle(&t);
    char path[] = "/tmp/socpilot-incidents-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    size_t n = 0, with_provider = 0;
    for (size_t i = 0; i < t.sink.n; i++)
        if (strcmp(t.sink.outs[i].topic, "incidents") == 0) {
            fprintf(f, "%s\n", t.sink.outs[i].value);
            n++;
            with_provider += strstr(t.sink.outs[i].value, "\"provider\":"
                                    "\"microsoftDefenderForIdentity\"") != NULL;
        }
    fclose(f);
    T_OK(n >= 7);
    T_OK(with_provider >= 1);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "python3 tests/tools/schema_check.py --require "
             "--schema schema/incident.schema.json %s >/dev/null", path);
    T_EQ_INT(system(cmd), 0);
    unlink(path);
    ct_close(&t);
}

/*
 * Snapshots are the same bytes with the memo of parsed summaries and
 * decisions as without: filled, then used, then too small to hold one
 * incident, and when the snapshot is cut to fit.  An incident with
 * merges, an update, and titles that need escaping.
 */
static void test_snapshot_memo(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    static const char *const titles[] = {
        "Quote \" and backslash \\ in a title", "Tab\there, newline\nthere",
        "Ünïcödé — \xe2\x82\xac and \xf0\x9f\x98\x80", "\x01control\x1f bytes",
        "plain title"};
    struct ct_alert in[40];
    char ids[40][16], ents[40][48];
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%d", i);
        /* two chains (h1, h2) bridged by alert 30 */
        snprintf(ents[i], sizeof(ents[i]), i == 30 ? "host:h1 host:h2" :
                 i % 2 ? "host:h1 ip:10.0.0.%d" : "host:h2 ip:10.0.1.%d", i);
        in[i] = A(.id = ids[i], .ents = ents[i], .t = i,
                  .title = titles[i % 5], .detector = i % 3 ? "Det\"A" : "det-b");
    }
    struct ct_res r[40];
    T_EQ_INT(ct_run(&t, in, 20, r), SP_OK);
    T_EQ_INT(ct_run(&t, in + 20, 20, r + 20), SP_OK);
    struct ct_res rs[3];
    struct ct_alert sm[3] = {A(.id = "s0", .ents = "host:h9", .t = 100),
                             A(.id = "s1", .ents = "host:h9", .t = 101),
                             A(.id = "s2", .ents = "host:h9", .t = 102)};
    T_EQ_INT(ct_run(&t, sm, 3, rs), SP_OK);
    struct ct_res ru;
    T_EQ_INT(ct_one(&t, &A(.id = "m4", .ents = "host:h2", .t = 4, .updated = 99,
                           .status = "resolved", .title = titles[1]), &ru), SP_OK);
    T_EQ_STR(ru.inc, r[30].inc);
    /* The stage itself took summaries from its memo. */
    T_OK(ct_metric(&t, "socpilot_correlate_snapshot_memo_hits_total{stage=\"correlate.0\"}") > 0);

    /* the survivor of the bridge, and the incident merged into it */
    const char *incs[] = {r[30].inc, strcmp(r[0].inc, r[30].inc) ? r[0].inc : r[1].inc};
    T_OK(strcmp(incs[0], incs[1]) != 0);
    for (size_t k = 0; k < 2; k++) {
        redisReply *rep = ct_snapshot_reply(incs[k], 100);
        T_OK(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
            freeReplyObject(rep);
            continue;
        }
        struct corr_vcache *vc = corr_vcache_new((size_t)64 << 20),
                           *tiny = corr_vcache_new(2048);
        struct sp_buf want, got;
        sp_buf_init(&want, 0);
        sp_buf_init(&got, 0);
        int64_t v0 = 0, v1 = 0;
        /* whole snapshots, then one byte too large: cut ones */
        size_t maxes[] = {(size_t)1 << 20, 0};
        for (size_t x = 0; x < 2; x++) {
            if (x == 1)
                maxes[1] = want.len - 1;
            sp_buf_reset(&want);
            T_EQ_INT(corr_incident_write(rep, incs[k], &want, maxes[x], &v0, NULL), SP_OK);
            struct corr_vcache *use[] = {vc, vc, tiny, tiny};
            for (size_t u = 0; u < 4; u++) {
                sp_buf_reset(&got);
                T_EQ_INT(corr_incident_write(rep, incs[k], &got, maxes[x], &v1, use[u]),
                         SP_OK);
                T_EQ_INT(v1, v0);
                T_OK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
            }
        }
        T_OK(strstr(want.data, "\"truncated\":true") != NULL);  /* the cut ran */
        uint64_t hits, misses, drops;
        size_t bytes;
        corr_vcache_stats(vc, &hits, &misses, &drops, &bytes);
        if (k == 0) {           /* 40 summaries, 40 decisions and more */
            T_OK(misses >= 80 && hits >= 3 * misses);
            T_OK(bytes > 0);
        } else {                /* merged away: nothing left to remember */
            T_EQ_INT(misses, 0);
        }
        corr_vcache_stats(tiny, &hits, &misses, &drops, &bytes);
        T_OK(bytes < (size_t)2 << 20);     /* a table, scratch, one value */
        if (k == 0) {
            /* A memo smaller than one snapshot's values still serves the
             * next snapshots from its older half (it is not emptied by
             * every snapshot), with the same bytes. */
            corr_vcache_stats(vc, &hits, &misses, &drops, &bytes);
            struct corr_vcache *half = corr_vcache_new(bytes * 2 / 3);
            for (int round = 0; round < 4; round++) {
                sp_buf_reset(&got);
                T_EQ_INT(corr_incident_write(rep, incs[k], &got, (size_t)1 << 20,
                                             &v1, half), SP_OK);
                T_OK(strstr(got.data, "\"truncated\":false") != NULL);
            }
            corr_vcache_stats(half, &hits, &misses, &drops, &bytes);
            T_OK(hits > 0);
            T_OK(drops >= 1);
            /* ... and a small incident after it is still learned and
             * used (3 summaries, 3 decisions: all hits from its second
             * snapshot on) */
            redisReply *small = ct_snapshot_reply(rs[0].inc, 100);
            uint64_t h0 = hits;
            for (int round = 0; round < 3 && small; round++) {
                sp_buf_reset(&want);
                sp_buf_reset(&got);
                T_EQ_INT(corr_incident_write(small, rs[0].inc, &want, (size_t)1 << 20,
                                             &v0, NULL), SP_OK);
                T_EQ_INT(corr_incident_write(small, rs[0].inc, &got, (size_t)1 << 20,
                                             &v1, half), SP_OK);
                T_OK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
            }
            corr_vcache_stats(half, &hits, &misses, &drops, &bytes);
            T_OK(small != NULL);
            T_OK(hits - h0 >= 12);
            freeReplyObject(small);
            corr_vcache_free(half);
        }
        corr_vcache_free(vc);
        corr_vcache_free(tiny);
        sp_buf_fini(&want);
        sp_buf_fini(&got);
        freeReplyObject(rep);
    }
    /* A summary whose entity pairs come as an object's members (not what
     * the script writes, but what it might find) counts them the same,
     * with and without the memo. */
    char al[128];
    snprintf(al, sizeof(al), "sp:{t:t1}:i:%s:al", r[30].inc);
    for (int m = 0; m < (ct_cluster.n ? ct_cluster.n : 1); m++)
        freeReplyObject(sp_test_redis_cmd(
            ct_cluster.n ? &ct_cluster.node[m] : &ct_redis, "HSET %s xo %s", al,
            "{\"id\":\"xo\",\"title\":\"obj\",\"t\":1704067200000,\"ents\":"
            "{\"a\":[\"host\",\"host:h1\"],\"b\":[\"ip\",\"ip:10.9.9.9\"]}}"));
    redisReply *rep = ct_snapshot_reply(r[30].inc, 100);
    struct corr_vcache *vc = corr_vcache_new((size_t)8 << 20);
    struct sp_buf a, b;
    sp_buf_init(&a, 0);
    sp_buf_init(&b, 0);
    int64_t va, vb;
    T_EQ_INT(corr_incident_write(rep, r[30].inc, &a, (size_t)1 << 20, &va, NULL), SP_OK);
    T_EQ_INT(corr_incident_write(rep, r[30].inc, &b, (size_t)1 << 20, &vb, vc), SP_OK);
    T_OK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    T_OK(a.data && strstr(a.data, "{\"key\":\"ip:10.9.9.9\",\"type\":\"ip\","
                                  "\"alerts\":[\"xo\"]}") != NULL);
    sp_buf_fini(&a);
    sp_buf_fini(&b);
    corr_vcache_free(vc);
    freeReplyObject(rep);
    ct_close(&t);
}

/* ---- found by a review of the semantics ---------------------------------- */

/* Out of order: an entity's index entry keeps what was seen within twice
 * the longest window of its newest sighting, so an alert up to a window
 * late still finds the incidents of its own time (c, 46 h behind b, joins
 * a, 1 h away); a newer alert of a shorter rule changes nothing to that
 * (test_short_rule_prunes_shared_index). */
static void test_late_alert_loses_index(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));                /* window 24h */
    struct ct_res a, b, c;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "b", .ents = "host:h1", .t = 47 * H), &b),
             SP_OK);
    T_OK(strcmp(b.inc, a.inc) != 0);        /* 47 h apart */
    T_EQ_INT(ct_one(&t, &A(.id = "c", .ents = "host:h1 account:late",
                           .t = 1 * H), &c), SP_OK);
    T_EQ_STR(c.inc, a.inc);
    T_EQ_INT(ct_live(&t), 2);
    ct_close(&t);
}

/* One alert with a time far ahead of this host's clock (skew, or made up)
 * is taken as now: it neither ages every other incident out of the
 * entities it carries nor opens an incident of its own. */
static void test_future_alert_wipes_index(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    int64_t now = (int64_t)time(NULL) - CT_BASE_S;
    struct ct_res a, x, d;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = now - 2 * H),
                    &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "x", .ents = "host:h1",
                           .t = now + 365LL * 24 * H), &x), SP_OK);
    T_EQ_STR(x.inc, a.inc);
    T_EQ_INT(ct_one(&t, &A(.id = "d", .ents = "host:h1", .t = now - 1 * H),
                    &d), SP_OK);
    T_EQ_STR(d.inc, a.inc);
    T_EQ_INT(ct_live(&t), 1);
    ct_close(&t);
}

/* The same with a short longest window (10 min, horizon 20 min): an alert
 * 50 min ahead (under the 1 h clamp) still ages the entity's entry out, and
 * an alert 1 min after the first no longer finds it. */
static void test_future_alert_short_window(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.window=10m", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    int64_t now = (int64_t)time(NULL) - CT_BASE_S;
    struct ct_res a, x, d;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = now), &a),
             SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "x", .ents = "host:h1", .t = now + 3000),
                    &x), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "d", .ents = "host:h1", .t = now + 60), &d),
             SP_OK);
    T_EQ_STR(d.inc, a.inc);
    ct_close(&t);
}

/* Rules of mode any share the "e:" namespace of the index, but each alert
 * prunes it with its own rule's window: an alert of a 1h rule drops the
 * members a 24h rule still needs.  c (default rule, 24h) shares host:h1
 * with a (4h before) and b (1h before): one incident expected. */
static void test_short_rule_prunes_shared_index(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.rules.detector:Short=mode=any window=1h",
                          NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res a, b, c;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "b", .detector = "Short", .ents = "host:h1",
                           .t = 3 * H), &b), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "c", .ents = "host:h1", .t = 4 * H), &c),
             SP_OK);
    T_EQ_STR(c.inc, a.inc);                 /* (it used to join b only) */
    T_EQ_INT(ct_live(&t), 1);
    ct_close(&t);
}

/* Control for the above: without the short-rule alert, c joins a. */
static void test_short_rule_control(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.rules.detector:Short=mode=any window=1h",
                          NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res a, c;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "c", .ents = "host:h1", .t = 4 * H), &c),
             SP_OK);
    T_EQ_STR(c.inc, a.inc);
    ct_close(&t);
}

/* A noisy entity's mark is erased by one alert older than the window:
 * the entity then glues unrelated alerts again. */
static void test_late_alert_clears_noisy(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.noisy.threshold=3", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r[5];
    char ents[64], id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(ents, sizeof(ents), "ip:10.0.0.1 account:user%d", i);
        snprintf(id, sizeof(id), "n%d", i);
        T_EQ_INT(ct_one(&t, &A(.id = id, .ents = ents, .t = i * 60), &r[i]),
                 SP_OK);
    }
    T_OK(strcmp(r[4].inc, r[0].inc) != 0);  /* noisy now */
    struct ct_res late, p, q;
    T_EQ_INT(ct_one(&t, &A(.id = "late", .ents = "ip:10.0.0.1 account:old",
                           .t = -48 * H), &late), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "p", .ents = "ip:10.0.0.1 account:p",
                           .t = 10 * 60), &p), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "q", .ents = "ip:10.0.0.1 account:q",
                           .t = 11 * 60), &q), SP_OK);
    T_OK(strcmp(q.inc, p.inc) != 0);        /* (it used to be glued by the noisy IP) */
    ct_close(&t);
}

/* An alert first seen without its provider incident id (Graph
 * alerts_v2 before the alert is assigned to an incident; Defender
 * evidence emitted before AlertInfo) and updated with it later: later
 * alerts of that provider incident should join the alert's incident. */
static void test_update_learns_provider_id(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a, a2, b;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0, .pid = "77",
                           .updated = 60), &a2), SP_OK);
    T_EQ_STR(a2.inc, a.inc);                /* an update, same incident */
    T_EQ_INT(ct_one(&t, &A(.id = "b", .ents = "host:h9", .t = 120,
                           .pid = "77"), &b), SP_OK);
    T_EQ_STR(b.inc, a.inc);                 /* (it used to open a new incident) */
    ct_close(&t);
}

/* Provider grouping comes before flood control: a provider incident with
 * more than threshold alerts of one detector is never split, all its
 * alerts join it (none goes to an overflow incident). */
static void test_flood_before_provider(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.flood.enabled=true",
                          "correlate.flood.threshold=3",
                          "correlate.flood.window=10m", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_res r[5];
    char ents[32], id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(ents, sizeof(ents), "host:box%d", i);
        snprintf(id, sizeof(id), "f%d", i);
        T_EQ_INT(ct_one(&t, &A(.id = id, .ents = ents, .t = i, .pid = "77",
                               .detector = "D"), &r[i]), SP_OK);
    }
    for (int i = 1; i < 5; i++)
        T_EQ_STR(r[i].inc, r[0].inc);       /* (f3, f4 used to overflow) */
    ct_close(&t);
}

/* The provider mapping p:<id> follows its incident's expiry: written with
 * every alert of the provider incident, not only when it changes (aged
 * here by hand: one second left before the second alert). */
static void test_provider_mapping_ttl(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a, b;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0,
                           .pid = "77"), &a), SP_OK);
    freeReplyObject(sp_test_redis_cmd(&ct_redis,
                                      "PEXPIRE sp:{t:t1}:p:77 1000"));
    T_EQ_INT(ct_one(&t, &A(.id = "b", .ents = "host:h2", .t = 31,
                           .pid = "77"), &b), SP_OK);
    T_EQ_STR(b.inc, a.inc);
    redisReply *rp = sp_test_redis_cmd(&ct_redis, "PTTL sp:{t:t1}:p:77");
    T_OK(rp && rp->type == REDIS_REPLY_INTEGER && rp->integer > 86400000);
    freeReplyObject(rp);
    ct_close(&t);
}

/* An incident's periodic expiry refresh (every retention / 10) also
 * refreshes its alerts' dedupe records: one expiring while its incident
 * lives would make a replay of that alert a new alert in a new incident
 * (aged here by hand: the record has one second left, the incident's last
 * refresh is long past). */
static void test_alert_records_follow_incident(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a, b;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "PEXPIRE sp:{t:t1}:a:a 1000"));
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HSET sp:{t:t1}:i:%s ex 1",
                                      a.inc));
    T_EQ_INT(ct_one(&t, &A(.id = "b", .ents = "host:h1", .t = 60), &b), SP_OK);
    T_EQ_STR(b.inc, a.inc);
    redisReply *r = sp_test_redis_cmd(&ct_redis, "PTTL sp:{t:t1}:a:a");
    T_OK(r && r->type == REDIS_REPLY_INTEGER && r->integer > 86400000);
    freeReplyObject(r);
    ct_close(&t);
}

/* The alert that gave an incident its title loses severity: the title
 * goes to the most severe alert left, and among equals to the smallest
 * alert id, not to whichever Redis's hash order gives first (it varies
 * between servers). */
static void test_title_tie_deterministic(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "top", .ents = "host:h1", .t = 0,
                           .sev = SP_SEV_HIGH, .title = "Top"), &r), SP_OK);
    const char *order[] = {"m3", "m1", "m4", "m2", "m0"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(order); i++) {
        char title[16];
        snprintf(title, sizeof(title), "Title %s", order[i]);
        T_EQ_INT(ct_one(&t, &A(.id = order[i], .ents = "host:h1",
                               .t = (int64_t)i + 1, .sev = SP_SEV_MEDIUM,
                               .title = title), NULL), SP_OK);
    }
    T_EQ_INT(ct_one(&t, &A(.id = "top", .ents = "host:h1", .t = 0,
                           .sev = SP_SEV_LOW, .title = "Top", .updated = 60),
                    NULL), SP_OK);
    json_t *inc = ct_latest(&t, r.inc);
    T_EQ_STR(ct_jstr(inc, "title"), "Title m0");
    json_decref(inc);
    ct_close(&t);
}

/* `socpilot incident reopen|close` is a change like any other: the
 * incident lives a retention from then (aged here by hand), not only what
 * was left of it. */
static void test_cli_status_refreshes_expiry(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    const char *sfx[] = {"", ":al", ":why"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(sfx); i++)
        freeReplyObject(sp_test_redis_cmd(&ct_redis,
            "PEXPIRE sp:{t:t1}:i:%s%s 5000", a.inc, sfx[i]));
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "PEXPIRE sp:{t:t1}:seen 5000"));
    char out[4096];
    const char *close_args[] = {"close", a.inc};
    T_EQ_INT(ct_cli(ct_redis.port, close_args, 2, out, sizeof(out)), 0);
    for (size_t i = 0; i < SP_ARRAY_SIZE(sfx); i++) {
        redisReply *r = sp_test_redis_cmd(&ct_redis, "PTTL sp:{t:t1}:i:%s%s",
                                          a.inc, sfx[i]);
        T_OK(r && r->type == REDIS_REPLY_INTEGER && r->integer > 86400000);
        freeReplyObject(r);
    }
    /* The tenant's last change too: seen outlives its incidents. */
    redisReply *r = sp_test_redis_cmd(&ct_redis, "PTTL sp:{t:t1}:seen");
    T_OK(r && r->type == REDIS_REPLY_INTEGER && r->integer > 86400000);
    freeReplyObject(r);
    ct_close(&t);
}

/* `socpilot incident reopen` near the end of the retention: the incident
 * lives a retention from then, and so must its alerts' dedupe records, or
 * a replay of one of its alerts (records aged here by hand, as the
 * incident) becomes a new alert in a new incident. */
static void test_cli_status_refreshes_alert_records(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a, a2;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    const char *sfx[] = {"", ":al", ":why"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(sfx); i++)
        freeReplyObject(sp_test_redis_cmd(&ct_redis,
            "PEXPIRE sp:{t:t1}:i:%s%s 5000", a.inc, sfx[i]));
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "PEXPIRE sp:{t:t1}:a:a 300"));
    char out[4096];
    const char *close_args[] = {"close", a.inc};
    T_EQ_INT(ct_cli(ct_redis.port, close_args, 2, out, sizeof(out)), 0);
    sp_test_sleep_ms(400);
    /* the incident lives on; a replay of its alert is still a duplicate */
    redisReply *r = sp_test_redis_cmd(&ct_redis, "EXISTS sp:{t:t1}:i:%s",
                                      a.inc);
    T_OK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a2), SP_OK);
    T_EQ_STR(a2.inc, a.inc);
    ct_close(&t);
}

/* `socpilot incident close` on an incident its alerts closed pins the
 * close: an alert update that reactivates an alert at the provider
 * leaves the incident closed (it used to reopen it). */
static void test_cli_close_of_auto_closed_pins(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a, a2, a3;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0,
                           .status = "resolved", .updated = 60), &a2), SP_OK);
    json_t *inc = ct_latest(&t, a.inc);
    T_EQ_STR(ct_jstr(inc, "status"), "closed");
    json_decref(inc);
    char out[4096];
    const char *close_args[] = {"close", a.inc};
    T_EQ_INT(ct_cli(ct_redis.port, close_args, 2, out, sizeof(out)), 0);
    /* The alert is reactivated at the provider. */
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0,
                           .status = "new", .updated = 120), &a3), SP_OK);
    inc = ct_latest(&t, a.inc);
    T_EQ_STR(ct_jstr(inc, "status"), "closed");     /* (it used to go active) */
    json_decref(inc);
    ct_close(&t);
}

/* `socpilot incident reopen` of an incident its alerts closed pins it
 * open: a later update of its (still resolved) alert does not close it
 * again behind the analyst's back. */
static void test_cli_reopen_pinned(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res a;
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0), &a), SP_OK);
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0,
                           .status = "resolved", .updated = 60), NULL), SP_OK);
    json_t *inc = ct_latest(&t, a.inc);
    T_EQ_STR(ct_jstr(inc, "status"), "closed");
    json_decref(inc);
    char out[4096];
    const char *reopen_args[] = {"reopen", a.inc};
    T_EQ_INT(ct_cli(ct_redis.port, reopen_args, 2, out, sizeof(out)), 0);
    /* The alert changes again at the provider, still resolved. */
    T_EQ_INT(ct_one(&t, &A(.id = "a", .ents = "host:h1", .t = 0,
                           .status = "resolved", .updated = 120,
                           .sev = SP_SEV_HIGH), NULL), SP_OK);
    inc = ct_latest(&t, a.inc);
    T_EQ_INT(ct_jint(inc, "version"), 4);      /* new, resolved, reopen, update */
    T_EQ_STR(ct_jstr(inc, "status"), "active");
    json_decref(inc);
    ct_close(&t);
}

int main(void)
{
    t_prog = "test_correlate";
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    T_RUN(test_chain);
    T_RUN(test_bridge_merge);
    T_RUN(test_window_expiry);
    T_RUN(test_noisy_stoplist);
    T_RUN(test_noisy_auto);
    T_RUN(test_mode_all);
    T_RUN(test_rules_selected);
    T_RUN(test_rules_selected_fields);
    T_RUN(test_flood);
    T_RUN(test_flood_threshold_in_window);
    T_RUN(test_flood_counter_without_total);
    T_RUN(test_closed_incident);
    T_RUN(test_close_on_resolved);
    T_RUN(test_cap);
    T_RUN(test_max_why);
    T_RUN(test_tenants);
    T_RUN(test_duplicates_updates);
    T_RUN(test_new_id_after_expiry);
    T_RUN(test_retention_ttls);
    T_RUN(test_merge_moves_side_hashes);
    T_RUN(test_provider_grouping);
    T_RUN(test_provider_closed_incident);
    T_RUN(test_provider_cap);
    T_RUN(test_schedules_analysis_atomically);
    T_RUN(test_round_trips);
    T_RUN(test_call_error_isolated);
    T_RUN(test_call_error_counts_once);
    T_RUN(test_redis_memory_limit);
    T_RUN(test_noscript_reload);
    T_RUN(test_cluster);
    T_RUN(test_index_sweep);
    T_RUN(test_index_values);
    T_RUN(test_placeholder_times);
    T_RUN(test_snapshot_memo);
    T_RUN(test_schema);
    T_RUN(test_late_alert_loses_index);
    T_RUN(test_future_alert_wipes_index);
    T_RUN(test_future_alert_short_window);
    T_RUN(test_short_rule_prunes_shared_index);
    T_RUN(test_short_rule_control);
    T_RUN(test_late_alert_clears_noisy);
    T_RUN(test_update_learns_provider_id);
    T_RUN(test_flood_before_provider);
    T_RUN(test_provider_mapping_ttl);
    T_RUN(test_alert_records_follow_incident);
    T_RUN(test_title_tie_deterministic);
    T_RUN(test_cli_status_refreshes_expiry);
    T_RUN(test_cli_status_refreshes_alert_records);
    T_RUN(test_cli_close_of_auto_closed_pins);
    T_RUN(test_cli_reopen_pinned);
    return t_done();
}
