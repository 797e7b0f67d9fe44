/*
 * script.h - the script analyser: one call turns a command line (or a
 * script) into its decoding layers, indicators, ATT&CK behaviours and a
 * risk score with reasons.  This is the API the pipeline stage, the CLI
 * (`socpilot analyze-script`) and the tests use.
 *
 *   sp_deob_run      layers: input, each decoding step, final plain text
 *   sp_ioc_extract   indicators of every layer, tagged with the layer
 *   sp_attack_scan   behaviours of every layer, tagged with the layer
 *   + T1027 when any decoding layer exists, T1571 for a reverse shell on
 *     an unusual port, and the score.
 *
 * Nothing is executed or evaluated: it is string transformation and
 * matching, bounded by the limits in struct sp_script_opts.  Hitting a
 * bound is reported in bounds_hit, not as an error.
 *
 * The hot path calls sp_script_worth_analyzing() first: a few linear
 * passes, no allocation, no decoding, so plain benign command lines cost
 * about a microsecond or two.
 *
 * Thread-compatible: an analysis belongs to one thread; there is no
 * global mutable state (rule indexes are built once, thread-safely).
 */
#ifndef SP_SCRIPT_H
#define SP_SCRIPT_H

#include "attack.h"
#include "deob.h"
#include "ioc.h"
#include "json.h"
#include "sp.h"

#include <stdbool.h>
#include <stdio.h>

struct sp_script_opts {
    struct sp_deob_limits deob;  /* layers, output size, ratio, time */
    size_t max_indicators;       /* 0 = SP_IOC_DEFAULT_MAX */
    size_t max_behaviours;       /* 0 = SP_ATTACK_DEFAULT_MAX */
};

void sp_script_opts_default(struct sp_script_opts *opts);

/* bounds_hit bits beyond the SP_DEOB_BOUND_* ones */
#define SP_SCRIPT_BOUND_INDICATORS 0x100
#define SP_SCRIPT_BOUND_BEHAVIOURS 0x200

struct sp_script_reason {
    int points;
    const char *text;             /* in the analysis arena */
};

struct sp_script_analysis {
    struct sp_deob_result deob;   /* layers[0] = input, last = final */
    const char *language;         /* static: "powershell", "cmd", ... */
    struct sp_ioc *indicators;    /* first seen layer in .layer */
    size_t n_indicators;
    struct sp_attack_hit *behaviours;   /* most severe first */
    size_t n_behaviours;
    unsigned risk;                /* 0-100 */
    struct sp_script_reason *reasons;
    size_t n_reasons;
    unsigned bounds_hit;          /* SP_DEOB_BOUND_* | SP_SCRIPT_BOUND_* */
    struct sp_arena arena;        /* owns indicators, behaviours, reasons */
};

/*
 * Analyses cmd[0..len) (need not be NUL-terminated).  opts NULL =
 * defaults.  On SP_OK `out` holds a new analysis the caller releases with
 * sp_script_analysis_fini().  On error `out` is left finalized (fini is
 * still safe).  Errors: SP_ERR_INVALID (NULL arguments), SP_ERR_NOMEM.
 */
enum sp_err sp_script_analyze(const char *cmd, size_t len,
                              const struct sp_script_opts *opts,
                              struct sp_script_analysis *out);

/* Frees everything the analysis owns; a zeroed or finalized analysis is
 * fine. */
void sp_script_analysis_fini(struct sp_script_analysis *a);

/* The final (fully decoded) text and its length; "" for an empty
 * analysis.  Borrowed. */
const char *sp_script_final_text(const struct sp_script_analysis *a,
                                 size_t *len);

/*
 * Cheap prefilter for the hot path: true when the command line has
 * anything the analyser could report: a behaviour rule fires on it as
 * written (sp_attack_prefilter), or it carries a URL, UNC path or IPv4
 * address, an encoded blob, a list of character codes, caret, backtick,
 * %VAR:~x,y%, concatenation, format-string, -join or FOR /F obfuscation,
 * or it is longer than 2 KiB.  cmd need not be NUL-terminated.
 */
bool sp_script_worth_analyzing(const char *cmd, size_t len);

/*
 * Writes the analysis as one JSON object:
 *   {"language", "risk", "reasons":[{"points","reason"}], "bounds_hit":[..],
 *    "layers":[{"index","technique","description","text"}], "decoded",
 *    "indicators":[{"type","value","layer"}],
 *    "behaviours":[{"technique","name","tactic","what","evidence","layer"}]}
 * sp_script_write_json_fields writes the same members without the
 * enclosing braces, for callers that add their own (the CLI's "id").
 */
void sp_script_write_json(const struct sp_script_analysis *a,
                          struct sp_jw *w);
void sp_script_write_json_fields(const struct sp_script_analysis *a,
                                 struct sp_jw *w);

/*
 * The same members cut to fit in room more bytes of the writer's buffer
 * (and its maximum), for an analysis too large to write whole: "truncated":
 * true, then language, risk, reasons and bounds, then as many behaviours
 * and indicators as fit, then "decoded" and the layers with their texts
 * cut to an equal share of what is left (or empty, or layers left out).
 * The output is valid JSON whenever the buffer can hold the verdict
 * (language, risk, reasons, bounds: a few KiB).
 */
void sp_script_write_json_fields_max(const struct sp_script_analysis *a,
                                     struct sp_jw *w, size_t room);

/* Human-readable report: risk and reasons, every layer, the decoded
 * text, indicators, behaviours.  Control bytes are shown escaped. */
void sp_script_print_text(const struct sp_script_analysis *a, FILE *out);

/* Names of the bits set in bounds_hit ("layers", "output", "ratio",
 * "time", "indicators", "behaviours"), for printing: returns the name of
 * bit number `bit` or NULL. */
const char *sp_script_bound_name(unsigned bit);

#endif /* SP_SCRIPT_H */
