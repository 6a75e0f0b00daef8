// Shared pieces of the page: progress + outcome for every action, toasts, confirm-by-pressing-
// twice, sections.

import {h} from './dom.js';
import {explain} from './errors.js';
import {emit} from './store.js';

/** A status line (role=status, announced by screen readers) for an action's progress/outcome. */
export function outcome() {
  return h('p.outcome', {role: 'status', 'aria-live': 'polite'});
}

/**
 * Runs an action: disables `button`, shows `pending` in `out`, then the success sentence
 * (`done(result)` → string or node) or the error in words. Resolves with the result or null.
 */
export async function act(button, out, pending, fn, {done, errors} = {}) {
  if (button) button.disabled = true;
  if (out) {
    out.className = 'outcome busy';
    out.textContent = pending;
  }
  try {
    const result = await fn();
    if (out) {
      out.className = 'outcome ok';
      const msg = done ? done(result) : 'Done.';
      out.replaceChildren(msg instanceof Node ? msg : document.createTextNode(msg));
    }
    return {ok: true, result};
  } catch (err) {
    if (out) {
      out.className = 'outcome error';
      out.textContent = explain(err, errors);
    }
    return {ok: false, error: err};
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

/** A button that asks to be pressed a second time before it runs. */
export function confirmButton(label, confirmLabel, onConfirm, cls = 'danger') {
  let armed = false;
  let timer = 0;
  const b = h('button', {type: 'button', class: cls}, label);
  b.addEventListener('click', () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      b.classList.add('armed');
      timer = setTimeout(() => {
        armed = false;
        b.textContent = label;
        b.classList.remove('armed');
      }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    b.textContent = label;
    b.classList.remove('armed');
    onConfirm(b);
  });
  return b;
}

export function section(title, ...body) {
  return h('section.card', h('h2', title), ...body);
}

export function toast(text) {
  emit('toast', text);
}

export function roleLabel(role) {
  return {owner: 'owner', special: 'first user', normal: 'member', guest: 'guest'}[role] || role;
}

export function onlinePill(online) {
  return h(
    'span.pill',
    {class: online ? 'on' : 'off', 'data-online': online ? 'true' : 'false'},
    online ? 'online' : 'offline',
  );
}

/** A list to show when there is nothing: a sentence instead of an empty box. */
export function empty(text) {
  return h('p.empty', text);
}
