"""The PROXY v2 backend listener that tlsd relays implicit TLS to: the
header is read first and is the only source of TLS facts; AUTH EXTERNAL
with a verified client certificate mapped to a user; malformed headers and
health checks are closed without a greeting; a plain listener never claims
TLS. The header is built here by hand (haproxy proxy-protocol.txt 2.2)."""

import smtplib
import socket
import struct

import pytest

from mcfix import Mailcore, recv_reply

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def tlv(t, value):
    return struct.pack("!BH", t, len(value)) + value


def proxy_header(tls=True, verified=True, email=b"alice@example.com", local=False):
    if local:
        return SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    addrs = socket.inet_aton("198.51.100.7") + socket.inet_aton("192.0.2.25") + struct.pack("!HH", 40000, 465)
    tlvs = b""
    if tls:
        sub = tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_256_GCM_SHA384")
        client = 0x01
        if email is not None:
            sub += tlv(0xE4, email)
            client |= 0x02
        tlvs = tlv(0x20, bytes([client]) + struct.pack("!I", 0 if verified else 1) + sub)
    body = addrs + tlvs
    return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def mc(daemons, build, free_port, tmp_path):
    return Mailcore(daemons, build, free_port, tmp_path, backend=True).start()


def backend_conn(mc, header):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(mc.backend)
    s.sendall(header)
    return s


def test_backend_tls_facts_and_external(mc):
    s = backend_conn(mc, proxy_header())
    greeting, buf = recv_reply(s)
    assert greeting == b"220 mx.example.com ESMTP Sealpost\r\n"
    s.sendall(b"EHLO c.example\r\n")
    ehlo, buf = recv_reply(s, buf)
    assert b"250-AUTH PLAIN LOGIN EXTERNAL\r\n" in ehlo
    assert b"STARTTLS" not in ehlo  # already TLS
    s.sendall(b"MAIL FROM:<alice@example.com>\r\n")
    reply, buf = recv_reply(s, buf)
    assert reply == b"530 5.7.0 Authentication required\r\n"  # 465 is submission
    s.sendall(b"AUTH EXTERNAL =\r\n")
    reply, buf = recv_reply(s, buf)
    assert reply == b"235 2.7.0 Authentication successful\r\n"
    s.sendall(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    for _ in range(3):
        reply, buf = recv_reply(s, buf)
    assert reply.startswith(b"354 ")
    s.sendall(b"Subject: via backend\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    reply, buf = recv_reply(s, buf)
    assert reply.startswith(b"250 2.0.0 Ok")
    s.close()
    (m,) = mc.messages("bob").values()
    assert b"Received: from c.example ([198.51.100.7])" in m
    assert b"with ESMTPSA id" in m
    assert b"(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)" in m
    assert b"(authenticated user alice@example.com)" in m


def test_backend_unverified_cert_and_no_tls(mc):
    s = backend_conn(mc, proxy_header(verified=False))
    _, buf = recv_reply(s)
    s.sendall(b"EHLO c.example\r\n")
    ehlo, buf = recv_reply(s, buf)
    assert b"EXTERNAL" not in ehlo
    s.close()
    s = backend_conn(mc, proxy_header(tls=False))
    _, buf = recv_reply(s)
    s.sendall(b"EHLO c.example\r\nAUTH EXTERNAL =\r\n")
    ehlo, buf = recv_reply(s, buf)
    assert b"EXTERNAL" not in ehlo
    reply, buf = recv_reply(s, buf)
    assert reply.startswith(b"504 5.5.4 ")
    s.close()


def test_backend_garbage_and_local_closed(mc):
    for header in (b"EHLO not-a-proxy-header-at-all\r\n" + b"x" * 20, SIG + b"\x99\x11\x00\x00",
                   proxy_header(local=True)):
        s = backend_conn(mc, header)
        assert s.recv(100) == b""  # closed, no greeting
        s.close()
    # the daemon is still serving
    s = backend_conn(mc, proxy_header())
    assert recv_reply(s)[0].startswith(b"220 ")
    s.close()


def test_plain_listener_never_claims_tls(mc):
    # a PROXY header sent to port 25 is just a bad command line
    s = socket.create_connection(("127.0.0.1", mc.smtp_port), timeout=10)
    _, buf = recv_reply(s)
    s.sendall(proxy_header() + b"\r\nEHLO c.example\r\n")
    s.sendall(b"QUIT\r\n")
    data = buf
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b"EXTERNAL" not in data and b"235 " not in data
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as c:
        c.ehlo("c.example")
        assert not c.has_extn("auth") or "EXTERNAL" not in c.esmtp_features.get("auth", "")
        c.sendmail("x@remote.example", ["bob@example.com"], b"Subject: plain\r\n\r\nx\r\n")
    (m,) = mc.messages("bob").values()
    assert b"with ESMTP id" in m and b"(using " not in m
