"""The foundation against a real mosquitto (dynsec) and a real hearthd process: identity,
the request envelope, broker outages, systemd notify/watchdog, reload and stop."""

import json
import os
import signal
import subprocess
import time
import unittest

import paho.mqtt.client as mqtt

from harness import HEARTHD, Hub, response_properties, wait_for


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def retained_status(hub):
    """Reads the retained hearth/v1/hub/status as the hub's own account sees it."""
    got = {}
    c = mqtt.Client(client_id="status-reader-%d" % time.monotonic_ns(), protocol=mqtt.MQTTv5)
    c.username_pw_set("hearthd", hub.broker.password)
    c.on_message = lambda cl, u, m: got.setdefault("s", json.loads(m.payload))
    c.connect("127.0.0.1", hub.broker.port)
    c.subscribe("hearth/v1/hub/status", qos=1)
    c.loop_start()
    try:
        wait_for(lambda: "s" in got, timeout=10, what="retained hub/status")
    finally:
        c.loop_stop()
        c.disconnect()
    return got["s"]


class IdentityAndEnvelope(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hub = Hub(plugins=["echo_plugin", "badabi_plugin", "failstart_plugin"],
                      plugin_config={"echo": {"greeting": "bonjour"}})
        cls.hub.__enter__()
        cls.hub.add_user("alice")
        cls.hub.add_user("bob")

    @classmethod
    def tearDownClass(cls):
        cls.hub.__exit__(None, None, None)

    def test_user_add_then_hello_gives_stable_open_id(self):
        phone = self.hub.terminal("alice", "phone", app_id="app1")
        self.assertRegex(phone.open_id, r"^[0-9a-f]{32}$")
        again = phone.call("hello", {"appId": "app1", "deviceModel": "Pixel"})
        self.assertEqual(again["openId"], phone.open_id)
        other_app = phone.call("hello", {"appId": "app2"})
        self.assertNotEqual(other_app["openId"], phone.open_id)
        users = json.loads(self.hub.ctl("--json", "user", "list").stdout)["users"]
        self.assertIn("alice", [u["userId"] for u in users])

    def test_hearthctl_readable_output_and_errors(self):
        out = self.hub.ctl("status").stdout
        self.assertIn("online", out)
        self.assertIn("echo", out)
        dup = self.hub.ctl("user", "add", "alice", "--password", "whatever1", check=False)
        self.assertEqual(dup.returncode, 1)
        self.assertIn("CONFLICT", dup.stderr)
        bad = self.hub.ctl("user", "add", "a/b", "--password", "whatever1", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("INVALID_REQUEST", bad.stderr)

    def test_forged_publish_into_another_users_tree_is_dropped_by_the_broker(self):
        alice = self.hub.terminal("alice", "tablet")
        before = self.hub.status()["counters"]["requests"]
        bob = self.hub.raw_client("bob", "bob-forger")
        try:
            bob.publish("hearth/v1/u/alice/tablet/req/hello",
                        json.dumps({"id": "forged", "params": {"appId": "evil"}}), qos=1).wait_for_publish()
            # bob's own request is processed, proving the hub is listening meanwhile.
            bob_term = self.hub.terminal("bob", "bob-phone")
            self.assertTrue(bob_term.request("hello", {"appId": "x"})["ok"])
        finally:
            bob.loop_stop()
            bob.disconnect()
        time.sleep(0.5)
        self.assertNotIn("forged", alice.responses)
        after = self.hub.status()["counters"]["requests"]
        # Only bob's own hello and the two status calls of this test reached the router.
        self.assertLessEqual(after - before, 3)

    def test_bad_input_gets_documented_errors_and_hub_keeps_serving(self):
        t = self.hub.terminal("alice", "fuzzer")
        cases = [
            ("hello", b'{"id":"1",', "INVALID_REQUEST", None),
            ("hello", json.dumps({"id": "2", "params": {"x": "a" * (65 * 1024)}}).encode(),
             "INVALID_REQUEST", None),
            ("hello", b'{"params":{"appId":"a"}}', "INVALID_REQUEST", None),
            ("noSuchMethod", b'{"id":"4"}', "UNKNOWN_METHOD", "4"),
            ("hello", b'{"id":"5","params":{"appId":"bad/id"}}', "INVALID_REQUEST", "5"),
            ("hello", b'{"id":"6","params":{"appId":42}}', "INVALID_REQUEST", "6"),
            ("hello", b'{"id":"7","params":[]}', "INVALID_REQUEST", "7"),
        ]
        for method, payload, code, rid in cases:
            with self.subTest(method=method, payload=payload[:40]):
                t.responses.clear()
                t.publish_raw(method, payload)
                key = rid  # None for requests without a usable id
                body = wait_for(lambda: t.responses.get(key), timeout=10, what="error response")[0]
                self.assertFalse(body["ok"])
                self.assertEqual(body["error"]["code"], code)
                self.assertTrue(body["error"]["message"])
        self.assertTrue(t.request("hello", {"appId": "still-ok"})["ok"])

    def test_response_topic_and_correlation_data(self):
        t = self.hub.terminal("alice", "rr")
        got = {}
        t.client.message_callback_add(
            "hearth/v1/u/alice/rr/res/custom",
            lambda c, u, m: got.setdefault("m", (m.payload, m.properties.CorrelationData)))
        t.client.subscribe("hearth/v1/u/alice/rr/res/custom", qos=1)
        time.sleep(0.3)
        t.publish_raw("hello", json.dumps({"id": "c1", "params": {"appId": "a"}}),
                      properties=response_properties("hearth/v1/u/alice/rr/res/custom", b"\x00corr"))
        wait_for(lambda: "m" in got, what="response on the response topic")
        payload, corr = got["m"]
        self.assertTrue(json.loads(payload)["ok"])
        self.assertEqual(corr, b"\x00corr")
        self.assertNotIn("c1", t.responses)  # exactly one response, at the requested topic

    def test_plugins_loaded_refused_and_failed_are_reported(self):
        s = retained_status(self.hub)
        self.assertEqual(s["state"], "online")
        self.assertEqual(s["plugins"]["echo"], "running")
        self.assertEqual(s["plugins"]["failstart"], "failed")
        self.assertEqual(s["plugins"]["badabi_plugin"], "refused")
        self.assertIn("999", s["details"]["badabi_plugin"]["error"])
        self.assertIn("badabi_plugin.so", s["details"]["badabi_plugin"]["file"])
        t = self.hub.terminal("alice", "plug")
        r = t.call("echo", {"x": 1})
        self.assertEqual(r["greeting"], "bonjour")
        self.assertEqual(r["params"], {"x": 1})
        self.assertEqual(t.request("forget")["error"]["code"], "INTERNAL")
        t.call("kvPut", {"key": "k", "value": "v"})
        self.assertEqual(t.call("kvGet", {"key": "k"})["value"], "v")
        self.assertEqual(t.call("later", {"delayMs": 50}), {"late": True})
        self.assertEqual(t.wait_event("tick")["data"], {"n": 1})

    def test_requests_of_one_terminal_are_answered_in_order(self):
        t = self.hub.terminal("alice", "ordered")
        ids = [t.send("echo", {"n": i}) for i in range(50)]
        for rid in ids:
            t.wait_response(rid)
        order = [json.loads(p)["id"] for topic, p in t.messages if "/res/echo" in topic]
        self.assertEqual(order, ids)


class BrokerOutage(unittest.TestCase):
    def test_hub_reconnects_after_broker_restart_without_restarting(self):
        with Hub() as hub:
            hub.add_user("alice")
            pid = hub.proc.pid
            hub.broker.kill()
            time.sleep(1.0)
            hub.broker.start()
            # The hub resubscribes on its own; terminals reconnect as apps would.
            def serving():
                try:
                    t = hub.terminal("alice", "after-%d" % time.monotonic_ns())
                    return t.request("hello", {"appId": "a"}, timeout=3)["ok"]
                except AssertionError:
                    return False
            wait_for(serving, timeout=30, interval=0.5, what="hub serving after broker restart")
            self.assertEqual(hub.proc.pid, pid)
            self.assertIsNone(hub.proc.poll())
            self.assertEqual(retained_status(hub)["state"], "online")

    def test_last_will_marks_hub_offline_when_killed(self):
        with Hub() as hub:
            self.assertEqual(retained_status(hub)["state"], "online")
            hub.kill9()
            wait_for(lambda: retained_status(hub)["state"] == "offline", timeout=90,
                     interval=1, what="Will published")


class SystemdIntegration(unittest.TestCase):
    def test_ready_watchdog_reload_and_stop(self):
        with Hub(plugins=["echo_plugin"], notify_socket=True, watchdog_usec=400000) as hub:
            wait_for(lambda: hub.notify.seen("READY=1"), what="READY=1")
            n = hub.notify.count("WATCHDOG=1")
            wait_for(lambda: hub.notify.count("WATCHDOG=1") >= n + 3, timeout=10,
                     what="watchdog pings")
            hub.add_user("alice")
            t = hub.terminal("alice", "phone")
            good_config = read(hub.config_path)

            # A broken config is rejected on SIGHUP; the old one keeps running.
            with open(hub.config_path, "w") as f:
                f.write(good_config.replace("log_level: debug", "log_level: loud\nbogus_key: 1"))
            ready_before = hub.notify.count("READY=1")
            hub.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: hub.notify.count("READY=1") > ready_before, what="READY after reload")
            self.assertTrue(hub.notify.seen("RELOADING=1"))
            log = hub.log_text()
            self.assertIn("hub.log_level", log)
            self.assertIn("bogus_key", log)
            self.assertIn("keeping the running one", log)
            self.assertEqual(t.call("echo", {})["greeting"], "hello")

            # A good change is applied: the plugin restarts with its new config.
            with open(hub.config_path, "w") as f:
                f.write(good_config.replace("plugins: {}", 'plugins: {"echo": {"greeting": "hej"}}'))
            ready_before = hub.notify.count("READY=1")
            hub.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: hub.notify.count("READY=1") > ready_before, what="READY after reload")
            wait_for(lambda: t.call("echo", {})["greeting"] == "hej", what="new config applied")

            self.assertEqual(hub.terminate(), 0)
            self.assertTrue(hub.notify.seen("STOPPING=1"))


class StartupChecks(unittest.TestCase):
    def test_check_config(self):
        with Hub() as hub:
            ok = subprocess.run([HEARTHD, "--check-config", hub.config_path], capture_output=True,
                                text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            bad = hub.config_path + ".bad"
            with open(bad, "w") as f:
                f.write(read(hub.config_path).replace("port: %d" % hub.broker.port,
                                                            "port: 70000"))
            r = subprocess.run([HEARTHD, "--check-config", bad], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r"hearth.yaml.bad:\d+: broker.port: ")

    def test_corrupt_database_stops_startup_and_is_kept(self):
        with Hub() as hub:
            hub.terminate()
            db = os.path.join(hub.state_dir, "hearth.db")
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
            with open(db, "r+b") as f:
                f.seek(0)
                f.write(b"this is not sqlite" * 10)
            before = read(db, "rb")
            hub.start(wait=False)
            rc = hub.proc.wait(timeout=20)
            self.assertNotEqual(rc, 0)
            self.assertIn("refusing to start", hub.log_text())
            self.assertEqual(read(db, "rb"), before)


if __name__ == "__main__":
    unittest.main()
