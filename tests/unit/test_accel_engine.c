/* accel/accel.c, the engine's scheduling with scripted fake backends: an
 * error or a deadline moves an op to the key's next placement, and the
 * abandoned attempt's late completion is dropped (never a second callback,
 * never a write into freed op state: run under the sanitizers); a backend
 * is marked down after keyd.down_after failures, a key with no other
 * placement then fails at once, and a successful probe brings it back;
 * an overloaded backend spills to the next placement; counters add up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "accel/accel.h"
#include "common/log.h"

#define MAX_JOBS 64

struct job {
	accel_done_fn *done;
	void *arg;
	bool finished, delivered;
	int status;
};

struct fake {
	int efd;
	struct job jobs[MAX_JOBS];
	size_t njobs;
	size_t max_queue;
	size_t queued;
};

static void fake_caps(const struct accel_backend *be, struct accel_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->mechs = ACCEL_MECH_BIT(ACCEL_MECH_ECDSA) | ACCEL_MECH_BIT(ACCEL_MECH_RSA_PKCS1);
	caps->rsa_min_bits = 1024;
	caps->rsa_max_bits = 8192;
	/* the fake named "soft" stands for the in-process backend */
	caps->in_process = strcmp(be->label, "soft") == 0;
}

static int fake_submit(struct accel_backend *be, void *bkey, const struct accel_op *op,
		       accel_done_fn *done, void *arg)
{
	struct fake *f = be->priv;

	if (f->queued >= f->max_queue || f->njobs == MAX_JOBS)
		return -1;
	f->jobs[f->njobs].done = done;
	f->jobs[f->njobs].arg = arg;
	f->njobs++;
	f->queued++;
	return 0;
}

static int fake_fd(const struct accel_backend *be)
{
	return ((struct fake *)be->priv)->efd;
}

static void fake_poll(struct accel_backend *be)
{
	struct fake *f = be->priv;
	uint64_t n;
	uint8_t sig[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	if (read(f->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		fail();
	for (size_t i = 0; i < f->njobs; i++) {
		struct job *j = &f->jobs[i];

		if (j->finished && !j->delivered) {
			j->delivered = true;
			f->queued--;
			j->done(j->arg, j->status, sig, j->status == ACCEL_OK ? sizeof(sig) : 0);
		}
	}
}

static bool fake_healthy(const struct accel_backend *be)
{
	return true;
}

static void fake_key_free(struct accel_backend *be, void *bkey)
{
}

static void fake_free(struct accel_backend *be)
{
	struct fake *f = be->priv;

	close(f->efd);
	free(f);
	free(be);
}

static const struct accel_backend_ops fake_ops = {
	"fake", fake_caps, fake_submit, fake_fd, fake_poll, fake_healthy, fake_key_free, fake_free,
};

static struct accel_backend *fake_new(const char *label, size_t max_queue)
{
	struct accel_backend *be = calloc(1, sizeof(*be));
	struct fake *f = calloc(1, sizeof(*f));

	f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	f->max_queue = max_queue;
	be->ops = &fake_ops;
	be->priv = f;
	snprintf(be->label, sizeof(be->label), "%s", label);
	return be;
}

/* Finishes job i of be; delivered at the next loop turn. */
static void fake_finish(struct accel_backend *be, size_t i, int status)
{
	struct fake *f = be->priv;
	uint64_t one = 1;

	assert_true(i < f->njobs);
	f->jobs[i].finished = true;
	f->jobs[i].status = status;
	assert_int_equal(write(f->efd, &one, sizeof(one)), sizeof(one));
}

static size_t fake_jobs(struct accel_backend *be)
{
	return ((struct fake *)be->priv)->njobs;
}

struct result {
	int calls, status;
};

static void done_cb(void *arg, int status, const uint8_t *sig, size_t sig_len)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
}

struct fx {
	struct event_base *base;
	struct accel_engine *eng;
	struct accel_backend *tok, *soft;
};

static const uint8_t ncp_id[ACCEL_KEY_ID_LEN] = { 1 };
static const uint8_t tok_id[ACCEL_KEY_ID_LEN] = { 2 };
static const uint8_t soft_id[ACCEL_KEY_ID_LEN] = { 3 };

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct accel_params p = { 50, 2, 20, 0 };
	struct accel_key *k;
	char *err = NULL;

	sp_log_open("test_accel_engine", NULL, SP_LOG_CRIT, &err);
	f->base = event_base_new();
	f->eng = accel_engine_new(f->base);
	accel_engine_set_params(f->eng, &p);
	f->tok = fake_new("pkcs11:Fake", 16);
	f->soft = fake_new("soft", 16);
	assert_int_equal(accel_engine_add_backend(f->eng, f->tok, &err), 0);
	assert_int_equal(accel_engine_add_backend(f->eng, f->soft, &err), 0);
	k = accel_engine_add_key(f->eng, ncp_id, "ncp", ACCEL_KEY_EC, 256, &err);
	assert_int_equal(accel_key_add_placement(k, f->tok, NULL, &err), 0);
	assert_int_equal(accel_key_add_placement(k, f->soft, NULL, &err), 0);
	k = accel_engine_add_key(f->eng, tok_id, "token-only", ACCEL_KEY_EC, 256, &err);
	assert_int_equal(accel_key_add_placement(k, f->tok, NULL, &err), 0);
	k = accel_engine_add_key(f->eng, soft_id, "soft-only", ACCEL_KEY_EC, 256, &err);
	assert_int_equal(accel_key_add_placement(k, f->soft, NULL, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	accel_engine_free(&f->eng);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void ecdsa_op(struct accel_op *op)
{
	memset(op, 0, sizeof(*op));
	op->mech = ACCEL_MECH_ECDSA;
	op->md = ACCEL_MD_SHA256;
	op->digest_len = 32;
}

static void turn(struct fx *f)
{
	event_base_loop(f->base, EVLOOP_ONCE);
}

static void test_deadline_falls_back_and_late_completion_is_dropped(void **state)
{
	struct fx *f = *state;
	struct accel_op op;
	struct result r = { 0 };
	char *stats;
	size_t len;

	ecdsa_op(&op);
	assert_int_equal(accel_engine_submit(f->eng, ncp_id, &op, done_cb, &r), ACCEL_OK);
	assert_int_equal(fake_jobs(f->tok), 1);
	while (fake_jobs(f->soft) == 0)
		turn(f);  /* the 50 ms deadline fires: the op moves to soft */
	assert_int_equal(r.calls, 0);
	fake_finish(f->soft, 0, ACCEL_OK);
	while (r.calls == 0)
		turn(f);
	assert_int_equal(r.status, ACCEL_OK);
	assert_int_equal(accel_engine_inflight(f->eng), 0);
	/* the token's answer comes late: counted, dropped, no second callback */
	fake_finish(f->tok, 0, ACCEL_OK);
	turn(f);
	assert_int_equal(r.calls, 1);
	stats = accel_engine_stats(f->eng, false, 1 << 20, &len);
	assert_non_null(strstr(stats, "backend \"pkcs11:Fake\" state=up depth=0"));
	assert_non_null(strstr(stats, "fellback=1 spilled=0 timeouts=1"));
	free(stats);
}

/* The in-process backend as a key's last placement has no deadline: a busy
 * CPU makes an op slow, not lost; the handshake's own key-op timeout is the
 * bound. The loop runs well past the 50 ms deadline before the op ends. */
static void test_no_deadline_on_last_in_process_placement(void **state)
{
	struct fx *f = *state;
	struct accel_op op;
	struct result r = { 0 };
	struct timeval past_deadline = { 0, 200000 };
	char *stats;
	size_t len;

	ecdsa_op(&op);
	assert_int_equal(accel_engine_submit(f->eng, soft_id, &op, done_cb, &r), ACCEL_OK);
	event_base_loopexit(f->base, &past_deadline);
	event_base_dispatch(f->base);
	assert_int_equal(r.calls, 0);
	fake_finish(f->soft, 0, ACCEL_OK);
	while (r.calls == 0)
		turn(f);
	assert_int_equal(r.status, ACCEL_OK);
	stats = accel_engine_stats(f->eng, false, 1 << 20, &len);
	assert_null(strstr(stats, "timeouts=1"));
	free(stats);
}

static void test_error_falls_back(void **state)
{
	struct fx *f = *state;
	struct accel_op op;
	struct result r = { 0 };

	ecdsa_op(&op);
	assert_int_equal(accel_engine_submit(f->eng, ncp_id, &op, done_cb, &r), ACCEL_OK);
	fake_finish(f->tok, 0, ACCEL_ERR_FAILED);
	while (fake_jobs(f->soft) == 0)
		turn(f);
	fake_finish(f->soft, 0, ACCEL_OK);
	while (r.calls == 0)
		turn(f);
	assert_int_equal(r.status, ACCEL_OK);
}

static void test_down_fails_at_once_then_probe_brings_it_back(void **state)
{
	struct fx *f = *state;
	struct accel_op op;
	struct result r[3] = { { 0 } };

	ecdsa_op(&op);
	for (int i = 0; i < 2; i++) {  /* keyd.down_after = 2 */
		assert_int_equal(accel_engine_submit(f->eng, tok_id, &op, done_cb, &r[i]), ACCEL_OK);
		fake_finish(f->tok, (size_t)i, ACCEL_ERR_FAILED);
		while (r[i].calls == 0)
			turn(f);
		assert_int_equal(r[i].status, ACCEL_ERR_FAILED);
	}
	assert_true(accel_engine_backend_down(f->eng, f->tok));
	/* token-only key, token down: refused at once, nothing queued */
	assert_int_equal(accel_engine_submit(f->eng, tok_id, &op, done_cb, &r[2]), ACCEL_ERR_FAILED);
	assert_int_equal(fake_jobs(f->tok), 2);
	/* the NCP key goes straight to its software copy */
	assert_int_equal(accel_engine_submit(f->eng, ncp_id, &op, done_cb, &r[2]), ACCEL_OK);
	assert_int_equal(fake_jobs(f->soft), 1);
	fake_finish(f->soft, 0, ACCEL_OK);
	while (fake_jobs(f->tok) == 2)
		turn(f);  /* the probe (every 20 ms) */
	fake_finish(f->tok, 2, ACCEL_OK);
	while (accel_engine_backend_down(f->eng, f->tok))
		turn(f);
	assert_int_equal(r[2].calls, 1);
}

static void test_spill_to_next_placement(void **state)
{
	struct fx *f = *state;
	struct accel_params p = { 0, 2, 20, 1 };
	struct accel_op op;
	struct result r[3] = { { 0 } };

	accel_engine_set_params(f->eng, &p);
	ecdsa_op(&op);
	assert_int_equal(accel_engine_submit(f->eng, ncp_id, &op, done_cb, &r[0]), ACCEL_OK);
	assert_int_equal(accel_engine_submit(f->eng, ncp_id, &op, done_cb, &r[1]), ACCEL_OK);
	assert_int_equal(fake_jobs(f->tok), 1);
	assert_int_equal(fake_jobs(f->soft), 1);
	/* token-only key: nowhere to spill, so it queues on the token */
	assert_int_equal(accel_engine_submit(f->eng, tok_id, &op, done_cb, &r[2]), ACCEL_OK);
	assert_int_equal(fake_jobs(f->tok), 2);
	fake_finish(f->tok, 0, ACCEL_OK);
	fake_finish(f->tok, 1, ACCEL_OK);
	fake_finish(f->soft, 0, ACCEL_OK);
	while (r[0].calls + r[1].calls + r[2].calls < 3)
		turn(f);
}

static bool keep_none(const uint8_t id[ACCEL_KEY_ID_LEN], void *arg)
{
	return false;
}

static void test_prune_keeps_key_until_ops_end(void **state)
{
	struct fx *f = *state;
	struct accel_op op;
	struct result r = { 0 };

	ecdsa_op(&op);
	assert_int_equal(accel_engine_submit(f->eng, tok_id, &op, done_cb, &r), ACCEL_OK);
	assert_int_equal(accel_engine_prune(f->eng, keep_none, NULL), 3);
	assert_int_equal(accel_engine_key_count(f->eng), 0);
	assert_null(accel_engine_find_key(f->eng, tok_id));
	fake_finish(f->tok, 0, ACCEL_OK);
	while (r.calls == 0)
		turn(f);
	assert_int_equal(r.status, ACCEL_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deadline_falls_back_and_late_completion_is_dropped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_deadline_on_last_in_process_placement, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_down_fails_at_once_then_probe_brings_it_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_spill_to_next_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_keeps_key_until_ops_end, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
