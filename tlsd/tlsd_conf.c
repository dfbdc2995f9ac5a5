/* tlsd's keys of sealpost.conf: the daemon (tlsd.*), the TLS policy defaults
 * (tlsd.* policy keys) and the per-service keys (service.<name>.*) for
 * implicit-TLS listeners and STARTTLS handoff. conf/ registers the table;
 * tlsd_config.c turns the values into struct tlsd_config. */
#include <stddef.h>

#include "tlsd/tlsd.h"

static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };
static const char *const clientauth_modes[] = { "none", "request", "require", NULL };

#define TLSD_DEF_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define TLSD_DEF_SUITES "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLSD_DEF_GROUPS "X25519:P-256"

const struct sp_conf_key tlsd_conf_keys[] = {
	/* the daemon */
	{ "tlsd.workers", SP_CONF_INT, "0",
	  "TLS worker processes; 0 = one per CPU core", 0, 256, NULL, 0 },
	{ "tlsd.keyd_path", SP_CONF_STRING, NULL,
	  "path of the keyd binary (default: keyd beside the tlsd binary)", 0, 0, NULL, 0 },
	{ "tlsd.pidfile", SP_CONF_STRING, NULL,
	  "file the master writes its pid to", 0, 0, NULL, 0 },
	{ "tlsd.handoff_socket", SP_CONF_STRING, NULL,
	  "unix socket (mode 0660) where mailcore hands STARTTLS connections to tlsd; unset = no handoff",
	  0, 0, NULL, 0 },
	{ "tlsd.handshake_timeout", SP_CONF_DURATION, "10s",
	  "time a client has to complete the TLS handshake", 100, 600000, NULL, 0 },
	{ "tlsd.idle_timeout", SP_CONF_DURATION, "10m",
	  "a relayed connection with no traffic either way for this long is closed", 100, 86400000, NULL, 0 },
	{ "tlsd.shutdown_timeout", SP_CONF_DURATION, "30s",
	  "on SIGTERM, time connections get to finish before they are closed", 0, 3600000, NULL, 0 },
	{ "tlsd.keyop_timeout", SP_CONF_DURATION, "5s",
	  "a private-key operation keyd has not answered by then fails the handshake", 100, 600000, NULL, 0 },
	{ "tlsd.max_connections", SP_CONF_INT, "10000",
	  "connections per worker (TLS and handoff); excess ones are closed at once", 1, 1000000, NULL, 0 },
	{ "tlsd.relay_buffer", SP_CONF_SIZE, "64k",
	  "relay buffer per direction per connection; when full the other side is not read",
	  16384, 16777216, NULL, 0 },
	{ "tlsd.ticket_rotation", SP_CONF_DURATION, "12h",
	  "session ticket keys change this often; the previous key still decrypts", 1000, 604800000, NULL, 0 },
	{ "tlsd.restart_backoff_max", SP_CONF_DURATION, "10s",
	  "longest wait before restarting a child (keyd, worker) that keeps dying", 100, 600000, NULL, 0 },

	/* TLS policy defaults; each has a service.<name>.<key> override */
	{ "tlsd.tlsminversion", SP_CONF_ENUM, "TLSv1.2",
	  "lowest TLS version accepted", 0, 0, tls_versions, 0 },
	{ "tlsd.ssladjustciphersuites", SP_CONF_STRING, TLSD_DEF_CIPHERS,
	  "OpenSSL cipher list for TLS 1.2 (default: ECDHE with AEAD ciphers only)", 0, 0, NULL, 0 },
	{ "tlsd.tls13ciphersuites", SP_CONF_STRING, TLSD_DEF_SUITES,
	  "TLS 1.3 cipher suites, colon-separated", 0, 0, NULL, 0 },
	{ "tlsd.groups", SP_CONF_STRING, TLSD_DEF_GROUPS,
	  "key exchange groups, colon-separated, in preference order", 0, 0, NULL, 0 },
	{ "tlsd.sslcachesize", SP_CONF_INT, "20000",
	  "server session cache entries per worker; 0 = no session cache", 0, 10000000, NULL, 0 },
	{ "tlsd.sslclientauth", SP_CONF_ENUM, "none",
	  "client certificates: none; request (optional, result passed on); require (must verify)",
	  0, 0, clientauth_modes, 0 },

	/* services */
	{ "service.*.sslport", SP_CONF_INT, NULL,
	  "implicit-TLS port tlsd listens on for the service (smtp 465, imap 993, pop 995, http 443)",
	  1, 65535, NULL, 0 },
	{ "service.*.listen", SP_CONF_STRING, NULL,
	  "address the service's TLS port is bound to (default: all addresses)", 0, 0, NULL, 0 },
	{ "service.*.backend", SP_CONF_STRING, NULL,
	  "where tlsd relays the service's plaintext: a unix socket path or host:port ([v6]:port)",
	  0, 0, NULL, 0 },
	{ "service.*.sslnicknames", SP_CONF_LIST, NULL,
	  "certificate nicknames from the certdb; the first matching the client's SNI is used, an "
	  "RSA and an ECDSA certificate for the same names are both offered", 0, 0, NULL, 0 },
	{ "service.*.starttls", SP_CONF_BOOL, "yes",
	  "the service accepts STARTTLS handoffs (it needs sslnicknames)", 0, 0, NULL, 0 },
	{ "service.*.tlsminversion", SP_CONF_ENUM, NULL,
	  "overrides tlsd.tlsminversion", 0, 0, tls_versions, 0 },
	{ "service.*.ssladjustciphersuites", SP_CONF_STRING, NULL,
	  "overrides tlsd.ssladjustciphersuites", 0, 0, NULL, 0 },
	{ "service.*.tls13ciphersuites", SP_CONF_STRING, NULL,
	  "overrides tlsd.tls13ciphersuites", 0, 0, NULL, 0 },
	{ "service.*.groups", SP_CONF_STRING, NULL,
	  "overrides tlsd.groups", 0, 0, NULL, 0 },
	{ "service.*.sslcachesize", SP_CONF_INT, NULL,
	  "overrides tlsd.sslcachesize", 0, 10000000, NULL, 0 },
	{ "service.*.sslclientauth", SP_CONF_ENUM, NULL,
	  "overrides tlsd.sslclientauth", 0, 0, clientauth_modes, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};
