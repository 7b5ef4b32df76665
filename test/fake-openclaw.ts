// An OpenClaw-like gateway for tests (the real one is 860 MB). Its `/v1/responses`:
// bearer-token auth, OpenClaw's strict input check (typed items only), its own session per
// `x-openclaw-session-key` (a turn sees the turns before it), and its stream as the real
// 2026.9.6 sends it: no `sequence_number`, the answer word by word, `data: [DONE]` last,
// a client tool call as one whole `function_call` item after an empty "commentary"
// message. Facts from a capture of the real gateway (see the closing note of issue 10).
// Its gateway protocol, on a WebSocket at `/`, as far as reading sessions goes and as the
// real one answers: `connect.challenge` first; scopes kept only for a backend client
// (`gateway-client`, mode `backend`) with the token; `sessions.list` newest first with
// offset paging; `chat.history` pages counted from the newest, user text as a string,
// `__openclaw: {id, seq}`, and no `sessionId` for a key it has no session for.
import type { ServerResponse } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'
import { startFakeUpstream, writeSse, type FakeUpstream, type StreamOptions, type UpstreamRequest } from './fake-upstream.js'

export const OPENCLAW_TOKEN = 'oc-token-abcdef0123456789'

/** A message in OpenClaw's `chat.history` shape. */
export type OpenClawMessage = Record<string, unknown> & { role: string }

export interface OpenClawSession {
  sessionId: string
  agentId: string
  label?: string
  updatedAt: number
  messages: OpenClawMessage[]
}

export interface FakeOpenClaw extends FakeUpstream {
  /** Each session's user texts, in the order OpenClaw received them. */
  sessions: Map<string, string[]>
  /** What its gateway protocol shows: every session it keeps, by key (turns over HTTP land here too). */
  stored: Map<string, OpenClawSession>
  /** How the next answers stream (pauses, a stall, a drop). */
  streamOptions: StreamOptions
  /**
   * The gateway protocol: `normal`, `silent` (never challenges), `remote` (keeps no scope,
   * as for a client on another machine), `garbled` (answers with a frame that is not
   * JSON), `odd` (answers with rows and messages missing what they usually have).
   */
  gatewayMode: 'normal' | 'silent' | 'remote' | 'garbled' | 'odd'
  /** Every gateway-protocol request it received. */
  gatewayRequests: Array<{ method: string, params: any }>
  /** The headers of every gateway-protocol connection's upgrade. */
  gatewayHeaders: Array<Record<string, unknown>>
}

export async function startFakeOpenClaw (t: { teardown: (fn: () => unknown) => void }): Promise<FakeOpenClaw> {
  const fake = Object.assign(await startFakeUpstream(t), {
    sessions: new Map<string, string[]>(),
    stored: new Map<string, OpenClawSession>(),
    streamOptions: {},
    gatewayMode: 'normal',
    gatewayRequests: [],
    gatewayHeaders: []
  }) as FakeOpenClaw
  fake.handle(async (request, res) => { await answer(fake, request, res) })
  const wss = new WebSocketServer({ server: fake.server })
  wss.on('connection', (socket, request) => {
    fake.gatewayHeaders.push(request.headers)
    gateway(fake, socket)
  })
  t.teardown(() => {
    for (const client of wss.clients) client.terminate()
    wss.close()
  })
  return fake
}

/** A session as OpenClaw would have it after `turns` exchanges, the newest `updatedAt`. */
export function openClawSession (sessionId: string, updatedAt: number, turns: Array<[string, string]>, extra: Partial<OpenClawSession> = {}): OpenClawSession {
  const messages: OpenClawMessage[] = []
  for (const [asked, answered] of turns) {
    messages.push({ role: 'user', content: asked, timestamp: updatedAt - 2 })
    messages.push({ role: 'assistant', content: [{ type: 'text', text: answered }], api: 'openai-completions', provider: 'stub', model: 'echo', usage: { input: 10, output: 2, totalTokens: 12, cacheRead: 0 }, stopReason: 'stop', timestamp: updatedAt - 1 })
  }
  return { sessionId, agentId: 'main', updatedAt, messages, ...extra }
}

function gateway (fake: FakeOpenClaw, socket: WebSocket): void {
  if (fake.gatewayMode === 'silent') return
  socket.send(JSON.stringify({ type: 'event', event: 'connect.challenge', payload: { nonce: 'n-1', ts: Date.now() } }))
  let scopes: string[] = []
  const respond = (id: string, payload: unknown): void => socket.send(JSON.stringify({ type: 'res', id, ok: true, payload }))
  const refuse = (id: string, code: string, message: string): void => socket.send(JSON.stringify({ type: 'res', id, ok: false, error: { code, message } }))
  socket.on('message', data => {
    const { id, method, params } = JSON.parse(String(data)) as { id: string, method: string, params: any }
    fake.gatewayRequests.push({ method, params })
    if (fake.gatewayMode === 'garbled') return socket.send('<html>not a gateway</html>')
    if (method === 'connect') {
      if (params.auth?.token !== OPENCLAW_TOKEN) {
        refuse(id, 'INVALID_REQUEST', 'unauthorized: gateway token mismatch (set gateway.remote.token to match gateway.auth.token)')
        return socket.close(1008, 'unauthorized')
      }
      const backend = params.client?.id === 'gateway-client' && params.client?.mode === 'backend'
      scopes = backend && fake.gatewayMode !== 'remote' ? params.scopes : []
      return respond(id, { type: 'hello-ok', protocol: 4, server: { version: '2026.9.6', connId: 'c-1' }, auth: { method: 'token', role: 'operator', scopes } })
    }
    if (!scopes.includes('operator.read')) return refuse(id, 'FORBIDDEN', 'missing scope: operator.read')
    if (fake.gatewayMode === 'odd') return respond(id, oddAnswer(method, params))
    if (method === 'sessions.list') return respond(id, sessionsList(fake, params))
    if (method === 'chat.history') return respond(id, chatHistory(fake, params))
    refuse(id, 'INVALID_REQUEST', `unknown method: ${method}`)
  })
}

/** Answers with the fields OpenClaw usually sends left out or empty. */
function oddAnswer (method: string, params: any): Record<string, unknown> {
  if (method === 'sessions.list') {
    if (params.search === 'none') return { sessions: null }
    return {
      sessions: [
        { key: 'agent:main:bare', agentId: 'main', createdAt: 5 },
        { key: 'agent:main:empty-label', agentId: 'main', label: '', lastMessagePreview: '', updatedAt: 3 },
        { agentId: 'main' },
        { key: 'agent:main:no-agent' }
      ],
      hasMore: false
    }
  }
  if (params.sessionKey === 'agent:main:null') return null as unknown as Record<string, unknown>
  if (params.sessionKey === 'global') return { sessionId: 's-global', sessionInfo: { agentId: 'main' }, messages: [{ role: 'user', content: 'to everyone' }] }
  if (params.offset > 0) return { sessionId: 's-odd', hasMore: true, messages: 'none left' }
  return {
    sessionId: 's-odd',
    hasMore: true,
    messages: [
      { role: 'user', content: 42, timestamp: 1 },
      { role: 'user', content: [null, {}, { type: 'text', text: 'ok' }], __openclaw: { id: '' }, timestamp: 2 },
      { role: 'assistant', content: [], usage: { input: 1, output: 'many' }, timestamp: 3 },
      { role: 'toolResult', content: 'r', timestamp: 4 }
    ]
  }
}

function sessionsList (fake: FakeOpenClaw, params: any): Record<string, unknown> {
  const rows = [...fake.stored.entries()]
    .filter(([key, session]) => (params.agentId === undefined || session.agentId === params.agentId) &&
      (params.label === undefined || session.label === params.label) &&
      (params.search === undefined || key.includes(String(params.search))))
    .sort(([, a], [, b]) => b.updatedAt - a.updatedAt)
  const offset = Number(params.offset ?? 0)
  const page = rows.slice(offset, offset + Number(params.limit ?? 50))
  const more = offset + page.length < rows.length
  return {
    ts: Date.now(),
    count: page.length,
    sessions: page.map(([key, session]) => {
      const last = session.messages.at(-1)
      const text = last === undefined ? undefined : typeof last.content === 'string' ? last.content : (last.content as Array<{ text?: string }>)[0]?.text
      return {
        key,
        kind: 'direct',
        agentId: session.agentId,
        sessionId: session.sessionId,
        updatedAt: session.updatedAt,
        ...(session.label === undefined ? {} : { label: session.label, displayName: session.label }),
        ...(params.includeLastMessage === true && text !== undefined ? { lastMessagePreview: text } : {})
      }
    }),
    hasMore: more,
    nextOffset: more ? offset + page.length : null
  }
}

function chatHistory (fake: FakeOpenClaw, params: any): Record<string, unknown> {
  const key = String(params.sessionKey)
  const session = fake.stored.get(key)
  if (session === undefined) return { sessionKey: key, messages: [], hasMore: false, totalMessages: 0, sessionInfo: { key, kind: 'direct', agentId: key.split(':')[1], updatedAt: null } }
  const all = session.messages.map((message, i) => ({ ...message, __openclaw: message.__openclaw ?? { id: `${session.sessionId.slice(0, 8)}-${i + 1}`, seq: i + 1 } }))
  const offset = Number(params.offset ?? 0)
  const end = all.length - offset
  const start = Math.max(0, end - Number(params.limit ?? 200))
  const more = start > 0
  return {
    sessionKey: key,
    sessionId: session.sessionId,
    messages: all.slice(start, end),
    ...(offset > 0 ? { offset } : {}),
    ...(more ? { nextOffset: offset + (end - start) } : {}),
    hasMore: more,
    totalMessages: all.length,
    sessionInfo: { key, kind: 'direct', agentId: session.agentId, sessionId: session.sessionId, updatedAt: session.updatedAt, ...(session.label === undefined ? {} : { label: session.label }) }
  }
}

function refuse (res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify({ error: { message, type } }))
}

async function answer (fake: FakeOpenClaw, request: UpstreamRequest, res: ServerResponse): Promise<void> {
  if (request.path !== '/v1/responses') return refuse(res, 404, 'not_found', 'Not Found')
  if (request.headers.authorization !== `Bearer ${OPENCLAW_TOKEN}`) return refuse(res, 401, 'unauthorized', 'Unauthorized')
  const body = request.body as Record<string, any>
  const agentId = String(request.headers['x-openclaw-agent-id'] ?? 'main')
  if (agentId !== 'main') return refuse(res, 400, 'invalid_request_error', `Unknown agent "${agentId}"`)
  if (!Array.isArray(body.input) || body.input.some((item: { type?: unknown }) => typeof item.type !== 'string')) {
    return refuse(res, 400, 'invalid_request_error', 'input: Invalid input')
  }
  const key = String(request.headers['x-openclaw-session-key'] ?? `agent:main:openresponses:${Math.random()}`).toLowerCase()
  const turns = fake.sessions.get(key) ?? []
  fake.sessions.set(key, turns)
  const texts: string[] = []
  for (const item of body.input as Array<Record<string, any>>) {
    if (item.type === 'message') texts.push(typeof item.content === 'string' ? item.content : item.content.map((part: { text?: string }) => part.text ?? '').join(''))
    if (item.type === 'function_call_output') texts.push(`Tool:${String(item.call_id)}: ${String(item.output)}`)
  }
  const text = texts.join('\n')
  turns.push(text)
  const stored = fake.stored.get(key) ?? { sessionId: `oc-${fake.stored.size + 1}-0000-0000`, agentId, updatedAt: 0, messages: [] }
  fake.stored.set(key, stored)
  stored.updatedAt = Date.now()
  stored.messages.push({ role: 'user', content: text, timestamp: stored.updatedAt })

  const events: Array<[string, string]> = []
  const emit = (type: string, fields: Record<string, unknown>): void => { events.push([type, JSON.stringify({ type, ...fields })]) }
  const response = { id: 'resp_oc', object: 'response', created_at: 1, model: 'openclaw', output: [] as unknown[] }
  emit('response.created', { response: { ...response, status: 'in_progress' } })
  emit('response.in_progress', { response: { ...response, status: 'in_progress' } })
  if (text.includes('weather') && Array.isArray(body.tools) && body.tools.length > 0) {
    const call = { type: 'function_call', id: 'call_oc_item', call_id: '6ad7131a0', name: String(body.tools[0].name), arguments: '{"city":"Paris"}' }
    emit('response.output_item.added', { output_index: 0, item: { type: 'message', id: 'msg_c', role: 'assistant', content: [], status: 'in_progress' } })
    emit('response.output_item.done', { output_index: 0, item: { type: 'message', id: 'msg_c', role: 'assistant', content: [{ type: 'output_text', text: '' }], phase: 'commentary', status: 'completed' } })
    emit('response.output_item.added', { output_index: 1, item: call })
    emit('response.output_item.done', { output_index: 1, item: { ...call, status: 'completed' } })
    emit('response.completed', { response: { ...response, status: 'completed', output: [call], usage: usage() } })
  } else {
    const reply = `echo: ${text} (turn ${turns.length} of ${key})`
    stored.messages.push({ role: 'assistant', content: [{ type: 'text', text: reply }], stopReason: 'stop', timestamp: Date.now() })
    emit('response.output_item.added', { output_index: 0, item: { type: 'message', id: 'msg_1', role: 'assistant', content: [], status: 'in_progress' } })
    emit('response.content_part.added', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: '' } })
    for (const word of reply.match(/\s*\S+/g) ?? []) emit('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: word })
    emit('response.output_text.done', { item_id: 'msg_1', output_index: 0, content_index: 0, text: reply })
    const item = { type: 'message', id: 'msg_1', role: 'assistant', content: [{ type: 'output_text', text: reply }], phase: 'final_answer', status: 'completed' }
    emit('response.content_part.done', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: reply } })
    emit('response.output_item.done', { output_index: 0, item })
    emit('response.completed', { response: { ...response, status: 'completed', output: [item], usage: usage() } })
  }
  await writeSse(res, [...events, '[DONE]'], fake.streamOptions)
}

function usage (): Record<string, unknown> {
  return { input_tokens: 12700, input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, output_tokens: 9, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 12709 }
}
