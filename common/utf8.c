// SPDX-License-Identifier: MIT
/* UTF-8 checks for names that came from the target (any bytes) on their way into output files. */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ms_utf8_len(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0; /* below is an overlong form */
		else if (s[0] == 0xed)
			hi = 0x9f; /* above are the surrogates U+D800-U+DFFF */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90; /* overlong */
		else if (s[0] == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool ms_utf8_valid(const char *s)
{
	while (*s) {
		size_t n = ms_utf8_len(s);

		if (!n)
			return false;
		s += n;
	}
	return true;
}

char *ms_utf8_fix(const char *s)
{
	char *r = ms_xstrdup(s);

	for (char *c = r; *c;) {
		size_t n = ms_utf8_len(c);

		if (n) {
			c += n;
		} else {
			*c++ = '?';
		}
	}
	return r;
}

void ms_terminal_clean(char *str)
{
	unsigned char *s = (unsigned char *)str, *d = s;

	for (; *s; s++) {
		if ((*s < 0x20 && *s != '\n' && *s != '\t') || *s == 0x7f) {
			*d++ = '?';
		} else if (*s == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
			*d++ = '?'; /* a C1 control as UTF-8 */
			s++;
		} else {
			*d++ = *s;
		}
	}
	*d = 0;
}

void ms_fputs_terminal(const char *str, FILE *f)
{
	char *copy = strdup(str);

	if (!copy)
		return;
	ms_terminal_clean(copy);
	/* one write: stderr is unbuffered, and a byte at a time interleaves with other writers */
	fwrite(copy, 1, strlen(copy), f);
	free(copy);
}
