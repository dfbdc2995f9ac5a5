/* Private to accel/'s engine: the structures behind struct accel_engine
 * and struct accel_key, shared by accel.c (routing, fallback, health) and
 * accel_stats.c (rendering the counters). */
#ifndef ACCEL_INT_H
#define ACCEL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include "accel/accel.h"

#define ACCEL_MAX_BACKENDS 16
#define ACCEL_MAX_PLACEMENTS 4
#define ACCEL_MAX_KEYS 4096
#define ACCEL_KEY_BUCKETS 256
#define ACCEL_NMECH 4   /* indexed by enum accel_mech */

struct be_slot;

struct placement {
	struct be_slot *slot;
	void *bkey;
};

struct accel_key {
	struct accel_key *next;  /* hash chain */
	uint8_t id[ACCEL_KEY_ID_LEN];
	char *nickname;
	enum accel_key_type type;
	unsigned bits;
	struct placement placements[ACCEL_MAX_PLACEMENTS];
	size_t nplacements;
	size_t inflight;         /* operations holding a pointer to this key */
	bool retired;            /* pruned: freed when inflight reaches 0 */
	struct accel_counters c;
};

struct accel_engine;

struct be_slot {
	struct accel_engine *eng;
	struct accel_backend *be;
	struct event *ev;            /* completion fd */
	struct event *probe_ev;      /* probe timer while down */
	size_t depth;                /* attempts handed over, not come back (abandoned ones too) */
	unsigned consecutive_failures;
	bool down;
	bool probe_inflight;
	unsigned long long probes, probes_failed, downs;
	struct accel_counters c;
};

struct attempt;
struct eng_op;

struct accel_engine {
	struct event_base *base;
	struct be_slot slots[ACCEL_MAX_BACKENDS];
	size_t nslots;
	struct accel_key *buckets[ACCEL_KEY_BUCKETS];
	size_t nkeys;
	size_t inflight;
	struct accel_params params;
	const struct timeval *deadline_tv;  /* libevent common timeout for op_deadline_ms */
	struct attempt *attempts;           /* every attempt a backend holds (freed at shutdown) */
	struct eng_op *ops;                 /* every accepted op not finished */
	struct accel_counters mech[ACCEL_NMECH];
};

const char *accel_mech_name(int mech);

#endif
