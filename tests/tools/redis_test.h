/*
 * redis_test.h - test helpers for anything that talks to Redis: start a
 * real `redis-server` (the Debian package) on a free loopback port with a
 * private temp dir, wait until it answers PING, kill/restart it for fault
 * tests, stop it and remove its files; and an in-memory struct sp_sink
 * that records every output and acknowledges it (or fails it) at once.
 *
 * Header-only (static inline functions) so that any test program or
 * benchmark can include it without a build rule.  A program that uses it
 * must ignore SIGPIPE (a killed server otherwise kills the test).
 *
 * Thread-compatible: one struct per thread; the sink takes a mutex so
 * two stage instances on two threads may share one.
 */
#ifndef SP_REDIS_TEST_H
#define SP_REDIS_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stage.h"

struct sp_test_redis {
    pid_t pid;
    int port;
    bool persist;                   /* appendonly yes, appendfsync always */
    char bin[512];
    char dir[512];
    const char *extra[16];          /* more redis-server arguments */
    int n_extra;
};

static inline void sp_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Finds redis-server on PATH (or $REDIS_SERVER).  false = not installed. */
static inline bool sp_test_redis_find(char *out, size_t n)
{
    const char *env = getenv("REDIS_SERVER");
    if (env && access(env, X_OK) == 0) {
        snprintf(out, n, "%s", env);
        return true;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/redis-server", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

static inline int sp_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A connection to the test server (NULL when it does not answer). */
static inline redisContext *sp_test_redis_connect(const struct sp_test_redis *tr)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", tr->port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

static inline bool sp_test_redis_ping(const struct sp_test_redis *tr)
{
    redisContext *c = sp_test_redis_connect(tr);
    if (!c)
        return false;
    /* Any answer will do: a server with requirepass says NOAUTH. */
    redisReply *r = redisCommand(c, "PING");
    bool ok = r && (r->type == REDIS_REPLY_STATUS ||
                    r->type == REDIS_REPLY_ERROR);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* Runs one command on a fresh connection; returns the reply (caller
 * frees) or NULL. */
static inline redisReply *sp_test_redis_cmd(const struct sp_test_redis *tr,
                                            const char *fmt, ...)
{
    redisContext *c = sp_test_redis_connect(tr);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* Starts the server on tr->port (0 = pick a free one) in tr->dir. */
static inline bool sp_test_redis_spawn(struct sp_test_redis *tr)
{
    char port[16], log[600];
    snprintf(port, sizeof(port), "%d", tr->port);
    snprintf(log, sizeof(log), "%s/redis.log", tr->dir);
    const char *argv[64];
    int n = 0;
    argv[n++] = tr->bin;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = tr->dir;
    argv[n++] = "--logfile";
    argv[n++] = log;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = tr->persist ? "yes" : "no";
    if (tr->persist) {
        argv[n++] = "--appendfsync";
        argv[n++] = "always";
    }
    for (int i = 0; i < tr->n_extra && n < 62; i++)
        argv[n++] = tr->extra[i];
    argv[n] = NULL;
    /* A server forked by the main thread dies with the test program, so a
     * crashed test leaves no server behind.  (The death signal follows
     * the forking *thread*: servers restarted from a helper thread, as
     * fault tests do, are stopped by the test itself.) */
    pid_t parent = getpid();
    bool main_thread = parent == (pid_t)syscall(SYS_gettid);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        if (main_thread) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent)
                _exit(127);
        }
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execv(tr->bin, (char *const *)argv);
        _exit(127);
    }
    tr->pid = pid;
    for (int i = 0; i < 500; i++) {             /* up to 5 s */
        if (sp_test_redis_ping(tr))
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            tr->pid = 0;
            return false;                       /* port taken, say */
        }
        sp_test_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tr->pid = 0;
    return false;
}

/*
 * Starts a fresh server.  Returns 1 on success, 0 when redis-server is
 * not installed (skip the test), -1 when it would not start.
 */
static inline int sp_test_redis_start(struct sp_test_redis *tr)
{
    if (!sp_test_redis_find(tr->bin, sizeof(tr->bin)))
        return 0;
    const char *tmp = getenv("TMPDIR");
    snprintf(tr->dir, sizeof(tr->dir), "%s/socpilot-redis-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tr->dir))
        return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        tr->port = sp_test_free_port();
        if (tr->port > 0 && sp_test_redis_spawn(tr))
            return 1;
    }
    return -1;
}

/* The same server again (same port, same dir: persisted data returns). */
static inline bool sp_test_redis_restart(struct sp_test_redis *tr)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        if (sp_test_redis_spawn(tr))
            return true;
        sp_test_sleep_ms(50);       /* the old socket may linger briefly */
    }
    return false;
}

static inline void sp_test_redis_kill(struct sp_test_redis *tr, int sig)
{
    if (tr->pid > 0) {
        kill(tr->pid, sig);
        waitpid(tr->pid, NULL, 0);
        tr->pid = 0;
    }
}

static inline void sp_test_redis_stop(struct sp_test_redis *tr)
{
    sp_test_redis_kill(tr, SIGTERM);
    if (!tr->dir[0])
        return;
    DIR *d = opendir(tr->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1200];
            snprintf(p, sizeof(p), "%s/%s", tr->dir, e->d_name);
            struct stat sb;
            if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                /* appenddirname (Redis 7) holds the AOF files */
                DIR *sd = opendir(p);
                struct dirent *se;
                while (sd && (se = readdir(sd)) != NULL) {
                    char sp[1500];
                    snprintf(sp, sizeof(sp), "%s/%s", p, se->d_name);
                    if (se->d_name[0] != '.')
                        unlink(sp);
                }
                if (sd)
                    closedir(sd);
                rmdir(p);
            } else {
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(tr->dir);
    tr->dir[0] = '\0';
}

/* ---- the memory sink ------------------------------------------------------- */

struct sp_test_out {
    char *topic, *key, *value, *version;
    size_t vlen;
};

enum sp_test_ack { SP_TEST_ACK_OK, SP_TEST_ACK_FAIL, SP_TEST_REFUSE };

struct sp_test_sink {
    struct sp_sink sink;            /* first: &ts->sink is what stages get */
    pthread_mutex_t mu;
    struct sp_test_out *outs;
    size_t n, cap;
    enum sp_test_ack mode;
};

static inline char *sp_test_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static inline enum sp_err sp_test_sink_produce(struct sp_sink *sink,
                                               struct sp_batch *batch,
                                               const char *topic,
                                               const void *key, size_t klen,
                                               const void *val, size_t vlen,
                                               const struct sp_header *hdrs,
                                               size_t n_hdrs)
{
    struct sp_test_sink *ts = sink->ctx;
    if (ts->mode == SP_TEST_REFUSE)
        return SP_ERR_RETRY;
    pthread_mutex_lock(&ts->mu);
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 256;
        struct sp_test_out *o = realloc(ts->outs, cap * sizeof(*o));
        if (!o) {
            pthread_mutex_unlock(&ts->mu);
            return SP_ERR_NOMEM;
        }
        ts->outs = o;
        ts->cap = cap;
    }
    struct sp_test_out *o = &ts->outs[ts->n++];
    o->topic = strdup(topic);
    o->key = sp_test_strndup(key, klen);
    o->value = sp_test_strndup(val, vlen);
    o->vlen = vlen;
    o->version = NULL;
    for (size_t i = 0; i < n_hdrs; i++)
        if (strcmp(hdrs[i].name, "version") == 0)
            o->version = sp_test_strndup(hdrs[i].value, hdrs[i].len);
    pthread_mutex_unlock(&ts->mu);
    batch->pending++;
    sp_batch_ack(batch, ts->mode == SP_TEST_ACK_OK);
    return SP_OK;
}

static inline void sp_test_sink_init(struct sp_test_sink *ts)
{
    memset(ts, 0, sizeof(*ts));
    pthread_mutex_init(&ts->mu, NULL);
    ts->sink.produce = sp_test_sink_produce;
    ts->sink.ctx = ts;
}

static inline void sp_test_sink_clear(struct sp_test_sink *ts)
{
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->outs[i].topic);
        free(ts->outs[i].key);
        free(ts->outs[i].value);
        free(ts->outs[i].version);
    }
    ts->n = 0;
    pthread_mutex_unlock(&ts->mu);
}

static inline void sp_test_sink_fini(struct sp_test_sink *ts)
{
    sp_test_sink_clear(ts);
    free(ts->outs);
    ts->outs = NULL;
    ts->cap = 0;
    pthread_mutex_destroy(&ts->mu);
}

/* Outputs on topic (0 when none). */
static inline size_t sp_test_sink_count(struct sp_test_sink *ts,
                                        const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < ts->n; i++)
        n += strcmp(ts->outs[i].topic, topic) == 0;
    pthread_mutex_unlock(&ts->mu);
    return n;
}

#endif /* SP_REDIS_TEST_H */
