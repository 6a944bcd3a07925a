// SPDX-License-Identifier: MIT
/*
 * Target for tests/e2e/fifo_module.sh: a process that maps an ELF file (a
 * copy of itself) executable, deletes it, and puts a FIFO where
 * /proc/PID/root + the path maps shows ("DIR/mod.so (deleted)") and where
 * the file was ("DIR/mod.so"). A memspy that opens module files through
 * /proc/PID/root (no CAP_SYS_ADMIN for map_files) must not block on them.
 * Allocates in a loop so there is something to record; prints "ready",
 * runs until stdin closes.
 *   fifo_module DIR
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv)
{
	char path[4096], deleted[4200], buf[65536];
	int in, out, fd;
	ssize_t n;
	struct stat st;

	if (argc < 2)
		return 2;
	snprintf(path, sizeof(path), "%s/mod.so", argv[1]);
	snprintf(deleted, sizeof(deleted), "%s (deleted)", path);
	in = open("/proc/self/exe", O_RDONLY);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	if (in < 0 || out < 0)
		return 2;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return 2;
	close(in);
	close(out);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0 ||
	    mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED)
		return 2;
	close(fd);
	if (unlink(path) != 0 || mkfifo(path, 0600) != 0 || mkfifo(deleted, 0600) != 0)
		return 2;
	fcntl(0, F_SETFL, O_NONBLOCK);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		char c;

		sink = malloc(64 + (size_t)(rand() % 4096));
		free(sink);
		n = read(0, &c, 1);
		if (n == 0)
			break;
		usleep(200);
	}
	return 0;
}
