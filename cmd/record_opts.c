// SPDX-License-Identifier: MIT
/* Validation and messages of the options shared by both recording modes. */
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
