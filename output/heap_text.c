// SPDX-License-Identifier: MIT
/* The text rendering of a heap report, for a tired engineer: the answer first, units everywhere. */
#include "output/heap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "1.52 GiB" style; exact bytes are printed next to it where they matter. */
static const char *human(uint64_t b, char *buf, size_t size)
{
	return ms_fmt_bytes(buf, size, b);
}

#define H(x) human((x), (char[32]){0}, 32)

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static void summary_rss(FILE *f, const struct ms_heap_meta *m)
{
	if (m->rss && m->rss->valid) {
		if (m->rep)
			fprintf(f, "  RSS of heap mappings: %s (%s anonymous, %s swapped) of %s mapped\n",
				H(m->rss->heap_rss), H(m->rss->heap_anon), H(m->rss->heap_swap),
				H(m->rss->heap_size));
		fprintf(f, "  Anonymous memory:     %s resident of %s mapped\n", H(m->rss->anon_rss),
			H(m->rss->anon_size));
		fprintf(f, "  Process RSS:          %s\n", H(m->rss->total_rss));
	} else if (m->mem) {
		fprintf(f, "  Process RSS:          %s (%s anonymous)\n", H(m->mem->vm_rss),
			H(m->mem->rss_anon));
	}
}

static int write_text(FILE *f, const struct ms_heap_meta *m)
{
	const struct ms_heap_report *rep = m->rep;
	const struct ms_heap_arena *big = NULL;
	struct ms_heap_verdict v;
	uint64_t sys, free_no_top = 0;

	fprintf(f, "memspy dump: process %d (%s)\n", (int)m->pid, m->comm ? m->comm : "?");
	if (!rep) {
		fprintf(f, "  NO HEAP WALK: %s\n", m->fatal ? m->fatal : "unknown failure");
		fprintf(f, "  Allocator:            %s\n", m->allocator ? m->allocator : "?");
		summary_rss(f, m);
		return ferror(f) ? -EIO : 0;
	}
	sys = rep->mi.arena;
	for (size_t i = 0; i < rep->narenas; i++)
		if (!big || rep->arenas[i].system_mem > big->system_mem)
			big = &rep->arenas[i];
	for (unsigned k = MS_HK_TCACHE; k < MS_HK_TOP; k++)
		free_no_top += rep->total.bytes[k];

	ms_heap_verdict(rep, &v);
	if (v.cause != MS_HC_NONE)
		fprintf(f, "  WARNING: %zu problem%s (listed at the end): %s; totals below are what "
			   "could be read.\n",
			rep->nerrors + rep->errors_dropped,
			rep->nerrors + rep->errors_dropped == 1 ? "" : "s", v.text);
	fprintf(f, "  In use:    %s (%" PRIu64 " bytes) in %" PRIu64 " chunks (%s of it in %"
		   PRIu64 " mmapped chunks)\n",
		H(rep->in_use_bytes), rep->in_use_bytes,
		rep->total.chunks[MS_HK_INUSE] + rep->total.chunks[MS_HK_MMAPPED],
		H(rep->total.bytes[MS_HK_MMAPPED]), rep->total.chunks[MS_HK_MMAPPED]);
	fprintf(f, "  Free:      %s (%" PRIu64 " bytes): %s in bins and caches + %s at the top "
		   "of arenas\n",
		H(rep->free_bytes), rep->free_bytes, H(free_no_top), H(rep->total.bytes[MS_HK_TOP]));
	fprintf(f, "  From OS:   %s (%" PRIu64 " bytes) in %zu arena%s + %s mmapped\n", H(sys), sys,
		rep->narenas, rep->narenas == 1 ? "" : "s", H(rep->mp_mmapped_mem));
	summary_rss(f, m);
	if (big)
		fprintf(f, "  Biggest arena: %s at 0x%" PRIx64 ", %s from OS, %s in use\n",
			big->is_main ? "main" : "thread arena", big->addr, H(big->system_mem),
			H(big->c.bytes[MS_HK_INUSE]));
	fprintf(f, "  Fragmentation: %.1f%% of arena memory is free; largest free chunk %s, "
		   "%.1f%% of free bin/cache bytes (external fragmentation %.1f%%)\n",
		pct(rep->free_bytes, sys), H(rep->largest_free), pct(rep->largest_free, free_no_top),
		free_no_top ? 100.0 - pct(rep->largest_free, free_no_top) : 0.0);
	fprintf(f, "  Target stopped for %.1f ms (whole dump %.1f ms%s)%s\n", m->pause_ms,
		m->total_ms, m->lock_retries ? ", retried while an arena was locked" : "",
		m->walk_source && !strcmp(m->walk_source, "snapshot") ?
			"; heap read from a copy-on-write snapshot while it ran" : "");
	if (m->quiesce && m->quiesce->let_out_total) {
		const struct ms_quiesce_stats *q = m->quiesce;

		fprintf(f, "  Quiesced: %u thread%s let out of malloc before the heap was read, "
			   "%.2f ms",
			q->threads_let_out, q->threads_let_out == 1 ? "" : "s", q->ms);
		if (q->rounds > 1)
			fprintf(f, " (%u rounds, %u gave up; %u let out in all)", q->rounds,
				q->failed, q->let_out_total);
		fprintf(f, "\n");
	}
	if (m->quiesce && (m->quiesce->failed || !m->quiesce_available) && m->quiesce->why[0])
		fprintf(f, "  Quiescing %s: %s\n",
			m->quiesce_available ? "fell back to retrying" : "unavailable",
			m->quiesce->why);
	fprintf(f, "  glibc %s, layout from %s, symbols from %s\n",
		m->loc ? m->loc->glibc_version : "?", m->loc ? m->loc->layout_source : "?",
		m->loc && m->loc->symbol_source ? m->loc->symbol_source : "?");
	if (m->leaks)
		ms_heap_write_leaks_text(f, m->leaks);

	fprintf(f, "\nFree memory by kind:\n");
	for (unsigned k = MS_HK_TCACHE; k <= MS_HK_TOP; k++)
		fprintf(f, "  %-9s %10" PRIu64 " chunks %12s\n", ms_heap_kind_name(k),
			rep->total.chunks[k], H(rep->total.bytes[k]));

	fprintf(f, "\nArenas:\n  %-3s %-18s %10s %10s %10s %10s %7s  %s\n", "#", "address", "from OS",
		"in use", "free", "top", "heaps", "notes");
	for (size_t i = 0; i < rep->narenas; i++) {
		const struct ms_heap_arena *a = &rep->arenas[i];
		uint64_t fr = 0;

		for (unsigned k = MS_HK_TCACHE; k < MS_HK_TOP; k++)
			fr += a->c.bytes[k];
		fprintf(f, "  %-3zu 0x%-16" PRIx64 " %10s %10s %10s %10s %7" PRIu64 "  %s%s%s%s\n", i,
			a->addr, H(a->system_mem), H(a->c.bytes[MS_HK_INUSE]), H(fr),
			H(a->c.bytes[MS_HK_TOP]), a->nheaps, a->is_main ? "main " : "",
			a->on_free_list ? "unused(threads exited) " : "",
			a->inconsistent ? "LOCKED-mid-update " : "", a->partial ? "PARTIAL" : "");
	}

	fprintf(f, "\nSize classes (chunk size incl. header):\n  %-21s %10s %10s %10s %10s\n",
		"size", "in use", "bytes", "free", "bytes");
	for (size_t i = 0; i < rep->nhist; i++) {
		const struct ms_heap_hist *h = &rep->hist[i];
		char range[48];

		if (!h->inuse_chunks && !h->free_chunks)
			continue;
		snprintf(range, sizeof(range), "%s..%s", H(h->lo), H(h->hi - 1));
		fprintf(f, "  %-21s %10" PRIu64 " %10s %10" PRIu64 " %10s\n", range, h->inuse_chunks,
			H(h->inuse_bytes), h->free_chunks, H(h->free_bytes));
	}

	fprintf(f, "\nmallinfo2() as the process would report it:\n"
		   "  arena %" PRIu64 " ordblks %" PRIu64 " smblks %" PRIu64 " hblks %" PRIu64
		   " hblkhd %" PRIu64 "\n  fsmblks %" PRIu64 " uordblks %" PRIu64 " fordblks %" PRIu64
		   " keepcost %" PRIu64 "\n",
		rep->mi.arena, rep->mi.ordblks, rep->mi.smblks, rep->mi.hblks, rep->mi.hblkhd,
		rep->mi.fsmblks, rep->mi.uordblks, rep->mi.fordblks, rep->mi.keepcost);

	if (rep->nerrors) {
		fprintf(f, "\nProblems found (%zu%s):\n", rep->nerrors,
			rep->errors_dropped ? ", more not shown" : "");
		for (size_t i = 0; i < rep->nerrors && i < 50; i++)
			fprintf(f, "  %-20s 0x%-14" PRIx64 " %s\n", rep->errors[i].kind,
				rep->errors[i].addr, rep->errors[i].msg);
	}
	return ferror(f) ? -EIO : 0;
}

/*
 * The report is built in memory, then written with every control character
 * made '?' (ms_terminal_clean): the process's name, its module paths, class
 * names and the walk's notes are the target's bytes, and this text is read
 * on a terminal.
 */
int ms_heap_write_text(FILE *f, const struct ms_heap_meta *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mf = open_memstream(&buf, &len);
	int rc;

	if (!mf)
		return -EIO;
	rc = write_text(mf, m);
	if (fclose(mf) || !buf) {
		free(buf);
		return -EIO;
	}
	ms_terminal_clean(buf);
	fwrite(buf, 1, strlen(buf), f);
	free(buf);
	return rc ? rc : ferror(f) ? -EIO : 0;
}
