// The project at a glance: live tiles from `/v1/live` (events per second,
// unique users, p95 duration, error share over a rolling window), the
// freshness of the stored data from `/v1/status`, and the last hour's
// events per minute from `/v1/metrics`.
//
// A push carries one subscription's merged metrics, not counts per status,
// so the error share subscribes once for everything and once per error
// status (common HTTP error codes plus those seen in the last day), and
// divides.

import { get } from '../api.js'
import { lineChart } from '../chart.js'
import { field, h, messageBox, replace, select } from '../dom.js'
import { millis, number, percent, seconds, timeElement } from '../format.js'
import { LiveSocket } from '../live.js'
import { session } from '../session.js'

const WINDOWS = [['1m', 'Last minute'], ['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour']]
const COMMON_ERRORS = ['400', '401', '403', '404', '408', '409', '422', '429', '500', '502', '503', '504', 'error', 'failed']
const MAX_STATUS_SUBSCRIPTIONS = 90

/** A status that counts as an error: an HTTP code of 400 or more, or a word for failure. */
export const isErrorStatus = (status) =>
  /^[45]\d\d$/.test(status) || /^(error|failed|failure|fail|exception|timeout)$/i.test(status)

export function render (container) {
  let liveWindow = '1m'
  const tiles = {
    rate: tile('rate', 'Events per second'),
    count: tile('count', 'Events'),
    users: tile('users', 'Unique users'),
    p95: tile('p95', 'p95 duration'),
    errors: tile('errors', 'Error share')
  }
  const connection = h('p', { class: 'connection', 'data-state': 'connecting' }, 'Connecting to live updates…')
  const windowSelect = select({ name: 'window' }, WINDOWS, liveWindow)
  const freshness = h('section', { class: 'card freshness', 'aria-labelledby': 'freshness-title' },
    h('h2', { id: 'freshness-title' }, 'Freshness'), h('p', {}, 'Loading…'))
  const chartBox = h('div', { class: 'chart-box' })
  const problem = messageBox()
  replace(container,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Overview of ', h('span', { class: 'project-name' }, session.project)),
      h('form', { class: 'inline', onsubmit: (event) => event.preventDefault() }, field('Live window', windowSelect))),
    problem.element,
    h('section', { class: 'tiles', 'aria-label': 'Live figures' }, Object.values(tiles).map((one) => one.element)),
    connection,
    h('div', { class: 'overview-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'hour-title' },
        h('h2', { id: 'hour-title' }, 'Events per minute, last hour'), chartBox),
      freshness))

  const latest = { all: null, statuses: new Map() }
  const live = new LiveSocket({
    onUpdate: (id, update) => {
      if (id === 'all') latest.all = update
      else if (id.startsWith('status:')) latest.statuses.set(id.slice('status:'.length), update)
      draw()
    },
    onState: (state, detail) => {
      connection.dataset.state = state
      connection.textContent = {
        connecting: 'Connecting to live updates…',
        open: detail ? `Live (${detail}).` : 'Live: the tiles update as events arrive.',
        closed: detail || 'The live connection closed.',
        error: `The live connection refused a subscription: ${detail}`
      }[state]
    }
  })
  let errorStatuses = new Set(COMMON_ERRORS)

  function subscribeAll () {
    live.subscribe('all', liveWindow)
    for (const status of errorStatuses) live.subscribe(`status:${status}`, liveWindow, { status })
  }
  subscribeAll()
  windowSelect.addEventListener('change', () => {
    liveWindow = windowSelect.value
    latest.all = null
    latest.statuses.clear()
    for (const one of Object.values(tiles)) one.set('—', 'waiting for the next update')
    subscribeAll()
  })

  function draw () {
    const all = latest.all
    if (!all) return
    const spanSeconds = Math.max(1, (Date.parse(all.to) - Date.parse(all.from)) / 1000)
    tiles.rate.set(number(all.count / spanSeconds), `over ${seconds(spanSeconds)}`)
    tiles.count.set(number(all.count), `since ${new Date(all.from).toLocaleTimeString()}`)
    tiles.users.set(number(all.unique_users), `${number(all.unique_sessions)} sessions`)
    tiles.p95.set(millis(all.p95_duration), `p50 ${millis(all.p50_duration)} · p99 ${millis(all.p99_duration)}`)
    // A status subscription that has not been pushed for a while counted events that left the window.
    const current = Date.parse(all.to) - 60e3
    let errors = 0
    for (const update of latest.statuses.values()) {
      if (Date.parse(update.to) >= current) errors += update.count
    }
    tiles.errors.set(all.count ? percent(errors / all.count) : '—', `${number(errors)} with status ≥ 400 or error`)
  }

  async function loadStatus () {
    try {
      const status = await get('/v1/status')
      replace(freshness, h('h2', { id: 'freshness-title' }, 'Freshness'), describeStatus(status))
    } catch (error) {
      replace(freshness, h('h2', { id: 'freshness-title' }, 'Freshness'),
        h('p', { class: 'message message-error' }, error.describe ? error.describe() : String(error)))
    }
  }

  let clearChart = () => {}
  async function loadHour () {
    try {
      const now = Date.now()
      const from = new Date(now - 3600e3).toISOString()
      const answer = await get('/v1/metrics', { interval: '1m', metrics: 'count', group_by: 'status', from })
      // Every minute of the hour: a minute without events has no row, and counts 0.
      const firstMinute = Date.parse(answer.from)
      const buckets = Array.from({ length: Math.floor((now - firstMinute) / 60e3) + 1 }, (_, i) => firstMinute + i * 60e3)
      const totals = new Map(buckets.map((bucket) => [bucket, 0]))
      const seen = new Set()
      for (const row of answer.rows) {
        const bucket = Date.parse(row.bucket)
        totals.set(bucket, (totals.get(bucket) || 0) + row.count)
        if (row.status && isErrorStatus(String(row.status))) seen.add(String(row.status))
      }
      clearChart()
      clearChart = lineChart(chartBox, {
        buckets,
        series: [{ label: 'events', values: buckets.map((bucket) => totals.get(bucket)) }],
        span: [now - 3600e3, now],
        title: '',
        yLabel: 'events / min',
        height: 220
      })
      const known = new Set([...COMMON_ERRORS, ...[...seen].slice(0, MAX_STATUS_SUBSCRIPTIONS - COMMON_ERRORS.length)])
      if ([...known].some((status) => !errorStatuses.has(status))) {
        errorStatuses = known
        subscribeAll()
      }
      problem.clear()
    } catch (error) {
      problem.show(error.describe ? error.describe() : String(error))
    }
  }

  loadStatus()
  loadHour()
  const statusTimer = setInterval(loadStatus, 5000)
  const hourTimer = setInterval(loadHour, 30000)
  return () => {
    clearInterval(statusTimer)
    clearInterval(hourTimer)
    live.close()
    clearChart()
  }
}

function tile (name, label) {
  const value = h('p', { class: 'tile-value', 'data-tile': name }, '—')
  const note = h('p', { class: 'tile-note' }, 'waiting for the first update')
  const element = h('div', { class: 'tile' }, h('h2', {}, label), value, note)
  return {
    element,
    set (text, noteText) {
      value.textContent = text
      note.textContent = noteText
    }
  }
}

function describeStatus (status) {
  const last = status.last_event || {}
  const pipeline = status.pipeline || {}
  const freshnessText = status.freshness_seconds === null || status.freshness_seconds === undefined
    ? 'unknown (the broker did not answer)'
    : status.freshness_seconds === 0 ? 'up to date: every received event is queryable' : `${seconds(status.freshness_seconds)} behind`
  const rows = [
    ['Stored data', freshnessText],
    ['Last event received', timeElement(last.received_at, 'none yet')],
    ['Last event queryable', timeElement(last.queryable_at, 'none yet')],
    ['Lag', pipeline.lag_messages === undefined ? '—' : `${number(pipeline.lag_messages)} messages`],
    ['Dead letters', `${number(status.dead_letters?.last_hour ?? 0)} in the last hour, ${number(status.dead_letters?.last_day ?? 0)} in the last day`],
    ['Late events', `${number(status.late_events?.last_hour ?? 0)} in the last hour, ${number(status.late_events?.last_day ?? 0)} in the last day`]
  ]
  const list = h('dl', { class: 'facts' }, rows.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]))
  return pipeline.broker_error
    ? [list, h('p', { class: 'message message-error' }, `The broker did not answer: ${pipeline.broker_error}`)]
    : list
}
