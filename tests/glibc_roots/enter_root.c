// SPDX-License-Identifier: MIT
/*
 * Runs a program inside a Debian root the way a container runtime would: a
 * new mount namespace whose root is the directory (pivot_root, old root
 * detached), so the paths in the target's /proc/PID/maps are the root's own
 * (/usr/lib/x86_64-linux-gnu/libc.so.6) and name a different file, or none,
 * on the host. Only /proc/PID/root and /proc/PID/map_files reach the right
 * one. --chroot uses plain chroot(2) instead (maps then show host paths).
 *
 * usage: enter_root [--chroot] ROOT PROG [ARGS...]   (PROG as seen inside ROOT)
 * The environment is reduced to PATH plus GLIBC_TUNABLES when set. The
 * program replaces this process, so the pid the caller holds is the target's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *what, const char *arg)
{
	int e = errno;

	fprintf(stderr, "enter_root: %s(%s): %s\n", what, arg, strerror(e));
	if (e == EPERM)
		fprintf(stderr,
			"enter_root: hint: needs root (CAP_SYS_ADMIN and CAP_SYS_CHROOT)\n");
	return 126;
}

int main(int argc, char **argv)
{
	static char path[] = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	char *env[3] = {path, NULL, NULL};
	const char *tun = getenv("GLIBC_TUNABLES");
	const char *root;
	char *tunenv = NULL;
	int use_chroot = 0, a = 1;

	if (argc > 1 && !strcmp(argv[1], "--chroot")) {
		use_chroot = 1;
		a++;
	}
	if (argc - a < 2) {
		fprintf(stderr, "usage: enter_root [--chroot] ROOT PROG [ARGS...]\n");
		return 64;
	}
	root = argv[a];
	if (tun) {
		if (asprintf(&tunenv, "GLIBC_TUNABLES=%s", tun) < 0)
			return 125;
		env[1] = tunenv;
	}

	if (use_chroot) {
		if (chroot(root))
			return fail("chroot", root);
		if (chdir("/"))
			return fail("chdir", "/");
	} else {
		if (unshare(CLONE_NEWNS))
			return fail("unshare", "CLONE_NEWNS");
		/* Keep our mounts out of the host's namespace (systemd makes / shared). */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
			return fail("mount MS_PRIVATE", "/");
		/* pivot_root wants the new root to be a mount point. */
		if (mount(root, root, NULL, MS_BIND | MS_REC, NULL))
			return fail("mount --bind", root);
		if (chdir(root))
			return fail("chdir", root);
		/* pivot_root(".", ".") stacks the old root on the new one; detach it. */
		if (syscall(SYS_pivot_root, ".", "."))
			return fail("pivot_root", root);
		if (umount2(".", MNT_DETACH))
			return fail("umount2", "old root");
		if (chdir("/"))
			return fail("chdir", "/");
	}
	execve(argv[a + 1], argv + a + 1, env);
	return fail("execve", argv[a + 1]);
}
