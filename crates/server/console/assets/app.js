// The console's entry point: sign-in, the header, and a hash router over the views.
//
// Routes live in the fragment (#/clients/ID) so the broker serves one page and a
// reload or a shared link lands on the same view. Each view is an async function
// `(main, params, ctx)` that fills `main` and may return a cleanup function; the
// cleanup runs when the user leaves the view (it clears any secret still shown and
// stops timers), and `ctx.signal` aborts the view's requests still in flight.

import * as session from './api.js';
import {h, field, errorBox, flash, takeFlash, closeDialogs, fmtClock, READONLY_NOTE} from './dom.js';
import {home} from './home.js';
import {clientList} from './clients.js';
import {clientPage} from './client.js';
import {keys} from './keys.js';
import {audit} from './audit.js';
import {tokenChecker} from './token.js';

const ROUTES = [
  {pattern: /^\/?$/, view: home, nav: '#/', title: 'Overview'},
  {pattern: /^\/clients$/, view: clientList, nav: '#/clients', title: 'Clients'},
  {pattern: /^\/clients\/([^/]+)$/, view: clientPage, nav: '#/clients', title: 'Client'},
  {pattern: /^\/keys$/, view: keys, nav: '#/keys', title: 'Keys'},
  {pattern: /^\/audit$/, view: audit, nav: '#/audit', title: 'Audit log'},
  {pattern: /^\/token$/, view: tokenChecker, nav: '#/token', title: 'Token checker'},
];

const main = document.getElementById('main');
let cleanup = null;
let controller = null;
/** A message for the sign-in page (why the session ended). */
let signedOutMessage = '';

/** Leaves the current view: its cleanup, its requests, its dialogs. */
function leave() {
  // Abort first: a dialog's close handler may start a reload, which must see that
  // its page is gone.
  controller?.abort();
  controller = null;
  closeDialogs();
  if (cleanup) {
    try {
      cleanup();
    } finally {
      cleanup = null;
    }
  }
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const [path, query = ''] = raw.split('?');
  return {path, params: new URLSearchParams(query)};
}

async function route() {
  leave();
  flash(takeFlash());
  const s = session.current();
  updateChrome(s);
  if (!s) {
    signInPage();
    return;
  }
  const {path, params} = parseHash();
  const found = ROUTES.map((r) => ({r, m: path.match(r.pattern)})).find((x) => x.m);
  if (!found) {
    location.replace('#/');
    return;
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === found.r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${found.r.title} · auth-broker console`;
  const mine = new AbortController();
  controller = mine;
  const ctx = {
    signal: mine.signal,
    canWrite: session.canWrite(),
    match: found.m,
    params,
    setTitle: (t) => {
      document.title = `${t} · auth-broker console`;
    },
  };
  main.replaceChildren();
  let done = null;
  try {
    done = (await found.r.view(main, ctx)) ?? null;
  } catch (e) {
    if (e.name === 'AbortError' || !session.current()) return;
    if (controller !== mine) return;
    const box = errorBox();
    box.show(e.message);
    main.append(box.el);
  }
  // The user may have moved on (or been signed out) while the view loaded: then its
  // cleanup runs at once.
  if (controller !== mine) {
    done?.();
    return;
  }
  cleanup = done;
  // Move focus to the page's heading, so keyboard and screen reader users start at
  // the top of the new page instead of on the link they left.
  if (!document.querySelector('dialog[open]')) {
    const heading = main.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({preventScroll: false});
    }
  }
}

/** The header: navigation and who is signed in, or nothing when signed out. */
function updateChrome(s) {
  document.getElementById('nav').hidden = !s;
  document.getElementById('who').hidden = !s;
  const note = document.getElementById(READONLY_NOTE);
  if (!s) {
    note.hidden = true;
    return;
  }
  const mode = s.scopes.includes(session.ADMIN_WRITE) ? 'admin:write' : 'admin:read';
  document.getElementById('who-text').replaceChildren(
    'Signed in as ', h('code', {class: 'who-id'}, s.clientId), ` · ${mode} · until ${fmtClock(s.expiresAt)}`);
  note.hidden = session.canWrite();
  note.textContent = session.canWrite() ? '' :
    `Read-only: ${s.clientId}'s token has admin:read, not admin:write. You can look at everything; ` +
    'the controls that change something are disabled. To make changes, sign in with a client that has admin:write.';
}

function signInPage() {
  document.title = 'Sign in · auth-broker console';
  const idInput = h('input', {type: 'text', name: 'client_id', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true});
  const secretInput = h('input', {type: 'password', name: 'client_secret', autocomplete: 'current-password', required: true});
  const id = field('Client ID', idInput);
  const secret = field('Client secret', secretInput);
  const errors = errorBox();
  const notice = h('p', {class: 'notice', role: 'status'}, signedOutMessage);
  notice.hidden = !signedOutMessage;
  const button = h('button', {type: 'submit'}, 'Sign in');
  const form = h('form', {class: 'card narrow', novalidate: true}, id.wrap, secret.wrap, errors.el, h('div', {class: 'actions'}, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.clear();
    if (!idInput.value.trim() || !secretInput.value) {
      errors.show('Enter the admin client\'s id and secret.');
      (idInput.value.trim() ? secretInput : idInput).focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      await session.signIn(idInput.value.trim(), secretInput.value);
      secretInput.value = '';
      signedOutMessage = '';
      if (!location.hash || location.hash === '#') location.hash = '#/';
      else route();
    } catch (e) {
      errors.show(e.code ? [h('strong', {}, 'Sign-in refused: '), e.message, ` (${e.code})`] : e.message);
      button.disabled = false;
      button.textContent = 'Sign in';
      secretInput.focus();
      secretInput.select();
    }
  });
  main.replaceChildren(
    h('h1', {}, 'Sign in'),
    notice,
    h('p', {class: 'lead'}, 'With an admin client\'s id and secret: one with the scope admin:write to make changes, or admin:read to look.'),
    form,
    h('p', {class: 'hint'}, 'No admin client yet? On the broker\'s host: ', h('code', {}, 'auth-broker client create --name ops --scope admin:write')),
  );
  idInput.focus();
}

session.onSignedOut((message) => {
  signedOutMessage = message;
  route();
});

document.getElementById('sign-out').addEventListener('click', () => {
  session.signOut();
  signedOutMessage = 'You are signed out. The token is forgotten in this tab.';
  route();
});

// A navigation link to the page already shown fires no hashchange: reload the page
// instead of doing nothing (the natural "show me the current state" gesture).
document.getElementById('nav').addEventListener('click', (event) => {
  const link = event.target.closest('a');
  if (link && link.getAttribute('href') === location.hash) {
    event.preventDefault();
    route();
  }
});

window.addEventListener('hashchange', route);
session.restore();
route();
