import type { ResponseStream, StreamEvent } from './response-stream.js'

/** Where one reader's events go: an SSE response, or a WebSocket-mode socket. */
export interface StreamSink {
  /** Bytes written and not yet taken by the network. */
  buffered (): number
  /** Writes one event; `written` is called once the network has taken it. */
  write (event: StreamEvent, written: () => void): void
  /** Every event is written, and the response is over. */
  end (): void
  /** The reader left more than `maxQueuedBytes` of live events unread: let it go. */
  overflow (): void
}

export interface StreamReaderLimits {
  /** The sink is given events while it holds at most this many bytes not yet sent. */
  maxBufferedBytes: number
  /** Live events a reader may leave waiting, in bytes. */
  maxQueuedBytes: number
}

/**
 * Feeds a response's events after `after` to one reader as its connection drains. The
 * events wait in the stream itself, nothing is copied: those already there (a resume) go
 * out as fast as the reader takes them, and a reader that lets more than
 * `maxQueuedBytes` of live events pile up is let go. Answers a function that stops it.
 */
export function readStream (stream: ResponseStream, after: number, sink: StreamSink, limits: StreamReaderLimits): () => void {
  const events = stream.events
  const firstLive = events.length
  let next = after + 1
  let liveWaiting = 0
  let inFlight = 0
  let stopped = false
  let unsubscribe = (): void => {}

  const stop = (): void => {
    stopped = true
    unsubscribe()
  }
  const written = (): void => {
    inFlight--
    pump()
  }
  // Sinks call `written` later, once the network took the event, never from inside `write`.
  // With none of ours in flight the next goes whatever else the socket holds (another
  // frame's bytes would otherwise stop the stream with no callback left to restart it).
  const pump = (): void => {
    while (!stopped && next < events.length && (inFlight === 0 || sink.buffered() <= limits.maxBufferedBytes)) {
      const event = events[next++] as StreamEvent
      if (event.sequence_number >= firstLive) liveWaiting -= event.json.length
      inFlight++
      sink.write(event, written)
    }
    if (!stopped && next >= events.length && stream.finished) {
      stop()
      sink.end()
    }
  }

  if (!stream.finished) {
    unsubscribe = stream.subscribe(events.length - 1, event => {
      if (event.sequence_number >= next) liveWaiting += event.json.length
      pump()
      if (stopped || liveWaiting <= limits.maxQueuedBytes) return
      stop()
      sink.overflow()
    }, pump)
  }
  pump()
  return stop
}
