/* Loading and initialising PKCS#11 modules through p11-kit, in managed mode:
 * those p11-kit's registry knows, then those of the project's module list,
 * by path. See pkcs11.h for why managed mode and why only after fork. */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

static void failed_module(void *module)
{
	char *name = p11_kit_module_get_name(module);

	sp_log(SP_LOG_WARN, "p11_module_init_failed", "module=\"%s\" action=skipped",
	       name != NULL ? name : "?");
	free(name);
	p11_kit_module_release(module);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

/* The same library loaded twice (once through p11-kit's registry and once by
 * our list) would show every token twice; same file name and same CK_INFO
 * is taken to be the same module. */
static bool already_loaded(struct p11_ctx *ctx, const char *path, CK_FUNCTION_LIST *fn)
{
	CK_INFO info, other;
	size_t i;

	if (fn->C_GetInfo(&info) != CKR_OK)
		return false;
	for (i = 0; i < ctx->nmods; i++) {
		char *fname;
		bool same;

		if (ctx->mods[i]->fn->C_GetInfo(&other) != CKR_OK)
			continue;
		fname = p11_kit_module_get_filename(ctx->mods[i]->fn);
		/* field by field: memcmp of the struct would compare its padding */
		same = fname != NULL && strcmp(base_name(fname), base_name(path)) == 0 &&
		       info.cryptokiVersion.major == other.cryptokiVersion.major &&
		       info.cryptokiVersion.minor == other.cryptokiVersion.minor &&
		       info.libraryVersion.major == other.libraryVersion.major &&
		       info.libraryVersion.minor == other.libraryVersion.minor &&
		       info.flags == other.flags &&
		       memcmp(info.manufacturerID, other.manufacturerID, sizeof(info.manufacturerID)) == 0 &&
		       memcmp(info.libraryDescription, other.libraryDescription,
			      sizeof(info.libraryDescription)) == 0;
		free(fname);
		if (same)
			return true;
	}
	return false;
}

static void add_mod(struct p11_ctx *ctx, const char *name, const char *path,
		    CK_FUNCTION_LIST *fn, bool from_p11kit)
{
	struct p11_module *mod = sp_xcalloc(1, sizeof(*mod));

	/* an array of pointers: tokens keep their module's address */
	mod->name = sp_xstrdup(name);
	mod->path = path != NULL ? sp_xstrdup(path) : NULL;
	mod->fn = fn;
	mod->from_p11kit = from_p11kit;
	ctx->mods = sp_xrealloc(ctx->mods, ctx->nmods + 1, sizeof(ctx->mods[0]));
	ctx->mods[ctx->nmods++] = mod;
}

int p11_ctx_add_module(struct p11_ctx *ctx, const char *name, const char *path, char **error_r)
{
	CK_FUNCTION_LIST *fn;
	CK_RV rv;
	size_t i;

	for (i = 0; i < ctx->nmods; i++) {
		if (strcmp(ctx->mods[i]->name, name) == 0) {
			*error_r = sp_xasprintf("module name %s is used twice", name);
			return -1;
		}
	}
	/* flags 0: managed (initialisation counted, fork noticed) */
	fn = p11_kit_module_load(path, 0);
	if (fn == NULL) {
		*error_r = sp_xasprintf("module %s (%s): cannot load: %s", name, path,
					p11_kit_message() != NULL ? p11_kit_message() : "?");
		return -1;
	}
	rv = p11_kit_module_initialize(fn);
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("module %s (%s): C_Initialize", name, path);
		*error_r = p11_error(rv, what);
		free(what);
		p11_kit_module_release(fn);
		return -1;
	}
	if (already_loaded(ctx, path, fn)) {
		sp_log(SP_LOG_INFO, "p11_module_duplicate",
		       "module=%s path=\"%s\" action=\"using the one p11-kit loaded\"", name, path);
		p11_kit_module_finalize(fn);
		p11_kit_module_release(fn);
		return 0;
	}
	add_mod(ctx, name, path, fn, false);
	sp_log(SP_LOG_INFO, "p11_module_loaded", "module=%s path=\"%s\"", name, path);
	return 0;
}

struct p11_ctx *p11_ctx_new(const struct p11_ctx_settings *set, char **error_r)
{
	struct p11_ctx *ctx = sp_xcalloc(1, sizeof(*ctx));
	size_t i;

	ctx->sessions = set->sessions > P11_POOL_MAX ? P11_POOL_MAX : set->sessions;
	if (set->modules_file != NULL) {
		ctx->modlist = p11_modlist_load(set->modules_file, error_r);
		if (ctx->modlist == NULL) {
			free(ctx);
			return NULL;
		}
	}
	if (set->p11kit_modules) {
		ctx->p11kit_list = p11_kit_modules_load(NULL, 0);
		if (ctx->p11kit_list == NULL) {
			sp_log(SP_LOG_WARN, "p11_kit_load_failed", "error=\"%s\"",
			       p11_kit_message() != NULL ? p11_kit_message() : "?");
		} else {
			/* failing modules are logged, released and dropped from the list */
			(void)p11_kit_modules_initialize(ctx->p11kit_list, failed_module);
			for (i = 0; ctx->p11kit_list[i] != NULL; i++) {
				char *name = p11_kit_module_get_name(ctx->p11kit_list[i]);
				char *unique = sp_xasprintf("%s", name != NULL ? name : "p11-kit");
				add_mod(ctx, unique, NULL, ctx->p11kit_list[i], true);
				free(unique);
				free(name);
			}
		}
	}
	for (i = 0; ctx->modlist != NULL && i < p11_modlist_count(ctx->modlist); i++) {
		const char *name, *path;
		char *err = NULL;

		p11_modlist_at(ctx->modlist, i, &name, &path);
		if (p11_ctx_add_module(ctx, name, path, &err) < 0) {
			sp_log(SP_LOG_ERR, "p11_module_failed", "error=\"%s\"", err);
			free(err);
		}
	}
	return ctx;
}

void p11_ctx_free(struct p11_ctx **ctxp)
{
	struct p11_ctx *ctx = *ctxp;
	size_t i;

	if (ctx == NULL)
		return;
	for (i = 0; i < ctx->nmods; i++) {
		if (!ctx->mods[i]->from_p11kit) {
			p11_kit_module_finalize(ctx->mods[i]->fn);
			p11_kit_module_release(ctx->mods[i]->fn);
		}
		free(ctx->mods[i]->name);
		free(ctx->mods[i]->path);
		free(ctx->mods[i]);
	}
	if (ctx->p11kit_list != NULL)
		p11_kit_modules_finalize_and_release(ctx->p11kit_list);
	free(ctx->mods);
	p11_modlist_free(&ctx->modlist);
	free(ctx);
	*ctxp = NULL;
}

size_t p11_ctx_module_count(const struct p11_ctx *ctx)
{
	return ctx->nmods;
}

struct p11_module *p11_ctx_module_at(const struct p11_ctx *ctx, size_t i)
{
	return ctx->mods[i];
}

const char *p11_module_name(const struct p11_module *mod)
{
	return mod->name;
}

CK_FUNCTION_LIST *p11_module_functions(const struct p11_module *mod)
{
	return mod->fn;
}
