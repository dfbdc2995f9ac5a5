/* sealpost.conf keys of the IMAP server (the anchor's service.imap.*
 * options) and store.admins, the store administrators that IMAP and POP
 * let log in as other users with a client certificate (AUTH EXTERNAL). */
#include <stddef.h>

#include "mailcore/imap.h"

const struct sp_conf_key mailcore_imap_conf_keys[] = {
	{"service.imap.port", SP_CONF_INT, "0",
	 "IMAP listener port (STARTTLS through tlsd), usually 143; 0 = off", 0, 65535, NULL, 0},
	{"service.imap.backend", SP_CONF_STRING, NULL,
	 "Where tlsd relays IMAPS (993) with a PROXY v2 header: a unix socket path or host:port; "
	 "unset = no backend listener", 0, 0, NULL, 0},
	{"service.imap.plaintextmincipher", SP_CONF_INT, "0",
	 "LOGIN and AUTHENTICATE PLAIN only over TLS with a cipher of at least this many bits "
	 "(LOGINDISABLED before); 0 = also without TLS", 0, 256, NULL, 0},
	{"service.imap.maxsessions", SP_CONF_INT, "1000",
	 "Concurrent IMAP connections; more are refused with BYE", 1, 100000, NULL, 0},
	{"service.imap.idletimeout", SP_CONF_DURATION, "30m",
	 "Autologout of an idle authenticated session (RFC 3501 5.4 asks for at least 30 minutes)",
	 1000, 86400000, NULL, 0},
	{"service.imap.logintimeout", SP_CONF_DURATION, "60s",
	 "Time allowed before authentication", 1000, 3600000, NULL, 0},
	{"service.imap.maxbadcommands", SP_CONF_INT, "20",
	 "BAD replies in one session before BYE", 1, 1000, NULL, 0},
	{"store.admins", SP_CONF_LIST, "",
	 "Store administrators: users whose client certificate may log in as another user with "
	 "AUTHENTICATE EXTERNAL / AUTH EXTERNAL (IMAP, POP)", 0, 0, NULL, 0},
	{NULL, 0, NULL, NULL, 0, 0, NULL, 0},
};
