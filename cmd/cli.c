// SPDX-License-Identifier: MIT
/* Helpers shared by the subcommands: argument parsing and error reports. */
#include "cmd/cmd.h"

#include <ctype.h>
#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "memspy %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'memspy %s --help'.\n", cmd);
	return MS_EXIT_USAGE;
}

int cli_parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > 0x3fffffff)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

int cli_parse_duration(const char *s, uint64_t *ns)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0 || v > 1e7)
		return -EINVAL;
	if (!*end || !strcmp(end, "s"))
		v *= 1e9;
	else if (!strcmp(end, "ms"))
		v *= 1e6;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		v *= 60e9;
	else if (!strcmp(end, "h"))
		v *= 3600e9;
	else
		return -EINVAL;
	*ns = (uint64_t)v;
	return 0;
}

int cli_parse_bytes(const char *s, uint64_t *bytes)
{
	char *end;
	double v, mul = 1;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	switch (tolower((unsigned char)*end)) {
	case '\0': break;
	case 'k': mul = 1024.0; break;
	case 'm': mul = 1024.0 * 1024; break;
	case 'g': mul = 1024.0 * 1024 * 1024; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && strcasecmp(end + 1, "b") && strcasecmp(end + 1, "ib"))
		return -EINVAL;
	if (v * mul > 1e18)
		return -EINVAL;
	*bytes = (uint64_t)(v * mul);
	return 0;
}

/* One line to stderr in one write (stderr is unbuffered), its text made safe for a terminal. */
static void report_line(const char *label, const char *text)
{
	char *line;

	if (asprintf(&line, "%s%s\n", label, text) < 0)
		return;
	ms_terminal_clean(line);
	fwrite(line, 1, strlen(line), stderr);
	free(line);
}

void cli_report(const struct ms_error *err)
{
	/* Messages carry names the target chose (paths, thread names). */
	report_line("memspy: ", err->msg[0] ? err->msg : ms_strerror(err->code));
	if (err->hint[0])
		report_line("hint: ", err->hint);
}

const char *cli_command_line(void)
{
	static char buf[4096];
	FILE *f;
	size_t n;

	if (buf[0])
		return buf;
	f = fopen("/proc/self/cmdline", "r");
	if (!f)
		return "memspy";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (size_t i = 0; i + 1 < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	/* Show "memspy", not the build path of the binary. */
	{
		char *space = strchr(buf, ' ');
		char *slash = memrchr(buf, '/', space ? (size_t)(space - buf) : strlen(buf));

		if (slash)
			memmove(buf, slash + 1, strlen(slash + 1) + 1);
	}
	return buf;
}

int cli_opt_pid(const char *cmd, const char *arg, pid_t *out)
{
	if (cli_parse_pid(arg, out))
		return cli_usage_error(cmd,
				       "--pid: '%s' is not a process id (a positive number, see "
				       "pgrep/pidof)",
				       arg);
	return 0;
}

int cli_getopt_error(const char *cmd, int c, int argc, char **argv)
{
	if (c == ':')
		return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
	if (c != -1) {
		if (optopt)
			return cli_usage_error(cmd, "unknown option '-%c'", optopt);
		return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
	}
	if (optind < argc)
		return cli_usage_error(cmd,
				       "unexpected argument '%s' (the process is given with --pid)",
				       argv[optind]);
	return 0;
}

void cli_report_early_end(pid_t pid, int wait_error, bool exited, int status)
{
	if (wait_error)
		fprintf(stderr,
			"memspy: record: waiting for pid %d: %s; writing what was collected\n",
			(int)pid, ms_strerror(wait_error));
	if (!exited)
		return;
	if (WIFSIGNALED(status))
		fprintf(stderr,
			"memspy: the target (pid %d) was killed by signal %d (%s) during the "
			"recording; writing what was collected\n",
			(int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		fprintf(stderr,
			"memspy: the target (pid %d) exited with status %d during the recording; "
			"writing what was collected\n",
			(int)pid, WEXITSTATUS(status));
}
