import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { childEnv } from './helpers.js'

// The example server's bound on requests that never finish their headers (a file of its
// own: example-server.test.ts is close to its time budget already).

const root = fileURLToPath(new URL('..', import.meta.url))
// What `npm start` runs: plain `node` on the built example (`npm test` builds it first).
const SERVER = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ')[1] as string

/** Starts the built example as `npm start` does: its port once it listens, or how it failed. */
async function example (t: Test, env: Record<string, string>): Promise<{ port?: number, code?: number | null, stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-example-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const child = spawn(process.execPath, [SERVER], {
    cwd: root,
    env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', GATEWAY_TOKEN: 'example-secret-token', GATEWAY_DATA_DIR: dir, ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  const port = await new Promise<number | undefined>(resolve => {
    const timer = setTimeout(() => resolve(undefined), 20_000)
    child.stdout.on('data', chunk => {
      stdout += String(chunk)
      const found = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)
      if (found !== null) {
        clearTimeout(timer)
        resolve(Number(found[1]))
      }
    })
    void exited.then(() => { clearTimeout(timer); resolve(undefined) })
  })
  return port === undefined ? { code: await exited, stderr } : { port, stderr }
}

t.test('an upgrade that never finishes its headers is closed after HEADERS_TIMEOUT_MS, not held for a minute', async t => {
  const { port } = await example(t, { HEADERS_TIMEOUT_MS: '500' })
  const socket = connect(port as number, '127.0.0.1')
  let answer = ''
  socket.on('data', chunk => { answer += String(chunk) })
  await once(socket, 'connect')
  socket.write('GET /gateway HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer example-secret-token\r\n')
  // Bounded: Node's defaults would keep it open for 60 to 90 s, far past this.
  const timer = setTimeout(() => socket.destroy(new Error('still open after 10 s')), 10_000)
  const [error] = await Promise.race([once(socket, 'close').then(() => [undefined]), once(socket, 'error')]) as [Error | undefined]
  clearTimeout(timer)
  t.equal(error?.message, undefined, 'the server closed it')
  t.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/, 'saying why')
})

t.test('a HEADERS_TIMEOUT_MS that is not a whole number from 1 to 600000 stops the start with one line', async t => {
  for (const value of ['0', '600001', 'soon']) {
    const { code, stderr } = await example(t, { HEADERS_TIMEOUT_MS: value })
    t.equal(code, 1)
    t.equal(stderr, `cannot start: HEADERS_TIMEOUT_MS="${value}" is not valid: set it to an integer from 1 to 600000, or unset it for 10000\n`)
  }
})
