// SPDX-License-Identifier: MIT
/* The heap walker on a synthetic glibc 2.36 heap: exact classification, then damage. */
#include "heap_synth.h"
#include "tests/lib/mstest.h"

#include <stdio.h>



static bool has_error(const struct ms_heap_report *rep, const char *kind)
{
	for (size_t i = 0; i < rep->nerrors; i++)
		if (!strcmp(rep->errors[i].kind, kind))
			return true;
	return false;
}

static int walk(struct synth *s, struct ms_heap_report *rep)
{
	struct ms_reader r = {.read = synth_read, .ctx = s};

	return ms_heap_walk(&s->loc, &r, &s->maps, rep);
}

int main(void)
{
	static struct synth s;
	struct ms_heap_report rep;
	int r;

	/* A healthy heap: every chunk where it belongs, mallinfo2 as glibc computes it. */
	CHECK(synth_build(&s) == 0);
	r = walk(&s, &rep);
	for (size_t i = 0; i < rep.nerrors; i++)
		fprintf(stderr, "unexpected: %s %s\n", rep.errors[i].kind, rep.errors[i].msg);
	CHECK(r == 0);
	CHECK(rep.narenas == 1);
	CHECK(rep.total.chunks[MS_HK_INUSE] == s.inuse_chunks);
	CHECK(rep.total.chunks[MS_HK_TCACHE] == s.tcache_chunks);
	CHECK(rep.total.chunks[MS_HK_FAST] == s.fast_chunks);
	CHECK(rep.total.chunks[MS_HK_UNSORTED] == s.unsorted_chunks);
	CHECK(rep.total.bytes[MS_HK_TOP] == s.top_size);
	CHECK(rep.mi.ordblks == 2);
	CHECK(rep.mi.smblks == 1 && rep.mi.fsmblks == 0x40);
	CHECK(rep.mi.fordblks == s.top_size + 0x200 + 0x40);
	CHECK(rep.mi.uordblks == SY_HEAP_LEN - rep.mi.fordblks);
	CHECK(rep.mi.keepcost == s.top_size);
	CHECK(rep.largest_free == 0x200);
	ms_heap_report_free(&rep);

	/* A tcache cycle: 0x2d0 -> 0x300 -> 0x2d0 ... */
	synth_build(&s);
	memcpy(s.heap + 0x2d0, &(uint64_t){((SY_HEAP + 0x2d0) >> 12) ^ (SY_HEAP + 0x300)}, 8);
	r = walk(&s, &rep);
	CHECK(r == -MS_E_CORRUPT);
	CHECK(has_error(&rep, "tcache_cycle"));
	CHECK(rep.total.bytes[MS_HK_TOP] == s.top_size); /* what could still be computed */
	ms_heap_report_free(&rep);

	/* An impossible size: reported, walk resyncs or stops, never crashes. */
	synth_build(&s);
	chunk(&s, 0x360, 0x4141414141414141ull);
	r = walk(&s, &rep);
	CHECK(r == -MS_E_CORRUPT);
	CHECK(has_error(&rep, "bad_chunk"));
	ms_heap_report_free(&rep);

	/* A bin pointing outside every mapping. */
	synth_build(&s);
	memcpy(s.data + s.loc.layout.ar_bins, &(uint64_t){0xdead0000ull}, 8);
	r = walk(&s, &rep);
	CHECK(r == -MS_E_CORRUPT);
	CHECK(has_error(&rep, "bad_bin_entry"));
	ms_heap_report_free(&rep);

	/* An arena ring that loops without passing main_arena again. */
	synth_build(&s);
	r = walk(&s, &rep);
	ms_heap_report_free(&rep);
	memcpy(s.data + s.loc.layout.ar_next, &(uint64_t){0x7f0000001800ull}, 8);
	r = walk(&s, &rep);
	CHECK(r != 0);
	ms_heap_report_free(&rep);

	/*
	 * After a fork, [heap] grows as a second mapping the kernel cannot merge
	 * with the first: the walk must take adjacent mappings as one range and
	 * be exactly as on one mapping.
	 */
	synth_build(&s);
	ms_maps_free(&s.maps);
	CHECK(ms_maps_parse("555555559000-55555555a000 rw-p 00000000 00:00 0 [heap]\n"
			    "55555555a000-55555555c000 rw-p 00000000 00:00 0 [heap]\n"
			    "55555555c000-55555555d000 rw-p 00000000 00:00 0 [heap]\n"
			    "7f0000001000-7f0000003000 rw-p 00000000 00:00 0\n",
			    &s.maps) == 0);
	r = walk(&s, &rep);
	for (size_t i = 0; i < rep.nerrors; i++)
		fprintf(stderr, "unexpected (split [heap]): %s %s\n", rep.errors[i].kind,
			rep.errors[i].msg);
	CHECK(r == 0);
	CHECK(!rep.partial && !rep.inconsistent);
	CHECK(rep.total.chunks[MS_HK_INUSE] == s.inuse_chunks);
	CHECK(rep.total.chunks[MS_HK_TCACHE] == s.tcache_chunks);
	CHECK(rep.mi.uordblks == SY_HEAP_LEN - rep.mi.fordblks);
	CHECK(rep.mi.keepcost == s.top_size);
	{
		struct ms_heap_verdict v;

		ms_heap_verdict(&rep, &v);
		CHECK(v.cause == MS_HC_NONE && !v.text[0]);
	}
	ms_heap_report_free(&rep);

	/*
	 * A hole in the middle of the heap (a page not mapped): the segment is
	 * not walked, and the verdict says memory could not be read, not that a
	 * thread was caught inside malloc. The tcache bin counts one entry whose
	 * chunk the walk never saw: one off, but the list did not end normally.
	 */
	synth_build(&s);
	ms_maps_free(&s.maps);
	CHECK(ms_maps_parse("555555559000-55555555a000 rw-p 00000000 00:00 0 [heap]\n"
			    "55555555b000-55555555d000 rw-p 00000000 00:00 0 [heap]\n"
			    "7f0000001000-7f0000003000 rw-p 00000000 00:00 0\n",
			    &s.maps) == 0);
	*(uint16_t *)(s.heap + 0x10 + 2 * 1) = 1; /* counts[1]: one entry */
	r = walk(&s, &rep);
	CHECK(r == -MS_E_CORRUPT);
	CHECK(has_error(&rep, "unmapped_segment"));
	CHECK(rep.partial);
	CHECK(!rep.inconsistent && rep.locked_arenas == 0 && rep.tcache_midupdate == 0);
	{
		struct ms_heap_verdict v;

		ms_heap_verdict(&rep, &v);
		CHECK(v.cause == MS_HC_UNREADABLE);
		CHECK(v.first && !strcmp(v.first->kind, "unmapped_segment"));
		CHECK(strstr(v.text, "could not be read") != NULL);
		CHECK(strstr(v.text, "inside malloc") == NULL);
		CHECK(!strcmp(ms_heap_cause_name(v.cause), "unreadable"));
	}
	ms_heap_report_free(&rep);

	/* A mapping in the run without read permission breaks it. */
	synth_build(&s);
	ms_maps_free(&s.maps);
	CHECK(ms_maps_parse("555555559000-55555555a000 rw-p 00000000 00:00 0 [heap]\n"
			    "55555555a000-55555555b000 ---p 00000000 00:00 0\n"
			    "55555555b000-55555555d000 rw-p 00000000 00:00 0 [heap]\n"
			    "7f0000001000-7f0000003000 rw-p 00000000 00:00 0\n",
			    &s.maps) == 0);
	r = walk(&s, &rep);
	CHECK(r == -MS_E_CORRUPT);
	CHECK(has_error(&rep, "unmapped_segment"));
	ms_heap_report_free(&rep);

	/* Damage where no lock is held is named damage; a held lock, a thread inside malloc. */
	synth_build(&s);
	chunk(&s, 0x360, 0x4141414141414141ull);
	r = walk(&s, &rep);
	{
		struct ms_heap_verdict v;

		ms_heap_verdict(&rep, &v);
		CHECK(v.cause == MS_HC_DAMAGED);
		CHECK(v.first && !strcmp(v.first->kind, "bad_chunk"));
	}
	ms_heap_report_free(&rep);
	synth_build(&s);
	chunk(&s, 0x360, 0x4141414141414141ull);
	memcpy(s.data + s.loc.layout.ar_mutex, &(int32_t){1}, 4);
	r = walk(&s, &rep);
	CHECK(rep.locked_arenas == 1 && rep.inconsistent);
	{
		struct ms_heap_verdict v;

		ms_heap_verdict(&rep, &v);
		CHECK(v.cause == MS_HC_MIDUPDATE);
		CHECK(strstr(v.text, "1 arena lock was held") != NULL);
	}
	ms_heap_report_free(&rep);

	ms_maps_free(&s.maps);
	return ms_test_result("test_heap_walk");
}
