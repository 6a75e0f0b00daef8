"""Integration harness: a real mosquitto (Dynamic Security, free port, private temp dir) and a
real hearthd process, plus terminals as real MQTT 5 clients (paho-mqtt from Debian).

    with Hub(plugins=["coop_relay"], plugin_config={"coop_relay": {"command_ttl": "5s"}}) as hub:
        hub.add_user("alice")
        phone = hub.terminal("alice", "phone", app_id="app1")
        res = phone.request("hello", {"appId": "app1"})
        evt = phone.wait_event("command", timeout=5)

Everything is torn down in __exit__, also when a test fails. Run with /usr/bin/python3.
"""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SOURCE_DIR = os.environ.get(
    "HEARTH_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("HEARTH_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))


def hearthd_env(base=None):
    """The environment for a hearthd: os.environ, plus the benchmarks' SD-card model
    (bench/sdcard_shim.cc) when HEARTH_SDCARD_SHIM names it. The shim goes into hearthd alone,
    never into the broker or the clients."""
    env = dict(os.environ if base is None else base)
    shim = env.pop("HEARTH_SDCARD_SHIM", None)
    if shim:
        env["LD_PRELOAD"] = shim
    return env
HEARTHD = os.path.join(BUILD_DIR, "core", "hearthd")
HEARTHCTL = os.path.join(BUILD_DIR, "tools", "hearthctl")
PLUGIN_BUILD_DIRS = [os.path.join(BUILD_DIR, "plugins"), os.path.join(BUILD_DIR, "tests", "plugins")]
# Plugins this build was configured without (-DHEARTH_PLUGIN_<NAME>=OFF, tests/CMakeLists.txt): a
# test that needs one is skipped with SWITCHED_OFF in its reason, not failed.
PLUGINS_OFF = [p for p in os.environ.get("HEARTH_PLUGINS_OFF", "").split(",") if p]
SWITCHED_OFF = "switched off in this build"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def yaml_value(v):
    # JSON is valid YAML flow syntax, so nested config needs no YAML library here.
    return json.dumps(v)


class Broker:
    """A private mosquitto with dynsec, started by tools/hearth-broker."""

    def __init__(self, root, port=None):
        self.dir = os.path.join(root, "broker")
        self.port = port or free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [os.path.join(SOURCE_DIR, "tools", "hearth-broker"), self.dir, str(self.port), "hearthd"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self._accepts, timeout=10, what="mosquitto on port %d" % self.port)

    def _accepts(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    @property
    def password(self):
        with open(os.path.join(self.dir, "broker.pass")) as f:
            return f.read().strip()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Terminal:
    """One app install: an MQTT 5 client logged in as a user, with presence and a Will.

    The terminal id is its MQTT client id, which the broker requires to be unique across all
    users: give every terminal of a test its own id."""

    def __init__(self, hub, user, client_id, password, presence=True):
        self.hub = hub
        self.user = user
        self.client_id = client_id
        self.base = "hearth/v1/u/%s/%s" % (user, client_id)
        self.responses = {}
        self.events = queue.Queue()
        self.all_events = []
        self.messages = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.presence = presence
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(user, password)
        if presence:
            c.will_set(self.base + "/presence", "offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client = c
        self.connect_rc = None

    def connect(self, timeout=10):
        self._connected.clear()
        self._subscribed.clear()
        self.client.connect("127.0.0.1", self.hub.broker.port, keepalive=30)
        # As every hearth client should: Nagle + delayed ACK add ~40 ms per QoS 1 round trip.
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError("terminal %s/%s did not connect" % (self.user, self.client_id))
        if self.connect_rc != 0:
            raise AssertionError("terminal %s/%s refused: %s" % (self.user, self.client_id,
                                                                 self.connect_rc))
        if not self._subscribed.wait(timeout):
            raise AssertionError("terminal %s/%s not subscribed" % (self.user, self.client_id))
        if self.presence:
            self.client.publish(self.base + "/presence", "online", qos=1, retain=True).wait_for_publish()
        return self

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connect_rc = rc.value if hasattr(rc, "value") else rc
        if self.connect_rc == 0:
            client.subscribe([(self.base + "/res/#", 1), (self.base + "/evt/#", 1)])
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append((msg.topic, msg.payload))
            parts = msg.topic.split("/")
            try:
                body = json.loads(msg.payload)
            except ValueError:
                body = None
            if len(parts) >= 7 and parts[5] == "res":
                key = body.get("id") if isinstance(body, dict) else None
                self.responses.setdefault(key, []).append(body)
            elif len(parts) >= 7 and parts[5] == "evt":
                self.all_events.append(body)
                self.events.put(body)
            self._cond.notify_all()

    def publish_raw(self, method, payload, properties=None):
        info = self.client.publish(self.base + "/req/" + method, payload, qos=1,
                                   properties=properties)
        info.wait_for_publish()

    def send(self, method, params=None, request_id=None):
        """Publishes a request and returns its id without waiting."""
        request_id = request_id or uuid.uuid4().hex[:16]
        env = {"id": request_id}
        if params is not None:
            env["params"] = params
        self.publish_raw(method, json.dumps(env))
        return request_id

    def wait_response(self, request_id, timeout=10):
        with self._cond:
            ok = self._cond.wait_for(lambda: self.responses.get(request_id), timeout)
            if not ok:
                raise AssertionError("no response to %s from the hub within %ss" % (request_id, timeout))
            return self.responses[request_id][0]

    def request(self, method, params=None, timeout=10):
        return self.wait_response(self.send(method, params), timeout)

    def call(self, method, params=None, timeout=10):
        """request() that asserts ok and returns the result."""
        r = self.request(method, params, timeout)
        if not r.get("ok"):
            raise AssertionError("%s failed: %s" % (method, r.get("error")))
        return r["result"]

    def wait_event(self, name, timeout=10, predicate=None):
        deadline = time.monotonic() + timeout
        skipped = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s event within %ss" % (name, timeout))
                try:
                    e = self.events.get(timeout=left)
                except queue.Empty:
                    raise AssertionError("no %s event within %ss" % (name, timeout))
                if e and e.get("event") == name and (predicate is None or predicate(e)):
                    return e
                skipped.append(e)
        finally:
            for e in skipped:
                self.events.put(e)

    def drain_events(self):
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def disconnect(self, clean=True):
        if clean and self.presence:
            self.client.publish(self.base + "/presence", "offline", qos=1, retain=True).wait_for_publish()
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Drops the TCP connection without DISCONNECT, so the broker publishes the Will."""
        sock = self.client.socket()
        self.client.loop_stop()  # no paho thread may touch the socket once it is closed
        if sock is not None:
            sock.close()


class Hub:
    """A broker and a hearthd in a private temp dir. Use as a context manager."""

    def __init__(self, plugins=(), plugin_config=None, config=None, extra_plugin_dirs=(),
                 notify_socket=False, env=None, watchdog_usec=None):
        for name in plugins:
            if name in PLUGINS_OFF:
                raise unittest.SkipTest("plugin %s is %s (-DHEARTH_PLUGIN_%s=OFF)"
                                        % (name, SWITCHED_OFF, name.upper()))
        self.root = tempfile.mkdtemp(prefix="hearth-it-")
        self.broker = Broker(self.root)
        self.state_dir = os.path.join(self.root, "state")
        self.plugin_dir = os.path.join(self.root, "plugins")
        os.makedirs(self.plugin_dir)
        for name in plugins:
            for d in list(PLUGIN_BUILD_DIRS) + list(extra_plugin_dirs):
                so = os.path.join(d, name + ".so")
                if os.path.exists(so):
                    os.symlink(so, os.path.join(self.plugin_dir, name + ".so"))
                    break
            else:
                raise AssertionError("plugin %s.so is not built" % name)
        self.plugin_config = plugin_config or {}
        self.extra_config = config or {}
        self.config_path = os.path.join(self.root, "hearth.yaml")
        self.proc = None
        self.log_path = os.path.join(self.root, "hearthd.log")
        self.terminals = []
        self.passwords = {}
        self.env = env or {}
        self.watchdog_usec = watchdog_usec
        self.notify = None
        if notify_socket:
            self.notify = NotifySocket(os.path.join(self.root, "notify.sock"))

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.broker.start()
            self.write_config()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def write_config(self, text=None):
        if text is None:
            lines = [
                "hub:",
                "  state_dir: %s" % yaml_value(self.state_dir),
                "  plugin_dir: %s" % yaml_value(self.plugin_dir),
                "  log_level: debug",
                "broker:",
                "  port: %d" % self.broker.port,
                "  password_file: %s" % yaml_value(os.path.join(self.broker.dir, "broker.pass")),
                "  reconnect_min: 1s",
                "  reconnect_max: 2s",
            ]
            for section, values in self.extra_config.items():
                lines.append("%s: %s" % (section, yaml_value(values)))
            lines.append("plugins: %s" % yaml_value(self.plugin_config))
            text = "\n".join(lines) + "\n"
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, wait=True):
        env = hearthd_env()
        env.update(self.env)
        if self.notify:
            env["NOTIFY_SOCKET"] = self.notify.path
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([HEARTHD, "--config", self.config_path], stdout=log,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("hearthd exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            return self.ctl("status", timeout=1, check=False).returncode == 0
        wait_for(ready, timeout=timeout, interval=0.1, what="hearthd to answer")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def restart(self):
        self.kill9()
        self.start()

    def close(self):
        for t in self.terminals:
            try:
                t.client.loop_stop()
                t.client.disconnect()
            except Exception:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.broker.kill()
        if self.notify:
            self.notify.close()
        if os.environ.get("HEARTH_KEEP_TMP"):
            print("kept", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- admin ----------------------------------------------------------------------------
    def ctl(self, *args, timeout=10, check=True):
        cmd = [HEARTHCTL, "--config", self.config_path, "--timeout", str(timeout)] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        if check and r.returncode != 0:
            raise AssertionError("hearthctl %s failed (%d): %s %s" % (" ".join(args), r.returncode,
                                                                     r.stdout, r.stderr))
        return r

    def admin(self, method, params=None, timeout=10):
        """Calls an admin method; returns the response envelope."""
        r = self.ctl("--json", "call", method, json.dumps(params or {}), timeout=timeout, check=False)
        out = r.stdout.strip()
        if r.returncode == 3 or not out:
            raise AssertionError("no admin answer to %s: %s" % (method, r.stderr))
        body = json.loads(out)
        if r.returncode == 0:
            return {"ok": True, "result": body}
        return body

    def add_user(self, user, password=None):
        password = password or ("pw-" + uuid.uuid4().hex[:12])
        self.ctl("user", "add", user, "--password", password)
        self.passwords[user] = password
        return password

    def status(self):
        return json.loads(self.ctl("--json", "status").stdout)

    # -- terminals ------------------------------------------------------------------------
    def terminal(self, user, client_id, app_id="app", model="model", name=None, hello=True,
                 presence=True):
        t = Terminal(self, user, client_id, self.passwords[user], presence=presence)
        self.terminals.append(t)
        t.connect()
        if hello:
            res = t.request("hello", {"appId": app_id, "deviceModel": model,
                                      "deviceName": name or client_id})
            if not res.get("ok"):
                raise AssertionError("hello failed: %s" % res)
            t.open_id = res["result"]["openId"]
        return t

    def raw_client(self, user, client_id):
        """A bare paho client logged in as user (no subscriptions)."""
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(user, self.passwords.get(user) or self.broker.password)
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        return c


class NotifySocket:
    """A NOTIFY_SOCKET the test owns: records sd_notify datagrams."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.extend(data.decode(errors="replace").split("\n"))

    def seen(self, line):
        with self._lock:
            return [m for m in self.messages if m == line or m.startswith(line)]

    def count(self, line):
        return len(self.seen(line))

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


def response_properties(topic, correlation):
    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = topic
    p.CorrelationData = correlation
    return p
