/* The PKCS#11 test double (lib/p11_testdouble.so) over SoftHSM2, driven
 * through pkcs11/: it says it is a test double, adds latency, caps
 * concurrent operations, fails every Nth or every operation, hangs until
 * switched off (or its maximum), refuses sessions beyond a cap (our pool
 * shrinks), and counts logins (a wrong PIN is tried exactly once).
 * The double re-reads its config at most every 100 ms: set_conf waits that
 * documented period out after each change. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/objects.h>

#include "certdb/certdb.h"
#include "common/log.h"
#include "pkcs11/pkcs11.h"

#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"
#define TOKEN "SP Double"
#define TOKEN2 "SP Double Other"
#define PIN "7654321"

static char dir[64], conf_path[128], module_path[4096];
static struct p11_ctx *ctx;
static struct p11_token *tok;
static struct p11_key *key;
static struct sp_pinfile *pins;
static int (*counters)(unsigned long *, unsigned long *, unsigned long *);

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Replaces the double's config by rename: the double sees the new inode at
 * its next operation, so no wait is needed. */
static void set_conf(const char *settings)
{
	char text[1024], tmp[160];

	snprintf(text, sizeof(text), "module = " SOFTHSM "\n%s\n", settings);
	snprintf(tmp, sizeof(tmp), "%s.tmp", conf_path);
	write_file(tmp, text, 0644);
	assert_int_equal(rename(tmp, conf_path), 0);
}

static int group_setup(void **state)
{
	char buf[512], *err = NULL, exe[4096];
	struct p11_ctx_settings set = { NULL, false, 8 };
	ssize_t n;
	void *h;

	(void)state;
	/* builddir/bin/tests/test_p11_testdouble -> builddir/lib/p11_testdouble.so */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	snprintf(module_path, sizeof(module_path), "%s/lib/p11_testdouble.so",
		 dirname(dirname(dirname(exe))));
	if (getenv("SP_BUILDDIR") != NULL)
		snprintf(module_path, sizeof(module_path), "%s/lib/p11_testdouble.so",
			 getenv("SP_BUILDDIR"));
	snprintf(dir, sizeof(dir), "/tmp/sp-p11d-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(buf, sizeof(buf), "%s/tokens", dir);
	mkdir(buf, 0700);
	snprintf(buf, sizeof(buf), "%s/softhsm2.conf", dir);
	setenv("SOFTHSM2_CONF", buf, 1);
	{
		char conf[256];
		snprintf(conf, sizeof(conf), "directories.tokendir = %s/tokens\n", dir);
		write_file(buf, conf, 0600);
	}
	if (system("softhsm2-util --init-token --free --label '" TOKEN "' --so-pin 1234567 --pin "
		   PIN " >/dev/null && softhsm2-util --init-token --free --label '" TOKEN2
		   "' --so-pin 1234567 --pin 1111111 >/dev/null") != 0)
		return -1;
	snprintf(buf, sizeof(buf), "%s/sslpassword.conf", dir);
	write_file(buf, TOKEN ":" PIN "\n" TOKEN2 ":2222222\n", 0600);
	pins = sp_pinfile_load(buf, &err);
	snprintf(conf_path, sizeof(conf_path), "%s/double.conf", dir);
	setenv("SP_P11DOUBLE_CONF", conf_path, 1);
	write_file(conf_path, "module = " SOFTHSM "\n", 0644);
	sp_log_open("test_p11_testdouble", NULL, SP_LOG_WARN, &err);
	ctx = p11_ctx_new(&set, &err);
	if (ctx == NULL || p11_ctx_add_module(ctx, "double", module_path, &err) < 0) {
		fprintf(stderr, "load %s: %s\n", module_path, err);
		return -1;
	}
	tok = p11_token_open(ctx, TOKEN, pins, &err);
	if (tok == NULL) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	key = p11_keygen(tok, P11_KEYGEN_EC_P256, "double-key", &err);
	if (key == NULL) {
		fprintf(stderr, "keygen: %s\n", err);
		return -1;
	}
	h = dlopen(module_path, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL)
		return -1;
	*(void **)&counters = dlsym(h, "p11_testdouble_counters");
	dlclose(h);
	return counters != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	p11_key_free(&key);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int sign_once(char **err_r)
{
	unsigned char dg[32] = { 1, 2, 3 }, sig[128];
	size_t siglen = sizeof(sig);
	char *err = NULL;
	int rc = p11_sign(key, P11_SIGN_ECDSA, NID_sha256, -1, dg, sizeof(dg), sig, &siglen,
			  70000, &err);

	if (err_r != NULL)
		*err_r = err;
	else
		free(err);
	return rc;
}

static void test_says_test_double(void **state)
{
	struct p11_slot_info *slots;
	size_t n, i, seen = 0;
	char *err = NULL;

	(void)state;
	assert_int_equal(p11_ctx_slots(ctx, &slots, &n, &err), 0);
	for (i = 0; i < n; i++) {
		if (!slots[i].token_present)
			continue;
		seen++;
		assert_memory_equal(slots[i].manufacturer, "TEST DOUBLE", 11);
		assert_string_equal(slots[i].model, "TEST DOUBLE");
	}
	assert_true(seen >= 2);
	free(slots);
}

static void test_wrong_pin_tried_once(void **state)
{
	unsigned long ops, before, after, f;
	struct p11_token *t;
	char *err = NULL;

	(void)state;
	counters(&ops, &before, &f);
	t = p11_token_open(ctx, TOKEN2, pins, &err);
	assert_null(t);
	assert_non_null(strstr(err, "CKR_PIN_INCORRECT"));
	free(err);
	counters(&ops, &after, &f);
	assert_int_equal(after - before, 1);
}

static void test_latency_observed(void **state)
{
	double t0;
	int i;

	(void)state;
	set_conf("latency_us = 20000");
	t0 = now_s();
	for (i = 0; i < 5; i++)
		assert_int_equal(sign_once(NULL), 0);
	assert_true(now_s() - t0 >= 5 * 0.020);
	set_conf("latency_us = 0");
}

static void *sign_twice(void *arg)
{
	(void)arg;
	if (sign_once(NULL) != 0 || sign_once(NULL) != 0)
		return (void *)1;
	return NULL;
}

static void test_engine_cap_serialises(void **state)
{
	pthread_t th[4];
	void *ret;
	double t0;
	int i;

	(void)state;
	set_conf("latency_us = 20000\nengines = 1");
	t0 = now_s();
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, sign_twice, NULL), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	/* one engine: the 8 operations' latencies add up */
	assert_true(now_s() - t0 >= 8 * 0.020);
	set_conf("engines = 0");
}

static void test_fail_every_third(void **state)
{
	unsigned long ops0, l, f0, f1, ops;
	int i, failed = 0, last_fail = -1;
	char *err;

	(void)state;
	set_conf("fail_every = 3");
	counters(&ops0, &l, &f0);
	for (i = 0; i < 9; i++) {
		if (sign_once(&err) != 0) {
			assert_non_null(strstr(err, "CKR_DEVICE_ERROR"));
			counters(&ops, &l, &f1);
			assert_int_equal(ops % 3, 0);
			if (last_fail >= 0)
				assert_int_equal(i - last_fail, 3);
			last_fail = i;
			failed++;
		}
		free(err);
	}
	assert_int_equal(failed, 3);
	counters(&ops, &l, &f1);
	assert_int_equal(ops - ops0, 9);
	assert_int_equal(f1 - f0, 3);
	set_conf("fail_every = 0");
	assert_int_equal(sign_once(NULL), 0);
}

static void test_fail_all(void **state)
{
	int i;

	(void)state;
	set_conf("fail_all = yes");
	for (i = 0; i < 4; i++)
		assert_int_equal(sign_once(NULL), -1);
	set_conf("fail_all = no");
	assert_int_equal(sign_once(NULL), 0);
}

static atomic_int hang_done;
static int hang_rc;

static void *hang_sign(void *arg)
{
	(void)arg;
	hang_rc = sign_once(NULL);
	atomic_store(&hang_done, 1);
	return NULL;
}

static void test_hang_released_by_switch(void **state)
{
	pthread_t th;

	(void)state;
	set_conf("hang = yes");
	atomic_store(&hang_done, 0);
	assert_int_equal(pthread_create(&th, NULL, hang_sign, NULL), 0);
	sleep_ms(400);
	assert_int_equal(atomic_load(&hang_done), 0);
	set_conf("hang = no");
	pthread_join(th, NULL);
	assert_int_equal(hang_rc, 0);
}

static void test_hang_bounded(void **state)
{
	double t0;

	(void)state;
	set_conf("hang = yes\nhang_max_s = 1");
	t0 = now_s();
	assert_int_equal(sign_once(NULL), -1);
	assert_true(now_s() - t0 >= 0.9);
	set_conf("hang = no");
}

static void test_session_cap_shrinks_pool(void **state)
{
	struct p11_token *t;
	char *err = NULL;

	(void)state;
	p11_key_free(&key);
	p11_token_close(&tok);
	set_conf("max_sessions = 3");
	t = p11_token_open(ctx, TOKEN, pins, &err);
	assert_non_null(t);
	assert_int_equal(p11_token_pool_size(t), 3);
	p11_token_close(&t);
	set_conf("max_sessions = 0");
	tok = p11_token_open(ctx, TOKEN, pins, &err);
	assert_non_null(tok);
	assert_int_equal(p11_token_pool_size(tok), 8);
	key = p11_key_find(tok, "double-key", NULL, 0, &err);
	assert_non_null(key);
	assert_int_equal(sign_once(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_says_test_double),
		cmocka_unit_test(test_wrong_pin_tried_once),
		cmocka_unit_test(test_latency_observed),
		cmocka_unit_test(test_engine_cap_serialises),
		cmocka_unit_test(test_fail_every_third),
		cmocka_unit_test(test_fail_all),
		cmocka_unit_test(test_hang_released_by_switch),
		cmocka_unit_test(test_hang_bounded),
		cmocka_unit_test(test_session_cap_shrinks_pool),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
