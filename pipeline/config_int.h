/*
 * config_int.h - private to the configuration module (pipeline/config*.c):
 * the data behind struct sp_config and the few helpers its files share.
 * Nothing outside pipeline/config*.c includes this; the API is config.h.
 *
 *   config.c       the core: declared keys, the store of loaded values,
 *                  validation with ${...} substitution, typed getters
 *   config_load.c  the libyaml loader (one document -> a list of leaves)
 *                  and "-s key=value" overrides
 *   config_doc.c   the effective-settings dump, the example config and
 *                  the Markdown table
 *
 * Same threading as config.h: one thread at start-up, read-only after a
 * successful validate.
 */
#ifndef SP_CONFIG_INT_H
#define SP_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- small hash table of (string, length) -> payload ------------------ */

enum cfg_hkind { H_KEY = 1, H_SECTION, H_ENTRY, H_SEEN };

struct cfg_hent {
    const char *s;      /* borrowed; must outlive the table */
    size_t len;
    uint64_t h;
    int kind;
    int line;
    size_t idx;         /* H_KEY: slot index; H_SECTION: first key below */
    void *ptr;          /* H_ENTRY: struct cfg_ent */
};

struct cfg_hash {
    struct cfg_hent *tab;
    size_t cap;         /* 0 or a power of two */
    size_t n;
};

/* ---- the data ---------------------------------------------------------- */

enum cfg_lkind { L_NULL, L_SCALAR, L_LIST, L_EMPTYMAP };

/* One loaded value: a scalar, a list of scalars, an empty mapping, or a
 * null, at a flattened dotted path. */
struct cfg_leaf {
    const char *path;
    size_t plen;
    enum cfg_lkind kind;
    const char *text;           /* L_SCALAR */
    const char **items;         /* L_LIST, NULL-terminated */
    size_t nitems;
    struct cfg_doc *doc;        /* NULL for -s */
    int line;                   /* 0 for -s */
    struct cfg_leaf *next;
};

struct cfg_doc {
    struct sp_arena arena;
    const char *name;
    struct cfg_hash paths;      /* every key path of the document -> line */
    struct cfg_leaf *head, *tail;
    struct cfg_doc *next;
};

/* An entry of a MAP key. */
struct cfg_ent {
    const char *name;           /* below the map: "sasl.mechanism" */
    const char *raw;            /* as loaded */
    const char *value;          /* after substitution */
    const struct cfg_leaf *leaf;
    struct cfg_ent *next;
};

struct cfg_slot {
    const struct sp_cfg_key *key;
    /* Everything below is rebuilt by each validate. */
    bool set;
    const struct cfg_leaf *leaf;    /* what set it (MAP: its first entry) */
    const char *origin;
    int line;
    const char *str;
    int64_t num;
    bool b;
    const char *const *items;
    size_t nitems;
    struct cfg_ent *ents, *ents_tail;
    size_t nents;
};

struct sp_config {
    struct sp_arena arena;
    struct cfg_slot *slots;
    size_t nslots;
    struct cfg_hash names;          /* declared keys and their sections */
    struct cfg_doc *docs, *docs_tail;
    struct cfg_leaf *sets, *sets_tail;
    bool validated;
    bool oom;                       /* an allocation failed in validate */
    const char *errs[SP_CFG_MAX_ERRORS];
    uint64_t err_order[SP_CFG_MAX_ERRORS];  /* (document, line) */
    size_t nerrs, nerrs_total;
};

/* ---- helpers shared by the config files (defined in config.c) ---------- */

/* The entry for (s, len), or NULL. */
struct cfg_hent *sp_cfg_hash_find(const struct cfg_hash *hash, const char *s,
                                  size_t len);
/* Adds (s, len) if absent; s is borrowed and must outlive the table.
 * Returns the entry (new or existing; *fresh says which), or NULL when out
 * of memory. */
struct cfg_hent *sp_cfg_hash_put(struct cfg_hash *hash, const char *s,
                                 size_t len, bool *fresh);
void sp_cfg_hash_fini(struct cfg_hash *hash);

/* Trims blanks and tabs from both ends of s[0..*n). */
void sp_cfg_trim(const char **s, size_t *n);
/* A YAML plain null: "", "~", "null", "Null", "NULL". */
bool sp_cfg_is_null_word(const char *s, size_t n);
/* Formats a bound in the key's unit: 30000 ms -> "30s", 1048576 -> "1MiB".
 * Returns buf. */
const char *sp_cfg_fmt_num(char *buf, size_t size, enum sp_cfg_type type,
                           int64_t v);
/* The name of the document a leaf came from, or "-s".  Borrowed. */
const char *sp_cfg_leaf_origin(const struct cfg_leaf *leaf);
/* Frees a loaded document and everything in its arena; NULL is a no-op. */
void sp_cfg_doc_free(struct cfg_doc *doc);

#endif /* SP_CONFIG_INT_H */
