// SPDX-License-Identifier: MIT
/* memspy dump: not written yet (see the open issue). */
#include "cmd/cmd.h"

#include <stdio.h>

int cmd_dump(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memspy dump: not implemented yet\n");
	return MS_EXIT_FAILED;
}
