/* The SSL_CTXs of one configuration: per service, one context per group of
 * certificates that share the same names (an RSA and an ECDSA certificate for
 * the same names live in one context, and OpenSSL offers the one the client's
 * signature algorithms allow); SNI switches between the groups. Policy:
 * minimum version, cipher lists, groups, no compression, no renegotiation,
 * server preference, session cache, session tickets with rotating keys,
 * client certificates against the certdb's client CAs and CRLs. Private keys
 * are handles from the keyd client: no key is ever loaded here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "certdb/certdb.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tlsd/tlsd_int.h"
#include "tlsd/tlsd_keyclient.h"

#define TLSD_MAX_NICKNAMES 32
#define TLSD_VERIFY_DEPTH 5

/* Certificates sharing one set of names, in one SSL_CTX. */
struct ctx_group {
	SSL_CTX *ctx;
	X509 *leaf;  /* the first one, for SNI matching (borrowed from ctx) */
};

struct svc_ctx {
	const struct tlsd_service *svc;
	struct ctx_group *groups;
	size_t n_groups;
};

struct tlsd_ctxset {
	int refs;
	struct tlsd_config *cfg;
	struct svc_ctx *svcs;
	size_t n_svcs;
};

static int ex_svc_idx = -1;     /* SSL_CTX -> struct svc_ctx */
static int ex_verify_idx = -1;  /* SSL -> first verify error + 1 */

/* ---- session ticket keys ----
 * Keys are derived from a seed the master draws once, before it forks its
 * workers, and from the rotation epoch: every worker computes the same key
 * for the same epoch without talking to anyone, so a ticket issued by one
 * worker is accepted by all. The previous epoch's key still decrypts (and
 * asks for a renewed ticket). */
static unsigned char ticket_seed[32];
static int ticket_seed_set;
static long ticket_rotation_ms = 12L * 3600 * 1000;

struct ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

int tlsd_tickets_init(char **error_r)
{
	if (RAND_priv_bytes(ticket_seed, sizeof(ticket_seed)) != 1) {
		*error_r = sp_xstrdup("RAND_priv_bytes failed for the ticket key seed");
		return -1;
	}
	ticket_seed_set = 1;
	return 0;
}

static int ticket_key_derive(uint64_t epoch, struct ticket_key *k)
{
	unsigned char in[16 + 8 + 1], out[32];
	unsigned char *dst[3] = { k->name, k->aes, k->hmac };
	size_t lens[3] = { sizeof(k->name), sizeof(k->aes), sizeof(k->hmac) };
	size_t outlen;

	memcpy(in, "sealpost-ticket:", 16);
	for (int i = 0; i < 8; i++)
		in[16 + i] = (unsigned char)(epoch >> (56 - 8 * i));
	for (int i = 0; i < 3; i++) {
		in[24] = (unsigned char)(i + 1);
		if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ticket_seed, sizeof(ticket_seed),
			      in, sizeof(in), out, sizeof(out), &outlen) == NULL)
			return -1;
		memcpy(dst[i], out, lens[i]);
	}
	OPENSSL_cleanse(out, sizeof(out));
	return 0;
}

static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct timespec ts;
	uint64_t now_ms, epoch;
	struct ticket_key k;
	OSSL_PARAM params[3];
	int ret = -1;

	if (!ticket_seed_set || clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -1;
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	epoch = now_ms / (uint64_t)ticket_rotation_ms;
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		if (ticket_key_derive(epoch, &k) < 0 || RAND_bytes(iv, 16) != 1)
			goto out;
		memcpy(key_name, k.name, sizeof(k.name));
		params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
		if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
		    EVP_MAC_CTX_set_params(hctx, params) != 1)
			goto out;
		ret = 1;
		goto out;
	}
	ret = 0;  /* unknown key name: full handshake, new ticket */
	for (uint64_t back = 0; back < 2 && back <= epoch; back++) {
		if (ticket_key_derive(epoch - back, &k) < 0) {
			ret = -1;
			break;
		}
		if (memcmp(key_name, k.name, sizeof(k.name)) != 0)
			continue;
		params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
		if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 ||
		    EVP_MAC_CTX_set_params(hctx, params) != 1) {
			ret = -1;
			break;
		}
		ret = back == 0 ? 1 : 2;  /* 2: valid, but issue a ticket under the new key */
		break;
	}
out:
	OPENSSL_cleanse(&k, sizeof(k));
	return ret;
}

/* ---- client certificates ---- */

long tlsd_ctx_verify_result(SSL *ssl)
{
	intptr_t v = (intptr_t)SSL_get_ex_data(ssl, ex_verify_idx);

	return v == 0 ? X509_V_OK : (long)(v - 1);
}

static int verify_cb(int preverify_ok, X509_STORE_CTX *sctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	int err = X509_STORE_CTX_get_error(sctx);

	if (!preverify_ok && err == X509_V_ERR_UNABLE_TO_GET_CRL) {
		/* CRL checking applies to the CAs that publish CRLs in the certdb;
		 * a CA without one is not an error. */
		X509_STORE_CTX_set_error(sctx, X509_V_OK);
		return 1;
	}
	if (!preverify_ok && ssl != NULL) {
		if (SSL_get_ex_data(ssl, ex_verify_idx) == NULL)
			SSL_set_ex_data(ssl, ex_verify_idx, (void *)(intptr_t)(err + 1));
		if (SSL_get_verify_mode(ssl) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT)
			return 0;  /* require: a bad certificate ends the handshake */
		return 1;          /* request: the result is passed on to the backend */
	}
	return preverify_ok;
}

/* ---- SNI ---- */

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct svc_ctx *sc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_svc_idx);

	if (name == NULL || sc == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < sc->n_groups; i++) {
		if (X509_check_host(sc->groups[i].leaf, name, 0, 0, NULL) == 1) {
			if (SSL_get_SSL_CTX(ssl) != sc->groups[i].ctx &&
			    SSL_set_SSL_CTX(ssl, sc->groups[i].ctx) == NULL)
				return SSL_TLSEXT_ERR_ALERT_FATAL;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* No certificate names it: the default one is served, the client decides. */
	return SSL_TLSEXT_ERR_OK;
}

/* ---- building ---- */

static char *ossl_error(const char *what)
{
	char buf[256];

	tlsd_ssl_errors(buf, sizeof(buf));
	return sp_xasprintf("%s: %s", what, buf);
}

struct client_trust {
	X509_STORE *store;
	STACK_OF(X509_NAME) *names;
	int n_cas;
};

static SSL_CTX *policy_ctx(const struct tlsd_service *s, const struct client_trust *trust,
			   char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned char sid_ctx[SSL_MAX_SID_CTX_LENGTH];
	size_t sid_len = strlen(s->name);

	if (ctx == NULL) {
		*error_r = ossl_error("SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, s->policy.min_version) != 1) {
		*error_r = ossl_error("minimum TLS version");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC | SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, s->policy.ciphers) != 1) {
		*error_r = sp_xasprintf("service %s: cipher list \"%s\" selects no cipher",
					s->name, s->policy.ciphers);
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, s->policy.suites) != 1) {
		*error_r = sp_xasprintf("service %s: bad TLS 1.3 suites \"%s\"", s->name,
					s->policy.suites);
		goto fail;
	}
	if (SSL_CTX_set1_groups_list(ctx, s->policy.groups) != 1) {
		*error_r = sp_xasprintf("service %s: bad groups \"%s\"", s->name, s->policy.groups);
		goto fail;
	}
	if (s->policy.cache_size == 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, s->policy.cache_size);
	}
	/* Sessions resume only within the service that made them. */
	if (sid_len > sizeof(sid_ctx))
		sid_len = sizeof(sid_ctx);
	memcpy(sid_ctx, s->name, sid_len);
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, (unsigned)sid_len) != 1) {
		*error_r = ossl_error("session id context");
		goto fail;
	}
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1) {
		*error_r = ossl_error("ticket key callback");
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
	if (s->policy.clientauth != TLSD_CLIENTAUTH_NONE) {
		STACK_OF(X509_NAME) *names;
		int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;

		if (trust->n_cas == 0) {
			*error_r = sp_xasprintf("service %s: sslclientauth needs a certdb CA with trust "
						"\"client\"", s->name);
			goto fail;
		}
		if (s->policy.clientauth == TLSD_CLIENTAUTH_REQUIRE)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, verify_cb);
		SSL_CTX_set_verify_depth(ctx, TLSD_VERIFY_DEPTH);
		if (SSL_CTX_set1_verify_cert_store(ctx, trust->store) != 1) {
			*error_r = ossl_error("client CA store");
			goto fail;
		}
		names = SSL_dup_CA_list(trust->names);
		if (names == NULL) {
			*error_r = ossl_error("client CA names");
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int load_trust(const struct sp_certdb *db, struct client_trust *trust, char **error_r)
{
	STACK_OF(X509_CRL) *crls = NULL;

	trust->store = X509_STORE_new();
	trust->names = sk_X509_NAME_new_null();
	if (trust->store == NULL || trust->names == NULL) {
		*error_r = ossl_error("X509_STORE_new");
		return -1;
	}
	for (size_t i = 0; i < sp_certdb_count(db); i++) {
		const struct sp_certdb_entry *e = sp_certdb_at(db, i);
		X509 *ca = NULL;
		X509_NAME *name;

		if (e->kind != SP_CERTDB_CA || !(e->trust & SP_CERTDB_TRUST_CLIENT))
			continue;
		if (sp_certdb_load_cert(db, e, &ca, NULL, error_r) < 0)
			return -1;
		name = X509_NAME_dup(X509_get_subject_name(ca));
		if (X509_STORE_add_cert(trust->store, ca) != 1 || name == NULL ||
		    sk_X509_NAME_push(trust->names, name) <= 0) {
			X509_NAME_free(name);
			X509_free(ca);
			*error_r = ossl_error("adding a client CA");
			return -1;
		}
		X509_free(ca);
		trust->n_cas++;
	}
	if (sp_certdb_load_crls(db, &crls, error_r) < 0)
		return -1;
	for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
		if (X509_STORE_add_crl(trust->store, sk_X509_CRL_value(crls, i)) != 1) {
			sk_X509_CRL_pop_free(crls, X509_CRL_free);
			*error_r = ossl_error("adding a CRL");
			return -1;
		}
	}
	if (sk_X509_CRL_num(crls) > 0)
		X509_STORE_set_flags(trust->store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	return 0;
}

/* The names a certificate answers to, as one comparable string: its DNS and
 * IP subjectAltNames in order, or its CN when it has none. */
static char *cert_names(X509 *cert)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	char *out = sp_xstrdup("");

	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		char *next;

		if (gn->type == GEN_DNS) {
			next = sp_xasprintf("%s|dns:%.*s", out, ASN1_STRING_length(gn->d.dNSName),
					    (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
		} else if (gn->type == GEN_IPADD) {
			char hex[40] = "";
			int n = ASN1_STRING_length(gn->d.iPAddress);
			const unsigned char *p = ASN1_STRING_get0_data(gn->d.iPAddress);

			for (int j = 0; j < n && j < 16; j++)
				snprintf(hex + 2 * j, 3, "%02x", p[j]);
			next = sp_xasprintf("%s|ip:%s", out, hex);
		} else {
			continue;
		}
		free(out);
		out = next;
	}
	GENERAL_NAMES_free(sans);
	if (out[0] == '\0') {
		char cn[256] = "";

		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
		free(out);
		out = sp_xasprintf("cn:%s", cn);
	}
	return out;
}

static int svc_build(struct svc_ctx *sc, const struct sp_certdb *db,
		     const struct client_trust *trust, struct tlsd_keyclient *kc, char **error_r)
{
	const struct tlsd_service *s = sc->svc;
	char *group_names[TLSD_MAX_NICKNAMES] = { NULL };
	int group_types[TLSD_MAX_NICKNAMES] = { 0 };  /* bit per key type used */
	int ret = -1;

	if (s->n_nicknames > TLSD_MAX_NICKNAMES) {
		*error_r = sp_xasprintf("service %s: more than %d sslnicknames", s->name,
					TLSD_MAX_NICKNAMES);
		return -1;
	}
	sc->groups = sp_xcalloc(s->n_nicknames ? s->n_nicknames : 1, sizeof(*sc->groups));
	for (size_t i = 0; i < s->n_nicknames; i++) {
		const char *nick = s->nicknames[i];
		const struct sp_certdb_entry *e = sp_certdb_find(db, nick);
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = NULL;
		EVP_PKEY *pkey = NULL;
		char *names, *err = NULL;
		size_t g;
		int type_bit, ok;

		if (e == NULL || e->kind != SP_CERTDB_CERT) {
			*error_r = sp_xasprintf("service %s: no certificate \"%s\" in the certdb %s",
						s->name, nick, sp_certdb_dir(db));
			goto out;
		}
		if (sp_certdb_load_cert(db, e, &leaf, &chain, &err) < 0) {
			*error_r = sp_xasprintf("service %s: certificate \"%s\": %s", s->name, nick, err);
			free(err);
			goto out;
		}
		type_bit = EVP_PKEY_is_a(X509_get0_pubkey(leaf), "RSA") ? 1
			 : EVP_PKEY_is_a(X509_get0_pubkey(leaf), "EC") ? 2 : 4;
		names = cert_names(leaf);
		for (g = 0; g < sc->n_groups; g++) {
			if (strcmp(group_names[g], names) == 0)
				break;
		}
		if (g == sc->n_groups) {
			sc->groups[g].ctx = policy_ctx(s, trust, error_r);
			if (sc->groups[g].ctx == NULL) {
				free(names);
				X509_free(leaf);
				sk_X509_pop_free(chain, X509_free);
				goto out;
			}
			SSL_CTX_set_ex_data(sc->groups[g].ctx, ex_svc_idx, sc);
			group_names[g] = names;
			sc->n_groups++;
		} else {
			free(names);
		}
		if (group_types[g] & type_bit) {
			*error_r = sp_xasprintf("service %s: certificate \"%s\" has the same names and "
						"key type as an earlier one", s->name, nick);
			X509_free(leaf);
			sk_X509_pop_free(chain, X509_free);
			goto out;
		}
		group_types[g] |= type_bit;
		if (kc != NULL) {
			pkey = tlsd_keyclient_pkey(kc, leaf, &err);
			if (pkey == NULL) {
				*error_r = sp_xasprintf("service %s: key of \"%s\": %s", s->name, nick,
							err ? err : "?");
				free(err);
				X509_free(leaf);
				sk_X509_pop_free(chain, X509_free);
				goto out;
			}
		}
		ok = SSL_CTX_use_cert_and_key(sc->groups[g].ctx, leaf, pkey, chain, 1);
		EVP_PKEY_free(pkey);
		if (ok == 1 && sc->groups[g].leaf == NULL)
			sc->groups[g].leaf = leaf;  /* the ctx holds a reference */
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
		if (ok != 1) {
			char *why = ossl_error("certificate and key");

			*error_r = sp_xasprintf("service %s: \"%s\": %s", s->name, nick, why);
			free(why);
			goto out;
		}
	}
	ret = 0;
out:
	for (size_t g = 0; g < TLSD_MAX_NICKNAMES; g++)
		free(group_names[g]);
	return ret;
}

static void ctxset_free(struct tlsd_ctxset *set)
{
	for (size_t i = 0; i < set->n_svcs; i++) {
		for (size_t g = 0; g < set->svcs[i].n_groups; g++)
			SSL_CTX_free(set->svcs[i].groups[g].ctx);
		free(set->svcs[i].groups);
	}
	free(set->svcs);
	tlsd_config_free(&set->cfg);
	free(set);
}

struct tlsd_ctxset *tlsd_ctxset_new(struct tlsd_config *cfg, struct tlsd_keyclient *kc,
				    char **error_r)
{
	struct tlsd_ctxset *set;
	struct sp_certdb *db = NULL;
	struct client_trust trust = { NULL, NULL, 0 };
	bool need_db = false;

	if (ex_svc_idx < 0) {
		ex_svc_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		ex_verify_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (ex_svc_idx < 0 || ex_verify_idx < 0) {
			*error_r = sp_xstrdup("OpenSSL ex_data indexes");
			return NULL;
		}
	}
	ticket_rotation_ms = cfg->ticket_rotation_ms;
	for (size_t i = 0; i < cfg->n_services; i++)
		need_db |= cfg->services[i].n_nicknames > 0;

	set = sp_xcalloc(1, sizeof(*set));
	set->refs = 1;
	set->svcs = sp_xcalloc(cfg->n_services ? cfg->n_services : 1, sizeof(*set->svcs));
	set->n_svcs = cfg->n_services;
	for (size_t i = 0; i < cfg->n_services; i++)
		set->svcs[i].svc = &cfg->services[i];
	if (need_db) {
		char *err = NULL;

		db = sp_certdb_open(cfg->certdb_dir, &err);
		if (db == NULL) {
			*error_r = sp_xasprintf("certdb %s: %s", cfg->certdb_dir, err ? err : "?");
			free(err);
			goto fail;
		}
		if (load_trust(db, &trust, error_r) < 0)
			goto fail;
	}
	for (size_t i = 0; i < set->n_svcs; i++) {
		if (svc_build(&set->svcs[i], db, &trust, kc, error_r) < 0)
			goto fail;
	}
	X509_STORE_free(trust.store);
	sk_X509_NAME_pop_free(trust.names, X509_NAME_free);
	sp_certdb_free(&db);
	ERR_clear_error();
	set->cfg = cfg;
	return set;
fail:
	X509_STORE_free(trust.store);
	sk_X509_NAME_pop_free(trust.names, X509_NAME_free);
	sp_certdb_free(&db);
	set->cfg = NULL;  /* the caller keeps cfg on failure */
	ctxset_free(set);
	ERR_clear_error();
	return NULL;
}

void tlsd_ctxset_ref(struct tlsd_ctxset *set)
{
	set->refs++;
}

void tlsd_ctxset_unref(struct tlsd_ctxset **setp)
{
	struct tlsd_ctxset *set = *setp;

	if (set == NULL)
		return;
	*setp = NULL;
	if (--set->refs == 0)
		ctxset_free(set);
}

const struct tlsd_config *tlsd_ctxset_config(const struct tlsd_ctxset *set)
{
	return set->cfg;
}

SSL_CTX *tlsd_ctxset_ctx(const struct tlsd_ctxset *set, const char *service)
{
	for (size_t i = 0; i < set->n_svcs; i++) {
		if (strcmp(set->svcs[i].svc->name, service) == 0)
			return set->svcs[i].n_groups > 0 ? set->svcs[i].groups[0].ctx : NULL;
	}
	return NULL;
}
