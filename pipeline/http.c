/*
 * http.c - the /metrics, /healthz and /readyz endpoint on libmicrohttpd.
 *
 * The daemon runs its own internal polling thread (one thread for all
 * connections: these are cheap GETs from a scraper and probes, so a pool
 * would buy nothing).  Every request is answered on its first callback,
 * from the headers alone; a request body is never read, and libmicrohttpd
 * closes such a connection after the answer.  libmicrohttpd's own error
 * messages go to our log under comp=http, at most one line per 10 s.
 *
 * Slow clients: libmicrohttpd's timeout counts from a connection's last
 * byte, so a client sending a header byte every second holds a slot for
 * ever, and with every slot held the probes go unanswered and an
 * orchestrator restarts a healthy pipeline.  So we keep our own table of
 * connections (notify callbacks) and, in the accept policy, make room for
 * each new connection: past SP_HTTP_PER_IP_CONNS from its address, or past
 * SP_HTTP_MAX_CONNS in all, the oldest connection (of that address, or of
 * all) is shut down.  A probe's connection is new and answered within
 * milliseconds, so it gets through even from the same address as an
 * attacker (probes and attackers may both be on 127.0.0.1, which is why
 * MHD_OPTION_PER_IP_CONNECTION_LIMIT, which refuses the newcomer instead,
 * is not used); one address can never hold more than its share.
 *
 * Owns: the daemon and its thread, and the struct sp_http.  Start and stop
 * from the engine's thread; the handler runs on the HTTP thread and only
 * reads the registry (under its mutex) and calls the ready callback.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"

#if MHD_VERSION >= 0x00097002
#define SP_MHD_RESULT enum MHD_Result
#else
#define SP_MHD_RESULT int
#endif

/* Per-connection memory: request line and headers; probes are tiny. */
#define SP_HTTP_CONN_MEMORY (16 * 1024)
#define SP_HTTP_REASON_MAX 256
/* Evicted connections still count in libmicrohttpd until it sees the
 * shutdown on its next turn: its own limit leaves room for them. */
#define SP_HTTP_EVICT_SLACK 64

/* One accepted connection, in struct sp_http's list (HTTP thread only). */
struct sp_http_conn {
    struct sp_http_conn *prev, *next;
    struct sockaddr_storage addr;
    int fd;
    int64_t start_ms;
    bool evicted;               /* shut down, waiting for the close */
};

struct sp_http {
    struct MHD_Daemon *daemon;
    struct sp_http_conn *conns; /* newest first; HTTP thread only */
    struct sp_metrics *m;       /* borrowed */
    sp_http_ready_cb ready;
    void *ud;
    int port;
};

static const char sp_http_text[] = "text/plain; charset=utf-8";
static const char sp_http_prom[] = "text/plain; version=0.0.4; charset=utf-8";

static void sp_http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    SP_UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* libmicrohttpd ends its messages with a newline; the log escapes
     * it, so drop it to keep the line readable. */
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    static struct sp_log_rl rl;
    sp_log_warn_rl(&rl, 10000, "http", "%s", msg);
}

/* Same address (IPv4 or IPv6, port ignored). */
static bool sp_http_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

/* Shuts down the oldest live connection (from addr's address when addr is
 * not NULL) if there are `limit` or more of them; libmicrohttpd then sees
 * the end of the stream and closes it. */
static void sp_http_make_room(struct sp_http *h, const struct sockaddr *addr,
                              int limit)
{
    int n = 0;
    struct sp_http_conn *oldest = NULL;
    for (struct sp_http_conn *c = h->conns; c; c = c->next) {
        if (c->evicted ||
            (addr && !sp_http_same_ip((struct sockaddr *)&c->addr, addr)))
            continue;
        n++;
        oldest = c;             /* the list is newest first */
    }
    if (n < limit || !oldest)
        return;
    oldest->evicted = true;
    if (oldest->fd >= 0)
        shutdown(oldest->fd, SHUT_RDWR);
}

static SP_MHD_RESULT sp_http_accept(void *cls, const struct sockaddr *addr,
                                    socklen_t addrlen)
{
    struct sp_http *h = cls;
    if (addr && addrlen >= sizeof(struct sockaddr_in))
        sp_http_make_room(h, addr, SP_HTTP_PER_IP_CONNS);
    sp_http_make_room(h, NULL, SP_HTTP_MAX_CONNS);
    return MHD_YES;
}

static void sp_http_notify(void *cls, struct MHD_Connection *conn,
                           void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
    struct sp_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct sp_http_conn *c = calloc(1, sizeof(*c));
        if (!c)
            return;             /* not tracked: only never evicted */
        c->fd = -1;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            c->fd = ci->connect_fd;
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            socklen_t len = ci->client_addr->sa_family == AF_INET6
                                ? sizeof(struct sockaddr_in6)
                                : sizeof(struct sockaddr_in);
            memcpy(&c->addr, ci->client_addr, len);
        }
        c->start_ms = sp_now_ms();
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct sp_http_conn *c = *socket_context;
        if (!c)
            return;
        if (c->prev)
            c->prev->next = c->next;
        else
            h->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        free(c);
        *socket_context = NULL;
    }
}

/* Queues `resp` (consumed) with the common headers. */
static SP_MHD_RESULT sp_http_send(struct MHD_Connection *conn,
                                  unsigned int status,
                                  struct MHD_Response *resp,
                                  const char *ctype)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    SP_MHD_RESULT ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A constant body (string literal). */
static SP_MHD_RESULT sp_http_const(struct MHD_Connection *conn,
                                   unsigned int status, const char *body)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    return sp_http_send(conn, status, resp, sp_http_text);
}

static SP_MHD_RESULT sp_http_metrics(struct sp_http *h,
                                     struct MHD_Connection *conn)
{
    struct sp_buf b;
    sp_buf_init(&b, SP_HTTP_METRICS_MAX);
    enum sp_err e = h->m ? sp_metrics_render(h->m, &b) : SP_OK;
    if (e != SP_OK) {
        static struct sp_log_rl rl;
        sp_log_error_rl(&rl, 60000, "http", "cannot render /metrics: %s",
                        sp_strerror(e));
        sp_buf_fini(&b);
        return sp_http_const(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                             "cannot render metrics\n");
    }
    size_t len = 0;
    char *body = sp_buf_steal(&b, &len);
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!resp)
        free(body);
    return sp_http_send(conn, MHD_HTTP_OK, resp, sp_http_prom);
}

static SP_MHD_RESULT sp_http_readyz(struct sp_http *h,
                                    struct MHD_Connection *conn)
{
    char reason[SP_HTTP_REASON_MAX] = "";
    if (!h->ready || h->ready(h->ud, reason, sizeof(reason)))
        return sp_http_const(conn, MHD_HTTP_OK, "ready\n");
    reason[sizeof(reason) - 1] = '\0';
    /* The reason is one line of text: control characters become spaces. */
    for (char *p = reason; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            *p = ' ';
    }
    char body[SP_HTTP_REASON_MAX + 32];
    int n = snprintf(body, sizeof(body), "not ready: %s\n",
                     reason[0] ? reason : "unspecified");
    if (n < 0)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        SP_MIN((size_t)n, sizeof(body) - 1), body, MHD_RESPMEM_MUST_COPY);
    return sp_http_send(conn, MHD_HTTP_SERVICE_UNAVAILABLE, resp, sp_http_text);
}

static SP_MHD_RESULT sp_http_handle(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload,
                                    size_t *upload_size, void **req_cls)
{
    struct sp_http *h = cls;
    SP_UNUSED(version);
    SP_UNUSED(upload);
    SP_UNUSED(upload_size);
    SP_UNUSED(req_cls);

    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return sp_http_const(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                             "method not allowed\n");
    if (strcmp(url, "/metrics") == 0)
        return sp_http_metrics(h, conn);
    if (strcmp(url, "/healthz") == 0)
        return sp_http_const(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return sp_http_readyz(h, conn);
    return sp_http_const(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* Parses addr:port into ss: a numeric IPv4 or IPv6 address ("[v6]"
 * brackets accepted) or "localhost".  Numeric only on purpose: a listen
 * address is local, and start-up must not wait on DNS. */
static enum sp_err sp_http_resolve(const char *addr, int port,
                                   struct sockaddr_storage *ss,
                                   socklen_t *ss_len, struct sp_error *err)
{
    char host[256];
    const char *a = addr && *addr ? addr : "127.0.0.1";
    if (sp_strcaseeq(a, "localhost"))
        a = "127.0.0.1";
    size_t alen = strlen(a);
    if (a[0] == '[' && alen >= 2 && a[alen - 1] == ']') {
        a++;
        alen -= 2;
    }
    if (alen >= sizeof(host))
        return sp_error_set(err, SP_ERR_CONFIG, "http: address too long");
    memcpy(host, a, alen);
    host[alen] = '\0';

    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0 || !res)
        return sp_error_set(err, SP_ERR_CONFIG, "http: listen address "
                            "\"%s\" is not a numeric IP address: %s", host,
                            rc ? gai_strerror(rc) : "no address");
    if (res->ai_addrlen > sizeof(*ss) ||
        (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
        freeaddrinfo(res);
        return sp_error_set(err, SP_ERR_CONFIG, "http: unsupported address "
                            "family for \"%s\"", host);
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return SP_OK;
}

struct sp_http *sp_http_start(const char *addr, int port, struct sp_metrics *m,
                              sp_http_ready_cb ready, void *ud,
                              struct sp_error *err)
{
    if (port < 0 || port > 65535) {
        sp_error_set(err, SP_ERR_CONFIG, "http: port %d out of range 0-65535",
                     port);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    if (sp_http_resolve(addr, port, &ss, &ss_len, err) != SP_OK)
        return NULL;

    struct sp_http *h = calloc(1, sizeof(*h));
    if (!h) {
        sp_error_set(err, SP_ERR_NOMEM, "http: out of memory");
        return NULL;
    }
    h->m = m;
    h->ready = ready;
    h->ud = ud;

    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)port, sp_http_accept, h, sp_http_handle, h,
        MHD_OPTION_EXTERNAL_LOGGER, sp_http_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_CONNECTION, sp_http_notify, h,
        MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(SP_HTTP_MAX_CONNS + SP_HTTP_EVICT_SLACK),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)SP_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SP_HTTP_CONN_MEMORY,
        MHD_OPTION_END);
    char shown[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, shown,
                  sizeof(shown));
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, shown,
                  sizeof(shown));
    if (!h->daemon) {
        sp_error_set(err, SP_ERR_IO, "http: cannot listen on %s port %d "
                     "(address in use or not local?)", shown, port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? (int)info->port : port;
    sp_log_debug("http", "serving /metrics /healthz /readyz on %s port %d",
                 shown, h->port);
    return h;
}

int sp_http_port(const struct sp_http *h)
{
    return h ? h->port : 0;
}

void sp_http_stop(struct sp_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    /* Closing notifications normally empty the list; free what is left. */
    while (h->conns) {
        struct sp_http_conn *c = h->conns;
        h->conns = c->next;
        free(c);
    }
    free(h);
}
