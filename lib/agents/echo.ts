import { setTimeout as sleep } from 'node:timers/promises'
import { messageText } from '../transcript.js'
import type { Agent, AgentOutput, AgentRequest, FunctionTool } from './agent.js'

export interface EchoAgentOptions {
  /** Pause between streamed words, in milliseconds. */
  delayMs?: number
}

/**
 * A deterministic agent for demos and tests.
 * - It streams the text of the turn's last user message back, word by word.
 * - When the turn offers function tools and `toolChoice` is not `none`, it calls the
 *   chosen tool (or the first one), with arguments filled from the tool's parameter schema.
 * - When the turn carries tool results, it answers with their text instead, so a
 *   tool-call round trip ends in a plain answer.
 * - `maxOutputTokens` counts words; a cut answer ends `incomplete`.
 */
export function echoAgent (options: EchoAgentOptions = {}): Agent {
  const delayMs = options.delayMs ?? 0
  return {
    // It is its own model: what it answers is the echo, whoever asks.
    model: { id: 'echo', provider: 'fastify-session-gateway' },
    async * respond (request: AgentRequest): AsyncIterable<AgentOutput> {
      const toolResults = request.input.filter(message => message.role === 'toolResult')
      const lastUser = request.input.findLast(message => message.role === 'user')
      const text = toolResults.length > 0
        ? toolResults.map(result => `${result.toolName}: ${messageText(result)}`).join('\n')
        : lastUser === undefined ? '' : messageText(lastUser)

      const tool = toolResults.length === 0 ? chooseTool(request) : undefined
      if (tool !== undefined) {
        yield { type: 'function_call', name: tool.name, arguments: sampleArguments(tool, text) }
        yield { type: 'usage', inputTokens: countWords(text), outputTokens: 1 }
        return
      }

      const words = text.match(/\s*\S+/g) ?? []
      const limit = request.maxOutputTokens ?? Number.POSITIVE_INFINITY
      let sent = 0
      for (const word of words) {
        if (sent === limit) {
          yield { type: 'incomplete', reason: 'max_output_tokens' }
          break
        }
        if (delayMs > 0 && sent > 0) await sleep(delayMs, undefined, { signal: request.signal })
        yield { type: 'text', delta: word }
        sent++
      }
      yield { type: 'usage', inputTokens: words.length, outputTokens: sent }
    }
  }
}

function chooseTool (request: AgentRequest): FunctionTool | undefined {
  const choice = request.toolChoice
  if (choice === 'none' || request.tools.length === 0) return undefined
  if (typeof choice === 'object') return request.tools.find(tool => tool.name === choice.name)
  return request.tools[0]
}

function countWords (text: string): number {
  return text.match(/\S+/g)?.length ?? 0
}

/** Arguments that satisfy the tool's schema, built the same way every time. */
export function sampleArguments (tool: FunctionTool, text: string): Record<string, unknown> {
  const value = sampleValue(tool.parameters ?? { type: 'object' }, text)
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : {}
}

function sampleValue (schema: unknown, text: string): unknown {
  if (typeof schema !== 'object' || schema === null) return null
  const s = schema as Record<string, unknown>
  if ('const' in s) return s.const
  if ('default' in s) return s.default
  if (Array.isArray(s.enum)) return s.enum[0]
  const type = Array.isArray(s.type) ? s.type[0] : s.type
  switch (type) {
    case 'string': return text
    case 'integer':
    case 'number': return typeof s.minimum === 'number' ? s.minimum : 0
    case 'boolean': return false
    case 'array': return []
    case 'null': return null
    case 'object':
    default: {
      const properties = (s.properties ?? {}) as Record<string, unknown>
      const out: Record<string, unknown> = {}
      for (const [name, property] of Object.entries(properties)) out[name] = sampleValue(property, text)
      return out
    }
  }
}
