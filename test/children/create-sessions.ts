// Creates sessions in a file store, four at a time, and prints each key once its creation
// resolved (acknowledged). Never closes: the test kills it mid-way, as a crash would.
import { FileStore } from '../../lib/index.js'

const [dir, count] = process.argv.slice(2) as [string, string]
const store = new FileStore({ dir })
let next = 0
await Promise.all([0, 1, 2, 3].map(async () => {
  while (next < Number(count)) {
    const key = `agent:main:created-${next++}`
    await store.ensure(key, 'main')
    process.stdout.write(`${key}\n`)
  }
}))
process.stdout.write('done\n')
setInterval(() => {}, 60_000) // held open until killed
