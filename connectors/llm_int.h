/*
 * llm_int.h - private to the LLM connector (llm*.c): the pieces that need
 * no network and are tested on their own.
 *
 *   llm_policy.c  token buckets, circuit breaker, backoff with full
 *                 jitter, Retry-After / x-ratelimit-* header parsing, and
 *                 the one table mapping curl and HTTP errors onto sp_err
 *   llm_wire.c    the request URL and JSON body, the response parser
 *   llm_config.c  the llm.* keys, options from config, metrics
 *
 * Everything here is plain data owned by the caller; one thread at a time.
 */
#ifndef SP_LLM_INT_H
#define SP_LLM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "json.h"
#include "llm.h"
#include "sp.h"

/* ---- token bucket (requests/min, tokens/min) ---------------------------- */

struct llm_bucket {
    double level;        /* may go negative: debt from under-estimates */
    double cap;          /* 0 = unlimited */
    int64_t last_ms;
};

void llm_bucket_init(struct llm_bucket *b, int per_minute, int64_t now_ms);
/* Takes n if the bucket holds at least n; false (nothing taken) if not. */
bool llm_bucket_take(struct llm_bucket *b, double n, int64_t now_ms);
/* Adds delta (negative: consume without checking), bounded to
 * [-cap, cap]. */
void llm_bucket_adjust(struct llm_bucket *b, double delta, int64_t now_ms);
/* Milliseconds until n is available (0 = now). */
int64_t llm_bucket_wait_ms(struct llm_bucket *b, double n, int64_t now_ms);

/* ---- circuit breaker ---------------------------------------------------- */

struct llm_breaker {
    int threshold;       /* consecutive failures that open it */
    int cooldown_ms;
    int fails;
    bool open;
    bool probe_busy;     /* half-open: the one probe is in flight */
    int64_t opened_ms;
};

enum sp_llm_breaker llm_breaker_state(const struct llm_breaker *b,
                                      int64_t now_ms);
/* May a request go out now?  In half-open state the first caller becomes
 * the probe (*probe set) and the others are refused until it ends. */
bool llm_breaker_allow(struct llm_breaker *b, int64_t now_ms, bool *probe);
void llm_breaker_success(struct llm_breaker *b);
void llm_breaker_failure(struct llm_breaker *b, int64_t now_ms);
/* The probe ended with an outcome that says nothing about health (429). */
void llm_breaker_release(struct llm_breaker *b);
int64_t llm_breaker_wait_ms(const struct llm_breaker *b, int64_t now_ms);

/* ---- backoff and server hints ------------------------------------------- */

/* Full jitter: uniform in [0, min(max, base * 2^retry)]; retry >= 0. */
int64_t llm_backoff_ms(int base_ms, int max_ms, int retry, uint64_t *rng);
uint64_t llm_rand(uint64_t *rng);

/* Retry-After: delta-seconds ("2", "1.5") or an HTTP date; now_wall_ms is
 * the wall clock.  False when unparseable. */
bool llm_parse_retry_after(const char *v, int64_t now_wall_ms, int64_t *ms);
/* x-ratelimit-reset-*: "1s", "6m0s", "20ms", "1h2m3.5s", or bare seconds. */
bool llm_parse_duration(const char *v, int64_t *ms);

/* What the response headers said; -1 = absent. */
struct llm_hdrs {
    int64_t retry_after_ms;
    int64_t remaining_requests, remaining_tokens;
    int64_t reset_requests_ms, reset_tokens_ms;
};
void llm_hdrs_reset(struct llm_hdrs *h);
/* Feeds one raw header line ("Name: value\r\n"); a status line resets. */
void llm_hdrs_line(struct llm_hdrs *h, const char *line, size_t n,
                   int64_t now_wall_ms);

/* ---- error mapping (the one place) -------------------------------------- */

struct llm_verdict {
    enum sp_err err;
    enum sp_llm_fail fail;
    bool retriable;
    bool breaker;        /* counts as a failure for the circuit breaker */
};
/* curl_code: a CURLcode (int, to keep curl out of this header); 0 = the
 * transfer completed and http_status/err_code decide. */
void llm_classify(int curl_code, int http_status, const char *err_code,
                  struct llm_verdict *v);

/* ---- wire format -------------------------------------------------------- */

/* What to put in response_format for one attempt. */
enum llm_rf_send { LLM_RF_SEND_NONE, LLM_RF_SEND_SCHEMA, LLM_RF_SEND_OBJECT };

enum sp_err llm_wire_url(const struct sp_llm_opts *o, struct sp_buf *url);
enum sp_err llm_wire_body(const struct sp_llm_opts *o,
                          const struct sp_llm_msg *msgs, size_t n_msgs,
                          const char *schema_name, const char *schema,
                          int max_tokens, enum llm_rf_send rf,
                          struct sp_buf *body);

struct llm_answer {
    const char *content;             /* NULL when absent */
    size_t content_len;
    const char *model, *finish_reason, *refusal;
    int64_t prompt_tokens, completion_tokens, total_tokens;
    const char *err_message, *err_code, *err_param;   /* error bodies */
};
/* Parses a response body (2xx or error) with the bounded parser; strings
 * live in a.  SP_ERR_INVALID when the body is not JSON or has no usable
 * shape (for a 2xx: no choices[0].message). */
enum sp_err llm_wire_parse(struct sp_arena *a, const char *body, size_t len,
                           bool success, struct llm_answer *out);
/* True when a 400 answer is about response_format (the server does not
 * support structured output). */
bool llm_wire_rf_refused(const struct llm_answer *ans);

/* ---- metrics (llm_config.c) --------------------------------------------- */

struct llm_metrics {
    struct sp_counter *ok, *failed, *attempts, *retries, *tok_prompt,
        *tok_completion, *rej_requests, *rej_tokens, *rej_queue,
        *rej_breaker, *rf_fallbacks;
    struct sp_counter *fail[SP_LLM_FAIL__COUNT];
    struct sp_hist *latency;
    struct sp_gauge *breaker, *inflight, *queued;
};

/* Registers the llm_* metrics in m (NULL: every handle stays NULL). */
void llm_metrics_register(struct llm_metrics *x, struct sp_metrics *m);

#endif /* SP_LLM_INT_H */
