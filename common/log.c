// SPDX-License-Identifier: MIT
/* Logging shim: the only place in the libraries that writes to stderr. */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	va_start(ap, fmt);
	/* Messages carry names the target chose (paths, thread names). */
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (text) {
		char *line;

		ms_terminal_clean(text);
		/* the whole line in one write: stderr is unbuffered */
		if (asprintf(&line, "memspy: %s%s\n", prefix[level], text) >= 0) {
			fwrite(line, 1, strlen(line), stderr);
			free(line);
		}
		free(text);
	}
}
