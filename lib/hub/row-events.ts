import type { RunFinishedEvent, SessionEvent } from '../events.js'
import type { AssistantMessage, RunState, TranscriptEntry } from '../transcript.js'

// How committed transcript rows take their places in a session's log. This file alone
// knows the rule: a row is announced by a `message` event at its own `seq`, and the row
// that ends a run (the answer) is followed by that run's `run.finished` one position
// later. The turn runner announces answers with it, the registry finds a session's head
// with it, and catch-up rebuilds missed events from the transcript with it.

/** The events that announce a committed row, in order. */
export function rowEvents (sessionKey: string, epoch: string, entry: TranscriptEntry): SessionEvent[] {
  // Rows OpenClaw wrote itself have no `seq` or `runId`: they sit before any cursor.
  const seq = entry.seq ?? 0
  const events: SessionEvent[] = [{ type: 'message', sessionKey, epoch, seq, at: Date.parse(entry.timestamp), runId: entry.runId ?? '', entry }]
  if (endsRun(entry)) events.push(finishedEvent(sessionKey, epoch, entry))
  return events
}

/** A row that ended a run: only the gateway writes these, always with a place and a run. */
type AnswerEntry = TranscriptEntry & { seq: number, runId: string, runState: RunState, message: AssistantMessage }

/**
 * The `run.finished` that follows an answer's row. Also used alone, at `entry.seq + 1`,
 * for an answer that could not be committed (its row never took a place).
 */
export function finishedEvent (sessionKey: string, epoch: string, entry: AnswerEntry): RunFinishedEvent {
  return {
    type: 'run.finished',
    sessionKey,
    epoch,
    seq: entry.seq + 1,
    at: Date.parse(entry.timestamp),
    runId: entry.runId,
    state: entry.runState,
    entry,
    ...(entry.runError === undefined ? {} : { error: entry.runError })
  }
}

/** The last position a row's events take: its own, or the next for an answer. */
export function lastPosition (entry: TranscriptEntry & { seq: number }): number {
  return entry.seq + (endsRun(entry) ? 1 : 0)
}

function endsRun (entry: TranscriptEntry): entry is AnswerEntry {
  return entry.runState !== undefined && entry.message?.role === 'assistant'
}
