/* SPDX-License-Identifier: MIT */
/*
 * memspy top, private: the text of one view of the recording's samples
 * summed per function (record/functions.c: own, the function that called
 * the allocator; total, every function on the stack, once per stack; per
 * refresh window and since the start).
 */
#ifndef MEMSPY_TOP_INT_H
#define MEMSPY_TOP_INT_H

#include "cmd/record_int.h"

/*
 * The table's columns, in the order shown; the sort keys 1-6 are these + 1.
 * The first four are ms_rec_fn.win's and .cum's, in their order.
 */
enum ms_top_col {
	MS_TOP_OWN_BYTES = MS_REC_FN_OWN_BYTES, /* bytes/s allocated by the function itself */
	MS_TOP_TOT_BYTES = MS_REC_FN_TOT_BYTES, /* bytes/s allocated under it (and its callees) */
	MS_TOP_OWN_COUNT = MS_REC_FN_OWN_COUNT, /* allocations/s */
	MS_TOP_TOT_COUNT = MS_REC_FN_TOT_COUNT,
	MS_TOP_OWN_LIVE, /* bytes still live (--live) */
	MS_TOP_TOT_LIVE,
	MS_TOP_NCOLS,
};

/* How to show the table. */
struct ms_top_view {
	enum ms_top_col sort;
	bool live;	 /* show the live columns */
	bool cumulative; /* rates since the start rather than over the last window */
	size_t max_rows; /* functions shown at most */
};

/*
 * Appends the column titles and the rows, one line each ("\n"), to *buf
 * (length *len, capacity *cap; grown as needed). Names are printable ASCII
 * (other bytes shown as '?'), never longer than a line's last column.
 */
void ms_top_table_render(const struct ms_rec_fns *t, const struct ms_top_view *v, char **buf,
			 size_t *len, size_t *cap);

/* The column's title ("OWN B/s"). */
const char *ms_top_col_title(enum ms_top_col c);

/* Appends printf output to a growable buffer (as ms_top_table_render's). */
void ms_top_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) MS_PRINTF(4, 5);

#endif
