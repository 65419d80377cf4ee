// /docs of the query API and of the gateway in a real browser (Debian's
// chromium, driven by playwright-core): the page loads without console
// errors, takes a key under "Authorize", sends a request with "Try it out"
// and shows the service's answer; the key survives a reload. Screenshots go
// to SLUICE_SCREENSHOTS.
//
// Run by `sluice-dev browser` (and the test matrix's browser step), which
// starts the services and makes the key; by hand:
//   NODE_PATH=~/.cache/sluice/browser/node/node_modules \
//   SLUICE_QUERY_URL=http://127.0.0.1:8081 SLUICE_GATEWAY_URL=http://127.0.0.1:8080 \
//   SLUICE_BROWSER_KEY=KEY SLUICE_SCREENSHOTS=docs/screenshots node deploy/browser/docs_test.js
const path = require('node:path')
const { chromium } = require('playwright-core')

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const key = env('SLUICE_BROWSER_KEY')
const shots = env('SLUICE_SCREENSHOTS')
const executablePath = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium'

// Opens BASE/docs, authorizes with the key, runs METHOD PATH (with BODY as
// its JSON body) and expects STATUS; then reloads and runs it again, which
// only passes when the key was kept.
async function tryItOut (context, { name, base, method, route, body, status }) {
  const page = await context.newPage()
  const problems = []
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`)
  })
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure().errorText}`))
  page.on('response', (response) => {
    // The request under test may answer 4xx in a failure; everything the
    // page itself loads must succeed.
    if (response.status() >= 400 && !response.url().includes(route)) {
      problems.push(`${response.status()} for ${response.url()}`)
    }
  })

  await page.goto(`${base}/docs`)
  await page.locator('.swagger-ui .information-container .title').waitFor()
  await page.screenshot({ path: path.join(shots, `${name}-docs.png`) })

  await page.locator('.auth-wrapper button.authorize').click()
  const scheme = page.locator('.auth-container', { hasText: 'Bearer' })
  await scheme.locator('input').fill(key)
  await scheme.locator('button.authorize').click()
  await scheme.locator('button.btn-done').click()
  await page.locator('.auth-wrapper button.authorize.locked').waitFor()

  const operation = page.locator(`.opblock-${method}`, { has: page.locator(`.opblock-summary [data-path="${route}"]`) }).first()
  const execute = async () => {
    if (!(await operation.locator('.execute').isVisible())) {
      await operation.locator('.opblock-summary').click()
    }
    if (body !== undefined) await operation.locator('textarea.body-param__text').fill(JSON.stringify(body))
    await operation.locator('.execute').click()
    const answer = operation.locator('.live-responses-table .response .response-col_status')
    await answer.waitFor()
    const shown = (await answer.innerText()).trim()
    if (!shown.startsWith(String(status))) {
      const text = await operation.locator('.live-responses-table').innerText()
      throw new Error(`${name}: ${method.toUpperCase()} ${route} answered ${shown}, not ${status}:\n${text}`)
    }
  }
  await execute()
  await operation.locator('.live-responses-table').scrollIntoViewIfNeeded()
  await page.screenshot({ path: path.join(shots, `${name}-docs-try-it-out.png`) })

  // persistAuthorization: after a reload the key is still there.
  await page.reload()
  await page.locator('.auth-wrapper button.authorize.locked').waitFor()
  await execute()

  await page.close()
  if (problems.length) throw new Error(`${name}: ${problems.join('\n')}`)
  console.log(`browser: ${name} /docs: ${method.toUpperCase()} ${route} answered ${status} through "Try it out", no console errors`)
}

async function main () {
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    context.setDefaultTimeout(20000)
    await tryItOut(context, {
      name: 'query-api', base: env('SLUICE_QUERY_URL'), method: 'get', route: '/v1/status', status: 200
    })
    await tryItOut(context, {
      name: 'gateway',
      base: env('SLUICE_GATEWAY_URL'),
      method: 'post',
      route: '/v1/events',
      body: { type: 'docs_try_it_out', user_id: 'browser-test', properties: { from: '/docs' } },
      status: 202
    })
  } finally {
    await browser.close()
  }
}

main().catch((error) => {
  console.error(`browser: FAILED: ${error.stack || error}`)
  process.exit(1)
})
