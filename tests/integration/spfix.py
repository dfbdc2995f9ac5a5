"""Helpers for Sealpost's integration tests: paths of the build, free loopback
ports, daemons started and stopped cleanly, and a test PKI (CA, server and
client certificates, a CRL) laid out as a Sealpost certdb."""

import os
import signal
import socket
import subprocess
import time

SRCDIR = os.path.abspath(os.environ.get("SP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.path.abspath(os.environ.get("SP_BUILDDIR", SRCDIR))
SANITIZERS = os.environ.get("SP_SANITIZERS", "no") == "yes"
INTERNAL_TOKEN = "Internal (Software) Token"


def bin_path(name):
    """Path of a built program: bin/NAME or bin/tests/NAME."""
    for p in (os.path.join(BUILDDIR, "bin", name), os.path.join(BUILDDIR, "bin", "tests", name)):
        if os.path.exists(p):
            return p
    raise FileNotFoundError("not built: %s (in %s/bin)" % (name, BUILDDIR))


_PORTS_GIVEN = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, and that this test
    run has not handed out before: the kernel may give the same ephemeral
    port to two calls in a row, and a test asks for several before any
    daemon binds them (a mailcore once got the port of its own slapd)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no fresh free port")


def wait_for(cond, timeout=10.0, what="condition"):
    """Polls cond() until it is true or the deadline passes (then raises)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Daemon:
    """A process started in its own session with its output in a log file.
    stop() ends the whole process group, so no child is left behind."""

    registry = []

    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.logpath = os.path.join(str(logdir), "%s.log" % name)
        e = dict(os.environ)
        if SANITIZERS:
            e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=99")
            e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            e.update(env)
        self.env = e
        self.cwd = cwd
        self.proc = None
        Daemon.registry.append(self)

    def start(self, ready_port=None, ready_log=None, timeout=15.0):
        # a restart appends to the same log: only a ready line of this run
        # counts (and the port may still be open in the old, dying processes)
        seen_before = self.log().count(ready_log) if ready_log is not None else 0
        self.logfile = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        try:
            if ready_port is not None:
                ports = ready_port if isinstance(ready_port, (list, tuple)) else [ready_port]
                for p in ports:
                    wait_for(lambda: self._alive_or_raise() and port_open(p), timeout,
                             "%s to listen on port %d" % (self.name, p))
            if ready_log is not None:
                self.wait_log(ready_log, timeout, count=seen_before + 1)
        except Exception:
            self.stop()
            raise
        return self

    def _alive_or_raise(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited with %s during start:\n%s" % (self.name, self.proc.returncode, self.log()))
        return True

    def log(self):
        try:
            with open(self.logpath, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, needle, timeout=15.0, count=1):
        """Waits until needle occurs count times in the log."""
        return wait_for(lambda: self.log().count(needle) >= count, timeout,
                        "%r in %s's log" % (needle, self.name))

    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM, wait, then SIGKILL the group. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.logfile.close()
        return self.proc.returncode


def run(argv, check=True, **kw):
    """Runs a command, returns CompletedProcess with text output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    r = subprocess.run([str(a) for a in argv], **kw)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (r.returncode, " ".join(map(str, argv)), r.stdout))
    return r


class PKI:
    """A test CA and certificates, made with the openssl command line, laid out
    as a Sealpost certdb (certdb/certdb.h) in DIR/certdb.

    Certificates (all valid 400 days):
      server-rsa, server-ec: CN=localhost, SAN localhost, mail.example.com, 127.0.0.1
      other-rsa: CN=other.example.com (for SNI)
      client alice (alice@example.com), bob (revoked in the CRL),
      mallory (issued by an untrusted CA)
    certdb nicknames: Server-Cert (RSA), Server-Cert-EC, Other-Cert, CA "Test CA"
    (trust server,client). Keys are encrypted PKCS#8 with PASSPHRASE, recorded
    in DIR/sslpassword.conf (mode 0600) for the internal token."""

    PASSPHRASE = "test-internal-passphrase-1234"

    def __init__(self, d):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.certdb = os.path.join(self.dir, "certdb")
        self.pinfile = os.path.join(self.dir, "sslpassword.conf")
        self._make()

    def p(self, *names):
        return os.path.join(self.dir, *names)

    def _ossl(self, *args, **kw):
        return run(["openssl"] + list(args), **kw)

    def _key(self, name, kind):
        path = self.p(name + ".key")
        if kind == "rsa":
            self._ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
        else:
            self._ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
        return path

    def _issue(self, name, subj, key, ca, ext, days=400):
        csr = self.p(name + ".csr")
        extfile = self.p(name + ".ext")
        with open(extfile, "w") as f:
            f.write(ext)
        self._ossl("req", "-new", "-key", key, "-subj", subj, "-out", csr)
        crt = self.p(name + ".crt")
        self._ossl("x509", "-req", "-in", csr, "-CA", ca + ".crt", "-CAkey", ca + ".key",
                   "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", extfile, "-out", crt)
        return crt

    def _ca(self, name, cn):
        key = self._key(name, "ec")
        self._ossl("req", "-x509", "-new", "-key", key, "-subj", "/O=Sealpost Test/CN=" + cn, "-days", "800",
                   "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
                   "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.p(name + ".crt"))
        return self.p(name)

    def _make(self):
        ca = self._ca("ca", "Sealpost Test CA")
        self.ca_crt = ca + ".crt"
        bad = self._ca("badca", "Untrusted Test CA")
        server_ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                      "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:mail.example.com,IP:127.0.0.1\n")
        self.server_rsa = self._issue("server-rsa", "/O=Sealpost Test/CN=localhost", self._key("server-rsa", "rsa"), ca, server_ext)
        self.server_ec = self._issue("server-ec", "/O=Sealpost Test/CN=localhost", self._key("server-ec", "ec"), ca, server_ext)
        other_ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.example.com\n")
        self.other_rsa = self._issue("other-rsa", "/O=Sealpost Test/CN=other.example.com", self._key("other-rsa", "rsa"), ca, other_ext)
        self.clients = {}
        for user, issuer in (("alice", ca), ("bob", ca), ("mallory", bad)):
            ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
                   "subjectAltName=email:%s@example.com\n" % user)
            crt = self._issue("client-" + user, "/O=Sealpost Test/CN=%s/emailAddress=%s@example.com" % (user, user),
                              self._key("client-" + user, "ec"), issuer, ext)
            self.clients[user] = (crt, self.p("client-%s.key" % user))
        self._crl(ca, revoke=[self.clients["bob"][0]])
        self._certdb()

    def _crl(self, ca, revoke):
        d = self.p("cadb")
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "crlnumber"), "w") as f:
            f.write("1000\n")
        conf = self.p("ca.cnf")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\ncrlnumber=%s/crlnumber\n"
                    "default_md=sha256\ndefault_crl_days=30\n" % (d, d))
        for crt in revoke:
            self._ossl("ca", "-config", conf, "-cert", ca + ".crt", "-keyfile", ca + ".key", "-revoke", crt)
        self.crl = self.p("ca.crl.pem")
        self._ossl("ca", "-config", conf, "-cert", ca + ".crt", "-keyfile", ca + ".key", "-gencrl", "-out", self.crl)

    def _certdb(self):
        db = self.certdb
        for sub in ("certs", "keys", "cas", "crls"):
            os.makedirs(os.path.join(db, sub), exist_ok=True)
        passfile = self.p("pass.txt")
        with open(passfile, "w") as f:
            f.write(self.PASSPHRASE)
        lines = ["# Sealpost certdb made by the test harness"]
        for nick, name in (("Server-Cert", "server-rsa"), ("Server-Cert-EC", "server-ec"), ("Other-Cert", "other-rsa")):
            with open(self.p(name + ".crt")) as f:
                pem = f.read()
            with open(os.path.join(db, "certs", nick + ".pem"), "w") as f:
                f.write(pem)
            self._ossl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", self.p(name + ".key"),
                       "-passout", "file:" + passfile, "-out", os.path.join(db, "keys", nick + ".p8"))
            lines.append("cert\t%s\tcerts/%s.pem\tfile:keys/%s.p8" % (nick, nick, nick))
        with open(self.ca_crt) as f, open(os.path.join(db, "cas", "Test-CA.pem"), "w") as g:
            g.write(f.read())
        lines.append("ca\tTest CA\tcas/Test-CA.pem\tserver,client")
        with open(self.crl) as f, open(os.path.join(db, "crls", "Test-CA.pem"), "w") as g:
            g.write(f.read())
        with open(os.path.join(db, "index"), "w") as f:
            f.write("\n".join(lines) + "\n")
        os.unlink(passfile)
        fd = os.open(self.pinfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("%s:%s\n" % (INTERNAL_TOKEN, self.PASSPHRASE))
