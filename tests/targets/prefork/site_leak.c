// SPDX-License-Identifier: MIT
#include "sites.h"

#include <stdlib.h>

struct leaked {
	struct leaked *next;
};

static struct leaked *leaked;

NOINLINE int pf_site_leak(unsigned seed)
{
	struct leaked *p = malloc(PF_SIZE_LEAK);

	if (!p || !pf_fill_check((unsigned char *)p + sizeof(*p), PF_SIZE_LEAK - sizeof(*p), seed))
		return 0;
	p->next = leaked; /* kept forever */
	leaked = p;
	return 1;
}
