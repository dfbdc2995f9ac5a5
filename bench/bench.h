/* The face of bench/: hsbench, the TLS handshake load generator. Options,
 * the latency histogram (hs_stats.c), failure counting by reason, the
 * per-connection state machine (hs_conn.c), the STARTTLS preambles
 * (hs_starttls.c) and the table/JSON report (hs_report.c). The event loop
 * and option parsing live in hsbench_main.c. */
#ifndef SP_BENCH_H
#define SP_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

/* ---- limits ---- */
#define BENCH_MAX_CONCURRENCY 10000
#define BENCH_MAX_DURATION_S 3600.0      /* hard cap on any run */
#define BENCH_DEFAULT_DURATION_S 5.0
#define BENCH_COUNT_DEFAULT_CAP_S 120.0  /* -n without -t: still bounded */
#define BENCH_MAX_TIMEOUT_MS 600000L
#define BENCH_MAX_REQUEST 65536
#define BENCH_MAX_EXPECT (16L * 1024 * 1024)
#define BENCH_MAX_REASONS 48
#define BENCH_REASON_LEN 112
#define BENCH_LINE_MAX 4096              /* one STARTTLS preamble reply line */
#define BENCH_CLOSE_WAIT_MAX_MS 1000L    /* waiting for the peer's close */

/* ---- options ---- */
enum bench_starttls { BENCH_ST_NONE, BENCH_ST_SMTP, BENCH_ST_IMAP, BENCH_ST_POP };
enum bench_resume { BENCH_RESUME_NONE, BENCH_RESUME_TICKETS, BENCH_RESUME_CACHE };

struct bench_opts {
	char target[256];                 /* as given: HOST:PORT */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	long concurrency;
	double duration_s;                /* run length (or cap with -n) */
	int duration_given;
	long count;                       /* 0: run for duration_s */
	enum bench_starttls starttls;
	enum bench_resume resume;
	int tls_version;                  /* 0 (1.2..1.3), TLS1_2_VERSION, TLS1_3_VERSION */
	const char *groups;
	const char *sigalgs;
	const char *ciphers;              /* TLS 1.2 cipher list */
	const char *cafile;
	int no_verify;
	const char *sni;
	int cpu;                          /* -1: not pinned */
	const char *json_path;
	const char *label;
	long timeout_ms;                  /* connect start to handshake done */
	unsigned char request[BENCH_MAX_REQUEST];
	size_t request_len;
	long expect_bytes;
	int quiet;
};

/* ---- latency histogram (hs_stats.c) ----
 * Log-linear buckets over microseconds: exact below 128 us, then 64
 * sub-buckets per power of two (relative error under 1.6%), up to 2^32 us.
 * Fixed size: recording never allocates. */
#define HS_HIST_SUB_BITS 6
#define HS_HIST_BUCKETS ((32 - HS_HIST_SUB_BITS + 1) * (1 << HS_HIST_SUB_BITS))

struct hs_hist {
	uint64_t counts[HS_HIST_BUCKETS];
	uint64_t n;
	uint64_t min_us, max_us;
	double sum_us;
};

void hs_hist_init(struct hs_hist *h);
void hs_hist_record(struct hs_hist *h, uint64_t us);
/* The value (us) at or below which pct percent of samples lie; 0 if empty. */
double hs_hist_percentile(const struct hs_hist *h, double pct);
double hs_hist_mean(const struct hs_hist *h);

/* ---- failures by reason (hs_stats.c) ----
 * A bounded table: beyond BENCH_MAX_REASONS distinct reasons, further new
 * ones are counted under "other". */
struct hs_reason {
	char name[BENCH_REASON_LEN];
	uint64_t count;
};

struct hs_failures {
	struct hs_reason reasons[BENCH_MAX_REASONS];
	size_t n;
	uint64_t other;
	uint64_t total;
};

void hs_fail_count(struct hs_failures *f, const char *reason);

/* ---- run results ---- */
struct hs_negotiated {
	int seen;
	char version[16];
	char cipher[64];
	char group[32];
	char peer_key[32];                /* "RSA-2048", "EC-256" */
	char sig[32];                     /* server's signature: "RSA-PSS", "ECDSA" */
};

struct hs_results {
	uint64_t attempts;                /* connections started */
	uint64_t handshakes;              /* successful, full + resumed */
	uint64_t full;
	uint64_t resumed;
	uint64_t aborted_at_end;          /* in flight at the deadline: not counted */
	uint64_t close_timeouts;          /* peer did not close within the wait */
	struct hs_failures fail;
	struct hs_hist lat_total;         /* connect start -> handshake done */
	struct hs_hist lat_tls;           /* ClientHello -> handshake done */
	struct hs_negotiated neg;
	double wall_s;
	double cpu_user_s, cpu_sys_s;
};

/* ---- STARTTLS preambles (hs_starttls.c) ----
 * Pure: fed one reply line at a time (without CRLF), it says what to do
 * next. No I/O. */
enum hs_st_action {
	HS_ST_MORE,                       /* read another line */
	HS_ST_SEND,                       /* send *cmd, then read lines */
	HS_ST_TLS,                        /* the server said go: start TLS now */
	HS_ST_REFUSED                     /* the server refused or spoke nonsense */
};

struct hs_starttls {
	enum bench_starttls proto;
	int stage;
};

void hs_starttls_init(struct hs_starttls *st, enum bench_starttls proto);
enum hs_st_action hs_starttls_line(struct hs_starttls *st, const char *line, size_t len,
				   const char **cmd);
const char *hs_starttls_name(enum bench_starttls proto);

/* ---- connections (hs_conn.c) ---- */
struct hs_conn;

struct hs_run {
	const struct bench_opts *opts;
	SSL_CTX *ctx;
	int epfd;
	struct hs_results *res;
	uint64_t started;                 /* connections started */
	int stopping;                     /* no new connections */
	size_t active;                    /* connections in flight */
	size_t *idle;                     /* stack of idle slot indexes */
	size_t n_idle;
};

/* Allocates n idle connection slots (NULL on ENOMEM); hs_conns_free
 * releases them (and any session they keep) and sets *conns to NULL. */
struct hs_conn *hs_conns_new(size_t n);
void hs_conns_free(struct hs_conn **conns, size_t n);
struct hs_conn *hs_conn_at(struct hs_conn *conns, size_t i);
/* Starts a new connection on an idle slot: 0, or -1 when it failed at once
 * (counted; the slot is idle again and pushed on run->idle). */
int hs_conn_start(struct hs_run *run, struct hs_conn *c, uint64_t now_ns);
/* Earliest time (ns) an idle slot may start again (a slot whose last start
 * failed at once waits a moment, so a refused port is not a busy loop). */
uint64_t hs_conn_not_before(const struct hs_conn *c);
/* Moves the state machine after epoll reported events on its socket. */
void hs_conn_event(struct hs_run *run, struct hs_conn *c, uint32_t events);
/* Fails the connection if its deadline passed. */
void hs_conn_check_timeout(struct hs_run *run, struct hs_conn *c, uint64_t now_ns);
int hs_conn_idle(const struct hs_conn *c);
/* Ends a connection in flight at the deadline without counting it. */
void hs_conn_abort(struct hs_run *run, struct hs_conn *c);
/* For SSL_CTX_sess_set_new_cb: keeps the newest session in its slot. */
int hs_conn_new_session_cb(SSL *ssl, SSL_SESSION *sess);

uint64_t hs_now_ns(void);

/* ---- report (hs_report.c) ---- */
void hs_report_table(FILE *out, const struct bench_opts *o, const struct hs_results *r);
/* Writes the JSON report to path (temp file + rename): 0 or -1 with errno. */
int hs_report_json(const char *path, const struct bench_opts *o, const struct hs_results *r);
/* > this share of one core: the generator, not the server, was the limit. */
#define BENCH_GENERATOR_BOUND 0.90

#endif
