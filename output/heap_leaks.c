// SPDX-License-Identifier: MIT
/* The leak scan's part of a heap report (memspy dump --leaks): text and JSON. */
#include "output/heap.h"
#include "output/json_text.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define H(x) ms_fmt_bytes((char[32]){0}, 32, (x))
#define C(x) ms_fmt_count((char[32]){0}, 32, (x))
/* Groups listed in the text; examples shown for the first few of them. */
#define TOP_GROUPS 10u
#define TOP_EXAMPLES 3u

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static void hexdump(FILE *f, ms_raddr_t base, const unsigned char *p, size_t n)
{
	for (size_t o = 0; o < n; o += 16) {
		fprintf(f, "      %012" PRIx64 "  ", base + o);
		for (size_t i = 0; i < 16; i++) {
			if (o + i < n)
				fprintf(f, "%02x ", p[o + i]);
			else
				fputs("   ", f);
			if (i == 7)
				fputc(' ', f);
		}
		fputs(" |", f);
		for (size_t i = 0; i < 16 && o + i < n; i++)
			fputc(isprint(p[o + i]) ? p[o + i] : '.', f);
		fputs("|\n", f);
	}
}

static void explain_text(FILE *f, const struct ms_leak_explain *ex)
{
	fprintf(f, "\nExplain 0x%" PRIx64 ":\n", ex->addr);
	if (!ex->chunk) {
		fprintf(f, "  not inside an allocation (free memory, a tcache or fastbin chunk, or not "
			   "malloc's)\n");
		return;
	}
	fprintf(f, "  inside %s 0x%" PRIx64 " (chunk %s, offset +0x%" PRIx64 "): %s\n", ex->type,
		ex->chunk, H(ex->size), ex->addr - ex->chunk,
		!strcmp(ex->status, "leaked") ? "LEAKED, reachable from no root" :
		!strcmp(ex->status, "thread-only") ? "reachable only from one thread" :
		!strcmp(ex->status, "several-threads") ? "reachable only from threads' stacks" :
							"reachable");
	if (ex->nchain) {
		fprintf(f, "  %s\n", ex->root);
		for (size_t i = 0; i < ex->nchain; i++)
			fprintf(f, "  %*s-> %s 0x%" PRIx64 " (chunk %s)\n", (int)(2 * i), "",
				ex->chain[i].type, ex->chain[i].chunk, H(ex->chain[i].size));
	}
	if (!strcmp(ex->status, "leaked")) {
		if (!ex->nreferrers)
			fprintf(f, "  no leaked allocation points to it: the head of a leaked "
				   "structure\n");
		for (size_t i = 0; i < ex->nreferrers; i++)
			fprintf(f, "  pointed to by leaked 0x%" PRIx64 "\n", ex->referrers[i]);
		if (ex->more_referrers)
			fprintf(f, "  and more\n");
	}
}

void ms_heap_write_leaks_text(FILE *f, const struct ms_leak_report *lr)
{
	size_t shown = 0, ex = 0;

	if (lr->explain)
		explain_text(f, lr->explain);

	fprintf(f, "\nLeak scan (conservative: any aligned word pointing into an allocation keeps it):\n");
	if (lr->partial)
		fprintf(f, "  WARNING: partial scan: %s\n", lr->note);
	fprintf(f, "  Leaked:        %s in %s allocations (%.1f%% of %s in use in %s), reachable "
		   "from no root\n",
		H(lr->leaked_bytes), C(lr->leaked_count), pct(lr->leaked_bytes, lr->inuse_bytes),
		H(lr->inuse_bytes), C(lr->inuse_count));
	fprintf(f, "  Unreferenced:  %s in %s of them: no other leaked allocation points to these "
		   "(the heads of leaked structures)\n",
		H(lr->unref_bytes), C(lr->unref_count));
	fprintf(f, "  Thread-only:   %s in %s allocations reachable only from one thread's stack, "
		   "registers or thread_local data",
		H(lr->thread_only_bytes), C(lr->thread_only_count));
	if (lr->multi_thread_count)
		fprintf(f, " (+ %s in %s only from several threads')", H(lr->multi_thread_bytes),
			C(lr->multi_thread_count));
	fputs("\n", f);
	fprintf(f, "  Scan: %.0f ms (CPU %.0f ms); roots %s of module data, %s anonymous, %s of stacks; %s of "
		   "allocations read; %zu vtables known%s%s\n",
		lr->scan_ms, lr->scan_cpu_ms, H(lr->root_module_bytes), H(lr->root_anon_bytes),
		H(lr->root_stack_bytes), H(lr->scanned_bytes), lr->nvtables,
		!lr->partial && lr->note[0] ? "; " : "", !lr->partial ? lr->note : "");

	if (lr->leaked_count) {
		fprintf(f, "\n  Leaked by type (class from the vtable, else chunk size):\n"
			   "  %-40s %10s %10s %12s %10s\n",
			"type", "leaked", "bytes", "unreferenced", "in use");
		for (size_t i = 0; i < lr->ngroups && shown < TOP_GROUPS; i++) {
			const struct ms_leak_group *g = &lr->groups[i];

			if (!g->leaked_count)
				continue;
			shown++;
			fprintf(f, "  %-40.40s %10s %10s %12s %10s\n", g->type, C(g->leaked_count),
				H(g->leaked_bytes), C(g->unref_count), C(g->count));
		}
		for (size_t i = 0; i < lr->ngroups && ex < TOP_EXAMPLES; i++) {
			const struct ms_leak_group *g = &lr->groups[i];

			if (!g->leaked_count || !g->example)
				continue;
			if (!ex++)
				fputs("\n  Examples (one leaked allocation of each of the largest groups):\n", f);
			fprintf(f, "    %s: 0x%" PRIx64 " (chunk %s)\n", g->type, g->example,
				H(g->example_size));
			hexdump(f, g->example, g->head, g->nhead);
		}
	}

	fprintf(f, "\n  What the heap is made of (in use, by type; largest first):\n"
		   "  %-40s %10s %10s\n", "type", "count", "bytes");
	shown = 0;
	{
		/* The groups are sorted by leaked bytes: pick the in-use top by a small selection. */
		bool *done = ms_xcalloc(lr->ngroups ? lr->ngroups : 1, sizeof(*done));

		for (; shown < TOP_GROUPS && shown < lr->ngroups; shown++) {
			size_t best = SIZE_MAX;

			for (size_t i = 0; i < lr->ngroups; i++)
				if (!done[i] && (best == SIZE_MAX || lr->groups[i].bytes > lr->groups[best].bytes))
					best = i;
			done[best] = true;
			fprintf(f, "  %-40.40s %10s %10s\n", lr->groups[best].type,
				C(lr->groups[best].count), H(lr->groups[best].bytes));
		}
		free(done);
	}
	if (lr->nthreads) {
		bool any = false;

		for (size_t i = 0; i < lr->nthreads; i++) {
			if (!lr->threads[i].count)
				continue;
			if (!any)
				fputs("\n  Reachable only from one thread:\n", f);
			any = true;
			fprintf(f, "    thread %d: %s in %s allocations\n", (int)lr->threads[i].tid,
				H(lr->threads[i].bytes), C(lr->threads[i].count));
		}
	}
}

static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *group(const struct ms_leak_group *g, bool leaked)
{
	json_t *o = json_object();

	json_object_set_new(o, "type", ms_out_json_text(g->type));
	json_object_set_new(o, "typed", json_boolean(g->typed));
	if (!g->typed) {
		json_object_set_new(o, "chunk_size_min", u64(g->size_lo));
		json_object_set_new(o, "chunk_size_max", g->size_hi == UINT64_MAX ? json_null() :
									  u64(g->size_hi - 1));
	}
	if (leaked) {
		json_object_set_new(o, "count", u64(g->leaked_count));
		json_object_set_new(o, "bytes", u64(g->leaked_bytes));
		json_object_set_new(o, "unreferenced_count", u64(g->unref_count));
		json_object_set_new(o, "unreferenced_bytes", u64(g->unref_bytes));
		if (g->example) {
			char a[24], hex[2 * sizeof(g->head) + 1];

			snprintf(a, sizeof(a), "0x%" PRIx64, g->example);
			json_object_set_new(o, "example", json_string(a));
			for (size_t i = 0; i < g->nhead; i++)
				snprintf(hex + 2 * i, 3, "%02x", g->head[i]);
			hex[2 * g->nhead] = '\0';
			json_object_set_new(o, "example_head_hex", json_string(hex));
		}
	} else {
		json_object_set_new(o, "count", u64(g->count));
		json_object_set_new(o, "bytes", u64(g->bytes));
		json_object_set_new(o, "leaked_count", u64(g->leaked_count));
		json_object_set_new(o, "leaked_bytes", u64(g->leaked_bytes));
	}
	return o;
}

void ms_heap_leaks_json(json_t *root, const struct ms_leak_report *lr)
{
	json_t *lk = json_object(), *by = json_array(), *types = json_array(), *thr = json_array();

	json_object_set_new(lk, "partial", json_boolean(lr->partial));
	json_object_set_new(lk, "note", ms_out_json_text(lr->note[0] ? lr->note : NULL));
	json_object_set_new(lk, "in_use", json_pack("{s:o,s:o}", "count", u64(lr->inuse_count),
						   "bytes", u64(lr->inuse_bytes)));
	json_object_set_new(lk, "leaked", json_pack("{s:o,s:o}", "count", u64(lr->leaked_count),
						   "bytes", u64(lr->leaked_bytes)));
	json_object_set_new(lk, "unreferenced", json_pack("{s:o,s:o}", "count",
							 u64(lr->unref_count), "bytes",
							 u64(lr->unref_bytes)));
	json_object_set_new(lk, "thread_only",
			    json_pack("{s:o,s:o}", "count", u64(lr->thread_only_count), "bytes",
				      u64(lr->thread_only_bytes)));
	json_object_set_new(lk, "several_threads_only",
			    json_pack("{s:o,s:o}", "count", u64(lr->multi_thread_count), "bytes",
				      u64(lr->multi_thread_bytes)));
	for (size_t i = 0; i < lr->nthreads; i++)
		json_array_append_new(thr, json_pack("{s:i,s:b,s:o,s:o}", "tid",
						     (int)lr->threads[i].tid, "scanned",
						     lr->threads[i].scanned, "thread_only_count",
						     u64(lr->threads[i].count), "thread_only_bytes",
						     u64(lr->threads[i].bytes)));
	json_object_set_new(lk, "threads", thr);
	for (size_t i = 0; i < lr->ngroups; i++)
		if (lr->groups[i].leaked_count)
			json_array_append_new(by, group(&lr->groups[i], true));
	json_object_set_new(lk, "by_type", by);
	json_object_set_new(
		lk, "roots",
		json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "module_bytes", u64(lr->root_module_bytes),
			  "anonymous_bytes", u64(lr->root_anon_bytes), "stack_bytes",
			  u64(lr->root_stack_bytes), "allocation_bytes_read", u64(lr->scanned_bytes),
			  "unreadable_bytes", u64(lr->unreadable_bytes), "allocations_left_out",
			  u64(lr->dropped_chunks)));
	json_object_set_new(lk, "vtables", u64(lr->nvtables));
	json_object_set_new(lk, "scan_ms", json_real(lr->scan_ms));
	json_object_set_new(lk, "mark_ms", json_real(lr->mark_ms));
	json_object_set_new(lk, "scan_cpu_ms", json_real(lr->scan_cpu_ms));
	if (lr->explain) {
		const struct ms_leak_explain *e = lr->explain;
		json_t *o = json_object(), *ch = json_array(), *refs = json_array();
		char a[24];

#define A(x) (snprintf(a, sizeof(a), "0x%" PRIx64, (x)), json_string(a))
		json_object_set_new(o, "address", A(e->addr));
		json_object_set_new(o, "status", ms_out_json_text(e->status));
		json_object_set_new(o, "allocation", e->chunk ? A(e->chunk) : json_null());
		json_object_set_new(o, "chunk_size", u64(e->size));
		json_object_set_new(o, "type", ms_out_json_text(e->type));
		json_object_set_new(o, "root", ms_out_json_text(e->nchain ? e->root : NULL));
		json_object_set_new(o, "root_address", e->root_at ? A(e->root_at) : json_null());
		for (size_t i = 0; i < e->nchain; i++) {
			json_t *h = json_object();

			json_object_set_new(h, "allocation", A(e->chain[i].chunk));
			json_object_set_new(h, "chunk_size", u64(e->chain[i].size));
			json_object_set_new(h, "type", ms_out_json_text(e->chain[i].type));
			json_object_set_new(h, "next_at", e->chain[i].at ? A(e->chain[i].at) : json_null());
			json_array_append_new(ch, h);
		}
		json_object_set_new(o, "chain", ch);
		for (size_t i = 0; i < e->nreferrers; i++)
			json_array_append_new(refs, A(e->referrers[i]));
		json_object_set_new(o, "leaked_referrers", refs);
		json_object_set_new(o, "more_referrers", json_boolean(e->more_referrers));
#undef A
		json_object_set_new(lk, "explain", o);
	}
	json_object_set_new(root, "leaks", lk);
	for (size_t i = 0; i < lr->ngroups; i++)
		json_array_append_new(types, group(&lr->groups[i], false));
	json_object_set_new(root, "types", types);
}
