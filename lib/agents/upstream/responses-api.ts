import type { EventSourceMessage } from 'eventsource-parser'
import type { AgentOutput, AgentRequest, FunctionTool, ToolChoice } from '../agent.js'
import type { TranscriptMessage } from '../../transcript.js'
import { UpstreamFailedError } from '../../errors.js'
import { count, dataUrl, hasSource } from './wire-values.js'
import { describe, endedEarly, eventJson, streamedError, type UpstreamEndpoint } from './event-stream.js'

// The Responses API (`POST …/responses`, streamed), OpenAI's and OpenResponses' (which
// OpenClaw serves): the request body from a turn, and the stream's events back into
// agent outputs.

/** The request body for one turn; `messages` are the input items the upstream is sent. */
export function responsesBody (request: AgentRequest, model: string, messages: TranscriptMessage[]): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    input: messages.flatMap(inputItems),
    stream: true
  }
  if (request.instructions !== undefined) body.instructions = request.instructions
  if (request.tools.length > 0) {
    body.tools = request.tools.map(responsesTool)
    body.tool_choice = responsesToolChoice(request.toolChoice)
  }
  if (request.maxOutputTokens !== undefined) body.max_output_tokens = request.maxOutputTokens
  return body
}

/** A transcript message as Responses input items (an assistant turn may be a message and calls). */
export function inputItems (message: TranscriptMessage): Array<Record<string, unknown>> {
  switch (message.role) {
    case 'user':
      return [{
        type: 'message',
        role: 'user',
        content: message.content.filter(hasSource).map(part => {
          switch (part.type) {
            case 'text': return { type: 'input_text', text: part.text }
            case 'image': return { type: 'input_image', image_url: dataUrl(part) }
            case 'file': return part.data === undefined
              ? { type: 'input_file', file_url: part.url, ...(part.filename === undefined ? {} : { filename: part.filename }) }
              : { type: 'input_file', file_data: dataUrl(part), filename: part.filename ?? 'attachment' }
          }
        })
      }]
    case 'assistant': {
      const items: Array<Record<string, unknown>> = []
      const text = message.content.map(part => part.type === 'text' ? part.text : '').join('')
      if (text !== '') items.push({ type: 'message', role: 'assistant', content: text })
      for (const part of message.content) {
        if (part.type === 'toolCall') items.push({ type: 'function_call', call_id: part.id, name: part.name, arguments: JSON.stringify(part.arguments) })
      }
      return items
    }
    case 'toolResult':
      return [{ type: 'function_call_output', call_id: message.toolCallId, output: message.content.map(part => part.text).join('') }]
  }
}

function responsesTool (tool: FunctionTool): Record<string, unknown> {
  return {
    type: 'function',
    name: tool.name,
    ...(tool.description == null ? {} : { description: tool.description }),
    parameters: tool.parameters ?? { type: 'object', properties: {} },
    // The Responses API takes a missing `strict` as true, which refuses most schemas.
    strict: tool.strict ?? false
  }
}

function responsesToolChoice (choice: ToolChoice): unknown {
  return typeof choice === 'string' ? choice : { type: 'function', name: choice.name }
}

/**
 * A Responses stream as agent outputs: text and reasoning deltas as they come (reasoning
 * text, or its summary where that is all a server shows), function calls once their item
 * is done (`response.output_item.done` carries the assembled arguments), and the terminal
 * event: `response.completed` (usage), `response.incomplete` (max_output_tokens) or
 * `response.failed`.
 */
export async function * responsesOutputs (endpoint: UpstreamEndpoint, events: AsyncIterable<EventSourceMessage>): AsyncGenerator<AgentOutput> {
  for await (const event of events) {
    if (event.data === '[DONE]') break
    const data = eventJson(endpoint, event)
    switch (data.type) {
      case 'response.output_text.delta':
        if (typeof data.delta === 'string' && data.delta !== '') yield { type: 'text', delta: data.delta }
        break
      case 'response.reasoning_text.delta':
      case 'response.reasoning.delta':
      case 'response.reasoning_summary_text.delta':
        if (typeof data.delta === 'string' && data.delta !== '') yield { type: 'reasoning', delta: data.delta }
        break
      case 'response.output_item.done':
        // The finished item holds the whole call, its arguments assembled (OpenAI, OpenResponses and OpenClaw alike).
        if (data.item?.type === 'function_call') yield functionCall(data.item)
        break
      case 'response.completed':
        yield * responsesUsage(data.response)
        return
      case 'response.incomplete': {
        const reason = data.response?.incomplete_details?.reason
        if (reason !== 'max_output_tokens') {
          throw new UpstreamFailedError(`${describe(endpoint)} left the answer incomplete (${String(reason)})`)
        }
        yield { type: 'incomplete', reason: 'max_output_tokens' }
        yield * responsesUsage(data.response)
        return
      }
      case 'response.failed':
        throw streamedError(endpoint, data.response?.error ?? 'the response failed')
      case 'error':
        throw streamedError(endpoint, data.error ?? data)
    }
  }
  throw endedEarly(endpoint, 'response.completed')
}

function functionCall (item: Record<string, unknown>): AgentOutput {
  return {
    type: 'function_call',
    name: String(item.name),
    arguments: typeof item.arguments === 'string' && item.arguments !== '' ? item.arguments : '{}',
    ...(typeof item.call_id === 'string' ? { callId: item.call_id } : {})
  }
}

function * responsesUsage (response: Record<string, any> | undefined): Generator<AgentOutput> {
  const usage = response?.usage
  if (typeof usage !== 'object' || usage === null) return
  const cached = usage.input_tokens_details?.cached_tokens
  const reasoning = usage.output_tokens_details?.reasoning_tokens
  yield {
    type: 'usage',
    inputTokens: count(usage.input_tokens),
    outputTokens: count(usage.output_tokens),
    ...(typeof cached === 'number' ? { cachedTokens: cached } : {}),
    ...(typeof reasoning === 'number' ? { reasoningTokens: reasoning } : {})
  }
}
