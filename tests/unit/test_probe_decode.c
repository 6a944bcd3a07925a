// SPDX-License-Identifier: MIT
/*
 * Relocation of displaced entry instructions (attach/decode.c) on
 * hand-made sequences: glibc 2.36's own entries, rel8 branches widened,
 * RIP-relative operands re-based, and the sites that must be refused.
 */
#include "attach/probe_int.h"
#include "tests/lib/mstest.h"

#include <stdio.h>
#include <string.h>



static int32_t rd32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* The absolute target of the rel32 ending at code offset end, as run at dest. */
static ms_raddr_t target_of(const struct ms_reloc *r, ms_raddr_t dest, size_t end)
{
	return dest + end + (int64_t)rd32(r->code + end - 4);
}

static const ms_raddr_t ENTRY = 0x7f0000100000ull;
static const ms_raddr_t DEST = 0x7f0000000000ull; /* 1 MiB below */

static void test_verbatim(void)
{
	/* malloc: push r12; push rbp; push rbx; mov rbx,rdi; then more. */
	static const uint8_t b[] = {0x41, 0x54, 0x55, 0x53, 0x48, 0x89, 0xfb, 0x48,
				    0x83, 0xec, 0x10, 0x90, 0x90, 0x90, 0x90, 0x90};
	struct ms_reloc r;
	int rc = ms_decode_relocate(b, sizeof(b), ENTRY, DEST, 5, &r);

	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(r.displaced == 7, "displaced %zu", r.displaced);
	CHECK(r.n_insns == 4, "insns %u", r.n_insns);
	CHECK(r.len == 12, "len %zu", r.len);
	CHECK(memcmp(r.code, b, 7) == 0, "bytes differ");
	CHECK(r.code[7] == 0xe9, "no jmp back");
	CHECK(target_of(&r, DEST, 12) == ENTRY + 7, "jmp back to %#llx",
	      (unsigned long long)target_of(&r, DEST, 12));
}

static void test_jcc_rel32(void)
{
	/* free: test rdi,rdi; je free+0xc8 (rel32). */
	static const uint8_t b[] = {0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0x00, 0x00,
				    0x00, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	struct ms_reloc r;
	int rc = ms_decode_relocate(b, sizeof(b), ENTRY, DEST, 5, &r);

	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(r.displaced == 9, "displaced %zu", r.displaced);
	CHECK(r.code[3] == 0x0f && r.code[4] == 0x84, "je not kept: %02x %02x", r.code[3],
	      r.code[4]);
	CHECK(target_of(&r, DEST, 9) == ENTRY + 0xc8, "je -> %#llx",
	      (unsigned long long)target_of(&r, DEST, 9));
	CHECK(target_of(&r, DEST, 14) == ENTRY + 9, "jmp back");
}

static void test_jcc_rel8_widened(void)
{
	/* xor eax,eax; jne +0x20; nop: jne rel8 becomes 0f 85 rel32. */
	static const uint8_t b[] = {0x31, 0xc0, 0x75, 0x20, 0x90, 0x90, 0x90, 0x90,
				    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	struct ms_reloc r;
	int rc = ms_decode_relocate(b, sizeof(b), ENTRY, DEST, 5, &r);

	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(r.displaced == 5, "displaced %zu", r.displaced);
	CHECK(r.len == 2 + 6 + 1 + 5, "len %zu", r.len);
	CHECK(r.code[2] == 0x0f && r.code[3] == 0x85, "jne not widened: %02x %02x", r.code[2],
	      r.code[3]);
	CHECK(target_of(&r, DEST, 8) == ENTRY + 4 + 0x20, "jne -> %#llx",
	      (unsigned long long)target_of(&r, DEST, 8));
	CHECK(target_of(&r, DEST, 14) == ENTRY + 5, "jmp back");
}

static void test_rip_relative(void)
{
	/* posix_memalign in glibc 2.36: cmpb $0x0, disp32(%rip); then push. */
	static const uint8_t b[] = {0x80, 0x3d, 0x11, 0x22, 0x33, 0x00, 0x00, 0x41,
				    0x54, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	struct ms_reloc r;
	int rc = ms_decode_relocate(b, sizeof(b), ENTRY, DEST, 5, &r);
	ms_raddr_t want = ENTRY + 7 + 0x332211;

	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(r.displaced == 7, "displaced %zu", r.displaced);
	CHECK(r.code[0] == 0x80 && r.code[1] == 0x3d && r.code[6] == 0x00, "opcode changed");
	CHECK(DEST + 7 + rd32(r.code + 2) == want, "rip target %#llx want %#llx",
	      (unsigned long long)(DEST + 7 + rd32(r.code + 2)), (unsigned long long)want);

	/* lea rax,[rip+0x10] (48 8d 05 disp32) as the second instruction. */
	static const uint8_t c[] = {0x53, 0x48, 0x8d, 0x05, 0x10, 0x00, 0x00, 0x00,
				    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	rc = ms_decode_relocate(c, sizeof(c), ENTRY, DEST, 5, &r);
	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(DEST + 8 + rd32(r.code + 4) == ENTRY + 8 + 0x10, "lea target");
}

static void test_call_and_jmp(void)
{
	/* call rel32 then jmp rel8 as the last displaced instruction. */
	static const uint8_t b[] = {0xe8, 0x00, 0x01, 0x00, 0x00, 0xeb, 0x10, 0x90,
				    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	struct ms_reloc r;
	int rc = ms_decode_relocate(b, sizeof(b), ENTRY, DEST, 5, &r);

	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(r.displaced == 5, "displaced %zu", r.displaced);
	CHECK(r.code[0] == 0xe8 && target_of(&r, DEST, 5) == ENTRY + 5 + 0x100, "call target");

	static const uint8_t c[] = {0x90, 0x90, 0x90, 0xeb, 0x10, 0x90, 0x90, 0x90,
				    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	rc = ms_decode_relocate(c, sizeof(c), ENTRY, DEST, 5, &r);
	CHECK(rc == 0, "rc %d (%s)", rc, r.why);
	CHECK(r.code[3] == 0xe9 && target_of(&r, DEST, 8) == ENTRY + 5 + 0x10, "jmp widened");
}

static void test_refusals(void)
{
	struct ms_reloc r;
	int rc;
	static const uint8_t loop[] = {0x90, 0xe2, 0x10, 0x90, 0x90, 0x90, 0x90, 0x90,
				       0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	static const uint8_t jrcxz[] = {0xe3, 0x10, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
					0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	/* nop; nop; jne entry+1: a branch back into the displaced bytes. */
	static const uint8_t back[] = {0x90, 0x90, 0x75, 0xfd, 0x90, 0x90, 0x90, 0x90,
				       0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	static const uint8_t shortfn[] = {0x31, 0xc0, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
					  0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc};
	static const uint8_t early_jmp[] = {0xeb, 0x10, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
					    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	static const uint8_t ripfar[] = {0x80, 0x3d, 0x11, 0x22, 0x33, 0x00, 0x00, 0x90,
					 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	static const uint8_t garbage[] = {0x0f, 0xff};

	rc = ms_decode_relocate(loop, sizeof(loop), ENTRY, DEST, 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED && strstr(r.why, "loop"), "loop: %d %s", rc, r.why);
	rc = ms_decode_relocate(jrcxz, sizeof(jrcxz), ENTRY, DEST, 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED && strstr(r.why, "jrcxz"), "jrcxz: %d %s", rc, r.why);
	rc = ms_decode_relocate(back, sizeof(back), ENTRY, DEST, 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED && strstr(r.why, "back into"), "back: %d %s", rc, r.why);
	rc = ms_decode_relocate(shortfn, sizeof(shortfn), ENTRY, DEST, 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED && strstr(r.why, "shorter"), "short: %d %s", rc, r.why);
	rc = ms_decode_relocate(early_jmp, sizeof(early_jmp), ENTRY, DEST, 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED, "early jmp: %d %s", rc, r.why);
	/* 3 GiB away: neither the RIP operand nor the jmp back reaches. */
	rc = ms_decode_relocate(ripfar, sizeof(ripfar), ENTRY, ENTRY + (3ull << 30), 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED && strstr(r.why, "reach"), "far: %d %s", rc, r.why);
	rc = ms_decode_relocate(garbage, sizeof(garbage), ENTRY, DEST, 5, &r);
	CHECK(rc == -MS_E_UNSUPPORTED, "garbage: %d %s", rc, r.why);
}

static void test_sweep(void)
{
	/* At 0x1000: nop x4; jmp +? into 0x1021; je into 0x1041; call 0x1040 (allowed: start). */
	uint8_t t[0x60];
	struct ms_range rg[2] = {{.lo = 0x1021, .hi = 0x1028}, {.lo = 0x1041, .hi = 0x1048}};
	size_t hits;

	memset(t, 0x90, sizeof(t));
	t[4] = 0xeb; /* jmp rel8 at 0x1004 -> 0x1006 + 0x1b = 0x1021 */
	t[5] = 0x1b;
	t[6] = 0xe8; /* call rel32 at 0x1006 -> 0x100b + 0x35 = 0x1040 (entry itself: fine) */
	t[7] = 0x35;
	t[8] = t[9] = t[10] = 0;
	hits = ms_decode_sweep(t, sizeof(t), 0x1000, rg, 2);
	CHECK(hits == 1, "hits %zu", hits);
	CHECK(rg[0].hit_from == 0x1004 && rg[0].hit_to == 0x1021, "from %#llx to %#llx",
	      (unsigned long long)rg[0].hit_from, (unsigned long long)rg[0].hit_to);
	CHECK(rg[1].hit_from == 0, "range 2 hit from %#llx", (unsigned long long)rg[1].hit_from);

	t[0x20] = 0x0f; /* je rel32 at 0x1020 -> 0x1026 + 0x1b = 0x1041 */
	t[0x21] = 0x84;
	t[0x22] = 0x1b;
	t[0x23] = t[0x24] = t[0x25] = 0;
	rg[0].hit_from = rg[1].hit_from = 0;
	hits = ms_decode_sweep(t, sizeof(t), 0x1000, rg, 2);
	CHECK(hits == 2 && rg[1].hit_from == 0x1020, "hits %zu from %#llx", hits,
	      (unsigned long long)rg[1].hit_from);
}

static void test_flow(void)
{
	/* A PLT stub: endbr64; bnd jmp *0x1234(%rip). */
	static const uint8_t plt[] = {0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, 0x34,
				      0x12, 0x00, 0x00, 0x0f, 0x1f, 0x44, 0x00, 0x00};
	/* operator new(size_t) in GCC 12's libstdc++: ...; call malloc@plt. */
	static const uint8_t call[] = {0xe8, 0x64, 0x08, 0xff, 0xff, 0x90, 0x90, 0x90};
	static const uint8_t ret[] = {0xc3, 0x90};
	size_t len;
	enum ms_flow f;
	ms_raddr_t t;

	CHECK(ms_decode_flow(plt, sizeof(plt), 0x1000, &len, &f, &t) == 0 && len == 4 &&
		  f == MS_FLOW_NONE,
	      "endbr64: len %zu flow %d", len, (int)f);
	CHECK(ms_decode_flow(plt + 4, sizeof(plt) - 4, 0x1004, &len, &f, &t) == 0 && len == 7 &&
		  f == MS_FLOW_JMP_MEM && t == 0x1004 + 7 + 0x1234,
	      "plt jmp: len %zu flow %d slot %#llx", len, (int)f, (unsigned long long)t);
	CHECK(ms_decode_flow(call, sizeof(call), 0xa9587, &len, &f, &t) == 0 && f == MS_FLOW_CALL &&
		  t == 0x99df0,
	      "call: flow %d target %#llx", (int)f, (unsigned long long)t);
	CHECK(ms_decode_flow(ret, sizeof(ret), 0, &len, &f, &t) == 0 && f == MS_FLOW_END, "ret");
}

int main(void)
{
	test_flow();
	test_verbatim();
	test_jcc_rel32();
	test_jcc_rel8_widened();
	test_rip_relative();
	test_call_and_jmp();
	test_refusals();
	test_sweep();
	return ms_test_result("test_probe_decode");
}
