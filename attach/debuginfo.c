// SPDX-License-Identifier: MIT
/*
 * attach/debuginfo: separate debug info for libdwfl, shared by memspy's dwfl
 * users (see debuginfo.h). debuginfod is reached through libdebuginfod.so.1,
 * loaded with dlopen only when the user set DEBUGINFOD_URLS: no build
 * dependency, nothing loaded otherwise. libdebuginfod reads the server list
 * from the environment at each query, so the variable holds "" (libdwfl's own
 * built-in client then does nothing) except around memspy's own queries.
 */
#include "attach/debuginfo.h"

#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Without progress for this long, a fetch is given up (libdebuginfod's own
 * DEBUGINFOD_TIMEOUT bounds connecting); all fetches of a run share a budget. */
#define FETCH_MAX_S  15.0
#define BUDGET_MAX_S 60.0

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static char *user_urls; /* DEBUGINFOD_URLS as the user set it; NULL when unset or empty */
char *ms_debuginfo_search_path;
static __thread bool allow_network;

static void init(void)
{
	const char *u = getenv("DEBUGINFOD_URLS");
	const char *extra = getenv("MEMSPY_DEBUGINFO_PATH");

	if (u && *u) {
		user_urls = ms_xstrdup(u);
		/* a dead server must not hold memspy for libdebuginfod's default 90 s */
		if (!getenv("DEBUGINFOD_TIMEOUT"))
			setenv("DEBUGINFOD_TIMEOUT", "10", 1);
	}
	/* "" rather than unset: later swaps then replace one pointer in place,
	 * which a concurrent getenv in another thread survives */
	if (u)
		setenv("DEBUGINFOD_URLS", "", 1);
	ms_debuginfo_search_path = extra && *extra
				       ? ms_xasprintf("+:.debug:%s:/usr/lib/debug", extra)
				       : ms_xstrdup("+:.debug:/usr/lib/debug");
}

void ms_debuginfo_init(void)
{
	pthread_once(&init_once, init);
}

bool ms_debuginfod_enabled(void)
{
	ms_debuginfo_init();
	return user_urls != NULL;
}

bool ms_debuginfo_allow_network(bool allow)
{
	bool old = allow_network;

	allow_network = allow;
	return old;
}

/* ------------------------------ debuginfod ------------------------------ */

typedef struct debuginfod_client dclient;
static struct {
	bool tried, ok;
	dclient *(*begin)(void);
	int (*find_debuginfo)(dclient *, const unsigned char *, int, char **);
	void (*set_progressfn)(dclient *, int (*)(dclient *, long, long));
	void (*end)(dclient *);
} lib;

/* What each build id's fetch gave, for the hint (and so each is asked once). */
struct fetched {
	char build_id[129];
	int result; /* 0 = got it, else -errno */
};
static struct fetched *fetched;
static size_t n_fetched, cap_fetched;
static double budget_spent;
static pthread_mutex_t fetch_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool load_lib(void)
{
	void *h;

	if (lib.tried)
		return lib.ok;
	lib.tried = true;
	h = dlopen("libdebuginfod.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr,
			"memspy: DEBUGINFOD_URLS is set but libdebuginfod.so.1 cannot be loaded "
			"(%s); Debian: apt install libdebuginfod1\n",
			dlerror());
		return false;
	}
	*(void **)&lib.begin = dlsym(h, "debuginfod_begin");
	*(void **)&lib.find_debuginfo = dlsym(h, "debuginfod_find_debuginfo");
	*(void **)&lib.set_progressfn = dlsym(h, "debuginfod_set_progressfn");
	*(void **)&lib.end = dlsym(h, "debuginfod_end");
	lib.ok = lib.begin && lib.find_debuginfo && lib.set_progressfn && lib.end;
	if (!lib.ok)
		fprintf(stderr, "memspy: libdebuginfod.so.1 lacks the debuginfod_* functions\n");
	return lib.ok;
}

static struct {
	double start, last_progress;
	long last_bytes;
	const char *name;
	bool tty, shown, gave_up;
} cur;

/* libdebuginfod calls this while a transfer runs; non-zero cancels it. */
static int on_progress(dclient *c, long done, long total)
{
	double t = now_s();

	(void)c;
	/* Until a server answers, libdebuginfod passes a loop count, not bytes, and
	 * no total: only bytes of a sized answer count as progress. */
	if (total > 0 && done != cur.last_bytes) {
		cur.last_bytes = done;
		cur.last_progress = t;
	}
	if (cur.tty && total > 0) {
		fprintf(stderr, "\r\033[Kmemspy: debuginfod: %s: %.1f of %.1f MiB", cur.name,
			done / 1048576.0, total / 1048576.0);
		cur.shown = true;
	}
	cur.gave_up = t - cur.last_progress > FETCH_MAX_S ||
		      budget_spent + (t - cur.start) > BUDGET_MAX_S;
	return cur.gave_up;
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p ? p : "?";
}

static int fetch(const char *modname, const unsigned char *bits, int len, char **path_out)
{
	char hex[129];
	char *path = NULL;
	dclient *c;
	struct stat st;
	double t;
	int fd, i;

	if (len <= 0 || len > 64)
		return -1;
	for (i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", bits[i]);
	pthread_mutex_lock(&fetch_lock);
	for (size_t k = 0; k < n_fetched; k++) {
		if (!strcmp(fetched[k].build_id, hex) && fetched[k].result) {
			pthread_mutex_unlock(&fetch_lock);
			return -1; /* asked already, in vain */
		}
	}
	if (budget_spent > BUDGET_MAX_S || !load_lib()) {
		pthread_mutex_unlock(&fetch_lock);
		return -1;
	}
	c = lib.begin();
	if (!c) {
		pthread_mutex_unlock(&fetch_lock);
		return -1;
	}
	cur = (typeof(cur)){.start = now_s(), .name = base_name(modname), .tty = isatty(2)};
	cur.last_progress = cur.start;
	lib.set_progressfn(c, on_progress);
	fprintf(stderr, "memspy: debuginfod: fetching the debug info of %s (build id %.16s...)\n",
		cur.name, hex);
	setenv("DEBUGINFOD_URLS", user_urls, 1);
	fd = lib.find_debuginfo(c, bits, len, &path);
	setenv("DEBUGINFOD_URLS", "", 1);
	lib.end(c);
	t = now_s() - cur.start;
	budget_spent += t;
	if (cur.shown)
		fprintf(stderr, "\r\033[K");
	if (fd >= 0) {
		double kib = fstat(fd, &st) == 0 ? (double)st.st_size / 1024.0 : 0.0;

		fprintf(stderr, "memspy: debuginfod: %s: got %.1f %s in %.1f s (%s)\n", cur.name,
			kib >= 1024 ? kib / 1024 : kib, kib >= 1024 ? "MiB" : "KiB", t,
			path ? path : "cached");
	} else {
		if (cur.gave_up)
			fd = -ETIMEDOUT;
		fprintf(stderr, "memspy: debuginfod: %s: none (%s, %.1f s)\n", cur.name,
			cur.gave_up ? "given up: no progress" : strerror(-fd), t);
	}
	ms_xgrow((void **)&fetched, &cap_fetched, n_fetched + 1, sizeof(*fetched));
	snprintf(fetched[n_fetched].build_id, sizeof(fetched[n_fetched].build_id), "%s", hex);
	fetched[n_fetched++].result = fd >= 0 ? 0 : fd;
	pthread_mutex_unlock(&fetch_lock);
	if (fd >= 0 && path_out)
		*path_out = path; /* libdwfl frees it */
	else
		free(path);
	return fd >= 0 ? fd : -1;
}

/*
 * Whether libdwfl's search for a separate debug file may run for file_name:
 * it opens the debuglink name (or the file's base name + ".debug") beside
 * the module and in its ".debug" directory with a plain open(), in paths the
 * process chose, and a FIFO there blocks that open until a writer comes. So
 * each such candidate must be absent or a regular file. (A swap between this
 * check and libdwfl's open is not excluded.)
 */
static bool local_candidates_safe(const char *file_name, const char *debuglink_file)
{
	const char *slash = file_name ? strrchr(file_name, '/') : NULL;
	char name[512], path[PATH_MAX];
	struct stat st;

	if (!slash)
		return true;
	if (debuglink_file)
		snprintf(name, sizeof(name), "%s", debuglink_file);
	else
		snprintf(name, sizeof(name), "%s.debug", slash + 1);
	if (strchr(name, '/'))
		return false; /* no tool writes a debuglink with a directory in it */
	for (int dotdebug = 0; dotdebug < 2; dotdebug++) {
		int n = snprintf(path, sizeof(path), "%.*s%s/%s", (int)(slash - file_name), file_name,
				 dotdebug ? "/.debug" : "", name);

		if (n < 0 || (size_t)n >= sizeof(path))
			return false;
		if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
			return false;
	}
	return true;
}

int ms_debuginfo_find(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		      const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
		      char **debuginfo_file_name)
{
	const unsigned char *bits;
	GElf_Addr vaddr;
	int fd, len;

	ms_debuginfo_init();
	if (!local_candidates_safe(file_name, debuglink_file)) {
		ms_warn("%s: a separate debug file named for it is not a regular file (a FIFO "
			"there would block memspy), or its debuglink names a directory: its names "
			"come from the module alone", modname);
		return -1;
	}
	fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
					  debuglink_crc, debuginfo_file_name);
	if (fd >= 0 || !allow_network || !user_urls)
		return fd;
	len = dwfl_module_build_id(mod, &bits, &vaddr);
	if (len <= 0)
		return fd;
	return fetch(modname, bits, len, debuginfo_file_name);
}

/* --------------------------------- hint --------------------------------- */

/* The Debian package that owns path ("memcached"), or NULL. */
static char *owning_package(const char *path)
{
	char *cmd, line[512], *pkg = NULL;
	FILE *p;

	if (access("/usr/bin/dpkg-query", X_OK) != 0 || strchr(path, '\'') || !strchr(path, '/'))
		return NULL;
	cmd = ms_xasprintf("/usr/bin/dpkg-query -S '%s' 2>/dev/null", path);
	p = popen(cmd, "r");
	free(cmd);
	if (!p)
		return NULL;
	if (fgets(line, sizeof(line), p)) {
		/* "memcached: /usr/bin/memcached", "libc6:amd64: /lib/..." */
		size_t n = strcspn(line, ":, ");

		if (n && line[n] == ':')
			pkg = ms_xasprintf("%.*s", (int)n, line);
	}
	pclose(p);
	return pkg;
}

static char *os_codename(void)
{
	char line[256], *name = NULL;
	FILE *f = fopen("/etc/os-release", "r");

	if (!f)
		return NULL;
	while (!name && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VERSION_CODENAME=", 17) && line[17] > ' ')
			name = ms_xasprintf("%.*s", (int)strcspn(line + 17, "\"\n"), line + 17);
	fclose(f);
	return name;
}

char *ms_debuginfo_hint(const char *module_path, const char *build_id, unsigned share)
{
	const char *name = base_name(module_path);
	char *pkg = owning_package(module_path), *codename = NULL, *how, *line;
	int asked = 1;

	ms_debuginfo_init();
	pthread_mutex_lock(&fetch_lock);
	for (size_t k = 0; build_id && k < n_fetched; k++)
		if (!strcmp(fetched[k].build_id, build_id))
			asked = fetched[k].result;
	pthread_mutex_unlock(&fetch_lock);
	if (pkg)
		codename = os_codename();
	if (pkg && codename)
		how = ms_xasprintf(
		    "apt install %s-dbgsym (from the debug archive: deb "
		    "http://deb.debian.org/debian-debug %s-debug main), or ",
		    pkg, codename);
	else if (pkg)
		how = ms_xasprintf("apt install %s-dbgsym (from the debug archive), or ", pkg);
	else
		how = ms_xstrdup("install its separate debug file (its -dbgsym/-debuginfo package, "
				 "or a .build-id folder in MEMSPY_DEBUGINFO_PATH), or ");
	if (!user_urls) {
		line = ms_xasprintf("names: %u%% of the frames have no function name, most in %s "
				    "(build id %s); to get names: %sset DEBUGINFOD_URLS (e.g. "
				    "https://debuginfod.debian.net) and record again",
				    share, name, build_id && *build_id ? build_id : "none", how);
	} else {
		char *said = asked == 1   ? ms_xstrdup("was not asked (no build id, or its time "
							 "budget was spent)")
			     : asked == 0 ? ms_xstrdup("sent a debug file without symbols")
			     : asked == -ENOENT ? ms_xstrdup("has none")
			     : asked == -ETIMEDOUT
				 ? ms_xstrdup("was given up: nothing came for 15 s")
						: ms_xasprintf("failed: %s", strerror(-asked));

		line = ms_xasprintf("names: %u%% of the frames have no function name, most in %s "
				    "(build id %s); debuginfod %s; to get names: %sa debuginfod "
				    "server that has it",
				    share, name, build_id && *build_id ? build_id : "none", said, how);
		free(said);
	}
	free(how);
	free(pkg);
	free(codename);
	return line;
}
