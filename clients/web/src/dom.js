// DOM helpers. Every piece of data reaches the page as text (textContent, attribute values):
// nothing here parses HTML, so a device named `<img src=x onerror=alert(1)>` shows as that text.

/**
 * h('button.primary', {onclick, type: 'button'}, 'Turn on') — builds an element.
 * Attributes starting with `on` become listeners; `class`/`className` and `dataset` are set as
 * such; anything else is set with setAttribute (an attribute value is never parsed as HTML).
 * Children: strings/numbers (text nodes), nodes, arrays, and null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class' || k === 'className') {
      el.className = [el.className, v].filter(Boolean).join(' ');
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** "3 min 05 s" / "42 s" for a countdown. */
export function formatLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

export function formatTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  return d.toLocaleString(undefined, {dateStyle: 'short', timeStyle: 'medium'});
}

/**
 * A live countdown text node that calls onEnd once when it reaches zero. It stops by itself
 * when its node leaves the document (the view was replaced).
 */
export function countdown(expiresAt, onEnd, prefix = 'expires in ') {
  const span = h('span.countdown', {role: 'timer'});
  let ended = false;
  const tick = () => {
    const left = expiresAt - Date.now();
    if (left <= 0) {
      span.textContent = 'expired';
      span.classList.add('expired');
      if (!ended) {
        ended = true;
        clearInterval(timer);
        onEnd?.();
      }
      return;
    }
    span.textContent = prefix + formatLeft(left);
    if (!span.isConnected && span.dataset.placed) clearInterval(timer);
  };
  const timer = setInterval(() => {
    if (span.isConnected) span.dataset.placed = '1';
    tick();
  }, 1000);
  tick();
  return span;
}
