/*
 * redis_server.c - spawn, watch and remove a private redis-server (see
 * redis_server.h).  fork + execv with a fixed argument vector; the child's
 * output goes to a log file in its directory.  Between fork and execv the
 * child only makes async-signal-safe calls (we may have threads).
 */
#include "redis_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bool sp_redis_server_find(char *out, size_t n)
{
    const char *env = getenv("REDIS_SERVER");
    if (env && *env && access(env, X_OK) == 0) {
        snprintf(out, n, "%s", env);
        return true;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s:/usr/bin:/usr/sbin:/usr/local/bin",
             path ? path : "");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        if (!*d)
            continue;
        snprintf(out, n, "%s/redis-server", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

int sp_free_port(void)
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

/* One command on a fresh connection to rs (its unix socket or its port):
 * its reply type, or -1 when it could not be sent or read. */
static int server_call(const struct sp_redis_server *rs, int secs, int argc,
                       const char **argv)
{
    struct timeval tv = {secs, 0};
    redisContext *c = rs->unix_only
                          ? redisConnectUnixWithTimeout(rs->sock, tv)
                          : redisConnectWithTimeout("127.0.0.1", rs->port, tv);
    if (!c)
        return -1;
    int type = -1;
    if (!c->err) {
        redisReply *r = redisCommandArgv(c, argc, argv, NULL);
        if (r) {
            type = r->type;
            freeReplyObject(r);
        }
    }
    redisFree(c);
    return type;
}

/* Up: PING answered, an error included (NOAUTH once it asks for a
 * password). */
static bool answers_ping(const struct sp_redis_server *rs)
{
    const char *argv[] = {"PING"};
    int type = server_call(rs, 1, 1, argv);
    return type == REDIS_REPLY_STATUS || type == REDIS_REPLY_ERROR;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* In the child: closes every descriptor from 3 up.  close_range() where
 * the kernel has it (5.9+), else a loop up to the descriptor limit
 * (reading /proc/self/fd would need opendir, which allocates). */
static void close_from_3(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20)
        max = 1 << 20;
    for (int fd = 3; fd < max; fd++)
        close(fd);
}

static bool spawn(struct sp_redis_server *rs)
{
    char port[16], log[600];
    snprintf(port, sizeof(port), "%d", rs->unix_only ? 0 : rs->port);
    snprintf(log, sizeof(log), "%s/redis.log", rs->dir);
    const char *argv[48] = {
        rs->bin, "--port", port, "--bind", "127.0.0.1", "--dir", rs->dir,
        "--logfile", log, "--daemonize", "no", "--save", "",
        "--appendonly", rs->persist ? "yes" : "no",
        "--appendfsync", rs->persist ? "always" : "everysec"};
    int argc = 17;
    if (rs->unix_only) {
        argv[argc++] = "--unixsocket";
        argv[argc++] = rs->sock;
        argv[argc++] = "--unixsocketperm";
        argv[argc++] = "700";
    }
    for (int i = 0; i < rs->n_extra && i < 16; i++)
        argv[argc++] = rs->extra[i];
    argv[argc] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        /* Dies with us (SIGKILL included); we may already be gone. */
        if (rs->die_with_parent &&
            (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent))
            _exit(127);
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        close_from_3();     /* Kafka sockets, librdkafka's pipes, ... */
        execv(rs->bin, (char *const *)argv);
        _exit(127);
    }
    rs->pid = pid;
    for (int i = 0; i < 500; i++) {     /* up to 5 s */
        if (answers_ping(rs))
            return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            rs->pid = 0;
            return false;               /* the port was taken, say */
        }
        sleep_ms(10);
    }
    sp_redis_server_kill(rs, SIGKILL);
    return false;
}

/* One command on a fresh connection to rs; true on a status reply. */
static bool server_cmd(const struct sp_redis_server *rs, int argc,
                       const char **argv)
{
    return server_call(rs, 2, argc, argv) == REDIS_REPLY_STATUS;
}

enum sp_err sp_redis_server_require(struct sp_redis_server *rs,
                                    const char *user, const char *password,
                                    struct sp_error *err)
{
    bool named = user && user[0] && strcmp(user, "default") != 0;
    if (named) {
        /* No channel rule ("&*", Redis 6.2+): socpilot uses no pub/sub,
         * and Redis 6.0 would refuse it. */
        char pass[1024] = "nopass";
        if (password && password[0] &&
            snprintf(pass, sizeof(pass), ">%s", password) >= (int)sizeof(pass))
            return sp_error_set(err, SP_ERR_CONFIG, "redis.password: too long");
        const char *argv[] = {"ACL", "SETUSER", user, "on", pass, "~*",
                              "+@all"};
        bool ok = server_cmd(rs, 7, argv);
        explicit_bzero(pass, sizeof(pass));
        if (!ok)
            return sp_error_set(err, SP_ERR_REMOTE, "embedded redis-server: "
                                "cannot create ACL user %s", user);
    }
    if (!password || !password[0])
        return SP_OK;
    /* The default user asks for the same password (with a named user it
     * stays on: the server is private to this process's user anyway). */
    const char *argv[] = {"CONFIG", "SET", "requirepass", password};
    if (!server_cmd(rs, 4, argv))
        return sp_error_set(err, SP_ERR_REMOTE, "embedded redis-server: "
                            "cannot set its password");
    return SP_OK;
}

enum sp_err sp_redis_server_start(struct sp_redis_server *rs, bool persist,
                                  struct sp_error *err)
{
    rs->pid = 0;
    rs->port = 0;
    rs->dir[0] = '\0';
    rs->sock[0] = '\0';
    rs->persist = persist;
    if (!sp_redis_server_find(rs->bin, sizeof(rs->bin)))
        return sp_error_set(err, SP_ERR_NOTFOUND,
                            "redis-server not found (Debian package "
                            "redis-server; or set REDIS_SERVER)");
    const char *tmp = getenv("TMPDIR");
    snprintf(rs->dir, sizeof(rs->dir), "%s/socpilot-redis-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(rs->dir)) {
        rs->dir[0] = '\0';
        return sp_error_set(err, SP_ERR_IO, "mkdtemp: %s", strerror(errno));
    }
    if (rs->unix_only) {
        int n = snprintf(rs->sock, sizeof(rs->sock), "%s/redis.sock", rs->dir);
        if (n < 0 || (size_t)n >= sizeof(rs->sock)) {
            sp_redis_server_stop(rs);
            return sp_error_set(err, SP_ERR_IO, "redis-server: socket path "
                                "under TMPDIR is too long (108 bytes max)");
        }
        if (spawn(rs))
            return SP_OK;
    }
    for (int attempt = 0; attempt < 5 && !rs->unix_only; attempt++) {
        rs->port = sp_free_port();
        if (rs->port > 0 && spawn(rs))
            return SP_OK;
    }
    sp_redis_server_stop(rs);
    return sp_error_set(err, SP_ERR_IO, "redis-server would not start");
}

bool sp_redis_server_restart(struct sp_redis_server *rs)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        if (spawn(rs))
            return true;
        sleep_ms(50);                   /* the old socket may linger */
    }
    return false;
}

void sp_redis_server_kill(struct sp_redis_server *rs, int sig)
{
    if (rs->pid > 0) {
        kill(rs->pid, sig);
        waitpid(rs->pid, NULL, 0);
        rs->pid = 0;
    }
}

/* Removes dir and what is in it, one level of subdirectories deep (the
 * AOF directory of Redis 7). */
static void remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && depth < 2)
                remove_tree(p, depth + 1);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

void sp_redis_server_stop(struct sp_redis_server *rs)
{
    if (!rs)
        return;
    sp_redis_server_kill(rs, SIGTERM);
    if (rs->dir[0])
        remove_tree(rs->dir, 0);
    rs->dir[0] = '\0';
}
