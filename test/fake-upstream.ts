// A small OpenAI-compatible server for tests, on 127.0.0.1: it records every request and
// answers as a test scripts it, streaming Chat Completions chunks or Responses events
// shaped the way the real APIs send them (a role chunk first, tool-call arguments split
// across many deltas, usage last, `[DONE]`). It also sees a client walk away mid-stream.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export interface UpstreamRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
  body: any
}

export type Handler = (request: UpstreamRequest, res: ServerResponse) => void | Promise<void>

export interface FakeUpstream {
  /** `http://127.0.0.1:<port>` */
  origin: string
  /** The HTTP server, for a WebSocket server beside it. */
  server: Server
  requests: UpstreamRequest[]
  /** Responses whose client went away before the server ended them. */
  abandoned: number
  /** Settles the next time a client walks away mid-response. */
  nextAbandon: () => Promise<void>
  handle: (handler: Handler) => void
}

export async function startFakeUpstream (t: { teardown: (fn: () => unknown) => void }): Promise<FakeUpstream> {
  let handler: Handler = (_request, res) => { res.writeHead(500).end('no handler') }
  let onAbandon: (() => void) | undefined
  const fake: FakeUpstream = {
    origin: '',
    server: undefined as unknown as Server,
    requests: [],
    abandoned: 0,
    nextAbandon: async () => await new Promise<void>(resolve => { onAbandon = resolve }),
    handle: h => { handler = h }
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      let body: unknown = text
      try { body = JSON.parse(text) } catch {}
      const request = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body }
      fake.requests.push(request)
      res.on('close', () => {
        if (res.writableFinished) return
        fake.abandoned++
        onAbandon?.()
      })
      Promise.resolve(handler(request, res)).catch(() => res.destroy())
    })
  })
  fake.server = server
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  fake.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(async () => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  })
  return fake
}

/** What one scripted answer holds. */
export interface Script {
  text?: string
  reasoning?: string
  toolCalls?: Array<{ id: string, name: string, arguments: string }>
  usage?: { input: number, output: number, cached?: number, reasoning?: number }
  /** Chat: the finish_reason (default `stop`, or `tool_calls` when there are calls). */
  finish?: string
}

/** Pieces of `text` the way models stream them: a word (with its leading space) at a time. */
function pieces (text: string): string[] {
  return text.match(/\s*\S+/g) ?? []
}

/** Splits a string into chunks of `size` characters (tool arguments arrive this way). */
function split (text: string, size: number): string[] {
  const out: string[] = []
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size))
  return out
}

/** The data lines of a Chat Completions stream for `script`, ending with `[DONE]`. */
export function chatChunks (script: Script, options: { done?: boolean, finish?: boolean, reasoningField?: string } = {}): string[] {
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'fake-model' }
  const chunk = (delta: unknown, finish: string | null = null): string => JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })
  const out = [chunk({ role: 'assistant', content: '' })]
  for (const piece of pieces(script.reasoning ?? '')) out.push(chunk({ [options.reasoningField ?? 'reasoning_content']: piece }))
  for (const piece of pieces(script.text ?? '')) out.push(chunk({ content: piece }))
  for (const [index, call] of (script.toolCalls ?? []).entries()) {
    out.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }))
    for (const part of split(call.arguments, 3)) out.push(chunk({ tool_calls: [{ index, function: { arguments: part } }] }))
  }
  if (options.finish !== false) out.push(chunk({}, script.finish ?? ((script.toolCalls ?? []).length > 0 ? 'tool_calls' : 'stop')))
  if (script.usage !== undefined) {
    out.push(JSON.stringify({
      ...base,
      choices: [],
      usage: {
        prompt_tokens: script.usage.input,
        completion_tokens: script.usage.output,
        total_tokens: script.usage.input + script.usage.output,
        prompt_tokens_details: { cached_tokens: script.usage.cached ?? 0 },
        completion_tokens_details: { reasoning_tokens: script.usage.reasoning ?? 0 }
      }
    }))
  }
  if (options.done !== false) out.push('[DONE]')
  return out
}

/** The events of a Responses stream for `script`, as `[event name, data]` pairs. */
export function responsesEvents (script: Script, options: { terminal?: 'completed' | 'incomplete' | 'failed' | false } = {}): Array<[string, string]> {
  let seq = 0
  const events: Array<[string, string]> = []
  const emit = (type: string, fields: Record<string, unknown>): void => { events.push([type, JSON.stringify({ type, sequence_number: seq++, ...fields })]) }
  const response = (status: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id: 'resp_up', object: 'response', status, model: 'fake-model', output: [], ...extra })
  emit('response.created', { response: response('in_progress') })
  emit('response.in_progress', { response: response('in_progress') })
  let index = 0
  if (script.reasoning !== undefined) {
    emit('response.output_item.added', { output_index: index, item: { type: 'reasoning', id: 'rs_1', summary: [], content: [] } })
    for (const piece of pieces(script.reasoning)) emit('response.reasoning_text.delta', { item_id: 'rs_1', output_index: index, content_index: 0, delta: piece })
    emit('response.output_item.done', { output_index: index, item: { type: 'reasoning', id: 'rs_1', summary: [], content: [{ type: 'reasoning_text', text: script.reasoning }] } })
    index++
  }
  if (script.text !== undefined) {
    emit('response.output_item.added', { output_index: index, item: { type: 'message', id: 'msg_1', role: 'assistant', status: 'in_progress', content: [] } })
    emit('response.content_part.added', { item_id: 'msg_1', output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } })
    for (const piece of pieces(script.text)) emit('response.output_text.delta', { item_id: 'msg_1', output_index: index, content_index: 0, delta: piece })
    emit('response.output_text.done', { item_id: 'msg_1', output_index: index, content_index: 0, text: script.text })
    emit('response.output_item.done', { output_index: index, item: { type: 'message', id: 'msg_1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: script.text, annotations: [] }] } })
    index++
  }
  for (const [i, call] of (script.toolCalls ?? []).entries()) {
    const id = `fc_${i}`
    emit('response.output_item.added', { output_index: index, item: { type: 'function_call', id, call_id: call.id, name: call.name, arguments: '', status: 'in_progress' } })
    for (const part of split(call.arguments, 3)) emit('response.function_call_arguments.delta', { item_id: id, output_index: index, delta: part })
    emit('response.function_call_arguments.done', { item_id: id, output_index: index, arguments: call.arguments })
    emit('response.output_item.done', { output_index: index, item: { type: 'function_call', id, call_id: call.id, name: call.name, arguments: call.arguments, status: 'completed' } })
    index++
  }
  const usage = script.usage === undefined
    ? null
    : {
        input_tokens: script.usage.input,
        output_tokens: script.usage.output,
        total_tokens: script.usage.input + script.usage.output,
        input_tokens_details: { cached_tokens: script.usage.cached ?? 0 },
        output_tokens_details: { reasoning_tokens: script.usage.reasoning ?? 0 }
      }
  const terminal = options.terminal ?? 'completed'
  if (terminal === 'completed') emit('response.completed', { response: response('completed', { usage }) })
  if (terminal === 'incomplete') emit('response.incomplete', { response: response('incomplete', { usage, incomplete_details: { reason: 'max_output_tokens' } }) })
  if (terminal === 'failed') emit('response.failed', { response: response('failed', { error: { code: 'server_error', message: 'the model crashed' } }) })
  return events
}

export interface StreamOptions {
  /** Pause before each event, in ms. */
  delayMs?: number
  /** Stop sending (but keep the connection open) after this many events. */
  stallAfter?: number
  /** Destroy the connection after this many events. */
  dropAfter?: number
}

/** Writes an event stream: `data` strings (Chat Completions) or `[event, data]` pairs (Responses). */
export async function writeSse (res: ServerResponse, events: Array<string | [string, string]>, options: StreamOptions = {}): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
  for (const [i, event] of events.entries()) {
    if (options.delayMs !== undefined) await sleep(options.delayMs)
    if (i === options.stallAfter || res.destroyed) return
    if (i === options.dropAfter) {
      res.destroy()
      return
    }
    res.write(typeof event === 'string' ? `data: ${event}\n\n` : `event: ${event[0]}\ndata: ${event[1]}\n\n`)
  }
  res.end()
}

/** An OpenAI-style error answer. */
export function errorAnswer (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } }))
}
