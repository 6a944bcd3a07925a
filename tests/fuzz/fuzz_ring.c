// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: memspy's ring drain (attach/probe_ring.c, drain_region and
 * its tamper checks) over arbitrary contents of its pages in the target.
 * The region lives in a local image (memory reads and writes go through
 * struct ms_ring_io); the fuzz input is a list of operations: overwrite
 * bytes anywhere in the data pages, publish a sample or a free the way the
 * stubs do (with fuzzed fields), bump a counter, or drain. Every drain must
 * end without a crash, a hang, a leak or an access outside the image, and
 * every event it hands over must have a stack within its slot.
 *
 * The first byte's low bit picks the ring: private (every read a
 * process_vm_readv, here ms_ring_io) or shared (MEMSPY_SHARED_RING, the
 * default: the draws and rings, MS_STUB_SHARED_OFF on, are memspy's own
 * mapping of a memfd, read and written with memcpy, the stacks unwound in
 * place). In the shared ring the target can write the slots while memspy
 * reads them: the input may overwrite bytes of the shared part from inside
 * each event's callback, and a shared event's stack must point into its
 * own slot of the image.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "attach/probe.h"
#include "attach/probe_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE 0x7f0000100000ull
#define TP 0x7f0000300000ull
#define STACK_LO 0x7ffff0000000ull
#define STACK_HI 0x7ffff0100000ull
#define NONCE 0x1234567887654321ull

static uint8_t *img; /* MS_STUB_REGION_SIZE bytes at BASE */

/* process_vm_readv/writev over the image: local and remote lists are two streams. */
static ssize_t copy_iov(const struct iovec *l, size_t nl, const struct iovec *r, size_t nr,
			bool to_image)
{
	size_t li = 0, lo = 0, done = 0;

	for (size_t ri = 0; ri < nr; ri++) {
		uint64_t a = (uint64_t)(uintptr_t)r[ri].iov_base;
		size_t left = r[ri].iov_len;

		if (a < BASE || a - BASE > MS_STUB_REGION_SIZE ||
		    left > MS_STUB_REGION_SIZE - (a - BASE)) {
			errno = EFAULT;
			return done ? (ssize_t)done : -1;
		}
		while (left && li < nl) {
			size_t n = l[li].iov_len - lo;

			if (n > left)
				n = left;
			if (to_image)
				memcpy(img + (a - BASE), (uint8_t *)l[li].iov_base + lo, n);
			else
				memcpy((uint8_t *)l[li].iov_base + lo, img + (a - BASE), n);
			a += n;
			left -= n;
			lo += n;
			done += n;
			if (lo == l[li].iov_len) {
				li++;
				lo = 0;
			}
		}
	}
	return (ssize_t)done;
}

static ssize_t img_readv(void *ctx, const struct iovec *l, size_t nl, const struct iovec *r,
			 size_t nr)
{
	(void)ctx;
	return copy_iov(l, nl, r, nr, false);
}

static ssize_t img_writev(void *ctx, const struct iovec *l, size_t nl, const struct iovec *r,
			  size_t nr)
{
	(void)ctx;
	return copy_iov(l, nl, r, nr, true);
}

static uint64_t events, sink;
static bool shared;		     /* this input's ring is the shared one */
static const uint8_t *cb_d, *cb_end; /* the input, for writes from inside a callback */

/* The next n input bytes as a number (0 when the input ran out). */
static uint64_t take(const uint8_t **d, const uint8_t *end, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && *d < end; i++, (*d)++)
		v |= (uint64_t)**d << (8 * i);
	return v;
}

static void on_event(const struct ms_alloc_event *ev, void *ctx)
{
	(void)ctx;
	events++;
	if (ev->stack_len > MS_STUB_DATA_SIZE)
		abort();
	if (shared && ev->stack_len) {
		/* Read in place: within one slot of the image's stack copies. */
		const uint8_t *lo = img + MS_STUB_DATA_OFF, *p = ev->stack;
		size_t off;

		if (p < lo || p >= lo + (size_t)MS_STUB_NHDR * MS_STUB_DATA_SIZE)
			abort();
		off = (size_t)(p - lo) % MS_STUB_DATA_SIZE;
		if (off || ev->stack_len > MS_STUB_DATA_SIZE - off)
			abort();
	}
	/* ASan checks that the stack handed over is readable to its end. */
	if (ev->stack_len)
		sink += ev->stack[0] + ev->stack[ev->stack_len - 1];
	sink += ev->size + ev->weight + ev->ptr + (uint64_t)ev->tid;
	/* The target writes its shared pages while memspy reads them. */
	if (shared && cb_d && take(&cb_d, cb_end, 1) % 4 == 0) {
		uint64_t off = MS_STUB_SHARED_OFF + take(&cb_d, cb_end, 3) % MS_STUB_SHARED_SIZE;
		size_t n = (size_t)take(&cb_d, cb_end, 1);

		for (size_t i = 0; i < n && cb_d < cb_end && off + i < MS_STUB_REGION_SIZE; i++)
			img[off + i] = *cb_d++;
	}
}

static uint64_t *ctl64(unsigned off)
{
	return (uint64_t *)(img + MS_STUB_CTRL_OFF + off);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ms_ring_io io = {img_readv, img_writev, NULL};
	static const uint64_t threads[1][3] = {{TP, STACK_LO, STACK_HI}};
	const uint8_t *d = data, *end = data + size;
	struct ms_probes *pr;
	int drains = 0;

	if (!img) {
		img = calloc(1, MS_STUB_REGION_SIZE);
		memcpy(img, ms_stub_image, MS_STUB_CODE_SIZE);
		ms_log_verbosity = MS_LOG_ERROR; /* a tamper verdict per input is the point */
	}
	/*
	 * What install leaves: the signature, the control bytes, empty rings.
	 * The stack copies keep the last input's bytes: any bytes are valid there.
	 */
	memset(img + MS_STUB_CTRL_OFF, 0, MS_STUB_DATA_OFF - MS_STUB_CTRL_OFF);
	*ctl64(MS_CTRL_MAGIC) = MS_RING_MAGIC;
	*ctl64(MS_CTRL_TAG) = NONCE ^ BASE;
	img[MS_STUB_CTRL_OFF + MS_CTRL_ARMED] = 1;
	img[MS_STUB_CTRL_OFF + MS_CTRL_TRACK] = 1;
	img[MS_STUB_CTRL_OFF + MS_CTRL_RING] = 1;
	pr = ms_probes_fuzz_new(&io, BASE, NONCE, threads, 1);
	shared = take(&d, end, 1) & 1;
	if (shared)
		ms_probes_fuzz_share(pr, img + MS_STUB_SHARED_OFF);

	while (d < end && drains < 64) {
		unsigned op = (unsigned)take(&d, end, 1) % 5;

		if (op == 0) { /* raw bytes anywhere after the code pages */
			uint64_t off = MS_STUB_CTRL_OFF +
				       take(&d, end, 3) % (MS_STUB_REGION_SIZE - MS_STUB_CTRL_OFF);
			size_t n = (size_t)take(&d, end, 1);

			for (size_t i = 0; i < n && d < end && off + i < MS_STUB_REGION_SIZE; i++)
				img[off + i] = *d++;
		} else if (op == 1) { /* a sample published as the stub does, fuzzed fields */
			uint64_t seq = (*ctl64(MS_CTRL_RING_HEAD))++;
			uint64_t draw = (*ctl64(MS_CTRL_DRAW_IDX))++;
			uint8_t *h = img + MS_STUB_HDR_OFF + (seq % MS_STUB_NHDR) * MS_STUB_HDR_SIZE;
			uint64_t sp = STACK_HI - 8 - (take(&d, end, 2) & ~7ull), slot, t0;
			static const unsigned slots[] = {0, 12, 14, 20, 22, 3};

			(void)draw;
			slot = slots[take(&d, end, 1) % 6];
			t0 = __builtin_ia32_rdtsc();
			put64(h + MS_H_SLOT, (uint64_t)ms_stub_desc[slot].kind << 8 | slot);
			put64(h + MS_H_SEQ, seq ^ (take(&d, end, 1) == 7 ? 1 : 0));
			put64(h + MS_H_TP, TP);
			put64(h + MS_H_SP, sp);
			put64(h + MS_H_LEN, STACK_HI - sp < MS_STUB_DATA_SIZE ? STACK_HI - sp
									: MS_STUB_DATA_SIZE);
			put64(h + MS_H_RDI, take(&d, end, 4));
			put64(h + MS_H_RSI, take(&d, end, 2));
			put64(h + MS_H_RDX, take(&d, end, 2));
			put64(h + MS_H_RES, take(&d, end, 6) & ~15ull);
			put64(h + MS_H_FLAGS, take(&d, end, 1) & 1);
			put64(h + MS_H_TSC0, t0);
			put64(h + MS_H_CALL, take(&d, end, 1));
			put64(h + MS_H_TSC1, t0 + 1000);
			put64(h + MS_H_STATE, 2);
		} else if (op == 2) { /* a free */
			uint64_t t = (*ctl64(MS_CTRL_FREE_HEAD))++;
			uint8_t *f = img + MS_STUB_FRING_OFF + (t % MS_STUB_NFRING) * 16;

			put64(f + 8, (take(&d, end, 1) % MS_STUB_NSLOTS) << 56 |
					 (__builtin_ia32_rdtsc() & ((1ull << 56) - 1)));
			put64(f, take(&d, end, 6) | 2);
		} else if (op == 3) { /* a counter moves on by a fuzzed amount */
			static const unsigned ctr[] = {MS_CTRL_RING_HEAD, MS_CTRL_DRAW_IDX,
						       MS_CTRL_FREE_HEAD, MS_CTRL_DROPS,
						       MS_CTRL_NOTHREAD,  MS_CTRL_FREE_DROPS,
						       MS_CTRL_TABFULL};

			*ctl64(ctr[take(&d, end, 1) % 7]) += take(&d, end, 2);
		} else {
			int rc;

			drains++;
			cb_d = d;
			cb_end = end;
			rc = ms_probes_poll(pr, on_event, NULL);
			d = cb_d;
			cb_d = NULL;
			if (rc == -MS_E_TAMPERED)
				break;
		}
	}
	ms_probes_poll(pr, on_event, NULL);
	ms_probes_fuzz_free(pr);
	return 0;
}
