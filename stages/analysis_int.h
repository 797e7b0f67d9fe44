/*
 * analysis_int.h - private to the analysis module (analysis*.c):
 *
 *   analysis_index.c     the incident snapshot read into arrays (alerts in
 *                        time order, entities with kinds and enrichment
 *                        marks, script analyses), the grounding corpus
 *   analysis_hash.c      the content hash (canonical JSON, SHA-256)
 *   analysis_redact.c    redaction and anonymization
 *   analysis_context.c   the prompt context, fencing, the batch plan
 *   analysis_impact.c    the deterministic impact score
 *   analysis_check.c     schema validation, grounding, injection flags
 *   analysis_template.c  the deterministic template answer
 *   analysis_prompts.c   prompt templates and the answer schema
 *   analysis_job.c       the job step machine, the result writer
 *   analysis.c           options, policy, cost estimate
 *
 * Everything lives in an arena owned by the caller; one thread at a time.
 */
#ifndef SP_ANALYSIS_INT_H
#define SP_ANALYSIS_INT_H

#include "alert.h"
#include "analysis.h"

/* ---- the indexed incident (analysis_index.c) ---------------------------- */

enum an_kind { AN_HOST, AN_USER, AN_EMAIL, AN_IP, AN_URL, AN_DOMAIN, AN_FILE,
               AN_PROCESS, AN_OTHER };

struct an_alert {
    const struct sp_json *j;
    const char *id, *title, *description, *detector, *category, *status,
        *provider;
    int sev;                      /* enum sp_severity */
    int64_t t_first, t_last;      /* SP_TIME_NONE when unknown */
    const struct sp_json *tactics, *techniques;
    uint32_t *ents;               /* indices into an_inc.ents */
    uint32_t n_ents;
    char label[24];               /* "A1", in time order */
};

struct an_entity {
    const struct sp_json *j;
    const char *type, *key, *name;    /* name: the value people know */
    enum an_kind kind;
    bool privileged, vip, critical;
    uint32_t n_alerts;
    int sev_max;
    int64_t t_first;
    uint32_t orig;                /* position in the snapshot */
    char label[24];               /* "E1" */
};

struct an_script {
    const struct sp_json *j;
    const char *alert_id, *language, *input, *final;
    const struct sp_json *layers, *behaviours, *indicators;
    int risk;                     /* 0..100, -1 unknown */
    char label[24];               /* "S1" */
};

struct an_inc {
    const struct sp_json *root;
    const char *id, *tenant, *title, *status;
    int sev;
    int64_t first_seen, last_seen;
    struct an_alert *alerts;      /* sorted by t_first (unknown last) */
    size_t n_alerts, n_alerts_total;
    struct an_entity *ents;
    size_t n_ents, n_ents_total;
    struct an_script *scripts;
    size_t n_scripts;
    char *corpus;                 /* every string of the incident, lower-case,
                                     '\n'-separated (grounding) */
    size_t corpus_len;
};

#define AN_MAX_SCRIPTS 64
#define AN_CORPUS_MAX ((size_t)8 << 20)

enum sp_err an_index(struct sp_arena *a, const struct sp_json *inc,
                     const struct sp_analysis_opts *o, struct an_inc *ix);
const char *an_kind_name(enum an_kind k);
/* Case-insensitive, boundary-aware search in the corpus. */
bool an_corpus_has(const struct an_inc *ix, const char *s, size_t n);
/* Time of an alert for display ("2024-05-01T10:00:00Z" or "unknown"). */
const char *an_time(char buf[32], int64_t us);

void an_sha256(const void *data, size_t n, uint8_t out[32]);

/* ---- redaction and anonymization (analysis_redact.c) -------------------- */

struct sp_analysis_anon *an_anon_new(const struct an_inc *ix, unsigned fields);
void an_anon_free(struct sp_analysis_anon *anon);
/* Replaces known values (and, for IPs/e-mails, any found in the text) by
 * placeholders, appending to out. */
enum sp_err an_anon_apply(struct sp_analysis_anon *anon, const char *s,
                          size_t n, struct sp_buf *out);
/* True if s[0..n) is a placeholder this map does not know (HOST_9). */
bool an_anon_unknown(const struct sp_analysis_anon *anon, const char *s,
                     size_t n);
size_t an_anon_count(const struct sp_analysis_anon *anon);

/* ---- the context (analysis_context.c) ----------------------------------- */

/* How untrusted text is prepared for a prompt. */
struct an_text {
    const struct sp_analysis_opts *o;
    struct sp_analysis_anon *anon;   /* may be NULL */
    unsigned redactions;
    bool injection;                  /* instruction-like text seen */
    struct sp_buf tmp1, tmp2;
};

void an_text_init(struct an_text *t, const struct sp_analysis_opts *o,
                  struct sp_analysis_anon *anon);
void an_text_fini(struct an_text *t);
/* Redacts, anonymizes, bounds (o->field_max) and neutralises fence tags in
 * s; appends to out.  No fence around it. */
void an_text_put(struct an_text *t, struct sp_buf *out, const char *s);
/* Appends s[0..n) with fence look-alike tags neutralised and control
 * characters blanked (no redaction, no bound). */
void an_text_neutral(struct sp_buf *out, const char *s, size_t n);
/* A short identifier safe to show outside a fence ([A-Za-z0-9._:-]). */
bool an_safe_token(const char *s);
/* Instruction-like phrases ("ignore previous instructions"...). */
bool an_looks_injected(const char *s, size_t n);

/* What one prompt covers.  alerts: indices into ix->alerts (NULL = all,
 * chosen by importance). */
struct an_scope {
    const uint32_t *alerts;
    size_t n_alerts;
    unsigned batch, batches;      /* 0/0 for a single prompt */
};

struct an_ctx_stats {
    size_t alerts_shown, entities_shown, scripts_shown;
    bool omitted_alerts;
};

enum sp_err an_context(const struct an_inc *ix, const struct sp_impact *imp,
                       struct an_text *t, const struct an_scope *scope,
                       size_t budget_tokens, struct sp_buf *out,
                       struct an_ctx_stats *st);
/* A short overview for the merge prompt: header, impact, entity list. */
enum sp_err an_overview(const struct an_inc *ix, const struct sp_impact *imp,
                        struct an_text *t, size_t budget_tokens,
                        struct sp_buf *out);

/* Splits alerts into at most max_batches batches of at most budget tokens
 * each (time order inside a batch); the least important alerts are left
 * out when they do not fit.  batches[i] points into idx.  Returns the
 * number of batches (0 on allocation failure). */
size_t an_plan(const struct an_inc *ix, struct sp_arena *a,
               struct an_text *t, size_t budget_tokens, unsigned max_batches,
               struct an_scope *batches, size_t *omitted);

/* ---- impact (analysis_impact.c) ----------------------------------------- */

void an_impact(const struct an_inc *ix, struct sp_impact *out);
/* Normalised tactic name ("lateralmovement") -> kill-chain weight 0..10,
 * -1 unknown. */
int an_tactic_weight(const char *tactic, const char **canonical);

/* ---- checks (analysis_check.c) ------------------------------------------ */

#define AN_MAX_UNGROUNDED 50
#define AN_MAX_CHECKS 500        /* names checked per answer */

struct an_ungrounded {
    const char *value, *type, *field;
};

struct an_ground {
    size_t checked;
    struct an_ungrounded items[AN_MAX_UNGROUNDED];
    size_t n;
};

/* answer: the de-anonymized answer. */
void an_ground_check(const struct an_inc *ix,
                     const struct sp_analysis_anon *anon,
                     struct sp_arena *a, const struct sp_json *answer,
                     struct an_ground *g);
/* The answer concludes "benign / no action". */
bool an_says_benign(const struct sp_json *answer);

/* Finds the JSON object in a model's text (code fences, prose around it)
 * and parses it into a; NULL with a message in errs when there is none. */
struct sp_json *an_parse_answer(struct sp_arena *a, const char *s, size_t n,
                                struct sp_buf *errs);

/* ---- template (analysis_template.c) ------------------------------------- */

/* Writes a template answer (same shape as a model answer, so it validates
 * against the answer schema) to out. */
enum sp_err an_template_answer(const struct an_inc *ix,
                               const struct sp_impact *imp,
                               struct sp_buf *out);

/* ---- prompts (analysis_prompts.c) --------------------------------------- */

enum { AN_TPL_SYSTEM, AN_TPL_SUMMARY, AN_TPL_PARTIAL, AN_TPL_MERGE,
       AN_TPL_REPAIR, AN_TPL__SCHEMA };

struct an_var {
    const char *name;
    const char *value;
};

/* A template's text, or the schema file's text for AN_TPL__SCHEMA. */
const char *an_prompt(const struct sp_analysis_prompts *p, int which);
/* Fills {{name}} placeholders (unknown ones become empty) into a; NULL
 * when out of memory. */
char *an_render(struct sp_arena *a, const char *tpl, const struct an_var *vars,
                size_t n_vars);

/* ---- the result writer (analysis_job.c) --------------------------------- */

struct an_result {
    const char *generated_by;
    const char *model;
    const char *fallback_reason;
    const struct sp_json *answer;    /* de-anonymized */
    const struct sp_impact *impact;
    const struct an_ground *ground;
    const char *hash;
    int64_t created_us;
    int64_t prompt_tokens, completion_tokens;
    unsigned calls;
    unsigned flags;                  /* SP_ANALYSIS_F_* */
    size_t alerts, alerts_shown, entities, entities_shown, scripts;
    unsigned batches, redactions;
    bool anonymized;
};

enum sp_err an_write_result(const struct an_result *r, struct sp_buf *out);
/* The flags for an answer: untrusted conclusion, level mismatch. */
unsigned an_answer_flags(const struct sp_json *answer,
                         const struct sp_impact *imp, bool injection,
                         int high_score);

#endif /* SP_ANALYSIS_INT_H */
