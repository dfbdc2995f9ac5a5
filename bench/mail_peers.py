"""The servers of the mail benchmark (bench/mail_bench.py), each a private
instance in the run's temp dir on 127.0.0.1 high ports, pinned with taskset:
Sealpost's mailcore (configured as tests/integration/mcfix.py does),
Postfix (Debian's package, `postfix -c DIR start-fg`, virtual Maildir
delivery) and Dovecot (Debian's dovecot-imapd, `dovecot -F -c FILE`,
passwd-file users, Maildir). Configurations are written whole: nothing from
/etc/postfix/main.cf or /etc/dovecot is read, and nothing listens on 25 or
143. Every start failure raises run_bench.Unavailable with the reason."""

import os
import pwd
import grp
import shutil
import subprocess

import run_bench
from run_bench import Unavailable

DOMAIN = "bench.test"
PASSWORD = "bench-secret"   # throwaway: users of this run's temp dir only


def crypt_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", password], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def command_version(argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    return (r.stdout.strip(), None) if r.returncode == 0 else (None, run_bench.tail(r.stdout, 2))


# ---------------------------------------------------------------- Sealpost

def mailcore_has_workers_key(srcdir):
    try:
        with open(os.path.join(srcdir, "mailcore", "mailcore_conf.c")) as f:
            return '"mailcore.workers"' in f.read()
    except OSError:
        return False


class Mailcore:
    """mailcore with its users file, store and spools under d; locals are
    the users (local@bench.test). smtp_port always, imap_port when imap."""

    def __init__(self, procs, builddir, d, locals_, workers=None, imap=False, cpu=None):
        self.binary = os.path.join(builddir, "bin", "mailcore")
        if not os.access(self.binary, os.X_OK):
            raise Unavailable("%s not built (make all)" % self.binary)
        os.makedirs(d, exist_ok=True)
        self.d, self.procs, self.cpu = d, procs, cpu
        self.store = os.path.join(d, "store")
        self.smtp_port = run_bench.free_port()
        self.imap_port = run_bench.free_port() if imap else None
        h = crypt_hash(PASSWORD)
        with open(os.path.join(d, "users"), "w") as f:
            for local in locals_:
                f.write("%s@%s:%s:\n" % (local, DOMAIN, h))
        conf = [
            "user = root", "group = root",   # the bench runs as root and owns its temp dir
            "service.smtp.port = %d" % self.smtp_port,
            "service.submission.port = %d" % run_bench.free_port(),
            "mailcore.listenaddr = 127.0.0.1",
            "mailcore.hostname = mx.%s" % DOMAIN,
            "mailcore.domains = %s" % DOMAIN,
            "mailcore.store = %s" % self.store,
            "mailcore.queue = %s" % os.path.join(d, "queue"),
            "mailcore.hold = %s" % os.path.join(d, "hold"),
            "mailcore.users = %s" % os.path.join(d, "users"),
            "mailcore.queue.delivery = no",   # local delivery only; no DNS
        ]
        if workers is not None:
            conf.append("mailcore.workers = %d" % workers)
        if imap:
            conf.append("service.imap.port = %d" % self.imap_port)
            conf.append("service.imap.maxsessions = 100000")
        self.conf = os.path.join(d, "sealpost.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.argv = [self.binary, "-c", self.conf]
        self.proc = None

    def maildir(self, local):
        return os.path.join(self.store, DOMAIN, local, "Maildir")

    def start(self):
        r = subprocess.run(self.argv + ["-t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise Unavailable("mailcore -t refuses the config: %s" % run_bench.tail(r.stdout, 2))
        self.proc = self.procs.start("mailcore", self.argv, cpu=self.cpu)
        for port in filter(None, (self.smtp_port, self.imap_port)):
            run_bench.wait_port(port, self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None


# ---------------------------------------------------------------- peers

class Peer:
    """What Postfix and Dovecot share: a foreground master under Procs on
    self.cpu, ready when self.port answers, its own log file self.log."""

    def launch(self, name, argv):
        self.proc = self.procs.start(name, argv, cpu=self.cpu)
        try:
            run_bench.wait_port(self.port, self.proc, timeout=30)
        except Unavailable as e:
            raise Unavailable("%s; %s: %s" % (e, os.path.basename(self.log), self.log_tail()))
        return self

    def log_tail(self, n=3):
        try:
            with open(self.log, errors="replace") as f:
                return run_bench.tail(f.read(), n)
        except OSError:
            return ""


# ---------------------------------------------------------------- Postfix

POSTFIX_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix(Peer):
    """A private Postfix: its own config, queue and data directories, smtpd
    on 127.0.0.1:port, the virtual(8) agent delivering to
    base/bench.test/<local>/Maildir/ as nobody. Everything else is
    Postfix's default, fsyncs included: cleanup(8) fsyncs the queue file
    before smtpd answers 250; virtual(8) fsyncs each Maildir file
    (mail_copy) before it links it into new/, after the 250, from the
    queue."""

    def __init__(self, procs, d, locals_, cpu=None):
        if shutil.which("postfix") is None or not os.path.exists("/usr/lib/postfix/sbin/master"):
            raise Unavailable("Postfix not installed (Debian package postfix: scripts/install-deps.sh)")
        try:
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
            nobody = pwd.getpwnam("nobody")
        except KeyError as e:
            raise Unavailable("Postfix's users are missing: %s" % e)
        self.procs, self.cpu = procs, cpu
        self.d = d
        self.conf_dir = os.path.join(d, "etc")
        self.base = os.path.join(d, "vmail")
        self.port = run_bench.free_port()
        self.log = os.path.join(d, "postfix.log")
        os.makedirs(self.conf_dir)
        os.makedirs(os.path.join(d, "spool"))   # postfix check fills it in
        os.makedirs(self.base)
        os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.conf_dir, "vmailbox"), "w") as f:
            for local in locals_:
                f.write("%s@%s %s/%s/Maildir/\n" % (local, DOMAIN, DOMAIN, local))
        main_cf = {
            "compatibility_level": "3.6",
            "config_directory": self.conf_dir,
            "queue_directory": os.path.join(d, "spool"),
            "data_directory": os.path.join(d, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.%s" % DOMAIN,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": self.base,
            "virtual_mailbox_maps": "texthash:%s" % os.path.join(self.conf_dir, "vmailbox"),
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "virtual_minimum_uid": "1",
            "maillog_file": self.log,
            "maillog_file_prefixes": d,
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtputf8_enable": "no",
            "relayhost": "",
        }
        with open(os.path.join(self.conf_dir, "main.cf"), "w") as f:
            f.write("# bench/mail_peers.py: a private Postfix for make bench-mail\n")
            f.writelines("%s = %s\n" % kv for kv in main_cf.items())
        with open(os.path.join(self.conf_dir, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        self.proc = None

    def version(self):
        v, err = command_version(["postconf", "-c", self.conf_dir, "-h", "mail_version"])
        return "Postfix %s" % v if v else "Postfix (version unknown: %s)" % err

    def maildir(self, local):
        return os.path.join(self.base, DOMAIN, local, "Maildir")

    def start(self):
        # `postfix check` creates the queue and data directories with the
        # owners Debian's postfix-files lists
        r = subprocess.run(["postfix", "-c", self.conf_dir, "check"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            # it writes to a terminal or its log only
            raise Unavailable("postfix check failed (%d): %s" % (r.returncode, run_bench.tail(r.stdout, 3)
                                                                 or self.log_tail()))
        return self.launch("postfix", ["postfix", "-c", self.conf_dir, "start-fg"])

    def delivery_problems(self):
        """The last delivery lines of the log that are not status=sent."""
        try:
            with open(self.log, errors="replace") as f:
                bad = [ln for ln in f.read().splitlines() if "status=" in ln and "status=sent" not in ln]
        except OSError as e:
            return "log: %s" % e
        return "log: " + run_bench.tail("\n".join(bad), 2) if bad else "the log shows every delivery status=sent"

    def queue_count(self):
        """Queue files still in the incoming, active and deferred queues."""
        n = 0
        for q in ("incoming", "active", "deferred", "hold", "maildrop"):
            for _, _, files in os.walk(os.path.join(self.d, "spool", q)):
                n += len(files)
        return n

    def stop(self):
        if self.proc is not None:
            subprocess.run(["postfix", "-c", self.conf_dir, "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            self.procs.stop(self.proc)
            self.proc = None


# ---------------------------------------------------------------- Dovecot

class Dovecot(Peer):
    """A private Dovecot (IMAP only, no TLS) with Debian's defaults for
    everything not set here: imap-login in high-security mode (one login
    process per connection, service_count = 1) and one imap process per
    logged-in connection. Mail is owned by nobody (Dovecot refuses uid 0);
    process and per-user/IP connection limits are raised so the idle
    memory row can open its connections."""

    def __init__(self, procs, d, user, maildir, max_conns, cpu=None):
        if shutil.which("dovecot") is None or not os.path.exists("/usr/lib/dovecot/imap"):
            raise Unavailable("Dovecot not installed (Debian package dovecot-imapd: scripts/install-deps.sh)")
        try:
            nobody = pwd.getpwnam("nobody")
            for u in ("dovecot", "dovenull"):
                pwd.getpwnam(u)
        except KeyError as e:
            raise Unavailable("Dovecot's users are missing: %s" % e)
        self.procs, self.cpu, self.d = procs, cpu, d
        self.port = run_bench.free_port()
        self.log = os.path.join(d, "dovecot.log")
        self.maildir = maildir
        home = os.path.dirname(maildir)
        os.makedirs(os.path.join(d, "run"))
        os.makedirs(home, exist_ok=True)
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        os.chown(home, self.uid, self.gid)
        users = os.path.join(d, "users")
        with open(users, "w") as f:
            f.write("%s:{SHA512-CRYPT}%s:%d:%d::%s::\n" % (user, crypt_hash(PASSWORD), self.uid, self.gid, home))
        limit = max_conns + 20
        self.conf = os.path.join(d, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""# bench/mail_peers.py: a private Dovecot for make bench-mail
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
mail_max_userip_connections = {limit}
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = {limit}
}}
service imap {{
  process_limit = {limit}
}}
""".format(d=d, log=self.log, uid=self.uid, limit=limit, users=users, port=self.port))
        self.proc = None

    @staticmethod
    def version():
        v, err = command_version(["dovecot", "--version"])
        return "Dovecot %s" % v if v else "Dovecot (version unknown: %s)" % err

    def chown_mail(self):
        for root, dirs, files in os.walk(self.maildir):
            os.chown(root, self.uid, self.gid)
            for n in files:
                os.chown(os.path.join(root, n), self.uid, self.gid)

    def start(self):
        self.chown_mail()
        return self.launch("dovecot", ["dovecot", "-F", "-c", self.conf])

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None
