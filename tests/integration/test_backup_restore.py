"""Backup and restore of a populated hub (docs/operations.md, "Back up and restore").

A hub with users (passwords), a WiFi lamp (hearth-devsim over real UDP, in the namespaces of
test_wifi_lan) bound by provisioning and shared with a guest, a cooperation grant and a command
queued for an offline terminal is backed up with `hearthctl backup` while it runs. Then the
hub is stopped, its state directory and the broker's Dynamic Security file deleted, the backup
restored with `hearthctl restore`, a fresh broker started on the restored accounts and the hub
started again: every user logs in with the same password, the lamp obeys both its owner and its
guest (the device key came back), the grant holds and the queued command arrives.

Also: a damaged or newer backup is refused naming what is wrong, a restore refuses while hearthd
runs, scheduled backups are written atomically and pruned, and a corrupt database at start
names the newest good backup and the command that restores it (log and hub/status).

Needs root (network namespaces); run with /usr/bin/python3 -m unittest -v test_backup_restore
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import zipfile

from harness import HEARTHCTL, Hub, wait_for
import test_wifi_lan as wl


def endpoint(t):
    return {"appId": t.app_id, "userId": t.user, "clientIdentify": t.client_id}


@unittest.skipUnless(os.geteuid() == 0, "network namespaces need root")
@unittest.skipUnless(os.path.exists(wl.DEVSIM), "hearth-devsim is not built")
class BackupRestoreTest(unittest.TestCase):

    # The device side of the LAN, borrowed from the wifi_lan test.
    start_sim = wl.WifiLanTest.start_sim
    details = wl.WifiLanTest.details
    devices = wl.WifiLanTest.devices
    wait_device = wl.WifiLanTest.wait_device
    bound = wl.WifiLanTest.bound
    provision = wl.WifiLanTest.provision
    provisioned = wl.WifiLanTest.provisioned

    @classmethod
    def setUpClass(cls):
        wl.sweep_stale_namespaces()

    def setUp(self):
        self.net = wl.LanNetwork().__enter__()
        self.addCleanup(self.net.close)
        self.sims = []

    def start_hub(self, extra=None):
        hub = Hub(plugins=["wifi_lan", "coop_relay"],
                  plugin_config={"wifi_lan": dict(wl.PLUGIN_CONFIG)},
                  config=extra or {})
        hub.__enter__()
        self.addCleanup(hub.close)
        self.hub = hub
        return hub

    def configure(self, hub, backup=None):
        """Rewrites the config with broker.dynsec_file (and hub.backup) and returns its text."""
        dynsec = os.path.join(hub.broker.dir, "dynamic-security.json")
        with open(hub.config_path) as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            out.append(line)
            if line.startswith("  reconnect_max:"):
                out.append("  dynsec_file: %s" % json.dumps(dynsec))
            if line.startswith("  log_level:") and backup is not None:
                out.append("  backup: %s" % json.dumps(backup))
        with open(hub.config_path, "w") as f:
            f.write("\n".join(out) + "\n")
        return dynsec

    def terminal(self, user, client_id, app_id):
        t = self.hub.terminal(user, client_id, app_id=app_id)
        t.app_id = app_id
        return t

    def test_a_populated_hub_comes_back_whole_on_a_fresh_broker(self):
        hub = self.start_hub()
        dynsec = self.configure(hub, backup={"every": 0})
        hub.terminate()
        hub.start()
        wait_for(lambda: self.details().get("interfaces") == [self.net.hub_if], timeout=15,
                 what="wifi_lan to listen")
        passwords = {u: hub.add_user(u) for u in ("alice", "bob", "carol")}
        alice = self.terminal("alice", "alice-phone", "appA")
        bob = self.terminal("bob", "bob-phone", "appB")
        carol_tv = self.terminal("carol", "carol-tv", "appC")
        sim = self.start_sim("--count", "1", "--prefix", "lamp-", "--period", "1s")
        dev = "lamp-0001"
        self.wait_device(dev, lambda d: d["online"])
        self.provisioned(sim, alice, dev)
        share = alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "bob"})
        bob.wait_event("shareInvited")
        bob.call("acceptShare", {"sharingId": share["sharingId"]})
        self.assertEqual(self.bound(bob)[dev]["role"], "guest")
        self.assertTrue(bob.call("controlDevice", {"deviceId": dev, "command": "get"}) is not None)
        # alice may command carol's TV (a grant), and sends one while the TV is off.
        req = alice.call("requestAccessTo", {"to": endpoint(carol_tv), "permissions": ["play"],
                                             "allPermissions": False})
        carol_tv.wait_event("accessRequest",
                            predicate=lambda e: e["data"]["commandId"] == req["commandId"])
        carol_tv.call("agreeAccessRequest", {"commandId": req["commandId"],
                                             "to": endpoint(alice)})
        alice.wait_event("accessResponse",
                         predicate=lambda e: e["data"]["commandId"] == req["commandId"])
        carol_tv.disconnect()
        wait_for(lambda: not alice.call("getDeviceInfo", {"openId": carol_tv.open_id})["online"],
                 what="carol's TV offline")
        sent = alice.call("sendCommand", {"commandType": "play", "to": endpoint(carol_tv),
                                          "commandParams": {"url": "news"}})
        queued_id = sent["commandId"]

        # The backup, while the hub runs.
        archive = os.path.join(hub.root, "household.zip")
        r = hub.ctl("backup", archive)
        self.assertIn("broker accounts included", r.stdout)
        names = zipfile.ZipFile(archive).namelist()
        self.assertIn("manifest.json", names)
        self.assertIn("db/hearth.db", names)
        self.assertIn("broker/dynamic-security.json", names)
        r = hub.ctl("verify", archive)
        self.assertIn(": ok", r.stdout)

        # The SD card dies: state and broker accounts are gone.
        for t in hub.terminals:
            t.client.loop_stop()
            t.client.disconnect()
        hub.terminals.clear()
        self.assertEqual(hub.terminate(), 0)
        hub.broker.stop()
        shutil.rmtree(hub.state_dir)
        os.remove(dynsec)

        r = hub.ctl("restore", archive)
        self.assertIn("restored the broker accounts", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(hub.state_dir, "hearth.db")))
        hub.broker.start()  # a fresh broker process, on the restored accounts
        hub.start()
        wait_for(lambda: self.details().get("interfaces") == [self.net.hub_if], timeout=15,
                 what="wifi_lan to listen again")

        # Every user logs in with the same password.
        hub.passwords = dict(passwords)
        alice = self.terminal("alice", "alice-phone", "appA")
        bob = self.terminal("bob", "bob-phone", "appB")
        self.assertEqual(self.bound(alice)[dev]["role"], "owner")
        self.assertEqual(self.bound(bob)[dev]["role"], "guest")
        # The lamp obeys both: the hub signs with the restored key, the lamp accepts it.
        self.wait_device(dev, lambda d: d["online"])
        r = alice.call("controlDevice", {"deviceId": dev, "command": "set",
                                         "params": {"on": True, "level": 70}})
        self.assertEqual(r["state"], {"on": True, "level": 70})
        r = bob.call("controlDevice", {"deviceId": dev, "command": "get"})
        self.assertEqual(r["state"]["level"], 70)
        # The grant holds and the queued command arrives when the TV comes back.
        carol_tv = self.terminal("carol", "carol-tv", "appC")
        cmd = carol_tv.wait_event("command", timeout=15)["data"]
        self.assertEqual(cmd["commandId"], queued_id)
        self.assertEqual(cmd["commandParams"], {"url": "news"})
        again = alice.request("sendCommand", {"commandType": "play", "to": endpoint(carol_tv),
                                              "commandParams": {}})
        self.assertTrue(again["ok"], again)

    def test_bad_backups_are_refused_naming_what_is_wrong(self):
        hub = self.start_hub()
        self.configure(hub, backup={"every": 0})
        hub.terminate()
        hub.start()
        hub.add_user("dora")
        archive = os.path.join(hub.root, "b.zip")
        hub.ctl("backup", archive)

        # While hearthd runs, a restore refuses (after --timeout seconds of waiting).
        r = hub.ctl("restore", archive, timeout=1, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("hearthd is running", r.stderr)
        self.assertIn("systemctl stop hearth", r.stderr)

        # A damaged entry: named, with both checksums.
        damaged = os.path.join(hub.root, "damaged.zip")
        with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "db/hearth.db":
                    data = data[:-1] + bytes([data[-1] ^ 1])
                dst.writestr(item, data)
        r = hub.ctl("verify", damaged, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("db/hearth.db does not match its checksum", r.stderr)

        # From a newer hearthd: named, with both versions.
        newer = os.path.join(hub.root, "newer.zip")
        with zipfile.ZipFile(archive) as src, zipfile.ZipFile(newer, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "manifest.json":
                    m = json.loads(data)
                    m["hearthVersion"] = "99.0.0"
                    data = json.dumps(m).encode()
                dst.writestr(item, data)
        hub.terminate()
        before = sorted(os.listdir(hub.state_dir))
        for bad, text in ((newer, "made by hearthd 99.0.0"), (damaged, "does not match")):
            r = hub.ctl("restore", bad, check=False)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("not restoring", r.stderr)
            self.assertIn(text, r.stderr)
        self.assertEqual(sorted(os.listdir(hub.state_dir)), before)  # nothing touched

    def test_scheduled_backups_and_a_corrupt_database_names_the_way_back(self):
        hub = self.start_hub()
        self.configure(hub, backup={"every": "2s", "keep": 2})
        hub.terminate()
        hub.start()
        hub.add_user("erin")
        backups = os.path.join(hub.state_dir, "backups")
        # The first is due a minute after start at the latest (2s here), then every 2s; only
        # the newest two stay, and no temporary file is ever visible under a backup's name.
        wait_for(lambda: len([f for f in os.listdir(backups) if f.endswith(".zip")]) >= 2
                 if os.path.isdir(backups) else False, timeout=30, what="two scheduled backups")
        time.sleep(5)
        zips = sorted(f for f in os.listdir(backups) if f.startswith("hearth-"))
        self.assertLessEqual(len(zips), 2, zips)
        self.assertTrue(all(f.endswith(".zip") for f in zips))
        for f in zips:
            hub.ctl("verify", os.path.join(backups, f))
        self.assertIn("backup written", hub.log_text())

        # The database is damaged while the hub is down.
        hub.terminate()
        newest = sorted(os.listdir(backups))[-1]
        db = os.path.join(hub.state_dir, "hearth.db")
        with open(db, "r+b") as f:
            f.seek(0)
            f.write(b"this is not an sqlite database at all" * 4)
        hub.start(wait=False)
        rc = hub.proc.wait(timeout=30)
        self.assertNotEqual(rc, 0)
        log = hub.log_text()
        expected = "hearthctl --config %s restore %s" % (hub.config_path,
                                                         os.path.join(backups, newest))
        self.assertIn("restore it with: " + expected, log)
        status = subprocess.run(
            ["mosquitto_sub", "-p", str(hub.broker.port), "-u", "hearthd", "-P",
             hub.broker.password, "-t", "hearth/v1/hub/status", "-C", "1", "-W", "5"],
            capture_output=True, text=True, timeout=20)
        s = json.loads(status.stdout)
        self.assertEqual(s["state"], "failed")
        self.assertEqual(s["restore"]["command"], expected)

        # Following the advice brings the hub back, with its user.
        cmd = expected.split()
        cmd[0] = HEARTHCTL
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(any(n.startswith("pre-restore-") for n in os.listdir(hub.state_dir)))
        hub.start()
        users = [u["userId"] for u in hub.admin("userList")["result"]["users"]]
        self.assertIn("erin", users)


if __name__ == "__main__":
    unittest.main()
