/* The directory's keys in sealpost.conf: LDAP (named after the anchor's
 * ugldap* options where one exists) and the certmap.conf file. Unset
 * ldap.host = the users file (mailcore.users) is the directory. */
#include <stddef.h>

#include "common/conf.h"
#include "mailcore/dir.h"

static const char *const ldap_authmethods[] = {"bind", "compare", NULL};

const struct sp_conf_key mailcore_dir_conf_keys[] = {
	{"ldap.host", SP_CONF_STRING, NULL,
	 "LDAP server for users and domains (the anchor's ugldaphost); unset = the users file",
	 0, 0, NULL, 0},
	{"ldap.port", SP_CONF_INT, "0",
	 "LDAP port (ugldapport); 0 = 636 with ldap.usessl, else 389", 0, 65535, NULL, 0},
	{"ldap.usessl", SP_CONF_BOOL, "no",
	 "LDAPS: TLS from the first byte (ugldapusessl)", 0, 0, NULL, 0},
	{"ldap.starttls", SP_CONF_BOOL, "no",
	 "StartTLS on the plain port, required to succeed (ldaprequiretls)", 0, 0, NULL, 0},
	{"ldap.cafile", SP_CONF_STRING, NULL,
	 "CA certificates (PEM) the LDAP server's certificate must chain to; the host name "
	 "(or IP) in ldap.host must match it; unset = the system's CAs", 0, 0, NULL, 0},
	{"ldap.binddn", SP_CONF_STRING, NULL,
	 "DN mailcore binds as for searches (ugldapbinddn); unset = anonymous", 0, 0, NULL, 0},
	{"ldap.bindpasswordfile", SP_CONF_STRING, NULL,
	 "File holding the password of ldap.binddn (first line); refused if group- or "
	 "world-accessible; never logged", 0, 0, NULL, 0},
	{"ldap.basedn", SP_CONF_STRING, NULL,
	 "Root of the user and domain tree (ugldapbasedn)", 0, 0, NULL, 0},
	{"ldap.userfilter", SP_CONF_STRING, "(&(uid=%U)(objectclass=inetmailuser))",
	 "Filter for a login name (auth.searchfilter): %U user, %D domain, %o the name as "
	 "given; values are escaped (RFC 4515)", 0, 0, NULL, 0},
	{"ldap.addressfilter", SP_CONF_STRING,
	 "(&(objectclass=inetmailuser)(|(mail=%o)(mailAlternateAddress=%o)))",
	 "Filter for a recipient address (aliases through mailAlternateAddress); same "
	 "substitutions", 0, 0, NULL, 0},
	{"ldap.domainlookup", SP_CONF_BOOL, "yes",
	 "Find the domain's entry first and search users under it (multi-domain); no = "
	 "users directly under ldap.basedn", 0, 0, NULL, 0},
	{"ldap.domainfilter", SP_CONF_STRING,
	 "(&(objectclass=sunManagedOrganization)(|(sunPreferredDomain=%D)(associatedDomain=%D)))",
	 "Filter for a domain's entry; %D the domain", 0, 0, NULL, 0},
	{"ldap.defaultdomain", SP_CONF_STRING, NULL,
	 "Domain of a login name without '@' (base.defaultdomain); unset = the first of "
	 "mailcore.domains", 0, 0, NULL, 0},
	{"ldap.authmethod", SP_CONF_ENUM, "bind",
	 "Password check: bind (as the user's DN; preferred) or compare (userPassword)", 0, 0,
	 ldap_authmethods, 0},
	{"ldap.cache_ttl", SP_CONF_DURATION, "60s",
	 "How long a lookup result (found or not) is reused; 0 = no cache", 0, 86400000, NULL, 0},
	{"ldap.cache_size", SP_CONF_INT, "10000",
	 "Cached lookup results at most (a direct-mapped table)", 16, 10000000, NULL, 0},
	{"ldap.connections", SP_CONF_INT, "4",
	 "LDAP connections in the pool at most", 1, 256, NULL, 0},
	{"ldap.threads", SP_CONF_INT, "4",
	 "Threads that run directory calls off the event loop", 1, 64, NULL, 0},
	{"ldap.max_queued", SP_CONF_INT, "1024",
	 "Directory calls waiting for a thread; more are answered with a temporary failure", 16,
	 1000000, NULL, 0},
	{"ldap.timeout", SP_CONF_DURATION, "5s",
	 "Limit for connecting and for each LDAP operation", 100, 600000, NULL, 0},
	{"ldap.retry_min", SP_CONF_DURATION, "1s",
	 "After a failure the server is not tried again for this long; doubles per failure",
	 10, 3600000, NULL, 0},
	{"ldap.retry_max", SP_CONF_DURATION, "60s",
	 "Longest wait between reconnection attempts", 10, 3600000, NULL, 0},
	{"mailcore.mailhost_names", SP_CONF_LIST, "",
	 "Names this host answers to as a user's mailHost (the LDAP attribute naming the "
	 "host that stores the mailbox); a user whose mailHost is set and not one of them is "
	 "homed elsewhere: SMTP queues the mail to that host (mailcore.queue.mailhost_port, "
	 "mailcore.queue.mailhost_routes), IMAP answers LOGIN with an RFC 2221 referral, POP "
	 "refuses. Empty = mailcore.hostname (or the system's host name)", 0, 0, NULL, 0},
	/* the queue's next hop for recipients homed on another host (dir.h
	 * dir_remote_mailhost; queue_manager.c) */
	{"mailcore.queue.mailhost_port", SP_CONF_INT, "25",
	 "SMTP port the queue delivers to on a user's mailHost (another store host); those "
	 "recipients go straight to their mailHost, never through mailcore.queue.smarthost or "
	 "MX; STARTTLS as mailcore.queue.tls", 1, 65535, NULL, 0},
	{"mailcore.queue.mailhost_routes", SP_CONF_LIST, "",
	 "Static next hops for mailHost names, each mailhost=host:port (e.g. "
	 "store2.example.com=10.0.0.12:25); a mailHost listed here is not looked up in DNS "
	 "and mailcore.queue.mailhost_port does not apply to it", 0, 0, NULL, 0},
	{"mailcore.certmapfile", SP_CONF_STRING, NULL,
	 "certmap.conf: client certificates to users (docs/CERTMAP.md); unset = the "
	 "certificate's e-mail address is the user", 0, 0, NULL, 0},
	{NULL, 0, NULL, NULL, 0, 0, NULL, 0},
};
