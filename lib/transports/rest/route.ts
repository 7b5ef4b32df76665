import type { Static } from '@sinclair/typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Principal } from '../../auth.js'
import { GatewayClosedError, SessionNotFoundError } from '../../errors.js'
import type { ResolvedSession, SessionAction } from '../../resolver.js'
import type { SessionRow } from '../../stores/store.js'
import type { TranscriptEntry } from '../../transcript.js'
import { historyMessages } from '../openclaw/shapes.js'
import { toResponsesError } from '../responses/errors.js'
import type { OutboxItem } from '../outbox.js'
import { EventStream, runningEvent, sseEvents, type EventStreamOptions } from './event-stream.js'
import {
  Deleted, ErrorBody, EventsQuery, KeyParams, ListQuery, MessagePage, MessagesQuery, PatchBody,
  SessionDetail, SessionEntry, SessionList, SessionQuery
} from './schemas.js'
import { typeboxValidator } from './validation.js'

export interface RestRouteOptions extends EventStreamOptions {
  prefix: string
}

const DEFAULT_LIST_LIMIT = 50
const DEFAULT_HISTORY_LIMIT = 50

type KeyRequest<Q> = FastifyRequest<{ Params: Static<typeof KeyParams>, Querystring: Q }>

/**
 * Sessions over plain HTTP, for pages and services that keep no socket: list, read,
 * page through history, label, delete, and follow a session's events as Server-Sent
 * Events that resume from `Last-Event-ID` as `sessions.open` resumes from `since`.
 * Every key goes through the one resolver (and so `authorize`); errors take the
 * OpenResponses shape, like everything else under `/v1`.
 */
export async function restRoutes (scope: FastifyInstance, options: RestRouteOptions): Promise<void> {
  const gateway = scope.sessionGateway
  // Fastify puts `options.prefix` (`/v1`) in front of every route here.
  const prefix = '/sessions'
  scope.setValidatorCompiler(typeboxValidator)
  scope.setErrorHandler(function restError (err, request, reply) {
    const error = toResponsesError(err, request.log)
    void reply.code(error.status).send({ error: error.body })
  })

  // A shutdown ends every event stream, or closing the server would wait for their readers.
  const streams = new Set<EventStream>()
  let closing = false
  scope.addHook('preClose', function endEventStreams (done) {
    closing = true
    for (const stream of streams) stream.end()
    done()
  })

  // The key is in the path, which the scope's resolver hook does not read: each handler resolves it.
  const config = { sessionGateway: { session: 'none' as const } }
  const errors = { '4xx': ErrorBody }

  async function resolve (request: KeyRequest<{ agentId?: string | undefined }>, action: SessionAction): Promise<ResolvedSession> {
    return await gateway.resolve({ sessionKey: request.params.key, agentId: request.query.agentId }, request.gatewayPrincipal as Principal, action)
  }

  scope.get<{ Querystring: Static<typeof ListQuery> }>(prefix, {
    config, schema: { querystring: ListQuery, response: { 200: SessionList, ...errors } }
  }, async request => {
    const { limit, label, agentId, search, cursor } = request.query
    const page = await gateway.list({
      principal: request.gatewayPrincipal as Principal,
      limit: limit ?? DEFAULT_LIST_LIMIT,
      ...(label === undefined ? {} : { label }),
      ...(agentId === undefined ? {} : { agentId: agentId.toLowerCase() }),
      ...(search === undefined ? {} : { search }),
      ...(cursor === undefined ? {} : { cursor })
    })
    return { sessions: page.rows.map(entry), ...(page.cursor === undefined ? {} : { cursor: page.cursor }) }
  })

  scope.get<{ Params: Static<typeof KeyParams>, Querystring: Static<typeof SessionQuery> }>(`${prefix}/:key`, {
    config, schema: { params: KeyParams, querystring: SessionQuery, response: { 200: SessionDetail, ...errors } }
  }, async request => {
    const { sessionKey } = await resolve(request, 'read')
    const row = await gateway.get(sessionKey)
    if (row === undefined) throw new SessionNotFoundError(sessionKey)
    return { ...entry(row), cursor: row.cursor, ...(row.running === undefined ? {} : { running: { runId: row.running.runId, text: row.running.text } }) }
  })

  scope.get<{ Params: Static<typeof KeyParams>, Querystring: Static<typeof MessagesQuery> }>(`${prefix}/:key/messages`, {
    config, schema: { params: KeyParams, querystring: MessagesQuery, response: { 200: MessagePage, ...errors } }
  }, async request => {
    const { sessionKey } = await resolve(request, 'read')
    const { limit, before, sessionId } = request.query
    const page = await gateway.history(sessionKey, {
      limit: limit ?? DEFAULT_HISTORY_LIMIT,
      ...(before === undefined ? {} : { before }),
      ...(sessionId === undefined ? {} : { sessionId })
    })
    return {
      sessionKey,
      ...(page.sessionId === undefined ? {} : { sessionId: page.sessionId }),
      messages: messages(page.entries),
      cursor: page.cursor,
      ...(page.before === undefined ? {} : { before: page.before })
    }
  })

  scope.patch<{ Params: Static<typeof KeyParams>, Querystring: Static<typeof SessionQuery>, Body: Static<typeof PatchBody> }>(`${prefix}/:key`, {
    config, schema: { params: KeyParams, querystring: SessionQuery, body: PatchBody, response: { 200: SessionEntry, ...errors } }
  }, async request => {
    const { sessionKey } = await resolve(request, 'write')
    return entry(await gateway.patch(sessionKey, { label: request.body.label ?? undefined }))
  })

  scope.delete<{ Params: Static<typeof KeyParams>, Querystring: Static<typeof SessionQuery> }>(`${prefix}/:key`, {
    config, schema: { params: KeyParams, querystring: SessionQuery, response: { 200: Deleted, ...errors } }
  }, async request => {
    const { sessionKey } = await resolve(request, 'write')
    return { key: sessionKey, deleted: await gateway.delete(sessionKey) }
  })

  scope.get<{ Params: Static<typeof KeyParams>, Querystring: Static<typeof EventsQuery> }>(`${prefix}/:key/events`, {
    config, schema: { params: KeyParams, querystring: EventsQuery, response: errors }
  }, async (request, reply) => {
    const { sessionKey, agentId } = await resolve(request, 'read')
    // EventSource sends the last `id:` it saw when it reconnects by itself; that wins over the URL's `since`.
    const lastEventId = request.headers['last-event-id']
    const since = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : request.query.since
    let stream: EventStream | undefined
    const opened = await gateway.open(sessionKey, {
      limit: request.query.limit ?? DEFAULT_HISTORY_LIMIT,
      ...(since === undefined ? {} : { since })
    }, event => { for (const sse of sseEvents(event)) stream?.send(sse) })
    const { row, subscription, running } = opened
    const replay = subscription.replay
    // The server began to close while the session opened (a slow store): a stream begun now
    // would outlive the shutdown's end of streams, so the reader is told to come back.
    if (closing) {
      subscription.unsubscribe()
      // Nor may the connection be kept for another request: the close would wait for it.
      void reply.header('connection', 'close')
      throw new GatewayClosedError()
    }

    reply.hijack()
    const live = new EventStream(reply.raw, options, () => {
      streams.delete(live)
      subscription.unsubscribe()
    })
    stream = live
    streams.add(live)
    // A reader that left while the session was opening: its close came before our listener.
    /* c8 ignore next */
    if (request.raw.socket.destroyed) live.end()
    // The opening event stands at `since` when what was missed follows it, so a reader
    // that drops before those events asks for them again.
    const resumesFrom = replay.kind === 'replay' || replay.kind === 'catchup' ? since as string : opened.cursor
    live.send({
      id: resumesFrom,
      outgoing: {
        event: 'session.open',
        payload: {
          key: sessionKey,
          agentId: row?.agentId ?? agentId,
          ...(row === undefined ? {} : { sessionId: row.sessionId, entry: entry(row) }),
          replay: replay.kind,
          messages: messages(opened.entries),
          ...(opened.before === undefined ? {} : { before: opened.before }),
          cursor: opened.cursor,
          // After `replay` and `catchup` the running turn's text comes in the events that follow.
          ...(running === undefined || resumesFrom !== opened.cursor ? {} : { running: { runId: running.runId, text: running.text } })
        }
      }
    })
    const missed: OutboxItem[] = []
    if (replay.kind === 'replay' || replay.kind === 'catchup') for (const event of replay.events) missed.push(...sseEvents(event))
    if (replay.kind === 'catchup' && replay.running !== undefined) missed.push(runningEvent(sessionKey, replay.running, opened.cursor))
    // What was missed is already in memory: it goes out as the reader takes it.
    for (const event of missed) live.send(event, true)
    subscription.start()
    return reply
  })
}

/** A row as REST lists it: the gateway protocol's row without OpenClaw's `kind`, `isMain` and `lastActivityAt`. */
function entry (row: SessionRow): Static<typeof SessionEntry> {
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

/** Messages as the gateway protocol's history carries them (OpenClaw's `__openclaw`, its metadata off user text it wrote). */
function messages (entries: TranscriptEntry[]): Array<Record<string, unknown>> {
  return historyMessages(entries) as unknown as Array<Record<string, unknown>>
}
