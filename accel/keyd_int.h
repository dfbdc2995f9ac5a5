/* Private to keyd: the daemon's state shared by keyd_main.c (startup,
 * control channel, signals), keyd_chan.c (worker channels) and keyd_keys.c
 * (loading keys from the certdb). */
#ifndef KEYD_INT_H
#define KEYD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/event.h>

#include "accel/accel.h"

struct keyd_chan;

struct keyd {
	struct event_base *base;
	struct accel_engine *eng;
	struct keyd_chan *chans;     /* list of open channels */
	size_t nchans;
	size_t max_chans;
	size_t max_inflight;         /* per channel */
	size_t out_max;              /* reply bytes buffered per channel */
	unsigned next_chan_id;
};

/* Serves sock (a connected unix stream socket from tlsd; keyd owns it).
 * 0, or -1 (fd closed, logged) if the channel table is full. */
int keyd_chan_add(struct keyd *kd, int sock);
/* Closes every channel (at shutdown). */
void keyd_chan_close_all(struct keyd *kd);

/* Loads the private key of every certdb "cert" entry with a file: locator
 * into eng on the backend soft. The pinfile is read only if such an entry
 * exists. 0, or -1 with *error_r (caller frees). */
int keyd_load_keys(struct accel_engine *eng, struct accel_backend *soft, const char *certdb_dir,
		   const char *pinfile_path, char **error_r);

#endif
