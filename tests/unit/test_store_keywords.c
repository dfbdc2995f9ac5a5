/* Unit tests for IMAP keywords in the Maildir store (mailcore/store_keywords.c
 * and their use in store_mailbox.c): the dovecot-keywords parser and its
 * bounds, keyword atoms, info letters, slots given out durably and seen by
 * a second session, the 26-slot limit, append and copy mapping names. Each
 * test works in its own temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mailcore/store_mailbox.h"

static void test_parse(void **state)
{
	struct store_keywords kw = {0};
	size_t bad = 0;
	const char *text = "0 $Forwarded\n25 Last\n26 TooFar\n1 bad]name\nx 1\n2\n3 \n"
			   "4 ok\r\n5 OK\n0 Again\n6 with space\n";
	char *big;

	(void)state;
	store_keywords_parse(text, strlen(text), &kw, &bad);
	assert_string_equal(kw.name[0], "$Forwarded");
	assert_string_equal(kw.name[25], "Last");
	assert_string_equal(kw.name[4], "ok");
	assert_null(kw.name[1]);
	assert_null(kw.name[5]); /* "OK" is "ok" again */
	assert_null(kw.name[6]);
	assert_int_equal(bad, 8);
	assert_int_equal(store_keywords_count(&kw), 3);
	assert_int_equal(store_keywords_find(&kw, "$forwarded"), 0);
	assert_int_equal(store_keywords_find(&kw, "nope"), -1);

	/* past the size bound: the rest is not read */
	big = malloc(STORE_KEYWORDS_FILE_MAX + 64);
	memset(big, '\n', STORE_KEYWORDS_FILE_MAX + 64);
	memcpy(big + STORE_KEYWORDS_FILE_MAX + 10, "7 late\n", 7);
	store_keywords_parse(big, STORE_KEYWORDS_FILE_MAX + 64, &kw, &bad);
	assert_null(kw.name[7]);
	assert_int_equal(bad, 1);
	free(big);
	store_keywords_clear(&kw);
}

static void test_atoms_and_letters(void **state)
{
	char name[STORE_KEYWORD_LEN + 2];

	(void)state;
	assert_true(store_keyword_valid("$Junk", 5));
	assert_true(store_keyword_valid("a.b-c_d", 7));
	assert_false(store_keyword_valid("", 0));
	assert_false(store_keyword_valid("\\Seen", 5));
	assert_false(store_keyword_valid("a b", 3));
	assert_false(store_keyword_valid("a]", 2));
	assert_false(store_keyword_valid("a*", 2));
	assert_false(store_keyword_valid("\xc3\xa9", 2));
	memset(name, 'k', sizeof(name));
	assert_true(store_keyword_valid(name, STORE_KEYWORD_LEN));
	assert_false(store_keyword_valid(name, STORE_KEYWORD_LEN + 1));
	assert_int_equal(store_keywords_from_info("2,FSaz"), (1u << 0) | (1u << 25));
	assert_int_equal(store_keywords_from_info("1,ab"), 0);
	assert_int_equal(store_flags_from_info("2,FSaz"), STORE_F_FLAGGED | STORE_F_SEEN);
}

static char root[256];

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_store_keywords.XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_slots_flags_append_copy(void **state)
{
	struct store_mailbox *a, *b, *arch;
	char *err = NULL, path[512], line[256];
	struct iovec iov = {.iov_base = "Subject: x\r\n\r\nhi\r\n", .iov_len = 18};
	const char *kws[] = {"Alpha", "$Junk"};
	uint32_t validity, uid, dst[1];
	size_t idx[1] = {0};
	int slot;
	FILE *f;

	(void)state;
	assert_int_equal(store_mailbox_append_kw(root, "INBOX", &iov, 1, STORE_F_SEEN, kws, 2, 0, "h",
						 0, &validity, &uid, &err),
			 STORE_MB_OK);
	assert_int_equal(store_mailbox_open(root, "INBOX", false, &a, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_count(a), 1);
	assert_int_equal(store_mailbox_msg(a, 0)->keywords, 3u);
	assert_string_equal(store_mailbox_keywords(a)->name[1], "$Junk");
	assert_int_equal(store_mailbox_open(root, "INBOX", false, &b, &err), STORE_MB_OK);

	/* a new slot, durably, and a second session sees it with the letter */
	assert_int_equal(store_mailbox_keyword_slot(a, "Gamma", false, &slot, &err), STORE_MB_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_mailbox_keyword_slot(a, "Gamma", true, &slot, &err), STORE_MB_OK);
	assert_int_equal(slot, 2);
	assert_int_equal(store_mailbox_set_flags_kw(a, 0, STORE_F_SEEN, 1u << 2, &err), STORE_MB_OK);
	assert_true(strstr(store_mailbox_msg(a, 0)->file, ":2,Sc") != NULL);
	/* set_flags keeps the keywords */
	assert_int_equal(store_mailbox_set_flags(a, 0, STORE_F_SEEN | STORE_F_FLAGGED, &err),
			 STORE_MB_OK);
	assert_true(strstr(store_mailbox_msg(a, 0)->file, ":2,FSc") != NULL);
	{
		struct store_changes ch;

		assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
		assert_int_equal(ch.n_changed, 1);
		assert_int_equal(store_mailbox_msg(b, 0)->keywords, 1u << 2);
		assert_string_equal(store_mailbox_keywords(b)->name[2], "Gamma");
	}
	snprintf(path, sizeof(path), "%s/%s", root, STORE_KEYWORDS_NAME);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "0 Alpha\n");
	fclose(f);

	/* copy: names mapped into the other mailbox's own slots */
	assert_int_equal(store_folder_create(root, "Arch", &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_open(root, "Arch", false, &arch, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_keyword_slot(arch, "Other", true, &slot, &err), STORE_MB_OK);
	store_mailbox_close(&arch);
	assert_int_equal(store_mailbox_copy(a, idx, 1, root, "Arch", "h", 0, &validity, dst, &err),
			 STORE_MB_OK);
	assert_int_equal(store_mailbox_open(root, "Arch", true, &arch, &err), STORE_MB_OK);
	assert_int_equal(store_keywords_find(store_mailbox_keywords(arch), "Gamma"), 1);
	assert_int_equal(store_mailbox_msg(arch, 0)->keywords, 1u << 1);
	store_mailbox_close(&arch);

	/* the limit: 26 slots */
	for (int i = 3; i < STORE_KEYWORDS_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "k%d", i);
		assert_int_equal(store_mailbox_keyword_slot(a, name, true, &slot, &err), STORE_MB_OK);
		assert_int_equal(slot, i);
	}
	assert_int_equal(store_mailbox_keyword_slot(a, "one-more", true, &slot, &err), STORE_MB_LIMIT);
	free(err);
	err = NULL;
	assert_int_equal(store_mailbox_append_kw(root, "INBOX", &iov, 1, 0, (const char *[]){"x2"}, 1,
						 0, "h", 0, &validity, &uid, &err),
			 STORE_MB_LIMIT);
	free(err);
	store_mailbox_close(&a);
	store_mailbox_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_atoms_and_letters),
		cmocka_unit_test_setup_teardown(test_slots_flags_append_copy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
