// SPDX-License-Identifier: MIT
/*
 * Unwind end to end: runs a target blocked at a known depth, seizes it,
 * copies 16 KiB from rsp, unwinds with each backend named on the command
 * line and, after the target was killed, symbolises and compares with the
 * stack the target printed. Also: a copy too short (partial, correct
 * prefix), the same short copy with a fallback reader (full stack).
 *   unwind_stack TARGET ARG|- [elfutils] [libunwind] [fp]
 */
#include "attach/attach.h"
#include "unwind/unwind.h"
#include "tests/lib/mstest.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define COPY (16 * 1024)
#define MAXF 64
#define MAXB 3

static pid_t child = -1;


static void kill_child(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		while (waitpid(child, NULL, __WALL) < 0 && errno == EINTR)
			;
		child = -1;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "unwind_stack: %s\n", what);
	kill_child();
	exit(1);
}

struct expect {
	char *names[32];
	bool inlined[32];
	size_t n;
	bool libc_tail; /* "+": libc frames may follow the last name */
	char line_fn[128], line_file[128];
	int line;
};

static FILE *spawn(const char *path, const char *arg, int *ctl_wr)
{
	int in[2], out[2];

	if (pipe(in) < 0 || pipe(out) < 0)
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		if (arg)
			execl(path, path, arg, (char *)NULL);
		else
			execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*ctl_wr = in[1];
	return fdopen(out[0], "r");
}

static void read_expect(FILE *f, struct expect *e)
{
	char line[1024];

	memset(e, 0, sizeof(*e));
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, "EXPECT ", 7) == 0) {
			char *save, *t;

			for (t = strtok_r(line + 7, " ", &save); t && e->n < 32;
			     t = strtok_r(NULL, " ", &save)) {
				size_t l = strlen(t);

				if (strcmp(t, "+") == 0) {
					e->libc_tail = true;
					continue;
				}
				e->inlined[e->n] = l > 1 && t[l - 1] == '*';
				if (e->inlined[e->n])
					t[l - 1] = 0;
				e->names[e->n++] = strdup(t);
			}
		} else if (strncmp(line, "LINE ", 5) == 0) {
			if (sscanf(line + 5, "%127s %127s %d", e->line_fn, e->line_file,
				   &e->line) != 3)
				die("bad LINE");
		} else if (strcmp(line, "READY") == 0) {
			return;
		}
	}
	die("target ended before READY");
}

/* "long uwns::descend<long>(long, int)" matches "uwns::descend<long>". */
static bool name_matches(const char *fn, const char *want)
{
	size_t l = strlen(want);
	const char *p;

	for (p = strstr(fn, want); p; p = strstr(p + 1, want))
		if ((p == fn || p[-1] == ' ') && (p[l] == 0 || p[l] == '('))
			return true;
	return false;
}

struct flat {
	const struct ms_sym_frame *f[MAXF * 4];
	size_t n;
};

/* Root first, inline-expanded. */
static void flatten(struct ms_symbolizer *sym, const ms_raddr_t *pcs, size_t n, struct flat *out)
{
	size_t i, j;

	out->n = 0;
	for (i = n; i-- > 0;) {
		const struct ms_sym_frame *fr;
		size_t nf;

		if (ms_symbolize(sym, pcs[i], i > 0, &fr, &nf) < 0)
			die("ms_symbolize");
		for (j = nf; j-- > 0 && out->n < MS_ARRAY_SIZE(out->f);)
			out->f[out->n++] = &fr[j];
	}
}

static void print_flat(const char *label, const struct flat *fl)
{
	size_t i;

	fprintf(stderr, "  %s:", label);
	for (i = 0; i < fl->n; i++)
		fprintf(stderr, " %s%s[%s:%d %s]", fl->f[i]->function, fl->f[i]->inlined ? "*" : "",
			fl->f[i]->file ? strrchr(fl->f[i]->file, '/')
					     ? strrchr(fl->f[i]->file, '/') + 1
					     : fl->f[i]->file
				       : "-",
			fl->f[i]->line, fl->f[i]->module);
	fputc('\n', stderr);
}

static void check_stack(const char *label, const struct flat *fl, const struct expect *e)
{
	size_t i, start;

	for (start = 0; start < fl->n; start++)
		if (strcmp(fl->f[start]->function, e->names[0]) == 0)
			break;
	CHECK(start < fl->n, "%s: %s not found", label, e->names[0]);
	if (start >= fl->n)
		return;
	for (i = 0; i < e->n; i++) {
		const struct ms_sym_frame *f;

		CHECK(start + i < fl->n, "%s: stack ends before %s", label, e->names[i]);
		if (start + i >= fl->n)
			return;
		f = fl->f[start + i];
		CHECK(name_matches(f->function, e->names[i]), "%s: frame %zu is %s, expected %s",
		      label, i, f->function, e->names[i]);
		CHECK(f->inlined == e->inlined[i], "%s: %s inlined=%d, expected %d", label,
		      f->function, f->inlined, e->inlined[i]);
		if (e->line && strcmp(e->names[i], e->line_fn) == 0) {
			const char *b = f->file ? strrchr(f->file, '/') : NULL;

			b = b ? b + 1 : f->file;
			CHECK(b && strcmp(b, e->line_file) == 0 && f->line == e->line,
			      "%s: %s at %s:%d, expected %s:%d", label, f->function, b ? b : "-",
			      f->line, e->line_file, e->line);
		}
	}
	for (i = start + e->n; i < fl->n; i++)
		CHECK(e->libc_tail && strncmp(fl->f[i]->module, "libc.so", 7) == 0,
		      "%s: unexpected leaf frame %s in %s", label, fl->f[i]->function,
		      fl->f[i]->module);
}

int main(int argc, char **argv)
{
	struct ms_unwinder *uw[MAXB] = {0};
	enum ms_unwind_backend be[MAXB];
	ms_raddr_t full[MAXB][MAXF], shrt[MAXB][MAXF], fb[MAXB][MAXF];
	size_t nfull[MAXB], nshrt[MAXB], nfb[MAXB], nb = 0, i, k;
	struct user_regs_struct regs;
	struct ms_symbolizer *sym;
	struct ms_proc *proc = NULL;
	struct ms_reader reader;
	struct ms_error err = {0};
	struct expect e;
	uint8_t *copy = malloc(COPY);
	ssize_t got;
	int ctl, st, r;
	FILE *out;

	if (argc < 4) {
		fprintf(stderr, "usage: %s TARGET ARG|- BACKEND...\n", argv[0]);
		return 2;
	}
	alarm(60);
	for (i = 3; i < (size_t)argc && nb < MAXB; i++)
		if (ms_unwind_backend_from_name(argv[i], &be[nb++]) < 0)
			die("unknown backend");

	out = spawn(argv[1], strcmp(argv[2], "-") ? argv[2] : NULL, &ctl);
	read_expect(out, &e);
	r = ms_proc_seize(child, NULL, &proc, &err);
	if (r == -EPERM) {
		fprintf(stderr, "SKIP: %s\n", err.msg);
		kill_child();
		return 77;
	}
	if (r < 0) {
		fprintf(stderr, "ms_proc_seize: %s\n", err.msg);
		die("seize");
	}
	/* READY comes just before the target calls down the chain: a stop may
	 * catch it on the way, so stop until it is caught inside read(2). */
	for (i = 0;; i++) {
		if (ms_proc_stop_all(proc) < 0 || ms_proc_get_regs(proc, child, &regs) < 0)
			die("stopping the target");
		if (regs.orig_rax == 0 /* SYS_read */)
			break;
		if (i == 10000)
			die("the target never blocked in read(2)");
		if (ms_proc_resume_all(proc) < 0)
			die("resuming the target");
		sched_yield();
	}
	got = ms_mem_read_pid(child, regs.rsp, copy, COPY);
	if (got <= 0)
		die("reading the stack");
	ms_proc_reader(proc, &reader);

	sym = ms_symbolizer_new(child, &err);
	if (!sym) {
		fprintf(stderr, "ms_symbolizer_new: %s\n", err.msg);
		die("symbolizer");
	}
	for (k = 0; k < nb; k++) {
		struct ms_stack_copy s = {.regs = &regs,
					  .data = copy,
					  .len = (size_t)got,
					  .addr = regs.rsp,
					  .at_entry = be[k] == MS_UNWIND_FP};

		uw[k] = ms_unwinder_new(child, be[k], &err);
		if (!uw[k]) {
			fprintf(stderr, "ms_unwinder_new(%s): %s\n", argv[3 + k], err.msg);
			die("unwinder");
		}
		CHECK(ms_unwind(uw[k], &s, full[k], MAXF, &nfull[k]) == 0, "unwind full");
		/* Too short for the whole chain: a correct prefix, no more. */
		s.len = 48;
		CHECK(ms_unwind(uw[k], &s, shrt[k], MAXF, &nshrt[k]) == 0, "unwind short");
		/* The same short copy with the stopped thread as fallback. */
		s.fallback = &reader;
		CHECK(ms_unwind(uw[k], &s, fb[k], MAXF, &nfb[k]) == 0, "unwind fallback");
		/* After a refresh (as after dlopen) the same copy gives the same stack. */
		{
			ms_raddr_t again[MAXF];
			size_t nagain;

			s.fallback = NULL;
			s.len = (size_t)got;
			CHECK(ms_unwinder_refresh(uw[k]) == 0, "refresh");
			CHECK(ms_unwind(uw[k], &s, again, MAXF, &nagain) == 0 &&
				  nagain == nfull[k] &&
				  memcmp(again, full[k], nagain * sizeof(*again)) == 0,
			      "%s: a different stack after refresh", argv[3 + k]);
		}
	}
	CHECK(ms_symbolizer_refresh(sym) == 0, "symbolizer refresh");
	/* Let the target finish (it must come out unharmed), then symbolise
	 * after it is gone: the symbolizer kept its files. */
	ms_proc_free(proc);
	close(ctl);
	while ((r = waitpid(child, &st, 0)) < 0 && errno == EINTR)
		;
	CHECK(r == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the target did not exit cleanly (status 0x%x)", st);
	child = -1;

	for (k = 0; k < nb; k++) {
		struct flat fl;
		const char *name = ms_unwind_backend_name(be[k]);

		flatten(sym, full[k], nfull[k], &fl);
		fprintf(stderr, "%s: %zu pcs\n", name, nfull[k]);
		print_flat("full", &fl);
		check_stack(name, &fl, &e);

		CHECK(nshrt[k] >= 1 && nshrt[k] < nfull[k], "%s: short copy gave %zu of %zu", name,
		      nshrt[k], nfull[k]);
		for (i = 0; i < nshrt[k] && i < nfull[k]; i++)
			CHECK(shrt[k][i] == full[k][i], "%s: short copy pc %zu differs", name, i);
		fprintf(stderr, "  short: %zu pcs, fallback: %zu pcs\n", nshrt[k], nfb[k]);
		CHECK(nfb[k] == nfull[k], "%s: fallback gave %zu, full %zu", name, nfb[k],
		      nfull[k]);
		for (i = 0; i < nfb[k] && i < nfull[k]; i++)
			CHECK(fb[k][i] == full[k][i], "%s: fallback pc %zu differs", name, i);
		if (k > 0 && be[k] != MS_UNWIND_FP && be[0] != MS_UNWIND_FP) {
			/* The CFI backends agree on the frames of the chain. */
			size_t m = MS_MIN(nfull[k], nfull[0]);

			for (i = 0; i < m && i < e.n; i++)
				CHECK(full[k][i] == full[0][i], "%s vs %s: pc %zu differs", name,
				      ms_unwind_backend_name(be[0]), i);
		}
		ms_unwinder_free(uw[k]);
	}
	ms_symbolizer_free(sym);
	for (i = 0; i < e.n; i++)
		free(e.names[i]);
	fclose(out);
	free(copy);
	return ms_test_result("unwind_stack");
}
