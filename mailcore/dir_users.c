/* The users file: the embedded directory (address, crypt(3) hash, quota,
 * status, mailhost, ...), parsed whole into a sorted array, looked up by
 * binary search, and the password check with crypt_r. The format is
 * described in mailcore.h. */
#include "mailcore/mailcore.h"

#include <crypt.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "common/xalloc.h"
#include "mailcore/mc_file.h"

#define USERS_MAX_FILE (16u * 1024 * 1024)
#define USERS_MAX_LINE 4096
#define USERS_MAX_COUNT 1000000
#define USERS_MAX_MAILHOST 253 /* RFC 1035 2.3.4: a name in text form */

struct users_entry {
	struct dir_user user;
	unsigned lineno;
};

struct dir_users {
	struct users_entry *entries;
	size_t n, cap;
	/* A real hash of the same cost, checked when the user is unknown so that
	 * a failed login costs the same whether or not the address exists. */
	char *dummy_hash;
};

static char *line_error(const char *name, unsigned lineno, const char *msg)
{
	return sp_xasprintf("%s:%u: %s", name, lineno, msg);
}

/* The fields parse_attrs may have set (a line that fails after them). */
static void user_free_attrs(struct dir_user *user)
{
	free(user->allowed);
	free(user->mailhost);
	user->allowed = NULL;
	user->mailhost = NULL;
}

static void users_free_entries(struct dir_users *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->entries[i].user.address);
		user_free_attrs(&u->entries[i].user);
		if (u->entries[i].user.hash != NULL)
			sp_free_secret(u->entries[i].user.hash, strlen(u->entries[i].user.hash));
	}
	free(u->entries);
}

void dir_users_free(struct dir_users **users)
{
	if (users == NULL || *users == NULL)
		return;
	users_free_entries(*users);
	free((*users)->dummy_hash);
	free(*users);
	*users = NULL;
}

/* SIZE: decimal with optional k/m/g (binary), like sealpost.conf */
static int parse_size(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0, mult = 1;

	if (n == 0)
		return -1;
	switch (tolower((unsigned char)s[n - 1])) {
	case 'k': mult = 1024ULL; n--; break;
	case 'm': mult = 1024ULL * 1024; n--; break;
	case 'g': mult = 1024ULL * 1024 * 1024; n--; break;
	default: break;
	}
	if (n == 0 || n > 15)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v * mult; /* at most 15 digits times 2^30: fits */
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* allowed= runs to the end of the line (a filter holds ',' and ':'): the
 * offset in a[0..n) where that attribute starts, or n if there is none. */
static size_t allowed_start(const char *a, size_t n)
{
	size_t i = 0;

	for (;;) {
		while (i < n && isblank((unsigned char)a[i]))
			i++;
		if (n - i >= 8 && strncmp(a + i, "allowed=", 8) == 0)
			return i;
		while (i < n && a[i] != ',')
			i++;
		if (i == n)
			return n;
		i++;
	}
}

/* mailhost=: the same rule as LDAP mailHost (dir_ldap_entry.c): RFC 1123
 * 2.1 host name characters and '_', as it goes into an IMAP referral URL
 * (RFC 2221) and a queue next hop as it is; stored lower-case. */
static char *parse_mailhost(const char *v, size_t n)
{
	char *h;

	if (n == 0 || n > USERS_MAX_MAILHOST)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '.' && v[i] != '-' && v[i] != '_')
			return NULL;
	h = sp_xstrndup(v, n);
	for (char *p = h; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return h;
}

static bool hash_usable(const char *h)
{
	return h[0] != '\0' && h[0] != '*' && h[0] != '!';
}

static int parse_attrs(const char *a, size_t n, struct dir_user *u, const char **why)
{
	size_t i = 0;
	bool seen_quota = false, seen_status = false, seen_cert = false;

	while (n > 0 && isblank((unsigned char)a[n - 1]))
		n--;
	while (i < n && isblank((unsigned char)a[i]))
		i++;
	while (i < n) {
		size_t start = i, end, eq;

		while (i < n && a[i] != ',')
			i++;
		end = i;
		if (i < n)
			i++;
		while (start < end && isblank((unsigned char)a[start]))
			start++;
		while (end > start && isblank((unsigned char)a[end - 1]))
			end--;
		if (start == end) {
			*why = "empty attribute";
			return -1;
		}
		for (eq = start; eq < end && a[eq] != '='; eq++)
			;
		if (eq == end) {
			*why = "attribute without '=' (expected key=value)";
			return -1;
		}
		if (eq - start == 5 && strncmp(a + start, "quota", 5) == 0) {
			if (seen_quota || parse_size(a + eq + 1, end - eq - 1, &u->quota) < 0) {
				*why = seen_quota ? "duplicate quota" : "bad quota (expected a size like 100m)";
				return -1;
			}
			seen_quota = true;
		} else if (eq - start == 6 && strncmp(a + start, "status", 6) == 0) {
			size_t vl = end - eq - 1;
			const char *v = a + eq + 1;

			if (seen_status) {
				*why = "duplicate status";
				return -1;
			}
			if (vl == 6 && strncmp(v, "active", 6) == 0)
				u->status = DIR_USER_ACTIVE;
			else if (vl == 8 && strncmp(v, "inactive", 8) == 0)
				u->status = DIR_USER_INACTIVE;
			else if (vl == 7 && strncmp(v, "deleted", 7) == 0)
				u->status = DIR_USER_DELETED;
			else {
				*why = "bad status (expected active, inactive or deleted)";
				return -1;
			}
			seen_status = true;
		} else if (eq - start == 10 && strncmp(a + start, "certsha256", 10) == 0) {
			const char *v = a + eq + 1;

			if (seen_cert || end - eq - 1 != 64) {
				*why = seen_cert ? "duplicate certsha256" : "bad certsha256 (64 hex digits)";
				return -1;
			}
			for (size_t k = 0; k < 32; k++) {
				int hi = hex_digit(v[2 * k]), lo = hex_digit(v[2 * k + 1]);

				if (hi < 0 || lo < 0) {
					*why = "bad certsha256 (64 hex digits)";
					return -1;
				}
				u->certsha256[k] = (uint8_t)(hi * 16 + lo);
			}
			u->has_certsha256 = true;
			seen_cert = true;
		} else if (eq - start == 8 && strncmp(a + start, "mailhost", 8) == 0) {
			if (u->mailhost != NULL) {
				*why = "duplicate mailhost";
				return -1;
			}
			u->mailhost = parse_mailhost(a + eq + 1, end - eq - 1);
			if (u->mailhost == NULL) {
				*why = "bad mailhost (a host name, at most 253 characters)";
				return -1;
			}
		} else {
			*why = "unknown attribute (known: quota, status, certsha256, mailhost, allowed)";
			return -1;
		}
	}
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct users_entry *)a)->user.address,
		      ((const struct users_entry *)b)->user.address);
}

static int parse_line(struct dir_users *u, const char *line, size_t len, const char **why)
{
	const char *c1, *c2;
	char addr[SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX + 1];
	struct dir_user user = {0};
	size_t hash_len;

	c1 = memchr(line, ':', len);
	if (c1 == NULL) {
		*why = "expected address:hash:attributes";
		return -1;
	}
	c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line));
	if (c2 != NULL) {
		size_t alen = len - (size_t)(c2 + 1 - line), as = allowed_start(c2 + 1, alen);

		if (memchr(c2 + 1, ':', as) != NULL) {
			*why = "too many ':' fields (expected address:hash:attributes)";
			return -1;
		}
		if (as < alen) {
			const char *v = c2 + 1 + as + 8;
			size_t vl = alen - as - 8;

			while (vl > 0 && isblank((unsigned char)v[vl - 1]))
				vl--;
			if (vl == 0 || vl > 4000) {
				*why = "bad allowed= (a client access filter, the last attribute)";
				return -1;
			}
			user.allowed = sp_xstrndup(v, vl);
			/* the attributes before it, without the separating comma */
			len = (size_t)(c2 + 1 - line) + as;
			while (len > (size_t)(c2 + 1 - line) && isblank((unsigned char)line[len - 1]))
				len--;
			if (len > (size_t)(c2 + 1 - line) && line[len - 1] == ',')
				len--;
		}
	}
	if (mc_normalize_address(line, (size_t)(c1 - line), addr, sizeof(addr)) < 0) {
		user_free_attrs(&user); /* allowed= is taken before the address */
		*why = "bad address (local part [a-z0-9._+-], domain a host name)";
		return -1;
	}
	hash_len = (size_t)((c2 != NULL ? c2 : line + len) - (c1 + 1));
	for (size_t i = 0; i < hash_len; i++) {
		unsigned char ch = (unsigned char)c1[1 + i];

		if (ch <= 32 || ch >= 127) {
			user_free_attrs(&user);
			*why = "bad character in hash";
			return -1;
		}
	}
	if (c2 != NULL && parse_attrs(c2 + 1, len - (size_t)(c2 + 1 - line), &user, why) < 0) {
		user_free_attrs(&user);
		return -1;
	}
	if (u->n == u->cap) {
		if (u->n >= USERS_MAX_COUNT) {
			user_free_attrs(&user);
			*why = "too many users";
			return -1;
		}
		u->cap = u->cap == 0 ? 64 : u->cap * 2;
		u->entries = sp_xrealloc(u->entries, u->cap, sizeof(*u->entries));
	}
	user.address = sp_xstrdup(addr);
	user.hash = sp_xstrndup(c1 + 1, hash_len);
	u->entries[u->n].user = user;
	u->n++;
	return 0;
}

struct dir_users *dir_users_parse(const char *name, const char *buf, size_t len, char **error_r)
{
	struct dir_users *u = sp_xcalloc(1, sizeof(*u));
	struct mc_lines it;
	const char *line;
	size_t n;

	if (len > USERS_MAX_FILE) {
		*error_r = sp_xasprintf("%s: larger than %u bytes", name, USERS_MAX_FILE);
		free(u);
		return NULL;
	}
	mc_lines_init(&it, buf, len);
	while (mc_lines_next(&it, &line, &n)) {
		const char *why = NULL;
		size_t s = 0;

		if (n > USERS_MAX_LINE) {
			*error_r = line_error(name, it.lineno, "line too long");
			goto fail;
		}
		while (s < n && isblank((unsigned char)line[s]))
			s++;
		if (s == n || line[s] == '#')
			continue;
		if (s > 0) {
			*error_r = line_error(name, it.lineno, "leading blanks");
			goto fail;
		}
		if (parse_line(u, line, n, &why) < 0) {
			*error_r = line_error(name, it.lineno, why);
			goto fail;
		}
		u->entries[u->n - 1].lineno = it.lineno;
	}
	if (u->n > 1) /* an empty file has no array: qsort(NULL, ...) is undefined */
		qsort(u->entries, u->n, sizeof(*u->entries), entry_cmp);
	for (size_t i = 1; i < u->n; i++) {
		if (strcmp(u->entries[i].user.address, u->entries[i - 1].user.address) == 0) {
			unsigned a = u->entries[i].lineno, b = u->entries[i - 1].lineno;

			*error_r = sp_xasprintf("%s:%u: duplicate address %s (first on line %u)", name,
						a > b ? a : b, u->entries[i].user.address, a > b ? b : a);
			goto fail;
		}
	}
	for (size_t i = 0; i < u->n; i++) {
		if (hash_usable(u->entries[i].user.hash)) {
			u->dummy_hash = sp_xstrdup(u->entries[i].user.hash);
			break;
		}
	}
	return u;
fail:
	dir_users_free(&u);
	return NULL;
}

struct dir_users *dir_users_load(const char *path, char **error_r)
{
	char *buf;
	size_t len;
	struct dir_users *u;

	if (mc_file_read(path, USERS_MAX_FILE, &buf, &len, error_r) < 0)
		return NULL;
	u = dir_users_parse(path, buf, len, error_r);
	free(buf);
	return u;
}

size_t dir_users_count(const struct dir_users *users)
{
	return users == NULL ? 0 : users->n;
}

static const struct dir_user *users_find_any(const struct dir_users *users, const char *address)
{
	char key[SMTP_PATH_MAX];
	size_t lo = 0, hi, n = strlen(address);

	if (users == NULL || n >= sizeof(key))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		key[i] = (char)tolower((unsigned char)address[i]);
	hi = users->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, users->entries[mid].user.address);

		if (c == 0)
			return &users->entries[mid].user;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct dir_user *dir_users_find(const struct dir_users *users, const char *address)
{
	const struct dir_user *u = users_find_any(users, address);

	return u != NULL && u->status != DIR_USER_DELETED ? u : NULL;
}

int dir_users_verify(const struct dir_users *users, const char *address, const char *password,
		     size_t password_len, const struct dir_user **user_r)
{
	const struct dir_user *u = dir_users_find(users, address);
	bool real = u != NULL && u->status == DIR_USER_ACTIVE && hash_usable(u->hash);
	const char *setting = real ? u->hash : (users != NULL ? users->dummy_hash : NULL);
	struct crypt_data *cd;
	char pw[256];
	const char *out;
	bool ok = false;

	*user_r = NULL;
	if (setting == NULL)
		return -1;
	if (password_len == 0 || password_len >= sizeof(pw) ||
	    memchr(password, '\0', password_len) != NULL) {
		real = false; /* still spend the crypt below */
		password_len = 0;
	}
	memcpy(pw, password, password_len);
	pw[password_len] = '\0';
	cd = sp_xcalloc(1, sizeof(*cd));
	out = crypt_r(pw, setting, cd);
	if (out != NULL && out[0] != '*' && strlen(out) == strlen(setting) &&
	    CRYPTO_memcmp(out, setting, strlen(setting)) == 0)
		ok = true;
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	if (!ok || !real)
		return -1;
	*user_r = u;
	return 0;
}
