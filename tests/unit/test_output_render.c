// SPDX-License-Identifier: MIT
/*
 * Test helper: folded stacks in, any profile format out, through the same
 * library calls `memspy record` makes. Drives the golden and browser tests.
 *   test_output_render [-f svg|folded|speedscope|pprof] [-c] [-l] [-L] [-n]
 *                      [-t TITLE] [-s SUBTITLE] [-w WIDTH] IN.folded OUT
 */
#include "output/output.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct ms_out_opts o = {0};
	enum ms_out_format fmt = MS_OUT_SVG;
	struct ms_profile *p;
	struct ms_error err = {0};
	FILE *in, *out;
	int c, ret;

	while ((c = getopt(argc, argv, "f:clLnt:s:w:")) != -1) {
		switch (c) {
		case 'f':
			if (ms_out_format_from_name(optarg, &fmt)) {
				fprintf(stderr, "unknown format %s\n", optarg);
				return 2;
			}
			break;
		case 'c':
			o.value = MS_VALUE_COUNT;
			break;
		case 'l':
			o.lines = true;
			break;
		case 'L':
			o.live = true;
			break;
		case 'n':
			o.no_script = true;
			break;
		case 't':
			o.title = optarg;
			break;
		case 's':
			o.subtitle = optarg;
			break;
		case 'w':
			o.width = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: %s [options] IN.folded OUT\n", argv[0]);
		return 2;
	}
	in = strcmp(argv[optind], "-") ? fopen(argv[optind], "r") : stdin;
	if (!in) {
		perror(argv[optind]);
		return 2;
	}
	p = ms_profile_new();
	ret = ms_folded_parse(in, p, &err);
	if (in != stdin)
		fclose(in);
	if (ret) {
		fprintf(stderr, "%s: %s\n", argv[optind], err.msg);
		ms_profile_free(p);
		return 1;
	}
	out = strcmp(argv[optind + 1], "-") ? fopen(argv[optind + 1], "w") : stdout;
	if (!out) {
		perror(argv[optind + 1]);
		ms_profile_free(p);
		return 2;
	}
	ret = ms_profile_write(p, fmt, &o, out, &err);
	if (ret)
		fprintf(stderr, "write: %s\n", err.msg);
	if (out != stdout && fclose(out))
		ret = -1;
	ms_profile_free(p);
	return ret ? 1 : 0;
}
