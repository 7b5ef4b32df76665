import createError from '@fastify/error'

// Every refusal the gateway makes is one of these. Each carries a stable `code`
// (what programs match on) and an HTTP `statusCode`; transports translate them to
// their own wire shape (OpenResponses error body, gateway `res` error, close code).

export const InvalidSessionKeyError = createError<'FSG_INVALID_SESSION_KEY', 400, [string]>(
  'FSG_INVALID_SESSION_KEY', 'Invalid session key: %s', 400)

export const MissingSessionKeyError = createError<'FSG_MISSING_SESSION_KEY', 400, []>(
  'FSG_MISSING_SESSION_KEY', 'A session key is required', 400)

export const ReservedSessionKeyError = createError<'FSG_RESERVED_SESSION_KEY', 400, [string]>(
  'FSG_RESERVED_SESSION_KEY', 'Session key uses the reserved namespace "%s:"', 400)

export const InvalidAgentIdError = createError<'FSG_INVALID_AGENT_ID', 400, [string]>(
  'FSG_INVALID_AGENT_ID', 'Invalid agent id: %s', 400)

export const AgentMismatchError = createError<'FSG_AGENT_MISMATCH', 400, [string, string]>(
  'FSG_AGENT_MISMATCH', 'Agent "%s" contradicts the session key, which belongs to agent "%s"', 400)

export const UnknownAgentError = createError<'FSG_UNKNOWN_AGENT', 404, [string]>(
  'FSG_UNKNOWN_AGENT', 'Unknown agent "%s"', 404)

export const UnauthenticatedError = createError<'FSG_UNAUTHENTICATED', 401, []>(
  'FSG_UNAUTHENTICATED', 'Missing or invalid credentials', 401)

export const ForbiddenError = createError<'FSG_FORBIDDEN', 403, [string, string]>(
  'FSG_FORBIDDEN', 'Not allowed to %s session "%s"', 403)

export const SessionNotFoundError = createError<'FSG_SESSION_NOT_FOUND', 404, [string]>(
  'FSG_SESSION_NOT_FOUND', 'Session "%s" not found', 404)

export const RunNotFoundError = createError<'FSG_RUN_NOT_FOUND', 404, [string]>(
  'FSG_RUN_NOT_FOUND', 'Run "%s" not found', 404)

export const InvalidCursorError = createError<'FSG_INVALID_CURSOR', 400, [string]>(
  'FSG_INVALID_CURSOR', 'Invalid cursor "%s"', 400)

export const InvalidInputError = createError<'FSG_INVALID_INPUT', 400, [string]>(
  'FSG_INVALID_INPUT', 'Invalid input: %s', 400)

export const RunAbortedError = createError<'FSG_RUN_ABORTED', 409, [string]>(
  'FSG_RUN_ABORTED', 'A turn waiting on session "%s" was aborted before it started', 409)

/** Raised by a send under `busy: 'reject'`; carries what a caller needs to attach instead. */
export const SessionBusyError = createError<'FSG_SESSION_BUSY', 409, [string, string]>(
  'FSG_SESSION_BUSY', 'Session "%s" is busy with run "%s"', 409)

/** A gateway connection asked to watch one session more than `gateway.maxWatchedSessions`. */
export const TooManyWatchesError = createError<'FSG_TOO_MANY_WATCHES', 429, [number]>(
  'FSG_TOO_MANY_WATCHES', 'This connection watches %d sessions, its most (gateway.maxWatchedSessions): stop watching one (sessions.messages.unsubscribe) first', 429)

export const GatewayClosedError = createError<'FSG_GATEWAY_CLOSED', 503, []>(
  'FSG_GATEWAY_CLOSED', 'The session gateway is shutting down', 503)

export const StoreBusyError = createError<'FSG_STORE_BUSY', 503, [string]>(
  'FSG_STORE_BUSY', 'The session store is busy: could not lock %s in time', 503)

/** A write or a flush failed (a full disk, an I/O error): names the file and the cause. */
export const StoreFailedError = createError<'FSG_STORE_FAILED', 503, [string, string]>(
  'FSG_STORE_FAILED', 'The session store could not write %s: %s', 503)

/** The store's server (Redis, PostgreSQL) cannot be reached, or refused a command: try again once it is back. */
export const StoreUnavailableError = createError<'FSG_STORE_UNAVAILABLE', 503, [string]>(
  'FSG_STORE_UNAVAILABLE', 'The session store is unavailable: %s', 503)

/** Another process (or another store in this one) holds the file store's directory: names the holder. */
export const StoreLockedError = createError<'FSG_STORE_LOCKED', 503, [string]>(
  'FSG_STORE_LOCKED', '%s', 503)

/** A file the store keeps is damaged (a `sessions.json` cut short by hand): names the file and what to do. */
export const StoreCorruptError = createError<'FSG_STORE_CORRUPT', 503, [string]>(
  'FSG_STORE_CORRUPT', '%s', 503)

/** A database store's tables are missing or at another version: says which, and how to migrate. */
export const StoreSchemaError = createError<'FSG_STORE_SCHEMA', 503, [string]>(
  'FSG_STORE_SCHEMA', '%s', 503)

// An upstream model server (see lib/agents/upstream/) failed a turn. The run ends with
// state `error` and one of these codes; the message names the upstream, its status and
// what to check, and never carries a credential.

/** The upstream failed: a 5xx, a connection that failed, or an error it reported mid-stream. */
export const UpstreamFailedError = createError<'FSG_UPSTREAM_FAILED', 502, [string]>(
  'FSG_UPSTREAM_FAILED', '%s', 502)

/** The upstream refused the request (4xx other than 429): credentials, model or request shape. */
export const UpstreamRejectedError = createError<'FSG_UPSTREAM_REJECTED', 502, [string]>(
  'FSG_UPSTREAM_REJECTED', '%s', 502)

export const UpstreamRateLimitedError = createError<'FSG_UPSTREAM_RATE_LIMITED', 429, [string]>(
  'FSG_UPSTREAM_RATE_LIMITED', '%s', 429)

/** The upstream went silent for longer than the agent's `timeoutMs`. */
export const UpstreamTimeoutError = createError<'FSG_UPSTREAM_TIMEOUT', 504, [string]>(
  'FSG_UPSTREAM_TIMEOUT', '%s', 504)

/** The upstream's stream was not what its API promises (not an event stream, bad JSON, no end). */
export const UpstreamProtocolError = createError<'FSG_UPSTREAM_PROTOCOL', 502, [string]>(
  'FSG_UPSTREAM_PROTOCOL', '%s', 502)

/** The shared session log (Redis) cannot be reached: try again once it is back. */
export const SessionLogUnavailableError = createError<'FSG_LOG_UNAVAILABLE', 503, [string]>(
  'FSG_LOG_UNAVAILABLE', 'The session log is unavailable: %s', 503)

export const InvalidOptionError = createError<'FSG_INVALID_OPTION', 500, [string, string]>(
  'FSG_INVALID_OPTION', 'Invalid session gateway option "%s": %s', 500)

/**
 * Why a run ended in `error` or `aborted`: the code on its `run.finished` event and on
 * its transcript row. Transports translate these; none matches a string of its own.
 */
export const RunErrorCode = {
  agentFailed: 'FSG_AGENT_FAILED',
  agentProtocol: 'FSG_AGENT_PROTOCOL',
  runTimeout: 'FSG_RUN_TIMEOUT',
  storeFailed: 'FSG_STORE_FAILED',
  gatewayClosed: 'FSG_GATEWAY_CLOSED',
  sessionReset: 'FSG_SESSION_RESET',
  /** The session log refused the run's events (unreachable, or the run lost its lane). */
  logUnavailable: 'FSG_LOG_UNAVAILABLE'
} as const

export type SessionBusy = InstanceType<typeof SessionBusyError> & {
  sessionKey: string
  runId: string
  cursor: string
}

export function sessionBusy (sessionKey: string, runId: string, cursor: string): SessionBusy {
  return Object.assign(new SessionBusyError(sessionKey, runId), { sessionKey, runId, cursor })
}

/** True for errors the gateway raised on purpose (as opposed to bugs or agent failures). */
export function isGatewayError (err: unknown): err is Error & { code: string, statusCode: number } {
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && code.startsWith('FSG_')
}
