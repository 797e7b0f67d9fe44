/*
 * alert.h - the normalized alert: what every stage after decode sees, and
 * its one JSON serialisation (schema/alert.schema.json, version
 * SP_ALERT_SCHEMA_VERSION).
 *
 * An alert and everything it points to live in one arena (the message's),
 * so building one is a handful of bump allocations and freeing it is free.
 * Strings are NUL-terminated valid UTF-8.  Times are microseconds since
 * the epoch, SP_TIME_NONE when unknown.
 *
 * Entities carry a canonical `key` ("host:ws-042.contoso.com",
 * "ip:10.1.2.3", "file:sha256:ab12...") that correlation relies on: the
 * normalizers are the one place that canonicalises identifiers.
 *
 * Later stages extend an alert with `sections`: named, already-serialised
 * JSON values (e.g. "scripts") written after the core fields.  This keeps
 * the model open for the roadmap without the core knowing each section.
 */
#ifndef SP_ALERT_H
#define SP_ALERT_H

#include "json.h"
#include "sp.h"

#define SP_ALERT_SCHEMA_VERSION "1"

enum sp_severity {
    SP_SEV_UNKNOWN = 0,     /* serialised as "informational" with
                               severity_original kept */
    SP_SEV_INFORMATIONAL,
    SP_SEV_LOW,
    SP_SEV_MEDIUM,
    SP_SEV_HIGH,
};

const char *sp_severity_name(enum sp_severity s);
/* Maps source spellings (High/high/3/Sev2/"critical"...) onto the scale. */
enum sp_severity sp_severity_parse(const char *s);

/* An identifier of an entity: a name ("fqdn", "upn", "sha256", ...) and a
 * string value.  Names are static strings. */
struct sp_ident {
    const char *name;
    const char *value;
};

struct sp_entity {
    const char *type;        /* host, account, ip, url, domain, file,
                                process, mailbox, message, cloud-app,
                                registry, registry-value, ... (static, or
                                arena for types kept generically) */
    const char *key;         /* canonical identity, or NULL if none */
    struct sp_ident *ids;
    uint16_t n_ids, cap_ids;
    const char *roles[8];    /* static or arena strings */
    uint8_t n_roles;
    const char *ref;         /* source-local id ($id); not serialised */
};

struct sp_link {
    const char *name;        /* "alert", "incident", ... */
    const char *url;
};

/* Named extension section: `json` is a complete JSON value. */
struct sp_section {
    const char *name;
    const char *json;
    size_t len;
    struct sp_section *next;
};

/* Defender streaming rows arrive as separate AlertInfo / AlertEvidence
 * records that correlation assembles per AlertId. */
enum sp_alert_part {
    SP_PART_WHOLE = 0,
    SP_PART_INFO,            /* AdvancedHunting-AlertInfo */
    SP_PART_EVIDENCE,        /* AdvancedHunting-AlertEvidence */
};

struct sp_alert {
    const char *id;                   /* "<source>:<provider id>" */
    const char *tenant;
    const char *source;               /* graph | sentinel | defender-streaming | generic */
    const char *provider;             /* product, e.g. "microsoftDefenderForEndpoint" */
    const char *provider_alert_id;
    const char *provider_incident_id;
    const char *title;
    const char *description;
    enum sp_severity severity;
    const char *severity_original;
    const char *status;               /* new | in_progress | resolved | unknown */
    const char *category;
    const char *detector;
    const char **tactics;
    size_t n_tactics;
    const char **techniques;
    size_t n_techniques;
    int64_t first_activity, last_activity, created, updated;
    struct sp_link *links;
    size_t n_links;
    struct sp_entity *entities;
    size_t n_entities, cap_entities;
    enum sp_alert_part part;
    /* The original document (valid JSON text).  raw_is_string: the
     * original was a JSON string holding the document (not used yet). */
    const char *raw;
    size_t raw_len;
    struct sp_section *sections;      /* added by later stages, in order */
    /* Filled by correlation.  incident_changed: this alert changed its
     * incident (new, joined, updated), not a duplicate or stale replay. */
    const char *incident_id;
    int64_t incident_version;
    bool incident_changed;
};

/* Limits the normalizers enforce (from config, see decode stage). */
struct sp_alert_limits {
    uint32_t max_entities;            /* default 500 */
    uint32_t max_ids_per_entity;      /* default 32 */
    uint32_t max_string;              /* bytes per string field, default 64 KiB */
};

/* Builders: all memory from the arena; return NULL / SP_ERR_NOMEM when
 * the arena is exhausted, SP_ERR_LIMIT past max_entities. */
struct sp_alert *sp_alert_new(struct sp_arena *a);
struct sp_entity *sp_alert_add_entity(struct sp_arena *a,
                                      struct sp_alert *alert,
                                      const char *type, uint32_t max_entities);
/* Adds an identifier (value copied into the arena).  Empty or NULL
 * values are skipped (SP_OK). */
enum sp_err sp_entity_add_id(struct sp_arena *a, struct sp_entity *ent,
                             const char *name, const char *value);
const char *sp_entity_id(const struct sp_entity *ent, const char *name);
void sp_entity_add_role(struct sp_entity *ent, const char *role);
enum sp_err sp_alert_add_section(struct sp_arena *a, struct sp_alert *alert,
                                 const char *name, const char *json,
                                 size_t len);
/* The section called name (NULL when absent). */
const struct sp_section *sp_alert_find_section(const struct sp_alert *alert,
                                               const char *name);
/* Finds an entity with the same key (NULL if key is NULL or absent). */
struct sp_entity *sp_alert_find_entity(const struct sp_alert *alert,
                                       const char *key);

/*
 * Writes the alert as one JSON object (the socpilot.alerts value).
 * include_raw: embed the original document under "raw".
 */
void sp_alert_write(const struct sp_alert *alert, struct sp_jw *w,
                    bool include_raw);

/* ---- canonical identifiers (shared by all normalizers) ------------------ */

/* Lower-cases ASCII in place (returns s). */
char *sp_lower(char *s);
/* Canonical keys; return an arena string or NULL when the input has no
 * usable identity.  Hosts: lower-case FQDN (or name + "." + domain);
 * accounts: lower-case UPN, else domain\name, else SID, else object id;
 * ips: parsed and re-printed (v4 dotted, v6 RFC 5952) or NULL if not an
 * address; hashes: lower-case hex with the algorithm; urls: scheme and
 * host lower-cased. */
const char *sp_key_host(struct sp_arena *a, const char *hostname,
                        const char *domain, const char *fqdn);
const char *sp_key_account(struct sp_arena *a, const char *upn,
                           const char *domain, const char *name,
                           const char *sid, const char *object_id);
const char *sp_canon_ip(struct sp_arena *a, const char *ip);
const char *sp_canon_hash(struct sp_arena *a, const char *hex);
const char *sp_canon_url(struct sp_arena *a, const char *url);

#endif /* SP_ALERT_H */
