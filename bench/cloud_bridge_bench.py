#!/usr/bin/python3
"""cloud_bridge throughput, against a baseline measured in the same run.

Starts the hub's private mosquitto, hearthd with the cloud_bridge plugin, and a second mosquitto
that plays the cloud behind TLS (tests/integration/test_cloud_bridge.py sets them up), then:

  direct    mosquitto_pub (libmosquitto) publishes N QoS 1 messages straight to the cloud broker
            over TLS;
  bridged   mosquitto_pub publishes N QoS 1 messages to the local broker; the bridge stores each
            in its durable outbox (SQLite, synchronous=FULL) and forwards it over TLS;
  drain     the cloud broker is stopped, N messages are published locally and wait in the
            outbox; the cloud broker is started and the outbox drains.

A cloud consumer (mosquitto_sub, QoS 1) timestamps every message it receives; a rate is
(N - 1) / (last - first arrival), i.e. the sustained rate, without connection set-up. Prints the
rates and bridged/direct (target >= 0.5).

    HEARTH_BUILD_DIR=build /usr/bin/python3 bench/cloud_bridge_bench.py [N]   (N <= 60000)

BENCH_INFLIGHT sets the bridge's `inflight` (default: the plugin's default).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import test_cloud_bridge as tcb  # noqa: E402  (cloud broker, certificates)
from harness import Hub, wait_for  # noqa: E402


class Consumer:
    """mosquitto_sub on the cloud broker that exits after `count` messages, printing the arrival
    time of each; with a persistent session so it can be created before an outage."""

    def __init__(self, cloud, topic, count, client_id):
        self.out = tempfile.NamedTemporaryFile(prefix="bench-sub-", delete=False)
        self.cmd = ["mosquitto_sub", "-V", "mqttv5", "-h", "localhost", "-p", str(cloud.port),
                    "--cafile", tcb.CERTS["ca"], "-u", "consumer", "-P",
                    tcb.CLOUD_USERS["consumer"], "-i", client_id, "-c", "-x", "3600", "-q", "1",
                    "-t", topic, "-F", "%U"]
        self.count = count
        self.proc = None

    def create_session(self):
        subprocess.run(self.cmd + ["-W", "1"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def start(self):
        self.proc = subprocess.Popen(self.cmd + ["-C", str(self.count)], stdout=self.out,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # subscribed

    def wait(self, timeout=180):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with open(self.out.name) as f:
            stamps = [float(line) for line in f if line.strip()]
        os.unlink(self.out.name)
        if len(stamps) < self.count:
            raise RuntimeError("consumer got %d of %d messages" % (len(stamps), self.count))
        return stamps

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()


def publish(host, port, user, password, topic, count, tls=False):
    # -l publishes one message per stdin line over one connection, pipelined; --nodelay like the
    # bridge's own sockets (SPEC: TCP_NODELAY everywhere).
    cmd = ["mosquitto_pub", "-V", "mqttv5", "-h", host, "-p", str(port), "-u", user, "-P",
           password, "-q", "1", "-t", topic, "-l", "--nodelay"]
    if tls:
        cmd += ["--cafile", tcb.CERTS["ca"]]
    lines = "".join('{"n":%d,"pad":"%s"}\n' % (i, "x" * 64) for i in range(count))
    subprocess.run(cmd, input=lines.encode(), check=True, stdout=subprocess.DEVNULL)


def rate(stamps):
    span = stamps[-1] - stamps[0]
    return (len(stamps) - 1) / span if span > 0 else float("inf")


def details(hub):
    return hub.status()["details"]["cloud_bridge"]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    if not 2 <= n <= 60000:
        # mosquitto_pub -l stops early once its 16-bit message ids wrap around (65535).
        sys.exit("N must be between 2 and 60000")
    # Clean up (brokers, hearthd) also when stopped with SIGTERM, e.g. by timeout(1).
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    tcb.setUpModule()
    root = tempfile.mkdtemp(prefix="hearth-bench-cloud-")
    cloud = tcb.CloudBroker(root)
    hub = None
    consumers = []
    try:
        cloud.start()
        pw = os.path.join(root, "bridge.pass")
        with open(pw, "w") as f:
            f.write(tcb.CLOUD_USERS["bridge"] + "\n")
        hub = Hub(plugins=["cloud_bridge"])
        hub.plugin_config = {"cloud_bridge": {
            "host": "localhost", "port": cloud.port, "username": "bridge", "password_file": pw,
            "ca_file": tcb.CERTS["ca"], "client_id": "bench-hub", "reconnect_min": "200ms",
            "reconnect_max": "1s", "max_messages": max(100000, 2 * n),
            "inflight": int(os.environ.get("BENCH_INFLIGHT", "256")),
            "rules": [{"direction": "out", "local": "hearth/v1/bench/#",
                       "remote": "site1/bench/#", "qos": 1}],
            "local_port": hub.broker.port,
            "local_password_file": os.path.join(hub.broker.dir, "broker.pass")}}
        hub.__enter__()
        wait_for(lambda: details(hub).get("connected"), timeout=30, what="bridge connected")

        # direct
        c = Consumer(cloud, "site1/direct", n, "bench-direct")
        consumers.append(c)
        c.start()
        publish("localhost", cloud.port, "operator", tcb.CLOUD_USERS["operator"], "site1/direct",
                n, tls=True)
        direct = rate(c.wait())

        # bridged
        c = Consumer(cloud, "site1/bench/live", n, "bench-bridged")
        consumers.append(c)
        c.start()
        publish("127.0.0.1", hub.broker.port, "hearthd", hub.broker.password,
                "hearth/v1/bench/live", n)
        bridged = rate(c.wait())
        wait_for(lambda: details(hub).get("outbox") == 0, timeout=60, what="outbox empty")

        # drain after an outage
        c = Consumer(cloud, "site1/bench/drain", n, "bench-drain")
        consumers.append(c)
        c.create_session()
        cloud.stop()
        t0 = time.monotonic()
        publish("127.0.0.1", hub.broker.port, "hearthd", hub.broker.password,
                "hearth/v1/bench/drain", n)
        wait_for(lambda: details(hub).get("outbox") == n, timeout=180, interval=0.2,
                 what="%d messages in the outbox" % n)
        store_rate = n / (time.monotonic() - t0)
        cloud.start()
        c.start()
        drain = rate(c.wait())
        d = details(hub)

        print(json.dumps({
            "messages": n,
            "direct_msgs_per_s": round(direct),
            "bridged_msgs_per_s": round(bridged),
            "ratio_bridged_vs_direct": round(bridged / direct, 3),
            "outbox_fill_while_offline_msgs_per_s": round(store_rate),
            "drain_after_outage_msgs_per_s": round(drain),
            "dropped": d.get("dropped"),
        }, indent=1))
        print("ratio %.2f (target >= 0.5)" % (bridged / direct))
    finally:
        for c in consumers:
            c.kill()
        if hub is not None:
            hub.close()
        cloud.close()
        shutil.rmtree(root, ignore_errors=True)
        tcb.tearDownModule()


if __name__ == "__main__":
    main()
