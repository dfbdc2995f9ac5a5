/* hsbench's report: a human table on stdout and the JSON file the
 * comparison script (bench/run_bench.py) reads. Rates are per second of
 * wall time of the measured window; latencies in milliseconds; CPU is the
 * generator's own (getrusage), so a reader can tell whether the generator
 * rather than the server was the limit. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"

static const char *version_name(int v)
{
	if (v == TLS1_2_VERSION)
		return "1.2";
	if (v == TLS1_3_VERSION)
		return "1.3";
	return "1.2-1.3";
}

static const char *resume_name(enum bench_resume r)
{
	switch (r) {
	case BENCH_RESUME_TICKETS: return "tickets";
	case BENCH_RESUME_CACHE: return "cache";
	case BENCH_RESUME_NONE: break;
	}
	return "none";
}

static double rate(const struct hs_results *r)
{
	return r->wall_s > 0.0 ? (double)r->handshakes / r->wall_s : 0.0;
}

static double cpu_total(const struct hs_results *r)
{
	return r->cpu_user_s + r->cpu_sys_s;
}

static double cpu_util(const struct hs_results *r)
{
	return r->wall_s > 0.0 ? cpu_total(r) / r->wall_s : 0.0;
}

static void lat_row(FILE *out, const char *name, const struct hs_hist *h)
{
	fprintf(out, "  %-20s %9.3f %9.3f %9.3f %9.3f %9.3f\n", name,
		hs_hist_percentile(h, 50.0) / 1000.0, hs_hist_percentile(h, 90.0) / 1000.0,
		hs_hist_percentile(h, 99.0) / 1000.0, hs_hist_mean(h) / 1000.0,
		(double)h->max_us / 1000.0);
}

void hs_report_table(FILE *out, const struct bench_opts *o, const struct hs_results *r)
{
	size_t i;

	fprintf(out, "hsbench%s%s%s: target %s, starttls %s, TLS %s, resume %s, %ld connections, %.2f s\n",
		o->label ? " [" : "", o->label ? o->label : "", o->label ? "]" : "",
		o->target, hs_starttls_name(o->starttls), version_name(o->tls_version),
		resume_name(o->resume), o->concurrency, r->wall_s);
	if (r->neg.seen)
		fprintf(out, "  negotiated           %s %s %s, server key %s, signature %s\n",
			r->neg.version, r->neg.cipher, r->neg.group[0] ? r->neg.group : "-",
			r->neg.peer_key[0] ? r->neg.peer_key : "-", r->neg.sig[0] ? r->neg.sig : "-");
	fprintf(out, "  handshakes           %llu ok (full %llu, resumed %llu), %llu failed, "
		"%llu aborted at end, %llu started\n",
		(unsigned long long)r->handshakes, (unsigned long long)r->full,
		(unsigned long long)r->resumed, (unsigned long long)r->fail.total,
		(unsigned long long)r->aborted_at_end, (unsigned long long)r->attempts);
	fprintf(out, "  rate                 %.1f handshakes/s\n", rate(r));
	fprintf(out, "  latency (ms)         %9s %9s %9s %9s %9s   (%s)\n", "p50", "p90", "p99", "mean", "max",
		o->resume != BENCH_RESUME_NONE ? "resumed handshakes" : "full handshakes");
	lat_row(out, "connect -> done", &r->lat_total);
	lat_row(out, "TLS only", &r->lat_tls);
	if (r->fail.total == 0) {
		fprintf(out, "  failures             none\n");
	} else {
		fprintf(out, "  failures             %llu\n", (unsigned long long)r->fail.total);
		for (i = 0; i < r->fail.n; i++)
			fprintf(out, "    %8llu  %s\n", (unsigned long long)r->fail.reasons[i].count,
				r->fail.reasons[i].name);
		if (r->fail.other)
			fprintf(out, "    %8llu  (other reasons: table full)\n", (unsigned long long)r->fail.other);
	}
	if (r->close_timeouts)
		fprintf(out, "  close timeouts       %llu (peer did not answer close_notify in time; not failures)\n",
			(unsigned long long)r->close_timeouts);
	fprintf(out, "  generator CPU        %.2f s (user %.2f, sys %.2f) = %.1f%% of one core%s%s\n",
		cpu_total(r), r->cpu_user_s, r->cpu_sys_s, 100.0 * cpu_util(r),
		o->cpu >= 0 ? ", pinned" : "",
		cpu_util(r) > BENCH_GENERATOR_BOUND ? "  << GENERATOR-BOUND: the result measures hsbench, not the server" : "");
}

/* JSON string (RFC 8259 7): quote, backslash and control characters escaped. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s != NULL && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_lat(FILE *f, const struct hs_hist *h)
{
	fprintf(f, "{\"count\": %llu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"mean\": %.3f, "
		"\"min\": %.3f, \"max\": %.3f}",
		(unsigned long long)h->n, hs_hist_percentile(h, 50.0) / 1000.0,
		hs_hist_percentile(h, 90.0) / 1000.0, hs_hist_percentile(h, 99.0) / 1000.0,
		hs_hist_mean(h) / 1000.0, (double)h->min_us / 1000.0, (double)h->max_us / 1000.0);
}

static void json_write(FILE *f, const struct bench_opts *o, const struct hs_results *r)
{
	size_t i;

	fprintf(f, "{\n  \"tool\": \"hsbench\",\n  \"format\": 1,\n  \"label\": ");
	if (o->label)
		json_str(f, o->label);
	else
		fputs("null", f);
	fprintf(f, ",\n  \"target\": ");
	json_str(f, o->target);
	fprintf(f, ",\n  \"starttls\": \"%s\",\n  \"tls_version\": \"%s\",\n  \"resume\": \"%s\",\n",
		hs_starttls_name(o->starttls), version_name(o->tls_version), resume_name(o->resume));
	fprintf(f, "  \"groups\": ");
	if (o->groups) json_str(f, o->groups); else fputs("null", f);
	fprintf(f, ",\n  \"sigalgs\": ");
	if (o->sigalgs) json_str(f, o->sigalgs); else fputs("null", f);
	fprintf(f, ",\n  \"verify\": %s,\n  \"concurrency\": %ld,\n  \"count\": %ld,\n"
		"  \"duration_s\": %.3f,\n  \"timeout_ms\": %ld,\n  \"request_bytes\": %zu,\n"
		"  \"expect_bytes\": %ld,\n",
		o->no_verify ? "false" : "true", o->concurrency, o->count, o->duration_s,
		o->timeout_ms, o->request_len, o->expect_bytes);
	fprintf(f, "  \"wall_s\": %.6f,\n  \"attempts\": %llu,\n  \"handshakes\": %llu,\n"
		"  \"full_handshakes\": %llu,\n  \"resumed_handshakes\": %llu,\n"
		"  \"aborted_at_end\": %llu,\n  \"close_timeouts\": %llu,\n"
		"  \"handshakes_per_s\": %.3f,\n",
		r->wall_s, (unsigned long long)r->attempts, (unsigned long long)r->handshakes,
		(unsigned long long)r->full, (unsigned long long)r->resumed,
		(unsigned long long)r->aborted_at_end, (unsigned long long)r->close_timeouts, rate(r));
	fprintf(f, "  \"latency_ms\": {\n    \"measured\": \"%s\",\n    \"total\": ",
		o->resume != BENCH_RESUME_NONE ? "resumed" : "full");
	json_lat(f, &r->lat_total);
	fprintf(f, ",\n    \"tls\": ");
	json_lat(f, &r->lat_tls);
	fprintf(f, "\n  },\n  \"failures\": {\n    \"total\": %llu,\n    \"by_reason\": {",
		(unsigned long long)r->fail.total);
	for (i = 0; i < r->fail.n; i++) {
		fprintf(f, "%s\n      ", i ? "," : "");
		json_str(f, r->fail.reasons[i].name);
		fprintf(f, ": %llu", (unsigned long long)r->fail.reasons[i].count);
	}
	if (r->fail.other)
		fprintf(f, "%s\n      \"other\": %llu", r->fail.n ? "," : "", (unsigned long long)r->fail.other);
	fprintf(f, "%s}\n  },\n", r->fail.n || r->fail.other ? "\n    " : "");
	fprintf(f, "  \"negotiated\": ");
	if (r->neg.seen) {
		fprintf(f, "{\"version\": ");
		json_str(f, r->neg.version);
		fprintf(f, ", \"cipher\": ");
		json_str(f, r->neg.cipher);
		fprintf(f, ", \"group\": ");
		json_str(f, r->neg.group);
		fprintf(f, ", \"server_key\": ");
		json_str(f, r->neg.peer_key);
		fprintf(f, ", \"signature\": ");
		json_str(f, r->neg.sig);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\n  \"cpu\": {\"user_s\": %.6f, \"sys_s\": %.6f, \"total_s\": %.6f, "
		"\"utilisation\": %.4f, \"pinned_cpu\": %d, \"generator_bound\": %s, \"bound_threshold\": %.2f}\n}\n",
		r->cpu_user_s, r->cpu_sys_s, cpu_total(r), cpu_util(r), o->cpu,
		cpu_util(r) > BENCH_GENERATOR_BOUND ? "true" : "false", BENCH_GENERATOR_BOUND);
}

int hs_report_json(const char *path, const struct bench_opts *o, const struct hs_results *r)
{
	char tmp[4096];
	FILE *f;
	int fd, saved;

	if (strcmp(path, "-") == 0) {
		json_write(stdout, o, r);
		return fflush(stdout) == 0 ? 0 : -1;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		saved = errno;
		(void)close(fd);
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	json_write(f, o, r);
	if (fflush(f) != 0 || ferror(f) || fsync(fd) != 0) {
		saved = errno;
		(void)fclose(f);
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		saved = errno;
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}
