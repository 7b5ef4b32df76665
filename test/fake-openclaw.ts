// An OpenClaw-like `/v1/responses` for tests (the real one is 860 MB): bearer-token auth,
// OpenClaw's strict input check (typed items only), its own session per
// `x-openclaw-session-key` (a turn sees the turns before it), and its stream as the real
// 2026.9.6 sends it: no `sequence_number`, the answer word by word, `data: [DONE]` last,
// a client tool call as one whole `function_call` item after an empty "commentary"
// message. Facts from a capture of the real gateway (see the closing note of issue 10).
import type { ServerResponse } from 'node:http'
import { startFakeUpstream, writeSse, type FakeUpstream, type StreamOptions, type UpstreamRequest } from './fake-upstream.js'

export const OPENCLAW_TOKEN = 'oc-token-abcdef0123456789'

export interface FakeOpenClaw extends FakeUpstream {
  /** Each session's user texts, in the order OpenClaw received them. */
  sessions: Map<string, string[]>
  /** How the next answers stream (pauses, a stall, a drop). */
  streamOptions: StreamOptions
}

export async function startFakeOpenClaw (t: { teardown: (fn: () => unknown) => void }): Promise<FakeOpenClaw> {
  const fake = Object.assign(await startFakeUpstream(t), { sessions: new Map<string, string[]>(), streamOptions: {} }) as FakeOpenClaw
  fake.handle(async (request, res) => { await answer(fake, request, res) })
  return fake
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
