/*
 * redis_server.h - a private `redis-server` child for the embedded
 * default (`redis.embedded: true`, what `make run` uses) and for tests:
 * the Debian package's binary, on a free loopback port (tests) or only on
 * a unix socket in its private 0700 temporary directory (`unix_only`, the
 * engine: no other user can reach it, so it needs no password), no
 * persistence unless asked; stopped and cleaned up with the engine.
 *
 * With die_with_parent (the engine's) the child does not outlive its
 * parent: it gets SIGTERM when the thread that started it dies
 * (PR_SET_PDEATHSIG, so only for a server started by a thread that lives
 * as long as the process, as the main thread does; tests restart theirs
 * from short-lived threads).  It runs in its
 * own process group, so a terminal's ^C reaches only socpilot, which stops
 * it in order, and inherits no descriptor past stderr.
 *
 * The command line is fixed (no input reaches it).  Called from the main
 * thread at start-up and shutdown.
 */
#ifndef SP_REDIS_SERVER_H
#define SP_REDIS_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "sp.h"

struct sp_redis_server {
    pid_t pid;
    int port;
    bool persist;            /* appendonly yes, appendfsync always */
    bool unix_only;          /* serve only on `sock` (port stays 0); set
                                before start */
    bool die_with_parent;    /* PR_SET_PDEATHSIG: it exits when the
                                *thread* that started it ends, so only
                                for a server started by a thread that
                                lasts (the engine's); set before start */
    char bin[512];
    char dir[512];
    char sock[108];          /* <dir>/redis.sock when unix_only */
    const char *extra[16];   /* more redis-server arguments (tests: auth,
                                unix socket, debug command); set before
                                start, borrowed */
    int n_extra;
};

/* Makes a started server ask for the given credentials (the default user's
 * password, and user when not "default": nopass without a password), set
 * over a connection rather than on its command line, where other local
 * users could read them.  Nothing to do without either. */
enum sp_err sp_redis_server_require(struct sp_redis_server *rs,
                                    const char *user, const char *password,
                                    struct sp_error *err);
/* Finds redis-server on PATH (or $REDIS_SERVER). */
bool sp_redis_server_find(char *out, size_t n);
/* Starts a server on a free port (or on its unix socket when unix_only);
 * waits until it answers PING (5 s).  extra/n_extra and unix_only are
 * kept; everything else is (re)initialised.
 * SP_ERR_NOTFOUND when redis-server is not installed. */
enum sp_err sp_redis_server_start(struct sp_redis_server *rs, bool persist,
                                  struct sp_error *err);
/* Starts it again on the same port (or socket) and dir (persisted data
 * returns). */
bool sp_redis_server_restart(struct sp_redis_server *rs);
/* Sends sig and reaps the process (the dir stays). */
void sp_redis_server_kill(struct sp_redis_server *rs, int sig);
/* Stops the server and removes its directory.  NULL-safe, idempotent. */
void sp_redis_server_stop(struct sp_redis_server *rs);
/* A free loopback TCP port, or -1. */
int sp_free_port(void);

#endif /* SP_REDIS_SERVER_H */
