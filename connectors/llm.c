/*
 * llm.c - the LLM client: requests queued by sp_llm_submit(), put on the
 * wire by sp_llm_poll() through one curl multi handle (up to
 * llm.max_concurrency at once, connections reused), and completed through
 * the caller's callback on the same thread.
 *
 * A request's life: submit (budget and breaker checked, copies taken) ->
 * waiting list -> on the wire -> attempt done: success, or a retry put back
 * on the waiting list with a not-before time (backoff with full jitter,
 * never earlier than the server's Retry-After / x-ratelimit reset), or a
 * final failure.  When the server says a limit is exhausted, the whole
 * client holds new attempts until the reset it named.
 *
 * Owns: the multi handle, every call (struct llm_call) and its easy
 * handle, copies of the options, the budget and breaker.  One owner
 * thread; sp_llm_wakeup() is the only cross-thread entry.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "llm_int.h"
#include "log.h"

#define LLM_MAX_MSGS 64

struct llm_call {
    struct sp_llm *c;
    struct llm_call *next;           /* waiting list or active list */
    CURL *easy;
    struct sp_buf body, resp;
    struct llm_hdrs h;
    struct sp_llm_msg msgs[LLM_MAX_MSGS];
    size_t n_msgs;
    char *schema_name, *schema, *tag;
    int max_tokens;
    double est_tokens;
    int retries;
    int attempts;
    int64_t not_before_ms, submitted_ms, attempt_us;
    bool probe;                      /* holds the half-open probe */
    bool schema_sent, rf_retry_done;
    sp_llm_cb cb;
    void *ud;
    char errbuf[CURL_ERROR_SIZE];
};


struct sp_llm {
    struct sp_llm_opts o;
    char *own[12];                   /* copies of the option strings */
    char *url;
    struct curl_slist *hdrs;         /* shared by every easy handle */
    CURLM *multi;
    struct llm_call *wait_head, *wait_tail;
    struct llm_call *active;
    size_t n_active, n_pending;
    struct llm_bucket req_bucket, tok_bucket;
    struct llm_breaker breaker;
    int64_t hold_until_ms;
    bool rf_disabled;
    bool closing;
    uint64_t rng;
    atomic_bool woken;
    struct sp_llm_stats st;
    struct llm_metrics m;
    const char *comp;
};


/* ---- life cycle --------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char **own_slot(struct sp_llm *c, const char **field, int i)
{
    const char *src = *field ? *field : "";
    c->own[i] = strdup(src);
    *field = c->own[i];
    return field;
}


struct sp_llm *sp_llm_new(const struct sp_llm_opts *o, struct sp_metrics *m,
                          struct sp_error *err)
{
    sp_error_clear(err);
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        sp_error_set(err, SP_ERR_IO, "curl_global_init: %s",
                     curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    struct sp_llm *c = calloc(1, sizeof(*c));
    if (!c) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->o = *o;
    const char **fields[] = {&c->o.base_url, &c->o.model, &c->o.deployment,
                             &c->o.api_version, &c->o.api_key,
                             &c->o.ca_file, &c->o.proxy, &c->o.log_comp};
    for (size_t i = 0; i < SP_ARRAY_SIZE(fields); i++) {
        own_slot(c, fields[i], (int)i);
        if (!c->own[i])
            goto fail;
    }
    if (!*c->o.log_comp) {
        free(c->own[7]);
        c->own[7] = strdup("llm");
        c->o.log_comp = c->own[7];
        if (!c->own[7])
            goto fail;
    }
    c->comp = c->o.log_comp;
    if (c->o.max_concurrency < 1)
        c->o.max_concurrency = 1;
    if (c->o.max_queue < 1)
        c->o.max_queue = 1;
    if (c->o.breaker_failures < 1)
        c->o.breaker_failures = 1;
    if (c->o.max_response < 1024)
        c->o.max_response = 1024;
    if (*c->o.api_key)
        sp_log_add_secret(c->o.api_key);
    for (const char *q = c->o.api_key; *q; q++) {
        if ((unsigned char)*q < 0x20 || *q == 0x7f) {
            sp_error_set(err, SP_ERR_CONFIG, "llm.api_key: contains control "
                         "characters (a stray newline from a key file?)");
            goto fail;
        }
    }

    struct sp_buf url;
    sp_buf_init(&url, 8192);
    if (llm_wire_url(&c->o, &url) != SP_OK) {
        sp_buf_fini(&url);
        sp_error_set(err, SP_ERR_CONFIG, "llm.base_url: too long");
        goto fail;
    }
    c->url = sp_buf_steal(&url, NULL);

    struct sp_buf auth;
    sp_buf_init(&auth, 16384);
    if (*c->o.api_key) {
        if (c->o.provider == SP_LLM_AZURE)
            sp_buf_printf(&auth, "api-key: %s", c->o.api_key);
        else
            sp_buf_printf(&auth, "Authorization: Bearer %s", c->o.api_key);
    }
    struct curl_slist *h = NULL, *t;
    const char *lines[] = {"Content-Type: application/json",
                           "Accept: application/json", "Expect:",
                           ("User-Agent: socpilot/" SP_VERSION)};
    bool ok = !auth.overflow;
    for (size_t i = 0; ok && i < SP_ARRAY_SIZE(lines); i++) {
        t = curl_slist_append(h, lines[i]);
        ok = t != NULL;
        h = t ? t : h;
    }
    if (ok && auth.len) {
        t = curl_slist_append(h, auth.data);
        ok = t != NULL;
        h = t ? t : h;
    }
    if (auth.data)
        memset(auth.data, 0, auth.len);
    sp_buf_fini(&auth);
    c->hdrs = h;
    if (!ok)
        goto fail;

    c->multi = curl_multi_init();
    if (!c->multi)
        goto fail;
    int64_t now = sp_now_ms();
    llm_bucket_init(&c->req_bucket, c->o.requests_per_minute, now);
    llm_bucket_init(&c->tok_bucket, c->o.tokens_per_minute, now);
    c->breaker.threshold = c->o.breaker_failures;
    c->breaker.cooldown_ms = c->o.breaker_cooldown_ms;
    c->rng = (uint64_t)sp_now_us() ^ ((uint64_t)(uintptr_t)c << 17);
    atomic_init(&c->woken, false);
    llm_metrics_register(&c->m, m);
    if (c->o.enabled && !c->o.tls_verify)
        sp_log_warn(c->comp, "TLS verification is off (llm.tls_verify: "
                             "false): the API key can be intercepted");
    return c;

fail:
    if (!err || err->code == SP_OK)
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
    sp_llm_free(c);
    return NULL;
}

static void call_free(struct llm_call *call)
{
    if (!call)
        return;
    if (call->easy)
        curl_easy_cleanup(call->easy);
    sp_buf_fini(&call->body);
    sp_buf_fini(&call->resp);
    for (size_t i = 0; i < call->n_msgs; i++) {
        free((char *)call->msgs[i].role);
        free((char *)call->msgs[i].content);
    }
    free(call->schema_name);
    free(call->schema);
    free(call->tag);
    free(call);
}

static void update_gauges(struct sp_llm *c)
{
    sp_gauge_set(c->m.inflight, (double)c->n_active);
    sp_gauge_set(c->m.queued, (double)c->n_pending);
    sp_gauge_set(c->m.breaker,
                 (double)llm_breaker_state(&c->breaker, sp_now_ms()));
}

/* Servers echo the key they were given ("Incorrect API key provided:
 * sk-..."); error texts go to callers, who may publish them. */
static void mask_key(const struct sp_llm *c, char *s)
{
    size_t kl = strlen(c->o.api_key);
    if (kl < 4)
        return;
    char *hit;
    while ((hit = strstr(s, c->o.api_key)) != NULL) {
        memcpy(hit, "****", 4);
        memmove(hit + 4, hit + kl, strlen(hit + kl) + 1);
    }
}

/* A prefix of the key (8 bytes or more) that ends s, where a message that
 * named the key was cut, is masked too. */
static void mask_key_tail(const struct sp_llm *c, char *s)
{
    size_t kl = strlen(c->o.api_key), n = strlen(s);
    for (size_t l = SP_MIN(kl, n + 1) - 1; kl > 8 && l >= 8; l--) {
        if (memcmp(s + n - l, c->o.api_key, l) == 0) {
            memcpy(s + n - l, "****", 5);
            return;
        }
    }
}

/* out = s with the key masked, then cut to cap bytes (and a prefix of the
 * key left at the cut masked): masking after the cut would miss a key
 * that straddles it. */
static void copy_masked(const struct sp_llm *c, char *out, size_t cap,
                        const char *s)
{
    char *tmp = strdup(s ? s : "");
    if (!tmp) {
        snprintf(out, cap, "(message not shown: out of memory)");
        return;
    }
    mask_key(c, tmp);
    snprintf(out, cap, "%s", tmp);
    free(tmp);
    mask_key_tail(c, out);
}

/* Ends a call: counters, budget refund, callback, free. */
static void finish(struct sp_llm *c, struct llm_call *call,
                   struct sp_llm_result *res)
{
    int64_t now = sp_now_ms();
    mask_key(c, res->error);
    mask_key_tail(c, res->error);
    res->attempts = call->attempts;
    res->latency_ms = now - call->submitted_ms;
    res->schema_sent = call->schema_sent;
    if (call->probe) {
        llm_breaker_release(&c->breaker);
        call->probe = false;
    }
    c->st.calls++;
    if (res->err == SP_OK) {
        c->st.ok++;
        c->st.prompt_tokens += (uint64_t)res->prompt_tokens;
        c->st.completion_tokens += (uint64_t)res->completion_tokens;
        sp_counter_inc(c->m.ok);
        sp_counter_add(c->m.tok_prompt, (uint64_t)res->prompt_tokens);
        sp_counter_add(c->m.tok_completion, (uint64_t)res->completion_tokens);
        if (res->total_tokens > 0)
            llm_bucket_adjust(&c->tok_bucket,
                              call->est_tokens - (double)res->total_tokens,
                              now);
    } else {
        c->st.failures[res->fail]++;
        sp_counter_inc(c->m.failed);
        sp_counter_inc(c->m.fail[res->fail]);
        llm_bucket_adjust(&c->tok_bucket, call->est_tokens, now);
        if (res->fail != SP_LLM_FAIL_CANCELLED)
            sp_log_warn(c->comp, "request%s%s failed after %d attempt(s): "
                                 "%s (%s)",
                        call->tag ? " for " : "", call->tag ? call->tag : "",
                        call->attempts, res->error,
                        sp_llm_fail_name(res->fail));
    }
    c->n_pending--;
    call->cb(res, call->ud);
    call_free(call);
}

static void finish_error(struct sp_llm *c, struct llm_call *call,
                         enum sp_err e, enum sp_llm_fail kind, int status,
                         const char *msg)
{
    struct sp_llm_result res;
    memset(&res, 0, sizeof(res));
    res.err = e;
    res.fail = kind;
    res.http_status = status;
    copy_masked(c, res.error, sizeof(res.error), msg ? msg : sp_strerror(e));
    finish(c, call, &res);
}

void sp_llm_free(struct sp_llm *c)
{
    if (!c)
        return;
    c->closing = true;
    while (c->active) {
        struct llm_call *call = c->active;
        c->active = call->next;
        c->n_active--;
        curl_multi_remove_handle(c->multi, call->easy);
        finish_error(c, call, SP_ERR_STATE, SP_LLM_FAIL_CANCELLED, 0,
                     "cancelled: client closed");
    }
    while (c->wait_head) {
        struct llm_call *call = c->wait_head;
        c->wait_head = call->next;
        finish_error(c, call, SP_ERR_STATE, SP_LLM_FAIL_CANCELLED, 0,
                     "cancelled: client closed");
    }
    if (c->multi)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->hdrs);
    free(c->url);
    for (size_t i = 0; i < SP_ARRAY_SIZE(c->own); i++) {
        if (c->own[i] && i == 4)
            memset(c->own[i], 0, strlen(c->own[i]));    /* the API key */
        free(c->own[i]);
    }
    free(c);
}

/* ---- submit ------------------------------------------------------------- */

static char *dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool schema_is_json(const char *schema)
{
    struct sp_arena a;
    sp_arena_init(&a, (size_t)16 << 20);
    struct sp_json_error jerr;
    size_t n = strlen(schema);
    struct sp_json_limits lim = {n + 1, 64, 100000};
    struct sp_json *root = sp_json_parse(&a, schema, n, &lim, &jerr);
    bool ok = root && root->type == SP_JSON_OBJECT;
    sp_arena_fini(&a);
    return ok;
}

static void wait_append(struct sp_llm *c, struct llm_call *call)
{
    call->next = NULL;
    if (c->wait_tail)
        c->wait_tail->next = call;
    else
        c->wait_head = call;
    c->wait_tail = call;
}

enum sp_err sp_llm_submit(struct sp_llm *c, const struct sp_llm_req *req,
                          sp_llm_cb cb, void *ud)
{
    if (!c || !c->o.enabled || c->closing)
        return SP_ERR_STATE;
    if (!req || !cb || !req->msgs || req->n_msgs == 0 ||
        req->n_msgs > LLM_MAX_MSGS)
        return SP_ERR_INVALID;
    if (req->schema && !schema_is_json(req->schema))
        return SP_ERR_INVALID;
    int64_t now = sp_now_ms();
    if (c->n_pending >= (size_t)c->o.max_queue) {
        c->st.budget_rejections++;
        sp_counter_inc(c->m.rej_queue);
        return SP_ERR_LIMIT;
    }
    int max_tokens = req->max_tokens > 0 ? req->max_tokens : c->o.max_tokens;
    size_t bytes = 0;
    for (size_t i = 0; i < req->n_msgs; i++)
        bytes += (req->msgs[i].content ? strlen(req->msgs[i].content) : 0) +
                 16;
    if (req->schema)
        bytes += strlen(req->schema);
    double est = (double)bytes / 4.0 + (double)max_tokens;

    bool probe = false;
    if (!llm_breaker_allow(&c->breaker, now, &probe)) {
        c->st.breaker_rejections++;
        sp_counter_inc(c->m.rej_breaker);
        return SP_ERR_RETRY;
    }
    if (!llm_bucket_take(&c->req_bucket, 1, now)) {
        if (probe)
            llm_breaker_release(&c->breaker);
        c->st.budget_rejections++;
        sp_counter_inc(c->m.rej_requests);
        return SP_ERR_LIMIT;
    }
    if (!llm_bucket_take(&c->tok_bucket, est, now)) {
        llm_bucket_adjust(&c->req_bucket, 1, now);
        if (probe)
            llm_breaker_release(&c->breaker);
        c->st.budget_rejections++;
        sp_counter_inc(c->m.rej_tokens);
        return SP_ERR_LIMIT;
    }

    struct llm_call *call = calloc(1, sizeof(*call));
    if (!call)
        goto nomem;
    call->c = c;
    sp_buf_init(&call->body, (size_t)64 << 20);
    sp_buf_init(&call->resp, c->o.max_response);
    for (size_t i = 0; i < req->n_msgs; i++) {
        call->msgs[i].role = dup_opt(req->msgs[i].role ? req->msgs[i].role
                                                       : "user");
        call->msgs[i].content = dup_opt(req->msgs[i].content
                                            ? req->msgs[i].content : "");
        call->n_msgs = i + 1;
        if (!call->msgs[i].role || !call->msgs[i].content)
            goto nomem;
    }
    call->schema_name = dup_opt(req->schema_name);
    call->schema = dup_opt(req->schema);
    call->tag = dup_opt(req->tag);
    if ((req->schema_name && !call->schema_name) ||
        (req->schema && !call->schema) || (req->tag && !call->tag))
        goto nomem;
    call->max_tokens = max_tokens;
    call->est_tokens = est;
    call->submitted_ms = now;
    call->not_before_ms = now;
    call->probe = probe;
    call->cb = cb;
    call->ud = ud;
    wait_append(c, call);
    c->n_pending++;
    sp_gauge_set(c->m.queued, (double)c->n_pending);
    return SP_OK;

nomem:
    call_free(call);
    llm_bucket_adjust(&c->req_bucket, 1, now);
    llm_bucket_adjust(&c->tok_bucket, est, now);
    if (probe)
        llm_breaker_release(&c->breaker);
    return SP_ERR_NOMEM;
}

/* ---- transfers ---------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct llm_call *call = ud;
    if (sp_buf_put(&call->resp, p, size * n) != SP_OK)
        return 0;                    /* CURLE_WRITE_ERROR: too large */
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct llm_call *call = ud;
    llm_hdrs_line(&call->h, p, size * n, sp_wall_us() / 1000);
    return size * n;
}

static enum llm_rf_send choose_rf(const struct sp_llm *c,
                                  const struct llm_call *call)
{
    if (!call->schema)
        return LLM_RF_SEND_NONE;
    switch (c->o.response_format) {
    case SP_LLM_RF_AUTO:
        return c->rf_disabled || call->rf_retry_done ? LLM_RF_SEND_NONE
                                                     : LLM_RF_SEND_SCHEMA;
    case SP_LLM_RF_JSON_SCHEMA:
        return LLM_RF_SEND_SCHEMA;
    case SP_LLM_RF_JSON_OBJECT:
        return LLM_RF_SEND_OBJECT;
    case SP_LLM_RF_NONE:
        return LLM_RF_SEND_NONE;
    }
    return LLM_RF_SEND_NONE;
}

static enum sp_err easy_setup(struct sp_llm *c, struct llm_call *call)
{
    CURL *e = curl_easy_init();
    if (!e)
        return SP_ERR_NOMEM;
    call->easy = e;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                        \
    do {                                                                     \
        if (rc == CURLE_OK)                                                  \
            rc = curl_easy_setopt(e, opt, val);                              \
    } while (0)
    SET(CURLOPT_URL, c->url);
    SET(CURLOPT_HTTPHEADER, c->hdrs);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, call);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, call);
    SET(CURLOPT_PRIVATE, call);
    SET(CURLOPT_ERRORBUFFER, call->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, (long)c->o.timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->o.connect_timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, c->o.tls_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, c->o.tls_verify ? 2L : 0L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (*c->o.ca_file)
        SET(CURLOPT_CAINFO, c->o.ca_file);
    if (*c->o.proxy)
        SET(CURLOPT_PROXY, c->o.proxy);
#undef SET
    return rc == CURLE_OK ? SP_OK : SP_ERR_INVALID;
}

static enum sp_err start(struct sp_llm *c, struct llm_call *call)
{
    enum llm_rf_send rf = choose_rf(c, call);
    sp_buf_reset(&call->body);
    call->body.overflow = false;
    enum sp_err e = llm_wire_body(&c->o, call->msgs, call->n_msgs,
                                  call->schema_name, call->schema,
                                  call->max_tokens, rf, &call->body);
    if (e)
        return e;
    call->schema_sent = rf == LLM_RF_SEND_SCHEMA;
    sp_buf_reset(&call->resp);
    call->resp.overflow = false;
    llm_hdrs_reset(&call->h);
    call->errbuf[0] = '\0';
    if (!call->easy && (e = easy_setup(c, call)) != SP_OK)
        return e;
    curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->body.data);
    curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)call->body.len);
    if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK)
        return SP_ERR_NOMEM;
    call->attempts++;
    call->attempt_us = sp_now_us();
    c->st.attempts++;
    sp_counter_inc(c->m.attempts);
    call->next = c->active;
    c->active = call;
    c->n_active++;
    return SP_OK;
}

/* Starts every waiting call that may go now; returns how many calls
 * completed (failed) while doing so. */
static int dispatch(struct sp_llm *c, int64_t now)
{
    int done = 0;
    if (now < c->hold_until_ms)
        return 0;
    struct llm_call **pp = &c->wait_head, *prev = NULL;
    size_t bound = c->n_pending + 1;
    while (*pp && bound-- > 0 &&
           c->n_active < (size_t)c->o.max_concurrency) {
        struct llm_call *call = *pp;
        if (call->not_before_ms > now) {
            prev = call;
            pp = &call->next;
            continue;
        }
        *pp = call->next;                            /* unlink */
        if (c->wait_tail == call)
            c->wait_tail = prev;
        call->next = NULL;
        if (!call->probe &&
            llm_breaker_state(&c->breaker, now) != SP_LLM_BREAKER_CLOSED) {
            bool probe = false;
            if (!llm_breaker_allow(&c->breaker, now, &probe)) {
                c->st.breaker_rejections++;
                sp_counter_inc(c->m.rej_breaker);
                finish_error(c, call, SP_ERR_RETRY, SP_LLM_FAIL_BREAKER, 0,
                             "circuit breaker open");
                done++;
                continue;
            }
            call->probe = probe;
        }
        enum sp_err e = start(c, call);
        if (e) {
            finish_error(c, call, e, SP_LLM_FAIL_TRANSPORT, 0,
                         "could not start the request");
            done++;
        }
    }
    return done;
}

/* Earliest time a waiting call may start (INT64_MAX: nothing to wait for,
 * or every slot busy so that a transfer's end will wake the poll). */
static int64_t next_due(const struct sp_llm *c)
{
    if (!c->wait_head || c->n_active >= (size_t)c->o.max_concurrency)
        return INT64_MAX;
    int64_t due = INT64_MAX;
    size_t bound = c->n_pending + 1;
    for (const struct llm_call *call = c->wait_head; call && bound-- > 0;
         call = call->next)
        due = SP_MIN(due, call->not_before_ms);
    return SP_MAX(due, c->hold_until_ms);
}

static void hold(struct sp_llm *c, int64_t now, int64_t ms)
{
    if (ms <= 0)
        return;
    ms = SP_MIN(ms, (int64_t)c->o.retry_after_max_ms);
    if (now + ms > c->hold_until_ms)
        c->hold_until_ms = now + ms;
}

/* The server's pacing hints, for every later attempt of every call. */
static void pace(struct sp_llm *c, const struct llm_call *call, long status,
                 int64_t now)
{
    const struct llm_hdrs *h = &call->h;
    if (h->remaining_requests == 0)
        hold(c, now, h->reset_requests_ms);
    if (h->remaining_tokens == 0)
        hold(c, now, h->reset_tokens_ms);
    if (status == 429 || status == 503)
        hold(c, now, h->retry_after_ms);
}

/* How long the server asked this call to wait before retrying; -1 none. */
static int64_t server_wait(const struct llm_call *call, long status)
{
    const struct llm_hdrs *h = &call->h;
    int64_t w = h->retry_after_ms;
    if (status == 429) {
        if (h->remaining_requests == 0)
            w = SP_MAX(w, h->reset_requests_ms);
        if (h->remaining_tokens == 0)
            w = SP_MAX(w, h->reset_tokens_ms);
    }
    return w;
}

static void success(struct sp_llm *c, struct llm_call *call, long status,
                    const struct llm_answer *ans)
{
    struct sp_llm_result res;
    memset(&res, 0, sizeof(res));
    res.err = SP_OK;
    res.http_status = (int)status;
    res.content = ans->content;
    res.content_len = ans->content_len;
    res.model = ans->model ? ans->model : c->o.model;
    res.finish_reason = ans->finish_reason;
    res.prompt_tokens = ans->prompt_tokens;
    res.completion_tokens = ans->completion_tokens;
    res.total_tokens = ans->total_tokens;
    finish(c, call, &res);
}

/* One attempt ended; returns 1 if the call completed, 0 if it goes on. */
static int attempt_done(struct sp_llm *c, struct llm_call *call, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    int64_t now = sp_now_ms();
    sp_hist_observe_since_us(c->m.latency, call->attempt_us);
    bool ok2xx = rc == CURLE_OK && status >= 200 && status < 300;

    struct sp_arena a;
    sp_arena_init(&a, c->o.max_response * 8 + ((size_t)1 << 20));
    struct llm_answer ans;
    memset(&ans, 0, sizeof(ans));
    bool parsed = rc == CURLE_OK && call->resp.len > 0 &&
                  llm_wire_parse(&a, call->resp.data, call->resp.len, ok2xx,
                                 &ans) == SP_OK;
    struct llm_verdict v;
    llm_classify((int)rc, (int)status, ans.err_code, &v);
    char msg[256], part[201];
    if (rc != CURLE_OK)
        copy_masked(c, msg, sizeof(msg),
                    call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
    else if (ans.err_message) {
        copy_masked(c, part, sizeof(part), ans.err_message);
        snprintf(msg, sizeof(msg), "HTTP %ld: %s", status, part);
    } else
        snprintf(msg, sizeof(msg), "HTTP %ld", status);
    if (rc == CURLE_WRITE_ERROR)
        snprintf(msg, sizeof(msg), "response larger than llm.max_response");
    if (ok2xx && !parsed) {
        v = (struct llm_verdict){SP_ERR_REMOTE, SP_LLM_FAIL_RESPONSE, false,
                                 true};
        snprintf(msg, sizeof(msg), "HTTP %ld with a body that is not a chat "
                                   "completion", status);
    } else if (ok2xx && !ans.content) {
        v = (struct llm_verdict){SP_ERR_REMOTE, SP_LLM_FAIL_RESPONSE, false,
                                 false};
        copy_masked(c, part, sizeof(part), ans.refusal);
        snprintf(msg, sizeof(msg), "the model refused: %s", part);
    }

    if (status == 400 && call->schema_sent && parsed &&
        c->o.response_format == SP_LLM_RF_AUTO && !call->rf_retry_done &&
        llm_wire_rf_refused(&ans)) {
        if (!c->rf_disabled)
            sp_log_info(c->comp, "the server refuses response_format "
                                 "json_schema; sending requests without it "
                                 "(answers are still validated locally)");
        c->rf_disabled = true;
        c->st.rf_disabled = true;
        c->st.rf_fallbacks++;
        sp_counter_inc(c->m.rf_fallbacks);
        call->rf_retry_done = true;
        call->not_before_ms = now;
        wait_append(c, call);
        sp_arena_fini(&a);
        return 0;
    }

    if (v.err == SP_OK)
        llm_breaker_success(&c->breaker);
    else if (v.breaker)
        llm_breaker_failure(&c->breaker, now);
    else if (call->probe)
        llm_breaker_release(&c->breaker);
    call->probe = false;
    pace(c, call, status, now);

    if (v.err == SP_OK) {
        success(c, call, status, &ans);
        sp_arena_fini(&a);
        return 1;
    }
    if (v.retriable && call->retries < c->o.max_retries) {
        int64_t wait = llm_backoff_ms(c->o.backoff_base_ms,
                                      c->o.backoff_max_ms, call->retries,
                                      &c->rng);
        int64_t asked = server_wait(call, status);
        if (asked > c->o.retry_after_max_ms) {
            struct sp_llm_result res;
            memset(&res, 0, sizeof(res));
            res.err = SP_ERR_RETRY;
            res.fail = v.fail;
            res.http_status = (int)status;
            res.retry_after_ms = asked;
            char head[181];
            copy_masked(c, head, sizeof(head), msg);
            snprintf(res.error, sizeof(res.error),
                     "%s; server asks to wait %lld ms (over "
                     "llm.retry_after_max)", head, (long long)asked);
            finish(c, call, &res);
            sp_arena_fini(&a);
            return 1;
        }
        wait = SP_MAX(wait, asked);
        call->retries++;
        c->st.retries++;
        sp_counter_inc(c->m.retries);
        call->not_before_ms = now + wait;
        sp_log_debug(c->comp, "retry %d%s%s in %lld ms: %s", call->retries,
                     call->tag ? " for " : "", call->tag ? call->tag : "",
                     (long long)wait, msg);
        wait_append(c, call);
        sp_arena_fini(&a);
        return 0;
    }
    struct sp_llm_result res;
    memset(&res, 0, sizeof(res));
    res.err = v.err;
    res.fail = v.fail;
    res.http_status = (int)status;
    if (v.err == SP_ERR_RETRY)
        res.retry_after_ms = SP_MAX(server_wait(call, status), 0);
    snprintf(res.error, sizeof(res.error), "%s", msg);
    finish(c, call, &res);
    sp_arena_fini(&a);
    return 1;
}

static int reap(struct sp_llm *c)
{
    int done = 0, left = 0;
    CURLMsg *m;
    int bound = c->o.max_concurrency + 1;
    while (bound-- > 0 && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        struct llm_call *call = (struct llm_call *)(void *)priv;
        curl_multi_remove_handle(c->multi, easy);
        for (struct llm_call **pp = &c->active; *pp; pp = &(*pp)->next) {
            if (*pp == call) {
                *pp = call->next;
                c->n_active--;
                break;
            }
        }
        call->next = NULL;
        done += attempt_done(c, call, rc);
    }
    return done;
}

int sp_llm_poll(struct sp_llm *c, int timeout_ms)
{
    if (!c)
        return 0;
    int64_t deadline = sp_now_ms() + SP_MAX(timeout_ms, 0);
    int done = 0;
    for (;;) {
        done += dispatch(c, sp_now_ms());
        int running = 0;
        curl_multi_perform(c->multi, &running);
        done += reap(c);
        if (done > 0 || atomic_exchange(&c->woken, false))
            break;
        int64_t now = sp_now_ms();
        if (now >= deadline)
            break;
        int64_t wait = deadline - now;
        int64_t due = next_due(c);
        if (due != INT64_MAX)
            wait = SP_MIN(wait, SP_MAX(due - now, 0));
        long ct = -1;
        curl_multi_timeout(c->multi, &ct);
        if (ct >= 0 && ct < wait)
            wait = ct;
        curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
    }
    update_gauges(c);
    return done;
}

void sp_llm_wakeup(struct sp_llm *c)
{
    if (!c)
        return;
    atomic_store(&c->woken, true);
    curl_multi_wakeup(c->multi);
}

size_t sp_llm_pending(const struct sp_llm *c)
{
    return c ? c->n_pending : 0;
}

enum sp_llm_breaker sp_llm_breaker_state(struct sp_llm *c)
{
    return llm_breaker_state(&c->breaker, sp_now_ms());
}

int64_t sp_llm_retry_in_ms(struct sp_llm *c)
{
    int64_t now = sp_now_ms();
    int64_t w = llm_breaker_wait_ms(&c->breaker, now);
    if (c->hold_until_ms > now)
        w = SP_MAX(w, c->hold_until_ms - now);
    return w;
}

void sp_llm_stats(const struct sp_llm *c, struct sp_llm_stats *out)
{
    *out = c->st;
}

enum sp_err sp_llm_format(const struct sp_llm *c, const struct sp_llm_req *req,
                          bool with_schema, struct sp_buf *url,
                          struct sp_buf *body)
{
    if (!c || !req || !req->msgs || req->n_msgs == 0)
        return SP_ERR_INVALID;
    struct llm_call probe;
    memset(&probe, 0, sizeof(probe));
    probe.schema = (char *)req->schema;
    probe.rf_retry_done = !with_schema;
    enum llm_rf_send rf = choose_rf(c, &probe);
    if (url && llm_wire_url(&c->o, url) != SP_OK)
        return SP_ERR_LIMIT;
    int max_tokens = req->max_tokens > 0 ? req->max_tokens : c->o.max_tokens;
    return llm_wire_body(&c->o, req->msgs, req->n_msgs, req->schema_name,
                         req->schema, max_tokens,
                         with_schema ? rf : LLM_RF_SEND_NONE, body);
}

const char *sp_llm_auth_header(const struct sp_llm *c)
{
    return c && c->o.provider == SP_LLM_AZURE ? "api-key" : "Authorization";
}
