/*
 * correlate_incident.c - the incident as consumers see it: the snapshot
 * JSON published on the incidents topic (schema/incident.schema.json) and
 * the text of `socpilot incident explain`, both built from one atomic
 * read of the incident (meta hash, alert summaries, why list).
 *
 * Entities are not stored per incident: each alert summary lists its
 * entities, and the snapshot derives the deduplicated list with the
 * alerts that carry each one.  Noisy and stop-listed marks come from the
 * decisions recorded in why.
 *
 * Everything read from Redis is data: summaries and decisions are parsed
 * with the bounded parser and re-emitted field by field, never spliced.
 * The correlate stage keeps what that gave per distinct value (struct
 * corr_vcache), so a large incident's alerts are not parsed and written
 * again with every change.
 *
 * Pure functions over their arguments (a memo is its owner's: one thread
 * at a time); any thread.
 */
#include "correlate_int.h"

#include <sys/random.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inc_alert {
    const char *id, *title, *severity, *source, *detector, *provider, *status,
        *pid;
    int64_t t;
    const char **ent_type, **ent_key;   /* its entities, n_ents */
    uint32_t n_ents;
    const char *out;                /* its object as written (memo), or NULL */
    size_t out_len;
};

struct inc_entity {
    const char *key, *type, *noisy;
    uint32_t *alerts;               /* indexes into the sorted alerts */
    uint32_t n, cap;
};

struct inc_view {
    const redisReply *meta;
    struct inc_alert *alerts;
    size_t n_alerts;
    struct inc_entity *ents;
    size_t n_ents;
    struct sp_json **why;
    const struct vc_entry **why_memo;   /* each decision's memo, or NULL */
    size_t n_why;
    const char **pids;
    size_t n_pids;
};

/* How much of an incident a snapshot writes (see "snapshot JSON");
 * SIZE_MAX: no limit. */
struct write_lim {
    size_t ents, ent_alerts, why, list;
    size_t alerts;                      /* the latest ones kept */
    size_t str;                         /* bytes kept of a string */
    bool analysis;
};

static const struct write_lim lim_whole = {
    SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, true};

static const char *mget(const redisReply *meta, const char *name)
{
    for (size_t i = 0; i + 1 < meta->elements; i += 2)
        if (meta->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(meta->element[i]->str, name) == 0)
            return meta->element[i + 1]->type == REDIS_REPLY_STRING
                       ? meta->element[i + 1]->str
                       : NULL;
    return NULL;
}

static int64_t mnum(const redisReply *meta, const char *name)
{
    const char *s = mget(meta, name);
    return s ? strtoll(s, NULL, 10) : 0;
}

static int cmp_alert(const void *a, const void *b)
{
    const struct inc_alert *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_entity(const void *a, const void *b)
{
    return strcmp(((const struct inc_entity *)a)->key,
                  ((const struct inc_entity *)b)->key);
}

/* Entity table: open addressing over the keys. */
static struct inc_entity *ent_get(struct sp_arena *a, struct inc_entity **slots,
                                  size_t cap, const char *key)
{
    uint64_t h = corr_hash(CORR_HASH_INIT, key, strlen(key));
    for (size_t i = 0; i < cap; i++) {
        struct inc_entity **s = &slots[(h + i) % cap];
        if (!*s) {
            *s = sp_arena_calloc(a, sizeof(**s));
            if (*s)
                (*s)->key = key;
            return *s;
        }
        if (strcmp((*s)->key, key) == 0)
            return *s;
    }
    return NULL;
}

static bool ent_add_alert(struct sp_arena *a, struct inc_entity *e, uint32_t ai)
{
    if (e->n && e->alerts[e->n - 1] == ai)
        return true;
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 4;
        uint32_t *n = sp_arena_alloc(a, cap * sizeof(*n));
        if (!n)
            return false;
        if (e->n)
            memcpy(n, e->alerts, e->n * sizeof(*n));
        e->alerts = n;
        e->cap = cap;
    }
    e->alerts[e->n++] = ai;
    return true;
}

static void mark_noisy(struct sp_arena *a, struct inc_entity **slots,
                       size_t cap, const struct sp_json *list,
                       const char *how)
{
    sp_json_foreach(list, k) {
        if (k->type != SP_JSON_STRING)
            continue;
        struct inc_entity *e = ent_get(a, slots, cap, k->u.s);
        if (e && !e->noisy)
            e->noisy = how;
    }
}

/* ---- reading ------------------------------------------------------------ */

enum sp_err corr_snapshot_append(struct sp_redis *r, const char *prefix,
                                 const char *id, int64_t why_max,
                                 const char *mark, int64_t mark_ttl_ms)
{
    char meta[CORR_PREFIX_MAX + 100], al[CORR_PREFIX_MAX + 104],
        why[CORR_PREFIX_MAX + 104], from[24];
    snprintf(meta, sizeof(meta), "%si:%s", prefix, id);
    snprintf(al, sizeof(al), "%s:al", meta);
    snprintf(why, sizeof(why), "%s:why", meta);
    snprintf(from, sizeof(from), "%lld",
             why_max < 0 ? 0LL : -(long long)SP_MAX(why_max, 1));
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    size_t ml[] = {5}, el[] = {4};
    const char *hm[] = {"HGETALL", meta}, *ha[] = {"HGETALL", al};
    size_t hml[] = {7, strlen(meta)}, hal[] = {7, strlen(al)};
    const char *lr[] = {"LRANGE", why, from, "-1"};
    size_t lrl[] = {6, strlen(why), strlen(from), 2};
    if (why_max == 0) {
        lr[2] = "1";            /* an empty range keeps the reply's shape */
        lr[3] = "0";
        lrl[2] = lrl[3] = 1;
    }
    enum sp_err e;
    if (mark) {
        /* Outside the transaction: a refused mark (Redis over its
         * maxmemory) must not keep the snapshot from going out. */
        char pub[CORR_PREFIX_MAX + 100], at[24], ttl[24];
        snprintf(pub, sizeof(pub), "%spub:%s", prefix, id);
        snprintf(at, sizeof(at), "%lld", (long long)(sp_wall_us() / 1000));
        snprintf(ttl, sizeof(ttl), "%lld", (long long)mark_ttl_ms);
        const char *za[] = {"ZADD", pub, at, mark},
                   *px[] = {"PEXPIRE", pub, ttl};
        size_t zal[] = {4, strlen(pub), strlen(at), strlen(mark)},
               pxl[] = {7, strlen(pub), strlen(ttl)};
        if ((e = sp_redis_append(r, 4, za, zal)) ||
            (e = sp_redis_append(r, 3, px, pxl)))
            return e;
    }
    if ((e = sp_redis_append(r, 1, multi, ml)) ||
        (e = sp_redis_append(r, 2, hm, hml)) ||
        (e = sp_redis_append(r, 2, ha, hal)) ||
        (e = sp_redis_append(r, 4, lr, lrl)) ||
        (e = sp_redis_append(r, 1, exec, el)))
        return e;
    return SP_OK;
}

void corr_mark_new(char *out)
{
    /* This process's part drawn once (a restarted instance must not
     * repeat an old one's marks), then a counter. */
    static uint64_t base;
    static uint64_t seq;
    uint64_t b = __atomic_load_n(&base, __ATOMIC_ACQUIRE);
    if (b == 0) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r) || r == 0)
            r = (((uint64_t)getpid() << 32) ^ (uint64_t)sp_wall_us()) | 1;
        uint64_t zero = 0;
        if (!__atomic_compare_exchange_n(&base, &zero, r, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            r = zero;
        b = r;
    }
    uint64_t n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    snprintf(out, CORR_MARK_MAX, "%016llx.%llx", (unsigned long long)b,
             (unsigned long long)n);
}

enum sp_err corr_snapshot_read(struct sp_redis *r, bool marked,
                               redisReply **out)
{
    enum sp_err bad = SP_OK;
    *out = NULL;
    int n = CORR_SNAPSHOT_REPLIES - (marked ? 0 : CORR_SNAPSHOT_MARKS);
    for (int i = 0; i < n; i++) {
        redisReply *rep;
        enum sp_err e = sp_redis_read(r, &rep);
        if (e)
            return e;
        /* A mark refused is a repair missed, not a snapshot lost. */
        enum sp_err re = marked && i < CORR_SNAPSHOT_MARKS
                             ? SP_OK
                             : sp_redis_reply_err(rep);
        if (re && !bad)
            bad = re;
        if (i == n - 1 && !bad)
            *out = rep;
        else
            freeReplyObject(rep);
    }
    return bad;
}

/* ---- memo of parsed and written values ---------------------------------- */

/*
 * An incident's alert summaries and decisions are read again with each of
 * its changes, and a large incident changes often: parsing and writing
 * them every time made a snapshot cost O(alerts) per change, the largest
 * client cost of correlation at scale.  The memo keeps, per distinct value
 * (its exact bytes, so it is never stale), what parsing gave (a summary's
 * fields and entities, a decision's tree) and the object written from it.
 *
 * Two generations of max / 2 bytes each: new values go to the current one;
 * when it is full, at the start of a snapshot (never during one, whose
 * pointers must stay valid), the older one is dropped and a new one begins.
 * Values still in use are found in the older one meanwhile, so an incident
 * too large for one generation does not empty the memo at every snapshot.
 */
struct vc_entry {
    uint64_t h;
    const char *raw;
    size_t len;
    uint8_t gen;                    /* 0 or 1: which arena holds it */
    bool alert;                     /* a summary (else a decision) */
    bool ok;                        /* ours: parsed (else left out) */
    struct inc_alert x;             /* summaries */
    struct sp_json *doc;            /* decisions */
    const char *out;                /* the object written (decisions: with
                                       no list cut), or NULL: write it */
    size_t out_len;
};

/* How summaries and decisions are parsed; a larger value is never ours. */
static const struct sp_json_limits value_lim = {(size_t)1 << 20, 16, 100000};

struct corr_vcache {
    struct sp_arena gen[2];         /* entries and what they keep */
    uint8_t cur;                    /* the generation new entries go to */
    struct sp_arena scratch;        /* a summary's tree, while kept */
    struct vc_entry **slots;
    size_t cap, n, max;
    struct sp_buf tmp;
    uint64_t hits, misses, drops;
};

static void write_alert(struct sp_jw *w, const struct inc_alert *x,
                        const struct write_lim *lim);
static void write_why(struct sp_jw *w, const struct sp_json *d,
                      const struct write_lim *lim);
static int alert_from(const struct sp_json *d, struct inc_alert *x,
                      struct sp_arena *a, bool copy);

struct corr_vcache *corr_vcache_new(size_t max_bytes)
{
    struct corr_vcache *vc = calloc(1, sizeof(*vc));
    if (!vc)
        return NULL;
    sp_arena_init(&vc->gen[0], 0);
    sp_arena_init(&vc->gen[1], 0);
    sp_arena_init(&vc->scratch, 0);
    sp_buf_init(&vc->tmp, 0);
    vc->max = max_bytes;
    return vc;
}

void corr_vcache_free(struct corr_vcache *vc)
{
    if (!vc)
        return;
    sp_arena_fini(&vc->gen[0]);
    sp_arena_fini(&vc->gen[1]);
    sp_arena_fini(&vc->scratch);
    sp_buf_fini(&vc->tmp);
    free(vc->slots);
    free(vc);
}

/* Bytes the entries hold (both generations and the table); the scratch
 * arena and buffer, a value's worth each, come on top. */
static size_t vc_bytes(const struct corr_vcache *vc)
{
    return vc->gen[0].used + vc->gen[1].used + vc->cap * sizeof(*vc->slots);
}

void corr_vcache_stats(const struct corr_vcache *vc, uint64_t *hits,
                       uint64_t *misses, uint64_t *drops, size_t *bytes)
{
    *hits = vc ? vc->hits : 0;
    *misses = vc ? vc->misses : 0;
    *drops = vc ? vc->drops : 0;
    *bytes = vc ? vc_bytes(vc) + vc->scratch.used + vc->tmp.cap : 0;
}

/* Puts e in the table (which has room). */
static void vc_link(struct vc_entry **slots, size_t cap, struct vc_entry *e)
{
    size_t j = (size_t)e->h & (cap - 1);
    while (slots[j])
        j = (j + 1) & (cap - 1);
    slots[j] = e;
}

/* The table again with cap slots, without the entries of generation drop
 * (-1: none).  False when out of memory (the table is then unchanged). */
static bool vc_rehash(struct corr_vcache *vc, size_t cap, int drop)
{
    struct vc_entry **slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < vc->cap; i++) {
        struct vc_entry *e = vc->slots[i];
        if (e && e->gen != drop) {
            vc_link(slots, cap, e);
            n++;
        }
    }
    free(vc->slots);
    vc->slots = slots;
    vc->cap = cap;
    vc->n = n;
    return true;
}

/* Before a snapshot: when the current generation is full, the older one
 * is dropped (its entries leave the table) and a new one begins. */
static void vc_begin(struct corr_vcache *vc)
{
    if (!vc || vc->gen[vc->cur].used + vc->cap * sizeof(*vc->slots) / 2 <
                   vc->max / 2)
        return;
    uint8_t old = (uint8_t)(vc->cur ^ 1);
    if (!vc_rehash(vc, vc->cap, old)) {     /* out of memory: empty */
        free(vc->slots);
        vc->slots = NULL;
        vc->cap = vc->n = 0;
    }
    sp_arena_reset(&vc->gen[old]);
    vc->cur = old;
    vc->drops++;
}

/* The memo's hash: eight bytes a step (multiply-xorshift), not FNV's one. */
static uint64_t vc_hash(const char *p, size_t n, uint64_t seed)
{
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t h = seed ^ (n * k);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * k;
        h ^= h >> 29;
    }
    uint64_t t = 0;
    memcpy(&t, p, n);
    h = (h ^ t) * k;
    return h ^ (h >> 32);
}

/*
 * The memo of one value (a summary when alert, else a decision): found,
 * or parsed, written and kept.  NULL when it cannot be kept (no room, too
 * large, out of memory): the caller then parses into its own arena.  An
 * entry whose value is not ours has ok false: the caller leaves it out,
 * as it would.
 */
static const struct vc_entry *vc_get(struct corr_vcache *vc, const char *raw,
                                     size_t len, bool alert)
{
    uint64_t h = vc_hash(raw, len, alert ? 1 : 2);
    if (vc->cap) {
        for (size_t j = (size_t)h & (vc->cap - 1); vc->slots[j];
             j = (j + 1) & (vc->cap - 1)) {
            const struct vc_entry *e = vc->slots[j];
            if (e->h == h && e->len == len && e->alert == alert &&
                memcmp(e->raw, raw, len) == 0) {
                vc->hits++;
                return e;
            }
        }
    }
    vc->misses++;
    struct sp_arena *a = &vc->gen[vc->cur];
    /* Each generation has half: one large snapshot cannot fill the memo
     * past the point where the next one would switch generations. */
    if (len > value_lim.max_bytes ||
        a->used + vc->cap * sizeof(*vc->slots) / 2 >= vc->max / 2 ||
        ((vc->n + 1) * 2 > vc->cap &&
         !vc_rehash(vc, vc->cap ? vc->cap * 2 : 1024, -1)))
        return NULL;
    struct vc_entry *e = sp_arena_calloc(a, sizeof(*e));
    char *copy = e ? sp_arena_strndup(a, raw, len) : NULL;
    if (!copy)
        return NULL;
    e->h = h;
    e->raw = copy;
    e->len = len;
    e->gen = vc->cur;
    e->alert = alert;
    /* A summary keeps its fields, not its tree; a decision its tree. */
    struct sp_json_error jerr;
    sp_arena_reset(&vc->scratch);
    struct sp_json *d = sp_json_parse(alert ? &vc->scratch : a, raw, len,
                                      &value_lim, &jerr);
    if (!d && jerr.code == SP_JSON_E_NOMEM)
        return NULL;
    int got = d && d->type == SP_JSON_OBJECT
                  ? (alert ? alert_from(d, &e->x, a, true) : 1) : 0;
    if (got < 0)
        return NULL;                /* out of memory: not kept, not "not ours" */
    e->ok = got == 1;
    if (e->ok) {
        e->doc = alert ? NULL : d;
        /* Written once; when that fails (the written form can be larger
         * than the value), each snapshot writes it. */
        sp_buf_reset(&vc->tmp);
        vc->tmp.overflow = false;
        struct sp_jw w;
        sp_jw_init(&w, &vc->tmp);
        if (alert)
            write_alert(&w, &e->x, &lim_whole);
        else
            write_why(&w, d, &lim_whole);
        char *out = sp_jw_ok(&w)
            ? sp_arena_strndup(a, vc->tmp.data, vc->tmp.len) : NULL;
        if (out) {
            e->out = out;
            e->out_len = vc->tmp.len;
        }
    }
    vc_link(vc->slots, vc->cap, e);
    vc->n++;
    return e;
}

/* A string of d, copied into a when copy (NULL stays NULL). */
static const char *field(const struct sp_json *d, const char *name,
                         struct sp_arena *a, bool copy, bool *nomem)
{
    const char *v = sp_json_str(d, name);
    if (!v || !copy)
        return v;
    const char *c = sp_arena_strdup(a, v);
    if (!c)
        *nomem = true;
    return c;
}

/* A summary's fields: strings d's, or copies in a when copy; the entity
 * pairs from a.  1, or 0 when it has no id, -1 when out of memory. */
static int alert_from(const struct sp_json *d, struct inc_alert *x,
                      struct sp_arena *a, bool copy)
{
    bool nomem = false;
    memset(x, 0, sizeof(*x));
    x->id = field(d, "id", a, copy, &nomem);
    if (!x->id)
        return nomem ? -1 : 0;
    x->title = field(d, "title", a, copy, &nomem);
    x->severity = field(d, "severity", a, copy, &nomem);
    x->source = field(d, "source", a, copy, &nomem);
    x->detector = field(d, "detector", a, copy, &nomem);
    x->provider = field(d, "provider", a, copy, &nomem);
    x->status = field(d, "status", a, copy, &nomem);
    x->pid = field(d, "provider_incident_id", a, copy, &nomem);
    sp_json_int(sp_json_get(d, "t"), &x->t);
    /* "ents" is a list of [type, key] pairs (an object's members count
     * the same way, as sp_json_foreach walks both). */
    const struct sp_json *ents = sp_json_get(d, "ents");
    size_t n = ents && (ents->type == SP_JSON_ARRAY ||
                        ents->type == SP_JSON_OBJECT) ? ents->n : 0;
    x->ent_type = sp_arena_alloc(a, (n + 1) * sizeof(*x->ent_type));
    x->ent_key = sp_arena_alloc(a, (n + 1) * sizeof(*x->ent_key));
    if (!x->ent_type || !x->ent_key)
        return -1;
    if (n) {
        sp_json_foreach(ents, pair) {
            if (pair->type != SP_JSON_ARRAY || pair->n != 2)
                continue;
            const struct sp_json *ty = pair->u.child, *k = ty->next;
            if (ty->type != SP_JSON_STRING || k->type != SP_JSON_STRING)
                continue;
            const char *tc = copy ? sp_arena_strdup(a, ty->u.s) : ty->u.s;
            const char *kc = copy ? sp_arena_strdup(a, k->u.s) : k->u.s;
            if (!tc || !kc)
                return -1;
            x->ent_type[x->n_ents] = tc;
            x->ent_key[x->n_ents++] = kc;
        }
    }
    return nomem ? -1 : 1;
}

/* Parses the reply into v (memory from a, and from vc when given).
 * SP_ERR_NOTFOUND: no incident. */
static enum sp_err view_build(struct sp_arena *a, const redisReply *rep,
                              struct inc_view *v, struct corr_vcache *vc)
{
    memset(v, 0, sizeof(*v));
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return SP_ERR_NOTFOUND;
    if (rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_ARRAY ||
        rep->element[1]->type != REDIS_REPLY_ARRAY ||
        rep->element[2]->type != REDIS_REPLY_ARRAY)
        return SP_ERR_INVALID;
    if (rep->element[0]->elements == 0)
        return SP_ERR_NOTFOUND;     /* no meta: gone (expired) */
    v->meta = rep->element[0];
    const redisReply *al = rep->element[1], *why = rep->element[2];

    size_t na = al->elements / 2, n_refs = 0;
    v->alerts = sp_arena_calloc(a, (na + 1) * sizeof(*v->alerts));
    v->pids = sp_arena_calloc(a, (na + 1) * sizeof(*v->pids));
    if (!v->alerts || !v->pids)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < na; i++) {
        const redisReply *val = al->element[2 * i + 1];
        if (val->type != REDIS_REPLY_STRING)
            continue;
        struct inc_alert *x = &v->alerts[v->n_alerts];
        const struct vc_entry *m = vc ? vc_get(vc, val->str, val->len, true) : NULL;
        if (m) {
            if (!m->ok)
                continue;       /* not ours: leave it out */
            *x = m->x;
            x->out = m->out;
            x->out_len = m->out_len;
        } else {
            struct sp_json_error jerr;
            struct sp_json *d = sp_json_parse(a, val->str, val->len, &value_lim, &jerr);
            if (!d && jerr.code == SP_JSON_E_NOMEM)
                return SP_ERR_NOMEM;
            int got = d && d->type == SP_JSON_OBJECT ? alert_from(d, x, a, false) : 0;
            if (got < 0)
                return SP_ERR_NOMEM;
            if (got == 0)
                continue;       /* not ours: leave it out */
        }
        n_refs += x->n_ents;
        v->n_alerts++;
        if (x->pid) {
            bool seen = false;
            for (size_t j = 0; j < v->n_pids && !seen; j++)
                seen = strcmp(v->pids[j], x->pid) == 0;
            if (!seen)
                v->pids[v->n_pids++] = x->pid;
        }
    }
    qsort(v->alerts, v->n_alerts, sizeof(*v->alerts), cmp_alert);

    size_t cap = n_refs * 2 + 16;
    for (size_t i = 0; i < why->elements; i++)
        cap += 8;
    struct inc_entity **slots = sp_arena_calloc(a, cap * sizeof(*slots));
    if (!slots)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < v->n_alerts; i++) {
        const struct inc_alert *x = &v->alerts[i];
        for (uint32_t j = 0; j < x->n_ents; j++) {
            struct inc_entity *e = ent_get(a, slots, cap, x->ent_key[j]);
            if (!e)
                return SP_ERR_NOMEM;
            if (!e->type)
                e->type = x->ent_type[j];
            if (!ent_add_alert(a, e, (uint32_t)i))
                return SP_ERR_NOMEM;
        }
    }

    v->why = sp_arena_calloc(a, (why->elements + 1) * sizeof(*v->why));
    v->why_memo = sp_arena_calloc(a, (why->elements + 1) * sizeof(*v->why_memo));
    if (!v->why || !v->why_memo)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < why->elements; i++) {
        const redisReply *w = why->element[i];
        if (w->type != REDIS_REPLY_STRING)
            continue;
        const struct vc_entry *m = vc ? vc_get(vc, w->str, w->len, false) : NULL;
        struct sp_json *d;
        if (m) {
            d = m->ok ? m->doc : NULL;
        } else {
            struct sp_json_error jerr;
            d = sp_json_parse(a, w->str, w->len, &value_lim, &jerr);
            if (!d && jerr.code == SP_JSON_E_NOMEM)
                return SP_ERR_NOMEM;
        }
        if (!d || d->type != SP_JSON_OBJECT)
            continue;
        v->why_memo[v->n_why] = m;
        v->why[v->n_why++] = d;
    }
    /* Only entities some alert carries are listed; a noisy mark on an
     * entity that left with a merge must not add it back. */
    for (size_t i = 0; i < v->n_why; i++) {
        struct inc_entity **probe = slots;
        mark_noisy(a, probe, cap, sp_json_get(v->why[i], "stoplisted"),
                   "stoplist");
        mark_noisy(a, probe, cap, sp_json_get(v->why[i], "noisy"), "auto");
    }
    v->ents = sp_arena_calloc(a, (cap + 1) * sizeof(*v->ents));
    if (!v->ents)
        return SP_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++)
        if (slots[i] && slots[i]->n)
            v->ents[v->n_ents++] = *slots[i];
    qsort(v->ents, v->n_ents, sizeof(*v->ents), cmp_entity);
    return SP_OK;
}

/* ---- snapshot JSON ------------------------------------------------------- */

/*
 * A snapshot must always fit in correlate.snapshot_max: one that does not
 * is never published, its outbox entry never acknowledged, and consumers
 * keep a stale version for good.  Alerts only need to share an entity to
 * grow an incident, and each brings strings up to decode.max_string, so
 * the attempts below cut more and more (write_lim): the whole incident;
 * every string from alerts or the meta shortened (ending in CUT_MARK) and
 * lists bounded; the latest alerts and decisions only; and last a minimal
 * form, the header, counts and status, whose size has a bound for any
 * input (MIN_FORM_MAX, below the smallest snapshot_max).  Every cut one
 * says "truncated": true, and alerts_total stays the incident's count.
 */
#define CUT_MARK "\xe2\x80\xa6"         /* U+2026: this string was cut */
#define CUT_MARK_LEN 3
#define CUT_STR_MAX 1024                /* the longest a cut string keeps */
#define MIN_STR 64                      /* strings of the minimal form */
#define MIN_LIST 4                      /* its provider and merged ids */
/* The minimal form: the incident id (ours, < 80 bytes); 9 strings of the
 * meta (tenant, status, closed_reason, title, rule, flood key, previous,
 * continued_from, merged_into) and 2 * MIN_LIST ids, each escaped at
 * worst 6 bytes per byte; the fixed keys, numbers and times (under 1 KiB,
 * counted twice). */
#define MIN_STR_OUT (6 * (MIN_STR + CUT_MARK_LEN) + 2)
#define MIN_FORM_MAX \
    (6 * 80 + 2 + (9 + 2 * MIN_LIST) * MIN_STR_OUT + 2048)
_Static_assert(MIN_FORM_MAX <= CORR_SNAPSHOT_MIN,
               "the minimal snapshot must fit the smallest snapshot_max");

static const struct write_lim lims[] = {
    {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, true},
    {500, 20, 100, 20, SIZE_MAX, CUT_STR_MAX, true},
    {50, 5, 10, 5, 20, 256, true},
    {0, 0, 0, MIN_LIST, 0, MIN_STR, false},
};

/* s[0..n) as a JSON string, cut to max bytes (at a character boundary)
 * and marked when longer. */
static void jw_cutn(struct sp_jw *w, const char *s, size_t n, size_t max)
{
    if (n <= max) {
        sp_jw_strn(w, s, n);
        return;
    }
    char tmp[CUT_STR_MAX + CUT_MARK_LEN];
    size_t k = SP_MIN(max, (size_t)CUT_STR_MAX);
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(tmp, s, k);
    memcpy(tmp + k, CUT_MARK, CUT_MARK_LEN);
    sp_jw_strn(w, tmp, k + CUT_MARK_LEN);
}

static void jw_cut(struct sp_jw *w, const char *s, size_t max)
{
    jw_cutn(w, s, strlen(s), max);
}

static void jw_kcut(struct sp_jw *w, const char *key, const char *s,
                    size_t max)
{
    sp_jw_key(w, key);
    jw_cut(w, s, max);
}

static void jw_kcut_opt(struct sp_jw *w, const char *key, const char *s,
                        size_t max)
{
    if (s)
        jw_kcut(w, key, s, max);
}

static void jw_ms(struct sp_jw *w, const char *key, int64_t ms)
{
    sp_jw_ktime(w, key, ms > 0 ? ms * 1000 : SP_TIME_NONE);
}

static void jw_str_or_null(struct sp_jw *w, const char *key, const char *s,
                           size_t max)
{
    sp_jw_key(w, key);
    if (s && *s)
        jw_cut(w, s, max);
    else
        sp_jw_null(w);
}

static void jw_strings(struct sp_jw *w, const char *key,
                       const struct sp_json *list, const struct write_lim *lim)
{
    if (!list || list->type != SP_JSON_ARRAY || list->n == 0)
        return;
    sp_jw_key(w, key);
    sp_jw_arr_open(w);
    size_t n = 0;
    sp_json_foreach(list, it) {
        if (n++ >= lim->list)
            break;
        if (it->type == SP_JSON_STRING)
            jw_cut(w, it->u.s, lim->str);
    }
    sp_jw_arr_close(w);
}

static void jw_json_ms(struct sp_jw *w, const char *key,
                       const struct sp_json *v)
{
    int64_t ms;
    if (sp_json_int(v, &ms) && ms > 0)
        sp_jw_ktime(w, key, ms * 1000);
}

/* An alert of the incident, from its summary. */
static void write_alert(struct sp_jw *w, const struct inc_alert *x,
                        const struct write_lim *lim)
{
    size_t max = lim->str;
    sp_jw_obj_open(w);
    jw_kcut(w, "id", x->id, max);
    jw_kcut(w, "title", x->title ? x->title : "", max);
    jw_kcut(w, "severity", x->severity ? x->severity : "informational", max);
    jw_ms(w, "time", x->t);
    jw_kcut_opt(w, "source", x->source, max);
    jw_kcut_opt(w, "detector", x->detector, max);
    jw_kcut_opt(w, "provider", x->provider, max);
    jw_kcut_opt(w, "status", x->status, max);
    jw_kcut_opt(w, "provider_incident_id", x->pid, max);
    sp_jw_obj_close(w);
}

/* A recorded decision, re-emitted with the contract's names. */
static void write_why(struct sp_jw *w, const struct sp_json *d,
                      const struct write_lim *lim)
{
    size_t max = lim->str;
    sp_jw_obj_open(w);
    const char *how = sp_json_str(d, "how");
    jw_kcut(w, "how", how ? how : "unknown", max);
    jw_kcut_opt(w, "alert", sp_json_str(d, "alert"), max);
    jw_kcut_opt(w, "incident", sp_json_str(d, "incident"), max);
    jw_json_ms(w, "at", sp_json_get(d, "at"));
    jw_json_ms(w, "processed_at", sp_json_get(d, "ts"));
    jw_kcut_opt(w, "rule", sp_json_str(d, "rule"), max);
    jw_kcut_opt(w, "mode", sp_json_str(d, "mode"), max);
    jw_strings(w, "entities", sp_json_get(d, "via"), lim);
    const struct sp_json *merged = sp_json_get(d, "merged");
    if (merged && merged->type == SP_JSON_ARRAY && merged->n) {
        sp_jw_key(w, "merged");
        sp_jw_arr_open(w);
        size_t n = 0;
        sp_json_foreach(merged, m) {
            const char *inc = sp_json_str(m, "incident");
            if (!inc)
                continue;
            if (n++ >= lim->list)
                break;
            sp_jw_obj_open(w);
            jw_kcut(w, "incident", inc, max);
            jw_strings(w, "entities", sp_json_get(m, "via"), lim);
            sp_jw_obj_close(w);
        }
        sp_jw_arr_close(w);
    }
    jw_strings(w, "merge_skipped", sp_json_get(d, "merge_skipped"), lim);
    jw_strings(w, "noisy", sp_json_get(d, "noisy"), lim);
    jw_strings(w, "stoplisted", sp_json_get(d, "stoplisted"), lim);
    jw_kcut_opt(w, "previous", sp_json_str(d, "previous"), max);
    jw_kcut_opt(w, "continued_from", sp_json_str(d, "continued_from"), max);
    jw_kcut_opt(w, "provider_incident_id",
                sp_json_str(d, "provider_incident"), max);
    jw_kcut_opt(w, "flood", sp_json_str(d, "flood"), max);
    jw_kcut_opt(w, "by", sp_json_str(d, "by"), max);
    sp_jw_obj_close(w);
}

static const char *closed_reason(const char *cb)
{
    if (!cb || !*cb)
        return NULL;
    if (strcmp(cb, "alerts") == 0)
        return "alerts_resolved";
    return cb;                          /* merged | cli */
}

/* The header: what the incident is, its status, times and ids. */
static void write_header(struct sp_jw *w, const struct inc_view *v,
                         const char *id, const struct write_lim *lim)
{
    const redisReply *m = v->meta;
    size_t max = lim->str;
    int64_t sev = mnum(m, "sev");
    if (sev < 0 || sev > SP_SEV_HIGH)
        sev = 0;
    const char *st = mget(m, "st");
    sp_jw_kstr(w, "schema_version", "1");
    sp_jw_kstr(w, "id", id);
    jw_kcut(w, "tenant", mget(m, "ten") ? mget(m, "ten") : "", max);
    sp_jw_kint(w, "version", SP_MAX(mnum(m, "v"), 1));
    jw_kcut(w, "status", st ? st : "new", max);
    jw_str_or_null(w, "closed_reason", closed_reason(mget(m, "cb")), max);
    sp_jw_kstr(w, "severity", sp_severity_name((enum sp_severity)sev));
    jw_kcut(w, "title", mget(m, "ti") ? mget(m, "ti") : "", max);
    jw_ms(w, "first_seen", mnum(m, "fs"));
    jw_ms(w, "last_seen", mnum(m, "ls"));
    jw_ms(w, "created", mnum(m, "cr"));
    jw_ms(w, "updated", mnum(m, "up"));
    jw_kcut_opt(w, "rule", mget(m, "rule"), max);
    sp_jw_key(w, "flood");
    if (mget(m, "fl")) {
        sp_jw_obj_open(w);
        jw_kcut(w, "key", mget(m, "fl"), max);
        sp_jw_obj_close(w);
    } else {
        sp_jw_null(w);
    }
    sp_jw_key(w, "provider_incident_ids");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < v->n_pids && i < lim->list; i++)
        jw_cut(w, v->pids[i], max);
    sp_jw_arr_close(w);
    sp_jw_kint(w, "alerts_total", (int64_t)v->n_alerts);
}

/* The latest lim->alerts alerts; a whole one as its memo wrote it. */
static void write_alerts(struct sp_jw *w, const struct inc_view *v,
                         const struct write_lim *lim)
{
    sp_jw_key(w, "alerts");
    sp_jw_arr_open(w);
    size_t from = v->n_alerts > lim->alerts ? v->n_alerts - lim->alerts : 0;
    for (size_t i = from; i < v->n_alerts; i++) {
        const struct inc_alert *x = &v->alerts[i];
        if (x->out && lim->str == SIZE_MAX)
            sp_jw_raw(w, x->out, x->out_len);   /* written by write_alert */
        else
            write_alert(w, x, lim);
    }
    sp_jw_arr_close(w);
}

static void write_entities(struct sp_jw *w, const struct inc_view *v,
                           const struct write_lim *lim)
{
    sp_jw_key(w, "entities");
    sp_jw_arr_open(w);
    for (size_t i = 0; i < v->n_ents && i < lim->ents; i++) {
        const struct inc_entity *e = &v->ents[i];
        sp_jw_obj_open(w);
        jw_kcut(w, "key", e->key, lim->str);
        jw_kcut(w, "type", e->type ? e->type : "other", lim->str);
        sp_jw_key(w, "alerts");
        sp_jw_arr_open(w);
        for (uint32_t j = 0; j < e->n && j < lim->ent_alerts; j++)
            jw_cut(w, v->alerts[e->alerts[j]].id, lim->str);
        sp_jw_arr_close(w);
        sp_jw_kstr_opt(w, "noisy", e->noisy);
        sp_jw_obj_close(w);
    }
    sp_jw_arr_close(w);
}

static void write_links(struct sp_jw *w, const struct inc_view *v,
                        const struct write_lim *lim)
{
    const redisReply *m = v->meta;
    sp_jw_key(w, "links");
    sp_jw_obj_open(w);
    jw_str_or_null(w, "previous", mget(m, "prev"), lim->str);
    jw_str_or_null(w, "continued_from", mget(m, "cont"), lim->str);
    sp_jw_key(w, "merged");
    sp_jw_arr_open(w);
    const char *mg = mget(m, "mg");
    size_t n = 0;
    for (const char *p = mg; p && *p && n < lim->list;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l) {
            jw_cutn(w, p, l, lim->str);
            n++;
        }
        p = c ? c + 1 : p + l;
    }
    sp_jw_arr_close(w);
    sp_jw_obj_close(w);
    jw_str_or_null(w, "merged_into", mget(m, "mi"), lim->str);
}

/* The latest lim->why decisions; a whole one as its memo wrote it. */
static void write_whys(struct sp_jw *w, const struct inc_view *v,
                       const struct write_lim *lim)
{
    sp_jw_key(w, "why");
    sp_jw_arr_open(w);
    size_t from = v->n_why > lim->why ? v->n_why - lim->why : 0;
    for (size_t i = from; i < v->n_why; i++) {
        const struct vc_entry *memo = v->why_memo[i];
        if (memo && memo->out && lim->list == SIZE_MAX && lim->str == SIZE_MAX)
            sp_jw_raw(w, memo->out, memo->out_len);   /* written by write_why */
        else
            write_why(w, v->why[i], lim);
    }
    sp_jw_arr_close(w);
}

static void write_snapshot(struct sp_jw *w, const struct inc_view *v,
                           const char *id, const struct write_lim *lim,
                           bool truncated)
{
    const redisReply *m = v->meta;
    sp_jw_obj_open(w);
    write_header(w, v, id, lim);
    write_alerts(w, v, lim);
    write_entities(w, v, lim);
    write_links(w, v, lim);
    write_whys(w, v, lim);
    sp_jw_kbool(w, "truncated", truncated);
    /* Sections later stages fill. */
    sp_jw_key(w, "scripts");
    sp_jw_arr_open(w);
    sp_jw_arr_close(w);
    /* The analyze stage stores its latest result in the meta hash ("an",
     * written by our own scripts, valid JSON), so every republish keeps it;
     * the minimal form leaves it out (it has no bound). */
    sp_jw_key(w, "analysis");
    const char *an = mget(m, "an");
    if (an && *an && lim->analysis)
        sp_jw_raw(w, an, strlen(an));
    else
        sp_jw_null(w);
    sp_jw_key(w, "guidance");
    sp_jw_arr_open(w);
    sp_jw_arr_close(w);
    sp_jw_key(w, "ticket");
    sp_jw_null(w);
    sp_jw_obj_close(w);
}

enum sp_err corr_incident_write(const redisReply *rep, const char *id,
                                struct sp_buf *out, size_t max_bytes,
                                int64_t *version, struct corr_vcache *vc)
{
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct inc_view v;
    vc_begin(vc);
    enum sp_err e = view_build(&a, rep, &v, vc);
    if (e)
        goto out;
    *version = SP_MAX(mnum(v.meta, "v"), 1);
    size_t saved_max = out->max;
    out->max = max_bytes;
    e = SP_ERR_LIMIT;
    for (size_t i = 0; i < SP_ARRAY_SIZE(lims); i++) {
        sp_buf_reset(out);
        out->overflow = false;
        struct sp_jw w;
        sp_jw_init(&w, out);
        write_snapshot(&w, &v, id, &lims[i], i > 0);
        if (sp_jw_ok(&w)) {
            e = SP_OK;
            break;
        }
    }
    out->max = saved_max;
out:
    sp_arena_fini(&a);
    return e;
}

/* ---- explain ------------------------------------------------------------- */

/* Untrusted text for a terminal: control bytes become '?'. */
static void put_safe(struct sp_buf *b, const char *s)
{
    for (size_t i = 0; s && s[i] && i < 2000; i++) {
        unsigned char c = (unsigned char)s[i];
        sp_buf_putc(b, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
    }
}

static void put_list(struct sp_buf *b, const struct sp_json *list)
{
    size_t n = 0;
    sp_json_foreach(list, it) {
        if (it->type != SP_JSON_STRING)
            continue;
        if (n++)
            sp_buf_puts(b, ", ");
        put_safe(b, it->u.s);
    }
}

static void put_time(struct sp_buf *b, const struct sp_json *v)
{
    int64_t ms;
    char tmp[32];
    if (sp_json_int(v, &ms) && ms > 0) {
        sp_time_format(ms * 1000, tmp);
        sp_buf_puts(b, tmp);
    } else {
        sp_buf_puts(b, "-");
    }
}

static void explain_why(struct sp_buf *b, const struct sp_json *d,
                        const char *id)
{
    const char *how = sp_json_str(d, "how");
    const char *alert = sp_json_str(d, "alert");
    const char *inc = sp_json_str(d, "incident");
    sp_buf_puts(b, "  ");
    put_time(b, sp_json_get(d, alert ? "at" : "ts"));
    sp_buf_puts(b, "  ");
    if (alert) {
        sp_buf_puts(b, "alert ");
        put_safe(b, alert);
        sp_buf_puts(b, " ");
    }
    if (inc && strcmp(inc, id) != 0) {
        sp_buf_puts(b, "(in ");
        put_safe(b, inc);
        sp_buf_puts(b, ") ");
    }
    if (!how)
        how = "?";
    if (strcmp(how, "new") == 0) {
        sp_buf_puts(b, "opened the incident: no open incident shared a "
                       "correlating entity within the window");
    } else if (strcmp(how, "entity") == 0) {
        sp_buf_puts(b, "joined via ");
        put_list(b, sp_json_get(d, "via"));
    } else if (strcmp(how, "group") == 0) {
        sp_buf_puts(b, "joined: same entities and fields (mode all)");
    } else if (strcmp(how, "provider") == 0) {
        sp_buf_puts(b, "joined provider incident ");
        put_safe(b, sp_json_str(d, "provider_incident"));
    } else if (strcmp(how, "flood") == 0) {
        sp_buf_puts(b, "collapsed into the flood incident for \"");
        put_safe(b, sp_json_str(d, "flood"));
        sp_buf_puts(b, "\"");
    } else if (strcmp(how, "continuation") == 0) {
        sp_buf_puts(b, "opened a continuation of full incident ");
        put_safe(b, sp_json_str(d, "continued_from"));
    } else if (strcmp(how, "after_closed") == 0) {
        sp_buf_puts(b, "opened a new incident: the matching one (");
        put_safe(b, sp_json_str(d, "previous"));
        sp_buf_puts(b, ") is closed");
    } else if (strcmp(how, "update") == 0) {
        sp_buf_puts(b, "updated (newer version of the alert)");
    } else if (strcmp(how, "closed") == 0 || strcmp(how, "reopened") == 0) {
        sp_buf_puts(b, how);
        sp_buf_puts(b, " by ");
        put_safe(b, sp_json_str(d, "by"));
    } else {
        put_safe(b, how);
    }
    const char *rule = sp_json_str(d, "rule"), *mode = sp_json_str(d, "mode");
    if (rule && strcmp(how, "update") != 0) {
        sp_buf_puts(b, " [rule ");
        put_safe(b, rule);
        sp_buf_puts(b, ", mode ");
        put_safe(b, mode);
        sp_buf_puts(b, "]");
    }
    sp_buf_putc(b, '\n');
    sp_json_foreach(sp_json_get(d, "merged"), m) {
        sp_buf_puts(b, "        merged ");
        put_safe(b, sp_json_str(m, "incident"));
        sp_buf_puts(b, " into this incident (bridged by ");
        put_list(b, sp_json_get(m, "via"));
        sp_buf_puts(b, ")\n");
    }
    const struct sp_json *l;
    if ((l = sp_json_get(d, "merge_skipped")) && l->n) {
        sp_buf_puts(b, "        not merged (would pass max_alerts): ");
        put_list(b, l);
        sp_buf_putc(b, '\n');
    }
    if ((l = sp_json_get(d, "noisy")) && l->n) {
        sp_buf_puts(b, "        ignored, noisy (automatic threshold): ");
        put_list(b, l);
        sp_buf_putc(b, '\n');
    }
    if ((l = sp_json_get(d, "stoplisted")) && l->n) {
        sp_buf_puts(b, "        ignored, on the stop-list: ");
        put_list(b, l);
        sp_buf_putc(b, '\n');
    }
}

enum sp_err corr_incident_explain(const redisReply *rep, const char *id,
                                  const redisReply *noisy, struct sp_buf *out)
{
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct inc_view v;
    enum sp_err e = view_build(&a, rep, &v, NULL);
    if (e)
        goto out;
    const redisReply *m = v.meta;
    char fs[32] = "-", ls[32] = "-";
    if (mnum(m, "fs") > 0)
        sp_time_format(mnum(m, "fs") * 1000, fs);
    if (mnum(m, "ls") > 0)
        sp_time_format(mnum(m, "ls") * 1000, ls);
    int64_t sev = mnum(m, "sev");
    sp_buf_printf(out, "incident %s  version %lld  status %s", id,
                  (long long)mnum(m, "v"), mget(m, "st") ? mget(m, "st") : "?");
    if (closed_reason(mget(m, "cb"))) {
        sp_buf_puts(out, " (");
        sp_buf_puts(out, closed_reason(mget(m, "cb")));
        sp_buf_puts(out, ")");
    }
    sp_buf_puts(out, "\ntenant ");
    put_safe(out, mget(m, "ten"));
    sp_buf_printf(out, "  severity %s  alerts %zu  first seen %s  last seen "
                  "%s\ntitle: ",
                  sp_severity_name((enum sp_severity)(sev >= 0 && sev <= 4 ? sev : 0)),
                  v.n_alerts, fs, ls);
    put_safe(out, mget(m, "ti"));
    sp_buf_putc(out, '\n');
    if (mget(m, "mi")) {
        sp_buf_puts(out, "merged into ");
        put_safe(out, mget(m, "mi"));
        sp_buf_puts(out, ": its alerts and decisions moved there\n");
    }
    if (mget(m, "prev") || mget(m, "cont") || mget(m, "mg")) {
        sp_buf_puts(out, "links:");
        if (mget(m, "prev")) {
            sp_buf_puts(out, " previous (closed) ");
            put_safe(out, mget(m, "prev"));
        }
        if (mget(m, "cont")) {
            sp_buf_puts(out, " continued from ");
            put_safe(out, mget(m, "cont"));
        }
        if (mget(m, "mg")) {
            sp_buf_puts(out, " merged in: ");
            put_safe(out, mget(m, "mg"));
        }
        sp_buf_putc(out, '\n');
    }
    if (mget(m, "fl")) {
        sp_buf_puts(out, "flood incident for \"");
        put_safe(out, mget(m, "fl"));
        sp_buf_puts(out, "\"\n");
    }
    sp_buf_puts(out, "why:\n");
    for (size_t i = 0; i < v.n_why; i++)
        explain_why(out, v.why[i], id);
    size_t shown = 0;
    for (size_t i = 0; i < v.n_ents; i++) {
        const char *since = NULL;
        for (size_t j = 0; noisy && noisy->type == REDIS_REPLY_ARRAY &&
                           j + 1 < noisy->elements; j += 2)
            if (noisy->element[j]->type == REDIS_REPLY_STRING &&
                strcmp(noisy->element[j]->str, v.ents[i].key) == 0)
                since = noisy->element[j + 1]->str;
        if (!since && !v.ents[i].noisy)
            continue;
        if (!shown++)
            sp_buf_puts(out, "noisy entities (never correlate):\n");
        sp_buf_puts(out, "  ");
        put_safe(out, v.ents[i].key);
        if (v.ents[i].noisy && strcmp(v.ents[i].noisy, "stoplist") == 0)
            sp_buf_puts(out, "  on the stop-list");
        if (since) {
            char ts[32];
            sp_time_format(strtoll(since, NULL, 10) * 1000, ts);
            sp_buf_printf(out, "  automatic: linked to more unrelated "
                          "incidents than the threshold, since %s", ts);
        }
        sp_buf_putc(out, '\n');
    }
    e = out->overflow ? SP_ERR_LIMIT : SP_OK;
out:
    sp_arena_fini(&a);
    return e;
}
