#!/usr/bin/env python3
"""Sealpost's main job: create a demo instance in a directory and run it.

    instance.py [--builddir B] [--srcdir S] run|start|stop|status [DIR] [--recreate]

An instance holds a SoftHSM2 token (private SOFTHSM2_CONF) with the server
key, a certdb with the server certificate issued by a demo CA made for the
instance and a client certificate for a demo user, a users file with two demo
users, sealpost.conf with every built service on loopback high ports,
instance.env (shell-sourceable facts for scripts) and cheatsheet.json (the
commands printed at start, with what each must print, so CI can run them).

It runs what is built: tlsd (with keyd) and mailcore. Where a piece is not
built yet, it says so and leaves the corresponding port empty in
instance.env; it never pretends a service exists.
"""

import argparse
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

TOKEN_LABEL = "Sealpost Demo"
SERVER_NICK = "Server-Cert"
INTERNAL_TOKEN = "Internal (Software) Token"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DOMAIN = "example.com"
# The daemons' own system user. Not nobody: mailcore trusts whoever can
# connect to its PROXY v2 backend sockets (0660) to be tlsd, so the uid the
# daemons share must be theirs alone.
DAEMON_USER = "sealpost"
USERS = (("alice@" + DOMAIN, "alice-demo-pw"), ("bob@" + DOMAIN, "bob-demo-pw"))
PORT_NAMES = ("SMTP_PORT", "SUBMISSION_PORT", "SMTPS_PORT", "IMAP_PORT", "IMAPS_PORT",
              "POP_PORT", "POPS_PORT", "HTTPS_PORT")


def say(msg):
    sys.stdout.write("instance: %s\n" % msg)
    sys.stdout.flush()


def die(msg):
    sys.stderr.write("instance: error: %s\n" % msg)
    sys.exit(1)


def run(argv, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    r = subprocess.run([str(a) for a in argv], **kw)
    if r.returncode != 0:
        die("command failed (%d): %s\n%s" % (r.returncode, " ".join(map(str, argv)), r.stdout))
    return r.stdout


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def unreachable_parent(path, uid, gid):
    """The first ancestor of path that uid/gid cannot search, or None."""
    d = os.path.dirname(os.path.abspath(path))
    chain = []
    while True:
        chain.append(d)
        if d == "/":
            break
        d = os.path.dirname(d)
    for d in reversed(chain):
        st = os.stat(d)
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return d
    return None


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Instance:
    def __init__(self, builddir, srcdir, d):
        self.builddir = os.path.abspath(builddir)
        self.srcdir = os.path.abspath(srcdir)
        self.dir = os.path.abspath(d)
        self.conf_dir = os.path.join(self.dir, "conf")
        self.certdb = os.path.join(self.conf_dir, "certdb")
        self.pinfile = os.path.join(self.conf_dir, "sslpassword.conf")
        self.conf = os.path.join(self.conf_dir, "sealpost.conf")
        self.pki = os.path.join(self.dir, "pki")
        self.rundir = os.path.join(self.dir, "run")
        self.logdir = os.path.join(self.dir, "logs")
        self.piddir = os.path.join(self.dir, "pids")
        self.envfile = os.path.join(self.dir, "instance.env")
        self.softhsm_conf = os.path.join(self.dir, "softhsm", "softhsm2.conf")

    # ---- what is built ----
    def bin(self, name):
        p = os.path.join(self.builddir, "bin", name)
        return p if os.path.exists(p) else None

    def have(self, name):
        return self.bin(name) is not None

    # ---- creation ----
    def exists(self):
        return os.path.exists(self.envfile)

    def create(self):
        if not self.have("tlsd") or not self.have("keyd"):
            die("bin/tlsd and bin/keyd are not built in %s: run make first" % self.builddir)
        say("creating instance in %s" % self.dir)
        for d in (self.conf_dir, self.pki, self.rundir, self.logdir, self.piddir,
                  os.path.dirname(self.softhsm_conf)):
            os.makedirs(d, exist_ok=True)
        ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        env = {
            "HOST": "127.0.0.1",
            "CA_FILE": os.path.join(self.pki, "ca.crt"),
            "USER1": USERS[0][0], "PASS1": USERS[0][1],
            "USER2": USERS[1][0], "PASS2": USERS[1][1],
            "CLIENT_CERT": os.path.join(self.pki, "client.crt"),
            "CLIENT_KEY": os.path.join(self.pki, "client.key"),
            "CLIENT_CERT_USER": USERS[0][0],
            "TOKEN_LABEL": TOKEN_LABEL,
            "TOKEN_PIN": os.urandom(6).hex(),
            "SOFTHSM2_CONF": self.softhsm_conf,
            "PKCS11_MODULE": SOFTHSM_MODULE,
            "SERVER_KEY_LABEL": SERVER_NICK,
            "CERTDB": self.certdb,
            "CONF": self.conf,
            "TOKENS_CLI": self.bin("tokens") or "",
            "LOG_DIR": self.logdir,
        }
        self.env = env
        self._pki(env)
        key_in_token = self._server_key(env)
        services = self._services(ports)
        env.update({k: (str(ports[k]) if k in services else "") for k in PORT_NAMES})
        self._users()
        self._conf(env, services)
        self._write_env(env)
        self._cheatsheet(env)
        run_as = self._run_as()
        if run_as is not None and run_as[0] != "root":
            # The daemons drop to DAEMON_USER after binding: they must be
            # able to read their files and write the store. The operator
            # stays root.
            pw = pwd.getpwnam(run_as[0])
            for root, dirs, files in os.walk(self.dir):
                for n in dirs + files:
                    os.lchown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
            os.lchown(self.dir, pw.pw_uid, pw.pw_gid)
        say("server key: %s" % ("generated on PKCS#11 token '%s' (non-extractable)" % TOKEN_LABEL
                                if key_in_token else
                                "in the internal software token (PKCS#11 path not built yet)"))

    def _pki(self, env):
        p = lambda *n: os.path.join(self.pki, *n)  # noqa: E731
        ossl = lambda *a: run(["openssl"] + list(a))  # noqa: E731
        ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("ca.key"))
        ossl("req", "-x509", "-new", "-key", p("ca.key"), "-subj", "/O=Sealpost Demo/CN=Sealpost Demo CA",
             "-days", "825", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", p("ca.crt"))
        ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("client.key"))
        ossl("req", "-new", "-key", p("client.key"), "-subj",
             "/O=Sealpost Demo/CN=alice/emailAddress=%s" % USERS[0][0], "-out", p("client.csr"))
        with open(p("client.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\nsubjectAltName=email:%s\n" % USERS[0][0])
        ossl("x509", "-req", "-in", p("client.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
             "-CAcreateserial", "-days", "400", "-sha256", "-extfile", p("client.ext"), "-out", p("client.crt"))
        os.chmod(p("client.key"), 0o600)
        with open(p("server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def _sign_server_csr(self, csr, out):
        p = lambda *n: os.path.join(self.pki, *n)  # noqa: E731
        run(["openssl", "x509", "-req", "-in", csr, "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
             "-CAcreateserial", "-days", "400", "-sha256", "-extfile", p("server.ext"), "-out", out])

    def _server_key(self, env):
        """The server key: on the SoftHSM2 token through the tokens CLI when
        that is built, else an encrypted PKCS#8 file in the internal token.
        Returns True when the key is in the token."""
        passphrase = os.urandom(12).hex()
        with open(self.softhsm_conf, "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                    % os.path.join(os.path.dirname(self.softhsm_conf), "tokens"))
        os.makedirs(os.path.join(os.path.dirname(self.softhsm_conf), "tokens"), exist_ok=True)
        write_private(self.pinfile, "%s:%s\n%s:%s\n" % (INTERNAL_TOKEN, passphrase, TOKEN_LABEL, env["TOKEN_PIN"]))
        hsm_env = dict(os.environ, SOFTHSM2_CONF=self.softhsm_conf)
        run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
             "--so-pin", os.urandom(6).hex(), "--pin", env["TOKEN_PIN"]], env=hsm_env)
        tokens = self.bin("tokens")
        crt = os.path.join(self.pki, "server.crt")
        if tokens:
            common = ["-d", self.certdb, "-W", self.pinfile]
            run([tokens, "generate-certdb"] + common, env=hsm_env)
            # generate-certdb makes a self-signed Server-Cert in the internal
            # token; the instance's Server-Cert lives on the PKCS#11 token.
            run([tokens, "remove-cert"] + common + [SERVER_NICK], env=hsm_env)
            csr = os.path.join(self.pki, "server.csr")
            # SoftHSM2 is in p11-kit's registry, which the CLI reads; the
            # private SOFTHSM2_CONF selects this instance's token directory.
            run([tokens, "request-cert"] + common +
                ["--token", TOKEN_LABEL, "--name", "localhost", "--org", "Sealpost Demo",
                 "--san", "DNS:localhost,IP:127.0.0.1", "--key", "ecp256", "-F", "ascii", "-o", csr,
                 SERVER_NICK], env=hsm_env)
            self._sign_server_csr(csr, crt)
            run([tokens, "add-cert"] + common + [SERVER_NICK, crt], env=hsm_env)
            run([tokens, "add-cert"] + common + ["-C", "--trust", "server,client", "Sealpost Demo CA",
                                                 os.path.join(self.pki, "ca.crt")], env=hsm_env)
            return True
        # Internal token: the same layout the tokens CLI writes (certdb/certdb.h).
        key = os.path.join(self.pki, "server.key")
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        csr = os.path.join(self.pki, "server.csr")
        run(["openssl", "req", "-new", "-key", key, "-subj", "/O=Sealpost Demo/CN=localhost", "-out", csr])
        self._sign_server_csr(csr, crt)
        for sub in ("certs", "keys", "cas", "crls"):
            os.makedirs(os.path.join(self.certdb, sub), exist_ok=True)
        passfile = os.path.join(self.pki, "pass.tmp")
        write_private(passfile, passphrase)
        run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key, "-passout", "file:" + passfile,
             "-out", os.path.join(self.certdb, "keys", SERVER_NICK + ".p8")])
        os.unlink(passfile)
        os.unlink(key)
        shutil.copy(crt, os.path.join(self.certdb, "certs", SERVER_NICK + ".pem"))
        shutil.copy(os.path.join(self.pki, "ca.crt"), os.path.join(self.certdb, "cas", "Demo-CA.pem"))
        with open(os.path.join(self.certdb, "index"), "w") as f:
            f.write("cert\t%s\tcerts/%s.pem\tfile:keys/%s.p8\n" % (SERVER_NICK, SERVER_NICK, SERVER_NICK))
            f.write("ca\tSealpost Demo CA\tcas/Demo-CA.pem\tserver,client\n")
        env["PKCS11_MODULE"] = ""
        env["SERVER_KEY_LABEL"] = ""
        return False

    def _services(self, ports):
        """The port names served by what is built."""
        if not self.have("mailcore"):
            return set()  # nothing behind tlsd's ports
        return {"SMTP_PORT", "SUBMISSION_PORT", "SMTPS_PORT", "IMAP_PORT", "IMAPS_PORT", "POP_PORT",
                "POPS_PORT"}

    def _users(self):
        lines = []
        for addr, pw in USERS:
            h = run(["mkpasswd", "-m", "sha-512", pw]).strip()
            lines.append("%s:%s:quota=100m" % (addr, h))
        write_private(os.path.join(self.conf_dir, "users"), "\n".join(lines) + "\n")

    def _run_as(self):
        """(user, group) the daemons drop to. As root: DAEMON_USER (made as a
        system user if missing), when it can reach the instance directory
        through its parents; otherwise the daemons would fail to read their
        files, so the demo keeps root and says so (choose an INSTANCE under
        a directory others may traverse)."""
        if os.geteuid() != 0:
            return None
        if getattr(self, "_run_as_cache", None):
            return self._run_as_cache
        try:
            pw = pwd.getpwnam(DAEMON_USER)
        except KeyError:
            run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", DAEMON_USER])
            say("created the system user %s for the daemons" % DAEMON_USER)
            pw = pwd.getpwnam(DAEMON_USER)
        blocked = unreachable_parent(self.dir, pw.pw_uid, pw.pw_gid)
        if blocked is None:
            self._run_as_cache = (DAEMON_USER, DAEMON_USER)
        else:
            say("WARNING: user %s cannot traverse %s, so the daemons of this demo keep root; "
                "for unprivileged daemons use an instance directory others may traverse, "
                "e.g. make run INSTANCE=/var/tmp/sealpost-demo" % (DAEMON_USER, blocked))
            self._run_as_cache = ("root", "root")
        return self._run_as_cache

    def _conf(self, env, services):
        handoff = os.path.join(self.rundir, "handoff.sock")
        run_as = self._run_as()
        c = ["# Sealpost demo instance, made by scripts/instance.py"]
        if run_as:
            c += ["user = %s" % run_as[0], "group = %s" % run_as[1]]
        c += ["confdir = %s" % self.conf_dir,
             "rundir = %s" % self.rundir,
             "log.level = info",
             "tlsd.workers = 2",
             "tlsd.handoff_socket = %s" % handoff,
             "tlsd.pidfile = %s" % os.path.join(self.rundir, "tlsd.pid")]
        # implicit TLS in tlsd, relayed to mailcore's backend sockets
        for svc, port in (("smtp", "SMTPS_PORT"), ("imap", "IMAPS_PORT"), ("pop", "POPS_PORT")):
            if port in services:
                c += ["service.%s.sslport = %s" % (svc, env[port]),
                      "service.%s.listen = 127.0.0.1" % svc,
                      "service.%s.backend = %s" % (svc, os.path.join(self.rundir, svc + "-backend.sock")),
                      "service.%s.sslnicknames = %s" % (svc, SERVER_NICK),
                      "service.%s.sslclientauth = request" % svc]
        if self.have("mailcore"):
            c += ["service.smtp.port = %s" % env["SMTP_PORT"],
                  "service.submission.port = %s" % env["SUBMISSION_PORT"],
                  "service.imap.port = %s" % env["IMAP_PORT"],
                  "service.pop.port = %s" % env["POP_PORT"],
                  "mailcore.listenaddr = 127.0.0.1",
                  "mailcore.hostname = localhost",
                  "mailcore.domains = %s" % DOMAIN,
                  "mailcore.store = %s" % os.path.join(self.dir, "store"),
                  "mailcore.queue = %s" % os.path.join(self.dir, "queue"),
                  "mailcore.hold = %s" % os.path.join(self.dir, "hold"),
                  "mailcore.users = %s" % os.path.join(self.conf_dir, "users")]
            for d in ("store", "queue", "hold"):
                os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("\n".join(c) + "\n")

    def _write_env(self, env):
        lines = ["# Sealpost demo instance: source this file (. %s)" % self.envfile]
        for k in ("HOST",) + PORT_NAMES + ("CA_FILE", "USER1", "PASS1", "USER2", "PASS2", "CLIENT_CERT",
                                           "CLIENT_KEY", "CLIENT_CERT_USER", "TOKEN_LABEL", "TOKEN_PIN",
                                           "SOFTHSM2_CONF", "PKCS11_MODULE", "SERVER_KEY_LABEL", "CERTDB",
                                           "CONF", "TOKENS_CLI", "LOG_DIR"):
            lines.append("%s=%s" % (k, shlex.quote(env.get(k, ""))))
        write_private(self.envfile, "\n".join(lines) + "\n")

    def load_env(self):
        env = {}
        with open(self.envfile) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                k, v = line.split("=", 1)
                env[k] = shlex.split(v)[0] if v else ""
        return env

    # ---- the cheat sheet ----
    def _cheatsheet(self, env):
        """Commands that work as printed, each with a string its output must
        contain; written to cheatsheet.json for the CI test of the main job."""
        e = env
        sheet = []
        if e.get("SMTPS_PORT"):
            sheet.append({
                "what": "TLS handshake with the SMTPS port (tlsd; key in %s)" % (
                    "the token" if e.get("PKCS11_MODULE") else "the internal token"),
                "cmd": "openssl s_client -connect %s:%s -CAfile %s -verify_return_error -brief </dev/null"
                       % (e["HOST"], e["SMTPS_PORT"], e["CA_FILE"]),
                "expect": "Verification: OK"})
        if e.get("SUBMISSION_PORT"):
            sheet.append({
                "what": "send a mail over submission with STARTTLS and AUTH PLAIN (swaks)",
                "cmd": "swaks --server %s --port %s --tls --tls-verify --tls-ca-path %s --auth PLAIN "
                       "--auth-user %s --auth-password %s --from %s --to %s --header 'Subject: hello from swaks'"
                       % (e["HOST"], e["SUBMISSION_PORT"], e["CA_FILE"], e["USER1"], e["PASS1"],
                          e["USER1"], e["USER2"]),
                "expect": "250 2.0.0"})
        if e.get("SMTPS_PORT") and e.get("SMTP_PORT"):
            sheet.append({
                "what": "send a mail over SMTPS (implicit TLS through tlsd) with curl",
                "cmd": "printf 'Subject: hello from curl\\r\\n\\r\\nhi\\r\\n' | curl -sS --cacert %s "
                       "smtps://%s:%s --mail-from %s --mail-rcpt %s --user %s:%s -T - -w 'sent %%{response_code}\\n'"
                       % (e["CA_FILE"], e["HOST"], e["SMTPS_PORT"], e["USER1"], e["USER2"], e["USER1"], e["PASS1"]),
                "expect": "sent 250"})
        if e.get("IMAPS_PORT"):
            sheet.append({
                "what": "read the first message of %s over IMAPS (tlsd, then mailcore) with curl" % e["USER2"],
                "cmd": "curl -sS --cacert %s --user %s:%s 'imaps://%s:%s/INBOX;UID=1'"
                       % (e["CA_FILE"], e["USER2"], e["PASS2"], e["HOST"], e["IMAPS_PORT"]),
                "expect": "Subject: hello from swaks"})
            sheet.append({
                "what": "log in to IMAPS with the client certificate alone (PREAUTH as %s)" % e["CLIENT_CERT_USER"],
                "cmd": "python3 -c \"import imaplib,ssl; c=ssl.create_default_context(cafile='%s'); "
                       "c.load_cert_chain('%s','%s'); m=imaplib.IMAP4_SSL('%s',%s,ssl_context=c); "
                       "print(m.welcome.decode()); print(m.select('INBOX')); m.logout()\""
                       % (e["CA_FILE"], e["CLIENT_CERT"], e["CLIENT_KEY"], e["HOST"], e["IMAPS_PORT"]),
                "expect": "* PREAUTH"})
        if e.get("POP_PORT"):
            sheet.append({
                "what": "read the same message over POP3 with STLS (curl --ssl-reqd)",
                "cmd": "curl -sS --ssl-reqd --cacert %s --user %s:%s pop3://%s:%s/1"
                       % (e["CA_FILE"], e["USER2"], e["PASS2"], e["HOST"], e["POP_PORT"]),
                "expect": "Subject: hello from swaks"})
        with open(os.path.join(self.dir, "cheatsheet.json"), "w") as f:
            json.dump(sheet, f, indent=1)

    def print_cheatsheet(self):
        env = self.load_env()
        try:
            with open(os.path.join(self.dir, "cheatsheet.json")) as f:
                sheet = json.load(f)
        except OSError:
            sheet = []
        print("\nSealpost instance %s" % self.dir)
        print("  facts for scripts: . %s" % self.envfile)
        for k in PORT_NAMES:
            print("  %-16s %s" % (k, env.get(k) or "(not built yet)"))
        print("\nTry:")
        for item in sheet:
            print("  # %s\n  %s\n" % (item["what"], item["cmd"]))

    # ---- processes ----
    def procs(self):
        """(name, argv) of the daemons to run, in start order."""
        p = []
        if self.have("mailcore"):
            p.append(("mailcore", [self.bin("mailcore"), "-c", self.conf]))
        p.append(("tlsd", [self.bin("tlsd"), "-c", self.conf, "-f"]))
        return p

    def proc_env(self):
        env = self.load_env()
        return dict(os.environ, SOFTHSM2_CONF=env["SOFTHSM2_CONF"])

    def wait_ready(self, procs, timeout=30):
        env = self.load_env()
        ports = [env[k] for k in PORT_NAMES if env.get(k)]
        deadline = time.monotonic() + timeout
        while True:
            dead = [n for n, pr in procs if pr.poll() is not None]
            if dead:
                return "exited: %s (see %s)" % (", ".join(dead), self.logdir)
            if all(port_open(p) for p in ports):
                return None
            if time.monotonic() > deadline:
                return "ports not open after %ds: %s" % (timeout, ", ".join(p for p in ports if not port_open(p)))
            time.sleep(0.05)

    def start(self, foreground):
        for name in os.listdir(self.piddir):
            pid = self._read_pid(name)
            if pid and self._alive(pid):
                die("already running (%s pid %d); run stop first" % (name[:-4], pid))
        started = []
        env = self.proc_env()
        for name, argv in self.procs():
            if foreground:
                pr = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            else:
                log = open(os.path.join(self.logdir, name + ".log"), "ab")
                pr = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            with open(os.path.join(self.piddir, name + ".pid"), "w") as f:
                f.write("%d\n" % pr.pid)
            started.append((name, pr))
        err = self.wait_ready(started)
        if err:
            self.stop()
            die("did not start: " + err)
        self.print_cheatsheet()
        if not foreground:
            say("running in the background; logs in %s; stop with: make run-stop INSTANCE=%s"
                % (self.logdir, self.dir))
            return
        say("running in the foreground; Ctrl-C stops everything")
        stop = []
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        while not stop and all(pr.poll() is None for _, pr in started):
            signal.sigtimedwait([signal.SIGCHLD], 0.5) if hasattr(signal, "sigtimedwait") else time.sleep(0.5)
        for name, pr in started:
            if pr.poll() is not None and not stop:
                say("%s exited with status %s" % (name, pr.returncode))
        self.stop()

    def _read_pid(self, fname):
        try:
            with open(os.path.join(self.piddir, fname)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def stop(self):
        """SIGTERM each daemon's process group, wait until every process is
        gone (SIGKILL after 20 s), remove the pid files."""
        groups = []
        for fname in sorted(os.listdir(self.piddir)) if os.path.isdir(self.piddir) else []:
            pid = self._read_pid(fname)
            if pid:
                groups.append((fname, pid))
        for _, pid in groups:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        while any(self._group_alive(pid) for _, pid in groups) and time.monotonic() < deadline:
            time.sleep(0.05)
            for _, pid in groups:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        for fname, pid in groups:
            if self._group_alive(pid):
                say("%s did not stop in time: killing" % fname[:-4])
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.unlink(os.path.join(self.piddir, fname))
        say("stopped")

    @staticmethod
    def _group_alive(pgid):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    def status(self):
        if not self.exists():
            print("no instance in %s" % self.dir)
            return 1
        rc = 0
        for fname in sorted(os.listdir(self.piddir)):
            pid = self._read_pid(fname)
            alive = pid is not None and self._alive(pid)
            print("%-10s pid %-7s %s" % (fname[:-4], pid, "running" if alive else "NOT running"))
            rc |= 0 if alive else 1
        if not os.listdir(self.piddir):
            print("not running")
            rc = 1
        env = self.load_env()
        for k in PORT_NAMES:
            if env.get(k):
                print("%-16s %-6s %s" % (k, env[k], "accepting" if port_open(env[k]) else "closed"))
        return rc


def main():
    ap = argparse.ArgumentParser(description="Sealpost demo instance (the README's main job)")
    ap.add_argument("--builddir", default=".")
    ap.add_argument("--srcdir", default=".")
    ap.add_argument("action", choices=("run", "start", "stop", "status", "create"))
    ap.add_argument("dir", nargs="?", default="./run")
    ap.add_argument("--recreate", action="store_true", help="throw the instance away and make a new one")
    a = ap.parse_args()
    inst = Instance(a.builddir, a.srcdir, a.dir)
    if a.action == "stop":
        if os.path.isdir(inst.piddir):
            inst.stop()
        return 0
    if a.action == "status":
        return inst.status()
    if a.recreate and os.path.exists(inst.dir):
        if os.path.isdir(inst.piddir):
            inst.stop()
        shutil.rmtree(inst.dir)
    if not inst.exists():
        if os.path.exists(inst.dir) and os.listdir(inst.dir):
            die("%s exists and is not a complete instance: use --recreate" % inst.dir)
        try:
            inst.create()
        except BaseException:
            shutil.rmtree(inst.dir, ignore_errors=True)
            raise
    else:
        say("reusing instance in %s (--recreate makes a new one)" % inst.dir)
    if a.action == "create":
        return 0
    inst.start(foreground=(a.action == "run"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
