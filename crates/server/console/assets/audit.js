// The audit log: every change, newest first, filterable by client and action, a
// page at a time (the API's opaque cursors; a stack of them for "Previous page").

import {api, seg} from './api.js';
import {h, cell, field, errorBox, cursorPager, fmtTime, mapLimit} from './dom.js';

const PAGE_SIZE = 25;

/** The actions the broker records (INTERFACE §6), in words. */
export const ACTIONS = {
  'client.create': 'created client',
  'client.update': 'changed client',
  'client.delete': 'deleted client',
  'client.secret.rotate': 'rotated the secret of',
  'client.tokens.revoke': 'revoked the tokens of',
  'token.revoke': 'revoked a token of',
  'key.rotate': 'rotated the signing key to',
};

const actorClient = (actor) => /^client:(.+)$/.exec(actor)?.[1] ?? null;
const targetsClient = (e) => e.action.startsWith('client.') || e.action === 'token.revoke';

/**
 * Looks up the names of the clients that events mention (actors and targets) and
 * are not in `names` yet (a Map of id → name, or null for a client that is gone), so
 * the sentences can say "ops changed billing" rather than two ids.
 */
export async function learnNames(events, names, signal) {
  const ids = new Set();
  for (const e of events) {
    const actor = actorClient(e.actor);
    if (actor) ids.add(actor);
    if (targetsClient(e)) ids.add(e.target);
  }
  await mapLimit([...ids].filter((id) => !names.has(id)), 4, async (id) => {
    try {
      names.set(id, (await api('GET', `clients/${seg(id)}`, {signal})).data.client_name);
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      names.set(id, null); // deleted since: the id is all there is
    }
  });
}

/** A client as a link named by its name (its id when the name is unknown or gone). */
function clientNode(id, names) {
  const name = names?.get(id);
  if (name === null) return h('code', {}, id);
  return h('a', {href: `#/clients/${seg(id)}`, title: id}, name ?? id);
}

/** One event as a sentence: "client ops changed client billing (scope)". */
export function describeEvent(e, names) {
  const fields = Object.keys(e.changes ?? {});
  const actor = actorClient(e.actor);
  const target = targetsClient(e) && e.action !== 'client.delete' ? clientNode(e.target, names) : h('code', {}, e.target);
  return h('span', {}, actor ? ['client ', clientNode(actor, names)] : e.actor, ' ', ACTIONS[e.action] ?? e.action, ' ', target,
    e.action === 'client.update' && fields.length ? ` (${fields.join(', ')})` : '');
}

const short = (v) => {
  const text = typeof v === 'string' ? `“${v}”` : JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
};

/** `{"scope": ["", "x"]}` as a list of "scope: “” → “x”". */
function changesNode(changes) {
  const entries = Object.entries(changes ?? {});
  if (!entries.length) return h('span', {class: 'muted'}, '—');
  return h('ul', {class: 'plain changes'}, entries.map(([k, v]) => h('li', {},
    h('span', {class: 'field-name'}, k), ': ',
    Array.isArray(v) && v.length === 2 ? `${short(v[0])} → ${short(v[1])}` : short(v))));
}

export async function audit(main, ctx) {
  const {signal, params} = ctx;
  let clientId = params.get('client_id') ?? '';
  let action = params.get('action') ?? '';
  const names = new Map();

  const clientInput = h('input', {type: 'text', value: clientId, autocomplete: 'off', spellcheck: 'false'});
  const clientField = field('Filter by client', clientInput, 'A client id (or key id); empty: all.');
  const actionSelect = h('select', {},
    h('option', {value: ''}, 'All actions'),
    Object.keys(ACTIONS).map((a) => h('option', {value: a, selected: a === action}, a)));
  const actionField = field('Action', actionSelect);
  const apply = h('button', {type: 'submit'}, 'Apply filters');
  const tbody = h('tbody');
  const errors = errorBox();

  const pager = cursorPager({
    errors,
    fetchPage: async (after) => {
      if (signal.aborted) throw new DOMException('left the page', 'AbortError');
      const query = new URLSearchParams({limit: String(PAGE_SIZE)});
      if (clientId) query.set('client_id', clientId);
      if (action) query.set('action', action);
      if (after) query.set('after', after);
      const keep = new URLSearchParams();
      if (clientId) keep.set('client_id', clientId);
      if (action) keep.set('action', action);
      history.replaceState(null, '', `#/audit${keep.size ? `?${keep}` : ''}`);
      const page = (await api('GET', `audit?${query}`, {signal})).data;
      await learnNames(page.events, names, signal);
      return page;
    },
    render: (page, number) => {
      tbody.replaceChildren(...(page.events.length
        ? page.events.map((e) => h('tr', {'data-action': e.action},
          cell('When', h('time', {datetime: e.at}, fmtTime(Date.parse(e.at) / 1000))),
          cell('What', describeEvent(e, names)),
          cell('Action', h('code', {}, e.action)),
          cell('Changes', changesNode(e.changes)),
          cell('From', [e.peer ?? '—', e.request_id ? h('div', {class: 'muted small'}, `request ${e.request_id}`) : null])))
        : [h('tr', {}, h('td', {colspan: '5'}, 'No events match.'))]));
      return `Page ${number}: ${page.events.length} event${page.events.length === 1 ? '' : 's'}, newest first${page.next ? '; older ones on the next page' : ''}.`;
    },
  });

  const form = h('form', {class: 'toolbar', role: 'search', 'aria-label': 'Filter the audit log', onsubmit: (e) => {
    e.preventDefault();
    clientId = clientInput.value.trim();
    action = actionSelect.value;
    pager.first();
  }}, clientField.wrap, actionField.wrap, h('div', {class: 'field end'}, apply));

  main.append(
    h('h1', {}, 'Audit log'),
    h('p', {class: 'lead'}, 'Every change, from this console, the admin API or the command line. Secrets are never recorded.'),
    form,
    errors.el,
    h('div', {class: 'table-wrap'},
      h('table', {class: 'stack'},
        h('thead', {}, h('tr', {}, ['When', 'What', 'Action', 'Changes', 'From'].map((t) => h('th', {scope: 'col'}, t)))),
        tbody)),
    pager.el,
  );
  await pager.first();
}
