/* Unit tests for the client name lookups (mailcore/mc_resolve.h): the pure
 * parts (address keys, the PTR name check, the bounded cache with its TTL),
 * then the resolver on a real event loop with real lookups: 127.0.0.1 is
 * "localhost" in /etc/hosts and its forward lookup gives it back. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <cmocka.h>
#include <event2/event.h>

#include "mailcore/mc_resolve.h"

static struct sockaddr_storage ip(const char *text, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_addr_key(void **state)
{
	struct sockaddr_storage v4 = ip("192.0.2.7", 25), v4b = ip("192.0.2.7", 4000);
	struct sockaddr_storage mapped = ip("::ffff:192.0.2.7", 1), v6 = ip("2001:db8::7", 1);
	struct sockaddr_storage other = ip("192.0.2.8", 25);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	uint8_t k1[MC_ADDR_KEY_LEN], k2[MC_ADDR_KEY_LEN];

	(void)state;
	assert_int_equal(mc_addr_key(SA(v4), k1), 0);
	assert_int_equal(k1[0], 4);
	assert_int_equal(mc_addr_key(SA(mapped), k2), 0);
	assert_memory_equal(k1, k2, MC_ADDR_KEY_LEN);
	assert_int_equal(mc_addr_key(SA(v6), k2), 0);
	assert_int_equal(k2[0], 6);
	assert_int_equal(mc_addr_key((const struct sockaddr *)&un, k1), -1);
	assert_int_equal(mc_addr_key(NULL, k1), -1);

	assert_true(mc_addr_same(SA(v4), SA(v4b)));      /* ports do not count */
	assert_true(mc_addr_same(SA(v4), SA(mapped)));
	assert_false(mc_addr_same(SA(v4), SA(other)));
	assert_false(mc_addr_same(SA(v4), SA(v6)));
	assert_false(mc_addr_same(SA(v4), (const struct sockaddr *)&un));
}

static void expect_clean(const char *in, const char *out)
{
	char buf[600];

	snprintf(buf, sizeof(buf), "%s", in);
	if (out == NULL) {
		assert_int_equal(mc_name_clean(buf), -1);
		return;
	}
	assert_int_equal(mc_name_clean(buf), 0);
	assert_string_equal(buf, out);
}

static void test_name_clean(void **state)
{
	char label63[64], label64[65], long_name[300];

	(void)state;
	expect_clean("localhost", "localhost");
	expect_clean("Mail.Example.COM.", "mail.example.com");
	expect_clean("1host.example", "1host.example");
	expect_clean("_spf.example.org", "_spf.example.org");
	expect_clean("a-b.c", "a-b.c");
	expect_clean("", NULL);
	expect_clean(".", NULL);
	expect_clean("a..b", NULL);
	expect_clean(".a", NULL);
	expect_clean("a b.example", NULL);
	expect_clean("a\tb", NULL);
	expect_clean("evil\r\nX-Header: 1", NULL);
	expect_clean("caf\xc3\xa9.example", NULL);
	/* a PTR that spells an address must never pose as one */
	expect_clean("10.1.2.3", NULL);
	expect_clean("10.1.2.3.", NULL);
	expect_clean("host.123", NULL);
	expect_clean("::1", NULL);

	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	expect_clean(label63, label63);
	expect_clean(label64, NULL);
	/* 253 octets is the most; 254 is too long */
	memset(long_name, 'b', sizeof(long_name));
	for (size_t i = 50; i < 253; i += 51)
		long_name[i] = '.';
	long_name[253] = '\0';
	expect_clean(long_name, long_name);
	long_name[253] = 'c';
	long_name[254] = '\0';
	expect_clean(long_name, NULL);
}

static void put_name(struct mc_name_cache *c, const char *addr, const char *name, bool verified,
		     long long now)
{
	struct sockaddr_storage ss = ip(addr, 0);
	struct mc_name_result r = {.verified = verified};
	uint8_t key[MC_ADDR_KEY_LEN];

	snprintf(r.name, sizeof(r.name), "%s", name);
	assert_int_equal(mc_addr_key(SA(ss), key), 0);
	mc_name_cache_put(c, key, &r, now);
}

static bool get_name(const struct mc_name_cache *c, const char *addr, long long now,
		     struct mc_name_result *r)
{
	struct sockaddr_storage ss = ip(addr, 0);
	uint8_t key[MC_ADDR_KEY_LEN];

	assert_int_equal(mc_addr_key(SA(ss), key), 0);
	return mc_name_cache_get(c, key, now, r);
}

static void test_cache(void **state)
{
	struct mc_name_cache *c = mc_name_cache_new(4, 1000);
	struct mc_name_result r;
	char addr[32];

	(void)state;
	assert_false(get_name(c, "192.0.2.1", 0, &r));
	put_name(c, "192.0.2.1", "one.example", true, 100);
	put_name(c, "192.0.2.2", "", false, 100);           /* no name is an answer too */
	put_name(c, "192.0.2.3", "spoof.example", false, 100);
	assert_true(get_name(c, "192.0.2.1", 500, &r));
	assert_string_equal(r.name, "one.example");
	assert_true(r.verified);
	assert_string_equal(r.source, "cache");
	assert_true(get_name(c, "::ffff:192.0.2.1", 500, &r)); /* the same client */
	assert_true(get_name(c, "192.0.2.2", 500, &r));
	assert_string_equal(r.name, "");
	assert_false(r.verified);
	assert_true(get_name(c, "192.0.2.3", 500, &r));
	assert_false(r.verified);
	/* TTL: gone at stored + ttl, and when the clock went back */
	assert_true(get_name(c, "192.0.2.1", 1099, &r));
	assert_false(get_name(c, "192.0.2.1", 1100, &r));
	assert_false(get_name(c, "192.0.2.1", 99, &r));
	assert_int_equal(mc_name_cache_count(c, 500), 3);
	assert_int_equal(mc_name_cache_count(c, 1100), 0);

	/* a new answer replaces the old one for the same address */
	put_name(c, "192.0.2.1", "two.example", true, 200);
	assert_true(get_name(c, "192.0.2.1", 300, &r));
	assert_string_equal(r.name, "two.example");
	assert_int_equal(mc_name_cache_count(c, 300), 3);

	/* full: the oldest goes, the count never passes the capacity */
	put_name(c, "192.0.2.4", "four.example", true, 300);
	put_name(c, "192.0.2.5", "five.example", true, 400);
	assert_int_equal(mc_name_cache_count(c, 450), 4);
	assert_false(get_name(c, "192.0.2.2", 450, &r));      /* stored at 100: the oldest */
	assert_true(get_name(c, "192.0.2.5", 450, &r));
	for (unsigned i = 10; i < 100; i++) {
		snprintf(addr, sizeof(addr), "198.51.100.%u", i);
		put_name(c, addr, "many.example", true, 500 + i);
	}
	assert_int_equal(mc_name_cache_count(c, 600), 4);
	assert_true(get_name(c, "198.51.100.99", 600, &r));
	assert_false(get_name(c, "198.51.100.10", 600, &r));
	mc_name_cache_free(&c);
	assert_null(c);
	mc_name_cache_free(&c);
}

/* ---------------------------------------------------------------- resolver */

struct answer {
	int calls;
	struct mc_name_result res;
	struct event_base *base;
};

static void on_answer(void *arg, const struct mc_name_result *res)
{
	struct answer *a = arg;

	a->calls++;
	a->res = *res;
}

static void on_never(void *arg, const struct mc_name_result *res)
{
	(void)arg;
	(void)res;
	fail_msg("a cancelled request was answered");
}

static struct mc_resolve_config config(unsigned max_lookups, long timeout_ms)
{
	struct mc_resolve_config cfg = {
		.mode = MC_DNS_WHEN_NEEDED,
		.timeout_ms = timeout_ms,
		.threads = 2,
		.max_lookups = max_lookups,
		.cache_size = 16,
		.cache_ttl_ms = 60000,
	};
	return cfg;
}

static void run_until(struct event_base *base, const int *calls, int want)
{
	/* bounded by the lookups' deadline, which answers every request */
	while (*calls < want)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
}

static void test_resolver_localhost(void **state)
{
	struct event_base *base = event_base_new();
	struct mc_resolve_config cfg = config(8, 30000);
	struct mc_resolver *r;
	struct sockaddr_storage lo = ip("127.0.0.1", 5555);
	struct answer a = {0}, b = {0};
	char *error = NULL;

	(void)state;
	r = mc_resolver_new(base, &cfg, &error);
	assert_non_null(r);
	mc_resolve_start(r, SA(lo), on_answer, &a);
	assert_int_equal(a.calls, 0);    /* never from inside start */
	run_until(base, &a.calls, 1);
	assert_string_equal(a.res.name, "localhost");
	assert_true(a.res.verified);
	assert_string_equal(a.res.source, "dns");
	assert_int_equal(mc_resolver_in_flight(r), 0);

	/* the second time from the cache, still later on the loop */
	mc_resolve_start(r, SA(lo), on_answer, &b);
	assert_int_equal(b.calls, 0);
	run_until(base, &b.calls, 1);
	assert_string_equal(b.res.name, "localhost");
	assert_true(b.res.verified);
	assert_string_equal(b.res.source, "cache");
	assert_int_equal(a.calls, 1);
	mc_resolver_free(&r);
	assert_null(r);
	event_base_free(base);
}

static void test_resolver_no_address_and_busy(void **state)
{
	struct event_base *base = event_base_new();
	struct mc_resolve_config cfg = config(1, 30000);
	struct mc_resolver *r;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct sockaddr_storage a1 = ip("127.0.0.1", 1), a2 = ip("::1", 1);
	struct answer a = {0}, b = {0}, c = {0};
	char *error = NULL;

	(void)state;
	cfg.cache_size = 0;
	r = mc_resolver_new(base, &cfg, &error);
	assert_non_null(r);
	mc_resolve_start(r, (const struct sockaddr *)&un, on_answer, &a);
	mc_resolve_start(r, SA(a1), on_answer, &b);
	/* one lookup in flight is the limit: the next client goes on unnamed */
	assert_int_equal(mc_resolver_in_flight(r), 1);
	mc_resolve_start(r, SA(a2), on_answer, &c);
	run_until(base, &a.calls, 1);
	run_until(base, &c.calls, 1);
	assert_string_equal(a.res.source, "no-address");
	assert_string_equal(a.res.name, "");
	assert_string_equal(c.res.source, "busy");
	assert_string_equal(c.res.name, "");
	run_until(base, &b.calls, 1);
	assert_string_equal(b.res.name, "localhost");
	assert_int_equal(a.calls + b.calls + c.calls, 3);
	mc_resolver_free(&r);
	event_base_free(base);
}

static void test_resolver_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct mc_resolve_config cfg = config(8, 30000);
	struct mc_resolver *r;
	struct sockaddr_storage lo = ip("127.0.0.1", 1);
	struct mc_resolve_req *req;
	struct answer after = {0};
	char *error = NULL;

	(void)state;
	r = mc_resolver_new(base, &cfg, &error);
	assert_non_null(r);
	/* the caller goes away first: the late answer only feeds the cache */
	req = mc_resolve_start(r, SA(lo), on_never, NULL);
	mc_resolve_cancel(&req);
	assert_null(req);
	mc_resolve_cancel(&req);
	while (mc_resolver_in_flight(r) > 0)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
	mc_resolve_start(r, SA(lo), on_answer, &after);
	run_until(base, &after.calls, 1);
	assert_string_equal(after.res.source, "cache");
	assert_string_equal(after.res.name, "localhost");

	/* cancelled while still on a pool thread, then the resolver is freed */
	cfg.cache_size = 0;
	mc_resolver_free(&r);
	r = mc_resolver_new(base, &cfg, &error);
	assert_non_null(r);
	req = mc_resolve_start(r, SA(lo), on_never, NULL);
	mc_resolve_cancel(&req);
	mc_resolver_free(&r);
	event_base_free(base);
}

/* A deadline shorter than any lookup can race the answer: whichever comes
 * first answers, exactly once, and the other is dropped safely. */
static void test_resolver_deadline_once(void **state)
{
	struct event_base *base = event_base_new();
	struct mc_resolve_config cfg = config(64, 0);
	struct mc_resolver *r;
	struct sockaddr_storage lo = ip("127.0.0.1", 1);
	struct answer a[20];
	char *error = NULL;

	(void)state;
	cfg.cache_size = 0;
	memset(a, 0, sizeof(a));
	r = mc_resolver_new(base, &cfg, &error);
	assert_non_null(r);
	for (size_t i = 0; i < 20; i++)
		mc_resolve_start(r, SA(lo), on_answer, &a[i]);
	for (size_t i = 0; i < 20; i++)
		run_until(base, &a[i].calls, 1);
	while (mc_resolver_in_flight(r) > 0)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
	for (size_t i = 0; i < 20; i++) {
		assert_int_equal(a[i].calls, 1);
		if (strcmp(a[i].res.source, "timeout") == 0)
			assert_string_equal(a[i].res.name, "");
		else
			assert_string_equal(a[i].res.name, "localhost");
	}
	mc_resolver_free(&r);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_key),
		cmocka_unit_test(test_name_clean),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_resolver_localhost),
		cmocka_unit_test(test_resolver_no_address_and_busy),
		cmocka_unit_test(test_resolver_cancel),
		cmocka_unit_test(test_resolver_deadline_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
