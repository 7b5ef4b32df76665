import type { FastifyBaseLogger } from 'fastify'
import { isGatewayError } from '../../errors.js'
import { ErrorCode, type ErrorShape } from './protocol.js'

/**
 * A gateway error as an OpenClaw `ErrorShape`: the protocol's coarse code, our precise
 * one in `details.code`, and what a caller needs to act on it (a busy session's run id
 * and cursor). Anything else is a bug: logged, and answered without its message.
 */
export function toErrorShape (err: unknown, logger: FastifyBaseLogger): ErrorShape {
  if (!isGatewayError(err)) {
    logger.error({ err }, 'session gateway: a gateway request failed')
    return { code: ErrorCode.unavailable, message: 'internal error', retryable: true }
  }
  const { runId, cursor, sessionKey } = err as { runId?: string, cursor?: string, sessionKey?: string }
  const details = { code: err.code, ...(runId === undefined ? {} : { runId, cursor, sessionKey }) }
  switch (err.statusCode) {
    case 401:
    case 403:
      return { code: ErrorCode.forbidden, message: err.message, details }
    case 409:
    // An upstream that failed or went silent (reading OpenClaw's sessions, say): not the request's fault.
    case 502:
    case 504:
      return { code: ErrorCode.unavailable, message: err.message, details, retryable: true }
    case 503:
      return { code: ErrorCode.unavailable, message: err.message, details, retryable: true, retryAfterMs: 1000 }
    default:
      return { code: ErrorCode.invalidRequest, message: err.message, details }
  }
}

export function invalidRequest (message: string): ErrorShape {
  return { code: ErrorCode.invalidRequest, message }
}
