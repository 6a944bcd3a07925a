// SPDX-License-Identifier: MIT
/*
 * memspy record (probe mode), what it says at the end: the closing summary
 * (the totals, answer first, then the cost, the budget's doing, losses,
 * tampering, bounds reached, the probed entry points, the check after
 * detach) and the file's subtitle, which states the same totals. The
 * figures come from record/ (the table's totals, the probes' stats, the
 * cost account); nothing here measures or decides.
 */
#include "cmd/record_int.h"
#include "cmd/record_interval.h"
#include "attach/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * The measured cost, answer first: how much sampling slowed the target and
 * from what (its threads' time in the probes and stops over their CPU
 * time; memspy's CPU where it delayed them), then memspy's own CPU in
 * absolute terms, then what the budget did to the mean. unsampled: the
 * estimated calls that took the probes' fast path (the sampled ones are
 * measured, in the stubs' time).
 */
static void print_cost(const struct rec_opts *o, const struct ms_probe_stats *st,
		       const struct ms_rec_meter *m, const struct ms_rec_end *oc, uint64_t unsampled)
{
	const struct ms_rec_budget *b = &m->budget;
	const struct ms_rec_cost *f = &b->first, *e = &m->end;
	struct ms_rec_account acc;
	const struct ms_rec_cost_parts *pt = &acc.parts;
	double wall, fast;
	char s1[32], s2[32], s3[32], s4[32], s5[32];

	ms_rec_account_read(b, e, &acc);
	wall = acc.wall_ns;
	fast = o->sample_bytes ? (double)unsampled * MS_REC_FAST_PATH_NS : 0;
	if (!acc.measurable)
		fprintf(stderr,
			"  slowdown: not measurable: the process used %s of CPU in %s (%.1f%% of a "
			"core), too little to take a share of",
			ms_fmt_duration(s1, sizeof(s1), (uint64_t)pt->target_cpu),
			ms_fmt_duration(s2, sizeof(s2), (uint64_t)wall),
			wall > 0 ? 100 * pt->target_cpu / wall : 0);
	else
		fprintf(stderr, "  slowdown: %.2f%% of the process's CPU time", 100 * acc.slowdown);
	if (b->budget > 0)
		fprintf(stderr, " (budget %.2g%%)", 100 * b->budget);
	else if (o->sample_bytes && !o->max_overhead_given)
		fprintf(stderr, " (no budget: --sample-bytes given without --max-overhead)");
	else if (o->sample_bytes)
		fprintf(stderr, " (no budget: --max-overhead off)");
	if (o->sample_bytes)
		fprintf(stderr, "; sampled at %s", ms_fmt_bytes(s1, sizeof(s1), b->mean));
	fprintf(stderr, "\n");
	fprintf(stderr,
		"    its threads spent %s in memspy's probes and %s stops (%s) over %s of their "
		"CPU",
		ms_fmt_duration(s1, sizeof(s1), (uint64_t)(e->stub_ns - f->stub_ns)),
		ms_fmt_count(s2, sizeof(s2), st->stops),
		ms_fmt_duration(s3, sizeof(s3), (uint64_t)(e->stopped_ns - f->stopped_ns)),
		ms_fmt_duration(s4, sizeof(s4), (uint64_t)pt->target_cpu));
	if (isnan(pt->extra_delay))
		fprintf(stderr, "; memspy's CPU taken as competing by the process's share of the "
				"machine's busy CPU (its run delay could not be read)");
	else if (pt->extra_delay > 0)
		fprintf(stderr,
			"; they waited %s longer for a CPU than at the rate of the 0.25 s before "
			"memspy attached (the machine's other load moves this too)",
			ms_fmt_duration(s1, sizeof(s1), (uint64_t)pt->extra_delay));
	else
		fprintf(stderr, "; they waited no longer for a CPU than before memspy attached");
	if (pt->competing >= 1000)
		fprintf(stderr, "; %s of memspy's CPU counted as competing with them",
			ms_fmt_duration(s1, sizeof(s1), (uint64_t)pt->competing));
	fprintf(stderr, "\n");
	fprintf(stderr, "    memspy used %s of CPU, %.2f%% of a core", 
		ms_fmt_duration(s1, sizeof(s1), (uint64_t)pt->self), wall > 0 ? 100 * pt->self / wall : 0);
	if (e->idle_polls) /* else never measured: samples came at every poll */
		fprintf(stderr, " (%s of it fixed: polling an empty ring and upkeep)",
			ms_fmt_duration(s2, sizeof(s2), (uint64_t)pt->fixed));
	fprintf(stderr, "; it counts only where the process waited for it\n");
	if (fast >= 1000)
		fprintf(stderr,
			"    the fast path: ~%s unsampled calls%s at ~%.0f ns, ~%s; estimated, and "
			"outside the budget (a wider mean cannot remove it)\n",
			ms_fmt_count(s2, sizeof(s2), unsampled),
			o->live ? " (frees taken as many as the allocations)" : "", MS_REC_FAST_PATH_NS,
			ms_fmt_duration(s1, sizeof(s1), (uint64_t)fast));
	if (o->sample_bytes) {
		double sps = oc->wall_ns ? (double)st->samples * 1e9 / (double)oc->wall_ns : 0;

		if (b->mean != b->start_mean)
			fprintf(stderr, "  sampling mean %s from %s to %s",
				b->mean > b->start_mean ? "widened" : "narrowed",
				ms_fmt_bytes(s1, sizeof(s1), b->start_mean),
				ms_fmt_bytes(s2, sizeof(s2), b->mean));
		else
			fprintf(stderr, "  sampling mean kept at %s",
				ms_fmt_bytes(s1, sizeof(s1), b->mean));
		if (b->widened + b->narrowed > 1)
			fprintf(stderr, " (%u changes, between %s and %s)", b->widened + b->narrowed,
				ms_fmt_bytes(s3, sizeof(s3), b->narrowest_mean),
				ms_fmt_bytes(s5, sizeof(s5), b->peak_mean));
		if (b->budget > 0)
			fprintf(stderr, " to stay within the %.2g%% budget", 100 * b->budget);
		fprintf(stderr, "; %.0f samples/s\n", sps);
		if (b->capped)
			fprintf(stderr,
				"  the mean reached its %s cap and the cost stayed over the budget\n",
				ms_fmt_bytes(s1, sizeof(s1), b->max_mean));
		if (b->lost_over)
			fprintf(stderr,
				"  the mean was widened because memspy drained the in-target ring too "
				"slowly (more than %.0f%% of samples lost: memspy got too little CPU)\n",
				100 * MS_REC_BUDGET_MAX_LOST);
		if (b->self_over)
			fprintf(stderr,
				"  the mean was widened to keep memspy's own sampling CPU under %.0f%% "
				"of a core\n",
				100 * MS_REC_BUDGET_SELF_MAX);
		if (b->table_over)
			fprintf(stderr,
				"  the mean was widened to keep the sampled blocks memspy follows to "
				"their free (%s at most) within its in-target table: a narrower mean "
				"would lose some and count them live for good\n",
				ms_fmt_count(s1, sizeof(s1), b->peak_tracked));
		if (b->budget > 0 && b->mean == b->min_mean && b->mean < b->start_mean)
			fprintf(stderr, "  the mean reached its narrowest, %s%s\n",
				ms_fmt_bytes(s1, sizeof(s1), b->min_mean),
				o->sample_bytes_given ? " (--sample-bytes)" : "");
	}
}

/*
 * What the in-target rings could not hand over. Ring mode drops rather than
 * stop a thread (a trap could kill a process whose thread blocks SIGTRAP):
 * say how many, and what that does to the figures.
 */
static uint64_t ring_full(const struct ms_probe_stats *st)
{
	return st->lost_samples - st->lost_nothread;
}

/* Many samples dropped (MS_REC_RING_LOSS_WARN): said at the top, by print_ring_full. */
static bool ring_loss_large(const struct ms_probe_stats *st)
{
	uint64_t full = ring_full(st);

	return full && (double)full >= MS_REC_RING_LOSS_WARN * (double)(st->ring_samples + full);
}

/*
 * "N of M samples found the in-target ring full": the words
 * record/subprocesses.c and the tests read, with a WARNING and the share
 * in front when it is large.
 */
static void print_ring_full(const struct ms_probe_stats *st)
{
	uint64_t full = ring_full(st), all = st->ring_samples + full;
	char a[32], b[32], c[32];

	if (ring_loss_large(st))
		fprintf(stderr, "  WARNING: %.0f%% of the samples were lost: ",
			100.0 * (double)full / (double)all);
	else
		fputs("  ", stderr);
	fprintf(stderr,
		"%s of %s samples found the in-target ring full (memspy drained it too slowly: "
		"a loaded machine?) and were dropped rather than stop the target; the %s "
		"drained were weighted up to stand for them, %s\n",
		ms_fmt_count(a, sizeof(a), full), ms_fmt_count(b, sizeof(b), all),
		ms_fmt_count(c, sizeof(c), st->ring_samples),
		ring_loss_large(st) ? "so the figures are rougher than their sample count says"
				    : "a little rougher figures");
}

static void print_ring_losses(const struct rec_opts *o, const struct ms_probe_stats *st)
{
	char a[32], b[32];

	if (ring_full(st) && !ring_loss_large(st)) /* else at the top */
		print_ring_full(st);
	if (st->lost_nothread)
		fprintf(stderr,
			"  %s samples of threads memspy could not enter in its thread table (1,024 "
			"entries) are missing: totals are low\n",
			ms_fmt_count(a, sizeof(a), st->lost_nothread));
	if (st->lost_frees && o->live)
		fprintf(stderr,
			"  %s frees of sampled blocks found the in-target ring full and were not "
			"seen: live figures may be high by as many blocks\n",
			ms_fmt_count(a, sizeof(a), st->lost_frees));
	if (st->stack_cut)
		fprintf(stderr,
			"  %s samples lost their outer frames: the stack copy (only as deep as "
			"unwinding had needed) was too short for them; it now reaches %s\n",
			ms_fmt_count(a, sizeof(a), st->stack_cut),
			ms_fmt_bytes(b, sizeof(b), st->stack_cap));
}

/* The samples the written view rests on: the live ones for --live. */
static uint64_t view_samples(const struct rec_opts *o, const struct ms_rec_totals *tot)
{
	return o->live ? tot->live_samples : tot->samples;
}

/* How to get more samples, for a view that rests on few; NULL when exact or enough. */
static char *few_samples_advice(const struct rec_opts *o, const struct ms_rec_totals *tot,
				const struct ms_rec_budget *b)
{
	char mean[32];

	if (!o->sample_bytes || view_samples(o, tot) >= MS_OUT_FEW_SAMPLES)
		return NULL;
	ms_fmt_bytes(mean, sizeof(mean), b->mean);
	if (o->sample_bytes_given && !o->max_overhead_given)
		return ms_xasprintf("record longer or give a narrower --sample-bytes (%s now); "
				    "--max-overhead lets memspy choose",
				    mean);
	return ms_xasprintf("record longer, raise --max-overhead (%.2g%% now) or give a "
			    "narrower --sample-bytes (mean %s now)",
			    100 * b->budget, mean);
}

static void print_few_samples(const struct rec_opts *o, const struct ms_rec_totals *tot,
			      const struct ms_rec_budget *b)
{
	char *advice = few_samples_advice(o, tot, b);
	char n[32];

	if (!advice)
		return;
	if (!view_samples(o, tot))
		fprintf(stderr, "  WARNING: few samples: none in the %s view; to see more, %s\n",
			o->live ? "live" : "allocation", advice);
	else
		fprintf(stderr,
			"  WARNING: few samples: the %s view rests on %s sample%s, a rough figure "
			"(n samples are off by about 1/sqrt(n)); for more, %s\n",
			o->live ? "live" : "allocation",
			ms_fmt_count(n, sizeof(n), view_samples(o, tot)),
			view_samples(o, tot) == 1 ? "" : "s", advice);
	free(advice);
}

/*
 * The target wrote over memspy's pages in it (attach/probe_ring.c's tamper
 * checks): what was dropped, and whether sampling stopped. Read on its own
 * by tests/e2e/hostile_e2e.py.
 */
static void print_tampering(const struct rec_opts *o, const struct ms_probe_stats *st)
{
	char a[32], b[32];

	if (st->tampered)
		fprintf(stderr,
			"  WARNING: memspy's pages in process %d were overwritten: %s samples "
			"discarded; sampling stopped %s after it began (%s), the figures above "
			"cover only the time before%s\n",
			(int)o->co.pid, ms_fmt_count(a, sizeof(a), st->discarded),
			ms_fmt_duration(b, sizeof(b), st->tamper_after_ns), st->tamper_why,
			o->live ? "; blocks freed after it count as live" : "");
	else if (st->discarded)
		fprintf(stderr,
			"  WARNING: %s samples or frees in memspy's pages in process %d were not "
			"what its probes write (overwritten by the target?) and were discarded\n",
			ms_fmt_count(a, sizeof(a), st->discarded), (int)o->co.pid);
	if (st->clock_odd)
		fprintf(stderr,
			"  %s samples or frees carried a timestamp outside the recording (this "
			"machine's TSC is not stable: a VM?): the samples were dropped (totals a "
			"little low), the frees kept\n",
			ms_fmt_count(a, sizeof(a), st->clock_odd));
}

void rec_print_summary(const struct rec_opts *o, const struct ms_rec_table *t,
			  struct ms_probes *pr, const struct ms_rec_counts *rec,
			  const struct ms_rec_end *oc, const struct ms_rec_meter *m, const char *verify_note,
			  int verified_ok, const struct cli_interval_files *ivf)
{
	struct ms_probe_stats st = {0};
	struct ms_rec_totals tot;
	const char **names = NULL;
	size_t nnames = 0;
	char a[32], b[32], c[32], d[32];

	ms_rec_table_totals(t, &tot);
	if (pr) {
		ms_probes_stats(pr, &st);
		nnames = ms_probes_sites(pr, &names);
	}
	if (ivf) {
		char *files = cli_interval_files_summary(ivf);

		fprintf(stderr, "memspy: wrote %s (%s", files, ms_out_format_name(o->co.fmt));
		free(files);
	} else if (o->co.out_path) {
		fprintf(stderr, "memspy: wrote %s (%s", o->co.out_path, ms_out_format_name(o->co.fmt));
	} else { /* hooks: no file */
		fprintf(stderr, "memspy %s: pid %d: ", o->cmd, (int)o->co.pid);
	}
	if (ivf || o->co.out_path)
		fprintf(stderr, ", %s): ",
			o->live ? (o->count ? "live allocations" : "live bytes")
				: (o->count ? "allocation counts" : "bytes allocated"));
	if (o->sample_bytes && !tot.samples) {
		/* Nothing to estimate from: say what that means rather than "0 allocations". */
		fprintf(stderr, "%sno sample at all in %s (one is taken per %s allocated on average: "
				"the process allocated little or nothing)\n",
			o->live ? "0 B still live: " : "",
			ms_fmt_duration(c, sizeof(c), (uint64_t)oc->wall_ns),
			ms_fmt_bytes(a, sizeof(a), m->budget.mean));
	} else {
		if (o->live && o->sample_bytes && !tot.live_samples)
			fprintf(stderr, "0 B still live: no live sample in ");
		else if (o->live)
			fprintf(stderr, "%s still live in %s allocations, of ",
				ms_fmt_bytes(a, sizeof(a), (uint64_t)tot.live_bytes),
				ms_fmt_count(b, sizeof(b), (uint64_t)llround(tot.live_count)));
		fprintf(stderr, "%s allocated in %s allocations",
			ms_fmt_bytes(a, sizeof(a), (uint64_t)tot.bytes),
			ms_fmt_count(b, sizeof(b), (uint64_t)llround(tot.count)));
		fprintf(stderr, " over %s, from %s samples",
			ms_fmt_duration(c, sizeof(c), (uint64_t)oc->wall_ns),
			ms_fmt_count(d, sizeof(d), tot.samples));
		if (!o->sample_bytes)
			fprintf(stderr, " (exact: every call)\n");
		else if (o->live)
			fprintf(stderr, " (%s still live; estimated, mean %s)\n",
				ms_fmt_count(d, sizeof(d), tot.live_samples),
				ms_fmt_bytes(a, sizeof(a), m->budget.mean));
		else
			fprintf(stderr, " (estimated, mean %s)\n",
				ms_fmt_bytes(a, sizeof(a), m->budget.mean));
	}
	if (ring_loss_large(&st))
		print_ring_full(&st);
	print_few_samples(o, &tot, &m->budget);
	if (tot.failed)
		fprintf(stderr, "  %s sampled calls failed (returned NULL) and are not counted\n",
			ms_fmt_count(a, sizeof(a), tot.failed));
	print_cost(o, &st, m, oc, ms_rec_unsampled_calls(&tot, o->live || o->interval_ns));
	if (oc->wall_ns && st.stops * 1e9 / (double)oc->wall_ns > 200)
		fprintf(stderr,
			"  note: %.0f stops/s; each also costs a wake-up not counted above, so a "
			"busy target was likely much slower than that%s\n",
			st.stops * 1e9 / (double)oc->wall_ns,
			o->sample_bytes ? "" : ": sample (the default) instead of --exact");
	if (st.attach_pause_ns || st.remove_pause_ns) {
		char touch[32] = "";

		if (st.touch_ns)
			ms_fmt_duration(touch, sizeof(touch), (uint64_t)st.touch_ns);
		fprintf(stderr,
			"  pauses of the whole target: %s to install the probes%s%s%s, %s to remove "
			"them\n",
			ms_fmt_duration(a, sizeof(a), (uint64_t)st.attach_pause_ns),
			st.touch_ns ? " (" : "", touch,
			st.touch_ns ? " of it for the process to write into memspy's ring pages, so "
				      "that its samples do not fault them in)"
				    : "",
			ms_fmt_duration(b, sizeof(b), (uint64_t)st.remove_pause_ns));
	}
	if (st.dropped)
		fprintf(stderr,
			"  %s sampled blocks could not be followed to their free (memspy's "
			"in-target table of sampled pointers was full): the live view counts them "
			"as still live\n",
			ms_fmt_count(a, sizeof(a), st.dropped));
	print_ring_losses(o, &st);
	print_tampering(o, &st);
	if (tot.stacks_capped)
		fprintf(stderr,
			"  memspy's bound on the stacks it keeps (%s distinct stacks, %s frames "
			"over them) was reached: %s later samples on new stacks are shown as "
			"[unknown]\n",
			ms_fmt_count(a, sizeof(a), tot.max_stacks),
			ms_fmt_count(c, sizeof(c), tot.max_pcs),
			ms_fmt_count(b, sizeof(b), tot.stacks_capped));
	if (tot.untracked && o->live)
		fprintf(stderr,
			"  memspy's bound of %s live samples was reached: %s later samples could not "
			"be followed to their free and count as live\n",
			ms_fmt_count(a, sizeof(a), tot.max_samples),
			ms_fmt_count(b, sizeof(b), tot.untracked));
	if (rec->unwind_failures)
		fprintf(stderr, "  %s samples could not be unwound (shown as [unknown])\n",
			ms_fmt_count(a, sizeof(a), rec->unwind_failures));
	/*
	 * Stacks that stop at the allocator's caller are no flame graph: with
	 * --unwinder fp that is a program built without frame pointers (most
	 * distribution binaries), and nothing else would say so.
	 */
	if (rec->alloc_events >= 20 && rec->one_frame * 2 >= rec->alloc_events)
		fprintf(stderr,
			"  WARNING: %s of %s stacks stop at the allocator's caller (one frame)%s\n",
			ms_fmt_count(a, sizeof(a), rec->one_frame),
			ms_fmt_count(b, sizeof(b), rec->alloc_events),
			o->co.unwinder == MS_UNWIND_FP
			    ? ": the code was built without frame pointers; record again without "
			      "--unwinder fp (the default unwinder reads the CFI)"
			    : "");
	if (nnames) {
		fprintf(stderr, "  probed %zu entry points:", nnames);
		for (size_t i = 0; i < nnames; i++) {
			fputs(i ? ", " : " ", stderr);
			ms_fputs_terminal(names[i], stderr); /* the module's name is the target's */
		}
		fprintf(stderr, "\n");
	}
	if (ivf && cli_interval_files_cpu_ns(ivf))
		fprintf(stderr,
			"  writing the interval files took %s of memspy's CPU (outside the "
			"budget: a wider mean would not reduce it)\n",
			ms_fmt_duration(a, sizeof(a), cli_interval_files_cpu_ns(ivf)));
	if (verify_note) {
		fprintf(stderr, "  %s", verified_ok ? "" : "WARNING: ");
		ms_fputs_terminal(verify_note, stderr); /* module paths */
		fputc('\n', stderr);
	}
}

/*
 * The file's subtitle: the same totals as the summary, what they rest on,
 * and a warning when that is few samples.
 */
char *rec_file_subtitle(const struct rec_opts *o, const struct ms_rec_totals *tot,
			   uint64_t wall_ns, const struct ms_rec_budget *b)
{
	char a[32], c[32], d[32], n[32], *what, *how, *advice, *sub;

	ms_fmt_bytes(a, sizeof(a), (uint64_t)tot->bytes);
	ms_fmt_count(c, sizeof(c), (uint64_t)llround(tot->count));
	ms_fmt_bytes(d, sizeof(d), b->mean);
	/* What the figures rest on. */
	how = o->sample_bytes ? ms_xasprintf("estimated from %s sample%s%s, mean %s",
					     ms_fmt_count(n, sizeof(n), view_samples(o, tot)),
					     view_samples(o, tot) == 1 ? "" : "s",
					     o->live ? " still live" : "", d)
			      : ms_xstrdup("exact (every call)");
	if (o->sample_bytes && !tot->samples)
		what = ms_xasprintf("%sno sample at all in %.1f s (one per %s allocated on average)",
				    o->live ? "0 B still live: " : "", (double)wall_ns / 1e9, d);
	else if (o->live && o->sample_bytes && !tot->live_samples)
		what = ms_xasprintf("0 B still live: no live sample in %s allocated in %s "
				    "allocations over %.1f s, from %s samples (mean %s)",
				    a, c, (double)wall_ns / 1e9,
				    ms_fmt_count(n, sizeof(n), tot->samples), d);
	else if (o->live)
		what = ms_xasprintf("%s still live in %s allocations (of %s allocated) after %.1f s, %s",
				    ms_fmt_bytes(d, sizeof(d), (uint64_t)tot->live_bytes),
				    ms_fmt_count(n, sizeof(n), (uint64_t)llround(tot->live_count)), a,
				    (double)wall_ns / 1e9, how);
	else
		what = ms_xasprintf("%s allocated in %s allocations over %.1f s, %s", a, c,
				    (double)wall_ns / 1e9, how);
	free(how);
	advice = few_samples_advice(o, tot, b);
	if (!advice)
		return what;
	sub = view_samples(o, tot)
		  ? ms_xasprintf("%s\nFew samples: a rough figure; for more, %s", what, advice)
		  : ms_xasprintf("%s\nFew samples: none in this view; to see more, %s", what, advice);
	free(what);
	free(advice);
	return sub;
}
