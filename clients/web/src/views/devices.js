import {h, fill} from '../dom.js';
import {store, on, refreshDevices} from '../store.js';
import {onlinePill, roleLabel, empty} from '../ui.js';

export function deviceTitle(d) {
  return d.name || d.deviceId;
}

function signature(d) {
  return [d.name, d.model, d.transport, d.role, d.online, d.state?.on, d.state?.brightness].join('\u0001');
}

function row(d) {
  const extra = [];
  if (d.state && typeof d.state.on === 'boolean') {
    extra.push(d.state.on ? `on${d.state.brightness != null ? ' · ' + d.state.brightness + ' %' : ''}` : 'off');
  }
  return h(
    'li.device',
    {dataset: {deviceId: d.deviceId}},
    h(
      'a.row',
      {href: '#/device/' + encodeURIComponent(d.deviceId)},
      h('span.name', deviceTitle(d)),
      h('span.meta', [d.model, d.transport, roleLabel(d.role), ...extra].filter(Boolean).join(' · ')),
      onlinePill(d.online),
    ),
  );
}

/** My devices: name, model, transport, role and the live online state of each. */
export function devicesView({cleanup}) {
  const list = h('ul.devices', {id: 'device-list', 'aria-label': 'My devices'});
  const head = h('p.summary', {id: 'device-summary'});
  const rows = new Map(); // deviceId -> {sig, el}

  const render = () => {
    performance.mark('devices-render-start');
    if (!store.devicesLoaded) {
      fill(head, store.devicesError || 'Loading your devices…');
      performance.mark('devices-render-end');
      return;
    }
    const devs = [...store.devices.values()].sort(
      (a, b) => deviceTitle(a).localeCompare(deviceTitle(b)) || a.deviceId.localeCompare(b.deviceId),
    );
    const online = devs.filter((d) => d.online).length;
    fill(
      head,
      devs.length
        ? `${devs.length} device${devs.length === 1 ? '' : 's'}, ${online} online.`
        : null,
      store.devicesError ? h('span.error', ' ' + store.devicesError) : null,
    );
    if (!devs.length) {
      rows.clear();
      fill(
        list,
        empty('No devices yet. Add one (a WiFi device with a setup token, or a nearby Bluetooth device), or scan a share from someone in your household.'),
      );
      performance.mark('devices-render-end');
      performance.measure('devices-render', 'devices-render-start', 'devices-render-end');
      return;
    }
    const focusedId = document.activeElement?.closest?.('li.device')?.dataset.deviceId;
    const els = [];
    const seen = new Set();
    for (const d of devs) {
      seen.add(d.deviceId);
      const sig = signature(d);
      let r = rows.get(d.deviceId);
      if (!r || r.sig !== sig) {
        const el = row(d);
        if (r) r.el.replaceWith(el);
        r = {sig, el};
        rows.set(d.deviceId, r);
      }
      els.push(r.el);
    }
    for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
    const same = list.children.length === els.length && els.every((el, i) => list.children[i] === el);
    if (!same) list.replaceChildren(...els);
    if (focusedId) rows.get(focusedId)?.el.querySelector('a')?.focus({preventScroll: true});
    performance.mark('devices-render-end');
    performance.measure('devices-render', 'devices-render-start', 'devices-render-end');
  };
  cleanup(on('devices', render));
  render();
  if (!store.devicesLoaded) refreshDevices();

  return h(
    'div.view',
    h('div.titlebar', h('h1', 'My devices'), h('a.button', {href: '#/add'}, '+ Add device')),
    head,
    list,
  );
}
