/*
 * stage.c - stage instances, the registry of built-in stage types, and
 * batch/message memory.
 *
 * The registry is a static table: adding a stage type is adding its
 * descriptor here (and its .c file).  The chain itself (which stages, in
 * which order) comes from the `pipeline.stages` config key.
 *
 * Engine thread only.
 */
#include "stage.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct sp_stage_type sp_stage_decode;
extern const struct sp_stage_type sp_stage_correlate;
extern const struct sp_stage_type sp_stage_scripts;
extern const struct sp_stage_type sp_stage_publish;
extern const struct sp_stage_type sp_stage_analyze;

static const struct sp_stage_type *const stage_types[] = {
    &sp_stage_decode, &sp_stage_scripts, &sp_stage_correlate,
    &sp_stage_analyze, &sp_stage_publish,
};

const struct sp_stage_type *const *sp_stage_types(size_t *n)
{
    *n = SP_ARRAY_SIZE(stage_types);
    return stage_types;
}

const struct sp_stage_type *sp_stage_type_find(const char *name)
{
    size_t n;
    const struct sp_stage_type *const *types = sp_stage_types(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(types[i]->name, name) == 0)
            return types[i];
    return NULL;
}

struct sp_stage *sp_stage_new(const struct sp_stage_type *type, int index,
                              struct sp_env *env)
{
    struct sp_stage *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->type = type;
    st->env = env;
    snprintf(st->name, sizeof(st->name), "%s.%d", type->name, index);
    snprintf(st->log, sizeof(st->log), "stage:%s", st->name);
    if (type->ctx_size) {
        st->ctx = calloc(1, type->ctx_size);
        if (!st->ctx) {
            free(st);
            return NULL;
        }
    }
    if (env && env->metrics) {
        char labels[96];
        snprintf(labels, sizeof(labels), "stage=\"%s\"", st->name);
        struct sp_metrics *m = env->metrics;
        st->c_in = sp_metrics_counter(m, "stage_messages_in_total",
                                      "Messages entering the stage", labels);
        st->c_out = sp_metrics_counter(m, "stage_alerts_out_total",
                                       "Alerts leaving the stage", labels);
        st->c_dropped = sp_metrics_counter(
            m, "stage_dropped_total",
            "Records the stage dropped on purpose (duplicates...)", labels);
        st->c_errors = sp_metrics_counter(
            m, "stage_rejects_total", "Records the stage sent to the DLQ",
            labels);
        st->h_latency = sp_metrics_hist(m, "stage_batch_seconds",
                                        "Time to process one batch", labels,
                                        NULL, 0);
    }
    return st;
}

enum sp_err sp_stage_init(struct sp_stage *st, struct sp_error *err)
{
    if (!st->type->init)
        return SP_OK;
    return st->type->init(st, err);
}

enum sp_err sp_stage_process(struct sp_stage *st, struct sp_batch *batch)
{
    if (!st->type->process)
        return SP_OK;
    size_t alerts_before = 0, rejects_before = 0;
    for (size_t i = 0; i < batch->n; i++) {
        alerts_before += batch->msgs[i].n_alerts;
        rejects_before += batch->msgs[i].n_rejects;
    }
    int64_t t0 = sp_now_us();
    enum sp_err e = st->type->process(st, batch);
    if (e != SP_OK)
        return e;
    size_t alerts = 0, rejects = 0;
    for (size_t i = 0; i < batch->n; i++) {
        alerts += batch->msgs[i].n_alerts;
        rejects += batch->msgs[i].n_rejects;
    }
    sp_counter_add(st->c_in, batch->n);
    sp_counter_add(st->c_out, alerts);
    if (rejects > rejects_before)
        sp_counter_add(st->c_errors, rejects - rejects_before);
    if (alerts < alerts_before)
        sp_counter_add(st->c_dropped, alerts_before - alerts);
    sp_hist_observe(st->h_latency, (double)(sp_now_us() - t0) / 1e6);
    return SP_OK;
}

void sp_stage_free(struct sp_stage *st)
{
    if (!st)
        return;
    if (st->type->close)
        st->type->close(st);
    free(st->ctx);
    free(st);
}

/* ---- messages and batches ----------------------------------------------- */

#define SP_MSG_ARENA_MAX ((size_t)64 << 20)

enum sp_err sp_msg_reject(struct sp_msg *msg, const char *stage,
                          const char *reason, const char *detail,
                          const char *bytes, size_t len)
{
    if (msg->n_rejects == msg->cap_rejects) {
        size_t cap = msg->cap_rejects ? msg->cap_rejects * 2 : 4;
        struct sp_reject *r = sp_arena_alloc(&msg->arena, cap * sizeof(*r));
        if (!r)
            return SP_ERR_NOMEM;
        if (msg->n_rejects)
            memcpy(r, msg->rejects, msg->n_rejects * sizeof(*r));
        msg->rejects = r;
        msg->cap_rejects = cap;
    }
    struct sp_reject *r = &msg->rejects[msg->n_rejects++];
    r->stage = stage;
    r->reason = reason;
    r->detail = detail;
    r->bytes = bytes;
    r->len = len;
    return SP_OK;
}

enum sp_err sp_msg_add_alert(struct sp_msg *msg, struct sp_alert *alert)
{
    if (msg->n_alerts == msg->cap_alerts) {
        size_t cap = msg->cap_alerts ? msg->cap_alerts * 2 : 4;
        struct sp_alert **a = sp_arena_alloc(&msg->arena, cap * sizeof(*a));
        if (!a)
            return SP_ERR_NOMEM;
        if (msg->n_alerts)
            memcpy(a, msg->alerts, msg->n_alerts * sizeof(*a));
        msg->alerts = a;
        msg->cap_alerts = cap;
    }
    msg->alerts[msg->n_alerts++] = alert;
    return SP_OK;
}

struct sp_batch *sp_batch_new(size_t cap)
{
    struct sp_batch *batch = calloc(1, sizeof(*batch));
    if (!batch)
        return NULL;
    if (cap) {
        batch->msgs = calloc(cap, sizeof(*batch->msgs));
        if (!batch->msgs) {
            free(batch);
            return NULL;
        }
    }
    batch->cap = cap;
    batch->started_us = sp_now_us();
    return batch;
}

void sp_batch_free(struct sp_batch *batch)
{
    if (!batch)
        return;
    for (size_t i = 0; i < batch->n; i++)
        sp_arena_fini(&batch->msgs[i].arena);
    free(batch->msgs);
    free(batch);
}

struct sp_msg *sp_batch_add(struct sp_batch *batch)
{
    if (batch->n >= batch->cap)
        return NULL;
    struct sp_msg *msg = &batch->msgs[batch->n++];
    memset(msg, 0, sizeof(*msg));
    sp_arena_init(&msg->arena, SP_MSG_ARENA_MAX);
    return msg;
}

static void batch_maybe_done(struct sp_batch *batch)
{
    if (batch->on_done && batch->sealed && batch->pending == 0) {
        batch->on_done(batch, batch->ud);
        sp_batch_free(batch);
    }
}

void sp_batch_ack(struct sp_batch *batch, bool ok)
{
    batch->pending--;
    if (!ok)
        batch->failed++;
    batch_maybe_done(batch);
}

void sp_batch_seal(struct sp_batch *batch)
{
    batch->sealed = true;
    batch_maybe_done(batch);
}
