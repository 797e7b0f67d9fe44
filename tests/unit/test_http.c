/*
 * test_http.c - unit tests for pipeline/http.c: a server on an ephemeral
 * loopback port, fetched with libcurl: /metrics (status, content type,
 * body), /healthz, /readyz in both states, 404, 405, HEAD, and start-up
 * errors (bad address, bad port, port in use); slow clients holding
 * connections (from the probe's own address and from another) do not keep
 * a probe from being answered; libmicrohttpd's complaints are rate-limited.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "t.h"

struct reply {
    long status;
    struct sp_buf body;
    char ctype[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    if (sp_buf_put(&r->body, p, size * n) != SP_OK)
        return 0;
    return size * n;
}

static long fetch_timeout_ms = 10000;

/* Fetches http://127.0.0.1:port/path with method (NULL = GET); fills r
 * (caller finishes r->body).  Returns false on a transport error. */
static bool fetch(int port, const char *path, const char *method,
                  struct reply *r)
{
    memset(r, 0, sizeof(*r));
    sp_buf_init(&r->body, 1 << 20);
    sp_buf_put(&r->body, "", 0);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    if (!c)
        return false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, fetch_timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (method && strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (method && strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a=1");
    else if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
            snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    } else {
        fprintf(stderr, "  curl %s: %s\n", url, curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    return rc == CURLE_OK;
}

static atomic_bool ready_flag;

static bool ready_cb(void *ud, char *reason, size_t n)
{
    const char *why = ud;
    if (atomic_load(&ready_flag))
        return true;
    snprintf(reason, n, "%s", why);
    return false;
}

static void test_endpoints(void)
{
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    struct sp_counter *c = sp_metrics_counter(m, "alerts_in_total",
                                              "Alerts consumed.",
                                              "stage=\"decode.0\"");
    sp_counter_add(c, 42);
    struct sp_error err;
    sp_error_clear(&err);
    atomic_store(&ready_flag, false);
    struct sp_http *h = sp_http_start("127.0.0.1", 0, m, ready_cb,
                                      "kafka: waiting for\npartition assignment",
                                      &err);
    T_OK(h != NULL);
    if (!h) {
        fprintf(stderr, "  %s\n", err.msg);
        sp_metrics_free(m);
        return;
    }
    int port = sp_http_port(h);
    T_OK(port > 0 && port < 65536);
    struct reply r;

    T_OK(fetch(port, "/metrics", NULL, &r));
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    T_EQ_STR(r.body.data,
             "# HELP socpilot_alerts_in_total Alerts consumed.\n"
             "# TYPE socpilot_alerts_in_total counter\n"
             "socpilot_alerts_in_total{stage=\"decode.0\"} 42\n");
    sp_buf_fini(&r.body);

    /* Values are live. */
    sp_counter_add(c, 1);
    T_OK(fetch(port, "/metrics", NULL, &r));
    T_CONTAINS(r.body.data, "socpilot_alerts_in_total{stage=\"decode.0\"} 43\n");
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/healthz", NULL, &r));
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body.data, "ok\n");
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/readyz", NULL, &r));
    T_EQ_INT(r.status, 503);
    T_EQ_STR(r.body.data,
             "not ready: kafka: waiting for partition assignment\n");
    sp_buf_fini(&r.body);

    atomic_store(&ready_flag, true);
    T_OK(fetch(port, "/readyz", NULL, &r));
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body.data, "ready\n");
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/nope", NULL, &r));
    T_EQ_INT(r.status, 404);
    T_EQ_STR(r.body.data, "not found\n");
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/metrics/", NULL, &r));
    T_EQ_INT(r.status, 404);
    sp_buf_fini(&r.body);

    /* Query strings do not change the route. */
    T_OK(fetch(port, "/healthz?verbose=1", NULL, &r));
    T_EQ_INT(r.status, 200);
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/metrics", "POST", &r));
    T_EQ_INT(r.status, 405);
    T_EQ_STR(r.body.data, "method not allowed\n");
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/healthz", "DELETE", &r));
    T_EQ_INT(r.status, 405);
    sp_buf_fini(&r.body);

    T_OK(fetch(port, "/metrics", "HEAD", &r));
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body.data, "");
    sp_buf_fini(&r.body);

    sp_http_stop(h);
    sp_metrics_free(m);
}

/* A not-ready callback that gives no reason still answers a readable
 * 503 body: "not ready: unspecified", never "not ready: " and nothing. */
static void test_readyz_no_reason(void)
{
    struct sp_metrics *m = sp_metrics_new("socpilot_");
    struct sp_error err;
    sp_error_clear(&err);
    atomic_store(&ready_flag, false);
    struct sp_http *h = sp_http_start("127.0.0.1", 0, m, ready_cb, "", &err);
    T_OK(h != NULL);
    if (h) {
        struct reply r;
        T_OK(fetch(sp_http_port(h), "/readyz", NULL, &r));
        T_EQ_INT(r.status, 503);
        T_EQ_STR(r.body.data, "not ready: unspecified\n");
        sp_buf_fini(&r.body);
        sp_http_stop(h);
    }
    sp_metrics_free(m);
}

static void test_defaults(void)
{
    /* No registry, no ready callback, default address. */
    struct sp_error err;
    sp_error_clear(&err);
    struct sp_http *h = sp_http_start(NULL, 0, NULL, NULL, NULL, &err);
    T_OK(h != NULL);
    if (!h)
        return;
    struct reply r;
    T_OK(fetch(sp_http_port(h), "/readyz", NULL, &r));
    T_EQ_INT(r.status, 200);
    sp_buf_fini(&r.body);
    T_OK(fetch(sp_http_port(h), "/metrics", NULL, &r));
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body.data, "");
    sp_buf_fini(&r.body);
    sp_http_stop(h);
    sp_http_stop(NULL);
    T_EQ_INT(sp_http_port(NULL), 0);
}

static void test_start_errors(void)
{
    struct sp_error err;
    sp_error_clear(&err);
    T_OK(sp_http_start("127.0.0.1", 70000, NULL, NULL, NULL, &err) == NULL);
    T_EQ_INT(err.code, SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "70000");
    T_OK(sp_http_start("127.0.0.1", -1, NULL, NULL, NULL, &err) == NULL);
    T_OK(sp_http_start("not an address..", 0, NULL, NULL, NULL, &err) == NULL);
    T_EQ_INT(err.code, SP_ERR_CONFIG);

    /* The same port twice: the second start fails cleanly. */
    struct sp_http *a = sp_http_start("127.0.0.1", 0, NULL, NULL, NULL, &err);
    T_OK(a != NULL);
    if (!a)
        return;
    sp_error_clear(&err);
    struct sp_http *b =
        sp_http_start("127.0.0.1", sp_http_port(a), NULL, NULL, NULL, &err);
    T_OK(b == NULL);
    T_EQ_INT(err.code, SP_ERR_IO);
    sp_http_stop(b);
    sp_http_stop(a);
}

static void test_ipv6(void)
{
    struct sp_error err;
    sp_error_clear(&err);
    struct sp_http *h = sp_http_start("[::1]", 0, NULL, NULL, NULL, &err);
    if (!h)
        T_SKIP("no IPv6 loopback here");
    char url[64];
    snprintf(url, sizeof(url), "http://[::1]:%d/healthz", sp_http_port(h));
    CURL *c = curl_easy_init();
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    T_EQ_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    T_EQ_INT(status, 200);
    curl_easy_cleanup(c);
    sp_http_stop(h);
}

/* A TCP connection to 127.0.0.1:port from source address `src` (NULL =
 * any) that has sent `req`; -1 on error. */
static int raw_connect(const char *src, int port, const char *req, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (src) {
        inet_pton(AF_INET, src, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            return -1;
        }
    }
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (len && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* True when the server has closed fd (EOF or reset) within ms; what it
 * sent before is read and dropped. */
static bool raw_closed(int fd, int ms)
{
    int64_t deadline = sp_now_ms() + ms;
    for (;;) {
        int64_t left = deadline - sp_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left > 0 ? (int)left : 0) <= 0)
            return false;
        char b[4096];
        ssize_t n;
        while ((n = recv(fd, b, sizeof(b), MSG_DONTWAIT)) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
}

#define N_SLOW 40
#define N_FLOOD 300

static void test_slow_clients(void)
{
    struct sp_error err;
    sp_error_clear(&err);
    struct sp_http *h = sp_http_start("127.0.0.1", 0, NULL, NULL, NULL, &err);
    T_OK(h != NULL);
    if (!h)
        return;
    int port = sp_http_port(h);
    static const char part[] = "GET /healthz HTTP/1.1\r\nHo";
    fetch_timeout_ms = 2000;

    /* Slow clients on the probe's own address. */
    int slow[N_SLOW];
    for (int i = 0; i < N_SLOW; i++)
        slow[i] = raw_connect(NULL, port, part, sizeof(part) - 1);
    struct reply r;
    T_OK(fetch(port, "/healthz", NULL, &r));
    T_EQ_INT(r.status, 200);
    sp_buf_fini(&r.body);
    for (int i = 0; i < N_SLOW; i++)
        if (slow[i] >= 0)
            close(slow[i]);

    /* A flood from another loopback address: it keeps at most its share,
     * the rest are closed, and the probe is answered. */
    int flood[N_FLOOD];
    int opened = 0;
    for (int i = 0; i < N_FLOOD; i++) {
        flood[i] = raw_connect("127.0.0.2", port, part, sizeof(part) - 1);
        opened += flood[i] >= 0;
    }
    if (opened < N_FLOOD) {
        for (int i = 0; i < N_FLOOD; i++)
            if (flood[i] >= 0)
                close(flood[i]);
        sp_http_stop(h);
        fetch_timeout_ms = 10000;
        T_SKIP("cannot connect from 127.0.0.2");
    }
    T_OK(fetch(port, "/healthz", NULL, &r));
    T_EQ_INT(r.status, 200);
    sp_buf_fini(&r.body);
    int closed = 0;
    int64_t deadline = sp_now_ms() + 2000;
    for (int i = 0; i < N_FLOOD; i++) {
        int64_t left = deadline - sp_now_ms();
        if (raw_closed(flood[i], left > 0 ? (int)left : 0))
            closed++;
        close(flood[i]);
    }
    T_OK(closed >= N_FLOOD - SP_HTTP_PER_IP_CONNS);
    if (closed < N_FLOOD - SP_HTTP_PER_IP_CONNS)
        fprintf(stderr, "  closed %d of %d\n", closed, N_FLOOD);
    fetch_timeout_ms = 10000;
    sp_http_stop(h);
}

/* 200 requests with a 20 KB URL: libmicrohttpd complains about each, we
 * log a few lines, not 200. */
static void test_error_log_rate(void)
{
    struct sp_error err;
    sp_error_clear(&err);
    struct sp_http *h = sp_http_start("127.0.0.1", 0, NULL, NULL, NULL, &err);
    T_OK(h != NULL);
    if (!h)
        return;
    int port = sp_http_port(h);
    static char req[20 * 1024 + 64];
    size_t len = 0;
    len += (size_t)snprintf(req, sizeof(req), "GET /");
    memset(req + len, 'a', 20 * 1024);
    len += 20 * 1024;
    len += (size_t)snprintf(req + len, sizeof(req) - len,
                            " HTTP/1.1\r\nHost: x\r\n\r\n");
    struct sp_buf cap;
    sp_buf_init(&cap, 1 << 20);
    sp_log_setup(SP_LOG_WARN, SP_LOG_TEXT, NULL);
    sp_log_capture(&cap);
    int answered = 0;
    for (int i = 0; i < 200; i++) {
        int fd = raw_connect(NULL, port, req, len);
        if (fd < 0)
            continue;
        answered += raw_closed(fd, 5000);
        close(fd);
    }
    sp_http_stop(h);
    sp_log_capture(NULL);
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, NULL);
    T_EQ_INT(answered, 200);
    sp_buf_put(&cap, "", 0);
    int lines = 0;
    for (const char *p = cap.data; p && (p = strchr(p, '\n')); p++)
        lines++;
    T_OK(lines >= 1 && lines <= 3);
    if (lines > 3)
        fprintf(stderr, "  %d lines logged\n", lines);
    sp_buf_fini(&cap);
}

int main(void)
{
    t_prog = "test_http";
    /* Keep libmicrohttpd's messages and our start-up lines out of the
     * test output unless something is wrong. */
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    T_RUN(test_endpoints);
    T_RUN(test_readyz_no_reason);
    T_RUN(test_defaults);
    T_RUN(test_start_errors);
    T_RUN(test_ipv6);
    T_RUN(test_slow_clients);
    T_RUN(test_error_log_rate);
    curl_global_cleanup();
    return t_done();
}
