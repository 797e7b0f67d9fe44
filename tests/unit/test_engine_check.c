/*
 * test_engine_check.c - unit tests of sp_engine_check (pipeline/engine.c),
 * what check-config refuses beyond the key tables because run would refuse
 * it at start-up: unknown or missing stages in pipeline.stages, and
 * librdkafka properties that librdkafka rejects.  Opens nothing (no Kafka,
 * no Redis); single-threaded.
 */
#include "engine.h"
#include "t.h"

#include <string.h>

/* A validated config of the engine's keys with the given overrides and
 * YAML document (either may be NULL); NULL if it does not validate. */
static struct sp_config *config_with(const char *yaml, const char *set1,
                                     const char *set2)
{
    struct sp_error err = {0};
    struct sp_config *cfg = sp_config_new();
    T_OK(cfg != NULL);
    if (!cfg)
        return NULL;
    T_EQ_INT(sp_engine_declare(cfg, &err), SP_OK);
    if (yaml)
        T_EQ_INT(sp_config_load_string(cfg, "c.yaml", yaml, strlen(yaml), &err),
                 SP_OK);
    if (set1)
        T_EQ_INT(sp_config_set(cfg, set1, &err), SP_OK);
    if (set2)
        T_EQ_INT(sp_config_set(cfg, set2, &err), SP_OK);
    if (sp_config_validate(cfg, &err) != SP_OK) {
        T_FAILF("does not validate: %s", err.msg);
        sp_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void test_defaults_pass(void)
{
    struct sp_error err = {0};
    struct sp_config *cfg = config_with(NULL, NULL, NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_OK);
    sp_config_free(cfg);

    cfg = config_with("kafka:\n  consumer:\n    fetch.max.bytes: 1048576\n"
                      "  producer:\n    linger.ms: 10\n",
                      "pipeline.stages=decode,publish", NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_OK);
    sp_config_free(cfg);
}

static void test_unknown_stage(void)
{
    struct sp_error err = {0};
    /* The key tables take any list; only the engine knows the stages. */
    struct sp_config *cfg =
        config_with("pipeline:\n  stages: [decode, corelate, publish]\n",
                    NULL, NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "c.yaml:2: pipeline.stages: unknown stage 'corelate'");
    T_CONTAINS(err.msg, "known: decode,");
    sp_config_free(cfg);

    cfg = config_with(NULL, "pipeline.stages=", NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "pipeline.stages: empty chain");
    sp_config_free(cfg);
}

static void test_bad_kafka_property(void)
{
    struct sp_error err = {0};
    struct sp_config *cfg =
        config_with(NULL, "kafka.consumer.fetch.max.bytez=1", NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "kafka.consumer.fetch.max.bytez");
    sp_config_free(cfg);

    cfg = config_with(NULL, "kafka.client.linger.ms=soon", NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "kafka.client.linger.ms");
    sp_config_free(cfg);

    cfg = config_with("kafka:\n  producer:\n    compression.codec: zip\n",
                      NULL, NULL);
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
    T_CONTAINS(err.msg, "kafka.producer.compression.codec");
    sp_config_free(cfg);
}

/* What socpilot sets itself is refused rather than silently overridden
 * (acks=1 used to pass check-config and run with acks=all), aliases and
 * other spellings included; the same value, or a spelling of it, passes. */
static void test_forced_kafka_property(void)
{
    static const struct {
        const char *set, *want;
    } bad[] = {
        {"kafka.producer.acks=1", "acks=1 is not allowed: socpilot sets acks=all"},
        {"kafka.producer.request.required.acks=0", "acks=0 is not allowed"},
        {"kafka.client.enable.idempotence=false",
         "enable.idempotence=false is not allowed"},
        {"kafka.consumer.enable.auto.offset.store=true",
         "enable.auto.offset.store=true is not allowed"},
        {"kafka.consumer.group.id=other", "set kafka.group instead"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
        struct sp_error err = {0};
        struct sp_config *cfg = config_with(NULL, bad[i].set, NULL);
        if (!cfg)
            return;
        T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
        T_CONTAINS(err.msg, bad[i].want);
        sp_config_free(cfg);
    }
    static const char *const good[] = {
        "kafka.producer.acks=-1", "kafka.producer.acks=all",
        "kafka.producer.enable.idempotence=true",
        "kafka.consumer.enable.partition.eof=false",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(good); i++) {
        struct sp_error err = {0};
        struct sp_config *cfg = config_with(NULL, good[i], "kafka.group=g1");
        if (!cfg)
            return;
        T_EQ_INT(sp_engine_check(cfg, &err), SP_OK);
        sp_config_free(cfg);
    }
    struct sp_error err = {0};
    struct sp_config *cfg = config_with(NULL, "kafka.group=g1",
                                        "kafka.consumer.group.id=g1");
    if (!cfg)
        return;
    T_EQ_INT(sp_engine_check(cfg, &err), SP_OK);
    sp_config_free(cfg);
}

/* An empty kafka.group passed check-config and failed `run` ('subscribe:
 * Local: Unknown group'); and since librdkafka reads an empty group.id
 * back as unset, a kafka.consumer.group.id then passed the forced check
 * and was silently dropped. */
static void test_empty_kafka_group(void)
{
    static const char *const sets[][2] = {
        {"kafka.group=", NULL},
        {"kafka.group=", "kafka.consumer.group.id=other"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(sets); i++) {
        struct sp_error err = {0};
        struct sp_config *cfg = config_with(NULL, sets[i][0], sets[i][1]);
        if (!cfg)
            return;
        T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
        T_CONTAINS(err.msg, "kafka.group");
        sp_config_free(cfg);
    }
}

/* With socpilot's enable.idempotence=true librdkafka refuses to create a
 * producer with max.in.flight above 5 or retries 0: check-config passed
 * them and `run` failed at start-up.  Set within bounds, they pass. */
static void test_idempotence_limits(void)
{
    static const struct {
        const char *set, *want;
    } bad[] = {
        {"kafka.producer.max.in.flight=10", "max.in.flight=10 is not allowed"},
        {"kafka.client.max.in.flight.requests.per.connection=6",
         "max.in.flight=6 is not allowed"},
        {"kafka.producer.retries=0", "retries=0 is not allowed"},
        {"kafka.producer.message.send.max.retries=0",
         "retries=0 is not allowed"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
        struct sp_error err = {0};
        struct sp_config *cfg = config_with(NULL, bad[i].set, NULL);
        if (!cfg)
            return;
        T_EQ_INT(sp_engine_check(cfg, &err), SP_ERR_CONFIG);
        T_CONTAINS(err.msg, bad[i].want);
        sp_config_free(cfg);
    }
    static const char *const good[] = {
        "kafka.producer.max.in.flight=5", "kafka.producer.retries=3",
        "kafka.consumer.max.in.flight=100",
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(good); i++) {
        struct sp_error err = {0};
        struct sp_config *cfg = config_with(NULL, good[i], NULL);
        if (!cfg)
            return;
        T_EQ_INT(sp_engine_check(cfg, &err), SP_OK);
        sp_config_free(cfg);
    }
}

int main(void)
{
    t_prog = "test_engine_check";
    T_RUN(test_defaults_pass);
    T_RUN(test_unknown_stage);
    T_RUN(test_bad_kafka_property);
    T_RUN(test_forced_kafka_property);
    T_RUN(test_empty_kafka_group);
    T_RUN(test_idempotence_limits);
    return t_done();
}
