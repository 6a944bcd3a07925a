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
#include <unistd.h>

#include "../common/leaks_truth.h"

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
static pid_t tid_stack, tid_tls;
static bool ok_stack = true, ok_tls = true;
/* Addresses for --explain, XOR-ed with LK_HIDE. */
static uintptr_t probe_stack, probe_tls, probe_node, probe_dropped, probe_text;

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

static void *stack_thread(void *arg)
{
	struct block *arr[N_STACK];

	(void)arg;
	tid_stack = lk_gettid();
	for (int i = 0; i < N_STACK; i++)
		arr[i] = block_new(SZ_STACK, (uint64_t)i);
	probe_stack = (uintptr_t)arr[3] ^ LK_HIDE;
	lk_escape(arr);
	lk_thread_ready();
	lk_thread_wait();
	for (int i = 0; i < N_STACK; i++) {
		ok_stack &= block_ok(arr[i], (uint64_t)i);
		free(arr[i]);
	}
	return NULL;
}

static void *tls_thread(void *arg)
{
	(void)arg;
	tid_tls = lk_gettid();
	for (int i = 0; i < N_TLS; i++)
		t_tls[i] = block_new(SZ_TLS, (uint64_t)i);
	probe_tls = (uintptr_t)t_tls[5] ^ LK_HIDE;
	lk_thread_ready();
	lk_scrub_stack();
	lk_thread_wait();
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
			probe_dropped = (uintptr_t)b ^ LK_HIDE;
		lk_escape(b);
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
			probe_node = (uintptr_t)b ^ LK_HIDE;
		lk_escape(a);
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
			probe_text = (uintptr_t)h->text ^ LK_HIDE;
		lk_escape(h);
	}
	memset(text, 0, sizeof(text));
	lk_escape(text);
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
	pthread_t t[2];
	bool ok;

	/* No stdout buffer from malloc. */
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	keep();
	leak_dropped();
	leak_rings();
	leak_holders();
	if (lk_start(t, stack_thread, tls_thread))
		return 2;
	lk_scrub_stack();
	{
		const struct lk_case leaked[] = {
		    {"dropped", N_DROPPED, N_DROPPED, lk_chunk(SZ_DROPPED)},
		    {"ring_node", 3 * N_RINGS, 0, lk_chunk(SZ_NODE)},
		    {"holder", N_HOLDERS, N_HOLDERS, lk_chunk(SZ_HOLDER)},
		    {"string_body", N_HOLDERS, 0, lk_chunk(SZ_TEXT + 1)},
		};
		const struct lk_case kept[] = {
		    {"global", N_KEPT, 0, lk_chunk(SZ_KEPT)},
		    {"hash_entry", N_HASH, 0, lk_chunk(SZ_HASH)},
		    {"vector_elem", N_VEC, 0, lk_chunk(SZ_VEC)},
		    {"StackOnly", N_STACK, 0, lk_chunk(SZ_STACK)},
		    {"TlsOnly", N_TLS, 0, lk_chunk(SZ_TLS)},
		};
		const char *const names[] = {"stack", "tls", "node", "dropped", "string_body"};
		const uintptr_t probes[] = {probe_stack, probe_tls, probe_node, probe_dropped,
					    probe_text};

		lk_print_truth(tid_stack, tid_tls, true, leaked, 4, kept, 5, g_kept[7], names,
			       probes, 5);
	}
	if (lk_finish(t))
		return 2;
	ok = check_kept() && ok_stack && ok_tls;
	return lk_self_check(ok);
}
