/*
 * deob_util.c - helpers shared by the deobfuscation decoders: case-blind
 * text search, UTF-8 and UTF-16LE conversion, base64, zlib inflation with
 * the decompression-ratio guard, AES-CBC decryption (for SecureString
 * payloads), the default Windows environment, and the language guess.
 *
 * Everything is a pure function of its arguments (the AES tables are
 * computed per call on the stack); safe from any thread.
 */
#include "deob_int.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- clock and buffers -------------------------------------------------- */

bool deob_time_up(struct deob_ctx *ctx)
{
    if (ctx->bounds & SP_DEOB_BOUND_TIME)
        return true;
    if ((ctx->ticks++ & 63) != 0)
        return false;
    return deob_time_check(ctx);
}

bool deob_time_check(struct deob_ctx *ctx)
{
    if (ctx->bounds & SP_DEOB_BOUND_TIME)
        return true;
    if (sp_now_us() >= ctx->deadline_us) {
        ctx->bounds |= SP_DEOB_BOUND_TIME;
        return true;
    }
    return false;
}

enum deob_rc deob_buf_rc(struct deob_ctx *ctx, const struct sp_buf *b)
{
    /* sp_buf does not tell a failed malloc from its maximum; both end the
     * analysis with what was decoded so far. */
    SP_UNUSED(b);
    ctx->bounds |= SP_DEOB_BOUND_OUTPUT;
    return DEOB_STOP;
}

/* ---- text --------------------------------------------------------------- */

int deob_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool deob_ci_eqn(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    return an == bn && sp_strncaseeq(a, b, an);
}

bool deob_ci_prefix(const char *s, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);
    return n >= pn && sp_strncaseeq(s, prefix, pn);
}

size_t deob_ci_find(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0)
        return 0;
    if (m > n)
        return (size_t)-1;
    char lo = sp_tolower(needle[0]);
    char up = (lo >= 'a' && lo <= 'z') ? (char)(lo - 32) : lo;
    size_t last = n - m + 1;   /* candidate starts are < last */
    /* next occurrence of each case of the first letter, kept across
     * iterations so that a missing case is not searched again */
    const char *a = memchr(s, lo, last);
    const char *b = up != lo ? memchr(s, up, last) : NULL;
    while (a || b) {
        const char *p = !b || (a && a < b) ? a : b;
        size_t i = (size_t)(p - s);
        if (sp_strncaseeq(s + i, needle, m))
            return i;
        if (p == a)
            a = i + 1 < last ? memchr(s + i + 1, lo, last - i - 1) : NULL;
        else
            b = i + 1 < last ? memchr(s + i + 1, up, last - i - 1) : NULL;
    }
    return (size_t)-1;
}

enum sp_err deob_utf8_put(struct sp_buf *b, uint32_t cp)
{
    char t[4];
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD;
    if (cp < 0x80)
        return sp_buf_putc(b, (char)cp);
    if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        return sp_buf_put(b, t, 2);
    }
    if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        return sp_buf_put(b, t, 3);
    }
    if (cp > 0x10FFFF)
        return deob_utf8_put(b, 0xFFFD);
    t[0] = (char)(0xF0 | (cp >> 18));
    t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[3] = (char)(0x80 | (cp & 0x3F));
    return sp_buf_put(b, t, 4);
}

uint32_t deob_utf8_next(const char *str, size_t n, size_t *i)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t p = *i;
    unsigned char c = s[p];
    if (c < 0x80) {
        *i = p + 1;
        return c;
    }
    size_t need;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        *i = p + 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k <= need; k++) {
        if (p + k >= n || (s[p + k] & 0xC0) != 0x80) {
            *i = p + 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[p + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *i = p + 1;
        return 0xFFFD;
    }
    *i = p + need + 1;
    return cp;
}

enum sp_err deob_utf8_sanitize(struct sp_buf *out, const char *s, size_t n)
{
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        size_t j = i;
        uint32_t cp = c ? deob_utf8_next(s, n, &j) : 0xFFFD;
        if (!c)
            j = i + 1;
        if (cp != 0xFFFD || (j - i == 3 && (unsigned char)s[i] == 0xEF)) {
            i = j;
            continue;
        }
        if (sp_buf_put(out, s + run, i - run) != SP_OK ||
            deob_utf8_put(out, 0xFFFD) != SP_OK)
            return SP_ERR_NOMEM;
        i = j;
        run = i;
    }
    if (sp_buf_put(out, s + run, n - run) != SP_OK)
        return SP_ERR_NOMEM;
    return SP_OK;
}

/* ---- base64 and UTF-16 -------------------------------------------------- */

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

bool deob_b64_decode(const char *s, size_t n, struct sp_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t digits = 0;
    bool pad = false;
    if (sp_buf_reserve(out, n / 4 * 3 + 3) != SP_OK)
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (deob_isspace(c))
            continue;
        if (c == '=') {
            pad = true;
            continue;
        }
        int v = b64_val(c);
        if (v < 0 || pad)
            return false;
        digits++;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out->data[out->len] = '\0';
    return digits % 4 != 1;
}

enum sp_err deob_utf16le_to_utf8(const unsigned char *b, size_t n,
                                 struct sp_buf *out)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t u = (uint32_t)b[i] | ((uint32_t)b[i + 1] << 8);
        if (u >= 0xD800 && u <= 0xDBFF && i + 3 < n) {
            uint32_t v = (uint32_t)b[i + 2] | ((uint32_t)b[i + 3] << 8);
            if (v >= 0xDC00 && v <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00);
                i += 2;
            }
        }
        if (deob_utf8_put(out, u) != SP_OK)
            return SP_ERR_NOMEM;
    }
    return SP_OK;
}

bool deob_text_plausible(const unsigned char *b, size_t n)
{
    if (n == 0)
        return false;
    size_t good = 0, letters = 0, bad = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = b[i];
        if (c >= 0x20 && c < 0x7F) {
            good++;
            if (deob_isalpha(c))
                letters++;
            i++;
        } else if (c == '\t' || c == '\n' || c == '\r') {
            good++;
            i++;
        } else if (c >= 0x80) {
            size_t j = i;
            uint32_t cp = deob_utf8_next((const char *)b, n, &j);
            if (cp == 0xFFFD)
                bad++;
            else
                good++;
            i = j;
        } else {
            bad++;
            i++;
        }
    }
    size_t total = good + bad;
    return bad * 20 <= total && letters * 4 >= total;
}

bool deob_looks_utf16le(const unsigned char *b, size_t n)
{
    if (n < 4 || n % 2)
        return false;
    size_t zeros = 0;
    for (size_t i = 1; i < n; i += 2)
        zeros += b[i] == 0;
    return zeros * 10 >= (n / 2) * 9;
}

/* ---- zlib --------------------------------------------------------------- */

bool deob_inflate(struct deob_ctx *ctx, const unsigned char *in, size_t n,
                  int mode, struct sp_buf *out)
{
    size_t ratio_cap = (size_t)ctx->lim.max_ratio * n;
    if (ctx->lim.max_ratio && n && ratio_cap / n != ctx->lim.max_ratio)
        ratio_cap = (size_t)-1;
    if (ratio_cap < 1024)
        ratio_cap = 1024;
    size_t cap = SP_MIN(ratio_cap, ctx->lim.max_output);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int wbits = mode == DEOB_Z_RAW ? -15 : mode == DEOB_Z_GZIP ? 31 : 47;
    if (inflateInit2(&zs, wbits) != Z_OK)
        return false;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)SP_MIN(n, (size_t)UINT32_MAX);
    size_t start = out->len;
    bool ok = true;
    unsigned char tmp[16384];
    for (;;) {
        zs.next_out = tmp;
        zs.avail_out = sizeof(tmp);
        int rc = inflate(&zs, Z_NO_FLUSH);
        size_t got = sizeof(tmp) - zs.avail_out;
        if (got) {
            if (out->len - start + got > cap) {
                ctx->bounds |= cap == ratio_cap ? SP_DEOB_BOUND_RATIO
                                                : SP_DEOB_BOUND_OUTPUT;
                ok = false;
                break;
            }
            if (sp_buf_put(out, tmp, got) != SP_OK) {
                ok = false;
                break;
            }
        }
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK) {
            /* truncated or corrupt: keep a non-empty prefix */
            ok = out->len > start && rc == Z_BUF_ERROR;
            break;
        }
        if (zs.avail_in == 0 && got == 0)
            break;
        if (deob_time_up(ctx)) {
            ok = false;
            break;
        }
    }
    inflateEnd(&zs);
    if (!ok) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return ok;
}

/* ---- AES (FIPS-197), decryption only ------------------------------------ */

struct aes_tables {
    uint8_t sbox[256];
    uint8_t inv[256];
};

static uint8_t aes_xtime(uint8_t x)
{
    return (uint8_t)((x << 1) ^ ((x & 0x80) ? 0x1B : 0));
}

static uint8_t aes_mul(uint8_t a, uint8_t b)
{
    uint8_t r = 0;
    while (b) {
        if (b & 1)
            r ^= a;
        a = aes_xtime(a);
        b >>= 1;
    }
    return r;
}

static uint8_t rotl8(uint8_t x, int k)
{
    return (uint8_t)((x << k) | (x >> (8 - k)));
}

/* The S-box is the multiplicative inverse in GF(2^8) followed by the
 * affine map; walking the field with generator 3 (and its inverse) gives
 * every element and its inverse in one pass. */
static void aes_tables_init(struct aes_tables *t)
{
    uint8_t p = 1, q = 1;
    do {
        p = (uint8_t)(p ^ aes_xtime(p));          /* p *= 3 */
        q ^= (uint8_t)(q << 1);                   /* q /= 3 */
        q ^= (uint8_t)(q << 2);
        q ^= (uint8_t)(q << 4);
        if (q & 0x80)
            q ^= 0x09;
        uint8_t x = (uint8_t)(q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^
                              rotl8(q, 4));
        t->sbox[p] = (uint8_t)(x ^ 0x63);
    } while (p != 1);
    t->sbox[0] = 0x63;
    for (int i = 0; i < 256; i++)
        t->inv[t->sbox[i]] = (uint8_t)i;
}

static void aes_expand(const struct aes_tables *t, const uint8_t *key,
                       int nk, uint8_t *w /* 16*(nr+1) bytes */)
{
    int nr = nk + 6, total = 4 * (nr + 1);
    uint8_t rcon = 1;
    memcpy(w, key, (size_t)nk * 4);
    for (int i = nk; i < total; i++) {
        uint8_t tmp[4];
        memcpy(tmp, w + (i - 1) * 4, 4);
        if (i % nk == 0) {
            uint8_t t0 = tmp[0];
            tmp[0] = (uint8_t)(t->sbox[tmp[1]] ^ rcon);
            tmp[1] = t->sbox[tmp[2]];
            tmp[2] = t->sbox[tmp[3]];
            tmp[3] = t->sbox[t0];
            rcon = aes_xtime(rcon);
        } else if (nk > 6 && i % nk == 4) {
            for (int k = 0; k < 4; k++)
                tmp[k] = t->sbox[tmp[k]];
        }
        for (int k = 0; k < 4; k++)
            w[i * 4 + k] = (uint8_t)(w[(i - nk) * 4 + k] ^ tmp[k]);
    }
}

static void aes_decrypt_block(const struct aes_tables *t, const uint8_t *w,
                              int nr, const uint8_t in[16], uint8_t out[16])
{
    uint8_t s[16], u[16];
    for (int i = 0; i < 16; i++)
        s[i] = (uint8_t)(in[i] ^ w[nr * 16 + i]);
    for (int round = nr - 1; round >= 0; round--) {
        /* InvShiftRows + InvSubBytes; s[r + 4c] is row r, column c */
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < 4; r++)
                u[r + 4 * ((c + r) % 4)] = t->inv[s[r + 4 * c]];
        for (int i = 0; i < 16; i++)
            u[i] ^= w[round * 16 + i];
        if (round == 0) {
            memcpy(s, u, 16);
            break;
        }
        for (int c = 0; c < 4; c++) {
            uint8_t a0 = u[4 * c], a1 = u[4 * c + 1], a2 = u[4 * c + 2],
                    a3 = u[4 * c + 3];
            s[4 * c] = (uint8_t)(aes_mul(a0, 14) ^ aes_mul(a1, 11) ^
                                 aes_mul(a2, 13) ^ aes_mul(a3, 9));
            s[4 * c + 1] = (uint8_t)(aes_mul(a0, 9) ^ aes_mul(a1, 14) ^
                                     aes_mul(a2, 11) ^ aes_mul(a3, 13));
            s[4 * c + 2] = (uint8_t)(aes_mul(a0, 13) ^ aes_mul(a1, 9) ^
                                     aes_mul(a2, 14) ^ aes_mul(a3, 11));
            s[4 * c + 3] = (uint8_t)(aes_mul(a0, 11) ^ aes_mul(a1, 13) ^
                                     aes_mul(a2, 9) ^ aes_mul(a3, 14));
        }
    }
    memcpy(out, s, 16);
}

bool deob_aes_cbc_decrypt(const unsigned char *key, size_t keylen,
                          const unsigned char iv[16],
                          const unsigned char *ct, size_t n,
                          unsigned char *out, size_t *outlen)
{
    if ((keylen != 16 && keylen != 24 && keylen != 32) || n == 0 || n % 16)
        return false;
    struct aes_tables t;
    aes_tables_init(&t);
    int nk = (int)keylen / 4, nr = nk + 6;
    uint8_t w[16 * 15];
    aes_expand(&t, key, nk, w);
    uint8_t prev[16];
    memcpy(prev, iv, 16);
    for (size_t off = 0; off < n; off += 16) {
        uint8_t blk[16];
        aes_decrypt_block(&t, w, nr, ct + off, blk);
        for (int i = 0; i < 16; i++)
            out[off + (size_t)i] = (uint8_t)(blk[i] ^ prev[i]);
        memcpy(prev, ct + off, 16);
    }
    unsigned pad = out[n - 1];
    if (pad == 0 || pad > 16)
        return false;
    for (size_t i = n - pad; i < n; i++)
        if (out[i] != pad)
            return false;
    *outlen = n - pad;
    return true;
}

/* ---- Windows defaults --------------------------------------------------- */

const struct deob_env deob_env_defaults[] = {
    {"ALLUSERSPROFILE", "C:\\ProgramData"},
    {"APPDATA", "C:\\Users\\user\\AppData\\Roaming"},
    {"CommonProgramFiles", "C:\\Program Files\\Common Files"},
    {"CommonProgramFiles(x86)", "C:\\Program Files (x86)\\Common Files"},
    {"CommonProgramW6432", "C:\\Program Files\\Common Files"},
    {"COMPUTERNAME", "DESKTOP"},
    {"ComSpec", "C:\\WINDOWS\\system32\\cmd.exe"},
    {"DriverData", "C:\\Windows\\System32\\Drivers\\DriverData"},
    {"HOMEDRIVE", "C:"},
    {"HOMEPATH", "\\Users\\user"},
    {"LOCALAPPDATA", "C:\\Users\\user\\AppData\\Local"},
    {"LOGONSERVER", "\\\\DESKTOP"},
    {"NUMBER_OF_PROCESSORS", "4"},
    {"OS", "Windows_NT"},
    {"Path", "C:\\WINDOWS\\system32;C:\\WINDOWS;C:\\WINDOWS\\System32\\Wbem;"
             "C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\;"
             "C:\\Users\\user\\AppData\\Local\\Microsoft\\WindowsApps;"},
    {"PATHEXT", ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC"},
    {"PROCESSOR_ARCHITECTURE", "AMD64"},
    {"ProgramData", "C:\\ProgramData"},
    {"ProgramFiles", "C:\\Program Files"},
    {"ProgramFiles(x86)", "C:\\Program Files (x86)"},
    {"ProgramW6432", "C:\\Program Files"},
    {"PROMPT", "$P$G"},
    {"PSModulePath", "C:\\Program Files\\WindowsPowerShell\\Modules;"
                     "C:\\Windows\\system32\\WindowsPowerShell\\v1.0\\Modules"},
    {"PUBLIC", "C:\\Users\\Public"},
    {"SESSIONNAME", "Console"},
    {"SystemDrive", "C:"},
    {"SystemRoot", "C:\\WINDOWS"},
    {"TEMP", "C:\\Users\\user\\AppData\\Local\\Temp"},
    {"TMP", "C:\\Users\\user\\AppData\\Local\\Temp"},
    {"USERDOMAIN", "DESKTOP"},
    {"USERNAME", "user"},
    {"USERPROFILE", "C:\\Users\\user"},
    {"windir", "C:\\WINDOWS"},
    {NULL, NULL},
};

const char *deob_env_lookup(const char *name, size_t n)
{
    for (const struct deob_env *e = deob_env_defaults; e->name; e++)
        if (deob_ci_eqn(name, n, e->name))
            return e->value;
    return NULL;
}

/* ---- language guess ----------------------------------------------------- */

const char *deob_lang_name(enum deob_lang l)
{
    switch (l) {
    case DEOB_LANG_PS:
        return "powershell";
    case DEOB_LANG_CMD:
        return "cmd";
    case DEOB_LANG_SH:
        return "sh";
    default:
        return "unknown";
    }
}

void deob_first_word(const char *s, size_t n, char *word, size_t cap,
                     size_t *end)
{
    size_t i = 0;
    while (i < n && (deob_isspace((unsigned char)s[i]) || s[i] == '"' ||
                     s[i] == '\'' || s[i] == '@' || s[i] == ',' ||
                     s[i] == ';' || s[i] == '^' || s[i] == '(' ||
                     s[i] == '&'))
        i++;
    size_t w = i, base = i;
    if (n - i > 4096)
        n = i + 4096;
    while (w < n && !deob_isspace((unsigned char)s[w]) && s[w] != '"' &&
           s[w] != '\'' && s[w] != ';' && s[w] != ',' && s[w] != '|' &&
           s[w] != '&' && s[w] != '(' && s[w] != ')' && s[w] != '{') {
        if (s[w] == '\\' || s[w] == '/')
            base = w + 1;
        w++;
    }
    size_t k = 0;
    for (size_t j = base; j < w && k + 1 < cap; j++) {
        if (s[j] == '^')
            continue;
        word[k++] = sp_tolower(s[j]);
    }
    word[k] = '\0';
    if (k > 4 && strcmp(word + k - 4, ".exe") == 0)
        word[k - 4] = '\0';
    if (end)
        *end = w;
}

static size_t count_ci(const char *s, size_t n, const char *needle)
{
    size_t c = 0, off = 0;
    while (off < n && c < 64) {
        size_t at = deob_ci_find(s + off, n - off, needle);
        if (at == (size_t)-1)
            break;
        c++;
        off += at + 1;
    }
    return c;
}

enum deob_lang deob_lang_detect(const char *s, size_t n)
{
    char w[64];
    size_t wend;
    deob_first_word(s, n, w, sizeof(w), &wend);
    /* carets inside the program name only make sense to cmd.exe */
    for (size_t i = 0; i < wend; i++)
        if (s[i] == '^' && i + 1 < wend && deob_isalnum((unsigned char)s[i + 1]))
            return DEOB_LANG_CMD;
    if (!strcmp(w, "powershell") || !strcmp(w, "pwsh") ||
        !strcmp(w, "powershell_ise"))
        return DEOB_LANG_PS;
    if (!strcmp(w, "cmd"))
        return DEOB_LANG_CMD;
    static const char *const sh_words[] = {
        "bash", "sh", "zsh", "dash", "ksh", "python", "python2", "python3",
        "perl", "php", "ruby", "curl", "wget", "nc", "ncat", "socat", "awk",
        "lua", "base64", "sudo", "nohup", "chmod", "osascript", "exec",
        "eval", "busybox", "telnet", "openssl", "rm", "mkfifo", "xterm",
        "node", "golang", "go", "crontab", "export", "env", NULL};
    for (size_t i = 0; sh_words[i]; i++)
        if (!strcmp(w, sh_words[i]))
            return DEOB_LANG_SH;
    if (!strcmp(w, "for") || !strcmp(w, "call") || !strcmp(w, "start"))
        return DEOB_LANG_CMD;
    /* a Windows program started from a command line */
    static const char *const win_words[] = {
        "mshta", "rundll32", "regsvr32", "certutil", "bitsadmin", "wmic",
        "msiexec", "cscript", "wscript", "schtasks", "reg", "net", "net1",
        "netsh", "sc", "taskkill", "tasklist", "whoami", "ipconfig",
        "netstat", "systeminfo", "vssadmin", "wevtutil", "bcdedit", "attrib",
        "installutil", "regasm", "regsvcs", "msbuild", "cmstp", "forfiles",
        "hh", "odbcconf", "pcalua", "esentutl", "expand", "extrac32",
        "findstr", "replace", "xcopy", "robocopy", "wmiprvse", "nltest",
        "dsquery", "ntdsutil", "diskshadow", "vssvc", "fsutil", "icacls",
        "takeown", "wusa", "rmdir", "mkdir", "copy", "move", "del", NULL};
    for (size_t i = 0; win_words[i]; i++)
        if (!strcmp(w, win_words[i]))
            return DEOB_LANG_CMD;
    if (wend > 4 && deob_ci_eqn(s + wend - 4, 4, ".exe") &&
        strcmp(w, "python") && strcmp(w, "python3") && strcmp(w, "perl"))
        return DEOB_LANG_CMD;
    if (!strcmp(w, "set")) {
        /* cmd: set NAME=value; PowerShell: set NAME (value) */
        size_t e = deob_ci_find(s, n, "set") + 3;
        while (e < n && (s[e] == ' ' || s[e] == '\t' || s[e] == '^'))
            e++;
        if (e < n && s[e] == '"')
            return DEOB_LANG_CMD;
        while (e < n && !deob_isspace((unsigned char)s[e]) && s[e] != '=' &&
               s[e] != '(')
            e++;
        if (e < n && s[e] == '=')
            return DEOB_LANG_CMD;
    }

    /* the outer command shows in the first lines; bounded work */
    if (n > 65536)
        n = 65536;
    size_t ps = 0, cmd = 0, sh = 0;
    static const char *const ps_marks[] = {
        "-join", "-split", "-replace", "[char]", "::", "iex", "invoke-",
        "new-object", "write-host", "foreach-object", "-bxor", "$env:",
        ".invoke(", "[convert]", "-f '", "-f \"", "get-", "set-", "${", "|%",
        "| %", "$_", "frombase64string", "$psh", "'+'", "\"+\"", "' +",
        "&(", ".(", "&'", "-f'", "-f\"", "'-f", "\"-f", "-foreground",
        "[type]", "[string]", "-split", "write-", "start-process", "out-",
        NULL};
    for (size_t i = 0; ps_marks[i]; i++)
        ps += count_ci(s, n, ps_marks[i]);
    static const char *const sh_marks[] = {
        "| sh", "|sh", "| bash", "|bash", "$(", "/dev/tcp", "base64 -d",
        "base64 --decode", "#!/", "/bin/", "2>&1", "; then", "/tmp/", NULL};
    for (size_t i = 0; sh_marks[i]; i++)
        sh += count_ci(s, n, sh_marks[i]);
    size_t pct = 0, carets = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 1 < n && deob_isalpha((unsigned char)s[i + 1]))
            pct++;
        if (s[i] == '^' && i > 0 && i + 1 < n &&
            deob_isalnum((unsigned char)s[i - 1]) &&
            deob_isalnum((unsigned char)s[i + 1]))
            carets++;
        if (s[i] == '$' && i + 1 < n &&
            (deob_isalpha((unsigned char)s[i + 1]) || s[i + 1] == '{'))
            ps++;
        if (s[i] == '`' && i > 0 && i + 1 < n &&
            deob_isalpha((unsigned char)s[i - 1]) &&
            deob_isalpha((unsigned char)s[i + 1]))
            ps++;
    }
    cmd += pct / 2 + carets + count_ci(s, n, "&&") +
           count_ci(s, n, "set ") + count_ci(s, n, "/c ");
    if (ps > cmd && ps > sh)
        return DEOB_LANG_PS;
    if (cmd > ps && cmd > sh)
        return DEOB_LANG_CMD;
    if (sh > ps && sh > cmd)
        return DEOB_LANG_SH;
    return DEOB_LANG_UNKNOWN;
}
