// The hosted Connect page. The session token arrives in the address's fragment, which
// the browser never sends anywhere; this script presents it as `Connect <token>`. The
// app's client id and secret never reach this page: Junction adds them itself.
import { h, field, errorBox } from './dom.js';
import * as api from './api.js';

const main = document.getElementById('main');
const KEY = 'junction.connect';

function show(...children) {
  main.replaceChildren(...children);
  main.focus({ preventScroll: true });
}

// Outcomes Junction sends the browser back with (`/connect?status=…`).
const OUTCOMES = {
  denied: ['Authorization declined', 'You declined the request at the provider, so nothing was connected. Ask the app for a new link to try again.'],
  expired: ['This link has expired', 'Connect links work for a short time only. Ask the app for a new link.'],
  used: ['This link was already used', 'Each Connect link works once. Ask the app for a new link if you need to connect again.'],
  failed: ['The connection failed', 'The provider did not accept the authorization. Ask the app for a new link to try again.'],
  invalid: ['This link is not valid', 'Check that you opened the whole link the app gave you.'],
};

function outcome(status, message) {
  const [head, text] = OUTCOMES[status] || OUTCOMES.invalid;
  document.title = head;
  show(h('div', { class: 'card', role: 'alert' }, h('h1', {}, head), h('p', {}, text),
    message ? h('p', { class: 'muted' }, message) : null));
}

async function start() {
  const query = new URLSearchParams(location.search);
  if (query.get('status')) return outcome(query.get('status'), query.get('message'));
  const fromHash = location.hash.slice(1);
  if (fromHash) {
    sessionStorage.setItem(KEY, fromHash);
    history.replaceState(null, '', location.pathname);
  }
  const token = sessionStorage.getItem(KEY);
  if (!token) return outcome('invalid');
  const auth = `Connect ${token}`;
  let session;
  try {
    session = await api.get('/connect/session', { auth });
  } catch (err) {
    const status = { connect_session_expired: 'expired', connect_session_used: 'used' }[err.code] || 'invalid';
    return outcome(status);
  }
  const choose = h('select', {}, session.elements.map((e) => h('option', { value: e.key }, e.name)));
  const fields = h('div', {});
  const status = h('div', { 'aria-live': 'polite' });
  const render = () => {
    const element = session.elements.find((e) => e.key === choose.value) || session.elements[0];
    fields.replaceChildren(...element.fields.map((f) => {
      const input = h('input', { type: f.secret ? 'password' : 'text', autocomplete: 'off', required: f.required });
      input.dataset.key = f.key;
      if (f.defaultValue) input.value = f.defaultValue;
      return field(f.name, input, f.required ? 'required' : 'optional');
    }));
  };
  choose.addEventListener('input', render);
  const form = h('form', { class: 'card' },
    h('h1', {}, session.elements.length === 1 ? `Connect ${session.elements[0].name}` : 'Connect an account'),
    h('p', { class: 'muted' }, `The app that sent you here asks to connect to your account. This link works until ${new Date(session.expiresAt).toLocaleTimeString()}.`),
    session.elements.length > 1 ? field('Service', choose) : null,
    fields, status,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Connect')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const configuration = {};
    for (const input of fields.querySelectorAll('input')) {
      if (input.value.trim() !== '') configuration[input.dataset.key] = input.value.trim();
    }
    try {
      const next = await api.post('/connect/session', { element: choose.value, configuration }, { auth });
      sessionStorage.removeItem(KEY);
      location.assign(next.redirectUrl);
    } catch (err) { status.replaceChildren(errorBox(err)); }
  });
  document.title = 'Connect your account';
  show(form);
  render();
}

start();
