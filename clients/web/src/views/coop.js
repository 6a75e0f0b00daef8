import {h, fill, formatTime} from '../dom.js';
import {explain} from '../errors.js';
import {store, on} from '../store.js';
import {act, outcome, section, confirmButton, empty, onlinePill} from '../ui.js';

const STATE_WORDS = {queued: 'waiting (target offline)', delivered: 'delivered', replied: 'replied', expired: 'expired', timeout: 'no reply in time', offered: 'offered'};

function who(t) {
  return `${t.deviceName || t.clientIdentify} (${t.userId}, ${t.deviceModel || t.appId})`;
}

function perms(t) {
  return t.allPermissions ? 'all commands' : (t.permissions || []).join(', ') || 'nothing';
}

/** Terminals and cooperation: my terminals, access requests, grants both ways, commands. */
export function coopView({cleanup}) {
  const c = () => store.client.coop;
  const out = outcome();
  const mine = h('ul.terms', {id: 'my-terminals'});
  const requests = h('ul.terms', {id: 'access-requests'});
  const granted = h('ul.terms', {id: 'grants-given'});
  const received = h('ul.terms', {id: 'grants-received'});
  const sent = h('ul.terms', {id: 'commands-sent'});
  const incoming = h('ul.terms', {id: 'commands-received'});
  const self = store.client.self;

  const ep = (t) => ({appId: t.appId, userId: t.userId, clientIdentify: t.clientIdentify});

  function renderRequests() {
    fill(
      requests,
      store.accessRequests.length
        ? store.accessRequests.map((r) => {
            const done = () => {
              store.accessRequests = store.accessRequests.filter((x) => x.commandId !== r.commandId);
              renderRequests();
              load();
            };
            const yes = h('button.primary', {type: 'button'}, 'Agree');
            const no = h('button', {type: 'button'}, 'Reject');
            yes.onclick = () => act(yes, out, 'Agreeing…', () => c().agreeAccessRequest({commandId: r.commandId, to: r.from}), {done: () => 'Access granted.'}).then(done);
            no.onclick = () => act(no, out, 'Rejecting…', () => c().rejectAccessRequest({commandId: r.commandId, to: r.from}), {done: () => 'Rejected.'}).then(done);
            const p = r.commandParams || {};
            return h('li', h('span.name', `${r.from.clientIdentify} of ${r.from.userId}`), h('span.meta', `asks for ${p.allPermissions ? 'all commands' : (p.permissions || []).join(', ')}`), h('span.buttons', yes, no));
          })
        : empty('No access requests waiting.'),
    );
  }

  function renderCommands() {
    const list = [...store.commandsSent.values()].reverse();
    fill(
      sent,
      list.length
        ? list.map((x) =>
            h('li', {dataset: {commandId: x.commandId, state: x.state}},
              h('span.name', `${x.commandType} → ${x.to.clientIdentify}`),
              h('span.meta', `${STATE_WORDS[x.state] || x.state} (${x.stateCode})${x.reason ? ', ' + x.reason : ''}${x.reply ? ' · reply: ' + JSON.stringify(x.reply) : ''} · ${formatTime(x.at)}`)),
          )
        : empty('No commands sent from this browser yet.'),
    );
    fill(
      incoming,
      store.commandsReceived.length
        ? store.commandsReceived.map((x) => {
            const b = h('button', {type: 'button', disabled: Boolean(x.replied)}, x.replied ? 'Replied' : 'Reply “ok”');
            b.onclick = () =>
              act(b, out, 'Replying…', () => c().replyCommand({commandId: x.commandId, to: x.from, commandParams: {ok: true}}), {done: () => 'Replied.'}).then((r) => {
                if (r.ok) x.replied = true;
                renderCommands();
              });
            return h('li', h('span.name', `${x.commandType} from ${x.from.clientIdentify} (${x.from.userId})`), h('span.meta', JSON.stringify(x.commandParams || {})), b);
          })
        : empty('No commands received.'),
    );
  }

  function sendForm(t) {
    const type = h('input', {maxlength: 64, value: t.allPermissions ? 'ping' : t.permissions?.[0] || '', 'aria-label': 'Command type'});
    const go = h('button', {type: 'submit'}, 'Send');
    return h('form.inline', {onsubmit: (e) => {
      e.preventDefault();
      const commandType = type.value.trim();
      act(go, out, `Sending ${commandType}…`, () =>
        c().sendCommand({
          commandType,
          to: ep(t),
          commandParams: {},
          onResponse: (res) => {
            const x = store.commandsSent.get(res.commandId);
            if (x) Object.assign(x, {state: 'replied', stateCode: 3, reply: res.commandParams});
            renderCommands();
          },
        }).then((res) => {
          if (!store.commandsSent.has(res.commandId) || store.commandsSent.get(res.commandId).stateCode !== 3) {
            store.commandsSent.set(res.commandId, {...res, commandType, to: ep(t), at: Date.now(), ...store.commandsSent.get(res.commandId)});
          }
          renderCommands();
          return res;
        }), {done: (res) => `Command ${res.state}.`});
    }}, type, go);
  }

  let lastSig = '';
  async function load() {
    try {
      const [my, all] = await Promise.all([c().getMyDevices(), c().getAllDevices()]);
      // Re-fill a list only when what it shows changed: a sync hint must not wipe a form the
      // user is typing in (or a button under the pointer).
      const sig = JSON.stringify([my, all]);
      if (sig === lastSig) return;
      lastSig = sig;
      fill(mine, my.length ? my.map((t) => h('li', {dataset: {clientIdentify: t.clientIdentify}},
        h('span.name', t.deviceName || t.clientIdentify, t.clientIdentify === self?.clientIdentify ? ' (this browser)' : ''),
        h('span.meta', `${t.deviceModel || ''} · ${t.appId} · ${t.clientIdentify}`), onlinePill(t.online),
        t.clientIdentify === self?.clientIdentify ? null : confirmButton('Remove', 'Remove it?', (b) =>
          act(b, out, 'Removing…', () => c().removeMyDevice({clientIdentify: t.clientIdentify}), {done: () => 'Removed from your list.'}).then(load)),
      )) : empty('No terminals.'));
      fill(granted, all.authorizedDevices.length ? all.authorizedDevices.map((t) => h('li',
        h('span.name', who(t)), h('span.meta', `may send: ${perms(t)}`), onlinePill(t.online),
        confirmButton('Revoke', 'Revoke it?', (b) => act(b, out, 'Revoking…', () => c().removeAuthorizedDevice(ep(t)), {done: () => 'Revoked.'}).then(load)),
      )) : empty('You have granted no terminal access to this browser.'));
      fill(received, all.accessibleDevices.length ? all.accessibleDevices.map((t) => h('li',
        h('span.name', who(t)), h('span.meta', `you may send: ${perms(t)}`), onlinePill(t.online), sendForm(t),
        confirmButton('Drop', 'Drop it?', (b) => act(b, out, 'Dropping…', () => c().removeAccessibleDevice(ep(t)), {done: () => 'Dropped.'}).then(load)),
      )) : empty('No terminal has granted this browser access.'));
    } catch (err) {
      out.className = 'outcome error';
      out.textContent = explain(err);
    }
  }

  // Asking another terminal for access by the openId it shows.
  const openId = h('input', {id: 'coop-openid', placeholder: 'openId shown by the other terminal', 'aria-label': 'openId', autocomplete: 'off'});
  const permsIn = h('input', {id: 'coop-perms', placeholder: 'command types, e.g. play, pause (empty = all)', 'aria-label': 'Permissions'});
  const askBtn = h('button.primary', {type: 'submit', id: 'coop-ask'}, 'Ask for access');
  const askOut = outcome();
  askOut.id = 'coop-ask-outcome';
  const ask = h('form', {onsubmit: (e) => {
    e.preventDefault();
    const list = permsIn.value.split(/[\s,]+/).filter(Boolean);
    act(askBtn, askOut, 'Looking the terminal up…', async () => {
      const info = await c().getDeviceInfo({openId: openId.value.trim()});
      askOut.textContent = `Asking ${who(info)}…`;
      return c().requestAccessTo({
        appId: info.appId, userId: info.userId, clientIdentify: info.clientIdentify,
        permissions: list, allPermissions: list.length === 0,
        onResponse: (res) => {
          askOut.className = 'outcome ' + (res.code === 0 ? 'ok' : 'error');
          askOut.textContent = res.code === 0 ? `${info.clientIdentify} agreed.` : `${info.clientIdentify}: ${res.message || 'rejected'}.`;
          load();
        },
      });
    }, {done: () => 'Asked; waiting for the answer on the other terminal…'});
  }}, h('label', {for: 'coop-openid'}, 'Their openId'), openId, h('label', {for: 'coop-perms'}, 'Commands'), permsIn, askBtn, askOut);

  cleanup(on('coop', () => (renderRequests(), renderCommands(), load())));
  renderRequests();
  renderCommands();
  load();
  return h('div.view',
    h('h1', 'Terminals and cooperation'),
    h('p.hint', 'This browser is one terminal of your account. Its openId (show it to another terminal that wants access): ', h('code', {id: 'my-openid'}, store.client.openId || '—')),
    section('Access requests to this browser', requests),
    out,
    section('My terminals', mine),
    section('Terminals I let in', h('p.hint', 'They may send commands to this browser.'), granted),
    section('Terminals that let me in', h('p.hint', 'This browser may send them commands.'), received),
    section('Commands sent (in flight and done)', sent),
    section('Commands received', incoming),
    section('Ask a terminal for access', ask),
  );
}
