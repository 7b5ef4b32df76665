// One client doing turns back to back for DURATION_MS, timing each: MODE=upstream posts a
// streamed Chat Completions request straight to URL; MODE=gateway posts an OpenResponses
// request (a fresh session each) to the gateway at URL, which has the same upstream behind
// it (or, with EXPECTED=hello, the echo agent). Prints one JSON line; exits 1 if an answer
// is not the expected text.
import { performance } from 'node:perf_hooks'
import { percentile } from '../lib/stats.js'

const url = process.env.URL as string
const gateway = process.env.MODE === 'gateway'
const durationMs = Number(process.env.DURATION_MS ?? 4000)
const EXPECTED = process.env.EXPECTED ?? 'an answer from the upstream'

async function turn (): Promise<string> {
  if (gateway) {
    const res = await fetch(`${url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify({ model: 'openclaw', input: 'hello' })
    })
    const body = await res.json() as { output: Array<{ content: Array<{ text: string }> }> }
    return body.output[0]?.content[0]?.text ?? ''
  }
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'hello' }], stream: true })
  })
  const text = await res.text()
  let answer = ''
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: {')) continue
    const content = (JSON.parse(line.slice(6)) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content
    if (typeof content === 'string') answer += content
  }
  return answer
}

const latencies: number[] = []
for (let i = 0; i < 50; i++) await turn() // warm up both sides
const end = performance.now() + durationMs
while (performance.now() < end) {
  const t0 = performance.now()
  const text = await turn()
  latencies.push(performance.now() - t0)
  if (text !== EXPECTED) {
    process.stdout.write(JSON.stringify({ error: `unexpected answer ${JSON.stringify(text)}` }) + '\n')
    process.exit(1)
  }
}
process.stdout.write(JSON.stringify({ turns: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99), turnsPerSec: latencies.length / (durationMs / 1000) }) + '\n')
