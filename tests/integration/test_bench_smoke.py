"""bench smoke test: bin/hsbench runs for about two seconds against real TLS
servers (openssl s_server; a small STARTTLS SMTP server; tlsd with its keyd)
and writes a well-formed JSON report with a non-zero handshake count. No
speed is asserted anywhere: benchmarks report, tests do not judge them."""

import json
import socket
import ssl
import subprocess
import threading

import pytest

import spfix
from test_tlsd_env import tlsd, tlsd_factory  # noqa: F401 (fixtures)

RUN_S = "2"


def hsbench(tmp_path, target, *args, name="hsbench.json", timeout=60):
    """Runs hsbench with a JSON report; returns (CompletedProcess, report)."""
    out = tmp_path / name
    argv = [spfix.bin_path("hsbench"), "-t", RUN_S, "--json", str(out)] + [str(a) for a in args] + [target]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    report = None
    if out.exists():
        with open(out) as f:
            report = json.load(f)   # raises if not well formed
    return r, report


def check_report(r, report, starttls="none"):
    assert report is not None, r.stdout
    assert report["tool"] == "hsbench" and report["format"] == 1
    assert report["starttls"] == starttls
    assert report["handshakes"] > 0, r.stdout
    assert report["handshakes"] == report["full_handshakes"] + report["resumed_handshakes"]
    assert report["handshakes_per_s"] > 0
    assert report["wall_s"] > 0
    lat = report["latency_ms"]
    for kind in ("total", "tls"):
        assert lat[kind]["count"] > 0
        assert 0 <= lat[kind]["p50"] <= lat[kind]["p90"] <= lat[kind]["p99"] <= lat[kind]["max"]
    assert isinstance(report["failures"]["by_reason"], dict)
    assert report["failures"]["total"] == sum(report["failures"]["by_reason"].values())
    cpu = report["cpu"]
    assert cpu["total_s"] >= 0 and cpu["utilisation"] >= 0
    assert isinstance(cpu["generator_bound"], bool)
    assert "handshakes/s" in r.stdout   # the human table


@pytest.fixture
def s_server(daemons, pki, free_port):
    """openssl s_server with the test PKI's RSA and ECDSA server certificates.
    -www: it answers a GET and does not read its stdin."""
    port = free_port()
    d = daemons("s_server", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                             "-cert", pki.server_rsa, "-key", pki.p("server-rsa.key"),
                             "-dcert", pki.server_ec, "-dkey", pki.p("server-ec.key"),
                             "-www", "-quiet"])
    d.start(ready_port=port)
    d.port = port
    return d


def test_hsbench_full_handshakes_s_server(s_server, pki, tmp_path):
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % s_server.port, "-c", "4", "--cafile", pki.ca_crt,
                     "--sni", "localhost", "--tls1.3", "--sigalgs", "ecdsa_secp256r1_sha256")
    assert r.returncode == 0, r.stdout
    check_report(r, rep)
    assert rep["resumed_handshakes"] == 0
    assert "unexpected_reuse" not in rep["failures"]["by_reason"]
    assert rep["negotiated"]["version"] == "TLSv1.3"
    assert rep["negotiated"]["server_key"] == "EC-256"


def test_hsbench_rsa_tls12_request_s_server(s_server, pki, tmp_path):
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % s_server.port, "-c", "2", "--cafile", pki.ca_crt,
                     "--tls1.2", "--sigalgs", "rsa_pss_rsae_sha256",
                     "--request", "GET / HTTP/1.0\\r\\n\\r\\n", "--expect-bytes", "10")
    assert r.returncode == 0, r.stdout
    check_report(r, rep)
    assert rep["negotiated"]["version"] == "TLSv1.2"
    assert rep["negotiated"]["server_key"] == "RSA-2048"


def test_hsbench_resumption_s_server(s_server, pki, tmp_path):
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % s_server.port, "-c", "2", "--cafile", pki.ca_crt,
                     "--resume", "tickets")
    assert r.returncode == 0, r.stdout
    check_report(r, rep)
    assert rep["resume"] == "tickets"
    assert rep["resumed_handshakes"] > 0
    assert rep["latency_ms"]["measured"] == "resumed"


def test_hsbench_failures_by_reason(s_server, pki, tmp_path, free_port):
    # a CA that did not sign the server: every handshake fails verification
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % s_server.port, "-c", "1", "-n", "3",
                     "--cafile", pki.p("badca.crt"), name="badca.json")
    assert r.returncode == 3, r.stdout   # no handshake succeeded
    assert rep["handshakes"] == 0 and rep["failures"]["total"] == 3
    (reason,) = rep["failures"]["by_reason"].keys()
    assert reason.startswith("handshake_error: certificate verify failed"), reason
    # nothing listens: connect refused, and the run still ends on time
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % free_port(), "-c", "1", "-n", "2", "--no-verify",
                     name="refused.json")
    assert rep["failures"]["by_reason"] == {"connect_refused": 2}, rep


# Plaintext dialogues before TLS: the greeting, then (expected command,
# reply) pairs; the last reply is the go-ahead (or a refusal).
DIALOGUES = {
    "smtp": (b"220 smoke ESMTP\r\n",
             [(b"EHLO", b"250-smoke\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
              (b"STARTTLS", b"220 2.0.0 go ahead\r\n")]),
    "imap": (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] smoke ready\r\n",
             [(b"a1 CAPABILITY", b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n"),
              (b"a2 STARTTLS", b"a2 OK begin TLS now\r\n")]),
    "pop": (b"+OK smoke ready\r\n",
            [(b"CAPA", b"+OK capabilities\r\nUSER\r\nSTLS\r\n.\r\n"),
             (b"STLS", b"+OK begin TLS\r\n")]),
    "smtp-refused": (b"220 smoke ESMTP\r\n",
                     [(b"EHLO", b"250 smoke\r\n"),
                      (b"STARTTLS", b"454 4.7.0 TLS not available\r\n")]),
}


class StarttlsServer:
    """A small STARTTLS server on Python's ssl speaking one of DIALOGUES
    (RFC 3207, RFC 3501 6.2.1, RFC 2595 4): a thread per connection, daemon
    threads, stopped by closing the listener."""

    def __init__(self, pki, dialogue):
        self.greeting, self.steps = DIALOGUES[dialogue]
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(pki.server_ec, pki.p("server-ec.key"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        try:
            c.settimeout(5)
            f = c.makefile("rb")
            c.sendall(self.greeting)
            for expect, reply in self.steps:
                if not f.readline().upper().startswith(expect.upper()):
                    return
                c.sendall(reply)
            if not self.steps[-1][1][:1] in (b"2", b"a", b"+"):
                return   # refused: hsbench is expected to give up
            t = self.ctx.wrap_socket(c, server_side=True)
            self.handshakes += 1
            try:
                t.unwrap()
            except (OSError, ssl.SSLError, ValueError):
                pass  # ValueError: the client closed first and the SSL object is gone
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("proto", ["smtp", "imap", "pop"])
def test_hsbench_starttls(pki, tmp_path, proto):
    srv = StarttlsServer(pki, proto)
    try:
        r, rep = hsbench(tmp_path, "127.0.0.1:%d" % srv.port, "-c", "2", "--starttls", proto,
                         "--cafile", pki.ca_crt, "--sni", "localhost")
    finally:
        srv.close()
    assert r.returncode == 0, r.stdout
    check_report(r, rep, starttls=proto)
    assert srv.handshakes > 0


def test_hsbench_starttls_refused(pki, tmp_path):
    srv = StarttlsServer(pki, "smtp-refused")
    try:
        r, rep = hsbench(tmp_path, "127.0.0.1:%d" % srv.port, "-c", "1", "-n", "3", "--starttls", "smtp",
                         "--no-verify")
    finally:
        srv.close()
    assert r.returncode == 3, r.stdout
    assert rep["failures"]["by_reason"] == {"starttls_refused: 454": 3}, rep


def test_hsbench_bounded_by_count(s_server, pki, tmp_path):
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % s_server.port, "-c", "3", "-n", "10", "--no-verify")
    assert r.returncode == 0, r.stdout
    assert rep["attempts"] == 10
    assert rep["handshakes"] + rep["failures"]["total"] == 10


def tlsd_built():
    try:
        spfix.bin_path("tlsd")
        spfix.bin_path("keyd")
        spfix.bin_path("sp_test_smtpd")
        return True
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not tlsd_built(), reason="tlsd, keyd or sp_test_smtpd not built")
def test_hsbench_against_tlsd(tlsd, tmp_path):
    """Implicit TLS through tlsd (key in keyd, software), then STARTTLS SMTP
    through sp_test_smtpd's handoff to tlsd."""
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % tlsd.port, "-c", "4", "--cafile", tlsd.pki.ca_crt,
                     "--sni", "localhost", "--tls1.3", name="tlsd.json")
    assert r.returncode == 0, r.stdout + tlsd.log()
    check_report(r, rep)
    r, rep = hsbench(tmp_path, "127.0.0.1:%d" % tlsd.smtp_port, "-c", "2", "--starttls", "smtp",
                     "--cafile", tlsd.pki.ca_crt, "--sni", "localhost", name="tlsd-starttls.json")
    assert r.returncode == 0, r.stdout + tlsd.log()
    check_report(r, rep, starttls="smtp")
