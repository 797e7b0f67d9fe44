/*
 * ioc_int.h - private to the indicator extractor: the state of one
 * extraction and the helpers shared by ioc.c (list, word-level passes,
 * entry point) and ioc_paths.c (URLs, paths, registry keys).
 *
 * Not thread-related: one struct scan per extraction, on the stack.
 */
#ifndef SP_IOC_INT_H
#define SP_IOC_INT_H

#include "ioc.h"

#include <string.h>

#define IOC_MAX_CLAIMS 96
#define IOC_MAX_IP_ENDS 32
#define IOC_MAX_VALUE 2048

/* ---- character classes ---- */

static inline bool is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static inline bool is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
static inline bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}
static inline bool is_quote(unsigned char c)
{
    return c == '"' || c == '\'' || c == '`';
}
/* Characters of the "word" runs pass 4 classifies. */
static inline bool is_word(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '_' || c == '@';
}

/* t[i..] starts with lit (ASCII case-insensitive), within t[0..n). */
static inline bool has_ci(const char *t, size_t n, size_t i, const char *lit)
{
    size_t l = strlen(lit);
    return i <= n && n - i >= l && sp_strncaseeq(t + i, lit, l);
}

enum claim_kind { CLAIM_URL = 1, CLAIM_PATH = 2 };

struct scan {
    const char *t;
    size_t n;
    struct sp_ioc_list *l;
    unsigned layer;
    enum sp_err err;
    struct { size_t s, e; unsigned kind; } claims[IOC_MAX_CLAIMS];
    unsigned n_claims;
    size_t ip_ends[IOC_MAX_IP_ENDS];
    unsigned n_ip_ends;
};

/* Marks [s, e) as reported by a structured pass of one of `kinds`. */
void ioc_claim(struct scan *sc, size_t s, size_t e, unsigned kind);
/* Is any byte of [s, e) inside a claim of one of `kinds`? */
bool ioc_claimed(const struct scan *sc, size_t s, size_t e, unsigned kinds);
/* Adds (type, p[0..len)) unless already present; `lower` stores it
 * lower-cased.  Sets sc->err when the arena refuses memory. */
void ioc_add(struct scan *sc, enum sp_ioc_type type, const char *p, size_t len,
             bool lower);
/* Remembers where an address ended (the port pass looks right after). */
void ioc_note_ip_end(struct scan *sc, size_t e);
/* A host name as found in a URL or UNC path: any dotted name with a
 * letter. */
bool ioc_url_host_is_domain(const char *p, size_t len);
/* Reports a URL/UNC host as an address or a domain. */
void ioc_add_host(struct scan *sc, const char *h, size_t hl);

void ioc_scan_urls(struct scan *sc);
void ioc_scan_windows(struct scan *sc);
void ioc_scan_unix(struct scan *sc);

#endif /* SP_IOC_INT_H */
