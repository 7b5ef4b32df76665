import type { Replay, RunningSnapshot } from '../../hub/hub.js'
import type { AssistantMessage, RunState, TranscriptMessage } from '../../transcript.js'
import type { ConnectParams, ErrorShape, MethodName, MethodParams } from './protocol.js'

// The frames of OpenClaw's gateway protocol v4 as this gateway speaks them (PROTOCOL.md
// documents each): exported for clients and tests, and used by the server code that
// writes them, so the compiler keeps the two in step.

export type { ConnectParams, ErrorShape as GatewayErrorShape, MethodName as GatewayMethod }
export type GatewayMethodParams<M extends MethodName> = MethodParams<M>

/** What a client sends: `connect` first, then any method, pipelined as it likes. */
export type GatewayRequestFrame<M extends MethodName | 'connect' = MethodName | 'connect'> = {
  [N in M]: { type: 'req', id: string, method: N, params: N extends MethodName ? MethodParams<N> : ConnectParams }
}[M]

/** The answer to one request: `ok` with the method's payload, or an error. */
export type GatewayResponseFrame<P = unknown> =
  | { type: 'res', id: string, ok: true, payload: P }
  | { type: 'res', id: string, ok: false, error: ErrorShape }

/** The first frame on every connection; unlike every later event, it has no `seq`. */
export interface ConnectChallengeFrame {
  type: 'event'
  event: 'connect.challenge'
  payload: { nonce: string, ts: number }
}

/** `connect`'s answer payload. */
export interface HelloOk {
  type: 'hello-ok'
  protocol: 4
  server: { version: string, connId: string }
  features: { methods: MethodName[], events: string[] }
  snapshot: {
    presence: []
    health: Record<string, never>
    stateVersion: { presence: number, health: number }
    uptimeMs: number
    sessionDefaults: { defaultAgentId: string, mainKey: string, mainSessionKey: string }
  }
  auth: { role: string, scopes: string[] }
  policy: { maxPayload: number, maxBufferedBytes: number, tickIntervalMs: number }
}

/** The cumulative answer while a turn streams. */
export type AssistantSoFar = Pick<AssistantMessage, 'role' | 'content' | 'timestamp'>

/** `chat`: a turn streaming (`delta`) and ending. `seq` counts per run from 1; `cursor` with the `session-cursor` capability. */
export type ChatEventPayload = {
  runId: string
  sessionKey: string
  seq: number
  cursor?: string
} & (
  /** `cursorFrom`: the first position a merged delta stands for (a slow consumer's; with cursors). */
  | { state: 'delta', deltaText: string, message: AssistantSoFar, replace?: boolean, cursorFrom?: string }
  | { state: RunState, message: AssistantMessage, stopReason: AssistantMessage['stopReason'], errorMessage?: string, usage?: AssistantMessage['usage'] }
)

/**
 * `agent`: OpenClaw's run events, one per run event that is not text. `seq` counts the
 * run's `agent` frames from 1; the session is in `data`; `cursor` with the capability.
 */
export type AgentEventPayload = {
  runId: string
  seq: number
  ts: number
  cursor?: string
} & (
  | { stream: 'lifecycle', data: { phase: 'start', sessionKey: string, model?: string } }
  | { stream: 'thinking', data: { text: string, delta: string, sessionKey: string } }
  | { stream: 'tool', data: { phase: 'start', name: string, toolCallId: string, args: Record<string, unknown>, sessionKey: string } }
)

/** `session.message`: a transcript row was committed (the user's own messages included). */
export interface SessionMessagePayload {
  sessionKey: string
  messageId: string
  message: HistoryMessage
  runId?: string
  messageSeq?: number
  cursor: string
}

/** `session.reset`: the session was reset or deleted; positions start over. */
export interface SessionResetPayload {
  sessionKey: string
  deleted: boolean
  sessionId?: string
  cursor: string
}

/** `sessions.changed`, for `sessions.subscribe`rs who may read that session. */
export interface SessionsChangedPayload {
  sessionKey: string
  agentId: string
  reason: 'created' | 'updated' | 'reset' | 'deleted'
  ts: number
}

/** Every event after the handshake, by name, with its payload. */
export interface GatewayEventPayloads {
  tick: { ts: number }
  chat: ChatEventPayload
  agent: AgentEventPayload
  'session.message': SessionMessagePayload
  'session.reset': SessionResetPayload
  'sessions.changed': SessionsChangedPayload
  /** For a frame that had no usable `id` (not JSON, binary, not a request). */
  error: ErrorShape
}

/** An event frame after the handshake; `seq` counts per connection from 1. */
export type GatewayEventFrame<E extends keyof GatewayEventPayloads = keyof GatewayEventPayloads> = {
  [N in E]: { type: 'event', event: N, payload: GatewayEventPayloads[N], seq: number }
}[E]

/** Any frame the server sends. */
export type GatewayServerFrame = ConnectChallengeFrame | GatewayResponseFrame | GatewayEventFrame

/** OpenClaw's `kind` of a session. */
export type SessionKind = 'direct' | 'group' | 'global'

/** A session row as the gateway protocol lists it: OpenClaw's `SessionRow`, plus our `createdAt`. */
export interface GatewaySessionRow {
  key: string
  kind: SessionKind
  agentId: string
  sessionId: string
  label?: string
  displayName?: string
  /** The agent's main session. */
  isMain: boolean
  createdAt: number
  updatedAt: number
  lastActivityAt: number
  lastMessagePreview?: string
  /** Set while a turn runs (in `sessionInfo` and `sessions.describe`). */
  status?: 'running'
  hasActiveRun?: boolean
  activeRunIds?: string[]
}

/** A session's row, or, for one that does not exist yet, what OpenClaw answers for it. */
export type GatewaySessionInfo = GatewaySessionRow | { key: string, kind: SessionKind, agentId: string, isMain: boolean, updatedAt: null }

/** OpenClaw's `defaults`: the model new turns use, when the agent knows it. */
export interface ModelDefaults {
  modelProvider?: string
  model?: string
  modelSelectionTarget: 'session'
}

/** A model as `models.list` answers it (OpenClaw's `ModelChoice`). */
export interface ModelChoice {
  id: string
  name: string
  provider: string
  available: boolean
}

/**
 * OpenClaw's metadata on a history message: its id, its position (our cursor `seq`),
 * its run, and the key a client matches against the copy it showed before the server
 * had it (`<runId>:user` for the user's message, the run id for the answer).
 */
export interface OpenClawMessageMeta {
  id: string
  seq?: number
  runId?: string
  idempotencyKey?: string
}

/** A history message: the transcript message, OpenClaw's `__openclaw`, and (ours) the entry id. */
export type HistoryMessage = TranscriptMessage & { id: string, __openclaw: OpenClawMessageMeta }

/** `chat.history`: a page of messages, newest last; see PROTOCOL.md. */
export interface ChatHistoryResult {
  sessionKey: string
  sessionId?: string
  messages: HistoryMessage[]
  cursor: string
  before?: string
  hasMore: boolean
  defaults: ModelDefaults
}

/** `chat.startup`: the `chat.history` page of a session as a client opens it, and more; see PROTOCOL.md. */
export interface ChatStartupResult extends ChatHistoryResult {
  /** When every message fitted (`hasMore` false). */
  totalMessages?: number
  pendingInputs: { items: [], total: 0 }
  sessionInfo: GatewaySessionInfo
  metadata: { models: ModelChoice[], commands: [] }
  /** The turn running when the session was opened: its text so far (its next deltas follow). */
  inFlightRun?: Pick<RunningSnapshot, 'runId' | 'text'>
}

/** Each method's answer payload. */
export interface GatewayMethodResults {
  'chat.send':
    | { runId: string, status: 'started' | 'in_flight' }
    | { runId: string, status: 'done', state: RunState, message: AssistantMessage }
  'chat.history': ChatHistoryResult
  'chat.startup': ChatStartupResult
  'chat.metadata': ChatStartupResult['metadata']
  'chat.abort': { ok: true, aborted: boolean, runIds: string[] }
  'sessions.list': { ts: number, count: number, sessions: GatewaySessionRow[], defaults: ModelDefaults, cursor?: string }
  'sessions.describe': { session: GatewaySessionRow | null }
  'sessions.resolve':
    | { ok: true, key: string, agentId: string, displayName?: string }
    | { ok: false, candidates: Array<{ key: string, agentId: string }> }
  'sessions.create': { ok: true, key: string, sessionId: string, entry: GatewaySessionRow }
  'sessions.patch': { ok: true, key: string, entry: GatewaySessionRow }
  'sessions.reset': { ok: true, key: string, entry: GatewaySessionRow }
  'sessions.delete': { ok: true, key: string, deleted: boolean, archived: string[] }
  'sessions.messages.subscribe': { subscribed: true, key: string, cursor: string }
  'sessions.messages.unsubscribe': { subscribed: false, key: string }
  'sessions.subscribe': { subscribed: true }
  'sessions.unsubscribe': { subscribed: false }
  'sessions.open': {
    key: string
    agentId: string
    sessionId?: string
    entry?: GatewaySessionRow
    /** With `since`: what follows the answer (see PROTOCOL.md). */
    replay: Replay['kind']
    messages: HistoryMessage[]
    before?: string
    cursor: string
    running?: { runId: string, text: string }
  }
  'agents.list': {
    defaultId: string
    mainKey: string
    scope: 'per-sender'
    agents: Array<{ id: string, model?: { primary: string } }>
  }
  'agent.identity.get': { agentId: string }
  'models.list': { models: ModelChoice[] }
  'models.authStatus': { ts: number, providers: [] }
}

export type GatewayMethodResult<M extends MethodName> = GatewayMethodResults[M]
