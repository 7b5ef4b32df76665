import { Type } from '@sinclair/typebox'
import type { Agent, AgentOutput, AgentRequest } from './agent.js'
import { AGENT_ID_PATTERN, keyForAgent } from '../session-key.js'
import { openClawSessions } from './openclaw-sessions.js'
import { postEventStream, type UpstreamEndpoint } from './upstream/event-stream.js'
import { inputItems, responsesBody } from './upstream/responses-api.js'
import { responsesOutputs } from './upstream/responses-api.js'
import { withRetries } from './upstream/retries.js'
import { HttpUrl, optionsChecker, UPSTREAM_DEFAULTS, upstreamProperties, type UpstreamOptions } from './upstream/upstream-options.js'

export interface OpenClawAgentOptions extends UpstreamOptions {
  /** The OpenClaw gateway's base URL, e.g. `http://127.0.0.1:18789` (its HTTP `/v1/responses` must be enabled). */
  url: string
  /** The gateway's token (or password), sent as `Authorization: Bearer …`; never logged, never in an error. */
  token?: string
  /** Our agent id → OpenClaw's, where they differ (default: the same id). */
  agents?: Record<string, string>
  /**
   * List the sessions OpenClaw keeps (also those made before this gateway stood in front
   * of it) beside ours, and import one the first time it is opened or continued, read over
   * OpenClaw's gateway protocol. Default true; OpenClaw allows it on its own machine.
   */
  sessions?: boolean
  /** Most messages of one OpenClaw session imported (the newest). Default 10000. */
  maxImportMessages?: number
}

const check = optionsChecker('openClawAgent', Type.Object({
  url: HttpUrl('the OpenClaw gateway\'s http(s) URL, such as "http://127.0.0.1:18789" (required)'),
  token: Type.Optional(Type.String({ expected: 'a string' })),
  agents: Type.Optional(Type.Record(Type.String(), Type.String({ pattern: AGENT_ID_PATTERN.source }), { expected: `an object mapping our agent ids to OpenClaw agent ids matching ${AGENT_ID_PATTERN.source}` })),
  sessions: Type.Optional(Type.Boolean({ expected: 'true or false' })),
  maxImportMessages: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, expected: 'an integer from 1 to 1000000' })),
  ...upstreamProperties
}, { additionalProperties: false }))

/**
 * An agent that is an existing OpenClaw gateway. Each turn goes to OpenClaw's
 * `/v1/responses`, streamed, under the same canonical session key
 * (`x-openclaw-session-key`), so OpenClaw's own session, tools and memory continue:
 * only the turn's new input is sent, since OpenClaw keeps the conversation itself.
 */
export function openClawAgent (options: OpenClawAgentOptions): Agent {
  check(options)
  const endpoint: UpstreamEndpoint = {
    url: `${options.url.replace(/\/+$/, '')}/v1/responses`,
    headers: { ...options.headers, ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }) },
    timeoutMs: options.timeoutMs ?? UPSTREAM_DEFAULTS.timeoutMs,
    maxEventChars: options.maxEventChars ?? UPSTREAM_DEFAULTS.maxEventChars,
    hints: {
      auth: 'check token (the OpenClaw gateway\'s token or password)',
      notFound: 'check url, and that OpenClaw\'s HTTP /v1/responses endpoint is enabled (gateway.http.endpoints.responses.enabled)',
      refused: 'OpenClaw refused the turn; check that it has this agent (the agents option maps our ids to its own)',
      unreachable: 'check url and that the OpenClaw gateway is running'
    },
    secrets: options.token === undefined ? [] : [options.token],
    fetch: options.fetch ?? globalThis.fetch
  }
  const agents = options.agents ?? {}
  // OpenClaw records a turn as soon as it has it: only a request it never acted on (refused,
  // unreachable) is sent again, or its transcript would hold the user's message twice.
  const retries = { maxRetries: options.maxRetries ?? UPSTREAM_DEFAULTS.maxRetries, resendDelivered: false }

  return {
    // What it asks OpenClaw for: OpenClaw's own agent, whatever model that agent runs.
    model: { id: 'openclaw', provider: new URL(options.url).host },
    ...(options.sessions === false
      ? {}
      : {
          sessions: openClawSessions({
            target: { url: options.url, ...(options.token === undefined ? {} : { token: options.token }), headers: { ...options.headers }, timeoutMs: endpoint.timeoutMs, maxFrameBytes: endpoint.maxEventChars },
            agents,
            maxImportMessages: options.maxImportMessages ?? 10_000
          })
        }),
    async * respond (request: AgentRequest): AsyncIterable<AgentOutput> {
      const agentId = agents[request.agentId] ?? request.agentId
      // The same key, under OpenClaw's id for the agent.
      const sessionKey = agentId === request.agentId ? request.sessionKey : keyForAgent(request.sessionKey, agentId)
      const body = responsesBody(request, `openclaw/${agentId}`, [])
      body.input = request.input.flatMap(inputItems)
      const target: UpstreamEndpoint = {
        ...endpoint,
        headers: { ...endpoint.headers, 'x-openclaw-session-key': sessionKey, 'x-openclaw-agent-id': agentId }
      }
      yield * withRetries(retries, request.signal, () => responsesOutputs(target, postEventStream(target, body, request.signal)))
    }
  }
}
