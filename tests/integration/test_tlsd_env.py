"""Shared setup for tlsd's integration tests (imported by test_tlsd_*.py):
a tlsd with its keyd and workers, and sp_test_smtpd as both the backend of
the implicit-TLS service (PROXY v2) and the STARTTLS server that hands its
clients to tlsd. Clients: openssl s_client, Python ssl, curl."""

import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

import spfix


class Tlsd:
    def __init__(self, daemons, tmp_path, pki, free_port, workers=2, extra="",
                 clientauth="request", copy_certdb=False):
        self.daemons = daemons
        self.tmp = tmp_path
        self.pki = pki
        self.workers = workers
        self.port = free_port()          # implicit TLS (service smtp, "smtps")
        self.smtp_port = free_port()     # plain SMTP with STARTTLS (sp_test_smtpd)
        self.backend_port = free_port()  # sp_test_smtpd's PROXY v2 port
        self.handoff = str(tmp_path / "handoff.sock")
        self.pidfile = str(tmp_path / "tlsd.pid")
        if copy_certdb:
            self.confdir = str(tmp_path / "conf")
            os.makedirs(self.confdir)
            shutil.copytree(pki.certdb, os.path.join(self.confdir, "certdb"))
            shutil.copy2(pki.pinfile, os.path.join(self.confdir, "sslpassword.conf"))
            os.chmod(os.path.join(self.confdir, "sslpassword.conf"), 0o600)
        else:
            self.confdir = pki.dir
        self.conf = str(tmp_path / "sealpost.conf")
        self.write_conf(extra, clientauth)
        self.tlsd = None
        self.smtpd = None

    def conf_text(self, extra="", clientauth="request", nicknames="Server-Cert, Server-Cert-EC, Other-Cert"):
        return ("confdir = %s\nuser = root\ngroup = root\n"
                "tlsd.workers = %d\ntlsd.handoff_socket = %s\ntlsd.pidfile = %s\n"
                "service.smtp.sslport = %d\nservice.smtp.listen = 127.0.0.1\n"
                "service.smtp.backend = 127.0.0.1:%d\n"
                "service.smtp.sslnicknames = %s\n"
                "service.smtp.sslclientauth = %s\n%s\n"
                % (self.confdir, self.workers, self.handoff, self.pidfile, self.port,
                   self.backend_port, nicknames, clientauth, extra))

    def write_conf(self, extra="", clientauth="request", **kw):
        with open(self.conf, "w") as f:
            f.write(self.conf_text(extra, clientauth, **kw))

    def start(self, backend=True):
        if backend:
            self.smtpd = self.daemons("smtpd", [spfix.bin_path("sp_test_smtpd"), "-p", self.smtp_port,
                                                "-H", self.handoff, "-P", self.backend_port])
            self.smtpd.start(ready_port=[self.smtp_port, self.backend_port])
        self.tlsd = self.daemons("tlsd", [spfix.bin_path("tlsd"), "-c", self.conf, "-f"])
        self.tlsd.start(ready_port=self.port)
        self.tlsd.wait_log("event=worker_start", count=self.workers)
        return self

    def log(self):
        return self.tlsd.log()

    def pids(self, proc):
        """pids of children the master started, by its child_start lines."""
        return [int(p) for p in re.findall(r"event=child_start proc=%s (?:index=\d+ )?pid=(\d+)" % proc, self.log())]

    # ---- clients ----
    def ctx(self, cert=None, version=None):
        c = ssl.create_default_context(cafile=self.pki.ca_crt)
        if cert:
            c.load_cert_chain(*self.pki.clients[cert])
        if version == "1.2":
            c.maximum_version = ssl.TLSVersion.TLSv1_2
        elif version == "1.3":
            c.minimum_version = ssl.TLSVersion.TLSv1_3
        return c

    def connect(self, sni="localhost", cert=None, version=None, timeout=10):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s = self.ctx(cert, version).wrap_socket(raw, server_hostname=sni)
        f = s.makefile("rb")
        greeting = f.readline()
        assert greeting.startswith(b"220 "), greeting
        return s, f

    def facts(self, **kw):
        s, f = self.connect(**kw)
        try:
            s.sendall(b"FACTS\r\n")
            return read_facts(f)
        finally:
            s.close()


def read_facts(f):
    out = {}
    while True:
        line = f.readline().decode()
        assert line.startswith("250"), line
        if line.startswith("250 end"):
            return out
        k, _, v = line[4:].rstrip("\r\n").partition("=")
        out[k] = v


def s_client(port, *args, data=b"QUIT\r\n", timeout=20):
    """openssl s_client; stdin is data then EOF (-ign_eof keeps the session
    until the server closes)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof"] + list(args)
    r = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace")


@pytest.fixture
def tlsd_factory(daemons, tmp_path, pki, free_port):
    def make(**kw):
        return Tlsd(daemons, tmp_path, pki, free_port, **kw)
    return make


@pytest.fixture
def tlsd(tlsd_factory):
    return tlsd_factory().start()
