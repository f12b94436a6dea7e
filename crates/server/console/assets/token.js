// The token checker: paste a token, read what the broker's token-info says about it,
// in sentences. The token goes only to this broker's /auth-broker/token-info (in the
// Authorization header, as an API would receive it) and leaves the page with it.

import {api, seg, brokerUrl} from './api.js';
import {h, field, fmtTime, fmtDuration} from './dom.js';

const REGISTERED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'cnf']);

/** Asks token-info; resolves to `{ok, status, body}`. */
async function tokenInfo(token, audience) {
  const url = new URL(brokerUrl('auth-broker/token-info'));
  if (audience) url.searchParams.set('audience', audience);
  const r = await fetch(url, {
    headers: {Authorization: `Bearer ${token}`, Accept: 'application/json'},
    credentials: 'omit',
    cache: 'no-store',
  });
  return {ok: r.ok, status: r.status, body: await r.json().catch(() => null)};
}

const list = (items) => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`);

/** The verdict on an active token, as sentences. */
async function explainValid(info) {
  const c = info.claims ?? {};
  const hd = info.header ?? {};
  let clientName = null;
  if (c.client_id) {
    try {
      clientName = (await api('GET', `clients/${seg(c.client_id)}`)).data.client_name;
    } catch {
      // Looking the name up is a nicety; the verdict stands without it.
    }
  }
  const aud = Array.isArray(c.aud) ? c.aud : c.aud ? [c.aud] : [];
  const scopes = String(c.scope ?? '').split(' ').filter(Boolean);
  const now = Date.now() / 1000;
  const extra = Object.keys(c).filter((k) => !REGISTERED.has(k));
  const sentences = [
    info.format === 'opaque'
      ? 'An opaque token of this broker (checked by looking it up in the store).'
      : `A JWT of this broker, signed with key ${hd.kid ?? '?'} (${hd.alg ?? '?'})${c.iss ? ` by ${c.iss}` : ''}.`,
    c.client_id ? `Issued to client ${c.client_id}${clientName ? ` (${clientName})` : ''}${c.iat ? ` at ${fmtTime(c.iat)}` : ''}.` : null,
    `It expires in ${fmtDuration(info.expires_in)}${c.exp ? `, at ${fmtTime(c.exp)}` : ''}.`,
    c.nbf && c.nbf > now ? `It is not valid before ${fmtTime(c.nbf)}.` : null,
    aud.length ? `For the audience ${list(aud)}: an API that expects another audience refuses it.` : null,
    scopes.length ? `Scopes: ${list(scopes)}.` : 'It carries no scopes.',
    c.cnf ? 'It is bound to a key or certificate (cnf): the caller must prove it holds that key.' : null,
    extra.length ? `Extra claims: ${list(extra.map((k) => `${k} = ${JSON.stringify(c[k])}`))}.` : null,
  ].filter(Boolean);
  return sentences;
}

export async function tokenChecker(main) {
  const tokenArea = h('textarea', {rows: '5', class: 'mono', spellcheck: 'false', autocomplete: 'off'});
  const tokenField = field('Token', tokenArea, 'The access token only, without "Bearer ".');
  const audienceInput = h('input', {type: 'text', spellcheck: 'false', autocomplete: 'off'});
  const audienceField = field('Audience your API expects (optional)', audienceInput, 'Checks aud as that API would.');
  const check = h('button', {type: 'submit'}, 'Check token');
  const clear = h('button', {type: 'button', class: 'secondary'}, 'Clear');
  const result = h('div', {class: 'verdict', 'aria-live': 'polite'});

  const form = h('form', {class: 'card', novalidate: true}, tokenField.wrap, audienceField.wrap, h('div', {class: 'actions'}, check, clear));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = tokenArea.value.trim();
    if (!token) {
      result.replaceChildren(h('p', {class: 'error'}, 'Paste a token first.'));
      return;
    }
    // A header value cannot hold a line break, so the browser would refuse to send
    // it; say what token-info would say.
    if (/[\r\n]/.test(token)) {
      result.replaceChildren(
        h('h2', {class: 'bad'}, 'Refused'),
        h('p', {}, 'The token has a line break in it. Tokens are one line: copy it again without the break (terminals and e-mail often wrap long lines).'));
      return;
    }
    check.disabled = true;
    result.replaceChildren(h('p', {class: 'muted'}, 'Checking…'));
    try {
      const r = await tokenInfo(token, audienceInput.value.trim());
      if (r.ok && r.body?.active) {
        const sentences = await explainValid(r.body);
        result.replaceChildren(
          h('h2', {class: 'good'}, 'Valid'),
          h('p', {}, 'token-info accepts this token.'),
          h('ul', {}, sentences.map((s) => h('li', {}, s))),
          h('details', {}, h('summary', {}, 'Header and claims'), h('pre', {class: 'mono'}, JSON.stringify({header: r.body.header, claims: r.body.claims}, null, 2))));
      } else {
        result.replaceChildren(
          h('h2', {class: 'bad'}, 'Refused'),
          h('p', {}, 'token-info says: ', h('strong', {}, r.body?.error_description ?? `HTTP ${r.status}`)),
          r.body?.error ? h('p', {class: 'muted'}, `(${r.body.error}, HTTP ${r.status}; an API checking this token would refuse it the same way)`) : null);
      }
    } catch (e) {
      result.replaceChildren(h('p', {class: 'error'}, `The broker did not answer: ${e.message}`));
    } finally {
      check.disabled = false;
    }
  });
  clear.addEventListener('click', () => {
    tokenArea.value = '';
    result.replaceChildren();
    tokenArea.focus();
  });

  main.append(
    h('h1', {}, 'Token checker'),
    h('p', {class: 'lead'}, 'Paste an access token to see whether this broker accepts it, and why not when it does not.'),
    form,
    result,
  );
  // The pasted token is a credential: it leaves the page with the page.
  return () => {
    tokenArea.value = '';
    result.replaceChildren();
  };
}
