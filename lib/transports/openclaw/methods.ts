import type { AgentModel } from '../../agents/agent.js'
import type { Principal } from '../../auth.js'
import { InvalidInputError, UnknownAgentError } from '../../errors.js'
import { parseCursor } from '../../events.js'
import { UNBORN_CURSOR, type SessionListener, type Subscription } from '../../hub/hub.js'
import type { ResolvedSession, SessionAction, SessionHints, WhenMissing } from '../../resolver.js'
import { normalizeAgentId } from '../../session-key.js'
import type { SessionService } from '../../session-service.js'
import type { SessionRow } from '../../stores/store.js'
import type { UserMessage } from '../../transcript.js'
import type { ChatStartupResult, GatewayMethodResults, ModelChoice, SessionResetPayload } from './frames.js'
import { withinBytes } from './history-budget.js'
import type { MethodName, MethodParams } from './protocol.js'
import { runningSnapshot, sessionEventFrames, type OutgoingEvent } from './session-events.js'
import { historyMessages, modelDefaults, sessionInfo, sessionRow } from './shapes.js'

/** What the gateway knows about itself, for the methods that describe it. */
export interface GatewayFacts {
  defaultAgentId: string
  mainKey: string
  /** The allow-list of agent ids, when there is one. */
  agents?: readonly string[]
  /** The agent's model, when it says. */
  model?: AgentModel
}

/**
 * What a method handler may use of its connection, and nothing of the connection's own
 * workings (the handshake, framing, backpressure). The connection provides it.
 */
export interface MethodContext {
  readonly sessions: SessionService
  readonly facts: GatewayFacts
  readonly principal: Principal
  /** Whether this connection asked for a cursor in every session event. */
  readonly withCursor: boolean
  /** The session a frame means: its own key (and agent), else the connection's default; always through the resolver. */
  resolve: (hints: SessionHints, action: SessionAction, whenMissing?: WhenMissing) => Promise<ResolvedSession>
  /** Whether the connection already hears this session. */
  watching: (sessionKey: string) => boolean
  /**
   * Holds room for a watch on the session until the function it returns is called (once the
   * watch is made, or was not); refuses (FSG_TOO_MANY_WATCHES) when the connection watches
   * `maxWatchedSessions` other sessions already.
   */
  holdRoomToWatch: (sessionKey: string) => () => void
  /** Makes `subscription` the connection's watch on the session, replacing any earlier one. */
  watch: (sessionKey: string, subscription: Subscription) => void
  unwatch: (sessionKey: string) => boolean
  /** `sessions.changed` for every session this principal may read, until `unwatchList`. */
  watchList: () => void
  unwatchList: () => boolean
  /** Where this connection's session subscriptions deliver. */
  readonly listener: SessionListener
  /** Sends an event frame; `paced`: replayed (already in memory), sent as the socket drains, not counted as backlog. */
  send: (outgoing: OutgoingEvent, paced?: boolean) => void
}

export interface MethodResult<P = unknown> {
  payload: P
  /** Runs right after the answer is sent: replayed events follow their answer. */
  after?: () => void
}

type Handler<M extends MethodName> = (context: MethodContext, params: MethodParams<M>) => Promise<MethodResult<GatewayMethodResults[M]>>

const DEFAULT_HISTORY_LIMIT = 200
const DEFAULT_OPEN_LIMIT = 50

// Every method translates its params into calls on the gateway; none keeps session state.
const handlers: { [M in MethodName]: Handler<M> } = {
  async 'chat.send' (context, params) {
    const { sessionKey, agentId } = await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'write')
    // A connection hears the sessions it sends to: refused before the turn starts if it may watch no more.
    const { ticket, after } = await withRoomToWatch(context, sessionKey, async () => {
      const ticket = await context.sessions.send({
        sessionKey,
        agentId,
        input: [userMessage(params.message, params.attachments)],
        idempotencyKey: params.idempotencyKey,
        ...(params.timeoutMs === undefined || params.timeoutMs === 0 ? {} : { timeoutMs: params.timeoutMs })
      })
      if (context.watching(sessionKey)) return { ticket, after: undefined }
      // From the run's start, so nothing is missed.
      const subscription = await subscribe(context, sessionKey, ticket.status === 'done' ? undefined : ticket.cursor)
      return { ticket, after: () => deliver(context, sessionKey, subscription) }
    })
    if (ticket.status !== 'done') return { payload: { runId: ticket.runId, status: ticket.status }, after }
    const result = await ticket.result
    return { payload: { runId: ticket.runId, status: 'done', state: result.state, message: result.message }, after }
  },

  async 'chat.history' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'read')
    const read = async (limit: number): Promise<Awaited<ReturnType<SessionService['history']>>> => await context.sessions.history(sessionKey, {
      limit,
      ...(params.before === undefined ? {} : { before: params.before }),
      ...(params.sessionId === undefined ? {} : { sessionId: params.sessionId })
    })
    let page = await read(params.limit ?? DEFAULT_HISTORY_LIMIT)
    if (params.maxBytes !== undefined) page = await withinBytes(page, params.maxBytes, read)
    return {
      payload: {
        sessionKey,
        ...(page.sessionId === undefined ? {} : { sessionId: page.sessionId }),
        messages: historyMessages(page.entries),
        cursor: page.cursor,
        ...(page.before === undefined ? {} : { before: page.before }),
        hasMore: page.before !== undefined,
        defaults: modelDefaults(context.facts.model)
      }
    }
  },

  async 'chat.startup' (context, params) {
    const { sessionKey, agentId } = await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'read')
    // sessions.open's snapshot: history, row and running turn from one instant, and the watch.
    const opened = await withRoomToWatch(context, sessionKey, async () => {
      const opened = await context.sessions.open(sessionKey, { limit: params.limit ?? DEFAULT_HISTORY_LIMIT }, context.listener)
      context.watch(sessionKey, opened.subscription)
      return opened
    })
    const { row, running, cursor, subscription } = opened
    let page = { entries: opened.entries, ...(opened.before === undefined ? {} : { before: opened.before }) }
    if (params.maxBytes !== undefined) {
      // Rows committed after the snapshot arrive as events: a shorter page leaves them out too.
      const head = parseCursor(cursor).seq
      page = await withinBytes(page, params.maxBytes, async limit => {
        const read = await context.sessions.history(sessionKey, { limit })
        return { ...read, entries: read.entries.filter(entry => entry.seq === undefined || entry.seq <= head) }
      })
    }
    const messages = historyMessages(page.entries)
    return {
      payload: {
        sessionKey,
        ...(row === undefined ? {} : { sessionId: row.sessionId }),
        messages,
        cursor,
        ...(page.before === undefined ? {} : { before: page.before }),
        hasMore: page.before !== undefined,
        ...(page.before === undefined ? { totalMessages: messages.length } : {}),
        // Sends waiting behind a running turn are not listed: the lane keeps them.
        pendingInputs: { items: [], total: 0 },
        defaults: modelDefaults(context.facts.model),
        sessionInfo: sessionInfo(sessionKey, row?.agentId ?? agentId, context.facts.mainKey, row, running),
        metadata: metadata(context.facts),
        ...(running === undefined ? {} : { inFlightRun: { runId: running.runId, text: running.text } })
      } satisfies ChatStartupResult,
      after: () => deliver(context, sessionKey, subscription, true)
    }
  },

  async 'chat.metadata' (context, params) {
    if (params.sessionKey !== undefined) await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'read')
    else agentNamed(context.facts, params.agentId)
    return { payload: metadata(context.facts) }
  },

  async 'chat.abort' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'write')
    const { aborted, runIds } = await context.sessions.abort(sessionKey, params.runId)
    return { payload: { ok: true, aborted, runIds } }
  },

  async 'sessions.list' (context, params) {
    const defaults = modelDefaults(context.facts.model)
    // No session here is another's child: a query for children has none to list.
    if (params.spawnedBy !== undefined) return { payload: { ts: Date.now(), count: 0, sessions: [], defaults } }
    const page = await context.sessions.list({
      principal: context.principal,
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
        sessions: page.rows.map(row => sessionRow(row, context.facts.mainKey)),
        defaults,
        ...(page.cursor === undefined ? {} : { cursor: page.cursor })
      }
    }
  },

  async 'sessions.resolve' (context, params) {
    const sessions = context.sessions
    let rows: SessionRow[]
    const key = params.key ?? params.reference?.key
    if (key !== undefined) {
      const { sessionKey } = await context.resolve({ sessionKey: key, agentId: params.agentId }, 'read')
      const row = await sessions.get(sessionKey)
      rows = row === undefined ? [] : [row]
    } else if (params.sessionId !== undefined) {
      const row = await sessions.findBySessionId(params.sessionId, context.principal)
      rows = row === undefined ? [] : [row]
    } else if (params.label !== undefined) {
      rows = (await sessions.list({ principal: context.principal, label: params.label, limit: 10 })).rows
    } else {
      throw new InvalidInputError('sessions.resolve needs one of key, sessionId or label')
    }
    const [only] = rows
    return rows.length === 1 && only !== undefined
      ? { payload: { ok: true, key: only.key, agentId: only.agentId, ...(only.label === undefined ? {} : { displayName: only.label }) } }
      : { payload: { ok: false, candidates: rows.map(row => ({ key: row.key, agentId: row.agentId })) } }
  },

  async 'sessions.create' (context, params) {
    const { sessionKey, agentId } = params.key === undefined
      ? await context.resolve({ agentId: params.agentId }, 'write', 'fresh')
      : await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    let row = await context.sessions.create(sessionKey, agentId)
    if (params.label !== undefined) row = await context.sessions.patch(sessionKey, { label: params.label })
    return { payload: { ok: true, key: row.key, sessionId: row.sessionId, entry: sessionRow(row, context.facts.mainKey) } }
  },

  async 'sessions.patch' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    const row = await context.sessions.patch(sessionKey, params.label === undefined ? {} : { label: params.label ?? undefined })
    return { payload: { ok: true, key: row.key, entry: sessionRow(row, context.facts.mainKey) } }
  },

  async 'sessions.reset' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    const row = await context.sessions.reset(sessionKey)
    return { payload: { ok: true, key: row.key, entry: sessionRow(row, context.facts.mainKey) } }
  },

  async 'sessions.delete' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'write')
    const deleted = await context.sessions.delete(sessionKey)
    return { payload: { ok: true, key: sessionKey, deleted, archived: [] } }
  },

  async 'sessions.messages.subscribe' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    // A second watch beside the one it has (chat.startup's, say) would hear some events twice.
    if (context.watching(sessionKey)) {
      const cursor = (await context.sessions.get(sessionKey))?.cursor ?? UNBORN_CURSOR
      return { payload: { subscribed: true, key: sessionKey, cursor } }
    }
    const subscription = await withRoomToWatch(context, sessionKey, async () => await subscribe(context, sessionKey, undefined))
    return { payload: { subscribed: true, key: sessionKey, cursor: subscription.cursor }, after: () => subscription.start() }
  },

  async 'sessions.messages.unsubscribe' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    context.unwatch(sessionKey)
    return { payload: { subscribed: false, key: sessionKey } }
  },

  async 'sessions.subscribe' (context) {
    context.watchList()
    return { payload: { subscribed: true } }
  },

  async 'sessions.unsubscribe' (context) {
    context.unwatchList()
    return { payload: { subscribed: false } }
  },

  async 'sessions.open' (context, params) {
    const { sessionKey, agentId } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    const opened = await withRoomToWatch(context, sessionKey, async () => {
      const opened = await context.sessions.open(sessionKey, {
        limit: params.limit ?? DEFAULT_OPEN_LIMIT,
        ...(params.since === undefined ? {} : { since: params.since })
      }, context.listener)
      context.watch(sessionKey, opened.subscription)
      return opened
    })
    const { row, entries, cursor, running, subscription } = opened
    return {
      payload: {
        key: sessionKey,
        agentId: row?.agentId ?? agentId,
        ...(row === undefined ? {} : { sessionId: row.sessionId, entry: sessionRow(row, context.facts.mainKey) }),
        replay: subscription.replay.kind,
        messages: historyMessages(entries),
        ...(opened.before === undefined ? {} : { before: opened.before }),
        cursor,
        ...(running === undefined ? {} : { running: { runId: running.runId, text: running.text } })
      },
      after: () => deliver(context, sessionKey, subscription, true)
    }
  },

  async 'sessions.describe' (context, params) {
    const { sessionKey } = await context.resolve({ sessionKey: params.key, agentId: params.agentId }, 'read')
    const row = await context.sessions.get(sessionKey)
    return { payload: { session: row === undefined ? null : sessionRow(row, context.facts.mainKey, row.running) } }
  },

  async 'agents.list' (context) {
    const { defaultAgentId, mainKey, model } = context.facts
    return {
      payload: {
        defaultId: defaultAgentId,
        mainKey,
        // Each sender's key is its own session, as in OpenClaw's default scope.
        scope: 'per-sender',
        agents: agentIds(context.facts).map(id => ({ id, ...(model === undefined ? {} : { model: { primary: `${model.provider}/${model.id}` } }) }))
      }
    }
  },

  async 'agent.identity.get' (context, params) {
    const agentId = params.sessionKey === undefined || params.sessionKey === ''
      ? agentNamed(context.facts, params.agentId)
      : (await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'read')).agentId
    return { payload: { agentId } }
  },

  async 'models.list' (context, params) {
    if (params.sessionKey !== undefined) await context.resolve({ sessionKey: params.sessionKey, agentId: params.agentId }, 'read')
    else agentNamed(context.facts, params.agentId)
    return { payload: { models: models(context.facts) } }
  },

  async 'models.authStatus' (context, params) {
    agentNamed(context.facts, params.agentId)
    // The upstream's credentials are the operator's configuration, not something a client sees or changes.
    return { payload: { ts: Date.now(), providers: [] } }
  }
}

export async function callMethod<M extends MethodName> (context: MethodContext, method: M, params: MethodParams<M>): Promise<MethodResult> {
  return await (handlers[method] as Handler<M>)(context, params)
}

/** Runs `work` (which watches the session) with room held for that watch; refused at the connection's limit. */
async function withRoomToWatch<T> (context: MethodContext, sessionKey: string, work: () => Promise<T>): Promise<T> {
  const release = context.holdRoomToWatch(sessionKey)
  try {
    return await work()
  } finally {
    release()
  }
}

async function subscribe (context: MethodContext, sessionKey: string, since: string | undefined): Promise<Subscription> {
  const subscription = await context.sessions.subscribe(sessionKey, since === undefined ? {} : { since }, context.listener)
  context.watch(sessionKey, subscription)
  return subscription
}

/**
 * Sends what a subscription missed, then lets its live events flow. `answered` says the
 * history (for a reset) and the running turn already went out in the answer.
 */
function deliver (context: MethodContext, sessionKey: string, subscription: Subscription, answered = false): void {
  const { replay, cursor } = subscription
  const withCursor = context.withCursor
  switch (replay.kind) {
    case 'replay':
    case 'catchup':
      for (const event of replay.events) for (const outgoing of sessionEventFrames(event, withCursor)) context.send(outgoing, true)
      if (replay.kind === 'catchup' && replay.running !== undefined) context.send(runningSnapshot(sessionKey, replay.running, cursor, withCursor), true)
      break
    case 'reset':
      // The session was reset between the send and this subscription: say so, the client reloads.
      if (!answered) context.send({ event: 'session.reset', payload: { sessionKey, deleted: cursor === UNBORN_CURSOR, cursor } satisfies SessionResetPayload })
      if (replay.running !== undefined) context.send(runningSnapshot(sessionKey, replay.running, cursor, withCursor))
      break
    case 'live':
      break
  }
  subscription.start()
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

/** The configured agents: the allow-list, else the default agent. */
function agentIds (facts: GatewayFacts): readonly string[] {
  return facts.agents ?? [facts.defaultAgentId]
}

/** An agent a frame names (or the default one), refused when the allow-list does not have it. */
function agentNamed (facts: GatewayFacts, agentId: string | undefined): string {
  const id = agentId === undefined ? facts.defaultAgentId : normalizeAgentId(agentId)
  if (facts.agents !== undefined && !facts.agents.includes(id)) throw new UnknownAgentError(id)
  return id
}

function models (facts: GatewayFacts): ModelChoice[] {
  const model = facts.model
  return model === undefined ? [] : [{ id: model.id, name: model.id, provider: model.provider, available: true }]
}

/** What a chat screen offers: the agent's model; no slash commands (this gateway runs none). */
function metadata (facts: GatewayFacts): ChatStartupResult['metadata'] {
  return { models: models(facts), commands: [] }
}
