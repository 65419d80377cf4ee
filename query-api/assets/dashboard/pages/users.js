// The project's users (admins): list, add with a role, change a role,
// remove from the project.

import { patch, post, remove } from '../api.js'
import { announce, button, confirmDialog, field, h, messageBox, replace, select } from '../dom.js'
import { timeElement } from '../format.js'
import { submitCreate, tableLoader } from '../manage.js'
import { ROLES, session } from '../session.js'

const LABELS = { email: 'Email', password: 'Password', role: 'Role' }

export function render (container) {
  const problem = messageBox()
  const listBox = h('section', { class: 'results', 'aria-labelledby': 'users-title' })
  const load = tableLoader(listBox, {
    path: '/v1/users',
    field: 'users',
    headers: ['Email', 'Role', 'Added', 'Actions'],
    row,
    sort: (users) => users.sort((a, b) => a.email.localeCompare(b.email)),
    caption: (users) => `${users.length} users`,
    empty: 'Nobody has a role in this project yet.'
  })
  replace(container,
    h('h1', {}, 'Users of ', h('span', { class: 'project-name' }, session.project)),
    problem.element,
    addForm(),
    h('h2', { id: 'users-title' }, 'Users'),
    listBox)
  load()

  function addForm () {
    const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off' })
    const password = h('input', { type: 'password', name: 'password', required: true, autocomplete: 'new-password' })
    const role = select({ name: 'role' }, ROLES, 'viewer')
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Add user')
    const form = h('form', { class: 'card create', 'aria-labelledby': 'add-user-title', onsubmit: onAdd },
      h('h2', { id: 'add-user-title' }, 'Add a user to this project'),
      h('div', { class: 'create-row' },
        field('Email', email),
        field('Initial password', password, 'they can change it under Account'),
        field('Role', role, 'viewer reads data; developer also manages keys and webhooks; admin also users')),
      h('div', { class: 'actions' }, submit))

    async function onAdd (event) {
      event.preventDefault()
      problem.clear()
      const person = { email: email.value.trim(), password: password.value, role: role.value }
      await submitCreate({
        form,
        submit,
        problem,
        labels: LABELS,
        send: () => post('/v1/users', person),
        done: () => problem.show(`${person.email} was added as ${person.role}.`, 'ok'),
        reload: load
      })
    }
    return form
  }

  function row (user) {
    const role = select({ 'aria-label': `Role of ${user.email}` }, ROLES, user.role)
    const isSelf = user.user_id === session.user.user_id
    return h('tr', {},
      h('td', {}, user.email, isSelf ? ' (you)' : ''),
      h('td', {}, role, ' ', button('Save role', () => changeRole(user, role.value), { 'aria-label': `Save the role of ${user.email}` })),
      h('td', {}, timeElement(user.created_at)),
      h('td', { class: 'row-actions' },
        button('Remove', () => removeUser(user), { class: 'danger', 'aria-label': `Remove ${user.email} from the project` })))
  }

  async function changeRole (user, role) {
    problem.clear()
    try {
      await patch(`/v1/users/${encodeURIComponent(user.user_id)}`, { role })
      problem.show(`${user.email} is now ${role}.`, 'ok')
      announce(`${user.email} is now ${role}`)
      await load()
    } catch (error) {
      problem.fail(error, LABELS)
    }
  }

  async function removeUser (user) {
    const done = await confirmDialog({
      title: `Remove ${user.email}?`,
      content: h('p', {}, `${user.email} loses their role in project ${session.project}; their sessions stop working here within seconds.`),
      confirmLabel: 'Remove',
      danger: true,
      onConfirm: () => remove(`/v1/users/${encodeURIComponent(user.user_id)}`)
    })
    if (!done) return
    problem.show(`${user.email} was removed from the project.`, 'ok')
    await load()
  }
}
