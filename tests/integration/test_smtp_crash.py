"""Crash safety of delivery: a client sends message after message while
mailcore is killed with SIGKILL at a random point; after a restart every
message the server acknowledged is in Maildir new/, complete, and new/
holds nothing partial (only tmp/ may keep a stray file)."""

import hashlib
import os
import random
import signal
import smtplib
import threading

from mcfix import Mailcore

N_MESSAGES = 400


def make_message(i):
    # big enough that the kill often lands inside DATA or inside a delivery
    payload = ("%d " % i) * (8000 + (i % 7) * 1000)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    text = ("Subject: crash-%d\r\nX-Digest: %s\r\n\r\n%s\r\nEND-OF-MESSAGE %d\r\n"
            % (i, digest, payload, i))
    return text.encode()


def check_complete(raw):
    """Returns the message number of a complete stored message, or raises."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    subject = [h for h in head.split(b"\r\n") if h.startswith(b"Subject: crash-")]
    digest = [h for h in head.split(b"\r\n") if h.startswith(b"X-Digest: ")]
    assert subject and digest, raw[:300]
    i = int(subject[0][len(b"Subject: crash-"):])
    payload, _, trailer = rest.rpartition(b"\r\nEND-OF-MESSAGE ")
    assert trailer == b"%d\r\n" % i, "truncated message %d" % i
    assert hashlib.sha256(payload).hexdigest().encode() == digest[0][len(b"X-Digest: "):]
    return i


def test_kill9_keeps_every_acknowledged_message(daemons, build, free_port, tmp_path):
    mc = Mailcore(daemons, build, free_port, tmp_path).start()
    acked = []
    stop = threading.Event()
    progress = threading.Condition()

    def client():
        try:
            s = smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10)
            s.ehlo("crash.example")
            for i in range(N_MESSAGES):
                if stop.is_set():
                    break
                s.sendmail("x@remote.example", ["alice@example.com"], make_message(i))
                with progress:
                    acked.append(i)  # only after the 250 to end-of-data
                    progress.notify_all()
        except (smtplib.SMTPException, OSError):
            pass  # the server was killed under us
        finally:
            with progress:
                stop.set()
                progress.notify_all()

    kill_after = random.Random(os.getpid()).randint(5, 60)
    t = threading.Thread(target=client, daemon=True)
    t.start()
    with progress:
        progress.wait_for(lambda: len(acked) >= kill_after or stop.is_set(), timeout=120)
    assert len(acked) >= kill_after, "client stopped early: %s" % mc.proc.log()[-2000:]
    os.kill(mc.proc.pid(), signal.SIGKILL)
    t.join(30)
    assert not t.is_alive()
    mc.proc.stop()

    # restart on the same store: it must come up and keep working
    mc.start()
    stored = mc.messages("alice")
    numbers = [check_complete(raw) for raw in stored.values()]
    assert set(acked) <= set(numbers), "lost: %s" % sorted(set(acked) - set(numbers))
    # at most the one in flight when the kill came is there without its ack
    assert len(set(numbers) - set(acked)) <= 1
    assert len(numbers) == len(set(numbers))
    for name in stored:
        assert ",S=%d" % len(stored[name]) in name

    with smtplib.SMTP("127.0.0.1", mc.smtp_port, timeout=10) as s:
        s.sendmail("x@remote.example", ["alice@example.com"], make_message(N_MESSAGES))
    after = [check_complete(raw) for raw in mc.messages("alice").values()]
    assert sorted(after) == sorted(numbers + [N_MESSAGES])
