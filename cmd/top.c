// SPDX-License-Identifier: MIT
/*
 * memspy top: a live view of where a running process allocates, refreshed
 * every second. It is memspy record's recording (the same probes, sampling,
 * budget and cost meter, the same clean detach), run through record's loop
 * with hooks (ms_rec_main): each iteration reads keys, and once a second the
 * samples gained are summed per function (top_table.c) and shown. On a
 * terminal: plain ANSI escapes (alternate screen, cursor moves, no
 * library), raw keys from stdin; elsewhere one plain block per second.
 */
#include "cmd/cmd.h"
#include "cmd/top_int.h"
#include "attach/attach.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define REFRESH_NS     1000000000ull /* one view per second */
#define SYM_REFRESH_NS 5000000000ull /* modules mapped since (dlopen) looked for at most so often  \
				      */
#define PIPE_MAX_ROWS 20	     /* functions per block when stdout is not a terminal */
#define HEADER_LINES  5		     /* process, sampling, totals, keys, blank */

struct top {
	bool tty;     /* stdout is a terminal: a screen redrawn in place */
	bool keys;    /* stdin is a terminal too: keys are read from it */
	bool started; /* the first step ran (terminal set up) */
	bool raw;     /* saved holds the terminal's modes to restore */
	bool screen;  /* the alternate screen is shown */
	bool failed;  /* writing to stdout failed: the view ends */
	struct termios saved;
	unsigned rows, cols;
	struct ms_top_view view;
	struct ms_rec_fns *tab;
	uint64_t last_ns, next_ns, sym_ns;
	uint64_t last_samples;
	double samples_per_s; /* over the last window */
	char comm[64];
	char *buf;
	size_t len, cap;
	char esc[8]; /* an escape sequence being read from stdin */
	size_t nesc;
};

static void help(FILE *f)
{
	fprintf(
	    f,
	    "Usage: memspy top --pid PID [options]\n"
	    "\n"
	    "A live view of where a running process allocates: memspy record's sampling\n"
	    "(the same probes, budget and clean detach), shown as a table of functions\n"
	    "refreshed every second, like py-spy top.\n"
	    "\n"
	    "Columns (rates over the last second):\n"
	    "  OWN B/s, OWN ALLOCS/s      bytes and allocations the function asked for\n"
	    "                             itself\n"
	    "  TOTAL B/s, TOTAL ALLOCS/s  the same for it and everything it called\n"
	    "  OWN LIVE, TOTAL LIVE       with --live: bytes allocated since memspy attached\n"
	    "                             and not freed yet\n"
	    "\n"
	    "Keys (on a terminal): 1-4 (1-6 with --live) sort by that column, left/right\n"
	    "arrows move the sort column, c toggles rates over the last second / since the\n"
	    "start, q or Ctrl-C quits (every probe removed, the target detached).\n"
	    "When stdout is not a terminal: one plain text block per second, and a final\n"
	    "block of the averages since the start.\n"
	    "\n"
	    "Options:\n");
	cli_help_shared(f, CLI_HELP_PID);
	cli_help_shared(f, CLI_HELP_DURATION);
	cli_help_opt(f, "--live", "also probe free: live bytes per function");
	cli_help_shared(f, CLI_HELP_SAMPLE_BYTES);
	cli_help_shared(f, CLI_HELP_MAX_OVERHEAD);
	cli_help_shared(f, CLI_HELP_EXACT);
	cli_help_shared(f, CLI_HELP_STACK_BYTES);
	cli_help_shared(f, CLI_HELP_UNWINDER);
	cli_help_shared(f, CLI_HELP_PROBE);
	cli_help_shared(f, CLI_HELP_PROBE_FREE);
	cli_help_shared(f, CLI_HELP_QUIET);
	cli_help_opt(f, "-v, --verbose", "say what memspy does (each change of the sampling mean)");
	cli_help_shared(f, CLI_HELP_HELP);
	fprintf(f,
	    "\n"
	    "The header shows the sampling mean, samples/s and what sampling cost the\n"
	    "target so far, as memspy record's summary measures it; the same summary is\n"
	    "printed on stderr at the end.\n"
	    "\n"
	    "Exit status: as memspy record's (0 complete, 1 the target exited or\n"
	    "overwrote memspy's pages, 2 failed or a probe could not be removed and\n"
	    "verified, 64 usage error).\n");
}

/* ------------------------------ the terminal ------------------------------ */

/* Writes all of s to stdout; false when it cannot (the terminal or the pipe went away). */
static bool write_all(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

static void term_size(struct top *t)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		t->rows = ws.ws_row;
		t->cols = ws.ws_col;
	} else {
		t->rows = 24;
		t->cols = 80;
	}
}

static void term_enter(struct top *t)
{
	if (t->keys && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		struct termios raw = t->saved;

		/* keys one at a time, not echoed; Ctrl-C and Ctrl-Z are keys, not signals */
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
		raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			t->raw = true;
	}
	/* the alternate screen, cursor hidden, screen cleared */
	t->screen = write_all("\033[?1049h\033[?25l\033[H\033[2J", 21);
}

/* Restores the terminal; safe to call more than once, on every way out. */
static void term_leave(struct top *t)
{
	if (t->screen) {
		write_all("\033[?25h\033[?1049l", 14);
		t->screen = false;
	}
	if (t->raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
		t->raw = false;
	}
}

/*
 * Draws the lines of t->buf on the screen from its top, each cut to the
 * terminal's width and cleared to its end, and clears what is below.
 */
static bool draw(struct top *t)
{
	char *screen = NULL, *line = t->buf;
	size_t len = 0, cap = 0;
	unsigned row = 0;
	bool ok;

	ms_top_buf_printf(&screen, &len, &cap, "\033[H");
	while (line && *line && row < t->rows) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		ms_top_buf_printf(
		    &screen, &len, &cap, "\033[%u;1H%s%.*s%s%s", row + 1,
		    row == HEADER_LINES ? "\033[7m" : "", (int)(n < t->cols ? n : t->cols), line,
		    row == HEADER_LINES ? "\033[0m" : "", n < t->cols ? "\033[K" : "");
		row++;
		line = nl ? nl + 1 : NULL;
	}
	if (row < t->rows)
		ms_top_buf_printf(&screen, &len, &cap, "\033[%u;1H\033[J", row + 1);
	ok = write_all(screen, len);
	free(screen);
	return ok;
}

/* ------------------------------ the view ------------------------------ */

static void render_header(struct top *t, const struct ms_rec_view *v, uint64_t now, bool final)
{
	const struct ms_rec_budget *b = v->budget;
	struct ms_rec_account acc;
	struct ms_rec_fns_totals tot;
	char s1[32], s2[32], s3[32];
	double secs;

	ms_rec_fns_totals(t->tab, &tot);
	ms_top_buf_printf(&t->buf, &t->len, &t->cap, "memspy top: pid %d (%s), %.1f s%s%s\n",
			  (int)v->pid, t->comm, (double)(now - v->start_ns) / 1e9,
			  v->live ? ", --live" : "",
			  final ? ": final, averages since the start" : "");
	/* The same figures as record's summary: from the first reading to the latest. */
	ms_rec_account_read(b, v->last, &acc);
	if (b->mean)
		ms_top_buf_printf(&t->buf, &t->len, &t->cap, "sampling: mean %s, %.0f samples/s",
				  ms_fmt_bytes(s1, sizeof(s1), b->mean),
				  final && acc.wall_ns > 0 ? acc.samples_per_s : t->samples_per_s);
	else
		ms_top_buf_printf(&t->buf, &t->len, &t->cap, "sampling: exact (every call), %.0f/s",
				  t->samples_per_s);
	if (!acc.measurable)
		ms_top_buf_printf(&t->buf, &t->len, &t->cap,
				  "; cost to the target: not measurable yet (%s of its CPU)",
				  ms_fmt_duration(s2, sizeof(s2), (uint64_t)acc.parts.target_cpu));
	else
		ms_top_buf_printf(&t->buf, &t->len, &t->cap,
				  "; cost to the target: %.2f%% of its CPU", 100 * acc.slowdown);
	if (b->budget > 0)
		ms_top_buf_printf(&t->buf, &t->len, &t->cap, " (budget %.2g%%)", 100 * b->budget);
	ms_top_buf_printf(&t->buf, &t->len, &t->cap, "\n");
	secs = (double)(t->view.cumulative ? tot.cum_ns : tot.window_ns) / 1e9;
	ms_top_buf_printf(
	    &t->buf, &t->len, &t->cap, "allocated: %s/s in %s allocations/s (%s)",
	    ms_fmt_bytes(
		s1, sizeof(s1),
		secs > 0 ? (uint64_t)((t->view.cumulative ? tot.cum_bytes : tot.win_bytes) / secs)
			 : 0),
	    ms_fmt_count(
		s2, sizeof(s2),
		secs > 0 ? (uint64_t)((t->view.cumulative ? tot.cum_count : tot.win_count) / secs)
			 : 0),
	    t->view.cumulative ? "since the start" : "over the last second");
	if (v->live)
		ms_top_buf_printf(&t->buf, &t->len, &t->cap, "; still live: %s",
				  ms_fmt_bytes(s3, sizeof(s3), (uint64_t)tot.live_bytes));
	ms_top_buf_printf(&t->buf, &t->len, &t->cap, "\n");
	if (t->tty)
		ms_top_buf_printf(&t->buf, &t->len, &t->cap,
				  "keys: 1-%d or left/right sort (now by %s), c %s, q quit\n\n",
				  v->live ? MS_TOP_NCOLS : MS_TOP_OWN_LIVE,
				  ms_top_col_title(t->view.sort),
				  t->view.cumulative ? "last second" : "since the start");
	else
		ms_top_buf_printf(&t->buf, &t->len, &t->cap, "sorted by %s\n\n",
				  ms_top_col_title(t->view.sort));
}

/* Builds the view in t->buf and shows it: in place on a terminal, as a block otherwise. */
static void show(struct top *t, const struct ms_rec_view *v, uint64_t now, bool final)
{
	t->len = 0;
	if (t->buf)
		t->buf[0] = '\0';
	render_header(t, v, now, final);
	t->view.max_rows =
	    t->tty ? (t->rows > HEADER_LINES + 1 ? t->rows - HEADER_LINES - 1 : 0) : PIPE_MAX_ROWS;
	ms_top_table_render(t->tab, &t->view, &t->buf, &t->len, &t->cap);
	if (t->tty && t->screen) {
		if (!draw(t))
			t->failed = true;
		return;
	}
	ms_top_buf_printf(&t->buf, &t->len, &t->cap, "\n");
	if (!write_all(t->buf, t->len))
		t->failed = true;
}

static void set_sort(struct top *t, int col, bool live)
{
	int ncols = live ? MS_TOP_NCOLS : MS_TOP_OWN_LIVE;

	if (col < 0)
		col = ncols - 1;
	if (col >= ncols)
		col = 0;
	t->view.sort = (enum ms_top_col)col;
}

/* Reads the keys waiting on stdin; returns true to quit. *changed: the view must be redrawn. */
static bool read_keys(struct top *t, bool live, bool *changed)
{
	unsigned char in[64];
	ssize_t n;

	if (!t->raw)
		return false;
	n = read(STDIN_FILENO, in, sizeof(in));
	for (ssize_t i = 0; i < n; i++) {
		unsigned char k = in[i];

		if (t->nesc) { /* ESC [ C (right), ESC [ D (left); anything else ends the sequence
				*/
			if (t->nesc < sizeof(t->esc))
				t->esc[t->nesc++] = (char)k;
			if (t->nesc == 2 && k != '[' && k != 'O') {
				t->nesc = 0;
			} else if (t->nesc >= 3) {
				if (k == 'C' || k == 'D') {
					set_sort(t, (int)t->view.sort + (k == 'C' ? 1 : -1), live);
					*changed = true;
				}
				t->nesc = 0;
			}
			continue;
		}
		if (k == 0x1b) {
			t->esc[0] = (char)k;
			t->nesc = 1;
		} else if (k == 'q' || k == 'Q' || k == 0x03 /* Ctrl-C */) {
			return true;
		} else if (k >= '1' && k < '1' + (live ? MS_TOP_NCOLS : MS_TOP_OWN_LIVE)) {
			set_sort(t, k - '1', live);
			*changed = true;
		} else if (k == 'c' || k == 'C') {
			t->view.cumulative = !t->view.cumulative;
			*changed = true;
		} else if (k == 0x0c) { /* Ctrl-L: redraw */
			*changed = true;
		}
	}
	return false;
}

static void update(struct top *t, const struct ms_rec_view *v, uint64_t now)
{
	uint64_t window = now > t->last_ns ? now - t->last_ns : 0;

	/* New stacks are named once: with the libraries loaded meanwhile known first. */
	if (v->sym && now - t->sym_ns >= SYM_REFRESH_NS && ms_rec_fns_pending(t->tab, v->table)) {
		ms_symbolizer_refresh(v->sym);
		t->sym_ns = now;
	}
	ms_rec_fns_update(t->tab, v->table, v->sym, window);
	t->samples_per_s =
	    window ? (double)(v->last->samples - t->last_samples) * 1e9 / (double)window : 0;
	t->last_samples = v->last->samples;
	t->last_ns = now;
}

static int on_step(void *ctx, const struct ms_rec_view *v)
{
	struct top *t = ctx;
	bool redraw = false;
	unsigned rows = t->rows, cols = t->cols;
	uint64_t now = ms_now_ns();
	int ret = 0;

	if (!t->started) {
		t->started = true;
		t->view.live = v->live;
		ms_proc_comm(v->pid, t->comm, sizeof(t->comm));
		for (char *c = t->comm; *c; c++)
			if (*c < 0x20 || *c >= 0x7f)
				*c = '?';
		t->last_ns = v->start_ns;
		t->last_samples = v->budget->first.samples;
		t->next_ns = v->start_ns + REFRESH_NS;
		if (t->tty) {
			term_enter(t);
			redraw = true;
		}
	}
	if (read_keys(t, v->live, &redraw))
		ret |= MS_REC_STEP_STOP;
	if (t->tty) {
		term_size(t);
		if (rows != t->rows || cols != t->cols)
			redraw = true;
	}
	if (now >= t->next_ns) {
		update(t, v, now);
		t->next_ns += REFRESH_NS;
		if (t->next_ns <= now)
			t->next_ns = now + REFRESH_NS; /* memspy fell behind: no burst of views */
		redraw = true;
	}
	if (redraw && !(ret & MS_REC_STEP_STOP)) {
		show(t, v, now, false);
		ret |= MS_REC_STEP_BUSY;
	}
	if (t->failed)
		ret |= MS_REC_STEP_STOP;
	return ret;
}

static void on_ended(void *ctx, const struct ms_rec_view *v)
{
	struct top *t = ctx;
	uint64_t now = ms_now_ns();

	term_leave(t);
	if (!t->started || t->tty || t->failed)
		return;
	/* Not a terminal: the last partial window, then the averages since the start. */
	update(t, v, now);
	t->view.cumulative = true;
	show(t, v, now, true);
}

int cmd_top(int argc, char **argv)
{
	struct top t = {0};
	struct ms_rec_hooks h = {
	    .cmd = "top", .help = help, .ctx = &t, .step = on_step, .ended = on_ended};
	int rc;

	t.tty = isatty(STDOUT_FILENO);
	t.keys = t.tty && isatty(STDIN_FILENO);
	t.view.sort = MS_TOP_OWN_BYTES;
	if (t.tty)
		term_size(&t);
	/* A closed pipe or terminal ends the view (write fails), not memspy mid-recording. */
	signal(SIGPIPE, SIG_IGN);
	t.tab = ms_rec_fns_new();
	rc = ms_rec_main(argc, argv, &h);
	term_leave(&t);
	ms_rec_fns_free(t.tab);
	free(t.buf);
	return rc;
}
