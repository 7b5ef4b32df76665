// OpenClaw fidelity: what a client written for OpenClaw reads from our gateway is in
// OpenClaw's shapes. Every answer is checked against OpenClaw's schema as it arrives.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FileStore, MemoryStore } from '../lib/index.js'
import { GatewaySocket, listen, openChecked } from './gateway-frames.js'
import { buildApp, TOKEN } from './helpers.js'

async function open (t: Test, app: FastifyInstance): Promise<GatewaySocket> {
  await listen(app)
  return await openChecked(t, app)
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

t.test('history reads user text OpenClaw wrote as OpenClaw shows it; the gateway\'s own rows as they are', async t => {
  const envelope = 'Sender (untrusted metadata):\n```json\n{ "label": "Ana", "id": "telegram:4242" }\n```\n\n'
  const store = new MemoryStore()
  await store.ensure('agent:main:shared', 'main')
  const at = new Date(0).toISOString()
  await store.append('agent:main:shared', [
    { type: 'message', id: 'oc-1', parentId: null, timestamp: at, message: { role: 'user', content: [{ type: 'text', text: `${envelope}What is the weather in Oslo?` }], timestamp: 0 } },
    // Older OpenClaw transcripts may hold a user's content as one string.
    { type: 'message', id: 'oc-2', parentId: 'oc-1', timestamp: at, message: { role: 'user', content: `[Thu 2025-10-09 08:58 UTC] ${envelope}And tomorrow?`, timestamp: 0 } as any },
    { type: 'message', id: 'ours', parentId: 'oc-2', timestamp: at, seq: 1, runId: 'run-1', message: { role: 'user', content: [{ type: 'text', text: `${envelope}typed by a user here` }], timestamp: 0 } },
    { type: 'message', id: 'answer', parentId: 'ours', timestamp: at, seq: 3, runId: 'run-1', runState: 'final', message: { role: 'assistant', content: [{ type: 'text', text: 'ok' }], stopReason: 'stop', timestamp: 0 } }
  ])
  const app = await buildApp(t, { store })
  const socket = await open(t, app)
  const { messages } = (await socket.request('chat.history', { sessionKey: 'shared' })).payload
  const rest = await app.inject({ url: '/v1/sessions/shared/messages', headers: { authorization: `Bearer ${TOKEN}` } })
  t.same(rest.json().messages, messages, 'REST reads the same messages')
  t.same(messages.map((m: any) => m.content), [
    [{ type: 'text', text: 'What is the weather in Oslo?' }],
    [{ type: 'text', text: 'And tomorrow?' }],
    [{ type: 'text', text: `${envelope}typed by a user here` }],
    [{ type: 'text', text: 'ok' }]
  ])
  t.same(messages.map((m: any) => m.__openclaw), [
    { id: 'oc-1' },
    { id: 'oc-2' },
    { id: 'ours', seq: 1, runId: 'run-1', idempotencyKey: 'run-1:user' },
    { id: 'answer', seq: 3, runId: 'run-1', idempotencyKey: 'run-1' }
  ])
})

t.test('sessions.reset on the file store: sessions.json points the key at a new transcript, as OpenClaw\'s /new does, and the old one stays readable by its id', async t => {
  const dir = t.testdir()
  const store = new FileStore({ dir })
  const socket = await open(t, await buildApp(t, { store }))
  await socket.request('chat.send', { sessionKey: 'kept', message: 'first words', idempotencyKey: 'kept-1' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'kept-1')
  const before = (await socket.request('chat.history', { sessionKey: 'kept' })).payload.sessionId
  const reset = await socket.request('sessions.reset', { key: 'kept' })
  t.equal(reset.ok, true)
  await store.close() // writes what the index still owes
  const index = JSON.parse(await readFile(join(dir, 'agents', 'main', 'sessions', 'sessions.json'), 'utf8'))
  const entry = index['agent:main:kept']
  t.not(entry.sessionId, before, 'the key points at a new transcript')
  t.same(entry.gatewayGenerations, [before], 'the one before is listed as an earlier generation')
  const old = new FileStore({ dir })
  t.teardown(() => old.close())
  t.same((await old.read('agent:main:kept', { limit: 10, sessionId: before })).entries.map(e => e.message?.role), ['user', 'assistant'], 'and is read by its id')
})
