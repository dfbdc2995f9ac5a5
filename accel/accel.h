/* The key-operation engine that keyd runs: the backend interface (a small
 * table of functions, nginx/OpenSSL-engine style), keys with one or more
 * placements, and the engine that routes each operation to a placement:
 * first healthy placement, the next one on error, deadline or overload
 * (spill), backends marked down after repeated failures and probed until
 * they recover, counters per backend, key and mechanism. Backends: `soft`
 * (OpenSSL on a thread pool, accel_soft.c) and `pkcs11` (accel_pkcs11.h).
 * Everything here runs on keyd's one libevent loop thread except what a
 * backend does on its own threads; completions are always delivered on the
 * loop thread. */
#ifndef ACCEL_H
#define ACCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <openssl/evp.h>

#define ACCEL_KEY_ID_LEN 32   /* SHA-256 of the DER SubjectPublicKeyInfo */
#define ACCEL_MAX_DIGEST 64
#define ACCEL_MAX_SIG 1024    /* RSA-8192 */

/* Mechanisms (wire values of keyd_proto.h too). The input is always the
 * digest computed by the caller; the backend adds padding/DigestInfo. */
enum accel_mech {
	ACCEL_MECH_RSA_PKCS1 = 1,  /* RSASSA-PKCS1-v1_5 (RFC 8017 8.2), CKM_RSA_PKCS */
	ACCEL_MECH_RSA_PSS = 2,    /* RSASSA-PSS (RFC 8017 8.1), CKM_RSA_PKCS_PSS */
	ACCEL_MECH_ECDSA = 3,      /* ECDSA, DER Ecdsa-Sig-Value out (RFC 8446 4.2.3), CKM_ECDSA */
};
#define ACCEL_MECH_BIT(m) (1u << (m))

/* Digests (wire values of keyd_proto.h too). */
enum accel_md {
	ACCEL_MD_SHA1 = 1,
	ACCEL_MD_SHA224 = 2,
	ACCEL_MD_SHA256 = 3,
	ACCEL_MD_SHA384 = 4,
	ACCEL_MD_SHA512 = 5,
};
/* Name for EVP_MD_fetch ("SHA256") and output size; NULL / 0 if unknown. */
const char *accel_md_name(int md);
size_t accel_md_size(int md);
/* From an OpenSSL digest name (any alias, e.g. "SHA2-256"); 0 if unsupported. */
int accel_md_from_name(const char *name);

enum accel_key_type {
	ACCEL_KEY_RSA = 1,
	ACCEL_KEY_EC = 2,
};

/* Results, delivered to the completion callback (wire values of keyd_proto.h). */
enum accel_status {
	ACCEL_OK = 0,
	ACCEL_ERR_UNKNOWN_KEY = 1,
	ACCEL_ERR_UNSUPPORTED = 2,  /* mechanism/params not valid for this key */
	ACCEL_ERR_BUSY = 3,         /* every placement's queue is full */
	ACCEL_ERR_FAILED = 4,       /* the backend tried and failed */
	ACCEL_ERR_SHUTDOWN = 5,     /* engine going away */
};
const char *accel_status_str(int status);

/* One signature operation. */
struct accel_op {
	uint8_t mech;              /* enum accel_mech */
	uint8_t md;                /* enum accel_md: the hash the digest was made with */
	uint8_t mgf1_md;           /* RSA-PSS only */
	uint32_t saltlen;          /* RSA-PSS only: explicit salt length in bytes */
	uint8_t digest[ACCEL_MAX_DIGEST];
	size_t digest_len;         /* == accel_md_size(md) */
};

/* Called once per submitted operation, on the loop thread. sig is valid
 * only during the call (sig_len 0 unless status == ACCEL_OK). */
typedef void accel_done_fn(void *arg, int status, const uint8_t *sig, size_t sig_len);

/* What a backend can do. */
struct accel_caps {
	unsigned mechs;            /* ACCEL_MECH_BIT(...) */
	unsigned rsa_min_bits, rsa_max_bits;
	bool ec_p256, ec_p384, ec_p521;
	/* Work runs on this host's CPUs (soft): it queues under load but does
	 * not hang the way a device can, so as a key's last placement it gets
	 * no deadline of its own (the handshake's key-op timeout governs). */
	bool in_process;
};

/* ---- backend interface ----
 * A backend instance is `struct accel_backend` with its ops table and private
 * state. The engine owns it after accel_engine_add_backend. */
struct accel_backend;
struct accel_backend_ops {
	const char *name;          /* "soft", "pkcs11" */
	void (*caps)(const struct accel_backend *be, struct accel_caps *caps);
	/* Queues op on bkey (the backend's handle for the key, made by the
	 * backend's own key loader). Returns 0: done(arg, ...) will be called
	 * exactly once, later, from poll; or -1 with nothing queued (queue
	 * full: ACCEL_ERR_BUSY is the caller's answer). Never blocks. */
	int (*submit)(struct accel_backend *be, void *bkey, const struct accel_op *op,
		      accel_done_fn *done, void *arg);
	/* fd that becomes readable when completions wait; -1 if none. */
	int (*completion_fd)(const struct accel_backend *be);
	/* Runs the waiting completions' callbacks; on the loop thread. */
	void (*poll)(struct accel_backend *be);
	/* true while the backend is usable (a token is logged in, ...). */
	bool (*healthy)(const struct accel_backend *be);
	/* Releases a key handle made for this backend. */
	void (*key_free)(struct accel_backend *be, void *bkey);
	/* Joins the backend's threads once running operations end; callbacks
	 * not yet delivered are dropped (never called). Frees be. */
	void (*free)(struct accel_backend *be);
};
struct accel_backend {
	const struct accel_backend_ops *ops;
	void *priv;
	char label[64];            /* shown in logs and stats ("pkcs11:Token"); "" = ops->name */
	struct be_slot *engine_slot;  /* the engine's, set by accel_engine_add_backend */
};
const char *accel_backend_label(const struct accel_backend *be);

/* The `soft` backend: OpenSSL in-process on `threads` threads (0 = number of
 * online CPUs), at most max_queue operations queued or running. NULL with
 * *error_r (caller frees) on failure. */
struct accel_backend *accel_soft_new(unsigned threads, size_t max_queue, char **error_r);
/* A soft key handle for pkey (private key; a reference is taken). */
void *accel_soft_key(EVP_PKEY *pkey);

/* ---- the engine ---- */
struct accel_engine;
struct accel_key;

/* Scheduling knobs (keyd.* keys); may change at any time (reload). */
struct accel_params {
	unsigned op_deadline_ms;     /* per attempt on one placement; 0 = none */
	unsigned down_after;         /* consecutive failures that mark a backend down; 0 = never */
	unsigned probe_interval_ms;  /* test signature on a down backend this often */
	size_t spill_queue;          /* attempts outstanding on a backend beyond which new
				      * operations go to the next placement; 0 = never spill */
};
void accel_engine_set_params(struct accel_engine *eng, const struct accel_params *params);

/* Counters (per backend, per key, per mechanism). */
#define ACCEL_LAT_BUCKETS 25         /* bucket b: latency < 2^b us (last: the rest) */
struct accel_counters {
	unsigned long long submitted;  /* attempts handed over (backend) / ops accepted (key, mech) */
	unsigned long long completed;  /* finished OK */
	unsigned long long failed;     /* finished with an error (incl. deadline) */
	unsigned long long fellback;   /* moved on to the next placement after error/deadline */
	unsigned long long spilled;    /* skipped because the backend's queue was over spill_queue */
	unsigned long long timeouts;   /* attempts whose deadline fired */
	unsigned long long lat[ACCEL_LAT_BUCKETS];
};

/* Caller frees with accel_engine_free (after the loop stops). */
struct accel_engine *accel_engine_new(struct event_base *base);
void accel_engine_free(struct accel_engine **eng);
/* The engine takes be; 0, or -1 with *error_r (caller frees). */
int accel_engine_add_backend(struct accel_engine *eng, struct accel_backend *be,
			     char **error_r);

/* Declares a key by its id. type/bits/ec_nid describe it so requests can be
 * checked before any backend sees them. Returns NULL with *error_r if the
 * id is already known or the table is full. The engine owns the key. */
struct accel_key *accel_engine_add_key(struct accel_engine *eng, const uint8_t id[ACCEL_KEY_ID_LEN],
				       const char *nickname, enum accel_key_type type,
				       unsigned bits, char **error_r);
/* Adds a placement (in order of preference) of key on be, with the
 * backend's handle bkey (the engine frees it through be->ops->key_free). */
int accel_key_add_placement(struct accel_key *key, struct accel_backend *be, void *bkey,
			    char **error_r);
const struct accel_key *accel_engine_find_key(const struct accel_engine *eng,
					      const uint8_t id[ACCEL_KEY_ID_LEN]);
size_t accel_engine_key_count(const struct accel_engine *eng);

/* Checks op against the key (mechanism for its type, digest length, PSS
 * salt bound) and hands it to a placement. Returns ACCEL_OK: done() will be
 * called exactly once, later, on the loop thread; or an ACCEL_ERR_* status
 * with no callback (the caller answers at once). */
int accel_engine_submit(struct accel_engine *eng, const uint8_t id[ACCEL_KEY_ID_LEN],
			const struct accel_op *op, accel_done_fn *done, void *arg);

/* Operations accepted and not completed yet. */
size_t accel_engine_inflight(const struct accel_engine *eng);

/* Removes every key for which keep(id, arg) is false (reload). A key with
 * operations in flight is unlinked now and freed when the last one ends.
 * Returns how many were removed. */
size_t accel_engine_prune(struct accel_engine *eng,
			  bool (*keep)(const uint8_t id[ACCEL_KEY_ID_LEN], void *arg), void *arg);
/* Whether be is marked down (for tests and stats). */
bool accel_engine_backend_down(const struct accel_engine *eng, const struct accel_backend *be);

/* The counters as text (one line per backend, key and mechanism) or JSON, malloc'd and
 * NUL-terminated (caller frees); at most max bytes, cut with a note. */
char *accel_engine_stats(const struct accel_engine *eng, bool json, size_t max, size_t *len_r);

/* CPUs this process may run on (its affinity mask: taskset, a cpuset), at
 * least 1; all online CPUs where the mask cannot be read. The default size
 * of the soft backend's thread pool and of tlsd's worker set: more than
 * these only take turns on the same cores. */
long accel_usable_cpus(void);

#endif
