// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the leak scan (heapwalk/leakscan.c) over a damaged
 * heap: the synthetic heap of heap_synth.h gets pointers between its chunks
 * and from the arena's region (a root), then the input overwrites bytes of
 * the heap and of that region, sets a thread's registers (its stack pointer
 * may land in the root region, making it a stack), and may shuffle the chunk
 * list the walk handed over (sizes, order, overlaps: what a buggy or raced
 * walk could produce). The walk and then the scan must end without a crash,
 * a hang or a read outside the image, with counts that add up, in a report
 * marked partial whenever the walk met damage or the scan left chunks out.
 */
#include "../unit/heap_synth.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take64(const uint8_t **p, size_t *n)
{
	uint64_t v = 0;

	if (*n >= 8) {
		memcpy(&v, *p, 8);
		*p += 8;
		*n -= 8;
	}
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct synth s;
	struct ms_heap_report rep;
	struct ms_leak_report lr;
	struct ms_leak_thread th = {.tid = 1, .have_regs = true};
	struct ms_reader r = {.read = synth_read, .ctx = &s};
	const struct ms_reader *rs[2] = {&r, &r}; /* synth_read is stateless: shareable */
	const uint8_t *p = data;
	size_t n = size, half;
	uint8_t mode;
	ms_raddr_t explain;
	uint64_t sum;

	if (size < 1 || synth_build(&s) != 0)
		return 0;
	mode = *p++;
	n--;
	/* References: the arena region (a root) -> 0x2a0 -> 0x370; 0x670 leaked, points to itself. */
	put64(s.data + 0x1800, SY_HEAP + 0x2a0);
	put64(s.heap + 0x2a0, SY_HEAP + 0x370);
	put64(s.heap + 0x670, SY_HEAP + 0x678);
	th.regs.rsp = take64(&p, &n);
	th.regs.rax = take64(&p, &n);
	th.regs.fs_base = take64(&p, &n);
	explain = take64(&p, &n);
	/* The rest: 3-byte patches (offset, value), half to the heap, half to the root region. */
	half = n / 2;
	for (size_t i = 0; i + 3 <= half; i += 3)
		s.heap[(p[i] | p[i + 1] << 8) % SY_HEAP_LEN] = p[i + 2];
	for (size_t i = half; i + 3 <= n; i += 3)
		s.data[(p[i] | p[i + 1] << 8) % SY_DATA_LEN] = p[i + 2];

	ms_heap_walk_flags(&s.loc, rs, 1, &s.maps, MS_HEAP_WALK_CHUNKS, &rep);
	if (mode & 1 && rep.nchunks) {
		/* The walk's promise (sorted, disjoint, inside the heap) broken on purpose. */
		for (size_t i = 0; i + 3 <= half && i < 48; i += 3) {
			struct ms_heap_chunk *c = &rep.chunks[p[i] % rep.nchunks];

			switch (p[i + 1] & 3) {
			case 0:
				c->size = (uint64_t)p[i + 2] << (p[i + 1] >> 2);
				break;
			case 1:
				c->addr += (uint64_t)p[i + 2] << 4;
				break;
			case 2:
				c->addr -= (uint64_t)p[i + 2] << 4;
				break;
			default:
				c->size |= MS_HEAP_CHUNK_MMAPPED;
			}
		}
	}
	/* Bit 2: the marking shares its batches with a second thread; bit 3: no AVX2 word test. */
	if (mode & 8)
		setenv("MEMSPY_TEST_SCAN_PLAIN", "1", 1);
	else
		unsetenv("MEMSPY_TEST_SCAN_PLAIN");
	ms_leak_scan_mt(&rep, rs, mode & 4 ? 2 : 1, &s.maps, 0, &th, 1, mode & 2 ? explain : 0,
			&lr);
	/* Damage the walk met, or chunks the scan left out: the leak report says it is partial. */
	if ((rep.nerrors || rep.errors_dropped || rep.partial || lr.dropped_chunks) && !lr.partial) {
		fprintf(stderr, "damaged heap (%zu walk errors, %llu chunks left out), report not partial\n",
			rep.nerrors, (unsigned long long)lr.dropped_chunks);
		__builtin_trap();
	}
	/* Every allocation in exactly one set. */
	sum = lr.leaked_count + lr.thread_only_count + lr.multi_thread_count;
	if (sum > lr.inuse_count || lr.unref_count > lr.leaked_count) {
		fprintf(stderr, "sets do not add up: %llu leaked + %llu thread > %llu in use\n",
			(unsigned long long)lr.leaked_count,
			(unsigned long long)(lr.thread_only_count + lr.multi_thread_count),
			(unsigned long long)lr.inuse_count);
		__builtin_trap();
	}
	for (size_t i = 0, cn = 0, cb = 0; i <= lr.ncells; i++) {
		if (i == lr.ncells) {
			if (cn != lr.inuse_count || cb != lr.inuse_bytes)
				__builtin_trap(); /* the SVG's cells must cover every allocation */
			break;
		}
		cn += lr.cells[i].count;
		cb += lr.cells[i].bytes;
	}
	ms_leak_report_free(&lr);
	ms_heap_report_free(&rep);
	ms_maps_free(&s.maps);
	return 0;
}
