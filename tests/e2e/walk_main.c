// SPDX-License-Identifier: MIT
/*
 * memspy-walk: a test-only entry point to `memspy record --mode walk` until
 * cmd/main.c routes it: argv[1..] are record's options.
 */
#include "cmd/record_walk.h"

int main(int argc, char **argv)
{
	return cmd_record_walk(argc, argv);
}
