/*
 * config.h - typed, documented configuration from YAML files and "-s"
 * overrides.
 *
 * Each component (engine, kafka, stages, plugins) declares its keys in a
 * static table of struct sp_cfg_key; the loader reads YAML (libyaml,
 * keeping the line of every scalar), sp_config_validate() checks every
 * value against the tables and resolves ${ENV}, ${ENV:-default} and
 * ${file:PATH}, and typed getters hand the result out.  The same tables
 * produce the documented example config and the effective-settings dump.
 *
 * Owns: the loaded documents, the overrides and the resolved values.
 * Threads: declare/load/set/validate/dump run on one thread at start-up
 * (validate reads the environment).  After a successful validate, with
 * no further load/set/declare/validate, the getters only read and may be
 * called from any thread.
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sp.h"

/* Bounds on what the loader accepts. */
#define SP_CFG_MAX_FILE      ((size_t)1 << 20)   /* bytes per document */
#define SP_CFG_MAX_DEPTH     16                  /* nested mappings/lists */
#define SP_CFG_MAX_SCALARS   10000               /* scalars per document */
#define SP_CFG_MAX_PATH      1024                /* dotted key path, bytes */
#define SP_CFG_MAX_KEYS      4096                /* declared keys */
#define SP_CFG_MAX_SUBST_FILE ((size_t)64 << 10) /* ${file:PATH} content */
#define SP_CFG_MAX_VALUE     ((size_t)1 << 20)   /* a value after ${...} */
#define SP_CFG_MAX_ERRORS    64                  /* messages kept by validate */

enum sp_cfg_type {
    SP_CFG_STR,
    SP_CFG_INT,
    SP_CFG_BOOL,
    SP_CFG_DURATION, /* value in ms; accepts 250ms, 30s, 5m, 24h, 7d, or a
                        bare integer = ms */
    SP_CFG_SIZE,     /* value in bytes; accepts 512, 64KiB, 1MiB, 1GiB,
                        10KB/MB (1000-based) */
    SP_CFG_ENUM,     /* one of enum_values "a|b|c" */
    SP_CFG_LIST,     /* YAML sequence of scalars, or a comma-separated
                        string */
    SP_CFG_MAP,      /* free-form mapping below this key; nested mappings
                        flatten with dots: kafka.consumer.sasl.mechanism
                        -> entry "sasl.mechanism" of map "kafka.consumer" */
};

#define SP_CFG_SECRET 0x1 /* value masked ("****") in dumps, never logged */

struct sp_cfg_key {
    const char *name;        /* full dotted path, e.g. "kafka.batch.size" */
    enum sp_cfg_type type;
    const char *def;         /* default as text (NULL = no default) */
    int64_t min, max;        /* INT/DURATION/SIZE bounds (ms, bytes); both
                                0 = unbounded; max < min = only min.
                                STR: max > 0 = longest value in bytes */
    const char *desc;        /* one-line documentation */
    unsigned flags;          /* SP_CFG_SECRET ... */
    const char *enum_values; /* for ENUM: "a|b|c" */
};

struct sp_config;

/* Returns a new, empty configuration (free with sp_config_free), or NULL
 * when out of memory. */
struct sp_config *sp_config_new(void);
void sp_config_free(struct sp_config *cfg);

/*
 * Declares keys.  The table is borrowed and must outlive cfg.  The whole
 * table is checked first (names, types, defaults parse and lie within
 * their range, ENUM has values, MAP has no default) and is added only if
 * every key is good.  Declaring a name twice, or a name below another
 * key ("a.b" and "a.b.c"), is an error.
 */
enum sp_err sp_config_declare(struct sp_config *cfg,
                              const struct sp_cfg_key *keys, size_t n,
                              struct sp_error *err);

/*
 * Loads one YAML document (the file, or `len` bytes of `yaml` reported as
 * `name`).  May be called before or after declare and more than once: a
 * later document wins over an earlier one key by key, and map entries
 * merge.  Nested mappings and dotted keys are the same thing
 * ("kafka: {batch: {size: 1}}" == "kafka.batch.size: 1").  A plain null
 * ("key:", "~", "null") leaves the key at its default.  Rejected with the
 * line named: syntax errors, duplicate keys, anchors and aliases, more
 * than one document, a top level that is not a mapping, and documents
 * past the SP_CFG_MAX_* bounds.  On error nothing of the document is kept.
 */
enum sp_err sp_config_load_file(struct sp_config *cfg, const char *path,
                                struct sp_error *err);
enum sp_err sp_config_load_string(struct sp_config *cfg, const char *name,
                                  const char *yaml, size_t len,
                                  struct sp_error *err);

/*
 * A "-s key=value" override.  Overrides win over every loaded document,
 * whatever the order of calls; among themselves the later wins.  The value
 * is taken as a YAML scalar: surrounding blanks are trimmed, then one pair
 * of surrounding quotes is removed; a bare "~" or "null" means "back to
 * the default"; "key=" is the empty string; lists are comma separated.
 * Map entries work too: -s kafka.consumer.fetch.max.bytes=1048576.
 */
enum sp_err sp_config_set(struct sp_config *cfg, const char *assignment,
                          struct sp_error *err);

/*
 * Checks everything loaded against the declared keys: unknown keys (with
 * the closest declared key suggested), types, ranges, enum values, and
 * resolves ${ENV}, ${ENV:-default} (default when unset or empty) and
 * ${file:PATH} (content up to 64 KiB, one trailing newline stripped;
 * PATH relative to the working directory) in loaded values; "$${" writes
 * a literal "${".  Substituted text is never expanded again; defaults from
 * the tables are taken literally.  Messages read
 * "config/socpilot.yaml:12: kafka.batch.size: must be between 1 and 100000
 * (got 0)"; values of secrets are never shown.  err gets the first
 * problem (and how many more there are); sp_config_errors() lists them
 * all.  May be called again after more loads or overrides.
 */
enum sp_err sp_config_validate(struct sp_config *cfg, struct sp_error *err);

/* Every message of the last validate, in document order (at most
 * SP_CFG_MAX_ERRORS; borrowed, valid until the next validate). */
size_t sp_config_errors(const struct sp_config *cfg,
                        const char *const **msgs);

/*
 * Getters: only after a successful validate, and only for declared keys
 * (anything else is a programming error and asserts).  Defaults apply.
 * Returned strings and arrays are borrowed and live as long as cfg.
 */
/* The text of any scalar type (ENUM in its declared spelling, LIST joined
 * with ","); NULL when unset without default, and for MAP keys. */
const char *sp_config_str(const struct sp_config *cfg, const char *key);
/* INT, DURATION (ms) and SIZE (bytes); 0 when unset without default. */
int64_t sp_config_int(const struct sp_config *cfg, const char *key);
/* BOOL: true/false/yes/no/on/off/1/0 (any case); false when unset. */
bool sp_config_bool(const struct sp_config *cfg, const char *key);
/* LIST: sets *items to a NULL-terminated array and returns its length. */
size_t sp_config_list(const struct sp_config *cfg, const char *key,
                      const char *const **items);
/* MAP: calls cb for each entry in file order (later documents and -s
 * replace an entry's value in place, new entries go last).  Returns the
 * first non-zero value cb returned, else 0. */
typedef int (*sp_config_map_cb)(const char *name, const char *value,
                                void *ud);
int sp_config_map_each(const struct sp_config *cfg, const char *key,
                       sp_config_map_cb cb, void *ud);
/* True when a document or -s set the key (a MAP: any of its entries). */
bool sp_config_is_set(const struct sp_config *cfg, const char *key);
/* "file:line" (and *line set), "-s", or "default" (*line = 0).  For a
 * MAP, where its first entry came from.  Borrowed. */
const char *sp_config_origin(const struct sp_config *cfg, const char *key,
                             int *line);

/* True when a map entry of this name holds a secret: its name contains
 * password, secret, token, key or credential (any case), or it is
 * sasl.oauthbearer.config (sensitive to librdkafka too). */
bool sp_config_secret_name(const char *name);

/* Calls cb(name, value) for every non-empty secret value in effect
 * (SP_CFG_SECRET keys and secret-named map entries), so that the caller
 * can register them with the logger's masking.  Returns like map_each. */
int sp_config_each_secret(const struct sp_config *cfg, sp_config_map_cb cb,
                          void *ud);

/* Prints the effective settings after a successful validate: every
 * declared key (declaration order) with its value and origin, and every
 * map entry; secrets as "****".  The output is YAML with flat dotted keys. */
void sp_config_dump(const struct sp_config *cfg, FILE *out);

/* Writes a documented example config from the declared tables only (no
 * loaded value, so no secret, can leak into it): nested YAML grouped by
 * section, each key with its description and type as comments and its
 * default commented out.  The output loads and validates as it is. */
void sp_config_write_example(const struct sp_config *cfg, FILE *out);

/* Writes the same documentation as a Markdown table (for CONFIG docs). */
void sp_config_write_markdown(const struct sp_config *cfg, FILE *out);

#endif /* SP_CONFIG_H */
