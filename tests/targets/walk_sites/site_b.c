// SPDX-License-Identifier: MIT
/* Allocation site B: one quarter of the calls. */
#include "sites.h"

__attribute__((noinline)) void site_b(void)
{
	churn();
}
