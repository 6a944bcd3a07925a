// SPDX-License-Identifier: MIT
/*
 * ms_proc_title (attach/descendants.c) names a process by its command line,
 * which the process chose, and cmd/ prints it on terminals (--subprocesses'
 * tables, the child-process hint): a C1 CSI (U+009B, bytes C2 9B), an
 * escape and BEL in a child's argv must not come out.
 */
#include "attach/descendants.h"
#include "tests/lib/mstest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static const char name[] = "x\xc2\x9b" "31m\x1b]0;t\x07y";
	size_t room = strlen(argv[0]);
	int p[2];
	pid_t pid;
	char c, *t;

	(void)argc;
	if (room < sizeof(name))
		ms_test_skip("argv[0] too short to rewrite");
	if (pipe(p) != 0)
		ms_test_die("pipe:");
	pid = fork();
	if (pid < 0)
		ms_test_die("fork:");
	if (pid == 0) {
		/* Its command line as servers rewrite theirs: in place, over argv[0]. */
		memset(argv[0], 0, room);
		memcpy(argv[0], name, sizeof(name) - 1);
		close(p[0]);
		if (write(p[1], "r", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		ms_test_die("child not started");
	t = ms_proc_title(pid);
	CHECK(!strstr(t, "\xc2\x9b"), "C1 CSI kept");
	CHECK(!strchr(t, '\x1b') && !strchr(t, '\x07'), "ESC or BEL kept");
	CHECK(t[0] == 'x' && strchr(t, 'y'), "not the rewritten name");
	free(t);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return ms_test_result("test_title_terminal");
}
