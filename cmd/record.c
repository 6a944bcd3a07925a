// SPDX-License-Identifier: MIT
/* memspy record: not written yet (see the open issue). */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_record(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memspy record: not implemented yet\n");
	return MS_EXIT_FAILED;
}
