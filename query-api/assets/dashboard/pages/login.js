// Sign in with an email and a password: `POST /v1/auth/login` sets the
// session cookies; the answer's user decides the pages.

import { post } from '../api.js'
import { field, h, messageBox, replace } from '../dom.js'

export function render (container, params, signedIn) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, autofocus: true })
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true })
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in')
  const problem = messageBox()
  const form = h('form', { class: 'login-form', onsubmit: onSubmit, 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to Sluice'),
    problem.element,
    field('Email', email),
    field('Password', password),
    h('div', { class: 'actions' }, submit))
  replace(container, h('div', { class: 'login' }, form,
    h('p', { class: 'hint' }, 'The API reference is at ', h('a', { href: 'docs' }, '/docs'), '.')))
  email.focus()

  async function onSubmit (event) {
    event.preventDefault()
    problem.clear()
    submit.disabled = true
    try {
      const answer = await post('/v1/auth/login', { email: email.value.trim(), password: password.value })
      await signedIn(answer.user)
    } catch (error) {
      problem.fail(error, { email: 'Email', password: 'Password' }, form)
      password.select()
      submit.disabled = false
    }
  }
}
