/*
 * analysis.c - the analysis module's front: the analysis.* configuration
 * keys and options, the policy check (every incident / minimum severity /
 * on demand), the public template entry point, and the cost estimate
 * behind `socpilot analyze --estimate`.
 *
 * The rest of the module is described in analysis.h and analysis_int.h.
 * Options are read once at start-up; everything else is a pure function.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

const struct sp_cfg_key sp_analysis_keys[] = {
    {"analysis.policy", SP_CFG_ENUM, "every", 0, 0,
     "Which incidents are analysed: every new or changed one, those at or "
     "above analysis.min_severity, or only on demand (socpilot analyze ID)",
     0, "every|min_severity|on_demand"},
    {"analysis.min_severity", SP_CFG_ENUM, "medium", 0, 0,
     "Lowest incident severity analysed by the min_severity policy", 0,
     "informational|low|medium|high"},
    {"analysis.context_tokens", SP_CFG_INT, "6000", 500, 200000,
     "Token budget of one prompt's incident context (estimated as bytes/4); "
     "bigger incidents are summarised in batches and merged", 0, NULL},
    {"analysis.max_batches", SP_CFG_INT, "6", 1, 32,
     "Most partial summaries of one big incident (1 = never split: the "
     "context says what was left out)", 0, NULL},
    {"analysis.output_tokens", SP_CFG_INT, "1500", 100, 32000,
     "Completion tokens allowed per call", 0, NULL},
    {"analysis.field_max", SP_CFG_SIZE, "2000", 64, 65536,
     "Longest alert-derived string put in a prompt (longer ones are cut "
     "and marked)", 0, NULL},
    {"analysis.timeline_max", SP_CFG_INT, "50", 5, 1000,
     "Events in the prompt's timeline (first and last kept)", 0, NULL},
    {"analysis.max_alerts", SP_CFG_INT, "1000", 1, 100000,
     "Alerts read from one incident snapshot", 0, NULL},
    {"analysis.max_entities", SP_CFG_INT, "2000", 1, 100000,
     "Entities read from one incident snapshot", 0, NULL},
    {"analysis.redact", SP_CFG_LIST, "secrets", 0, 0,
     "What is redacted before a prompt leaves the process: secrets "
     "(passwords, tokens, keys, connection strings), emails", 0, NULL},
    {"analysis.anonymize", SP_CFG_LIST, "", 0, 0,
     "Field types replaced by placeholders (HOST_1, USER_2...) in prompts "
     "and restored in answers: host, user, email, ip", 0, NULL},
    {"analysis.high_score", SP_CFG_INT, "50", 0, 100,
     "Impact score from which a 'benign, no action' answer is flagged "
     "untrusted_conclusion", 0, NULL},
    {"analysis.prompts_dir", SP_CFG_STR, "config/prompts", 0, 0,
     "Directory of the prompt templates (system, summary, partial, merge, "
     "repair .txt)", 0, NULL},
    {"analysis.schema_file", SP_CFG_STR, "schema/analysis.schema.json", 0, 0,
     "JSON Schema the model's answer must match (sent as response_format "
     "and validated locally)", 0, NULL},
};
const size_t sp_analysis_n_keys = SP_ARRAY_SIZE(sp_analysis_keys);

void sp_analysis_opts_default(struct sp_analysis_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->policy = SP_ANALYSIS_EVERY;
    o->min_severity = SP_SEV_MEDIUM;
    o->context_tokens = 6000;
    o->max_batches = 6;
    o->output_tokens = 1500;
    o->field_max = 2000;
    o->timeline_max = 50;
    o->max_alerts = 1000;
    o->max_entities = 2000;
    o->redact = SP_REDACT_SECRETS;
    o->anonymize = 0;
    o->high_score = 50;
    o->model = NULL;
}

enum sp_err sp_analysis_opts_from_config(const struct sp_config *cfg,
                                         struct sp_analysis_opts *o,
                                         struct sp_error *err)
{
    sp_analysis_opts_default(o);
    const char *pol = sp_config_str(cfg, "analysis.policy");
    o->policy = strcmp(pol, "min_severity") == 0 ? SP_ANALYSIS_MIN_SEVERITY
              : strcmp(pol, "on_demand") == 0    ? SP_ANALYSIS_ON_DEMAND
                                                 : SP_ANALYSIS_EVERY;
    o->min_severity = sp_severity_parse(sp_config_str(cfg,
                                                      "analysis.min_severity"));
    o->context_tokens = (size_t)sp_config_int(cfg, "analysis.context_tokens");
    o->max_batches = (unsigned)sp_config_int(cfg, "analysis.max_batches");
    o->output_tokens = (int)sp_config_int(cfg, "analysis.output_tokens");
    o->field_max = (size_t)sp_config_int(cfg, "analysis.field_max");
    o->timeline_max = (unsigned)sp_config_int(cfg, "analysis.timeline_max");
    o->max_alerts = (unsigned)sp_config_int(cfg, "analysis.max_alerts");
    o->max_entities = (unsigned)sp_config_int(cfg, "analysis.max_entities");
    o->high_score = (int)sp_config_int(cfg, "analysis.high_score");

    const char *const *items;
    size_t n = sp_config_list(cfg, "analysis.redact", &items);
    o->redact = 0;
    for (size_t i = 0; i < n; i++) {
        if (!*items[i] || strcmp(items[i], "none") == 0)
            continue;
        if (strcmp(items[i], "secrets") == 0)
            o->redact |= SP_REDACT_SECRETS;
        else if (strcmp(items[i], "emails") == 0)
            o->redact |= SP_REDACT_EMAILS;
        else
            return sp_error_set(err, SP_ERR_CONFIG,
                                "analysis.redact: unknown class \"%s\" "
                                "(secrets, emails)", items[i]);
    }
    n = sp_config_list(cfg, "analysis.anonymize", &items);
    for (size_t i = 0; i < n; i++) {
        if (!*items[i] || strcmp(items[i], "none") == 0)
            continue;
        if (strcmp(items[i], "host") == 0)
            o->anonymize |= SP_ANON_HOST;
        else if (strcmp(items[i], "user") == 0)
            o->anonymize |= SP_ANON_USER;
        else if (strcmp(items[i], "email") == 0)
            o->anonymize |= SP_ANON_EMAIL;
        else if (strcmp(items[i], "ip") == 0)
            o->anonymize |= SP_ANON_IP;
        else
            return sp_error_set(err, SP_ERR_CONFIG,
                                "analysis.anonymize: unknown field type "
                                "\"%s\" (host, user, email, ip)", items[i]);
    }
    return SP_OK;
}

bool sp_analysis_wanted(const struct sp_analysis_opts *o,
                        const struct sp_json *inc, bool on_demand)
{
    if (on_demand)
        return true;
    switch (o->policy) {
    case SP_ANALYSIS_EVERY:
        return true;
    case SP_ANALYSIS_ON_DEMAND:
        return false;
    case SP_ANALYSIS_MIN_SEVERITY: {
        int sev = sp_severity_parse(sp_json_str(inc, "severity"));
        sp_json_foreach(sp_json_get(inc, "alerts"), al) {
            int s = sp_severity_parse(sp_json_str(al, "severity"));
            sev = SP_MAX(sev, s);
        }
        return sev >= o->min_severity;
    }
    }
    return false;
}

enum sp_err sp_analysis_template(const struct sp_json *inc,
                                 const struct sp_analysis_opts *o,
                                 const char *reason, struct sp_buf *out)
{
    if (!inc || inc->type != SP_JSON_OBJECT || !inc->src)
        return SP_ERR_INVALID;
    struct sp_error err;
    struct sp_analysis_job *job = sp_analysis_job_new(inc->src, inc->src_len,
                                                      o, NULL, &err);
    if (!job)
        return err.code ? err.code : SP_ERR_INVALID;
    sp_analysis_job_fallback(job, reason);
    enum sp_err e = sp_analysis_job_result(job, out);
    sp_analysis_job_free(job);
    return e;
}

/* ---- estimate ----------------------------------------------------------- */

void sp_analysis_estimate_params_default(struct sp_analysis_estimate_params *p)
{
    p->share_at_min_severity = 0.3;
    p->analyses_per_incident = 1.5;
    p->on_demand_per_day = 20;
    p->tokens_per_alert = 120;
    p->prompt_overhead = 1500;
    p->completion_tokens = 700;
}

void sp_analysis_estimate(enum sp_analysis_policy policy, double alerts_per_day,
                          double incidents_per_day,
                          const struct sp_analysis_opts *o,
                          const struct sp_analysis_estimate_params *p,
                          struct sp_analysis_estimate *out)
{
    struct sp_analysis_estimate_params def;
    if (!p) {
        sp_analysis_estimate_params_default(&def);
        p = &def;
    }
    struct sp_analysis_opts od;
    if (!o) {
        sp_analysis_opts_default(&od);
        o = &od;
    }
    memset(out, 0, sizeof(*out));
    double apd = alerts_per_day > 0 ? alerts_per_day : 0;
    double ipd = incidents_per_day > 0 ? incidents_per_day : 0;
    switch (policy) {
    case SP_ANALYSIS_EVERY:
        out->incidents_analysed = ipd * p->analyses_per_incident;
        break;
    case SP_ANALYSIS_MIN_SEVERITY:
        out->incidents_analysed = ipd * p->share_at_min_severity *
                                  p->analyses_per_incident;
        break;
    case SP_ANALYSIS_ON_DEMAND:
        out->incidents_analysed = p->on_demand_per_day;
        break;
    }
    out->alerts_per_incident = ipd > 0 ? apd / ipd : 0;
    double ctx_need = out->alerts_per_incident * p->tokens_per_alert;
    double budget = (double)(o->context_tokens ? o->context_tokens : 6000);
    double calls, prompt;
    if (ctx_need <= budget || o->max_batches <= 1) {
        calls = 1;
        prompt = p->prompt_overhead + fmin(ctx_need, budget);
    } else {
        /* Alerts get ~45% of a batch's budget (see an_plan). */
        double batches = fmin((double)o->max_batches,
                              ceil(ctx_need / (budget * 0.45)));
        calls = batches + 1;
        prompt = batches * (p->prompt_overhead + budget) +
                 (p->prompt_overhead + budget / 4 +
                  batches * p->completion_tokens);
    }
    out->calls_per_incident = calls;
    out->calls = out->incidents_analysed * calls;
    out->prompt_tokens = out->incidents_analysed * prompt;
    out->completion_tokens = out->incidents_analysed * calls *
                             p->completion_tokens;
    out->total_tokens = out->prompt_tokens + out->completion_tokens;
}
