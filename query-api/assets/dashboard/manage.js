// What the management pages (keys, webhooks, users) share: a table loaded
// from the API (or a sentence when there is nothing, or why it failed), and
// a secret shown once with a copy button.

import { get } from './api.js'
import { button, h, replace } from './dom.js'

/**
 * A function that loads `GET path`, takes the list in `field` and draws it
 * into `box`: one row per item from `row(item)` under `headers`, `caption`
 * from the sorted items, `empty` when there are none.
 */
export function tableLoader (box, { path, field, headers, row, caption, empty, sort = (items) => items, tableClass = 'data' }) {
  return async function load () {
    let items
    try {
      items = (await get(path))[field] || []
    } catch (error) {
      replace(box, h('p', { class: 'message message-error', role: 'alert' }, error.describe ? error.describe() : String(error)))
      return
    }
    if (!items.length) {
      replace(box, h('p', { class: 'empty' }, empty))
      return
    }
    const sorted = sort([...items])
    replace(box, h('div', { class: 'table-wrap' }, h('table', { class: tableClass },
      h('caption', {}, caption(sorted)),
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, sorted.map(row)))))
  }
}

/** A panel that shows a secret once: `show(title, sentence, secret, kind)`; `kind` names it for tests (`data-secret`). */
export function secretPanel () {
  const panel = h('div', { class: 'revealed', hidden: true, tabindex: '-1' })
  return {
    element: panel,
    show (title, sentence, secret, kind) {
      const copied = h('span', { class: 'hint', 'aria-live': 'polite' })
      replace(panel,
        h('h2', {}, title),
        h('p', {}, sentence, ' Copy it now: it is shown only this once.'),
        h('p', {}, h('code', { class: 'secret', 'data-secret': kind }, secret), ' ',
          button('Copy', async () => {
            try {
              await navigator.clipboard.writeText(secret)
              copied.textContent = 'Copied.'
            } catch {
              copied.textContent = 'Copying is not allowed here; select the text and copy it.'
            }
          }), ' ', copied),
        button('I have copied it', () => {
          panel.hidden = true
          panel.replaceChildren()
        }))
      panel.hidden = false
      panel.focus()
    }
  }
}

/**
 * Submits a create form: `send()` with its button disabled, then
 * `done(answer)`, the form reset and `reload()`; an error goes to `problem`
 * (a messageBox), which marks the field it names.
 */
export async function submitCreate ({ form, submit, problem, labels, send, done, reload }) {
  submit.disabled = true
  try {
    const answer = await send()
    done(answer)
    form.reset()
    await reload()
  } catch (error) {
    problem.fail(error, labels, form)
  } finally {
    submit.disabled = false
  }
}
