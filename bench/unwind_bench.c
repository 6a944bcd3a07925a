// SPDX-License-Identifier: MIT
/*
 * Per-stack cost of each unwinder backend and of symbolising: one stopped
 * target, one 16 KiB copy, the median of many unwinds of that same copy.
 *   unwind_bench FP_TARGET CFI_TARGET [ITERATIONS]
 */
#include "attach/attach.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define COPY (16 * 1024)
#define MAXF 128

static pid_t child = -1;

static void kill_child(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, __WALL);
		child = -1;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "unwind_bench: %s: %s\n", what, strerror(errno));
	kill_child();
	exit(2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

/* Starts path, waits for READY and for it to sleep in read(2), stops it. */
static int start_stopped(const char *path, struct user_regs_struct *regs, int *ctl)
{
	int in[2], out[2], st;
	char buf[64];
	FILE *f;

	if (pipe(in) < 0 || pipe(out) < 0)
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*ctl = in[1];
	f = fdopen(out[0], "r");
	if (!f || !fgets(buf, sizeof(buf), f) || strcmp(buf, "READY\n") != 0)
		die("target did not start");
	fclose(f);
	for (;;) { /* interrupt until it is caught inside read(2) */
		if (ptrace(PTRACE_SEIZE, child, 0, 0) < 0)
			return -errno;
		if (ptrace(PTRACE_INTERRUPT, child, 0, 0) < 0 ||
		    waitpid(child, &st, __WALL) != child)
			die("interrupt");
		if (ptrace(PTRACE_GETREGS, child, 0, regs) < 0)
			die("getregs");
		if (regs->orig_rax == 0)
			return 0;
		ptrace(PTRACE_DETACH, child, 0, 0);
		sched_yield();
	}
}

static void bench_target(const char *path, const char *label, bool fp, size_t iters)
{
	static uint8_t copy[COPY];
	enum ms_unwind_backend bs[] = {MS_UNWIND_DWFL, MS_UNWIND_LIBUNWIND, MS_UNWIND_FP};
	struct user_regs_struct regs;
	uint64_t *t = calloc(iters, sizeof(*t));
	struct ms_symbolizer *sym;
	struct ms_error err;
	ms_raddr_t pcs[MAXF];
	size_t n = 0, i, k, nf;
	ssize_t got;
	int ctl;

	if (start_stopped(path, &regs, &ctl) < 0) {
		kill_child();
		printf("%s: cannot ptrace (%s): skipped\n", label, strerror(errno));
		return;
	}
	got = ms_mem_read_pid(child, regs.rsp, copy, COPY);
	if (got <= 0)
		die("copy");
	for (k = 0; k < MS_ARRAY_SIZE(bs); k++) {
		struct ms_stack_copy s = {
		    .regs = &regs, .data = copy, .len = (size_t)got, .addr = regs.rsp};
		struct ms_unwinder *u;
		uint64_t t0 = ms_now_ns(), first;

		if (bs[k] == MS_UNWIND_FP && !fp)
			continue;
		u = ms_unwinder_new(child, bs[k], &err);
		if (!u) {
			printf("%s: %s\n", ms_unwind_backend_name(bs[k]), err.msg);
			continue;
		}
		t0 = ms_now_ns() - t0;
		first = ms_now_ns();
		ms_unwind(u, &s, pcs, MAXF, &n);
		first = ms_now_ns() - first;
		for (i = 0; i < iters; i++) {
			uint64_t a = ms_now_ns();

			ms_unwind(u, &s, pcs, MAXF, &n);
			t[i] = ms_now_ns() - a;
		}
		printf(
		    "%-10s %-9s %2zu frames: median %6.2f us/stack (%.2f us/frame), first %.1f us, "
		    "setup %.1f ms\n",
		    label, ms_unwind_backend_name(bs[k]), n, median(t, iters) / 1000.0,
		    median(t, iters) / 1000.0 / (double)n, first / 1000.0, t0 / 1e6);
		ms_unwinder_free(u);
	}
	sym = ms_symbolizer_new(child, &err);
	if (sym) {
		uint64_t a = ms_now_ns(), cold, warm;
		const struct ms_sym_frame *fr;

		for (i = 0; i < n; i++)
			ms_symbolize(sym, pcs[i], i > 0, &fr, &nf);
		cold = ms_now_ns() - a;
		for (k = 0; k < iters; k++) {
			a = ms_now_ns();
			for (i = 0; i < n; i++)
				ms_symbolize(sym, pcs[i], i > 0, &fr, &nf);
			t[k] = ms_now_ns() - a;
		}
		warm = median(t, iters);
		printf("%-10s symbolise: first %.1f us/pc (uncached), then %.3f us/pc (cached)\n",
		       label, cold / 1000.0 / (double)n, warm / 1000.0 / (double)n);
		ms_symbolizer_free(sym);
	}
	close(ctl);
	kill_child();
	free(t);
}

int main(int argc, char **argv)
{
	size_t iters = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000;

	if (argc < 3) {
		fprintf(stderr, "usage: %s FP_TARGET CFI_TARGET [ITERATIONS]\n", argv[0]);
		return 64;
	}
	alarm(300);
	bench_target(argv[1], "fp-build", true, iters);
	bench_target(argv[2], "cfi-build", false, iters);
	return 0;
}
