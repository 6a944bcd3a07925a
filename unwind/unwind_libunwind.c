// SPDX-License-Identifier: MIT
/*
 * unwind/libunwind: libunwind's remote unwinder with accessors served from
 * the copied stack and registers; unwind tables come from _UPT. Plain _UPT
 * reads the stack word by word with PEEKDATA (~100 us a stack).
 */
#include "unwind/unwind_int.h"

#include <errno.h>
#include <libunwind.h>
#include <libunwind-ptrace.h>
#include <stdlib.h>
#include <string.h>

#define CTX_MAGIC 0x6d73756e77637478ull /* "mswunctx" */
#define PAGE	  4096ull
#define NPAGES	  256 /* read-only page cache: 1 MiB, direct-mapped */

struct text_page {
	ms_raddr_t addr; /* page address + 1 when valid (0 = empty slot) */
	bool ok;	 /* false: the page could not be read */
	uint8_t data[PAGE];
};

/* One _UPT handle per module: each caches the last ELF image it looked up,
 * so one shared handle re-reads maps and re-maps files whenever a stack
 * crosses from one module to another. */
struct upt_slot {
	char *path;
	void *upt;
};

struct unw_priv {
	unw_addr_space_t as;
	struct upt_slot *upts;
	size_t nupts, cap_upts;
	pid_t pid;
	struct ms_maps maps; /* to keep the page cache on read-only mappings */
	struct text_page *pages;
	struct unw_priv *next; /* in the list of live backends */
};

/*
 * What the cursor's accessors get as arg. libunwind also calls access_mem
 * with the _UPT handle (the arg that find_proc_info passed on to
 * _UPT_find_proc_info), to read the unwind tables: the magic tells the two
 * apart (confusing them crashed the tracer in a prototype).
 */
struct unw_ctx {
	uint64_t magic;
	struct unw_priv *p;
	const struct ms_stack_copy *s;
};

/* Maps a _UPT handle back to its backend; memspy unwinds from one thread. */
static struct unw_priv *live;

static struct unw_priv *priv_of_upt(void *upt)
{
	struct unw_priv *p;
	size_t i;

	for (p = live; p; p = p->next)
		for (i = 0; i < p->nupts; i++)
			if (p->upts[i].upt == upt)
				return p;
	return NULL;
}

static void *upt_for(struct unw_priv *p, ms_raddr_t ip)
{
	const struct ms_map *m = ms_maps_find(&p->maps, ip);
	const char *path = m && m->path ? m->path : "";
	struct upt_slot *sl;
	size_t i;

	for (i = 0; i < p->nupts; i++)
		if (strcmp(p->upts[i].path, path) == 0)
			return p->upts[i].upt;
	ms_xgrow((void **)&p->upts, &p->cap_upts, p->nupts + 1, sizeof(*p->upts));
	sl = &p->upts[p->nupts];
	sl->upt = _UPT_create(p->pid); /* no attach: only its unwind-table lookup is used */
	if (!sl->upt)
		return NULL;
	sl->path = ms_xstrdup(path);
	p->nupts++;
	return sl->upt;
}

static void upts_free(struct unw_priv *p)
{
	size_t i;

	for (i = 0; i < p->nupts; i++) {
		_UPT_destroy(p->upts[i].upt);
		free(p->upts[i].path);
	}
	free(p->upts);
	p->upts = NULL;
	p->nupts = p->cap_upts = 0;
}

/*
 * Unwind tables (.eh_frame_hdr, .eh_frame) live in read-only file mappings
 * that never change while mapped, so they may be read from the running
 * target; pages are cached because libunwind reads them a word at a time.
 */
static int read_text_word(struct unw_priv *p, ms_raddr_t addr, uint64_t *out)
{
	ms_raddr_t page = addr & ~(PAGE - 1);
	struct text_page *tp = &p->pages[(page / PAGE) % NPAGES];
	size_t off = (size_t)(addr - page);

	if (off > PAGE - 8)
		return -EFAULT; /* libunwind only asks for aligned words */
	if (tp->addr != page + 1) {
		const struct ms_map *m = ms_maps_find(&p->maps, page);
		ssize_t r;

		if (!m || m->w || !m->r || !m->path || page < m->start || page + PAGE > m->end)
			return -EFAULT;
		r = ms_mem_read_pid(p->pid, page, tp->data, PAGE);
		tp->addr = page + 1;
		tp->ok = r == (ssize_t)PAGE;
	}
	if (!tp->ok)
		return -EFAULT;
	memcpy(out, tp->data + off, 8);
	return 0;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write, void *arg)
{
	struct unw_ctx *c = arg;
	struct unw_priv *p;
	uint64_t v;

	if (write)
		return -UNW_EREADONLYREG;
	if (c && c->magic == CTX_MAGIC) {
		if (ms_unwind_read_word(c->s, addr, &v) < 0 && read_text_word(c->p, addr, &v) < 0)
			return -UNW_EINVAL;
	} else {
		p = priv_of_upt(arg);
		if (!p || read_text_word(p, addr, &v) < 0)
			return -UNW_EINVAL;
	}
	*valp = v;
	return 0;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write, void *arg)
{
	const struct unw_ctx *c = arg;
	uint64_t regs[MS_UNWIND_NREGS];

	/* libunwind's x86-64 register numbers are the DWARF ones (RIP = 16). */
	if (!c || c->magic != CTX_MAGIC || write || reg < 0 || reg >= MS_UNWIND_NREGS)
		return -UNW_EBADREG;
	ms_unwind_regs_dwarf(c->s->regs, regs);
	*valp = regs[reg];
	return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			void *arg)
{
	return -UNW_EBADREG;
}

static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need,
			  void *arg)
{
	const struct unw_ctx *c = arg;
	void *upt = upt_for(c->p, ip);

	return upt ? _UPT_find_proc_info(as, ip, pi, need, upt) : -UNW_ENOINFO;
}

static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	/* Frees pi->unwind_info only; the handle is not used. */
	_UPT_put_unwind_info(as, pi, NULL);
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dilap, void *arg)
{
	return -UNW_ENOINFO; /* no JIT-registered unwind info */
}

static int resume(unw_addr_space_t as, unw_cursor_t *cursor, void *arg)
{
	return -UNW_EINVAL;
}

static int get_proc_name(unw_addr_space_t as, unw_word_t ip, char *buf, size_t len,
			 unw_word_t *offp, void *arg)
{
	return -UNW_ENOINFO; /* symbolize.c names PCs */
}

static unw_accessors_t accessors = {
    .find_proc_info = find_proc_info,
    .put_unwind_info = put_unwind_info,
    .get_dyn_info_list_addr = get_dyn_info_list_addr,
    .access_mem = access_mem,
    .access_reg = access_reg,
    .access_fpreg = access_fpreg,
    .resume = resume,
    .get_proc_name = get_proc_name,
};

static int lu_init(struct ms_unwinder *u, struct ms_error *err)
{
	struct unw_priv *p = ms_xcalloc(1, sizeof(*p));
	int r;

	p->pid = u->pid;
	r = ms_maps_read(u->pid, &p->maps, err);
	if (r < 0) {
		free(p);
		return r;
	}
	p->as = unw_create_addr_space(&accessors, 0);
	if (!p->as) {
		r = ms_error_set(err, -ENOMEM, "unwind: creating the libunwind address space");
		ms_maps_free(&p->maps);
		free(p);
		return r;
	}
	/*
	 * Per-IP proc-info cache. Debian's libunwind 1.6.2 blocks signals
	 * around it and its memory pools: ~44 rt_sigprocmask calls for a
	 * 22-frame stack, most of this backend's ~46 us. UNW_CACHE_NONE was
	 * measured worse (~92 calls and FDE parsing every frame): prefer the
	 * elfutils backend.
	 */
	unw_set_caching_policy(p->as, UNW_CACHE_GLOBAL);
	p->pages = ms_xcalloc(NPAGES, sizeof(*p->pages));
	p->next = live;
	live = p;
	u->priv = p;
	return 0;
}

static int lu_refresh(struct ms_unwinder *u)
{
	struct unw_priv *p = u->priv;
	struct ms_maps maps;
	int r = ms_maps_read(u->pid, &maps, NULL);

	if (r < 0)
		return r;
	ms_maps_free(&p->maps);
	p->maps = maps;
	memset(p->pages, 0, NPAGES * sizeof(*p->pages));
	upts_free(p);
	unw_flush_cache(p->as, 0, 0);
	return 0;
}

static void lu_fini(struct ms_unwinder *u)
{
	struct unw_priv *p = u->priv, **pp;

	for (pp = &live; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	unw_destroy_addr_space(p->as);
	upts_free(p);
	ms_maps_free(&p->maps);
	free(p->pages);
	free(p);
}

static int lu_unwind(struct ms_unwinder *u, const struct ms_stack_copy *s, ms_raddr_t *pcs,
		     size_t max, size_t *n)
{
	struct unw_priv *p = u->priv;
	struct unw_ctx c = {.magic = CTX_MAGIC, .p = p, .s = s};
	uint64_t last_sp = s->regs->rsp;
	unw_cursor_t cur;

	if (unw_init_remote(&cur, p->as, &c) < 0)
		return 0;
	while (*n < max) {
		unw_word_t ip, sp;

		if (unw_step(&cur) <= 0)
			break;
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		/* Each caller's frame lies above its callee's: stops loops on
		 * corrupt or hostile stacks. */
		if (unw_get_reg(&cur, UNW_REG_SP, &sp) < 0 || sp <= last_sp)
			break;
		last_sp = sp;
		pcs[(*n)++] = ip;
	}
	return 0;
}

const struct ms_unwind_ops ms_unwind_libunwind_ops = {
    .name = "libunwind",
    .init = lu_init,
    .refresh = lu_refresh,
    .fini = lu_fini,
    .unwind = lu_unwind,
};
