/*
 * deob_ps_parse.c - tokenizer and recursive-descent parser of the
 * PowerShell folding engine: source text to the syntax tree (struct psn)
 * of expressions, commands, pipelines, keyword statements and string
 * interpolation, with backtick escapes decoded and spans kept for the
 * rewrite.  Parse errors are recovered at the next statement separator
 * (the span becomes an N_OPAQUE node).  Bounded by PS_MAX_DEPTH and the
 * run's time budget.
 *
 * Larger than the other engine files because it is one unit: PowerShell
 * has no context-free token stream (whether `-x`, `2e3` or `a,b` is an
 * operator, a number or a bareword depends on expression vs argument
 * mode, newlines are blanks only inside ( and [, and "$( )" recurses into
 * the statement grammar), so the scanners and the grammar share one
 * cursor and its helpers.  Nodes live in the pass's arena.  Called on
 * the thread running the pass.
 */
#include "deob_ps_int.h"

#include <string.h>

/* ---- the cursor and tokens ---- */

struct psp {
    struct ps *ps;
    const char *s;
    size_t n, i;
    int depth;
    int nest;          /* inside ( or [: newlines are blanks */
    bool nocomma;      /* method arguments: ',' separates */
    struct sp_buf tmp; /* literal being decoded */
};

static struct psn *p_stmts(struct psp *p, int close);
static struct psn *p_stmt(struct psp *p);
static struct psn *p_pipeline(struct psp *p);
static struct psn *p_expr(struct psp *p);
static struct psn *p_unary(struct psp *p);
static struct psn *p_postfix(struct psp *p, struct psn *n);
static struct psn *p_primary(struct psp *p);

static int pc(struct psp *p)
{
    return p->i < p->n ? (unsigned char)p->s[p->i] : 0;
}

static int pk(struct psp *p, size_t k)
{
    return p->i + k < p->n ? (unsigned char)p->s[p->i + k] : 0;
}

static struct psn *mk(struct psp *p, int kind, size_t start)
{
    struct psn *n = sp_ps_alloc(p->ps, sizeof(*n));
    if (n) {
        n->kind = (uint8_t)kind;
        n->start = start;
        n->end = p->i;
    }
    return n;
}

bool sp_ps_is_word_char(int c)
{
    return deob_isalnum(c) || c == '_' || c >= 0x80;
}

/* Blanks, line continuations and comments; newlines only inside ( [. */
static void skip_ws(struct psp *p)
{
    for (;;) {
        int c = pc(p);
        if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
            p->i++;
        } else if (c == '`' && (pk(p, 1) == '\n' || pk(p, 1) == '\r')) {
            p->i += 2;
            if (pc(p) == '\n')
                p->i++;
        } else if (c == 0xC2 && pk(p, 1) == 0xA0) {
            p->i += 2;
        } else if (c == '<' && pk(p, 1) == '#') {
            size_t e = p->i + 2;
            while (e + 1 < p->n && !(p->s[e] == '#' && p->s[e + 1] == '>'))
                e++;
            p->i = SP_MIN(e + 2, p->n);
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n' && p->s[p->i] != '\r')
                p->i++;
        } else if (p->nest > 0 && (c == '\n' || c == '\r')) {
            p->i++;
        } else {
            return;
        }
    }
}

static void skip_wsnl(struct psp *p)
{
    for (;;) {
        skip_ws(p);
        if (pc(p) == '\n' || pc(p) == '\r')
            p->i++;
        else
            return;
    }
}

/* Case-insensitive keyword at the cursor, followed by a non-word char. */
static bool at_kw(struct psp *p, const char *kw)
{
    size_t k = strlen(kw);
    if (p->i + k > p->n || !sp_strncaseeq(p->s + p->i, kw, k))
        return false;
    int c = p->i + k < p->n ? (unsigned char)p->s[p->i + k] : 0;
    return !sp_ps_is_word_char(c) && c != '-';
}

/* Skips a balanced span from an opening bracket at the cursor. */
static void skip_balanced(struct psp *p)
{
    int depth = 0;
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '\'' || c == '"') {
            size_t j = p->i + 1;
            while (j < p->n && p->s[j] != c) {
                if (c == '"' && p->s[j] == '`')
                    j++;
                j++;
            }
            p->i = SP_MIN(j + 1, p->n);
            continue;
        }
        if (c == '`') {
            p->i = SP_MIN(p->i + 2, p->n);
            continue;
        }
        if (c == '(' || c == '{' || c == '[')
            depth++;
        else if (c == ')' || c == '}' || c == ']') {
            if (--depth <= 0) {
                p->i++;
                return;
            }
        }
        p->i++;
    }
}

/* Error recovery: to the next statement separator at this level. */
static void skip_to_sep(struct psp *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ';' || c == '\n' || c == '\r' || c == ')' || c == '}' ||
            c == ']')
            return;
        if (c == '(' || c == '{' || c == '[' || c == '\'' || c == '"') {
            if (c == '\'' || c == '"') {
                size_t j = p->i + 1;
                while (j < p->n && p->s[j] != c) {
                    if (c == '"' && p->s[j] == '`')
                        j++;
                    j++;
                }
                p->i = SP_MIN(j + 1, p->n);
            } else {
                skip_balanced(p);
            }
            continue;
        }
        if (c == '`')
            p->i++;
        p->i++;
    }
}

/* Decodes a backtick escape (the char after the tick at p->s[j]) into b;
 * returns true if it was an obfuscation tick (no special meaning). */
static bool tick_escape(struct psp *p, size_t j, struct sp_buf *b)
{
    char c = p->s[j];
    switch (c) {
    case '0':
        sp_buf_putc(b, '\0');
        return false;
    case 'a':
        sp_buf_putc(b, '\a');
        return false;
    case 'b':
        sp_buf_putc(b, '\b');
        return false;
    case 'e':
        sp_buf_putc(b, 0x1B);
        return false;
    case 'f':
        sp_buf_putc(b, '\f');
        return false;
    case 'n':
        sp_buf_putc(b, '\n');
        return false;
    case 'r':
        sp_buf_putc(b, '\r');
        return false;
    case 't':
        sp_buf_putc(b, '\t');
        return false;
    case 'v':
        sp_buf_putc(b, '\v');
        return false;
    default:
        sp_buf_putc(b, c);
        return deob_isalnum((unsigned char)c);
    }
}

static const char *tmp_take(struct psp *p, size_t *n)
{
    *n = p->tmp.len;
    const char *s = sp_ps_strdup(p->ps, p->tmp.data ? p->tmp.data : "",
                                 p->tmp.len);
    sp_buf_reset(&p->tmp);
    return s;
}

/* The word read into p->tmp since start (NULL when nothing was read). */
static struct psn *word_node(struct psp *p, size_t start, bool tick)
{
    if (p->i == start)
        return NULL;
    struct psn *n = mk(p, N_WORD, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    if (tick)
        n->flags |= NF_TICK;
    return n->s ? n : NULL;
}

/* A bareword (command name or argument). */
static struct psn *p_word(struct psp *p, bool cmdname)
{
    size_t start = p->i;
    bool tick = false;
    sp_buf_reset(&p->tmp);
    while (p->i < p->n) {
        int c = pc(p);
        if (deob_isspace(c) || strchr(";|&(){},", c) || c == '\'' ||
            c == '"' || (!cmdname && (c == '<' || c == '>')))
            break;
        if (c == '`' && p->i + 1 < p->n) {
            if (pk(p, 1) == '\n' || pk(p, 1) == '\r')
                break;
            if (tick_escape(p, p->i + 1, &p->tmp))
                tick = true;
            p->i += 2;
            continue;
        }
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    return word_node(p, start, tick);
}

/* Scans a number at the cursor; true (and advances) only if the whole
 * token is numeric. */
static bool scan_number(struct psp *p, int64_t *out, bool *isint)
{
    size_t j = p->i;
    bool neg = false;
    if (j < p->n && (p->s[j] == '-' || p->s[j] == '+'))
        neg = p->s[j++] == '-';
    uint64_t v = 0;
    size_t d = 0;
    *isint = true;
    if (j + 1 < p->n && p->s[j] == '0' &&
        (p->s[j + 1] == 'x' || p->s[j + 1] == 'X')) {
        j += 2;
        while (j < p->n && deob_hexval((unsigned char)p->s[j]) >= 0 &&
               d < 16) {
            v = v * 16 + (uint64_t)deob_hexval((unsigned char)p->s[j]);
            j++, d++;
        }
    } else {
        while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') {
            if (v < (uint64_t)1e17)
                v = v * 10 + (uint64_t)(p->s[j] - '0');
            else
                *isint = false;
            j++, d++;
        }
        if (j + 1 < p->n && p->s[j] == '.' && p->s[j + 1] >= '0' &&
            p->s[j + 1] <= '9') {
            *isint = false;
            j++;
            while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9')
                j++;
        }
        if (d && j < p->n && (p->s[j] == 'e' || p->s[j] == 'E') &&
            j + 1 < p->n && (deob_isalnum((unsigned char)p->s[j + 1]) ||
                             p->s[j + 1] == '-')) {
            size_t k = j + 1;
            if (p->s[k] == '-' || p->s[k] == '+')
                k++;
            if (k < p->n && p->s[k] >= '0' && p->s[k] <= '9') {
                *isint = false;
                j = k;
                while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9')
                    j++;
            }
        }
    }
    if (d == 0)
        return false;
    static const char *const sfx[] = {"kb", "mb", "gb", "tb", "pb"};
    for (size_t k = 0; k < SP_ARRAY_SIZE(sfx); k++) {
        if (j + 2 <= p->n && sp_strncaseeq(p->s + j, sfx[k], 2) &&
            !(j + 2 < p->n && sp_ps_is_word_char((unsigned char)p->s[j + 2]))) {
            for (size_t m = 0; m <= k; m++)
                v = v < ((uint64_t)1 << 50) ? v * 1024 : v;
            j += 2;
            break;
        }
    }
    if (j < p->n && (p->s[j] == 'l' || p->s[j] == 'L' || p->s[j] == 'd' ||
                     p->s[j] == 'D') &&
        !(j + 1 < p->n && sp_ps_is_word_char((unsigned char)p->s[j + 1])))
        j++;
    if (j < p->n && (sp_ps_is_word_char((unsigned char)p->s[j]) ||
                     (p->s[j] == '.' && j + 1 < p->n &&
                      deob_isalpha((unsigned char)p->s[j + 1]))))
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    p->i = j;
    return true;
}

static struct psn *p_number(struct psp *p)
{
    size_t start = p->i;
    int64_t v;
    bool isint;
    if (!scan_number(p, &v, &isint))
        return NULL;
    struct psn *n = mk(p, N_NUM, start);
    if (n) {
        n->i = v;
        if (isint)
            n->flags |= NF_NUMOK;
    }
    return n;
}

/* $name, ${name}, $_, $? ... at the cursor; NULL if not a variable. */
static struct psn *p_var(struct psp *p)
{
    size_t start = p->i, j = p->i + 1;
    bool tick = false;
    sp_buf_reset(&p->tmp);
    if (j < p->n && p->s[j] == '{') {
        j++;
        while (j < p->n && p->s[j] != '}') {
            if (p->s[j] == '`' && j + 1 < p->n) {
                sp_buf_putc(&p->tmp, p->s[j + 1]);
                tick = true;
                j += 2;
                continue;
            }
            sp_buf_putc(&p->tmp, p->s[j]);
            j++;
        }
        if (j >= p->n)
            return NULL;
        j++;
        p->i = j;
        struct psn *n = mk(p, N_VAR, start);
        if (!n)
            return NULL;
        n->s = tmp_take(p, &n->n);
        n->flags |= NF_BRACED | (tick ? NF_TICK : 0);
        return n->s ? n : NULL;
    }
    if (j < p->n && strchr("_?$^", p->s[j]) && p->s[j] &&
        !(p->s[j] == '_' && j + 1 < p->n &&
          sp_ps_is_word_char((unsigned char)p->s[j + 1]))) {
        sp_buf_putc(&p->tmp, p->s[j]);
        j++;
    } else {
        size_t k = j;
        while (k < p->n && sp_ps_is_word_char((unsigned char)p->s[k]))
            k++;
        if (k == j)
            return NULL;
        if (k + 1 < p->n && p->s[k] == ':' &&
            sp_ps_is_word_char((unsigned char)p->s[k + 1])) {
            k++;
            while (k < p->n && sp_ps_is_word_char((unsigned char)p->s[k]))
                k++;
        }
        sp_buf_put(&p->tmp, p->s + j, k - j);
        j = k;
    }
    p->i = j;
    struct psn *n = mk(p, N_VAR, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    return n->s ? n : NULL;
}

static void list_add(struct psn **head, struct psn **tail, struct psn *n)
{
    if (*tail)
        (*tail)->next = n;
    else
        *head = n;
    *tail = n;
}

/* "..." or @"..."@ at the cursor (here: whether it is a here-string). */
static struct psn *p_xstr(struct psp *p, bool here)
{
    size_t start = p->i;
    p->i += here ? 2 : 1;
    struct psn *head = NULL, *tail = NULL;
    bool tick = false;
    size_t lit_start = p->i;
    sp_buf_reset(&p->tmp);
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
#define FLUSH_LIT()                                                         \
    do {                                                                    \
        if (p->tmp.len) {                                                   \
            struct psn *l_ = mk(p, N_STR, lit_start);                       \
            if (!l_)                                                        \
                return NULL;                                                \
            l_->end = p->i;                                                 \
            l_->s = tmp_take(p, &l_->n);                                    \
            if (!l_->s)                                                     \
                return NULL;                                                \
            list_add(&head, &tail, l_);                                     \
        }                                                                   \
    } while (0)
    for (;;) {
        if (p->i >= p->n)
            return NULL;
        int c = pc(p);
        if (!here && c == '"') {
            if (pk(p, 1) == '"') {
                sp_buf_putc(&p->tmp, '"');
                p->i += 2;
                continue;
            }
            break;
        }
        if (here && (c == '\n' || c == '\r')) {
            size_t k = p->i;
            while (k < p->n && (p->s[k] == '\n' || p->s[k] == '\r'))
                k++;
            if (k + 1 < p->n && p->s[k] == '"' && p->s[k + 1] == '@') {
                p->i = k;
                break;
            }
        }
        if (c == '`' && p->i + 1 < p->n) {
            if (pk(p, 1) == 'u' && pk(p, 2) == '{') {
                size_t k = p->i + 3;
                uint32_t v = 0;
                while (k < p->n && deob_hexval((unsigned char)p->s[k]) >= 0 &&
                       k < p->i + 10)
                    v = v * 16 + (uint32_t)deob_hexval((unsigned char)p->s[k++]);
                if (k < p->n && p->s[k] == '}') {
                    deob_utf8_put(&p->tmp, v);
                    p->i = k + 1;
                    continue;
                }
            }
            if (tick_escape(p, p->i + 1, &p->tmp))
                tick = true;
            p->i += 2;
            continue;
        }
        if (c == '$' && p->i + 1 < p->n) {
            if (pk(p, 1) == '(') {
                FLUSH_LIT();
                size_t ss = p->i;
                p->i += 2;
                int nest = p->nest;
                bool nc = p->nocomma;
                p->nest = 0;
                p->nocomma = false;
                struct psn *body = p_stmts(p, ')');
                p->nest = nest;
                p->nocomma = nc;
                if (pc(p) != ')')
                    return NULL;
                p->i++;
                struct psn *sub = mk(p, N_SUB, ss);
                if (!sub)
                    return NULL;
                sub->a = body;
                list_add(&head, &tail, sub);
                lit_start = p->i;
                continue;
            }
            size_t save = p->i;
            struct sp_buf tmp_saved;
            tmp_saved = p->tmp;
            /* p_var uses tmp: park the literal being built */
            sp_buf_init(&p->tmp, PS_ARENA_MAX);
            struct psn *v = p_var(p);
            sp_buf_fini(&p->tmp);
            p->tmp = tmp_saved;
            if (v) {
                size_t vs = v->start;
                p->i = vs;
                FLUSH_LIT();
                p->i = v->end;
                list_add(&head, &tail, v);
                lit_start = p->i;
                continue;
            }
            p->i = save;
        }
        if (p->tmp.len == 0)
            lit_start = p->i;
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    FLUSH_LIT();
#undef FLUSH_LIT
    p->i += here ? 2 : 1;
    p->depth--;
    struct psn *n = mk(p, N_XSTR, start);
    if (!n)
        return NULL;
    n->a = head;
    if (tick)
        n->flags |= NF_TICK;
    return n;
}

static struct psn *p_sqstr(struct psp *p, bool here)
{
    size_t start = p->i;
    p->i += here ? 2 : 1;
    sp_buf_reset(&p->tmp);
    for (;;) {
        if (p->i >= p->n)
            return NULL;
        int c = pc(p);
        if (!here && c == '\'') {
            if (pk(p, 1) == '\'') {
                sp_buf_putc(&p->tmp, '\'');
                p->i += 2;
                continue;
            }
            p->i++;
            break;
        }
        if (here && (c == '\n' || c == '\r')) {
            size_t k = p->i;
            while (k < p->n && (p->s[k] == '\n' || p->s[k] == '\r'))
                k++;
            if (k + 1 < p->n && p->s[k] == '\'' && p->s[k + 1] == '@') {
                p->i = k + 2;
                break;
            }
        }
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    struct psn *n = mk(p, N_STR, start);
    if (!n)
        return NULL;
    n->s = tmp_take(p, &n->n);
    return n->s ? n : NULL;
}

/* [type] at the cursor: the name with blanks removed. */
static bool scan_type(struct psp *p, const char **name, size_t *n)
{
    size_t j = p->i + 1;
    int depth = 1;
    sp_buf_reset(&p->tmp);
    while (j < p->n) {
        char c = p->s[j];
        if (c == '[')
            depth++;
        else if (c == ']' && --depth == 0)
            break;
        else if (c == '\n' || c == '\r' || c == ';' || c == '\'' ||
                 c == '"' || c == '{' || c == '}' || c == '$' || c == '|')
            return false;
        if (c == '`') {
            j++;
            if (j < p->n)
                sp_buf_putc(&p->tmp, p->s[j]);
            j++;
            continue;
        }
        if (!deob_isspace((unsigned char)c))
            sp_buf_putc(&p->tmp, c);
        j++;
    }
    if (j >= p->n || p->tmp.len == 0)
        return false;
    p->i = j + 1;
    *name = tmp_take(p, n);
    return *name != NULL;
}

/* ---- dash operators ---- */

struct dashop {
    const char *name;
    uint16_t op;
    uint8_t level;      /* 1 logic, 2 compare, 5 format, 9 unary only */
    bool unary;         /* also a unary operator */
};

static const struct dashop dashops[] = {
    {"and", B_AND, 1, false}, {"or", B_OR, 1, false},
    {"xor", B_XOR, 1, false}, {"join", B_JOIN, 2, true},
    {"split", B_SPLIT, 2, true}, {"replace", B_REPLACE, 2, false},
    {"bxor", B_BXOR, 2, false}, {"band", B_BAND, 2, false},
    {"bor", B_BOR, 2, false}, {"shl", B_SHL, 2, false},
    {"shr", B_SHR, 2, false}, {"as", B_AS, 2, false},
    {"is", B_IS, 2, false}, {"isnot", B_ISNOT, 2, false},
    {"eq", B_EQ, 2, false}, {"ne", B_NE, 2, false}, {"gt", B_GT, 2, false},
    {"ge", B_GE, 2, false}, {"lt", B_LT, 2, false}, {"le", B_LE, 2, false},
    {"like", B_LIKE, 2, false}, {"notlike", B_NOTLIKE, 2, false},
    {"match", B_MATCH, 2, false}, {"notmatch", B_NOTMATCH, 2, false},
    {"contains", B_CONTAINS, 2, false},
    {"notcontains", B_NOTCONTAINS, 2, false}, {"in", B_IN, 2, false},
    {"notin", B_NOTIN, 2, false}, {"f", B_FORMAT, 5, false},
    {"not", U_NOT, 9, true}, {"bnot", U_BNOT, 9, true},
};

/* The dash operator at the cursor ('-'), its op (with B_CASE) and
 * length, or NULL. */
static const struct dashop *peek_dashop(struct psp *p, uint16_t *op,
                                        size_t *len)
{
    if (pc(p) != '-')
        return NULL;
    size_t j = p->i + 1, k = j;
    while (k < p->n && deob_isalpha((unsigned char)p->s[k]) && k - j < 12)
        k++;
    if (k == j || (k < p->n && (sp_ps_is_word_char((unsigned char)p->s[k]) ||
                                p->s[k] == '-')))
        return NULL;
    char name[16];
    size_t nl = k - j;
    for (size_t m = 0; m < nl; m++)
        name[m] = sp_tolower(p->s[j + m]);
    name[nl] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const char *nm = name;
        uint16_t cs = 0;
        if (pass == 1) {
            if (nl < 2 || (name[0] != 'i' && name[0] != 'c'))
                break;
            cs = name[0] == 'c' ? B_CASE : 0;
            nm = name + 1;
        }
        for (size_t d = 0; d < SP_ARRAY_SIZE(dashops); d++) {
            if (!strcmp(dashops[d].name, nm)) {
                if (pass == 1 && dashops[d].level != 2)
                    return NULL;
                *op = (uint16_t)(dashops[d].op | cs);
                *len = k - p->i;
                return &dashops[d];
            }
        }
    }
    return NULL;
}

/* ---- expressions ---- */

static struct psn *mk_bin(struct psp *p, uint16_t op, struct psn *l,
                          struct psn *r)
{
    struct psn *n = mk(p, N_BIN, l->start);
    if (n) {
        n->op = op;
        n->a = l;
        n->b = r;
        n->end = r->end;
    }
    return n;
}

/* Method or index arguments up to close. */
static struct psn *p_args(struct psp *p, int close, bool *ok)
{
    struct psn *head = NULL, *tail = NULL;
    int nest = p->nest;
    bool nc = p->nocomma;
    p->nest = 1;
    p->nocomma = true;
    *ok = false;
    skip_wsnl(p);
    while (pc(p) != close) {
        struct psn *a = p_expr(p);
        if (!a)
            goto out;
        list_add(&head, &tail, a);
        skip_wsnl(p);
        if (pc(p) == ',') {
            p->i++;
            skip_wsnl(p);
            continue;
        }
        if (pc(p) != close)
            goto out;
    }
    p->i++;
    *ok = true;
out:
    p->nest = nest;
    p->nocomma = nc;
    return head;
}

static struct psn *p_member_name(struct psp *p)
{
    int c = pc(p);
    if (c == '\'')
        return p_sqstr(p, false);
    if (c == '"')
        return p_xstr(p, false);
    if (c == '(' || c == '$')
        return p_primary(p);
    size_t start = p->i;
    bool tick = false;
    sp_buf_reset(&p->tmp);
    while (p->i < p->n) {
        c = pc(p);
        if (c == '`' && p->i + 1 < p->n && sp_ps_is_word_char(pk(p, 1))) {
            sp_buf_putc(&p->tmp, (char)pk(p, 1));
            tick = true;
            p->i += 2;
            continue;
        }
        if (!sp_ps_is_word_char(c))
            break;
        sp_buf_putc(&p->tmp, (char)c);
        p->i++;
    }
    return word_node(p, start, tick);
}

static struct psn *p_postfix(struct psp *p, struct psn *n)
{
    while (n) {
        int c = pc(p);
        if ((c == '.' && pk(p, 1) != '.' && !deob_isspace(pk(p, 1)) &&
             pk(p, 1)) ||
            (c == ':' && pk(p, 1) == ':')) {
            bool stat = c == ':';
            size_t save = p->i;
            p->i += stat ? 2 : 1;
            struct psn *name = p_member_name(p);
            if (!name) {
                p->i = save;
                return n;
            }
            struct psn *m = mk(p, N_MEMBER, n->start);
            if (!m)
                return NULL;
            m->a = n;
            m->b = name;
            if (stat)
                m->flags |= NF_STATIC;
            if (pc(p) == '(') {
                bool ok;
                p->i++;
                m->c = p_args(p, ')', &ok);
                if (!ok)
                    return NULL;
                m->flags |= NF_CALL;
            }
            m->end = p->i;
            n = m;
        } else if (c == '[') {
            p->i++;
            int nest = p->nest;
            bool nc = p->nocomma;
            p->nest = 1;
            p->nocomma = false;
            skip_wsnl(p);
            struct psn *ix = p_expr(p);
            skip_wsnl(p);
            p->nest = nest;
            p->nocomma = nc;
            if (!ix || pc(p) != ']')
                return NULL;
            p->i++;
            struct psn *m = mk(p, N_INDEX, n->start);
            if (!m)
                return NULL;
            m->a = n;
            m->b = ix;
            n = m;
        } else if ((c == '+' && pk(p, 1) == '+') ||
                   (c == '-' && pk(p, 1) == '-' && n->kind == N_VAR)) {
            if (n->kind != N_VAR)
                return n;
            p->i += 2;
            struct psn *m = mk(p, N_UN, n->start);
            if (!m)
                return NULL;
            m->op = c == '+' ? U_POSTINC : U_POSTDEC;
            m->a = n;
            n = m;
        } else {
            return n;
        }
    }
    return n;
}

static struct psn *p_block(struct psp *p)
{
    size_t start = p->i;
    p->i++;
    int nest = p->nest;
    bool nc = p->nocomma;
    p->nest = 0;
    p->nocomma = false;
    struct psn *body = p_stmts(p, '}');
    p->nest = nest;
    p->nocomma = nc;
    if (pc(p) != '}')
        return NULL;
    p->i++;
    struct psn *n = mk(p, N_BLOCK, start);
    if (n)
        n->a = body;
    return n;
}

static struct psn *p_primary(struct psp *p)
{
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    struct psn *r = NULL;
    size_t start = p->i;
    int c = pc(p);
    if (c == '$' && pk(p, 1) == '(') {
        p->i += 2;
        int nest = p->nest;
        bool nc = p->nocomma;
        p->nest = 0;
        p->nocomma = false;
        struct psn *body = p_stmts(p, ')');
        p->nest = nest;
        p->nocomma = nc;
        if (pc(p) == ')') {
            p->i++;
            r = mk(p, N_SUB, start);
            if (r)
                r->a = body;
        }
    } else if (c == '$') {
        r = p_var(p);
    } else if (c == '@' && (pk(p, 1) == '(')) {
        p->i += 2;
        int nest = p->nest;
        bool nc = p->nocomma;
        p->nest = 0;
        p->nocomma = false;
        struct psn *body = p_stmts(p, ')');
        p->nest = nest;
        p->nocomma = nc;
        if (pc(p) == ')') {
            p->i++;
            r = mk(p, N_ARRSUB, start);
            if (r)
                r->a = body;
        }
    } else if (c == '@' && pk(p, 1) == '{') {
        p->i++;
        skip_balanced(p);
        r = mk(p, N_HASH, start);
    } else if (c == '@' && pk(p, 1) == '"') {
        r = p_xstr(p, true);
    } else if (c == '@' && pk(p, 1) == '\'') {
        r = p_sqstr(p, true);
    } else if (c == '(') {
        p->i++;
        int nest = p->nest;
        bool nc = p->nocomma;
        p->nest = 1;
        p->nocomma = false;
        skip_wsnl(p);
        struct psn *in = pc(p) == ')' ? NULL : p_pipeline(p);
        skip_wsnl(p);
        p->nest = nest;
        p->nocomma = nc;
        if (pc(p) == ')') {
            p->i++;
            r = mk(p, N_PAREN, start);
            if (r)
                r->a = in;
        }
    } else if (c == '{') {
        r = p_block(p);
    } else if (c == '\'') {
        r = p_sqstr(p, false);
    } else if (c == '"') {
        r = p_xstr(p, false);
    } else if ((c >= '0' && c <= '9') ||
               (c == '.' && pk(p, 1) >= '0' && pk(p, 1) <= '9')) {
        r = p_number(p);
    }
    p->depth--;
    return r;
}

/* Can an operand start at the cursor (for [type] casts)? */
static bool operand_start(struct psp *p)
{
    int c = pc(p);
    return c == '$' || c == '(' || c == '\'' || c == '"' || c == '[' ||
           c == '@' || (c >= '0' && c <= '9') ||
           (c == '-' && (pk(p, 1) == '-' || (pk(p, 1) >= '0' && pk(p, 1) <= '9'))) ||
           (c == '+' && pk(p, 1) == '+') || c == '!' ||
           (c == '-' && deob_isalpha(pk(p, 1)));
}

static struct psn *p_unary(struct psp *p)
{
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    skip_ws(p);
    size_t start = p->i;
    int c = pc(p);
    struct psn *r = NULL;
    uint16_t op = 0;
    size_t len;
    if (c == '-' && deob_isalpha(pk(p, 1))) {
        const struct dashop *d = peek_dashop(p, &op, &len);
        if (d && d->unary) {
            p->i += len;
            skip_wsnl(p);
            struct psn *x = p_unary(p);
            if (x && (r = mk(p, N_UN, start))) {
                r->op = d->op == B_JOIN ? U_JOIN
                        : d->op == B_SPLIT ? U_SPLIT
                                           : d->op;
                r->a = x;
            }
        }
    } else if ((c == '-' || c == '+') && pk(p, 1) == c) {
        p->i += 2;
        skip_ws(p);
        struct psn *x = p_unary(p);
        if (x && (r = mk(p, N_UN, start))) {
            r->op = c == '+' ? U_PREINC : U_PREDEC;
            r->a = x;
        }
    } else if (c == '-' || c == '+' || c == '!' || c == ',') {
        p->i++;
        skip_wsnl(p);
        struct psn *x = p_unary(p);
        if (x && (r = mk(p, N_UN, start))) {
            r->op = c == '-' ? U_NEG : c == '+' ? U_PLUS
                    : c == '!' ? U_NOT : U_COMMA;
            r->a = x;
        }
    } else if (c == '[') {
        const char *tn;
        size_t tl;
        if (scan_type(p, &tn, &tl)) {
            size_t after = p->i;
            if (pc(p) == ':' && pk(p, 1) == ':') {
                struct psn *t = mk(p, N_TYPE, start);
                if (t) {
                    t->s = tn;
                    t->n = tl;
                    r = p_postfix(p, t);
                }
            } else {
                skip_ws(p);
                if (operand_start(p)) {
                    struct psn *x = p_unary(p);
                    if (x && (r = mk(p, N_CAST, start))) {
                        r->s = tn;
                        r->n = tl;
                        r->a = x;
                    }
                } else {
                    p->i = after;
                    r = mk(p, N_TYPE, start);
                    if (r) {
                        r->s = tn;
                        r->n = tl;
                    }
                }
            }
        }
    } else {
        r = p_postfix(p, p_primary(p));
    }
    p->depth--;
    return r;
}

static struct psn *p_comma(struct psp *p)
{
    struct psn *first = p_unary(p);
    if (!first || p->nocomma)
        return first;
    size_t save = p->i;
    skip_ws(p);
    if (pc(p) != ',') {
        p->i = save;
        return first;
    }
    struct psn *arr = mk(p, N_ARRAY, first->start);
    if (!arr)
        return NULL;
    struct psn *head = first, *tail = first;
    while (pc(p) == ',') {
        p->i++;
        skip_wsnl(p);
        struct psn *x = p_unary(p);
        if (!x)
            return NULL;
        list_add(&head, &tail, x);
        save = p->i;
        skip_ws(p);
    }
    p->i = save;
    arr->a = head;
    arr->end = p->i;
    return arr;
}

static struct psn *p_range(struct psp *p)
{
    struct psn *l = p_comma(p);
    if (!l)
        return NULL;
    size_t save = p->i;
    skip_ws(p);
    if (pc(p) == '.' && pk(p, 1) == '.') {
        p->i += 2;
        skip_wsnl(p);
        struct psn *r = p_comma(p);
        return r ? mk_bin(p, B_RANGE, l, r) : NULL;
    }
    p->i = save;
    return l;
}

static struct psn *p_level(struct psp *p, int level);

static struct psn *p_fmt(struct psp *p)
{
    struct psn *l = p_range(p);
    while (l) {
        size_t save = p->i;
        uint16_t op;
        size_t len;
        skip_ws(p);
        const struct dashop *d = peek_dashop(p, &op, &len);
        if (!d || d->level != 5) {
            p->i = save;
            break;
        }
        p->i += len;
        skip_wsnl(p);
        struct psn *r = p_range(p);
        l = r ? mk_bin(p, B_FORMAT, l, r) : NULL;
    }
    return l;
}

static struct psn *p_mul(struct psp *p)
{
    struct psn *l = p_fmt(p);
    while (l) {
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p);
        if ((c != '*' && c != '/' && c != '%') || pk(p, 1) == '=') {
            p->i = save;
            break;
        }
        p->i++;
        skip_wsnl(p);
        struct psn *r = p_fmt(p);
        l = r ? mk_bin(p, c == '*' ? B_MUL : c == '/' ? B_DIV : B_MOD, l, r)
              : NULL;
    }
    return l;
}

static struct psn *p_add(struct psp *p)
{
    struct psn *l = p_mul(p);
    while (l) {
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p), c1 = pk(p, 1);
        if (!(c == '+' && c1 != '+' && c1 != '=') &&
            !(c == '-' && c1 != '-' && c1 != '=' && !deob_isalpha(c1))) {
            p->i = save;
            break;
        }
        p->i++;
        skip_wsnl(p);
        struct psn *r = p_mul(p);
        l = r ? mk_bin(p, c == '+' ? B_ADD : B_SUB, l, r) : NULL;
    }
    return l;
}

static struct psn *p_level(struct psp *p, int level)
{
    struct psn *l = level == 1 ? p_level(p, 2) : p_add(p);
    while (l) {
        size_t save = p->i;
        uint16_t op;
        size_t len;
        skip_ws(p);
        const struct dashop *d = peek_dashop(p, &op, &len);
        if (!d || d->level != level) {
            p->i = save;
            break;
        }
        p->i += len;
        skip_wsnl(p);
        struct psn *r = level == 1 ? p_level(p, 2) : p_add(p);
        l = r ? mk_bin(p, op, l, r) : NULL;
    }
    return l;
}

static struct psn *p_expr(struct psp *p)
{
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    struct psn *r = p_level(p, 1);
    p->depth--;
    return r;
}

/* ---- commands and pipelines ---- */

static bool cmd_start(struct psp *p)
{
    int c = pc(p), c1 = pk(p, 1);
    if (c == '&')
        return c1 != '&';
    if (c == '.')
        return c1 == ' ' || c1 == '\t' || c1 == '$' || c1 == '(' ||
               c1 == '\'' || c1 == '"' || c1 == '{' || c1 == '&' ||
               c1 == '\\' || c1 == '/' || (c1 == '.' && (pk(p, 2) == '\\' ||
                                                         pk(p, 2) == '/'));
    if (deob_isalpha(c) || c == '_' || c == '\\' || c >= 0x80)
        return true;
    if ((c == '%' || c == '?') && (c1 == 0 || deob_isspace(c1) || c1 == '{'))
        return true;
    if (c >= '0' && c <= '9') {
        size_t save = p->i;
        int64_t v;
        bool isint;
        bool num = scan_number(p, &v, &isint);
        p->i = save;
        return !num;
    }
    return false;
}

static struct psn *p_argval(struct psp *p)
{
    int c = pc(p);
    if (c == '(' || c == '$' || c == '@' || c == '{' || c == '\'' ||
        c == '"')
        return p_postfix(p, p_primary(p));
    if ((c >= '0' && c <= '9') || ((c == '-' || c == '+' || c == '.') &&
                                   pk(p, 1) >= '0' && pk(p, 1) <= '9')) {
        struct psn *n = p_number(p);
        if (n)
            return n;
    }
    return p_word(p, false);
}

static struct psn *p_command(struct psp *p)
{
    size_t start = p->i;
    struct psn *cmd = mk(p, N_CMD, start);
    if (!cmd)
        return NULL;
    int c = pc(p);
    if (c == '&' || (c == '.' && !(pk(p, 1) == '\\' || pk(p, 1) == '/' ||
                                   pk(p, 1) == '.'))) {
        cmd->op = (uint16_t)c;
        p->i++;
        skip_ws(p);
        c = pc(p);
        if (c == '(' || c == '$' || c == '\'' || c == '"' || c == '{' ||
            c == '@')
            cmd->a = p_postfix(p, p_primary(p));
        else
            cmd->a = p_word(p, true);
    } else {
        cmd->a = p_word(p, true);
    }
    if (!cmd->a)
        return NULL;
    int nest = p->nest;
    p->nest = 0;
    struct psn *head = NULL, *tail = NULL;
    for (;;) {
        skip_ws(p);
        c = pc(p);
        if (!c || strchr("\r\n;|)}&", c))
            break;
        if (c == '>' || c == '<' ||
            ((c == '2' || c == '1' || c == '*' || (c >= '3' && c <= '6')) &&
             pk(p, 1) == '>')) {
            while (pc(p) && strchr("0123456*><&", pc(p)))
                p->i++;
            skip_ws(p);
            if (pc(p) && !strchr("\r\n;|)}", pc(p)))
                p_argval(p);
            continue;
        }
        struct psn *arg;
        if (c == '-' && (deob_isalpha(pk(p, 1)) || pk(p, 1) == '`')) {
            size_t ps0 = p->i;
            p->i++;
            bool tick = false;
            sp_buf_reset(&p->tmp);
            while (p->i < p->n) {
                int d = pc(p);
                if (d == '`' && p->i + 1 < p->n && deob_isalnum(pk(p, 1))) {
                    sp_buf_putc(&p->tmp, (char)pk(p, 1));
                    tick = true;
                    p->i += 2;
                    continue;
                }
                if (deob_isspace(d) || strchr(";|&(){},:'\"", d))
                    break;
                sp_buf_putc(&p->tmp, (char)d);
                p->i++;
            }
            arg = mk(p, N_PARAM, ps0);
            if (!arg)
                return NULL;
            arg->s = tmp_take(p, &arg->n);
            if (tick)
                arg->flags |= NF_TICK;
            if (pc(p) == ':') {
                p->i++;
                arg->a = p_argval(p);
                arg->end = p->i;
            }
        } else {
            arg = p_argval(p);
            if (!arg) {
                p->nest = nest;
                return NULL;
            }
            size_t save = p->i;
            skip_ws(p);
            if (pc(p) == ',') {
                struct psn *arr = mk(p, N_ARRAY, arg->start);
                if (!arr)
                    return NULL;
                struct psn *h = arg, *t = arg;
                while (pc(p) == ',') {
                    p->i++;
                    skip_wsnl(p);
                    struct psn *x = p_argval(p);
                    if (!x) {
                        p->nest = nest;
                        return NULL;
                    }
                    list_add(&h, &t, x);
                    save = p->i;
                    skip_ws(p);
                }
                arr->a = h;
                arr->end = save;
                arg = arr;
            }
            p->i = save;
        }
        list_add(&head, &tail, arg);
    }
    p->nest = nest;
    cmd->b = head;
    cmd->end = p->i;
    while (cmd->end > start && deob_isspace((unsigned char)p->s[cmd->end - 1]))
        cmd->end--;
    return cmd;
}

static bool lvalue(struct psn *n)
{
    if (!n)
        return false;
    switch (n->kind) {
    case N_VAR:
    case N_INDEX:
    case N_MEMBER:
        return true;
    case N_CAST:
        return lvalue(n->a);
    case N_ARRAY:
        for (struct psn *x = n->a; x; x = x->next)
            if (!lvalue(x))
                return false;
        return true;
    default:
        return false;
    }
}

static struct psn *p_pipeline(struct psp *p)
{
    size_t start = p->i;
    struct psn *head = NULL, *tail = NULL;
    struct psn *first;
    if (cmd_start(p)) {
        first = p_command(p);
    } else {
        first = p_expr(p);
        if (!first)
            return NULL;
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p), c1 = pk(p, 1);
        size_t oplen = 0;
        uint16_t op = 0;
        if (c == '=' && c1 != '=')
            oplen = 1, op = '=';
        else if (strchr("+-*/%", c) && c && c1 == '=')
            oplen = 2, op = (uint16_t)c;
        if (oplen && lvalue(first)) {
            p->i += oplen;
            skip_wsnl(p);
            struct psn *rhs = p_stmt(p);
            if (!rhs)
                return NULL;
            struct psn *as = mk(p, N_ASSIGN, start);
            if (!as)
                return NULL;
            as->op = op;
            as->a = first;
            as->b = rhs;
            as->end = rhs->end;
            return as;
        }
        p->i = save;
    }
    if (!first)
        return NULL;
    list_add(&head, &tail, first);
    for (;;) {
        size_t save = p->i;
        skip_ws(p);
        int c = pc(p);
        if ((c == '>' || ((c == '2' || c == '*') && pk(p, 1) == '>'))) {
            while (pc(p) && strchr("0123456*><&", pc(p)))
                p->i++;
            skip_ws(p);
            if (pc(p) && !strchr("\r\n;|)}", pc(p)))
                p_argval(p);
            continue;
        }
        if (c == '|' && pk(p, 1) != '|') {
            p->i++;
            skip_wsnl(p);
            struct psn *e = cmd_start(p) ? p_command(p) : p_expr(p);
            if (!e)
                return NULL;
            list_add(&head, &tail, e);
            continue;
        }
        p->i = save;
        break;
    }
    struct psn *pipe = mk(p, N_PIPE, start);
    if (pipe) {
        pipe->a = head;
        pipe->end = tail->end;
    }
    return pipe;
}

/* Keyword statements: their parts hang off a as a list. */
static struct psn *p_keyword(struct psp *p, const char *kw)
{
    size_t start = p->i;
    struct psn *k = mk(p, N_KEYWORD, start);
    if (!k)
        return NULL;
    struct psn *head = NULL, *tail = NULL;
    p->i += strlen(kw);
    bool opaque_blocks = true;
    if (!strcmp(kw, "try"))
        opaque_blocks = false;
    for (int part = 0; part < 64; part++) {
        skip_wsnl(p);
        int c = pc(p);
        struct psn *x = NULL;
        if (c == '(') {
            size_t s0 = p->i;
            if (!strcmp(kw, "foreach") || !strcmp(kw, "for") ||
                !strcmp(kw, "param") || !strcmp(kw, "function")) {
                p->i++;
                skip_wsnl(p);
                if (!strcmp(kw, "foreach") && pc(p) == '$') {
                    struct psn *v = p_var(p);
                    if (v) {
                        v->flags |= NF_KEYVAR;
                        list_add(&head, &tail, v);
                    }
                    skip_wsnl(p);
                    if (at_kw(p, "in"))
                        p->i += 2;
                    int nest = p->nest;
                    p->nest = 1;
                    x = p_pipeline(p);
                    p->nest = nest;
                    skip_wsnl(p);
                    if (pc(p) == ')')
                        p->i++;
                    else
                        return NULL;
                } else {
                    p->i = s0;
                    skip_balanced(p);
                    x = mk(p, N_OPAQUE, s0);
                }
            } else {
                x = p_primary(p);
            }
        } else if (c == '{') {
            if (!strcmp(kw, "switch")) {
                size_t s0 = p->i;
                skip_balanced(p);
                x = mk(p, N_OPAQUE, s0);
            } else {
                struct psn *b = p_block(p);
                if (!b)
                    return NULL;
                x = mk(p, N_STMTS, b->start);
                if (x) {
                    x->a = b->a;
                    x->end = b->end;
                    if (opaque_blocks)
                        x->flags |= NF_OPAQUE;
                }
            }
            opaque_blocks = true;
            if (x)
                list_add(&head, &tail, x);
            /* continuation keywords */
            size_t save = p->i;
            skip_wsnl(p);
            if (at_kw(p, "elseif")) {
                p->i += 6;
                continue;
            }
            if (at_kw(p, "else")) {
                p->i += 4;
                continue;
            }
            if (at_kw(p, "catch")) {
                p->i += 5;
                skip_ws(p);
                while (pc(p) == '[' || pc(p) == ',') {
                    if (pc(p) == ',') {
                        p->i++;
                    } else {
                        const char *tn;
                        size_t tl;
                        if (!scan_type(p, &tn, &tl))
                            return NULL;
                    }
                    skip_wsnl(p);
                }
                continue;
            }
            if (at_kw(p, "finally")) {
                p->i += 7;
                continue;
            }
            if ((!strcmp(kw, "do")) && (at_kw(p, "while") || at_kw(p, "until"))) {
                p->i += 5;
                continue;
            }
            p->i = save;
            break;
        } else if (c == '-' && !strcmp(kw, "switch")) {
            p_word(p, false);
            continue;
        } else if (c == '[' && !strcmp(kw, "trap")) {
            const char *tn;
            size_t tl;
            if (!scan_type(p, &tn, &tl))
                return NULL;
            continue;
        } else if ((!strcmp(kw, "function") || !strcmp(kw, "filter") ||
                    !strcmp(kw, "workflow")) && part == 0) {
            if (!p_word(p, true))
                return NULL;
            continue;
        } else {
            return NULL;
        }
        if (!x)
            return NULL;
        list_add(&head, &tail, x);
    }
    k->a = head;
    k->end = p->i;
    k->s = kw;
    return k;
}

static struct psn *p_stmt(struct psp *p)
{
    static const char *const block_kws[] = {
        "if", "while", "for", "do", "switch", "function", "filter",
        "workflow", "try", "trap", "begin", "process", "end",
        "dynamicparam", "param", NULL};
    size_t start = p->i;
    if (++p->depth > PS_MAX_DEPTH)
        return NULL;
    struct psn *r = NULL;
    for (size_t k = 0; block_kws[k]; k++) {
        if (at_kw(p, block_kws[k])) {
            r = p_keyword(p, block_kws[k]);
            goto out;
        }
    }
    if (at_kw(p, "foreach")) {
        size_t save = p->i;
        p->i += 7;
        skip_ws(p);
        bool stmt = pc(p) == '(';
        p->i = save;
        if (stmt) {
            r = p_keyword(p, "foreach");
            goto out;
        }
    }
    if (at_kw(p, "return") || at_kw(p, "throw") || at_kw(p, "exit")) {
        while (p->i < p->n && deob_isalpha(pc(p)))
            p->i++;
        skip_ws(p);
        if (!pc(p) || strchr("\r\n;})", pc(p))) {
            r = mk(p, N_OPAQUE, start);
            goto out;
        }
        r = p_pipeline(p);
        goto out;
    }
    if (at_kw(p, "break") || at_kw(p, "continue") || at_kw(p, "class") ||
        at_kw(p, "enum") || at_kw(p, "using") || at_kw(p, "data")) {
        while (p->i < p->n && pc(p) != ';' && pc(p) != '\n' && pc(p) != '{')
            p->i++;
        if (pc(p) == '{')
            skip_balanced(p);
        r = mk(p, N_OPAQUE, start);
        goto out;
    }
    r = p_pipeline(p);
out:
    p->depth--;
    return r;
}

static struct psn *p_stmts(struct psp *p, int close)
{
    struct psn *head = NULL, *tail = NULL;
    struct ps *ps = p->ps;
    for (size_t guard = 0; !ps->abort; guard++) {
        for (;;) {
            skip_wsnl(p);
            if (pc(p) == ';')
                p->i++;
            else if ((pc(p) == '&' && pk(p, 1) == '&') ||
                     (pc(p) == '|' && pk(p, 1) == '|'))
                p->i += 2;
            else
                break;
        }
        int c = pc(p);
        if (!c || c == close)
            break;
        if (c == ')' || c == '}' || c == ']') {
            if (close)
                break;
            p->i++;
            continue;
        }
        size_t start = p->i;
        struct psn *st = p_stmt(p);
        if (st) {
            skip_ws(p);
            c = pc(p);
            if (c && !strchr("\r\n;", c) && c != close &&
                !(c == '&' && pk(p, 1) == '&') &&
                !(c == '|' && pk(p, 1) == '|')) {
                /* trailing junk: keep what parsed, skip the rest */
                size_t j = p->i;
                skip_to_sep(p);
                if (p->i == j)
                    p->i++;
                struct psn *o = mk(p, N_OPAQUE, j);
                if (o)
                    list_add(&head, &tail, st), st = o;
            }
        } else {
            if (ps->abort)
                break;
            p->i = start;
            skip_to_sep(p);
            if (p->i == start)
                p->i++;
            st = mk(p, N_OPAQUE, start);
        }
        if (!st)
            break;
        list_add(&head, &tail, st);
        if (deob_time_up(ps->ctx)) {
            ps->abort = true;
            break;
        }
    }
    struct psn *list = head;
    return list;
}

/* ---- entry ---- */

struct psn *sp_ps_parse(struct ps *ps)
{
    struct psp p;
    memset(&p, 0, sizeof(p));
    p.ps = ps;
    p.s = ps->s;
    p.n = ps->n;
    sp_buf_init(&p.tmp, PS_ARENA_MAX);
    struct psn *root = p_stmts(&p, 0);
    sp_buf_fini(&p.tmp);
    return root;
}
