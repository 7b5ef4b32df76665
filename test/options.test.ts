import Fastify from 'fastify'
import t from 'tap'
import sessionGateway, { MemoryStore, echoAgent } from '../lib/index.js'

async function register (options: unknown): Promise<Error | undefined> {
  const app = Fastify()
  try {
    await app.register(sessionGateway, options as never)
    await app.ready()
    return undefined
  } catch (err) {
    return err as Error
  } finally {
    await app.close()
  }
}

t.test('leaving auth out is an error that says how to choose', async t => {
  const err = await register({})
  t.match(err, { code: 'FSG_INVALID_OPTION', message: /option "auth": it is required: pass \{ token \} or \{ verify/ })
  t.match(await register(undefined), { code: 'FSG_INVALID_OPTION' })
})

t.test('each bad option is named, with what was expected', async t => {
  const cases: Array<[unknown, RegExp]> = [
    [{ auth: { token: '' } }, /"auth": \{ token: "<non-empty string>" \}/],
    [{ auth: 'yes' }, /"auth"/],
    [{ auth: false, busy: 'wait' }, /"busy": "queue" or "reject"/],
    [{ auth: false, replay: -1 }, /"replay": an integer from 0/],
    [{ auth: false, replay: 1.5 }, /"replay"/],
    [{ auth: false, runTimeoutMs: 0 }, /"runTimeoutMs": a positive integer/],
    [{ auth: false, maxQueue: 'many' }, /"maxQueue"/],
    [{ auth: false, maxIdleSessions: -5 }, /"maxIdleSessions"/],
    [{ auth: false, defaultAgentId: 'Not Valid' }, /"defaultAgentId": an agent id matching/],
    [{ auth: false, agents: [] }, /"agents": a non-empty array/],
    [{ auth: false, agents: ['ok', 'NOT OK'] }, /"agents\.1"/],
    [{ auth: false, mainKey: 'a:b' }, /"mainKey"/],
    [{ auth: false, store: {} }, /"store": a SessionStore \(get, findBySessionId/],
    [{ auth: false, store: Object.assign(new MemoryStore(), { get: 1 }) }, /"store": a SessionStore/],
    [{ auth: false, sessionLog: { append () {} } }, /"sessionLog": a SessionLog \(position, append/],
    [{ auth: false, agent: { reply () {} } }, /"agent": an Agent/],
    [{ auth: false, authorize: true }, /"authorize": a function/],
    [{ auth: false, routes: 'x' }, /"routes"/],
    [{ auth: false, prefix: '/v2', unknown: 1 }, /no such option/]
  ]
  for (const [options, message] of cases) {
    t.match(await register(options), { code: 'FSG_INVALID_OPTION', message }, JSON.stringify(options))
  }
})

t.test('good options register, with defaults filled in', async t => {
  t.equal(await register({ auth: false }), undefined)
  t.equal(await register({
    auth: { token: 'x' },
    store: new MemoryStore(),
    agent: echoAgent({ delayMs: 1 }),
    authorize: () => true,
    defaultAgentId: 'ops',
    agents: ['ops'],
    mainKey: 'home',
    busy: 'reject',
    replay: 0,
    runTimeoutMs: 1000,
    maxQueue: 0,
    maxIdleSessions: 0,
    routes () {}
  }), undefined)
})

t.test('every bounded option is taken at its bounds and refused just past them', async t => {
  const bounds: Array<[string, (value: number) => Record<string, unknown>, number, number?]> = [
    ['replay', value => ({ replay: value }), 0, 1_000_000],
    ['runTimeoutMs', value => ({ runTimeoutMs: value }), 1, 2_147_483_647],
    ['maxQueue', value => ({ maxQueue: value }), 0, 100_000],
    ['maxIdleSessions', value => ({ maxIdleSessions: value }), 0],
    ['maxPayload', value => ({ maxPayload: value }), 1024, 1_073_741_824],
    ['gateway', value => ({ gateway: { tickIntervalMs: value } }), 10, 3_600_000],
    ['gateway', value => ({ gateway: { maxBufferedBytes: value } }), 1024],
    ['gateway', value => ({ gateway: { handshakeTimeoutMs: value } }), 10, 600_000],
    ['gateway', value => ({ gateway: { maxWatchedSessions: value } }), 1, 1_000_000],
    ['responses', value => ({ responses: { bodyLimit: value } }), 1024, 1_073_741_824],
    ['responses', value => ({ responses: { websocketMaxAgeMs: value } }), 10, 2_147_483_647],
    ['responses', value => ({ responses: { recordTtlMs: value } }), 10]
  ]
  for (const [name, option, min, max] of bounds) {
    const edges: Array<[number, boolean]> = [[min, true], [min - 1, false], ...(max === undefined ? [] : [[max, true], [max + 1, false]] as Array<[number, boolean]>)]
    for (const [value, good] of edges) {
      const options = { auth: false, ...option(value) }
      const err = await register(options)
      if (good) t.equal(err, undefined, JSON.stringify(options))
      else t.match(err, { code: 'FSG_INVALID_OPTION', message: new RegExp(`option "${name}`) }, JSON.stringify(options))
    }
  }
})
