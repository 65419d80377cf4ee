// Line charts over time with the vendored uPlot. The chart is a picture of
// the table beside it (which holds the same numbers for screen readers and
// copying), so the canvas gets a label, not a second rendition.

import uPlot from './vendor/uPlot.esm.js'
import { h, replace } from './dom.js'
import { number } from './format.js'

/** Colours distinguishable on white, in the order series get them. */
const PALETTE = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700', '#8250df', '#0b7b8b',
  '#bf3989', '#57606a', '#fb8500', '#2da44e', '#6639ba', '#a40e26']

/**
 * Draws into `container`: `buckets` are epoch milliseconds, each series
 * `{label, values}` with one value (or null) per bucket, over the time axis
 * `span` ([from, to] in epoch milliseconds: the question's range, so a
 * single bucket does not stretch over years). Returns a function that
 * removes the chart.
 */
export function lineChart (container, { buckets, series, span, title, yLabel, height = 300 }) {
  const frame = h('div', { class: 'chart', role: 'img', 'aria-label': `${title}: a line chart; the table below has its numbers` })
  replace(container, frame)
  if (!buckets.length) {
    replace(frame, h('p', { class: 'empty' }, 'Nothing to draw: no rows in this range.'))
    return () => {}
  }
  const width = Math.max(320, container.clientWidth || 900)
  const options = {
    title,
    width,
    height,
    scales: { x: { time: true, range: () => [span[0] / 1000, span[1] / 1000] } },
    axes: [{}, { label: yLabel, size: 70, values: (_, ticks) => ticks.map(number) }],
    series: [{ label: 'Time' }].concat(series.map((one, index) => ({
      label: one.label,
      stroke: PALETTE[index % PALETTE.length],
      width: 2,
      points: { show: buckets.length < 60 },
      value: (_, value) => number(value)
    }))),
    legend: { live: true }
  }
  const data = [buckets.map((ms) => ms / 1000)].concat(series.map((one) => one.values))
  const plot = new uPlot(options, data, frame)
  const observer = new ResizeObserver(() => {
    const next = Math.max(320, container.clientWidth)
    if (next !== plot.width) plot.setSize({ width: next, height })
  })
  observer.observe(container)
  return () => {
    observer.disconnect()
    plot.destroy()
  }
}
