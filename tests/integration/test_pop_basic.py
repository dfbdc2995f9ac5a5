"""POP3 against a real mailcore with Python's poplib and curl: USER/PASS,
STAT/LIST/UIDL/RETR/TOP/DELE/QUIT (UPDATE), the maildrop lock, APOP
refused, and a message delivered by SMTP."""

import poplib
import smtplib
import subprocess

import pytest

from imapfix import imap_mailcore, PASSWORD


@pytest.fixture
def mc(daemons, build, free_port, tmp_path):
    return imap_mailcore(daemons, build, free_port, tmp_path)


def deliver(mc, n):
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        for i in range(n):
            s.sendmail("bob@example.com", ["alice@example.com"],
                       b"Subject: m%d\r\n\r\nline\r\n.dot\r\n" % i)


def test_pop_session(mc):
    deliver(mc, 2)
    p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    assert "UIDL" in caps and "TOP" in caps and "USER" in caps
    p.user("alice@example.com")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    # a second session cannot take the maildrop
    q = poplib.POP3("127.0.0.1", mc.pop_port, timeout=10)
    q.user("alice@example.com")
    with pytest.raises(poplib.error_proto, match="IN-USE"):
        q.pass_(PASSWORD)
    q.quit()
    count, size = p.stat()
    assert count == 2
    _, lines, _ = p.retr(1)
    assert b".dot" in lines  # poplib removes the dot-stuffing
    assert len(p.uidl()[1]) == 2
    p.dele(1)
    p.quit()
    p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=10)
    p.user("alice@example.com")
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    p.quit()


def test_apop_refused(mc):
    p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=10)
    with pytest.raises(poplib.error_proto):
        p._shortcmd("APOP alice@example.com 0123456789abcdef0123456789abcdef")
    p.quit()


def test_curl_pop3(mc):
    deliver(mc, 1)
    r = subprocess.run(["curl", "-s", "-S", "--max-time", "20", "-u", "alice@example.com:%s" % PASSWORD,
                        "pop3://127.0.0.1:%d/1" % mc.pop_port], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert b"Subject: m0" in r.stdout
