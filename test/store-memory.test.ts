import t from 'tap'
import { MemoryStore } from '../lib/index.js'
import { storeContract } from '../lib/testing/index.js'

storeContract({ test: (name, fn) => t.test(name, fn), makeStore: async () => new MemoryStore() })
