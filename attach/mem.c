// SPDX-License-Identifier: MIT
/*
 * Reading the target's memory with process_vm_readv. It needs ptrace access
 * permission but no stop, and it copies in one system call what PEEKDATA
 * would take thousands for (4-13 us for 8-32 KiB on our VM: doc/DESIGN.md, measured costs).
 */
#include "attach/attach.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#define PAGE 4096ull

ssize_t ms_mem_read_pid(pid_t pid, ms_raddr_t addr, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct iovec local = {(char *)buf + done, len - done};
		struct iovec remote = {(void *)(uintptr_t)(addr + done), len - done};
		ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			/*
			 * EFAULT on the first page means nothing there is readable.
			 * A read spanning an unreadable page fails whole; retry up to
			 * the next page boundary so the caller gets the readable prefix.
			 */
			if (e == EFAULT) {
				ms_raddr_t a = addr + done;
				size_t to_page = (size_t)(((a / PAGE) + 1) * PAGE - a);

				if (to_page < len - done) {
					struct iovec l2 = {(char *)buf + done, to_page};
					struct iovec r2 = {(void *)(uintptr_t)a, to_page};

					n = process_vm_readv(pid, &l2, 1, &r2, 1, 0);
					if (n > 0) {
						done += (size_t)n;
						continue;
					}
				}
			}
			return done ? (ssize_t)done : -e;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t pid_reader_read(void *ctx, ms_raddr_t addr, void *buf, size_t len)
{
	struct ms_pid_reader *pr = ctx;
	size_t done = 0;

	/* Clamp to runs of readable mappings so a wild address is never read. */
	while (done < len) {
		const struct ms_map *m = ms_maps_find(pr->maps, addr + done);
		size_t chunk;
		ssize_t n;

		if (!m || !m->r)
			break;
		chunk = (size_t)MS_MIN((uint64_t)(len - done), m->end - (addr + done));
		n = ms_mem_read_pid(pr->pid, addr + done, (char *)buf + done, chunk);
		pr->nreads++;
		if (n < 0)
			return done ? (ssize_t)done : n;
		pr->nbytes += (uint64_t)n;
		done += (size_t)n;
		if ((size_t)n < chunk)
			break;
	}
	return (ssize_t)done;
}

/*
 * Scattered reads, up to 1024 iovecs per process_vm_readv (UIO_MAXIOV): one
 * system call costs ~4 us here, a 16-byte piece ~0.75 us. Every piece must
 * lie inside one readable mapping; the first that does not ends the batch.
 */
static ssize_t pid_reader_readv(void *ctx, const struct ms_rvec *v, size_t n)
{
	struct ms_pid_reader *pr = ctx;
	struct iovec local[1024], remote[1024];
	size_t done = 0;

	while (done < n) {
		size_t k = 0, got_pieces = 0;
		ssize_t got;

		for (; k < MS_ARRAY_SIZE(local) && done + k < n; k++) {
			const struct ms_rvec *p = &v[done + k];
			const struct ms_map *m = ms_maps_find(pr->maps, p->addr);

			if (!m || !m->r || p->len > m->end - p->addr)
				break;
			local[k] = (struct iovec){p->buf, p->len};
			remote[k] = (struct iovec){(void *)(uintptr_t)p->addr, p->len};
		}
		if (!k)
			break;
		do
			got = process_vm_readv(pr->pid, local, k, remote, k, 0);
		while (got < 0 && errno == EINTR);
		pr->nreads++;
		if (got < 0)
			return done ? (ssize_t)done : (errno == EFAULT ? 0 : -errno);
		pr->nbytes += (uint64_t)got;
		for (size_t i = 0; i < k && (size_t)got >= local[i].iov_len; i++) {
			got -= (ssize_t)local[i].iov_len;
			got_pieces++;
		}
		done += got_pieces;
		if (got_pieces < k)
			break;
	}
	return (ssize_t)done;
}

void ms_pid_reader_init(struct ms_pid_reader *pr, struct ms_reader *r, pid_t pid,
			const struct ms_maps *maps)
{
	memset(pr, 0, sizeof(*pr));
	pr->pid = pid;
	pr->maps = maps;
	r->read = pid_reader_read;
	r->readv = pid_reader_readv;
	r->ctx = pr;
}
