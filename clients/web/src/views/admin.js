import QRCode from 'qrcode';
import {h, fill, formatTime} from '../dom.js';
import {explain} from '../errors.js';
import {store} from '../store.js';
import {act, outcome, section, confirmButton, empty, onlinePill} from '../ui.js';

const admin = (m, p = {}) => store.client.adminRequest(m, p);

/** 16 characters from a 62-letter alphabet (~95 bits), without modulo bias. */
export function generatePassword(len = 16) {
  const abc = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const out = [];
  while (out.length < len) {
    for (const b of crypto.getRandomValues(new Uint8Array(len * 2))) {
      if (b < 256 - (256 % abc.length) && out.length < len) out.push(abc[b % abc.length]);
    }
  }
  return out.join('');
}

function usersSection() {
  const list = h('ul.users', {id: 'admin-users'});
  const out = outcome();
  const name = h('input', {id: 'admin-new-user', maxlength: 64, autocapitalize: 'none', pattern: '[A-Za-z0-9._:\\-]{1,64}', placeholder: 'e.g. carol', 'aria-label': 'New user name'});
  const add = h('button.primary', {type: 'submit', id: 'admin-add-user'}, 'Add user');
  const shown = h('div.once', {id: 'admin-password', role: 'status'});

  async function load() {
    try {
      const {users} = await admin('userList');
      fill(list, users.length ? users.map((u) => h('li', {dataset: {userId: u.userId}},
        h('span.name', u.userId), h('span.meta', `${u.terminals} terminal${u.terminals === 1 ? '' : 's'}, ${u.online} online`),
        confirmButton('Remove', `Remove ${u.userId}?`, (b) => act(b, out, `Removing ${u.userId}…`, () => admin('userRemove', {userId: u.userId}), {
          done: () => `${u.userId} was removed; they left every device.`,
        }).then(load)),
      )) : empty('No users yet.'));
    } catch (err) {
      fill(list, h('li.error', explain(err)));
    }
  }
  const form = h('form.inline', {onsubmit: async (e) => {
    e.preventDefault();
    const userId = name.value.trim();
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(userId)) {
      out.className = 'outcome error';
      out.textContent = 'A user name is 1 to 64 letters, digits or . _ : -';
      return;
    }
    const password = generatePassword();
    fill(shown);
    const r = await act(add, out, `Adding ${userId}…`, () => admin('userAdd', {userId, password}), {
      done: () => `${userId} was added.`,
      errors: {CONFLICT: `A user “${userId}” already exists.`},
    });
    if (r.ok) {
      name.value = '';
      fill(shown,
        h('p', 'Password for ', h('strong', userId), ' — shown only now; the hub does not keep it. Hand it over, then close this note:'),
        h('p.big', h('code', {id: 'admin-new-password'}, password)),
        h('button', {type: 'button', onclick: () => fill(shown)}, 'I have noted it'));
      load();
    }
  }}, name, add);
  load();
  return section('Users', form, shown, out, list);
}

function pluginsSection() {
  const list = h('ul', {id: 'admin-plugins'});
  admin('plugins').then(
    ({plugins, details}) => fill(list, Object.entries(plugins).map(([n, st]) => h('li', {dataset: {plugin: n}},
      h('span.name', n), h('span.pill', {class: st === 'running' ? 'on' : 'off'}, st),
      h('span.meta', [details?.[n]?.version, details?.[n]?.error].filter(Boolean).join(' · '))))),
    (err) => fill(list, h('li.error', explain(err))),
  );
  return section('Plugins', list);
}

function inventorySection() {
  const list = h('ul.devices', {id: 'admin-inventory'});
  const out = outcome();
  const load = () => admin('devices').then(
    ({devices}) => fill(list, devices.length ? devices.map((d) => h('li', {dataset: {deviceId: d.deviceId}},
      h('span.name', d.name || d.deviceId),
      h('span.meta', `${d.deviceId} · ${d.model} · ${d.transport} · ${d.bindMode.replace(/_/g, ' ')} · ${d.bindings} bound${d.owner ? ' · owner ' + d.owner : ''}${d.bindable ? ' · bindable' : ''} · seen ${formatTime(d.lastSeen)}`),
      onlinePill(d.online),
      d.bindings ? confirmButton('Unbind all', 'Unbind everyone?', (b) => act(b, out, 'Unbinding…', () => admin('adminUnbindDevice', {deviceId: d.deviceId}), {done: () => `${d.deviceId}: every binding and share removed.`}).then(load)) : null,
    )) : empty('The hub has not seen any device yet.')),
    (err) => fill(list, h('li.error', explain(err))),
  );
  load();
  return section('Device inventory', h('button', {type: 'button', onclick: load}, 'Refresh'), out, list);
}

function auditSection() {
  const device = h('input', {id: 'audit-device', placeholder: 'device id', maxlength: 64, 'aria-label': 'Filter by device'});
  const user = h('input', {id: 'audit-user', placeholder: 'user', maxlength: 64, 'aria-label': 'Filter by user'});
  const go = h('button.primary', {type: 'submit', id: 'audit-go'}, 'Show');
  const out = outcome();
  const body = h('ol.audit', {id: 'audit-rows', reversed: true});
  out.id = 'audit-outcome';
  const matches = (u) => (e) => !u || e.actor === u || e.actor === 'admin:' + u || e.subject === u;
  const load = async () => {
    const params = {limit: 10000};
    const d = device.value.trim();
    if (d) params.deviceId = d;
    const u = user.value.trim();
    const r = await act(go, out, 'Reading the audit log…', () => admin('auditLog', params), {
      done: ({entries}) => {
        const n = entries.filter(matches(u)).length;
        return `${n} entr${n === 1 ? 'y' : 'ies'}${d || u ? ' matching' : ''}, newest first${n > 300 ? ' (the last 300 shown)' : ''}.`;
      },
    });
    if (!r.ok) return;
    const rows = r.result.entries.filter(matches(u)).slice(-300).reverse();
    fill(body, rows.map((e) => h('li', {dataset: {actor: e.actor, action: e.action, subject: e.subject ?? '', deviceId: e.deviceId}},
      h('span.what', h('strong', e.actor), ` ${e.action} `, h('code', e.deviceId)),
      h('span.meta', [e.subject && `subject ${e.subject}`, e.reason, formatTime(e.at)].filter(Boolean).join(' · ')))));
  };
  load();
  return section('Audit log',
    h('form.inline', {onsubmit: (e) => (e.preventDefault(), load())}, device, user, go),
    out, body);
}

function pairingSection() {
  const box = h('div.qr', {id: 'pairing'});
  admin('pair').then(
    async (res) => {
      const link = res.link || res.url || `hearth://pair?host=${res.host}&port=${res.port}&ca=${res.ca}`;
      const canvas = h('canvas', {id: 'pair-canvas', 'aria-label': 'Pairing QR code'});
      await QRCode.toCanvas(canvas, link, {errorCorrectionLevel: 'M', margin: 2, width: 232});
      fill(box, canvas, h('p', h('code', {id: 'pair-link'}, link)),
        h('p.hint', 'A phone app scans this to find the hub and pin its certificate (the CA fingerprint in the link).'),
        res.web ? h('p', 'Web app for the household: ', h('code', res.web)) : null,
        h('p', h('a', {href: '/ca.crt', download: 'hearth-ca.crt'}, 'Download the hub’s CA certificate'), ' (install it on a device so browsers trust the hub without a warning).'));
    },
    (err) => fill(box, h('p.error', explain(err, {UNKNOWN_METHOD: 'The front door (plugin web) is not running, so there is no pairing link.'}))),
  );
  return section('Pair a phone', box);
}

function statusSection() {
  const p = h('p', {id: 'admin-status'}, 'Reading…');
  admin('status').then(
    (s) => fill(p, `hub ${s.state}${s.version ? ' ' + s.version : ''} · ${s.users ?? '?'} users · ${s.terminals ?? '?'} terminals · ${s.devices ?? '?'} devices · ${s.bindings ?? '?'} bindings`),
    (err) => fill(p, explain(err)),
  );
  return section('Hub', p);
}

export function adminView() {
  return h('div.view', h('h1', 'Installer'), statusSection(), usersSection(), pluginsSection(), inventorySection(), auditSection(), pairingSection());
}
