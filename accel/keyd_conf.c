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
	{ "keyd.op_deadline", SP_CONF_DURATION, "1s",
	  "longest wait for one placement (token, accelerator, software) of a key operation; then "
	  "the operation goes to the key's next placement, or fails. Must be shorter than "
	  "tlsd.keyop_timeout (left at its default, it shrinks to half of that)", 10, 600000, NULL, 0 },
	{ "keyd.down_after", SP_CONF_INT, "5",
	  "consecutive failures (errors or deadlines) after which a backend is marked down: its "
	  "keys' operations go to their next placement (or fail at once if none); 0 = never", 0,
	  1000000, NULL, 0 },
	{ "keyd.probe_interval", SP_CONF_DURATION, "2s",
	  "how often a down backend gets a test signature with one of its keys; it is used again "
	  "once one succeeds within keyd.op_deadline", 10, 3600000, NULL, 0 },
	{ "keyd.spill_queue", SP_CONF_INT, "64",
	  "operations outstanding on a token or accelerator beyond which new operations of a key "
	  "with a further placement go there (spill over to the CPU); 0 = never spill", 0, 1048576,
	  NULL, 0 },
	{ "keyd.pkcs11_threads", SP_CONF_INT, "0",
	  "worker threads per PKCS#11 token backend (the token's parallelism); 0 = the token's "
	  "session pool size (pkcs11.sessions)", 0, 64, NULL, 0 },
	{ "keyd.pkcs11_max_queue", SP_CONF_INT, "1024",
	  "key operations queued or running per PKCS#11 token backend; beyond it the operation "
	  "goes to the key's next placement or answers busy", 1, 1048576, NULL, 0 },
	{ "keyd.accelerator", SP_CONF_STRING, NULL,
	  "token label (or pkcs11: URI) of a crypto accelerator used the NCP way: every software "
	  "key (file: locator) is also loaded into it at start as a session object (CKA_TOKEN "
	  "false, sensitive), and its placements are [accelerator, software]; unset: none", 0, 0,
	  NULL, 0 },
	{ "keyd.stats_socket", SP_CONF_STRING, NULL,
	  "unix socket (mode 0600) where keyd writes its counters per backend, key and mechanism "
	  "to whoever connects (text; the line \"stats json\" asks for JSON); read with "
	  "keydctl -s PATH stats; unset: none", 0, 0, NULL, 0 },
	{ "sslpasswordfile", SP_CONF_STRING, NULL,
	  "the PIN and passphrase file (\"Token name:secret\" lines, mode 0600); default <confdir>/sslpassword.conf",
	  0, 0, NULL, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};
