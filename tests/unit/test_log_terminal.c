// SPDX-License-Identifier: MIT
/*
 * memspy's messages carry names the target chose (file paths from maps,
 * thread names from status): control characters in them must not reach the
 * user's terminal. Logs a message holding an OSC sequence, BEL, ESC, DEL
 * and a UTF-8-encoded C1 CSI, captures stderr, and checks that none of them
 * came out while the rest of the text, UTF-8 included, did. Then checks
 * that a message line reaches stderr in one write (stderr is unbuffered:
 * written a piece at a time, lines interleave with other writers on the
 * same terminal): through a SOCK_SEQPACKET socket, each write() is one
 * packet, so the first packet must be the whole line.
 */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	const char *hostile = "/tmp/lib\x1b]0;owned\x07x\x7f\xc2\x9b" "31m\xc3\xa9t\xc3\xa9.so";
	char out[512] = {0};
	FILE *cap = tmpfile();
	int saved = dup(2);
	size_t n;
	int fail = 0;

	if (!cap || saved < 0)
		return 2;
	fflush(stderr);
	dup2(fileno(cap), 2);
	ms_log(MS_LOG_WARN, "cannot open %s", hostile);
	fflush(stderr);
	dup2(saved, 2);
	rewind(cap);
	n = fread(out, 1, sizeof(out) - 1, cap);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if ((c < 0x20 && c != '\n') || c == 0x7f ||
		    (c == 0xc2 && (unsigned char)out[i + 1] >= 0x80 &&
		     (unsigned char)out[i + 1] <= 0x9f)) {
			fprintf(stderr, "FAIL: byte 0x%02x at %zu of the message reached stderr\n", c,
				i);
			fail = 1;
		}
	}
	if (!strstr(out, "cannot open /tmp/lib") || !strstr(out, "\xc3\xa9t\xc3\xa9.so")) {
		fprintf(stderr, "FAIL: the printable text was not kept: '%s'\n", out);
		fail = 1;
	}
	{
		int sv[2];
		char pkt[512];
		ssize_t got;

		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
			return 2;
		fflush(stderr);
		dup2(sv[0], 2);
		ms_log(MS_LOG_WARN, "cannot open %s: %s", "/tmp/x.so", "no such file");
		dup2(saved, 2);
		got = recv(sv[1], pkt, sizeof(pkt) - 1, MSG_DONTWAIT);
		pkt[got > 0 ? got : 0] = '\0';
		if (strcmp(pkt, "memspy: warning: cannot open /tmp/x.so: no such file\n")) {
			fprintf(stderr, "FAIL: the first write to stderr was '%s', not the whole line\n",
				pkt);
			fail = 1;
		}
		close(sv[0]);
		close(sv[1]);
	}
	if (!fail)
		printf("ok: %s", out);
	return fail;
}
