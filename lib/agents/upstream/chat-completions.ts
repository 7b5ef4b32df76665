import type { EventSourceMessage } from 'eventsource-parser'
import type { AgentOutput, AgentRequest, FunctionTool, ToolChoice } from '../agent.js'
import type { TranscriptMessage } from '../../transcript.js'
import { describe, endedEarly, eventJson, streamedError, type UpstreamEndpoint } from './event-stream.js'
import { count, dataUrl, hasSource } from './wire-values.js'
import { UpstreamFailedError } from '../../errors.js'

// The Chat Completions API (`POST …/chat/completions`, streamed), which every
// OpenAI-compatible server speaks: the request body from a turn, and the stream's
// chunks back into agent outputs.

/** The request body for one turn: `messages` is the whole conversation the upstream sees. */
export function chatCompletionsBody (request: AgentRequest, model: string, messages: TranscriptMessage[]): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    messages: [
      ...(request.instructions === undefined ? [] : [{ role: 'system', content: request.instructions }]),
      ...messages.map(chatMessage)
    ],
    stream: true,
    // Without it the stream carries no token counts.
    stream_options: { include_usage: true }
  }
  if (request.tools.length > 0) {
    body.tools = request.tools.map(chatTool)
    body.tool_choice = chatToolChoice(request.toolChoice)
  }
  if (request.maxOutputTokens !== undefined) body.max_completion_tokens = request.maxOutputTokens
  return body
}

function chatMessage (message: TranscriptMessage): Record<string, unknown> {
  switch (message.role) {
    case 'user': {
      const parts = message.content.filter(hasSource)
      const [only] = parts
      if (parts.length === 1 && only?.type === 'text') return { role: 'user', content: only.text }
      return {
        role: 'user',
        content: parts.map(part => {
          switch (part.type) {
            case 'text': return { type: 'text', text: part.text }
            case 'image': return { type: 'image_url', image_url: { url: dataUrl(part) } }
            case 'file': return part.data === undefined
              // Chat Completions takes files inline only: a link goes as text.
              ? { type: 'text', text: `[file${part.filename === undefined ? '' : ` ${part.filename}`}: ${part.url as string}]` }
              : { type: 'file', file: { file_data: dataUrl(part), ...(part.filename === undefined ? {} : { filename: part.filename }) } }
          }
        })
      }
    }
    case 'assistant': {
      let text = ''
      const calls: unknown[] = []
      for (const part of message.content) {
        if (part.type === 'text') text += part.text
        if (part.type === 'toolCall') calls.push({ id: part.id, type: 'function', function: { name: part.name, arguments: JSON.stringify(part.arguments) } })
      }
      return calls.length === 0 ? { role: 'assistant', content: text } : { role: 'assistant', content: text === '' ? null : text, tool_calls: calls }
    }
    case 'toolResult':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content.map(part => part.text).join('') }
  }
}

function chatTool (tool: FunctionTool): Record<string, unknown> {
  return {
    type: 'function',
    function: {
      name: tool.name,
      ...(tool.description == null ? {} : { description: tool.description }),
      parameters: tool.parameters ?? { type: 'object', properties: {} },
      ...(tool.strict == null ? {} : { strict: tool.strict })
    }
  }
}

function chatToolChoice (choice: ToolChoice): unknown {
  return typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } }
}

interface PendingCall { id: string, name: string, arguments: string }

/**
 * A Chat Completions stream as agent outputs: content and reasoning deltas as they come
 * (`reasoning_content` is vLLM's, llama.cpp's and DeepSeek's name, `reasoning` OpenRouter's
 * and Ollama's), tool calls assembled from their chunks by `index` and yielded once
 * complete, `finish_reason: "length"` as incomplete, and the final usage chunk.
 */
export async function * chatCompletionsOutputs (endpoint: UpstreamEndpoint, events: AsyncIterable<EventSourceMessage>): AsyncGenerator<AgentOutput> {
  const calls = new Map<number, PendingCall>()
  let finish: string | undefined
  let done = false
  let usage: Record<string, any> | undefined
  for await (const event of events) {
    if (event.data === '[DONE]') {
      done = true
      break
    }
    const chunk = eventJson(endpoint, event)
    if (chunk.error !== undefined || event.event === 'error') throw streamedError(endpoint, chunk.error ?? chunk)
    if (typeof chunk.usage === 'object' && chunk.usage !== null) usage = chunk.usage
    // Only the first choice is the answer (n > 1 is not asked for).
    const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c: { index?: number }) => (c.index ?? 0) === 0) : undefined
    if (choice === undefined) continue
    const delta = choice.delta ?? {}
    const reasoning = delta.reasoning_content ?? delta.reasoning
    if (typeof reasoning === 'string' && reasoning !== '') yield { type: 'reasoning', delta: reasoning }
    if (typeof delta.content === 'string' && delta.content !== '') yield { type: 'text', delta: delta.content }
    if (Array.isArray(delta.tool_calls)) {
      for (const piece of delta.tool_calls as Array<Record<string, any>>) {
        const index = typeof piece.index === 'number' ? piece.index : calls.size
        let call = calls.get(index)
        if (call === undefined) calls.set(index, call = { id: '', name: '', arguments: '' })
        if (typeof piece.id === 'string' && call.id === '') call.id = piece.id
        const name = piece.function?.name
        // Most servers send the name once; some repeat it whole in later chunks.
        if (typeof name === 'string' && name !== call.name) call.name += name
        if (typeof piece.function?.arguments === 'string') call.arguments += piece.function.arguments
      }
    }
    if (typeof choice.finish_reason === 'string') finish = choice.finish_reason
  }
  if (finish === undefined && !done) throw endedEarly(endpoint, 'finish_reason and no [DONE]')
  if (finish === 'content_filter') throw new UpstreamFailedError(`${describe(endpoint)} stopped the answer with finish_reason "content_filter": its content filter refused it`)
  for (const [, call] of [...calls].sort(([a], [b]) => a - b)) {
    yield { type: 'function_call', name: call.name, arguments: call.arguments === '' ? '{}' : call.arguments, ...(call.id === '' ? {} : { callId: call.id }) }
  }
  if (finish === 'length') yield { type: 'incomplete', reason: 'max_output_tokens' }
  if (usage !== undefined) yield chatUsage(usage)
}

function chatUsage (usage: Record<string, any>): AgentOutput {
  const cached = usage.prompt_tokens_details?.cached_tokens
  const reasoning = usage.completion_tokens_details?.reasoning_tokens
  return {
    type: 'usage',
    inputTokens: count(usage.prompt_tokens),
    outputTokens: count(usage.completion_tokens),
    ...(typeof cached === 'number' ? { cachedTokens: cached } : {}),
    ...(typeof reasoning === 'number' ? { reasoningTokens: reasoning } : {})
  }
}
