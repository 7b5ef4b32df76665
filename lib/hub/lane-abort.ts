// What a lane needs to tell its turn to stop: a flag and one listener, cheaper than an
// AbortController per turn (a lane is made for every turn).

export class LaneAbort {
  #aborted = false
  #listener: (() => void) | undefined

  get aborted (): boolean {
    return this.#aborted
  }

  onAbort (listener: () => void): void {
    if (this.#aborted) listener()
    else this.#listener = listener
  }

  abort (): void {
    if (this.#aborted) return
    this.#aborted = true
    const listener = this.#listener
    this.#listener = undefined
    listener?.()
  }
}
