"""A full state disk is an error, not a disaster (docs/reliability.md, "When the disk is full").

hearthd runs with its state directory on a 4 MB tmpfs, with cloud_bridge bridging to a cloud
that is down. The tmpfs is filled to the last byte. Then: every state-changing request is
refused with STORAGE_FULL (and a refused userAdd leaves no broker account behind), reads keep
working, the cloud outbox stops growing and counts what it drops, the log says so once however
many requests are refused, and hub/status shows it. Freeing the space makes everything work
again without a restart; what was acknowledged before is still there after a SIGKILL.

Needs root (mount); run with /usr/bin/python3 -m unittest -v test_disk_full
"""

import json
import os
import subprocess
import unittest

from harness import Hub, free_port, wait_for

SIZE = "4m"


def fill(path):
    """Writes path until the filesystem refuses (ENOSPC); returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError:
                break
        while True:  # the last few bytes
            try:
                if f.write(b"\0") != 1:
                    break
                written += 1
            except OSError:
                break
    return written


@unittest.skipUnless(os.geteuid() == 0, "mounting a size-limited tmpfs needs root")
class DiskFullTest(unittest.TestCase):

    def setUp(self):
        hub = Hub(plugins=["cloud_bridge"])
        self.hub = hub
        self.addCleanup(hub.close)
        os.makedirs(hub.state_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + SIZE + ",mode=0700", "tmpfs",
                        hub.state_dir], check=True, timeout=30)
        self.addCleanup(subprocess.run, ["umount", "-l", hub.state_dir], timeout=30)
        hub.plugin_config = {"cloud_bridge": {
            "host": "127.0.0.1", "port": free_port(), "tls": False,  # nothing listens: down
            "reconnect_min": "200ms", "reconnect_max": "1s",
            "rules": [{"direction": "out", "local": "hearth/v1/hub/#", "remote": "site1/hub/#",
                       "qos": 1},
                      {"direction": "out", "local": "hearth/v1/test/#", "remote": "site1/t/#",
                       "qos": 1}],
            "local_port": hub.broker.port,
            "local_password_file": os.path.join(hub.broker.dir, "broker.pass"),
        }}
        hub.__enter__()
        self.filler = os.path.join(hub.state_dir, "filler")

    def bridge(self):
        return self.hub.status()["details"].get("cloud_bridge", {})

    def publish(self, topic, count):
        for n in range(count):
            subprocess.run(["mosquitto_pub", "-p", str(self.hub.broker.port), "-u", "hearthd",
                            "-P", self.hub.broker.password, "-q", "1", "-t", topic, "-m",
                            json.dumps({"n": n})], check=True, timeout=20)

    def test_full_disk_refuses_changes_keeps_reads_and_recovers_without_restart(self):
        hub = self.hub
        hub.add_user("alice")
        hub.add_user("bob")
        alice = hub.terminal("alice", "alice-phone")
        tokens_before = [alice.call("provisionBegin")["token"] for _ in range(3)]
        self.publish("hearth/v1/test/x", 3)
        wait_for(lambda: self.bridge().get("outbox", 0) >= 3, timeout=20, what="outbox of 3")

        self.assertGreater(fill(self.filler), 0)
        # SQLite may still fit a change in space it already holds; the first that needs new
        # space is refused, and so is everything after it.
        codes = []
        for _ in range(200):
            r = alice.request("provisionBegin")
            codes.append("OK" if r["ok"] else r["error"]["code"])
            if codes[-1] != "OK":
                break
        if os.environ.get("HEARTH_TEST_VERBOSE"):
            print("changes accepted after the fill, before STORAGE_FULL: %d" % (len(codes) - 1))
        self.assertEqual(codes[-1], "STORAGE_FULL", codes)
        self.assertTrue(set(codes) <= {"OK", "STORAGE_FULL"}, codes)

        refused = [
            alice.request("provisionBegin"),
            alice.request("hello", {"appId": "other-app", "deviceModel": "m", "deviceName": "n"}),
            hub.terminal("bob", "bob-phone", hello=False).request(
                "hello", {"appId": "a", "deviceModel": "m", "deviceName": "n"}),
        ]
        for r in refused:
            self.assertFalse(r["ok"], r)
            self.assertEqual(r["error"]["code"], "STORAGE_FULL", r)
        r = hub.admin("userAdd", {"userId": "carol", "password": "carol-pass-1"})
        self.assertEqual(r["error"]["code"], "STORAGE_FULL", r)
        # The broker account was taken back: the refused request changed nothing.
        users = [u["userId"] for u in hub.admin("userList")["result"]["users"]]
        self.assertNotIn("carol", users)

        # Reads keep working.
        self.assertEqual(alice.call("getBoundDevices")["devices"], [])
        self.assertEqual(alice.call("listShares", {"direction": "toMe"})["shares"], [])
        status = hub.status()
        self.assertEqual(status["storage"]["state"], "full", status)
        self.assertIn("is full", status["storage"]["detail"])

        # The outbox stops growing and counts what it drops; hub/status changes (retained,
        # bridged by hearth/v1/hub/#) are held, not counted, not repeated.
        before = self.bridge()
        self.publish("hearth/v1/test/x", 10)
        d = wait_for(lambda: (lambda b: b if b.get("dropped", 0) >= before["dropped"] + 10
                              else None)(self.bridge()), timeout=20, what="10 drops counted")
        if os.environ.get("HEARTH_TEST_VERBOSE"):
            print("outbox before/after 10 messages on a full disk: %d/%d, dropped %d -> %d"
                  % (before["outbox"], d["outbox"], before["dropped"], d["dropped"]))
        self.assertLessEqual(d["outbox"], before["outbox"], d)
        self.assertTrue(d.get("storageFull"), d)

        # Said once, however many requests were refused.
        for _ in range(20):
            alice.request("provisionBegin")
        log = hub.log_text()
        self.assertEqual(log.count("storage full:"), 1, log[-3000:])
        self.assertEqual(log.count("the outbox cannot grow"), 1, log[-3000:])

        # Space again: everything resumes without a restart.
        os.remove(self.filler)
        wait_for(lambda: hub.status()["storage"]["state"] == "ok", timeout=20,
                 what="hub/status storage ok")
        self.assertIn("storage writable again", hub.log_text())
        self.assertTrue(alice.request("provisionBegin")["ok"])
        hub.add_user("carol")
        bob = hub.terminal("bob", "bob-phone2")
        self.assertTrue(bob.open_id)
        self.publish("hearth/v1/test/x", 2)
        wait_for(lambda: self.bridge().get("outbox", 0) >= d["outbox"] + 2, timeout=20,
                 what="the outbox accepting messages again")
        self.assertFalse(self.bridge().get("storageFull", False))

        # Nothing acknowledged was lost, also across a crash.
        hub.restart()
        users = [u["userId"] for u in hub.admin("userList")["result"]["users"]]
        self.assertTrue({"alice", "bob", "carol"} <= set(users), users)
        self.assertGreaterEqual(self.bridge().get("outbox", 0), 5)
        again = hub.terminal("alice", "alice-phone2")
        self.assertTrue(again.open_id)
        self.assertEqual(len(tokens_before), 3)

if __name__ == "__main__":
    unittest.main()
