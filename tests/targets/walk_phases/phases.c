// SPDX-License-Identifier: MIT
/*
 * Test target for the walk-mode heap timeline: grows its heap in known
 * phases (grow, hold, free half, grow again) from two threads, prints its
 * own mallinfo2() at each boundary and waits for a line on stdin to go on.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_SMALL 6000
#define SMALL_SZ 3000 /* above tcache and fastbins: freed chunks land in bins */
#define N_BIG 6
#define BIG_SZ (600 * 1024) /* above the mmap threshold */

static void *small[2][2 * N_SMALL];
static void *big[2 * N_BIG];
static pthread_barrier_t go, done;
static int phase;

static void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* One thread's share of a phase, in its own arena. */
static void work(int id)
{
	switch (phase) {
	case 0: /* grow */
		for (int i = 0; i < N_SMALL; i++) {
			small[id][i] = malloc(SMALL_SZ + 16 * (i % 7));
			memset(small[id][i], 0xab, 64);
			escape(small[id][i]);
		}
		break;
	case 2: /* free half: every other block, so nothing merges back into top */
		for (int i = 0; i < N_SMALL; i += 2) {
			free(small[id][i]);
			small[id][i] = NULL;
		}
		break;
	case 3: /* grow again, more than before */
		for (int i = N_SMALL; i < 2 * N_SMALL; i++) {
			small[id][i] = malloc(2 * SMALL_SZ + 16 * (i % 5));
			memset(small[id][i], 0xcd, 64);
			escape(small[id][i]);
		}
		break;
	}
}

static void *thread_main(void *arg)
{
	for (;;) {
		pthread_barrier_wait(&go);
		if (phase < 0)
			return NULL;
		work((int)(long)arg);
		pthread_barrier_wait(&done);
	}
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *name)
{
	struct mallinfo2 mi = mallinfo2();

	/* stdout is unbuffered: printing allocates nothing after mallinfo2. */
	printf("PHASE %s mono=%.9f uordblks=%zu fordblks=%zu keepcost=%zu arena=%zu hblkhd=%zu\n",
	       name, mono(), mi.uordblks, mi.fordblks, mi.keepcost, mi.arena, mi.hblkhd);
}

static int wait_line(void)
{
	char line[64];

	return fgets(line, sizeof(line), stdin) ? 0 : -1;
}

int main(void)
{
	static const char *const names[] = {"grow", "hold", "free_half", "grow_again"};
	pthread_t t;

	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stdin, NULL, _IONBF, 0);
	pthread_barrier_init(&go, NULL, 2);
	pthread_barrier_init(&done, NULL, 2);
	pthread_create(&t, NULL, thread_main, (void *)1L);
	printf("READY pid=%d\n", (int)getpid());
	if (wait_line())
		return 1;
	for (phase = 0; phase < 4; phase++) {
		pthread_barrier_wait(&go);
		work(0);
		if (phase == 0 || phase == 3)
			for (int i = 0; i < N_BIG / 2; i++)
				escape(big[phase / 3 * N_BIG / 2 + i] = malloc(BIG_SZ + 4096 * i));
		if (phase == 2)
			for (int i = 0; i < N_BIG / 2; i += 2)
				free(big[i]), big[i] = NULL;
		pthread_barrier_wait(&done);
		report(names[phase]);
		if (wait_line())
			return 1;
	}
	phase = -1;
	pthread_barrier_wait(&go);
	pthread_join(t, NULL);
	printf("DONE\n");
	return 0;
}
