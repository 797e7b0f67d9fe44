/*
 * analyze_side.c - what the analyze stage keeps per incident besides the
 * job: each alert's compact script analyses and the alert details that
 * incident snapshots leave out (description, tactics, techniques...),
 * stored in the incident's side hashes (an_side_key) and merged into the
 * incident the analysis reads (analyze_jobs.c).
 *
 * Pure functions; any thread.
 */
#include "analyze_int.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Compacts an alert's "scripts" section (entity, command line analyses
 * with every layer) into what an incident keeps per script: the alert,
 * entity, risk, language, layer count, the decoded text (bounded), the
 * behaviours (technique, name, tactic) and the first indicators.  Returns a new JSON array or NULL. */
char *an_compact_scripts(const char *alert_id, const char *json, size_t len,
                             size_t *out_len)
{
    struct sp_arena a;
    sp_arena_init(&a, (size_t)64 << 20);
    struct sp_json *arr = sp_json_parse(&a, json, len, NULL, NULL);
    char *out = NULL;
    if (arr && arr->type == SP_JSON_ARRAY) {
        struct sp_buf b;
        sp_buf_init(&b, (size_t)256 << 10);
        struct sp_jw w;
        sp_jw_init(&w, &b);
        sp_jw_arr_open(&w);
        sp_json_foreach(arr, sc)
        {
            sp_jw_obj_open(&w);
            sp_jw_kstr(&w, "alert", alert_id);
            sp_jw_kstr_opt(&w, "entity", sp_json_str(sc, "entity"));
            int64_t risk = 0;
            sp_json_int(sp_json_get(sc, "risk"), &risk);
            sp_jw_kint(&w, "risk", risk);
            sp_jw_kstr_opt(&w, "language", sp_json_str(sc, "language"));
            struct sp_json *layers = sp_json_get(sc, "layers");
            sp_jw_kint(&w, "layer_count", layers ? layers->n : 0);
            const char *dec = sp_json_str(sc, "decoded");
            if (dec) {
                sp_jw_key(&w, "decoded");
                sp_jw_strn(&w, dec, SP_MIN(strlen(dec), (size_t)2000));
            }
            sp_jw_key(&w, "behaviours");
            sp_jw_arr_open(&w);
            int nb = 0;
            sp_json_foreach(sp_json_get(sc, "behaviours"), bh)
            {
                if (nb++ >= 12)
                    break;
                sp_jw_obj_open(&w);
                sp_jw_kstr_opt(&w, "technique", sp_json_str(bh, "technique"));
                sp_jw_kstr_opt(&w, "name", sp_json_str(bh, "name"));
                sp_jw_kstr_opt(&w, "tactic", sp_json_str(bh, "tactic"));
                sp_jw_kstr_opt(&w, "what", sp_json_str(bh, "what"));
                sp_jw_obj_close(&w);
            }
            sp_jw_arr_close(&w);
            sp_jw_key(&w, "indicators");
            sp_jw_arr_open(&w);
            int n = 0;
            sp_json_foreach(sp_json_get(sc, "indicators"), ind)
            {
                if (n++ >= 20)
                    break;
                sp_jw_obj_open(&w);
                sp_jw_kstr_opt(&w, "type", sp_json_str(ind, "type"));
                sp_jw_kstr_opt(&w, "value", sp_json_str(ind, "value"));
                sp_jw_obj_close(&w);
            }
            sp_jw_arr_close(&w);
            sp_jw_obj_close(&w);
        }
        sp_jw_arr_close(&w);
        if (sp_jw_ok(&w))
            out = sp_buf_steal(&b, out_len);
        sp_buf_fini(&b);
    }
    sp_arena_fini(&a);
    return out;
}

/* The alert fields an incident snapshot leaves out (description,
 * tactics, techniques, category, detector, provider), kept with the
 * incident so that the analysis sees them.  Returns a new JSON object. */
char *an_alert_details(const struct sp_alert *alert, size_t *out_len)
{
    struct sp_buf b;
    sp_buf_init(&b, 64 << 10);
    struct sp_jw w;
    sp_jw_init(&w, &b);
    sp_jw_obj_open(&w);
    if (alert->description) {
        sp_jw_key(&w, "description");
        sp_jw_strn(&w, alert->description,
                   SP_MIN(strlen(alert->description), (size_t)1500));
    }
    sp_jw_kstr_opt(&w, "category", alert->category);
    sp_jw_kstr_opt(&w, "detector", alert->detector);
    sp_jw_kstr_opt(&w, "provider", alert->provider);
    sp_jw_kstr_opt(&w, "status", alert->status);
    sp_jw_key(&w, "tactics");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < alert->n_tactics && i < 32; i++)
        sp_jw_str(&w, alert->tactics[i]);
    sp_jw_arr_close(&w);
    sp_jw_key(&w, "techniques");
    sp_jw_arr_open(&w);
    for (size_t i = 0; i < alert->n_techniques && i < 64; i++)
        sp_jw_str(&w, alert->techniques[i]);
    sp_jw_arr_close(&w);
    sp_jw_obj_close(&w);
    char *out = sp_jw_ok(&w) ? sp_buf_steal(&b, out_len) : NULL;
    sp_buf_fini(&b);
    return out;
}

