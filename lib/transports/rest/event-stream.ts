import type { ServerResponse } from 'node:http'
import { eventCursor, type SessionEvent } from '../../events.js'
import type { RunningSnapshot } from '../../index.js'

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
 * A session's events as Server-Sent Events, with the names and payloads the gateway
 * protocol uses for them: `session.message`, `chat` (deltas with the cumulative message,
 * then final, aborted or error) and `session.reset`, each with its cursor.
 */
export function sseEvents (event: SessionEvent): SseEvent[] {
  const cursor = eventCursor(event)
  switch (event.type) {
    case 'message':
      return [{
        event: 'session.message',
        id: cursor,
        data: { sessionKey: event.sessionKey, messageId: event.entry.id, message: event.entry.message, runId: event.entry.runId, messageSeq: event.entry.seq, cursor }
      }]
    case 'run.delta':
      return [{
        event: 'chat',
        id: cursor,
        data: { runId: event.runId, sessionKey: event.sessionKey, state: 'delta', deltaText: event.delta, message: assistantSoFar(event.text, event.at), cursor }
      }]
    case 'run.finished': {
      const message = event.entry.message
      return [{
        event: 'chat',
        id: cursor,
        data: {
          runId: event.runId,
          sessionKey: event.sessionKey,
          state: event.state,
          message,
          stopReason: message.stopReason,
          errorMessage: event.error?.message,
          usage: message.usage,
          cursor
        }
      }]
    }
    case 'session.reset':
      return [{
        event: 'session.reset',
        id: cursor,
        data: { sessionKey: event.sessionKey, deleted: event.deleted, sessionId: event.sessionId, cursor }
      }]
    default:
      // run.started, run.reasoning, run.tool_call: the final message carries what they said.
      return []
  }
}

/** The running turn's text so far, replacing whatever the reader had for it. */
export function runningEvent (sessionKey: string, running: RunningSnapshot, cursor: string): SseEvent {
  return {
    event: 'chat',
    id: cursor,
    data: { runId: running.runId, sessionKey, state: 'delta', deltaText: running.text, replace: true, message: assistantSoFar(running.text, Date.now()), cursor }
  }
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

function assistantSoFar (text: string, timestamp: number): { role: 'assistant', content: Array<{ type: 'text', text: string }>, timestamp: number } {
  return { role: 'assistant', content: [{ type: 'text', text }], timestamp }
}
