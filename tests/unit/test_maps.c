// SPDX-License-Identifier: MIT
/* Unit test: the /proc/PID/maps parser on text fixtures (no ptrace). */
#include "attach/attach.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (cond) {                                                   \
			passed++;                                             \
		} else {                                                      \
			failed++;                                             \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                             \
	} while (0)

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
	CHECK(ms_maps_parse("1000-3000 r--p 00000000 00:00 0\n2000-4000 r--p 00000000 00:00 0\n",
			    &m) == -EINVAL);
	/* No final newline. */
	CHECK(ms_maps_parse("1000-2000 r--p 00000000 00:00 0 /x", &m) == 0 && m.n == 1 &&
	      m.v[0].path && !strcmp(m.v[0].path, "/x"));
	ms_maps_free(&m);

	/* Our own maps parse, and contain our own code. */
	CHECK(ms_maps_read(getpid(), &m) == 0 && m.n > 5);
	f = ms_maps_find(&m, (ms_raddr_t)(uintptr_t)&main);
	CHECK(f && f->x && f->path);
	ms_maps_free(&m);

	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
