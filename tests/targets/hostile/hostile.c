/* SPDX-License-Identifier: MIT */
/*
 * A target that attacks what memspy puts in it (tests/e2e/hostile_e2e.py).
 * Two threads malloc and free small blocks the whole time; once malloc's
 * entry holds a jmp (memspy's probe is in), the main thread attacks:
 *
 *   scribble  every 20 ms, random bytes over every anonymous writable
 *             mapping that appeared near libc after start (memspy's data
 *             and ring pages)
 *   unmap     pause the threads, munmap memspy's whole region, wait for
 *             malloc's entry to be restored, resume
 *   protect   the same with mprotect(PROT_NONE)
 *   forkexec  fork + exec /bin/true, and posix_spawn it, as fast as it can
 *   deep      the threads allocate at the end of random recursions up to 400
 *             deep through two functions: a new distinct stack at nearly
 *             every sample, deeper than memspy's stack copy and frame cap
 *
 * Prints its own truth at the end: "hostile: calls=N bytes=N forks=N
 * survived=1" (exit 0), or why it gave up (exit 1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/handshake.h"

extern char **environ;

static atomic_int stop, pause_req, paused;
static atomic_uint_fast64_t calls, bytes;
static int deep_mode;

static void *deep_b(int d, uint64_t *x, size_t n);

/* A path of random turns through two functions: 2^depth distinct stacks. */
static __attribute__((noinline)) void *deep_a(int d, uint64_t *x, size_t n)
{
	volatile char pad[24];
	void *p;

	pad[0] = (char)d;
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	p = !d ? malloc(n) : (*x & 1) ? deep_a(d - 1, x, n) : deep_b(d - 1, x, n);
	pad[1] = pad[0]; /* after the call: no tail call, every frame stays */
	return p;
}

static __attribute__((noinline)) void *deep_b(int d, uint64_t *x, size_t n)
{
	volatile char pad[40];
	void *p;

	pad[0] = (char)d;
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	p = !d ? malloc(n) : (*x & 2) ? deep_a(d - 1, x, n) : deep_b(d - 1, x, n);
	pad[2] = pad[0];
	return p;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	/* The raw syscall: nothing here may call malloc while memspy's pages are gone. */
	syscall(SYS_nanosleep, &ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *churn(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
	void *keep[64] = {0};

	while (!atomic_load(&stop)) {
		if (atomic_load(&pause_req)) {
			atomic_fetch_add(&paused, 1);
			while (atomic_load(&pause_req) && !atomic_load(&stop))
				nap_ms(1);
			atomic_fetch_sub(&paused, 1);
			continue;
		}
		for (int k = 0; k < 64; k++) {
			size_t n;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			n = 16 + x % 2000; /* small: never an mmap'd chunk near the libraries */
			free(keep[k]);
			keep[k] = deep_mode ? deep_a((int)(x % 400), &x, n) : malloc(n);
			if (keep[k])
				memset(keep[k], 1, 8);
			atomic_fetch_add(&calls, 2);
			atomic_fetch_add(&bytes, n);
		}
	}
	for (int k = 0; k < 64; k++)
		free(keep[k]);
	return NULL;
}

struct map {
	uintptr_t lo, hi;
	char perm[5];
	int anon;
};

/* /proc/self/maps, with a static buffer (no malloc: may run with memspy's pages gone). */
static int read_maps(struct map *m, int max)
{
	static char buf[1 << 20];
	ssize_t len = 0, n;
	int fd = open("/proc/self/maps", 0), cnt = 0;
	char *p;

	if (fd < 0)
		return 0;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	for (p = buf; *p && cnt < max;) {
		char *nl = strchr(p, '\n');
		unsigned long lo, hi, off;
		char perm[5];
		int path = 0;

		if (nl)
			*nl = 0; /* one line at a time: " %n" would skip into the next one */
		if (sscanf(p, "%lx-%lx %4s %lx %*s %*s %n", &lo, &hi, perm, &off, &path) >= 4) {
			m[cnt].lo = lo;
			m[cnt].hi = hi;
			memcpy(m[cnt].perm, perm, 5);
			/* No file: anonymous, also when named ([anon:...]), not [heap] or [stack]. */
			m[cnt].anon = path == 0 || p[path] == 0 || !strncmp(p + path, "[anon:", 6);
			cnt++;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return cnt;
}

static struct map before[4096], cur[4096];
static int nbefore;

static int was_there(uintptr_t lo)
{
	for (int i = 0; i < nbefore; i++)
		if (before[i].lo == lo)
			return 1;
	return 0;
}

static uintptr_t libc_at;

static int near_libc(uintptr_t a)
{
	uintptr_t d = a > libc_at ? a - libc_at : libc_at - a;

	return d < (2ull << 30);
}

static int patched(const void *fn)
{
	return *(const volatile unsigned char *)fn == 0xe9;
}

/* memspy's region: a new anonymous r-x mapping near libc, and what follows it. */
static int find_region(uintptr_t *lo, uintptr_t *hi)
{
	int n = read_maps(cur, 4096);

	for (int i = 0; i < n; i++) {
		if (!cur[i].anon || strncmp(cur[i].perm, "r-x", 3) || was_there(cur[i].lo) ||
		    !near_libc(cur[i].lo))
			continue;
		*lo = cur[i].lo;
		*hi = cur[i].hi;
		/* The data pages right after the code pages. */
		for (int j = i + 1; j < n && cur[j].lo == *hi && cur[j].anon; j++)
			*hi = cur[j].hi;
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "scribble";
	double secs = argc > 2 ? atof(argv[2]) : 4, t0, deadline;
	void *mfn = dlsym(RTLD_DEFAULT, "malloc");
	pthread_t th[2];
	uint64_t x = 88172645463325252ull, forks = 0, scribbles = 0, failed_children = 0;
	Dl_info di;

	if (!mfn || !dladdr(mfn, &di)) {
		fprintf(stderr, "hostile: cannot find malloc\n");
		return 1;
	}
	libc_at = (uintptr_t)di.dli_fbase;
	deep_mode = !strcmp(mode, "deep");
	for (long i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, churn, (void *)(i + 1));
	nap_ms(50); /* both threads have their arenas: their mappings are in the snapshot */
	nbefore = read_maps(before, 4096);
	printf("hostile: pid %d ready\n", (int)getpid());
	fflush(stdout);
	/* Wait for memspy's probe (at most 60 s). */
	for (int i = 0; i < 60000 && !patched(mfn); i++)
		nap_ms(1);
	if (!patched(mfn)) {
		fprintf(stderr, "hostile: malloc was never probed\n");
		atomic_store(&stop, 1);
		return 1;
	}
	printf("hostile: probed, attacking (%s)\n", mode);
	fflush(stdout);
	t0 = now_s();
	deadline = t0 + secs;
	if (!strcmp(mode, "unmap") || !strcmp(mode, "protect")) {
		uintptr_t lo, hi;
		int gone;

		nap_ms(300); /* let memspy sample a little first */
		atomic_store(&pause_req, 1);
		while (atomic_load(&paused) < 2)
			nap_ms(1);
		if (!find_region(&lo, &hi)) {
			fprintf(stderr, "hostile: memspy's region not found\n");
			atomic_store(&pause_req, 0);
			atomic_store(&stop, 1);
			return 1;
		}
		if (!strcmp(mode, "unmap"))
			munmap((void *)lo, hi - lo);
		else
			mprotect((void *)lo, hi - lo, PROT_NONE);
		/* Nothing may call malloc until memspy took its jmp back (at most 20 s). */
		for (int i = 0; i < 20000 && patched(mfn); i++)
			nap_ms(1);
		gone = !patched(mfn);
		dprintf(1, "hostile: %s %#lx-%#lx, probes %s\n", mode, (unsigned long)lo,
			(unsigned long)hi, gone ? "removed by memspy" : "STILL IN");
		if (!gone) {
			/* Allocating now would crash: stop here, alive, and say why. */
			dprintf(1, "hostile: gave up: memspy kept its probes in\n");
			_exit(1);
		}
		atomic_store(&pause_req, 0);
	}
	while (now_s() < deadline) {
		if (!strcmp(mode, "scribble")) {
			int n = read_maps(cur, 4096);

			for (int i = 0; i < n; i++) {
				if (!cur[i].anon || strncmp(cur[i].perm, "rw", 2) ||
				    was_there(cur[i].lo) || !near_libc(cur[i].lo))
					continue;
				for (uint64_t *w = (uint64_t *)cur[i].lo; w < (uint64_t *)cur[i].hi;
				     w++) {
					x ^= x << 13, x ^= x >> 7, x ^= x << 17;
					*w = x;
				}
			}
			scribbles++;
			nap_ms(20);
		} else if (!strcmp(mode, "forkexec")) {
			char *args[] = {"/bin/true", NULL};
			pid_t c;
			int st;

			if (forks % 2) {
				if (posix_spawn(&c, "/bin/true", NULL, NULL, args, environ))
					c = -1;
			} else {
				c = fork();
				if (c == 0) {
					execv("/bin/true", args);
					_exit(127);
				}
			}
			if (c > 0 && waitpid(c, &st, 0) == c && !(WIFEXITED(st) && !WEXITSTATUS(st)))
				failed_children++;
			forks++;
		} else {
			nap_ms(20);
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	{
		/* memspy is gone (the recording ends first): what it changed must be back. */
		struct sigaction sa;
		int tracer = hs_tracer_pid();

		sigaction(SIGTRAP, NULL, &sa);
		printf("hostile: calls=%" PRIu64 " bytes=%" PRIu64 " forks=%" PRIu64
		       " scribbles=%" PRIu64 " failed_children=%" PRIu64 " tracer=%d sigtrap=%s"
		       " probed=%d survived=1\n",
		       (uint64_t)calls, (uint64_t)bytes, forks, scribbles, failed_children, tracer,
		       sa.sa_handler == SIG_DFL ? "default" : "changed", patched(mfn));
	}
	return failed_children ? 1 : 0;
}
