// An instance's events on its page: the webhook URL, the events newest first with their
// status, one event's attempts, and replay of one event or of every failed one.
import { h, field, errorBox, badge } from './dom.js';
import * as api from './api.js';

const EVENT_PAGE = 20;
const EVENT_STATUSES = ['FAILED', 'NOTIFIED', 'DISPATCHED', 'RECEIVED'];

function eventKind(status) {
  return { NOTIFIED: 'ok', FAILED: 'bad' }[status] || 'off';
}

export function eventsPanel(inst) {
  const id = inst.id;
  const webhook = h('input', { type: 'text', readonly: true, class: 'mono', value: new URL(inst.eventWebhookUrl || '', location.origin).href });
  const filter = h('select', {}, h('option', { value: '' }, 'Any status'), EVENT_STATUSES.map((s) => h('option', { value: s }, s)));
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div', {});
  const detail = h('div', {});
  const pages = [];
  let shown = null;
  const note = (text) => status.replaceChildren(h('div', { class: 'notice', role: 'status' }, text));
  const attempt = async (work) => {
    status.replaceChildren();
    try { await work(); } catch (err) { status.replaceChildren(errorBox(err)); }
  };

  async function load(token) {
    const q = new URLSearchParams({ pageSize: String(EVENT_PAGE) });
    if (filter.value) q.set('status', filter.value);
    if (token) q.set('nextPage', token);
    const { json, headers } = await api.get(`/instances/${id}/events?${q}`, { raw: true });
    const events = json || [];
    const total = headers.get('Elements-Total-Count');
    const next = headers.get('Elements-Next-Page-Token');
    const pager = h('nav', { class: 'pager', 'aria-label': 'Event pages' },
      h('span', { class: 'muted' }, total !== null ? `${events.length} shown of ${total}` : `${events.length} shown`));
    if (pages.length) {
      pager.append(h('button', { type: 'button', class: 'secondary', onclick: () => attempt(() => load(pages.pop() || undefined)) }, 'Newer events'));
    }
    if (next) {
      pager.append(h('button', { type: 'button', class: 'secondary', onclick: () => attempt(() => { pages.push(token || ''); return load(next); }) }, 'Older events'));
    }
    list.replaceChildren(events.length
      ? h('table', { 'aria-label': 'Events' },
        h('thead', {}, h('tr', {}, ['Event', 'Received', 'Status', 'Changes', 'Attempts', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, events.map((e) => h('tr', {},
          h('td', { class: 'mono' }, e.id), h('td', {}, e.eventDate), h('td', {}, badge(e.status, eventKind(e.status))),
          h('td', {}, (e.events || []).map((c) => [c.objectType, c.eventType].filter(Boolean).join(' ')).join(', ')),
          h('td', {}, (e.notifiedData || []).length),
          h('td', {},
            h('button', { type: 'button', class: 'secondary', 'aria-label': `Details of event ${e.id}`, onclick: () => attempt(() => showEvent(e.id)) }, 'Details'), ' ',
            h('button', { type: 'button', class: 'secondary', 'aria-label': `Replay event ${e.id}`, onclick: () => attempt(() => replay(e.id)) }, 'Replay'))))))
      : h('p', { class: 'notice' }, filter.value ? `No ${filter.value} events.` : 'No events yet.'),
    pager);
  }

  async function showEvent(eventId) {
    const e = await api.get(`/instances/${id}/events/${eventId}`);
    shown = e.id;
    const attempts = e.notifiedData || [];
    detail.replaceChildren(h('section', { class: 'card', 'aria-label': `Event ${e.id}` },
      h('h3', {}, `Event ${e.id} `, badge(e.status, eventKind(e.status))),
      h('p', { class: 'muted' }, `Received ${e.eventDate} by ${e.source}.`),
      h('h4', {}, 'Changes'), h('pre', {}, JSON.stringify(e.events, null, 2)),
      h('h4', {}, 'Attempts'),
      attempts.length
        ? h('table', { 'aria-label': `Attempts of event ${e.id}` },
          h('thead', {}, h('tr', {}, ['When', 'Answer', 'Took ms', 'Error'].map((t) => h('th', {}, t)))),
          h('tbody', {}, attempts.map((a) => h('tr', {},
            h('td', {}, a.date), h('td', {}, a.statusCode ?? 'none'), h('td', {}, a.durationMs), h('td', {}, a.error || '')))))
        : h('p', { class: 'muted' }, 'Not sent yet.'),
      h('h4', {}, 'What the provider sent'), h('pre', {}, e.providerData)));
  }

  async function replay(eventId) {
    await api.post(`/instances/${id}/events/${eventId}/replay`);
    note(`Event ${eventId} is sent again.`);
    await load();
    if (shown === eventId) await showEvent(eventId);
  }

  filter.addEventListener('change', () => { pages.length = 0; attempt(() => load()); });
  const panel = h('div', {},
    h('div', { class: 'card' },
      field('Webhook URL', webhook, 'Where the provider sends this instance\'s webhooks.'),
      h('p', { class: 'muted' }, inst.eventsEnabled ? 'Events are enabled for this instance.' : 'Events are not enabled for this instance.')),
    h('div', { class: 'row' }, field('Event status', filter),
      h('button', { type: 'button', class: 'secondary', onclick: () => attempt(() => { pages.length = 0; return load(); }) }, 'Refresh events'),
      h('button', { type: 'button', onclick: () => attempt(async () => {
        const done = await api.post(`/instances/${id}/events/replay`);
        note(`${done.replayed} failed ${done.replayed === 1 ? 'event is' : 'events are'} sent again.`);
        pages.length = 0;
        await load();
      }) }, 'Replay failed events')),
    status, list, detail);
  attempt(() => load());
  return panel;
}
