// API keys of the project (developers and admins): list with expiry, last
// use and creator; create (optionally expiring), rotate (the old key stays
// valid until a chosen time), revoke. A new key is shown once, here.

import { post, remove } from '../api.js'
import { announce, button, confirmDialog, field, h, messageBox, replace } from '../dom.js'
import { localInputToRfc3339, timeElement, toLocalInput } from '../format.js'
import { secretPanel, submitCreate, tableLoader } from '../manage.js'
import { session } from '../session.js'

const SCOPES = [
  ['ingest', 'ingest: send events'],
  ['read', 'read: query, export, live'],
  ['webhooks', 'webhooks: manage webhooks']
]
const LABELS = { label: 'Label', scopes: 'Scopes', expires_at: 'Expires', old_key_valid_until: 'Old key valid until' }

export function render (container) {
  const problem = messageBox()
  const revealed = secretPanel()
  const listBox = h('section', { class: 'results', 'aria-labelledby': 'keys-title' })
  const load = tableLoader(listBox, {
    path: '/v1/keys',
    field: 'keys',
    headers: ['Label', 'Key id', 'Scopes', 'State', 'Created', 'Created by', 'Expires', 'Last used', 'Actions'],
    row,
    sort: (keys) => keys.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at))),
    caption: (keys) => `${keys.length} keys, newest first`,
    empty: 'This project has no keys yet.',
    tableClass: 'data keys'
  })
  replace(container,
    h('h1', {}, 'API keys of ', h('span', { class: 'project-name' }, session.project)),
    problem.element,
    revealed.element,
    createForm(),
    h('h2', { id: 'keys-title' }, 'Keys'),
    listBox)
  load()

  function createForm () {
    const label = h('input', { type: 'text', name: 'label', required: true, maxlength: 200, autocomplete: 'off' })
    const scopeBoxes = SCOPES.map(([scope, text]) => {
      const box = h('input', { type: 'checkbox', name: 'scopes', value: scope, id: `scope-${scope}`, checked: scope !== 'webhooks' })
      return h('label', { class: 'check', for: box.id }, box, ' ', text)
    })
    const expires = h('input', { type: 'datetime-local', name: 'expires_at' })
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create key')
    const form = h('form', { class: 'card create', 'aria-labelledby': 'create-key-title', onsubmit: onCreate },
      h('h2', { id: 'create-key-title' }, 'Create a key'),
      h('div', { class: 'create-row' },
        field('Label', label, 'what the key is for, e.g. “checkout service”'),
        h('fieldset', { class: 'metric-choice' }, h('legend', {}, 'Scopes'), scopeBoxes),
        field('Expires (optional)', expires, 'your local time; empty: never')),
      h('div', { class: 'actions' }, submit))

    async function onCreate (event) {
      event.preventDefault()
      problem.clear()
      const scopes = scopeBoxes.map((item) => item.querySelector('input')).filter((box) => box.checked).map((box) => box.value)
      if (!scopes.length) {
        problem.show('Scopes: choose at least one.')
        return
      }
      const body = { scopes, label: label.value.trim() }
      const expiresAt = localInputToRfc3339(expires.value)
      if (expiresAt) body.expires_at = expiresAt
      await submitCreate({
        form,
        submit,
        problem,
        labels: LABELS,
        send: () => post('/v1/keys', body),
        done: (created) => reveal('New key', created, `The key “${body.label}” was created.`),
        reload: load
      })
    }
    return form
  }

  /** Shows a new key once; it is never shown again. */
  function reveal (title, created, sentence) {
    revealed.show(title, sentence, created.key, 'key')
  }

  function row (key) {
    return h('tr', { 'data-key-id': key.key_id },
      h('td', {}, key.label || '—'),
      h('td', {}, h('code', {}, key.key_id)),
      h('td', {}, (key.scopes || []).join(', ')),
      h('td', {}, state(key)),
      h('td', {}, timeElement(key.created_at)),
      h('td', {}, key.created_by || '—'),
      h('td', {}, timeElement(key.expires_at, 'never')),
      h('td', {}, timeElement(key.last_used_at, 'never')),
      h('td', { class: 'row-actions' }, key.revoked_at ? null : [
        button('Rotate', () => rotate(key), { 'aria-label': `Rotate key ${key.label || key.key_id}` }),
        ' ',
        button('Revoke', () => revoke(key), { class: 'danger', 'aria-label': `Revoke key ${key.label || key.key_id}` })
      ]))
  }

  async function rotate (key) {
    const until = h('input', { type: 'datetime-local', required: true, value: toLocalInput(new Date(Date.now() + 24 * 3600e3)) })
    let created = null
    const done = await confirmDialog({
      title: `Rotate “${key.label || key.key_id}”`,
      content: [
        h('p', {}, 'A new key with the same scopes replaces this one. The old key keeps working until the time you choose, so clients can switch.'),
        field('Old key valid until', until, 'your local time')
      ],
      confirmLabel: 'Rotate',
      onConfirm: async () => {
        const validUntil = localInputToRfc3339(until.value)
        if (!validUntil) throw new Error('Old key valid until: choose a date and time.')
        created = await post(`/v1/keys/${encodeURIComponent(key.key_id)}/rotate`, { old_key_valid_until: validUntil })
      }
    })
    if (!done || !created) return
    reveal('Rotated key', created, `The key “${key.label || key.key_id}” was rotated; this is its successor.`)
    await load()
  }

  async function revoke (key) {
    const done = await confirmDialog({
      title: `Revoke “${key.label || key.key_id}”?`,
      content: h('p', {}, 'Requests with this key are refused from now on, on every service, within seconds. This cannot be undone.'),
      confirmLabel: 'Revoke',
      danger: true,
      onConfirm: () => remove(`/v1/keys/${encodeURIComponent(key.key_id)}`)
    })
    if (!done) return
    problem.show(`“${key.label || key.key_id}” was revoked.`, 'ok')
    announce('Key revoked')
    await load()
  }
}

function state (key) {
  const now = Date.now()
  if (key.revoked_at) return h('span', { class: 'badge badge-off' }, 'revoked')
  if (key.expires_at && Date.parse(key.expires_at) <= now) return h('span', { class: 'badge badge-off' }, 'expired')
  if (key.replaced_by) return h('span', { class: 'badge badge-warn' }, 'rotated, valid until expiry')
  return h('span', { class: 'badge badge-on' }, 'active')
}
