import { request as httpRequest } from 'node:http'
import type { FastifyInstance } from 'fastify'
import OpenAI from 'openai'
import t from 'tap'
import { echoAgent, InProcessSessionLog, type Lane, type LaneOptions } from '../lib/index.js'
import { listen } from './gateway-frames.js'
import { buildApp, gatedAgent, TOKEN, user } from './helpers.js'
import { eventProblem, parseSse, schemaProblem } from './openresponses-schema.js'

// Real clients on a real socket: the official `openai` package, unchanged, and a raw
// HTTP client that walks away from a stream and comes back for the rest.

function baseUrl (app: FastifyInstance): string {
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

function client (app: FastifyInstance, sessionKey: string): OpenAI {
  return new OpenAI({ baseURL: `${baseUrl(app)}/v1`, apiKey: TOKEN, defaultHeaders: { 'x-openclaw-session-key': sessionKey }, maxRetries: 0 })
}

t.test('the official openai client: plain, streamed, a tool call, and a continuation', async t => {
  const app = await buildApp(t)
  await listen(app)
  const openai = client(app, 'openai-client')

  const plain = await openai.responses.create({ model: 'openclaw', input: 'hello from the sdk' })
  t.equal(schemaProblem('ResponseResource', plain), undefined)
  t.equal(plain.output_text, 'hello from the sdk', "the SDK's own output_text helper works")

  const stream = await openai.responses.create({ model: 'openclaw', input: 'stream these words', stream: true })
  const types: string[] = []
  let text = ''
  for await (const event of stream) {
    t.equal(eventProblem(event as { type: string }), undefined)
    types.push(event.type)
    if (event.type === 'response.output_text.delta') text += event.delta
  }
  t.equal(text, 'stream these words')
  t.equal(types.at(-1), 'response.completed')

  const withTool = await openai.responses.create({
    model: 'openclaw',
    input: 'Paris',
    tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }],
    tool_choice: 'required'
  })
  const call = withTool.output.find(item => item.type === 'function_call')
  t.match(call, { name: 'get_weather', arguments: '{"city":"Paris"}' })

  const answer = await openai.responses.create({
    model: 'openclaw',
    previous_response_id: withTool.id,
    input: [{ type: 'function_call_output', call_id: (call as { call_id: string }).call_id, output: 'cloudy' }]
  })
  t.equal(answer.output_text, 'get_weather: cloudy')

  const history = await app.sessionGateway.history('agent:main:openai-client', { limit: 50 })
  t.equal(history.entries.filter(e => e.message?.role === 'user').length, 3, 'every SDK call landed on the session its header named')

  const err = await openai.responses.create({ model: 'openclaw', input: 'x', previous_response_id: 'resp_missing' }).catch((e: unknown) => e)
  t.match(err, { status: 400, error: { code: 'previous_response_not_found' } }, 'errors reach the SDK in its own error type')
})

/** POSTs a streamed request and hands back the raw events as they arrive. */
function openStream (app: FastifyInstance, body: unknown, headers: Record<string, string>): Promise<{ events: Array<Record<string, any>>, next: (match: (e: Record<string, any>) => boolean) => Promise<Record<string, any>>, destroy: () => void }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${baseUrl(app)}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers }
    }, res => {
      const events: Array<Record<string, any>> = []
      const waiters: Array<{ match: (e: Record<string, any>) => boolean, resolve: (e: Record<string, any>) => void }> = []
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block.split('\n').find(line => line.startsWith('data: '))?.slice(6)
          if (data === undefined || data === '[DONE]') continue
          const event = JSON.parse(data) as Record<string, any>
          events.push(event)
          for (const waiter of waiters.splice(0)) {
            if (waiter.match(event)) waiter.resolve(event)
            else waiters.push(waiter)
          }
        }
      })
      res.on('error', () => {})
      resolve({
        events,
        next: async match => events.find(match) ?? await new Promise(resolve => waiters.push({ match, resolve })),
        destroy: () => res.destroy()
      })
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

t.test('a streamed turn whose client left while it waited behind another: aborted with onDisconnect abort, and no stream counted', async t => {
  for (const onDisconnect of ['abort', 'continue'] as const) {
    // The log says when a second turn begins to wait for the session's lane.
    let waiting = (): void => {}
    const queued = new Promise<void>(resolve => { waiting = resolve })
    let asked = 0
    class TellsWaits extends InProcessSessionLog {
      override async acquire (key: string, runId: string, options: LaneOptions): Promise<Lane> {
        const lane = super.acquire(key, runId, options)
        if (++asked === 2) waiting()
        return await lane
      }
    }
    const agent = gatedAgent()
    const app = await buildApp(t, { agent, sessionLog: new TellsWaits({ replay: 64, claimTtlMs: 60_000 }), responses: { onDisconnect }, metrics: {} })
    await listen(app)
    const key = `agent:main:left-${onDisconnect}`
    const first = await app.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('first')] })
    await agent.waitStarted(1)
    const req = httpRequest(`${baseUrl(app)}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-openclaw-session-key': key }
    })
    req.on('error', () => {})
    req.end(JSON.stringify({ input: 'second', stream: true }))
    await queued
    req.destroy()
    // The server has seen the socket close before the first turn ends (bounded wait).
    for (let i = 0; i < 500 && await new Promise<number>(resolve => app.server.getConnections((_err, n) => resolve(n))) > 0; i++) {
      await new Promise(resolve => setTimeout(resolve, 2))
    }
    agent.release()
    await first.result
    let last
    for (let i = 0; i < 200; i++) {
      last = (await app.sessionGateway.history(key, { limit: 5 })).entries.at(-1)
      if (last?.message?.role === 'assistant' && last.message.content.some(part => part.type === 'text' && part.text === 'second')) break
      if (last?.message?.role === 'assistant' && (last.message as { stopReason?: string }).stopReason === 'aborted') break
      if (onDisconnect === 'continue' && agent.started.length === 2) agent.release()
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    if (onDisconnect === 'abort') t.match(last?.message, { role: 'assistant', stopReason: 'aborted' }, 'abort: the turn is stopped')
    else t.match(last?.message, { role: 'assistant', content: [{ text: 'second' }] }, 'continue: the turn answers, to be fetched later')
    const metrics = await (await fetch(`${baseUrl(app)}/metrics`)).text()
    t.match(metrics, /session_gateway_open_connections\{transport="responses_sse"\} 0/, `${onDisconnect}: no SSE stream is left counted`)
  }
})

t.test('a client that drops a stream does not lose the turn, and resumes it from where it was', async t => {
  const app = await buildApp(t, { agent: echoAgent({ delayMs: 10 }) })
  await listen(app)
  const words = Array.from({ length: 30 }, (_, i) => `w${i}`).join(' ')
  const first = await openStream(app, { input: words, stream: true }, { 'x-openclaw-session-key': 'dropped' })
  await first.next(e => e.type === 'response.output_text.delta' && e.delta === ' w4')
  first.destroy()
  const seen = [...first.events]
  const id = seen[0]?.response.id as string
  const last = seen.at(-1)?.sequence_number as number

  // The turn goes on without anyone listening, and lands in the transcript.
  const resumed = await fetch(`${baseUrl(app)}/v1/responses/${id}?stream=true&starting_after=${last}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(resumed.status, 200)
  const { events: rest, problems } = parseSse(await resumed.text(), last + 1)
  t.same(problems, [], 'the resumed stream is well framed, numbered on from the cursor')
  const all = [...seen, ...rest]
  t.same(all.map(e => e.sequence_number), all.map((_, i) => i), 'every event exactly once, in order')
  t.equal(all.filter(e => e.type === 'response.output_text.delta').map(e => e.delta).join(''), words)
  t.equal(all.at(-1)?.type, 'response.completed')
  for (const event of all) t.equal(eventProblem(event), undefined)
  const { entries } = await app.sessionGateway.history('agent:main:dropped', { limit: 5 })
  t.match(entries.at(-1)?.message, { role: 'assistant', stopReason: 'stop' })

  // After the end, the stored events serve the same resume.
  const again = await fetch(`${baseUrl(app)}/v1/responses/${id}?stream=true&starting_after=${last}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.same((await again.text()).split('\n\n').filter(b => b.startsWith('event:')).length, rest.length)
  const bad = await fetch(`${baseUrl(app)}/v1/responses/${id}?stream=true&starting_after=-3`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(bad.status, 400)
})

t.test('onDisconnect: abort stops the turn when its client leaves', async t => {
  const app = await buildApp(t, { agent: echoAgent({ delayMs: 10 }), responses: { onDisconnect: 'abort' } })
  await listen(app)
  const words = Array.from({ length: 50 }, (_, i) => `w${i}`).join(' ')
  const stream = await openStream(app, { input: words, stream: true }, { 'x-openclaw-session-key': 'walked-away' })
  await stream.next(e => e.type === 'response.output_text.delta')
  stream.destroy()
  let last
  for (let i = 0; i < 100; i++) {
    last = (await app.sessionGateway.history('agent:main:walked-away', { limit: 5 })).entries.at(-1)
    if (last?.message?.role === 'assistant') break
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  t.match(last?.message, { role: 'assistant', stopReason: 'aborted' })
})
