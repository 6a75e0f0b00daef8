// The household web app: the shell (header with the connection state, navigation, toasts), the
// hash router and the login/logout flow. Views live in views/*.js and render into <main>.

import {h, fill, $} from './dom.js';
import {connect, probeAdmin} from './hub.js';
import * as session from './session.js';
import {store, on, emit, attach, refreshDevices, refreshInvitations} from './store.js';
import {loginView, loginError, loginSucceeded} from './views/login.js';
import {devicesView} from './views/devices.js';
import {deviceView} from './views/device.js';
import {addView} from './views/add.js';
import {scanView} from './views/scan.js';
import {invitationsView} from './views/invitations.js';
import {coopView} from './views/coop.js';
import {adminView} from './views/admin.js';

const ROUTES = [
  {path: 'devices', label: 'Devices', view: devicesView},
  {path: 'add', label: 'Add', view: addView},
  {path: 'scan', label: 'Scan', view: scanView},
  {path: 'invitations', label: 'Invites', view: invitationsView, badge: () => store.invitations.length},
  {path: 'terminals', label: 'Terminals', view: coopView},
  {path: 'admin', label: 'Installer', view: adminView, admin: true},
];

const STATE_TEXT = {
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  disconnected: 'disconnected',
};

let detach = null;
let viewCleanup = [];

function renderStatus() {
  const s = store.status;
  const el = $('#conn');
  el.dataset.state = s.state;
  let text = STATE_TEXT[s.state] || s.state;
  if (!store.client && s.state === 'disconnected') text = 'not logged in';
  if (s.state === 'reconnecting' && s.attempt) text += ` (try ${s.attempt})`;
  if (s.state === 'disconnected' && s.reasonName && !['OK', 'LOGOUT'].includes(s.reasonName)) {
    text += ` (${s.reasonName.toLowerCase().replace(/_/g, ' ')})`;
  }
  el.textContent = text;
  el.classList.toggle('idle', !store.client && s.state === 'disconnected');
  el.title = s.message || '';
}

function renderNav() {
  const nav = $('#nav');
  if (!store.client) {
    fill(nav);
    $('#who').replaceChildren();
    return;
  }
  const current = location.hash.replace(/^#\/?/, '').split('/')[0] || 'devices';
  fill(
    nav,
    ROUTES.filter((r) => !r.admin || store.isAdmin).map((r) => {
      const n = r.badge?.() || 0;
      return h(
        'a',
        {href: '#/' + r.path, 'aria-current': current === r.path || (r.path === 'devices' && current === 'device') ? 'page' : null},
        r.label,
        n ? h('span.badge', {'aria-label': `${n} new`}, String(n)) : null,
      );
    }),
  );
  // The tabs scroll sideways on a phone: keep the current one in sight.
  const cur = nav.querySelector('[aria-current="page"]');
  if (cur && (cur.offsetLeft < nav.scrollLeft || cur.offsetLeft + cur.offsetWidth > nav.scrollLeft + nav.clientWidth)) {
    nav.scrollLeft = cur.offsetLeft - 8;
  }
  fill(
    $('#who'),
    h('span.user', store.userId),
    h('button.link', {type: 'button', id: 'logout', onclick: logout}, 'Log out'),
  );
}

function route() {
  for (const f of viewCleanup) f();
  viewCleanup = [];
  const main = $('#main');
  const cleanup = (f) => viewCleanup.push(f);
  if (!store.client) {
    fill(main, loginView({onLogin: login, message: store.loginMessage, userId: store.lastUser}));
    store.loginMessage = '';
    renderNav();
    return;
  }
  const [path, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  let view = ROUTES.find((r) => r.path === path && (!r.admin || store.isAdmin))?.view;
  let arg = rest.map(decodeURIComponent).join('/');
  if (path === 'device' && arg) view = deviceView;
  if (!view) {
    if (location.hash !== '#/devices') {
      history.replaceState(null, '', '#/devices');
    }
    view = devicesView;
    arg = '';
  }
  fill(main, view({arg, cleanup}));
  renderNav();
  main.focus({preventScroll: true});
}

/** Logs in; resolves with null on success or the error. */
async function login({userId, password, remember, auto}) {
  const clientId = session.terminalId(userId);
  let client;
  try {
    client = await connect({
      userId,
      password,
      clientId,
      onState: (s) => {
        store.status = s;
        renderStatus();
      },
    });
  } catch (err) {
    if (auto && err?.code === 'NOT_AUTHORIZED') await session.forget();
    store.status = {state: 'disconnected', reasonName: 'OK'};
    renderStatus();
    return err;
  }
  loginSucceeded();
  store.client = client;
  store.userId = userId;
  store.status = client.status;
  detach = attach(client);
  if (remember) await session.remember(userId, password);
  else if (!auto) await session.forget();
  renderStatus();
  store.isAdmin = await probeAdmin(client);
  refreshDevices();
  refreshInvitations();
  if (!location.hash || location.hash === '#/login') history.replaceState(null, '', '#/devices');
  route();
  return null;
}

async function logout() {
  const client = store.client;
  if (!client) return;
  $('#logout').disabled = true;
  $('#conn').textContent = 'logging out…';
  await session.forget();
  detach?.();
  await client.coop.logout(); // presence `offline` first, then the disconnect (SPEC §4a)
  Object.assign(store, {
    client: null,
    userId: '',
    isAdmin: false,
    devices: new Map(),
    devicesLoaded: false,
    invitations: [],
    accessRequests: [],
    commandsSent: new Map(),
    commandsReceived: [],
  });
  store.notices.clear();
  store.status = {state: 'disconnected', reasonName: 'LOGOUT'};
  renderStatus();
  history.replaceState(null, '', '#/login');
  route();
  emit('toast', 'Logged out.');
}

function showToast(text) {
  const box = $('#toasts');
  const t = h('div.toast', {role: 'status'}, text);
  box.append(t);
  setTimeout(() => t.remove(), 6000);
}

async function start() {
  on('status', renderStatus);
  on('toast', showToast);
  on('invitations', renderNav);
  window.addEventListener('hashchange', route);
  renderStatus();
  const saved = await session.recall();
  if (saved) {
    $('#main').replaceChildren(h('p.outcome.busy', `Logging in as ${saved.userId}…`));
    const err = await login({...saved, remember: true, auto: true});
    if (!err) return;
    store.lastUser = saved.userId;
    store.loginMessage = loginError(err);
  }
  route();
}

start();
