"""tlsd implicit TLS: handshakes with real clients, certificate choice (SNI,
RSA or ECDSA by the client's signature algorithms), client certificates
against the certdb's CA and CRL, and the PROXY v2 facts the backend gets."""

import os
import socket
import ssl
import subprocess

from test_tlsd_env import s_client, tlsd, tlsd_factory  # noqa: F401 (fixtures)


def test_tls13_python_facts_reach_backend(tlsd):
    raw = socket.create_connection(("127.0.0.1", tlsd.port), timeout=10)
    s = tlsd.ctx(cert="alice").wrap_socket(raw, server_hostname="mail.example.com")
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"FACTS\r\n")
    from test_tlsd_env import read_facts
    facts = read_facts(f)
    local = s.getsockname()
    s.close()
    assert facts["tls"] == "yes"
    assert facts["version"] == "TLSv1.3"
    assert facts["sni"] == "mail.example.com"
    assert facts["cn"] == "alice"
    assert facts["email"] == "alice@example.com"
    assert facts["verify"] == "0"
    assert int(facts["client"]) & 0x3 == 0x3  # SSL + certificate on this connection
    assert "CN=alice" in facts["subject"] and "Sealpost Test CA" in facts["issuer"]
    assert len(facts["sha256"]) == 64 and facts["serial"]
    assert facts["src"] == "%s:%d" % local
    assert facts["dst"] == "127.0.0.1:%d" % tlsd.port


def test_tls12_s_client(tlsd):
    rc, out = s_client(tlsd.port, "-tls1_2", "-CAfile", tlsd.pki.ca_crt, "-verify_return_error",
                       data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert "tls=TLSv1.2 cipher=ECDHE-" in out
    assert "221 2.0.0 bye" in out


def test_tls11_refused(tlsd):
    rc, out = s_client(tlsd.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert rc != 0
    assert "221" not in out


def test_rsa_or_ecdsa_by_client_sigalgs(tlsd):
    for flags, key in ((["-tls1_2", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"], "RSA2048"),
                       (["-tls1_2", "-sigalgs", "ECDSA+SHA256"], "EC256"),
                       (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "RSA2048"),
                       (["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "EC256")):
        rc, out = s_client(tlsd.port, *flags, "-CAfile", tlsd.pki.ca_crt, "-verify_return_error",
                           data=b"EHLO x\r\nQUIT\r\n")
        assert rc == 0, out
        assert "key=%s" % key in out, (flags, out)


def test_sni_picks_the_named_certificate(tlsd):
    rc, out = s_client(tlsd.port, "-servername", "other.example.com", "-CAfile", tlsd.pki.ca_crt,
                       "-verify_return_error", "-verify_hostname", "other.example.com",
                       data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert "CN = other.example.com" in out and "sni=other.example.com" in out
    # an unknown name gets the default certificate (the first nickname's names)
    rc, out = s_client(tlsd.port, "-servername", "unknown.example.net", data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert "CN = localhost" in out


def test_client_certificates_valid_revoked_untrusted(tlsd):
    assert tlsd.facts(cert="alice")["verify"] == "0"
    bob = tlsd.facts(cert="bob")
    assert bob["cn"] == "bob" and bob["verify"] == "23"          # X509_V_ERR_CERT_REVOKED
    mallory = tlsd.facts(cert="mallory")
    assert mallory["cn"] == "mallory" and mallory["verify"] == "20"  # unable to get local issuer
    none = tlsd.facts()
    assert none["client"] == "1" and none["cn"] == ""


def test_clientauth_require_refuses_bad_certificates(tlsd_factory):
    t = tlsd_factory(clientauth="require").start()
    assert t.facts(cert="alice")["verify"] == "0"
    for who in ("bob", "mallory", None):
        args = ["-CAfile", t.pki.ca_crt]
        if who:
            args += ["-cert", t.pki.clients[who][0], "-key", t.pki.clients[who][1]]
        rc, out = s_client(t.port, *args, data=b"FACTS\r\nQUIT\r\n")
        assert "250 end" not in out, (who, out)
    t.tlsd.wait_log("event=handshake_failed", count=3)


def test_curl_smtps(tlsd, tmp_path):
    msg = tmp_path / "msg.txt"
    msg.write_text("Subject: hi\r\n\r\nhello through tlsd\r\n")
    r = subprocess.run(["curl", "-sS", "--cacert", tlsd.pki.ca_crt, "--resolve",
                        "mail.example.com:%d:127.0.0.1" % tlsd.port,
                        "smtps://mail.example.com:%d" % tlsd.port, "--mail-from", "a@example.com",
                        "--mail-rcpt", "b@example.com", "-T", str(msg)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 0, r.stdout
    tlsd.tlsd.wait_log('sni="mail.example.com"')


def test_session_resumption_with_tickets(tlsd):
    ctx = tlsd.ctx(version="1.2")
    sessions = []
    for _ in range(2):
        raw = socket.create_connection(("127.0.0.1", tlsd.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=sessions[-1] if sessions else None)
        s.makefile("rb").readline()
        sessions.append(s.session)
        reused = s.session_reused
        s.close()
    assert reused


def test_half_close_both_ways(tlsd):
    """Client close_notify -> backend sees EOF (it answers "221 eof" and
    closes) -> tlsd delivers that, then close_notify."""
    raw = socket.create_connection(("127.0.0.1", tlsd.port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tlsd.ctx().wrap_bio(inc, out, server_hostname="localhost")

    def flush():
        data = out.read()
        if data:
            raw.sendall(data)

    def pump_read():
        data = raw.recv(65536)
        if not data:
            inc.write_eof()
        else:
            inc.write(data)
        return data

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            pump_read()
    flush()
    obj.write(b"ECHO half\r\n")
    try:
        obj.unwrap()  # our close_notify; the peer's comes later
    except ssl.SSLWantReadError:
        pass
    flush()
    got = b""
    while True:
        try:
            chunk = obj.read(65536)
            if not chunk:
                break
            got += chunk
        except ssl.SSLWantReadError:
            if not pump_read():
                break
        except ssl.SSLZeroReturnError:
            break
    raw.close()
    assert b"250 half" in got
    assert got.endswith(b"221 eof\r\n")


def test_large_transfer_through_bounded_buffers(tlsd):
    s, f = tlsd.connect()
    n = 3 * 1024 * 1024
    s.sendall(b"BIG %d\r\n" % n)
    got = 0
    while got < n:
        chunk = f.read(min(65536, n - got))
        assert chunk and chunk.count(b"x") == len(chunk)
        got += len(chunk)
    assert f.readline() == b"\r\n"
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221")
    s.close()


def test_backend_down_clean_close(tlsd_factory):
    t = tlsd_factory()
    t.start(backend=False)  # nothing listens on the backend port
    s, f = None, None
    raw = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    s = t.ctx().wrap_socket(raw, server_hostname="localhost")
    data = s.recv(100)  # a clean close: close_notify, not a reset
    assert data == b""
    s.close()
    t.tlsd.wait_log("event=backend_down")
    # the connection's close line comes after the warning, and may come
    # a little later than the client saw the close_notify
    t.tlsd.wait_log("reason=backend_down")
    assert os.path.exists(t.pidfile)
