// Telling a takeover from a dropped connection. When a second connection logs in with this
// terminal's clientIdentify (its MQTT client id), mosquitto 2.0 closes the first one's socket
// without an MQTT 5 DISCONNECT (no reason code 0x8E reaches the client, directly or through
// the front door), so the first sees only a closed connection. Reconnecting blindly would
// throw the new one off in turn, and two instances would take turns for ever.
//
// So each login() is an instance with a random id, carried as the MQTT 5 user property
// `instance` on the terminal's retained presence (`online` after connecting, the Will's
// `offline`, the `offline` of logout). Whichever connection holds the client id last has its
// id on that retained message: a takeover fires the old connection's Will, and the new one
// says `online`. Before reconnecting, the library reads the retained presence over a second,
// short connection under another client id (`presenceHolder`), which disturbs nobody: another
// instance's id there means this one was replaced (state disconnected, reason KICKED).

/**
 * The `instance` user property of the retained message on `topic`, or null when there is none
 * (no retained message, or one without the property: an app not built on this library). Opens
 * its own MQTT connection with `opts` under client id `probeId`, subscribes, then unsubscribes
 * (the broker sends a subscription's retained message before it answers the next packet, so
 * the UNSUBACK means everything retained has arrived) and disconnects. Rejects with the
 * connection's error (its `code` is the CONNACK reason code for a refusal) or after timeoutMs.
 */
export function presenceHolder(mqtt, url, opts, probeId, topic, timeoutMs) {
  return new Promise((resolve, reject) => {
    let holder = null;
    let done = false;
    let probe;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        probe.end(true);
        reject(err);
      } else {
        probe.end(false);
        resolve(holder);
      }
    };
    const timer = setTimeout(() => finish(new Error(`no answer from the broker within ${timeoutMs} ms`)), timeoutMs);
    try {
      probe = mqtt.connect(url, { ...opts, clientId: probeId, will: undefined, clean: true, reconnectPeriod: 0, keepalive: 0 });
    } catch (e) {
      clearTimeout(timer);
      done = true;
      return reject(e);
    }
    probe.on('message', (t, payload, packet) => {
      if (t !== topic) return;
      const up = packet.properties && packet.properties.userProperties;
      const v = up && up.instance;
      holder = typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : null;
    });
    probe.on('error', (e) => finish(e));
    probe.on('close', () => finish(new Error('the broker closed the connection')));
    probe.on('connect', () => {
      probe
        .subscribeAsync(topic, { qos: 0 })
        .then(() => probe.unsubscribeAsync(topic))
        .then(
          () => finish(null),
          (e) => finish(e),
        );
    });
  });
}
