import { Type } from '@sinclair/typebox'
import type { Agent, AgentOutput, AgentRequest } from './agent.js'
import { chatCompletionsBody, chatCompletionsOutputs } from './upstream/chat-completions.js'
import { conversation } from './upstream/conversation.js'
import { postEventStream, type UpstreamEndpoint } from './upstream/event-stream.js'
import { responsesBody, responsesOutputs } from './upstream/responses-api.js'
import { withRetries } from './upstream/retries.js'
import { HttpUrl, optionsChecker, UPSTREAM_DEFAULTS, upstreamProperties, type UpstreamOptions } from './upstream/upstream-options.js'

export interface OpenAIAgentOptions extends UpstreamOptions {
  /** The API's base URL, up to and including its version. Default `https://api.openai.com/v1`. */
  baseURL?: string
  /** Sent as `Authorization: Bearer <apiKey>`; never logged, never in an error. */
  apiKey?: string
  /** The model to ask for. A client's own model name (not an agent selector such as `openclaw/main`) overrides it. */
  model: string
  /** `chat` (Chat Completions, which every compatible server has; default) or `responses` (the Responses API). */
  api?: 'chat' | 'responses'
  /** Most earlier messages sent with each turn (newest kept). Default 200. */
  maxHistoryMessages?: number
  /** Most characters of earlier messages sent with each turn (newest kept). Default 200000. */
  maxHistoryChars?: number
  /** Extra body fields for every request (`temperature`, a provider's own parameters). */
  params?: Record<string, unknown>
  /** Shapes the request body last (after `params`); return the body to send. */
  transformBody?: (body: Record<string, unknown>, request: AgentRequest) => Record<string, unknown> | Promise<Record<string, unknown>>
}

const check = optionsChecker('openAIAgent', Type.Object({
  baseURL: Type.Optional(HttpUrl('an http(s) URL such as "https://api.openai.com/v1"')),
  apiKey: Type.Optional(Type.String({ expected: 'a string' })),
  model: Type.String({ minLength: 1, expected: 'a model name such as "gpt-4o-mini" (required)' }),
  api: Type.Optional(Type.Union([Type.Literal('chat'), Type.Literal('responses')], { expected: '"chat" or "responses"' })),
  maxHistoryMessages: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, expected: 'an integer from 0 to 100000' })),
  maxHistoryChars: Type.Optional(Type.Integer({ minimum: 0, expected: 'a non-negative integer (characters)' })),
  params: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { expected: 'an object of extra body fields' })),
  transformBody: Type.Optional(Type.Function([], Type.Unknown(), { expected: 'a function (body, request) => body' })),
  ...upstreamProperties
}, { additionalProperties: false }))

/**
 * An agent backed by any OpenAI-compatible server: OpenAI, vLLM, llama.cpp's server,
 * Ollama, LiteLLM, OpenRouter, OpenClaw's own `/v1/chat/completions` or `/v1/responses`.
 * The upstream is stateless: each turn sends the session's recent history (bounded, see
 * `maxHistoryMessages` and `maxHistoryChars`) and the turn's input, and streams back.
 */
export function openAIAgent (options: OpenAIAgentOptions): Agent {
  check(options)
  const api = options.api ?? 'chat'
  const baseURL = (options.baseURL ?? 'https://api.openai.com/v1').replace(/\/+$/, '')
  const endpoint: UpstreamEndpoint = {
    url: `${baseURL}/${api === 'chat' ? 'chat/completions' : 'responses'}`,
    headers: { ...options.headers, ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }) },
    timeoutMs: options.timeoutMs ?? UPSTREAM_DEFAULTS.timeoutMs,
    maxEventChars: options.maxEventChars ?? UPSTREAM_DEFAULTS.maxEventChars,
    hints: {
      auth: 'check apiKey (the key this server expects)',
      notFound: 'check baseURL (it usually ends in /v1) and that the server knows the model',
      refused: 'the upstream refused the request; check the model and options (params, transformBody) it was sent',
      unreachable: 'check baseURL and that the server is running'
    },
    secrets: options.apiKey === undefined ? [] : [options.apiKey],
    fetch: options.fetch ?? globalThis.fetch
  }
  const bounds = { maxMessages: options.maxHistoryMessages ?? 200, maxChars: options.maxHistoryChars ?? 200_000 }
  // The upstream keeps nothing between requests, so sending one again is harmless.
  const retries = { maxRetries: options.maxRetries ?? UPSTREAM_DEFAULTS.maxRetries, resendDelivered: true }

  return {
    model: { id: options.model, provider: new URL(baseURL).host },
    async * respond (request: AgentRequest): AsyncIterable<AgentOutput> {
      const messages = await conversation(request, bounds)
      const model = request.model ?? options.model
      let body = api === 'chat' ? chatCompletionsBody(request, model, messages) : responsesBody(request, model, messages)
      // The Responses API would otherwise keep a copy of every turn upstream; the history travels with each request.
      if (api === 'responses') body.store = false
      body = { ...body, ...options.params }
      if (options.transformBody !== undefined) body = await options.transformBody(body, request)
      const outputs = api === 'chat' ? chatCompletionsOutputs : responsesOutputs
      yield * withRetries(retries, request.signal, () => outputs(endpoint, postEventStream(endpoint, body, request.signal)))
    }
  }
}
