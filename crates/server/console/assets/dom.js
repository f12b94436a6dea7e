// Small helpers shared by every view: an element builder, formatters, dialogs and
// messages.
//
// Everything the console shows from the broker goes into the page through
// `textContent` and attributes set one by one (never parsed as markup), so no client name,
// claim or error text can add markup or script, whatever it holds.

/** The id of the explanation every disabled change control points at. */
export const READONLY_NOTE = 'readonly-note';

let nextId = 0;
/** A unique id for label/field and aria-describedby pairs. */
export function uid(prefix = 'c') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// Properties rather than attributes: setting these as attributes would only set the
// element's *initial* state.
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'readOnly', 'selected', 'hidden']);

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.setAttribute('class', value);
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** `h('p', {class: 'x'}, 'text', h('b', {}, 'bold'))`: an HTML element. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements (the charts). */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children);
}

/**
 * A table cell that becomes "label: value" in the stacked layout of narrow screens;
 * its content is wrapped so it stays one grid item there.
 */
export function cell(label, content, attrs = {}) {
  return h('td', {...attrs, 'data-label': label}, h('div', {}, content));
}

/** A labelled form field: `{wrap, input, error}`; the error element is described-by. */
export function field(label, input, hint) {
  const id = input.id || uid('f');
  input.id = id;
  const error = h('p', {class: 'field-error', id: `${id}-err`, hidden: true});
  const note = h('p', {class: 'field-note', id: `${id}-note`, hidden: true});
  const described = [];
  let hintEl = null;
  if (hint) {
    hintEl = h('p', {class: 'hint', id: `${id}-hint`}, hint);
    described.push(hintEl.id);
  }
  described.push(error.id, note.id);
  input.setAttribute('aria-describedby', described.join(' '));
  const wrap = h('div', {class: 'field'}, h('label', {for: id}, label), input, hintEl, error, note);
  return {wrap, input, error, note};
}

/** Shows (or with `null` clears) a message under a field, and marks it invalid. */
export function setFieldError(f, message) {
  f.error.textContent = message ?? '';
  f.error.hidden = !message;
  if (message) f.input.setAttribute('aria-invalid', 'true');
  else f.input.removeAttribute('aria-invalid');
}

/** An error box for a view; `show(text)` fills it and moves focus there. */
export function errorBox() {
  const el = h('div', {class: 'error', role: 'alert', tabindex: '-1', hidden: true});
  return {
    el,
    show(message) {
      el.replaceChildren(...(Array.isArray(message) ? message : [message]));
      el.hidden = false;
    },
    clear() {
      el.replaceChildren();
      el.hidden = true;
    },
  };
}

let pendingFlash = '';
/** A message for the page the console is about to show (see app.js's route). */
export function flashNext(message) {
  pendingFlash = message;
}
/** The message left by flashNext, once. */
export function takeFlash() {
  const m = pendingFlash;
  pendingFlash = '';
  return m;
}

/** A success message in the shared live region (read out by screen readers). */
export function flash(message) {
  const el = document.getElementById('flash');
  if (!el) return;
  el.textContent = message;
  el.classList.toggle('shown', Boolean(message));
}

/**
 * Marks a change control as unavailable when the session may only read: disabled,
 * and described by the visible read-only note, so the reason is announced with it.
 */
export function guard(control, canWrite) {
  if (canWrite) return control;
  control.disabled = true;
  const described = control.getAttribute('aria-describedby');
  control.setAttribute('aria-describedby', [described, READONLY_NOTE].filter(Boolean).join(' '));
  return control;
}

/**
 * A modal dialog (`<dialog>` with showModal: the rest of the page is inert, Escape
 * closes it, focus stays inside). Focus goes to `initialFocus` when it opens and back
 * to the control that opened it when it closes; `onClose` runs however it is closed
 * (it clears any secret the dialog showed).
 */
export function openDialog({title, body, initialFocus, onClose}) {
  const opener = document.activeElement;
  const heading = h('h2', {id: uid('dlg')}, title);
  const dialog = h('dialog', {class: 'dialog', 'aria-labelledby': heading.id}, heading, body);
  document.body.append(dialog);
  dialog.addEventListener('close', () => {
    onClose?.();
    dialog.remove();
    if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
  });
  dialog.showModal();
  const target = typeof initialFocus === 'function' ? initialFocus() : initialFocus;
  target?.focus();
  return dialog;
}

/**
 * A dialog that asks before a change: `text`, optional `extra` fields, a confirm
 * button and "Cancel". `run()` makes the change; the dialog closes when it succeeds.
 * When it throws, the dialog stays open with the message (`explain(e)` may word it,
 * and may re-read what changed) and the button can be pressed again. Returns the
 * confirm button, for callers that enable it only when `extra` is filled in.
 */
export function confirmDialog({title, text, extra = null, confirmLabel, danger = false, initialFocus, run, explain}) {
  const go = h('button', {type: 'submit', class: danger ? 'danger' : null}, confirmLabel);
  const cancel = h('button', {type: 'button', class: 'secondary'}, 'Cancel');
  const problems = errorBox();
  const form = h('form', {}, h('p', {}, text), extra, problems.el, h('div', {class: 'actions'}, go, cancel));
  const dialog = openDialog({title, body: form, initialFocus: initialFocus ?? cancel});
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (go.disabled) return;
    problems.clear();
    go.disabled = true;
    try {
      await run();
      dialog.close();
    } catch (e) {
      go.disabled = false;
      if (e.name === 'AbortError') return;
      problems.show((explain ? await explain(e) : null) ?? e.message);
    }
  });
  return go;
}

/**
 * "Previous page" / "Next page" over the admin API's opaque cursors (`after=` the
 * `next` of the page before): the cursors of the pages before this one are kept on
 * a stack. `fetchPage(after)` resolves to an answer with `next`; `render(answer,
 * pageNumber)` shows it and returns the status line. An answer that arrives after a
 * newer request was made (fast typing in a search box) is dropped.
 */
export function cursorPager({fetchPage, render, errors}) {
  const stack = [];
  let after = null;
  let next = null;
  let generation = 0;
  const status = h('p', {class: 'muted', role: 'status'});
  const prev = h('button', {type: 'button', class: 'secondary', disabled: true}, 'Previous page');
  const nextButton = h('button', {type: 'button', class: 'secondary', disabled: true}, 'Next page');
  const show = async () => {
    generation += 1;
    const mine = generation;
    errors.clear();
    let answer;
    try {
      answer = await fetchPage(after);
    } catch (e) {
      if (e.name !== 'AbortError' && mine === generation) errors.show(e.message);
      return;
    }
    if (mine !== generation) return;
    next = answer.next;
    prev.disabled = stack.length === 0;
    nextButton.disabled = next === null;
    status.textContent = render(answer, stack.length + 1);
  };
  prev.addEventListener('click', () => {
    if (!stack.length) return;
    after = stack.pop();
    show();
  });
  nextButton.addEventListener('click', () => {
    if (next === null) return;
    stack.push(after);
    after = next;
    show();
  });
  return {
    el: h('div', {class: 'pager'}, prev, status, nextButton),
    /** The first page (after the filters changed). */
    first() {
      stack.length = 0;
      after = null;
      return show();
    },
    /** The page shown, again. */
    reload: show,
  };
}

/** Closes every open dialog (on sign-out and navigation: none outlives its page). */
export function closeDialogs() {
  for (const d of document.querySelectorAll('dialog')) d.close();
}

/**
 * Copies `text` to the clipboard. The Clipboard API needs a secure context
 * (HTTPS or localhost); elsewhere the selected text box is copied the old way.
 */
export async function copy(text, fallbackInput) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard API');
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!fallbackInput) return false;
    fallbackInput.focus();
    fallbackInput.select();
    // Deprecated but the only way without the Clipboard API; harmless when refused.
    return document.execCommand('copy');
  }
}

/**
 * A read-only box with a secret and a copy button. `clear()` empties it; callers
 * call it when the dialog or page closes, so the secret leaves the DOM.
 */
export function secretBox(label, value, copyLabel) {
  const input = h('input', {type: 'text', readOnly: true, value, class: 'mono', spellcheck: 'false', autocomplete: 'off'});
  const f = field(label, input);
  const status = h('span', {class: 'copied', role: 'status'});
  const button = h('button', {type: 'button', class: 'secondary', onclick: async () => {
    const ok = await copy(input.value, input);
    status.textContent = ok ? 'Copied' : 'Select the text and copy it (Ctrl+C)';
  }}, copyLabel);
  f.wrap.append(h('div', {class: 'row'}, button, status));
  return {wrap: f.wrap, input, clear() { input.value = ''; status.textContent = ''; }};
}

// ---- formatting -------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');

/** Unix seconds as local date and time, `2026-11-25 14:03`. */
export function fmtTime(secs) {
  if (secs === null || secs === undefined) return '—';
  const d = new Date(secs * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A local `HH:MM` for a Date or milliseconds. */
export function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A duration in seconds, in words: `45 s`, `12 min`, `3 h 5 min`, `2 days`. */
export function fmtDuration(secs) {
  const s = Math.max(0, Math.round(secs));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) {
    const hrs = Math.floor(s / 3600);
    const min = Math.round((s % 3600) / 60);
    return min ? `${hrs} h ${min} min` : `${hrs} h`;
  }
  return `${Math.round(s / 86400)} days`;
}

/** How long ago, from milliseconds: `just now`, `5 min ago`. */
export function fmtAgo(ms) {
  const secs = (Date.now() - ms) / 1000;
  return secs < 60 ? 'just now' : `${fmtDuration(secs)} ago`;
}

/** `1 token`, `2 tokens`. */
export function plural(n, word, many = `${word}s`) {
  return `${n.toLocaleString('en')} ${n === 1 ? word : many}`;
}

/** Runs `fn` over `items` with at most `limit` at a time (the usage fan-out). */
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next;
      next += 1;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker));
  return out;
}
