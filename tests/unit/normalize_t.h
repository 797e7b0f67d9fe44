/*
 * normalize_t.h - helpers shared by the decode-path unit tests
 * (test_alert.c, test_normalize.c, test_decode.c): run a payload through
 * sp_normalize(), look alerts, entities and identifiers up, write alerts,
 * and expect a single reject.  Header-only (static functions), included
 * after t.h by each test program.
 */
#ifndef SP_NORMALIZE_T_H
#define SP_NORMALIZE_T_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alert.h"
#include "normalize.h"
#include "normalize_int.h"
#include "stage.h"

#define FIX     "tests/fixtures/alerts/"
#define SAMPLES "../shared/samples/"

/* Where run_bytes() writes every alert it produces (NULL = nowhere). */
static FILE *fix_out;

struct run {
    struct sp_msg msg;
    char *text; /* owned payload */
};

static inline char *slurp(const char *path, size_t *len)
{
    struct sp_error err;
    char *s = sp_read_file(path, (size_t)64 << 20, len, &err);
    if (!s)
        T_FAILF("cannot read %s: %s", path, err.msg);
    return s;
}

static inline void emit(FILE *out, const struct sp_msg *msg)
{
    if (!out)
        return;
    struct sp_buf b;
    sp_buf_init(&b, 0);
    for (size_t i = 0; i < msg->n_alerts; i++) {
        struct sp_jw w;
        sp_buf_reset(&b);
        sp_jw_init(&w, &b);
        sp_alert_write(msg->alerts[i], &w, true);
        if (sp_jw_ok(&w))
            fprintf(out, "%s\n", b.data);
    }
    sp_buf_fini(&b);
}

/* Normalizes len bytes (copied) with opts (NULL = defaults). */
static inline void run_bytes(struct run *r, const char *p, size_t len,
                             const struct sp_normalize_opts *opts)
{
    struct sp_normalize_opts def;
    if (!opts) {
        sp_normalize_opts_default(&def);
        opts = &def;
    }
    memset(r, 0, sizeof(*r));
    r->text = malloc(len + 1);
    memcpy(r->text, p, len);
    r->text[len] = '\0';
    sp_arena_init(&r->msg.arena, (size_t)64 << 20);
    r->msg.payload = r->text;
    r->msg.len = len;
    T_EQ_INT(sp_normalize(&r->msg, opts, "decode.0"), SP_OK);
    T_OK(r->msg.n_alerts + r->msg.n_rejects > 0);
    emit(fix_out, &r->msg);
}

static inline void run_str(struct run *r, const char *s,
                           const struct sp_normalize_opts *opts)
{
    run_bytes(r, s, strlen(s), opts);
}

static inline bool run_file(struct run *r, const char *path,
                            const struct sp_normalize_opts *opts)
{
    size_t len;
    char *s = slurp(path, &len);
    if (!s)
        return false;
    run_bytes(r, s, len, opts);
    free(s);
    return true;
}

static inline void run_free(struct run *r)
{
    sp_arena_fini(&r->msg.arena);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

static inline struct sp_alert *alert_by_id(const struct sp_msg *msg,
                                           const char *id)
{
    for (size_t i = 0; i < msg->n_alerts; i++)
        if (strcmp(msg->alerts[i]->id, id) == 0)
            return msg->alerts[i];
    return NULL;
}

static inline const struct sp_entity *ent(const struct sp_alert *a,
                                          const char *key)
{
    return a ? sp_alert_find_entity(a, key) : NULL;
}

static inline const char *idv(const struct sp_entity *e, const char *name)
{
    return e ? sp_entity_id(e, name) : NULL;
}

static inline size_t count_ids(const struct sp_entity *e, const char *name)
{
    size_t n = 0;
    for (uint16_t i = 0; e && i < e->n_ids; i++)
        n += strcmp(e->ids[i].name, name) == 0;
    return n;
}

static inline bool has_role(const struct sp_entity *e, const char *role)
{
    for (uint8_t i = 0; e && i < e->n_roles; i++)
        if (strcmp(e->roles[i], role) == 0)
            return true;
    return false;
}

static inline size_t count_type(const struct sp_alert *a, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; a && i < a->n_entities; i++)
        n += strcmp(a->entities[i].type, type) == 0;
    return n;
}

static inline const char *time_str(int64_t us, char *buf)
{
    if (us == SP_TIME_NONE)
        return "none";
    sp_time_format(us, buf);
    return buf;
}

/* The alert as JSON text (malloc'd). */
static inline char *write_alert(const struct sp_alert *a, bool raw)
{
    struct sp_buf b;
    sp_buf_init(&b, 0);
    struct sp_jw w;
    sp_jw_init(&w, &b);
    sp_alert_write(a, &w, raw);
    T_OK(sp_jw_ok(&w));
    size_t n;
    return sp_buf_steal(&b, &n);
}

static inline bool has_reject(const struct sp_msg *msg, const char *reason)
{
    for (size_t i = 0; i < msg->n_rejects; i++)
        if (strcmp(msg->rejects[i].reason, reason) == 0)
            return true;
    return false;
}

static inline void expect_reject(const char *payload, size_t len,
                                 const char *reason,
                                 const struct sp_normalize_opts *opts)
{
    struct run r;
    run_bytes(&r, payload, len, opts);
    T_EQ_INT(r.msg.n_alerts, 0);
    T_EQ_INT(r.msg.n_rejects, 1);
    if (r.msg.n_rejects) {
        const struct sp_reject *rj = &r.msg.rejects[0];
        if (strcmp(rj->reason, reason) != 0)
            T_FAILF("payload %.60s: reason %s (%s), expected %s", payload,
                    rj->reason, rj->detail, reason);
        T_EQ_STR(rj->stage, "decode.0");
        T_OK(rj->detail && *rj->detail);
        T_OK(rj->bytes == r.msg.payload && rj->len == len);
    }
    run_free(&r);
}

/* Normalizes one sample (whole file, or each line of a .jsonl) and counts. */
static inline void sample_file(const char *path, FILE *out, size_t *alerts,
                               size_t *rejects, size_t allowed_rejects)
{
    size_t len;
    char *text = slurp(path, &len);
    if (!text)
        return;
    size_t pl = strlen(path);
    bool lines = pl > 6 && strcmp(path + pl - 6, ".jsonl") == 0;
    size_t na = 0, nr = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *e = lines ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!e)
            e = end;
        if (e > p) {
            struct sp_msg msg;
            memset(&msg, 0, sizeof(msg));
            sp_arena_init(&msg.arena, (size_t)64 << 20);
            msg.payload = p;
            msg.len = (size_t)(e - p);
            T_EQ_INT(sp_normalize(&msg, NULL, "decode.0"), SP_OK);
            for (size_t i = 0; i < msg.n_rejects; i++)
                fprintf(stderr, "  %s: reject %s: %s\n", path,
                        msg.rejects[i].reason, msg.rejects[i].detail);
            emit(out, &msg);
            na += msg.n_alerts;
            nr += msg.n_rejects;
            sp_arena_fini(&msg.arena);
        }
        p = e + 1;
    }
    if (na == 0)
        T_FAILF("%s: no alert", path);
    if (nr != allowed_rejects)
        T_FAILF("%s: %zu rejects, expected %zu", path, nr, allowed_rejects);
    *alerts += na;
    *rejects += nr;
    free(text);
}

#endif
