/*
 * analysis.h - incident summaries and impact analysis: everything about
 * an analysis that is not I/O.  Given an incident snapshot (the JSON of
 * DESIGN.md "The incident"), it builds the prompt context, plans the LLM
 * calls (one, or partial summaries merged for big incidents), checks what
 * comes back, and writes the incident's `analysis` section; with no LLM it
 * writes the same section from a deterministic template.
 *
 * The connector (connectors/llm.h) sends; the job runner (Redis leases,
 * debounce) decides when; this module decides what.  Pure functions and a
 * step machine (struct sp_analysis_job): no Redis, no threads, no network.
 * Every function may be called from any thread; an object is used by one
 * thread at a time.
 *
 * Safety, in the order text flows: alert-derived strings are redacted
 * (secrets, optionally e-mails), anonymized (hosts, users, e-mails, IPs ->
 * HOST_1, USER_2, ... stable within one analysis), fenced as untrusted data
 * (<untrusted-data id=...>, look-alike tags in the data neutralised) and
 * bounded; answers are validated against schema/analysis.schema.json,
 * de-anonymized, checked for grounding (named hosts, users, IPs, URLs,
 * hashes, domains must exist in the incident) and for conclusions that
 * look dictated by injected text.  The impact score is always the
 * deterministic one; the model explains it and cannot change it.
 *
 * The analysis section written by sp_analysis_job_result() and
 * sp_analysis_template():
 *   { "schema_version": "1", "generated_by": "llm" | "template",
 *     "model": str|null, "created": RFC 3339, "content_hash": hex,
 *     "assessment": "malicious"|"suspicious"|"benign"|"undetermined",
 *     "summary": { headline, narrative, start {time, where, how},
 *                  first_entity, affected_assets[], affected_identities[],
 *                  indicators[{type, value}], attack {tactics[],
 *                  techniques[]}, next_steps[], scripts[{id, explanation}] },
 *     "timeline": [{time, event}],
 *     "impact": { score 0-100, level, factors[{name, points, detail}],
 *                 explanation, affected_systems, identities, data_at_risk,
 *                 business_impact, model_level (only when the model's
 *                 level differed) },
 *     "tokens": {prompt, completion, total}, "calls": n,
 *     "grounding": {checked, ungrounded[{value, type, field}]},
 *     "flags": [str], "context": {alerts, alerts_included, entities,
 *     entities_included, scripts, batches, redactions, anonymized},
 *     "fallback_reason": str (template only, when the LLM was meant) }
 */
#ifndef SP_ANALYSIS_H
#define SP_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "json.h"
#include "llm.h"
#include "sp.h"

#define SP_ANALYSIS_SCHEMA_VERSION "1"

/* The analysis.* configuration keys. */
extern const struct sp_cfg_key sp_analysis_keys[];
extern const size_t sp_analysis_n_keys;

/* When incidents are analysed (the job runner's decision; also the input
 * of sp_analysis_estimate). */
enum sp_analysis_policy {
    SP_ANALYSIS_EVERY,          /* every new or changed incident */
    SP_ANALYSIS_MIN_SEVERITY,   /* at or above analysis.min_severity */
    SP_ANALYSIS_ON_DEMAND,      /* only `socpilot analyze ID` */
};

/* Redaction classes (analysis.redact). */
#define SP_REDACT_SECRETS 0x1   /* passwords, tokens, keys, connection strings */
#define SP_REDACT_EMAILS  0x2

/* Anonymized field types (analysis.anonymize). */
#define SP_ANON_HOST  0x1
#define SP_ANON_USER  0x2
#define SP_ANON_EMAIL 0x4
#define SP_ANON_IP    0x8

struct sp_analysis_opts {
    enum sp_analysis_policy policy;
    int min_severity;            /* enum sp_severity */
    size_t context_tokens;       /* budget of one prompt's context */
    unsigned max_batches;        /* partial summaries of a big incident */
    int output_tokens;           /* completion cap per call */
    size_t field_max;            /* bytes of one untrusted string */
    unsigned timeline_max;       /* events in the context's timeline */
    unsigned max_alerts;         /* alerts read from a snapshot */
    unsigned max_entities;       /* entities read from a snapshot */
    unsigned redact;             /* SP_REDACT_* */
    unsigned anonymize;          /* SP_ANON_* */
    int high_score;              /* "high" score for untrusted_conclusion */
    const char *model;           /* recorded when the answer names none */
    int64_t now_us;              /* `created`; 0 = wall clock (tests pin) */
};

void sp_analysis_opts_default(struct sp_analysis_opts *o);
/* From the validated analysis.* keys. */
enum sp_err sp_analysis_opts_from_config(const struct sp_config *cfg,
                                         struct sp_analysis_opts *o,
                                         struct sp_error *err);

/* Policy check: should this incident be analysed now?  on_demand: the
 * user asked for it (always true then). */
bool sp_analysis_wanted(const struct sp_analysis_opts *o,
                        const struct sp_json *inc, bool on_demand);

/* ---- prompts and schema ------------------------------------------------- */

/*
 * The editable templates in dir (system.txt, summary.txt, partial.txt,
 * merge.txt, repair.txt) and the answer schema.  Templates use
 * {{placeholders}}; an unknown placeholder is a load error naming the file
 * and line.  Returns a new object (sp_analysis_prompts_free) or NULL with
 * err set.
 */
struct sp_analysis_prompts;
struct sp_analysis_prompts *sp_analysis_prompts_load(const char *dir,
                                                     const char *schema_path,
                                                     struct sp_error *err);
void sp_analysis_prompts_free(struct sp_analysis_prompts *p);
/* The schema as sent in response_format (borrowed): the file minus the
 * keywords strict structured output refuses (length and count bounds,
 * annotations); the local validation uses the whole file. */
const char *sp_analysis_prompts_wire_schema(const struct sp_analysis_prompts *p);
/* The schema file's parsed root (borrowed). */
const struct sp_json *sp_analysis_prompts_schema(
    const struct sp_analysis_prompts *p);

/* ---- pure pieces -------------------------------------------------------- */

#define SP_IMPACT_MAX_FACTORS 12

struct sp_impact_factor {
    const char *name;            /* static: "severity", "hosts", ... */
    int points;
    char detail[160];
};

struct sp_impact {
    int score;                   /* 0..100 */
    const char *level;           /* static: low | medium | high | critical */
    struct sp_impact_factor factors[SP_IMPACT_MAX_FACTORS];
    size_t n_factors;
};

/* Deterministic impact score of an incident with its factors: highest
 * severity, hosts, identities, privileged/VIP identities and critical
 * assets (from enrichment), ATT&CK tactics reached (later kill-chain
 * stages weigh more), spread over time, number of alerts, script risk. */
enum sp_err sp_analysis_impact(const struct sp_json *inc,
                               const struct sp_analysis_opts *o,
                               struct sp_impact *out);
/* The level for a score: <25 low, <50 medium, <75 high, else critical. */
const char *sp_analysis_level(int score);

/* SHA-256 (hex, NUL-terminated) of the analysed content: alerts (by id),
 * entities (by key) and script analyses, canonicalised (object keys
 * sorted) and without snapshot bookkeeping (versions, update times,
 * analysis/guidance/ticket sections).  Unchanged content, same hash. */
enum sp_err sp_analysis_content_hash(const struct sp_json *inc, char out[65]);

/*
 * Redacts s[0..n) into out (appended): with SP_REDACT_SECRETS values of
 * password/token/key flags and key=value pairs, Authorization/Bearer
 * credentials, URL user:password, AWS access keys, common API token
 * formats, JWTs, private key blocks, `net user` passwords,
 * ConvertTo-SecureString plaintext; with SP_REDACT_EMAILS e-mail
 * addresses.  *count (may be NULL) gets the number of redactions.
 */
enum sp_err sp_analysis_redact(const char *s, size_t n, unsigned classes,
                               struct sp_buf *out, unsigned *count);

/* The context of one prompt, as built by sp_analysis_build_context(). */
struct sp_analysis_anon;
struct sp_analysis_context {
    struct sp_buf text;          /* fenced, redacted, anonymized */
    size_t tokens;               /* estimate: bytes / 4 */
    size_t n_alerts, n_alerts_shown;
    size_t n_entities, n_entities_shown;
    size_t n_scripts, n_scripts_shown;
    unsigned redactions;
    bool injection_suspected;    /* alert text reads like instructions */
    bool over_budget;            /* alerts were left out (see the text) */
    struct sp_analysis_anon *anon;   /* placeholder map; NULL when off */
};

/*
 * Builds the structured context of inc within o->context_tokens: keeps the
 * highest-severity and newest alerts, distinct entities (critical and
 * privileged first), decoded script layers, a timeline, and says what was
 * left out ("12 more alerts omitted: ...").  out is initialised by the
 * call; release with sp_analysis_context_fini().
 */
enum sp_err sp_analysis_build_context(const struct sp_json *inc,
                                      const struct sp_analysis_opts *o,
                                      struct sp_analysis_context *out);
void sp_analysis_context_fini(struct sp_analysis_context *ctx);

/* Restores placeholders (HOST_1...) in s[0..n) with the values they stand
 * for, appending to out.  Unknown placeholders are kept as they are. */
enum sp_err sp_analysis_anon_restore(const struct sp_analysis_anon *anon,
                                     const char *s, size_t n,
                                     struct sp_buf *out);

/* Validates v against a JSON Schema subset (type, enum, const, properties,
 * required, additionalProperties, items, minItems, maxItems, minLength,
 * maxLength, minimum, maximum; other keywords are ignored).  Messages
 * ("summary.headline: expected string") go to errs, one per line, at most
 * 20.  Returns SP_OK or SP_ERR_INVALID. */
enum sp_err sp_analysis_validate(const struct sp_json *schema,
                                 const struct sp_json *v, struct sp_buf *errs);

/* The built-in template: the analysis section from inc's data alone
 * (generated_by "template").  reason: why the LLM was not used ("disabled",
 * "budget", "llm_error: ...", "invalid_output"), or NULL.  Appends the
 * section's JSON to out. */
enum sp_err sp_analysis_template(const struct sp_json *inc,
                                 const struct sp_analysis_opts *o,
                                 const char *reason, struct sp_buf *out);

/* ---- the job: one analysis through its LLM calls ------------------------ */

/* A call the job runner sends with sp_llm_submit (messages borrowed from
 * the job, valid until it is freed). */
struct sp_analysis_call {
    unsigned id;
    const char *kind;            /* "summary", "partial", "merge", "repair" */
    const struct sp_llm_msg *msgs;
    size_t n_msgs;
    size_t est_tokens;           /* prompt estimate */
    int max_tokens;
};

/* What the model's answer cost (from sp_llm_result). */
struct sp_analysis_usage {
    const char *model;
    int64_t prompt_tokens, completion_tokens;
};

/* Counts for the runner's metrics once the job is done. */
#define SP_ANALYSIS_F_UNGROUNDED      0x01
#define SP_ANALYSIS_F_UNTRUSTED       0x02   /* untrusted_conclusion */
#define SP_ANALYSIS_F_LEVEL_MISMATCH  0x04
#define SP_ANALYSIS_F_INJECTION       0x08   /* injection_attempt */
#define SP_ANALYSIS_F_REPAIRED        0x10
#define SP_ANALYSIS_F_HIERARCHICAL    0x20
#define SP_ANALYSIS_F_TRUNCATED       0x40

struct sp_analysis_outcome {
    bool done;
    bool template_used;
    const char *fallback_reason;  /* borrowed; NULL when the LLM answered */
    unsigned flags;               /* SP_ANALYSIS_F_* */
    unsigned calls, repairs, batches;
    size_t ungrounded;
    int64_t prompt_tokens, completion_tokens;
    int impact_score;
};

struct sp_analysis_job;

/*
 * Starts an analysis of the incident JSON text inc[0..len) (copied).  p is
 * borrowed and must outlive the job; NULL plans no call (end the job with
 * sp_analysis_job_fallback).  The plan is ready at once: a single
 * "summary" call, or "partial" calls whose answers a "merge" call joins.
 * Returns a new job (sp_analysis_job_free) or NULL with err set (incident
 * not JSON, not an object).
 */
struct sp_analysis_job *sp_analysis_job_new(const char *inc, size_t len,
                                            const struct sp_analysis_opts *o,
                                            const struct sp_analysis_prompts *p,
                                            struct sp_error *err);
void sp_analysis_job_free(struct sp_analysis_job *job);

/* The next call to send, or NULL (all sent and waiting, or done).  Each
 * call is handed out once. */
const struct sp_analysis_call *sp_analysis_job_next(struct sp_analysis_job *job);
/* Every call planned so far, sent or not (for --dry-run). */
size_t sp_analysis_job_calls(const struct sp_analysis_job *job,
                             const struct sp_analysis_call **calls);

/* The model answered call `id` (content borrowed).  Valid answers advance
 * the plan; an invalid one gets one repair call, then the template. */
void sp_analysis_job_answer(struct sp_analysis_job *job, unsigned id,
                            const char *content, size_t len,
                            const struct sp_analysis_usage *usage);
/* Call `id` failed (connector error): the job ends with the template and
 * a reason built from err and why. */
void sp_analysis_job_fail(struct sp_analysis_job *job, unsigned id,
                          enum sp_err err, const char *why);
/* Ends the job with the template now (LLM disabled, policy, over budget). */
void sp_analysis_job_fallback(struct sp_analysis_job *job, const char *reason);

bool sp_analysis_job_done(const struct sp_analysis_job *job);
/* After done: appends the analysis section to out. */
enum sp_err sp_analysis_job_result(const struct sp_analysis_job *job,
                                   struct sp_buf *out);
const struct sp_analysis_outcome *sp_analysis_job_outcome(
    const struct sp_analysis_job *job);
/* The content hash of the job's incident (hex). */
const char *sp_analysis_job_hash(const struct sp_analysis_job *job);

/* ---- cost estimate (`socpilot analyze --estimate`) ---------------------- */

struct sp_analysis_estimate_params {
    double share_at_min_severity;  /* incidents at/above min severity, 0..1 */
    double analyses_per_incident;  /* changes analysed after debounce (<= 2) */
    double on_demand_per_day;      /* ON_DEMAND: requests per day */
    double tokens_per_alert;       /* context cost of one alert */
    double prompt_overhead;        /* system + instructions + schema */
    double completion_tokens;      /* answer size */
};

struct sp_analysis_estimate {
    double incidents_analysed;     /* per day */
    double calls;                  /* per day, partial + merge included */
    double prompt_tokens, completion_tokens, total_tokens;   /* per day */
    double calls_per_incident;
    double alerts_per_incident;
};

/* Defaults: share 0.3, 1.5 analyses per incident, 20 on-demand, 120
 * tokens per alert, 1500 overhead, 700 completion. */
void sp_analysis_estimate_params_default(struct sp_analysis_estimate_params *p);
void sp_analysis_estimate(enum sp_analysis_policy policy, double alerts_per_day,
                          double incidents_per_day,
                          const struct sp_analysis_opts *o,
                          const struct sp_analysis_estimate_params *p,
                          struct sp_analysis_estimate *out);

#endif /* SP_ANALYSIS_H */
