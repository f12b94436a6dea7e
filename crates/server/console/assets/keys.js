// The signing keys: which one signs, which are retired and until when they stay
// published, and "Rotate key".

import {api} from './api.js';
import {h, cell, guard, confirmDialog, flash, fmtTime} from './dom.js';

export async function keys(main, ctx) {
  const {signal, canWrite} = ctx;
  const tbody = h('tbody');

  const load = async () => {
    const {data} = await api('GET', 'keys', {signal});
    tbody.replaceChildren(...data.keys.map((k) => h('tr', {},
      cell('Key ID', h('code', {class: 'id'}, k.kid)),
      cell('Algorithm', k.alg),
      cell('State', k.state === 'active'
        ? h('span', {class: 'badge ok'}, 'Active: signs new tokens')
        : h('span', {class: 'badge off'}, 'Retired')),
      cell('Created', fmtTime(k.created_at)),
      cell('Retired', fmtTime(k.retired_at)),
      cell('Published until', k.state === 'active' ? 'while active' : fmtTime(k.published_until)))));
  };

  const rotate = guard(h('button', {type: 'button'}, 'Rotate key'), canWrite);
  rotate.addEventListener('click', () => confirmDialog({
    title: 'Rotate key',
    text: 'A new key signs every token from now on, on every replica within seconds. The current key is retired but stays in the JWKS until the last token it signed has expired, so no token stops verifying.',
    confirmLabel: 'Rotate now',
    run: async () => {
      const {data} = await api('POST', 'keys/rotate');
      flash(`Key ${data.kid} (${data.alg}) is now active.`);
      await load();
    },
  }));

  main.append(
    h('div', {class: 'title-row'}, h('h1', {}, 'Signing keys'), rotate),
    h('p', {class: 'lead'}, 'Tokens are signed with the active key; resource servers find every key in ', h('code', {}, '/.well-known/jwks.json'), '.'),
    h('div', {class: 'table-wrap'},
      h('table', {class: 'stack'},
        h('thead', {}, h('tr', {}, ['Key ID', 'Algorithm', 'State', 'Created', 'Retired', 'Published until'].map((t) => h('th', {scope: 'col'}, t)))),
        tbody)),
  );
  await load();
}
