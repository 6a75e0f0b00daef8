// The one place the app meets hearth-client (clients/js). The app never speaks MQTT itself:
// it logs in through the library and uses its mtl.coop / hearth.things calls and events.

import {createClient} from 'hearth-client';

export const APP_ID = 'hearth-web';

function browserName() {
  const ua = navigator.userAgent;
  const m = /(Firefox|Edg|OPR|Chrome|Safari)\/[\d.]+/.exec(ua);
  const name = {Edg: 'Edge', OPR: 'Opera'}[m?.[1]] || m?.[1] || 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS/.test(ua)
    ? 'macOS' : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
  return `${name}${os ? ' on ' + os : ''}`;
}

/**
 * Logs in through the front door this page came from (wss://<this host:port>/mqtt) and resolves
 * with the connected client. Rejects with the library's {code, message}.
 */
export async function connect({userId, password, clientId, onState}) {
  const client = createClient();
  const stop = onState ? client.onConnectionState(onState) : null;
  client.coop.initialize({
    server: location.hostname,
    // Relative: mqtt.js takes wss from this https page. Its default port for a relative URL is
    // 443, not the page's, so transformWsUrl below names the page's own host:port: the app always
    // talks to the front door it was loaded from.
    url: '/mqtt',
    appId: APP_ID,
    clientIdentify: clientId,
    deviceModel: 'hearth web app',
    deviceName: browserName(),
    requestTimeout: 10000,
    reconnectMinMs: 500,
    reconnectMaxMs: 5000,
    // mqtt.js runs its keepalive timer in a Worker made from a blob: URL by default, which the
    // front door's CSP (worker-src 'self') refuses; plain timers do the same job here.
    mqttOptions: {timerVariant: 'native', transformWsUrl: () => `wss://${location.host}/mqtt`},
  });
  try {
    await client.coop.login({userId, password});
  } catch (err) {
    stop?.();
    throw err;
  }
  return client;
}

/** True when this account may use the admin API (its account is listed in admin.users). */
export async function probeAdmin(client) {
  try {
    await client.adminRequest('status', {}, {timeout: 3000});
    return true;
  } catch {
    return false;
  }
}
