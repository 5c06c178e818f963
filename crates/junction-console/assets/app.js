// The console: one page, views chosen by the address (`#/instances`, `#/catalog`, …).
import { h, field, checkbox, errorBox, badge, randomToken } from './dom.js';
import * as api from './api.js';

const main = () => document.getElementById('main');
const PENDING = 'junction.pending';
const CALLBACK = '/console/callback';

function show(...children) {
  const m = main();
  m.replaceChildren(...children);
  m.focus({ preventScroll: true });
}

function title(text) {
  document.title = `${text} · Junction`;
  return h('h1', {}, text);
}

async function guard(container, work) {
  try { return await work(); } catch (err) {
    if (err.status === 401 && err.code === 'unauthorized' && !container.dataset.keepSession) {
      api.forget();
      return signIn('Your session is no longer valid: sign in again.');
    }
    container.prepend(errorBox(err));
    return undefined;
  }
}

// ---- sign in ------------------------------------------------------------------------

function signIn(message) {
  document.getElementById('nav').hidden = true;
  const user = h('input', { type: 'password', autocomplete: 'off', required: true });
  const org = h('input', { type: 'password', autocomplete: 'off', required: true });
  const status = h('div', { 'aria-live': 'polite' }, message ? h('div', { class: 'notice' }, message) : null);
  const form = h('form', { class: 'card narrow' },
    title('Sign in'),
    h('p', { class: 'muted' }, 'Use the user and organization secrets Junction printed at first start, or those of `junction accounts create`. They stay in this tab only.'),
    status,
    field('User secret', user),
    field('Organization secret', org),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.replaceChildren();
    api.saveCredentials(user.value.trim(), org.value.trim());
    try {
      await api.get('/instances?pageSize=1');
      location.hash = '#/instances';
      route();
    } catch (err) {
      api.forget();
      if (err.status === 401) err.hint = 'The user or organization secret is wrong: check both and try again.';
      status.replaceChildren(errorBox(err));
    }
  });
  show(form);
  user.focus();
}

// ---- catalog ------------------------------------------------------------------------

let elementsCache = null;
async function elements() {
  if (!elementsCache) elementsCache = await api.get('/elements');
  return elementsCache;
}

function isOAuth(el) {
  const type = el.authentication?.type || '';
  return type.startsWith('oauth');
}

async function catalog() {
  const box = h('div', {});
  show(title('Catalog'), box);
  await guard(box, async () => {
    const all = await elements();
    const hubs = [...new Set(all.map((e) => e.hub))].sort();
    const types = [...new Set(all.map((e) => e.authentication?.type).filter(Boolean))].sort();
    const search = h('input', { type: 'search', placeholder: 'name or key' });
    const hub = h('select', {}, h('option', { value: '' }, 'All hubs'), hubs.map((x) => h('option', { value: x }, x)));
    const auth = h('select', {}, h('option', { value: '' }, 'All types'), types.map((x) => h('option', { value: x }, x)));
    const events = checkbox('Has events');
    const body = h('tbody');
    const count = h('p', { class: 'muted', 'aria-live': 'polite' });
    const render = () => {
      const text = search.value.trim().toLowerCase();
      const rows = all.filter((e) => (!text || e.name.toLowerCase().includes(text) || e.key.includes(text))
        && (!hub.value || e.hub === hub.value)
        && (!auth.value || e.authentication?.type === auth.value)
        && (!events.input.checked || hasEvents(e)));
      count.textContent = `${rows.length} of ${all.length} elements`;
      body.replaceChildren(...rows.map((e) => h('tr', {},
        h('td', {}, h('a', { href: `#/elements/${e.key}` }, e.name)),
        h('td', { class: 'mono' }, e.key), h('td', {}, e.hub), h('td', {}, e.authentication?.type || ''),
        h('td', {}, h('a', { href: `#/connect/${e.key}`, 'aria-label': `Connect ${e.name}` }, 'Connect')))));
    };
    for (const c of [search, hub, auth, events.input]) c.addEventListener('input', render);
    box.append(h('div', { class: 'row card' }, field('Search elements', search), field('Hub', hub),
      field('Authentication type', auth), events.el), count,
    h('table', {}, h('thead', {}, h('tr', {}, ['Element', 'Key', 'Hub', 'Authentication', ''].map((t) => h('th', {}, t)))), body));
    render();
  });
}

function hasEvents(el) {
  return (el.configuration || []).some((c) => c.key === 'event.notification.enabled' || c.key === 'event.vendor.type');
}

async function elementPage(key) {
  const box = h('div', {});
  show(box);
  await guard(box, async () => {
    const el = await api.get(`/elements/${encodeURIComponent(key)}`);
    let resources = [];
    try { resources = await api.get(`/elements/${encodeURIComponent(key)}/resources`); } catch { resources = []; }
    box.append(title(el.name),
      h('p', {}, el.description || ''),
      h('dl', { class: 'facts card' },
        h('dt', {}, 'Key'), h('dd', { class: 'mono' }, el.key),
        h('dt', {}, 'Hub'), h('dd', {}, el.hub),
        h('dt', {}, 'Authentication'), h('dd', {}, el.authentication?.type || ''),
        h('dt', {}, 'Set-up notes'), h('dd', {}, el.configDescription || '—')),
      h('div', { class: 'actions' },
        h('a', { href: `#/connect/${el.key}`, class: 'button' }, `Connect ${el.name}`),
        h('a', { href: `/docs#/` }, 'API docs (Swagger UI)')),
      h('h2', {}, 'Configuration'),
      h('table', {}, h('thead', {}, h('tr', {}, ['Key', 'Name', 'Type', 'Required', 'Default'].map((t) => h('th', {}, t)))),
        h('tbody', {}, (el.configuration || []).map((c) => h('tr', {},
          h('td', { class: 'mono' }, c.key), h('td', {}, c.name), h('td', {}, c.type || ''),
          h('td', {}, c.required ? 'yes' : ''), h('td', { class: 'mono' }, defaultOf(c)))))),
      h('h2', {}, `Resources (${resources.length})`),
      h('table', {}, h('thead', {}, h('tr', {}, ['Method', 'Path', 'Description'].map((t) => h('th', {}, t)))),
        h('tbody', {}, resources.map((r) => h('tr', {},
          h('td', {}, r.method), h('td', { class: 'mono' }, r.path), h('td', {}, r.description || ''))))));
  });
}

// ---- connect ------------------------------------------------------------------------

// Entries Junction fills itself or keeps for its own use never appear in the form.
const MANAGED = /^oauth\.(user\.|callback\.url$)|^(oauth\.request\.authorization\.url)$/;

function defaultOf(entry) {
  const value = entry.defaultValue ?? entry.default;
  return value === undefined || value === null ? '' : String(value);
}

function configControl(entry) {
  const secret = entry.secret || entry.type === 'PASSWORD' || /secret|password|token|\.key$/i.test(entry.key);
  const fallback = defaultOf(entry);
  const bool = entry.type === 'BOOLEAN';
  const input = bool
    ? h('select', {}, h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'))
    : h('input', { type: secret ? 'password' : 'text', autocomplete: 'off' });
  input.dataset.key = entry.key;
  if (fallback !== '') input.value = fallback;
  if (entry.required) input.required = true;
  const hint = [entry.key, entry.required ? 'required' : 'optional', fallback ? `default ${fallback}` : null]
    .filter(Boolean).join(' · ');
  return { input, el: field(entry.name || entry.key, input, hint) };
}

async function connect(key, reauthorize) {
  const box = h('div', {});
  show(box);
  await guard(box, async () => {
    const el = await api.get(`/elements/${encodeURIComponent(key)}`);
    const oauth = isOAuth(el);
    const entries = (el.configuration || []).filter((c) => !c.internal && !MANAGED.test(c.key));
    entries.sort((a, b) => Number(Boolean(b.required)) - Number(Boolean(a.required)));
    const shown = entries.filter((c) => !c.hideFromConsole);
    const advanced = entries.filter((c) => c.hideFromConsole);
    const controls = [];
    const make = (c) => { const ctl = configControl(c); controls.push(ctl.input); return ctl.el; };
    const name = h('input', { type: 'text', value: reauthorize ? reauthorize.name : `${el.name} instance` });
    const tags = h('input', { type: 'text', placeholder: 'customer-42, eu' });
    const status = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card' },
      reauthorize ? null : field('Instance name', name),
      reauthorize ? null : field('Tags', tags, 'Comma-separated'),
      shown.map(make),
      advanced.length ? h('details', {}, h('summary', {}, 'Advanced settings'), advanced.map(make)) : null,
      oauth ? h('p', { class: 'hint' }, `You will be sent to the provider to authorize, then back to ${location.origin}${CALLBACK}.`) : null,
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, reauthorize ? 'Re-authorize' : 'Connect')));
    box.append(title(reauthorize ? `Re-authorize ${reauthorize.name}` : `Connect ${el.name}`), form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      status.replaceChildren();
      const configuration = {};
      for (const input of controls) {
        const value = input.value.trim();
        if (value !== '') configuration[input.dataset.key] = value;
      }
      const tagList = tags.value.split(',').map((t) => t.trim()).filter(Boolean);
      const request = { element: { key: el.key }, configuration, name: name.value.trim() || undefined, tags: tagList };
      try {
        if (oauth) await startOAuth(el, request, reauthorize?.id);
        else {
          const instance = await api.post('/instances', request);
          location.hash = `#/instances/${instance.id}`;
        }
      } catch (err) {
        status.replaceChildren(errorBox(err));
        status.scrollIntoView({ block: 'center' });
      }
    });
  });
}

// The provider sends the browser back to Junction's callback page; what it needs to
// finish (the form's values) waits in this tab's sessionStorage, keyed by `state`.
async function startOAuth(el, request, instanceId) {
  const callbackUrl = location.origin + CALLBACK;
  const state = randomToken();
  const params = new URLSearchParams({ callbackUrl, state });
  const cfg = request.configuration;
  if (cfg['oauth.api.key']) params.set('apiKey', cfg['oauth.api.key']);
  for (const [k, v] of Object.entries(cfg)) {
    if (!k.startsWith('oauth.') && (el.oauthTemplateKeys || []).includes(k)) params.set(k, v);
  }
  const built = await api.get(`/elements/${encodeURIComponent(el.key)}/oauth/url?${params}`);
  request.configuration['oauth.callback.url'] = callbackUrl;
  sessionStorage.setItem(PENDING, JSON.stringify({ state, request, instanceId, at: Date.now() }));
  location.assign(built.oauthUrl);
}

async function callback() {
  const box = h('div', {});
  show(title('Finishing authorization'), box);
  const query = new URLSearchParams(location.search);
  let pending = null;
  try { pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null'); } catch { pending = null; }
  sessionStorage.removeItem(PENDING);
  const again = h('p', {}, h('a', { href: '/#/catalog' }, 'Back to the catalog'));
  if (query.get('error')) {
    const err = new Error(`The provider did not authorize: ${query.get('error')}`);
    err.providerMessage = query.get('error_description') || undefined;
    err.hint = 'Connect again and approve the request at the provider.';
    box.append(errorBox(err), again);
    return;
  }
  if (!pending || pending.state !== query.get('state')) {
    box.append(errorBox(new Error('This authorization was not started from this tab, or it was already used. Connect again.')), again);
    return;
  }
  box.append(h('p', { class: 'muted' }, 'Creating the instance…'));
  const providerData = { code: query.get('code') };
  try {
    const instance = pending.instanceId
      ? await api.patch(`/instances/${pending.instanceId}`, { providerData, configuration: { 'oauth.callback.url': pending.request.configuration['oauth.callback.url'] } })
      : await api.post('/instances', { ...pending.request, providerData });
    history.replaceState(null, '', `/#/instances/${instance.id}`);
    route();
  } catch (err) {
    box.replaceChildren(errorBox(err), again);
  }
}

// ---- instances ----------------------------------------------------------------------

const PAGE = 50;

async function instances(query) {
  const box = h('div', {});
  show(title('Instances'), box);
  const search = h('input', { type: 'search', value: query.get('q') || '' });
  const tag = h('input', { type: 'text', value: query.get('tag') || '' });
  const filters = h('form', { class: 'row card', role: 'search' }, field('Search instances', search), field('Tag', tag),
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { href: '#/catalog', class: 'button secondary' }, 'Connect an element'));
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (search.value.trim()) q.set('q', search.value.trim());
    if (tag.value.trim()) q.set('tag', tag.value.trim());
    location.hash = `#/instances?${q}`;
  });
  box.append(filters);
  await guard(box, async () => {
    const q = new URLSearchParams({ pageSize: String(PAGE) });
    if (query.get('q')) q.set('searchText', query.get('q'));
    if (query.get('tag')) q.append('tags[]', query.get('tag'));
    if (query.get('page')) q.set('nextPage', query.get('page'));
    const { json, headers } = await api.get(`/instances?${q}`, { raw: true });
    const list = json || [];
    const total = headers.get('Elements-Total-Count');
    const next = headers.get('Elements-Next-Page-Token');
    const rows = list.map((i) => h('tr', {},
      h('td', {}, h('a', { href: `#/instances/${i.id}` }, i.name)),
      h('td', {}, i.element?.name || i.element?.key), h('td', {}, i.id),
      h('td', {}, i.valid === false ? badge('invalid', 'bad') : badge('valid', 'ok'), ' ',
        i.disabled ? badge('disabled', 'off') : null),
      h('td', {}, (i.tags || []).join(', ')), h('td', {}, i.createdDate || '')));
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('span', { class: 'muted' }, total !== null ? `${list.length} shown of ${total}` : `${list.length} shown`));
    if (query.get('page')) pager.append(h('a', { href: '#/instances' + (query.get('q') || query.get('tag') ? `?${keep(query)}` : '') }, 'First page'));
    if (next) {
      const q2 = new URLSearchParams(keep(query));
      q2.set('page', next);
      pager.append(h('a', { href: `#/instances?${q2}` }, 'Next page'));
    }
    box.append(list.length
      ? h('table', { 'aria-label': 'Instances' }, h('thead', {}, h('tr', {}, ['Name', 'Element', 'Id', 'Status', 'Tags', 'Created'].map((t) => h('th', {}, t)))), h('tbody', {}, rows))
      : h('p', { class: 'notice' }, 'No instances yet. ', h('a', { href: '#/catalog' }, 'Connect an element'), ' to create one.'),
    pager);
    // What bench/console.sh measures: the list is on screen and its controls work.
    performance.mark('instances-rendered');
  });
}

function keep(query) {
  const q = new URLSearchParams();
  for (const k of ['q', 'tag']) if (query.get(k)) q.set(k, query.get(k));
  return q.toString();
}

async function instancePage(id) {
  const box = h('div', {});
  show(box);
  await guard(box, async () => {
    const inst = await api.get(`/instances/${id}`);
    const config = await api.get(`/instances/${id}/configuration`);
    const status = h('div', { 'aria-live': 'polite' });
    const act = (label, work, attrs = {}) => h('button', {
      type: 'button', ...attrs,
      onclick: async () => {
        status.replaceChildren();
        try { await work(); } catch (err) { status.replaceChildren(errorBox(err)); }
      },
    }, label);
    const reload = () => instancePage(id);
    const el = inst.element || {};
    const confirm = h('dialog', { 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, `Delete ${inst.name}?`),
      h('p', {}, 'Its Element token stops working at once. This cannot be undone.'),
      h('div', { class: 'actions' },
        act('Confirm delete', async () => { await api.del(`/instances/${id}`); confirm.close(); location.hash = '#/instances'; }, { class: 'danger' }),
        h('button', { type: 'button', class: 'secondary', onclick: () => confirm.close() }, 'Cancel')));
    box.append(title(inst.name),
      h('dl', { class: 'facts card' },
        h('dt', {}, 'Id'), h('dd', {}, inst.id),
        h('dt', {}, 'Element'), h('dd', {}, h('a', { href: `#/elements/${el.key}` }, el.name || el.key)),
        h('dt', {}, 'Status'), h('dd', {}, inst.valid === false ? badge('invalid', 'bad') : badge('valid', 'ok'), ' ',
          inst.disabled ? badge('disabled', 'off') : badge('enabled', 'ok'),
          inst.invalidReason ? h('p', { class: 'error' }, `Reason: ${inst.invalidReason}`) : null),
        h('dt', {}, 'Trace logging'), h('dd', {}, inst.traceLoggingEnabled ? 'on' : 'off'),
        h('dt', {}, 'Tags'), h('dd', {}, (inst.tags || []).join(', ') || '—'),
        h('dt', {}, 'Created'), h('dd', {}, inst.createdDate || ''),
        h('dt', {}, 'Owner'), h('dd', {}, inst.user?.emailAddress || '')),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Instance actions' },
        inst.disabled
          ? act('Enable', async () => { await api.put(`/instances/${id}/enabled`); await reload(); })
          : act('Disable', async () => { await api.del(`/instances/${id}/enabled`); await reload(); }, { class: 'secondary' }),
        inst.traceLoggingEnabled
          ? act('Stop trace logging', async () => { await api.del(`/instances/${id}/trace-logging`); await reload(); }, { class: 'secondary' })
          : act('Start trace logging', async () => { await api.put(`/instances/${id}/trace-logging`, { duration: 3600 }); await reload(); }, { class: 'secondary' }),
        act('Test call', async () => {
          const answer = await api.get(`/hubs/${el.hub || 'any'}/ping`, { auth: `Element ${inst.token}` });
          status.replaceChildren(h('div', { class: 'notice', role: 'status' }, `The provider answered at ${answer.dateTime}.`));
        }, { class: 'secondary' }),
        isOAuth(el) ? act('Re-authorize', async () => connect(el.key, inst), { class: 'secondary' }) : null,
        act('Delete', async () => confirm.showModal(), { class: 'danger' })),
      status, confirm,
      h('h2', {}, 'Configuration'), configTable(id, config, status),
      h('h2', {}, 'Events'),
      h('p', { class: 'muted' }, inst.eventsEnabled ? 'Events are enabled for this instance.' : 'Events are not enabled for this instance.'));
  });
}

function configTable(id, entries, status) {
  return h('table', { 'aria-label': 'Configuration' },
    h('thead', {}, h('tr', {}, ['Key', 'Name', 'Value', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, entries.map((c) => {
      const editable = !c.readOnly && c.propertyValue !== '********';
      const input = h('input', { type: 'text', value: c.propertyValue ?? '', 'aria-label': `Value of ${c.key}`, readonly: !editable });
      const save = editable ? h('button', {
        type: 'button', class: 'secondary', 'aria-label': `Save ${c.key}`,
        onclick: async () => {
          status.replaceChildren();
          try {
            await api.patch(`/instances/${id}/configuration/${c.id}`, { propertyValue: input.value });
            status.replaceChildren(h('div', { class: 'notice', role: 'status' }, `${c.key} saved.`));
          } catch (err) { status.replaceChildren(errorBox(err)); }
        },
      }, 'Save') : null;
      return h('tr', {}, h('td', { class: 'mono' }, c.key), h('td', {}, c.name || ''), h('td', {}, input), h('td', {}, save));
    })));
}

// ---- accounts -----------------------------------------------------------------------

async function accounts() {
  const box = h('div', {});
  show(title('Accounts'), box);
  await guard(box, async () => {
    const list = await api.get('/accounts');
    const name = h('input', { type: 'text', required: true });
    const external = h('input', { type: 'text' });
    const status = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card row' }, field('Account name', name), field('External id', external),
      h('button', { type: 'submit' }, 'Create account'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await api.post('/accounts', { name: name.value.trim(), externalId: external.value.trim() || undefined });
        accounts();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    });
    box.append(form, status,
      h('table', { 'aria-label': 'Accounts' }, h('thead', {}, h('tr', {}, ['Name', 'Id', 'External id', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, list.map((a) => h('tr', {}, h('td', {}, a.name), h('td', {}, a.id), h('td', {}, a.externalId || ''),
          h('td', {}, h('a', { href: `#/accounts/${a.id}` }, `Users of ${a.name}`)))))));
  });
}

async function accountUsers(id) {
  const box = h('div', {});
  show(title('Users'), box);
  await guard(box, async () => {
    const users = await api.get(`/accounts/${id}/users`);
    const email = h('input', { type: 'email', required: true });
    const status = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card row' }, field('Email address', email), h('button', { type: 'submit' }, 'Add user'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const user = await api.post(`/accounts/${id}/users`, { emailAddress: email.value.trim() });
        status.replaceChildren(h('div', { class: 'notice', role: 'status' }, `User ${user.emailAddress} created.`,
          user.secret ? h('p', {}, 'Their secret, shown once: ', h('code', {}, user.secret)) : null));
      } catch (err) { status.replaceChildren(errorBox(err)); }
    });
    box.append(form, status,
      h('table', { 'aria-label': 'Users' }, h('thead', {}, h('tr', {}, ['Email', 'Id', 'Role'].map((t) => h('th', {}, t)))),
        h('tbody', {}, users.map((u) => h('tr', {}, h('td', {}, u.emailAddress), h('td', {}, u.id),
          h('td', {}, (u.roles || []).map((r) => r.key || r).join(', ')))))));
  });
}

// ---- routing ------------------------------------------------------------------------

function route() {
  if (location.pathname === CALLBACK) {
    if (!api.credentials()) return signIn('Sign in to finish connecting.');
    document.getElementById('nav').hidden = false;
    return callback();
  }
  if (!api.credentials()) return signIn();
  document.getElementById('nav').hidden = false;
  const [path, rawQuery] = (location.hash.slice(1) || '/instances').split('?');
  const query = new URLSearchParams(rawQuery || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case 'catalog': return catalog();
    case 'elements': return elementPage(parts[1]);
    case 'connect': return connect(parts[1]);
    case 'accounts': return parts[1] ? accountUsers(parts[1]) : accounts();
    case 'instances': return parts[1] ? instancePage(parts[1]) : instances(query);
    default: return instances(query);
  }
}

window.addEventListener('hashchange', () => { if (location.pathname !== CALLBACK) route(); });
document.getElementById('sign-out').addEventListener('click', () => {
  api.forget();
  history.replaceState(null, '', '/');
  signIn('Signed out.');
});
route();
