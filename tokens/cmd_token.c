/* tokens token ...: work on a PKCS#11 token itself: initialise a software
 * token (SoftHSM2) with its SO and user PINs, change the user PIN, list its
 * objects with their protection flags, generate a key pair on it.
 * PINs come from the -W file: "LABEL:user-pin" and "LABEL (SO):so-pin". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "tokens/tokens.h"

#define MAX_OBJECTS 4096

static void pad_label(const char *label, CK_UTF8CHAR out[32])
{
	size_t n = strlen(label);

	memset(out, ' ', 32);
	memcpy(out, label, n > 32 ? 32 : n);
}

static int token_init(struct tokens_args *a)
{
	struct p11_slot_info *slots = NULL;
	struct sp_pinfile *pins = NULL;
	struct p11_ctx *ctx = NULL;
	CK_FUNCTION_LIST *fn = NULL;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_UTF8CHAR label32[32];
	const char *pin, *sopin;
	char *sokey = NULL, *err = NULL;
	size_t nslots = 0, pick = (size_t)-1;
	CK_SLOT_ID slot = 0;
	CK_RV rv;
	int rc;

	if (a->label == NULL || strlen(a->label) > 32 || a->label[0] == '\0')
		return tok_fail(TOK_EUSAGE, "token init needs --label LABEL (1..32 bytes)");
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL)
		return rc;
	sokey = sp_xasprintf("%s (SO)", a->label);
	pin = sp_pinfile_get(pins, a->label);
	sopin = sp_pinfile_get(pins, sokey);
	if (pin == NULL || sopin == NULL) {
		rc = tok_fail(TOK_EPASSWORD, "the password file needs the lines \"%s:USER-PIN\" and "
			      "\"%s:SO-PIN\"", a->label, sokey);
		goto out;
	}
	if ((ctx = tok_p11_ctx(a, &rc)) == NULL)
		goto out;
	if (p11_ctx_slots(ctx, &slots, &nslots, &err) < 0) {
		rc = tok_fail_err(TOK_ETOKEN, err, NULL);
		goto out;
	}
	for (size_t i = 0; i < nslots; i++) {
		if (strcmp(slots[i].label, a->label) == 0 && (slots[i].flags & CKF_TOKEN_INITIALIZED)) {
			rc = tok_fail(TOK_EREFUSED, "a token \"%s\" exists already (slot %lu)", a->label,
				      (unsigned long)slots[i].slot);
			goto out;
		}
		if (pick == (size_t)-1 && slots[i].token_present && !slots[i].disabled &&
		    (slots[i].flags & CKF_TOKEN_INITIALIZED) == 0)
			pick = i;
	}
	if (pick == (size_t)-1) {
		rc = tok_fail(TOK_ENOTFOUND, "no slot with an uninitialised token (a software token "
			      "module such as SoftHSM2 offers one: --module or module add)");
		goto out;
	}
	fn = p11_module_functions(slots[pick].module);
	pad_label(a->label, label32);
	rv = fn->C_InitToken(slots[pick].slot, (CK_UTF8CHAR *)sopin, (CK_ULONG)strlen(sopin), label32);
	if (rv != CKR_OK) {
		rc = tok_fail_err(TOK_ETOKEN, p11_error(rv, "C_InitToken"), NULL);
		goto out;
	}
	/* SoftHSM2 moves an initialised token to a new slot id: look it up again */
	{
		CK_SLOT_ID ids[256];
		CK_ULONG n = 256;
		bool found = false;

		rv = fn->C_GetSlotList(CK_TRUE, ids, &n);
		for (CK_ULONG i = 0; rv == CKR_OK && i < n && !found; i++) {
			CK_TOKEN_INFO ti;

			if (fn->C_GetTokenInfo(ids[i], &ti) == CKR_OK && memcmp(ti.label, label32, 32) == 0) {
				slot = ids[i];
				found = true;
			}
		}
		if (!found) {
			rc = tok_fail(TOK_ETOKEN, "token \"%s\" initialised but not found again", a->label);
			goto out;
		}
	}
	rv = fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK)
		rv = fn->C_Login(s, CKU_SO, (CK_UTF8CHAR *)sopin, (CK_ULONG)strlen(sopin));
	if (rv == CKR_OK)
		rv = fn->C_InitPIN(s, (CK_UTF8CHAR *)pin, (CK_ULONG)strlen(pin));
	if (rv != CKR_OK) {
		rc = tok_fail_err(rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID ? TOK_EPASSWORD
										    : TOK_ETOKEN,
				  p11_error(rv, "setting the user PIN"), NULL);
		goto out;
	}
	(void)fn->C_Logout(s);
	printf("Initialised token \"%s\" in slot %lu with its SO and user PINs\n", a->label,
	       (unsigned long)slot);
	rc = TOK_OK;
out:
	if (s != CK_INVALID_HANDLE)
		(void)fn->C_CloseSession(s);
	free(slots);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	free(sokey);
	return rc;
}

static int token_set_pin(struct tokens_args *a)
{
	struct sp_pinfile *pins = NULL;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	CK_SESSION_HANDLE s;
	const char *old;
	char *newpin = NULL, *err = NULL;
	CK_RV rv;
	int rc;

	if (a->token == NULL)
		return tok_fail(TOK_EUSAGE, "token set-pin needs --token LABEL");
	pins = tok_pins_load(a, true, &rc);
	if (pins == NULL)
		return rc;
	if ((old = sp_pinfile_get(pins, a->token)) == NULL) {
		rc = tok_fail(TOK_EPASSWORD, "the password file has no line \"%s:PIN\"", a->token);
		goto out;
	}
	newpin = a->newpin_file != NULL ? tok_secret_file(a->newpin_file, &err)
					: tok_secret_prompt("New PIN: ", true, &err);
	if (newpin == NULL) {
		rc = tok_fail_err(TOK_EPASSWORD, err, "new PIN");
		goto out;
	}
	if ((ctx = tok_p11_ctx(a, &rc)) == NULL || (tok = tok_p11_open(ctx, a->token, pins, &rc)) == NULL)
		goto out;
	if (p11_session_get(tok, 10000, &s, &err) < 0) {
		rc = tok_fail_err(TOK_ETOKEN, err, NULL);
		goto out;
	}
	rv = p11_token_functions(tok)->C_SetPIN(s, (CK_UTF8CHAR *)old, (CK_ULONG)strlen(old),
						(CK_UTF8CHAR *)newpin, (CK_ULONG)strlen(newpin));
	p11_session_put(tok, s, false);
	if (rv != CKR_OK) {
		rc = tok_fail_err(rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE ||
				  rv == CKR_PIN_INVALID ? TOK_EPASSWORD : TOK_ETOKEN,
				  p11_error(rv, "C_SetPIN"), NULL);
		goto out;
	}
	printf("Changed the user PIN of token \"%s\"; now update its line in sslpassword.conf "
	       "and send the daemons SIGHUP\n", a->token);
	rc = TOK_OK;
out:
	tok_secret_free(&newpin);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	return rc;
}

static const char *class_name(CK_OBJECT_CLASS c)
{
	switch (c) {
	case CKO_PRIVATE_KEY: return "private-key";
	case CKO_PUBLIC_KEY: return "public-key";
	case CKO_SECRET_KEY: return "secret-key";
	case CKO_CERTIFICATE: return "certificate";
	case CKO_DATA: return "data";
	default: return "other";
	}
}

static bool attr_bool(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
		      CK_ATTRIBUTE_TYPE t, bool *v)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE at = {t, &b, sizeof(b)};

	if (fn->C_GetAttributeValue(s, o, &at, 1) != CKR_OK)
		return false;
	*v = b == CK_TRUE;
	return true;
}

static int token_list_objects(struct tokens_args *a)
{
	struct sp_pinfile *pins = NULL;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	CK_OBJECT_HANDLE objs[256];
	CK_FUNCTION_LIST *fn;
	CK_SESSION_HANDLE s;
	CK_ULONG n = 0;
	size_t total = 0;
	char *err = NULL;
	int rc;

	if (a->token == NULL)
		return tok_fail(TOK_EUSAGE, "token list-objects needs --token LABEL");
	pins = tok_pins_load(a, false, &rc);
	if (rc != TOK_OK)
		return rc;
	if ((ctx = tok_p11_ctx(a, &rc)) == NULL ||
	    (tok = tok_p11_open(ctx, a->token,
				pins != NULL && sp_pinfile_get(pins, a->token) != NULL ? pins : NULL,
				&rc)) == NULL)
		goto out;
	fn = p11_token_functions(tok);
	if (p11_session_get(tok, 10000, &s, &err) < 0) {
		rc = tok_fail_err(TOK_ETOKEN, err, NULL);
		goto out;
	}
	printf("%-12s %-24s %-42s %s\n", "Class", "Label", "ID", "Flags");
	if (fn->C_FindObjectsInit(s, NULL, 0) == CKR_OK) {
		while (total < MAX_OBJECTS && fn->C_FindObjects(s, objs, 256, &n) == CKR_OK && n > 0) {
			for (CK_ULONG i = 0; i < n; i++, total++) {
				CK_OBJECT_CLASS cls = 0;
				char label[256] = "", id[130] = "", flags[160] = "";
				unsigned char idraw[64];
				CK_ATTRIBUTE at[3] = {
					{CKA_CLASS, &cls, sizeof(cls)},
					{CKA_LABEL, label, sizeof(label) - 1},
					{CKA_ID, idraw, sizeof(idraw)},
				};
				static const struct { CK_ATTRIBUTE_TYPE t; const char *yes, *no; } bools[] = {
					{CKA_PRIVATE, "private", NULL},
					{CKA_SENSITIVE, "sensitive", "not-sensitive"},
					{CKA_EXTRACTABLE, "extractable", "not-extractable"},
					{CKA_NEVER_EXTRACTABLE, "never-extractable", NULL},
				};

				for (int k = 0; k < 3; k++)
					if (fn->C_GetAttributeValue(s, objs[i], &at[k], 1) != CKR_OK)
						at[k].ulValueLen = 0;
				label[at[1].ulValueLen < sizeof(label) ? at[1].ulValueLen : 0] = '\0';
				for (CK_ULONG k = 0; k < at[2].ulValueLen && k < 64; k++)
					snprintf(id + 2 * k, 3, "%02x", idraw[k]);
				for (size_t k = 0; k < sizeof(bools) / sizeof(bools[0]); k++) {
					bool v;
					const char *w;
					size_t len = strlen(flags);

					if (!attr_bool(fn, s, objs[i], bools[k].t, &v))
						continue;
					w = v ? bools[k].yes : bools[k].no;
					if (w != NULL)
						snprintf(flags + len, sizeof(flags) - len, "%s%s",
							 len > 0 ? "," : "", w);
				}
				printf("%-12s %-24s %-42s %s\n", class_name(cls), label,
				       id[0] != '\0' ? id : "-", flags);
			}
		}
		(void)fn->C_FindObjectsFinal(s);
	}
	p11_session_put(tok, s, false);
	printf("%zu object%s%s\n", total, total == 1 ? "" : "s",
	       pins != NULL && sp_pinfile_get(pins, a->token) != NULL ? ""
	       : " (not logged in: private objects are not shown)");
	rc = TOK_OK;
out:
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_pinfile_free(&pins);
	return rc;
}

static int token_generate_key(struct tokens_args *a)
{
	struct sp_certdb *db;
	struct p11_ctx *ctx = NULL;
	struct p11_token *tok = NULL;
	struct p11_key *key = NULL;
	char *loc = NULL;
	int rc;

	if (a->token == NULL)
		return tok_fail(TOK_EUSAGE, "token generate-key needs --token LABEL");
	db = tok_db_open(a, &rc);
	if (db == NULL)
		return rc;
	if ((rc = tok_check_new_nickname(db, a->pos[0])) == TOK_OK &&
	    (rc = tok_token_keygen(a, db, a->pos[0], &ctx, &tok, &key, &loc)) == TOK_OK)
		printf("Generated the key pair \"%s\" on token \"%s\" (%s); it waits for its "
		       "certificate: tokens add-cert %s FILE\n", a->pos[0], a->token, loc, a->pos[0]);
	free(loc);
	p11_key_free(&key);
	p11_token_close(&tok);
	p11_ctx_free(&ctx);
	sp_certdb_free(&db);
	return rc;
}

const struct tokens_cmd tokens_cmds_token[] = {
	{"token init", TO_COMMON | TO_LABEL, 0, 0,
	 "token init --label LABEL [--module LIBPATH]\n"
	 "Initialises the first uninitialised token (a software token, e.g. SoftHSM2) as\n"
	 "LABEL. The -W file gives the SO PIN as \"LABEL (SO):SO-PIN\" and the user PIN\n"
	 "as \"LABEL:PIN\" (the line the daemons use).\n",
	 token_init},
	{"token set-pin", TO_COMMON | TO_TOKEN | TO_NEWPIN, 0, 0,
	 "token set-pin --token LABEL [--new-pin-file FILE]\n"
	 "Changes the user PIN: the old one is LABEL's line of the -W file, the new one\n"
	 "the first line of FILE or asked twice on the terminal. Update sslpassword.conf\n"
	 "afterwards.\n",
	 token_set_pin},
	{"token list-objects", TO_COMMON | TO_TOKEN, 0, 0,
	 "token list-objects --token LABEL\n"
	 "Objects of the token: class, label, CKA_ID, private/sensitive/extractable flags\n"
	 "(logged in when the -W file has the token's PIN).\n",
	 token_list_objects},
	{"token generate-key", TO_COMMON | TO_TOKEN | TO_KEY, 1, 1,
	 "token generate-key --token LABEL [--key rsa2048|rsa3072|ecp256|ecp384] NICKNAME\n"
	 "Generates a non-extractable key pair NICKNAME on the token; it waits in the\n"
	 "certdb for its certificate (add-cert NICKNAME FILE).\n",
	 token_generate_key},
	{NULL, 0, 0, 0, NULL, NULL},
};
