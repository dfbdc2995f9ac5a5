/* Mailbox access on a user's Maildir for IMAP and POP: folders as Maildir++
 * (".Name" directories under the user's Maildir, '.' as the hierarchy
 * delimiter), a UID list per mailbox (store_uid.c), flags in the file
 * names' info suffix (":2,DFRST"), new/ -> cur/ moves, expunge, append and
 * copy (crash-safe: tmp, fsync, rename, fsync dir), subscriptions, quota
 * usage over all folders (store_mailbox.c, store_folder.c).
 *
 * Locking: each mailbox directory has a "sealpost-lock" file; every
 * operation that reads or changes the UID list holds flock(LOCK_EX) on it
 * for the duration of the call only (never across a return to the event
 * loop), so sessions in one process and across processes serialise. */
#ifndef MAILCORE_STORE_MAILBOX_H
#define MAILCORE_STORE_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#define STORE_MAILBOX_NAME_MAX 255        /* IMAP mailbox name, bytes */
#define STORE_MAILBOX_MAX_MESSAGES 1000000 /* files per mailbox we index */
#define STORE_MAX_FOLDERS 1000             /* folders per user */
#define STORE_UIDLIST_NAME "sealpost-uidlist"
#define STORE_LOCK_NAME "sealpost-lock"
#define STORE_SUBSCRIPTIONS_NAME "sealpost-subscriptions"
#define STORE_UIDVALIDITY_NAME "sealpost-uidvalidity" /* the last UIDVALIDITY given */
#define STORE_ROOT_LOCK_NAME "sealpost-root.lock"    /* serializes the root's UIDVALIDITY counter */

/* System flags (RFC 3501 2.3.2) and their Maildir info letters. */
#define STORE_F_SEEN 0x01     /* S */
#define STORE_F_ANSWERED 0x02 /* R */
#define STORE_F_FLAGGED 0x04  /* F */
#define STORE_F_DELETED 0x08  /* T */
#define STORE_F_DRAFT 0x10    /* D */
#define STORE_F_ALL 0x1f

/* Results of mailbox operations that callers tell apart. */
enum store_mb_result {
	STORE_MB_OK = 0,
	STORE_MB_IOERR = -1,      /* *error_r says what */
	STORE_MB_NOTFOUND = -2,   /* no such mailbox (IMAP [TRYCREATE] for APPEND/COPY) */
	STORE_MB_EXISTS = -3,
	STORE_MB_OVERQUOTA = -4,
	STORE_MB_BADNAME = -5,
	STORE_MB_HASCHILDREN = -6,
	STORE_MB_INBOX = -7,      /* the operation is not allowed on INBOX */
	STORE_MB_LIMIT = -8,      /* no keyword slot left (IMAP [LIMIT], RFC 5530) */
};

/* ======================================================================
 * Keywords (store_keywords.c), compatible with Dovecot's Maildir: the
 * letters a..z in the ":2," info are slots 0..25 of the mailbox's
 * "dovecot-keywords" file, one "<index> <name>" a line.
 * ==================================================================== */
#define STORE_KEYWORDS_NAME "dovecot-keywords"
#define STORE_KEYWORDS_MAX 26           /* slots: 'a'..'z' */
#define STORE_KEYWORD_LEN 128           /* bytes of one keyword name */
#define STORE_KEYWORDS_FILE_MAX 8192u   /* bytes of the file we read */

struct store_keywords {
	char *name[STORE_KEYWORDS_MAX];  /* NULL: slot unused */
};

/* RFC 3501 flag-keyword: an atom (so no backslash), at most STORE_KEYWORD_LEN bytes. */
bool store_keyword_valid(const char *name, size_t len);
/* Pure: the file's bytes -> slots (emptied first). Bad lines (index out of
 * range, invalid name, a slot or name given twice, past the size bound)
 * are skipped and counted in *bad_r (may be NULL). */
void store_keywords_parse(const char *buf, size_t len, struct store_keywords *kw, size_t *bad_r);
/* dir/dovecot-keywords; none is an empty table. 0 or -1 with *error_r. */
int store_keywords_load(const char *dir, struct store_keywords *kw, char **error_r);
/* Written durably (store_file_replace). */
int store_keywords_save(const char *dir, const struct store_keywords *kw, char **error_r);
void store_keywords_clear(struct store_keywords *kw);
/* Slot of name (case-insensitive), or -1. */
int store_keywords_find(const struct store_keywords *kw, const char *name);
size_t store_keywords_count(const struct store_keywords *kw);
/* "2,Sab" -> slots 0 and 1 as bits. */
uint32_t store_keywords_from_info(const char *info);

/* ======================================================================
 * UID list (store_uid.c). File format, one record a line:
 *   sealpost-uidlist 1 <uidvalidity> <uidnext>
 *   <uid> <base name>          (base = the file name before ':')
 * UIDs strictly ascending. New UIDs are appended (the header's uidnext,
 * written fixed-width, updated in place first, then the lines, one fsync);
 * the header's uidnext is a lower bound: the next UID is the larger of it
 * and the last UID + 1. A crash mid-append leaves a last line without its
 * newline, which readers drop (it was never acknowledged). Expunges
 * rewrite the list (temp + fsync + rename + fsync dir), so a crash leaves
 * the old list or the new one. Lists of the older writer (all UIDs below
 * the header's uidnext) read the same.
 * ==================================================================== */
struct store_uid_entry {
	uint32_t uid;
	char *base;
};

struct store_uidlist {
	uint32_t uidvalidity, uidnext;
	size_t n, cap;
	struct store_uid_entry *e;
	size_t valid_len;   /* parse: bytes up to the end of the last whole line */
	size_t next_off, next_len; /* parse: where the header's UIDNEXT digits are */
	size_t file_size;   /* load: bytes the file held */
};

/* Pure. Returns 0 or -1 with *error_r (caller frees); ul is emptied first. */
int store_uidlist_parse(const char *buf, size_t len, struct store_uidlist *ul, char **error_r);
/* Reads dir/sealpost-uidlist. Returns 1 if there is none (ul empty, its
 * uidvalidity 0), 0 if read, -1 with *error_r. */
int store_uidlist_load(const char *dir, struct store_uidlist *ul, char **error_r);
int store_uidlist_save(const char *dir, const struct store_uidlist *ul, char **error_r);
/* Appends e[0..n) (UIDs above the list's last, the caller's duty) to
 * dir/sealpost-uidlist, sets the header's UIDNEXT (fixed-width, in place)
 * past them and fsyncs, if the file is still as ul was loaded from it:
 * its size, whole lines only, a fixed-width UIDNEXT. Returns 0, 1 when it
 * is not (nothing written: save the list whole instead), or -1 with
 * *error_r (the appended lines cut off again). */
int store_uidlist_append(const char *dir, const struct store_uidlist *ul,
			 const struct store_uid_entry *e, size_t n, char **error_r);
/* Appends (uid ascending is the caller's duty; checked). Takes a copy of base. */
int store_uidlist_add(struct store_uidlist *ul, uint32_t uid, const char *base);
void store_uidlist_clear(struct store_uidlist *ul);
/* snprintf for paths: returns 0, or -1 if it did not fit (buf then holds
 * a truncated path that names nothing of ours). */
int store_path(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Replaces dir/name with buf durably: dir/name.tmp.<pid>.<tid>, fsync,
 * rename, fsync dir. Used for the UID list, the keywords, the
 * subscriptions and the root's UIDVALIDITY. */
int store_file_replace(const char *dir, const char *name, const char *buf, size_t len,
		       char **error_r);
/* Removes from dir the temp files a store_file_replace of one of the names
 * above left when it was killed: "<name>.tmp.<pid>.<tid>", regular files
 * only, whose pid is not a live process or that are older than
 * STORE_REPLACE_TMP_MAX_AGE seconds. Nothing else is touched. The caller
 * holds dir's mailbox lock. Returns how many went. */
#define STORE_REPLACE_TMP_MAX_AGE 3600
size_t store_replace_tmp_sweep(const char *dir);

/* ======================================================================
 * Names.
 * ==================================================================== */
/* Valid IMAP mailbox name for this store: printable ASCII, at most
 * STORE_MAILBOX_NAME_MAX bytes, no '/', '\\', '*', '%', no empty or
 * leading "." hierarchy level; "INBOX" any case is the inbox. */
bool store_mailbox_name_valid(const char *name);
bool store_mailbox_is_inbox(const char *name);
/* The directory of mailbox name in the user's maildir: maildir itself for
 * INBOX, maildir/.Name otherwise. Returns 0, or -1 (bad name, too long). */
int store_mailbox_dir(const char *maildir, const char *name, char *buf, size_t cap);

/* Creates dir and its tmp/ new/ cur/ (0700), each made durable in its
 * parent; existing ones are fine. parent: dir's parent, to fsync. */
int store_make_maildir(const char *dir, const char *parent);

/* Maildir info letters <-> flags: "2,FS" -> SEEN|FLAGGED. */
unsigned store_flags_from_info(const char *info);
/* Writes ":2," + letters in ASCII order into buf. */
void store_flags_to_info(unsigned flags, char *buf, size_t cap);

/* ======================================================================
 * An open mailbox: a view of its messages, in UID order.
 * ==================================================================== */
struct store_msg {
	uint32_t uid;
	unsigned flags;        /* STORE_F_* */
	uint32_t keywords;     /* bit i: keyword slot i (info letter 'a' + i) */
	bool recent;           /* this session moved it from new/ (or, read-only: it is in new/) */
	uint64_t size;         /* bytes of the file (",S=" when present) */
	time_t internaldate;   /* the file's mtime */
	char *file;            /* "cur/<name>" or "new/<name>" relative to the mailbox dir */
	char *base;            /* the unique part of the name */
};

struct store_mailbox;

/* ======================================================================
 * The size and mtime of each message file, as the last sync that had to
 * stat(2) saw them, shared in the process (store_statcache.c, thread-safe):
 * a fresh SELECT of a mailbox seen before stats only files not listed.
 * With a scan stamp, the snapshot is also that sync's whole view, and a
 * sync that finds the same stamp (and new/ empty) takes the view from it
 * instead of reading cur/ and the UID list again.
 * Bounded: STORE_STAT_SNAPS mailboxes, each of at most
 * STORE_STAT_SNAP_MAX_MESSAGES (a bigger one is not kept).
 * ==================================================================== */
#define STORE_STAT_SNAPS 16
#define STORE_STAT_SNAP_MAX_MESSAGES 200000
/* A stamp whose mtime is this close to the scan (or later) is not trusted:
 * a change in the same timestamp tick after the scan would leave it as it
 * was. Far above a local file system's tick (a jiffy). */
#define STORE_SCAN_SETTLE_NS 2000000000LL
struct store_stat_snap;

/* What stat(2) says of a file or directory, as far as a change shows. */
struct store_file_stamp {
	bool exists;
	uint64_t dev, ino, size;
	int64_t mtime_sec;
	long mtime_nsec;
};
/* cur/ (renames, links, unlinks) and the UID list of a mailbox; new/ is
 * read each time (deliveries come without the lock). */
struct store_scan_stamp {
	struct store_file_stamp cur, list;
	int64_t taken_ns;  /* CLOCK_REALTIME just before the stats */
};

/* Stats dir's cur/ and sealpost-uidlist. */
void store_scan_stamp_take(const char *dir, struct store_scan_stamp *st);
bool store_scan_stamp_equal(const struct store_scan_stamp *a, const struct store_scan_stamp *b);
/* Every mtime at least STORE_SCAN_SETTLE_NS before the stamp was taken. */
bool store_scan_stamp_settled(const struct store_scan_stamp *st);

/* A reference to dir's snapshot under that UIDVALIDITY, or NULL. Give it
 * back with store_stat_snap_put (NULL is fine). */
struct store_stat_snap *store_stat_snap_get(const char *dir, uint32_t uidvalidity);
/* A reference to dir's snapshot if it carries a stamp equal to st, or NULL. */
struct store_stat_snap *store_stat_snap_get_stamped(const char *dir,
						    const struct store_scan_stamp *st);
void store_stat_snap_put(struct store_stat_snap **s);
/* Size and mtime of base if listed there with this uid. */
bool store_stat_snap_find(const struct store_stat_snap *s, const char *base, uint32_t uid,
			  uint64_t *size_r, time_t *mtime_r);
/* Whether s carries a stamp equal to st. */
bool store_stat_snap_has_stamp(const struct store_stat_snap *s, const struct store_scan_stamp *st);
/* The stamped view, copied into *msgs_r (UID order, \Recent clear; the
 * caller frees each with its file and base, and the array), and its
 * UIDVALIDITY and UIDNEXT. Returns the count. */
size_t store_stat_snap_view(const struct store_stat_snap *s, struct store_msg **msgs_r,
			    uint32_t *uidvalidity_r, uint32_t *uidnext_r);
/* Replaces dir's snapshot with a copy of msgs[0..n) (UID order). stamp:
 * the scan that made them, settled and unchanged through the sync, with
 * every file in cur/ (the view may stand in for a rescan); or NULL. */
void store_stat_snap_publish(const char *dir, uint32_t uidvalidity, uint32_t uidnext,
			     const struct store_msg *msgs, size_t n,
			     const struct store_scan_stamp *stamp);
/* Drops them all (tests; a process about to exit). */
void store_stat_snap_flush(void);

/* What a sync found since the last one, as sequence numbers of the view
 * before the sync: expunged[] ascending in "report order" (each already
 * lowered by the ones reported before it, as RFC 3501 7.4.1 EXPUNGE
 * responses want them), changed[] (flags changed elsewhere) as sequence
 * numbers after the expunges, and how many messages were added at the end.
 * The arrays belong to the mailbox until the next sync/expunge. */
struct store_changes {
	const uint32_t *expunged;
	size_t n_expunged;
	const uint32_t *changed;
	size_t n_changed;
	size_t n_new;
	bool uidvalidity_changed;
};

/* Opens (and syncs) mailbox name of the user's maildir. read_only: no
 * new/ -> cur/ moves and no flag changes (EXAMINE, STATUS). INBOX's Maildir
 * is created when missing; other mailboxes must exist (STORE_MB_NOTFOUND).
 * Caller frees with store_mailbox_close. */
enum store_mb_result store_mailbox_open(const char *maildir, const char *name, bool read_only,
					struct store_mailbox **mb_r, char **error_r);
void store_mailbox_close(struct store_mailbox **mb);

const char *store_mailbox_name(const struct store_mailbox *mb);
bool store_mailbox_read_only(const struct store_mailbox *mb);
uint32_t store_mailbox_uidvalidity(const struct store_mailbox *mb);
uint32_t store_mailbox_uidnext(const struct store_mailbox *mb);
size_t store_mailbox_count(const struct store_mailbox *mb);
/* idx is 0-based (sequence number - 1). */
const struct store_msg *store_mailbox_msg(const struct store_mailbox *mb, size_t idx);
/* Index of uid, or -1. */
ssize_t store_mailbox_find_uid(const struct store_mailbox *mb, uint32_t uid);

/* Rescans the directory (under the lock) and updates the view. */
enum store_mb_result store_mailbox_sync(struct store_mailbox *mb, struct store_changes *ch,
					char **error_r);

/* Sets a message's flags (renames its file), its keywords kept. Read-only:
 * STORE_MB_IOERR. A message expunged elsewhere meanwhile: STORE_MB_NOTFOUND. */
enum store_mb_result store_mailbox_set_flags(struct store_mailbox *mb, size_t idx, unsigned flags,
					     char **error_r);
/* The same with the keyword slots (bits) too. */
enum store_mb_result store_mailbox_set_flags_kw(struct store_mailbox *mb, size_t idx,
						unsigned flags, uint32_t keywords, char **error_r);

/* The mailbox's keyword slots as of the last sync or keyword change. */
const struct store_keywords *store_mailbox_keywords(const struct store_mailbox *mb);
/* The slot of keyword name (a valid atom); with create, a new one is added
 * to dovecot-keywords (under the lock, durably) when missing. Not there
 * and !create: STORE_MB_NOTFOUND; all 26 slots taken: STORE_MB_LIMIT. */
enum store_mb_result store_mailbox_keyword_slot(struct store_mailbox *mb, const char *name,
						bool create, int *slot_r, char **error_r);

/* Opens a message for reading (O_RDONLY); -1 with errno ENOENT if it was
 * expunged elsewhere. Caller closes. */
int store_mailbox_open_msg(struct store_mailbox *mb, size_t idx);

/* Removes the messages flagged \Deleted (all of them, or only those for
 * which want(uid) says so: UID EXPUNGE). ch->expunged lists them (report
 * order); the view no longer holds them. */
enum store_mb_result store_mailbox_expunge(struct store_mailbox *mb,
					   bool (*want)(uint32_t uid, void *arg), void *arg,
					   struct store_changes *ch, char **error_r);

/* Appends a message to mailbox name: delivered crash-safely through
 * store_maildir_deliver, then moved to cur/ with flags and internaldate
 * (0 = now). quota: bytes over all folders, 0 = none. Sets the new UID
 * and the mailbox's UIDVALIDITY (RFC 4315 APPENDUID). */
enum store_mb_result store_mailbox_append(const char *maildir, const char *name,
					  const struct iovec *parts, size_t n_parts, unsigned flags,
					  time_t internaldate, const char *hostname, uint64_t quota,
					  uint32_t *uidvalidity_r, uint32_t *uid_r, char **error_r);
/* The same with keywords (valid atoms) given by name: they get slots in
 * the destination (STORE_MB_LIMIT when they do not fit; nothing stored). */
enum store_mb_result store_mailbox_append_kw(const char *maildir, const char *name,
					     const struct iovec *parts, size_t n_parts,
					     unsigned flags, const char *const *keywords,
					     size_t n_keywords, time_t internaldate,
					     const char *hostname, uint64_t quota,
					     uint32_t *uidvalidity_r, uint32_t *uid_r, char **error_r);

/* Copies messages idx[0..n) of mb into mailbox dest (flags and keywords
 * kept, keywords mapped by name to dest's slots; one that finds no free
 * slot there is dropped and logged; \Recent not). dest_uids_r (n entries) receives the new UIDs in the same order
 * (RFC 4315 COPYUID); *uidvalidity_r the destination's. */
enum store_mb_result store_mailbox_copy(struct store_mailbox *mb, const size_t *idx, size_t n,
					const char *maildir, const char *dest,
					const char *hostname, uint64_t quota,
					uint32_t *uidvalidity_r, uint32_t *dest_uids_r,
					char **error_r);

/* STATUS without selecting. */
struct store_status_info {
	uint32_t messages, recent, uidnext, uidvalidity, unseen;
};
enum store_mb_result store_mailbox_status(const char *maildir, const char *name,
					  struct store_status_info *st, char **error_r);

/* ======================================================================
 * Folders, subscriptions, usage (store_folder.c).
 * ==================================================================== */
/* Every mailbox of the user, INBOX first, then the folders sorted. Caller
 * frees with store_names_free. */
enum store_mb_result store_folder_list(const char *maildir, char ***names_r, size_t *n_r,
				       char **error_r);
void store_names_free(char **names, size_t n);
enum store_mb_result store_folder_create(const char *maildir, const char *name, char **error_r);
/* Refuses INBOX and a mailbox with inferiors. */
enum store_mb_result store_folder_delete(const char *maildir, const char *name, char **error_r);
/* Renames a folder and its inferiors; renaming INBOX moves its messages
 * into the new folder (RFC 3501 6.3.5) and leaves INBOX empty. */
enum store_mb_result store_folder_rename(const char *maildir, const char *from, const char *to,
					 const char *hostname, char **error_r);
enum store_mb_result store_subscriptions_read(const char *maildir, char ***names_r, size_t *n_r,
					      char **error_r);
enum store_mb_result store_subscriptions_set(const char *maildir, const char *name,
					     bool subscribe, char **error_r);
/* Bytes used by all of the user's mailboxes (store_maildir_usage of each). */
int store_usage_total(const char *maildir, uint64_t *bytes_r, char **error_r);

#endif
