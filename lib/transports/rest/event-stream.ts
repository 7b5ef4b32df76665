import type { ServerResponse } from 'node:http'
import { eventCursor, type SessionEvent } from '../../events.js'
import type { RunningSnapshot } from '../../hub/hub-types.js'
import { encodeSessionEvent, runningSnapshot } from '../openclaw/session-events.js'

export interface EventStreamOptions {
  /** How often a comment line keeps an idle stream (and the proxies on its way) open. */
  keepAliveMs: number
  /** Past this many unsent bytes the stream ends; the client resumes from its `Last-Event-ID`. */
  maxBufferedBytes: number
}

/** One Server-Sent Event: `id:` is the cursor the event leaves the reader at. */
export interface SseEvent {
  event: string
  data: unknown
  id: string
}

/**
 * A session's events as Server-Sent Events: the gateway protocol's frames for them
 * (`session.message`, `chat`, `agent`, `session.reset`), one per position, with cursors.
 */
export function sseEvents (event: SessionEvent): SseEvent[] {
  const id = eventCursor(event)
  return encodeSessionEvent(event, true).map(frame => ({ event: frame.event, data: frame.payload, id }))
}

/** The running turn's text so far, replacing whatever the reader had for it. */
export function runningEvent (sessionKey: string, running: RunningSnapshot, cursor: string): SseEvent {
  const frame = runningSnapshot(sessionKey, running, cursor, true)
  return { event: frame.event, data: frame.payload, id: cursor }
}

/**
 * Writes Server-Sent Events to one response: one `write()` per event, the data as one
 * line of JSON. It ends on its own when the reader stops reading (see `maxBufferedBytes`).
 */
export class EventStream {
  readonly #raw: ServerResponse
  readonly #maxBufferedBytes: number
  readonly #onClose: () => void
  readonly #keepAlive: ReturnType<typeof setInterval>
  #open = true

  constructor (raw: ServerResponse, options: EventStreamOptions, onClose: () => void) {
    this.#raw = raw
    this.#maxBufferedBytes = options.maxBufferedBytes
    this.#onClose = onClose
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    this.#keepAlive = setInterval(() => this.#write(': keep-alive\n\n'), options.keepAliveMs)
    raw.once('close', () => this.#closed())
  }

  send (event: SseEvent): void {
    // After the end, what was still to go (the rest of a long replay) is dropped, not even encoded.
    if (!this.#open) return
    this.#write(`id: ${event.id}\nevent: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`)
  }

  /** Only while open: the route keeps open streams alone, and the timer stops at the close. */
  end (): void {
    this.#closed()
    this.#raw.end()
  }

  #write (chunk: string): void {
    // A reader this far behind gets a clean end instead of unbounded memory; it resumes by cursor.
    if (this.#raw.writableLength > this.#maxBufferedBytes) return this.end()
    this.#raw.write(chunk)
  }

  #closed (): void {
    if (!this.#open) return
    this.#open = false
    clearInterval(this.#keepAlive)
    this.#onClose()
  }
}
