/* Worker side of the keyd channel. An OpenSSL 3 provider ("sealpost-keyd")
 * whose keys hold only the public half and a key id (SHA-256 of the
 * certificate's DER SubjectPublicKeyInfo); their sign operations are sent to
 * keyd and the calling handshake's async job pauses (ASYNC_pause_job) until
 * keyd replies, so the worker's event loop keeps serving other connections.
 *
 * How a worker uses it: SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC); load each
 * certificate, SSL_CTX_use_cert_and_key(ctx, cert, tlsd_keyclient_pkey(..),
 * chain, 1). When SSL_do_handshake() answers SSL_ERROR_WANT_ASYNC, watch the
 * fds from SSL_get_changed_async_fds() for readability and call
 * SSL_do_handshake() again when one fires. A key operation that keyd fails,
 * that times out, or that was in flight when keyd died ends in a handshake
 * error (never a hang). */
#ifndef TLSD_KEYCLIENT_H
#define TLSD_KEYCLIENT_H

#include <stddef.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

struct tlsd_keyclient;

/* One per worker process. keyop_timeout_ms: a request not answered by then
 * fails. Caller frees with tlsd_keyclient_free. */
struct tlsd_keyclient *tlsd_keyclient_new(struct event_base *base, long keyop_timeout_ms,
					  char **error_r);
void tlsd_keyclient_free(struct tlsd_keyclient **kc);

/* Gives the client its (new) connected stream socket to keyd; it takes
 * ownership. Requests pending on a previous socket fail at once. */
int tlsd_keyclient_set_fd(struct tlsd_keyclient *kc, int fd);
/* 1 while a keyd socket is attached and open. */
int tlsd_keyclient_connected(const struct tlsd_keyclient *kc);

/* A private-key handle for cert's public key (RSA or EC); caller frees with
 * EVP_PKEY_free. Needs no round trip: keyd answers "unknown key" at sign time
 * if it does not hold the key. */
EVP_PKEY *tlsd_keyclient_pkey(struct tlsd_keyclient *kc, X509 *cert, char **error_r);

/* Requests in flight now. */
size_t tlsd_keyclient_pending(const struct tlsd_keyclient *kc);

#endif
