import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Principal } from '../../auth.js'
import type { SessionService } from '../../session-service.js'
import type { ResolvedSession, SessionAction, SessionHints } from '../../resolver.js'
import { randomHex } from '../../ids.js'
import type { TranscriptMessage } from '../../transcript.js'
import { compactionResource } from './compaction.js'
import { invalidParam, previousResponseNotFound, ResponsesError, responseNotFound } from './errors.js'
import { toolCallNames, toolsFor, translateInput } from './input.js'
import type { CreateBody } from './request.js'
import { rebuildStream, type RunOfResponse } from './rebuild.js'
import { requestFields, ResponseStream, type ResponseObject } from './response-stream.js'

// What the OpenResponses transports (HTTP, its SSE, and its WebSocket mode) share: a
// request becomes a turn on a session, through the one resolver and the hub; the turn
// becomes a response object and its event stream. Responses live here while they run,
// and in the store (records of kind `response`) once they are done.

const RECORD_KIND = 'response'
/** How much of a session's history is searched for the call a `function_call_output` answers. */
const CALL_LOOKUP_ROWS = 500

/**
 * What the store keeps of a finished response: what identifies it (who made it, which run
 * of which session, what it asked), not a copy of its stream, which the session rebuilds.
 */
export interface ResponseRecord extends Omit<RunOfResponse, 'id'> {
  v: 2
  /** The principal that created it (for audit; access goes through `authorize`). */
  principal: string
  agentId: string
}

/** A response: running here, just finished, or rebuilt from its record. */
export interface LiveResponse {
  id: string
  sessionKey: string
  agentId: string
  principal: string
  stream: ResponseStream
}

/** What `#keep` needs beyond the response itself. */
interface Kept extends LiveResponse {
  sessionId: string
  cursor: string
  fields: Record<string, unknown>
  createdAt: number
}

/** Where a response's session comes from when it continues an earlier one. */
export interface PreviousResponse {
  sessionKey: string
  agentId: string
}

export interface CreateOptions {
  /** Looks up `previous_response_id` somewhere else first (WebSocket mode's connection cache). */
  previous?: (id: string) => PreviousResponse | undefined
  /**
   * A retry of the same request (HTTP's `Idempotency-Key`) within five minutes attaches to
   * the first response instead of starting another turn.
   */
  idempotencyKey?: string
}

export class ResponsesService {
  readonly #sessions: SessionService
  readonly #logger: FastifyBaseLogger
  readonly #live = new Map<string, LiveResponse>()
  /** How long a finished response's record is kept (`responses.recordTtlMs`). */
  readonly #recordTtlMs: number

  constructor (sessions: SessionService, logger: FastifyBaseLogger, recordTtlMs: number) {
    this.#sessions = sessions
    this.#logger = logger
    this.#recordTtlMs = recordTtlMs
  }

  /**
   * Starts a response: the session from `previous_response_id` or the hints (a fresh one
   * when they name none), the input as transcript rows, then a turn on the hub. Resolves
   * once the input is durable; the stream has `response.created` by then.
   */
  async create (body: CreateBody, principal: Principal, hints: SessionHints, options: CreateOptions = {}): Promise<LiveResponse> {
    if (body.background === true) throw invalidParam('background', 'Background responses are not supported here; stream instead, and resume with GET if the connection drops.', 'unsupported_value')
    const session = await this.#session(body, principal, hints, options)
    const input = await this.#input(body, session.sessionKey)
    const { tools, toolChoice } = toolsFor(body.tools ?? [], body.tool_choice)
    const id = `resp_${randomHex()}`
    const fields = requestFields(body, body.model ?? `openclaw/${session.agentId}`)
    const createdAt = Math.floor(Date.now() / 1000)
    const stream = new ResponseStream(id, fields, createdAt)

    // Listen before sending, so not one event of the run can slip by.
    const subscription = await this.#sessions.subscribe(session.sessionKey, {}, event => stream.onHubEvent(event))
    subscription.start()
    let ticket
    try {
      ticket = await this.#sessions.send({
        sessionKey: session.sessionKey,
        agentId: session.agentId,
        runId: id,
        ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
        input: input.messages,
        tools,
        toolChoice,
        ...(session.model === undefined ? {} : { model: session.model }),
        ...(input.instructions === undefined ? {} : { instructions: input.instructions }),
        ...(body.max_output_tokens == null ? {} : { maxOutputTokens: body.max_output_tokens }),
        metadata: body.metadata ?? {}
      })
    } catch (err) {
      subscription.unsubscribe()
      throw err
    }
    if (ticket.status !== 'started') {
      subscription.unsubscribe()
      return await this.#repeat(ticket.runId)
    }
    const live: Kept = { id, sessionKey: session.sessionKey, agentId: session.agentId, principal: principal.id, stream, sessionId: ticket.sessionId, cursor: ticket.cursor, fields, createdAt }
    this.#live.set(id, live)
    void stream.ended().then(async () => {
      subscription.unsubscribe()
      if (body.store !== false) await this.#keep(live)
    }).catch(err => {
      this.#logger.error({ err, responseId: id }, 'session gateway: a response could not be stored')
    }).finally(() => this.#live.delete(id))
    return live
  }

  /** A response the principal may see (`read`) or stop (`write`): running here, or rebuilt from its record. */
  async find (id: string, principal: Principal, action: SessionAction = 'read'): Promise<LiveResponse> {
    const found = this.#live.get(id) ?? await this.#stored(id)
    // Another principal's response is not there, as far as this caller can tell.
    if (found === undefined || !await this.#sessions.allows(principal, found.sessionKey, action)) throw responseNotFound(id)
    return found
  }

  /** Stops a running response (whatever transport started it) and answers its final object. */
  async cancel (id: string, principal: Principal): Promise<{ sessionKey: string, response: ResponseObject }> {
    const found = await this.find(id, principal, 'write')
    if (!found.stream.finished) {
      await this.#sessions.abort(found.sessionKey, found.id)
      await found.stream.ended()
    }
    return { sessionKey: found.sessionKey, response: found.stream.response() }
  }

  /**
   * `POST /responses/compact`: the conversation so far (the previous response's session,
   * then this input) as its user messages and one compaction item. Writes nothing.
   */
  async compact (body: CreateBody, principal: Principal): Promise<Record<string, unknown>> {
    const earlier = body.previous_response_id == null ? [] : await this.#conversation(body.previous_response_id, principal)
    // Outputs of calls the compacted history does not show are kept all the same.
    const { messages } = translateInput(body.input, () => 'unknown')
    return compactionResource([...earlier, ...messages])
  }

  async #conversation (previousId: string, principal: Principal): Promise<TranscriptMessage[]> {
    const previous = await this.#previous(previousId, principal)
    await this.#sessions.resolve({ sessionKey: previous.sessionKey }, principal, 'read')
    return await this.#recentMessages(previous.sessionKey)
  }

  /** The response a repeated idempotency key refers to: still running here, or stored. */
  async #repeat (id: string): Promise<LiveResponse> {
    const found = this.#live.get(id) ?? await this.#stored(id)
    if (found === undefined) {
      throw new ResponsesError(409, 'The response made for this Idempotency-Key has finished and was not stored (store: false); send the request with a new key.', { code: 'idempotency_key_reused' })
    }
    return found
  }

  /** A stored response, its stream rebuilt from its session; undefined when there is none (or no session to rebuild it from). */
  async #stored (id: string): Promise<LiveResponse | undefined> {
    const record = await this.#record(id)
    if (record === undefined) return undefined
    const stream = await rebuildStream(this.#sessions, { ...record, id })
    return stream === undefined ? undefined : { id, sessionKey: record.sessionKey, agentId: record.agentId, principal: record.principal, stream }
  }

  async #session (body: CreateBody, principal: Principal, hints: SessionHints, options: CreateOptions): Promise<ResolvedSession> {
    const previousId = body.previous_response_id
    if (previousId === undefined || previousId === null) {
      // A retry must land where the first try did, even when that was a fresh session.
      const retried = options.idempotencyKey !== undefined && hints.sessionKey === undefined && hints.user === undefined
      const named = retried ? { ...hints, sessionKey: `openresponses:retry-${createHash('sha256').update(`${principal.id}\n${options.idempotencyKey as string}`).digest('hex').slice(0, 32)}` } : hints
      return await this.#sessions.resolve(named, principal, 'write', 'fresh')
    }
    const previous = await this.#previous(previousId, principal, options)
    const session = await this.#sessions.resolve({ sessionKey: previous.sessionKey, agentId: hints.agentId ?? previous.agentId }, principal, 'write')
    if (hints.sessionKey !== undefined) {
      const named = await this.#sessions.resolve(hints, principal, 'write')
      if (named.sessionKey !== session.sessionKey) {
        throw invalidParam('previous_response_id', `The previous response belongs to session '${session.sessionKey}', not to '${named.sessionKey}'.`, 'session_mismatch')
      }
    }
    return { ...session, ...(hints.model === undefined ? {} : { model: hints.model }) }
  }

  /**
   * The response `previous_response_id` names, as an unknown one when the principal may not
   * read its session, or when that session is gone: continuing it must not make it again.
   */
  async #previous (id: string, principal: Principal, options: CreateOptions = {}): Promise<PreviousResponse> {
    const found = options.previous?.(id) ?? this.#live.get(id) ?? await this.#record(id)
    const readable = found !== undefined && await this.#sessions.allows(principal, found.sessionKey, 'read')
    if (!readable || await this.#sessions.get(found.sessionKey) === undefined) throw previousResponseNotFound(id)
    return { sessionKey: found.sessionKey, agentId: found.agentId }
  }

  async #input (body: CreateBody, sessionKey: string): Promise<{ messages: TranscriptMessage[], instructions?: string }> {
    let names: Map<string, string> | undefined
    if (Array.isArray(body.input) && body.input.some(item => (item as { type?: unknown }).type === 'function_call_output')) {
      names = toolCallNames(await this.#recentMessages(sessionKey))
    }
    const translated = translateInput(body.input, callId => names?.get(callId))
    if (translated.messages.length === 0) {
      throw invalidParam('input', 'The input needs at least one message or function call output.', body.input == null ? 'missing_required_parameter' : 'invalid_value')
    }
    const instructions = [body.instructions, ...translated.instructions].filter(text => typeof text === 'string' && text !== '').join('\n\n')
    return instructions === '' ? { messages: translated.messages } : { messages: translated.messages, instructions }
  }

  async #recentMessages (sessionKey: string): Promise<TranscriptMessage[]> {
    const { entries } = await this.#sessions.history(sessionKey, { limit: CALL_LOOKUP_ROWS })
    return entries.flatMap(entry => entry.message === undefined ? [] : [entry.message])
  }

  async #record (id: string): Promise<ResponseRecord | undefined> {
    if (!/^resp_[A-Za-z0-9]{1,123}$/.test(id)) return undefined
    const record = await this.#sessions.store.getRecord(RECORD_KIND, id) as ResponseRecord | undefined
    return record?.v === 2 ? record : undefined
  }

  async #keep (live: Kept): Promise<void> {
    const record: ResponseRecord = {
      v: 2,
      principal: live.principal,
      sessionKey: live.sessionKey,
      agentId: live.agentId,
      sessionId: live.sessionId,
      cursor: live.cursor,
      fields: live.fields,
      createdAt: live.createdAt
    }
    await this.#sessions.store.putRecord(RECORD_KIND, live.id, record, { sessionKey: live.sessionKey, expiresAt: Date.now() + this.#recordTtlMs })
  }
}
