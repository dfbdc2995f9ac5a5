/* Finding a token by label or URI across the loaded modules, logging in once
 * with the PIN from sslpassword.conf, sizing its session pool, and listing
 * slots and mechanisms for the CLI. */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "certdb/certdb.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

#define MAX_SLOTS 1024
#define MAX_MECHS 4096

static int get_slots(struct p11_module *mod, CK_BBOOL present, CK_SLOT_ID **slots_r,
		     CK_ULONG *n_r, char **error_r)
{
	CK_ULONG n = 0;
	CK_RV rv;

	rv = mod->fn->C_GetSlotList(present, NULL, &n);
	if (rv == CKR_OK && n > MAX_SLOTS)
		n = MAX_SLOTS;
	*slots_r = sp_xcalloc(n + 1, sizeof(CK_SLOT_ID));
	if (rv == CKR_OK && n > 0)
		rv = mod->fn->C_GetSlotList(present, *slots_r, &n);
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("module %s: C_GetSlotList", mod->name);
		*error_r = p11_error(rv, what);
		free(what);
		free(*slots_r);
		*slots_r = NULL;
		return -1;
	}
	*n_r = n;
	return 0;
}

int p11_ctx_slots(struct p11_ctx *ctx, struct p11_slot_info **slots_r, size_t *count_r,
		  char **error_r)
{
	struct p11_slot_info *out = NULL;
	size_t count = 0, i;

	for (i = 0; i < ctx->nmods; i++) {
		struct p11_module *mod = ctx->mods[i];
		CK_SLOT_ID *slots;
		CK_ULONG n, j;

		if (get_slots(mod, CK_FALSE, &slots, &n, error_r) < 0) {
			free(out);
			return -1;
		}
		out = sp_xrealloc(out, count + n + 1, sizeof(*out));
		for (j = 0; j < n; j++) {
			struct p11_slot_info *si = &out[count++];
			CK_SLOT_INFO sinfo;
			CK_TOKEN_INFO ti;

			memset(si, 0, sizeof(*si));
			si->module = mod;
			si->slot = slots[j];
			si->disabled = p11_modlist_slot_disabled(ctx->modlist, mod->name, slots[j]);
			if (mod->fn->C_GetSlotInfo(slots[j], &sinfo) != CKR_OK ||
			    (sinfo.flags & CKF_TOKEN_PRESENT) == 0)
				continue;
			if (mod->fn->C_GetTokenInfo(slots[j], &ti) != CKR_OK)
				continue;
			si->token_present = true;
			p11_padded_to_str(si->label, sizeof(si->label), ti.label, sizeof(ti.label));
			p11_padded_to_str(si->manufacturer, sizeof(si->manufacturer),
					  ti.manufacturerID, sizeof(ti.manufacturerID));
			p11_padded_to_str(si->model, sizeof(si->model), ti.model, sizeof(ti.model));
			p11_padded_to_str(si->serial, sizeof(si->serial), ti.serialNumber,
					  sizeof(ti.serialNumber));
			si->max_sessions = ti.ulMaxSessionCount;
			si->flags = ti.flags;
		}
		free(slots);
	}
	*slots_r = out;
	*count_r = count;
	return 0;
}

/* CK_EFFECTIVELY_INFINITE (0) and CK_UNAVAILABLE_INFORMATION (~0) say nothing
 * useful: fall back to our default. Otherwise the smaller of the session and
 * read/write session limits, capped. */
static unsigned pool_size_from_token(const CK_TOKEN_INFO *ti)
{
	CK_ULONG lim = P11_POOL_DEFAULT;

	if (ti->ulMaxSessionCount != CK_EFFECTIVELY_INFINITE &&
	    ti->ulMaxSessionCount != CK_UNAVAILABLE_INFORMATION)
		lim = ti->ulMaxSessionCount;
	if (ti->ulMaxRwSessionCount != CK_EFFECTIVELY_INFINITE &&
	    ti->ulMaxRwSessionCount != CK_UNAVAILABLE_INFORMATION && ti->ulMaxRwSessionCount < lim)
		lim = ti->ulMaxRwSessionCount;
	if (lim > P11_POOL_MAX)
		lim = P11_POOL_MAX;
	return lim == 0 ? 1 : (unsigned)lim;
}

static int login(struct p11_token *tok, CK_SESSION_HANDLE s, const CK_TOKEN_INFO *ti,
		 const struct sp_pinfile *pins, char **error_r)
{
	const char *pin;
	CK_RV rv;

	if ((ti->flags & CKF_LOGIN_REQUIRED) == 0)
		return 0;
	if (ti->flags & CKF_USER_PIN_LOCKED) {
		*error_r = sp_xasprintf("token \"%s\": the user PIN is locked (too many wrong "
					"attempts); unlock it with the SO PIN", tok->label);
		return -1;
	}
	pin = sp_pinfile_get(pins, tok->label);
	if (pin == NULL) {
		*error_r = sp_xasprintf("token \"%s\": no PIN for it in sslpassword.conf "
					"(add a line \"%s:PIN\")", tok->label, tok->label);
		return -1;
	}
	if (ti->flags & CKF_USER_PIN_FINAL_TRY)
		sp_log(SP_LOG_WARN, "p11_pin_final_try",
		       "token=\"%s\" note=\"one wrong PIN more locks the token\"", tok->label);
	/* Exactly one attempt: a wrong PIN is never retried, a loop would lock the token. */
	rv = tok->fn->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, (CK_ULONG)strlen(pin));
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		rv = CKR_OK;
	if (rv == CKR_PIN_INCORRECT) {
		*error_r = sp_xasprintf("token \"%s\": login failed: %s; not retried (each wrong "
					"attempt counts towards locking the token): fix its line in "
					"sslpassword.conf", tok->label, p11_strerror(rv));
		return -1;
	}
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("token \"%s\": C_Login", tok->label);
		*error_r = p11_error(rv, what);
		free(what);
		return -1;
	}
	tok->logged_in = true;
	sp_log(SP_LOG_INFO, "p11_login", "token=\"%s\" module=%s slot=%lu", tok->label,
	       tok->mod->name, (unsigned long)tok->slot);
	return 0;
}

struct match {
	struct p11_module *mod;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO ti;
};

static int find_token(struct p11_ctx *ctx, const char *spec, struct match *m, char **error_r)
{
	P11KitUri *uri = NULL;
	size_t i, found = 0, seen = 0;
	char label[33];

	if (strncmp(spec, P11_KIT_URI_SCHEME ":", P11_KIT_URI_SCHEME_LEN + 1) == 0) {
		int rc;
		uri = p11_kit_uri_new();
		rc = p11_kit_uri_parse(spec, P11_KIT_URI_FOR_ANY, uri);
		if (rc != P11_KIT_URI_OK) {
			*error_r = sp_xasprintf("bad PKCS#11 URI: %s", p11_kit_uri_message(rc));
			p11_kit_uri_free(uri);
			return -1;
		}
	}
	for (i = 0; i < ctx->nmods; i++) {
		struct p11_module *mod = ctx->mods[i];
		CK_SLOT_ID *slots;
		CK_ULONG n, j;
		CK_INFO info;

		if (uri != NULL && (mod->fn->C_GetInfo(&info) != CKR_OK ||
				    !p11_kit_uri_match_module_info(uri, &info)))
			continue;
		if (get_slots(mod, CK_TRUE, &slots, &n, error_r) < 0) {
			sp_log(SP_LOG_WARN, "p11_slot_list_failed", "error=\"%s\"", *error_r);
			free(*error_r);
			*error_r = NULL;
			continue;
		}
		for (j = 0; j < n; j++) {
			CK_TOKEN_INFO ti;
			bool hit;

			if (p11_modlist_slot_disabled(ctx->modlist, mod->name, slots[j]))
				continue;
			if (mod->fn->C_GetTokenInfo(slots[j], &ti) != CKR_OK)
				continue;
			seen++;
			p11_padded_to_str(label, sizeof(label), ti.label, sizeof(ti.label));
			hit = uri != NULL ? p11_kit_uri_match_token_info(uri, &ti) != 0
					  : strcmp(label, spec) == 0;
			if (!hit)
				continue;
			if (found++ == 0) {
				m->mod = mod;
				m->slot = slots[j];
				m->ti = ti;
			}
		}
		free(slots);
	}
	if (uri != NULL)
		p11_kit_uri_free(uri);
	if (found == 0) {
		*error_r = sp_xasprintf("no token \"%s\" among the %zu tokens of %zu modules "
					"(disabled slots skipped)", spec, seen, ctx->nmods);
		return -1;
	}
	if (found > 1) {
		*error_r = sp_xasprintf("%zu tokens match \"%s\"; name one by a URI with "
					"serial= or model=", found, spec);
		return -1;
	}
	return 0;
}

struct p11_token *p11_token_open(struct p11_ctx *ctx, const char *spec,
				 const struct sp_pinfile *pins, char **error_r)
{
	struct p11_token *tok;
	struct match m;
	CK_SESSION_HANDLE s;
	unsigned want;
	CK_RV rv;

	if (find_token(ctx, spec, &m, error_r) < 0)
		return NULL;
	tok = sp_xcalloc(1, sizeof(*tok));
	tok->ctx = ctx;
	tok->mod = m.mod;
	tok->fn = m.mod->fn;
	tok->slot = m.slot;
	p11_padded_to_str(tok->label, sizeof(tok->label), m.ti.label, sizeof(m.ti.label));
	pthread_mutex_init(&tok->lock, NULL);
	pthread_cond_init(&tok->cond, NULL);

	rv = tok->fn->C_OpenSession(tok->slot, p11_session_flags(), NULL, NULL, &s);
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("token \"%s\": C_OpenSession", tok->label);
		*error_r = p11_error(rv, what);
		free(what);
		goto fail;
	}
	if (pins != NULL && login(tok, s, &m.ti, pins, error_r) < 0) {
		tok->fn->C_CloseSession(s);
		goto fail;
	}
	want = ctx->sessions != 0 ? ctx->sessions : pool_size_from_token(&m.ti);
	if (p11_pool_open(tok, want, s, error_r) < 0)
		goto fail;
	return tok;
fail:
	pthread_mutex_destroy(&tok->lock);
	pthread_cond_destroy(&tok->cond);
	free(tok);
	return NULL;
}

void p11_token_close(struct p11_token **tokp)
{
	struct p11_token *tok = *tokp;

	if (tok == NULL)
		return;
	/* C_Logout is implied when the application's last session closes */
	p11_pool_close(tok);
	pthread_mutex_destroy(&tok->lock);
	pthread_cond_destroy(&tok->cond);
	free(tok);
	*tokp = NULL;
}

const char *p11_token_label(const struct p11_token *tok)
{
	return tok->label;
}

unsigned p11_token_pool_size(const struct p11_token *tok)
{
	return tok->size;
}

CK_FUNCTION_LIST *p11_token_functions(const struct p11_token *tok)
{
	return tok->fn;
}

int p11_token_mechanisms(struct p11_token *tok, struct p11_mech_info **mechs_r,
			 size_t *count_r, char **error_r)
{
	CK_MECHANISM_TYPE *types;
	struct p11_mech_info *out;
	CK_ULONG n = 0, i;
	CK_RV rv;

	rv = tok->fn->C_GetMechanismList(tok->slot, NULL, &n);
	if (rv == CKR_OK && n > MAX_MECHS)
		n = MAX_MECHS;
	types = sp_xcalloc(n + 1, sizeof(*types));
	if (rv == CKR_OK && n > 0)
		rv = tok->fn->C_GetMechanismList(tok->slot, types, &n);
	if (rv != CKR_OK) {
		char *what = sp_xasprintf("token \"%s\": C_GetMechanismList", tok->label);
		*error_r = p11_error(rv, what);
		free(what);
		free(types);
		return -1;
	}
	out = sp_xcalloc(n + 1, sizeof(*out));
	for (i = 0; i < n; i++) {
		CK_MECHANISM_INFO mi;

		out[i].type = types[i];
		out[i].name = p11_mech_name(types[i]);
		if (tok->fn->C_GetMechanismInfo(tok->slot, types[i], &mi) == CKR_OK) {
			out[i].min_key = mi.ulMinKeySize;
			out[i].max_key = mi.ulMaxKeySize;
			out[i].flags = mi.flags;
		}
	}
	free(types);
	*mechs_r = out;
	*count_r = n;
	return 0;
}
