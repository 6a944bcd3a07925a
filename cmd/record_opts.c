// SPDX-License-Identifier: MIT
/*
 * The options shared by both recording modes: their validation, messages
 * and defaults; and the help lines of the options several commands take.
 */
#include "cmd/record_opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cli_opt_output(const char *cmd, const char *arg, const char **out)
{
	if (!*arg)
		return cli_usage_error(cmd, "-o: empty file name");
	*out = arg;
	return 0;
}

int cli_opt_format(const char *cmd, const char *arg, enum ms_out_format *out)
{
	if (ms_out_format_from_name(arg, out))
		return cli_usage_error(cmd,
				       "--format: unknown format '%s' (use svg, folded, speedscope "
				       "or pprof)",
				       arg);
	return 0;
}

int cli_opt_duration(const char *cmd, const char *arg, uint64_t *ns)
{
	if (cli_parse_duration(arg, ns) || !*ns)
		return cli_usage_error(cmd,
				       "--duration: '%s' is not a positive duration (e.g. 30, 30s, "
				       "500ms, 2m)",
				       arg);
	return 0;
}

int cli_opt_stack_bytes(const char *cmd, const char *arg, uint64_t *bytes)
{
	if (cli_parse_bytes(arg, bytes) || *bytes < 256 || *bytes > 1024 * 1024)
		return cli_usage_error(cmd,
				       "--stack-bytes: '%s' is not between 256 and 1M (default 16k)",
				       arg);
	return 0;
}

int cli_opt_unwinder(const char *cmd, const char *arg, enum ms_unwind_backend *out)
{
	if (ms_unwind_backend_from_name(arg, out))
		return cli_usage_error(cmd,
				       "--unwinder: unknown unwinder '%s' (use elfutils, libunwind "
				       "or fp)",
				       arg);
	return 0;
}

int cli_opt_max_overhead(const char *cmd, const char *arg, double *frac)
{
	char *end;
	double v;

	if (!strcmp(arg, "off")) {
		*frac = 0;
		return 0;
	}
	errno = 0;
	v = strtod(arg, &end);
	if (end != arg && *end == '%')
		end++;
	if (!*arg || errno || end == arg || *end || !(v >= 0 && v <= 100))
		return cli_usage_error(cmd,
				       "--max-overhead: '%s' is not a percentage between 0 and 100 "
				       "(e.g. 1, 0.5%%, or off; default 1%%)",
				       arg);
	*frac = v / 100;
	return 0;
}

void cli_rec_opts_init(struct cli_rec_opts *co)
{
	*co = (struct cli_rec_opts){.stack_bytes = 16 * 1024, .unwinder = MS_UNWIND_DWFL};
}

void cli_rec_opts_free(struct cli_rec_opts *co)
{
	free(co->out_default);
	co->out_default = NULL;
}

int cli_rec_opt(const char *cmd, int c, const char *arg, struct cli_rec_opts *co)
{
	int r;

	switch (c) {
	case 'p':
		return cli_opt_pid(cmd, arg, &co->pid);
	case 'o':
		return cli_opt_output(cmd, arg, &co->out_path);
	case 'f':
		if ((r = cli_opt_format(cmd, arg, &co->fmt)))
			return r;
		co->fmt_given = true;
		return 0;
	case 'd':
		return cli_opt_duration(cmd, arg, &co->duration_ns);
	case CLI_OPT_STACK_BYTES:
		return cli_opt_stack_bytes(cmd, arg, &co->stack_bytes);
	case CLI_OPT_UNWINDER:
		return cli_opt_unwinder(cmd, arg, &co->unwinder);
	case CLI_OPT_LINES:
		co->lines = true;
		return 0;
	case 'q':
		co->quiet = true;
		return 0;
	case 'v':
		co->verbose++;
		return 0;
	case 'h':
		co->help = true;
		return 0;
	default:
		return 1;
	}
}

int cli_rec_opts_need_pid(const char *cmd, const struct cli_rec_opts *co, const char *example)
{
	return co->pid ? 0 : cli_usage_error(cmd, "--pid is required (e.g. %s)", example);
}

int cli_rec_opts_output(const char *cmd, struct cli_rec_opts *co, const char *infix)
{
	if (!co->out_path) {
		co->out_default =
		    ms_xasprintf("memspy-%d%s.%s", (int)co->pid, infix,
				 !co->fmt_given		       ? "svg"
				 : co->fmt == MS_OUT_PPROF      ? "pb.gz"
				 : co->fmt == MS_OUT_SPEEDSCOPE ? "speedscope.json"
								: ms_out_format_name(co->fmt));
		co->out_path = co->out_default;
		if (!co->fmt_given)
			co->fmt = MS_OUT_SVG;
	} else if (!co->fmt_given && ms_out_format_from_name(co->out_path, &co->fmt)) {
		return cli_usage_error(cmd,
				       "cannot tell the format from the name '%s': use "
				       "--format svg|folded|speedscope|pprof",
				       co->out_path);
	}
	return 0;
}

/* ------------------------------ help ------------------------------ */

#define HELP_COL   25 /* where an option's text starts */
#define HELP_WIDTH 80 /* lines end before this column */

void cli_help_opt(FILE *f, const char *opt, const char *text)
{
	int col = fprintf(f, "  %s%s", opt[1] == '-' ? "    " : "", opt);

	if (col + 1 > HELP_COL) {
		fputc('\n', f);
		col = 0;
	}
	fprintf(f, "%*s", HELP_COL - col, "");
	col = HELP_COL;
	while (*text) {
		int w = (int)strcspn(text, " ");

		if (col > HELP_COL && col + 1 + w >= HELP_WIDTH) {
			fprintf(f, "\n%*s", HELP_COL, "");
			col = HELP_COL;
		} else if (col > HELP_COL) {
			fputc(' ', f);
			col++;
		}
		fwrite(text, 1, (size_t)w, f);
		col += w;
		text += w;
		while (*text == ' ')
			text++;
	}
	fputc('\n', f);
}

static const struct {
	const char *opt, *text;
} shared_help[] = {
    [CLI_HELP_PID] = {"-p, --pid PID", "the process, by its pid (required)"},
    [CLI_HELP_FORMAT] = {"-f, --format FMT",
			 "svg, folded, speedscope or pprof (default: from the extension of "
			 "the file's name: .svg .folded .txt .json .pb.gz)"},
    [CLI_HELP_DURATION] = {"-d, --duration D",
			   "stop after D, in seconds or with a unit (\"30\", \"500ms\", \"2m\", "
			   "\"1h\"); default: until Ctrl-C (SIGINT/SIGTERM/SIGHUP) or the target "
			   "exits"},
    [CLI_HELP_SAMPLE_BYTES] = {"-s, --sample-bytes N",
			       "mean bytes between samples, fixed (k/M/G suffixes); 0 means "
			       "every call (as --exact). Default: chosen by the budget, starting "
			       "at 512k, between 4k and 1G"},
    [CLI_HELP_MAX_OVERHEAD] =
	{"--max-overhead PCT",
	 "budget of what sampling slows the target by, as a share of its CPU time (default "
	 "1%; \"0.5%\", \"off\"): the time its threads spend in the probes and stops, plus "
	 "memspy's CPU where it delayed them (their run delay against a 0.25 s baseline "
	 "taken before attaching). memspy narrows the sampling mean (more samples) while the "
	 "cost is under half the budget and widens it when over. With --sample-bytes N: "
	 "never narrower than N. Off when --sample-bytes is given without it; not with "
	 "--exact"},
    [CLI_HELP_EXACT] = {"--exact",
			"record every call: exact counts, one stop (a trap) per call, for "
			"tests and low-rate programs; refused when a thread blocks SIGTRAP"},
    [CLI_HELP_STACK_BYTES] = {"--stack-bytes N",
			      "bytes of stack copied per thread sampled (default 16k, 256 to 1M)"},
    [CLI_HELP_UNWINDER] = {"--unwinder U", "elfutils (default), libunwind, or fp (frame pointers)"},
    [CLI_HELP_LINES] = {"--lines", "show file:line in frame names"},
    [CLI_HELP_PROBE] = {"--probe SYMBOL",
			"also probe SYMBOL as a malloc-like allocator taking the size as "
			"first argument (repeatable)"},
    [CLI_HELP_PROBE_FREE] = {"--probe-free SYMBOL",
			     "with --live (or record's --interval): also probe SYMBOL as a "
			     "free-like function taking the pointer as first argument, the "
			     "partner of --probe (repeatable): without it the blocks of a --probe "
			     "allocator are never seen freed and all count as live"},
    [CLI_HELP_QUIET] = {"-q, --quiet", "no progress line and no summary; errors only"},
    [CLI_HELP_HELP] = {"-h, --help", "this help"},
};

void cli_help_shared(FILE *f, enum cli_help_id id)
{
	cli_help_opt(f, shared_help[id].opt, shared_help[id].text);
}
