import type { RunState, ToolCallPart, AssistantMessage, TranscriptEntry } from '../transcript.js'
import type { Lane } from './session-log.js'

export interface RunUsage {
  inputTokens: number
  outputTokens: number
  cachedTokens?: number
  reasoningTokens?: number
}

/** Why a run ended before its agent finished. */
export type StopCause =
  | { kind: 'abort' }
  | { kind: 'timeout', ms: number }
  | { kind: 'shutdown' }
  | { kind: 'reset' }
  /** The session log refused the run's events (it is unreachable, or the run lost its lane). */
  | { kind: 'log', message: string }

export interface RunResult {
  runId: string
  sessionKey: string
  state: RunState
  /** The assistant's row as committed (also for aborted and failed runs, with what was produced). */
  entry: TranscriptEntry & { message: AssistantMessage }
  message: AssistantMessage
  text: string
  toolCalls: ToolCallPart[]
  error?: { code: string, message: string }
  usage?: RunUsage
  /** The cursor just after the run's last event. */
  cursor: string
}

/** A running turn: what it has produced so far, and how to stop it. */
export class Run {
  readonly controller = new AbortController()
  /** The session's lane this run holds; its events are appended under it. */
  lane: Lane | undefined
  text = ''
  reasoning = ''
  readonly toolCalls: ToolCallPart[] = []
  usage: RunUsage | undefined
  incomplete = false
  cause: StopCause | undefined
  finished = false
  readonly result: Promise<RunResult>
  settle!: (result: RunResult) => void

  constructor (readonly runId: string) {
    this.result = new Promise(resolve => { this.settle = resolve })
  }

  abort (cause: StopCause): void {
    if (this.cause !== undefined || this.finished) return
    this.cause = cause
    this.controller.abort(cause)
  }
}

const ABORTED = Symbol('aborted')

/**
 * Yields what `iterable` yields until it ends or `signal` aborts, whichever comes
 * first: an agent that ignores its signal cannot keep a run (or its lane) alive.
 * (One promise per step, settled by whichever comes first; `Promise.race` against one
 * long-lived abort promise would pile a reaction onto it per step.)
 */
export async function * untilAborted<T> (iterable: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = iterable[Symbol.asyncIterator]()
  let stop: ((value: typeof ABORTED) => void) | undefined
  const onAbort = (): void => stop?.(ABORTED)
  signal.addEventListener('abort', onAbort, { once: true })
  let done = false
  try {
    while (!signal.aborted) {
      const step = await new Promise<IteratorResult<T> | typeof ABORTED>((resolve, reject) => {
        stop = resolve
        iterator.next().then(resolve, reject)
      })
      if (step === ABORTED) return
      if (step.done === true) {
        done = true
        return
      }
      yield step.value
    }
  } finally {
    stop = undefined
    signal.removeEventListener('abort', onAbort)
    // Tell the agent to stop, without waiting on it: it may be stuck.
    if (!done) iterator.return?.()?.catch(() => {})
  }
}
