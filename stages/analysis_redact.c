/*
 * analysis_redact.c - what must not leave the process: redaction of
 * secrets (and optionally e-mail addresses) in alert-derived text, and
 * anonymization of hosts, users, e-mails and IPs into placeholders that
 * are stable within one analysis and restored in the model's answer.
 *
 * Redaction is one left-to-right scan with a handful of detectors that
 * fire only at word boundaries: URL credentials, Authorization and Bearer
 * values, secret-named key=value pairs (also JSON, connection strings and
 * PowerShell $env:NAME / $name), password/token flags of command lines,
 * curl -u USER:PASS, `net user` and `/user:` passwords,
 * ConvertTo-SecureString plaintext, and token formats (AWS access keys,
 * sk-..., GitHub, Slack, Google keys, JWTs), plus private key blocks.  A
 * name or flag is secret when its last word (split on _ . - and
 * camelCase) is one (DB_PASSWORD, AZURE_CLIENT_SECRET, -AdminPassword),
 * not when it merely contains one (keyboard, bypass, -PassThru).
 * Over-redaction is preferred to a leak.
 *
 * Anonymization knows the incident's entities (their names, FQDNs, short
 * names, UPNs, domain\user forms) and also catches IPv4 and e-mail
 * addresses that appear in free text only.
 *
 * No global state; a map is used by one thread at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

#define RD_MARK "[REDACTED]"
#define RD_VALUE_MAX 4096

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

static bool is_word(char c)
{
    return is_alnum(c) || c == '_';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Case-insensitive: does s[i..n) start with w? */
static bool ci_at(const char *s, size_t n, size_t i, const char *w)
{
    size_t l = strlen(w);
    return n - i >= l && sp_strncaseeq(s + i, w, l);
}

static bool boundary_before(const char *s, size_t i)
{
    return i == 0 || !is_word(s[i - 1]);
}

static size_t skip_blanks(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* A value at i: quoted (the inside is the value) or a run up to a blank
 * or delimiter.  Sets [*vs, *ve); false when empty. */
static bool value_at(const char *s, size_t n, size_t i, const char *stops,
                     size_t *vs, size_t *ve)
{
    if (i >= n)
        return false;
    if (s[i] == '"' || s[i] == '\'') {
        char q = s[i];
        size_t j = i + 1;
        while (j < n && s[j] != q && j - i < RD_VALUE_MAX)
            j++;
        if (j == i + 1)
            return false;
        *vs = i + 1;
        *ve = j;
        return true;
    }
    size_t j = i;
    while (j < n && !is_space(s[j]) && !strchr(stops, s[j]) &&
           j - i < RD_VALUE_MAX)
        j++;
    if (j == i)
        return false;
    *vs = i;
    *ve = j;
    return true;
}

/* ---- detectors: each returns true with [*vs, *ve) to replace ------------ */

static bool det_url_creds(const char *s, size_t n, size_t i, size_t *vs,
                          size_t *ve)
{
    if (!(n - i >= 3 && memcmp(s + i, "://", 3) == 0 && i > 0 &&
          is_alnum(s[i - 1])))
        return false;
    size_t j = i + 3, colon = 0, at = 0;
    while (j < n && j - i < 512 && !is_space(s[j]) && !strchr("/?#\"'<>", s[j])) {
        if (s[j] == ':' && !colon)
            colon = j;
        if (s[j] == '@')
            at = j;
        j++;
    }
    if (!colon || !at || colon > at || at == colon + 1)
        return false;
    *vs = colon + 1;
    *ve = at;
    return true;
}

static bool det_authorization(const char *s, size_t n, size_t i, size_t *vs,
                              size_t *ve)
{
    if (!boundary_before(s, i) || !ci_at(s, n, i, "authorization"))
        return false;
    size_t j = i + 13;
    if (j < n && (s[j] == '"' || s[j] == '\''))
        j++;
    j = skip_blanks(s, n, j);
    if (j >= n || (s[j] != ':' && s[j] != '='))
        return false;
    j = skip_blanks(s, n, j + 1);
    if (j < n && (s[j] == '"' || s[j] == '\''))
        j++;
    size_t w = j;                  /* optional scheme word */
    while (w < n && w - j < 20 && ((s[w] >= 'a' && s[w] <= 'z') ||
                                   (s[w] >= 'A' && s[w] <= 'Z')))
        w++;
    if (w > j && w < n && s[w] == ' ')
        j = skip_blanks(s, n, w);
    return value_at(s, n, j, "\"',;", vs, ve);
}

static bool det_bearer(const char *s, size_t n, size_t i, size_t *vs,
                       size_t *ve)
{
    if (!boundary_before(s, i) || !ci_at(s, n, i, "bearer") ||
        n - i < 8 || !is_space(s[i + 6]))
        return false;
    size_t j = skip_blanks(s, n, i + 6), k = j;
    while (k < n && (is_alnum(s[k]) || strchr("._~+/=-", s[k])) &&
           k - j < RD_VALUE_MAX)
        k++;
    if (k - j < 8)
        return false;
    *vs = j;
    *ve = k;
    return true;
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A character of a setting's name: DB_PASSWORD, spring.datasource.password,
 * x-api-key. */
static bool is_name(char c)
{
    return is_word(c) || c == '.' || c == '-';
}

/* Does a word start at k inside the alphanumeric run [a, k]?  camelCase
 * (dbPassword) and an acronym before a word (DBPassword, OAuth). */
static bool camel_start(const char *s, size_t a, size_t e, size_t k)
{
    if (k <= a || !is_upper(s[k]))
        return false;
    return is_lower(s[k - 1]) || is_digit(s[k - 1]) ||
           (is_upper(s[k - 1]) && k + 1 < e && is_lower(s[k + 1]));
}

/* The word that ends at e (trailing digits dropped: PASSWORD2), as
 * [*ws, *we); false when there is none. */
static bool word_before(const char *s, size_t a, size_t e, size_t *ws,
                        size_t *we)
{
    while (e > a && !is_alnum(s[e - 1]))  /* separators: _ . - */
        e--;
    size_t end = e;
    while (end > a && is_digit(s[end - 1]))
        end--;
    if (end == a || !is_alnum(s[end - 1]))
        return false;
    size_t k = end - 1;
    while (k > a && is_alnum(s[k - 1]) && !camel_start(s, a, end, k))
        k--;
    *ws = k;
    *we = end;
    return true;
}

/* Is s[ps, pe) + s[ws, we) the word w (case-insensitive)?  ps == pe:
 * the last word alone. */
static bool joined_eq(const char *s, size_t ps, size_t pe, size_t ws,
                      size_t we, const char *w)
{
    size_t l = strlen(w), pl = pe - ps, wl = we - ws;
    return pl + wl == l && sp_strncaseeq(s + ps, w, pl) &&
           sp_strncaseeq(s + ws, w + pl, wl);
}

/* Secret words a name or flag may end with.  "key" alone is not one
 * (keyboard, hotkey, reg.exe's keys): only api/access/secret/private/
 * account key, also as two words (SECRET_KEY, ApiKey, x-api-key).  As a
 * flag, credential(s) and auth usually take a PSCredential, a user name
 * or nothing (-UseDefaultCredentials http://...): not redacted there. */
static const struct {
    const char *w;
    bool flag;
} secret_words[] = {
    {"password", true},   {"passwd", true},     {"pwd", true},
    {"pass", true},       {"passphrase", true}, {"secret", true},
    {"token", true},      {"apikey", true},     {"accesskey", true},
    {"secretkey", true},  {"privatekey", true}, {"accountkey", true},
    {"credential", false}, {"credentials", false}, {"auth", false},
};

/* Whole names that are secret without ending in a secret word. */
static const char *const secret_names[] = {"sharedaccesssignature", "sig"};

/* Is [a, b) a secret's name: does its last word (split on _ . - and
 * camelCase), or its last two words joined (Pass+Word, Api+Key), make a
 * secret word?  Prefixes do not matter: DB_PASSWORD, AZURE_CLIENT_SECRET,
 * $dbPassword, --db-password. */
static bool secret_name(const char *s, size_t a, size_t b, bool flag)
{
    for (size_t k = 0; k < SP_ARRAY_SIZE(secret_names); k++)
        if (joined_eq(s, a, a, a, b, secret_names[k]))
            return true;
    size_t ws, we, ps, pe;
    if (!word_before(s, a, b, &ws, &we))
        return false;
    if (!word_before(s, a, ws, &ps, &pe))
        ps = pe = ws;
    for (size_t k = 0; k < SP_ARRAY_SIZE(secret_words); k++) {
        const char *w = secret_words[k].w;
        if (flag && !secret_words[k].flag)
            continue;
        if (joined_eq(s, ws, ws, ws, we, w) || joined_eq(s, ps, pe, ws, we, w))
            return true;
    }
    return false;
}

/* NAME=value, NAME: value, "NAME": "value", $env:NAME = 'value',
 * $name = 'value' where NAME is a secret's name (secret_name).  The name
 * starts here only: not inside a longer name. */
static bool det_key_value(const char *s, size_t n, size_t i, size_t *vs,
                          size_t *ve)
{
    if (!is_word(s[i]) || (i > 0 && is_name(s[i - 1])))
        return false;
    size_t e = i;
    while (e < n && is_name(s[e]) && e - i < RD_VALUE_MAX)
        e++;
    if (!secret_name(s, i, e, false))
        return false;
    size_t j = e;
    if (j < n && (s[j] == '"' || s[j] == '\''))
        j++;
    j = skip_blanks(s, n, j);
    if (j >= n || (s[j] != '=' && s[j] != ':'))
        return false;
    if (s[j] == ':' && n - j >= 3 && s[j + 1] == '/' && s[j + 2] == '/')
        return false;
    j = skip_blanks(s, n, j + 1);
    return value_at(s, n, j, ";&,)<>|\"'", vs, ve);
}

static const char *const secret_flags[] = {
    "password", "passwd", "pass", "pwd", "pw", "rp", "secret", "token",
    "apikey", "api-key", "api_key", "accesskey", "access-key", "secretkey",
    "secret-key", "client-secret", "clientsecret", "sastoken", "sas", "pat",
};

/* Does the text name one of the tools (in its first 64 KiB)? */
static bool names_tool(const char *s, size_t n, const char *const *tools,
                       size_t n_tools)
{
    for (size_t t = 0; t < n_tools; t++) {
        size_t l = strlen(tools[t]);
        for (size_t i = 0; i + l <= n && i < 65536; i++)
            if (sp_strncaseeq(s + i, tools[t], l))
                return true;
    }
    return false;
}

/* Tools whose -p (or -pVALUE) is a password. */
static bool p_is_password(const char *s, size_t n)
{
    static const char *const tools[] = {"mysql", "psexec", "sqlcmd", "7z",
                                        "rar", "plink", "sshpass", "pscp",
                                        "net use", "runas", "wmic",
                                        "docker login", "podman login"};
    return names_tool(s, n, tools, SP_ARRAY_SIZE(tools));
}

/* curl's -u/--user and -U/--proxy-user USER:PASSWORD (also -uUSER:PASS):
 * the part after the first colon.  Only where the text names curl:
 * elsewhere -u is a user (mysql, psexec) or uid:gid (docker run). */
static bool det_curl_user(const char *s, size_t n, size_t i, size_t *vs,
                          size_t *ve, int *curl)
{
    if (i > 0 && !is_space(s[i - 1]) && s[i - 1] != '"' && s[i - 1] != '\'')
        return false;
    size_t j;
    if (n - i >= 6 && memcmp(s + i, "--user", 6) == 0)
        j = i + 6;
    else if (n - i >= 12 && memcmp(s + i, "--proxy-user", 12) == 0)
        j = i + 12;
    else if (n - i >= 3 && s[i + 1] == 'u')
        j = i + 2;
    else if (n - i >= 3 && s[i + 1] == 'U')
        j = i + 2;
    else
        return false;
    if (s[j] == '=' && j > i + 2)
        j++;
    else if (is_space(s[j]))
        j = skip_blanks(s, n, j);
    else if (j > i + 2)             /* --username, --user-agent */
        return false;
    size_t a, b;
    if (!value_at(s, n, j, "", &a, &b))
        return false;
    const char *colon = memchr(s + a, ':', b - a);
    if (!colon || (size_t)(colon - s) + 1 >= b)
        return false;
    if (*curl < 0) {
        static const char *const tools[] = {"curl"};
        *curl = names_tool(s, n, tools, 1);
    }
    if (!*curl)
        return false;
    *vs = (size_t)(colon - s) + 1;
    *ve = b;
    return true;
}

static bool det_flag(const char *s, size_t n, size_t i, size_t *vs,
                     size_t *ve, int *p_tool)
{
    if (s[i] != '-' && s[i] != '/')
        return false;
    if (i > 0 && !is_space(s[i - 1]) && s[i - 1] != '"' && s[i - 1] != '\'')
        return false;
    bool slash = s[i] == '/';
    size_t j = i + 1;
    if (!slash && j < n && s[j] == '-')
        j++;
    size_t name = j;
    while (j < n && (is_alnum(s[j]) || s[j] == '-' || s[j] == '_') &&
           j - name < 128)
        j++;
    size_t len = j - name;
    if (len == 0)
        return false;
    bool match = false;
    for (size_t k = 0; k < SP_ARRAY_SIZE(secret_flags) && !match; k++)
        match = strlen(secret_flags[k]) == len &&
                sp_strncaseeq(s + name, secret_flags[k], len);
    bool single_p = len == 1 && (s[name] == 'p' || s[name] == 'P');
    if (!match && !single_p) {
        /* 7z/rar/mysql style: -pSECRET (not a word like -path) */
        bool wordy = true;
        for (size_t k = name + 1; k < j; k++)
            wordy &= s[k] >= 'a' && s[k] <= 'z';
        if (!slash && s[name] == 'p' && name == i + 1 && !wordy) {
            if (*p_tool < 0)
                *p_tool = p_is_password(s, n);
            if (*p_tool) {
                *vs = name + 1;
                *ve = j;
                while (*ve < n && !is_space(s[*ve]) && *ve - *vs < RD_VALUE_MAX)
                    (*ve)++;
                return true;
            }
        }
        /* -AdminPassword, --db-password, -ClientSecret (not -PassThru). */
        if (!secret_name(s, name, j, true))
            return false;
    }
    if (single_p) {
        if (*p_tool < 0)
            *p_tool = p_is_password(s, n);
        if (!*p_tool)
            return false;
    }
    if (j < n && (s[j] == '=' || s[j] == ':'))
        return value_at(s, n, j + 1, "\"'", vs, ve);
    if (slash)                      /* /p value: too common for paths */
        return false;
    size_t v = skip_blanks(s, n, j);
    if (v == j || v >= n || s[v] == '-' || s[v] == '/' || s[v] == '$' ||
        s[v] == '(')
        return false;
    return value_at(s, n, v, "", vs, ve);
}

static bool det_net_user(const char *s, size_t n, size_t i, size_t *vs,
                         size_t *ve)
{
    size_t j;
    if (boundary_before(s, i) && ci_at(s, n, i, "net user "))
        j = i + 9;
    else if (boundary_before(s, i) && ci_at(s, n, i, "net1 user "))
        j = i + 10;
    else if (ci_at(s, n, i, "/user:") && i > 0 && is_space(s[i - 1]) &&
             (memmem(s, i, "net use", 7) || memmem(s, i, "NET USE", 7) ||
              memmem(s, i, "net1 use", 8)))
        j = i + 6;
    else
        return false;
    j = skip_blanks(s, n, j);
    size_t a, b;
    if (!value_at(s, n, j, "", &a, &b))             /* the user name */
        return false;
    j = b + (b < n && (s[b] == '"' || s[b] == '\''));
    size_t v = skip_blanks(s, n, j);
    if (v == j || v >= n || s[v] == '/' || s[v] == '*' || s[v] == '-')
        return false;
    return value_at(s, n, v, "", vs, ve);
}

static bool det_securestring(const char *s, size_t n, size_t i, size_t *vs,
                             size_t *ve)
{
    if (!boundary_before(s, i) || !ci_at(s, n, i, "convertto-securestring"))
        return false;
    size_t j = skip_blanks(s, n, i + 22);
    if (ci_at(s, n, j, "-string"))
        j = skip_blanks(s, n, j + 7);
    if (j >= n || s[j] == '-' || s[j] == '$' || s[j] == '(')
        return false;
    return value_at(s, n, j, ")", vs, ve);
}

static size_t run_of(const char *s, size_t n, size_t j, const char *extra)
{
    size_t k = j;
    while (k < n && (is_alnum(s[k]) || strchr(extra, s[k])) &&
           k - j < RD_VALUE_MAX)
        k++;
    return k - j;
}

static bool det_token(const char *s, size_t n, size_t i, size_t *vs,
                      size_t *ve)
{
    if (!boundary_before(s, i) || (i > 0 && s[i - 1] == '-'))
        return false;
    size_t l = 0;
    if (n - i >= 20 && (memcmp(s + i, "AKIA", 4) == 0 ||
                        memcmp(s + i, "ASIA", 4) == 0)) {
        size_t r = 0;
        while (r < 16 && ((s[i + 4 + r] >= 'A' && s[i + 4 + r] <= 'Z') ||
                          (s[i + 4 + r] >= '0' && s[i + 4 + r] <= '9')))
            r++;
        if (r == 16)
            l = 20;
    } else if (n - i > 3 && memcmp(s + i, "sk-", 3) == 0) {
        size_t r = run_of(s, n, i + 3, "_-");
        if (r >= 20)
            l = 3 + r;
    } else if (n - i > 4 && (memcmp(s + i, "ghp_", 4) == 0 ||
                             memcmp(s + i, "gho_", 4) == 0 ||
                             memcmp(s + i, "ghu_", 4) == 0 ||
                             memcmp(s + i, "ghs_", 4) == 0 ||
                             memcmp(s + i, "ghr_", 4) == 0)) {
        size_t r = run_of(s, n, i + 4, "");
        if (r >= 20)
            l = 4 + r;
    } else if (n - i > 11 && memcmp(s + i, "github_pat_", 11) == 0) {
        size_t r = run_of(s, n, i + 11, "_");
        if (r >= 20)
            l = 11 + r;
    } else if (n - i > 5 && memcmp(s + i, "xox", 3) == 0 &&
               strchr("abprs", s[i + 3]) && s[i + 4] == '-') {
        size_t r = run_of(s, n, i + 5, "-");
        if (r >= 10)
            l = 5 + r;
    } else if (n - i > 4 && memcmp(s + i, "AIza", 4) == 0) {
        size_t r = run_of(s, n, i + 4, "_-");
        if (r >= 30)
            l = 4 + r;
    } else if (n - i > 3 && memcmp(s + i, "eyJ", 3) == 0) {
        size_t a = run_of(s, n, i, "_-");
        if (a >= 10 && i + a < n && s[i + a] == '.') {
            size_t b = run_of(s, n, i + a + 1, "_-");
            if (b >= 10 && i + a + 1 + b < n && s[i + a + 1 + b] == '.') {
                size_t c = run_of(s, n, i + a + b + 2, "_-");
                if (c >= 10)
                    l = a + b + c + 2;
            }
        }
    }
    if (!l || (i + l < n && is_word(s[i + l])))
        return false;
    *vs = i;
    *ve = i + l;
    return true;
}

/* Private key blocks, whole. */
static bool det_private_key(const char *s, size_t n, size_t i, size_t *vs,
                            size_t *ve)
{
    if (n - i < 30 || memcmp(s + i, "-----BEGIN ", 11) != 0)
        return false;
    const char *hdr_end = memmem(s + i + 11, SP_MIN(n - i - 11, 64), "-----", 5);
    if (!hdr_end || !memmem(s + i, (size_t)(hdr_end - (s + i)), "PRIVATE KEY",
                            11))
        return false;
    const char *end = memmem(hdr_end, n - (size_t)(hdr_end - s), "-----END", 8);
    size_t stop = n;
    if (end) {
        const char *close = memmem(end + 8, n - (size_t)(end + 8 - s), "-----",
                                   5);
        stop = close ? (size_t)(close - s) + 5 : n;
    }
    *vs = i;
    *ve = stop;
    return true;
}

static bool det_email(const char *s, size_t n, size_t i, size_t *len)
{
    if (!is_alnum(s[i]) || (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '.' ||
                                      s[i - 1] == '-' || s[i - 1] == '+')))
        return false;
    size_t j = i;
    while (j < n && j - i < 64 && (is_alnum(s[j]) || strchr("._%+-", s[j])))
        j++;
    if (j >= n || s[j] != '@' || j == i)
        return false;
    size_t d = j + 1, k = d, last_dot = 0;
    while (k < n && k - d < 253 && (is_alnum(s[k]) || s[k] == '.' || s[k] == '-')) {
        if (s[k] == '.')
            last_dot = k;
        k++;
    }
    while (k > d && (s[k - 1] == '.' || s[k - 1] == '-'))
        k--;
    last_dot = 0;
    for (size_t t = k; t > d; t--) {
        if (s[t - 1] == '.') {
            last_dot = t - 1;
            break;
        }
    }
    if (!last_dot || last_dot + 2 >= k || last_dot <= d)
        return false;
    for (size_t t = last_dot + 1; t < k; t++)
        if (!((s[t] >= 'a' && s[t] <= 'z') || (s[t] >= 'A' && s[t] <= 'Z')))
            return false;
    *len = k - i;
    return true;
}

enum sp_err sp_analysis_redact(const char *s, size_t n, unsigned classes,
                               struct sp_buf *out, unsigned *count)
{
    unsigned c = 0;
    int p_tool = -1;               /* -p is a password here: -1 unknown */
    int curl = -1;                 /* the text names curl: -1 unknown */
    size_t i = 0;
    while (i < n) {
        size_t vs = 0, ve = 0, elen = 0;
        bool hit = false;
        if (classes & SP_REDACT_SECRETS) {
            char ch = s[i];
            hit = (ch == '-' && det_private_key(s, n, i, &vs, &ve)) ||
                  (ch == ':' && det_url_creds(s, n, i, &vs, &ve)) ||
                  ((ch == 'a' || ch == 'A') &&
                   det_authorization(s, n, i, &vs, &ve)) ||
                  ((ch == 'b' || ch == 'B') && det_bearer(s, n, i, &vs, &ve)) ||
                  ((ch == 'n' || ch == 'N' || ch == '/') &&
                   det_net_user(s, n, i, &vs, &ve)) ||
                  ((ch == 'c' || ch == 'C') &&
                   det_securestring(s, n, i, &vs, &ve)) ||
                  det_token(s, n, i, &vs, &ve) ||
                  det_key_value(s, n, i, &vs, &ve) ||
                  (ch == '-' && det_curl_user(s, n, i, &vs, &ve, &curl)) ||
                  det_flag(s, n, i, &vs, &ve, &p_tool);
        }
        if (hit && ve > vs && vs >= i) {
            sp_buf_put(out, s + i, vs - i);
            sp_buf_puts(out, RD_MARK);
            i = ve;
            c++;
            continue;
        }
        if ((classes & SP_REDACT_EMAILS) && det_email(s, n, i, &elen)) {
            sp_buf_puts(out, "[REDACTED:email]");
            i += elen;
            c++;
            continue;
        }
        /* Copy up to the next position where a detector could fire. */
        size_t j = i + 1;
        while (j < n && is_alnum(s[j]) && is_alnum(s[j - 1]))
            j++;
        sp_buf_put(out, s + i, j - i);
        i = j;
    }
    if (count)
        *count += c;
    return out->overflow ? SP_ERR_LIMIT : SP_OK;
}

/* ---- anonymization ------------------------------------------------------ */

enum { AK_HOST, AK_USER, AK_EMAIL, AK_IP, AK__COUNT };
static const char *const ak_names[AK__COUNT] = {"HOST", "USER", "EMAIL", "IP"};

#define ANON_MAX_VALUES 4096

struct anon_pat {
    const char *s;
    size_t n;
    uint8_t kind;
    uint32_t idx;                  /* 1-based placeholder number */
};

struct sp_analysis_anon {
    unsigned fields;
    struct sp_arena arena;
    struct anon_pat *pats;         /* hosts, users: sorted by length, desc */
    size_t n_pats, cap_pats;
    struct anon_pat *vals;         /* IPs, e-mails: exact values */
    size_t n_vals, cap_vals;
    const char **canon[AK__COUNT]; /* canon[k][idx - 1] */
    size_t n_canon[AK__COUNT], cap_canon[AK__COUNT];
};

static bool grow(struct sp_arena *a, void **v, size_t *cap, size_t need,
                 size_t size)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 32;
    while (nc < need)
        nc *= 2;
    void *nv = sp_arena_alloc(a, nc * size);
    if (!nv)
        return false;
    if (*v)
        memcpy(nv, *v, *cap * size);
    *v = nv;
    *cap = nc;
    return true;
}

/* The placeholder number of a canonical value, adding it if new. */
static uint32_t canon_idx(struct sp_analysis_anon *m, int kind,
                          const char *value)
{
    for (size_t i = 0; i < m->n_canon[kind]; i++)
        if (sp_strcaseeq(m->canon[kind][i], value))
            return (uint32_t)i + 1;
    if (m->n_canon[kind] >= ANON_MAX_VALUES ||
        !grow(&m->arena, (void **)&m->canon[kind], &m->cap_canon[kind],
              m->n_canon[kind] + 1, sizeof(char *)))
        return 0;
    const char *copy = sp_arena_strdup(&m->arena, value);
    if (!copy)
        return 0;
    m->canon[kind][m->n_canon[kind]++] = copy;
    return (uint32_t)m->n_canon[kind];
}

static void add_pat(struct sp_analysis_anon *m, int kind, uint32_t idx,
                    const char *s)
{
    if (!s || !idx)
        return;
    size_t n = strlen(s);
    if (n < 3 || m->n_pats >= ANON_MAX_VALUES * 4)
        return;
    for (size_t i = 0; i < m->n_pats; i++)
        if (m->pats[i].n == n && sp_strncaseeq(m->pats[i].s, s, n))
            return;
    const char *copy = sp_arena_strndup(&m->arena, s, n);
    if (!copy || !grow(&m->arena, (void **)&m->pats, &m->cap_pats,
                       m->n_pats + 1, sizeof(*m->pats)))
        return;
    m->pats[m->n_pats++] = (struct anon_pat){copy, n, (uint8_t)kind, idx};
}

static uint32_t add_val(struct sp_analysis_anon *m, int kind, const char *s,
                        size_t n)
{
    for (size_t i = 0; i < m->n_vals; i++)
        if (m->vals[i].kind == kind && m->vals[i].n == n &&
            sp_strncaseeq(m->vals[i].s, s, n))
            return m->vals[i].idx;
    const char *copy = sp_arena_strndup(&m->arena, s, n);
    if (!copy)
        return 0;
    uint32_t idx = canon_idx(m, kind, copy);
    if (!idx || m->n_vals >= ANON_MAX_VALUES * 4 ||
        !grow(&m->arena, (void **)&m->vals, &m->cap_vals, m->n_vals + 1,
              sizeof(*m->vals)))
        return idx;
    m->vals[m->n_vals++] = (struct anon_pat){copy, n, (uint8_t)kind, idx};
    return idx;
}

static int pat_cmp(const void *a, const void *b)
{
    const struct anon_pat *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? 1 : -1;
    return strcmp(x->s, y->s);
}

static const char *id_of(const struct sp_json *ent, const char *name)
{
    const struct sp_json *v = sp_json_get(sp_json_get(ent, "ids"), name);
    if (!v)
        v = sp_json_get(ent, name);
    if (v && v->type == SP_JSON_ARRAY)
        v = v->u.child;
    return v && v->type == SP_JSON_STRING && v->n ? v->u.s : NULL;
}

struct sp_analysis_anon *an_anon_new(const struct an_inc *ix, unsigned fields)
{
    if (!fields)
        return NULL;
    struct sp_analysis_anon *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->fields = fields;
    sp_arena_init(&m->arena, (size_t)64 << 20);
    for (size_t i = 0; i < ix->n_ents; i++) {
        const struct an_entity *e = &ix->ents[i];
        const char *suffix = e->key && strchr(e->key, ':')
                                 ? strchr(e->key, ':') + 1 : NULL;
        if (e->kind == AN_HOST && (fields & SP_ANON_HOST)) {
            uint32_t idx = canon_idx(m, AK_HOST, e->name);
            add_pat(m, AK_HOST, idx, e->name);
            add_pat(m, AK_HOST, idx, suffix);
            const char *names[] = {"fqdn", "hostname", "host_name", "dns_name",
                                   "name", "netbios"};
            for (size_t k = 0; k < SP_ARRAY_SIZE(names); k++)
                add_pat(m, AK_HOST, idx, id_of(e->j, names[k]));
            const char *dot = strchr(e->name, '.');
            if (dot && dot - e->name >= 3)
                add_pat(m, AK_HOST, idx,
                        sp_arena_strndup(&m->arena, e->name,
                                         (size_t)(dot - e->name)));
        } else if (e->kind == AN_USER && (fields & SP_ANON_USER)) {
            uint32_t idx = canon_idx(m, AK_USER, e->name);
            add_pat(m, AK_USER, idx, e->name);
            add_pat(m, AK_USER, idx, suffix);
            const char *names[] = {"upn", "user_principal_name", "email",
                                   "name", "account_name", "display_name"};
            for (size_t k = 0; k < SP_ARRAY_SIZE(names); k++)
                add_pat(m, AK_USER, idx, id_of(e->j, names[k]));
            const char *dom = id_of(e->j, "nt_domain");
            const char *name = id_of(e->j, "name");
            if (dom && name)
                add_pat(m, AK_USER, idx,
                        sp_arena_printf(&m->arena, "%s\\%s", dom, name));
        } else if (e->kind == AN_EMAIL && (fields & SP_ANON_EMAIL)) {
            add_val(m, AK_EMAIL, e->name, strlen(e->name));
        } else if (e->kind == AN_IP && (fields & SP_ANON_IP)) {
            add_val(m, AK_IP, e->name, strlen(e->name));
        }
    }
    if (m->n_pats)
        qsort(m->pats, m->n_pats, sizeof(*m->pats), pat_cmp);
    return m;
}

void an_anon_free(struct sp_analysis_anon *m)
{
    if (!m)
        return;
    sp_arena_fini(&m->arena);
    free(m);
}

size_t an_anon_count(const struct sp_analysis_anon *m)
{
    size_t n = 0;
    for (int k = 0; m && k < AK__COUNT; k++)
        n += m->n_canon[k];
    return n;
}

static bool id_char(char c)
{
    return is_word(c) || c == '-';
}

static size_t ipv4_at(const char *s, size_t n, size_t i)
{
    if (i > 0 && (id_char(s[i - 1]) || s[i - 1] == '.'))
        return 0;
    size_t j = i;
    for (int part = 0; part < 4; part++) {
        size_t d = j;
        unsigned v = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9' && j - d < 3)
            v = v * 10 + (unsigned)(s[j++] - '0');
        if (j == d || v > 255)
            return 0;
        if (part < 3) {
            if (j >= n || s[j] != '.')
                return 0;
            j++;
        }
    }
    if (j < n && (id_char(s[j]) || (s[j] == '.' && j + 1 < n &&
                                    s[j + 1] >= '0' && s[j + 1] <= '9')))
        return 0;
    return j - i;
}

static void put_ph(struct sp_buf *out, int kind, uint32_t idx)
{
    sp_buf_printf(out, "%s_%u", ak_names[kind], idx);
}

enum sp_err an_anon_apply(struct sp_analysis_anon *m, const char *s, size_t n,
                          struct sp_buf *out)
{
    if (!m) {
        sp_buf_put(out, s, n);
        return out->overflow ? SP_ERR_LIMIT : SP_OK;
    }
    size_t i = 0;
    while (i < n) {
        if (i == 0 || !id_char(s[i - 1])) {
            bool done = false;
            for (size_t k = 0; k < m->n_pats && !done; k++) {
                const struct anon_pat *p = &m->pats[k];
                if (p->n > n - i || sp_tolower(p->s[0]) != sp_tolower(s[i]) ||
                    !sp_strncaseeq(s + i, p->s, p->n) ||
                    (i + p->n < n && id_char(s[i + p->n])))
                    continue;
                put_ph(out, p->kind, p->idx);
                i += p->n;
                done = true;
            }
            if (done)
                continue;
            size_t l;
            if ((m->fields & SP_ANON_IP) && s[i] >= '0' && s[i] <= '9' &&
                (l = ipv4_at(s, n, i)) > 0) {
                uint32_t idx = add_val(m, AK_IP, s + i, l);
                if (idx) {
                    put_ph(out, AK_IP, idx);
                    i += l;
                    continue;
                }
            }
            if ((m->fields & SP_ANON_EMAIL) && det_email(s, n, i, &l)) {
                uint32_t idx = add_val(m, AK_EMAIL, s + i, l);
                if (idx) {
                    put_ph(out, AK_EMAIL, idx);
                    i += l;
                    continue;
                }
            }
        }
        size_t j = i + 1;
        while (j < n && id_char(s[j]) && id_char(s[j - 1]))
            j++;
        sp_buf_put(out, s + i, j - i);
        i = j;
    }
    return out->overflow ? SP_ERR_LIMIT : SP_OK;
}

/* A placeholder at s[i..): its kind and number, and its length. */
static size_t ph_at(const char *s, size_t n, size_t i, int *kind,
                    uint32_t *idx)
{
    if (i > 0 && is_word(s[i - 1]))
        return 0;
    for (int k = 0; k < AK__COUNT; k++) {
        size_t l = strlen(ak_names[k]);
        if (n - i <= l + 1 || memcmp(s + i, ak_names[k], l) != 0 ||
            s[i + l] != '_')
            continue;
        size_t j = i + l + 1;
        uint64_t v = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9' && j - i < l + 8)
            v = v * 10 + (uint64_t)(s[j++] - '0');
        if (j == i + l + 1 || (j < n && is_word(s[j])))
            return 0;
        *kind = k;
        *idx = (uint32_t)v;
        return j - i;
    }
    return 0;
}

enum sp_err sp_analysis_anon_restore(const struct sp_analysis_anon *m,
                                     const char *s, size_t n,
                                     struct sp_buf *out)
{
    size_t i = 0;
    while (i < n) {
        int kind;
        uint32_t idx;
        size_t l = m && (s[i] == 'H' || s[i] == 'U' || s[i] == 'E' ||
                         s[i] == 'I')
                       ? ph_at(s, n, i, &kind, &idx) : 0;
        if (l && idx >= 1 && idx <= m->n_canon[kind]) {
            sp_buf_puts(out, m->canon[kind][idx - 1]);
            i += l;
            continue;
        }
        size_t j = i + 1;
        while (j < n && is_word(s[j]) && is_word(s[j - 1]))
            j++;
        sp_buf_put(out, s + i, j - i);
        i = j;
    }
    return out->overflow ? SP_ERR_LIMIT : SP_OK;
}

bool an_anon_unknown(const struct sp_analysis_anon *m, const char *s, size_t n)
{
    int kind;
    uint32_t idx;
    size_t l = ph_at(s, n, 0, &kind, &idx);
    if (!l || l != n)
        return false;
    return !m || idx < 1 || idx > m->n_canon[kind];
}
