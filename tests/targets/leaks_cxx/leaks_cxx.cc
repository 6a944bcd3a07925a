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
#include <sys/syscall.h>
#include <unistd.h>

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
static int ready[2], go[2];
static pid_t tid_stack, tid_tls;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nready;
static bool ok_stack = true, ok_tls = true;
/*
 * Addresses for --explain, stored XOR-ed so that they are no references
 * (a plain global would make a leaked object reachable).
 */
#define HIDE 0x5a5a5a5a5a5a5a5aull
static uintptr_t probe_stack, probe_tls, probe_node, probe_dropped, probe_holder_text;

static void escape(void *p)
{
	asm volatile("" : : "r"(p) : "memory");
}

/* Overwrites the dead stack below the caller, so no stale pointer outlives a leak. */
__attribute__((noinline)) static void scrub_stack(void)
{
	volatile char buf[64 << 10];

	memset((char *)buf, 0, sizeof(buf));
	escape((void *)buf);
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

static void *stack_thread(void *)
{
	StackOnly *arr[N_STACK];

	tid_stack = (pid_t)syscall(SYS_gettid);
	for (int i = 0; i < N_STACK; i++)
		arr[i] = new StackOnly();
	probe_stack = (uintptr_t)arr[3] ^ HIDE;
	escape(arr);
	signal_ready();
	wait_go();
	for (int i = 0; i < N_STACK; i++) {
		ok_stack &= arr[i]->magic == MAGIC && arr[i]->tag() == 7;
		delete arr[i];
	}
	return nullptr;
}

static void *tls_thread(void *)
{
	tid_tls = (pid_t)syscall(SYS_gettid);
	for (int i = 0; i < N_TLS; i++)
		t_tls[i] = new TlsOnly();
	probe_tls = (uintptr_t)t_tls[5] ^ HIDE;
	signal_ready();
	scrub_stack();
	wait_go();
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
			probe_dropped = (uintptr_t)d ^ HIDE;
		escape(d);
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
			probe_node = (uintptr_t)b ^ HIDE;
		escape(a);
	}
}

__attribute__((noinline)) static void leak_holders(void)
{
	for (int i = 0; i < N_HOLDERS; i++) {
		Holder *h = new Holder();

		h->text.assign(STR_LEN, (char)('a' + i % 26));
		if (i == 10)
			probe_holder_text = (uintptr_t)h->text.data() ^ HIDE;
		escape(h);
	}
}

__attribute__((noinline)) static void leak_raw(void)
{
	for (int i = 0; i < N_RAW; i++) {
		char *p = (char *)malloc(RAW_SIZE);

		snprintf(p, RAW_SIZE, "raw block %d, nothing points here", i);
		escape(p);
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

static size_t chunk(size_t n)
{
	size_t c = (n + 8 + 15) & ~(size_t)15;

	return c < 32 ? 32 : c;
}

int main(void)
{
	pthread_t t1, t2;
	bool ok = true;
	char c;

	static char obuf[4096];

	/* No stdout buffer from malloc: the raw blocks leaked last lie right below top. */
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	if (pipe(go))
		return 2;
	(void)ready;
	keep();
	leak_dropped();
	leak_rings();
	leak_holders();
	pthread_create(&t1, nullptr, stack_thread, nullptr);
	pthread_create(&t2, nullptr, tls_thread, nullptr);
	pthread_mutex_lock(&mu);
	while (nready < 2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	/*
	 * Last, so that one of them is the chunk just below the main arena's
	 * top: main_arena.top points at the next header, 8 bytes before the
	 * end of its user area, and must not count as a reference to it.
	 */
	leak_raw();
	scrub_stack();
	/* Chunk sizes as glibc rounds them: what memspy reports per type. */
	printf("{\"pid\":%d,\"tid_stack\":%d,\"tid_tls\":%d,"
	       "\"leaked\":{\"Dropped\":[%d,%d,%zu],\"Node\":[%d,%d,%zu],\"Holder\":[%d,%d,%zu],"
	       "\"string_body\":[%d,%d,%zu],\"raw\":[%d,%d,%zu]},"
	       "\"kept\":{\"Kept\":[%d,%zu],\"MapVal\":[%d,%zu],\"UVal\":[%d,%zu],"
	       "\"StackOnly\":[%d,%zu],\"TlsOnly\":[%d,%zu]},"
	       /* Still XOR-ed with HIDE: unmasked, they would sit in main's registers. */
	       "\"probe_hide\":\"0x5a5a5a5a5a5a5a5a\",\"probe\":{\"kept\":\"%p\",\"stack\":\"0x%lx\",\"tls\":\"0x%lx\","
	       "\"node\":\"0x%lx\",\"dropped\":\"0x%lx\",\"string_body\":\"0x%lx\"}}\n",
	       (int)getpid(), (int)tid_stack, (int)tid_tls, N_DROPPED, N_DROPPED,
	       chunk(sizeof(Dropped)), 3 * N_RINGS, 0, chunk(sizeof(Node)), N_HOLDERS, N_HOLDERS,
	       chunk(sizeof(Holder)), N_HOLDERS, 0, chunk(STR_LEN + 1), N_RAW, N_RAW,
	       chunk(RAW_SIZE), N_KEPT, chunk(sizeof(Kept)), N_MAP, chunk(sizeof(MapVal)), N_UMAP,
	       chunk(sizeof(UVal)), N_STACK, chunk(sizeof(StackOnly)), N_TLS,
	       chunk(sizeof(TlsOnly)), (void *)g_kept[7], (unsigned long)probe_stack,
	       (unsigned long)probe_tls, (unsigned long)probe_node, (unsigned long)probe_dropped,
	       (unsigned long)probe_holder_text);
	fflush(stdout);
	while (read(0, &c, 1) > 0) {
	}
	/* Self-check: everything kept is intact. */
	if (write(go[1], "gg", 2) != 2)
		return 2;
	pthread_join(t1, nullptr);
	pthread_join(t2, nullptr);
	for (int i = 0; i < N_KEPT; i++)
		ok &= g_kept[(size_t)i]->magic == MAGIC && g_kept[(size_t)i]->id == (uint64_t)i &&
		      g_kept[(size_t)i]->tag() == 4;
	for (auto &kv : g_map)
		ok &= kv.second->magic == MAGIC && kv.second->tag() == 5;
	for (auto &kv : g_umap)
		ok &= kv.second->magic == MAGIC && kv.second->tag() == 6;
	ok &= ok_stack && ok_tls && g_map.size() == N_MAP && g_umap.size() == N_UMAP;
	printf("{\"self_check\":\"%s\"}\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
