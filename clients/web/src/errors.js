// The hub's error codes (docs/mqtt-api.md) and hearth-client's own, in words a household
// understands. `context` lets a view say something more precise than the generic sentence.

const WORDS = {
  INVALID_REQUEST: 'The hub did not accept that input.',
  UNKNOWN_METHOD: 'This hub does not offer that (is it an older version?).',
  NOT_FOUND: 'Not found: it may have been removed meanwhile.',
  FORBIDDEN: 'You are not allowed to do that.',
  NOT_OWNER: 'Only the owner of this device may do that. Ask its owner.',
  SHARE_REQUIRED:
    'This device already has an owner. It can only be added through a share: ask its owner ' +
    'to share it with you (a QR code or an invitation to your account).',
  ALREADY_BOUND: 'You already have this device.',
  NOT_BINDABLE:
    'The device cannot be added right now: it is not nearby, its pairing window is closed, or ' +
    'it is a WiFi device (those are added with a setup token).',
  TOKEN_INVALID: 'That key is not valid (mistyped, or the share was cancelled).',
  TOKEN_EXPIRED: 'That key has expired. Ask for a fresh one.',
  TOKEN_USED: 'That key was already used. Each key works once: ask for a fresh one.',
  CONFLICT: 'That already exists, or is no longer pending.',
  LIMIT_REACHED: 'A limit was reached (for example the most members a device may have).',
  RATE_LIMITED: 'Too many failed attempts. Wait 15 minutes and try again.',
  OFFLINE: 'The device is offline: it is switched off or out of reach.',
  TIMEOUT: 'No answer in time. The device or the hub may be busy or unreachable; try again.',
  UNAVAILABLE: 'That part of the hub is not running right now.',
  INTERNAL: 'The hub had an internal problem; nothing was changed.',
  NOT_CONNECTED: 'Not connected to the hub right now; wait until it says "connected".',
  NOT_AUTHORIZED: 'Wrong user name or password.',
  BAD_CREDENTIALS: 'Wrong user name or password.',
  LOCKED_OUT:
    'Too many failed logins from this address: the hub refuses it for 15 minutes. Try again later.',
};

/** {code, message} (or an Error) → one sentence for the page. */
export function explain(err, context = {}) {
  const code = err?.code || 'INTERNAL';
  const words = context[code] || WORDS[code] || 'Something went wrong.';
  return `${words} (${code})`;
}

export function codeOf(err) {
  return err?.code || 'INTERNAL';
}
