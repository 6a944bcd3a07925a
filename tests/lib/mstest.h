/* SPDX-License-Identifier: MIT */
/*
 * The harness of the C test drivers and unit tests (doc/TESTING.md): one
 * CHECK that counts and reports a failed condition and goes on, the exit
 * status that follows from the count, and die/skip for what cannot go on.
 */
#ifndef MS_TESTS_MSTEST_H
#define MS_TESTS_MSTEST_H

#define MS_TEST_SKIP 77 /* CTest's SKIP_RETURN_CODE: a capability this machine lacks */

/* Checks failed so far (a forked child may reset its copy to 0). */
extern int ms_test_failures;
/* Checks made so far. */
extern int ms_test_checks;

/*
 * CHECK(cond) or CHECK(cond, "format", args...): when cond is false, prints
 * "FAIL file:line: cond[: message]" on stderr and counts a failure; the test
 * goes on. The message, when given, must be a string literal.
 */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		ms_test_checks++;                                                                  \
		if (!(cond))                                                                       \
			ms_test_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                \
	} while (0)

/* Reports a failed check; fmt starts with the space CHECK adds. Use CHECK. */
void ms_test_failed(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Prints "NAME: N of M checks failed" (stderr) or "NAME: all M checks
 * passed" (stdout); returns the exit status: 1 if any check failed, else 0.
 */
int ms_test_result(const char *name);

/* Prints "FAIL: message" (and strerror(errno) if the message ends with ':') and exits 1. */
__attribute__((noreturn, format(printf, 1, 2))) void ms_test_die(const char *fmt, ...);

/* Prints "SKIP: message" and exits 77. */
__attribute__((noreturn, format(printf, 1, 2))) void ms_test_skip(const char *fmt, ...);

#endif
