// The wire of OpenClaw's gateway protocol v4 as this gateway speaks it (PROTOCOL.md), as
// types. They describe JSON, so they import nothing: the client builds for the browser
// without a bundler, and servers and tests can type their frames with the same names.

/** Part of a message, in OpenClaw's transcript shape. */
export type ContentPart =
  | { type: 'text', text: string }
  | { type: 'image', data?: string, url?: string, mimeType?: string }
  | { type: 'file', data?: string, url?: string, filename?: string, mimeType?: string }
  | { type: 'toolCall', id: string, name: string, arguments: Record<string, unknown> }
  | { type: 'thinking', thinking: string }

export interface UserMessage {
  role: 'user'
  content: ContentPart[]
  timestamp: number
}

export interface AssistantMessage {
  role: 'assistant'
  content: ContentPart[]
  stopReason?: 'stop' | 'length' | 'toolUse' | 'aborted' | 'error'
  errorMessage?: string
  model?: string
  usage?: { input: number, output: number, totalTokens: number, cacheRead?: number, reasoning?: number }
  timestamp: number
}

export interface ToolResultMessage {
  role: 'toolResult'
  toolCallId: string
  toolName: string
  content: ContentPart[]
  isError: boolean
  timestamp: number
}

export type Message = UserMessage | AssistantMessage | ToolResultMessage

/**
 * OpenClaw's metadata on a message: its id, its position (the `seq` of its cursor), its
 * run, and the key a client matches against the copy it showed before the server had it
 * (`<runId>:user` for the user's message, the run id for the answer).
 */
export interface OpenClawMessageMeta {
  id: string
  seq?: number
  runId?: string
  idempotencyKey?: string
}

/** A transcript row as history answers carry it: the message, its row id, and OpenClaw's `__openclaw`. */
export type HistoryMessage = Message & { id: string, __openclaw: OpenClawMessageMeta }

// ── frames ───────────────────────────────────────────────────────────────────

export interface ErrorShape {
  code: 'INVALID_REQUEST' | 'FORBIDDEN' | 'UNAVAILABLE' | (string & {})
  message: string
  /** `details.code` is the precise `FSG_*` code. */
  details?: { code?: string, runId?: string, cursor?: string, sessionKey?: string, [field: string]: unknown }
  retryable?: boolean
  retryAfterMs?: number
}

export interface RequestFrame<M extends MethodName = MethodName> {
  type: 'req'
  id: string
  method: M | 'connect'
  params?: MethodParams<M> | ConnectParams
}

export type ResponseFrame =
  | { type: 'res', id: string, ok: true, payload: unknown }
  | { type: 'res', id: string, ok: false, error: ErrorShape }

export type EventFrame = { [E in EventName]: { type: 'event', event: E, payload: EventPayloads[E], seq?: number } }[EventName]

export type ServerFrame = ResponseFrame | EventFrame

// ── the handshake ────────────────────────────────────────────────────────────

export interface ConnectParams {
  minProtocol: number
  maxProtocol: number
  client: { id: string, version: string, platform: string, mode: string, [field: string]: unknown }
  role?: string
  scopes?: string[]
  /** `session-cursor`: every `chat` event carries its cursor. */
  caps?: string[]
  auth?: { token?: string, password?: string }
}

export interface HelloOk {
  type: 'hello-ok'
  protocol: number
  server: { version: string, connId: string }
  features: { methods: string[], events: string[] }
  snapshot: {
    presence: unknown[]
    health: Record<string, unknown>
    stateVersion: { presence: number, health: number }
    uptimeMs: number
    sessionDefaults: { defaultAgentId: string, mainKey: string, mainSessionKey: string }
  }
  auth: { role: string, scopes: string[] }
  policy: { maxPayload: number, maxBufferedBytes: number, tickIntervalMs: number }
}

// ── methods ──────────────────────────────────────────────────────────────────

/** A session as lists and session methods return it: OpenClaw's `SessionRow`, plus `createdAt`. */
export interface SessionEntry {
  key: string
  /** `global`, `group` (a key with a `:group:` or `:channel:` part) or `direct`. */
  kind: 'direct' | 'group' | 'global'
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
  /** Set while a turn runs (`sessions.describe`, `chat.startup`'s `sessionInfo`). */
  status?: 'running'
  hasActiveRun?: boolean
  activeRunIds?: string[]
}

/** OpenClaw's `defaults`: the model new turns use, when the agent says it. */
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

export interface Attachment {
  type?: string
  mimeType?: string
  fileName?: string
  /** Base64. */
  content: string
}

/** Every method: its params and the payload of its answer. */
export interface Methods {
  'chat.send': {
    params: { sessionKey?: string, message: string, idempotencyKey: string, agentId?: string, attachments?: Attachment[], timeoutMs?: number }
    result: { runId: string, status: 'started' | 'in_flight' } | { runId: string, status: 'done', state: RunState, message: AssistantMessage }
  }
  'chat.history': {
    params: { sessionKey?: string, agentId?: string, limit?: number, maxBytes?: number, before?: string, sessionId?: string }
    result: { sessionKey: string, sessionId?: string, messages: HistoryMessage[], cursor: string, before?: string, hasMore: boolean, defaults: ModelDefaults }
  }
  'chat.startup': {
    params: { sessionKey?: string, agentId?: string, limit?: number, maxBytes?: number }
    result: {
      sessionKey: string
      sessionId?: string
      messages: HistoryMessage[]
      cursor: string
      before?: string
      hasMore: boolean
      totalMessages?: number
      pendingInputs: { items: [], total: 0 }
      defaults: ModelDefaults
      sessionInfo: SessionEntry | { key: string, kind: SessionEntry['kind'], agentId: string, isMain: boolean, updatedAt: null }
      metadata: { models: ModelChoice[], commands: [] }
      inFlightRun?: { runId: string, text: string }
    }
  }
  'chat.metadata': {
    params: { sessionKey?: string, agentId?: string }
    result: { models: ModelChoice[], commands: [] }
  }
  'chat.abort': {
    params: { sessionKey?: string, agentId?: string, runId?: string }
    result: { ok: true, aborted: boolean, runIds: string[] }
  }
  'sessions.list': {
    params: { limit?: number, label?: string, agentId?: string, search?: string, spawnedBy?: string, cursor?: string }
    result: { ts: number, count: number, sessions: SessionEntry[], defaults: ModelDefaults, cursor?: string }
  }
  'sessions.describe': {
    params: { key: string, agentId?: string }
    result: { session: SessionEntry | null }
  }
  'sessions.resolve': {
    params: { key?: string, agentId?: string, sessionId?: string, label?: string, reference?: { key: string, slug?: string } }
    result: { ok: true, key: string, agentId: string, displayName?: string } | { ok: false, candidates: Array<{ key: string, agentId: string }> }
  }
  'sessions.create': {
    params: { key?: string, agentId?: string, label?: string }
    result: { ok: true, key: string, sessionId: string, entry: SessionEntry }
  }
  'sessions.patch': {
    params: { key?: string, agentId?: string, label: string | null }
    result: { ok: true, key: string, entry: SessionEntry }
  }
  'sessions.reset': {
    params: { key?: string, agentId?: string }
    result: { ok: true, key: string, entry: SessionEntry }
  }
  'sessions.delete': {
    params: { key?: string, agentId?: string }
    result: { ok: true, key: string, deleted: boolean, archived: string[] }
  }
  'sessions.messages.subscribe': {
    params: { key?: string, agentId?: string }
    result: { subscribed: true, key: string, cursor: string }
  }
  'sessions.messages.unsubscribe': {
    params: { key?: string, agentId?: string }
    result: { subscribed: false, key: string }
  }
  'sessions.subscribe': { params: Record<string, never>, result: { subscribed: true } }
  'sessions.unsubscribe': { params: Record<string, never>, result: { subscribed: false } }
  'sessions.open': {
    params: { key?: string, agentId?: string, limit?: number, since?: string }
    result: OpenPayload
  }
  'agents.list': {
    params: Record<string, never>
    result: { defaultId: string, mainKey: string, scope: 'per-sender', agents: Array<{ id: string, model?: { primary: string } }> }
  }
  'agent.identity.get': { params: { agentId?: string, sessionKey?: string }, result: { agentId: string } }
  'models.list': { params: { agentId?: string, sessionKey?: string }, result: { models: ModelChoice[] } }
  'models.authStatus': { params: { agentId?: string }, result: { ts: number, providers: [] } }
}

export type MethodName = keyof Methods
export type MethodParams<M extends MethodName> = Methods[M]['params']
export type MethodResult<M extends MethodName> = Methods[M]['result']

/** How `sessions.open` with `since` resumes: see PROTOCOL.md. */
export type ReplayKind = 'live' | 'replay' | 'catchup' | 'reset'

export interface OpenPayload {
  key: string
  agentId: string
  sessionId?: string
  entry?: SessionEntry
  replay: ReplayKind
  messages: HistoryMessage[]
  before?: string
  cursor: string
  running?: { runId: string, text: string }
}

// ── events ───────────────────────────────────────────────────────────────────

export type RunState = 'final' | 'aborted' | 'error'

export interface ChatEvent {
  runId: string
  sessionKey: string
  /** Per run, per connection, from 1. */
  seq?: number
  state: 'delta' | RunState
  deltaText?: string
  /** The cumulative answer so far (delta), or the whole answer (final, aborted, error). */
  message?: Partial<AssistantMessage> & { role: 'assistant', content: ContentPart[] }
  /** A delta whose text replaces what the client had for the run (a resumed watcher's snapshot). */
  replace?: boolean
  stopReason?: string
  errorMessage?: string
  usage?: AssistantMessage['usage']
  /** With the `session-cursor` capability. */
  cursor?: string
}

/** `agent`: OpenClaw's run events that are not text (the session is in `data`); `seq` counts the run's `agent` frames. */
export type AgentEvent = { runId: string, seq: number, ts: number, cursor?: string } & (
  | { stream: 'lifecycle', data: { phase: 'start', sessionKey: string, model?: string } }
  | { stream: 'thinking', data: { text: string, delta: string, sessionKey: string } }
  | { stream: 'tool', data: { phase: 'start', name: string, toolCallId: string, args: Record<string, unknown>, sessionKey: string } }
)

export interface SessionMessageEvent {
  sessionKey: string
  messageId: string
  message: HistoryMessage
  runId?: string
  messageSeq?: number
  cursor: string
}

export interface SessionResetEvent {
  sessionKey: string
  deleted: boolean
  sessionId?: string
  cursor: string
}

export interface SessionsChangedEvent {
  sessionKey: string
  agentId: string
  reason: 'created' | 'updated' | 'reset' | 'deleted'
  ts: number
}

export interface EventPayloads {
  'connect.challenge': { nonce: string, ts: number }
  tick: { ts: number }
  shutdown: Record<string, unknown>
  chat: ChatEvent
  agent: AgentEvent
  'session.message': SessionMessageEvent
  'session.reset': SessionResetEvent
  'sessions.changed': SessionsChangedEvent
  error: ErrorShape
}

export type EventName = keyof EventPayloads
