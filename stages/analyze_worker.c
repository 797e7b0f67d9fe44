/*
 * analyze_worker.c - the threads that run analyses, so that the engine
 * thread never waits on an LLM.
 *
 * The engine thread pushes work (an incident snapshot and its content
 * hash) into the pool's input queue and takes finished work (the analysis
 * section) from its output queue; both are lists under one mutex, bounded
 * by the caller (analyze.concurrency jobs in flight per instance).  Each
 * worker owns one LLM client (libcurl multi: all of its jobs' requests in
 * flight at once) and drives sp_analysis_job step machines with
 * sp_llm_poll(); idle, it waits on the condition variable, and the engine
 * wakes it with the condition and sp_llm_wakeup().  With the LLM disabled
 * a job ends with the template at once, on the same path.
 *
 * Threads: an_pool_new/push/take/free on the engine thread; everything
 * static below `worker_main` on a worker.
 */
#include "analyze_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wjob;

struct an_worker {
    struct an_pool *pool;
    pthread_t th;
    bool started;
    struct sp_llm *llm;              /* NULL: template only */
    struct wjob *active;
};

struct an_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct an_work *in, *in_tail, *out, *out_tail;
    bool stop;
    uint64_t calls;
    unsigned n;
    struct an_worker w[AN_MAX_WORKERS];
    struct sp_analysis_opts ao;
    const struct sp_analysis_prompts *prompts;
    const char *log;
};

/* One job on a worker; lives until every call it sent has called back. */
struct wjob {
    struct an_worker *wk;
    struct an_work *work;
    struct sp_analysis_job *job;
    unsigned pending;
    bool transient;                  /* the LLM failure that ended it may
                                        pass: worth another try later */
    struct wjob *next;
};

struct wslot {
    struct wjob *wj;
    unsigned id;
};

void an_work_free(struct an_work *w)
{
    if (!w)
        return;
    free(w->prefix);
    free(w->id);
    free(w->inc);
    free(w->analysis);
    free(w);
}

/* ---- worker side ------------------------------------------------------------ */

/* Whether a failed call says the LLM is away for now (down, overloaded,
 * rate-limited, over the client's budget, breaker open) rather than that
 * this request cannot succeed (auth, a refused request, a bad answer). */
static bool transient(const struct sp_llm_result *res)
{
    switch (res->fail) {
    case SP_LLM_FAIL_TIMEOUT:
    case SP_LLM_FAIL_RATE_LIMITED:
    case SP_LLM_FAIL_SERVER:
    case SP_LLM_FAIL_BUDGET:
    case SP_LLM_FAIL_BREAKER:
        return true;
    case SP_LLM_FAIL_TRANSPORT:
        return res->err == SP_ERR_IO || res->err == SP_ERR_TIMEOUT ||
               res->err == SP_ERR_RETRY;
    default:
        return false;
    }
}

static void on_llm(const struct sp_llm_result *res, void *ud)
{
    struct wslot *s = ud;
    struct wjob *wj = s->wj;
    wj->pending--;
    if (!sp_analysis_job_done(wj->job)) {
        if (res->err == SP_OK) {
            struct sp_analysis_usage u = {res->model, res->prompt_tokens,
                                          res->completion_tokens};
            sp_analysis_job_answer(wj->job, s->id, res->content,
                                   res->content_len, &u);
        } else {
            wj->transient = transient(res);
            sp_analysis_job_fail(wj->job, s->id, res->err,
                                 res->error[0] ? res->error
                                               : sp_llm_fail_name(res->fail));
        }
    }
    free(s);
}

/* Sends what the job's plan has ready. */
static void pump(struct wjob *wj)
{
    struct an_worker *wk = wj->wk;
    struct an_pool *p = wk->pool;
    const struct sp_analysis_call *call;
    while (!sp_analysis_job_done(wj->job) &&
           (call = sp_analysis_job_next(wj->job)) != NULL) {
        struct wslot *s = malloc(sizeof(*s));
        if (!s) {
            sp_analysis_job_fail(wj->job, call->id, SP_ERR_NOMEM,
                                 "out of memory");
            break;
        }
        s->wj = wj;
        s->id = call->id;
        struct sp_llm_req req = {call->msgs, call->n_msgs, "incident_analysis",
                                 sp_analysis_prompts_wire_schema(p->prompts),
                                 call->max_tokens, wj->work->id};
        enum sp_err e = sp_llm_submit(wk->llm, &req, on_llm, s);
        if (e != SP_OK) {
            free(s);
            wj->transient = e == SP_ERR_LIMIT || e == SP_ERR_RETRY;
            sp_analysis_job_fail(wj->job, call->id, e, sp_strerror(e));
            break;
        }
        wj->pending++;
        pthread_mutex_lock(&p->mu);
        p->calls++;
        pthread_mutex_unlock(&p->mu);
    }
}

/* Queues finished work for the engine thread (an_pool_take()). */
static void hand_back(struct an_pool *p, struct an_work *w)
{
    pthread_mutex_lock(&p->mu);
    w->next = NULL;
    if (p->out_tail)
        p->out_tail->next = w;
    else
        p->out = w;
    p->out_tail = w;
    pthread_mutex_unlock(&p->mu);
}

static void start(struct an_worker *wk, struct an_work *w)
{
    struct an_pool *p = wk->pool;
    struct wjob *wj = calloc(1, sizeof(*wj));
    struct sp_error err = {0};
    if (wj)
        wj->job = sp_analysis_job_new(w->inc, w->inc_len, &p->ao,
                                      wk->llm ? p->prompts : NULL, &err);
    if (!wj || !wj->job) {
        sp_log_warn(p->log, "incident %s: cannot start its analysis: %s",
                    w->id, wj ? err.msg : "out of memory");
        free(wj);
        hand_back(p, w);                     /* without an analysis */
        return;
    }
    wj->wk = wk;
    wj->work = w;
    if (!wk->llm)
        sp_analysis_job_fallback(wj->job, "disabled");
    wj->next = wk->active;
    wk->active = wj;
}

/* Finished jobs (done, no call outstanding) go to the output queue. */
static void reap(struct an_worker *wk)
{
    struct an_pool *p = wk->pool;
    for (struct wjob **pp = &wk->active; *pp;) {
        struct wjob *wj = *pp;
        if (!sp_analysis_job_done(wj->job)) {
            pump(wj);
            if (!sp_analysis_job_done(wj->job)) {
                pp = &wj->next;
                continue;
            }
        }
        if (wj->pending) {
            pp = &wj->next;
            continue;
        }
        *pp = wj->next;
        struct an_work *w = wj->work;
        struct sp_buf b;
        sp_buf_init(&b, 0);
        if (sp_analysis_job_result(wj->job, &b) == SP_OK && b.data)
            w->analysis = sp_buf_steal(&b, &w->analysis_len);
        sp_buf_fini(&b);
        const struct sp_analysis_outcome *o = sp_analysis_job_outcome(wj->job);
        w->template_used = o->template_used;
        w->llm_transient = o->template_used && wj->transient;
        w->calls = o->calls;
        w->flags = o->flags;
        w->tokens = o->prompt_tokens + o->completion_tokens;
        sp_analysis_job_free(wj->job);
        free(wj);
        hand_back(p, w);
    }
}

static void *worker_main(void *arg)
{
    struct an_worker *wk = arg;
    struct an_pool *p = wk->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && !p->in && !wk->active)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        struct an_work *mine = p->in;      /* take everything queued */
        p->in = p->in_tail = NULL;
        pthread_mutex_unlock(&p->mu);
        while (mine) {
            struct an_work *next = mine->next;
            start(wk, mine);
            mine = next;
        }
        reap(wk);
        if (wk->active && wk->llm) {
            sp_llm_poll(wk->llm, 100);
            reap(wk);
        }
    }
    /* Cancel what is in flight (callbacks run now), then drop the jobs. */
    sp_llm_free(wk->llm);
    wk->llm = NULL;
    while (wk->active) {
        struct wjob *wj = wk->active;
        wk->active = wj->next;
        sp_analysis_job_free(wj->job);
        an_work_free(wj->work);
        free(wj);
    }
    return NULL;
}

/* ---- engine side ------------------------------------------------------------- */

struct an_pool *an_pool_new(unsigned n, const struct sp_llm_opts *lo,
                            const struct sp_analysis_opts *ao,
                            const struct sp_analysis_prompts *prompts,
                            struct sp_metrics *m, const char *log,
                            struct sp_error *err)
{
    struct an_pool *p = calloc(1, sizeof(*p));
    if (!p) {
        sp_error_set(err, SP_ERR_NOMEM, "analyze: out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->ao = *ao;
    p->prompts = prompts;
    p->log = log;
    p->n = SP_MIN(SP_MAX(n, 1u), (unsigned)AN_MAX_WORKERS);
    for (unsigned i = 0; i < p->n; i++) {
        p->w[i].pool = p;
        if (lo->enabled && prompts) {
            /* Clients are made here, on the calling thread: the first one
             * initialises libcurl before any worker runs. */
            p->w[i].llm = sp_llm_new(lo, m, err);
            if (!p->w[i].llm) {
                an_pool_free(p);
                return NULL;
            }
        }
    }
    for (unsigned i = 0; i < p->n; i++) {
        if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
            sp_error_set(err, SP_ERR_NOMEM, "analyze: cannot start a worker");
            an_pool_free(p);
            return NULL;
        }
        p->w[i].started = true;
    }
    return p;
}

void an_pool_push(struct an_pool *p, struct an_work *w)
{
    w->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->in_tail)
        p->in_tail->next = w;
    else
        p->in = w;
    p->in_tail = w;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].llm)
            sp_llm_wakeup(p->w[i].llm);
}

struct an_work *an_pool_take(struct an_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct an_work *w = p->out;
    p->out = p->out_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    return w;
}

size_t an_pool_ready(struct an_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (const struct an_work *w = p->out; w && n < SIZE_MAX; w = w->next)
        n++;
    pthread_mutex_unlock(&p->mu);
    return n;
}

uint64_t an_pool_calls(struct an_pool *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->calls;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void an_pool_free(struct an_pool *p)
{
    if (!p)
        return;
    /* The clients are woken under the mutex: a worker sees `stop` only
     * under it and then frees its client (worker_main), so once the mutex
     * is let go a started worker's `llm` is its own and may be freed at
     * any moment; only the clients of workers never started are ours.
     * sp_llm_wakeup() never blocks (a non-blocking write on curl's
     * wake-up socket). */
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    for (unsigned i = 0; i < p->n; i++)
        sp_llm_wakeup(p->w[i].llm);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) {
        if (p->w[i].started)
            pthread_join(p->w[i].th, NULL);
        else
            sp_llm_free(p->w[i].llm);
    }
    for (struct an_work *lists[2] = {p->in, p->out}, **l = lists;
         l < lists + 2; l++)
        while (*l) {
            struct an_work *w = *l;
            *l = w->next;
            an_work_free(w);
        }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
