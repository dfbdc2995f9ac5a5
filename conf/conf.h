/* The configuration's table of contents: every component's key table,
 * registered into one sp_conf in a fixed order. Daemons call this before
 * sp_conf_load; bin/confdoc calls it to write docs/CONFIG.md. */
#ifndef SP_CONF_CONF_H
#define SP_CONF_CONF_H

#include "common/conf.h"

/* Registers every component's schema table (common first). Returns 0, or -1
 * with *error_r set (caller frees): a bad or clashing table is a programming
 * error. */
int sp_conf_add_all(struct sp_conf *conf, char **error_r);

#endif
