import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Starts `examples/server.ts` as `npm start` would, and reads its first two lines. */
async function start (env: Record<string, string>): Promise<{ url: string, tokenLine: string, stop: (signal: NodeJS.Signals) => Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], {
    cwd: root,
    env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', ...env }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let out = ''
  child.stdout.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start-up lines; got ${JSON.stringify(out)}`)), 20_000)
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      if (out.split('\n').length > 2) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', code => reject(new Error(`exited with ${code}`)))
  })
  const [listening, tokenLine] = out.split('\n') as [string, string]
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(listening)?.[1] as string
  return {
    url,
    tokenLine,
    async stop (signal) {
      child.kill(signal)
      const [code] = await once(child, 'exit') as [number | null]
      return code
    }
  }
}

t.test('npm start: prints its URL and token, and stops cleanly on SIGTERM', async t => {
  const server = await start({})
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.match(server.tokenLine, /^token: [\w-]{32}$/, 'a generated token is printed once')
  const token = server.tokenLine.slice('token: '.length)
  const res = await fetch(`${server.url}/nothing-here`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(res.status, 404, 'the server answers')
  t.equal(await server.stop('SIGTERM'), 0)
})

t.test('a token from GATEWAY_TOKEN is used and never echoed; SIGINT stops too', async t => {
  const server = await start({ GATEWAY_TOKEN: 'chosen-secret-token' })
  t.equal(server.tokenLine, 'token: (from GATEWAY_TOKEN)')
  t.equal(await server.stop('SIGINT'), 0)
})
