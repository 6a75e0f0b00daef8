// Test hooks, not part of the public surface (index.d.ts): the tests need to end a session the
// way a killed or careless app does, without the library's own logout duties.

/** client object -> {conn, coop} (filled by createClient). */
export const registry = new WeakMap();

/** @param {object} client a createClient() result */
export function internals(client) {
  const parts = registry.get(client);
  if (!parts) throw new Error('not a hearth-client client');
  const { conn, coop } = parts;
  return {
    conn,
    coop,
    /** Sends pending acknowledgements, then a plain MQTT DISCONNECT (no presence `offline`). */
    async plainDisconnect() {
      await coop._flushAcks();
      const mq = conn._detach();
      if (mq) await new Promise((resolve) => mq.end(false, {}, () => resolve()));
    },
  };
}
