// SPDX-License-Identifier: MIT
/*
 * Signals to memspy. Handlers only record which signal came: detaching from
 * the target (restoring bytes, letting threads go) is the main loop's job,
 * never a handler's. The signals stay blocked except inside ppoll(), so a
 * signal that arrives between a check and the wait still ends the wait.
 */
#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;
static sigset_t saved_mask;
static struct sigaction saved_act[4];
static const int handled[4] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
static bool initialised;

static void on_stop_signal(int sig)
{
	if (!stop_signal)
		stop_signal = sig;
}

static void on_sigchld(int sig)
{
	(void)sig; /* only here to interrupt ppoll() */
}

void ms_signals_init(void)
{
	struct sigaction sa;
	sigset_t block;

	if (initialised)
		return;
	sigemptyset(&block);
	for (size_t i = 0; i < MS_ARRAY_SIZE(handled); i++)
		sigaddset(&block, handled[i]);
	sigprocmask(SIG_BLOCK, &block, &saved_mask);
	for (size_t i = 0; i < MS_ARRAY_SIZE(handled); i++) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = handled[i] == SIGCHLD ? on_sigchld : on_stop_signal;
		sigfillset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(handled[i], &sa, &saved_act[i]);
	}
	initialised = true;
}

int ms_signals_stop_requested(void)
{
	sigset_t pending;

	/* Blocked signals are only delivered in ms_signals_wait(); look here too. */
	if (!stop_signal && initialised && sigpending(&pending) == 0) {
		if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) ||
		    sigismember(&pending, SIGHUP))
			ms_signals_wait(0);
	}
	return stop_signal;
}

int ms_signals_wait(int timeout_ms)
{
	struct timespec ts, *tsp = NULL;
	sigset_t open_mask;
	int r;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	sigprocmask(SIG_SETMASK, NULL, &open_mask);
	for (size_t i = 0; i < MS_ARRAY_SIZE(handled); i++)
		sigdelset(&open_mask, handled[i]);
	r = ppoll(NULL, 0, tsp, &open_mask);
	return r < 0 && errno == EINTR ? 1 : 0;
}

void ms_signals_reset_for_child(void)
{
	if (!initialised)
		return;
	for (size_t i = 0; i < MS_ARRAY_SIZE(handled); i++)
		sigaction(handled[i], &saved_act[i], NULL);
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);
}
