/*
 * deob_ps_fold.c - the PowerShell folding decoder (deob_ps_fold): parses
 * the script (or a launcher's -Command), evaluates it statement by
 * statement, then walks the tree replacing each known sub-expression
 * that an obfuscation operation computed by its literal, quoted for the
 * context it sits in (expression, argument, member name, command name),
 * replacing Invoke-Expression of known code by that code, and dropping
 * assignments left dead.  The step is named after the most telling
 * operation it undid.
 *
 * Owns one pass (struct ps: arena, records, replacements), created and
 * freed per call.  Called by the driver on the context's thread.
 */
#include "deob_ps_int.h"

#include <stdlib.h>
#include <string.h>

/* A step is named after its most telling operation, in this order. */
static const struct {
    unsigned op;
    const char *id;
} op_technique[] = {
    {OP_SECURE, "powershell.securestring"},
    {OP_DEFLATE, "powershell.deflate"},
    {OP_BASE64, "powershell.base64"},
    {OP_BXOR, "powershell.bxor"},
    {OP_REVERSE, "powershell.reverse"},
    {OP_FORMAT, "powershell.format_operator"},
    {OP_REPLACE, "powershell.replace"},
    {OP_CHARCODE, "powershell.char_codes"},
    {OP_CONCAT, "powershell.concat"},
    {OP_SPLITJOIN, "powershell.split_join"},
    {OP_IEX, "powershell.iex_unwrap"},
    {OP_CHARPICK, "powershell.string_index"},
    {OP_CALLOP, "powershell.call_operator"},
    {OP_VARIND | OP_TYPEVAR, "powershell.variables"},
    {OP_BACKTICK, "powershell.backtick"},
};

/* ---- replacements and rendering ---- */

enum wctx { W_EXPR, W_ARG, W_MEMBER, W_CMD };

static void emit(struct ps *ps, size_t start, size_t end, const char *text,
                 size_t n, unsigned ops, bool consume)
{
    if (!text || !sp_ps_grow(ps, (void **)&ps->repls, &ps->caprepls,
                             ps->nrepls + 1, sizeof(*ps->repls)))
        return;
    if (end - start == n && !memcmp(ps->s + start, text, n))
        return;
    struct repl *r = &ps->repls[ps->nrepls++];
    r->start = start;
    r->end = end;
    r->text = text;
    r->n = n;
    r->consume = consume;
    ps->pass_ops |= ops;
    if (consume)
        ps->consumed = true;
}

static bool simple_word(const char *s, size_t n, bool cmd)
{
    if (n == 0 || n > 256 || (!cmd && s[0] == '-'))
        return false;
    bool letter = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (deob_isalpha(c))
            letter = true;
        else if (!(deob_isalnum(c) || strchr("_.-\\:/", c)))
            return false;
    }
    return letter;
}

static bool ident(const char *s, size_t n)
{
    if (n == 0 || n > 256 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!deob_isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static const char *quote_sq(struct ps *ps, const char *s, size_t n,
                            size_t *out)
{
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    sp_buf_putc(&b, '\'');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            sp_buf_putc(&b, '\'');
        sp_buf_putc(&b, s[i]);
    }
    sp_buf_putc(&b, '\'');
    const char *r = b.overflow ? NULL : sp_ps_strdup(ps, b.data, b.len);
    *out = b.len;
    sp_buf_fini(&b);
    return r;
}

/* Source text for a known value in a context, or NULL. */
static const char *render(struct ps *ps, struct pv *v, enum wctx ctx,
                          size_t *out)
{
    const char *s;
    size_t n;
    if (v->kind == PV_TYPE) {
        const char *r = sp_ps_alloc(ps, v->n + 5);
        if (!r)
            return NULL;
        char *w = (char *)r;
        size_t k = 0;
        if (ctx == W_ARG)
            w[k++] = '(';
        w[k++] = '[';
        memcpy(w + k, v->s, v->n);
        k += v->n;
        w[k++] = ']';
        if (ctx == W_ARG)
            w[k++] = ')';
        *out = k;
        return r;
    }
    if (v->kind != PV_STR && v->kind != PV_CHAR)
        return NULL;
    if (!sp_ps_to_str(ps, v, &s, &n))
        return NULL;
    switch (ctx) {
    case W_ARG:
        if (simple_word(s, n, false)) {
            *out = n;
            return s;
        }
        break;
    case W_MEMBER:
        if (ident(s, n)) {
            *out = n;
            return s;
        }
        break;
    case W_CMD:
        if (simple_word(s, n, true)) {
            *out = n;
            return s;
        }
        return NULL;
    default:
        break;
    }
    return quote_sq(ps, s, n, out);
}

/* ---- the walk ---- */

static bool foldable(struct psn *n)
{
    /* backticks alone are renamed in place, never evaluated away */
    if (n->vstate != VS_KNOWN || !n->val || !(n->ops & ~OP_BACKTICK))
        return false;
    switch (n->kind) {
    case N_PAREN:
    case N_BIN:
    case N_UN:
    case N_CAST:
    case N_MEMBER:
    case N_INDEX:
    case N_XSTR:
    case N_SUB:
    case N_VAR:
        return true;
    default:
        return false;
    }
}

static void walk(struct ps *ps, struct psn *n, enum wctx ctx);

static void walk_list(struct ps *ps, struct psn *list, enum wctx ctx)
{
    for (struct psn *x = list; x; x = x->next)
        walk(ps, x, ctx);
}

static void walk_stmts(struct ps *ps, struct psn *list)
{
    for (struct psn *st = list; st; st = st->next) {
        if (st->ustate == VS_KNOWN) {
            emit(ps, st->start, st->end, st->utext, st->un,
                 st->uops | OP_IEX, true);
            continue;
        }
        walk(ps, st, W_EXPR);
    }
}

/* $name for a braced or ticked variable whose name is plain. */
static void walk_var_name(struct ps *ps, struct psn *n)
{
    if (!(n->flags & NF_TICK) && !(n->flags & NF_BRACED))
        return;
    if (!(n->flags & NF_TICK))
        return;
    size_t k = n->n;
    if (!ident(n->s, k) &&
        !(k > 4 && sp_strncaseeq(n->s, "env:", 4) && ident(n->s + 4, k - 4)))
        return;
    char *t = sp_ps_alloc(ps, k + 2);
    if (!t)
        return;
    t[0] = '$';
    memcpy(t + 1, n->s, k);
    emit(ps, n->start, n->end, t, k + 1, OP_BACKTICK, false);
}

static void walk_target(struct ps *ps, struct psn *t)
{
    if (!t)
        return;
    switch (t->kind) {
    case N_VAR:
        walk_var_name(ps, t);
        break;
    case N_CAST:
        walk_target(ps, t->a);
        break;
    case N_INDEX:
        walk_target(ps, t->a);
        walk(ps, t->b, W_EXPR);
        break;
    case N_MEMBER:
        walk(ps, t->a, W_EXPR);
        break;
    case N_ARRAY:
        for (struct psn *x = t->a; x; x = x->next)
            walk_target(ps, x);
        break;
    default:
        break;
    }
}

/* powershell/pwsh called with computed pieces: the command line it runs. */
static bool walk_launcher(struct ps *ps, struct psn *n)
{
    struct psn *nn = n->a;
    const char *name = NULL;
    size_t nl = 0;
    if (n->op && nn->vstate == VS_KNOWN && nn->val &&
        nn->val->kind == PV_STR)
        name = nn->val->s, nl = nn->val->n;
    else if (!n->op)
        name = nn->s, nl = nn->n;
    char w[32];
    if (!name)
        return false;
    deob_first_word(name, nl, w, sizeof(w), NULL);
    if (strcmp(w, "powershell") && strcmp(w, "pwsh"))
        return false;
    unsigned ops = n->op ? nn->ops | OP_CALLOP : 0;
    struct sp_buf b;
    sp_buf_init(&b, PS_ARENA_MAX);
    sp_buf_put(&b, name, nl);
    bool ok = true;
    for (struct psn *a = n->b; a && ok; a = a->next) {
        sp_buf_putc(&b, ' ');
        if (a->kind == N_PARAM && !a->a) {
            sp_buf_putc(&b, '-');
            sp_buf_put(&b, a->s, a->n);
            continue;
        }
        struct psn *vn = a->kind == N_PARAM ? a->a : a;
        if (a->kind == N_PARAM) {
            sp_buf_putc(&b, '-');
            sp_buf_put(&b, a->s, a->n);
            sp_buf_putc(&b, ':');
        }
        if (vn->vstate != VS_KNOWN || !vn->val)
            ok = false;
        else if (vn->kind == N_WORD || vn->kind == N_NUM)
            sp_buf_put(&b, ps->s + vn->start, vn->end - vn->start);
        else
            ok = sp_ps_put_str(ps, vn->val, &b, 0);
        ops |= vn->ops;
    }
    if (ok && ops && !b.overflow) {
        const char *t = sp_ps_strdup(ps, b.data, b.len);
        emit(ps, n->start, n->end, t, b.len, ops, true);
    }
    sp_buf_fini(&b);
    return ok && ops;
}

static void walk_cmd(struct ps *ps, struct psn *n)
{
    if (walk_launcher(ps, n))
        return;
    struct psn *nn = n->a;
    size_t rl;
    if (n->op && nn->kind != N_BLOCK) {
        const char *r = NULL;
        if (nn->vstate == VS_KNOWN && nn->val &&
            (nn->val->kind == PV_STR || nn->val->kind == PV_CMD)) {
            struct pv tmp = *nn->val;
            tmp.kind = PV_STR;
            r = render(ps, &tmp, W_CMD, &rl);
        }
        if (r)
            emit(ps, n->start, nn->end, r, rl, nn->ops | OP_CALLOP, true);
        else
            walk(ps, nn, W_EXPR);
    } else if (!n->op && (nn->flags & NF_TICK)) {
        emit(ps, nn->start, nn->end, nn->s, nn->n, OP_BACKTICK, false);
    }
    for (struct psn *a = n->b; a; a = a->next) {
        if (a->kind == N_PARAM) {
            if (a->flags & NF_TICK) {
                char *t = sp_ps_alloc(ps, a->n + 2);
                if (t) {
                    t[0] = '-';
                    memcpy(t + 1, a->s, a->n);
                    size_t e = a->a ? a->a->start - 1 : a->end;
                    emit(ps, a->start, e, t, a->n + 1, OP_BACKTICK, false);
                }
            }
            walk(ps, a->a, W_ARG);
        } else {
            walk(ps, a, W_ARG);
        }
    }
}

static void walk_member(struct ps *ps, struct psn *n)
{
    walk(ps, n->a, W_EXPR);
    struct psn *nm = n->b;
    /* X::('name').Invoke(args) -> X::name(args) */
    if ((n->flags & NF_CALL) && nm->kind == N_WORD &&
        deob_ci_eqn(nm->s, nm->n, "invoke") && n->a->kind == N_MEMBER &&
        !(n->a->flags & NF_CALL) && n->a->b->kind != N_WORD) {
        struct psn *in = n->a->b;
        if (in->vstate == VS_KNOWN && in->val && in->val->kind == PV_STR &&
            ident(in->val->s, in->val->n)) {
            /* the inner walk already renamed the name; widen the span */
            for (size_t i = ps->nrepls; i-- > 0;) {
                if (ps->repls[i].start == in->start &&
                    ps->repls[i].end == in->end) {
                    ps->repls[i].end = nm->end;
                    break;
                }
            }
        }
    } else if (nm->kind == N_WORD && (nm->flags & NF_TICK)) {
        emit(ps, nm->start, nm->end, nm->s, nm->n, OP_BACKTICK, false);
    } else if (nm->kind != N_WORD) {
        size_t rl;
        const char *r = NULL;
        if (nm->vstate == VS_KNOWN && nm->val && nm->val->kind == PV_STR &&
            ident(nm->val->s, nm->val->n))
            r = render(ps, nm->val, W_MEMBER, &rl);
        if (r)
            emit(ps, nm->start, nm->end, r, rl, nm->ops ? nm->ops
                                                        : OP_CONCAT, true);
        else
            walk(ps, nm, W_EXPR);
    }
    walk_list(ps, n->c, W_EXPR);
}

static void walk(struct ps *ps, struct psn *n, enum wctx ctx)
{
    if (!n || ps->abort)
        return;
    switch (n->kind) {
    case N_PIPE:
        for (struct psn *e = n->a; e; e = e->next) {
            if (e->kind == N_CMD)
                walk_cmd(ps, e);
            else
                walk(ps, e, W_EXPR);
        }
        return;
    case N_ASSIGN:
        walk_target(ps, n->a);
        if (n->b->ustate == VS_KNOWN)
            walk_stmts(ps, n->b);
        else
            walk(ps, n->b, W_EXPR);
        return;
    case N_CMD:
        walk_cmd(ps, n);
        return;
    case N_KEYWORD:
        for (struct psn *c = n->a; c; c = c->next) {
            if (c->kind == N_STMTS)
                walk_stmts(ps, c->a);
            else if (c->kind != N_OPAQUE && !(c->flags & NF_KEYVAR))
                walk(ps, c, W_EXPR);
        }
        return;
    case N_BLOCK:
        walk_stmts(ps, n->a);
        return;
    case N_PARAM:
        walk(ps, n->a, W_ARG);
        return;
    default:
        break;
    }
    size_t rl;
    const char *r;
    if (foldable(n) && (r = render(ps, n->val, ctx, &rl))) {
        emit(ps, n->start, n->end, r, rl, n->ops, true);
        return;
    }
    switch (n->kind) {
    case N_VAR:
        walk_var_name(ps, n);
        return;
    case N_MEMBER:
        walk_member(ps, n);
        return;
    case N_XSTR:
        for (struct psn *part = n->a; part; part = part->next) {
            if (part->kind == N_SUB) {
                walk_stmts(ps, part->a);
            } else if (part->kind == N_STR && (n->flags & NF_TICK)) {
                /* drop obfuscation ticks before plain letters */
                struct sp_buf b;
                sp_buf_init(&b, PS_ARENA_MAX);
                bool changed = false;
                for (size_t i = part->start; i < part->end; i++) {
                    char c = ps->s[i];
                    if (c == '`' && i + 1 < part->end &&
                        deob_isalnum((unsigned char)ps->s[i + 1]) &&
                        !strchr("0abefnrtvu", ps->s[i + 1])) {
                        changed = true;
                        continue;
                    }
                    if (c == '`' && i + 1 < part->end) {
                        sp_buf_putc(&b, c);
                        c = ps->s[++i];
                    }
                    sp_buf_putc(&b, c);
                }
                if (changed && !b.overflow)
                    emit(ps, part->start, part->end,
                         sp_ps_strdup(ps, b.data, b.len), b.len, OP_BACKTICK,
                         false);
                sp_buf_fini(&b);
            } else {
                walk(ps, part, W_EXPR);
            }
        }
        return;
    case N_WORD:
        if ((n->flags & NF_TICK) && n->val &&
            (r = render(ps, n->val, ctx, &rl)))
            emit(ps, n->start, n->end, r, rl, OP_BACKTICK, false);
        return;
    case N_SUB:
    case N_ARRSUB:
        walk_stmts(ps, n->a);
        return;
    case N_PAREN:
        if (n->a && n->a->kind == N_PIPE && n->a->ustate == VS_KNOWN)
            return;
        walk(ps, n->a, W_EXPR);
        return;
    case N_BIN:
        walk(ps, n->a, W_EXPR);
        walk(ps, n->b, W_EXPR);
        return;
    case N_UN:
    case N_CAST:
        walk(ps, n->a, W_EXPR);
        return;
    case N_INDEX:
        walk(ps, n->a, W_EXPR);
        walk(ps, n->b, W_EXPR);
        return;
    case N_ARRAY:
        walk_list(ps, n->a, ctx == W_ARG ? W_ARG : W_EXPR);
        return;
    default:
        return;
    }
}

/* ---- dead assignments ---- */

static bool inside(size_t s, size_t e, size_t a, size_t b)
{
    return s >= a && e <= b;
}

static bool read_live(struct ps *ps, const struct read_rec *r)
{
    for (size_t i = 0; i < ps->nrepls; i++)
        if (ps->repls[i].consume &&
            inside(r->start, r->end, ps->repls[i].start, ps->repls[i].end))
            return false;
    for (size_t i = 0; i < ps->nasgs; i++)
        if (ps->asgs[i].removed &&
            inside(r->start, r->end, ps->asgs[i].stmt->start,
                   ps->asgs[i].stmt->end))
            return false;
    return true;
}

static bool name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && sp_strncaseeq(a, b, an);
}

static bool span_dead(struct ps *ps, size_t s, size_t e)
{
    struct read_rec r = {s, e, NULL, 0};
    return !read_live(ps, &r);
}

/* Does the name still occur in live text?  Catches uses the evaluator
 * could not see (an unknown command naming variable:x, ...). */
static bool name_live_in_text(struct ps *ps, const char *name, size_t n)
{
    bool plain = ident(name, n);
    for (size_t i = 0; i + n <= ps->n; i++) {
        if (!sp_strncaseeq(ps->s + i, name, n))
            continue;
        size_t e = i + n;
        if (plain) {
            if ((i > 0 && sp_ps_is_word_char((unsigned char)ps->s[i - 1])) ||
                (e < ps->n && sp_ps_is_word_char((unsigned char)ps->s[e])))
                continue;
        } else if (i == 0 || ps->s[i - 1] != '{' || e >= ps->n ||
                   ps->s[e] != '}') {
            continue;
        }
        if (!span_dead(ps, i, e))
            return true;
    }
    return false;
}

static void dead_assignments(struct ps *ps)
{
    if (!ps->consumed || ps->nasgs == 0 || ps->nasgs > 512 ||
        ps->nreads > 20000 || ps->nasgs * ps->n > ((size_t)64 << 20))
        return;
    size_t cand = 0;
    for (size_t i = 0; i < ps->nasgs; i++) {
        struct asg_rec *a = &ps->asgs[i];
        a->removed = false;
        if (!a->ok)
            continue;
        bool used = false;
        for (size_t r = 0; r < ps->nreads && !used; r++)
            used = name_eq(ps->reads[r].name, ps->reads[r].n, a->name, a->n);
        if (used) {
            a->removed = true;
            cand++;
        }
    }
    for (int round = 0; cand && round < 64; round++) {
        bool changed = false;
        for (size_t i = 0; i < ps->nasgs; i++) {
            struct asg_rec *a = &ps->asgs[i];
            if (!a->removed)
                continue;
            for (size_t r = 0; r < ps->nreads && a->removed; r++) {
                const struct read_rec *rr = &ps->reads[r];
                bool mine = name_eq(rr->name, rr->n, a->name, a->n) ||
                            (a->w2 && name_eq(rr->name, rr->n, a->w2, a->w2n));
                if (mine && read_live(ps, rr)) {
                    a->removed = false;
                    changed = true;
                }
            }
            if (a->removed && (name_live_in_text(ps, a->name, a->n) ||
                               (a->w2 && name_live_in_text(ps, a->w2,
                                                           a->w2n)))) {
                a->removed = false;
                changed = true;
            }
        }
        if (!changed)
            break;
    }
    for (size_t i = 0; i < ps->nasgs; i++) {
        struct asg_rec *a = &ps->asgs[i];
        if (!a->removed)
            continue;
        size_t s = a->stmt->start, e = a->stmt->end;
        while (e < ps->n && (ps->s[e] == ' ' || ps->s[e] == '\t'))
            e++;
        if (e < ps->n && ps->s[e] == ';')
            e++;
        while (e < ps->n && (ps->s[e] == ' ' || ps->s[e] == '\t'))
            e++;
        if (e < ps->n && ps->s[e] == '\r')
            e++;
        if (e < ps->n && ps->s[e] == '\n')
            e++;
        /* replacements inside the statement go away with it */
        size_t k = 0;
        for (size_t j = 0; j < ps->nrepls; j++)
            if (!inside(ps->repls[j].start, ps->repls[j].end, s, e))
                ps->repls[k++] = ps->repls[j];
        ps->nrepls = k;
        if (!sp_ps_grow(ps, (void **)&ps->repls, &ps->caprepls, ps->nrepls + 1,
                        sizeof(*ps->repls)))
            return;
        struct repl *r = &ps->repls[ps->nrepls++];
        r->start = s;
        r->end = e;
        r->text = "";
        r->n = 0;
        r->consume = true;
    }
}

static int repl_cmp(const void *a, const void *b)
{
    const struct repl *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* ---- the decoder ---- */

static void ps_fini(struct ps *ps)
{
    sp_arena_fini(&ps->ar);
    free(ps->reads);
    free(ps->asgs);
    free(ps->repls);
}

enum deob_rc deob_ps_fold(struct deob_ctx *ctx, const char *s, size_t n,
                          struct deob_out *out)
{
    size_t rs = 0, re = n;
    enum deob_lang lang = deob_lang_detect(s, n);
    char w[32];
    deob_first_word(s, n, w, sizeof(w), NULL);
    if (lang != DEOB_LANG_PS || !strcmp(w, "powershell") ||
        !strcmp(w, "pwsh")) {
        struct deob_launcher l;
        if (!deob_find_launcher(s, n, 0, &l) || !l.has_script || l.encoded)
            return DEOB_NONE;
        rs = l.script_start;
        re = l.script_end;
    }
    if (re <= rs)
        return DEOB_NONE;

    struct ps ps;
    memset(&ps, 0, sizeof(ps));
    ps.ctx = ctx;
    ps.s = s + rs;
    ps.n = re - rs;
    sp_arena_init(&ps.ar, PS_ARENA_MAX);
    struct psn *root = sp_ps_parse(&ps);

    enum deob_rc rc = DEOB_NONE;
    if (ps.abort)
        goto out;
    for (struct psn *st = root; st && !ps.abort; st = st->next) {
        ps.cur_stmt = st;
        ps.root_stmt = st;
        sp_ps_ev(&ps, st);
    }
    ps.cur_stmt = ps.root_stmt = NULL;
    if (ps.abort)
        goto out;
    walk_stmts(&ps, root);
    dead_assignments(&ps);
    if (ps.abort || ps.nrepls == 0)
        goto out;
    qsort(ps.repls, ps.nrepls, sizeof(*ps.repls), repl_cmp);

    struct sp_buf *b = &out->buf;
    sp_buf_put(b, s, rs);
    size_t pos = 0;
    for (size_t i = 0; i < ps.nrepls; i++) {
        struct repl *r = &ps.repls[i];
        if (r->start < pos)
            continue;
        sp_buf_put(b, ps.s + pos, r->start - pos);
        sp_buf_put(b, r->text, r->n);
        pos = r->end;
    }
    sp_buf_put(b, ps.s + pos, ps.n - pos);
    sp_buf_put(b, s + re, n - re);
    if (b->overflow) {
        rc = deob_buf_rc(ctx, b);
        goto out;
    }
    out->technique = "powershell.variables";
    for (size_t i = 0; i < SP_ARRAY_SIZE(op_technique); i++) {
        if (ps.pass_ops & op_technique[i].op) {
            out->technique = op_technique[i].id;
            break;
        }
    }
    rc = DEOB_PROGRESS;
out:
    ps_fini(&ps);
    return rc;
}
