import t from 'tap'
import { MemoryStore } from '../lib/index.js'
import { storeContract } from '../lib/testing/index.js'

storeContract({ test: (name, fn) => t.test(name, fn), makeStore: async () => new MemoryStore() })

t.test('a read cursor is digits only, as the memory store gives them: anything else Number() would take is refused', async t => {
  const store = new MemoryStore()
  await store.ensure('agent:main:m', 'main')
  for (const before of [' ', '0x2', '1e1', '2.0', '-1', '']) {
    await t.rejects(store.read('agent:main:m', { limit: 5, before }), { code: 'FSG_INVALID_CURSOR' }, JSON.stringify(before))
  }
  t.same(await store.read('agent:main:m', { limit: 5, before: '0' }), { entries: [] }, 'a cursor it gives is taken')
})
