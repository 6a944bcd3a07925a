// SPDX-License-Identifier: MIT
/*
 * output/speedscope: speedscope.app JSON (file-format-schema.json): shared
 * frames and two "sampled" profiles over the same stacks, one weighted by
 * bytes and one by allocation count.
 */
#include "output/output_int.h"
#include "output/json_text.h"

#include <inttypes.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int cmp_sym(const void *a, const void *b, void *ctx)
{
	const struct ms_view *v = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return strcmp(v->syms[x].name, v->syms[y].name);
}

static json_t *json_u64(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

struct walk {
	uint32_t node;
	uint32_t next;
};

/* One sampled profile: a sample per stack whose own value is non-zero. */
static json_t *sampled_profile(const struct ms_view *v, const uint32_t *frame_of_sym, bool counts,
			       const char *name)
{
	json_t *prof = json_object(), *samples = json_array(), *weights = json_array();
	struct walk *stack = NULL;
	size_t depth, cap = 0;
	const struct ms_tnode *root = &v->tree.nodes[0];

	json_object_set_new(prof, "type", json_string("sampled"));
	json_object_set_new(prof, "name", ms_out_json_text(name));
	json_object_set_new(prof, "unit", json_string(counts ? "none" : "bytes"));
	json_object_set_new(prof, "startValue", json_integer(0));
	json_object_set_new(prof, "endValue",
			    json_u64(counts ? root->total_count : root->total_bytes));
	ms_xgrow((void **)&stack, &cap, 1, sizeof(*stack));
	stack[0] = (struct walk){MS_TREE_ROOT, v->child_start[0]};
	depth = 1;
	while (depth) {
		struct walk *w = &stack[depth - 1];
		const struct ms_tnode *nd;
		uint64_t val;
		uint32_t c;

		if (w->next >= v->child_start[w->node + 1]) {
			depth--;
			continue;
		}
		c = v->child_idx[w->next++];
		nd = &v->tree.nodes[c];
		ms_xgrow((void **)&stack, &cap, depth + 1, sizeof(*stack));
		stack[depth++] = (struct walk){c, v->child_start[c]};
		val = counts ? nd->self_count : nd->self_bytes;
		if (val) {
			json_t *sample = json_array();

			for (size_t i = 1; i < depth; i++)
				json_array_append_new(
				    sample,
				    json_integer(frame_of_sym[v->tree.nodes[stack[i].node].sym]));
			json_array_append_new(samples, sample);
			json_array_append_new(weights, json_u64(val));
		}
	}
	free(stack);
	json_object_set_new(prof, "samples", samples);
	json_object_set_new(prof, "weights", weights);
	return prof;
}

int ms_speedscope_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
			struct ms_error *err)
{
	const char *title = o->title ? o->title : "memspy";
	json_t *root = json_object(), *shared = json_object(), *frames = json_array(),
	       *profiles = json_array();
	uint32_t *order, *frame_of_sym;
	struct ms_view v;
	char *name, *rests_on = NULL;
	int ret = 0;

	ms_view_build(&v, p, o);
	/* frames sorted by name: the file does not depend on the order stacks came in */
	order = ms_xcalloc(v.n_syms + 1, sizeof(*order));
	frame_of_sym = ms_xcalloc(v.n_syms + 1, sizeof(*frame_of_sym));
	for (size_t i = 0; i < v.n_syms; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, v.n_syms, sizeof(*order), cmp_sym, &v);
	for (size_t i = 0; i < v.n_syms; i++) {
		const struct ms_vsym *vs = &v.syms[order[i]];
		const struct ms_pframe *pf = &p->frames[vs->frame];
		json_t *f = json_object();

		frame_of_sym[order[i]] = (uint32_t)i;
		json_object_set_new(f, "name", ms_out_json_text(vs->name));
		if (pf->file) {
			json_object_set_new(f, "file",
					    ms_out_json_text(pf->file));
			if (pf->line > 0)
				json_object_set_new(f, "line", json_integer(pf->line));
		}
		json_array_append_new(frames, f);
	}
	json_object_set_new(root, "$schema",
			    json_string("https://www.speedscope.app/file-format-schema.json"));
	json_object_set_new(shared, "frames", frames);
	json_object_set_new(root, "shared", shared);
	/* An estimate says what it rests on, where speedscope shows it: the profile's name. */
	if (o->samples) {
		uint64_t n = v.tree.nodes[MS_TREE_ROOT].total_samples;

		rests_on = ms_xasprintf(" (estimated from %" PRIu64 " sample%s%s)", n,
					n == 1 ? "" : "s",
					n < MS_OUT_FEW_SAMPLES ? ": few, a rough figure" : "");
	}
	name = ms_xasprintf("%s: %s%s", o->live ? "live bytes" : "allocated bytes", title,
			    rests_on ? rests_on : "");
	json_array_append_new(profiles, sampled_profile(&v, frame_of_sym, false, name));
	free(name);
	name = ms_xasprintf("%s%ss: %s%s", o->live ? "live " : "",
			    o->count_name ? o->count_name : "allocation", title,
			    rests_on ? rests_on : "");
	json_array_append_new(profiles, sampled_profile(&v, frame_of_sym, true, name));
	free(name);
	free(rests_on);
	json_object_set_new(root, "profiles", profiles);
	json_object_set_new(root, "name", ms_out_json_text(title));
	json_object_set_new(root, "activeProfileIndex",
			    json_integer(o->value == MS_VALUE_COUNT ? 1 : 0));
	json_object_set_new(root, "exporter", json_string("memspy"));

	if (json_dumpf(root, out, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
		ret = ms_error_set(err, -EIO, "output: writing the speedscope JSON failed");
	else
		fputc('\n', out);
	if (!ret)
		ret = ms_out_check(out, "speedscope JSON", err);
	json_decref(root);
	free(order);
	free(frame_of_sym);
	ms_view_fini(&v);
	return ret;
}
