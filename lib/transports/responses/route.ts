import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Principal } from '../../auth.js'
import type { SessionService } from '../../session-service.js'
import { requestHints } from '../../request-hints.js'
import { invalidParam, ResponsesError, toResponsesError } from './errors.js'
import type { ResponsesErrorBody } from './frames.js'
import { parseCreateBody } from './request.js'
import { ResponsesService, type LiveResponse } from './service.js'
import { readStream, type StreamReaderLimits } from './stream-reader.js'
import { ResponsesConnection } from './websocket-connection.js'
import type { LiveSockets } from '../live-sockets.js'
import type { Telemetry } from '../../telemetry.js'

export interface ResponsesRouteOptions {
  sessions: SessionService
  service: ResponsesService
  sockets: LiveSockets
  telemetry: Telemetry
  prefix: string
  bodyLimit: number
  onDisconnect: 'continue' | 'abort'
  websocket: boolean
  websocketMaxAgeMs: number
  maxBufferedBytes: number
  maxQueuedBytes: number
  maxPayload: number
}

interface StreamContext extends StreamReaderLimits {
  telemetry: Telemetry
}

const SESSION_HEADER = 'x-openclaw-session-key'
const COMPACT_FIELDS = new Set(['model', 'input', 'previous_response_id', 'instructions', 'prompt_cache_key'])

/**
 * The OpenResponses HTTP API: `POST /responses` (JSON or SSE), `POST /responses/compact`,
 * and, beyond the specification, `GET /responses/:id` (with `?stream=true&starting_after=N`
 * to resume a stream) and `POST /responses/:id/cancel`. Every error is OpenResponses'
 * `{"error":{…}}`, whichever layer raised it (authentication, body parsing, the resolver).
 */
export async function responsesRoutes (scope: FastifyInstance, options: ResponsesRouteOptions): Promise<void> {
  const { sessions, service, bodyLimit, onDisconnect, sockets, telemetry } = options
  const streaming: StreamContext = { telemetry, maxBufferedBytes: options.maxBufferedBytes, maxQueuedBytes: options.maxQueuedBytes }

  scope.setErrorHandler(function responsesError (err, request, reply) {
    const error = toResponsesError(err, request.log)
    // A refusal that knows its session (a busy one) names it, like every other answer.
    const sessionKey = (err as { sessionKey?: unknown }).sessionKey
    if (typeof sessionKey === 'string') void reply.header(SESSION_HEADER, sessionKey)
    void reply.code(error.status).send({ error: error.body } satisfies ResponsesErrorBody)
  })

  // The resolver runs inside the handler here: `previous_response_id` can decide the session.
  const config = { sessionGateway: { session: 'none' as const } }

  scope.post('/responses', { bodyLimit, config }, async (request, reply) => {
    const body = parseCreateBody(request.body)
    const principal = request.gatewayPrincipal as Principal
    const idempotencyKey = idempotencyKeyOf(request.headers['idempotency-key'])
    const live = await service.create(body, principal, requestHints(request), idempotencyKey === undefined ? {} : { idempotencyKey })
    // A client that left while its turn waited behind another: its close came before any listener.
    const gone = request.raw.socket.destroyed
    if (onDisconnect === 'abort') {
      const abort = (): void => {
        if (!live.stream.finished) void sessions.abort(live.sessionKey, live.id).catch(() => {})
      }
      if (gone) abort()
      else reply.raw.once('close', abort)
    }
    // Nobody to stream to (nor a connection whose close would be counted).
    if (body.stream === true) return gone ? reply.hijack() : streamEvents(reply, streaming, live, -1)
    await live.stream.ended()
    return await reply.header(SESSION_HEADER, live.sessionKey).type('application/json; charset=utf-8').send(live.stream.responseJson())
  })

  if (options.websocket) {
    // WebSocket mode, on the same path: the thin adapter between the socket and the protocol core.
    scope.route({
      method: 'GET',
      url: '/responses',
      config,
      // A plain GET (no upgrade) is told what this path takes, in the API's own error shape.
      handler: async (_request, reply) => {
        void reply.header('allow', 'POST')
        throw new ResponsesError(405, 'Use POST /responses, or open a WebSocket on this path for WebSocket mode.', { code: 'method_not_allowed' })
      },
      wsHandler: (socket, request) => {
        const { sessionKey, agentId } = requestHints(request)
        const connection = new ResponsesConnection(socket, {
          service,
          principal: request.gatewayPrincipal as Principal,
          hints: { sessionKey, agentId },
          maxAgeMs: options.websocketMaxAgeMs,
          maxPayload: options.maxPayload,
          ...streaming,
          logger: request.log
        })
        // Listeners first, synchronously: a listener added later would miss the first frames.
        socket.on('message', (data: Buffer, isBinary: boolean) => connection.receive(data, isBinary))
        socket.on('error', err => request.log.warn({ err }, 'session gateway: responses socket error'))
        socket.on('close', () => {
          sockets.delete(connection)
          telemetry.connectionClosed('responses_websocket')
          connection.dispose()
        })
        sockets.add(connection)
        telemetry.connectionOpened('responses_websocket')
      }
    })
  }

  scope.post('/responses/compact', { bodyLimit, config }, async (request, reply) => {
    const body = request.body as Record<string, unknown> | null
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidParam('body', 'The request body must be a JSON object.', 'invalid_type')
    const unknown = Object.keys(body).find(name => !COMPACT_FIELDS.has(name))
    if (unknown !== undefined) throw invalidParam(unknown, `Unknown parameter: '${unknown}'.`, 'unknown_parameter')
    if (typeof body.model !== 'string' || body.model === '') throw invalidParam('model', "Missing required parameter: 'model'.", 'missing_required_parameter')
    return await reply.send(await service.compact(parseCreateBody(body), request.gatewayPrincipal as Principal))
  })

  scope.get<{ Params: { id: string }, Querystring: { stream?: string, starting_after?: string } }>('/responses/:id', { config }, async (request, reply) => {
    const found = await service.find(request.params.id, request.gatewayPrincipal as Principal)
    if (request.query.stream !== 'true') {
      return await reply.header(SESSION_HEADER, found.sessionKey).type('application/json; charset=utf-8').send(found.stream.responseJson())
    }
    const after = startingAfter(request.query.starting_after)
    // Past its first two events, a stream rebuilt from the transcript is not the one first
    // sent: say so rather than resume at a position that means something else now.
    if (!found.stream.exact && after > 1) {
      throw new ResponsesError(409, `The events of response ${found.id} are no longer held one by one, so it cannot be resumed after ${after}; read the finished response without 'stream', or stream it again from the start.`, { param: 'starting_after', code: 'stream_not_resumable' })
    }
    return streamEvents(reply, streaming, found, after)
  })

  scope.post<{ Params: { id: string } }>('/responses/:id/cancel', { config }, async (request, reply) => {
    const principal = request.gatewayPrincipal as Principal
    const { sessionKey, response } = await service.cancel(request.params.id, principal)
    return await reply.header(SESSION_HEADER, sessionKey).send(response)
  })
}

/**
 * Answers with Server-Sent Events: one write per event (`event:` is the JSON's `type`,
 * the data one line), and `data: [DONE]` at the end, paced by what the connection takes.
 * A client that leaves stops the writing, not the turn; so does one that leaves
 * `maxQueuedBytes` of live events unread (it resumes by sequence number).
 */
function streamEvents (reply: FastifyReply, context: StreamContext, live: LiveResponse, after: number): FastifyReply {
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    [SESSION_HEADER]: live.sessionKey
  })
  const stop = readStream(live.stream, after, {
    buffered: () => raw.writableLength,
    write: (event, written) => raw.write(`event: ${event.type}\ndata: ${event.json}\n\n`, () => written()),
    end: () => raw.end('data: [DONE]\n\n'),
    overflow: () => {
      context.telemetry.slowConsumerClosed()
      raw.destroy()
    }
  }, context)
  context.telemetry.connectionOpened('responses_sse')
  raw.once('close', () => {
    context.telemetry.connectionClosed('responses_sse')
    stop()
  })
  return reply
}

/** OpenAI's `Idempotency-Key` header: a retry with the same key gets the same response. */
function idempotencyKeyOf (value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(value)) {
    throw new ResponsesError(400, 'The Idempotency-Key header must be 1 to 256 visible ASCII characters.', { param: 'Idempotency-Key', code: 'invalid_value' })
  }
  return value
}

function startingAfter (value: string | undefined): number {
  if (value === undefined) return -1
  if (!/^\d{1,9}$/.test(value)) throw new ResponsesError(400, "'starting_after' must be a sequence number (a non-negative integer).", { param: 'starting_after', code: 'invalid_value' })
  return Number(value)
}
