// `/v1/live`: one WebSocket per page, authorized by the session cookie and
// scoped by the `sluice_project` cookie (browsers cannot set headers on
// WebSockets). Subscriptions are kept and sent again after a reconnect;
// before reconnecting, the session is checked (and refreshed if expired).

import { ensureSession } from './api.js'

export class LiveSocket {
  /**
   * `onUpdate(id, update)` for every push, `onState(state, detail)` with
   * state `connecting`, `open`, `closed` or `error` (detail says why).
   */
  constructor ({ onUpdate, onState }) {
    this.onUpdate = onUpdate
    this.onState = onState || (() => {})
    this.subscriptions = new Map()
    this.closed = false
    this.attempt = 0
    this.timer = null
    this.connect()
  }

  connect () {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    this.onState('connecting')
    const socket = new WebSocket(`${scheme}://${location.host}/v1/live`)
    this.socket = socket
    socket.addEventListener('open', () => {
      this.attempt = 0
      this.onState('open')
      for (const [id, subscription] of this.subscriptions) this.send({ action: 'subscribe', id, ...subscription })
    })
    socket.addEventListener('message', (event) => this.receive(event.data))
    socket.addEventListener('close', () => {
      if (this.closed || this.socket !== socket) return
      this.onState('closed', 'The live connection closed; reconnecting…')
      this.reconnect()
    })
  }

  async reconnect () {
    const delay = Math.min(15000, 1000 * 2 ** this.attempt++)
    try {
      // Refreshes an expired session, or ends it (to the login page).
      if (!(await ensureSession())) return
    } catch {
      // Nothing answered: try the socket again after the delay.
    }
    if (this.closed) return
    this.timer = setTimeout(() => this.connect(), delay)
  }

  receive (data) {
    let message
    try {
      message = JSON.parse(data)
    } catch {
      return
    }
    if (message.type === 'update') this.onUpdate(message.id, message)
    else if (message.type === 'error') this.onState('error', message.message || message.error)
    else if (message.type === 'lagged') this.onState('open', `skipped ${message.skipped} updates`)
  }

  send (message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message))
  }

  /** Subscribes `id` to a rolling `window` (`1m`) over `filters` ({type, source, status}). */
  subscribe (id, window, filters = {}) {
    const subscription = { window, filters }
    this.subscriptions.set(id, subscription)
    this.send({ action: 'subscribe', id, ...subscription })
  }

  unsubscribe (id) {
    if (this.subscriptions.delete(id)) this.send({ action: 'unsubscribe', id })
  }

  close () {
    this.closed = true
    clearTimeout(this.timer)
    if (this.socket) this.socket.close()
  }
}
