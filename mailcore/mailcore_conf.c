/* mailcore's keys in sealpost.conf: the schema the shared parser checks and
 * docs/CONFIG.md is generated from. Registered as component "mailcore". */
#include "mailcore/mailcore.h"

#include "config.h"

const struct sp_conf_key mailcore_conf_keys[] = {
	{"service.smtp.port", SP_CONF_INT, "25",
	 "SMTP listener port (mail from anywhere to the local domains); 0 = off", 0, 65535, NULL, 0},
	{"service.submission.port", SP_CONF_INT, "587",
	 "Submission listener port (RFC 6409: AUTH required before MAIL); 0 = off", 0, 65535, NULL, 0},
	{"service.smtp.backend", SP_CONF_STRING, NULL,
	 "Where tlsd relays implicit-TLS submission (465) with a PROXY v2 header: a unix socket "
	 "path or host:port; unset = no backend listener", 0, 0, NULL, 0},
	{"service.smtp.plaintextmincipher", SP_CONF_INT, "0",
	 "AUTH PLAIN/LOGIN only over TLS with a cipher of at least this many bits; 0 = also "
	 "without TLS", 0, 256, NULL, 0},
	{"mailcore.listenaddr", SP_CONF_LIST, "0.0.0.0",
	 "Numeric addresses the SMTP and submission listeners bind", 0, 0, NULL, 0},
	{"mailcore.hostname", SP_CONF_STRING, NULL,
	 "Host name in the greeting, Received: and Maildir names; unset = gethostname()", 0, 0,
	 NULL, 0},
	{"mailcore.domains", SP_CONF_LIST, "",
	 "Local mail domains (mail to others is relaying)", 0, 0, NULL, 0},
	{"mailcore.store", SP_CONF_STRING, SP_LOCALSTATEDIR "/store",
	 "Mail store root: <store>/<domain>/<local>/Maildir", 0, 0, NULL, 0},
	{"mailcore.queue", SP_CONF_STRING, SP_LOCALSTATEDIR "/queue",
	 "Maildir spool for outbound mail (relayed or forwarded by an alias)", 0, 0, NULL, 0},
	{"mailcore.hold", SP_CONF_STRING, SP_LOCALSTATEDIR "/hold",
	 "Maildir spool for messages held by mailcore.smtp.holdlimit", 0, 0, NULL, 0},
	{"mailcore.users", SP_CONF_STRING, SP_SYSCONFDIR "/users",
	 "Users file: address:crypt-hash:attributes per line", 0, 0, NULL, 0},
	{"mailcore.aliases", SP_CONF_STRING, NULL,
	 "Aliases file: alias: address, address; unset = no aliases", 0, 0, NULL, 0},
	{"mailcore.mappings", SP_CONF_STRING, NULL,
	 "Mapping tables file (PORT_ACCESS, INTERNAL_IP, FROM_ACCESS, ...; docs/MAPPINGS.md); "
	 "unset = no tables", 0, 0, NULL, 0},
	{"mailcore.smtp.max_message_size", SP_CONF_SIZE, "10m",
	 "Largest message accepted; announced with SIZE (RFC 1870)", 1024, 1LL << 31, NULL, 0},
	{"mailcore.smtp.max_recipients", SP_CONF_INT, "100",
	 "Recipients per message (RFC 5321 4.5.3.1.8 asks for at least 100)", 1, 100000, NULL, 0},
	{"mailcore.smtp.holdlimit", SP_CONF_INT, "0",
	 "Messages with more recipients than this go to the hold spool; 0 = off", 0, 100000,
	 NULL, 0},
	{"mailcore.smtp.max_errors", SP_CONF_INT, "20",
	 "Error replies in one session before 421 and disconnect", 1, 1000, NULL, 0},
	{"mailcore.smtp.max_auth_failures", SP_CONF_INT, "3",
	 "Failed AUTH attempts in one session before 421 and disconnect", 1, 100, NULL, 0},
	{"mailcore.smtp.command_timeout", SP_CONF_DURATION, "5m",
	 "Idle time allowed while waiting for a command (RFC 5321 4.5.3.2.7: at least 5m)", 1000,
	 3600000, NULL, 0},
	{"mailcore.smtp.data_timeout", SP_CONF_DURATION, "5m",
	 "Idle time allowed between blocks of message text", 1000, 3600000, NULL, 0},
	{"mailcore.smtp.proxy_header_timeout", SP_CONF_DURATION, "10s",
	 "Time for tlsd to send the PROXY v2 header on the backend listener", 100, 600000, NULL, 0},
	{"mailcore.smtp.max_connections", SP_CONF_INT, "256",
	 "Concurrent SMTP connections; more get 421 and are closed", 1, 100000, NULL, 0},
	{NULL, 0, NULL, NULL, 0, 0, NULL, 0},
};
