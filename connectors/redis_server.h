/*
 * redis_server.h - a private `redis-server` child for the embedded
 * default (`redis.embedded: true`, what `make run` uses) and for tests:
 * the Debian package's binary, on a free loopback port, in a private
 * temporary directory, no persistence unless asked; stopped and cleaned
 * up with the engine.
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
    char bin[512];
    char dir[512];
    const char *extra[16];   /* more redis-server arguments (tests: auth,
                                unix socket, debug command); set before
                                start, borrowed */
    int n_extra;
};

/* Finds redis-server on PATH (or $REDIS_SERVER). */
bool sp_redis_server_find(char *out, size_t n);
/* Starts a server on a free port; waits until it answers PING (5 s).
 * extra/n_extra are kept; everything else is (re)initialised.
 * SP_ERR_NOTFOUND when redis-server is not installed. */
enum sp_err sp_redis_server_start(struct sp_redis_server *rs, bool persist,
                                  struct sp_error *err);
/* Starts it again on the same port and dir (persisted data returns). */
bool sp_redis_server_restart(struct sp_redis_server *rs);
/* Sends sig and reaps the process (the dir stays). */
void sp_redis_server_kill(struct sp_redis_server *rs, int sig);
/* Stops the server and removes its directory.  NULL-safe, idempotent. */
void sp_redis_server_stop(struct sp_redis_server *rs);
/* A free loopback TCP port, or -1. */
int sp_free_port(void);

#endif /* SP_REDIS_SERVER_H */
