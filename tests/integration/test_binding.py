"""The binding engine through the real broker and hearthd, with a test transport plugin that
reports devices the way wifi_lan and ble do (SPEC §3, docs/binding-policy.md)."""

import os
import sqlite3
import subprocess
import threading
import time
import unittest
import uuid

from harness import Hub, wait_for

BINDING = {
    "provision_ttl": "3s",
    "share": {"qr_ttl": "3s", "invite_ttl": "3s", "max_members": 3, "max_failed_scans": 3,
              "failed_scan_window": "1m"},
    "products": [{"model": "free-*", "mode": "share_free"},
                 {"model": "oos-*", "mode": "owner_on_share"}],
}


def new_id(prefix="dev"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hub = Hub(plugins=["testtransport_plugin"], config={"binding": BINDING})
        cls.hub.__enter__()
        for u in ("alice", "bob", "carol", "dave", "mallory"):
            cls.hub.add_user(u)
        cls.alice = cls.hub.terminal("alice", "a-phone")
        cls.alice2 = cls.hub.terminal("alice", "a-tv")
        cls.bob = cls.hub.terminal("bob", "b-phone")
        cls.carol = cls.hub.terminal("carol", "c-phone")
        cls.dave = cls.hub.terminal("dave", "d-phone")  # takes the failed scans of test_error_codes
        cls.mallory = cls.hub.terminal("mallory", "m-phone")

    @classmethod
    def tearDownClass(cls):
        cls.hub.__exit__(None, None, None)

    def admin_ok(self, method, params):
        r = self.hub.admin(method, params)
        self.assertTrue(r["ok"], r)
        return r["result"]

    def device(self, model="lock-1", transport="ble", **kw):
        dev = new_id()
        self.admin_ok("testReport", dict(deviceId=dev, model=model, transport=transport, **kw))
        return dev

    def err(self, term, method, params):
        r = term.request(method, params)
        self.assertFalse(r["ok"], r)
        return r["error"]["code"]

    def owned_by_alice(self, **kw):
        dev = self.device(**kw)
        self.assertEqual(self.alice.call("bindDevice", {"deviceId": dev})["role"], "owner")
        return dev

    # ---- every error code of §3 from a real request --------------------------------------
    def test_error_codes(self):
        dev = self.owned_by_alice()
        self.assertEqual(self.err(self.bob, "bindDevice", {"deviceId": "no-such"}), "NOT_FOUND")
        self.assertEqual(self.err(self.bob, "bindDevice", {"deviceId": "a/b"}), "INVALID_REQUEST")
        self.assertEqual(self.err(self.bob, "bindDevice", {"deviceId": dev}), "SHARE_REQUIRED")
        self.assertEqual(self.err(self.bob, "shareDevice", {"deviceId": dev, "way": "qr"}),
                         "NOT_OWNER")
        self.assertEqual(self.err(self.bob, "getDeviceDetail", {"deviceId": dev}), "FORBIDDEN")
        self.assertEqual(self.err(self.bob, "controlDevice", {"deviceId": dev, "command": "on"}),
                         "FORBIDDEN")
        absent = self.device(present=False)
        self.assertEqual(self.err(self.bob, "bindDevice", {"deviceId": absent}), "NOT_BINDABLE")
        closed = self.device(bindWindowSec=-1)
        self.assertEqual(self.err(self.bob, "bindDevice", {"deviceId": closed}), "NOT_BINDABLE")

        share = self.alice.call("shareDevice", {"deviceId": dev, "way": "qr"})
        self.assertEqual(len(share["qrKey"]), 32)  # 128 bits, hex
        self.assertEqual(self.err(self.alice, "scanShare", {"qrKey": share["qrKey"]}),
                         "ALREADY_BOUND")
        # ALREADY_BOUND leaves the key usable.
        self.assertEqual(self.bob.call("scanShare", {"qrKey": share["qrKey"]})["deviceId"], dev)
        self.assertEqual(self.err(self.dave, "scanShare", {"qrKey": share["qrKey"]}), "TOKEN_USED")
        self.assertEqual(self.err(self.dave, "scanShare", {"qrKey": "0" * 32}), "TOKEN_INVALID")
        self.assertEqual(self.err(self.bob, "shareDevice", {"deviceId": dev, "way": "qr"}),
                         "NOT_OWNER")  # guests never share
        self.assertEqual(self.err(self.alice, "shareDevice",
                                  {"deviceId": dev, "way": "account", "guest": "bob"}), "CONFLICT")
        self.assertEqual(self.err(self.alice, "shareDevice",
                                  {"deviceId": dev, "way": "account", "guest": "nobody"}),
                         "NOT_FOUND")
        invite = self.alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "carol"})
        self.assertEqual(self.err(self.alice, "shareDevice",
                                  {"deviceId": dev, "way": "account", "guest": "carol"}), "CONFLICT")
        self.assertEqual(self.err(self.bob, "acceptShare", {"sharingId": invite["sharingId"]}),
                         "FORBIDDEN")
        self.assertEqual(self.carol.call("acceptShare", {"sharingId": invite["sharingId"]})["role"],
                         "guest")
        # owner + bob + carol = max_members 3
        self.assertEqual(self.err(self.alice, "shareDevice", {"deviceId": dev, "way": "qr"}),
                         "LIMIT_REACHED")

        expiring = self.alice.call("shareDevice", {"deviceId": self.owned_by_alice(), "way": "qr"})
        time.sleep(3.5)
        self.assertEqual(self.err(self.dave, "scanShare", {"qrKey": expiring["qrKey"]}),
                         "TOKEN_EXPIRED")

        for _ in range(3):
            self.assertEqual(self.err(self.mallory, "scanShare", {"qrKey": uuid.uuid4().hex}),
                             "TOKEN_INVALID")
        self.assertEqual(self.err(self.mallory, "scanShare", {"qrKey": uuid.uuid4().hex}),
                         "RATE_LIMITED")

        self.assertEqual(self.alice.call("controlDevice", {"deviceId": dev, "command": "open",
                                                           "params": {"s": 1}})["params"], {"s": 1})
        self.assertEqual(self.err(self.alice, "controlDevice", {"deviceId": dev, "command": "hang"}),
                         "TIMEOUT")
        self.admin_ok("testOnline", {"deviceId": dev, "online": False})
        self.assertEqual(self.err(self.bob, "controlDevice", {"deviceId": dev, "command": "open"}),
                         "OFFLINE")
        self.assertEqual(self.err(self.bob, "removeMember", {"deviceId": dev, "userId": "carol"}),
                         "NOT_OWNER")

    def test_provision_token_errors(self):
        dev = self.device(model="plug-1", transport="wifi")
        tok = self.alice.call("provisionBegin", {})["token"]
        self.assertEqual(self.admin_ok("testProvision", {"deviceId": dev, "token": tok})["userId"],
                         "alice")
        other = self.device(model="plug-1", transport="wifi")
        r = self.hub.admin("testProvision", {"deviceId": other, "token": tok})
        self.assertEqual(r["error"]["code"], "TOKEN_USED")
        evt = self.alice.wait_event("provisionFailed", predicate=lambda e: e["data"]["deviceId"] == other)
        self.assertEqual(evt["data"]["reason"], "TOKEN_USED")
        late = self.alice.call("provisionBegin", {})["token"]
        time.sleep(3.5)
        r = self.hub.admin("testProvision", {"deviceId": other, "token": late})
        self.assertEqual(r["error"]["code"], "TOKEN_EXPIRED")
        r = self.hub.admin("testProvision", {"deviceId": other, "token": "f" * 32})
        self.assertEqual(r["error"]["code"], "TOKEN_INVALID")
        self.assertEqual(self.err(self.bob, "bindDevice", {"deviceId": other}), "NOT_BINDABLE")
        inventory = {d["deviceId"]: d for d in self.hub.admin("devices")["result"]["devices"]}
        self.assertEqual(inventory[dev]["owner"], "alice")
        self.assertEqual(inventory[other]["bindings"], 0)
        listing = self.hub.ctl("devices").stdout
        self.assertRegex(listing, dev + r" +wifi +plug-1 +online +preemptive +owner: alice")

    # ---- modes -------------------------------------------------------------------------------
    def test_preemptive_provision_moves_everything_and_tells_the_losers(self):
        dev = self.device(model="plug-1", transport="wifi")
        self.admin_ok("testProvision", {"deviceId": dev,
                                        "token": self.alice.call("provisionBegin", {})["token"]})
        invite = self.alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "carol"})
        self.carol.call("acceptShare", {"sharingId": invite["sharingId"]})
        self.alice.call("shareDevice", {"deviceId": dev, "way": "qr"})
        self.carol.drain_events()
        self.admin_ok("testProvision", {"deviceId": dev,
                                        "token": self.bob.call("provisionBegin", {})["token"]})
        for term in (self.alice, self.alice2, self.carol):
            e = term.wait_event("bindingChanged", predicate=lambda e: e["data"].get("deviceId") == dev
                                and e["data"].get("reason") == "preempted")
            self.assertEqual(e["data"]["reason"], "preempted")
        detail = self.bob.call("getDeviceDetail", {"deviceId": dev})
        self.assertEqual(detail["bindMode"], "preemptive")
        self.assertEqual([(m["userId"], m["role"]) for m in detail["relAccounts"]], [("bob", "owner")])
        self.assertEqual(self.bob.call("listShares", {"direction": "fromMe"})["shares"] and
                         [s for s in self.bob.call("listShares", {"direction": "fromMe"})["shares"]
                          if s["deviceId"] == dev], [])
        self.assertEqual(self.err(self.alice, "controlDevice", {"deviceId": dev, "command": "on"}),
                         "FORBIDDEN")

    def test_share_free_second_binder_is_normal(self):
        dev = self.device(model="free-lamp")
        self.assertEqual(self.alice.call("bindDevice", {"deviceId": dev})["role"], "owner")
        self.assertEqual(self.bob.call("bindDevice", {"deviceId": dev})["role"], "normal")
        self.assertEqual(self.bob.call("bindDevice", {"deviceId": dev})["role"], "normal")  # idempotent
        self.assertEqual(self.err(self.bob, "shareDevice", {"deviceId": dev, "way": "qr"}), "NOT_OWNER")

    def test_owner_on_share_special_becomes_owner_on_first_share(self):
        dev = self.device(model="oos-lock")
        self.assertEqual(self.alice.call("bindDevice", {"deviceId": dev})["role"], "special")
        self.assertEqual(self.bob.call("bindDevice", {"deviceId": dev})["role"], "normal")
        self.alice.call("shareDevice", {"deviceId": dev, "way": "qr"})
        self.assertEqual(self.err(self.carol, "bindDevice", {"deviceId": dev}), "SHARE_REQUIRED")
        roles = {m["userId"]: m["role"] for m in
                 self.alice.call("getDeviceDetail", {"deviceId": dev})["relAccounts"]}
        self.assertEqual(roles, {"alice": "owner", "bob": "normal"})
        # bob sees the owner and himself only... and here that is everyone.
        self.assertEqual(len(self.bob.call("getDeviceDetail", {"deviceId": dev})["relAccounts"]), 2)

    def test_owner_unbind_cascades_and_member_removal(self):
        dev = self.owned_by_alice()
        self.bob.call("scanShare", {"qrKey": self.alice.call("shareDevice", {"deviceId": dev, "way": "qr"})["qrKey"]})
        self.carol.call("scanShare", {"qrKey": self.alice.call("shareDevice", {"deviceId": dev, "way": "qr"})["qrKey"]})
        self.alice.call("removeMember", {"deviceId": dev, "userId": "carol"})
        e = self.carol.wait_event("bindingChanged", predicate=lambda e: e["data"].get("deviceId") == dev
                                  and e["data"].get("reason") == "removed")
        self.assertEqual(e["data"]["reason"], "removed")
        self.alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "carol"})
        self.alice.call("unbindDevice", {"deviceId": dev})
        self.assertEqual(self.err(self.bob, "getDeviceDetail", {"deviceId": dev}), "FORBIDDEN")
        pending = [s for s in self.carol.call("listShares", {"direction": "toMe"})["shares"]
                   if s["deviceId"] == dev and s["state"] == "pending"]
        self.assertEqual(pending, [])
        # Anyone may bind it anew now.
        self.assertEqual(self.bob.call("bindDevice", {"deviceId": dev})["role"], "owner")

    def test_device_reset_and_admin_unbind_clear_everything(self):
        dev = self.owned_by_alice()
        self.admin_ok("testReset", {"deviceId": dev})
        self.alice.wait_event("bindingChanged", predicate=lambda e: e["data"].get("deviceId") == dev
                              and e["data"].get("reason") == "reset")
        self.assertEqual(self.bob.call("bindDevice", {"deviceId": dev})["role"], "owner")
        self.admin_ok("adminUnbindDevice", {"deviceId": dev})
        self.assertEqual(self.bob.call("getBoundDevices", {})["devices"] and
                         [d for d in self.bob.call("getBoundDevices", {})["devices"]
                          if d["deviceId"] == dev], [])
        log = self.admin_ok("auditLog", {"deviceId": dev})["entries"]
        self.assertEqual([e["action"] for e in log][:2], ["bind", "unbind"])
        self.assertIn("admin", log[-1]["actor"])

    # ---- events reach exactly the affected users ---------------------------------------------
    def test_events_reach_the_right_terminals_only(self):
        dev = self.owned_by_alice()
        for t in (self.alice, self.alice2, self.bob, self.carol):
            t.drain_events()
        invite = self.alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "bob"})
        e = self.bob.wait_event("shareInvited")
        self.assertEqual(e["data"]["sharingId"], invite["sharingId"])
        self.bob.call("acceptShare", {"sharingId": invite["sharingId"]})
        for t in (self.alice, self.alice2):
            t.wait_event("shareAccepted", predicate=lambda e: e["data"]["sharingId"] == invite["sharingId"])
        time.sleep(0.5)
        carol_saw = [e for e in self.carol.drain_events() if e["data"].get("deviceId") == dev]
        self.assertEqual(carol_saw, [])
        rejected = self.alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "carol"})
        self.carol.call("rejectShare", {"sharingId": rejected["sharingId"]})
        self.alice.wait_event("shareRejected", predicate=lambda e: e["data"]["sharingId"] == rejected["sharingId"])

    def test_concurrent_binds_give_exactly_one_owner(self):
        for _ in range(10):
            dev = self.device()
            ra = self.alice.send("bindDevice", {"deviceId": dev})
            rb = self.bob.send("bindDevice", {"deviceId": dev})
            a, b = self.alice.wait_response(ra), self.bob.wait_response(rb)
            oks = [r for r in (a, b) if r["ok"]]
            self.assertEqual(len(oks), 1, (a, b))
            self.assertEqual(oks[0]["result"]["role"], "owner")
            loser = b if a["ok"] else a
            self.assertEqual(loser["error"]["code"], "SHARE_REQUIRED")


class Durability(unittest.TestCase):
    def test_sigkill_after_ok_keeps_the_change_and_db_is_intact(self):
        with Hub(plugins=["testtransport_plugin"], config={"binding": BINDING}) as hub:
            hub.add_user("alice")
            alice = hub.terminal("alice", "phone")
            devices = []
            for _ in range(5):
                dev = new_id()
                hub.admin("testReport", {"deviceId": dev})
                r = alice.request("bindDevice", {"deviceId": dev})
                hub.kill9()  # right after the ok
                self.assertTrue(r["ok"])
                devices.append(dev)
                hub.start()
                alice = hub.terminal("alice", "phone-%s" % dev)
            bound = {d["deviceId"] for d in alice.call("getBoundDevices", {})["devices"]}
            self.assertEqual(bound, set(devices))
            hub.kill9()
            db = sqlite3.connect(os.path.join(hub.state_dir, "hearth.db"))
            try:
                self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            finally:
                db.close()

    def test_shares_that_expired_while_down_are_expired_at_start(self):
        with Hub(plugins=["testtransport_plugin"], config={"binding": BINDING}) as hub:
            hub.add_user("alice")
            hub.add_user("bob")
            alice = hub.terminal("alice", "phone")
            dev = new_id()
            hub.admin("testReport", {"deviceId": dev})
            alice.call("bindDevice", {"deviceId": dev})
            invite = alice.call("shareDevice", {"deviceId": dev, "way": "account", "guest": "bob"})
            hub.terminate()
            time.sleep(3.5)
            hub.start()
            alice = hub.terminal("alice", "phone2")
            shares = {s["sharingId"]: s for s in alice.call("listShares", {"direction": "fromMe"})["shares"]}
            self.assertEqual(shares[invite["sharingId"]]["state"], "expired")
            bob = hub.terminal("bob", "phone")
            r = bob.request("acceptShare", {"sharingId": invite["sharingId"]})
            self.assertEqual(r["error"]["code"], "TOKEN_EXPIRED")


if __name__ == "__main__":
    unittest.main()
