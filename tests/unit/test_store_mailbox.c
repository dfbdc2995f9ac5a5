/* Unit tests for mailbox access on Maildir (mailcore/store_mailbox.c,
 * store_uid.c, store_folder.c): UID lists (parse, durable save, stable
 * UIDVALIDITY, UIDs ascending and never reused), new -> cur moves, flags in
 * the info suffix, what a second session sees (EXPUNGE order, flag changes,
 * new messages), append and copy with their UIDs, folders, subscriptions,
 * quota, UIDs appended to the list (torn last line, compaction), the warm
 * SELECT shortcut, stale temp files. Each test works in its own temp directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mailcore/mailcore.h"
#include "mailcore/store_mailbox.h"

struct fixture {
	char root[256];
	char maildir[512];
};

static int rm_rf(const char *path)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->root, sizeof(fx->root), "/tmp/test_store_XXXXXX");
	if (mkdtemp(fx->root) == NULL)
		return -1;
	snprintf(fx->maildir, sizeof(fx->maildir), "%s/example.com/alice/Maildir", fx->root);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	rm_rf(fx->root);
	free(fx);
	store_stat_snap_flush();
	return 0;
}

static void deliver(const char *maildir, const char *text)
{
	struct store_target t = {.maildir = maildir};
	struct iovec iov = {(void *)text, strlen(text)};
	char *err = NULL, name[256];

	if (store_maildir_deliver(&t, 1, &iov, 1, "test.host", name, sizeof(name), &err) != STORE_OK)
		fail_msg("deliver: %s", err);
}

static struct store_mailbox *open_mb(const char *maildir, const char *name, bool ro)
{
	struct store_mailbox *mb = NULL;
	char *err = NULL;
	enum store_mb_result rc = store_mailbox_open(maildir, name, ro, &mb, &err);

	if (rc != STORE_MB_OK)
		fail_msg("open %s: %d %s", name, rc, err);
	return mb;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_uidlist_parse(void **state)
{
	struct store_uidlist ul = {0};
	char *err = NULL;
	static const char good[] = "sealpost-uidlist 1 1700000000 10\n1 a.b.c\n5 d\n9 e:x\n";

	(void)state;
	/* ':' never appears in a base: that line is malformed */
	assert_int_equal(store_uidlist_parse(good, sizeof(good) - 1, &ul, &err), -1);
	free(err);
	static const char good2[] = "sealpost-uidlist 1 1700000000 10\n1 a.b.c\n5 d\n9 e\n";
	assert_int_equal(store_uidlist_parse(good2, sizeof(good2) - 1, &ul, &err), 0);
	assert_int_equal(ul.uidvalidity, 1700000000u);
	assert_int_equal(ul.uidnext, 10);
	assert_int_equal(ul.n, 3);
	assert_int_equal(ul.e[1].uid, 5);
	assert_string_equal(ul.e[2].base, "e");
	store_uidlist_clear(&ul);

	static const char *const bad[] = {
		"",
		"sealpost-uidlist 2 1 1\n",
		"sealpost-uidlist 1 0 5\n",            /* UIDVALIDITY 0 */
		"sealpost-uidlist 1 1 5",              /* no newline */
		"sealpost-uidlist 1 1 5\n3 a\n2 b\n",  /* not ascending */
		"sealpost-uidlist 1 1 5\n3 a\n3 b\n",  /* duplicate */
		"sealpost-uidlist 1 1 5\n3 a\n4294967295 b\n", /* no UIDNEXT after it */
		"sealpost-uidlist 1 1 5\n1 a\nb\n2 c\n", /* a bad whole line */
		"sealpost-uidlist 1 1 5\n0 a\n",       /* uid 0 */
		"sealpost-uidlist 1 1 5\n1 \n",        /* empty base */
		"sealpost-uidlist 1 1 5\n1 a/b\n",     /* a path */
		"sealpost-uidlist 1 99999999999 5\n",  /* > 32 bits */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (store_uidlist_parse(bad[i], strlen(bad[i]), &ul, &err) != -1)
			fail_msg("parsed: %s", bad[i]);
		assert_non_null(err);
		assert_int_equal(ul.n, 0);
		free(err);
	}

	/* appended lines pass the header's UIDNEXT (a lower bound); a last
	 * line without its newline (an append cut short) is left out */
	static const char appended[] = "sealpost-uidlist 1 7 3\n1 a\n5 b\n9 c\n12 d";
	assert_int_equal(store_uidlist_parse(appended, sizeof(appended) - 1, &ul, &err), 0);
	assert_int_equal(ul.n, 3);
	assert_int_equal(ul.e[2].uid, 9);
	assert_int_equal(ul.uidnext, 10);
	assert_int_equal(ul.valid_len, sizeof(appended) - 1 - strlen("12 d"));
	/* the header's UIDNEXT stays when it is the larger (expunged tail) */
	static const char older[] = "sealpost-uidlist 1 7 30\n1 a\n5 b\n";
	assert_int_equal(store_uidlist_parse(older, sizeof(older) - 1, &ul, &err), 0);
	assert_int_equal(ul.uidnext, 30);
	assert_int_equal(ul.valid_len, sizeof(older) - 1);
	/* only a torn line: no entry, nothing reused */
	static const char torn[] = "sealpost-uidlist 1 7 30\n31 a";
	assert_int_equal(store_uidlist_parse(torn, sizeof(torn) - 1, &ul, &err), 0);
	assert_int_equal(ul.n, 0);
	assert_int_equal(ul.uidnext, 30);
	store_uidlist_clear(&ul);
}

static void test_uidlist_save_load(void **state)
{
	struct fixture *fx = *state;
	struct store_uidlist ul = {.uidvalidity = 42, .uidnext = 8}, back = {0};
	char *err = NULL;

	assert_int_equal(store_uidlist_load(fx->root, &back, &err), 1); /* none yet */
	assert_int_equal(store_uidlist_add(&ul, 3, "x"), 0);
	assert_int_equal(store_uidlist_add(&ul, 3, "y"), -1);
	assert_int_equal(store_uidlist_add(&ul, 7, "y"), 0);
	assert_int_equal(store_uidlist_save(fx->root, &ul, &err), 0);
	assert_int_equal(store_uidlist_load(fx->root, &back, &err), 0);
	assert_int_equal(back.uidvalidity, 42);
	assert_int_equal(back.uidnext, 8);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.e[1].base, "y");
	/* no temp file is left behind */
	assert_int_equal(count_files(fx->root), 1);
	store_uidlist_clear(&ul);
	store_uidlist_clear(&back);
}

static void test_names(void **state)
{
	static const char *const good[] = {"INBOX", "inbox", "Work", "Work.Projects", "a b",
					   "&AOQ-rger", "INBOX.Sent"};
	static const char *const bad[] = {"", ".x", "x.", "a..b", "a/b", "../x", "a\\b", "a*",
					  "a%", "a\"b", "tab\there", "\x7f"};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!store_mailbox_name_valid(good[i]))
			fail_msg("refused %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (store_mailbox_name_valid(bad[i]))
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(store_mailbox_dir("/m", "inbox", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/m");
	assert_int_equal(store_mailbox_dir("/m", "Work.X", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/m/.Work.X");
	assert_int_equal(store_mailbox_dir("/m", "../x", buf, sizeof(buf)), -1);
	assert_int_equal(store_flags_from_info("2,DFRST"), STORE_F_ALL);
	assert_int_equal(store_flags_from_info("2,S"), STORE_F_SEEN);
	assert_int_equal(store_flags_from_info("1,S"), 0);
	store_flags_to_info(STORE_F_SEEN | STORE_F_FLAGGED, buf, sizeof(buf));
	assert_string_equal(buf, ":2,FS");
}

static void test_open_new_to_cur(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *mb;
	char path[700];
	uint32_t validity;

	/* a user without mail: the INBOX appears, empty */
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 0);
	validity = store_mailbox_uidvalidity(mb);
	assert_true(validity != 0);
	assert_int_equal(store_mailbox_uidnext(mb), 1);
	store_mailbox_close(&mb);
	assert_null(mb);

	deliver(fx->maildir, "Subject: one\r\n\r\nbody 1\r\n");
	deliver(fx->maildir, "Subject: two\r\n\r\nbody 2\r\n");
	deliver(fx->maildir, "Subject: three\r\n\r\nbody 3\r\n");

	/* read-only (EXAMINE): sees them, moves nothing */
	mb = open_mb(fx->maildir, "INBOX", true);
	assert_int_equal(store_mailbox_count(mb), 3);
	assert_true(store_mailbox_msg(mb, 0)->recent);
	snprintf(path, sizeof(path), "%s/new", fx->maildir);
	assert_int_equal(count_files(path), 3);
	store_mailbox_close(&mb);

	/* read-write: new -> cur, \Recent for this session */
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 3);
	assert_int_equal(store_mailbox_uidvalidity(mb), validity);
	for (size_t i = 0; i < 3; i++) {
		const struct store_msg *m = store_mailbox_msg(mb, i);

		assert_int_equal(m->uid, i + 1);
		assert_true(m->recent);
		assert_int_equal(m->flags, 0);
		assert_int_equal(m->size, strlen("Subject: one\r\n\r\nbody 1\r\n") + (i == 1 ? 0 : i == 2 ? 2 : 0));
		assert_true(strncmp(m->file, "cur/", 4) == 0);
		assert_non_null(strstr(m->file, ":2,"));
	}
	assert_int_equal(count_files(path), 0);
	assert_int_equal(store_mailbox_uidnext(mb), 4);
	assert_int_equal(store_mailbox_find_uid(mb, 2), 1);
	assert_int_equal(store_mailbox_find_uid(mb, 9), -1);
	{
		int fd = store_mailbox_open_msg(mb, 1);
		char buf[64] = {0};

		assert_true(fd >= 0);
		assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
		assert_non_null(strstr(buf, "Subject: two"));
		close(fd);
	}
	store_mailbox_close(&mb);

	/* again: same UIDs, no longer recent */
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 3);
	assert_int_equal(store_mailbox_msg(mb, 2)->uid, 3);
	assert_false(store_mailbox_msg(mb, 0)->recent);
	assert_int_equal(store_mailbox_uidvalidity(mb), validity);
	store_mailbox_close(&mb);
}

static void put_file(const char *dir, const char *sub, const char *name, const char *text)
{
	char path[900];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* New files get UIDs in base order whatever readdir's order; a base both
 * in new/ and cur/ is one message; a second open takes sizes and dates
 * from the process's stat snapshot and they are the files' own. */
static void test_sync_order_duplicates_snapshot(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *mb;
	struct stat st;
	char path[900];

	mb = open_mb(fx->maildir, "INBOX", false);
	store_mailbox_close(&mb);
	put_file(fx->maildir, "cur", "300.c.host:2,S", "Subject: c\r\n\r\nccc\r\n");
	put_file(fx->maildir, "cur", "100.a.host:2,", "Subject: a\r\n\r\na\r\n");
	put_file(fx->maildir, "new", "200.b.host", "Subject: b\r\n\r\nbb\r\n");
	put_file(fx->maildir, "new", "100.a.host", "Subject: a\r\n\r\na\r\n");
	mb = open_mb(fx->maildir, "INBOX", true);
	assert_int_equal(store_mailbox_count(mb), 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(store_mailbox_msg(mb, i)->uid, i + 1);
	assert_string_equal(store_mailbox_msg(mb, 0)->base, "100.a.host");
	assert_string_equal(store_mailbox_msg(mb, 1)->base, "200.b.host");
	assert_string_equal(store_mailbox_msg(mb, 2)->base, "300.c.host");
	assert_int_equal(store_mailbox_msg(mb, 2)->flags, STORE_F_SEEN);
	store_mailbox_close(&mb);
	/* the second open finds them in the snapshot: the same figures as stat */
	mb = open_mb(fx->maildir, "INBOX", true);
	assert_int_equal(store_mailbox_count(mb), 3);
	snprintf(path, sizeof(path), "%s/%s", fx->maildir, store_mailbox_msg(mb, 2)->file);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(store_mailbox_msg(mb, 2)->size, (uint64_t)st.st_size);
	assert_int_equal(store_mailbox_msg(mb, 2)->internaldate, st.st_mtime);
	assert_int_equal(store_mailbox_msg(mb, 1)->size, strlen("Subject: b\r\n\r\nbb\r\n"));
	store_mailbox_close(&mb);
	store_stat_snap_flush();
}

static void test_flags_and_second_session(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *a, *b;
	struct store_changes ch;
	char *err = NULL;

	for (int i = 0; i < 5; i++)
		deliver(fx->maildir, "Subject: x\r\n\r\nx\r\n");
	a = open_mb(fx->maildir, "INBOX", false);
	b = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(a), 5);
	assert_int_equal(store_mailbox_count(b), 5);

	/* a sets flags: the file name carries them */
	assert_int_equal(store_mailbox_set_flags(a, 0, STORE_F_SEEN | STORE_F_FLAGGED, &err), STORE_MB_OK);
	assert_non_null(strstr(store_mailbox_msg(a, 0)->file, ":2,FS"));
	assert_int_equal(store_mailbox_set_flags(a, 1, STORE_F_DELETED, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_set_flags(a, 3, STORE_F_DELETED, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_set_flags(a, 4, STORE_F_ANSWERED, &err), STORE_MB_OK);

	/* b sees the flag changes */
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_expunged, 0);
	assert_int_equal(ch.n_new, 0);
	assert_int_equal(ch.n_changed, 4);
	assert_int_equal(ch.changed[0], 1);
	assert_int_equal(store_mailbox_msg(b, 0)->flags, STORE_F_SEEN | STORE_F_FLAGGED);

	/* b still has the old file name of message 5 for a moment: opening
	 * it after a's rename still works */
	assert_int_equal(store_mailbox_set_flags(a, 4, STORE_F_ANSWERED | STORE_F_SEEN, &err),
			 STORE_MB_OK);
	{
		int fd = store_mailbox_open_msg(b, 4);

		assert_true(fd >= 0);
		close(fd);
	}

	/* a expunges 2 and 4: "* 2 EXPUNGE" "* 3 EXPUNGE" (RFC 3501 7.4.1 order) */
	assert_int_equal(store_mailbox_expunge(a, NULL, NULL, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_expunged, 2);
	assert_int_equal(ch.expunged[0], 2);
	assert_int_equal(ch.expunged[1], 3);
	assert_int_equal(store_mailbox_count(a), 3);

	/* a new message arrives; b syncs: the same expunges, then one new */
	deliver(fx->maildir, "Subject: new\r\n\r\nnew\r\n");
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_expunged, 2);
	assert_int_equal(ch.expunged[0], 2);
	assert_int_equal(ch.expunged[1], 3);
	assert_int_equal(ch.n_new, 1);
	assert_int_equal(store_mailbox_count(b), 4);
	assert_int_equal(store_mailbox_msg(b, 3)->uid, 6);
	assert_true(store_mailbox_msg(b, 3)->recent);

	/* UIDs are never reused: expunge the highest, deliver again */
	assert_int_equal(store_mailbox_set_flags(b, 3, STORE_F_DELETED, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_expunge(b, NULL, NULL, &ch, &err), STORE_MB_OK);
	deliver(fx->maildir, "Subject: newer\r\n\r\nnewer\r\n");
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_msg(b, store_mailbox_count(b) - 1)->uid, 7);

	/* read-only sessions cannot change flags */
	store_mailbox_close(&a);
	a = open_mb(fx->maildir, "INBOX", true);
	assert_int_equal(store_mailbox_set_flags(a, 0, 0, &err), STORE_MB_IOERR);
	free(err);
	store_mailbox_close(&a);
	store_mailbox_close(&b);
}

static bool want_uid_1(uint32_t uid, void *arg)
{
	(void)arg;
	return uid == 1;
}

static void test_uid_expunge_and_damaged_list(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *mb;
	struct store_changes ch;
	char *err = NULL, path[700];
	uint32_t validity;
	int fd;

	deliver(fx->maildir, "a\r\n");
	deliver(fx->maildir, "b\r\n");
	mb = open_mb(fx->maildir, "INBOX", false);
	store_mailbox_set_flags(mb, 0, STORE_F_DELETED, &err);
	store_mailbox_set_flags(mb, 1, STORE_F_DELETED, &err);
	/* UID EXPUNGE 1 (RFC 4315): only uid 1 goes */
	assert_int_equal(store_mailbox_expunge(mb, want_uid_1, NULL, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_expunged, 1);
	assert_int_equal(store_mailbox_count(mb), 1);
	assert_int_equal(store_mailbox_msg(mb, 0)->uid, 2);
	validity = store_mailbox_uidvalidity(mb);
	store_mailbox_close(&mb);

	/* a damaged UID list: a new UIDVALIDITY, messages renumbered */
	snprintf(path, sizeof(path), "%s/%s", fx->maildir, STORE_UIDLIST_NAME);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage\n", 8), 8);
	close(fd);
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 1);
	assert_true(store_mailbox_uidvalidity(mb) != validity);
	assert_int_equal(store_mailbox_msg(mb, 0)->uid, 1);
	store_mailbox_close(&mb);
}

static void test_append_copy_status(void **state)
{
	struct fixture *fx = *state;
	static const char msg[] = "From: a@example.com\r\nSubject: appended\r\n\r\nhello\r\n";
	struct iovec iov = {(void *)msg, sizeof(msg) - 1};
	struct store_mailbox *mb;
	struct store_status_info st;
	uint32_t validity, uid, uids[2];
	size_t idx[2] = {0, 1};
	char *err = NULL, path[800];
	struct stat sb;

	/* APPEND to a mailbox that does not exist: [TRYCREATE] */
	assert_int_equal(store_mailbox_append(fx->maildir, "Nope", &iov, 1, 0, 0, "h", 0, &validity,
					      &uid, &err), STORE_MB_NOTFOUND);
	free(err);
	assert_int_equal(store_mailbox_append(fx->maildir, "INBOX", &iov, 1,
					      STORE_F_SEEN | STORE_F_DRAFT, 1000000000, "h", 0,
					      &validity, &uid, &err), STORE_MB_OK);
	assert_int_equal(uid, 1);
	assert_int_equal(store_mailbox_append(fx->maildir, "INBOX", &iov, 1, 0, 0, "h", 0,
					      &validity, &uid, &err), STORE_MB_OK);
	assert_int_equal(uid, 2);
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_uidvalidity(mb), validity);
	assert_int_equal(store_mailbox_count(mb), 2);
	assert_int_equal(store_mailbox_msg(mb, 0)->flags, STORE_F_SEEN | STORE_F_DRAFT);
	assert_int_equal(store_mailbox_msg(mb, 0)->internaldate, 1000000000);
	assert_int_equal(store_mailbox_msg(mb, 0)->size, sizeof(msg) - 1);
	assert_false(store_mailbox_msg(mb, 0)->recent);

	/* COPY into a folder: COPYUID's UIDs, flags kept */
	assert_int_equal(store_mailbox_copy(mb, idx, 2, fx->maildir, "Archive", "h", 0, &validity,
					    uids, &err), STORE_MB_NOTFOUND);
	free(err);
	assert_int_equal(store_folder_create(fx->maildir, "Archive", &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_copy(mb, idx, 2, fx->maildir, "Archive", "h", 0, &validity,
					    uids, &err), STORE_MB_OK);
	assert_int_equal(uids[0], 1);
	assert_int_equal(uids[1], 2);
	store_mailbox_close(&mb);
	mb = open_mb(fx->maildir, "Archive", false);
	assert_int_equal(store_mailbox_uidvalidity(mb), validity);
	assert_int_equal(store_mailbox_count(mb), 2);
	assert_int_equal(store_mailbox_msg(mb, 0)->flags, STORE_F_SEEN | STORE_F_DRAFT);
	assert_int_equal(store_mailbox_msg(mb, 0)->internaldate, 1000000000);
	snprintf(path, sizeof(path), "%s/.Archive/%s", fx->maildir, store_mailbox_msg(mb, 1)->file);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_nlink, 2); /* a hard link to the INBOX copy */
	store_mailbox_close(&mb);

	assert_int_equal(store_mailbox_status(fx->maildir, "INBOX", &st, &err), STORE_MB_OK);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.unseen, 1);
	assert_int_equal(st.uidnext, 3);
	assert_int_equal(store_mailbox_status(fx->maildir, "None", &st, &err), STORE_MB_NOTFOUND);
	free(err);
}

static void test_folders_and_subscriptions(void **state)
{
	struct fixture *fx = *state;
	char **names, *err = NULL;
	size_t n;

	assert_int_equal(store_folder_create(fx->maildir, "Work", &err), STORE_MB_OK);
	assert_int_equal(store_folder_create(fx->maildir, "Work.Projects", &err), STORE_MB_OK);
	assert_int_equal(store_folder_create(fx->maildir, "Work", &err), STORE_MB_EXISTS);
	free(err);
	assert_int_equal(store_folder_create(fx->maildir, "inbox", &err), STORE_MB_EXISTS);
	free(err);
	assert_int_equal(store_folder_create(fx->maildir, "../escape", &err), STORE_MB_BADNAME);
	free(err);
	assert_int_equal(store_folder_list(fx->maildir, &names, &n, &err), STORE_MB_OK);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "INBOX");
	assert_string_equal(names[1], "Work");
	assert_string_equal(names[2], "Work.Projects");
	store_names_free(names, n);

	assert_int_equal(store_folder_delete(fx->maildir, "Work", &err), STORE_MB_HASCHILDREN);
	free(err);
	assert_int_equal(store_folder_delete(fx->maildir, "INBOX", &err), STORE_MB_INBOX);
	free(err);
	assert_int_equal(store_folder_rename(fx->maildir, "Work", "Jobs", "h", &err), STORE_MB_OK);
	assert_int_equal(store_folder_list(fx->maildir, &names, &n, &err), STORE_MB_OK);
	assert_int_equal(n, 3);
	assert_string_equal(names[1], "Jobs");
	assert_string_equal(names[2], "Jobs.Projects");
	store_names_free(names, n);
	assert_int_equal(store_folder_rename(fx->maildir, "Nope", "X", "h", &err), STORE_MB_NOTFOUND);
	free(err);
	assert_int_equal(store_folder_rename(fx->maildir, "Jobs", "Jobs.Projects", "h", &err),
			 STORE_MB_EXISTS);
	free(err);
	assert_int_equal(store_folder_delete(fx->maildir, "Jobs.Projects", &err), STORE_MB_OK);
	assert_int_equal(store_folder_delete(fx->maildir, "Jobs", &err), STORE_MB_OK);
	assert_int_equal(store_folder_delete(fx->maildir, "Jobs", &err), STORE_MB_NOTFOUND);
	free(err);
	assert_int_equal(store_folder_list(fx->maildir, &names, &n, &err), STORE_MB_OK);
	assert_int_equal(n, 1);
	store_names_free(names, n);

	/* deleted and re-created in the same second: a new UIDVALIDITY */
	{
		struct store_mailbox *mb;
		uint32_t v1;

		assert_int_equal(store_folder_create(fx->maildir, "Again", &err), STORE_MB_OK);
		mb = open_mb(fx->maildir, "Again", false);
		v1 = store_mailbox_uidvalidity(mb);
		store_mailbox_close(&mb);
		assert_int_equal(store_folder_delete(fx->maildir, "Again", &err), STORE_MB_OK);
		assert_int_equal(store_folder_create(fx->maildir, "Again", &err), STORE_MB_OK);
		mb = open_mb(fx->maildir, "Again", false);
		assert_true(store_mailbox_uidvalidity(mb) > v1);
		store_mailbox_close(&mb);
		assert_int_equal(store_folder_delete(fx->maildir, "Again", &err), STORE_MB_OK);
	}

	/* RENAME INBOX moves its messages and leaves it empty (RFC 3501 6.3.5) */
	deliver(fx->maildir, "Subject: keep\r\n\r\nx\r\n");
	assert_int_equal(store_folder_rename(fx->maildir, "INBOX", "Old", "h", &err), STORE_MB_OK);
	{
		struct store_mailbox *mb = open_mb(fx->maildir, "INBOX", false);

		assert_int_equal(store_mailbox_count(mb), 0);
		store_mailbox_close(&mb);
		mb = open_mb(fx->maildir, "Old", false);
		assert_int_equal(store_mailbox_count(mb), 1);
		store_mailbox_close(&mb);
	}

	assert_int_equal(store_subscriptions_set(fx->maildir, "Old", true, &err), STORE_MB_OK);
	assert_int_equal(store_subscriptions_set(fx->maildir, "inbox", true, &err), STORE_MB_OK);
	assert_int_equal(store_subscriptions_set(fx->maildir, "Old", true, &err), STORE_MB_OK);
	assert_int_equal(store_subscriptions_read(fx->maildir, &names, &n, &err), STORE_MB_OK);
	assert_int_equal(n, 2);
	assert_string_equal(names[1], "INBOX");
	store_names_free(names, n);
	assert_int_equal(store_subscriptions_set(fx->maildir, "Old", false, &err), STORE_MB_OK);
	assert_int_equal(store_subscriptions_read(fx->maildir, &names, &n, &err), STORE_MB_OK);
	assert_int_equal(n, 1);
	store_names_free(names, n);
}

static void test_quota(void **state)
{
	struct fixture *fx = *state;
	static const char msg[] = "Subject: q\r\n\r\n0123456789012345678901234567890123456789\r\n";
	struct iovec iov = {(void *)msg, sizeof(msg) - 1};
	uint32_t validity, uid;
	uint64_t used;
	char *err = NULL;

	assert_int_equal(store_folder_create(fx->maildir, "F", &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_append(fx->maildir, "INBOX", &iov, 1, 0, 0, "h", 150,
					      &validity, &uid, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_append(fx->maildir, "F", &iov, 1, 0, 0, "h", 150, &validity,
					      &uid, &err), STORE_MB_OK);
	assert_int_equal(store_usage_total(fx->maildir, &used, &err), 0);
	assert_int_equal(used, 2 * (sizeof(msg) - 1));
	/* the third would exceed 150 bytes over all folders */
	assert_int_equal(store_mailbox_append(fx->maildir, "F", &iov, 1, 0, 0, "h", 150, &validity,
					      &uid, &err), STORE_MB_OVERQUOTA);
	free(err);
	assert_int_equal(store_usage_total(fx->maildir, &used, &err), 0);
	assert_int_equal(used, 2 * (sizeof(msg) - 1));
}

/* The lock serialises processes: while a child holds it, a sync waits. */
static void test_lock_between_processes(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *mb = open_mb(fx->maildir, "INBOX", false);
	struct store_changes ch;
	char path[700], *err = NULL;
	int pfd[2], status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", fx->maildir, STORE_LOCK_NAME);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_RDWR);

		flock(fd, LOCK_EX);
		/* a message appears while the lock is held */
		deliver(fx->maildir, "late\r\n");
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		usleep(200000);
		_exit(0);
	}
	{
		char c;

		assert_int_equal(read(pfd[0], &c, 1), 1);
	}
	/* blocks until the child exits, then sees the message */
	assert_int_equal(store_mailbox_sync(mb, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_new, 1);
	assert_int_equal(waitpid(pid, &status, WNOHANG), pid);
	close(pfd[0]);
	close(pfd[1]);
	store_mailbox_close(&mb);
}

/* Mailboxes opened for the first time at once (pool threads of a worker,
 * or two workers) each take a UIDVALIDITY from the Maildir root's counter:
 * no open fails on another's temporary file, and no two get the same. */
#define FRESH_THREADS 8
#define FRESH_ROUNDS 6

struct fresh_open {
	const char *maildir;
	char name[32];
	pthread_barrier_t *start;
	uint32_t uidvalidity;
	int rc;
	char *err;
};

static void *fresh_open_thread(void *arg)
{
	struct fresh_open *o = arg;
	struct store_mailbox *mb = NULL;

	pthread_barrier_wait(o->start);
	o->rc = store_mailbox_open(o->maildir, o->name, false, &mb, &o->err);
	if (o->rc == STORE_MB_OK)
		o->uidvalidity = store_mailbox_uidvalidity(mb);
	store_mailbox_close(&mb);
	return NULL;
}

static void test_first_opens_at_once(void **state)
{
	struct fixture *fx = *state;
	uint32_t seen[FRESH_THREADS * FRESH_ROUNDS];
	size_t n_seen = 0;
	char *err = NULL;
	struct store_mailbox *inbox = open_mb(fx->maildir, "INBOX", false);

	store_mailbox_close(&inbox);
	for (int round = 0; round < FRESH_ROUNDS; round++) {
		struct fresh_open o[FRESH_THREADS];
		pthread_t th[FRESH_THREADS];
		pthread_barrier_t start;

		pthread_barrier_init(&start, NULL, FRESH_THREADS);
		for (int i = 0; i < FRESH_THREADS; i++) {
			o[i] = (struct fresh_open){.maildir = fx->maildir, .start = &start};
			snprintf(o[i].name, sizeof(o[i].name), "F%d-%d", round, i);
			assert_int_equal(store_folder_create(fx->maildir, o[i].name, &err), STORE_MB_OK);
		}
		for (int i = 0; i < FRESH_THREADS; i++)
			assert_int_equal(pthread_create(&th[i], NULL, fresh_open_thread, &o[i]), 0);
		for (int i = 0; i < FRESH_THREADS; i++) {
			pthread_join(th[i], NULL);
			if (o[i].rc != STORE_MB_OK)
				fail_msg("open %s: %d %s", o[i].name, o[i].rc, o[i].err);
			for (size_t k = 0; k < n_seen; k++)
				assert_int_not_equal(seen[k], o[i].uidvalidity);
			seen[n_seen++] = o[i].uidvalidity;
		}
		pthread_barrier_destroy(&start);
	}
}

static void read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t r;

	assert_true(fd >= 0);
	r = read(fd, buf, cap - 1);
	assert_true(r >= 0);
	buf[r] = '\0';
	close(fd);
}

static void write_file(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* A delivery, a sync, and the UID the new message got (at idx). */
static void deliver_sync(const char *maildir, struct store_mailbox *mb, size_t idx, uint32_t uid)
{
	struct store_changes ch;
	char *err = NULL;

	deliver(maildir, "Subject: d\r\n\r\nd\r\n");
	if (store_mailbox_sync(mb, &ch, &err) != STORE_MB_OK)
		fail_msg("sync: %s", err);
	assert_int_equal(ch.n_new, 1);
	assert_int_equal(store_mailbox_msg(mb, idx)->uid, uid);
}

/* The UIDNEXT of a list's first line. */
static unsigned long header_uidnext(const char *text)
{
	unsigned long validity = 0, next = 0;

	assert_int_equal(sscanf(text, "sealpost-uidlist 1 %lu %lu\n", &validity, &next), 2);
	return next;
}

static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* New UIDs are appended to the list (same file, header kept); a torn last
 * line (kill -9 mid-append) is dropped and makes the next change write the
 * list whole; UIDNEXT never goes back, not even when the highest UIDs are
 * expunged; an expunge compacts the list; a list whose header UIDNEXT is
 * behind its lines continues after its last line. */
static void test_uidlist_append_torn_compact(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *mb;
	struct store_changes ch;
	char *err = NULL, path[700], before[4096], after[4096];
	struct stat st1, st2;

	for (int i = 0; i < 3; i++)
		deliver(fx->maildir, "Subject: x\r\n\r\nx\r\n");
	mb = open_mb(fx->maildir, "INBOX", false);
	snprintf(path, sizeof(path), "%s/%s", fx->maildir, STORE_UIDLIST_NAME);
	assert_int_equal(stat(path, &st1), 0);
	read_file(path, before, sizeof(before));
	assert_int_equal(count_lines(before), 4);

	/* two more: appended in place */
	deliver(fx->maildir, "Subject: y\r\n\r\ny\r\n");
	deliver(fx->maildir, "Subject: y\r\n\r\ny\r\n");
	assert_int_equal(store_mailbox_sync(mb, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_new, 2);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	read_file(path, after, sizeof(after));
	assert_int_equal(count_lines(after), 6);
	/* the old lines kept, the header's UIDNEXT updated in place */
	assert_memory_equal(strchr(before, '\n'), strchr(after, '\n'), strlen(strchr(before, '\n')));
	assert_int_equal(header_uidnext(after), 6);
	assert_int_equal(store_mailbox_uidnext(mb), 6);

	/* a crash mid-append: a torn last line */
	write_file(path, "6 torn-tail-", O_APPEND);
	store_mailbox_close(&mb);
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 5);
	assert_int_equal(store_mailbox_uidnext(mb), 6);
	/* the next new UID: the list is written whole, the torn line gone */
	deliver_sync(fx->maildir, mb, 5, 6);
	read_file(path, after, sizeof(after));
	assert_null(strstr(after, "torn-tail"));
	assert_int_equal(after[strlen(after) - 1], '\n');
	assert_int_equal(count_lines(after), 7);
	assert_int_equal(header_uidnext(after), 7);

	/* expunge the two highest: compacted, UIDNEXT kept */
	assert_int_equal(store_mailbox_set_flags(mb, 4, STORE_F_DELETED, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_set_flags(mb, 5, STORE_F_DELETED, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_expunge(mb, NULL, NULL, &ch, &err), STORE_MB_OK);
	read_file(path, after, sizeof(after));
	assert_int_equal(count_lines(after), 5);
	store_mailbox_close(&mb);
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 4);
	assert_int_equal(store_mailbox_uidnext(mb), 7);
	deliver_sync(fx->maildir, mb, 4, 7);

	/* the header's UIDNEXT behind the lines (as appends leave it) */
	{
		char text[2048];

		snprintf(text, sizeof(text), "sealpost-uidlist 1 %u 2\n", store_mailbox_uidvalidity(mb));
		for (size_t i = 0; i < store_mailbox_count(mb); i++)
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%u %s\n",
				 store_mailbox_msg(mb, i)->uid, store_mailbox_msg(mb, i)->base);
		write_file(path, text, O_TRUNC);
	}
	store_mailbox_close(&mb);
	mb = open_mb(fx->maildir, "INBOX", false);
	assert_int_equal(store_mailbox_count(mb), 5);
	assert_int_equal(store_mailbox_uidnext(mb), 8);
	deliver_sync(fx->maildir, mb, 5, 8);
	read_file(path, after, sizeof(after));
	assert_int_equal(header_uidnext(after), 9); /* written whole, fixed-width again */
	assert_non_null(strstr(after, " 0000000009\n"));
	store_mailbox_close(&mb);
}

/* Sets path's mtime (a directory, the UID list) 10 s back: what a mailbox
 * untouched for a while looks like. */
static void age(const char *dir, const char *name, long secs)
{
	char path[900];
	struct stat st;
	struct timespec ts[2];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	ts[1].tv_sec -= secs;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void set_mtime(const char *dir, const char *name, const struct timespec *mt)
{
	char path[900];
	struct timespec ts[2] = {{0, UTIME_OMIT}, *mt};

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static struct timespec get_mtime(const char *dir, const char *name)
{
	char path[900];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	return st.st_mtim;
}

/* Renames message idx's file to info letters and puts cur/'s mtime back:
 * a change in the same timestamp tick as the one before. */
static void rename_unseen(const char *maildir, const struct store_mailbox *mb, size_t idx,
			  const char *letters)
{
	char from[900], to[900];
	struct timespec cur_mt = get_mtime(maildir, "cur");

	snprintf(from, sizeof(from), "%s/%s", maildir, store_mailbox_msg(mb, idx)->file);
	snprintf(to, sizeof(to), "%s/cur/%s:2,%s", maildir, store_mailbox_msg(mb, idx)->base,
		 letters);
	assert_int_equal(rename(from, to), 0);
	set_mtime(maildir, "cur", &cur_mt);
}

/* cur/ and the UID list as a mailbox untouched for a while has them. */
static void settle(const char *maildir)
{
	age(maildir, "cur", 10);
	age(maildir, STORE_UIDLIST_NAME, 10);
}

/* Another process does fn (0: done) on the mailbox; waited for. */
static void in_child(const char *maildir, int (*fn)(const char *maildir))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(maildir) == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int child_deliver(const char *maildir)
{
	deliver(maildir, "Subject: late\r\n\r\nlate\r\n");
	return 0;
}

/* \Answered on the third message. */
static int child_flag_3(const char *maildir)
{
	struct store_mailbox *c = NULL;
	char *e = NULL;
	int rc = -1;

	if (store_mailbox_open(maildir, "INBOX", false, &c, &e) == STORE_MB_OK &&
	    store_mailbox_set_flags(c, 2, STORE_F_ANSWERED, &e) == STORE_MB_OK)
		rc = 0;
	store_mailbox_close(&c);
	return rc;
}

/* The first message deleted and expunged. */
static int child_expunge_1(const char *maildir)
{
	struct store_mailbox *c = NULL;
	char *e = NULL;
	int rc = -1;

	if (store_mailbox_open(maildir, "INBOX", false, &c, &e) == STORE_MB_OK &&
	    store_mailbox_set_flags(c, 0, STORE_F_DELETED, &e) == STORE_MB_OK &&
	    store_mailbox_expunge(c, NULL, NULL, NULL, &e) == STORE_MB_OK)
		rc = 0;
	store_mailbox_close(&c);
	return rc;
}

/* The warm-SELECT shortcut: a settled, unchanged mailbox is taken from the
 * process's last scan; a delivery, a flag change and an expunge by another
 * process right after a sync are all seen; a change hidden in the same
 * timestamp tick of a recent mtime is seen too (recent stamps are never
 * trusted). */
static void test_select_shortcut(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *a, *b;
	struct store_changes ch;
	char *err = NULL;

	for (int i = 0; i < 4; i++)
		deliver(fx->maildir, "Subject: s\r\n\r\ns\r\n");
	a = open_mb(fx->maildir, "INBOX", false);
	store_mailbox_close(&a);

	/* recent mtimes: a second session's sync reads the disk, so a rename
	 * that keeps cur/'s mtime (same tick) is still seen */
	a = open_mb(fx->maildir, "INBOX", false);
	rename_unseen(fx->maildir, a, 0, "S");
	assert_int_equal(store_mailbox_sync(a, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_changed, 1);
	assert_int_equal(store_mailbox_msg(a, 0)->flags, STORE_F_SEEN);
	store_mailbox_close(&a);

	/* settled: the first sync reads the disk and keeps its view, the next
	 * one takes it. Shown by a change the stamps cannot see (a rename
	 * with cur/'s mtime put back): the shortcut does not see it */
	settle(fx->maildir);
	a = open_mb(fx->maildir, "INBOX", false);
	b = open_mb(fx->maildir, "INBOX", false);
	rename_unseen(fx->maildir, a, 1, "F");
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_changed, 0);
	assert_int_equal(store_mailbox_msg(b, 1)->flags, 0);
	/* (and reading the message still works: its file is found again) */
	{
		int fd = store_mailbox_open_msg(b, 1);

		assert_true(fd >= 0);
		close(fd);
	}
	/* a real flag change by another process moves cur/'s mtime: seen */
	in_child(fx->maildir, child_flag_3);
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_msg(b, 2)->flags, STORE_F_ANSWERED);
	assert_int_equal(store_mailbox_msg(b, 1)->flags, STORE_F_FLAGGED);
	assert_int_equal(ch.n_changed, 2);

	/* settle again, then a delivery by another process: new/ is read */
	settle(fx->maildir);
	assert_int_equal(store_mailbox_sync(a, &ch, &err), STORE_MB_OK); /* keeps the view */
	in_child(fx->maildir, child_deliver);
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_new, 1);
	assert_int_equal(store_mailbox_count(b), 5);
	assert_true(store_mailbox_msg(b, 4)->recent);

	/* settle again, then an expunge by another process */
	settle(fx->maildir);
	assert_int_equal(store_mailbox_sync(a, &ch, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_changed + ch.n_new + ch.n_expunged, 0);
	in_child(fx->maildir, child_expunge_1);
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(ch.n_expunged, 1);
	assert_int_equal(ch.expunged[0], 1);
	assert_int_equal(store_mailbox_count(b), 4);
	/* \Recent of b's own session survives a sync by the shortcut */
	settle(fx->maildir);
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_int_equal(store_mailbox_sync(b, &ch, &err), STORE_MB_OK);
	assert_true(store_mailbox_msg(b, 3)->recent);
	assert_false(store_mailbox_msg(b, 0)->recent);
	store_mailbox_close(&a);
	store_mailbox_close(&b);
}

/* Temp files of replaces killed mid-way: those of a dead pid, or over an
 * hour old, go at open; a live writer's, other names and non-files stay. */
static void test_stale_tmp_sweep(void **state)
{
	struct fixture *fx = *state;
	struct store_mailbox *mb;
	char path[900];
	pid_t dead;
	int status;
	struct {
		char name[200];
		bool dir;
		long age;
		bool stays;
	} f[9];
	size_t n = 0;

	mb = open_mb(fx->maildir, "INBOX", false);
	store_mailbox_close(&mb);
	dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, &status, 0), dead);

#define F(fmt, pid, is_dir, secs, keep)                                                       \
	do {                                                                                  \
		snprintf(f[n].name, sizeof(f[n].name), fmt, (long)(pid));                        \
		f[n].dir = is_dir;                                                            \
		f[n].age = secs;                                                              \
		f[n].stays = keep;                                                            \
		n++;                                                                          \
	} while (0)
	F("sealpost-uidlist.tmp.%ld.77", dead, false, 0, false);
	F("dovecot-keywords.tmp.%ld.1", dead, false, 0, false);
	F("sealpost-subscriptions.tmp.%ld.2", dead, false, 0, false);
	F("sealpost-uidlist.tmp.%ld.3", getpid(), false, 0, true);        /* live writer */
	F("sealpost-uidlist.tmp.%ld.4", getpid(), false, 7200, false);    /* live pid, 2 h old */
	F("sealpost-uidlist.tmp.%ld.x", dead, false, 0, true);            /* not our pattern */
	F("other-file.tmp.%ld.5", dead, false, 0, true);                  /* not our name */
	F("sealpost-uidlist.tmp.%ld.6", dead, true, 0, true);             /* not a file */
	F("sealpost-uidlist.tmp.%ld.7.8", dead, false, 0, true);
#undef F
	for (size_t i = 0; i < n; i++) {
		assert_true(snprintf(path, sizeof(path), "%s/%s", fx->maildir, f[i].name) <
			    (int)sizeof(path));
		if (f[i].dir)
			assert_int_equal(mkdir(path, 0700), 0);
		else
			write_file(path, "x", O_TRUNC);
		if (f[i].age > 0)
			age(fx->maildir, f[i].name, f[i].age);
	}
	mb = open_mb(fx->maildir, "INBOX", false);
	store_mailbox_close(&mb);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		assert_true(snprintf(path, sizeof(path), "%s/%s", fx->maildir, f[i].name) <
			    (int)sizeof(path));
		if ((stat(path, &st) == 0) != f[i].stays)
			fail_msg("%s: %s", f[i].name, f[i].stays ? "removed" : "left");
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uidlist_parse),
		T(test_uidlist_save_load),
		cmocka_unit_test(test_names),
		T(test_open_new_to_cur),
		T(test_flags_and_second_session),
		T(test_sync_order_duplicates_snapshot),
		T(test_uid_expunge_and_damaged_list),
		T(test_append_copy_status),
		T(test_folders_and_subscriptions),
		T(test_quota),
		T(test_first_opens_at_once),
		T(test_lock_between_processes),
		T(test_uidlist_append_torn_compact),
		T(test_select_shortcut),
		T(test_stale_tmp_sweep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
