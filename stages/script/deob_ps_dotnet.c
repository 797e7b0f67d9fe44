/*
 * deob_ps_dotnet.c - the .NET surface obfuscated PowerShell reaches for,
 * modelled over constant values: static members of [Convert] (base64,
 * ToInt/ToChar/ToByte in a base), [Text.Encoding], [string], [char],
 * [array] (Reverse), [regex] (Matches, RightToLeft), [scriptblock]
 * (Create), [Runtime.InteropServices.Marshal] (reading a SecureString),
 * [Environment] and CompressionMode; New-Object of memory, deflate/gzip
 * (through the zlib ratio guard) and reader streams, encodings,
 * PSCredential and strings; instance members of strings, arrays, streams,
 * readers, credentials, script blocks, variables and $ExecutionContext.
 * A method named without a call prints as PowerShell shows its signature.
 *
 * Results live in the pass's arena.  Called on the thread running the
 * pass.
 */
#include "deob_ps_int.h"

#include <string.h>

/* Text.Encoding kinds (the i of a PV_ENC value). */
enum { ENC_UTF8, ENC_UNICODE, ENC_BIGENDIAN, ENC_ASCII, ENC_LATIN1,
       ENC_UTF32 };

/* ---- method objects and arguments ---- */

static const struct {
    const char *name;
    const char *sig;
} method_sigs[] = {
    {"insert", "string Insert(int startIndex, string value)"},
    {"lastindexofany",
     "int LastIndexOfAny(char[] anyOf), int LastIndexOfAny(char[] anyOf, "
     "int startIndex), int LastIndexOfAny(char[] anyOf, int startIndex, int "
     "count)"},
    {"indexofany",
     "int IndexOfAny(char[] anyOf), int IndexOfAny(char[] anyOf, int "
     "startIndex), int IndexOfAny(char[] anyOf, int startIndex, int count)"},
    {"normalize",
     "string Normalize(), string Normalize(System.Text.NormalizationForm "
     "normalizationForm)"},
    {"tochararray",
     "char[] ToCharArray(), char[] ToCharArray(int startIndex, int length)"},
    {"chars", "char Chars(int index)"},
    {"padleft",
     "string PadLeft(int totalWidth), string PadLeft(int totalWidth, char "
     "paddingChar)"},
    {"trimend", "string TrimEnd(Params char[] trimChars)"},
    {"trimstart", "string TrimStart(Params char[] trimChars)"},
};

const char *sp_ps_method_signature(const char *name, size_t n)
{
    for (size_t i = 0; i < SP_ARRAY_SIZE(method_sigs); i++)
        if (deob_ci_eqn(name, n, method_sigs[i].name))
            return method_sigs[i].sig;
    return NULL;
}

static struct pv *pv_method(struct ps *ps, struct pv *target,
                            const char *name)
{
    struct pv *m = sp_ps_pv_named(ps, PV_METHOD, name, strlen(name));
    if (m)
        m->p = target;
    return m;
}

static bool arg_int(struct pv **args, size_t nargs, size_t k, int64_t *x)
{
    return k < nargs && sp_ps_to_int(args[k], x);
}

static bool arg_str(struct ps *ps, struct pv **args, size_t nargs, size_t k,
                    const char **s, size_t *n)
{
    return k < nargs && sp_ps_to_str(ps, args[k], s, n);
}

/* ---- encodings and New-Object ---- */

/* Decodes bytes with a Text.Encoding. */
static struct pv *enc_decode(struct ps *ps, int enc, const unsigned char *b,
                             size_t n)
{
    struct sp_buf out;
    sp_buf_init(&out, PS_ARENA_MAX);
    switch (enc) {
    case ENC_UNICODE:
        deob_utf16le_to_utf8(b, n, &out);
        break;
    case ENC_BIGENDIAN:
        for (size_t i = 0; i + 1 < n; i += 2)
            deob_utf8_put(&out, ((uint32_t)b[i] << 8) | b[i + 1]);
        break;
    case ENC_UTF32:
        for (size_t i = 0; i + 3 < n; i += 4)
            deob_utf8_put(&out, (uint32_t)b[i] | ((uint32_t)b[i + 1] << 8) |
                                    ((uint32_t)b[i + 2] << 16) |
                                    ((uint32_t)b[i + 3] << 24));
        break;
    case ENC_ASCII:
        for (size_t i = 0; i < n; i++)
            sp_buf_putc(&out, b[i] < 0x80 ? (char)b[i] : '?');
        break;
    case ENC_LATIN1:
        for (size_t i = 0; i < n; i++)
            deob_utf8_put(&out, b[i]);
        break;
    default: {
        size_t s = n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3
                                                                         : 0;
        sp_buf_put(&out, b + s, n - s);
        break;
    }
    }
    struct pv *v = sp_ps_pv_buf(ps, &out);
    sp_buf_fini(&out);
    return v;
}

static int enc_by_name(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int enc;
    } names[] = {
        {"utf8", ENC_UTF8},       {"utf-8", ENC_UTF8},
        {"65001", ENC_UTF8},      {"unicode", ENC_UNICODE},
        {"utf-16", ENC_UNICODE},  {"1200", ENC_UNICODE},
        {"ascii", ENC_ASCII},     {"us-ascii", ENC_ASCII},
        {"20127", ENC_ASCII},     {"default", ENC_LATIN1},
        {"1252", ENC_LATIN1},     {"windows-1252", ENC_LATIN1},
        {"iso-8859-1", ENC_LATIN1}, {"28591", ENC_LATIN1},
        {"bigendianunicode", ENC_BIGENDIAN}, {"1201", ENC_BIGENDIAN},
        {"utf32", ENC_UTF32},     {"utf-32", ENC_UTF32},
        {"12000", ENC_UTF32},
    };
    for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++)
        if (deob_ci_eqn(s, n, names[i].name))
            return names[i].enc;
    return -1;
}

static struct pv *pv_enc(struct ps *ps, int enc)
{
    struct pv *v = sp_ps_pv_new(ps, PV_ENC);
    if (v)
        v->i = enc;
    return v;
}

struct pv *sp_ps_new_object(struct ps *ps, const char *tname, size_t tl,
                            struct pv **args, size_t nargs)
{
    char t[64];
    sp_ps_type_norm(tname, tl, t, sizeof(t));
    if (!strcmp(t, "io.memorystream")) {
        if (nargs == 0)
            return sp_ps_pv_bytes(ps, PV_STREAM, NULL, 0);
        struct pv *a = args[0];
        if (a->kind == PV_ARR && a->count == 1)
            a = ITEMS(a)[0];
        if (a->kind != PV_BYTES) {
            struct pv *b = sp_ps_cast(ps, "byte[]", 6, a);
            if (!b)
                return NULL;
            a = b;
        }
        struct pv *st = sp_ps_pv_bytes(ps, PV_STREAM, a->p, a->count);
        if (st)
            st->ops = a->ops;
        return st;
    }
    if (!strcmp(t, "io.compression.deflatestream") ||
        !strcmp(t, "io.compression.gzipstream")) {
        if (nargs < 1 || args[0]->kind != PV_STREAM)
            return NULL;
        struct sp_buf out;
        sp_buf_init(&out, ps->ctx->lim.max_output);
        struct pv *v = NULL;
        int mode = t[15] == 'd' ? DEOB_Z_RAW : DEOB_Z_GZIP;
        if (deob_inflate(ps->ctx, args[0]->p, args[0]->count, mode, &out)) {
            v = sp_ps_pv_bytes(ps, PV_STREAM, out.data, out.len);
            if (v) {
                v->ops = (uint16_t)(args[0]->ops | OP_DEFLATE);
                ps->ops |= OP_DEFLATE;
            }
        }
        sp_buf_fini(&out);
        return v;
    }
    if (!strcmp(t, "io.streamreader")) {
        if (nargs < 1 || args[0]->kind != PV_STREAM)
            return NULL;
        int enc = ENC_UTF8;
        if (nargs >= 2 && args[1]->kind == PV_ENC)
            enc = (int)args[1]->i;
        const unsigned char *b = args[0]->p;
        size_t n = args[0]->count;
        if (n >= 2 && b[0] == 0xFF && b[1] == 0xFE)
            enc = ENC_UNICODE, b += 2, n -= 2;
        struct pv *s = enc_decode(ps, enc, b, n);
        if (!s)
            return NULL;
        struct pv *r = sp_ps_pv_named(ps, PV_READER, s->s, s->n);
        if (r)
            r->ops = args[0]->ops;
        return r;
    }
    if (!strcmp(t, "management.automation.pscredential")) {
        if (nargs < 2 || args[1]->kind != PV_SECURE)
            return NULL;
        struct pv *c = sp_ps_pv_new(ps, PV_CRED);
        if (c) {
            c->p = args[1];
            c->ops = args[1]->ops;
        }
        return c;
    }
    if (!strcmp(t, "string")) {
        if (nargs == 1)
            return sp_ps_op_join(ps, args[0], NULL);
        return NULL;
    }
    if (!strcmp(t, "text.utf8encoding"))
        return pv_enc(ps, ENC_UTF8);
    if (!strcmp(t, "text.unicodeencoding"))
        return pv_enc(ps, ENC_UNICODE);
    if (!strcmp(t, "text.asciiencoding"))
        return pv_enc(ps, ENC_ASCII);
    return sp_ps_pv_named(ps, PV_OBJ, sp_ps_lower(ps, t, strlen(t)), strlen(t));
}

/* ---- static members ---- */

static struct pv *convert_base(struct ps *ps, struct pv **args, size_t nargs)
{
    int64_t base = 10, x;
    const char *s;
    size_t n;
    if (nargs >= 2 && !arg_int(args, nargs, 1, &base))
        return NULL;
    if (nargs == 1 || base == 10) {
        if (!arg_int(args, nargs, 0, &x))
            return NULL;
        return sp_ps_pv_int(ps, x);
    }
    if (!arg_str(ps, args, nargs, 0, &s, &n) || n == 0 || n > 64 ||
        (base != 2 && base != 8 && base != 16))
        return NULL;
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && deob_isspace((unsigned char)s[i]))
        i++;
    if (base == 16 && i + 1 < n && s[i] == '0' && (s[i + 1] | 32) == 'x')
        i += 2;
    size_t d = 0;
    for (; i < n && !deob_isspace((unsigned char)s[i]); i++, d++) {
        int h = deob_hexval((unsigned char)s[i]);
        if (h < 0 || h >= base || d > 63)
            return NULL;
        v = v * (uint64_t)base + (uint64_t)h;
    }
    if (!d)
        return NULL;
    ps->ops |= OP_CHARCODE;
    return sp_ps_pv_int(ps, (int64_t)v);
}

struct pv *sp_ps_static_member(struct ps *ps, const char *type, size_t tl,
                               const char *name, struct pv **args,
                               struct psn **argn, size_t nargs, bool call,
                               struct psn *node)
{
    char t[64];
    sp_ps_type_norm(type, tl, t, sizeof(t));
    const char *s;
    size_t n;
    if (!strcmp(t, "convert")) {
        if (!strcmp(name, "frombase64string")) {
            if (!arg_str(ps, args, nargs, 0, &s, &n))
                return NULL;
            struct sp_buf b;
            sp_buf_init(&b, n + 4);
            struct pv *v = deob_b64_decode(s, n, &b)
                               ? sp_ps_pv_bytes(ps, PV_BYTES, b.data, b.len)
                               : NULL;
            sp_buf_fini(&b);
            if (v) {
                v->ops = OP_BASE64;
                ps->ops |= OP_BASE64;
            }
            return v;
        }
        if (!strncmp(name, "toint", 5) || !strncmp(name, "touint", 6) ||
            !strcmp(name, "tobyte") || !strcmp(name, "tosbyte"))
            return convert_base(ps, args, nargs);
        if (!strcmp(name, "tochar"))
            return nargs ? sp_ps_to_char(ps, args[0]) : NULL;
        if (!strcmp(name, "tostring") && nargs == 1)
            return sp_ps_to_strv(ps, args[0]);
        return NULL;
    }
    if (!strcmp(t, "text.encoding")) {
        int e = enc_by_name(name, strlen(name));
        if (e >= 0 && !call)
            return pv_enc(ps, e);
        if (!strcmp(name, "getencoding") && nargs == 1) {
            if (!sp_ps_to_str(ps, args[0], &s, &n) ||
                (e = enc_by_name(s, n)) < 0)
                return NULL;
            return pv_enc(ps, e);
        }
        return NULL;
    }
    if (!strcmp(t, "string")) {
        if (!strcmp(name, "join") && nargs >= 1) {
            struct pv *list;
            if (nargs == 2) {
                list = args[1];
            } else {
                list = sp_ps_pv_arr(ps, nargs - 1);
                for (size_t i = 1; list && i < nargs; i++)
                    ITEMS(list)[i - 1] = args[i];
            }
            return list ? sp_ps_op_join(ps, list, args[0]) : NULL;
        }
        if (!strcmp(name, "concat")) {
            struct sp_buf b;
            sp_buf_init(&b, PS_ARENA_MAX);
            bool ok = true;
            for (size_t i = 0; i < nargs && ok; i++) {
                struct pv **items, *one;
                size_t k = sp_ps_enumerate(ps, args[i], &items, &one);
                for (size_t j = 0; j < k && ok; j++)
                    ok = sp_ps_put_str(ps, items[j], &b, 0);
            }
            struct pv *v = ok ? sp_ps_pv_buf(ps, &b) : NULL;
            sp_buf_fini(&b);
            if (v)
                ps->ops |= OP_CONCAT;
            return v;
        }
        if (!strcmp(name, "format") && nargs >= 1) {
            struct pv *list = sp_ps_pv_arr(ps, nargs - 1);
            for (size_t i = 1; list && i < nargs; i++)
                ITEMS(list)[i - 1] = args[i];
            if (nargs == 2 && args[1]->kind == PV_ARR)
                list = args[1];
            return list ? sp_ps_op_format(ps, args[0], list) : NULL;
        }
        if (!strcmp(name, "empty"))
            return sp_ps_pv_str_ref(ps, "", 0);
        if (!strcmp(name, "new") && nargs == 1)
            return sp_ps_op_join(ps, args[0], NULL);
        return NULL;
    }
    if (!strcmp(t, "char")) {
        int64_t x;
        if (!strcmp(name, "convertfromutf32") && arg_int(args, nargs, 0, &x) &&
            x > 0 && x <= 0x10FFFF) {
            struct sp_buf b;
            sp_buf_init(&b, 8);
            deob_utf8_put(&b, (uint32_t)x);
            struct pv *v = sp_ps_pv_buf(ps, &b);
            sp_buf_fini(&b);
            ps->ops |= OP_CHARCODE;
            return v;
        }
        if (!strcmp(name, "tostring") && nargs == 1)
            return sp_ps_to_strv(ps, sp_ps_to_char(ps, args[0]));
        return NULL;
    }
    if (!strcmp(t, "array")) {
        if (!strcmp(name, "reverse") && nargs >= 1 && argn &&
            argn[0]->kind == N_VAR) {
            struct pv *v = args[0], *r;
            if (v->kind == PV_ARR) {
                r = sp_ps_pv_arr(ps, v->count);
                for (size_t i = 0; r && i < v->count; i++)
                    ITEMS(r)[i] = ITEMS(v)[v->count - 1 - i];
            } else if (v->kind == PV_BYTES) {
                r = sp_ps_pv_bytes(ps, PV_BYTES, v->p, v->count);
                if (r) {
                    unsigned char *b = r->p;
                    for (size_t i = 0; i < r->count / 2; i++) {
                        unsigned char c = b[i];
                        b[i] = b[r->count - 1 - i];
                        b[r->count - 1 - i] = c;
                    }
                }
            } else {
                return NULL;
            }
            if (!r)
                return NULL;
            ps->ops |= OP_REVERSE;
            r->ops = (uint16_t)(v->ops | OP_REVERSE);
            sp_ps_var_set(ps, argn[0]->s, argn[0]->n, r);
            sp_ps_note_write(ps, argn[0]->s, argn[0]->n);
            return sp_ps_pv_new(ps, PV_VOID);
        }
        return NULL;
    }
    if (!strcmp(t, "regex") || !strcmp(t, "text.regularexpressions.regex")) {
        if (!strcmp(name, "matches") && nargs >= 2) {
            const char *pat;
            size_t pn;
            if (!arg_str(ps, args, nargs, 0, &s, &n) ||
                !arg_str(ps, args, nargs, 1, &pat, &pn))
                return NULL;
            const char *opt = "";
            size_t on = 0;
            if (nargs >= 3 && !sp_ps_to_str(ps, args[2], &opt, &on))
                return NULL;
            bool rtl = deob_ci_find(opt, on, "righttoleft") != (size_t)-1;
            if (pn != 1 || pat[0] != '.' || !rtl)
                return NULL;
            struct pv *sv = sp_ps_pv_str_ref(ps, s, n);
            size_t k = sv ? sp_ps_str_len(ps, sv) : 0;
            struct pv *a = sp_ps_pv_arr(ps, k);
            for (size_t i = 0; a && i < k; i++) {
                struct sp_buf b;
                sp_buf_init(&b, 8);
                deob_utf8_put(&b, sp_ps_str_at(ps, sv, k - 1 - i));
                struct pv *m = sp_ps_pv_str(ps, b.data, b.len);
                sp_buf_fini(&b);
                if (!m)
                    return NULL;
                m->kind = PV_MATCH;
                ITEMS(a)[i] = m;
            }
            ps->ops |= OP_REVERSE;
            return a;
        }
        if (!strcmp(name, "replace") && nargs == 3) {
            struct pv *pair = sp_ps_pv_arr(ps, 2);
            if (!pair)
                return NULL;
            ITEMS(pair)[0] = args[1];
            ITEMS(pair)[1] = args[2];
            return sp_ps_op_replace(ps, args[0], pair, false);
        }
        return NULL;
    }
    if (!strcmp(t, "scriptblock") ||
        !strcmp(t, "management.automation.scriptblock")) {
        if (!strcmp(name, "create") && nargs == 1 &&
            sp_ps_to_str(ps, args[0], &s, &n)) {
            struct pv *b = sp_ps_pv_named(ps, PV_BLOCK, s, n);
            if (b) {
                b->fl |= PVF_CREATED;
                b->ops = args[0]->ops;
            }
            return b;
        }
        return NULL;
    }
    if (!strcmp(t, "runtime.interopservices.marshal")) {
        if (nargs != 1 || args[0]->kind != PV_SECURE)
            return NULL;
        if (!strncmp(name, "securestringto", 14))
            return args[0];
        if (!strncmp(name, "ptrtostring", 11)) {
            ps->ops |= OP_SECURE;
            return sp_ps_pv_str_ref(ps, args[0]->s, args[0]->n);
        }
        return NULL;
    }
    if (!strcmp(t, "environment")) {
        if (!strcmp(name, "getenvironmentvariable") &&
            arg_str(ps, args, nargs, 0, &s, &n))
            return sp_ps_env_value(ps, s, n);
        return NULL;
    }
    if (!strcmp(t, "io.compression.compressionmode")) {
        if (!strcmp(name, "decompress"))
            return sp_ps_pv_int(ps, 0);
        if (!strcmp(name, "compress"))
            return sp_ps_pv_int(ps, 1);
        return NULL;
    }
    if (!strcmp(name, "new") && call)
        return sp_ps_new_object(ps, type, tl, args, nargs);
    if (!call) {
        struct pv *tv = sp_ps_pv_named(ps, PV_TYPE, type, tl);
        return tv ? pv_method(ps, tv, name) : NULL;
    }
    SP_UNUSED(node);
    return NULL;
}

/* ---- instance members ---- */

static struct pv *str_member(struct ps *ps, struct pv *ov, const char *name,
                             struct pv **args, size_t nargs, bool call)
{
    const char *a, *b;
    size_t an, bn;
    int64_t x, y;
    if (!strcmp(name, "length") && !call)
        return sp_ps_pv_int(ps, (int64_t)sp_ps_str_len(ps, ov));
    if (!strcmp(name, "count") && !call)
        return sp_ps_pv_int(ps, 1);
    if (!call) {
        return sp_ps_method_signature(name, strlen(name))
                   ? pv_method(ps, ov, name)
                   : NULL;
    }
    if (!strcmp(name, "tostring") || !strcmp(name, "normalize") ||
        !strcmp(name, "clone"))
        return ov;
    if (!strcmp(name, "replace") && nargs == 2) {
        if (!sp_ps_to_str(ps, args[0], &a, &an) ||
            !sp_ps_to_str(ps, args[1], &b, &bn) || an == 0)
            return NULL;
        struct pv *v = sp_ps_op_replace_one(ps, ov, a, an, b, bn, true);
        if (v)
            ps->ops |= OP_REPLACE;
        return v;
    }
    if (!strcmp(name, "split") && nargs >= 1) {
        struct sp_buf set;
        sp_buf_init(&set, 1024);
        for (size_t i = 0; i < nargs; i++) {
            struct pv **items, *one;
            size_t k = sp_ps_enumerate(ps, args[i], &items, &one);
            if (args[i]->kind == PV_INT && i > 0)
                break;
            for (size_t j = 0; j < k; j++)
                if (!sp_ps_put_str(ps, items[j], &set, 0))
                    k = 0, nargs = 0;
        }
        struct pvlist out = {0};
        bool ok = set.len > 0 && !set.overflow &&
                  sp_ps_split_into(ps, &out, ov->s, ov->n, set.data, set.len,
                                   false, true);
        sp_buf_fini(&set);
        if (!ok)
            return NULL;
        ps->ops |= OP_SPLITJOIN;
        struct pv *arr = sp_ps_pv_arr(ps, 0);
        if (arr) {
            arr->p = out.v;
            arr->count = out.n;
        }
        return arr;
    }
    if (!strcmp(name, "trim") || !strcmp(name, "trimstart") ||
        !strcmp(name, "trimend")) {
        const char *set = " \t\r\n\v\f";
        size_t sn = 6;
        struct sp_buf sb;
        sp_buf_init(&sb, 1024);
        if (nargs) {
            for (size_t i = 0; i < nargs; i++)
                if (!sp_ps_put_str(ps, args[i], &sb, 0))
                    nargs = (size_t)-1;
            if (nargs == (size_t)-1 || sb.overflow) {
                sp_buf_fini(&sb);
                return NULL;
            }
            set = sb.data ? sb.data : "";
            sn = sb.len;
        }
        size_t s = 0, e = ov->n;
        if (strcmp(name, "trimend"))
            while (s < e && memchr(set, ov->s[s], sn))
                s++;
        if (strcmp(name, "trimstart"))
            while (e > s && memchr(set, ov->s[e - 1], sn))
                e--;
        sp_buf_fini(&sb);
        return sp_ps_pv_str_ref(ps, ov->s + s, e - s);
    }
    if (!strcmp(name, "tolower") || !strcmp(name, "tolowerinvariant") ||
        !strcmp(name, "toupper") || !strcmp(name, "toupperinvariant")) {
        char *c = sp_ps_strdup(ps, ov->s, ov->n);
        if (!c)
            return NULL;
        bool up = name[2] == 'u';
        for (size_t i = 0; i < ov->n; i++)
            if (up && c[i] >= 'a' && c[i] <= 'z')
                c[i] = (char)(c[i] - 32);
            else if (!up)
                c[i] = sp_tolower(c[i]);
        return sp_ps_pv_str_ref(ps, c, ov->n);
    }
    if (!strcmp(name, "substring") || !strcmp(name, "remove") ||
        !strcmp(name, "insert") || !strcmp(name, "chars")) {
        size_t len = sp_ps_str_len(ps, ov);
        if (!arg_int(args, nargs, 0, &x) || x < 0 || (uint64_t)x > len)
            return NULL;
        size_t from = (size_t)x, cnt = len - from;
        if (!strcmp(name, "chars"))
            return from < len ? sp_ps_pv_char(ps, sp_ps_str_at(ps, ov, from))
                              : NULL;
        if (!strcmp(name, "insert")) {
            if (!arg_str(ps, args, nargs, 1, &a, &an))
                return NULL;
        } else if (nargs >= 2) {
            if (!arg_int(args, nargs, 1, &y) || y < 0 || (uint64_t)y > cnt)
                return NULL;
            cnt = (size_t)y;
        }
        struct sp_buf sb;
        sp_buf_init(&sb, PS_ARENA_MAX);
        for (size_t i = 0; i < len; i++) {
            bool in = i >= from && i < from + cnt;
            if (!strcmp(name, "insert") && i == from)
                sp_buf_put(&sb, a, an);
            if ((!strcmp(name, "substring") && in) ||
                (!strcmp(name, "remove") && !in) || !strcmp(name, "insert"))
                deob_utf8_put(&sb, sp_ps_str_at(ps, ov, i));
        }
        if (!strcmp(name, "insert") && from == len)
            sp_buf_put(&sb, a, an);
        struct pv *v = sp_ps_pv_buf(ps, &sb);
        sp_buf_fini(&sb);
        return v;
    }
    if (!strcmp(name, "tochararray"))
        return sp_ps_cast(ps, "char[]", 6, ov);
    if (!strcmp(name, "indexof") && nargs >= 1 &&
        sp_ps_to_str(ps, args[0], &a, &an)) {
        size_t at = sp_ps_find_lit(ov->s, ov->n, a, an, false);
        return sp_ps_pv_int(ps, at == (size_t)-1 ? -1 : (int64_t)at);
    }
    if ((!strcmp(name, "contains") || !strcmp(name, "startswith") ||
         !strcmp(name, "endswith")) &&
        nargs >= 1 && sp_ps_to_str(ps, args[0], &a, &an)) {
        if (!strcmp(name, "contains"))
            return sp_ps_pv_bool(
                ps, sp_ps_find_lit(ov->s, ov->n, a, an, false) != (size_t)-1 ||
                        an == 0);
        if (an > ov->n)
            return sp_ps_pv_bool(ps, false);
        return sp_ps_pv_bool(ps, !memcmp(name[0] == 's' ? ov->s
                                                        : ov->s + ov->n - an,
                                         a, an));
    }
    return NULL;
}

struct pv *sp_ps_inst_member(struct ps *ps, struct pv *ov, const char *name,
                             struct pv **args, size_t nargs, bool call,
                             struct psn *node)
{
    const char *s;
    size_t n;
    switch (ov->kind) {
    case PV_STR:
        return str_member(ps, ov, name, args, nargs, call);
    case PV_ARR:
        if ((!strcmp(name, "length") || !strcmp(name, "count")) && !call)
            return sp_ps_pv_int(ps, (int64_t)ov->count);
        if (call)
            return NULL;
        {
            struct pv *a = sp_ps_pv_arr(ps, ov->count);
            for (size_t i = 0; a && i < ov->count; i++)
                if (!(ITEMS(a)[i] = sp_ps_inst_member(ps, ITEMS(ov)[i], name,
                                                      NULL, 0, false, node)))
                    return NULL;
            return a;
        }
    case PV_BYTES:
        if ((!strcmp(name, "length") || !strcmp(name, "count")) && !call)
            return sp_ps_pv_int(ps, (int64_t)ov->count);
        return NULL;
    case PV_CHAR:
    case PV_INT:
    case PV_BOOL:
        if (!strcmp(name, "tostring") && call && nargs == 0)
            return sp_ps_to_strv(ps, ov);
        return NULL;
    case PV_ENC:
        if (!strcmp(name, "getstring") && call && nargs >= 1) {
            struct pv *b = args[0];
            if (b->kind != PV_BYTES)
                b = sp_ps_cast(ps, "byte[]", 6, b);
            if (!b)
                return NULL;
            const unsigned char *p = b->p;
            size_t cnt = b->count;
            int64_t off, len;
            if (nargs == 3 && arg_int(args, nargs, 1, &off) &&
                arg_int(args, nargs, 2, &len) && off >= 0 && len >= 0 &&
                (uint64_t)(off + len) <= cnt)
                p += off, cnt = (size_t)len;
            struct pv *v = enc_decode(ps, (int)ov->i, p, cnt);
            if (v)
                ps->ops |= OP_BASE64 & b->ops ? OP_BASE64 : 0;
            if (v && !(b->ops & OP_BASE64))
                ps->ops |= b->ops ? b->ops : OP_CHARCODE;
            return v;
        }
        if (!strcmp(name, "getbytes") && call && nargs == 1 &&
            sp_ps_to_str(ps, args[0], &s, &n) && ov->i == ENC_UTF8)
            return sp_ps_pv_bytes(ps, PV_BYTES, s, n);
        return NULL;
    case PV_STREAM:
        if (!strcmp(name, "toarray") && call) {
            struct pv *b = sp_ps_pv_bytes(ps, PV_BYTES, ov->p, ov->count);
            if (b)
                b->ops = ov->ops;
            return b;
        }
        if (!strcmp(name, "copyto") && call && nargs >= 1 &&
            args[0]->kind == PV_STREAM) {
            args[0]->p = ov->p;
            args[0]->count = ov->count;
            args[0]->ops |= ov->ops;
            return sp_ps_pv_new(ps, PV_VOID);
        }
        if (call && (!strcmp(name, "close") || !strcmp(name, "dispose") ||
                     !strcmp(name, "flush")))
            return sp_ps_pv_new(ps, PV_VOID);
        return NULL;
    case PV_READER:
        if ((!strcmp(name, "readtoend") || !strcmp(name, "readline")) &&
            call) {
            ps->ops |= ov->ops;
            return sp_ps_pv_str_ref(ps, ov->s, ov->n);
        }
        return NULL;
    case PV_CRED:
        if (!strcmp(name, "getnetworkcredential") && call) {
            struct pv *c = sp_ps_pv_new(ps, PV_CRED);
            if (c) {
                c->p = ov->p;
                c->fl |= PVF_NET;
                c->ops = ov->ops;
            }
            return c;
        }
        if (!strcmp(name, "password") && !call && (ov->fl & PVF_NET)) {
            struct pv *sec = ov->p;
            ps->ops |= OP_SECURE | ov->ops;
            return sp_ps_pv_str_ref(ps, sec->s, sec->n);
        }
        return NULL;
    case PV_VAROBJ:
        if (!strcmp(name, "value") && !call) {
            ps->ops |= OP_VARIND;
            return ov->p;
        }
        if (!strcmp(name, "name") && !call)
            return sp_ps_pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_MATCH:
        if ((!strcmp(name, "value") && !call) ||
            (!strcmp(name, "tostring") && call))
            return sp_ps_pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_CMD:
        if (!strcmp(name, "name") && !call)
            return sp_ps_pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_OBJ:
        if (!strcmp(ov->s, "executioncontext") && !call) {
            if (!strcmp(name, "invokecommand"))
                return sp_ps_pv_named(ps, PV_OBJ, "invokecommand", 13);
            if (!strcmp(name, "sessionstate"))
                return sp_ps_pv_named(ps, PV_OBJ, "sessionstate", 12);
        }
        if (!strcmp(ov->s, "sessionstate") && !strcmp(name, "psvariable") &&
            !call)
            return sp_ps_pv_named(ps, PV_OBJ, "psvariable", 10);
        if (!strcmp(ov->s, "psvariable") && call && nargs == 1 &&
            sp_ps_to_str(ps, args[0], &s, &n)) {
            struct pv *val = sp_ps_read_var(ps, node, s, n);
            ps->ops |= OP_VARIND;
            if (!strcmp(name, "getvalue"))
                return val;
            if (!strcmp(name, "get")) {
                struct pv *o = sp_ps_pv_named(ps, PV_VAROBJ, s, n);
                if (o)
                    o->p = val;
                return o;
            }
        }
        if (!strcmp(ov->s, "invokecommand") && call && nargs >= 1) {
            if (!strcmp(name, "invokescript")) {
                sp_ps_mark_unwrap(ps, node, args[0], args[0]->ops);
                return NULL;
            }
            if (!strcmp(name, "newscriptblock") &&
                sp_ps_to_str(ps, args[0], &s, &n)) {
                struct pv *b = sp_ps_pv_named(ps, PV_BLOCK, s, n);
                if (b)
                    b->fl |= PVF_CREATED;
                return b;
            }
        }
        return NULL;
    case PV_BLOCK:
        if (call && (!strcmp(name, "invoke") ||
                     !strcmp(name, "invokereturnasis"))) {
            sp_ps_mark_unwrap(ps, node, ov, ov->ops);
            return NULL;
        }
        if (call && !strcmp(name, "tostring"))
            return sp_ps_pv_str_ref(ps, ov->s, ov->n);
        return NULL;
    case PV_METHOD:
        if (call && !strcmp(name, "invoke")) {
            struct pv *tgt = ov->p;
            char *mn = sp_ps_lower(ps, ov->s, ov->n);
            if (!tgt || !mn)
                return NULL;
            if (tgt->kind == PV_TYPE)
                return sp_ps_static_member(ps, tgt->s, tgt->n, mn, args, NULL,
                                           nargs, true, node);
            return sp_ps_inst_member(ps, tgt, mn, args, nargs, true, node);
        }
        if (call && !strcmp(name, "tostring"))
            return sp_ps_to_strv(ps, ov);
        return NULL;
    case PV_HASH:
        if (call && !strcmp(name, "tostring"))
            return sp_ps_to_strv(ps, ov);
        return NULL;
    default:
        return NULL;
    }
}
