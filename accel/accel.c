/* The accel engine: the key table (by key id), each key's placements in
 * order of preference, and routing of an operation to a placement. With one
 * backend (soft) routing is "first healthy placement"; scheduling, fallback
 * on error/timeout and probing of failed backends come with pkcs11. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "accel/accel.h"
#include "common/log.h"
#include "common/xalloc.h"

#define MAX_BACKENDS 8
#define MAX_PLACEMENTS 4
#define MAX_KEYS 4096
#define KEY_BUCKETS 256

struct placement {
	struct accel_backend *be;
	void *bkey;
};

struct accel_key {
	struct accel_key *next;  /* hash chain */
	uint8_t id[ACCEL_KEY_ID_LEN];
	char *nickname;
	enum accel_key_type type;
	unsigned bits;
	struct placement placements[MAX_PLACEMENTS];
	size_t nplacements;
	unsigned long long ops, ops_failed;
};

struct be_slot {
	struct accel_backend *be;
	struct event *ev;
};

struct accel_engine {
	struct event_base *base;
	struct be_slot backends[MAX_BACKENDS];
	size_t nbackends;
	struct accel_key *buckets[KEY_BUCKETS];
	size_t nkeys;
	size_t inflight;
};

/* Wraps the caller's callback to keep counters. */
struct pending {
	struct accel_engine *eng;
	struct accel_key *key;
	struct accel_backend *be;
	accel_done_fn *done;
	void *arg;
};

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

	eng->base = base;
	return eng;
}

void accel_engine_free(struct accel_engine **engp)
{
	struct accel_engine *eng = *engp;

	if (eng == NULL)
		return;
	for (size_t b = 0; b < KEY_BUCKETS; b++) {
		struct accel_key *k = eng->buckets[b], *next;

		for (; k != NULL; k = next) {
			next = k->next;
			for (size_t i = 0; i < k->nplacements; i++)
				k->placements[i].be->ops->key_free(k->placements[i].be,
								   k->placements[i].bkey);
			free(k->nickname);
			free(k);
		}
	}
	for (size_t i = 0; i < eng->nbackends; i++) {
		if (eng->backends[i].ev != NULL)
			event_free(eng->backends[i].ev);
		eng->backends[i].be->ops->free(eng->backends[i].be);
	}
	free(eng);
	*engp = NULL;
}

int accel_engine_add_backend(struct accel_engine *eng, struct accel_backend *be, char **error_r)
{
	struct be_slot *slot;
	int fd;

	if (eng->nbackends == MAX_BACKENDS) {
		*error_r = sp_xasprintf("more than %d backends", MAX_BACKENDS);
		return -1;
	}
	slot = &eng->backends[eng->nbackends];
	slot->be = be;
	slot->ev = NULL;
	fd = be->ops->completion_fd(be);
	if (fd >= 0) {
		slot->ev = event_new(eng->base, fd, EV_READ | EV_PERSIST, completion_cb, be);
		if (slot->ev == NULL || event_add(slot->ev, NULL) < 0) {
			*error_r = sp_xasprintf("backend %s: cannot watch its completion fd",
						be->ops->name);
			if (slot->ev != NULL)
				event_free(slot->ev);
			return -1;
		}
	}
	eng->nbackends++;
	return 0;
}

static unsigned bucket_of(const uint8_t id[ACCEL_KEY_ID_LEN])
{
	return id[0] % KEY_BUCKETS;  /* ids are SHA-256 outputs: uniform */
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
	if (eng->nkeys == MAX_KEYS) {
		*error_r = sp_xasprintf("more than %d keys", MAX_KEYS);
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
	if (key->nplacements == MAX_PLACEMENTS) {
		*error_r = sp_xasprintf("key %s: more than %d placements", key->nickname,
					MAX_PLACEMENTS);
		return -1;
	}
	key->placements[key->nplacements].be = be;
	key->placements[key->nplacements].bkey = bkey;
	key->nplacements++;
	return 0;
}

static bool caps_allow(const struct accel_backend *be, const struct accel_key *k,
		       const struct accel_op *op)
{
	struct accel_caps caps;

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

static void engine_done(void *arg, int status, const uint8_t *sig, size_t sig_len)
{
	struct pending *p = arg;

	p->eng->inflight--;
	p->be->completed++;
	if (status != ACCEL_OK) {
		p->be->failed++;
		p->key->ops_failed++;
	}
	p->done(p->arg, status, sig, sig_len);
	free(p);
}

int accel_engine_submit(struct accel_engine *eng, const uint8_t id[ACCEL_KEY_ID_LEN],
			const struct accel_op *op, accel_done_fn *done, void *arg)
{
	struct accel_key *k = (struct accel_key *)accel_engine_find_key(eng, id);
	bool some_capable = false;
	int st;

	if (k == NULL)
		return ACCEL_ERR_UNKNOWN_KEY;
	st = op_check(k, op);
	if (st != ACCEL_OK)
		return st;
	for (size_t i = 0; i < k->nplacements; i++) {
		struct placement *pl = &k->placements[i];
		struct pending *p;

		if (!caps_allow(pl->be, k, op))
			continue;
		some_capable = true;
		if (!pl->be->ops->healthy(pl->be))
			continue;
		p = sp_xmalloc(sizeof(*p));
		p->eng = eng;
		p->key = k;
		p->be = pl->be;
		p->done = done;
		p->arg = arg;
		if (pl->be->ops->submit(pl->be, pl->bkey, op, engine_done, p) < 0) {
			free(p);
			continue;  /* full: try the next placement */
		}
		pl->be->submitted++;
		k->ops++;
		eng->inflight++;
		return ACCEL_OK;
	}
	return some_capable ? ACCEL_ERR_BUSY : ACCEL_ERR_UNSUPPORTED;
}
