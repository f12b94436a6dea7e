// One client: its chart, every setting editable, and the actions (Disable/Enable,
// Rotate secret, Revoke tokens, Delete).
//
// Concurrent edits are never lost. The page remembers the client as it last read it
// (`base`) and its ETag; a save sends only what the user changed (a JSON merge patch,
// RFC 7396) with If-Match. When someone else saved in between, the broker answers
// 412; the page then reads the client again and merges three ways: fields only they
// changed take their value, fields only the user changed keep the user's, and fields
// both changed keep the user's with the other value shown beside it. The next save
// goes against the new ETag.

import {api, seg, ApiError} from './api.js';
import {h, field, setFieldError, errorBox, guard, openDialog, confirmDialog, flash, flashNext, fmtTime, fmtDuration, uid} from './dom.js';
import {usageChart} from './chart.js';
import {secretPanel, optionalInt, lines, placeFieldErrors} from './clients.js';

const REFRESH_MS = 15 * 1000;
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'];

const pad = (n) => String(n).padStart(2, '0');
/** Unix seconds as a datetime-local value (local time, to the second). */
function toLocalInput(secs) {
  if (!secs) return '';
  const d = new Date(secs * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Order-sensitive deep equality of JSON values. */
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Every setting of ClientSettings but `enabled` (that one is the Disable/Enable
 * button): how it shows in a field, how the field's text reads back (throwing a
 * message for the field when it does not), and how a value reads in a sentence.
 */
const SETTINGS = [
  {key: 'client_name', label: 'Name', input: () => h('input', {type: 'text', maxlength: '200', autocomplete: 'off'}),
    show: (v) => v, read: (s) => s.trim()},
  {key: 'scope', label: 'Scopes', hint: 'Space separated. Tokens get these unless a request asks for fewer.',
    input: () => h('input', {type: 'text', spellcheck: 'false', autocomplete: 'off'}),
    show: (v) => v, read: (s) => s.split(/\s+/).filter(Boolean).join(' ')},
  {key: 'audience', label: 'Audiences', hint: 'One per line; the first is the default. Empty: the broker\'s issuer.',
    input: () => h('textarea', {rows: '2', spellcheck: 'false'}),
    show: (v) => v.join('\n'), read: lines},
  {key: 'access_token_ttl', label: 'Token lifetime (seconds)', hint: 'Empty: the broker\'s default (serve --token-ttl).',
    input: () => h('input', {type: 'text', inputmode: 'numeric', autocomplete: 'off'}),
    show: (v) => (v === null ? '' : String(v)), read: readInt},
  {key: 'tokens_per_minute', label: 'Quota (tokens per minute)', hint: 'A cap on successful token requests; above it 429. Empty: no cap.',
    input: () => h('input', {type: 'text', inputmode: 'numeric', autocomplete: 'off'}),
    show: (v) => (v === null ? '' : String(v)), read: readInt},
  {key: 'token_endpoint_auth_method', label: 'Authentication method',
    input: () => h('select', {}, AUTH_METHODS.map((m) => h('option', {value: m}, m))),
    show: (v) => v, read: (s) => s},
  {key: 'jwks_uri', label: 'Key set URL (jwks_uri)', hint: 'For private_key_jwt and self_signed_tls_client_auth: where the client publishes its public keys (https). Empty: none, or the key set below.',
    input: () => h('input', {type: 'text', inputmode: 'url', spellcheck: 'false', autocomplete: 'off'}),
    show: (v) => v ?? '', read: (s) => s.trim() || null},
  {key: 'jwks', label: 'Key set (jwks, JSON)', hint: 'The client\'s public keys as a JWK Set, {"keys": [...]}; for self_signed_tls_client_auth its certificate as a key\'s x5c. Empty: none.',
    input: () => h('textarea', {rows: '3', class: 'mono', spellcheck: 'false'}),
    show: (v) => (v ? JSON.stringify(v, null, 2) : ''),
    read: (s) => {
      if (!s.trim()) return null;
      try {
        return JSON.parse(s);
      } catch (e) {
        throw new Error(`not JSON: ${e.message}`);
      }
    }},
  {key: 'tls_client_auth_subject_dn', label: 'Certificate subject (tls_client_auth)', hint: 'The subject DN the client\'s TLS certificate must carry, e.g. CN=billing,O=Example. Empty: none.',
    input: () => h('input', {type: 'text', spellcheck: 'false', autocomplete: 'off'}),
    show: (v) => v ?? '', read: (s) => s.trim() || null},
  {key: 'dpop_bound_access_tokens', label: 'Require DPoP', hint: 'Yes: this client gets tokens only with a DPoP proof (RFC 9449), bound to its key.',
    input: () => h('select', {}, [h('option', {value: 'false'}, 'no'), h('option', {value: 'true'}, 'yes')]),
    show: (v) => String(v), read: (s) => s === 'true'},
  {key: 'client_secret_expires_at', label: 'Secret expires', hint: 'Local time. Empty: never.',
    input: () => h('input', {type: 'datetime-local', step: '1'}),
    show: toLocalInput,
    read: (s) => {
      if (!s) return 0;
      const ms = new Date(s).getTime();
      if (Number.isNaN(ms)) throw new Error('a date and time, or empty for never');
      return Math.floor(ms / 1000);
    }},
  {key: 'extra_claims', label: 'Extra claims (JSON object)', hint: 'Added to every JWT of this client, e.g. {"tenant": "acme"}. Registered claim names are refused.',
    input: () => h('textarea', {rows: '3', class: 'mono', spellcheck: 'false'}),
    show: (v) => (Object.keys(v).length ? JSON.stringify(v, null, 2) : ''),
    read: (s) => {
      if (!s.trim()) return {};
      let v;
      try {
        v = JSON.parse(s);
      } catch (e) {
        throw new Error(`not JSON: ${e.message}`);
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('a JSON object, like {"tenant": "acme"}');
      return v;
    }},
  {key: 'contacts', label: 'Contacts', hint: 'One per line: who to ask about this client.',
    input: () => h('textarea', {rows: '2'}), show: (v) => v.join('\n'), read: lines},
  {key: 'description', label: 'Description', input: () => h('textarea', {rows: '2'}), show: (v) => v, read: (s) => s},
];

function readInt(s) {
  const v = optionalInt(s);
  if (Number.isNaN(v)) throw new Error('a whole number, or empty');
  return v;
}

/** An RFC 7396 merge patch that turns `from` into `to`. */
function mergeDiff(from, to) {
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(from) || !isObj(to)) return to;
  const patch = {};
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  for (const [k, v] of Object.entries(to)) {
    if (!same(from[k], v)) patch[k] = isObj(from[k]) && isObj(v) ? mergeDiff(from[k], v) : v;
  }
  return patch;
}

/** How a value reads in a note: empty values say so. */
function inWords(setting, value) {
  const text = setting.show(value);
  return text === '' ? '(empty)' : text;
}

export async function clientPage(main, ctx) {
  const id = decodeURIComponent(ctx.match[1]);
  const {signal, canWrite} = ctx;
  const path = `clients/${seg(id)}`;
  const [first, firstUsage] = await Promise.all([
    api('GET', path, {signal}),
    api('GET', `${path}/usage`, {signal}),
  ]);
  let base = first.data;
  let etag = first.etag;
  ctx.setTitle(base.client_name);

  // ---- header and actions ----
  const title = h('h1');
  const badge = h('span', {class: 'badge'});
  const meta = h('p', {class: 'meta'});
  const errors = errorBox();
  const toggle = guard(h('button', {type: 'button'}), canWrite);
  const rotate = guard(h('button', {type: 'button', class: 'secondary'}, 'Rotate secret'), canWrite);
  const revoke = guard(h('button', {type: 'button', class: 'secondary'}, 'Revoke tokens'), canWrite);
  const del = guard(h('button', {type: 'button', class: 'danger'}, 'Delete'), canWrite);

  const showHeader = () => {
    title.textContent = base.client_name;
    badge.textContent = base.enabled ? 'Enabled' : 'Disabled';
    badge.className = `badge ${base.enabled ? 'ok' : 'off'}`;
    toggle.textContent = base.enabled ? 'Disable' : 'Enable';
    toggle.className = base.enabled ? 'secondary' : '';
    meta.replaceChildren(
      'Client ID ', h('code', {class: 'id'}, base.client_id),
      ` · created ${fmtTime(base.created_at)} · changed ${fmtTime(base.updated_at)} · version ${base.version}`,
      base.previous_secret_expires_at ? ` · the previous secret works until ${fmtTime(base.previous_secret_expires_at)}` : '',
      base.tokens_revoked_before ? ` · tokens issued before ${fmtTime(base.tokens_revoked_before)} are revoked` : '',
    );
    ctx.setTitle(base.client_name);
  };

  // ---- settings form ----
  const fields = {};
  for (const s of SETTINGS) fields[s.key] = field(s.label, s.input(), s.hint);
  const conflict = h('div', {class: 'conflict', role: 'alert', tabindex: '-1', hidden: true});
  const save = guard(h('button', {type: 'submit'}, 'Save changes'), canWrite);
  const discard = guard(h('button', {type: 'button', class: 'secondary'}, 'Discard edits'), canWrite);
  const formErrors = errorBox();
  const fieldset = h('fieldset', {},
    h('legend', {class: 'visually-hidden'}, 'Settings of this client'),
    h('div', {class: 'grid-2'}, SETTINGS.map((s) => fields[s.key].wrap)));
  const form = h('form', {novalidate: true, class: 'settings'},
    conflict, fieldset, formErrors.el, h('div', {class: 'actions'}, save, discard));

  if (!canWrite) {
    // Read-only: the values stay selectable and copyable; nothing can be changed.
    for (const f of Object.values(fields)) {
      if (f.input.tagName === 'SELECT') guard(f.input, false);
      else f.input.readOnly = true;
    }
  }

  const clearNotes = () => {
    for (const f of Object.values(fields)) {
      setFieldError(f, null);
      f.note.hidden = true;
      f.note.textContent = '';
    }
  };
  const fill = () => {
    for (const s of SETTINGS) fields[s.key].input.value = s.show(base[s.key]);
  };
  /** The form's values; `{values, bad}` where bad lists fields that do not read. */
  const readForm = () => {
    const values = {};
    const bad = [];
    for (const s of SETTINGS) {
      try {
        values[s.key] = s.read(fields[s.key].input.value);
      } catch (e) {
        bad.push({field: s.key, message: e.message});
      }
    }
    return {values, bad};
  };
  const edited = (s) => {
    try {
      return !same(s.read(fields[s.key].input.value), base[s.key]);
    } catch {
      return true;
    }
  };

  /**
   * Takes a fresh read of the client: untouched fields follow it, edited ones stay,
   * with a note where the fresh value differs from what the user started from.
   * Returns the labels of the fields someone else changed under the user's edits.
   */
  const adopt = (fresh, freshEtag) => {
    const clashes = [];
    for (const s of SETTINGS) {
      const f = fields[s.key];
      const theirs = !same(fresh[s.key], base[s.key]);
      if (!edited(s)) {
        f.input.value = s.show(fresh[s.key]);
        if (theirs) {
          f.note.textContent = `Updated: someone else set this to “${inWords(s, fresh[s.key])}”.`;
          f.note.hidden = false;
        }
      } else if (theirs) {
        clashes.push(s.label);
        f.note.textContent = `Someone else set this to “${inWords(s, fresh[s.key])}”. Your edit is kept; saving replaces theirs.`;
        f.note.hidden = false;
      }
    }
    base = fresh;
    etag = freshEtag;
    showHeader();
    return clashes;
  };

  const reload = async () => {
    const r = await api('GET', path, {signal});
    return adopt(r.data, r.etag);
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    flash('');
    formErrors.clear();
    conflict.hidden = true;
    clearNotes();
    const {values, bad} = readForm();
    if (bad.length) {
      placeFieldErrors(fields, bad);
      return;
    }
    const current = Object.fromEntries(SETTINGS.map((s) => [s.key, base[s.key]]));
    const patch = mergeDiff(current, values);
    const changed = Object.keys(patch);
    if (!changed.length) {
      flash('Nothing to save: the form matches the client.');
      return;
    }
    save.disabled = true;
    try {
      const r = await api('PATCH', path, {body: patch, etag, merge: true});
      base = r.data;
      etag = r.etag;
      fill();
      showHeader();
      const names = SETTINGS.filter((s) => changed.includes(s.key)).map((s) => s.label.toLowerCase());
      flash(`Saved: ${names.join(', ')}.`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 412) {
        const before = base.version;
        const clashes = await reload();
        conflict.replaceChildren(
          h('strong', {}, 'Someone else changed this client while you were editing it'),
          ` (version ${before} → ${base.version}). Nothing was saved, and nothing is lost: your edits are still in the form, and what they changed is shown under each field. `,
          clashes.length
            ? `You both changed: ${clashes.join(', ')}. Press “Save changes” again to save your values over theirs.`
            : 'Press “Save changes” again to save your edits on top of theirs.',
        );
        conflict.hidden = false;
        conflict.focus();
      } else {
        const rest = placeFieldErrors(fields, e.fieldErrors);
        if (!e.fieldErrors.length || rest.length) {
          formErrors.show([e.message, ...rest.map((t) => h('div', {}, t))]);
          if (!e.fieldErrors.length) formErrors.el.focus();
        }
      }
    } finally {
      save.disabled = !canWrite;
    }
  });
  discard.addEventListener('click', () => {
    clearNotes();
    conflict.hidden = true;
    formErrors.clear();
    fill();
  });

  // ---- actions ----
  /** The words for a refusal of a change to this client; a 412 re-reads it first. */
  const refusal = (notDone) => async (e) => {
    if (!(e instanceof ApiError)) return null;
    if (e.status !== 412) return e.message;
    await reload();
    return `Someone else changed this client meanwhile, so ${notDone}. The page shows its current state; press the button again if you still want to.`;
  };

  /** Runs a change; on 412 re-reads the client and asks to try again. */
  const act = async (control, run) => {
    flash('');
    errors.clear();
    control.disabled = true;
    try {
      await run();
    } catch (e) {
      const message = await refusal('nothing was done')(e);
      if (message === null) throw e;
      errors.show(message);
      errors.el.focus();
    } finally {
      control.disabled = !canWrite;
    }
  };

  toggle.addEventListener('click', () => act(toggle, async () => {
    const enable = !base.enabled;
    const r = await api('PATCH', path, {body: {enabled: enable}, etag, merge: true});
    adopt(r.data, r.etag);
    flash(enable
      ? `${base.client_name} is enabled: it can get tokens again.`
      : `${base.client_name} is disabled: its token requests are refused (401) and its tokens are inactive.`);
    toggle.focus();
  }));

  rotate.addEventListener('click', () => rotateDialog());
  revoke.addEventListener('click', () => revokeDialog());
  del.addEventListener('click', () => deleteDialog());

  function rotateDialog() {
    const name = uid('grace');
    const choices = [
      [0, 'Not at all: it stops working now'],
      [3600, 'For 1 hour'],
      [86400, 'For 1 day'],
      [7 * 86400, 'For 7 days'],
    ];
    const radios = choices.map(([secs, label], i) => {
      const input = h('input', {type: 'radio', name, value: String(secs), id: `${name}-${i}`, checked: i === 0});
      return h('div', {class: 'radio'}, input, h('label', {for: input.id}, label));
    });
    const go = h('button', {type: 'submit'}, 'Rotate now');
    const cancel = h('button', {type: 'button', class: 'secondary'}, 'Cancel');
    const problems = errorBox();
    const form = h('form', {},
      h('p', {}, `A new secret for ${base.client_name}, shown once.`),
      h('fieldset', {}, h('legend', {}, 'How long the old secret keeps working'), radios),
      problems.el,
      h('div', {class: 'actions'}, go, cancel));
    const body = h('div', {}, form);
    let panel = null;
    const dialog = openDialog({
      title: 'Rotate secret',
      body,
      initialFocus: () => form.querySelector('input[type=radio]'),
      onClose: () => panel?.clear(),
    });
    cancel.addEventListener('click', () => dialog.close());
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      problems.clear();
      go.disabled = true;
      const grace = Number(form.querySelector('input[type=radio]:checked')?.value ?? 0);
      try {
        const {data} = await api('POST', `${path}/secret`, {body: {grace_seconds: grace}});
        const note = data.previous_secret_expires_at
          ? `The old secret keeps working until ${fmtTime(data.previous_secret_expires_at)} (${fmtDuration(grace)}).`
          : 'The old secret has stopped working.';
        panel = secretPanel(data.client_id, data.client_secret, note);
        body.replaceChildren(panel.el, h('div', {class: 'actions'}, h('button', {type: 'button', onclick: () => dialog.close()}, 'Done')));
        panel.input.focus();
        panel.input.select();
        flash(`New secret for ${base.client_name}. ${note}`);
        await reload();
      } catch (e) {
        go.disabled = false;
        if (!(e instanceof ApiError)) throw e;
        problems.show(e.message);
      }
    });
  }

  function revokeDialog() {
    confirmDialog({
      title: 'Revoke tokens',
      text: `Every token issued to ${base.client_name} until now becomes inactive for introspection, token-info and guards that introspect (guards that verify JWTs offline accept them until they expire). New token requests still work.`,
      confirmLabel: 'Revoke all tokens',
      danger: true,
      run: async () => {
        const r = await api('POST', `${path}/revoke-tokens`, {etag});
        adopt(r.data, r.etag);
        flash(`Every token issued to ${base.client_name} until now is revoked.`);
      },
      explain: refusal('nothing was revoked'),
    });
  }

  function deleteDialog() {
    const name = base.client_name;
    const confirmInput = h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false'});
    const confirmField = field(`Type “${name}” to confirm`, confirmInput);
    const go = confirmDialog({
      title: 'Delete client',
      text: `This deletes ${name} for good. Its token requests are refused from now on, and introspection and token-info treat its tokens as inactive. To stop it only for a while, use Disable instead.`,
      extra: confirmField.wrap,
      confirmLabel: 'Remove permanently',
      danger: true,
      initialFocus: confirmInput,
      run: async () => {
        await api('DELETE', path, {etag});
        flashNext(`Client ${name} is deleted.`);
        location.hash = '#/clients';
      },
      explain: refusal('it was not deleted'),
    });
    // Typed confirmation: the button works only once the name is typed exactly.
    go.disabled = true;
    confirmInput.addEventListener('input', () => {
      go.disabled = confirmInput.value !== name;
    });
  }

  // ---- chart ----
  const chart = usageChart(firstUsage.data, {caption: 'Token requests per minute, last 24 hours'});
  const chartErrors = errorBox();
  const refreshChart = async () => {
    try {
      chart.update((await api('GET', `${path}/usage`, {signal})).data);
      chartErrors.clear();
    } catch (e) {
      if (e.name !== 'AbortError') chartErrors.show(`Could not refresh the chart: ${e.message}`);
    }
  };

  showHeader();
  fill();
  main.append(
    h('p', {class: 'back'}, h('a', {href: '#/clients'}, '← Client list')),
    h('div', {class: 'title-row'}, title, badge),
    meta,
    h('div', {class: 'toolbar actions', role: 'group', 'aria-label': 'Actions on this client'}, toggle, rotate, revoke, del),
    errors.el,
    h('section', {class: 'card'},
      chart.el,
      chartErrors.el,
      h('div', {class: 'actions'},
        h('button', {type: 'button', class: 'secondary', onclick: refreshChart}, 'Refresh chart'),
        h('a', {href: `#/audit?client_id=${encodeURIComponent(base.client_id)}`}, 'Audit events of this client'))),
    h('section', {class: 'card', 'aria-labelledby': 'settings-h'},
      h('h2', {id: 'settings-h'}, 'Settings'),
      form),
  );
  const timer = setInterval(refreshChart, REFRESH_MS);
  return () => {
    clearInterval(timer);
    chart.destroy();
  };
}
