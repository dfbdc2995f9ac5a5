"""SIGHUP reloads the users, aliases and mappings files as a new snapshot:
sessions keep the snapshot they started with, new sessions see the new
files, and a file that does not parse is refused (logged) while the old
tables stay in force."""

import os
import signal

from mcfix import Mailcore, connect, recv_reply


def rcpt(sock, addr):
    sock.sendall(b"RCPT TO:<%s>\r\n" % addr.encode())
    return recv_reply(sock)[0][:3]


def start_txn(mc):
    s = connect(mc.smtp_port)
    s.sendall(b"EHLO c.example\r\n")
    recv_reply(s)
    s.sendall(b"MAIL FROM:<x@remote.example>\r\n")
    assert recv_reply(s)[0].startswith(b"250")
    return s


def test_sighup_snapshots_and_broken_file(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path,
                  aliases="staff: alice@example.com\n").start()
    users = os.path.join(mc.d, "users")
    old = start_txn(mc)
    with open(users) as f:
        lines = f.read().replace("bob@example.com", "carol@example.com")
    with open(users, "w") as f:
        f.write(lines)
    with open(os.path.join(mc.d, "aliases"), "w") as f:
        f.write("team: carol@example.com\n")
    mc.proc.signal(signal.SIGHUP)
    mc.proc.wait_log("event=reload result=ok")
    # the session that started before the reload keeps its tables
    assert rcpt(old, "bob@example.com") == b"250"
    assert rcpt(old, "carol@example.com") == b"550"
    assert rcpt(old, "staff@example.com") == b"250"
    new = start_txn(mc)
    assert rcpt(new, "carol@example.com") == b"250"
    assert rcpt(new, "bob@example.com") == b"550"
    assert rcpt(new, "team@example.com") == b"250"
    assert rcpt(new, "staff@example.com") == b"550"
    old.close()
    new.close()

    # a broken users file is refused; the last good tables stay
    with open(users, "a") as f:
        f.write("this is not a user line\n")
    mc.proc.signal(signal.SIGHUP)
    mc.proc.wait_log("event=reload result=refused")
    assert "users:" in mc.proc.log().split("event=reload result=refused")[1].splitlines()[0]
    s = start_txn(mc)
    assert rcpt(s, "carol@example.com") == b"250"
    assert rcpt(s, "bob@example.com") == b"550"
    s.close()
    assert mc.proc.proc.poll() is None
