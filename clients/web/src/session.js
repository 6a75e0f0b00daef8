// Staying logged in across reloads without the password in clear.
//
// On login with "stay logged in" the app makes an AES-GCM key with WebCrypto as
// *non-extractable* (its bytes can never be read back out of the browser, not even by this
// app's own script), keeps that CryptoKey object in IndexedDB, and stores only the encrypted
// {userId, password} next to it. On a reload the browser decrypts it with the key it holds and
// the app logs in again. The hub itself never stores passwords (SPEC §2), and the front door
// issues no session of its own, so the broker login is the credential to keep.
//
// What this protects against: anyone reading the browser's storage on disk, a backup or a
// synced profile sees ciphertext and an opaque key handle, never the password. What it does not
// protect against: script running in this page's origin could ask the browser to decrypt —
// which is why the app renders all data as text, and the front door sends a strict CSP.
// Logging out deletes the record and the key; a failed automatic login deletes them too.

const DB = 'hearth-web';
const STORE = 'session';
const KEY = 'current';

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req?.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

export function canRemember() {
  return Boolean(globalThis.crypto?.subtle && globalThis.indexedDB && globalThis.isSecureContext);
}

/** Keeps {userId, password} encrypted under a fresh non-extractable key. */
export async function remember(userId, password) {
  if (!canRemember()) return false;
  const key = await crypto.subtle.generateKey({name: 'AES-GCM', length: 256}, false, [
    'encrypt',
    'decrypt',
  ]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const plain = new TextEncoder().encode(JSON.stringify({userId, password}));
  const sealed = await crypto.subtle.encrypt({name: 'AES-GCM', iv}, key, plain);
  await tx('readwrite', (s) => s.put({key, iv, sealed, userId}, KEY));
  return true;
}

/** The remembered login, or null. */
export async function recall() {
  if (!canRemember()) return null;
  try {
    const rec = await tx('readonly', (s) => s.get(KEY));
    if (!rec) return null;
    const plain = await crypto.subtle.decrypt({name: 'AES-GCM', iv: rec.iv}, rec.key, rec.sealed);
    return JSON.parse(new TextDecoder().decode(plain));
  } catch {
    await forget();
    return null;
  }
}

export async function forget() {
  if (!globalThis.indexedDB) return;
  try {
    await tx('readwrite', (s) => s.delete(KEY));
  } catch {
    // nothing stored, or storage disabled: nothing to forget
  }
}

/**
 * This tab's terminal id (its MQTT client id): kept for the tab's life so a reload is the same
 * terminal, distinct per tab so two tabs do not throw each other off the broker.
 */
export function terminalId(userId) {
  const k = 'hearth-terminal-' + userId;
  let id = sessionStorage.getItem(k);
  if (!id) {
    const rnd = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) =>
      b.toString(16).padStart(2, '0'),
    ).join('');
    id = `web-${userId.slice(0, 48)}-${rnd}`;
    sessionStorage.setItem(k, id);
  }
  return id;
}
