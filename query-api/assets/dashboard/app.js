// The dashboard: a hash router over the pages, the top bar (pages the role
// may use, the project switcher, who is signed in) and the session's start
// and end. Each page is `render(container, params) -> cleanup?`.

import { currentUser, post, whenRefused, whenSignedOut } from './api.js'
import { announce, button, field, h, replace, select } from './dom.js'
import { can, choose, projects, roleIn, roleLabel, session, signIn, signOut } from './session.js'
import * as account from './pages/account.js'
import * as events from './pages/events.js'
import * as keys from './pages/keys.js'
import * as login from './pages/login.js'
import * as metrics from './pages/metrics.js'
import * as overview from './pages/overview.js'
import * as users from './pages/users.js'
import * as webhooks from './pages/webhooks.js'

/** Every page: its route, title, nav label, the role it needs and what it does (for refusals). */
const PAGES = [
  { route: 'overview', title: 'Overview', page: overview, needs: 'viewer', does: 'read this project' },
  { route: 'metrics', title: 'Metrics', page: metrics, needs: 'viewer', does: 'read this project' },
  { route: 'events', title: 'Events', page: events, needs: 'viewer', does: 'read this project' },
  { route: 'keys', title: 'API keys', page: keys, needs: 'developer', does: 'manage keys' },
  { route: 'webhooks', title: 'Webhooks', page: webhooks, needs: 'developer', does: 'manage webhooks' },
  { route: 'users', title: 'Users', page: users, needs: 'admin', does: 'manage users' },
  { route: 'account', title: 'Account', page: account, needs: null, nav: false }
]

const main = document.getElementById('main')
let cleanup = null

/** `#/metrics?interval=1m` → ['metrics', URLSearchParams]. */
function parseHash () {
  const hash = location.hash.replace(/^#\/?/, '')
  const [route, query = ''] = hash.split('?')
  return [route || 'overview', new URLSearchParams(query)]
}

function renderTop () {
  const top = document.getElementById('top')
  top.hidden = !session.user
  if (!session.user) return
  const [current] = parseHash()
  replace(document.getElementById('nav'), PAGES
    .filter((page) => page.nav !== false && (!page.needs || (session.project && can(page.needs))))
    .map((page) => h('li', {}, h('a', {
      href: `#/${page.route}`,
      'aria-current': page.route === current ? 'page' : null
    }, page.title))))
  replace(document.getElementById('project-switcher'), projectSwitcher())
  replace(document.getElementById('who'),
    h('span', { class: 'who', title: session.user.email }, session.user.email, ' ', h('span', { class: 'role' }, `(${roleLabel()})`)),
    h('a', { href: '#/account', 'aria-current': current === 'account' ? 'page' : null }, 'Account'),
    button('Sign out', signOutNow, { class: 'link' }))
}

/** A select of the user's projects, or for global admins a field naming any project. */
function projectSwitcher () {
  const own = projects()
  const onChange = (project) => {
    if (!project || project === session.project) return
    choose(project)
    announce(`Project ${project} selected`)
    route()
  }
  if (session.user.global_admin) {
    const input = h('input', { type: 'text', value: session.project || '', list: 'known-projects', size: 14, required: true, autocomplete: 'off' })
    return h('form', { class: 'switcher', onsubmit: (event) => { event.preventDefault(); onChange(input.value.trim()) } },
      field('Project', input),
      h('datalist', { id: 'known-projects' }, own.map((id) => h('option', { value: id }))),
      h('button', { type: 'submit' }, 'Open'))
  }
  if (own.length < 2) {
    return own.length ? h('span', { class: 'project' }, 'Project ', h('strong', {}, own[0])) : null
  }
  const chooser = select({ onchange: (event) => onChange(event.target.value) }, own, session.project)
  return h('div', { class: 'switcher' }, field('Project', chooser))
}

async function signOutNow () {
  try {
    await post('/v1/auth/logout')
  } catch {
    // The cookies are cleared on the server when it answers; either way the page forgets the user.
  }
  signOut()
  if (location.hash === '#/login') route()
  else location.hash = '#/login'
}

/** Shows the page the hash names: the login page without a session, a refusal without the role. */
function route () {
  if (cleanup) {
    cleanup()
    cleanup = null
  }
  const [name, params] = parseHash()
  renderTop()
  if (!session.user) {
    if (name !== 'login') {
      history.replaceState(null, '', `#/login${name && name !== 'overview' ? `?next=${encodeURIComponent(name)}` : ''}`)
    }
    show('Sign in', (container) => login.render(container, params, signedIn))
    return
  }
  if (name === 'login') {
    location.replace('#/overview')
    return
  }
  const page = PAGES.find((candidate) => candidate.route === name)
  if (!page) {
    show('Not found', (container) => replace(container, h('h1', {}, 'No such page'),
      h('p', {}, 'There is no page called “', name, '”. ', h('a', { href: '#/overview' }, 'Go to the overview'), '.')))
    return
  }
  if (page.needs && !session.project) {
    const sentence = session.user.global_admin
      ? h('p', { class: 'message message-info', role: 'status' }, 'Name a project in the field at the top to open its pages.')
      : h('p', { class: 'message message-error refusal', role: 'alert' },
        'You have no role in any project. Ask an admin of a project to add you; your account settings are under Account.')
    show(page.title, (container) => replace(container, h('h1', {}, page.title), sentence))
    return
  }
  if (page.needs && !can(page.needs)) {
    show(page.title, (container) => replace(container, h('h1', {}, page.title),
      h('p', { class: 'message message-error refusal', role: 'alert' },
        roleIn()
          ? `Your role (${roleLabel()}) cannot ${page.does} in project ${session.project}. `
          : `You have no role in project ${session.project} (any more). `,
        `Ask an admin of the project for the ${page.needs} role.`)))
    return
  }
  show(page.title, (container) => page.page.render(container, params))
}

function show (title, render) {
  document.title = `${title} · Sluice`
  const container = h('div', { class: 'page' })
  replace(main, container)
  const stop = render(container)
  cleanup = typeof stop === 'function' ? stop : null
  // Focus moves to the new page, unless the page chose a field (the login page's email).
  if (!container.contains(document.activeElement)) main.focus({ preventScroll: true })
  announce(title)
}

async function signedIn (user) {
  signIn(user)
  const [, params] = parseHash()
  const next = params.get('next')
  const target = `#/${next && PAGES.some((page) => page.route === next) ? next : 'overview'}`
  if (location.hash === target) route()
  else location.hash = target
}

whenSignedOut(() => {
  if (!session.user) return
  signOut()
  route()
})

/** What the page's role decisions rest on: the user's roles. */
const rolesOf = (user) => JSON.stringify([Boolean(user.global_admin),
  (user.roles || []).map((role) => `${role.project_id}:${role.role}`).sort()])

// A refusal may mean an admin changed or removed this person's role since
// the page loaded: read the roles again, and when they changed, show what
// they allow now (a page the role no longer allows is refused in words).
let checkingRoles = null
whenRefused(() => {
  if (!session.user || checkingRoles) return
  checkingRoles = (async () => {
    try {
      const user = await currentUser()
      if (!session.user) return
      if (!user) {
        signOut()
        route()
      } else if (rolesOf(user) !== rolesOf(session.user)) {
        // The project stays: its pages say what the new role allows there.
        session.user = user
        announce('Your roles changed')
        route()
      }
    } catch {
      // Nothing answered: the page already shows the refusal it got.
    } finally {
      checkingRoles = null
    }
  })()
})

async function start () {
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault()
    main.focus()
  })
  window.addEventListener('hashchange', route)
  let user = null
  try {
    user = await currentUser()
  } catch (error) {
    document.getElementById('booting').textContent = error.describe ? error.describe() : String(error)
    return
  }
  if (user) signIn(user)
  route()
}

start()
