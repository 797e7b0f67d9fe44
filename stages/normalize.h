/*
 * normalize.h - decoding alert documents into normalized alerts
 * (pipeline/alert.h), and the reasons a record is refused.
 *
 * Input formats: Microsoft Graph security alert v2 (one object, a list
 * page {"value":[...]}, or incidents with expanded alerts), Microsoft
 * Sentinel SecurityAlert rows (flat, Event Hubs {"records":[...]}
 * envelopes, or a Log Analytics query response {"tables":[...]}),
 * Defender XDR streaming API AlertInfo/AlertEvidence records, and the
 * documented generic format (docs/alert-format.md).  A top-level JSON
 * array is a batch of records, like an envelope.
 *
 * Owns no state: sp_normalize() works inside the message's arena.  Any
 * thread may call it on a message it owns.
 */
#ifndef SP_NORMALIZE_H
#define SP_NORMALIZE_H

#include "alert.h"
#include "json.h"
#include "sp.h"
#include "stage.h"

enum sp_format {
    SP_FMT_AUTO,
    SP_FMT_GRAPH,
    SP_FMT_SENTINEL,
    SP_FMT_DEFENDER_STREAMING,
    SP_FMT_GENERIC,
};

/* "auto" | "graph" | "sentinel" | "defender-streaming" | "generic";
 * SP_ERR_INVALID (and *out untouched) for anything else. */
enum sp_err sp_format_parse(const char *s, enum sp_format *out);
/* Static name of a format (the spelling sp_format_parse accepts). */
const char *sp_format_name(enum sp_format f);

/*
 * Reject reasons: stable tokens, used as the DLQ "reason" header and as
 * a metric label.  Documented in docs/alert-format.md.
 */
#define SP_REJECT_NOT_JSON          "not_json"
#define SP_REJECT_TRUNCATED         "truncated"
#define SP_REJECT_INVALID_UTF8      "invalid_utf8"
#define SP_REJECT_TOO_LARGE         "too_large"
#define SP_REJECT_TOO_DEEP          "too_deep"
#define SP_REJECT_TOO_MANY_NODES    "too_many_nodes"
#define SP_REJECT_EMPTY             "empty"
#define SP_REJECT_WRONG_TYPE        "wrong_type"
#define SP_REJECT_MISSING_ID        "missing_id"
#define SP_REJECT_TOO_MANY_ENTITIES "too_many_entities"
#define SP_REJECT_UNKNOWN_FORMAT    "unknown_format"
#define SP_REJECT_BAD_TENANT        "bad_tenant"
/* Longest tenant accepted (bytes, after blanks around it are dropped). */
#define SP_TENANT_MAX 128

/* Every reason above, as a static array of n static strings. */
const char *const *sp_normalize_reasons(size_t *n);

struct sp_normalize_opts {
    enum sp_format format;          /* pinned, or AUTO = detect per record */
    const char *default_tenant;     /* when the document has none
                                       (default "default"); borrowed */
    struct sp_alert_limits lim;     /* max_entities (500),
                                       max_ids_per_entity (32),
                                       max_string (64 KiB) */
    struct sp_json_limits jlim;     /* max_bytes (1 MiB), max_depth (64),
                                       max_nodes (200000) */
    bool keep_raw;                  /* keep the original record (true) */
};

void sp_normalize_opts_default(struct sp_normalize_opts *o);

/*
 * Decodes msg->payload into msg->alerts (allocated in msg->arena) and
 * msg->rejects.  Never fails on bad input: bad input becomes a reject
 * with a reason token and a detail sentence (stage_name is recorded in
 * it; borrowed, must outlive the message).  In an envelope each bad
 * record is its own reject (bytes = that record's text) and good records
 * still become alerts; an envelope that is itself broken rejects the
 * whole payload.  Every message ends with at least one alert or reject.
 *
 * Limits: identifiers past max_ids_per_entity are dropped, strings past
 * max_string are cut at a character boundary (the raw document keeps
 * them whole); more than max_entities distinct entities in one alert
 * rejects that alert.
 *
 * Returns SP_ERR_NOMEM only when the arena is exhausted (what was
 * decoded so far stays in msg), else SP_OK.
 */
enum sp_err sp_normalize(struct sp_msg *msg,
                         const struct sp_normalize_opts *opts,
                         const char *stage_name);

/* The decode stage (stages/decode.c): sp_normalize() over every message
 * of a batch, configured by the decode.* keys. */
extern const struct sp_stage_type sp_stage_decode;

/* `socpilot normalize`: see its --help.  Returns the process exit code. */
int sp_cmd_normalize(int argc, char **argv);

#endif /* SP_NORMALIZE_H */
