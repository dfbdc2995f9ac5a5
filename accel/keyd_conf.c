/* keyd's keys of sealpost.conf. conf/conf_all.c registers this table; the
 * certdb directory is the common key `certdb` (conf/conf_keys_common.c). */
#include <stddef.h>

#include "accel/keyd.h"

const struct sp_conf_key keyd_conf_keys[] = {
	{ "keyd.threads", SP_CONF_INT, "0",
	  "threads of the soft (OpenSSL) key backend; 0 = one per CPU core", 0, 256, NULL, 0 },
	{ "keyd.max_inflight", SP_CONF_INT, "256",
	  "key operations in flight per tlsd worker channel; beyond it keyd stops reading that channel",
	  1, 65536, NULL, 0 },
	{ "keyd.max_queue", SP_CONF_INT, "4096",
	  "key operations queued or running in the soft backend; beyond it requests answer busy",
	  1, 1048576, NULL, 0 },
	{ "keyd.channel_buffer", SP_CONF_SIZE, "256k",
	  "replies buffered per worker channel; beyond it keyd stops reading that channel",
	  4096, 67108864, NULL, 0 },
	{ "keyd.max_channels", SP_CONF_INT, "1024",
	  "worker channels keyd serves at once", 1, 65536, NULL, 0 },
	{ "sslpasswordfile", SP_CONF_STRING, NULL,
	  "the PIN and passphrase file (\"Token name:secret\" lines, mode 0600); default <confdir>/sslpassword.conf",
	  0, 0, NULL, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};
