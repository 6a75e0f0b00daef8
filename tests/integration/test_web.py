"""The front door (plugin web, SPEC §7) with real clients: mosquitto_pub/sub/rr with --cafile
against mqtts://, Python paho over wss:// (transport="websockets"), openssl s_client for the
chain and the SANs, Python's ssl/http.client for https://, and a client that pins the wrong CA.
Everything listens on 127.0.0.1 and ports picked here.

The helpers at the top are shared with test_web_abuse.py.

Env: HEARTH_BUILD_DIR, HEARTH_SOURCE_DIR (see harness.py). Run with /usr/bin/python3.
"""

import hashlib
import http.client
import json
import os
import resource
import signal
import socket
import sys
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
import uuid

import paho.mqtt.client as mqtt

from harness import Hub, Terminal, free_port, wait_for

HOSTNAME = socket.gethostname().split(".")[0]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class WebHub(Hub):
    """A Hub with the web plugin on 127.0.0.1, its ports picked here, and a www dir of its own."""

    def __init__(self, web=None, plugins=("web",), plugin_config=None, **kw):
        self.https_port = free_port()
        self.mqtts_port = free_port()
        self.metrics_port = free_port()
        self.www = tempfile.mkdtemp(prefix="hearth-www-")
        with open(os.path.join(self.www, "index.html"), "w") as f:
            f.write("<!doctype html><title>hearth test</title><p>index</p>\n")
        with open(os.path.join(self.www, "app.js"), "w") as f:
            f.write("console.log('app');\n")
        os.makedirs(os.path.join(self.www, "sub"))
        with open(os.path.join(self.www, "sub", "index.html"), "w") as f:
            f.write("<p>sub</p>\n")
        cfg = {
            "listen": ["127.0.0.1"],
            "https_port": self.https_port,
            "mqtts_port": self.mqtts_port,
            "metrics_listen": "127.0.0.1:%d" % self.metrics_port,
            "www_dir": self.www,
        }
        cfg.update(web or {})
        pc = dict(plugin_config or {})
        pc["web"] = cfg
        super().__init__(plugins=plugins, plugin_config=pc, **kw)

    def close(self):
        super().close()
        subprocess.run(["rm", "-rf", self.www])

    @property
    def ca_file(self):
        return os.path.join(self.state_dir, "web", "ca.pem")

    def tls_context(self, cafile=None):
        ctx = ssl.create_default_context(cafile=cafile or self.ca_file)
        return ctx

    def https(self, method, path, headers=None, body=None):
        conn = http.client.HTTPSConnection("localhost", self.https_port,
                                           context=self.tls_context(), timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def metrics_text(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            text = r.read().decode()
            if r.status != 200:
                raise AssertionError("/metrics answered %d" % r.status)
        finally:
            conn.close()
        return text

    def metrics(self):
        """/metrics as {sample with labels: value}."""
        out = {}
        for line in self.metrics_text().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = int(value)
        return out

    def door_counters(self):
        """The door's counters as of now (from /metrics; hub/status has them too, republished
        every 2 s), under the names hub/status uses."""
        m = self.metrics()
        return {
            "connections": {p: m['hearth_web_connections{protocol="%s"}' % p]
                            for p in ("mqtts", "wss", "https")},
            "refusedFull": m['hearth_web_connections_refused_total{reason="full"}'],
            "refusedLockedOut": m['hearth_web_connections_refused_total{reason="locked_out"}'],
            "tlsHandshakeFailures": m["hearth_web_tls_handshake_failures_total"],
            "connectTimeouts": m["hearth_web_connect_timeouts_total"],
            "oversizeClosed": m["hearth_web_oversize_closed_total"],
            "protocolErrors": m["hearth_web_protocol_errors_total"],
            "loginsOk": m['hearth_web_logins_total{result="ok"}'],
            "loginsFailed": m['hearth_web_logins_total{result="failed"}'],
            "lockouts": m["hearth_web_lockouts_total"],
            "lockedOutAddresses": m["hearth_web_locked_out_addresses"],
        }

    def status_counters(self):
        return self.status()["details"]["web"]["counters"]

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def door_terminal(self, user, client_id, transport="tcp", cafile=None, hello=True):
        t = DoorTerminal(self, user, client_id, self.passwords[user], transport=transport,
                         cafile=cafile)
        self.terminals.append(t)
        t.connect()
        if hello:
            res = t.request("hello", {"appId": "app", "deviceModel": "phone",
                                      "deviceName": client_id})
            if not res.get("ok"):
                raise AssertionError("hello failed: %s" % res)
        return t


class DoorTerminal(Terminal):
    """A harness Terminal that enters through the front door: mqtts:// or wss:///mqtt."""

    def __init__(self, hub, user, client_id, password, transport="tcp", cafile=None):
        super().__init__(hub, user, client_id, password, presence=True)
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5, transport=transport)
        c.username_pw_set(user, password)
        c.will_set(self.base + "/presence", "offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a, **k: self._subscribed.set()
        c.tls_set(ca_certs=cafile or hub.ca_file)
        if transport == "websockets":
            c.ws_set_options(path="/mqtt")
            self.port = hub.https_port
        else:
            self.port = hub.mqtts_port
        self.client = c

    def connect(self, timeout=10):
        self._connected.clear()
        self._subscribed.clear()
        self.client.connect("localhost", self.port, keepalive=30)
        sock = self.client.socket()
        getattr(sock, "_socket", sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError("door terminal %s did not connect" % self.client_id)
        if self.connect_rc != 0:
            raise AssertionError("door terminal %s refused: %s" % (self.client_id, self.connect_rc))
        if not self._subscribed.wait(timeout):
            raise AssertionError("door terminal %s not subscribed" % self.client_id)
        self.client.publish(self.base + "/presence", "online", qos=1, retain=True).wait_for_publish()
        return self


def mqtt_string(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def remaining_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def connect_packet(client_id, user, password, keepalive=60):
    """An MQTT 3.1.1 CONNECT with user name and password (test input only)."""
    var = mqtt_string("MQTT") + bytes([4, 0xC2]) + keepalive.to_bytes(2, "big")
    payload = mqtt_string(client_id) + mqtt_string(user) + mqtt_string(password)
    body = var + payload
    return bytes([0x10]) + remaining_length(len(body)) + body


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def tls_socket(hub, port, source="127.0.0.1", cafile=None, timeout=20):
    """A TCP connection from source to the door, wrapped in TLS (raises if refused)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        return hub.tls_context(cafile).wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def mqtts_login(hub, user, password, source="127.0.0.1", client_id=None):
    """Connects through mqtts:// and sends a CONNECT. Returns (socket, CONNACK code), or
    (None, "refused") when the door closed the connection before or during TLS."""
    try:
        s = tls_socket(hub, hub.mqtts_port, source=source)
    except (ssl.SSLError, ConnectionError, OSError):
        return None, "refused"
    try:
        s.sendall(connect_packet(client_id or "c-" + uuid.uuid4().hex[:10], user, password))
        ack = recv_exactly(s, 4)
    except (ssl.SSLError, ConnectionError, OSError):
        s.close()
        return None, "refused"
    if ack is None:
        s.close()
        return None, "closed"
    if ack[0] != 0x20:
        s.close()
        raise AssertionError("not a CONNACK: %r" % ack)
    return s, ack[3]


def closed_by_peer(sock, timeout):
    """True when the peer closes (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def fingerprint(pem_file):
    with open(pem_file) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def make_wrong_ca(directory):
    key = os.path.join(directory, "wrong-ca.key")
    crt = os.path.join(directory, "wrong-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=not the hub"], check=True, capture_output=True)
    return crt


class FrontDoorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_fd_limit()
        cls.hub = WebHub().__enter__()
        cls.password = cls.hub.add_user("alice")

    @classmethod
    def tearDownClass(cls):
        cls.hub.close()

    def test_hub_ca_and_server_certificate(self):
        d = os.path.join(self.hub.state_dir, "web")
        for key in ("ca.key", "server.key"):
            self.assertEqual(os.stat(os.path.join(d, key)).st_mode & 0o777, 0o600, key)
        ca = subprocess.run(["openssl", "x509", "-in", self.hub.ca_file, "-noout", "-text"],
                            check=True, capture_output=True, text=True).stdout
        self.assertIn("prime256v1", ca)
        self.assertIn("CA:TRUE", ca)
        end = subprocess.run(["openssl", "x509", "-in", self.hub.ca_file, "-noout", "-enddate"],
                             check=True, capture_output=True, text=True).stdout
        years = int(end.strip().split()[-2]) - time.gmtime().tm_year
        self.assertGreaterEqual(years, 9, end)
        # The chain as a client sees it, verified against the hub CA, and the SANs.
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.hub.mqtts_port,
                            "-CAfile", self.hub.ca_file, "-verify_return_error", "-showcerts",
                            "-servername", "localhost", "-verify_hostname", "localhost"],
                           input="", capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Verify return code: 0 (ok)", r.stdout)
        self.assertIn("hearth hub CA", r.stdout)
        sans = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                               os.path.join(d, "server.pem")],
                              check=True, capture_output=True, text=True).stdout
        for name in ("DNS:localhost", "DNS:%s" % HOSTNAME, "DNS:%s.local" % HOSTNAME,
                     "IP Address:127.0.0.1"):
            self.assertIn(name, sans)
        # Every current address of the machine is named.
        addrs = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
        for line in addrs.splitlines():
            parts = line.split()
            if parts[2] == "inet":
                self.assertIn("IP Address:" + parts[3].split("/")[0], sans)

    def test_server_certificate_kept_across_restart(self):
        before = open(os.path.join(self.hub.state_dir, "web", "server.pem")).read()
        ca_before = fingerprint(self.hub.ca_file)
        self.hub.terminate()
        self.hub.start()
        wait_for(lambda: self.hub.status()["plugins"].get("web") == "running", timeout=15,
                 what="web running again")
        self.assertEqual(open(os.path.join(self.hub.state_dir, "web", "server.pem")).read(), before)
        self.assertEqual(fingerprint(self.hub.ca_file), ca_before)

    def test_readme_first_session_through_mqtts_with_mosquitto_clients(self):
        common = ["-h", "localhost", "-p", str(self.hub.mqtts_port), "--cafile", self.hub.ca_file,
                  "-u", "alice", "-P", self.password]
        r = subprocess.run(["mosquitto_rr", "-V", "5"] + common + [
            "-i", "phone-rr", "-t", "hearth/v1/u/alice/phone-rr/req/hello",
            "-e", "hearth/v1/u/alice/phone-rr/res/hello", "-W", "10",
            "-m", json.dumps({"id": "1", "params": {"appId": "demo", "deviceModel": "Pixel 8",
                                                    "deviceName": "Alice phone"}})],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertTrue(res["ok"], res)
        self.assertIn("openId", res["result"])
        # mosquitto_sub and mosquitto_pub meet through the door.
        sub = subprocess.Popen(["mosquitto_sub"] + common + [
            "-i", "alice-sub", "-t", "hearth/v1/u/alice/sub/evt/#", "-C", "1", "-W", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: self.hub.door_counters()["connections"]["mqtts"] >= 1, timeout=10,
                     what="mosquitto_sub inside")
            pub = None
            for _ in range(50):
                pub = subprocess.run(["mosquitto_pub"] + common + [
                    "-i", "alice-pub", "-t", "hearth/v1/u/alice/sub/evt/hi", "-m", "hello", "-q", "1"],
                    capture_output=True, text=True, timeout=20)
                self.assertEqual(pub.returncode, 0, pub.stderr)
                try:
                    out, err = sub.communicate(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self.assertEqual(sub.returncode, 0, err)
            self.assertEqual(out.strip(), "hello")
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()

    def test_paho_over_wss(self):
        t = self.hub.door_terminal("alice", "alice-browser", transport="websockets")
        try:
            self.assertTrue(t.request("hello", {"appId": "app"})["ok"])
            wait_for(lambda: self.hub.door_counters()["connections"]["wss"] >= 1, timeout=10,
                     what="the wss client counted")
        finally:
            t.disconnect()

    def test_paho_over_mqtts(self):
        t = self.hub.door_terminal("alice", "alice-native")
        try:
            self.assertTrue(t.request("hello", {"appId": "app"})["ok"])
        finally:
            t.disconnect()

    def test_wss_packets_in_many_frames_and_many_in_one_frame(self):
        # mqtt.js sends one MQTT packet as several WebSocket frames (the door holds the pieces
        # until the packet is whole, and passes it on in one write); other clients put several
        # packets in one frame. Either way the broker sees the same MQTT byte stream.
        from test_web_abuse import ws_frame_header, ws_handshake

        def frames(*pieces):
            return b"".join(ws_frame_header(len(p)) + p for p in pieces)

        def read_mqtt(sock, n):
            """n bytes of MQTT from the server's (unmasked, binary) frames."""
            got = b""
            while len(got) < n:
                head = recv_exactly(sock, 2)
                self.assertIsNotNone(head, "connection closed")
                length = head[1] & 0x7F
                if length == 126:
                    length = struct.unpack(">H", recv_exactly(sock, 2))[0]
                self.assertEqual(head[0] & 0x0F, 2, "a binary frame")
                got += recv_exactly(sock, length)
            return got

        s = tls_socket(self.hub, self.hub.https_port)
        try:
            self.assertIn(b" 101 ", ws_handshake(s))
            packet = connect_packet("split-" + uuid.uuid4().hex[:8], "alice",
                                    self.hub.passwords["alice"])
            # The CONNECT in four frames: fixed header byte, length, then the rest in two.
            s.sendall(frames(packet[:1], packet[1:2], packet[2:12], packet[12:]))
            self.assertEqual(read_mqtt(s, 4), bytes([0x20, 2, 0, 0]))  # CONNACK, accepted
            # A PINGREQ split between two writes of the client, the second one later.
            s.sendall(frames(bytes([0xC0])))
            time.sleep(0.2)
            s.sendall(frames(bytes([0])))
            self.assertEqual(read_mqtt(s, 2), bytes([0xD0, 0]))  # PINGRESP
            # Three PINGREQs in one frame: three PINGRESPs.
            s.sendall(frames(bytes([0xC0, 0]) * 3))
            self.assertEqual(read_mqtt(s, 6), bytes([0xD0, 0]) * 3)
        finally:
            s.close()

    def test_client_pinning_the_wrong_ca_is_refused_by_its_own_tls(self):
        d = tempfile.mkdtemp(prefix="hearth-wrongca-")
        try:
            wrong = make_wrong_ca(d)
            r = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(self.hub.mqtts_port),
                                "--cafile", wrong, "-u", "alice", "-P", self.password,
                                "-t", "hearth/v1/u/alice/x/evt/x", "-m", "x"],
                               capture_output=True, text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("TLS error", r.stderr)
            with self.assertRaises(ssl.SSLCertVerificationError):
                tls_socket(self.hub, self.hub.https_port, cafile=wrong).close()
            c = mqtt.Client(client_id="wrong-ca", protocol=mqtt.MQTTv5, transport="websockets")
            c.tls_set(ca_certs=wrong)
            c.ws_set_options(path="/mqtt")
            c.username_pw_set("alice", self.password)
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.connect("localhost", self.hub.https_port)
        finally:
            subprocess.run(["rm", "-rf", d])

    def test_static_files(self):
        status, h, body = self.hub.https("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn(b"hearth test", body)
        self.assertTrue(h["content-type"].startswith("text/html"))
        self.assertEqual(h["cache-control"], "no-cache")
        self.assertIn("default-src 'self'", h["content-security-policy"])
        self.assertIn("frame-ancestors 'none'", h["content-security-policy"])
        self.assertEqual(h["x-content-type-options"], "nosniff")
        self.assertTrue(h["strict-transport-security"].startswith("max-age="))
        status, h, body = self.hub.https("GET", "/app.js")
        self.assertEqual((status, body), (200, b"console.log('app');\n"))
        self.assertTrue(h["content-type"].startswith("text/javascript"))
        self.assertIn("max-age", h["cache-control"])
        status, h, body = self.hub.https("HEAD", "/app.js")
        self.assertEqual((status, body, h["content-length"]), (200, b"", "20"))
        status, h, _ = self.hub.https("GET", "/app.js",
                                      headers={"If-Modified-Since": h["last-modified"]})
        self.assertEqual(status, 304)
        status, h, _ = self.hub.https("POST", "/", body=b"x")
        self.assertEqual(status, 405)
        self.assertEqual(h["allow"], "GET, HEAD")
        self.assertEqual(self.hub.https("DELETE", "/app.js")[0], 405)
        status, h, _ = self.hub.https("GET", "/missing.png")
        self.assertEqual(status, 404)
        self.assertEqual(h["x-content-type-options"], "nosniff")
        # A route of the web app (no file extension) is its index page.
        status, _, body = self.hub.https("GET", "/devices")
        self.assertEqual((status, b"hearth test" in body), (200, True))
        # A directory: no listing; its index.html, after a redirect to the trailing slash.
        status, h, _ = self.hub.https("GET", "/sub")
        self.assertEqual((status, h["location"]), (301, "/sub/"))
        status, _, body = self.hub.https("GET", "/sub/")
        self.assertEqual((status, body), (200, b"<p>sub</p>\n"))
        os.makedirs(os.path.join(self.hub.www, "empty"), exist_ok=True)
        self.assertEqual(self.hub.https("GET", "/empty/")[0], 404)
        # The CA clients install, as the file the hub keeps.
        status, h, body = self.hub.https("GET", "/ca.crt")
        self.assertEqual(status, 200)
        with open(self.hub.ca_file) as f:
            self.assertEqual(body.decode(), f.read())
        self.assertEqual(h["content-type"], "application/x-x509-ca-cert")

    def test_pair(self):
        r = self.hub.ctl("pair")
        fp = fingerprint(self.hub.ca_file)
        url = "hearth://pair?host=127.0.0.1&port=%d&ca=%s" % (self.hub.https_port, fp)
        self.assertIn(url, r.stdout)
        self.assertIn("\u2588", r.stdout)  # the QR code
        res = self.hub.admin("pair")
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["result"]["url"], url)
        self.assertEqual(res["result"]["ca"], fp)
        self.assertEqual(res["result"]["port"], self.hub.https_port)
        self.assertEqual(res["result"]["wss"], "wss://127.0.0.1:%d/mqtt" % self.hub.https_port)
        self.assertEqual(res["result"]["mqtts"], "mqtts://127.0.0.1:%d" % self.hub.mqtts_port)
        # A user cannot ask for it: pair is an admin method.
        t = self.hub.door_terminal("alice", "alice-pair", hello=False)
        try:
            self.assertEqual(t.request("pair")["error"]["code"], "UNKNOWN_METHOD")
        finally:
            t.disconnect()

    def test_metrics_and_status(self):
        m = self.hub.metrics()
        for name in ('hearth_web_connections{protocol="mqtts"}',
                     'hearth_web_connections{protocol="wss"}',
                     'hearth_web_connections_refused_total{reason="full"}',
                     'hearth_web_connections_refused_total{reason="locked_out"}',
                     'hearth_web_logins_total{result="failed"}',
                     "hearth_web_max_connections", "hearth_web_lockouts_total",
                     "hearth_web_connect_timeouts_total", "hearth_web_oversize_closed_total"):
            self.assertIn(name, m)
        self.assertEqual(m["hearth_web_max_connections"], 256)
        before = m['hearth_web_logins_total{result="ok"}']
        s, code = mqtts_login(self.hub, "alice", self.password)
        self.assertEqual(code, 0)
        s.close()
        self.assertEqual(self.hub.metrics()['hearth_web_logins_total{result="ok"}'], before + 1)
        details = self.hub.status()["details"]["web"]
        self.assertEqual(details["ca"], fingerprint(self.hub.ca_file))
        self.assertIn("mqtts://127.0.0.1:%d" % self.hub.mqtts_port, details["endpoints"])
        wait_for(lambda: self.hub.status_counters()["loginsOk"] >= before + 1, timeout=10,
                 what="hub/status counters")
        # /metrics is not on the LAN-facing port (there it is a route of the web app).
        self.assertNotIn(b"hearth_web_", self.hub.https("GET", "/metrics")[2])


class ReloadTest(unittest.TestCase):
    def test_sighup_with_a_new_www_dir_restarts_the_door_with_clients_inside(self):
        with WebHub() as hub:
            pw = hub.add_user("alice")
            held = [mqtts_login(hub, "alice", pw)[0] for _ in range(20)]
            www2 = os.path.join(hub.root, "www2")
            os.makedirs(www2)
            with open(os.path.join(www2, "index.html"), "w") as f:
                f.write("second www\n")
            hub.plugin_config["web"]["www_dir"] = www2
            hub.write_config()
            hub.proc.send_signal(signal.SIGHUP)

            def second():
                try:
                    return b"second www" in hub.https("GET", "/")[2]
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    return False

            wait_for(second, timeout=30, what="the new www_dir served")
            # The clients inside when it stopped were let go; new ones are served.
            for s in held:
                self.assertTrue(closed_by_peer(s, 20))
                s.close()
            s, code = mqtts_login(hub, "alice", pw)
            self.assertEqual(code, 0)
            s.close()
            self.assertEqual(hub.status()["plugins"]["web"], "running")


class InstallerCertificateTest(unittest.TestCase):
    """cert_file/key_file/ca_file: the installer's own certificate instead of the hub CA."""

    def test_installer_certificate(self):
        d = tempfile.mkdtemp(prefix="hearth-instcert-")
        try:
            ca = make_wrong_ca(d)  # "wrong" for the hub CA, the right one here
            key = os.path.join(d, "server.key")
            csr = os.path.join(d, "server.csr")
            crt = os.path.join(d, "server.pem")
            ext = os.path.join(d, "ext.cnf")
            with open(ext, "w") as f:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
                           check=True, capture_output=True)
            subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey",
                            os.path.join(d, "wrong-ca.key"), "-CAcreateserial", "-out", crt,
                            "-days", "2", "-extfile", ext], check=True, capture_output=True)
            with WebHub(web={"cert_file": crt, "key_file": key, "ca_file": ca}) as hub:
                pw = hub.add_user("bob")
                self.assertFalse(os.path.exists(hub.ca_file))  # no hub CA made
                sock = tls_socket(hub, hub.mqtts_port, cafile=ca)
                sock.sendall(connect_packet("bob-1", "bob", pw))
                self.assertEqual(recv_exactly(sock, 4)[3], 0)
                sock.close()
                self.assertEqual(hub.admin("pair")["result"]["ca"], fingerprint(ca))
                self.assertEqual(hub.status()["details"]["web"]["certificate"], "installer")
            # A key that is not the certificate's: the plugin fails with a clear reason.
            other = os.path.join(d, "other.key")
            subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-out", other], check=True,
                           capture_output=True)
            with WebHub(web={"cert_file": crt, "key_file": other}) as hub:
                st = hub.status()
                self.assertEqual(st["plugins"]["web"], "failed")
                self.assertIn("is not the key of", json.dumps(st["details"]["web"]))
        finally:
            subprocess.run(["rm", "-rf", d])

    def test_bad_config_is_refused_with_a_reason(self):
        with WebHub(web={"listen": ["not-an-address"]}) as hub:
            st = hub.status()
            self.assertEqual(st["plugins"]["web"], "failed")
            self.assertIn("not-an-address", json.dumps(st["details"]["web"]))

    def test_port_in_use_is_named(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            with WebHub(web={"mqtts_port": port}) as hub:
                st = hub.status()
                self.assertEqual(st["plugins"]["web"], "failed")
                self.assertIn("mqtts://127.0.0.1:%d" % port, json.dumps(st["details"]["web"]))


def reissue_child():
    """Runs in a network namespace of its own (test_server_certificate_follows_the_addresses):
    a hub, then a new address; the door must present a certificate naming
    it, from the same CA, without a restart."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with WebHub() as hub:
        hub.add_user("alice")
        server_pem = os.path.join(hub.state_dir, "web", "server.pem")
        ca_before = fingerprint(hub.ca_file)

        def presented_ips():
            with tls_socket(hub, hub.mqtts_port) as s:
                sans = s.getpeercert().get("subjectAltName", ())
            return {v for k, v in sans if k == "IP Address"}

        if "10.213.0.1" in presented_ips():
            raise AssertionError("the address is named before it exists")
        # The namespace's own lo (no dummy or veth driver needed): a new address all the same.
        subprocess.run(["ip", "addr", "add", "10.213.0.1/32", "dev", "lo"], check=True)
        wait_for(lambda: "10.213.0.1" in presented_ips(), timeout=90, interval=1,
                 what="a certificate naming the new address")
        if fingerprint(hub.ca_file) != ca_before:
            raise AssertionError("the CA changed")
        if "re-issued" not in hub.log_text():
            raise AssertionError("no log line about the re-issue")
        print("re-issued for 10.213.0.1 by the same CA:", open(server_pem).read().count("BEGIN"),
              "certificates in the chain")


class ReissueTest(unittest.TestCase):
    def test_server_certificate_follows_the_addresses(self):
        probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("cannot make a network namespace: %s" % probe.stderr.decode().strip())
        r = subprocess.run(["unshare", "--net", sys.executable, os.path.abspath(__file__),
                            "reissue-child"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("re-issued for 10.213.0.1", r.stdout)


if __name__ == "__main__":
    if sys.argv[1:] == ["reissue-child"]:
        reissue_child()
    else:
        unittest.main()
