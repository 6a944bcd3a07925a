/* SPDX-License-Identifier: MIT */
/* The two allocation sites of memspy-walk-sites, each in its own file. */
#ifndef WALK_SITES_H
#define WALK_SITES_H
void site_a(void);
void site_b(void);
void churn(void);
#endif
