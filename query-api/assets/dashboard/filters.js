// The filters every read endpoint takes (docs/query-api.md, "Time range and
// filters"), as one fieldset shared by the metrics and event explorers. The
// explorers keep them in the page's hash, so a view can be bookmarked.

import { field, h, select } from './dom.js'
import { RANGES } from './format.js'

const EQUALS = [
  ['type', 'Type', 'e.g. purchase'],
  ['source', 'Source', 'e.g. web'],
  ['status', 'Status', 'e.g. 500'],
  ['user_id', 'User id', ''],
  ['session_id', 'Session id', ''],
  ['tag', 'Tag', 'events carrying this tag']
]

/** Labels of the parameters, for error messages that name one. */
export const FILTER_LABELS = Object.fromEntries([['from', 'From'], ['to', 'To'], ...EQUALS.map(([name, label]) => [name, label])])

/** The fieldset, filled from `params` (URLSearchParams of the hash). */
export function filterFields (params) {
  const range = select({ name: 'range' }, RANGES.map(([value, label]) => [value, label]), params.get('range') || '1h')
  const inputs = EQUALS.map(([name, , placeholder]) =>
    [name, h('input', { type: 'text', name, value: params.get(name) || '', placeholder, autocomplete: 'off' })])
  const properties = h('textarea', {
    name: 'properties',
    rows: 1,
    placeholder: 'plan=pro',
    value: params.getAll('property').join('\n')
  })
  const element = h('fieldset', { class: 'filters' },
    h('legend', {}, 'Range and filters'),
    field('Time range', range),
    inputs.map(([name, input]) => field(FILTER_LABELS[name], input)),
    field('Properties', properties, 'one KEY=VALUE per line; all must hold'))
  return {
    element,
    range: () => range.value,
    /**
     * [name, value] pairs for the API (property lines become
     * `property.KEY=VALUE`); null after telling `problem` (a messageBox)
     * about a line that is not KEY=VALUE.
     */
    apiPairs (problem) {
      const pairs = inputs.map(([name, input]) => [name, input.value.trim()]).filter(([, value]) => value)
      for (const line of propertyLines()) {
        const at = line.indexOf('=')
        if (at <= 0) {
          problem.show(`Properties: “${line}” is not KEY=VALUE.`)
          properties.setAttribute('aria-invalid', 'true')
          properties.focus()
          return null
        }
        pairs.push([`property.${line.slice(0, at).trim()}`, line.slice(at + 1).trim()])
      }
      properties.removeAttribute('aria-invalid')
      return pairs
    },
    /** [name, value] pairs for the hash (the range by name, properties as typed). */
    hashPairs () {
      const pairs = [['range', range.value], ...inputs.map(([name, input]) => [name, input.value.trim()]).filter(([, value]) => value)]
      for (const line of propertyLines()) pairs.push(['property', line])
      return pairs
    }
  }

  function propertyLines () {
    return properties.value.split('\n').map((line) => line.trim()).filter(Boolean)
  }
}
