// hearth-client: the seed-000 mtl.coop API and hearth.things for a hearth hub (SPEC §8).
// index.d.ts describes the whole surface; docs/js-client.md shows how to use it.

import { Connection, ConnectionState, ReasonCode } from './client.js';
import { Coop } from './coop.js';
import { Things } from './things.js';
import { parsePairingLink } from './pairing.js';
import { registry } from './internals.js';

export { ConnectionState, ReasonCode, parsePairingLink };

export const CommandState = Object.freeze({
  queued: 1,
  delivered: 2,
  replied: 3,
  expired: 4,
  timeout: 5,
  offered: 6,
});

const SYNC_LISTS = {
  myDevices: 'getMyDevices',
  authorizedDevices: 'getAuthorizedDevices',
  accessibleDevices: 'getAccessibleDevices',
};

/**
 * A fresh client: its own connection, `coop` (the seed API) and `things`.
 * @returns {import('../index.d.ts').HearthClient}
 */
export function createClient() {
  const conn = new Connection();
  const coop = new Coop(conn);
  const things = new Things(conn);
  const syncListeners = new Set();
  const refetching = new Map(); // sync type -> promise (one re-fetch per burst of hints)

  const refetch = (type) => {
    if (syncListeners.size === 0 || refetching.has(type)) return;
    const p = coop[SYNC_LISTS[type]]()
      .then((list) => {
        for (const l of [...syncListeners]) {
          try {
            l(type, list);
          } catch (e) {
            queueMicrotask(() => {
              throw e;
            });
          }
        }
      })
      .catch(() => {}) // not connected any more: the next session re-fetches
      .finally(() => refetching.delete(type));
    refetching.set(type, p);
  };
  conn.on('sync', (d) => {
    if (typeof d.type === 'string' && SYNC_LISTS[d.type]) refetch(d.type);
  });
  // Hints sent while the terminal was away are lost (they are not stored): a new session
  // re-fetches everything once.
  conn.sessionListeners.add(() => {
    for (const t of Object.keys(SYNC_LISTS)) refetch(t);
  });

  const client = {
    coop,
    things,
    get status() {
      return conn.status;
    },
    get openId() {
      return conn.openId;
    },
    get self() {
      return conn.self ? { ...conn.self } : undefined;
    },
    get pendingCount() {
      return conn.pendingCount;
    },
    onConnectionState: (listener) => conn.onConnectionState(listener),
    on: (event, listener) => conn.on(event, listener),
    onSync(listener) {
      if (typeof listener !== 'function') throw new TypeError('listener must be a function');
      syncListeners.add(listener);
      return () => syncListeners.delete(listener);
    },
    request: (method, params, options) => conn.request(method, params, options),
    adminRequest: (method, params, options) => conn.adminRequest(method, params, options),
  };
  registry.set(client, { conn, coop });
  return client;
}

/** The default client, shared with mtl.coop. */
export const hearth = createClient();

/** The seed's global object: mtl.coop. */
export const mtl = { coop: hearth.coop };

export default mtl;
