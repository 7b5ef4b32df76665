/**
 * Remembers values by idempotency key for a fixed time. Entries expire in the order
 * they were made, so a sweep stops at the first live one.
 */
export class IdempotencyCache<V> {
  readonly #entries = new Map<string, { value: V, expiresAt: number }>()

  constructor (readonly ttlMs: number) {}

  get (key: string): V | undefined {
    this.#sweep()
    return this.#entries.get(key)?.value
  }

  set (key: string, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, { value, expiresAt: Date.now() + this.ttlMs })
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
