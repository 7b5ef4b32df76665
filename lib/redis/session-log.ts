import { randomUUID } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { InvalidOptionError, RunAbortedError, sessionBusy, SessionLogUnavailableError } from '../errors.js'
import { formatCursor, type SessionEvent } from '../events.js'
import type { Lane, LaneOptions, LogListener, LogPosition, LogSubscription, RestartNotice, SessionLog } from '../hub/session-log.js'
import { checkConnection, connect, DEFAULT_KEY_PREFIX, type RedisConnection, type RedisConnectionOptions } from './connection.js'
import { LogChannels } from './log-channels.js'
import { DeltaWriter, rebuildTexts, TEXT_CHECKPOINT, type StoredEvent } from './stored-deltas.js'
import { LaneAbort } from '../hub/lane-abort.js'
import { ABORT, ACQUIRE, APPEND, CLAIM, RELEASE, RENEW, RESTART, SEED } from './log-scripts.js'

// The session log on Redis, so any number of gateway processes behave as one: one stream
// per session whose entry ids are the cursor's seq, one script per append (epoch, order
// and lane checked, XADD with MAXLEN, PUBLISH, atomically), pub/sub fan-out with one
// subscriber connection per process, gap fill by XRANGE, fenced lane leases kept alive by
// appends and a timer, idempotency claims with SET NX, and abort from any node. The design
// and its measured figures: SCALE-OUT.md.

export interface RedisSessionLogOptions extends RedisConnectionOptions {
  /** Recent events kept per session (the stream's `MAXLEN ~`). Default 512. */
  replay?: number
  /** How long an idle session's log stays in Redis, in ms (refreshed by every append). Default 86400000 (a day). */
  idleTtlMs?: number
  /** How long a turn's lane lives without being renewed, in ms: a node that dies frees it this late. Default 10000. */
  laneTtlMs?: number
  /** How long an idempotency claim holds, in ms. Default 300000. */
  claimTtlMs?: number
  /** How often watched sessions are checked against Redis (a silently dead subscription, a lane that waits), in ms. Default 5000. */
  checkIntervalMs?: number
  /**
   * Redis Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH), so a session's messages stay on its
   * slot's node. Default false. On an ioredis `Cluster` this needs one made with
   * `{ shardedSubscribers: true }` (without it ioredis delivers no sharded message).
   */
  sharded?: boolean
}

class HeldLane extends LaneAbort implements Lane {
  constructor (readonly runId: string, readonly value: string, readonly position: LogPosition | undefined) {
    super()
  }
}

interface Waiter {
  runId: string
  resolve: (lane: Lane) => void
  reject: (err: Error) => void
}

/** A listener and the last position it was given. */
interface Listening {
  listener: LogListener
  epoch: string
  seq: number
  /** Its subscription has read its position: before that, it is told nothing. */
  ready: boolean
}

/** What this process has to do with one session: its listeners, its waiting turns, its lanes. */
class Watch {
  readonly listeners = new Set<Listening>()
  readonly waiters: Waiter[] = []
  readonly lanes = new Set<HeldLane>()
  /** Messages are handled one at a time, in order (a gap fill awaits Redis). */
  chain: Promise<void> = Promise.resolve()

  constructor (readonly key: string, readonly channel: string) {}

  get idle (): boolean {
    return this.listeners.size === 0 && this.waiters.length === 0 && this.lanes.size === 0
  }
}

const REFUSALS: Record<string, string> = {
  LOST: 'Redis has no position for the session (it lost its data)',
  EPOCH: 'the session log is in another epoch',
  GAP: 'the events do not follow the log',
  FENCED: "the run's lane is no longer its own"
}

export class RedisSessionLog implements SessionLog {
  readonly #options: Required<Omit<RedisSessionLogOptions, keyof RedisConnectionOptions>>
  readonly #connection: Promise<RedisConnection>
  readonly #watches = new Map<string, Watch>()
  /** How this process stores the deltas it appends (most without their text). */
  readonly #deltas = new DeltaWriter()
  /** The same watches, by their channel: how a message finds its session. */
  readonly #byChannel = new Map<string, Watch>()
  readonly #seeding = new Map<string, Promise<LogPosition>>()
  #channels: Promise<LogChannels> | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false
  readonly #prefix: string
  /** Names this process in broadcasts it also hears itself. */
  readonly #node = randomUUID()

  constructor (options: RedisSessionLogOptions) {
    this.#options = {
      replay: options.replay ?? 512,
      idleTtlMs: options.idleTtlMs ?? 86_400_000,
      laneTtlMs: options.laneTtlMs ?? 10_000,
      claimTtlMs: options.claimTtlMs ?? 300_000,
      checkIntervalMs: options.checkIntervalMs ?? 5000,
      sharded: options.sharded ?? false
    }
    checkConnection(options, 'RedisSessionLog')
    const cluster = options.client?.isCluster === true ? options.client as unknown as Cluster : undefined
    if (this.#options.sharded && cluster !== undefined && cluster.options.shardedSubscribers !== true) {
      throw new InvalidOptionError('sharded', 'sharded pub/sub on an ioredis Cluster needs one made with { shardedSubscribers: true }')
    }
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#connection = connect(options, 'RedisSessionLog')
    // A connection that cannot be made is reported by the call that needed it.
    this.#connection.catch(() => {})
  }

  /** Readiness: Redis answers. */
  async ping (): Promise<void> {
    const redis = await this.#redis()
    await this.#call(redis.ping())
  }

  // ── position and events ────────────────────────────────────────────────────

  async position (key: string, seed: () => Promise<LogPosition>): Promise<LogPosition> {
    const redis = await this.#redis()
    const [epoch, seq] = await this.#call(redis.hmget(this.#key(key, 'meta'), 'e', 's'))
    if (typeof epoch === 'string') return { epoch, seq: Number(seq) }
    // Callers of this process at once seed it once; another process's seed may win (SEED keeps the first).
    let seeding = this.#seeding.get(key)
    if (seeding === undefined) {
      seeding = (async () => {
        const seeded = await seed()
        const [e, s] = await this.#call(redis.eval(SEED, 1, this.#key(key, 'meta'), seeded.epoch, seeded.seq, this.#options.idleTtlMs)) as [string, string]
        return { epoch: e, seq: Number(s) }
      })().finally(() => this.#seeding.delete(key))
      this.#seeding.set(key, seeding)
    }
    return await seeding
  }

  async append (key: string, events: readonly SessionEvent[], lane?: Lane): Promise<void> {
    const first = events[0] as SessionEvent
    // The script checks the first event against the log; the batch must follow it one by one.
    events.forEach((event, i) => {
      if (event.epoch !== first.epoch || event.seq !== first.seq + i) throw new Error(`session log: ${REFUSALS.GAP as string} (${formatCursor(event.epoch, event.seq)})`)
    })
    const redis = await this.#redis()
    const held = lane as HeldLane | undefined
    let answer
    try {
      answer = await this.#call(redis.eval(APPEND, 4,
        this.#key(key, 'meta'), this.#key(key, 'log'), this.#key(key, 'lane'), this.#key(key, 'abort'),
        first.epoch, first.seq, held?.value ?? '', this.#options.replay, this.#options.idleTtlMs, this.#options.laneTtlMs,
        this.#key(key, 'ch'), JSON.stringify({ t: 'e', events }), this.#options.sharded ? '1' : '0',
        ...events.map(event => JSON.stringify(this.#deltas.stored(key, event)))))
    } catch (err) {
      this.#deltas.forget(key)
      throw err
    }
    if (answer === 'ABORT') held?.abort()
    else if (answer !== 'OK') {
      this.#deltas.forget(key)
      throw new Error(`session log: ${REFUSALS[answer as string] as string} (${formatCursor(first.epoch, first.seq)})`)
    }
  }

  async read (key: string, epoch: string, after: number): Promise<SessionEvent[] | undefined> {
    const redis = await this.#redis()
    const [current, seq] = await this.#call(redis.hmget(this.#key(key, 'meta'), 'e', 's'))
    if (current !== epoch) return undefined
    const head = Number(seq)
    // Nothing new (what every periodic check finds, mostly): one round trip.
    if (after === head) return []
    // From as far back as a delta's text may have to be rebuilt from.
    const entries = await this.#call(redis.xrange(this.#key(key, 'log'), `${Math.max(0, after + 1 - TEXT_CHECKPOINT)}-0`, '+'))
    // Found by contiguity: the very next position must be there, or the gap was trimmed.
    const next = entries.findIndex(([id]) => id === `${after + 1}-0`)
    if (next === -1) return undefined
    const events = rebuildTexts(entries.map(parseEntry)).slice(next).filter(event => event === undefined || event.seq <= head)
    // A delta whose earlier text was trimmed away cannot be given as it was; an event of
    // another epoch means the log began a new life between the two reads.
    return events.some(event => event?.epoch !== epoch) ? undefined : events as SessionEvent[]
  }

  async subscribe (key: string, listener: LogListener): Promise<LogSubscription> {
    const watch = this.#watch(key)
    const listening: Listening = { listener, epoch: '', seq: 0, ready: false }
    watch.listeners.add(listening)
    try {
      await this.#join(watch)
      // Subscribed first, then the position: anything published in between is at or before it, and skipped.
      const redis = await this.#redis()
      const [epoch, seq] = await this.#call(redis.hmget(this.#key(key, 'meta'), 'e', 's'))
      listening.epoch = epoch ?? ''
      listening.seq = Number(seq ?? 0)
      listening.ready = true
      // Checked now and then against Redis: a subscription that died without a word (a
      // Cluster's shard subscriber reconnects unseen) cannot lose an event for good.
      this.#startChecks()
      // What was published after the position but handled before it was known comes now, in turn.
      this.#queue(watch, async () => { await this.#fill(watch, listening) })
    } catch (err) {
      this.#leave(watch, () => watch.listeners.delete(listening))
      throw err
    }
    return {
      position: { epoch: listening.epoch, seq: listening.seq },
      unsubscribe: () => this.#leave(watch, () => watch.listeners.delete(listening))
    }
  }

  async restart (key: string, position: LogPosition, notice?: RestartNotice): Promise<void> {
    const message = notice === undefined
      ? { t: 'epoch', epoch: position.epoch, seq: position.seq }
      : { t: 'reset', event: resetEvent(key, position, notice) }
    const redis = await this.#redis()
    await this.#call(redis.eval(RESTART, 3, this.#key(key, 'meta'), this.#key(key, 'log'), this.#key(key, 'abort'),
      position.epoch, position.seq, this.#options.idleTtlMs, this.#key(key, 'ch'), JSON.stringify(message), this.#options.sharded ? '1' : '0'))
  }

  // ── the lane ───────────────────────────────────────────────────────────────

  async acquire (key: string, runId: string, options: LaneOptions): Promise<Lane> {
    const watch = this.#watch(key)
    let taken: HeldLane | { busy: Error }
    try {
      // Joined before the lane is taken: a release or an abort is heard from the start.
      await this.#join(watch)
      taken = await this.#take(watch, runId)
    } catch (err) {
      this.#leave(watch, () => {})
      throw err
    }
    if (!('busy' in taken)) return taken
    if (options.busy === 'reject' || watch.waiters.length >= options.maxQueue) {
      this.#leave(watch, () => {})
      throw taken.busy
    }
    // Wait: a release on any node wakes us; the periodic check catches a holder that died.
    this.#startChecks()
    return await new Promise<Lane>((resolve, reject) => watch.waiters.push({ runId, resolve, reject }))
  }

  async release (key: string, lane: Lane): Promise<void> {
    const held = lane as HeldLane
    const watch = this.#watches.get(key)
    if (watch === undefined || !watch.lanes.delete(held)) return
    try {
      const redis = await this.#redis()
      await this.#call(redis.eval(RELEASE, 2, this.#key(key, 'lane'), this.#key(key, 'abort'), held.value, this.#key(key, 'ch'), '{"t":"released"}', this.#options.sharded ? '1' : '0'))
    } finally {
      this.#leave(watch, () => {})
      await this.#wake(watch)
    }
  }

  async dropWaiting (key: string): Promise<void> {
    const watch = this.#watches.get(key)
    if (watch !== undefined) this.#drop(watch)
    const redis = await this.#redis()
    await this.#publish(redis, key, JSON.stringify({ t: 'drop', node: this.#node }))
  }

  async abort (key: string, runId?: string): Promise<string | undefined> {
    const redis = await this.#redis()
    const run = await this.#call(redis.eval(ABORT, 2, this.#key(key, 'lane'), this.#key(key, 'abort'),
      runId ?? '', this.#options.laneTtlMs, this.#key(key, 'ch'), '{"t":"abort","run":', this.#options.sharded ? '1' : '0')) as string | null
    if (run === null) return undefined
    for (const lane of this.#watches.get(key)?.lanes ?? []) if (lane.runId === run) lane.abort()
    return run
  }

  // ── idempotency ────────────────────────────────────────────────────────────

  async claim (key: string, idempotencyKey: string, runId: string): Promise<string | undefined> {
    const redis = await this.#redis()
    const holder = await this.#call(redis.eval(CLAIM, 1, this.#key(key, `idem:${idempotencyKey}`), runId, this.#options.claimTtlMs)) as string | null
    return holder ?? undefined
  }

  async unclaim (key: string, idempotencyKey: string): Promise<void> {
    const redis = await this.#redis()
    await this.#call(redis.del(this.#key(key, `idem:${idempotencyKey}`)))
  }

  forget (key: string): void {
    this.#deltas.forget(key)
    const watch = this.#watches.get(key)
    if (watch !== undefined) this.#leave(watch, () => {})
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#deltas.clear()
    clearInterval(this.#timer)
    for (const watch of this.#watches.values()) this.#drop(watch)
    const channels = await this.#channels?.catch(() => undefined)
    await channels?.close()
    const connection = await this.#connection.catch(() => undefined)
    if (connection?.owned === true) await connection.client.quit().catch(() => {})
  }

  // ── inside ─────────────────────────────────────────────────────────────────

  #key (sessionKey: string, part: string): string {
    // One hash tag per session: its keys, and its channel, share a Cluster slot.
    return `${this.#prefix}log:{${sessionKey}}:${part}`
  }

  async #redis (): Promise<Redis> {
    return (await this.#connection).client
  }

  /** A Redis call whose failure (the connection is down) is the gateway's 503. */
  async #call<T> (pending: Promise<T>): Promise<T> {
    try {
      return await pending
    } catch (err) {
      // ioredis rejects with Errors only.
      throw new SessionLogUnavailableError((err as Error).message)
    }
  }

  async #join (watch: Watch): Promise<void> {
    await this.#call((async () => { await (await this.#subscriber()).join(watch.channel) })())
  }

  async #publish (redis: Redis, key: string, message: string): Promise<void> {
    const channel = this.#key(key, 'ch')
    await this.#call(this.#options.sharded ? redis.spublish(channel, message) : redis.publish(channel, message))
  }

  async #subscriber (): Promise<LogChannels> {
    this.#channels ??= this.#connection.then(connection => new LogChannels(connection.duplicate({ autoResubscribe: false }), this.#options.sharded, {
      message: (channel, message) => this.#message(channel, message),
      resubscribed: () => { for (const watch of this.#watches.values()) this.#queue(watch, async () => await this.#resync(watch)) }
    }))
    return await this.#channels
  }

  #watch (key: string): Watch {
    let watch = this.#watches.get(key)
    if (watch === undefined) {
      watch = new Watch(key, this.#key(key, 'ch'))
      this.#watches.set(key, watch)
      this.#byChannel.set(watch.channel, watch)
    }
    return watch
  }

  /** Runs `change`, and lets the session go when nothing of this process needs it any more. */
  #leave (watch: Watch, change: () => void): void {
    change()
    if (!watch.idle || this.#watches.get(watch.key) !== watch) return
    this.#watches.delete(watch.key)
    this.#byChannel.delete(watch.channel)
    void this.#channels?.then(channels => channels.leave(watch.channel), () => {})
  }

  /** Takes the lane if it is free: the lane, or the busy error to throw. */
  async #take (watch: Watch, runId: string): Promise<HeldLane | { busy: Error }> {
    const redis = await this.#redis()
    const answer = await this.#call(redis.eval(ACQUIRE, 3, this.#key(watch.key, 'meta'), this.#key(watch.key, 'lane'), this.#key(watch.key, 'abort'),
      runId, this.#options.laneTtlMs)) as string[]
    if (answer[0] === 'BUSY') {
      const holder = (answer[1] as string).slice(0, (answer[1] as string).lastIndexOf('|'))
      return { busy: sessionBusy(watch.key, holder, formatCursor(answer[2] as string, Number(answer[3]))) }
    }
    // ACQUIRE answers the position too: no second round trip before the turn's first append.
    const epoch = answer[2]
    const lane = new HeldLane(runId, answer[1] as string, typeof epoch === 'string' ? { epoch, seq: Number(answer[3]) } : undefined)
    watch.lanes.add(lane)
    this.#startChecks()
    return lane
  }

  /** The lane may be free: the first turn waiting here tries for it. */
  async #wake (watch: Watch): Promise<void> {
    const first = watch.waiters[0]
    if (first === undefined || this.#closed) return
    const taken = await this.#take(watch, first.runId).catch(() => undefined)
    if (taken === undefined || 'busy' in taken) return
    // It may have been dropped while we asked (a race of a release and a drop: not to be
    // staged from outside without a hook in the code, and both orders end the same).
    /* c8 ignore next 4 */
    if (watch.waiters[0] !== first) {
      await this.release(watch.key, taken)
      return
    }
    watch.waiters.shift()
    first.resolve(taken)
  }

  #drop (watch: Watch): void {
    const waiters = watch.waiters.splice(0)
    for (const waiter of waiters) waiter.reject(new RunAbortedError(watch.key))
    this.#leave(watch, () => {})
  }

  #message (channel: string, text: string): void {
    const watch = this.#byChannel.get(channel)
    if (watch === undefined) return
    let message: Record<string, any>
    try {
      message = JSON.parse(text) as Record<string, any>
    } catch {
      return // not one of ours: someone else published on the channel
    }
    switch (message.t) {
      case 'e': this.#queue(watch, async () => { for (const event of message.events as SessionEvent[]) await this.#deliver(watch, event) }); break
      case 'reset': this.#queue(watch, async () => { await this.#deliver(watch, message.event as SessionEvent) }); break
      case 'epoch': this.#queue(watch, async () => { for (const l of watch.listeners) { l.epoch = message.epoch; l.seq = message.seq } }); break
      case 'released': void this.#wake(watch); break
      // This process dropped its own waiters when it asked; a later echo must not drop newer ones.
      case 'drop': if (message.node !== this.#node) this.#drop(watch); break
      case 'abort': for (const lane of watch.lanes) if (lane.runId === message.run) lane.abort(); break
    }
  }

  #queue (watch: Watch, work: () => Promise<void>): void {
    watch.chain = watch.chain.then(work).catch(() => {})
  }

  /** Gives each listener the event if it is the next it needs; fills a gap from the stream first. */
  async #deliver (watch: Watch, event: SessionEvent): Promise<void> {
    for (const l of [...watch.listeners]) {
      if (!l.ready) continue
      if (event.type === 'session.reset') {
        l.epoch = event.epoch
        l.seq = event.seq
        l.listener(event)
        continue
      }
      if (event.epoch === l.epoch && event.seq <= l.seq) continue
      if (event.epoch !== l.epoch || event.seq > l.seq + 1) await this.#fill(watch, l)
      if (event.epoch === l.epoch && event.seq === l.seq + 1) {
        l.seq = event.seq
        l.listener(event)
      }
    }
  }

  /**
   * Delivers what a listener missed, from the stream. A gap the stream no longer holds is
   * told as a reset to where what it holds begins, and what it holds follows: a run that
   * went on through the gap still reaches its end (a reset to the head would skip it).
   */
  async #fill (watch: Watch, l: Listening): Promise<void> {
    let held
    try {
      const missed = await this.read(watch.key, l.epoch, l.seq)
      held = missed === undefined ? await this.#held(watch.key) : { events: missed }
    } catch {
      return // Redis is away: the next check tries again
    }
    if (held === undefined) return // no position yet: the first append gives one
    if ('from' in held) {
      // A listener that subscribed before the session had a position missed nothing to reset.
      if (l.epoch !== '') l.listener(resetEvent(watch.key, held.from, { deleted: false }))
      l.epoch = held.from.epoch
      l.seq = held.from.seq
    }
    // The stream's ids follow one another (appends are checked for it): each is the next.
    for (const event of held.events) {
      l.seq = event.seq
      l.listener(event)
    }
  }

  /** The events the stream holds without a gap up to the head, and the position just before them. */
  async #held (key: string): Promise<{ from: LogPosition, events: SessionEvent[] } | undefined> {
    const redis = await this.#redis()
    // In one transaction: the stream ends at the head read with it.
    const answers = await redis.multi().hmget(this.#key(key, 'meta'), 'e', 's').xrange(this.#key(key, 'log'), '-', '+').exec()
    const [[, meta], [, entries]] = answers as [[null, Array<string | null>], [null, Array<[string, string[]]>]]
    const [epoch, seq] = meta
    if (typeof epoch !== 'string') return undefined
    let from = Number(seq)
    const events: SessionEvent[] = []
    for (const event of rebuildTexts(entries.map(parseEntry)).reverse()) {
      // Older than a gap, or a delta whose earlier text was trimmed away.
      if (event === undefined || event.seq !== from || event.epoch !== epoch) break
      events.unshift(event)
      from--
    }
    return { from: { epoch, seq: from }, events }
  }

  /** After a lost subscription: every listener gets what it missed. */
  async #resync (watch: Watch): Promise<void> {
    for (const l of [...watch.listeners]) if (l.ready) await this.#fill(watch, l)
  }

  /** Renews held lanes, wakes waiters whose holder died, and checks listeners against Redis. */
  #startChecks (): void {
    if (this.#timer !== undefined || this.#closed) return
    const every = Math.min(this.#options.checkIntervalMs, Math.floor(this.#options.laneTtlMs / 3))
    this.#timer = setInterval(() => { void this.#check() }, every)
    this.#timer.unref()
  }

  async #check (): Promise<void> {
    const redis = await this.#redis()
    for (const watch of this.#watches.values()) {
      for (const lane of watch.lanes) {
        const ours = await redis.eval(RENEW, 1, this.#key(watch.key, 'lane'), lane.value, this.#options.laneTtlMs).catch(() => 1)
        // Lost (it expired, and maybe another took it): the run must stop; its appends would be refused.
        if (ours === 0) lane.abort()
      }
      if (watch.waiters.length > 0) await this.#wake(watch)
      this.#queue(watch, async () => await this.#resync(watch))
    }
  }
}

function parseEntry ([, fields]: [string, string[]]): StoredEvent {
  return JSON.parse(fields[1] as string) as StoredEvent
}

function resetEvent (sessionKey: string, position: LogPosition, notice: RestartNotice): SessionEvent {
  return {
    type: 'session.reset',
    sessionKey,
    epoch: position.epoch,
    seq: position.seq,
    at: Date.now(),
    deleted: notice.deleted,
    ...(notice.sessionId === undefined ? {} : { sessionId: notice.sessionId })
  }
}
