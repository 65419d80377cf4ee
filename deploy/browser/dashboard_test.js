// The query API's dashboard (/) in a real browser (Debian's chromium, driven
// by playwright-core), against the real services: sign in; a live tile
// changes within 2 s of events sent to the gateway over HTTP; a group-by
// draws a chart and a table, and its CSV link downloads those rows; the
// event explorer pages forwards and back; a key is created (shown once,
// accepted by the API), rotated and revoked (refused from then on); an
// access cookie that has ended is refreshed without signing out; an API
// error (webhooks without a destinations service) reads as a sentence; the
// project switcher changes what the admin's role allows; a viewer finds
// the management pages hidden and, opened directly, refused. No page logs
// a console error, except the API answers a step expects (the 401s of
// "who am I" and of the refresh before signing in, the 401 of a wrong
// password, ...), which Chromium logs as failed loads. Screenshots (1280×800) go to
// SLUICE_SCREENSHOTS.
//
// Run by `sluice-dev browser`, which starts the services, makes the key and
// the two users; by hand:
//   NODE_PATH=~/.cache/sluice/browser/node/node_modules \
//   SLUICE_QUERY_URL=http://127.0.0.1:8081 SLUICE_GATEWAY_URL=http://127.0.0.1:8080 \
//   SLUICE_BROWSER_KEY=KEY SLUICE_PROJECT=PROJECT SLUICE_OTHER_PROJECT=OTHER SLUICE_SCREENSHOTS=docs/screenshots \
//   SLUICE_ADMIN_EMAIL=… SLUICE_ADMIN_PASSWORD=… SLUICE_VIEWER_EMAIL=… SLUICE_VIEWER_PASSWORD=… \
//   SLUICE_GLOBAL_ADMIN_EMAIL=… SLUICE_GLOBAL_ADMIN_PASSWORD=… \
//   node deploy/browser/dashboard_test.js
const path = require('node:path')
const { chromium } = require('playwright-core')

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const base = env('SLUICE_QUERY_URL')
const gateway = env('SLUICE_GATEWAY_URL')
const key = env('SLUICE_BROWSER_KEY')
const project = env('SLUICE_PROJECT')
const otherProject = env('SLUICE_OTHER_PROJECT')
const shots = env('SLUICE_SCREENSHOTS')
const admin = { email: env('SLUICE_ADMIN_EMAIL'), password: env('SLUICE_ADMIN_PASSWORD') }
const viewer = { email: env('SLUICE_VIEWER_EMAIL'), password: env('SLUICE_VIEWER_PASSWORD') }
const globalAdmin = { email: env('SLUICE_GLOBAL_ADMIN_EMAIL'), password: env('SLUICE_GLOBAL_ADMIN_PASSWORD') }
const executablePath = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium'
const run = `browser-${Date.now()}`

const say = (line) => console.log(`browser: dashboard: ${line}`)

/**
 * Watches a page: page errors, console errors, failed requests and error
 * answers are problems unless the current step expects that answer
 * (`expect(status, pathname)`).
 */
function watch (page) {
  const problems = []
  const expected = []
  const isExpected = (status, url) => {
    const { pathname } = new URL(url)
    return expected.some((one) => one.status === status && one.pathname === pathname)
  }
  const answered = new Map()
  page.on('pageerror', (error) => problems.push(`page error: ${error.stack || error.message}`))
  page.on('requestfailed', (request) => {
    // Leaving a page cancels its live socket and pending loads; that is not a failure.
    if (request.failure()?.errorText === 'net::ERR_ABORTED') return
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`)
  })
  page.on('response', (response) => {
    answered.set(response.url(), response.status())
    if (response.status() >= 400 && !isExpected(response.status(), response.url())) {
      problems.push(`${response.status()} for ${response.request().method()} ${response.url()}`)
    }
  })
  page.on('console', (message) => {
    if (message.type() !== 'error') return
    const url = message.location()?.url
    // Chromium logs every error answer as a failed load; those the step expects are no problem.
    if (message.text().startsWith('Failed to load resource') && url && answered.has(url) &&
        isExpected(answered.get(url), url)) return
    problems.push(`console error: ${message.text()} (${url || 'no location'})`)
  })
  return {
    problems,
    expect (status, pathname) {
      expected.push({ status, pathname })
    },
    check (step) {
      if (problems.length) throw new Error(`${step}:\n  ${problems.join('\n  ')}`)
      expected.length = 0
    }
  }
}

const shot = (page, name) => page.screenshot({ path: path.join(shots, `dashboard-${name}.png`) })

/** Sends `events` to the gateway over HTTP with the key; resolves when it accepted them. */
async function send (events) {
  const response = await fetch(`${gateway}/v1/events/batch`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ events })
  })
  if (response.status !== 202) throw new Error(`the gateway answered ${response.status}: ${await response.text()}`)
}

/** N events of a few types, statuses and users, tagged with this run. */
function batch (n, offset) {
  const types = ['page_view', 'click', 'purchase']
  return Array.from({ length: n }, (_, i) => ({
    event_id: `${run}-${offset + i}`,
    type: types[(offset + i) % types.length],
    user_id: `user-${(offset + i) % 9}`,
    session_id: `session-${(offset + i) % 4}`,
    source: (offset + i) % 2 ? 'web' : 'ios',
    status: (offset + i) % 10 === 0 ? '500' : '200',
    duration_ms: 20 + ((offset + i) * 37) % 400,
    tags: [run],
    properties: { plan: (offset + i) % 3 ? 'pro' : 'free' }
  }))
}

/**
 * Signs in by the labelled fields, or with the keyboard alone (the email
 * field has focus; Tab, Enter); then waits for `landing`, by default the
 * overview.
 */
async function signIn (page, person, { keyboard = false, landing = /^Overview of/ } = {}) {
  if (keyboard) {
    await page.getByLabel('Email').waitFor()
    await page.keyboard.type(person.email)
    await page.keyboard.press('Tab')
    await page.keyboard.type(person.password)
    await page.keyboard.press('Enter')
  } else {
    await page.getByLabel('Email').fill(person.email)
    await page.getByLabel('Password').fill(person.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
  }
  await page.getByRole('heading', { name: landing }).waitFor()
}

/** Opens the explorer `name` from the navigation, filtered to this run's events. */
async function openExplorer (page, name) {
  await page.getByRole('link', { name }).click()
  await page.getByRole('heading', { name }).waitFor()
  await page.getByLabel('Time range').selectOption('15m')
  await page.getByLabel('Tag').fill(run)
}

/** What a page without a session asks first: who am I (401), and a refresh of the session (401). */
const SIGNED_OUT = [[401, '/v1/auth/me'], [401, '/v1/auth/refresh']]

/**
 * A fresh browser context (no session) at the dashboard, 1280×800; the
 * watcher expects the answers of SIGNED_OUT, and `expected`.
 */
async function openDashboard (browser, expected = []) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  context.setDefaultTimeout(20000)
  const page = await context.newPage()
  const watcher = watch(page)
  for (const [status, pathname] of [...SIGNED_OUT, ...expected]) watcher.expect(status, pathname)
  await page.goto(`${base}/`)
  return { context, page, watcher }
}

async function asAdmin (browser) {
  // The login page; a wrong password is a message, not an error page.
  const { context, page, watcher } = await openDashboard(browser, [[401, '/v1/auth/login']])
  await page.getByRole('heading', { name: 'Sign in to Sluice' }).waitFor()
  await shot(page, 'login')
  await page.getByLabel('Email').fill(admin.email)
  await page.getByLabel('Password').fill(`${admin.password}-wrong`)
  await page.getByRole('button', { name: 'Sign in' }).click()
  const refusal = await page.getByRole('alert').innerText()
  if (!refusal.trim()) throw new Error('a wrong password showed no message')
  say(`a wrong password says: ${refusal.trim()}`)
  await signIn(page, admin)
  // The admin has roles in two projects: the switcher picks this one.
  await page.getByLabel('Project', { exact: true }).selectOption(project)
  await page.getByRole('heading', { name: `Overview of ${project}` }).waitFor()
  watcher.check('signing in')

  // Live tiles: warm the pipeline up, then time one batch.
  await page.locator('.connection[data-state="open"]').waitFor()
  const count = page.locator('[data-tile="count"]')
  await send(batch(30, 0))
  await page.waitForFunction(() => Number(document.querySelector('[data-tile="count"]').textContent.replace(/\D/g, '')) >= 30, null, { timeout: 30000 })
  const before = await count.innerText()
  const sent = Date.now()
  await send(batch(30, 30))
  await page.waitForFunction((old) => document.querySelector('[data-tile="count"]').textContent !== old, before, { timeout: 10000 })
  const took = Date.now() - sent
  const after = await count.innerText()
  if (took > 2000) throw new Error(`the events tile changed ${took} ms after the events were sent (more than 2 s)`)
  say(`the events tile went from ${before} to ${after} ${took} ms after 30 events were sent to the gateway`)
  await page.waitForTimeout(300)
  await shot(page, 'overview')
  watcher.check('the overview')

  // The metrics explorer: a group-by draws a chart and a table.
  await openExplorer(page, 'Metrics')
  await page.getByLabel('Group by').fill('type')
  const results = page.locator('section.results')
  for (let attempt = 0; ; attempt++) {
    await page.getByRole('button', { name: 'Run' }).click()
    await page.locator('section.results[aria-busy="false"]').waitFor()
    await results.locator('table.data, .empty').first().waitFor()
    // Every event of the run stored: 3 types, 60 events.
    const types = await results.locator('table.data tbody tr td:nth-child(2)').allInnerTexts()
    const counts = await results.locator('table.data tbody tr td:nth-child(3)').allInnerTexts()
    const total = counts.reduce((sum, text) => sum + Number(text.replace(/\D/g, '')), 0)
    if (new Set(types).size === 3 && total === 60) break
    if (attempt > 30) throw new Error(`the group-by by type showed ${JSON.stringify(types)} with ${total} events, not the 60 of 3 types sent`)
    await page.waitForTimeout(1000)
  }
  await results.locator('.uplot canvas').first().waitFor()
  const legend = await results.locator('.u-legend').innerText()
  for (const type of ['page_view', 'click', 'purchase']) {
    if (!legend.includes(type)) throw new Error(`the chart's legend lacks ${type}: ${legend}`)
  }
  const csvLink = results.getByRole('link', { name: /CSV/ })
  const href = await csvLink.getAttribute('href')
  const csv = await page.request.get(new URL(href, base).toString())
  const csvText = await csv.text()
  if (csv.status() !== 200 || !csvText.startsWith('bucket,type,')) {
    throw new Error(`the CSV link ${href} answered ${csv.status()}: ${csvText.slice(0, 200)}`)
  }
  const csvRows = csvText.trim().split(/\r?\n/).length - 1
  const tableRows = await results.locator('table.data tbody tr').count()
  if (csvRows !== tableRows) throw new Error(`the CSV has ${csvRows} rows, the table ${tableRows}`)
  say(`group-by type: chart and table of ${tableRows} rows; the CSV link has the same ${csvRows} rows`)
  await page.evaluate(() => document.querySelector('.results-head').scrollIntoView())
  await shot(page, 'metrics')
  watcher.check('the metrics explorer')

  // The event explorer: 60 events of this run, 25 a page.
  await openExplorer(page, 'Events')
  await page.getByLabel('Events per page').selectOption('25')
  await page.getByRole('button', { name: 'Show events' }).click()
  const older = page.getByRole('button', { name: 'Older →' })
  const newer = page.getByRole('button', { name: '← Newer' })
  const ids = () => page.locator('table.events tbody summary code').allInnerTexts()
  await page.getByText('Page 1: events 1–25').waitFor()
  const first = await ids()
  await older.click()
  await page.getByText('Page 2: events 26–50').waitFor()
  const second = await ids()
  await older.click()
  await page.getByText('Page 3: events 51–60').waitFor()
  if (!(await older.isDisabled())) throw new Error('the last page still offers older events')
  await newer.click()
  await page.getByText('Page 2: events 26–50').waitFor()
  const again = await ids()
  if (first.length !== 25 || second.length !== 25 || first.some((id) => second.includes(id)) ||
      JSON.stringify(again) !== JSON.stringify(second)) {
    throw new Error(`paging went wrong: ${first.length} then ${second.length} events, back to ${again.length}`)
  }
  await page.locator('table.events tbody summary').first().click()
  await shot(page, 'events')
  say('events: 60 in pages of 25, 25 and 10, forwards and back without repeats')
  watcher.check('the event explorer')

  // The access cookie ends with its token (Max-Age, 15 minutes): the next
  // request is refused, the dashboard refreshes the session with the
  // refresh cookie and sends it again, and the person stays signed in.
  await context.clearCookies({ name: 'sluice_access' })
  watcher.expect(401, '/v1/keys')
  // Keys: create one (shown once, accepted by the API), rotate it (both
  // work until the old one's grace ends), revoke the old one.
  await page.getByRole('link', { name: 'API keys' }).click()
  await page.getByRole('heading', { name: /^API keys of/ }).waitFor()
  await page.locator('table.keys').waitFor()
  if (!(await context.cookies()).some((cookie) => cookie.name === 'sluice_access')) {
    throw new Error('the session was not refreshed after the access cookie ended')
  }
  say('an ended access cookie: the session was refreshed and the keys page loaded')
  const label = `dashboard ${run}`
  await page.getByLabel('Label').fill(label)
  await page.getByLabel('Expires (optional)').fill(new Date(Date.now() + 7 * 86400e3).toISOString().slice(0, 16))
  await page.getByRole('button', { name: 'Create key' }).click()
  const secret = page.locator('[data-secret="key"]')
  const created = (await secret.innerText()).trim()
  const row = page.locator('table.keys tbody tr', { hasText: label })
  await row.waitFor()
  const createdBy = await row.locator('td').nth(5).innerText()
  const expires = await row.locator('td').nth(6).innerText()
  if (!createdBy.includes(admin.email) || expires.includes('never')) {
    throw new Error(`the new key's row shows creator ${createdBy} and expiry ${expires}`)
  }
  await shot(page, 'keys')
  await waitForStatus(created, 200, 'the new key')
  await page.getByRole('button', { name: 'I have copied it' }).click()
  const oldRow = page.locator(`table.keys tbody tr[data-key-id="${await row.getAttribute('data-key-id')}"]`)

  await oldRow.getByRole('button', { name: /^Rotate/ }).click()
  const dialog = page.locator('dialog')
  await dialog.getByLabel('Old key valid until').waitFor()
  await dialog.getByRole('button', { name: 'Rotate' }).click()
  await page.locator('.revealed', { hasText: 'was rotated' }).waitFor()
  const successor = (await secret.innerText()).trim()
  if (successor === created) throw new Error('rotating showed the old key again')
  await oldRow.locator('.badge', { hasText: 'rotated' }).waitFor()
  await waitForStatus(successor, 200, 'the successor')
  await waitForStatus(created, 200, 'the rotated key within its grace')
  await page.getByRole('button', { name: 'I have copied it' }).click()

  await oldRow.getByRole('button', { name: /^Revoke/ }).click()
  await dialog.getByRole('button', { name: 'Revoke' }).click()
  await page.locator('.message-ok', { hasText: 'was revoked' }).waitFor()
  await oldRow.locator('.badge', { hasText: 'revoked' }).waitFor()
  await waitForStatus(created, 401, 'the revoked key')
  await waitForStatus(successor, 200, 'the successor after the old key was revoked')
  say('keys: created (the API accepts it), rotated (both work), the old one revoked (the API refuses it, the successor works)')
  watcher.check('key management')

  await page.getByRole('link', { name: 'Users' }).click()
  await page.locator('table.data', { hasText: viewer.email }).waitFor()
  await shot(page, 'users')
  watcher.check('user management')

  // This run starts no destinations service: the webhooks page shows the API's message, in words.
  watcher.expect(404, '/v1/webhooks')
  await page.getByRole('link', { name: 'Webhooks' }).click()
  const unconfigured = await page.getByRole('alert').innerText()
  if (!unconfigured.includes('destinations service')) throw new Error(`the webhooks page without destinations says: ${unconfigured}`)
  say(`webhooks without a destinations service: "${unconfigured.trim()}"`)
  watcher.check('the webhooks page')

  // In the other project the admin is a viewer: the page they are on is refused, the nav shrinks.
  await page.getByLabel('Project', { exact: true }).selectOption(otherProject)
  await page.locator('.refusal', { hasText: `Your role (viewer) cannot manage webhooks in project ${otherProject}` }).waitFor()
  const nav = await page.getByRole('navigation', { name: 'Pages' }).innerText()
  if (nav.includes('API keys') || nav.includes('Users')) throw new Error(`in ${otherProject} the navigation still offers: ${nav}`)
  await page.getByRole('link', { name: 'Overview' }).click()
  await page.getByRole('heading', { name: `Overview of ${otherProject}` }).waitFor()
  say(`project switcher: in ${otherProject} the admin is a viewer, and the management pages go`)
  watcher.check('the project switcher')

  for (const [status, pathname] of SIGNED_OUT) watcher.expect(status, pathname)
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in to Sluice' }).waitFor()
  await page.reload()
  await page.getByRole('heading', { name: 'Sign in to Sluice' }).waitFor()
  watcher.check('signing out')
  await context.close()
}

/** Polls `GET /v1/status` with `candidate` as the key until it answers `status` (keys propagate in about a second). */
async function waitForStatus (candidate, status, what) {
  let last = null
  for (let attempt = 0; attempt < 40; attempt++) {
    const response = await fetch(`${base}/v1/status`, { headers: { Authorization: `Bearer ${candidate}` } })
    last = response.status
    if (last === status) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`${what}: GET /v1/status answered ${last}, not ${status}`)
}

async function asViewer (browser) {
  const { context, page, watcher } = await openDashboard(browser)
  await signIn(page, viewer, { keyboard: true })
  const nav = await page.getByRole('navigation', { name: 'Pages' }).innerText()
  for (const hidden of ['API keys', 'Webhooks', 'Users']) {
    if (nav.includes(hidden)) throw new Error(`a viewer's navigation offers ${hidden}: ${nav}`)
  }
  for (const [route, sentence] of [['keys', 'cannot manage keys'], ['webhooks', 'cannot manage webhooks'], ['users', 'cannot manage users']]) {
    await page.goto(`${base}/#/${route}`)
    const refusal = page.locator('.refusal')
    await refusal.waitFor()
    const text = await refusal.innerText()
    if (!text.includes('Your role (viewer)') || !text.includes(sentence)) throw new Error(`#/${route} for a viewer says: ${text}`)
    if (route === 'keys') await shot(page, 'viewer-refused')
  }
  // The API refuses too, whatever the page shows.
  const keys = await page.request.get(`${base}/v1/keys`, { headers: { 'X-Sluice-Project': project } })
  if (keys.status() !== 403) throw new Error(`GET /v1/keys as a viewer answered ${keys.status()}, not 403`)
  await page.goto(`${base}/#/overview`)
  await page.getByRole('heading', { name: /^Overview of/ }).waitFor()
  watcher.check('the viewer')
  say('viewer: signed in by keyboard; keys, webhooks and users are not in the navigation and refused when opened; the API answers 403')
  await context.close()
}

/** A global admin has no role anywhere: they name a project, and may do everything there. */
async function asGlobalAdmin (browser) {
  const { context, page, watcher } = await openDashboard(browser)
  await signIn(page, globalAdmin, { landing: 'Overview' })
  await page.getByText('Name a project in the field at the top').waitFor()
  await page.getByLabel('Project', { exact: true }).fill(project)
  await page.getByRole('button', { name: 'Open' }).click()
  await page.getByRole('heading', { name: `Overview of ${project}` }).waitFor()
  const nav = await page.getByRole('navigation', { name: 'Pages' }).innerText()
  for (const offered of ['API keys', 'Webhooks', 'Users']) {
    if (!nav.includes(offered)) throw new Error(`a global admin's navigation lacks ${offered}: ${nav}`)
  }
  await page.getByRole('link', { name: 'Users' }).click()
  await page.locator('table.data', { hasText: admin.email }).waitFor()
  watcher.check('the global admin')
  say(`global admin: named project ${project} and manages its users`)
  await context.close()
}

async function main () {
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  try {
    await asAdmin(browser)
    await asViewer(browser)
    await asGlobalAdmin(browser)
  } finally {
    await browser.close()
  }
  say('passed')
}

main().catch((error) => {
  console.error(`browser: dashboard: FAILED: ${error.stack || error}`)
  process.exit(1)
})
