// The `controlUi` option: OpenClaw's Control UI served from a directory, and its
// WebSocket (opened at the page's origin) answered by the gateway protocol at `/`.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGateway, { MemoryStore } from '../lib/index.js'
import { GatewaySocket, listen } from './gateway-frames.js'
import { buildApp, TOKEN } from './helpers.js'

/** A directory laid out like the openclaw package's dist/control-ui, and a secret beside it. */
async function uiDir (t: Test): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'fsg-ui-'))
  t.teardown(async () => await rm(base, { recursive: true, force: true }))
  const root = join(base, 'control-ui')
  await mkdir(join(root, 'assets'), { recursive: true })
  await writeFile(join(root, 'index.html'), '<!doctype html><title>OpenClaw Control</title><link rel="icon" href="./favicon.svg" /><script src="./assets/index-abc123.js"></script><a href="https://docs.openclaw.ai/">docs</a>')
  await writeFile(join(root, 'assets', 'index-abc123.js'), 'console.log(1)')
  await writeFile(join(root, 'favicon.svg'), '<svg/>')
  await writeFile(join(root, 'data.bin'), 'raw')
  await writeFile(join(base, 'secret.txt'), 'not for the web')
  await symlink(join(base, 'secret.txt'), join(root, 'leak.txt'))
  return root
}

t.test('the UI\'s files, its page for its own routes, and nothing from outside its directory', async t => {
  const app = await buildApp(t, { controlUi: { root: await uiDir(t) } })
  const get = async (url: string, accept = '*/*'): Promise<{ status: number, type: string | undefined, cache: string | undefined, body: string }> => {
    const res = await app.inject({ url, headers: { accept } })
    return { status: res.statusCode, type: res.headers['content-type'] as string | undefined, cache: res.headers['cache-control'] as string | undefined, body: res.body }
  }
  t.match(await get('/', 'text/html'), { status: 200, type: 'text/html; charset=utf-8', cache: 'no-cache', body: /OpenClaw Control/ })
  t.match(await get('/assets/index-abc123.js'), { status: 200, type: 'text/javascript; charset=utf-8', cache: 'public, max-age=31536000, immutable', body: 'console.log(1)' })
  t.match(await get('/favicon.svg?v=2026.9.6'), { status: 200, type: 'image/svg+xml', cache: 'no-cache' })
  t.match(await get('/data.bin'), { status: 200, type: 'application/octet-stream' })
  const deep = await get('/chat/main/demo', 'text/html,application/xhtml+xml')
  t.match(deep, { status: 200, body: /OpenClaw Control/ }, 'a route of the UI\'s own: its page')
  t.match(deep.body, /href="\/favicon\.svg".*src="\/assets\/index-abc123\.js".*href="https:\/\/docs/, 'whose own files it loads from /, wherever it is')
  t.match(await get('/assets', 'text/html'), { status: 200, body: /OpenClaw Control/ }, 'a directory is not a file')
  t.match(await get('/missing.js'), { status: 404 })
  t.match(await get('/api/users/owner/avatar', 'image/webp,*/*'), { status: 404 }, 'not a page, not a file')
  t.equal((await app.inject({ url: '/chat/x' })).statusCode, 404, 'no Accept: not a browser navigating')
  t.match(await get('/../secret.txt'), { status: 404 })
  t.match(await get('/%2e%2e/secret.txt'), { status: 404 })
  t.match(await get('/assets/%2e%2e/%2e%2e/secret.txt'), { status: 404 })
  t.match(await get('/leak.txt'), { status: 404 }, 'a link out of the directory is not followed')
  t.match(await get('/a%00b.js'), { status: 404 })
  t.equal((await app.inject({ method: 'HEAD', url: '/favicon.svg' })).statusCode, 200)
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'the gateway\'s own routes are untouched')
  t.equal((await app.inject({ url: '/v1/responses/resp_none', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 404)
})

t.test("a GET the UI does not have reaches the application's own not-found handler", async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.setNotFoundHandler(async (request, reply) => await reply.code(404).send({ ours: request.url }))
  await app.register(sessionGateway, { auth: { token: TOKEN }, store: new MemoryStore(), controlUi: { root: await uiDir(t) } })
  const missing = await app.inject({ url: '/missing.js' })
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { ours: '/missing.js' })
  t.match((await app.inject({ url: '/leak.txt' })).json(), { ours: '/leak.txt' }, 'nor does a link out of its directory')
})

t.test('the UI\'s WebSocket at / speaks the gateway protocol, its token in connect', async t => {
  const app = await buildApp(t, { controlUi: { root: await uiDir(t) } })
  await listen(app)
  const socket = await GatewaySocket.open(app, { path: '/', headers: {}, connect: { auth: { token: TOKEN } } }, problem => t.fail(problem))
  t.teardown(() => socket.close())
  t.equal((await socket.request('chat.send', { sessionKey: 'from-ui', message: 'hello', idempotencyKey: 'ui-1' })).ok, true)
  t.match(await socket.next(f => f.event === 'chat' && f.payload.state === 'final'), { payload: { sessionKey: 'agent:main:from-ui' } })
  t.equal((await socket.request('sessions.list', {})).payload.count, 1)

  const refused = await GatewaySocket.open(app, { path: '/', headers: {}, raw: true })
  t.teardown(() => refused.close())
  refused.send({ type: 'req', id: 'c', method: 'connect', params: { minProtocol: 4, maxProtocol: 4, client: { id: 'ui', version: '1', platform: 'web', mode: 'webchat' }, auth: { token: 'wrong' } } })
  t.equal((await refused.closedWith()).code, 1008, 'a wrong token is refused as on /gateway')
})

t.test('without controlUi nothing is served at /; a bad directory or a gateway turned off fails registration', async t => {
  const plain = await buildApp(t)
  t.equal((await plain.inject({ url: '/', headers: { accept: 'text/html' } })).statusCode, 404)

  const register = async (options: object): Promise<unknown> => {
    const app = Fastify()
    t.teardown(() => app.close())
    try {
      await app.register(sessionGateway, { auth: { token: TOKEN }, store: new MemoryStore(), ...options })
      await app.ready()
    } catch (err) {
      return err
    }
    return undefined
  }
  const empty = await mkdtemp(join(tmpdir(), 'fsg-ui-empty-'))
  t.teardown(async () => await rm(empty, { recursive: true, force: true }))
  t.match(await register({ controlUi: { root: empty } }), { code: 'FSG_INVALID_OPTION', message: /"controlUi\.root": a directory holding OpenClaw's Control UI .* has none/ })
  t.match(await register({ controlUi: { root: join(empty, 'nowhere') } }), { code: 'FSG_INVALID_OPTION', message: /controlUi\.root/ })
  await mkdir(join(empty, 'index.html'))
  t.match(await register({ controlUi: { root: empty } }), { code: 'FSG_INVALID_OPTION', message: /controlUi\.root/ }, 'an index.html that is not a file')
  t.match(await register({ controlUi: { root: await uiDir(t) }, gateway: false }), { code: 'FSG_INVALID_OPTION', message: /"controlUi": it speaks the gateway protocol/ })
  t.match(await register({ controlUi: { root: '' } }), { code: 'FSG_INVALID_OPTION', message: /"controlUi": false, or \{ root/ })
  t.equal(await register({ controlUi: false }), undefined)
})
