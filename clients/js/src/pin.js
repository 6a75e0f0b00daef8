// CA pinning for Node (SPEC §7): the hub's CA is self-made, so no system store trusts it. A
// pairing link names its SHA-256 fingerprint; before the MQTT connection this looks at the
// certificate chain the hub presents, takes the CA certificate with that fingerprint and hands
// it to the real connection as its only trusted CA (Node then verifies the chain as usual).
// The credentials never travel over a connection whose CA was not checked.

import { hearthError } from './errors.js';

const isNode = typeof process !== 'undefined' && !!(process.versions && process.versions.node);

/**
 * Finds the pinned CA in the hub's chain.
 * @param {string} host
 * @param {number} port
 * @param {string} caSha256 64 hex digits
 * @param {number} timeoutMs
 * @returns {Promise<string>} the CA certificate, PEM
 */
export async function fetchPinnedCa(host, port, caSha256, timeoutMs) {
  if (!isNode) throw hearthError('INVALID_REQUEST', 'CA pinning needs Node; a browser trusts its own store');
  const tls = await import('node:tls');
  const { X509Certificate } = await import('node:crypto');
  const want = caSha256.toLowerCase();
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, pem) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(pem);
    };
    // Verification happens below against the pinned fingerprint; nothing but the handshake is
    // sent on this connection.
    const sock = tls.connect({ host, port, servername: isIp(host) ? undefined : host, rejectUnauthorized: false });
    const timer = setTimeout(
      () => done(hearthError('NOT_CONNECTED', `no TLS handshake with ${host}:${port}`)),
      timeoutMs,
    );
    sock.once('error', (e) => done(hearthError('NOT_CONNECTED', `${host}:${port}: ${e.message}`)));
    sock.once('secureConnect', () => {
      const seen = new Set();
      let cert = sock.getPeerCertificate(true);
      const chain = [];
      while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chain.push(cert);
        cert = cert.issuerCertificate;
      }
      for (const c of chain) {
        if (c.fingerprint256.replace(/:/g, '').toLowerCase() !== want) continue;
        const x = new X509Certificate(c.raw);
        if (x.ca) return done(null, x.toString());
      }
      done(hearthError('CA_MISMATCH', `the server at ${host}:${port} does not present the paired CA`));
    });
  });
}

function isIp(h) {
  return /^[0-9.]+$/.test(h) || h.includes(':');
}

/**
 * Checks that a CA given as PEM has the pinned fingerprint.
 * @param {string} pem
 * @param {string} caSha256
 * @returns {Promise<boolean>}
 */
export async function pemMatchesPin(pem, caSha256) {
  if (!isNode) return false;
  const { X509Certificate } = await import('node:crypto');
  const x = new X509Certificate(pem);
  return x.ca && x.fingerprint256.replace(/:/g, '').toLowerCase() === caSha256.toLowerCase();
}
