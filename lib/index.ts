import { sessionGateway } from './plugin.js'

export default sessionGateway
export { sessionGateway, type GatewayRouteConfig } from './plugin.js'
export { requestHints } from './request-hints.js'
export { SessionService, type ListOptions } from './session-service.js'
export type { SessionGatewayOptions, ResponsesOptions, GatewayProtocolOptions } from './options.js'
export type { HealthOptions } from './operations/health.js'
export type { MetricsOptions } from './operations/metrics.js'
export type { ControlUiOptions } from './transports/openclaw/control-ui.js'
export {
  createAuthenticator, requestCredentials, ANONYMOUS_PRINCIPAL, TOKEN_PRINCIPAL,
  type AuthOption, type Credentials, type Principal, type VerifyFunction
} from './auth.js'
export {
  createResolver, type AuthorizeContext, type AuthorizeFunction, type ResolvedSession,
  type Resolver, type ResolverOptions, type SessionAction, type SessionHints, type WhenMissing
} from './resolver.js'
export {
  agentOfKey, canonicalizeSessionKey, freshSessionKey, keyForAgent, mainSessionKey, normalizeAgentId, userSessionKey,
  AGENT_ID_PATTERN, MAX_SESSION_KEY_LENGTH, RESERVED_NAMESPACES, type CanonicalKey
} from './session-key.js'
export * as errors from './errors.js'
export { isGatewayError } from './errors.js'
export { formatCursor, parseCursor, eventCursor, type Cursor, type SessionEvent } from './events.js'
export type * from './events.js'
export {
  SessionHub, type RunUsage, type ChangeListener, type SessionChange, type HubOptions, type OpenResult, type Replay, type RunningSnapshot, type RunResult,
  type RunTicket, type SendRequest, type SessionListener, type SubscribeOptions, type Subscription, type HistoryQuery
} from './hub/hub.js'
export { InProcessSessionLog, type InProcessLogOptions } from './hub/in-process-log.js'
export type { Lane, LaneOptions, LogListener, LogPosition, LogSubscription, RestartNotice, SessionLog } from './hub/session-log.js'
export type { Agent, AgentModel, AgentOutput, AgentRequest, FunctionTool, ToolChoice, UpstreamListQuery, UpstreamSessions } from './agents/agent.js'
export { echoAgent, type EchoAgentOptions } from './agents/echo.js'
export { openAIAgent, type OpenAIAgentOptions } from './agents/openai.js'
export { openClawAgent, type OpenClawAgentOptions } from './agents/openclaw.js'
export type { UpstreamOptions } from './agents/upstream/upstream-options.js'
export { MemoryStore } from './stores/memory.js'
export { FileStore, type FileStoreOptions } from './stores/file.js'
export type { OpenFile } from './stores/file-layer.js'
export { listRows } from './stores/list-rows.js'
export { UpstreamSessionStore, type UpstreamSessionStoreOptions } from './stores/upstream-sessions.js'
export { previewOf, PREVIEW_LENGTH, RECORD_ID_PATTERN, type ListPage, type ListQuery, type ReadPage, type ReadQuery, type RecordOptions, type RowPatch, type SessionRow, type SessionStore, type StoreContext } from './stores/store.js'
export type * from './transcript.js'
export { entryId, isMessageEntry, messageText } from './transcript.js'
export { redactUrl, serializeRequest, logSerializers } from './logging.js'
// The wire of each transport, for clients and tests.
export type * from './transports/openclaw/frames.js'
export type * from './transports/responses/frames.js'
