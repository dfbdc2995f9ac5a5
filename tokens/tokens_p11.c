/* tokens CLI: the PKCS#11 side: one context per run (the project's module
 * list, p11-kit's registry, --module), tokens opened by label, key locators
 * taken apart. The CLI is one process that never forks, so calling
 * p11_ctx_new here is what pkcs11.h asks for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

struct p11_ctx *tok_p11_ctx(const struct tokens_args *a, int *code_r)
{
	struct p11_ctx_settings set = {0};
	char *modfile, *err = NULL;
	struct p11_ctx *ctx;

	modfile = a->modules_file != NULL ? sp_xstrdup(a->modules_file)
					  : sp_xasprintf("%s/../pkcs11-modules.conf", tok_db_dir(a));
	set.modules_file = modfile;
	set.p11kit_modules = !a->no_p11kit;
	set.sessions = 2;
	ctx = p11_ctx_new(&set, &err);
	free(modfile);
	if (ctx == NULL) {
		*code_r = tok_fail_err(TOK_ETOKEN, err, "PKCS#11 modules");
		return NULL;
	}
	if (a->module != NULL) {
		if (access(a->module, R_OK) < 0) {
			*code_r = tok_fail(TOK_ENOTFOUND, "module %s: no such file", a->module);
			p11_ctx_free(&ctx);
			return NULL;
		}
		if (p11_ctx_add_module(ctx, "cmdline", a->module, &err) < 0) {
			*code_r = tok_fail_err(TOK_ETOKEN, err, NULL);
			p11_ctx_free(&ctx);
			return NULL;
		}
	}
	return ctx;
}

struct p11_token *tok_p11_open(struct p11_ctx *ctx, const char *spec,
			       const struct sp_pinfile *pins, int *code_r)
{
	char *err = NULL;
	struct p11_token *tok = p11_token_open(ctx, spec, pins, &err);

	if (tok == NULL) {
		*code_r = tok_p11_code(err);
		tok_fail_err(*code_r, err, NULL);
	}
	return tok;
}

char *tok_locator_token(const char *locator)
{
	struct p11_name n;
	char *err = NULL, *label = NULL;

	if (locator == NULL || strncmp(locator, "pkcs11:", 7) != 0)
		return NULL;
	if (p11_name_parse(locator, &n, &err) < 0) {
		free(err);
		return NULL;
	}
	if (n.token != NULL)
		label = sp_xstrdup(n.token);
	p11_name_clear(&n);
	return label;
}

int tok_locator_object(const char *locator, char **label_r, unsigned char **id_r,
		       size_t *id_len_r)
{
	struct p11_name n;
	char *err = NULL;

	*label_r = NULL;
	*id_r = NULL;
	*id_len_r = 0;
	if (p11_name_parse(locator, &n, &err) < 0) {
		tok_fail(TOK_EFAIL, "key locator %s: %s", locator, err);
		free(err);
		return -1;
	}
	if (n.object != NULL)
		*label_r = sp_xstrdup(n.object);
	if (n.id != NULL && n.id_len > 0) {
		*id_r = sp_xmalloc(n.id_len);
		memcpy(*id_r, n.id, n.id_len);
		*id_len_r = n.id_len;
	}
	p11_name_clear(&n);
	return 0;
}
