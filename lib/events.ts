import { InvalidCursorError } from './errors.js'
import type { AssistantMessage, RunState, ToolCallPart, TranscriptEntry } from './transcript.js'

// The hub's contract with the transports: every session has one ordered event log.
// Transports only encode these events; they never invent positions of their own.

interface EventBase {
  sessionKey: string
  /** Names this life of the session's log; see `Cursor`. */
  epoch: string
  /** 1, 2, 3, … within the epoch, shared by every transport and every turn. */
  seq: number
  /** Milliseconds since the epoch. */
  at: number
}

/** A transcript row was committed (the user's message, a tool result). */
export interface MessageEvent extends EventBase {
  type: 'message'
  /** The run whose turn committed the row. */
  runId: string
  entry: TranscriptEntry
}

export interface RunStartedEvent extends EventBase {
  type: 'run.started'
  runId: string
  model?: string
}

export interface RunDeltaEvent extends EventBase {
  type: 'run.delta'
  runId: string
  delta: string
  /** The whole text so far (the same string the next delta extends). */
  text: string
}

/** The model's reasoning grew (not durable: the answer's row keeps the whole of it). */
export interface RunReasoningEvent extends EventBase {
  type: 'run.reasoning'
  runId: string
  delta: string
  /** The whole reasoning so far. */
  text: string
}

export interface RunToolCallEvent extends EventBase {
  type: 'run.tool_call'
  runId: string
  call: ToolCallPart
}

/** A run ended; `entry` is the assistant's row, committed at this `seq`. */
export interface RunFinishedEvent extends EventBase {
  type: 'run.finished'
  runId: string
  state: RunState
  entry: TranscriptEntry & { message: AssistantMessage }
  error?: { code: string, message: string }
}

/**
 * The session was reset or deleted: a new epoch begins (at `seq` 0) and the watcher's
 * earlier history no longer applies. Not part of the log; sent only to live watchers.
 */
export interface SessionResetEvent extends EventBase {
  type: 'session.reset'
  /** The new generation, or undefined when the session was deleted. */
  sessionId?: string
  deleted: boolean
}

export type SessionEvent = MessageEvent | RunStartedEvent | RunDeltaEvent | RunReasoningEvent | RunToolCallEvent | RunFinishedEvent | SessionResetEvent

/**
 * A position in a session's log: `<epoch>:<seq>`, meaning "every event up to and
 * including `seq` of that epoch has been seen". `seq` 0 is the start of an epoch.
 */
export interface Cursor {
  epoch: string
  seq: number
}

export function formatCursor (epoch: string, seq: number): string {
  return `${epoch}:${seq}`
}

export function parseCursor (cursor: string): Cursor {
  const colon = cursor.lastIndexOf(':')
  const epoch = cursor.slice(0, colon)
  const seq = Number(cursor.slice(colon + 1))
  if (colon <= 0 || !/^\d+$/.test(cursor.slice(colon + 1)) || !Number.isSafeInteger(seq)) {
    throw new InvalidCursorError(cursor.slice(0, 80))
  }
  return { epoch, seq }
}

export function eventCursor (event: SessionEvent): string {
  return formatCursor(event.epoch, event.seq)
}
