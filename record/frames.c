// SPDX-License-Identifier: MIT
/*
 * record: a stack's PCs as output/'s frames, the one conversion both
 * recording modes (and their interval files) use.
 */
#include "record/record.h"
#include "output/output.h"
#include "unwind/unwind.h"

#include <string.h>

size_t ms_rec_frames(struct ms_symbolizer *sym, const ms_raddr_t *pcs, size_t npcs, unsigned flags,
		     struct ms_out_frame **frames, size_t *cap, size_t at)
{
	bool lines = flags & MS_REC_FRAMES_LINES;
	size_t n = at;

	/* pcs are innermost first; frames must be outermost first. */
	for (size_t k = npcs; k-- > 0;) {
		/* A return address is symbolised as the call before it. */
		bool ret = k > 0 || !(flags & MS_REC_FRAMES_LEAF_IS_PC);
		const struct ms_sym_frame *sf = NULL;
		size_t nsf = 0;

		if (sym && ms_symbolize(sym, pcs[k], ret, &sf, &nsf) == 0 && nsf) {
			/* sf is innermost first: the containing function comes last. */
			for (size_t j = nsf; j-- > 0;) {
				ms_xgrow((void **)frames, cap, n + 1, sizeof(**frames));
				(*frames)[n++] = (struct ms_out_frame){
				    .function =
					strcmp(sf[j].function, "??") ? sf[j].function : NULL,
				    .file = lines ? sf[j].file : NULL,
				    .line = lines ? sf[j].line : 0,
				    .module = strcmp(sf[j].module, "??") ? sf[j].module : NULL,
				    .offset = sf[j].module_offset,
				    .inlined = sf[j].inlined,
				    .address = sf[j].address,
				};
			}
		} else {
			ms_xgrow((void **)frames, cap, n + 1, sizeof(**frames));
			(*frames)[n++] = (struct ms_out_frame){
			    .offset = pcs[k],
			    .address = (flags & MS_REC_FRAMES_ADDRESS) && pcs[k] ? pcs[k] - 1 : 0};
		}
	}
	return n;
}
