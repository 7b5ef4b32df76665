import type { FastifyBaseLogger } from 'fastify'
import type { Principal } from '../../auth.js'
import type { SessionHints } from '../../resolver.js'
import type { Telemetry } from '../../telemetry.js'
import { CloseCode } from '../close-codes.js'
import { invalidParam, ResponsesError, toResponsesError } from './errors.js'
import type { ResponsesErrorFrame } from './frames.js'
import { parseCreateBody, type CreateBody } from './request.js'
import { readStream } from './stream-reader.js'
import type { PreviousResponse, ResponsesService } from './service.js'

// OpenResponses' WebSocket mode, as a protocol core that knows no socket library: feed
// it frames with `receive()`, it writes through `{ send, close }`. A client sends
// `{"type":"response.create", ...body}`; the answer is the same events as the SSE
// stream, one JSON text frame each. Responses on one connection run one at a time.

export interface ResponsesSocket {
  /** Bytes sent and not yet taken by the network. */
  readonly bufferedAmount: number
  /** `sent` is called once the network has taken the frame (or the send failed). */
  send (text: string, sent?: (err?: Error) => void): void
  close (code: number, reason: string): void
}

export interface ResponsesConnectionContext {
  service: ResponsesService
  principal: Principal
  /** The session hints of the upgrade request (header or query). */
  hints: SessionHints
  /** How long the connection may live; past it, the client is told and the socket closed. */
  maxAgeMs: number
  maxPayload: number
  /** The socket is given frames while it holds at most this many bytes not yet sent. */
  maxBufferedBytes: number
  /** Live events the client may leave unread, in bytes; past them it is closed with 1008 (it resumes by GET). */
  maxQueuedBytes: number
  telemetry: Telemetry
  logger: FastifyBaseLogger
}

// What OpenAI's WebSocket mode answers when a connection has lived too long.
const LIMIT_CODE = 'websocket_connection_limit_reached'
const CLIENT_ONLY = ['stream', 'stream_options', 'background'] as const
/** Frames a connection may have waiting for their turn; more is a client that does not wait at all. */
const MAX_PENDING = 32

export class ResponsesConnection {
  readonly #socket: ResponsesSocket
  readonly #context: ResponsesConnectionContext
  /** Responses made on this connection, by id: a continuation works even with `store: false`. */
  readonly #cache = new Map<string, PreviousResponse>()
  /** The frames waiting for the response before them to finish. */
  #queue: Promise<void> = Promise.resolve()
  #running = 0
  #expired = false
  #closed = false
  /** Stops feeding the response being written, when the socket goes. */
  #stopReading: (() => void) | undefined
  readonly #ageTimer: NodeJS.Timeout

  constructor (socket: ResponsesSocket, context: ResponsesConnectionContext) {
    this.#socket = socket
    this.#context = context
    this.#ageTimer = setTimeout(() => this.#expire(), context.maxAgeMs)
    this.#ageTimer.unref()
  }

  /** Takes one frame. Never throws: every problem becomes an error frame or a close. */
  receive (data: Buffer | string, isBinary: boolean): void {
    if (this.#closed) return
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length
    if (size > this.#context.maxPayload) return this.close(CloseCode.tooBig, 'frame too large')
    if (this.#expired) return this.#limitReached()
    if (this.#running >= MAX_PENDING) {
      return this.#error(new ResponsesError(429, `More than ${MAX_PENDING} responses are waiting on this connection; wait for some to finish.`, { code: 'too_many_pending_responses' }))
    }
    // Answers keep the order of the frames: an error for the second frame comes after the first response.
    let task: () => Promise<void>
    try {
      const body = this.#createBody(data, isBinary)
      task = async () => await this.#respond(body)
    } catch (err) {
      task = async () => this.#error(err)
    }
    this.#running++
    this.#queue = this.#queue.then(task).finally(() => {
      this.#running--
      if (this.#expired && this.#running === 0) this.#limitReached()
    })
  }

  close (code: number, reason: string): void {
    if (this.#closed) return
    this.dispose()
    this.#socket.close(code, reason)
  }

  /** The socket is gone. Running responses go on (the transcript keeps them). */
  dispose (): void {
    this.#closed = true
    clearTimeout(this.#ageTimer)
    this.#stopReading?.()
  }

  #createBody (data: Buffer | string, isBinary: boolean): CreateBody {
    if (isBinary) throw invalidParam('type', 'Binary frames are not part of this protocol; send JSON text.', 'invalid_frame')
    let frame: unknown
    try {
      frame = JSON.parse(String(data))
    } catch {
      throw new ResponsesError(400, 'The frame is not valid JSON.', { code: 'invalid_json' })
    }
    const type = (frame as { type?: unknown } | null)?.type
    if (type !== 'response.create') {
      throw invalidParam('type', `Unsupported client event type ${JSON.stringify(type)}: send "response.create".`, 'unknown_event_type')
    }
    for (const field of CLIENT_ONLY) {
      if (field in (frame as object)) throw invalidParam(field, `'${field}' is not allowed in WebSocket mode: every response streams.`, 'unsupported_parameter')
    }
    return parseCreateBody(frame, ['type'])
  }

  async #respond (body: CreateBody): Promise<void> {
    if (this.#closed) return
    const { service, principal, hints } = this.#context
    const previous = body.previous_response_id ?? undefined
    try {
      const live = await service.create(body, principal, { ...hints, user: body.user ?? undefined, model: body.model ?? undefined }, {
        previous: id => this.#cache.get(id)
      })
      this.#cache.set(live.id, { sessionKey: live.sessionKey, agentId: live.agentId })
      await new Promise<void>(resolve => {
        const stop = readStream(live.stream, -1, {
          buffered: () => this.#socket.bufferedAmount,
          write: (event, written) => this.#send(event.json, written),
          end: resolve,
          overflow: () => {
            // A reader this far behind is let go rather than held in memory; its response goes on.
            this.#context.telemetry.slowConsumerClosed()
            this.close(CloseCode.policy, 'slow consumer')
          }
        }, this.#context)
        // A socket that closes stops the writing (the response goes on), whatever it waited for.
        this.#stopReading = () => {
          stop()
          resolve()
        }
      })
      this.#stopReading = undefined
      // A continuation that failed is not one to build on: forget what it referenced.
      if (live.stream.status === 'failed' && previous !== undefined) this.#cache.delete(previous)
    } catch (err) {
      if (previous !== undefined) this.#cache.delete(previous)
      this.#error(err)
    }
  }

  #error (err: unknown): void {
    const error = toResponsesError(err, this.#context.logger)
    this.#send(JSON.stringify({ type: 'error', status: error.status, error: error.body } satisfies ResponsesErrorFrame))
  }

  #expire (): void {
    this.#expired = true
    if (this.#running === 0) this.#limitReached()
  }

  #limitReached (): void {
    const message = 'This connection has reached its time limit; open a new one to continue (continue with previous_response_id).'
    this.#send(JSON.stringify({ type: 'error', status: 400, error: { type: 'invalid_request_error', code: LIMIT_CODE, message, param: null } } satisfies ResponsesErrorFrame))
    this.close(CloseCode.normal, LIMIT_CODE)
  }

  #send (text: string, sent?: () => void): void {
    if (this.#closed) return
    try {
      this.#socket.send(text, sent === undefined ? undefined : () => sent())
    } catch (err) {
      this.#context.logger.warn({ err }, 'session gateway: a responses frame could not be sent')
      this.close(CloseCode.serverError, 'send failed')
    }
  }
}
