import { RedisSessionLog } from './lib/redis/index.js'
const log = new RedisSessionLog({ url: 'redis://127.0.0.1:6399', keyPrefix: 'dbg' + Date.now() + ':' , laneTtlMs: 2000 })
const KEY = 'agent:main:x'
await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
console.log('pos')
const running = await log.acquire(KEY, 'run-1', { busy: 'queue', maxQueue: 4 })
console.log('acquired')
const waiting = ['run-2', 'run-3'].map(async id => await log.acquire(KEY, id, { busy: 'queue', maxQueue: 4 }).then(() => 'granted', e => e.code))
await new Promise(r => setTimeout(r, 50))
console.log('dropping')
await log.dropWaiting(KEY)
console.log('dropped')
console.log(await Promise.all(waiting))
try { await log.acquire(KEY, 'run-4', { busy: 'reject', maxQueue: 4 }) } catch (e) { console.log('busy', (e as any).runId) }
await log.release(KEY, running)
console.log('released')
await log.close()
console.log('closed')
