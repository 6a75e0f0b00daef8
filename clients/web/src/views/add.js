import {h, fill, countdown} from '../dom.js';
import {explain} from '../errors.js';
import {store, on, refreshDevices} from '../store.js';
import {act, outcome, section, onlinePill, empty} from '../ui.js';

// make run starts three simulated lamps (tools/hearth-devsim) reading commands from this FIFO.
const DEMO_DEVICES = ['sim-0001', 'sim-0002', 'sim-0003'];
const DEMO_FIFO = '.run/devsim.in';

const PROVISION_FAILED = {
  TOKEN_EXPIRED: 'The token expired before the device used it. Get a new token and set the device up again.',
  TOKEN_USED: 'That token was already used. Each token works once: get a new one.',
  TOKEN_INVALID: 'The device presented a token the hub does not know, or one issued for another device.',
  NOT_BINDABLE: 'The device is not in pairing mode (its bind window is closed). Open it (usually a button on the device) and try again.',
  SHARE_REQUIRED: 'This device already has an owner and only joins through a share: ask its owner to share it with you.',
  LIMIT_REACHED: 'The device already has the most members it may have.',
};

function wifiSection() {
  const out = outcome();
  const tokenBox = h('div.token', {id: 'provision-token'});
  const devId = h('input', {id: 'provision-device', maxlength: 64, placeholder: 'optional, e.g. sim-0001', autocapitalize: 'none', 'aria-label': 'Device id (optional)'});
  const go = h('button.primary', {type: 'submit', id: 'provision-begin'}, 'Get a setup token');
  let waiting = null; // {deviceId?, expiresAt}
  let offs = [];

  async function begin(e) {
    e.preventDefault();
    const deviceId = devId.value.trim();
    const r = await act(go, out, 'Asking the hub for a setup token…', () => store.client.things.provisionBegin(deviceId ? {deviceId} : {}), {
      done: () => 'Waiting for the device to bring this token to the hub…',
    });
    if (!r.ok) return;
    const {token, expiresAt} = r.result;
    waiting = {deviceId, expiresAt, known: new Set(store.devices.keys())};
    const simSelect = h('select', {id: 'devsim-device', 'aria-label': 'Simulated lamp'}, DEMO_DEVICES.map((d) => h('option', {value: d, selected: d === deviceId}, d)));
    const line = h('code', {id: 'devsim-line'});
    const setLine = () => (line.textContent = `echo "provision ${simSelect.value} ${token}" > ${DEMO_FIFO}`);
    simSelect.addEventListener('change', setLine);
    setLine();
    fill(
      tokenBox,
      h('p', 'Setup token:'),
      h('p.big', h('code', {id: 'token-value'}, token)),
      h('p', countdown(expiresAt, () => {
        if (waiting) {
          out.className = 'outcome error';
          out.textContent = 'The token expired before a device used it. Get a new one.';
          waiting = null;
        }
      }, 'valid for ')),
      h('ol.steps',
        h('li', 'Put the device into WiFi setup mode (see its manual).'),
        h('li', 'In its setup, join your home WiFi and enter this token.'),
        h('li', 'Keep this page open: the device shows up here as soon as the hub has it.'),
      ),
      h('details', {open: true},
        h('summary', 'For make run’s simulated lamps'),
        h('p', 'Lamp ', simSelect, ' — paste this line into a shell in the source folder:'),
        h('pre', line),
      ),
    );
  }

  offs.push(
    on('binding', (data) => {
      if (!waiting || data.reason !== 'bound') return;
      if (waiting.deviceId && data.deviceId !== waiting.deviceId) return;
      if (waiting.known.has(data.deviceId)) return;
      waiting = null;
      refreshDevices().then(() => {
        const d = store.devices.get(data.deviceId);
        out.className = 'outcome ok';
        fill(
          out,
          `✓ ${d?.name || data.deviceId} is added; you are its ${data.role || 'owner'}. `,
          d ? onlinePill(d.online) : null,
          ' ',
          h('a', {href: '#/device/' + encodeURIComponent(data.deviceId), id: 'provisioned-link'}, 'Open it'),
        );
        fill(tokenBox);
      });
    }),
  );
  offs.push(
    on('provisionFailed', (data) => {
      out.className = 'outcome error';
      out.textContent = `${data.deviceId} could not be added: ${PROVISION_FAILED[data.reason] || explain({code: data.reason})}`;
    }),
  );

  const sec = section(
    'WiFi device',
    h('p.hint', 'The hub gives you a one-time setup token; the device brings it back over your WiFi, and then it is yours. (Setting a WiFi device up again takes it over: whoever provisions it becomes its owner.)'),
    h('form.inline', {onsubmit: begin}, h('label', {for: 'provision-device'}, 'Device id'), devId, go),
    tokenBox,
    out,
  );
  return {sec, offs};
}

function bleSection() {
  const out = outcome();
  const list = h('ul.nearby', {id: 'nearby'});
  const devId = h('input', {id: 'bind-device', maxlength: 64, placeholder: 'id on the device label', autocapitalize: 'none', 'aria-label': 'Device id'});

  const bind = async (button, deviceId) => {
    await act(button, out, `Binding ${deviceId}…`, () => store.client.things.bindDevice({deviceId}), {
      done: (res) => `✓ ${deviceId} is added; you are its ${res.role}.`,
      errors: {
        SHARE_REQUIRED: `${deviceId} already has an owner. A device like this one joins only through a share: ask its owner to share it with you (by QR code or to your account), then scan or accept it here.`,
        NOT_BINDABLE: `${deviceId} cannot be bound now: it is not nearby, its pairing window is closed (press its pairing button), or it is a WiFi device (use a setup token above).`,
        NOT_FOUND: `The hub has not seen a device “${deviceId}”.`,
      },
    });
    refreshDevices();
    loadNearby();
  };

  async function loadNearby() {
    if (!store.isAdmin) {
      fill(list, h('li.hint', 'Type the id printed on the device. (The list of nearby devices is shown to installer accounts.)'));
      return;
    }
    try {
      const {devices} = await store.client.adminRequest('devices', {});
      const near = devices.filter((d) => d.transport === 'ble' && d.bindable && d.online && !store.devices.has(d.deviceId));
      fill(
        list,
        near.length
          ? near.map((d) =>
              h('li', h('span.name', d.name || d.deviceId), h('span.meta', `${d.model} · ${d.owner ? 'has an owner' : 'no owner yet'}`),
                h('button', {type: 'button', onclick: (e) => bind(e.currentTarget, d.deviceId)}, 'Bind')),
            )
          : empty('No bindable Bluetooth device nearby right now.'),
      );
    } catch (err) {
      fill(list, h('li.error', explain(err)));
    }
  }
  loadNearby();

  const go = h('button.primary', {type: 'submit', id: 'bind-submit'}, 'Bind');
  return section(
    'Bluetooth device nearby',
    h('p.hint', 'The first person to bind a Bluetooth device owns it; everyone else needs a share from the owner.'),
    list,
    h('form.inline', {onsubmit: (e) => {
      e.preventDefault();
      const id = devId.value.trim();
      if (id) bind(go, id);
    }}, h('label', {for: 'bind-device'}, 'Device id'), devId, go),
    out,
  );
}

export function addView({cleanup}) {
  const wifi = wifiSection();
  wifi.offs.forEach(cleanup);
  return h(
    'div.view',
    h('h1', 'Add a device'),
    wifi.sec,
    bleSection(),
    section('Someone shared a device with you?', h('p', h('a', {href: '#/scan'}, 'Scan or paste a share key'), ' or see your ', h('a', {href: '#/invitations'}, 'invitations'), '.')),
  );
}
