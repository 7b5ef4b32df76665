import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Agent, AgentOutput } from '../agents/agent.js'
import { GatewayClosedError, InvalidInputError, isGatewayError, RunErrorCode } from '../errors.js'
import type { SessionRow } from '../stores/store.js'
import {
  isMessageEntry, type AssistantMessage, type RunState, type ToolCallPart, type TranscriptEntry, type TranscriptMessage
} from '../transcript.js'
import { randomHex } from '../ids.js'
import type { RunningSnapshot, RunTicket, SendRequest } from './hub-types.js'
import { finishedEvent } from './row-events.js'
import { Run, untilAborted, type RunUsage } from './run.js'
import type { Lane, LaneOptions } from './session-log.js'
import type { SessionState } from './session-state.js'

// The turn: take the session's lane, commit the input, run the agent, announce what it
// produces, commit the answer, give the lane back. Nothing here knows a transport.

export interface TurnRunnerOptions {
  agent: Agent
  lane: LaneOptions
  /** Longest a run may take before it is stopped with state `error`. */
  runTimeoutMs: number
  logger: FastifyBaseLogger
  /** Creates the session (a first send does), or adopts the row another process just made. */
  create: (state: SessionState, agentId: string) => Promise<void>
  /** The gateway is closing: no new run may start. */
  closed: () => boolean
  /** A run ended and its lane is free again: the state may be let go. */
  released: (state: SessionState) => void
  /** The row changed (a run ended). */
  changed: (state: SessionState) => void
}

export class TurnRunner {
  readonly #options: TurnRunnerOptions

  constructor (options: TurnRunnerOptions) {
    this.#options = options
  }

  /**
   * Starts a turn. Resolves once the input rows are durable in the store, with the
   * run's id and the cursor just before its first event.
   */
  async start (state: SessionState, request: SendRequest): Promise<{ ticket: RunTicket, run: Run }> {
    const { log } = state.context
    const runId = request.runId ?? request.idempotencyKey ?? randomUUID()
    state.lanes++
    let lane
    try {
      lane = await log.acquire(state.key, runId, this.#options.lane)
    } catch (err) {
      state.lanes--
      throw err
    }
    const run = new Run(runId)
    run.lane = lane
    state.running = run
    // The lane is ours: the log's position is the truth (another process may have moved it).
    let position = lane.position
    if (position === undefined) {
      try {
        // A shared log that lost the session's position takes ours again.
        position = await log.position(state.key, async () => ({ epoch: state.epoch, seq: state.head }))
      } catch (err) {
        state.running = undefined
        await this.#release(state, lane)
        throw err
      }
    }
    // The log is ahead of what this process heard: rows another process wrote are not known here
    // yet, or (another life of the log) a reset or delete made there.
    const lifeChanged = position.epoch !== state.epoch
    const behind = lifeChanged || position.seq !== state.head
    if (behind) {
      state.epoch = position.epoch
      state.head = position.seq
    }
    // An abort asked of the log (by this process or another) stops the run.
    lane.onAbort(() => run.abort({ kind: 'abort' }))
    let cursor: string
    try {
      if (this.#options.closed()) throw new GatewayClosedError()
      // The row here may be of a generation that is gone: the turn goes to the one stored now.
      if (lifeChanged) state.row = await state.context.store.get(state.key)
      if (state.row === undefined) await this.#options.create(state, request.agentId)
      // Our rows follow the newest row stored (the store has every row the log's position covers),
      // not the newest this process heard of, as OpenClaw chains a transcript by `parentId`.
      if (behind) state.lastEntryId = (await state.context.store.read(state.key, { limit: 1 })).entries.at(-1)?.id ?? null
      cursor = state.cursor()
      await state.commit(request.input.map(message => ({ message, runId })))
    } catch (err) {
      state.running = undefined
      await this.#release(state, lane)
      throw err
    }
    const row = state.row as SessionRow
    state.emit({ type: 'run.started', runId, ...(request.model === undefined ? {} : { model: request.model }) })
    void this.#execute(state, row, run, request, lane)
    return {
      ticket: { runId, sessionKey: state.key, sessionId: row.sessionId, status: 'started', cursor, result: run.result },
      run
    }
  }

  async #release (state: SessionState, lane: Lane): Promise<void> {
    state.lanes--
    const releasing = state.context.log.release(state.key, lane)
    // In the same step as the result: whoever awaited it finds the session as it now is.
    this.#options.released(state)
    try {
      await releasing
    } catch (err) {
      // A shared log that cannot be reached: the lane expires there by itself.
      this.#options.logger.warn({ err, sessionKey: state.key }, 'session gateway: a lane could not be released')
    }
  }

  async #execute (state: SessionState, row: SessionRow, run: Run, request: SendRequest, lane: Lane): Promise<void> {
    const timeoutMs = request.timeoutMs ?? this.#options.runTimeoutMs
    const timer = setTimeout(() => run.abort({ kind: 'timeout', ms: timeoutMs }), timeoutMs)
    let failure: { code: string, message: string } | undefined
    try {
      const outputs = this.#options.agent.respond({
        sessionKey: state.key,
        sessionId: row.sessionId,
        agentId: row.agentId,
        runId: run.runId,
        input: request.input,
        history: async (limit?: number) => await historyBefore(state, row.sessionId, request.input.length, limit),
        tools: request.tools ?? [],
        toolChoice: request.toolChoice ?? 'auto',
        ...(request.model === undefined ? {} : { model: request.model }),
        ...(request.instructions === undefined ? {} : { instructions: request.instructions }),
        ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
        metadata: request.metadata ?? {},
        signal: run.controller.signal
      })
      for await (const output of untilAborted(outputs, run.controller.signal)) {
        apply(state, run, request, output)
      }
    } catch (err) {
      if (run.cause === undefined) {
        // An agent that fails with a gateway code (an upstream's FSG_UPSTREAM_*) keeps it.
        failure = err instanceof AgentProtocolError
          ? { code: RunErrorCode.agentProtocol, message: err.message }
          : isGatewayError(err)
            ? { code: err.code, message: err.message }
            : { code: RunErrorCode.agentFailed, message: err instanceof Error ? err.message : String(err) }
        this.#options.logger.error({ err, sessionKey: state.key, runId: run.runId }, 'session gateway: agent failed')
      }
    } finally {
      clearTimeout(timer)
    }
    await this.#finish(state, run, failure, lane)
  }

  async #finish (state: SessionState, run: Run, failure: { code: string, message: string } | undefined, lane: Lane): Promise<void> {
    // Every event of the run is in the log before its end is written (one that failed made it an error).
    await state.appended()
    let { state: runState, error } = outcome(run, failure)
    const content: AssistantMessage['content'] = []
    if (run.reasoning !== '') content.push({ type: 'thinking', thinking: run.reasoning })
    if (run.text !== '') content.push({ type: 'text', text: run.text })
    content.push(...run.toolCalls)
    const message: AssistantMessage = {
      role: 'assistant',
      content,
      stopReason: stopReason(runState, run),
      ...(error === undefined ? {} : { errorMessage: error.message }),
      ...(run.usage === undefined ? {} : { usage: transcriptUsage(run.usage) }),
      timestamp: Date.now()
    }
    let entry: TranscriptEntry
    try {
      [entry] = await state.commit([{ message, runId: run.runId, runState, ...(error === undefined ? {} : { runError: error }) }]) as [TranscriptEntry]
    } catch (err) {
      // The answer could not be recorded: the client must not believe it was.
      this.#options.logger.error({ err, sessionKey: state.key, runId: run.runId }, 'session gateway: could not record the end of a run')
      runState = 'error'
      error = { code: RunErrorCode.storeFailed, message: 'the answer could not be recorded' }
      entry = state.entry({ message: { ...message, stopReason: 'error', errorMessage: error.message }, runId: run.runId, runState, runError: error }, state.head, state.lastEntryId)
      state.append(finishedEvent(state.key, state.epoch, entry as Parameters<typeof finishedEvent>[2]))
    }
    const finished = entry as TranscriptEntry & { message: AssistantMessage }
    this.#options.changed(state)
    run.finished = true
    state.running = undefined
    run.settle({
      runId: run.runId,
      sessionKey: state.key,
      state: runState,
      entry: finished,
      message: finished.message,
      text: run.text,
      toolCalls: run.toolCalls,
      ...(error === undefined ? {} : { error }),
      ...(run.usage === undefined ? {} : { usage: run.usage }),
      cursor: state.cursor()
    })
    await this.#release(state, lane)
  }
}

/** Takes one output of the agent: the run grows, and the log hears of it. */
function apply (state: SessionState, run: Run, request: SendRequest, output: AgentOutput): void {
  switch (output?.type) {
    case 'text':
      if (typeof output.delta !== 'string') throw new AgentProtocolError('a text output without a string delta')
      if (output.delta === '') return
      run.text += output.delta
      state.emit({ type: 'run.delta', runId: run.runId, delta: output.delta, text: run.text })
      return
    case 'reasoning':
      if (typeof output.delta !== 'string') throw new AgentProtocolError('a reasoning output without a string delta')
      if (output.delta === '') return
      run.reasoning += output.delta
      state.emit({ type: 'run.reasoning', runId: run.runId, delta: output.delta, text: run.reasoning })
      return
    case 'function_call': {
      const call = toolCall(output, request)
      run.toolCalls.push(call)
      state.emit({ type: 'run.tool_call', runId: run.runId, call })
      return
    }
    case 'usage':
      run.usage = {
        inputTokens: output.inputTokens,
        outputTokens: output.outputTokens,
        ...(output.cachedTokens === undefined ? {} : { cachedTokens: output.cachedTokens }),
        ...(output.reasoningTokens === undefined ? {} : { reasoningTokens: output.reasoningTokens })
      }
      return
    case 'incomplete':
      run.incomplete = true
      return
    default:
      throw new AgentProtocolError(`unknown output type ${JSON.stringify((output as { type?: unknown } | undefined)?.type)}`)
  }
}

/** The messages committed before this turn's input, oldest first. */
async function historyBefore (state: SessionState, sessionId: string, inputRows: number, limit = 200): Promise<TranscriptMessage[]> {
  const { entries } = await state.context.store.read(state.key, { limit: limit + inputRows, sessionId })
  const messages = entries.filter(isMessageEntry).map(entry => entry.message)
  return messages.slice(0, Math.max(0, messages.length - inputRows)).slice(-limit)
}

/** The agent yielded something the hub cannot accept (an unknown output, a tool it was not offered). */
class AgentProtocolError extends Error {}

export function checkSendRequest (request: SendRequest): void {
  if (!Array.isArray(request.input) || request.input.length === 0) throw new InvalidInputError('a turn needs at least one message')
  const choice = request.toolChoice
  if (typeof choice === 'object' && !(request.tools ?? []).some(tool => tool.name === choice.name)) {
    throw new InvalidInputError(`tool_choice names "${choice.name}", which is not among the offered tools`)
  }
  if (choice === 'required' && (request.tools ?? []).length === 0) {
    throw new InvalidInputError('tool_choice "required" needs at least one tool')
  }
}

/** Checks a function call against the turn's tools and turns it into a transcript part. */
function toolCall (output: Extract<AgentOutput, { type: 'function_call' }>, request: SendRequest): ToolCallPart {
  const offered = request.tools ?? []
  if (request.toolChoice === 'none' || !offered.some(tool => tool.name === output.name)) {
    throw new AgentProtocolError(`the agent called "${String(output.name)}", which this turn does not offer`)
  }
  let args = output.arguments
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args) as Record<string, unknown>
    } catch {
      throw new AgentProtocolError(`the agent's arguments for "${output.name}" are not JSON`)
    }
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new AgentProtocolError(`the agent's arguments for "${output.name}" are not a JSON object`)
  }
  return { type: 'toolCall', id: output.callId ?? `call_${randomHex()}`, name: output.name, arguments: args }
}

function outcome (run: Run, failure: { code: string, message: string } | undefined): { state: RunState, error?: { code: string, message: string } } {
  if (failure !== undefined) return { state: 'error', error: failure }
  switch (run.cause?.kind) {
    case undefined: return { state: 'final' }
    case 'abort': return { state: 'aborted' }
    case 'timeout': return { state: 'error', error: { code: RunErrorCode.runTimeout, message: `the run took longer than ${run.cause.ms} ms` } }
    case 'shutdown': return { state: 'aborted', error: { code: RunErrorCode.gatewayClosed, message: 'the gateway is shutting down' } }
    case 'reset': return { state: 'aborted', error: { code: RunErrorCode.sessionReset, message: 'the session was reset' } }
    case 'log': return { state: 'error', error: { code: RunErrorCode.logUnavailable, message: run.cause.message } }
  }
}

function stopReason (state: RunState, run: Run): AssistantMessage['stopReason'] {
  if (state === 'aborted') return 'aborted'
  if (state === 'error') return 'error'
  return run.toolCalls.length > 0 ? 'toolUse' : run.incomplete ? 'length' : 'stop'
}

function transcriptUsage (usage: RunUsage): NonNullable<AssistantMessage['usage']> {
  return {
    input: usage.inputTokens,
    output: usage.outputTokens,
    totalTokens: usage.inputTokens + usage.outputTokens,
    ...(usage.cachedTokens === undefined ? {} : { cacheRead: usage.cachedTokens }),
    ...(usage.reasoningTokens === undefined ? {} : { reasoning: usage.reasoningTokens })
  }
}

/** The run in progress (here, or on another process), for a watcher that joins mid-turn. */
export function snapshot (state: SessionState): RunningSnapshot | undefined {
  const run = state.running
  if (run !== undefined && !run.finished) return { runId: run.runId, text: run.text, toolCalls: [...run.toolCalls] }
  const remote = state.remote
  return remote === undefined ? undefined : { runId: remote.runId, text: remote.text, toolCalls: [...remote.toolCalls] }
}
