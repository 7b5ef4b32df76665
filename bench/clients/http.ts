// Load generator for the HTTP API: autocannon against POST URL/v1/responses with BODY (JSON),
// CONNECTIONS at once for DURATION_MS. Prints one JSON line; exits 1 on any error or non-2xx.
// @ts-expect-error autocannon ships no types
import autocannon from 'autocannon'

interface Result { requests: { average: number }, latency: { p50: number, p99: number }, errors: number, timeouts: number, non2xx: number }

const result = await new Promise<Result>((resolve, reject) => {
  autocannon({
    url: `${process.env.URL as string}/v1/responses`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
    body: process.env.BODY as string,
    connections: Number(process.env.CONNECTIONS ?? 10),
    duration: Number(process.env.DURATION_MS ?? 4000) / 1000
  }, (err: Error | null, res: Result) => err === null ? resolve(res) : reject(err))
})
process.stdout.write(JSON.stringify({ requestsPerSec: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.timeouts, non2xx: result.non2xx }) + '\n')
if (result.errors + result.timeouts + result.non2xx > 0) process.exit(1)
