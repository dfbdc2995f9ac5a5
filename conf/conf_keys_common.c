/* sealpost.conf keys every Sealpost daemon reads: logging, where the other
 * configuration files live, the unprivileged user to drop to, and the run
 * directory. Registered first by sp_conf_add_all. */
#include <stddef.h>

#include "common/conf.h"

static const char *const log_levels[] = { "debug", "info", "notice", "warn", "err", NULL };

const struct sp_conf_key sp_common_conf_keys[] = {
	{ "log.file", SP_CONF_STRING, "-",
	  "Where log lines go: a file path, or - for standard error.",
	  0, 0, NULL, 0 },
	{ "log.level", SP_CONF_ENUM, "info",
	  "Least severe level that is logged.",
	  0, 0, log_levels, 0 },
	{ "confdir", SP_CONF_STRING, "",
	  "Directory of the other configuration files (certdb, sslpassword.conf, mappings); empty = the directory of sealpost.conf.",
	  0, 0, NULL, 0 },
	{ "certdb", SP_CONF_STRING, "",
	  "Certificate database directory (certificates, key locators, trusted CAs, CRLs); empty = CONFDIR/certdb.",
	  0, 0, NULL, 0 },
	{ "user", SP_CONF_STRING, "nobody",
	  "Unprivileged user the daemons switch to when started as root; give them one of their own (mailcore trusts peers of its backend sockets by file permissions).",
	  0, 0, NULL, 0 },
	{ "group", SP_CONF_STRING, "nogroup",
	  "Group the daemons switch to when started as root.",
	  0, 0, NULL, 0 },
	{ "rundir", SP_CONF_STRING, "",
	  "Directory for sockets and pid files; empty = LOCALSTATEDIR/run, as chosen by configure --localstatedir.",
	  0, 0, NULL, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};
