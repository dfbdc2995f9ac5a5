/* The accel engine: the key table (by key id), each key's placements in
 * order of preference, and the routing of an operation: to the first
 * placement whose backend is up, can do the mechanism and is not over its
 * spill queue; on error or deadline to the next placement of the same key
 * (software fallback). A backend with keyd.down_after consecutive failures
 * is marked down and probed with a real signature every probe_interval until
 * one succeeds within the deadline. All of it runs on the loop thread. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event_struct.h>
#include <openssl/sha.h>

#include "accel/accel_int.h"
#include "common/log.h"
#include "common/xalloc.h"

/* OWNERSHIP of an operation's state.
 *
 * struct eng_op is made by accel_engine_submit and belongs to the loop
 * thread alone: it is freed in exactly one place, op_finish, which runs the
 * caller's callback once (or by accel_engine_free, which drops it).
 *
 * struct attempt is made for each hand-over of an op to one backend and from
 * then on belongs to that backend's job: the backend's threads never look
 * into it, they hand it back, once, to attempt_done on the loop thread, and
 * attempt_done frees it. The op points to its running attempt (op->cur) and
 * the attempt back to its op (a->op). When the deadline fires first, the op
 * cuts that link (a->op = NULL, op->cur = NULL) and moves on; the attempt
 * stays with the backend, and its late completion finds a->op == NULL and is
 * counted and dropped. So no thread ever writes into an op after it moved on
 * or was freed, and nothing the backend holds is freed under it. Attempts a
 * backend never hands back (it was freed with jobs queued) are on
 * eng->attempts and freed by accel_engine_free after the backends. */
struct attempt {
	struct attempt *prev, *next;  /* eng->attempts */
	struct eng_op *op;            /* NULL: abandoned (deadline) or a probe */
	struct be_slot *slot;
	uint64_t start_us;
	bool probe;
};

struct eng_op {
	struct eng_op *prev, *next;   /* eng->ops */
	struct accel_engine *eng;
	struct accel_key *key;
	struct accel_op op;
	accel_done_fn *done;
	void *arg;
	size_t next_pl;               /* next placement to try */
	struct attempt *cur;          /* running attempt, or NULL */
	struct event deadline;        /* armed while cur != NULL (if a deadline is set) */
	bool deadline_armed;
	bool fellback;
	uint64_t start_us;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void lat_add(struct accel_counters *c, uint64_t us)
{
	unsigned b = 0;

	while (b < ACCEL_LAT_BUCKETS - 1 && us >= (1ull << b))
		b++;
	c->lat[b]++;
}

const char *accel_mech_name(int mech)
{
	switch (mech) {
	case ACCEL_MECH_RSA_PKCS1: return "rsa_pkcs1";
	case ACCEL_MECH_RSA_PSS: return "rsa_pss";
	case ACCEL_MECH_ECDSA: return "ecdsa";
	}
	return "unknown";
}

const char *accel_backend_label(const struct accel_backend *be)
{
	return be->label[0] != '\0' ? be->label : be->ops->name;
}

static const struct {
	int md;
	const char *name;
	size_t size;
} md_table[] = {
	{ ACCEL_MD_SHA1, "SHA1", 20 },
	{ ACCEL_MD_SHA224, "SHA224", 28 },
	{ ACCEL_MD_SHA256, "SHA256", 32 },
	{ ACCEL_MD_SHA384, "SHA384", 48 },
	{ ACCEL_MD_SHA512, "SHA512", 64 },
};

const char *accel_md_name(int md)
{
	for (size_t i = 0; i < sizeof(md_table) / sizeof(md_table[0]); i++) {
		if (md_table[i].md == md)
			return md_table[i].name;
	}
	return NULL;
}

size_t accel_md_size(int md)
{
	for (size_t i = 0; i < sizeof(md_table) / sizeof(md_table[0]); i++) {
		if (md_table[i].md == md)
			return md_table[i].size;
	}
	return 0;
}

int accel_md_from_name(const char *name)
{
	EVP_MD *md;
	int ret = 0;

	if (name == NULL)
		return 0;
	/* match any alias ("SHA2-256", "sha256", "2.16.840.1.101.3.4.2.1") */
	md = EVP_MD_fetch(NULL, name, NULL);
	if (md == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(md_table) / sizeof(md_table[0]); i++) {
		if (EVP_MD_is_a(md, md_table[i].name)) {
			ret = md_table[i].md;
			break;
		}
	}
	EVP_MD_free(md);
	return ret;
}

const char *accel_status_str(int status)
{
	switch (status) {
	case ACCEL_OK: return "ok";
	case ACCEL_ERR_UNKNOWN_KEY: return "unknown key";
	case ACCEL_ERR_UNSUPPORTED: return "unsupported mechanism or parameters for this key";
	case ACCEL_ERR_BUSY: return "busy";
	case ACCEL_ERR_FAILED: return "key operation failed";
	case ACCEL_ERR_SHUTDOWN: return "shutting down";
	}
	return "unknown status";
}

static void completion_cb(evutil_socket_t fd, short what, void *arg)
{
	struct accel_backend *be = arg;

	be->ops->poll(be);
}

struct accel_engine *accel_engine_new(struct event_base *base)
{
	struct accel_engine *eng = sp_xcalloc(1, sizeof(*eng));
	struct accel_params defaults = { 0, 0, 2000, 0 };

	eng->base = base;
	accel_engine_set_params(eng, &defaults);
	return eng;
}

void accel_engine_set_params(struct accel_engine *eng, const struct accel_params *params)
{
	eng->params = *params;
	if (eng->params.probe_interval_ms == 0)
		eng->params.probe_interval_ms = 1000;
	eng->deadline_tv = NULL;
	if (params->op_deadline_ms > 0) {
		struct timeval tv = { params->op_deadline_ms / 1000,
				      (params->op_deadline_ms % 1000) * 1000 };

		/* one duration for every op: libevent keeps them in a FIFO, O(1) */
		eng->deadline_tv = event_base_init_common_timeout(eng->base, &tv);
		if (eng->deadline_tv == NULL) {
			static struct timeval plain;

			plain = tv;
			eng->deadline_tv = &plain;
		}
	}
}

static void key_free(struct accel_key *k)
{
	for (size_t i = 0; i < k->nplacements; i++)
		k->placements[i].slot->be->ops->key_free(k->placements[i].slot->be,
							 k->placements[i].bkey);
	free(k->nickname);
	free(k);
}

void accel_engine_free(struct accel_engine **engp)
{
	struct accel_engine *eng = *engp;

	if (eng == NULL)
		return;
	for (size_t b = 0; b < ACCEL_KEY_BUCKETS; b++) {
		struct accel_key *k = eng->buckets[b], *next;

		for (; k != NULL; k = next) {
			next = k->next;
			k->retired = true;
			if (k->inflight == 0)
				key_free(k);
		}
	}
	while (eng->ops != NULL) {
		struct eng_op *op = eng->ops;

		eng->ops = op->next;
		if (op->deadline_armed)
			event_del(&op->deadline);
		if (op->cur != NULL)
			op->cur->op = NULL;
		if (--op->key->inflight == 0 && op->key->retired)
			key_free(op->key);
		free(op);
	}
	/* joins the threads: nothing hands an attempt back after this */
	for (size_t i = 0; i < eng->nslots; i++) {
		if (eng->slots[i].ev != NULL)
			event_free(eng->slots[i].ev);
		if (eng->slots[i].probe_ev != NULL)
			event_free(eng->slots[i].probe_ev);
		eng->slots[i].be->ops->free(eng->slots[i].be);
	}
	while (eng->attempts != NULL) {
		struct attempt *a = eng->attempts;

		eng->attempts = a->next;
		free(a);
	}
	free(eng);
	*engp = NULL;
}

static void probe_cb(evutil_socket_t fd, short what, void *arg);

int accel_engine_add_backend(struct accel_engine *eng, struct accel_backend *be, char **error_r)
{
	struct be_slot *slot;
	int fd;

	if (eng->nslots == ACCEL_MAX_BACKENDS) {
		*error_r = sp_xasprintf("more than %d backends", ACCEL_MAX_BACKENDS);
		return -1;
	}
	slot = &eng->slots[eng->nslots];
	memset(slot, 0, sizeof(*slot));
	slot->eng = eng;
	slot->be = be;
	slot->probe_ev = evtimer_new(eng->base, probe_cb, slot);
	if (slot->probe_ev == NULL) {
		*error_r = sp_xasprintf("backend %s: cannot make its probe timer",
					accel_backend_label(be));
		return -1;
	}
	fd = be->ops->completion_fd(be);
	if (fd >= 0) {
		slot->ev = event_new(eng->base, fd, EV_READ | EV_PERSIST, completion_cb, be);
		if (slot->ev == NULL || event_add(slot->ev, NULL) < 0) {
			*error_r = sp_xasprintf("backend %s: cannot watch its completion fd",
						accel_backend_label(be));
			if (slot->ev != NULL)
				event_free(slot->ev);
			event_free(slot->probe_ev);
			return -1;
		}
	}
	be->engine_slot = slot;
	eng->nslots++;
	return 0;
}

static struct be_slot *slot_of(const struct accel_engine *eng, const struct accel_backend *be)
{
	for (size_t i = 0; i < eng->nslots; i++) {
		if (eng->slots[i].be == be)
			return (struct be_slot *)&eng->slots[i];
	}
	return NULL;
}

bool accel_engine_backend_down(const struct accel_engine *eng, const struct accel_backend *be)
{
	const struct be_slot *slot = slot_of(eng, be);

	return slot != NULL && slot->down;
}

static unsigned bucket_of(const uint8_t id[ACCEL_KEY_ID_LEN])
{
	return id[0] % ACCEL_KEY_BUCKETS;  /* ids are SHA-256 outputs: uniform */
}

const struct accel_key *accel_engine_find_key(const struct accel_engine *eng,
					      const uint8_t id[ACCEL_KEY_ID_LEN])
{
	for (struct accel_key *k = eng->buckets[bucket_of(id)]; k != NULL; k = k->next) {
		if (memcmp(k->id, id, ACCEL_KEY_ID_LEN) == 0)
			return k;
	}
	return NULL;
}

size_t accel_engine_key_count(const struct accel_engine *eng)
{
	return eng->nkeys;
}

size_t accel_engine_inflight(const struct accel_engine *eng)
{
	return eng->inflight;
}

struct accel_key *accel_engine_add_key(struct accel_engine *eng, const uint8_t id[ACCEL_KEY_ID_LEN],
				       const char *nickname, enum accel_key_type type,
				       unsigned bits, char **error_r)
{
	struct accel_key *k;

	if (accel_engine_find_key(eng, id) != NULL) {
		*error_r = sp_xasprintf("key %s: the same key is already loaded", nickname);
		return NULL;
	}
	if (eng->nkeys == ACCEL_MAX_KEYS) {
		*error_r = sp_xasprintf("more than %d keys", ACCEL_MAX_KEYS);
		return NULL;
	}
	k = sp_xcalloc(1, sizeof(*k));
	memcpy(k->id, id, ACCEL_KEY_ID_LEN);
	k->nickname = sp_xstrdup(nickname);
	k->type = type;
	k->bits = bits;
	k->next = eng->buckets[bucket_of(id)];
	eng->buckets[bucket_of(id)] = k;
	eng->nkeys++;
	return k;
}

int accel_key_add_placement(struct accel_key *key, struct accel_backend *be, void *bkey,
			    char **error_r)
{
	struct be_slot *slot;

	if (key->nplacements == ACCEL_MAX_PLACEMENTS) {
		*error_r = sp_xasprintf("key %s: more than %d placements", key->nickname,
					ACCEL_MAX_PLACEMENTS);
		return -1;
	}
	slot = be->engine_slot;  /* set by accel_engine_add_backend */
	if (slot == NULL) {
		*error_r = sp_xasprintf("key %s: backend %s is not in the engine", key->nickname,
					accel_backend_label(be));
		return -1;
	}
	key->placements[key->nplacements].slot = slot;
	key->placements[key->nplacements].bkey = bkey;
	key->nplacements++;
	return 0;
}

size_t accel_engine_prune(struct accel_engine *eng,
			  bool (*keep)(const uint8_t id[ACCEL_KEY_ID_LEN], void *arg), void *arg)
{
	size_t removed = 0;

	for (size_t b = 0; b < ACCEL_KEY_BUCKETS; b++) {
		struct accel_key **pp = &eng->buckets[b];

		while (*pp != NULL) {
			struct accel_key *k = *pp;

			if (keep(k->id, arg)) {
				pp = &k->next;
				continue;
			}
			*pp = k->next;
			eng->nkeys--;
			removed++;
			sp_log(SP_LOG_INFO, "key_removed", "nickname=\"%s\" inflight=%zu",
			       k->nickname, k->inflight);
			k->retired = true;
			if (k->inflight == 0)
				key_free(k);
		}
	}
	return removed;
}

static bool caps_allow(const struct accel_backend *be, const struct accel_key *k,
		       const struct accel_op *op)
{
	struct accel_caps caps = { 0 };

	be->ops->caps(be, &caps);
	if ((caps.mechs & ACCEL_MECH_BIT(op->mech)) == 0)
		return false;
	if (k->type == ACCEL_KEY_RSA)
		return k->bits >= caps.rsa_min_bits && k->bits <= caps.rsa_max_bits;
	return true;
}

/* The op's shape against the key: the checks every backend would need. */
static int op_check(const struct accel_key *k, const struct accel_op *op)
{
	size_t hlen = accel_md_size(op->md);

	if (hlen == 0 || op->digest_len != hlen)
		return ACCEL_ERR_UNSUPPORTED;
	switch (op->mech) {
	case ACCEL_MECH_RSA_PKCS1:
		return k->type == ACCEL_KEY_RSA ? ACCEL_OK : ACCEL_ERR_UNSUPPORTED;
	case ACCEL_MECH_RSA_PSS: {
		size_t em_len = (k->bits - 1 + 7) / 8;  /* RFC 8017 9.1.1: emBits = modBits - 1 */

		if (k->type != ACCEL_KEY_RSA || accel_md_size(op->mgf1_md) == 0)
			return ACCEL_ERR_UNSUPPORTED;
		if (em_len < hlen + 2 || op->saltlen > em_len - hlen - 2)
			return ACCEL_ERR_UNSUPPORTED;
		return ACCEL_OK;
	}
	case ACCEL_MECH_ECDSA:
		return k->type == ACCEL_KEY_EC ? ACCEL_OK : ACCEL_ERR_UNSUPPORTED;
	}
	return ACCEL_ERR_UNSUPPORTED;
}

/* ---- health ---- */

static void probe_arm(struct be_slot *slot)
{
	struct timeval tv = { slot->eng->params.probe_interval_ms / 1000,
			      (slot->eng->params.probe_interval_ms % 1000) * 1000 };

	if (!evtimer_pending(slot->probe_ev, NULL))
		evtimer_add(slot->probe_ev, &tv);
}

static void slot_failure(struct be_slot *slot, const char *why)
{
	slot->consecutive_failures++;
	if (slot->down || slot->eng->params.down_after == 0 ||
	    slot->consecutive_failures < slot->eng->params.down_after)
		return;
	slot->down = true;
	slot->downs++;
	sp_log(SP_LOG_ERR, "backend_down", "backend=\"%s\" consecutive_failures=%u last=\"%s\" "
	       "probe_interval_ms=%u", accel_backend_label(slot->be), slot->consecutive_failures,
	       why, slot->eng->params.probe_interval_ms);
	probe_arm(slot);
}

static void slot_success(struct be_slot *slot)
{
	slot->consecutive_failures = 0;
}

static void slot_up(struct be_slot *slot, uint64_t lat_us)
{
	slot->down = false;
	slot->consecutive_failures = 0;
	evtimer_del(slot->probe_ev);
	sp_log(SP_LOG_NOTICE, "backend_up", "backend=\"%s\" probe_latency_us=%llu",
	       accel_backend_label(slot->be), (unsigned long long)lat_us);
}

/* A key placed on this backend, for the probe's test signature. */
static const struct placement *probe_placement(const struct be_slot *slot, struct accel_key **key_r)
{
	const struct accel_engine *eng = slot->eng;

	for (size_t b = 0; b < ACCEL_KEY_BUCKETS; b++) {
		for (struct accel_key *k = eng->buckets[b]; k != NULL; k = k->next) {
			for (size_t i = 0; i < k->nplacements; i++) {
				if (k->placements[i].slot == slot) {
					*key_r = k;
					return &k->placements[i];
				}
			}
		}
	}
	return NULL;
}

static void attempt_done(void *arg, int status, const uint8_t *sig, size_t sig_len);

static struct attempt *attempt_new(struct be_slot *slot, struct eng_op *op, bool probe)
{
	struct accel_engine *eng = slot->eng;
	struct attempt *a = sp_xcalloc(1, sizeof(*a));

	a->op = op;
	a->slot = slot;
	a->probe = probe;
	a->start_us = now_us();
	a->next = eng->attempts;
	if (eng->attempts != NULL)
		eng->attempts->prev = a;
	eng->attempts = a;
	return a;
}

static void attempt_free(struct attempt *a)
{
	struct accel_engine *eng = a->slot->eng;

	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		eng->attempts = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	free(a);
}

static void probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct be_slot *slot = arg;
	const struct placement *pl;
	struct accel_key *k = NULL;
	struct accel_op op = { 0 };
	struct attempt *a;

	if (!slot->down)
		return;
	probe_arm(slot);
	if (slot->probe_inflight)
		return;  /* the last probe has not come back (a hung token): no pile-up */
	pl = probe_placement(slot, &k);
	if (pl == NULL)
		return;
	op.md = ACCEL_MD_SHA256;
	op.digest_len = SHA256_DIGEST_LENGTH;
	SHA256((const unsigned char *)"sealpost keyd probe", 19, op.digest);
	op.mech = k->type == ACCEL_KEY_RSA ? ACCEL_MECH_RSA_PKCS1 : ACCEL_MECH_ECDSA;
	a = attempt_new(slot, NULL, true);
	if (slot->be->ops->submit(slot->be, pl->bkey, &op, attempt_done, a) < 0) {
		attempt_free(a);
		return;
	}
	slot->depth++;
	slot->probes++;
	slot->probe_inflight = true;
}

static void probe_done(struct be_slot *slot, int status, uint64_t lat_us)
{
	unsigned deadline_ms = slot->eng->params.op_deadline_ms;

	slot->probe_inflight = false;
	if (!slot->down)
		return;
	if (status == ACCEL_OK && (deadline_ms == 0 || lat_us <= (uint64_t)deadline_ms * 1000)) {
		slot_up(slot, lat_us);
		return;
	}
	slot->probes_failed++;
	sp_log(SP_LOG_INFO, "backend_probe_failed", "backend=\"%s\" status=\"%s\" latency_us=%llu",
	       accel_backend_label(slot->be), accel_status_str(status),
	       (unsigned long long)lat_us);
	probe_arm(slot);
}

/* ---- routing ---- */

static void op_finish(struct eng_op *op, int status, const uint8_t *sig, size_t sig_len)
{
	struct accel_engine *eng = op->eng;
	struct accel_key *k = op->key;
	struct accel_counters *mc = &eng->mech[op->op.mech < ACCEL_NMECH ? op->op.mech : 0];
	uint64_t lat = now_us() - op->start_us;

	if (status == ACCEL_OK) {
		k->c.completed++;
		mc->completed++;
	} else {
		k->c.failed++;
		mc->failed++;
	}
	if (op->fellback) {
		k->c.fellback++;
		mc->fellback++;
	}
	lat_add(&k->c, lat);
	lat_add(mc, lat);
	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		eng->ops = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	eng->inflight--;
	op->done(op->arg, status, sig, status == ACCEL_OK ? sig_len : 0);
	if (--k->inflight == 0 && k->retired)
		key_free(k);
	free(op);
}

static bool usable(const struct be_slot *slot, const struct accel_key *k, const struct accel_op *op)
{
	return !slot->down && caps_allow(slot->be, k, op);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg);

static bool backend_in_process(const struct accel_backend *be)
{
	struct accel_caps caps = { 0 };

	be->ops->caps(be, &caps);
	return caps.in_process;
}

/* Hands op to the first placement from op->next_pl that takes it. ACCEL_OK,
 * or why none did: UNSUPPORTED (no placement can), BUSY (all full),
 * FAILED (the capable ones are down). */
static int op_dispatch(struct eng_op *op)
{
	struct accel_engine *eng = op->eng;
	struct accel_key *k = op->key;
	bool capable = false, full = false;

	for (size_t i = op->next_pl; i < k->nplacements; i++) {
		struct placement *pl = &k->placements[i];
		struct be_slot *slot = pl->slot;
		struct attempt *a;
		bool later = false;

		if (!caps_allow(slot->be, k, &op->op))
			continue;
		capable = true;
		if (slot->down)
			continue;
		for (size_t j = i + 1; j < k->nplacements && !later; j++)
			later = usable(k->placements[j].slot, k, &op->op);
		if (later && eng->params.spill_queue > 0 && slot->depth >= eng->params.spill_queue) {
			slot->c.spilled++;
			k->c.spilled++;
			continue;  /* overloaded: spill to the next placement */
		}
		a = attempt_new(slot, op, false);
		if (slot->be->ops->submit(slot->be, pl->bkey, &op->op, attempt_done, a) < 0) {
			attempt_free(a);
			full = true;
			if (later)
				slot->c.spilled++, k->c.spilled++;
			continue;
		}
		slot->depth++;
		slot->c.submitted++;
		op->cur = a;
		op->next_pl = i + 1;
		/* A deadline moves the op on, or marks a hung device down; the
		 * in-process backend as last resort has neither use. */
		if (eng->deadline_tv != NULL && (later || !backend_in_process(slot->be))) {
			event_assign(&op->deadline, eng->base, -1, 0, deadline_cb, op);
			evtimer_add(&op->deadline, eng->deadline_tv);
			op->deadline_armed = true;
		}
		return ACCEL_OK;
	}
	if (!capable)
		return ACCEL_ERR_UNSUPPORTED;
	return full ? ACCEL_ERR_BUSY : ACCEL_ERR_FAILED;
}

/* The attempt on slot failed (error or deadline): next placement, or the end. */
static void op_fall_back(struct eng_op *op, struct be_slot *slot, int status)
{
	int st;

	if (op->next_pl < op->key->nplacements) {
		st = op_dispatch(op);
		if (st == ACCEL_OK) {
			slot->c.fellback++;
			op->fellback = true;
			return;
		}
	}
	op_finish(op, status, NULL, 0);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct eng_op *op = arg;
	struct attempt *a = op->cur;
	struct be_slot *slot = a->slot;

	op->deadline_armed = false;
	/* the attempt stays with the backend; its completion will be dropped */
	a->op = NULL;
	op->cur = NULL;
	slot->c.timeouts++;
	slot->c.failed++;
	sp_log(SP_LOG_WARN, "keyop_deadline", "backend=\"%s\" key=\"%s\" deadline_ms=%u",
	       accel_backend_label(slot->be), op->key->nickname, op->eng->params.op_deadline_ms);
	slot_failure(slot, "deadline");
	op_fall_back(op, slot, ACCEL_ERR_FAILED);
}

static void attempt_done(void *arg, int status, const uint8_t *sig, size_t sig_len)
{
	struct attempt *a = arg;
	struct be_slot *slot = a->slot;
	struct eng_op *op = a->op;
	uint64_t lat = now_us() - a->start_us;
	bool probe = a->probe;

	slot->depth--;
	attempt_free(a);
	if (probe) {
		probe_done(slot, status, lat);
		return;
	}
	if (op == NULL) {
		/* late completion of an attempt the deadline gave up on: the op
		 * went on (or ended) long ago; only the numbers care */
		lat_add(&slot->c, lat);
		return;
	}
	op->cur = NULL;
	if (op->deadline_armed) {
		event_del(&op->deadline);
		op->deadline_armed = false;
	}
	lat_add(&slot->c, lat);
	if (status == ACCEL_OK) {
		slot->c.completed++;
		slot_success(slot);
		op_finish(op, ACCEL_OK, sig, sig_len);
		return;
	}
	slot->c.failed++;
	if (status != ACCEL_ERR_UNSUPPORTED)
		slot_failure(slot, accel_status_str(status));
	op_fall_back(op, slot, status);
}

int accel_engine_submit(struct accel_engine *eng, const uint8_t id[ACCEL_KEY_ID_LEN],
			const struct accel_op *op, accel_done_fn *done, void *arg)
{
	struct accel_key *k = (struct accel_key *)accel_engine_find_key(eng, id);
	struct accel_counters *mc;
	struct eng_op *o;
	int st;

	if (k == NULL)
		return ACCEL_ERR_UNKNOWN_KEY;
	st = op_check(k, op);
	if (st != ACCEL_OK)
		return st;
	mc = &eng->mech[op->mech < ACCEL_NMECH ? op->mech : 0];
	o = sp_xcalloc(1, sizeof(*o));
	o->eng = eng;
	o->key = k;
	o->op = *op;
	o->done = done;
	o->arg = arg;
	o->start_us = now_us();
	st = op_dispatch(o);
	k->c.submitted++;
	mc->submitted++;
	if (st != ACCEL_OK) {
		k->c.failed++;
		mc->failed++;
		free(o);
		return st;
	}
	k->inflight++;
	eng->inflight++;
	o->next = eng->ops;
	if (eng->ops != NULL)
		eng->ops->prev = o;
	eng->ops = o;
	return ACCEL_OK;
}
