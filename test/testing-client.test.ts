import t from 'tap'
import { echoAgent } from '../lib/index.js'
import { connectClient } from '../lib/testing/index.js'
import { buildApp, TOKEN } from './helpers.js'

t.test('connectClient: a connected, typed client over injectWS in one line, no port', async t => {
  const app = await buildApp(t, { agent: echoAgent() })
  const client = await connectClient(app, { token: TOKEN })
  t.teardown(() => client.close())
  t.equal(client.state, 'open')
  t.equal(app.server.listening, false, 'nothing listens')
  const session = await client.open('tested')
  const answered = new Promise(resolve => session.on(update => { if (update.type === 'run.end') resolve(update) }))
  await session.send('hello from a test')
  t.match(await answered, { state: 'final', message: { content: [{ text: 'hello from a test' }] } })
  t.same(session.messages.map(message => message.role), ['user', 'assistant'])

  const byHeader = await connectClient(app, { headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'tested' }, path: '/gateway' })
  t.teardown(() => byHeader.close())
  t.match(await byHeader.chat.history({}), { sessionKey: 'agent:main:tested', messages: [{ role: 'user' }, { role: 'assistant' }] }, 'the upgrade\'s default session')
})

t.test('connectClient rejects as a browser would: a refused token, a refused upgrade', async t => {
  const app = await buildApp(t)
  await t.rejects(connectClient(app, { token: 'wrong' }), { code: 'REFUSED' })
  await t.rejects(connectClient(app, { headers: { authorization: 'Bearer wrong' } }), { code: 'UNREACHABLE', message: /Unexpected server response: 401/ })
})
