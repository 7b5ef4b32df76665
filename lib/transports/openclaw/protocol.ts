import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'

// OpenClaw's gateway protocol v4, as far as this gateway speaks it. PROTOCOL.md documents
// the wire; this file holds its constants and the shape of every frame we accept.

export const PROTOCOL_VERSION = 4

export const ErrorCode = {
  invalidRequest: 'INVALID_REQUEST',
  forbidden: 'FORBIDDEN',
  unavailable: 'UNAVAILABLE'
} as const

export interface ErrorShape {
  code: string
  message: string
  /** Our precise `FSG_*` code and what a caller needs to act on it (a busy session's run and cursor); on a protocol mismatch, OpenClaw's `expectedProtocol`. */
  details?: { code?: string, runId?: string, cursor?: string, sessionKey?: string, expectedProtocol?: number }
  retryable?: boolean
  retryAfterMs?: number
}

/** Frames before `connect` may be at most this big; OpenClaw's own limit. */
export const MAX_HANDSHAKE_BYTES = 64 * 1024

/** A connection that asks for this capability gets a `cursor` in every session event's payload. */
export const CURSOR_CAPABILITY = 'session-cursor'

// ── params ───────────────────────────────────────────────────────────────────

const Text = Type.String({ minLength: 1 })
const Limit = (maximum: number): ReturnType<typeof Type.Integer> => Type.Integer({ minimum: 1, maximum })
/** The most bytes of messages an answer may hold; OpenClaw's floor. */
const MaxBytes = Type.Integer({ minimum: 1024 })

/**
 * OpenClaw's params are closed objects. We accept every field OpenClaw defines (those we
 * have no use for are ignored), add ours as optional extras, and refuse anything else.
 */
function params<P extends TProperties> (properties: P, ignored: readonly string[]): TObject<P> {
  const extra = Object.fromEntries(ignored.map(name => [name, Type.Optional(Type.Unknown())]))
  return Type.Object({ ...extra, ...properties }, { additionalProperties: false }) as unknown as TObject<P>
}

const ConnectParams = Type.Object({
  minProtocol: Type.Integer({ minimum: 1 }),
  maxProtocol: Type.Integer({ minimum: 1 }),
  client: Type.Object({
    id: Text,
    version: Text,
    platform: Text,
    mode: Text
  }, { additionalProperties: true }),
  role: Type.Optional(Text),
  scopes: Type.Optional(Type.Array(Text)),
  caps: Type.Optional(Type.Array(Text)),
  auth: Type.Optional(Type.Object({
    token: Type.Optional(Type.String()),
    password: Type.Optional(Type.String())
  }, { additionalProperties: true }))
}, { additionalProperties: true })

const Attachment = Type.Object({
  type: Type.Optional(Type.String()),
  mimeType: Type.Optional(Type.String()),
  fileName: Type.Optional(Type.String()),
  content: Type.Optional(Type.Unknown())
}, { additionalProperties: true })

const SessionTarget = {
  sessionKey: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  agentId: Type.Optional(Text)
}
const KeyTarget = {
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  agentId: Type.Optional(Text)
}

export const methodParams = {
  'chat.send': params({
    ...SessionTarget,
    message: Type.String(),
    idempotencyKey: Text,
    attachments: Type.Optional(Type.Array(Attachment)),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 0 }))
  }, ['sessionId', 'intent', 'thinking', 'fastMode', 'fastAutoOnSeconds', 'queueMode', 'deliver', 'originatingChannel',
    'originatingTo', 'originatingAccountId', 'originatingThreadId', 'replyToId', 'toolBindings', 'systemInputProvenance',
    'systemProvenanceReceipt', 'suppressCommandInterpretation', 'expectedLeafEntryId', 'expectedSessionRoutingContract',
    'expectedPermissionMode', 'expectedToolOverrides']),
  'chat.history': params({
    ...SessionTarget,
    limit: Type.Optional(Limit(1000)),
    maxBytes: Type.Optional(MaxBytes),
    /** Ours: the `before` of an earlier answer, for older messages. */
    before: Type.Optional(Text),
    sessionId: Type.Optional(Text)
  }, ['cursor', 'offset', 'pendingBefore', 'inputRunIds', 'messageId', 'maxChars']),
  /** A session as a client opens it: its history, row and defaults; the connection watches it from then on. */
  'chat.startup': params({
    ...SessionTarget,
    limit: Type.Optional(Limit(1000)),
    maxBytes: Type.Optional(MaxBytes)
  }, ['cursor', 'offset', 'pendingBefore', 'inputRunIds', 'messageId', 'maxChars', 'sessionId', 'shortId', 'slugHint']),
  'chat.metadata': params({ ...SessionTarget }, ['authProfileId']),
  'chat.abort': params({ ...SessionTarget, runId: Type.Optional(Text) }, ['preserveSideRuns']),
  'sessions.list': params({
    /** OpenClaw takes any size; we clamp it to 1000 (a page; `cursor` pages on). */
    limit: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Only children of that session: none, since this gateway has no child sessions. */
    spawnedBy: Type.Optional(Text),
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    agentId: Type.Optional(Text),
    search: Type.Optional(Type.String()),
    /** Ours: the `cursor` of the previous page. */
    cursor: Type.Optional(Text)
  }, ['offset', 'activeMinutes', 'requireLastInteraction', 'sortBy', 'includeGlobal', 'includeUnknown', 'configuredAgentsOnly',
    'includeDerivedTitles', 'includeLastMessage', 'boardFace', 'creatorId', 'ownerId', 'ownerFirst', 'involvingMe',
    'involvingProfileId', 'includePeople', 'archived']),
  'sessions.describe': params({ ...KeyTarget, key: Type.String({ minLength: 1, maxLength: 512 }) }, ['includeDerivedTitles', 'includeLastMessage']),
  'sessions.resolve': params({
    ...KeyTarget,
    sessionId: Type.Optional(Text),
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    /** A deep link's session (OpenClaw's Control UI at `/chat/<agent>/<name>`): its key; the slug names it for display. */
    reference: Type.Optional(Type.Object({ key: Type.String({ minLength: 1, maxLength: 512 }), slug: Type.Optional(Text) }, { additionalProperties: false }))
  }, ['shortId', 'slugHint', 'spawnedBy', 'includeGlobal', 'includeUnknown', 'allowMissing']),
  'sessions.create': params({
    ...KeyTarget,
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
  }, ['idempotencyKey', 'displayName', 'category', 'model', 'contextWindow', 'thinkingLevel', 'fastMode', 'permissionMode',
    'toolOverrides', 'incognito', 'visibility', 'catalogId', 'parentSessionKey', 'spawnDepth', 'fork', 'forkFrom',
    'emitCommandHooks', 'succeedsParent', 'task', 'message', 'attachments', 'projectId', 'projectGitUrl', 'worktree',
    'worktreeBaseRef', 'worktreeName', 'execNode', 'cwd']),
  'sessions.patch': params({
    ...KeyTarget,
    label: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 512 }), Type.Null()]))
  }, ['expectedSessionId', 'expectedLifecycleRevision', 'expectedPermissionMode', 'expectedToolOverrides',
    'expectedMarkedUnreadAt', 'icon', 'color', 'category', 'boardFace', 'statusNote', 'attention', 'ttlMinutes', 'archived',
    'pinned', 'unread', 'contextWindow', 'thinkingLevel', 'fastMode', 'toolOverrides', 'verboseLevel', 'traceLevel',
    'reasoningLevel', 'responseUsage', 'elevatedLevel', 'execHost', 'execSecurity', 'execAsk', 'execNode', 'permissionMode',
    'model', 'completionOwnerSessionKey', 'inheritedToolPolicyVersion', 'inheritedToolAllow', 'inheritedToolDeny',
    'sendPolicy', 'groupActivation']),
  'sessions.reset': params({ ...KeyTarget }, ['reason']),
  'sessions.delete': params({ ...KeyTarget }, ['deleteTranscript', 'expectedSessionId', 'expectedLifecycleRevision',
    'expectedSessionUpdatedAt', 'emitLifecycleHooks', 'archivedOnly']),
  'sessions.messages.subscribe': params({ ...KeyTarget }, ['includeApprovals']),
  'sessions.messages.unsubscribe': params({ ...KeyTarget }, []),
  'sessions.subscribe': params({}, []),
  'sessions.unsubscribe': params({}, []),
  /** Ours: subscribe, recent history, cursor and running turn in one answer. */
  'sessions.open': params({
    ...KeyTarget,
    limit: Type.Optional(Limit(1000)),
    since: Type.Optional(Text)
  }, []),
  // What a client shows about the agents and their model (OpenClaw's Control UI asks on every load).
  'agents.list': params({}, []),
  'agent.identity.get': params({ ...SessionTarget, sessionKey: Type.Optional(Type.String({ maxLength: 512 })) }, []),
  'models.list': params({ ...SessionTarget }, ['authProfileId', 'provider', 'includeDetails', 'includeProviderCapabilities',
    'includeDefaultModels', 'preparedOnly', 'refresh', 'view']),
  'models.authStatus': params({ agentId: Type.Optional(Type.String()) }, ['refresh'])
}

export type MethodName = keyof typeof methodParams
export type MethodParams<M extends MethodName> = Static<(typeof methodParams)[M]>
export type ConnectParams = Static<typeof ConnectParams>

export const METHODS = Object.keys(methodParams) as MethodName[]
export const EVENTS = ['connect.challenge', 'tick', 'shutdown', 'chat', 'agent', 'session.message', 'session.reset', 'sessions.changed'] as const

export const checkConnect = TypeCompiler.Compile(ConnectParams)
export const checkParams = Object.fromEntries(
  Object.entries(methodParams).map(([method, schema]) => [method, TypeCompiler.Compile(schema)])
) as { [M in MethodName]: TypeCheck<(typeof methodParams)[M]> }

export function isMethod (method: string): method is MethodName {
  return Object.hasOwn(methodParams, method)
}

/** The first thing wrong with `value`, naming the field: `params.sessionKey: expected string`. */
export function describeInvalid (check: TypeCheck<any>, value: unknown, root: string): string {
  // Only called once Check() failed, so there is a first error.
  const error = check.Errors(value).First() as ValueError
  const field = error.path === '' ? root : `${root}${error.path.replaceAll('/', '.')}`
  return error.type === ValueErrorType.ObjectAdditionalProperties
    ? `${field}: unknown field`
    : `${field}: ${error.message.toLowerCase()}`
}
