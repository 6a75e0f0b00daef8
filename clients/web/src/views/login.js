import {h} from '../dom.js';
import {canRemember} from '../session.js';

// Failed logins of this tab in the last 15 minutes (the front door's window): the door refuses
// a locked-out address by closing the connection, which looks like an unreachable hub, so the
// page says which is likely from what it has seen.
const WINDOW_MS = 15 * 60 * 1000;
const KEY = 'hearth-login-failures';

function recentFailures(add = false) {
  let list = [];
  try {
    list = JSON.parse(sessionStorage.getItem(KEY) || '[]').filter((t) => t > Date.now() - WINDOW_MS);
  } catch {
    list = [];
  }
  if (add) list.push(Date.now());
  sessionStorage.setItem(KEY, JSON.stringify(list));
  return list.length;
}

/** The sentence for a failed login. */
export function loginError(err) {
  const code = err?.code;
  if (code === 'NOT_AUTHORIZED') {
    const n = recentFailures(true);
    return n >= 3
      ? `Wrong user name or password (${n} failed logins here in 15 minutes). After 20 from this address the hub refuses it for 15 minutes.`
      : 'Wrong user name or password.';
  }
  return recentFailures() > 0
    ? `The hub did not let this login through: it is unreachable, or it refuses this address for 15 minutes after too many failed logins. (${code || 'ERROR'})`
    : `Cannot reach the hub. Is it running, and is this page opened from its address? (${code || 'ERROR'})`;
}

/** A successful login clears the count. */
export function loginSucceeded() {
  sessionStorage.removeItem(KEY);
}

export function loginView({onLogin, message, userId}) {
  const out = h('p.outcome', {role: 'alert', id: 'login-error'}, message || '');
  if (message) out.classList.add('error');
  const user = h('input', {
    id: 'login-user',
    name: 'username',
    autocomplete: 'username',
    autocapitalize: 'none',
    spellcheck: 'false',
    required: true,
    maxlength: 64,
    pattern: '[A-Za-z0-9._:\\-]{1,64}',
    value: userId || '',
  });
  const pass = h('input', {
    id: 'login-password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const remember = h('input', {id: 'login-remember', type: 'checkbox', checked: canRemember(), disabled: !canRemember()});
  const submit = h('button.primary', {type: 'submit', id: 'login-submit'}, 'Log in');
  const form = h(
    'form.card.login',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        submit.disabled = true;
        out.className = 'outcome busy';
        out.textContent = 'Logging in…';
        const err = await onLogin({userId: user.value.trim(), password: pass.value, remember: remember.checked});
        if (err) {
          out.className = 'outcome error';
          out.textContent = loginError(err);
          submit.disabled = false;
          pass.select();
        }
      },
    },
    h('h1', 'Log in to your hub'),
    h('p.hint', 'Use the account the installer made for you on this hub.'),
    h('label', {for: 'login-user'}, 'User name'),
    user,
    h('label', {for: 'login-password'}, 'Password'),
    pass,
    h(
      'label.check',
      remember,
      ' Stay logged in on this browser',
      canRemember() ? null : h('span.hint', ' (needs a secure https page)'),
    ),
    submit,
    out,
  );
  queueMicrotask(() => (user.value ? pass : user).focus());
  return form;
}
