// SPDX-License-Identifier: MIT
/* Attaching on behalf of a subcommand, with the error report on failure. */
#include "cmd/cmd.h"
#include "attach/attach.h"

int cli_attach(const char *cmd, pid_t pid, const struct ms_attach_opts *opts,
	       struct ms_proc **out)
{
	struct ms_error err = {0};

	(void)cmd;
	if (ms_proc_seize(pid, opts, out, &err) == 0)
		return 0;
	cli_report(&err);
	return MS_EXIT_FAILED;
}
