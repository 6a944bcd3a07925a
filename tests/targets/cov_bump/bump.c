// SPDX-License-Identifier: MIT
/*
 * memspy-cov-bump: the executable defines the allocator itself (a bump
 * allocator exported with -rdynamic), so libc's malloc is never called:
 * memspy must probe the executable's entry points.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARENA_BYTES (256u << 20)
#define HDR	    16 /* size of the block, keeps 16-byte alignment */

static _Alignas(4096) unsigned char arena[ARENA_BYTES];
static size_t used;

static void *bump(size_t align, size_t n)
{
	size_t start, next, cur = __atomic_load_n(&used, __ATOMIC_RELAXED);

	if (align < HDR)
		align = HDR;
	if (n > ARENA_BYTES)
		goto nomem;
	do {
		start = (cur + HDR + align - 1) & ~(align - 1);
		next = start + n;
		if (next > ARENA_BYTES || next < start)
			goto nomem;
	} while (
	    !__atomic_compare_exchange_n(&used, &cur, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	memcpy(arena + start - sizeof(size_t), &n, sizeof(n));
	return arena + start;
nomem:
	errno = ENOMEM;
	return NULL;
}

static size_t block_size(const void *p)
{
	size_t n;

	memcpy(&n, (const unsigned char *)p - sizeof(n), sizeof(n));
	return n;
}

void *malloc(size_t n)
{
	return bump(HDR, n);
}

void *calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return bump(HDR, n * size); /* the arena is never reused: already zero */
}

void free(void *p)
{
	(void)p;
}

void *realloc(void *p, size_t n)
{
	void *q = bump(HDR, n);
	size_t old;

	if (q && p) {
		old = block_size(p);
		memcpy(q, p, old < n ? old : n);
	}
	return q;
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = bump(align, n);

	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	return bump(align, n);
}

void *memalign(size_t align, size_t n)
{
	return bump(align, n);
}

void *valloc(size_t n)
{
	return bump(4096, n);
}

void *pvalloc(size_t n)
{
	return bump(4096, (n + 4095) & ~(size_t)4095);
}

size_t malloc_usable_size(void *p)
{
	return p ? block_size(p) : 0;
}
