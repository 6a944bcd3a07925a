/* SPDX-License-Identifier: MIT */
/*
 * heapwalk: glibc malloc's heap read from outside. Locate main_arena, mp_
 * and every thread's tcache (DWARF or version tables + heuristics), then
 * walk every arena, heap, bin and cache list through a struct ms_reader.
 */
#ifndef MEMSPY_HEAPWALK_H
#define MEMSPY_HEAPWALK_H

#include "common/common.h"
#include "attach/attach.h"

/*
 * Byte offsets of the glibc malloc structures memspy reads. Filled from
 * libc's DWARF when present, else from the table for the glibc version.
 * Plain data so unit tests and the fuzzer can build synthetic heaps.
 */
struct ms_heap_layout {
	unsigned ver_major, ver_minor; /* glibc version, 0.0 when unknown */
	/* struct malloc_state */
	uint32_t ar_mutex, ar_flags, ar_fastbins, ar_top, ar_bins, ar_next, ar_next_free,
		ar_attached_threads, ar_system_mem, ar_size;
	uint32_t nfastbins; /* NFASTBINS: 10 on x86_64 */
	/* struct malloc_par (mp_) */
	uint32_t mp_mmap_threshold, mp_n_mmaps, mp_mmapped_mem, mp_sbrk_base, mp_tcache_bins,
		mp_tcache_max_bytes, mp_tcache_count, mp_hp_pagesize, mp_size;
	bool mp_has_hp_pagesize; /* 2.35+ */
	/* heap_info */
	uint32_t hi_ar_ptr, hi_prev, hi_size, hi_mprotect_size, hi_sizeof;
	/* tcache_perthread_struct; tc_sizeof == 0 means no tcache (< 2.26) */
	uint32_t tc_counts, tc_count_size, tc_entries, tc_sizeof, tc_nbins;
	bool safe_linking; /* 2.32+: singly linked next pointers are mangled */
};

/*
 * The built-in layout for glibc major.minor (2.26 and newer). 0, or
 * -MS_E_UNSUPPORTED for an older or unknown version.
 */
int ms_heap_layout_for_version(unsigned major, unsigned minor, struct ms_heap_layout *out);

/* One thread of the target and where its tcache pointer lives. */
struct ms_heap_thread {
	pid_t tid;
	ms_raddr_t fs_base;    /* thread pointer (user_regs_struct.fs_base) */
	ms_raddr_t tcache_var; /* &tcache in this thread's static TLS; 0 unknown */
	ms_raddr_t tcache;     /* value of tcache (tcache_perthread_struct *); 0 none */
};

/* Where glibc malloc's state is in the target. */
struct ms_heap_loc {
	struct ms_heap_layout layout;
	const char *layout_source; /* "dwarf" or "table" (static string) */
	const char *symbol_source; /* "dwarf" (debug symbols) or "heuristic" */
	char glibc_version[32];     /* "2.36", "" when unknown */
	char libc_path[512];        /* as in the target's maps */
	char build_id[130];         /* hex, "" when none */
	ms_raddr_t main_arena, mp;
	ms_raddr_t global_max_fast; /* address of the variable, 0 when unknown */
	bool have_tpoff;            /* &tcache = fs_base + tcache_tpoff */
	int64_t tcache_tpoff;
	/* Candidate thread-pointer offsets when there is no debug info (validated per thread). */
	int64_t *tpoff_cand;
	size_t ntpoff_cand;
	struct ms_heap_thread *threads;
	size_t nthreads;
	double locate_ms; /* time spent locating (target running) */
};

struct ms_heap_locate_opts {
	bool no_debuginfo; /* ignore libc's DWARF: version tables and heuristics only */
};

/*
 * The static part of locating: finds libc in maps, reads its version,
 * layout and the addresses of main_arena, mp_ and global_max_fast, and how
 * to find each thread's tcache. Needs no stop (the target may run), so
 * the expensive DWARF work stays out of the pause. Fills err on failure:
 * -MS_E_NO_GLIBC when no glibc malloc is found (see ms_heap_detect_allocator).
 */
int ms_heap_locate(pid_t pid, const struct ms_maps *maps, const struct ms_reader *r,
		   const struct ms_heap_locate_opts *opts, struct ms_heap_loc *loc,
		   struct ms_error *err);

/*
 * Per-thread part, while the target is stopped: records each thread's
 * tcache pointer from its thread pointer. tids/fs_base have n entries.
 * 0 or a negative code (only when nothing could be read).
 */
int ms_heap_locate_threads(struct ms_heap_loc *loc, const struct ms_reader *r,
			   const struct ms_maps *maps, const pid_t *tids, const ms_raddr_t *fs_base,
			   size_t n);
void ms_heap_loc_free(struct ms_heap_loc *loc);

/*
 * Which allocator the process calls, from its mapped objects and the
 * executable's symbols: "glibc" or a name such as "jemalloc", "tcmalloc",
 * "mimalloc", "musl", "static" (statically linked, no libc.so), written to
 * buf. Returns true when it is glibc's malloc.
 */
bool ms_heap_detect_allocator(pid_t pid, const struct ms_maps *maps, char *buf, size_t size);

/* ---------------------------------- walk ---------------------------------- */

/* What a chunk is. The free kinds are TCACHE..TOP. */
enum ms_heap_kind {
	MS_HK_INUSE,
	MS_HK_TCACHE,
	MS_HK_FAST,
	MS_HK_UNSORTED,
	MS_HK_SMALL,
	MS_HK_LARGE,
	MS_HK_TOP,
	MS_HK_MMAPPED,
	MS_HK_N
};
/* "in_use", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top", "mmapped". */
const char *ms_heap_kind_name(enum ms_heap_kind k);

struct ms_heap_counts {
	uint64_t chunks[MS_HK_N];
	uint64_t bytes[MS_HK_N];
};

/* The nine fields of glibc's struct mallinfo2, computed from the walk. */
struct ms_heap_mallinfo {
	uint64_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks,
		keepcost;
};

struct ms_heap_arena {
	ms_raddr_t addr;
	bool is_main;
	int mutex;          /* value read: non-zero = a thread held the lock */
	bool inconsistent;  /* locked while walked, or lists off by one */
	bool partial;       /* a segment could not be walked to its end */
	bool on_free_list;  /* attached_threads == 0: its threads exited */
	uint64_t attached_threads;
	uint64_t system_mem;
	uint64_t nheaps;    /* heap segments walked */
	uint64_t overhead;  /* heap_info/malloc_state headers and fenceposts, bytes */
	struct ms_heap_counts c;
	uint64_t largest_free; /* largest free chunk, top excluded */
	struct ms_heap_mallinfo mi; /* this arena's share of mallinfo2 */
};

/* A memory range malloc owns, with resident figures from smaps. */
struct ms_heap_segment {
	ms_raddr_t start, end;
	int arena; /* index into arenas, -1 for mmapped chunks */
	const char *kind; /* "brk", "heap", "mmap" (static string) */
};

/* Size classes: 16-byte classes up to 1 KiB, then powers of two. */
struct ms_heap_hist {
	uint64_t lo, hi; /* chunk sizes in [lo, hi) */
	uint64_t inuse_chunks, inuse_bytes, free_chunks, free_bytes;
};

struct ms_heap_error {
	char kind[32];   /* short machine-readable kind: "bad_size", "fastbin_cycle", ... */
	ms_raddr_t addr; /* where, in the target */
	int arena;       /* arena index, -1 when not tied to one */
	char msg[200];
};

struct ms_heap_thread_rep {
	pid_t tid;
	ms_raddr_t tcache;
	uint64_t chunks, bytes;
	bool count_mismatch;
};

/*
 * An allocation as the walk saw it (MS_HEAP_WALK_CHUNKS): an in-use chunk,
 * tcache and fastbin members excluded. Its user area is [addr + 16,
 * addr + size + 8) in an arena (the next chunk's prev_size is the user's
 * while this one is in use), [addr + 16, addr + size) when mmapped.
 */
struct ms_heap_chunk {
	ms_raddr_t addr; /* the chunk header (malloc's pointer - 16) */
	uint64_t size;   /* chunksize, | MS_HEAP_CHUNK_MMAPPED for mmapped chunks */
	uint64_t word0;  /* first user word as the walk read it (0 for mmapped chunks) */
};
#define MS_HEAP_CHUNK_MMAPPED 1ull

struct ms_heap_report {
	struct ms_heap_arena *arenas;
	size_t narenas;
	struct ms_heap_thread_rep *threads;
	size_t nthreads;
	struct ms_heap_segment *segs;
	size_t nsegs;
	struct ms_heap_hist *hist;
	size_t nhist;
	struct ms_heap_error *errors;
	size_t nerrors, errors_dropped;

	struct ms_heap_counts total;
	struct ms_heap_mallinfo mi;       /* what the target's mallinfo2() would say */
	uint64_t mp_n_mmaps, mp_mmapped_mem; /* glibc's own count of mmapped chunks */
	uint64_t mmap_threshold, global_max_fast, tcache_count;
	uint64_t largest_free;
	uint64_t in_use_bytes; /* application view: in-use chunks (tcache excluded) + mmapped */
	uint64_t free_bytes;   /* all free kinds including tcache and top */
	bool partial;          /* some totals are incomplete (see errors) */
	bool inconsistent;     /* a thread was stopped inside malloc: locked_arenas or
				  tcache_midupdate (see ms_heap_verdict) */
	uint64_t locked_arenas;    /* arenas whose lock was held while walked */
	uint64_t tcache_midupdate; /* tcache bins one off their count, on a list that ended
				      normally (a thread stopped between the two updates) */
	uint64_t bytes_read, chunks_walked;
	double walk_ms;
	/*
	 * memspy's CPU time (user + system, every thread) while walking: on a
	 * shared machine a steadier yardstick than walk_ms.
	 */
	double walk_cpu_ms;
	/* Phases of the walk (ms): heaps walked, cache lists and bins checked, mmapped-chunk scan. */
	double chunks_ms, lists_ms, mmap_ms;
	uint64_t list_candidates; /* small chunks kept to check the tcache/fastbin lists against */
	uint64_t mmap_probes;     /* page headers read looking for mmapped chunks */
	/* With MS_HEAP_WALK_CHUNKS: every allocation, sorted by address. */
	struct ms_heap_chunk *chunks;
	size_t nchunks;
};

/*
 * Walks glibc malloc's state at loc through r. maps bounds every read:
 * nothing outside a readable mapping is ever read. The target must be
 * stopped. Anomalies go to rep->errors and never stop the walk. Returns 0
 * (complete), -MS_E_CORRUPT (rep filled, with errors), or a negative code
 * when nothing could be read (rep->errors says why). rep is owned by the
 * caller: ms_heap_report_free.
 */
int ms_heap_walk(const struct ms_heap_loc *loc, const struct ms_reader *r,
		 const struct ms_maps *maps, struct ms_heap_report *rep);
/*
 * The same walk, on up to two threads: readers[i] (nreaders of them, each
 * usable from its own thread) serve the walkers; heap segments are split
 * between them by address when the heap is big enough. Same results and
 * ordering as ms_heap_walk, which is this with one reader.
 */
int ms_heap_walk_mt(const struct ms_heap_loc *loc, const struct ms_reader *const *readers,
		    size_t nreaders, const struct ms_maps *maps, struct ms_heap_report *rep);
/* Flags of ms_heap_walk_flags. */
#define MS_HEAP_WALK_CHUNKS 1u /* keep every allocation in rep->chunks (~24 bytes each) */
/* ms_heap_walk_mt with flags. */
int ms_heap_walk_flags(const struct ms_heap_loc *loc, const struct ms_reader *const *readers,
		       size_t nreaders, const struct ms_maps *maps, unsigned flags,
		       struct ms_heap_report *rep);
void ms_heap_report_free(struct ms_heap_report *rep);

/*
 * What stands behind an incomplete walk. Each error is put down to one
 * cause, and the verdict is the worst cause with an error, so that the
 * summary names what happened: a heap range memspy could not read is not
 * a lock race, and a lock race is named only when a lock was held (or a
 * tcache count was one off) and nothing worse was found.
 */
enum ms_heap_cause {
	MS_HC_NONE,       /* complete */
	MS_HC_UNREADABLE, /* memory malloc's structures point to could not be read: a range
			     not covered by readable mappings, or a failed read */
	MS_HC_DAMAGED,    /* the structures contradict each other where no lock was held */
	MS_HC_MIDUPDATE,  /* a thread was stopped inside malloc: an arena lock held, or a
			     tcache count one off; problems only in locked arenas */
};

struct ms_heap_verdict {
	enum ms_heap_cause cause;
	size_t unreadable, damaged, midupdate; /* errors put down to each cause */
	const struct ms_heap_error *first;     /* first error of the cause (borrowed), or NULL */
	char text[480]; /* one sentence for a person; "" when complete */
};
/* "unreadable", "damaged", "mid_update", or NULL for MS_HC_NONE. */
const char *ms_heap_cause_name(enum ms_heap_cause c);
/* Fills v from rep (rep must outlive v->first). */
void ms_heap_verdict(const struct ms_heap_report *rep, struct ms_heap_verdict *v);

/*
 * Whether any arena's mutex is held right now (a thread stopped inside
 * malloc). Reads only the arena headers. Returns the number of locked
 * arenas, or a negative code.
 */
int ms_heap_locked_arenas(const struct ms_heap_loc *loc, const struct ms_reader *r);

/* Resident memory of malloc-owned and of all anonymous mappings, from smaps. */
struct ms_heap_rss {
	uint64_t heap_rss, heap_anon, heap_swap, heap_size; /* malloc-owned segments */
	uint64_t anon_rss, anon_size; /* every anonymous mapping */
	uint64_t total_rss;
	bool valid;
};
/*
 * Reads /proc/PID/smaps (again when a read raced with a change of the
 * mappings) and sums over rep's segments (rep may be NULL). 0, -errno or
 * -MS_E_MAPS_UNSTABLE; out->valid only on 0.
 */
int ms_heap_smaps(pid_t pid, const struct ms_heap_report *rep, struct ms_heap_rss *out);

/* -------------------------------- leak scan -------------------------------- */

/* A thread's registers at the stop, for the leak scan's roots. */
struct ms_leak_thread {
	pid_t tid;
	bool have_regs;
	struct user_regs_struct regs;
};

/*
 * A group of allocations: a C++ class (from the vtable its first word
 * points into) or, untyped, a chunk-size class [size_lo, size_hi).
 */
struct ms_leak_group {
	char *type;     /* "Request", or "untyped 48 B" / "untyped 1-2 KiB"; owned */
	bool typed;
	uint64_t size_lo, size_hi; /* chunk sizes (untyped groups) */
	uint64_t count, bytes;                /* in use */
	uint64_t leaked_count, leaked_bytes;  /* not reachable from any root */
	uint64_t unref_count, unref_bytes;    /* leaked, and no other leaked chunk points to it */
	ms_raddr_t example;                   /* a leaked chunk's user address (unreferenced first), 0 */
	uint64_t example_size;                /* its chunk size */
	unsigned char head[64];               /* its first bytes */
	size_t nhead;
	uint32_t id; /* the scan's own number for it, which ms_leak_cell.group names */
};

/*
 * The allocations of one group in one arena: what the SVG view of the
 * heap (output/heap_svg.c) draws. Sets as in ms_leak_report.
 */
struct ms_leak_cell {
	int arena;      /* index into the walk's arenas, -1 for mmapped chunks */
	uint32_t group; /* index into ms_leak_report.groups */
	uint64_t count, bytes;
	uint64_t leaked_count, leaked_bytes;
	uint64_t unref_count, unref_bytes;
	uint64_t thread_count, thread_bytes; /* reachable only from threads' stacks or registers */
};

struct ms_leak_thread_rep {
	pid_t tid;
	uint64_t count, bytes; /* reachable only from this thread's stack or registers */
	bool scanned;          /* its stack pointer was known */
};

/* One allocation on the way from a root to the one explained. */
struct ms_leak_hop {
	ms_raddr_t chunk; /* user address */
	uint64_t size;    /* chunk size */
	ms_raddr_t at;    /* the word in it that points to the next hop */
	char *type;       /* owned */
};

/* Why an address is (not) reachable: dump --explain ADDR. */
struct ms_leak_explain {
	ms_raddr_t addr;   /* as asked */
	ms_raddr_t chunk;  /* user address of the allocation holding addr, 0 when none */
	uint64_t size;
	char *type;        /* owned, NULL when no allocation */
	/* "reachable", "thread-only", "several-threads", "leaked", or "not-an-allocation" */
	const char *status;
	char root[400];    /* where the chain starts: a register, a stack slot, a module's data ... */
	ms_raddr_t root_at; /* the root word's address (0 for a register) */
	struct ms_leak_hop *chain; /* from the root's allocation to the one explained, inclusive */
	size_t nchain;
	ms_raddr_t referrers[16]; /* leaked: leaked allocations pointing to it (user addresses) */
	size_t nreferrers;
	bool more_referrers;
};

struct ms_leak_report {
	struct ms_leak_explain *explain; /* when asked, else NULL */
	uint64_t inuse_count, inuse_bytes;
	uint64_t leaked_count, leaked_bytes;
	uint64_t unref_count, unref_bytes;
	uint64_t thread_only_count, thread_only_bytes; /* only from one thread's stack/registers */
	uint64_t multi_thread_count, multi_thread_bytes; /* only from stacks, of several threads */
	struct ms_leak_thread_rep *threads;
	size_t nthreads;
	/* Every group with an allocation, by in-use bytes (largest first). */
	struct ms_leak_group *groups;
	size_t ngroups;
	/* Every (arena, group) with an allocation, by arena then group. */
	struct ms_leak_cell *cells;
	size_t ncells;
	/* Root ranges read: bytes by kind. */
	uint64_t root_module_bytes, root_anon_bytes, root_stack_bytes;
	uint64_t scanned_bytes;  /* allocation bytes read while marking */
	uint64_t unreadable_bytes; /* roots or chunks that could not be read */
	uint64_t shared_batches;   /* batches of chunks marked with the helper thread */
	uint64_t dropped_chunks;   /* allocations the walk listed that were not scanned: out of
				      order, overlapping or outside malloc's segments (partial) */
	size_t nvtables;         /* _ZTV symbols known */
	double scan_ms, mark_ms, classify_ms, types_ms;
	double scan_cpu_ms; /* memspy's CPU time while scanning (as walk_cpu_ms) */
	bool partial;            /* interrupted or reads failed: see note */
	char note[200];
};

/*
 * The conservative reachability scan over a walk made with
 * MS_HEAP_WALK_CHUNKS. r reads the same image the walk read (the
 * snapshot); maps is its mapping table; pid names the process whose
 * modules' symbol tables give the vtable names. threads (n of them) carry
 * the registers taken at the stop. explain, when not 0, is an address to
 * explain (out->explain): the chain of references from a root to the
 * allocation holding it, or the leaked allocations pointing to it; it costs
 * 12 more bytes per allocation. Returns 0, or -MS_E_INTERRUPTED /
 * -EFAULT with out filled as far as it got (out->partial). out is the
 * caller's: ms_leak_report_free.
 */
int ms_leak_scan(const struct ms_heap_report *rep, const struct ms_reader *r,
		 const struct ms_maps *maps, pid_t pid, const struct ms_leak_thread *threads,
		 size_t n, ms_raddr_t explain, struct ms_leak_report *out);
/*
 * The same scan with up to two readers (each usable from its own thread):
 * with two, a second thread reads and scans half of each large batch of
 * chunks, as ms_heap_walk_mt splits the walk. Same sets and counts.
 */
int ms_leak_scan_mt(const struct ms_heap_report *rep, const struct ms_reader *const *readers,
		    size_t nreaders, const struct ms_maps *maps, pid_t pid,
		    const struct ms_leak_thread *threads, size_t n, ms_raddr_t explain,
		    struct ms_leak_report *out);
void ms_leak_report_free(struct ms_leak_report *lr);

/* ---- the quick heap read (quick.c): arena headers and free-list sizes, no chunk walk ---- */

/* One arena as read from its header and free lists. */
struct ms_heap_quick_arena {
	ms_raddr_t addr;
	bool is_main;
	int mutex;
	uint64_t system_mem, top, fast, unsorted, small, large;
	bool capped; /* a free list was longer than the read budget allowed */
};

/* What one cheap heap read found. */
struct ms_heap_quick {
	struct ms_heap_quick_arena *arenas;
	size_t narenas, cap;
	uint64_t mmapped_mem, n_mmaps;
	uint64_t tcache;	   /* bytes in every thread's tcache (from the counts) */
	bool tcache_known;	   /* the tcaches were located */
	bool capped, inconsistent; /* some list cut short / some arena locked */
	uint64_t reads;		   /* remote reads done */
};

/*
 * Reads the arena ring (headers only: system_mem, top), the fastbin and bin
 * lists (sizes summed, at most max_reads chunk reads in all), mp_'s mmapped
 * counters, and the tcache counts of the threads in loc. The target must be
 * stopped. 0, or a negative code when main_arena itself cannot be read.
 * h is reset first and keeps its buffer between calls.
 */
int ms_heap_quick_read(const struct ms_heap_loc *loc, const struct ms_reader *r,
		       struct ms_heap_quick *h, uint64_t max_reads);
void ms_heap_quick_free(struct ms_heap_quick *h);

#endif
