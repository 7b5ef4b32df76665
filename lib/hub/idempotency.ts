/**
 * Remembers values by idempotency key for a fixed time, and at most `maxEntries` of
 * them (the oldest go first), so a flood of keys cannot grow memory without bound.
 * Entries expire in the order they were made, so a sweep stops at the first live one.
 */
export class IdempotencyCache<V> {
  readonly #entries = new Map<string, { value: V, expiresAt: number }>()

  constructor (readonly ttlMs: number, readonly maxEntries = 100_000) {}

  get (key: string): V | undefined {
    this.#sweep()
    return this.#entries.get(key)?.value
  }

  set (key: string, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, { value, expiresAt: Date.now() + this.ttlMs })
    if (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value as string)
  }

  delete (key: string): void {
    this.#entries.delete(key)
  }

  #sweep (): void {
    const now = Date.now()
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) return
      this.#entries.delete(key)
    }
  }
}
