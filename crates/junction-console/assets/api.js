// The console's only way to the API: the same calls a curl user makes, with the secrets
// held in this tab's sessionStorage (never a cookie, never a URL).
export const API = '/elements/api-v2';
const KEY = 'junction.credentials';

export function credentials() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}
export function saveCredentials(user, organization) {
  sessionStorage.setItem(KEY, JSON.stringify({ user, organization }));
}
export function forget() { sessionStorage.clear(); }

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `the API answered ${status}`);
    this.status = status;
    this.code = body?.code;
    this.providerMessage = body?.providerMessage;
    this.requestId = body?.requestId;
    this.hint = HINTS[this.code];
  }
}

// What the person at the console can do about an error, by its stable code.
const HINTS = {
  unauthorized: 'Check the user and organization secrets: sign out and sign in again.',
  missing_configuration: 'Fill in the fields the message names.',
  provider_refused: 'The provider refused the credentials or the code: check the client id and secret, then connect again.',
  reauthorization_required: 'Re-authorize the instance.',
  forbidden: 'Your user may not do this; ask an administrator.',
  outbound_address_refused: 'Junction may not call that address (see JUNCTION_OUTBOUND_ALLOW_PRIVATE).',
};

export async function call(method, path, body, { auth, raw } = {}) {
  const headers = { Accept: 'application/json' };
  const creds = credentials();
  if (auth) headers.Authorization = auth;
  else if (creds) headers.Authorization = `User ${creds.user}, Organization ${creds.organization}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(API + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit', cache: 'no-store',
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) throw new ApiError(response.status, json);
  return raw ? { json, headers: response.headers } : json;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body, opts);
export const patch = (path, body, opts) => call('PATCH', path, body, opts);
export const put = (path, body, opts) => call('PUT', path, body, opts);
export const del = (path, opts) => call('DELETE', path, undefined, opts);
