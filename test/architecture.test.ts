import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The shape of lib/ that review asks for, kept by a test: no file imports (even for types)
// a file that imports it back, however long the way round.

const lib = fileURLToPath(new URL('../lib', import.meta.url))

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [])
}

/** Every file under lib/ with the lib/ files it imports or re-exports from. */
function importGraph (): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sources(lib)) {
    const text = readFileSync(file, 'utf8')
    const targets = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)\.js'/gm)]
      .map(match => resolve(dirname(file), `${match[1] as string}.ts`))
    graph.set(file, targets)
  }
  return graph
}

/** The cycles of a graph, each as the files on it. */
function cycles (graph: Map<string, string[]>): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    path.push(file)
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') found.push(path.slice(path.indexOf(next)))
      else if (state.get(next) === undefined) visit(next)
    }
    path.pop()
    state.set(file, 'done')
  }
  for (const file of graph.keys()) if (state.get(file) === undefined) visit(file)
  return found
}

t.test('lib/ has no import cycle', async t => {
  const graph = importGraph()
  t.ok(graph.size > 50, 'every source file was read')
  t.ok([...graph.values()].flat().length > 100, 'and its imports were found')
  t.same(cycles(graph).map(cycle => cycle.map(file => relative(lib, file)).join(' → ')), [])
})

t.test('the cycle finder finds a cycle', async t => {
  const graph = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])
  t.same(cycles(graph), [['a', 'b', 'c']])
})
