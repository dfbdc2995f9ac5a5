"""IMAP keywords kept the Maildir way (Dovecot's dovecot-keywords file and
the a..z info letters), with Python's imaplib against a real mailcore: set,
seen by a second session, kept across reconnect and daemon restart, SEARCH
KEYWORD/UNKEYWORD, COPY maps them, APPEND with keywords, the 26-keyword
limit. And the store work on the pool: sessions appending, expunging and
searching in parallel, pipelined commands behind an APPEND answered in
order."""

import imaplib
import os
import re
import socket
import threading

import pytest

from imapfix import imap_mailcore, spfix_wait, PASSWORD

MSG = b"From: a@example.com\r\nSubject: kw test\r\n\r\nbody with needle\r\n"


@pytest.fixture
def mc(daemons, build, free_port, tmp_path):
    return imap_mailcore(daemons, build, free_port, tmp_path)


def login(mc, user="alice@example.com"):
    m = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=20)
    assert m.login(user, PASSWORD)[0] == "OK"
    return m


def flags_of(m, uid):
    typ, data = m.uid("FETCH", str(uid), "(FLAGS)")
    assert typ == "OK"
    line = b" ".join(d if isinstance(d, bytes) else d[0] for d in data if d)
    return set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split())


def append(m, box, flags, msg=MSG):
    typ, data = m.append(box, flags, None, msg)
    assert typ == "OK", data
    return int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))


def inbox_dir(mc):
    return os.path.join(mc.store, "example.com", "alice", "Maildir")


def test_keywords_set_seen_searched_persisted(mc):
    a = login(mc)
    uid1 = append(a, "INBOX", None)
    uid2 = append(a, "INBOX", "($Forwarded \\Seen)")
    typ, data = a.select("INBOX")
    assert typ == "OK"
    # the mailbox's keywords and \* in FLAGS / PERMANENTFLAGS
    assert b"$Forwarded" in a.untagged_responses["FLAGS"][0]
    perm = [r for r in a.untagged_responses["OK"] if r.startswith(b"[PERMANENTFLAGS")][0]
    assert b"$Forwarded" in perm and b"\\*" in perm
    assert flags_of(a, uid2) == {"$Forwarded", "\\Seen"}

    # a second session, selected before the change, is told of it
    b = login(mc)
    b.select("INBOX")
    typ, data = a.uid("STORE", str(uid1), "+FLAGS", "(Project-X $Junk)")
    assert typ == "OK"
    assert b"Project-X" in data[0] and b"$Junk" in data[0]
    typ, _ = b.noop()
    assert typ == "OK"
    assert b"Project-X" in b.untagged_responses["FLAGS"][-1]
    assert any(b"Project-X" in r for r in b.untagged_responses.get("FETCH", []))
    assert flags_of(b, uid1) == {"Project-X", "$Junk"}

    # SEARCH KEYWORD / UNKEYWORD, case-insensitive names
    assert a.uid("SEARCH", "KEYWORD", "project-x")[1][0].split() == [str(uid1).encode()]
    assert a.uid("SEARCH", "UNKEYWORD", "$Junk")[1][0].split() == [str(uid2).encode()]
    assert a.uid("SEARCH", "KEYWORD", "NeverUsed")[1][0] == b""
    # removal
    assert a.uid("STORE", str(uid1), "-FLAGS", "($Junk)")[0] == "OK"
    assert flags_of(a, uid1) == {"Project-X"}
    # an invalid keyword (not an atom) is a BAD
    with pytest.raises(imaplib.IMAP4.error):
        a.uid("STORE", str(uid1), "+FLAGS", "(bad]word)")
    a.logout()
    b.logout()

    # the Dovecot-compatible file and the letters in the file names
    kwfile = open(os.path.join(inbox_dir(mc), "dovecot-keywords")).read().split("\n")
    assert "0 $Forwarded" in kwfile and "1 Project-X" in kwfile
    names = os.listdir(os.path.join(inbox_dir(mc), "cur"))
    assert any(n.endswith(":2,Sa") for n in names)
    assert any(n.endswith(":2,b") for n in names)

    # reconnect, then restart the daemon: still there
    c = login(mc)
    c.select("INBOX")
    assert flags_of(c, uid1) == {"Project-X"}
    c.logout()
    mc.proc.stop()
    mc.start()
    spfix_wait(mc.imap_port)
    d = login(mc)
    d.select("INBOX")
    assert flags_of(d, uid1) == {"Project-X"}
    assert flags_of(d, uid2) == {"$Forwarded", "\\Seen"}
    d.logout()


def test_copy_maps_keywords(mc):
    a = login(mc)
    assert a.create("Archive")[0] == "OK"
    # Archive gets its own slot order: Other first
    append(a, "Archive", "(Other)")
    uid = append(a, "INBOX", "(Alpha Beta \\Flagged)")
    a.select("INBOX")
    typ, data = a.uid("COPY", str(uid), "Archive")
    assert typ == "OK"
    code = a.response("COPYUID")[1][0]  # the tagged OK's [COPYUID v src dst]
    new_uid = int(code.split()[-1])
    a.select("Archive")
    assert flags_of(a, new_uid) == {"Alpha", "Beta", "\\Flagged"}
    adir = os.path.join(inbox_dir(mc), ".Archive")
    kw = open(os.path.join(adir, "dovecot-keywords")).read().split("\n")
    assert "0 Other" in kw and "1 Alpha" in kw and "2 Beta" in kw
    assert a.uid("SEARCH", "KEYWORD", "Beta")[1][0].split() == [str(new_uid).encode()]
    a.logout()


def test_keyword_limit(mc):
    a = login(mc)
    uid = append(a, "INBOX", None)
    a.select("INBOX")
    for i in range(26):
        assert a.uid("STORE", str(uid), "+FLAGS", "(kw%d)" % i)[0] == "OK"
    perm = [r for r in a.untagged_responses["OK"] if r.startswith(b"[PERMANENTFLAGS")][-1]
    assert b"\\*" not in perm  # no slot left: no new keywords (RFC 3501 7.1)
    typ, data = a.uid("STORE", str(uid), "+FLAGS", "(one-too-many)")
    assert typ == "NO" and data[0].startswith(b"[LIMIT]")
    # known ones still work
    assert a.uid("STORE", str(uid), "-FLAGS", "(kw3)")[0] == "OK"
    assert "kw3" not in flags_of(a, uid) and "kw25" in flags_of(a, uid)
    a.logout()


def test_keywords_file_bad_lines_ignored(mc):
    a = login(mc)
    uid = append(a, "INBOX", None)
    with open(os.path.join(inbox_dir(mc), "dovecot-keywords"), "w") as f:
        f.write("0 Good\n99 OutOfRange\nnot a line\n1 bad]name\n2 Fine\n0 Twice\n")
    a.select("INBOX")
    flags = a.untagged_responses["FLAGS"][0]
    assert b"Good" in flags and b"Fine" in flags
    assert b"OutOfRange" not in flags and b"Twice" not in flags
    # the first free slot is 1 (the bad line for it was dropped)
    assert a.uid("STORE", str(uid), "+FLAGS", "(New)")[0] == "OK"
    kw = open(os.path.join(inbox_dir(mc), "dovecot-keywords")).read().split("\n")
    assert "1 New" in kw and "0 Good" in kw and "2 Fine" in kw
    a.logout()


def test_parallel_sessions_append_expunge_search(mc):
    """Two sessions per user working at once: every reply complete, in order."""
    errors = []

    def worker(user, box, n):
        try:
            m = login(mc, user)
            if box != "INBOX":
                m.create(box)
            for i in range(n):
                uid = append(m, box, "(Tag%d)" % (i % 3), MSG + b"n%d\r\n" % i)
                m.select(box)
                typ, data = m.uid("SEARCH", "BODY", "needle")
                assert typ == "OK" and str(uid).encode() in data[0].split()
                typ, data = m.uid("SEARCH", "KEYWORD", "Tag%d" % (i % 3))
                assert typ == "OK" and str(uid).encode() in data[0].split()
                assert m.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")[0] == "OK"
                typ, data = m.expunge()
                assert typ == "OK"
                typ, data = m.uid("SEARCH", "ALL")
                assert str(uid).encode() not in data[0].split()
            m.logout()
        except Exception as e:  # reported below, with the thread's name
            errors.append("%s/%s: %r" % (user, box, e))

    threads = [threading.Thread(target=worker, args=args) for args in
               [("alice@example.com", "INBOX", 12), ("alice@example.com", "Work", 12),
                ("bob@example.com", "INBOX", 12), ("alice@example.com", "INBOX", 8)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def read_tagged(sock, tags):
    """Reads until every tag in tags has its tagged reply; returns the lines."""
    buf = b""
    want = set(tags)
    while want:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early: %r" % buf[-300:]
        buf += chunk
        for line in buf.split(b"\r\n"):
            t = line.split(b" ", 1)[0].decode(errors="replace")
            if t in want and len(line.split(b" ")) > 1 and line.split(b" ")[1] in (b"OK", b"NO", b"BAD"):
                want.discard(t)
    return buf.split(b"\r\n")


def test_pipelined_commands_behind_append_answered_in_order(mc):
    s = socket.create_connection(("127.0.0.1", mc.imap_port), timeout=20)
    s.recv(4096)
    s.sendall(b"a1 LOGIN alice@example.com %s\r\n" % PASSWORD.encode())
    read_tagged(s, ["a1"])
    big = b"Subject: big\r\n\r\n" + b"x" * 200000 + b"\r\n"
    # LITERAL+: everything in one write, APPEND first, then commands that
    # depend on it; each must see the APPEND done and reply in order
    s.sendall(b"a2 APPEND INBOX ($Piped) {%d+}\r\n" % len(big) + big + b"\r\n" +
              b"a3 SELECT INBOX\r\n"
              b"a4 UID SEARCH KEYWORD $Piped\r\n"
              b"a5 FETCH 1 (FLAGS RFC822.SIZE)\r\n"
              b"a6 STORE 1 +FLAGS (\\Deleted)\r\n"
              b"a7 EXPUNGE\r\n"
              b"a8 SEARCH ALL\r\n"
              b"a9 LOGOUT\r\n")
    lines = read_tagged(s, ["a%d" % i for i in range(2, 10)])
    tagged = [ln.split(b" ")[0] for ln in lines if re.match(rb"a\d (OK|NO|BAD)", ln)]
    assert tagged == [b"a%d" % i for i in range(2, 10)]
    assert all(re.match(rb"a\d OK", ln) for ln in lines if re.match(rb"a\d ", ln))
    text = b"\r\n".join(lines)
    assert re.search(rb"\* SEARCH \d+\r\n", text)  # a4 found it
    assert b"RFC822.SIZE %d" % len(big) in text
    assert b"* 1 EXPUNGE" in text
    s.close()


def test_close_during_append_loses_nothing_acknowledged(mc):
    """A client that goes away with commands in flight: the daemon stays up
    and the store consistent (the job's end only frees)."""
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", mc.imap_port), timeout=20)
        s.recv(4096)
        s.sendall(b"a1 LOGIN alice@example.com %s\r\n" % PASSWORD.encode())
        read_tagged(s, ["a1"])
        s.sendall(b"a2 APPEND INBOX (Gone%d) {%d+}\r\n" % (i, len(MSG)) + MSG + b"\r\n"
                  b"a3 SELECT INBOX\r\na4 SEARCH TEXT needle\r\n")
        s.close()
    a = login(mc)
    typ, data = a.select("INBOX")
    assert typ == "OK"
    assert a.search(None, "TEXT", "needle")[0] == "OK"
    a.logout()
