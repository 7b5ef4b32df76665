// `npm run bench`: every benchmark, each against a baseline measured in the same run,
// on 127.0.0.1, servers and load generators in separate processes, all bounded in time.
// Prints one table. ONLY=roundtrip,streaming,… runs a subset.
import { round } from './lib/stats.js'
import { run, start } from './lib/processes.js'

interface Row { what: string, ours: string, baseline: string, ratio: string, goal: string, met: boolean | undefined }
const rows: Row[] = []
const only = process.env.ONLY?.split(',')
const durationMs = Number(process.env.DURATION_MS ?? 4000)

interface RoundTrip { connections: number, turns: number, errors: number, p50: number, p99: number, turnsPerSec: number }

async function roundTrip (server: string, env: Record<string, string>, connections: number): Promise<RoundTrip> {
  const started = await start(server, env)
  try {
    return await run<RoundTrip>('bench/clients/roundtrip.ts', { URL: started.line, CONNECTIONS: String(connections), DURATION_MS: String(durationMs) })
  } finally {
    await started.stop()
  }
}

interface Streaming { watchers: number, deltas: number, ok: boolean, eventsPerSec: number, bytes: number }

async function streaming (server: string, env: Record<string, string>, watchers: number, baseline: boolean): Promise<Streaming> {
  const started = await start(server, env)
  try {
    return await run<Streaming>('bench/clients/streaming.ts', { URL: started.line, WATCHERS: String(watchers), DELTAS: env.DELTAS as string, BASELINE: baseline ? '1' : '0' })
  } finally {
    await started.stop()
  }
}

const sections: Record<string, () => Promise<void>> = {
  async roundtrip () {
    for (const connections of [1, 16, 256]) {
      const bare = await roundTrip('bench/servers/bare-gateway.ts', {}, connections)
      const ours = await roundTrip('bench/servers/gateway.ts', { STORE: 'memory' }, connections)
      const ratio = ours.p50 / bare.p50
      rows.push({
        what: `WS chat.send→final, memory store, ${connections} conn`,
        ours: `p50 ${round(ours.p50)} ms, p99 ${round(ours.p99)} ms, ${Math.round(ours.turnsPerSec)} turns/s`,
        baseline: `p50 ${round(bare.p50)} ms, p99 ${round(bare.p99)} ms, ${Math.round(bare.turnsPerSec)} turns/s`,
        ratio: `p50 ×${round(ratio)}, turns/s ×${round(ours.turnsPerSec / bare.turnsPerSec)}`,
        goal: 'p50 within 2x of bare',
        met: ratio <= 2
      })
    }
  },

  async streaming () {
    const deltas = process.env.DELTAS ?? '1000'
    for (const watchers of [1, 100]) {
      const bare = await streaming('bench/servers/bare-ws.ts', { DELTAS: deltas }, watchers, true)
      const ours = await streaming('bench/servers/gateway.ts', { AGENT: 'burst', DELTAS: deltas }, watchers, false)
      const ratio = ours.eventsPerSec / bare.eventsPerSec
      rows.push({
        what: `deltas to ${watchers} watcher(s) of one session (${deltas} deltas)`,
        ours: `${Math.round(ours.eventsPerSec)} events/s`,
        baseline: `${Math.round(bare.eventsPerSec)} events/s (bare ws broadcast, same bytes)`,
        ratio: `×${round(ratio)}`,
        goal: 'at least half of bare',
        met: ratio >= 0.5
      })
    }
  }
}

for (const [name, section] of Object.entries(sections)) {
  if (only !== undefined && !only.includes(name)) continue
  process.stderr.write(`bench: ${name}…\n`)
  await section()
}

const header = ['what', 'ours', 'baseline (same run)', 'ratio', 'goal', 'met']
const lines = rows.map(r => [r.what, r.ours, r.baseline, r.ratio, r.goal, r.met === undefined ? '—' : r.met ? 'yes' : 'no'])
process.stdout.write(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`)
for (const line of lines) process.stdout.write(`| ${line.join(' | ')} |\n`)
