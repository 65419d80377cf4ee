// Every request the dashboard makes, to this origin only. The session is
// the HttpOnly cookie the API set at login (JavaScript never sees a token);
// writes carry `X-Sluice-Csrf: 1`, every request `X-Sluice-Project`. On a
// 401 the session is refreshed once (with the refresh cookie) and the
// request sent again; when that fails, the person is sent to the login page.
// Any 401, not only `session_expired`: the access cookie lives exactly as
// long as its token, so once it is gone the browser sends no token at all
// and the API can only say `unauthorized`. A 403 may mean that the
// person's roles changed since the page loaded: the app is told, and checks.

/** The API's error body as an Error: `{error, message, details}` plus the status. */
export class ApiError extends Error {
  constructor (status, body = {}, retryAfter = null) {
    super(body.message || fallbackMessage(status))
    this.status = status
    this.code = body.error || 'error'
    this.details = body.details ?? null
    this.retryAfter = retryAfter
  }

  /** The field the error is about, when the details name one. */
  get field () {
    const details = this.details
    if (!details || typeof details !== 'object') return null
    return details.field || details.parameter || details.fields?.[0]?.field || null
  }

  /**
   * A sentence for a person: the API's message, the field it is about (by
   * its label in `labels` when given), and when to try again.
   */
  describe (labels = {}) {
    let text = this.message
    const reason = this.details && typeof this.details === 'object' ? this.details.reason : null
    if (reason && !text.includes(reason)) text = `${text}: ${reason}`
    const field = this.field
    if (field) {
      const label = labels[field] || field
      if (!text.toLowerCase().includes(String(label).toLowerCase())) text = `${label}: ${text}`
    }
    if (this.retryAfter) text = `${text} Try again in ${this.retryAfter} s.`
    return text
  }
}

function fallbackMessage (status) {
  if (status === 0) return 'The query API did not answer. Check that it is running and try again.'
  if (status === 401) return 'You are not signed in.'
  if (status === 403) return 'You may not do this.'
  if (status === 404) return 'Not found.'
  if (status === 429) return 'Too many requests.'
  if (status >= 500) return `The server failed to answer (HTTP ${status}). Try again in a moment.`
  return `The request failed (HTTP ${status}).`
}

let project = null
let signedOut = () => {}
let refused = () => {}

/** The project every request names (and the cookie plain links and the live socket carry). */
export function useProject (id) {
  project = id
  const value = id ? encodeURIComponent(id) : ''
  const expiry = id ? '' : '; Max-Age=0'
  document.cookie = `sluice_project=${value}; Path=/; SameSite=Strict${expiry}`
}

/** The project named by the `sluice_project` cookie, if any. */
export function projectFromCookie () {
  const pair = document.cookie.split('; ').find((item) => item.startsWith('sluice_project='))
  return pair ? decodeURIComponent(pair.slice('sluice_project='.length)) || null : null
}

/** `handler()` runs when the session has ended and cannot be refreshed. */
export function whenSignedOut (handler) {
  signedOut = handler
}

/** `handler(error)` runs when the API refuses a request for the person's role (403 `forbidden`). */
export function whenRefused (handler) {
  refused = handler
}

/** `path?query` where query is an object, pairs or URLSearchParams; empty values are left out. */
export function url (path, query) {
  if (!query) return path
  const params = new URLSearchParams()
  const pairs = query instanceof URLSearchParams ? [...query] : Array.isArray(query) ? query : Object.entries(query)
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === '') continue
    params.append(name, String(value))
  }
  const text = params.toString()
  return text ? `${path}?${text}` : path
}

let refreshing = null

/** One refresh at a time, however many requests found the token expired. */
function refresh () {
  if (!refreshing) {
    refreshing = fetch('/v1/auth/refresh', {
      method: 'POST',
      headers: { 'X-Sluice-Csrf': '1', Accept: 'application/json' },
      credentials: 'same-origin'
    }).then((response) => response.ok, () => false)
    refreshing.finally(() => { setTimeout(() => { refreshing = null }, 0) })
  }
  return refreshing
}

async function parse (response) {
  if (response.status === 204) return null
  const type = response.headers.get('content-type') || ''
  if (type.includes('json')) {
    try {
      return await response.json()
    } catch {
      return null
    }
  }
  return response.text()
}

/**
 * Sends METHOD PATH with `body` as JSON; resolves to the parsed answer,
 * rejects with an ApiError (status 0 when nothing answered).
 */
export async function request (method, path, { query, body, retry = true } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && method !== 'HEAD') headers['X-Sluice-Csrf'] = '1'
  if (project) headers['X-Sluice-Project'] = project
  let response
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin'
    })
  } catch {
    throw new ApiError(0)
  }
  const answer = await parse(response)
  if (response.ok) return answer
  const error = new ApiError(response.status, answer && typeof answer === 'object' ? answer : {},
    response.headers.get('retry-after'))
  const isAuthCall = path.startsWith('/v1/auth/')
  if (response.status === 401 && !isAuthCall) {
    if (retry && await refresh()) {
      return request(method, path, { query, body, retry: false })
    }
    signedOut(error)
  }
  if (response.status === 403 && error.code === 'forbidden' && !isAuthCall) refused(error)
  throw error
}

export const get = (path, query) => request('GET', path, { query })
export const post = (path, body = {}) => request('POST', path, { body })
export const patch = (path, body) => request('PATCH', path, { body })
export const remove = (path) => request('DELETE', path)

/** `GET /v1/auth/me`, refreshing an expired session; null when nobody is signed in. */
export async function currentUser () {
  try {
    return await request('GET', '/v1/auth/me')
  } catch (error) {
    if (error.status !== 401) throw error
  }
  if (!(await refresh())) return null
  try {
    return await request('GET', '/v1/auth/me')
  } catch (again) {
    if (again.status === 401) return null
    throw again
  }
}

/** True while a session holds (refreshing it if needed); else the person is signed out. */
export async function ensureSession () {
  const user = await currentUser()
  if (!user) signedOut(new ApiError(401))
  return Boolean(user)
}
