/*
 * deob_ps_cmdlet.c - commands in the PowerShell folding engine: argument
 * binding (named parameters by unique prefix, switches, positionals),
 * aliases, and the cmdlets obfuscation uses to build or run code
 * (Invoke-Expression and its builders, ForEach-Object, Where-Object,
 * New-Object, Get-/Set-Variable, Get-ChildItem variable:, Get-Command,
 * ConvertTo-SecureString, Write-Output, Out-String, Invoke-Command, the
 * & and . call operators).  An Invoke-Expression of a known string marks
 * its statement for unwrapping; assignments are recorded for the dead
 * assignment pass.
 *
 * Nothing runs: an unknown command yields an unknown value.  Called on
 * the thread running the pass.
 */
#include "deob_ps_int.h"

#include <stdio.h>
#include <string.h>

/* ---- argument binding ---- */

struct carg {
    struct psn *node;
    struct pv *v;
    const char *pname;  /* lower case, for parameters */
    size_t pn;
    bool param, used;
};

struct cargs {
    struct carg *a;
    size_t n;
};

/* Value of -name (prefix of full, at least min chars); the argument after
 * the parameter unless it is attached. */
static struct pv *carg_named(struct cargs *ca, const char *full, size_t min,
                             bool *found)
{
    *found = false;
    for (size_t i = 0; i < ca->n; i++) {
        struct carg *c = &ca->a[i];
        if (!c->param || c->used || !sp_ps_name_is_prefix(c->pname, c->pn, full,
                                                          min))
            continue;
        c->used = true;
        *found = true;
        if (c->node->a)
            return c->v;
        if (i + 1 < ca->n && !ca->a[i + 1].param) {
            ca->a[i + 1].used = true;
            return ca->a[i + 1].v;
        }
        return NULL;
    }
    return NULL;
}

static bool carg_switch(struct cargs *ca, const char *full, size_t min)
{
    for (size_t i = 0; i < ca->n; i++) {
        struct carg *c = &ca->a[i];
        if (c->param && !c->used && sp_ps_name_is_prefix(c->pname, c->pn, full,
                                                         min)) {
            c->used = true;
            return true;
        }
    }
    return false;
}

static struct carg *carg_pos(struct cargs *ca, size_t k)
{
    for (size_t i = 0; i < ca->n; i++) {
        struct carg *c = &ca->a[i];
        if (c->param || c->used)
            continue;
        if (k-- == 0) {
            c->used = true;
            return c;
        }
    }
    return NULL;
}

static struct pv *carg_posv(struct cargs *ca, size_t k, bool *found)
{
    struct carg *c = carg_pos(ca, k);
    *found = c != NULL;
    return c ? c->v : NULL;
}

/* ---- commands ---- */

static const char *const known_cmds[] = {
    "Invoke-Expression", "New-Object", "Get-Variable", "Set-Variable",
    "Invoke-Command", "Write-Host", "Start-Process", "Invoke-WebRequest",
    "Invoke-RestMethod", "Get-ChildItem", "Get-Item", "ForEach-Object",
    "Where-Object", "Out-String", "Out-Null", "ConvertTo-SecureString",
    "Get-Command", "Write-Output", "Set-Item", "Start-Sleep", NULL};

static const char *cmd_alias(const char *l)
{
    static const char *const map[][2] = {
        {"iex", "invoke-expression"}, {"%", "foreach-object"},
        {"foreach", "foreach-object"}, {"?", "where-object"},
        {"where", "where-object"}, {"gv", "get-variable"},
        {"sv", "set-variable"}, {"set", "set-variable"},
        {"gci", "get-childitem"}, {"ls", "get-childitem"},
        {"dir", "get-childitem"}, {"gi", "get-item"},
        {"gc", "get-content"}, {"cat", "get-content"},
        {"type", "get-content"}, {"gcm", "get-command"},
        {"echo", "write-output"}, {"write", "write-output"},
        {"icm", "invoke-command"}, {"nv", "new-variable"},
        {"new-variable", "set-variable"}, {"saps", "start-process"},
        {"start", "start-process"}, {"sleep", "start-sleep"},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(map); i++)
        if (!strcmp(l, map[i][0]))
            return map[i][1];
    return l;
}

static bool is_iex_name(const char *l)
{
    return !strcmp(l, "invoke-expression");
}

/* Runs a block's statements for each input item ($_). */
static struct pv *run_foreach(struct ps *ps, struct psn *blk,
                              struct pv *input, bool has_input)
{
    if (!has_input || !input) {
        ps->opaque++;
        sp_ps_ev_stmts(ps, blk->a, NULL);
        ps->opaque--;
        return NULL;
    }
    struct pv **items, *one;
    size_t k = sp_ps_enumerate(ps, input, &items, &one);
    struct pvlist out = {0};
    struct pv *saved = ps->under;
    bool known = true;
    for (size_t i = 0; i < k && !ps->abort; i++) {
        ps->under = items[i];
        if (!sp_ps_ev_stmts(ps, blk->a, &out))
            known = false;
    }
    ps->under = saved;
    if (!known || ps->abort)
        return NULL;
    return sp_ps_pvlist_value(ps, &out);
}

void sp_ps_record_asg(struct ps *ps, struct psn *stmt, const char *s,
                      size_t n, bool ok)
{
    sp_ps_var_base(&s, &n);
    if (ps->cur_stmt != ps->root_stmt || stmt != ps->root_stmt ||
        (n > 4 && sp_strncaseeq(s, "env:", 4)))
        return;
    if (!sp_ps_grow(ps, (void **)&ps->asgs, &ps->capasgs, ps->nasgs + 1,
                    sizeof(*ps->asgs)))
        return;
    struct asg_rec *a = &ps->asgs[ps->nasgs++];
    memset(a, 0, sizeof(*a));
    a->stmt = stmt;
    a->name = s;
    a->n = n;
    a->ok = ok;
}

struct pv *sp_ps_ev_cmd(struct ps *ps, struct psn *n, struct pv *input,
                        bool has_input, unsigned in_ops)
{
    struct psn *nn = n->a;
    const char *name = NULL;
    size_t nl = 0;
    struct pv *nv = NULL;
    unsigned outer = ps->ops;
    ps->ops = 0;
    if (!n->op) {
        name = nn->s;
        nl = nn->n;
    } else {
        nv = sp_ps_ev(ps, nn);
        if (nv && (nv->kind == PV_STR || nv->kind == PV_CMD)) {
            name = nv->s;
            nl = nv->n;
        }
    }
    /* arguments */
    struct cargs ca = {0};
    for (struct psn *a = n->b; a; a = a->next)
        ca.n++;
    ca.a = ca.n ? sp_ps_alloc(ps, ca.n * sizeof(*ca.a)) : NULL;
    if (ca.n && !ca.a) {
        ps->ops |= outer;
        return NULL;
    }
    ps->ops = 0;
    size_t k = 0;
    for (struct psn *a = n->b; a; a = a->next, k++) {
        struct carg *c = &ca.a[k];
        c->node = a;
        if (a->kind == N_PARAM) {
            c->param = true;
            c->pname = sp_ps_lower(ps, a->s, a->n);
            c->pn = a->n;
            if (!c->pname)
                return NULL;
            if (a->a)
                c->v = sp_ps_ev(ps, a->a);
        } else {
            c->v = sp_ps_ev(ps, a);
        }
    }
    unsigned arg_ops = ps->ops;
    ps->ops |= outer;

    /* a script block invoked in place */
    if (n->op && nn->kind == N_BLOCK) {
        struct pvlist out = {0};
        if (!sp_ps_ev_stmts(ps, nn->a, &out))
            return NULL;
        return sp_ps_pvlist_value(ps, &out);
    }
    if (nv && nv->kind == PV_BLOCK) {
        if (nv->fl & PVF_CREATED)
            sp_ps_mark_unwrap(ps, n, nv, nv->ops);
        return NULL;
    }
    if (!name || nl == 0 || nl > 128)
        return NULL;
    char lbuf[140];
    size_t bl = 0;
    for (size_t i = 0; i < nl; i++)
        lbuf[bl++] = sp_tolower(name[i]);
    lbuf[bl] = '\0';
    if (bl > 4 && !strcmp(lbuf + bl - 4, ".exe"))
        lbuf[bl -= 4] = '\0';
    const char *l = cmd_alias(lbuf);
    bool found;
    /* PowerShell tries Get-<name> for a name it does not know */
    static const char *const getters[] = {"childitem", "item", "variable",
                                          "content", "command"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(getters); i++) {
        if (!strcmp(l, getters[i])) {
            snprintf(lbuf, sizeof(lbuf), "get-%s", getters[i]);
            l = lbuf;
            break;
        }
    }

    if (is_iex_name(l)) {
        struct pv *script = carg_named(&ca, "command", 1, &found);
        unsigned ops = arg_ops;
        if (!found)
            script = carg_posv(&ca, 0, &found);
        if (!found && has_input) {
            script = input;
            ops = in_ops;
        }
        sp_ps_mark_unwrap(ps, n, script, ops);
        return NULL;
    }
    if (!strcmp(l, "foreach-object")) {
        struct psn *blk = NULL;
        for (size_t i = 0; i < ca.n; i++) {
            if (ca.a[i].param &&
                sp_ps_name_is_prefix(ca.a[i].pname, ca.a[i].pn, "process", 1) &&
                i + 1 < ca.n && ca.a[i + 1].node->kind == N_BLOCK) {
                blk = ca.a[i + 1].node;
                break;
            }
            if (!ca.a[i].param && ca.a[i].node->kind == N_BLOCK) {
                blk = ca.a[i].node;
                break;
            }
        }
        if (!blk) {
            /* % MemberName */
            struct pv *mv = carg_posv(&ca, 0, &found);
            if (!found || !mv || mv->kind != PV_STR || !input)
                return NULL;
            char *ml = sp_ps_lower(ps, mv->s, mv->n);
            struct pv **items, *one;
            size_t cnt = sp_ps_enumerate(ps, input, &items, &one);
            struct pvlist out = {0};
            for (size_t i = 0; i < cnt && ml; i++) {
                struct pv *r = sp_ps_inst_member(ps, items[i], ml, NULL, 0,
                                                 false, n);
                if (!r || !sp_ps_pvlist_add(ps, &out, r))
                    return NULL;
            }
            return ml ? sp_ps_pvlist_value(ps, &out) : NULL;
        }
        return run_foreach(ps, blk, input, has_input);
    }
    if (!strcmp(l, "where-object")) {
        for (size_t i = 0; i < ca.n; i++) {
            if (ca.a[i].node->kind == N_BLOCK) {
                ps->opaque++;
                sp_ps_ev_stmts(ps, ca.a[i].node->a, NULL);
                ps->opaque--;
            }
        }
        return NULL;
    }
    if (!strcmp(l, "new-object")) {
        struct pv *tv = carg_named(&ca, "typename", 1, &found);
        if (!found)
            tv = carg_posv(&ca, 0, &found);
        struct pv *av = carg_named(&ca, "argumentlist", 1, &found);
        if (!found)
            av = carg_posv(&ca, 0, &found);
        if (!tv || tv->kind != PV_STR || (found && !av))
            return NULL;
        struct pv **items = NULL, *one;
        size_t cnt = 0;
        if (found) {
            if (av->kind == PV_ARR)
                items = ITEMS(av), cnt = av->count;
            else
                one = av, items = &one, cnt = 1;
        }
        return sp_ps_new_object(ps, tv->s, tv->n, items, cnt);
    }
    if (!strcmp(l, "get-variable")) {
        struct pv *nm = carg_named(&ca, "name", 1, &found);
        bool vo = carg_switch(&ca, "valueonly", 2);
        struct carg *pc0 = NULL;
        if (!found) {
            pc0 = carg_pos(&ca, 0);
            nm = pc0 ? pc0->v : NULL;
        }
        const char *vn;
        size_t vnl;
        if (!nm || nm->kind != PV_STR ||
            !sp_ps_var_lookup_wild(ps, nm->s, nm->n, &vn, &vnl))
            return NULL;
        struct psn *rn = pc0 ? pc0->node : n;
        struct pv *val = sp_ps_read_var(ps, rn, vn, vnl);
        ps->ops |= OP_VARIND;
        if (vo)
            return val;
        struct pv *o = sp_ps_pv_named(ps, PV_VAROBJ, vn, vnl);
        if (o)
            o->p = val;
        return o;
    }
    if (!strcmp(l, "set-variable")) {
        struct pv *nm = carg_named(&ca, "name", 1, &found);
        if (!found)
            nm = carg_posv(&ca, 0, &found);
        struct pv *val = carg_named(&ca, "value", 1, &found);
        if (!found)
            val = carg_posv(&ca, 0, &found);
        if (!found && has_input)
            val = input, found = true;
        if (!nm || nm->kind != PV_STR)
            return NULL;
        sp_ps_var_set(ps, nm->s, nm->n, found ? val : NULL);
        if (ps->root_stmt && ps->unwrap_target == n &&
            n == ps->root_stmt->a && !n->next)
            sp_ps_record_asg(ps, ps->root_stmt, nm->s, nm->n, val != NULL);
        return sp_ps_pv_new(ps, PV_VOID);
    }
    if (!strcmp(l, "get-childitem") || !strcmp(l, "get-item") ||
        !strcmp(l, "get-content")) {
        struct pv *path = carg_named(&ca, "path", 1, &found);
        struct carg *c0 = NULL;
        if (!found) {
            path = carg_named(&ca, "literalpath", 1, &found);
        }
        if (!found) {
            c0 = carg_pos(&ca, 0);
            path = c0 ? c0->v : NULL;
        }
        if (!path || path->kind != PV_STR)
            return NULL;
        if (path->n > 9 && sp_strncaseeq(path->s, "variable:", 9)) {
            const char *vn = path->s + 9;
            size_t vnl = path->n - 9;
            while (vnl && (*vn == '\\' || *vn == '/'))
                vn++, vnl--;
            if (!sp_ps_var_lookup_wild(ps, vn, vnl, &vn, &vnl))
                return NULL;
            struct pv *val = sp_ps_read_var(ps, c0 ? c0->node : n, vn, vnl);
            ps->ops |= OP_VARIND;
            if (!strcmp(l, "get-content"))
                return val;
            struct pv *o = sp_ps_pv_named(ps, PV_VAROBJ, vn, vnl);
            if (o)
                o->p = val;
            return o;
        }
        if (path->n > 4 && sp_strncaseeq(path->s, "env:", 4)) {
            const char *vn = path->s + 4;
            size_t vnl = path->n - 4;
            while (vnl && (*vn == '\\' || *vn == '/'))
                vn++, vnl--;
            struct pv *val = sp_ps_env_value(ps, vn, vnl);
            if (!strcmp(l, "get-content"))
                return val;
            struct pv *o = sp_ps_pv_named(ps, PV_VAROBJ, vn, vnl);
            if (o)
                o->p = val;
            return o;
        }
        return NULL;
    }
    if (!strcmp(l, "get-command")) {
        struct pv *nm = carg_named(&ca, "name", 1, &found);
        if (!found)
            nm = carg_posv(&ca, 0, &found);
        if (!nm || nm->kind != PV_STR || nm->n == 0)
            return NULL;
        if (memchr(nm->s, '*', nm->n) || memchr(nm->s, '?', nm->n)) {
            for (size_t i = 0; known_cmds[i]; i++)
                if (sp_ps_wild_match(nm->s, nm->n, known_cmds[i],
                                     strlen(known_cmds[i])))
                    return sp_ps_pv_named(ps, PV_CMD, known_cmds[i],
                                          strlen(known_cmds[i]));
            return NULL;
        }
        return sp_ps_pv_named(ps, PV_CMD, nm->s, nm->n);
    }
    if (!strcmp(l, "convertto-securestring")) {
        struct pv *str = carg_named(&ca, "string", 1, &found);
        struct pv *key = carg_named(&ca, "key", 1, &found);
        bool plain = carg_switch(&ca, "asplaintext", 1);
        carg_switch(&ca, "force", 1);
        if (!str) {
            str = carg_posv(&ca, 0, &found);
            if (!found && has_input)
                str = input;
        }
        if (!str)
            return NULL;
        if (plain && !key) {
            const char *s;
            size_t sl;
            return sp_ps_to_str(ps, str, &s, &sl)
                       ? sp_ps_pv_named(ps, PV_SECURE, s, sl)
                       : NULL;
        }
        return sp_ps_securestring_decrypt(ps, str, key);
    }
    if (!strcmp(l, "write-output")) {
        if (has_input && ca.n == 0)
            return input;
        struct pvlist out = {0};
        for (size_t i = 0; i < ca.n; i++) {
            if (ca.a[i].param)
                continue;
            if (!ca.a[i].v || !sp_ps_pvlist_add_all(ps, &out, ca.a[i].v))
                return NULL;
        }
        return sp_ps_pvlist_value(ps, &out);
    }
    if (!strcmp(l, "out-string")) {
        return has_input && input ? sp_ps_to_strv(ps, input) : NULL;
    }
    if (!strcmp(l, "invoke-command")) {
        struct pv *sb = carg_named(&ca, "scriptblock", 1, &found);
        if (!found)
            sb = carg_posv(&ca, 0, &found);
        if (sb && sb->kind == PV_BLOCK && (sb->fl & PVF_CREATED))
            sp_ps_mark_unwrap(ps, n, sb, sb->ops | arg_ops);
        return NULL;
    }
    if (!strcmp(l, "write-host") || !strcmp(l, "out-null") ||
        !strcmp(l, "start-sleep") || !strcmp(l, "out-file") ||
        !strcmp(l, "write-verbose") || !strcmp(l, "write-debug") ||
        !strcmp(l, "set-strictmode") || !strcmp(l, "clear-host"))
        return sp_ps_pv_new(ps, PV_VOID);
    return NULL;
}
