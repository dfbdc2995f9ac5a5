/* pkcs11/'s keys in sealpost.conf. */
#include <stddef.h>

#include "common/conf.h"
#include "pkcs11/pkcs11.h"

const struct sp_conf_key p11_conf_keys[] = {
	{ "pkcs11.modules_file", SP_CONF_STRING, NULL,
	  "the project's PKCS#11 module list (NAME = /path.so, disable NAME SLOT); "
	  "unset: <confdir>/pkcs11-modules.conf", 0, 0, NULL, 0 },
	{ "pkcs11.p11kit_modules", SP_CONF_BOOL, "yes",
	  "also use the modules p11-kit's registry lists", 0, 0, NULL, 0 },
	{ "pkcs11.sessions", SP_CONF_INT, "0",
	  "sessions (and parallel operations) per token; 0: from the token's "
	  "ulMaxSessionCount, at most 64", 0, 64, NULL, 0 },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
};
