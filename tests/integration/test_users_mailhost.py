"""The mailHost model with the users file (mailhost=, no LDAP): mail for a
user homed on another host is queued to that host (an smtp-sink standing
in for it, reached through mailcore.queue.mailhost_routes) and never stored
here; an IMAP LOGIN gets an RFC 2221 referral and POP a clear -ERR; and
IMAPS through the real tlsd with a client certificate that certmap.conf
maps (verifycert against certsha256=) to such a user gets
* BYE [REFERRAL ...] (RFC 2221 4.2) and the connection closes, while a
mapped local user still gets * PREAUTH."""

import imaplib
import os
import smtplib
import socket
import ssl

import spfix
from ldapfix import issue_client
from mcfix import PASSWORD, Mailcore, crypt_hash
from queue_fix import SmtpSink, queue_files
from test_certmap_smtp import CERTMAP, cert_sha256
from test_ldap_imap import imap_login, imaps_tlsd, pop_login
from test_ldap_mailhost import mailhost_route_conf, stored_anywhere
from test_tlsd_env import tlsd_factory  # noqa: F401 (fixture)

# olga's mailbox is on other.example (written mixed case: stored lower case)
OLGA_REFERRAL = b"[REFERRAL imap://olga%40example.com;AUTH=*@other.example/]"


def users_mailcore(daemons, build, free_port, d, extra="", alice_attrs="", olga_attrs="",
                   **mc_kw):
    """A started mailcore (mcfix.Mailcore) with IMAP and POP on their own
    ports and its own users file: alice and bob here, olga homed on
    Other.Example; *_attrs are appended to alice's and olga's attributes."""
    d.mkdir()
    imap_port, pop_port = free_port(), free_port()
    mc = Mailcore(daemons, build, free_port, d, **mc_kw,
                  extra_conf="service.imap.port = %d\nservice.pop.port = %d\n%s"
                             % (imap_port, pop_port, extra))
    h = crypt_hash(PASSWORD)
    with open(os.path.join(mc.d, "users"), "w") as f:
        f.write("alice@example.com:%s:quota=10m%s\n" % (h, alice_attrs))
        f.write("bob@example.com:%s:\n" % h)
        f.write("olga@example.com:%s:quota=1m,mailhost=Other.Example%s\n" % (h, olga_attrs))
    mc.imap_port, mc.pop_port = imap_port, pop_port
    mc.start()
    spfix.wait_for(lambda: spfix.port_open(imap_port), what="imap port")
    return mc


def test_remote_homed_user_is_queued_to_mailhost(daemons, build, free_port, tmp_path):
    sink = SmtpSink(daemons, free_port, tmp_path).start()
    mc = users_mailcore(daemons, build, free_port, tmp_path / "mailcore", queue_delivery=True,
                        extra=mailhost_route_conf(free_port, sink))
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        assert s.rcpt("olga@example.com")[0] == 250
        assert s.rcpt("alice@example.com")[0] == 250
        assert s.data(b"Subject: split\r\n\r\nfor two hosts\r\n")[0] == 250
    spfix.wait_for(lambda: len(sink.messages()) == 1 and queue_files(mc) == [], 20,
                   "the message at the mailHost sink and an empty queue")
    (m,) = sink.messages()
    assert b"X-Rcpt-Args: <olga@example.com>" in m and b"Subject: split" in m
    assert b"X-Rcpt-Args: <alice" not in m
    # alice got her copy here, olga nothing here
    (m,) = mc.messages("alice").values()
    assert b"Subject: split" in m
    assert stored_anywhere(mc, "olga") == []
    log = mc.proc.log()
    assert log.count("event=queue_delivered") == 1
    # straight to the mailHost: the (dead) smarthost was never tried
    assert "event=queue_deferred" not in log


def test_mailhost_naming_this_host_is_local(daemons, build, free_port, tmp_path):
    mc = users_mailcore(daemons, build, free_port, tmp_path / "mailcore",
                        extra="mailcore.mailhost_names = mx.example.com, other.example.\n")
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        assert s.rcpt("olga@example.com")[0] == 250
        assert s.data(b"Subject: here\r\n\r\nhi\r\n")[0] == 250
    spfix.wait_for(lambda: len(stored_anywhere(mc, "olga")) == 1, what="olga's message")
    assert queue_files(mc) == []
    assert imap_login(mc, "olga@example.com", PASSWORD)[0] == "OK"
    assert pop_login(mc, "olga@example.com", PASSWORD).startswith(b"+OK")


def test_imap_referral_and_pop_refusal(daemons, build, free_port, tmp_path):
    mc = users_mailcore(daemons, build, free_port, tmp_path / "mailcore")
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    assert "LOGIN-REFERRALS" in m.capabilities  # RFC 2221 3
    m.logout()
    typ, text = imap_login(mc, "olga@example.com", PASSWORD)
    assert typ == "NO"
    assert OLGA_REFERRAL in text
    # a wrong password is still only a failure: no referral, nothing learnt
    typ, text = imap_login(mc, "olga@example.com", "wrong")
    assert typ == "NO" and b"REFERRAL" not in text and b"AUTHENTICATIONFAILED" in text
    assert imap_login(mc, "alice@example.com", PASSWORD)[0] == "OK"
    r = pop_login(mc, "olga@example.com", PASSWORD)
    assert r.startswith(b"-ERR [SYS/PERM]") and b"other.example" in r
    assert pop_login(mc, "olga@example.com", "wrong").startswith(b"-ERR [AUTH]")
    assert pop_login(mc, "alice@example.com", PASSWORD).startswith(b"+OK")
    assert "result=referral mailhost=other.example" in mc.proc.log()


def test_imaps_preauth_referral(daemons, build, free_port, tmp_path, pki,
                                tlsd_factory):  # noqa: F811
    t, imaps, imap_be = imaps_tlsd(free_port, tlsd_factory)
    certs = tmp_path / "certs"
    certs.mkdir()
    olga = issue_client(pki, str(certs), "olga", "olga@example.com")
    alice = pki.clients["alice"]
    certmap = str(tmp_path / "certmap.conf")
    with open(certmap, "w") as f:
        f.write(CERTMAP)
    # the test CA's section has verifycert on: each user's certsha256=
    mc = users_mailcore(daemons, build, free_port, tmp_path / "mailcore",
                        extra="tlsd.handoff_socket = %s\nmailcore.certmapfile = %s\n"
                              "service.imap.backend = 127.0.0.1:%d\n" % (t.handoff, certmap, imap_be),
                        alice_attrs=",certsha256=" + cert_sha256(alice[0]),
                        olga_attrs=",certsha256=" + cert_sha256(olga[0]))
    t.start(backend=False)

    def ctx(cert):
        c = ssl.create_default_context(cafile=t.pki.ca_crt)
        c.load_cert_chain(*cert)
        return c

    # olga's mailbox is elsewhere: no command to answer, so the greeting is
    # an untagged BYE with the referral, and the server closes
    raw = socket.create_connection(("127.0.0.1", imaps), timeout=20)
    with ctx(olga).wrap_socket(raw, server_hostname="localhost") as s:
        f = s.makefile("rb")
        greeting = f.readline()
        assert greeting.startswith(b"* BYE " + OLGA_REFERRAL), greeting
        try:
            rest = f.read()
        except (ssl.SSLEOFError, ConnectionResetError):
            rest = b""  # closed without close_notify: closed all the same
        assert rest == b"", rest
    mc.proc.wait_log("method=certificate result=referral mailhost=other.example")
    # alice is mapped and homed here: * PREAUTH as before
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx(alice), timeout=20)
    assert m.welcome.startswith(b"* PREAUTH"), m.welcome
    assert b"alice@example.com" in m.welcome
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    # olga without a certificate: * OK, and her password login is referred
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=t.ctx(), timeout=20)
    try:
        assert m.welcome.startswith(b"* OK"), m.welcome
        typ, data = m._simple_command("LOGIN", "olga@example.com", m._quote(PASSWORD))
        assert typ == "NO" and OLGA_REFERRAL in b" ".join(x for x in data if isinstance(x, bytes))
    except imaplib.IMAP4.error as e:
        assert OLGA_REFERRAL in str(e).encode(), e
    finally:
        m.shutdown()
