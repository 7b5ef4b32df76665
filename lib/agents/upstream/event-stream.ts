import { createParser, type EventSourceMessage } from 'eventsource-parser'
import {
  UpstreamFailedError, UpstreamProtocolError, UpstreamRateLimitedError, UpstreamRejectedError, UpstreamTimeoutError
} from '../../errors.js'

// One streamed request to an upstream model server: POST a JSON body, read the answer as
// Server-Sent Events. The parsing is eventsource-parser's (a well-kept, spec-following
// parser); this file adds what an agent needs around it: a silence timeout, failures that
// say what to check, and credentials kept out of every message.

/** Where and how to reach the upstream; made once per agent. */
export interface UpstreamEndpoint {
  /** Full URL of the endpoint, e.g. `https://api.openai.com/v1/chat/completions`. */
  url: string
  headers: Record<string, string>
  /** Longest silence, in ms: until the answer begins, and between two reads of its stream. */
  timeoutMs: number
  /** Most characters held while an event is unfinished. */
  maxEventChars: number
  /** What to tell a person to check, by kind of failure. */
  hints: UpstreamHints
  /** Strings (credentials) that must never appear in a message. */
  secrets: string[]
  fetch: typeof fetch
}

export interface UpstreamHints {
  /** For 401 and 403. */
  auth: string
  /** For 404. */
  notFound: string
  /** For any other 4xx. */
  refused: string
  /** For a connection that failed. */
  unreachable: string
}

/** A failure a retry may cure, and how long the upstream asked us to wait first. */
export interface Retryable {
  retryable: boolean
  /**
   * The upstream may have acted on the request (it was sent, then the connection broke or
   * went silent). Harmless to repeat for a stateless upstream; a stateful one (OpenClaw)
   * would see the turn twice.
   */
  delivered: boolean
  retryAfterMs?: number
}

export type UpstreamError = Error & Retryable & { code: string }

/** The longest `Retry-After` worth waiting for within a turn; a longer one fails the turn at once. */
const MAX_RETRY_AFTER_MS = 60_000
/** How much of an upstream's error text a message quotes. */
const QUOTE_LENGTH = 300

/**
 * POSTs `body` and yields the stream's events. Throws an `FSG_UPSTREAM_*` error (with
 * `retryable`) when the upstream cannot be reached, refuses, goes silent or sends
 * something that is not an event stream. Aborting `signal` (or returning early) cancels
 * the request, which closes its connection.
 */
export async function * postEventStream (endpoint: UpstreamEndpoint, body: unknown, signal: AbortSignal): AsyncGenerator<EventSourceMessage> {
  const silence = new SilenceTimer(endpoint.timeoutMs)
  const requestSignal = AbortSignal.any([signal, silence.signal])
  try {
    let response: Response
    try {
      response = await endpoint.fetch(endpoint.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...endpoint.headers },
        body: JSON.stringify(body),
        signal: requestSignal
      })
    } catch (err) {
      throw failure(endpoint, err, silence, signal, 'answer')
    }
    if (!response.ok) throw await statusError(endpoint, response)
    const type = response.headers.get('content-type') ?? ''
    if (!type.startsWith('text/event-stream') || response.body === null) {
      await response.body?.cancel().catch(() => {})
      throw new UpstreamProtocolError(`${describe(endpoint)} answered ${response.status} with content-type "${scrub(type, endpoint) || 'none'}", not an event stream: check that it supports "stream": true`)
    }

    const events: EventSourceMessage[] = []
    let tooBig = false
    const parser = createParser({
      onEvent: event => { events.push(event) },
      // Unknown fields and bad `retry:` lines are ignored, as the SSE specification says.
      onError: error => { if (error.type === 'max-buffer-size-exceeded') tooBig = true },
      maxBufferSize: endpoint.maxEventChars
    })
    const reader = response.body.getReader()
    const decoder = new TextDecoder()
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (err) {
        throw failure(endpoint, err, silence, signal, 'next event')
      }
      silence.restart()
      if (chunk.done) {
        parser.feed(decoder.decode())
        // A last event without its blank line still counts (some servers end that way).
        parser.reset({ consume: true })
      } else {
        parser.feed(decoder.decode(chunk.value, { stream: true }))
      }
      if (tooBig) throw new UpstreamProtocolError(`${describe(endpoint)} sent more than ${endpoint.maxEventChars} characters without finishing an event (maxEventChars)`)
      for (const event of events.splice(0)) yield event
      if (chunk.done) return
    }
  } finally {
    silence.stop()
    // Cancels a request still streaming (the consumer stopped early): its connection closes.
    silence.abandon()
  }
}

/** Aborts its signal after `ms` without a `restart()`. */
class SilenceTimer {
  readonly #controller = new AbortController()
  readonly #ms: number
  #timer: NodeJS.Timeout | undefined

  constructor (ms: number) {
    this.#ms = ms
    this.restart()
  }

  get signal (): AbortSignal {
    return this.#controller.signal
  }

  get fired (): boolean {
    return this.#controller.signal.aborted && this.#controller.signal.reason === SILENCE
  }

  restart (): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#controller.abort(SILENCE), this.#ms)
  }

  stop (): void {
    clearTimeout(this.#timer)
  }

  abandon (): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(ABANDONED)
  }
}

const SILENCE = Symbol('silence')
const ABANDONED = Symbol('abandoned')

/** What a failed fetch or read means: the caller's abort (rethrown as is), our timeout, or a connection failure. */
function failure (endpoint: UpstreamEndpoint, err: unknown, silence: SilenceTimer, signal: AbortSignal, waitingFor: string): unknown {
  if (signal.aborted) return signal.reason
  if (silence.fired) {
    return retryable(new UpstreamTimeoutError(`${describe(endpoint)} sent nothing for ${endpoint.timeoutMs} ms while we waited for its ${waitingFor}: check the server, or raise timeoutMs`), true, true)
  }
  const cause = (err as { cause?: { code?: unknown, message?: unknown } } | null)?.cause
  const reason = typeof cause?.code === 'string' ? cause.code : err instanceof Error ? err.message : String(err)
  // Refused or not found: the request never reached a server.
  const delivered = !['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'].includes(reason)
  return retryable(new UpstreamFailedError(`${describe(endpoint)} could not be reached or dropped the connection (${scrub(reason, endpoint)}): ${endpoint.hints.unreachable}`), true, delivered)
}

/** An error answer, with the upstream's own message quoted and what to check. */
async function statusError (endpoint: UpstreamEndpoint, response: Response): Promise<UpstreamError> {
  const text = await response.text().catch(() => '')
  const quoted = upstreamMessage(text, endpoint)
  const status = `${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`
  const said = `${describe(endpoint)} answered ${status}${quoted === '' ? '' : `: "${quoted}"`}`
  const retryAfterMs = retryAfter(response.headers)
  // OpenAI's `x-should-retry` overrides the status rule either way.
  const should = response.headers.get('x-should-retry')
  const byStatus = response.status === 408 || response.status === 409 || response.status === 429 || response.status >= 500
  const again = (should === 'true' || (should !== 'false' && byStatus)) && (retryAfterMs === undefined || retryAfterMs <= MAX_RETRY_AFTER_MS)
  let error: Error & { code: string }
  if (response.status === 429) {
    error = new UpstreamRateLimitedError(`${said}: the upstream is rate limiting this key; slow down or raise its limits`)
  } else if (response.status === 401 || response.status === 403) {
    error = new UpstreamRejectedError(`${said}: ${endpoint.hints.auth}`)
  } else if (response.status === 404) {
    error = new UpstreamRejectedError(`${said}: ${endpoint.hints.notFound}`)
  } else if (response.status >= 500) {
    error = new UpstreamFailedError(`${said}: the upstream server failed; check its logs`)
  } else {
    error = new UpstreamRejectedError(`${said}: ${endpoint.hints.refused}`)
  }
  // An error status means the server refused the request rather than acting on it.
  return retryable(error, again, false, retryAfterMs)
}

/** The `message` of an OpenAI-style error body (`{error:{message}}`), else the body's start. */
function upstreamMessage (text: string, endpoint: UpstreamEndpoint): string {
  let message = text
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string, message?: unknown }
    const candidate = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message ?? parsed.message
    if (typeof candidate === 'string') message = candidate
  } catch {}
  return scrub(message.replace(/\s+/g, ' ').trim(), endpoint).slice(0, QUOTE_LENGTH)
}

/** `retry-after-ms` (OpenAI's), else `retry-after` in seconds or as an HTTP date. */
function retryAfter (headers: Headers): number | undefined {
  const ms = Number(headers.get('retry-after-ms') ?? Number.NaN)
  if (Number.isFinite(ms) && ms >= 0) return ms
  const value = headers.get('retry-after')
  if (value === null) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

function retryable<E extends Error & { code: string }> (error: E, again: boolean, delivered: boolean, retryAfterMs?: number): E & Retryable {
  return Object.assign(error, { retryable: again, delivered }, retryAfterMs === undefined ? {} : { retryAfterMs })
}

/** The upstream as messages name it: its URL without query or credentials. */
export function describe (endpoint: UpstreamEndpoint): string {
  const url = new URL(endpoint.url)
  return `upstream ${url.origin}${url.pathname}`
}

/** The text with every credential replaced. */
export function scrub (text: string, endpoint: Pick<UpstreamEndpoint, 'secrets'>): string {
  let out = text
  for (const secret of endpoint.secrets) if (secret !== '') out = out.replaceAll(secret, '[redacted]')
  return out
}

/** An event's data as JSON; anything else is a protocol failure. */
export function eventJson (endpoint: UpstreamEndpoint, event: EventSourceMessage): Record<string, any> {
  let value: unknown
  try {
    value = JSON.parse(event.data)
  } catch {
    throw new UpstreamProtocolError(`${describe(endpoint)} sent an event that is not JSON: "${scrub(event.data.slice(0, 80), endpoint)}"`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UpstreamProtocolError(`${describe(endpoint)} sent an event that is not a JSON object: "${scrub(event.data.slice(0, 80), endpoint)}"`)
  }
  return value as Record<string, any>
}

/** An error the upstream reported inside its stream. */
export function streamedError (endpoint: UpstreamEndpoint, error: unknown): UpstreamError {
  const message = typeof error === 'string'
    ? error
    : typeof (error as { message?: unknown } | null)?.message === 'string' ? (error as { message: string }).message : JSON.stringify(error)
  return retryable(new UpstreamFailedError(`${describe(endpoint)} reported an error mid-stream: "${scrub(message, endpoint).slice(0, QUOTE_LENGTH)}"`), false, true)
}

/** A stream that stopped before its API's end marker. */
export function endedEarly (endpoint: UpstreamEndpoint, missing: string): UpstreamError {
  // The connection broke before the answer ended: a retry may cure it (if nothing went out yet).
  return retryable(new UpstreamProtocolError(`${describe(endpoint)} ended its stream before the answer finished (no ${missing}): check the server's logs`), true, true)
}
