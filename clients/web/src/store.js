// What the page knows, kept current by hub events. Views read it and listen for changes; the
// hub stays the authority (every list is re-fetched after a reconnect or a sync hint).

import {explain} from './errors.js';

const listeners = new Map(); // topic -> Set<fn>

export const store = {
  client: null,
  userId: '',
  isAdmin: false,
  status: {state: 'disconnected', reason: 0, reasonName: 'OK'},
  devices: new Map(), // deviceId -> BoundDevice (+ state, lastReply)
  devicesLoaded: false,
  devicesError: '',
  invitations: [], // listShares toMe, pending
  accessRequests: [], // AccessRequestEvent awaiting an answer
  commandsSent: new Map(), // commandId -> {commandType, to, state, stateCode, reply, at}
  commandsReceived: [], // Command, newest first, with .replied
  notices: new Map(), // deviceId -> sentence: why the device left this page
};

/** Listens to a topic ('devices', 'device:<id>', 'members:<id>', 'status', ...). */
export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic)?.delete(fn);
}

export function emit(topic, data) {
  for (const fn of [...(listeners.get(topic) || [])]) {
    try {
      fn(data);
    } catch (e) {
      // A view's listener failing must not stop the others; the view shows its own errors.
      console.warn('listener of', topic, 'failed:', e);
    }
  }
}

let refreshing = null;
let again = false;

/** Re-fetches my devices (coalesced: at most one fetch in flight, one queued). */
export function refreshDevices() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const list = await store.client.things.getBoundDevices();
      const next = new Map();
      for (const d of list) {
        const old = store.devices.get(d.deviceId);
        next.set(d.deviceId, {...old, ...d});
      }
      store.devices = next;
      store.devicesLoaded = true;
      store.devicesError = '';
    } catch (err) {
      store.devicesError = explain(err);
    } finally {
      refreshing = null;
    }
    emit('devices');
    if (again) {
      again = false;
      return refreshDevices();
    }
  })();
  return refreshing;
}

export async function refreshInvitations() {
  try {
    const list = await store.client.things.listShares({direction: 'toMe'});
    store.invitations = list.filter((s) => s.state === 'pending' && s.expiresAt > Date.now());
  } catch {
    // the invitations page shows its own error when it fetches
  }
  emit('invitations');
}

const REASONS = {
  removed: () => 'Its owner removed you from this device.',
  preempted: () => 'Someone set this device up again and took it over (WiFi devices go to whoever provisions them).',
  ownerUnbound: () => 'Its owner unbound the device, for everyone.',
  unbound: () => 'You unbound this device (from another window or phone).',
  reset: () => 'The device was reset to factory settings.',
  adminUnbind: () => 'The installer unbound this device.',
};

/** Wires the client's events into the store. Returns a function that unhooks them. */
export function attach(client) {
  const offs = [];
  const onEvt = (name, fn) => offs.push(client.things.on(name, fn));

  const setOnline = (online) => (data) => {
    const d = store.devices.get(data.deviceId);
    if (d) {
      d.online = online;
      emit('devices');
      emit('device:' + data.deviceId);
    }
  };
  onEvt('deviceOnline', setOnline(true));
  onEvt('deviceOffline', setOnline(false));
  onEvt('deviceState', (data) => {
    const d = store.devices.get(data.deviceId);
    if (d) {
      d.state = {...d.state, ...data.state};
      emit('device:' + data.deviceId);
      emit('devices');
    }
  });
  onEvt('controlReply', (data) => {
    const d = store.devices.get(data.deviceId);
    if (d) {
      d.lastReply = {...data, at: Date.now()};
      if (data.ok && data.result && typeof data.result === 'object') {
        d.state = {...d.state, ...(data.result.state || data.result)};
      }
      emit('device:' + data.deviceId);
      emit('devices');
    }
  });
  onEvt('bindingChanged', (data) => {
    const why = REASONS[data.reason];
    if (why) {
      store.notices.set(data.deviceId, why(data));
    }
    if (data.reason === 'bound') store.notices.delete(data.deviceId);
    emit('binding', data);
    emit('members:' + data.deviceId, data);
    refreshDevices().then(() => emit('device:' + data.deviceId));
  });
  onEvt('shareInvited', (data) => {
    emit('toast', `${data.fromUser} invites you to share “${data.name || data.deviceId}”.`);
    refreshInvitations();
  });
  onEvt('shareAccepted', (data) => {
    emit('toast', `${data.userId} accepted your share of ${data.deviceId}.`);
    emit('members:' + data.deviceId, data);
    emit('shares', {...data, accepted: true});
  });
  onEvt('shareRejected', (data) => {
    emit('toast', `${data.userId} declined your share of ${data.deviceId}.`);
    emit('shares', data);
  });
  onEvt('provisionFailed', (data) => emit('provisionFailed', data));

  // Cooperation (mtl.coop): access requests and commands addressed to this browser.
  client.coop.receiveAccessRequest((req) => {
    store.accessRequests = [req, ...store.accessRequests.filter((r) => r.commandId !== req.commandId)];
    emit('toast', `${req.from.userId}'s ${req.from.clientIdentify} asks for access to this browser.`);
    emit('coop');
  });
  client.coop.receiveCommand((cmd) => {
    store.commandsReceived = [{...cmd, at: Date.now()}, ...store.commandsReceived].slice(0, 50);
    emit('coop');
  });
  offs.push(client.on('commandState', (data) => {
    const c = store.commandsSent.get(data.commandId);
    if (c && c.stateCode !== 3) Object.assign(c, {state: data.state, stateCode: data.stateCode, reason: data.reason});
    emit('coop');
  }));
  offs.push(client.onSync(() => emit('coop')));

  let wasDown = false;
  offs.push(
    client.onConnectionState((s) => {
      store.status = s;
      emit('status', s);
      if (s.state === 'reconnecting') wasDown = true;
      if (s.state === 'connected' && wasDown) {
        // Events may have been missed while away: re-read what the page shows.
        wasDown = false;
        refreshDevices();
        refreshInvitations();
        emit('coop');
        emit('reconnected');
      }
    }),
  );
  return () => offs.forEach((off) => off());
}
