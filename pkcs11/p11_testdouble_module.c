/* THE PKCS#11 TEST DOUBLE (lib/p11_testdouble.so). It is not hardware and
 * not a product module. It wraps a real module (SoftHSM2) and passes every
 * call through, adding to each signing operation (C_Sign with an output
 * buffer):
 *   latency_us = N     sleep N microseconds, holding an "engine"
 *   engines = N        at most N C_Sign calls at once; others wait (0: no cap)
 *   fail_every = N     every Nth operation returns CKR_DEVICE_ERROR (0: never)
 *   fail_all = yes     every operation returns CKR_DEVICE_ERROR
 *   hang = yes         operations block until hang is switched off, at most
 *                      hang_max_s seconds (default 60), then CKR_DEVICE_ERROR
 *   max_sessions = N   C_OpenSession answers CKR_SESSION_COUNT beyond N open
 *                      sessions (0: no cap), like single-session tokens
 * Configured by the file named in $SP_P11DOUBLE_CONF ("key = value" lines,
 * '#' comments, plus `module = /usr/lib/softhsm/libsofthsm2.so`). It re-reads
 * the file at every operation when its inode, mtime or size changed (a stat
 * per operation is nothing for a test instrument), so a test that replaces
 * the file by rename switches faults at once, with no wait. The variable carries no secret.
 * So that nobody mistakes it for hardware, CK_TOKEN_INFO.manufacturerID and
 * model, and CK_INFO.manufacturerID and libraryDescription, start with
 * "TEST DOUBLE". Token labels are left alone so PIN file entries still match.
 * A faulted operation is still run on the real module first, so the
 * session's sign operation is over as PKCS#11 says it must be after an error.
 * Self-contained: built alone with -fPIC -shared -lpthread -ldl; it uses no
 * other Sealpost code. p11_testdouble_counters() lets a test that dlopens
 * this library read how many operations, logins and faults it saw. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#define CONF_ENV "SP_P11DOUBLE_CONF"
#define HANG_POLL_NS 10000000L

struct double_conf {
	char module[4096];
	long latency_us;
	long engines;
	long fail_every;
	int fail_all;
	int hang;
	long hang_max_s;
	long max_sessions;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t engine_free = PTHREAD_COND_INITIALIZER;
static struct double_conf conf;
static struct timespec conf_mtime;
static off_t conf_size;
static ino_t conf_ino;
static long busy_engines;
static long open_sessions;
static unsigned long ops, logins, faults;

static void *real_handle;
static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST wrapped;

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);
int p11_testdouble_counters(unsigned long *sign_ops, unsigned long *login_calls,
			    unsigned long *fault_count);

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(long long ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int parse_bool(const char *v)
{
	return strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "on") == 0 ||
	       strcmp(v, "1") == 0;
}

/* Reads the config file into *c; a missing key keeps its default. */
static int read_conf(const char *path, struct double_conf *c)
{
	char line[4200];
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -1;
	memset(c, 0, sizeof(*c));
	c->hang_max_s = 60;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *k = line, *v, *e;

		while (*k == ' ' || *k == '\t')
			k++;
		if (*k == '#' || *k == '\n' || *k == '\0')
			continue;
		v = strchr(k, '=');
		if (v == NULL)
			continue;
		for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		for (e = v + strlen(v); e > v && (e[-1] == '\n' || e[-1] == '\r' ||
						  e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		if (strcmp(k, "module") == 0)
			snprintf(c->module, sizeof(c->module), "%s", v);
		else if (strcmp(k, "latency_us") == 0)
			c->latency_us = strtol(v, NULL, 10);
		else if (strcmp(k, "engines") == 0)
			c->engines = strtol(v, NULL, 10);
		else if (strcmp(k, "fail_every") == 0)
			c->fail_every = strtol(v, NULL, 10);
		else if (strcmp(k, "fail_all") == 0)
			c->fail_all = parse_bool(v);
		else if (strcmp(k, "hang") == 0)
			c->hang = parse_bool(v);
		else if (strcmp(k, "hang_max_s") == 0)
			c->hang_max_s = strtol(v, NULL, 10);
		else if (strcmp(k, "max_sessions") == 0)
			c->max_sessions = strtol(v, NULL, 10);
	}
	fclose(f);
	return 0;
}

/* Called with lock held: re-reads the file if it changed. The inode is
 * compared too: mtime has coarse granularity, and a file replaced by
 * rename always has a new inode. */
static void maybe_reload_locked(void)
{
	const char *path = getenv(CONF_ENV);
	struct double_conf c;
	struct stat st;

	if (path == NULL || stat(path, &st) < 0)
		return;
	if (st.st_ino == conf_ino && st.st_mtim.tv_sec == conf_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == conf_mtime.tv_nsec && st.st_size == conf_size)
		return;
	if (read_conf(path, &c) < 0)
		return;
	conf_ino = st.st_ino;
	conf_mtime = st.st_mtim;
	conf_size = st.st_size;
	/* the wrapped module stays the one loaded first */
	memcpy(c.module, conf.module, sizeof(c.module));
	conf = c;
	pthread_cond_broadcast(&engine_free);
}

static CK_RV fault_or(CK_RV rv)
{
	faults++;
	(void)rv;
	return CKR_DEVICE_ERROR;
}

static void pad_prefix(unsigned char *field, size_t len, const char *prefix)
{
	unsigned char orig[64];
	size_t plen = strlen(prefix);

	if (len > sizeof(orig) || plen > len)
		return;
	memcpy(orig, field, len);
	memset(field, ' ', len);
	memcpy(field, prefix, plen);
	memcpy(field + plen, orig, len - plen);
}

static CK_RV td_GetInfo(CK_INFO_PTR info)
{
	CK_RV rv = real->C_GetInfo(info);

	if (rv == CKR_OK) {
		pad_prefix(info->manufacturerID, sizeof(info->manufacturerID), "TEST DOUBLE ");
		pad_prefix(info->libraryDescription, sizeof(info->libraryDescription),
			   "TEST DOUBLE ");
	}
	return rv;
}

static CK_RV td_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	CK_RV rv = real->C_GetTokenInfo(slot, info);

	if (rv == CKR_OK) {
		pad_prefix(info->manufacturerID, sizeof(info->manufacturerID), "TEST DOUBLE ");
		memset(info->model, ' ', sizeof(info->model));
		memcpy(info->model, "TEST DOUBLE", 11);
	}
	return rv;
}

static CK_RV td_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
			    CK_SESSION_HANDLE_PTR session)
{
	CK_RV rv;

	pthread_mutex_lock(&lock);
	maybe_reload_locked();
	if (conf.max_sessions > 0 && open_sessions >= conf.max_sessions) {
		pthread_mutex_unlock(&lock);
		return CKR_SESSION_COUNT;
	}
	open_sessions++;
	pthread_mutex_unlock(&lock);
	rv = real->C_OpenSession(slot, flags, app, notify, session);
	if (rv != CKR_OK) {
		pthread_mutex_lock(&lock);
		open_sessions--;
		pthread_mutex_unlock(&lock);
	}
	return rv;
}

static CK_RV td_CloseSession(CK_SESSION_HANDLE session)
{
	CK_RV rv = real->C_CloseSession(session);

	if (rv == CKR_OK) {
		pthread_mutex_lock(&lock);
		if (open_sessions > 0)
			open_sessions--;
		pthread_mutex_unlock(&lock);
	}
	return rv;
}

static CK_RV td_CloseAllSessions(CK_SLOT_ID slot)
{
	CK_RV rv = real->C_CloseAllSessions(slot);

	if (rv == CKR_OK) {
		pthread_mutex_lock(&lock);
		open_sessions = 0;
		pthread_mutex_unlock(&lock);
	}
	return rv;
}

static CK_RV td_Login(CK_SESSION_HANDLE session, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin,
		      CK_ULONG pin_len)
{
	pthread_mutex_lock(&lock);
	logins++;
	pthread_mutex_unlock(&lock);
	return real->C_Login(session, type, pin, pin_len);
}

static CK_RV td_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
		     CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	long long hang_start;
	int fail, hung_out = 0;
	long latency;
	CK_RV rv;

	if (sig == NULL)   /* a length query is not an operation */
		return real->C_Sign(session, data, data_len, sig, sig_len);
	pthread_mutex_lock(&lock);
	maybe_reload_locked();
	hang_start = now_ns();
	while (conf.hang) {
		if (now_ns() - hang_start >= (long long)conf.hang_max_s * 1000000000LL) {
			hung_out = 1;
			break;
		}
		pthread_mutex_unlock(&lock);
		sleep_ns(HANG_POLL_NS);
		pthread_mutex_lock(&lock);
		maybe_reload_locked();
	}
	while (conf.engines > 0 && busy_engines >= conf.engines)
		pthread_cond_wait(&engine_free, &lock);
	busy_engines++;
	ops++;
	fail = hung_out || conf.fail_all || (conf.fail_every > 0 && ops % (unsigned long)conf.fail_every == 0);
	latency = conf.latency_us;
	pthread_mutex_unlock(&lock);

	if (latency > 0)
		sleep_ns((long long)latency * 1000LL);
	rv = real->C_Sign(session, data, data_len, sig, sig_len);

	pthread_mutex_lock(&lock);
	busy_engines--;
	pthread_cond_signal(&engine_free);
	if (fail && rv != CKR_BUFFER_TOO_SMALL)
		rv = fault_or(rv);
	pthread_mutex_unlock(&lock);
	return rv;
}

int p11_testdouble_counters(unsigned long *sign_ops, unsigned long *login_calls,
			    unsigned long *fault_count)
{
	pthread_mutex_lock(&lock);
	*sign_ops = ops;
	*login_calls = logins;
	*fault_count = faults;
	pthread_mutex_unlock(&lock);
	return 0;
}

static CK_RV load_real(void)
{
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	const char *path = getenv(CONF_ENV);
	struct stat st;
	CK_RV rv;

	if (real != NULL)
		return CKR_OK;
	if (path == NULL || read_conf(path, &conf) < 0 || conf.module[0] == '\0') {
		fprintf(stderr, "p11_testdouble: set " CONF_ENV " to a file with module = PATH\n");
		return CKR_GENERAL_ERROR;
	}
	if (stat(path, &st) == 0) {
		conf_ino = st.st_ino;
		conf_mtime = st.st_mtim;
		conf_size = st.st_size;
	}
	real_handle = dlopen(conf.module, RTLD_NOW | RTLD_LOCAL);
	if (real_handle == NULL) {
		fprintf(stderr, "p11_testdouble: %s\n", dlerror());
		return CKR_GENERAL_ERROR;
	}
	*(void **)&get_list = dlsym(real_handle, "C_GetFunctionList");
	if (get_list == NULL || (rv = get_list(&real)) != CKR_OK || real == NULL) {
		fprintf(stderr, "p11_testdouble: %s has no usable C_GetFunctionList\n", conf.module);
		real = NULL;
		return CKR_GENERAL_ERROR;
	}
	wrapped = *real;
	wrapped.C_GetFunctionList = C_GetFunctionList;
	wrapped.C_GetInfo = td_GetInfo;
	wrapped.C_GetTokenInfo = td_GetTokenInfo;
	wrapped.C_OpenSession = td_OpenSession;
	wrapped.C_CloseSession = td_CloseSession;
	wrapped.C_CloseAllSessions = td_CloseAllSessions;
	wrapped.C_Login = td_Login;
	wrapped.C_Sign = td_Sign;
	return CKR_OK;
}

__attribute__((visibility("default")))
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv;

	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&lock);
	rv = load_real();
	pthread_mutex_unlock(&lock);
	if (rv != CKR_OK)
		return rv;
	*list = &wrapped;
	return CKR_OK;
}
