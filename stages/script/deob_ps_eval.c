/*
 * deob_ps_eval.c - evaluation of the PowerShell syntax tree over constant
 * values: variables (scopes, env:, automatic variables, Get-Variable
 * wildcards, invalidation by code that may not run), statement unwraps
 * (the code an Invoke-Expression of a known string runs), expressions
 * (binary and unary operators including -bxor and string-building '+'
 * chains, indexing and character picking, interpolated strings, member
 * access), pipelines, assignments and keyword statements.  Each node
 * records whether its value is known and constant (vstate) and which
 * obfuscation operations built it, for deob_ps_fold.c.
 *
 * Nothing runs: unknown commands and members leave values unknown.
 * Bounded by PS_MAX_STEPS and the run's time budget.  Called on the
 * thread running the pass.
 */
#include "deob_ps_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- variables ---- */

static unsigned var_hash(const char *s, size_t n)
{
    unsigned h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + (unsigned char)sp_tolower(s[i]);
    return h % PS_VAR_BUCKETS;
}

/* Strips $ scopes (script:, global:, ...) and variable:. */
void sp_ps_var_base(const char **s, size_t *n)
{
    static const char *const scopes[] = {"script:", "global:", "local:",
                                         "private:", "using:", "variable:"};
    for (size_t k = 0; k < SP_ARRAY_SIZE(scopes); k++) {
        size_t l = strlen(scopes[k]);
        if (*n > l && sp_strncaseeq(*s, scopes[k], l)) {
            *s += l;
            *n -= l;
            return;
        }
    }
}

static struct pvar *var_find(struct ps *ps, const char *s, size_t n)
{
    for (struct pvar *v = ps->vars[var_hash(s, n)]; v; v = v->next)
        if (v->n == n && sp_strncaseeq(v->name, s, n))
            return v;
    return NULL;
}

void sp_ps_var_set(struct ps *ps, const char *s, size_t n, struct pv *val)
{
    sp_ps_var_base(&s, &n);
    if (ps->opaque)
        val = NULL;
    struct pvar *v = var_find(ps, s, n);
    if (!v) {
        v = sp_ps_alloc(ps, sizeof(*v));
        if (!v)
            return;
        v->name = sp_ps_lower(ps, s, n);
        v->n = n;
        unsigned h = var_hash(s, n);
        v->next = ps->vars[h];
        ps->vars[h] = v;
    }
    v->val = val;
}

static void note_read(struct ps *ps, size_t start, size_t end, const char *s,
                      size_t n)
{
    sp_ps_var_base(&s, &n);
    if (n > 4 && sp_strncaseeq(s, "env:", 4))
        return;
    if (!sp_ps_grow(ps, (void **)&ps->reads, &ps->capreads, ps->nreads + 1,
                    sizeof(*ps->reads)))
        return;
    struct read_rec *r = &ps->reads[ps->nreads++];
    r->start = start;
    r->end = end;
    r->name = sp_ps_lower(ps, s, n);
    r->n = n;
}

static const struct {
    const char *name;
    const char *value;
} auto_vars[] = {
    {"pshome", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0"},
    {"shellid", "Microsoft.PowerShell"},
    {"verbosepreference", "SilentlyContinue"},
    {"debugpreference", "SilentlyContinue"},
    {"erroractionpreference", "Continue"},
    {"warningpreference", "Continue"},
    {"progresspreference", "Continue"},
    {"informationpreference", "SilentlyContinue"},
    {"confirmpreference", "High"},
    {"home", "C:\\Users\\user"},
    {"maximumdrivecount", "4096"},
    {"maximumerrorcount", "256"},
    {"maximumfunctioncount", "4096"},
    {"maximumvariablecount", "4096"},
    {"maximumhistorycount", "4096"},
    {"maximumaliascount", "4096"},
};

struct pv *sp_ps_env_value(struct ps *ps, const char *s, size_t n)
{
    char key[80];
    if (n + 4 >= sizeof(key))
        return NULL;
    memcpy(key, "env:", 4);
    memcpy(key + 4, s, n);
    struct pvar *ov = var_find(ps, key, n + 4);
    if (ov)
        return ov->val;
    const char *v = deob_env_lookup(s, n);
    return v ? sp_ps_pv_cstr(ps, v) : NULL;
}

struct pv *sp_ps_read_var(struct ps *ps, struct psn *node, const char *s,
                          size_t n)
{
    sp_ps_var_base(&s, &n);
    if (n > 4 && sp_strncaseeq(s, "env:", 4))
        return sp_ps_env_value(ps, s + 4, n - 4);
    if (deob_ci_eqn(s, n, "true") || deob_ci_eqn(s, n, "false"))
        return sp_ps_pv_bool(ps, sp_tolower(s[0]) == 't');
    if (deob_ci_eqn(s, n, "null"))
        return sp_ps_pv_new(ps, PV_NULL);
    if (deob_ci_eqn(s, n, "_") || deob_ci_eqn(s, n, "psitem"))
        return ps->opaque ? NULL : ps->under;
    if (deob_ci_eqn(s, n, "?"))
        return sp_ps_pv_bool(ps, true);
    if (deob_ci_eqn(s, n, "executioncontext"))
        return sp_ps_pv_named(ps, PV_OBJ, "executioncontext", 16);
    struct pvar *v = var_find(ps, s, n);
    if (node)
        note_read(ps, node->start, node->end, s, n);
    if (v) {
        if (ps->opaque)
            return NULL;
        if (v->val && v->val->kind == PV_TYPE)
            ps->ops |= OP_TYPEVAR;
        if (v->val && v->val->kind != PV_STR && v->val->kind != PV_TYPE)
            ps->ops |= v->val->ops;
        return v->val;
    }
    for (size_t k = 0; k < SP_ARRAY_SIZE(auto_vars); k++)
        if (deob_ci_eqn(s, n, auto_vars[k].name))
            return sp_ps_pv_cstr(ps, auto_vars[k].value);
    return NULL;
}

/* Variable names known in the pass, for Get-Variable wildcards. */
bool sp_ps_wild_match(const char *pat, size_t pn, const char *s, size_t n)
{
    size_t i = 0, j = 0, star = (size_t)-1, mark = 0;
    while (j < n) {
        if (i < pn && (pat[i] == '?' ||
                       sp_tolower(pat[i]) == sp_tolower(s[j]))) {
            i++, j++;
        } else if (i < pn && pat[i] == '*') {
            star = i++;
            mark = j;
        } else if (star != (size_t)-1) {
            i = star + 1;
            j = ++mark;
        } else {
            return false;
        }
    }
    while (i < pn && pat[i] == '*')
        i++;
    return i == pn;
}

bool sp_ps_var_lookup_wild(struct ps *ps, const char *pat, size_t pn,
                           const char **name, size_t *nn)
{
    if (!memchr(pat, '*', pn) && !memchr(pat, '?', pn)) {
        *name = pat;
        *nn = pn;
        return true;
    }
    for (size_t b = 0; b < PS_VAR_BUCKETS; b++)
        for (struct pvar *v = ps->vars[b]; v; v = v->next)
            if (sp_ps_wild_match(pat, pn, v->name, v->n)) {
                *name = v->name;
                *nn = v->n;
                return true;
            }
    static const char *const autos[] = {
        "MaximumDriveCount", "MaximumErrorCount", "MaximumFunctionCount",
        "MaximumVariableCount", "MaximumHistoryCount", "MaximumAliasCount",
        "ExecutionContext", "ShellId", "PSHome", "VerbosePreference",
        "DebugPreference", "ErrorActionPreference", "WarningPreference",
        "ProgressPreference", "ConfirmPreference", "Home", NULL};
    for (size_t k = 0; autos[k]; k++)
        if (sp_ps_wild_match(pat, pn, autos[k], strlen(autos[k]))) {
            *name = autos[k];
            *nn = strlen(autos[k]);
            return true;
        }
    return false;
}

/* Everything an unparsed span may assign becomes unknown. */
static void invalidate_span(struct ps *ps, size_t start, size_t end)
{
    for (size_t i = start; i < end && i < ps->n; i++) {
        if (ps->s[i] != '$')
            continue;
        size_t j = i + 1, k = j;
        if (j < end && ps->s[j] == '{') {
            k = j + 1;
            while (k < end && ps->s[k] != '}')
                k++;
            if (k >= end)
                continue;
            size_t m = k + 1;
            while (m < end && (ps->s[m] == ' ' || ps->s[m] == '\t'))
                m++;
            if (m < end && strchr("=+-*/%", ps->s[m]))
                sp_ps_var_set(ps, ps->s + j + 1, k - j - 1, NULL);
            continue;
        }
        while (k < end && (sp_ps_is_word_char((unsigned char)ps->s[k]) ||
                           ps->s[k] == ':'))
            k++;
        if (k == j)
            continue;
        size_t m = k;
        while (m < end && (ps->s[m] == ' ' || ps->s[m] == '\t'))
            m++;
        if (m < end && strchr("=+-*/%", ps->s[m]))
            sp_ps_var_set(ps, ps->s + j, k - j, NULL);
    }
}

/* ---- statement unwraps (IEX and friends) ---- */

void sp_ps_mark_unwrap(struct ps *ps, struct psn *elem, struct pv *script,
                       unsigned ops)
{
    if (!script || ps->unwrap_target != elem || !ps->cur_stmt)
        return;
    const char *s;
    size_t n;
    if (script->kind == PV_BLOCK || script->kind == PV_STR) {
        s = script->s;
        n = script->n;
    } else if (!sp_ps_to_str(ps, script, &s, &n)) {
        return;
    }
    struct psn *st = ps->cur_stmt;
    if (st->ustate == VS_NONE) {
        st->ustate = VS_KNOWN;
        st->utext = s;
        st->un = n;
        st->uops = ops;
    } else if (st->ustate == VS_KNOWN &&
               (st->un != n || memcmp(st->utext, s, n))) {
        st->ustate = VS_VARY;
    }
}

/* ---- expressions ---- */

/* A long 'a'+'b'+'c'+... chain, appended into one buffer instead of
 * copying the growing left side at every '+' (which is quadratic).  Only
 * the chain's top gets a value. */
static struct pv *ev_add_chain(struct ps *ps, struct psn *n, size_t links)
{
    struct psn **rhs = malloc(links * sizeof(*rhs));
    if (!rhs) {
        ps->abort = true;
        return NULL;
    }
    size_t k = 0;
    struct psn *x = n;
    while (x->kind == N_BIN && x->op == B_ADD && k < links) {
        rhs[k++] = x->b;
        x = x->a;
    }
    struct pv *v = NULL, *first = sp_ps_ev(ps, x);
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = first && (first->kind == PV_STR || first->kind == PV_CHAR) &&
              sp_ps_put_str(ps, first, &b, 0);
    while (ok && k > 0 && !ps->abort) {
        struct pv *r = sp_ps_ev(ps, rhs[--k]);
        ok = r && sp_ps_put_str(ps, r, &b, 0) && !b.overflow;
    }
    if (ok && !ps->abort) {
        v = sp_ps_pv_buf(ps, &b);
        ps->ops |= OP_CONCAT;
    }
    sp_buf_fini(&b);
    free(rhs);
    return v;
}

static struct pv *ev_bin(struct ps *ps, struct psn *n)
{
    if (n->op == B_ADD) {
        size_t links = 0;
        for (struct psn *x = n; x->kind == N_BIN && x->op == B_ADD &&
                                links <= 64;
             x = x->a)
            links++;
        if (links > 64) {
            for (struct psn *x = n->a; x->kind == N_BIN && x->op == B_ADD;
                 x = x->a)
                links++;
            return ev_add_chain(ps, n, links);
        }
    }
    struct pv *l = sp_ps_ev(ps, n->a);
    struct pv *r = sp_ps_ev(ps, n->b);
    if (!l || !r)
        return NULL;
    bool cs = (n->op & B_CASE) != 0;
    int64_t x, y;
    bool ok;
    switch (n->op & ~B_CASE) {
    case B_ADD:
        return sp_ps_ev_add(ps, l, r);
    case B_SUB:
    case B_MUL:
    case B_DIV:
    case B_MOD:
        if ((n->op & ~B_CASE) == B_MUL && l->kind == PV_STR &&
            sp_ps_to_int(r, &y) && y >= 0 &&
            (uint64_t)y * l->n < ((size_t)1 << 20)) {
            struct sp_buf b;
            sp_buf_init(&b, PS_ARENA_MAX);
            for (int64_t i = 0; i < y; i++)
                sp_buf_put(&b, l->s, l->n);
            struct pv *v = sp_ps_pv_buf(ps, &b);
            sp_buf_fini(&b);
            return v;
        }
        if (!sp_ps_to_int(l, &x) || !sp_ps_to_int(r, &y))
            return NULL;
        switch (n->op & ~B_CASE) {
        case B_SUB:
            return sp_ps_pv_int(ps, x - y);
        case B_MUL:
            return sp_ps_pv_int(ps, x * y);
        case B_DIV:
            return (y && x % y == 0) ? sp_ps_pv_int(ps, x / y) : NULL;
        default:
            return y ? sp_ps_pv_int(ps, x % y) : NULL;
        }
    case B_RANGE:
        return sp_ps_ev_range(ps, l, r);
    case B_FORMAT:
        return sp_ps_op_format(ps, l, r);
    case B_JOIN:
        return sp_ps_op_join(ps, l, r);
    case B_SPLIT:
        return sp_ps_op_split(ps, l, r, cs);
    case B_REPLACE:
        return sp_ps_op_replace(ps, l, r, cs);
    case B_BXOR:
    case B_BAND:
    case B_BOR:
    case B_SHL:
    case B_SHR:
        if (!sp_ps_to_int(l, &x) || !sp_ps_to_int(r, &y))
            return NULL;
        switch (n->op & ~B_CASE) {
        case B_BXOR:
            ps->ops |= OP_BXOR;
            return sp_ps_pv_int(ps, x ^ y);
        case B_BAND:
            return sp_ps_pv_int(ps, x & y);
        case B_BOR:
            return sp_ps_pv_int(ps, x | y);
        case B_SHL:
            return y >= 0 && y < 63 ? sp_ps_pv_int(ps, x << y) : NULL;
        default:
            return y >= 0 && y < 63 ? sp_ps_pv_int(ps, x >> y) : NULL;
        }
    case B_AS:
        if (r->kind != PV_TYPE)
            return NULL;
        {
            struct pv *v = sp_ps_cast(ps, r->s, r->n, l);
            return v ? v : sp_ps_pv_new(ps, PV_NULL);
        }
    case B_EQ:
    case B_NE:
    case B_GT:
    case B_GE:
    case B_LT:
    case B_LE: {
        if (l->kind == PV_ARR)
            return NULL;
        int c = sp_ps_cmp_values(ps, l, r, cs, &ok);
        if (!ok)
            return NULL;
        switch (n->op & ~B_CASE) {
        case B_EQ:
            return sp_ps_pv_bool(ps, c == 0);
        case B_NE:
            return sp_ps_pv_bool(ps, c != 0);
        case B_GT:
            return sp_ps_pv_bool(ps, c > 0);
        case B_GE:
            return sp_ps_pv_bool(ps, c >= 0);
        case B_LT:
            return sp_ps_pv_bool(ps, c < 0);
        default:
            return sp_ps_pv_bool(ps, c <= 0);
        }
    }
    case B_LIKE:
    case B_NOTLIKE: {
        const char *s, *t;
        size_t sn, tn;
        if (!sp_ps_to_str(ps, l, &s, &sn) || !sp_ps_to_str(ps, r, &t, &tn))
            return NULL;
        bool m = sp_ps_wild_match(t, tn, s, sn);
        return sp_ps_pv_bool(ps, (n->op & ~B_CASE) == B_LIKE ? m : !m);
    }
    case B_CONTAINS:
    case B_NOTCONTAINS:
    case B_IN:
    case B_NOTIN: {
        bool in = (n->op & ~B_CASE) == B_IN || (n->op & ~B_CASE) == B_NOTIN;
        struct pv *coll = in ? r : l, *item = in ? l : r;
        struct pv **items, *one;
        size_t k = sp_ps_enumerate(ps, coll, &items, &one);
        bool found = false;
        for (size_t i = 0; i < k && !found; i++) {
            int c = sp_ps_cmp_values(ps, items[i], item, cs, &ok);
            if (!ok)
                return NULL;
            found = c == 0;
        }
        uint16_t o = n->op & ~B_CASE;
        return sp_ps_pv_bool(ps,
                             (o == B_CONTAINS || o == B_IN) ? found : !found);
    }
    case B_AND:
        return sp_ps_pv_bool(ps, sp_ps_truthy(l) && sp_ps_truthy(r));
    case B_OR:
        return sp_ps_pv_bool(ps, sp_ps_truthy(l) || sp_ps_truthy(r));
    case B_XOR:
        return sp_ps_pv_bool(ps, sp_ps_truthy(l) != sp_ps_truthy(r));
    default:
        return NULL;
    }
}

void sp_ps_note_write(struct ps *ps, const char *s, size_t n)
{
    struct asg_rec *a = ps->cur_asg;
    if (!a)
        return;
    if (a->n == n && sp_strncaseeq(a->name, s, n))
        return;
    if (a->w2 && !(a->w2n == n && sp_strncaseeq(a->w2, s, n)))
        a->ok = false;
    a->w2 = s;
    a->w2n = n;
}

static struct pv *ev_un(struct ps *ps, struct psn *n)
{
    if (n->op == U_PREINC || n->op == U_PREDEC || n->op == U_POSTINC ||
        n->op == U_POSTDEC) {
        struct psn *t = n->a;
        if (t->kind != N_VAR)
            return NULL;
        struct pv *old = sp_ps_read_var(ps, t, t->s, t->n);
        int64_t x;
        sp_ps_note_write(ps, t->s, t->n);
        if (!old || !sp_ps_to_int(old, &x)) {
            sp_ps_var_set(ps, t->s, t->n, NULL);
            return NULL;
        }
        int64_t nx = (n->op == U_PREINC || n->op == U_POSTINC) ? x + 1 : x - 1;
        struct pv *nv = sp_ps_pv_int(ps, nx);
        sp_ps_var_set(ps, t->s, t->n, nv);
        return (n->op == U_PREINC || n->op == U_PREDEC) ? nv
                                                        : sp_ps_pv_int(ps, x);
    }
    struct pv *v = sp_ps_ev(ps, n->a);
    if (!v)
        return NULL;
    int64_t x;
    switch (n->op) {
    case U_NEG:
        return sp_ps_to_int(v, &x) ? sp_ps_pv_int(ps, -x) : NULL;
    case U_PLUS:
        return sp_ps_to_int(v, &x) ? sp_ps_pv_int(ps, x) : NULL;
    case U_NOT:
        return sp_ps_pv_bool(ps, !sp_ps_truthy(v));
    case U_BNOT:
        return sp_ps_to_int(v, &x) ? sp_ps_pv_int(ps, ~x) : NULL;
    case U_JOIN:
        return sp_ps_op_join(ps, v, NULL);
    case U_SPLIT: {
        const char *s;
        size_t sn;
        if (!sp_ps_to_str(ps, v, &s, &sn))
            return NULL;
        struct pvlist out = {0};
        size_t i = 0;
        while (i < sn) {
            while (i < sn && deob_isspace((unsigned char)s[i]))
                i++;
            size_t j = i;
            while (j < sn && !deob_isspace((unsigned char)s[j]))
                j++;
            if (j > i &&
                !sp_ps_pvlist_add(ps, &out, sp_ps_pv_str(ps, s + i, j - i)))
                return NULL;
            i = j;
        }
        ps->ops |= OP_SPLITJOIN;
        return sp_ps_pvlist_value(ps, &out);
    }
    case U_COMMA: {
        struct pv *a = sp_ps_pv_arr(ps, 1);
        if (a)
            ITEMS(a)[0] = v;
        return a;
    }
    default:
        return NULL;
    }
}

static struct pv *ev_index(struct ps *ps, struct psn *n)
{
    struct pv *ov = sp_ps_ev(ps, n->a);
    struct pv *iv = sp_ps_ev(ps, n->b);
    if (!ov || !iv)
        return NULL;
    if (ov->kind == PV_METHOD || ov->kind == PV_HASH || sp_ps_is_nullish(ov))
        return NULL;
    struct pv **idx, *one;
    size_t k = sp_ps_enumerate(ps, iv, &idx, &one);
    if (iv->kind == PV_STR)
        k = 1, idx = &iv;
    size_t len = ov->kind == PV_STR ? sp_ps_str_len(ps, ov)
                 : ov->kind == PV_ARR || ov->kind == PV_BYTES ? ov->count
                                                              : 0;
    if (ov->kind != PV_STR && ov->kind != PV_ARR && ov->kind != PV_BYTES)
        return NULL;
    struct pvlist out = {0};
    int64_t prev = 0;
    bool desc = k >= 2;
    for (size_t i = 0; i < k; i++) {
        int64_t x;
        if (!sp_ps_to_int(idx[i], &x))
            return NULL;
        if (x < 0)
            x += (int64_t)len;
        if (i && x != prev - 1)
            desc = false;
        prev = x;
        if (x < 0 || (uint64_t)x >= len)
            continue;
        struct pv *item;
        if (ov->kind == PV_STR)
            item = sp_ps_pv_char(ps, sp_ps_str_at(ps, ov, (size_t)x));
        else if (ov->kind == PV_BYTES)
            item = sp_ps_pv_int(ps, ((const unsigned char *)ov->p)[x]);
        else
            item = ITEMS(ov)[x];
        if (!sp_ps_pvlist_add(ps, &out, item))
            return NULL;
    }
    if (ov->kind == PV_STR)
        ps->ops |= desc && k + 1 >= len ? OP_REVERSE : OP_CHARPICK;
    else if (desc && k + 1 >= len)
        ps->ops |= OP_REVERSE;
    if (iv->kind != PV_ARR)
        return out.n ? out.v[0] : sp_ps_pv_new(ps, PV_NULL);
    struct pv *a = sp_ps_pv_arr(ps, 0);
    if (a) {
        a->p = out.v;
        a->count = out.n;
    }
    return a;
}

static struct pv *ev_xstr(struct ps *ps, struct psn *n)
{
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    bool ok = true;
    for (struct psn *part = n->a; part && ok; part = part->next) {
        if (part->kind == N_STR) {
            sp_buf_put(&b, part->s, part->n);
            continue;
        }
        struct pv *v = sp_ps_ev(ps, part);
        ok = v && sp_ps_put_str(ps, v, &b, 0);
    }
    struct pv *v = ok ? sp_ps_pv_buf(ps, &b) : NULL;
    sp_buf_fini(&b);
    if (v && (n->flags & NF_TICK))
        ps->ops |= OP_BACKTICK;
    return v;
}

static struct pv *ev_member(struct ps *ps, struct psn *n)
{
    struct pv *ov = sp_ps_ev(ps, n->a);
    const char *name = NULL;
    size_t nl = 0;
    if (n->b->kind == N_WORD) {
        name = n->b->s;
        nl = n->b->n;
        if (n->b->flags & NF_TICK)
            ps->ops |= OP_BACKTICK;
    } else {
        struct pv *nv = sp_ps_ev(ps, n->b);
        if (nv && nv->kind == PV_STR)
            name = nv->s, nl = nv->n;
    }
    size_t nargs = 0;
    for (struct psn *a = n->c; a; a = a->next)
        nargs++;
    struct pv **args = nargs ? sp_ps_alloc(ps, nargs * sizeof(*args)) : NULL;
    struct psn **argn = nargs ? sp_ps_alloc(ps, nargs * sizeof(*argn)) : NULL;
    bool known = true;
    size_t k = 0;
    if (nargs && (!args || !argn))
        return NULL;
    for (struct psn *a = n->c; a; a = a->next, k++) {
        args[k] = sp_ps_ev(ps, a);
        argn[k] = a;
        if (!args[k])
            known = false;
    }
    if (!ov || !name || !known || (nargs && !args))
        return NULL;
    char *lname = sp_ps_lower(ps, name, nl);
    if (!lname)
        return NULL;
    bool call = (n->flags & NF_CALL) != 0;
    if (n->flags & NF_STATIC) {
        if (ov->kind != PV_TYPE)
            return NULL;
        return sp_ps_static_member(ps, ov->s, ov->n, lname, args, argn, nargs,
                                   call, n);
    }
    return sp_ps_inst_member(ps, ov, lname, args, nargs, call, n);
}

/* ---- pipelines, assignments, statements ---- */

static struct pv *ev_pipe(struct ps *ps, struct psn *n)
{
    bool is_stmt = n == ps->cur_stmt;
    struct pv *v = NULL;
    bool has_in = false;
    for (struct psn *e = n->a; e && !ps->abort; e = e->next) {
        struct psn *saved = ps->unwrap_target;
        ps->unwrap_target = is_stmt && !e->next ? e : NULL;
        unsigned in_ops = ps->ops;
        if (e->kind == N_CMD) {
            v = sp_ps_ev_cmd(ps, e, v, has_in, in_ops);
        } else if (!has_in) {
            v = sp_ps_ev(ps, e);
        } else {
            sp_ps_ev(ps, e);
            v = NULL;
        }
        ps->unwrap_target = saved;
        has_in = true;
    }
    return v;
}

static struct pv *ev_assign(struct ps *ps, struct psn *n)
{
    struct psn *t = n->a;
    bool root = ps->cur_stmt == n && ps->root_stmt == n;
    struct asg_rec *saved = ps->cur_asg;
    struct psn *tv = t;
    while (tv->kind == N_CAST)
        tv = tv->a;
    if (root && tv->kind == N_VAR) {
        sp_ps_record_asg(ps, n, tv->s, tv->n, true);
        ps->cur_asg = ps->nasgs ? &ps->asgs[ps->nasgs - 1] : NULL;
        if (ps->cur_asg && ps->cur_asg->stmt != n)
            ps->cur_asg = NULL;
    }
    struct pv *v = sp_ps_ev(ps, n->b);
    size_t asg_idx = ps->cur_asg ? (size_t)(ps->cur_asg - ps->asgs) : 0;
    bool have_asg = ps->cur_asg != NULL;
    ps->cur_asg = saved;
    if (v && v->kind == PV_VOID)
        v = NULL;
    if (n->op != '=' && tv->kind == N_VAR) {
        struct pv *old = sp_ps_read_var(ps, tv, tv->s, tv->n);
        int64_t x, y;
        if (!old || !v)
            v = NULL;
        else if (n->op == '+')
            v = sp_ps_ev_add(ps, old, v);
        else if (n->op == '-' && sp_ps_to_int(old, &x) && sp_ps_to_int(v, &y))
            v = sp_ps_pv_int(ps, x - y);
        else
            v = NULL;
    }
    if (t->kind == N_CAST && v) {
        v = sp_ps_cast(ps, t->s, t->n, v);
    }
    if (tv->kind == N_VAR) {
        sp_ps_var_set(ps, tv->s, tv->n, v);
    } else if (tv->kind == N_INDEX || tv->kind == N_MEMBER) {
        struct psn *base = tv->a;
        while (base && (base->kind == N_INDEX || base->kind == N_MEMBER))
            base = base->a;
        if (tv->kind == N_INDEX)
            sp_ps_ev(ps, tv->b);
        if (base && base->kind == N_VAR)
            sp_ps_var_set(ps, base->s, base->n, NULL);
    } else if (tv->kind == N_ARRAY) {
        for (struct psn *x = tv->a; x; x = x->next)
            if (x->kind == N_VAR)
                sp_ps_var_set(ps, x->s, x->n, NULL);
    }
    if (have_asg)
        ps->asgs[asg_idx].ok = ps->asgs[asg_idx].ok && v != NULL;
    return v;
}

static struct pv *ev_keyword(struct ps *ps, struct psn *n)
{
    for (struct psn *c = n->a; c && !ps->abort; c = c->next) {
        if (c->flags & NF_KEYVAR) {
            sp_ps_var_set(ps, c->s, c->n, NULL);
            continue;
        }
        bool opq = (c->flags & NF_OPAQUE) != 0;
        if (opq)
            ps->opaque++;
        if (c->kind == N_STMTS)
            sp_ps_ev_stmts(ps, c->a, NULL);
        else if (c->kind == N_OPAQUE)
            invalidate_span(ps, c->start, c->end);
        else
            sp_ps_ev(ps, c);
        if (opq)
            ps->opaque--;
    }
    /* a loop may have run its body several times */
    invalidate_span(ps, n->start, n->end);
    return NULL;
}

static struct pv *ev_node(struct ps *ps, struct psn *n)
{
    switch (n->kind) {
    case N_NUM:
        return (n->flags & NF_NUMOK) ? sp_ps_pv_int(ps, n->i) : NULL;
    case N_STR:
        return sp_ps_pv_str_ref(ps, n->s, n->n);
    case N_WORD: {
        if (n->flags & NF_TICK)
            ps->ops |= OP_BACKTICK;
        return sp_ps_pv_str_ref(ps, n->s, n->n);
    }
    case N_XSTR:
        return ev_xstr(ps, n);
    case N_VAR:
        return sp_ps_read_var(ps, n, n->s, n->n);
    case N_BIN:
        return ev_bin(ps, n);
    case N_UN:
        return ev_un(ps, n);
    case N_CAST:
        return sp_ps_cast(ps, n->s, n->n, sp_ps_ev(ps, n->a));
    case N_TYPE:
        return sp_ps_pv_named(ps, PV_TYPE, n->s, n->n);
    case N_ARRAY: {
        size_t k = 0;
        for (struct psn *x = n->a; x; x = x->next)
            k++;
        struct pv *a = sp_ps_pv_arr(ps, k);
        bool known = a != NULL;
        k = 0;
        for (struct psn *x = n->a; x; x = x->next, k++) {
            struct pv *v = sp_ps_ev(ps, x);
            if (!v)
                known = false;
            else if (a)
                ITEMS(a)[k] = v;
        }
        return known ? a : NULL;
    }
    case N_INDEX:
        return ev_index(ps, n);
    case N_MEMBER:
        return ev_member(ps, n);
    case N_PAREN: {
        if (!n->a)
            return NULL;
        struct pv *v = sp_ps_ev(ps, n->a);
        return v && v->kind == PV_VOID ? sp_ps_pv_new(ps, PV_NULL) : v;
    }
    case N_SUB:
    case N_ARRSUB: {
        struct pvlist out = {0};
        struct psn *saved = ps->cur_stmt;
        bool known = sp_ps_ev_stmts(ps, n->a, &out);
        ps->cur_stmt = saved;
        if (!known)
            return NULL;
        if (n->kind == N_SUB)
            return sp_ps_pvlist_value(ps, &out);
        struct pv *a = sp_ps_pv_arr(ps, 0);
        if (a) {
            a->p = out.v;
            a->count = out.n;
        }
        return a;
    }
    case N_HASH:
        return sp_ps_pv_new(ps, PV_HASH);
    case N_BLOCK: {
        size_t s0 = n->start + 1, e0 = n->end > s0 ? n->end - 1 : s0;
        return sp_ps_pv_named(ps, PV_BLOCK, ps->s + s0, e0 - s0);
    }
    case N_PIPE:
        return ev_pipe(ps, n);
    case N_ASSIGN:
        return ev_assign(ps, n);
    case N_CMD:
        return sp_ps_ev_cmd(ps, n, NULL, false, 0);
    case N_KEYWORD:
        return ev_keyword(ps, n);
    case N_OPAQUE:
        invalidate_span(ps, n->start, n->end);
        return NULL;
    case N_PARAM:
        return n->a ? sp_ps_ev(ps, n->a) : NULL;
    default:
        return NULL;
    }
}

struct pv *sp_ps_ev(struct ps *ps, struct psn *n)
{
    if (!n || ps->abort)
        return NULL;
    if (++ps->steps > PS_MAX_STEPS || deob_time_up(ps->ctx)) {
        ps->abort = true;
        return NULL;
    }
    unsigned saved = ps->ops;
    ps->ops = 0;
    struct pv *v = ev_node(ps, n);
    if (v && v->kind != PV_STR && v->kind != PV_CHAR && v->kind != PV_INT &&
        v->kind != PV_BOOL && v->kind != PV_NULL && v->kind != PV_TYPE)
        v->ops |= (uint16_t)ps->ops;
    if (n->vstate == VS_NONE) {
        n->vstate = v ? VS_KNOWN : VS_VARY;
        n->val = v;
        n->ops = ps->ops;
    } else if (n->vstate == VS_KNOWN) {
        if (!sp_ps_pv_equal(n->val, v))
            n->vstate = VS_VARY;
        n->ops |= ps->ops;
    }
    if (ps->opaque && v && n->vstate == VS_KNOWN && n->kind == N_VAR)
        n->vstate = VS_VARY;
    ps->ops |= saved;
    return v;
}

bool sp_ps_ev_stmts(struct ps *ps, struct psn *list, struct pvlist *out)
{
    bool known = true;
    for (struct psn *st = list; st && !ps->abort; st = st->next) {
        struct psn *saved = ps->cur_stmt;
        ps->cur_stmt = st;
        struct pv *v = sp_ps_ev(ps, st);
        ps->cur_stmt = saved;
        if (!out || st->kind == N_ASSIGN)
            continue;
        if (st->kind == N_KEYWORD) {
            if (st->s && (!strcmp(st->s, "function") ||
                          !strcmp(st->s, "filter") || !strcmp(st->s, "param") ||
                          !strcmp(st->s, "trap")))
                continue;
            known = false;
            continue;
        }
        if (!v) {
            known = false;
            continue;
        }
        if (v->kind == PV_VOID)
            continue;
        if (!sp_ps_pvlist_add_all(ps, out, v))
            known = false;
    }
    return known;
}
