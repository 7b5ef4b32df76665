/** Something the gateway can close on shutdown: a gateway-protocol or OpenResponses WebSocket connection. */
export interface Closable {
  close (code: number, reason: string): void
}

/**
 * Every open WebSocket connection of every transport, so that shutdown can close them
 * with 1012 (service restart) before `@fastify/websocket` closes them without a code.
 */
export class LiveSockets {
  readonly #open = new Set<Closable>()

  add (socket: Closable): void {
    this.#open.add(socket)
  }

  delete (socket: Closable): void {
    this.#open.delete(socket)
  }

  closeAll (code: number, reason: string): void {
    for (const socket of [...this.#open]) socket.close(code, reason)
    this.#open.clear()
  }
}
