import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, type ClusterOptions, type Redis } from 'ioredis'
import t from 'tap'
import type { SessionEvent, TranscriptEntry } from '../lib/index.js'
import { RedisSessionLog, RedisStore } from '../lib/redis/index.js'
import { sessionLogContract, storeContract } from '../lib/testing/index.js'
import { startRedis } from './redis-server.js'

// A Redis Cluster of one node that holds every slot: Redis refuses a script or a
// transaction whose keys hash to different slots (CROSSSLOT) even then, so the store
// passing here proves each of its atomic changes stays within one slot.
const node = await startRedis(t, { args: ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1'] })
const admin = node.client()
await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
for (let i = 0; i < 200 && !String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok'); i++) await sleep(25)

function cluster (options: ClusterOptions = {}): Redis {
  const client = new Cluster([{ host: '127.0.0.1', port: node.port }], options)
  t.teardown(() => client.disconnect())
  return client as unknown as Redis
}

let stores = 0
storeContract({
  test: (name, fn) => t.test(`redis store on a cluster: ${name}`, fn),
  makeStore: async () => new RedisStore({ client: cluster(), keyPrefix: `contract${++stores}:` })
})

t.test('every key of one session shares a slot; both listing indexes share one', async t => {
  const store = new RedisStore({ client: cluster(), keyPrefix: 'layout:', deletedTtlSeconds: 60 })
  const message = (text: string): TranscriptEntry => ({ type: 'message', id: text, parentId: null, timestamp: new Date().toISOString(), message: { role: 'user', content: [{ type: 'text', text }], timestamp: 0 } })
  const keys = ['agent:main:plain', 'agent:main:a{b}c', 'agent:main:}{', 'agent:ops:100%{', 'global']
  for (const key of keys) {
    await store.ensure(key, key === 'global' ? 'main' : key.split(':')[1] as string)
    await store.append(key, [message('one')])
    await store.reset(key)
    await store.append(key, [message('two')])
    await store.patch(key, { label: 'L' })
  }
  await store.delete('agent:main:plain') // its archive is one of the session's keys too
  await store.ensure('agent:main:plain', 'main')
  await store.putRecord('response', 'resp_1', { ok: true })

  const written = (await admin.keys('layout:*')).sort()
  const slots = new Map<string, Set<number>>()
  for (const key of written) {
    // What a key belongs to: the session whose tag it carries, the indexes, or itself.
    const owner = /^layout:(\{[^}]*\})/.exec(key)?.[1] ?? key
    const slot = await admin.call('CLUSTER', 'KEYSLOT', key) as number
    slots.set(owner, (slots.get(owner) ?? new Set()).add(slot))
  }
  t.same([...slots].filter(([, found]) => found.size > 1), [], 'no owner has keys in two slots')
  t.same([...slots.keys()].filter(owner => owner.startsWith('{')).sort(), [
    '{agent:main:%7d%7b}', '{agent:main:a%7bb%7dc}', '{agent:main:plain}', '{agent:ops:100%25%7b}', '{global}', '{sessions}'
  ].sort(), 'a tag per session (braces and % escaped), and one for the indexes')
  const plain = written.filter(key => key.startsWith('layout:{agent:main:plain}'))
  t.match(plain, [/:deleted:.+:generations$/, /:deleted:.+:row$/, /:deleted:.+:transcript$/, /:generations$/, /:row$/], 'archived on delete, then created again (no transcript yet)')
  t.ok(written.includes('layout:record:response:resp_1'), 'a record is a key of its own')
  t.equal(written.filter(key => key.startsWith('layout:session-id:')).length, keys.length, 'one pointer per current generation')
  t.equal(new Set([...slots.keys()].filter(owner => owner.startsWith('{')).map(owner => [...slots.get(owner) as Set<number>][0])).size, keys.length + 1,
    'and those slots differ, so sessions spread over the cluster')
  await store.close()
})

// The session log on the same cluster, on sharded pub/sub: each session's keys and channel share its slot.
let logs = 0
t.test('the session log contract, on a cluster with sharded pub/sub', async t => {
  t.throws(() => new RedisSessionLog({ client: cluster(), sharded: true }), { code: 'FSG_INVALID_OPTION', message: /shardedSubscribers: true/ },
    'a Cluster that would deliver no sharded message is refused when the log is made')
  sessionLogContract({
    test: (name, fn) => t.test(name, fn),
    makeLog: async ({ replay, claimTtlMs }) => new RedisSessionLog({
      client: cluster({ shardedSubscribers: true }), sharded: true, keyPrefix: `log${++logs}:`, replay, claimTtlMs, laneTtlMs: 2000, idleTtlMs: 60_000, checkIntervalMs: 1000
    })
  })
})

t.test("a shard subscriber that ioredis reconnects unseen: the log's checks find what it missed", async t => {
  const KEY = 'agent:main:shard-lost'
  const log = new RedisSessionLog({ client: cluster({ shardedSubscribers: true }), sharded: true, keyPrefix: 'shard-lost:', checkIntervalMs: 100 })
  const writer = new RedisSessionLog({ client: cluster({ shardedSubscribers: true }), sharded: true, keyPrefix: 'shard-lost:' })
  t.teardown(async () => { await log.close(); await writer.close() })
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  const heard: number[] = []
  await log.subscribe(KEY, event => { heard.push(event.seq) })
  const event = (seq: number): SessionEvent => ({ type: 'run.started', sessionKey: KEY, epoch: 'e1', seq, at: seq, runId: `r${seq}` })
  /** Waits up to 5 s for `count` events to be heard. */
  const hearing = async (count: number): Promise<void> => { for (let i = 0; i < 200 && heard.length < count; i++) await sleep(25) }
  await writer.append(KEY, [event(1)])
  await hearing(1)
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await writer.append(KEY, [event(2)])
  await hearing(2)
  t.same(heard, [1, 2], 'the event published while the subscriber was away is heard, with no later event to reveal the gap')
})
