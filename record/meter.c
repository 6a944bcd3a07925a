// SPDX-License-Identifier: MIT
/*
 * record: the cost meter. What the recording loop measures, for the
 * --max-overhead controller (record/budget.c) and for the summary: memspy's
 * CPU (split into idle polls, upkeep and sampling), the target's CPU and
 * run delay (its threads' schedstat; /proc/PID/stat's ticks past 512
 * threads), the machine's
 * busy CPU (/proc/stat), the probes' own counts; the run-delay baseline
 * taken before attaching; and the pace of the drains, which follows the
 * sample rate.
 */
#include "record/record.h"
#include "attach/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The drain's pace and the budget's readings (see record.h, MS_REC_POLL_*). */
#define POLL_MIN_MS MS_REC_POLL_MIN_MS
#define POLL_MAX_MS MS_REC_POLL_MAX_MS
#define POLL_BATCH  64 /* samples waiting per drain to aim for */
/*
 * Budget readings: 4 per second. The controller decides once per window
 * (MS_REC_BUDGET_WINDOW_NS, the first after MS_REC_BUDGET_FIRST_NS); a
 * reading is ~10 system calls (every thread's schedstat, /proc/stat), and
 * at 10 per second they were a third of memspy's fixed cost on a light
 * process (where a system call costs 5-30 us on this VM).
 */
#define BUDGET_READ_NS 250000000ull

#define BASELINE_NS	   250000000ull /* how long the baseline is measured */
#define BASELINE_MIN_CPU_NS 10000000ull /* per CPU ns only with this much target CPU */
#define RUN_DELAY_MAX_THREADS 512	 /* beyond, reading every thread costs too much */

uint64_t ms_rec_self_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* utime + stime of the whole process (all threads), from /proc/PID/stat; 0 if unreadable. */
static uint64_t target_cpu_ns(pid_t pid, long clk_tck)
{
	char path[64], buf[1024], *q;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: the fields start after the last ')'. */
	q = strrchr(buf, ')');
	if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return 0;
	return (ut + st) * (1000000000ull / (uint64_t)clk_tck);
}

/* The machine's non-idle CPU time over all CPUs, from /proc/stat's first line; 0 if unreadable. */
static uint64_t machine_busy_cpu_ns(long clk_tck)
{
	unsigned long long v[8] = {0};
	char buf[256];
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return 0;
	n = fgets(buf, sizeof(buf), f)
		? sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			 &v[3], &v[4], &v[5], &v[6], &v[7])
		: 0;
	fclose(f);
	if (n < 4)
		return 0;
	/* user nice system [idle iowait] irq softirq steal */
	return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (1000000000ull / (uint64_t)clk_tck);
}

/*
 * Measures the target's run delay for BASELINE_NS before anything is
 * attached. Returns false when a stop was requested meanwhile.
 */
bool ms_rec_baseline_measure(pid_t pid, struct ms_rec_baseline *bl)
{
	struct ms_sched_account a = {0};
	uint64_t d0, c0, t0, t1;

	*bl = (struct ms_rec_baseline){.delay_per_cpu = -1, .delay_per_wall = -1};
	if (ms_sched_account_read(&a, pid, RUN_DELAY_MAX_THREADS))
		return true;
	d0 = a.wait_ns;
	c0 = a.run_ns;
	t0 = ms_now_ns();
	while ((t1 = ms_now_ns()) - t0 < BASELINE_NS) {
		struct timespec ts = {0, 25000000};

		if (ms_signals_stop_requested()) {
			ms_sched_account_free(&a);
			return false;
		}
		nanosleep(&ts, NULL);
	}
	if (ms_sched_account_read(&a, pid, RUN_DELAY_MAX_THREADS)) {
		ms_sched_account_free(&a);
		return true;
	}
	bl->measured = true;
	bl->wall_ns = t1 - t0;
	bl->target_cpu_ns = a.run_ns - c0;
	bl->delay_ns = a.wait_ns - d0;
	ms_sched_account_free(&a);
	bl->delay_per_wall = (double)bl->delay_ns / (double)bl->wall_ns;
	if (bl->target_cpu_ns >= BASELINE_MIN_CPU_NS)
		bl->delay_per_cpu = (double)bl->delay_ns / (double)bl->target_cpu_ns;
	return true;
}

/*
 * The target's CPU time and run delay, as totals that only grow: exact from
 * its threads' schedstat; past RUN_DELAY_MAX_THREADS threads (or without
 * schedstats), its CPU from /proc/PID/stat's ticks, going on from the exact
 * total, and the run delay no longer measured.
 */
static void meter_target(struct ms_rec_meter *m, uint64_t *cpu, uint64_t *delay)
{
	uint64_t ticks;
	int rc;

	*delay = m->last_delay;
	if (!m->sched_ticks) {
		rc = ms_sched_account_read(&m->sched, m->pid, RUN_DELAY_MAX_THREADS);
		if (!rc) {
			*cpu = m->sched.run_ns;
			*delay = m->sched.wait_ns;
			return;
		}
		if (rc == -ENOENT && ms_procfs_gone(m->pid)) {
			*cpu = m->last_target_cpu; /* exited: nothing more to read */
			return;
		}
	}
	ticks = target_cpu_ns(m->pid, m->clk_tck);
	if (!m->sched_ticks) {
		m->sched_ticks = true;
		m->delay_unread = true; /* and the budget stops comparing it with the baseline: */
		m->budget.base_delay_per_cpu = m->budget.base_delay_per_wall = -1;
		m->ticks_offset = m->sched.run_ns > ticks ? m->sched.run_ns - ticks : 0;
	}
	*cpu = ticks ? ticks + m->ticks_offset : 0;
}

void ms_rec_meter_reading(struct ms_rec_meter *m, struct ms_probes *pr, struct ms_rec_cost *c)
{
	struct ms_probe_stats st;
	uint64_t tcpu, delay;

	meter_target(m, &tcpu, &delay);
	if (tcpu > m->last_target_cpu)
		m->last_target_cpu = tcpu;
	if (!m->delay_unread && delay > m->last_delay)
		m->last_delay = delay;
	ms_probes_stats(pr, &st);
	*c = (struct ms_rec_cost){
	    .wall_ns = ms_now_ns(),
	    .self_cpu_ns = ms_rec_self_cpu_ns() - m->cpu0,
	    .stopped_ns = st.stopped_ns,
	    .stub_ns = st.target_ns,
	    .target_cpu_ns = m->last_target_cpu,
	    .run_delay_ns = m->last_delay,
	    .busy_cpu_ns = machine_busy_cpu_ns(m->clk_tck),
	    .ncpu = m->ncpu,
	    .samples = st.samples,
	    .lost = st.lost_samples,
	    .polls = m->polls,
	    .idle_polls = m->idle_polls,
	    .idle_cpu_ns = m->idle_cpu_ns,
	    .upkeep_ns = m->upkeep_ns,
	};
	/* In the table: sampled, not seen freed (nor lost freed), and not refused by a full bucket. */
	if (m->follow_frees && st.samples > st.frees + st.lost_frees + st.dropped)
		c->tracked = st.samples - st.frees - st.lost_frees - st.dropped;
}

void ms_rec_meter_start(struct ms_rec_meter *m, pid_t pid, struct ms_probes *pr,
			double max_overhead, uint64_t mean, uint64_t min_mean,
			const struct ms_rec_baseline *bl)
{
	struct ms_rec_cost c;

	*m = (struct ms_rec_meter){.pid = pid, .wait_ms = POLL_MIN_MS};
	m->clk_tck = sysconf(_SC_CLK_TCK);
	m->ncpu = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (uint64_t)sysconf(_SC_NPROCESSORS_ONLN) : 0;
	if (m->clk_tck <= 0)
		m->clk_tck = 100;
	m->cpu0 = m->last_cpu = ms_rec_self_cpu_ns();
	ms_rec_budget_init(&m->budget, mean ? max_overhead : 0, mean, min_mean, MS_REC_BUDGET_MAX_MEAN);
	m->budget.floor_poll_hz = 1000.0 / POLL_MAX_MS;
	m->delay_unread = !bl->measured;
	if (bl->measured) {
		m->budget.base_delay_per_cpu = bl->delay_per_cpu;
		m->budget.base_delay_per_wall = bl->delay_per_wall;
	}
	ms_rec_meter_reading(m, pr, &c);
	ms_rec_budget_update(&m->budget, &c);
	m->last = c;
	m->pace_ns = c.wall_ns;
	m->next_read_ns = c.wall_ns + BUDGET_READ_NS;
}

/*
 * At the top of each iteration: memspy's CPU in the last one. The idle
 * ones (a wait that timed out, an empty drain) are its fixed cost, which
 * the budget must not try to remove by widening the mean.
 */
void ms_rec_meter_iteration(struct ms_rec_meter *m, uint64_t events)
{
	uint64_t cpu = ms_rec_self_cpu_ns();

	if (m->counting) {
		m->polls++;
		if (!m->busy && events == m->last_events && cpu >= m->last_cpu) {
			m->idle_polls++;
			m->idle_cpu_ns += cpu - m->last_cpu;
		}
	}
	m->counting = true;
	m->busy = false;
	m->last_cpu = cpu;
	m->last_events = events;
}

/* After a drain: the next wait, from the rate samples come at. */
void ms_rec_meter_pace(struct ms_rec_meter *m, struct ms_probes *pr, uint64_t alloc_events,
		       uint64_t free_events, uint64_t now)
{
	struct ms_probe_stats st;
	double n, want;

	ms_probes_stats(pr, &st);
	n = (double)(alloc_events - m->pace_samples) +
	    (double)(free_events - m->pace_frees) / 16; /* the free ring holds 4096 */
	if (st.ring_full != m->pace_ring_full)
		want = POLL_MIN_MS; /* the ring overflowed (samples lost): drain often again */
	else if (n > 0)
		want = POLL_BATCH * ((double)(now - m->pace_ns) / 1e6) / n;
	else
		want = 2.0 * m->wait_ms;
	if (want > 2.0 * m->wait_ms)
		want = 2.0 * m->wait_ms; /* slow down gradually, speed up at once */
	m->wait_ms = want < POLL_MIN_MS ? POLL_MIN_MS : want > POLL_MAX_MS ? POLL_MAX_MS : (int)want;
	m->pace_ns = now;
	m->pace_samples = alloc_events;
	m->pace_frees = free_events;
	m->pace_ring_full = st.ring_full;
}

/* A budget reading; applies a new mean when the controller asks for one. */
void ms_rec_meter_read(struct ms_rec_meter *m, struct ms_probes *pr, uint64_t now,
		       ms_alloc_event_cb cb, void *ctx)
{
	struct ms_rec_cost c;
	uint64_t mean;
	char a[32];
	int rc;

	m->next_read_ns = now + BUDGET_READ_NS;
	m->busy = true;
	ms_rec_meter_reading(m, pr, &c);
	m->last = c;
	mean = ms_rec_budget_update(&m->budget, &c);
	if (!mean || m->set_failed)
		return;
	rc = ms_probes_set_sample_bytes(pr, mean, cb, ctx);
	if (rc) {
		m->set_failed = true;
		m->budget.mean = ms_probes_sample_bytes(pr);
		m->budget.budget = 0;
		ms_warn("record: setting the sampling mean to %s failed (%s): it stays at %s and "
			"--max-overhead is off for the rest of the recording",
			ms_fmt_bytes(a, sizeof(a), mean), ms_strerror(rc),
			ms_fmt_bytes(a, sizeof(a), m->budget.mean));
	}
}

void ms_rec_meter_free(struct ms_rec_meter *m)
{
	ms_sched_account_free(&m->sched);
}
