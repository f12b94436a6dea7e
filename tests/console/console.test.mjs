// The console's scenario in Chromium (tests/console/run.sh starts the broker and sets
// the environment). One browser, steps in order; the first failure saves a screenshot
// named FAILED-<step>.png, prints the step and exits 1.
//
// What it proves, as issue 16 asks: sign in (by keyboard), create a client (by
// keyboard), read its secret once, get a token with it over HTTP (200), edit its
// scopes (the next token has them), a concurrent edit reported and not lost (412),
// rotate its secret (old refused, new works), disable it (401), every step in the
// audit log, the chart drawing the tokens just issued, keys and their rotation, the
// token checker, sign out; a wrong admin secret shows the broker's own error; an
// admin:read session sees every change control disabled, and a change forced anyway
// is refused with a clear message; a session ends with a message when its token
// expires or is refused. Every page at 1280x800 and 390x844 (no sideways scrolling
// on the phone), every control named, nothing loaded from another origin, no CSP
// violation, no script error.

import {createRequire} from 'node:module';
import {execFileSync} from 'node:child_process';
import assert from 'node:assert/strict';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run tests/console/run.sh)`);
  return v;
};
const BASE = env('BASE');
const SHOTS = env('SHOTS');
const require = createRequire(path.join(env('NODE_DIR'), 'package.json'));
const {chromium} = require('playwright-core');

const OPS = {id: env('OPS_ID'), secret: env('OPS_SECRET')};
const AUDITOR = {id: env('AUDITOR_ID'), secret: env('AUDITOR_SECRET')};
const BRIEF = {id: env('BRIEF_ID'), secret: env('BRIEF_SECRET')};
const VICTIM = {id: env('VICTIM_ID'), secret: env('VICTIM_SECRET')};
const PLAIN = {id: env('PLAIN_ID'), secret: env('PLAIN_SECRET')};

// ---- HTTP helpers (the integrator's side, outside the browser) ----

/** RFC 6749 §2.3.1 Basic credentials. */
const basic = (id, secret) => {
  const enc = (s) => new URLSearchParams([['', s]]).toString().slice(1);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
};

async function requestToken(id, secret) {
  const r = await fetch(`${BASE}/auth-broker/request-token`, {
    method: 'POST',
    headers: {Authorization: basic(id, secret), 'Content-Type': 'application/x-www-form-urlencoded'},
    body: 'grant_type=client_credentials',
  });
  return {status: r.status, body: await r.json()};
}

async function adminApi(token, method, p, body) {
  const r = await fetch(`${BASE}/admin/v1/${p}`, {
    method,
    headers: {Authorization: `Bearer ${token}`, ...(body ? {'Content-Type': 'application/json'} : {})},
    body: body ? JSON.stringify(body) : undefined,
  });
  return {status: r.status, body: r.status === 204 ? null : await r.json()};
}

/** The CLI against the same store (run.sh exports its database URL). */
const cli = (...args) => execFileSync(env('BIN'), args, {encoding: 'utf8'});

// ---- browser helpers ----

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const problems = [];
/** The last answers the page got, printed when a step fails. */
const recent = [];
let page;
let currentStep = '';

async function step(name, fn) {
  recent.push(`  -- ${name}`);
  currentStep = name;
  const started = Date.now();
  try {
    await fn();
  } catch (e) {
    console.error(`FAIL ${name}\n${e.stack ?? e}\nthe page's last requests:\n${recent.join('\n')}`);
    if (page) {
      await page.screenshot({path: path.join(SHOTS, `FAILED-${name.replace(/\W+/g, '-')}.png`), fullPage: true}).catch(() => {});
    }
    process.exit(1);
  }
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

/** Waits until `fn()` is truthy (polling), or fails with `what`. */
async function until(what, fn, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last?.message ?? last})`);
}

async function shot(name) {
  await page.screenshot({path: path.join(SHOTS, `${name}.png`), fullPage: true});
}

const role = (r, name, opts = {}) => page.getByRole(r, {name, exact: true, ...opts});
const focused = (locator) => locator.evaluate((el) => el === document.activeElement);

/** Presses Tab until `locator` has focus: proves it is reachable by keyboard. */
async function tabTo(locator, max = 40) {
  for (let i = 0; i < max; i += 1) {
    if (await focused(locator)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached ${locator}`);
}

/** Every page: controls have names, nothing scrolls sideways, no script error. */
async function checkPage(label) {
  const snapshot = await page.locator('body').ariaSnapshot();
  const unnamed = snapshot.split('\n').filter((l) =>
    /^\s*- (textbox|button|combobox|checkbox|radio|searchbox|link|spinbutton)\s*(\[[^\]]*\])?\s*(:.*)?$/.test(l)
    && !/"/.test(l.split(':')[0]));
  assert.deepEqual(unnamed, [], `${label}: controls without an accessible name`);
  const {scroll, inner} = await page.evaluate(() => ({
    scroll: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    inner: window.innerWidth,
  }));
  assert.ok(scroll <= inner, `${label}: scrolls sideways (${scroll} > ${inner})`);
  assert.deepEqual(problems, [], `${label}: script errors, CSP violations or foreign requests`);
}

async function newPage(context) {
  const p = await context.newPage();
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  p.on('console', (m) => {
    // Refusals the console handles (401, 403, 412, ...) are logged by Chromium as
    // failed loads; anything else on the console is a defect.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of \d+/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  p.on('response', (r) => {
    recent.push(`  ${new Date().toISOString().slice(11, 23)} ${r.request().method()} ${r.url().replace(BASE, '')} ${r.status()}`);
    if (recent.length > 40) recent.shift();
  });
  p.on('request', (r) => {
    if (!r.url().startsWith(BASE)) problems.push(`request to another origin: ${r.url()}`);
  });
  return p;
}

async function signIn(who) {
  await role('textbox', 'Client ID').fill(who.id);
  await role('textbox', 'Client secret').fill(who.secret);
  await role('button', 'Sign in').click();
  await role('button', 'Sign out').waitFor();
}

async function signOut() {
  await role('button', 'Sign out').click();
  await role('button', 'Sign in').waitFor();
}

async function gotoClient(name) {
  await role('link', 'Clients').click();
  await role('link', name).click();
  await role('heading', name, {level: 1}).waitFor();
}

// ---- the scenario ----

const browser = await chromium.launch({executablePath: env('CHROMIUM'), args: ARGS, headless: true});
const started = Date.now();
const desk = await browser.newContext({viewport: {width: 1280, height: 800}});
await desk.grantPermissions(['clipboard-read', 'clipboard-write'], {origin: BASE});
page = await newPage(desk);

const billing = {name: `billing-${Date.now() % 100000}`};
let okTokens = 0;

await step('headers: the page is served with a strict CSP', async () => {
  const r = await page.goto(`${BASE}/admin`);
  assert.equal(new URL(page.url()).pathname, '/admin/', 'redirected to /admin/');
  const h = r.headers();
  assert.match(h['content-security-policy'], /script-src 'self'/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe/);
  assert.equal(h['x-frame-options'], 'DENY');
  await role('button', 'Sign in').waitFor();
  await shot('signin-desktop');
  await checkPage('sign-in');
});

await step('a wrong admin secret shows the broker\'s error', async () => {
  const expected = (await requestToken(OPS.id, 'abs_wrong')).body.error_description;
  await role('textbox', 'Client ID').fill(OPS.id);
  await role('textbox', 'Client secret').fill('abs_wrong');
  await role('button', 'Sign in').click();
  const alert = page.getByRole('alert');
  await alert.getByText(expected, {exact: false}).waitFor();
  assert.match(await alert.innerText(), /invalid_client/);
  await shot('signin-error-desktop');
});

await step('a client without an admin scope is told so', async () => {
  await role('textbox', 'Client ID').fill(PLAIN.id);
  await role('textbox', 'Client secret').fill(PLAIN.secret);
  await role('button', 'Sign in').click();
  await page.getByRole('alert').getByText('has no admin scope', {exact: false}).waitFor();
});

await step('sign in with the keyboard only', async () => {
  await page.reload();
  const id = role('textbox', 'Client ID');
  await tabTo(id);
  await page.keyboard.type(OPS.id);
  await tabTo(role('textbox', 'Client secret'));
  await page.keyboard.type(OPS.secret);
  await page.keyboard.press('Enter');
  await role('heading', 'Overview', {level: 1}).waitFor();
  await role('button', 'Sign out').waitFor();
  const stored = await page.evaluate(() => ({cookies: document.cookie, local: localStorage.length}));
  assert.deepEqual(stored, {cookies: '', local: 0}, 'no cookie, nothing in localStorage');
  await checkPage('overview');
});

await step('create a client with the keyboard only; the secret shown once', async () => {
  const clients = role('link', 'Clients');
  await tabTo(clients);
  await page.keyboard.press('Enter');
  await role('heading', 'Clients', {level: 1}).waitFor();
  const newClient = role('button', 'New client');
  await tabTo(newClient);
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', {name: 'New client'});
  await dialog.waitFor();
  assert.ok(await focused(dialog.getByRole('textbox', {name: 'Name', exact: true})), 'focus starts in Name');
  await page.keyboard.type(billing.name);
  await tabTo(dialog.getByRole('textbox', {name: 'Scopes', exact: true}));
  await page.keyboard.type('invoices:read');
  await tabTo(dialog.getByRole('button', {name: 'Create', exact: true}));
  await page.keyboard.press('Enter');
  const secretBox = dialog.getByRole('textbox', {name: 'New client secret', exact: true});
  await secretBox.waitFor();
  assert.equal(await secretBox.getAttribute('readonly'), '', 'read-only');
  billing.secret = await secretBox.inputValue();
  assert.match(billing.secret, /^abs_/);
  billing.id = await dialog.locator('code.id').innerText();
  const curl = await dialog.getByRole('textbox', {name: 'Token request with curl'}).inputValue();
  assert.ok(curl.includes(`${billing.id}:${billing.secret}`) && curl.includes('/auth-broker/request-token'), curl);
  await dialog.getByRole('button', {name: 'Copy secret'}).click();
  await dialog.getByText('Copied').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), billing.secret, 'copied');
  await shot('new-client-secret-desktop');
  await checkPage('new client dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({state: 'detached'});
  assert.ok(await focused(newClient), 'focus back on "New client"');
  assert.equal(await page.locator('input[readonly]').count(), 0, 'the secret left the page');
  await role('link', billing.name).waitFor();
  await shot('clients-desktop');
  await checkPage('clients');
  // Search narrows the list (and keeps the search in the address).
  await page.getByRole('searchbox', {name: 'Search clients'}).fill(billing.name);
  await until('one match', async () => (await page.locator('tbody tr').count()) === 1
    && (await page.locator('tbody').innerText()).includes(billing.name));
  assert.ok(page.url().endsWith(`#/clients?q=${billing.name}`), page.url());
});

await step('the new client gets a token over HTTP (200)', async () => {
  const r = await requestToken(billing.id, billing.secret);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.scope, 'invoices:read');
  billing.firstToken = r.body.access_token;
  okTokens += 1;
  // A failure too, for the chart's second series.
  assert.equal((await requestToken(billing.id, 'abs_not-it')).status, 401);
});

await step('edit its scopes; the next token has them', async () => {
  await gotoClient(billing.name);
  await role('textbox', 'Scopes').fill('invoices:read invoices:write');
  await role('button', 'Save changes').click();
  await page.locator('#flash').getByText('Saved: scopes.').waitFor();
  const r = await requestToken(billing.id, billing.secret);
  assert.equal(r.status, 200);
  assert.equal(r.body.scope, 'invoices:read invoices:write');
  okTokens += 1;
  await checkPage('client');
});

await step('a refused setting is shown next to its field', async () => {
  await role('textbox', 'Extra claims (JSON object)').fill('{"iss": "me"}');
  await role('button', 'Save changes').click();
  const box = role('textbox', 'Extra claims (JSON object)');
  await until('the field marked invalid', async () => (await box.getAttribute('aria-invalid')) === 'true');
  const described = (await box.getAttribute('aria-describedby')).split(' ');
  const message = await page.locator(`#${described.find((id) => id.endsWith('-err'))}`).innerText();
  assert.match(message, /iss/, message);
  await role('button', 'Discard edits').click();
  assert.equal(await box.inputValue(), '');
  assert.equal(await box.getAttribute('aria-invalid'), null);
});

await step('a concurrent edit is reported, and nothing is lost', async () => {
  // Someone else (the API, another operator) changes the description meanwhile.
  const ops = (await requestToken(OPS.id, OPS.secret)).body.access_token;
  const r = await adminApi(ops, 'PATCH', `clients/${billing.id}`, {description: 'changed elsewhere'});
  assert.equal(r.status, 200);
  await role('textbox', 'Quota (tokens per minute)').fill('100');
  await role('button', 'Save changes').click();
  const conflict = page.locator('.conflict');
  await conflict.getByText('Someone else changed this client', {exact: false}).waitFor();
  assert.equal(await role('textbox', 'Quota (tokens per minute)').inputValue(), '100', 'the edit is kept');
  assert.equal(await role('textbox', 'Description').inputValue(), 'changed elsewhere', 'their change is taken');
  await shot('client-conflict-desktop');
  await role('button', 'Save changes').click();
  await page.locator('#flash').getByText('Saved: quota (tokens per minute).').waitFor();
  const now = await adminApi(ops, 'GET', `clients/${billing.id}`);
  assert.equal(now.body.tokens_per_minute, 100);
  assert.equal(now.body.description, 'changed elsewhere');
  assert.equal(now.body.scope, 'invoices:read invoices:write');
});

await step('key-bound settings: a certificate subject and required DPoP, saved and then reset', async () => {
  const ops = (await requestToken(OPS.id, OPS.secret)).body.access_token;
  await role('textbox', 'Certificate subject (tls_client_auth)').fill('CN=billing,O=Example');
  await role('combobox', 'Require DPoP').selectOption('true');
  await role('button', 'Save changes').click();
  await page.locator('#flash').getByText('Saved:', {exact: false}).waitFor();
  let now = await adminApi(ops, 'GET', `clients/${billing.id}`);
  assert.equal(now.body.tls_client_auth_subject_dn, 'CN=billing,O=Example');
  assert.equal(now.body.dpop_bound_access_tokens, true);
  await shot('client-keybound-desktop');
  await role('textbox', 'Certificate subject (tls_client_auth)').fill('');
  await role('combobox', 'Require DPoP').selectOption('false');
  await role('button', 'Save changes').click();
  await until('the reset saved', async () => {
    now = await adminApi(ops, 'GET', `clients/${billing.id}`);
    return now.body.tls_client_auth_subject_dn === null && now.body.dpop_bound_access_tokens === false;
  });
});

await step('rotate its secret: the old one is refused, the new one works', async () => {
  await role('button', 'Rotate secret').click();
  const dialog = page.getByRole('dialog', {name: 'Rotate secret'});
  await dialog.getByRole('radio', {name: 'Not at all: it stops working now'}).check();
  await dialog.getByRole('button', {name: 'Rotate now'}).click();
  const box = dialog.getByRole('textbox', {name: 'New client secret', exact: true});
  await box.waitFor();
  const fresh = await box.inputValue();
  assert.notEqual(fresh, billing.secret);
  await dialog.getByText('The old secret has stopped working.').waitFor();
  await shot('rotate-secret-desktop');
  await dialog.getByRole('button', {name: 'Done'}).click();
  await dialog.waitFor({state: 'detached'});
  assert.equal((await requestToken(billing.id, billing.secret)).status, 401, 'old secret');
  const r = await requestToken(billing.id, fresh);
  assert.equal(r.status, 200, 'new secret');
  okTokens += 1;
  billing.secret = fresh;
  billing.lastToken = r.body.access_token;
});

await step('disable it: its token requests get 401', async () => {
  await role('button', 'Disable').click();
  await role('button', 'Enable').waitFor();
  await page.locator('.badge').getByText('Disabled', {exact: true}).waitFor();
  assert.equal((await requestToken(billing.id, billing.secret)).status, 401);
});

await step('the chart draws the tokens just issued', async () => {
  // Usage reaches the store every 10 s (checked every 2 s); the page refreshes the
  // chart by itself every 15 s, the button does it now.
  const summary = page.locator('.chart-summary');
  await until('the chart to count the tokens', async () => {
    const text = await summary.innerText();
    const issued = Number(/(\d+) tokens? issued/.exec(text)?.[1] ?? 0);
    if (issued >= okTokens) return true;
    await role('button', 'Refresh chart').click();
    await new Promise((r) => setTimeout(r, 1000));
    return false;
  }, 40000);
  const text = await summary.innerText();
  assert.match(text, new RegExp(`${okTokens} tokens issued`));
  assert.match(text, /[1-9]\d* failed authentications?/);
  assert.ok(await page.locator('svg.chart-svg rect.bar-issued').count() >= 1, 'issued bars');
  assert.ok(await page.locator('svg.chart-svg rect.bar-failed').count() >= 1, 'failure bars');
  assert.equal(await page.locator('svg.chart-svg').getAttribute('role'), 'img');
  await shot('client-desktop');
});

await step('revoke tokens, and delete with a typed confirmation', async () => {
  const ops = (await requestToken(OPS.id, OPS.secret)).body.access_token;
  const made = await adminApi(ops, 'POST', 'clients', {client_name: 'scratch'});
  assert.equal(made.status, 201);
  const token = (await requestToken(made.body.client_id, made.body.client_secret)).body.access_token;
  await gotoClient('scratch');
  await role('button', 'Revoke tokens').click();
  await page.getByRole('dialog', {name: 'Revoke tokens'}).getByRole('button', {name: 'Revoke all tokens'}).click();
  await page.locator('#flash').getByText('is revoked', {exact: false}).waitFor();
  const info = await fetch(`${BASE}/auth-broker/token-info`, {headers: {Authorization: `Bearer ${token}`}});
  assert.equal(info.status, 401, 'the token issued before is inactive');
  await role('button', 'Delete').click();
  const dialog = page.getByRole('dialog', {name: 'Delete client'});
  const confirm = dialog.getByRole('button', {name: 'Remove permanently'});
  assert.ok(await confirm.isDisabled(), 'not before the name is typed');
  await dialog.getByRole('textbox', {name: 'Type “scratch” to confirm'}).fill('scratc');
  assert.ok(await confirm.isDisabled());
  await dialog.getByRole('textbox', {name: 'Type “scratch” to confirm'}).fill('scratch');
  await confirm.click();
  await page.locator('#flash').getByText('Client scratch is deleted.').waitFor();
  await role('heading', 'Clients', {level: 1}).waitFor();
  assert.equal((await adminApi(ops, 'GET', `clients/${made.body.client_id}`)).status, 404);
});

await step('each step is in the audit log, newest first', async () => {
  await role('link', 'Audit log').click();
  await role('heading', 'Audit log', {level: 1}).waitFor();
  await role('textbox', 'Filter by client').fill(billing.id);
  await role('button', 'Apply filters').click();
  const rows = page.locator('tbody tr[data-action]');
  await until('eight events', async () => (await rows.count()) === 8);
  const actions = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.action));
  assert.deepEqual(actions, [
    'client.update', // disabled
    'client.secret.rotate',
    'client.update', // key-bound settings reset
    'client.update', // certificate subject and DPoP
    'client.update', // quota
    'client.update', // description, by the API
    'client.update', // scopes
    'client.create',
  ]);
  const text = await page.locator('tbody').innerText();
  assert.match(text, /enabled: true → false/);
  assert.match(text, /scope: “invoices:read” → “invoices:read invoices:write”/);
  assert.ok(!text.includes(billing.secret), 'no secret in the audit log');
  await shot('audit-desktop');
  await checkPage('audit');
});

await step('keys: the list, and "Rotate key"', async () => {
  await role('link', 'Keys').click();
  await role('heading', 'Signing keys', {level: 1}).waitFor();
  await role('button', 'Rotate key').click();
  const dialog = page.getByRole('dialog', {name: 'Rotate key'});
  await dialog.getByRole('button', {name: 'Rotate now'}).click();
  await page.locator('#flash').getByText('is now active', {exact: false}).waitFor();
  await until('two keys', async () => (await page.locator('tbody tr').count()) === 2);
  assert.match(await page.locator('tbody').innerText(), /Retired/);
  await shot('keys-desktop');
  await checkPage('keys');
});

await step('the token checker explains a token in words', async () => {
  await role('link', 'Token checker').click();
  const ops = (await requestToken(OPS.id, OPS.secret)).body.access_token;
  await role('textbox', 'Token').fill(ops);
  await role('button', 'Check token').click();
  await role('heading', 'Valid').waitFor();
  const verdict = await page.locator('.verdict').innerText();
  assert.ok(verdict.includes(`Issued to client ${OPS.id} (ops)`), verdict);
  assert.match(verdict, /Scopes: admin:write/);
  await shot('token-checker-desktop');
  // The disabled client's token: refused, with the reason.
  await role('textbox', 'Token').fill(billing.lastToken);
  await role('button', 'Check token').click();
  await role('heading', 'Refused').waitFor();
  assert.match(await page.locator('.verdict').innerText(), /disabled since/);
  await checkPage('token checker');
});

await step('the overview charts the whole broker', async () => {
  await role('link', 'Overview').click();
  await role('heading', 'Overview', {level: 1}).waitFor();
  const text = await page.locator('.chart-summary').innerText();
  const issued = Number(/(\d+) tokens? issued/.exec(text)?.[1] ?? 0);
  assert.ok(issued >= okTokens, text);
  assert.ok(await page.locator('svg.chart-svg rect.bar-issued').count() >= 1);
  await page.getByText('Summed over all', {exact: false}).waitFor();
  await shot('overview-desktop');
});

await step('sign out', async () => {
  await signOut();
  await page.getByText('You are signed out', {exact: false}).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the token is forgotten');
  assert.equal(await role('link', 'Clients').count(), 0, 'no navigation while signed out');
});

await step('admin:read looks, and every change control is disabled', async () => {
  await signIn(AUDITOR);
  await page.locator('#readonly-note').getByText('Read-only', {exact: false}).waitFor();
  await role('link', 'Clients').click();
  assert.ok(await role('button', 'New client').isDisabled());
  await gotoClient(billing.name);
  for (const name of ['Enable', 'Rotate secret', 'Revoke tokens', 'Delete', 'Save changes', 'Discard edits']) {
    assert.ok(await role('button', name).isDisabled(), `${name} is disabled`);
    const described = await role('button', name).getAttribute('aria-describedby');
    assert.ok(described.includes('readonly-note'), `${name} says why`);
  }
  assert.ok(await role('textbox', 'Scopes').evaluate((el) => el.readOnly));
  await shot('client-readonly-desktop');
  await role('link', 'Keys').click();
  const rotate = role('button', 'Rotate key');
  assert.ok(await rotate.isDisabled());
  // Forced anyway (as a stale page or a script might): the broker refuses, and the
  // console says why.
  await rotate.evaluate((b) => {
    b.disabled = false;
  });
  await rotate.click();
  await page.getByRole('dialog', {name: 'Rotate key'}).getByRole('button', {name: 'Rotate now'}).click();
  await page.getByRole('alert').getByText('Not allowed: this operation needs a token with the scope \'admin:write\'', {exact: false}).waitFor();
  await shot('readonly-refused-desktop');
  await page.keyboard.press('Escape');
  await signOut();
});

await step('a refused token ends the session with a message', async () => {
  await signIn(VICTIM);
  cli('client', 'disable', VICTIM.id);
  await role('link', 'Clients').click();
  await page.getByText('the broker refused the token', {exact: false}).waitFor();
  await role('button', 'Sign in').waitFor();
});

await step('an expired token ends the session with a message', async () => {
  await signIn(BRIEF);
  await page.getByText('the token expired', {exact: false}).waitFor({timeout: 10000});
  await role('button', 'Sign in').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

await step('a phone (390x844): every page, nothing scrolls sideways', async () => {
  const phone = await browser.newContext({viewport: {width: 390, height: 844}, isMobile: true, hasTouch: true, deviceScaleFactor: 2});
  page = await newPage(phone);
  await page.goto(`${BASE}/admin/`);
  await checkPage('phone sign-in');
  await shot('signin-phone');
  await signIn(OPS);
  await page.locator('svg.chart-svg').waitFor();
  await checkPage('phone overview');
  await shot('overview-phone');
  await role('link', 'Clients').click();
  await role('link', billing.name).waitFor();
  await checkPage('phone clients');
  await shot('clients-phone');
  await role('button', 'New client').click();
  await page.getByRole('dialog', {name: 'New client'}).waitFor();
  await checkPage('phone new client');
  await shot('new-client-phone');
  await page.keyboard.press('Escape');
  await role('link', billing.name).click();
  await page.locator('svg.chart-svg').waitFor();
  await checkPage('phone client');
  await shot('client-phone');
  await role('link', 'Keys').click();
  await role('heading', 'Signing keys').waitFor();
  await checkPage('phone keys');
  await shot('keys-phone');
  await role('link', 'Audit log').click();
  await page.locator('tbody tr[data-action]').first().waitFor();
  await checkPage('phone audit');
  await shot('audit-phone');
  await role('link', 'Token checker').click();
  await role('textbox', 'Token').waitFor();
  await checkPage('phone token checker');
  await shot('token-checker-phone');
});

await step('pages: "Next page" and "Previous page" walk the list', async () => {
  const ops = (await requestToken(OPS.id, OPS.secret)).body.access_token;
  for (let i = 0; i < 20; i += 1) {
    assert.equal((await adminApi(ops, 'POST', 'clients', {client_name: `bulk-${String(i).padStart(2, '0')}`})).status, 201);
  }
  await role('link', 'Clients').click();
  await page.getByText('Page 1: 20 clients, more on the next page.').waitFor();
  const firstName = () => page.locator('tbody tr').first().locator('td').first().innerText();
  const first = await firstName();
  await role('button', 'Next page').click();
  await page.getByText(/^Page 2: \d+ clients?\.$/).waitFor();
  assert.ok(await role('button', 'Next page').isDisabled());
  await role('button', 'Previous page').click();
  await page.getByText('Page 1: 20 clients, more on the next page.').waitFor();
  assert.equal(await firstName(), first);
  assert.ok(await role('button', 'Previous page').isDisabled());
});

await browser.close();
console.log(`console: every step passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
