/*
 * redis.h - a blocking Redis connection (hiredis) with what socpilot's
 * stages need around it: TCP or unix socket, AUTH (password or ACL user +
 * password), SELECT, connect and command timeouts, reconnection with
 * exponential backoff, pipelining, Lua scripts run by EVALSHA and loaded
 * again on NOSCRIPT, Redis Cluster (found by CLUSTER SLOTS: one connection
 * per master, commands routed by their key's slot, the map read again
 * after MOVED/ASK, SCAN over every master), and one table that maps Redis
 * errors onto enum sp_err.
 *
 * Owns: the hiredis context, copies of the options, the list of
 * registered scripts (borrowed descriptors whose `sha` it fills in).
 *
 * Threads: a struct sp_redis is used by one thread at a time (the engine
 * thread for a stage, the main thread for the CLI).  Nothing here has
 * global state.  Writes go through write(2): the process must ignore
 * SIGPIPE (socpilot's commands do), or a dropped connection kills it.
 */
#ifndef SP_REDIS_H
#define SP_REDIS_H

#include <hiredis/hiredis.h>

#include "config.h"
#include "sp.h"

struct sp_redis_opts {
    const char *host;            /* default "127.0.0.1" */
    int port;                    /* default 6379 */
    const char *unix_path;       /* non-empty: unix socket, host/port unused */
    const char *user;            /* ACL user (Redis 6+); NULL/"" = default */
    const char *password;        /* NULL/"" = no AUTH */
    int db;                      /* SELECT when non-zero */
    int connect_timeout_ms;      /* default 2000 */
    int command_timeout_ms;      /* default 5000; 0 = none */
    int backoff_min_ms;          /* first wait after a failed connect (100) */
    int backoff_max_ms;          /* longest wait (10000) */
    const char *log_comp;        /* log component, default "redis" */
};

/*
 * The redis.* configuration keys, for a stage type's key table.  They are
 * declared once (by the correlate stage's table); every other Redis user
 * reads the same keys with sp_redis_opts_from_config().
 */
/* Longest unix socket path: sun_path is 108 bytes with its NUL, and
 * hiredis would cut a longer one silently. */
#define SP_REDIS_UNIX_PATH_MAX 107

#define SP_REDIS_CFG_KEYS                                                    \
    {"redis.host", SP_CFG_STR, "127.0.0.1", 0, 0,                            \
     "Redis host, or any node of a Redis Cluster (ignored when "            \
     "redis.unix_socket is set)", 0, NULL},                                  \
    {"redis.port", SP_CFG_INT, "6379", 1, 65535, "Redis TCP port", 0, NULL}, \
    {"redis.unix_socket", SP_CFG_STR, "", 0, SP_REDIS_UNIX_PATH_MAX,         \
     "Path of a Redis unix socket; when set, used instead of host/port", 0,  \
     NULL},                                                                  \
    {"redis.user", SP_CFG_STR, "", 0, 0,                                     \
     "ACL user name (Redis 6+); empty = the default user", 0, NULL},         \
    {"redis.password", SP_CFG_STR, "", 0, 0,                                 \
     "Password for AUTH; empty = no AUTH (or an empty one when "             \
     "redis.user is set)", SP_CFG_SECRET, NULL},                             \
    {"redis.db", SP_CFG_INT, "0", 0, 1023,                                   \
     "Database number (SELECT; 0 with a Redis Cluster)", 0, NULL},           \
    {"redis.connect_timeout", SP_CFG_DURATION, "2s", 10, 600000,             \
     "Timeout for connecting (and AUTH/SELECT)", 0, NULL},                   \
    {"redis.command_timeout", SP_CFG_DURATION, "5s", 0, 600000,              \
     "Timeout for one reply; past it the connection is dropped and the "     \
     "work retried (0 = none)", 0, NULL},                                    \
    {"redis.backoff_min", SP_CFG_DURATION, "100ms", 1, 600000,               \
     "First wait before reconnecting after a failure", 0, NULL},             \
    {"redis.backoff_max", SP_CFG_DURATION, "10s", 1, 3600000,                \
     "Longest wait between reconnection attempts (doubling from the min)",   \
     0, NULL}

void sp_redis_opts_default(struct sp_redis_opts *o);
/* Fills o from the validated redis.* keys (strings borrowed from cfg). */
void sp_redis_opts_from_config(const struct sp_config *cfg,
                               struct sp_redis_opts *o);

/* A Lua script.  `sha` is filled in by the connection (SCRIPT LOAD) on
 * every connect and after NOSCRIPT; the descriptor must outlive every
 * connection it was added to. */
struct sp_redis_script {
    const char *name;            /* for logs */
    const char *src;
    char sha[41];
};

struct sp_redis_stats {
    uint64_t round_trips;        /* request flushes that waited for replies */
    uint64_t commands;           /* commands sent */
    uint64_t connects;           /* successful connects */
    uint64_t failures;           /* connects that failed + connections lost */
    uint64_t script_loads;       /* SCRIPT LOADs (connects and NOSCRIPT) */
    uint64_t redirects;          /* MOVED/ASK replies outside cluster mode
                                    (a cluster the connection cannot see) */
    uint64_t remaps;             /* MOVED/ASK in cluster mode: slots moved,
                                    the map is read again */
};

struct sp_redis;

/* Returns a new, unconnected connection object (options copied), or NULL
 * when out of memory.  Free with sp_redis_free(). */
struct sp_redis *sp_redis_new(const struct sp_redis_opts *o);
void sp_redis_free(struct sp_redis *r);

/* Registers a script (borrowed) to be loaded on every (re)connect, at most
 * 16.  When already connected it is loaded now. */
enum sp_err sp_redis_add_script(struct sp_redis *r,
                                struct sp_redis_script *s);

/*
 * Connects now (dropping any current connection): connect, timeouts,
 * AUTH, SELECT, SCRIPT LOAD.  SP_ERR_CONFIG for refused credentials or a
 * bad db, SP_ERR_RETRY for everything transient (refused, timeout,
 * LOADING...); err (may be NULL) says what happened.
 */
enum sp_err sp_redis_connect(struct sp_redis *r, struct sp_error *err);

/*
 * Makes sure the connection is up: SP_OK when connected (or connected
 * now); SP_ERR_RETRY while down, attempting a reconnect only once the
 * backoff since the last failure has passed (exponential, from
 * backoff_min to backoff_max, with +-20% jitter).  now_ms: sp_now_ms().
 */
enum sp_err sp_redis_ensure(struct sp_redis *r, int64_t now_ms);

bool sp_redis_is_up(const struct sp_redis *r);
/* "127.0.0.1:6379 up" or "127.0.0.1:6379 down: <last error>". */
void sp_redis_describe(const struct sp_redis *r, char *buf, size_t n);

/* Memory of the server, summed over the masters of a cluster (INFO
 * memory): used and maxmemory in bytes (max 0: some master has no limit;
 * -1: not known). */
struct sp_redis_mem {
    long long used, max;
};
/* Whether Redis may evict keys: 1 when the server (any master of a
 * cluster) has a maxmemory and a maxmemory-policy other than noeviction,
 * 0 when none has, -1 when it cannot be told (INFO refused, not
 * connected).  mem gets the memory figures.  detail: the
 * node and its settings, or why not.  One round trip per node; nothing
 * may be pending. */
int sp_redis_memory(struct sp_redis *r, struct sp_redis_mem *mem,
                    char *detail, size_t n);
/* Drops the connection (pending replies are lost); the next ensure()
 * reconnects at once, later ones back off.  why is logged. */
void sp_redis_disconnect(struct sp_redis *r, const char *why);

/*
 * Pipelining: append any number of commands, then read exactly one reply
 * per command, in order.  The first read sends everything (one round
 * trip).  argv/lens are borrowed for the call (hiredis copies them).
 * A connection-level failure (I/O, EOF, timeout, protocol) drops the
 * connection and returns SP_ERR_RETRY; the caller starts over after
 * ensure().
 */
enum sp_err sp_redis_append(struct sp_redis *r, int argc, const char **argv,
                            const size_t *lens);
/* EVALSHA: argv[0..2] and lens[0..2] are reserved slots this function
 * fills ("EVALSHA", sha, numkeys); the script's keys start at argv[3],
 * followed by its arguments.  argc counts the reserved slots. */
enum sp_err sp_redis_append_evalsha(struct sp_redis *r,
                                    const struct sp_redis_script *s,
                                    int nkeys, int argc, const char **argv,
                                    size_t *lens);
/* Next reply: *out is a new reference (freeReplyObject()).  Error
 * *replies* are returned as SP_OK with the reply (see
 * sp_redis_reply_err()); only connection failures fail the call. */
enum sp_err sp_redis_read(struct sp_redis *r, redisReply **out);
/* Replies still to be read for appended commands. */
size_t sp_redis_pending(const struct sp_redis *r);

/* One command, one round trip.  *out: new reference, also on error
 * replies, whose mapped code is returned. */
enum sp_err sp_redis_call(struct sp_redis *r, redisReply **out, int argc,
                          const char **argv, const size_t *lens);
/* EVALSHA once, and on NOSCRIPT: SCRIPT LOAD, then EVALSHA again.  Same
 * argv convention as sp_redis_append_evalsha(). */
enum sp_err sp_redis_eval(struct sp_redis *r, struct sp_redis_script *s,
                          redisReply **out, int nkeys, int argc,
                          const char **argv, size_t *lens);
/* SCRIPT LOAD of every registered script (after a NOSCRIPT reply in a
 * pipeline). */
enum sp_err sp_redis_load_scripts(struct sp_redis *r);

/*
 * The one place Redis errors become enum sp_err:
 *   not an error reply -> SP_OK
 *   NOSCRIPT -> SP_ERR_NOTFOUND
 *   LOADING BUSY TRYAGAIN CLUSTERDOWN MASTERDOWN READONLY OOM MISCONF
 *   NOREPLICAS -> SP_ERR_RETRY (the server will recover; retry the work)
 *   NOAUTH WRONGPASS NOPERM -> SP_ERR_CONFIG
 *   anything else (script errors, WRONGTYPE, MOVED...) -> SP_ERR_REMOTE
 */
enum sp_err sp_redis_reply_err(const redisReply *rep);

void sp_redis_stats(const struct sp_redis *r, struct sp_redis_stats *st);

/* Formatter hook: appends the RESP bytes the command would be sent as
 * to out, so tests can check them without a server. */
enum sp_err sp_redis_format(struct sp_buf *out, int argc, const char **argv,
                            const size_t *lens);

#endif /* SP_REDIS_H */
