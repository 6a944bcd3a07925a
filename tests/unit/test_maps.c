// SPDX-License-Identifier: MIT
/*
 * Unit test: the /proc/PID/maps parser and the consistent reader on text
 * fixtures (no ptrace): torn reads (Linux >= 6.17) are read again, never a table.
 */
#include "attach/attach.h"
#include "tests/lib/mstest.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>



static const char fixture[] =
	"55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1311 /usr/bin/my prog\n"
	"55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1311 /usr/bin/my prog\n"
	"\n"
	"55d0c1e4e000-55d0c1e6f000 rw-p 00000000 00:00 0                          [heap]\n"
	"7f2a1c000000-7f2a1c021000 rw-p 00000000 00:00 0 \n"
	"7f2a1d200000-7f2a1d228000 r--p 00000000 fd:00 393223                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f2a1d228000-7f2a1d39d000 r-xp 00028000 fd:00 393223                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f2a1d3f0000-7f2a1d3f1000 rw-s 00000000 00:05 4242 /memfd:ring (deleted)\n"
	"7f2a1d400000-7f2a1d401000 r-xp 00002000 103:02 77 /tmp/old lib.so (deleted)\n"
	"7ffd5e2e0000-7ffd5e301000 rw-p 00000000 00:00 0                          [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

/*
 * Reads as the kernel printed them while a thread grew its arena (the lines
 * seen on 6.18): the arena's heap printed, then printed again grown; a line
 * printed twice; and the consistent read that follows.
 */
#define EXE "55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1311 /usr/bin/prog\n"
#define LIBC                                                                              \
	"7f7a1d200000-7f7a1d228000 r--p 00000000 fd:00 393223 /usr/lib/x86_64-linux-gnu/libc.so.6\n" \
	"7f7a1d228000-7f7a1d39d000 r-xp 00028000 fd:00 393223 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
#define STACK "7ffd5e2e0000-7ffd5e301000 rw-p 00000000 00:00 0 [stack]\n"
static const char torn_grown[] = EXE "7f69e8000000-7f69e81f4000 rw-p 00000000 00:00 0 \n"
				 "7f69e8000000-7f69e8289000 rw-p 00000000 00:00 0 \n"
				 "7f69e8289000-7f69ec000000 ---p 00000000 00:00 0 \n" LIBC STACK;
static const char torn_dup[] = EXE "7f69e8000000-7f69e8289000 rw-p 00000000 00:00 0 \n"
			       "7f69e8000000-7f69e8289000 rw-p 00000000 00:00 0 \n"
			       "7f69e8289000-7f69ec000000 ---p 00000000 00:00 0 \n" LIBC STACK;
static const char consistent[] = EXE "7f69e8000000-7f69e8289000 rw-p 00000000 00:00 0 \n"
				 "7f69e8289000-7f69ec000000 ---p 00000000 00:00 0 \n" LIBC STACK;

/* A text source that hands out fixtures in turn (the last one repeats) or an error. */
struct fixtures {
	const char *const *texts;
	size_t n;
	int fail; /* -errno returned by every read instead */
	int reads;
};

static int fixture_read(void *ctx, char **text)
{
	struct fixtures *f = ctx;
	size_t i = (size_t)f->reads < f->n ? (size_t)f->reads : f->n - 1;

	f->reads++;
	if (f->fail)
		return f->fail;
	*text = ms_xstrdup(f->texts[i]);
	return 0;
}

static int read_fixtures(struct fixtures *f, struct ms_maps *m, struct ms_error *e)
{
	struct ms_maps_source src = {.read = fixture_read, .ctx = f};

	memset(e, 0, sizeof(*e));
	return ms_maps_read_from(4242, &src, m, e);
}

static bool has(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

static void test_reader(void)
{
	static const char *const torn_then_ok[] = {torn_grown, torn_dup, consistent};
	static const char *const always_torn[] = {torn_grown, torn_dup};
	static const char *const empty[] = {""};
	static const char *const garbage[] = {"not a maps line\n"};
	struct fixtures f;
	struct ms_maps m;
	struct ms_error e;

	/* Two torn reads, then the consistent table, with libc in it. */
	f = (struct fixtures){.texts = torn_then_ok, .n = 3};
	CHECK(read_fixtures(&f, &m, &e) == 0);
	CHECK(f.reads == 3);
	CHECK(m.n == 6);
	if (m.n == 6) {
		CHECK(m.v[1].start == 0x7f69e8000000ull && m.v[1].end == 0x7f69e8289000ull);
		CHECK(m.v[3].path && has(m.v[3].path, "libc.so.6"));
	}
	ms_maps_free(&m);

	/* Never consistent: a bounded number of reads, then a clear error, no table. */
	f = (struct fixtures){.texts = always_torn, .n = 2};
	CHECK(read_fixtures(&f, &m, &e) == -MS_E_MAPS_UNSTABLE);
	CHECK(f.reads > 2 && f.reads <= 64);
	CHECK(m.n == 0 && m.v == NULL);
	CHECK(e.code == -MS_E_MAPS_UNSTABLE);
	CHECK(has(e.msg, "/proc/4242/maps") && has(e.msg, "kept changing"));
	CHECK(has(e.hint, "run the command again"));

	/* An empty file is a process without memory, not a process without libc. */
	f = (struct fixtures){.texts = empty, .n = 1};
	CHECK(read_fixtures(&f, &m, &e) == -ESRCH && m.n == 0 && has(e.msg, "empty"));

	/* A gone process: its error, at once, with a hint. */
	f = (struct fixtures){.texts = empty, .n = 1, .fail = -ENOENT};
	CHECK(read_fixtures(&f, &m, &e) == -ENOENT && f.reads == 1 && m.n == 0);
	CHECK(has(e.hint, "no longer exists"));

	/* Text that is not maps is not a race: not read again. */
	f = (struct fixtures){.texts = garbage, .n = 1};
	CHECK(read_fixtures(&f, &m, &e) == -EINVAL && f.reads == 1 && m.n == 0);
	CHECK(has(e.msg, "cannot parse"));

	/* A NULL error report is allowed. */
	f = (struct fixtures){.texts = torn_then_ok, .n = 3};
	CHECK(ms_maps_read_from(4242, &(struct ms_maps_source){.read = fixture_read, .ctx = &f},
				&m, NULL) == 0 &&
	      m.n == 6);
	ms_maps_free(&m);
}

int main(void)
{
	struct ms_maps m;
	const struct ms_map *f;

	CHECK(ms_maps_parse(fixture, &m) == 0);
	CHECK(m.n == 10);
	if (m.n == 10) {
		CHECK(m.v[0].start == 0x55d0c0a00000ull && m.v[0].end == 0x55d0c0a01000ull);
		CHECK(m.v[0].path && !strcmp(m.v[0].path, "/usr/bin/my prog"));
		CHECK(m.v[1].x && m.v[1].r && !m.v[1].w && !m.v[1].shared);
		CHECK(m.v[1].offset == 0x1000 && m.v[1].inode == 1311);
		CHECK(m.v[1].dev_major == 8 && m.v[1].dev_minor == 1);
		CHECK(m.v[2].path && !strcmp(m.v[2].path, "[heap]") && m.v[2].inode == 0);
		CHECK(m.v[3].path == NULL); /* anonymous, with a trailing space */
		CHECK(m.v[5].offset == 0x28000 && m.v[5].dev_major == 0xfd);
		CHECK(m.v[6].shared && m.v[6].w && m.v[6].path &&
		      !strcmp(m.v[6].path, "/memfd:ring (deleted)"));
		CHECK(m.v[7].dev_major == 0x103 && m.v[7].dev_minor == 2);
		CHECK(m.v[7].path && !strcmp(m.v[7].path, "/tmp/old lib.so (deleted)"));
		CHECK(m.v[9].start == 0xffffffffff600000ull && !m.v[9].r && m.v[9].x);
		CHECK(m.v[9].path && !strcmp(m.v[9].path, "[vsyscall]"));
	}
	f = ms_maps_find(&m, 0x7f2a1d228000ull + 5);
	CHECK(f && f->offset == 0x28000);
	CHECK(ms_maps_find(&m, 0x7f2a1d228000ull - 1) == &m.v[4]);
	CHECK(ms_maps_find(&m, 0x7f2a1d39d000ull) == NULL); /* end is exclusive */
	CHECK(ms_maps_find(&m, 0) == NULL);
	CHECK(ms_maps_find(&m, 0xffffffffff600fffull) == &m.v[9]);
	ms_maps_free(&m);
	CHECK(m.n == 0 && m.v == NULL);

	/* Empty input is an empty table; garbage and disorder are refused. */
	CHECK(ms_maps_parse("", &m) == 0 && m.n == 0);
	ms_maps_free(&m);
	CHECK(ms_maps_parse("\n\n", &m) == 0 && m.n == 0);
	ms_maps_free(&m);
	CHECK(ms_maps_parse("not a maps line\n", &m) == -EINVAL && m.n == 0);
	CHECK(ms_maps_parse("2000-1000 r--p 00000000 00:00 0\n", &m) == -EINVAL);
	/* Overlap and disorder are a read that raced: -EAGAIN, read again. */
	CHECK(ms_maps_parse("1000-3000 r--p 00000000 00:00 0\n2000-4000 r--p 00000000 00:00 0\n",
			    &m) == -EAGAIN && m.n == 0);
	/* No final newline. */
	CHECK(ms_maps_parse("1000-2000 r--p 00000000 00:00 0 /x", &m) == 0 && m.n == 1 &&
	      m.v[0].path && !strcmp(m.v[0].path, "/x"));
	ms_maps_free(&m);

	test_reader();

	/* Our own maps parse, and contain our own code. */
	CHECK(ms_maps_read(getpid(), &m, NULL) == 0 && m.n > 5);
	f = ms_maps_find(&m, (ms_raddr_t)(uintptr_t)&main);
	CHECK(f && f->x && f->path);
	ms_maps_free(&m);

	return ms_test_result("test_maps");
}
