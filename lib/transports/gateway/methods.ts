import { InvalidInputError, SessionNotFoundError } from '../../errors.js'
import { UNBORN_CURSOR, type Subscription } from '../../hub/hub.js'
import type { SessionRow } from '../../stores/store.js'
import type { TranscriptEntry, TranscriptMessage, UserMessage } from '../../transcript.js'
import type { GatewayConnection } from './connection.js'
import type { GatewayMethodResults, GatewaySessionRow, HistoryMessage, SessionResetPayload } from './frames.js'
import type { MethodName, MethodParams } from './protocol.js'
import { runningSnapshot, sessionEventFrames } from './session-events.js'

export interface MethodResult<P = unknown> {
  payload: P
  /** Runs right after the answer is sent: replayed events follow their answer. */
  after?: () => void
}

type Handler<M extends MethodName> = (connection: GatewayConnection, params: MethodParams<M>) => Promise<MethodResult<GatewayMethodResults[M]>>

const DEFAULT_HISTORY_LIMIT = 200
const DEFAULT_OPEN_LIMIT = 50

// Every method translates its params into calls on the gateway; none keeps session state.
const handlers: { [M in MethodName]: Handler<M> } = {
  async 'chat.send' (connection, params) {
    const { sessionKey, agentId } = await connection.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'write')
    const ticket = await connection.gateway.send({
      sessionKey,
      agentId,
      input: [userMessage(params.message, params.attachments)],
      idempotencyKey: params.idempotencyKey,
      ...(params.timeoutMs === undefined || params.timeoutMs === 0 ? {} : { timeoutMs: params.timeoutMs })
    })
    // A connection hears the sessions it sends to. From the run's start, so nothing is missed.
    let after: (() => void) | undefined
    if (!connection.isWatching(sessionKey)) {
      const since = ticket.status === 'done' ? undefined : ticket.cursor
      const subscription = await subscribe(connection, sessionKey, since)
      after = () => deliver(connection, sessionKey, subscription)
    }
    if (ticket.status !== 'done') return { payload: { runId: ticket.runId, status: ticket.status }, after }
    const result = await ticket.result
    return { payload: { runId: ticket.runId, status: 'done', state: result.state, message: result.message }, after }
  },

  async 'chat.history' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'read')
    try {
      const page = await connection.gateway.history(sessionKey, {
        limit: params.limit ?? DEFAULT_HISTORY_LIMIT,
        ...(params.before === undefined ? {} : { before: params.before }),
        ...(params.sessionId === undefined ? {} : { sessionId: params.sessionId })
      })
      return {
        payload: {
          sessionKey,
          sessionId: page.sessionId,
          messages: historyMessages(page.entries),
          cursor: page.cursor,
          ...(page.before === undefined ? {} : { before: page.before })
        }
      }
    } catch (err) {
      // A session that does not exist yet has an empty history, not an error.
      if (!(err instanceof SessionNotFoundError) || params.sessionId !== undefined) throw err
      return { payload: { sessionKey, messages: [], cursor: UNBORN_CURSOR } }
    }
  },

  async 'chat.abort' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'write')
    const { aborted, runIds } = await connection.gateway.abort(sessionKey, params.runId)
    return { payload: { ok: true, aborted, runIds } }
  },

  async 'sessions.list' (connection, params) {
    const page = await connection.gateway.list({
      principal: connection.principal,
      limit: params.limit ?? 50,
      ...(params.label === undefined ? {} : { label: params.label }),
      ...(params.agentId === undefined ? {} : { agentId: params.agentId.toLowerCase() }),
      ...(params.search === undefined ? {} : { search: params.search }),
      ...(params.cursor === undefined ? {} : { cursor: params.cursor })
    })
    return {
      payload: {
        ts: Date.now(),
        count: page.rows.length,
        sessions: page.rows.map(sessionRow),
        ...(page.cursor === undefined ? {} : { cursor: page.cursor })
      }
    }
  },

  async 'sessions.resolve' (connection, params) {
    const gateway = connection.gateway
    let rows: SessionRow[]
    if (params.key !== undefined) {
      const { sessionKey } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
      const row = await gateway.get(sessionKey)
      rows = row === undefined ? [] : [row]
    } else if (params.sessionId !== undefined) {
      const row = await gateway.store.findBySessionId(params.sessionId)
      // Found or not, a session the principal may not read looks the same: not there.
      rows = row !== undefined && await readable(connection, row.key) ? [row] : []
    } else if (params.label !== undefined) {
      rows = (await gateway.list({ principal: connection.principal, label: params.label, limit: 10 })).rows
    } else {
      throw new InvalidInputError('sessions.resolve needs one of key, sessionId or label')
    }
    const [only] = rows
    return rows.length === 1 && only !== undefined
      ? { payload: { ok: true, key: only.key, agentId: only.agentId, ...(only.label === undefined ? {} : { displayName: only.label }) } }
      : { payload: { ok: false, candidates: rows.map(row => ({ key: row.key, agentId: row.agentId })) } }
  },

  async 'sessions.create' (connection, params) {
    const { sessionKey, agentId } = params.key === undefined
      ? await connection.gateway.resolve({ agentId: params.agentId }, connection.principal, 'write', 'fresh')
      : await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    let row = await connection.gateway.create(sessionKey, agentId)
    if (params.label !== undefined) row = await connection.gateway.patch(sessionKey, { label: params.label })
    return { payload: { ok: true, key: row.key, sessionId: row.sessionId, entry: sessionRow(row) } }
  },

  async 'sessions.patch' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    const row = await connection.gateway.patch(sessionKey, params.label === undefined ? {} : { label: params.label ?? undefined })
    return { payload: { ok: true, key: row.key, entry: sessionRow(row) } }
  },

  async 'sessions.reset' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    const row = await connection.gateway.reset(sessionKey)
    return { payload: { ok: true, key: row.key, entry: sessionRow(row) } }
  },

  async 'sessions.delete' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    const deleted = await connection.gateway.delete(sessionKey)
    return { payload: { ok: true, key: sessionKey, deleted, archived: [] } }
  },

  async 'sessions.messages.subscribe' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    const subscription = await subscribe(connection, sessionKey, undefined)
    return { payload: { subscribed: true, key: sessionKey, cursor: subscription.cursor }, after: () => subscription.start() }
  },

  async 'sessions.messages.unsubscribe' (connection, params) {
    const { sessionKey } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    connection.unwatch(sessionKey)
    return { payload: { subscribed: false, key: sessionKey } }
  },

  async 'sessions.subscribe' (connection) {
    connection.watchList()
    return { payload: { subscribed: true } }
  },

  async 'sessions.unsubscribe' (connection) {
    connection.unwatchList()
    return { payload: { subscribed: false } }
  },

  async 'sessions.open' (connection, params) {
    const { sessionKey, agentId } = await connection.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    const opened = await connection.gateway.open(sessionKey, {
      limit: params.limit ?? DEFAULT_OPEN_LIMIT,
      ...(params.since === undefined ? {} : { since: params.since })
    }, event => connection.sessionEvent(event))
    connection.adopt(sessionKey, opened.subscription)
    const { row, entries, cursor, running, subscription } = opened
    return {
      payload: {
        key: sessionKey,
        agentId: row?.agentId ?? agentId,
        ...(row === undefined ? {} : { sessionId: row.sessionId, entry: sessionRow(row) }),
        replay: subscription.replay.kind,
        messages: historyMessages(entries),
        ...(opened.before === undefined ? {} : { before: opened.before }),
        cursor,
        ...(running === undefined ? {} : { running: { runId: running.runId, text: running.text } })
      },
      after: () => deliver(connection, sessionKey, subscription, true)
    }
  }
}

export async function callMethod<M extends MethodName> (connection: GatewayConnection, method: M, params: MethodParams<M>): Promise<MethodResult> {
  return await (handlers[method] as Handler<M>)(connection, params)
}

async function subscribe (connection: GatewayConnection, sessionKey: string, since: string | undefined): Promise<Subscription> {
  const subscription = await connection.gateway.subscribe(sessionKey, since === undefined ? {} : { since }, event => connection.sessionEvent(event))
  connection.adopt(sessionKey, subscription)
  return subscription
}

/**
 * Sends what a subscription missed, then lets its live events flow. `answered` says the
 * history (for a reset) and the running turn already went out in the answer.
 */
function deliver (connection: GatewayConnection, sessionKey: string, subscription: Subscription, answered = false): void {
  const { replay, cursor } = subscription
  const withCursor = connection.withCursor
  switch (replay.kind) {
    case 'replay':
    case 'catchup':
      for (const event of replay.events) for (const outgoing of sessionEventFrames(event, withCursor)) connection.send(outgoing)
      if (replay.kind === 'catchup' && replay.running !== undefined) connection.send(runningSnapshot(sessionKey, replay.running, cursor, withCursor))
      break
    case 'reset':
      // The session was reset between the send and this subscription: say so, the client reloads.
      if (!answered) connection.send({ event: 'session.reset', payload: { sessionKey, deleted: cursor === UNBORN_CURSOR, cursor } satisfies SessionResetPayload })
      if (replay.running !== undefined) connection.send(runningSnapshot(sessionKey, replay.running, cursor, withCursor))
      break
    case 'live':
      break
  }
  subscription.start()
}

async function readable (connection: GatewayConnection, sessionKey: string): Promise<boolean> {
  try {
    await connection.gateway.resolve({ sessionKey }, connection.principal, 'read')
    return true
  } catch {
    return false
  }
}

/** A row as the gateway protocol lists it. */
function sessionRow (row: SessionRow): GatewaySessionRow {
  return {
    key: row.key,
    agentId: row.agentId,
    sessionId: row.sessionId,
    ...(row.label === undefined ? {} : { label: row.label, displayName: row.label }),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    ...(row.preview === undefined ? {} : { lastMessagePreview: row.preview })
  }
}

/** `chat.send`'s message and attachments as the transcript's user message. */
function userMessage (text: string, attachments: MethodParams<'chat.send'>['attachments']): UserMessage {
  const content: UserMessage['content'] = text === '' ? [] : [{ type: 'text', text }]
  for (const attachment of attachments ?? []) {
    if (typeof attachment.content !== 'string') throw new InvalidInputError('an attachment needs its content as a base64 string')
    const mimeType = attachment.mimeType
    content.push(attachment.type === 'image' || mimeType?.startsWith('image/') === true
      ? { type: 'image', data: attachment.content, ...(mimeType === undefined ? {} : { mimeType }) }
      : { type: 'file', data: attachment.content, ...(mimeType === undefined ? {} : { mimeType }), ...(attachment.fileName === undefined ? {} : { filename: attachment.fileName }) })
  }
  if (content.length === 0) throw new InvalidInputError('chat.send needs a message or an attachment')
  return { role: 'user', content, timestamp: Date.now() }
}

/** The entries that hold a message, as messages with their entry id. */
function historyMessages (entries: readonly TranscriptEntry[]): HistoryMessage[] {
  return entries.filter((entry): entry is TranscriptEntry & { message: TranscriptMessage } => entry.message !== undefined)
    .map(entry => ({ ...entry.message, id: entry.id }))
}
