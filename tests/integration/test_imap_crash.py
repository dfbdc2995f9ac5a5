"""Crash safety of IMAP APPEND (issue 8): several clients APPEND messages of
all sizes (some of a few hundred KB, so the kill lands inside a literal or
an fsync) to INBOX and to a folder while mailcore's master is killed with
SIGKILL at a random moment; its workers must die with it (PR_SET_PDEATHSIG).
Then, from the Maildir as the kill left it and from a fresh IMAP session of
a restarted daemon on the same ports and store: every APPEND that got a
tagged OK is there once, byte for byte, under the UID its APPENDUID gave;
cur/ and new/ hold nothing partial (tmp/ may keep strays); UIDVALIDITY is
unchanged, UIDs ascend, and a new APPEND gets a UID above every one seen.
The kill is repeated at several random moments on the same store, and once
more with STORE (flags, keywords) and UID EXPUNGE running beside the
APPENDs: an acknowledged EXPUNGE never comes back, an acknowledged STORE
is kept. The seed is printed; SP_CRASH_SEED=N replays its choices (the kill
moment still depends on the machine's timing)."""

import base64
import hashlib
import imaplib
import os
import random
import re
import signal
import socket
import threading
import time

import pytest

import spfix
from imapfix import PASSWORD, imap_mailcore
from mcfix import DOMAIN, child_pids

USER = "bob@example.com"  # no quota: the big messages must not hit one
FOLDERS = ("INBOX", "Crash")
KEYWORDS = ("$CrashA", "$CrashB", "Work")
SYSFLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft")
PER_CLIENT = 400  # far more than a round gets through before its kill

SEED = int(os.environ.get("SP_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


# ------------------------------------------------------------ messages

def make_message(mid, rng):
    """A message named mid whose size rng picks: mostly small, some of a
    few hundred KB. The payload's digest and an end marker make a
    truncated copy recognisable."""
    r = rng.random()
    if r < 0.6:
        n = rng.randint(100, 20000)
    elif r < 0.85:
        n = rng.randint(20000, 120000)
    else:
        n = rng.randint(200000, 600000)
    payload = base64.encodebytes(rng.randbytes(n * 3 // 4 + 1)).replace(b"\n", b"\r\n")
    digest = hashlib.sha256(payload).hexdigest()
    head = ("From: crash@remote.example\r\nTo: %s\r\nSubject: crash %s\r\n"
            "Message-ID: <%s@crash.example>\r\nX-Crash-Id: %s\r\nX-Digest: %s\r\n\r\n"
            % (USER, mid, mid, mid, digest))
    # CRLF line ends only (RFC 5322 2.3)
    return head.encode() + payload + ("END-OF-MESSAGE %s\r\n" % mid).encode()


def parse_message(raw):
    """The crash id of a whole message, or raises AssertionError saying
    what is wrong with it (a partial or foreign message)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no header end in %d bytes: %r" % (len(raw), raw[:200])
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n") if b": " in line)
    assert b"X-Crash-Id" in fields and b"X-Digest" in fields, "foreign header: %r" % head[:300]
    mid = fields[b"X-Crash-Id"].decode()
    payload, _, trailer = body.rpartition(b"END-OF-MESSAGE ")
    assert trailer == mid.encode() + b"\r\n", "%s: truncated (%d bytes, ends %r)" % (mid, len(raw), raw[-60:])
    assert hashlib.sha256(payload).hexdigest() == fields[b"X-Digest"].decode(), "%s: payload damaged" % mid
    return mid


def norm_flags(flags):
    return frozenset(f.lower() for f in flags if f.lower() != "\\recent")


def flag_list(flags):
    return "(%s)" % " ".join(sorted(flags))


# ------------------------------------------------------------ the ledger

class Msg:
    def __init__(self, mid, folder, raw, flags):
        self.mid, self.folder, self.raw = mid, folder, raw
        self.state = "sent"      # sent | acked | refused | absent
        self.uid = None
        self.validity = None
        self.flags_ok = {norm_flags(flags)}  # flag sets it may show
        self.expunge = None       # None | sent | acked


class Ledger:
    """What the clients sent and what the server acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.msgs = {}
        self.acks = 0             # acknowledged commands, for the kill moment
        self.stores = self.expunges = 0
        self.errors = []          # protocol surprises the clients saw
        self.refusals = []
        self.validity = {}        # folder -> UIDVALIDITY
        self.max_uid = {f: 0 for f in FOLDERS}

    def sent(self, mid, folder, raw, flags):
        m = Msg(mid, folder, raw, flags)
        with self.lock:
            self.msgs[mid] = m
        return m

    def acked_append(self, m, text):
        got = re.search(rb"\[APPENDUID (\d+) (\d+)\]", text)
        with self.lock:
            if got is None:
                self.errors.append("%s: APPEND OK without APPENDUID: %r" % (m.mid, text))
                return
            m.validity, m.uid = int(got.group(1)), int(got.group(2))
            m.state = "acked"
            if self.validity.setdefault(m.folder, m.validity) != m.validity:
                self.errors.append("%s: [APPENDUID %d %d] in %s, whose UIDVALIDITY was %d"
                                   % (m.mid, m.validity, m.uid, m.folder, self.validity[m.folder]))
            self.acks += 1
            self.max_uid[m.folder] = max(self.max_uid[m.folder], m.uid)

    def count(self, what):
        with self.lock:
            return sum(1 for m in self.msgs.values() if m.state == what)


class Session:
    """A plain IMAP client on a socket. APPEND sends its message as a
    LITERAL+ literal (RFC 7888) in the same write as the command and its
    closing CRLF. imaplib writes the literal and the CRLF apart, and
    mailcore has been seen to stop reading a connection whose literal
    (over about 12 KB) arrived before that CRLF: that is a bug of its own,
    which must not hide what this test is about."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.n = 0
        greeting = self.line()
        assert greeting.startswith(b"* OK"), greeting
        status, text, _ = self.command(b"LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
        assert status == "OK", text

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def command(self, text, literal=None):
        """Returns (status, text of the tagged reply, untagged lines)."""
        self.n += 1
        tag = b"c%d" % self.n
        data = tag + b" " + text
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.sock.sendall(data + b"\r\n")
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                status, _, rest = line[len(tag) + 1:].partition(b" ")
                return status.decode(), rest, untagged
            untagged.append(line)

    def append(self, folder, flags, raw):
        return self.command(b"APPEND %s %s" % (folder.encode(), flag_list(flags).encode()), raw)

    def close(self):
        self.sock.close()


class Clients:
    """The client threads of one round, all stopped by the kill."""

    def __init__(self, port, ledger, rnd, seed):
        self.port, self.ledger, self.rnd, self.seed = port, ledger, rnd, seed
        self.threads = []
        self.stop = threading.Event()

    def start(self, n_appenders, n_mutators):
        for c in range(n_appenders):
            self.threads.append(threading.Thread(target=self._run, args=(self.appender, c), daemon=True))
        for c in range(n_mutators):
            folder = FOLDERS[c % len(FOLDERS)]
            self.threads.append(threading.Thread(target=self._run, args=(self.mutator, c, folder),
                                                 daemon=True))
        for t in self.threads:
            t.start()

    def alive(self):
        return any(t.is_alive() for t in self.threads)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(120)
        assert not self.alive(), "a client hangs after the kill"

    def _run(self, fn, *args):
        try:
            fn(*args)
        except (OSError, EOFError):
            pass  # the server died under us
        except Exception as e:  # noqa: BLE001 - the test fails on it
            with self.ledger.lock:
                self.ledger.errors.append("client %s%r: %r" % (fn.__name__, args, e))

    def _append(self, s, folder, rng, tag):
        mid = "r%dx%s" % (self.rnd, tag)
        raw = make_message(mid, rng)
        flags = [f for f in SYSFLAGS + KEYWORDS if rng.random() < 0.2]
        msg = self.ledger.sent(mid, folder, raw, flags)
        status, text, _ = s.append(folder, flags, raw)
        if status == "OK":
            self.ledger.acked_append(msg, text)
        else:
            with self.ledger.lock:
                msg.state = "refused"
                self.ledger.refusals.append("%s: %s %r" % (mid, status, text))
        return msg

    def appender(self, c):
        rng = random.Random("%d-%d-a%d" % (self.seed, self.rnd, c))
        s = Session(self.port)
        for i in range(PER_CLIENT):
            if self.stop.is_set():
                break
            self._append(s, rng.choice(FOLDERS), rng, "a%di%d" % (c, i))
        s.close()

    def mutator(self, c, folder):
        """Appends to its selected folder, then sets the flags of one of
        its own messages (FLAGS, absolute: the last acknowledged set is the
        state) or marks one \\Deleted and UID EXPUNGEs it. Only its own:
        what each message should hold stays known."""
        rng = random.Random("%d-%d-m%d" % (self.seed, self.rnd, c))
        led = self.ledger
        s = Session(self.port)
        status, text, _ = s.command(b"SELECT " + folder.encode())
        assert status == "OK", text
        live = []
        for i in range(PER_CLIENT):
            if self.stop.is_set():
                break
            msg = self._append(s, folder, rng, "m%di%d" % (c, i))
            if msg.state == "acked":
                live.append(msg)
            if not live:
                continue
            target = live[-1] if rng.random() < 0.5 else rng.choice(live)
            flags = [f for f in SYSFLAGS + KEYWORDS if rng.random() < 0.4]
            delete = rng.random() < 0.35
            if delete:
                flags.append("\\Deleted")
            want = norm_flags(flags)
            with led.lock:
                target.flags_ok.add(want)
            status, text, untagged = s.command(b"UID STORE %d FLAGS %s"
                                               % (target.uid, flag_list(flags).encode()))
            fetched = [u for u in untagged if re.search(rb"FETCH \(.*UID %d\b" % target.uid, u)]
            with led.lock:
                if status != "OK":
                    led.errors.append("%s: UID STORE %d: %s %r" % (target.mid, target.uid, status, text))
                    return
                if len(fetched) != 1 or norm_flags(re.search(rb"FLAGS \(([^)]*)\)", fetched[0])
                                                    .group(1).decode().split()) != want:
                    led.errors.append("%s: UID STORE %d FLAGS %s answered %r"
                                      % (target.mid, target.uid, flag_list(flags), untagged))
                    return
                target.flags_ok = {want}
                led.acks += 1
                led.stores += 1
            if delete:
                with led.lock:
                    target.expunge = "sent"
                status, text, _ = s.command(b"UID EXPUNGE %d" % target.uid)
                with led.lock:
                    if status != "OK":
                        led.errors.append("%s: UID EXPUNGE %d: %s %r" % (target.mid, target.uid, status, text))
                        return
                    target.expunge = "acked"
                    led.acks += 1
                    led.expunges += 1
                live.remove(target)
        s.close()


# ------------------------------------------------------------ the checks

def folder_dir(mc, folder):
    root = os.path.join(mc.store, DOMAIN, USER.split("@")[0], "Maildir")
    return root if folder == "INBOX" else os.path.join(root, "." + folder)


def read_uidlist(path):
    """(uidvalidity, uidnext, {base: uid}) from a sealpost-uidlist."""
    with open(path, "rb") as f:
        lines = f.read().decode().split("\n")
    magic = lines[0].split()
    assert magic[:2] == ["sealpost-uidlist", "1"], lines[0]
    uids, last = {}, 0
    for line in lines[1:]:
        if not line:
            continue
        uid, base = line.split(" ")
        assert int(uid) > last, "%s: UIDs not ascending at %r" % (path, line)
        last = int(uid)
        uids[base] = last
    assert int(magic[3]) > last, "%s: uidnext %s not above UID %d" % (path, magic[3], last)
    return int(magic[2]), int(magic[3]), uids


def must_be_there(m):
    """Acknowledged and no EXPUNGE sent (one in flight may or may not have
    happened)."""
    return m.state == "acked" and m.expunge is None


def check_maildir(mc, ledger, where):
    """The store as the kill left it (no server running): every file in
    cur/ and new/ is one of our messages and whole; each acknowledged one is
    there once, byte for byte, in its folder, listed under its UID."""
    problems = []
    strays = 0
    for folder in FOLDERS:
        d = folder_dir(mc, folder)
        seen = {}
        for sub in ("cur", "new"):
            for name in sorted(os.listdir(os.path.join(d, sub))):
                path = os.path.join(d, sub, name)
                with open(path, "rb") as f:
                    raw = f.read()
                try:
                    mid = parse_message(raw)
                except AssertionError as e:
                    problems.append("partial or foreign file %s (%d bytes): %s" % (path, len(raw), e))
                    continue
                size = re.search(r",S=(\d+)", name)
                if size is None or int(size.group(1)) != len(raw):
                    problems.append("%s: ,S= does not match its %d bytes" % (path, len(raw)))
                seen.setdefault(mid, []).append((path, name.split(":")[0], raw))
        strays += len(os.listdir(os.path.join(d, "tmp")))
        for name in os.listdir(d):
            if ".tmp." in name:
                # a replace (temp, rename) cut short: not a message, never
                # read, but left outside tmp/
                print("%s: %s left in %s" % (where, name, d))
        uidlist = os.path.join(d, "sealpost-uidlist")
        if os.path.exists(uidlist):
            validity, uidnext, listed = read_uidlist(uidlist)
        else:
            validity, uidnext, listed = ledger.validity.get(folder), 1, {}
        if folder in ledger.validity and validity != ledger.validity[folder]:
            problems.append("%s: UIDVALIDITY %d in the uidlist, was %d"
                            % (folder, validity, ledger.validity[folder]))
        for mid, copies in seen.items():
            m = ledger.msgs.get(mid)
            if m is None or m.folder != folder:
                problems.append("%s in %s: not a message we appended there" % (mid, folder))
                continue
            if len(copies) > 1:
                problems.append("%s: %d copies: %s" % (mid, len(copies), [c[0] for c in copies]))
            if copies[0][2] != m.raw:
                problems.append("%s: %s differs from what was appended" % (mid, copies[0][0]))
            if m.state == "absent":
                problems.append("%s: was absent after an earlier kill, now back: %s" % (mid, copies[0][0]))
            if m.expunge == "acked":
                problems.append("%s: UID EXPUNGE was acknowledged, yet %s is there" % (mid, copies[0][0]))
        for m in ledger.msgs.values():
            if m.folder != folder or not must_be_there(m):
                continue
            if m.mid not in seen:
                problems.append("%s (UID %d in %s): acknowledged but gone" % (m.mid, m.uid, folder))
                continue
            base = seen[m.mid][0][1]
            if listed.get(base) != m.uid:
                problems.append("%s: the uidlist gives %s UID %s, APPENDUID said %d"
                                % (m.mid, base, listed.get(base), m.uid))
            if uidnext <= m.uid:
                problems.append("%s: uidnext %d not above its UID %d" % (folder, uidnext, m.uid))
    print("%s: Maildir checked, %d stray files in tmp/" % (where, strays))
    assert not problems, "seed %d, %s:\n%s" % (SEED, where, "\n".join(problems))


def fetch_all(s, folder):
    """[(uid, flags, raw)] in sequence order, from a fresh SELECT."""
    typ, data = s.select(folder)
    assert typ == "OK", data
    validity = int(s.response("UIDVALIDITY")[1][0])
    out = []
    typ, data = s.fetch("1:*", "(UID FLAGS)") if int(data[0]) > 0 else ("OK", [])
    assert typ == "OK"
    order = []
    for d in data:
        if d is None:
            continue
        got = re.match(rb"(\d+) \((.*)\)$", d)
        seq = int(got.group(1))
        uid = int(re.search(rb"UID (\d+)", got.group(2)).group(1))
        flags = re.search(rb"FLAGS \(([^)]*)\)", got.group(2)).group(1).decode().split()
        order.append((seq, uid, flags))
    order.sort()
    assert [o[0] for o in order] == list(range(1, len(order) + 1)), order
    for i in range(0, len(order), 40):
        chunk = order[i:i + 40]
        typ, data = s.fetch("%d:%d" % (chunk[0][0], chunk[-1][0]), "(BODY.PEEK[])")
        assert typ == "OK"
        bodies = {}
        for d in data:
            if isinstance(d, tuple):
                bodies[int(d[0].split()[0])] = d[1]
        for seq, uid, flags in chunk:
            out.append((uid, flags, bodies.get(seq)))
    return validity, out


def check_imap(mc, ledger, where):
    """A fresh session of the restarted daemon: the same messages, bodies,
    UIDs, flags and UIDVALIDITY; then a new APPEND per folder gets a UID
    above every UID seen so far. Settles what the kill left open."""
    s = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=60)
    assert s.login(USER, PASSWORD)[0] == "OK"
    problems = []
    for folder in FOLDERS:
        validity, msgs = fetch_all(s, folder)
        if ledger.validity.setdefault(folder, validity) != validity:
            problems.append("%s: UIDVALIDITY %d, was %d" % (folder, validity, ledger.validity[folder]))
        uids = [u for u, _, _ in msgs]
        if uids != sorted(set(uids)):
            problems.append("%s: UIDs not strictly ascending: %s" % (folder, uids))
        by_mid = {}
        for uid, flags, raw in msgs:
            try:
                mid = parse_message(raw or b"")
            except AssertionError as e:
                problems.append("%s UID %d: partial or foreign message: %s" % (folder, uid, e))
                continue
            if mid in by_mid:
                problems.append("%s: %s under UIDs %d and %d" % (folder, mid, by_mid[mid][0], uid))
            by_mid[mid] = (uid, norm_flags(flags), raw)
        for m in ledger.msgs.values():
            if m.folder != folder:
                continue
            if m.validity is not None and m.validity != ledger.validity[folder]:
                problems.append("%s: APPENDUID gave UIDVALIDITY %d, the folder has %d"
                                % (m.mid, m.validity, ledger.validity[folder]))
            got = by_mid.get(m.mid)
            if got is None:
                if must_be_there(m):
                    problems.append("%s: acknowledged as UID %d, not in %s" % (m.mid, m.uid, folder))
                m.state = "absent" if m.state != "acked" else m.state
                if m.expunge == "sent":
                    m.expunge = "acked"  # settled: it is gone
                continue
            uid, flags, raw = got
            if m.expunge == "acked" or m.state == "absent":
                problems.append("%s: back as UID %d after %s" % (
                    m.mid, uid, "an acknowledged EXPUNGE" if m.expunge == "acked" else "being absent"))
                continue
            if m.uid is not None and uid != m.uid:
                problems.append("%s: UID %d, APPENDUID said %d" % (m.mid, uid, m.uid))
            if raw != m.raw:
                problems.append("%s: body differs from what was appended" % m.mid)
            allowed = set(m.flags_ok)
            if m.state != "acked":
                # an APPEND killed after the delivery into new/, before the
                # rename into cur/ that gives the flags: there, without them
                allowed.add(frozenset())
            if flags not in allowed:
                problems.append("%s: flags %s, expected one of %s"
                                % (m.mid, sorted(flags), [sorted(f) for f in allowed]))
            # settled: it is there now, under this UID, with these flags
            m.state, m.uid, m.flags_ok, m.expunge = "acked", uid, {flags}, None
            m.validity = ledger.validity[folder]
        for mid in by_mid:
            if mid not in ledger.msgs or ledger.msgs[mid].folder != folder:
                problems.append("%s in %s: not a message we appended there" % (mid, folder))
        top = max([ledger.max_uid[folder]] + uids)
        # a message appended now gets a UID above all before (RFC 3501 2.3.1.1)
        probe = ledger.sent("%s-probe-%s" % (where.replace(" ", "-"), folder), folder,
                            make_message("%s-probe-%s" % (where.replace(" ", "-"), folder),
                                         random.Random(SEED)), [])
        p = Session(mc.imap_port)
        status, text, _ = p.append(folder, [], probe.raw)
        assert status == "OK", text
        p.close()
        ledger.acked_append(probe, text)
        if probe.validity != ledger.validity[folder] or probe.uid <= top:
            problems.append("%s: new APPEND got [APPENDUID %s %s], UIDVALIDITY %d, highest UID so far %d"
                            % (folder, probe.validity, probe.uid, ledger.validity[folder], top))
        ledger.max_uid[folder] = max(ledger.max_uid[folder], probe.uid)
    s.logout()
    print("%s: IMAP checked, %d messages there" % (where, sum(
        1 for m in ledger.msgs.values() if m.state == "acked" and m.expunge is None)))
    assert not problems, "seed %d, %s:\n%s" % (SEED, where, "\n".join(problems))


# ------------------------------------------------------------ the daemon

def our_processes(mc):
    """Live (not zombie) processes whose command line holds this test's
    config file: the master and its workers."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % name) as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if mc.conf.encode() in argv and state != "Z":
            out.append((int(name), state))
    return out


def restart(mc, daemons, n):
    mc.proc = daemons("mailcore-%d" % n, mc.argv).start(
        ready_port=[mc.smtp_port, mc.sub_port, mc.imap_port], ready_log="event=ready")


def kill_round(mc, ledger, rnd, rng, appenders, mutators):
    clients = Clients(mc.imap_port, ledger, rnd, SEED)
    # the kill comes after some acknowledged commands, then a random pause
    # (the only sleep: it picks the moment, nothing waits on it)
    after = ledger.acks + rng.randint(3, 40)
    pause = rng.uniform(0, 0.3)
    print("round %d: kill after %d acknowledged commands and %.3fs" % (rnd, after, pause))
    clients.start(appenders, mutators)
    try:
        spfix.wait_for(lambda: ledger.acks >= after or not clients.alive() or ledger.errors, 180, "%d acknowledged commands" % after)
        assert ledger.acks >= after, "clients stopped early: %s\n%s" % (ledger.errors, mc.proc.log()[-3000:])
        time.sleep(pause)
        master = mc.proc.pid()
        workers = child_pids(master)
        os.kill(master, signal.SIGKILL)
        mc.proc.proc.wait(30)
    finally:
        clients.join()
    # PR_SET_PDEATHSIG: nothing of this mailcore outlives its master
    try:
        spfix.wait_for(lambda: not our_processes(mc), 15, "the workers to die with the master")
    except TimeoutError:
        pytest.fail("seed %d: after kill -9 of master %d (workers %s) these live on: %s"
                    % (SEED, master, workers, our_processes(mc)))
    mc.proc.stop()
    assert not ledger.errors, "seed %d:\n%s" % (SEED, "\n".join(ledger.errors))
    print("round %d: killed master %d (workers %s); appends acked %d, in flight %d, refused %d; "
          "STOREs acked %d, EXPUNGEs acked %d"
          % (rnd, master, workers, ledger.count("acked"), ledger.count("sent"), ledger.count("refused"),
             ledger.stores, ledger.expunges))
    for r in ledger.refusals:
        print("  refused:", r)
    ledger.refusals.clear()


def crash_test(daemons, build, free_port, tmp_path, name, rounds, appenders, mutators):
    print("%s: seed %d (SP_CRASH_SEED=%d replays its choices)" % (name, SEED, SEED))
    rng = random.Random("%d-%s" % (SEED, name))
    mc = imap_mailcore(daemons, build, free_port, tmp_path, extra_conf="mailcore.workers = 2\n")
    s = imaplib.IMAP4("127.0.0.1", mc.imap_port, timeout=60)
    assert s.login(USER, PASSWORD)[0] == "OK"
    assert s.create("Crash")[0] == "OK"
    ledger = Ledger()
    # each mailbox's first open gives it its UIDVALIDITY: done here, one
    # after the other. Two pool threads of one worker doing it at once have
    # been seen to race on the Maildir's sealpost-uidvalidity.tmp.PID (one
    # APPEND or SELECT fails with [SERVERBUG]), a bug of its own.
    for folder in FOLDERS:
        assert s.select(folder)[0] == "OK"
        ledger.validity[folder] = int(s.response("UIDVALIDITY")[1][0])
    s.logout()
    for rnd in range(rounds):
        kill_round(mc, ledger, rnd, rng, appenders, mutators)
        check_maildir(mc, ledger, "after kill %d" % rnd)
        restart(mc, daemons, rnd + 1)
        check_imap(mc, ledger, "restart %d" % (rnd + 1))
    # and the Maildir as the last checks left it, with the daemon stopped
    assert mc.proc.stop() == 0
    check_maildir(mc, ledger, "final")


def test_kill9_during_append_keeps_every_acknowledged_message(daemons, build, free_port, tmp_path):
    crash_test(daemons, build, free_port, tmp_path, "append", rounds=3, appenders=4, mutators=0)


def test_kill9_during_append_store_expunge(daemons, build, free_port, tmp_path):
    crash_test(daemons, build, free_port, tmp_path, "mixed", rounds=2, appenders=3, mutators=4)
