// SPDX-License-Identifier: MIT
/*
 * The unwind half of memspy's per-sample work, on a real recording's samples:
 * replays a MEMSPY_UNWIND_DUMP file (the stack copies `memspy record` drained
 * from the target's ring) against the same, still running process, with libdw
 * alone (MEMSPY_UNWIND_CACHE=0, the unwinder before the CFI table) and with
 * the table, side by side in alternating rounds. Each sample is first copied
 * out of the dump buffer into a slot-sized buffer, as the drain hands it over.
 * Prints ns per sample (median of the rounds) and checks that both give the
 * same stacks. bench/unwind_replay.sh records the dump and runs this.
 *
 *   unwind_replay PID DUMP [ROUNDS]
 */
#include "unwind/unwind_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PCS 256

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* This thread's CPU time: on a shared machine, wall time measures the neighbours. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One pass over every sample; returns CPU ns per sample. Frames total in *frames. */
static double pass(struct ms_unwinder *u, const struct ms_unwind_dump_rec *v, size_t n,
		   uint8_t *slot, uint64_t *frames)
{
	ms_raddr_t pcs[MAX_PCS];
	uint64_t t0 = cpu_ns(), f = 0;

	for (size_t i = 0; i < n; i++) {
		struct ms_stack_copy s = {.regs = &v[i].regs,
					  .data = slot,
					  .len = v[i].len,
					  .addr = v[i].addr,
					  .at_entry = v[i].at_entry};
		size_t k = 0;

		memcpy(slot, v[i].data, v[i].len);
		if (u)
			ms_unwind(u, &s, pcs, MAX_PCS, &k);
		else
			k = slot[i % (v[i].len ? v[i].len : 1)]; /* the copy alone; keep it used */
		f += k;
	}
	*frames = f;
	return (double)(cpu_ns() - t0) / (double)n;
}

/*
 * How much of each copy the walk needs: the share of samples whose stack is
 * unchanged when only the first N bytes had been copied (what a drain that
 * reads a prefix of each slot first would get).
 */
static void depth_report(struct ms_unwinder *u, const struct ms_unwind_dump_rec *v, size_t n)
{
	static const size_t cuts[] = {256, 512, 1024, 2048, 4096};

	printf("  stacks unchanged when only a prefix of the copy is read:");
	for (size_t c = 0; c < MS_ARRAY_SIZE(cuts); c++) {
		size_t same = 0;

		for (size_t i = 0; i < n; i++) {
			ms_raddr_t a[MAX_PCS], b[MAX_PCS];
			size_t na = 0, nb = 0;
			struct ms_stack_copy s = {.regs = &v[i].regs,
						  .data = v[i].data,
						  .len = v[i].len,
						  .addr = v[i].addr,
						  .at_entry = v[i].at_entry};

			ms_unwind(u, &s, a, MAX_PCS, &na);
			s.len = MS_MIN(s.len, cuts[c]);
			ms_unwind(u, &s, b, MAX_PCS, &nb);
			same += na == nb && memcmp(a, b, na * sizeof(*a)) == 0;
		}
		printf(" %zu B: %.1f%%%s", cuts[c], 100.0 * (double)same / (double)n,
		       c + 1 < MS_ARRAY_SIZE(cuts) ? "," : "\n");
	}
}

int main(int argc, char **argv)
{
	struct ms_unwind_dump_rec *v;
	struct ms_unwinder *u[2];
	struct ms_error err;
	size_t n, maxlen = 0, rounds = argc > 3 ? strtoul(argv[3], NULL, 10) : 9, diff = 0;
	const char *names[2] = {"libdw (MEMSPY_UNWIND_CACHE=0)", "CFI table"};
	double *t[2], *tc;
	uint64_t frames[2] = {0, 0}, ignored, bytes = 0;
	uint8_t *slot;
	pid_t pid;

	if (argc < 3 || (pid = (pid_t)atoi(argv[1])) <= 0 || rounds == 0) {
		fprintf(stderr, "usage: %s PID DUMP [ROUNDS]\n", argv[0]);
		return 64;
	}
	if (ms_unwind_dump_load(argv[2], &v, &n) < 0 || n == 0) {
		fprintf(stderr, "unwind_replay: %s: not a readable, non-empty unwind dump\n", argv[2]);
		return 2;
	}
	unsetenv("MEMSPY_UNWIND_DUMP");
	unsetenv("MEMSPY_VERIFY_UNWIND");
	for (int k = 0; k < 2; k++) {
		setenv("MEMSPY_UNWIND_CACHE", k ? "1" : "0", 1);
		u[k] = ms_unwinder_new(pid, MS_UNWIND_DWFL, &err);
		if (!u[k]) {
			fprintf(stderr, "unwind_replay: %s\n", err.msg);
			return 2;
		}
		t[k] = ms_xcalloc(rounds, sizeof(double));
	}
	for (size_t i = 0; i < n; i++) {
		maxlen = v[i].len > maxlen ? v[i].len : maxlen;
		bytes += v[i].len;
	}
	slot = ms_xcalloc(1, maxlen ? maxlen : 1);
	tc = ms_xcalloc(rounds, sizeof(double));
	/* Same stacks, sample by sample (this also warms both: CFI read, rows compiled). */
	for (size_t i = 0; i < n; i++) {
		ms_raddr_t a[MAX_PCS], b[MAX_PCS];
		size_t na = 0, nb = 0;
		struct ms_stack_copy s = {.regs = &v[i].regs,
					  .data = v[i].data,
					  .len = v[i].len,
					  .addr = v[i].addr,
					  .at_entry = v[i].at_entry};

		ms_unwind(u[0], &s, a, MAX_PCS, &na);
		ms_unwind(u[1], &s, b, MAX_PCS, &nb);
		if (na != nb || memcmp(a, b, na * sizeof(*a)) != 0)
			diff++;
	}
	/* Alternating rounds: the machine's noise falls on both alike. */
	for (size_t r = 0; r < rounds; r++) {
		for (int k = 0; k < 2; k++)
			t[k][r] = pass(u[k], v, n, slot, &frames[k]);
		tc[r] = pass(NULL, v, n, slot, &ignored);
	}
	printf("unwind replay: %zu samples, %.1f frames/sample, %.0f bytes of stack copied per "
	       "sample (mean), %zu rounds\n",
	       n, (double)frames[1] / (double)n, (double)bytes / (double)n, rounds);
	for (int k = 0; k < 2; k++) {
		qsort(t[k], rounds, sizeof(double), cmp_double);
		printf("  %-30s %8.0f ns of CPU/sample (median; min %.0f, max %.0f)\n", names[k],
		       t[k][rounds / 2], t[k][0], t[k][rounds - 1]);
	}
	qsort(tc, rounds, sizeof(double), cmp_double);
	printf("  (of which copying the slot out: %.0f ns/sample)\n", tc[rounds / 2]);
	printf("  speed-up %.1fx; stacks that differ: %zu of %zu\n", t[0][rounds / 2] / t[1][rounds / 2],
	       diff, n);
	depth_report(u[1], v, n);
	for (int k = 0; k < 2; k++) {
		ms_unwinder_free(u[k]);
		free(t[k]);
	}
	free(slot);
	free(tc);
	ms_unwind_dump_free(v, n);
	return diff ? 1 : 0;
}
