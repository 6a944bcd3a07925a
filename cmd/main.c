// SPDX-License-Identifier: MIT
/* memspy: entry point, subcommand table, global options. */
#include "cmd/cmd.h"
#include "attach/debuginfo.h"

#include <stdio.h>
#include <string.h>

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{.name = "record", .run = cmd_record,
	 .summary = "where a running process allocates, by call stack, as a flame graph"},
	{.name = "top", .run = cmd_top,
	 .summary = "a live table of the functions that allocate, refreshed every second"},
	{.name = "dump", .run = cmd_dump,
	 .summary = "walk the glibc malloc heap of a running process and report it"},
};

static void usage(FILE *f)
{
	fprintf(f, "memspy %s: memory profiler for running Linux processes\n\n", MEMSPY_VERSION);
	fprintf(f, "Usage: memspy <command> --pid PID [options]\n\nCommands:\n");
	for (size_t i = 0; i < MS_ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\nExamples:\n"
		   "  memspy record --pid 4242 -o alloc.svg --duration 30s\n"
		   "  memspy record --pid 4242 --live -o leaks.svg\n"
		   "  memspy top --pid 4242\n"
		   "  memspy dump --pid 4242\n"
		   "  memspy dump --pid 4242 --json -o heap.json\n"
		   "\nRun 'memspy <command> --help' for the options of a command.\n"
		   "\nExit status:\n"
		   "  0   complete\n"
		   "  1   partial: output written but incomplete (the target exited, the heap\n"
		   "      is corrupt or was caught mid-update, --live could not follow some\n"
		   "      sampled blocks to their free); the reason is printed\n"
		   "  2   failed: nothing useful could be produced\n"
		   "  64  usage error\n"
		   "\nThe target needs ptrace permission: the same user with\n"
		   "kernel.yama.ptrace_scope 0, or root/CAP_SYS_PTRACE (ptrace_scope 1 or 2).\n"
		   "memspy restores every byte it patches and reads it back before it detaches\n"
		   "(if memspy is SIGKILLed, its watchdog process puts the code back, or the next\n"
		   "memspy record does). The pages it maps into the target stay: the disarmed\n"
		   "probe stubs and dump's 4 KiB clone page, which a thread could still be\n"
		   "executing.\n");
}

int main(int argc, char **argv)
{
	const char *cmd;

	/* before any thread or dwfl: DEBUGINFOD_URLS only for memspy's own, bounded lookups */
	ms_debuginfo_init();
	if (argc < 2) {
		usage(stderr);
		return MS_EXIT_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return MS_EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("memspy %s\n", MEMSPY_VERSION);
		return MS_EXIT_OK;
	}
	for (size_t i = 0; i < MS_ARRAY_SIZE(subcommands); i++)
		if (!strcmp(cmd, subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "memspy: unknown command '%s'\nTry 'memspy --help'.\n", cmd);
	return MS_EXIT_USAGE;
}
