// SPDX-License-Identifier: MIT
/*
 * Target for tests/e2e/hostile_replaced.sh: copies LIB to DIR/libmod.so,
 * loads it, prints "ready" and calls its allocating function (named FN) in
 * a loop until stdin closes. The test then puts another file at
 * DIR/libmod.so: the mapped module is no longer the file at its path.
 *   memspy-hostile-replaced DIR LIB FN
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], buf[65536];
	void (*fn)(void);
	void *h;
	int in, out;
	ssize_t n;

	if (argc < 4)
		return 2;
	snprintf(path, sizeof(path), "%s/libmod.so", argv[1]);
	in = open(argv[2], O_RDONLY);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (in < 0 || out < 0)
		return 2;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return 2;
	close(in);
	close(out);
	h = dlopen(path, RTLD_NOW);
	fn = h ? (void (*)(void))dlsym(h, argv[3]) : NULL;
	if (!fn) {
		fprintf(stderr, "replaced: %s\n", dlerror());
		return 2;
	}
	fcntl(0, F_SETFL, O_NONBLOCK);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		char c;

		for (int i = 0; i < 64; i++)
			fn();
		if (read(0, &c, 1) == 0)
			break;
		usleep(200);
	}
	return 0;
}
