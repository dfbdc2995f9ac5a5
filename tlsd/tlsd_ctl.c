/* The control channel between tlsd's master and each worker (a socketpair
 * made at fork): new keyd channels, reload orders and their results. Typed
 * marshalling over frame.h; every message is checked for exact size. */
#include <errno.h>
#include <string.h>

#include "common/fdpass.h"
#include "common/frame.h"
#include "tlsd/tlsd_int.h"

int tlsd_ctl_send(int sock, const struct tlsd_ctl_msg *msg, int fd)
{
	struct sp_msgbuf b;
	int ret;

	sp_msgbuf_init(&b, TLSD_CTL_MAX_BODY);
	sp_msg_put_u8(&b, TLSD_CTL_VERSION);
	sp_msg_put_u8(&b, msg->type);
	switch (msg->type) {
	case TLSD_CTL_KEYD_FD:
		break;
	case TLSD_CTL_RELOAD:
		sp_msg_put_u64(&b, msg->generation);
		break;
	case TLSD_CTL_RELOADED:
		sp_msg_put_u64(&b, msg->generation);
		sp_msg_put_u8(&b, msg->ok);
		sp_msg_put_str(&b, msg->error);
		break;
	default:
		sp_msgbuf_release(&b);
		errno = EINVAL;
		return -1;
	}
	if (sp_msgbuf_finish(&b) < 0) {
		sp_msgbuf_release(&b);
		errno = EMSGSIZE;
		return -1;
	}
	ret = sp_fd_send(sock, fd, b.data, b.len);
	sp_msgbuf_release(&b);
	return ret;
}

int tlsd_ctl_parse(const uint8_t *body, size_t len, struct tlsd_ctl_msg *msg, const char **error_r)
{
	struct sp_msgrd r;

	memset(msg, 0, sizeof(*msg));
	sp_msgrd_init(&r, body, len);
	if (sp_msg_get_u8(&r) != TLSD_CTL_VERSION || r.error) {
		*error_r = "bad control message version";
		return -1;
	}
	msg->type = sp_msg_get_u8(&r);
	switch (msg->type) {
	case TLSD_CTL_KEYD_FD:
		break;
	case TLSD_CTL_RELOAD:
		msg->generation = sp_msg_get_u64(&r);
		break;
	case TLSD_CTL_RELOADED:
		msg->generation = sp_msg_get_u64(&r);
		msg->ok = sp_msg_get_u8(&r);
		sp_msg_get_str(&r, msg->error, sizeof(msg->error));
		break;
	default:
		*error_r = "unknown control message type";
		return -1;
	}
	if (!sp_msgrd_done(&r)) {
		*error_r = "malformed control message";
		return -1;
	}
	return 0;
}
