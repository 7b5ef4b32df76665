import t from 'tap'
import { InProcessSessionLog, type SessionEvent, type SessionLog } from '../lib/index.js'
import { sessionLogContract } from '../lib/testing/index.js'

sessionLogContract({ test: (name, fn) => t.test(name, fn), makeLog: async options => new InProcessSessionLog(options) })

/**
 * The in-process log with its listeners told a little later, as a log shared between
 * processes tells them: the contract must hold for both (and its waits are exercised).
 */
class LaterDelivery extends InProcessSessionLog {
  override async subscribe (key: string, listener: (event: SessionEvent) => void): ReturnType<SessionLog['subscribe']> {
    let live = true
    const subscription = await super.subscribe(key, event => { setTimeout(() => { if (live) listener(event) }, 2) })
    return { position: subscription.position, unsubscribe: () => { live = false; subscription.unsubscribe() } }
  }
}

sessionLogContract({ test: (name, fn) => t.test(`told later: ${name}`, fn), makeLog: async options => new LaterDelivery(options) })
