// A gateway process for the reliability suite: a file store on `dir`, the echo agent, token
// auth, on 127.0.0.1:`port` (0: any). Prints "listening <port>". With FULL_FROM_MS and
// FULL_FOR_MS, its disk is full for that window (every write fails with ENOSPC), counted
// from its start.
import { open } from 'node:fs/promises'
import Fastify from 'fastify'
import sessionGateway, { echoAgent, FileStore, type OpenFile } from '../../lib/index.js'

const [dir, port] = process.argv.slice(2) as [string, string]
const started = Date.now()
const fullFrom = Number(process.env.FULL_FROM_MS ?? Number.POSITIVE_INFINITY)
const fullUntil = fullFrom + Number(process.env.FULL_FOR_MS ?? 0)
const full = (): boolean => Date.now() - started >= fullFrom && Date.now() - started < fullUntil
const enospc = (): Error => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' })

const openFile: OpenFile = async (path, flags, mode) => {
  const handle = await open(path, flags, mode)
  const write = handle.write.bind(handle) as (...args: unknown[]) => Promise<{ bytesWritten: number }>
  handle.write = (async (...args: unknown[]) => {
    if (full()) throw enospc()
    return await write(...args)
  }) as typeof handle.write
  const writeFile = handle.writeFile.bind(handle)
  handle.writeFile = async (...args: Parameters<typeof writeFile>) => {
    if (full()) throw enospc()
    await writeFile(...args)
  }
  return handle
}

const app = Fastify()
await app.register(sessionGateway, {
  auth: { token: process.env.TOKEN as string },
  store: new FileStore({ dir, openFile }),
  agent: echoAgent({ delayMs: 2 }),
  replay: 16 // small: some resumes replay from memory, longer gaps catch up from the store
})
const address = await app.listen({ port: Number(port), host: '127.0.0.1' })
process.stdout.write(`listening ${new URL(address).port}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
