import { Type, type Static } from '@sinclair/typebox'

// Every body and answer of the REST routes, as TypeBox schemas: they validate what comes
// in (see validation.ts), shape what goes out, and PROTOCOL.md lists them.

const Key = Type.String({ minLength: 1, maxLength: 512 })
const Label = Type.String({ minLength: 1, maxLength: 512 })
const Limit = Type.Integer({ minimum: 1, maximum: 1000 })
/** EventSource and links cannot set headers: the token may ride in the query of a GET. */
const Token = Type.Optional(Type.String())
const AgentId = Type.Optional(Type.String({ minLength: 1, maxLength: 64 }))

export const KeyParams = Type.Object({ key: Key })

export const ListQuery = Type.Object({
  limit: Type.Optional(Limit),
  label: Type.Optional(Label),
  agentId: AgentId,
  search: Type.Optional(Type.String({ maxLength: 512 })),
  /** The `cursor` of the previous page. */
  cursor: Type.Optional(Type.String({ minLength: 1 })),
  token: Token
}, { additionalProperties: false })

export const SessionQuery = Type.Object({ agentId: AgentId, token: Token }, { additionalProperties: false })

export const MessagesQuery = Type.Object({
  limit: Type.Optional(Limit),
  /** The `before` of a previous page, for older messages. */
  before: Type.Optional(Type.String({ minLength: 1 })),
  /** An older generation of the session (after a reset). */
  sessionId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  agentId: AgentId,
  token: Token
}, { additionalProperties: false })

export const EventsQuery = Type.Object({
  /** A cursor to resume from; a `Last-Event-ID` header wins over it. */
  since: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  /** History rows in the opening `session.open` event. */
  limit: Type.Optional(Limit),
  agentId: AgentId,
  token: Token
}, { additionalProperties: false })

export const PatchBody = Type.Object({
  /** `null` clears it. */
  label: Type.Union([Label, Type.Null()])
}, { additionalProperties: false })

export const SessionEntry = Type.Object({
  key: Type.String(),
  agentId: Type.String(),
  sessionId: Type.String(),
  label: Type.Optional(Type.String()),
  displayName: Type.Optional(Type.String()),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
  lastMessagePreview: Type.Optional(Type.String())
})

export const SessionList = Type.Object({
  sessions: Type.Array(SessionEntry),
  /** Present when more sessions follow: pass it as `cursor`. */
  cursor: Type.Optional(Type.String())
})

export const Running = Type.Object({ runId: Type.String(), text: Type.String() })

export const SessionDetail = Type.Composite([SessionEntry, Type.Object({
  /** The session's position now: `GET …/events?since=<cursor>` follows on from here. */
  cursor: Type.String(),
  running: Type.Optional(Running)
})])

/** A transcript message (user, assistant or tool result) with its row id. */
export const HistoryMessage = Type.Object({
  id: Type.String(),
  role: Type.String(),
  content: Type.Array(Type.Unknown()),
  timestamp: Type.Number()
}, { additionalProperties: true })

export const MessagePage = Type.Object({
  sessionKey: Type.String(),
  /** Absent for a session that does not exist (yet): its history is empty. */
  sessionId: Type.Optional(Type.String()),
  /** Oldest first. */
  messages: Type.Array(HistoryMessage),
  cursor: Type.String(),
  /** Present when older messages exist: pass it as `before`. */
  before: Type.Optional(Type.String())
})

export const Deleted = Type.Object({ key: Type.String(), deleted: Type.Boolean() })

export const ErrorBody = Type.Object({
  error: Type.Object({
    message: Type.String(),
    type: Type.String(),
    param: Type.Union([Type.String(), Type.Null()]),
    code: Type.Union([Type.String(), Type.Null()])
  }, { additionalProperties: true })
})

export type SessionEntry = Static<typeof SessionEntry>
