/*
 * test_decode.c - what the decode path refuses and bounds: every reject
 * reason, pinned formats, timestamps and statuses, limits on strings and
 * identifiers, and the decode stage itself (config keys, per-topic
 * formats, idempotent process()).  Runs with cwd = the repository root.
 */
#include "t.h"

#include "normalize_t.h"

static void test_status(void)
{
    T_EQ_STR(sp_nz_status("new"), "new");
    T_EQ_STR(sp_nz_status("New"), "new");
    T_EQ_STR(sp_nz_status("inProgress"), "in_progress");
    T_EQ_STR(sp_nz_status("In Progress"), "in_progress");
    T_EQ_STR(sp_nz_status("Active"), "in_progress");
    /* documented spellings (docs/alert-format.md) not covered elsewhere */
    T_EQ_STR(sp_nz_status("Acknowledged"), "in_progress");
    T_EQ_STR(sp_nz_status("unassigned"), "new");
    T_EQ_STR(sp_nz_status("resolved"), "resolved");
    T_EQ_STR(sp_nz_status("Dismissed"), "resolved");
    T_EQ_STR(sp_nz_status("closed"), "resolved");
    T_EQ_STR(sp_nz_status("unknownFutureValue"), "unknown");
    T_EQ_STR(sp_nz_status(NULL), "unknown");
}

/* Timestamps of every form the sources use become RFC 3339 UTC. */
static void test_timestamps(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"2024-03-05T10:15:30.1234567Z", "2024-03-05T10:15:30.123456Z"},
        {"2022-05-07 12:27:10.171000+00:00", "2022-05-07T12:27:10.171Z"},
        {"2024-03-05T12:20:00+02:00", "2024-03-05T10:20:00Z"},
        {"2024-03-05 10:19:00", "2024-03-05T10:19:00Z"},
        {"2019-01-15T09:15:03.3338239Z", "2019-01-15T09:15:03.333823Z"},
        {"2024-02-29T23:30:00-0130", "2024-03-01T01:00:00Z"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
        char doc[256], buf[32];
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"t-%zu\",\"title\":\"t\",\"created\":\"%s\"}", i,
                 cases[i].in);
        struct run r;
        run_str(&r, doc, NULL);
        T_EQ_INT(r.msg.n_alerts, 1);
        if (r.msg.n_alerts)
            T_EQ_STR(time_str(r.msg.alerts[0]->created, buf), cases[i].out);
        run_free(&r);
    }
    /* Unparseable strings (and Python's "None") are unknown, not errors;
     * a timestamp of another JSON type is a wrong_type. */
    struct run r;
    run_str(&r, "{\"id\":\"t-none\",\"created\":\"None\",\"updated\":\"soon\"}",
            NULL);
    T_EQ_INT(r.msg.n_alerts, 1);
    if (r.msg.n_alerts) {
        T_EQ_INT(r.msg.alerts[0]->created, SP_TIME_NONE);
        T_EQ_INT(r.msg.alerts[0]->updated, SP_TIME_NONE);
        char *js = write_alert(r.msg.alerts[0], false);
        T_CONTAINS(js, "\"created\":null");
        free(js);
    }
    run_free(&r);
    const char *bad = "{\"id\":\"t-num\",\"created\":1709633730}";
    expect_reject(bad, strlen(bad), "wrong_type", NULL);
}

static void test_pinned_format(void)
{
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);
    struct run r;
    /* Pinned to Sentinel, a document with only "id" has no alert id. */
    o.format = SP_FMT_SENTINEL;
    const char *doc = "{\"id\":\"p-1\",\"AlertName\":\"pinned\"}";
    run_str(&r, doc, &o);
    T_EQ_INT(r.msg.n_alerts, 0);
    T_OK(has_reject(&r.msg, "missing_id"));
    run_free(&r);
    /* Pinned to generic, a Sentinel-looking row is read as generic. */
    o.format = SP_FMT_GENERIC;
    run_str(&r, "{\"id\":\"p-2\",\"SystemAlertId\":\"s\",\"title\":\"g\"}", &o);
    T_EQ_STR(r.msg.n_alerts ? r.msg.alerts[0]->id : NULL, "generic:p-2");
    run_free(&r);
    /* Pinned to graph, pages still unwrap. */
    o.format = SP_FMT_GRAPH;
    run_str(&r, "{\"value\":[{\"id\":\"p-3\",\"title\":\"g\"}]}", &o);
    T_EQ_STR(r.msg.n_alerts ? r.msg.alerts[0]->id : NULL, "graph:p-3");
    run_free(&r);
    /* Pinned to defender-streaming, another table is still refused. */
    o.format = SP_FMT_DEFENDER_STREAMING;
    run_str(&r,
            "{\"category\":\"AdvancedHunting-DeviceEvents\",\"properties\":{}}",
            &o);
    T_OK(has_reject(&r.msg, "unknown_format"));
    run_free(&r);
    o.format = SP_FMT_AUTO;
    /* The legacy M365 Defender incidents API is refused explicitly. */
    const char *m365d =
        "{\"value\":[{\"incidentId\":924565,\"incidentName\":\"x\","
        "\"alerts\":[{\"alertId\":\"da1\",\"title\":\"t\"}]}]}";
    run_str(&r, m365d, &o);
    T_EQ_INT(r.msg.n_alerts, 0);
    T_OK(has_reject(&r.msg, "unknown_format"));
    run_free(&r);
    /* SecurityIncident rows are incidents, not alerts. */
    o.format = SP_FMT_AUTO;
    const char *inc = "{\"IncidentNumber\":\"5\",\"Title\":\"t\",\"Type\":"
                      "\"SecurityIncident\"}";
    expect_reject(inc, strlen(inc), "unknown_format", &o);
}

static void test_rejects(void)
{
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);

    expect_reject("not json", 8, "not_json", NULL);
    expect_reject("{\"id\":\"x\"} trailing", 19, "not_json", NULL);
    expect_reject("{\"id\":\"x\",\"title\":\"cut", 21, "truncated", NULL);
    expect_reject("{\"id\":\"x\",\"title\":\"\xC3\x28\"}", 22, "invalid_utf8",
                  NULL);
    expect_reject(" \n\t ", 4, "empty", NULL);
    expect_reject("", 0, "empty", NULL);
    expect_reject("{\"records\":[]}", 14, "empty", NULL);
    expect_reject("{\"records\":{}}", 14, "wrong_type", NULL);
    expect_reject("\"just a string\"", 15, "wrong_type", NULL);
    expect_reject("{\"hello\":\"world\"}", 17, "unknown_format", NULL);
    expect_reject("{\"title\":\"no id\"}", 17, "missing_id", NULL);
    expect_reject("{\"id\":\"\",\"title\":\"empty id\"}", 28, "missing_id",
                  NULL);
    const char *wt[] = {
        "{\"@odata.type\":\"#microsoft.graph.security.alert\",\"id\":\"w1\","
        "\"title\":42}",
        "{\"id\":\"w2\",\"entities\":{\"type\":\"host\"}}",
        "{\"id\":\"w3\",\"entities\":[\"host\"]}",
        "{\"id\":\"w4\",\"entities\":[{\"ids\":{}}]}",
        "{\"id\":\"w5\",\"tactics\":[1,2]}",
        "{\"id\":\"w6\",\"evidence\":{},\"alertWebUrl\":\"x\"}",
        "{\"id\":\"w7\",\"evidence\":[1],\"alertWebUrl\":\"x\"}",
        "{\"id\":\"w8\",\"mitreTechniques\":\"T1059\"}",
        "{\"SystemAlertId\":\"w9\",\"Entities\":\"[{\\\"$id\\\":\"}",
        "{\"SystemAlertId\":\"w10\",\"Entities\":\"{\\\"Type\\\":\\\"host\\\"}"
        "\"}",
        "{\"SystemAlertId\":\"w11\",\"Entities\":42}",
        "{\"SystemAlertId\":[\"w12\"]}",
        "{\"category\":\"AdvancedHunting-AlertInfo\",\"properties\":[]}",
        "{\"id\":\"w14\",\"links\":[\"http://x\"]}",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(wt); i++)
        expect_reject(wt[i], strlen(wt[i]), "wrong_type", NULL);

    /* too_large: checked on the payload before parsing */
    o.jlim.max_bytes = 64;
    char big[200];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"id\":\"big\"}", 12);
    expect_reject(big, sizeof(big), "too_large", &o);
    sp_normalize_opts_default(&o);

    /* too_deep */
    char deep[300];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof(deep), "{\"id\":\"d\",\"x\":");
    for (int i = 0; i < 100; i++)
        deep[k++] = '[';
    for (int i = 0; i < 100; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    expect_reject(deep, k, "too_deep", NULL);

    /* too_many_nodes */
    o.jlim.max_nodes = 20;
    const char *many = "{\"id\":\"n\",\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,"
                       "15,16,17,18,19,20]}";
    expect_reject(many, strlen(many), "too_many_nodes", &o);
    sp_normalize_opts_default(&o);

    /* too_many_entities: distinct entities count, merged ones do not */
    o.lim.max_entities = 3;
    const char *four = "{\"id\":\"e4\",\"entities\":["
                       "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.1\"}},"
                       "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.2\"}},"
                       "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.3\"}},"
                       "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.4\"}}]}";
    expect_reject(four, strlen(four), "too_many_entities", &o);
    const char *merged =
        "{\"id\":\"e3\",\"entities\":["
        "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.1\"}},"
        "{\"type\":\"ip\",\"ids\":{\"address\":\"::ffff:10.0.0.1\"}},"
        "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.2\"}},"
        "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.3\"}}]}";
    struct run r;
    run_str(&r, merged, &o);
    T_EQ_INT(r.msg.n_alerts, 1);
    T_EQ_INT(r.msg.n_alerts ? r.msg.alerts[0]->n_entities : 0, 3);
    run_free(&r);
    /* Sentinel entities past the limit too */
    o.lim.max_entities = 2;
    size_t len;
    char *rows = slurp(FIX "sentinel_rows.jsonl", &len);
    if (rows) {
        char *nl = strchr(rows, '\n');
        expect_reject(rows, nl ? (size_t)(nl - rows) : len, "too_many_entities",
                      &o);
        free(rows);
    }

    /* the bad/ fixtures: file name = expected reason */
    static const struct {
        const char *file, *reason;
    } bad[] = {
        {"not_json.txt", "not_json"},
        {"truncated.json", "truncated"},
        {"invalid_utf8.json", "invalid_utf8"},
        {"empty.json", "empty"},
        {"wrong_type_title.json", "wrong_type"},
        {"wrong_type_entities.json", "wrong_type"},
        {"wrong_type_sentinel_entities.json", "wrong_type"},
        {"missing_id.json", "missing_id"},
        {"unknown_format.json", "unknown_format"},
        {"envelope_not_array.json", "wrong_type"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
        char path[256];
        snprintf(path, sizeof(path), FIX "bad/%s", bad[i].file);
        char *s = slurp(path, &len);
        if (!s)
            continue;
        expect_reject(s, len, bad[i].reason, NULL);
        free(s);
    }
}

static void test_limits(void)
{
    struct sp_normalize_opts o;
    sp_normalize_opts_default(&o);
    o.lim.max_string = 10;
    o.lim.max_ids_per_entity = 3;
    /* "h\xc3\xa9" x 5: a cut must not split the two-byte character */
    const char *doc =
        "{\"id\":\"lim\",\"title\":"
        "\"h\xc3\xa9h\xc3\xa9h\xc3\xa9h\xc3\xa9h\xc3\xa9\","
        "\"entities\":[{\"type\":\"host\",\"ids\":{\"hostname\":\"a\","
        "\"fqdn\":\"a.b\",\"device_id\":\"d\",\"os_platform\":\"w\"}}]}";
    struct run r;
    run_str(&r, doc, &o);
    struct sp_alert *a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a != NULL);
    if (a) {
        T_EQ_STR(a->title, "h\xc3\xa9h\xc3\xa9h\xc3\xa9h");
        T_OK(sp_utf8_valid(a->title, strlen(a->title)));
        T_EQ_INT(a->entities[0].n_ids, 3);
        T_EQ_STR(a->entities[0].key, "host:a.b");
    }
    run_free(&r);
    /* An ASCII string one byte over max_string is cut to exactly
     * max_string bytes (the case above backs off a split character, so
     * it would not notice a limit one byte off); one of max_string bytes
     * is kept whole. */
    run_str(&r, "{\"id\":\"lim2\",\"title\":\"abcdefghijk\","
                "\"description\":\"0123456789\"}", &o);
    a = r.msg.n_alerts ? r.msg.alerts[0] : NULL;
    T_OK(a != NULL);
    if (a) {
        T_EQ_STR(a->title, "abcdefghij");
        T_EQ_STR(a->description, "0123456789");
    }
    run_free(&r);
    /* max_bytes is the largest payload accepted, not the first refused:
     * a message of exactly that size is decoded. */
    sp_normalize_opts_default(&o);
    const char *exact = "{\"id\":\"mb\",\"title\":\"t\"}";
    o.jlim.max_bytes = strlen(exact);
    run_str(&r, exact, &o);
    T_EQ_INT(r.msg.n_alerts, 1);
    T_OK(!has_reject(&r.msg, "too_large"));
    run_free(&r);
}

static void test_decode_stage(void)
{
    struct sp_config *cfg = sp_config_new();
    struct sp_error err = {0};
    T_EQ_INT(sp_config_declare(cfg, sp_stage_decode.keys,
                               sp_stage_decode.n_keys, &err),
             SP_OK);
    const char *yaml = "decode:\n"
                       "  default_tenant: acme\n"
                       "  max_entities: 2\n"
                       "  topic_formats:\n"
                       "    sentinel-alerts: sentinel\n";
    T_EQ_INT(sp_config_load_string(cfg, "test.yaml", yaml, strlen(yaml), &err),
             SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    if (err.code)
        T_FAILF("config: %s", err.msg);
    struct sp_env env = {.cfg = cfg};
    struct sp_stage *st = sp_stage_new(&sp_stage_decode, 0, &env);
    T_OK(st != NULL);
    if (!st) {
        sp_config_free(cfg);
        return;
    }
    T_EQ_INT(sp_stage_init(st, &err), SP_OK);
    struct sp_batch *batch = sp_batch_new(4);
    const char *payloads[] = {
        "{\"id\":\"s1\",\"title\":\"generic\"}",
        "{\"id\":\"s2\",\"title\":\"pinned to sentinel by topic\"}",
        "not json",
        "{\"id\":\"s4\",\"entities\":[{\"type\":\"ip\",\"ids\":{\"address\":"
        "\"10.0.0.1\"}},"
        "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.2\"}},"
        "{\"type\":\"ip\",\"ids\":{\"address\":\"10.0.0.3\"}}]}",
    };
    const char *topics[] = {"alerts", "sentinel-alerts", "alerts", "alerts"};
    for (size_t i = 0; i < 4; i++) {
        struct sp_msg *msg = sp_batch_add(batch);
        msg->topic = topics[i];
        msg->payload = payloads[i];
        msg->len = strlen(payloads[i]);
        msg->offset = (int64_t)i;
    }
    T_EQ_INT(sp_stage_process(st, batch), SP_OK);
    T_EQ_INT(batch->msgs[0].n_alerts, 1);
    if (batch->msgs[0].n_alerts)
        T_EQ_STR(batch->msgs[0].alerts[0]->tenant, "acme");
    T_OK(has_reject(&batch->msgs[1], "missing_id"));
    T_OK(has_reject(&batch->msgs[2], "not_json"));
    T_OK(has_reject(&batch->msgs[3], "too_many_entities"));
    if (batch->msgs[2].n_rejects)
        T_EQ_STR(batch->msgs[2].rejects[0].stage, "decode.0");
    /* idempotent: a second run adds nothing */
    T_EQ_INT(sp_stage_process(st, batch), SP_OK);
    T_EQ_INT(batch->msgs[0].n_alerts, 1);
    T_EQ_INT(batch->msgs[2].n_rejects, 1);
    sp_batch_free(batch);
    sp_stage_free(st);
    sp_config_free(cfg);

    /* without a config: defaults */
    struct sp_env env0 = {0};
    st = sp_stage_new(&sp_stage_decode, 1, &env0);
    T_EQ_INT(sp_stage_init(st, &err), SP_OK);
    batch = sp_batch_new(1);
    struct sp_msg *msg = sp_batch_add(batch);
    msg->payload = "{\"id\":\"d1\"}";
    msg->len = strlen(msg->payload);
    T_EQ_INT(sp_stage_process(st, batch), SP_OK);
    T_EQ_INT(msg->n_alerts, 1);
    sp_batch_free(batch);
    sp_stage_free(st);
    T_OK(sp_stage_type_find("decode") == &sp_stage_decode);
}

int main(void)
{
    t_prog = "test_decode";
    T_RUN(test_status);
    T_RUN(test_timestamps);
    T_RUN(test_pinned_format);
    T_RUN(test_rejects);
    T_RUN(test_limits);
    T_RUN(test_decode_stage);
    return t_done();
}
