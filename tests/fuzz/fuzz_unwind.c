// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the unwinder over arbitrary registers and stack bytes,
 * with real modules: those of this process (the fuzzer binary, libc, libdw,
 * ...), reported once per backend at start-up as memspy reports a target's.
 * A copied stack in ring mode is all the target wrote and nothing else:
 * no fallback reader, so the walk must end where the copy ends. Each walk
 * must end without a crash, a hang or a read outside the copy, with
 * 1 <= n <= max and pcs[0] == rip.
 *
 * FUZZ_UNWIND_COMPARE=1 also holds the elfutils backend's compiled CFI table
 * (unwind/unwind_cfi.c, on by default) to giving exactly the stack libdw
 * gives: the elfutils unwinder is made with MEMSPY_VERIFY_UNWIND=1, so each
 * walk the table does is done again by libdw over the same Dwfl, and any
 * mismatch it counts aborts. (An earlier form compared with a second
 * unwinder made later: its Dwfl saw the modules mapped meanwhile, and the
 * two libdw walks differed with the table off too, e.g. on
 * corpus/unwind/table_vs_libdw_fp_step, about one run in three.)
 *
 * Input: byte 0 picks the backend and whether rip is at a function's entry;
 * then 17 registers (DWARF order, rip last), 8 bytes each; the rest is the
 * stack copy. Random words rarely land in code or in the copy, so a
 * register or 8-byte-aligned stack word whose top byte is 0xaa becomes an
 * address in an executable mapping (module byte, offset), and 0xbb one in
 * the copy (offset): the fuzzer then builds plausible frames.
 */
#include "attach/attach.h"
#include "unwind/unwind.h"
#include "unwind/unwind_cfi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PCS	  128
#define MAX_COPY  65536
#define COPY_ADDR 0x7ffc12340000ull
#define MAX_TEXT  64

static struct ms_unwinder *unw[3];
static bool compare; /* FUZZ_UNWIND_COMPARE=1 */
static struct {
	ms_raddr_t start, len;
} text[MAX_TEXT];
static size_t ntext;

static void setup(void)
{
	static const enum ms_unwind_backend b[3] = {MS_UNWIND_DWFL, MS_UNWIND_LIBUNWIND,
						    MS_UNWIND_FP};
	struct ms_maps maps;
	struct ms_error err = {0};

	if (ms_maps_read(getpid(), &maps, &err) != 0) {
		fprintf(stderr, "fuzz_unwind: %s\n", err.msg);
		abort();
	}
	for (size_t i = 0; i < maps.n && ntext < MAX_TEXT; i++)
		if (maps.v[i].x && maps.v[i].path && maps.v[i].path[0] == '/') {
			text[ntext].start = maps.v[i].start;
			text[ntext].len = maps.v[i].end - maps.v[i].start;
			ntext++;
		}
	ms_maps_free(&maps);
	compare = getenv("FUZZ_UNWIND_COMPARE") && !strcmp(getenv("FUZZ_UNWIND_COMPARE"), "1");
	for (int i = 0; i < 3; i++) {
		if (compare && b[i] == MS_UNWIND_DWFL)
			setenv("MEMSPY_VERIFY_UNWIND", "1", 1);
		unw[i] = ms_unwinder_new(getpid(), b[i], &err);
		unsetenv("MEMSPY_VERIFY_UNWIND");
		if (!unw[i]) {
			fprintf(stderr, "fuzz_unwind: %s: %s\n", ms_unwind_backend_name(b[i]),
				err.msg);
			abort();
		}
	}
	if (!ntext)
		abort();
}

static uint64_t steer(uint64_t w)
{
	switch (w >> 56) {
	case 0xaa:
		return text[(w >> 48 & 0xff) % ntext].start +
		       (w & 0xffffffffffffull) % text[(w >> 48 & 0xff) % ntext].len;
	case 0xbb:
		return COPY_ADDR + (w & 0xffff);
	}
	return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t copy[MAX_COPY];
	struct user_regs_struct regs;
	uint64_t r[17];
	ms_raddr_t pcs[MAX_PCS];
	struct ms_stack_copy s = {0};
	size_t n = 0, len;
	int rc;

	if (!ntext)
		setup();
	if (size < 1 + sizeof(r))
		return 0;
	memcpy(r, data + 1, sizeof(r));
	for (int i = 0; i < 17; i++)
		r[i] = steer(r[i]);
	memset(&regs, 0, sizeof(regs));
	/* DWARF order: rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8-r15, rip */
	regs.rax = r[0], regs.rdx = r[1], regs.rcx = r[2], regs.rbx = r[3];
	regs.rsi = r[4], regs.rdi = r[5], regs.rbp = r[6], regs.rsp = r[7];
	regs.r8 = r[8], regs.r9 = r[9], regs.r10 = r[10], regs.r11 = r[11];
	regs.r12 = r[12], regs.r13 = r[13], regs.r14 = r[14], regs.r15 = r[15];
	regs.rip = r[16];

	len = size - 1 - sizeof(r);
	if (len > MAX_COPY)
		len = MAX_COPY;
	memcpy(copy, data + 1 + sizeof(r), len);
	for (size_t off = 0; off + 8 <= len; off += 8) {
		uint64_t w;

		memcpy(&w, copy + off, 8);
		w = steer(w);
		memcpy(copy + off, &w, 8);
	}
	s.regs = &regs;
	/* An exact-size heap buffer, so ASan sees a read one byte past the copy. */
	s.data = len ? malloc(len) : NULL;
	if (len)
		memcpy((void *)s.data, copy, len);
	s.len = len;
	s.addr = COPY_ADDR;
	s.at_entry = data[0] & 4;

	rc = ms_unwind(unw[data[0] % 3], &s, pcs, 1 + (data[0] >> 3) % MAX_PCS, &n);
	if (rc != 0 || n < 1 || n > 1 + (size_t)(data[0] >> 3) % MAX_PCS || pcs[0] != regs.rip) {
		fprintf(stderr, "fuzz_unwind: %s: rc %d, %zu pcs, pcs[0] %#llx, rip %#llx\n",
			ms_unwind_backend_name(ms_unwinder_backend(unw[data[0] % 3])), rc, n,
			(unsigned long long)pcs[0], (unsigned long long)regs.rip);
		abort();
	}
	if (compare && data[0] % 3 == 0) {
		struct ms_cfi_cache_stats st;
		uint64_t mismatches;

		ms_unwind_dwfl_cache_stats(unw[0], &st, &mismatches);
		if (mismatches) {
			fprintf(stderr, "fuzz_unwind: the CFI table and libdw gave different stacks "
					"(printed above by the verification)\n");
			abort();
		}
	}
	free((void *)s.data);
	return 0;
}
