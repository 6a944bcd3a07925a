// SPDX-License-Identifier: MIT
/*
 * A malloc of its own, linked into the executable (so glibc's is never
 * used): size-class free lists over mmap'd slabs, one lock. Enough for the
 * walk-mode test of a target whose allocator is not glibc's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define CLASS 16u
#define NCLASS 256u /* up to 4 KiB in classes; bigger blocks get their own mmap */
#define SLAB (1u << 20)

struct hdr {
	size_t size; /* usable bytes */
	size_t pad;
};

static void *freelist[NCLASS + 1];
static char *slab_cur, *slab_end;
static volatile int lock;

static void take(void)
{
	while (__atomic_test_and_set(&lock, __ATOMIC_ACQUIRE))
		;
}

static void give(void)
{
	__atomic_clear(&lock, __ATOMIC_RELEASE);
}

__attribute__((noinline)) void *malloc(size_t n)
{
	size_t c = (n + CLASS - 1) / CLASS, sz;
	struct hdr *h;

	if (c == 0)
		c = 1;
	if (c > NCLASS) {
		sz = (n + sizeof(*h) + 4095) & ~(size_t)4095;
		h = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (h == MAP_FAILED)
			return NULL;
		h->size = sz - sizeof(*h);
		return h + 1;
	}
	sz = c * CLASS;
	take();
	if (freelist[c]) {
		h = freelist[c];
		freelist[c] = *(void **)(h + 1);
	} else {
		if (!slab_cur || (size_t)(slab_end - slab_cur) < sz + sizeof(*h)) {
			void *s = mmap(NULL, SLAB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				       -1, 0);

			if (s == MAP_FAILED) {
				give();
				return NULL;
			}
			slab_cur = s;
			slab_end = slab_cur + SLAB;
		}
		h = (struct hdr *)slab_cur;
		slab_cur += sz + sizeof(*h);
		h->size = sz;
	}
	give();
	return h + 1;
}

__attribute__((noinline)) void free(void *p)
{
	struct hdr *h;
	size_t c;

	if (!p)
		return;
	h = (struct hdr *)p - 1;
	c = h->size / CLASS;
	if (c > NCLASS) {
		munmap(h, h->size + sizeof(*h));
		return;
	}
	take();
	*(void **)p = freelist[c];
	freelist[c] = h;
	give();
}

void *calloc(size_t n, size_t m)
{
	void *p;

	if (m && n > SIZE_MAX / m)
		return NULL;
	p = malloc(n * m);
	if (p)
		memset(p, 0, n * m);
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q;
	size_t old;

	if (!p)
		return malloc(n);
	old = ((struct hdr *)p - 1)->size;
	if (n <= old)
		return p;
	q = malloc(n);
	if (q) {
		memcpy(q, p, old);
		free(p);
	}
	return q;
}

int posix_memalign(void **out, size_t align, size_t n)
{
	/* Every block is 16-aligned; larger alignments are not needed by this target. */
	if (align > 16)
		return EINVAL;
	*out = malloc(n);
	return *out ? 0 : ENOMEM;
}

void *aligned_alloc(size_t align, size_t n)
{
	return align > 16 ? NULL : malloc(n);
}

void *memalign(size_t align, size_t n)
{
	return aligned_alloc(align, n);
}

size_t malloc_usable_size(void *p)
{
	return p ? ((struct hdr *)p - 1)->size : 0;
}
