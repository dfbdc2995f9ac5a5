"""A small IMAP4rev1 client for the mail benchmark (bench/mail_bench.py):
one raw socket, one command at a time, timed from the send to the tagged
reply. It parses just enough of RFC 3501's response grammar to be exact:
lines, {n} literals (skipped by count, so a tag inside a message body is
never mistaken for the end), untagged EXISTS and FETCH counted. imaplib
would do, but it builds a Python object per response; this client keeps
its own CPU time small and reports it (time.process_time) so the bench
can say when the client, not the server, was the limit.

SECURITY: reads untrusted bytes only from the benchmark's own servers on
127.0.0.1; literals and lines are bounded (MAX_LITERAL, MAX_LINE)."""

import re
import socket
import time

MAX_LINE = 1 << 20
MAX_LITERAL = 64 << 20
LITERAL_RE = re.compile(rb"\{(\d+)\}$")
FETCH_RE = re.compile(rb"^\* \d+ FETCH ")
EXISTS_RE = re.compile(rb"^\* (\d+) EXISTS")


class ImapError(Exception):
    pass


class Reply:
    """One command's outcome: the tagged status and what came before it."""

    def __init__(self):
        self.status = None        # b"OK" | b"NO" | b"BAD"
        self.text = b""
        self.exists = None        # the last * N EXISTS
        self.fetches = 0          # untagged FETCH responses
        self.literal_bytes = 0    # sum of literal sizes
        self.literals = 0
        self.wall_s = 0.0
        self.client_cpu_s = 0.0


class ImapClient:
    def __init__(self, port, host="127.0.0.1", timeout=300.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        greeting = self._line()
        if not greeting.startswith(b"* OK"):
            raise ImapError("greeting: %r" % greeting[:200])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, need):
        """Until len(buf) - pos >= need; compacts the consumed prefix."""
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        while len(self.buf) - self.pos < need:
            chunk = self.sock.recv(1 << 18)
            if not chunk:
                raise ImapError("connection closed by the server")
            self.buf += chunk

    def _line(self):
        while True:
            eol = self.buf.find(b"\r\n", self.pos)
            if eol >= 0:
                line = bytes(self.buf[self.pos:eol])
                self.pos = eol + 2
                return line
            if len(self.buf) - self.pos > MAX_LINE:
                raise ImapError("line longer than %d bytes" % MAX_LINE)
            self._fill(len(self.buf) - self.pos + 1)

    def command(self, text):
        """Sends `TAG text`, reads to the tagged reply; returns a Reply.
        A NO or BAD raises ImapError: no number may come from a failure."""
        self.n += 1
        tag = b"b%d" % self.n
        r = Reply()
        c0, t0 = time.process_time(), time.perf_counter()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            first = self._line()
            line = first
            # a logical response line may carry several literals
            while True:
                m = LITERAL_RE.search(line)
                if not m:
                    break
                size = int(m.group(1))
                if size > MAX_LITERAL:
                    raise ImapError("literal of %d bytes" % size)
                self._fill(size)
                self.pos += size
                r.literal_bytes += size
                r.literals += 1
                line = self._line()
            if first.startswith(tag + b" "):
                r.status, _, r.text = first[len(tag) + 1:].partition(b" ")
                break
            if FETCH_RE.match(first):
                r.fetches += 1
            else:
                m = EXISTS_RE.match(first)
                if m:
                    r.exists = int(m.group(1))
        r.wall_s = time.perf_counter() - t0
        r.client_cpu_s = time.process_time() - c0
        if r.status != b"OK":
            raise ImapError("%s -> %s %s" % (text, r.status.decode(errors="replace"),
                                             r.text[:200].decode(errors="replace")))
        return r

    def login(self, user, password):
        return self.command('LOGIN "%s" "%s"' % (user, password))
