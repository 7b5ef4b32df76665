import t from 'tap'
import { buildApp, TOKEN } from './helpers.js'
import type { SessionHints } from '../lib/index.js'

const principal = { id: 'alice' }

// [description, hints, whenMissing, expected sessionKey | error code, expected agentId?]
type Case = [string, SessionHints, 'fresh' | 'main' | 'error', string, string?]

const long = 'x'.repeat(513)
const cases: Case[] = [
  ['bare key goes to the default agent', { sessionKey: 'foo' }, 'error', 'agent:main:foo', 'main'],
  ['bare key is lower-cased', { sessionKey: 'FooBar' }, 'error', 'agent:main:foobar'],
  ['whitespace is trimmed', { sessionKey: '  foo \t' }, 'error', 'agent:main:foo'],
  ['main means the agent main session', { sessionKey: 'main' }, 'error', 'agent:main:main'],
  ['MAIN is main too', { sessionKey: 'MAIN' }, 'error', 'agent:main:main'],
  ['main with an agent header', { sessionKey: 'main', agentId: 'beta' }, 'error', 'agent:beta:main', 'beta'],
  ['bare key is scoped to the header agent', { sessionKey: 'foo', agentId: 'beta' }, 'error', 'agent:beta:foo', 'beta'],
  ['agent id header is lower-cased', { sessionKey: 'foo', agentId: 'BETA' }, 'error', 'agent:beta:foo', 'beta'],
  ['prefixed key keeps its agent', { sessionKey: 'agent:beta:foo' }, 'error', 'agent:beta:foo', 'beta'],
  ['prefixed key in mixed case', { sessionKey: 'Agent:Beta:Discord:Channel:42' }, 'error', 'agent:beta:discord:channel:42', 'beta'],
  ['prefixed key agreeing with the header', { sessionKey: 'agent:beta:x', agentId: 'beta' }, 'error', 'agent:beta:x', 'beta'],
  ['prefixed key contradicting the header', { sessionKey: 'agent:beta:x', agentId: 'gamma' }, 'error', 'FSG_AGENT_MISMATCH'],
  ['prefixed key contradicting the model', { sessionKey: 'agent:beta:x', model: 'openclaw/gamma' }, 'error', 'FSG_AGENT_MISMATCH'],
  ['global stays global', { sessionKey: 'GLOBAL' }, 'error', 'global', 'main'],
  ['prefix with an invalid agent id', { sessionKey: 'agent:-bad:x' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['prefix with nothing after it', { sessionKey: 'agent:main:' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['prefix without a rest', { sessionKey: 'agent:main' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['reserved subagent namespace', { sessionKey: 'subagent:x' }, 'error', 'FSG_RESERVED_SESSION_KEY'],
  ['reserved cron namespace', { sessionKey: 'cron:nightly' }, 'error', 'FSG_RESERVED_SESSION_KEY'],
  ['reserved acp namespace after agent prefix', { sessionKey: 'agent:main:acp:x' }, 'error', 'FSG_RESERVED_SESSION_KEY'],
  ['reserved namespace in upper case', { sessionKey: 'Agent:Main:SubAgent:x' }, 'error', 'FSG_RESERVED_SESSION_KEY'],
  ['a namespace that only starts like a reserved one', { sessionKey: 'cronjob:x' }, 'error', 'agent:main:cronjob:x'],
  ['512 characters are fine', { sessionKey: 'agent:main:' + 'x'.repeat(501) }, 'error', 'agent:main:' + 'x'.repeat(501)],
  ['513 characters are too many', { sessionKey: long }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['a bare key that makes 512 with its prefix', { sessionKey: 'x'.repeat(501) }, 'error', 'agent:main:' + 'x'.repeat(501)],
  ['a bare key that grows past 512 with its prefix', { sessionKey: 'x'.repeat(502) }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['a key that makes 512 once lower-cased', { sessionKey: 'agent:main:x' + '\u0130'.repeat(250) }, 'error', 'agent:main:x' + 'i\u0307'.repeat(250)],
  ['a key that grows past 512 once lower-cased', { sessionKey: 'agent:main:xx' + '\u0130'.repeat(250) }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['control characters', { sessionKey: 'foo\u0000bar' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['newline', { sessionKey: 'foo\nbar' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['DEL', { sessionKey: 'foo\u007fbar' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['../ escape', { sessionKey: '../../etc/passwd' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['slash', { sessionKey: 'agent:main:a/b' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['backslash', { sessionKey: 'a\\b' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['a .. segment', { sessionKey: 'agent:main:..' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['dots inside a segment are fine', { sessionKey: 'v1..2' }, 'error', 'agent:main:v1..2'],
  ['user derives a key', { user: 'Alice@Example.com' }, 'error', 'agent:main:openresponses-user:alice@example.com'],
  ['user with a header agent', { user: 'bob', agentId: 'beta' }, 'error', 'agent:beta:openresponses-user:bob', 'beta'],
  ['user with a model agent', { user: 'bob', model: 'openclaw:beta' }, 'error', 'agent:beta:openresponses-user:bob', 'beta'],
  ['user with a slash', { user: 'a/b' }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['a user that makes a key of 512', { user: 'u'.repeat(482) }, 'error', 'agent:main:openresponses-user:' + 'u'.repeat(482)],
  ['a user that makes a key of 513', { user: 'u'.repeat(483) }, 'error', 'FSG_INVALID_SESSION_KEY'],
  ['an explicit key wins over user', { sessionKey: 'k', user: 'bob' }, 'error', 'agent:main:k'],
  ['model openclaw/<id> selects the agent', { sessionKey: 'k', model: 'openclaw/beta' }, 'error', 'agent:beta:k', 'beta'],
  ['model agent:<id> selects the agent', { sessionKey: 'k', model: 'agent:beta' }, 'error', 'agent:beta:k', 'beta'],
  ['model openclaw selects the default', { sessionKey: 'k', model: 'openclaw' }, 'error', 'agent:main:k', 'main'],
  ['another model selects the default', { sessionKey: 'k', model: 'gpt-4o-mini' }, 'error', 'agent:main:k', 'main'],
  ['the header wins over the model', { sessionKey: 'k', agentId: 'beta', model: 'openclaw/gamma' }, 'error', 'agent:beta:k', 'beta'],
  ['an invalid agent id header', { sessionKey: 'k', agentId: 'no way' }, 'error', 'FSG_INVALID_AGENT_ID'],
  ['an agent id of 64 characters is valid (then meets the allow-list)', { sessionKey: 'k', agentId: 'a'.repeat(64) }, 'error', 'FSG_UNKNOWN_AGENT'],
  ['an agent id of 65 characters is not', { sessionKey: 'k', agentId: 'a'.repeat(65) }, 'error', 'FSG_INVALID_AGENT_ID'],
  ['an invalid agent in the model', { sessionKey: 'k', model: 'openclaw/!' }, 'error', 'FSG_INVALID_AGENT_ID'],
  ['an agent outside the allow-list', { sessionKey: 'k', agentId: 'zeta' }, 'error', 'FSG_UNKNOWN_AGENT'],
  ['a key naming an agent outside the allow-list', { sessionKey: 'agent:zeta:k' }, 'error', 'FSG_UNKNOWN_AGENT'],
  ['nothing, when a key is required', {}, 'error', 'FSG_MISSING_SESSION_KEY'],
  ['an empty key counts as none', { sessionKey: '   ' }, 'error', 'FSG_MISSING_SESSION_KEY'],
  ['nothing, main wanted', {}, 'main', 'agent:main:main'],
  ['nothing, main wanted, header agent', { agentId: 'beta' }, 'main', 'agent:beta:main', 'beta']
]

t.test('the resolver table', async t => {
  const app = await buildApp(t, { agents: ['main', 'beta', 'gamma'] })
  t.ok(cases.length >= 30)
  for (const [name, hints, whenMissing, expected, agentId] of cases) {
    try {
      const resolved = await app.sessionGateway.resolve(hints, principal, 'read', whenMissing)
      t.equal(resolved.sessionKey, expected, name)
      if (agentId !== undefined) t.equal(resolved.agentId, agentId, `${name}: agent`)
    } catch (err) {
      t.equal((err as { code?: string }).code, expected, `${name}: ${(err as Error).message}`)
    }
  }
})

t.test('a request that names no session gets a fresh one each time', async t => {
  const app = await buildApp(t)
  const a = await app.sessionGateway.resolve({}, principal, 'write', 'fresh')
  const b = await app.sessionGateway.resolve({ model: 'openclaw/beta' }, principal, 'write', 'fresh')
  t.match(a.sessionKey, /^agent:main:openresponses:[0-9a-f-]{36}$/)
  t.match(b.sessionKey, /^agent:beta:openresponses:[0-9a-f-]{36}$/)
  t.not(a.sessionKey, (await app.sessionGateway.resolve({}, principal, 'write', 'fresh')).sessionKey)
})

t.test('a model that selects no agent is handed on', async t => {
  const app = await buildApp(t)
  const resolved = await app.sessionGateway.resolve({ sessionKey: 'k', model: 'gpt-4o-mini' }, principal, 'write')
  t.same(resolved, { sessionKey: 'agent:main:k', agentId: 'main', model: 'gpt-4o-mini' })
})

t.test('a custom main key and default agent', async t => {
  const app = await buildApp(t, { mainKey: 'home', defaultAgentId: 'ops' })
  t.equal((await app.sessionGateway.resolve({ sessionKey: 'main' }, principal, 'read')).sessionKey, 'agent:ops:home')
  t.equal((await app.sessionGateway.resolve({ sessionKey: 'HOME' }, principal, 'read')).sessionKey, 'agent:ops:home')
  t.equal((await app.sessionGateway.resolve({ sessionKey: 'agent:ops:main' }, principal, 'read')).sessionKey, 'agent:ops:main')
})

t.test('authorize decides, per principal, key and action', async t => {
  const calls: unknown[] = []
  const app = await buildApp(t, {
    authorize ({ principal, sessionKey, agentId, action }) {
      calls.push({ principal: principal.id, sessionKey, agentId, action })
      if (principal.id === 'admin') return true
      // users own the sessions under their name, and may only read the shared one
      if (sessionKey === 'agent:main:shared') return action === 'read'
      return sessionKey.startsWith(`agent:main:${principal.id}:`)
    }
  })
  const resolve = app.sessionGateway.resolve
  t.equal((await resolve({ sessionKey: 'alice:chat' }, { id: 'alice' }, 'write')).sessionKey, 'agent:main:alice:chat')
  await t.rejects(resolve({ sessionKey: 'bob:chat' }, { id: 'alice' }, 'read'), { code: 'FSG_FORBIDDEN', statusCode: 403 })
  t.equal((await resolve({ sessionKey: 'shared' }, { id: 'alice' }, 'read')).sessionKey, 'agent:main:shared')
  await t.rejects(resolve({ sessionKey: 'shared' }, { id: 'alice' }, 'write'), {
    code: 'FSG_FORBIDDEN', message: 'Not allowed to write session "agent:main:shared"'
  })
  t.equal((await resolve({ sessionKey: 'bob:chat' }, { id: 'admin' }, 'write')).sessionKey, 'agent:main:bob:chat')
  t.same(calls[0], { principal: 'alice', sessionKey: 'agent:main:alice:chat', agentId: 'main', action: 'write' })
})

t.test('an authorize that answers anything but true refuses', async t => {
  const app = await buildApp(t, { authorize: async () => 'yes' as unknown as boolean })
  await t.rejects(app.sessionGateway.resolve({ sessionKey: 'k' }, { id: 'a' }, 'read'), { code: 'FSG_FORBIDDEN' })
})

t.test('the resolver hook gives routes in the gateway scope their session', async t => {
  const app = await buildApp(t, {
    authorize: ({ principal, sessionKey }) => principal.id === 'token' && !sessionKey.includes('secret'),
    routes (scope) {
      scope.get('/probe', async request => ({ principal: request.gatewayPrincipal, session: request.gatewaySession }))
      scope.post('/probe', { config: { sessionGateway: { session: 'fresh' } } }, async request => ({ session: request.gatewaySession }))
      scope.get('/open', { config: { sessionGateway: { session: 'none' } } }, async request => ({ session: request.gatewaySession }))
    }
  })
  const auth = { authorization: `Bearer ${TOKEN}` }

  let res = await app.inject({ url: '/probe', headers: { ...auth, 'x-openclaw-session-key': 'Foo', 'x-openclaw-agent-id': 'beta' } })
  t.same(res.json(), { principal: { id: 'token' }, session: { sessionKey: 'agent:beta:foo', agentId: 'beta' } })

  res = await app.inject({ url: '/probe?sessionKey=bar&agentId=beta', headers: auth })
  t.same(res.json().session, { sessionKey: 'agent:beta:bar', agentId: 'beta' }, 'query hints')

  res = await app.inject({ url: '/probe?sessionKey=bar', headers: { ...auth, 'x-openclaw-session-key': 'foo' } })
  t.equal(res.json().session.sessionKey, 'agent:main:foo', 'the header wins over the query')

  res = await app.inject({ url: '/probe', headers: auth })
  t.equal(res.json().session, null, 'no hints, optional: no session')

  res = await app.inject({ method: 'POST', url: '/probe', headers: auth, payload: { user: 'Carol' } })
  t.equal(res.json().session.sessionKey, 'agent:main:openresponses-user:carol', 'user from the body')

  res = await app.inject({ method: 'POST', url: '/probe', headers: auth, payload: { model: 'openclaw/beta' } })
  t.match(res.json().session.sessionKey, /^agent:beta:openresponses:/, 'fresh, agent from the model')

  res = await app.inject({ url: '/probe', headers: { ...auth, 'x-openclaw-session-key': 'cron:x' } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'FSG_RESERVED_SESSION_KEY')

  res = await app.inject({ url: '/probe', headers: { ...auth, 'x-openclaw-session-key': 'secret' } })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'FSG_FORBIDDEN')

  res = await app.inject({ url: '/open', headers: { ...auth, 'x-openclaw-session-key': 'secret' } })
  t.same(res.json(), { session: null }, 'session: none skips the resolver')
})

t.test('the key functions, called directly, refuse empty input', async t => {
  const { canonicalizeSessionKey, userSessionKey, normalizeAgentId } = await import('../lib/index.js')
  t.throws(() => canonicalizeSessionKey('  ', { agentId: 'main', explicitAgent: false, mainKey: 'main' }), { code: 'FSG_MISSING_SESSION_KEY' })
  t.throws(() => userSessionKey(' ', 'main'), { code: 'FSG_INVALID_SESSION_KEY' })
  t.equal(normalizeAgentId(' Ops '), 'ops')
})
