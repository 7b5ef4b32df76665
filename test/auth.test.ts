import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import sessionGateway, { MemoryStore } from '../lib/index.js'
import { buildApp, TOKEN } from './helpers.js'

const routes = (scope: import('fastify').FastifyInstance): void => {
  scope.get('/me', async request => ({ principal: request.gatewayPrincipal }))
  scope.post('/me', async request => ({ principal: request.gatewayPrincipal }))
  scope.get('/later', { config: { sessionGateway: { auth: 'deferred' } } }, async request => ({ principal: request.gatewayPrincipal }))
}

t.test('a shared token, from the Authorization header', async t => {
  const app = await buildApp(t, { routes })
  let res = await app.inject({ url: '/me', headers: { authorization: `Bearer ${TOKEN}` } })
  t.same(res.json(), { principal: { id: 'token' } })

  res = await app.inject({ url: '/me', headers: { authorization: `bearer   ${TOKEN}  ` } })
  t.equal(res.statusCode, 200, 'the scheme is case-insensitive')

  for (const authorization of [undefined, 'Bearer wrong', `Basic ${TOKEN}`, 'Bearer', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`]) {
    res = await app.inject({ url: '/me', headers: authorization === undefined ? {} : { authorization } })
    t.equal(res.statusCode, 401, `refused: ${String(authorization)}`)
    t.same(res.json(), { statusCode: 401, code: 'FSG_UNAUTHENTICATED', error: 'Unauthorized', message: 'Missing or invalid credentials' })
  }
})

t.test('the query token is for GET only (WebSocket upgrades, EventSource)', async t => {
  const app = await buildApp(t, { routes })
  let res = await app.inject({ url: `/me?token=${TOKEN}` })
  t.equal(res.statusCode, 200)
  res = await app.inject({ method: 'POST', url: `/me?token=${TOKEN}`, payload: {} })
  t.equal(res.statusCode, 401)
})

t.test('deferred routes let the handler authenticate later', async t => {
  const app = await buildApp(t, { routes })
  let res = await app.inject({ url: '/later' })
  t.same(res.json(), { principal: null }, 'no credentials: no principal yet, no 401')
  res = await app.inject({ url: '/later?token=nope' })
  t.equal(res.statusCode, 401, 'credentials that are present must be right')
  res = await app.inject({ url: `/later?token=${TOKEN}` })
  t.same(res.json(), { principal: { id: 'token' } })
})

t.test('verify decides, and sees the credentials', async t => {
  const seen: unknown[] = []
  const app = await buildApp(t, {
    routes,
    auth: {
      verify (request, credentials) {
        seen.push(credentials)
        if (credentials.token === 'alice-token') return { id: 'alice', role: 'user' }
        if (request.headers['x-api-key'] === 'k') return { id: 'service' }
        return null
      }
    }
  })
  let res = await app.inject({ url: '/me', headers: { authorization: 'Bearer alice-token' } })
  t.same(res.json(), { principal: { id: 'alice', role: 'user' } })
  res = await app.inject({ url: '/me', headers: { 'x-api-key': 'k' } })
  t.same(res.json(), { principal: { id: 'service' } })
  res = await app.inject({ url: '/me' })
  t.equal(res.statusCode, 401)
  t.same(seen, [{ token: 'alice-token' }, {}, {}])
})

t.test('a verify that returns something without an id is a server error, not a pass', async t => {
  const app = await buildApp(t, { routes, auth: { verify: () => ({ name: 'x' }) as never } })
  const res = await app.inject({ url: '/me' })
  t.equal(res.statusCode, 500)
})

t.test('auth: false runs open, as the anonymous principal', async t => {
  const app = await buildApp(t, { routes, auth: false })
  const res = await app.inject({ url: '/me' })
  t.same(res.json(), { principal: { id: 'anonymous' } })
})

t.test('a token in the query string never reaches the log', async t => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(sessionGateway, { auth: { token: TOKEN }, store: new MemoryStore(), routes })
  t.teardown(() => app.close())
  const res = await app.inject({ url: `/me?sessionKey=k&token=${TOKEN}` })
  t.equal(res.statusCode, 200)
  const incoming = lines.map(line => JSON.parse(line)).find(entry => entry.msg === 'incoming request')
  t.equal(incoming.req.url, '/me?sessionKey=k&token=[redacted]')
  t.notOk(lines.join('').includes(TOKEN), 'the token appears nowhere in the log')
  // The query parser decodes names: `%74oken` is the token to it, and must be to the log too.
  lines.length = 0
  const encoded = await app.inject({ url: `/me?%74oken=${TOKEN}&%zz=1&Password=p&plain` })
  t.equal(encoded.statusCode, 200, 'accepted as the token')
  t.equal(lines.map(line => JSON.parse(line)).find(entry => entry.msg === 'incoming request').req.url, '/me?%74oken=[redacted]&%zz=1&Password=[redacted]&plain')
  t.notOk(lines.join('').includes(TOKEN), 'nor when its name is encoded')
  lines.length = 0
  await app.inject({ url: '/me', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(lines.map(line => JSON.parse(line)).find(entry => entry.msg === 'incoming request').req.url, '/me', 'a URL without a query is as it came')
})
