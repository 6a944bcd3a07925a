// SPDX-License-Identifier: MIT
/*
 * unwind/dump: MEMSPY_UNWIND_DUMP=FILE makes every unwinder write each stack
 * copy it is given (registers, copy address, bytes) to FILE, so that
 * bench/unwind_replay can unwind a real recording's samples again, offline
 * but against the same live process (the modules must be where they were).
 * Copies served partly by a live reader (stopped threads) are written too,
 * but only their copied bytes: replayed walks may end earlier there.
 */
#include "unwind/unwind_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char dump_magic[8] = {'M', 'S', 'U', 'W', 'D', 'M', 'P', '1'};

/* The fixed part of a record; len bytes of stack follow. */
struct dump_head {
	uint32_t len;
	uint8_t at_entry;
	uint8_t pad[3];
	uint64_t addr;
	struct user_regs_struct regs;
};

void ms_unwind_dump_open(struct ms_unwinder *u)
{
	const char *path = getenv("MEMSPY_UNWIND_DUMP");

	if (!path || !*path)
		return;
	u->dump = fopen(path, "we");
	if (!u->dump) {
		ms_warn("unwind: MEMSPY_UNWIND_DUMP: cannot write %s", path);
		return;
	}
	fwrite(dump_magic, 1, sizeof(dump_magic), u->dump);
}

void ms_unwind_dump_write(struct ms_unwinder *u, const struct ms_stack_copy *s)
{
	struct dump_head h = {.len = (uint32_t)s->len, .at_entry = s->at_entry, .addr = s->addr};

	if (s->len > UINT32_MAX)
		return;
	h.regs = *s->regs;
	fwrite(&h, sizeof(h), 1, u->dump);
	if (s->len)
		fwrite(s->data, 1, s->len, u->dump);
}

void ms_unwind_dump_close(struct ms_unwinder *u)
{
	if (u->dump && fclose(u->dump) != 0)
		ms_warn("unwind: MEMSPY_UNWIND_DUMP: writing the dump failed");
	u->dump = NULL;
}

int ms_unwind_dump_load(const char *path, struct ms_unwind_dump_rec **out, size_t *n)
{
	FILE *f = fopen(path, "re");
	char magic[sizeof(dump_magic)];
	struct ms_unwind_dump_rec *v = NULL;
	size_t cap = 0, k = 0;
	struct dump_head h;

	*out = NULL;
	*n = 0;
	if (!f)
		return -1;
	if (fread(magic, 1, sizeof(magic), f) != sizeof(magic) ||
	    memcmp(magic, dump_magic, sizeof(magic)) != 0) {
		fclose(f);
		return -1;
	}
	while (fread(&h, sizeof(h), 1, f) == 1) {
		uint8_t *data = ms_xmalloc(h.len ? h.len : 1);

		if (h.len > (1u << 24) || fread(data, 1, h.len, f) != h.len) {
			free(data);
			break; /* a truncated last record (memspy killed): keep the rest */
		}
		if (k == cap) {
			cap = cap ? cap * 2 : 1024;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				abort();
		}
		v[k].regs = h.regs;
		v[k].addr = h.addr;
		v[k].at_entry = h.at_entry;
		v[k].len = h.len;
		v[k].data = data;
		k++;
	}
	fclose(f);
	*out = v;
	*n = k;
	return 0;
}

void ms_unwind_dump_free(struct ms_unwind_dump_rec *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
	free(v);
}
