import { eventCursor, type SessionEvent } from '../../events.js'
import type { RunningSnapshot } from '../../hub/hub.js'
import type { TranscriptEntry, TranscriptMessage } from '../../transcript.js'
import type { AgentEventPayload, AssistantSoFar, ChatEventPayload, SessionMessagePayload, SessionResetPayload } from './frames.js'
import { historyMessage } from './shapes.js'

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
// A `chat` or `agent` payload before it is sent: the connection splices in its per-run `seq`.
type UnsentChat = DistributiveOmit<ChatEventPayload, 'seq'>
type UnsentAgent = DistributiveOmit<AgentEventPayload, 'seq'>

/**
 * One event frame to send: `chat` frames of a run get their per-run `seq` when they
 * are actually sent, and deltas may be merged with the next one for a slow consumer.
 */
export interface OutgoingEvent {
  event: string
  payload: Record<string, unknown>
  /** Set on `chat` frames: the run whose per-run `seq` the frame takes. */
  runId?: string
  /** A delta that may be merged into the next delta of the same run. */
  delta?: boolean
  /** `payload` as JSON, made once however many connections send it. */
  json?: string
}

/** The payload as JSON, serialized on first use and shared by every connection after that. */
export function payloadJson (outgoing: OutgoingEvent): string {
  outgoing.json ??= JSON.stringify(outgoing.payload)
  return outgoing.json
}

// One hub event fans out to every watcher in the tick it is appended: encode it once per
// flavour, not once per connection. Kept for that tick only, not for as long as a replay
// ring holds the event (a large turn's deltas would be held twice over).
let encoded = new Map<SessionEvent, { plain?: OutgoingEvent[], withCursor?: OutgoingEvent[] }>()
let forgetting = false

/** `encodeSessionEvent`, remembered for the tick, so a hundred watchers share one encoding. */
export function sessionEventFrames (event: SessionEvent, withCursor: boolean): OutgoingEvent[] {
  let cache = encoded.get(event)
  if (cache === undefined) {
    cache = {}
    encoded.set(event, cache)
    if (!forgetting) {
      forgetting = true
      setImmediate(() => {
        encoded = new Map()
        forgetting = false
      })
    }
  }
  const flavour = withCursor ? 'withCursor' : 'plain'
  return (cache[flavour] ??= encodeSessionEvent(event, withCursor))
}

/**
 * Translates the hub's session events into gateway event frames, exactly one frame per
 * event, so a client with cursors receives every position once and can tell a loss by
 * `seq` alone: `message` → `session.message` (the answer's row too), `run.delta` →
 * `chat` delta (with the cumulative message), `run.finished` → `chat`
 * final/aborted/error, `session.reset` → `session.reset`, and, as OpenClaw's own
 * `agent` events, `run.started` → stream `lifecycle` (phase `start`), `run.reasoning` →
 * stream `thinking`, `run.tool_call` → stream `tool` (phase `start`).
 */
export function encodeSessionEvent (event: SessionEvent, withCursor: boolean): OutgoingEvent[] {
  const cursor = withCursor ? { cursor: eventCursor(event) } : {}
  switch (event.type) {
    case 'message':
      return [sessionMessage(event.sessionKey, event.entry, eventCursor(event))]
    case 'run.delta':
      return [{
        event: 'chat',
        runId: event.runId,
        delta: true,
        payload: {
          runId: event.runId,
          sessionKey: event.sessionKey,
          state: 'delta',
          deltaText: event.delta,
          message: assistantSoFar(event.text, event.at),
          ...cursor
        } satisfies UnsentChat
      }]
    case 'run.finished': {
      const message = event.entry.message
      return [{
        event: 'chat',
        runId: event.runId,
        payload: {
          runId: event.runId,
          sessionKey: event.sessionKey,
          state: event.state,
          message,
          stopReason: message.stopReason,
          errorMessage: event.error?.message, // undefined fields vanish in JSON
          usage: message.usage,
          ...cursor
        } satisfies UnsentChat
      }]
    }
    case 'session.reset':
      return [{
        event: 'session.reset',
        payload: {
          sessionKey: event.sessionKey,
          deleted: event.deleted,
          ...(event.sessionId === undefined ? {} : { sessionId: event.sessionId }),
          cursor: eventCursor(event)
        } satisfies SessionResetPayload
      }]
    case 'run.started':
      return [agentEvent(event, 'lifecycle', { phase: 'start', sessionKey: event.sessionKey, ...(event.model === undefined ? {} : { model: event.model }) }, cursor)]
    case 'run.reasoning':
      return [agentEvent(event, 'thinking', { text: event.text, delta: event.delta, sessionKey: event.sessionKey }, cursor)]
    case 'run.tool_call':
      return [agentEvent(event, 'tool', { phase: 'start', name: event.call.name, toolCallId: event.call.id, args: event.call.arguments, sessionKey: event.sessionKey }, cursor)]
  }
}

/** An `agent` frame as OpenClaw sends them: `{runId, seq, stream, ts, data}` (the session in `data`). */
function agentEvent<S extends AgentEventPayload['stream']> (
  event: SessionEvent & { runId: string },
  stream: S,
  data: Extract<AgentEventPayload, { stream: S }>['data'],
  cursor: { cursor?: string }
): OutgoingEvent {
  const payload = { runId: event.runId, stream, ts: event.at, data, ...cursor } as UnsentAgent
  return { event: 'agent', runId: event.runId, payload }
}

/** A row committed to the transcript, the user's own messages included. */
export function sessionMessage (sessionKey: string, entry: TranscriptEntry, cursor: string): OutgoingEvent {
  return {
    event: 'session.message',
    payload: {
      sessionKey,
      messageId: entry.id,
      // Rows are announced only when committed with a `seq`, and the hub commits only messages.
      message: historyMessage(entry as TranscriptEntry & { message: TranscriptMessage }),
      runId: entry.runId,
      messageSeq: entry.seq,
      cursor
    } satisfies SessionMessagePayload
  }
}

/**
 * The running turn's text so far, for a watcher that joins mid-turn: a delta that
 * replaces whatever the client had for the run.
 */
export function runningSnapshot (sessionKey: string, running: RunningSnapshot, cursor: string, withCursor: boolean): OutgoingEvent {
  return {
    event: 'chat',
    runId: running.runId,
    payload: {
      runId: running.runId,
      sessionKey,
      state: 'delta',
      deltaText: running.text,
      replace: true,
      message: assistantSoFar(running.text, Date.now()),
      cursor: withCursor ? cursor : undefined
    } satisfies UnsentChat
  }
}

/**
 * Merges a delta into the one waiting before it (for a slow consumer): texts join, the
 * rest is the newer's. With cursors, `cursorFrom` names the first position the merged
 * frame stands for, so the positions it spans are not mistaken for a loss.
 */
export function mergeDeltas (older: OutgoingEvent, newer: OutgoingEvent): OutgoingEvent {
  const from = older.payload.cursorFrom ?? older.payload.cursor
  return {
    // Not `json`: the merged payload is a new one.
    event: newer.event,
    runId: newer.runId as string, // deltas always belong to a run
    delta: true,
    payload: {
      ...newer.payload,
      deltaText: String(older.payload.deltaText) + String(newer.payload.deltaText),
      // A snapshot that replaced the client's text still does, with more text.
      replace: older.payload.replace,
      cursorFrom: from
    }
  }
}

function assistantSoFar (text: string, timestamp: number): AssistantSoFar {
  return { role: 'assistant', content: [{ type: 'text', text }], timestamp }
}
