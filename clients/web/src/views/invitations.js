import {h, fill, countdown, formatTime} from '../dom.js';
import {explain} from '../errors.js';
import {store, on, refreshDevices, refreshInvitations} from '../store.js';
import {act, outcome, section, confirmButton, empty} from '../ui.js';

const ANSWER_ERRORS = {
  TOKEN_EXPIRED: 'This invitation has expired. Ask for a new one.',
  CONFLICT: 'This invitation is no longer pending (it was cancelled or already answered).',
  TOKEN_USED: 'This invitation was already answered.',
  ALREADY_BOUND: 'You already have this device.',
  FORBIDDEN: 'This invitation is not for you.',
};

export function invitationsView({cleanup}) {
  const toMe = h('ul.shares', {id: 'invites-to-me'});
  const fromMe = h('ul.shares', {id: 'invites-from-me'});
  const out = outcome();

  async function load() {
    try {
      const [mine, theirs] = await Promise.all([
        store.client.things.listShares({direction: 'toMe'}),
        store.client.things.listShares({direction: 'fromMe'}),
      ]);
      const now = Date.now();
      const pending = mine.filter((s) => s.state === 'pending' && s.expiresAt > now);
      const past = mine.filter((s) => !pending.includes(s)).slice(-10).reverse();
      fill(
        toMe,
        pending.length
          ? pending.map((s) => {
              const accept = h('button.primary', {type: 'button'}, 'Accept');
              const reject = h('button', {type: 'button'}, 'Decline');
              accept.onclick = () =>
                act(accept, out, 'Accepting…', () => store.client.things.acceptShare({sharingId: s.sharingId}), {
                  errors: ANSWER_ERRORS,
                  done: () => `✓ ${s.name || s.deviceId} is now shared with you.`,
                }).then(() => (refreshDevices(), refreshInvitations(), load()));
              reject.onclick = () =>
                act(reject, out, 'Declining…', () => store.client.things.rejectShare({sharingId: s.sharingId}), {
                  errors: ANSWER_ERRORS,
                  done: () => 'Declined.',
                }).then(() => (refreshInvitations(), load()));
              return h(
                'li.invite',
                {dataset: {sharingId: s.sharingId}},
                h('span.name', s.name || s.deviceId),
                h('span.meta', `from ${s.fromUser}${s.model ? ' · ' + s.model : ''} · `, countdown(s.expiresAt, load)),
                h('span.buttons', accept, reject),
              );
            })
          : empty('No invitations waiting for you.'),
        past.map((s) => h('li.past', h('span.name', s.name || s.deviceId), h('span.meta', `from ${s.fromUser} · ${s.state}`))),
      );
      const open = theirs.filter((s) => s.state === 'pending' && s.expiresAt > now);
      fill(
        fromMe,
        open.length
          ? open.map((s) =>
              h(
                'li',
                h('span.name', s.deviceId),
                h('span.meta', s.way === 'qr' ? 'QR key' : `to ${s.guest}`, ' · ', countdown(s.expiresAt, load)),
                confirmButton('Cancel', 'Cancel it?', (b) =>
                  act(b, out, 'Cancelling…', () => store.client.things.cancelShare({sharingId: s.sharingId}), {done: () => 'Cancelled.'}).then(load),
                ),
              ),
            )
          : empty('You have no pending shares.'),
        theirs
          .filter((s) => !open.includes(s))
          .slice(-10)
          .reverse()
          .map((s) =>
            h('li.past', h('span.name', s.deviceId), h('span.meta', `${s.way === 'qr' ? 'QR key' : 'to ' + s.guest} · ${s.state} · ${formatTime(s.createdAt)}`)),
          ),
      );
    } catch (err) {
      out.className = 'outcome error';
      out.textContent = explain(err);
    }
  }
  cleanup(on('invitations', load));
  cleanup(on('shares', load));
  cleanup(on('reconnected', load));
  load();
  return h(
    'div.view',
    h('h1', 'Invitations'),
    section('Shared with you', toMe),
    out,
    section('Shared by you', h('p.hint', 'Pending QR keys and invitations you made; recent ones below.'), fromMe),
  );
}
