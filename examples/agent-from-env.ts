// Which agent the example gateway runs, from the environment:
//   AGENT=echo (default)   the deterministic echo agent; ECHO_DELAY_MS pauses between words
//   AGENT=openai           any OpenAI-compatible server: OPENAI_MODEL (required), OPENAI_BASE_URL
//                          (default OpenAI's; then OPENAI_API_KEY is required), OPENAI_API_KEY,
//                          OPENAI_API (chat | responses)
//   AGENT=openclaw         an existing OpenClaw gateway: OPENCLAW_URL (required), OPENCLAW_TOKEN
import { echoAgent, openAIAgent, openClawAgent, type Agent } from 'fastify-session-gateway'
import { StartError } from './startup.js'

export function agentFromEnv (env: NodeJS.ProcessEnv): { agent: Agent, description: string } {
  const kind = env.AGENT ?? 'echo'
  const required = (name: string, why: string): string => {
    const value = env[name]
    if (value === undefined || value === '') throw new StartError(`AGENT=${kind} needs ${name}: ${why}`)
    return value
  }
  switch (kind) {
    case 'echo': {
      const raw = env.ECHO_DELAY_MS ?? '0'
      const delayMs = Number(raw)
      if (!/^\s*\d+\s*$/.test(raw) || delayMs > 60_000) throw new StartError(`ECHO_DELAY_MS=${JSON.stringify(raw)} is not valid: set it to an integer from 0 to 60000, or unset it for 0`)
      return { agent: echoAgent({ delayMs }), description: 'echo' }
    }
    case 'openai': {
      const model = required('OPENAI_MODEL', 'the model to ask for, such as gpt-4o-mini')
      const baseURL = env.OPENAI_BASE_URL
      const apiKey = baseURL === undefined ? required('OPENAI_API_KEY', 'the key for api.openai.com (or set OPENAI_BASE_URL for another server)') : env.OPENAI_API_KEY
      const api = env.OPENAI_API ?? 'chat'
      if (api !== 'chat' && api !== 'responses') throw new StartError(`OPENAI_API=${JSON.stringify(api)} is not valid: set it to one of chat, responses, or unset it for chat`)
      const agent = openAIAgent({ model, api, ...(baseURL === undefined ? {} : { baseURL }), ...(apiKey === undefined ? {} : { apiKey }) })
      return { agent, description: `openai (${api} API, model ${model}, ${baseURL ?? 'https://api.openai.com/v1'})` }
    }
    case 'openclaw': {
      const url = required('OPENCLAW_URL', "the OpenClaw gateway's URL, such as http://127.0.0.1:18789")
      const token = env.OPENCLAW_TOKEN
      return { agent: openClawAgent({ url, ...(token === undefined ? {} : { token }) }), description: `openclaw (${url})` }
    }
    default:
      throw new StartError(`AGENT=${JSON.stringify(kind)} is not valid: set it to one of echo, openai, openclaw, or unset it for echo`)
  }
}
