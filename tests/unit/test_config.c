/*
 * test_config.c - unit tests of pipeline/config.c: every key type and its
 * defaults, ranges and enums, lists and maps, -s overrides, ${ENV} and
 * ${file:PATH} substitution, error messages with file, line and key,
 * duplicate keys, secret masking, the example writer, and the loader's
 * limits.  Single-threaded; temporary files go to $TMPDIR (or /tmp).
 */
#include "config.h"
#include "t.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct sp_cfg_key keys_engine[] = {
    { "engine.name", SP_CFG_STR, "socpilot", 0, 0, "Instance name.", 0, NULL },
    { "engine.workers", SP_CFG_INT, "4", 1, 64, "Worker threads.", 0, NULL },
    { "engine.strict", SP_CFG_BOOL, "false", 0, 0, "Fail hard.", 0, NULL },
    { "engine.drain", SP_CFG_DURATION, "30s", 100, 600000,
      "Shutdown drain timeout.", 0, NULL },
    { "engine.max_msg", SP_CFG_SIZE, "1MiB", 1024, 0,
      "Largest message accepted.", 0, NULL },
    { "engine.format", SP_CFG_ENUM, "auto", 0, 0, "Input format.", 0,
      "auto|graph|sentinel|generic" },
    { "engine.topics", SP_CFG_LIST, "alerts, more", 0, 0, "Input topics.", 0,
      NULL },
    { "engine.nodefault", SP_CFG_STR, NULL, 0, 0, "No default.", 0, NULL },
    { "log_level", SP_CFG_ENUM, "info", 0, 0, "Log level.", 0,
      "error|warn|info|debug" },
};

static const struct sp_cfg_key keys_kafka[] = {
    { "kafka.brokers", SP_CFG_STR, "localhost:9092", 0, 0, "Bootstrap.", 0,
      NULL },
    { "kafka.batch.size", SP_CFG_INT, "500", 1, 100000,
      "Messages per batch.", 0, NULL },
    { "kafka.batch.wait", SP_CFG_DURATION, "250ms", 0, 0, "Batch wait.", 0,
      NULL },
    { "kafka.password", SP_CFG_STR, NULL, 0, 0, "SASL password.",
      SP_CFG_SECRET, NULL },
    { "kafka.pin", SP_CFG_INT, NULL, 0, 0, "A secret number.", SP_CFG_SECRET,
      NULL },
    { "kafka.consumer", SP_CFG_MAP, NULL, 0, 0,
      "librdkafka consumer properties.", 0, NULL },
    { "kafka.producer", SP_CFG_MAP, NULL, 0, 0,
      "librdkafka producer properties.", 0, NULL },
};

static struct sp_config *new_cfg(void)
{
    struct sp_error err;
    struct sp_config *cfg = sp_config_new();
    T_OK(cfg != NULL);
    T_EQ_INT(sp_config_declare(cfg, keys_engine, SP_ARRAY_SIZE(keys_engine),
                               &err), SP_OK);
    T_EQ_INT(sp_config_declare(cfg, keys_kafka, SP_ARRAY_SIZE(keys_kafka),
                               &err), SP_OK);
    return cfg;
}

static enum sp_err load(struct sp_config *cfg, const char *yaml,
                        struct sp_error *err)
{
    return sp_config_load_string(cfg, "x.yaml", yaml, strlen(yaml), err);
}

/* Loads and validates; returns the validate result, err has the message. */
static enum sp_err load_validate(struct sp_config *cfg, const char *yaml,
                                 struct sp_error *err)
{
    enum sp_err rc = load(cfg, yaml, err);
    if (rc != SP_OK)
        return rc;
    return sp_config_validate(cfg, err);
}

static char *tmp_write(const char *content, size_t len)
{
    const char *dir = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/sp_cfg_XXXXXX", dir && *dir ? dir : "/tmp") < 0)
        return NULL;
    int fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, content + off, len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    return path;
}

static void test_defaults(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_STR(sp_config_str(cfg, "engine.name"), "socpilot");
    T_EQ_INT(sp_config_int(cfg, "engine.workers"), 4);
    T_OK(!sp_config_bool(cfg, "engine.strict"));
    T_EQ_INT(sp_config_int(cfg, "engine.drain"), 30000);
    T_EQ_STR(sp_config_str(cfg, "engine.drain"), "30s");
    T_EQ_INT(sp_config_int(cfg, "engine.max_msg"), 1 << 20);
    T_EQ_STR(sp_config_str(cfg, "engine.format"), "auto");
    T_OK(sp_config_str(cfg, "engine.nodefault") == NULL);
    T_OK(sp_config_str(cfg, "kafka.password") == NULL);
    T_EQ_INT(sp_config_int(cfg, "kafka.pin"), 0);
    const char *const *items;
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 2);
    T_EQ_STR(items[0], "alerts");
    T_EQ_STR(items[1], "more");
    T_OK(items[2] == NULL);
    T_EQ_STR(sp_config_str(cfg, "engine.topics"), "alerts,more");
    T_OK(!sp_config_is_set(cfg, "engine.name"));
    T_OK(!sp_config_is_set(cfg, "kafka.consumer"));
    int line = -1;
    T_EQ_STR(sp_config_origin(cfg, "engine.name", &line), "default");
    T_EQ_INT(line, 0);
    sp_config_free(cfg);
    sp_config_free(NULL);
}

static const char *yaml_all =
    "# every type\n"                                    /* 1 */
    "engine:\n"                                         /* 2 */
    "  name: edge-1\n"                                  /* 3 */
    "  workers: 8\n"                                    /* 4 */
    "  strict: yes\n"                                   /* 5 */
    "  drain: 5m\n"                                     /* 6 */
    "  max_msg: 10MB\n"                                 /* 7 */
    "  format: Sentinel\n"                              /* 8 */
    "  topics: [a, \"b c\"]\n"                          /* 9 */
    "log_level: debug\n"                                /* 10 */
    "kafka.batch.size: 1000\n";                         /* 11 */

static void test_every_type(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, yaml_all, &err), SP_OK);
    T_EQ_STR(sp_config_str(cfg, "engine.name"), "edge-1");
    T_EQ_INT(sp_config_int(cfg, "engine.workers"), 8);
    T_OK(sp_config_bool(cfg, "engine.strict"));
    T_EQ_STR(sp_config_str(cfg, "engine.strict"), "yes");
    T_EQ_INT(sp_config_int(cfg, "engine.drain"), 300000);
    T_EQ_INT(sp_config_int(cfg, "engine.max_msg"), 10000000);
    T_EQ_STR(sp_config_str(cfg, "engine.format"), "sentinel");
    T_EQ_STR(sp_config_str(cfg, "log_level"), "debug");
    T_EQ_INT(sp_config_int(cfg, "kafka.batch.size"), 1000);
    const char *const *items;
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 2);
    T_EQ_STR(items[1], "b c");
    T_OK(sp_config_is_set(cfg, "engine.workers"));
    int line = 0;
    T_EQ_STR(sp_config_origin(cfg, "engine.drain", &line), "x.yaml:6");
    T_EQ_INT(line, 6);
    T_EQ_STR(sp_config_origin(cfg, "kafka.batch.size", &line), "x.yaml:11");
    T_EQ_STR(sp_config_origin(cfg, "kafka.brokers", &line), "default");
    sp_config_free(cfg);
}

struct want {
    const char *text;
    bool ok;
    int64_t value;
};

static void check_values(const char *key, const struct want *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sp_error err;
        char set[128];
        struct sp_config *cfg = new_cfg();
        snprintf(set, sizeof(set), "%s=%s", key, w[i].text);
        T_EQ_INT(sp_config_set(cfg, set, &err), SP_OK);
        enum sp_err rc = sp_config_validate(cfg, &err);
        if (rc != (w[i].ok ? SP_OK : SP_ERR_CONFIG))
            T_FAILF("%s: validate gave %d (%s)", set, rc,
                    rc ? err.msg : "ok");
        if (w[i].ok && rc == SP_OK && sp_config_int(cfg, key) != w[i].value)
            T_FAILF("%s: got %lld, want %lld", set,
                    (long long)sp_config_int(cfg, key),
                    (long long)w[i].value);
        if (!w[i].ok && rc != SP_OK)
            T_CONTAINS(err.msg, key);
        sp_config_free(cfg);
    }
}

static void test_durations(void)
{
    static const struct want w[] = {
        { "250ms", true, 250 }, { "30s", true, 30000 },
        { "5m", true, 300000 }, { "2h", false, 0 } /* over 600000 */,
        { "100", true, 100 }, { "1 s", true, 1000 },
        { "99", false, 0 } /* under 100 */, { "5x", false, 0 },
        { "-1s", false, 0 }, { "1.5s", false, 0 }, { "", false, 0 },
        { "s", false, 0 }, { "99999999999999999999d", false, 0 },
    };
    check_values("engine.drain", w, SP_ARRAY_SIZE(w));
    static const struct want w2[] = {
        { "24h", true, 86400000 }, { "7d", true, 604800000 },
        { "0", true, 0 }, { "106751991167d", true, 106751991167 * 86400000LL },
        { "106751991168d", false, 0 },
    };
    check_values("kafka.batch.wait", w2, SP_ARRAY_SIZE(w2));
}

static void test_sizes(void)
{
    static const struct want w[] = {
        { "1024", true, 1024 }, { "64KiB", true, 65536 },
        { "1MiB", true, 1048576 }, { "1GiB", true, 1073741824 },
        { "10KB", true, 10000 }, { "10MB", true, 10000000 },
        { "2kib", true, 2048 }, { "512", false, 0 } /* under 1KiB */,
        { "10 MiB", true, 10485760 }, { "1.5MiB", false, 0 },
        { "10Q", false, 0 }, { "-5", false, 0 },
        { "99999999999TiB", false, 0 },
        /* decimal units are powers of 1000, binary ones powers of 1024,
         * at every scale (GB must not be read as GiB) */
        { "2GB", true, 2000000000 }, { "1TB", true, 1000000000000 },
        { "1TiB", true, (int64_t)1 << 40 },
    };
    check_values("engine.max_msg", w, SP_ARRAY_SIZE(w));
}

static void test_ints_and_range(void)
{
    static const struct want w[] = {
        { "1", true, 1 }, { "64", true, 64 }, { "+7", true, 7 },
        { "0", false, 0 }, { "65", false, 0 }, { "-3", false, 0 },
        { "ten", false, 0 }, { "1e3", false, 0 }, { "0x10", false, 0 },
        { "99999999999999999999", false, 0 },
    };
    check_values("engine.workers", w, SP_ARRAY_SIZE(w));

    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n  batch:\n    size: 0\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:3: kafka.batch.size: must be between 1 and "
                      "100000 (got \"0\")");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine:\n  drain: 20m\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:2: engine.drain: must be between 100ms and "
                      "10m (got \"20m\")");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine.max_msg: 12\n", &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:1: engine.max_msg: must be at least 1KiB "
                      "(got \"12\")");
    sp_config_free(cfg);
}

static void test_bools(void)
{
    static const char *const yes[] = { "true", "True", "YES", "on", "1" };
    static const char *const no[] = { "false", "no", "Off", "0" };
    for (size_t i = 0; i < SP_ARRAY_SIZE(yes) + SP_ARRAY_SIZE(no); i++) {
        struct sp_error err;
        char set[64];
        bool want = i < SP_ARRAY_SIZE(yes);
        snprintf(set, sizeof(set), "engine.strict=%s",
                 want ? yes[i] : no[i - SP_ARRAY_SIZE(yes)]);
        struct sp_config *cfg = new_cfg();
        T_EQ_INT(sp_config_set(cfg, set, &err), SP_OK);
        T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
        T_EQ_INT(sp_config_bool(cfg, "engine.strict"), want);
        sp_config_free(cfg);
    }
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine: {strict: maybe}\n", &err),
             SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:1: engine.strict: expected true or false");
    T_CONTAINS(err.msg, "(got \"maybe\")");
    sp_config_free(cfg);
}

static void test_enum(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "log_level: WARN\n", &err), SP_OK);
    T_EQ_STR(sp_config_str(cfg, "log_level"), "warn");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "\nlog_level: verbose\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:2: log_level: expected one of "
                      "error|warn|info|debug (got \"verbose\")");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "log_level: inf\n", &err), SP_ERR_CONFIG);
    sp_config_free(cfg);
}

static void test_lists(void)
{
    struct sp_error err;
    const char *const *items;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine:\n  topics:\n    - one\n    - two\n"
                                "    - 'three'\n", &err), SP_OK);
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 3);
    T_EQ_STR(items[0], "one");
    T_EQ_STR(items[2], "three");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine.topics: \"x, y ,z,,\"\n", &err),
             SP_OK);
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 3);
    T_EQ_STR(items[0], "x");
    T_EQ_STR(items[1], "y");
    T_EQ_STR(items[2], "z");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine.topics: []\n", &err), SP_OK);
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 0);
    T_OK(items != NULL && items[0] == NULL);
    T_OK(sp_config_is_set(cfg, "engine.topics"));
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(sp_config_set(cfg, "engine.topics=p,q", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 2);
    T_EQ_STR(items[1], "q");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load(cfg, "engine:\n  topics:\n    - a\n    - [b]\n", &err),
             SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:4: engine.topics: a list may only hold");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "engine.workers: [1, 2]\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:1: engine.workers: expected an integer, "
                      "got a list");
    sp_config_free(cfg);
}

struct collect {
    char buf[1024];
    int n;
    int stop_at;
};

static int collect_cb(const char *name, const char *value, void *ud)
{
    struct collect *c = ud;
    size_t len = strlen(c->buf);
    snprintf(c->buf + len, sizeof(c->buf) - len, "%s=%s;", name, value);
    return ++c->n == c->stop_at ? 42 : 0;
}

static void test_maps(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    const char *yaml =
        "kafka:\n"
        "  consumer:\n"
        "    group.id: socpilot\n"
        "    sasl:\n"
        "      mechanism: PLAIN\n"
        "      username: $ConnectionString\n"
        "    fetch.max.bytes: 1048576\n"
        "    debug: [broker, topic]\n"
        "kafka.consumer.enable.auto.commit: false\n";
    T_EQ_INT(load(cfg, yaml, &err), SP_OK);
    T_EQ_INT(load(cfg, "kafka.consumer.group.id: other\n"
                       "kafka.consumer.client.id: c1\n", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, "kafka.consumer.fetch.max.bytes=2048", &err),
             SP_OK);
    T_EQ_INT(sp_config_set(cfg, "kafka.consumer.linger.ms=5", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    struct collect c = { "", 0, 0 };
    T_EQ_INT(sp_config_map_each(cfg, "kafka.consumer", collect_cb, &c), 0);
    T_EQ_STR(c.buf, "group.id=other;sasl.mechanism=PLAIN;"
                    "sasl.username=$ConnectionString;fetch.max.bytes=2048;"
                    "debug=broker,topic;enable.auto.commit=false;"
                    "client.id=c1;linger.ms=5;");
    struct collect stop = { "", 0, 2 };
    T_EQ_INT(sp_config_map_each(cfg, "kafka.consumer", collect_cb, &stop),
             42);
    T_EQ_STR(stop.buf, "group.id=other;sasl.mechanism=PLAIN;");
    struct collect none = { "", 0, 0 };
    T_EQ_INT(sp_config_map_each(cfg, "kafka.producer", collect_cb, &none), 0);
    T_EQ_INT(none.n, 0);
    T_OK(sp_config_is_set(cfg, "kafka.consumer"));
    T_OK(!sp_config_is_set(cfg, "kafka.producer"));
    T_EQ_STR(sp_config_origin(cfg, "kafka.consumer", NULL), "x.yaml:3");
    T_OK(sp_config_str(cfg, "kafka.consumer") == NULL);
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n  consumer: 5\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:2: kafka.consumer: expected a mapping, got a "
                      "single value");
    sp_config_free(cfg);

    cfg = new_cfg();        /* an empty or null map is fine */
    T_EQ_INT(load_validate(cfg, "kafka:\n  consumer: {}\n  producer:\n",
                           &err), SP_OK);
    T_OK(sp_config_is_set(cfg, "kafka.consumer"));
    sp_config_free(cfg);
}

static void test_overrides(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    /* -s before the load still wins over the file. */
    T_EQ_INT(sp_config_set(cfg, "engine.workers=16", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, " engine.name = \"a b\"", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, "engine.workers=12", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, "kafka.brokers=", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, "log_level=~", &err), SP_OK);
    T_EQ_INT(load(cfg, "engine: {workers: 2, name: file}\n"
                       "log_level: error\n", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_config_int(cfg, "engine.workers"), 12);
    T_EQ_STR(sp_config_str(cfg, "engine.name"), "a b");
    T_EQ_STR(sp_config_str(cfg, "kafka.brokers"), "");
    T_EQ_STR(sp_config_str(cfg, "log_level"), "info");  /* -s x=~: default */
    T_OK(!sp_config_is_set(cfg, "log_level"));
    int line = 7;
    T_EQ_STR(sp_config_origin(cfg, "engine.workers", &line), "-s");
    T_EQ_INT(line, 0);
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(sp_config_set(cfg, "engine.workers", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "expected key=value");
    T_EQ_INT(sp_config_set(cfg, "=5", &err), SP_ERR_CONFIG);
    T_EQ_INT(sp_config_set(cfg, "a..b=5", &err), SP_ERR_CONFIG);
    T_EQ_INT(sp_config_set(cfg, "kafka.bacth.size=5", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "-s: kafka.bacth: unknown key (did you mean "
                      "kafka.batch?)");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(sp_config_set(cfg, "engine.workers=0", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "-s: engine.workers: must be between 1 and 64 "
                      "(got \"0\")");
    sp_config_free(cfg);
}

static void test_env_substitution(void)
{
    struct sp_error err;
    setenv("SP_T_BROKERS", "b1:9092,b2:9092", 1);
    setenv("SP_T_EMPTY", "", 1);
    setenv("SP_T_NESTED", "${SP_T_BROKERS}", 1);
    setenv("SP_T_PW", "hunter2-secret", 1);
    unsetenv("SP_T_MISSING");
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg,
        "kafka:\n"
        "  brokers: ${SP_T_BROKERS}\n"
        "  password: ${SP_T_PW}\n"
        "  consumer:\n"
        "    sasl.password: pre-${SP_T_PW}\n"
        "    a: ${SP_T_MISSING:-fallback}\n"
        "    b: ${SP_T_EMPTY:-used-when-empty}\n"
        "    c: <${SP_T_EMPTY}>\n"
        "    d: ${SP_T_NESTED}\n"
        "    e: $${SP_T_PW} and $5 and $\n"
        "    f: ${SP_T_MISSING:-}\n"
        "engine.topics: ${SP_T_BROKERS}\n", &err), SP_OK);
    T_EQ_STR(sp_config_str(cfg, "kafka.brokers"), "b1:9092,b2:9092");
    T_EQ_STR(sp_config_str(cfg, "kafka.password"), "hunter2-secret");
    const char *const *items;
    T_EQ_INT(sp_config_list(cfg, "engine.topics", &items), 2);
    struct collect c = { "", 0, 0 };
    sp_config_map_each(cfg, "kafka.consumer", collect_cb, &c);
    T_EQ_STR(c.buf, "sasl.password=pre-hunter2-secret;a=fallback;"
                    "b=used-when-empty;c=<>;d=${SP_T_BROKERS};"
                    "e=${SP_T_PW} and $5 and $;f=;");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n  producer:\n"
                                "    sasl.password: ${SP_T_MISSING}\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:3: kafka.producer.sasl.password: environment "
                      "variable SP_T_MISSING is not set (use "
                      "${SP_T_MISSING:-default} for a default)");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka.password: \"x${SP_T_PW\"\n", &err),
             SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "unterminated ${ in the value of kafka.password");
    T_OK(strstr(err.msg, "x${") == NULL);
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka.password: \"${bad name}\"\n"
                                "engine.name: \"${9x}\"\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:1: kafka.password: bad ${...} in the value of "
                      "kafka.password (write $${ for a literal ${) "
                      "(and 1 more problems)");
    const char *const *msgs;
    T_EQ_INT(sp_config_errors(cfg, &msgs), 2);
    T_CONTAINS(msgs[1], "x.yaml:2: engine.name: bad substitution ${9x}");
    sp_config_free(cfg);

    /* A secret that does not parse: its value is never shown. */
    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka.pin: ${SP_T_PW}\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:1: kafka.pin: expected an integer (value of "
                      "kafka.pin not shown)");
    sp_config_free(cfg);
    unsetenv("SP_T_BROKERS");
    unsetenv("SP_T_EMPTY");
    unsetenv("SP_T_NESTED");
    unsetenv("SP_T_PW");
}

/* ${A:-${B}} was taken as the default "${B" followed by "}". */
static void test_nested_substitution(void)
{
    struct sp_error err;
    setenv("SP_T_DEF", "def", 1);
    unsetenv("SP_T_MISSING");
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n"
                                "  brokers: ${SP_T_MISSING:-${SP_T_DEF}}\n",
                           &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:2: kafka.brokers: ${ inside ${...} in the "
                      "value of kafka.brokers: nested substitutions are not "
                      "supported (write $${ for a literal ${)");
    sp_config_free(cfg);
    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka.password: "
                                "\"${SP_T_MISSING:-x${SP_T_DEF}y}\"\n", &err),
             SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:1: kafka.password: ${ inside ${...}");
    sp_config_free(cfg);
    /* A literal $${ in a default is still fine. */
    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka.brokers: \"${SP_T_MISSING:-a}$${b}\"\n",
                           &err), SP_OK);
    T_EQ_STR(sp_config_str(cfg, "kafka.brokers"), "a${b}");
    sp_config_free(cfg);
    unsetenv("SP_T_DEF");
}

static void test_file_substitution(void)
{
    struct sp_error err;
    char *secret = tmp_write("s3cr3t-${HOME}\n", 15);
    char *crlf = tmp_write("two\r\n\n", 6);
    char *big_text = malloc(SP_CFG_MAX_SUBST_FILE + 2);
    T_OK(secret && crlf && big_text);
    if (!secret || !crlf || !big_text)
        goto out;
    memset(big_text, 'x', SP_CFG_MAX_SUBST_FILE + 1);
    char *big = tmp_write(big_text, SP_CFG_MAX_SUBST_FILE + 1);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  password: ${file:%s}\n  brokers: \"${file:%s}\"\n",
             secret, crlf);
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, yaml, &err), SP_OK);
    /* Content kept as is (never expanded again), one newline stripped. */
    T_EQ_STR(sp_config_str(cfg, "kafka.password"), "s3cr3t-${HOME}");
    T_EQ_STR(sp_config_str(cfg, "kafka.brokers"), "two\r\n");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "\nkafka.password: ${file:no/such/file}\n",
                           &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:2: kafka.password: ${file:no/such/file}: ");
    sp_config_free(cfg);

    if (big) {
        snprintf(yaml, sizeof(yaml), "kafka.password: ${file:%s}\n", big);
        cfg = new_cfg();
        T_EQ_INT(load_validate(cfg, yaml, &err), SP_ERR_CONFIG);
        T_CONTAINS(err.msg, "larger than 65536 bytes");
        sp_config_free(cfg);
        unlink(big);
        free(big);
    }
out:
    if (secret)
        unlink(secret);
    if (crlf)
        unlink(crlf);
    free(secret);
    free(crlf);
    free(big_text);
}

static void test_unknown_keys(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    const char *yaml =
        "engine:\n"                 /* 1 */
        "  name: x\n"               /* 2 */
        "kafka:\n"                  /* 3 */
        "  brokers: b:9092\n"       /* 4 */
        "  consumer:\n"             /* 5 */
        "    anything.goes: 1\n"    /* 6 */
        "  bathc:\n"                /* 7 */
        "    size: 10\n"            /* 8 */
        "    wait: 1s\n"            /* 9 */
        "  brokres: x\n"            /* 10 */
        "totally_else: 1\n"         /* 11 */
        "engine.workerz: 3\n";      /* 12 */
    T_EQ_INT(load_validate(cfg, yaml, &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:7: kafka.bathc: unknown key (did you mean "
                      "kafka.batch?) (and 3 more problems)");
    const char *const *msgs;
    T_EQ_INT(sp_config_errors(cfg, &msgs), 4);
    T_EQ_STR(msgs[0], "x.yaml:7: kafka.bathc: unknown key (did you mean "
                      "kafka.batch?)");
    T_EQ_STR(msgs[1], "x.yaml:10: kafka.brokres: unknown key (did you mean "
                      "kafka.brokers?)");
    T_EQ_STR(msgs[2], "x.yaml:11: totally_else: unknown key");
    T_EQ_STR(msgs[3], "x.yaml:12: engine.workerz: unknown key (did you mean "
                      "engine.workers?)");
    sp_config_free(cfg);
}

static void test_type_errors(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n  brokers: b\n  batch:\n"
                                "    size: ten\n", &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:4: kafka.batch.size: expected an integer "
                      "(got \"ten\")");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n  batch:\n    size:\n      x: 1\n"
                                "      y: 2\n", &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:3: kafka.batch.size: expected an integer, got "
                      "a mapping");
    sp_config_free(cfg);

    cfg = new_cfg();
    T_EQ_INT(load_validate(cfg, "kafka:\n  batch: 5\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:2: kafka.batch: is a group of settings (such "
                      "as kafka.batch.size), not a value");
    sp_config_free(cfg);

    cfg = new_cfg();        /* an empty or null group is fine */
    T_EQ_INT(load_validate(cfg, "kafka:\n  batch:\nengine: {}\n", &err),
             SP_OK);
    sp_config_free(cfg);

    cfg = new_cfg();        /* a null value means the default */
    T_EQ_INT(load_validate(cfg, "engine:\n  workers: ~\n  name:\n"
                                "  nodefault: \"\"\n", &err), SP_OK);
    T_EQ_INT(sp_config_int(cfg, "engine.workers"), 4);
    T_EQ_STR(sp_config_str(cfg, "engine.name"), "socpilot");
    T_OK(!sp_config_is_set(cfg, "engine.name"));
    T_EQ_STR(sp_config_str(cfg, "engine.nodefault"), "");
    sp_config_free(cfg);
}

static void test_duplicates(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load(cfg, "engine:\n  name: a\n  workers: 2\n  name: b\n", &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:4: engine.name: duplicate key (also at line 2)");
    T_EQ_INT(load(cfg, "kafka:\n  batch:\n    size: 1\n"
                       "kafka.batch.size: 2\n", &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:4: kafka.batch.size: duplicate key (also at "
                      "line 3)");
    T_EQ_INT(load(cfg, "kafka:\n  consumer: {a: 1}\nkafka: {}\n", &err),
             SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:3: kafka: duplicate key (also at line 1)");
    /* Nothing of the failed documents was kept. */
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_OK(!sp_config_is_set(cfg, "engine.name"));
    T_OK(!sp_config_is_set(cfg, "kafka.consumer"));
    sp_config_free(cfg);
}

static char *capture(void (*fn)(const struct sp_config *, FILE *),
                     const struct sp_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fn(cfg, f);
    fclose(f);
    return text;
}

static void test_dump_masks_secrets(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    setenv("SP_T_TOKEN", "tok-123456", 1);
    T_EQ_INT(load(cfg,
        "kafka:\n"
        "  password: pw-abcdef\n"
        "  brokers: \"broker:9093\"\n"
        "  producer:\n"
        "    sasl.password: sasl-pw-xyz\n"
        "    ssl.key.password: keypw-777\n"
        "    sasl.oauthbearer.token: ${SP_T_TOKEN}\n"
        "    linger.ms: 5\n"
        "    client.id: \"needs: quotes\"\n"
        "engine.topics: [a, b]\n", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, "kafka.pin=4242", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    char *out = capture(sp_config_dump, cfg);
    T_OK(out != NULL);
    T_OK(out && !strstr(out, "pw-abcdef"));
    T_OK(out && !strstr(out, "sasl-pw-xyz"));
    T_OK(out && !strstr(out, "keypw-777"));
    T_OK(out && !strstr(out, "tok-123456"));
    T_OK(out && !strstr(out, "4242"));
    T_CONTAINS(out, "kafka.password: \"****\"  # x.yaml:2\n");
    T_CONTAINS(out, "kafka.pin: \"****\"  # -s\n");
    T_CONTAINS(out, "  sasl.password: \"****\"  # x.yaml:5\n");
    T_CONTAINS(out, "  ssl.key.password: \"****\"");
    T_CONTAINS(out, "  sasl.oauthbearer.token: \"****\"");
    T_CONTAINS(out, "  linger.ms: 5  # x.yaml:8\n");
    T_CONTAINS(out, "  client.id: \"needs: quotes\"");
    T_CONTAINS(out, "kafka.brokers: broker:9093  # x.yaml:3\n");
    T_CONTAINS(out, "kafka.batch.size: 500  # default\n");
    T_CONTAINS(out, "engine.nodefault: ~  # unset\n");
    T_CONTAINS(out, "engine.topics: [a, b]  # x.yaml:10\n");
    T_CONTAINS(out, "kafka.consumer: {}  # default\n");
    T_CONTAINS(out, "kafka.producer:  # x.yaml:5\n");
    /* Declaration order. */
    T_OK(out && strstr(out, "engine.name:") < strstr(out, "kafka.brokers:"));

    /* Every secret in effect can be handed to the logger. */
    struct collect c = { "", 0, 0 };
    T_EQ_INT(sp_config_each_secret(cfg, collect_cb, &c), 0);
    T_EQ_STR(c.buf, "kafka.password=pw-abcdef;kafka.pin=4242;"
                    "kafka.producer.sasl.password=sasl-pw-xyz;"
                    "kafka.producer.ssl.key.password=keypw-777;"
                    "kafka.producer.sasl.oauthbearer.token=tok-123456;");
    free(out);
    unsetenv("SP_T_TOKEN");

    /* The dump itself is YAML the loader reads back (masked or not). */
    struct sp_config *again = new_cfg();
    out = capture(sp_config_dump, cfg);
    T_EQ_INT(load(again, out ? out : "", &err), SP_OK);
    /* A masked int does not parse; put it back to its default. */
    T_EQ_INT(sp_config_validate(again, &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:15: kafka.pin: expected an integer (value of "
                      "kafka.pin not shown)");
    T_EQ_INT(sp_config_set(again, "kafka.pin=~", &err), SP_OK);
    if (sp_config_validate(again, &err) != SP_OK) {
        T_FAILF("%s", err.msg);
    } else {
        T_EQ_STR(sp_config_str(again, "kafka.brokers"), "broker:9093");
        T_EQ_STR(sp_config_str(again, "kafka.password"), "****");
    }
    free(out);
    sp_config_free(again);
    sp_config_free(cfg);

    T_OK(sp_config_secret_name("SSL.Key.Password"));
    T_OK(sp_config_secret_name("client_secret"));
    T_OK(!sp_config_secret_name("linger.ms"));
    /* each word of the list counts on its own: "credential" is in no
     * other name checked here */
    T_OK(sp_config_secret_name("sasl.kerberos.credentials"));
    /* librdkafka redacts it (it may carry a client secret); so do we. */
    T_OK(sp_config_secret_name("sasl.oauthbearer.config"));
    T_OK(!sp_config_secret_name("sasl.oauthbearer.method"));
}

/* A secret declared as a list: each non-empty item is handed to the
 * logger's masking (sp_config_each_secret), like a secret string.  No
 * key of this table is declared elsewhere, so this does not touch the
 * other tests' dumps. */
static void test_secret_list_items(void)
{
    static const struct sp_cfg_key keys[] = {
        { "auth.api_keys", SP_CFG_LIST, NULL, 0, 0, "API keys.",
          SP_CFG_SECRET, NULL },
    };
    struct sp_error err;
    struct sp_config *cfg = sp_config_new();
    T_OK(cfg != NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_config_declare(cfg, keys, SP_ARRAY_SIZE(keys), &err), SP_OK);
    T_EQ_INT(load_validate(cfg, "auth.api_keys: [k-one-1111, k-two-2222]\n",
                           &err), SP_OK);
    struct collect c = { "", 0, 0 };
    T_EQ_INT(sp_config_each_secret(cfg, collect_cb, &c), 0);
    T_EQ_STR(c.buf, "auth.api_keys=k-one-1111;auth.api_keys=k-two-2222;");
    sp_config_free(cfg);
}

static void test_example_roundtrip(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    char *out = capture(sp_config_write_example, cfg);
    T_OK(out != NULL);
    T_CONTAINS(out, "engine:\n  # Instance name.\n  # (string)\n"
                    "  # name: socpilot\n");
    T_CONTAINS(out, "kafka:\n");
    T_CONTAINS(out, "  batch:\n    # Messages per batch.\n"
                    "    # (int; 1 to 100000)\n    # size: 500\n");
    T_CONTAINS(out, "# (duration: 250ms, 30s, 5m, 24h, 7d; 100ms to 10m)");
    T_CONTAINS(out, "# (size: 512, 64KiB, 1MiB, 10MB; at least 1KiB)");
    T_CONTAINS(out, "# topics: [alerts, more]\n");
    T_CONTAINS(out, "# (enum: error|warn|info|debug)\n# log_level: info\n");
    T_CONTAINS(out, "; secret: use ${ENV} or ${file:PATH})\n");
    T_CONTAINS(out, "  # consumer: {}\n");
    T_CONTAINS(out, "  # nodefault:\n");
    struct sp_config *again = new_cfg();
    T_EQ_INT(load_validate(again, out ? out : "", &err), SP_OK);
    T_EQ_INT(sp_config_int(again, "kafka.batch.size"), 500);
    sp_config_free(again);
    free(out);

    /* Uncommenting every default gives the same values. */
    out = capture(sp_config_write_example, cfg);
    /* "# key: value" lines (lower-case key, no space before the colon). */
    for (char *p = out; p && (p = strstr(p, "# ")) != NULL;
         p = strchr(p, '\n')) {
        size_t n = strcspn(p + 2, ":\n ");
        if (p[2] >= 'a' && p[2] <= 'z' && p[2 + n] == ':' &&
            p[3 + n] == ' ')
            memmove(p, p + 2, strlen(p + 2) + 1);
    }
    again = new_cfg();
    if (load_validate(again, out ? out : "", &err) != SP_OK) {
        T_FAILF("%s", err.msg);
        fputs(out ? out : "", stderr);
        sp_config_free(again);
        free(out);
        sp_config_free(cfg);
        return;
    }
    T_OK(sp_config_is_set(again, "kafka.batch.size"));
    T_EQ_INT(sp_config_int(again, "kafka.batch.size"), 500);
    T_EQ_INT(sp_config_int(again, "engine.max_msg"), 1 << 20);
    const char *const *items;
    T_EQ_INT(sp_config_list(again, "engine.topics", &items), 2);
    sp_config_free(again);
    free(out);

    out = capture(sp_config_write_markdown, cfg);
    T_CONTAINS(out, "| `kafka.batch.size` | int; 1 to 100000 | `500` | "
                    "Messages per batch. |\n");
    T_CONTAINS(out, "| `log_level` | enum: error\\|warn\\|info\\|debug |");
    free(out);
    sp_config_free(cfg);
}

static void test_limits(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    static const struct sp_cfg_key deep_map[] = {
        { "deep", SP_CFG_MAP, NULL, 0, 0, "Deep map.", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, deep_map, 1, &err), SP_OK);
    char yaml[4096];
    /* The top level is depth 1: "deep" + 14 "n" keys open 16 mappings. */
    for (int levels = 15; levels <= 16; levels++) {
        size_t o = 0;
        for (int i = 0; i < levels; i++)
            o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "%*s%s:\n",
                                  i * 2, "", i ? "n" : "deep");
        snprintf(yaml + o, sizeof(yaml) - o, "%*sleaf: 1\n", levels * 2, "");
        enum sp_err rc = load(cfg, yaml, &err);
        T_EQ_INT(rc, levels == 15 ? SP_OK : SP_ERR_LIMIT);
        if (levels == 16) {
            T_CONTAINS(err.msg, "x.yaml:16: ");
            T_CONTAINS(err.msg, "nested deeper than 16 levels");
        }
    }
    /* Flow style, 40 levels on one line. */
    size_t o = 0;
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "{a%d: ", i);
    o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "1");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "}");
    snprintf(yaml + o, sizeof(yaml) - o, "\n");
    T_EQ_INT(load(cfg, yaml, &err), SP_ERR_LIMIT);
    T_EQ_INT(load(cfg, "a: [[1]]\n", &err), SP_ERR_CONFIG);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    struct collect c = { "", 0, 0 };
    sp_config_map_each(cfg, "deep", collect_cb, &c);
    T_EQ_STR(c.buf, "n.n.n.n.n.n.n.n.n.n.n.n.n.n.leaf=1;");
    sp_config_free(cfg);

    /* More than 1 MiB. */
    size_t big = SP_CFG_MAX_FILE + 1;
    char *text = malloc(big + 1);
    T_OK(text != NULL);
    if (text) {
        memset(text, '#', big);
        text[big] = '\0';
        cfg = new_cfg();
        T_EQ_INT(sp_config_load_string(cfg, "big.yaml", text, big, &err),
                 SP_ERR_LIMIT);
        T_CONTAINS(err.msg, "big.yaml: ");
        char *path = tmp_write(text, big);
        if (path) {
            T_EQ_INT(sp_config_load_file(cfg, path, &err), SP_ERR_LIMIT);
            T_CONTAINS(err.msg, "larger than");
            unlink(path);
            free(path);
        }
        sp_config_free(cfg);
        free(text);
    }

    /* More than 10,000 values. */
    struct sp_buf b;
    sp_buf_init(&b, 0);
    sp_buf_puts(&b, "deep:\n");
    for (int i = 0; i < 5001; i++)
        sp_buf_printf(&b, "  k%d: v\n", i);
    cfg = new_cfg();
    T_EQ_INT(sp_config_declare(cfg, deep_map, 1, &err), SP_OK);
    T_EQ_INT(load(cfg, b.data, &err), SP_ERR_LIMIT);
    T_CONTAINS(err.msg, "more than 10000 values");
    sp_buf_fini(&b);
    sp_config_free(cfg);
}

static void test_yaml_errors(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(load(cfg, "engine:\n  name: a\n   workers: 2\n", &err),
             SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:3: YAML syntax error: ");
    T_EQ_INT(load(cfg, "engine:\n  name: a\n  topics: [a, b\nkafka: 1\n",
                  &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:4: YAML syntax error: ");
    T_EQ_INT(load(cfg, "a: \"unterminated\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "YAML syntax error");
    T_EQ_INT(load(cfg, "base: &b {x: 1}\nother: *b\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:1: YAML anchors (&name) are not supported");
    T_EQ_INT(load(cfg, "base: {x: 1}\nother: *b\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:2: ");
    T_EQ_INT(load(cfg, "a: 1\n---\nb: 2\n", &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:2: only one YAML document is allowed");
    T_EQ_INT(load(cfg, "- a\n- b\n", &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:1: the top level must be a mapping of keys");
    T_EQ_INT(load(cfg, "? [a]\n: 1\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "keys must be plain scalars");
    T_EQ_INT(load(cfg, "a:\n  \"\": 1\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:2: empty key below a");
    T_EQ_INT(load(cfg, "a:\n  .b: 1\n", &err), SP_ERR_CONFIG);
    T_EQ_INT(load(cfg, "a: \"x\\0y\"\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "NUL byte");
    T_EQ_INT(sp_config_load_string(cfg, "n.yaml", "a: 1\nb: \0\n", 10, &err),
             SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "n.yaml:2: NUL byte in the document");
    T_EQ_INT(load(cfg, "a: 1\nb: \xff\xfe\n", &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "x.yaml:2: YAML error: ");
    T_EQ_INT(sp_config_load_file(cfg, "no/such/config.yaml", &err),
             SP_ERR_IO);
    T_CONTAINS(err.msg, "no/such/config.yaml");
    /* A directory is named as one, not as a "read error". */
    const char *tmpdir = getenv("TMPDIR");
    T_EQ_INT(sp_config_load_file(cfg, tmpdir && *tmpdir ? tmpdir : "/tmp",
                                 &err), SP_ERR_IO);
    T_CONTAINS(err.msg, "Is a directory");
    /* Empty documents are fine. */
    T_EQ_INT(load(cfg, "", &err), SP_OK);
    T_EQ_INT(load(cfg, "# only a comment\n", &err), SP_OK);
    T_EQ_INT(load(cfg, "---\n", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    sp_config_free(cfg);
}

static void test_declare_errors(void)
{
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(sp_config_declare(cfg, keys_kafka, 1, &err), SP_ERR_INVALID);
    T_EQ_STR(err.msg, "kafka.brokers: declared twice");
    static const struct sp_cfg_key twice[] = {
        { "x.a", SP_CFG_INT, NULL, 0, 0, "", 0, NULL },
        { "x.a", SP_CFG_INT, NULL, 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, twice, 2, &err), SP_ERR_INVALID);
    T_EQ_STR(err.msg, "x.a: declared twice");
    static const struct sp_cfg_key below[] = {
        { "kafka.consumer.x", SP_CFG_INT, NULL, 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, below, 1, &err), SP_ERR_INVALID);
    T_EQ_STR(err.msg, "kafka.consumer.x: below key kafka.consumer");
    static const struct sp_cfg_key group[] = {
        { "kafka.batch", SP_CFG_INT, NULL, 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, group, 1, &err), SP_ERR_INVALID);
    T_CONTAINS(err.msg, "kafka.batch: already a group of keys");
    static const struct sp_cfg_key bad[] = {
        { "y.ok", SP_CFG_INT, "1", 0, 0, "", 0, NULL },
        { "y.n", SP_CFG_INT, "0", 1, 10, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, bad, 2, &err), SP_ERR_INVALID);
    T_EQ_STR(err.msg, "y.n: bad default \"0\": must be between 1 and 10");
    static const struct sp_cfg_key noenum[] = {
        { "y.e", SP_CFG_ENUM, NULL, 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, noenum, 1, &err), SP_ERR_INVALID);
    static const struct sp_cfg_key badname[] = {
        { "y..z", SP_CFG_STR, NULL, 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, badname, 1, &err), SP_ERR_INVALID);
    static const struct sp_cfg_key mapdef[] = {
        { "y.m", SP_CFG_MAP, "a=b", 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, mapdef, 1, &err), SP_ERR_INVALID);
    /* A rejected table adds nothing: y.ok is still free. */
    static const struct sp_cfg_key ok[] = {
        { "y.ok", SP_CFG_INT, "3", 0, 0, "", 0, NULL },
    };
    T_EQ_INT(sp_config_declare(cfg, ok, 1, &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_config_int(cfg, "y.ok"), 3);
    sp_config_free(cfg);
}

static void test_load_before_declare_and_revalidate(void)
{
    struct sp_error err;
    struct sp_config *cfg = sp_config_new();
    T_EQ_INT(load(cfg, "kafka.batch.size: 7\nengine: {workers: 3}\n", &err),
             SP_OK);
    T_EQ_INT(sp_config_declare(cfg, keys_engine, SP_ARRAY_SIZE(keys_engine),
                               &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_ERR_CONFIG);
    T_EQ_STR(err.msg, "x.yaml:1: kafka: unknown key");
    T_EQ_INT(sp_config_declare(cfg, keys_kafka, SP_ARRAY_SIZE(keys_kafka),
                               &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_config_int(cfg, "kafka.batch.size"), 7);
    const char *s = sp_config_str(cfg, "kafka.batch.size");
    /* A later document wins, key by key. */
    T_EQ_INT(sp_config_load_string(cfg, "y.yaml", "kafka:\n  batch:\n"
                                   "    size: 9\n", 27, &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_config_int(cfg, "kafka.batch.size"), 9);
    T_EQ_INT(sp_config_int(cfg, "engine.workers"), 3);
    T_EQ_STR(sp_config_origin(cfg, "kafka.batch.size", NULL), "y.yaml:3");
    T_EQ_STR(s, "7");       /* earlier strings stay valid */
    sp_config_free(cfg);
}

static void test_fixture_file(void)
{
    /* The fixture sits next to this source: tests/fixtures/config/. */
    char path[1024];
    const char *src = __FILE__;
    const char *slash = strrchr(src, '/');
    snprintf(path, sizeof(path), "%.*s../fixtures/config/socpilot.yaml",
             slash ? (int)(slash - src + 1) : 0, src);
    if (access(path, R_OK) != 0)
        T_SKIP("fixture not reachable from the working directory");
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    setenv("SP_T_FIXTURE_PW", "fixture-pw", 1);
    if (sp_config_load_file(cfg, path, &err) != SP_OK ||
        sp_config_validate(cfg, &err) != SP_OK) {
        T_FAILF("%s", err.msg);
        sp_config_free(cfg);
        return;
    }
    T_EQ_INT(sp_config_int(cfg, "kafka.batch.size"), 2000);
    T_EQ_STR(sp_config_str(cfg, "kafka.password"), "fixture-pw");
    int line = 0;
    const char *origin = sp_config_origin(cfg, "kafka.batch.size", &line);
    T_CONTAINS(origin, "socpilot.yaml:");
    T_OK(line > 1);
    struct collect c = { "", 0, 0 };
    sp_config_map_each(cfg, "kafka.consumer", collect_cb, &c);
    T_EQ_STR(c.buf, "security.protocol=SASL_SSL;sasl.mechanism=PLAIN;"
                    "sasl.username=$ConnectionString;");
    unsetenv("SP_T_FIXTURE_PW");
    sp_config_free(cfg);
}

static void test_undeclared_getter_asserts(void)
{
#ifdef NDEBUG
    T_SKIP("built with NDEBUG");
#else
    struct sp_error err;
    struct sp_config *cfg = new_cfg();
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child aborts on the assert; keep its report off the log. */
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        (void)sp_config_str(cfg, "no.such.key");
        _exit(0);
    }
    int status = 0;
    T_OK(pid > 0 && waitpid(pid, &status, 0) == pid);
    T_OK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    sp_config_free(cfg);
#endif
}

/* The dump is YAML that loads back to the same values, also for code
 * points YAML does not allow raw (C1 controls, NEL, U+FFFE). */
static void test_dump_escapes_round_trip(void)
{
    static const struct sp_cfg_key keys[] = {
        {"a.s", SP_CFG_STR, "", 0, 0, "a string", 0, NULL},
    };
    struct sp_error e = {0};
    struct sp_config *c = sp_config_new();
    T_EQ_INT(sp_config_declare(c, keys, 1, &e), SP_OK);
    const char *y = "a:\n  s: \"x\\x80y\\u0085z\\uFFFEw\\u00e9\"\n";
    T_EQ_INT(sp_config_load_string(c, "t", y, strlen(y), &e), SP_OK);
    T_EQ_INT(sp_config_validate(c, &e), SP_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    sp_config_dump(c, m);
    fclose(m);
    T_CONTAINS(buf, "\\u0085");
    struct sp_config *c2 = sp_config_new();
    T_EQ_INT(sp_config_declare(c2, keys, 1, &e), SP_OK);
    T_EQ_INT(sp_config_load_string(c2, "dump", buf, len, &e), SP_OK);
    T_EQ_INT(sp_config_validate(c2, &e), SP_OK);
    T_EQ_STR(sp_config_str(c2, "a.s"), sp_config_str(c, "a.s"));
    free(buf);
    sp_config_free(c2);
    sp_config_free(c);
}

int main(void)
{
    t_prog = "test_config";
    T_RUN(test_defaults);
    T_RUN(test_every_type);
    T_RUN(test_durations);
    T_RUN(test_sizes);
    T_RUN(test_ints_and_range);
    T_RUN(test_bools);
    T_RUN(test_enum);
    T_RUN(test_lists);
    T_RUN(test_maps);
    T_RUN(test_overrides);
    T_RUN(test_env_substitution);
    T_RUN(test_nested_substitution);
    T_RUN(test_file_substitution);
    T_RUN(test_unknown_keys);
    T_RUN(test_type_errors);
    T_RUN(test_duplicates);
    T_RUN(test_dump_masks_secrets);
    T_RUN(test_secret_list_items);
    T_RUN(test_example_roundtrip);
    T_RUN(test_limits);
    T_RUN(test_yaml_errors);
    T_RUN(test_declare_errors);
    T_RUN(test_load_before_declare_and_revalidate);
    T_RUN(test_fixture_file);
    T_RUN(test_dump_escapes_round_trip);
    T_RUN(test_undeclared_getter_asserts);
    return t_done();
}
