// SPDX-License-Identifier: MIT
/* The target's bytes as a JSON string, for every JSON writer (json_text.h). */
#include "output/json_text.h"
#include "common/common.h"

#include <jansson.h>
#include <stdlib.h>

json_t *ms_out_json_text(const char *s)
{
	json_t *j;
	char *fixed;

	if (!s)
		return json_null();
	if (ms_utf8_valid(s))
		return json_string(s);
	fixed = ms_utf8_fix(s);
	j = json_string(fixed);
	free(fixed);
	return j;
}
