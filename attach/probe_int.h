/* SPDX-License-Identifier: MIT */
/*
 * attach/probe internals: relocation of the instructions a probe displaces
 * (decode.c, over Zydis), the branch sweep, and the layout of the injected
 * stub image (probe_stubs.S). Not part of the public API.
 */
#ifndef MEMSPY_PROBE_INT_H
#define MEMSPY_PROBE_INT_H

/* Both the install's remote madvise (probe_region.c) and memspy's own (probe_patch.c). */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * Layout of one injected region (offsets from its start). Shared with
 * probe_stubs.S, which refers to the data pages RIP-relatively.
 */
#define MS_STUB_CODE_SIZE   0x4000 /* code pages (RX): stubs, then the orig slots */
#define MS_STUB_ORIG_OFF    0x3000 /* orig slot i at ORIG_OFF + i * ORIG_SIZE */
#define MS_STUB_ORIG_SIZE   64
#define MS_STUB_NSLOTS	    32
#define MS_STUB_MANIFEST_OFF 0x3800 /* the region's manifest (struct ms_stub_manifest) */
#define MS_STUB_CTRL_OFF    0x4000 /* control page (RW, wiped on fork) */
#define MS_CTRL_ARMED	    0	   /* u8: stubs may sample */
#define MS_CTRL_FREE_ALL    1	   /* u8: every free/realloc of a non-NULL pointer traps */
#define MS_CTRL_TRACK	    2	   /* u8: stubs insert sampled pointers into the table */
#define MS_CTRL_RING	    3	   /* u8: sampled calls go to the ring, not int3 */
#define MS_CTRL_EXACT	    4	   /* u8: every call is sampled, whatever its size */
#define MS_CTRL_TABFULL	    8	   /* u64: inserts that found their bucket full */
/*
 * The layout signature, checked at every drain: the target can write any
 * byte of these pages, and a drain that finds another value stops
 * believing them (see "Tamper checks" in doc/INTERNALS.md).
 */
#define MS_CTRL_MAGIC	    0x10   /* u64: MS_RING_MAGIC */
#define MS_CTRL_TAG	    0x18   /* u64: this install's nonce ^ the region's base */
#define MS_RING_MAGIC	    0x31527970736d656dull /* "memspyR1" */
#define MS_CTRL_SIGACT_NEW  0x40   /* struct kernel_sigaction passed to rt_sigaction */
#define MS_CTRL_SIGACT_OLD  0x80   /* the target's previous SIGTRAP action */
#define MS_CTRL_SIGACT_CUR  0xc0   /* scratch: the action found by a reclaim (probe_watchdog.c) */
#define MS_CTRL_RING_HEAD   0x100  /* u64 counters of the ring mode, each its own word */
#define MS_CTRL_DRAW_IDX    0x108
#define MS_CTRL_FREE_HEAD   0x110
#define MS_CTRL_DROPS	    0x118 /* samples that found the ring full: lost (no stop) */
#define MS_CTRL_NOTHREAD    0x120  /* samples of threads not in the thread table: lost */
#define MS_CTRL_FREE_DROPS  0x128  /* frees that found the freed ring full: lost */
/*
 * u64: the most bytes of stack a sample copies, written by memspy from what
 * its unwinder reads (probe_ring.c, "The stack cap"); 0 (install) or a value
 * outside [1, MS_STUB_DATA_SIZE]: MS_STUB_DATA_SIZE.
 */
#define MS_CTRL_STACK_CAP   0x130
/*
 * u8 per stub slot: the probed function hands small requests to its own
 * module's probed malloc (glibc: posix_memalign, memalign and aligned_alloc
 * with an alignment <= MS_RELAY_ALIGN, realloc(NULL, n)). Such a call is
 * left to the malloc probe alone: charging the countdown in both would
 * sample it twice as often, and in sampled mode only the inner call would
 * show which frames were the allocator's.
 */
#define MS_CTRL_RELAY	    0x140
#define MS_RELAY_ALIGN	    16 /* glibc's MALLOC_ALIGNMENT on x86-64 */
#define MS_STUB_CNT_OFF	    0x5000 /* 64 countdown slots, one cache line each */
#define MS_STUB_NCNT	    64
#define MS_STUB_TAB_OFF	    0x6000 /* sampled-pointer table: 1024 buckets x 8 ways */
#define MS_STUB_TAB_BUCKETS 1024
#define MS_STUB_TAB_WAYS    8 /* probe_stubs.S: PROBE_RDI, INSERT */
#define MS_STUB_THR_OFF	    0x16000 /* thread table: 1024 x {tp, hi, lo, tid} */
#define MS_STUB_NTHR	    1024 /* JVM services run hundreds of threads */
#define MS_STUB_NTHR_BITS   10 /* log2(MS_STUB_NTHR) */
/*
 * A thread's first entry in the table: (tp >> 12) * 2654435761 (32-bit), top
 * MS_STUB_NTHR_BITS bits; then up to 7 entries after it. Hashing the whole
 * page number matters: the JVM makes its threads' stacks exactly 1 MiB with
 * no guard page, so their thread pointers share bits 12-19 and indexing by
 * those bits put them all on one entry (8 found room, the rest lost every
 * sample). probe_stubs.S computes the same.
 */
#define MS_THR_HASH_MUL	    0x9E3779B1 /* 2654435761 */
#define MS_STUB_DRAW_OFF    0x1e000 /* 4096 pre-drawn countdowns */
#define MS_STUB_NDRAW	    4096
#define MS_STUB_FRING_OFF   0x26000 /* freed ring: 4096 x {ptr (0 free, 1 writing), tsc} */
#define MS_STUB_NFRING	    4096
#define MS_STUB_HDR_OFF	    0x36000 /* sample ring: 256 headers of 256 bytes */
#define MS_STUB_NHDR	    256
#define MS_STUB_HDR_SIZE    256
#define MS_STUB_DATA_OFF    0x46000 /* 256 stack copies of up to 16 KiB */
#define MS_STUB_DATA_SIZE   16384
#define MS_STUB_REGION_SIZE 0x446000
/*
 * [SHARED_OFF, REGION_SIZE): the draws and the rings, which only an armed
 * stub touches. In ring mode a memfd mapped both in the target and in
 * memspy (probe_region.c) when the kernel allows, so that the drain reads
 * them with no system call; the pages below stay private and wiped on fork.
 */
#define MS_STUB_SHARED_OFF  MS_STUB_DRAW_OFF
#define MS_STUB_SHARED_SIZE (MS_STUB_REGION_SIZE - MS_STUB_SHARED_OFF)

/* Stack caps are whole multiples of this (64 of them up to MS_STUB_DATA_SIZE). */
#define MS_CAP_STEP 256
#define MS_CAP_LEARN 32 /* samples copied whole before the cap is learned (probe_ring.c) */

/* A sample header (offsets). state: 0 free, 1 being written, 2 published. */
#define MS_H_STATE 0
#define MS_H_SLOT  8 /* kind << 8 | stub slot */
#define MS_H_TSC0  16
#define MS_H_TSC1  24
#define MS_H_SP	   32 /* rsp at the entry: -> the caller's return address */
#define MS_H_RBX   40
#define MS_H_RBP   48
#define MS_H_R12   56
#define MS_H_R13   64
#define MS_H_R14   72
#define MS_H_R15   80
#define MS_H_RDI   88
#define MS_H_RSI   96
#define MS_H_RDX   104
#define MS_H_RES   112 /* the returned pointer (posix_memalign: *memptr, or 0) */
#define MS_H_LEN   120 /* bytes of stack copied */
#define MS_H_FLAGS 128 /* bit 0: inserted into the table */
#define MS_H_TP	   136
#define MS_H_CALL  144 /* ticks spent in the real function (excluded from the cost) */
#define MS_H_SEQ   152 /* the ticket the slot was claimed with: slot = SEQ % NHDR */
#define MS_H_CAP   160 /* MS_CTRL_STACK_CAP as the stub read it: LEN = min(hi - SP, cap) */

/* Stub kinds, by slot: what the size argument is and what the trap frame holds. */
#define MS_SK_RDI	0 /* size in rdi (malloc, valloc, pvalloc, custom) */
#define MS_SK_CALLOC	1 /* rdi * rsi */
#define MS_SK_REALLOC	2 /* old pointer rdi, size rsi */
#define MS_SK_RSI	3 /* size in rsi (aligned_alloc, memalign) */
#define MS_SK_PMEMALIGN 4 /* posix_memalign(memptr rdi, align rsi, size rdx) */
#define MS_SK_FREE	5 /* pointer in rdi */

#ifndef __ASSEMBLER__
#include "attach/attach.h"
#include "attach/attach_int.h"

/* One slot of the stub image (offsets from the region start). */
struct ms_stub_desc {
	uint32_t stub;	/* where the entry's jmp goes */
	uint32_t orig;	/* relocated entry bytes + jmp back */
	uint32_t guard; /* [guard, trap]: a thread here would still trap after disarming */
	uint32_t trap;	/* the int3 */
	uint32_t kind;	/* MS_SK_* */
	uint32_t stop;	/* the int3 path (exact and stop-per-sample modes only) */
	uint32_t ret;	/* after its call of the real function: marks nested calls */
};
extern const uint8_t ms_stub_image[]; /* MS_STUB_CODE_SIZE bytes */
extern const struct ms_stub_desc ms_stub_desc[MS_STUB_NSLOTS];
extern const uint32_t ms_stub_sig_handler;  /* offset of the SIGTRAP handler (`ret`) */
extern const uint32_t ms_stub_sig_restorer; /* offset of `mov eax,15; syscall` */
extern const uint32_t ms_stub_ring_ret;	    /* after the ring routine's call */
extern const uint32_t ms_stub_rsys;	    /* the self-restoring remote-syscall trampoline */
extern const uint32_t ms_stub_touch;	    /* the page toucher (ends in the trampoline) */

/*
 * The manifest: what a region's memspy changed in the target, kept in the
 * region's code page (RX, written through /proc/PID/mem; not wiped on fork,
 * unlike the data pages, so a forked child holds it too). Written before the
 * SIGTRAP action is replaced and before any entry is patched, so that
 * whatever moment memspy dies at, its watchdog or a later memspy can put the
 * target back (probe_watchdog.c). Trusted only with its signature, version
 * and checksum; the signature is cleared once everything it lists is back.
 */
#define MS_MANIFEST_SIG	    "memspy-probes-1" /* 16 bytes with its NUL */
#define MS_MANIFEST_VERSION 1u
#define MS_MANIFEST_SITES   MS_STUB_NSLOTS

/* The kernel's struct sigaction on x86-64 (what rt_sigaction reads). */
struct ms_ksigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

struct ms_stub_manifest {
	char sig[16];
	uint32_t version;
	uint32_t nsites;
	uint64_t nonce;	     /* per install: the watchdog only takes its own regions */
	int32_t memspy_pid;  /* the memspy that wrote it, in its own pid namespace */
	int32_t target_pid;  /* the process it was written in (a forked child has another) */
	uint64_t our_handler; /* memspy's `ret` SIGTRAP handler (in the first region) */
	struct ms_ksigaction sigact_old; /* the target's SIGTRAP action before memspy */
	struct {
		uint64_t entry;	  /* the patched entry point */
		uint64_t stub;	  /* where its jmp goes: patched = `jmp stub` at entry */
		uint8_t orig[8];  /* its first bytes before patching (PATCH_LEN used) */
	} site[MS_MANIFEST_SITES];
	uint64_t sum; /* FNV-1a of every byte before it */
};

/* The checksum a manifest must carry. */
uint64_t ms_manifest_sum(const struct ms_stub_manifest *m);

/* What ms_probe_reclaim found and did. */
struct ms_reclaim {
	size_t nregions;     /* regions with a valid manifest */
	pid_t memspy_pid;    /* the memspy that left the first of them */
	pid_t written_in;    /* the process it probed: another one for a forked child */
	size_t restored;     /* entry points put back */
	size_t left;	     /* entry points left patched (a thread inside, or a write failed) */
	bool handler_found;  /* memspy's `ret` handler was the SIGTRAP action */
	bool handler_restored; /* ... and the target's own action is back */
	const char *why_left; /* why the handler or an entry stayed (static text), or NULL */
};

/*
 * Puts back what memspies that are gone left in p, whose threads must all be
 * stopped by the caller: disarms their stubs, moves any thread out of the
 * stretch before a stub's int3, restores every entry point that still holds
 * the manifest's jmp, lets any SIGTRAP already queued be taken while traced,
 * and then restores the target's SIGTRAP action if it is still memspy's
 * handler. Only the regions at bases (n > 0, whose manifest carries nonce)
 * or, with n = 0, every region with a valid manifest in p's maps. Leaves
 * every thread stopped. 0 (out says what was done; nregions 0 = nothing
 * found) or a negative code.
 */
int ms_probe_reclaim(struct ms_proc *p, const ms_raddr_t *bases, size_t n, uint64_t nonce,
		     struct ms_reclaim *out);

/* Regions with a valid manifest in pid's maps (read without a stop). */
size_t ms_probe_leftovers(pid_t pid);

/*
 * The watchdog, a dead man's helper (deadman.c), started before the target
 * is stopped and told each region once its manifest is written. If memspy
 * dies (even by SIGKILL) it clears each `armed` byte at once, then seizes
 * the target as soon as the dead memspy's ptrace links are gone and runs
 * ms_probe_reclaim on its own regions. start: 0 or -errno (wd->fd = -1
 * then, and nothing runs).
 */
int ms_probe_watchdog_start(pid_t target, uint64_t nonce, struct ms_deadman *wd);
void ms_probe_watchdog_add(const struct ms_deadman *wd, ms_raddr_t region);
/* memspy's last word: it is alive and done; the watchdog exits and is reaped. */
void ms_probe_watchdog_stop(struct ms_deadman *wd);

/*
 * The ring drain's access to the target's memory, for the fuzzer
 * (tests/fuzz/fuzz_ring.c): NULL in struct ms_probes means
 * process_vm_readv/writev on the target.
 */
struct iovec;
struct ms_ring_io {
	ssize_t (*readv)(void *ctx, const struct iovec *l, size_t nl, const struct iovec *r,
			 size_t nr);
	ssize_t (*writev)(void *ctx, const struct iovec *l, size_t nl, const struct iovec *r,
			  size_t nr);
	void *ctx;
};

/*
 * Fuzzing only (built with MEMSPY_FUZZ_RING): a probe engine with one
 * ring-mode region at base, stubs planned for malloc, calloc, realloc and
 * free in its slots, and the threads {tp, lo, hi} entered, whose memory is
 * io. Drains run against it with ms_probes_poll.
 */
struct ms_probes *ms_probes_fuzz_new(const struct ms_ring_io *io, ms_raddr_t base,
				     uint64_t nonce, const uint64_t (*threads)[3], size_t nthreads);
/*
 * ...and its region's shared part (MS_STUB_SHARED_OFF on) read and written
 * at view with memcpy, as a MEMSPY_SHARED_RING memfd mapping is.
 */
void ms_probes_fuzz_share(struct ms_probes *pr, uint8_t *view);
void ms_probes_fuzz_free(struct ms_probes *pr);

/* Bytes below a thread's rsp at which remote.c writes the trampoline's frame. */
#define MS_RSYS_FRAME_GAP 264

/* ============================ relocation (decode.c) ============================ */

#define MS_RELOC_MAX 64 /* relocated bytes + the jmp back must fit one orig slot */

struct ms_reloc {
	uint8_t code[MS_RELOC_MAX]; /* relocated instructions, then `jmp entry+displaced` */
	size_t len;		    /* bytes used in code */
	size_t displaced;	    /* bytes taken from the entry (>= min_len) */
	unsigned n_insns;	    /* instructions displaced */
	char why[160];		    /* why the site was refused */
};

/*
 * Decodes the instructions at entry (bytes: a copy of its text, avail
 * bytes) until at least min_len bytes are covered, and re-encodes them to
 * run at dest followed by `jmp entry+N`: jcc -> jcc rel32, jmp/call rel ->
 * rel32, RIP-relative disp32 re-based. Refuses (-MS_E_UNSUPPORTED, out->why
 * says why) loop/jrcxz/xbegin, branches into entry+1..entry+N-1, a return
 * or indirect jump before min_len, and anything out of rel32 reach.
 */
int ms_decode_relocate(const uint8_t *bytes, size_t avail, ms_raddr_t entry, ms_raddr_t dest,
		       size_t min_len, struct ms_reloc *out);

/* A half-open range [lo, hi) that no relative branch may land in. */
struct ms_range {
	ms_raddr_t lo, hi;
	ms_raddr_t hit_from; /* out: a branch found landing in the range (0 = none) */
	ms_raddr_t hit_to;
};

/*
 * Linear sweep of text (a copy of len bytes mapped at addr): for every
 * direct relative branch or call whose target lies in one of the ranges,
 * records the first offender in that range. Undecodable bytes are skipped
 * one at a time (data in text). Returns the number of ranges hit.
 */
size_t ms_decode_sweep(const uint8_t *text, size_t len, ms_raddr_t addr, struct ms_range *ranges,
		       size_t n);

/* Control flow of one instruction, for following a function's first few. */
enum ms_flow {
	MS_FLOW_NONE,	 /* falls through */
	MS_FLOW_CALL,	 /* call rel32: *target */
	MS_FLOW_JMP,	 /* jmp rel: *target */
	MS_FLOW_JCC,	 /* conditional branch: *target, falls through too */
	MS_FLOW_JMP_MEM, /* jmp *[rip+disp] (a PLT stub): *target = the slot's address */
	MS_FLOW_END,	 /* ret, an indirect branch or call, int3, ud2, hlt */
};

/*
 * Decodes the instruction at ip (bytes: a copy, avail bytes): its length
 * and its control flow. 0, or -MS_E_UNSUPPORTED if it does not decode.
 */
int ms_decode_flow(const uint8_t *bytes, size_t avail, ms_raddr_t ip, size_t *len,
		   enum ms_flow *flow, ms_raddr_t *target);

/* Length of the instruction at bytes, or 0 if it does not decode. */
size_t ms_decode_length(const uint8_t *bytes, size_t avail);

/*
 * Finds (and remembers for this target) the `syscall` instruction in libc
 * that a remote syscall without a trampoline runs; call it before stopping
 * the target. 0 or -MS_E_NOT_FOUND.
 */
int ms_remote_prepare(struct ms_proc *p);

/* -ERESTART* values the kernel turns into a restart when no handler runs. */
#define K_ERESTARTSYS		512
#define K_ERESTARTNOINTR	513
#define K_ERESTARTNOHAND	514
#define K_ERESTART_RESTARTBLOCK 516

/*
 * Rewrites r, the registers of a thread stopped on its way out of a system
 * call, into those the kernel's restart logic would give it on resuming
 * with no handler to run (rip back on the syscall instruction, the call
 * number in rax, orig_rax -1). Code that returns the thread to user space
 * itself (a trampoline, the snapshot page) must do what the kernel would.
 * Registers of a thread not in a restartable call are left as they are.
 */
void ms_remote_apply_restart(struct user_regs_struct *r);

/*
 * Runs one system call on stopped thread tid and puts the thread back as
 * it was; 0 and *ret = its return value, or a negative code. tramp = the
 * address of the stub region's trampoline (ms_stub_rsys): the thread's
 * registers are then also written as a frame on its own stack, so that if
 * memspy dies at any moment the thread restores itself and goes on. tramp
 * = 0: libc's `syscall` instruction (only before any region exists: a
 * memspy death between the syscall stops leaves that thread's registers
 * wrong). Neither path generates a SIGTRAP, even if memspy dies.
 */
int ms_remote_syscall_at(struct ms_proc *p, pid_t tid, ms_raddr_t tramp, long nr,
			 const long args[6], long *ret);
/*
 * As ms_remote_syscall_at through the trampoline tramp, but the thread
 * starts at entry, stub code that ends by jumping to tramp (the page
 * toucher): the same frame, so a memspy death anywhere leaves it to finish
 * and restore itself.
 */
int ms_remote_run_to_syscall(struct ms_proc *p, pid_t tid, ms_raddr_t entry, ms_raddr_t tramp,
			     long nr, const long args[6], long *ret);

/* ======================= the probe engine's own state (probe*.c) ======================= */

/*
 * The engine is one struct shared by the files that each do one of its
 * jobs: probe.c (entry points, sampling maths, remote-call helpers),
 * probe_sites.c (which entry points), probe_region.c (where the stubs go),
 * probe_patch.c (what memspy changes in the target and how it is armed),
 * probe_ring.c (thread table and ring drain), probe_traps.c (stops at a
 * stub's int3 and forked children), probe_remove.c (taking it all out).
 */
#include "attach/probe.h"

_Static_assert(MS_STUB_NTHR == 1 << MS_STUB_NTHR_BITS, "the thread table's size is a power of two");
_Static_assert(MS_STUB_TAB_BUCKETS * MS_STUB_TAB_WAYS == MS_PROBE_PTR_TABLE_SLOTS,
	       "probe.h states the size of the sampled-pointer table");

#define PATCH_LEN 5 /* bytes of the jmp written at an entry */
#define SIGBIT(s) (1ull << ((s)-1))

struct region {
	ms_raddr_t base;
	bool tramp; /* its code page holds the stub image: remote syscalls can use it */
	bool used[MS_STUB_NSLOTS];
	uint64_t last_draw; /* the draw index seen at the last drain */
	/*
	 * The drain reads only the slots of tickets from scan_from up to the
	 * head. Every ticket below scan_from is accounted for: taken by a
	 * drain or counted as a drop. A ticket is claimed (xadd) before its
	 * slot is (cmpxchg), so a slot read as free may still be written for
	 * a ticket already counted: the window only moves on once the count
	 * of tickets equals what was taken plus what dropped.
	 */
	uint64_t scan_from, fscan_from;
	uint64_t taken, ftaken; /* samples and frees taken from the rings so far */
	uint64_t drops, fdrops, nothread, tabfull; /* loss counters, last read */
	uint64_t head, fhead;	 /* ticket counters at the last reading that passed the checks */
	uint64_t drops_weighted; /* ring-full losses made up for so far (lost_weight) */
	uint8_t ctl[5];		       /* the control bytes memspy wrote (armed tracked apart) */
	uint8_t relay[MS_STUB_NSLOTS]; /* the relay flags memspy wrote */
	uint64_t discarded;	       /* slots and freed entries that failed the checks */
	uint64_t stack_cap;	       /* the MS_CTRL_STACK_CAP word memspy wrote (0 at install) */
	/*
	 * Its pages failed a check no stub could fail (tamper checks, below): never
	 * read, written or believed again; the probes go (ms_probes_poll says so).
	 */
	bool tampered;
	bool overwritten; /* ... and not by an exec or an unload: by the target (counted) */
	/*
	 * memspy's own mapping of the region's shared part (MS_STUB_SHARED_OFF
	 * on), or NULL when the part is private and read by process_vm_readv.
	 */
	uint8_t *view;
	uint64_t full_ns; /* when a drain last read the control page (the quick check: probe_ring.c) */
	bool populated; /* the target's MADV_POPULATE_WRITE over its data pages succeeded (touch_ring) */
};

/* memspy's mirror of the in-target thread table (the same in every region). */
struct thr {
	uint64_t tp;
	uint64_t lo, hi; /* the stack bounds written for it: a slot's copy length must match */
	pid_t tid;
};

/* The k-th entry (0-7) a thread with thread pointer tp may take, as the stubs look it up. */
static inline unsigned ms_thr_entry(uint64_t tp, unsigned k)
{
	uint32_t h = (uint32_t)(tp >> 12) * MS_THR_HASH_MUL;

	return ((h >> (32 - MS_STUB_NTHR_BITS)) + k) & (MS_STUB_NTHR - 1);
}

struct site {
	enum ms_alloc_fn fn;
	char *name;	 /* "malloc@libc.so.6" */
	const char *sym; /* symbol name (static or from opts) */
	ms_raddr_t entry;
	ms_raddr_t end;	       /* the end of its symbol (entry + st_size) */
	bool glibc;	       /* in glibc's malloc (relays small requests to its malloc) */
	uint8_t orig[32];      /* the entry's bytes before patching */
	struct ms_reloc reloc; /* displaced = bytes relocated into the stub */
	size_t mod;	       /* index in the module table */
	char *open_path;       /* the module file, for the final comparison */
	size_t region;
	int slot;
	bool patched;
};

/* An entry point memspy found but does not probe, and why. */
struct skip {
	enum ms_alloc_fn fn;
	char *name; /* "malloc@libc.so.6" */
	char *why;
};

struct ms_probes {
	struct ms_proc *p;
	pid_t pid;
	struct ms_probe_opts opts;
	bool exact;
	struct site *s;
	size_t ns, cap_s;
	struct region *rg;
	size_t nrg, cap_rg;
	const char **names;
	uint64_t rng;
	struct ms_probe_stats st;
	uint8_t *buf; /* trap frame + stack copy */
	size_t buf_len;
	struct ms_deadman wd; /* the watchdog (fd -1 when none) */
	uint64_t nonce; /* this install's mark on its manifests (the watchdog's key) */
	bool sigact_installed;
	bool removed;
	bool ring;
	bool armed; /* what memspy last wrote in the armed bytes */
	uint64_t armed_ns; /* when sampling began */
	unsigned ncpu; /* CPUs configured: the bound on what the stubs can count */
	struct ms_ksigaction sigact_old; /* the target's SIGTRAP action, as the kernel gave it */
	const struct ms_ring_io *io;	 /* the fuzzer's memory instead of the target's */
	struct thr thr[MS_STUB_NTHR];
	struct skip *skips; /* entry points planned but not probed, reported once */
	size_t nskips, cap_skips;
	uint8_t *hdrs;			      /* MS_STUB_NHDR headers */
	uint8_t *data;			      /* MS_STUB_NHDR stack copies */
	uint64_t *fring;		      /* MS_STUB_NFRING x 2 words */
	struct pending_ev *pev;		      /* the drain's events, kept between drains */
	uint64_t tsc0, ns0;		      /* for converting the stubs' rdtsc stamps */
	uint64_t n_drains, drain_ns, drained; /* drain statistics (debug log at removal) */
	uint64_t n_quiet; /* region drains the quick check left unread (probe_ring.c) */
	uint64_t ticks[1024];		      /* in-target TSC ticks of the first samples */
	size_t nticks;
	uint64_t nested; /* allocations inside a sampled probed call: not reported */
	/*
	 * Mean changes, oldest first: until TSC tsc, countdowns were drawn with
	 * mean. A sample whose countdown fired before a change but that was
	 * published after the drain that preceded it keeps the old weight.
	 */
	struct mean_change {
		uint64_t tsc, mean;
	} changes[16];
	size_t nchanges;
	/*
	 * The stack cap (probe_ring.c): the cap the stubs were last given (0:
	 * the install's, MS_STUB_DATA_SIZE), the one the unwinder's reads ask
	 * for, every cap word written so far (bit k: (k + 1) * MS_CAP_STEP
	 * bytes), the deepest byte read of a copy, and the samples learned from.
	 */
	uint64_t cap, cap_want, caps_written, cap_used_max, cap_learned;
};

/* One event of a drain, sorted by time before it is reported. */
struct pending_ev {
	uint64_t key; /* TSC when it happened: frees after the allocation they free */
	int hdr;      /* header index, or -1 for a free */
	int slot;     /* a free: the stub slot that recorded it */
	uint64_t ptr;
};
/* struct ms_probes' pev: a drain's events (at most a lap of each ring) and the sort's scratch. */
#define MS_PEV_SLOTS (2 * (MS_STUB_NHDR + MS_STUB_NFRING))

/* probe.c: helpers every job uses. */
/* The stub kind (MS_SK_*) that probes fn. */
int probe_fn_kind(enum ms_alloc_fn fn);
/* Sampling: the next countdown, a sample's weight, the mean in force at a TSC stamp. */
int64_t probe_draw_countdown(struct ms_probes *pr);
uint64_t probe_sample_weight(const struct ms_probes *pr, uint64_t size, uint64_t mean);
uint64_t probe_mean_at(const struct ms_probes *pr, uint64_t tsc);
/* The target's memory as the drain sees it (the fuzzer's when pr->io is set): bytes or -1. */
ssize_t probe_ring_readv(struct ms_probes *pr, const struct iovec *l, size_t nl,
			 const struct iovec *r, size_t nr);
ssize_t probe_ring_writev(struct ms_probes *pr, const struct iovec *l, size_t nl,
			  const struct iovec *r, size_t nr);
/* 0 or a negative code. */
int probe_write_remote(struct ms_probes *pr, ms_raddr_t addr, const void *buf, size_t len);
/* Address of the control word at off in region rg. */
ms_raddr_t probe_rg_ctrl(const struct region *rg, unsigned off);
/* The file name part of path (borrowed from it), "?" for NULL. */
const char *probe_base_name(const char *path);
/* A stopped thread to run remote system calls on, or -1. */
pid_t probe_any_thread(struct ms_probes *pr);
/* Notes that site s will not be probed, and why (reported once at install). */
void probe_skip_site(struct ms_probes *pr, const struct site *s, const char *fmt, ...)
    MS_PRINTF(3, 4);
/* Runs a system call in the target (via the trampoline once it exists): 0 and *ret, or -code. */
int probe_rsyscall(struct ms_probes *pr, long nr, long a0, long a1, long a2, long a3, long a4,
		    long a5, long *ret);

/* probe_sites.c: plans the entry points and refuses those a jmp cannot safely patch. */
void probe_plan_sites(struct ms_probes *pr, const struct ms_modules *mods);
void probe_plan_cxx(struct ms_probes *pr, const struct ms_modules *mods);
void probe_check_sites(struct ms_probes *pr);
void probe_sweep_sites(struct ms_probes *pr, const struct ms_modules *mods,
			const struct ms_maps *maps);

/* probe_region.c: places a stub region within rel32 reach of a module; 0 or a negative code. */
bool probe_in_reach(ms_raddr_t base, const struct ms_module *m);
int probe_map_region(struct ms_probes *pr, const struct ms_module *m, struct ms_error *err);
/* Drops memspy's mapping of a region's shared ring part; release: free its pages too. */
void probe_touch_rings(struct ms_probes *pr);
void probe_unshare_ring(struct region *rg, bool release);
int probe_take_slot(struct region *r, int kind);
int probe_build_regions(struct ms_probes *pr, struct ms_error *err);

/* probe_patch.c: SIGTRAP action, manifests, integrity, patching, arming; 0 or a negative code. */
int probe_install_sigtrap(struct ms_probes *pr, struct ms_error *err);
int probe_restore_sigtrap(struct ms_probes *pr);
int probe_write_manifests(struct ms_probes *pr, const struct ms_ksigaction *act);
void probe_retire_manifests(struct ms_probes *pr);
int probe_reclaim_leftovers(struct ms_probes *pr, struct ms_error *err);
struct ms_ksigaction probe_sigtrap_action_now(pid_t pid);
bool probe_code_intact(const struct ms_probes *pr, size_t r);
bool probe_region_intact(const struct ms_probes *pr, size_t r);
void probe_site_jmp(const struct ms_probes *pr, const struct site *s, uint8_t jmp[PATCH_LEN]);
void probe_prefault_ring(struct ms_probes *pr);
int probe_set_armed(struct ms_probes *pr, bool on);
int probe_patch_sites(struct ms_probes *pr);

/* probe_ring.c: the thread table and the ring drain (0 or a negative code). */
void probe_on_new_thread(void *ctx, pid_t tid, const struct user_regs_struct *regs);
void probe_register_all_threads(struct ms_probes *pr);
void probe_refill_draws(struct ms_probes *pr, const struct region *rg, uint64_t from, uint64_t to);
uint64_t probe_tsc_now(void);
uint64_t probe_tsc_to_ns(const struct ms_probes *pr, uint64_t ticks);
void probe_restart_lost_weight(struct ms_probes *pr);
void probe_tamper(struct ms_probes *pr, size_t r, const char *why);
uint64_t probe_size_of(const uint8_t *h, unsigned kind);
int probe_drain_all(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx);
/* The recording loop's drain: a shared ring with nothing new is left unread (probe_ring.c). */
int probe_drain_quick(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx);

/* probe_traps.c: stops at a stub's int3 and forked children. */
const struct site *probe_site_for(const struct ms_probes *pr, size_t region, int slot);
bool probe_find_trap(const struct ms_probes *pr, ms_raddr_t addr, size_t *region, int *slot);
void probe_on_trap(struct ms_probes *pr, pid_t tid, const struct user_regs_struct *regs,
		    size_t region, int slot, ms_alloc_event_cb cb, void *ctx);
void probe_restore_child(struct ms_probes *pr, pid_t child);

#endif /* __ASSEMBLER__ */

#endif
