/*
 * normalize_cli.c - `socpilot normalize`: decode alert documents from a
 * file or stdin without Kafka, for debugging formats and producers.
 *
 * Input is one JSON document, JSON lines, or concatenated documents.
 * Each document goes through sp_normalize() exactly as a Kafka message
 * would; normalized alerts are printed to stdout one per line (or
 * indented with --pretty), rejects to stderr with their reason, detail
 * and where the record started.  A document that is not JSON is skipped
 * up to the next line that starts with '{' or '[', so one bad line does
 * not hide the rest.
 *
 * Owns its buffers for the duration of the call; main thread only.
 */
#include "normalize.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_MAX_INPUT ((size_t)1 << 30)

static void usage(FILE *out)
{
    fputs("usage: socpilot normalize [--format F] [--tenant T] [--no-raw] "
          "[--pretty] [FILE|-]\n"
          "\n"
          "Decodes alert JSON (one document, JSON lines or concatenated "
          "documents) from\n"
          "FILE or stdin and prints one normalized alert per line on "
          "stdout.  Records\n"
          "that cannot be decoded are reported on stderr with the reason "
          "the pipeline\n"
          "would put on the DLQ.\n"
          "\n"
          "  -f, --format F   auto (default), graph, sentinel, "
          "defender-streaming, generic\n"
          "  -t, --tenant T   tenant for documents that name none "
          "(default \"default\")\n"
          "      --no-raw     leave the original document out of each "
          "alert\n"
          "      --pretty     indent the output\n"
          "  -h, --help       this text\n"
          "\n"
          "Exit status: 0 every record decoded, 1 some record rejected, "
          "2 usage or I/O error.\n"
          "Formats: docs/alert-format.md.\n",
          out);
}

static char *read_all(const char *path, size_t *len)
{
    if (path && strcmp(path, "-") != 0) {
        struct sp_error err;
        char *data = sp_read_file(path, CLI_MAX_INPUT, len, &err);
        if (!data)
            fprintf(stderr, "socpilot normalize: %s\n", err.msg);
        return data;
    }
    struct sp_buf b;
    sp_buf_init(&b, CLI_MAX_INPUT);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (sp_buf_put(&b, chunk, n) != SP_OK) {
            fprintf(stderr, "socpilot normalize: input over %zu bytes\n",
                    CLI_MAX_INPUT);
            sp_buf_fini(&b);
            return NULL;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "socpilot normalize: stdin: %s\n", strerror(errno));
        sp_buf_fini(&b);
        return NULL;
    }
    if (sp_buf_putc(&b, '\0') != SP_OK) {
        sp_buf_fini(&b);
        return NULL;
    }
    b.len--;
    return sp_buf_steal(&b, len);
}

static void print_alert(const struct sp_alert *alert, bool raw, bool pretty,
                        struct sp_buf *out)
{
    struct sp_jw w;
    sp_buf_reset(out);
    sp_jw_init(&w, out);
    sp_alert_write(alert, &w, raw);
    if (!sp_jw_ok(&w)) {
        fprintf(stderr, "socpilot normalize: alert %s too large to print\n",
                alert->id);
        return;
    }
    if (pretty) {
        json_error_t jerr;
        json_t *j = json_loadb(out->data, out->len, 0, &jerr);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
                    : NULL;
        if (s) {
            puts(s);
            free(s);
            json_decref(j);
            return;
        }
        json_decref(j);
    }
    fwrite(out->data, 1, out->len, stdout);
    fputc('\n', stdout);
}

/* "-f X", "--format X" or "--format=X": the value (advancing *i), else
 * NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *shrt,
                             const char *lng)
{
    const char *a = argv[*i];
    size_t ll = strlen(lng);
    if (strncmp(a, lng, ll) == 0 && a[ll] == '=')
        return a + ll + 1;
    if ((strcmp(a, shrt) == 0 || strcmp(a, lng) == 0) && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static size_t newlines(const char *text, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++)
        n += text[i] == '\n';
    return n;
}

/* Offset of the next line (after `from`) that starts with '{' or '['. */
static size_t resync(const char *text, size_t len, size_t from)
{
    for (size_t i = from; i + 1 < len; i++)
        if (text[i] == '\n' && (text[i + 1] == '{' || text[i + 1] == '['))
            return i + 1;
    return len;
}

int sp_cmd_normalize(int argc, char **argv)
{
    struct sp_normalize_opts opts;
    sp_normalize_opts_default(&opts);
    bool pretty = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--no-raw") == 0) {
            opts.keep_raw = false;
        } else if (strcmp(a, "--pretty") == 0) {
            pretty = true;
        } else if ((val = opt_value(argc, argv, &i, "-f", "--format"))) {
            if (sp_format_parse(val, &opts.format) != SP_OK) {
                fprintf(stderr, "socpilot normalize: --format needs one of "
                                "auto, graph, sentinel, defender-streaming, "
                                "generic\n");
                return 2;
            }
        } else if ((val = opt_value(argc, argv, &i, "-t", "--tenant"))) {
            if (!*val) {
                fprintf(stderr, "socpilot normalize: --tenant needs a "
                                "value\n");
                return 2;
            }
            opts.default_tenant = val;
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--format") == 0 ||
                   strcmp(a, "-t") == 0 || strcmp(a, "--tenant") == 0) {
            fprintf(stderr, "socpilot normalize: %s needs a value\n", a);
            return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "socpilot normalize: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "socpilot normalize: one input at a time\n");
            return 2;
        } else {
            path = a;
        }
    }
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text)
        return 2;
    /* The scan only finds where each document ends; sp_normalize()
     * then applies the real limits to it. */
    struct sp_json_limits scan = opts.jlim;
    scan.max_bytes = len ? len : 1;
    scan.max_nodes = 50000000;
    struct sp_arena scan_arena;
    sp_arena_init(&scan_arena, 0);
    struct sp_buf out;
    sp_buf_init(&out, 0);
    size_t off = 0, records = 0, alerts = 0, rejects = 0, line = 1;
    for (;;) {
        while (off < len && (text[off] == ' ' || text[off] == '\n' ||
                             text[off] == '\r' || text[off] == '\t'))
            line += text[off++] == '\n';
        if (off >= len && records > 0)
            break;
        size_t used = 0, end;
        sp_arena_reset(&scan_arena);
        struct sp_json_error jerr;
        if (off < len && sp_json_parse_prefix(&scan_arena, text + off,
                                              len - off, &scan, &used, &jerr))
            end = off + used;
        else
            end = resync(text, len, off);
        struct sp_msg msg;
        memset(&msg, 0, sizeof(msg));
        sp_arena_init(&msg.arena, (size_t)256 << 20);
        msg.payload = text + off;
        msg.len = end - off;
        msg.offset = (int64_t)records;
        records++;
        if (sp_normalize(&msg, &opts, "normalize") != SP_OK) {
            fprintf(stderr, "record %zu (line %zu): out of memory\n", records,
                    line);
            rejects++;
        }
        for (size_t i = 0; i < msg.n_alerts; i++)
            print_alert(msg.alerts[i], opts.keep_raw, pretty, &out);
        for (size_t i = 0; i < msg.n_rejects; i++) {
            const struct sp_reject *r = &msg.rejects[i];
            size_t at = r->bytes >= text + off && r->bytes < text + end
                            ? (size_t)(r->bytes - text)
                            : off;
            fprintf(stderr, "reject: record %zu (line %zu): %s: %s\n",
                    records, line + newlines(text, off, at), r->reason,
                    r->detail);
        }
        alerts += msg.n_alerts;
        rejects += msg.n_rejects;
        sp_arena_fini(&msg.arena);
        line += newlines(text, off, end);
        off = end;
        if (off >= len)
            break;
    }
    fflush(stdout);
    fprintf(stderr, "normalize: %zu records, %zu alerts, %zu rejects\n",
            records, alerts, rejects);
    sp_buf_fini(&out);
    sp_arena_fini(&scan_arena);
    free(text);
    return rejects ? 1 : 0;
}
