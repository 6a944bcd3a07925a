// SPDX-License-Identifier: MIT
/* Logging shim: the only place in the libraries that writes to stderr. */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>

int ms_log_verbosity = MS_LOG_WARN;

void ms_log(enum ms_log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = {
		[MS_LOG_ERROR] = "", [MS_LOG_WARN] = "warning: ",
		[MS_LOG_INFO] = "",  [MS_LOG_DEBUG] = "debug: ",
	};
	va_list ap;
	char *text;

	if ((int)level > ms_log_verbosity)
		return;
	fprintf(stderr, "memspy: %s", prefix[level]);
	va_start(ap, fmt);
	/* Messages carry names the target chose (paths, thread names). */
	if (vasprintf(&text, fmt, ap) >= 0) {
		ms_fputs_terminal(text, stderr);
		free(text);
	}
	va_end(ap);
	fputc('\n', stderr);
}
