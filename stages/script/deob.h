/*
 * deob.h - the layered deobfuscation engine of the script analyser.
 *
 * Given a command line or script (PowerShell, cmd.exe, Unix shells, or a
 * mix) it peels obfuscation off one step at a time and records every text
 * as a layer: layers[0] is the input, each next layer one decoding step (a
 * step may apply many same-kind rewrites, e.g. every caret escape), the
 * last the final plain text.  It runs to a fixpoint or until a bound.
 * Nothing is executed or evaluated for real: PowerShell and cmd.exe are
 * folded by pure string transformation over a model of their semantics.
 *
 * Thread-safety: no global mutable state; sp_deob_run() may run in any
 * number of threads at once, each with its own result.
 */
#ifndef SP_DEOB_H
#define SP_DEOB_H

#include <stddef.h>
#include <stdint.h>

#include "sp.h"

/* A zero max_output, max_ratio or max_time_us means the default; a zero
 * max_layers means no decoding at all (the input layer only). */
struct sp_deob_limits {
    unsigned max_layers;     /* decoding steps after the input, default 16 */
    size_t   max_output;     /* bytes of all decoded layer texts together
                                (the input layer is not counted), default
                                1 MiB */
    unsigned max_ratio;      /* decompressed/compressed size, default 100
                                (zip-bomb guard) */
    int64_t  max_time_us;    /* wall budget per analysis, default 200000 */
};

/* Fills lim with the defaults above. */
void sp_deob_limits_default(struct sp_deob_limits *lim);

#define SP_DEOB_BOUND_LAYERS 0x1
#define SP_DEOB_BOUND_OUTPUT 0x2
#define SP_DEOB_BOUND_RATIO  0x4
#define SP_DEOB_BOUND_TIME   0x8

struct sp_deob_layer {
    const char *technique;   /* static id: "input", "powershell.encoded_command",
                                "cmd.caret", "url_decode", ... */
    const char *description; /* static, human readable */
    char  *text;             /* malloc'd, NUL-terminated, valid UTF-8 (invalid
                                bytes and NULs replaced by U+FFFD) */
    size_t len;
};

struct sp_deob_result {
    struct sp_deob_layer *layers;  /* layers[0] is the input as given
                                      (technique "input"); each next one is
                                      one decoding step; the last is the
                                      final plain text */
    size_t n_layers;
    unsigned bounds_hit;           /* SP_DEOB_BOUND_* reached (reported, not
                                      an error) */
    const char *language;          /* static: "powershell", "cmd", "sh",
                                      "unknown": the language of the final
                                      layer's outer command */
};

/*
 * Deobfuscates input[0..len).  lim may be NULL (defaults).  Returns SP_OK
 * (also when a bound was hit) or SP_ERR_NOMEM (out is then empty).  out is
 * initialised by the call and owns everything it points to; free it with
 * sp_deob_result_fini().
 */
enum sp_err sp_deob_run(const char *input, size_t len,
                        const struct sp_deob_limits *lim,
                        struct sp_deob_result *out);

/* Frees what r owns and empties it; NULL is a no-op. */
void sp_deob_result_fini(struct sp_deob_result *r);

/* The description of a technique id (static), or NULL if unknown. */
const char *sp_deob_technique_description(const char *technique);

#endif /* SP_DEOB_H */
