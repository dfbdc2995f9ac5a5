"""mailcore with a real slapd as its directory (ldapfix.py): what the fixture
loaded (ldapsearch over LDAP and LDAPS), SMTP AUTH against LDAP by binding
as the user and by compare, over LDAPS and StartTLS, multi-domain lookup,
RCPT to an alias (mailAlternateAddress) delivered to the canonical mailbox,
an inactive user refused for login and delivery, per-user allowed services,
and slapd stopped mid-test: temporary failures (4xx), then recovery."""

import base64
import smtplib

import pytest

from ldapfix import PASSWORD, Slapd
from mcfix import Mailcore


@pytest.fixture
def slapd(daemons, free_port, pki, tmp_path):
    s = Slapd(daemons, free_port, pki, tmp_path / "ldap")
    try:
        yield s.start()
    finally:
        s.cleanup()


def make_mc(daemons, build, free_port, tmp_path, slapd, workers=None, **kw):
    d = tmp_path / "mailcore"
    d.mkdir()
    extra = slapd.conf(**kw) + "mailcore.domains = example.com, example.net\n"
    mc = Mailcore(daemons, build, free_port, d, extra_conf=extra, workers=workers)
    # one mailcore.domains line: ours, with both hosted domains
    mc_conf = open(mc.conf).read().replace("mailcore.domains = example.com\n", "")
    with open(mc.conf, "w") as f:
        f.write(mc_conf)
    return mc.start()


def plain(user, pw):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()


def auth(port, user, pw):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("c.example")
        return s.docmd("AUTH", "PLAIN " + plain(user, pw))[0]


def test_fixture_loaded(slapd):
    out = slapd.search("(uid=carol)", "mail", "mailAlternateAddress", "mailQuota")
    assert "mail: carol@example.com" in out and "mailAlternateAddress: c.smith@example.com" in out
    assert "mailQuota: 1048576" in out
    out = slapd.search("(uid=erin)", "userCertificate;binary", ldaps=True)
    assert "userCertificate;binary::" in out
    assert "mailUserStatus: inactive" in slapd.search("(uid=dave)", "mailUserStatus")
    assert "sunPreferredDomain: example.net" in slapd.search("(o=example.net)")


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_auth_bind_and_rcpt_alias(daemons, build, free_port, tmp_path, slapd, tls):
    mc = make_mc(daemons, build, free_port, tmp_path, slapd, tls=tls)
    assert auth(mc.sub_port, "carol@example.com", PASSWORD) == 235
    assert auth(mc.sub_port, "carol", PASSWORD) == 235  # ldap.defaultdomain: first domain
    assert auth(mc.sub_port, "carol@example.com", "wrong") == 535
    assert auth(mc.sub_port, "nobody@example.com", PASSWORD) == 535
    assert auth(mc.sub_port, "henry@example.net", PASSWORD) == 235  # second domain
    assert auth(mc.sub_port, "dave@example.com", PASSWORD) == 535  # inactive
    # a filter-injection attempt in the name finds nobody (RFC 4515 escaping)
    assert auth(mc.sub_port, "*)(uid=*", PASSWORD) == 535
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        assert s.rcpt("c.smith@example.com")[0] == 250
        assert s.rcpt("nobody@example.com")[0] == 550
        code, msg = s.rcpt("dave@example.com")
        assert code == 450 and b"4.2.1" in msg
        assert s.rcpt("henry@example.net")[0] == 250
        assert s.data(b"Subject: alias\r\n\r\nhi\r\n")[0] == 250
    (m,) = mc.messages("carol").values()
    assert b"Delivered-To: carol@example.com" in m


def test_auth_compare(daemons, build, free_port, tmp_path, slapd):
    mc = make_mc(daemons, build, free_port, tmp_path, slapd, method="compare")
    assert auth(mc.sub_port, "ivan@example.com", PASSWORD) == 235
    assert auth(mc.sub_port, "ivan@example.com", "wrong") == 535


def test_allowed_services(daemons, build, free_port, tmp_path, slapd):
    mc = make_mc(daemons, build, free_port, tmp_path, slapd)
    # gina may use imap and pop only: right password, smtp refused like a wrong one
    assert auth(mc.sub_port, "gina@example.com", PASSWORD) == 535
    mc.proc.wait_log("event=smtp_auth_service_denied")


def test_ldap_down_tempfail_then_recovery(daemons, build, free_port, tmp_path, slapd):
    # one worker: each worker has its own LDAP pool and notices the outage
    # and the recovery on its own; the log lines below are one pool's
    mc = make_mc(daemons, build, free_port, tmp_path, slapd, workers=1)
    assert auth(mc.sub_port, "carol@example.com", PASSWORD) == 235
    slapd.stop()
    assert auth(mc.sub_port, "carol@example.com", PASSWORD) == 454
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        code, msg = s.rcpt("carol@example.com")
        assert code == 451 and b"4.4.3" in msg  # never "unknown", never accepted
    mc.proc.wait_log("event=ldap_down")
    slapd.start()
    # the next attempt after the backoff (100-200 ms) reconnects
    import spfix
    spfix.wait_for(lambda: auth(mc.sub_port, "carol@example.com", PASSWORD) == 235, 10,
                   "LDAP recovery")
    mc.proc.wait_log("event=ldap_up")
