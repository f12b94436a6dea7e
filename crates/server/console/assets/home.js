// The overview: how many clients, the signing key, recent changes, and the token
// traffic of the whole broker.
//
// The admin API reports usage per client, so the whole-broker chart is the sum of
// the first page of clients (up to HOME_CLIENTS); the page says so, and says when
// there are more clients than that.

import {api, seg} from './api.js';
import {h, fmtTime, plural, mapLimit, errorBox} from './dom.js';
import {usageChart, sumUsage, totals} from './chart.js';
import {describeEvent, learnNames} from './audit.js';

const HOME_CLIENTS = 50;
const REFRESH_MS = 30 * 1000;

export async function home(main, ctx) {
  const {signal} = ctx;
  const [page, keyList, recent] = await Promise.all([
    api('GET', `clients?limit=${HOME_CLIENTS}`, {signal}),
    api('GET', 'keys', {signal}),
    api('GET', 'audit?limit=5', {signal}),
  ]);
  const clients = page.data.clients;
  const more = page.data.next !== null;
  const names = new Map(clients.map((c) => [c.client_id, c.client_name]));
  await learnNames(recent.data.events, names, signal);
  const loadUsage = async () => sumUsage(await mapLimit(clients, 4, async (c) => {
    try {
      return (await api('GET', `clients/${seg(c.client_id)}/usage`, {signal})).data;
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      return null; // deleted meanwhile: left out of the sum
    }
  }));
  let usage = await loadUsage();

  const enabled = clients.filter((c) => c.enabled).length;
  const active = keyList.data.keys.find((k) => k.state === 'active');
  const issuedCard = h('p', {class: 'big'});
  const setIssued = () => {
    issuedCard.textContent = totals(usage).issued.toLocaleString('en');
  };
  setIssued();

  const scopeNote = more
    ? `Summed over the first ${clients.length} clients; there are more, and their traffic is not in this chart (the admin API reports usage per client).`
    : `Summed over all ${plural(clients.length, 'client')} (the admin API reports usage per client).`;
  const chart = usageChart(usage, {caption: 'Token requests per minute, whole broker, last 24 hours'});
  const errors = errorBox();
  const refresh = async () => {
    try {
      usage = await loadUsage();
      chart.update(usage);
      setIssued();
      errors.clear();
    } catch (e) {
      if (e.name !== 'AbortError') errors.show(`Could not refresh the chart: ${e.message}`);
    }
  };
  const refreshButton = h('button', {type: 'button', class: 'secondary', onclick: refresh}, 'Refresh chart');

  main.append(
    h('h1', {}, 'Overview'),
    h('div', {class: 'cards'},
      h('section', {class: 'card stat', 'aria-labelledby': 'stat-clients'},
        h('h2', {id: 'stat-clients'}, 'Registered clients'),
        h('p', {class: 'big'}, `${clients.length}${more ? '+' : ''}`),
        h('p', {}, `${plural(enabled, 'enabled client')}, ${clients.length - enabled} disabled`)),
      h('section', {class: 'card stat', 'aria-labelledby': 'stat-issued'},
        h('h2', {id: 'stat-issued'}, 'Tokens issued, 24 h'),
        issuedCard,
        h('p', {}, more ? `for the first ${clients.length} clients` : 'by all clients')),
      h('section', {class: 'card stat', 'aria-labelledby': 'stat-key'},
        h('h2', {id: 'stat-key'}, 'Signing'),
        h('p', {class: 'big mono'}, active ? active.alg : '—'),
        h('p', {}, active ? ['key ', h('code', {}, active.kid), `, active since ${fmtTime(active.created_at)}`] : 'no active key'))),
    h('section', {class: 'card'},
      chart.el,
      h('p', {class: 'hint'}, scopeNote),
      errors.el,
      h('div', {class: 'actions'}, refreshButton)),
    h('section', {class: 'card', 'aria-labelledby': 'recent'},
      h('h2', {id: 'recent'}, 'Recent changes'),
      recent.data.events.length
        ? h('ul', {class: 'plain'}, recent.data.events.map((e) => h('li', {}, h('span', {class: 'muted'}, fmtTime(Date.parse(e.at) / 1000)), ' ', describeEvent(e, names))))
        : h('p', {}, 'No changes yet.')),
  );
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    clearInterval(timer);
    chart.destroy();
  };
}
