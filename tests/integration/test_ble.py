"""The ble plugin against a BlueZ stand-in: python-dbusmock's bluez5 template on a private
dbus-daemon, which hearthd uses as its system bus (DBUS_SYSTEM_BUS_ADDRESS). The binding policy
is the real core's (SPEC §3, §5; issue 6).

The mock is driven over D-Bus like any client would: org.bluez.Mock (AddAdapter, AddDevice),
org.freedesktop.DBus.Mock (AddObject/AddMethod for GATT objects and device behaviour, the call
log for what hearthd wrote), plus one helper method installed on the mock that plays an
advertisement (updates a device's properties and emits one PropertiesChanged, as BlueZ does).

Run with Debian's /usr/bin/python3 (dbus-python, python-dbusmock, paho-mqtt).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import dbus

from harness import Hub, wait_for

MOCK = "org.freedesktop.DBus.Mock"
BLUEZ_MOCK = "org.bluez.Mock"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"
CHARACTERISTIC = "org.bluez.GattCharacteristic1"
HELPER = "org.hearth.Test"


def uuid16(short):
    return "0000%s-0000-1000-8000-00805f9b34fb" % short


LOCK_SERVICE = uuid16("fff0")
LOCK_CONTROL = uuid16("fff1")
LOCK_STATUS = uuid16("fff2")
BULB_SERVICE = uuid16("ffe0")
BULB_CONTROL = uuid16("ffe1")
COMPANY = 0xFFFF  # the SIG's id for tests

LOCK_RULE = {
    "model": "acme.lock.v1",
    "service_uuid": "fff0",
    "manufacturer_id": COMPANY,
    "control": {"characteristic": LOCK_CONTROL, "reply": "notify",
                "reply_characteristic": LOCK_STATUS,
                "commands": {"unlock": "01", "lock": "02", "raw": "*"}},
}
BULB_RULE = {
    "model": "acme.bulb.v2",
    "name_pattern": "ACME Bulb*",
    "control": {"service_uuid": BULB_SERVICE, "characteristic": BULB_CONTROL, "reply": "read",
                "commands": {"on": "a101", "off": "a100"}},
}

# Installed on the mock's root object: plays one advertisement of device args[0].
ADVERTISE_CODE = """
dev = objects[args[0]]
props = dev.props['org.bluez.Device1']
for key in args[1]:
    props[key] = args[1][key]
dev.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
               ['org.bluez.Device1', args[1], dbus.Array([], signature='s')])
"""

# Device1.Connect as BlueZ behaves: Connected now, ServicesResolved a moment later.
CONNECT_CODE = """
from gi.repository import GLib
p = self.props['org.bluez.Device1']
p['Connected'] = dbus.Boolean(True, variant_level=1)
self.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
                ['org.bluez.Device1',
                 dbus.Dictionary({'Connected': dbus.Boolean(True, variant_level=1)},
                                 signature='sv'),
                 dbus.Array([], signature='s')])
def resolved(obj=self):
    obj.props['org.bluez.Device1']['ServicesResolved'] = dbus.Boolean(True, variant_level=1)
    obj.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
                   ['org.bluez.Device1',
                    dbus.Dictionary({'ServicesResolved': dbus.Boolean(True, variant_level=1)},
                                    signature='sv'),
                    dbus.Array([], signature='s')])
    return False
GLib.timeout_add(150, resolved)
"""

DISCONNECT_CODE = """
p = self.props['org.bluez.Device1']
p['Connected'] = dbus.Boolean(False, variant_level=1)
p['ServicesResolved'] = dbus.Boolean(False, variant_level=1)
self.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
                ['org.bluez.Device1',
                 dbus.Dictionary({'Connected': dbus.Boolean(False, variant_level=1),
                                  'ServicesResolved': dbus.Boolean(False, variant_level=1)},
                                 signature='sv'),
                 dbus.Array([], signature='s')])
"""

CONNECT_FAILS_CODE = """
raise dbus.exceptions.DBusException('le-connection-abort-by-local', name='org.bluez.Error.Failed')
"""

START_NOTIFY_CODE = """
self.props['org.bluez.GattCharacteristic1']['Notifying'] = dbus.Boolean(True, variant_level=1)
"""

STOP_NOTIFY_CODE = """
self.props['org.bluez.GattCharacteristic1']['Notifying'] = dbus.Boolean(False, variant_level=1)
"""

# The lock answers a write on its status characteristic: 0xA0 + what was written, as a
# notification, and only if someone subscribed first.
WRITE_AND_NOTIFY_CODE = """
status = objects['%(status)s']
if status.props['org.bluez.GattCharacteristic1']['Notifying']:
    v = dbus.Array([dbus.Byte(0xA0)], signature='y')
    for b in args[0]:
        v.append(dbus.Byte(b))
    status.props['org.bluez.GattCharacteristic1']['Value'] = v
    status.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
                      ['org.bluez.GattCharacteristic1',
                       dbus.Dictionary({'Value': dbus.Array(v, signature='y', variant_level=1)},
                                       signature='sv'),
                       dbus.Array([], signature='s')])
"""

# The bulb keeps what was written; ReadValue returns it.
WRITE_AND_KEEP_CODE = """
self.props['org.bluez.GattCharacteristic1']['Value'] = dbus.Array(args[0], signature='y',
                                                                  variant_level=1)
"""
READ_CODE = "ret = self.props['org.bluez.GattCharacteristic1']['Value']"

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def hearth_block(window=0, closed=False, reset=0):
    """The 5-byte hearth advertisement block (docs/ble.md)."""
    return [0x01, 0x01 if closed else 0x00, window & 0xFF, (window >> 8) & 0xFF, reset & 0xFF]


def advertisement(uuids=None, mfr=None, name=None, rssi=-50):
    p = {"RSSI": dbus.Int16(rssi)}
    if uuids is not None:
        p["UUIDs"] = dbus.Array(uuids, signature="s")
    if mfr is not None:
        p["ManufacturerData"] = dbus.Dictionary(
            {dbus.UInt16(k): dbus.Array([dbus.Byte(b) for b in v], signature="y")
             for k, v in mfr.items()}, signature="qv")
    if name is not None:
        p["Name"] = dbus.String(name)
    return dbus.Dictionary(p, signature="sv")


class PrivateBus:
    """A dbus-daemon of our own, used as hearthd's system bus."""

    def __init__(self, root):
        self.root = root
        self.proc = None
        self.address = None

    def start(self):
        config = os.path.join(self.root, "bus.conf")
        socket = os.path.join(self.root, "system_bus_socket")
        with open(config, "w") as f:
            f.write(BUS_CONFIG % socket)
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + config, "--nofork", "--nopidfile",
             "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        if not self.proc.stdout.readline().strip():
            raise AssertionError("dbus-daemon did not start")
        # The address without the daemon's guid, as the real system bus address is: a
        # restarted daemon on the same socket has another guid.
        self.address = "unix:path=" + socket
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc:
            self.proc.stdout.close()
        self.proc = None


class MockBluez:
    """python-dbusmock's bluez5 template on the private bus, and handles to drive it."""

    def __init__(self, bus, root):
        self.bus = bus
        self.log_path = os.path.join(root, "dbusmock.log")
        self.proc = None
        self.conn = None
        self.advertisers = []

    def start(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--template", "bluez5", "-l", self.log_path],
            env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.conn = dbus.bus.BusConnection(self.bus.address)
        wait_for(lambda: self.conn.name_has_owner("org.bluez"), timeout=20,
                 what="dbusmock to own org.bluez")
        self.root = self.obj("/")
        self.root.AddMethod(HELPER, "Advertise", "oa{sv}", "", ADVERTISE_CODE,
                            dbus_interface=MOCK)
        return self

    def kill(self):
        for a in self.advertisers:
            a.stop()
        self.advertisers = []
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def obj(self, path):
        return self.conn.get_object("org.bluez", path, introspect=False)

    def calls(self, path, method):
        return [list(args) for _, args in
                self.obj(path).GetMethodCalls(method, dbus_interface=MOCK)]

    # -- BlueZ objects --------------------------------------------------------------------
    def add_adapter(self, name="hci0"):
        return str(self.root.AddAdapter(name, "hearth test hub", dbus_interface=BLUEZ_MOCK))

    def add_device(self, address, name, adapter="hci0", connect_code=CONNECT_CODE):
        path = str(self.root.AddDevice(adapter, address, name, dbus_interface=BLUEZ_MOCK))
        dev = self.obj(path)
        dev.AddMethod(DEVICE, "Connect", "", "", connect_code, dbus_interface=MOCK)
        dev.AddMethod(DEVICE, "Disconnect", "", "", DISCONNECT_CODE, dbus_interface=MOCK)
        return path

    def add_gatt(self, device_path, service_uuid, characteristics):
        """characteristics: [(uuid, {method: code})]; returns the characteristic paths."""
        service = device_path + "/service0010"
        self._add_object(service, "org.bluez.GattService1",
                         {"UUID": service_uuid, "Device": dbus.ObjectPath(device_path),
                          "Primary": dbus.Boolean(True)}, [])
        paths = []
        for i, (uuid, methods) in enumerate(characteristics):
            path = "%s/char%04x" % (service, 0x11 + 2 * i)
            table = [("ReadValue", "a{sv}", "ay", methods.get("ReadValue", READ_CODE)),
                     ("WriteValue", "aya{sv}", "", methods.get("WriteValue", "")),
                     ("StartNotify", "", "", START_NOTIFY_CODE),
                     ("StopNotify", "", "", STOP_NOTIFY_CODE)]
            self._add_object(path, CHARACTERISTIC,
                             {"UUID": uuid, "Service": dbus.ObjectPath(service),
                              "Value": dbus.Array([], signature="y"),
                              "Notifying": dbus.Boolean(False),
                              "Flags": dbus.Array(["read", "write", "notify"], signature="s")},
                             table)
            paths.append(path)
        return paths

    def _add_object(self, path, interface, props, methods):
        props = dbus.Dictionary(props, signature="sv")
        self.root.AddObject(path, interface, props, dbus.Array(methods, signature="(ssss)"),
                            dbus_interface=MOCK)
        self.root.EmitSignal(
            "org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}",
            [dbus.ObjectPath(path), dbus.Dictionary({interface: props}, signature="sa{sv}")],
            dbus_interface=MOCK, signature="sssav")

    def advertise(self, path, props):
        self.root.Advertise(dbus.ObjectPath(path), props, dbus_interface=HELPER,
                            signature="oa{sv}")

    def add_lock(self, address, name="ACME Lock", window=0, closed=False, reset=0):
        path = self.add_device(address, name)
        control, status = self.add_gatt(path, LOCK_SERVICE, [
            (LOCK_CONTROL, {}), (LOCK_STATUS, {})])
        self.obj(control).AddMethod(CHARACTERISTIC, "WriteValue", "aya{sv}", "",
                                    WRITE_AND_NOTIFY_CODE % {"status": status},
                                    dbus_interface=MOCK)
        self.advertise(path, self.lock_advert(window, closed, reset))
        return path, control

    @staticmethod
    def lock_advert(window=0, closed=False, reset=0):
        return advertisement(uuids=[LOCK_SERVICE],
                             mfr={COMPANY: hearth_block(window, closed, reset)})

    def keep_advertising(self, path, props, interval=0.5):
        a = Advertiser(self.bus.address, path, props, interval)
        self.advertisers.append(a)
        return a


class Advertiser:
    """A device that keeps advertising, on its own bus connection and thread."""

    def __init__(self, address, path, props, interval):
        self.stopped = threading.Event()
        conn = dbus.bus.BusConnection(address)
        root = conn.get_object("org.bluez", "/", introspect=False)

        def run():
            try:
                while not self.stopped.is_set():
                    try:
                        root.Advertise(dbus.ObjectPath(path), props, dbus_interface=HELPER,
                                       signature="oa{sv}")
                    except dbus.exceptions.DBusException:
                        pass  # the mock is being restarted
                    self.stopped.wait(interval)
            finally:
                conn.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=10)


class BleCase(unittest.TestCase):
    """One private bus, one mock BlueZ and one hearthd per class; all torn down even when
    setUpClass fails half way."""

    PLUGIN = {}
    BINDING = {}
    ADAPTER_AT_START = True

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="hearth-ble-")
        cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
        cls.bus = PrivateBus(cls.root).start()
        cls.addClassCleanup(cls.bus.stop)
        cls.mock = MockBluez(cls.bus, cls.root).start()
        cls.addClassCleanup(lambda: cls.mock.kill())
        if cls.ADAPTER_AT_START:
            cls.adapter = cls.mock.add_adapter("hci0")
        config = {"binding": cls.BINDING} if cls.BINDING else {}
        cls.hub = Hub(plugins=["ble"], plugin_config={"ble": cls.PLUGIN}, config=config,
                      env={"DBUS_SYSTEM_BUS_ADDRESS": cls.bus.address})
        cls.hub.__enter__()
        cls.addClassCleanup(cls.hub.__exit__, None, None, None)

    def run(self, result=None):
        # hearthd's and the mock's logs help only when something failed.
        failures = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            print("\n--- hearthd log ---\n" + self.hub.log_text()[-8000:])
            try:
                with open(self.mock.log_path, errors="replace") as f:
                    print("--- dbusmock log ---\n" + f.read()[-4000:])
            except OSError:
                pass
        return out

    # -- helpers ------------------------------------------------------------------------
    def plugin_state(self):
        s = self.hub.status()
        return s["plugins"].get("ble"), s.get("details", {}).get("ble", {})

    def wait_state(self, state, reason=None, timeout=20):
        def ok():
            st, detail = self.plugin_state()
            return st == state and (reason is None or detail.get("reason") == reason)
        wait_for(ok, timeout=timeout, interval=0.2,
                 what="plugin ble %s %s (now %s)" % (state, reason or "", self.plugin_state()))

    def devices(self):
        r = self.hub.admin("devices")
        self.assertTrue(r["ok"], r)
        return {d["deviceId"]: d for d in r["result"]["devices"]}

    def wait_device(self, device_id, timeout=20, predicate=lambda d: True):
        return wait_for(lambda: (self.devices().get(device_id) if device_id in self.devices()
                                 and predicate(self.devices()[device_id]) else None),
                        timeout=timeout, interval=0.2, what="device %s reported" % device_id)

    def error_code(self, term, method, params):
        r = term.request(method, params, timeout=40)
        self.assertFalse(r["ok"], r)
        return r["error"]

    def user(self, name):
        self.hub.add_user(name)
        return self.hub.terminal(name, name + "-phone")


class ShareRequiredLock(BleCase):
    PLUGIN = {"products": [LOCK_RULE], "scan_window": "1s", "scan_interval": "2s"}

    def test_lock_is_reported_bound_shared_and_controlled(self):
        self.wait_state("running")
        path, control = self.mock.add_lock("C0:FF:EE:00:00:01", name="Front door")
        dev = "ble:C0:FF:EE:00:00:01"
        d = self.wait_device(dev)
        self.assertEqual((d["model"], d["name"], d["transport"], d["bindMode"]),
                         ("acme.lock.v1", "Front door", "ble", "share_required"))
        self.assertTrue(d["online"])

        alice, bob = self.user("alice"), self.user("bob")
        self.assertEqual(alice.call("bindDevice", {"deviceId": dev})["role"], "owner")
        self.assertEqual(alice.call("bindDevice", {"deviceId": dev})["role"], "owner")
        self.assertEqual(self.error_code(bob, "bindDevice", {"deviceId": dev})["code"],
                         "SHARE_REQUIRED")
        # Not bound yet: bob cannot command the lock through the hub.
        self.assertEqual(self.error_code(bob, "controlDevice",
                                         {"deviceId": dev, "command": "unlock"})["code"],
                         "FORBIDDEN")
        self.assertEqual(self.mock.calls(control, "WriteValue"), [])

        share = alice.call("shareDevice", {"deviceId": dev, "way": "qr"})
        scanned = bob.call("scanShare", {"qrKey": share["qrKey"]})
        self.assertEqual((scanned["deviceId"], scanned["model"]), (dev, "acme.lock.v1"))
        roles = {a["userId"]: a["role"] for a in
                 alice.call("getDeviceDetail", {"deviceId": dev})["relAccounts"]}
        self.assertEqual(roles, {"alice": "owner", "bob": "guest"})

        res = bob.call("controlDevice", {"deviceId": dev, "command": "unlock"}, timeout=40)
        self.assertEqual(res, {"deviceId": dev, "command": "unlock", "written": "01",
                               "reply": "a001"})
        writes = self.mock.calls(control, "WriteValue")
        self.assertEqual([bytes(w[0]) for w in writes], [b"\x01"])
        self.assertEqual(str(writes[0][1]["type"]), "request")

        # A "*" command writes params.value.
        res = alice.call("controlDevice", {"deviceId": dev, "command": "raw",
                                           "params": {"value": "0a0b"}}, timeout=40)
        self.assertEqual(res["reply"], "a00a0b")
        self.assertEqual([bytes(w[0]) for w in self.mock.calls(control, "WriteValue")],
                         [b"\x01", b"\x0a\x0b"])
        self.assertEqual(self.error_code(alice, "controlDevice",
                                         {"deviceId": dev, "command": "explode"})["code"],
                         "INVALID_REQUEST")

        # What happened is counted in hub/status (details.ble.counters).
        counters = self.plugin_state()[1]["counters"]
        self.assertGreaterEqual(counters["adverts_seen"], 1)
        self.assertEqual((counters["gatt_writes"], counters["gatt_notifications"],
                          counters["commands_ok"], counters["command_errors_invalid_request"]),
                         (2, 2, 2, 1))

    def test_discovery_filter_and_duty_cycle(self):
        self.wait_state("running")
        filters = wait_for(lambda: self.mock.calls(self.adapter, "SetDiscoveryFilter"),
                           timeout=20, what="SetDiscoveryFilter")
        f = filters[0][0]
        self.assertEqual(str(f["Transport"]), "le")
        self.assertEqual([str(u) for u in f["UUIDs"]], [LOCK_SERVICE])
        self.assertTrue(bool(f["DuplicateData"]))
        # 1 s of every 2 s: discovery is started and stopped again and again.
        wait_for(lambda: len(self.mock.calls(self.adapter, "StartDiscovery")) >= 3 and
                 len(self.mock.calls(self.adapter, "StopDiscovery")) >= 2,
                 timeout=30, what="a discovery duty cycle")


class ShareFreeAndErrors(BleCase):
    PLUGIN = {"products": [LOCK_RULE, BULB_RULE], "connection_idle": "0s"}
    BINDING = {"products": [{"model": "acme.bulb.*", "mode": "share_free"}]}

    def add_bulb(self, address, name, connect_code=CONNECT_CODE):
        path = self.mock.add_device(address, name, connect_code=connect_code)
        (control,) = self.mock.add_gatt(path, BULB_SERVICE, [
            (BULB_CONTROL, {"WriteValue": WRITE_AND_KEEP_CODE})])
        self.mock.advertise(path, advertisement(name=name))
        return path, control

    def test_share_free_bulb_second_binder_is_normal_and_controls_it(self):
        path, control = self.add_bulb("B0:0B:00:00:00:01", "ACME Bulb kitchen")
        dev = "ble:B0:0B:00:00:00:01"
        d = self.wait_device(dev)
        self.assertEqual((d["model"], d["bindMode"]), ("acme.bulb.v2", "share_free"))
        carol, dave = self.user("carol"), self.user("dave")
        self.assertEqual(carol.call("bindDevice", {"deviceId": dev})["role"], "owner")
        self.assertEqual(dave.call("bindDevice", {"deviceId": dev})["role"], "normal")
        res = dave.call("controlDevice", {"deviceId": dev, "command": "on"}, timeout=40)
        self.assertEqual((res["written"], res["reply"]), ("a101", "a101"))
        self.assertEqual([bytes(w[0]) for w in self.mock.calls(control, "WriteValue")],
                         [b"\xa1\x01"])
        # connection_idle 0: the plugin hung up after the command.
        wait_for(lambda: self.mock.calls(path, "Disconnect"), timeout=20,
                 what="Disconnect after the command")

    def test_rule_without_service_uuid_turns_the_uuid_filter_off(self):
        filters = wait_for(lambda: self.mock.calls(self.adapter, "SetDiscoveryFilter"),
                           timeout=20, what="SetDiscoveryFilter")
        self.assertEqual(str(filters[0][0]["Transport"]), "le")
        self.assertNotIn("UUIDs", filters[0][0])

    def test_bluez_errors_map_to_hearth_codes(self):
        path, control = self.add_bulb("B0:0B:00:00:00:02", "ACME Bulb cellar",
                                      connect_code=CONNECT_FAILS_CODE)
        dev = "ble:B0:0B:00:00:00:02"
        self.wait_device(dev)
        erin = self.user("erin")
        self.assertEqual(erin.call("bindDevice", {"deviceId": dev})["role"], "owner")
        err = self.error_code(erin, "controlDevice", {"deviceId": dev, "command": "off"})
        self.assertEqual(err["code"], "OFFLINE")
        self.assertIn("org.bluez.Error.Failed", err["message"])
        self.assertIn("le-connection-abort-by-local", err["message"])
        self.assertEqual(self.mock.calls(control, "WriteValue"), [])


class Presence(BleCase):
    PLUGIN = {"products": [LOCK_RULE], "present_within": "2s", "offline_after": "1h"}

    def test_closed_pairing_window_is_not_bindable_until_it_opens(self):
        path, _ = self.mock.add_lock("C0:FF:EE:00:01:01", closed=True)
        dev = "ble:C0:FF:EE:00:01:01"
        self.wait_device(dev, predicate=lambda d: not d["bindable"])
        frank = self.user("frank")
        self.assertEqual(self.error_code(frank, "bindDevice", {"deviceId": dev})["code"],
                         "NOT_BINDABLE")
        adv = self.mock.keep_advertising(path, self.mock.lock_advert(window=300))
        try:
            self.wait_device(dev, predicate=lambda d: d["bindable"])
            self.assertEqual(frank.call("bindDevice", {"deviceId": dev})["role"], "owner")
        finally:
            adv.stop()

    def test_device_not_seen_recently_is_not_bindable(self):
        path, _ = self.mock.add_lock("C0:FF:EE:00:01:02")
        dev = "ble:C0:FF:EE:00:01:02"
        self.wait_device(dev)
        grace = self.user("grace")
        # The report is visible, so the sighting is processed; 4 s later it is older than
        # present_within (2 s) whatever the scheduling.
        time.sleep(4)
        self.assertEqual(self.error_code(grace, "bindDevice", {"deviceId": dev})["code"],
                         "NOT_BINDABLE")
        adv = self.mock.keep_advertising(path, self.mock.lock_advert())
        try:
            def bound():
                r = grace.request("bindDevice", {"deviceId": dev})
                return r["ok"] and r["result"]["role"] == "owner"
            wait_for(bound, timeout=20, interval=0.3, what="bind once the lock advertises")
        finally:
            adv.stop()

    def test_reset_counter_change_clears_the_bindings(self):
        path, _ = self.mock.add_lock("C0:FF:EE:00:01:03", reset=7)
        dev = "ble:C0:FF:EE:00:01:03"
        self.wait_device(dev)
        heidi = self.user("heidi")
        self.assertEqual(heidi.call("bindDevice", {"deviceId": dev})["role"], "owner")
        # The same counter again changes nothing; the new name shows the advertisement (and
        # with it the counter) was processed.
        same = self.mock.lock_advert(reset=7)
        same["Name"] = dbus.String("Back door")
        self.mock.advertise(path, same)
        self.wait_device(dev, predicate=lambda d: d["name"] == "Back door")
        self.assertEqual(self.devices()[dev]["bindings"], 1)
        self.mock.advertise(path, self.mock.lock_advert(reset=8))
        evt = heidi.wait_event("bindingChanged", timeout=20,
                               predicate=lambda e: e["data"].get("reason") == "reset")
        self.assertEqual(evt["data"]["deviceId"], dev)
        self.assertEqual(self.devices()[dev]["bindings"], 0)
        self.assertEqual(heidi.call("getBoundDevices")["devices"], [])


class BluetoothdRestart(BleCase):
    PLUGIN = {"products": [LOCK_RULE], "offline_after": "2s", "retry_interval": "1s"}

    def test_mock_killed_and_restarted_scanning_resumes_without_restarting_hearthd(self):
        path, control = self.mock.add_lock("C0:FF:EE:00:02:01")
        dev = "ble:C0:FF:EE:00:02:01"
        self.mock.keep_advertising(path, self.mock.lock_advert())
        self.wait_device(dev)
        ivan = self.user("ivan")
        self.assertEqual(ivan.call("bindDevice", {"deviceId": dev})["role"], "owner")
        seen_before = self.devices()[dev]["lastSeen"]
        pid = self.hub.proc.pid

        self.mock.kill()
        self.wait_state("waiting", "waiting_for_bluez")
        ivan.wait_event("deviceOffline", timeout=20)
        self.assertEqual(self.error_code(ivan, "controlDevice",
                                         {"deviceId": dev, "command": "lock"})["code"],
                         "OFFLINE")

        self.mock.start()
        self.adapter = self.mock.add_adapter("hci0")
        self.wait_state("running")
        wait_for(lambda: self.mock.calls(self.adapter, "StartDiscovery"), timeout=20,
                 what="discovery on the restarted BlueZ")
        path, control = self.mock.add_lock("C0:FF:EE:00:02:01")
        self.mock.keep_advertising(path, self.mock.lock_advert())
        ivan.wait_event("deviceOnline", timeout=20)
        self.wait_device(dev, predicate=lambda d: d["online"] and d["lastSeen"] > seen_before)
        res = ivan.call("controlDevice", {"deviceId": dev, "command": "lock"}, timeout=40)
        self.assertEqual(res["reply"], "a002")
        self.assertEqual([bytes(w[0]) for w in self.mock.calls(control, "WriteValue")],
                         [b"\x02"])
        self.assertEqual(self.hub.proc.pid, pid)
        self.assertIsNone(self.hub.proc.poll())
        self.assertGreaterEqual(self.plugin_state()[1]["counters"]["bluez_restarts"], 1)


class SystemBusRestart(BleCase):
    PLUGIN = {"products": [LOCK_RULE], "retry_interval": "1s"}

    def test_system_bus_restart_is_survived(self):
        self.wait_state("running")
        self.mock.kill()
        self.bus.stop()  # dbus-daemon gone: hearthd's bus connection drops
        self.wait_state("waiting", "waiting_for_system_bus")
        self.bus.start()  # same socket path
        self.wait_state("waiting", "waiting_for_bluez")
        self.mock.start()
        adapter = self.mock.add_adapter("hci0")
        self.wait_state("running")
        wait_for(lambda: self.mock.calls(adapter, "StartDiscovery"), timeout=20,
                 what="discovery on the new bus")
        self.mock.add_lock("C0:FF:EE:00:04:01")
        self.wait_device("ble:C0:FF:EE:00:04:01")
        counters = self.plugin_state()[1]["counters"]
        self.assertEqual((counters["bus_disconnects"], counters["bus_reconnects"]), (1, 1))


class NoAdapterAtStart(BleCase):
    PLUGIN = {"products": [LOCK_RULE]}
    ADAPTER_AT_START = False

    def test_waiting_for_adapter_then_running_and_power_cycles(self):
        self.wait_state("waiting", "waiting_for_adapter")
        adapter = self.mock.add_adapter("hci0")
        self.wait_state("running")
        wait_for(lambda: self.mock.calls(adapter, "StartDiscovery"), timeout=20,
                 what="StartDiscovery on the new adapter")
        started = len(self.mock.calls(adapter, "StartDiscovery"))

        props = self.mock.obj(adapter)
        props.Set(ADAPTER, "Powered", dbus.Boolean(False), dbus_interface=dbus.PROPERTIES_IFACE)
        self.wait_state("waiting", "adapter_powered_off")
        props.Set(ADAPTER, "Powered", dbus.Boolean(True), dbus_interface=dbus.PROPERTIES_IFACE)
        self.wait_state("running")
        wait_for(lambda: len(self.mock.calls(adapter, "StartDiscovery")) > started,
                 timeout=20, what="StartDiscovery after power on")
        path, _ = self.mock.add_lock("C0:FF:EE:00:03:01")
        self.wait_device("ble:C0:FF:EE:00:03:01")

        # SIGTERM: the plugin stops discovery, joins its D-Bus thread and hearthd exits 0.
        self.assertEqual(self.hub.terminate(), 0, self.hub.log_text()[-3000:])
        self.assertGreaterEqual(len(self.mock.calls(adapter, "StopDiscovery")), 1)


if __name__ == "__main__":
    unittest.main()
