// mtl.coop: the 19 calls of seed 000 in the seed's own shape, mapped onto the hub's MQTT API
// (docs/coop-api.md). Also the terminal's side of SPEC §4a: every command handed to the app is
// acknowledged (ackCommand, or the app's replyCommand), and a commandId already handed over is
// dropped when the hub offers it again.

import { hearthError } from './errors.js';
import { isObject } from './client.js';

const IDENT = /^[A-Za-z0-9._:-]{1,64}$/;
const FINAL_STATES = new Set(['replied', 'expired', 'timeout']);

/**
 * Runs a call in the seed's style: `success(res)` / `fail(err)` if given, and a Promise. A
 * callback that throws does not turn into a rejection (nor the reverse). With `fail` given the
 * Promise's rejection is marked handled, so callback-style code sees no unhandled rejection.
 */
export function settle(opts, promise, afterSuccess, afterFailure) {
  const success = isObject(opts) && typeof opts.success === 'function' ? opts.success : null;
  const fail = isObject(opts) && typeof opts.fail === 'function' ? opts.fail : null;
  promise.then(
    (res) => {
      if (success) callApp(success, res);
      // Events that arrived together with the answer (onResponse, onState) follow `success`.
      if (afterSuccess) afterSuccess(res);
    },
    (err) => {
      if (afterFailure) afterFailure(err);
      if (fail) callApp(fail, { code: err.code, message: err.message, method: err.method });
    },
  );
  if (fail || success) promise.catch(() => {});
  return promise;
}

/** Calls app code; an exception it throws is reported outside the library's stack. */
export function callApp(fn, arg) {
  try {
    fn(arg);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

function invalid(method, why) {
  return Promise.reject(hearthError('INVALID_REQUEST', `${method}: ${why}`, method));
}

function endpointOf(o) {
  return { appId: o.appId, userId: o.userId, clientIdentify: o.clientIdentify };
}

const ENDPOINT_KEYS = ['appId', 'userId', 'clientIdentify'];

const isIdent = (v) => typeof v === 'string' && IDENT.test(v);

function checkEndpoint(method, name, e) {
  if (isEndpoint(e)) return null; // the common case, without building a message
  if (!isObject(e)) return `${name} must be {appId, userId, clientIdentify}`;
  const k = ENDPOINT_KEYS.find((key) => !isIdent(e[key]));
  return `${name}.${k} must match [A-Za-z0-9._:-]{1,64}`;
}

function isEndpoint(e) {
  return isObject(e) && isIdent(e.appId) && isIdent(e.userId) && isIdent(e.clientIdentify);
}

/**
 * A bounded set of ids, the oldest forgotten first. A ring of the ids in arrival order says
 * which one goes: deleting the first entry of a Set over and over instead (`values().next()`)
 * leaves holes that V8 skips on every call, some 30 us per add once full.
 */
class RecentIds {
  constructor(capacity) {
    this.set = new Set();
    this.ring = [];
    this.pos = 0; // the oldest id, once the ring is full
    this.capacity = Math.max(1, capacity);
  }
  has(id) {
    return this.set.has(id);
  }
  add(id) {
    if (this.set.has(id)) return;
    if (this.ring.length < this.capacity) {
      this.ring.push(id);
    } else {
      this.set.delete(this.ring[this.pos]);
      this.ring[this.pos] = id;
      this.pos = (this.pos + 1) % this.capacity;
    }
    this.set.add(id);
  }
  /** A new capacity, keeping the newest ids that fit. */
  resize(capacity) {
    capacity = Math.max(1, capacity);
    if (capacity === this.capacity) return;
    const order = this.ring.slice(this.pos).concat(this.ring.slice(0, this.pos)); // oldest first
    const kept = order.slice(Math.max(0, order.length - capacity));
    for (const id of order.slice(0, order.length - kept.length)) this.set.delete(id);
    this.ring = kept;
    this.pos = 0;
    this.capacity = capacity;
  }
}

/**
 * A bounded map for events that arrive before the call that expects them has its id; the
 * oldest entry goes first when it is full (a ring of {id, seq}, as in RecentIds).
 */
class EarlyBox {
  constructor(capacity, ttlMs) {
    this.capacity = capacity;
    this.ttlMs = ttlMs;
    this.map = new Map(); // id -> {at, items: [], seq}
    this.ring = []; // [id, seq] in arrival order
    this.pos = 0;
    this.seq = 0;
  }
  put(id, item) {
    let e = this.map.get(id);
    if (!e) {
      e = { at: Date.now(), items: [], seq: ++this.seq };
      if (this.ring.length < this.capacity) {
        this.ring.push([id, e.seq]);
      } else {
        const [old, oldSeq] = this.ring[this.pos];
        const o = this.map.get(old);
        if (o && o.seq === oldSeq) this.map.delete(old); // not taken meanwhile, nor put again
        this.ring[this.pos] = [id, e.seq];
        this.pos = (this.pos + 1) % this.capacity;
      }
      this.map.set(id, e);
    }
    if (e.items.length < 16) e.items.push(item);
  }
  take(id) {
    const e = this.map.get(id);
    if (!e) return NONE;
    this.map.delete(id);
    return Date.now() - e.at <= this.ttlMs ? e.items : NONE;
  }
}
const NONE = Object.freeze([]);
// Replies kept until the hub has answered them: sent again if their command comes back, and
// after a call that got no answer, 1 s later, then 2, 4, ... up to every 30 s, 20 times at most.
const MAX_UNANSWERED_REPLIES = 1000;
const RETRIED_REPLY_ERRORS = new Set(['TIMEOUT', 'NOT_CONNECTED', 'UNAVAILABLE']);
const REPLY_RETRY_MS = 1000;
const REPLY_RETRY_MAX_MS = 30000;
const MAX_REPLY_ATTEMPTS = 20;

export class Coop {
  /** @param {import('./client.js').Connection} conn */
  constructor(conn) {
    this.conn = conn;
    this.commandHandler = null;
    this.accessHandler = null;
    this.waitingCommands = []; // handed over once receiveCommand(cb) is registered
    this.waitingRequests = [];
    this.seenCommands = new RecentIds(10000);
    this.seenRequests = new RecentIds(10000);
    this.sent = new Map(); // commandId -> {onResponse, onState, done, held, open}
    // Sent commands whose events can still matter: asked for (answer not in yet) or answered
    // and not yet final. Only while there is one are commandResponse/commandState parsed.
    this.asking = 0;
    this.open = 0;
    this.watching = false;
    this.onCommandResponse = (d) => this._onCommandEvent('commandResponse', d);
    this.onCommandState = (d) => this._onCommandEvent('commandState', d);
    this.requested = new Map(); // access request commandId -> onResponse
    this.early = new EarlyBox(1000, 60000);
    this.toAck = new Set();
    this.ackTimer = null;
    this.replied = new RecentIds(10000);
    // Replies not yet answered ok, by commandId: a command that comes back (the hub lost the
    // reply with a crash) gets the app's reply again, not a second hand-over.
    this.unansweredReplies = new Map();
    this.replyRetries = new Map(); // commandId -> the timer of its next attempt

    conn.on('command', (d) => this._onCommand(d));
    conn.on('accessRequest', (d) => this._onAccessRequest(d));
    conn.on('accessResponse', (d) => this._onAccessResponse(d));
    // A new session: acknowledgements that were not sent go out on it.
    conn.sessionListeners.add(() => this._scheduleAck());
    // The seed's calls work detached too (`const { login } = mtl.coop`).
    for (const name of Object.getOwnPropertyNames(Coop.prototype)) {
      if (name !== 'constructor' && !name.startsWith('_')) this[name] = this[name].bind(this);
    }
  }

  _configure() {
    const o = this.conn.options;
    const dedup = Math.max(1, o.dedupCapacity || 10000);
    this.seenCommands.resize(dedup);
    this.seenRequests.resize(dedup);
    this.ackDelayMs = Number.isFinite(o.ackDelayMs) ? Math.max(0, o.ackDelayMs) : 50;
  }

  // ------------------------------------------------------------------ seed §1-3

  /** Seed §1. */
  initialize(options) {
    this.conn.initialize(options);
    this._configure();
  }

  /** Seed §2. */
  login(options) {
    const o = isObject(options) ? options : {};
    return settle(o, this.conn.login(o.userId, o.password));
  }

  /** Seed §3. */
  logout(options) {
    const p = (async () => {
      await this._flushAcks();
      await this.conn.logout();
      if (this.ackTimer) clearTimeout(this.ackTimer);
      this.ackTimer = null;
      for (const timer of this.replyRetries.values()) clearTimeout(timer);
      this.replyRetries.clear();
      this.unansweredReplies.clear();
    })();
    return settle(options, p);
  }

  // ------------------------------------------------------------------ seed §4-5

  /** Seed §4. */
  getOpenId(options) {
    return settle(options, this._call('getOpenId', {}, (r) => {
      if (typeof r.openId !== 'string') throw 'openId';
      return { openId: r.openId };
    }));
  }

  /** Seed §5. */
  getDeviceInfo(options) {
    const o = isObject(options) ? options : {};
    if (typeof o.openId !== 'string' || !o.openId) return settle(o, invalid('getDeviceInfo', 'openId is required'));
    return settle(o, this._call('getDeviceInfo', { openId: o.openId }, (r) => {
      if (!isEndpoint(r)) throw 'an address';
      return r;
    }));
  }

  // ------------------------------------------------------------------ seed §6-9

  /** Seed §6: takes the target's appId/userId/clientIdentify at the top level. */
  requestAccessTo(options) {
    const o = isObject(options) ? options : {};
    const to = endpointOf(o);
    const bad = checkEndpoint('requestAccessTo', '', to);
    if (bad) return settle(o, invalid('requestAccessTo', bad.replace(/^\./, '')));
    const params = { to, allPermissions: o.allPermissions === undefined ? false : o.allPermissions };
    params.permissions = o.permissions === undefined ? [] : o.permissions;
    const onResponse = typeof o.onResponse === 'function' ? o.onResponse : null;
    const p = this._call('requestAccessTo', params, (r) => {
      if (typeof r.commandId !== 'string') throw 'a commandId';
      return r;
    });
    // onResponse is registered only after `success` ran: an accessResponse that arrives with
    // the answer (in the same read) waits in `early` instead of overtaking `success`.
    return settle(o, p, (r) => {
      if (!onResponse) return;
      this.requested.set(r.commandId, onResponse);
      for (const ev of this.early.take(`a:${r.commandId}`)) this._onAccessResponse(ev);
    });
  }

  /** Seed §7. */
  receiveAccessRequest(callback) {
    if (typeof callback !== 'function') throw hearthError('INVALID_REQUEST', 'receiveAccessRequest: callback must be a function');
    this.accessHandler = callback;
    const waiting = this.waitingRequests;
    this.waitingRequests = [];
    for (const r of waiting) callApp(callback, r);
  }

  /** Seed §8. */
  agreeAccessRequest(options) {
    return this._answerAccess('agreeAccessRequest', options);
  }

  /** Seed §9. */
  rejectAccessRequest(options) {
    return this._answerAccess('rejectAccessRequest', options);
  }

  _answerAccess(method, options) {
    const o = isObject(options) ? options : {};
    if (typeof o.commandId !== 'string' || !o.commandId) return settle(o, invalid(method, 'commandId is required'));
    const bad = checkEndpoint(method, 'to', o.to);
    if (bad) return settle(o, invalid(method, bad));
    return settle(o, this._call(method, { commandId: o.commandId, to: endpointOf(o.to) }));
  }

  // ------------------------------------------------------------------ seed §10-16

  /** Seed §10: `success` receives the array itself. */
  getMyDevices(options) {
    return settle(options, this._list('getMyDevices'));
  }

  /** Seed §11. */
  getAuthorizedDevices(options) {
    return settle(options, this._list('getAuthorizedDevices'));
  }

  /** Seed §12. */
  getAccessibleDevices(options) {
    return settle(options, this._list('getAccessibleDevices'));
  }

  /** Seed §13. */
  getAllDevices(options) {
    return settle(options, this._call('getAllDevices', {}, (r) => {
      if (!Array.isArray(r.authorizedDevices) || !Array.isArray(r.accessibleDevices)) throw 'authorizedDevices and accessibleDevices arrays';
      return { authorizedDevices: r.authorizedDevices, accessibleDevices: r.accessibleDevices };
    }));
  }

  _list(method) {
    return this._call(method, {}, (r) => {
      if (!Array.isArray(r.devices)) throw 'a devices array';
      return r.devices;
    });
  }

  /** Seed §14. */
  removeAuthorizedDevice(options) {
    return this._removeGrant('removeAuthorizedDevice', options);
  }

  /** Seed §15. */
  removeAccessibleDevice(options) {
    return this._removeGrant('removeAccessibleDevice', options);
  }

  _removeGrant(method, options) {
    const o = isObject(options) ? options : {};
    const bad = checkEndpoint(method, '', endpointOf(o));
    if (bad) return settle(o, invalid(method, bad.replace(/^\./, '')));
    return settle(o, this._call(method, endpointOf(o)));
  }

  /** Seed §16. */
  removeMyDevice(options) {
    const o = isObject(options) ? options : {};
    if (typeof o.clientIdentify !== 'string' || !IDENT.test(o.clientIdentify)) {
      return settle(o, invalid('removeMyDevice', 'clientIdentify must match [A-Za-z0-9._:-]{1,64}'));
    }
    return settle(o, this._call('removeMyDevice', { clientIdentify: o.clientIdentify }));
  }

  // ------------------------------------------------------------------ seed §17-19

  /** Seed §17. */
  sendCommand(options) {
    const o = isObject(options) ? options : {};
    if (typeof o.commandType !== 'string' || !IDENT.test(o.commandType)) {
      return settle(o, invalid('sendCommand', 'commandType must match [A-Za-z0-9._:-]{1,64}'));
    }
    const bad = checkEndpoint('sendCommand', 'to', o.to);
    if (bad) return settle(o, invalid('sendCommand', bad));
    if (o.commandParams !== undefined && !isObject(o.commandParams)) {
      return settle(o, invalid('sendCommand', 'commandParams must be an object'));
    }
    const params = { commandType: o.commandType, to: endpointOf(o.to), commandParams: o.commandParams || {} };
    const onResponse = typeof o.onResponse === 'function' ? o.onResponse : null;
    const onState = typeof o.onState === 'function' ? o.onState : null;
    const wants = !!(onResponse || onState);
    let asking = wants;
    const answered = () => {
      if (!asking) return;
      asking = false;
      this.asking -= 1;
      this._watchCommandEvents();
    };
    if (wants) {
      this.asking += 1;
      this._watchCommandEvents();
    }
    // The command's events that came before its answer (in `early`) or with it (held while
    // `success` runs first) are handed over after `success`.
    const release = (r) => {
      const entry = this.sent.get(r.commandId);
      if (!entry || !entry.held) return;
      const held = entry.held;
      entry.held = null;
      for (const [kind, ev] of this.early.take(`c:${r.commandId}`)) this._onCommandEvent(kind, ev);
      for (const [kind, ev] of held) this._onCommandEvent(kind, ev);
      if (FINAL_STATES.has(r.state)) {
        this.sent.delete(r.commandId);
        this._closeSent(entry);
      }
    };
    const p = this._call('sendCommand', params, (r) => {
      if (typeof r.commandId !== 'string') throw 'a commandId';
      if (wants) {
        this.sent.set(r.commandId, { onResponse, onState, done: false, held: [], open: true });
        this.open += 1;
        answered();
      }
      return r;
    });
    return settle(o, p, wants ? release : undefined, wants ? answered : undefined);
  }

  /**
   * Listens to commandResponse / commandState only while a command sent with onResponse or
   * onState can still use one: asked for (its answer, which carries the commandId, not in yet:
   * an event that comes first waits in `early`) or answered and not yet final. Otherwise the
   * events are not even parsed: they could only be dropped (a hub before aa0b444 sent a
   * commandState{replied} behind each commandResponse, on the round trip's way).
   */
  _watchCommandEvents() {
    const wanted = this.asking > 0 || this.open > 0;
    if (wanted === this.watching) return;
    this.watching = wanted;
    if (wanted) {
      this.conn.on('commandResponse', this.onCommandResponse);
      this.conn.on('commandState', this.onCommandState);
    } else {
      this.conn.off('commandResponse', this.onCommandResponse);
      this.conn.off('commandState', this.onCommandState);
    }
  }

  /** A sent command reached its final event: nothing more of it is awaited. */
  _closeSent(entry) {
    if (!entry.open) return;
    entry.open = false;
    this.open -= 1;
    this._watchCommandEvents();
  }

  /** Seed §18. */
  receiveCommand(callback) {
    if (typeof callback !== 'function') throw hearthError('INVALID_REQUEST', 'receiveCommand: callback must be a function');
    this.commandHandler = callback;
    const waiting = this.waitingCommands;
    this.waitingCommands = [];
    for (const c of waiting) this._handOver(c);
  }

  /** Seed §19. Acknowledges the command too (the hub counts a reply as confirmation). */
  replyCommand(options) {
    const o = isObject(options) ? options : {};
    if (typeof o.commandId !== 'string' || !IDENT.test(o.commandId)) {
      return settle(o, invalid('replyCommand', 'commandId is required'));
    }
    const bad = checkEndpoint('replyCommand', 'to', o.to);
    if (bad) return settle(o, invalid('replyCommand', bad));
    if (o.commandParams !== undefined && !isObject(o.commandParams)) {
      return settle(o, invalid('replyCommand', 'commandParams must be an object'));
    }
    // The reply confirms it: no separate ackCommand for this one.
    this.toAck.delete(o.commandId);
    this.replied.add(o.commandId);
    const params = { commandId: o.commandId, commandParams: o.commandParams || {}, to: endpointOf(o.to) };
    return settle(o, this._sendReply(params));
  }

  _sendReply(params, attempt = 0) {
    const id = params.commandId;
    const replies = this.unansweredReplies;
    this._cancelReplyRetry(id);
    replies.delete(id);
    if (replies.size >= MAX_UNANSWERED_REPLIES) {
      const oldest = replies.keys().next().value;
      this._cancelReplyRetry(oldest);
      replies.delete(oldest);
    }
    replies.set(id, params);
    const call = this._call('replyCommand', params);
    call.then(
      () => replies.delete(id), // the hub has it
      (e) => {
        if (replies.get(id) !== params) return; // replied again meanwhile
        // No answer (the hub down, restarting, or it lost the reply with a crash): again later,
        // until it answers. Any answer ends it: NOT_FOUND means the command has ended.
        if (e && RETRIED_REPLY_ERRORS.has(e.code) && attempt < MAX_REPLY_ATTEMPTS) {
          const delay = Math.min(REPLY_RETRY_MAX_MS, REPLY_RETRY_MS * 2 ** attempt);
          const timer = setTimeout(() => {
            this.replyRetries.delete(id);
            if (replies.get(id) === params) this._sendReply(params, attempt + 1).catch(() => {});
          }, delay);
          if (timer.unref) timer.unref();
          this.replyRetries.set(id, timer);
        } else {
          replies.delete(id);
        }
      },
    );
    return call;
  }

  _cancelReplyRetry(id) {
    const timer = this.replyRetries.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.replyRetries.delete(id);
  }

  // ------------------------------------------------------------------ incoming

  _onCommand(d) {
    if (typeof d.commandId !== 'string' || typeof d.commandType !== 'string' || !isEndpoint(d.from)) return;
    // Handed over before (the hub offers a command again until it is confirmed): confirm it
    // again, do not show it twice.
    if (this.seenCommands.has(d.commandId)) {
      const reply = this.unansweredReplies.get(d.commandId);
      if (reply) {
        this._sendReply(reply).catch(() => {}); // the app's reply again (it was lost with the hub)
      } else if (!this.replied.has(d.commandId)) {
        this._ack(d.commandId);
      }
      return;
    }
    const cmd = {
      commandId: d.commandId,
      commandParams: isObject(d.commandParams) ? d.commandParams : {},
      commandType: d.commandType,
      from: endpointOf(d.from),
    };
    if (!this.commandHandler) {
      if (!this.waitingCommands.some((c) => c.commandId === cmd.commandId)) {
        // Not confirmed while waiting: if the app never registers, the hub offers it again.
        if (this.waitingCommands.length < 10000) this.waitingCommands.push(cmd);
      }
      return;
    }
    this._handOver(cmd);
  }

  _handOver(cmd) {
    if (this.seenCommands.has(cmd.commandId)) return;
    this.seenCommands.add(cmd.commandId);
    callApp(this.commandHandler, cmd);
    if (!this.replied.has(cmd.commandId)) this._ack(cmd.commandId);
  }

  _ack(id) {
    this.toAck.add(id);
    this._scheduleAck();
  }

  _scheduleAck() {
    if (this.ackTimer || this.toAck.size === 0) return;
    // A short wait lets a quick replyCommand confirm the command by itself (one message
    // instead of two on the common path); acknowledgements that pile up go in one request.
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this._flushAcks();
    }, this.ackDelayMs === undefined ? 50 : this.ackDelayMs);
  }

  async _flushAcks() {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.toAck.size === 0 || this.conn.status.state !== 'connected') return;
    const ids = [...this.toAck].slice(0, 1000);
    for (const id of ids) this.toAck.delete(id);
    try {
      await this.conn.request('ackCommand', { commandIds: ids });
    } catch (e) {
      // Not confirmed (connection lost, timeout): the hub offers them again on the next
      // session and they are confirmed then; an INVALID_REQUEST would be ours to fix.
      if (e.code === 'NOT_CONNECTED' || e.code === 'TIMEOUT') {
        for (const id of ids) if (!this.replied.has(id)) this.toAck.add(id);
      }
    }
    this._scheduleAck();
  }

  _onAccessRequest(d) {
    if (typeof d.commandId !== 'string' || !isEndpoint(d.from)) return;
    // Addressed to another terminal (an event only the hub should send, but a user's other
    // terminals can publish into this tree): not ours.
    if (d.to !== undefined && !(isEndpoint(d.to) && this._isSelf(d.to))) return;
    if (this.seenRequests.has(d.commandId)) return;
    const cp = isObject(d.commandParams) ? d.commandParams : {};
    const req = {
      commandId: d.commandId,
      from: endpointOf(d.from),
      commandParams: {
        allPermissions: cp.allPermissions === true,
        permissions: Array.isArray(cp.permissions) ? cp.permissions.filter((x) => typeof x === 'string') : [],
      },
    };
    if (!this.accessHandler) {
      if (this.waitingRequests.length < 1000 && !this.waitingRequests.some((r) => r.commandId === req.commandId)) {
        this.waitingRequests.push(req);
      }
      return;
    }
    this.seenRequests.add(req.commandId);
    callApp(this.accessHandler, req);
  }

  _isSelf(e) {
    const s = this.conn.self;
    return !!s && e.userId === s.userId && e.clientIdentify === s.clientIdentify && e.appId === s.appId;
  }

  _onAccessResponse(d) {
    if (typeof d.commandId !== 'string' || typeof d.code !== 'number') return;
    const cb = this.requested.get(d.commandId);
    if (!cb) {
      this.early.put(`a:${d.commandId}`, d);
      return;
    }
    this.requested.delete(d.commandId); // one answer per request; repeats are dropped
    const res = { code: d.code, commandId: d.commandId };
    if (isEndpoint(d.from)) res.from = endpointOf(d.from);
    if (typeof d.message === 'string') res.message = d.message;
    callApp(cb, res);
  }

  _onCommandEvent(kind, d) {
    if (typeof d.commandId !== 'string') return;
    // commandState{replied} is the hint that accompanies commandResponse: the response wins
    // (and the hint, which follows it, need not wait in `early` for a sendCommand answer).
    if (kind === 'commandState' && d.state === 'replied') return;
    const entry = this.sent.get(d.commandId);
    if (!entry) {
      this.early.put(`c:${d.commandId}`, [kind, d]);
      return;
    }
    const final = kind === 'commandResponse' || (typeof d.state === 'string' && FINAL_STATES.has(d.state));
    if (entry.held) {
      entry.held.push([kind, d]); // the sendCommand answer is being handed to `success` first
      if (final) this._closeSent(entry); // what follows it is not needed (see below)
      return;
    }
    if (entry.done) return; // a state after the final one (see docs/coop-api.md) is ignored
    if (final) this._closeSent(entry);
    if (kind === 'commandResponse') {
      entry.done = true;
      this.sent.delete(d.commandId);
      if (entry.onResponse) {
        callApp(entry.onResponse, {
          commandId: d.commandId,
          commandParams: isObject(d.commandParams) ? d.commandParams : {},
          commandType: d.commandType,
          from: isEndpoint(d.from) ? endpointOf(d.from) : d.from,
          state: 'replied',
          stateCode: 3,
        });
      }
      return;
    }
    if (typeof d.state !== 'string') return;
    if (FINAL_STATES.has(d.state)) {
      entry.done = true;
      this.sent.delete(d.commandId);
    }
    if (entry.onState) {
      const ev = { commandId: d.commandId, commandType: d.commandType, state: d.state, stateCode: d.stateCode };
      if (isEndpoint(d.to)) ev.to = endpointOf(d.to);
      if (typeof d.reason === 'string') ev.reason = d.reason;
      callApp(entry.onState, ev);
    }
  }

  // ------------------------------------------------------------------ helpers

  /**
   * A request whose result `shape` checks (and maps) as the answer arrives, so that state it
   * records (a sent command's callbacks) is in place for the events right behind the answer; a
   * shape that throws a string makes the call fail BAD_RESPONSE naming what was missing.
   */
  _call(method, params, shape) {
    return this.conn._call(method, params, shape);
  }
}
