// SPDX-License-Identifier: MIT
/*
 * memspy-jit-target: allocations made from code generated at run time, as a
 * JIT compiler (V8, the JVM, LuaJIT, CPython 3.12's perf trampolines) makes
 * it, and named the way such runtimes name it for perf: lines
 * "START SIZE name" (hex) in /tmp/perf-PID.map.
 *
 *   memspy-jit-target ITERS
 *
 * Two generated functions with frame pointers: jit:outer calls jit:inner,
 * which calls jit_alloc (compiled code), which calls malloc. The map file
 * first names jit:inner's address "jit:stale" and then, on a later line,
 * "jit:inner", as a JIT does when it reuses code space: the later line wins.
 * JIT_MAP=symlink makes the map a symlink to a file holding those lines,
 * JIT_MAP=fifo a FIFO, JIT_MAP=none leaves it out: memspy must not follow
 * the first, must not block on the second, and names none of the three.
 * stdout: "ready PID"; waits for "go"; "expect-bytes N" and "done"; waits
 * for a line; "selfcheck ok". The files are removed at exit.
 */
#include "../common/handshake.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define ALLOC_BYTES 1000

static char map_path[64], real_path[80];

__attribute__((noinline)) static void *jit_alloc(size_t n)
{
	void *p = malloc(n);

	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

static void remove_map(void)
{
	unlink(map_path);
	unlink(real_path);
}

int main(int argc, char **argv)
{
	/* outer (offset 0): push rbp; mov rbp,rsp; call inner; pop rbp; ret */
	static const uint8_t outer[] = {0x55, 0x48, 0x89, 0xe5, 0xe8, 0x37, 0, 0, 0, 0x5d, 0xc3};
	/* inner (offset 64): push rbp; mov rbp,rsp; mov rax,[rip+53] (offset 128); call rax;
	 * pop rbp; ret */
	static const uint8_t inner[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x8b, 0x05, 0x35,
					0,    0,    0,    0xff, 0xd0, 0x5d, 0xc3};
	void *(*jit_outer)(size_t);
	uint8_t *code;
	long iters;
	unsigned long long bytes = 0;
	void *(*callee)(size_t) = jit_alloc;
	FILE *f;
	char line[64];
	const char *how = getenv("JIT_MAP");

	if (argc != 2 || (iters = atol(argv[1])) < 1) {
		fprintf(stderr, "usage: %s ITERS\n", argv[0]);
		return 2;
	}
	code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED)
		return 2;
	memcpy(code, outer, sizeof(outer));
	memcpy(code + 64, inner, sizeof(inner));
	memcpy(code + 128, &callee, sizeof(callee));
	if (mprotect(code, 4096, PROT_READ | PROT_EXEC))
		return 2;
	jit_outer = (void *(*)(size_t))(uintptr_t)code;

	snprintf(map_path, sizeof(map_path), "/tmp/perf-%d.map", (int)getpid());
	snprintf(real_path, sizeof(real_path), "/tmp/perf-%d.map.real", (int)getpid());
	atexit(remove_map);
	if (!how || strcmp(how, "none")) {
		f = fopen(how && !strcmp(how, "symlink") ? real_path : map_path, "w");
		if (!f)
			return 2;
		fprintf(f, "%lx 40 jit:stale\n", (unsigned long)(uintptr_t)(code + 64));
		fprintf(f, "%lx 40 jit:outer\n", (unsigned long)(uintptr_t)code);
		fprintf(f, "%lx 40 jit:inner\n", (unsigned long)(uintptr_t)(code + 64));
		fclose(f);
	}
	if (how && !strcmp(how, "symlink") && symlink(real_path, map_path))
		return 2;
	if (how && !strcmp(how, "fifo") && (unlink(map_path), mkfifo(map_path, 0600)))
		return 2;

	hs_ready();
	if (hs_wait_go())
		return 4;
	for (long i = 0; i < iters; i++) {
		void *p = jit_outer(ALLOC_BYTES);

		if (!p)
			return 1;
		bytes += ALLOC_BYTES;
		free(p);
	}
	printf("expect-bytes %llu\ndone\n", bytes);
	fflush(stdout);
	hs_read_line(line, sizeof(line));
	if (hs_tracer_pid() != 0) {
		printf("selfcheck FAILED: still traced after memspy left\n");
		return 1;
	}
	printf("selfcheck ok\n");
	return 0;
}
