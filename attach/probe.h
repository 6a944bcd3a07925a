/* SPDX-License-Identifier: MIT */
/*
 * attach/probe: allocator entry probes. Each probed function's first >= 5
 * bytes become a jmp to a stub in pages injected near the module; the stub
 * counts bytes down (Poisson sampling by bytes, decided in the target) and
 * only sampled calls reach memspy. See doc/DESIGN.md (record: probes that
 * decide in the target).
 *
 * Contract between the probe engine (attach/probe*.c) and `memspy record`
 * (cmd/record.c): record installs, feeds every MS_EV_TRAP from
 * ms_proc_wait() (and, in ring mode, regular polls) to the engine, receives
 * allocation events through a callback, and removes the probes on every
 * path before detaching.
 */
#ifndef MEMSPY_PROBE_H
#define MEMSPY_PROBE_H

#include "attach/attach.h"

enum ms_alloc_fn {
	MS_FN_MALLOC,
	MS_FN_CALLOC,
	MS_FN_REALLOC,
	MS_FN_FREE,
	MS_FN_POSIX_MEMALIGN,
	MS_FN_ALIGNED_ALLOC,
	MS_FN_MEMALIGN,
	MS_FN_VALLOC,
	MS_FN_PVALLOC,
	MS_FN_OPERATOR_NEW,    /* operator new / new[] (all variants that do not just call malloc) */
	MS_FN_OPERATOR_DELETE, /* operator delete / delete[] (idem) */
	MS_FN_CUSTOM,          /* --probe SYMBOL: treated as malloc(size_t) */
	MS_FN_CUSTOM_FREE,     /* --probe-free SYMBOL: treated as free(void *) */
	MS_FN_COUNT
};
const char *ms_alloc_fn_name(enum ms_alloc_fn fn);

struct ms_probe_opts {
	uint64_t sample_bytes; /* mean bytes between samples; 0 = exact (every call is an event) */
	size_t stack_bytes;    /* bytes of the caller's stack copied per sample (default 16 KiB) */
	bool track_frees;      /* report frees of sampled pointers (needed for --live) */
	const char *const *custom_symbols; /* --probe SYMBOL ... */
	size_t n_custom;
	/* --probe-free SYMBOL ...: frees any sampled block (with track_frees only) */
	const char *const *custom_free_symbols;
	size_t n_custom_free;
	uint64_t seed;         /* for the exponential draws; 0 = from the clock */
	bool stop_per_sample;  /* sampled calls stop the thread (int3) instead of being
				  written to the in-target ring (ring: no stop; stack copy
				  capped at 16 KiB). Exact mode always stops. */
};

enum ms_alloc_event_type { MS_AE_ALLOC, MS_AE_FREE };

/* One sampled allocation or one free of a sampled pointer. Borrowed by the callback. */
struct ms_alloc_event {
	enum ms_alloc_event_type type;
	enum ms_alloc_fn fn;
	pid_t tid;
	uint64_t size;       /* MS_AE_ALLOC: bytes requested */
	uint64_t weight;     /* MS_AE_ALLOC: bytes this sample stands for (== size when exact) */
	ms_raddr_t ptr;      /* ALLOC: returned pointer (0 if it failed); FREE: freed pointer */
	uint64_t time_ns;    /* CLOCK_MONOTONIC, when memspy saw it */
	bool unfollowed;     /* ALLOC, frees followed: the pointer table had no room for it,
				so no free of it will ever be reported */
	/* ALLOC only: registers at the allocator's entry (rip = the entry, rsp -> return
	 * address) and a copy of the stack from regs.rsp upwards, for unwinding. */
	struct user_regs_struct regs;
	const uint8_t *stack;
	size_t stack_len;
};
typedef void (*ms_alloc_event_cb)(const struct ms_alloc_event *ev, void *ctx);

/*
 * The in-target table of the sampled pointers whose free the stubs follow
 * (--live, --interval): 1024 buckets of 8 ways (probe_int.h). An insert into
 * a full bucket is lost (ms_probe_stats.dropped): that block then counts as
 * live for good. With random pointers, at 2 entries per bucket on average
 * about 1 bucket of the 1024 is full, at 4 about 50.
 */
#define MS_PROBE_PTR_TABLE_SLOTS 8192

struct ms_probe_stats {
	uint64_t stops;          /* ptrace stops caused by probes */
	uint64_t stopped_ns;     /* time target threads spent stopped by probes (sum) */
	uint64_t samples;        /* allocation events delivered */
	uint64_t frees;          /* free events delivered */
	uint64_t dropped;        /* sampled blocks whose free cannot be seen (pointer table full) */
	uint64_t ring_samples;   /* of samples, those delivered through the ring (no stop) */
	uint64_t ring_full;      /* samples and frees lost because their ring was full */
	uint64_t lost_samples;   /* ring mode: sampled allocations lost (ring full, or a thread
				    memspy could not register): never a stop instead */
	uint64_t lost_nothread;  /* of lost_samples, those of threads not in the thread table */
	uint64_t lost_frees;     /* ring mode: frees of sampled blocks lost (freed ring full) */
	uint64_t target_ns;      /* ring: time the target spent recording samples (rdtsc-based
				    estimate; 0 when the TSC rate is unknown) */
	uint64_t stack_cap;      /* ring: the most bytes of stack a sample copies now */
	uint64_t stack_cut;      /* ring: samples whose copy that cap cut short of what their
				    unwinding needed (fewer frames; the cap was raised) */
	/*
	 * Tamper checks (doc/INTERNALS.md): what the target wrote over memspy's
	 * pages. discarded: ring samples and frees whose header was not what
	 * the stub writes (dropped, never believed). tampered: regions whose
	 * pages were found not memspy's any more; sampling stopped then.
	 */
	uint64_t discarded;
	/* samples dropped (frees kept) for a timestamp outside the recording: an unstable TSC */
	uint64_t clock_odd;
	size_t tampered;
	const char *tamper_why;   /* the first check that failed (static text), or NULL */
	uint64_t tamper_after_ns; /* when, counted from the moment sampling began */
	size_t n_installed;      /* entry points patched */
	uint64_t attach_pause_ns; /* install: all threads stopped for this long */
	uint64_t remove_pause_ns; /* remove: idem */
	uint64_t touch_ns;	  /* of attach_pause_ns: the process touching the ring's pages */
};

struct ms_probes; /* opaque */

/*
 * Stops all threads, injects the stub pages, patches every allocator entry
 * found in mods (libc, the executable, preloaded allocators, libstdc++'s
 * operator new/delete where they do not just call malloc, custom symbols),
 * verifies each written byte, and resumes. Sites that cannot be patched
 * safely are skipped with a warning. Fails (and leaves nothing patched)
 * when no entry at all could be probed. 0 or a negative code; err filled.
 */
int ms_probes_install(struct ms_proc *p, const struct ms_modules *mods,
		      const struct ms_probe_opts *opts, struct ms_probes **out,
		      struct ms_error *err);

/*
 * Offers an event from ms_proc_wait(). If it is a probe trap, emits the
 * allocation/free events through cb, resumes the thread and returns 1;
 * returns 0 if the event is not the engine's (the caller handles it).
 * MS_EV_FORK is the engine's too: the child's patched text is restored and
 * the child detached.
 */
int ms_probes_handle_event(struct ms_probes *pr, const struct ms_event *ev,
			   ms_alloc_event_cb cb, void *ctx);

/*
 * Drains in-target buffers (ring mode), emitting events through cb. 0 or
 * -errno; -MS_E_TAMPERED once memspy's pages failed their checks (the stats
 * say which and when): nothing more is sampled, and the caller is to
 * remove the probes.
 */
int ms_probes_poll(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx);

/*
 * Changes the mean bytes between samples (the overhead budget widens it)
 * without stopping the target: drains the ring under the old mean, then
 * redraws every countdown. -EINVAL in exact mode. 0 or -errno.
 */
int ms_probes_set_sample_bytes(struct ms_probes *pr, uint64_t mean, ms_alloc_event_cb cb,
			       void *ctx);
uint64_t ms_probes_sample_bytes(const struct ms_probes *pr);

/*
 * Removes every probe: stops all threads, disarms, restores every patched
 * byte and reads it back, moves threads parked on a trap site past it,
 * consumes SIGTRAPs already pending, and resumes. Safe after the target
 * exited. 0, or a negative code with err filled (a byte that could not be
 * restored is named in err).
 */
int ms_probes_remove(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx,
		     struct ms_error *err);

void ms_probes_stats(const struct ms_probes *pr, struct ms_probe_stats *out);
/* Names of the patched entry points ("malloc@libc.so.6", ...), for the summary. */
size_t ms_probes_sites(const struct ms_probes *pr, const char ***names);
/*
 * Whether pc lies in the code of a probed allocator function (its symbol's
 * extent; --probe symbols excluded). A call that such a function hands to
 * another probed entry (glibc's posix_memalign calls its malloc for small
 * alignments) has that function's frame below the entry's: the
 * allocator's own, not its caller.
 */
bool ms_probes_in_allocator(const struct ms_probes *pr, ms_raddr_t pc);
/*
 * Is this sample an allocation made inside another probed call that is
 * being sampled (tcmalloc's valloc calls its malloc, say)? pcs are the
 * sample's unwound return addresses above the probed entry: one of them is
 * a stub's, only then. The outer call is reported; the inner one would
 * count twice. It is counted, and the sample is to be dropped.
 */
bool ms_probes_nested_sample(struct ms_probes *pr, const ms_raddr_t *pcs, size_t n);
/*
 * Ring mode: what unwinding the sample ev read of its stack copy. used: the
 * end of the highest word read, in bytes from ev->regs.rsp; beyond: the end
 * of the lowest word asked for above the copy's end (0: none). The stubs'
 * copies are cut to the deepest read seen plus a margin (they copy up to
 * 16 KiB until enough samples were seen), and a copy that the cut left too
 * short for its unwinding raises the cap and is counted
 * (ms_probe_stats.stack_cut). Call it for every sample the callback unwinds.
 */
void ms_probes_stack_use(struct ms_probes *pr, const struct ms_alloc_event *ev, size_t used,
			 size_t beyond);
void ms_probes_free(struct ms_probes *pr);

#endif
