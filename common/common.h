/* SPDX-License-Identifier: MIT */
/*
 * common: what every module of memspy shares. Logging, allocation wrappers
 * that abort on out-of-memory, error codes and the error report, the memory
 * reader interface, signal flags, and atomically written output files.
 */
#ifndef MEMSPY_COMMON_H
#define MEMSPY_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* An address in the target's address space. Never a pointer in ours. */
typedef uint64_t ms_raddr_t;

#define MS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MS_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- exit codes (cmd/ is the only place that exits) ---- */
enum {
	MS_EXIT_OK = 0,      /* complete */
	MS_EXIT_PARTIAL = 1, /* output written, but incomplete (target exited, heap corrupt, ...) */
	MS_EXIT_FAILED = 2,  /* nothing useful produced */
	MS_EXIT_USAGE = 64,  /* bad command line (EX_USAGE) */
};

/* ---- logging: the only code in the libraries that prints ---- */
enum ms_log_level { MS_LOG_ERROR, MS_LOG_WARN, MS_LOG_INFO, MS_LOG_DEBUG };
extern int ms_log_verbosity; /* messages above this level are dropped; default MS_LOG_WARN */
void ms_log(enum ms_log_level level, const char *fmt, ...) MS_PRINTF(2, 3);
#define ms_error(...) ms_log(MS_LOG_ERROR, __VA_ARGS__)
#define ms_warn(...) ms_log(MS_LOG_WARN, __VA_ARGS__)
#define ms_info(...) ms_log(MS_LOG_INFO, __VA_ARGS__)
#define ms_debug(...) ms_log(MS_LOG_DEBUG, __VA_ARGS__)

/* ---- allocation: abort on OOM, callers never check NULL ---- */
void *ms_xmalloc(size_t n);
void *ms_xcalloc(size_t nmemb, size_t size);
void *ms_xrealloc(void *p, size_t n);
/* Grows *p (of elements of size elem) so that index need-1 fits; *cap updated. */
void ms_xgrow(void **p, size_t *cap, size_t need, size_t elem);
char *ms_xstrdup(const char *s);
char *ms_xasprintf(const char *fmt, ...) MS_PRINTF(1, 2);

/*
 * ---- errors ----
 * Library functions return 0 or a negative code: -errno, or one of memspy's
 * own codes below (all beyond errno's range). ms_strerror() names either.
 */
#define MS_ERRORS(X)                                                                   \
	X(MS_E_NO_GLIBC, "the target does not use glibc malloc")                       \
	X(MS_E_TRUNCATED, "data truncated")                                            \
	X(MS_E_CORRUPT, "inconsistent data in the target")                             \
	X(MS_E_NOT_FOUND, "not found")                                                 \
	X(MS_E_TARGET_EXITED, "the target process exited")                             \
	X(MS_E_MAPS_UNSTABLE, "the process's memory map kept changing while it was read") \
	X(MS_E_INTERRUPTED, "interrupted by a signal to memspy")                       \
	X(MS_E_UNSUPPORTED, "not supported for this target")                           \
	X(MS_E_KERNEL_THREAD, "the pid is a kernel thread")                            \
	X(MS_E_ZOMBIE, "the process is a zombie")                                      \
	X(MS_E_ALREADY_TRACED, "the process is already being traced")                 \
	X(MS_E_SELF, "memspy cannot attach to itself") \
	X(MS_E_TAMPERED, "memspy's pages in the target were overwritten")

enum ms_err_code {
	MS_E_BASE = 10000,
#define MS_X_ENUM(name, text) name,
	MS_ERRORS(MS_X_ENUM)
#undef MS_X_ENUM
	MS_E_LAST
};

/* Text for a 0/-errno/-MS_E_* code. Never NULL; static storage. */
const char *ms_strerror(int code);

/*
 * A report filled by library code when an operation fails: what failed
 * (msg) and, when the cause can be diagnosed, what to do about it (hint).
 * cmd/ prints "memspy: <msg>" and "hint: <hint>".
 */
struct ms_error {
	int code;
	char msg[512];
	char hint[1024];
};
/* Sets e->code = code and formats e->msg; no-op when e is NULL. Returns code. */
int ms_error_set(struct ms_error *e, int code, const char *fmt, ...) MS_PRINTF(3, 4);
/* Formats e->hint; no-op when e is NULL. */
void ms_error_hint(struct ms_error *e, const char *fmt, ...) MS_PRINTF(2, 3);

/*
 * ---- memory reader ----
 * How heapwalk and unwind read the target: through this interface only, so
 * that they also run on synthetic memory images in unit tests and fuzzers.
 * read() copies up to len bytes at addr into buf and returns the number of
 * bytes copied from the start (short at an unreadable boundary, 0 if addr
 * itself is unreadable) or a negative errno for a hard failure.
 */
/* One piece of a scattered read: len bytes at addr (inside one mapping) into buf. */
struct ms_rvec {
	ms_raddr_t addr;
	void *buf;
	size_t len;
};

struct ms_reader {
	ssize_t (*read)(void *ctx, ms_raddr_t addr, void *buf, size_t len);
	void *ctx;
	/*
	 * Optional, NULL when absent (callers then use read() per piece): n
	 * scattered pieces in as few system calls as possible (process_vm_readv
	 * takes 1024 iovecs per call). Returns how many pieces, from the first,
	 * were read whole (it stops at one that is not), or a negative errno.
	 */
	ssize_t (*readv)(void *ctx, const struct ms_rvec *v, size_t n);
};
/* 0 when all len bytes were read, -EFAULT when short, or the reader's error. */
int ms_read_exact(const struct ms_reader *r, ms_raddr_t addr, void *buf, size_t len);

/*
 * ---- signals to memspy ----
 * SIGINT, SIGTERM and SIGHUP only set a flag (the target is sacred: cleanup
 * happens in the main loop). They, and SIGCHLD, stay blocked except while
 * memspy waits in ms_signals_wait(), so no wake-up is lost.
 */
void ms_signals_init(void);
/* The first terminating signal received (SIGINT, SIGTERM or SIGHUP), or 0. */
int ms_signals_stop_requested(void);
/*
 * Sleeps until a signal arrives (SIGCHLD included) or timeout_ms passes
 * (-1 = no timeout). Returns 1 if woken by a signal, 0 on timeout.
 */
int ms_signals_wait(int timeout_ms);
/* Restores the mask and dispositions from before ms_signals_init (for fork+exec). */
void ms_signals_reset_for_child(void);

/*
 * ---- numbers for people ----
 * All return buf. Bytes in binary units with three significant digits
 * ("512 B", "2.02 MiB", "25.3 MiB", "255 MiB"); counts with thousands
 * separators ("1,234,567"); durations in the unit that reads best
 * ("840 us", "12.5 ms", "3.20 s").
 */
const char *ms_fmt_bytes(char *buf, size_t size, uint64_t bytes);
const char *ms_fmt_count(char *buf, size_t size, uint64_t n);
const char *ms_fmt_duration(char *buf, size_t size, uint64_t ns);

/*
 * ---- text from the target ----
 * Names come from the target's binaries and file names: any bytes. Output
 * formats need UTF-8 that their strict readers take (XML, JSON, protobuf
 * strings): no overlong forms, no surrogates, nothing past U+10FFFF.
 */
/* Length (1-4) of the valid UTF-8 sequence at s (NUL-terminated), or 0. */
size_t ms_utf8_len(const char *s);
/* A malloc'd copy of s with each byte that starts no valid sequence made '?'. */
char *ms_utf8_fix(const char *s);
/* True when all of s is valid UTF-8. */
bool ms_utf8_valid(const char *s);
/*
 * Writes s for a terminal: control characters (C0 but newline and tab, DEL,
 * and the C1 range U+0080-U+009F, which holds CSI) become '?', so a name
 * the target chose cannot drive the user's terminal. Other bytes as they are.
 */
void ms_fputs_terminal(const char *s, FILE *f);
/* The same replacement in place (the result is never longer). */
void ms_terminal_clean(char *s);

/* FNV-1a style hash of n 64-bit words, mixed per word (stacks of PCs). */
uint64_t ms_hash_u64s(const uint64_t *v, size_t n);

/* ---- time ---- */
uint64_t ms_now_ns(void); /* CLOCK_MONOTONIC */

/*
 * ---- atomically written output files ----
 * ms_afile_open creates a temporary file next to path (so an unwritable
 * directory is found before memspy attaches to anything); ms_afile_commit
 * flushes it and renames it over path; ms_afile_abort removes it. Either
 * way no half-written file is ever left at path.
 */
struct ms_afile {
	FILE *fp;       /* write here */
	char *path;     /* final name */
	char *tmp_path; /* temporary name, in the same directory */
};
int ms_afile_open(struct ms_afile *af, const char *path, struct ms_error *err);
int ms_afile_commit(struct ms_afile *af, struct ms_error *err);
void ms_afile_abort(struct ms_afile *af);

#endif
