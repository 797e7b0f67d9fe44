/*
 * decode.c - the decode stage: every consumed message becomes normalized
 * alerts (msg->alerts) or DLQ rejects (msg->rejects) through
 * sp_normalize().  The format is detected per record, or pinned for all
 * topics (decode.format) or per topic (decode.topic_formats).
 *
 * Owns its context: the normalizer options built from the decode.* keys,
 * the per-topic formats, and its counters (alerts by source, rejects by
 * reason, bytes).  Engine thread only, like every stage callback.
 *
 * process() is idempotent: a message that already has results is left
 * alone, so a retried batch is not decoded twice.
 */
#include "log.h"
#include "normalize.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECODE_MAX_TOPICS 256

static const struct sp_cfg_key decode_keys[] = {
    {"decode.format", SP_CFG_ENUM, "auto", 0, 0,
     "Alert format of the input topics; auto detects it per record", 0,
     "auto|graph|sentinel|defender-streaming|generic"},
    {"decode.topic_formats", SP_CFG_MAP, NULL, 0, 0,
     "Format pinned per input topic (topic: format), overriding "
     "decode.format",
     0, NULL},
    {"decode.default_tenant", SP_CFG_STR, "default", 0, 0,
     "Tenant of alerts whose document names none", 0, NULL},
    {"decode.max_bytes", SP_CFG_SIZE, "1MiB", 1024, (int64_t)64 << 20,
     "Largest message accepted; larger ones go to the DLQ as too_large", 0,
     NULL},
    {"decode.max_depth", SP_CFG_INT, "64", 4, 512,
     "Deepest JSON nesting accepted (too_deep)", 0, NULL},
    {"decode.max_nodes", SP_CFG_INT, "200000", 100, 10000000,
     "Most JSON values in one message (too_many_nodes)", 0, NULL},
    {"decode.max_entities", SP_CFG_INT, "500", 1, 100000,
     "Most distinct entities in one alert (too_many_entities)", 0, NULL},
    {"decode.max_ids_per_entity", SP_CFG_INT, "32", 1, 1024,
     "Identifiers kept per entity; extra ones are dropped", 0, NULL},
    {"decode.max_string", SP_CFG_SIZE, "64KiB", 64, (int64_t)16 << 20,
     "Longest string field kept; longer ones are cut (raw keeps them)", 0,
     NULL},
    {"decode.keep_raw", SP_CFG_BOOL, "true", 0, 0,
     "Embed the original record in each alert under \"raw\"", 0, NULL},
};

struct topic_format {
    const char *topic;          /* borrowed from the config */
    enum sp_format format;
};

struct decode {
    struct sp_normalize_opts opts;
    struct topic_format *topics;
    size_t n_topics;
    struct sp_counter *c_bytes;
    struct sp_counter *c_source[4];
    struct sp_counter *c_reason[16];
};

static const char *const source_names[] = {"graph", "sentinel",
                                           "defender-streaming", "generic"};

struct map_ctx {
    struct decode *dc;
    struct sp_error *err;
};

static int topic_cb(const char *name, const char *value, void *ud)
{
    struct map_ctx *mc = ud;
    struct decode *dc = mc->dc;
    enum sp_format f;
    if (sp_format_parse(value, &f) != SP_OK) {
        sp_error_set(mc->err, SP_ERR_CONFIG,
                     "decode.topic_formats.%s: unknown format \"%s\" "
                     "(auto|graph|sentinel|defender-streaming|generic)",
                     name, value);
        return 1;
    }
    if (dc->n_topics >= DECODE_MAX_TOPICS) {
        sp_error_set(mc->err, SP_ERR_CONFIG,
                     "decode.topic_formats: more than %d topics",
                     DECODE_MAX_TOPICS);
        return 1;
    }
    dc->topics[dc->n_topics].topic = name;
    dc->topics[dc->n_topics].format = f;
    dc->n_topics++;
    return 0;
}

static void register_metrics(struct sp_stage *st, struct decode *dc)
{
    struct sp_metrics *m = st->env ? st->env->metrics : NULL;
    if (!m)
        return;
    char labels[160];
    snprintf(labels, sizeof(labels), "stage=\"%s\"", st->name);
    dc->c_bytes = sp_metrics_counter(m, "decode_bytes_total",
                                     "Payload bytes decoded", labels);
    for (size_t i = 0; i < SP_ARRAY_SIZE(source_names); i++) {
        snprintf(labels, sizeof(labels), "stage=\"%s\",source=\"%s\"",
                 st->name, source_names[i]);
        dc->c_source[i] = sp_metrics_counter(
            m, "decode_alerts_total", "Alerts decoded, by source format",
            labels);
    }
    size_t n;
    const char *const *reasons = sp_normalize_reasons(&n);
    for (size_t i = 0; i < n && i < SP_ARRAY_SIZE(dc->c_reason); i++) {
        snprintf(labels, sizeof(labels), "stage=\"%s\",reason=\"%s\"",
                 st->name, reasons[i]);
        dc->c_reason[i] = sp_metrics_counter(
            m, "decode_rejects_total", "Records sent to the DLQ, by reason",
            labels);
    }
}

static enum sp_err decode_init(struct sp_stage *st, struct sp_error *err)
{
    struct decode *dc = st->ctx;
    sp_normalize_opts_default(&dc->opts);
    const struct sp_config *cfg = st->env ? st->env->cfg : NULL;
    if (cfg) {
        const char *f = sp_config_str(cfg, "decode.format");
        if (f && sp_format_parse(f, &dc->opts.format) != SP_OK)
            return sp_error_set(err, SP_ERR_CONFIG,
                                "decode.format: unknown format \"%s\"", f);
        dc->opts.default_tenant = sp_config_str(cfg, "decode.default_tenant");
        dc->opts.jlim.max_bytes =
            (size_t)sp_config_int(cfg, "decode.max_bytes");
        dc->opts.jlim.max_depth =
            (uint32_t)sp_config_int(cfg, "decode.max_depth");
        dc->opts.jlim.max_nodes =
            (uint32_t)sp_config_int(cfg, "decode.max_nodes");
        dc->opts.lim.max_entities =
            (uint32_t)sp_config_int(cfg, "decode.max_entities");
        dc->opts.lim.max_ids_per_entity =
            (uint32_t)sp_config_int(cfg, "decode.max_ids_per_entity");
        dc->opts.lim.max_string =
            (uint32_t)sp_config_int(cfg, "decode.max_string");
        dc->opts.keep_raw = sp_config_bool(cfg, "decode.keep_raw");
        if (!dc->opts.default_tenant || !*dc->opts.default_tenant)
            dc->opts.default_tenant = "default";
        dc->topics = calloc(DECODE_MAX_TOPICS, sizeof(*dc->topics));
        if (!dc->topics)
            return sp_error_set(err, SP_ERR_NOMEM, "decode: out of memory");
        struct map_ctx mc = {dc, err};
        if (sp_config_map_each(cfg, "decode.topic_formats", topic_cb, &mc))
            return SP_ERR_CONFIG;
    }
    register_metrics(st, dc);
    return SP_OK;
}

static enum sp_format topic_format(const struct decode *dc, const char *topic)
{
    if (topic)
        for (size_t i = 0; i < dc->n_topics; i++)
            if (strcmp(dc->topics[i].topic, topic) == 0)
                return dc->topics[i].format;
    return dc->opts.format;
}

static void count(struct decode *dc, const struct sp_msg *msg)
{
    sp_counter_add(dc->c_bytes, msg->len);
    for (size_t i = 0; i < msg->n_alerts; i++)
        for (size_t s = 0; s < SP_ARRAY_SIZE(source_names); s++)
            if (strcmp(msg->alerts[i]->source, source_names[s]) == 0) {
                sp_counter_inc(dc->c_source[s]);
                break;
            }
    size_t n;
    const char *const *reasons = sp_normalize_reasons(&n);
    for (size_t i = 0; i < msg->n_rejects; i++)
        for (size_t r = 0; r < n && r < SP_ARRAY_SIZE(dc->c_reason); r++)
            if (strcmp(msg->rejects[i].reason, reasons[r]) == 0) {
                sp_counter_inc(dc->c_reason[r]);
                break;
            }
}

static enum sp_err decode_process(struct sp_stage *st, struct sp_batch *batch)
{
    static struct sp_log_rl rl;
    struct decode *dc = st->ctx;
    struct sp_normalize_opts opts = dc->opts;
    for (size_t i = 0; i < batch->n; i++) {
        struct sp_msg *msg = &batch->msgs[i];
        if (msg->dropped || msg->n_alerts || msg->n_rejects)
            continue;
        opts.format = topic_format(dc, msg->topic);
        if (sp_normalize(msg, &opts, st->name) != SP_OK) {
            /* The arena ran out: nothing partial goes out; the whole
             * message goes to the DLQ. */
            sp_arena_reset(&msg->arena);
            msg->alerts = NULL;
            msg->n_alerts = msg->cap_alerts = 0;
            msg->rejects = NULL;
            msg->n_rejects = msg->cap_rejects = 0;
            if (sp_msg_reject(msg, st->name, SP_REJECT_TOO_LARGE,
                              "decoded message exceeds the memory limit",
                              msg->payload, msg->len) != SP_OK)
                return SP_ERR_NOMEM;
        }
        count(dc, msg);
        if (msg->n_rejects)
            sp_log_warn_rl(&rl, 10000, st->log,
                           "record to DLQ: reason=%s topic=%s partition=%d "
                           "offset=%lld detail=\"%s\"",
                           msg->rejects[0].reason,
                           msg->topic ? msg->topic : "-", (int)msg->partition,
                           (long long)msg->offset, msg->rejects[0].detail);
    }
    return SP_OK;
}

static void decode_close(struct sp_stage *st)
{
    struct decode *dc = st->ctx;
    if (dc) {
        free(dc->topics);
        dc->topics = NULL;
    }
}

const struct sp_stage_type sp_stage_decode = {
    .name = "decode",
    .desc = "Bytes to normalized alerts (Graph, Sentinel, Defender "
            "streaming, generic); bad records to the DLQ",
    .keys = decode_keys,
    .n_keys = SP_ARRAY_SIZE(decode_keys),
    .ctx_size = sizeof(struct decode),
    .init = decode_init,
    .process = decode_process,
    .close = decode_close,
};
