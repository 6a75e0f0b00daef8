// hearth-client: the seed-000 `mtl.coop` API and `hearth.things` for a hearth hub, over MQTT 5.
//
// Every call takes one argument object with optional `success` / `fail` callbacks (the seed's
// shape) AND returns a Promise that resolves with what `success` receives and rejects with
// what `fail` receives. When `fail` is given the Promise still rejects, but the rejection is
// marked handled (no unhandledrejection for callback-style code).

/** The hub's error codes (docs/mqtt-api.md) plus the library's own. */
export type HubErrorCode =
  | 'INVALID_REQUEST'
  | 'UNKNOWN_METHOD'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'NOT_OWNER'
  | 'SHARE_REQUIRED'
  | 'ALREADY_BOUND'
  | 'NOT_BINDABLE'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_USED'
  | 'CONFLICT'
  | 'LIMIT_REACHED'
  | 'RATE_LIMITED'
  | 'OFFLINE'
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'INTERNAL';

/**
 * Library codes: `TIMEOUT` (no answer within `requestTimeout`, also for a call in flight when
 * the connection dropped: its outcome is unknown), `NOT_CONNECTED` (not logged in, or
 * reconnecting: the call was not sent), `NOT_AUTHORIZED` (the broker
 * refused the user name / password at login), `CA_MISMATCH` (a pairing link's CA was not
 * presented), `BAD_RESPONSE` (the hub answered something that
 * is not a valid response envelope/result), `LIMIT_REACHED` (too many calls in flight locally,
 * see `maxPending`), `INVALID_REQUEST` (an argument failed the library's own check; nothing was
 * sent).
 */
export type LibraryErrorCode = 'TIMEOUT' | 'NOT_CONNECTED' | 'NOT_AUTHORIZED' | 'BAD_RESPONSE' | 'CA_MISMATCH';

export type ErrorCode = HubErrorCode | LibraryErrorCode;

/** What `fail` receives and what a Promise rejects with (an Error with `code`). */
export interface HearthError extends Error {
  code: ErrorCode | string;
  message: string;
  /** The method the failed call invoked on the hub (e.g. `sendCommand`). */
  method?: string;
}

/** Callbacks of the seed's shape. */
export interface Callbacks<R> {
  success?: (res: R) => void;
  fail?: (err: HearthError) => void;
}

/** A terminal as the seed addresses it. */
export interface Endpoint {
  appId: string;
  userId: string;
  clientIdentify: string;
}

// ------------------------------------------------------------------------------------------
// Connection states (seed 001's lesson: numbered states, each change with a reason code)

export type ConnectionStateName = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

/** Stable numbers of the states (as y2wIM.connectionStatus). */
export declare const ConnectionState: {
  readonly connecting: 0;
  readonly connected: 1;
  readonly reconnecting: 2;
  readonly disconnected: 100;
};

/**
 * Why the state changed. Numbers are stable:
 * 0 OK, 1 LOGIN (login() called), 2 LOGOUT (logout() called), 3 NETWORK (connection lost or
 * could not be made), 4 NOT_AUTHORIZED (broker refused the credentials), 5 KICKED (another
 * login took this clientIdentify: seen when reconnecting, from the retained presence, or from
 * an MQTT 5 DISCONNECT 0x8E; the instance stops), 6 SERVER_UNAVAILABLE (broker refused: server unavailable /
 * busy), 7 PROTOCOL (MQTT protocol error), 8 HELLO_FAILED (the hub refused hello),
 * 9 CA_MISMATCH (the server's CA does not match the pinned fingerprint).
 */
export declare const ReasonCode: {
  readonly OK: 0;
  readonly LOGIN: 1;
  readonly LOGOUT: 2;
  readonly NETWORK: 3;
  readonly NOT_AUTHORIZED: 4;
  readonly KICKED: 5;
  readonly SERVER_UNAVAILABLE: 6;
  readonly PROTOCOL: 7;
  readonly HELLO_FAILED: 8;
  readonly CA_MISMATCH: 9;
};

export interface ConnectionStatus {
  state: ConnectionStateName;
  /** ConnectionState[state] */
  stateCode: number;
  /** a ReasonCode value */
  reason: number;
  /** the ReasonCode name, e.g. 'NETWORK' */
  reasonName: string;
  /** human-readable detail (the MQTT error text, for instance) */
  message?: string;
  /** reconnect attempt number while `reconnecting` (1, 2, ...) */
  attempt?: number;
}

// ------------------------------------------------------------------------------------------
// mtl.coop (seed 000, in the seed's exact shape)

export interface InitializeOptions {
  /** The hub's address (host name or IP), or a full URL (mqtt://, mqtts://, ws://, wss://). */
  server: string;
  /** Not used by hearth (kept for seed compatibility). */
  restServer?: string;
  resourceUploadServer?: string;
  resourceDownloadServer?: string;
  /** Plain MQTT port (Node only; used when serverEnableSSL is false and no wssPort). */
  serverPort?: number;
  /** MQTT over TLS port (Node; default 8883). */
  serverSSLPort?: number;
  /** MQTT over WebSocket port (default 8443; browsers always use wss://server:wssPort/mqtt). */
  wssPort?: number;
  /** TLS on (default true). */
  serverEnableSSL?: boolean;
  /** Not used by hearth (kept for seed compatibility). */
  serverHttps?: boolean;
  /** The application id said in `hello` (required). */
  appId: string;
  /** Not used by hearth (the broker account is the credential). */
  etpId?: string;
  /** Not used by hearth (the broker account is the credential). */
  appSecret?: string;

  // --- hearth additions (all optional) ---
  /** Full broker URL; overrides server/ports/serverEnableSSL. */
  url?: string;
  /** In Node: 'mqtts' (default when serverEnableSSL), 'mqtt', or 'wss'. Browsers: 'wss' only. */
  transport?: 'mqtt' | 'mqtts' | 'wss' | 'ws';
  /**
   * A pairing link `hearth://pair?host=…&port=…&ca=sha256:…` (from `hearthctl pair` or the web
   * app). Sets the host and the wss:// port (the front door's https port) and, in Node, pins
   * the hub's CA: a server whose chain does not contain a CA certificate with that SHA-256
   * fingerprint is refused (reason CA_MISMATCH). With `transport: 'mqtts'` the port is
   * `serverSSLPort` (default 8883) on the link's host, pinned the same way.
   */
  pairing?: string;
  /** Trusted CA certificate(s), PEM (Node). */
  ca?: string | string[];
  /** This terminal's MQTT client id (the seed's clientIdentify); default: random per instance. */
  clientIdentify?: string;
  /** Said in hello. */
  deviceModel?: string;
  /** Said in hello. */
  deviceName?: string;
  /** Per-request timeout in ms (default 10000). */
  requestTimeout?: number;
  /** MQTT keepalive in seconds (default 30). */
  keepalive?: number;
  /** Reconnect back-off: first delay in ms (default 500), doubling up to reconnectMaxMs. */
  reconnectMinMs?: number;
  /** Reconnect back-off cap in ms (default 30000). */
  reconnectMaxMs?: number;
  /** How long login waits for CONNACK + hello, in ms (default requestTimeout). */
  connectTimeout?: number;
  /** ms to wait before acknowledging a received command, unless replied first (default 50). */
  ackDelayMs?: number;
  /** Calls in flight at most; more fail with LIMIT_REACHED (default 20000). */
  maxPending?: number;
  /** Remembered commandIds / access-request ids for dropping repeats (default 10000). */
  dedupCapacity?: number;
  /** Extra options handed to mqtt.connect (advanced). */
  mqttOptions?: Record<string, unknown>;
}

export interface LoginOptions extends Callbacks<void> {
  userId: string;
  password: string;
}

export interface OpenIdResult {
  openId: string;
}

export interface DeviceInfo {
  appId: string;
  userId: string;
  clientIdentify: string;
  deviceModel: string;
  deviceName: string;
  online: boolean;
  /** Permissions the looked-up terminal granted me (all for my own user's terminals). */
  allPermissions: boolean;
  permissions: string[];
}

export interface Device {
  appId: string;
  clientIdentify: string;
  deviceModel: string;
  deviceName: string;
  online: boolean;
  userId: string;
  /** authorized/accessible lists only */
  allPermissions?: boolean;
  /** authorized/accessible lists only */
  permissions?: string[];
}

export interface AllDevices {
  authorizedDevices: Device[];
  accessibleDevices: Device[];
}

export interface AccessResponse {
  /** 0 agreed, 1 rejected, 2 expired, 3 removed */
  code: number;
  message?: string;
  commandId: string;
  from: Endpoint;
}

export interface RequestAccessOptions extends Callbacks<{ commandId: string; expiresAt: number }> {
  appId: string;
  userId: string;
  clientIdentify: string;
  permissions?: string[];
  allPermissions?: boolean;
  /** Called once with the target's answer (or expiry). */
  onResponse?: (res: AccessResponse) => void;
}

export interface AccessRequestEvent {
  commandId: string;
  from: Endpoint;
  commandParams: { allPermissions: boolean; permissions: string[] };
}

export interface AnswerAccessOptions extends Callbacks<Record<string, never>> {
  commandId: string;
  to: Endpoint;
}

export interface RemoveGrantOptions extends Callbacks<Record<string, never>> {
  clientIdentify: string;
  appId: string;
  userId: string;
}

export interface RemoveMyDeviceOptions extends Callbacks<Record<string, never>> {
  clientIdentify: string;
}

export type CommandStateName = 'queued' | 'delivered' | 'replied' | 'expired' | 'timeout' | 'offered';

/** Stable numbers of the command states (docs/coop-api.md). */
export declare const CommandState: {
  readonly queued: 1;
  readonly delivered: 2;
  readonly replied: 3;
  readonly expired: 4;
  readonly timeout: 5;
  readonly offered: 6;
};

export interface SendCommandResult {
  commandId: string;
  state: CommandStateName;
  stateCode: number;
}

export interface CommandResponse {
  commandId: string;
  commandParams: Record<string, unknown>;
  commandType: string;
  from: Endpoint;
  state: 'replied';
  stateCode: 3;
}

export interface CommandStateEvent {
  commandId: string;
  commandType: string;
  state: CommandStateName;
  stateCode: number;
  to: Endpoint;
  reason?: string;
}

export interface SendCommandOptions extends Callbacks<SendCommandResult> {
  commandType: string;
  to: Endpoint;
  commandParams?: Record<string, unknown>;
  /** Called once with the target's reply. */
  onResponse?: (res: CommandResponse) => void;
  /** hearth addition: every state change of this command (queued, delivered, expired, ...). */
  onState?: (ev: CommandStateEvent) => void;
}

export interface Command {
  commandId: string;
  commandParams: Record<string, unknown>;
  commandType: string;
  from: Endpoint;
}

export interface ReplyCommandOptions extends Callbacks<Record<string, never>> {
  commandId: string;
  commandParams?: Record<string, unknown>;
  to: Endpoint;
}

export interface Coop {
  /** Seed §1. Stores where the hub is and who this app is. Synchronous; no network. */
  initialize(options: InitializeOptions): void;
  /** Seed §2. Connects (MQTT CONNECT as userId), presence + Will, subscribes, says hello. */
  login(options: LoginOptions): Promise<void>;
  /** Seed §3. Publishes presence `offline`, then disconnects. Never fails. */
  logout(options?: Callbacks<void>): Promise<void>;
  /** Seed §4. */
  getOpenId(options?: Callbacks<OpenIdResult>): Promise<OpenIdResult>;
  /** Seed §5. */
  getDeviceInfo(options: { openId: string } & Callbacks<DeviceInfo>): Promise<DeviceInfo>;
  /** Seed §6. `success` when the request is stored; `onResponse` with the answer. */
  requestAccessTo(options: RequestAccessOptions): Promise<{ commandId: string; expiresAt: number }>;
  /** Seed §7. Registers the handler (replaces the previous one); each request is handed once. */
  receiveAccessRequest(callback: (res: AccessRequestEvent) => void): void;
  /** Seed §8. */
  agreeAccessRequest(options: AnswerAccessOptions): Promise<Record<string, never>>;
  /** Seed §9. */
  rejectAccessRequest(options: AnswerAccessOptions): Promise<Record<string, never>>;
  /** Seed §10. `success` receives the array itself. */
  getMyDevices(options?: Callbacks<Device[]>): Promise<Device[]>;
  /** Seed §11. Terminals I granted access. */
  getAuthorizedDevices(options?: Callbacks<Device[]>): Promise<Device[]>;
  /** Seed §12. Terminals that granted me access. */
  getAccessibleDevices(options?: Callbacks<Device[]>): Promise<Device[]>;
  /** Seed §13. */
  getAllDevices(options?: Callbacks<AllDevices>): Promise<AllDevices>;
  /** Seed §14. */
  removeAuthorizedDevice(options: RemoveGrantOptions): Promise<Record<string, never>>;
  /** Seed §15. */
  removeAccessibleDevice(options: RemoveGrantOptions): Promise<Record<string, never>>;
  /** Seed §16. */
  removeMyDevice(options: RemoveMyDeviceOptions): Promise<Record<string, never>>;
  /** Seed §17. `success` when the hub took the command; `onResponse` with the reply. */
  sendCommand(options: SendCommandOptions): Promise<SendCommandResult>;
  /**
   * Seed §18. Registers the handler (replaces the previous one). Each command is handed once
   * (repeats by commandId are dropped) and acknowledged to the hub after it was handed over.
   * Commands that arrive before a handler is registered wait for it.
   */
  receiveCommand(callback: (cmd: Command) => void): void;
  /** Seed §19. Also acknowledges the command. */
  replyCommand(options: ReplyCommandOptions): Promise<Record<string, never>>;
}

// ------------------------------------------------------------------------------------------
// hearth.things (SPEC §3, §5)

export type Role = 'owner' | 'special' | 'normal' | 'guest';

export interface BoundDevice {
  deviceId: string;
  model: string;
  name: string;
  role: Role;
  online: boolean;
  boundAt: number;
  [k: string]: unknown;
}

export interface DeviceDetail {
  deviceId: string;
  model: string;
  name: string;
  transport: string;
  bindMode: string;
  online: boolean;
  relAccounts: { userId: string; role: Role; boundAt: number }[];
  [k: string]: unknown;
}

export interface Share {
  sharingId: string;
  deviceId: string;
  way: 'qr' | 'account';
  fromUser: string;
  guest?: string;
  state: string;
  createdAt: number;
  expiresAt: number;
  [k: string]: unknown;
}

export type ThingsEventName =
  | 'deviceOnline'
  | 'deviceOffline'
  | 'bindingChanged'
  | 'shareInvited'
  | 'shareAccepted'
  | 'shareRejected'
  | 'provisionFailed'
  | 'deviceState'
  | 'controlReply';

export interface Things {
  /** A single-use WiFi provisioning token (hand it to the device during its WiFi set-up); deviceId to re-provision a known device. */
  provisionBegin(
    options?: { deviceId?: string } & Callbacks<{ token: string; expiresAt: number }>,
  ): Promise<{ token: string; expiresAt: number }>;
  /** Binds a present BLE device directly. SHARE_REQUIRED, NOT_BINDABLE, LIMIT_REACHED. */
  bindDevice(
    options: { deviceId: string } & Callbacks<{ deviceId: string; role: Role }>,
  ): Promise<{ deviceId: string; role: Role }>;
  /** Shares a device by QR key (`way: 'qr'`) or invites an account (`way: 'account', guest`). NOT_OWNER, NOT_FOUND, CONFLICT, LIMIT_REACHED. */
  shareDevice(
    options: { deviceId: string; way: 'qr' | 'account'; guest?: string } & Callbacks<{
      sharingId: string;
      qrKey?: string;
      expiresAt: number;
    }>,
  ): Promise<{ sharingId: string; qrKey?: string; expiresAt: number }>;
  /** Binds the caller as guest with a scanned QR key. TOKEN_INVALID/EXPIRED/USED, ALREADY_BOUND, RATE_LIMITED. */
  scanShare(
    options: { qrKey: string } & Callbacks<{ deviceId: string; model: string; name: string; role: Role }>,
  ): Promise<{ deviceId: string; model: string; name: string; role: Role }>;
  /** Shares to me (invitations) or from me; `success` receives the array. */
  listShares(
    options?: { direction?: 'toMe' | 'fromMe' } & Callbacks<Share[]>,
  ): Promise<Share[]>;
  /** Accepts an account invitation (the invitee only: FORBIDDEN otherwise). */
  acceptShare(
    options: { sharingId: string } & Callbacks<Record<string, unknown>>,
  ): Promise<Record<string, unknown>>;
  /** Rejects an account invitation (the invitee only). */
  rejectShare(
    options: { sharingId: string } & Callbacks<Record<string, unknown>>,
  ): Promise<Record<string, unknown>>;
  /** Cancels a share the caller made. FORBIDDEN, CONFLICT (no longer pending). */
  cancelShare(
    options: { sharingId: string } & Callbacks<Record<string, unknown>>,
  ): Promise<Record<string, unknown>>;
  /** Owner only: removes a member, who gets bindingChanged{reason:'removed'}. NOT_OWNER, NOT_FOUND. */
  removeMember(
    options: { deviceId: string; userId: string } & Callbacks<Record<string, unknown>>,
  ): Promise<Record<string, unknown>>;
  /** Leaves a device; the owner's unbind removes every binding and share. FORBIDDEN if not bound. */
  unbindDevice(
    options: { deviceId: string } & Callbacks<Record<string, unknown>>,
  ): Promise<Record<string, unknown>>;
  /** `success` receives the array itself (like the seed's lists). */
  getBoundDevices(options?: Callbacks<BoundDevice[]>): Promise<BoundDevice[]>;
  /** The device and its members (relAccounts). FORBIDDEN if not bound. */
  getDeviceDetail(options: { deviceId: string } & Callbacks<DeviceDetail>): Promise<DeviceDetail>;
  /** Sends a command to a bound device through its transport; the device's result, or OFFLINE / TIMEOUT / FORBIDDEN. */
  controlDevice(
    options: {
      deviceId: string;
      command: string;
      params?: Record<string, unknown>;
      /** per-call timeout in ms (default: the client's requestTimeout) */
      timeout?: number;
    } & Callbacks<Record<string, unknown>>,
  ): Promise<Record<string, unknown>>;
  /** Subscribes to a things event; returns the unsubscribe function. */
  on(event: ThingsEventName | string, listener: (data: any) => void): () => void;
}

// ------------------------------------------------------------------------------------------
// The client

export interface RequestOptions {
  /** ms; default the client's requestTimeout */
  timeout?: number;
}

export type SyncType = 'myDevices' | 'authorizedDevices' | 'accessibleDevices';

export interface HearthClient {
  /** The seed API bound to this client. */
  readonly coop: Coop;
  readonly things: Things;
  /** The current connection status. */
  readonly status: ConnectionStatus;
  /** The openId from the last hello (undefined before login). */
  readonly openId: string | undefined;
  /** This terminal's address (after initialize + login). */
  readonly self: Endpoint | undefined;
  /** Listens to connection state changes; returns the unsubscribe function. */
  onConnectionState(listener: (status: ConnectionStatus) => void): () => void;
  /**
   * Listens to a hub event by name (`sync`, `commandState`, `accessResponse`, `commandResponse`,
   * `deviceOnline`, ... any `evt/NAME`), receiving its `data`; returns the unsubscribe function.
   */
  on(event: string, listener: (data: any, event: { event: string; ts: number }) => void): () => void;
  /**
   * Called after a `sync{type}` hint with the re-fetched list (the library re-fetches it once per
   * burst of hints). Returns the unsubscribe function.
   */
  onSync(listener: (type: SyncType, list: Device[]) => void): () => void;
  /** Any documented user method: publishes `req/METHOD`, resolves with `result`. */
  request(method: string, params?: Record<string, unknown>, options?: RequestOptions): Promise<any>;
  /** Admin methods (`hearth/v1/admin/req/METHOD`; the account must be in admin.users). */
  adminRequest(
    method: string,
    params?: Record<string, unknown>,
    options?: RequestOptions,
  ): Promise<any>;
  /** Number of calls awaiting an answer. */
  readonly pendingCount: number;
}

/** A fresh, independent client (its own connection). */
export declare function createClient(): HearthClient;

/** Parses `hearth://pair?host=…&port=…&ca=sha256:…`; throws INVALID_REQUEST on a bad link. */
export declare function parsePairingLink(link: string): {
  host: string;
  port: number;
  caSha256: string;
};

/** The default client, shared with `mtl.coop`. */
export declare const hearth: HearthClient;

/** The seed's global: `mtl.coop` (the default client). */
export declare const mtl: { coop: Coop };

export default mtl;
