// The client list (search, filter, pages) and the "New client" dialog.
//
// "Last used" and "tokens issued in the last 24 h" are not in the list answer: each
// row asks the client's usage endpoint (four at a time) after the page is shown, so
// the list appears at once and the numbers follow.

import {api, seg, brokerUrl, TOKEN_PATH, ApiError} from './api.js';
import {h, cell, field, setFieldError, errorBox, guard, openDialog, secretBox, copy, cursorPager, fmtAgo, mapLimit, flash} from './dom.js';
import {totals} from './chart.js';

const PAGE_SIZE = 20;

/** A shell word: single-quoted, with any `'` closed, escaped and reopened. */
const shellQuote = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

/** The curl line that fetches a token with these credentials. */
export function curlLine(clientId, secret) {
  return `curl -s -u ${shellQuote(`${clientId}:${secret}`)} -d grant_type=client_credentials ${brokerUrl(TOKEN_PATH)}`;
}

/**
 * The secret, shown once: a read-only "New client secret" box with a copy button, and
 * a ready curl line. `clear()` takes both out of the page.
 */
export function secretPanel(clientId, secret, note) {
  const box = secretBox('New client secret', secret, 'Copy secret');
  const curlArea = h('textarea', {readOnly: true, rows: '3', class: 'mono', spellcheck: 'false', value: curlLine(clientId, secret)});
  const curl = field('Token request with curl', curlArea);
  const curlStatus = h('span', {class: 'copied', role: 'status'});
  const copyCurl = h('button', {type: 'button', class: 'secondary', onclick: async () => {
    curlStatus.textContent = (await copy(curlArea.value, curlArea)) ? 'Copied' : 'Select the text and copy it (Ctrl+C)';
  }}, 'Copy curl line');
  curl.wrap.append(h('div', {class: 'row'}, copyCurl, curlStatus));
  const el = h('div', {class: 'secret-panel'},
    h('p', {class: 'warning'}, h('strong', {}, 'Copy the secret now. '), 'It is shown only this once: the broker keeps only a hash of it.'),
    note ? h('p', {}, note) : null,
    box.wrap,
    curl.wrap);
  return {
    el,
    input: box.input,
    clear() {
      box.clear();
      curlArea.value = '';
      curlStatus.textContent = '';
    },
  };
}

/** Parses an optional whole number field: `null` when empty, NaN when not valid. */
export function optionalInt(value) {
  const v = value.trim();
  if (!v) return null;
  return /^\d+$/.test(v) ? Number(v) : NaN;
}

/** One value per line, blank lines dropped. */
export const lines = (value) => value.split('\n').map((s) => s.trim()).filter(Boolean);

/**
 * Puts each `errors[]` entry of a problem next to the field it names
 * (`audience[1]` → the audiences box); returns the ones no field took.
 */
export function placeFieldErrors(fields, errors) {
  const rest = [];
  for (const e of errors) {
    const name = String(e.field).split(/[.[]/)[0];
    const f = fields[name];
    if (f) {
      const prev = f.error.hidden ? '' : `${f.error.textContent} `;
      setFieldError(f, `${prev}${e.message}`);
    } else {
      rest.push(`${e.field}: ${e.message}`);
    }
  }
  const first = errors.map((e) => fields[String(e.field).split(/[.[]/)[0]]).find(Boolean);
  first?.input.focus();
  return rest;
}

function newClientDialog(onDone) {
  const name = field('Name', h('input', {type: 'text', required: true, autocomplete: 'off', maxlength: '200'}), 'Unique; how people will recognise this client.');
  const scope = field('Scopes', h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false'}), 'Space separated, e.g. invoices:read invoices:write.');
  const audience = field('Audiences', h('textarea', {rows: '2', spellcheck: 'false'}), 'One per line; the first is the default. Empty: the broker\'s issuer.');
  const ttl = field('Token lifetime (seconds)', h('input', {type: 'text', inputmode: 'numeric', autocomplete: 'off'}), 'Empty: the broker\'s default.');
  const quota = field('Quota (tokens per minute)', h('input', {type: 'text', inputmode: 'numeric', autocomplete: 'off'}), 'Successful token requests a minute; empty: no cap.');
  const fields = {client_name: name, scope, audience, access_token_ttl: ttl, tokens_per_minute: quota};
  const errors = errorBox();
  const create = h('button', {type: 'submit'}, 'Create');
  const cancel = h('button', {type: 'button', class: 'secondary'}, 'Cancel');
  const form = h('form', {novalidate: true},
    name.wrap, scope.wrap, audience.wrap, ttl.wrap, quota.wrap, errors.el,
    h('div', {class: 'actions'}, create, cancel));
  const body = h('div', {}, form);
  let panel = null;
  let created = null;
  const dialog = openDialog({
    title: 'New client',
    body,
    initialFocus: name.input,
    onClose() {
      panel?.clear();
      onDone(created);
    },
  });
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.clear();
    Object.values(fields).forEach((f) => setFieldError(f, null));
    const settings = {
      client_name: name.input.value.trim(),
      scope: scope.input.value.split(/\s+/).filter(Boolean).join(' '),
      audience: lines(audience.input.value),
    };
    const local = [];
    for (const [key, f] of [['access_token_ttl', ttl], ['tokens_per_minute', quota]]) {
      const v = optionalInt(f.input.value);
      if (Number.isNaN(v)) local.push({field: key, message: 'a whole number, or empty'});
      else if (v !== null) settings[key] = v;
    }
    if (!settings.client_name) local.push({field: 'client_name', message: 'a name is needed'});
    if (local.length) {
      placeFieldErrors(fields, local);
      return;
    }
    create.disabled = true;
    try {
      const {data} = await api('POST', 'clients', {body: settings});
      created = data;
      panel = secretPanel(data.client_id, data.client_secret);
      const done = h('button', {type: 'button', onclick: () => dialog.close()}, 'Done');
      body.replaceChildren(
        h('p', {}, 'Client ', h('strong', {}, data.client_name), ' is registered. Its id: ', h('code', {class: 'id'}, data.client_id)),
        panel.el,
        h('div', {class: 'actions'},
          done,
          h('a', {href: `#/clients/${seg(data.client_id)}`, class: 'button secondary'}, 'Open its page')),
      );
      panel.input.focus();
      panel.input.select();
    } catch (e) {
      create.disabled = false;
      if (!(e instanceof ApiError)) throw e;
      const rest = placeFieldErrors(fields, e.fieldErrors);
      if (!e.fieldErrors.length || rest.length) errors.show([e.message, ...rest.map((r) => h('div', {}, r))]);
      if (!e.fieldErrors.length) errors.el.focus();
    }
  });
}

export async function clientList(main, ctx) {
  const {signal, canWrite, params} = ctx;
  let q = params.get('q') ?? '';
  let enabled = params.get('enabled') ?? '';
  const search = h('input', {type: 'search', value: q, autocomplete: 'off', spellcheck: 'false'});
  const searchField = field('Search clients', search, 'Part of a name, id or description.');
  const show = h('select', {}, [['', 'All'], ['true', 'Enabled'], ['false', 'Disabled']].map(([v, t]) => h('option', {value: v, selected: v === enabled}, t)));
  const showField = field('Show', show);
  const newButton = guard(h('button', {type: 'button'}, 'New client'), canWrite);
  const tbody = h('tbody');
  const errors = errorBox();

  const headers = ['Name', 'Client ID', 'Scopes', 'Enabled', 'Last used', 'Tokens, 24 h'];
  const row = (c) => {
    const last = h('span', {}, '…');
    const count = h('span', {}, '…');
    const tr = h('tr', {},
      cell('Name', h('a', {href: `#/clients/${seg(c.client_id)}`}, c.client_name)),
      cell('Client ID', h('code', {class: 'id'}, c.client_id)),
      cell('Scopes', c.scope ? c.scope.split(' ').map((s) => h('span', {class: 'tag'}, s)) : h('span', {class: 'muted'}, 'none')),
      cell('Enabled', c.enabled ? h('span', {class: 'badge ok'}, 'Yes') : h('span', {class: 'badge off'}, 'No')),
      cell('Last used', last),
      cell('Tokens, 24 h', count, {class: 'num'}));
    return {tr, last, count, client: c};
  };

  /** Each row's usage, four requests at a time, after the rows are shown. */
  const fillUsage = (rows) => mapLimit(rows, 4, async (r) => {
    try {
      const t = totals((await api('GET', `clients/${seg(r.client.client_id)}/usage`, {signal})).data);
      r.count.textContent = t.issued.toLocaleString('en');
      r.last.textContent = t.lastIssued ? fmtAgo(Date.parse(t.lastIssued)) : 'not in 24 h';
    } catch (e) {
      if (e.name === 'AbortError') return;
      r.count.textContent = '?';
      r.last.textContent = '?';
    }
  });

  const pager = cursorPager({
    errors,
    fetchPage: async (after) => {
      if (signal.aborted) throw new DOMException('left the page', 'AbortError');
      const query = new URLSearchParams({limit: String(PAGE_SIZE)});
      if (q) query.set('q', q);
      if (enabled) query.set('enabled', enabled);
      if (after) query.set('after', after);
      // Keep the search in the address, so "back" from a client returns to it.
      const keep = new URLSearchParams();
      if (q) keep.set('q', q);
      if (enabled) keep.set('enabled', enabled);
      history.replaceState(null, '', `#/clients${keep.size ? `?${keep}` : ''}`);
      return (await api('GET', `clients?${query}`, {signal})).data;
    },
    render: (page, number) => {
      const rows = page.clients.map(row);
      tbody.replaceChildren(...(rows.length ? rows.map((r) => r.tr) : [h('tr', {}, h('td', {colspan: String(headers.length)}, q ? `No client matches "${q}".` : 'No clients yet.'))]));
      fillUsage(rows);
      return `Page ${number}: ${page.clients.length} client${page.clients.length === 1 ? '' : 's'}${page.next ? ', more on the next page' : ''}.`;
    },
  });

  let debounce = 0;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      q = search.value.trim();
      pager.first();
    }, 250);
  });
  show.addEventListener('change', () => {
    enabled = show.value;
    pager.first();
  });
  newButton.addEventListener('click', () => newClientDialog((created) => {
    if (signal.aborted) return; // left for the new client's page
    if (created) flash(`Client ${created.client_name} created.`);
    pager.reload();
  }));

  const searchForm = h('form', {role: 'search', class: 'toolbar', onsubmit: (e) => {
    e.preventDefault();
    clearTimeout(debounce);
    q = search.value.trim();
    pager.first();
  }}, searchField.wrap, showField.wrap);

  main.append(
    h('div', {class: 'title-row'}, h('h1', {}, 'Clients'), newButton),
    searchForm,
    errors.el,
    h('div', {class: 'table-wrap'},
      h('table', {class: 'stack'},
        h('thead', {}, h('tr', {}, headers.map((t) => h('th', {scope: 'col'}, t)))),
        tbody)),
    pager.el,
  );
  await pager.first();
  return () => clearTimeout(debounce);
}
