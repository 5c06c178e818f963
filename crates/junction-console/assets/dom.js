// Builds elements from data, never from HTML strings, so a provider's or a user's text
// can never turn into markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let uid = 0;
// A labelled control: the label is what assistive technology announces, and what the
// browser tests find the control by.
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++uid}`;
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', {}, h('label', { for: control.id }, label), control, hintEl);
}

export function checkbox(label, attrs = {}) {
  const input = h('input', { type: 'checkbox', ...attrs });
  return { input, el: h('label', { class: 'inline' }, input, label) };
}

export function errorBox(err) {
  const box = h('div', { class: 'error', role: 'alert' }, err.message || String(err));
  if (err.providerMessage) box.append(h('p', {}, 'The provider said: ', h('q', {}, err.providerMessage)));
  if (err.hint) box.append(h('p', {}, err.hint));
  if (err.code) box.append(h('p', { class: 'hint' }, `code: ${err.code}`, err.requestId ? ` · request ${err.requestId}` : ''));
  return box;
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind}` }, text);
}

export function randomToken() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
