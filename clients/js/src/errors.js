// Errors the library hands to `fail` callbacks and rejects Promises with: an Error carrying the
// hub's error code (docs/mqtt-api.md) or one of the library's own.

/** @typedef {{code: string, message: string, method?: string}} HearthErrorLike */

export const LibraryCode = Object.freeze({
  TIMEOUT: 'TIMEOUT',
  NOT_CONNECTED: 'NOT_CONNECTED',
  NOT_AUTHORIZED: 'NOT_AUTHORIZED',
  BAD_RESPONSE: 'BAD_RESPONSE',
  LIMIT_REACHED: 'LIMIT_REACHED',
  INVALID_REQUEST: 'INVALID_REQUEST',
});

/**
 * An Error with a stable `code`.
 * @param {string} code
 * @param {string} message
 * @param {string} [method]
 * @returns {Error & HearthErrorLike}
 */
export function hearthError(code, message, method) {
  const e = /** @type {Error & HearthErrorLike} */ (new Error(message));
  e.name = 'HearthError';
  e.code = code;
  if (method) e.method = method;
  return e;
}
