// SPDX-License-Identifier: MIT
/*
 * Unit test: attach diagnoses on fixture /proc trees (no ptrace): each
 * error case gets the right code, a message naming the pid, and the hint.
 */
#include "attach/attach_int.h"
#include "tests/lib/mstest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];


static void put(const char *rel, const char *text)
{
	char path[512], dir[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	for (slash = strchr(dir + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(dir, 0755);
		*slash = '/';
	}
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static void rm_tree(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
}

/* A fresh tree: target 4242 (uid 1000, sleeping), memspy 777 as uid 1000 with no caps. */
static void base_tree(void)
{
	rm_tree();
	if (mkdir(root, 0755)) {
		perror(root);
		exit(2);
	}
	put("4242/status", "Name:\tservice\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\n"
			   "TracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nThreads:\t8\n");
	put("4242/stat", "4242 (ser vice) S 1 4242 4242 0 -1 4194560 0 0\n");
	put("self/status", "Name:\tmemspy\nUid:\t1000\t1000\t1000\t1000\n"
			   "CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n");
	put("sys/kernel/yama/ptrace_scope", "0\n");
}

static int diag(struct ms_error *e, int seize_code)
{
	struct ms_diag_facts f;
	int r;

	memset(e, 0, sizeof(*e));
	ms_diag_gather(root, 4242, 777, &f);
	r = ms_diag_precheck(&f, "attach", e);
	if (r || !seize_code)
		return r;
	return ms_diag_seize_error(&f, "attach", seize_code, e);
}

static bool has(const char *s, const char *sub)
{
	if (!strstr(s, sub)) {
		fprintf(stderr, "  \"%s\" lacks \"%s\"\n", s, sub);
		return false;
	}
	return true;
}

int main(void)
{
	struct ms_diag_facts f;
	struct ms_error e;

	snprintf(root, sizeof(root), "/tmp/memspy-diag-%d", (int)getpid());
	base_tree();

	/* The facts as gathered. */
	ms_diag_gather(root, 4242, 777, &f);
	CHECK(f.exists && f.state == 'S' && f.threads == 8 && f.tgid == 4242);
	CHECK(!strcmp(f.comm, "service") && f.target_uid[1] == 1000 && f.self_uid[0] == 1000);
	CHECK(f.yama_scope == 0 && f.self_caps_known && f.self_cap_eff == 0);
	CHECK(!f.kernel_thread);
	CHECK(diag(&e, 0) == 0);

	/* No such process. */
	ms_diag_gather(root, 5555, 777, &f);
	CHECK(!f.exists);
	CHECK(ms_diag_precheck(&f, "attach", &e) == -ESRCH);
	CHECK(has(e.msg, "pid 5555") && has(e.msg, "no such process") && has(e.hint, "pgrep"));

	/* memspy itself. */
	ms_diag_gather(root, 777, 777, &f);
	CHECK(ms_diag_precheck(&f, "attach", &e) == -MS_E_SELF && has(e.msg, "memspy itself"));

	/* A kernel thread: PF_KTHREAD in the flags of stat (comm with a space and parens). */
	put("4242/stat", "4242 (kworker/0:1 (x)) I 2 0 0 0 -1 69238880 0 0\n");
	CHECK(diag(&e, 0) == -MS_E_KERNEL_THREAD);
	CHECK(has(e.msg, "pid 4242") && has(e.msg, "kernel thread") && has(e.hint, "user-space"));
	base_tree();

	/* A zombie, and a zombie leader whose threads still run (not an error). */
	put("4242/status", "Name:\tservice\nState:\tZ (zombie)\nTgid:\t4242\nTracerPid:\t0\n"
			   "Uid:\t1000\t1000\t1000\t1000\nThreads:\t1\n");
	CHECK(diag(&e, 0) == -MS_E_ZOMBIE);
	CHECK(has(e.msg, "zombie") && has(e.hint, "it has exited; its parent has not reaped it"));
	put("4242/status", "Name:\tservice\nState:\tZ (zombie)\nTgid:\t4242\nTracerPid:\t0\n"
			   "Uid:\t1000\t1000\t1000\t1000\nThreads:\t3\n");
	CHECK(diag(&e, 0) == 0);

	/* A thread id. */
	put("4242/status", "Name:\tservice\nState:\tS (sleeping)\nTgid:\t4200\nTracerPid:\t0\n"
			   "Uid:\t1000\t1000\t1000\t1000\nThreads:\t3\n");
	CHECK(diag(&e, 0) == -EINVAL && has(e.msg, "thread id of process 4200") &&
	      has(e.hint, "--pid 4200"));

	/* Already traced, named by the tracer's comm and pid. */
	put("4242/status", "Name:\tservice\nState:\tt (tracing stop)\nTgid:\t4242\n"
			   "TracerPid:\t1234\nUid:\t1000\t1000\t1000\t1000\nThreads:\t1\n");
	put("1234/status", "Name:\tgdb\nState:\tS (sleeping)\n");
	CHECK(diag(&e, 0) == -MS_E_ALREADY_TRACED);
	CHECK(has(e.msg, "already traced by gdb (pid 1234)") && has(e.hint, "detach gdb (pid 1234) first"));
	base_tree();

	/* EPERM: another user, without CAP_SYS_PTRACE. */
	put("4242/status", "Name:\tservice\nState:\tS (sleeping)\nTgid:\t4242\nTracerPid:\t0\n"
			   "Uid:\t0\t0\t0\t0\nThreads:\t1\n");
	CHECK(diag(&e, -EPERM) == -EPERM);
	CHECK(has(e.msg, "ptrace(PTRACE_SEIZE, 4242): Operation not permitted"));
	CHECK(has(e.hint, "belongs to uid 0") && has(e.hint, "memspy runs as uid 1000") &&
	      has(e.hint, "CAP_SYS_PTRACE"));
	/* ...in a container whose bounding set lacks SYS_PTRACE (bit 19). */
	put("self/status", "Name:\tmemspy\nUid:\t1000\t1000\t1000\t1000\n"
			   "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "--cap-add=SYS_PTRACE"));
	base_tree();

	/* Same user, yama scopes. */
	put("sys/kernel/yama/ptrace_scope", "1\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "ptrace_scope is 1") &&
	      has(e.hint, "only a parent may trace") &&
	      has(e.hint, "sysctl kernel.yama.ptrace_scope=0"));
	put("sys/kernel/yama/ptrace_scope", "2\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "ptrace_scope is 2") &&
	      has(e.hint, "admin-only") && has(e.hint, "CAP_SYS_PTRACE"));
	put("sys/kernel/yama/ptrace_scope", "3\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "ptrace_scope is 3") &&
	      has(e.hint, "root included") && has(e.hint, "next boot"));
	/* Scope 3 stops root too; scope 1 does not. */
	put("self/status", "Name:\tmemspy\nUid:\t0\t0\t0\t0\n"
			   "CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "ptrace_scope is 3"));
	/* Scope 2 without CAP_SYS_PTRACE in the bounding set: the container hint. */
	put("sys/kernel/yama/ptrace_scope", "2\n");
	put("self/status", "Name:\tmemspy\nUid:\t0\t0\t0\t0\n"
			   "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "--cap-add=SYS_PTRACE"));
	base_tree();

	/* Nothing to see: the fallback names what may be left (non-dumpable, LSM). */
	put("self/status", "Name:\tmemspy\nUid:\t0\t0\t0\t0\n"
			   "CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n");
	CHECK(diag(&e, -EPERM) == -EPERM && has(e.hint, "non-dumpable") && has(e.hint, "dmesg"));

	/* Another errno is reported as such. */
	CHECK(diag(&e, -EIO) == -EIO && has(e.msg, "Input/output error"));

	/* Exiting during attach. */
	CHECK(ms_diag_exited_during_attach(4242, "attach", &e) == -MS_E_TARGET_EXITED);
	CHECK(has(e.msg, "pid 4242 exited while memspy was attaching"));

	/* Status field lookup: exact keys only. */
	CHECK(ms_proc_status_field("VmRSSx:\t1\nVmRSS:\t  42 kB\n", "VmRSS") &&
	      atoi(ms_proc_status_field("VmRSSx:\t1\nVmRSS:\t  42 kB\n", "VmRSS")) == 42);
	CHECK(ms_proc_status_field("Name:\tx\n", "Nam") == NULL);

	/* The live summary of ourselves is plausible. */
	{
		struct ms_proc_mem_summary s;
		char comm[32];

		CHECK(ms_proc_mem_summary(getpid(), &s) == 0 && s.vm_rss > 0 &&
		      s.vm_rss >= s.rss_anon && s.vm_size >= s.vm_rss && s.vm_data > 0);
		CHECK(!strcmp(ms_proc_comm(getpid(), comm, sizeof(comm)), "test_attach_dia"));
		CHECK(ms_proc_mem_summary(-5, &s) < 0);
	}

	rm_tree();
	return ms_test_result("test_attach_diag");
}
