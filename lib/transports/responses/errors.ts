import type { FastifyBaseLogger } from 'fastify'
import { isGatewayError } from '../../errors.js'

/** OpenResponses' error object: `{"error":{"message","type","param","code"}}`. */
export interface ErrorObject {
  message: string
  type: string
  param: string | null
  code: string | null
  [extra: string]: unknown
}

/** A refusal in OpenResponses' terms: an HTTP status and the error object. */
export class ResponsesError extends Error {
  readonly status: number
  readonly body: ErrorObject

  constructor (status: number, message: string, options: { code: string, param?: string | null, extra?: Record<string, unknown> }) {
    super(message)
    this.status = status
    this.body = {
      message,
      type: errorType(status),
      param: options.param ?? null,
      code: options.code,
      ...options.extra
    }
  }
}

/** A 400 that names the field at fault. */
export function invalidParam (param: string, message: string, code = 'invalid_value'): ResponsesError {
  return new ResponsesError(400, message, { param, code })
}

export function previousResponseNotFound (id: string): ResponsesError {
  return new ResponsesError(400, `Previous response with id '${id.slice(0, 100)}' not found.`, { param: 'previous_response_id', code: 'previous_response_not_found' })
}

export function responseNotFound (id: string): ResponsesError {
  return new ResponsesError(404, `No response with id '${id.slice(0, 100)}' found.`, { param: 'response_id', code: 'response_not_found' })
}

/**
 * Any error, as OpenResponses would say it: our own refusals keep their status and a
 * code derived from theirs (`FSG_SESSION_BUSY` → `session_busy`); Fastify's (bad JSON,
 * a body too large) keep their status; anything else is a bug: logged, answered 500.
 */
export function toResponsesError (err: unknown, logger: FastifyBaseLogger): ResponsesError {
  if (err instanceof ResponsesError) return err
  if (isGatewayError(err)) {
    const { runId } = err as { runId?: string }
    return new ResponsesError(err.statusCode, err.message, {
      code: err.code.slice(4).toLowerCase(),
      // A busy session names the running response, so the caller can watch it instead.
      ...(runId === undefined ? {} : { extra: { running_response_id: runId } })
    })
  }
  const fastify = err as { statusCode?: unknown, code?: unknown, message?: unknown }
  if (typeof fastify.statusCode === 'number' && fastify.statusCode >= 400 && fastify.statusCode < 500) {
    return new ResponsesError(fastify.statusCode, String(fastify.message), { code: fastifyCode(fastify.code) })
  }
  logger.error({ err }, 'session gateway: an OpenResponses request failed')
  return new ResponsesError(500, 'The server had an error while processing your request.', { code: 'server_error' })
}

// Fastify's own refusals, in the words OpenAI-style clients know.
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json'
}

function fastifyCode (code: unknown): string {
  return FASTIFY_CODES[String(code)] ?? 'invalid_request'
}

function errorType (status: number): string {
  switch (status) {
    case 401: return 'authentication_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 429: return 'rate_limit_error'
    default: return status >= 500 ? 'server_error' : 'invalid_request_error'
  }
}
