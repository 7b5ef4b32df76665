/**
 * Calls every listener with `value`. A listener that throws is reported and does not stop
 * the others, nor the frame being read: one bad UI callback must not break the connection.
 */
export function notify<T> (listeners: Iterable<(value: T) => void>, value: T): void {
  for (const listener of listeners) {
    try {
      listener(value)
    } catch (err) {
      console.error('fastify-session-gateway client: a listener threw', err)
    }
  }
}
