"""IMAP and POP with the real tlsd: STARTTLS/STLS through tlsd's handoff
socket (input pipelined after the command is discarded), AUTHENTICATE
EXTERNAL with a verified client certificate (the reference's transcript),
and IMAPS/POPS relayed by tlsd to mailcore's PROXY v2 backends: a mapped
certificate gets * PREAUTH on IMAPS; POPS starts in AUTHORIZATION."""

import imaplib
import poplib
import socket

import pytest

from imapfix import imap_mailcore, PASSWORD
from test_tlsd_env import tlsd_factory  # noqa: F401 (fixture)

import spfix


@pytest.fixture
def pair(daemons, build, free_port, tmp_path, tlsd_factory):  # noqa: F811
    try:
        spfix.bin_path("tlsd")
        spfix.bin_path("keyd")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    imaps, imap_be, pops, pop_be = free_port(), free_port(), free_port(), free_port()
    services = ""
    for svc, port, be in (("imap", imaps, imap_be), ("pop", pops, pop_be)):
        services += ("service.%s.sslport = %d\nservice.%s.listen = 127.0.0.1\n"
                     "service.%s.backend = 127.0.0.1:%d\nservice.%s.sslnicknames = Server-Cert\n"
                     "service.%s.sslclientauth = request\n" % (svc, port, svc, svc, be, svc, svc))
    t = tlsd_factory(extra=services)
    mcdir = tmp_path / "mailcore"
    mcdir.mkdir()
    mc = imap_mailcore(daemons, build, free_port, mcdir,
                       extra_conf="tlsd.handoff_socket = %s\nservice.imap.backend = 127.0.0.1:%d\n"
                                  "service.pop.backend = 127.0.0.1:%d\n"
                                  "service.imap.plaintextmincipher = 128\n"
                                  "store.admins = bob@example.com\n"
                                  % (t.handoff, imap_be, pop_be))
    t.start(backend=False)
    t.imaps, t.pops = imaps, pops
    return t, mc


def test_starttls_then_login(pair):
    t, mc = pair
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities
    assert m.starttls(ssl_context=t.ctx())[0] == "OK"
    assert "LOGINDISABLED" not in m.capabilities and "STARTTLS" not in m.capabilities
    assert "AUTH=EXTERNAL" not in m.capabilities  # no client certificate
    assert m.login("alice@example.com", PASSWORD)[0] == "OK"
    m.logout()


def test_starttls_external_with_certificate(pair):
    t, mc = pair
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    m.starttls(ssl_context=t.ctx(cert="alice"))
    assert "AUTH=EXTERNAL" in m.capabilities
    # proxying as another user needs a store administrator's certificate
    with pytest.raises(imaplib.IMAP4.error, match="Not authorized to login as specified user"):
        m.authenticate("EXTERNAL", lambda _: b"bob@example.com")
    assert m.authenticate("EXTERNAL", lambda _: b"")[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_command_injected_after_starttls_is_not_executed(pair):
    t, mc = pair
    raw = socket.create_connection(("127.0.0.1", mc.imap_port), timeout=20)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"* OK")
    raw.sendall(b"a STARTTLS\r\nb LOGIN alice@example.com secret\r\n")
    assert f.readline().startswith(b"a OK")
    s = t.ctx().wrap_socket(raw, server_hostname="localhost")
    sf = s.makefile("rb")
    s.sendall(b"c NOOP\r\n")
    line = sf.readline()
    assert line.startswith(b"c OK"), line  # nothing answers "b"
    s.sendall(b"d SELECT INBOX\r\n")
    assert sf.readline().startswith(b"d BAD")  # still not authenticated
    s.close()


def test_imaps_preauth_with_mapped_certificate(pair):
    t, mc = pair
    m = imaplib.IMAP4_SSL("127.0.0.1", t.imaps, ssl_context=t.ctx(cert="alice"), timeout=20)
    assert m.welcome.startswith(b"* PREAUTH"), m.welcome
    assert m.state == "AUTH"
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    # without a certificate: * OK, and a password login
    m = imaplib.IMAP4_SSL("127.0.0.1", t.imaps, ssl_context=t.ctx(), timeout=20)
    assert m.welcome.startswith(b"* OK")
    assert m.login("alice@example.com", PASSWORD)[0] == "OK"
    m.logout()


def test_pop_stls_and_pops_external(pair):
    t, mc = pair
    p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=20)
    p.stls(context=t.ctx(cert="alice"))
    assert "EXTERNAL" in p.capa().get("SASL", [])
    assert p._shortcmd("AUTH EXTERNAL =").startswith(b"+OK Maildrop ready")
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", t.pops, context=t.ctx(cert="alice"), timeout=20)
    assert p.getwelcome().startswith(b"+OK")  # POP has no PREAUTH
    assert p._shortcmd("AUTH EXTERNAL =").startswith(b"+OK")
    assert p.stat() == (0, 0)
    p.quit()
