import type { ServerResponse } from 'node:http'
import { eventCursor, type SessionEvent } from '../../events.js'
import type { RunningSnapshot } from '../../hub/hub-types.js'
import { payloadJson, runningSnapshot, sessionEventFrames } from '../openclaw/session-events.js'
import { Outbox, type OutboxItem, type OutboxOptions } from '../outbox.js'

export interface EventStreamOptions extends OutboxOptions {
  /** How often a comment line keeps an idle stream (and the proxies on its way) open. */
  keepAliveMs: number
}

/**
 * A session's events as Server-Sent Events: the gateway protocol's frames for them
 * (`session.message`, `chat`, `agent`, `session.reset`), one per position, each with its
 * cursor as `id`.
 */
export function sseEvents (event: SessionEvent): OutboxItem[] {
  const id = eventCursor(event)
  return sessionEventFrames(event, true).map(outgoing => ({ outgoing, id }))
}

/** The running turn's text so far, replacing whatever the reader had for it. */
export function runningEvent (sessionKey: string, running: RunningSnapshot, cursor: string): OutboxItem {
  return { outgoing: runningSnapshot(sessionKey, running, cursor, true), id: cursor }
}

/**
 * Writes Server-Sent Events to one response: one `write()` per event, the data as one
 * line of JSON, paced by the response's drain (see outbox.ts). It ends on its own when
 * the reader does not keep up with live events (see `maxQueuedBytes`).
 */
export class EventStream {
  readonly #raw: ServerResponse
  readonly #onClose: () => void
  readonly #keepAlive: ReturnType<typeof setInterval>
  readonly #outbox: Outbox<OutboxItem>
  #open = true

  constructor (raw: ServerResponse, options: EventStreamOptions, onClose: () => void) {
    this.#raw = raw
    this.#onClose = onClose
    this.#outbox = new Outbox(options, {
      buffered: () => raw.writableLength,
      // Each write, once flushed, lets what waits go on ('drain' only comes past the stream's highWaterMark).
      write: item => raw.write(`id: ${item.id as string}\nevent: ${item.outgoing.event}\ndata: ${payloadJson(item.outgoing)}\n\n`, () => this.#outbox.pump()),
      // A reader this far behind gets a clean end instead of unbounded memory; it resumes by cursor.
      overflow: () => this.end()
    })
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    // A comment between two whole events; written even behind waiting events, it changes nothing for the reader.
    this.#keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), options.keepAliveMs)
    raw.once('close', () => this.#closed())
  }

  /** `paced`: a replay (already in memory), sent as the reader takes it, not counted as backlog. */
  send (item: OutboxItem, paced = false): void {
    // After the end nothing is written. Only a reader gone while the session opened (the
    // route's race, ignored there too) gets here: an end unsubscribes at once.
    /* c8 ignore next */
    if (!this.#open) return
    this.#outbox.push(item, paced)
  }

  /** Only while open: the route keeps open streams alone, and the timer stops at the close. */
  end (): void {
    this.#closed()
    this.#raw.end()
  }

  #closed (): void {
    if (!this.#open) return
    this.#open = false
    this.#outbox.close()
    clearInterval(this.#keepAlive)
    this.#onClose()
  }
}
