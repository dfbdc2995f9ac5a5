/* Unit tests for the Maildir store (mailcore/store_maildir.c): unique
 * names, crash-safe all-or-nothing delivery, quota, paths; plus the users
 * and aliases files it delivers for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailcore/mailcore.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	char *dir = strdup("/tmp/test_maildir.XXXXXX");

	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	nftw(*state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

static int count_files(const char *dir, char *first, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, cap, "%s/%s", dir, de->d_name);
	}
	closedir(d);
	return n;
}

static void test_unique_names(void **state)
{
	char a[256], b[256], pid[32];

	(void)state;
	assert_int_equal(store_maildir_unique("mx.example.com", 1234, a, sizeof(a)), 0);
	assert_int_equal(store_maildir_unique("mx.example.com", 1234, b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	snprintf(pid, sizeof(pid), "P%ldQ", (long)getpid());
	assert_non_null(strstr(a, ".M"));
	assert_non_null(strstr(a, pid));
	assert_non_null(strstr(a, ".mx.example.com,S=1234"));
	assert_int_equal(store_maildir_unique("a/b:c,d", 1, a, sizeof(a)), 0);
	assert_non_null(strstr(a, ".a\\057b\\072c\\054d,S=1"));
	assert_null(strchr(a, '/'));
	assert_int_equal(store_maildir_unique("mx", 1, a, 10), -1);
}

static void test_paths(void **state)
{
	char buf[256];

	(void)state;
	assert_int_equal(store_maildir_path("/s", "alice@example.com", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/s/example.com/alice/Maildir");
	assert_int_equal(store_maildir_path("/s", "../x@example.com", buf, sizeof(buf)), -1);
	assert_int_equal(store_maildir_path("/s", "a/b@example.com", buf, sizeof(buf)), -1);
	assert_int_equal(store_maildir_path("/s", "a@../etc", buf, sizeof(buf)), -1);
	assert_int_equal(store_maildir_path("/s", "noat", buf, sizeof(buf)), -1);
	assert_int_equal(store_maildir_path("/s", "alice@example.com", buf, 10), -1);
}

static void test_deliver_two_targets(void **state)
{
	const char *root = *state;
	char md1[256], md2[256], dir[300], file[600], content[256], name[256];
	struct store_target t[2];
	struct iovec parts[2] = {{(void *)"Subject: x\r\n\r\n", 14}, {(void *)"body\r\n", 6}};
	char *err = NULL;
	int fd;
	ssize_t n;
	uint64_t used;

	snprintf(md1, sizeof(md1), "%s/a/Maildir", root);
	snprintf(md2, sizeof(md2), "%s/b/Maildir", root);
	memset(t, 0, sizeof(t));
	t[0].maildir = md1;
	t[0].prefix = "Delivered-To: a\r\n";
	t[0].prefix_len = 17;
	t[1].maildir = md2;
	assert_int_equal(store_maildir_deliver(t, 2, parts, 2, "mx", name, sizeof(name), &err), STORE_OK);
	snprintf(dir, sizeof(dir), "%s/new", md1);
	assert_int_equal(count_files(dir, file, sizeof(file)), 1);
	assert_non_null(strstr(file, name));
	fd = open(file, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, content, sizeof(content) - 1);
	close(fd);
	assert_int_equal(n, 17 + 20);
	content[n] = '\0';
	assert_string_equal(content, "Delivered-To: a\r\nSubject: x\r\n\r\nbody\r\n");
	assert_non_null(strstr(file, ",S=37"));
	snprintf(dir, sizeof(dir), "%s/tmp", md1);
	assert_int_equal(count_files(dir, NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%s/cur", md2);
	assert_int_equal(count_files(dir, NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%s/new", md2);
	assert_int_equal(count_files(dir, NULL, 0), 1);
	assert_int_equal(store_maildir_usage(md1, &used), 0);
	assert_int_equal(used, 37);
	/* a file without ,S= is measured with stat */
	snprintf(file, sizeof(file), "%s/cur/1.plain:2,S", md1);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "12345", 5), 5);
	close(fd);
	assert_int_equal(store_maildir_usage(md1, &used), 0);
	assert_int_equal(used, 42);
	snprintf(dir, sizeof(dir), "%s/none", root);
	assert_int_equal(store_maildir_usage(dir, &used), 0);
	assert_int_equal(used, 0);
}

static void test_all_or_nothing(void **state)
{
	const char *root = *state;
	char md1[256], md2[256], dir[300];
	struct store_target t[2];
	struct iovec part = {(void *)"0123456789", 10};
	char *err = NULL;
	int fd;

	snprintf(md1, sizeof(md1), "%s/ok/Maildir", root);
	snprintf(md2, sizeof(md2), "%s/blocked", root);
	/* a plain file where the second Maildir should be: it cannot be made */
	fd = open(md2, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	memset(t, 0, sizeof(t));
	t[0].maildir = md1;
	t[1].maildir = md2;
	assert_int_equal(store_maildir_deliver(t, 2, &part, 1, "mx", NULL, 0, &err), STORE_TEMPFAIL);
	assert_non_null(err);
	free(err);
	err = NULL;
	snprintf(dir, sizeof(dir), "%s/new", md1);
	assert_int_equal(count_files(dir, NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%s/tmp", md1);
	assert_int_equal(count_files(dir, NULL, 0), 0);

	/* quota: 25 bytes; the first 10 fit, the third message does not */
	t[1].maildir = md1;
	t[0].quota = 25;
	assert_int_equal(store_maildir_deliver(t, 1, &part, 1, "mx", NULL, 0, &err), STORE_OK);
	assert_int_equal(store_maildir_deliver(t, 1, &part, 1, "mx", NULL, 0, &err), STORE_OK);
	assert_int_equal(store_maildir_deliver(t, 1, &part, 1, "mx", NULL, 0, &err), STORE_OVER_QUOTA);
	free(err);
	snprintf(dir, sizeof(dir), "%s/new", md1);
	assert_int_equal(count_files(dir, NULL, 0), 2);
}

/* text must not parse, with an error holding needle */
static void expect_users_error(const char *text, const char *needle)
{
	char *err = NULL;
	struct dir_users *users = dir_users_parse("users", text, strlen(text), &err);

	assert_null(users);
	assert_non_null(err);
	if (strstr(err, needle) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", err, needle);
	free(err);
}

static void test_users_file(void **state)
{
	struct crypt_data cd;
	char text[1024], *err = NULL;
	const char *hash;
	const struct dir_user *u;
	struct dir_users *users;

	(void)state;
	memset(&cd, 0, sizeof(cd));
	hash = crypt_r("pw1", "$6$abcdefgh$", &cd);
	assert_non_null(hash);
	snprintf(text, sizeof(text),
		 "# users\n\nAlice@Example.COM:%s:quota=100m,status=active\n"
		 "bob@example.com:*:\n"
		 "carol@example.com:%s: status=inactive , quota=1k \n"
		 "dave@example.com:%s:status=deleted\n"
		 "erin@example.com:%s\n",
		 hash, hash, hash, hash);
	users = dir_users_parse("users", text, strlen(text), &err);
	if (users == NULL)
		fail_msg("%s", err);
	assert_int_equal(dir_users_count(users), 5);
	u = dir_users_find(users, "ALICE@example.com");
	assert_non_null(u);
	assert_string_equal(u->address, "alice@example.com");
	assert_int_equal(u->quota, 100ULL * 1024 * 1024);
	assert_int_equal(dir_users_find(users, "carol@example.com")->quota, 1024);
	assert_null(dir_users_find(users, "dave@example.com"));
	assert_null(dir_users_find(users, "nobody@example.com"));

	assert_int_equal(dir_users_verify(users, "alice@example.com", "pw1", 3, &u), 0);
	assert_string_equal(u->address, "alice@example.com");
	assert_int_equal(dir_users_verify(users, "alice@example.com", "pw2", 3, &u), -1);
	assert_int_equal(dir_users_verify(users, "alice@example.com", "pw1\0x", 5, &u), -1);
	assert_int_equal(dir_users_verify(users, "bob@example.com", "*", 1, &u), -1);
	assert_int_equal(dir_users_verify(users, "carol@example.com", "pw1", 3, &u), -1);
	assert_int_equal(dir_users_verify(users, "dave@example.com", "pw1", 3, &u), -1);
	assert_int_equal(dir_users_verify(users, "nobody@example.com", "pw1", 3, &u), -1);
	assert_int_equal(dir_users_verify(users, "erin@example.com", "pw1", 3, &u), 0);
	dir_users_free(&users);
	assert_null(users);

	static const struct {
		const char *text, *error;
	} bad[] = {
		{"alice@example.com:x:quota=abc\n", "users:1: bad quota"},
		{"ok@example.com::\nalice@example.com:x:colour=blue\n", "users:2: unknown attribute"},
		{"alice:x:\n", "users:1: bad address"},
		{"al/ice@example.com:x:\n", "users:1: bad address"},
		{"a@example.com:x:\nb@example.com:x:\nA@example.com:y:\n", "users:3: duplicate address"},
		{"a@example.com:x:y:z\n", "users:1: too many"},
		{"a@example.com:x:status=gone\n", "users:1: bad status"},
		{"  a@example.com:x:\n", "users:1: leading blanks"},
		{"a@example.com:x y:\n", "users:1: bad character in hash"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_users_error(bad[i].text, bad[i].error);
}

/* mailhost=: a host name, lower-cased, bounded; a bad one names the line */
static void test_users_mailhost(void **state)
{
	static const char text[] = "olga@example.com:*:quota=1m,mailhost=Store2.Example,status=active\n"
				   "pia@example.com:*:mailhost=s_3.example.\n"
				   "quinn@example.com:*:mailhost=s4.example, allowed=+imap:ALL\n"
				   "ruth@example.com:*:\n";
	char *err = NULL, long_line[400];
	struct dir_users *users = dir_users_parse("users", text, strlen(text), &err);
	const struct dir_user *u;
	int len;

	(void)state;
	if (users == NULL)
		fail_msg("%s", err);
	u = dir_users_find(users, "olga@example.com");
	assert_non_null(u);
	assert_string_equal(u->mailhost, "store2.example");
	assert_int_equal(u->quota, 1024 * 1024);
	assert_string_equal(dir_users_find(users, "pia@example.com")->mailhost, "s_3.example.");
	u = dir_users_find(users, "quinn@example.com");
	assert_string_equal(u->mailhost, "s4.example");
	assert_string_equal(u->allowed, "+imap:ALL");
	assert_null(dir_users_find(users, "ruth@example.com")->mailhost);
	dir_users_free(&users);

	static const struct {
		const char *text, *error;
	} bad[] = {
		{"a@example.com:*:mailhost=\n", "users:1: bad mailhost"},
		{"a@example.com:*:\nb@example.com:*:mailhost=a/b.example\n", "users:2: bad mailhost"},
		{"a@example.com:*:mailhost=a b.example\n", "users:1: bad mailhost"},
		{"a@example.com:*:mailhost=x@y.example\n", "users:1: bad mailhost"},
		{"a@example.com:*:mailhost=h%2f.example\n", "users:1: bad mailhost"},
		{"a@example.com:*:mailhost=a.example,mailhost=b.example\n", "users:1: duplicate mailhost"},
		/* what the attributes set is freed when a later check fails
		 * (valgrind, ASan; fuzz_dir_users found the second) */
		{"a@example.com:*:mailhost=a.example,quota=x\n", "users:1: bad quota"},
		{"a@@example.com:*:mailhost=a.example, allowed=+imap:ALL\n", "users:1: bad address"},
		{"a@example.com:x y:allowed=+imap:ALL\n", "users:1: bad character in hash"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_users_error(bad[i].text, bad[i].error);
	/* 253 characters: the longest name; 254: refused */
	len = snprintf(long_line, sizeof(long_line), "a@example.com:*:mailhost=");
	memset(long_line + len, 'h', 254);
	long_line[len + 253] = '\0';
	users = dir_users_parse("users", long_line, strlen(long_line), &err);
	if (users == NULL)
		fail_msg("%s", err);
	assert_int_equal(strlen(dir_users_find(users, "a@example.com")->mailhost), 253);
	dir_users_free(&users);
	long_line[len + 253] = 'h';
	long_line[len + 254] = '\0';
	expect_users_error(long_line, "users:1: bad mailhost");
}

static bool all_local(const char *domain, void *arg)
{
	(void)arg;
	return strcmp(domain, "example.com") == 0;
}

static void test_aliases_file(void **state)
{
	static const char text[] = "# aliases\n"
				   "staff: alice@example.com, team@example.com\n"
				   "team@example.com: bob@example.com carol@example.com\n"
				   "postmaster: alice@example.com\n"
				   "loop1: loop2@example.com\n"
				   "loop2: loop1@example.com\n"
				   "out: friend@remote.example\n";
	char *err = NULL, *targets[16];
	struct dir_aliases *al = dir_aliases_parse("aliases", text, strlen(text), &err);
	int n;

	(void)state;
	if (al == NULL)
		fail_msg("%s", err);
	n = dir_aliases_expand(al, "Staff@example.com", all_local, NULL, targets, 16);
	assert_int_equal(n, 3);
	assert_string_equal(targets[0], "alice@example.com");
	assert_string_equal(targets[1], "bob@example.com");
	assert_string_equal(targets[2], "carol@example.com");
	for (int i = 0; i < n; i++)
		free(targets[i]);
	assert_int_equal(dir_aliases_expand(al, "alice@example.com", all_local, NULL, targets, 16), 0);
	assert_int_equal(dir_aliases_expand(al, "loop1@example.com", all_local, NULL, targets, 16), -1);
	assert_int_equal(dir_aliases_expand(al, "staff@example.com", all_local, NULL, targets, 2), -1);
	n = dir_aliases_expand(al, "out@example.com", all_local, NULL, targets, 16);
	assert_int_equal(n, 1);
	assert_string_equal(targets[0], "friend@remote.example");
	free(targets[0]);
	dir_aliases_free(&al);

	al = dir_aliases_parse("aliases", "a: b@x.example\nbad line\n", 24, &err);
	assert_null(al);
	assert_non_null(strstr(err, "aliases:2:"));
	free(err);
	al = dir_aliases_parse("aliases", "a:\n", 3, &err);
	assert_null(al);
	assert_non_null(strstr(err, "aliases:1: alias without targets"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unique_names),
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_deliver_two_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_or_nothing, setup, teardown),
		cmocka_unit_test(test_users_file),
		cmocka_unit_test(test_users_mailhost),
		cmocka_unit_test(test_aliases_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
