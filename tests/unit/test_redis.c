/*
 * test_redis.c - connectors/redis.c against real redis-servers: the
 * formatter, the error table, pipelining in one round trip, EVALSHA with
 * reload on NOSCRIPT, AUTH with a password and with an ACL user (with a
 * password, and `nopass` with redis.password empty), SELECT,
 * unix sockets, timeouts, and reconnection with backoff after the server
 * is killed and restarted; the private server's process: its own process
 * group, no inherited descriptors, gone soon after its parent is killed,
 * and (as the engine starts it) only on a unix socket in a 0700 dir.
 *
 * Skips (with a message) when redis-server is not installed.
 */
#include "t.h"

#include "log.h"
#include "redis.h"
#include "tests/tools/redis_test.h"

static struct sp_test_redis srv;
static int srv_state;

static bool up(const char **why)
{
    if (srv_state == 0) {
        signal(SIGPIPE, SIG_IGN);
        int rc = sp_test_redis_start(&srv);
        srv_state = rc == 1 ? 1 : -1;
        *why = rc == 0 ? "redis-server is not installed"
                       : "redis-server would not start";
    } else if (srv_state < 0) {
        *why = "redis-server unavailable";
    }
    return srv_state == 1;
}

#define SKIP_WITHOUT_REDIS()                                                \
    do {                                                                    \
        const char *why_;                                                   \
        if (!up(&why_))                                                     \
            T_SKIP(why_);                                                   \
    } while (0)

static struct sp_redis *open_on(int port, const char *unix_path,
                                const char *user, const char *pass, int db)
{
    struct sp_redis_opts o;
    sp_redis_opts_default(&o);
    o.port = port;
    o.unix_path = unix_path;
    o.user = user;
    o.password = pass;
    o.db = db;
    o.connect_timeout_ms = 500;
    o.command_timeout_ms = 1000;
    o.backoff_min_ms = 50;
    o.backoff_max_ms = 400;
    return sp_redis_new(&o);
}

static void test_format(void)
{
    struct sp_buf b;
    sp_buf_init(&b, 1024);
    const char *argv[] = {"EVALSHA", "abc", "1", "k\r\n"};
    size_t lens[] = {7, 3, 1, 3};
    T_EQ_INT(sp_redis_format(&b, 4, argv, lens), SP_OK);
    T_EQ_STR(b.data, "*4\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$3\r\nk\r\n\r\n");
    sp_buf_fini(&b);
}

static void test_error_table(void)
{
    static const struct {
        const char *msg;
        enum sp_err want;
    } cases[] = {
        {"NOSCRIPT No matching script", SP_ERR_NOTFOUND},
        {"LOADING Redis is loading the dataset in memory", SP_ERR_RETRY},
        {"BUSY Redis is busy running a script", SP_ERR_RETRY},
        {"READONLY You can't write against a read only replica", SP_ERR_RETRY},
        {"OOM command not allowed when used memory > 'maxmemory'", SP_ERR_RETRY},
        {"MISCONF Errors writing to the AOF file", SP_ERR_RETRY},
        {"CLUSTERDOWN The cluster is down", SP_ERR_RETRY},
        {"NOAUTH Authentication required.", SP_ERR_CONFIG},
        {"WRONGPASS invalid username-password pair", SP_ERR_CONFIG},
        {"NOPERM this user has no permissions", SP_ERR_CONFIG},
        {"WRONGTYPE Operation against a key holding the wrong kind", SP_ERR_REMOTE},
        {"ERR Error running script: @user_script:1: boom", SP_ERR_REMOTE},
        {"ERR Error running script (call to f_x): OOM command not allowed", SP_ERR_RETRY},
        /* A cluster node redirecting: retried, never a rejected alert. */
        {"MOVED 3999 127.0.0.1:6381", SP_ERR_RETRY},
        {"ASK 3999 127.0.0.1:6381", SP_ERR_RETRY},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(cases); i++) {
        redisReply r;
        memset(&r, 0, sizeof(r));
        r.type = REDIS_REPLY_ERROR;
        r.str = (char *)cases[i].msg;
        r.len = strlen(cases[i].msg);
        if (sp_redis_reply_err(&r) != cases[i].want)
            T_FAILF("%s -> %s", cases[i].msg, sp_strerror(sp_redis_reply_err(&r)));
    }
    redisReply ok;
    memset(&ok, 0, sizeof(ok));
    ok.type = REDIS_REPLY_STATUS;
    T_EQ_INT(sp_redis_reply_err(&ok), SP_OK);
    T_EQ_INT(sp_redis_reply_err(NULL), SP_ERR_RETRY);
}

static void test_pipeline_one_round_trip(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_redis *r = open_on(srv.port, NULL, NULL, NULL, 0);
    T_EQ_INT(sp_redis_connect(r, NULL), SP_OK);
    T_OK(sp_redis_is_up(r));
    struct sp_redis_stats before, after;
    sp_redis_stats(r, &before);
    for (int i = 0; i < 500; i++) {
        const char *argv[] = {"INCR", "test:pipe"};
        size_t lens[] = {4, 9};
        T_EQ_INT(sp_redis_append(r, 2, argv, lens), SP_OK);
    }
    T_EQ_INT(sp_redis_pending(r), 500);
    long long last = 0;
    for (int i = 0; i < 500; i++) {
        redisReply *rep;
        T_EQ_INT(sp_redis_read(r, &rep), SP_OK);
        last = rep->integer;
        freeReplyObject(rep);
    }
    T_EQ_INT(last, 500);
    sp_redis_stats(r, &after);
    T_EQ_INT(after.round_trips - before.round_trips, 1);
    T_EQ_INT(after.commands - before.commands, 500);
    /* One command while a pipeline is open is refused, not mixed in. */
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    T_EQ_INT(sp_redis_append(r, 1, argv, lens), SP_OK);
    redisReply *rep;
    T_EQ_INT(sp_redis_call(r, &rep, 1, argv, lens), SP_ERR_STATE);
    T_EQ_INT(sp_redis_read(r, &rep), SP_OK);
    freeReplyObject(rep);
    sp_redis_free(r);
}

static void test_evalsha_noscript(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_redis *r = open_on(srv.port, NULL, NULL, NULL, 0);
    struct sp_redis_script s = {"echo", "return {KEYS[1], ARGV[1]}", ""};
    T_EQ_INT(sp_redis_add_script(r, &s), SP_OK);
    T_EQ_INT(sp_redis_connect(r, NULL), SP_OK);
    T_EQ_INT(strlen(s.sha), 40);
    const char *argv[5] = {NULL, NULL, NULL, "k1", "v1"};
    size_t lens[5] = {0, 0, 0, 2, 2};
    redisReply *rep;
    T_EQ_INT(sp_redis_eval(r, &s, &rep, 1, 5, argv, lens), SP_OK);
    T_OK(rep->type == REDIS_REPLY_ARRAY && rep->elements == 2);
    T_EQ_STR(rep->element[1]->str, "v1");
    freeReplyObject(rep);
    redisReply *f = sp_test_redis_cmd(&srv, "SCRIPT FLUSH");
    freeReplyObject(f);
    struct sp_redis_stats st0, st1;
    sp_redis_stats(r, &st0);
    T_EQ_INT(sp_redis_eval(r, &s, &rep, 1, 5, argv, lens), SP_OK);
    T_EQ_STR(rep->element[0]->str, "k1");
    freeReplyObject(rep);
    sp_redis_stats(r, &st1);
    T_EQ_INT(st1.script_loads - st0.script_loads, 1);
    /* A script error is a remote error, with the reply kept. */
    struct sp_redis_script bad = {"bad", "return redis.call('NOSUCHCMD')", ""};
    T_EQ_INT(sp_redis_add_script(r, &bad), SP_OK);
    T_EQ_INT(sp_redis_eval(r, &bad, &rep, 0, 3, argv, lens), SP_ERR_REMOTE);
    T_OK(rep && rep->type == REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    sp_redis_free(r);
}

static void test_select_db(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_redis *r = open_on(srv.port, NULL, NULL, NULL, 3);
    T_EQ_INT(sp_redis_connect(r, NULL), SP_OK);
    const char *argv[] = {"SET", "test:db", "three"};
    size_t lens[] = {3, 7, 5};
    redisReply *rep;
    T_EQ_INT(sp_redis_call(r, &rep, 3, argv, lens), SP_OK);
    freeReplyObject(rep);
    redisContext *c = sp_test_redis_connect(&srv);
    redisReply *a = redisCommand(c, "EXISTS test:db");
    T_EQ_INT(a->integer, 0);
    freeReplyObject(a);
    a = redisCommand(c, "SELECT 3");
    freeReplyObject(a);
    a = redisCommand(c, "GET test:db");
    T_EQ_STR(a->str, "three");
    freeReplyObject(a);
    redisFree(c);
    sp_redis_free(r);
    struct sp_error err = {0};
    r = open_on(srv.port, NULL, NULL, NULL, 999);
    T_EQ_INT(sp_redis_connect(r, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "SELECT");
    sp_redis_free(r);
}

static void test_auth_and_unix_socket(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_test_redis sec;
    memset(&sec, 0, sizeof(sec));
    char sock[600];
    snprintf(sock, sizeof(sock), "/tmp/socpilot-test-%d.sock", (int)getpid());
    sec.extra[sec.n_extra++] = "--requirepass";
    sec.extra[sec.n_extra++] = "s3cret-pass";
    sec.extra[sec.n_extra++] = "--unixsocket";
    sec.extra[sec.n_extra++] = sock;
    sec.extra[sec.n_extra++] = "--unixsocketperm";
    sec.extra[sec.n_extra++] = "700";
    /* PING needs AUTH here; the helper only waits for any answer. */
    T_EQ_INT(sp_test_redis_start(&sec), 1);
    struct sp_error err = {0};
    struct sp_redis *r = open_on(sec.port, NULL, NULL, "wrong-pass", 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_ERR_CONFIG);
    T_OK(!sp_redis_is_up(r));
    sp_redis_free(r);
    r = open_on(sec.port, NULL, NULL, "s3cret-pass", 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    /* An ACL user with a password of its own. */
    const char *acl[] = {"ACL", "SETUSER", "socpilot", "on", ">user-pass",
                         "~*", "+@all"};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(acl[i]);
    redisReply *rep;
    T_EQ_INT(sp_redis_call(r, &rep, 7, acl, lens), SP_OK);
    freeReplyObject(rep);
    sp_redis_free(r);
    r = open_on(sec.port, NULL, "socpilot", "user-pass", 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    sp_redis_free(r);
    r = open_on(sec.port, NULL, "socpilot", "nope", 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_ERR_CONFIG);
    sp_redis_free(r);
    /* Unix socket. */
    r = open_on(0, sock, NULL, "s3cret-pass", 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    char d[300];
    sp_redis_describe(r, d, sizeof(d));
    T_CONTAINS(d, "unix:");
    T_CONTAINS(d, " up");
    sp_redis_free(r);
    sp_test_redis_stop(&sec);
    unlink(sock);
}

/* The reply to ACL WHOAMI on r, or "" (static buffer). */
static const char *whoami(struct sp_redis *r)
{
    static char who[64];
    who[0] = '\0';
    const char *argv[] = {"ACL", "WHOAMI"};
    size_t lens[] = {3, 6};
    redisReply *rep = NULL;
    if (sp_redis_call(r, &rep, 2, argv, lens) == SP_OK && rep &&
        (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING))
        snprintf(who, sizeof(who), "%s", rep->str);
    freeReplyObject(rep);
    return who;
}

/* redis.user with an empty redis.password: an ACL user with `nopass`, so
 * socpilot must run as that user, not as `default`. */
static void test_user_without_password(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_error err = {0};
    struct sp_redis *r = open_on(srv.port, NULL, NULL, NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    const char *acl[] = {"ACL", "SETUSER", "sp-nopass", "on", "nopass",
                         "~*", "+@all"};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(acl[i]);
    redisReply *rep = NULL;
    T_EQ_INT(sp_redis_call(r, &rep, 7, acl, lens), SP_OK);
    freeReplyObject(rep);
    sp_redis_free(r);

    r = open_on(srv.port, NULL, "sp-nopass", NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    T_EQ_STR(whoami(r), "sp-nopass");
    sp_redis_free(r);
    r = open_on(srv.port, NULL, "sp-nopass", "", 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    T_EQ_STR(whoami(r), "sp-nopass");
    sp_redis_free(r);
    /* An unknown user is refused, not quietly `default`. */
    r = open_on(srv.port, NULL, "sp-no-such-user", NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_ERR_CONFIG);
    sp_redis_free(r);

    r = open_on(srv.port, NULL, NULL, NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    const char *del[] = {"ACL", "DELUSER", "sp-nopass"};
    size_t dlens[] = {3, 7, 9};
    T_EQ_INT(sp_redis_call(r, &rep, 3, del, dlens), SP_OK);
    freeReplyObject(rep);
    sp_redis_free(r);
}

/* redis.unix_socket of 108 bytes or more: hiredis would cut it to
 * sun_path and connect elsewhere; refused by validation (key and line
 * named) and by sp_redis_connect. */
static void test_unix_path_too_long(void)
{
    static const struct sp_cfg_key keys[] = {SP_REDIS_CFG_KEYS};
    char path[160], yaml[256];
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[SP_REDIS_UNIX_PATH_MAX] = '\0';              /* 107 bytes: fits */
    struct sp_error err = {0};
    struct sp_config *cfg = sp_config_new();
    T_EQ_INT(sp_config_declare(cfg, keys, SP_ARRAY_SIZE(keys), &err), SP_OK);
    snprintf(yaml, sizeof(yaml), "redis:\n  unix_socket: %s\n", path);
    T_EQ_INT(sp_config_load_string(cfg, "x.yaml", yaml, strlen(yaml), &err),
             SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_OK);
    sp_config_free(cfg);

    path[SP_REDIS_UNIX_PATH_MAX] = 'a';
    path[SP_REDIS_UNIX_PATH_MAX + 1] = '\0';          /* 108 bytes */
    cfg = sp_config_new();
    T_EQ_INT(sp_config_declare(cfg, keys, SP_ARRAY_SIZE(keys), &err), SP_OK);
    snprintf(yaml, sizeof(yaml), "redis:\n  unix_socket: %s\n", path);
    T_EQ_INT(sp_config_load_string(cfg, "x.yaml", yaml, strlen(yaml), &err),
             SP_OK);
    T_EQ_INT(sp_config_validate(cfg, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "redis.unix_socket");
    T_CONTAINS(err.msg, "x.yaml:2");
    sp_config_free(cfg);

    struct sp_redis *r = open_on(0, path, NULL, NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "redis.unix_socket");
    sp_redis_free(r);
}

static void test_down_backoff_reconnect(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_test_redis tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.extra[tmp.n_extra++] = "--enable-debug-command";
    tmp.extra[tmp.n_extra++] = "yes";
    T_EQ_INT(sp_test_redis_start(&tmp), 1);
    struct sp_redis *r = open_on(tmp.port, NULL, NULL, NULL, 0);
    T_EQ_INT(sp_redis_ensure(r, sp_now_ms()), SP_OK);
    sp_test_redis_kill(&tmp, SIGKILL);
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    redisReply *rep = NULL;
    T_EQ_INT(sp_redis_call(r, &rep, 1, argv, lens), SP_ERR_RETRY);
    freeReplyObject(rep);
    T_OK(!sp_redis_is_up(r));
    char d[300];
    sp_redis_describe(r, d, sizeof(d));
    T_CONTAINS(d, "down");
    /* First attempt at once, then no attempt before the backoff. */
    int64_t now = sp_now_ms();
    T_EQ_INT(sp_redis_ensure(r, now), SP_ERR_RETRY);
    struct sp_redis_stats s0, s1;
    sp_redis_stats(r, &s0);
    T_EQ_INT(sp_redis_ensure(r, now + 1), SP_ERR_RETRY);
    sp_redis_stats(r, &s1);
    T_EQ_INT(s1.failures, s0.failures);
    T_OK(sp_test_redis_restart(&tmp));
    int64_t deadline = sp_now_ms() + 3000;
    while (sp_redis_ensure(r, sp_now_ms()) != SP_OK && sp_now_ms() < deadline)
        sp_test_sleep_ms(10);
    T_OK(sp_redis_is_up(r));
    T_EQ_INT(sp_redis_call(r, &rep, 1, argv, lens), SP_OK);
    freeReplyObject(rep);
    /* A reply slower than command_timeout drops the connection. */
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "1.5"};
    size_t sleep_lens[] = {5, 5, 3};
    int64_t t0 = sp_now_ms();
    enum sp_err e = sp_redis_call(r, &rep, 3, sleep_argv, sleep_lens);
    freeReplyObject(rep);
    T_EQ_INT(e, SP_ERR_RETRY);
    T_OK(sp_now_ms() - t0 < 1400);
    T_OK(!sp_redis_is_up(r));
    sp_redis_free(r);
    sp_test_redis_stop(&tmp);
}

static void test_refused(void)
{
    int port = sp_test_free_port();
    struct sp_redis *r = open_on(port, NULL, NULL, NULL, 0);
    struct sp_error err = {0};
    int64_t t0 = sp_now_ms();
    T_EQ_INT(sp_redis_connect(r, &err), SP_ERR_RETRY);
    T_OK(err.retriable);
    T_OK(sp_now_ms() - t0 < 1000);
    T_EQ_INT(sp_redis_ensure(r, sp_now_ms()), SP_ERR_RETRY);
    sp_redis_free(r);
    sp_redis_free(NULL);
}

/* True when "/proc/<pid>/fd" holds the pipe behind fd. */
static bool holds_pipe(pid_t pid, int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return false;
    char want[64], dir[64];
    snprintf(want, sizeof(want), "pipe:[%lu]", (unsigned long)sb.st_ino);
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char p[512], link[128];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(p, link, sizeof(link) - 1);
        if (n > 0) {
            link[n] = '\0';
            found = strcmp(link, want) == 0;
        }
    }
    closedir(d);
    return found;
}

/* True when one of pid's sockets is a listening TCP socket (IPv4 or 6). */
static bool listens_tcp(pid_t pid)
{
    unsigned long inodes[64];
    int n = 0;
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    while (n < 64 && (e = readdir(d)) != NULL) {
        char p[512], link[128];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        ssize_t len = readlink(p, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &inodes[n]) == 1)
            n++;
    }
    closedir(d);
    const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    bool found = false;
    for (int t = 0; t < 2 && !found; t++) {
        FILE *f = fopen(tables[t], "r");
        char line[512];
        while (f && !found && fgets(line, sizeof(line), f)) {
            char st[8];
            unsigned long ino = 0;
            if (sscanf(line, "%*s %*s %*s %7s %*s %*s %*s %*s %*s %lu", st,
                       &ino) != 2 || strcmp(st, "0A") != 0)
                continue;
            for (int i = 0; i < n; i++)
                found = found || inodes[i] == ino;
        }
        if (f)
            fclose(f);
    }
    return found;
}

/* The private server as started by a process that is then SIGKILLed
 * (socpilot killed with `make run`'s demo running): the server must not
 * outlive it, must not hold the starter's descriptors, and must sit in a
 * process group of its own. */
static void test_server_dies_with_parent(void)
{
    SKIP_WITHOUT_REDIS();
    int leak[2], info[2];
    T_OK(pipe(leak) == 0 && pipe(info) == 0);
    /* Orphans come to us, so the server can be reaped and waited for. */
    T_OK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    pid_t starter = fork();
    if (starter == 0) {
        close(info[0]);
        struct sp_redis_server rs;
        memset(&rs, 0, sizeof(rs));
        rs.die_with_parent = true;      /* as the engine starts it */
        pid_t pid = 0;
        if (sp_redis_server_start(&rs, false, NULL) == SP_OK)
            pid = rs.pid;
        if (write(info[1], &pid, sizeof(pid)) != (ssize_t)sizeof(pid) ||
            write(info[1], rs.dir, sizeof(rs.dir)) != (ssize_t)sizeof(rs.dir))
            _exit(1);
        for (;;)
            pause();
    }
    close(info[1]);
    pid_t pid = 0;
    char dir[sizeof(((struct sp_redis_server *)0)->dir)] = "";
    T_OK(read(info[0], &pid, sizeof(pid)) == (ssize_t)sizeof(pid));
    T_OK(read(info[0], dir, sizeof(dir)) == (ssize_t)sizeof(dir));
    close(info[0]);
    T_OK(pid > 0);
    if (pid > 0) {
        T_EQ_INT(getpgid(pid), pid);
        T_OK(listens_tcp(pid));         /* the tests' server: TCP */
        T_OK(!holds_pipe(pid, leak[0]));
        T_OK(!holds_pipe(pid, leak[1]));
    }
    kill(starter, SIGKILL);
    waitpid(starter, NULL, 0);
    bool gone = pid <= 0;
    for (int64_t end = sp_now_ms() + 5000; !gone && sp_now_ms() < end;) {
        gone = waitpid(pid, NULL, WNOHANG) == pid;
        if (!gone)
            sp_test_sleep_ms(20);
    }
    T_OK(gone);
    if (!gone) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    close(leak[0]);
    close(leak[1]);
    if (dir[0]) {
        struct sp_redis_server rm;
        memset(&rm, 0, sizeof(rm));
        snprintf(rm.dir, sizeof(rm.dir), "%s", dir);
        sp_redis_server_stop(&rm);      /* removes the directory */
    }
}

/* As the engine starts it: a unix socket in the 0700 directory, no TCP. */
static void test_server_unix_only(void)
{
    SKIP_WITHOUT_REDIS();
    struct sp_redis_server rs;
    memset(&rs, 0, sizeof(rs));
    rs.unix_only = true;
    struct sp_error err = {0};
    T_EQ_INT(sp_redis_server_start(&rs, false, &err), SP_OK);
    T_EQ_INT(rs.port, 0);
    struct stat sb;
    T_OK(stat(rs.dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    T_OK(strncmp(rs.sock, rs.dir, strlen(rs.dir)) == 0);
    struct sp_redis *r = open_on(0, rs.sock, NULL, NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    sp_redis_free(r);
    T_OK(!listens_tcp(rs.pid));
    /* A restart serves the same socket again. */
    sp_redis_server_kill(&rs, SIGTERM);
    T_OK(sp_redis_server_restart(&rs));
    r = open_on(0, rs.sock, NULL, NULL, 0);
    T_EQ_INT(sp_redis_connect(r, &err), SP_OK);
    sp_redis_free(r);
    sp_redis_server_stop(&rs);
    T_EQ_STR(rs.dir, "");
}

int main(void)
{
    t_prog = "test_redis";
    sp_log_setup(SP_LOG_ERROR, SP_LOG_TEXT, stderr);
    T_RUN(test_format);
    T_RUN(test_error_table);
    T_RUN(test_refused);
    T_RUN(test_pipeline_one_round_trip);
    T_RUN(test_evalsha_noscript);
    T_RUN(test_select_db);
    T_RUN(test_auth_and_unix_socket);
    T_RUN(test_user_without_password);
    T_RUN(test_unix_path_too_long);
    T_RUN(test_down_backoff_reconnect);
    T_RUN(test_server_dies_with_parent);
    T_RUN(test_server_unix_only);
    sp_test_redis_stop(&srv);
    return t_done();
}
