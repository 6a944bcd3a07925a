// SPDX-License-Identifier: MIT
/* The C test harness: the failure count behind CHECK, die and skip. */
#include "tests/lib/mstest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ms_test_failures;
int ms_test_checks;

void ms_test_failed(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	ms_test_failures++;
	fprintf(stderr, "FAIL %s:%d: %s", file, line, expr);
	if (fmt[1]) { /* a message after CHECK's leading space */
		fputc(':', stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
}

int ms_test_result(const char *name)
{
	if (ms_test_failures) {
		fprintf(stderr, "%s: %d of %d checks failed\n", name, ms_test_failures,
			ms_test_checks);
		return 1;
	}
	printf("%s: all %d checks passed\n", name, ms_test_checks);
	return 0;
}

static void vsay(const char *tag, const char *fmt, va_list ap, int err)
{
	size_t n = strlen(fmt);

	fprintf(stderr, "%s: ", tag);
	vfprintf(stderr, fmt, ap);
	if (n && fmt[n - 1] == ':')
		fprintf(stderr, " %s", strerror(err));
	fputc('\n', stderr);
}

void ms_test_die(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vsay("FAIL", fmt, ap, err);
	va_end(ap);
	exit(1);
}

void ms_test_skip(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vsay("SKIP", fmt, ap, err);
	va_end(ap);
	exit(MS_TEST_SKIP);
}
