// SPDX-License-Identifier: MIT
/* Error codes (errno plus memspy's own) and the error report. */
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const ms_error_text[] = {
#define MS_X_TEXT(name, text) [name - MS_E_BASE - 1] = text,
	MS_ERRORS(MS_X_TEXT)
#undef MS_X_TEXT
};

const char *ms_strerror(int code)
{
	int c = code < 0 ? -code : code;

	if (c == 0)
		return "success";
	if (c > MS_E_BASE && c < MS_E_LAST)
		return ms_error_text[c - MS_E_BASE - 1];
	return strerror(c);
}

int ms_error_set(struct ms_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

void ms_error_hint(struct ms_error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(e->hint, sizeof(e->hint), fmt, ap);
	va_end(ap);
}
