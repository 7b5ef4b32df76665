// Load generator: CONNECTIONS clients, each sending chat.send on its own session and
// waiting for the final answer before the next, for DURATION_MS (or MAX_TURNS in all).
// Prints one JSON line. Exits 1 if any turn lost or duplicated an event.
import { performance } from 'node:perf_hooks'
import { percentile } from '../lib/stats.js'
import { ProtocolClient, type Frame } from './protocol-client.js'

const url = process.env.URL as string
const connections = Number(process.env.CONNECTIONS ?? 1)
const durationMs = Number(process.env.DURATION_MS ?? 5000)
const maxTurns = Number(process.env.MAX_TURNS ?? 1_000_000)
const warmupTurns = Number(process.env.WARMUP_TURNS ?? 20)

const latencies: number[] = []
let turns = 0
let errors = 0

async function worker (index: number, deadline: number): Promise<void> {
  const client = await ProtocolClient.connect(url, 'bench')
  const sessionKey = `bench-${process.pid}-${index}`
  // What each run delivered: deltas and finals, to check that none is lost or repeated.
  const seen = new Map<string, { deltas: number, finals: number, done?: () => void }>()
  client.onEvent = (frame: Frame) => {
    if (frame.event !== 'chat') return
    const run = seen.get(frame.payload?.runId)
    if (run === undefined) return
    if (frame.payload?.state === 'delta') run.deltas++
    else {
      run.finals++
      run.done?.()
    }
  }
  let n = 0
  while (performance.now() < deadline && turns < maxTurns) {
    const runId = `${sessionKey}-${n++}`
    const run: { deltas: number, finals: number, done?: () => void } = { deltas: 0, finals: 0 }
    const finished = new Promise<void>(resolve => { run.done = resolve })
    seen.set(runId, run)
    const started = performance.now()
    const ack = await client.request('chat.send', { sessionKey, message: 'ping', idempotencyKey: runId })
    if (ack.ok !== true) errors++
    await finished
    const elapsed = performance.now() - started
    if (run.deltas !== 1 || run.finals !== 1) errors++
    if (n > warmupTurns / connections) {
      latencies.push(elapsed)
      turns++
    }
    seen.delete(runId)
  }
  client.close()
}

const started = performance.now()
const deadline = started + durationMs
await Promise.all(Array.from({ length: connections }, async (_, i) => await worker(i, deadline)))
const seconds = (performance.now() - started) / 1000
process.stdout.write(JSON.stringify({
  connections,
  turns,
  errors,
  p50: percentile(latencies, 50),
  p99: percentile(latencies, 99),
  turnsPerSec: turns / seconds
}) + '\n')
process.exit(errors === 0 ? 0 : 1)
