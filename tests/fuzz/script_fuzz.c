/*
 * script_fuzz.c - libFuzzer harness for the script analyser: decoding
 * engine, indicator extraction, behaviour rules, scoring, JSON and text
 * output, and the hot-path prefilter, on arbitrary bytes.
 *
 * Limits are kept small (8 layers, 64 KiB of decoded output, 50 ms) so
 * that every input runs fast; the input is handed over without a NUL
 * terminator, as the pipeline does.  Promises checked (abort() = crash):
 * the analysis' counts and layers are consistent, the risk is 0-100,
 * every indicator is tagged with an existing layer, and the JSON output
 * is produced without error.
 *
 * Owns one output buffer kept across inputs (reset, never freed).  Single
 * threaded, as libFuzzer and the corpus replay call it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script.h"

static struct sp_buf out;
static FILE *devnull;
static bool ready;

static void must(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        sp_buf_init(&out, (size_t)32 << 20);
        devnull = fopen("/dev/null", "w");
        ready = true;
    }
    /* a private copy, so reads past `size` are caught by the sanitizer */
    char *in = malloc(size ? size : 1);
    must(in != NULL);
    if (size)
        memcpy(in, data, size);

    struct sp_script_opts o;
    sp_script_opts_default(&o);
    o.deob.max_layers = 8;
    o.deob.max_output = (size_t)64 << 10;
    o.deob.max_time_us = 50000;
    o.max_indicators = 64;
    o.max_behaviours = 32;

    (void)sp_script_worth_analyzing(in, size);

    struct sp_script_analysis a;
    enum sp_err err = sp_script_analyze(in, size, &o, &a);
    if (err == SP_OK) {
        must(a.risk <= 100);
        must(a.deob.n_layers >= 1);
        must(a.n_indicators <= o.max_indicators);
        must(a.n_behaviours <= o.max_behaviours);
        for (size_t i = 0; i < a.n_indicators; i++) {
            must(a.indicators[i].layer < a.deob.n_layers);
            must(strlen(a.indicators[i].value) == a.indicators[i].len);
        }
        for (size_t i = 0; i < a.n_behaviours; i++) {
            must(a.behaviours[i].tech != NULL && a.behaviours[i].what != NULL);
            must(a.behaviours[i].layer < a.deob.n_layers);
        }
        sp_buf_reset(&out);
        struct sp_jw w;
        sp_jw_init(&w, &out);
        sp_script_write_json(&a, &w);
        must(sp_jw_ok(&w));
        if (devnull)
            sp_script_print_text(&a, devnull);
        sp_script_analysis_fini(&a);
    } else {
        must(err == SP_ERR_NOMEM);
    }
    free(in);
    return 0;
}
