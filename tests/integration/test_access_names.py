"""Client names in the access filters (IMAP, POP) and in the Received:
header (SMTP), with real lookups: 127.0.0.1 is "localhost" in /etc/hosts
(reverse and forward), and a client bound to 127.0.0.2 has no name there.
Whether the DNS server answers for 127.0.0.2 or is unreachable (the
deadline then passes), that client is UNKNOWN: no test depends on timing."""

import socket

import pytest

from imapfix import imap_mailcore
import base64

from mcfix import PASSWORD, connect, recv_reply

NAMED = "127.0.0.1"    # localhost, forward-confirmed
UNNAMED = "127.0.0.2"  # no /etc/hosts entry
DNS = "mailcore.dns.timeout = 2s\n"

GREETING = {"imap": (b"* OK", b"* BYE Access denied"),
            "pop": (b"+OK", b"-ERR [SYS/PERM] Access denied")}


def first_line(port, source):
    """Connects from source and returns the first line the server says."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(15)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf
    finally:
        s.close()


def admitted(mc, service, source):
    port = mc.imap_port if service == "imap" else mc.pop_port
    line = first_line(port, source)
    ok, denied = GREETING[service]
    assert line.startswith(ok) or line.startswith(denied), line
    return line.startswith(ok)


def start(daemons, build, free_port, tmp_path, service, key, rule, extra=""):
    return imap_mailcore(daemons, build, free_port, tmp_path,
                         extra_conf="service.%s.%s = %s: %s\n%s%s"
                                    % (service, key, service, rule, DNS, extra))


# (key, rule, is a 127.0.0.1 client admitted, is a 127.0.0.2 client admitted)
CASES = [
    ("domainnotallowed", "localhost", False, True),   # deny by name
    ("domainallowed", "localhost", True, False),      # allow by name (only allow rules)
    ("domainnotallowed", "UNKNOWN", True, False),     # no name
    ("domainallowed", "KNOWN", True, False),          # a verified name
    ("domainnotallowed", "LOCAL", False, True),       # a name without a dot
    ("domainnotallowed", "DNSSPOOFER", True, True),   # nobody's name fails its check
]


@pytest.mark.parametrize("service", ["imap", "pop"])
@pytest.mark.parametrize("key,rule,named_ok,unnamed_ok", CASES)
def test_filter_by_name(daemons, build, free_port, tmp_path, service, key, rule, named_ok,
                        unnamed_ok):
    mc = start(daemons, build, free_port, tmp_path, service, key, rule)
    assert admitted(mc, service, NAMED) == named_ok
    assert admitted(mc, service, UNNAMED) == unnamed_ok


@pytest.mark.parametrize("service", ["imap", "pop"])
def test_refusal_is_logged_with_the_name(daemons, build, free_port, tmp_path, service):
    mc = start(daemons, build, free_port, tmp_path, service, "domainnotallowed",
               "localhost, UNKNOWN")
    assert not admitted(mc, service, NAMED)
    mc.proc.wait_log("event=access_filter service=%s client=127.0.0.1 name=localhost "
                     "verified=yes result=denied" % service)
    assert not admitted(mc, service, UNNAMED)
    mc.proc.wait_log("event=access_filter service=%s client=127.0.0.2 name=- verified=no "
                     "result=denied" % service)


def test_lookups_off_leaves_names_unmatched(daemons, build, free_port, tmp_path):
    mc = start(daemons, build, free_port, tmp_path, "imap", "domainnotallowed", "localhost",
               extra="mailcore.dns.reverse_lookups = no\n")
    assert admitted(mc, "imap", NAMED)
    mc.proc.wait_log("mailcore.dns.reverse_lookups is no")


def test_name_reaches_the_session(daemons, build, free_port, tmp_path):
    """The filter runs again after LOGIN, with the user: the session must
    have the name, or "localhost" would match nobody there and alice too
    would be refused."""
    import imaplib
    mc = start(daemons, build, free_port, tmp_path, "imap", "domainallowed",
               "localhost EXCEPT bob@localhost")
    c = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=15)
    c.login("alice@example.com", "secret")
    c.logout()
    c = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=15)
    with pytest.raises(imaplib.IMAP4.error):
        c.login("bob@example.com", "secret")
    c.shutdown()
    mc.proc.wait_log("event=imap_login client=127.0.0.1 user=bob@example.com result=filtered")


def smtp_connect(port, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(15)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    rest = b""
    reply, rest = recv_reply(s, rest)
    assert reply.startswith(b"220 "), reply
    return s, rest


def send_mail(s, rest, helo):
    for cmd, code in ((b"EHLO " + helo, b"250"), (b"MAIL FROM:<x@remote.example>", b"250"),
                      (b"RCPT TO:<alice@example.com>", b"250"), (b"DATA", b"354")):
        s.sendall(cmd + b"\r\n")
        reply, rest = recv_reply(s, rest)
        assert reply.startswith(code), (cmd, reply)
    s.sendall(b"Subject: names\r\n\r\nhello\r\n.\r\n")
    reply, rest = recv_reply(s, rest)
    assert reply.startswith(b"250"), reply
    s.sendall(b"QUIT\r\n")
    s.close()


@pytest.mark.parametrize("source,tcp_info", [
    (NAMED, b"(localhost [127.0.0.1])"),
    (UNNAMED, b"([127.0.0.2])"),
])
def test_smtp_received_carries_the_name(daemons, build, free_port, tmp_path, source, tcp_info):
    mc = imap_mailcore(daemons, build, free_port, tmp_path, extra_conf=DNS)
    s, rest = smtp_connect(mc.smtp_port, source)
    # the greeting never waits for the name; the test waits for the
    # lookup's answer in the log before it sends the message
    mc.proc.wait_log("event=client_name service=smtp client=%s port=%d "
                     % (source, s.getsockname()[1]))
    send_mail(s, rest, b"client.example")
    msgs = list(mc.messages("alice").values())
    assert len(msgs) == 1
    received = [h for h in msgs[0].split(b"\r\n") if h.startswith(b"Received:")]
    assert received == [b"Received: from client.example " + tcp_info], msgs[0][:300]


def smtp_auth(mc, source, user="alice@example.com"):
    """AUTH PLAIN from source; returns the reply code. The AUTH goes out at
    once: when the filter names hosts the answer waits for the lookup."""
    s, rest = smtp_connect(mc.smtp_port, source)
    try:
        s.sendall(b"EHLO client.example\r\n")
        reply, rest = recv_reply(s, rest)
        assert reply.startswith(b"250"), reply
        token = base64.b64encode(("\0%s\0%s" % (user, PASSWORD)).encode())
        s.sendall(b"AUTH PLAIN " + token + b"\r\n")
        reply, rest = recv_reply(s, rest)
        return reply[:3]
    finally:
        s.close()


# service.smtp.domain(not)allowed: applied after AUTH, with the client's name
@pytest.mark.parametrize("key,rule,named_ok,unnamed_ok", [
    ("domainnotallowed", "localhost", False, True),
    ("domainallowed", "KNOWN", True, False),
    ("domainnotallowed", "ALL EXCEPT .localdomain, localhost", True, False),
])
def test_smtp_auth_filter_by_name(daemons, build, free_port, tmp_path, key, rule, named_ok,
                                  unnamed_ok):
    mc = imap_mailcore(daemons, build, free_port, tmp_path,
                       extra_conf="service.smtp.%s = smtp: %s\n%s" % (key, rule, DNS))
    assert smtp_auth(mc, NAMED) == (b"235" if named_ok else b"535")
    assert smtp_auth(mc, UNNAMED) == (b"235" if unnamed_ok else b"535")


def test_smtp_auth_filter_per_user(daemons, build, free_port, tmp_path):
    mc = imap_mailcore(daemons, build, free_port, tmp_path,
                       extra_conf="service.smtp.domainnotallowed = smtp: bob@localhost\n" + DNS)
    assert smtp_auth(mc, NAMED, "alice@example.com") == b"235"
    assert smtp_auth(mc, NAMED, "bob@example.com") == b"535"
    assert smtp_auth(mc, UNNAMED, "bob@example.com") == b"235"
    mc.proc.wait_log("event=smtp_auth_filtered client=127.0.0.1 name=localhost "
                     "user=bob@example.com")
