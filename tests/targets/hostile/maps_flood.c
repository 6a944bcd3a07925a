// SPDX-License-Identifier: MIT
/*
 * Target for tests/e2e/hostile_maps.sh: a /proc/PID/maps larger than memspy
 * reads (64 MiB). One page of a file whose path is ~4000 bytes long (nested
 * directories under DIR), mapped N times: each mapping is a line of maps
 * with that path. Prints "ready", waits until stdin closes.
 *   memspy-hostile-maps DIR N
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], comp[250];
	size_t len;
	long n;
	int fd;

	if (argc < 3)
		return 2;
	n = atol(argv[2]);
	memset(comp, 'd', sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	len = (size_t)snprintf(path, sizeof(path), "%s", argv[1]);
	while (len + sizeof(comp) + 16 < 4000) {
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/%s", comp);
		if (mkdir(path, 0700) != 0)
			return 2;
	}
	snprintf(path + len, sizeof(path) - len, "/f");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) != 0)
		return 2;
	for (long i = 0; i < n; i++) {
		/* Offset 0 every time: neighbours never merge into one mapping. */
		if (mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
	}
	close(fd);
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}
