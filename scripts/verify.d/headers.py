#!/usr/bin/env python3
"""Security headers on every status the REST server produces (scripts/verify, check `headers`).

Usage: headers.py BASE_URL CA_FILE ADMIN:PASSWORD MEMBER:PASSWORD STRANGER:PASSWORD

BASE_URL is a server started by scripts/verify with the default rate limits for registration
and failed logins (the two 429s made here), generous per-address quotas (so that nothing
else is refused), a 1-second request timeout (408), one hashing slot with no queue and no
verification cache (503). The three users exist; ADMIN has the admin role.

Each status gets one line, `PASS headers.STATUS: ...` or `FAIL headers.STATUS: ...`, naming
every request that made it; a response whose status is not the one expected fails the line
of the status expected. The exact set checked is the one of
crates/natterjack-api/src/pipeline/headers.rs, plus the content type of the
status and no `Server` or `X-Powered-By` header.

Two keys are not the pipeline's: `400-unparsed` and `431-transport` hold the requests that
the HTTP layer answers by itself, before any layer of the pipeline runs (a request hyper
cannot parse, a head beyond the transport's caps). Their responses are held to exactly what
docs/CONFIGURATION.md ("Responses the HTTP layer writes itself") promises, and to nothing
less: over HTTP/1.1 the status line, `connection: close`, `content-length: 0`, a `date`, no
other header, no body, and the connection closed; over HTTP/2 a lone `:status` ending the
stream, with no header field and no DATA. A header or a byte of body there fails the line,
as a missing header fails any other. Exit status 1 when any line fails.
"""

import base64
import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import OrderedDict

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "cache-control": "no-store, max-age=0",
    "pragma": "no-cache",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-xss-protection": "0",
}
FORBIDDEN = ("server", "x-powered-by")
JSON = "application/json"
PROBLEM = "application/problem+json"
# The keys of the responses the HTTP layer (hyper, h2) writes by itself: see bare_problems.
BARE = ("400-unparsed", "431-transport")
# hyper's bare response over HTTP/1.1, in this order: docs/CONFIGURATION.md, "Responses the
# HTTP layer writes itself".
BARE_HTTP1 = [("connection", "close"), ("content-length", "0"), ("date", None)]
IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug"
                         r"|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


def code(key):
    """The status of a result key: 404, or "400-unparsed" -> 400."""
    return int(str(key).split("-", 1)[0])


def expected_content_type(status):
    if status == 204:
        return None  # no body, so no content type
    return JSON if status < 400 else PROBLEM


def header_problems(status, headers):
    """headers: list of (lower-case name, value). Returns what is wrong, as strings."""
    wrong = []
    by_name = {}
    for name, value in headers:
        by_name.setdefault(name, []).append(value)
    for name, value in SECURITY_HEADERS.items():
        got = by_name.get(name)
        if got is None:
            wrong.append(f"{name} missing")
        elif got != [value]:
            wrong.append(f"{name} is {got!r}, not [{value!r}]")
    for name in FORBIDDEN:
        if name in by_name:
            wrong.append(f"{name} present ({by_name[name]!r})")
    ct = expected_content_type(status)
    got = by_name.get("content-type")
    if ct is None:
        if got is not None:
            wrong.append(f"content-type {got!r} on a {status}, which has no body")
    elif got != [ct]:
        wrong.append(f"content-type is {got!r}, not [{ct!r}]")
    return wrong


def bare_problems(headers, body, closed):
    """What keeps an HTTP/1.1 response from being exactly hyper's bare one."""
    wrong = []
    names = [name for name, _ in headers]
    if names != [name for name, _ in BARE_HTTP1]:
        wrong.append(f"header fields {names}, not {[name for name, _ in BARE_HTTP1]}")
    for (name, value), (_, want) in zip(headers, BARE_HTTP1):
        if want is not None and value != want:
            wrong.append(f"{name} is {value!r}, not {want!r}")
        if name == "date" and not IMF_FIXDATE.match(value):
            wrong.append(f"date {value!r} is not an IMF-fixdate")
    if body:
        wrong.append(f"{len(body)} bytes after the head ({body[:40]!r})")
    if not closed:
        wrong.append("the connection stayed open")
    return wrong


def hpack_int(value, prefix_bits, first=0):
    """RFC 7541 §5.1: `value` with an N-bit prefix, `first` holding the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A literal field without indexing, with a new name, neither string Huffman-coded."""
    return (b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value)


# RFC 7541 Appendix B, the codes of the ten digits: all a `:status` value can hold.
HUFFMAN_DIGITS = {(0x0, 5): "0", (0x1, 5): "1", (0x2, 5): "2", (0x19, 6): "3", (0x1a, 6): "4",
                  (0x1b, 6): "5", (0x1c, 6): "6", (0x1d, 6): "7", (0x1e, 6): "8", (0x1f, 6): "9"}
# RFC 7541 Appendix A, the entries of the static table that are `:status` values.
STATIC_STATUS = {8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}


def huffman_digits(data):
    """A Huffman-coded string of digits, or None when it holds anything else."""
    bits = "".join(f"{b:08b}" for b in data)
    out, i = "", 0
    while i < len(bits):
        for length in (5, 6):
            code = bits[i:i + length]
            if len(code) == length and (int(code, 2), length) in HUFFMAN_DIGITS:
                out += HUFFMAN_DIGITS[(int(code, 2), length)]
                i += length
                break
        else:
            # What is left must be the EOS padding: fewer than 8 one bits.
            return out if len(bits) - i < 8 and set(bits[i:]) <= {"1"} else None
    return out


def hpack_fields(block):
    """The fields of a response header block, enough to tell a lone `:status` from anything
    more: a `:status` value is decoded, any other field is kept as ("other", index)."""
    fields, i = [], 0

    def integer(prefix_bits):
        nonlocal i
        value = block[i] & ((1 << prefix_bits) - 1)
        i += 1
        if value == (1 << prefix_bits) - 1:
            shift = 0
            while True:
                b = block[i]
                i += 1
                value += (b & 0x7f) << shift
                shift += 7
                if not b & 0x80:
                    break
        return value

    def string():
        nonlocal i
        huffman = bool(block[i] & 0x80)
        length = integer(7)
        raw = block[i:i + length]
        i += length
        return huffman_digits(raw) if huffman else raw.decode("latin-1")

    while i < len(block):
        b = block[i]
        if b & 0x80:                                   # indexed field
            index = integer(7)
            fields.append((":status", STATIC_STATUS[index]) if index in STATIC_STATUS
                          else ("other", index))
        elif b & 0xe0 == 0x20:                         # dynamic table size update
            integer(5)
        else:                                          # a literal field
            index = integer(6 if b & 0x40 else 4)
            name = string() if index == 0 else None
            value = string()
            fields.append((":status", value) if 8 <= index <= 14 else ("other", name or index))
    return fields


class Checker:
    def __init__(self, base, ca):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ca = ca
        self.base = base
        # status -> list of (label, [problems])
        self.results = OrderedDict()

    def connect(self, timeout=10):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def record(self, expected, label, status, headers, extra=None):
        """expected: the status, or a key such as "400-unparsed" that starts with it. A key
        of BARE is judged by its caller (`extra`); every other by the full header set."""
        problems = []
        want = code(expected)
        if status != want:
            problems.append(f"status {status}, expected {want}")
        elif expected not in BARE:
            problems.extend(header_problems(status, headers))
        if extra:
            problems.extend(extra)
        self.results.setdefault(expected, []).append((label, problems))

    def request(self, expected, method, path, body=None, user=None, headers=None, label=None):
        """One request over a fresh HTTP/1.1 connection; returns (status, body)."""
        hdrs = dict(headers or {})
        if user is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            pairs = [(k.lower(), v) for k, v in resp.getheaders()]
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            self.results.setdefault(expected, []).append(
                (label or f"{method} {path}", [f"request failed: {e!r}"]))
            return None, b""
        finally:
            conn.close()
        self.record(expected, label or f"{method} {path}", status, pairs)
        return status, data

    def hand_written_post(self, expected, label, path, user, header, body, timeout=10):
        """A POST written by hand (http.client's request() would fix its framing): the
        Authorization and JSON content type, one framing header (name, value), then `body`
        as raw bytes, which may be less than the header announces."""
        conn = self.connect(timeout=timeout)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
            conn.putheader("Content-Type", "application/json")
            conn.putheader(*header)
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            resp.read()
            self.record(expected, label, resp.status, [(k.lower(), v) for k, v in resp.getheaders()])
        except (OSError, http.client.HTTPException) as e:
            self.results.setdefault(expected, []).append((label, [f"request failed: {e!r}"]))
        finally:
            conn.close()

    def slow_body(self, expected, path, user):
        """A body announced but never sent: the request timeout (1 s here) answers."""
        self.hand_written_post(expected, f"POST {path} with a body that never arrives", path, user,
                               ("Content-Length", "100"), b'{"name":', timeout=15)

    def declared_too_large(self, expected, path, user):
        """A Content-Length over the limit, sent whole as most clients do: the server reads
        and drops a body of up to 1 MiB before answering, then keeps the connection; a
        larger declared body is answered at once, with `Connection: close`."""
        self.hand_written_post(expected, f"POST {path} with a 17000-byte body", path, user,
                               ("Content-Length", "17000"),
                               b'{"name":"' + b"a" * (17000 - 11) + b'"}')
        self.hand_written_post(expected, f"POST {path} declaring a {2 << 20}-byte body, none sent",
                               path, user, ("Content-Length", str(2 << 20)), None)

    def chunked_too_large(self, expected, path, user):
        """A chunked body without Content-Length, cut off at the limit while being read."""
        # One chunk just over the limit, and no last chunk: the server stops reading at the
        # limit and answers, with nothing of ours left unread to reset the connection.
        chunk = b'{"name":"' + b"a" * 16500 + b'"}'
        self.hand_written_post(expected, f"POST {path} with a chunked body over 16 KiB", path, user,
                               ("Transfer-Encoding", "chunked"),
                               b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def raw(self, expected, data, label):
        """Bytes written as they are on a fresh HTTP/1.1 connection: for the pipeline's keys,
        a request it answers; for a key of BARE, one that hyper answers by itself, read
        until the server closes the connection and held to bare_problems."""
        bare = expected in BARE
        out, closed = b"", False
        try:
            with socket.create_connection((self.host, self.port), timeout=10) as tcp:
                with self.ctx.wrap_socket(tcp, server_hostname=self.host) as tls:
                    try:
                        tls.sendall(data)
                    except OSError:
                        pass  # answered and closed before reading it all: the answer counts
                    while bare or b"\r\n\r\n" not in out:
                        try:
                            chunk = tls.recv(65536)
                        except (ssl.SSLEOFError, ConnectionResetError):
                            chunk = b""
                        if not chunk:
                            closed = True
                            break
                        out += chunk
        except OSError as e:
            self.results.setdefault(expected, []).append((label, [f"request failed: {e!r}"]))
            return
        head, _, body = out.partition(b"\r\n\r\n")
        head = head.decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split()[1])
        except (IndexError, ValueError):
            self.results.setdefault(expected, []).append((label, [f"no HTTP response: {out[:80]!r}"]))
            return
        pairs = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            pairs.append((name.strip().lower(), value.strip()))
        extra = bare_problems(pairs, body, closed) if bare else None
        self.record(expected, label, status, pairs, extra)

    def raw_http2(self, expected, label, headers):
        """One GET /health over HTTP/2 written frame by frame, so that its header list may
        exceed the SETTINGS_MAX_HEADER_LIST_SIZE the server advertises (curl refuses to send
        such a list: it fails before sending anything). `headers`: (name, value) as bytes.
        For a key of BARE, the answer must be a lone `:status` that ends the stream."""
        block = (b"\x82\x87"                                  # :method GET, :scheme https
                 + b"\x04" + hpack_int(7, 7) + b"/health"       # :path
                 + b"\x01" + hpack_int(len(self.authority()), 7) + self.authority()
                 + b"".join(hpack_literal(n, v) for n, v in headers))
        # HEADERS (END_STREAM), then CONTINUATION frames; the last one ends the headers.
        pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        frames = b""
        for n, piece in enumerate(pieces):
            kind, flags = (0x1, 0x1) if n == 0 else (0x9, 0x0)
            if n == len(pieces) - 1:
                flags |= 0x4
            frames += len(piece).to_bytes(3, "big") + bytes([kind, flags]) + (1).to_bytes(4, "big") + piece
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.set_alpn_protocols(["h2"])
        got, response_block, data_bytes, ended = [], b"", 0, None
        try:
            with socket.create_connection((self.host, self.port), timeout=10) as tcp:
                with ctx.wrap_socket(tcp, server_hostname=self.host) as tls:
                    if tls.selected_alpn_protocol() != "h2":
                        raise OSError("the server did not negotiate h2")
                    tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                    buf, sent, end_stream = b"", False, False
                    while ended is None:
                        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                            chunk = tls.recv(65536)
                            if not chunk:
                                ended = ended or "the connection closed"
                                break
                            buf += chunk
                        if ended:
                            break
                        length = int.from_bytes(buf[:3], "big")
                        kind, flags = buf[3], buf[4]
                        stream = int.from_bytes(buf[5:9], "big") & 0x7fffffff
                        payload, buf = buf[9:9 + length], buf[9 + length:]
                        got.append(kind)
                        if kind == 0x4 and not flags & 0x1 and not sent:
                            # The server's SETTINGS: acknowledge them, then send the request.
                            tls.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00" + frames)
                            sent = True
                        elif kind == 0x7:
                            ended = "GOAWAY"
                        elif stream == 1 and kind == 0x3:
                            ended = "RST_STREAM"
                        elif stream == 1 and kind == 0x0:
                            data_bytes += length
                            ended = "end of stream" if flags & 0x1 else None
                        elif stream == 1 and kind in (0x1, 0x9):
                            if kind == 0x1:
                                if flags & 0x8:                   # PADDED
                                    payload = payload[1:len(payload) - payload[0]]
                                if flags & 0x20:                  # PRIORITY
                                    payload = payload[5:]
                            response_block += payload
                            if kind == 0x1:
                                end_stream = bool(flags & 0x1)
                            if flags & 0x4 and end_stream:
                                ended = "end of stream"
                            elif flags & 0x4:
                                ended = None  # a body follows: read on for its DATA
        except OSError as e:
            self.results.setdefault(expected, []).append((label, [f"request failed: {e!r}"]))
            return
        fields = hpack_fields(response_block)
        statuses = [v for n, v in fields if n == ":status"]
        if not statuses:
            why = f"no response: {ended}, frames {got}"
            self.results.setdefault(expected, []).append((label, [why]))
            return
        problems = []
        if expected in BARE:
            others = [v for n, v in fields if n != ":status"]
            if others:
                problems.append(f"{len(others)} header fields besides :status")
            if data_bytes:
                problems.append(f"{data_bytes} bytes of body")
            if ended != "end of stream":
                problems.append(f"the stream ended by {ended}, not with the response")
        self.record(expected, label, int(statuses[0]), [], problems)

    def authority(self):
        return f"{self.host}:{self.port}".encode()

    def concurrent(self, path, user, count):
        """`count` requests at once, each needing a password hash; returns their results."""
        out = []
        lock = threading.Lock()
        barrier = threading.Barrier(count)
        auth = "Basic " + base64.b64encode(user.encode()).decode()

        def one():
            conn = self.connect()
            try:
                conn.connect()
                barrier.wait()
                conn.request("GET", path, headers={"Authorization": auth})
                resp = conn.getresponse()
                resp.read()
                item = (resp.status, [(k.lower(), v) for k, v in resp.getheaders()])
            except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as e:
                item = (None, repr(e))
            finally:
                conn.close()
            with lock:
                out.append(item)

        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    def http2(self, expected, path, user=None, headers=(), label=None):
        """The same checks over HTTP/2 (ALPN h2), with curl."""
        cmd = ["curl", "-sS", "--http2", "--cacert", self.ca, "-o", "/dev/null", "-D", "-",
               "--max-time", "10"]
        if user:
            cmd += ["-u", user]
        for h in headers:
            cmd += ["-H", h]
        label = label or f"GET {path} over HTTP/2"
        try:
            out = subprocess.run(cmd + [self.base + path], capture_output=True, text=True,
                                 timeout=20, check=True).stdout
        except subprocess.CalledProcessError as e:
            # Not the command itself: its arguments can hold tens of kilobytes of header.
            why = (e.stderr or "").strip()[:200]
            self.results.setdefault(expected, []).append(
                (label, [f"curl failed (exit {e.returncode}): {why}"]))
            return
        except (subprocess.SubprocessError, OSError) as e:
            self.results.setdefault(expected, []).append((label, [f"curl failed: {type(e).__name__}"]))
            return
        lines = [l for l in out.splitlines() if l.strip()]
        if not lines or not lines[0].startswith("HTTP/2 "):
            self.results.setdefault(expected, []).append(
                (label, [f"not an HTTP/2 response: {lines[:1]!r}"]))
            return
        status = int(lines[0].split()[1])
        pairs = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            pairs.append((name.strip().lower(), value.strip()))
        self.record(expected, label, status, pairs)


def main():
    base, ca, admin, member, stranger = sys.argv[1:6]
    c = Checker(base, ca)
    member_name = member.split(":", 1)[0]
    stranger_name = stranger.split(":", 1)[0]

    # 200
    c.request(200, "GET", "/health")
    c.request(200, "GET", "/openapi.json")
    # 201
    c.request(201, "POST", "/spaces", {"name": "headers"}, user=admin)
    status, body = c.request(201, "POST", "/spaces/1/messages", {"message": "one"}, user=admin)
    msg1 = json.loads(body).get("id", 1) if status == 201 else 1
    status, body = c.request(201, "POST", "/spaces/1/messages", {"message": "two"}, user=admin)
    msg2 = json.loads(body).get("id", 2) if status == 201 else 2
    c.request(201, "POST", "/spaces/1/members", {"username": member_name, "permissions": "r"},
              user=admin)
    c.request(201, "POST", "/users", {"username": "carol", "password": "amber-falcon-62-orchard"})
    # 200 with credentials
    c.request(200, "GET", "/spaces", user=admin)
    c.request(200, "GET", "/spaces/1", user=member)
    c.request(200, "GET", "/spaces/1/messages?limit=10", user=admin)
    c.request(200, "GET", f"/spaces/1/messages/{msg1}", user=member)
    c.request(200, "GET", "/spaces/1/members", user=admin)
    c.request(200, "GET", "/audit?limit=5", user=admin)
    # 204
    c.request(204, "DELETE", f"/spaces/1/messages/{msg2}", user=admin)
    c.request(204, "DELETE", f"/spaces/1/members/{member_name}?permissions=r", user=admin)
    # 400
    c.request(400, "GET", "/spaces/not-a-number", user=admin)
    c.request(400, "GET", "/spaces/1/messages?limit=0", user=admin)
    c.request(400, "POST", "/spaces", b'{"name":', user=admin,
              headers={"Content-Type": "application/json"}, label="POST /spaces with broken JSON")
    c.request(400, "POST", "/spaces", {"name": "x", "unknown": 1}, user=admin,
              label="POST /spaces with an unknown field")
    c.request(400, "GET", "/spaces", headers={"Authorization": "Basic !!!"},
              label="GET /spaces with a malformed Authorization header")
    # 401
    c.request(401, "GET", "/spaces")
    c.request(401, "GET", "/spaces", user=admin.split(":", 1)[0] + ":wrong-password-1",
              label="GET /spaces with a wrong password")
    # 403
    c.request(403, "GET", "/spaces/1", user=stranger, label="GET /spaces/1 as a non-member")
    c.request(403, "GET", "/audit", user=member, label="GET /audit as a non-admin")
    # 404
    c.request(404, "GET", "/no-such-route")
    c.request(404, "GET", "/spaces/1/messages/999999", user=admin)
    # 405
    c.request(405, "PUT", "/spaces", {"name": "x"}, user=admin)
    c.request(405, "DELETE", "/health")
    # 408: the server under test has a 1-second request timeout
    c.slow_body(408, "/spaces", admin)
    # 409
    c.request(409, "POST", "/users", {"username": "carol", "password": "amber-falcon-62-orchard"},
              label="POST /users with a taken name")
    # 413
    c.declared_too_large(413, "/spaces", admin)
    c.chunked_too_large(413, "/spaces", admin)
    # 415
    c.request(415, "POST", "/spaces", b"name=x", user=admin,
              headers={"Content-Type": "application/x-www-form-urlencoded"},
              label="POST /spaces with a form body")
    c.request(415, "POST", "/spaces", b"{}", user=admin, headers={"Content-Type": "text/plain"},
              label="POST /spaces with text/plain")
    # 429: registration (5 at once, then one every 10 s; 2 used above) ...
    refused = None
    for i in range(8):
        conn_label = f"POST /users #{i + 1} of a registration burst"
        probe = Checker(base, ca)
        status, _ = probe.request(429, "POST", "/users",
                                  {"username": f"burst{i}", "password": "amber-falcon-62-orchard"},
                                  label=conn_label)
        if status == 429:
            refused = probe.results[429][-1]
            break
    c.results.setdefault(429, []).append(
        refused or ("a registration burst of 8", ["no 429 after 8 registrations"]))
    # ... and failed logins per (username, address): 5 at once, then one a minute.
    refused = None
    for i in range(8):
        probe = Checker(base, ca)
        status, _ = probe.request(429, "GET", "/spaces", user=stranger_name + ":wrong-password-2",
                                  label=f"wrong password #{i + 1} for one user")
        if status == 429:
            refused = probe.results[429][-1]
            break
    c.results.setdefault(429, []).append(
        refused or ("8 wrong passwords for one user", ["no 429 after 8 failed logins"]))
    # 503: one hashing slot, no queue, no verification cache; requests needing a hash at once.
    # Four, under the failed-logins burst of 5: with the verification cache off, as here, each
    # login that needs a hash takes a token of that bucket before hashing (and gets it back
    # when it was right or never ran), so more at once of one user from one address would get
    # 429 instead.
    got503 = None
    for attempt in range(5):
        results = c.concurrent("/spaces", member, 4)
        bad = [r for r in results if r[0] not in (200, 503)]
        if bad:
            c.results.setdefault(503, []).append(
                ("4 concurrent logins", [f"unexpected outcome {bad[0][0]}: {bad[0][1]!r:.200}"]))
            got503 = True
            break
        for status, headers in results:
            if status == 503:
                problems = header_problems(503, headers)
                retry = [v for k, v in headers if k == "retry-after"]
                if retry != ["1"]:
                    problems.append(f"retry-after is {retry!r}, not ['1']")
                c.results.setdefault(503, []).append(
                    ("4 concurrent logins, one hashing slot (attempt %d)" % (attempt + 1), problems))
                got503 = True
                break
        if got503:
            break
        time.sleep(0.5)
    if not got503:
        c.results.setdefault(503, []).append(
            ("4 concurrent logins x5", ["no 503 with one hashing slot and no queue"]))
    # HTTP/2: the same set on a few statuses
    c.http2(200, "/health")
    c.http2(200, "/spaces", user=admin)
    c.http2(401, "/spaces")
    c.http2(404, "/no-such-route")
    # Header fields over the pipeline's limits (100 fields, 16 KiB), up to the transport's caps
    # (400 fields; a 64 KiB head over HTTP/1.1, a 64 KiB header list over HTTP/2).
    c.raw(431, b"GET /health HTTP/1.1\r\nHost: x\r\n"
          + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n",
          "150 header fields (HTTP/1.1)")
    c.raw(431, b"GET /health HTTP/1.1\r\nHost: x\r\n"
          + b"".join(b"X-H%d: 1\r\n" % i for i in range(399)) + b"\r\n",
          "400 header fields (HTTP/1.1, the transport's cap)")
    start = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
    c.raw(431, start + b"a" * (65536 - len(start) - 4) + b"\r\n\r\n",
          "a request head of exactly 64 KiB (HTTP/1.1, the transport's cap)")
    c.http2(431, "/health", headers=["X-Big: " + "a" * 20000],
            label="a 20 KB header list over HTTP/2")
    c.http2(431, "/health", headers=["X-Big: " + "a" * 60000],
            label="a 60 KB header list over HTTP/2 (under the transport's cap)")
    # RFC 9112 §3.2: an HTTP/1.1 request without Host, or with two.
    c.raw(400, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", "no Host (HTTP/1.1)")
    c.raw(400, b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n",
          "two Host fields (HTTP/1.1)")
    # Requests refused by the HTTP layer itself (hyper, h2), before the pipeline runs. Their
    # statuses get keys of their own, so that the lines above speak of the pipeline only, and
    # are held to the bare responses that the documentation promises (BARE).
    c.raw("400-unparsed", b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
          "a header line without a colon (HTTP/1.1)")
    c.raw("400-unparsed", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/9.9")
    c.raw("400-unparsed", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
          "an HTTP/2.0 request line on HTTP/1.1")
    c.raw("400-unparsed", b"POST /spaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
          "two Content-Length fields that differ (HTTP/1.1)")
    c.raw("431-transport", b"GET /health HTTP/1.1\r\nHost: x\r\n"
          + b"".join(b"X-H%d: 1\r\n" % i for i in range(400)) + b"\r\n",
          "401 header fields (HTTP/1.1, over hyper's cap of 400)")
    c.raw("431-transport", start + b"a" * (65537 - len(start) - 4) + b"\r\n\r\n",
          "a request head of 64 KiB and one byte (HTTP/1.1)")
    c.raw_http2("431-transport", "a 70 KB header list over HTTP/2 (over h2's cap of 64 KiB)",
                [(b"x-big", b"a" * 70000)])

    failed = 0
    for status in sorted(c.results, key=lambda k: (code(k), str(k))):
        entries = c.results[status]
        bad = [(label, p) for label, p in entries if p]
        names = "; ".join(label for label, _ in entries)
        if bad:
            failed += 1
            detail = " | ".join(f"{label}: {', '.join(p)}" for label, p in bad)
            print(f"FAIL headers.{status}: {detail}")
        elif status in BARE:
            print(f"PASS headers.{status}: {len(entries)} response{'s' if len(entries) > 1 else ''}, "
                  f"the HTTP layer's own, bodiless and closed as documented ({names})")
        else:
            ct = expected_content_type(code(status)) or "no content type"
            print(f"PASS headers.{status}: {len(entries)} response{'s' if len(entries) > 1 else ''}, full set + {ct} ({names})")
    print("SKIP headers.500: no request makes the server fail (panics become a generic 500 "
          "through the same layers: crates/natterjack/tests/it/safe_output.rs, with a panicking route)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
