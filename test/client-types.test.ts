import t from 'tap'
import type * as Client from '../lib/client/frames.js'
import type { ConnectParams, GatewayEventPayloads, GatewayMethodParams, GatewayMethodResults, HelloOk } from '../lib/transports/openclaw/frames.js'

// The client's frame types are written apart from the server's (the client module imports
// nothing, so a browser loads it as it is); this file is where they meet. `npm test`
// typechecks it: a server answer the client's types would not accept, or a client request
// the server's would not, fails the build, naming the method or event.

type Fits<From, To> = [From] extends [To] ? true : false
/** The names whose check is not `true`: `never` when all fit. */
type Misfits<T> = { [K in keyof T]: T[K] extends true ? never : K }[keyof T]
type Exactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false

// Both sides know the same methods; the client knows every event the server sends.
const sameMethods: Exactly<keyof GatewayMethodResults, Client.MethodName> = true
const sameEvents: Fits<keyof GatewayEventPayloads, Client.EventName> = true

// What the server answers, the client's types accept.
type Answers = { [M in keyof GatewayMethodResults & Client.MethodName]: Fits<GatewayMethodResults[M], Client.MethodResult<M>> }
const answersFit: Misfits<Answers> extends never ? true : Misfits<Answers> = true
type Events = { [E in keyof GatewayEventPayloads & Client.EventName]: Fits<GatewayEventPayloads[E], Client.EventPayloads[E]> }
const eventsFit: Misfits<Events> extends never ? true : Misfits<Events> = true
const helloFits: Fits<HelloOk, Client.HelloOk> = true

// What the client's types let it send, the server's accept.
type Requests = { [M in keyof GatewayMethodResults & Client.MethodName]: Fits<Client.MethodParams<M>, GatewayMethodParams<M>> }
const requestsFit: Misfits<Requests> extends never ? true : Misfits<Requests> = true
const connectFits: Fits<Client.ConnectParams, ConnectParams> = true

t.test("the client's frame types and the server's agree (checked when the tests are typechecked)", async t => {
  t.same([sameMethods, sameEvents, answersFit, eventsFit, helloFits, requestsFit, connectFits], [true, true, true, true, true, true, true])
})
