/*
 * fake_openai.h - runs tests/fakes/fake_openai.py from a C unit test: fork
 * + exec of python3 on port 0, wait (with a deadline) for its "PORT n"
 * line, script its faults through POST /_control, read GET /_stats and
 * the JSONL record of request bodies, and stop it at the end.
 *
 * Header-only (static functions) so that each test program stays one
 * file.  Tests run from the repository root (as `make unit` does); set
 * SP_FAKE_OPENAI to the script's path to run them from elsewhere.  When
 * python3 or the script is missing, fake_openai_start() says why and the
 * test SKIPs.  One thread.
 */
#ifndef SP_FAKE_OPENAI_H
#define SP_FAKE_OPENAI_H

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"
#include "sp.h"

struct fake_openai {
    pid_t pid;
    int port;
    char record[512];        /* JSONL of requests */
    char base[128];          /* http://127.0.0.1:PORT */
    char why[256];           /* why start failed */
};

static bool fake_openai_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char dir[4096];
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n + strlen(prog) + 2 < sizeof(dir)) {
            memcpy(dir, p, n);
            snprintf(dir + n, sizeof(dir) - n, "/%s", prog);
            if (access(dir, X_OK) == 0)
                return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* Starts the fake with extra CLI arguments (NULL-terminated, may be NULL).
 * Returns false with f->why set (python3 or the script missing, no port
 * line within 10 s). */
static bool fake_openai_start(struct fake_openai *f, const char *const *extra)
{
    memset(f, 0, sizeof(*f));
    f->pid = -1;
    const char *script = getenv("SP_FAKE_OPENAI");
    if (!script)
        script = "tests/fakes/fake_openai.py";
    if (!fake_openai_in_path("python3")) {
        snprintf(f->why, sizeof(f->why), "python3 not found");
        return false;
    }
    if (access(script, R_OK) != 0) {
        snprintf(f->why, sizeof(f->why), "%s not found (run from the "
                 "repository root or set SP_FAKE_OPENAI)", script);
        return false;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(f->record, sizeof(f->record), "%s/sp_fake_openai_%d_%lld.jsonl",
             tmp && *tmp ? tmp : "/tmp", (int)getpid(),
             (long long)sp_now_us());
    unlink(f->record);

    const char *argv[32];
    size_t n = 0;
    argv[n++] = "python3";
    argv[n++] = script;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--record";
    argv[n++] = f->record;
    for (size_t i = 0; extra && extra[i] && n < SP_ARRAY_SIZE(argv) - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(f->why, sizeof(f->why), "pipe: %s", strerror(errno));
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(f->why, sizeof(f->why), "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    f->pid = pid;
    char line[128];
    size_t len = 0;
    int64_t deadline = sp_now_ms() + 10000;
    while (len < sizeof(line) - 1) {
        int64_t left = deadline - sp_now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {fds[0], POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(fds[0], line + len, sizeof(line) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        line[len] = '\0';
        if (strchr(line, '\n'))
            break;
    }
    close(fds[0]);
    line[len] = '\0';
    if (sscanf(line, "PORT %d", &f->port) != 1 || f->port <= 0) {
        snprintf(f->why, sizeof(f->why), "the fake did not report its port "
                 "(got \"%.60s\")", line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        f->pid = -1;
        return false;
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    return true;
}

static void fake_openai_stop(struct fake_openai *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        int64_t deadline = sp_now_ms() + 5000;
        while (waitpid(f->pid, NULL, WNOHANG) == 0) {
            if (sp_now_ms() > deadline) {
                kill(f->pid, SIGKILL);
                waitpid(f->pid, NULL, 0);
                break;
            }
            poll(NULL, 0, 10);
        }
        f->pid = -1;
    }
    if (f->record[0])
        unlink(f->record);
}

static size_t fake_openai_sink(char *p, size_t size, size_t n, void *ud)
{
    if (ud && sp_buf_put((struct sp_buf *)ud, p, size * n) != SP_OK)
        return 0;
    return size * n;
}

/* GET or POST (body != NULL) on the fake; the answer into out (may be
 * NULL).  Returns the HTTP status, 0 on a transport error. */
static long fake_openai_http(const struct fake_openai *f, const char *path,
                             const char *body, struct sp_buf *out)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fake_openai_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* POST /_control with a JSON command; true on 200.  A refusal (a key or
 * mode the fake does not know) is printed with the fake's reason: callers
 * check the result, so a fault a test never injected fails it. */
static bool fake_openai_control(const struct fake_openai *f, const char *json)
{
    struct sp_buf b;
    sp_buf_init(&b, 1 << 16);
    long st = fake_openai_http(f, "/_control", json, &b);
    if (st != 200)
        fprintf(stderr, "  fake_openai: control %s refused (%ld): %.*s\n", json,
                st, (int)(b.len < 300 ? b.len : 300), b.data ? b.data : "");
    sp_buf_fini(&b);
    return st == 200;
}

/* An integer member of GET /_stats ("requests", "max_inflight"); -1 on
 * error. */
static long fake_openai_stat(const struct fake_openai *f, const char *key)
{
    struct sp_buf b;
    sp_buf_init(&b, 1 << 20);
    long v = -1;
    if (fake_openai_http(f, "/_stats", NULL, &b) == 200 && b.data) {
        struct sp_arena a;
        sp_arena_init(&a, 0);
        struct sp_json_error jerr;
        struct sp_json *root = sp_json_parse(&a, b.data, b.len, NULL, &jerr);
        int64_t x;
        if (root && sp_json_int(sp_json_get(root, key), &x))
            v = (long)x;
        sp_arena_fini(&a);
    }
    sp_buf_fini(&b);
    return v;
}

/* The recorded requests (JSON lines) into out; false if none. */
static bool fake_openai_records(const struct fake_openai *f,
                                struct sp_buf *out)
{
    struct sp_error err;
    size_t len = 0;
    char *text = sp_read_file(f->record, (size_t)64 << 20, &len, &err);
    if (!text)
        return false;
    sp_buf_put(out, text, len);
    free(text);
    return true;
}

#endif /* SP_FAKE_OPENAI_H */
