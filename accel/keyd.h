/* keyd, the key daemon (bin/keyd, accel/keyd_main.c): what other parts of
 * the tree need to know of it. Its wire protocol is accel/keyd_proto.h. */
#ifndef KEYD_H
#define KEYD_H

#include "common/conf.h"

/* keyd's sealpost.conf keys (keyd_conf.c), registered by conf/conf_all.c. */
extern const struct sp_conf_key keyd_conf_keys[];

#endif
