// How numbers and instants read on the page: local time, grouped digits,
// milliseconds with a unit, "never" for what has not happened.

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'
})
const sameYear = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'
})
const otherYear = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'
})
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 })
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 })

/** An RFC 3339 instant (or epoch ms) in local time; `empty` when absent. */
export function when (value, empty = '—') {
  if (value === null || value === undefined || value === '') return empty
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? String(value) : dateTime.format(date)
}

/**
 * `<time datetime=…>` for an instant, short for tables (`Dec 6, 15:32:33`;
 * the year only when it is not this one), the full form as its title.
 */
export function timeElement (value, empty = '—') {
  if (value === null || value === undefined || value === '') return empty
  const date = new Date(value)
  if (Number.isNaN(date.getTime())) return String(value)
  const element = document.createElement('time')
  element.dateTime = date.toISOString()
  element.title = dateTime.format(date)
  element.textContent = (date.getFullYear() === new Date().getFullYear() ? sameYear : otherYear).format(date)
  return element
}

/** A number: integers grouped, others to two decimals; `—` for null. */
export function number (value) {
  if (value === null || value === undefined) return '—'
  if (typeof value !== 'number') return String(value)
  return Number.isInteger(value) ? integer.format(value) : decimal.format(value)
}

/** Milliseconds as `12.5 ms` or `1.2 s`. */
export function millis (value) {
  if (value === null || value === undefined) return '—'
  return value >= 1000 ? `${decimal.format(value / 1000)} s` : `${decimal.format(value)} ms`
}

/** Seconds as `3.4 s`, `2 min 5 s`, `1 h 2 min`. */
export function seconds (value) {
  if (value === null || value === undefined) return '—'
  if (value < 60) return `${decimal.format(value)} s`
  const whole = Math.round(value)
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`
}

/** A share in [0, 1] as a percentage. */
export function percent (value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—'
  return `${decimal.format(value * 100)} %`
}

/** The ranges the explorers offer, as [value, label, milliseconds]. */
export const RANGES = [
  ['15m', 'Last 15 minutes', 15 * 60e3],
  ['1h', 'Last hour', 3600e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['7d', 'Last 7 days', 7 * 24 * 3600e3],
  ['30d', 'Last 30 days', 30 * 24 * 3600e3]
]

/** `{from, to}` as RFC 3339 for a range value of RANGES, ending now. */
export function rangeEndingNow (range) {
  const found = RANGES.find(([value]) => value === range) || RANGES[1]
  const to = Date.now()
  return { from: new Date(to - found[2]).toISOString(), to: new Date(to).toISOString() }
}

/** A `datetime-local` value (local time) as RFC 3339, or null when empty. */
export function localInputToRfc3339 (value) {
  if (!value) return null
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

/** An instant as a `datetime-local` value in local time. */
export function toLocalInput (date) {
  const pad = (n) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`
}
