import type { FastifyBaseLogger } from 'fastify'
import type { Agent, FunctionTool, ToolChoice } from '../agents/agent.js'
import type { SessionEvent } from '../events.js'
import type { SessionRow, SessionStore } from '../stores/store.js'
import type { ToolCallPart, TranscriptEntry, TranscriptMessage } from '../transcript.js'
import type { RunResult } from './run.js'
import type { SessionLog } from './session-log.js'

// The hub's public shapes: what its callers (the service, the transports) pass and get.

export interface HubOptions {
  store: SessionStore
  agent: Agent
  /** What a send to a session with a running turn does. */
  busy: 'queue' | 'reject'
  /** The shared runtime state of every session: its event log, lane, claims, aborts. */
  log: SessionLog
  /** Longest a run may take before it is stopped with state `error`. */
  runTimeoutMs: number
  /** Most sends that may wait behind a running turn, per session. */
  maxQueue: number
  /** Idle sessions whose state (replay ring, cursor) stays in memory. */
  maxIdleSessions: number
  /** How long a repeated idempotency key attaches to the first run (the log's claims hold as long). */
  idempotencyTtlMs: number
  /** Bytes of finished runs' answers the hub keeps for repeats of their idempotency keys. */
  maxIdempotencyBytes: number
  /** How often sessions with a run on another process are checked for that process having died. */
  orphanCheckMs: number
  logger: FastifyBaseLogger
}

export interface SendRequest {
  sessionKey: string
  agentId: string
  /**
   * The turn's new rows: user messages and tool results, and earlier assistant turns a
   * stateless client replays (OpenResponses input may carry the whole conversation).
   */
  input: TranscriptMessage[]
  /** A repeat within the TTL attaches to the first run instead of starting another. */
  idempotencyKey?: string
  /** Defaults to `idempotencyKey`, else a new UUID. */
  runId?: string
  timeoutMs?: number
  tools?: FunctionTool[]
  toolChoice?: ToolChoice
  model?: string
  instructions?: string
  maxOutputTokens?: number
  metadata?: Record<string, string>
}

export interface RunTicket {
  runId: string
  sessionKey: string
  sessionId: string
  /** `started`: this call started it; `in_flight`/`done`: an earlier call with the same idempotency key did. */
  status: 'started' | 'in_flight' | 'done'
  /** Position just before the run's first event: subscribe `since` it to see the whole run. */
  cursor: string
  /** Settles (never rejects) when the run ends. */
  result: Promise<RunResult>
}

/** A snapshot of the run in progress, for a watcher that joins mid-turn. */
export interface RunningSnapshot {
  runId: string
  text: string
  toolCalls: ToolCallPart[]
}

export type Replay =
  /** Nothing was missed. */
  | { kind: 'live' }
  /** Exactly the missed events, from memory. */
  | { kind: 'replay', events: SessionEvent[] }
  /**
   * The gap is gone from memory: the missed events rebuilt from the transcript (each
   * row's `message`, and `run.finished` after an answer; no deltas), and the running
   * run's text so far.
   */
  | { kind: 'catchup', events: SessionEvent[], running?: RunningSnapshot }
  /** The cursor is from another life of the log: start over from this history. */
  | { kind: 'reset', entries: TranscriptEntry[], running?: RunningSnapshot }

export interface SubscribeOptions {
  /** A cursor from an earlier event or answer: what came after it is replayed first. */
  since?: string
  /** History rows to send with a `reset` (default 50). */
  limit?: number
}

export type SessionListener = (event: SessionEvent) => void

export interface Subscription {
  /** Live events follow this position. */
  cursor: string
  replay: Replay
  /** The run in progress at `cursor`, if any; its later output arrives as live events. */
  running?: RunningSnapshot
  /** Delivers the live events held since subscribing, then every new one as it happens. */
  start (): void
  unsubscribe (): void
}

export interface OpenResult {
  row?: SessionRow
  /** The newest rows up to the cursor, oldest first (when no `since` was given). */
  entries: TranscriptEntry[]
  /** Present when older rows exist. */
  before?: string
  cursor: string
  running?: RunningSnapshot
  subscription: Subscription
}

/** A session row changed: for lists that stay current without polling. */
export interface SessionChange {
  kind: 'created' | 'updated' | 'reset' | 'deleted'
  sessionKey: string
  agentId: string
}

export type ChangeListener = (change: SessionChange) => void

export interface HistoryQuery {
  limit: number
  before?: string
  sessionId?: string
}
