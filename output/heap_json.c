// SPDX-License-Identifier: MIT
/* The JSON rendering of a heap report (memspy dump --json); schema in doc/dump-json.md. */
#include "output/heap.h"
#include "output/json_text.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static json_t *addr(ms_raddr_t a)
{
	char b[24];

	snprintf(b, sizeof(b), "0x%" PRIx64, a);
	return json_string(b);
}

static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *counts(const struct ms_heap_counts *c)
{
	json_t *o = json_object();

	for (unsigned k = 0; k < MS_HK_N; k++)
		json_object_set_new(o, ms_heap_kind_name(k),
				    json_pack("{s:o,s:o}", "chunks", u64(c->chunks[k]), "bytes",
					      u64(c->bytes[k])));
	return o;
}

static json_t *mallinfo(const struct ms_heap_mallinfo *m)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "arena", u64(m->arena),
			 "ordblks", u64(m->ordblks), "smblks", u64(m->smblks), "hblks",
			 u64(m->hblks), "hblkhd", u64(m->hblkhd), "usmblks", u64(m->usmblks),
			 "fsmblks", u64(m->fsmblks), "uordblks", u64(m->uordblks), "fordblks",
			 u64(m->fordblks), "keepcost", u64(m->keepcost));
}

static uint64_t free_no_top(const struct ms_heap_counts *c)
{
	uint64_t s = 0;

	for (unsigned k = MS_HK_TCACHE; k < MS_HK_TOP; k++)
		s += c->bytes[k];
	return s;
}

static uint64_t chunks_of(const struct ms_heap_counts *c, unsigned lo, unsigned hi)
{
	uint64_t s = 0;

	for (unsigned k = lo; k <= hi; k++)
		s += c->chunks[k];
	return s;
}

static json_t *fragmentation(const struct ms_heap_counts *c, uint64_t system, uint64_t largest)
{
	uint64_t fr = free_no_top(c);
	double free_ratio = system ? (double)(fr + c->bytes[MS_HK_TOP]) / (double)system : 0;
	double external = fr ? 1.0 - (double)largest / (double)fr : 0;

	return json_pack("{s:f,s:f}", "free_ratio", free_ratio, "external", external);
}

int ms_heap_write_json(FILE *f, const struct ms_heap_meta *m)
{
	const struct ms_heap_report *rep = m->rep;
	json_t *root = json_object();
	int r;

	json_object_set_new(root, "tool", json_string("memspy dump"));
	json_object_set_new(root, "schema_version", json_integer(1));
	json_object_set_new(root, "pid", json_integer(m->pid));
	json_object_set_new(root, "comm", ms_out_json_text(m->comm));
	json_object_set_new(root, "allocator", ms_out_json_text(m->allocator));
	json_object_set_new(root, "error", ms_out_json_text(m->fatal));
	json_object_set_new(root, "exit_code", json_integer(m->exit_code));
	json_object_set_new(root, "complete", json_boolean(m->exit_code == 0));
	if (m->loc) {
		json_object_set_new(root, "glibc_version", ms_out_json_text(m->loc->glibc_version));
		json_object_set_new(root, "libc", ms_out_json_text(m->loc->libc_path));
		json_object_set_new(root, "build_id", ms_out_json_text(m->loc->build_id));
		json_object_set_new(root, "layout_source", ms_out_json_text(m->loc->layout_source));
		json_object_set_new(root, "symbol_source", ms_out_json_text(m->loc->symbol_source));
		json_object_set_new(root, "main_arena", addr(m->loc->main_arena));
		json_object_set_new(root, "mp_", addr(m->loc->mp));
		json_object_set_new(root, "locate_ms", json_real(m->loc->locate_ms));
	}
	json_object_set_new(root, "pause_ms", json_real(m->pause_ms));
	json_object_set_new(root, "total_ms", json_real(m->total_ms));
	json_object_set_new(root, "lock_retries", json_integer(m->lock_retries));
	json_object_set_new(root, "walk_source", ms_out_json_text(m->walk_source));
	json_object_set_new(root, "snapshot_fallback", ms_out_json_text(m->snapshot_fallback));
	json_object_set_new(root, "snapshot_ms", json_real(m->snapshot_ms));
	if (m->quiesce) {
		const struct ms_quiesce_stats *q = m->quiesce;

		json_object_set_new(
		    root, "quiesce",
		    json_pack("{s:b, s:i, s:i, s:i, s:f, s:f, s:i, s:i, s:i, s:i, s:i, s:o}",
			      "available", m->quiesce_available, "rounds", (json_int_t)q->rounds,
			      "threads_let_out", (json_int_t)q->threads_let_out,
			      "threads_let_out_total", (json_int_t)q->let_out_total, "ms", q->ms,
			      "max_ms", q->max_ms, "syscalls", (json_int_t)q->syscalls,
			      "futex_waits", (json_int_t)q->futex_waits, "blocked",
			      (json_int_t)q->blocked, "failed_rounds", (json_int_t)q->failed,
			      "fallback_retries", (json_int_t)m->lock_retries, "fallback_reason",
			      ms_out_json_text(q->why[0] ? q->why : NULL)));
	}
	if (rep) {
		json_t *arenas = json_array(), *threads = json_array(), *hist = json_array();
		json_t *errors = json_array(), *segs = json_array();
		uint64_t sys = rep->mi.arena;

		json_object_set_new(root, "walk_ms", json_real(rep->walk_ms));
		json_object_set_new(root, "walk_cpu_ms", json_real(rep->walk_cpu_ms));
		json_object_set_new(root, "partial", json_boolean(rep->partial));
		json_object_set_new(root, "inconsistent", json_boolean(rep->inconsistent));
		{
			struct ms_heap_verdict v;

			ms_heap_verdict(rep, &v);
			json_object_set_new(root, "cause", ms_out_json_text(ms_heap_cause_name(v.cause)));
			json_object_set_new(root, "cause_message",
					    ms_out_json_text(v.text[0] ? v.text : NULL));
		}
		json_object_set_new(root, "mallinfo2", mallinfo(&rep->mi));
		json_object_set_new(
			root, "totals",
			json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "system_bytes",
				  u64(sys), "in_use_bytes", u64(rep->in_use_bytes), "in_use_chunks",
				  u64(rep->total.chunks[MS_HK_INUSE] +
				      rep->total.chunks[MS_HK_MMAPPED]),
				  "free_bytes", u64(rep->free_bytes), "free_chunks",
				  u64(chunks_of(&rep->total, MS_HK_TCACHE, MS_HK_TOP)), "by_kind",
				  counts(&rep->total), "largest_free_chunk", u64(rep->largest_free),
				  "fragmentation",
				  fragmentation(&rep->total, sys, rep->largest_free), "mp_n_mmaps",
				  u64(rep->mp_n_mmaps), "mp_mmapped_mem", u64(rep->mp_mmapped_mem)));
		json_object_set_new(root, "settings",
				    json_pack("{s:o,s:o,s:o}", "mmap_threshold",
					      u64(rep->mmap_threshold), "global_max_fast",
					      u64(rep->global_max_fast), "tcache_count",
					      u64(rep->tcache_count)));
		for (size_t i = 0; i < rep->narenas; i++) {
			const struct ms_heap_arena *a = &rep->arenas[i];

			json_array_append_new(
				arenas,
				json_pack("{s:i,s:o,s:b,s:i,s:b,s:b,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
					  "s:o}",
					  "index", (int)i, "address", addr(a->addr), "main", a->is_main,
					  "mutex", a->mutex, "inconsistent", a->inconsistent, "partial",
					  a->partial, "on_free_list", a->on_free_list,
					  "attached_threads", u64(a->attached_threads), "system_bytes",
					  u64(a->system_mem), "heaps", u64(a->nheaps), "overhead_bytes",
					  u64(a->overhead), "chunks", counts(&a->c),
					  "largest_free_chunk", u64(a->largest_free), "fragmentation",
					  fragmentation(&a->c, a->system_mem, a->largest_free),
					  "mallinfo2", mallinfo(&a->mi)));
		}
		json_object_set_new(root, "arenas", arenas);
		for (size_t i = 0; i < rep->nthreads; i++) {
			const struct ms_heap_thread_rep *t = &rep->threads[i];

			json_array_append_new(threads,
					      json_pack("{s:i,s:o,s:o,s:o,s:b}", "tid", (int)t->tid,
							"tcache", addr(t->tcache), "tcache_chunks",
							u64(t->chunks), "tcache_bytes", u64(t->bytes),
							"count_mismatch", t->count_mismatch));
		}
		json_object_set_new(root, "threads", threads);
		for (size_t i = 0; i < rep->nhist; i++) {
			const struct ms_heap_hist *h = &rep->hist[i];

			if (!h->inuse_chunks && !h->free_chunks)
				continue;
			json_array_append_new(
				hist, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "min", u64(h->lo), "max",
						u64(h->hi - 1), "in_use_chunks", u64(h->inuse_chunks),
						"in_use_bytes", u64(h->inuse_bytes), "free_chunks",
						u64(h->free_chunks), "free_bytes", u64(h->free_bytes)));
		}
		json_object_set_new(root, "size_classes", hist);
		for (size_t i = 0; i < rep->nsegs && i < 4096; i++)
			json_array_append_new(segs, json_pack("{s:o,s:o,s:s,s:i}", "start",
							      addr(rep->segs[i].start), "end",
							      addr(rep->segs[i].end), "kind",
							      rep->segs[i].kind, "arena",
							      rep->segs[i].arena));
		json_object_set_new(root, "segments", segs);
		for (size_t i = 0; i < rep->nerrors; i++) {
			const struct ms_heap_error *e = &rep->errors[i];

			json_array_append_new(errors,
					      json_pack("{s:o,s:o,s:i,s:o}", "kind",
							ms_out_json_text(e->kind), "address",
							addr(e->addr), "arena", e->arena, "message",
							ms_out_json_text(e->msg)));
		}
		json_object_set_new(root, "errors", errors);
		json_object_set_new(root, "errors_dropped", u64(rep->errors_dropped));
	}
	if (m->leaks)
		ms_heap_leaks_json(root, m->leaks);
	if (m->rss && m->rss->valid)
		json_object_set_new(
			root, "rss",
			json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "heap_rss_bytes",
				  u64(m->rss->heap_rss), "heap_anonymous_bytes", u64(m->rss->heap_anon),
				  "heap_swap_bytes", u64(m->rss->heap_swap), "heap_mapped_bytes",
				  u64(m->rss->heap_size), "anonymous_rss_bytes", u64(m->rss->anon_rss),
				  "anonymous_mapped_bytes", u64(m->rss->anon_size), "total_rss_bytes",
				  u64(m->rss->total_rss)));
	if (m->mem)
		json_object_set_new(root, "process",
				    json_pack("{s:o,s:o,s:o,s:o,s:o}", "vm_rss", u64(m->mem->vm_rss),
					      "rss_anon", u64(m->mem->rss_anon), "rss_file",
					      u64(m->mem->rss_file), "vm_size", u64(m->mem->vm_size),
					      "vm_data", u64(m->mem->vm_data)));
	/*
	 * The reals are times in ms: 9 significant digits keep microseconds up
	 * to 1000 s, where jansson's default 17 wrote 13.547629000000001.
	 */
	r = json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	fputc('\n', f);
	json_decref(root);
	return r == 0 && !ferror(f) ? 0 : -EIO;
}
