/*
 * config_doc.c - what the configuration writes out: the effective
 * settings after validate (sp_config_dump), a documented example config
 * (sp_config_write_example) and the same documentation as a Markdown
 * table (sp_config_write_markdown).  Declared in config.h.
 *
 * Owns nothing beyond a scratch arena for the example's key tree.  The
 * example and the Markdown come from the declared tables only, never from
 * loaded values, so no secret can reach them; the dump masks secrets.
 *
 * Threads: the start-up thread (see config.h); all three only read the
 * configuration.  Loops are bounded by the declared tables, the map
 * entries and the strings they walk.
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- YAML scalars ------------------------------------------------------ */

/* Writes s[0..n) as a YAML scalar: plain when that reads back the same,
 * otherwise double-quoted with escapes. */
static void cfg_put_scalarn(FILE *out, const char *s, size_t n)
{
    bool plain = n > 0 && !sp_cfg_is_null_word(s, n) && s[n - 1] != ':';
    for (size_t i = 0; plain && i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9');
        if (i == 0)
            plain = alnum || c == '.' || c == '/' || c == '_';
        else
            plain = alnum || strchr("._/+@-:", c) != NULL;
    }
    if (plain) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else if (c >= 0x80) {
            /* Code points YAML does not allow raw in a document (C1
             * controls, U+FFFE/U+FFFF) or that readers fold (NEL) are
             * escaped; invalid UTF-8 bytes too. */
            uint32_t cp = 0;
            size_t l = sp_utf8_seq(s + i, n - i, &cp);
            if (!l)
                fprintf(out, "\\x%02x", c);
            else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0xfffe || cp == 0xffff)
                fprintf(out, "\\u%04x", (unsigned)cp);
            else
                fwrite(s + i, 1, l, out);
            if (l)
                i += l - 1;
        } else
            fputc(c, out);
    }
    fputc('"', out);
}

static void cfg_put_scalar(FILE *out, const char *s)
{
    cfg_put_scalarn(out, s, strlen(s));
}

static void cfg_put_list(FILE *out, const char *const *items, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", out);
        cfg_put_scalar(out, items[i]);
    }
    fputc(']', out);
}

/* ---- the effective-settings dump --------------------------------------- */

void sp_config_dump(const struct sp_config *cfg, FILE *out)
{
    if (!cfg->validated) {
        fputs("# configuration not validated\n", out);
        return;
    }
    fputs("# effective configuration: value  # where it was set\n", out);
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct cfg_slot *slot = &cfg->slots[i];
        const struct sp_cfg_key *k = slot->key;
        bool secret = k->flags & SP_CFG_SECRET;
        fprintf(out, "%s: ", k->name);
        if (k->type == SP_CFG_MAP) {
            fprintf(out, "%s # %s\n", slot->nents ? "" : "{} ", slot->origin);
            for (const struct cfg_ent *ent = slot->ents; ent; ent = ent->next) {
                fputs("  ", out);
                cfg_put_scalar(out, ent->name);
                fputs(": ", out);
                if (secret || sp_config_secret_name(ent->name))
                    fputs("\"****\"", out);
                else
                    cfg_put_scalar(out, ent->value);
                fprintf(out, "  # %s", sp_cfg_leaf_origin(ent->leaf));
                if (ent->leaf->line)
                    fprintf(out, ":%d", ent->leaf->line);
                fputc('\n', out);
            }
            continue;
        }
        if (!slot->str)
            fputs("~", out);
        else if (secret)
            fputs("\"****\"", out);
        else if (k->type == SP_CFG_LIST)
            cfg_put_list(out, slot->items, slot->nitems);
        else
            cfg_put_scalar(out, slot->str);
        fprintf(out, "  # %s\n", slot->str ? slot->origin : "unset");
    }
}

/* ---- documentation: example config and Markdown ------------------------ */

static const char *cfg_type_name(enum sp_cfg_type type)
{
    switch (type) {
    case SP_CFG_STR: return "string";
    case SP_CFG_INT: return "int";
    case SP_CFG_BOOL: return "bool";
    case SP_CFG_DURATION: return "duration";
    case SP_CFG_SIZE: return "size";
    case SP_CFG_ENUM: return "enum";
    case SP_CFG_LIST: return "list";
    case SP_CFG_MAP: return "map";
    }
    return "?";
}

/* "(int, 1 to 100000)": type, range or choices, secrecy. */
static void cfg_put_type(FILE *out, const struct sp_cfg_key *k)
{
    char lo[48], hi[48];
    fputs(cfg_type_name(k->type), out);
    if (k->type == SP_CFG_DURATION)
        fputs(": 250ms, 30s, 5m, 24h, 7d", out);
    else if (k->type == SP_CFG_SIZE)
        fputs(": 512, 64KiB, 1MiB, 10MB", out);
    else if (k->type == SP_CFG_LIST)
        fputs(": [a, b] or \"a,b\"", out);
    else if (k->type == SP_CFG_MAP)
        fputs(": free-form entries, nested keys join with dots", out);
    else if (k->type == SP_CFG_ENUM)
        fprintf(out, ": %s", k->enum_values);
    if ((k->type == SP_CFG_INT || k->type == SP_CFG_DURATION ||
         k->type == SP_CFG_SIZE) && (k->min || k->max)) {
        sp_cfg_fmt_num(lo, sizeof(lo), k->type, k->min);
        sp_cfg_fmt_num(hi, sizeof(hi), k->type, k->max);
        if (k->max < k->min)
            fprintf(out, "; at least %s", lo);
        else
            fprintf(out, "; %s to %s", lo, hi);
    }
    if (k->type == SP_CFG_STR && k->max > 0)
        fprintf(out, "; at most %lld bytes", (long long)k->max);
    if (k->flags & SP_CFG_SECRET)
        fputs("; secret: use ${ENV} or ${file:PATH}", out);
}

/* A description as "# " comment lines at `ind`, words wrapped at 78
 * columns (a word longer than a line gets a line of its own). */
static void cfg_put_comment(FILE *out, int ind, const char *s)
{
    int width = SP_MAX(78 - ind - 2, 20), col = 0;
    while (*s) {                    /* bounded: s moves forward each turn */
        while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \n\r\t");
        if (n == 0)
            break;
        if (col > 0 && col + 1 + (int)n > width) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            fprintf(out, "%*s#", ind, "");
        fprintf(out, " %.*s", (int)n, s);
        col += 1 + (int)n;
        s += n;
    }
    if (col > 0)
        fputc('\n', out);
}

/* Writes "a, b,c" as the items of a flow list: "a, b, c". */
static void cfg_put_csv(FILE *out, const char *text)
{
    bool first = true;
    for (const char *p = text; p;) {    /* bounded: one item per comma */
        const char *comma = strchr(p, ',');
        const char *s = p;
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        sp_cfg_trim(&s, &len);
        if (len) {
            fputs(first ? "" : ", ", out);
            cfg_put_scalarn(out, s, len);
            first = false;
        }
        p = comma ? comma + 1 : NULL;
    }
}

struct ex_node {
    const char *name;
    size_t len;
    const struct sp_cfg_key *key;
    struct ex_node *child, *tail, *next;
};

static void ex_emit(FILE *out, const struct ex_node *node, int depth)
{
    int ind = depth * 2;
    for (const struct ex_node *c = node->child; c; c = c->next) {
        const struct sp_cfg_key *k = c->key;
        if (!k) {
            fprintf(out, "%*s%.*s:\n", ind, "", (int)c->len, c->name);
            ex_emit(out, c, depth + 1);
            continue;
        }
        if (k->desc)
            cfg_put_comment(out, ind, k->desc);
        fprintf(out, "%*s# (", ind, "");
        cfg_put_type(out, k);
        fprintf(out, ")\n%*s# %.*s:", ind, "", (int)c->len, c->name);
        if (k->type == SP_CFG_MAP) {
            fputs(" {}", out);
        } else if (k->type == SP_CFG_LIST && k->def) {
            fputs(" [", out);
            cfg_put_csv(out, k->def);
            fputc(']', out);
        } else if (k->def) {
            fputc(' ', out);
            cfg_put_scalar(out, k->def);
        }
        fputs("\n\n", out);
    }
}

void sp_config_write_example(const struct sp_config *cfg, FILE *out)
{
    struct sp_arena a;
    struct ex_node root = { 0 };
    sp_arena_init(&a, 0);
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct sp_cfg_key *k = cfg->slots[i].key;
        struct ex_node *parent = &root;
        const char *p = k->name;
        while (parent && p) {       /* bounded by the name's components */
            const char *dot = strchr(p, '.');
            size_t len = dot ? (size_t)(dot - p) : strlen(p);
            struct ex_node *c = parent->child;
            while (c && !(c->len == len && !memcmp(c->name, p, len)))
                c = c->next;
            if (!c && (c = sp_arena_calloc(&a, sizeof(*c))) != NULL) {
                c->name = p;
                c->len = len;
                if (parent->tail)
                    parent->tail->next = c;
                else
                    parent->child = c;
                parent->tail = c;
            }
            if (c && !dot)
                c->key = k;
            parent = c;
            p = dot ? dot + 1 : NULL;
        }
    }
    fputs("# socpilot configuration: every key with its description, type\n"
          "# and default (commented out).  Values may use ${ENV},\n"
          "# ${ENV:-default} and ${file:PATH}; \"-s key=value\" overrides any\n"
          "# key on the command line.\n\n", out);
    ex_emit(out, &root, 0);
    sp_arena_fini(&a);
}

static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' ? ' ' : *s, out);
    }
}

void sp_config_write_markdown(const struct sp_config *cfg, FILE *out)
{
    fputs("| Key | Type | Default | Description |\n"
          "|---|---|---|---|\n", out);
    for (size_t i = 0; i < cfg->nslots; i++) {
        const struct sp_cfg_key *k = cfg->slots[i].key;
        fprintf(out, "| `%s` | ", k->name);
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (mem) {
            cfg_put_type(mem, k);
            fclose(mem);
            md_cell(out, text);
        }
        free(text);
        fputs(" | ", out);
        if (k->def && *k->def) {
            fputc('`', out);
            md_cell(out, k->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, k->desc);
        fputs(" |\n", out);
    }
}
