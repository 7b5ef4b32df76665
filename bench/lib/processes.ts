import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))

export interface Started {
  child: ChildProcess
  /** The first line the process printed, minus its prefix (a URL, usually). */
  line: string
  stop (): Promise<void>
}

/**
 * Runs a TypeScript file of this repository in its own Node process and waits for the
 * line that starts with `prefix`. Every benchmark server and load generator is its own
 * process, so the two never share an event loop.
 */
export async function start (file: string, env: Record<string, string> = {}, prefix = 'listening ', timeoutMs = 20_000): Promise<Started> {
  return await startNode(['--import', 'tsx', ...nodeArgs(env), file], env, prefix, timeoutMs)
}

/** `start`, for a JavaScript file run by plain `node` with no loader and no flags, as `npm start` runs. */
export async function startPlain (file: string, env: Record<string, string> = {}, prefix = 'listening ', timeoutMs = 20_000): Promise<Started> {
  return await startNode([file], env, prefix, timeoutMs)
}

async function startNode (args: string[], env: Record<string, string>, prefix: string, timeoutMs: number): Promise<Started> {
  const file = args.at(-1) as string
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let out = ''
  child.stdout.setEncoding('utf8')
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file}: no "${prefix}" line within ${timeoutMs} ms`)), timeoutMs)
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      const found = out.split('\n').find(l => l.startsWith(prefix))
      if (found !== undefined) {
        clearTimeout(timer)
        resolve(found.slice(prefix.length).trim())
      }
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${file} exited with ${code} before "${prefix}"`)) })
  })
  return {
    child,
    line,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await once(child, 'exit')
      clearTimeout(timer)
    }
  }
}

// Servers may be asked to collect garbage (SIGUSR2) before their memory is read.
function nodeArgs (env: Record<string, string>): string[] {
  return ['--expose-gc', ...(env.CPU_PROF === '1' ? ['--cpu-prof', '--cpu-prof-dir=bench/profiles'] : [])]
}

/** Runs a load generator to its end and parses the JSON it prints last. */
export async function run<T> (file: string, env: Record<string, string>, timeoutMs = 120_000): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => { out += chunk })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  const last = out.trim().split('\n').at(-1) ?? ''
  if (code !== 0) throw new Error(`${file} exited with ${code}: ${last}`)
  return JSON.parse(last) as T
}
