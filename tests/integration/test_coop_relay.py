"""coop_relay against the real hearthd and mosquitto, terminals as real MQTT 5 clients.

Covers issue 4's list: the seed's full flow, grants (none / removed / same user), store and
forward (100 in order, command_ttl expiry, SIGKILL while queued), presence in device lists,
and malformed or forged requests; the delivery window: a backlog larger than
`delivery_window` arrives completely and in order while the target replies, with never more
than the window outstanding; and delivery confirmed by the target (SPEC §4a): commands offered
into a session that ended with a plain DISCONNECT are offered again, same ids and order, when
the terminal is next seen, also across a hub SIGKILL, and never again once acknowledged. Run with /usr/bin/python3 -m unittest test_coop_relay.
"""

import itertools
import json
import subprocess
import time
import unittest

from harness import HEARTHD, Hub, wait_for

_names = itertools.count(1)


def endpoint(t):
    return {"appId": t.app_id, "userId": t.user, "clientIdentify": t.client_id}


class CoopCase(unittest.TestCase):
    """One hub per class; every test makes its own users so tests do not see each other."""

    plugin_config = {}

    @classmethod
    def setUpClass(cls):
        cls.hub = Hub(plugins=["coop_relay"], plugin_config={"coop_relay": cls.plugin_config})
        cls.hub.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.hub.__exit__(None, None, None)

    def user(self, prefix):
        name = "%s%d" % (prefix, next(_names))
        self.hub.add_user(name)
        return name

    def terminal(self, user, client, app_id, client_id=None):
        # MQTT client ids are broker-wide: a second "phone" would take over the first one's
        # session (and paho would reconnect and take it back), so each test's ids are unique.
        client_id = client_id or "%s-%d" % (client, next(_names))
        t = self.hub.terminal(user, client_id, app_id=app_id, model="M-" + client,
                              name="Name " + client)
        t.app_id = app_id
        return t

    def pair(self):
        """alice's phone and bob's tablet, two users."""
        alice, bob = self.user("alice"), self.user("bob")
        return self.terminal(alice, "phone", "appA"), self.terminal(bob, "tablet", "appB")

    def error_code(self, t, method, params):
        r = t.request(method, params)
        self.assertFalse(r["ok"], "%s %s unexpectedly succeeded: %s" % (method, params, r))
        return r["error"]["code"]

    def grant(self, a, b, permissions=None, all_permissions=False):
        """a asks b for access, b agrees; returns the access request's commandId."""
        res = a.call("requestAccessTo", {"to": endpoint(b), "permissions": permissions or [],
                                         "allPermissions": all_permissions})
        cid = res["commandId"]
        b.wait_event("accessRequest", predicate=lambda e: e["data"]["commandId"] == cid)
        b.call("agreeAccessRequest", {"commandId": cid, "to": endpoint(a)})
        a.wait_event("accessResponse", predicate=lambda e: e["data"]["commandId"] == cid)
        return cid

    def send(self, a, b, command_type="light", params=None):
        return a.request("sendCommand", {"commandType": command_type, "to": endpoint(b),
                                         "commandParams": params or {}})

    def go_offline(self, observer, t):
        """Disconnects t cleanly and waits until the hub says so (seen through getDeviceInfo)."""
        t.disconnect()
        wait_for(lambda: not observer.call("getDeviceInfo", {"openId": t.open_id})["online"],
                 timeout=5, what="%s offline" % t.client_id)

    def come_back(self, t):
        t.drain_events()
        t.connect()

    def command_offers(self, t):
        """Every `command` event t got, repeats included."""
        return [e["data"] for e in t.all_events if e and e.get("event") == "command"]

    def commands_received(self, t):
        """The commands t's app sees: each commandId once, in first-arrival order. The hub offers
        an unconfirmed command again whenever the terminal is next seen (SPEC §4a); clients drop
        the repeats."""
        seen, out = set(), []
        for c in self.command_offers(t):
            if c["commandId"] not in seen:
                seen.add(c["commandId"])
                out.append(c)
        return out

    def offered_states(self, a):
        return {e["data"]["commandId"] for e in a.all_events
                if e and e.get("event") == "commandState" and e["data"]["state"] == "offered"}

    def assert_receives_exactly(self, b, count, what):
        """b gets `count` commands in all, and no more arrive."""
        wait_for(lambda: len(self.commands_received(b)) >= count, timeout=10,
                 what="%d commands (%s)" % (count, what))
        time.sleep(0.3)  # one too many would arrive now
        self.assertEqual(len(self.commands_received(b)), count, what)

    def deliver_backlog_while_replying(self, senders, b, ids, window):
        """b comes back to the queued `ids` (sent by `senders`) and replies to each command, in
        the order received, once it has it. The hub must hand over exactly `window` at a time:
        after n replies b has received min(n + window, len(ids)) commands, never more. Returns
        what b received."""
        self.come_back(b)
        self.assert_receives_exactly(b, min(window, len(ids)), "the first window, no reply yet")
        replied = 0
        while replied < len(ids):
            got = self.commands_received(b)
            self.assertLessEqual(len(got) - replied, window, "more than the window outstanding")
            cmd = got[replied]
            b.call("replyCommand", {"commandId": cmd["commandId"],
                                    "commandParams": {"ack": cmd["commandParams"]},
                                    "to": cmd["from"]})
            replied += 1
            expected = min(replied + window, len(ids))
            # Each reply lets exactly one more command out (until the backlog is gone).
            wait_for(lambda: len(self.commands_received(b)) >= expected, timeout=10,
                     what="command %d after %d replies" % (expected, replied))
            self.assertLessEqual(len(self.commands_received(b)) - replied, window,
                                 "more than the window outstanding after %d replies" % replied)
        time.sleep(0.5)  # anything extra (a duplicate) would arrive now
        got = self.commands_received(b)
        self.assertEqual([c["commandId"] for c in got], ids)
        # Every sender sees each of its commands go from queued to offered, then its response.
        for a in senders:
            mine = {c["commandId"] for c in got if c["from"]["clientIdentify"] == a.client_id}
            self.assertTrue(mine)
            wait_for(lambda: self.offered_states(a) >= mine, timeout=10,
                     what="%d offered states at %s" % (len(mine), a.client_id))
            wait_for(lambda: {e["data"]["commandId"] for e in a.all_events
                              if e and e.get("event") == "commandResponse"} >= mine,
                     timeout=10, what="%d commandResponses at %s" % (len(mine), a.client_id))
        return got


class SeedFlowTest(CoopCase):
    def test_full_seed_flow(self):
        a, b = self.pair()
        # requestAccessTo -> receiveAccessRequest on B.
        info = a.call("getDeviceInfo", {"openId": b.open_id})
        self.assertEqual((info["userId"], info["clientIdentify"], info["appId"]),
                         (b.user, b.client_id, "appB"))
        req = a.call("requestAccessTo", {"to": endpoint(b), "permissions": ["light"],
                                         "allPermissions": False})
        ev = b.wait_event("accessRequest")["data"]
        self.assertEqual(ev["commandId"], req["commandId"])
        self.assertEqual(ev["from"], endpoint(a))
        self.assertEqual(ev["commandParams"], {"allPermissions": False, "permissions": ["light"]})

        # agreeAccessRequest -> onResponse code 0 on A; both lists changed -> sync.
        b.call("agreeAccessRequest", {"commandId": ev["commandId"], "to": ev["from"]})
        resp = a.wait_event("accessResponse")["data"]
        self.assertEqual(resp["code"], 0)
        self.assertEqual(resp["commandId"], req["commandId"])
        self.assertEqual(resp["from"], endpoint(b))
        a.wait_event("sync", predicate=lambda e: e["data"]["type"] == "accessibleDevices")
        b.wait_event("sync", predicate=lambda e: e["data"]["type"] == "authorizedDevices")
        accessible = a.call("getAccessibleDevices")["devices"]
        self.assertEqual(len(accessible), 1)
        self.assertEqual({k: accessible[0][k] for k in ("appId", "clientIdentify", "deviceModel",
                                                        "deviceName", "online", "userId")},
                         {"appId": "appB", "clientIdentify": b.client_id, "deviceModel": "M-tablet",
                          "deviceName": "Name tablet", "online": True, "userId": b.user})
        both = b.call("getAllDevices")
        self.assertEqual([d["clientIdentify"] for d in both["authorizedDevices"]], [a.client_id])
        self.assertEqual(both["accessibleDevices"], [])

        # sendCommand -> receiveCommand on B.
        sent = self.send(a, b, "light", {"on": True})
        self.assertTrue(sent["ok"], sent)
        cid = sent["result"]["commandId"]
        self.assertEqual((sent["result"]["state"], sent["result"]["stateCode"]), ("offered", 6))
        cmd = b.wait_event("command")["data"]
        self.assertEqual(cmd, {"commandId": cid, "commandType": "light",
                               "commandParams": {"on": True}, "from": endpoint(a)})
        # B confirms it (ackCommand): delivered.
        acked = b.call("ackCommand", {"commandIds": [cid]})
        self.assertEqual(acked, {"acknowledged": [cid], "unknown": []})
        st = a.wait_event("commandState", predicate=lambda e: e["data"]["state"] == "delivered")
        self.assertEqual((st["data"]["commandId"], st["data"]["stateCode"]), (cid, 2))

        # replyCommand -> onResponse on A with the original commandId.
        b.call("replyCommand", {"commandId": cid, "commandParams": {"done": 1},
                                "to": cmd["from"]})
        back = a.wait_event("commandResponse")["data"]
        self.assertEqual(back["commandId"], cid)
        self.assertEqual(back["commandType"], "light")
        self.assertEqual(back["commandParams"], {"done": 1})
        self.assertEqual(back["from"], endpoint(b))
        self.assertEqual(back["state"], "replied")

        # B rejects another request (from A's second terminal); A sees the rejection.
        a2 = self.terminal(a.user, "laptop", "appA")
        req2 = a2.call("requestAccessTo", {"to": endpoint(b), "allPermissions": True})
        ev2 = b.wait_event("accessRequest",
                           predicate=lambda e: e["data"]["commandId"] == req2["commandId"])
        b.call("rejectAccessRequest", {"commandId": req2["commandId"], "to": ev2["data"]["from"]})
        rej = a2.wait_event("accessResponse")["data"]
        self.assertNotEqual(rej["code"], 0)
        self.assertEqual(rej["message"], "rejected")
        self.assertEqual(rej["commandId"], req2["commandId"])
        self.assertEqual(self.send(a2, b)["error"]["code"], "FORBIDDEN")

    def test_get_open_id_matches_hello(self):
        a, _ = self.pair()
        self.assertEqual(a.call("getOpenId")["openId"], a.open_id)

    def test_counters_in_hub_status(self):
        def counters():
            return self.hub.status()["details"]["coop_relay"].get("counters", {})

        def delta(name):
            return counters().get(name, 0) - before.get(name, 0)

        before = counters()
        a, b = self.pair()
        self.grant(a, b, permissions=["light"])
        sent = self.send(a, b, "light")
        self.assertTrue(sent["ok"], sent)
        cmd = b.wait_event("command")["data"]
        b.call("replyCommand", {"commandId": cmd["commandId"], "to": cmd["from"]})
        a.wait_event("commandResponse")
        self.assertEqual(self.send(b, a, "light")["error"]["code"], "FORBIDDEN")  # counts nothing
        self.assertEqual({n: delta(n) for n in ("access_requests", "commands_relayed",
                                                "replies_relayed")},
                         {"access_requests": 1, "commands_relayed": 1, "replies_relayed": 1})
        # The details the plugin sets itself are still there.
        self.assertIn("grants", self.hub.status()["details"]["coop_relay"])


class GrantTest(CoopCase):
    def test_command_without_grant_is_forbidden(self):
        a, b = self.pair()
        self.assertEqual(self.send(a, b)["error"]["code"], "FORBIDDEN")
        time.sleep(0.3)
        self.assertEqual(self.commands_received(b), [])

    def test_grant_covers_only_its_permissions(self):
        a, b = self.pair()
        self.grant(a, b, permissions=["light"])
        self.assertTrue(self.send(a, b, "light")["ok"])
        self.assertEqual(self.send(a, b, "lock")["error"]["code"], "FORBIDDEN")
        # The grant runs one way only.
        self.assertEqual(self.send(b, a, "light")["error"]["code"], "FORBIDDEN")

    def test_after_remove_authorized_device_next_command_is_forbidden(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        self.assertTrue(self.send(a, b)["ok"])
        b.call("removeAuthorizedDevice", {"clientIdentify": a.client_id, "appId": a.app_id,
                                          "userId": a.user})
        self.assertEqual(self.send(a, b)["error"]["code"], "FORBIDDEN")
        self.assertEqual(a.call("getAccessibleDevices")["devices"], [])
        self.assertEqual(b.call("getAuthorizedDevices")["devices"], [])

    def test_after_remove_accessible_device_next_command_is_forbidden(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        a.call("removeAccessibleDevice", {"clientIdentify": b.client_id, "appId": b.app_id,
                                          "userId": b.user})
        self.assertEqual(self.send(a, b)["error"]["code"], "FORBIDDEN")

    def test_terminals_of_one_user_need_no_grant(self):
        alice = self.user("alice")
        phone = self.terminal(alice, "phone", "appA")
        tv = self.terminal(alice, "tv", "appTV")
        sent = self.send(phone, tv, "play", {"url": "x"})
        self.assertTrue(sent["ok"], sent)
        cmd = tv.wait_event("command")["data"]
        self.assertEqual(cmd["commandId"], sent["result"]["commandId"])
        mine = [d["clientIdentify"] for d in phone.call("getMyDevices")["devices"]]
        self.assertEqual(sorted(mine), sorted([phone.client_id, tv.client_id]))

    def test_remove_my_device_hides_it_until_hello(self):
        alice = self.user("alice")
        phone = self.terminal(alice, "phone", "appA")
        tv = self.terminal(alice, "tv", "appTV")
        phone.call("removeMyDevice", {"clientIdentify": tv.client_id})
        self.assertEqual([d["clientIdentify"] for d in phone.call("getMyDevices")["devices"]],
                         [phone.client_id])
        self.assertEqual(self.send(phone, tv)["error"]["code"], "NOT_FOUND")
        tv.call("hello", {"appId": "appTV"})
        self.assertEqual(sorted(d["clientIdentify"] for d in phone.call("getMyDevices")["devices"]),
                         sorted([phone.client_id, tv.client_id]))

    def test_online_in_lists_follows_presence_within_a_second(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        b.drop()  # no DISCONNECT: the broker publishes b's Will
        started = time.monotonic()
        wait_for(lambda: not a.call("getAccessibleDevices")["devices"][0]["online"], timeout=1.0,
                 what="online=false after the Will")
        a.wait_event("sync", predicate=lambda e: e["data"]["type"] == "accessibleDevices")
        self.assertLess(time.monotonic() - started, 1.5)
        b2 = self.terminal(b.user, "tablet", "appB", client_id=b.client_id)
        wait_for(lambda: a.call("getAccessibleDevices")["devices"][0]["online"], timeout=1.0,
                 what="online=true after reconnecting")
        self.assertTrue(b2.client.is_connected())


class MalformedAndForgedTest(CoopCase):
    def snapshot(self, *terminals):
        return [(t.call("getMyDevices"), t.call("getAllDevices")) for t in terminals]

    def test_malformed_and_forged_requests_change_nothing(self):
        a, b = self.pair()
        mallory = self.terminal(self.user("mallory"), "evil", "appM")
        self.grant(a, b, permissions=["light"])
        pending = a.call("requestAccessTo", {"to": endpoint(b), "permissions": ["lock"]})
        b.wait_event("accessRequest",
                     predicate=lambda e: e["data"]["commandId"] == pending["commandId"])
        sent = self.send(a, b)
        cid = sent["result"]["commandId"]
        b.wait_event("command")
        b.call("ackCommand", {"commandIds": [cid]})  # confirmed: never offered again
        before = self.snapshot(a, b, mallory)
        b.drain_events()
        a.drain_events()

        bad_to = dict(endpoint(b), userId="bob/#")
        cases = [
            (a, "sendCommand", {"commandType": "li/ght", "to": endpoint(b)}, "INVALID_REQUEST"),
            (a, "sendCommand", {"commandType": "light"}, "INVALID_REQUEST"),
            (a, "sendCommand", {"commandType": "light", "to": bad_to}, "INVALID_REQUEST"),
            (a, "sendCommand", {"commandType": "light", "to": endpoint(b), "commandParams": [1]},
             "INVALID_REQUEST"),
            (a, "sendCommand", {"commandType": 5, "to": endpoint(b)}, "INVALID_REQUEST"),
            (a, "requestAccessTo", {"to": endpoint(b), "allPermissions": "yes"},
             "INVALID_REQUEST"),
            (a, "requestAccessTo", {"to": endpoint(b), "permissions": []}, "INVALID_REQUEST"),
            (a, "removeMyDevice", {"clientIdentify": "x+y"}, "INVALID_REQUEST"),
            (a, "getDeviceInfo", {"openId": 7}, "INVALID_REQUEST"),
            # Forged and replayed ids.
            (b, "agreeAccessRequest", {"commandId": "not-a-request", "to": endpoint(a)},
             "NOT_FOUND"),
            (b, "replyCommand", {"commandId": "not-a-command", "to": endpoint(a)}, "NOT_FOUND"),
            # Someone other than the addressee answering, or the addressee aiming elsewhere.
            (mallory, "agreeAccessRequest", {"commandId": pending["commandId"],
                                             "to": endpoint(a)}, "FORBIDDEN"),
            (a, "agreeAccessRequest", {"commandId": pending["commandId"], "to": endpoint(a)},
             "FORBIDDEN"),
            (b, "agreeAccessRequest", {"commandId": pending["commandId"],
                                       "to": endpoint(mallory)}, "FORBIDDEN"),
            (mallory, "replyCommand", {"commandId": cid, "to": endpoint(a)}, "FORBIDDEN"),
            (b, "replyCommand", {"commandId": cid, "to": endpoint(mallory)}, "FORBIDDEN"),
            # No grant, unknown targets, nothing to remove.
            (mallory, "sendCommand", {"commandType": "light", "to": endpoint(b)}, "FORBIDDEN"),
            (a, "sendCommand", {"commandType": "light", "to": dict(endpoint(b), appId="other")},
             "NOT_FOUND"),
            (mallory, "removeAuthorizedDevice", {"clientIdentify": a.client_id,
                                                 "appId": a.app_id, "userId": a.user},
             "NOT_FOUND"),
            (mallory, "removeMyDevice", {"clientIdentify": b.client_id}, "NOT_FOUND"),
        ]
        for t, method, params, code in cases:
            with self.subTest(method=method, params=params):
                self.assertEqual(self.error_code(t, method, params), code)

        # Not even JSON, and an unknown method: the core's envelope errors.
        a.publish_raw("sendCommand", b"{not json")
        self.assertEqual(a.wait_response(None)["error"]["code"], "INVALID_REQUEST")
        self.assertEqual(self.error_code(a, "sendCommandz", {}), "UNKNOWN_METHOD")
        # Publishing into another user's tree is dropped by the broker (dynsec ACL): no answer
        # comes and the pending request is untouched.
        forged = {"id": "forged-1", "params": {"commandId": pending["commandId"],
                                               "to": endpoint(mallory)}}
        mallory.client.publish("hearth/v1/u/%s/%s/req/agreeAccessRequest" % (b.user, b.client_id),
                               json.dumps(forged), qos=1).wait_for_publish()

        time.sleep(0.5)
        self.assertEqual(self.snapshot(a, b, mallory), before)
        leaked = [e for e in b.drain_events() + mallory.drain_events() + a.drain_events()
                  if e["event"] in ("command", "commandResponse", "accessResponse")]
        self.assertEqual(leaked, [])
        self.assertEqual([e for e in mallory.all_events if e["event"] == "accessResponse"], [])
        # The genuine answers still work, once.
        b.call("agreeAccessRequest", {"commandId": pending["commandId"], "to": endpoint(a)})
        self.assertEqual(self.error_code(b, "agreeAccessRequest",
                                         {"commandId": pending["commandId"], "to": endpoint(a)}),
                         "NOT_FOUND")
        b.call("replyCommand", {"commandId": cid, "to": endpoint(a)})
        self.assertEqual(a.wait_event("commandResponse")["data"]["commandId"], cid)
        self.assertEqual(self.error_code(b, "replyCommand", {"commandId": cid, "to": endpoint(a)}),
                         "NOT_FOUND")


class StoreAndForwardTest(CoopCase):
    def test_hundred_queued_commands_arrive_in_order(self):
        """With the default delivery_window (50): two windows, in order, as b replies."""
        a, b = self.pair()
        self.grant(a, b, permissions=["step"])
        self.go_offline(a, b)
        ids = []
        for i in range(100):
            r = self.send(a, b, "step", {"i": i})
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["result"]["state"], "queued")
            ids.append(r["result"]["commandId"])
        got = self.deliver_backlog_while_replying([a], b, ids, window=50)
        self.assertEqual([c["commandParams"]["i"] for c in got], list(range(100)))


class DeliveryWindowTest(CoopCase):
    plugin_config = {"delivery_window": 4}

    def test_backlog_from_two_senders_goes_out_in_windows_in_send_order(self):
        a, b = self.pair()
        a2 = self.terminal(a.user, "laptop", "appA")
        self.grant(a, b, permissions=["step"])
        self.grant(a2, b, permissions=["step"])
        self.go_offline(a, b)
        ids = []
        for i in range(30):
            sender = a2 if i % 3 == 2 else a
            r = self.send(sender, b, "step", {"i": i})
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["result"]["state"], "queued")
            ids.append(r["result"]["commandId"])
        got = self.deliver_backlog_while_replying([a, a2], b, ids, window=4)
        self.assertEqual([c["commandParams"]["i"] for c in got], list(range(30)))

    def test_online_target_with_a_full_window_gets_the_next_command_after_a_reply(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        first = []
        for i in range(4):
            r = self.send(a, b, "x", {"i": i})
            self.assertEqual(r["result"]["state"], "offered", r)
            first.append(r["result"]["commandId"])
        extra = [self.send(a, b, "x", {"i": 4 + i}) for i in range(2)]
        for r in extra:
            self.assertTrue(r["ok"], r)
            self.assertEqual((r["result"]["state"], r["result"]["stateCode"]), ("queued", 1))
        self.assert_receives_exactly(b, 4, "the window")
        self.assertEqual([c["commandId"] for c in self.commands_received(b)], first)
        # A reply (to the second, not the oldest) makes room for exactly one more.
        b.call("replyCommand", {"commandId": first[1], "to": endpoint(a)})
        self.assert_receives_exactly(b, 5, "one more after a reply")
        got = [c["commandId"] for c in self.commands_received(b)]
        self.assertEqual(got, first + [extra[0]["result"]["commandId"]])
        a.wait_event("commandState", predicate=lambda e: (
            e["data"]["commandId"] == extra[0]["result"]["commandId"]
            and e["data"]["state"] == "offered"))
        for cid in first[:1] + first[2:] + [extra[0]["result"]["commandId"]]:
            b.call("replyCommand", {"commandId": cid, "to": endpoint(a)})
        wait_for(lambda: len(self.commands_received(b)) >= 6, timeout=5, what="the sixth")
        self.assertEqual(self.commands_received(b)[-1]["commandId"],
                         extra[1]["result"]["commandId"])

    def test_bad_delivery_window_is_refused_by_name(self):
        with open(self.hub.config_path) as f:
            good = f.read()
        self.assertIn('"delivery_window": 4', good)
        ok = subprocess.run([HEARTHD, "--check-config", self.hub.config_path],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        for bad, why in (("0", r"must be between 1 and 10000 \(got 0\)"),
                         ("10001", r"must be between 1 and 10000 \(got 10001\)"),
                         ('"lots"', "expected an integer")):
            path = self.hub.config_path + ".bad"
            with open(path, "w") as f:
                f.write(good.replace('"delivery_window": 4', '"delivery_window": ' + bad))
            r = subprocess.run([HEARTHD, "--check-config", path], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1, (bad, r.stdout, r.stderr))
            self.assertRegex(r.stderr, r"plugins\.coop_relay\.delivery_window: .*" + why)


class ExpiryTest(CoopCase):
    plugin_config = {"command_ttl": "4s", "max_queued_per_terminal": 5}

    def test_command_past_ttl_is_expired_and_never_delivered(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        self.go_offline(a, b)
        old = self.send(a, b, "x", {"n": "old"})["result"]["commandId"]
        time.sleep(2.5)
        new = self.send(a, b, "x", {"n": "new"})["result"]["commandId"]
        state = a.wait_event("commandState", timeout=5,
                             predicate=lambda e: e["data"]["state"] == "expired")["data"]
        self.assertEqual(state["commandId"], old)
        self.come_back(b)
        got = b.wait_event("command")["data"]
        self.assertEqual(got["commandId"], new)
        time.sleep(0.5)
        self.assertNotIn(old, [c["commandId"] for c in self.commands_received(b)])
        self.assertEqual(self.error_code(b, "replyCommand", {"commandId": old, "to": endpoint(a)}),
                         "NOT_FOUND")

    def test_queue_limit_is_limit_reached(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        self.go_offline(a, b)
        for i in range(5):
            self.assertTrue(self.send(a, b, "x", {"i": i})["ok"])
        self.assertEqual(self.send(a, b, "x", {"i": 5})["error"]["code"], "LIMIT_REACHED")
        self.come_back(b)
        wait_for(lambda: len(self.commands_received(b)) >= 5, timeout=5, what="5 commands")
        self.assertEqual([c["commandParams"]["i"] for c in self.commands_received(b)],
                         list(range(5)))


class RestartTest(CoopCase):
    def test_sigkill_with_queued_commands_then_delivered_after_restart(self):
        a, b = self.pair()
        self.grant(a, b, permissions=["step"])
        self.go_offline(a, b)
        ids = [self.send(a, b, "step", {"i": i})["result"]["commandId"] for i in range(10)]
        self.hub.kill9()
        self.hub.start()
        # The grant survived too.
        wait_for(lambda: a.request("getAccessibleDevices").get("ok"), timeout=10,
                 what="coop_relay after restart")
        self.assertEqual(len(a.call("getAccessibleDevices")["devices"]), 1)
        self.come_back(b)
        wait_for(lambda: len(self.commands_received(b)) >= 10, timeout=10,
                 what="queued commands after restart")
        self.assertEqual([c["commandId"] for c in self.commands_received(b)], ids)
        reply = b.request("replyCommand", {"commandId": ids[0], "to": endpoint(a)})
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(a.wait_event("commandResponse")["data"]["commandId"], ids[0])

    def test_sigkill_after_delivery_keeps_the_reply_path(self):
        a, b = self.pair()
        self.grant(a, b, permissions=["ask"])
        sent = self.send(a, b, "ask")
        self.assertEqual(sent["result"]["state"], "offered")
        cid = b.wait_event("command")["data"]["commandId"]
        self.hub.kill9()  # the answer above means the command is tracked on disk
        self.hub.start()
        b.call("replyCommand", {"commandId": cid, "to": endpoint(a)})  # hub.start() waits for ready
        self.assertEqual(a.wait_event("commandResponse")["data"]["commandId"], cid)


class DeliveryConfirmationTest(CoopCase):
    """SPEC §4a: a command counts as delivered when the target confirms it."""

    def plain_disconnect(self, t):
        """DISCONNECT without publishing `offline`: no Will, the hub still thinks t online."""
        t.client.disconnect()
        t.client.loop_stop()

    def test_commands_sent_after_a_plain_disconnect_arrive_when_it_returns(self):
        a, b = self.pair()
        self.grant(a, b, permissions=["step"])
        self.plain_disconnect(b)
        ids = []
        for i in range(5):
            r = self.send(a, b, "step", {"i": i})
            # The hub cannot tell the session is gone: offered into it, and lost there.
            self.assertEqual(r["result"]["state"], "offered", r)
            ids.append(r["result"]["commandId"])
        time.sleep(0.3)
        self.assertEqual(self.commands_received(b), [])
        self.come_back(b)  # reconnects and says `online` again: the hub offers them again
        wait_for(lambda: len(self.commands_received(b)) >= 5, timeout=10, what="5 commands")
        self.assertEqual([c["commandId"] for c in self.commands_received(b)], ids)
        self.assertEqual([c["commandParams"]["i"] for c in self.commands_received(b)],
                         list(range(5)))
        res = b.call("ackCommand", {"commandIds": ids})
        self.assertEqual(res["acknowledged"], ids)
        wait_for(lambda: len([e for e in a.all_events if e.get("event") == "commandState"
                              and e["data"]["state"] == "delivered"]) >= 5, timeout=5,
                 what="5 delivered states")
        # Confirmed: a new session and a hello bring nothing again.
        offers = len(self.command_offers(b))
        self.plain_disconnect(b)
        self.come_back(b)
        b.call("hello", {"appId": "appB"})
        time.sleep(0.5)
        self.assertEqual(len(self.command_offers(b)), offers)

    def test_hello_and_requests_offer_unconfirmed_commands_again(self):
        a, b = self.pair()
        self.grant(a, b, all_permissions=True)
        cid = self.send(a, b, "x")["result"]["commandId"]
        b.wait_event("command")
        b.call("hello", {"appId": "appB"})
        wait_for(lambda: len(self.command_offers(b)) >= 2, timeout=5, what="offer after hello")
        time.sleep(1.1)  # a request a second after the offer shows a session that may be new
        b.call("getOpenId")
        wait_for(lambda: len(self.command_offers(b)) >= 3, timeout=5, what="offer after request")
        self.assertEqual({c["commandId"] for c in self.command_offers(b)}, {cid})
        # replyCommand confirms it too.
        b.call("replyCommand", {"commandId": cid, "to": endpoint(a)})
        b.call("hello", {"appId": "appB"})
        time.sleep(0.5)
        self.assertEqual(len(self.command_offers(b)), 3)

    def test_unconfirmed_commands_survive_a_hub_sigkill(self):
        a, b = self.pair()
        self.grant(a, b, permissions=["step"])
        self.plain_disconnect(b)
        ids = [self.send(a, b, "step", {"i": i})["result"]["commandId"] for i in range(4)]
        self.hub.kill9()
        self.hub.start()
        self.come_back(b)
        wait_for(lambda: len(self.commands_received(b)) >= 4, timeout=10,
                 what="4 commands after the hub restart")
        self.assertEqual([c["commandId"] for c in self.commands_received(b)], ids)
        self.assertEqual(b.call("ackCommand", {"commandIds": ids})["acknowledged"], ids)
        b.call("replyCommand", {"commandId": ids[0], "to": endpoint(a)})
        self.assertEqual(a.wait_event("commandResponse")["data"]["commandId"], ids[0])

    def test_ack_command_bad_input(self):
        a, b = self.pair()
        for params in ({}, {"commandIds": []}, {"commandIds": "x"}, {"commandIds": [7]},
                       {"commandIds": ["a#b"]}):
            with self.subTest(params=params):
                self.assertEqual(self.error_code(b, "ackCommand", params), "INVALID_REQUEST")
        self.assertEqual(b.call("ackCommand", {"commandIds": ["nope"]}),
                         {"acknowledged": [], "unknown": ["nope"]})


if __name__ == "__main__":
    unittest.main()
