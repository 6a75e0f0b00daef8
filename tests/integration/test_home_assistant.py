"""home_assistant against the real broker (docs/home-assistant.md): a fake Home Assistant
(ha_fake.py: birth message, discovery read and checked against HA's documented keys and
abbreviations, commands on the command topics, state topics read), devices from the test
transport plugin, and a simulated WiFi lamp (hearth-devsim, in network namespaces, as root).

Run with /usr/bin/python3 -m unittest -v test_home_assistant
"""

import json
import os
import subprocess
import time
import unittest
import uuid

import test_wifi_lan
from harness import Broker, Hub, wait_for
from ha_fake import FakeHomeAssistant

HA_CONFIG = {"resend_delay_max": "1s", "hub_name": "testhub"}
HUB_NODE = "hearth-hub-testhub"


def node(device_id):
    out = "hearth_"
    for c in device_id:
        out += c if (c.isascii() and c.isalnum()) or c == "-" else "_%02x" % ord(c)
    return out


class HomeAssistantTest(unittest.TestCase):

    def start_hub(self, ha_config=None, extra_plugins=("testtransport_plugin",)):
        cfg = dict(HA_CONFIG)
        cfg.update(ha_config or {})
        hub = Hub(plugins=list(extra_plugins) + ["home_assistant"],
                  plugin_config={"home_assistant": cfg})
        hub.__enter__()
        self.addCleanup(hub.close)
        self.addCleanup(self._dump_on_failure, hub)
        self.hub = hub
        self.wait_live()
        return hub

    def _dump_on_failure(self, hub):
        if os.environ.get("HEARTH_TEST_VERBOSE"):
            print(hub.log_text()[-8000:])

    def details(self):
        return self.hub.status().get("details", {}).get("home_assistant", {})

    def wait_live(self):
        wait_for(lambda: self.details().get("link") == "live", timeout=20,
                 what="home_assistant to be connected and synced")

    def home_assistant(self, birth=True):
        r = self.hub.admin("haAccount", {"password": self.ha_password})
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["result"]["username"], "homeassistant")
        ha = FakeHomeAssistant(self.hub.broker.port, "homeassistant", self.ha_password)
        self.addCleanup(ha.close)
        return ha.connect(birth=birth)

    def setUp(self):
        self.ha_password = "ha-" + uuid.uuid4().hex[:16]

    def report(self, device_id, model, transport="ble", name=None):
        r = self.hub.admin("testReport", {"deviceId": device_id, "model": model,
                                          "transport": transport, "name": name or device_id})
        self.assertTrue(r["ok"], r)

    def own_ble(self, terminal, device_id, model, name=None):
        self.report(device_id, model, name=name)
        terminal.call("bindDevice", {"deviceId": device_id})

    def own_wifi(self, terminal, device_id, model):
        self.report(device_id, model, transport="wifi")
        token = terminal.call("provisionBegin")["token"]
        r = self.hub.admin("testProvision", {"deviceId": device_id, "token": token})
        self.assertTrue(r["ok"], r)

    def controls(self):
        return self.hub.admin("testControls")["result"]["controls"]

    # -------------------------------------------------------------------------------------

    def test_expose_command_state_and_every_withdrawal(self):
        hub = self.start_hub()
        hub.add_user("alice")
        hub.add_user("bob")
        alice = hub.terminal("alice", "alice-phone")
        bob = hub.terminal("bob", "bob-phone")
        ha = self.home_assistant()
        # The hub's own device (what via_device names) is there as soon as HA is.
        ha.wait_config(HUB_NODE)

        self.own_ble(alice, "lamp.1", "acme-lamp", name="Desk lamp")
        lamp = node("lamp.1")
        self.assertEqual(lamp, "hearth_lamp_2e1")

        # Nobody but the owner decides: a stranger, then a guest (bound through a share).
        r = bob.request("haExpose", {"deviceId": "lamp.1", "enabled": True})
        self.assertEqual(r["error"]["code"], "NOT_OWNER", r)
        key = alice.call("shareDevice", {"deviceId": "lamp.1", "way": "qr"})["qrKey"]
        self.assertEqual(bob.call("scanShare", {"qrKey": key})["role"], "guest")
        r = bob.request("haExpose", {"deviceId": "lamp.1", "enabled": True})
        self.assertEqual(r["error"]["code"], "NOT_OWNER", r)
        for bad in ({"deviceId": "lamp.1"}, {"deviceId": "lamp/1", "enabled": True},
                    {"deviceId": "lamp.1", "enabled": "yes"}):
            r = alice.request("haExpose", bad)
            self.assertEqual(r["error"]["code"], "INVALID_REQUEST", (bad, r))
        r = alice.request("haExpose", {"deviceId": "nope", "enabled": True})
        self.assertEqual(r["error"]["code"], "NOT_FOUND", r)
        self.report("box-1", "mystery-box")
        alice.call("bindDevice", {"deviceId": "box-1"})
        r = alice.request("haExpose", {"deviceId": "box-1", "enabled": True})
        self.assertEqual(r["error"]["code"], "INVALID_REQUEST", r)
        self.assertIn("models", r["error"]["message"])
        time.sleep(0.5)
        self.assertNotIn(lamp, ha.configs, "nothing is shown before the owner says so")

        # Expose: the config appears (checked against HA's rules by the fake HA).
        res = alice.call("haExpose", {"deviceId": "lamp.1", "enabled": True})
        self.assertEqual(res, {"deviceId": "lamp.1", "node": lamp, "exposed": True,
                               "kind": "lamp", "entities": ["light"]})
        cfg = ha.wait_config(lamp)
        print("\nlamp discovery config:", json.dumps(cfg, indent=1, ensure_ascii=False))
        self.assertEqual(cfg["dev"]["ids"], [lamp])
        self.assertEqual(cfg["dev"]["name"], "Desk lamp")
        self.assertEqual(cfg["dev"]["via_device"], HUB_NODE)
        self.assertEqual(cfg["o"]["name"], "hearth")
        light = cfg["cmps"]["light"]
        self.assertEqual((light["p"], light["schema"], light["sup_clrm"]),
                         ("light", "json", ["brightness"]))
        self.assertEqual([a["t"] for a in cfg["avty"]],
                         ["hearth/v1/hub/status", "hearth/v1/ha/%s/availability" % lamp])
        self.assertEqual(cfg["avty_mode"], "all")
        ha.wait_message("hearth/v1/ha/%s/availability" % lamp, lambda p: p == "online")
        self.assertEqual(json.loads(ha.last("hearth/v1/hub/status"))["state"], "online")
        self.assertEqual(alice.call("haExposed")["devices"][0]["deviceId"], "lamp.1")
        self.assertEqual(bob.call("haExposed")["devices"], [])
        detail = alice.call("getDeviceDetail", {"deviceId": "lamp.1"})["homeAssistant"]
        self.assertEqual((detail["exposed"], detail["by"], detail["entities"]),
                         (True, "alice", ["light"]))
        self.assertTrue(bob.call("getDeviceDetail", {"deviceId": "lamp.1"})
                        ["homeAssistant"]["exposed"])

        # A state report reaches HA's state topic, retained, in HA's JSON.
        state_topic = light["stat_t"]
        hub.admin("testState", {"deviceId": "lamp.1", "state": {"on": True, "brightness": 40}})
        p = ha.wait_message(state_topic, lambda p: p and json.loads(p).get("state") == "ON")
        print("lamp state:", p)
        self.assertEqual(json.loads(p), {"state": "ON", "brightness": 40})

        # HA's command runs as alice through the binding rules, audited as Home Assistant.
        ha.command(light["cmd_t"], {"state": "OFF"})
        wait_for(lambda: "alice:lamp.1:set" in self.controls(), what="the command to arrive")
        entries = hub.admin("auditLog", {"deviceId": "lamp.1"})["result"]["entries"]
        self.assertTrue(any(e["action"] == "control" and e["actor"] == "alice" and
                            e["reason"] == "via Home Assistant" for e in entries), entries)

        # A command the device refuses: logged, and HA gets the true state again.
        hub.admin("testRefuse", {"deviceId": "lamp.1", "refuse": True})
        before = ha.count(state_topic)
        ha.command(light["cmd_t"], {"state": "ON", "brightness": 90})
        ha.wait_message(state_topic, after=before)
        self.assertEqual(json.loads(ha.last(state_topic)), {"state": "ON", "brightness": 40})
        wait_for(lambda: "failed: CONFLICT" in hub.log_text(), what="the refusal in the log")
        d = self.details()
        self.assertEqual(d["commandsRefused"], 1)
        # The plugin's counters: the OFF ran, the ON was refused by the device.
        c = d["counters"]
        self.assertEqual((c["commands"], c["commands_relayed"], c["commands_refused"]), (2, 1, 1), c)
        self.assertEqual(c["configs_published"], d["configsPublished"], c)
        self.assertEqual(c["states_published"], d["statesPublished"], c)
        hub.admin("testRefuse", {"deviceId": "lamp.1", "refuse": False})

        # A new name reported by the device: HA's device follows.
        self.report("lamp.1", "acme-lamp", name="Reading lamp")
        ha.wait(lambda: ha.configs.get(lamp, {}).get("dev", {}).get("name") == "Reading lamp",
                what="the renamed device")

        # Presence: the device's availability topic follows it.
        hub.admin("testOnline", {"deviceId": "lamp.1", "online": False})
        ha.wait_message("hearth/v1/ha/%s/availability" % lamp, lambda p: p == "offline")
        hub.admin("testOnline", {"deviceId": "lamp.1", "online": True})
        ha.wait_message("hearth/v1/ha/%s/availability" % lamp, lambda p: p == "online")

        # Unexpose -> cleared.
        alice.call("haExpose", {"deviceId": "lamp.1", "enabled": False})
        ha.wait_cleared(lamp)
        self.assertFalse(alice.call("getDeviceDetail", {"deviceId": "lamp.1"})
                         ["homeAssistant"]["exposed"])
        n = len(self.controls())
        ha.command(light["cmd_t"], {"state": "ON"})  # an entity HA should no longer have
        alice.call("haExposed")
        time.sleep(0.3)
        self.assertEqual(len(self.controls()), n, "a withdrawn device takes no commands")

        # Unbind by the owner -> cleared.
        alice.call("haExpose", {"deviceId": "lamp.1", "enabled": True})
        ha.wait_config(lamp)
        alice.call("unbindDevice", {"deviceId": "lamp.1"})
        ha.wait_cleared(lamp)
        self.assertEqual(alice.call("haExposed")["devices"], [])

        # Preemptive rebind of a WiFi plug by another user -> cleared; bob may expose it now.
        self.own_wifi(alice, "plug-1", "acme-plug")
        plug = node("plug-1")
        alice.call("haExpose", {"deviceId": "plug-1", "enabled": True})
        cfg = ha.wait_config(plug)
        self.assertEqual(sorted(cfg["cmps"]), ["energy", "power", "switch"])
        ha.command(cfg["cmps"]["switch"]["cmd_t"], "ON")
        wait_for(lambda: "alice:plug-1:set" in self.controls(), what="the switch command")
        self.own_wifi(bob, "plug-1", "acme-plug")
        ha.wait_cleared(plug)
        r = alice.request("haExpose", {"deviceId": "plug-1", "enabled": True})
        self.assertEqual(r["error"]["code"], "NOT_OWNER", r)
        bob.call("haExpose", {"deviceId": "plug-1", "enabled": True})
        ha.wait_config(plug)

        # A reset -> cleared.
        self.own_ble(alice, "th-1", "acme-thermometer")
        th = node("th-1")
        alice.call("haExpose", {"deviceId": "th-1", "enabled": True})
        cfg = ha.wait_config(th)
        print("thermometer discovery config:", json.dumps(cfg, ensure_ascii=False))
        self.assertEqual(cfg["cmps"]["temperature"]["exp_aft"], 600)
        hub.admin("testState", {"deviceId": "th-1", "state": {"temperature": 21.5}})
        hub.admin("testState", {"deviceId": "th-1", "state": {"humidity": 40}})
        ha.wait_message("hearth/v1/ha/%s/state" % th,
                        lambda p: p and json.loads(p) == {"temperature": 21.5, "humidity": 40})
        hub.admin("testReset", {"deviceId": "th-1"})
        ha.wait_cleared(th)

        self.assertEqual(ha.problems, {})

    def test_home_assistant_account_reaches_only_its_own_topics(self):
        hub = self.start_hub()
        hub.add_user("alice")
        alice = hub.terminal("alice", "alice-phone")
        ha = self.home_assistant()
        self.own_ble(alice, "lamp-2", "acme-lamp")
        alice.call("haExpose", {"deviceId": "lamp-2", "enabled": True})
        lamp = node("lamp-2")
        cfg = ha.wait_config(lamp)
        ha.wait_config(HUB_NODE)
        n = len(self.controls())
        forbidden = [
            ("homeassistant/device/hearth_evil/config", json.dumps(cfg)),  # fake a device
            ("homeassistant/device/%s/config" % lamp, ""),                  # remove one
            ("hearth/v1/ha/%s/state" % lamp, '{"state":"ON"}'),             # fake a state
            ("hearth/v1/ha/%s/availability" % lamp, "offline"),
            ("hearth/v1/hub/status", '{"state":"offline"}'),
            ("hearth/v1/u/alice/alice-phone/req/controlDevice",
             json.dumps({"id": "x1", "params": {"deviceId": "lamp-2", "command": "set"}})),
            ("hearth/v1/admin/req/adminUnbindDevice",
             json.dumps({"id": "x2", "params": {"deviceId": "lamp-2"}})),
        ]
        for topic, payload in forbidden:
            ha.command(topic, payload)
        # A marker on a topic HA may use: everything published before it has been handled.
        marker = "marker-" + uuid.uuid4().hex[:6]
        ha.command("homeassistant/status", marker)
        ha.wait_message("homeassistant/status", lambda p: p == marker)
        self.assertNotIn("hearth_evil", ha.configs)
        self.assertIn(lamp, ha.configs)
        self.assertIsNone(ha.last("hearth/v1/ha/%s/state" % lamp))
        self.assertEqual(ha.last("hearth/v1/ha/%s/availability" % lamp), "online")
        self.assertEqual(json.loads(ha.last("hearth/v1/hub/status"))["state"], "online")
        self.assertEqual(len(self.controls()), n)
        self.assertTrue(alice.call("getDeviceDetail", {"deviceId": "lamp-2"})["relAccounts"])
        # Its own command topic does work; a retained command (which would run again at every
        # reconnect) does not.
        ha.command(cfg["cmps"]["light"]["cmd_t"], {"state": "ON"})
        wait_for(lambda: len(self.controls()) == n + 1, what="HA's permitted command")
        ha.client.publish(cfg["cmps"]["light"]["cmd_t"], '{"state":"OFF"}', qos=1,
                          retain=True).wait_for_publish()
        wait_for(lambda: len(self.controls()) == n + 2, what="the command, live once")
        hub.restart()  # the test transport forgets its commands
        alice = hub.terminal("alice", "alice-phone-2")
        self.wait_live()
        wait_for(lambda: "ignored and cleared a retained command" in hub.log_text(),
                 what="the retained command to be refused")
        self.assertEqual(self.controls(), [])
        # And it cannot read the users' trees either, however it subscribes.
        granted = []
        ha.client.on_subscribe = lambda c, u, mid, codes, props=None: granted.extend(codes)
        ha.client.subscribe([("#", 1), ("hearth/v1/u/#", 1), ("hearth/v1/admin/#", 1)])
        wait_for(lambda: len(granted) == 3, what="the SUBACK")
        self.assertTrue(all(c.value >= 0x80 for c in granted), granted)
        alice.call("getBoundDevices")
        alice.call("haExposed")
        self.assertFalse(any(t.startswith("hearth/v1/u/") or t.startswith("hearth/v1/admin/")
                             for t, _, _ in ha.messages))

    def test_restart_sweeps_ghosts_and_birth_resends_everything(self):
        hub = self.start_hub()
        hub.add_user("alice")
        alice = hub.terminal("alice", "alice-phone")
        ha = self.home_assistant()
        ids = ["lamp-a", "plug-b", "lock-c"]
        for d, model in zip(ids, ["acme-lamp", "acme-plug", "acme-lock"]):
            self.own_ble(alice, d, model)
            alice.call("haExpose", {"deviceId": d, "enabled": True})
            ha.wait_config(node(d))
        hub.admin("testState", {"deviceId": "lock-c", "state": {"locked": True}})
        ha.wait_message("hearth/v1/ha/%s/state" % node("lock-c"))

        # The plugin is off while alice unbinds the lock: nobody withdraws it then.
        hub.kill9()
        hub.plugin_config = {"home_assistant": dict(HA_CONFIG, enabled=False)}
        hub.write_config()
        hub.start()
        alice = hub.terminal("alice", "alice-phone2")
        alice.call("unbindDevice", {"deviceId": "lock-c"})
        hub.kill9()
        # The ghost is still retained on the broker.
        self.assertIn(node("lock-c"), ha.configs)

        hub.plugin_config = {"home_assistant": dict(HA_CONFIG)}
        hub.write_config()
        hub.start()
        self.wait_live()
        ha.wait_cleared(node("lock-c"))
        self.assertEqual(sorted(k for k in ha.configs if k.startswith("hearth_")),
                         sorted(node(d) for d in ids[:2]))

        # HA restarts: its birth brings every config again, then the states.
        hub.admin("testState", {"deviceId": "lamp-a", "state": {"on": True}})
        state_topic = "hearth/v1/ha/%s/state" % node("lamp-a")
        ha.wait_message(state_topic)
        mark = len(ha.config_log)
        states_before = ha.count(state_topic)
        t0 = time.monotonic()
        ha.birth()
        want = {node(d) for d in ids[:2]} | {HUB_NODE}
        ha.wait(lambda: want <= {n for _, n, p in ha.config_log[mark:] if p}, timeout=15,
                what="every config after the birth message")
        ha.wait_message(state_topic, after=states_before)
        resent = [t for t, n, p in ha.config_log[mark:] if p]
        self.assertLessEqual(min(resent) - t0, 1.0 + 0.5, "delay within resend_delay_max")
        d = self.details()
        self.assertEqual(d["births"], 1)
        self.assertEqual(d["counters"]["births"], 1, d["counters"])
        self.assertEqual(ha.problems, {})


class HomeAssistantExternalBrokerTest(unittest.TestCase):
    """HA on a broker of its own (broker_host ...): the plugin logs in with the configured account
    and keeps the hub's status there with a Will."""

    def test_external_broker_gets_discovery_and_the_hubs_status(self):
        hub = Hub(plugins=["testtransport_plugin", "home_assistant"])
        hub.__enter__()
        self.addCleanup(hub.close)
        ext = Broker(os.path.join(hub.root, "ha-broker"))
        ext.start()
        self.addCleanup(ext.kill)

        def ctl(*args):
            subprocess.run(["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(ext.port), "-u",
                            "hearthd", "-P", ext.password, "dynsec"] + list(args),
                           check=True, capture_output=True, timeout=20)
        ctl("createRole", "ha-world")
        for acl in ("publishClientSend homeassistant/#", "subscribePattern homeassistant/#",
                    "publishClientSend hearth/v1/ha/#", "subscribePattern hearth/v1/ha/#",
                    "publishClientSend hearth/v1/hub/status",
                    "subscribePattern hearth/v1/hub/status"):
            ctl("addRoleACL", "ha-world", *acl.split(), "allow")
        for user, pw in (("hearth-ext", "ext-" + uuid.uuid4().hex[:12]),
                         ("ha", "ha-" + uuid.uuid4().hex[:12])):
            ctl("createClient", user, "-p", pw)
            ctl("addClientRole", user, "ha-world")
            setattr(self, "pw_" + user.replace("-", "_"), pw)
        pw_file = os.path.join(hub.root, "ext.pass")
        with open(pw_file, "w") as f:
            f.write(self.pw_hearth_ext + "\n")

        hub.plugin_config = {"home_assistant": dict(
            HA_CONFIG, broker_host="127.0.0.1", broker_port=ext.port,
            broker_username="hearth-ext", broker_password_file=pw_file)}
        hub.write_config()
        hub.restart()
        wait_for(lambda: hub.status()["details"].get("home_assistant", {}).get("link") == "live",
                 timeout=20, what="home_assistant live on the external broker")
        ha = FakeHomeAssistant(ext.port, "ha", self.pw_ha)
        self.addCleanup(ha.close)
        ha.connect()
        hub.add_user("alice")
        alice = hub.terminal("alice", "alice-phone")
        hub.admin("testReport", {"deviceId": "plug-x", "model": "acme-plug", "transport": "ble"})
        alice.call("bindDevice", {"deviceId": "plug-x"})
        alice.call("haExpose", {"deviceId": "plug-x", "enabled": True})
        cfg = ha.wait_config(node("plug-x"))
        self.assertEqual(cfg["avty"][0]["t"], "hearth/v1/hub/status")
        ha.wait_message("hearth/v1/hub/status", lambda p: json.loads(p)["state"] == "online")
        ha.command(cfg["cmps"]["switch"]["cmd_t"], "ON")
        wait_for(lambda: "alice:plug-x:set" in
                 hub.admin("testControls")["result"]["controls"], what="the command")
        r = hub.admin("haAccount", {"password": "whatever-long"})
        self.assertEqual(r["error"]["code"], "UNAVAILABLE", r)
        # hearthd dies: the Will on HA's broker makes every device unavailable there.
        hub.kill9()
        ha.wait_message("hearth/v1/hub/status", lambda p: json.loads(p)["state"] == "offline",
                        timeout=60)
        self.assertEqual(ha.problems, {})


@unittest.skipUnless(os.geteuid() == 0, "network namespaces need root")
@unittest.skipUnless(os.path.exists(test_wifi_lan.DEVSIM), "hearth-devsim is not built")
class HomeAssistantLampTest(unittest.TestCase):
    """A simulated WiFi lamp (hearth-devsim over real UDP, see test_wifi_lan.py) driven from HA."""

    @classmethod
    def setUpClass(cls):
        test_wifi_lan.sweep_stale_namespaces()

    def setUp(self):
        self.net = test_wifi_lan.LanNetwork().__enter__()
        self.addCleanup(self.net.close)

    def test_command_from_home_assistant_changes_the_lamp_and_the_state_comes_back(self):
        hub = Hub(plugins=["wifi_lan", "home_assistant"],
                  plugin_config={"wifi_lan": dict(test_wifi_lan.PLUGIN_CONFIG),
                                 "home_assistant": dict(HA_CONFIG)})
        hub.__enter__()
        self.addCleanup(hub.close)
        wait_for(lambda: hub.status()["details"].get("home_assistant", {}).get("link") == "live",
                 timeout=20, what="home_assistant live")
        sim = test_wifi_lan.DevSim(self.net, os.path.join(hub.root, "devsim.log"), "--count", "1",
                                   "--prefix", "lamp-", "--period", "1s")
        self.addCleanup(sim.close)
        hub.add_user("alice")
        alice = hub.terminal("alice", "alice-phone")
        dev = "lamp-0001"
        wait_for(lambda: any(d["deviceId"] == dev for d in
                             hub.admin("devices")["result"]["devices"]),
                 timeout=20, what="the lamp in the inventory")
        token = alice.call("provisionBegin")["token"]
        sim.cmd("provision %s %s" % (dev, token))
        wait_for(lambda: any(d["deviceId"] == dev and d["role"] == "owner"
                             for d in alice.call("getBoundDevices")["devices"]),
                 timeout=15, what="alice to own the lamp")

        password = "ha-" + uuid.uuid4().hex[:16]
        self.assertTrue(hub.admin("haAccount", {"password": password})["ok"])
        ha = FakeHomeAssistant(hub.broker.port, "homeassistant", password)
        self.addCleanup(ha.close)
        ha.connect()
        alice.call("haExpose", {"deviceId": dev, "enabled": True})
        cfg = ha.wait_config(node(dev))
        light = cfg["cmps"]["light"]
        self.assertEqual(cfg["dev"]["mdl"], "hearth-sim-lamp")
        self.assertEqual(cfg["dev"]["sw"], "1.0.0")
        ha.wait_message("hearth/v1/ha/%s/availability" % node(dev), lambda p: p == "online")

        ha.command(light["cmd_t"], {"state": "ON", "brightness": 70})
        e = sim.wait_event(lambda e: e.get("event") == "control" and e.get("cmd") == "set",
                           what="the lamp to get HA's command")
        self.assertEqual(e["params"], {"on": True, "brightness": 70})
        p = ha.wait_message(light["stat_t"],
                            lambda p: p and json.loads(p) == {"state": "ON", "brightness": 70})
        print("\nlamp state from the device:", p)

        # The lamp changes on its own (a wall switch): HA hears it.
        sim.cmd('state %s {"on": false}' % dev)
        ha.wait_message(light["stat_t"], lambda p: p and json.loads(p)["state"] == "OFF")
        # Silenced: its availability goes offline.
        sim.cmd("silence %s" % dev)
        ha.wait_message("hearth/v1/ha/%s/availability" % node(dev), lambda p: p == "offline",
                        timeout=20)
        self.assertEqual(ha.problems, {})


if __name__ == "__main__":
    unittest.main()
