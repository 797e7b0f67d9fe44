/*
 * config_fuzz.c - libFuzzer harness for the configuration module
 * (pipeline/config*.c): the libyaml loader, "-s" overrides, validation
 * with ${...} substitution, the getters and the effective-settings dump.
 *
 * Each input is one YAML document, loaded against a small table that has
 * every key type (with ranges, defaults, groups, a map and secrets).
 * Comment lines of the form "#s key=value" are also passed to
 * sp_config_set, so the corpus can drive overrides while the document
 * stays valid YAML.  The harness validates twice (the second run must
 * agree with the first, dump for dump), reads every key back through the
 * getters, checks ranges and list shapes, and dumps into a memory stream.
 * A broken promise is an abort(), which the fuzzer reports as a crash.
 *
 * Owns nothing across inputs: every configuration is freed.  Single
 * threaded, as libFuzzer and the corpus replay call it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define FUZZ_MAX_SETS 8             /* "#s" overrides taken from one input */
#define FUZZ_SET_MAX 512            /* bytes of one override */

static const struct sp_cfg_key fuzz_keys[] = {
    { "name", SP_CFG_STR, "socpilot", 0, 0, "instance name", 0, NULL },
    { "engine.workers", SP_CFG_INT, "2", 1, 64, "worker threads", 0, NULL },
    { "engine.offset", SP_CFG_INT, NULL, 0, 0, "any integer", 0, NULL },
    { "engine.enabled", SP_CFG_BOOL, "true", 0, 0, "run the engine", 0,
      NULL },
    { "engine.flush.interval", SP_CFG_DURATION, "5s", 10, 3600000,
      "how often to flush", 0, NULL },
    { "engine.flush.timeout", SP_CFG_DURATION, NULL, 1, 0,
      "at least 1ms, no upper bound", 0, NULL },
    { "engine.batch.bytes", SP_CFG_SIZE, "1MiB", 1, (int64_t)1 << 30,
      "batch size", 0, NULL },
    { "log.level", SP_CFG_ENUM, "info", 0, 0, "log level", 0,
      "debug|info|warn|error" },
};

static const struct sp_cfg_key fuzz_keys2[] = {
    { "log.mask", SP_CFG_LIST, "password, token", 0, 0, "words to mask", 0,
      NULL },
    { "kafka.brokers", SP_CFG_LIST, NULL, 0, 0, "bootstrap servers", 0,
      NULL },
    { "kafka.consumer", SP_CFG_MAP, NULL, 0, 0, "librdkafka settings", 0,
      NULL },
    { "kafka.sasl.password", SP_CFG_STR, NULL, 0, 0, "SASL password",
      SP_CFG_SECRET, NULL },
    { "redis.url", SP_CFG_STR, "redis://127.0.0.1:6379", 0, 0, "Redis URL",
      0, NULL },
    { "redis.tokens", SP_CFG_LIST, NULL, 0, 0, "API tokens", SP_CFG_SECRET,
      NULL },
    { "redis.extra", SP_CFG_MAP, NULL, 0, 0, "secret settings",
      SP_CFG_SECRET, NULL },
    { "redis.ttl", SP_CFG_DURATION, "7d", 0, 0, "key lifetime", 0, NULL },
};

static void must(bool ok)
{
    if (!ok)
        abort();
}

static bool in_range(const struct sp_cfg_key *k, int64_t v)
{
    if (k->min == 0 && k->max == 0)
        return true;
    return v >= k->min && (k->max < k->min || v <= k->max);
}

static int check_entry(const char *name, const char *value, void *ud)
{
    must(name != NULL && value != NULL);
    (*(size_t *)ud)++;
    return 0;
}

static int check_secret(const char *name, const char *value, void *ud)
{
    SP_UNUSED(ud);
    must(name != NULL && value != NULL && *value);
    return 0;
}

/* Reads every declared key back after a successful validate. */
static void check_getters(const struct sp_config *cfg,
                          const struct sp_cfg_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct sp_cfg_key *k = &keys[i];
        const char *s = sp_config_str(cfg, k->name);
        int line = -1;
        must(sp_config_origin(cfg, k->name, &line) != NULL && line >= 0);
        (void)sp_config_is_set(cfg, k->name);
        switch (k->type) {
        case SP_CFG_INT:
        case SP_CFG_DURATION:
        case SP_CFG_SIZE: {
            int64_t v = sp_config_int(cfg, k->name);
            must(!s || in_range(k, v));
            break;
        }
        case SP_CFG_BOOL:
            (void)sp_config_bool(cfg, k->name);
            break;
        case SP_CFG_LIST: {
            const char *const *items = NULL;
            size_t len = sp_config_list(cfg, k->name, &items);
            must(items != NULL && items[len] == NULL);
            for (size_t j = 0; j < len; j++)
                must(items[j] != NULL);
            break;
        }
        case SP_CFG_MAP: {
            size_t entries = 0;
            must(s == NULL);
            must(sp_config_map_each(cfg, k->name, check_entry, &entries) == 0);
            break;
        }
        case SP_CFG_STR:
        case SP_CFG_ENUM:
            break;
        }
    }
    must(sp_config_each_secret(cfg, check_secret, NULL) == 0);
}

/* Validates and dumps; returns the dump (new, free()) and its length. */
static char *validate_dump(struct sp_config *cfg, enum sp_err *rc,
                           size_t *nerrs, size_t *len)
{
    struct sp_error err;
    const char *const *msgs = NULL;
    char *text = NULL;

    sp_error_clear(&err);
    *rc = sp_config_validate(cfg, &err);
    *nerrs = sp_config_errors(cfg, &msgs);
    must(*nerrs <= SP_CFG_MAX_ERRORS);
    for (size_t i = 0; i < *nerrs; i++)
        must(msgs[i] != NULL);
    must(*rc == SP_OK ? *nerrs == 0 : err.msg[0] != '\0');
    FILE *mem = open_memstream(&text, len);
    if (!mem)
        return NULL;
    sp_config_dump(cfg, mem);
    fclose(mem);
    return text;
}

/* Passes each "#s key=value" line of the input to sp_config_set. */
static void apply_sets(struct sp_config *cfg, const char *text, size_t size)
{
    char line[FUZZ_SET_MAX + 1];
    size_t pos = 0;
    int sets = 0;
    while (pos < size && sets < FUZZ_MAX_SETS) {  /* pos only moves on */
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : size - pos;
        if (n > 3 && n - 3 <= FUZZ_SET_MAX && !memcmp(text + pos, "#s ", 3)) {
            struct sp_error err;
            memcpy(line, text + pos + 3, n - 3);
            line[n - 3] = '\0';
            if (sp_config_set(cfg, line, &err) != SP_OK)
                must(err.code != SP_OK && err.msg[0] != '\0');
            sets++;
        }
        pos += n + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct sp_error err;
    struct sp_config *cfg = sp_config_new();
    if (!cfg)
        return 0;

    must(sp_config_declare(cfg, fuzz_keys, SP_ARRAY_SIZE(fuzz_keys),
                           &err) == SP_OK);
    must(sp_config_declare(cfg, fuzz_keys2, SP_ARRAY_SIZE(fuzz_keys2),
                           &err) == SP_OK);
    sp_error_clear(&err);
    if (sp_config_load_string(cfg, "fuzz.yaml", text, size, &err) != SP_OK)
        must(err.code != SP_OK && err.msg[0] != '\0');
    apply_sets(cfg, text, size);

    enum sp_err rc1, rc2;
    size_t nerrs1, nerrs2, len1 = 0, len2 = 0;
    char *dump1 = validate_dump(cfg, &rc1, &nerrs1, &len1);
    if (rc1 == SP_OK) {
        check_getters(cfg, fuzz_keys, SP_ARRAY_SIZE(fuzz_keys));
        check_getters(cfg, fuzz_keys2, SP_ARRAY_SIZE(fuzz_keys2));
    }
    char *dump2 = validate_dump(cfg, &rc2, &nerrs2, &len2);
    must(rc1 == rc2 && nerrs1 == nerrs2);
    if (dump1 && dump2)
        must(len1 == len2 && memcmp(dump1, dump2, len1) == 0);
    free(dump1);
    free(dump2);
    sp_config_free(cfg);
    return 0;
}
