// SPDX-License-Identifier: MIT
/*
 * The cause of an incomplete walk, from the errors themselves. Before this
 * the summary put every problem down to a lock race whenever a tcache count
 * was one off, and a forked daemon's heap, which memspy could not read
 * because [heap] was split into adjacent mappings, was reported as "an
 * arena was locked mid-update" with no lock ever held.
 */
#include "heapwalk/heapwalk.h"

#include <stdio.h>
#include <string.h>

/* Errors that say memory could not be read, not that what was read is wrong. */
static bool unreadable_kind(const char *kind)
{
	static const char *const kinds[] = {"unmapped_segment", "read_failed", "bad_mp"};

	for (size_t i = 0; i < MS_ARRAY_SIZE(kinds); i++)
		if (!strcmp(kind, kinds[i]))
			return true;
	return false;
}

const char *ms_heap_cause_name(enum ms_heap_cause c)
{
	switch (c) {
	case MS_HC_UNREADABLE:
		return "unreadable";
	case MS_HC_DAMAGED:
		return "damaged";
	case MS_HC_MIDUPDATE:
		return "mid_update";
	default:
		return NULL;
	}
}

void ms_heap_verdict(const struct ms_heap_report *rep, struct ms_heap_verdict *v)
{
	const struct ms_heap_error *first[4] = {0};
	size_t total = rep->nerrors + rep->errors_dropped, others;
	char what[200] = "";

	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < rep->nerrors; i++) {
		const struct ms_heap_error *e = &rep->errors[i];
		enum ms_heap_cause c;

		if (unreadable_kind(e->kind))
			c = MS_HC_UNREADABLE;
		else if (e->arena >= 0 && (size_t)e->arena < rep->narenas &&
			 rep->arenas[e->arena].mutex)
			c = MS_HC_MIDUPDATE; /* its arena was locked: lists may be half-updated */
		else
			c = MS_HC_DAMAGED;
		if (!first[c])
			first[c] = e;
		if (c == MS_HC_UNREADABLE)
			v->unreadable++;
		else if (c == MS_HC_MIDUPDATE)
			v->midupdate++;
		else
			v->damaged++;
	}
	if (v->unreadable)
		v->cause = MS_HC_UNREADABLE;
	else if (v->damaged)
		v->cause = MS_HC_DAMAGED;
	else if (v->midupdate || rep->locked_arenas || rep->tcache_midupdate)
		v->cause = MS_HC_MIDUPDATE;
	else if (rep->partial || total)
		v->cause = MS_HC_DAMAGED; /* partial without an error of its own: not expected */
	else
		return;
	v->first = first[v->cause];
	others = total - (v->first ? 1 : 0);
	switch (v->cause) {
	case MS_HC_UNREADABLE:
		snprintf(v->text, sizeof(v->text),
			 "part of the heap could not be read: %s%s", v->first->msg,
			 others ? "; the other problems may follow from it" : "");
		break;
	case MS_HC_DAMAGED:
		snprintf(v->text, sizeof(v->text),
			 "the heap is damaged (its structures contradict each other where no "
			 "arena lock was held): %s",
			 v->first ? v->first->msg : "a segment could not be walked to its end");
		break;
	case MS_HC_MIDUPDATE:
		if (rep->locked_arenas)
			snprintf(what, sizeof(what), "%llu arena lock%s held",
				 (unsigned long long)rep->locked_arenas,
				 rep->locked_arenas == 1 ? " was" : "s were");
		if (rep->tcache_midupdate)
			snprintf(what + strlen(what), sizeof(what) - strlen(what),
				 "%s%llu tcache count%s one off %s list", what[0] ? ", " : "",
				 (unsigned long long)rep->tcache_midupdate,
				 rep->tcache_midupdate == 1 ? " was" : "s were",
				 rep->tcache_midupdate == 1 ? "its" : "their");
		snprintf(v->text, sizeof(v->text),
			 "a thread was stopped inside malloc (%s)%s%s", what,
			 v->first ? ": " : "", v->first ? v->first->msg : "");
		break;
	default:
		break;
	}
}
