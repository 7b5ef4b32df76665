/**
 * Remembers values by idempotency key for a fixed time, at most `maxEntries` of them and
 * at most `maxBytes` as their sizes are told (the oldest go first), so a flood of keys or
 * of large answers cannot grow memory without bound. Entries expire in the order they
 * were made, so a sweep stops at the first live one.
 */
export class IdempotencyCache<V> {
  readonly #entries = new Map<string, { value: V, expiresAt: number, bytes: number }>()
  #bytes = 0

  readonly maxEntries: number
  readonly maxBytes: number

  constructor (readonly ttlMs: number, limits: { maxEntries?: number, maxBytes?: number } = {}) {
    this.maxEntries = limits.maxEntries ?? 100_000
    this.maxBytes = limits.maxBytes ?? Number.POSITIVE_INFINITY
  }

  get (key: string): V | undefined {
    this.#sweep()
    return this.#entries.get(key)?.value
  }

  set (key: string, value: V): void {
    this.delete(key)
    this.#entries.set(key, { value, expiresAt: Date.now() + this.ttlMs, bytes: 0 })
    if (this.#entries.size > this.maxEntries) this.delete(this.#entries.keys().next().value as string)
  }

  /** Tells the size of `key`'s value once it is known (a run's answer, once it ends). */
  weigh (key: string, value: V, bytes: number): void {
    const entry = this.#entries.get(key)
    if (entry?.value !== value) return
    // One value past the whole budget would push out every other: it alone goes.
    if (bytes > this.maxBytes) return this.delete(key)
    this.#bytes += bytes - entry.bytes
    entry.bytes = bytes
    // The oldest answers go first; a run still going (no size yet) stays, or a repeat of it
    // would have nothing here to wait on.
    for (const [other, { bytes }] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break
      if (bytes > 0) this.delete(other)
    }
  }

  delete (key: string): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    this.#bytes -= entry.bytes
    this.#entries.delete(key)
  }

  #sweep (): void {
    const now = Date.now()
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) return
      this.delete(key)
    }
  }
}
