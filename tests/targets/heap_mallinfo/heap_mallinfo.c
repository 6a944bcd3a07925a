// SPDX-License-Identifier: MIT
/*
 * Target for `memspy dump`: main + N threads allocate a size mix from 16 B to
 * beyond the mmap threshold, free some, then print their own mallinfo2() as
 * one JSON line and block until stdin closes. Optionally a forked copy
 * corrupts its own heap first (the corruption tests attach to that copy).
 *   heap_mallinfo [threads [blocks-per-thread [corrupt-mode]]]
 *   corrupt-mode: none | size | fastcycle | tcachenext | libcremap
 * libcremap damages nothing: the process maps libc's file again, private,
 * writable and 64 GiB long (mmap allows a length past the file's end), as a
 * hostile process may, and prints its mallinfo2() as with none.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/handshake.h"

static int nblocks = 4000;
static pthread_barrier_t done;
static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;
static void *volatile sink;

/* Keeps the compiler from dropping allocations. */
static void escape(void *p)
{
	sink = p;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t pick_size(uint64_t *s)
{
	unsigned r = (unsigned)(rnd(s) % 1000);

	if (r < 600)
		return 16 + rnd(s) % 113; /* 16..128 */
	if (r < 850)
		return 129 + rnd(s) % 1000;
	if (r < 990)
		return 1200 + rnd(s) % 60000;
	return 140000 + rnd(s) % 200000; /* beyond the default mmap threshold */
}

static void **work(unsigned id)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * (id + 1);
	void **v = calloc((size_t)nblocks, sizeof(*v));

	for (int i = 0; i < nblocks; i++) {
		v[i] = (i % 17 == 0) ? calloc(1, pick_size(&s)) : malloc(pick_size(&s));
		memset(v[i], 0x5a, 16);
		escape(v[i]);
	}
	for (int i = 0; i < nblocks; i += 3) {
		free(v[i]);
		v[i] = NULL;
	}
	/* Some reuse so the unsorted bin gets sorted into small and large bins. */
	for (int i = 0; i < 50; i++)
		escape(malloc(24));
	for (int i = 1; i < nblocks; i += 29)
		if (v[i])
			v[i] = realloc(v[i], pick_size(&s));
	escape(malloc(100 + id)); /* one leak per thread */
	return v;
}

static void *thread_main(void *arg)
{
	escape(work((unsigned)(uintptr_t)arg));
	pthread_barrier_wait(&done);
	/* Stay alive: an exiting thread would flush its tcache. */
	pthread_mutex_lock(&hold);
	pthread_mutex_unlock(&hold);
	return NULL;
}

static void print_mallinfo(void)
{
	struct mallinfo2 m = mallinfo2();
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"pid\": %d, \"arena\": %zu, \"ordblks\": %zu, \"smblks\": %zu, \"hblks\": %zu, "
		 "\"hblkhd\": %zu, \"fsmblks\": %zu, \"uordblks\": %zu, \"fordblks\": %zu, "
		 "\"keepcost\": %zu}\n",
		 (int)getpid(), m.arena, m.ordblks, m.smblks, m.hblks, m.hblkhd, m.fsmblks,
		 m.uordblks, m.fordblks, m.keepcost);
	hs_say(buf);
}

/* Blocks until stdin closes or says 'q'. No malloc happens here. */
static void wait_stdin(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != 'q')
		;
}

/* The forked copy damages its own heap in one precise way. */
static void corrupt(const char *mode, void **keep)
{
	if (!strcmp(mode, "size")) {
		/* An in-use chunk's size field becomes impossible. */
		void *x = malloc(0x100);
		/* volatile, escaped: the compiler must not drop the allocation or the store */
		volatile size_t *hdr = (volatile size_t *)x - 1;

		escape(x);
		escape(malloc(0x100));
		*hdr = 0x4141414141414141ull; /* what a string overflow leaves */
		(void)keep;
	} else if (!strcmp(mode, "fastcycle")) {
		/* Two 0x30 chunks into the fastbin (tcache full first), then a -> b -> a. */
		void *t[7], *a, *b;

		mallopt(M_MXFAST, 0x80);
		for (int i = 0; i < 7; i++)
			t[i] = malloc(0x28);
		a = malloc(0x28);
		b = malloc(0x28);
		escape(malloc(0x28));
		for (int i = 0; i < 7; i++)
			free(t[i]);
		free(a);
		free(b); /* fastbin: b -> a -> NULL */
		/* a's next (mangled since 2.32) now points back at b. */
		*(volatile uintptr_t *)a = (((uintptr_t)a) >> 12) ^ ((uintptr_t)b - 16);
		escape(a);
		escape(b);
	} else if (!strcmp(mode, "tcachenext")) {
		void *a = malloc(0x48), *b = malloc(0x48);

		escape(malloc(0x48));
		free(a);
		free(b); /* tcache: b -> a */
		*(volatile uintptr_t *)b = 0x4141414141414148ull;
		escape(a);
		escape(b);
	}
}

/* libc's file mapped again, writable and far longer than the file. */
static int remap_libc(void)
{
	Dl_info info;
	int fd;

	if (!dladdr((void *)malloc, &info) || !info.dli_fname)
		return -1;
	fd = open(info.dli_fname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (mmap(NULL, 64ull << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0) ==
	    MAP_FAILED)
		return -1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	const char *mode = argc > 3 ? argv[3] : "none";
	pthread_t *th;
	void **mine;

	if (argc > 2)
		nblocks = atoi(argv[2]);
	if (nthreads < 0 || nthreads > 64 || nblocks < 10)
		return 2;
	th = calloc((size_t)nthreads, sizeof(*th));
	pthread_barrier_init(&done, NULL, (unsigned)nthreads + 1);
	pthread_mutex_lock(&hold);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)(i + 1)) != 0)
			return 2;
	mine = work(0);
	pthread_barrier_wait(&done);
	if (!strcmp(mode, "libcremap")) {
		if (remap_libc() != 0)
			return 2;
		mode = "none";
	}
	if (strcmp(mode, "none")) {
		pid_t child = fork();

		if (child < 0)
			return 2;
		if (child == 0) {
			char buf[64];

			corrupt(mode, mine);
			/* No mallinfo2() here: glibc's own walk would loop on a fastbin cycle. */
			snprintf(buf, sizeof(buf), "{\"pid\": %d}\n", (int)getpid());
			hs_say(buf);
			wait_stdin();
			_exit(0);
		}
		/* The parent waits for its damaged copy and reports how it ended. */
		{
			int st;

			if (waitpid(child, &st, 0) != child)
				return 2;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}
	print_mallinfo();
	wait_stdin();
	return 0;
}
