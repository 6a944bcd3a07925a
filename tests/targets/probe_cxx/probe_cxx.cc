// SPDX-License-Identifier: MIT
/*
 * C++ target for the probe tests: 2 threads doing a known number of
 * operator new/new[]/nothrow/aligned new and the matching deletes. The libc
 * probes must see each exactly once (libstdc++'s operators call malloc,
 * aligned_alloc and free). Protocol as probe_alloc: "ready PID", "go",
 * "counts news=N deletes=D", "done", "exit".
 */
#include <new>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/handshake.h"

namespace {

const int kThreads = 2;
long iters;
sem_t go_sem, done_sem;
unsigned long n_new[kThreads], n_delete[kThreads], sums[kThreads];

struct alignas(64) Line {
	unsigned char b[64];
};

struct Node {
	Node *next;
	long v;
};

void *worker(void *arg)
{
	int id = (int)(long)arg;
	unsigned long h = 0;

	sem_wait(&go_sem);
	for (long i = 0; i < iters; i++) {
		Node *a = new Node{nullptr, i};
		char *b = new char[16 + i % 200];
		Node *c = new (std::nothrow) Node{a, i + 1};
		Line *d = new Line;

		if (!c)
			abort();
		b[0] = (char)i;
		d->b[63] = (unsigned char)i;
		h = h * 31 + (unsigned long)(a->v + c->next->v + b[0] + d->b[63]);
		n_new[id] += 4;
		delete a;
		delete[] b;
		delete c;
		delete d;
		n_delete[id] += 4;
	}
	sums[id] = h;
	sem_post(&done_sem);
	for (;;)
		pause(); /* a thread's exit frees its tcache through free(): it would count */
	return nullptr;
}

} // namespace

int main(int argc, char **argv)
{
	pthread_t t[kThreads];
	char line[256];
	unsigned long nn = 0, nd = 0, sum = 0;

	iters = argc > 1 ? atol(argv[1]) : 500;
	sem_init(&go_sem, 0, 0);
	sem_init(&done_sem, 0, 0);
	for (int i = 0; i < kThreads; i++)
		if (pthread_create(&t[i], nullptr, worker, (void *)(long)i))
			return 2;
	hs_ready_raw();
	hs_expect("go");
	for (int i = 0; i < kThreads; i++)
		sem_post(&go_sem);
	for (int i = 0; i < kThreads; i++)
		sem_wait(&done_sem);
	for (int i = 0; i < kThreads; i++) {
		nn += n_new[i];
		nd += n_delete[i];
		sum = sum * 131 + sums[i];
	}
	snprintf(line, sizeof(line), "counts news=%lu deletes=%lu\nchecksum=%016lx\ndone\n", nn, nd,
		 sum);
	hs_say(line);
	hs_expect("exit");
	_exit(0);
}
