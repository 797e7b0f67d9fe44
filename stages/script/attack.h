/*
 * attack.h - behaviour rules over decoded script text, mapped to MITRE
 * ATT&CK techniques, and the compact technique table (id, name, tactic,
 * severity weight) the risk score is built from.
 *
 * Rules come in three kinds (attack_rules.c):
 *   - program rules: a program found in a command segment (by basename:
 *     certutil, rundll32, C:\...\regsvr32.exe, bash...) plus conditions on
 *     its arguments (flags, substrings, a URL, a UNC path...).  This is how
 *     the LOLBAS catalogue's binaries map to techniques: by binary and
 *     flags, never by whole sample.
 *   - keyword rules: a keyword anywhere in the text (DownloadString,
 *     sekurlsa::, /dev/tcp/, currentversion\run...) plus conditions on the
 *     whole text.
 *   - detectors written in C: alternate data streams, hidden windows,
 *     Unicode look-alike obfuscation, URL arguments.
 *
 * Owns: a list of hits (technique, what, evidence, layer) whose strings
 * live in a caller-provided arena.  The tables are static and read-only;
 * their lookup index is built once, thread-safely, on first use.  Any
 * thread may call these functions on its own list.
 */
#ifndef SP_ATTACK_H
#define SP_ATTACK_H

#include "sp.h"

#include <stdbool.h>
#include <stddef.h>

struct sp_attack_technique {
    const char *id;        /* "T1218.011" */
    const char *name;      /* "System Binary Proxy Execution: Rundll32" */
    const char *tactic;    /* primary tactic, "defense-evasion" */
    unsigned weight;       /* risk points when seen (0-40) */
};

/* Borrowed pointer into the static table, or NULL for an unknown id. */
const struct sp_attack_technique *sp_attack_lookup(const char *id);
size_t sp_attack_technique_count(void);
const struct sp_attack_technique *sp_attack_technique_at(size_t i);

struct sp_attack_hit {
    const struct sp_attack_technique *tech;   /* static */
    const char *what;       /* static: what the rule recognised */
    const char *evidence;   /* snippet of the text, in the arena */
    unsigned layer;         /* first layer it was seen in */
};

/*
 * struct sp_attack_list - hits deduplicated by technique id: a technique
 * seen again (another rule, a later layer) keeps its first hit.  At most
 * `max`; past it hits are dropped and `truncated` is set.
 */
struct sp_attack_list {
    struct sp_attack_hit *v;
    size_t n;
    size_t cap;
    size_t max;
    bool truncated;
    struct sp_arena *arena;  /* borrowed */
};

#define SP_ATTACK_DEFAULT_MAX 64
#define SP_ATTACK_EVIDENCE_MAX 160

void sp_attack_list_init(struct sp_attack_list *l, struct sp_arena *a,
                         size_t max);

/*
 * Runs every rule over text[0..len) (one decoding layer) and adds the
 * hits, tagged with `layer`.  Returns SP_OK or SP_ERR_NOMEM.
 */
enum sp_err sp_attack_scan(struct sp_attack_list *l, const char *text,
                           size_t len, unsigned layer);

/*
 * Adds one hit for technique `id` (must be in the table: SP_ERR_INVALID
 * otherwise).  what is borrowed and must be static; the evidence is
 * copied (cut to SP_ATTACK_EVIDENCE_MAX bytes, white space folded).
 */
enum sp_err sp_attack_add(struct sp_attack_list *l, const char *id,
                          const char *what, const char *evidence,
                          size_t evidence_len, unsigned layer);

bool sp_attack_list_has(const struct sp_attack_list *l, const char *id);

/*
 * Is name[0..len) (a basename, any case, with or without ".exe") a
 * program some rule knows?  Programs marked quiet (browsers, Electron
 * apps, conhost, explorer: they start all day with arguments no rule
 * cares about) do not count.
 */
bool sp_attack_known_program(const char *name, size_t len);

/*
 * The hot-path prefilter's rule check: would sp_attack_scan() report
 * anything for text[0..len) as it stands (no decoding)?  Records
 * nothing, allocates nothing, stops at the first rule that fires; texts
 * over 4 KiB answer true without looking.
 */
bool sp_attack_prefilter(const char *text, size_t len);

/*
 * Best guess of the script language of text[0..len): "powershell",
 * "cmd", "sh", "python", "vbscript", "javascript" or "unknown".  Static
 * string.
 */
const char *sp_attack_guess_language(const char *text, size_t len);

#endif /* SP_ATTACK_H */
