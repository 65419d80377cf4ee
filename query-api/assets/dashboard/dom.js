// Building the page from data without innerHTML: every text a user or the
// API chose goes in as a text node, never as markup. No element gets a
// `style` attribute either: the page's policy forbids inline styles.

let nextId = 0

/** A fresh element id: `PREFIX-N`. */
export const uid = (prefix = 'el') => `${prefix}-${++nextId}`

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open', 'indeterminate'])

/**
 * `h('button', {type: 'button', onclick: fn}, 'Save')`. Attributes whose
 * value is null, undefined or false are left out; `on…` functions become
 * listeners; children may be strings, numbers, nodes, arrays or null.
 */
export function h (tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value)
    } else if (PROPERTIES.has(name)) {
      element[name] = value
      // What a form's reset() returns to.
      if (name === 'checked') element.defaultChecked = value
      if (name === 'selected') element.defaultSelected = value
      if (name === 'value' && 'defaultValue' in element) element.defaultValue = value
    } else if (name === 'class') {
      element.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value
    } else {
      element.setAttribute(name, value === true ? '' : String(value))
    }
  }
  append(element, children)
  return element
}

/** Appends children (strings, numbers, nodes, nested arrays; nulls skipped). */
export function append (element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue
    element.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return element
}

/** Replaces every child of `element`. */
export function replace (element, ...children) {
  element.replaceChildren()
  return append(element, children)
}

/** A labelled control: `<div class="field"><label for=ID>…</label>CONTROL<small>HINT</small></div>`. */
export function field (label, control, hint) {
  if (!control.id) control.id = uid('field')
  const parts = [h('label', { for: control.id }, label), control]
  if (hint) {
    const hintId = uid('hint')
    control.setAttribute('aria-describedby', hintId)
    parts.push(h('small', { id: hintId, class: 'hint' }, hint))
  }
  return h('div', { class: 'field' }, parts)
}

/** `<select>` of `options` ([value, label] pairs or plain values), with `selected` chosen. */
export function select (attributes, options, selected) {
  return h('select', attributes, options.map((option) => {
    const [value, label] = Array.isArray(option) ? option : [option, option]
    return h('option', { value, selected: String(value) === String(selected) }, label)
  }))
}

/** A `<button type="button">`. */
export const button = (label, onclick, attributes = {}) =>
  h('button', { type: 'button', onclick, ...attributes }, label)

/** Says `text` to screen readers (the page's polite live region). */
export function announce (text) {
  const region = document.getElementById('announcer')
  if (region) region.textContent = text
}

/**
 * A message box for a page: `show(text, kind)` with kind `error`, `ok` or
 * `info`; `clear()` hides it. Errors use role=alert so they are read at once.
 */
export function messageBox () {
  const box = h('div', { class: 'message', hidden: true })
  return {
    element: box,
    show (text, kind = 'error') {
      box.hidden = false
      box.className = `message message-${kind}`
      box.setAttribute('role', kind === 'error' ? 'alert' : 'status')
      replace(box, text)
    },
    /**
     * Shows an error (an ApiError says which field, by its label in
     * `labels`) and marks that field of `form` invalid and focuses it.
     */
    fail (error, labels = {}, form = null) {
      this.show(error.describe ? error.describe(labels) : String(error.message || error))
      if (!form) return
      for (const marked of form.querySelectorAll('[aria-invalid]')) marked.removeAttribute('aria-invalid')
      const name = error.field
      if (!name) return
      const base = name.startsWith('property.') ? 'properties' : name.split(/[.[]/)[0]
      const control = form.querySelector(`[name="${CSS.escape(base)}"]`)
      if (control) {
        control.setAttribute('aria-invalid', 'true')
        control.focus()
      }
    },
    clear () {
      box.hidden = true
      box.removeAttribute('role')
      box.replaceChildren()
    }
  }
}

/**
 * A modal `<dialog>` with `content`, a confirm and a cancel button; resolves
 * to true when confirmed. Escape cancels; focus returns where it was.
 */
export function confirmDialog ({ title, content, confirmLabel, danger = false, onConfirm }) {
  return new Promise((resolve) => {
    const returnFocus = document.activeElement
    const titleId = uid('dialog-title')
    const problem = messageBox()
    const confirm = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, confirmLabel)
    const dialog = h('dialog', { 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        content,
        problem.element,
        h('div', { class: 'actions' },
          confirm,
          button('Cancel', () => dialog.close('cancel')))))
    let confirmed = false
    dialog.querySelector('form').addEventListener('submit', async (event) => {
      event.preventDefault()
      if (onConfirm) {
        confirm.disabled = true
        try {
          await onConfirm()
        } catch (error) {
          problem.show(error.describe ? error.describe() : String(error.message || error))
          confirm.disabled = false
          return
        }
      }
      confirmed = true
      dialog.close('confirm')
    })
    dialog.addEventListener('close', () => {
      dialog.remove()
      if (returnFocus && returnFocus.isConnected) returnFocus.focus()
      resolve(confirmed)
    })
    document.body.append(dialog)
    dialog.showModal()
  })
}

/** A table of `rows` with `columns` ([header, row => cell]) and a caption. */
export function table (caption, columns, rows, attributes = {}) {
  return h('table', attributes,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(([header]) => h('th', { scope: 'col' }, header)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row)))))))
}
