/* tlsd's face: what other components may use of the TLS daemon. The daemon
 * itself is bin/tlsd (tlsd_main.c); mailcore talks to it only through the
 * STARTTLS handoff protocol (common/handoff.h) and the PROXY v2 header it
 * writes in front of each relayed connection (common/proxy2.h). */
#ifndef TLSD_H
#define TLSD_H

#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/proxy2.h"

/* tlsd's keys of sealpost.conf (tlsd_conf.c); conf/ registers them. */
extern const struct sp_conf_key tlsd_conf_keys[];

/* A parsed STARTTLS handoff request (common/handoff.h, "request"). */
#define TLSD_SERVICE_NAME_MAX 64
struct tlsd_handoff_req {
	char service[TLSD_SERVICE_NAME_MAX];
	struct sp_proxy_info addrs;  /* client (src) and local (dst) addresses */
};

/* Pure parser of one request body (the frame without its 4-byte length).
 * Returns 0, or -1 with *error_r a static string naming the problem. Checks
 * version, type, exact size, the service name's syntax, and that the PROXY v2
 * header is a PROXY (not LOCAL) command with TCP addresses of one family and
 * no TLS facts (those are tlsd's to state). Does not check the fd. */
int tlsd_handoff_parse(const uint8_t *body, size_t len, struct tlsd_handoff_req *req,
		       const char **error_r);

#endif
