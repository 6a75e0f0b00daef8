"""wifi_lan over real UDP: hearthd, mosquitto and the terminals run in a "hub" network namespace,
hearth-devsim (and the test's spoofer) in a "dev" namespace, joined by a veth pair with multicast.

The test process itself enters the hub namespace (setns on its main thread), so the harness
(harness.py) runs unchanged: every process and socket it creates lives there. Both namespaces
are deleted afterwards, also when a test fails; leftovers of a killed run are swept at start.

Needs root (CAP_SYS_ADMIN for namespaces); run with /usr/bin/python3 -m unittest -v test_wifi_lan
"""

import contextlib
import ctypes
import hashlib
import hmac
import json
import os
import queue
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from harness import BUILD_DIR, HEARTHD, Hub, wait_for

DEVSIM = os.path.join(BUILD_DIR, "tools", "hearth-devsim", "hearth-devsim")
GROUP = "239.255.72.1"
PORT = 47800
HUB_ADDR = "10.213.57.1"
DEV_ADDR = "10.213.57.2"
CLONE_NEWNET = 0x40000000
NS_PREFIX = "hearth-wl-"

# Fast clocks for the tests: presence is checked every probe_period.
PROBE_PERIOD = 1.0
OFFLINE_AFTER = 3.0
PLUGIN_CONFIG = {
    "probe_period": "1s",
    "offline_after": "3s",
    "control_timeout": "400ms",
    "control_retries": 2,
    "ssdp_period": "1s",
}

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("ip %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r


def sweep_stale_namespaces():
    """Deletes namespaces left by test runs whose process is gone."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        if not name.startswith(NS_PREFIX):
            continue
        try:
            pid = int(name[len(NS_PREFIX) + 1:].split("-")[0])
        except ValueError:
            continue
        if not os.path.exists("/proc/%d" % pid):
            _ip("netns", "del", name, check=False)


class LanNetwork:
    """Two namespaces joined by a veth pair; the calling thread is moved into the hub one."""

    def __init__(self):
        tag = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
        self.hub_ns = NS_PREFIX + "h" + tag
        self.dev_ns = NS_PREFIX + "d" + tag
        short = uuid.uuid4().hex[:8]
        self.hub_if = "wlh" + short
        self.dev_if = "wld" + short
        self._home = None

    def __enter__(self):
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _ip("netns", "add", self.hub_ns)
            _ip("netns", "add", self.dev_ns)
            _ip("-n", self.hub_ns, "link", "add", self.hub_if, "type", "veth", "peer", "name",
                self.dev_if, "netns", self.dev_ns)
            for ns, ifc, addr in ((self.hub_ns, self.hub_if, HUB_ADDR),
                                  (self.dev_ns, self.dev_if, DEV_ADDR)):
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", addr + "/24", "dev", ifc)
                _ip("-n", ns, "link", "set", ifc, "multicast", "on", "up")
                _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", ifc)
            _setns("/run/netns/" + self.hub_ns)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @contextlib.contextmanager
    def in_dev(self):
        """Runs the block in the dev namespace (sockets created there stay there)."""
        _setns("/run/netns/" + self.dev_ns)
        try:
            yield
        finally:
            _setns("/run/netns/" + self.hub_ns)

    def dev_socket(self):
        """A UDP socket on the device side of the LAN, multicasting out of its veth."""
        with self.in_dev():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(DEV_ADDR))
        s.bind((DEV_ADDR, 0))
        return s

    def close(self):
        if self._home is not None:
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the original namespace")
            os.close(self._home)
            self._home = None
        _ip("netns", "del", self.hub_ns, check=False)
        _ip("netns", "del", self.dev_ns, check=False)


class DevSim:
    """hearth-devsim in the dev namespace, scripted through its stdin."""

    def __init__(self, net, log_path, *args):
        cmd = ["ip", "netns", "exec", net.dev_ns, DEVSIM, "--interface", net.dev_if] + list(args)
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)
        self.replies = queue.Queue()
        self.events = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready = self.wait_event(lambda e: e.get("event") == "ready", timeout=15)

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "reply" in obj:
                self.replies.put(obj)
            else:
                with self._cond:
                    self.events.append(obj)
                    self._cond.notify_all()

    def cmd(self, line, timeout=10):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        try:
            r = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("hearth-devsim did not answer %r" % line)
        if not r.get("ok"):
            raise AssertionError("hearth-devsim refused %r: %s" % (line, r))
        return r

    def wait_event(self, predicate, timeout=15, what="devsim event"):
        with self._cond:
            for e in self.events:
                if predicate(e):
                    return e
            deadline = time.monotonic() + timeout
            seen = len(self.events)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s within %ss; saw %s" % (what, timeout,
                                                                       self.events[-5:]))
                self._cond.wait(left)
                for e in self.events[seen:]:
                    if predicate(e):
                        return e
                seen = len(self.events)

    def count(self, predicate):
        with self._cond:
            return sum(1 for e in self.events if predicate(e))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except OSError:
                pass


def derive_key(token, device_id):
    return hmac.new(token.encode(), ("hearth-lan-key/1:" + device_id).encode(),
                    hashlib.sha256).digest()


def datagram(body, key=None, prev=None):
    text = json.dumps(body, separators=(",", ":")).encode()
    header = b"HLAN/1"
    if key is not None:
        header += b" mac=" + hmac.new(key, text, hashlib.sha256).hexdigest().encode()
    if prev is not None:
        header += b" prev=" + hmac.new(prev, text, hashlib.sha256).hexdigest().encode()
    return header + b"\n" + text


def udp_errors():
    """Receive-buffer overflows in the current (hub) namespace, from /proc/net/snmp."""
    with open("/proc/thread-self/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


@unittest.skipUnless(os.geteuid() == 0, "network namespaces need root")
@unittest.skipUnless(os.path.exists(DEVSIM), "hearth-devsim is not built")
class WifiLanTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        sweep_stale_namespaces()

    def setUp(self):
        self.net = LanNetwork().__enter__()
        self.addCleanup(self.net.close)
        self.sims = []

    def start_hub(self, plugin_config=None, config=None):
        cfg = dict(PLUGIN_CONFIG)
        cfg.update(plugin_config or {})
        hub = Hub(plugins=["wifi_lan"], plugin_config={"wifi_lan": cfg}, config=config)
        hub.__enter__()
        self.addCleanup(hub.close)
        self.addCleanup(self._dump_on_failure, hub)
        self.hub = hub
        wait_for(lambda: self.details().get("interfaces") == [self.net.hub_if], timeout=15,
                 what="wifi_lan to listen on %s" % self.net.hub_if)
        return hub

    def _dump_on_failure(self, hub):
        if os.environ.get("HEARTH_TEST_VERBOSE"):
            print(hub.log_text()[-5000:])

    def start_sim(self, *args):
        sim = DevSim(self.net, os.path.join(self.hub.root, "devsim-%d.log" % len(self.sims)),
                     *args)
        self.sims.append(sim)
        self.addCleanup(sim.close)
        return sim

    def details(self):
        return self.hub.status()["details"].get("wifi_lan", {})

    def dropped(self, reason):
        return self.details().get("dropped", {}).get(reason, 0)

    def counters(self):
        """The plugin counters (ctx.count) the host shows under details.wifi_lan.counters."""
        return self.details().get("counters", {})

    def devices(self):
        r = self.hub.admin("devices")
        self.assertTrue(r["ok"], r)
        return {d["deviceId"]: d for d in r["result"]["devices"]}

    def wait_device(self, device_id, predicate=lambda d: True, timeout=20, what=None):
        def check():
            d = self.devices().get(device_id)
            return d if d and predicate(d) else None
        return wait_for(check, timeout=timeout, interval=0.2,
                        what=what or "device %s in the inventory" % device_id)

    def bound(self, terminal):
        return {d["deviceId"]: d for d in terminal.call("getBoundDevices")["devices"]}

    def provision(self, sim, terminal, device_id):
        """The app's WiFi setup: a token from the hub, handed to the device."""
        token = terminal.call("provisionBegin")["token"]
        sim.cmd("provision %s %s" % (device_id, token))
        return token

    def provisioned(self, sim, terminal, device_id, acks_before=0):
        self.provision(sim, terminal, device_id)
        sim.wait_event(lambda e: e.get("event") == "provisioned" and e.get("id") == device_id
                       and sim.count(lambda x: x.get("event") == "provisioned"
                                     and x.get("id") == device_id) > acks_before,
                       what="the hub's provisioning ack")
        wait_for(lambda: self.bound(terminal).get(device_id, {}).get("role") == "owner",
                 timeout=10, what="%s to own %s" % (terminal.user, device_id))

    # -------------------------------------------------------------------------------------

    def test_the_loser_of_a_setup_race_is_told_taken(self):
        # Two phones set up the same devices at the same moment. Whoever's token reaches the
        # device first binds it; the other user must hear so (provisionFailed, reason
        # "taken"), never silence -- or, if the device had confirmed the first setup before the
        # second arrived, take it over as a re-setup does.
        hub = self.start_hub()
        hub.add_user("alice")
        hub.add_user("bob")
        alice = hub.terminal("alice", "alice-phone")
        bob = hub.terminal("bob", "bob-phone")
        sim = self.start_sim("--count", "4", "--prefix", "race-", "--period", "1s")
        ids = ["race-%04d" % i for i in range(1, 5)]
        for dev in ids:
            self.wait_device(dev, lambda d: d["online"])
        taken = 0
        for dev in ids:
            a = alice.call("provisionBegin")["token"]
            b = bob.call("provisionBegin")["token"]
            sim.cmd("provision %s %s" % (dev, a))
            sim.cmd("provision %s %s" % (dev, b))

            def outcome():
                for e in bob.drain_events():
                    if (e.get("event") == "provisionFailed"
                            and e["data"].get("deviceId") == dev):
                        return ("told", e["data"])
                owner = self.devices()[dev].get("owner")
                return ("owner", owner) if owner == "bob" else None
            kind, data = wait_for(outcome, timeout=20, interval=0.2,
                                  what="bob to hear how his setup of %s ended" % dev)
            if kind == "told":
                taken += 1
                self.assertEqual(data["reason"], "taken", data)
                self.assertIn("someone else", data["message"])
                self.assertEqual(self.devices()[dev]["owner"], "alice")
                self.assertIn(dev, self.bound(alice))
                self.assertNotIn(dev, self.bound(bob))
        print("setup races: %d of %d lost by bob and told 'taken'" % (taken, len(ids)))

    def test_provisioning_binds_and_reprovisioning_preempts(self):
        hub = self.start_hub()
        hub.add_user("alice")
        hub.add_user("bob")
        alice = hub.terminal("alice", "alice-phone")
        bob = hub.terminal("bob", "bob-phone")
        sim = self.start_sim("--count", "1", "--prefix", "lamp-", "--period", "1s")
        dev = "lamp-0001"
        d = self.wait_device(dev, lambda d: d["online"])
        self.assertEqual(d["transport"], "wifi")
        self.assertEqual(d["bindMode"], "preemptive")
        self.assertNotIn("owner", d)

        self.provisioned(sim, alice, dev)
        self.assertEqual(self.devices()[dev]["owner"], "alice")
        r = alice.call("controlDevice", {"deviceId": dev, "command": "set",
                                         "params": {"on": True, "level": 30}})
        self.assertEqual(r["state"], {"on": True, "level": 30})
        sim.wait_event(lambda e: e.get("event") == "control" and e.get("cmd") == "set")
        e = alice.wait_event("deviceState", predicate=lambda e: e["data"]["deviceId"] == dev)
        self.assertEqual(e["data"]["state"], {"on": True, "level": 30})
        e = alice.wait_event("controlReply", predicate=lambda e: e["data"]["deviceId"] == dev)
        self.assertEqual(e["data"]["userId"], "alice")
        self.assertEqual(e["data"]["command"], "set")

        # Bob re-does the WiFi setup of the same device: he takes it over (seed 003 §一).
        self.provisioned(sim, bob, dev, acks_before=1)
        e = alice.wait_event("bindingChanged",
                             predicate=lambda e: e["data"].get("deviceId") == dev
                             and e["data"].get("reason") == "preempted")
        self.assertNotIn(dev, self.bound(alice))
        self.assertEqual(self.devices()[dev]["owner"], "bob")
        self.assertEqual(self.devices()[dev]["bindings"], 1)
        r = alice.request("controlDevice", {"deviceId": dev, "command": "get"})
        self.assertFalse(r["ok"])
        self.assertEqual(r["error"]["code"], "FORBIDDEN")
        # Bob's commands go out under the new key (the device no longer accepts alice's).
        r = bob.call("controlDevice", {"deviceId": dev, "command": "get"})
        self.assertEqual(r["state"], {"on": True, "level": 30})
        r = bob.request("controlDevice", {"deviceId": dev, "command": "selfDestruct"})
        self.assertEqual(r["error"]["code"], "INVALID_REQUEST")
        self.assertIn("UNSUPPORTED", r["error"]["message"])
        self.assertEqual(sim.count(lambda e: e.get("event") == "dropped"), 0)
        wait_for(lambda: self.details()["provisioning"]["accepted"] == 2,
                 what="two accepted provisionings in the status")

    def test_expired_and_reused_tokens_bind_nothing(self):
        hub = self.start_hub(config={"binding": {"provision_ttl": "2s"}})
        hub.add_user("alice")
        alice = hub.terminal("alice", "alice-phone")
        sim = self.start_sim("--count", "2", "--prefix", "plug-", "--period", "1s")
        dev1, dev2 = "plug-0001", "plug-0002"
        self.wait_device(dev1, lambda d: d["online"])
        self.wait_device(dev2, lambda d: d["online"])

        token = alice.call("provisionBegin")["token"]
        time.sleep(3)  # let the 2 s token expire
        sim.cmd("provision %s %s" % (dev1, token))
        e = alice.wait_event("provisionFailed", predicate=lambda e: e["data"]["deviceId"] == dev1)
        self.assertEqual(e["data"]["reason"], "TOKEN_EXPIRED")
        self.assertEqual(self.devices()[dev1]["bindings"], 0)
        self.assertEqual(self.bound(alice), {})

        # A fresh token binds dev1 ...
        token = alice.call("provisionBegin")["token"]
        sim.cmd("provision %s %s" % (dev1, token))
        sim.wait_event(lambda e: e.get("event") == "provisioned" and e.get("id") == dev1)
        wait_for(lambda: self.bound(alice).get(dev1, {}).get("role") == "owner", timeout=10,
                 what="alice to own %s" % dev1)
        # ... and is spent: the same token on dev2 binds nothing.
        sim.cmd("provision %s %s" % (dev2, token))
        e = alice.wait_event("provisionFailed", predicate=lambda e: e["data"]["deviceId"] == dev2)
        self.assertEqual(e["data"]["reason"], "TOKEN_USED")
        self.assertEqual(self.devices()[dev2]["bindings"], 0)
        self.assertNotIn(dev2, self.bound(alice))
        # dev2 keeps announcing the refused token; the refusal is not repeated for each one.
        time.sleep(3 * PROBE_PERIOD)
        failures = [x for x in alice.all_events
                    if x.get("event") == "provisionFailed" and x["data"]["deviceId"] == dev2]
        self.assertEqual(len(failures), 1)
        wait_for(lambda: self.details()["provisioning"]["refused"] == 2,
                 what="two refused provisionings in the status")

    def test_device_outside_its_bind_window_is_not_bound(self):
        hub = self.start_hub()
        hub.add_user("alice")
        alice = hub.terminal("alice", "alice-phone")
        sim = self.start_sim("--count", "1", "--prefix", "cam-", "--period", "1s",
                             "--bind-window", "-1")
        dev = "cam-0001"
        d = self.wait_device(dev, lambda d: d["online"])
        self.assertFalse(d["bindable"])
        self.provision(sim, alice, dev)
        e = alice.wait_event("provisionFailed", predicate=lambda e: e["data"]["deviceId"] == dev)
        self.assertEqual(e["data"]["reason"], "NOT_BINDABLE")
        self.assertEqual(self.devices()[dev]["bindings"], 0)
        self.assertEqual(self.bound(alice), {})
        # The user opens the window (the device's pairing button): now provisioning binds.
        sim.cmd("window %s 0" % dev)
        self.wait_device(dev, lambda d: d["bindable"], what="the bind window to open")
        self.provisioned(sim, alice, dev)

    def test_spoofed_announcements_and_replies_are_rejected(self):
        hub = self.start_hub()
        hub.add_user("alice")
        hub.add_user("bob")
        alice = hub.terminal("alice", "alice-phone")
        bob = hub.terminal("bob", "bob-phone")
        sim = self.start_sim("--count", "1", "--prefix", "lock-", "--period", "1s")
        dev = "lock-0001"
        self.wait_device(dev, lambda d: d["online"])
        self.provisioned(sim, alice, dev)
        name = self.devices()[dev]["name"]
        spoofer = self.net.dev_socket()
        self.addCleanup(spoofer.close)
        group = (GROUP, PORT)

        # 1. Announcements for the provisioned device without its key: unsigned, wrongly signed.
        fake = {"type": "announce", "id": dev, "model": "evil", "name": "Evil twin",
                "fw": "6.6.6", "port": 1, "bindWindow": 0, "ctr": 2 ** 52}
        mac_before = self.dropped("mac")
        unsigned = dict(fake)
        del unsigned["ctr"]
        spoofer.sendto(datagram(unsigned), group)
        spoofer.sendto(datagram(fake, key=os.urandom(32)), group)
        wait_for(lambda: self.dropped("mac") == mac_before + 2,
                 what="the spoofed announcements to be dropped")
        self.assertEqual(self.devices()[dev]["name"], name)
        self.assertEqual(self.devices()[dev]["model"], "hearth-sim-lamp")

        # 2. Bob, a hub user on the LAN, announces the device with a token of his own: it proves
        #    he holds the token, not the device, so the bound device is not taken from alice.
        token = bob.call("provisionBegin")["token"]
        takeover = dict(fake, token=token, name=name, model="hearth-sim-lamp")
        unauthorized = self.dropped("unauthorized")
        spoofer.sendto(datagram(takeover, key=derive_key(token, dev)), group)
        wait_for(lambda: self.dropped("unauthorized") == unauthorized + 1,
                 what="the takeover announcement to be refused")
        self.assertEqual(self.devices()[dev]["owner"], "alice")
        self.assertEqual(self.bound(bob), {})
        # The forged counter (2^52) did not move the device's high-water mark: the real device
        # is still heard and obeyed.
        r = alice.call("controlDevice", {"deviceId": dev, "command": "ping"})
        self.assertEqual(r, {})
        self.assertEqual(self.dropped("replay"), 0)

        # 3. A command reply forged by someone who saw the request but lacks the key.
        sim.cmd("mute %s" % dev)
        rid = alice.send("controlDevice", {"deviceId": dev, "command": "set",
                                           "params": {"locked": False}})
        ev = sim.wait_event(lambda e: e.get("event") == "control" and not e.get("answered"))
        host, port = ev["from"].rsplit(":", 1)
        self.assertEqual(host, HUB_ADDR)
        reply = {"type": "reply", "id": dev, "req": ev["req"], "ctr": ev["ctr"], "ok": True,
                 "result": {"state": {"locked": False}}}
        mac_before = self.dropped("mac")
        unsolicited = self.dropped("unsolicited")
        spoofer.sendto(datagram(reply, key=os.urandom(32)), (host, int(port)))
        spoofer.sendto(datagram(reply), (host, int(port)))  # no MAC at all
        spoofer.sendto(datagram(dict(reply, req="00000000deadbeef"), key=os.urandom(32)),
                       (host, int(port)))
        r = alice.wait_response(rid, timeout=20)
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["error"]["code"], "TIMEOUT")
        self.assertEqual(self.dropped("mac"), mac_before + 2)
        self.assertEqual(self.dropped("unsolicited"), unsolicited + 1)
        wait_for(lambda: self.details()["control"]["timeouts"] == 1, what="one timeout counted")
        self.assertEqual(self.counters().get("control_timeouts"), 1)
        self.assertEqual(sim.count(lambda e: e.get("event") == "control"
                                   and e.get("cmd") == "set"), 1)  # retries are not re-run
        sim.cmd("unmute %s" % dev)
        r = alice.call("controlDevice", {"deviceId": dev, "command": "get"})
        self.assertEqual(r["state"], {"on": False})  # the forged "unlocked" never happened

        # 4. The device goes quiet while the spoofer keeps announcing it: it still goes offline.
        sim.cmd("silence %s" % dev)
        stop = threading.Event()

        def spam():
            n = 0
            while not stop.wait(0.3):
                n += 1
                spoofer.sendto(datagram(dict(unsigned, name=name, model="hearth-sim-lamp")),
                               group)
                spoofer.sendto(datagram(dict(fake, ctr=2 ** 52 + n), key=os.urandom(32)), group)
        t = threading.Thread(target=spam, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        alice.wait_event("deviceOffline", timeout=OFFLINE_AFTER + PROBE_PERIOD + 15,
                         predicate=lambda e: e["data"]["deviceId"] == dev)
        stop.set()
        t.join()
        self.assertFalse(self.devices()[dev]["online"])

    def test_presence_follows_announcements_and_reset_clears_bindings(self):
        hub = self.start_hub()
        hub.add_user("alice")
        hub.add_user("bob")
        alice = hub.terminal("alice", "alice-phone")
        bob = hub.terminal("bob", "bob-phone")
        sim = self.start_sim("--count", "1", "--prefix", "fan-", "--period", "1s")
        dev = "fan-0001"
        self.wait_device(dev, lambda d: d["online"])
        self.provisioned(sim, alice, dev)

        sim.cmd("silence %s" % dev)
        silenced = time.monotonic()
        alice.wait_event("deviceOffline", timeout=OFFLINE_AFTER + PROBE_PERIOD + 15,
                         predicate=lambda e: e["data"]["deviceId"] == dev)
        # Not before offline_after since its last announcement (at most one period before).
        self.assertGreaterEqual(time.monotonic() - silenced, OFFLINE_AFTER - 1.0)
        self.assertFalse(self.bound(alice)[dev]["online"])
        r = alice.request("controlDevice", {"deviceId": dev, "command": "get"})
        self.assertEqual(r["error"]["code"], "OFFLINE")

        sim.cmd("wake %s" % dev)
        alice.wait_event("deviceOnline", timeout=15,
                         predicate=lambda e: e["data"]["deviceId"] == dev)
        self.assertTrue(self.bound(alice)[dev]["online"])
        self.assertEqual(alice.call("controlDevice", {"deviceId": dev, "command": "ping"}), {})

        # A factory reset clears every binding; the device is then free for anyone to set up.
        sim.cmd("reset %s" % dev)
        e = alice.wait_event("bindingChanged",
                             predicate=lambda e: e["data"].get("deviceId") == dev
                             and e["data"].get("reason") == "reset")
        self.assertNotIn(dev, self.bound(alice))
        wait_for(lambda: self.details()["resets"] == 1, what="the reset to be counted")
        self.assertEqual(self.devices()[dev]["bindings"], 0)
        self.provisioned(sim, bob, dev, acks_before=1)
        self.assertEqual(bob.call("controlDevice", {"deviceId": dev, "command": "get"})["state"],
                         {"on": False})

    def test_thousand_devices_appear_while_garbage_is_dropped_and_counted(self):
        self.start_hub(plugin_config={"probe_period": "5s", "offline_after": "60s"})
        before = udp_errors()
        sim = self.start_sim("--count", "1000", "--prefix", "bulb-", "--period", "2s")
        spoofer = self.net.dev_socket()
        self.addCleanup(spoofer.close)
        rng = random.Random(7)
        garbage = {
            "oversize": [datagram({"type": "announce", "id": "big", "model": "m", "port": 1,
                                   "name": "x" * 1400})],
            "header": [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))).replace(
                b"\n", b"") for _ in range(3)] + [b"GET / HTTP/1.1\r\n\r\n"],
            "version": [b'HLAN/2\n{"type":"probe"}'],
            "json": [b"HLAN/1\n{oops", b"HLAN/1\n[]"],
            "message": [datagram({"type": "announce", "id": "bad/id", "model": "m", "port": 1}),
                        datagram({"type": "announce", "id": "x", "model": "m", "port": 0}),
                        datagram({"type": "explode", "id": "x"})],
            "mac": [datagram({"type": "reset", "id": "bulb-0001", "ctr": 5})],
        }
        sent = {}
        for i in range(300):
            reason = list(garbage)[i % len(garbage)]
            payload = garbage[reason][i % len(garbage[reason])]
            spoofer.sendto(payload, (GROUP, PORT))
            sent[reason] = sent.get(reason, 0) + 1
            time.sleep(0.01)

        def all_there():
            devs = [d for d in self.devices().values() if d["transport"] == "wifi"]
            return len(devs) == 1000 and all(d["online"] for d in devs)
        wait_for(all_there, timeout=240, interval=1, what="1000 simulated devices")
        ids = {d for d in self.devices() if d.startswith("bulb-")}
        self.assertEqual(ids, {"bulb-%04d" % i for i in range(1, 1001)})

        lost = udp_errors() - before  # datagrams the kernel dropped before the plugin saw them
        def counted():
            dropped = self.details()["dropped"]
            return all(sent[r] - lost <= dropped[r] <= sent[r] for r in sent) and dropped
        dropped = wait_for(counted, timeout=30, what="every garbage datagram to be counted")
        if lost == 0:
            for reason, n in sent.items():
                self.assertEqual(dropped[reason], n, reason)
        for reason in ("replay", "duplicate", "unauthorized", "overLimit", "backlog"):
            self.assertEqual(dropped[reason], 0, reason)
        # The same drops as plugin counters (handed over with the next status check).
        wait_for(lambda: all(self.counters().get("dropped_" + r, 0) == self.dropped(r)
                             for r in sent), timeout=10, what="the drop counters")
        for reason in ("replay", "duplicate", "unauthorized", "over_limit", "backlog"):
            self.assertNotIn("dropped_" + reason, self.counters())
        self.assertEqual(self.details()["devices"], 1000)
        self.assertEqual(self.hub.proc.poll(), None)

    def test_ssdp_devices_are_listed_but_not_bindable(self):
        self.start_hub()
        with self.net.in_dev():
            upnp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(upnp.close)
        upnp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        upnp.bind(("239.255.255.250", 1900))
        upnp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton("239.255.255.250") + socket.inet_aton(DEV_ADDR))
        upnp.settimeout(15)
        sender = self.net.dev_socket()
        self.addCleanup(sender.close)
        tv = "2f402f80-da50-11e1-9b23-001788255acc"
        notify = ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
                  "CACHE-CONTROL: max-age=1800\r\nLOCATION: http://%s:8080/d.xml\r\n"
                  "NT: urn:schemas-upnp-org:device:MediaRenderer:1\r\nNTS: ssdp:%s\r\n"
                  "SERVER: Linux/6.1 UPnP/1.1 AcmeTV/3.2\r\nUSN: uuid:%s::urn:schemas-upnp-org:"
                  "device:MediaRenderer:1\r\n\r\n")
        sender.sendto((notify % (DEV_ADDR, "alive", tv)).encode(), ("239.255.255.250", 1900))

        # The hub's M-SEARCH reaches the LAN; a UPnP printer answers it.
        while True:
            data, source = upnp.recvfrom(4096)
            if data.startswith(b"M-SEARCH") and source[0] == HUB_ADDR:
                break
        printer = "7c3e9a10-0000-4000-8000-00000000beef"
        sender.sendto(("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
                       "ST: urn:schemas-upnp-org:device:Printer:1\r\nSERVER: CUPS/2.4 UPnP/1.0\r\n"
                       "USN: uuid:%s::urn:schemas-upnp-org:device:Printer:1\r\n\r\n"
                       % printer).encode(), source)

        for uid, model, name in ((tv, "urn:schemas-upnp-org:device:MediaRenderer:1",
                                  "Linux/6.1 UPnP/1.1 AcmeTV/3.2"),
                                 (printer, "urn:schemas-upnp-org:device:Printer:1",
                                  "CUPS/2.4 UPnP/1.0")):
            d = self.wait_device("ssdp-" + uid, lambda d: d["online"])
            self.assertEqual(d["transport"], "ssdp")
            self.assertTrue(d["inventoryOnly"])
            self.assertFalse(d["bindable"])
            self.assertEqual(d["model"], model)
            self.assertEqual(d["name"], name)
        wait_for(lambda: self.details()["ssdpDevices"] == 2, what="two SSDP devices counted")
        # Garbage on the SSDP port is counted, not listed.
        sender.sendto(b"NOTIFY * HTTP/1.1\r\nNTS: ssdp:alive\r\nUSN: nope\r\n\r\n",
                      ("239.255.255.250", 1900))
        wait_for(lambda: self.details()["ssdpInvalid"] >= 1, what="invalid SSDP to be counted")

        sender.sendto((notify % (DEV_ADDR, "byebye", tv)).encode(), ("239.255.255.250", 1900))
        self.wait_device("ssdp-" + tv, lambda d: not d["online"], what="the TV to say byebye")
        self.assertEqual(len([d for d in self.devices().values() if d["transport"] == "ssdp"]), 2)


@unittest.skipUnless(os.path.exists(os.path.join(BUILD_DIR, "plugins", "wifi_lan.so")),
                     "the wifi_lan plugin is not built")
class WifiLanCheckConfigTest(unittest.TestCase):
    """--check-config runs the plugin's validate: what start() would refuse is refused before
    (no namespaces or root needed: nothing is started)."""

    def check(self, root, text):
        path = os.path.join(root, "hearth.yaml")
        with open(path, "w") as f:
            f.write("hub:\n  state_dir: %s\n  plugin_dir: %s\nplugins:\n  wifi_lan:\n%s"
                    % (root, os.path.join(BUILD_DIR, "plugins"), text))
        r = subprocess.run([HEARTHD, "--check-config", path], capture_output=True, text=True,
                           timeout=30)
        return r.returncode, r.stdout + r.stderr

    def test_bad_interfaces_and_groups_are_refused(self):
        with tempfile.TemporaryDirectory(prefix="hearth-wl-") as root:
            code, out = self.check(root, "    interfaces: [eth0, wlan0]\n")
            self.assertEqual(code, 0, out)
            for text, says in (("    interfaces: [123]\n", "interface names"),
                               ("    interfaces: [an-interface-name-too-long]\n",
                                "interface names"),
                               ("    multicast_group: 10.0.0.1\n", "not IPv4 multicast"),
                               ("    multicast_group: lan\n", "not an IPv4 address")):
                with self.subTest(config=text.strip()):
                    code, out = self.check(root, text)
                    self.assertEqual(code, 1, out)
                    self.assertIn("plugins.wifi_lan", out)
                    self.assertIn(says, out)


if __name__ == "__main__":
    unittest.main()
