// Segment's, RudderStack's and Jitsu's Node SDKs, as applications use them.
// Event types carry the run's tag so the check can find them.
const [gateway, key, tag] = process.argv.slice(2)

async function segment () {
  const { Analytics } = require('@segment/analytics-node')
  const errors = []
  const client = new Analytics({ writeKey: key, host: gateway, flushAt: 2, maxRetries: 1 })
  client.on('error', (error) => errors.push(String(error.reason || error)))
  client.track({ userId: 'sdk-user', event: `${tag} segment-node track`, properties: { items: [{ sku: 'a' }] } })
  client.page({ userId: 'sdk-user', name: `${tag} segment-node page` })
  client.track({ anonymousId: 'sdk-anon', event: `${tag} segment-node anonymous` })
  await client.closeAndFlush({ timeout: 10000 })
  if (errors.length) throw new Error(`@segment/analytics-node: ${errors.join('; ')}`)
}

async function rudderstack () {
  const Analytics = require('@rudderstack/rudder-sdk-node')
  const client = new Analytics(key, { dataPlaneUrl: gateway, flushAt: 2, logLevel: 'error' })
  client.track({ userId: 'sdk-user', event: `${tag} rudderstack-node track`, properties: { revenue: 5 } })
  client.track({ anonymousId: 'sdk-anon', event: `${tag} rudderstack-node anonymous` })
  await new Promise((resolve, reject) =>
    client.flush((error) => (error ? reject(new Error(`@rudderstack/rudder-sdk-node: ${error}`)) : resolve())))
}

async function jitsu () {
  const { jitsuAnalytics } = require('@jitsu/js')
  // Jitsu insists on id:secret; the gateway reads the secret as the key.
  const client = jitsuAnalytics({ host: gateway, writeKey: `sdk-check:${key}`, errorPolicy: 'rethrow' })
  await client.track(`${tag} jitsu track`, { revenue: 7 })
  await client.identify('sdk-user', { plan: 'pro' })
}

(async () => {
  for (const run of [segment, rudderstack, jitsu]) await run()
})().catch((error) => {
  console.error(error.message)
  process.exit(1)
})
