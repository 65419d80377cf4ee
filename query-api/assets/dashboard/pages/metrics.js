// The metrics explorer: a question to `/v1/metrics` (interval, metrics,
// group-by, filters, having, order), drawn as a chart and a table, with a
// link to `/v1/export/metrics` of exactly the same question (the same
// absolute range, so the file holds the rows shown).

import { get, url } from '../api.js'
import { lineChart } from '../chart.js'
import { field, h, messageBox, replace, select } from '../dom.js'
import { FILTER_LABELS, filterFields } from '../filters.js'
import { number, rangeEndingNow, timeElement, when } from '../format.js'

const INTERVALS = [['1m', '1 minute'], ['5m', '5 minutes'], ['15m', '15 minutes'], ['1h', '1 hour'], ['1d', '1 day']]
const METRICS = ['count', 'unique_users', 'unique_sessions', 'sum_duration', 'avg_duration', 'min_duration',
  'max_duration', 'p50_duration', 'p90_duration', 'p95_duration', 'p99_duration', 'dominant_status']
const NOT_DRAWN = new Set(['dominant_status'])
const MOST_SERIES = 12
const MOST_TABLE_ROWS = 1000

const LABELS = {
  ...FILTER_LABELS,
  interval: 'Interval',
  metrics: 'Metrics',
  group_by: 'Group by',
  having: 'Having',
  order_by: 'Order by',
  limit: 'Limit'
}

export function render (container, params) {
  const filters = filterFields(params)
  const interval = select({ name: 'interval' }, INTERVALS, params.get('interval') || '1m')
  const chosen = new Set((params.get('metrics') || 'count,unique_users,p95_duration').split(',').filter(Boolean))
  const metricBoxes = METRICS.map((metric) => {
    const box = h('input', { type: 'checkbox', name: 'metrics', value: metric, checked: chosen.has(metric), id: `metric-${metric}` })
    return h('label', { class: 'check', for: box.id }, box, ' ', metric)
  })
  const text = (name, placeholder) => h('input', { type: 'text', name, value: params.get(name) || '', placeholder, autocomplete: 'off' })
  const groupBy = text('group_by', 'type, property.plan')
  const having = text('having', 'count > 10')
  const orderBy = text('order_by', '-count')
  const limit = h('input', { type: 'number', name: 'limit', min: 1, max: 100000, value: params.get('limit') || '', placeholder: '10000' })
  const problem = messageBox()
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run')
  const results = h('section', { class: 'results', 'aria-live': 'polite', 'aria-busy': 'false', 'aria-label': 'Results' })
  const form = h('form', { class: 'explorer', onsubmit: (event) => { event.preventDefault(); runQuestion(true) } },
    filters.element,
    h('fieldset', { class: 'question' },
      h('legend', {}, 'Question'),
      field('Interval', interval),
      h('fieldset', { class: 'metric-choice' }, h('legend', {}, 'Metrics'), metricBoxes),
      field('Group by', groupBy, 'up to 4 of type, source, status, property.KEY'),
      field('Having', having, 'e.g. count > 10, p95_duration >= 200'),
      field('Order by', orderBy, 'bucket, a dimension or a metric; - sorts descending'),
      field('Limit', limit, 'rows, 1–100,000')),
    h('div', { class: 'actions' }, run))
  replace(container, h('h1', {}, 'Metrics'), form, problem.element, results)

  let clearChart = () => {}
  // Only the newest question may draw: an older one that answers late is dropped.
  let latest = 0

  function question () {
    const metrics = metricBoxes.map((label) => label.querySelector('input')).filter((box) => box.checked).map((box) => box.value)
    const shape = [
      ['interval', interval.value],
      ['metrics', metrics.join(',')],
      ['group_by', groupBy.value.trim()],
      ['having', having.value.trim()],
      ['order_by', orderBy.value.trim()],
      ['limit', limit.value.trim()]
    ].filter(([, value]) => value)
    return { metrics, shape }
  }

  async function runQuestion (remember) {
    problem.clear()
    const { metrics, shape } = question()
    if (!metrics.length) {
      problem.show('Metrics: choose at least one.')
      return
    }
    const filterPairs = filters.apiPairs(problem)
    if (!filterPairs) return
    if (remember) history.replaceState(null, '', url('#/metrics', [...filters.hashPairs(), ...shape]))
    const { from, to } = rangeEndingNow(filters.range())
    const asked = [['from', from], ['to', to], ...filterPairs, ...shape]
    const ticket = ++latest
    results.setAttribute('aria-busy', 'true')
    try {
      const answer = await get('/v1/metrics', asked)
      if (ticket !== latest) return
      show(answer, asked, metrics)
    } catch (error) {
      if (ticket === latest) problem.fail(error, LABELS, form)
    } finally {
      if (ticket === latest) results.setAttribute('aria-busy', 'false')
    }
  }

  function show (answer, asked, metrics) {
    const dimensions = answer.columns.filter((column) => column !== 'bucket' && !METRICS.includes(column))
    const drawable = metrics.filter((metric) => !NOT_DRAWN.has(metric))
    const chartMetric = select({ name: 'chart_metric' }, drawable, drawable[0])
    const chartBox = h('div', { class: 'chart-box' })
    const exportLink = h('a', {
      class: 'button',
      href: url('/v1/export/metrics', [...asked, ['format', 'csv']]),
      download: ''
    }, 'Download these rows as CSV')
    const rows = answer.rows
    const bounds = Object.entries(answer.error_bounds || {})
    replace(results,
      h('div', { class: 'results-head' },
        h('p', { class: 'summary' },
          `${number(rows.length)} rows from ${when(answer.from)} to ${when(answer.to)}, `,
          `${answer.interval} buckets, served from ${answer.source}`,
          answer.raw_from ? ` (raw events from ${when(answer.raw_from)})` : '', '.'),
        exportLink),
      drawable.length
        ? h('form', { class: 'inline', onsubmit: (event) => event.preventDefault() }, field('Chart shows', chartMetric))
        : null,
      chartBox,
      bounds.length
        ? h('p', { class: 'hint' }, 'Approximate: ', bounds.map(([metric, bound]) =>
          `${metric} within ${number(bound.value * 100)} % (${bound.kind.replaceAll('_', ' ')})`).join('; '), '.')
        : null,
      resultTable(answer.columns, rows))
    const draw = () => {
      clearChart()
      if (!drawable.length) return
      clearChart = drawSeries(chartBox, rows, dimensions, chartMetric.value, [Date.parse(answer.from), Date.parse(answer.to)])
    }
    chartMetric.addEventListener('change', draw)
    draw()
  }

  runQuestion(false)
  return () => clearChart()
}

/** One series per group (the most `metric` first, at most MOST_SERIES), one point per bucket. */
function drawSeries (box, rows, dimensions, metric, span) {
  const buckets = [...new Set(rows.map((row) => Date.parse(row.bucket)))].sort((a, b) => a - b)
  const index = new Map(buckets.map((bucket, at) => [bucket, at]))
  const groups = new Map()
  for (const row of rows) {
    const key = dimensions.length ? dimensions.map((dimension) => row[dimension] ?? '(none)').join(' · ') : 'all events'
    if (!groups.has(key)) groups.set(key, { label: key, values: new Array(buckets.length).fill(null), total: 0 })
    const group = groups.get(key)
    group.values[index.get(Date.parse(row.bucket))] = row[metric] ?? null
    group.total += Number(row[metric]) || 0
  }
  const series = [...groups.values()].sort((a, b) => b.total - a.total).slice(0, MOST_SERIES)
  const title = groups.size > MOST_SERIES
    ? `${metric} per bucket (the ${MOST_SERIES} largest of ${groups.size} groups)`
    : `${metric} per bucket`
  return lineChart(box, { buckets, series, span, title, yLabel: metric })
}

function resultTable (columns, rows) {
  const shown = rows.slice(0, MOST_TABLE_ROWS)
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data' },
      h('caption', {}, rows.length > shown.length
        ? `The first ${number(shown.length)} of ${number(rows.length)} rows (the CSV has them all)`
        : `${number(rows.length)} rows`),
      h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col' }, column)))),
      h('tbody', {}, shown.map((row) => h('tr', {}, columns.map((column) => {
        const value = row[column]
        if (column === 'bucket') return h('td', {}, timeElement(value))
        return h('td', { class: typeof value === 'number' ? 'num' : null }, typeof value === 'number' ? number(value) : value ?? '—')
      }))))))
}
