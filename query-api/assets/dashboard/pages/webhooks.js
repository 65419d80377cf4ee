// The project's webhooks (developers and admins), through the query API's
// `/v1/webhooks` (docs/destinations.md): list, create (the signing secret
// is shown once), send a test delivery, show a webhook's deliveries of the
// last day, delete.

import { post, remove } from '../api.js'
import { button, confirmDialog, field, h, messageBox, replace } from '../dom.js'
import { millis, number, timeElement } from '../format.js'
import { secretPanel, submitCreate, tableLoader } from '../manage.js'
import { session } from '../session.js'

const LABELS = { url: 'URL', description: 'Description', rules: 'Rules', timeout_ms: 'Timeout', max_attempts: 'Attempts' }

/** A delivery's status as a badge: delivered, retrying, dead or refused. */
const STATUS_BADGES = { delivered: 'badge-on', retrying: 'badge-warn', dead: 'badge-off', refused: 'badge-off' }

export function render (container) {
  const problem = messageBox()
  const revealed = secretPanel()
  const listBox = h('section', { class: 'results', 'aria-labelledby': 'webhooks-title' })
  const load = tableLoader(listBox, {
    path: '/v1/webhooks',
    field: 'webhooks',
    headers: ['URL', 'Description', 'Rules', 'State', 'Created', 'Actions'],
    row,
    caption: (webhooks) => webhooks.length === 1 ? '1 webhook' : `${webhooks.length} webhooks`,
    empty: 'This project has no webhooks yet.'
  })
  // The deliveries of the webhook chosen with its "Deliveries" button.
  const deliveriesBox = h('section', { class: 'results deliveries', hidden: true, 'aria-labelledby': 'deliveries-title', tabindex: '-1' })
  let shownDeliveries = null
  replace(container,
    h('h1', {}, 'Webhooks of ', h('span', { class: 'project-name' }, session.project)),
    problem.element,
    revealed.element,
    createForm(),
    h('h2', { id: 'webhooks-title' }, 'Webhooks'),
    listBox,
    deliveriesBox)
  load()

  function createForm () {
    const address = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://example.com/hooks/sluice' })
    const description = h('input', { type: 'text', name: 'description', autocomplete: 'off' })
    const rules = h('textarea', { name: 'rules', rows: 2, cols: 48, value: '[{"type": "*"}]', spellcheck: 'false' })
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create webhook')
    const form = h('form', { class: 'card create', 'aria-labelledby': 'create-webhook-title', onsubmit: onCreate },
      h('h2', { id: 'create-webhook-title' }, 'Create a webhook'),
      h('div', { class: 'create-row' },
        field('URL', address),
        field('Description', description),
        field('Rules (JSON)', rules, 'a list; a rule matches when all its fields hold: type (glob), source, status, properties, sample')),
      h('div', { class: 'actions' }, submit))

    async function onCreate (event) {
      event.preventDefault()
      problem.clear()
      let parsedRules
      try {
        parsedRules = JSON.parse(rules.value)
      } catch (error) {
        problem.show(`Rules: not JSON (${error.message}).`)
        rules.focus()
        return
      }
      const webhook = { url: address.value.trim(), description: description.value.trim(), rules: parsedRules }
      await submitCreate({
        form,
        submit,
        problem,
        labels: LABELS,
        send: () => post('/v1/webhooks', webhook),
        done: (created) => revealed.show('New webhook', `Deliveries to ${created.url} are signed with this secret.`, created.secret, 'webhook'),
        reload: load
      })
    }
    return form
  }

  function row (webhook) {
    return h('tr', {},
      h('td', {}, h('code', {}, webhook.url)),
      h('td', {}, webhook.description || '—'),
      h('td', {}, h('code', {}, JSON.stringify(webhook.rules))),
      h('td', {}, webhook.enabled === false ? 'disabled' : 'enabled', webhook.circuit && webhook.circuit !== 'closed' ? ` · circuit ${webhook.circuit.replace('_', '-')}` : ''),
      h('td', {}, timeElement(webhook.created_at)),
      h('td', { class: 'row-actions' },
        button('Send test', () => test(webhook), { 'aria-label': `Send a test delivery to ${webhook.url}` }),
        ' ',
        button('Deliveries', () => showDeliveries(webhook), { 'aria-label': `Show the deliveries to ${webhook.url}` }),
        ' ',
        button('Delete', () => deleteWebhook(webhook), { class: 'danger', 'aria-label': `Delete the webhook to ${webhook.url}` })))
  }

  async function test (webhook) {
    problem.show(`Sending a test delivery to ${webhook.url}…`, 'info')
    try {
      const answer = await post(`/v1/webhooks/${encodeURIComponent(webhook.webhook_id)}/test`)
      if (answer.delivered) {
        problem.show(`Delivered: ${webhook.url} answered ${answer.response_status} in ${millis(answer.latency_ms)}.`, 'ok')
      } else {
        const why = answer.error || (answer.response_status ? `it answered ${answer.response_status}` : 'no answer')
        problem.show(`Not delivered to ${webhook.url}: ${why}.`)
      }
    } catch (error) {
      problem.show(error.describe(LABELS))
    }
  }

  async function deleteWebhook (webhook) {
    const done = await confirmDialog({
      title: 'Delete this webhook?',
      content: h('p', {}, 'Nothing more is sent to ', h('code', {}, webhook.url), '. Deliveries already logged stay in the log.'),
      confirmLabel: 'Delete',
      danger: true,
      onConfirm: () => remove(`/v1/webhooks/${encodeURIComponent(webhook.webhook_id)}`)
    })
    if (!done) return
    problem.show(`The webhook to ${webhook.url} was deleted.`, 'ok')
    if (shownDeliveries === webhook.webhook_id) {
      shownDeliveries = null
      deliveriesBox.hidden = true
      deliveriesBox.replaceChildren()
    }
    await load()
  }

  /** The webhook's deliveries of the last day, newest first (the test delivery is not among them). */
  async function showDeliveries (webhook) {
    shownDeliveries = webhook.webhook_id
    const table = h('div', { class: 'deliveries-table' })
    const loadDeliveries = tableLoader(table, {
      path: `/v1/webhooks/${encodeURIComponent(webhook.webhook_id)}/deliveries?limit=100`,
      field: 'deliveries',
      headers: ['Event', 'Status', 'Attempts', 'Answer', 'Latency', 'Last attempt'],
      row: deliveryRow,
      caption: (deliveries) => `${deliveries.length === 1 ? '1 delivery' : `${deliveries.length} deliveries`} to ${webhook.url} in the last day, newest first`,
      empty: `No deliveries to ${webhook.url} in the last day: events that its rules match are delivered within seconds.`
    })
    replace(deliveriesBox,
      h('div', { class: 'results-head' },
        h('h2', { id: 'deliveries-title' }, 'Deliveries to ', h('code', {}, webhook.url)),
        button('Refresh', async (event) => {
          event.target.disabled = true
          try {
            await loadDeliveries()
          } finally {
            event.target.disabled = false
          }
        }, { 'aria-label': `Refresh the deliveries to ${webhook.url}` })),
      table)
    deliveriesBox.hidden = false
    await loadDeliveries()
    deliveriesBox.focus()
  }
}

function deliveryRow (delivery) {
  const answer = delivery.response_status ? `HTTP ${delivery.response_status}` : delivery.error || '—'
  return h('tr', { 'data-event-id': delivery.event_id },
    h('td', {}, h('code', {}, delivery.event_id)),
    h('td', {}, h('span', { class: ['badge', STATUS_BADGES[delivery.status] || 'badge-off'] }, delivery.status)),
    h('td', {}, number(delivery.attempts)),
    h('td', {}, answer, delivery.response_status && delivery.error ? ` (${delivery.error})` : ''),
    h('td', {}, millis(delivery.latency_ms)),
    h('td', {}, timeElement(delivery.last_attempt_at)))
}
