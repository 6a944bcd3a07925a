// SPDX-License-Identifier: MIT
/*
 * Target for `memspy dump --leaks`: builds a heap whose reachability it
 * knows, prints that truth as one JSON line, and waits until stdin closes;
 * then checks that everything it kept is intact and exits 0.
 *
 *   leaked:  Dropped objects (pointer overwritten), rings of Node (leaked
 *            but each referenced by another: none unreferenced), Holder
 *            objects whose std::string bodies leak with them (bodies
 *            referenced, holders not), raw malloc(300) blocks (untyped).
 *   kept:    Kept in a global std::vector, MapVal in a std::map, UVal in a
 *            std::unordered_map, StackOnly only on a sleeping thread's stack,
 *            TlsOnly only in another thread's thread_local array.
 */
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/leaks_truth.h"

#define N_DROPPED 1000
#define N_RINGS 100 /* of 3 nodes */
#define N_HOLDERS 200
#define N_RAW 777
#define RAW_SIZE 300
#define STR_LEN 150
#define N_KEPT 2000
#define N_MAP 500
#define N_UMAP 500
#define N_STACK 64
#define N_TLS 32
#define MAGIC 0x6b6565704d454d53ull

struct Base {
	virtual ~Base() {}
	virtual uint64_t tag() const = 0;
	uint64_t magic = MAGIC;
};
struct Dropped : Base {
	uint64_t tag() const override { return 1; }
	char pad[40];
};
struct Node : Base {
	uint64_t tag() const override { return 2; }
	Node *next = nullptr;
};
struct Holder : Base {
	uint64_t tag() const override { return 3; }
	std::string text;
};
struct Kept : Base {
	uint64_t tag() const override { return 4; }
	uint64_t id = 0;
};
struct MapVal : Base {
	uint64_t tag() const override { return 5; }
	char pad[24];
};
struct UVal : Base {
	uint64_t tag() const override { return 6; }
	char pad[56];
};
struct StackOnly : Base {
	uint64_t tag() const override { return 7; }
	char pad[8];
};
struct TlsOnly : Base {
	uint64_t tag() const override { return 8; }
	char pad[72];
};

static std::vector<Kept *> g_kept;
static std::map<int, MapVal *> g_map;
static std::unordered_map<int, UVal *> g_umap;
static thread_local TlsOnly *t_tls[N_TLS];
static pid_t tid_stack, tid_tls;
static bool ok_stack = true, ok_tls = true;
/* Addresses for --explain, XOR-ed with LK_HIDE. */
static uintptr_t probe_stack, probe_tls, probe_node, probe_dropped, probe_holder_text;

static void *stack_thread(void *)
{
	StackOnly *arr[N_STACK];

	tid_stack = lk_gettid();
	for (int i = 0; i < N_STACK; i++)
		arr[i] = new StackOnly();
	probe_stack = (uintptr_t)arr[3] ^ LK_HIDE;
	lk_escape(arr);
	lk_thread_ready();
	lk_thread_wait();
	for (int i = 0; i < N_STACK; i++) {
		ok_stack &= arr[i]->magic == MAGIC && arr[i]->tag() == 7;
		delete arr[i];
	}
	return nullptr;
}

static void *tls_thread(void *)
{
	tid_tls = lk_gettid();
	for (int i = 0; i < N_TLS; i++)
		t_tls[i] = new TlsOnly();
	probe_tls = (uintptr_t)t_tls[5] ^ LK_HIDE;
	lk_thread_ready();
	lk_scrub_stack();
	lk_thread_wait();
	for (int i = 0; i < N_TLS; i++) {
		ok_tls &= t_tls[i]->magic == MAGIC && t_tls[i]->tag() == 8;
		delete t_tls[i];
	}
	return nullptr;
}

__attribute__((noinline)) static void leak_dropped(void)
{
	for (int i = 0; i < N_DROPPED; i++) {
		Dropped *d = new Dropped();
		if (i == 10)
			probe_dropped = (uintptr_t)d ^ LK_HIDE;
		lk_escape(d);
	}
}

__attribute__((noinline)) static void leak_rings(void)
{
	for (int i = 0; i < N_RINGS; i++) {
		Node *a = new Node(), *b = new Node(), *c = new Node();

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
	for (int i = 0; i < N_HOLDERS; i++) {
		Holder *h = new Holder();

		h->text.assign(STR_LEN, (char)('a' + i % 26));
		if (i == 10)
			probe_holder_text = (uintptr_t)h->text.data() ^ LK_HIDE;
		lk_escape(h);
	}
}

__attribute__((noinline)) static void leak_raw(void)
{
	for (int i = 0; i < N_RAW; i++) {
		char *p = (char *)malloc(RAW_SIZE);

		snprintf(p, RAW_SIZE, "raw block %d, nothing points here", i);
		lk_escape(p);
	}
}

__attribute__((noinline)) static void keep(void)
{
	for (int i = 0; i < N_KEPT; i++) {
		Kept *k = new Kept();

		k->id = (uint64_t)i;
		g_kept.push_back(k);
	}
	for (int i = 0; i < N_MAP; i++)
		g_map[i] = new MapVal();
	for (int i = 0; i < N_UMAP; i++)
		g_umap[i] = new UVal();
}

int main(void)
{
	static char obuf[4096];
	pthread_t t[2];
	bool ok = true;

	/* No stdout buffer from malloc: the raw blocks leaked last lie right below top. */
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	keep();
	leak_dropped();
	leak_rings();
	leak_holders();
	if (lk_start(t, stack_thread, tls_thread))
		return 2;
	/*
	 * Last, so that one of them is the chunk just below the main arena's
	 * top: main_arena.top points at the next header, 8 bytes before the
	 * end of its user area, and must not count as a reference to it.
	 */
	leak_raw();
	lk_scrub_stack();
	{
		/* Chunk sizes as glibc rounds them: what memspy reports per type. */
		const struct lk_case leaked[] = {
		    {"Dropped", N_DROPPED, N_DROPPED, lk_chunk(sizeof(Dropped))},
		    {"Node", 3 * N_RINGS, 0, lk_chunk(sizeof(Node))},
		    {"Holder", N_HOLDERS, N_HOLDERS, lk_chunk(sizeof(Holder))},
		    {"string_body", N_HOLDERS, 0, lk_chunk(STR_LEN + 1)},
		    {"raw", N_RAW, N_RAW, lk_chunk(RAW_SIZE)},
		};
		const struct lk_case kept[] = {
		    {"Kept", N_KEPT, 0, lk_chunk(sizeof(Kept))},
		    {"MapVal", N_MAP, 0, lk_chunk(sizeof(MapVal))},
		    {"UVal", N_UMAP, 0, lk_chunk(sizeof(UVal))},
		    {"StackOnly", N_STACK, 0, lk_chunk(sizeof(StackOnly))},
		    {"TlsOnly", N_TLS, 0, lk_chunk(sizeof(TlsOnly))},
		};
		const char *const names[] = {"stack", "tls", "node", "dropped", "string_body"};
		const uintptr_t probes[] = {probe_stack, probe_tls, probe_node, probe_dropped,
					    probe_holder_text};

		lk_print_truth(tid_stack, tid_tls, false, leaked, 5, kept, 5, g_kept[7], names,
			       probes, 5);
	}
	if (lk_finish(t))
		return 2;
	/* Self-check: everything kept is intact. */
	for (int i = 0; i < N_KEPT; i++)
		ok &= g_kept[(size_t)i]->magic == MAGIC && g_kept[(size_t)i]->id == (uint64_t)i &&
		      g_kept[(size_t)i]->tag() == 4;
	for (auto &kv : g_map)
		ok &= kv.second->magic == MAGIC && kv.second->tag() == 5;
	for (auto &kv : g_umap)
		ok &= kv.second->magic == MAGIC && kv.second->tag() == 6;
	ok &= ok_stack && ok_tls && g_map.size() == N_MAP && g_umap.size() == N_UMAP;
	return lk_self_check(ok);
}
