import type { AgentModel } from '../../agents/agent.js'
import type { RunningSnapshot } from '../../hub/hub.js'
import { withoutInboundMetadata } from '../../inbound-metadata.js'
import { mainSessionKey } from '../../session-key.js'
import type { SessionRow } from '../../stores/store.js'
import type { TranscriptEntry, TranscriptMessage } from '../../transcript.js'
import type { GatewaySessionInfo, GatewaySessionRow, HistoryMessage, ModelDefaults, SessionKind } from './frames.js'

// Our rows, messages and defaults in OpenClaw's names, so a client written for OpenClaw
// (its Control UI, its SDK) finds what it looks for; our own fields stay as additions.

/** OpenClaw's `kind` of a session, from its key (as OpenClaw classifies a row without channel metadata). */
export function sessionKind (key: string): SessionKind {
  if (key === 'global') return 'global'
  return key.includes(':group:') || key.includes(':channel:') ? 'group' : 'direct'
}

/** A row as the gateway protocol lists it: OpenClaw's `SessionRow`, with our `createdAt`. */
export function sessionRow (row: SessionRow, mainKey: string, running?: RunningSnapshot): GatewaySessionRow {
  return {
    key: row.key,
    kind: sessionKind(row.key),
    agentId: row.agentId,
    sessionId: row.sessionId,
    ...(row.label === undefined ? {} : { label: row.label, displayName: row.label }),
    isMain: row.key === mainSessionKey(row.agentId, mainKey),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    lastActivityAt: row.updatedAt,
    ...(row.preview === undefined ? {} : { lastMessagePreview: row.preview }),
    ...(running === undefined ? {} : { status: 'running', hasActiveRun: true, activeRunIds: [running.runId] })
  }
}

/** The row of a session, or what OpenClaw answers for one that does not exist yet. */
export function sessionInfo (key: string, agentId: string, mainKey: string, row: SessionRow | undefined, running?: RunningSnapshot): GatewaySessionInfo {
  return row === undefined
    ? { key, kind: sessionKind(key), agentId, isMain: key === mainSessionKey(agentId, mainKey), updatedAt: null }
    : sessionRow(row, mainKey, running)
}

/**
 * OpenClaw's `defaults`: the model new turns use. Model selection cannot be saved
 * anywhere but the session, as OpenClaw answers a caller who may not change its config.
 */
export function modelDefaults (model: AgentModel | undefined): ModelDefaults {
  return {
    ...(model === undefined ? {} : { modelProvider: model.provider, model: model.id }),
    modelSelectionTarget: 'session'
  }
}

/**
 * A transcript message as history and `session.message` carry it: OpenClaw's
 * `__openclaw` (its id, its position, and the run it belongs to, by which a client
 * replaces the copy it showed before the server had it), and our `id`. User text that
 * OpenClaw wrote (a row of no run of ours) loses the metadata OpenClaw put in front of it.
 */
export function historyMessage (entry: TranscriptEntry & { message: TranscriptMessage }): HistoryMessage {
  const { id, seq, runId } = entry
  const message = runId === undefined && entry.message.role === 'user' ? withoutInboundMetadata(entry.message) : entry.message
  const role = message.role
  return {
    ...message,
    id,
    __openclaw: {
      id,
      ...(seq === undefined ? {} : { seq }),
      ...(runId === undefined ? {} : { runId }),
      ...(runId !== undefined && role === 'user' ? { idempotencyKey: `${runId}:user` } : {}),
      ...(runId !== undefined && role === 'assistant' ? { idempotencyKey: runId } : {})
    }
  }
}

/** The entries that hold a message, as history messages. */
export function historyMessages (entries: readonly TranscriptEntry[]): HistoryMessage[] {
  return entries.filter((entry): entry is TranscriptEntry & { message: TranscriptMessage } => entry.message !== undefined)
    .map(historyMessage)
}
