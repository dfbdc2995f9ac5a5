"""mailcore's prefork model: a master that binds the listeners and forks
mailcore.workers workers sharing them, supervises them (a killed worker is
respawned), forwards SIGHUP and SIGTERM, runs the queue manager alone (woken
by the workers through a pipe), and takes its workers with it when it is
killed. Also: IMAP sessions (NOOP and IDLE) and POP sessions on different
workers see each other's changes and locks (the store's sync files and
flock work across processes)."""

import imaplib
import os
import poplib
import re
import signal
import smtplib
import socket
import threading

import pytest

import spfix
from imapfix import idle_see, imap_mailcore
from mcfix import PASSWORD, Mailcore, child_pids, server_pid_of
from queue_fix import SmtpSink, queue_files, relay_mailcore


def workers_of(mc, n):
    """Waits until the master has n live workers, returns their pids."""
    return spfix.wait_for(lambda: len(child_pids(mc.proc.pid())) == n and child_pids(mc.proc.pid()),
                          what="%d workers" % n)


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def message(i, tag="w"):
    return ("Subject: %s-%d\r\n\r\nbody of %s-%d\r\n" % (tag, i, tag, i)).encode()


def subjects(mc, local="alice"):
    out = set()
    for raw in mc.messages(local).values():
        for line in raw.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out.add(line[9:].decode())
    return out


def test_workers_share_the_listeners(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path, workers=3).start()
    pids = workers_of(mc, 3)
    assert all(comm(p) == "mailcore" for p in pids)
    assert "workers=3" in mc.proc.log()

    n_threads, per_thread = 12, 5
    errors = []

    def client(t):
        try:
            for i in range(per_thread):
                with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
                    s.sendmail("x@remote.example", ["alice@example.com"], message(t * 100 + i))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    want = {"w-%d" % (t * 100 + i) for t in range(n_threads) for i in range(per_thread)}
    assert subjects(mc) == want
    # the master never accepts: every session was a worker's
    log = mc.proc.log()
    master = "mailcore[%d]" % mc.proc.pid()
    assert not [l for l in log.splitlines() if master in l and "event=smtp_message" in l]
    assert mc.proc.stop() == 0


def test_killed_worker_is_respawned_and_nothing_acknowledged_is_lost(daemons, build, free_port,
                                                                      tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path, workers=2).start()
    before = workers_of(mc, 2)
    acked, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(t):
        i = 0
        while not stop.is_set():
            n = t * 100000 + i
            i += 1
            try:
                with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
                    s.sendmail("x@remote.example", ["alice@example.com"], message(n))
                with lock:
                    acked.append(n)
            except (smtplib.SMTPException, OSError) as e:
                errors.append(repr(e))  # the killed worker's sessions end unanswered

    threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    try:
        spfix.wait_for(lambda: len(acked) >= 20, 30, "20 acknowledged messages")
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        mc.proc.wait_log("event=child_exit proc=worker index=0 pid=%d signal=9" % victim)
        mc.proc.wait_log("event=child_restart proc=worker index=0")
        after = spfix.wait_for(lambda: (len(child_pids(mc.proc.pid())) == 2 and
                                        victim not in child_pids(mc.proc.pid()) and
                                        child_pids(mc.proc.pid())), what="a new worker")
        assert before[1] in after
        n = len(acked)
        spfix.wait_for(lambda: len(acked) >= n + 20, 30, "20 more messages after the respawn")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    got = subjects(mc)
    assert {"w-%d" % n for n in acked} <= got
    # the listeners still answer after all that
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.sendmail("x@remote.example", ["alice@example.com"], message(0, "last"))
    assert "last-0" in subjects(mc)
    assert mc.proc.stop() == 0


def rcpt_code(port, rcpt):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("hup.example")
        s.mail("x@remote.example")
        return s.rcpt(rcpt)[0]


def test_sighup_reaches_every_worker(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path, workers=3).start()
    workers_of(mc, 3)
    assert all(rcpt_code(mc.smtp_port, "carol@example.com") == 550 for _ in range(10))

    users = os.path.join(mc.d, "users")
    with open(users) as f:
        good = f.read()
    # a broken file is refused by the master and not passed on
    with open(users, "w") as f:
        f.write(good + "this line is not a user\n")
    mc.proc.signal(signal.SIGHUP)
    mc.proc.wait_log("event=reload result=refused")
    with open(users, "w") as f:
        f.write(good + "carol@example.com:*:\n")
    mc.proc.signal(signal.SIGHUP)
    # the master's reload, then each worker's
    mc.proc.wait_log("event=reload result=ok users=4", count=4)
    log = mc.proc.log()
    assert log.count("event=reload result=refused") == 1
    reloaded = {re.search(r"mailcore\[(\d+)\]", l).group(1) for l in log.splitlines()
                if "event=reload result=ok" in l}
    assert len(reloaded) == 4
    # whichever worker takes a connection knows carol now
    assert all(rcpt_code(mc.smtp_port, "carol@example.com") == 250 for _ in range(30))
    assert mc.proc.stop() == 0


def test_sigterm_stops_master_and_workers(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path, workers=3).start()
    pids = workers_of(mc, 3)
    # a session open at the stop: its worker ends it, as one daemon did
    s = socket.create_connection(("127.0.0.1", mc.smtp_port), timeout=10)
    assert s.recv(512).startswith(b"220 ")
    os.kill(mc.proc.pid(), signal.SIGTERM)  # the master only, not the group
    assert mc.proc.proc.wait(20) == 0
    s.close()
    assert all(gone(p) for p in pids)
    assert not spfix.port_open(mc.smtp_port)
    assert not spfix.port_open(mc.sub_port)
    log = mc.proc.log()
    for p in pids:
        assert "pid=%d status=0" % p in log


def test_kill9_of_the_master_takes_the_workers(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path, workers=2).start()
    pids = workers_of(mc, 2)
    os.kill(mc.proc.pid(), signal.SIGKILL)
    mc.proc.proc.wait(10)
    # PR_SET_PDEATHSIG: the workers die with it and nothing stays bound
    spfix.wait_for(lambda: all(gone(p) for p in pids), what="the workers to die")
    spfix.wait_for(lambda: not spfix.port_open(mc.smtp_port), what="the port to close")
    # and a new instance binds the same ports at once
    mc.start()
    workers_of(mc, 2)
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.sendmail("x@remote.example", ["alice@example.com"], message(1, "again"))
    assert "again-1" in subjects(mc)


def test_queue_wakeup_from_a_worker(daemons, build, free_port, tmp_path):
    sink = SmtpSink(daemons, free_port, tmp_path).start()
    # an hour between scans: only the workers' wake-ups can start deliveries
    mc = relay_mailcore(daemons, build, free_port, tmp_path, sink.port,
                        extra="mailcore.queue.scan_interval = 1h\nmailcore.workers = 2\n").start()
    workers_of(mc, 2)
    for i in range(6):
        with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
            s.sendmail("alice@example.com", ["bob@remote.example"],
                       ("Subject: wake-%d\r\n\r\nhello\r\n" % i).encode())
    spfix.wait_for(lambda: len(sink.messages()) == 6 and queue_files(mc) == [], 20,
                   "6 messages at the sink and an empty queue")
    log = mc.proc.log().splitlines()
    master = "mailcore[%d]" % mc.proc.pid()
    delivered = [l for l in log if "event=queue_delivered" in l]
    assert len(delivered) == 6
    assert all(master in l for l in delivered)  # the queue manager is the master's
    assert mc.proc.stop() == 0


def imap_login(port):
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login("alice@example.com", PASSWORD)
    return c


def on_two_workers(mc, pids, open_session, tries=60):
    """Opens sessions until two are on different workers; closes the rest."""
    spare, by_pid = [], {}
    for _ in range(tries):
        c = open_session()
        pid = server_pid_of(c.sock, pids)
        assert pid in pids
        if pid not in by_pid:
            by_pid[pid] = c
        else:
            spare.append(c)
        if len(by_pid) == 2:
            break
    for c in spare:
        c.sock.close()
    assert len(by_pid) == 2, "every session on one worker after %d tries" % tries
    return list(by_pid.values())


def test_imap_sessions_on_two_workers_see_each_other(daemons, build, free_port, tmp_path):
    mc = imap_mailcore(daemons, build, free_port, tmp_path, extra_conf="mailcore.workers = 2\n")
    pids = workers_of(mc, 2)
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.sendmail("x@remote.example", ["alice@example.com"], message(1, "first"))
    a, b = on_two_workers(mc, pids, lambda: imap_login(mc.imap_port))
    try:
        assert a.select("INBOX")[1] == [b"1"]
        assert b.select("INBOX")[1] == [b"1"]
        # a new message appended through A shows in B
        assert a.append("INBOX", None, None, message(2, "second"))[0] == "OK"
        b.noop()
        assert b"2" in b.untagged_responses.get("EXISTS", [])
        # a flag set through A reaches B as a FETCH
        assert a.store("1", "+FLAGS", "\\Flagged")[0] == "OK"
        typ, data = b.noop()
        assert typ == "OK"
        fetched = b.untagged_responses.get("FETCH", [])
        assert any(b"\\Flagged" in f for f in fetched), fetched
        # an expunge through A reaches B
        assert a.store("2", "+FLAGS", "\\Deleted")[0] == "OK"
        assert a.expunge()[0] == "OK"
        b.noop()
        assert b"2" in b.untagged_responses.get("EXPUNGE", [])
        # B idles; a message appended through A shows up in B's IDLE
        def append_third():
            assert a.append("INBOX", None, None, message(3, "third"))[0] == "OK"

        assert idle_see(b, append_third) == b"* 2 EXISTS\r\n"
    finally:
        for c in (a, b):
            try:
                c.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
    assert mc.proc.stop() == 0


def test_pop_maildrop_lock_across_workers(daemons, build, free_port, tmp_path):
    mc = imap_mailcore(daemons, build, free_port, tmp_path, extra_conf="mailcore.workers = 2\n")
    pids = workers_of(mc, 2)
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=20) as s:
        s.sendmail("x@remote.example", ["alice@example.com"], message(1, "pop"))
    a, b = on_two_workers(mc, pids, lambda: poplib.POP3("127.0.0.1", mc.pop_port, timeout=20))
    a.user("alice@example.com")
    a.pass_(PASSWORD)
    b.user("alice@example.com")
    with pytest.raises(poplib.error_proto) as e:
        b.pass_(PASSWORD)
    assert b"IN-USE" in e.value.args[0]
    assert a.stat()[0] == 1
    a.dele(1)
    a.quit()
    # the lock goes with A's session (pop_session.c releases it when the
    # session is freed, just after the +OK to QUIT): then a new session on
    # any worker gets the maildrop and sees the deletion
    def pop_login():
        p = poplib.POP3("127.0.0.1", mc.pop_port, timeout=20)
        p.user("alice@example.com")
        try:
            p.pass_(PASSWORD)
        except poplib.error_proto as err:
            assert b"IN-USE" in err.args[0]
            p.sock.close()
            return None
        return p

    c = spfix.wait_for(pop_login, what="the maildrop lock to be released")
    assert c.stat()[0] == 0
    c.quit()
    b.sock.close()
    assert mc.proc.stop() == 0
