// SPDX-License-Identifier: MIT
/*
 * mmapped chunks in the same VMA as a thread heap. Chunks too big for any
 * gap above the thread heap land right below its 64 MiB-aligned start. The
 * kernel merges them with the heap's mapping only when their flags match:
 * with overcommit_memory=0 the heap is VM_NORESERVE and malloc's own mmap
 * is not, so the target remaps each chunk in place with MAP_NORESERVE (the
 * header copied back: glibc keeps no record of where mmapped chunks are).
 * The VMA then holds the chunks and then heap_info, the layout seen in the
 * trixie root. Checks in its own maps that the merge happened, prints its
 * mallinfo2() as one JSON line, then waits for stdin to close (dump_e2e).
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/handshake.h"

#define HEAP_MAX (64ul << 20) /* x86_64, no hugetlb tunable */
#define BIG (65ul << 20)      /* larger than any gap above the heap (< 64 MiB) */

static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t ready;
static void *volatile keep[8];

static void *worker(void *arg)
{
	(void)arg;
	keep[0] = malloc(100); /* creates this thread's arena and its first heap */
	keep[1] = malloc(3000);
	pthread_barrier_wait(&ready);
	pthread_mutex_lock(&hold); /* held by main until exit: the arena stays attached */
	pthread_mutex_unlock(&hold);
	return NULL;
}

/* Same chunk, same place, now a MAP_NORESERVE mapping that merges with its neighbours. */
static int remap_noreserve(void *mem)
{
	size_t *c = (size_t *)mem - 2, hdr[2] = {c[0], c[1]};
	size_t len = c[0] + (c[1] & ~(size_t)7);
	void *p = mmap((char *)c - c[0], len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	c[0] = hdr[0];
	c[1] = hdr[1];
	return 0;
}

/* Start and end of the mapping containing a, from /proc/self/maps (no malloc). */
static int vma_of(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
	static char buf[1 << 16];
	size_t n = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY);

	if (fd < 0)
		return -1;
	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	for (char *l = buf; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		unsigned long s, e;

		if (sscanf(l, "%lx-%lx", &s, &e) == 2 && a >= s && a < e) {
			*lo = s;
			*hi = e;
			return 0;
		}
	}
	return -1;
}

int main(void)
{
	pthread_t t;
	uintptr_t heap, lo, hi;
	struct mallinfo2 m;
	char line[512];
	char c;

	pthread_mutex_lock(&hold);
	pthread_barrier_init(&ready, NULL, 2);
	if (pthread_create(&t, NULL, worker, NULL))
		return 3;
	pthread_barrier_wait(&ready);
	heap = (uintptr_t)keep[0] & ~(HEAP_MAX - 1);
	keep[2] = malloc(BIG);
	keep[3] = malloc(BIG);
	if (remap_noreserve(keep[2]) || remap_noreserve(keep[3]))
		return 2;
	if (vma_of(heap, &lo, &hi) || lo > (uintptr_t)keep[3] - 16 || lo > (uintptr_t)keep[2] - 16) {
		snprintf(line, sizeof(line),
			 "heap_merge: the kernel did not merge the mmapped chunks %p %p with the "
			 "thread heap at 0x%lx (its VMA: 0x%lx-0x%lx)\n",
			 keep[2], keep[3], (unsigned long)heap, (unsigned long)lo, (unsigned long)hi);
		if (write(2, line, strlen(line)) < 0)
			return 2;
		return 2;
	}
	m = mallinfo2();
	snprintf(line, sizeof(line),
		 "{\"pid\": %d, \"arena\": %zu, \"ordblks\": %zu, \"smblks\": %zu, \"hblks\": %zu, "
		 "\"hblkhd\": %zu, \"fsmblks\": %zu, \"uordblks\": %zu, \"fordblks\": %zu, "
		 "\"keepcost\": %zu, \"merged_vma\": \"0x%lx-0x%lx\"}\n",
		 (int)getpid(), m.arena, m.ordblks, m.smblks, m.hblks, m.hblkhd, m.fsmblks,
		 m.uordblks, m.fordblks, m.keepcost, (unsigned long)lo, (unsigned long)hi);
	hs_say(line);
	while (read(0, &c, 1) == 1 && c != 'q')
		;
	pthread_mutex_unlock(&hold);
	pthread_join(t, NULL);
	return 0;
}
