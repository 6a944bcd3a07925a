// SPDX-License-Identifier: MIT
/*
 * Test target with a malloc of its own (own_malloc.c): a thread churns
 * allocations until stdin says stop; prints READY and DONE for the driver.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile int stop;

__attribute__((noinline)) static void own_site(void)
{
	void *p[32];

	for (int i = 0; i < 32; i++)
		p[i] = malloc(24 + 40 * i);
	for (int i = 0; i < 32; i++)
		free(p[i]);
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void *spin(void *arg)
{
	while (!stop)
		own_site();
	return arg;
}

int main(void)
{
	struct pollfd pfd = {.fd = 0, .events = POLLIN};
	pthread_t t;

	setvbuf(stdout, NULL, _IONBF, 0);
	pthread_create(&t, NULL, spin, NULL);
	printf("READY pid=%d\n", (int)getpid());
	while (poll(&pfd, 1, -1) <= 0)
		;
	stop = 1;
	pthread_join(t, NULL);
	printf("DONE\n");
	return 0;
}
