// The demo portal in a real browser: Debian's chromium, driven by playwright-core, against
// the example gateway (`npm start`'s server) in a child process, killed and restarted mid-stream.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { childEnv } from './helpers.js'

// The page's globals, inside the functions that run there.
interface PageNode { textContent: string | null, dataset: Record<string, string | undefined> }
declare const document: {
  querySelector: (selector: string) => PageNode | null
  querySelectorAll: (selector: string) => ArrayLike<PageNode> & Iterable<PageNode>
  documentElement: { scrollWidth: number, clientWidth: number }
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const TOKEN = 'portal-test-token'
const root = fileURLToPath(new URL('..', import.meta.url))
// `npm test` builds first: the example (build/examples) and the client's browser build (dist/client).
const SERVER = join(root, 'build/examples/server.js')
const CLIENT = join(root, 'dist/client/index.js')

interface Server { url: string, port: number, child: ChildProcess }

/** Starts the built example gateway as `npm start` runs it, and waits for the line with its URL. */
async function startServer (env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, [SERVER], {
    cwd: root,
    env: childEnv({ GATEWAY_TOKEN: TOKEN, LOG_LEVEL: 'warn', ECHO_DELAY_MS: '40', ...env }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  // Teardowns do not run when tap times the test out: a server left behind would hold its port.
  const orphan = (): void => { child.kill('SIGKILL') }
  process.once('exit', orphan)
  child.once('exit', () => process.off('exit', orphan))
  let out = ''
  child.stdout.setEncoding('utf8')
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example gateway did not start; it said ${JSON.stringify(out)}`)), 30_000)
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      const found = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (found !== null) {
        clearTimeout(timer)
        resolve(found[1] as string)
      }
    })
    child.once('exit', code => reject(new Error(`the example gateway exited with ${code}: ${out}`)))
  })
  return { url, port: Number(new URL(url).port), child }
}

async function kill (server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return
  server.child.kill('SIGKILL')
  await once(server.child, 'exit')
}

/** The conversation as the page shows it: `role:text` per message, the streaming one marked. */
async function shown (page: Page): Promise<string[]> {
  return await page.$$eval('#message-list .message', items => items.map(item =>
    `${item.classList.contains('streaming') ? 'streaming' : item.classList.contains('user') ? 'user' : 'assistant'}:${item.querySelector('.text')?.textContent ?? ''}`))
}

async function connectionState (page: Page, state: string): Promise<void> {
  await page.waitForSelector(`#connection[data-state="${state}"]`)
}

t.test('the demo portal in headless Chromium: list, stream, switch, stop, survive a killed server, watch an HTTP turn', async t => {
  // Two server starts and a browser on a shared 2-core machine: bounded, and within the file's 120 s.
  t.setTimeout(110_000)
  if (!existsSync(CHROMIUM)) {
    t.fail(`no Chromium at ${CHROMIUM}: install Debian's package with "apt-get update && apt-get install -y chromium" (.ci/run does), or set CHROMIUM_PATH`)
    return
  }
  // The page imports the client's browser build, as a user's page would: no bundler.
  if (!existsSync(SERVER) || !existsSync(CLIENT)) {
    t.fail(`${SERVER} or ${CLIENT} is missing: run npm run build (npm test does)`)
    return
  }

  t.saveFixture = true
  const output = t.testdir({})
  const dataDir = await mkdtemp(join(tmpdir(), 'fsg-portal-'))
  const profile = await mkdtemp(join(tmpdir(), 'fsg-chromium-'))
  t.teardown(async () => {
    await rm(dataDir, { recursive: true, force: true })
    await rm(profile, { recursive: true, force: true })
  })

  let server = await startServer({ PORT: '0', GATEWAY_DATA_DIR: dataDir })
  t.teardown(async () => await kill(server))
  const { port } = server
  const http = async (key: string, input: string): Promise<Response> => await fetch(`${server.url}/v1/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-openclaw-session-key': key },
    body: JSON.stringify({ model: 'openclaw', input })
  })
  // An older session, made over HTTP before the page opens.
  t.equal((await http('quarterly-report', 'Summarize the quarterly report')).status, 200)

  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 800 } })
  t.teardown(async () => await context.close())
  const page = context.pages()[0] ?? await context.newPage()
  page.setDefaultTimeout(20_000)
  const pageErrors: string[] = []
  page.on('pageerror', err => pageErrors.push(err.message))

  // Sign in; the list shows the older session, with its preview.
  await page.goto(server.url)
  await page.fill('#token', TOKEN)
  await page.click('#login-submit')
  await connectionState(page, 'open')
  const older = page.locator('#sessions button[data-key="agent:main:quarterly-report"]')
  await older.waitFor()
  t.match(await older.textContent(), /quarterly-report.*Summarize the quarterly report/s)
  await page.screenshot({ path: join(output, 'list.png') })

  // A new session: a message, and its answer streaming in word by word.
  await page.click('#new-session')
  await page.waitForFunction(() => document.querySelector('#session-title')?.textContent?.startsWith('portal-') === true)
  const key = await page.textContent('#session-key') as string
  const question = 'Please stream this answer back to me word by word so that we can watch it arrive'
  await page.fill('#input', question)
  await page.press('#input', 'Enter')
  await page.waitForSelector('.message.streaming')
  const partial = await page.textContent('.message.streaming .text') as string
  t.ok(question.startsWith(partial) && partial.length < question.length, `caught mid-stream: "${partial}"`)
  await page.waitForSelector('.message.assistant[data-id]')
  t.same(await shown(page), [`user:${question}`, `assistant:${question}`])
  await page.screenshot({ path: join(output, 'streamed-answer.png') })

  // Switch to the older session and back: each shows its own history.
  await older.click()
  await page.waitForFunction(() => document.querySelector('#session-title')?.textContent === 'quarterly-report')
  await page.waitForFunction(() => document.querySelectorAll('#message-list .message').length === 2)
  t.same(await shown(page), ['user:Summarize the quarterly report', 'assistant:Summarize the quarterly report'])
  await page.click(`#sessions button[data-key="${key}"]`)
  await page.waitForFunction(k => document.querySelector('#session-key')?.textContent === k, key)

  // Stop a running turn.
  const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ')
  await page.fill('#input', long)
  await page.press('#input', 'Enter')
  await page.waitForSelector('.message.streaming')
  await page.click('#stop')
  await page.waitForSelector('.message.assistant.aborted')
  t.match(await page.textContent('.message.assistant.aborted'), /Stopped/)

  // Kill the server in the middle of a stream, and bring it back on the same port and data.
  await page.fill('#input', long)
  await page.press('#input', 'Enter')
  await page.waitForFunction(() => document.querySelector('.message.streaming .text')?.textContent?.includes('word5') === true)
  await kill(server)
  await connectionState(page, 'reconnecting')
  await page.screenshot({ path: join(output, 'reconnecting.png') })
  server = await startServer({ PORT: String(port), GATEWAY_DATA_DIR: dataDir })
  await connectionState(page, 'open')
  // The killed turn is recorded as aborted on restart; the page shows each message once.
  await page.waitForFunction(() => document.querySelectorAll('#message-list .message.aborted').length === 2 && document.querySelector('.message.streaming') === null)
  const afterRestart = await shown(page)
  t.same(afterRestart.map(line => line.split(':')[0]), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant'], 'every message once, in order')
  t.equal(afterRestart[4], `user:${long}`)
  const ids = await page.$$eval('#message-list .message', items => items.map(item => (item as unknown as PageNode).dataset.id))
  t.equal(new Set(ids).size, 6, 'no row shown twice')

  // The conversation goes on, and a turn sent over HTTP with the same key streams into the page.
  const viaHttp = 'sent over http while the page watches'
  const answer = http(key.replace(/^agent:main:/, ''), viaHttp)
  await page.waitForSelector('.message.streaming')
  t.equal((await answer).status, 200)
  await page.waitForFunction(text => [...document.querySelectorAll('.message.assistant[data-id] .text')].some(item => item.textContent === text), viaHttp)
  const final = await shown(page)
  t.same(final.slice(-2), [`user:${viaHttp}`, `assistant:${viaHttp}`])
  t.equal(final.length, 8)

  // A narrow window still reads as a tool, not a debug dump.
  await page.setViewportSize({ width: 400, height: 760 })
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
  t.equal(overflow, 0, 'no sideways scrolling at 400 px')
  await page.screenshot({ path: join(output, 'narrow.png') })
  t.same(pageErrors, [], 'no script errors on the page')
  t.comment(`screenshots in ${output}`)
})
