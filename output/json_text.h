/* SPDX-License-Identifier: MIT */
/*
 * output: the one way the JSON writers (dump's report, heap_json.c and
 * heap_leaks.c; walk mode's timeline, timeline_json.c; speedscope.c) put
 * bytes that came from the target into a JSON string.
 */
#ifndef MEMSPY_OUTPUT_JSON_TEXT_H
#define MEMSPY_OUTPUT_JSON_TEXT_H

struct json_t;

/*
 * s (the target's bytes: names, paths, notes quoting them) as a JSON
 * string, bytes that are not UTF-8 made '?' (json_string() refuses such a
 * string, and a NULL value left the key out or the whole json_pack()
 * object); NULL: JSON null.
 */
struct json_t *ms_out_json_text(const char *s);

#endif
