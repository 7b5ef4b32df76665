import t from 'tap'
import { echoAgent, type AgentOutput, type AgentRequest, type FunctionTool } from '../lib/index.js'
import { buildApp, toolResult, user } from './helpers.js'

async function collect (request: Partial<AgentRequest>, delayMs = 0): Promise<AgentOutput[]> {
  const outputs: AgentOutput[] = []
  const full: AgentRequest = {
    sessionKey: 'agent:main:k', sessionId: 's', agentId: 'main', runId: 'r', input: [user('hello there world')],
    history: async () => [], tools: [], toolChoice: 'auto', metadata: {}, signal: new AbortController().signal, ...request
  }
  for await (const output of echoAgent({ delayMs }).respond(full)) outputs.push(output)
  return outputs
}

t.test('echoes the last user message word by word', async t => {
  t.same(await collect({ input: [user('first'), user('  hello   there\nworld ')] }), [
    { type: 'text', delta: '  hello' }, { type: 'text', delta: '   there' }, { type: 'text', delta: '\nworld' },
    { type: 'usage', inputTokens: 3, outputTokens: 3 }
  ])
  t.same(await collect({ input: [user('')] }), [{ type: 'usage', inputTokens: 0, outputTokens: 0 }], 'nothing to echo')
  t.same(await collect({ input: [] }), [{ type: 'usage', inputTokens: 0, outputTokens: 0 }])
})

t.test('maxOutputTokens cuts the answer, marked incomplete', async t => {
  t.same(await collect({ maxOutputTokens: 2 }), [
    { type: 'text', delta: 'hello' }, { type: 'text', delta: ' there' }, { type: 'incomplete', reason: 'max_output_tokens' },
    { type: 'usage', inputTokens: 3, outputTokens: 2 }
  ])
})

t.test('pauses between words when asked, and stops on abort', async t => {
  const started = Date.now()
  const outputs = await collect({}, 15)
  t.equal(outputs.length, 4)
  t.ok(Date.now() - started >= 25, 'two pauses between three words')
  const controller = new AbortController()
  controller.abort()
  await t.rejects(collect({ signal: controller.signal }, 15), { name: 'AbortError' })
})

t.test('calls the chosen tool, else the first, with arguments from its schema', async t => {
  const tools: FunctionTool[] = [
    { type: 'function', name: 'first', parameters: null },
    {
      type: 'function',
      name: 'weather',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string' },
          unit: { type: 'string', enum: ['c', 'f'] },
          days: { type: 'integer', minimum: 1 },
          offset: { type: 'number' },
          detailed: { type: 'boolean' },
          tags: { type: 'array', items: { type: 'string' } },
          kind: { const: 'forecast' },
          source: { type: 'string', default: 'met' },
          nothing: { type: 'null' },
          nullable: { type: ['string', 'null'] },
          where: { type: 'object', properties: { lat: { type: 'number' } } },
          free: {},
          odd: 7
        }
      }
    }
  ]
  t.same(await collect({ tools }), [
    { type: 'function_call', name: 'first', arguments: {} },
    { type: 'usage', inputTokens: 3, outputTokens: 1 }
  ])
  const [call] = await collect({ tools, toolChoice: { type: 'function', name: 'weather' } })
  t.same(call, {
    type: 'function_call',
    name: 'weather',
    arguments: {
      city: 'hello there world', unit: 'c', days: 1, offset: 0, detailed: false, tags: [], kind: 'forecast', source: 'met',
      nothing: null, nullable: 'hello there world', where: { lat: 0 }, free: {}, odd: null
    }
  })
  t.same((await collect({ tools, toolChoice: 'none' }))[0], { type: 'text', delta: 'hello' }, 'none: plain text')
  t.same(await collect({ tools, input: [] }), [
    { type: 'function_call', name: 'first', arguments: {} }, { type: 'usage', inputTokens: 0, outputTokens: 1 }
  ], 'no text to count')
  t.same(await collect({ tools: [{ type: 'function', name: 'arr', parameters: { type: 'array' } }] }), [
    { type: 'function_call', name: 'arr', arguments: {} }, { type: 'usage', inputTokens: 3, outputTokens: 1 }
  ], 'a non-object schema still gives an object')
})

t.test('tool results are answered with text, ending the round trip', async t => {
  const outputs = await collect({
    tools: [{ type: 'function', name: 'weather' }],
    input: [toolResult('call_1', 'weather', 'sunny, 21C')]
  })
  t.same(outputs.filter(o => o.type === 'text').map(o => o.type === 'text' && o.delta).join(''), 'weather: sunny, 21C')
})

t.test('through the hub: a tool call, then its result, then text', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const tools: FunctionTool[] = [{ type: 'function', name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } }]
  const call = await (await gw.send({ sessionKey: 'agent:main:t', agentId: 'main', input: [user('find cats')], tools })).result
  t.match(call.toolCalls, [{ name: 'lookup', arguments: { q: 'find cats' } }])
  const id = call.toolCalls[0]?.id as string
  const answer = await (await gw.send({ sessionKey: 'agent:main:t', agentId: 'main', input: [toolResult(id, 'lookup', '3 cats')], tools })).result
  t.equal(answer.text, 'lookup: 3 cats')
  t.equal(answer.message.stopReason, 'stop')
})
