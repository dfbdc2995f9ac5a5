/* STARTTLS handoff, client side (used by mailcore): give a connected client
 * socket to tlsd, which runs the TLS handshake and gives back one end of a
 * socketpair carrying the plaintext, plus the TLS facts. Non-blocking: the
 * caller's event loop waits for the returned fd to become readable.
 *
 * Wire (unix stream socket at tlsd's handoff path, frames of frame.h):
 *   request : u8 version(1), u8 type(1 = HANDOFF), str service,
 *             bytes PROXY v2 header carrying client/local addresses;
 *             the client fd rides on the same sendmsg (SCM_RIGHTS)
 *   reply   : u8 version(1), u8 type(2 = OK | 3 = ERROR),
 *             OK: bytes PROXY v2 header with addresses + TLS facts, and the
 *                 plaintext socketpair end on the same sendmsg;
 *             ERROR: str reason
 * One handoff per connection to the handoff socket; tlsd closes it after the
 * reply. */
#ifndef SP_HANDOFF_H
#define SP_HANDOFF_H

#include <sys/socket.h>
#include "common/proxy2.h"

#define SP_HANDOFF_VERSION 1
#define SP_HANDOFF_REQ 1
#define SP_HANDOFF_OK 2
#define SP_HANDOFF_ERROR 3
#define SP_HANDOFF_MAX_MSG 8192

/* Connects to socket_path and sends the request with client_fd. The caller
 * keeps ownership of client_fd and should close it once this returns 0
 * (tlsd has its own copy). Returns the fd to wait on (readable = reply
 * ready), or -1 with *error_r set (caller frees). */
int sp_handoff_start(const char *socket_path, const char *service, int client_fd,
		     const struct sockaddr *client, socklen_t client_len,
		     const struct sockaddr *local, socklen_t local_len, char **error_r);

/* Reads the reply on hfd (from sp_handoff_start) and closes hfd.
 * Returns 0 with *plain_fd_r (the caller's plaintext end, close-on-exec) and
 * *facts filled; or -1 with *error_r (handshake failed, tlsd gone, malformed
 * reply). */
int sp_handoff_finish(int hfd, int *plain_fd_r, struct sp_proxy_info *facts, char **error_r);

#endif
