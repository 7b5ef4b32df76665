// OpenClaw fidelity: what a client written for OpenClaw reads from our gateway is in
// OpenClaw's shapes. Every answer is checked against OpenClaw's schema as it arrives.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryStore } from '../lib/index.js'
import { GatewaySocket, listen } from './gateway-frames.js'
import { buildApp } from './helpers.js'

async function open (t: Test, app: FastifyInstance): Promise<GatewaySocket> {
  await listen(app)
  let ended = false
  const socket = await GatewaySocket.open(app, {}, problem => { if (!ended) t.fail(problem) })
  t.teardown(() => {
    ended = true
    socket.close()
  })
  return socket
}

t.test('sessions.list rows are OpenClaw\'s SessionRow: kind by key, isMain, displayName, lastActivityAt', async t => {
  const store = new MemoryStore()
  for (const key of ['global', 'agent:main:telegram:group:42', 'agent:main:discord:channel:7', 'agent:main:main', 'agent:main:notes']) await store.ensure(key, 'main')
  await store.patch('agent:main:notes', { label: 'Notes' })
  const socket = await open(t, await buildApp(t, { store }))
  const list = await socket.request('sessions.list', {})
  const rows = Object.fromEntries(list.payload.sessions.map((row: any) => [row.key, row]))
  t.same(Object.fromEntries(Object.entries(rows).map(([key, row]: [string, any]) => [key, row.kind])), {
    global: 'global',
    'agent:main:telegram:group:42': 'group',
    'agent:main:discord:channel:7': 'group',
    'agent:main:main': 'direct',
    'agent:main:notes': 'direct'
  })
  t.match(rows['agent:main:main'], { isMain: true, agentId: 'main' })
  t.match(rows['agent:main:notes'], { isMain: false, label: 'Notes', displayName: 'Notes' })
  for (const row of Object.values(rows) as any[]) t.equal(row.lastActivityAt, row.updatedAt)
})
