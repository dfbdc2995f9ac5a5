"""mailcore over plain SMTP with real clients: Python smtplib (plain, AUTH
PLAIN/LOGIN, submission), swaks (with --pipeline and AUTH), a raw pipelined
batch, relay refusal and intranet relaying, the bare-LF smuggling shape,
and configuration errors."""

import os
import re
import shutil
import smtplib
import subprocess

import pytest

from mcfix import Mailcore, PASSWORD, connect, recv_reply


@pytest.fixture
def mc(daemons, build, free_port, tmp_path):
    return Mailcore(daemons, build, free_port, tmp_path).start()


def body(subject, text="hello"):
    return ("From: x@remote.example\r\nTo: alice@example.com\r\nSubject: %s\r\n\r\n%s\r\n"
            % (subject, text)).encode()


def test_plain_delivery(mc):
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        code, ehlo = s.ehlo("client.example")
        assert code == 250
        for ext in (b"PIPELINING", b"SIZE 10485760", b"8BITMIME", b"ENHANCEDSTATUSCODES"):
            assert ext in ehlo
        assert s.sendmail("x@remote.example", ["alice@example.com", "Bob@Example.COM"],
                          body("plain", "line\r\n.leading dot")) == {}
    for local in ("alice", "bob"):
        msgs = mc.messages(local)
        assert len(msgs) == 1
        (m,) = msgs.values()
        assert m.startswith(b"Return-Path: <x@remote.example>\r\nDelivered-To: %s@example.com\r\n"
                            % local.encode())
        # the client's name is there when its lookup answered in time
        # (test_access_names.py waits for it and checks it)
        assert re.search(rb"Received: from client\.example \((localhost )?\[127\.0\.0\.1\]\)\r\n"
                         rb"\tby mx\.example\.com \(Sealpost\) with ESMTP id ", m), m[:300]
        assert m.endswith(b"Subject: plain\r\n\r\nline\r\n.leading dot\r\n")


def test_unknown_user_and_vrfy(mc):
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("x@remote.example", ["nobody@example.com"], body("x"))
        assert e.value.recipients["nobody@example.com"][0] == 550
        assert e.value.recipients["nobody@example.com"][1].startswith(b"5.1.1 ")
        assert s.verify("alice")[0] == 252
        assert s.expn("staff")[0] == 502
        assert s.help().startswith(b"2.0.0 Commands:")


def test_auth_plain_and_login_on_submission(mc):
    with smtplib.SMTP("127.0.0.1", mc.sub_port, timeout=10) as s:
        s.ehlo("client.example")
        code, msg = s.mail("alice@example.com")
        assert (code, msg) == (530, b"5.7.0 Authentication required")
        s.rset()
        s.login("alice@example.com", PASSWORD)  # smtplib picks PLAIN
        assert s.sendmail("alice@example.com", ["friend@remote.example", "bob@example.com"],
                          body("auth")) == {}
    (m,) = mc.messages("bob").values()
    assert b"with ESMTPA id" in m and b"(authenticated user alice@example.com)" in m
    (q,) = [open(os.path.join(mc.queue, "new", n), "rb").read() for n in os.listdir(os.path.join(mc.queue, "new"))]
    assert q.startswith(b"X-Sealpost-Queue: 1\r\nX-Sealpost-From: <alice@example.com>\r\n"
                        b"X-Sealpost-To: <friend@remote.example>\r\n\r\n")

    with smtplib.SMTP("127.0.0.1", mc.sub_port, timeout=10) as s:
        s.ehlo("client.example")
        s.user, s.password = "bob@example.com", PASSWORD
        code, msg = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235

    with smtplib.SMTP("127.0.0.1", mc.sub_port, timeout=10) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice@example.com", "wrong")
        assert e.value.smtp_code == 535


def test_relay_refused_from_outside(mc):
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("x@remote.example", ["victim@elsewhere.example"], body("relay"))
        code, text = e.value.recipients["victim@elsewhere.example"]
        assert code == 550 and text.startswith(b"5.7.1 ")
    assert not os.path.isdir(os.path.join(mc.queue, "new")) or os.listdir(os.path.join(mc.queue, "new")) == []
    assert "event=smtp_relay_denied" in mc.proc.log()


def test_relay_allowed_from_intranet(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path,
                  mappings="INTERNAL_IP\n  $(127.0.0.0/8)  $Y\n  *  $N\n").start()
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        assert s.sendmail("alice@example.com", ["friend@elsewhere.example"], body("out")) == {}
    assert len(os.listdir(os.path.join(mc.queue, "new"))) == 1


def test_pipelined_batch_answered_in_order_at_once(mc):
    s = connect(mc.smtp_port)
    s.sendall(b"EHLO c.example\r\n")
    ehlo, _ = recv_reply(s)
    assert b"250-PIPELINING" in ehlo
    # RFC 2920: one batch in, all replies back in order, in one write
    s.sendall(b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.com>\r\n"
              b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    first = s.recv(65536)
    assert first == (b"250 2.1.0 Sender <x@remote.example> OK\r\n"
                     b"250 2.1.5 Recipient <alice@example.com> OK\r\n"
                     b"550 5.1.1 <nobody@example.com>: User unknown\r\n"
                     b"250 2.1.5 Recipient <bob@example.com> OK\r\n"
                     b"354 End data with <CR><LF>.<CR><LF>\r\n")
    s.sendall(b"Subject: batch\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    rest = b""
    while not rest.endswith(b"closing connection\r\n"):
        chunk = s.recv(65536)
        assert chunk
        rest += chunk
    assert rest.startswith(b"250 2.0.0 Ok: queued as ") and b"\r\n221 2.0.0 " in rest
    s.close()
    assert len(mc.messages("alice")) == 1 and len(mc.messages("bob")) == 1


def test_smuggling_shape_refused(mc):
    s = connect(mc.smtp_port)
    s.sendall(b"EHLO c.example\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    buf = b""
    for _ in range(4):
        _, buf = recv_reply(s, buf)
    s.sendall(b"Subject: a\r\n\r\nx\n.\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@example.com>\r\n"
              b"DATA\r\nsmuggled\r\n.\r\n")
    reply, buf = recv_reply(s, buf)
    assert reply.startswith(b"550 5.6.0 ")
    s.sendall(b"NOOP\r\n")
    assert recv_reply(s, buf)[0] == b"250 2.0.0 Ok\r\n"
    s.close()
    assert mc.messages("alice") == {} and mc.messages("bob") == {}


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_pipeline_and_auth(mc):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(mc.smtp_port),
                        "--from", "x@remote.example", "--to", "alice@example.com",
                        "--pipeline", "--header", "Subject: swaks-pipe", "--silent", "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(mc.sub_port),
                        "--from", "bob@example.com", "--to", "alice@example.com",
                        "--auth", "LOGIN", "--auth-user", "bob@example.com",
                        "--auth-password", PASSWORD, "--header", "Subject: swaks-auth",
                        "--silent", "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(mc.smtp_port),
                        "--from", "x@remote.example", "--to", "victim@elsewhere.example",
                        "--silent", "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 24, r.stdout  # swaks: a recipient was refused
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in mc.messages("alice").values())
    assert subjects == [b"swaks-auth", b"swaks-pipe"]


def test_bad_config_names_file_and_line(build, tmp_path):
    conf = tmp_path / "sealpost.conf"
    conf.write_text("mailcore.domains = example.com\nmailcore.bogus = 1\n")
    r = subprocess.run([build.bin("mailcore"), "-c", str(conf), "-t"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode != 0 and "%s:2:" % conf in r.stdout, r.stdout

    users = tmp_path / "users"
    users.write_text("alice@example.com:x:\nbroken line\n")
    maps = tmp_path / "mappings"
    maps.write_text("PORT_ACCESS\n  *  $Q\n")
    conf.write_text("mailcore.users = %s\nmailcore.store = %s\n" % (users, tmp_path))
    r = subprocess.run([build.bin("mailcore"), "-c", str(conf), "-t"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode != 0 and "%s:2:" % users in r.stdout, r.stdout
    users.write_text("alice@example.com:x:\n")
    conf.write_text("mailcore.users = %s\nmailcore.store = %s\nmailcore.mappings = %s\n"
                    % (users, tmp_path, maps))
    r = subprocess.run([build.bin("mailcore"), "-c", str(conf), "-t"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode != 0 and "%s:2:" % maps in r.stdout, r.stdout
