"""Helpers for the queue tests: Postfix's smtp-sink as the next hop (from
/var/cache/sealpost-test/postfix, see scripts/install-deps.sh), a tiny
Python SMTP sink that offers STARTTLS, and a mailcore that relays for
127.0.0.1 through a smarthost."""

import email
import email.policy
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import weakref

import pytest

import spfix
from mcfix import Mailcore

POSTFIX = "/var/cache/sealpost-test/postfix"
SINK = os.path.join(POSTFIX, "usr/sbin/smtp-sink")
SOURCE = os.path.join(POSTFIX, "usr/sbin/smtp-source")
INTRANET = "INTERNAL_IP\n  $(127.0.0.0/8)  $Y\n  *  $N\n"


def need_postfix():
    if not os.access(SINK, os.X_OK):
        pytest.skip("smtp-sink not found in %s (run scripts/install-deps.sh as root)" % POSTFIX)


class SmtpSink:
    """Postfix's smtp-sink on a loopback port; each transaction is dumped to
    a file in self.dump (envelope as X-Mail-Args/X-Rcpt-Args lines)."""

    def __init__(self, daemons, free_port, d, extra=(), name="smtp-sink", port=None):
        need_postfix()
        self.port = port or free_port()
        # smtp-sink writes as nobody, and pytest's temp dirs are root's 0700:
        # the dumps go to a dir of their own, removed with this object
        self.dump = tempfile.mkdtemp(prefix="sp-%s-" % name)
        os.chmod(self.dump, 0o777)
        weakref.finalize(self, shutil.rmtree, self.dump, True)
        argv = [SINK, "-u", "nobody", "-d", os.path.join(self.dump, "%H%M%S.")] + list(extra) + \
               ["127.0.0.1:%d" % self.port, "64"]
        self.proc = daemons(name, argv, env={"LD_LIBRARY_PATH": os.path.join(POSTFIX, "usr/lib/postfix")})

    def start(self):
        self.proc.start(ready_port=self.port)
        return self

    def messages(self):
        out = []
        for n in sorted(os.listdir(self.dump)):
            with open(os.path.join(self.dump, n), "rb") as f:
                out.append(f.read())
        return out


class TlsSink:
    """A minimal SMTP sink with STARTTLS (Python ssl), one connection at a
    time in a thread. Records (tls_version, mail, rcpts, data) per message."""

    def __init__(self, certfile, keyfile, offer_starttls=True):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.offer = offer_starttls
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.cond = threading.Condition()
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def close(self):
        self.stop = True
        self.sock.close()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(10)
                self._session(c)
            except (OSError, ssl.SSLError):
                pass
            finally:
                c.close()

    def _session(self, c):
        f = c.makefile("rwb")
        tls = None

        def send(line):
            f.write(line.encode() + b"\r\n")
            f.flush()

        send("220 tls-sink ESMTP")
        mail, rcpts = None, []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.strip().decode(errors="replace")
            up = cmd.upper()
            if up.startswith("EHLO"):
                exts = ["250-tls-sink", "250-PIPELINING"]
                if self.offer and tls is None:
                    exts.append("250-STARTTLS")
                exts.append("250 8BITMIME")
                f.write(("\r\n".join(exts) + "\r\n").encode())
                f.flush()
            elif up == "STARTTLS" and self.offer and tls is None:
                send("220 2.0.0 go ahead")
                c = self.ctx.wrap_socket(c, server_side=True)
                tls = c.version()
                f = c.makefile("rwb")
            elif up.startswith("MAIL FROM:"):
                mail, rcpts = cmd[10:], []
                send("250 2.1.0 ok")
            elif up.startswith("RCPT TO:"):
                rcpts.append(cmd[8:])
                send("250 2.1.5 ok")
            elif up == "DATA":
                send("354 go")
                data = b""
                while True:
                    l2 = f.readline()
                    if not l2 or l2 == b".\r\n":
                        break
                    data += l2
                with self.cond:
                    self.received.append((tls, mail, rcpts, data))
                    self.cond.notify_all()
                send("250 2.0.0 queued")
            elif up == "QUIT":
                send("221 2.0.0 bye")
                return
            else:
                send("250 ok")


def relay_mailcore(daemons, build, free_port, d, smarthost_port, extra="", retry_max="1s"):
    conf = ("mailcore.queue.smarthost = 127.0.0.1:%d\n" % smarthost_port +
            "mailcore.queue.retry_min = 1s\nmailcore.queue.retry_max = %s\n" % retry_max + extra)
    return Mailcore(daemons, build, free_port, d, extra_conf=conf, mappings=INTRANET,
                    queue_delivery=True)


def queue_files(mc):
    d = os.path.join(mc.queue, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def spqueue(build, mc, *args):
    return spfix.run([build.bin("spqueue"), "-c", mc.conf] + list(args))


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)
