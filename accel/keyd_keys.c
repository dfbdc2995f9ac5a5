/* keyd's key loading: brings the engine's key set to the certdb's.
 *  - file: locators (internal software token, encrypted PKCS#8 PEM) are
 *    decrypted with the sslpassword.conf passphrase, checked against their
 *    certificate and placed on the soft backend; with keyd.accelerator set
 *    they are also copied into that token as session objects (keyd_ncp.c)
 *    and placed there first: placements [accelerator, soft], the NCP model.
 *  - pkcs11: locators (RFC 7512) and "Token Label:nickname" names: the token
 *    is opened and logged in once (PIN from sslpassword.conf, never retried),
 *    the private key found (none or several: an error), checked against the
 *    certificate; one placement, the token's pkcs11 backend.
 * Keys are staged first and committed only when all of them loaded, so a
 * reload that fails changes nothing. PKCS#11 is initialised here, in keyd,
 * after exec: never in tlsd's master (pkcs11/pkcs11.h, Fork). */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "accel/accel_pkcs11.h"
#include "accel/keyd_int.h"
#include "accel/keyd_proto.h"
#include "certdb/certdb.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/xalloc.h"

struct pass_state {
	const char *pass;
	bool asked;
};

/* pem_password_cb: hands OpenSSL the passphrase and notes that the file
 * was encrypted. */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pass_state *ps = u;
	size_t len = strlen(ps->pass);

	ps->asked = true;
	if (len > (size_t)size)
		return -1;
	memcpy(buf, ps->pass, len);
	return (int)len;
}

static char *ssl_reason(void)
{
	unsigned long err = ERR_peek_last_error();
	char buf[200];

	if (err == 0)
		return sp_xstrdup("no OpenSSL reason");
	ERR_error_string_n(err, buf, sizeof(buf));
	ERR_clear_error();
	return sp_xstrdup(buf);
}

static EVP_PKEY *read_key(const char *path, const char *pass, char **error_r)
{
	struct pass_state ps = { pass, false };
	EVP_PKEY *pkey;
	BIO *bio;

	ERR_clear_error();
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		char *why = ssl_reason();

		*error_r = sp_xasprintf("%s: cannot open: %s", path, why);
		free(why);
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, pass_cb, &ps, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		char *why = ssl_reason();

		*error_r = ps.asked ? sp_xasprintf("%s: cannot decrypt the key (wrong passphrase for "
						   "\"%s\" in the password file?): %s",
						   path, SP_CERTDB_INTERNAL_TOKEN, why)
				    : sp_xasprintf("%s: no PEM private key: %s", path, why);
		free(why);
		return NULL;
	}
	if (!ps.asked)
		sp_log(SP_LOG_WARN, "key_not_encrypted", "file=\"%s\"", path);
	return pkey;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}


/* ---- settings ---- */

static char *conf_dir(const struct sp_conf *conf, const char *conf_path)
{
	const char *confdir = sp_conf_str(conf, "confdir");
	char *copy, *d;

	if (confdir != NULL && confdir[0] != '\0')
		return sp_xstrdup(confdir);
	copy = sp_xstrdup(conf_path);
	d = sp_xstrdup(dirname(copy));
	free(copy);
	return d;
}

static char *opt_str(const struct sp_conf *conf, const char *key)
{
	const char *v = sp_conf_str(conf, key);

	return v != NULL && v[0] != '\0' ? sp_xstrdup(v) : NULL;
}

int keyd_settings_load(const struct sp_conf *conf, const char *conf_path,
		       struct keyd_settings *set, char **error_r)
{
	char *dir = conf_dir(conf, conf_path);
	long long keyop_timeout = sp_conf_int(conf, "tlsd.keyop_timeout");

	memset(set, 0, sizeof(*set));
	set->certdb_dir = opt_str(conf, "certdb");
	if (set->certdb_dir == NULL)
		set->certdb_dir = sp_xasprintf("%s/certdb", dir);
	set->pinfile = sp_conf_isset(conf, "sslpasswordfile") ? opt_str(conf, "sslpasswordfile")
							      : NULL;
	if (set->pinfile == NULL)
		set->pinfile = sp_xasprintf("%s/sslpassword.conf", dir);
	set->modules_file = opt_str(conf, "pkcs11.modules_file");
	if (set->modules_file == NULL)
		set->modules_file = sp_xasprintf("%s/pkcs11-modules.conf", dir);
	set->p11kit_modules = sp_conf_bool(conf, "pkcs11.p11kit_modules");
	set->p11_sessions = (unsigned)sp_conf_int(conf, "pkcs11.sessions");
	set->p11_threads = (unsigned)sp_conf_int(conf, "keyd.pkcs11_threads");
	set->p11_max_queue = (size_t)sp_conf_int(conf, "keyd.pkcs11_max_queue");
	set->accelerator = opt_str(conf, "keyd.accelerator");
	set->stats_socket = opt_str(conf, "keyd.stats_socket");
	set->params.op_deadline_ms = (unsigned)sp_conf_int(conf, "keyd.op_deadline");
	set->params.down_after = (unsigned)sp_conf_int(conf, "keyd.down_after");
	set->params.probe_interval_ms = (unsigned)sp_conf_int(conf, "keyd.probe_interval");
	set->params.spill_queue = (size_t)sp_conf_int(conf, "keyd.spill_queue");
	set->max_inflight = (size_t)sp_conf_int(conf, "keyd.max_inflight");
	set->out_max = (size_t)sp_conf_int(conf, "keyd.channel_buffer");
	set->max_chans = (size_t)sp_conf_int(conf, "keyd.max_channels");
	set->soft_threads = (unsigned)sp_conf_int(conf, "keyd.threads");
	set->soft_max_queue = (size_t)sp_conf_int(conf, "keyd.max_queue");
	free(dir);
	/* the fallback must happen while the worker still waits for the answer:
	 * a default that does not fit under tlsd.keyop_timeout shrinks to half of it */
	if (keyop_timeout > 0 && set->params.op_deadline_ms >= keyop_timeout &&
	    !sp_conf_isset(conf, "keyd.op_deadline"))
		set->params.op_deadline_ms = (unsigned)(keyop_timeout / 2);
	if (keyop_timeout > 0 && set->params.op_deadline_ms >= keyop_timeout) {
		*error_r = sp_xasprintf("keyd.op_deadline (%u ms) must be shorter than "
					"tlsd.keyop_timeout (%lld ms)", set->params.op_deadline_ms,
					keyop_timeout);
		keyd_settings_clear(set);
		return -1;
	}
	return 0;
}

void keyd_settings_clear(struct keyd_settings *set)
{
	free(set->certdb_dir);
	free(set->pinfile);
	free(set->modules_file);
	free(set->accelerator);
	free(set->stats_socket);
	memset(set, 0, sizeof(*set));
}

/* ---- tokens ---- */

static struct keyd_token *token_by_label(struct keyd_token *list, const char *label)
{
	for (; list != NULL; list = list->next) {
		if (strcmp(p11_token_label(list->tok), label) == 0)
			return list;
	}
	return NULL;
}

static void token_free(struct keyd_token *kt)
{
	keyd_ncp_session_close(kt);
	p11_token_close(&kt->tok);
	free(kt);
}

struct sync {
	struct keyd *kd;
	const struct keyd_settings *set;
	struct sp_pinfile *pins;
	struct keyd_token *fresh;    /* opened by this sync, not committed yet */
};

static const struct sp_pinfile *sync_pins(struct sync *sy, char **error_r)
{
	if (sy->pins == NULL)
		sy->pins = sp_pinfile_load(sy->set->pinfile, error_r);
	return sy->pins;
}

/* The token spec names (label or pkcs11: URI), opened once per keyd. */
static struct keyd_token *token_get(struct sync *sy, const char *spec, const char *label,
				    char **error_r)
{
	struct keyd *kd = sy->kd;
	const struct sp_pinfile *pins;
	struct keyd_token *kt;
	struct p11_token *tok;

	if (label != NULL) {
		kt = token_by_label(kd->tokens, label);
		if (kt == NULL)
			kt = token_by_label(sy->fresh, label);
		if (kt != NULL)
			return kt;
	}
	if ((pins = sync_pins(sy, error_r)) == NULL)
		return NULL;
	if (kd->p11 == NULL) {
		struct p11_ctx_settings ps = { sy->set->modules_file, sy->set->p11kit_modules,
					       sy->set->p11_sessions };

		kd->p11 = p11_ctx_new(&ps, error_r);
		if (kd->p11 == NULL)
			return NULL;
		sp_log(SP_LOG_INFO, "pkcs11_init", "modules=%zu modules_file=\"%s\" p11kit=%s",
		       p11_ctx_module_count(kd->p11), sy->set->modules_file,
		       sy->set->p11kit_modules ? "yes" : "no");
	}
	tok = p11_token_open(kd->p11, spec, pins, error_r);
	if (tok == NULL)
		return NULL;
	kt = token_by_label(kd->tokens, p11_token_label(tok));
	if (kt == NULL)
		kt = token_by_label(sy->fresh, p11_token_label(tok));
	if (kt != NULL) {
		/* named by a URI without token=: the same token again. Its other
		 * sessions stay open, so closing these keeps the login. */
		p11_token_close(&tok);
		return kt;
	}
	kt = sp_xcalloc(1, sizeof(*kt));
	kt->tok = tok;
	kt->next = sy->fresh;
	sy->fresh = kt;
	return kt;
}

void keyd_tokens_close(struct keyd *kd)
{
	while (kd->tokens != NULL) {
		struct keyd_token *kt = kd->tokens;

		kd->tokens = kt->next;
		token_free(kt);
	}
	p11_ctx_free(&kd->p11);
}

/* ---- staging ---- */

struct staged {
	struct staged *next;
	uint8_t id[ACCEL_KEY_ID_LEN];
	char *nickname;
	enum accel_key_type type;
	unsigned bits;
	EVP_PKEY *soft;              /* file: key */
	struct p11_key *tokkey;      /* pkcs11: key, or the NCP copy of soft */
	struct keyd_token *kt;       /* tokkey's token */
	const char *where;           /* for the log line */
};

static void staged_free(struct staged *st)
{
	EVP_PKEY_free(st->soft);
	p11_key_free(&st->tokkey);
	free(st->nickname);
	free(st);
}

static int key_type_of(EVP_PKEY *pkey, enum accel_key_type *type_r)
{
	if (EVP_PKEY_is_a(pkey, "RSA"))
		*type_r = ACCEL_KEY_RSA;
	else if (EVP_PKEY_is_a(pkey, "EC"))
		*type_r = ACCEL_KEY_EC;
	else
		return -1;
	return 0;
}

static int stage_file(struct sync *sy, const struct sp_certdb *db,
		      const struct sp_certdb_entry *e, X509 *leaf, struct staged *st,
		      char **error_r)
{
	const struct sp_pinfile *pins = sync_pins(sy, error_r);
	const char *pass;
	char *path, *why = NULL;

	if (pins == NULL)
		return -1;
	pass = sp_pinfile_get(pins, SP_CERTDB_INTERNAL_TOKEN);
	if (pass == NULL) {
		*error_r = sp_xasprintf("%s: no entry for \"%s\", needed for the software keys",
					sy->set->pinfile, SP_CERTDB_INTERNAL_TOKEN);
		return -1;
	}
	path = sp_xasprintf("%s/%s", sp_certdb_dir(db), e->key_locator + strlen("file:"));
	st->soft = read_key(path, pass, &why);
	if (st->soft == NULL) {
		*error_r = sp_xasprintf("%s: %s", e->nickname, why);
		free(why);
		free(path);
		return -1;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), st->soft) != 1) {
		ERR_clear_error();
		*error_r = sp_xasprintf("%s: the certificate %s does not match the key %s",
					e->nickname, e->cert_file, path);
		free(path);
		return -1;
	}
	free(path);
	if (key_type_of(st->soft, &st->type) < 0) {
		*error_r = sp_xasprintf("%s: key type %s is not supported (RSA or EC)", e->nickname,
					EVP_PKEY_get0_type_name(st->soft));
		return -1;
	}
	st->bits = (unsigned)EVP_PKEY_get_bits(st->soft);
	st->where = "soft";
	if (sy->set->accelerator != NULL) {
		const char *acc = sy->set->accelerator;
		struct keyd_token *kt;

		kt = token_get(sy, acc, strncmp(acc, "pkcs11:", 7) == 0 ? NULL : acc, error_r);
		if (kt == NULL) {
			char *e2 = *error_r;

			*error_r = sp_xasprintf("keyd.accelerator \"%s\": %s", acc, e2);
			free(e2);
			return -1;
		}
		if (!kt->ncp_session_open && keyd_ncp_session_open(sy->kd, kt, error_r) < 0)
			return -1;
		st->tokkey = keyd_ncp_load(kt, st->soft, st->id, e->nickname, &why);
		if (st->tokkey == NULL) {
			/* the key still works, in software: serve it, say why */
			sp_log(SP_LOG_WARN, "accelerator_skipped", "nickname=\"%s\" token=\"%s\" "
			       "error=\"%s\" placement=soft", e->nickname, p11_token_label(kt->tok),
			       why);
			free(why);
		} else {
			st->kt = kt;
			st->where = "accelerator,soft";
		}
	}
	return 0;
}

static int stage_pkcs11(struct sync *sy, const struct sp_certdb_entry *e, X509 *leaf,
			struct staged *st, char **error_r)
{
	struct p11_name name;
	struct p11_key_attrs attrs;
	struct keyd_token *kt;
	EVP_PKEY *pub;
	char *why = NULL;
	int ret = -1;

	if (p11_name_parse(e->key_locator, &name, &why) < 0) {
		*error_r = sp_xasprintf("%s: key locator: %s", e->nickname, why);
		free(why);
		return -1;
	}
	if (name.kind == P11_NAME_INTERNAL || (name.kind == P11_NAME_TOKEN && name.token == NULL)) {
		*error_r = sp_xasprintf("%s: key locator names no token", e->nickname);
		goto out;
	}
	if (name.object == NULL && name.id == NULL) {
		*error_r = sp_xasprintf("%s: key locator names no object (object= or id=)",
					e->nickname);
		goto out;
	}
	kt = token_get(sy, name.kind == P11_NAME_URI ? e->key_locator : name.token, name.token,
		       &why);
	if (kt == NULL) {
		*error_r = sp_xasprintf("%s: %s", e->nickname, why);
		free(why);
		goto out;
	}
	st->tokkey = p11_key_find(kt->tok, name.object, name.id, name.id_len, &why);
	if (st->tokkey == NULL) {
		*error_r = sp_xasprintf("%s: %s", e->nickname, why);
		free(why);
		goto out;
	}
	st->kt = kt;
	pub = p11_key_public(st->tokkey);
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), pub) != 1) {
		ERR_clear_error();
		*error_r = sp_xasprintf("%s: the certificate %s does not match the key %s on "
					"token \"%s\"", e->nickname, e->cert_file, e->key_locator,
					p11_token_label(kt->tok));
		goto out;
	}
	st->type = p11_key_type(st->tokkey) == P11_KEY_RSA ? ACCEL_KEY_RSA : ACCEL_KEY_EC;
	st->bits = p11_key_bits(st->tokkey);
	st->where = "token";
	if (p11_key_attributes(st->tokkey, &attrs, &why) == 0) {
		if (attrs.extractable || !attrs.sensitive)
			sp_log(SP_LOG_WARN, "key_extractable", "nickname=\"%s\" token=\"%s\" "
			       "sensitive=%s extractable=%s", e->nickname, p11_token_label(kt->tok),
			       attrs.sensitive ? "yes" : "no", attrs.extractable ? "yes" : "no");
	} else {
		free(why);
	}
	ret = 0;
out:
	p11_name_clear(&name);
	return ret;
}

static bool staged_has(const struct staged *list, const uint8_t id[ACCEL_KEY_ID_LEN])
{
	for (; list != NULL; list = list->next) {
		if (memcmp(list->id, id, ACCEL_KEY_ID_LEN) == 0)
			return true;
	}
	return false;
}

struct idset {
	uint8_t (*ids)[ACCEL_KEY_ID_LEN];
	size_t n;
};

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ACCEL_KEY_ID_LEN);
}

static bool idset_keep(const uint8_t id[ACCEL_KEY_ID_LEN], void *arg)
{
	const struct idset *set = arg;

	return bsearch(id, set->ids, set->n, ACCEL_KEY_ID_LEN, id_cmp) != NULL;
}

/* ---- commit ---- */

static int commit_tokens(struct sync *sy, char **error_r)
{
	struct keyd *kd = sy->kd;

	while (sy->fresh != NULL) {
		struct keyd_token *kt = sy->fresh;

		kt->be = accel_pkcs11_new(kt->tok, sy->set->p11_threads, sy->set->p11_max_queue,
					  error_r);
		if (kt->be == NULL)
			return -1;
		if (accel_engine_add_backend(kd->eng, kt->be, error_r) < 0) {
			kt->be->ops->free(kt->be);
			kt->be = NULL;
			return -1;
		}
		sy->fresh = kt->next;
		kt->next = kd->tokens;
		kd->tokens = kt;
	}
	return 0;
}

static int commit_key(struct sync *sy, struct staged *st, char **error_r)
{
	struct accel_key *key;
	char idhex[2 * ACCEL_KEY_ID_LEN + 1];
	void *bkey;

	key = accel_engine_add_key(sy->kd->eng, st->id, st->nickname, st->type, st->bits, error_r);
	if (key == NULL)
		return -1;
	if (st->tokkey != NULL) {
		bkey = accel_pkcs11_key(st->tokkey);
		st->tokkey = NULL;  /* the placement owns it now */
		if (accel_key_add_placement(key, st->kt->be, bkey, error_r) < 0) {
			st->kt->be->ops->key_free(st->kt->be, bkey);
			return -1;
		}
	}
	if (st->soft != NULL) {
		bkey = accel_soft_key(st->soft);
		if (bkey == NULL || accel_key_add_placement(key, sy->kd->soft, bkey, error_r) < 0) {
			EVP_PKEY_free(bkey);
			if (bkey == NULL)
				*error_r = sp_xstrdup("cannot reference the key");
			return -1;
		}
	}
	hex(st->id, sizeof(st->id), idhex);
	sp_log(SP_LOG_INFO, "key_loaded", "nickname=\"%s\" type=%s bits=%u key_id=%s "
	       "placement=%s%s%s", st->nickname, st->type == ACCEL_KEY_RSA ? "RSA" : "EC", st->bits,
	       idhex, st->where, st->kt != NULL ? " token=" : "",
	       st->kt != NULL ? p11_token_label(st->kt->tok) : "");
	return 0;
}

int keyd_keys_sync(struct keyd *kd, const struct keyd_settings *set, bool prune,
		   char **error_r)
{
	struct sync sy = { kd, set, NULL, NULL };
	struct staged *staged = NULL, **tail = &staged;
	struct idset keep = { NULL, 0 };
	struct sp_certdb *db;
	size_t kept = 0, added = 0, removed = 0;
	int ret = -1;

	db = sp_certdb_open(set->certdb_dir, error_r);
	if (db == NULL)
		return -1;
	keep.ids = sp_xcalloc(sp_certdb_count(db) + 1, ACCEL_KEY_ID_LEN);
	for (size_t i = 0; i < sp_certdb_count(db); i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);
		struct staged *st;
		X509 *leaf = NULL;
		char *why = NULL;
		int rc;

		if (e->kind != SP_CERTDB_CERT)
			continue;
		if (sp_certdb_load_cert(db, e, &leaf, NULL, &why) < 0) {
			*error_r = sp_xasprintf("%s: %s", e->nickname, why);
			free(why);
			goto out;
		}
		st = sp_xcalloc(1, sizeof(*st));
		if (keyd_key_id(X509_get0_pubkey(leaf), st->id) < 0) {
			*error_r = sp_xasprintf("%s: cannot encode the public key", e->nickname);
			X509_free(leaf);
			free(st);
			goto out;
		}
		memcpy(keep.ids[keep.n++], st->id, ACCEL_KEY_ID_LEN);
		if (accel_engine_find_key(kd->eng, st->id) != NULL || staged_has(staged, st->id)) {
			/* loaded already, or one key behind two certificates (a renewal) */
			kept += accel_engine_find_key(kd->eng, st->id) != NULL;
			X509_free(leaf);
			free(st);
			continue;
		}
		st->nickname = sp_xstrdup(e->nickname);
		if (strncmp(e->key_locator, "file:", 5) == 0)
			rc = stage_file(&sy, db, e, leaf, st, error_r);
		else
			rc = stage_pkcs11(&sy, e, leaf, st, error_r);
		X509_free(leaf);
		ERR_clear_error();
		if (rc < 0) {
			staged_free(st);
			goto out;
		}
		*tail = st;
		tail = &st->next;
	}
	/* everything loaded and checked: from here on the key set changes */
	if (commit_tokens(&sy, error_r) < 0)
		goto out;
	while (staged != NULL) {
		struct staged *st = staged;

		staged = st->next;
		if (commit_key(&sy, st, error_r) < 0) {
			staged_free(st);
			goto out;
		}
		staged_free(st);
		added++;
	}
	if (prune) {
		qsort(keep.ids, keep.n, ACCEL_KEY_ID_LEN, id_cmp);
		removed = accel_engine_prune(kd->eng, idset_keep, &keep);
	}
	sp_log(SP_LOG_INFO, "keys_synced", "certdb=\"%s\" added=%zu kept=%zu removed=%zu keys=%zu",
	       set->certdb_dir, added, kept, removed, accel_engine_key_count(kd->eng));
	ret = 0;
out:
	while (staged != NULL) {
		struct staged *st = staged;

		staged = st->next;
		staged_free(st);
	}
	while (sy.fresh != NULL) {
		struct keyd_token *kt = sy.fresh;

		sy.fresh = kt->next;
		token_free(kt);
	}
	free(keep.ids);
	sp_pinfile_free(&sy.pins);
	sp_certdb_free(&db);
	return ret;
}
