/*
 * cli.c - the engine-side subcommands: run, demo, check-config,
 * mock-kafka, replay; and the option/config plumbing every command shares.
 *
 * Main thread only; the signal handlers only set flags.
 */
#include "cli.h"

#include "engine.h"
#include "json.h"
#include "kafka.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- shared plumbing ----------------------------------------------------- */

int sp_cli_parse_common(int argc, char **argv, struct sp_cli_common *co)
{
    co->sets = calloc((size_t)argc + 1, sizeof(*co->sets));
    co->n_sets = 0;
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
            strncmp(a, "--config=", 9) == 0) {
            const char *path = strncmp(a, "--config=", 9) == 0 ? a + 9 : NULL;
            if (!path && i + 1 >= argc) {
                fprintf(stderr, "%s needs a file\n", a);
                return -1;
            }
            if (!path)
                path = argv[++i];
            /* One file is read; a second -c would silently replace the
             * first, which looks like layering but is not. */
            if (co->config_path) {
                fprintf(stderr, "-c given twice (%s, %s): one config file, "
                        "then -s key=value overrides\n", co->config_path,
                        path);
                return -1;
            }
            co->config_path = path;
        } else if (strcmp(a, "-s") == 0 || strcmp(a, "--set") == 0) {
            if (i + 1 >= argc || !strchr(argv[i + 1], '=')) {
                fprintf(stderr, "%s needs key=value\n", a);
                return -1;
            }
            co->sets[co->n_sets++] = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    return out;
}

static int secret_cb(const char *name, const char *value, void *ud)
{
    SP_UNUSED(name);
    SP_UNUSED(ud);
    sp_log_add_secret(value);
    return 0;
}

void sp_cli_log_setup(const struct sp_config *cfg)
{
    enum sp_log_level lvl = SP_LOG_INFO;
    enum sp_log_format fmt = SP_LOG_TEXT;
    sp_log_level_parse(sp_config_str(cfg, "log.level"), &lvl);
    sp_log_format_parse(sp_config_str(cfg, "log.format"), &fmt);
    sp_log_setup(lvl, fmt, stderr);
    sp_cli_mask_secrets(cfg);
}

void sp_cli_mask_secrets(const struct sp_config *cfg)
{
    sp_config_each_secret(cfg, secret_cb, NULL);
}

struct sp_config *sp_cli_config(const struct sp_cli_common *co,
                                const char *const *extra_sets, size_t n_extra)
{
    struct sp_error err = {0};
    struct sp_config *cfg = sp_config_new();
    if (!cfg) {
        fprintf(stderr, "out of memory\n");
        return NULL;
    }
    if (sp_engine_declare(cfg, &err))
        goto fail;
    if (co->config_path && sp_config_load_file(cfg, co->config_path, &err))
        goto fail;
    for (size_t i = 0; i < n_extra; i++)
        if (sp_config_set(cfg, extra_sets[i], &err))
            goto fail;
    for (int i = 0; i < co->n_sets; i++)
        if (sp_config_set(cfg, co->sets[i], &err))
            goto fail;
    if (sp_config_validate(cfg, &err)) {
        const char *const *msgs;
        size_t n = sp_config_errors(cfg, &msgs);
        if (n > 1) {
            for (size_t i = 0; i < n; i++)
                fprintf(stderr, "config error: %s\n", msgs[i]);
            sp_config_free(cfg);
            return NULL;
        }
        goto fail;
    }
    sp_cli_log_setup(cfg);
    return cfg;
fail:
    fprintf(stderr, "config error: %s\n", err.msg);
    sp_config_free(cfg);
    return NULL;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* ---- signals ------------------------------------------------------------- */

static struct sp_engine *volatile g_engine;
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    SP_UNUSED(sig);
    g_stop = 1;
    if (g_engine)
        sp_engine_stop(g_engine);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- run ----------------------------------------------------------------- */

static const char run_usage[] =
    "usage: socpilot run [-c FILE] [-s key=value]...\n"
    "\n"
    "Consume the input topics in the consumer group, run the stage chain and\n"
    "publish normalized alerts (and incidents, DLQ records).  SIGTERM/SIGINT\n"
    "drain in-flight work, flush, commit and exit 0 within\n"
    "pipeline.shutdown_timeout.\n"
    "\n"
    "  -c, --config FILE   YAML config (see config/socpilot.yaml)\n"
    "  -s, --set KEY=VAL   override any config key (repeatable)\n";

int sp_cmd_run(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(run_usage, stdout);
        return 0;
    }
    /* Handlers first: a SIGTERM during start-up still means a clean stop. */
    install_signals();
    struct sp_cli_common co = {0};
    argc = sp_cli_parse_common(argc, argv, &co);
    if (argc != 1) {
        if (argc > 1)
            fprintf(stderr, "run: unexpected argument '%s'\n", argv[1]);
        fputs(run_usage, stderr);
        free(co.sets);
        return 2;
    }
    struct sp_config *cfg = sp_cli_config(&co, NULL, 0);
    free(co.sets);
    if (!cfg)
        return 1;
    struct sp_error err = {0};
    struct sp_engine *eng = sp_engine_new(cfg, &err);
    if (!eng) {
        sp_log_error("main", "start-up failed: %s", err.msg);
        sp_config_free(cfg);
        return 1;
    }
    g_engine = eng;
    if (g_stop)
        sp_engine_stop(eng);
    sp_log_info("main", "socpilot %s running (bootstrap %s)", SP_VERSION,
                sp_kafka_bootstraps(sp_engine_kafka(eng)));
    enum sp_err e = sp_engine_run(eng);
    g_engine = NULL;
    sp_engine_free(eng);
    sp_config_free(cfg);
    sp_log_info("main", "stopped%s", e ? " with undelivered outputs" : "");
    return e ? 1 : 0;
}

/* ---- check-config -------------------------------------------------------- */

static const char check_usage[] =
    "usage: socpilot check-config [-c FILE] [-s key=value]... [--example|--markdown]\n"
    "\n"
    "Validate a config and print the effective settings, secrets masked.\n"
    "  --example    print a documented example config with every key\n"
    "  --markdown   print the key reference as a Markdown table\n";

int sp_cmd_check_config(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(check_usage, stdout);
        return 0;
    }
    struct sp_cli_common co = {0};
    argc = sp_cli_parse_common(argc, argv, &co);
    bool example = false, markdown = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--example") == 0) {
            example = true;
        } else if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
        } else {
            fprintf(stderr, "check-config: unexpected argument '%s'\n", argv[i]);
            fputs(check_usage, stderr);
            free(co.sets);
            return 2;
        }
    }
    if (argc < 0) {
        free(co.sets);
        return 2;
    }
    struct sp_config *cfg = sp_cli_config(&co, NULL, 0);
    free(co.sets);
    if (!cfg)
        return 1;
    /* What run would refuse at start-up beyond the key tables. */
    struct sp_error err = {0};
    if (!example && !markdown && sp_engine_check(cfg, &err)) {
        fprintf(stderr, "config error: %s\n", err.msg);
        sp_config_free(cfg);
        return 1;
    }
    if (example)
        sp_config_write_example(cfg, stdout);
    else if (markdown)
        sp_config_write_markdown(cfg, stdout);
    else
        sp_config_dump(cfg, stdout);
    sp_config_free(cfg);
    return 0;
}

/* ---- mock-kafka ---------------------------------------------------------- */

static const char mock_usage[] =
    "usage: socpilot mock-kafka [--topics T,...] [--partitions N] [--brokers N]\n"
    "\n"
    "Run librdkafka's mock cluster as a standalone process (a real Kafka-protocol\n"
    "broker, in memory) and print its bootstrap servers, so that kcat, tests and\n"
    "several socpilot instances can share it.  Runs until SIGINT/SIGTERM.\n"
    "Note: the mock keeps only ~5 MB per partition; size partitions accordingly.\n";

static size_t split_list(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok)
            out[n++] = tok;
    return n;
}

int sp_cmd_mock_kafka(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(mock_usage, stdout);
        return 0;
    }
    char deftopics[] = "socpilot.input,socpilot.alerts,socpilot.incidents,socpilot.dlq";
    char *topics = deftopics;
    int partitions = 4, brokers = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topics") == 0 && i + 1 < argc) {
            topics = argv[++i];
        } else if (strcmp(argv[i], "--partitions") == 0 && i + 1 < argc) {
            partitions = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            brokers = atoi(argv[++i]);
        } else {
            fprintf(stderr, "mock-kafka: unexpected argument '%s'\n", argv[i]);
            fputs(mock_usage, stderr);
            return 2;
        }
    }
    if (partitions < 1 || partitions > 1024 || brokers < 1 || brokers > 16) {
        fprintf(stderr, "mock-kafka: --partitions 1..1024, --brokers 1..16\n");
        return 2;
    }
    const char *names[64];
    size_t n = split_list(topics, names, SP_ARRAY_SIZE(names));
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, stderr);
    struct sp_error err = {0};
    struct sp_mock *mk = sp_mock_start(brokers, names, n, partitions, &err);
    if (!mk) {
        fprintf(stderr, "mock-kafka: %s\n", err.msg);
        return 1;
    }
    printf("bootstrap.servers=%s\n", sp_mock_bootstraps(mk));
    fflush(stdout);
    install_signals();
    while (!g_stop)
        usleep(100000);
    sp_mock_stop(mk);
    return 0;
}

/* ---- replay -------------------------------------------------------------- */

static const char replay_usage[] =
    "usage: socpilot replay FILE... --topic T [-b BROKERS]\n"
    "\n"
    "Produce alert files into a topic: a *.jsonl file one message per line,\n"
    "any other file as one message, bytes as they are (bad records included,\n"
    "to exercise the DLQ).  Waits until every message is acknowledged.\n"
    "A FILE that cannot be read stops it before anything is produced.\n"
    "  -t, --topic T        the topic to produce to (required)\n"
    "  -b, --brokers LIST   bootstrap servers (default localhost:9092)\n"
    "\n"
    "Exit status: 0 every message acknowledged, 1 a file or Kafka error,\n"
    "2 usage error.\n";

struct replay_state {
    long acked;
    long failed;
};

static void replay_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                      void *opaque)
{
    struct replay_state *rs = opaque;
    SP_UNUSED(rk);
    if (rkm->err)
        rs->failed++;
    else
        rs->acked++;
}

static int produce_one(rd_kafka_t *rk, const char *topic, const char *p,
                       size_t n)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE((void *)p, n), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 50);
            continue;
        }
        return e ? -1 : 0;
    }
}

long sp_replay_files(const char *brokers, const char *topic,
                     char *const *files, size_t n_files, FILE *log)
{
    struct replay_state rs = {0, 0};
    struct sp_error err = {0};
    /* Every file first: a mistyped name produces nothing, rather than a
     * partial replay that cannot be taken back. */
    size_t unreadable = 0;
    for (size_t f = 0; f < n_files; f++) {
        struct stat sb;
        if (stat(files[f], &sb) != 0 || access(files[f], R_OK) != 0) {
            fprintf(log, "replay: %s: %s\n", files[f], strerror(errno));
            unreadable++;
        } else if (S_ISDIR(sb.st_mode)) {
            fprintf(log, "replay: %s: %s\n", files[f], strerror(EISDIR));
            unreadable++;
        }
    }
    if (unreadable) {
        fprintf(log, "replay: %zu file(s) cannot be read; nothing produced\n",
                unreadable);
        return -1;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (sp_kafka_conf_set(conf, "bootstrap.servers", brokers, &err) ||
        sp_kafka_conf_set(conf, "enable.idempotence", "true", &err) ||
        sp_kafka_conf_set(conf, "linger.ms", "5", &err) ||
        sp_kafka_conf_set(conf, "message.max.bytes", "16000000", &err)) {
        fprintf(log, "replay: %s\n", err.msg);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, replay_dr);
    rd_kafka_conf_set_opaque(conf, &rs);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(log, "replay: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    long produced = 0;
    for (size_t f = 0; f < n_files; f++) {
        size_t len;
        char *data = sp_read_file(files[f], (size_t)64 << 20, &len, &err);
        if (!data) {
            fprintf(log, "replay: %s\n", err.msg);
            unreadable++;
            continue;
        }
        size_t fl = strlen(files[f]);
        bool lines = fl > 6 && strcmp(files[f] + fl - 6, ".jsonl") == 0;
        if (!lines) {
            if (produce_one(rk, topic, data, len) == 0)
                produced++;
        } else {
            char *p = data, *end = data + len;
            while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                size_t t = l;
                while (t > 0 && (p[t - 1] == '\r' || p[t - 1] == ' '))
                    t--;
                if (t > 0 && produce_one(rk, topic, p, t) == 0)
                    produced++;
                p += l + 1;
            }
        }
        free(data);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    if (rs.failed || rs.acked != produced) {
        fprintf(log, "replay: %ld of %ld message(s) not acknowledged\n",
                produced - rs.acked, produced);
        return -1;
    }
    if (unreadable) {
        fprintf(log, "replay: %ld message(s) produced, but %zu file(s) could "
                "not be read\n", rs.acked, unreadable);
        return -1;
    }
    return rs.acked;
}

int sp_cmd_replay(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(replay_usage, stdout);
        return 0;
    }
    const char *topic = NULL, *brokers = "localhost:9092";
    char **files = calloc((size_t)argc, sizeof(*files));
    size_t nf = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--topic") == 0 || strcmp(argv[i], "-t") == 0) &&
            i + 1 < argc)
            topic = argv[++i];
        else if ((strcmp(argv[i], "-b") == 0 ||
                  strcmp(argv[i], "--brokers") == 0) &&
                 i + 1 < argc)
            brokers = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "replay: %s '%s'\n",
                    i + 1 < argc ? "unknown option" : "missing value after",
                    argv[i]);
            free(files);
            fputs(replay_usage, stderr);
            return 2;
        } else
            files[nf++] = argv[i];
    }
    if (!topic || nf == 0) {
        fprintf(stderr, "replay: %s\n", nf == 0 ? "no FILE given"
                                                 : "--topic T is required");
        fputs(replay_usage, stderr);
        free(files);
        return 2;
    }
    long n = sp_replay_files(brokers, topic, files, nf, stderr);
    free(files);
    if (n < 0)
        return 1;
    printf("produced %ld message(s) to %s\n", n, topic);
    return 0;
}

/* ---- demo ---------------------------------------------------------------- */

static const char demo_usage[] =
    "usage: socpilot demo [-c FILE] [-s key=value]... [--samples DIR] [--keep-running]\n"
    "\n"
    "The embedded default: start librdkafka's mock cluster in-process (and,\n"
    "with redis.embedded, a private redis-server), produce the sample alerts\n"
    "(DIR/*.json, DIR/*.jsonl and DIR/bad/*), run the pipeline until it is\n"
    "idle, then show what came out on the output topics.  Run it from the\n"
    "repository root, or give -c and --samples.\n"
    "  -c, --config FILE   config (default config/demo.yaml)\n"
    "  -s, --set KEY=VAL   override a config key (repeatable)\n"
    "  --samples DIR       sample alerts (default config/samples)\n"
    "  --keep-running      keep the pipeline (and the mock cluster, and the\n"
    "                      private redis-server) up afterwards\n";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists DIR's regular *.json / *.jsonl / (bad) files, sorted. */
static size_t list_samples(const char *dir, bool any, char **out, size_t max)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        const char *nm = de->d_name;
        if (nm[0] == '.')
            continue;
        size_t l = strlen(nm);
        bool json = (l > 5 && strcmp(nm + l - 5, ".json") == 0) ||
                    (l > 6 && strcmp(nm + l - 6, ".jsonl") == 0);
        if (!json && !any)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, nm);
        out[n++] = strdup(path);
    }
    closedir(d);
    qsort(out, n, sizeof(*out), cmp_str);
    return n;
}

/* Reads a whole topic from the beginning (partition EOF on all). */
typedef void (*demo_msg_cb)(const rd_kafka_message_t *rkm, void *ud);

static long read_topic(const char *brokers, const char *topic, demo_msg_cb cb,
                       void *ud)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "socpilot-demo-reader", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                      sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    long count = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1) {
        int np = md->topics[0].partition_cnt;
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(np);
        for (int p = 0; p < np; p++)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        int eofs = 0;
        int64_t deadline = sp_now_ms() + 10000;
        while (eofs < np && sp_now_ms() < deadline) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 200);
            if (!rkm)
                continue;
            if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                eofs++;
            else if (!rkm->err) {
                cb(rkm, ud);
                count++;
            }
            rd_kafka_message_destroy(rkm);
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return count;
}

static const char *header(const rd_kafka_message_t *rkm, const char *name,
                          char *buf, size_t n)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vl;
    buf[0] = '\0';
    if (rd_kafka_message_headers(rkm, &h) || !h ||
        rd_kafka_header_get_last(h, name, &v, &vl))
        return buf;
    snprintf(buf, n, "%.*s", (int)vl, (const char *)v);
    return buf;
}

static void print_alert(const rd_kafka_message_t *rkm, void *ud)
{
    SP_UNUSED(ud);
    struct sp_arena a;
    sp_arena_init(&a, 0);
    struct sp_json *doc = sp_json_parse(&a, rkm->payload, rkm->len, NULL, NULL);
    if (!doc) {
        printf("  (unparseable output)\n");
        sp_arena_fini(&a);
        return;
    }
    printf("  %-8s %-44s %s\n", sp_json_str(doc, "severity"),
           sp_json_str(doc, "id"), sp_json_str(doc, "title"));
    const char *inc = sp_json_str(doc, "incident_id");
    if (inc)
        printf("           incident %s\n", inc);
    struct sp_json *ents = sp_json_get(doc, "entities");
    int shown = 0;
    sp_json_foreach(ents, e)
    {
        const char *key = sp_json_str(e, "key");
        if (key && shown < 6) {
            printf("           %-10s %s\n", sp_json_str(e, "type"), key);
            shown++;
        }
    }
    if (ents && (int)ents->n > shown)
        printf("           ... %u entities in all\n", ents->n);
    sp_json_foreach(sp_json_get(doc, "scripts"), sc)
    {
        int64_t risk = 0;
        sp_json_int(sp_json_get(sc, "risk"), &risk);
        struct sp_json *layers = sp_json_get(sc, "layers");
        printf("           script risk %lld, %u layer(s):", (long long)risk,
               layers ? layers->n : 0);
        sp_json_foreach(sp_json_get(sc, "behaviours"), b)
            printf(" %s", sp_json_str(b, "technique"));
        const char *dec = sp_json_str(sc, "decoded");
        if (dec && layers && layers->n > 1)
            printf("\n             decoded: %.110s%s", dec,
                   strlen(dec) > 110 ? "..." : "");
        printf("\n");
    }
    sp_arena_fini(&a);
}

static void print_incident(const rd_kafka_message_t *rkm, void *ud)
{
    SP_UNUSED(ud);
    struct sp_arena a;
    sp_arena_init(&a, 0);
    struct sp_json *doc = sp_json_parse(&a, rkm->payload, rkm->len, NULL, NULL);
    if (doc) {
        int64_t version = 0;
        sp_json_int(sp_json_get(doc, "version"), &version);
        struct sp_json *alerts = sp_json_get(doc, "alerts");
        printf("  %-40s v%-3lld %-8s %2u alert(s)  %s%s%s\n",
               sp_json_str(doc, "id"), (long long)version,
               sp_json_str(doc, "severity"), alerts ? alerts->n : 0,
               sp_json_str(doc, "title"),
               sp_json_str(doc, "merged_into") ? "  merged into " : "",
               sp_json_str(doc, "merged_into") ? sp_json_str(doc, "merged_into")
                                               : "");
        struct sp_json *scripts = sp_json_get(doc, "scripts");
        if (scripts && scripts->n) {
            int64_t top = 0;
            sp_json_foreach(scripts, sc)
            {
                int64_t r = 0;
                sp_json_int(sp_json_get(sc, "risk"), &r);
                top = SP_MAX(top, r);
            }
            printf("      %u script analyses (highest risk %lld)\n", scripts->n,
                   (long long)top);
        }
        struct sp_json *an = sp_json_get(doc, "analysis");
        if (an && an->type == SP_JSON_OBJECT) {
            struct sp_json *sum = sp_json_get(an, "summary");
            struct sp_json *imp = sp_json_get(an, "impact");
            int64_t score = -1;
            sp_json_int(sp_json_get(imp, "score"), &score);
            printf("      analysis (%s): impact %lld %s\n",
                   sp_json_str(an, "generated_by"), (long long)score,
                   imp ? sp_json_str(imp, "level") : "");
            const char *head = sp_json_str(sum, "headline");
            const char *narr = sp_json_str(sum, "narrative");
            if (head)
                printf("        %s\n", head);
            if (narr)
                printf("        %.400s%s\n", narr, strlen(narr) > 400 ? "..." : "");
            int steps = 0;
            sp_json_foreach(sp_json_get(sum, "next_steps"), st)
            {
                const char *t = sp_json_is_str(st) ? st->u.s : sp_json_str(st, "step");
                if (t && steps++ < 4)
                    printf("        next: %.160s\n", t);
            }
        }
    }
    sp_arena_fini(&a);
}

static void print_dlq(const rd_kafka_message_t *rkm, void *ud)
{
    SP_UNUSED(ud);
    char reason[64], stage[64], src[128], off[32], detail[160];
    header(rkm, "socpilot-error-reason", reason, sizeof(reason));
    header(rkm, "socpilot-error-stage", stage, sizeof(stage));
    header(rkm, "socpilot-source-topic", src, sizeof(src));
    header(rkm, "socpilot-source-offset", off, sizeof(off));
    header(rkm, "socpilot-error-detail", detail, sizeof(detail));
    char preview[61];
    size_t n = SP_MIN(rkm->len, sizeof(preview) - 1);
    for (size_t i = 0; i < n; i++) {
        char c = ((const char *)rkm->payload)[i];
        preview[i] = (c >= 32 && c < 127) ? c : '.';
    }
    preview[n] = '\0';
    printf("  %-18s %-10s %s@%s  %s\n      %s%s\n", reason, stage, src, off,
           detail, preview, rkm->len > n ? "..." : "");
}

int sp_cmd_demo(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(demo_usage, stdout);
        return 0;
    }
    struct sp_cli_common co = {0};
    argc = sp_cli_parse_common(argc, argv, &co);
    const char *samples = "config/samples";
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
            samples = argv[++i];
        } else if (strcmp(argv[i], "--keep-running") == 0) {
            keep = true;
        } else {
            if (strcmp(argv[i], "--samples") == 0)
                fprintf(stderr, "demo: --samples needs a directory\n");
            else
                fprintf(stderr, "demo: unexpected argument '%s'\n", argv[i]);
            fputs(demo_usage, stderr);
            free(co.sets);
            return 2;
        }
    }
    if (argc < 0) {
        free(co.sets);
        return 2;
    }
    /* What make run runs: without it the chain would wait for a Redis on
     * localhost:6379 and serve metrics on the production port. */
    if (!co.config_path)
        co.config_path = "config/demo.yaml";
    /* Before anything starts: from the wrong directory there would be
     * nothing to produce and the demo would show empty topics. */
    DIR *sd = opendir(samples);
    if (!sd) {
        fprintf(stderr, "demo: %s: %s (run it from the repository root, or "
                "give --samples DIR)\n", samples, strerror(errno));
        free(co.sets);
        return 2;
    }
    closedir(sd);
    static const char *const force[] = {"kafka.embedded=true"};
    struct sp_config *cfg = sp_cli_config(&co, force, 1);
    free(co.sets);
    if (!cfg)
        return 1;
    install_signals();
    struct sp_error err = {0};
    struct sp_engine *eng = sp_engine_new(cfg, &err);
    if (!eng) {
        fprintf(stderr, "demo: start-up failed: %s\n", err.msg);
        sp_config_free(cfg);
        return 1;
    }
    g_engine = eng;
    const char *brokers = sp_kafka_bootstraps(sp_engine_kafka(eng));
    const char *const *inputs;
    sp_config_list(cfg, "topics.input", &inputs);

    char *files[256];
    size_t nf = list_samples(samples, false, files, 128);
    char bad[1024];
    snprintf(bad, sizeof(bad), "%s/bad", samples);
    nf += list_samples(bad, true, files + nf, 128);
    printf("== socpilot demo: embedded Kafka (librdkafka mock cluster) at %s\n",
           brokers);
    const char *redis_sock = sp_config_bool(cfg, "redis.embedded")
                                 ? sp_config_str(cfg, "redis.unix_socket")
                                 : NULL;
    if (redis_sock)
        printf("== private redis-server on unix:%s\n", redis_sock);
    printf("== producing %zu sample file(s) from %s to %s\n", nf, samples,
           inputs[0]);
    long produced = sp_replay_files(brokers, inputs[0], files, nf, stderr);
    for (size_t i = 0; i < nf; i++)
        free(files[i]);
    if (produced < 0) {
        g_engine = NULL;
        sp_engine_free(eng);
        sp_config_free(cfg);
        return 1;
    }
    printf("== %ld input message(s); running the pipeline until idle\n",
           produced);
    fflush(stdout);
    /* Idle for 5 s: time for the timer-driven work after the last input
     * (Defender row assembly, debounced analysis jobs) to come out. */
    enum sp_err e = sp_engine_run_until_idle(eng, 5000, 120000);
    struct sp_engine_stats stats;
    sp_engine_stats(eng, &stats);

    printf("\n== normalized alerts on %s\n", sp_config_str(cfg, "topics.alerts"));
    long na = read_topic(brokers, sp_config_str(cfg, "topics.alerts"),
                         print_alert, NULL);
    const char *const *stages;
    size_t ns = sp_config_list(cfg, "pipeline.stages", &stages);
    bool correlating = false;
    for (size_t i = 0; i < ns; i++)
        if (strcmp(stages[i], "correlate") == 0)
            correlating = true;
    long ni = 0;
    if (correlating) {
        printf("\n== incident snapshots on %s\n",
               sp_config_str(cfg, "topics.incidents"));
        ni = read_topic(brokers, sp_config_str(cfg, "topics.incidents"),
                        print_incident, NULL);
    }
    printf("\n== dead-letter records on %s\n", sp_config_str(cfg, "topics.dlq"));
    long nd = read_topic(brokers, sp_config_str(cfg, "topics.dlq"), print_dlq,
                         NULL);
    printf("\n== %llu message(s) consumed, %ld alert(s) published, %ld incident "
           "snapshot(s), %ld DLQ record(s), %llu offset(s) committed\n",
           (unsigned long long)stats.messages, na, ni, nd,
           (unsigned long long)stats.committed);
    int port = sp_engine_http_port(eng);
    bool keeping = keep && !g_stop && e == SP_OK;
    if (port)
        printf("== metrics %s on http://127.0.0.1:%d/metrics\n",
               keeping ? "are served" : "were served", port);
    if (keeping) {
        printf("== --keep-running: pipeline stays up; bootstrap.servers=%s; "
               "Ctrl-C to stop\n", brokers);
        if (redis_sock)
            printf("== incidents: socpilot incident list -s "
                   "redis.unix_socket=%s\n", redis_sock);
        fflush(stdout);
        e = sp_engine_run(eng);
    }
    g_engine = NULL;
    sp_engine_free(eng);
    sp_config_free(cfg);
    if (e)
        return 1;
    if (stats.messages < (uint64_t)produced) {
        fprintf(stderr, "demo: only %llu of %ld messages were consumed\n",
                (unsigned long long)stats.messages, produced);
        return 1;
    }
    return 0;
}
