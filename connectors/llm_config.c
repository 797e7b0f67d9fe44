/*
 * llm_config.c - the LLM connector's configuration and instrumentation:
 * the llm.* key table (the documented example config and CONFIG docs come
 * from it), the options filled from a validated config with the checks a
 * key table cannot express, the failure-kind names, and the llm_* metrics.
 *
 * Options are read on the start-up thread; metric registration happens
 * once per client, on its owner thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_int.h"

const struct sp_cfg_key sp_llm_keys[] = {
    {"llm.enabled", SP_CFG_BOOL, "false", 0, 0,
     "Send incidents to an LLM; when false the built-in template writes "
     "the analysis", 0, NULL},
    {"llm.provider", SP_CFG_ENUM, "openai", 0, 0,
     "openai (also Ollama, vLLM, llama.cpp: any OpenAI-compatible server) "
     "or azure (Azure OpenAI)", 0, "openai|azure"},
    {"llm.base_url", SP_CFG_STR, "https://api.openai.com/v1", 0, 0,
     "OpenAI: the API base URL (ending in /v1); azure: the resource "
     "endpoint, e.g. https://NAME.openai.azure.com", 0, NULL},
    {"llm.model", SP_CFG_STR, "gpt-4o-mini", 0, 0,
     "Model name (OpenAI-compatible servers; optional for azure)", 0, NULL},
    {"llm.deployment", SP_CFG_STR, "", 0, 0,
     "Azure OpenAI deployment name", 0, NULL},
    {"llm.api_version", SP_CFG_STR, "2024-10-21", 0, 0,
     "Azure OpenAI api-version query parameter", 0, NULL},
    {"llm.api_key", SP_CFG_STR, "", 0, 0,
     "API key (use ${ENV} or ${file:PATH}); empty for local servers "
     "without auth", SP_CFG_SECRET, NULL},
    {"llm.ca_file", SP_CFG_STR, "", 0, 0,
     "CA bundle to verify the server with; empty = the system store", 0,
     NULL},
    {"llm.tls_verify", SP_CFG_BOOL, "true", 0, 0,
     "Verify the server's TLS certificate and name (leave on)", 0, NULL},
    {"llm.proxy", SP_CFG_STR, "", 0, 0,
     "HTTP(S) proxy URL; empty = from the environment (masked in dumps: "
     "it may carry user:password@)", SP_CFG_SECRET, NULL},
    {"llm.timeout", SP_CFG_DURATION, "60s", 100, 600000,
     "Timeout of one HTTP attempt, connect to last byte", 0, NULL},
    {"llm.connect_timeout", SP_CFG_DURATION, "10s", 100, 120000,
     "Timeout for connecting (TCP and TLS)", 0, NULL},
    {"llm.max_retries", SP_CFG_INT, "3", 0, 20,
     "Retries after the first attempt for 429, 5xx, timeouts and "
     "connection errors", 0, NULL},
    {"llm.backoff_base", SP_CFG_DURATION, "500ms", 1, 600000,
     "First retry waits up to this long (exponential, full jitter)", 0,
     NULL},
    {"llm.backoff_max", SP_CFG_DURATION, "30s", 1, 3600000,
     "Longest backoff between retries", 0, NULL},
    {"llm.retry_after_max", SP_CFG_DURATION, "60s", 0, 3600000,
     "Longest server-requested wait (Retry-After, x-ratelimit-reset-*) "
     "honoured in place; longer ones end the request as retry-later", 0,
     NULL},
    {"llm.requests_per_minute", SP_CFG_INT, "0", 0, 1000000,
     "Client-side budget of requests per minute (0 = unlimited); over it "
     "callers fall back to the template", 0, NULL},
    {"llm.tokens_per_minute", SP_CFG_INT, "0", 0, 100000000,
     "Client-side budget of tokens per minute (prompt estimate + "
     "max_tokens; 0 = unlimited)", 0, NULL},
    {"llm.breaker_failures", SP_CFG_INT, "5", 1, 1000,
     "Consecutive failed attempts (5xx, timeouts, connection errors) that "
     "open the circuit breaker", 0, NULL},
    {"llm.breaker_cooldown", SP_CFG_DURATION, "30s", 1, 3600000,
     "How long the breaker stays open before one probe request", 0, NULL},
    {"llm.max_concurrency", SP_CFG_INT, "4", 1, 256,
     "Requests on the wire at once", 0, NULL},
    {"llm.max_queue", SP_CFG_INT, "1000", 1, 100000,
     "Requests accepted and not finished; past it submit says limit", 0,
     NULL},
    {"llm.response_format", SP_CFG_ENUM, "auto", 0, 0,
     "Structured output: auto (json_schema, dropped if the server refuses "
     "it), json_schema, json_object or none; answers are validated "
     "locally in every case", 0, "auto|json_schema|json_object|none"},
    {"llm.max_tokens_param", SP_CFG_ENUM, "max_tokens", 0, 0,
     "Name of the completion cap field (newer OpenAI models want "
     "max_completion_tokens)", 0, "max_tokens|max_completion_tokens"},
    {"llm.max_tokens", SP_CFG_INT, "1500", 1, 200000,
     "Completion tokens per request", 0, NULL},
    {"llm.temperature", SP_CFG_STR, "0.2", 0, 0,
     "Sampling temperature 0..2; empty = server default", 0, NULL},
    {"llm.max_response", SP_CFG_SIZE, "1MiB", 1024, (int64_t)64 << 20,
     "Largest response body accepted", 0, NULL},
};
const size_t sp_llm_n_keys = SP_ARRAY_SIZE(sp_llm_keys);

static const char *const fail_names[SP_LLM_FAIL__COUNT] = {
    [SP_LLM_FAIL_NONE] = "none",
    [SP_LLM_FAIL_TRANSPORT] = "transport",
    [SP_LLM_FAIL_TIMEOUT] = "timeout",
    [SP_LLM_FAIL_RATE_LIMITED] = "rate_limited",
    [SP_LLM_FAIL_SERVER] = "server",
    [SP_LLM_FAIL_AUTH] = "auth",
    [SP_LLM_FAIL_REQUEST] = "request",
    [SP_LLM_FAIL_RESPONSE] = "response",
    [SP_LLM_FAIL_BUDGET] = "budget",
    [SP_LLM_FAIL_BREAKER] = "breaker",
    [SP_LLM_FAIL_CANCELLED] = "cancelled",
};

const char *sp_llm_fail_name(enum sp_llm_fail kind)
{
    return (unsigned)kind < SP_LLM_FAIL__COUNT ? fail_names[kind] : "unknown";
}

/* ---- options ------------------------------------------------------------ */

void sp_llm_opts_default(struct sp_llm_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->enabled = false;
    o->provider = SP_LLM_OPENAI;
    o->base_url = "https://api.openai.com/v1";
    o->model = "gpt-4o-mini";
    o->deployment = "";
    o->api_version = "2024-10-21";
    o->api_key = "";
    o->ca_file = "";
    o->proxy = "";
    o->tls_verify = true;
    o->timeout_ms = 60000;
    o->connect_timeout_ms = 10000;
    o->max_retries = 3;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 30000;
    o->retry_after_max_ms = 60000;
    o->breaker_failures = 5;
    o->breaker_cooldown_ms = 30000;
    o->max_concurrency = 4;
    o->max_queue = 1000;
    o->response_format = SP_LLM_RF_AUTO;
    o->max_tokens = 1500;
    o->temperature = 0.2;
    o->max_response = (size_t)1 << 20;
    o->log_comp = "llm";
}

static int cfg_int(const struct sp_config *cfg, const char *key)
{
    int64_t v = sp_config_int(cfg, key);
    return v > INT32_MAX ? INT32_MAX : (int)v;
}

enum sp_err sp_llm_opts_from_config(const struct sp_config *cfg,
                                    struct sp_llm_opts *o,
                                    struct sp_error *err)
{
    sp_llm_opts_default(o);
    o->enabled = sp_config_bool(cfg, "llm.enabled");
    o->provider = strcmp(sp_config_str(cfg, "llm.provider"), "azure") == 0
                      ? SP_LLM_AZURE : SP_LLM_OPENAI;
    o->base_url = sp_config_str(cfg, "llm.base_url");
    o->model = sp_config_str(cfg, "llm.model");
    o->deployment = sp_config_str(cfg, "llm.deployment");
    o->api_version = sp_config_str(cfg, "llm.api_version");
    o->api_key = sp_config_str(cfg, "llm.api_key");
    o->ca_file = sp_config_str(cfg, "llm.ca_file");
    o->proxy = sp_config_str(cfg, "llm.proxy");
    o->tls_verify = sp_config_bool(cfg, "llm.tls_verify");
    o->timeout_ms = cfg_int(cfg, "llm.timeout");
    o->connect_timeout_ms = cfg_int(cfg, "llm.connect_timeout");
    o->max_retries = cfg_int(cfg, "llm.max_retries");
    o->backoff_base_ms = cfg_int(cfg, "llm.backoff_base");
    o->backoff_max_ms = cfg_int(cfg, "llm.backoff_max");
    o->retry_after_max_ms = cfg_int(cfg, "llm.retry_after_max");
    o->requests_per_minute = cfg_int(cfg, "llm.requests_per_minute");
    o->tokens_per_minute = cfg_int(cfg, "llm.tokens_per_minute");
    o->breaker_failures = cfg_int(cfg, "llm.breaker_failures");
    o->breaker_cooldown_ms = cfg_int(cfg, "llm.breaker_cooldown");
    o->max_concurrency = cfg_int(cfg, "llm.max_concurrency");
    o->max_queue = cfg_int(cfg, "llm.max_queue");
    const char *rf = sp_config_str(cfg, "llm.response_format");
    o->response_format = strcmp(rf, "json_schema") == 0 ? SP_LLM_RF_JSON_SCHEMA
                       : strcmp(rf, "json_object") == 0 ? SP_LLM_RF_JSON_OBJECT
                       : strcmp(rf, "none") == 0        ? SP_LLM_RF_NONE
                                                        : SP_LLM_RF_AUTO;
    o->max_completion_tokens =
        strcmp(sp_config_str(cfg, "llm.max_tokens_param"),
               "max_completion_tokens") == 0;
    o->max_tokens = cfg_int(cfg, "llm.max_tokens");
    o->max_response = (size_t)sp_config_int(cfg, "llm.max_response");
    const char *t = sp_config_str(cfg, "llm.temperature");
    if (!t || !*t) {
        o->temperature = -1;
    } else {
        char *end = NULL;
        double v = strtod(t, &end);
        if (end == t || *end || !(v >= 0 && v <= 2))
            return sp_error_set(err, SP_ERR_CONFIG,
                                "llm.temperature: must be a number between "
                                "0 and 2 (got \"%s\")", t);
        o->temperature = v;
    }
    if (o->backoff_max_ms < o->backoff_base_ms)
        return sp_error_set(err, SP_ERR_CONFIG,
                            "llm.backoff_max: must not be below "
                            "llm.backoff_base");
    if (!o->enabled)
        return SP_OK;
    if (!o->base_url || !*o->base_url)
        return sp_error_set(err, SP_ERR_CONFIG,
                            "llm.base_url: required when llm.enabled");
    if (o->provider == SP_LLM_AZURE) {
        if (!*o->deployment)
            return sp_error_set(err, SP_ERR_CONFIG,
                                "llm.deployment: required for provider "
                                "azure");
        if (!*o->api_version)
            return sp_error_set(err, SP_ERR_CONFIG,
                                "llm.api_version: required for provider "
                                "azure");
    } else if (!o->model || !*o->model) {
        return sp_error_set(err, SP_ERR_CONFIG,
                            "llm.model: required for provider openai");
    }
    return SP_OK;
}

/* ---- metrics ------------------------------------------------------------ */

void llm_metrics_register(struct llm_metrics *x, struct sp_metrics *m)
{
    if (!m)
        return;
    x->ok = sp_metrics_counter(m, "llm_calls_total",
                               "LLM requests completed, by outcome",
                               "outcome=\"ok\"");
    x->failed = sp_metrics_counter(m, "llm_calls_total", NULL,
                                   "outcome=\"error\"");
    for (int k = 1; k < SP_LLM_FAIL__COUNT; k++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", fail_names[k]);
        x->fail[k] = sp_metrics_counter(m, "llm_failures_total",
                                        "LLM requests that failed, by kind",
                                        labels);
    }
    x->attempts = sp_metrics_counter(m, "llm_attempts_total",
                                     "HTTP requests sent to the LLM", NULL);
    x->retries = sp_metrics_counter(m, "llm_retries_total",
                                    "LLM attempts that were retried", NULL);
    x->tok_prompt = sp_metrics_counter(m, "llm_tokens_total",
                                       "Tokens reported by the LLM's usage",
                                       "type=\"prompt\"");
    x->tok_completion = sp_metrics_counter(m, "llm_tokens_total", NULL,
                                           "type=\"completion\"");
    x->rej_requests = sp_metrics_counter(
        m, "llm_budget_rejections_total",
        "Requests refused by the client-side budget or queue bound",
        "budget=\"requests\"");
    x->rej_tokens = sp_metrics_counter(m, "llm_budget_rejections_total",
                                       NULL, "budget=\"tokens\"");
    x->rej_queue = sp_metrics_counter(m, "llm_budget_rejections_total", NULL,
                                      "budget=\"queue\"");
    x->rej_breaker = sp_metrics_counter(m, "llm_breaker_rejections_total",
                                        "Requests refused while the circuit "
                                        "breaker was open", NULL);
    x->rf_fallbacks = sp_metrics_counter(
        m, "llm_response_format_fallbacks_total",
        "Requests sent again without response_format", NULL);
    static const double bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5,
                                    10, 20, 30, 60, 120};
    x->latency = sp_metrics_hist(m, "llm_latency_seconds",
                                 "Duration of one LLM HTTP attempt", NULL,
                                 bounds, SP_ARRAY_SIZE(bounds));
    x->breaker = sp_metrics_gauge(m, "llm_breaker_state",
                                  "Circuit breaker: 0 closed, 1 open, "
                                  "2 half-open", NULL);
    x->inflight = sp_metrics_gauge(m, "llm_inflight",
                                   "LLM requests on the wire", NULL);
    x->queued = sp_metrics_gauge(m, "llm_queued",
                                 "LLM requests accepted and not finished",
                                 NULL);
}