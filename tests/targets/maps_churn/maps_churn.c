// SPDX-License-Identifier: MIT
/*
 * Target for the maps consistency tests: THREADS threads that do nothing but
 * malloc and free blocks of 8 B to 68 KiB, so that each creates its own arena
 * and keeps growing and trimming it (mprotect of the arena's heap, the churn
 * that makes /proc/PID/maps inconsistent on kernels >= 6.17).
 *   maps_churn THREADS
 * stdout: "READY <pid>" once every thread has allocated; stdin "q"/EOF: exit 0.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 256

static atomic_int stop, started;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *worker(void *arg)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
	void *slot[SLOTS] = {0};
	bool counted = false;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t i = rnd(&s) % SLOTS;
		/* One block in eight is large: the arena's top grows past the trim threshold and shrinks. */
		size_t sz = rnd(&s) % 8 ? 8 + rnd(&s) % 4096 : 8192 + rnd(&s) % (60 * 1024);

		free(slot[i]);
		slot[i] = malloc(sz);
		memset(slot[i], (int)i, sz < 64 ? sz : 64);
		if (!counted) {
			counted = true;
			atomic_fetch_add(&started, 1);
		}
	}
	for (size_t i = 0; i < SLOTS; i++)
		free(slot[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	pthread_t th[64];
	char c, buf[64];

	if (n < 1 || n > 64)
		return 64;
	for (int i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i))
			return 3;
	while (atomic_load(&started) < n)
		usleep(100);
	snprintf(buf, sizeof(buf), "READY %d\n", (int)getpid());
	if (write(1, buf, strlen(buf)) < 0)
		return 3;
	while (read(0, &c, 1) == 1 && c != 'q')
		;
	atomic_store(&stop, 1);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return 0;
}
