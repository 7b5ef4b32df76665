import type { FunctionTool, ToolChoice } from '../../agents/agent.js'
import type { AssistantMessage, TextPart, ToolCallPart, TranscriptMessage, UserMessage } from '../../transcript.js'
import { decodeCompaction } from './compaction.js'
import { invalidParam } from './errors.js'
import type { AssistantPart, CreateBody, FunctionToolParam, InputItem, InputPart, MessageItem, ToolChoiceParam } from './request.js'

/** What a request's `input` becomes: transcript rows, plus text for the agent's instructions. */
export interface TranslatedInput {
  messages: TranscriptMessage[]
  /** `system` and `developer` messages and compacted history, in order: context, not transcript. */
  instructions: string[]
}

/**
 * Input items as transcript rows, in OpenClaw's message shapes. `toolNameOf` finds the
 * function a `call_id` belongs to in the session's history (calls in this input are
 * found first); an output whose call is nowhere is refused.
 */
export function translateInput (input: CreateBody['input'], toolNameOf: (callId: string) => string | undefined): TranslatedInput {
  const now = Date.now()
  if (typeof input === 'string') return { messages: [{ role: 'user', content: [{ type: 'text', text: input }], timestamp: now }], instructions: [] }
  const messages: TranscriptMessage[] = []
  const instructions: string[] = []
  const calls = new Map<string, string>()
  for (const [i, item] of (input ?? []).entries()) {
    const path = `input[${i}]`
    switch (itemType(item)) {
      case 'message': {
        const message = item as MessageItem
        if (message.role === 'system' || message.role === 'developer') instructions.push(textOf(message.content))
        else if (message.role === 'user') messages.push({ role: 'user', content: userParts(message.content), timestamp: now })
        else messages.push({ role: 'assistant', content: assistantText(message.content), stopReason: 'stop', timestamp: now })
        break
      }
      case 'function_call': {
        const call = item as Extract<InputItem, { type: 'function_call' }>
        const part: ToolCallPart = { type: 'toolCall', id: call.call_id, name: call.name, arguments: parseArguments(call.arguments, `${path}.arguments`) }
        calls.set(call.call_id, call.name)
        // Calls that follow an assistant message (or each other) belong to the same turn.
        const last = messages.at(-1)
        if (last?.role === 'assistant') {
          last.content.push(part)
          last.stopReason = 'toolUse'
        } else {
          messages.push({ role: 'assistant', content: [part], stopReason: 'toolUse', timestamp: now } satisfies AssistantMessage)
        }
        break
      }
      case 'function_call_output': {
        const output = item as Extract<InputItem, { type: 'function_call_output' }>
        const toolName = calls.get(output.call_id) ?? toolNameOf(output.call_id)
        if (toolName === undefined) {
          throw invalidParam(`${path}.call_id`, `No tool call found for function call output with call_id ${output.call_id.slice(0, 64)}.`)
        }
        messages.push({
          role: 'toolResult',
          toolCallId: output.call_id,
          toolName,
          content: [{ type: 'text', text: typeof output.output === 'string' ? output.output : textOf(output.output) }],
          isError: false,
          timestamp: now
        })
        break
      }
      case 'compaction':
        instructions.push(decodeCompaction((item as Extract<InputItem, { type: 'compaction' }>).encrypted_content, `${path}.encrypted_content`))
        break
      default:
        // `reasoning` is the model's own scratch work and `item_reference` points at an
        // item the session already holds: both are accepted and add nothing new.
        break
    }
  }
  return { messages, instructions }
}

/** Every `function_call` in transcript messages, by call id. */
export function toolCallNames (messages: readonly TranscriptMessage[]): Map<string, string> {
  const names = new Map<string, string>()
  for (const message of messages) {
    if (message.role !== 'assistant') continue
    for (const part of message.content) if (part.type === 'toolCall') names.set(part.id, part.name)
  }
  return names
}

/** The tools the agent is offered and how it must choose, with `allowed_tools` enforced. */
export function toolsFor (tools: readonly FunctionToolParam[], choice: ToolChoiceParam | null | undefined): { tools: FunctionTool[], toolChoice: ToolChoice } {
  const offered: FunctionTool[] = tools.map(tool => ({
    type: 'function',
    name: tool.name,
    ...(tool.description == null ? {} : { description: tool.description }),
    ...(tool.parameters == null ? {} : { parameters: tool.parameters as Record<string, unknown> }),
    ...(tool.strict == null ? {} : { strict: tool.strict })
  }))
  const named = (name: string, param: string): void => {
    if (!offered.some(tool => tool.name === name)) throw invalidParam(param, `Tool choice '${name}' not found in 'tools' parameter.`)
  }
  if (choice === null || choice === undefined) return { tools: offered, toolChoice: 'auto' }
  if (typeof choice === 'string') {
    if (choice === 'required' && offered.length === 0) throw invalidParam('tool_choice', "tool_choice 'required' needs at least one tool in 'tools'.")
    return { tools: offered, toolChoice: choice }
  }
  if (choice.type === 'function') {
    named(choice.name, 'tool_choice.name')
    return { tools: offered, toolChoice: { type: 'function', name: choice.name } }
  }
  choice.tools.forEach((tool, i) => named(tool.name, `tool_choice.tools[${i}].name`))
  const allowed = new Set(choice.tools.map(tool => tool.name))
  return { tools: offered.filter(tool => allowed.has(tool.name)), toolChoice: choice.mode ?? 'auto' }
}

function itemType (item: InputItem): string {
  const type = (item as { type?: string | null }).type
  if (type !== undefined && type !== null) return type
  return 'role' in item ? 'message' : 'item_reference'
}

function userParts (content: string | unknown[]): UserMessage['content'] {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  return (content as InputPart[]).map(part => {
    switch (part.type) {
      case 'input_text': return { type: 'text', text: part.text }
      case 'input_image': return { type: 'image', ...imageSource(part.image_url) }
      case 'input_file': return {
        type: 'file',
        ...(part.file_data == null ? {} : { data: part.file_data }),
        ...(part.file_url == null ? {} : { url: part.file_url }),
        ...(part.filename == null ? {} : { filename: part.filename })
      }
    }
  })
}

/** A `data:` URL becomes base64 data with its type; anything else stays a URL. */
function imageSource (url: string | null | undefined): { data?: string, url?: string, mimeType?: string } {
  if (url == null) return {}
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  return data === null ? { url } : { mimeType: data[1] as string, data: data[2] as string }
}

function assistantText (content: string | unknown[]): TextPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  return (content as AssistantPart[]).map(part => ({ type: 'text', text: part.type === 'output_text' ? part.text : part.refusal }))
}

function textOf (content: string | unknown[]): string {
  if (typeof content === 'string') return content
  return (content as Array<{ type: string, text?: string }>).filter(part => part.type === 'input_text').map(part => part.text).join('\n')
}

function parseArguments (json: string, param: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    throw invalidParam(param, 'Function call arguments must be a JSON object, as a string.')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidParam(param, 'Function call arguments must be a JSON object, as a string.')
  return value as Record<string, unknown>
}
