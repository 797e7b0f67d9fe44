/*
 * analyze_cli.c - `socpilot analyze`: run the analysis of one incident now
 * and print the section (or, with --dry-run, the prompts and the exact
 * request body without sending anything), and `--estimate`: expected LLM
 * calls and tokens per day for a policy.
 *
 * Reads the incident from Redis with the same atomic read the stage uses;
 * never writes (the stage's jobs publish).  The incident is found by its
 * tenant (--tenant) or, without it, by a bounded SCAN (an operator's
 * command, never the hot path).
 *
 * Main thread; blocking.
 */
#include "analyze_int.h"

#include "cli.h"
#include "engine.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: socpilot analyze INCIDENT_ID [-c FILE] [-s key=value]... "
    "[--dry-run] [--tenant T]\n"
    "       socpilot analyze --estimate [--alerts-per-day N] "
    "[--incidents-per-day N] [--policy every|min_severity|on_demand]\n"
    "\n"
    "Runs the analysis of one incident now and prints the analysis section\n"
    "(JSON).  The LLM is used when llm.enabled is true, the template\n"
    "otherwise.  Nothing is written to Redis or Kafka.\n"
    "\n"
    "  -c, --config FILE       configuration file\n"
    "  -s, --set key=value     override a configuration key\n"
    "  -n, --dry-run           print the prompts and the exact request body\n"
    "                          that would be sent, send nothing\n"
    "  -t, --tenant T          the incident's tenant (otherwise found by SCAN)\n"
    "  --estimate              expected calls and tokens per day\n"
    "  --alerts-per-day N      (estimate) default 10000\n"
    "  --incidents-per-day N   (estimate) default 500\n"
    "  --policy P              (estimate) default analysis.policy\n"
    "  -h, --help              this text\n";

/* The config with analysis.* and llm.* declared whether or not the
 * engine declares them (a refused declaration adds nothing). */
static struct sp_config *load_config(const struct sp_cli_common *co)
{
    struct sp_error err = {0};
    struct sp_config *cfg = sp_config_new();
    if (!cfg)
        return NULL;
    if (sp_engine_declare(cfg, &err)) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        goto fail;
    }
    sp_analyze_declare(cfg, &err);
    if (co->config_path && sp_config_load_file(cfg, co->config_path, &err)) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        goto fail;
    }
    for (int i = 0; i < co->n_sets; i++)
        if (sp_config_set(cfg, co->sets[i], &err)) {
            /* The key only: the value may be a secret. */
            const char *eq = strchr(co->sets[i], '=');
            int klen = eq ? (int)SP_MIN(eq - co->sets[i], 128) : 0;
            fprintf(stderr, "socpilot analyze: -s %.*s: %s\n", klen,
                    co->sets[i], err.msg);
            goto fail;
        }
    if (sp_config_validate(cfg, &err)) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        goto fail;
    }
    sp_cli_log_setup(cfg);          /* as `socpilot run`: secrets masked */
    return cfg;
fail:
    sp_config_free(cfg);
    return NULL;
}

static void print_dry_run(struct sp_llm *c, struct sp_analysis_job *job,
                          const struct sp_analysis_prompts *prompts)
{
    const struct sp_analysis_call *calls;
    size_t n = sp_analysis_job_calls(job, &calls);
    for (size_t i = 0; i < n; i++) {
        printf("=== call %u (%s), ~%zu prompt tokens, max %d completion "
               "tokens ===\n", calls[i].id, calls[i].kind,
               calls[i].est_tokens, calls[i].max_tokens);
        for (size_t m = 0; m < calls[i].n_msgs; m++)
            printf("--- %s ---\n%s\n", calls[i].msgs[m].role,
                   calls[i].msgs[m].content);
        struct sp_llm_req req = {calls[i].msgs, calls[i].n_msgs,
                                 "incident_analysis",
                                 sp_analysis_prompts_wire_schema(prompts),
                                 calls[i].max_tokens, "dry-run"};
        struct sp_buf url, body;
        sp_buf_init(&url, 0);
        sp_buf_init(&body, 0);
        if (c && sp_llm_format(c, &req, true, &url, &body) == SP_OK)
            printf("--- request: POST %s (header %s) ---\n%s\n",
                   url.data ? url.data : "", sp_llm_auth_header(c),
                   body.data ? body.data : "");
        sp_buf_fini(&url);
        sp_buf_fini(&body);
    }
    if (n == 0)
        printf("(no call planned)\n");
}

static void on_answer(const struct sp_llm_result *res, void *ud)
{
    struct { struct sp_analysis_job *job; unsigned id; } *s = ud;
    if (res->err == SP_OK) {
        struct sp_analysis_usage u = {res->model, res->prompt_tokens,
                                      res->completion_tokens};
        sp_analysis_job_answer(s->job, s->id, res->content, res->content_len,
                               &u);
    } else {
        sp_analysis_job_fail(s->job, s->id, res->err, res->error);
    }
    free(s);
}

static void run_now(struct sp_llm *c, struct sp_analysis_job *job,
                    const struct sp_analysis_prompts *prompts, int timeout_ms)
{
    int64_t deadline = sp_now_ms() + timeout_ms;
    while (!sp_analysis_job_done(job) && sp_now_ms() < deadline) {
        const struct sp_analysis_call *call;
        while ((call = sp_analysis_job_next(job)) != NULL) {
            struct { struct sp_analysis_job *job; unsigned id; } *s =
                malloc(sizeof(*s));
            if (!s) {
                sp_analysis_job_fail(job, call->id, SP_ERR_NOMEM, "memory");
                break;
            }
            s->job = job;
            s->id = call->id;
            struct sp_llm_req req = {call->msgs, call->n_msgs,
                                     "incident_analysis",
                                     sp_analysis_prompts_wire_schema(prompts),
                                     call->max_tokens, "cli"};
            enum sp_err e = sp_llm_submit(c, &req, on_answer, s);
            if (e) {
                free(s);
                sp_analysis_job_fail(job, call->id, e, sp_strerror(e));
            }
        }
        if (!sp_analysis_job_done(job))
            sp_llm_poll(c, 100);
    }
    if (!sp_analysis_job_done(job))
        sp_analysis_job_fallback(job, "timeout");
}

static int estimate(const struct sp_config *cfg, double alerts,
                    double incidents, const char *policy)
{
    struct sp_analysis_opts o;
    struct sp_error err = {0};
    if (sp_analysis_opts_from_config(cfg, &o, &err)) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        return 1;
    }
    if (policy) {
        if (strcmp(policy, "every") == 0)
            o.policy = SP_ANALYSIS_EVERY;
        else if (strcmp(policy, "min_severity") == 0)
            o.policy = SP_ANALYSIS_MIN_SEVERITY;
        else if (strcmp(policy, "on_demand") == 0)
            o.policy = SP_ANALYSIS_ON_DEMAND;
        else {
            fprintf(stderr, "socpilot analyze: --policy: every, min_severity "
                    "or on_demand\n");
            return 2;
        }
    }
    struct sp_analysis_estimate_params p;
    sp_analysis_estimate_params_default(&p);
    struct sp_analysis_estimate est;
    sp_analysis_estimate(o.policy, alerts, incidents, &o, &p, &est);
    static const char *names[] = {"every", "min_severity", "on_demand"};
    printf("{\"policy\":\"%s\",\"alerts_per_day\":%.0f,\"incidents_per_day\":"
           "%.0f,\"incidents_analysed\":%.1f,\"calls\":%.1f,"
           "\"calls_per_incident\":%.2f,\"alerts_per_incident\":%.1f,"
           "\"prompt_tokens\":%.0f,\"completion_tokens\":%.0f,"
           "\"total_tokens\":%.0f}\n",
           names[o.policy], alerts, incidents, est.incidents_analysed,
           est.calls, est.calls_per_incident, est.alerts_per_incident,
           est.prompt_tokens, est.completion_tokens, est.total_tokens);
    return 0;
}

/* A rate per day: a finite number, not negative, and nothing after it
 * (atof took "abc" for 0, and printed nan or inf into the JSON). */
static bool parse_rate(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v) || v < 0)
        return false;
    *out = v;
    return true;
}

static int analyze_cmd(int argc, char **argv, const struct sp_cli_common *co)
{
    static const struct option longs[] = {
        {"dry-run", no_argument, NULL, 'n'},
        {"tenant", required_argument, NULL, 't'},
        {"estimate", no_argument, NULL, 'E'},
        {"alerts-per-day", required_argument, NULL, 'A'},
        {"incidents-per-day", required_argument, NULL, 'I'},
        {"policy", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool dry = false, est = false;
    const char *tenant = NULL, *policy = NULL;
    double alerts = 10000, incidents = 500;
    const char *bad_rate = NULL, *bad_arg = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "nt:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'n': dry = true; break;
        case 't': tenant = optarg; break;
        case 'E': est = true; break;
        case 'A':
            if (!parse_rate(optarg, &alerts)) {
                bad_rate = "--alerts-per-day";
                bad_arg = optarg;
            }
            break;
        case 'I':
            if (!parse_rate(optarg, &incidents)) {
                bad_rate = "--incidents-per-day";
                bad_arg = optarg;
            }
            break;
        case 'P': policy = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    const char *bad = NULL;
    if (!est && optind >= argc)
        bad = "INCIDENT_ID missing";
    else if ((!est && optind != argc - 1) || (est && optind != argc))
        bad = est ? "--estimate takes no INCIDENT_ID"
                  : "one INCIDENT_ID at a time";
    if (bad_rate && !bad) {
        fprintf(stderr, "socpilot analyze: %s %s: expected a number, 0 or "
                "more\n%s", bad_rate, bad_arg, usage);
        return 2;
    }
    if (bad) {
        fprintf(stderr, "socpilot analyze: %s\n%s", bad, usage);
        return 2;
    }
    struct sp_config *cfg = load_config(co);
    if (!cfg)
        return 1;
    int rc = 1;
    if (est) {
        rc = estimate(cfg, alerts, incidents, policy);
        sp_config_free(cfg);
        return rc;
    }
    const char *id = argv[optind];
    struct sp_error err = {0};
    struct sp_llm_opts lo;
    struct sp_analysis_opts ao;
    struct sp_analysis_prompts *prompts = NULL;
    struct sp_llm *c = NULL;
    struct sp_analysis_job *job = NULL;
    struct an_snap snap = {0};
    struct sp_redis_opts ro;
    sp_redis_opts_from_config(cfg, &ro);
    struct sp_redis *r = sp_redis_new(&ro);
    if (sp_llm_opts_from_config(cfg, &lo, &err) ||
        sp_analysis_opts_from_config(cfg, &ao, &err)) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        goto out;
    }
    prompts = sp_analysis_prompts_load(sp_config_str(cfg, "analysis.prompts_dir"),
                                       sp_config_str(cfg, "analysis.schema_file"),
                                       &err);
    if (!prompts) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        goto out;
    }
    if (!r || sp_redis_connect(r, &err)) {
        fprintf(stderr, "socpilot analyze: redis: %s\n", err.msg);
        goto out;
    }
    char prefix[CORR_PREFIX_MAX];
    int f = corr_find_incident(r, sp_config_str(cfg, "correlate.key_prefix"),
                               tenant, id, prefix, sizeof(prefix));
    if (f != 1) {
        fprintf(stderr, "socpilot analyze: %s: %s\n", id, corr_find_error(f));
        goto out;
    }
    enum sp_err e = an_read(r, prefix, id,
                            sp_config_int(cfg, "correlate.snapshot_why"),
                            (size_t)sp_config_int(cfg, "correlate.snapshot_max"),
                            NULL, 0, &snap);
    if (e) {
        fprintf(stderr, "socpilot analyze: %s: %s\n", id,
                e == SP_ERR_NOTFOUND ? "no such incident" : sp_strerror(e));
        goto out;
    }
    /* The dry run formats with a client even when llm.enabled is false, so
     * the exact body can be checked before turning it on. */
    struct sp_llm_opts fo = lo;
    if (dry && !fo.enabled) {
        fo.enabled = true;
        if (!fo.base_url || !*fo.base_url)
            fo.base_url = "https://api.openai.com/v1";
        if (!fo.model || !*fo.model)
            fo.model = "gpt-4o-mini";
    }
    if (fo.enabled && !(c = sp_llm_new(&fo, NULL, &err))) {
        fprintf(stderr, "socpilot analyze: llm: %s\n", err.msg);
        goto out;
    }
    job = sp_analysis_job_new(snap.json, snap.len, &ao, prompts, &err);
    if (!job) {
        fprintf(stderr, "socpilot analyze: %s\n", err.msg);
        goto out;
    }
    if (dry) {
        print_dry_run(c, job, prompts);
        rc = 0;
        goto out;
    }
    if (!lo.enabled)
        sp_analysis_job_fallback(job, "disabled");
    else
        run_now(c, job, prompts, lo.timeout_ms * (lo.max_retries + 2));
    struct sp_buf b;
    sp_buf_init(&b, 0);
    if (sp_analysis_job_result(job, &b) == SP_OK && b.data) {
        printf("%s\n", b.data);
        rc = 0;
    }
    sp_buf_fini(&b);
out:
    sp_analysis_job_free(job);
    sp_llm_free(c);
    an_snap_fini(&snap);
    sp_analysis_prompts_free(prompts);
    sp_redis_free(r);
    sp_config_free(cfg);
    return rc;
}

int sp_cmd_analyze(int argc, char **argv)
{
    struct sp_cli_common co = {0};
    argc = sp_cli_parse_common(argc, argv, &co);
    int rc = argc < 0 ? 2 : analyze_cmd(argc, argv, &co);
    free(co.sets);
    return rc;
}
