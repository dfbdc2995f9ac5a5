/* Private to keyd: the daemon's state shared by keyd_main.c (startup,
 * control channel, signals, reload), keyd_chan.c (worker channels),
 * keyd_keys.c (loading keys from the certdb into the engine), keyd_ncp.c
 * (software keys copied into an accelerator) and keyd_stats.c (the stats
 * socket). */
#ifndef KEYD_INT_H
#define KEYD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "accel/accel.h"
#include "pkcs11/pkcs11.h"

struct keyd_chan;
struct keyd_stats;
struct sp_conf;

/* One PKCS#11 token keyd opened (once, logged in once) and its backend. */
struct keyd_token {
	struct keyd_token *next;
	struct p11_token *tok;
	struct accel_backend *be;    /* owned by the engine once added; NULL before */
	CK_SESSION_HANDLE ncp_session;  /* holds the NCP session objects; 0 = none */
	CK_FUNCTION_LIST *ncp_fn;
	bool ncp_session_open;
};

/* What one reading of sealpost.conf tells keyd (keyd_settings_load). */
struct keyd_settings {
	char *certdb_dir;
	char *pinfile;
	char *modules_file;
	bool p11kit_modules;
	unsigned p11_sessions;
	unsigned p11_threads;
	size_t p11_max_queue;
	char *accelerator;           /* keyd.accelerator, NULL = none */
	char *stats_socket;          /* NULL = none */
	struct accel_params params;
	size_t max_inflight, out_max, max_chans;
	unsigned soft_threads;
	size_t soft_max_queue;
};

struct keyd {
	struct event_base *base;
	struct accel_engine *eng;
	struct accel_backend *soft;  /* owned by the engine */
	struct keyd_chan *chans;     /* list of open channels */
	size_t nchans;
	size_t max_chans;
	size_t max_inflight;         /* per channel */
	size_t out_max;              /* reply bytes buffered per channel */
	unsigned next_chan_id;
	struct p11_ctx *p11;         /* made on first need, after exec (never in tlsd's master) */
	struct keyd_token *tokens;
	struct keyd_stats *stats;
};

/* Serves sock (a connected unix stream socket from tlsd; keyd owns it).
 * 0, or -1 (fd closed, logged) if the channel table is full. */
int keyd_chan_add(struct keyd *kd, int sock);
/* Closes every channel (at shutdown). */
void keyd_chan_close_all(struct keyd *kd);

/* keyd_main.c: RELOAD from the master (logs its outcome). */
void keyd_reload(struct keyd *kd, const char *conf_path);

/* keyd_keys.c */
/* Reads keyd's settings from a loaded configuration (conf_path locates the
 * defaults). 0, or -1 with *error_r. Free with keyd_settings_clear. */
int keyd_settings_load(const struct sp_conf *conf, const char *conf_path,
		       struct keyd_settings *set, char **error_r);
void keyd_settings_clear(struct keyd_settings *set);
/* Brings the engine's key set to the certdb's: keys already loaded stay
 * (and keep serving), new ones are loaded (file: keys on the soft backend,
 * plus the accelerator first if set; pkcs11: keys on their token's backend,
 * tokens opened once), keys no longer in the certdb are removed (only if
 * prune). Everything new is loaded and checked before anything changes: on
 * error nothing changed. 0, or -1 with *error_r. */
int keyd_keys_sync(struct keyd *kd, const struct keyd_settings *set, bool prune,
		   char **error_r);
/* Closes the tokens and the PKCS#11 context; after the engine is freed. */
void keyd_tokens_close(struct keyd *kd);

/* keyd_ncp.c: copies pkey into tok as session objects (CKA_TOKEN false,
 * private, sensitive, not extractable) on kt's held session, labelled and
 * identified by the key id; returns the token's handle for it. */
struct p11_key *keyd_ncp_load(struct keyd_token *kt, EVP_PKEY *pkey,
			      const uint8_t id[ACCEL_KEY_ID_LEN], const char *nickname,
			      char **error_r);
/* Opens the session that holds the NCP objects (they live while it does). */
int keyd_ncp_session_open(struct keyd *kd, struct keyd_token *kt, char **error_r);
void keyd_ncp_session_close(struct keyd_token *kt);

/* keyd_stats.c: the stats socket. NULL with *error_r. */
struct keyd_stats *keyd_stats_new(struct keyd *kd, const char *path, char **error_r);
void keyd_stats_free(struct keyd_stats **st);

#endif
