import QRCode from 'qrcode';
import {h, fill, countdown, formatTime} from '../dom.js';
import {explain} from '../errors.js';
import {store, on, refreshDevices} from '../store.js';
import {act, outcome, confirmButton, section, onlinePill, roleLabel, empty} from '../ui.js';
import {deviceTitle} from './devices.js';

const LAMP_MODEL = /lamp|light|bulb/i;

export function isLamp(d) {
  return LAMP_MODEL.test(d?.model || '') || (d?.state && typeof d.state.on === 'boolean');
}

/** A device's reply as readable text: "on: yes · brightness: 80". */
export function describeReply(result) {
  if (result === null || result === undefined) return 'no data';
  if (typeof result !== 'object') return String(result);
  const obj = result.state && typeof result.state === 'object' ? result.state : result;
  const parts = Object.entries(obj).map(([k, v]) => {
    if (typeof v === 'boolean') return `${k}: ${v ? 'yes' : 'no'}`;
    if (v && typeof v === 'object') return `${k}: ${JSON.stringify(v)}`;
    return `${k}: ${v}`;
  });
  return parts.length ? parts.join(' · ') : 'ok (no data)';
}

function ownerName(detail) {
  return detail?.relAccounts?.find((a) => a.role === 'owner' || a.role === 'special')?.userId;
}

export function deviceView({arg: deviceId, cleanup}) {
  let detail = null;
  const root = h('div.view.device', {dataset: {deviceId}});
  const title = h('h1', {id: 'device-title'}, store.devices.get(deviceId)?.name || deviceId);
  const meta = h('p.meta', {id: 'device-meta'});
  const pill = h('span');
  const notice = h('div.notice', {id: 'device-notice', role: 'alert', hidden: true});
  const controls = h('div', {id: 'controls'});
  const members = h('ul.members', {id: 'members', 'aria-label': 'Members'});
  const membersOut = outcome();
  const shareBox = h('div', {id: 'share'});
  const leaveBox = h('div');

  const me = () => store.devices.get(deviceId);
  const myRole = () => me()?.role || detail?.relAccounts?.find((a) => a.userId === store.userId)?.role;
  const isOwner = () => myRole() === 'owner';

  function gone(sentence) {
    notice.hidden = false;
    fill(
      notice,
      h('strong', 'This device is no longer yours. '),
      sentence || '',
      ' ',
      h('a', {href: '#/devices'}, 'Back to my devices'),
    );
    root.classList.add('gone');
    for (const el of root.querySelectorAll('button, input, select, textarea')) el.disabled = true;
    if (root.isConnected) notice.scrollIntoView({block: 'center'});
  }

  function renderHead() {
    const d = me();
    if (!d && !detail) return;
    const src = {...detail, ...d};
    title.textContent = deviceTitle(src);
    fill(
      meta,
      [src.model, src.transport, detail?.bindMode?.replace(/_/g, ' '), myRole() && `you: ${roleLabel(myRole())}`]
        .filter(Boolean)
        .join(' · '),
    );
    fill(pill, onlinePill(Boolean(src.online)));
  }

  // ---- controls -----------------------------------------------------------------------------
  const reply = h('p.reply', {id: 'reply', role: 'status', 'aria-live': 'polite'});

  function showReply(r, command) {
    reply.className = 'reply ' + (r.ok ? 'ok' : 'error');
    if (r.ok) {
      fill(reply, h('span.label', `${command} → the device replied: `), h('span.value', describeReply(r.result)));
    } else {
      fill(reply, h('span.label', `${command} failed: `), explain(r.error));
    }
  }

  let userSent = false;
  async function send(button, command, params) {
    userSent = true;
    reply.className = 'reply busy';
    reply.textContent = `Sending ${command}…`;
    if (button) button.disabled = true;
    try {
      const result = await store.client.things.controlDevice({deviceId, command, params});
      const d = me();
      if (d && result && typeof result === 'object') d.state = {...d.state, ...(result.state || result)};
      showReply({ok: true, result}, command);
      renderLampState();
    } catch (error) {
      showReply({ok: false, error}, command);
    } finally {
      if (button?.isConnected) button.disabled = false;
    }
  }

  const onBtn = h('button.primary', {type: 'button', id: 'lamp-on', onclick: (e) => send(e.currentTarget, 'set', {on: true})}, 'Turn on');
  const offBtn = h('button', {type: 'button', id: 'lamp-off', onclick: (e) => send(e.currentTarget, 'set', {on: false})}, 'Turn off');
  const bright = h('input', {id: 'lamp-brightness', type: 'range', min: 0, max: 100, step: 5, value: 50});
  const brightVal = h('output', {for: 'lamp-brightness'}, '50 %');
  bright.addEventListener('input', () => (brightVal.textContent = bright.value + ' %'));
  bright.addEventListener('change', () => send(null, 'set', {brightness: Number(bright.value)}));
  const lampState = h('p.lampstate', {id: 'lamp-state'});

  function renderLampState() {
    const s = me()?.state;
    lampState.classList.toggle('unknown', !s);
    if (!s) {
      lampState.textContent = 'State not known yet: turn it on or off, or read it.';
      return;
    }
    const parts = [];
    if (typeof s.on === 'boolean') parts.push(s.on ? 'The lamp is on' : 'The lamp is off');
    if (s.brightness != null) {
      parts.push(`brightness ${s.brightness} %`);
      if (document.activeElement !== bright) {
        bright.value = s.brightness;
        brightVal.textContent = s.brightness + ' %';
      }
    }
    lampState.textContent = parts.join(', ') + '.';
  }

  function renderControls() {
    const d = me() || detail;
    if (!d) return;
    if (isLamp(d)) {
      fill(
        controls,
        h('div.buttons', onBtn, offBtn, h('button', {type: 'button', onclick: (e) => send(e.currentTarget, 'get', {})}, 'Read state')),
        h('label', {for: 'lamp-brightness'}, 'Brightness ', brightVal),
        bright,
        lampState,
        reply,
      );
      renderLampState();
    } else {
      const cmd = h('input', {id: 'cmd-name', value: 'get', maxlength: 64, 'aria-label': 'Command'});
      const params = h('textarea', {id: 'cmd-params', rows: 2, 'aria-label': 'Parameters (JSON object)'}, '{}');
      const go = h('button.primary', {type: 'submit'}, 'Send');
      fill(
        controls,
        h(
          'form.inline',
          {
            onsubmit: (e) => {
              e.preventDefault();
              let p;
              try {
                p = JSON.parse(params.value || '{}');
                if (!p || typeof p !== 'object' || Array.isArray(p)) throw new Error();
              } catch {
                reply.className = 'reply error';
                reply.textContent = 'Parameters must be a JSON object, like {"on": true}.';
                return;
              }
              send(go, cmd.value.trim(), p);
            },
          },
          h('label', {for: 'cmd-name'}, 'Command'),
          cmd,
          h('label', {for: 'cmd-params'}, 'Parameters (JSON)'),
          params,
          go,
        ),
        reply,
      );
    }
    const last = me()?.lastReply;
    if (last && last.userId && last.userId !== store.userId) {
      reply.className = 'reply';
      reply.textContent = `${last.userId} sent ${last.command} → ${last.ok ? 'the device replied: ' + describeReply(last.result) : explain(last.error)}`;
    }
  }

  // ---- members ------------------------------------------------------------------------------
  function renderMembers() {
    if (!detail) return;
    const list = detail.relAccounts || [];
    fill(
      members,
      list.length
        ? list.map((a) =>
            h(
              'li.member',
              {dataset: {userId: a.userId, role: a.role}},
              h('span.name', a.userId, a.userId === store.userId ? ' (you)' : ''),
              h('span.meta', `${roleLabel(a.role)} · since ${formatTime(a.boundAt)}`),
              isOwner() && a.userId !== store.userId
                ? confirmButton('Remove', `Remove ${a.userId}?`, (b) =>
                    act(b, membersOut, `Removing ${a.userId}…`, () => store.client.things.removeMember({deviceId, userId: a.userId}), {
                      done: () => `${a.userId} was removed from this device.`,
                    }).then(loadDetail),
                  )
                : null,
            ),
          )
        : empty('No members.'),
    );
    if (!isOwner() && myRole() !== 'special') {
      members.append(h('li.hint', 'You see the owner and yourself; the owner sees everyone.'));
    }
  }

  async function loadDetail() {
    try {
      detail = await store.client.things.getDeviceDetail({deviceId});
      renderHead();
      renderMembers();
      renderControls();
      renderShare();
      renderLeave();
    } catch (err) {
      if (['FORBIDDEN', 'NOT_FOUND'].includes(err.code)) {
        gone(store.notices.get(deviceId) || (err.code === 'NOT_FOUND' ? 'The hub does not know this device.' : 'You are not bound to it.'));
      } else {
        membersOut.className = 'outcome error';
        membersOut.textContent = explain(err);
      }
    }
  }

  // ---- sharing ------------------------------------------------------------------------------
  const shareOut = outcome();
  const qrBox = h('div.qr', {id: 'qr-box'});
  const sharesList = h('ul.shares', {id: 'device-shares'});

  async function shareQr(button) {
    const r = await act(button, shareOut, 'Asking the hub for a share key…', () => store.client.things.shareDevice({deviceId, way: 'qr'}), {
      done: () => 'Show this code to the person to share with. It works once.',
      errors: {NOT_OWNER: `Only the owner may share this device${ownerName(detail) ? ` — ask ${ownerName(detail)}` : ''}. As ${roleLabel(myRole())} you may use it, not share it.`},
    });
    if (!r.ok) {
      fill(qrBox);
      return;
    }
    const {qrKey, expiresAt, sharingId} = r.result;
    const canvas = h('canvas', {id: 'qr-canvas', 'aria-label': 'Share QR code', dataset: {sharingId}});
    await QRCode.toCanvas(canvas, qrKey, {errorCorrectionLevel: 'M', margin: 2, width: 232});
    fill(
      qrBox,
      canvas,
      h('p', 'Key: ', h('code', {id: 'qr-key'}, qrKey)),
      h('p', countdown(expiresAt, () => {
        canvas.classList.add('expired');
        shareOut.className = 'outcome';
        shareOut.textContent = 'This key has expired. Press “Share by QR” for a fresh one.';
      })),
    );
    qrBox.scrollIntoView({block: 'center'});
    loadShares();
  }

  const guest = h('input', {id: 'share-guest', placeholder: 'their user name', maxlength: 64, autocapitalize: 'none', 'aria-label': 'User to invite', list: 'share-guests'});
  // Only installers may list the hub's accounts; everyone else types the name.
  const guests = h('datalist', {id: 'share-guests'});
  if (store.isAdmin) {
    store.client.adminRequest('userList', {}).then(
      ({users}) => fill(guests, users.filter((u) => u.userId !== store.userId).map((u) => h('option', {value: u.userId}))),
      () => {},
    );
  }
  async function shareAccount(button) {
    const g = guest.value.trim();
    if (!g) {
      shareOut.className = 'outcome error';
      shareOut.textContent = 'Type the user name of the person to invite.';
      return;
    }
    await act(button, shareOut, `Inviting ${g}…`, () => store.client.things.shareDevice({deviceId, way: 'account', guest: g}), {
      done: (res) => `${g} is invited until ${formatTime(res.expiresAt)}. They accept it under Invitations.`,
      errors: {
        NOT_FOUND: `There is no user “${g}” on this hub.`,
        CONFLICT: `${g} already has this device or a pending invitation to it.`,
        NOT_OWNER: `Only the owner may share this device${ownerName(detail) ? ` — ask ${ownerName(detail)}` : ''}.`,
      },
    });
    loadShares();
  }

  async function loadShares() {
    if (!isOwner() && myRole() !== 'special') {
      fill(sharesList);
      return;
    }
    try {
      const all = await store.client.things.listShares({direction: 'fromMe'});
      const mine = all.filter((s) => s.deviceId === deviceId && s.state === 'pending' && s.expiresAt > Date.now());
      fill(
        sharesList,
        mine.map((s) =>
          h(
            'li',
            h('span', s.way === 'qr' ? 'QR key' : `Invitation to ${s.guest}`, ' · pending · ', countdown(s.expiresAt, null)),
            confirmButton('Cancel', 'Cancel it?', (b) =>
              act(b, shareOut, 'Cancelling…', () => store.client.things.cancelShare({sharingId: s.sharingId}), {done: () => 'Share cancelled.'}).then(loadShares),
            ),
          ),
        ),
      );
    } catch {
      // the share buttons still work; the pending list is a convenience
    }
  }

  function renderShare() {
    fill(
      shareBox,
      h('div.buttons', h('button.primary', {type: 'button', id: 'share-qr', onclick: (e) => shareQr(e.currentTarget)}, 'Share by QR')),
      qrBox,
      h('div.inline', guest, guests, h('button', {type: 'button', id: 'share-account', onclick: (e) => shareAccount(e.currentTarget)}, 'Invite')),
      shareOut,
      sharesList,
      isOwner() || myRole() === 'special' ? null : h('p.hint', `Only the owner${ownerName(detail) ? ` (${ownerName(detail)})` : ''} may share this device.`),
    );
    loadShares();
  }

  // ---- leave / unbind -----------------------------------------------------------------------
  const leaveOut = outcome();
  function renderLeave() {
    const owner = isOwner();
    fill(
      leaveBox,
      confirmButton(owner ? 'Unbind for everyone' : 'Leave this device', owner ? 'Press again: remove everyone' : 'Press again to leave', async (b) => {
        const r = await act(b, leaveOut, owner ? 'Unbinding…' : 'Leaving…', () => store.client.things.unbindDevice({deviceId}), {
          done: () => (owner ? 'Unbound: nobody has this device any more.' : 'You left this device.'),
        });
        if (r.ok) {
          await refreshDevices();
          location.hash = '#/devices';
        }
      }),
      h('p.hint', owner ? 'As the owner, unbinding removes every member and every pending share.' : 'Only you leave; the others keep the device.'),
      leaveOut,
    );
  }

  // ---- live updates -------------------------------------------------------------------------
  cleanup(
    on('device:' + deviceId, () => {
      if (!store.devices.has(deviceId) && store.devicesLoaded) {
        gone(store.notices.get(deviceId));
        return;
      }
      renderHead();
      renderLampState();
      const last = me()?.lastReply;
      if (last && last.userId !== store.userId && !reply.classList.contains('busy')) {
        reply.className = 'reply';
        reply.textContent = `${last.userId} sent ${last.command} → ${last.ok ? 'the device replied: ' + describeReply(last.result) : explain(last.error)}`;
      }
    }),
  );
  cleanup(on('members:' + deviceId, () => store.devices.has(deviceId) && loadDetail()));
  cleanup(
    on('shares', (data) => {
      const canvas = qrBox.querySelector('canvas');
      if (data?.accepted && canvas && canvas.dataset.sharingId === data.sharingId) {
        canvas.classList.add('expired');
        const cd = qrBox.querySelector('.countdown');
        if (cd) cd.replaceWith(h('strong.ok', `Used by ${data.userId}: this key works no more.`));
      }
      loadShares();
    }),
  );
  cleanup(on('reconnected', loadDetail));

  fill(
    root,
    h('p.back', h('a', {href: '#/devices'}, '‹ My devices')),
    h('div.titlebar', title, pill),
    meta,
    notice,
    section('Control', controls),
    section('Members', members, membersOut),
    section('Share', shareBox),
    section('Leave', leaveBox),
  );
  renderHead();
  renderControls();
  loadDetail();
  // A lamp whose state the page does not know yet is asked quietly (shown in the state line; a
  // command the user sends meanwhile wins).
  const d0 = me();
  if (d0 && d0.online && !d0.state && isLamp(d0)) {
    store.client.things.controlDevice({deviceId, command: 'get', params: {}}).then(
      (result) => {
        const d = me();
        if (!d || userSent || !result || typeof result !== 'object') return;
        d.state = {...d.state, ...(result.state || result)};
        renderLampState();
      },
      () => {}, // the controls still work; errors of a command the user sends are shown
    );
  }
  return root;
}
