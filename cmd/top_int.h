/* SPDX-License-Identifier: MIT */
/*
 * memspy top, private: the recording's samples summed per function (own:
 * the function that called the allocator; total: every function on the
 * stack, once per stack), per refresh window and since the start, and the
 * text of one view of them.
 */
#ifndef MEMSPY_TOP_INT_H
#define MEMSPY_TOP_INT_H

#include "cmd/record_int.h"

/* The table's columns, in the order shown; the sort keys 1-6 are these + 1. */
enum ms_top_col {
	MS_TOP_OWN_BYTES, /* bytes/s allocated by the function itself */
	MS_TOP_TOT_BYTES, /* bytes/s allocated under it (itself and its callees) */
	MS_TOP_OWN_COUNT, /* allocations/s */
	MS_TOP_TOT_COUNT,
	MS_TOP_OWN_LIVE, /* bytes still live (--live) */
	MS_TOP_TOT_LIVE,
	MS_TOP_NCOLS,
};

struct ms_top_table; /* opaque */

struct ms_top_table *ms_top_table_new(void);
/* NULL is a no-op. */
void ms_top_table_free(struct ms_top_table *t);

/*
 * Starts a new window of window_ns ending now: the samples the recording
 * table rt gained since the last update are this window's. Stacks new to
 * t are symbolised (once each) with sym, which may be NULL (addresses).
 */
void ms_top_table_update(struct ms_top_table *t, const struct ms_rec_table *rt,
			 struct ms_symbolizer *sym, uint64_t window_ns);

/* Whether rt has stacks that t has not named yet. */
bool ms_top_table_pending(const struct ms_top_table *t, const struct ms_rec_table *rt);

/* Totals of the last window and since the first update (bytes, allocations), and live bytes. */
struct ms_top_totals {
	double win_bytes, win_count, cum_bytes, cum_count, live_bytes;
	uint64_t window_ns, cum_ns;
	size_t nfns;
};
void ms_top_table_totals(const struct ms_top_table *t, struct ms_top_totals *out);

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
void ms_top_table_render(const struct ms_top_table *t, const struct ms_top_view *v, char **buf,
			 size_t *len, size_t *cap);

/* The column's title ("OWN B/s"). */
const char *ms_top_col_title(enum ms_top_col c);

/* Appends printf output to a growable buffer (as ms_top_table_render's). */
void ms_top_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) MS_PRINTF(4, 5);

#endif
