"""mailcore with the real tlsd: STARTTLS handed over through tlsd's handoff
socket (RFC 3207 reset, command injection discarded, AUTH EXTERNAL with a
verified client certificate), and implicit TLS (465) relayed by tlsd to
mailcore's PROXY v2 backend. mailcore reads tlsd.handoff_socket; the two
daemons get separate config files only because the fixtures write them."""

import smtplib
import socket

import pytest

from mcfix import Mailcore, PASSWORD
from test_tlsd_env import tlsd_factory  # noqa: F401 (fixture)

import spfix


@pytest.fixture
def pair(daemons, build, free_port, tmp_path, tlsd_factory):  # noqa: F811
    t = tlsd_factory()
    mcdir = tmp_path / "mailcore"
    mcdir.mkdir()
    mc = Mailcore(daemons, build, free_port, mcdir,
                  extra_conf="tlsd.handoff_socket = %s\nservice.smtp.backend = 127.0.0.1:%d\n"
                             % (t.handoff, t.backend_port))
    try:
        spfix.bin_path("tlsd")
        spfix.bin_path("keyd")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    mc.start()
    t.start(backend=False)
    return t, mc


def test_starttls_then_external_and_delivery(pair):
    t, mc = pair
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        s.starttls(context=t.ctx(cert="alice"))
        code, ehlo = s.ehlo("client.example")
        assert code == 250 and not s.has_extn("starttls")
        assert "EXTERNAL" in s.esmtp_features.get("auth", "")
        code, _ = s.docmd("AUTH", "EXTERNAL =")
        assert code == 235
        s.sendmail("alice@example.com", ["bob@example.com"], b"Subject: tls\r\n\r\nsecret\r\n")
    (m,) = mc.messages("bob").values()
    assert b"with ESMTPSA id" in m and b"(using TLSv1.3 with cipher TLS_" in m


def test_starttls_injection_discarded(pair):
    t, mc = pair
    raw = socket.create_connection(("127.0.0.1", mc.smtp_port), timeout=20)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220")
    raw.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
    assert f.readline().startswith(b"220 2.0.0")
    # the injected line reaches tlsd as handshake garbage, or is discarded;
    # in both cases it never runs as a command
    try:
        s = t.ctx().wrap_socket(raw, server_hostname="localhost")
    except (OSError, ValueError):
        return
    sf = s.makefile("rb")
    s.sendall(b"MAIL FROM:<after@example.com>\r\n")
    assert sf.readline().startswith(b"503 5.5.1")  # must EHLO again
    s.sendall(b"QUIT\r\n")
    assert sf.readline().startswith(b"221")
    s.close()


def test_implicit_tls_through_tlsd_backend(pair):
    t, mc = pair
    s, f = t.connect()
    s.sendall(b"EHLO client.example\r\n")
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if line.startswith(b"250 "):
            break
    assert b"250-AUTH PLAIN LOGIN\r\n" in lines and b"250-STARTTLS\r\n" not in lines
    s.close()
    with smtplib.SMTP_SSL("127.0.0.1", t.port, timeout=20, context=t.ctx()) as c:
        c.login("alice@example.com", PASSWORD)
        c.sendmail("alice@example.com", ["bob@example.com"], b"Subject: 465\r\n\r\nx\r\n")
    (m,) = mc.messages("bob").values()
    assert b"with ESMTPSA id" in m and b"(using TLSv1.3" in m
