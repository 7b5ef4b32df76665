import { setTimeout as sleep } from 'node:timers/promises'
import type { Retryable } from './event-stream.js'

/** Backoff before retry n (0-based): 0.5 s, 1 s, 2 s, … at most 8 s, less up to a quarter of jitter. */
export function backoffMs (attempt: number, random = Math.random()): number {
  return Math.min(8000, 500 * 2 ** attempt) * (1 - 0.25 * random)
}

export interface RetryPolicy {
  maxRetries: number
  /** Whether a request the upstream may already have acted on is sent again (false for a stateful upstream). */
  resendDelivered: boolean
}

/**
 * Runs `attempt` and yields what it yields. A failure marked `retryable` is tried again,
 * at most `maxRetries` times, but only while nothing has been yielded: once output went
 * out to the client, a retry would repeat it, so the failure stands.
 */
export async function * withRetries<T> (
  policy: RetryPolicy,
  signal: AbortSignal,
  attempt: () => AsyncIterable<T>
): AsyncGenerator<T> {
  let failure: (Error & Partial<Retryable>) | undefined
  for (let tries = 0; tries <= policy.maxRetries; tries++) {
    if (failure !== undefined) await sleep(failure.retryAfterMs ?? backoffMs(tries - 1), undefined, { signal })
    let yielded = false
    try {
      for await (const value of attempt()) {
        yielded = true
        yield value
      }
      return
    } catch (err) {
      failure = err as Error & Partial<Retryable>
      if (yielded || failure.retryable !== true || (failure.delivered === true && !policy.resendDelivered) || signal.aborted) throw err
    }
  }
  throw failure
}
