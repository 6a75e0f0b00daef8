// hearth.things: binding, sharing and device control (SPEC §3, §5; docs/binding-policy.md),
// each call in the same style as mtl.coop ({success, fail} and a Promise).

import { hearthError } from './errors.js';
import { isObject } from './client.js';
import { settle } from './coop.js';

const THINGS_EVENTS = [
  'deviceOnline',
  'deviceOffline',
  'bindingChanged',
  'shareInvited',
  'shareAccepted',
  'shareRejected',
  'provisionFailed',
  'deviceState',
  'controlReply',
];

// method -> [required string params, optional params, result mapping]
const CALLS = {
  provisionBegin: [[], ['deviceId']],
  bindDevice: [['deviceId'], []],
  shareDevice: [['deviceId', 'way'], ['guest']],
  scanShare: [['qrKey'], []],
  listShares: [[], ['direction'], (r) => list(r, 'shares')],
  acceptShare: [['sharingId'], []],
  rejectShare: [['sharingId'], []],
  cancelShare: [['sharingId'], []],
  removeMember: [['deviceId', 'userId'], []],
  unbindDevice: [['deviceId'], []],
  getBoundDevices: [[], [], (r) => list(r, 'devices')],
  getDeviceDetail: [['deviceId'], []],
  controlDevice: [['deviceId', 'command'], ['params']],
};

function list(r, field) {
  if (!Array.isArray(r[field])) throw field;
  return r[field];
}

export class Things {
  /** @param {import('./client.js').Connection} conn */
  constructor(conn) {
    this.conn = conn;
    for (const [method, [required, optional, map]] of Object.entries(CALLS)) {
      this[method] = (options) => {
        const o = isObject(options) ? options : {};
        const params = {};
        for (const k of required) {
          if (typeof o[k] !== 'string' || !o[k]) {
            return settle(o, Promise.reject(hearthError('INVALID_REQUEST', `${method}: ${k} is required`, method)));
          }
          params[k] = o[k];
        }
        for (const k of optional) if (o[k] !== undefined) params[k] = o[k];
        const p = conn.request(method, params, { timeout: o.timeout }).then((r) => {
          if (!map) return r;
          try {
            return map(r);
          } catch (what) {
            throw hearthError('BAD_RESPONSE', `${method}: the hub's result lacks ${what}`, method);
          }
        });
        return settle(o, p);
      };
    }
  }

  /** Subscribes to a things event (deviceOnline, bindingChanged, ...); returns unsubscribe. */
  on(event, listener) {
    if (typeof event !== 'string' || !event) throw hearthError('INVALID_REQUEST', 'on: event name required');
    return this.conn.on(event, listener);
  }
}

export { THINGS_EVENTS };
