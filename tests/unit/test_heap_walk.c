// SPDX-License-Identifier: MIT
/* The heap walker on a synthetic glibc 2.36 heap: exact classification, then damage. */
#include "heap_synth.h"

#include <stdio.h>

static int failures;

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                                \
		}                                                                  \
	} while (0)

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

	ms_maps_free(&s.maps);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	else
		printf("test_heap_walk: all checks passed\n");
	return failures ? 1 : 0;
}
