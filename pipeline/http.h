/*
 * http.h - the operations HTTP endpoint: Prometheus metrics and the
 * liveness/readiness probes, served by libmicrohttpd on its own thread.
 *
 *   GET /metrics  200, text/plain; version=0.0.4 (the registry rendered)
 *   GET /healthz  200 "ok\n"
 *   GET /readyz   200 "ready\n" or 503 "not ready: <reason>\n"
 *   other paths   404;  methods other than GET and HEAD: 405
 *
 * Owns: the daemon and its thread.  Bounded: SP_HTTP_MAX_CONNS concurrent
 * connections, SP_HTTP_PER_IP_CONNS of them per client address,
 * SP_HTTP_TIMEOUT_S idle timeout per connection, a small per-connection
 * memory limit (requests are a request line and headers).  A new
 * connection past either limit closes the oldest one (of that address, or
 * of all), so slow or idle clients cannot keep a probe from being served.
 * sp_http_start()/sp_http_stop() are called by the thread that owns the
 * engine; the ready callback and metric rendering run on the HTTP thread.
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "sp.h"

#define SP_HTTP_MAX_CONNS 256
#define SP_HTTP_PER_IP_CONNS 8
#define SP_HTTP_TIMEOUT_S 3
/* Largest /metrics body served; past it the answer is 500. */
#define SP_HTTP_METRICS_MAX ((size_t)16 << 20)

struct sp_http;

/* Called on the HTTP thread for every /readyz request, so it must be
 * thread-safe and quick.  Returns true when ready; otherwise writes a short
 * reason (NUL-terminated) into reason[0..n). */
typedef bool (*sp_http_ready_cb)(void *ud, char *reason, size_t n);

/*
 * Starts serving.  addr: a numeric IPv4 or IPv6 address ("[::1]" allowed,
 * "0.0.0.0" or "::" for every interface) or "localhost"; NULL or "" =
 * 127.0.0.1.  Names are not resolved (no DNS at start-up).  port:
 * 0..65535, 0 = ephemeral (see sp_http_port()).  m: borrowed, must outlive
 * the server; NULL serves an empty /metrics.  ready: NULL = always ready.
 * Returns a new server (sp_http_stop()) or NULL with err set.
 */
struct sp_http *sp_http_start(const char *addr, int port, struct sp_metrics *m,
                              sp_http_ready_cb ready, void *ud,
                              struct sp_error *err);

/* The bound port (the real one when started with port 0). */
int sp_http_port(const struct sp_http *h);

/* Stops the daemon, waits for its thread, frees h.  NULL-safe. */
void sp_http_stop(struct sp_http *h);

#endif /* SP_HTTP_H */
