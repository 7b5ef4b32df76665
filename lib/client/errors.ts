import type { ErrorShape } from './frames.js'

/** The gateway answered a request with `ok: false`. */
export class ServerError extends Error {
  override readonly name = 'ServerError'
  /** `INVALID_REQUEST`, `FORBIDDEN` or `UNAVAILABLE`. */
  readonly code: string
  readonly details: ErrorShape['details']
  readonly retryable: boolean
  readonly retryAfterMs: number | undefined

  constructor (readonly method: string, error: ErrorShape) {
    super(`${method}: ${error.message}`)
    this.code = error.code
    this.details = error.details
    this.retryable = error.retryable === true
    this.retryAfterMs = error.retryAfterMs
  }
}

export type ConnectionErrorCode =
  /** A request made while disconnected, with `whileDisconnected: 'fail'`. */
  | 'NOT_CONNECTED'
  /** The connection dropped before the answer came: the request may or may not have been carried out. */
  | 'CONNECTION_LOST'
  /** No answer within `requestTimeoutMs` (waiting for a connection included). */
  | 'TIMEOUT'
  /** The client was closed. */
  | 'CLOSED'
  /** The gateway refused the handshake (credentials, protocol): reconnecting would not help. */
  | 'REFUSED'
  /** The first connection could not be made. */
  | 'UNREACHABLE'

/** Something went wrong on the way to the gateway, not in it. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError'

  constructor (readonly code: ConnectionErrorCode, message: string, readonly idempotencyKey?: string) {
    super(message)
  }
}
