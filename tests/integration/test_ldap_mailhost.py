"""The mailHost model and domain entries against a real slapd (ldapfix.py):
mail for a user whose mailHost is another host is queued to that host (an
smtp-sink standing in for it, reached through mailcore.queue.mailhost_routes)
and never stored here, also in a message split with a local recipient; an
IMAP login for that user gets an RFC 2221 referral and POP a clear -ERR;
an inactive domain answers 4xx and refuses logins, a deleted one 5xx; a
domain's mailDomainAllowedServiceAccess applies with the user's; a message
with 100 Received: fields is refused as a loop."""

import imaplib
import os
import smtplib

import spfix
from ldapfix import PASSWORD, ldap_mailcore
from queue_fix import SmtpSink, queue_files
from test_ldap_imap import imap_login, imap_plain, pop_login, pop_plain
from test_ldap_smtp import auth, slapd  # noqa: F401 (fixture)

DOMAINS = "example.com, example.net, inactive.example, gone.example, imaponly.example"


def mailhost_route_conf(free_port, sink):
    """Queue settings that send mail for mailHost other.example to sink; the
    smarthost is a closed port, so mail for a mailHost must not go there."""
    return ("mailcore.queue.smarthost = 127.0.0.1:%d\n"
            "mailcore.queue.mailhost_routes = other.example=127.0.0.1:%d\n"
            "mailcore.queue.retry_min = 1s\nmailcore.queue.retry_max = 1s\n"
            % (free_port(), sink.port))


def make_mc(daemons, build, free_port, d, slapd, extra="", queue_delivery=False):
    return ldap_mailcore(daemons, build, free_port, d, slapd, domains=DOMAINS, extra=extra,
                         queue_delivery=queue_delivery)


def stored_anywhere(mc, local, domain="example.com"):
    """Every file under local@domain's Maildir (new, cur, tmp)."""
    root = os.path.join(mc.store, domain, local)
    return [os.path.join(r, n) for r, _, files in os.walk(root) for n in files]


def test_remote_homed_user_is_queued_to_mailhost(daemons, build, free_port, tmp_path, slapd):
    sink = SmtpSink(daemons, free_port, tmp_path).start()
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd, queue_delivery=True,
                 extra=mailhost_route_conf(free_port, sink))
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        # olga: mailHost Other.Example (stored lower case), carol: this host
        assert s.rcpt("olga@example.com")[0] == 250
        assert s.rcpt("carol@example.com")[0] == 250
        assert s.data(b"Subject: split\r\n\r\nfor two hosts\r\n")[0] == 250
        s.mail("x@remote.example")
        assert s.rcpt("olga@example.com")[0] == 250
        assert s.data(b"Subject: only remote\r\n\r\nhi\r\n")[0] == 250
    spfix.wait_for(lambda: len(sink.messages()) == 2 and queue_files(mc) == [], 20,
                   "2 messages at the mailHost sink and an empty queue")
    for m in sink.messages():
        assert b"X-Rcpt-Args: <olga@example.com>" in m
        assert b"X-Rcpt-Args: <carol" not in m
    assert any(b"Subject: split" in m for m in sink.messages())
    # carol got the split message here, olga nothing here
    (m,) = mc.messages("carol").values()
    assert b"Subject: split" in m and b"Delivered-To: carol@example.com" in m
    assert stored_anywhere(mc, "olga") == []
    log = mc.proc.log()
    assert log.count("event=queue_delivered") == 2
    # straight to the mailHost: the (dead) smarthost was never tried
    assert "event=queue_deferred" not in log


def test_mailhost_naming_this_host_is_local(daemons, build, free_port, tmp_path, slapd):
    # other.example named as one of our own names: olga's mailbox is here
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd,
                 extra="mailcore.mailhost_names = mx.example.com, other.example.\n")
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        assert s.rcpt("olga@example.com")[0] == 250
        assert s.data(b"Subject: here\r\n\r\nhi\r\n")[0] == 250
    spfix.wait_for(lambda: len(stored_anywhere(mc, "olga")) == 1, what="olga's message")
    assert queue_files(mc) == []
    assert imap_login(mc, "olga@example.com", PASSWORD)[0] == "OK"


def test_imap_referral_and_pop_refusal(daemons, build, free_port, tmp_path, slapd):
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd)
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    try:
        assert "LOGIN-REFERRALS" in m.capabilities
    finally:
        m.shutdown()
    typ, text = imap_login(mc, "olga@example.com", PASSWORD)
    assert typ == "NO"
    assert b"[REFERRAL imap://olga%40example.com;AUTH=*@other.example/]" in text
    # a wrong password is still only a failure: no referral, nothing learnt
    typ, text = imap_login(mc, "olga@example.com", "wrong")
    assert typ == "NO" and b"REFERRAL" not in text and b"AUTHENTICATIONFAILED" in text
    assert imap_plain(mc, "olga@example.com", PASSWORD) == "NO"
    assert imap_login(mc, "carol@example.com", PASSWORD)[0] == "OK"
    r = pop_login(mc, "olga@example.com", PASSWORD)
    assert r.startswith(b"-ERR [SYS/PERM]") and b"other.example" in r
    r = pop_plain(mc, "olga@example.com", PASSWORD)
    assert r.startswith(b"-ERR [SYS/PERM]") and b"other.example" in r
    assert pop_login(mc, "olga@example.com", "wrong").startswith(b"-ERR [AUTH]")
    assert pop_login(mc, "carol@example.com", PASSWORD).startswith(b"+OK")
    assert "result=referral mailhost=other.example" in mc.proc.log()


def test_domain_status(daemons, build, free_port, tmp_path, slapd):
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd)
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        # inactive domain: like an inactive user, a temporary refusal
        code, msg = s.rcpt("ian@inactive.example")
        assert code == 450 and b"4.2.1" in msg
        # deleted domain: its users are gone for good
        code, msg = s.rcpt("gus@gone.example")
        assert code == 550 and b"5.1.1" in msg
        assert s.rcpt("quinn@imaponly.example")[0] == 250
    for user in ("ian@inactive.example", "gus@gone.example"):
        assert auth(mc.sub_port, user, PASSWORD) == 535
        assert imap_login(mc, user, PASSWORD)[0] == "NO"
        assert pop_login(mc, user, PASSWORD).startswith(b"-ERR")


def test_domain_allowed_services(daemons, build, free_port, tmp_path, slapd):
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd)
    # imaponly.example: +imap:ALL for every user of the domain
    assert imap_login(mc, "quinn@imaponly.example", PASSWORD)[0] == "OK"
    assert pop_login(mc, "quinn@imaponly.example", PASSWORD).startswith(b"-ERR [AUTH]")
    assert auth(mc.sub_port, "quinn@imaponly.example", PASSWORD) == 535
    # other domains are not touched by it
    assert pop_login(mc, "carol@example.com", PASSWORD).startswith(b"+OK")
    assert "whose=domain" in mc.proc.log()


def test_received_loop_refused(daemons, build, free_port, tmp_path, slapd):
    mc = make_mc(daemons, build, free_port, tmp_path / "mailcore", slapd)
    hops = b"".join(b"Received: from h%d.example by h%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                    % (i, i + 1) for i in range(100))
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("x@remote.example")
        assert s.rcpt("carol@example.com")[0] == 250
        code, msg = s.data(hops + b"Subject: loop\r\n\r\nround and round\r\n")
        assert code == 554 and b"5.4.6" in msg
        # 99 is not a loop yet
        s.mail("x@remote.example")
        assert s.rcpt("carol@example.com")[0] == 250
        assert s.data(hops.split(b"\r\n", 1)[1] + b"Subject: ok\r\n\r\nhi\r\n")[0] == 250
    (m,) = mc.messages("carol").values()
    assert b"Subject: ok" in m
