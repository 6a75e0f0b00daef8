// The pairing link of SPEC §7: hearth://pair?host=…&port=…&ca=sha256:<64 hex>.

import { hearthError } from './errors.js';

/**
 * Parses a pairing link.
 * @param {string} link
 * @returns {{host: string, port: number, caSha256: string}} caSha256: 64 lower-case hex digits
 * @throws {Error} code INVALID_REQUEST naming what is wrong
 */
export function parsePairingLink(link) {
  const bad = (why) => hearthError('INVALID_REQUEST', `pairing link: ${why}`);
  if (typeof link !== 'string' || !link.startsWith('hearth://pair?')) {
    throw bad('must start with hearth://pair?');
  }
  const q = new URLSearchParams(link.slice('hearth://pair?'.length));
  const host = q.get('host');
  if (!host || !/^[A-Za-z0-9.:\-[\]]{1,253}$/.test(host)) throw bad('host missing or malformed');
  const port = Number(q.get('port'));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('port must be 1-65535');
  const ca = q.get('ca') || '';
  const m = /^sha256:([0-9A-Fa-f:]+)$/.exec(ca);
  const hex = m ? m[1].replace(/:/g, '').toLowerCase() : '';
  if (hex.length !== 64) throw bad('ca must be sha256:<64 hex digits>');
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port, caSha256: hex };
}
