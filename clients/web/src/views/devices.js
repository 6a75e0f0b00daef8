import {h, fill} from '../dom.js';
import {store, on, emit, refreshDevices} from '../store.js';
import {explain} from '../errors.js';
import {roleLabel, empty} from '../ui.js';

const LAMP = /lamp|light|bulb/i;
const FIRST_ROWS = 20; // more than a tall phone screen shows (about 12)
const CHUNK_ROWS = 100;
const collator = new Intl.Collator(undefined, {numeric: true, sensitivity: 'base'});

export function deviceTitle(d) {
  return d.name || d.deviceId;
}

function signature(d) {
  return [d.name, d.model, d.transport, d.role, d.online, d.state?.on, d.state?.brightness].join('\u0001');
}

// Rows are cloned from one template and filled with textContent: building 500 of them this way
// costs a fraction of creating each element one by one.
let rowTemplate = null;
function template() {
  if (!rowTemplate) {
    rowTemplate = h('li.device', h('a.row', h('span.name'), h('span.line', h('span.pill'), h('span.meta'))), h('button.toggle', {type: 'button'}));
  }
  return rowTemplate;
}

const isLampLike = (d) => LAMP.test(d.model || '') || typeof d.state?.on === 'boolean';

function row(d) {
  const li = template().cloneNode(true);
  const [a, button] = li.children;
  const [name, line] = a.children;
  const [pill, meta] = line.children;
  li.dataset.deviceId = d.deviceId;
  a.href = '#/device/' + encodeURIComponent(d.deviceId);
  name.textContent = deviceTitle(d);
  const extra = [];
  if (d.state && typeof d.state.on === 'boolean') {
    extra.push(d.state.on ? `on${d.state.brightness != null ? ' · ' + d.state.brightness + ' %' : ''}` : 'off');
  }
  // Most telling first: a narrow phone cuts the end of the line.
  meta.textContent = [roleLabel(d.role), ...extra, d.transport, d.model].filter(Boolean).join(' · ');
  pill.className = 'pill ' + (d.online ? 'on' : 'off');
  pill.dataset.online = d.online ? 'true' : 'false';
  pill.textContent = d.online ? 'online' : 'offline';
  if (isLampLike(d)) {
    // The quick control of a lamp: one button that switches it the other way.
    const on = d.state?.on === true;
    button.textContent = on ? 'Turn off' : 'Turn on';
    button.classList.toggle('is-on', on);
    button.disabled = !d.online;
    button.setAttribute('aria-label', `${on ? 'Turn off' : 'Turn on'} ${deviceTitle(d)}`);
    button.dataset.on = on ? 'true' : 'false';
  } else {
    button.remove();
  }
  return li;
}

async function quickToggle(button) {
  const li = button.closest('li.device');
  const id = li.dataset.deviceId;
  const on = button.dataset.on === 'true';
  button.disabled = true;
  button.textContent = '…';
  try {
    const result = await store.client.things.controlDevice({deviceId: id, command: 'set', params: {on: !on}});
    const cur = store.devices.get(id);
    if (cur) cur.state = {...cur.state, ...(result?.state || result)};
    emit('devices');
  } catch (err) {
    button.disabled = false;
    button.textContent = on ? 'Turn off' : 'Turn on';
    li.querySelector('.meta').textContent = explain(err);
  }
}

/** My devices: name, model, transport, role and the live online state of each. */
export function devicesView({cleanup}) {
  const list = h('ul.devices', {id: 'device-list', 'aria-label': 'My devices'});
  list.addEventListener('click', (e) => {
    const b = e.target.closest('li.device > button');
    if (b) quickToggle(b);
  });
  const head = h('p.summary', {id: 'device-summary'});
  const rows = new Map(); // deviceId -> {sig, el}
  let target = []; // the row elements the list holds once complete, in order
  let targetIds = [];
  let appended = 0; // how many of target are in the list
  let raf = 0;

  const render = () => {
    performance.mark('devices-render-start');
    if (!store.devicesLoaded) {
      fill(head, store.devicesError || 'Loading your devices…');
      performance.mark('devices-render-end');
      return;
    }
    const devs = [...store.devices.values()].sort(
      (a, b) => collator.compare(deviceTitle(a), deviceTitle(b)) || collator.compare(a.deviceId, b.deviceId),
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
      cancelAnimationFrame(raf);
      target = [];
      targetIds = [];
      list.dataset.complete = 'true';
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
    const ids = devs.map((d) => d.deviceId);
    const sameOrder = ids.length === targetIds.length && ids.every((id, i) => id === targetIds[i]);
    target = els; // changed rows were swapped in place above; rows not yet shown come from here
    if (!sameOrder) {
      // A long list goes in by screenfuls: the first rows are on screen in the next frame, the
      // rest follow one chunk per frame, so the page never stalls on style and layout of all.
      targetIds = ids;
      cancelAnimationFrame(raf);
      list.replaceChildren(...els.slice(0, FIRST_ROWS));
      appended = Math.min(FIRST_ROWS, els.length);
      if (appended < els.length) {
        delete list.dataset.complete;
        raf = requestAnimationFrame(appendMore);
      } else {
        list.dataset.complete = 'true';
      }
    }
    if (focusedId) rows.get(focusedId)?.el.querySelector('a')?.focus({preventScroll: true});
    performance.mark('devices-render-end');
    performance.measure('devices-render', 'devices-render-start', 'devices-render-end');
  };
  const appendMore = () => {
    list.append(...target.slice(appended, appended + CHUNK_ROWS));
    appended = Math.min(appended + CHUNK_ROWS, target.length);
    if (appended < target.length) {
      raf = requestAnimationFrame(appendMore);
    } else {
      list.dataset.complete = 'true';
      performance.mark('devices-render-all');
      performance.measure('devices-render-all', 'devices-render-start', 'devices-render-all');
    }
  };
  cleanup(() => cancelAnimationFrame(raf));
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
