import type { Redis } from 'ioredis'

// The one subscriber connection of a process: a channel per session some part of this
// process needs (a listener, a waiting turn, a held lane), joined once however many need
// it. ioredis subscribes again by itself after a reconnect; we are told, so every session
// can be checked for what it missed while the connection was down.

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
      events.resubscribed()
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
      joining.catch(() => this.#joined.delete(channel))
    }
    await joining
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
