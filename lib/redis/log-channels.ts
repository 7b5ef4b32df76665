import type { Redis } from 'ioredis'

// The one subscriber connection of a process: a channel per session some part of this
// process needs (a listener, a waiting turn, a held lane), joined once however many need
// it. After a reconnect we join them again ourselves (ioredis's own resubscribe leaves a
// promise nobody awaits, which rejects unhandled if the connection closes before Redis
// answers), and once Redis confirmed, every session is checked for what it missed.

export interface ChannelEvents {
  message: (channel: string, message: string) => void
  /** The connection came back after a loss: messages may have been missed. */
  resubscribed: () => void
}

export class LogChannels {
  readonly #subscriber: Redis
  readonly #sharded: boolean
  readonly #joined = new Map<string, Promise<unknown>>()
  #lost = false

  constructor (subscriber: Redis, sharded: boolean, events: ChannelEvents) {
    this.#subscriber = subscriber
    this.#sharded = sharded
    subscriber.on(sharded ? 'smessage' : 'message', events.message)
    subscriber.on('close', () => { this.#lost = true })
    subscriber.on('ready', () => {
      if (!this.#lost) return
      this.#lost = false
      void this.#rejoin().then(() => { events.resubscribed() })
    })
    // A subscriber that cannot connect is retried by ioredis; its errors are not ours to throw.
    subscriber.on('error', () => {})
  }

  /** Subscribes to `channel` (once); settles when Redis confirmed it. */
  async join (channel: string): Promise<void> {
    let joining = this.#joined.get(channel)
    if (joining === undefined) {
      joining = this.#sharded ? this.#subscriber.ssubscribe(channel) : this.#subscriber.subscribe(channel)
      this.#joined.set(channel, joining)
      joining.catch(() => {
        // Only its own entry: a later join or rejoin of the channel may have replaced it (not
        // to be staged from outside: it needs a reply to fail after the connection came back).
        /* c8 ignore next */
        if (this.#joined.get(channel) === joining) this.#joined.delete(channel)
      })
    }
    await joining
  }

  /** Joins every channel again that was joined before the connection was lost. */
  async #rejoin (): Promise<void> {
    const channels = [...this.#joined.keys()]
    if (channels.length === 0) return
    // One SUBSCRIBE for all; SSUBSCRIBE one by one (on a Cluster, channels of several slots may not share one).
    const asked = this.#sharded ? channels.map(channel => this.#subscriber.ssubscribe(channel)) : [this.#subscriber.subscribe(...channels)]
    // Lost again before Redis answered: the next reconnect joins them again.
    const again = Promise.all(asked).then(() => {}, () => {})
    for (const channel of channels) this.#joined.set(channel, again)
    await again
  }

  leave (channel: string): void {
    if (!this.#joined.delete(channel)) return
    const leaving = this.#sharded ? this.#subscriber.sunsubscribe(channel) : this.#subscriber.unsubscribe(channel)
    leaving.catch(() => {})
  }

  async close (): Promise<void> {
    await this.#subscriber.quit().catch(() => {})
  }
}
