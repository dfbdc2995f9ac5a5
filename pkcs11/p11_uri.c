/* Names of keys and certificates: "nickname" (internal token), "Token
 * Label:nickname" as administrators write them, and RFC 7512 pkcs11: URIs,
 * parsed by p11-kit. Pure: strings in, a struct p11_name out. */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "common/xalloc.h"
#include "pkcs11/p11_int.h"

void p11_padded_to_str(char *dst, size_t dstsize, const unsigned char *src, size_t srclen)
{
	size_t n = srclen;

	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	if (n >= dstsize)
		n = dstsize - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int parse_uri(const char *text, struct p11_name *name, char **error_r)
{
	P11KitUri *uri = p11_kit_uri_new();
	CK_TOKEN_INFO *ti;
	CK_ATTRIBUTE *a;
	int rc;

	rc = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri);
	if (rc != P11_KIT_URI_OK) {
		*error_r = sp_xasprintf("bad PKCS#11 URI: %s", p11_kit_uri_message(rc));
		p11_kit_uri_free(uri);
		return -1;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL || p11_kit_uri_get_pin_source(uri) != NULL) {
		*error_r = sp_xstrdup("PKCS#11 URI carries a PIN (pin-value/pin-source); "
				      "PINs belong in sslpassword.conf only");
		p11_kit_uri_free(uri);
		return -1;
	}
	name->kind = P11_NAME_URI;
	name->uri = uri;
	ti = p11_kit_uri_get_token_info(uri);
	if (ti != NULL) {
		char label[sizeof(ti->label) + 1];
		p11_padded_to_str(label, sizeof(label), ti->label, sizeof(ti->label));
		if (label[0] != '\0')
			name->token = sp_xstrdup(label);
	}
	a = p11_kit_uri_get_attribute(uri, CKA_LABEL);
	if (a != NULL && a->pValue != NULL)
		name->object = sp_xstrndup(a->pValue, a->ulValueLen);
	a = p11_kit_uri_get_attribute(uri, CKA_ID);
	if (a != NULL && a->pValue != NULL && a->ulValueLen > 0) {
		name->id = sp_xmalloc(a->ulValueLen);
		memcpy(name->id, a->pValue, a->ulValueLen);
		name->id_len = a->ulValueLen;
	}
	return 0;
}

int p11_name_parse(const char *text, struct p11_name *name, char **error_r)
{
	const char *colon;

	memset(name, 0, sizeof(*name));
	if (strncmp(text, P11_KIT_URI_SCHEME ":", P11_KIT_URI_SCHEME_LEN + 1) == 0)
		return parse_uri(text, name, error_r);
	if (text[0] == '\0') {
		*error_r = sp_xstrdup("empty key name");
		return -1;
	}
	/* a nickname holds no ':'; a token label may ("Sun Metaslot:Server-Cert") */
	colon = strrchr(text, ':');
	if (colon == NULL) {
		name->kind = P11_NAME_INTERNAL;
		name->object = sp_xstrdup(text);
		return 0;
	}
	if (colon == text || colon[1] == '\0') {
		*error_r = sp_xasprintf("bad name \"%s\": want \"Token Label:nickname\"", text);
		return -1;
	}
	if ((size_t)(colon - text) > 32) {
		*error_r = sp_xasprintf("bad name \"%s\": a token label has at most 32 bytes",
					text);
		return -1;
	}
	name->kind = P11_NAME_TOKEN;
	name->token = sp_xstrndup(text, (size_t)(colon - text));
	name->object = sp_xstrdup(colon + 1);
	return 0;
}

void p11_name_clear(struct p11_name *name)
{
	free(name->token);
	free(name->object);
	free(name->id);
	if (name->uri != NULL)
		p11_kit_uri_free(name->uri);
	memset(name, 0, sizeof(*name));
}

char *p11_uri_format(const char *token, const char *object, const unsigned char *id,
		     size_t id_len, const char *type)
{
	P11KitUri *uri = p11_kit_uri_new();
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE a;
	char *out = NULL, *ret;

	if (token != NULL) {
		CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
		size_t n = strlen(token);
		memset(ti->label, ' ', sizeof(ti->label));
		memcpy(ti->label, token, n < sizeof(ti->label) ? n : sizeof(ti->label));
	}
	if (object != NULL) {
		a.type = CKA_LABEL;
		a.pValue = (void *)object;
		a.ulValueLen = strlen(object);
		p11_kit_uri_set_attribute(uri, &a);
	}
	if (id != NULL) {
		a.type = CKA_ID;
		a.pValue = (void *)id;
		a.ulValueLen = id_len;
		p11_kit_uri_set_attribute(uri, &a);
	}
	if (type != NULL) {
		cls = strcmp(type, "private") == 0 ? CKO_PRIVATE_KEY :
		      strcmp(type, "public") == 0 ? CKO_PUBLIC_KEY : CKO_CERTIFICATE;
		a.type = CKA_CLASS;
		a.pValue = &cls;
		a.ulValueLen = sizeof(cls);
		p11_kit_uri_set_attribute(uri, &a);
	}
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &out) != P11_KIT_URI_OK)
		out = NULL;
	p11_kit_uri_free(uri);
	ret = out != NULL ? sp_xstrdup(out) : NULL;
	free(out);
	return ret;
}
