/* tokens module ...: the PKCS#11 modules Sealpost uses: those p11-kit's
 * registry names plus the project's own module list (pkcs11.h), with slots
 * that can be disabled, and what each token can do (like the anchor's
 * cryptoadm list -m). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

#define MAX_MECHS 1024

static char *modfile_path(const struct tokens_args *a)
{
	return a->modules_file != NULL ? sp_xstrdup(a->modules_file)
				       : sp_xasprintf("%s/../pkcs11-modules.conf", tok_db_dir(a));
}

static void flags_text(CK_FLAGS f, char *buf, size_t cap)
{
	static const struct { CK_FLAGS bit; const char *name; } names[] = {
		{CKF_TOKEN_INITIALIZED, "initialized"}, {CKF_LOGIN_REQUIRED, "login-required"},
		{CKF_USER_PIN_INITIALIZED, "user-pin-set"}, {CKF_WRITE_PROTECTED, "read-only"},
		{CKF_RNG, "rng"}, {CKF_PROTECTED_AUTHENTICATION_PATH, "pin-pad"},
		{CKF_USER_PIN_LOCKED, "USER-PIN-LOCKED"}, {CKF_USER_PIN_FINAL_TRY, "user-pin-final-try"},
		{CKF_SO_PIN_LOCKED, "SO-PIN-LOCKED"},
	};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((f & names[i].bit) == 0)
			continue;
		n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n > 0 ? "," : "",
				      names[i].name);
		if (n >= cap)
			break;
	}
}

static int module_list(struct tokens_args *a)
{
	char *path = modfile_path(a), *err = NULL;
	struct p11_modlist *ml = p11_modlist_load(path, &err);
	struct p11_slot_info *slots = NULL;
	struct p11_ctx *ctx = NULL;
	size_t nslots = 0;
	int rc;

	if (ml == NULL) {
		free(path);
		return tok_fail_err(TOK_EFAIL, err, "module list");
	}
	if ((ctx = tok_p11_ctx(a, &rc)) == NULL)
		goto out;
	if (p11_ctx_slots(ctx, &slots, &nslots, &err) < 0) {
		rc = tok_fail_err(TOK_ETOKEN, err, NULL);
		goto out;
	}
	printf("Module list: %s\n", path);
	for (size_t m = 0; m < p11_ctx_module_count(ctx); m++) {
		struct p11_module *mod = p11_ctx_module_at(ctx, m);
		const char *name = p11_module_name(mod), *lib = NULL;

		for (size_t i = 0; i < p11_modlist_count(ml); i++) {
			const char *n, *p;

			p11_modlist_at(ml, i, &n, &p);
			if (strcmp(n, name) == 0)
				lib = p;
		}
		printf("Module %s: %s\n", name,
		       lib != NULL ? lib : strcmp(name, "cmdline") == 0 ? a->module : "(p11-kit registry)");
		for (size_t s = 0; s < nslots; s++) {
			char flags[256];

			if (slots[s].module != mod)
				continue;
			if (!slots[s].token_present) {
				printf("  slot %lu: no token%s\n", (unsigned long)slots[s].slot,
				       slots[s].disabled ? " [disabled]" : "");
				continue;
			}
			flags_text(slots[s].flags, flags, sizeof(flags));
			printf("  slot %lu: token \"%s\" (%s %s, serial %s) flags: %s%s\n",
			       (unsigned long)slots[s].slot, slots[s].label, slots[s].manufacturer,
			       slots[s].model, slots[s].serial, flags,
			       slots[s].disabled ? " [disabled]" : "");
		}
	}
	/* entries of the list that did not load are worth seeing too */
	for (size_t i = 0; i < p11_modlist_count(ml); i++) {
		const char *n, *p;
		bool loaded = false;

		p11_modlist_at(ml, i, &n, &p);
		for (size_t m = 0; m < p11_ctx_module_count(ctx); m++)
			if (strcmp(p11_module_name(p11_ctx_module_at(ctx, m)), n) == 0)
				loaded = true;
		if (!loaded)
			printf("Module %s: %s (not loaded: see the log above, or loaded once "
			       "through p11-kit)\n", n, p);
	}
	rc = TOK_OK;
out:
	free(slots);
	p11_ctx_free(&ctx);
	p11_modlist_free(&ml);
	free(path);
	return rc;
}

static int edit_list(struct tokens_args *a)
{
	char *path = modfile_path(a), *err = NULL;
	struct p11_modlist *ml = p11_modlist_load(path, &err);
	const char *name = a->pos[0];
	int rc = TOK_EFAIL, r = 0;

	if (ml == NULL) {
		free(path);
		return tok_fail_err(TOK_EFAIL, err, "module list");
	}
	if (strcmp(a->cmd, "module add") == 0) {
		struct p11_ctx_settings set = {0};
		struct p11_ctx *ctx;

		if (a->npos != 2 || a->pos[1][0] != '/') {
			rc = tok_fail(TOK_EUSAGE, "module add NAME /ABSOLUTE/PATH/module.so");
			goto out;
		}
		if (access(a->pos[1], R_OK) < 0) {
			rc = tok_fail(TOK_ENOTFOUND, "%s: no such module file", a->pos[1]);
			goto out;
		}
		/* prove it loads and initialises before writing it down */
		ctx = p11_ctx_new(&set, &err);
		if (ctx == NULL || p11_ctx_add_module(ctx, name, a->pos[1], &err) < 0) {
			p11_ctx_free(&ctx);
			rc = tok_fail_err(TOK_ETOKEN, err, NULL);
			goto out;
		}
		p11_ctx_free(&ctx);
		r = p11_modlist_add(ml, name, a->pos[1], &err);
	} else if (strcmp(a->cmd, "module remove") == 0) {
		r = p11_modlist_remove(ml, name, &err);
		if (r < 0) {
			rc = tok_fail_err(TOK_ENOTFOUND, err, NULL);
			goto out;
		}
	} else {
		char *end;
		unsigned long slot;

		if (a->npos != 2) {
			rc = tok_fail(TOK_EUSAGE, "%s NAME SLOT-ID", a->cmd);
			goto out;
		}
		slot = strtoul(a->pos[1], &end, 10);
		if (*end != '\0' || a->pos[1][0] == '\0' || a->pos[1][0] == '-') {
			rc = tok_fail(TOK_EUSAGE, "SLOT-ID is a decimal slot number (see module list)");
			goto out;
		}
		r = strcmp(a->cmd, "module disable") == 0
			? p11_modlist_disable_slot(ml, name, (CK_SLOT_ID)slot, &err)
			: p11_modlist_enable_slot(ml, name, (CK_SLOT_ID)slot, &err);
	}
	if (r < 0) {
		rc = tok_fail_err(TOK_EREFUSED, err, NULL);
		goto out;
	}
	if (p11_modlist_save(ml, path, &err) < 0) {
		rc = tok_fail_err(TOK_EFAIL, err, NULL);
		goto out;
	}
	printf("%s: done (%s); running daemons take it on SIGHUP\n", a->cmd, path);
	rc = TOK_OK;
out:
	p11_modlist_free(&ml);
	free(path);
	return rc;
}

static void mech_flags(CK_FLAGS f, char *buf, size_t cap)
{
	static const struct { CK_FLAGS bit; const char *name; } names[] = {
		{CKF_HW, "HW"}, {CKF_ENCRYPT, "encrypt"}, {CKF_DECRYPT, "decrypt"},
		{CKF_DIGEST, "digest"}, {CKF_SIGN, "sign"}, {CKF_VERIFY, "verify"},
		{CKF_GENERATE, "generate"}, {CKF_GENERATE_KEY_PAIR, "keypair"},
		{CKF_WRAP, "wrap"}, {CKF_UNWRAP, "unwrap"}, {CKF_DERIVE, "derive"},
	};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < cap; i++)
		if (f & names[i].bit)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n > 0 ? "," : "", names[i].name);
}

static int module_mechanisms(struct tokens_args *a)
{
	struct p11_ctx *ctx;
	size_t shown = 0;
	int rc;

	if ((ctx = tok_p11_ctx(a, &rc)) == NULL)
		return rc;
	for (size_t m = 0; m < p11_ctx_module_count(ctx); m++) {
		struct p11_module *mod = p11_ctx_module_at(ctx, m);
		CK_FUNCTION_LIST *fn = p11_module_functions(mod);
		CK_SLOT_ID slots[256];
		CK_ULONG nslots = 256;

		if (a->npos == 1 && strcmp(a->pos[0], p11_module_name(mod)) != 0)
			continue;
		shown++;
		if (fn->C_GetSlotList(CK_TRUE, slots, &nslots) != CKR_OK) {
			printf("%s: cannot list slots\n", p11_module_name(mod));
			continue;
		}
		for (CK_ULONG s = 0; s < nslots; s++) {
			CK_MECHANISM_TYPE mechs[MAX_MECHS];
			CK_ULONG nmechs = MAX_MECHS;
			CK_TOKEN_INFO ti;
			char label[33];
			CK_RV rv;

			if (fn->C_GetTokenInfo(slots[s], &ti) != CKR_OK)
				continue;
			memcpy(label, ti.label, 32);
			label[32] = '\0';
			for (int i = 31; i >= 0 && label[i] == ' '; i--)
				label[i] = '\0';
			printf("%s: slot %lu, token \"%s\":\n", p11_module_name(mod),
			       (unsigned long)slots[s], label);
			rv = fn->C_GetMechanismList(slots[s], mechs, &nmechs);
			if (rv != CKR_OK) {
				printf("  (cannot list mechanisms: %s)\n", p11_strerror(rv));
				continue;
			}
			printf("  %-32s %8s %8s  %s\n", "Mechanism", "Min", "Max", "Flags");
			for (CK_ULONG i = 0; i < nmechs; i++) {
				CK_MECHANISM_INFO mi;
				const char *name = p11_mech_name(mechs[i]);
				char fl[160], hex[32];

				if (fn->C_GetMechanismInfo(slots[s], mechs[i], &mi) != CKR_OK)
					memset(&mi, 0, sizeof(mi));
				mech_flags(mi.flags, fl, sizeof(fl));
				snprintf(hex, sizeof(hex), "CKM_0x%08lX", (unsigned long)mechs[i]);
				printf("  %-32s %8lu %8lu  %s\n", name != NULL ? name : hex,
				       (unsigned long)mi.ulMinKeySize, (unsigned long)mi.ulMaxKeySize, fl);
			}
		}
	}
	p11_ctx_free(&ctx);
	if (a->npos == 1 && shown == 0)
		return tok_fail(TOK_ENOTFOUND, "no module named \"%s\" (see tokens module list)",
				a->pos[0]);
	return TOK_OK;
}

const struct tokens_cmd tokens_cmds_module[] = {
	{"module list", TO_COMMON, 0, 0,
	 "module list\n"
	 "Modules (p11-kit's and the module list's), their slots and tokens with flags;\n"
	 "disabled slots are marked.\n",
	 module_list},
	{"module add", TO_COMMON, 2, 2,
	 "module add NAME LIBPATH\n"
	 "Adds a module to the module list after checking that it loads.\n",
	 edit_list},
	{"module remove", TO_COMMON, 1, 1,
	 "module remove NAME\n", edit_list},
	{"module disable", TO_COMMON, 2, 2,
	 "module disable NAME SLOT-ID\nDaemons will not use that slot.\n", edit_list},
	{"module enable", TO_COMMON, 2, 2,
	 "module enable NAME SLOT-ID\n", edit_list},
	{"module mechanisms", TO_COMMON, 0, 1,
	 "module mechanisms [NAME]\n"
	 "Per slot with a token: mechanisms, key sizes and flags (HW, sign, keypair, ...).\n",
	 module_mechanisms},
	{NULL, 0, 0, 0, NULL, NULL},
};
