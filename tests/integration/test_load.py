"""Load (docs/reliability.md): 50 terminals of 10 users send requests concurrently for a bounded
time, one in ten malformed. Every valid request gets exactly one response, never
INVALID_REQUEST / UNKNOWN_METHOD / INTERNAL; every malformed one gets exactly one error response
(with its id when it had a usable one, else with id null); hearthd never crashes and its RSS
after the run stays close to its RSS after warm-up.

HEARTH_LOAD_SECONDS overrides the duration (default 20).
"""

import json
import os
import random
import threading
import time
import unittest
import uuid

import harness
from harness import Hub, wait_for

DURATION = float(os.environ.get("HEARTH_LOAD_SECONDS", "20"))
WARMUP = 5.0
USERS = 10
TERMINALS_PER_USER = 5
IN_FLIGHT = 4  # per terminal

# (name, payload builder, expected code, whether the response carries the request's id)
MALFORMED = [
    ("truncated JSON", lambda rid: '{"id":"%s","params":' % rid, "INVALID_REQUEST", False),
    ("not an object", lambda rid: '["%s"]' % rid, "INVALID_REQUEST", False),
    ("no id", lambda rid: '{"params":{}}', "INVALID_REQUEST", False),
    ("id too long", lambda rid: json.dumps({"id": "x" * 65}), "INVALID_REQUEST", False),
    ("oversize", lambda rid: json.dumps({"id": rid, "pad": "p" * 70000}), "INVALID_REQUEST",
     False),
    ("params not an object", lambda rid: json.dumps({"id": rid, "params": [1]}),
     "INVALID_REQUEST", True),
    ("bad identifier", lambda rid: json.dumps({"id": rid, "params": {"deviceId": "a/#"}}),
     "INVALID_REQUEST", True),
    ("missing param", lambda rid: json.dumps({"id": rid, "params": {}}), "INVALID_REQUEST", True),
]


def sanitized_build():
    try:
        with open(os.path.join(harness.BUILD_DIR, "CMakeCache.txt")) as f:
            return "HEARTH_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class Worker:
    """One terminal's request loop: IN_FLIGHT requests outstanding, one in ten malformed."""

    def __init__(self, terminal, device, seed):
        self.t = terminal
        self.device = device
        self.rng = random.Random(seed)
        self.valid = []      # (id, method)
        self.malformed = []  # (id or None, expected code, kind)
        self.anonymous = 0   # malformed requests answered with id null
        self.bound = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def next_valid(self):
        r = self.rng.random()
        if r < 0.25:
            self.bound = not self.bound
            return ("bindDevice" if self.bound else "unbindDevice"), {"deviceId": self.device}
        if r < 0.45:
            return "getBoundDevices", {}
        if r < 0.6:
            return "getDeviceDetail", {"deviceId": self.device}
        if r < 0.75:
            return "listShares", {"direction": self.rng.choice(["toMe", "fromMe"])}
        if r < 0.9:
            return "hello", {"appId": "load", "deviceModel": "m", "deviceName": self.t.client_id}
        return "controlDevice", {"deviceId": self.device, "command": "ping"}

    def run(self):
        deadline = time.monotonic() + DURATION
        pending = []
        while time.monotonic() < deadline:
            with self.t._cond:
                self.t._cond.wait_for(lambda: sum(1 for r in pending if r not in self.t.responses)
                                      < IN_FLIGHT, 1.0)
                pending = [r for r in pending if r not in self.t.responses]
            if len(pending) >= IN_FLIGHT:
                continue
            rid = uuid.uuid4().hex[:16]
            if self.rng.random() < 0.1:
                kind, build, code, has_id = self.rng.choice(MALFORMED)
                method = "bindDevice" if kind in ("bad identifier", "missing param") else "hello"
                self.malformed.append((rid if has_id else None, code, kind))
                if not has_id:
                    self.anonymous += 1
                self.t.publish_raw(method, build(rid))
                if has_id:
                    pending.append(rid)
            else:
                method, params = self.next_valid()
                self.valid.append((rid, method))
                self.t.publish_raw(method, json.dumps({"id": rid, "params": params}))
                pending.append(rid)


class LoadTest(unittest.TestCase):
    def test_fifty_terminals_with_malformed_requests(self):
        with Hub(plugins=["testtransport_plugin"]) as hub:
            workers = []
            for u in range(USERS):
                user = "load%d" % u
                hub.add_user(user)
                for c in range(TERMINALS_PER_USER):
                    device = "load-dev-%d-%d" % (u, c)
                    r = hub.admin("testReport", {"deviceId": device, "model": "free-lamp"})
                    self.assertTrue(r["ok"], r)
                    t = hub.terminal(user, "load-%d-%d" % (u, c), app_id="load")
                    workers.append(Worker(t, device, seed=u * 100 + c))

            pid = hub.proc.pid
            rss_start = rss_kib(pid)
            for w in workers:
                w.thread.start()
            time.sleep(WARMUP)
            rss_warm = rss_kib(pid)
            samples = [rss_warm]
            while any(w.thread.is_alive() for w in workers):
                time.sleep(1.0)
                self.assertIsNone(hub.proc.poll(), "hearthd died:\n" + hub.log_text()[-3000:])
                samples.append(rss_kib(pid))
            for w in workers:
                w.thread.join()

            # Every request answered: wait (generously) for the tail of the queue.
            def all_answered():
                for w in workers:
                    with w.t._cond:
                        if any(rid not in w.t.responses for rid, _ in w.valid):
                            return False
                        if any(rid not in w.t.responses for rid, _, _ in w.malformed if rid):
                            return False
                        if len(w.t.responses.get(None, [])) < w.anonymous:
                            return False
                return True
            wait_for(all_answered, timeout=120, interval=0.5, what="every response")
            time.sleep(1.0)  # duplicates would arrive now
            rss_end = rss_kib(pid)

            valid = sum(len(w.valid) for w in workers)
            malformed = sum(len(w.malformed) for w in workers)
            by_method = {}
            for w in workers:
                with w.t._cond:
                    for rid, method in w.valid:
                        got = w.t.responses[rid]
                        self.assertEqual(len(got), 1, "%s %s answered %d times" % (
                            method, rid, len(got)))
                        res = got[0]
                        if not res["ok"]:
                            self.assertNotIn(res["error"]["code"],
                                             ("INVALID_REQUEST", "UNKNOWN_METHOD", "INTERNAL"),
                                             "%s: %s" % (method, res))
                        by_method[method] = by_method.get(method, 0) + 1
                    for rid, code, kind in w.malformed:
                        if rid is None:
                            continue
                        got = w.t.responses[rid]
                        self.assertEqual(len(got), 1, kind)
                        self.assertFalse(got[0]["ok"], kind)
                        self.assertEqual(got[0]["error"]["code"], code, kind)
                    anonymous = w.t.responses.get(None, [])
                    self.assertEqual(len(anonymous), w.anonymous,
                                     "%s: id-less error responses" % w.t.client_id)
                    for res in anonymous:
                        self.assertEqual(res["error"]["code"], "INVALID_REQUEST")

            self.assertIsNone(hub.proc.poll(), "hearthd died")
            status = hub.status()
            print("\nload: %d terminals, %.0f s: %d valid + %d malformed requests (%.0f/s), all "
                  "answered once; by method %s" % (
                      len(workers), DURATION, valid, malformed, (valid + malformed) / DURATION,
                      json.dumps(by_method, sort_keys=True)))
            print("load: hub counters %s" % json.dumps(status.get("counters")))
            print("load: RSS start %d KiB, after warm-up %d KiB, max %d KiB, end %d KiB" % (
                rss_start, rss_warm, max(samples), rss_end))
            self.assertGreater(valid, 50 * 20, "the load was too light to mean anything")
            self.assertGreater(malformed, 50, "too few malformed requests")
            if sanitized_build():
                # ASan keeps freed memory in quarantine (256 MB by default): RSS grows by design.
                print("load: sanitizer build, RSS bound not checked")
            else:
                # Generous: allocator caches and SQLite's page cache settle after warm-up.
                self.assertLess(rss_end, rss_warm * 1.5 + 8 * 1024,
                                "RSS grew from %d to %d KiB" % (rss_warm, rss_end))


if __name__ == "__main__":
    unittest.main()
