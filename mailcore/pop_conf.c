/* sealpost.conf keys of the POP server (the anchor's service.pop.* options). */
#include <stddef.h>

#include "mailcore/pop.h"

const struct sp_conf_key mailcore_pop_conf_keys[] = {
	{"service.pop.port", SP_CONF_INT, "0",
	 "POP3 listener port (STLS through tlsd), usually 110; 0 = off", 0, 65535, NULL, 0},
	{"service.pop.backend", SP_CONF_STRING, NULL,
	 "Where tlsd relays POPS (995) with a PROXY v2 header: a unix socket path or host:port; "
	 "unset = no backend listener", 0, 0, NULL, 0},
	{"service.pop.plaintextmincipher", SP_CONF_INT, "0",
	 "USER/PASS and AUTH PLAIN only over TLS with a cipher of at least this many bits; 0 = "
	 "also without TLS", 0, 256, NULL, 0},
	{"service.pop.maxsessions", SP_CONF_INT, "1000",
	 "Concurrent POP connections; more are refused", 1, 100000, NULL, 0},
	{"service.pop.idletimeout", SP_CONF_DURATION, "10m",
	 "Autologout timer (RFC 1939 3 asks for at least 10 minutes)", 1000, 86400000, NULL, 0},
	{NULL, 0, NULL, NULL, 0, 0, NULL, 0},
};
