/* Registers every component's sealpost.conf keys, in the order the reference
 * (docs/CONFIG.md) lists them. Each table lives with its component (the
 * common keys in conf/conf_keys_common.c); this file only lists them. */
#include <stddef.h>

#include "common/conf.h"
#include "conf/conf.h"

/* To add a component's keys:
 *   1. define the table in the component, e.g. tlsd/tlsd_conf.c:
 *        const struct sp_conf_key tlsd_conf_keys[] = {
 *            { "tlsd.workers", SP_CONF_INT, "0", "TLS worker processes; 0 = one per core",
 *              0, 256, NULL, 0 },
 *            { NULL, 0, NULL, NULL, 0, 0, NULL, 0 },
 *        };
 *   2. declare it below:  extern const struct sp_conf_key tlsd_conf_keys[];
 *   3. add a row to schema_tables, after common:  { "tlsd", tlsd_conf_keys },
 *   4. run `make docs` and commit docs/CONFIG.md (a test fails until then). */
extern const struct sp_conf_key sp_common_conf_keys[];
extern const struct sp_conf_key tlsd_conf_keys[];
extern const struct sp_conf_key keyd_conf_keys[];
extern const struct sp_conf_key p11_conf_keys[];
extern const struct sp_conf_key mailcore_conf_keys[];
extern const struct sp_conf_key mailcore_filter_conf_keys[];
extern const struct sp_conf_key mailcore_imap_conf_keys[];
extern const struct sp_conf_key mailcore_pop_conf_keys[];
extern const struct sp_conf_key mailcore_dir_conf_keys[];

static const struct {
	const char *component;
	const struct sp_conf_key *keys;
} schema_tables[] = {
	{ "common", sp_common_conf_keys },
	{ "tlsd", tlsd_conf_keys },
	{ "keyd", keyd_conf_keys },
	{ "pkcs11", p11_conf_keys },
	{ "mailcore", mailcore_conf_keys },
	{ "mailcore access filters", mailcore_filter_conf_keys },
	{ "mailcore imap", mailcore_imap_conf_keys },
	{ "mailcore pop", mailcore_pop_conf_keys },
	{ "mailcore directory", mailcore_dir_conf_keys },
};

int sp_conf_add_all(struct sp_conf *conf, char **error_r)
{
	for (size_t i = 0; i < sizeof(schema_tables) / sizeof(schema_tables[0]); i++) {
		if (sp_conf_add_schema(conf, schema_tables[i].component,
				       schema_tables[i].keys, error_r) < 0)
			return -1;
	}
	return 0;
}
