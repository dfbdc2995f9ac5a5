"""STARTTLS through tlsd's handoff socket: sp_test_smtpd answers STARTTLS,
throws away what followed it, hands the client fd to tlsd (common/handoff.c)
and resumes SMTP on the plaintext end. And a handoff socket that gets
garbage: every malformed request is refused and logged, and tlsd goes on."""

import os
import smtplib
import socket
import ssl
import struct

from test_tlsd_env import s_client, tlsd, tlsd_factory  # noqa: F401 (fixtures)

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def test_starttls_s_client(tlsd):
    rc, out = s_client(tlsd.smtp_port, "-starttls", "smtp", "-CAfile", tlsd.pki.ca_crt,
                       "-verify_return_error", "-servername", "mail.example.com",
                       data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert "tls=TLSv1.3" in out and "sni=mail.example.com" in out
    assert "221 2.0.0 bye" in out
    tlsd.smtpd.wait_log("handoff ok")


def test_starttls_smtplib_with_client_cert(tlsd):
    with smtplib.SMTP("127.0.0.1", tlsd.smtp_port, timeout=10) as smtp:
        smtp.ehlo("client.example.com")
        assert smtp.has_extn("starttls")
        smtp.starttls(context=tlsd.ctx(cert="alice"))
        code, resp = smtp.ehlo("client.example.com")
        assert code == 250
        assert b"tls=TLSv1.3" in resp and b"cn=alice verify=0" in resp
        assert not smtp.has_extn("starttls")
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")


def test_starttls_tls12_and_ecdsa(tlsd):
    rc, out = s_client(tlsd.smtp_port, "-starttls", "smtp", "-tls1_2", "-sigalgs", "ECDSA+SHA256",
                       "-CAfile", tlsd.pki.ca_crt, "-verify_return_error", data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0, out
    assert "tls=TLSv1.2 cipher=ECDHE-ECDSA-" in out and "key=EC256" in out


def test_command_injected_after_starttls_is_not_executed(tlsd):
    """RFC 3207 4.2: bytes pipelined after STARTTLS are discarded."""
    raw = socket.create_connection(("127.0.0.1", tlsd.smtp_port), timeout=10)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220")
    raw.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
    assert f.readline().startswith(b"220")
    s = tlsd.ctx().wrap_socket(raw, server_hostname="localhost")
    sf = s.makefile("rb")
    s.sendall(b"MAIL FROM:<after@example.com>\r\n")
    # the session starts over after TLS: MAIL before EHLO is refused, and
    # nothing answers the injected command
    line = sf.readline()
    assert line.startswith(b"503"), line
    s.sendall(b"QUIT\r\n")
    assert sf.readline().startswith(b"221")
    s.close()
    tlsd.smtpd.wait_log("discarded")


def test_starttls_garbage_instead_of_tls_fails_cleanly(tlsd):
    raw = socket.create_connection(("127.0.0.1", tlsd.smtp_port), timeout=10)
    f = raw.makefile("rb")
    f.readline()
    raw.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220")
    raw.sendall(b"this is not a ClientHello\r\n" * 4)
    try:
        data = raw.recv(100)  # tlsd refused it; the session ends (an alert, then EOF)
        while data:
            data = raw.recv(100)
    except ConnectionResetError:
        pass  # unread garbage makes the close a reset
    raw.close()
    tlsd.smtpd.wait_log("handoff refused by tlsd")
    tlsd.tlsd.wait_log("event=handshake_failed")


# ---- the handoff socket itself ----

def pp2_v4(src, dst):
    body = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack(">HH", src[1], dst[1])
    return PP2_SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body


def request(service, hdr, version=1, typ=1):
    body = bytes([version, typ]) + struct.pack(">I", len(service)) + service + struct.pack(">I", len(hdr)) + hdr
    return struct.pack(">I", len(body)) + body


def handoff_raw(tlsd, payload, fds=()):
    """Sends payload (+ fds) to the handoff socket; returns what comes back
    before tlsd closes it."""
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(10)
    u.connect(tlsd.handoff)
    if payload or fds:
        socket.send_fds(u, [payload or b"\0"], list(fds))
    u.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        try:
            msg, rfds, _, _ = socket.recv_fds(u, 65536, 4)
        except ConnectionResetError:
            break
        for fd in rfds:
            os.close(fd)
        if not msg:
            break
        got += msg
    u.close()
    return got


def tcp_pair(port):
    """A connected TCP pair: (client side, server side of our own listener)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    c = socket.create_connection(lst.getsockname())
    s, _ = lst.accept()
    lst.close()
    return c, s


def test_malformed_handoff_requests_are_refused(tlsd):
    workers_before = tlsd.pids("worker")
    c, s = tcp_pair(tlsd.port)
    good_hdr = pp2_v4(s.getpeername(), s.getsockname())
    r, w = os.pipe()
    cases = [
        ("garbage", b"\xff" * 64, ()),
        ("oversized length", struct.pack(">I", 0x7fffffff) + b"x" * 16, ()),
        ("no fd", request(b"smtp", good_hdr), ()),
        ("a pipe, not a socket", request(b"smtp", good_hdr), (r,)),
        ("two fds", request(b"smtp", good_hdr), (s.fileno(), r)),
        ("unknown service", request(b"nosuch", good_hdr), (s.fileno(),)),
        ("bad service name", request(b"SMTP\n", good_hdr), (s.fileno(),)),
        ("wrong version", request(b"smtp", good_hdr, version=9), (s.fileno(),)),
        ("reply type", request(b"smtp", good_hdr, typ=2), (s.fileno(),)),
        ("addresses not the socket's", request(b"smtp", pp2_v4(("192.0.2.1", 1), ("192.0.2.2", 25))),
         (s.fileno(),)),
        ("truncated frame", request(b"smtp", good_hdr)[:-3], (s.fileno(),)),
        ("trailing bytes", request(b"smtp", good_hdr) + b"junk", (s.fileno(),)),
        ("empty", b"", ()),
    ]
    for name, payload, fds in cases:
        got = handoff_raw(tlsd, payload, fds)
        # either an ERROR reply (version 1, type 3) or a plain close
        assert got == b"" or got[4:6] == b"\x01\x03", (name, got)
    os.close(r)
    os.close(w)
    c.close()
    s.close()
    tlsd.tlsd.wait_log("event=handoff_refused", count=10)
    # nothing crashed: same workers, and a real STARTTLS still works
    assert tlsd.pids("worker") == workers_before
    assert "event=child_exit" not in tlsd.log()
    rc, out = s_client(tlsd.smtp_port, "-starttls", "smtp", data=b"EHLO x\r\nQUIT\r\n")
    assert rc == 0 and "tls=TLSv1.3" in out, out


def test_handoff_of_a_valid_request_over_raw_socket(tlsd):
    """The wire format of common/handoff.h, spoken by hand: OK carries the
    facts and a socket."""
    c, s = tcp_pair(tlsd.port)
    hdr = pp2_v4(s.getpeername(), s.getsockname())
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(10)
    u.connect(tlsd.handoff)
    socket.send_fds(u, [request(b"smtp", hdr)], [s.fileno()])
    s.close()
    tls = tlsd.ctx().wrap_socket(c, server_hostname="localhost", do_handshake_on_connect=False)
    tls.do_handshake()
    msg, fds, _, _ = socket.recv_fds(u, 65536, 2)
    assert msg[4:6] == b"\x01\x02" and len(fds) == 1
    plain = socket.socket(fileno=fds[0])
    plain.settimeout(10)  # it comes non-blocking, for event loops
    tls.sendall(b"hello plaintext\n")
    assert plain.recv(100) == b"hello plaintext\n"
    plain.sendall(b"and back\n")
    assert tls.recv(100) == b"and back\n"
    plain.close()
    assert tls.recv(100) == b""  # backend EOF became close_notify
    tls.close()
    u.close()
