/* End to end through keyd: a real bin/keyd (fork/exec, control socketpair,
 * a temp certdb with an RSA-2048 and a P-256 key made here), a
 * tlsd_keyclient on a worker channel, and real in-memory TLS 1.2 and 1.3
 * handshakes whose server runs with SSL_MODE_ASYNC and keyd-held keys; the
 * client is plain OpenSSL and verifies the signatures. Then keyd is killed
 * with an operation in flight (the handshake fails, never hangs), a new
 * keyd is attached, and handshakes succeed again. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "accel/keyd_proto.h"
#include "common/fdpass.h"
#include "common/frame.h"
#include "common/log.h"
#include "tlsd/tlsd_keyclient.h"

#define PASS "correct horse battery staple"

struct keyd_proc {
	pid_t pid;
	int ctl;  /* our end of the control socketpair */
};

static char tmpdir[256];
static char keyd_bin[PATH_MAX + 16];
static EVP_PKEY *rsa_key, *ec_key, *stray_key;
static X509 *rsa_cert, *ec_cert, *stray_cert;
static struct event_base *base;

/* ---------------- fixtures ---------------- */

static X509 *self_signed(EVP_PKEY *pkey, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	assert_int_equal(X509_set_pubkey(x, pkey), 1);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	return x;
}

static void write_text(const char *rel, const char *text, mode_t mode)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static void write_cert(const char *rel, X509 *x)
{
	char path[512];
	BIO *b;

	snprintf(path, sizeof(path), "%s/certdb/%s", tmpdir, rel);
	b = BIO_new_file(path, "w");
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	BIO_free(b);
}

static void write_key(const char *rel, EVP_PKEY *pkey)
{
	char path[512];
	BIO *b;

	snprintf(path, sizeof(path), "%s/certdb/%s", tmpdir, rel);
	b = BIO_new_file(path, "w");
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, pkey, EVP_aes_256_cbc(), PASS,
						       (int)strlen(PASS), NULL, NULL), 1);
	BIO_free(b);
}

static int group_setup(void **state)
{
	char path[512], exe[PATH_MAX];
	ssize_t n;

	/* keyd sits beside the tests' directory: bin/tests/.. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(keyd_bin, sizeof(keyd_bin), "%s/../keyd", exe);
	if (access(keyd_bin, X_OK) != 0) {
		fprintf(stderr, "test_keyd_e2e: %s not built\n", keyd_bin);
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/keyd-e2e-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/certdb", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/certdb/certs", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/certdb/keys", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);

	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	stray_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(rsa_key);
	assert_non_null(ec_key);
	assert_non_null(stray_key);
	rsa_cert = self_signed(rsa_key, "rsa.test");
	ec_cert = self_signed(ec_key, "ec.test");
	stray_cert = self_signed(stray_key, "stray.test");
	write_cert("certs/rsa.pem", rsa_cert);
	write_cert("certs/ec.pem", ec_cert);
	write_key("keys/rsa.p8", rsa_key);
	write_key("keys/ec.p8", ec_key);
	write_text("certdb/index",
		   "# test db\n"
		   "cert\tServer-Cert\tcerts/rsa.pem\tfile:keys/rsa.p8\n"
		   "cert\tServer-EC\tcerts/ec.pem\tfile:keys/ec.p8\n",
		   0644);
	write_text("sslpassword.conf", "Internal (Software) Token:" PASS "\n", 0600);
	write_text("badpass.conf", "Internal (Software) Token:not-the-right-one\n", 0600);
	write_text("sealpost.conf", "log.level = info\nkeyd.threads = 2\n", 0644);
	/* the bad config names its password file by absolute path */
	{
		char text[512];

		snprintf(text, sizeof(text), "keyd.threads = 1\nsslpasswordfile = %s/badpass.conf\n",
			 tmpdir);
		write_text("badpass-sealpost.conf", text, 0644);
	}
	base = event_base_new();
	assert_non_null(base);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[300];

	event_base_free(base);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(stray_key);
	X509_free(rsa_cert);
	X509_free(ec_cert);
	X509_free(stray_cert);
	if (tmpdir[0] != '\0' && strncmp(tmpdir, "/tmp/keyd-e2e-", 14) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "test_keyd_e2e: cannot remove %s\n", tmpdir);
	}
	return 0;
}

/* ---------------- keyd processes ---------------- */

static struct keyd_proc keyd_start(const char *conf_name)
{
	struct keyd_proc kp;
	char conf[512], fdarg[16];
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	kp.pid = fork();
	assert_true(kp.pid >= 0);
	if (kp.pid == 0) {
		int fd = dup(sv[1]);  /* without CLOEXEC: keyd inherits it */

		if (fd < 0)
			_exit(126);
		snprintf(conf, sizeof(conf), "%s/%s", tmpdir, conf_name);
		snprintf(fdarg, sizeof(fdarg), "%d", fd);
		execl(keyd_bin, "keyd", "-c", conf, "-C", fdarg, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	kp.ctl = sv[0];
	return kp;
}

/* A new worker channel: one end to keyd via NEWCHAN, the other returned. */
static int keyd_newchan(struct keyd_proc *kp)
{
	struct sp_msgbuf b;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	sp_msgbuf_init(&b, KEYD_MAX_FRAME);
	assert_int_equal(keyd_ctl_encode_newchan(&b), 0);
	assert_int_equal(sp_fd_send(kp->ctl, sv[1], b.data, b.len), 0);
	sp_msgbuf_release(&b);
	close(sv[1]);
	return sv[0];
}

static int wait_exit(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

static void keyd_stop(struct keyd_proc *kp)
{
	close(kp->ctl);  /* EOF on control: keyd exits cleanly */
	int status = wait_exit(kp->pid);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Blocking request/reply on a raw channel (no keyclient). */
static int raw_roundtrip(int fd, const struct keyd_req *req, struct keyd_reply *reply)
{
	struct sp_frame_reader *rd = sp_frame_reader_new(KEYD_MAX_FRAME);
	struct sp_msgbuf b;
	const uint8_t *body;
	const char *why;
	uint8_t buf[512];
	size_t len;
	int rc = 0;

	sp_msgbuf_init(&b, KEYD_MAX_FRAME);
	assert_int_equal(keyd_req_encode(&b, req), 0);
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	sp_msgbuf_release(&b);
	while (rc == 0) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0) {
			sp_frame_reader_free(&rd);
			return -1;
		}
		assert_int_equal(sp_frame_reader_feed(rd, buf, (size_t)n, &why), 0);
		rc = sp_frame_reader_next(rd, &body, &len, &why);
		assert_true(rc >= 0);
	}
	assert_int_equal(keyd_reply_decode(body, len, reply, &why), 0);
	sp_frame_reader_free(&rd);
	return 0;
}

/* Returns once keyd serves channels (keys loaded): a PING round trip on a
 * channel of its own. */
static void keyd_wait_ready(struct keyd_proc *p)
{
	int fd = keyd_newchan(p);
	struct keyd_req ping = { .type = KEYD_REQ_PING, .id = 1 };
	struct keyd_reply reply;

	assert_int_equal(raw_roundtrip(fd, &ping, &reply), 0);
	assert_int_equal(reply.status, ACCEL_OK);
	close(fd);
}

/* ---------------- handshakes ---------------- */

struct async_wait {
	bool fired;
};

static void async_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct async_wait *w = arg;

	w->fired = true;
	event_base_loopbreak(base);
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	fail_msg("handshake did not finish in 20 s (a hang)");
}

/* Waits (on the event loop, which also serves the keyclient) until one of
 * the server's async fds is readable. */
static void wait_async(SSL *s)
{
	OSSL_ASYNC_FD fds[4];
	size_t n = 0;
	struct async_wait w = { false };
	struct event *evs[4], *guard;
	struct timeval tv = { 20, 0 };

	assert_int_equal(SSL_get_all_async_fds(s, NULL, &n), 1);
	assert_true(n >= 1 && n <= 4);
	assert_int_equal(SSL_get_all_async_fds(s, fds, &n), 1);
	for (size_t i = 0; i < n; i++) {
		evs[i] = event_new(base, fds[i], EV_READ, async_ready_cb, &w);
		assert_int_equal(event_add(evs[i], NULL), 0);
	}
	guard = evtimer_new(base, guard_cb, NULL);
	evtimer_add(guard, &tv);
	while (!w.fired)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
	event_free(guard);
	for (size_t i = 0; i < n; i++)
		event_free(evs[i]);
}

struct hs_opts {
	int version;            /* TLS1_2_VERSION or TLS1_3_VERSION */
	const char *client_sigalgs;
	bool no_async;
	void (*on_want_async)(void);  /* called at the first WANT_ASYNC */
};

static SSL_CTX *server_ctx(struct tlsd_keyclient *kc, X509 *cert, const struct hs_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char *error = NULL;
	EVP_PKEY *pkey;

	assert_non_null(ctx);
	SSL_CTX_set_min_proto_version(ctx, o->version);
	SSL_CTX_set_max_proto_version(ctx, o->version);
	if (!o->no_async)
		SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC);
	pkey = tlsd_keyclient_pkey(kc, cert, &error);
	if (pkey == NULL)
		fail_msg("tlsd_keyclient_pkey: %s", error);
	if (SSL_CTX_use_cert_and_key(ctx, cert, pkey, NULL, 1) != 1) {
		ERR_print_errors_fp(stderr);
		fail_msg("SSL_CTX_use_cert_and_key refused the handle key");
	}
	EVP_PKEY_free(pkey);
	return ctx;
}

static SSL_CTX *client_ctx(X509 *trusted, const struct hs_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_min_proto_version(ctx, o->version);
	SSL_CTX_set_max_proto_version(ctx, o->version);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), trusted), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (o->client_sigalgs != NULL)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(ctx, o->client_sigalgs), 1);
	return ctx;
}

/* Runs one handshake; returns 1 on success, 0 on a clean failure. On
 * success *sig_nid_r is the signature type the client saw. */
static int handshake(struct tlsd_keyclient *kc, X509 *cert, X509 *trusted, const struct hs_opts *o,
		     int *sig_nid_r)
{
	SSL_CTX *sctx = server_ctx(kc, cert, o), *cctx = client_ctx(trusted, o);
	SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
	BIO *bs, *bc;
	bool cdone = false, sdone = false, failed = false, hooked = false;
	int rounds = 0;

	assert_non_null(s);
	assert_non_null(c);
	assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
	SSL_set_bio(s, bs, bs);
	SSL_set_bio(c, bc, bc);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	while (!(cdone && sdone) && !failed) {
		assert_true(++rounds < 1000);
		if (!cdone) {
			int r = SSL_do_handshake(c);

			if (r == 1)
				cdone = true;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
				failed = true;
		}
		if (!sdone && !failed) {
			int r = SSL_do_handshake(s);
			int err = SSL_get_error(s, r);

			if (r == 1) {
				sdone = true;
			} else if (err == SSL_ERROR_WANT_ASYNC) {
				if (!hooked && o->on_want_async != NULL) {
					hooked = true;
					o->on_want_async();
				}
				wait_async(s);
			} else if (err != SSL_ERROR_WANT_READ) {
				failed = true;
			}
		}
	}
	if (!failed && sig_nid_r != NULL)
		assert_int_equal(SSL_get_peer_signature_type_nid(c, sig_nid_r), 1);
	if (!failed)
		assert_int_equal(SSL_get_verify_result(c), X509_V_OK);
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return failed ? 0 : 1;
}

/* ---------------- tests ---------------- */

static struct keyd_proc kp;
static struct tlsd_keyclient *kc;

static int keyd_setup(void **state)
{
	char *error = NULL;

	kp = keyd_start("sealpost.conf");
	keyd_wait_ready(&kp);
	kc = tlsd_keyclient_new(base, 5000, &error);
	assert_non_null(kc);
	assert_int_equal(tlsd_keyclient_set_fd(kc, keyd_newchan(&kp)), 0);
	assert_int_equal(tlsd_keyclient_connected(kc), 1);
	return 0;
}

static int keyd_teardown(void **state)
{
	tlsd_keyclient_free(&kc);
	if (kp.pid > 0)
		keyd_stop(&kp);
	return 0;
}

static void test_tls13_rsa_pss(void **state)
{
	struct hs_opts o = { .version = TLS1_3_VERSION };
	int nid = 0;

	assert_int_equal(handshake(kc, rsa_cert, rsa_cert, &o, &nid), 1);
	assert_int_equal(nid, NID_rsassaPss);
	assert_int_equal(tlsd_keyclient_pending(kc), 0);
}

static void test_tls12_rsa_pkcs1(void **state)
{
	struct hs_opts o = { .version = TLS1_2_VERSION, .client_sigalgs = "RSA+SHA256" };
	int nid = 0;

	assert_int_equal(handshake(kc, rsa_cert, rsa_cert, &o, &nid), 1);
	assert_int_equal(nid, NID_rsaEncryption);
}

static void test_tls12_rsa_pss_sha384(void **state)
{
	struct hs_opts o = { .version = TLS1_2_VERSION, .client_sigalgs = "rsa_pss_rsae_sha384" };
	int nid = 0;

	assert_int_equal(handshake(kc, rsa_cert, rsa_cert, &o, &nid), 1);
	assert_int_equal(nid, NID_rsassaPss);
}

static void test_tls13_ecdsa(void **state)
{
	struct hs_opts o = { .version = TLS1_3_VERSION };
	int nid = 0;

	assert_int_equal(handshake(kc, ec_cert, ec_cert, &o, &nid), 1);
	assert_int_equal(nid, NID_X9_62_id_ecPublicKey);
}

static void test_tls12_ecdsa(void **state)
{
	struct hs_opts o = { .version = TLS1_2_VERSION, .client_sigalgs = "ECDSA+SHA256" };
	int nid = 0;

	assert_int_equal(handshake(kc, ec_cert, ec_cert, &o, &nid), 1);
	assert_int_equal(nid, NID_X9_62_id_ecPublicKey);
}

static const char *provider_of(const EVP_PKEY *pkey)
{
	const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(pkey);

	return prov != NULL ? OSSL_PROVIDER_get0_name(prov) : "(legacy)";
}

static void test_default_provider_still_first(void **state)
{
	EVP_PKEY *fresh = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *handle;
	X509 *parsed;
	BIO *mem = BIO_new(BIO_s_mem());
	char *error = NULL;

	/* with the keyd provider loaded, ordinary keys and certificates are
	 * still the default provider's; only handles are ours */
	assert_non_null(fresh);
	assert_string_equal(provider_of(fresh), "default");
	assert_int_equal(PEM_write_bio_X509(mem, ec_cert), 1);
	parsed = PEM_read_bio_X509(mem, NULL, NULL, NULL);
	assert_non_null(parsed);
	assert_string_equal(provider_of(X509_get0_pubkey(parsed)), "default");
	handle = tlsd_keyclient_pkey(kc, parsed, &error);
	assert_non_null(handle);
	assert_string_equal(provider_of(handle), "sealpost-keyd");
	assert_true(EVP_PKEY_is_a(handle, "EC"));
	assert_int_equal(EVP_PKEY_get_bits(handle), 256);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(parsed), handle), 1);
	assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(rsa_cert), handle), 1);
	EVP_PKEY_free(handle);
	X509_free(parsed);
	BIO_free(mem);
	EVP_PKEY_free(fresh);
}

static void test_no_async_job_fails(void **state)
{
	struct hs_opts o = { .version = TLS1_3_VERSION, .no_async = true };

	/* without SSL_MODE_ASYNC the sign must fail, never block the loop */
	assert_int_equal(handshake(kc, ec_cert, ec_cert, &o, NULL), 0);
	assert_int_equal(tlsd_keyclient_pending(kc), 0);
}

static void test_unknown_key_fails(void **state)
{
	struct hs_opts o = { .version = TLS1_3_VERSION };

	assert_int_equal(handshake(kc, stray_cert, stray_cert, &o, NULL), 0);
	assert_int_equal(tlsd_keyclient_pending(kc), 0);
	/* the channel survives a refused key */
	assert_int_equal(tlsd_keyclient_connected(kc), 1);
	o.version = TLS1_2_VERSION;
	assert_int_equal(handshake(kc, ec_cert, ec_cert, &o, NULL), 1);
}

static void test_malformed_request_closes_channel(void **state)
{
	int fd = keyd_newchan(&kp);
	static const uint8_t junk[] = { 0, 0, 0, 3, 1, 99, 0 };  /* unknown type */
	struct keyd_req ping = { .type = KEYD_REQ_PING, .id = 7 };
	struct keyd_reply reply;
	char c;

	/* a well-formed ping is answered (keyd serves this channel)... */
	assert_int_equal(raw_roundtrip(fd, &ping, &reply), 0);
	assert_int_equal(reply.id, 7);
	assert_int_equal(reply.status, ACCEL_OK);
	/* ...and a malformed frame closes it */
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	assert_int_equal(read(fd, &c, 1), 0);
	close(fd);
	/* other channels are unaffected */
	struct hs_opts o = { .version = TLS1_3_VERSION };

	assert_int_equal(handshake(kc, ec_cert, ec_cert, &o, NULL), 1);
}

static void kill_keyd(void)
{
	/* the request is in flight (sent, or about to be): keyd dies now */
	assert_int_equal(tlsd_keyclient_pending(kc), 1);
	assert_int_equal(kill(kp.pid, SIGKILL), 0);
	int status = wait_exit(kp.pid);

	assert_true(WIFSIGNALED(status));
	kp.pid = -1;
	close(kp.ctl);
}

static void test_keyd_dies_midway(void **state)
{
	struct hs_opts o = { .version = TLS1_3_VERSION };
	char *error = NULL;

	/* SIGSTOP keeps keyd from answering, so the op is surely pending */
	assert_int_equal(kill(kp.pid, SIGSTOP), 0);
	o.on_want_async = kill_keyd;
	assert_int_equal(handshake(kc, rsa_cert, rsa_cert, &o, NULL), 0);
	assert_int_equal(tlsd_keyclient_pending(kc), 0);
	assert_int_equal(tlsd_keyclient_connected(kc), 0);
	/* with no keyd, a handshake fails at once */
	o.on_want_async = NULL;
	assert_int_equal(handshake(kc, rsa_cert, rsa_cert, &o, NULL), 0);

	/* a new keyd, a new channel: back in business */
	kp = keyd_start("sealpost.conf");
	keyd_wait_ready(&kp);
	assert_int_equal(tlsd_keyclient_set_fd(kc, keyd_newchan(&kp)), 0);
	assert_int_equal(handshake(kc, rsa_cert, rsa_cert, &o, NULL), 1);
	o.version = TLS1_2_VERSION;
	assert_int_equal(handshake(kc, ec_cert, ec_cert, &o, NULL), 1);
	(void)error;
}

static void test_timeout(void **state)
{
	struct hs_opts o = { .version = TLS1_3_VERSION };
	struct tlsd_keyclient *fast;
	char *error = NULL;

	fast = tlsd_keyclient_new(base, 200, &error);
	assert_non_null(fast);
	assert_int_equal(tlsd_keyclient_set_fd(fast, keyd_newchan(&kp)), 0);
	assert_int_equal(kill(kp.pid, SIGSTOP), 0);
	assert_int_equal(handshake(fast, ec_cert, ec_cert, &o, NULL), 0);
	assert_int_equal(tlsd_keyclient_pending(fast), 0);
	assert_int_equal(kill(kp.pid, SIGCONT), 0);
	/* the late reply is ignored; the channel still works */
	assert_int_equal(handshake(fast, ec_cert, ec_cert, &o, NULL), 1);
	tlsd_keyclient_free(&fast);
}

static void test_wrong_passphrase_exits(void **state)
{
	struct keyd_proc bad = keyd_start("badpass-sealpost.conf");
	int status = wait_exit(bad.pid);

	close(bad.ctl);
	assert_true(WIFEXITED(status));
	assert_int_not_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_passphrase_exits),
		cmocka_unit_test_setup_teardown(test_default_provider_still_first, keyd_setup,
						keyd_teardown),
		cmocka_unit_test_setup_teardown(test_tls13_rsa_pss, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_tls12_rsa_pkcs1, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_tls12_rsa_pss_sha384, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_tls13_ecdsa, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_tls12_ecdsa, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_no_async_job_fails, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_fails, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_request_closes_channel, keyd_setup,
						keyd_teardown),
		cmocka_unit_test_setup_teardown(test_timeout, keyd_setup, keyd_teardown),
		cmocka_unit_test_setup_teardown(test_keyd_dies_midway, keyd_setup, keyd_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
