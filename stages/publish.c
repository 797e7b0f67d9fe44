/*
 * publish.c - the last stage: every alert of the batch to the alerts
 * topic, every reject (from any stage) to the DLQ.
 *
 * Alerts: key = alert id, value = the normalized alert (schema version in
 * a header), headers with source format and where the input came from.
 * DLQ records: key = the input's original key, value = the rejected
 * record's original bytes, headers: reason, detail, stage, source
 * topic/partition/offset.  The DLQ value is the exact input (or the exact
 * sub-record of an envelope), so replaying a fixed record is a copy.
 *
 * A record the sink refuses synchronously (bigger than the producer's
 * message.max.bytes) goes to the DLQ instead, with reason
 * "output_too_large"; any other refusal asks the engine to retry the
 * batch (and since outputs already produced for it would be produced
 * again, the consumers' idempotence by key covers the duplicate).
 *
 * Engine thread.
 */
#include "json.h"
#include "log.h"
#include "stage.h"

#include <stdio.h>
#include <string.h>

struct publish_ctx {
    struct sp_buf buf;
    bool include_raw;
    size_t dlq_max_value;
    size_t done_msgs;           /* progress within a batch, for retries */
    uint64_t batch_seq;
    struct sp_counter *c_alerts, *c_dlq, *c_dlq_truncated;
    struct sp_log_rl rl_small;
};

static const struct sp_cfg_key publish_keys[] = {
    {"publish.include_raw", SP_CFG_BOOL, "true", 0, 0,
     "Embed the original document under \"raw\" in published alerts; when "
     "false, \"raw_ref\" names its input topic, partition and offset instead "
     "(about half the output bytes)", 0, NULL},
    {"publish.max_record", SP_CFG_SIZE, "4MiB", 1024, (int64_t)1 << 30,
     "Largest serialised alert; a larger one goes to the DLQ", 0, NULL},
    {"publish.dlq_max_value", SP_CFG_SIZE, "900KiB", 1024, (int64_t)1 << 30,
     "Largest DLQ value: a longer rejected record is cut to this size, with "
     "headers socpilot-truncated and socpilot-original-size (the original "
     "stays in the input topic at the offset the headers name); keep it "
     "under the producer's and the topic's message.max.bytes (a record the "
     "producer still refuses keeps only its first 1 KiB); keys are cut to "
     "1 KiB (header socpilot-original-key-size)", 0, NULL},
};

static enum sp_err publish_init(struct sp_stage *st, struct sp_error *err)
{
    struct publish_ctx *ctx = st->ctx;
    const struct sp_config *cfg = st->env->cfg;
    sp_buf_init(&ctx->buf, (size_t)sp_config_int(cfg, "publish.max_record"));
    ctx->include_raw = sp_config_bool(cfg, "publish.include_raw");
    ctx->dlq_max_value = (size_t)sp_config_int(cfg, "publish.dlq_max_value");
    if (st->env->metrics) {
        ctx->c_alerts = sp_metrics_counter(st->env->metrics,
                                           "published_alerts_total",
                                           "Alerts produced to the alerts topic",
                                           NULL);
        ctx->c_dlq = sp_metrics_counter(st->env->metrics,
                                        "published_dlq_total",
                                        "Records produced to the DLQ", NULL);
        ctx->c_dlq_truncated = sp_metrics_counter(
            st->env->metrics, "published_dlq_truncated_total",
            "DLQ records cut (value to publish.dlq_max_value, key to 1 KiB)",
            NULL);
    }
    SP_UNUSED(err);
    return SP_OK;
}

#define DLQ_MAX_DETAIL 1024

static enum sp_err dlq_produce(struct sp_stage *st, struct sp_batch *batch,
                               const struct sp_msg *msg,
                               const struct sp_reject *r, size_t max_value,
                               size_t max_key)
{
    struct publish_ctx *ctx = st->ctx;
    char part[16], off[24], size[24], ksize[24];
    snprintf(part, sizeof(part), "%d", (int)msg->partition);
    snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
    snprintf(size, sizeof(size), "%zu", r->len);
    snprintf(ksize, sizeof(ksize), "%zu", msg->key_len);
    const char *detail = r->detail ? r->detail : "";
    struct sp_header hdrs[10] = {
        {"socpilot-error-reason", r->reason, strlen(r->reason)},
        {"socpilot-error-detail", detail,
         SP_MIN(strlen(detail), (size_t)DLQ_MAX_DETAIL)},
        {"socpilot-error-stage", r->stage, strlen(r->stage)},
        {"socpilot-source-topic", msg->topic, strlen(msg->topic)},
        {"socpilot-source-partition", part, strlen(part)},
        {"socpilot-source-offset", off, strlen(off)},
    };
    size_t n_hdrs = 6;
    size_t len = r->len, klen = msg->key_len;
    if (len > max_value) {
        /* Bigger than the DLQ takes: keep a prefix, say so, and point at
         * the original, which stays in the input topic at this offset. */
        len = max_value;
        hdrs[n_hdrs++] = (struct sp_header){"socpilot-original-size", size,
                                            strlen(size)};
    }
    if (klen > max_key) {
        klen = max_key;
        hdrs[n_hdrs++] = (struct sp_header){"socpilot-original-key-size",
                                            ksize, strlen(ksize)};
    }
    if (len < r->len || klen < msg->key_len)
        hdrs[n_hdrs++] = (struct sp_header){"socpilot-truncated", "true", 4};
    enum sp_err e = st->env->sink->produce(
        st->env->sink, batch, st->env->topic_dlq, msg->key, klen, r->bytes,
        len, hdrs, n_hdrs);
    if (e == SP_OK) {
        sp_counter_add(ctx->c_dlq, 1);
        if (len < r->len || klen < msg->key_len)
            sp_counter_add(ctx->c_dlq_truncated, 1);
    }
    return e;
}

static enum sp_err produce_reject(struct sp_stage *st, struct sp_batch *batch,
                                  const struct sp_msg *msg,
                                  const struct sp_reject *r)
{
    struct publish_ctx *ctx = st->ctx;
    enum sp_err e = dlq_produce(st, batch, msg, r, ctx->dlq_max_value,
                                SP_DLQ_MAX_KEY);
    if (e != SP_ERR_LIMIT)
        return e;
    /* The producer refuses even that (its message.max.bytes is below
     * publish.dlq_max_value): a minimal record still accounts for the
     * input, and its headers say where the original is. */
    sp_log_warn_rl(&ctx->rl_small, 5000, st->log,
                   "DLQ record of %s@%lld too large for the producer; "
                   "kept %d bytes of it (lower publish.dlq_max_value below "
                   "message.max.bytes)", msg->topic, (long long)msg->offset,
                   SP_DLQ_MIN_VALUE);
    return dlq_produce(st, batch, msg, r, SP_DLQ_MIN_VALUE, SP_DLQ_MIN_KEY);
}

static enum sp_err produce_alert(struct sp_stage *st, struct sp_batch *batch,
                                 struct sp_msg *msg, struct sp_alert *alert)
{
    struct publish_ctx *ctx = st->ctx;
    sp_buf_reset(&ctx->buf);
    struct sp_jw w;
    sp_jw_init(&w, &ctx->buf);
    if (!ctx->include_raw && !sp_alert_find_section(alert, "raw_ref")) {
        /* The original is not embedded: say where it is instead (once:
         * a retried batch comes through here again).  Kafka topic names
         * are [a-zA-Z0-9._-], nothing to escape. */
        char *ref = sp_arena_printf(&msg->arena,
                                    "{\"topic\":\"%s\",\"partition\":%d,"
                                    "\"offset\":%lld}",
                                    msg->topic, (int)msg->partition,
                                    (long long)msg->offset);
        if (ref)
            sp_alert_add_section(&msg->arena, alert, "raw_ref", ref,
                                 strlen(ref));
    }
    sp_alert_write(alert, &w, ctx->include_raw);
    if (!sp_jw_ok(&w)) {
        /* Too big to publish: the input goes to the DLQ instead. */
        struct sp_reject r = {"output_too_large", st->name,
                              "serialised alert exceeds publish.max_record",
                              msg->payload, msg->len};
        return produce_reject(st, batch, msg, &r);
    }
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", (int)msg->partition);
    snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
    struct sp_header hdrs[] = {
        {"socpilot-format", alert->source, strlen(alert->source)},
        {"socpilot-schema", "alert/" SP_ALERT_SCHEMA_VERSION,
         sizeof("alert/" SP_ALERT_SCHEMA_VERSION) - 1},
        {"socpilot-tenant", alert->tenant, strlen(alert->tenant)},
        {"socpilot-source-topic", msg->topic, strlen(msg->topic)},
        {"socpilot-source-partition", part, strlen(part)},
        {"socpilot-source-offset", off, strlen(off)},
    };
    enum sp_err e = st->env->sink->produce(
        st->env->sink, batch, st->env->topic_alerts, alert->id,
        strlen(alert->id), ctx->buf.data, ctx->buf.len, hdrs,
        SP_ARRAY_SIZE(hdrs));
    if (e == SP_ERR_LIMIT) {
        struct sp_reject r = {"output_too_large", st->name,
                              "alert larger than the producer accepts",
                              msg->payload, msg->len};
        return produce_reject(st, batch, msg, &r);
    }
    if (e == SP_OK)
        sp_counter_add(ctx->c_alerts, 1);
    return e;
}

static enum sp_err publish_process(struct sp_stage *st, struct sp_batch *batch)
{
    struct publish_ctx *ctx = st->ctx;
    /* A retry of the same batch resumes after the last message fully
     * produced. */
    if (ctx->batch_seq != batch->seq || batch->seq == 0) {
        ctx->batch_seq = batch->seq;
        ctx->done_msgs = 0;
    }
    for (size_t i = ctx->done_msgs; i < batch->n; i++) {
        struct sp_msg *msg = &batch->msgs[i];
        for (size_t j = 0; j < msg->n_alerts; j++) {
            enum sp_err e = produce_alert(st, batch, msg, msg->alerts[j]);
            if (e)
                return e == SP_ERR_RETRY ? SP_ERR_RETRY : e;
        }
        for (size_t j = 0; j < msg->n_rejects; j++) {
            enum sp_err e = produce_reject(st, batch, msg, &msg->rejects[j]);
            if (e == SP_ERR_LIMIT) {
                /* The producer refuses even the minimal record: the
                 * operator must raise message.max.bytes; retrying cannot
                 * help. */
                sp_log_error(st->log, "DLQ record of %s@%lld refused as too "
                             "large even cut to %d bytes; raise the "
                             "producer's message.max.bytes",
                             msg->topic, (long long)msg->offset,
                             SP_DLQ_MIN_VALUE);
                return SP_ERR_LIMIT;
            }
            if (e)
                return SP_ERR_RETRY;
        }
        ctx->done_msgs = i + 1;
    }
    return SP_OK;
}

static void publish_close(struct sp_stage *st)
{
    struct publish_ctx *ctx = st->ctx;
    sp_buf_fini(&ctx->buf);
}

const struct sp_stage_type sp_stage_publish = {
    .name = "publish",
    .desc = "Produce alerts to the alerts topic and rejects to the DLQ",
    .keys = publish_keys,
    .n_keys = SP_ARRAY_SIZE(publish_keys),
    .ctx_size = sizeof(struct publish_ctx),
    .init = publish_init,
    .process = publish_process,
    .close = publish_close,
};
