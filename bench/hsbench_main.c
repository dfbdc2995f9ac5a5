/* hsbench: a TLS handshake load generator. N concurrent connections, each
 * connecting, optionally doing a STARTTLS preamble, a full (or resumed)
 * handshake, an optional small request/response, then close_notify; for a
 * duration or a count. Reports handshakes/s, latency percentiles, failures
 * by reason and its own CPU use, as a table and as JSON.
 * Trust: a client of servers under test; it holds no secret (the CA file
 * it reads is public). Touches only the sockets it opens and the JSON file
 * it is told to write. Every run is bounded in time (BENCH_MAX_DURATION_S). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench/bench.h"

#define MAX_EVENTS 512
#define TIMEOUT_SCAN_NS 10000000ULL     /* look for expired connections every 10 ms */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hsbench [options] HOST:PORT\n"
		"  -c N                concurrent connections (default 1, max %d)\n"
		"  -t SECONDS          run for SECONDS (default %.0f; hard cap %.0f)\n"
		"  -n COUNT            stop after COUNT connections (bounded by -t, default cap %.0f s)\n"
		"  --starttls P        smtp | imap | pop: plaintext preamble before TLS\n"
		"  --tls1.2 | --tls1.3 only this version (default: 1.2 to 1.3)\n"
		"  --groups LIST       e.g. X25519:P-256\n"
		"  --sigalgs LIST      e.g. ecdsa_secp256r1_sha256 or rsa_pss_rsae_sha256 (picks the server key)\n"
		"  --ciphers LIST      TLS 1.2 cipher list\n"
		"  --cafile FILE       verify the server against FILE\n"
		"  --no-verify         do not verify the server (one of --cafile, --no-verify is required)\n"
		"  --sni NAME          server name (and, when verifying, the name checked)\n"
		"  --resume M          tickets | cache: first handshake per slot full, later ones resumed\n"
		"  --request BYTES     send BYTES after the handshake (C escapes: \\r \\n \\t \\\\ \\xHH)\n"
		"  --expect-bytes N    read N bytes after the handshake before closing\n"
		"  --timeout MS        per connection, connect start to handshake done (and to the\n"
		"                      response or ticket, if any; default 5000); the close gets <= 1 s more\n"
		"  --cpu N             pin hsbench to CPU N\n"
		"  --json FILE         write the JSON report to FILE ('-': stdout)\n"
		"  --label TEXT        a name for this run, copied into the report\n"
		"  -q                  no table on stdout\n",
		BENCH_MAX_CONCURRENCY, BENCH_DEFAULT_DURATION_S, BENCH_MAX_DURATION_S,
		BENCH_COUNT_DEFAULT_CAP_S);
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0.0 || v > BENCH_MAX_DURATION_S)
		return -1;
	*out = v;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* C-style escapes into a bounded buffer: 0 or -1. */
static int parse_request(const char *s, unsigned char *buf, size_t cap, size_t *len)
{
	size_t n = 0;

	while (*s) {
		int ch = (unsigned char)*s++;

		if (ch == '\\') {
			switch (*s++) {
			case 'r': ch = '\r'; break;
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case '\\': ch = '\\'; break;
			case 'x': {
				int hi = hexval(s[0]), lo = hi >= 0 ? hexval(s[1]) : -1;

				if (lo < 0)
					return -1;
				ch = hi * 16 + lo;
				s += 2;
				break;
			}
			default: return -1;
			}
		}
		if (n == cap)
			return -1;
		buf[n++] = (unsigned char)ch;
	}
	*len = n;
	return 0;
}

/* HOST:PORT or [V6]:PORT, resolved once. */
static int parse_target(struct bench_opts *o, const char *s)
{
	char host[256];
	const char *colon, *port, *h = s;
	size_t hl;
	struct addrinfo hints, *ai = NULL;
	int r;

	if ((size_t)snprintf(o->target, sizeof(o->target), "%s", s) >= sizeof(o->target))
		return -1;
	if (*s == '[') {
		colon = strstr(s, "]:");
		if (colon == NULL)
			return -1;
		h = s + 1;
		hl = (size_t)(colon - h);
		port = colon + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hl == 0 || hl >= sizeof(host) || *port == '\0')
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0) {
		fprintf(stderr, "hsbench: %s: %s\n", s, gai_strerror(r));
		return -1;
	}
	if (ai->ai_addrlen > sizeof(o->addr)) {
		freeaddrinfo(ai);
		return -1;
	}
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

enum {
	OPT_STARTTLS = 256, OPT_TLS12, OPT_TLS13, OPT_GROUPS, OPT_SIGALGS, OPT_CIPHERS,
	OPT_CAFILE, OPT_NO_VERIFY, OPT_SNI, OPT_RESUME, OPT_REQUEST, OPT_EXPECT, OPT_TIMEOUT,
	OPT_CPU, OPT_JSON, OPT_LABEL, OPT_HELP
};

static const struct option long_opts[] = {
	{ "starttls", required_argument, NULL, OPT_STARTTLS },
	{ "tls1.2", no_argument, NULL, OPT_TLS12 },
	{ "tls1.3", no_argument, NULL, OPT_TLS13 },
	{ "groups", required_argument, NULL, OPT_GROUPS },
	{ "sigalgs", required_argument, NULL, OPT_SIGALGS },
	{ "ciphers", required_argument, NULL, OPT_CIPHERS },
	{ "cafile", required_argument, NULL, OPT_CAFILE },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "sni", required_argument, NULL, OPT_SNI },
	{ "resume", required_argument, NULL, OPT_RESUME },
	{ "request", required_argument, NULL, OPT_REQUEST },
	{ "expect-bytes", required_argument, NULL, OPT_EXPECT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "cpu", required_argument, NULL, OPT_CPU },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 }
};

static int bad(const char *what, const char *val)
{
	fprintf(stderr, "hsbench: bad %s: %s (see --help)\n", what, val);
	return -1;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	long v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->concurrency = 1;
	o->duration_s = BENCH_DEFAULT_DURATION_S;
	o->cpu = -1;
	o->timeout_ms = 5000;
	while ((ch = getopt_long(argc, argv, "c:t:n:qh", long_opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (parse_long(optarg, 1, BENCH_MAX_CONCURRENCY, &o->concurrency) < 0)
				return bad("-c", optarg);
			break;
		case 't':
			if (parse_seconds(optarg, &o->duration_s) < 0)
				return bad("-t (seconds, at most 3600)", optarg);
			o->duration_given = 1;
			break;
		case 'n':
			if (parse_long(optarg, 1, LONG_MAX / 2, &o->count) < 0)
				return bad("-n", optarg);
			break;
		case 'q': o->quiet = 1; break;
		case OPT_STARTTLS:
			if (strcmp(optarg, "smtp") == 0) o->starttls = BENCH_ST_SMTP;
			else if (strcmp(optarg, "imap") == 0) o->starttls = BENCH_ST_IMAP;
			else if (strcmp(optarg, "pop") == 0 || strcmp(optarg, "pop3") == 0) o->starttls = BENCH_ST_POP;
			else return bad("--starttls (smtp, imap, pop)", optarg);
			break;
		case OPT_TLS12: o->tls_version = TLS1_2_VERSION; break;
		case OPT_TLS13: o->tls_version = TLS1_3_VERSION; break;
		case OPT_GROUPS: o->groups = optarg; break;
		case OPT_SIGALGS: o->sigalgs = optarg; break;
		case OPT_CIPHERS: o->ciphers = optarg; break;
		case OPT_CAFILE: o->cafile = optarg; break;
		case OPT_NO_VERIFY: o->no_verify = 1; break;
		case OPT_SNI: o->sni = optarg; break;
		case OPT_RESUME:
			if (strcmp(optarg, "tickets") == 0) o->resume = BENCH_RESUME_TICKETS;
			else if (strcmp(optarg, "cache") == 0) o->resume = BENCH_RESUME_CACHE;
			else return bad("--resume (tickets, cache)", optarg);
			break;
		case OPT_REQUEST:
			if (parse_request(optarg, o->request, sizeof(o->request), &o->request_len) < 0)
				return bad("--request (bad escape or over 64 KiB)", optarg);
			break;
		case OPT_EXPECT:
			if (parse_long(optarg, 0, BENCH_MAX_EXPECT, &o->expect_bytes) < 0)
				return bad("--expect-bytes", optarg);
			break;
		case OPT_TIMEOUT:
			if (parse_long(optarg, 1, BENCH_MAX_TIMEOUT_MS, &o->timeout_ms) < 0)
				return bad("--timeout (ms)", optarg);
			break;
		case OPT_CPU:
			if (parse_long(optarg, 0, CPU_SETSIZE - 1, &v) < 0)
				return bad("--cpu", optarg);
			o->cpu = (int)v;
			break;
		case OPT_JSON: o->json_path = optarg; break;
		case OPT_LABEL: o->label = optarg; break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -1;
	}
	if (o->cafile == NULL && !o->no_verify) {
		fprintf(stderr, "hsbench: give --cafile FILE or --no-verify\n");
		return -1;
	}
	if (o->cafile != NULL && o->no_verify) {
		fprintf(stderr, "hsbench: --cafile and --no-verify exclude each other\n");
		return -1;
	}
	if (o->count > 0 && !o->duration_given)
		o->duration_s = BENCH_COUNT_DEFAULT_CAP_S;
	if (parse_target(o, argv[optind]) < 0)
		return bad("target (HOST:PORT)", argv[optind]);
	return 0;
}

static void print_ssl_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	fprintf(stderr, "hsbench: %s\n", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "  %s\n", buf);
	}
}

static SSL_CTX *make_ctx(const struct bench_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		print_ssl_errors("SSL_CTX_new failed");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, o->tls_version ? o->tls_version : TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, o->tls_version ? o->tls_version : TLS1_3_VERSION) != 1) {
		print_ssl_errors("setting the TLS versions failed");
		goto fail;
	}
	if (o->groups && SSL_CTX_set1_groups_list(ctx, o->groups) != 1) {
		print_ssl_errors("bad --groups");
		goto fail;
	}
	if (o->sigalgs && SSL_CTX_set1_sigalgs_list(ctx, o->sigalgs) != 1) {
		print_ssl_errors("bad --sigalgs");
		goto fail;
	}
	if (o->ciphers && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
		print_ssl_errors("bad --ciphers");
		goto fail;
	}
	if (o->cafile) {
		if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
			print_ssl_errors("cannot load --cafile");
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (o->resume == BENCH_RESUME_NONE) {
		/* nothing to resume from: every handshake is full */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, hs_conn_new_session_cb);
		/* TLS 1.2: session-ID resumption from the server's cache (RFC 5246
		 * 7.4.1.2). TLS 1.3 always resumes by ticket; whether it is stateful
		 * is the server's choice. */
		if (o->resume == BENCH_RESUME_CACHE)
			SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("hsbench: getrlimit");
		return -1;
	}
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && (long)rl.rlim_max < need) {
			fprintf(stderr, "hsbench: -c needs %ld descriptors, the hard limit is %ld\n",
				need, (long)rl.rlim_max);
			return -1;
		}
		rl.rlim_cur = (rlim_t)need;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			perror("hsbench: setrlimit");
			return -1;
		}
	}
	return 0;
}

static double tv_s(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* The event loop: keeps every slot busy until the deadline (or the count),
 * then ends what is in flight. */
static int run_bench(struct hs_run *run, struct hs_conn *conns, size_t *ready)
{
	const struct bench_opts *o = run->opts;
	struct epoll_event evs[MAX_EVENTS];
	struct rusage ru0, ru1;
	uint64_t t0, deadline, now, next_scan, end = 0;
	size_t i;

	if (getrusage(RUSAGE_SELF, &ru0) < 0) {
		perror("hsbench: getrusage");
		return -1;
	}
	t0 = hs_now_ns();
	deadline = t0 + (uint64_t)(o->duration_s * 1e9);
	next_scan = t0 + TIMEOUT_SCAN_NS;
	for (;;) {
		uint64_t wake;
		int n, wait_ms;

		now = hs_now_ns();
		if (interrupted || now >= deadline) {
			/* the window ends here; what is still in flight is neither
			 * a success nor a failure (events that came after the
			 * deadline were not processed, so nothing late is counted) */
			end = now;
			for (i = 0; i < (size_t)o->concurrency; i++)
				hs_conn_abort(run, hs_conn_at(conns, i));
			break;
		}
		if (o->count > 0 && run->started >= (uint64_t)o->count)
			run->stopping = 1;
		/* start idle slots; one whose start failed at once waits a moment */
		wake = deadline;
		if (!run->stopping) {
			size_t k, n_idle = run->n_idle, n_ready = 0;

			run->n_idle = 0;
			for (k = 0; k < n_idle; k++) {
				size_t idx = run->idle[k];
				uint64_t nb = hs_conn_not_before(hs_conn_at(conns, idx));

				if (nb > now) {
					run->idle[run->n_idle++] = idx;
					if (nb < wake)
						wake = nb;
				} else {
					ready[n_ready++] = idx;
				}
			}
			/* a start that fails at once puts its slot back on run->idle */
			for (k = 0; k < n_ready; k++) {
				if (o->count > 0 && run->started >= (uint64_t)o->count) {
					run->idle[run->n_idle++] = ready[k];
					continue;
				}
				if (hs_conn_start(run, hs_conn_at(conns, ready[k]), now) < 0 &&
				    hs_conn_not_before(hs_conn_at(conns, ready[k])) < wake)
					wake = hs_conn_not_before(hs_conn_at(conns, ready[k]));
			}
		}
		if (run->stopping && run->active == 0) {
			end = now;
			break;
		}
		if (wake > next_scan)
			wake = next_scan;
		wait_ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		n = epoll_wait(run->epfd, evs, MAX_EVENTS, wait_ms);
		if (n < 0 && errno != EINTR) {
			perror("hsbench: epoll_wait");
			return -1;
		}
		now = hs_now_ns();
		if (interrupted || now >= deadline)
			continue;
		for (int k = 0; k < n; k++)
			hs_conn_event(run, evs[k].data.ptr, evs[k].events);
		if (now >= next_scan) {
			for (i = 0; i < (size_t)o->concurrency; i++)
				hs_conn_check_timeout(run, hs_conn_at(conns, i), now);
			next_scan = now + TIMEOUT_SCAN_NS;
		}
	}
	if (getrusage(RUSAGE_SELF, &ru1) < 0) {
		perror("hsbench: getrusage");
		return -1;
	}
	run->res->wall_s = (double)(end - t0) / 1e9;
	run->res->cpu_user_s = tv_s(&ru1.ru_utime) - tv_s(&ru0.ru_utime);
	run->res->cpu_sys_s = tv_s(&ru1.ru_stime) - tv_s(&ru0.ru_stime);
	return 0;
}

int main(int argc, char **argv)
{
	static struct bench_opts opts;   /* static: holds a 64 KiB request buffer */
	static struct hs_results res;
	struct hs_run run;
	struct hs_conn *conns = NULL;
	size_t *ready = NULL;            /* run_bench's scratch list of slots to start */
	struct sigaction sa;
	int rc = 1;
	size_t i;

	if (parse_opts(argc, argv, &opts) < 0)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	/* a peer that resets while we write must not kill the run */
	if (sigaction(SIGPIPE, &sa, NULL) < 0) {
		perror("hsbench: sigaction");
		return 1;
	}
	sa.sa_handler = on_signal;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
		perror("hsbench: sigaction");
		return 1;
	}
	if (opts.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opts.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			fprintf(stderr, "hsbench: cannot pin to CPU %d: %s\n", opts.cpu, strerror(errno));
			return 1;
		}
	}
	if (raise_nofile(opts.concurrency + 32) < 0)
		return 1;

	memset(&run, 0, sizeof(run));
	hs_hist_init(&res.lat_total);
	hs_hist_init(&res.lat_tls);
	run.opts = &opts;
	run.res = &res;
	run.epfd = -1;
	run.ctx = make_ctx(&opts);
	if (run.ctx == NULL)
		goto out;
	run.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (run.epfd < 0) {
		perror("hsbench: epoll_create1");
		goto out;
	}
	conns = hs_conns_new((size_t)opts.concurrency);
	run.idle = calloc((size_t)opts.concurrency, sizeof(*run.idle));
	ready = calloc((size_t)opts.concurrency, sizeof(*ready));
	if (conns == NULL || run.idle == NULL || ready == NULL) {
		fprintf(stderr, "hsbench: out of memory\n");
		goto out;
	}
	/* all slots idle, lowest index on top */
	for (i = 0; i < (size_t)opts.concurrency; i++)
		run.idle[run.n_idle++] = (size_t)opts.concurrency - 1 - i;
	if (run_bench(&run, conns, ready) < 0)
		goto out;
	if (!opts.quiet)
		hs_report_table(stdout, &opts, &res);
	if (opts.json_path && hs_report_json(opts.json_path, &opts, &res) < 0) {
		fprintf(stderr, "hsbench: cannot write %s: %s\n", opts.json_path, strerror(errno));
		goto out;
	}
	rc = (res.handshakes > 0) ? 0 : 3;
out:
	hs_conns_free(&conns, (size_t)opts.concurrency);
	free(run.idle);
	free(ready);
	if (run.epfd >= 0)
		(void)close(run.epfd);
	SSL_CTX_free(run.ctx);
	return rc;
}
