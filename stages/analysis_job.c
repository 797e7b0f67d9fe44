/*
 * analysis_job.c - one analysis from incident to `analysis` section: the
 * job's step machine (which calls, with which prompts, what to do with
 * each answer) and the result writer.
 *
 * The plan: a single "summary" call when the context fits the budget;
 * otherwise "partial" calls over alert batches whose valid answers a
 * "merge" call joins.  An answer that fails validation gets one "repair"
 * call (the errors and its own answer shown back); a second failure ends
 * in the template (a partial that stays invalid is only left out of the
 * merge).  Any connector failure ends in the template with the reason.
 * Final answers are de-anonymized, checked for grounding and for
 * untrusted conclusions, and written with the deterministic impact.
 *
 * A job is used by one thread at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

/* ---- the job ------------------------------------------------------------ */

enum { K_SUMMARY, K_PARTIAL, K_MERGE, K_REPAIR };
static const char *const kind_names[] = {"summary", "partial", "merge",
                                         "repair"};
enum { C_PENDING, C_SENT, C_DONE };

#define AN_MAX_CALLS 80
#define AN_MAX_BATCHES 32
#define REPAIR_ECHO_MAX 8192

struct an_call {
    struct sp_llm_msg msgs[4];
    int kind, target, state;
    unsigned batch;
    const char *answer;          /* valid partial answer (anonymized) */
    size_t answer_len;
};

struct sp_analysis_job {
    struct sp_arena a;
    struct sp_analysis_opts o;
    const struct sp_analysis_prompts *p;
    struct sp_json *inc;
    struct an_inc ix;
    struct sp_impact imp;
    struct sp_analysis_anon *anon;
    struct an_text t;
    char hash[65];
    struct sp_analysis_call pub[AN_MAX_CALLS];
    struct an_call calls[AN_MAX_CALLS];
    unsigned n_calls, next;
    unsigned n_batches, partials_done, partials_ok;
    size_t alerts_shown, entities_shown, omitted;
    const char *model;
    unsigned flags;
    struct sp_buf result;
    struct sp_analysis_outcome out;
};

static const char *job_str(struct sp_analysis_job *job, const char *fmt, ...)
    SP_PRINTF(2, 3);

static const char *job_str(struct sp_analysis_job *job, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return sp_arena_strdup(&job->a, tmp);
}

static struct an_call *add_call(struct sp_analysis_job *job, int kind,
                                const struct sp_llm_msg *msgs, size_t n)
{
    if (job->n_calls >= AN_MAX_CALLS)
        return NULL;
    unsigned id = job->n_calls++;
    struct an_call *c = &job->calls[id];
    struct sp_analysis_call *pc = &job->pub[id];
    memset(c, 0, sizeof(*c));
    size_t bytes = 0;
    for (size_t i = 0; i < n && i < SP_ARRAY_SIZE(c->msgs); i++) {
        c->msgs[i] = msgs[i];
        bytes += strlen(msgs[i].content) + 16;
    }
    c->kind = c->target = kind;
    c->state = C_PENDING;
    pc->id = id;
    pc->kind = kind_names[kind];
    pc->msgs = c->msgs;
    pc->n_msgs = SP_MIN(n, SP_ARRAY_SIZE(c->msgs));
    pc->est_tokens = bytes / 4;
    pc->max_tokens = job->o.output_tokens;
    return c;
}

static void impact_vars(struct sp_analysis_job *job, struct an_var *v)
{
    v[0] = (struct an_var){"incident_id",
                           an_safe_token(job->ix.id) ? job->ix.id : "-"};
    v[1] = (struct an_var){"impact_score", job_str(job, "%d", job->imp.score)};
    v[2] = (struct an_var){"impact_level", job->imp.level};
    v[3] = (struct an_var){"schema", an_prompt(job->p, AN_TPL__SCHEMA)};
}

static const char *system_prompt(struct sp_analysis_job *job)
{
    struct an_var v[4];
    impact_vars(job, v);
    return an_render(&job->a, an_prompt(job->p, AN_TPL_SYSTEM), v, 4);
}

static bool plan_single(struct sp_analysis_job *job, const char *context)
{
    struct an_var v[5];
    impact_vars(job, v);
    v[4] = (struct an_var){"context", context};
    const char *user = an_render(&job->a, an_prompt(job->p, AN_TPL_SUMMARY), v, 5);
    const char *sys = system_prompt(job);
    if (!user || !sys)
        return false;
    struct sp_llm_msg m[2] = {{"system", sys}, {"user", user}};
    return add_call(job, K_SUMMARY, m, 2) != NULL;
}

static bool plan_batches(struct sp_analysis_job *job)
{
    struct an_scope scopes[AN_MAX_BATCHES];
    unsigned maxb = SP_MIN(job->o.max_batches, (unsigned)AN_MAX_BATCHES);
    size_t omitted = 0;
    size_t nb = an_plan(&job->ix, &job->a, &job->t, job->o.context_tokens, maxb,
                        scopes, &omitted);
    if (nb < 2)
        return false;
    job->omitted = omitted;
    job->n_batches = (unsigned)nb;
    job->t.redactions = 0;
    job->alerts_shown = job->entities_shown = 0;
    const char *sys = system_prompt(job);
    struct sp_buf ctx;
    sp_buf_init(&ctx, (size_t)16 << 20);
    for (size_t i = 0; i < nb; i++) {
        sp_buf_reset(&ctx);
        struct an_ctx_stats st;
        if (an_context(&job->ix, &job->imp, &job->t, &scopes[i],
                       job->o.context_tokens, &ctx, &st) != SP_OK)
            break;
        job->alerts_shown += st.alerts_shown;
        job->entities_shown += st.entities_shown;
        struct an_var v[7];
        impact_vars(job, v);
        v[4] = (struct an_var){"context", ctx.data};
        v[5] = (struct an_var){"batch", job_str(job, "%zu", i + 1)};
        v[6] = (struct an_var){"batches", job_str(job, "%zu", nb)};
        const char *user = an_render(&job->a,
                                     an_prompt(job->p, AN_TPL_PARTIAL), v, 7);
        struct sp_llm_msg m[2] = {{"system", sys}, {"user", user}};
        struct an_call *c = user && sys ? add_call(job, K_PARTIAL, m, 2) : NULL;
        if (!c)
            break;
        c->batch = (unsigned)i + 1;
    }
    sp_buf_fini(&ctx);
    job->out.batches = job->n_batches;
    job->flags |= SP_ANALYSIS_F_HIERARCHICAL;
    if (omitted)
        job->flags |= SP_ANALYSIS_F_TRUNCATED;
    return job->n_calls == nb;
}

static enum sp_err plan(struct sp_analysis_job *job)
{
    struct sp_buf ctx;
    sp_buf_init(&ctx, (size_t)16 << 20);
    struct an_ctx_stats st;
    enum sp_err e = an_context(&job->ix, &job->imp, &job->t, NULL,
                               job->o.context_tokens, &ctx, &st);
    if (e == SP_OK) {
        job->alerts_shown = st.alerts_shown;
        job->entities_shown = st.entities_shown;
        bool ok;
        if (st.omitted_alerts && job->o.max_batches > 1 && plan_batches(job)) {
            ok = true;
        } else {
            job->n_calls = 0;
            job->n_batches = 0;
            job->out.batches = 0;
            job->flags &= ~(unsigned)SP_ANALYSIS_F_HIERARCHICAL;
            if (st.omitted_alerts)
                job->flags |= SP_ANALYSIS_F_TRUNCATED;
            ok = plan_single(job, ctx.data ? ctx.data : "");
        }
        e = ok ? SP_OK : SP_ERR_NOMEM;
    }
    sp_buf_fini(&ctx);
    return e;
}

void sp_analysis_job_free(struct sp_analysis_job *job)
{
    if (!job)
        return;
    an_text_fini(&job->t);
    an_anon_free(job->anon);
    sp_buf_fini(&job->result);
    sp_arena_fini(&job->a);
    free(job);
}

struct sp_analysis_job *sp_analysis_job_new(const char *inc, size_t len,
                                            const struct sp_analysis_opts *o,
                                            const struct sp_analysis_prompts *p,
                                            struct sp_error *err)
{
    struct sp_analysis_job *job = calloc(1, sizeof(*job));
    if (!job) {
        sp_error_set(err, SP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    job->o = *o;
    job->p = p;
    sp_arena_init(&job->a, (size_t)512 << 20);
    sp_buf_init(&job->result, (size_t)16 << 20);
    an_text_init(&job->t, &job->o, NULL);
    const char *copy = sp_arena_strndup(&job->a, inc, len);
    struct sp_json_limits lim = {len + 1, 64, 2000000};
    struct sp_json_error jerr;
    job->inc = copy ? sp_json_parse(&job->a, copy, len, &lim, &jerr) : NULL;
    if (!job->inc || job->inc->type != SP_JSON_OBJECT) {
        sp_error_set(err, SP_ERR_INVALID, "incident: %s",
                     job->inc ? "not a JSON object"
                              : sp_json_errname(jerr.code));
        goto fail;
    }
    if (an_index(&job->a, job->inc, &job->o, &job->ix) != SP_OK) {
        sp_error_set(err, SP_ERR_NOMEM, "incident: too large to index");
        goto fail;
    }
    an_impact(&job->ix, &job->imp);
    job->out.impact_score = job->imp.score;
    if (sp_analysis_content_hash(job->inc, job->hash) != SP_OK) {
        sp_error_set(err, SP_ERR_LIMIT, "incident: too large to hash");
        goto fail;
    }
    if (an_looks_injected(job->ix.corpus, job->ix.corpus_len))
        job->flags |= SP_ANALYSIS_F_INJECTION;
    job->anon = an_anon_new(&job->ix, job->o.anonymize);
    job->t.anon = job->anon;
    if (p && plan(job) != SP_OK) {
        sp_error_set(err, SP_ERR_NOMEM, "incident: prompts too large");
        goto fail;
    }
    if (job->t.injection)
        job->flags |= SP_ANALYSIS_F_INJECTION;
    return job;
fail:
    sp_analysis_job_free(job);
    return NULL;
}

const struct sp_analysis_call *sp_analysis_job_next(struct sp_analysis_job *job)
{
    if (!job || job->out.done)
        return NULL;
    for (unsigned i = job->next; i < job->n_calls; i++) {
        if (job->calls[i].state == C_PENDING) {
            job->calls[i].state = C_SENT;
            job->next = i + 1;
            job->out.calls++;
            return &job->pub[i];
        }
    }
    return NULL;
}

size_t sp_analysis_job_calls(const struct sp_analysis_job *job,
                             const struct sp_analysis_call **calls)
{
    *calls = job ? job->pub : NULL;
    return job ? job->n_calls : 0;
}

bool sp_analysis_job_done(const struct sp_analysis_job *job)
{
    return job && job->out.done;
}

const struct sp_analysis_outcome *sp_analysis_job_outcome(
    const struct sp_analysis_job *job)
{
    return &job->out;
}

const char *sp_analysis_job_hash(const struct sp_analysis_job *job)
{
    return job->hash;
}

enum sp_err sp_analysis_job_result(const struct sp_analysis_job *job,
                                   struct sp_buf *out)
{
    if (!job || !job->out.done)
        return SP_ERR_STATE;
    return sp_buf_put(out, job->result.data ? job->result.data : "",
                      job->result.len);
}

/* ---- finishing ---------------------------------------------------------- */

/* Copies a DOM into the writer, restoring placeholders in strings. */
static void copy_restored(struct sp_jw *w, const struct sp_json *v,
                          const struct sp_analysis_anon *anon,
                          struct sp_buf *tmp, int depth)
{
    if (depth > 32) {
        w->bad = true;
        return;
    }
    switch (v->type) {
    case SP_JSON_OBJECT:
        sp_jw_obj_open(w);
        sp_json_foreach(v, it) {
            sp_jw_key(w, it->key);
            copy_restored(w, it, anon, tmp, depth + 1);
        }
        sp_jw_obj_close(w);
        return;
    case SP_JSON_ARRAY:
        sp_jw_arr_open(w);
        sp_json_foreach(v, it) copy_restored(w, it, anon, tmp, depth + 1);
        sp_jw_arr_close(w);
        return;
    case SP_JSON_STRING:
        if (!anon) {
            sp_jw_strn(w, v->u.s, v->n);
            return;
        }
        sp_buf_reset(tmp);
        sp_analysis_anon_restore(anon, v->u.s, v->n, tmp);
        sp_jw_strn(w, tmp->data ? tmp->data : "", tmp->len);
        return;
    case SP_JSON_NUMBER: sp_jw_raw(w, v->u.s, v->n); return;
    case SP_JSON_TRUE: sp_jw_bool(w, true); return;
    case SP_JSON_FALSE: sp_jw_bool(w, false); return;
    case SP_JSON_NULL: sp_jw_null(w); return;
    }
}

static const struct sp_json *restore(struct sp_analysis_job *job,
                                     const struct sp_json *answer)
{
    struct sp_buf b, tmp;
    sp_buf_init(&b, (size_t)16 << 20);
    sp_buf_init(&tmp, (size_t)4 << 20);
    struct sp_jw w;
    sp_jw_init(&w, &b);
    copy_restored(&w, answer, job->anon, &tmp, 0);
    struct sp_json *root = NULL;
    if (sp_jw_ok(&w)) {
        const char *text = sp_arena_strndup(&job->a, b.data ? b.data : "",
                                            b.len);
        struct sp_json_limits lim = {b.len + 1, 64, 500000};
        struct sp_json_error jerr;
        root = text ? sp_json_parse(&job->a, text, b.len, &lim, &jerr) : NULL;
    }
    sp_buf_fini(&b);
    sp_buf_fini(&tmp);
    return root;
}

static void finish(struct sp_analysis_job *job, const struct sp_json *answer,
                   const char *generated_by, const char *reason)
{
    struct an_ground g;
    an_ground_check(&job->ix, job->anon, &job->a, answer, &g);
    unsigned flags = job->flags |
                     an_answer_flags(answer, &job->imp,
                                     (job->flags & SP_ANALYSIS_F_INJECTION) != 0,
                                     job->o.high_score);
    if (g.n)
        flags |= SP_ANALYSIS_F_UNGROUNDED;
    if (strcmp(generated_by, "template") == 0)
        flags &= ~(unsigned)(SP_ANALYSIS_F_HIERARCHICAL |
                             SP_ANALYSIS_F_LEVEL_MISMATCH |
                             SP_ANALYSIS_F_TRUNCATED);
    struct an_result r = {
        .generated_by = generated_by,
        .model = strcmp(generated_by, "llm") == 0
                     ? (job->model ? job->model : job->o.model) : NULL,
        .fallback_reason = reason,
        .answer = answer,
        .impact = &job->imp,
        .ground = &g,
        .hash = job->hash,
        .created_us = job->o.now_us ? job->o.now_us : sp_wall_us(),
        .prompt_tokens = job->out.prompt_tokens,
        .completion_tokens = job->out.completion_tokens,
        .calls = job->out.calls,
        .flags = flags,
        .alerts = SP_MAX(job->ix.n_alerts_total, job->ix.n_alerts),
        .alerts_shown = strcmp(generated_by, "llm") == 0 ? job->alerts_shown
                                                         : job->ix.n_alerts,
        .entities = SP_MAX(job->ix.n_ents_total, job->ix.n_ents),
        .entities_shown = strcmp(generated_by, "llm") == 0
                              ? job->entities_shown : job->ix.n_ents,
        .scripts = job->ix.n_scripts,
        .batches = job->n_batches,
        .redactions = job->t.redactions,
        .anonymized = job->anon != NULL,
    };
    sp_buf_reset(&job->result);
    if (an_write_result(&r, &job->result) != SP_OK)
        sp_buf_reset(&job->result);
    job->out.done = true;
    job->out.flags = flags;
    job->out.ungrounded = g.n;
    job->out.template_used = strcmp(generated_by, "template") == 0;
    job->out.fallback_reason = reason;
}

void sp_analysis_job_fallback(struct sp_analysis_job *job, const char *reason)
{
    if (!job || job->out.done)
        return;
    struct sp_buf b;
    sp_buf_init(&b, (size_t)16 << 20);
    const struct sp_json *answer = NULL;
    if (an_template_answer(&job->ix, &job->imp, &b) == SP_OK) {
        const char *text = sp_arena_strndup(&job->a, b.data, b.len);
        struct sp_json_limits lim = {b.len + 1, 64, 500000};
        struct sp_json_error jerr;
        answer = text ? sp_json_parse(&job->a, text, b.len, &lim, &jerr) : NULL;
    }
    sp_buf_fini(&b);
    const char *why = reason ? sp_arena_strdup(&job->a, reason) : NULL;
    if (!answer) {
        /* Out of memory: still end the job, with an empty answer. */
        static const char empty[] = "{}";
        struct sp_json_error jerr;
        answer = sp_json_parse(&job->a, empty, 2, NULL, &jerr);
    }
    const struct sp_analysis_anon *anon = job->anon;
    job->anon = NULL;                          /* template: no placeholders */
    finish(job, answer, "template", why);
    job->anon = (struct sp_analysis_anon *)anon;
}

static void maybe_merge(struct sp_analysis_job *job)
{
    if (job->partials_done < job->n_batches)
        return;
    if (job->partials_ok == 0) {
        sp_analysis_job_fallback(job, "invalid_output");
        return;
    }
    struct sp_buf parts, over;
    sp_buf_init(&parts, (size_t)16 << 20);
    sp_buf_init(&over, (size_t)16 << 20);
    size_t per = job->o.context_tokens * 4 / SP_MAX(job->partials_ok, 1u);
    for (unsigned i = 0; i < job->n_calls; i++) {
        const struct an_call *c = &job->calls[i];
        if (!c->answer)
            continue;
        sp_buf_printf(&parts, "<untrusted-data id=\"partial-%u\">\n", c->batch);
        size_t n = SP_MIN(c->answer_len, SP_MAX(per, (size_t)2048));
        while (n > 0 && n < c->answer_len &&
               ((unsigned char)c->answer[n] & 0xC0) == 0x80)
            n--;
        an_text_neutral(&parts, c->answer, n);
        if (n < c->answer_len)
            sp_buf_puts(&parts, " ...[truncated]");
        sp_buf_puts(&parts, "\n</untrusted-data>\n");
    }
    an_overview(&job->ix, &job->imp, &job->t, job->o.context_tokens / 4, &over);
    if (job->omitted)
        sp_buf_printf(&over, "Note: %zu alerts of the incident were not part "
                             "of any batch.\n", job->omitted);
    struct an_var v[7];
    impact_vars(job, v);
    v[4] = (struct an_var){"overview", over.data ? over.data : ""};
    v[5] = (struct an_var){"partials", parts.data ? parts.data : ""};
    v[6] = (struct an_var){"batches", job_str(job, "%u", job->n_batches)};
    const char *user = an_render(&job->a, an_prompt(job->p, AN_TPL_MERGE), v, 7);
    const char *sys = system_prompt(job);
    sp_buf_fini(&parts);
    sp_buf_fini(&over);
    struct sp_llm_msg m[2] = {{"system", sys}, {"user", user}};
    if (!user || !sys || !add_call(job, K_MERGE, m, 2))
        sp_analysis_job_fallback(job, "merge_prompt_failed");
}

static void repair(struct sp_analysis_job *job, unsigned id, const char *content,
                   size_t len, const char *errors)
{
    struct an_call *orig = &job->calls[id];
    size_t n = SP_MIN(len, (size_t)REPAIR_ECHO_MAX);
    while (n > 0 && n < len && ((unsigned char)content[n] & 0xC0) == 0x80)
        n--;
    const char *echo = sp_arena_strndup(&job->a, content, n);
    struct an_var v[5];
    impact_vars(job, v);
    v[4] = (struct an_var){"errors", errors};
    const char *user = an_render(&job->a, an_prompt(job->p, AN_TPL_REPAIR), v, 5);
    struct sp_llm_msg m[4] = {orig->msgs[0], orig->msgs[1],
                              {"assistant", echo ? echo : ""},
                              {"user", user ? user : ""}};
    struct an_call *c = echo && user ? add_call(job, K_REPAIR, m, 4) : NULL;
    if (!c) {
        sp_analysis_job_fallback(job, "invalid_output");
        return;
    }
    c->target = orig->kind;
    c->batch = orig->batch;
    job->out.repairs++;
    job->flags |= SP_ANALYSIS_F_REPAIRED;
}

void sp_analysis_job_answer(struct sp_analysis_job *job, unsigned id,
                            const char *content, size_t len,
                            const struct sp_analysis_usage *usage)
{
    if (!job || job->out.done || id >= job->n_calls ||
        job->calls[id].state != C_SENT)
        return;
    struct an_call *c = &job->calls[id];
    c->state = C_DONE;
    if (usage) {
        job->out.prompt_tokens += usage->prompt_tokens;
        job->out.completion_tokens += usage->completion_tokens;
        if (usage->model && *usage->model)
            job->model = sp_arena_strdup(&job->a, usage->model);
    }
    struct sp_buf errs;
    sp_buf_init(&errs, 1 << 16);
    struct sp_json *root = an_parse_answer(&job->a, content ? content : "",
                                           content ? len : 0, &errs);
    const struct sp_json *schema = sp_analysis_prompts_schema(job->p);
    bool valid = root && sp_analysis_validate(schema, root, &errs) == SP_OK;
    if (valid && c->target == K_PARTIAL) {
        c->answer = root->src;
        c->answer_len = root->src_len;
        job->partials_ok++;
        job->partials_done++;
        maybe_merge(job);
    } else if (valid) {
        const struct sp_json *restored = restore(job, root);
        if (restored)
            finish(job, restored, "llm", NULL);
        else
            sp_analysis_job_fallback(job, "invalid_output");
    } else if (c->kind != K_REPAIR) {
        repair(job, id, content ? content : "", content ? len : 0,
               errs.data ? errs.data : "invalid answer");
    } else if (c->target == K_PARTIAL) {
        job->partials_done++;
        maybe_merge(job);
    } else {
        sp_analysis_job_fallback(job, "invalid_output");
    }
    sp_buf_fini(&errs);
}

void sp_analysis_job_fail(struct sp_analysis_job *job, unsigned id,
                          enum sp_err err, const char *why)
{
    if (!job || job->out.done)
        return;
    if (id < job->n_calls)
        job->calls[id].state = C_DONE;
    const char *kind = err == SP_ERR_LIMIT ? "llm_budget"
                     : err == SP_ERR_RETRY ? "llm_unavailable"
                     : err == SP_ERR_TIMEOUT ? "llm_timeout"
                     : err == SP_ERR_CONFIG ? "llm_config"
                                            : "llm_error";
    char reason[256];
    snprintf(reason, sizeof(reason), "%s%s%.200s", kind, why ? ": " : "",
             why ? why : "");
    sp_analysis_job_fallback(job, reason);
}

/* ---- the result --------------------------------------------------------- */

static void copy(struct sp_jw *w, const struct sp_json *v)
{
    copy_restored(w, v, NULL, NULL, 0);
}

static const char *const flag_names[] = {
    "ungrounded_entities", "untrusted_conclusion", "impact_level_mismatch",
    "injection_attempt", "repaired", "hierarchical", "truncated_context"};

enum sp_err an_write_result(const struct an_result *r, struct sp_buf *out)
{
    struct sp_jw w;
    sp_jw_init(&w, out);
    const struct sp_json *ans = r->answer;
    sp_jw_obj_open(&w);
    sp_jw_kstr(&w, "schema_version", SP_ANALYSIS_SCHEMA_VERSION);
    sp_jw_kstr(&w, "generated_by", r->generated_by);
    sp_jw_kstr(&w, "model", r->model);
    sp_jw_ktime(&w, "created", r->created_us);
    sp_jw_kstr(&w, "content_hash", r->hash);
    const char *assess = sp_json_str(ans, "assessment");
    sp_jw_kstr(&w, "assessment", assess ? assess : "undetermined");
    const struct sp_json *sum = sp_json_get(ans, "summary");
    sp_jw_key(&w, "summary");
    if (sum)
        copy(&w, sum);
    else {
        sp_jw_obj_open(&w);
        sp_jw_obj_close(&w);
    }
    const struct sp_json *tl = sp_json_get(ans, "timeline");
    sp_jw_key(&w, "timeline");
    if (tl)
        copy(&w, tl);
    else {
        sp_jw_arr_open(&w);
        sp_jw_arr_close(&w);
    }

    const struct sp_impact *imp = r->impact;
    const struct sp_json *mi = sp_json_get(ans, "impact");
    sp_jw_key(&w, "impact");
    sp_jw_obj_open(&w);
    sp_jw_kint(&w, "score", imp->score);
    sp_jw_kstr(&w, "level", imp->level);
    sp_jw_key(&w, "factors");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < imp->n_factors; i++) {
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "name", imp->factors[i].name);
        sp_jw_kint(&w, "points", imp->factors[i].points);
        sp_jw_kstr(&w, "detail", imp->factors[i].detail);
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);
    sp_json_foreach(mi, it) {
        if (!it->key || strcmp(it->key, "level") == 0 ||
            strcmp(it->key, "score") == 0 || strcmp(it->key, "factors") == 0)
            continue;
        sp_jw_key(&w, it->key);
        copy(&w, it);
    }
    const char *ml = sp_json_str(mi, "level");
    if (ml && !sp_strcaseeq(ml, imp->level))
        sp_jw_kstr(&w, "model_level", ml);
    sp_jw_obj_close(&w);

    sp_jw_key(&w, "tokens");
    sp_jw_obj_open(&w);
    sp_jw_kint(&w, "prompt", r->prompt_tokens);
    sp_jw_kint(&w, "completion", r->completion_tokens);
    sp_jw_kint(&w, "total", r->prompt_tokens + r->completion_tokens);
    sp_jw_obj_close(&w);
    sp_jw_kint(&w, "calls", r->calls);

    sp_jw_key(&w, "grounding");
    sp_jw_obj_open(&w);
    sp_jw_kint(&w, "checked", (int64_t)r->ground->checked);
    sp_jw_key(&w, "ungrounded");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < r->ground->n; i++) {
        sp_jw_obj_open(&w);
        sp_jw_kstr(&w, "value", r->ground->items[i].value);
        sp_jw_kstr(&w, "type", r->ground->items[i].type);
        sp_jw_kstr(&w, "field", r->ground->items[i].field);
        sp_jw_obj_close(&w);
    }
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);

    sp_jw_key(&w, "flags");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < SP_ARRAY_SIZE(flag_names); i++)
        if (r->flags & (1u << i))
            sp_jw_str(&w, flag_names[i]);
    sp_jw_arr_close(&w);

    sp_jw_key(&w, "context");
    sp_jw_obj_open(&w);
    sp_jw_kint(&w, "alerts", (int64_t)r->alerts);
    sp_jw_kint(&w, "alerts_included", (int64_t)r->alerts_shown);
    sp_jw_kint(&w, "entities", (int64_t)r->entities);
    sp_jw_kint(&w, "entities_included", (int64_t)r->entities_shown);
    sp_jw_kint(&w, "scripts", (int64_t)r->scripts);
    sp_jw_kint(&w, "batches", r->batches);
    sp_jw_kint(&w, "redactions", r->redactions);
    sp_jw_kbool(&w, "anonymized", r->anonymized);
    sp_jw_obj_close(&w);
    sp_jw_kstr_opt(&w, "fallback_reason", r->fallback_reason);
    sp_jw_obj_close(&w);
    return sp_jw_ok(&w) ? SP_OK : SP_ERR_LIMIT;
}
