// SPDX-License-Identifier: MIT
/* Allocation site A: three quarters of the calls. */
#include "sites.h"

__attribute__((noinline)) void site_a(void)
{
	churn();
}
