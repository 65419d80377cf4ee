// The event explorer: `/v1/events` with the shared filters, newest first, a
// page at a time. "Older" follows `next_cursor`; "Newer" goes back through
// the cursors already seen (the cursor pins the range, so pages never shift).

import { get, url } from '../api.js'
import { field, h, messageBox, replace, select } from '../dom.js'
import { FILTER_LABELS, filterFields } from '../filters.js'
import { millis, number, rangeEndingNow, timeElement, when } from '../format.js'

const LABELS = { ...FILTER_LABELS, limit: 'Events per page', cursor: 'Page' }

export function render (container, params) {
  const filters = filterFields(params)
  const limit = select({ name: 'limit' }, ['25', '50', '100', '250'], params.get('limit') || '50')
  const problem = messageBox()
  const search = h('button', { type: 'submit', class: 'primary' }, 'Show events')
  const results = h('section', { class: 'results', 'aria-label': 'Events', 'aria-busy': 'false' })
  const form = h('form', { class: 'explorer', onsubmit: (event) => { event.preventDefault(); start(true) } },
    filters.element,
    h('div', { class: 'actions' }, field('Events per page', limit), search))
  replace(container, h('h1', {}, 'Events'), form, problem.element, results)

  // The first page's question, and the cursor of every page shown so far.
  let asked = null
  let pageSize = 0
  let cursors = []
  // Only the newest request may draw: an older one that answers late is dropped.
  let latest = 0

  async function start (remember) {
    problem.clear()
    const filterPairs = filters.apiPairs(problem)
    if (!filterPairs) return
    if (remember) history.replaceState(null, '', url('#/events', [...filters.hashPairs(), ['limit', limit.value]]))
    const { from, to } = rangeEndingNow(filters.range())
    pageSize = Number(limit.value)
    asked = [['from', from], ['to', to], ...filterPairs, ['limit', limit.value]]
    cursors = [null]
    await load(0)
  }

  async function load (page) {
    const ticket = ++latest
    results.setAttribute('aria-busy', 'true')
    const cursor = cursors[page]
    try {
      const answer = await get('/v1/events', cursor ? [...asked, ['cursor', cursor]] : asked)
      if (ticket !== latest) return
      cursors = cursors.slice(0, page + 1)
      if (answer.next_cursor) cursors.push(answer.next_cursor)
      problem.clear()
      show(answer, page)
    } catch (error) {
      if (ticket === latest) problem.fail(error, LABELS, form)
    } finally {
      if (ticket === latest) results.setAttribute('aria-busy', 'false')
    }
  }

  function show (answer, page) {
    const events = answer.events
    const first = page * pageSize
    const newer = h('button', { type: 'button', disabled: page === 0, onclick: () => load(page - 1) }, '← Newer')
    const older = h('button', { type: 'button', disabled: !answer.next_cursor, onclick: () => load(page + 1) }, 'Older →')
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of events' },
      newer,
      h('span', { class: 'page-number', 'aria-live': 'polite' },
        events.length ? `Page ${page + 1}: events ${number(first + 1)}–${number(first + events.length)}` : `Page ${page + 1}: no events`),
      older)
    replace(results,
      h('p', { class: 'summary' }, `Newest first, from ${when(answer.from)} to ${when(answer.to)}.`),
      pager,
      events.length
        ? h('div', { class: 'table-wrap' }, eventTable(events))
        : h('p', { class: 'empty' }, 'No events match in this range.'))
  }

  start(false)
}

function eventTable (events) {
  const columns = [
    ['Time', (event) => timeElement(event.timestamp)],
    ['Type', (event) => event.type],
    ['User', (event) => event.user_id ?? '—'],
    ['Source', (event) => event.source ?? '—'],
    ['Status', (event) => event.status ?? '—'],
    ['Duration', (event) => millis(event.duration_ms)],
    ['Details', (event) => details(event)]
  ]
  return h('table', { class: 'data events' },
    h('caption', {}, `${number(events.length)} events`),
    h('thead', {}, h('tr', {}, columns.map(([header]) => h('th', { scope: 'col' }, header)))),
    h('tbody', {}, events.map((event) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(event)))))))
}

/** The whole event behind a disclosure (keyboard: Enter or Space on its summary). */
function details (event) {
  return h('details', {},
    h('summary', {}, h('span', { class: 'visually-hidden' }, 'Event '), h('code', {}, event.event_id)),
    h('pre', { class: 'json' }, JSON.stringify(event, null, 2)))
}
