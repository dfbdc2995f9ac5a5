/* tlsd: Sealpost's TLS daemon.
 *
 * What it does: terminates TLS for the mail services. Implicit-TLS listeners
 * (465, 993, 995, 443) relay plaintext to mailcore behind a PROXY v2 header;
 * STARTTLS connections arrive from mailcore over the handoff socket and go
 * back as the plaintext end of a socketpair with the TLS facts.
 *
 * Trust: the master trusts its configuration and the certdb; it parses
 * nothing from the network. The workers parse TLS from anyone and are
 * trusted with nothing secret: no private key (keyd signs for them), no PIN;
 * they run as the configured user with PR_SET_NO_NEW_PRIVS. A handoff request
 * is trusted only as far as the socket's mode (0660, tlsd's group) allows,
 * and is checked field by field and against the fd it carries.
 *
 * What it touches: binds its listeners and the handoff socket (as root when
 * ports need it, then drops to user/group); reads sealpost.conf and the
 * certdb (certificates, CAs, CRLs; never keys); writes the pid file and log
 * lines; starts keyd (bin/keyd) and its workers.
 *
 * Usage: tlsd -c /path/sealpost.conf [-f] */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "tlsd/tlsd_int.h"

static void usage(void)
{
	fprintf(stderr, "usage: tlsd -c sealpost.conf [-f]\n"
			"  -c FILE  configuration\n"
			"  -f       stay in the foreground\n");
}

int main(int argc, char **argv)
{
	const char *conf = NULL;
	bool foreground = false;
	int opt;

	while ((opt = getopt(argc, argv, "c:fh")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		default:
			usage();
			return opt == 'h' ? 0 : 2;
		}
	}
	if (conf == NULL || optind != argc) {
		usage();
		return 2;
	}
	return tlsd_master_run(conf, foreground);
}
