/*
 * normalize_int.h - private to the normalizers (stages/normalize*.c):
 * the per-record context, and the helpers every format uses so that
 * strings, times, severities, tactics, techniques and entity merging
 * follow one set of rules.
 *
 * Error handling is sticky: helpers record the first problem with a
 * record (a reject reason and a detail) or an exhausted arena in the
 * context and carry on; the format normalizer checks once at the end.
 * That keeps the field mapping readable: one line per field.
 *
 * Values stored in an alert point into the message arena (decoded JSON
 * strings live there already), so the helpers do not copy them.
 *
 * Same threading as normalize.h: one message, one thread.
 */
#ifndef SP_NORMALIZE_INT_H
#define SP_NORMALIZE_INT_H

#include <string.h>

#include "normalize.h"

struct sp_nz {
    struct sp_arena *a;
    const struct sp_normalize_opts *o;
    struct sp_alert *alert;         /* the record being built */
    const char *reason;             /* first problem (SP_REJECT_*) */
    const char *detail;
    bool nomem;
};

/* True when member m's name is the literal k (exact case). */
#define SP_NZ_KEY(m, k)                                                     \
    ((m)->key_len == sizeof(k) - 1 && memcmp((m)->key, (k), sizeof(k) - 1) == 0)
/* Same, ignoring ASCII case (Log Analytics column names). */
#define SP_NZ_IKEY(m, k)                                                    \
    ((m)->key_len == sizeof(k) - 1 &&                                       \
     sp_strncaseeq((m)->key, (k), sizeof(k) - 1))

/* For tests only: string comparisons made by Sentinel "$id" lookups on
 * this thread (normalize_sentinel.c); never reset by the code. */
extern _Thread_local unsigned long sp_nz_ref_probes;
/* For tests only: Log Analytics column name lookups on this thread
 * (normalize.c). */
extern _Thread_local unsigned long sp_nz_col_lookups;

/* ---- record state -------------------------------------------------------- */

/* Starts a new alert for `source` (static string). */
struct sp_alert *sp_nz_begin(struct sp_nz *z, const char *source);
/* Records a reject reason (the first one wins); returns SP_ERR_INVALID. */
enum sp_err sp_nz_fail(struct sp_nz *z, const char *reason, const char *fmt,
                       ...) SP_PRINTF(3, 4);
/* "<what> must be <expected>" as a wrong_type reject. */
void sp_nz_wrong(struct sp_nz *z, const char *what, const char *expected);
/* The end of every format normalizer: SP_ERR_NOMEM, SP_ERR_INVALID (a
 * reject reason is set) or SP_OK; also sets alert->id from the source
 * and provider_alert_id (missing_id when there is none). */
enum sp_err sp_nz_finish(struct sp_nz *z);

/* ---- scalars ------------------------------------------------------------- */

/* A string field: NULL when absent, null or empty; wrong_type (naming
 * `what`) for any other JSON type.  Cut to max_string. */
const char *sp_nz_str(struct sp_nz *z, const struct sp_json *v,
                      const char *what);
/* Lenient: strings, numbers and booleans as text; NULL for anything else
 * (and for "", "None", "null" which Python exports write for missing). */
const char *sp_nz_text(struct sp_nz *z, const struct sp_json *v);
/* A timestamp field: SP_TIME_NONE when absent, null or unparseable;
 * wrong_type for non-strings. */
int64_t sp_nz_time(struct sp_nz *z, const struct sp_json *v, const char *what);
/* Lenient timestamp (entity details): SP_TIME_NONE unless a parseable
 * string. */
int64_t sp_nz_time_lax(const struct sp_json *v);
/* Cuts s (n bytes) to max_string at a character boundary (copy only when
 * cut). */
const char *sp_nz_cut(struct sp_nz *z, const char *s, size_t n);
/* Parses a JSON document held in a string field (Sentinel's Entities,
 * ExtendedProperties...).  NULL for "" / absent; on a parse failure NULL
 * and, when `what` is not NULL, a wrong_type reject. */
struct sp_json *sp_nz_parse_inner(struct sp_nz *z, const struct sp_json *v,
                                  const char *what);

/* ---- alert fields -------------------------------------------------------- */

void sp_nz_tenant(struct sp_nz *z, const char *tenant);
void sp_nz_severity(struct sp_nz *z, const char *s);
/* new | in_progress | resolved | unknown (static). */
const char *sp_nz_status(const char *s);
/* Adds the tactic(s) in a list like "InitialAccess, Persistence" or
 * "[\"Execution\"]" as ATT&CK short names ("initial-access"). */
void sp_nz_tactics(struct sp_nz *z, const char *list);
/* Adds `category` as a tactic when it names one. */
void sp_nz_category_tactic(struct sp_nz *z, const char *category);
/* Adds every ATT&CK technique id found in the text ("T1078",
 * "Valid Accounts (T1078)", "[\"T1059.001\"]"). */
void sp_nz_techniques(struct sp_nz *z, const char *text);
void sp_nz_link(struct sp_nz *z, const char *name, const char *url);

/* ---- entities ------------------------------------------------------------ */

/* A fresh entity to fill (on the stack), then sp_nz_commit(). */
void sp_nz_ent(struct sp_entity *e, const char *type);
/* Adds an identifier (name static or arena; value in the arena or
 * static, not copied); skips NULL/empty values and duplicates; drops
 * identifiers past max_ids_per_entity. */
void sp_nz_id(struct sp_nz *z, struct sp_entity *e, const char *name,
              const char *value);
/* Same with a JSON scalar (sp_nz_text). */
void sp_nz_idj(struct sp_nz *z, struct sp_entity *e, const char *name,
               const struct sp_json *v);
/* Adds a role given in the source's spelling ("commandAndControl" ->
 * "command-and-control"; "unknown" dropped). */
void sp_nz_role(struct sp_nz *z, struct sp_entity *e, const char *role);
/* Adds the entity to the alert, merging it into an entity of the same
 * type and key.  Returns its index in alert->entities, or -1 (no
 * identifiers, too many entities, or no memory). */
int sp_nz_commit(struct sp_nz *z, struct sp_entity *e);
/* Key of entity idx, or NULL (idx < 0 allowed). */
const char *sp_nz_key(struct sp_nz *z, int idx);

/* camelCase / "Two Words" / snake_case -> "two-words" (sep '-') or
 * "two_words" (sep '_'); NULL when nothing is left. */
const char *sp_nz_case(struct sp_nz *z, const char *s, char sep);
/* "dir" + "name" with the path's own separator. */
const char *sp_nz_path(struct sp_nz *z, const char *dir, const char *name);
/* Canonical pid text: decimal, hex "0x1f" folded to decimal. */
const char *sp_nz_pid(struct sp_nz *z, const char *pid);
/* RFC 3339 text of a time for identifiers and keys. */
const char *sp_nz_time_text(struct sp_nz *z, int64_t us);
/* Keys built from parts. */
const char *sp_nz_key_file(struct sp_nz *z, const char *sha256,
                           const char *sha1, const char *md5,
                           const char *path);
const char *sp_nz_key_process(struct sp_nz *z, const char *host_key,
                              const char *device_id, const char *pid,
                              int64_t created);
/* "registry:<hive\key>[\<value>]" (hive abbreviations expanded); also
 * returns the full key path through *path when not NULL. */
const char *sp_nz_key_registry(struct sp_nz *z, const char *hive,
                               const char *key, const char *value_name,
                               bool is_value, const char **path);
/* prefix + s (NULL when s is NULL). */
const char *sp_nz_concat(struct sp_nz *z, const char *prefix, const char *s);
/* s lower-cased (a copy only when it has upper-case letters). */
const char *sp_nz_lower(struct sp_nz *z, const char *s);
/* "<prefix><lower s>" or NULL. */
const char *sp_nz_key_lower(struct sp_nz *z, const char *prefix,
                            const char *s);
/* "domain:<lower name>" without the trailing dot, or NULL. */
const char *sp_nz_key_domain(struct sp_nz *z, const char *name);
/* File entity from parts; returns its index or -1. */
int sp_nz_file(struct sp_nz *z, const char *name, const char *dir,
               const char *sha256, const char *sha1, const char *md5,
               const char *size, const char *host_key);
/* IP entity (address canonicalised); returns its index or -1. */
int sp_nz_ip(struct sp_nz *z, const char *addr, const char *role);
/* An entity type in the source's spelling as ours: kebab-case, with
 * aliases ("machine" -> host, "user" -> account, "dns" -> domain...).
 * Returns a static or arena string (never t itself). */
const char *sp_nz_entity_type(struct sp_nz *z, const char *type);
/* The key the format normalizers would give an entity of this type with
 * these identifiers (generic input, and types without a mapping); NULL
 * when the type has no key rule or the identifiers do not name it. */
const char *sp_nz_derive_key(struct sp_nz *z, const struct sp_entity *e);
/* Any scalar members of obj as identifiers (snake_case names), for
 * entity types without a dedicated mapping.  `skip` members are left. */
void sp_nz_generic_ids(struct sp_nz *z, struct sp_entity *e,
                       const struct sp_json *obj,
                       const char *const *skip, size_t n_skip);

/* ---- format normalizers: fill z->alert from one record ---------------- */

enum sp_err sp_nz_graph(struct sp_nz *z, const struct sp_json *rec);
enum sp_err sp_nz_sentinel(struct sp_nz *z, const struct sp_json *rec);
enum sp_err sp_nz_defender(struct sp_nz *z, const struct sp_json *rec);
enum sp_err sp_nz_generic(struct sp_nz *z, const struct sp_json *rec);

#endif /* SP_NORMALIZE_INT_H */
