// SPDX-License-Identifier: MIT
/*
 * attach_threads: a self-checking target for the attach tests. Four workers
 * recompute a checksum (any register or memory corrupted by a stop shows
 * up as a mismatch), a spawner keeps creating and joining short-lived
 * threads, and a realtime-signal handler counts what arrives.
 *
 * Commands on stdin, one per line: "q" finish and self-check, "p" answer
 * "pong", "x" exit(7) at once, "a" print module facts (see below).
 * Prints "ready <pid>" when every thread runs.
 *   stdout at the end: "ok workers=4 rounds=N spawned=M rtsig=K" or "FAIL ..."
 *   "a": "bias <dlpi_addr hex> <build-id hex or -> <path>" per module from
 *        dl_iterate_phdr, then "sym malloc <hex>" (from dlsym, the real libc
 *        address, not a PLT stub), "sym attach_target_marker <hex>", "end".
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/handshake.h"

#define NWORKERS 4

static volatile int quitting;
static volatile unsigned long rounds[NWORKERS];
static volatile int failed;
static volatile unsigned long spawned;
static volatile sig_atomic_t rtsig_count;

__attribute__((noinline)) uint64_t attach_target_marker(uint64_t seed, int n)
{
	uint64_t x = seed;

	for (int i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		x += (uint64_t)i * 0x9e3779b97f4a7c15ull;
	}
	return x;
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t expect = attach_target_marker((uint64_t)id + 1, 20000);

	while (!quitting) {
		/* Half in registers, half through memory. */
		volatile uint64_t buf[64];
		uint64_t x = attach_target_marker((uint64_t)id + 1, 20000);

		for (int i = 0; i < 64; i++)
			buf[i] = x + (uint64_t)i;
		for (int i = 0; i < 64; i++)
			if (buf[i] != expect + (uint64_t)i)
				failed = 1;
		rounds[id]++;
	}
	return NULL;
}

static void *short_lived(void *arg)
{
	uint64_t *out = arg;

	*out = attach_target_marker(99, 500);
	return NULL;
}

static void *spawner(void *arg)
{
	uint64_t expect = attach_target_marker(99, 500);

	(void)arg;
	while (!quitting) {
		pthread_t t;
		uint64_t v = 0;

		if (pthread_create(&t, NULL, short_lived, &v) != 0) {
			failed = 2;
			break;
		}
		pthread_join(t, NULL);
		if (v != expect)
			failed = 3;
		spawned++;
	}
	return NULL;
}

static void on_rt(int sig)
{
	(void)sig;
	rtsig_count++;
}

static int print_module(struct dl_phdr_info *info, size_t size, void *data)
{
	char id[129] = "-";

	(void)size;
	(void)data;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p, *end;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const void *)p;
			const unsigned char *desc =
				(const unsigned char *)p + sizeof(*nh) + ((nh->n_namesz + 3) & ~3u);

			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    !memcmp(p + sizeof(*nh), "GNU", 4) && nh->n_descsz <= 64) {
				for (unsigned j = 0; j < nh->n_descsz; j++)
					sprintf(id + 2 * j, "%02x", desc[j]);
				break;
			}
			p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
		}
		if (id[0] != '-')
			break;
	}
	printf("bias %lx %s %s\n", (unsigned long)info->dlpi_addr, id,
	       info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "-");
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t w[NWORKERS], sp;
	struct sigaction sa;
	char line[64];
	int i;

	(void)argc;
	(void)argv;
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_rt;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	for (i = 0; i < NWORKERS; i++)
		pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i);
	pthread_create(&sp, NULL, spawner, NULL);
	hs_ready();

	while (!hs_read_line(line, sizeof(line))) {
		if (line[0] == 'p') {
			printf("pong\n");
		} else if (line[0] == 'x') {
			fflush(stdout);
			_exit(7);
		} else if (line[0] == 'a') {
			void *m = dlsym(RTLD_DEFAULT, "malloc");

			dl_iterate_phdr(print_module, NULL);
			printf("sym malloc %lx\n", (unsigned long)(uintptr_t)m);
			printf("sym attach_target_marker %lx\n",
			       (unsigned long)(uintptr_t)&attach_target_marker);
			printf("end\n");
		} else if (line[0] == 'q') {
			break;
		}
	}
	/*
	 * Every worker must run on after memspy has gone: wait (bounded) until
	 * each has finished a round since 'q'. Not a check of how much it ran
	 * while the test went on: on a loaded machine a worker may not have
	 * been scheduled at all in those few milliseconds.
	 */
	{
		unsigned long at_quit[NWORKERS];
		struct timespec nap = {0, 1000000};

		for (i = 0; i < NWORKERS; i++)
			at_quit[i] = rounds[i];
		for (int waited = 0; waited < 20000; waited++) {
			int behind = 0;

			for (i = 0; i < NWORKERS; i++)
				behind += rounds[i] == at_quit[i];
			if (!behind)
				break;
			nanosleep(&nap, NULL);
		}
		for (i = 0; i < NWORKERS; i++)
			if (rounds[i] == at_quit[i])
				rounds[i] = 0; /* reported below */
	}
	quitting = 1;
	for (i = 0; i < NWORKERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(sp, NULL);
	if (failed) {
		printf("FAIL checksum mismatch (%d)\n", failed);
		return 1;
	}
	for (i = 0; i < NWORKERS; i++) {
		if (!rounds[i]) {
			printf("FAIL worker %d made no progress in 20 s after the test\n", i);
			return 1;
		}
	}
	printf("ok workers=%d rounds=%lu spawned=%lu rtsig=%d\n", NWORKERS,
	       rounds[0] + rounds[1] + rounds[2] + rounds[3], spawned, (int)rtsig_count);
	return 0;
}
