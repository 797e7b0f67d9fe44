/*
 * llm_policy.c - the LLM connector's decisions that need no network: the
 * client-side budget (token buckets for requests/min and tokens/min), the
 * circuit breaker, exponential backoff with full jitter, the server's
 * pacing hints (Retry-After as seconds or HTTP date, Azure's
 * retry-after-ms, OpenAI's x-ratelimit-remaining-* / -reset-* headers),
 * and the one table that maps curl and HTTP outcomes onto enum sp_err,
 * a failure kind, and "retry or not".
 *
 * Plain functions over caller-owned structs; used by the client's owner
 * thread only (see llm.c).
 */
#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm_int.h"

/* ---- token bucket ------------------------------------------------------- */

static void bucket_refill(struct llm_bucket *b, int64_t now_ms)
{
    if (b->cap <= 0)
        return;
    if (now_ms > b->last_ms) {
        b->level += (double)(now_ms - b->last_ms) * b->cap / 60000.0;
        if (b->level > b->cap)
            b->level = b->cap;
    }
    b->last_ms = now_ms;
}

void llm_bucket_init(struct llm_bucket *b, int per_minute, int64_t now_ms)
{
    b->cap = per_minute > 0 ? (double)per_minute : 0;
    b->level = b->cap;
    b->last_ms = now_ms;
}

bool llm_bucket_take(struct llm_bucket *b, double n, int64_t now_ms)
{
    if (b->cap <= 0)
        return true;
    bucket_refill(b, now_ms);
    if (b->level < n)
        return false;
    b->level -= n;
    return true;
}

void llm_bucket_adjust(struct llm_bucket *b, double delta, int64_t now_ms)
{
    if (b->cap <= 0)
        return;
    bucket_refill(b, now_ms);
    b->level += delta;
    if (b->level > b->cap)
        b->level = b->cap;
    if (b->level < -b->cap)
        b->level = -b->cap;
}

int64_t llm_bucket_wait_ms(struct llm_bucket *b, double n, int64_t now_ms)
{
    if (b->cap <= 0)
        return 0;
    bucket_refill(b, now_ms);
    if (b->level >= n)
        return 0;
    return (int64_t)ceil((n - b->level) * 60000.0 / b->cap);
}

/* ---- circuit breaker ---------------------------------------------------- */

enum sp_llm_breaker llm_breaker_state(const struct llm_breaker *b,
                                      int64_t now_ms)
{
    if (!b->open)
        return SP_LLM_BREAKER_CLOSED;
    if (now_ms - b->opened_ms < b->cooldown_ms)
        return SP_LLM_BREAKER_OPEN;
    return SP_LLM_BREAKER_HALF_OPEN;
}

bool llm_breaker_allow(struct llm_breaker *b, int64_t now_ms, bool *probe)
{
    *probe = false;
    switch (llm_breaker_state(b, now_ms)) {
    case SP_LLM_BREAKER_CLOSED:
        return true;
    case SP_LLM_BREAKER_OPEN:
        return false;
    case SP_LLM_BREAKER_HALF_OPEN:
        if (b->probe_busy)
            return false;
        b->probe_busy = true;
        *probe = true;
        return true;
    }
    return false;
}

void llm_breaker_success(struct llm_breaker *b)
{
    b->fails = 0;
    b->open = false;
    b->probe_busy = false;
}

void llm_breaker_failure(struct llm_breaker *b, int64_t now_ms)
{
    if (b->open) {
        /* A failed probe (or a straggler that was already on the wire):
         * start a new cool-down. */
        b->opened_ms = now_ms;
        b->probe_busy = false;
        return;
    }
    if (++b->fails >= b->threshold) {
        b->open = true;
        b->opened_ms = now_ms;
        b->probe_busy = false;
    }
}

void llm_breaker_release(struct llm_breaker *b)
{
    b->probe_busy = false;
}

int64_t llm_breaker_wait_ms(const struct llm_breaker *b, int64_t now_ms)
{
    if (!b->open)
        return 0;
    int64_t left = b->opened_ms + b->cooldown_ms - now_ms;
    return left > 0 ? left : 0;
}

/* ---- backoff ------------------------------------------------------------ */

uint64_t llm_rand(uint64_t *rng)
{
    /* xorshift64*: good enough for jitter, no global state. */
    uint64_t x = *rng ? *rng : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int64_t llm_backoff_ms(int base_ms, int max_ms, int retry, uint64_t *rng)
{
    if (base_ms <= 0)
        return 0;
    int64_t ceiling = base_ms;
    for (int i = 0; i < retry && ceiling < max_ms; i++)
        ceiling *= 2;
    if (ceiling > max_ms)
        ceiling = max_ms;
    return (int64_t)(llm_rand(rng) % (uint64_t)(ceiling + 1));
}

/* ---- server hints ------------------------------------------------------- */

static bool parse_seconds(const char *v, int64_t *ms)
{
    char *end = NULL;
    double s = strtod(v, &end);
    if (end == v || !isfinite(s) || s < 0 || s > 86400.0 * 7)
        return false;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return false;
    *ms = (int64_t)ceil(s * 1000.0);
    return true;
}

bool llm_parse_retry_after(const char *v, int64_t now_wall_ms, int64_t *ms)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return false;
    if (*v >= '0' && *v <= '9' && parse_seconds(v, ms))
        return true;
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return false;
    int64_t delta = (int64_t)t * 1000 - now_wall_ms;
    *ms = delta > 0 ? delta : 0;
    return true;
}

bool llm_parse_duration(const char *v, int64_t *ms)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return false;
    if (parse_seconds(v, ms))
        return true;
    double total = 0;
    const char *p = v;
    int parts = 0;
    while (*p && parts < 8) {
        char *end = NULL;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || x < 0)
            return false;
        p = end;
        double unit;
        if (p[0] == 'm' && p[1] == 's') {
            unit = 1;
            p += 2;
        } else if (p[0] == 'h') {
            unit = 3600000;
            p++;
        } else if (p[0] == 'm') {
            unit = 60000;
            p++;
        } else if (p[0] == 's') {
            unit = 1000;
            p++;
        } else {
            return false;
        }
        total += x * unit;
        parts++;
    }
    if (*p || total > 86400.0 * 7 * 1000)
        return false;
    *ms = (int64_t)ceil(total);
    return true;
}

void llm_hdrs_reset(struct llm_hdrs *h)
{
    h->retry_after_ms = -1;
    h->remaining_requests = h->remaining_tokens = -1;
    h->reset_requests_ms = h->reset_tokens_ms = -1;
}

static bool parse_count(const char *v, int64_t *out)
{
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (end == v || x < 0)
        return false;
    *out = x;
    return true;
}

void llm_hdrs_line(struct llm_hdrs *h, const char *line, size_t n,
                   int64_t now_wall_ms)
{
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        llm_hdrs_reset(h);
        return;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return;
    size_t nlen = (size_t)(colon - line);
    char value[128];
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
                    v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= sizeof(value))
        return;
    memcpy(value, v, vlen);
    value[vlen] = '\0';
    int64_t x;
#define HDR_IS(s) (nlen == sizeof(s) - 1 && sp_strncaseeq(line, s, nlen))
    if (HDR_IS("retry-after")) {
        if (llm_parse_retry_after(value, now_wall_ms, &x) &&
            h->retry_after_ms < 0)
            h->retry_after_ms = x;
    } else if (HDR_IS("retry-after-ms")) {
        /* Azure's finer hint wins over the rounded Retry-After. */
        if (parse_count(value, &x))
            h->retry_after_ms = x;
    } else if (HDR_IS("x-ratelimit-remaining-requests")) {
        if (parse_count(value, &x))
            h->remaining_requests = x;
    } else if (HDR_IS("x-ratelimit-remaining-tokens")) {
        if (parse_count(value, &x))
            h->remaining_tokens = x;
    } else if (HDR_IS("x-ratelimit-reset-requests")) {
        if (llm_parse_duration(value, &x))
            h->reset_requests_ms = x;
    } else if (HDR_IS("x-ratelimit-reset-tokens")) {
        if (llm_parse_duration(value, &x))
            h->reset_tokens_ms = x;
    }
#undef HDR_IS
}

/* ---- error mapping ------------------------------------------------------ */

static void verdict(struct llm_verdict *v, enum sp_err err,
                    enum sp_llm_fail fail, bool retriable, bool breaker)
{
    v->err = err;
    v->fail = fail;
    v->retriable = retriable;
    v->breaker = breaker;
}

void llm_classify(int curl_code, int http_status, const char *err_code,
                  struct llm_verdict *v)
{
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        verdict(v, SP_ERR_TIMEOUT, SP_LLM_FAIL_TIMEOUT, true, true);
        return;
    case CURLE_WRITE_ERROR:          /* our body limit said stop */
    case CURLE_BAD_CONTENT_ENCODING:
        verdict(v, SP_ERR_REMOTE, SP_LLM_FAIL_RESPONSE, false, true);
        return;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_PEER_FAILED_VERIFICATION:
        /* Configuration (URL, CA, certificate name): retrying won't help. */
        verdict(v, SP_ERR_CONFIG, SP_LLM_FAIL_TRANSPORT, false, true);
        return;
    case CURLE_OUT_OF_MEMORY:
        verdict(v, SP_ERR_NOMEM, SP_LLM_FAIL_TRANSPORT, false, false);
        return;
    default:                        /* resolve, connect, reset, TLS... */
        verdict(v, SP_ERR_IO, SP_LLM_FAIL_TRANSPORT, true, true);
        return;
    }
    if (http_status >= 200 && http_status < 300) {
        verdict(v, SP_OK, SP_LLM_FAIL_NONE, false, false);
        return;
    }
    bool quota = err_code && strcmp(err_code, "insufficient_quota") == 0;
    bool too_long = err_code &&
        (strcmp(err_code, "context_length_exceeded") == 0 ||
         strcmp(err_code, "string_above_max_length") == 0);
    switch (http_status) {
    case 401:
    case 403:
        verdict(v, SP_ERR_CONFIG, SP_LLM_FAIL_AUTH, false, false);
        return;
    case 404:                       /* model or deployment unknown */
        verdict(v, SP_ERR_CONFIG, SP_LLM_FAIL_REQUEST, false, false);
        return;
    case 408:
    case 409:
        verdict(v, SP_ERR_REMOTE, SP_LLM_FAIL_SERVER, true, true);
        return;
    case 413:
        verdict(v, SP_ERR_LIMIT, SP_LLM_FAIL_REQUEST, false, false);
        return;
    case 429:
        if (quota)
            verdict(v, SP_ERR_LIMIT, SP_LLM_FAIL_RATE_LIMITED, false, false);
        else
            verdict(v, SP_ERR_RETRY, SP_LLM_FAIL_RATE_LIMITED, true, false);
        return;
    default:
        break;
    }
    if (http_status >= 500)
        verdict(v, SP_ERR_REMOTE, SP_LLM_FAIL_SERVER, true, true);
    else if (too_long)
        verdict(v, SP_ERR_LIMIT, SP_LLM_FAIL_REQUEST, false, false);
    else if (http_status >= 400)
        verdict(v, SP_ERR_INVALID, SP_LLM_FAIL_REQUEST, false, false);
    else                            /* 1xx/3xx: nothing we follow */
        verdict(v, SP_ERR_REMOTE, SP_LLM_FAIL_RESPONSE, false, true);
}
