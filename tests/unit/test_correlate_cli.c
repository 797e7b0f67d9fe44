/*
 * test_correlate_cli.c - `socpilot incident` finding an incident without
 * --tenant when other tenants' keys look like it: a Defender alert id is
 * anyone's text, so "sp:{t:evil}:asm:<alert>" can end in "}:i:<id>" of
 * another tenant's incident; show and close must act on the real incident
 * and leave such keys alone, a missing id creates nothing, and an id held
 * by two tenants needs --tenant.  And the Defender assembly poll that
 * the same keys serve: past the tenants one poll takes, every tenant's
 * assemblies still go out, and tenants without any leave the poll's set.
 *
 * Skips (with a message) when redis-server is not installed.
 */
#include "t.h"

#include "correlate_int.h"
#include "correlate_test.h"

#define SKIP_WITHOUT_REDIS()                                                \
    do {                                                                    \
        const char *why_;                                                   \
        if (!ct_redis_up(&why_))                                            \
            T_SKIP(why_);                                                   \
    } while (0)

#define A(...) ((struct ct_alert){__VA_ARGS__})

/* A hash as one comparable string ("f=v;..." in Redis' order) plus its
 * TTL, "" when the key is missing. */
static void hash_state(const char *key, char *out, size_t n)
{
    out[0] = '\0';
    redisReply *h = sp_test_redis_cmd(&ct_redis, "HGETALL %s", key);
    size_t o = 0;
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements;
         i += 2)
        o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s=%s;",
                              h->element[i]->str, h->element[i + 1]->str);
    if (h)
        freeReplyObject(h);
    long long ttl = sp_test_redis_int(&ct_redis, NULL, "PTTL %s", key);
    if (o < n)
        snprintf(out + o, n - o, "ttl>0:%d", ttl > 0);
}

static size_t key_count(const char *pattern)
{
    redisReply *k = ct_keys(pattern);
    size_t n = k ? k->elements : 0;
    if (k)
        freeReplyObject(k);
    return n;
}

static int cli(const char *const *args, int n)
{
    char out[16384];
    return ct_cli(ct_redis.port, args, n, out, sizeof(out));
}

/*
 * The attack of the review: tenant "evil" sends a Defender row whose alert
 * id is "x}:i:<victim incident>" (a real row, through the stage), and
 * plants a hash that even has an incident's fields under such a name.
 */
static void test_other_tenant_lookalikes(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1", .tenant = "acme"), &r),
             SP_OK);
    const char *inc = r.inc;
    T_OK(inc[0] != '\0');
    char real[256], row_id[160], row_key[256], fake_key[256], fake2_key[256];
    snprintf(real, sizeof(real), "sp:{t:acme}:i:%s", inc);
    snprintf(row_id, sizeof(row_id), "defender-streaming:x}:i:%s", inc);
    struct ct_alert row = A(.id = row_id, .part = SP_PART_INFO, .title = "T",
                            .tenant = "evil", .source = "defender-streaming");
    T_EQ_INT(ct_run(&t, &row, 1, NULL), SP_OK);
    snprintf(row_key, sizeof(row_key), "sp:{t:evil}:asm:%s", row_id);
    snprintf(fake_key, sizeof(fake_key), "sp:{t:evil}:asm:y}:i:%s", inc);
    snprintf(fake2_key, sizeof(fake2_key), "sp:{t:evil}:asm:z:{t:acme}:i:%s",
             inc);
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HSET %s v 7 st new", fake_key));
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HSET %s v 7 st new", fake2_key));
    const char *planted[] = {row_key, fake_key, fake2_key};
    char before[3][4096], after[4096];
    for (int i = 0; i < 3; i++) {
        hash_state(planted[i], before[i], sizeof(before[i]));
        T_OK(strlen(before[i]) > 10);           /* the keys are there */
    }
    size_t keys_before = key_count("*");

    const char *show[] = {"show", inc};
    char out[16384];
    T_EQ_INT(ct_cli(ct_redis.port, show, 2, out, sizeof(out)), 0);
    T_CONTAINS(out, "\"tenant\": \"acme\"");
    T_CONTAINS(out, "\"alerts_total\": 1");
    const char *close_args[] = {"close", inc};
    T_EQ_INT(cli(close_args, 2), 0);
    char st[64] = "";
    redisReply *s = sp_test_redis_cmd(&ct_redis, "HGET %s st", real);
    if (s && s->type == REDIS_REPLY_STRING)
        snprintf(st, sizeof(st), "%s", s->str);
    if (s)
        freeReplyObject(s);
    T_EQ_STR(st, "closed");
    for (int i = 0; i < 3; i++) {
        hash_state(planted[i], after, sizeof(after));
        T_EQ_STR(after, before[i]);
    }
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "EXISTS %s:why", row_key), 0);
    T_EQ_INT(key_count("*"), keys_before);
    ct_close(&t);
}

/* The status script itself refuses a key that is not P.."i:"..id of one
 * tenant, and an incident that does not exist: nothing is written. */
static void test_status_script_refuses(void)
{
    SKIP_WITHOUT_REDIS();
    ct_flush_all();
    const char *fake = "sp:{t:evil}:asm:x}:i:inc-1";
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HSET %s v 7 st new", fake));
    char before[4096], after[4096];
    hash_state(fake, before, sizeof(before));
    redisReply *r = sp_test_redis_cmd(&ct_redis, "EVAL %s 1 %s %s %s %s %s",
                                      corr_lua_status, fake,
                                      "sp:{t:evil}:asm:x}:", "inc-1", "closed",
                                      "1");
    T_OK(r && r->type == REDIS_REPLY_ERROR);
    if (r)
        freeReplyObject(r);
    hash_state(fake, after, sizeof(after));
    T_EQ_STR(after, before);
    /* KEYS[1] not the incident of ARGV (a routing key of another tenant). */
    r = sp_test_redis_cmd(&ct_redis, "EVAL %s 1 %s %s %s %s %s", corr_lua_status,
                          fake, "sp:{t:evil}:", "inc-1", "closed", "1");
    T_OK(r && r->type == REDIS_REPLY_ERROR);
    if (r)
        freeReplyObject(r);
    hash_state(fake, after, sizeof(after));
    T_EQ_STR(after, before);
    /* Well formed, but no such incident. */
    r = sp_test_redis_cmd(&ct_redis, "EVAL %s 1 %s %s %s %s %s", corr_lua_status,
                          "sp:{t:acme}:i:inc-2", "sp:{t:acme}:", "inc-2",
                          "closed", "1");
    T_OK(r && r->type == REDIS_REPLY_ERROR);
    T_CONTAINS(r ? r->str : NULL, "no such incident");
    if (r)
        freeReplyObject(r);
    T_EQ_INT(key_count("*"), 1);
}

/* A close of an id that is nowhere fails and creates no key. */
static void test_close_missing(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1"), &r), SP_OK);
    size_t keys_before = key_count("*");
    const char *close_args[] = {"close", "inc-00000000deadbeef"};
    T_EQ_INT(cli(close_args, 2), 1);
    const char *reopen_args[] = {"reopen", "inc-00000000deadbeef"};
    T_EQ_INT(cli(reopen_args, 2), 1);
    const char *tenant_args[] = {"close", "inc-00000000deadbeef", "--tenant", "t1"};
    T_EQ_INT(cli(tenant_args, 4), 1);
    T_EQ_INT(key_count("*"), keys_before);
    T_EQ_INT(key_count("*deadbeef*"), 0);
    ct_close(&t);
}

/* The same id in two tenants: without --tenant nothing is shown or
 * changed, with it the one named is. */
static void test_id_in_two_tenants(void)
{
    SKIP_WITHOUT_REDIS();
    struct ct t;
    T_OK(ct_open(&t, NULL));
    struct ct_res r;
    T_EQ_INT(ct_one(&t, &A(.id = "a1", .ents = "host:h1", .tenant = "acme"), &r),
             SP_OK);
    char other[256];
    snprintf(other, sizeof(other), "sp:{t:beta}:i:%s", r.inc);
    freeReplyObject(sp_test_redis_cmd(&ct_redis, "HSET %s v 1 st new n 0",
                                      other));
    const char *show[] = {"show", r.inc};
    T_EQ_INT(cli(show, 2), 1);
    const char *close_args[] = {"close", r.inc};
    T_EQ_INT(cli(close_args, 2), 1);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HGET sp:{t:acme}:i:%s v",
                               r.inc), 1);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HGET %s v", other), 1);
    const char *close_acme[] = {"close", r.inc, "--tenant", "acme"};
    T_EQ_INT(cli(close_acme, 4), 0);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HGET sp:{t:acme}:i:%s v",
                               r.inc), 2);
    T_EQ_INT(sp_test_redis_int(&ct_redis, NULL, "HGET %s v", other), 1);
    ct_close(&t);
}

/* ---- Defender assemblies of many tenants ------------------------------------ */

#define MANY_TENANTS 1100

static long long asm_tenants(void)
{
    return sp_test_redis_int(&ct_redis, NULL, "SCARD sp:tenants:asm");
}

/*
 * More tenants than one poll takes (1000): every one's assembly is
 * emitted within a few polls, and the set of tenants with assemblies
 * empties once they are done.
 */
static void test_defender_many_tenants(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=0", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert *rows = calloc(MANY_TENANTS, sizeof(*rows));
    char (*names)[2][48] = calloc(MANY_TENANTS, sizeof(*names));
    for (int i = 0; i < MANY_TENANTS; i++) {
        snprintf(names[i][0], sizeof(names[i][0]), "tn%04d", i);
        snprintf(names[i][1], sizeof(names[i][1]), "defender-streaming:m%04d", i);
        rows[i] = A(.id = names[i][1], .tenant = names[i][0],
                    .part = SP_PART_INFO, .title = "T",
                    .source = "defender-streaming");
    }
    T_EQ_INT(ct_run(&t, rows, MANY_TENANTS, NULL), SP_OK);
    T_EQ_INT(asm_tenants(), MANY_TENANTS);
    /* A poll per tick (the tick's clock moves past the poll interval);
     * two polls walk the set, so a dozen leave room for the acks and the
     * walk that finds the tenants idle. */
    int64_t now = sp_now_ms();
    int ticks = 0;
    while (ticks < 12 && (sp_test_sink_count(&t.sink, "alerts") < MANY_TENANTS ||
                          asm_tenants() != 0))
        t.st->type->tick(t.st, now + 1000 * ++ticks);
    T_EQ_INT(sp_test_sink_count(&t.sink, "alerts"), MANY_TENANTS);
    T_EQ_INT(asm_tenants(), 0);
    T_EQ_INT(ct_metric(&t, "socpilot_correlate_defender_assembled_total"
                           "{stage=\"correlate.0\"}"), MANY_TENANTS);
    free(rows);
    free(names);
    ct_close(&t);
}

static bool solo_done(struct ct *t)
{
    return sp_test_sink_count(&t->sink, "alerts") >= 1 && asm_tenants() == 0;
}

static bool solo_done_twice(struct ct *t)
{
    return sp_test_sink_count(&t->sink, "alerts") >= 2 && asm_tenants() == 0;
}

/* A tenant dropped from the set sends a row again: it is polled again,
 * though the stage remembers having registered it (and so sends no SADD
 * before the row). */
static void test_defender_tenant_returns(void)
{
    SKIP_WITHOUT_REDIS();
    const char *sets[] = {"correlate.defender.settle=0", NULL};
    struct ct t;
    T_OK(ct_open(&t, sets));
    struct ct_alert row = A(.id = "defender-streaming:s1", .tenant = "solo",
                            .part = SP_PART_INFO, .title = "T",
                            .source = "defender-streaming");
    T_EQ_INT(ct_run(&t, &row, 1, NULL), SP_OK);
    T_OK(ct_tick_until(&t, solo_done, 3000));
    row.id = "defender-streaming:s2";
    T_EQ_INT(ct_run(&t, &row, 1, NULL), SP_OK);
    T_EQ_INT(asm_tenants(), 1);
    T_OK(ct_tick_until(&t, solo_done_twice, 3000));
    T_EQ_INT(sp_test_sink_count(&t.sink, "alerts"), 2);
    ct_close(&t);
}

int main(void)
{
    t_prog = "test_correlate_cli";
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    T_RUN(test_other_tenant_lookalikes);
    T_RUN(test_status_script_refuses);
    T_RUN(test_close_missing);
    T_RUN(test_id_in_two_tenants);
    T_RUN(test_defender_many_tenants);
    T_RUN(test_defender_tenant_returns);
    return t_done();
}
