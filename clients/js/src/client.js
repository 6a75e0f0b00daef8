// The connection to a hub: MQTT 5 session, presence + Will, hello on every (re)connect,
// requests with ids + Response Topic / Correlation Data, per-request timeouts, capped back-off
// reconnects, connection states with reason codes, event dispatch. The seed API (coop.js) and
// hearth.things (things.js) are thin layers over `request()` and `on()`.

import mqtt from 'mqtt';

import { hearthError } from './errors.js';
import { parsePairingLink } from './pairing.js';
import { fetchPinnedCa, pemMatchesPin } from './pin.js';
import { presenceHolder } from './takeover.js';

export const ConnectionState = Object.freeze({
  connecting: 0,
  connected: 1,
  reconnecting: 2,
  disconnected: 100,
});

export const ReasonCode = Object.freeze({
  OK: 0,
  LOGIN: 1,
  LOGOUT: 2,
  NETWORK: 3,
  NOT_AUTHORIZED: 4,
  KICKED: 5,
  SERVER_UNAVAILABLE: 6,
  PROTOCOL: 7,
  HELLO_FAILED: 8,
  CA_MISMATCH: 9,
});
const reasonName = Object.fromEntries(Object.entries(ReasonCode).map(([k, v]) => [v, k]));

const IDENT = /^[A-Za-z0-9._:-]{1,64}$/;
const isNode = typeof process !== 'undefined' && !!(process.versions && process.versions.node);
const textDecoder = new TextDecoder();
const NodeBuffer = isNode && typeof Buffer === 'function' ? Buffer : null;

/** UTF-8 text of a payload: Node's Buffer decodes a short one in a fraction of TextDecoder's time. */
function utf8(bytes) {
  return NodeBuffer && NodeBuffer.isBuffer(bytes) ? bytes.toString('utf8') : textDecoder.decode(bytes);
}

const DEFAULTS = {
  requestTimeout: 10000,
  keepalive: 30,
  reconnectMinMs: 500,
  reconnectMaxMs: 30000,
  maxPending: 20000,
};

/** True for a plain object (not null, not an array). */
export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function randomId() {
  const c = globalThis.crypto;
  if (c && c.getRandomValues) {
    const b = new Uint8Array(6);
    c.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }
  return Math.random().toString(16).slice(2, 14);
}

/**
 * One terminal's connection to a hub. Not part of the public surface by itself: use
 * createClient() (index.js), which wraps it with `coop` and `things`.
 */
export class Connection {
  constructor() {
    this.options = null;
    this.mq = null;
    this.self = undefined;
    this.topics = null; // set by login (_setTopics)
    this.openId = undefined;
    this.status = this._statusOf('disconnected', ReasonCode.OK);
    this.pending = new Map(); // id -> {method, resolve, reject, timer}
    this.stateListeners = new Set();
    this.eventListeners = new Map(); // event name -> Set(listener)
    this.sessionListeners = new Set(); // called after each successful hello (re)connect
    this.idPrefix = randomId();
    this.nextId = 1;
    this.loggedIn = false; // between login() and logout()
    this.attempt = 0;
    this.reconnectTimer = null;
    this.connectSeq = 0; // bumps on each new mqtt client: stale callbacks are ignored
    this.pinnedCaPem = null;
    this.adminSubscribed = false;
  }

  // ---------------------------------------------------------------- configuration

  /** Stores the seed's initialize() options (validated); no network. */
  initialize(opts) {
    if (!isObject(opts)) throw hearthError('INVALID_REQUEST', 'initialize: options object required');
    if (typeof opts.appId !== 'string' || !IDENT.test(opts.appId)) {
      throw hearthError('INVALID_REQUEST', 'initialize: appId must match [A-Za-z0-9._:-]{1,64}');
    }
    if (!opts.pairing && !opts.url && (typeof opts.server !== 'string' || !opts.server)) {
      throw hearthError('INVALID_REQUEST', 'initialize: server is required');
    }
    if (opts.clientIdentify !== undefined && !IDENT.test(String(opts.clientIdentify))) {
      throw hearthError('INVALID_REQUEST', 'initialize: clientIdentify must match [A-Za-z0-9._:-]{1,64}');
    }
    const o = { ...DEFAULTS, ...opts };
    for (const k of ['requestTimeout', 'keepalive', 'reconnectMinMs', 'reconnectMaxMs', 'maxPending']) {
      if (!Number.isFinite(o[k]) || o[k] < 0) throw hearthError('INVALID_REQUEST', `initialize: ${k} must be a number >= 0`);
    }
    if (o.pairing) o.pair = parsePairingLink(o.pairing);
    o.clientIdentify = o.clientIdentify || `hc-${randomId()}`;
    this.options = o;
    this.pinnedCaPem = null;
  }

  /** The broker URL initialize() describes. */
  url() {
    const o = this.options;
    if (o.url) return o.url;
    let host = o.pair ? o.pair.host : o.server;
    if (/^(mqtts?|wss?):\/\//.test(host)) return host;
    if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
    const ssl = o.serverEnableSSL !== false;
    let transport = o.transport;
    if (!transport) {
      // A pairing link names the front door's https port, which also serves wss:///mqtt.
      if (!isNode || o.pair) transport = ssl || o.pair ? 'wss' : 'ws';
      else transport = ssl ? 'mqtts' : 'mqtt';
    }
    if (!isNode && transport !== 'wss' && transport !== 'ws') {
      throw hearthError('INVALID_REQUEST', `a browser connects with wss:// only (transport ${transport})`);
    }
    let port;
    if (o.pair && (transport === 'wss' || transport === 'ws')) port = o.pair.port;
    else if (transport === 'wss' || transport === 'ws') port = o.wssPort || 8443;
    else if (transport === 'mqtts') port = o.serverSSLPort || 8883;
    else port = o.serverPort || 1883;
    const path = transport === 'wss' || transport === 'ws' ? '/mqtt' : '';
    return `${transport}://${host}:${port}${path}`;
  }

  base() {
    return this.topics.base;
  }

  /**
   * The topic strings of this login, built once (the per-message work compares against them):
   * the terminal's tree, its res/ and evt/ prefixes, the admin answers' prefix, and per method
   * the request and response topics.
   */
  _setTopics(userId, clientIdentify) {
    const base = `hearth/v1/u/${userId}/${clientIdentify}`;
    this.topics = {
      base,
      res: `${base}/res/`,
      evt: `${base}/evt/`,
      presence: `${base}/presence`,
      adminRes: `hearth/v1/admin/res/${clientIdentify}/`,
      methods: new Map(), // method -> {req, res}
    };
  }

  _methodTopics(method) {
    const t = this.topics;
    let m = t.methods.get(method);
    if (!m) {
      m = { req: `${t.base}/req/${method}`, res: `${t.res}${method}` };
      if (t.methods.size < 256) t.methods.set(method, m);
    }
    return m;
  }

  // ---------------------------------------------------------------- states

  _statusOf(state, reason, message, attempt) {
    const s = { state, stateCode: ConnectionState[state], reason, reasonName: reasonName[reason] };
    if (message) s.message = message;
    if (attempt) s.attempt = attempt;
    return s;
  }

  _setState(state, reason, message, attempt) {
    const prev = this.status;
    if (prev.state === state && prev.reason === reason && prev.attempt === attempt) return;
    this.status = this._statusOf(state, reason, message, attempt);
    for (const l of [...this.stateListeners]) {
      try {
        l(this.status);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  onConnectionState(listener) {
    if (typeof listener !== 'function') throw hearthError('INVALID_REQUEST', 'listener must be a function');
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  on(event, listener) {
    if (typeof listener !== 'function') throw hearthError('INVALID_REQUEST', 'listener must be a function');
    let set = this.eventListeners.get(event);
    if (!set) this.eventListeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Removes a listener added with on(). */
  off(event, listener) {
    const set = this.eventListeners.get(event);
    if (set) set.delete(listener);
  }

  _emit(event, data, envelope) {
    const set = this.eventListeners.get(event);
    if (!set || set.size === 0) return;
    // The common case, one listener, without copying the set (a copy keeps listeners added or
    // removed by a listener out of this round).
    if (set.size === 1) return callListener(set.values().next().value, data, envelope);
    for (const l of [...set]) callListener(l, data, envelope);
  }

  // ---------------------------------------------------------------- login / logout

  /**
   * Connects as userId, sets presence + Will, subscribes, says hello. Resolves once hello
   * succeeded; rejects NOT_AUTHORIZED, NOT_CONNECTED (could not connect within
   * connectTimeout), TIMEOUT or the hub's hello error.
   */
  login(userId, password) {
    if (!this.options) return Promise.reject(hearthError('NOT_CONNECTED', 'login: call initialize first'));
    if (typeof userId !== 'string' || !IDENT.test(userId)) {
      return Promise.reject(hearthError('INVALID_REQUEST', 'login: userId must match [A-Za-z0-9._:-]{1,64}'));
    }
    if (typeof password !== 'string') return Promise.reject(hearthError('INVALID_REQUEST', 'login: password must be a string'));
    if (this.loggedIn) this._teardown(ReasonCode.LOGIN, 'logged in again');
    this.self = { appId: this.options.appId, userId, clientIdentify: this.options.clientIdentify };
    this._setTopics(userId, this.options.clientIdentify);
    this.credentials = { userId, password };
    this.loggedIn = true;
    // This login's id on the retained presence (takeover.js); hadSession once it connected.
    this.instance = `${randomId()}${randomId()}`;
    this.presenceProps = { userProperties: { instance: this.instance } };
    this.hadSession = false;
    this.attempt = 0;
    this.adminSubscribed = false;
    return new Promise((resolve, reject) => {
      const timeout = this.options.connectTimeout || this.options.requestTimeout;
      const timer = setTimeout(() => {
        this.loginWaiter = null;
        const why = this.status.reason === ReasonCode.CA_MISMATCH ? 'CA_MISMATCH' : 'NOT_CONNECTED';
        this._teardown(this.status.reason === ReasonCode.OK ? ReasonCode.NETWORK : this.status.reason, 'login timed out');
        reject(hearthError(why === 'CA_MISMATCH' ? 'CA_MISMATCH' : 'NOT_CONNECTED', `login: could not connect to ${this._safeUrl()} within ${timeout} ms${this.lastError ? ` (${this.lastError})` : ''}`));
      }, timeout);
      this.loginWaiter = {
        resolve: () => {
          clearTimeout(timer);
          this.loginWaiter = null;
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          this.loginWaiter = null;
          reject(e);
        },
      };
      this._setState('connecting', ReasonCode.LOGIN);
      this._connect();
    });
  }

  _safeUrl() {
    try {
      return this.url();
    } catch {
      return '(bad address)';
    }
  }

  async _connect() {
    const seq = ++this.connectSeq;
    const o = this.options;
    let url;
    try {
      url = this.url();
    } catch (e) {
      return this._fatal(ReasonCode.PROTOCOL, e);
    }
    const mqttOpts = {
      protocolVersion: 5,
      clientId: this.self.clientIdentify,
      username: this.credentials.userId,
      password: this.credentials.password,
      clean: true,
      keepalive: o.keepalive,
      reconnectPeriod: 0, // the back-off below owns reconnecting
      connectTimeout: Math.max(1000, o.connectTimeout || o.requestTimeout),
      resubscribe: false, // subscribed again on every connect (clean start)
      queueQoSZero: false,
      // mqtt.js's default keeps its timers in a Web Worker made from a blob: URL, which a strict
      // Content-Security-Policy (the front door's: worker-src 'self') refuses with a console
      // error. Plain timers do; a page hidden for long may see its keepalive late and reconnect.
      timerVariant: 'native',
      will: {
        topic: this.topics.presence,
        payload: 'offline',
        qos: 1,
        retain: true,
        properties: this.presenceProps,
      },
      ...(o.mqttOptions || {}),
    };
    if (isNode && /^(mqtts|wss):/.test(url)) {
      if (o.pair) {
        try {
          if (!this.pinnedCaPem) {
            if (o.ca) {
              const pems = Array.isArray(o.ca) ? o.ca : [o.ca];
              for (const pem of pems) if (await pemMatchesPin(pem, o.pair.caSha256)) this.pinnedCaPem = pem;
              if (!this.pinnedCaPem) throw hearthError('CA_MISMATCH', 'the given ca does not have the paired fingerprint');
            } else {
              const u = new URL(url.replace(/^wss:/, 'https:').replace(/^mqtts:/, 'https:'));
              this.pinnedCaPem = await fetchPinnedCa(u.hostname.replace(/^\[(.*)\]$/, '$1'), Number(u.port), o.pair.caSha256, mqttOpts.connectTimeout);
            }
          }
        } catch (e) {
          if (seq !== this.connectSeq || !this.loggedIn) return;
          if (e.code === 'CA_MISMATCH') return this._fatal(ReasonCode.CA_MISMATCH, e);
          this.lastError = e.message;
          return this._scheduleReconnect(ReasonCode.NETWORK, e.message);
        }
        if (seq !== this.connectSeq || !this.loggedIn) return;
        mqttOpts.ca = [this.pinnedCaPem];
        mqttOpts.rejectUnauthorized = true;
        // The pinned CA is the hub's own: whatever it signed is the hub, whichever address the
        // pairing link used (its addresses change; the CA does not).
        mqttOpts.checkServerIdentity = () => undefined;
        mqttOpts.wsOptions = { ca: [this.pinnedCaPem], rejectUnauthorized: true, checkServerIdentity: () => undefined };
      } else if (o.ca) {
        mqttOpts.ca = Array.isArray(o.ca) ? o.ca : [o.ca];
      }
    }

    if (this.hadSession) {
      // Reconnecting: first make sure no other instance took this clientIdentify meanwhile.
      let holder;
      try {
        holder = await presenceHolder(mqtt, url, mqttOpts, `${this.self.clientIdentify}~${randomId()}`, this.topics.presence, mqttOpts.connectTimeout);
      } catch (e) {
        if (seq !== this.connectSeq || !this.loggedIn) return;
        this.lastError = e && e.message;
        if (isRefusal(e)) return this._fatal(ReasonCode.NOT_AUTHORIZED, refusalError(this.credentials.userId, e));
        return this._scheduleReconnect(ReasonCode.NETWORK, this.lastError);
      }
      if (seq !== this.connectSeq || !this.loggedIn) return;
      if (holder && holder !== this.instance) {
        return this._fatal(ReasonCode.KICKED, hearthError('NOT_CONNECTED', `another login took clientIdentify ${this.self.clientIdentify} (its presence names another instance)`));
      }
    }

    let mq;
    try {
      mq = mqtt.connect(url, mqttOpts);
    } catch (e) {
      return this._fatal(ReasonCode.PROTOCOL, e);
    }
    this.mq = mq;
    noDelay(mq);
    const live = () => seq === this.connectSeq && this.mq === mq;

    mq.on('connect', () => {
      if (!live()) return;
      this._onConnected(mq, live).catch(() => {});
    });
    mq.on('message', (topic, payload, packet) => {
      if (!live()) return;
      try {
        this._onMessage(topic, payload, packet);
      } catch (e) {
        // A message we cannot make sense of is dropped; it must not take the session down.
        this.lastError = `dropped a message on ${topic}: ${e.message}`;
      }
    });
    mq.on('error', (err) => {
      if (!live()) return;
      this.lastError = err && err.message;
      const rc = err && typeof err.code === 'number' ? err.code : undefined;
      if (isRefusal(err)) return this._fatal(ReasonCode.NOT_AUTHORIZED, refusalError(this.credentials.userId, err));
      if (rc === 136 || rc === 137 || rc === 3) {
        this._disconnectReason = ReasonCode.SERVER_UNAVAILABLE;
      }
    });
    mq.on('disconnect', (packet) => {
      if (!live()) return;
      const rc = packet && packet.reasonCode;
      if (rc === 142) this._disconnectReason = ReasonCode.KICKED;
      else if (rc === 137 || rc === 136) this._disconnectReason = ReasonCode.SERVER_UNAVAILABLE;
      else if (rc !== undefined && rc >= 128) this._disconnectReason = ReasonCode.PROTOCOL;
    });
    mq.on('close', () => {
      if (!live()) return;
      this._onClosed();
    });
  }

  async _onConnected(mq, live) {
    const base = this.base();
    try {
      await mq.subscribeAsync([`${base}/res/#`, `${base}/evt/#`], { qos: 1 });
      if (!live()) return;
      if (this.adminSubscribed) await mq.subscribeAsync(`hearth/v1/admin/res/${this.self.clientIdentify}/#`, { qos: 1 });
      await mq.publishAsync(this.topics.presence, 'online', { qos: 1, retain: true, properties: this.presenceProps });
      if (!live()) return;
      const hello = { appId: this.options.appId };
      if (this.options.deviceModel !== undefined) hello.deviceModel = String(this.options.deviceModel);
      if (this.options.deviceName !== undefined) hello.deviceName = String(this.options.deviceName);
      const r = await this._send('hello', hello, {}, mq);
      if (!live()) return;
      if (!isObject(r) || typeof r.openId !== 'string') {
        throw hearthError('BAD_RESPONSE', 'hello: the hub answered without an openId', 'hello');
      }
      this.openId = r.openId;
    } catch (e) {
      if (!live()) return;
      if (e.code === 'NOT_CONNECTED' || e.code === 'TIMEOUT') {
        // The connection dropped (or the hub is not there yet): the close handler retries.
        this.lastError = e.message;
        if (e.code === 'TIMEOUT') mq.end(true);
        return;
      }
      return this._fatal(ReasonCode.HELLO_FAILED, e);
    }
    // The back-off starts again only once a session has lasted (see _onClosed).
    this.connectedAt = Date.now();
    this.hadSession = true;
    this._disconnectReason = undefined;
    this._setState('connected', ReasonCode.OK);
    if (this.loginWaiter) this.loginWaiter.resolve();
    for (const l of [...this.sessionListeners]) {
      try {
        l();
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  _onClosed() {
    // Calls in flight stay pending: the hub may have got them (their outcome is unknown), and
    // they end with their answer or TIMEOUT, never hang. New calls fail NOT_CONNECTED at once.
    if (!this.loggedIn) return;
    // A session that ends soon after it began does not reset the back-off. A close can also be
    // a takeover by another login with this clientIdentify (mosquitto sends no DISCONNECT
    // 0x8E): the reconnect reads the retained presence first and ends KICKED (takeover.js).
    if (this.connectedAt && Date.now() - this.connectedAt >= 10000) this.attempt = 0;
    this.connectedAt = 0;
    const reason = this._disconnectReason || ReasonCode.NETWORK;
    if (reason === ReasonCode.KICKED) {
      return this._fatal(ReasonCode.KICKED, hearthError('NOT_CONNECTED', 'another connection logged in with this clientIdentify'));
    }
    this._scheduleReconnect(reason, this.lastError);
  }

  _scheduleReconnect(reason, message) {
    if (!this.loggedIn || this.reconnectTimer) return;
    this.attempt += 1;
    const o = this.options;
    const cap = Math.max(o.reconnectMinMs, o.reconnectMaxMs);
    const base = Math.min(cap, o.reconnectMinMs * 2 ** Math.min(20, this.attempt - 1));
    // Jitter (50-100 %) so that a hub restart does not bring every terminal back at once.
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this._setState(this.loginWaiter && this.attempt === 1 && this.status.state === 'connecting' ? 'connecting' : 'reconnecting', reason, message, this.attempt);
    const old = this.mq;
    this.mq = null;
    if (old) old.end(true);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.loggedIn) this._connect();
    }, delay);
  }

  _fatal(reason, err) {
    if (!err || typeof err.code !== 'string') {
      err = hearthError('NOT_CONNECTED', `cannot connect to ${this._safeUrl()}: ${err && err.message}`);
    }
    this._teardown(reason, err.message);
    if (this.loginWaiter) this.loginWaiter.reject(err);
  }

  /**
   * Stops the session machinery (no more reconnects; callbacks of the current connection are
   * ignored from now on) and returns the MQTT client, which the caller ends.
   */
  _detach() {
    this.loggedIn = false;
    this.connectSeq += 1;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const mq = this.mq;
    this.mq = null;
    return mq;
  }

  /** Ends the session without publishing anything (state disconnected). */
  _teardown(reason, message) {
    const mq = this._detach();
    if (mq) mq.end(true);
    this._failPending('NOT_CONNECTED', message || 'disconnected');
    this._setState('disconnected', reason, message);
  }

  /** Publishes presence `offline` (retained), then disconnects cleanly. Never rejects. */
  async logout() {
    if (!this.loggedIn) {
      this._setState('disconnected', ReasonCode.LOGOUT);
      return;
    }
    const mq = this._detach();
    this._failPending('NOT_CONNECTED', 'logged out');
    if (mq && mq.connected) {
      try {
        await withTimeout(mq.publishAsync(this.topics.presence, 'offline', { qos: 1, retain: true, properties: this.presenceProps }), this.options.requestTimeout);
      } catch {
        // The Will says offline anyway if the broker never got this.
      }
      // A clean DISCONNECT; if the broker went away meanwhile the callback may never come.
      await withTimeout(new Promise((resolve) => mq.end(false, {}, () => resolve())), 2000).catch(() => mq.end(true));
    } else if (mq) {
      mq.end(true);
    }
    this._setState('disconnected', ReasonCode.LOGOUT);
  }

  // ---------------------------------------------------------------- requests

  get pendingCount() {
    return this.pending.size;
  }

  /**
   * Publishes req/METHOD and resolves with the result object; rejects with the hub's error or
   * TIMEOUT / NOT_CONNECTED / BAD_RESPONSE / LIMIT_REACHED. `shape(result)` (the library's own
   * calls) runs as the answer arrives, before any later message is handled; it returns what the
   * call resolves with, or throws a string naming what the result lacks (BAD_RESPONSE).
   */
  request(method, params, options, shape) {
    if (typeof method !== 'string' || !/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(method)) {
      return Promise.reject(hearthError('INVALID_REQUEST', `not a method name: ${String(method).slice(0, 64)}`));
    }
    if (params !== undefined && !isObject(params)) {
      return Promise.reject(hearthError('INVALID_REQUEST', `${method}: params must be an object`, method));
    }
    return this._call(method, params || {}, shape, options || NO_OPTIONS);
  }

  /** request() for the library's own calls: a known method name and a params object. */
  _call(method, params, shape, options = NO_OPTIONS) {
    if (!this._connected()) return this._notConnected(method);
    return this._send(method, params, options, this.mq, undefined, shape);
  }

  _connected() {
    return !!this.mq && this.status.state === 'connected';
  }

  _notConnected(method) {
    return Promise.reject(hearthError('NOT_CONNECTED', `${method}: not connected to the hub (${this.status.state})`, method));
  }

  adminRequest(method, params, options) {
    if (!this._connected()) return this._notConnected(method);
    if (typeof method !== 'string' || !/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(method)) {
      return Promise.reject(hearthError('INVALID_REQUEST', `not a method name: ${String(method).slice(0, 64)}`));
    }
    const mq = this.mq;
    const resBase = `hearth/v1/admin/res/${this.self.clientIdentify}`;
    const ready = this.adminSubscribed
      ? Promise.resolve()
      : mq.subscribeAsync(`${resBase}/#`, { qos: 1 }).then(
          (granted) => {
            // The broker refuses the subscription (SUBACK 0x80+) to accounts without admin rights.
            if (!Array.isArray(granted) || granted.some((g) => !g || g.qos >= 128)) {
              throw hearthError('FORBIDDEN', `${method}: ${this.self.userId} is not an admin account (the broker refused hearth/v1/admin/)`, method);
            }
            this.adminSubscribed = true;
          },
          (e) => {
            // mqtt.js rejects a SUBACK with a failure reason code (0x87 not authorized).
            if ((e && e.code === 135) || /not authori/i.test(String(e && e.message))) {
              throw hearthError('FORBIDDEN', `${method}: ${this.self.userId} is not an admin account (the broker refused hearth/v1/admin/)`, method);
            }
            throw hearthError('NOT_CONNECTED', `${method}: ${e.message}`, method);
          },
        );
    return ready.then(() =>
      this._send(method, params || {}, options || {}, mq, { req: `hearth/v1/admin/req/${method}`, res: `${resBase}/${method}` }),
    );
  }

  _send(method, params, options, mq, admin, shape) {
    if (this.pending.size >= this.options.maxPending) {
      return Promise.reject(hearthError('LIMIT_REACHED', `${method}: ${this.pending.size} calls already await an answer (maxPending)`, method));
    }
    const id = `${this.idPrefix}-${this.nextId++}`;
    const topics = admin || this._methodTopics(method);
    const timeout = Number.isFinite(options.timeout) && options.timeout > 0 ? options.timeout : this.options.requestTimeout;
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify({ id, params });
      // A publish error (the connection closed under it) says nothing certain: the broker may
      // have the request. The call ends with its answer or TIMEOUT.
      const stream = mq.stream;
      const corked = stream ? stream.writableCorked : 0;
      mq.publish(topics.req, payload, { qos: 1, properties: { responseTopic: topics.res, correlationData: encodeId(id) } }, ignore);
      flush(mq, stream, corked);
      // The answer comes in a later turn of the event loop, so the bookkeeping can follow the
      // write (it is off the request's way to the hub).
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(hearthError('TIMEOUT', `${method}: no answer from the hub within ${timeout} ms`, method));
      }, timeout);
      this.pending.set(id, { method, resolve, reject, timer, shape });
    });
  }

  _failPending(code, message) {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(hearthError(code, `${p.method}: ${message}`, p.method));
    }
  }

  // ---------------------------------------------------------------- incoming

  _onMessage(topic, payload, packet) {
    const t = this.topics;
    if (topic.startsWith(t.res) || topic.startsWith(t.adminRes)) return this._onResponse(payload, packet);
    if (topic.startsWith(t.evt)) {
      const name = topic.slice(t.evt.length);
      const set = this.eventListeners.get(name);
      if (!set || set.size === 0) return; // nobody listens: not even parsed
      let env;
      try {
        env = JSON.parse(utf8(payload));
      } catch {
        return; // not JSON: not an event of ours
      }
      if (!isObject(env) || !isObject(env.data)) return;
      if (typeof env.event === 'string' && env.event !== name) return;
      this._emit(name, env.data, { event: name, ts: typeof env.ts === 'number' ? env.ts : Date.now() });
    }
  }

  _onResponse(payload, packet) {
    const corr = packet && packet.properties && packet.properties.correlationData;
    let idFromCorr;
    if (corr) idFromCorr = utf8(corr);
    let env;
    try {
      env = JSON.parse(utf8(payload));
    } catch {
      env = undefined;
    }
    const id = idFromCorr !== undefined && this.pending.has(idFromCorr) ? idFromCorr : isObject(env) ? env.id : undefined;
    if (typeof id !== 'string') return;
    const p = this.pending.get(id);
    if (!p) return; // late (timed out) or not ours
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (!isObject(env) || typeof env.ok !== 'boolean') {
      return p.reject(hearthError('BAD_RESPONSE', `${p.method}: the hub's answer is not a response envelope`, p.method));
    }
    if (env.ok) {
      const r = env.result === undefined ? {} : env.result;
      if (!isObject(r)) return p.reject(hearthError('BAD_RESPONSE', `${p.method}: result is not an object`, p.method));
      if (!p.shape) return p.resolve(r);
      let shaped;
      try {
        shaped = p.shape(r);
      } catch (what) {
        return p.reject(hearthError('BAD_RESPONSE', `${p.method}: the hub's result lacks ${typeof what === 'string' ? what : 'expected fields'}`, p.method));
      }
      return p.resolve(shaped);
    }
    const err = isObject(env.error) ? env.error : {};
    const code = typeof err.code === 'string' && err.code ? err.code : 'BAD_RESPONSE';
    const message = typeof err.message === 'string' ? err.message : `${p.method} failed`;
    p.reject(hearthError(code, message, p.method));
  }
}

// Nagle plus the broker's delayed ACKs add ~40 ms to a QoS 1 round trip (SPEC §6); mqtt.js
// leaves the TCP (and TLS) socket as Node makes it. Browsers do not expose the option.
function noDelay(mq) {
  const s = mq.stream;
  if (s && typeof s.setNoDelay === 'function') s.setNoDelay(true);
}

/**
 * Writes the packet just published now. mqtt-packet corks the socket for each packet it writes
 * and uncorks it on the next tick (so that the packet's pieces go in one write); until then the
 * request would wait behind whatever runs after it in this turn — the rest of the app's
 * callback, the library's bookkeeping, and mqtt.js's PUBACK of the message being handled, which
 * mqtt.js generates only after the app's handler returned. Only when that publish was written
 * to this very stream (its cork is there), the stream is still the client's, connected and
 * writable: a publish mqtt.js queued (not connected) or a stream that closed or was replaced
 * is left alone. Every cork is one of mqtt-packet's, each over whole packets, each with its
 * uncork scheduled: uncorking them now writes those packets, in order, one tick early, and the
 * scheduled uncorks find nothing corked (Node's uncork stops at zero).
 */
function flush(mq, stream, corkedBefore) {
  if (!stream || mq.stream !== stream || !mq.connected) return;
  if (stream.destroyed || !stream.writable || !(stream.writableCorked > corkedBefore)) return;
  for (let n = stream.writableCorked; n > 0; n--) stream.uncork();
}

function ignore() {}
const NO_OPTIONS = Object.freeze({});

/** A CONNACK refusal of the credentials: 4/5 (MQTT 3) or 0x86/0x87 (MQTT 5). */
function isRefusal(err) {
  const rc = err && typeof err.code === 'number' ? err.code : undefined;
  return rc === 134 || rc === 135 || rc === 4 || rc === 5;
}

function refusalError(userId, err) {
  return hearthError('NOT_AUTHORIZED', `the broker refused the login of ${userId}: ${err.message}`);
}

/** Calls a listener; an exception it throws is reported outside the library's stack. */
function callListener(l, data, envelope) {
  try {
    l(data, envelope);
  } catch (e) {
    // An app callback that throws must not break the library; report it like an uncaught
    // error of the app, outside our stack.
    queueMicrotask(() => {
      throw e;
    });
  }
}

function encodeId(id) {
  return typeof Buffer !== 'undefined' ? Buffer.from(id) : new TextEncoder().encode(id);
}

function withTimeout(promise, ms) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error('timeout')), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
