// SPDX-License-Identifier: MIT
/*
 * output/folded: folded stacks ("main;f;g 1234"), the input of flamegraph.pl
 * and inferno, written sorted; and a parser for them (golden tests, re-render).
 */
#include "output/output_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/*
 * ';' separates frames and a newline ends the line, and no consumer of the
 * format knows an escape: a C++ name holding either would split the stack.
 * They become ':' and ' ', lossy but readable by every tool.
 */
static char *escape_frame(const char *s)
{
	char *r = ms_xstrdup(s);
	size_t e, d;

	for (char *c = r; *c; c++) {
		if (*c == ';')
			*c = ':';
		else if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	}
	/*
	 * A reader takes a line's last one or two space-separated numbers as
	 * its values: a leaf named "f 17" (or "f 17 ") would lend its stack a
	 * value. Trailing spaces and the space before a trailing number
	 * become '_'.
	 */
	for (e = strlen(r); e && r[e - 1] == ' '; e--)
		r[e - 1] = '_';
	for (d = e; d && isdigit((unsigned char)r[d - 1]); d--)
		;
	if (d < e && d && r[d - 1] == ' ')
		r[d - 1] = '_';
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct walk {
	uint32_t node;
	uint32_t next; /* next child position */
	size_t len;    /* path length up to and including this node's frame */
};

int ms_folded_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		    struct ms_error *err)
{
	struct ms_view v;
	char **names, **lines = NULL, *path = NULL;
	size_t n_lines = 0, cap_lines = 0, path_cap = 0, depth = 0, cap_stack = 0;
	struct walk *stack = NULL;
	int ret;

	ms_view_build(&v, p, o);
	names = ms_xcalloc(v.n_syms + 1, sizeof(*names));
	for (size_t i = 0; i < v.n_syms; i++)
		names[i] = escape_frame(v.syms[i].name);

	/* iterative walk: stacks can be 10k frames deep */
	ms_xgrow((void **)&stack, &cap_stack, 1, sizeof(*stack));
	stack[0] = (struct walk){MS_TREE_ROOT, v.child_start[0], 0};
	depth = 1;
	ms_xgrow((void **)&path, &path_cap, 1, 1);
	path[0] = '\0';
	while (depth) {
		struct walk *w = &stack[depth - 1];
		uint32_t c, end = v.child_start[w->node + 1];
		size_t len, nl;
		const char *name;
		uint64_t val;

		if (w->next >= end) {
			depth--;
			continue;
		}
		c = v.child_idx[w->next++];
		name = names[v.tree.nodes[c].sym];
		/* path[0, w->len) holds the frames down to w; siblings overwrite after it */
		len = w->len;
		nl = strlen(name);
		ms_xgrow((void **)&path, &path_cap, len + nl + 2, 1);
		if (w->node != MS_TREE_ROOT)
			path[len++] = ';';
		memcpy(path + len, name, nl + 1);
		/* A line that starts with '#' is a comment to the format's readers (a module named '#x'). */
		if (w->node == MS_TREE_ROOT && path[0] == '#')
			path[0] = '_';
		val = ms_view_value(o, v.tree.nodes[c].self_bytes, v.tree.nodes[c].self_count);
		if (val) {
			if (n_lines == cap_lines)
				ms_xgrow((void **)&lines, &cap_lines, n_lines + 1, sizeof(*lines));
			lines[n_lines++] = ms_xasprintf("%s %" PRIu64, path, val);
		}
		ms_xgrow((void **)&stack, &cap_stack, depth + 1, sizeof(*stack));
		stack[depth++] = (struct walk){c, v.child_start[c], len + nl};
	}
	if (n_lines > 1)
		qsort(lines, n_lines, sizeof(*lines), cmp_str);
	for (size_t i = 0; i < n_lines; i++) {
		fputs(lines[i], out);
		fputc('\n', out);
		free(lines[i]);
	}
	ret = ms_out_check(out, "folded stacks", err);

	free(lines);
	free(stack);
	free(path);
	for (size_t i = 0; i < v.n_syms; i++)
		free(names[i]);
	free(names);
	ms_view_fini(&v);
	return ret;
}

/* Parses a decimal u64 spanning exactly [s, e); false when not a number or too big. */
static bool parse_u64(const char *s, const char *e, uint64_t *out)
{
	uint64_t v = 0;

	if (s == e)
		return false;
	for (; s < e; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* The last space-separated token of [s, *e) if numeric: *e moves to before it. */
static bool last_number(const char *s, const char **e, uint64_t *out)
{
	const char *end = *e, *sp = end;

	while (sp > s && sp[-1] != ' ')
		sp--;
	if (sp == s || !parse_u64(sp, end, out))
		return false;
	end = sp - 1;
	while (end > s && end[-1] == ' ')
		end--;
	*e = end;
	return true;
}

int ms_folded_parse(FILE *in, struct ms_profile *p, struct ms_error *err)
{
	char *line = NULL;
	size_t cap = 0, lineno = 0, n_frames = 0, cap_frames = 0;
	struct ms_out_frame *frames = NULL;
	ssize_t len;
	int ret = 0;

	while ((len = getline(&line, &cap, in)) >= 0) {
		const char *end, *s;
		uint64_t a, b, bytes, count;
		char *f;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		end = line + len;
		while (end > line && end[-1] == ' ')
			end--;
		if (!last_number(line, &end, &a)) {
			ret = ms_error_set(
			    err, -EINVAL, "folded input: line %zu: no value at the end of the line",
			    lineno);
			ms_error_hint(err,
				      "each line is 'frame;frame;frame VALUE' (or 'stack BYTES "
				      "COUNT'), as written by flamegraph.pl's stackcollapse "
				      "scripts or 'memspy record -o x.folded'");
			break;
		}
		if (last_number(line, &end, &b)) {
			bytes = b;
			count = a;
		} else {
			bytes = a;
			count = 1;
		}
		line[end - line] = '\0';
		n_frames = 0;
		for (s = line; *s;) {
			const char *semi = strchr(s, ';');
			size_t l = semi ? (size_t)(semi - s) : strlen(s);

			if (l) {
				if (n_frames == cap_frames)
					ms_xgrow((void **)&frames, &cap_frames, n_frames + 1,
						 sizeof(*frames));
				f = (char *)s;
				f[l] = '\0'; /* the ';' (or the end) */
				frames[n_frames++] = (struct ms_out_frame){.function = f};
			}
			s += l + (semi ? 1 : 0);
		}
		if (n_frames == 0) {
			ret =
			    ms_error_set(err, -EINVAL, "folded input: line %zu: no frames", lineno);
			break;
		}
		ms_profile_add(p, frames, n_frames, bytes, count);
	}
	if (!ret && ferror(in))
		ret = ms_error_set(err, -EIO, "folded input: read error after line %zu", lineno);
	free(frames);
	free(line);
	return ret;
}
