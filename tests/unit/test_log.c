/*
 * test_log.c - unit tests for pipeline/log.c: line format, escaping of
 * attacker-controlled text (newline injection, quotes, invalid UTF-8),
 * secret masking, level filtering, JSON validity (checked with jansson),
 * truncation, rate limiting, and whole lines under concurrent writers.
 *
 * Every test captures the log into a memory buffer (sp_log_capture).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "t.h"

static struct sp_buf cap;

/* Starts a capture with the given level and format. */
static void cap_start(enum sp_log_level level, enum sp_log_format fmt)
{
    sp_buf_fini(&cap);
    sp_buf_init(&cap, 16 << 20);
    sp_buf_put(&cap, "", 0);
    sp_log_setup(level, fmt, NULL);
    sp_log_capture(&cap);
}

static const char *cap_text(void)
{
    return cap.data ? cap.data : "";
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The text after `msg="` up to the end of the line, without the newline. */
static const char *msg_part(char *out, size_t n)
{
    const char *p = strstr(cap_text(), "msg=\"");
    out[0] = '\0';
    if (!p)
        return out;
    p += 5;
    size_t len = strcspn(p, "\n");
    if (len >= n)
        len = n - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

/* 2026-11-28T17:00:00.123Z */
static bool ts_shape_ok(const char *s)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

static void test_text_line(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("stage:decode.0", "batch of %d done", 42);
    const char *s = cap_text();
    T_OK(strncmp(s, "ts=", 3) == 0);
    T_OK(ts_shape_ok(s + 3));
    T_EQ_STR(s + 3 + 24,
             " level=info comp=stage:decode.0 msg=\"batch of 42 done\"\n");
    T_EQ_INT(count_lines(s), 1);
}

static void test_comp_forms(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info(NULL, "no component");
    T_OK(strstr(cap_text(), "comp=") == NULL);
    T_CONTAINS(cap_text(), " level=info msg=\"no component\"\n");

    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("odd comp\n\"x\"", "m");
    T_CONTAINS(cap_text(), " comp=\"odd comp\\n\\\"x\\\"\" msg=\"m\"\n");
    T_EQ_INT(count_lines(cap_text()), 1);
}

static void test_newline_injection(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    const char *evil = "user=bob\nts=2026-01-01T00:00:00.000Z level=error "
                       "msg=\"forged\"\r\n";
    sp_log_warn("stage:decode.0", "bad alert title: %s", evil);
    char m[512];
    T_EQ_INT(count_lines(cap_text()), 1);
    T_EQ_STR(msg_part(m, sizeof(m)),
             "bad alert title: user=bob\\nts=2026-01-01T00:00:00.000Z "
             "level=error msg=\\\"forged\\\"\\r\\n\"");
}

static void test_quotes_and_controls(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("t", "say \"hi\" \\ then\ttab\x01\x1b[31m\x7f end");
    char m[512];
    T_EQ_STR(msg_part(m, sizeof(m)),
             "say \\\"hi\\\" \\\\ then\\ttab\\x01\\x1b[31m\\x7f end\"");
}

static void test_invalid_utf8(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    /* valid é and €, a lone continuation byte, 0xff, an overlong '/', a
     * UTF-16 surrogate, and a sequence cut at the end */
    sp_log_info("t", "caf\xc3\xa9 \xe2\x82\xac \x80 \xff \xc0\xaf \xed\xa0\x80 "
                     "\xe2\x82");
    char m[512];
    T_EQ_STR(msg_part(m, sizeof(m)),
             "caf\xc3\xa9 \xe2\x82\xac \\x80 \\xff \\xc0\\xaf \\xed\\xa0\\x80 "
             "\\xe2\\x82\"");
}

static void test_unicode_line_breaks(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    /* U+2028, U+0085 (NEL), U+202E (right-to-left override) */
    sp_log_info("t", "a\xe2\x80\xa8" "b\xc2\x85" "c\xe2\x80\xae" "d");
    char m[512];
    T_EQ_STR(msg_part(m, sizeof(m)), "a\\u2028b\\u0085c\\u202ed\"");
}

static void test_json_valid(void)
{
    const char *msgs[] = {
        "plain",
        "quote \" backslash \\ newline \n cr \r tab \t",
        "ctrl \x01\x02\x1f del \x7f",
        "utf-8 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92",
        "sep \xe2\x80\xa8 \xe2\x80\xa9 nel \xc2\x85",
        "{\"looks\":\"like json\"}",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(msgs); i++) {
        cap_start(SP_LOG_DEBUG, SP_LOG_JSON);
        sp_log_debug("stage:decode.0", "%s", msgs[i]);
        T_EQ_INT(count_lines(cap_text()), 1);
        json_error_t jerr;
        json_t *j = json_loads(cap_text(), 0, &jerr);
        T_OK(j != NULL);
        if (!j) {
            fprintf(stderr, "  json error: %s in %s\n", jerr.text, cap_text());
            continue;
        }
        T_EQ_STR(json_string_value(json_object_get(j, "msg")), msgs[i]);
        T_EQ_STR(json_string_value(json_object_get(j, "level")), "debug");
        T_EQ_STR(json_string_value(json_object_get(j, "comp")),
                 "stage:decode.0");
        const char *ts = json_string_value(json_object_get(j, "ts"));
        T_OK(ts && strlen(ts) == 24 && ts_shape_ok(ts));
        T_EQ_INT(json_object_size(j), 4);
        json_decref(j);
    }

    /* Bytes that are not UTF-8 cannot travel in JSON: they become a
     * visible "\xNN", and the line stays valid. */
    cap_start(SP_LOG_INFO, SP_LOG_JSON);
    sp_log_error(NULL, "bad \xff\xc3 end");
    json_t *j = json_loads(cap_text(), 0, NULL);
    T_OK(j != NULL);
    T_EQ_STR(json_string_value(json_object_get(j, "msg")),
             "bad \\xff\\xc3 end");
    T_OK(json_object_get(j, "comp") == NULL);
    json_decref(j);
}

static void test_secrets(void)
{
    sp_log_add_secret("s3cr3t-token-value");
    sp_log_add_secret("abc");           /* too short: ignored */
    sp_log_add_secret(NULL);
    sp_log_add_secret("hunter22");
    sp_log_add_secret("hunter22-extended");
    sp_log_add_secret("pa\"ss\\wo\nrd");
    sp_log_add_secret("s3cr3t-token-value");  /* duplicate */

    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("connector:llm", "Authorization: Bearer s3cr3t-token-value; "
                "again s3cr3t-token-valuex abc");
    T_OK(strstr(cap_text(), "s3cr3t") == NULL);
    T_CONTAINS(cap_text(), "msg=\"Authorization: Bearer ****; again ****x abc\"");

    /* A secret that contains another one is masked whole. */
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("t", "p=hunter22-extended q=hunter22");
    T_CONTAINS(cap_text(), "msg=\"p=**** q=****\"");

    /* Masked before escaping, so special characters do not hide it. */
    cap_start(SP_LOG_INFO, SP_LOG_JSON);
    sp_log_info("t", "pw=pa\"ss\\wo\nrd!");
    T_CONTAINS(cap_text(), "\"msg\":\"pw=****!\"");

    /* In the component too. */
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("http:hunter22", "x");
    T_CONTAINS(cap_text(), "comp=\"http:****\" ");

    /* A secret cut by the 4 KiB truncation leaks none of its bytes. */
    char big[SP_LOG_MSG_MAX + 64];
    memset(big, 'a', SP_LOG_MSG_MAX - 5);
    strcpy(big + SP_LOG_MSG_MAX - 5, "s3cr3t-token-value and more");
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("t", "%s", big);
    T_OK(strstr(cap_text(), "aaaaas3cr") == NULL);
    T_OK(strstr(cap_text(), "aaaaas\"") == NULL);
    T_CONTAINS(cap_text(), "aaaaa...[truncated, 4118 bytes]\"\n");
    /* ... not even its first byte: cut one byte into the secret, the
     * single "s" left at the end is dropped too. */
    memset(big, 'a', SP_LOG_MSG_MAX - 1);
    strcpy(big + SP_LOG_MSG_MAX - 1, "s3cr3t-token-value and more");
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("t", "%s", big);
    T_OK(strstr(cap_text(), "aaaaas...") == NULL);
    T_CONTAINS(cap_text(), "aaaaa...[truncated, 4122 bytes]\"\n");
}

static void test_truncation(void)
{
    size_t n = 10000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_info("t", "%s", big);
    T_EQ_INT(count_lines(cap_text()), 1);
    T_CONTAINS(cap_text(), "xxx...[truncated, 10000 bytes]\"\n");
    T_OK(cap.len < SP_LOG_MSG_MAX + 128);

    /* Worst case for escaping: every byte expands. */
    memset(big, '\x01', n);
    cap_start(SP_LOG_INFO, SP_LOG_JSON);
    sp_log_info("t", "%s", big);
    json_t *j = json_loads(cap_text(), 0, NULL);
    T_OK(j != NULL);
    const char *m = json_string_value(json_object_get(j, "msg"));
    T_OK(m && strlen(m) == SP_LOG_MSG_MAX + strlen("...[truncated, 10000 bytes]"));
    json_decref(j);
    free(big);
}

static void test_levels(void)
{
    cap_start(SP_LOG_WARN, SP_LOG_TEXT);
    T_OK(sp_log_enabled(SP_LOG_ERROR));
    T_OK(sp_log_enabled(SP_LOG_WARN));
    T_OK(!sp_log_enabled(SP_LOG_INFO));
    T_OK(!sp_log_enabled(SP_LOG_DEBUG));
    sp_log_debug("t", "d");
    sp_log_info("t", "i");
    sp_log_warn("t", "w");
    sp_log_error("t", "e");
    sp_log_write(SP_LOG_INFO, "t", "direct");
    T_EQ_INT(count_lines(cap_text()), 2);
    T_CONTAINS(cap_text(), "level=warn comp=t msg=\"w\"");
    T_CONTAINS(cap_text(), "level=error comp=t msg=\"e\"");

    /* Arguments are not evaluated when the level is off. */
    int calls = 0;
    sp_log_debug("t", "%d", ++calls);
    T_EQ_INT(calls, 0);

    cap_start(SP_LOG_DEBUG, SP_LOG_TEXT);
    sp_log_debug("t", "d");
    T_CONTAINS(cap_text(), "level=debug");

    enum sp_log_level lvl = SP_LOG_INFO;
    T_EQ_INT(sp_log_level_parse("error", &lvl), SP_OK);
    T_EQ_INT(lvl, SP_LOG_ERROR);
    T_EQ_INT(sp_log_level_parse("WARNING", &lvl), SP_OK);
    T_EQ_INT(lvl, SP_LOG_WARN);
    T_EQ_INT(sp_log_level_parse("Debug", &lvl), SP_OK);
    T_EQ_INT(lvl, SP_LOG_DEBUG);
    T_EQ_INT(sp_log_level_parse("verbose", &lvl), SP_ERR_INVALID);
    T_EQ_INT(sp_log_level_parse(NULL, &lvl), SP_ERR_INVALID);
    T_EQ_INT(lvl, SP_LOG_DEBUG);
    enum sp_log_format fmt = SP_LOG_TEXT;
    T_EQ_INT(sp_log_format_parse("json", &fmt), SP_OK);
    T_EQ_INT(fmt, SP_LOG_JSON);
    T_EQ_INT(sp_log_format_parse("logfmt", &fmt), SP_ERR_INVALID);
    T_EQ_STR(sp_log_level_name(SP_LOG_WARN), "warn");
}

/* Moves a rate limiter's window into the past, as if every_ms passed. */
static void rl_expire(struct sp_log_rl *rl, int64_t every_ms)
{
    rl->last_ms = sp_now_ms() - every_ms - 1;
    if (rl->last_ms == 0)
        rl->last_ms = -1;
}

static void test_rate_limit(void)
{
    static struct sp_log_rl rl;
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    for (int i = 0; i < 5; i++)
        sp_log_warn_rl(&rl, 3600 * 1000, "redis", "connect failed #%d", i);
    T_EQ_INT(count_lines(cap_text()), 1);
    T_CONTAINS(cap_text(), "msg=\"connect failed #0\"\n");
    T_EQ_INT(rl.suppressed, 4);

    rl_expire(&rl, 3600 * 1000);
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    sp_log_warn_rl(&rl, 3600 * 1000, "redis", "connect failed #%d", 5);
    T_CONTAINS(cap_text(), "msg=\"connect failed #5 (+4 suppressed)\"\n");
    T_EQ_INT(rl.suppressed, 0);

    /* JSON carries the count as a field as well. */
    sp_log_warn_rl(&rl, 3600 * 1000, "redis", "x");
    rl_expire(&rl, 3600 * 1000);
    cap_start(SP_LOG_INFO, SP_LOG_JSON);
    sp_log_error_rl(&rl, 3600 * 1000, "redis", "y");
    json_t *j = json_loads(cap_text(), 0, NULL);
    T_OK(j != NULL);
    T_EQ_INT(json_integer_value(json_object_get(j, "suppressed")), 1);
    T_EQ_STR(json_string_value(json_object_get(j, "msg")), "y (+1 suppressed)");
    json_decref(j);

    /* Disabled level: nothing written and nothing counted. */
    static struct sp_log_rl rl2;
    cap_start(SP_LOG_ERROR, SP_LOG_TEXT);
    sp_log_warn_rl(&rl2, 1000, "t", "quiet");
    T_EQ_INT(cap.len, 0);
    T_EQ_INT(rl2.last_ms, 0);

    /* every_ms <= 0 never suppresses. */
    cap_start(SP_LOG_INFO, SP_LOG_TEXT);
    for (int i = 0; i < 3; i++)
        sp_log_warn_rl(&rl2, 0, "t", "loud");
    T_EQ_INT(count_lines(cap_text()), 3);
}

#define N_THREADS 4
#define N_LINES 500

static struct sp_log_rl shared_rl;

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < N_LINES; i++) {
        sp_log_info("thread", "writer %d line %d with \"quotes\"\nand a break",
                    id, i);
        sp_log_warn_rl(&shared_rl, 3600 * 1000, "thread", "flood %d", id);
    }
    return NULL;
}

static void test_threads(void)
{
    cap_start(SP_LOG_INFO, SP_LOG_JSON);
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    sp_log_capture(NULL);

    T_EQ_INT(count_lines(cap_text()), N_THREADS * N_LINES + 1);
    T_EQ_INT(shared_rl.suppressed, N_THREADS * N_LINES - 1);
    int seen[N_THREADS] = {0};
    size_t floods = 0;
    const char *p = cap_text();
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
        T_OK(j != NULL);
        const char *m = j ? json_string_value(json_object_get(j, "msg")) : NULL;
        int id = -1, line = -1;
        if (m && sscanf(m, "writer %d line %d", &id, &line) == 2 && id >= 0 &&
            id < N_THREADS && line == seen[id])
            seen[id]++;
        else if (m && strncmp(m, "flood ", 6) == 0)
            floods++;
        else
            T_FAILF("unexpected line: %.*s", (int)(nl - p), p);
        json_decref(j);
        p = nl + 1;
    }
    for (int i = 0; i < N_THREADS; i++)
        T_EQ_INT(seen[i], N_LINES);
    T_EQ_INT(floods, 1);
}

static void test_stream_output(void)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    T_OK(f != NULL);
    if (!f)
        return;
    sp_log_capture(NULL);
    sp_log_setup(SP_LOG_INFO, SP_LOG_TEXT, f);
    sp_log_info("t", "to the stream");
    sp_log_setup(SP_LOG_INFO, SP_LOG_TEXT, NULL);
    fclose(f);
    T_CONTAINS(mem, " level=info comp=t msg=\"to the stream\"\n");
    free(mem);
}

int main(void)
{
    t_prog = "test_log";
    T_RUN(test_text_line);
    T_RUN(test_comp_forms);
    T_RUN(test_newline_injection);
    T_RUN(test_quotes_and_controls);
    T_RUN(test_invalid_utf8);
    T_RUN(test_unicode_line_breaks);
    T_RUN(test_json_valid);
    T_RUN(test_secrets);
    T_RUN(test_truncation);
    T_RUN(test_levels);
    T_RUN(test_rate_limit);
    T_RUN(test_threads);
    T_RUN(test_stream_output);
    sp_log_capture(NULL);
    sp_buf_fini(&cap);
    return t_done();
}
