// SPDX-License-Identifier: MIT
/*
 * unwind: backend selection and the checks every backend shares (pcs[0] is
 * always rip; a partial stack is a result, not an error).
 */
#include "unwind/unwind_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum ms_unwind_backend b;
} backend_names[] = {
    {"elfutils", MS_UNWIND_DWFL},
    {"dwfl", MS_UNWIND_DWFL},
    {"libunwind", MS_UNWIND_LIBUNWIND},
    {"fp", MS_UNWIND_FP},
};

int ms_unwind_backend_from_name(const char *name, enum ms_unwind_backend *out)
{
	size_t i;

	if (!name)
		return -EINVAL;
	for (i = 0; i < MS_ARRAY_SIZE(backend_names); i++) {
		if (strcmp(name, backend_names[i].name) == 0) {
			*out = backend_names[i].b;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ms_unwind_backend_name(enum ms_unwind_backend b)
{
	switch (b) {
	case MS_UNWIND_DWFL:
		return "elfutils";
	case MS_UNWIND_LIBUNWIND:
		return "libunwind";
	case MS_UNWIND_FP:
		return "fp";
	}
	return "?";
}

static const struct ms_unwind_ops *ops_for(enum ms_unwind_backend b)
{
	switch (b) {
	case MS_UNWIND_DWFL:
		return &ms_unwind_dwfl_ops;
	case MS_UNWIND_LIBUNWIND:
		return &ms_unwind_libunwind_ops;
	case MS_UNWIND_FP:
		return &ms_unwind_fp_ops;
	}
	return NULL;
}

struct ms_unwinder *ms_unwinder_new(pid_t pid, enum ms_unwind_backend b, struct ms_error *err)
{
	const struct ms_unwind_ops *ops = ops_for(b);
	struct ms_unwinder *u;

	if (!ops || pid <= 0) {
		ms_error_set(err, -EINVAL, "unwind: bad backend %d or pid %d", (int)b, (int)pid);
		return NULL;
	}
	u = ms_xcalloc(1, sizeof(*u));
	u->pid = pid;
	u->backend = b;
	u->ops = ops;
	if (ops->init(u, err) < 0) {
		free(u);
		return NULL;
	}
	ms_unwind_dump_open(u);
	return u;
}

int ms_unwinder_refresh(struct ms_unwinder *u)
{
	return u->ops->refresh ? u->ops->refresh(u) : 0;
}

enum ms_unwind_backend ms_unwinder_backend(const struct ms_unwinder *u)
{
	return u->backend;
}

void ms_unwinder_free(struct ms_unwinder *u)
{
	if (!u)
		return;
	ms_unwind_dump_close(u);
	if (u->ops->fini)
		u->ops->fini(u);
	free(u);
}

void ms_unwind_regs_dwarf(const struct user_regs_struct *r, uint64_t out[MS_UNWIND_NREGS])
{
	const uint64_t v[MS_UNWIND_NREGS] = {
	    r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi, r->rbp, r->rsp, r->r8,
	    r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip,
	};

	memcpy(out, v, sizeof(v));
}

void ms_unwind_note_read(const struct ms_stack_copy *s, ms_raddr_t addr, bool in_copy)
{
	uint64_t off = addr - s->addr;

	if (in_copy) {
		if (off + 8 > s->use->used)
			s->use->used = (size_t)(off + 8);
	} else if (addr >= s->addr && off >= s->len && off < SIZE_MAX - 8 &&
		   (!s->use->beyond || off + 8 < s->use->beyond)) {
		s->use->beyond = (size_t)(off + 8);
	}
}

int ms_unwind_read_word(const struct ms_stack_copy *s, ms_raddr_t addr, uint64_t *out)
{
	/* Written so that addr + 8 cannot overflow past the checks. */
	if (s->data && addr >= s->addr && s->len >= 8 && addr - s->addr <= s->len - 8) {
		memcpy(out, s->data + (addr - s->addr), 8);
		if (s->use)
			ms_unwind_note_read(s, addr, true);
		return 0;
	}
	if (s->use)
		ms_unwind_note_read(s, addr, false);
	if (s->fallback && addr <= UINT64_MAX - 8)
		return ms_read_exact(s->fallback, addr, out, 8) < 0 ? -EFAULT : 0;
	return -EFAULT;
}

int ms_unwind(struct ms_unwinder *u, const struct ms_stack_copy *s, ms_raddr_t *pcs, size_t max,
	      size_t *n)
{
	*n = 0;
	if (!u || !s || !s->regs || !pcs || max == 0 || (s->len && !s->data))
		return -EINVAL;
	if (s->use)
		*s->use = (struct ms_stack_use){0};
	if (u->dump)
		ms_unwind_dump_write(u, s);
	pcs[0] = s->regs->rip;
	*n = 1;
	if (max == 1)
		return 0;
	/* The backend's own failure still leaves the frames it found. */
	u->ops->unwind(u, s, pcs, max, n);
	if (*n == 0) {
		pcs[0] = s->regs->rip;
		*n = 1;
	}
	return 0;
}
