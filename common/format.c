// SPDX-License-Identifier: MIT
/* Numbers for people: the one place that decides how memspy writes them. */
#include "common/common.h"

#include <inttypes.h>
#include <stdio.h>

const char *ms_fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return buf;
	}
	/* 1023.5 KiB would print as "1024 KiB": switch units before rounding does. */
	while (v >= 1023.5 && u + 1 < MS_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.*f %s", v < 9.995 ? 2 : v < 99.95 ? 1 : 0, v, units[u]);
	return buf;
}

const char *ms_fmt_count(char *buf, size_t size, uint64_t n)
{
	char digits[32];
	int len = snprintf(digits, sizeof(digits), "%" PRIu64, n);
	size_t j = 0;

	for (int i = 0; i < len && j + 1 < size; i++) {
		if (i && (len - i) % 3 == 0 && j + 2 < size)
			buf[j++] = ',';
		buf[j++] = digits[i];
	}
	if (size)
		buf[j < size ? j : size - 1] = '\0';
	return buf;
}

const char *ms_fmt_duration(char *buf, size_t size, uint64_t ns)
{
	if (ns >= 1000000000ull)
		snprintf(buf, size, "%.2f s", (double)ns / 1e9);
	else if (ns >= 1000000ull)
		snprintf(buf, size, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, size, "%.0f us", (double)ns / 1e3);
	return buf;
}
