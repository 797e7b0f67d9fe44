/*
 * test_llm.c - unit tests for connectors/llm*.c: the pure policy pieces
 * (buckets, breaker, backoff, header parsing, error mapping, request
 * bytes) and the client against tests/fakes/fake_openai.py on a free
 * loopback port: success with usage, 429 storms honouring Retry-After and
 * x-ratelimit resets, 500 then success, hangs past the timeout, malformed
 * bodies, the Azure path and api-key, a wrong key (401, not retried),
 * budget exhaustion without a request, the circuit breaker, 20 requests
 * in flight at once, response_format auto-detection, key masking, wakeup.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "llm.h"
#include "llm_int.h"
#include "log.h"
#include "t.h"
#include "tests/fakes/fake_openai.h"

#define KEY "sk-test-0123456789abcdef"

static struct fake_openai fake;
static bool fake_up;

/* ---- helpers ------------------------------------------------------------ */

struct outcome {
    int done;
    enum sp_err err;
    enum sp_llm_fail fail;
    int status, attempts;
    int64_t pt, ct, tt, retry_after_ms, latency_ms;
    bool schema_sent;
    char content[4096];
    char model[64];
    char error[256];
};

static void on_done(const struct sp_llm_result *res, void *ud)
{
    struct outcome *o = ud;
    o->done++;
    o->err = res->err;
    o->fail = res->fail;
    o->status = res->http_status;
    o->attempts = res->attempts;
    o->pt = res->prompt_tokens;
    o->ct = res->completion_tokens;
    o->tt = res->total_tokens;
    o->retry_after_ms = res->retry_after_ms;
    o->latency_ms = res->latency_ms;
    o->schema_sent = res->schema_sent;
    snprintf(o->content, sizeof(o->content), "%.*s",
             (int)SP_MIN(res->content_len, sizeof(o->content) - 1),
             res->content ? res->content : "");
    snprintf(o->model, sizeof(o->model), "%s", res->model ? res->model : "");
    snprintf(o->error, sizeof(o->error), "%s", res->error);
}

static const char *schema_text =
    "{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"}}}";

static struct sp_llm_msg msgs2[] = {
    {"system", "You are a test."},
    {"user", "Say something as JSON."},
};

static struct sp_llm_req req_default(void)
{
    struct sp_llm_req r = {msgs2, 2, "answer", schema_text, 100, "test"};
    return r;
}

static void opts_for_fake(struct sp_llm_opts *o)
{
    sp_llm_opts_default(o);
    o->enabled = true;
    static char base[160];
    snprintf(base, sizeof(base), "%s/v1", fake.base);
    o->base_url = base;
    o->model = "test-model";
    o->api_key = KEY;
    o->timeout_ms = 5000;
    o->connect_timeout_ms = 2000;
    o->backoff_base_ms = 10;
    o->backoff_max_ms = 50;
    o->max_concurrency = 32;
}

/* Polls until `*count >= n` or the deadline; returns the elapsed ms. */
static int64_t run_until(struct sp_llm *c, const int *count, int n,
                         int timeout_ms)
{
    int64_t t0 = sp_now_ms(), deadline = t0 + timeout_ms;
    while (*count < n && sp_now_ms() < deadline)
        sp_llm_poll(c, 100);
    return sp_now_ms() - t0;
}

static bool need_fake(void)
{
    if (!fake_up)
        return false;
    return fake_openai_control(&fake, "{\"reset\":true}");
}

#define NEED_FAKE()                                                         \
    do {                                                                    \
        if (!need_fake())                                                   \
            T_SKIP(fake.why[0] ? fake.why : "fake server not running");     \
    } while (0)

/* ---- pure pieces -------------------------------------------------------- */

static void test_durations(void)
{
    int64_t ms = -1;
    T_OK(llm_parse_duration("1s", &ms));
    T_EQ_INT(ms, 1000);
    T_OK(llm_parse_duration("6m0s", &ms));
    T_EQ_INT(ms, 360000);
    T_OK(llm_parse_duration("20ms", &ms));
    T_EQ_INT(ms, 20);
    T_OK(llm_parse_duration("1h2m3.5s", &ms));
    T_EQ_INT(ms, 3723500);
    T_OK(llm_parse_duration("0.25", &ms));
    T_EQ_INT(ms, 250);
    T_OK(!llm_parse_duration("soon", &ms));
    T_OK(!llm_parse_duration("", &ms));
    T_OK(!llm_parse_duration("5x", &ms));

    int64_t now = 1700000000000;    /* 2023-11-14T22:13:20Z */
    T_OK(llm_parse_retry_after("2", now, &ms));
    T_EQ_INT(ms, 2000);
    T_OK(llm_parse_retry_after(" 1.5 ", now, &ms));
    T_EQ_INT(ms, 1500);
    T_OK(llm_parse_retry_after("Tue, 14 Nov 2023 22:13:25 GMT", now, &ms));
    T_EQ_INT(ms, 5000);
    T_OK(llm_parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now, &ms));
    T_EQ_INT(ms, 0);
    T_OK(!llm_parse_retry_after("whenever", now, &ms));

    struct llm_hdrs h;
    llm_hdrs_reset(&h);
    const char *lines[] = {"HTTP/1.1 429 Too Many Requests\r\n",
                           "Retry-After: 3\r\n",
                           "x-ratelimit-remaining-requests: 0\r\n",
                           "X-RateLimit-Reset-Requests: 1m30s\r\n",
                           "x-ratelimit-remaining-tokens: 1200\r\n",
                           "x-ratelimit-reset-tokens: 150ms\r\n"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(lines); i++)
        llm_hdrs_line(&h, lines[i], strlen(lines[i]), now);
    T_EQ_INT(h.retry_after_ms, 3000);
    T_EQ_INT(h.remaining_requests, 0);
    T_EQ_INT(h.reset_requests_ms, 90000);
    T_EQ_INT(h.remaining_tokens, 1200);
    T_EQ_INT(h.reset_tokens_ms, 150);
    const char *azure = "retry-after-ms: 1234\r\n";
    llm_hdrs_line(&h, azure, strlen(azure), now);
    T_EQ_INT(h.retry_after_ms, 1234);
    /* The finer hint wins whatever the order: a Retry-After after it (the
     * fake always sends it first) leaves it alone. */
    const char *late = "Retry-After: 7\r\n";
    llm_hdrs_line(&h, late, strlen(late), now);
    T_EQ_INT(h.retry_after_ms, 1234);
    const char *status = "HTTP/1.1 200 OK\r\n";
    llm_hdrs_line(&h, status, strlen(status), now);
    T_EQ_INT(h.retry_after_ms, -1);
}

static void test_backoff_bucket_breaker(void)
{
    uint64_t rng = 42;
    for (int retry = 0; retry < 12; retry++) {
        for (int i = 0; i < 50; i++) {
            int64_t d = llm_backoff_ms(100, 2000, retry, &rng);
            T_OK(d >= 0);
            T_OK(d <= SP_MIN(2000, 100 << SP_MIN(retry, 10)));
        }
    }
    struct llm_bucket b;
    llm_bucket_init(&b, 60, 0);          /* one per second */
    for (int i = 0; i < 60; i++)
        T_OK(llm_bucket_take(&b, 1, 0));
    T_OK(!llm_bucket_take(&b, 1, 0));
    T_EQ_INT(llm_bucket_wait_ms(&b, 1, 0), 1000);
    T_OK(llm_bucket_take(&b, 1, 1000));  /* refilled */
    /* ... by one only: 60 a minute is one a second, not more. */
    T_OK(!llm_bucket_take(&b, 1, 1000));
    T_OK(!llm_bucket_take(&b, 1, 1999));
    llm_bucket_adjust(&b, -500, 1000);   /* debt is bounded */
    T_OK(b.level >= -60);
    struct llm_bucket unl;
    llm_bucket_init(&unl, 0, 0);
    T_OK(llm_bucket_take(&unl, 1e9, 0));

    struct llm_breaker br = {.threshold = 2, .cooldown_ms = 100};
    bool probe;
    T_EQ_INT(llm_breaker_state(&br, 0), SP_LLM_BREAKER_CLOSED);
    llm_breaker_failure(&br, 0);
    T_EQ_INT(llm_breaker_state(&br, 0), SP_LLM_BREAKER_CLOSED);
    llm_breaker_failure(&br, 10);
    T_EQ_INT(llm_breaker_state(&br, 50), SP_LLM_BREAKER_OPEN);
    T_OK(!llm_breaker_allow(&br, 50, &probe));
    T_EQ_INT(llm_breaker_state(&br, 110), SP_LLM_BREAKER_HALF_OPEN);
    T_OK(llm_breaker_allow(&br, 110, &probe));
    T_OK(probe);
    T_OK(!llm_breaker_allow(&br, 111, &probe));    /* one probe only */
    llm_breaker_failure(&br, 120);                  /* probe failed */
    T_EQ_INT(llm_breaker_state(&br, 150), SP_LLM_BREAKER_OPEN);
    T_OK(llm_breaker_allow(&br, 221, &probe));
    llm_breaker_success(&br);
    T_EQ_INT(llm_breaker_state(&br, 222), SP_LLM_BREAKER_CLOSED);
}

static void test_classify(void)
{
    struct llm_verdict v;
    llm_classify(0, 200, NULL, &v);
    T_EQ_INT(v.err, SP_OK);
    llm_classify(0, 429, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_RETRY);
    T_OK(v.retriable && !v.breaker);
    llm_classify(0, 429, "insufficient_quota", &v);
    T_EQ_INT(v.err, SP_ERR_LIMIT);
    T_OK(!v.retriable);
    llm_classify(0, 401, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_CONFIG);
    T_EQ_INT(v.fail, SP_LLM_FAIL_AUTH);
    T_OK(!v.retriable);
    llm_classify(0, 503, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_REMOTE);
    T_OK(v.retriable && v.breaker);
    llm_classify(0, 400, "context_length_exceeded", &v);
    T_EQ_INT(v.err, SP_ERR_LIMIT);
    llm_classify(0, 400, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_INVALID);
    llm_classify(CURLE_OPERATION_TIMEDOUT, 0, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_TIMEOUT);
    T_OK(v.retriable);
    llm_classify(CURLE_COULDNT_CONNECT, 0, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_IO);
    T_EQ_INT(v.fail, SP_LLM_FAIL_TRANSPORT);
    llm_classify(CURLE_PEER_FAILED_VERIFICATION, 0, NULL, &v);
    T_EQ_INT(v.err, SP_ERR_CONFIG);
    T_OK(!v.retriable);
}

static void test_format(void)
{
    struct sp_llm_opts o;
    sp_llm_opts_default(&o);
    o.enabled = true;
    o.base_url = "https://api.example.test/v1/";
    o.model = "m1";
    o.api_key = KEY;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    T_OK(c != NULL);
    if (!c)
        return;
    struct sp_buf url, body;
    sp_buf_init(&url, 0);
    sp_buf_init(&body, 0);
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_format(c, &r, true, &url, &body), SP_OK);
    T_EQ_STR(url.data, "https://api.example.test/v1/chat/completions");
    T_CONTAINS(body.data, "\"model\":\"m1\"");
    T_CONTAINS(body.data, "\"role\":\"system\",\"content\":\"You are a test.\"");
    T_CONTAINS(body.data, "\"max_tokens\":100");
    T_CONTAINS(body.data, "\"temperature\":0.2");
    T_CONTAINS(body.data, "\"response_format\":{\"type\":\"json_schema\","
                          "\"json_schema\":{\"name\":\"answer\",\"strict\":"
                          "true,\"schema\":{\"type\":\"object\"");
    T_OK(strstr(body.data, KEY) == NULL);
    T_EQ_STR(sp_llm_auth_header(c), "Authorization");
    sp_buf_reset(&body);
    T_EQ_INT(sp_llm_format(c, &r, false, NULL, &body), SP_OK);
    T_OK(strstr(body.data, "response_format") == NULL);
    sp_llm_free(c);

    o.provider = SP_LLM_AZURE;
    o.base_url = "https://res.openai.azure.com";
    o.deployment = "gpt 4o";
    o.api_version = "2024-10-21";
    o.model = "";
    o.max_completion_tokens = true;
    c = sp_llm_new(&o, NULL, &err);
    T_OK(c != NULL);
    if (!c)
        return;
    sp_buf_reset(&url);
    sp_buf_reset(&body);
    T_EQ_INT(sp_llm_format(c, &r, true, &url, &body), SP_OK);
    T_EQ_STR(url.data, "https://res.openai.azure.com/openai/deployments/"
                       "gpt%204o/chat/completions?api-version=2024-10-21");
    T_OK(strstr(body.data, "\"model\"") == NULL);
    T_CONTAINS(body.data, "\"max_completion_tokens\":100");
    T_EQ_STR(sp_llm_auth_header(c), "api-key");
    T_EQ_INT(sp_llm_submit(c, &(struct sp_llm_req){msgs2, 2, "x", "{not json",
                                                   0, NULL},
                           on_done, NULL),
             SP_ERR_INVALID);
    sp_llm_free(c);
    sp_buf_fini(&url);
    sp_buf_fini(&body);

    o.enabled = false;
    c = sp_llm_new(&o, NULL, &err);
    r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, NULL), SP_ERR_STATE);
    sp_llm_free(c);
}

static void test_config(void)
{
    struct sp_config *cfg = sp_config_new();
    struct sp_error err;
    T_EQ_INT(sp_config_declare(cfg, sp_llm_keys, sp_llm_n_keys, &err), SP_OK);
    const char *yaml = "llm:\n  enabled: true\n  provider: azure\n"
                       "  base_url: https://x.openai.azure.com\n"
                       "  api_key: abcd1234\n  temperature: \"0\"\n";
    T_EQ_INT(sp_config_load_string(cfg, "t.yaml", yaml, strlen(yaml), &err),
             SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    struct sp_llm_opts o;
    T_EQ_INT(sp_llm_opts_from_config(cfg, &o, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "llm.deployment");
    T_EQ_INT(sp_config_set(cfg, "llm.deployment=dep1", &err), SP_OK);
    T_EQ_INT(sp_config_set(cfg, "llm.temperature=3", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_llm_opts_from_config(cfg, &o, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "llm.temperature");
    T_EQ_INT(sp_config_set(cfg, "llm.temperature=", &err), SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    T_EQ_INT(sp_llm_opts_from_config(cfg, &o, &err), SP_OK);
    T_OK(o.temperature < 0);
    T_EQ_INT(o.provider, SP_LLM_AZURE);
    T_EQ_STR(o.deployment, "dep1");
    T_OK(o.tls_verify);
    sp_config_free(cfg);
}

/* ---- against the fake --------------------------------------------------- */

static void test_success_usage(void)
{
    NEED_FAKE();
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, m, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    T_EQ_INT(sp_llm_pending(c), 1);
    run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.done, 1);
    T_EQ_INT(out.err, SP_OK);
    T_EQ_INT(out.status, 200);
    T_EQ_INT(out.attempts, 1);
    T_OK(out.schema_sent);
    T_CONTAINS(out.content, "\"assessment\"");
    T_EQ_STR(out.model, "test-model");
    /* The fake counts prompt tokens as message characters / 4. */
    size_t chars = strlen(msgs2[0].content) + strlen(msgs2[1].content);
    T_EQ_INT(out.pt, (int64_t)(chars / 4));
    T_OK(out.ct > 0);
    T_EQ_INT(out.tt, out.pt + out.ct);
    struct sp_llm_stats st;
    sp_llm_stats(c, &st);
    T_EQ_INT(st.ok, 1);
    T_EQ_INT(st.prompt_tokens, (uint64_t)out.pt);
    T_EQ_INT(sp_llm_pending(c), 0);

    struct sp_buf rec;
    sp_buf_init(&rec, 0);
    T_OK(fake_openai_records(&fake, &rec));
    T_CONTAINS(rec.data, "\"path\": \"/v1/chat/completions\"");
    T_CONTAINS(rec.data, "\"auth\": \"ok\"");
    T_CONTAINS(rec.data, "\"model\": \"test-model\"");
    T_CONTAINS(rec.data, "\"json_schema\"");
    sp_buf_fini(&rec);

    struct sp_buf text;
    sp_buf_init(&text, 0);
    sp_metrics_render(m, &text);
    T_CONTAINS(text.data, "socpilot_llm_calls_total{outcome=\"ok\"} 1");
    T_CONTAINS(text.data, "socpilot_llm_tokens_total{type=\"prompt\"}");
    T_CONTAINS(text.data, "socpilot_llm_latency_seconds_count 1");
    sp_buf_fini(&text);
    sp_llm_free(c);
    sp_metrics_free(m);
}

static void test_429_retry_after(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"queue\":[{\"mode\":\"429\",\"retry_after\":"
                               "\"1\"},{\"mode\":\"429\",\"retry_after\":"
                               "\"1\"}]}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    int64_t t0 = sp_now_ms();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 10000);
    int64_t elapsed = sp_now_ms() - t0;
    T_EQ_INT(out.err, SP_OK);
    T_EQ_INT(out.attempts, 3);
    /* Two Retry-After: 1 answers: at least 2 s between them, although the
     * jittered backoff alone would be <= 50 ms. */
    T_OK(elapsed >= 2000);
    struct sp_llm_stats st;
    sp_llm_stats(c, &st);
    T_EQ_INT(st.retries, 2);
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 3);

    /* No Retry-After, but "remaining 0, reset in 700ms". */
    T_OK(fake_openai_control(&fake, "{\"queue\":[{\"mode\":\"429\",\"headers\":"
                               "{\"x-ratelimit-reset-requests\":\"700ms\"}}]}"));
    struct outcome out2 = {0};
    t0 = sp_now_ms();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out2), SP_OK);
    run_until(c, &out2.done, 1, 5000);
    T_EQ_INT(out2.err, SP_OK);
    T_OK(sp_now_ms() - t0 >= 700);

    /* A server wait beyond llm.retry_after_max ends the call at once. */
    sp_llm_free(c);
    o.retry_after_max_ms = 500;
    c = sp_llm_new(&o, NULL, &err);
    T_OK(fake_openai_control(&fake, "{\"queue\":[{\"mode\":\"429\",\"retry_after\":"
                               "\"30\"}]}"));
    struct outcome out3 = {0};
    t0 = sp_now_ms();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out3), SP_OK);
    run_until(c, &out3.done, 1, 5000);
    T_EQ_INT(out3.err, SP_ERR_RETRY);
    T_EQ_INT(out3.fail, SP_LLM_FAIL_RATE_LIMITED);
    T_EQ_INT(out3.retry_after_ms, 30000);
    T_OK(sp_now_ms() - t0 < 3000);
    T_OK(sp_llm_retry_in_ms(c) > 0);      /* the client holds off too */
    /* ... but no longer than llm.retry_after_max: a server asking for 30 s
     * (or a day) must not stop every call for that long. */
    T_OK(sp_llm_retry_in_ms(c) <= 500);
    sp_llm_free(c);
}

/* A 429 with Retry-After: 2 holds the whole client for that long, not only
 * the call that got it (which, with no retries left, ends at once).  The
 * reset-requests hint that comes with it is 1 ms: only Retry-After can
 * make the hold last. */
static void test_429_holds_client(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"queue\":[{\"mode\":\"429\","
                               "\"retry_after\":\"2\",\"headers\":"
                               "{\"x-ratelimit-reset-requests\":\"1ms\"}}]}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.max_retries = 0;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.err, SP_ERR_RETRY);
    T_EQ_INT(out.retry_after_ms, 2000);
    T_OK(sp_llm_retry_in_ms(c) > 1000);
    sp_llm_free(c);
}

static void test_500_then_success(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"queue\":[\"500\",\"503\"]}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.err, SP_OK);
    T_EQ_INT(out.attempts, 3);
    T_EQ_INT(sp_llm_breaker_state(c), SP_LLM_BREAKER_CLOSED);

    /* Retries exhausted: the last error is reported. */
    T_OK(fake_openai_control(&fake, "{\"default\":\"500\"}"));
    o.max_retries = 1;
    sp_llm_free(c);
    c = sp_llm_new(&o, NULL, &err);
    struct outcome out2 = {0};
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out2), SP_OK);
    run_until(c, &out2.done, 1, 5000);
    T_EQ_INT(out2.err, SP_ERR_REMOTE);
    T_EQ_INT(out2.fail, SP_LLM_FAIL_SERVER);
    T_EQ_INT(out2.status, 500);
    T_EQ_INT(out2.attempts, 2);
    sp_llm_free(c);
}

/* A 5xx answer with Retry-After: the call's retry waits as asked, not
 * only the jittered backoff (<= 50 ms here).  Only 429 and 503 also hold
 * the whole client, so for a 500 the call's own wait is all there is. */
static void test_5xx_retry_after(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"queue\":[{\"mode\":\"500\","
                               "\"headers\":{\"Retry-After\":\"1\"}}]}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    int64_t t0 = sp_now_ms();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.err, SP_OK);
    T_EQ_INT(out.attempts, 2);
    T_OK(sp_now_ms() - t0 >= 1000);
    sp_llm_free(c);
}

static void test_hang_timeout(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"default\":{\"mode\":\"hang\",\"seconds\":5}}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.timeout_ms = 300;
    o.max_retries = 0;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    int64_t took = run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.err, SP_ERR_TIMEOUT);
    T_EQ_INT(out.fail, SP_LLM_FAIL_TIMEOUT);
    T_OK(took >= 300 && took < 4500);   /* well before the 5 s hang ends */
    sp_llm_free(c);
}

static void test_malformed_body(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"queue\":[\"malformed_body\"]}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.err, SP_ERR_REMOTE);
    T_EQ_INT(out.fail, SP_LLM_FAIL_RESPONSE);
    T_EQ_INT(out.attempts, 1);

    T_OK(fake_openai_control(&fake, "{\"queue\":[\"refusal\"]}"));
    struct outcome out2 = {0};
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out2), SP_OK);
    run_until(c, &out2.done, 1, 5000);
    T_EQ_INT(out2.err, SP_ERR_REMOTE);
    T_EQ_INT(out2.fail, SP_LLM_FAIL_RESPONSE);
    sp_llm_free(c);
}

static void test_azure(void)
{
    NEED_FAKE();
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.provider = SP_LLM_AZURE;
    o.base_url = fake.base;
    o.deployment = "soc-gpt";
    o.api_version = "2024-10-21";
    o.model = "";
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    T_EQ_INT(out.err, SP_OK);
    struct sp_buf rec;
    sp_buf_init(&rec, 0);
    T_OK(fake_openai_records(&fake, &rec));
    T_CONTAINS(rec.data, "\"path\": \"/openai/deployments/soc-gpt/chat/"
                         "completions\", \"auth\": \"ok\"");
    sp_buf_fini(&rec);
    sp_llm_free(c);

    /* Azure with the key in a Bearer header would be refused: check the
     * fake tells the two apart by sending OpenAI-style auth to Azure. */
    o.provider = SP_LLM_OPENAI;
    char base[200];
    snprintf(base, sizeof(base), "%s/openai/deployments/soc-gpt", fake.base);
    o.base_url = base;
    o.model = "x";
    c = sp_llm_new(&o, NULL, &err);
    struct outcome out2 = {0};
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out2), SP_OK);
    run_until(c, &out2.done, 1, 5000);
    T_EQ_INT(out2.status, 401);
    T_EQ_INT(out2.err, SP_ERR_CONFIG);
    sp_llm_free(c);
}

static void test_wrong_key(void)
{
    NEED_FAKE();
    struct sp_buf logbuf;
    sp_buf_init(&logbuf, 1 << 20);
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, NULL);
    sp_log_capture(&logbuf);
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.api_key = "sk-wrong-key-9876543210";
    o.max_retries = 3;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    sp_log_capture(NULL);
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, NULL);
    T_EQ_INT(out.status, 401);
    T_EQ_INT(out.err, SP_ERR_CONFIG);
    T_EQ_INT(out.fail, SP_LLM_FAIL_AUTH);
    T_EQ_INT(out.attempts, 1);
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 1);
    T_CONTAINS(logbuf.data, "HTTP 401");
    T_OK(strstr(logbuf.data, "sk-wrong-key-9876543210") == NULL);
    /* The fake echoes the key; the error handed to callers masks it. */
    T_CONTAINS(out.error, "Incorrect API key provided: ****");
    T_OK(strstr(out.error, "sk-wrong-key-9876543210") == NULL);
    sp_buf_fini(&logbuf);
    sp_llm_free(c);
}

/* An error message cut at 200 characters in the middle of the key it
 * echoes: the prefix left at the cut is masked too, in the error handed
 * to callers (published as fallback_reason) and in the log. */
static void test_key_at_cut(void)
{
    NEED_FAKE();
    /* "Incorrect API key provided: " is 28 characters: the key runs from
     * 28 to 228, across the cut at 200. */
    static char key[201];
    memcpy(key, "sk-wrong-", 9);
    for (size_t i = 9; i < 200; i++)
        key[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
    key[200] = '\0';
    char prefix[17];
    memcpy(prefix, key + 40, 16);          /* well before the cut */
    prefix[16] = '\0';
    struct sp_buf logbuf;
    sp_buf_init(&logbuf, 1 << 20);
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, NULL);
    sp_log_capture(&logbuf);
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.api_key = key;
    o.max_retries = 0;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    T_OK(c != NULL);
    if (!c) {
        sp_log_capture(NULL);
        sp_buf_fini(&logbuf);
        return;
    }
    struct outcome out = {0};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out), SP_OK);
    run_until(c, &out.done, 1, 5000);
    sp_log_capture(NULL);
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, NULL);
    T_EQ_INT(out.status, 401);
    T_CONTAINS(out.error, "Incorrect API key provided: ****");
    T_OK(strstr(out.error, "sk-wrong-") == NULL);
    T_OK(strstr(out.error, prefix) == NULL);
    T_CONTAINS(logbuf.data, "HTTP 401");
    T_OK(strstr(logbuf.data, "sk-wrong-") == NULL);
    T_OK(strstr(logbuf.data, prefix) == NULL);
    sp_buf_fini(&logbuf);
    sp_llm_free(c);
}

static void test_budget(void)
{
    NEED_FAKE();
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.requests_per_minute = 2;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out[3] = {{0}};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[0]), SP_OK);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[1]), SP_OK);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[2]), SP_ERR_LIMIT);
    int total = 0;
    int64_t deadline = sp_now_ms() + 5000;
    while ((out[0].done + out[1].done) < 2 && sp_now_ms() < deadline)
        total += sp_llm_poll(c, 100);
    T_EQ_INT(total, 2);
    T_EQ_INT(out[2].done, 0);
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 2);
    struct sp_llm_stats st;
    sp_llm_stats(c, &st);
    T_EQ_INT(st.budget_rejections, 1);
    sp_llm_free(c);

    /* Tokens: the estimate (prompt bytes / 4 + max_tokens) must fit. */
    opts_for_fake(&o);
    o.tokens_per_minute = 1000;
    c = sp_llm_new(&o, NULL, &err);
    r.max_tokens = 2000;
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[2]), SP_ERR_LIMIT);
    r.max_tokens = 100;
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[2]), SP_OK);
    run_until(c, &out[2].done, 1, 5000);
    T_EQ_INT(out[2].err, SP_OK);
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 3);
    sp_llm_free(c);
}

/* The token budget charges a call's estimate up front and settles it at
 * the end: a failed call gives it all back.  Each call here is estimated
 * at about 650 tokens of a 1,000 a minute budget, so a second call fits
 * only after the first one's estimate came back. */
static void test_budget_refunds(void)
{
    NEED_FAKE();
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.tokens_per_minute = 1000;
    o.max_retries = 0;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out[2] = {{0}};
    struct sp_llm_req r = req_default();
    r.max_tokens = 600;
    T_OK(fake_openai_control(&fake, "{\"queue\":[\"500\"]}"));
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[0]), SP_OK);
    run_until(c, &out[0].done, 1, 5000);
    T_EQ_INT(out[0].err, SP_ERR_REMOTE);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[1]), SP_OK);
    run_until(c, &out[1].done, 1, 5000);
    T_EQ_INT(out[1].err, SP_OK);
    /* A success is charged what `usage` reports (a few dozen tokens from
     * the fake), the rest of its estimate comes back: a third call fits. */
    struct outcome out3 = {0};
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out3), SP_OK);
    run_until(c, &out3.done, 1, 5000);
    T_EQ_INT(out3.err, SP_OK);
    sp_llm_free(c);
}

/* llm.max_queue bounds the calls submitted and not finished: with 2, two
 * are taken and the third is refused at once, before any is sent. */
static void test_queue_bound(void)
{
    NEED_FAKE();
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.max_queue = 2;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out[3] = {{0}};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[0]), SP_OK);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[1]), SP_OK);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[2]), SP_ERR_LIMIT);
    int total = 0;
    int64_t deadline = sp_now_ms() + 5000;
    while (total < 2 && sp_now_ms() < deadline)
        total += sp_llm_poll(c, 100);
    T_EQ_INT(out[0].err, SP_OK);
    T_EQ_INT(out[1].err, SP_OK);
    T_EQ_INT(out[2].done, 0);
    /* Once they are done there is room again. */
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[2]), SP_OK);
    run_until(c, &out[2].done, 1, 5000);
    T_EQ_INT(out[2].err, SP_OK);
    sp_llm_free(c);
}

static void test_breaker(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"default\":\"500\"}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.max_retries = 0;
    o.breaker_failures = 2;
    o.breaker_cooldown_ms = 300;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out[6] = {{0}};
    struct sp_llm_req r = req_default();
    for (int i = 0; i < 2; i++) {
        T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[i]), SP_OK);
        run_until(c, &out[i].done, 1, 5000);
        T_EQ_INT(out[i].err, SP_ERR_REMOTE);
    }
    T_EQ_INT(sp_llm_breaker_state(c), SP_LLM_BREAKER_OPEN);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[2]), SP_ERR_RETRY);
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 2);
    int64_t wait = sp_llm_retry_in_ms(c);
    T_OK(wait > 0 && wait <= 300);

    /* Half-open after the cool-down: one probe; it fails: open again. */
    int64_t deadline = sp_now_ms() + 3000;
    while (sp_llm_breaker_state(c) != SP_LLM_BREAKER_HALF_OPEN &&
           sp_now_ms() < deadline)
        sp_llm_poll(c, 20);
    T_EQ_INT(sp_llm_breaker_state(c), SP_LLM_BREAKER_HALF_OPEN);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[3]), SP_OK);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[4]), SP_ERR_RETRY);
    run_until(c, &out[3].done, 1, 5000);
    T_EQ_INT(out[3].err, SP_ERR_REMOTE);
    T_EQ_INT(sp_llm_breaker_state(c), SP_LLM_BREAKER_OPEN);

    /* The service recovers: the next probe closes the breaker. */
    T_OK(fake_openai_control(&fake, "{\"default\":\"ok\"}"));
    deadline = sp_now_ms() + 3000;
    while (sp_llm_breaker_state(c) != SP_LLM_BREAKER_HALF_OPEN &&
           sp_now_ms() < deadline)
        sp_llm_poll(c, 20);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[5]), SP_OK);
    run_until(c, &out[5].done, 1, 5000);
    T_EQ_INT(out[5].err, SP_OK);
    T_EQ_INT(sp_llm_breaker_state(c), SP_LLM_BREAKER_CLOSED);
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 4);
    sp_llm_free(c);
}

static void test_concurrency(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"latency_ms\":300}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    o.max_concurrency = 32;
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    enum { N = 20 };
    static struct outcome out[N];
    memset(out, 0, sizeof(out));
    struct sp_llm_req r = req_default();
    int64_t t0 = sp_now_ms();
    for (int i = 0; i < N; i++)
        T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[i]), SP_OK);
    int done = 0;
    int64_t deadline = t0 + 10000;
    while (done < N && sp_now_ms() < deadline)
        done += sp_llm_poll(c, 100);
    int64_t took = sp_now_ms() - t0;
    T_EQ_INT(done, N);
    for (int i = 0; i < N; i++)
        T_EQ_INT(out[i].err, SP_OK);
    /* Sequential would be 20 x 300 ms = 6 s. */
    T_OK(took < 2000);
    T_OK(fake_openai_stat(&fake, "max_inflight") >= 10);
    sp_llm_free(c);

    /* With max_concurrency 2 the server never sees more than 2. */
    T_OK(fake_openai_control(&fake, "{\"reset\":true,\"latency_ms\":50}"));
    o.max_concurrency = 2;
    c = sp_llm_new(&o, NULL, &err);
    memset(out, 0, sizeof(out));
    for (int i = 0; i < 6; i++)
        T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[i]), SP_OK);
    done = 0;
    deadline = sp_now_ms() + 10000;
    while (done < 6 && sp_now_ms() < deadline)
        done += sp_llm_poll(c, 100);
    T_EQ_INT(done, 6);
    T_EQ_INT(fake_openai_stat(&fake, "max_inflight"), 2);
    sp_llm_free(c);
}

static void test_rf_autodetect(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"response_format_supported\":false}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out[2] = {{0}};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[0]), SP_OK);
    run_until(c, &out[0].done, 1, 5000);
    T_EQ_INT(out[0].err, SP_OK);
    T_OK(!out[0].schema_sent);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[1]), SP_OK);
    run_until(c, &out[1].done, 1, 5000);
    T_EQ_INT(out[1].err, SP_OK);
    struct sp_llm_stats st;
    sp_llm_stats(c, &st);
    T_EQ_INT(st.rf_fallbacks, 1);
    T_OK(st.rf_disabled);
    /* 400 + retry without it, then straight without it: 3 requests. */
    T_EQ_INT(fake_openai_stat(&fake, "requests"), 3);
    sp_llm_free(c);

    /* Forced json_schema: the 400 is final. */
    o.response_format = SP_LLM_RF_JSON_SCHEMA;
    c = sp_llm_new(&o, NULL, &err);
    struct outcome out3 = {0};
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out3), SP_OK);
    run_until(c, &out3.done, 1, 5000);
    T_EQ_INT(out3.err, SP_ERR_INVALID);
    T_EQ_INT(out3.status, 400);
    sp_llm_free(c);
}

static void test_cancel_on_free(void)
{
    NEED_FAKE();
    T_OK(fake_openai_control(&fake, "{\"default\":{\"mode\":\"hang\",\"seconds\":3}}"));
    struct sp_llm_opts o;
    opts_for_fake(&o);
    struct sp_error err;
    struct sp_llm *c = sp_llm_new(&o, NULL, &err);
    struct outcome out[2] = {{0}};
    struct sp_llm_req r = req_default();
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[0]), SP_OK);
    T_EQ_INT(sp_llm_submit(c, &r, on_done, &out[1]), SP_OK);
    sp_llm_poll(c, 50);                 /* both on the wire */
    sp_llm_free(c);
    T_EQ_INT(out[0].done + out[1].done, 2);
    T_EQ_INT(out[0].fail, SP_LLM_FAIL_CANCELLED);
}

struct waker {
    struct sp_llm *c;
    atomic_int go;
};

static void *wake_thread(void *ud)
{
    struct waker *w = ud;
    while (!atomic_load(&w->go))
        poll(NULL, 0, 1);
    poll(NULL, 0, 50);
    sp_llm_wakeup(w->c);
    return NULL;
}

static void test_wakeup(void)
{
    struct sp_llm_opts o;
    sp_llm_opts_default(&o);
    o.enabled = true;
    struct sp_error err;
    struct waker w = {sp_llm_new(&o, NULL, &err), 0};
    pthread_t th;
    pthread_create(&th, NULL, wake_thread, &w);
    int64_t t0 = sp_now_ms();
    atomic_store(&w.go, 1);
    int64_t deadline = t0 + 5000;
    while (sp_now_ms() - t0 < 40)       /* the wake-up comes after 50 ms */
        sp_llm_poll(w.c, 5);
    T_EQ_INT(sp_llm_poll(w.c, 5000), 0);
    T_OK(sp_now_ms() < deadline);
    pthread_join(th, NULL);
    sp_llm_free(w.c);
}

int main(void)
{
    t_prog = "test_llm";
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, NULL);  /* failures are expected */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *args[] = {"--key", KEY, "--model", "test-model",
                          "--deployment", "soc-gpt", NULL};
    fake_up = fake_openai_start(&fake, args);
    if (!fake_up)
        fprintf(stderr, "  note: %s\n", fake.why);

    T_RUN(test_durations);
    T_RUN(test_backoff_bucket_breaker);
    T_RUN(test_classify);
    T_RUN(test_format);
    T_RUN(test_config);
    T_RUN(test_success_usage);
    T_RUN(test_429_retry_after);
    T_RUN(test_429_holds_client);
    T_RUN(test_500_then_success);
    T_RUN(test_5xx_retry_after);
    T_RUN(test_hang_timeout);
    T_RUN(test_malformed_body);
    T_RUN(test_azure);
    T_RUN(test_wrong_key);
    T_RUN(test_key_at_cut);
    T_RUN(test_budget);
    T_RUN(test_budget_refunds);
    T_RUN(test_queue_bound);
    T_RUN(test_breaker);
    T_RUN(test_concurrency);
    T_RUN(test_rf_autodetect);
    T_RUN(test_cancel_on_free);
    T_RUN(test_wakeup);

    if (fake_up)
        fake_openai_stop(&fake);
    curl_global_cleanup();
    return t_done();
}
