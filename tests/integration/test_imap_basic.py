"""IMAP against a real mailcore, with Python's imaplib and curl: login,
mailboxes, APPEND (LITERAL+ and synchronizing literals), FETCH, SEARCH,
STORE, COPY with UIDPLUS, EXPUNGE, QUOTA, IDLE seeing a message SMTP
delivered, and the access filter refusing a client before the greeting."""

import imaplib
import os
import smtplib
import socket
import subprocess

import pytest

from imapfix import imap_mailcore, PASSWORD


@pytest.fixture
def mc(daemons, build, free_port, tmp_path):
    return imap_mailcore(daemons, build, free_port, tmp_path)


def login(mc, user="alice@example.com"):
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=10)
    typ, _ = m.login(user, PASSWORD)
    assert typ == "OK"
    return m


def test_greeting_and_login(mc):
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=10)
    assert m.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    assert "AUTH=PLAIN" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        m.login("alice@example.com", "wrong")
    assert m.login("alice@example.com", PASSWORD)[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_mailbox_round_trip(mc):
    m = login(mc)
    assert m.create("Work")[0] == "OK"
    msg = b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nbody text\r\n"
    typ, data = m.append("INBOX", "(\\Flagged)", None, msg)
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = m.fetch("1", "(FLAGS RFC822.SIZE BODY.PEEK[])")
    assert b"\\Flagged" in data[0][0] and (b"RFC822.SIZE %d" % len(msg)) in data[0][0]
    assert data[0][1] == msg
    typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
    assert b'"hello"' in data[0] and b'("TEXT" "PLAIN"' in data[0]
    assert m.search(None, "SUBJECT", "hello") == ("OK", [b"1"])
    assert m.search(None, "UNSEEN") == ("OK", [b"1"])
    typ, data = m.uid("COPY", "1", "Work")
    assert typ == "OK"
    assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert m.expunge() == ("OK", [b"1"])
    assert m.select("Work")[1] == [b"1"]
    typ, data = m.list()
    assert b'"INBOX"' in b" ".join(data) and b'"Work"' in b" ".join(data)
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    m.logout()
    # the Maildir holds the copy in Work's cur/ with its flag in the name
    cur = os.path.join(mc.store, "example.com", "alice", "Maildir", ".Work", "cur")
    (name,) = os.listdir(cur)
    assert name.endswith(":2,F")


def test_smtp_delivery_seen_in_idle(mc):
    m = login(mc)
    m.select("INBOX")
    tag = m._new_tag().decode()
    m.send(("%s IDLE\r\n" % tag).encode())
    assert m.readline().startswith(b"+ ")
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        s.sendmail("bob@example.com", ["alice@example.com"], b"Subject: idle\r\n\r\nnew\r\n")
    m.sock.settimeout(15)
    assert m.readline() == b"* 1 EXISTS\r\n"
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag.encode()):
            assert b"OK" in line
            break
    m.logout()


def test_curl_list_fetch_upload(mc, tmp_path):
    msg = tmp_path / "msg.eml"
    msg.write_bytes(b"Subject: from curl\r\n\r\nuploaded\r\n")
    base = "imap://127.0.0.1:%d/" % mc.imap_port
    user = ["-u", "alice@example.com:%s" % PASSWORD, "--max-time", "20", "-s", "-S"]
    r = subprocess.run(["curl"] + user + ["-T", str(msg), base + "INBOX"], capture_output=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["curl"] + user + [base], capture_output=True)
    assert r.returncode == 0 and b'"INBOX"' in r.stdout, r.stderr
    r = subprocess.run(["curl"] + user + [base + "INBOX;UID=1"], capture_output=True)
    assert r.returncode == 0 and b"uploaded" in r.stdout, r.stderr


def test_access_filter_refuses_before_greeting(daemons, build, free_port, tmp_path):
    mc = imap_mailcore(daemons, build, free_port, tmp_path,
                       extra_conf="service.imap.domainnotallowed = imap: 127.0.0.1\n")
    s = socket.create_connection(("127.0.0.1", mc.imap_port), timeout=10)
    assert s.recv(100).startswith(b"* BYE Access denied")
    s.close()


def test_append_literal_then_crlf_in_a_later_read(mc):
    """A literal over the input buffer's line allowance (12 KB) whose closing
    CRLF comes in a later read (imaplib writes them separately): the server
    must read on and answer, not wait forever for room it never makes."""
    import time

    s = socket.create_connection(("127.0.0.1", mc.imap_port), timeout=20)
    f = s.makefile("rb")
    try:
        assert f.readline().startswith(b"* OK")
        s.sendall(b"a LOGIN alice@example.com " + PASSWORD.encode() + b"\r\n")
        assert f.readline().startswith(b"a OK")
        for size in (12300, 70000):
            body = b"Subject: split\r\n\r\n" + b"x" * (size - 20) + b"\r\n"
            s.sendall(b"b APPEND INBOX (\\Seen) {%d}\r\n" % len(body))
            assert f.readline().startswith(b"+ ")
            s.sendall(body)
            time.sleep(0.2)  # orders the reads only: the CRLF comes apart
            s.sendall(b"\r\n")
            line = f.readline()
            assert line.startswith(b"b OK"), line
        s.sendall(b"c LOGOUT\r\n")
    finally:
        f.close()
        s.close()
