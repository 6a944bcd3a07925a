// SPDX-License-Identifier: MIT
/*
 * memspy dump: stop the target as briefly as possible, walk glibc malloc's
 * state from outside, resume, and report (text, or JSON per doc/dump-json.md).
 */
#include "cmd/cmd.h"
#include "cmd/record_opts.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "heapwalk/heapwalk.h"
#include "record/record.h"
#include "output/heap.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: memspy dump --pid PID [--leaks] [--explain ADDR] [--json] [-o FILE]\n"
		"                   [--svg FILE] [--no-debuginfo] [--no-snapshot]\n"
		"\n"
		"Walks the glibc malloc heap of a running process from outside and reports\n"
		"in-use and free memory per arena, bins, caches, size classes, fragmentation\n"
		"and resident memory. Totals equal the process's own mallinfo2().\n"
		"\n"
		"The process is stopped only while a copy-on-write snapshot of it is made (one\n"
		"injected clone(), whose child never runs and is killed afterwards); the heap is\n"
		"then read from the snapshot while the process runs. Pages the process writes\n"
		"meanwhile are copied once by the kernel, so no snapshot is made when less\n"
		"than a quarter of its anonymous memory is free below its cgroup's memory\n"
		"limit or in the machine; then, and wherever no snapshot can be made, the heap\n"
		"is read with the process stopped (the report says why). Threads caught\n"
		"inside malloc are first let run alone until they return from it, so that no\n"
		"arena is read half updated (the report says how many, and for how long).\n"
		"\n"
		"What libc's debug info says about its structures is cached per libc build-id\n"
		"in $XDG_CACHE_HOME/memspy (else ~/.cache/memspy); MEMSPY_NO_CACHE=1 disables\n"
		"it.\n"
		"\n"
		"Options:\n");
	cli_help_shared(f, CLI_HELP_PID);
	cli_help_opt(f, "-l, --leaks",
		     "also scan for leaks: which allocations no root (module data, stacks, "
		     "registers, TLS, other anonymous memory) reaches any more, and what the heap "
		     "is made of by C++ class (from vtable pointers) or chunk size; runs on the "
		     "snapshot, so the pause does not grow");
	cli_help_opt(f, "--explain ADDR",
		     "with the leak scan: why the allocation holding ADDR is reachable (the "
		     "chain of references from a root: a thread's register or stack slot, a "
		     "module's data symbol, ...), or that it is leaked and which leaked "
		     "allocations point to it");
	cli_help_opt(f, "--svg FILE",
		     "with the leak scan (implied): also draw the heap as an interactive SVG "
		     "icicle: arenas, then C++ classes or chunk sizes and free memory, then the "
		     "leaked part of each (red); hover for exact bytes and counts, click to zoom, "
		     "Ctrl-F to search (?s=^leaked$ in the URL shows the share leaked)");
	cli_help_opt(f, "-j, --json", "JSON instead of text (schema: doc/dump-json.md)");
	cli_help_opt(f, "-o, --output FILE",
		     "write there instead of standard output; a FILE ending in .svg (without "
		     "--json) gets the SVG view (as --svg), and one ending in .json is JSON (as "
		     "--json)");
	cli_help_opt(f, "--no-debuginfo",
		     "ignore libc's debug symbols: use built-in layouts and heuristics (what "
		     "happens when libc6-dbg is missing)");
	cli_help_opt(f, "--subprocesses",
		     "the process and each of its descendants, one after the other, then their "
		     "sum (text or --json; not with --leaks)");
	cli_help_opt(f, "--no-snapshot",
		     "keep the process stopped for the whole walk (no clone() in it, no "
		     "copy-on-write memory)");
	cli_help_opt(f, "-v, --verbose", "more diagnostics on standard error");
	cli_help_shared(f, CLI_HELP_HELP);
	fprintf(f,
		"\n"
		"Examples:\n"
		"  memspy dump --pid 4242\n"
		"  memspy dump --pid 4242 --json -o heap.json\n"
		"  memspy dump --pid 4242 --leaks\n"
		"  memspy dump --pid 4242 --leaks -o heap.svg\n"
		"  memspy dump --pid 4242 --explain 0x55d0c3a41e70\n"
		"\n"
		"What --leaks adds, on a test program that leaks 1,000 Dropped objects, 100\n"
		"rings of 3 Nodes, 200 Holders and 777 raw 300-byte blocks (abridged; the\n"
		"report's lines are wider):\n"
		"  Leaked:        358 KiB in 2,477 allocations (57.0%% of 629 KiB in use)\n"
		"  Unreferenced:  318 KiB in 1,977 of them (the heads of leaked structures)\n"
		"  type                        leaked      bytes  unreferenced\n"
		"  untyped 320 B chunks           777    243 KiB           777\n"
		"  Dropped                      1,000   62.5 KiB         1,000\n"
		"  Holder                         200   12.5 KiB           200\n"
		"  Node                           300   9.38 KiB             0\n"
		"\n"
		"Exit status:\n"
		"  0   complete report\n"
		"  1   report written but partial: part of the heap could not be read, it is\n"
		"      damaged, or a thread was stopped inside malloc (the report says which;\n"
		"      see errors)\n"
		"  2   failed: cannot attach, or the process does not use glibc malloc (an\n"
		"      allocator-independent memory summary is still written)\n"
		"  64  usage error\n");
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && !strcmp(s + n - k, suffix);
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"leaks", no_argument, NULL, 'l'},
		{"explain", required_argument, NULL, 'E'},
		{"output", required_argument, NULL, 'o'},
		{"svg", required_argument, NULL, 'G'},
		{"no-debuginfo", no_argument, NULL, 'N'},
		{"no-snapshot", no_argument, NULL, 'S'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct ms_rec_dump_opts dopts = {.use_snapshot = true};
	struct ms_rec_dump *d = NULL;
	struct ms_afile af = {0};
	struct ms_error err = {0};
	struct ms_proc *proc = NULL;
	const char *out_path = NULL, *svg_path = NULL;
	struct ms_afile svg_af = {0};
	bool svg_main = false; /* -o FILE.svg: the SVG is the report */
	pid_t pid = 0;
	bool json = false;
	uint64_t t_start = ms_now_ns();
	FILE *out = stdout;
	int c, r, ret = MS_EXIT_FAILED;

	if (cli_has_subprocesses(argc, argv))
		return cmd_dump_subprocesses(argc, argv);

	optind = 1;
	opterr = 0; /* our own one-line messages, through cli_getopt_error */
	while ((c = getopt_long(argc, argv, ":p:jlo:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((r = cli_opt_pid("dump", optarg, &pid)))
				return r;
			break;
		case 'j':
			json = true;
			break;
		case 'l':
			dopts.leaks = true;
			break;
		case 'E': {
			char *end;

			errno = 0;
			dopts.explain = strtoull(optarg, &end, 0);
			if (errno || *end || !dopts.explain)
				return cli_usage_error("dump", "--explain takes an address such as "
							       "0x55d0c3a41e70");
			dopts.leaks = true;
			break;
		}
		case 'o':
			out_path = optarg;
			break;
		case 'G':
			if (!*optarg)
				return cli_usage_error("dump", "--svg: empty file name");
			svg_path = optarg;
			dopts.leaks = true;
			break;
		case 'N':
			dopts.locate.no_debuginfo = true;
			break;
		case 'S':
			dopts.use_snapshot = false;
			break;
		case 'v':
			ms_log_verbosity++;
			break;
		case 'h':
			usage(stdout);
			return MS_EXIT_OK;
		default: /* ':' or '?' */
			return cli_getopt_error("dump", c, argc, argv);
		}
	}
	if ((r = cli_getopt_error("dump", -1, argc, argv)))
		return r;
	if (!pid)
		return cli_usage_error("dump", "--pid is required");

	/*
	 * -o heap.json is JSON, as record picks formats by extension: text in a
	 * .json file is what a script then fails to parse. record's own formats
	 * are refused rather than written as text under their names.
	 */
	if (out_path && (ends_with(out_path, ".pb.gz") || ends_with(out_path, ".pb") ||
			 ends_with(out_path, ".folded")))
		return cli_usage_error("dump", "-o %s: dump writes text (.txt), JSON (.json) or an "
					       "SVG of the heap (.svg); pprof and folded stacks are "
					       "'memspy record' outputs",
				       out_path);
	if (out_path && ends_with(out_path, ".json"))
		json = true;
	/* -o heap.svg: the picture is what was asked for (as record picks formats by extension). */
	if (out_path && !json && strlen(out_path) > 4 &&
	    !strcmp(out_path + strlen(out_path) - 4, ".svg")) {
		if (svg_path)
			return cli_usage_error("dump", "-o %s is an SVG already: drop --svg %s, or "
						       "give -o a .txt or .json file",
					       out_path, svg_path);
		svg_main = true;
		dopts.leaks = true;
	}
	/* An unwritable output is found before anything is attached. */
	if (svg_path && ms_afile_open(&svg_af, svg_path, &err) != 0) {
		cli_report(&err);
		return MS_EXIT_FAILED;
	}
	if (out_path) {
		if (ms_afile_open(&af, out_path, &err) != 0) {
			cli_report(&err);
			if (svg_path)
				ms_afile_abort(&svg_af);
			return MS_EXIT_FAILED;
		}
		out = af.fp;
	}
	ms_signals_init();
	r = cli_attach("dump", pid, NULL, &proc);
	if (r) {
		ret = r;
		goto out;
	}
	/* The verdict on the allocator, the pause, the walk, the detach (record/dump.c). */
	d = ms_xcalloc(1, sizeof(*d));
	r = ms_rec_dump_take(proc, &dopts, d);
	ret = r == MS_REC_DUMP_COMPLETE ? MS_EXIT_OK
	      : r == MS_REC_DUMP_PARTIAL ? MS_EXIT_PARTIAL
					 : MS_EXIT_FAILED;
	if (d->no_walk)
		cli_report(&d->err);
	d->meta.exit_code = ret;
	d->meta.total_ms = (double)(ms_now_ns() - t_start) / 1e6;
	r = svg_main ? ms_heap_write_svg(out, &d->meta) :
	    json     ? ms_heap_write_json(out, &d->meta) :
		       ms_heap_write_text(out, &d->meta);
	if (r)
		ms_error("dump: writing the report failed: %s", ms_strerror(r));
	if (d->have_rep && ret == MS_EXIT_PARTIAL) {
		/* The cause the errors point to, not a guess (see ms_heap_verdict). */
		struct ms_heap_verdict v;
		size_t n = d->rep.nerrors + d->rep.errors_dropped;

		ms_heap_verdict(&d->rep, &v);
		fprintf(stderr, "memspy: dump: process %d: %zu heap anomal%s: %s (exit 1: partial); "
				"see \"errors\" in the report\n",
			(int)pid, n, n == 1 ? "y" : "ies", v.text);
	}
	if (svg_path) {
		r = ms_heap_write_svg(svg_af.fp, &d->meta);
		if (r) {
			ms_error("dump: writing %s failed: %s", svg_path, ms_strerror(r));
			ms_afile_abort(&svg_af);
			ret = MS_EXIT_FAILED;
		} else if (ms_afile_commit(&svg_af, &err) != 0) {
			cli_report(&err);
			ret = MS_EXIT_FAILED;
		}
		svg_path = NULL;
	}
	if (out_path) {
		if (ms_afile_commit(&af, &err) != 0) {
			cli_report(&err);
			ret = MS_EXIT_FAILED;
		}
	} else {
		fflush(stdout);
	}
	out_path = NULL;
out:
	if (d) {
		ms_rec_dump_free(d);
		free(d);
	}
	if (out_path)
		ms_afile_abort(&af);
	if (svg_path)
		ms_afile_abort(&svg_af);
	ms_proc_free(proc);
	return ret;
}
