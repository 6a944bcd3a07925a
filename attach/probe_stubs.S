/* SPDX-License-Identifier: MIT */
/*
 * The stub image copied into the target's injected region: one stub per
 * slot, the orig slots memspy fills with relocated entry bytes, and the
 * SIGTRAP handler. Position-independent: data is addressed RIP-relatively
 * at fixed offsets from the image start, and every branch target is local.
 *
 * Unsampled calls touch only rax, r11 and flags. In ring mode (the
 * default) a sampled call never stops: it writes the ring, and when it
 * cannot (ring full, thread unknown) the sample or free is counted as lost
 * and the call goes on. No int3 is reachable in ring mode: a thread that
 * blocks SIGTRAP would otherwise get it force-delivered by the kernel,
 * which resets the process's SIGTRAP action to SIG_DFL (and unblocks it in
 * that thread), and thread masks change without memspy seeing it
 * (jemalloc blocks every signal around pthread_create, whose TLS setup
 * calls calloc). Only exact mode and stop-per-sample (RING = 0) stop: such
 * a call pushes a 3-word trap frame {size, aux, flags} (odd count: the
 * real function sees the usual alignment), calls the real function,
 * inserts the result into the sampled-pointer table and, if still armed,
 * hits int3 with rax = the result. The instruction after every int3 is
 * valid code, so a thread that traps untraced (memspy died) runs on
 * through the `ret` SIGTRAP handler.
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
#define RING (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_RING)
#define EXACT (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_EXACT)
#define RING_HEAD (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_RING_HEAD)
#define DRAW_IDX (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_DRAW_IDX)
#define FREE_HEAD (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_FREE_HEAD)
#define DROPS (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_DROPS)
#define NOTHREAD (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_NOTHREAD)
#define FREE_DROPS (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_FREE_DROPS)
#define RELAY (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_RELAY)
#define STACK_CAP (.Limg + MS_STUB_CTRL_OFF + MS_CTRL_STACK_CAP)
#define THREADS (.Limg + MS_STUB_THR_OFF)
#define DRAWS (.Limg + MS_STUB_DRAW_OFF)
#define FRING (.Limg + MS_STUB_FRING_OFF)
#define HDRS (.Limg + MS_STUB_HDR_OFF)
#define DATA (.Limg + MS_STUB_DATA_OFF)
#define ORIGS (.Limg + MS_STUB_ORIG_OFF)
#define COUNTERS (.Limg + MS_STUB_CNT_OFF)
#define TABLE (.Limg + MS_STUB_TAB_OFF)
/*
 * Fibonacci hashing with the full 64-bit golden-ratio multiplier, top 10 bits.
 * An imm32 multiplier (sign-extended) is not enough: nearby pointers differ by
 * small d, d * K stays below bit 54, and they all land in one bucket (measured:
 * 3 full buckets, 4,647 failed inserts in a C++ run).
 */
#define HASHK 0x9E3779B97F4A7C15

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
	movabs r11, HASHK
	imul rax, r11
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
	movabs r11, HASHK
	imul rcx, r11
	shr rcx, 54
	shl ecx, 6
	lea r11, [rip + TABLE]
	add rcx, r11
	/* Already there (a nested probed call inserted it): one entry per block. */
	cmp [rcx], rdx
	je 7f
	.irp k, 8, 16, 24, 32, 40, 48, 56
	cmp [rcx + \k], rdx
	je 7f
	.endr
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

/*
 * Ring mode: records the free of rdi in the freed ring (claim a slot 0 -> 1,
 * stamp it with the slot and the TSC, publish the pointer). Clobbers rax, rdx, r11 and flags: none
 * carries an argument of free or realloc. A full ring counts the free as
 * lost (FREE_DROPS) and jumps to \full, which goes on without it: never a
 * trap (see the top of the file).
 */
.macro FRING_PUSH full, slot
	mov eax, 1
	lock xadd [rip + FREE_HEAD], rax
	and eax, MS_STUB_NFRING - 1
	shl eax, 4
	lea r11, [rip + FRING]
	add r11, rax
	mov edx, 1
	xor eax, eax
	lock cmpxchg [r11], rdx
	je 4f
	lock inc qword ptr [rip + FREE_DROPS]
	jmp \full
4:	rdtsc
	shl rdx, 32
	or rax, rdx
	shl rax, 8		/* {slot:8, tsc:56}: memspy names the function that freed */
	shr rax, 8
	mov rdx, \slot << 56
	or rax, rdx
	mov [r11 + 8], rax
	mov [r11], rdi
.endm

/* The armed check right before a trap: [guard, trap] is what removal skips. */
.macro GUARDED_TRAP i, skip
.Lguard_\i:
	cmp byte ptr [rip + ARMED], 0
	je \skip
.Ltrap_\i:
	int3
.endm

/* rax = the size argument of a stub of this kind. */
.macro SIZE_OF kind
	.if \kind == MS_SK_RDI
	mov rax, rdi
	.elseif \kind == MS_SK_CALLOC
	mov rax, rdi
	imul rax, rsi
	.elseif \kind == MS_SK_RSI || \kind == MS_SK_REALLOC
	mov rax, rsi
	.elseif \kind == MS_SK_PMEMALIGN
	mov rax, rdx
	.endif
.endm

/* Sampled in ring mode: hand over to the shared ring routine (r11 = countdown slot). */
.macro TO_RING i, kind
.Lring_\i:
	mov eax, (\kind << 8) | \i
	jmp .Lring_alloc
.endm

/* malloc-like: rax = size from the kind's argument registers. */
.macro ALLOC_STUB i, kind
.Lstub_\i:
	.if \kind == MS_SK_RSI || \kind == MS_SK_PMEMALIGN
	/* A small alignment that the allocator serves through its probed malloc: left to that probe. */
	cmp byte ptr [rip + RELAY + \i], 0
	je 0f
	.if \kind == MS_SK_RSI
	cmp rdi, MS_RELAY_ALIGN
	.else
	cmp rsi, MS_RELAY_ALIGN
	.endif
	jbe .Lorig_\i
0:
	.endif
	SLOT_ADDR
	SIZE_OF \kind
	sub [r11], rax
	js 1f
	/* Exact mode: every call; a huge size must not flip the countdown positive. */
	cmp byte ptr [rip + EXACT], 0
	jne 1f
	jmp .Lorig_\i
1:	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	cmp byte ptr [rip + RING], 0
	jne .Lring_\i
.Lstop_\i:
	SIZE_OF \kind
	push 2			/* flags: bit 1 = allocation sampled */
	push rdi		/* aux: memptr for posix_memalign */
	push rax		/* size */
	call .Lorig_\i
.Lret_\i:			/* on an inner call's stack: it is nested in this one */
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
	TO_RING \i, \kind
.endm

/* realloc: a hit on the old pointer is deleted before the real call. */
.macro REALLOC_STUB i
.Lstub_\i:
	test rdi, rdi
	jnz 0f
	/* realloc(NULL, n) that the allocator serves through its probed malloc: left to that probe. */
	cmp byte ptr [rip + RELAY + \i], 0
	jne .Lorig_\i
	jmp 6f
0:
	cmp byte ptr [rip + FREE_ALL], 0
	jne 7f
	PROBE_RDI 8f
	jmp 6f
8:	mov qword ptr [r11], 0
	cmp byte ptr [rip + RING], 0
	je 7f
	cmp byte ptr [rip + ARMED], 0
	je 6f
	FRING_PUSH 6f, \i	/* ring mode: the old block's free is recorded now (or lost) */
	jmp 6f
7:	SLOT_ADDR		/* old pointer freed; is the new block sampled too? */
	mov rax, rsi
	sub [r11], rax
	js 4f
	cmp byte ptr [rip + EXACT], 0
	jne 4f
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
	cmp byte ptr [rip + EXACT], 0
	jne 1f
	jmp .Lorig_\i
1:	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	cmp byte ptr [rip + RING], 0
	jne .Lring_\i
.Lstop_\i:
	push 2
5:	push rdi
	push rsi
	call .Lorig_\i
.Lret_\i:
	test byte ptr [rsp + 16], 2
	jz 3f
	INSERT
3:	GUARDED_TRAP \i, 2f
2:	add rsp, 24
	ret
	TO_RING \i, MS_SK_REALLOC
.endm

/* free-like: a hit traps with rdi = the pointer and rsp as at entry. */
.macro FREE_STUB i
.Lstub_\i:
.Lret_\i:			/* (no call: a placeholder for the table) */
	test rdi, rdi
	jz .Lorig_\i
	cmp byte ptr [rip + FREE_ALL], 0
	jne .Lguard_\i
	PROBE_RDI 8f
	jmp .Lorig_\i
8:	mov qword ptr [r11], 0	/* delete before the real free: the address can be reused at once */
	cmp byte ptr [rip + RING], 0
	je .Lguard_\i
	cmp byte ptr [rip + ARMED], 0
	je .Lorig_\i
	push rdx		/* a 3-argument delete passes its alignment in rdx */
	FRING_PUSH 3f, \i	/* full: counted as lost, no trap */
3:	pop rdx
	jmp .Lorig_\i
.Lstop_\i:
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

/*
 * Ring mode, sampled allocation. Entered by jmp with rax = kind << 8 | slot,
 * r11 = the countdown slot, every argument register intact and rsp as at
 * the function's entry. Copies the registers an unwinder needs and the top
 * of the caller's stack (clamped to the thread's stack, from the thread
 * table, and to the cap memspy keeps in the control page) into a claimed
 * ring slot, calls the real function, inserts the result into the
 * sampled-pointer table, and publishes the slot. No stop.
 * A thread memspy has not registered (NOTHREAD) or a full ring (DROPS)
 * loses the sample, counted, and the call goes on: no int3 (see the top of
 * the file). memspy registers every thread at its first ptrace stop, so
 * NOTHREAD only counts threads the table had no room for or that moved
 * their thread pointer.
 */
.Lring_alloc:
	push rbx
	push r12
	push rdi
	push rsi
	push rcx
	push rdx
	push rax		/* 7 pushes: the real function sees the usual alignment */
	/* [rsp] slot, +8 rdx, +16 rcx, +24 rsi, +32 rdi, +40 r12, +48 rbx; entry rsp = rsp+56 */
	mov rbx, r11
	mov eax, 1
	lock xadd [rip + DRAW_IDX], rax
	and eax, MS_STUB_NDRAW - 1
	lea rcx, [rip + DRAWS]
	mov rax, [rcx + rax * 8]
	mov [rbx], rax		/* next countdown: a pre-drawn exponential */
	mov rax, fs:[0]
	mov rcx, rax
	shr rcx, 12
	imul ecx, ecx, MS_THR_HASH_MUL	/* ms_thr_entry: the whole page number, hashed */
	shr ecx, 32 - MS_STUB_NTHR_BITS
	mov r12d, 8
1:	mov rdx, rcx
	shl rdx, 5
	lea r11, [rip + THREADS]
	add rdx, r11
	cmp [rdx], rax
	je 2f
	inc ecx
	and ecx, MS_STUB_NTHR - 1
	dec r12d
	jnz 1b
	lock inc qword ptr [rip + NOTHREAD]
	jmp .Lring_drop
2:	mov r12, [rdx + 8]	/* hi */
	mov rcx, [rdx + 16]	/* lo */
	mov eax, 1
	lock xadd [rip + RING_HEAD], rax
	mov r11, rax		/* the ticket: the slot's sequence number */
	and eax, MS_STUB_NHDR - 1
	shl eax, 8
	lea rbx, [rip + HDRS]
	add rbx, rax
	mov edx, 1
	xor eax, eax
	lock cmpxchg [rbx], rdx
	jne .Lring_full		/* memspy has not drained this slot yet: lost */
	mov [rbx + MS_H_SEQ], r11	/* memspy checks it against its window */
	rdtsc
	shl rdx, 32
	or rax, rdx
	mov [rbx + MS_H_TSC0], rax
	mov rdx, [rsp]
	mov [rbx + MS_H_SLOT], rdx
	mov rdx, [rsp + 48]
	mov [rbx + MS_H_RBX], rdx
	mov [rbx + MS_H_RBP], rbp
	mov rdx, [rsp + 40]
	mov [rbx + MS_H_R12], rdx
	mov [rbx + MS_H_R13], r13
	mov [rbx + MS_H_R14], r14
	mov [rbx + MS_H_R15], r15
	mov rdx, [rsp + 32]
	mov [rbx + MS_H_RDI], rdx
	mov rdx, [rsp + 24]
	mov [rbx + MS_H_RSI], rdx
	mov rdx, [rsp + 8]
	mov [rbx + MS_H_RDX], rdx
	mov rdx, fs:[0]
	mov [rbx + MS_H_TP], rdx
	lea rax, [rsp + 56]
	mov [rbx + MS_H_SP], rax
	/*
	 * The cap memspy set (the deepest its unwinder needs, plus a margin),
	 * recorded as read: memspy checks the length against it. 0, or a value
	 * the slot cannot hold, copies the whole DATA_SIZE.
	 */
	mov r11, [rip + STACK_CAP]
	mov [rbx + MS_H_CAP], r11
	lea rdx, [r11 - 1]
	cmp rdx, MS_STUB_DATA_SIZE
	jb 5f
	mov r11d, MS_STUB_DATA_SIZE
	/* len = lo <= sp < hi ? min(hi - sp, cap) : 0 */
5:	xor edx, edx
	cmp rax, rcx
	jb 3f
	cmp rax, r12
	jae 3f
	mov rdx, r12
	sub rdx, rax
	cmp rdx, r11
	jbe 3f
	mov rdx, r11
3:	mov [rbx + MS_H_LEN], rdx
	mov rsi, rax
	lea rax, [rip + HDRS]
	mov rdi, rbx
	sub rdi, rax
	shl rdi, 6		/* header index * 256 -> index * 16384 */
	lea rax, [rip + DATA]
	add rdi, rax
	mov rcx, rdx
	rep movsb
	rdtsc			/* the real function's own time is not sampling's cost */
	shl rdx, 32
	or rax, rdx
	mov [rbx + MS_H_CALL], rax
	mov rdi, [rsp + 32]
	mov rsi, [rsp + 24]
	mov rcx, [rsp + 16]
	mov rdx, [rsp + 8]
	movzx eax, byte ptr [rsp]
	shl eax, 6
	lea r11, [rip + ORIGS]
	add rax, r11
	call rax		/* the real function */
.Lring_ret:
	mov r12, rax		/* its return value */
	rdtsc
	shl rdx, 32
	or rax, rdx
	sub rax, [rbx + MS_H_CALL]
	mov [rbx + MS_H_CALL], rax	/* ticks inside the real function */
	mov rax, r12
	cmp byte ptr [rsp + 1], MS_SK_PMEMALIGN
	jne 4f
	xor eax, eax
	test r12d, r12d
	jnz 4f
	mov rax, [rsp + 32]
	mov rax, [rax]
4:	mov [rbx + MS_H_RES], rax
	INSERT
	mov [rbx + MS_H_FLAGS], r11
	rdtsc
	shl rdx, 32
	or rax, rdx
	mov [rbx + MS_H_TSC1], rax
	mov qword ptr [rbx + MS_H_STATE], 2	/* publish: a plain store is a release on x86 */
	mov rax, r12
	add rsp, 8
	pop rdx
	pop rcx
	pop rsi
	pop rdi
	pop r12
	pop rbx
	ret
.Lring_full:
	/* The ticket is counted as dropped: the drain's ledger needs every ticket. */
	lock inc qword ptr [rip + DROPS]
.Lring_drop:
	/* Lost sample: the real function, as on the unsampled path. */
	movzx eax, byte ptr [rsp]
	shl eax, 6
	lea r11, [rip + ORIGS]
	add r11, rax
	add rsp, 8
	pop rdx
	pop rcx
	pop rsi
	pop rdi
	pop r12
	pop rbx
	jmp r11

/*
 * Remote system call (attach/remote.c): memspy points a stopped thread here
 * with the call in rax and the argument registers, and rsp at a frame it
 * wrote 264 bytes below the thread's own rsp (under the 128-byte red zone):
 * {r15 r14 r13 r12 r11 r10 r9 r8 rbp rdi rsi rdx rcx rbx rax rflags rip}.
 * memspy normally puts the registers back itself at the syscall-exit stop;
 * were it to die at any instant, the detached thread runs on from here,
 * pops its own registers and returns to where it was: ret 128 leaves rsp at
 * frame + 136 + 128, the thread's rsp. No int3 or single-step: no SIGTRAP.
 */
.Lrsys:
	syscall
	pop r15
	pop r14
	pop r13
	pop r12
	pop r11
	pop r10
	pop r9
	pop r8
	pop rbp
	pop rdi
	pop rsi
	pop rdx
	pop rcx
	pop rbx
	pop rax
	popfq
	ret 128

/*
 * Page toucher (attach/probe_region.c, touch_ring): entered like .Lrsys,
 * through the same frame, with rdi = first byte, rsi = end, rdx = stride.
 * It rewrites one byte per stride with itself (atomically: the other
 * threads run, and their unarmed stubs update the countdown lines), then
 * makes the call in rax
 * (getpid) and returns through .Lrsys. Why the target's own code: on a VM
 * with shadow page tables only a write from the process's user mode maps a
 * page for good (a write by memspy, or a populating madvise, still leaves
 * a 4-10 us fault to the stub's first write into each slot). It sits
 * between .Lrsys and the signal handler: the watchdog lets a thread found
 * anywhere in that span run on until it has returned.
 */
.Ltouch:
	cmp rdi, rsi
	jae .Lrsys
	lock or byte ptr [rdi], 0	/* atomic: other threads' stubs run meanwhile */
	add rdi, rdx
	jmp .Ltouch

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
	.long .Lstop_\i - .Limg, .Lret_\i - .Limg
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
	.globl ms_stub_ring_ret
ms_stub_ring_ret:
	.long .Lring_ret - .Limg
	.globl ms_stub_sig_restorer
ms_stub_sig_restorer:
	.long .Lsig_restorer - .Limg
	.globl ms_stub_rsys
ms_stub_rsys:
	.long .Lrsys - .Limg
	.globl ms_stub_touch
ms_stub_touch:
	.long .Ltouch - .Limg

	.section .note.GNU-stack, "", @progbits
