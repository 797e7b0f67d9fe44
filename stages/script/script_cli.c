/*
 * script_cli.c - `socpilot analyze-script`: the script analyser from the
 * command line, no Kafka, no Redis.
 *
 *   socpilot analyze-script 'CMDLINE'        report for one command line
 *   socpilot analyze-script --file F         ... for a file's contents
 *   socpilot analyze-script --json ...       the same as one JSON object
 *   socpilot analyze-script --jsonl          JSON lines on stdin:
 *       {"id": ..., "command_line": "..."}  ->  {"id": ..., <analysis>}
 *     one output line per input line, same id (any JSON value); a line
 *     that is not such an object gives {"id": ..., "error": "..."} and the
 *     batch goes on.
 *   --max-layers N caps the decoding steps (default 16).
 *
 * Exit status: 0 ok, 1 failure (unreadable file, out of memory, write
 * error), 2 usage error.  Runs on the main thread.
 */
#include "cli.h"
#include "json.h"
#include "script.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_MAX_FILE ((size_t)16 << 20)
#define CLI_MAX_LINE ((size_t)4 << 20)

static void usage(FILE *out)
{
    fputs("usage: socpilot analyze-script [--json] [--max-layers N] 'COMMAND LINE'\n"
          "       socpilot analyze-script [--json] [--max-layers N] --file FILE\n"
          "       socpilot analyze-script [--max-layers N] --jsonl < records.jsonl\n"
          "\n"
          "Deobfuscates a command line or script layer by layer (nothing is run),\n"
          "then lists its indicators, its behaviours as MITRE ATT&CK techniques\n"
          "and a 0-100 risk score with the reasons.\n"
          "\n"
          "options:\n"
          "  --json           print the analysis as one JSON object\n"
          "  --jsonl          read JSON lines {\"id\":..., \"command_line\":\"...\"} on\n"
          "                   stdin; write one JSON analysis per line with the same id\n"
          "  --file FILE      analyse the contents of FILE ('-' for stdin)\n"
          "  --max-layers N   decode at most N layers (0-64, default 16)\n"
          "  --help           this text\n"
          "\n"
          "exit status: 0 ok, 1 failure, 2 usage error\n",
          out);
}

/* Writes the buffer and a newline; false on a write error. */
static bool emit(struct sp_buf *b)
{
    if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
        return false;
    return fputc('\n', stdout) != EOF;
}

static int analyze_one(const char *text, size_t len,
                       const struct sp_script_opts *opts, bool json)
{
    struct sp_script_analysis a;
    enum sp_err err = sp_script_analyze(text, len, opts, &a);
    if (err) {
        fprintf(stderr, "analyze-script: %s\n", sp_strerror(err));
        return 1;
    }
    int rc = 0;
    if (json) {
        struct sp_buf b;
        struct sp_jw w;
        sp_buf_init(&b, 0);
        sp_jw_init(&w, &b);
        sp_script_write_json(&a, &w);
        if (!sp_jw_ok(&w) || !emit(&b)) {
            fprintf(stderr, "analyze-script: cannot write the JSON output\n");
            rc = 1;
        }
        sp_buf_fini(&b);
    } else {
        sp_script_print_text(&a, stdout);
    }
    sp_script_analysis_fini(&a);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}

/* One --jsonl line into `out` (reset by the caller). */
static void jsonl_line(const char *line, size_t len,
                       const struct sp_script_opts *opts, struct sp_arena *arena,
                       struct sp_buf *out)
{
    struct sp_jw w;
    sp_jw_init(&w, out);
    sp_jw_obj_open(&w);
    struct sp_json_error jerr;
    struct sp_json_limits lim = SP_JSON_LIMITS_DEFAULT;
    lim.max_bytes = CLI_MAX_LINE;
    struct sp_json *doc = sp_json_parse(arena, line, len, &lim, &jerr);
    const struct sp_json *id = doc ? sp_json_get(doc, "id") : NULL;
    sp_jw_key(&w, "id");
    if (id)
        sp_jw_raw(&w, id->src, id->src_len);
    else
        sp_jw_null(&w);
    const char *problem = NULL;
    char msg[160];
    const struct sp_json *cl = NULL;
    if (!doc) {
        snprintf(msg, sizeof(msg), "invalid JSON (%s at byte %zu)",
                 sp_json_errname(jerr.code), jerr.offset);
        problem = msg;
    } else if (doc->type != SP_JSON_OBJECT) {
        problem = "not a JSON object";
    } else if (!(cl = sp_json_get(doc, "command_line")) || cl->type != SP_JSON_STRING) {
        problem = "missing or non-string \"command_line\"";
    }
    if (problem) {
        sp_jw_kstr(&w, "error", problem);
        sp_jw_obj_close(&w);
        return;
    }
    struct sp_script_analysis a;
    enum sp_err err = sp_script_analyze(cl->u.s, cl->n, opts, &a);
    if (err) {
        sp_jw_kstr(&w, "error", sp_strerror(err));
    } else {
        sp_script_write_json_fields(&a, &w);
        sp_script_analysis_fini(&a);
    }
    sp_jw_obj_close(&w);
}

static int run_jsonl(const struct sp_script_opts *opts)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    struct sp_arena arena;
    struct sp_buf out;
    sp_arena_init(&arena, (size_t)64 << 20);
    sp_buf_init(&out, 0);
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == len)
            continue;                       /* blank line */
        sp_buf_reset(&out);
        sp_arena_reset(&arena);
        if (len > CLI_MAX_LINE) {
            struct sp_jw w;
            sp_jw_init(&w, &out);
            sp_jw_obj_open(&w);
            sp_jw_key(&w, "id");
            sp_jw_null(&w);
            sp_jw_kstr(&w, "error", "line too long");
            sp_jw_obj_close(&w);
        } else {
            jsonl_line(line, len, opts, &arena, &out);
        }
        if (out.overflow) {
            sp_buf_reset(&out);
            sp_buf_puts(&out, "{\"id\":null,\"error\":\"output too large\"}");
        }
        if (!emit(&out)) {
            fprintf(stderr, "analyze-script: write error: %s\n", strerror(errno));
            rc = 1;
            break;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "analyze-script: read error: %s\n", strerror(errno));
        rc = 1;
    }
    if (fflush(stdout) != 0)
        rc = 1;
    free(line);
    sp_buf_fini(&out);
    sp_arena_fini(&arena);
    return rc;
}

static char *read_stdin_all(size_t max, size_t *len)
{
    struct sp_buf b;
    sp_buf_init(&b, max);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), stdin)) > 0)
        if (sp_buf_put(&b, tmp, n) != SP_OK) {
            sp_buf_fini(&b);
            return NULL;
        }
    if (ferror(stdin)) {
        sp_buf_fini(&b);
        return NULL;
    }
    return sp_buf_steal(&b, len);
}

int sp_cmd_analyze_script(int argc, char **argv)
{
    struct sp_script_opts opts;
    sp_script_opts_default(&opts);
    bool json = false, jsonl = false;
    const char *file = NULL, *cmdline = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--jsonl") == 0) {
            jsonl = true;
        } else if (strcmp(a, "--file") == 0 || strcmp(a, "-f") == 0) {
            if (++i >= argc || file) {
                fprintf(stderr, "analyze-script: --file needs one FILE\n");
                return 2;
            }
            file = argv[i];
        } else if (strcmp(a, "--max-layers") == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long v = ++i < argc ? strtoul(argv[i], &end, 10) : 0;
            if (i >= argc || errno || !end || *end || end == argv[i] ||
                argv[i][0] == '-' || v > 64) {
                fprintf(stderr, "analyze-script: --max-layers needs a number 0-64\n");
                return 2;
            }
            opts.deob.max_layers = (unsigned)v;
        } else if (strcmp(a, "--") == 0) {
            if (i + 1 < argc && !cmdline)
                cmdline = argv[++i];
            if (i + 1 < argc) {
                fprintf(stderr, "analyze-script: one command line at a time (quote it)\n");
                return 2;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "analyze-script: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!cmdline) {
            cmdline = a;
        } else {
            fprintf(stderr, "analyze-script: one command line at a time (quote it)\n");
            return 2;
        }
    }
    int sources = (cmdline != NULL) + (file != NULL) + jsonl;
    if (sources != 1) {
        fprintf(stderr, "analyze-script: give exactly one of a command line, "
                        "--file FILE or --jsonl\n\n");
        usage(stderr);
        return 2;
    }
    if (jsonl && json) {
        fprintf(stderr, "analyze-script: --jsonl already writes JSON; drop --json\n");
        return 2;
    }
    if (jsonl)
        return run_jsonl(&opts);
    if (cmdline)
        return analyze_one(cmdline, strlen(cmdline), &opts, json);

    size_t len = 0;
    char *text;
    if (strcmp(file, "-") == 0) {
        text = read_stdin_all(CLI_MAX_FILE, &len);
        if (!text) {
            fprintf(stderr, "analyze-script: cannot read stdin (or larger than %zu bytes)\n",
                    CLI_MAX_FILE);
            return 1;
        }
    } else {
        struct sp_error err;
        sp_error_clear(&err);
        text = sp_read_file(file, CLI_MAX_FILE, &len, &err);
        if (!text) {
            fprintf(stderr, "analyze-script: %s\n", err.msg);
            return 1;
        }
    }
    int rc = analyze_one(text, len, &opts, json);
    free(text);
    return rc;
}
