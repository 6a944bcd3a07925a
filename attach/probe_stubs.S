/* SPDX-License-Identifier: MIT */
/*
 * The stub image copied into the target's injected region: one stub per
 * slot, the orig slots memspy fills with relocated entry bytes, and the
 * SIGTRAP handler. Position-independent: data is addressed RIP-relatively
 * at fixed offsets from the image start, and every branch target is local.
 *
 * Unsampled calls touch only rax, r11 and flags. A sampled call pushes a
 * 3-word trap frame {size, aux, flags} (odd count: the real function sees
 * the usual alignment), calls the real function, inserts the result into
 * the sampled-pointer table and, if still armed, hits int3 with rax = the
 * result. The instruction after every int3 is valid code, so a thread that
 * traps untraced (memspy died) runs on through the `ret` SIGTRAP handler.
 */
#include "attach/probe_int.h"

	.intel_syntax noprefix
	.section .rodata.ms_stub_image, "a"
	.globl ms_stub_image
	.p2align 6
ms_stub_image:
.Limg:

#define ARMED (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_ARMED)
#define FREE_ALL (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_FREE_ALL)
#define TRACK (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_TRACK)
#define TABFULL (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_TABFULL)
#define COUNTERS (.Limg + MS_STUB_CNT_OFF)
#define TABLE (.Limg + MS_STUB_TAB_OFF)
/* Fibonacci-style multiplier, sign-extended imm32 (GAS rejects 0x9E3779B1 here). */
#define HASHK (-0x61C8864F)

/* r11 = &countdown[(rsp >> 23) & 63]: threads on separate 8 MiB stacks use separate lines. */
.macro SLOT_ADDR
	mov r11, rsp
	shr r11, 23
	and r11d, 63
	shl r11d, 6
	lea rax, [rip + COUNTERS]
	add r11, rax
.endm

/* r11 = &bucket(rdi); clobbers rax. */
.macro HASH_RDI
	mov rax, rdi
	shr rax, 4
	imul rax, rax, HASHK
	shr rax, 54
	shl eax, 6
	lea r11, [rip + TABLE]
	add r11, rax
.endm

/* Looks rdi up in its bucket; jumps to \hit with r11 = &way, falls through on a miss. */
.macro PROBE_RDI hit
	HASH_RDI
	cmp [r11], rdi
	je \hit
	.irp k, 1, 2, 3, 4, 5, 6, 7
	add r11, 8
	cmp [r11], rdi
	je \hit
	.endr
.endm

/*
 * Inserts rax (a returned pointer) into the table when tracking is on.
 * Preserves rax; r11 = 1 if inserted, else 0. Clobbers flags only.
 */
.macro INSERT
	xor r11d, r11d
	cmp byte ptr [rip + TRACK], 0
	je 9f
	test rax, rax
	jz 9f
	push rcx
	push rdx
	mov rdx, rax
	mov rcx, rax
	shr rcx, 4
	imul rcx, rcx, HASHK
	shr rcx, 54
	shl ecx, 6
	lea r11, [rip + TABLE]
	add rcx, r11
	mov r11d, 8
8:	xor eax, eax
	lock cmpxchg [rcx], rdx
	je 7f
	add rcx, 8
	dec r11d
	jnz 8b
	lock inc qword ptr [rip + TABFULL]
	jmp 6f
7:	mov r11d, 1
6:	mov rax, rdx
	pop rdx
	pop rcx
9:
.endm

/* The armed check right before a trap: [guard, trap] is what removal skips. */
.macro GUARDED_TRAP i, skip
.Lguard_\i:
	cmp byte ptr [rip + ARMED], 0
	je \skip
.Ltrap_\i:
	int3
.endm

/* malloc-like: rax = size from the kind's argument registers. */
.macro ALLOC_STUB i, kind
.Lstub_\i:
	SLOT_ADDR
	.if \kind == MS_SK_RDI
	mov rax, rdi
	.elseif \kind == MS_SK_CALLOC
	mov rax, rdi
	imul rax, rsi
	.elseif \kind == MS_SK_RSI
	mov rax, rsi
	.elseif \kind == MS_SK_PMEMALIGN
	mov rax, rdx
	.endif
	sub [r11], rax
	js 1f
	jmp .Lorig_\i
1:	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	push 2			/* flags: bit 1 = allocation sampled */
	push rdi		/* aux: memptr for posix_memalign */
	push rax		/* size */
	call .Lorig_\i
	.if \kind == MS_SK_PMEMALIGN
	push rax		/* the return code; the pointer goes to rax */
	xor eax, eax
	cmp dword ptr [rsp], 0
	jne 3f
	mov rax, [rsp + 16]
	mov rax, [rax]
3:	INSERT
	GUARDED_TRAP \i, 2f
2:	pop rax
	add rsp, 24
	ret
	.else
	INSERT
	GUARDED_TRAP \i, 2f
2:	add rsp, 24
	ret
	.endif
.endm

/* realloc: a hit on the old pointer is deleted before the real call. */
.macro REALLOC_STUB i
.Lstub_\i:
	test rdi, rdi
	jz 6f
	cmp byte ptr [rip + FREE_ALL], 0
	jne 7f
	PROBE_RDI 8f
	jmp 6f
8:	mov qword ptr [r11], 0
7:	SLOT_ADDR		/* old pointer freed; is the new block sampled too? */
	mov rax, rsi
	sub [r11], rax
	js 4f
	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	push 1			/* bit 0: old pointer was tracked */
	jmp 5f
4:	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	push 3
	jmp 5f
6:	SLOT_ADDR
	mov rax, rsi
	sub [r11], rax
	js 1f
	jmp .Lorig_\i
1:	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	push 2
5:	push rdi
	push rsi
	call .Lorig_\i
	test byte ptr [rsp + 16], 2
	jz 3f
	INSERT
3:	GUARDED_TRAP \i, 2f
2:	add rsp, 24
	ret
.endm

/* free-like: a hit traps with rdi = the pointer and rsp as at entry. */
.macro FREE_STUB i
.Lstub_\i:
	test rdi, rdi
	jz .Lorig_\i
	cmp byte ptr [rip + FREE_ALL], 0
	jne .Lguard_\i
	PROBE_RDI 8f
	jmp .Lorig_\i
8:	mov qword ptr [r11], 0	/* delete before the real free: the address can be reused at once */
	GUARDED_TRAP \i, .Lorig_\i
	jmp .Lorig_\i
.endm

/* Slot kinds; keep in step with ms_stub_desc below. */
	.irp i, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
	ALLOC_STUB \i, MS_SK_RDI
	.endr
	.irp i, 12, 13
	ALLOC_STUB \i, MS_SK_CALLOC
	.endr
	.irp i, 14, 15
	REALLOC_STUB \i
	.endr
	.irp i, 16, 17, 18, 19
	ALLOC_STUB \i, MS_SK_RSI
	.endr
	.irp i, 20, 21
	ALLOC_STUB \i, MS_SK_PMEMALIGN
	.endr
	.irp i, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
	FREE_STUB \i
	.endr

/* SIGTRAP while untraced (memspy died mid-sample): ignore it, go on after the int3. */
.Lsig_handler:
	ret
.Lsig_restorer:
	mov eax, 15		/* rt_sigreturn */
	syscall
	int3

	/* .org fails the build ("move .org backwards") if the stubs outgrow their page. */
	.org .Limg + MS_STUB_ORIG_OFF, 0xcc
	.irp i, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
.Lorig_\i:
	.fill MS_STUB_ORIG_SIZE, 1, 0xcc
	.endr
	.org .Limg + MS_STUB_CODE_SIZE, 0xcc

	.section .rodata.ms_stub_desc, "a"
	.p2align 3
	.globl ms_stub_desc
ms_stub_desc:
.macro DESC i, kind
	.long .Lstub_\i - .Limg, .Lorig_\i - .Limg, .Lguard_\i - .Limg, .Ltrap_\i - .Limg, \kind
.endm
	.irp i, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
	DESC \i, MS_SK_RDI
	.endr
	DESC 12, MS_SK_CALLOC
	DESC 13, MS_SK_CALLOC
	DESC 14, MS_SK_REALLOC
	DESC 15, MS_SK_REALLOC
	.irp i, 16, 17, 18, 19
	DESC \i, MS_SK_RSI
	.endr
	DESC 20, MS_SK_PMEMALIGN
	DESC 21, MS_SK_PMEMALIGN
	.irp i, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
	DESC \i, MS_SK_FREE
	.endr
	.globl ms_stub_sig_handler
ms_stub_sig_handler:
	.long .Lsig_handler - .Limg
	.globl ms_stub_sig_restorer
ms_stub_sig_restorer:
	.long .Lsig_restorer - .Limg

	.section .note.GNU-stack, "", @progbits
