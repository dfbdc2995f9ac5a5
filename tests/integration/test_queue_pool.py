"""The store pool: a slow crypt(3) (yescrypt at a high cost) or a slow
fsync never stalls other sessions, and a full disk answers 452 4.3.1 and
loses nothing (a 1 MiB tmpfs; where mount is refused, RLIMIT_FSIZE through
prlimit(1), which makes the writes fail with EFBIG)."""

import os
import shutil
import smtplib
import subprocess

import pytest

import spfix
from mcfix import Mailcore, connect, recv_reply


def test_slow_crypt_does_not_stall_other_sessions(daemons, build, free_port, tmp_path):
    if shutil.which("mkpasswd") is None:
        pytest.skip("mkpasswd (Debian package whois) is needed for a yescrypt hash")
    mc = Mailcore(daemons, build, free_port, tmp_path)
    slow = subprocess.run(["mkpasswd", "-m", "yescrypt", "-R", "11", "slowpw"], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()
    with open(os.path.join(mc.d, "users"), "a") as f:
        f.write("slow@example.com:%s:\n" % slow)
    mc.start()
    a = connect(mc.sub_port)
    a.sendall(b"EHLO a.example\r\n")
    recv_reply(a)
    # AUTH PLAIN slow@example.com / slowpw: seconds of yescrypt on the pool
    a.sendall(b"AUTH PLAIN AHNsb3dAZXhhbXBsZS5jb20Ac2xvd3B3\r\n")
    mc.proc.wait_log("to=auth_check", 10)
    # meanwhile a whole mail transaction on another session
    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        assert s.sendmail("x@remote.example", ["bob@example.com"], b"Subject: meanwhile\r\n\r\nx\r\n") == {}
    reply, _ = recv_reply(a)
    assert reply.startswith(b"235 2.7.0"), reply
    a.close()
    log = mc.proc.log()
    assert log.index("event=smtp_message") < log.index('event=smtp_auth client=127.0.0.1 user="slow@example.com" result=ok')


def _mount_tmpfs(path):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode == 0


def test_disk_full_is_a_temporary_failure_and_nothing_is_lost(daemons, build, free_port, tmp_path):
    small = os.path.join(str(tmp_path), "small")
    mounted = os.environ.get("SP_TEST_NO_MOUNT") != "1" and _mount_tmpfs(small)
    try:
        extra = "mailcore.store = %s/store\n" % small
        mc = Mailcore(daemons, build, free_port, tmp_path, extra_conf="")
        # the store goes to the small filesystem
        with open(mc.conf) as f:
            conf = f.read().replace("mailcore.store = %s\n" % mc.store, extra)
        with open(mc.conf, "w") as f:
            f.write(conf)
        mc.store = small + "/store"
        if not mounted:
            # no mount here: a 1 MiB file size limit on the daemon instead
            # (a per-file limit: the third message, larger than it, hits it)
            mc.argv = ["prlimit", "--fsize=204800"] + mc.argv
        mc.start()
        acked, refused = [], None
        with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
            for i in range(12):
                payload = b"x" * (300 * 1024 if mounted or i >= 2 else 10 * 1024)
                msg = b"Subject: fill-%d\r\n\r\n%s\r\nEND %d\r\n" % (i, payload, i)
                try:
                    s.sendmail("x@remote.example", ["bob@example.com"] if mounted else
                               ["alice@example.com"], msg)
                    acked.append(i)
                except smtplib.SMTPDataError as e:
                    refused = (e.smtp_code, e.smtp_error)
                    break
        assert refused is not None, "the store never filled up"
        assert refused[0] == 452 and refused[1].startswith(b"4.3.1 "), refused
        assert "event=smtp_store_no_space" in mc.proc.log()
        local = "bob" if mounted else "alice"
        stored = mc.messages(local)
        assert len(stored) == len(acked)
        for raw in stored.values():
            assert raw.endswith(b"\r\nEND %d\r\n" % int(raw.split(b"Subject: fill-")[1].split(b"\r\n")[0]))
        tmpdir = os.path.join(mc.store, "example.com", local, "Maildir", "tmp")
        assert os.listdir(tmpdir) == []  # the refused copy was removed
        if mounted:
            # space comes back: mail is accepted again
            for name in list(stored)[:2]:
                os.unlink(os.path.join(mc.maildir_new(local), name))
            with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
                assert s.sendmail("x@remote.example", ["bob@example.com"], b"Subject: again\r\n\r\nx\r\n") == {}
        mc.proc.stop()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", small])
