import { SessionNotFoundError } from '../../errors.js'
import type { SessionEvent } from '../../events.js'
import { finishedEvent } from '../../hub/row-events.js'
import type { SessionService } from '../../session-service.js'
import type { AssistantMessage, TranscriptEntry } from '../../transcript.js'
import { ResponseStream } from './response-stream.js'

// A finished response is not stored twice: its record says which run of which session it
// was, and its stream is rebuilt from that session. While the session's log still holds
// the run's events, the rebuilt stream is the one first sent, event for event (the stream
// is a pure function of them). Once they have left the log, it is rebuilt from the run's
// answer in the durable transcript: the same response object, its text in one delta.

/** What identifies a finished response (see `ResponseRecord`). */
export interface RunOfResponse {
  id: string
  sessionKey: string
  /** The transcript generation the run wrote to (a reset starts another). */
  sessionId: string
  /** The log's position just before the run's first event. */
  cursor: string
  /** The response object's request fields, as `requestFields` made them. */
  fields: Record<string, unknown>
  createdAt: number
}

/** How many history pages are searched for a run's answer before it counts as gone. */
const MAX_PAGES = 20

/** The response's stream, rebuilt; undefined when its session no longer has the run. */
export async function rebuildStream (sessions: SessionService, run: RunOfResponse): Promise<ResponseStream | undefined> {
  const logged = await eventsFromLog(sessions, run)
  const events = logged ?? await eventsFromTranscript(sessions, run)
  if (events === undefined) return undefined
  const stream = new ResponseStream(run.id, run.fields, run.createdAt)
  stream.exact = logged !== undefined
  for (const event of events) stream.onHubEvent(event)
  return stream
}

/** The run's events as the log holds them (the run is over: its record is only written then). */
async function eventsFromLog (sessions: SessionService, run: RunOfResponse): Promise<SessionEvent[] | undefined> {
  const subscription = await sessions.subscribe(run.sessionKey, { since: run.cursor, limit: 1 }, () => {})
  subscription.unsubscribe()
  const { replay } = subscription
  return replay.kind === 'replay' ? replay.events.filter(event => 'runId' in event && event.runId === run.id) : undefined
}

/** The run's answer row, as the events that would have built it. */
async function eventsFromTranscript (sessions: SessionService, run: RunOfResponse): Promise<SessionEvent[] | undefined> {
  const answer = await findAnswer(sessions, run)
  if (answer === undefined) return undefined
  const base = { sessionKey: run.sessionKey, epoch: '', seq: 0, at: Date.parse(answer.timestamp), runId: run.id }
  const events: SessionEvent[] = []
  for (const part of (answer.message as AssistantMessage).content) {
    if (part.type === 'thinking') events.push({ ...base, type: 'run.reasoning', delta: part.thinking, text: part.thinking })
    if (part.type === 'text') events.push({ ...base, type: 'run.delta', delta: part.text, text: part.text })
    if (part.type === 'toolCall') events.push({ ...base, type: 'run.tool_call', call: part })
  }
  events.push(finishedEvent(run.sessionKey, '', answer as Parameters<typeof finishedEvent>[2]))
  return events
}

async function findAnswer (sessions: SessionService, run: RunOfResponse): Promise<TranscriptEntry | undefined> {
  let before: string | undefined
  for (let pages = 0; pages < MAX_PAGES; pages++) {
    let page
    try {
      page = await sessions.history(run.sessionKey, { limit: 100, sessionId: run.sessionId, ...(before === undefined ? {} : { before }) })
    } catch (err) {
      if (err instanceof SessionNotFoundError) return undefined // the session, or that generation of it, is gone
      throw err
    }
    const answer = page.entries.find(entry => entry.runId === run.id && entry.runState !== undefined)
    if (answer !== undefined || page.before === undefined) return answer
    before = page.before
  }
  return undefined
}
