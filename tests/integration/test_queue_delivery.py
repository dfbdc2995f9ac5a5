"""The outbound queue against real peers: Postfix's smtp-sink as the
smarthost (plain relay, musttls deferral, 5xx bounce with an RFC 3464 DSN,
4xx retried, spqueue list/flush, kill -9 during delivery) and a small
Python STARTTLS sink (TLS with certificate and host-name checks)."""

import os
import signal
import smtplib
import time

import spfix
from queue_fix import SmtpSink, TlsSink, parse, queue_files, relay_mailcore, spqueue


def send(mc, rcpts, subject, text="hello", sender="alice@example.com"):
    body = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (sender, rcpts[0], subject, text))
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        assert s.sendmail(sender, rcpts, body.encode()) == {}


def test_relay_through_smarthost(daemons, build, free_port, tmp_path):
    sink = SmtpSink(daemons, free_port, tmp_path).start()
    mc = relay_mailcore(daemons, build, free_port, tmp_path, sink.port).start()
    for i in range(3):
        send(mc, ["bob@remote.example", "carol@other.example"], "relay-%d" % i,
             "line one\r\n.leading dot\r\n..two dots")
    spfix.wait_for(lambda: len(sink.messages()) == 3 and queue_files(mc) == [], 20,
                   "3 messages at the sink and an empty queue")
    for m in sink.messages():
        assert b"X-Mail-Args: <alice@example.com>" in m
        assert b"X-Rcpt-Args: <bob@remote.example>" in m
        assert b"X-Rcpt-Args: <carol@other.example>" in m
        # dot-stuffing undone by the sink: the text arrives as written
        assert b"\nline one\n.leading dot\n..two dots\n" in m  # (the sink writes LF)
    assert os.listdir(os.path.join(mc.queue, "state")) == []
    assert mc.proc.log().count("event=queue_delivered") == 6


def test_starttls_with_verification(daemons, build, free_port, tmp_path, pki):
    sink = TlsSink(pki.server_rsa, pki.p("server-rsa.key"))
    try:
        # "localhost": the certificate's name; ::1 is refused, 127.0.0.1 answers
        conf = ("mailcore.queue.smarthost = localhost:%d\nmailcore.queue.tls = must\n"
                "mailcore.queue.tls_verify = yes\nmailcore.queue.tls_cafile = %s\n"
                % (sink.port, pki.ca_crt))
        from mcfix import Mailcore
        from queue_fix import INTRANET
        mc = Mailcore(daemons, build, free_port, tmp_path, extra_conf=conf, mappings=INTRANET,
                      queue_delivery=True).start()
        send(mc, ["bob@remote.example"], "over-tls")
        with sink.cond:
            assert sink.cond.wait_for(lambda: sink.received, 20), mc.proc.log()[-3000:]
        tls, mail, rcpts, data = sink.received[0]
        assert tls in ("TLSv1.2", "TLSv1.3")
        assert mail == "<alice@example.com>" and rcpts == ["<bob@remote.example>"]
        assert b"Subject: over-tls" in data
        spfix.wait_for(lambda: queue_files(mc) == [], 10, "empty queue")
        assert "event=smtpc_tls" in mc.proc.log() and "verified=yes" in mc.proc.log()
    finally:
        sink.close()


def test_tls_verify_failure_defers(daemons, build, free_port, tmp_path, pki):
    sink = TlsSink(pki.server_rsa, pki.p("server-rsa.key"))
    try:
        conf = ("mailcore.queue.smarthost = 127.0.0.1:%d\nmailcore.queue.tls = must\n"
                "mailcore.queue.tls_verify = yes\nmailcore.queue.tls_cafile = %s\n"
                % (sink.port, pki.p("badca.crt")))
        from mcfix import Mailcore
        from queue_fix import INTRANET
        mc = Mailcore(daemons, build, free_port, tmp_path, extra_conf=conf, mappings=INTRANET,
                      queue_delivery=True).start()
        send(mc, ["bob@remote.example"], "bad-cert")
        mc.proc.wait_log("event=queue_deferred", 20)
        assert sink.received == []
        assert len(queue_files(mc)) == 1
    finally:
        sink.close()


def test_musttls_to_peer_without_starttls_defers(daemons, build, free_port, tmp_path):
    sink = SmtpSink(daemons, free_port, tmp_path).start()
    mc = relay_mailcore(daemons, build, free_port, tmp_path, sink.port,
                        "mailcore.queue.tls = must\n").start()
    send(mc, ["bob@remote.example"], "must-tls")
    # the state file is written after the deferral is logged
    out = spfix.wait_for(lambda: (lambda o: "attempts=1" in o and o)(spqueue(build, mc, "list").stdout),
                         20, "the deferral recorded")
    assert sink.messages() == []
    assert len(queue_files(mc)) == 1
    assert "to=<bob@remote.example> pending" in out
    assert "TLS is required, but was not offered" in out
    assert "1 message in the queue" in out


def test_permanent_failure_bounces_with_dsn(daemons, build, free_port, tmp_path):
    sink = SmtpSink(daemons, free_port, tmp_path,
                    ["-f", "RCPT", "-B", "550 5.1.1 No such user here"]).start()
    mc = relay_mailcore(daemons, build, free_port, tmp_path, sink.port).start()
    send(mc, ["nobody@remote.example"], "will-bounce")
    spfix.wait_for(lambda: mc.messages("alice") and queue_files(mc) == [], 20,
                   "a DSN in alice's Maildir")
    (raw,) = mc.messages("alice").values()
    assert raw.startswith(b"Return-Path: <>\r\n")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    per_msg, per_rcpt = parts[1].get_payload()[0], parts[1].get_payload()[1]
    assert per_msg["Reporting-MTA"] == "dns; mx.example.com"
    assert per_rcpt["Final-Recipient"] == "rfc822; nobody@remote.example"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert "550 5.1.1 No such user here" in per_rcpt["Diagnostic-Code"]
    assert per_rcpt["Diagnostic-Code"].startswith("smtp; ")
    assert "Subject: will-bounce" in parts[2].get_payload()


def test_bounce_of_a_bounce_is_dropped(daemons, build, free_port, tmp_path):
    sink = SmtpSink(daemons, free_port, tmp_path,
                    ["-f", "RCPT", "-B", "550 5.1.1 No such user here"]).start()
    mc = relay_mailcore(daemons, build, free_port, tmp_path, sink.port).start()
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        s.sendmail("<>", ["nobody@remote.example"], b"Subject: a bounce\r\n\r\nx\r\n")
    spfix.wait_for(lambda: "event=queue_removed" in mc.proc.log(), 20, "the message removed")
    assert mc.messages("alice") == {} and mc.messages("postmaster") == {}
    assert queue_files(mc) == []


def test_temporary_failure_is_retried_then_flushed(daemons, build, free_port, tmp_path):
    port = free_port()
    soft = SmtpSink(daemons, free_port, tmp_path, ["-r", "RCPT"], name="soft", port=port).start()
    mc = relay_mailcore(daemons, build, free_port, tmp_path, port, retry_max="1h").start()
    send(mc, ["bob@remote.example"], "retried")
    # the queue tries again on its own, backing off 1 s, 2 s, 4 s, ...
    out = spfix.wait_for(lambda: (lambda o: "attempts=3" in o and o)(spqueue(build, mc, "list").stdout),
                         20, "three attempts recorded")
    assert "next=in 4s" in out or "next=in 3s" in out, out
    assert "to=<bob@remote.example> pending" in out and "450 4.3.0" in out
    attempts = [l for l in out.splitlines() if "attempts=" in l][0]
    assert int(attempts.split("attempts=")[1].split()[0]) >= 2
    soft.proc.stop()
    ok = SmtpSink(daemons, free_port, tmp_path, name="ok", port=port).start()
    assert "flush requested" in spqueue(build, mc, "flush").stdout
    # well before the next attempt the backoff would have made
    spfix.wait_for(lambda: len(ok.messages()) == 1 and queue_files(mc) == [], 2.5,
                   "delivery right after the flush")
    assert "event=queue_flush" in mc.proc.log()
    assert "0 messages in the queue" in spqueue(build, mc, "list").stdout


def test_kill9_during_delivery_loses_nothing(daemons, build, free_port, tmp_path):
    n = 60
    # the sink waits 1 s before answering DATA: deliveries are in flight
    sink = SmtpSink(daemons, free_port, tmp_path, ["-w", "1"]).start()
    mc = relay_mailcore(daemons, build, free_port, tmp_path, sink.port,
                        "mailcore.queue.max_per_domain = 10\nmailcore.queue.max_deliveries = 10\n"
                        ).start()
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        for i in range(n):
            s.sendmail("alice@example.com", ["bob@remote.example"],
                       ("Subject: kill-%d\r\n\r\nbody %d\r\n" % (i, i)).encode())
    spfix.wait_for(lambda: len(sink.messages()) >= 5, 30, "some deliveries")
    os.kill(mc.proc.pid(), signal.SIGKILL)
    mc.proc.stop()
    before = len(sink.messages())
    assert before < n, "everything was delivered before the kill"
    mc.start()
    spfix.wait_for(lambda: queue_files(mc) == [], 60, "the queue to drain after the restart")
    subjects = []
    for m in sink.messages():
        line = [l for l in m.splitlines() if l.startswith(b"Subject: kill-")][0]
        subjects.append(int(line.split(b"-")[1]))
    assert set(subjects) == set(range(n)), "lost: %s" % sorted(set(range(n)) - set(subjects))
    # at-least-once: only what was in flight at the kill may come twice
    assert len(subjects) - n <= 10, "too many duplicates: %d" % (len(subjects) - n)
