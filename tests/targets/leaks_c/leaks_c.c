// SPDX-License-Identifier: MIT
/*
 * Target for `memspy dump --leaks`, in C: no vtables, so every allocation is
 * in an untyped size class; each case below has a chunk size of its own
 * (300-600 bytes, where libc itself allocates nothing here) so that memspy's
 * size classes can be held to the truth. It prints that truth as one JSON
 * line (the format of tests/targets/leaks_cxx, with "untyped": true) and
 * waits until stdin closes; then checks everything it kept and exits 0.
 *
 *   leaked:  dropped blocks (pointer overwritten), rings of 3 nodes (leaked
 *            but each referenced by another: none unreferenced), holders
 *            whose strdup()ed text leaks with them (texts referenced,
 *            holders not).
 *   kept:    blocks in a global array, entries of a chained hash table
 *            (buckets malloc()ed, held by a global), elements of a growing
 *            realloc()ed vector, blocks only on a sleeping thread's stack,
 *            blocks only in another thread's __thread array.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N_DROPPED 900
#define N_RINGS 120 /* of 3 nodes */
#define N_HOLDERS 250
#define N_KEPT 1500
#define N_HASH 700
#define N_VEC 1100
#define N_STACK 48
#define N_TLS 40
#define NBUCKETS 1024 /* 8 KiB of buckets: far from the cases' sizes */
#define MAGIC 0x6b6565704d454d53ull

/* Request sizes: chunk = (request + 8) rounded up to 16, one 16-byte class each. */
#define SZ_DROPPED 392
#define SZ_NODE 408
#define SZ_HOLDER 424
#define SZ_TEXT 439 /* + NUL: 440 */
#define SZ_KEPT 456
#define SZ_HASH 472
#define SZ_VEC 488
#define SZ_STACK 504
#define SZ_TLS 520

struct block {
	uint64_t magic, id;
	char fill[];
};
struct node {
	uint64_t magic;
	struct node *next;
};
struct holder {
	uint64_t magic;
	char *text;
};
struct entry {
	uint64_t magic;
	int key;
	struct entry *next;
};

static struct block *g_kept[N_KEPT];
static struct entry **g_buckets;
static struct block **g_vec;
static size_t g_nvec, g_capvec;
static __thread struct block *t_tls[N_TLS];
static int go[2];
static pid_t tid_stack, tid_tls;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nready;
static bool ok_stack = true, ok_tls = true;
/* Addresses for --explain, XOR-ed so that they are no references. */
#define HIDE 0x5a5a5a5a5a5a5a5aull
static uintptr_t probe_stack, probe_tls, probe_node, probe_dropped, probe_text;

static void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* Overwrites the dead stack below the caller, so no stale pointer outlives a leak. */
__attribute__((noinline)) static void scrub_stack(void)
{
	volatile char buf[64 << 10];

	memset((char *)buf, 0, sizeof(buf));
	escape((void *)buf);
}

static struct block *block_new(size_t size, uint64_t id)
{
	struct block *b = malloc(size);

	if (!b)
		abort();
	memset(b, 0, size);
	b->magic = MAGIC;
	b->id = id;
	return b;
}

static bool block_ok(const struct block *b, uint64_t id)
{
	return b->magic == MAGIC && b->id == id;
}

static void signal_ready(void)
{
	pthread_mutex_lock(&mu);
	nready++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void wait_go(void)
{
	char c;

	while (read(go[0], &c, 1) < 0) {
	}
}

static void *stack_thread(void *arg)
{
	struct block *arr[N_STACK];

	(void)arg;
	tid_stack = (pid_t)syscall(SYS_gettid);
	for (int i = 0; i < N_STACK; i++)
		arr[i] = block_new(SZ_STACK, (uint64_t)i);
	probe_stack = (uintptr_t)arr[3] ^ HIDE;
	escape(arr);
	signal_ready();
	wait_go();
	for (int i = 0; i < N_STACK; i++) {
		ok_stack &= block_ok(arr[i], (uint64_t)i);
		free(arr[i]);
	}
	return NULL;
}

static void *tls_thread(void *arg)
{
	(void)arg;
	tid_tls = (pid_t)syscall(SYS_gettid);
	for (int i = 0; i < N_TLS; i++)
		t_tls[i] = block_new(SZ_TLS, (uint64_t)i);
	probe_tls = (uintptr_t)t_tls[5] ^ HIDE;
	signal_ready();
	scrub_stack();
	wait_go();
	for (int i = 0; i < N_TLS; i++) {
		ok_tls &= block_ok(t_tls[i], (uint64_t)i);
		free(t_tls[i]);
	}
	return NULL;
}

__attribute__((noinline)) static void leak_dropped(void)
{
	for (int i = 0; i < N_DROPPED; i++) {
		struct block *b = block_new(SZ_DROPPED, (uint64_t)i);

		snprintf(b->fill, SZ_DROPPED - sizeof(*b), "dropped block %d, nothing points here",
			 i);
		if (i == 10)
			probe_dropped = (uintptr_t)b ^ HIDE;
		escape(b);
	}
}

__attribute__((noinline)) static void leak_rings(void)
{
	for (int i = 0; i < N_RINGS; i++) {
		struct node *a = malloc(SZ_NODE), *b = malloc(SZ_NODE), *c = malloc(SZ_NODE);

		if (!a || !b || !c)
			abort();
		a->magic = b->magic = c->magic = MAGIC;
		a->next = b;
		b->next = c;
		c->next = a;
		if (i == 10)
			probe_node = (uintptr_t)b ^ HIDE;
		escape(a);
	}
}

__attribute__((noinline)) static void leak_holders(void)
{
	char text[SZ_TEXT + 1];

	for (int i = 0; i < N_HOLDERS; i++) {
		struct holder *h = malloc(SZ_HOLDER);

		if (!h)
			abort();
		memset(text, 'a' + i % 26, SZ_TEXT);
		text[SZ_TEXT] = '\0';
		h->magic = MAGIC;
		h->text = strdup(text);
		if (!h->text)
			abort();
		if (i == 10)
			probe_text = (uintptr_t)h->text ^ HIDE;
		escape(h);
	}
	memset(text, 0, sizeof(text));
	escape(text);
}

__attribute__((noinline)) static void keep(void)
{
	for (int i = 0; i < N_KEPT; i++)
		g_kept[i] = block_new(SZ_KEPT, (uint64_t)i);
	g_buckets = calloc(NBUCKETS, sizeof(*g_buckets));
	if (!g_buckets)
		abort();
	for (int i = 0; i < N_HASH; i++) {
		struct entry *e = malloc(SZ_HASH);
		unsigned h = (unsigned)i * 2654435761u % NBUCKETS;

		if (!e)
			abort();
		e->magic = MAGIC;
		e->key = i;
		e->next = g_buckets[h];
		g_buckets[h] = e;
	}
	for (int i = 0; i < N_VEC; i++) {
		if (g_nvec == g_capvec) {
			g_capvec = g_capvec ? 2 * g_capvec : 8;
			g_vec = realloc(g_vec, g_capvec * sizeof(*g_vec));
			if (!g_vec)
				abort();
		}
		g_vec[g_nvec++] = block_new(SZ_VEC, (uint64_t)i);
	}
}

static size_t chunk(size_t n)
{
	size_t c = (n + 8 + 15) & ~(size_t)15;

	return c < 32 ? 32 : c;
}

static bool check_kept(void)
{
	bool ok = true;
	int n = 0;

	for (int i = 0; i < N_KEPT; i++)
		ok &= block_ok(g_kept[i], (uint64_t)i);
	for (int b = 0; b < NBUCKETS; b++)
		for (struct entry *e = g_buckets[b]; e; e = e->next, n++)
			ok &= e->magic == MAGIC && (unsigned)e->key * 2654435761u % NBUCKETS == (unsigned)b;
	ok &= n == N_HASH && g_nvec == N_VEC;
	for (size_t i = 0; i < g_nvec; i++)
		ok &= block_ok(g_vec[i], (uint64_t)i);
	return ok;
}

int main(void)
{
	static char obuf[4096];
	pthread_t t1, t2;
	bool ok;
	char c;

	/* No stdout buffer from malloc. */
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	if (pipe(go))
		return 2;
	keep();
	leak_dropped();
	leak_rings();
	leak_holders();
	pthread_create(&t1, NULL, stack_thread, NULL);
	pthread_create(&t2, NULL, tls_thread, NULL);
	pthread_mutex_lock(&mu);
	while (nready < 2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	scrub_stack();
	printf("{\"pid\":%d,\"tid_stack\":%d,\"tid_tls\":%d,\"untyped\":true,"
	       "\"leaked\":{\"dropped\":[%d,%d,%zu],\"ring_node\":[%d,%d,%zu],\"holder\":[%d,%d,%zu],"
	       "\"string_body\":[%d,%d,%zu]},"
	       "\"kept\":{\"global\":[%d,%zu],\"hash_entry\":[%d,%zu],\"vector_elem\":[%d,%zu],"
	       "\"StackOnly\":[%d,%zu],\"TlsOnly\":[%d,%zu]},"
	       "\"probe_hide\":\"0x5a5a5a5a5a5a5a5a\",\"probe\":{\"kept\":\"%p\",\"stack\":\"0x%lx\","
	       "\"tls\":\"0x%lx\",\"node\":\"0x%lx\",\"dropped\":\"0x%lx\",\"string_body\":\"0x%lx\"}}\n",
	       (int)getpid(), (int)tid_stack, (int)tid_tls, N_DROPPED, N_DROPPED, chunk(SZ_DROPPED),
	       3 * N_RINGS, 0, chunk(SZ_NODE), N_HOLDERS, N_HOLDERS, chunk(SZ_HOLDER), N_HOLDERS, 0,
	       chunk(SZ_TEXT + 1), N_KEPT, chunk(SZ_KEPT), N_HASH, chunk(SZ_HASH), N_VEC,
	       chunk(SZ_VEC), N_STACK, chunk(SZ_STACK), N_TLS, chunk(SZ_TLS), (void *)g_kept[7],
	       (unsigned long)probe_stack, (unsigned long)probe_tls, (unsigned long)probe_node,
	       (unsigned long)probe_dropped, (unsigned long)probe_text);
	fflush(stdout);
	while (read(0, &c, 1) > 0) {
	}
	/* Self-check: everything kept is intact. */
	if (write(go[1], "gg", 2) != 2)
		return 2;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	ok = check_kept() && ok_stack && ok_tls;
	printf("{\"self_check\":\"%s\"}\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
