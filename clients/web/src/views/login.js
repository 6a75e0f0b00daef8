import {h} from '../dom.js';
import {canRemember} from '../session.js';

let failures = 0;

/** The sentence for a failed login. */
export function loginError(err) {
  const code = err?.code;
  const text = `${err?.message || ''}`.toLowerCase();
  if (code === 'LOCKED_OUT' || /banned|locked|too many/.test(text)) {
    return 'Too many failed logins from this address: the hub refuses it for 15 minutes. Try again later.';
  }
  if (code === 'NOT_AUTHORIZED') {
    failures++;
    return failures >= 5
      ? 'Wrong user name or password. Careful: after 20 failed logins from this address within 15 minutes the hub refuses it for 15 minutes.'
      : 'Wrong user name or password.';
  }
  if (code !== 'NOT_AUTHORIZED') {
    return failures >= 5
      ? 'The hub did not let this login through: it is unreachable, or it refuses this address for 15 minutes after too many failed logins.'
      : `Cannot reach the hub. Is it running, and is this page opened from its address? (${code || 'ERROR'})`;
  }
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
