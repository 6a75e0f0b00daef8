import {h, fill} from '../dom.js';
import {store, refreshDevices} from '../store.js';
import {act, outcome, section} from '../ui.js';

/** A share key as pasted or read from a code: whitespace dropped, a `key=` link accepted. */
export function parseKey(text) {
  let t = String(text || '').trim();
  const m = /[?&]key=([^&\s]+)/.exec(t);
  if (m) t = decodeURIComponent(m[1]);
  return t.replace(/\s+/g, '');
}

const KEY_ERRORS = {
  TOKEN_INVALID: 'This is not a valid share key: it may be mistyped, cut off, or the share was cancelled.',
  TOKEN_EXPIRED: 'This share key has expired. Ask for a fresh one (each press of “Share by QR” makes a new key).',
  TOKEN_USED: 'This share key was already used — each key works once. Ask for a fresh one.',
  ALREADY_BOUND: 'You already have this device. (The key stays usable for someone else.)',
  RATE_LIMITED: 'Too many wrong keys in a short time: scanning is blocked for 15 minutes.',
  LIMIT_REACHED: 'This device already has the most members it may have.',
  INVALID_REQUEST: 'That does not look like a share key.',
};

export function scanView({cleanup}) {
  const out = outcome();
  out.id = 'scan-outcome';
  const key = h('input', {id: 'scan-key', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'paste the key here', 'aria-label': 'Share key'});
  const go = h('button.primary', {type: 'submit', id: 'scan-submit'}, 'Add shared device');

  async function submit(text) {
    const qrKey = parseKey(text);
    if (!qrKey) {
      out.className = 'outcome error';
      out.textContent = 'Paste or scan a share key first.';
      return;
    }
    const r = await act(go, out, 'Checking the key with the hub…', () => store.client.things.scanShare({qrKey}), {
      errors: KEY_ERRORS,
      done: (res) =>
        h('span', `✓ ${res.name || res.deviceId} (${res.model}) is shared with you; you are a guest. `,
          h('a', {href: '#/device/' + encodeURIComponent(res.deviceId)}, 'Open it')),
    });
    if (r.ok) {
      key.value = '';
      refreshDevices();
    }
  }

  // ---- camera -------------------------------------------------------------------------------
  const camBox = h('div.camera', {id: 'camera'});
  let stream = null;
  let raf = 0;
  const stopCamera = () => {
    cancelAnimationFrame(raf);
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    fill(camBox);
  };
  cleanup(stopCamera);

  async function startCamera(button) {
    const camOut = outcome();
    fill(camBox, camOut);
    camOut.className = 'outcome busy';
    camOut.textContent = 'Opening the camera…';
    button.disabled = true;
    try {
      const [{default: jsQR}, s] = await Promise.all([
        import('jsqr'),
        navigator.mediaDevices.getUserMedia({video: {facingMode: 'environment'}, audio: false}),
      ]);
      stream = s;
      const video = h('video', {playsinline: true, muted: true, 'aria-label': 'Camera'});
      video.srcObject = s;
      await video.play();
      const canvas = document.createElement('canvas');
      const ctx = canvas.getContext('2d', {willReadFrequently: true});
      camOut.className = 'outcome';
      camOut.textContent = 'Point the camera at the QR code.';
      fill(camBox, video, camOut, h('button', {type: 'button', onclick: stopCamera}, 'Stop camera'));
      const tick = () => {
        if (!stream) return;
        if (video.readyState >= 2 && video.videoWidth) {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          ctx.drawImage(video, 0, 0);
          const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
          const code = jsQR(img.data, img.width, img.height, {inversionAttempts: 'dontInvert'});
          if (code?.data) {
            key.value = parseKey(code.data);
            stopCamera();
            submit(key.value);
            return;
          }
        }
        raf = requestAnimationFrame(tick);
      };
      tick();
    } catch (err) {
      stopCamera();
      fill(camBox, camOut);
      camOut.className = 'outcome error';
      camOut.textContent =
        err?.name === 'NotAllowedError'
          ? 'The browser was not allowed to use the camera. Allow it in the site settings, or paste the key.'
          : 'No camera could be opened here. Paste the key instead.';
    } finally {
      button.disabled = false;
    }
  }

  const hasCamera = Boolean(navigator.mediaDevices?.getUserMedia);
  return h(
    'div.view',
    h('h1', 'Scan a share'),
    section(
      'Paste a key',
      h('p.hint', 'The owner of a device shows a QR code under the device’s Share section; its key is printed under it.'),
      h('form.inline', {onsubmit: (e) => (e.preventDefault(), submit(key.value))}, key, go),
      out,
    ),
    section(
      'Use the camera',
      hasCamera
        ? h('button', {type: 'button', id: 'camera-start', onclick: (e) => startCamera(e.currentTarget)}, 'Scan with the camera')
        : h('p.hint', 'This browser offers no camera to web pages (or the page is not on https).'),
      camBox,
    ),
  );
}
