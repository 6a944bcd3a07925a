// SPDX-License-Identifier: MIT
/*
 * memspy-demo: a small "service" for the README's demo command. Worker
 * threads handle fake requests: parse a request (short strings), build a
 * response (a buffer grown with realloc), compress it through a scratch
 * buffer, log a line, and keep 1 in 100 responses in a cache that is never
 * trimmed: a slow leak, as in a real incident.
 *
 *   memspy-demo [seconds]     runs for that long (default 600), prints its pid
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

struct cache_entry {
	struct cache_entry *next;
	char *body;
	size_t len;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry *cache;
static volatile sig_atomic_t stopping;
static volatile unsigned long sink;

NOINLINE static char *parse_header(unsigned seed)
{
	size_t n = 24 + seed % 40;
	char *h = malloc(n);

	memset(h, 'h', n - 1);
	h[n - 1] = '\0';
	return h;
}

NOINLINE static char **parse_request(unsigned seed, int *nheaders)
{
	int n = 4 + (int)(seed % 8);
	char **hs = calloc((size_t)n, sizeof(char *));

	for (int i = 0; i < n; i++)
		hs[i] = parse_header(seed + (unsigned)i);
	*nheaders = n;
	return hs;
}

NOINLINE static char *render_body(unsigned seed, size_t *len)
{
	size_t cap = 256, n = 0;
	char *buf = malloc(cap);
	size_t want = 512 + (seed % 64) * 128;

	while (n < want) {
		if (n + 200 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		memset(buf + n, 'x', 200);
		n += 200;
	}
	*len = n;
	return buf;
}

NOINLINE static void cache_response(char *body, size_t len)
{
	struct cache_entry *e = malloc(sizeof(*e));

	e->body = body;
	e->len = len;
	pthread_mutex_lock(&cache_lock);
	e->next = cache;
	cache = e;
	pthread_mutex_unlock(&cache_lock);
}

/* A scratch buffer per response, as a compressor would use. */
NOINLINE static unsigned long compress_body(const char *body, size_t len)
{
	size_t cap = 4096 + len / 2;
	unsigned char *scratch = malloc(cap);
	unsigned long h = 0;

	for (size_t i = 0; i < len; i += 64) {
		scratch[i % cap] = (unsigned char)body[i];
		h = h * 31 + scratch[i % cap];
	}
	free(scratch);
	return h;
}

NOINLINE static void log_request(unsigned seed, size_t len)
{
	char *line = malloc(160);

	snprintf(line, 160, "GET /item/%u 200 %zu bytes", seed, len);
	sink += (unsigned long)line[4];
	free(line);
}

NOINLINE static void handle_request(unsigned seed)
{
	int nh;
	char **hs = parse_request(seed, &nh);
	size_t len;
	char *body = render_body(seed, &len);

	sink += (unsigned long)body[len / 2] + (unsigned long)hs[0][0];
	sink += compress_body(body, len);
	log_request(seed, len);
	for (int i = 0; i < nh; i++)
		free(hs[i]);
	free(hs);
	if (seed % 100 == 7)
		cache_response(body, len); /* kept forever: the leak */
	else
		free(body);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u;
	struct timespec pause = {0, 200 * 1000}; /* ~5k requests/s per worker */

	while (!stopping) {
		handle_request(seed++);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 600;
	pthread_t t[3];

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	printf("memspy-demo: pid %d ready\n", (int)getpid());
	fflush(stdout);
	for (int i = 0; i < seconds * 10 && !stopping; i++)
		usleep(100 * 1000);
	stopping = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	return 0;
}
