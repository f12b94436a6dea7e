// The session and every call to the broker.
//
// Signing in trades an admin client's id and secret for a token at the token
// endpoint, exactly as any integrator does (RFC 6749 §4.4, client_secret_basic). The
// secret is used for that one request and not kept. The token is kept in this tab's
// sessionStorage (so a reload keeps the session; never a cookie, never localStorage)
// and forgotten when it expires, on any 401 from the admin API, and on "Sign out".
//
// URLs are relative to the page (/admin/), so the console also works behind a proxy
// that mounts the broker under a path prefix.

const STORE_KEY = 'auth-broker.console.session';

export const ADMIN_READ = 'admin:read';
export const ADMIN_WRITE = 'admin:write';

/** `/admin/v1/` and the broker's root, resolved from the page's own address. */
const apiBase = () => new URL('v1/', new URL('.', location.href));
export const brokerUrl = (path) => new URL(path, new URL('..', new URL('.', location.href))).href;
export const TOKEN_PATH = 'auth-broker/request-token';

let session = null;
let expiryTimer = 0;
let signedOut = () => {};

/** The current session: `{clientId, token, scopes, expiresAt}` or null. */
export const current = () => session;
export const canWrite = () => Boolean(session?.scopes.includes(ADMIN_WRITE));

/** Called with a message when the session ends by itself (expiry, a 401). */
export function onSignedOut(fn) {
  signedOut = fn;
}

/** The session from this tab's storage, when it has not expired. */
export function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? 'null');
    if (saved && typeof saved.token === 'string' && saved.expiresAt > Date.now()) {
      session = saved;
      arm();
      return session;
    }
  } catch {
    // Storage disabled or garbage: start signed out.
  }
  forget();
  return null;
}

function forget() {
  session = null;
  clearTimeout(expiryTimer);
  try {
    sessionStorage.removeItem(STORE_KEY);
  } catch {
    // Nothing stored.
  }
}

// Timers clamp long delays (over 2^31 ms) and are throttled in background tabs, so
// the timer only wakes the check; the check compares with the clock. Every API call
// checks the clock too.
function arm() {
  clearTimeout(expiryTimer);
  if (!session) return;
  const left = session.expiresAt - Date.now();
  if (left <= 0) {
    end('Your session ended: the token expired. Sign in again to continue.');
    return;
  }
  expiryTimer = setTimeout(arm, Math.min(left, 60 * 60 * 1000));
}

/** Ends the session with a message for the sign-in page. */
export function end(message) {
  const had = session !== null;
  forget();
  if (had) signedOut(message);
}

/** "Sign out": forgets the token (it stays valid at the broker until it expires). */
export function signOut() {
  forget();
}

/**
 * RFC 6749 §2.3.1: the id and secret are form-urlencoded before they are joined with
 * ':' and base64-encoded (URLSearchParams does exactly that encoding; its output is
 * ASCII, which btoa needs).
 */
function basic(id, secret) {
  const enc = (s) => new URLSearchParams([['', s]]).toString().slice(1);
  return `Basic ${btoa(`${enc(id)}:${enc(secret)}`)}`;
}

/** What went wrong at sign-in, in the broker's words. */
export class SignInError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** Trades the id and secret for a token; throws SignInError with the broker's text. */
export async function signIn(clientId, secret) {
  const sent = Date.now();
  let response;
  try {
    response = await fetch(brokerUrl(TOKEN_PATH), {
      method: 'POST',
      headers: {
        Authorization: basic(clientId, secret),
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
      },
      body: 'grant_type=client_credentials',
      // No cookies, and no browser password prompt on the 401's Basic challenge.
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new SignInError(`The broker did not answer (${e.message}). Is it running, and is this its address?`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const text = body?.error_description || `the broker answered HTTP ${response.status}`;
    throw new SignInError(text, body?.error);
  }
  const scopes = String(body?.scope ?? '').split(' ').filter(Boolean);
  if (!scopes.includes(ADMIN_READ) && !scopes.includes(ADMIN_WRITE)) {
    throw new SignInError(
      `The client ${clientId} signed in, but its token has no admin scope (it has ${scopes.length ? `"${scopes.join(' ')}"` : 'none'}). ` +
        `Use a client with admin:read (to look) or admin:write (to change): auth-broker client create --name ops --scope admin:write`,
      'no_admin_scope',
    );
  }
  // Counted from when the request was sent, like any careful client (RFC 6749 §5.1).
  const expiresIn = Number(body.expires_in);
  session = {
    clientId,
    token: body.access_token,
    scopes,
    expiresAt: sent + (Number.isFinite(expiresIn) ? expiresIn : 300) * 1000,
  };
  try {
    sessionStorage.setItem(STORE_KEY, JSON.stringify(session));
  } catch {
    // Without storage the session lives in memory; a reload signs out.
  }
  arm();
  return session;
}

/** An answer of the admin API that is not a success: RFC 9457 problem details. */
export class ApiError extends Error {
  constructor(status, problem, etag) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem ?? {};
    this.etag = etag;
  }
  /** `errors[]` of a 400/409: `[{field, message}]`. */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

function describe(status, problem) {
  const detail = problem?.detail || problem?.title || `HTTP ${status}`;
  switch (status) {
    case 403:
      return `Not allowed: ${detail}`;
    case 404:
      return `Not found: ${detail}`;
    case 412:
      return 'Someone else changed this since you loaded it.';
    case 429:
      return `Too many refused requests: ${detail}`;
    case 503:
      return `The broker cannot reach its store right now: ${detail}`;
    default:
      return detail;
  }
}

/**
 * One admin API call. `body` is sent as JSON (`merge: true`: as a JSON merge patch);
 * `etag` becomes If-Match. Resolves to `{data, etag, status}`; throws ApiError.
 * A 401 ends the session (the token expired, was revoked, or its client disabled).
 */
export async function api(method, path, {body, etag, merge = false, signal} = {}) {
  if (!session) throw new ApiError(401, {detail: 'not signed in'});
  if (Date.now() >= session.expiresAt) {
    end('Your session ended: the token expired. Sign in again to continue.');
    throw new ApiError(401, {detail: 'the token expired'});
  }
  const headers = {Authorization: `Bearer ${session.token}`, Accept: 'application/json'};
  if (body !== undefined) {
    headers['Content-Type'] = merge ? 'application/merge-patch+json' : 'application/json';
  }
  if (etag) headers['If-Match'] = etag;
  let response;
  try {
    response = await fetch(new URL(path, apiBase()), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, {detail: `The broker did not answer (${e.message}).`});
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) {
    end(`Your session ended: the broker refused the token (${data?.detail ?? 'HTTP 401'}). Sign in again.`);
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get('ETag'));
  return {data, etag: response.headers.get('ETag'), status: response.status};
}

/** `encodeURIComponent` for path segments (client ids are URL-safe, but be sure). */
export const seg = encodeURIComponent;
