"""The front door under bad input (issue 12): garbage TLS, plain HTTP on the TLS port, slowloris
handshakes and CONNECTs, 1,000 connections at once, a 10 MB WebSocket frame, an MQTT packet
over the limit, a WebSocket without subprotocol mqtt, path traversal, 25 wrong passwords
(lockout, then served again), a client vanishing mid-packet. Throughout, a client that was
already inside keeps being served (a request round trip after every attack), and at the end
the hub's RSS is back to its idle level.

The attacker of the lockout test connects from 127.0.0.2 (any 127/8 address reaches the
loopback listener), so that the rest of the test, on 127.0.0.1, shows other addresses served
while it is locked out.

Env: HEARTH_BUILD_DIR, HEARTH_SOURCE_DIR (see harness.py). Run with /usr/bin/python3.
"""

import base64
import os
import re
import socket
import ssl
import struct
import threading
import time
import unittest
import uuid

import harness
from harness import wait_for
from test_web import (WebHub, closed_by_peer, connect_packet, mqtts_login, raise_fd_limit,
                      recv_exactly, remaining_length, tls_socket)

CONNECT_TIMEOUT_S = 4
LOCKOUT_S = 6
# "Back to its idle level" (issue 12) within RSS_IDLE_TOLERANCE_KIB (20% of an idle hub's
# ~19 MiB): what the door cannot give back once a burst is over is glibc's cache of 40 ended
# threads' stacks (16 KiB of each stays resident), the top chunk of its second malloc arena
# (< 0.5 MiB) and code paged in on first use; 1.0-2.6 MiB in all here, the same after every
# burst. One connection's worth of a leak per client of a burst of 200 (~78 KiB each) would be
# 15 MiB, far above it, and a repeat of a burst must not add more than RSS_REPEAT_KIB.
RSS_IDLE_TOLERANCE_KIB = 4 * 1024
RSS_REPEAT_KIB = 1024


def sanitizer_build():
    """An ASan build holds freed memory in its quarantine by design, so RSS says nothing about
    the allocator there; LeakSanitizer checks for leaks instead (make test-asan)."""
    cache = os.path.join(harness.BUILD_DIR, "CMakeCache.txt")
    return os.path.exists(cache) and re.search(r"^HEARTH_SANITIZE:\w+=ON$",
                                               open(cache).read(), re.M) is not None


RSS_CHECKED = not sanitizer_build()


def ws_handshake(sock, protocol="mqtt", path="/mqtt"):
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, key))
    if protocol is not None:
        req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    sock.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def ws_frame_header(length, opcode=2):
    """A masked client frame header (FIN set) for a payload of length bytes."""
    h = bytes([0x80 | opcode])
    if length < 126:
        h += bytes([0x80 | length])
    elif length < 65536:
        h += bytes([0x80 | 126]) + struct.pack(">H", length)
    else:
        h += bytes([0x80 | 127]) + struct.pack(">Q", length)
    return h + b"\0\0\0\0"  # mask key 0: the payload goes as is


def ws_read_close_code(sock, timeout=20):
    """Reads server frames until a close frame; returns its status code (None if none came)."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
            while len(buf) >= 2:
                op = buf[0] & 0x0F
                n = buf[1] & 0x7F
                off = 2
                if n == 126:
                    n = struct.unpack(">H", buf[2:4])[0]
                    off = 4
                elif n == 127:
                    n = struct.unpack(">Q", buf[2:10])[0]
                    off = 10
                if len(buf) < off + n:
                    break
                payload = buf[off:off + n]
                buf = buf[off + n:]
                if op == 8:
                    return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
    except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
        return None


class FrontDoorAbuseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_fd_limit()
        cls.hub = WebHub(web={"connect_timeout": "%ds" % CONNECT_TIMEOUT_S,
                              "lockout_duration": "%ds" % LOCKOUT_S}).__enter__()
        try:
            cls.password = cls.hub.add_user("alice")
            # The client that was inside before the attacks, on each protocol.
            cls.native = cls.hub.door_terminal("alice", "canary-native")
            cls.browser = cls.hub.door_terminal("alice", "canary-browser", transport="websockets")
            cls.served()
            time.sleep(1)
            cls.idle_rss = cls.hub.rss_kib()
        except BaseException:
            cls.hub.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.hub.close()

    @classmethod
    def served(cls):
        for t in (cls.native, cls.browser):
            res = t.request("hello", {"appId": "app"}, timeout=20)
            if not res.get("ok"):
                raise AssertionError("%s not served: %s" % (t.client_id, res))

    def counters(self):
        return self.hub.door_counters()

    def wait_counter(self, name, above):
        return wait_for(lambda: self.counters()[name] > above, timeout=30,
                        what="%s above %d" % (name, above))

    def tearDown(self):
        # Every attack leaves the clients that were inside served.
        self.served()

    def test_garbage_tls_handshake(self):
        before = self.counters()["tlsHandshakeFailures"]
        for port in (self.hub.mqtts_port, self.hub.https_port):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.sendall(os.urandom(64) + b"\x16\x03\x01\xff\xff" + os.urandom(512))
            self.assertTrue(closed_by_peer(s, 20), "garbage not refused on %d" % port)
            s.close()
        wait_for(lambda: self.counters()["tlsHandshakeFailures"] >= before + 2, timeout=20,
                 what="two handshake failures counted")

    def test_plain_http_on_the_tls_port(self):
        before = self.counters()["tlsHandshakeFailures"]
        s = socket.create_connection(("127.0.0.1", self.hub.https_port), timeout=20)
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        s.settimeout(20)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionError, OSError):
            pass
        s.close()
        self.assertFalse(data.startswith(b"HTTP/"), data[:64])  # nothing served in clear
        wait_for(lambda: self.counters()["tlsHandshakeFailures"] > before, timeout=20,
                 what="handshake failure counted")

    def test_slowloris_handshake(self):
        before = self.counters()["connectTimeouts"]
        # One client sends nothing; another dribbles a ClientHello one byte at a time, each
        # byte well within any per-read timeout. Both are closed at the CONNECT deadline.
        silent = socket.create_connection(("127.0.0.1", self.hub.mqtts_port), timeout=60)
        hello = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = ssl.create_default_context().wrap_bio(hello[0], hello[1],
                                                       server_hostname="localhost")
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        client_hello = hello[1].read()
        dribbler = socket.create_connection(("127.0.0.1", self.hub.https_port), timeout=60)
        closed = False
        sent = 0
        for b in client_hello[:-1]:
            try:
                dribbler.sendall(bytes([b]))
                sent += 1
            except OSError:
                closed = True
                break
            if closed_by_peer(dribbler, 0.2):
                closed = True
                break
        self.assertTrue(closed, "the door kept a client that dribbled %d bytes" % sent)
        self.assertLess(sent, len(client_hello) - 1)
        self.assertTrue(closed_by_peer(silent, 30))
        silent.close()
        dribbler.close()
        wait_for(lambda: self.counters()["connectTimeouts"] >= before + 2, timeout=20,
                 what="two CONNECT deadlines counted")

    def test_slowloris_connect(self):
        before = self.counters()["connectTimeouts"]
        s = tls_socket(self.hub, self.hub.mqtts_port)
        packet = connect_packet("slow-" + uuid.uuid4().hex[:8], "alice", self.password)
        s.sendall(packet[:5])  # half a CONNECT, then nothing
        self.assertTrue(closed_by_peer(s, 30))
        s.close()
        # Over WebSocket: the upgrade, then half a CONNECT frame.
        w = tls_socket(self.hub, self.hub.https_port)
        self.assertIn(b" 101 ", ws_handshake(w))
        w.sendall(ws_frame_header(5) + packet[:5])
        self.assertTrue(closed_by_peer(w, 30))
        w.close()
        wait_for(lambda: self.counters()["connectTimeouts"] >= before + 2, timeout=20,
                 what="two CONNECT deadlines counted")

    def test_slowloris_second_request(self):
        # A kept-alive HTTPS connection: the first request in full, the next one dribbled.
        s = tls_socket(self.hub, self.hub.https_port)
        s.sendall(b"GET /app.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = b""
        while b"console.log" not in head:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "no answer to the first request")
            head += chunk
        request = (b"GET /app.js HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200 +
                   b"\r\n\r\n")
        closed = False
        for b in request[:-1]:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
            if closed_by_peer(s, 0.5):
                closed = True
                break
        s.close()
        self.assertTrue(closed, "the door kept a client dribbling its second request")

    def test_ten_megabyte_websocket_frame(self):
        before = self.counters()["oversizeClosed"]
        w = tls_socket(self.hub, self.hub.https_port)
        self.assertIn(b" 101 ", ws_handshake(w))
        packet = connect_packet("big-" + uuid.uuid4().hex[:8], "alice", self.password)
        w.sendall(ws_frame_header(len(packet)) + packet)
        w.sendall(ws_frame_header(10 * 1024 * 1024))
        try:
            for _ in range(64):  # up to 4 MiB of the 10 MB; the door closes long before
                w.sendall(b"\0" * 65536)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        code = ws_read_close_code(w)
        w.close()
        self.assertIn(code, (1009, None))  # 1009: message too big (when it arrives in time)
        wait_for(lambda: self.counters()["oversizeClosed"] > before, timeout=20,
                 what="oversize counted")

    def test_mqtt_packet_over_the_limit(self):
        before = self.counters()["oversizeClosed"]
        s, code = mqtts_login(self.hub, "alice", self.password)
        self.assertEqual(code, 0)
        topic = b"hearth/v1/u/alice/big/evt/x"
        size = 300 * 1024
        header = bytes([0x30]) + remaining_length(2 + len(topic) + size)
        s.sendall(header + len(topic).to_bytes(2, "big") + topic)
        try:
            s.sendall(b"\0" * 65536)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        self.assertTrue(closed_by_peer(s, 20))
        s.close()
        wait_for(lambda: self.counters()["oversizeClosed"] > before, timeout=20,
                 what="oversize counted")

    def test_websocket_without_subprotocol_mqtt(self):
        before = self.counters()["protocolErrors"]
        for protocol in ("chat", None):
            w = tls_socket(self.hub, self.hub.https_port)
            head = ws_handshake(w, protocol=protocol)
            w.close()
            self.assertTrue(head.startswith(b"HTTP/1.1 400"), head)
            self.assertIn(b"subprotocol must be mqtt", head + b"")
        w = tls_socket(self.hub, self.hub.https_port)
        w.sendall(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n")  # no upgrade at all
        self.assertTrue(w.recv(4096).startswith(b"HTTP/1.1 426"))
        w.close()
        self.assertGreaterEqual(self.counters()["protocolErrors"], before + 3)

    def test_path_traversal(self):
        secret = os.path.join(os.path.dirname(self.hub.www), os.path.basename(self.hub.www) +
                              "-secret.txt")
        with open(secret, "w") as f:
            f.write("top secret\n")
        os.symlink("/etc", os.path.join(self.hub.www, "etc-link"))
        os.symlink(secret, os.path.join(self.hub.www, "secret-link.txt"))
        try:
            for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                         "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/..%2f..%2fetc%2fpasswd",
                         "/sub/../../etc/passwd", "/%2E%2E/etc/passwd", "/.%2e/etc/passwd",
                         "/..\\..\\etc\\passwd", "/%5c..%5cetc%5cpasswd", "/%00/etc/passwd",
                         "/etc-link/passwd", "/secret-link.txt",
                         "/../" + os.path.basename(secret), "/%zz"):
                status, _, body = self.hub.https("GET", path)
                self.assertIn(status, (400, 404), path)
                self.assertNotIn(b"root:", body, path)
                self.assertNotIn(b"top secret", body, path)
            # A double-encoded dot stays a literal name ("%2e%2e"), never the parent: no such
            # file, so it is a route of the web app and gets its index page.
            status, _, body = self.hub.https("GET", "/%252e%252e/etc/passwd")
            self.assertEqual(status, 200)
            self.assertIn(b"hearth test", body)
        finally:
            os.unlink(os.path.join(self.hub.www, "etc-link"))
            os.unlink(os.path.join(self.hub.www, "secret-link.txt"))
            os.unlink(secret)

    def test_wrong_password_lockout(self):
        before = self.counters()
        codes = []
        for i in range(25):
            s, code = mqtts_login(self.hub, "alice", "wrong-%d" % i, source="127.0.0.2")
            codes.append(code)
            if s is not None:
                s.close()
        self.assertEqual(codes[:20], [5] * 20)  # the broker's "not authorized", passed through
        self.assertEqual(codes[20:], ["refused"] * 5)
        # The right password from the locked-out address is refused too, on every port...
        self.assertEqual(mqtts_login(self.hub, "alice", self.password, source="127.0.0.2")[1],
                         "refused")
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            w = tls_socket(self.hub, self.hub.https_port, source="127.0.0.2")
            ws_handshake(w)
            w.recv(1)
        # ...while other addresses are served.
        s, code = mqtts_login(self.hub, "alice", self.password)
        self.assertEqual(code, 0)
        s.close()
        after = self.counters()
        self.assertEqual(after["loginsFailed"] - before["loginsFailed"], 20)
        self.assertEqual(after["lockouts"] - before["lockouts"], 1)
        self.assertGreaterEqual(after["refusedLockedOut"] - before["refusedLockedOut"], 6)
        self.assertEqual(self.hub.metrics()["hearth_web_locked_out_addresses"], 1)
        # After the lockout the address is served again.
        served = wait_for(lambda: mqtts_login(self.hub, "alice", self.password,
                                              source="127.0.0.2")[1] == 0,
                          timeout=LOCKOUT_S * 10, interval=0.5, what="served after the lockout")
        self.assertTrue(served)

    def test_client_vanishing_mid_packet(self):
        inside = sum(self.counters()["connections"].values())
        for transport in ("mqtts", "wss"):
            if transport == "mqtts":
                s, code = mqtts_login(self.hub, "alice", self.password)
                self.assertEqual(code, 0)
                s.sendall(bytes([0x30]) + remaining_length(1000) + b"\0\x05hello" + b"x" * 100)
            else:
                s = tls_socket(self.hub, self.hub.https_port)
                self.assertIn(b" 101 ", ws_handshake(s))
                packet = connect_packet("vanish-" + uuid.uuid4().hex[:8], "alice", self.password)
                s.sendall(ws_frame_header(len(packet)) + packet)
                s.sendall(ws_frame_header(1000) + b"\x30" + b"x" * 10)  # half a frame
            # Gone without a word: a TCP reset, no TLS close_notify.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        wait_for(lambda: sum(self.counters()["connections"].values()) <= inside, timeout=30,
                 what="vanished clients gone from the door")

    def burst(self, n):
        """n clients at once through mqtts://, each TLS + CONNECT, then all gone."""
        socks = []
        for i in range(n):
            sock, code = mqtts_login(self.hub, "alice", self.password,
                                     client_id="burst-%d-%s" % (i, uuid.uuid4().hex[:6]))
            if sock is not None:
                socks.append(sock)
        for sock in socks:
            sock.close()
        wait_for(lambda: sum(self.counters()["connections"].values()) <= 2, timeout=60,
                 what="only the canaries inside")

    def settled_rss(self):
        # Idle worker threads end 10 s after their client, then the allocator is trimmed.
        time.sleep(15)
        return self.hub.rss_kib()

    def test_zz_rss_back_to_idle(self):
        # Runs last (name order): after every attack above, with their connections gone.
        wait_for(lambda: sum(self.counters()["connections"].values()) <= 2, timeout=60,
                 what="only the canaries inside")
        after_attacks = self.settled_rss()
        # Bursts of clients: what one leaves behind is reused by the next, not added (no leak).
        self.burst(200)
        after_burst = self.settled_rss()
        self.burst(200)
        after_second = self.settled_rss()
        print("\nRSS idle %d KiB; after the attacks %d KiB; after two more bursts of 200 "
              "clients %d, %d KiB" % (self.idle_rss, after_attacks, after_burst, after_second))
        if not RSS_CHECKED:
            print("sanitizer build: RSS bounds not checked (LeakSanitizer checks for leaks)")
            return
        for rss in (after_attacks, after_burst, after_second):
            self.assertLessEqual(rss, self.idle_rss + RSS_IDLE_TOLERANCE_KIB)
        # The first burst leaves what the allocator keeps; the second adds nothing to it.
        self.assertLessEqual(after_second, after_burst + RSS_REPEAT_KIB)


class ThousandConnectionsTest(unittest.TestCase):
    """1,000 clients at once, on a hub of its own with the shipped limits (max_connections 256,
    connect_timeout 10s: a busy machine must not time out the ones let in)."""

    def setUp(self):
        raise_fd_limit()
        self.hub = WebHub().__enter__()
        self.addCleanup(self.hub.close)
        self.password = self.hub.add_user("alice")
        self.canary = self.hub.door_terminal("alice", "canary-1000")
        time.sleep(1)
        self.idle_rss = self.hub.rss_kib()

    def test_thousand_connections_at_once(self):
        limit = self.hub.metrics()["hearth_web_max_connections"]
        inside = self.hub.door_counters()["connections"]
        inside_before = inside["mqtts"] + inside["wss"] + inside["https"]
        refused_before = self.hub.door_counters()["refusedFull"]
        n = 1000
        results = [None] * n
        socks = [None] * n
        start = threading.Barrier(n + 1)
        done = threading.Barrier(n + 1)

        def one(i):
            start.wait()
            try:
                s, code = mqtts_login(self.hub, "alice", self.password,
                                      client_id="many-%d-%s" % (i, uuid.uuid4().hex[:6]))
                results[i] = code
                socks[i] = s
            except Exception as e:  # noqa: BLE001 - recorded and asserted below
                results[i] = repr(e)
            done.wait()

        threading.stack_size(256 * 1024)
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        start.wait()
        done.wait(timeout=300)
        served = sum(1 for r in results if r == 0)
        refused = sum(1 for r in results if r in ("refused", "closed"))
        print("\n%d connections at once: %d served, %d refused (max_connections %d, %d inside "
              "before)" % (n, served, refused, limit, inside_before))
        try:
            self.assertEqual(served + refused, n, [r for r in results if r not in (0, "refused",
                                                                                     "closed")][:5])
            # The door was full with everyone it let in, and those were served.
            self.assertLessEqual(served, limit - inside_before)
            self.assertGreaterEqual(served, (limit - inside_before) // 2)
            refused_full = self.hub.door_counters()["refusedFull"] - refused_before
            self.assertGreaterEqual(refused_full, n - limit)
            # The ones inside are really served: a round trip through one of them.
            live = next(s for s in socks if s is not None)
            live.sendall(bytes([0xC0, 0]))  # PINGREQ
            self.assertEqual(recv_exactly(live, 2), bytes([0xD0, 0]))  # PINGRESP
        finally:
            for s in socks:
                if s is not None:
                    s.close()
            for t in threads:
                t.join(timeout=10)
        wait_for(lambda: sum(self.hub.door_counters()["connections"].values()) <= inside_before,
                 timeout=60, what="connections back to the clients that were inside")
        # Room again: a new client is served.
        s, code = mqtts_login(self.hub, "alice", self.password)
        self.assertEqual(code, 0)
        s.close()

        self.assertTrue(self.canary.request("hello", {"appId": "app"}, timeout=20)["ok"])
        # Worker threads end 10 s after their client; then the RSS is back to idle.
        time.sleep(15)
        rss = self.hub.rss_kib()
        print("RSS idle %d KiB, after the 1,000 %d KiB" % (self.idle_rss, rss))
        if RSS_CHECKED:
            self.assertLessEqual(rss, self.idle_rss + RSS_IDLE_TOLERANCE_KIB)


if __name__ == "__main__":
    unittest.main()
