// The signed-in person: their roles, and a password change
// (`POST /v1/auth/password`).

import { post } from '../api.js'
import { field, h, messageBox, replace } from '../dom.js'
import { timeElement } from '../format.js'
import { session } from '../session.js'

const LABELS = { current_password: 'Current password', new_password: 'New password' }

export function render (container) {
  const user = session.user
  const current = h('input', { type: 'password', name: 'current_password', required: true, autocomplete: 'current-password' })
  const next = h('input', { type: 'password', name: 'new_password', required: true, autocomplete: 'new-password' })
  const again = h('input', { type: 'password', name: 'new_password_again', required: true, autocomplete: 'new-password' })
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Change password')
  const problem = messageBox()
  const form = h('form', { class: 'card create', 'aria-labelledby': 'password-title', onsubmit: onSubmit },
    h('h2', { id: 'password-title' }, 'Change your password'),
    problem.element,
    field('Current password', current),
    field('New password', next),
    field('New password again', again),
    h('div', { class: 'actions' }, submit))
  const roles = user.roles || []
  replace(container,
    h('h1', {}, 'Account'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Email'), h('dd', {}, user.email),
      h('dt', {}, 'Member since'), h('dd', {}, timeElement(user.created_at)),
      h('dt', {}, 'Roles'), h('dd', {}, user.global_admin
        ? 'global admin: every role in every project'
        : roles.length ? roles.map((role) => `${role.role} in ${role.project_id}`).join(', ') : 'none')),
    form)

  async function onSubmit (event) {
    event.preventDefault()
    problem.clear()
    if (next.value !== again.value) {
      problem.show('New password again: the two new passwords differ.')
      again.focus()
      return
    }
    submit.disabled = true
    try {
      await post('/v1/auth/password', { current_password: current.value, new_password: next.value })
      form.reset()
      problem.show('Your password was changed.', 'ok')
    } catch (error) {
      problem.fail(error, LABELS, form)
    } finally {
      submit.disabled = false
    }
  }
}
