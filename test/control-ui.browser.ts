// OpenClaw's own Control UI, in a real browser, against this gateway: `npm run test:control-ui`.
// Not part of `npm test`: it needs the UI's files (the `openclaw` npm package, 56 MB
// unpacked, fetched once into ~/.cache/fastify-session-gateway, or CONTROL_UI_DIR) and
// Chromium (CHROMIUM, default /usr/bin/chromium).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import sessionGateway, { echoAgent, MemoryStore } from '../lib/index.js'

const OPENCLAW_VERSION = '2026.9.6'
const TOKEN = 'control-ui-token-0123456789'
// Outside node_modules, so that `npm ci` keeps it.
const CACHE = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fastify-session-gateway', `openclaw-control-ui-${OPENCLAW_VERSION}`)
const ASKED = 'alpha beta gamma delta epsilon zeta eta theta'

/** The UI's files: CONTROL_UI_DIR, else the cached copy, else fetched from npm once (`npm pack`, then only dist/control-ui kept). */
async function controlUiDir (): Promise<string> {
  const given = process.env.CONTROL_UI_DIR
  if (given !== undefined) return given
  if (existsSync(join(CACHE, 'index.html'))) return CACHE
  const work = await mkdtemp(join(tmpdir(), 'fsg-openclaw-pack-'))
  try {
    process.stdout.write(`# fetching openclaw@${OPENCLAW_VERSION} for its Control UI (once; kept in ${CACHE})\n`)
    execFileSync('npm', ['pack', `openclaw@${OPENCLAW_VERSION}`, '--pack-destination', work, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] })
    const tarball = (await readdir(work)).find(name => name.endsWith('.tgz')) as string
    execFileSync('tar', ['-xzf', join(work, tarball), '-C', work, 'package/dist/control-ui'])
    await mkdir(join(CACHE, '..'), { recursive: true })
    await rename(join(work, 'package', 'dist', 'control-ui'), CACHE)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
  return CACHE
}

/** The chat pane's text. */
async function chatText (page: Page): Promise<string> {
  return await page.locator('main').first().innerText({ timeout: 5000 }).catch(() => '')
}

function count (text: string, part: string): number {
  return text.split(part).length - 1
}

/** Polls `check` every 100 ms, at most `tries` times; the last value it returned. */
async function until<T> (page: Page, tries: number, check: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await check()
  for (let i = 0; i < tries && !done(value); i++) {
    await page.waitForTimeout(100)
    value = await check()
  }
  return value
}

t.setTimeout(300_000)

t.test('OpenClaw\'s Control UI lists the sessions, opens one, streams an answer once, and shows the same after a reload', async t => {
  const root = await controlUiDir()
  const app = Fastify({ logger: { level: 'warn' } })
  await app.register(sessionGateway, { auth: { token: TOKEN }, store: new MemoryStore(), agent: echoAgent({ delayMs: 250 }), controlUi: { root } })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  for (const name of ['demo-1', 'demo-2']) {
    const ticket = await app.sessionGateway.send({ sessionKey: `agent:main:${name}`, agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: `hello from ${name}` }], timestamp: Date.now() }] })
    await ticket.result
  }

  const profile = await mkdtemp(join(tmpdir(), 'fsg-chromium-'))
  t.teardown(async () => await rm(profile, { recursive: true, force: true }))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 }
  })
  t.teardown(() => browser.close())
  const page = browser.pages()[0] ?? await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', err => pageErrors.push(String(err)))
  const requests = new Map<string, string>()
  const refused = new Map<string, string>()
  const deltas: string[] = []
  page.on('websocket', socket => {
    socket.on('framesent', frame => {
      const sent = JSON.parse(String(frame.payload)) as { id?: string, method?: string }
      if (sent.id !== undefined && sent.method !== undefined) requests.set(sent.id, sent.method)
    })
    socket.on('framereceived', frame => {
      const got = JSON.parse(String(frame.payload)) as { type: string, id?: string, ok?: boolean, error?: { message: string }, event?: string, payload?: any }
      if (got.type === 'res' && got.ok === false && requests.get(got.id as string) !== 'connect') refused.set(requests.get(got.id as string) ?? '?', got.error?.message ?? '')
      if (got.event === 'chat' && got.payload?.state === 'delta') deltas.push(got.payload.deltaText)
    })
  })

  await page.goto(`${address}/#token=${TOKEN}`)
  const sidebar = page.getByText('demo-1', { exact: true }).first()
  await sidebar.waitFor({ timeout: 60_000 })
  t.ok(await page.getByText('demo-2', { exact: true }).first().isVisible(), 'the sidebar lists both sessions')

  await sidebar.click()
  const opened = await until(page, 100, async () => await chatText(page), text => count(text, 'hello from demo-1') >= 2)
  t.equal(count(opened, 'hello from demo-1'), 2, 'its history: the question and the answer')

  const composer = page.getByRole('textbox', { name: 'Chat composer' }).filter({ visible: true })
  await composer.fill(ASKED)
  await page.keyboard.press('Enter')
  const partial = await until(page, 100, async () => await chatText(page), text => count(text, 'alpha beta') === 2 && count(text, ASKED) === 1)
  t.ok(count(partial, 'alpha beta') === 2 && count(partial, ASKED) === 1, 'the answer shows while it streams')
  const answered = await until(page, 200, async () => await chatText(page), text => count(text, ASKED) >= 2)
  t.ok(deltas.length > 1, `it came as ${deltas.length} deltas`)
  const settled = await until(page, 50, async () => await page.locator('body').innerText(), text => !text.includes('Working'))
  t.equal(count(answered, ASKED), 2, 'the question once and the answer once')
  t.notMatch(settled, /Working/, 'no "Working…" left behind')
  await page.waitForTimeout(1000)
  t.equal(count(await chatText(page), ASKED), 2, 'and still once each a moment later')

  // A reload: the UI kept no token (this gateway issues no device tokens), so it asks again.
  await page.reload()
  const secret = page.getByPlaceholder(/Paste the token/)
  await secret.waitFor({ timeout: 60_000 })
  await secret.fill(TOKEN)
  await page.getByRole('button', { name: 'Connect' }).click()
  const reloaded = await until(page, 300, async () => await chatText(page), text => count(text, ASKED) >= 2)
  t.match(page.url(), /\/chat\/main\/demo-1$/, 'back on the same session')
  t.same([count(reloaded, 'hello from demo-1'), count(reloaded, ASKED)], [2, 2], 'the same messages, each once')

  t.same(pageErrors, [], 'no page error')
  t.comment(`methods this gateway does not have, each refused to the UI: ${[...refused.keys()].sort().join(', ')}`)
})
