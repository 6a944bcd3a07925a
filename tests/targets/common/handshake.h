/* SPDX-License-Identifier: MIT */
/*
 * The handshake of the recording targets with their driver
 * (tests/e2e/mstest.py, record()): "ready PID" on stdout, then a line from
 * stdin ("go") before the counted work; after "done", one more line before
 * the self-check, which ends with the target checking it is no longer traced.
 * Readiness is a pipe, never a sleep. Header only: targets are built apart
 * from memspy's libraries.
 */
#ifndef MS_TARGETS_HANDSHAKE_H
#define MS_TARGETS_HANDSHAKE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * Writes s whole to stdout with write(2), unbuffered and safe where stdio is
 * not (between fork and exec, in a signal handler); exits 3 if stdout is gone.
 */
static inline void hs_say(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(1, s, n);

		if (w <= 0)
			_exit(3);
		s += w;
		n -= (size_t)w;
	}
}

/* Announces the target: "ready PID". */
static inline void hs_ready(void)
{
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
}

/*
 * Announces the target with write(2) alone: for the targets that count
 * their own allocations, where stdio's buffer would be one more.
 */
static inline void hs_ready_raw(void)
{
	char line[32];

	snprintf(line, sizeof(line), "ready %d\n", (int)getpid());
	hs_say(line);
}

/*
 * Reads one line from stdin with read(2), no stdio (no buffer allocated),
 * and exits unless it is word: 4 at EOF, 5 with a line on stderr when
 * another word came.
 */
static inline void hs_expect(const char *word)
{
	char buf[64];
	size_t n = 0;

	for (;;) {
		char c;

		if (read(0, &c, 1) != 1)
			_exit(4);
		if (c == '\n')
			break;
		if (n + 1 < sizeof(buf))
			buf[n++] = c;
	}
	buf[n] = 0;
	if (strcmp(buf, word)) {
		dprintf(2, "target: expected '%s', got '%s'\n", word, buf);
		_exit(5);
	}
}

/* Reads one line from stdin without its newline: 0, or -1 at EOF. */
static inline int hs_read_line(char *buf, size_t size)
{
	if (!fgets(buf, (int)size, stdin))
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Waits for the driver's "go": 0 when it came, -1 on anything else or EOF. */
static inline int hs_wait_go(void)
{
	char line[64];

	return hs_read_line(line, sizeof(line)) || strcmp(line, "go") ? -1 : 0;
}

/* This process's TracerPid (nonzero after memspy exited: it left us traced), -1 if unknown. */
static inline int hs_tracer_pid(void)
{
	char line[256];
	int tp = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &tp) == 1)
			break;
	fclose(f);
	return tp;
}

#endif
