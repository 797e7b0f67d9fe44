/*
 * ioc.h - indicator extraction from decoded script text: URLs, domains,
 * IPv4/IPv6 addresses, e-mail addresses, Windows/UNC/Unix file paths,
 * registry keys, md5/sha1/sha256 hashes, user agents, named pipes and
 * ports.
 *
 * The extractor is a hand-written single pass per indicator family (no
 * regex engine): it runs on every decoded layer of every analysed command
 * line, so it must stay linear and allocation-light.  Defanged forms
 * (hxxp, [.], (dot), [:]//, [@]) are normalized before matching.  False
 * positives are the main enemy: version strings (10.0.19041.1), .NET type
 * names (System.Net.WebClient), cmdlets (Invoke-WebRequest) and file names
 * (powershell.exe) must never come out as domains or addresses.
 *
 * Owns: a list of indicators whose strings live in a caller-provided arena.
 * Thread-compatible: a list is used by one thread at a time; the module has
 * no global mutable state.
 */
#ifndef SP_IOC_H
#define SP_IOC_H

#include "sp.h"

#include <stdbool.h>
#include <stddef.h>

enum sp_ioc_type {
    SP_IOC_URL,
    SP_IOC_DOMAIN,
    SP_IOC_IPV4,
    SP_IOC_IPV6,
    SP_IOC_EMAIL,
    SP_IOC_FILE_PATH,    /* Windows path: C:\x, %TEMP%\x, $env:TEMP\x */
    SP_IOC_UNC_PATH,     /* \\host\share\... */
    SP_IOC_UNIX_PATH,    /* /tmp/x, /etc/x, ~/x */
    SP_IOC_REGISTRY,     /* HKLM\..., HKEY_CURRENT_USER\..., HKCU:\... */
    SP_IOC_MD5,
    SP_IOC_SHA1,
    SP_IOC_SHA256,
    SP_IOC_USER_AGENT,
    SP_IOC_NAMED_PIPE,   /* \\.\pipe\x, \\host\pipe\x */
    SP_IOC_PORT,
    SP_IOC__COUNT
};

/* Stable lower-case name ("url", "domain", "ipv4", ..., "port"); never
 * NULL ("unknown" out of range). */
const char *sp_ioc_type_name(enum sp_ioc_type type);

struct sp_ioc {
    enum sp_ioc_type type;
    unsigned layer;         /* first decoding layer it was seen in */
    const char *value;      /* NUL-terminated, in the list's arena */
    size_t len;
};

/*
 * struct sp_ioc_list - deduplicated indicators, at most `max`.  Values are
 * normalized (defanged forms refanged; domains lower-case) and compared
 * case-insensitively, so an indicator seen again in a later layer keeps
 * its first layer.  When the list is full further indicators are dropped
 * and `truncated` is set.
 */
struct sp_ioc_list {
    struct sp_ioc *v;       /* in the arena; grows by doubling */
    size_t n;
    size_t cap;
    size_t max;
    bool truncated;
    struct sp_arena *arena; /* borrowed */
};

#define SP_IOC_DEFAULT_MAX 256

/* a is borrowed and must outlive the list; max 0 = SP_IOC_DEFAULT_MAX. */
void sp_ioc_list_init(struct sp_ioc_list *l, struct sp_arena *a, size_t max);

/*
 * Extracts every indicator in text[0..len) and appends the new ones,
 * tagged with `layer`.  Returns SP_OK (also when the list filled up: see
 * `truncated`) or SP_ERR_NOMEM when the arena refused memory.
 */
enum sp_err sp_ioc_extract(struct sp_ioc_list *l, const char *text,
                           size_t len, unsigned layer);

/*
 * Drops URLs that are a strict prefix of a URL found in a later layer
 * (a fragment of a string that a later layer reassembled, such as
 * 'http://evil' + '.com/x'), together with the domain only that fragment
 * carried.  Call once after every layer was extracted.
 */
void sp_ioc_list_prune(struct sp_ioc_list *l);

/* True if the list holds an indicator of `type` equal (case-insensitive)
 * to value. */
bool sp_ioc_list_has(const struct sp_ioc_list *l, enum sp_ioc_type type,
                     const char *value);

/* Number of network indicators (URLs, domains, IP addresses). */
size_t sp_ioc_list_network_count(const struct sp_ioc_list *l);

/*
 * Helpers shared with the behaviour rules and the tests.
 * sp_ioc_ipv4_parse: text[0..len) is exactly a dotted-quad IPv4 address.
 * sp_ioc_is_bare_domain: text[0..len) would be reported as a domain when
 * found outside a URL (known TLD, not a file name or a .NET/PowerShell
 * type name).
 */
bool sp_ioc_ipv4_parse(const char *text, size_t len, uint8_t out[4]);
bool sp_ioc_is_bare_domain(const char *text, size_t len);

#endif /* SP_IOC_H */
