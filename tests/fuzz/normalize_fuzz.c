/*
 * normalize_fuzz.c - libFuzzer harness for the decode path: sp_normalize()
 * (stages/normalize*.c) and the alert writer (pipeline/alert.c).
 *
 * The first input byte picks the pinned format (auto, graph, sentinel,
 * defender-streaming, generic); the rest is the message.  Limits are
 * small (64 KiB, depth 24, 20000 nodes, 40 entities, 8 ids, 256-byte
 * strings) so the fuzzer reaches them.  Checked on every input:
 * - every message ends with at least one alert or reject, each reject has
 *   a known reason and bytes inside the payload (or the arena);
 * - every alert has an id "<source>:<provider id>", a tenant, a status of
 *   the four, entities with a type and valid UTF-8 identifiers;
 * - the written alert parses, is one line, and reading it back as the
 *   generic format and writing it again gives the same bytes.
 * A broken promise is an abort(), which the fuzzer reports as a crash.
 *
 * Owns a message arena and two buffers kept across inputs (reset, never
 * freed).  Single threaded, as libFuzzer and the corpus replay call it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"

#define FUZZ_ARENA_MAX ((size_t)64 << 20)

static struct sp_buf out1, out2;
static bool ready;

#define must(cond)                                                          \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "normalize_fuzz.c:%d: broken: %s\n", __LINE__,   \
                    #cond);                                                 \
            abort();                                                        \
        }                                                                   \
    } while (0)

static void opts_for(struct sp_normalize_opts *o, enum sp_format f)
{
    sp_normalize_opts_default(o);
    o->format = f;
    o->jlim.max_bytes = 64 << 10;
    o->jlim.max_depth = 24;
    o->jlim.max_nodes = 20000;
    o->lim.max_entities = 40;
    o->lim.max_ids_per_entity = 8;
    o->lim.max_string = 256;
}

static bool known_reason(const char *r)
{
    size_t n;
    const char *const *all = sp_normalize_reasons(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i], r) == 0)
            return true;
    return false;
}

static void check_alert(const struct sp_alert *a)
{
    must(a->id && a->source && a->tenant && a->provider_alert_id);
    size_t sl = strlen(a->source);
    must(strncmp(a->id, a->source, sl) == 0 && a->id[sl] == ':');
    must(a->status && (!strcmp(a->status, "new") ||
                       !strcmp(a->status, "in_progress") ||
                       !strcmp(a->status, "resolved") ||
                       !strcmp(a->status, "unknown")));
    must(a->n_entities <= 40);
    for (size_t i = 0; i < a->n_entities; i++) {
        const struct sp_entity *e = &a->entities[i];
        must(e->type && *e->type && e->n_ids > 0 && e->n_ids <= 8);
        must(!e->key || strchr(e->key, ':'));
        for (uint16_t k = 0; k < e->n_ids; k++) {
            const char *v = e->ids[k].value;
            must(e->ids[k].name && v && *v);
            must(sp_utf8_valid(v, strlen(v)));
        }
    }
}

static void write_alert(const struct sp_alert *a, struct sp_buf *b, bool raw)
{
    struct sp_jw w;
    sp_buf_reset(b);
    sp_jw_init(&w, b);
    sp_alert_write(a, &w, raw);
    must(sp_jw_ok(&w));
}

/* The output parses, stays on one line and round-trips as generic. */
static void check_output(const struct sp_alert *a)
{
    write_alert(a, &out1, true);
    must(!memchr(out1.data, '\n', out1.len));
    struct sp_arena tmp;
    sp_arena_init(&tmp, FUZZ_ARENA_MAX);
    struct sp_json_error err;
    must(sp_json_parse(&tmp, out1.data, out1.len, NULL, &err) != NULL);
    sp_arena_fini(&tmp);

    write_alert(a, &out1, false);
    struct sp_normalize_opts o;
    opts_for(&o, SP_FMT_GENERIC);
    o.jlim.max_bytes = (size_t)16 << 20;
    o.jlim.max_nodes = 1000000;
    o.lim.max_string = 0;
    struct sp_msg back;
    memset(&back, 0, sizeof(back));
    sp_arena_init(&back.arena, FUZZ_ARENA_MAX);
    back.payload = out1.data;
    back.len = out1.len;
    must(sp_normalize(&back, &o, "fuzz") == SP_OK);
    must(back.n_alerts == 1 && back.n_rejects == 0);
    write_alert(back.alerts[0], &out2, false);
    if (out1.len != out2.len || memcmp(out1.data, out2.data, out1.len) != 0)
        fprintf(stderr, "first:  %s\nsecond: %s\n", out1.data, out2.data);
    must(out1.len == out2.len && memcmp(out1.data, out2.data, out1.len) == 0);
    sp_arena_fini(&back.arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        sp_buf_init(&out1, (size_t)16 << 20);
        sp_buf_init(&out2, (size_t)16 << 20);
        ready = true;
    }
    if (size == 0)
        return 0;
    struct sp_normalize_opts o;
    opts_for(&o, (enum sp_format)(data[0] % 5));
    struct sp_msg msg;
    memset(&msg, 0, sizeof(msg));
    sp_arena_init(&msg.arena, FUZZ_ARENA_MAX);
    msg.payload = (const char *)data + 1;
    msg.len = size - 1;
    must(sp_normalize(&msg, &o, "fuzz") == SP_OK);
    must(msg.n_alerts + msg.n_rejects >= 1);
    for (size_t i = 0; i < msg.n_rejects; i++) {
        const struct sp_reject *r = &msg.rejects[i];
        must(known_reason(r->reason) && r->detail && r->bytes);
        must(!strcmp(r->stage, "fuzz"));
    }
    for (size_t i = 0; i < msg.n_alerts; i++) {
        check_alert(msg.alerts[i]);
        check_output(msg.alerts[i]);
    }
    sp_arena_fini(&msg.arena);
    return 0;
}
