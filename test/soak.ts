// Bounds of the reliability suite. `npm test` runs it short; `npm run soak` (SOAK=1) runs
// it long. Every loop in it is bounded by these counts and by time.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export const SOAK = process.env.SOAK === '1'

export const bounds = SOAK
  ? { fuzzRuns: 3000, fuzzMs: 240_000, clients: 200, sessions: 50, loadMs: 60_000 }
  : { fuzzRuns: 400, fuzzMs: 20_000, clients: 24, sessions: 6, loadMs: 4_000 }

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Heap in use after a full collection, in bytes. */
export function heapAfterGc (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
