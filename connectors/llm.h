/*
 * llm.h - the LLM connector: chat completions against OpenAI, any
 * OpenAI-compatible server (Ollama, vLLM, llama.cpp: base URL + model) and
 * Azure OpenAI (endpoint + deployment + api-version, `api-key` header), on
 * libcurl's multi interface so that many requests are in flight from one
 * thread.
 *
 * Around each request: a client-side budget (requests/min and tokens/min
 * token buckets; over budget the caller gets SP_ERR_LIMIT at once and falls
 * back to the template), retries with exponential backoff and full jitter
 * that honour Retry-After and the x-ratelimit-* headers, a circuit breaker
 * (open after N consecutive failures, one half-open probe after the
 * cool-down), a concurrency cap, structured output (response_format
 * json_schema, dropped and remembered when the server refuses it), and
 * usage accounting from the answer's `usage`.
 *
 * Owns: the curl multi handle, every request in flight or waiting, the
 * budget and breaker state, copies of the options.
 * Threads: one owner thread calls everything (submit, poll, free, stats);
 * callbacks run on it, inside sp_llm_poll().  sp_llm_wakeup() is the one
 * call any thread may make.
 */
#ifndef SP_LLM_H
#define SP_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "sp.h"

/* The llm.* configuration keys (declared by whoever runs analyses). */
extern const struct sp_cfg_key sp_llm_keys[];
extern const size_t sp_llm_n_keys;

enum sp_llm_provider { SP_LLM_OPENAI, SP_LLM_AZURE };

/* How response_format is used.  AUTO sends json_schema and, when the
 * server answers 400 about response_format, sends the request again
 * without it and remembers that for the life of the client. */
enum sp_llm_rf { SP_LLM_RF_AUTO, SP_LLM_RF_JSON_SCHEMA, SP_LLM_RF_JSON_OBJECT,
                 SP_LLM_RF_NONE };

struct sp_llm_opts {
    bool enabled;
    enum sp_llm_provider provider;
    const char *base_url;        /* OpenAI: ".../v1"; Azure: the endpoint */
    const char *model;           /* required for OpenAI */
    const char *deployment;      /* required for Azure */
    const char *api_version;     /* Azure */
    const char *api_key;         /* may be empty for local servers */
    const char *ca_file;         /* "" = system store */
    const char *proxy;           /* "" = from the environment */
    bool tls_verify;             /* default true */
    int timeout_ms;              /* whole request, default 60000 */
    int connect_timeout_ms;      /* default 10000 */
    int max_retries;             /* attempts after the first, default 3 */
    int backoff_base_ms;         /* default 500 */
    int backoff_max_ms;          /* default 30000 */
    int retry_after_max_ms;      /* longer server waits end the request
                                    with SP_ERR_RETRY, default 60000 */
    int requests_per_minute;     /* 0 = unlimited */
    int tokens_per_minute;       /* 0 = unlimited */
    int breaker_failures;        /* consecutive failures that open it */
    int breaker_cooldown_ms;
    int max_concurrency;         /* requests on the wire at once */
    int max_queue;               /* accepted but not finished, bound */
    enum sp_llm_rf response_format;
    bool max_completion_tokens;  /* send max_completion_tokens instead of
                                    max_tokens (newer OpenAI models) */
    int max_tokens;              /* default completion cap per request */
    double temperature;          /* < 0 = not sent */
    size_t max_response;         /* bytes of a response body */
    const char *log_comp;        /* default "llm" */
};

/* Fills o with the defaults of the key table (disabled, OpenAI). */
void sp_llm_opts_default(struct sp_llm_opts *o);
/* Fills o from the validated llm.* keys (strings borrowed from cfg) and
 * checks what the table cannot (temperature, provider-specific required
 * keys when enabled).  Returns SP_ERR_CONFIG with err naming the key. */
enum sp_err sp_llm_opts_from_config(const struct sp_config *cfg,
                                    struct sp_llm_opts *o,
                                    struct sp_error *err);

/* One chat message (strings borrowed by sp_llm_submit, which copies). */
struct sp_llm_msg {
    const char *role;            /* "system", "user", "assistant" */
    const char *content;
};

struct sp_llm_req {
    const struct sp_llm_msg *msgs;
    size_t n_msgs;
    const char *schema_name;     /* response_format json_schema name */
    const char *schema;          /* JSON text of the schema; NULL = none */
    int max_tokens;              /* 0 = opts.max_tokens */
    const char *tag;             /* for logs (an incident id...) */
};

/* Why a request failed (metrics label and result field). */
enum sp_llm_fail {
    SP_LLM_FAIL_NONE = 0,
    SP_LLM_FAIL_TRANSPORT,       /* connect/TLS/reset */
    SP_LLM_FAIL_TIMEOUT,
    SP_LLM_FAIL_RATE_LIMITED,    /* 429 past retries or Retry-After cap */
    SP_LLM_FAIL_SERVER,          /* 5xx */
    SP_LLM_FAIL_AUTH,            /* 401/403 */
    SP_LLM_FAIL_REQUEST,         /* other 4xx */
    SP_LLM_FAIL_RESPONSE,        /* 2xx body unusable, refusal */
    SP_LLM_FAIL_BUDGET,          /* client-side budget */
    SP_LLM_FAIL_BREAKER,         /* circuit open */
    SP_LLM_FAIL_CANCELLED,       /* client freed */
    SP_LLM_FAIL__COUNT
};
const char *sp_llm_fail_name(enum sp_llm_fail kind);

struct sp_llm_result {
    enum sp_err err;             /* SP_OK: content is the answer */
    enum sp_llm_fail fail;
    int http_status;             /* last one seen, 0 = none */
    const char *content;         /* borrowed for the callback's duration */
    size_t content_len;
    const char *model;           /* model named by the answer, borrowed */
    const char *finish_reason;   /* borrowed, may be NULL */
    int64_t prompt_tokens, completion_tokens, total_tokens;
    int attempts;                /* HTTP attempts made */
    int64_t latency_ms;          /* submit to completion */
    int64_t retry_after_ms;      /* SP_ERR_RETRY: server asked to wait */
    bool schema_sent;            /* response_format json_schema was used */
    char error[256];             /* human message on failure */
};

/* Called exactly once per accepted request, on the owner thread inside
 * sp_llm_poll() (or sp_llm_free() with SP_LLM_FAIL_CANCELLED).  It may
 * call sp_llm_submit(); it must not call sp_llm_free(). */
typedef void (*sp_llm_cb)(const struct sp_llm_result *res, void *ud);

struct sp_llm;

/*
 * Creates a client (also when !o->enabled: submit then says SP_ERR_STATE).
 * o is copied, strings included; the API key is registered with the
 * logger's masking.  m (borrowed, may be NULL) receives the llm_* metrics.
 * Initialises libcurl globally on first use (call it before other threads
 * use libcurl, or have called curl_global_init yourself).
 * Returns a new client (sp_llm_free) or NULL with err set.
 */
struct sp_llm *sp_llm_new(const struct sp_llm_opts *o, struct sp_metrics *m,
                          struct sp_error *err);
/* Cancels what is pending (callbacks run with SP_LLM_FAIL_CANCELLED) and
 * frees everything.  NULL-safe. */
void sp_llm_free(struct sp_llm *c);

/*
 * Queues a request; copies everything in req.  Returns:
 *   SP_OK          accepted: cb will run once, from sp_llm_poll()
 *   SP_ERR_LIMIT   over the requests/min or tokens/min budget, or the queue
 *                  is full: nothing was sent, cb will not run
 *   SP_ERR_RETRY   circuit breaker open (or its probe busy): cb will not run;
 *                  sp_llm_retry_in_ms() says when to try again
 *   SP_ERR_STATE   client disabled
 *   SP_ERR_INVALID bad request (no messages, schema not JSON...)
 */
enum sp_err sp_llm_submit(struct sp_llm *c, const struct sp_llm_req *req,
                          sp_llm_cb cb, void *ud);

/* Drives transfers: waits up to timeout_ms for network activity, a timer
 * (retry, backoff) or sp_llm_wakeup(), runs the callbacks of finished
 * requests, and returns how many completed (0 on timeout/wakeup). */
int sp_llm_poll(struct sp_llm *c, int timeout_ms);

/* Interrupts a sp_llm_poll() in progress (or the next one).  Thread-safe. */
void sp_llm_wakeup(struct sp_llm *c);

/* Requests accepted and not yet completed. */
size_t sp_llm_pending(const struct sp_llm *c);

enum sp_llm_breaker { SP_LLM_BREAKER_CLOSED, SP_LLM_BREAKER_OPEN,
                      SP_LLM_BREAKER_HALF_OPEN };
/* Current state (OPEN turns HALF_OPEN once the cool-down has passed). */
enum sp_llm_breaker sp_llm_breaker_state(struct sp_llm *c);
/* Milliseconds until a submit may be accepted again (breaker, server
 * rate-limit hold); 0 = now. */
int64_t sp_llm_retry_in_ms(struct sp_llm *c);

/* Counters kept by the client (also exported as metrics). */
struct sp_llm_stats {
    uint64_t calls;              /* requests completed (any outcome) */
    uint64_t ok;
    uint64_t attempts;           /* HTTP requests sent */
    uint64_t retries;
    uint64_t failures[SP_LLM_FAIL__COUNT];
    uint64_t budget_rejections;
    uint64_t breaker_rejections;
    uint64_t prompt_tokens, completion_tokens;
    uint64_t rf_fallbacks;       /* response_format dropped */
    bool rf_disabled;            /* the server refused response_format */
};
void sp_llm_stats(const struct sp_llm *c, struct sp_llm_stats *out);

/*
 * The formatter hook: writes the URL and the JSON body that a request
 * would be sent with (no network; for tests and `--dry-run`).  with_schema
 * false formats it as if the server had refused response_format.  Header
 * names (never values) are in sp_llm_auth_header().
 */
enum sp_err sp_llm_format(const struct sp_llm *c, const struct sp_llm_req *req,
                          bool with_schema, struct sp_buf *url,
                          struct sp_buf *body);
/* "Authorization" (OpenAI) or "api-key" (Azure). */
const char *sp_llm_auth_header(const struct sp_llm *c);

#endif /* SP_LLM_H */
