// The package as it is published: the tarball `npm pack` makes from the build (`npm test`
// builds first), its types under every resolution, its README's links, and a fresh strict
// TypeScript application that installs it and runs the README's Usage code unchanged.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { childEnv } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (name: string): string => join(root, 'node_modules', '.bin', name)
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { name: string, devDependencies: Record<string, string> }

// Installing and compiling an application takes a while on a busy machine.
t.setTimeout(300_000)

interface Ran { code: number, output: string }

async function run (command: string, args: string[], cwd: string): Promise<Ran> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { cwd, env: childEnv(), maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const failed = err as { code?: number, stdout?: string, stderr?: string }
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
  }
}

const work = await mkdtemp(join(tmpdir(), 'fsg-package-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root)
const [{ filename, files }] = JSON.parse(packed.output.slice(packed.output.indexOf('['))) as [{ filename: string, files: Array<{ path: string }> }]
const tarball = join(work, filename)
const shipped = new Set(files.map(file => file.path))

t.test('attw: the types resolve under node10, node16 (ESM) and bundler resolution', async t => {
  // An ES module package on purpose: Node >= 20.19 can require() it, which attw's CJS rule does not know.
  const attw = await run(bin('attw'), [tarball, '--ignore-rules', 'cjs-resolves-to-esm', '--format', 'ascii'], work)
  t.equal(attw.code, 0, 'no problems', { output: attw.output })
})

t.test('publint: nothing to fix in how the package is published', async t => {
  const publint = await run(bin('publint'), ['run', tarball, '--strict'], work)
  t.equal(publint.code, 0, 'no errors or warnings', { output: publint.output })
})

// npm's package page renders README.md with relative links unresolved (there is no
// repository to resolve them against): every link must be absolute, and a link to one of
// our files must point at a file the tarball has.
const FILE_LINK = `https://unpkg.com/${pkg.name}/`

t.test('every link in the shipped Markdown resolves on the package page', async t => {
  const documents = [...shipped].filter(path => path.endsWith('.md'))
  t.ok(documents.includes('README.md'))
  for (const document of documents) {
    const text = await readFile(join(root, document), 'utf8')
    const prose = text.replace(/^```[^]*?^```/gm, '').replace(/`[^`\n]*`/g, '')
    const headings = new Set([...text.matchAll(/^#+ (.+)$/gm)].map(([, heading]) => slug(heading as string)))
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = target as string
      if (link.startsWith('#')) t.ok(headings.has(link.slice(1)), `${document}: ${link} names a heading`)
      else if (link.startsWith(FILE_LINK)) t.ok(shipped.has(link.slice(FILE_LINK.length)), `${document}: ${link} is in the package`)
      else t.match(link, /^https:\/\//, `${document}: ${link} is absolute`)
    }
  }
})

t.test("a fresh strict TypeScript app installs the tarball and passes README's Usage code unchanged", async t => {
  const app = join(work, 'app')
  const [appCode, testCode, ...more] = usageBlocks(await readFile(join(root, 'README.md'), 'utf8'))
  t.equal(more.length, 0, 'the Usage section has two TypeScript blocks: app.ts and app.test.ts')
  await mkdir(app)
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }))
  // `tsc --init`'s strict settings, and our own declarations checked too (no skipLibCheck).
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      target: 'esnext',
      types: ['node'],
      outDir: 'dist',
      strict: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      verbatimModuleSyntax: true,
      isolatedModules: true,
      noUncheckedSideEffectImports: true,
      moduleDetection: 'force',
      declaration: true,
      skipLibCheck: false
    }
  }))
  await writeFile(join(app, 'app.ts'), appCode as string)
  await writeFile(join(app, 'app.test.ts'), testCode as string)
  // Nested, as pnpm's strict layout does it: our dependencies are not the application's.
  const deps = pkg.devDependencies
  const install = await run('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--install-strategy=nested',
    tarball, `fastify@${deps.fastify}`, `typescript@${deps.typescript}`, `@types/node@${deps['@types/node']}`], app)
  t.equal(install.code, 0, 'installs', { output: install.output })
  t.notOk(existsSync(join(app, 'node_modules', '@fastify', 'websocket')), '@fastify/websocket is out of the application\'s reach')

  const compiled = await run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app)
  t.equal(compiled.code, 0, 'type-checks and compiles', { output: compiled.output })
  const tested = await run(process.execPath, ['--test', '--test-reporter=tap', 'dist/app.test.js'], app)
  t.equal(tested.code, 0, 'node --test passes', { output: tested.output })
  const tests = (testCode as string).match(/^test\(/gm)?.length ?? 0
  t.match(tested.output, new RegExp(`# pass ${tests}\\n# fail 0`), `its ${tests} tests pass`)
  // What lets attw's CJS rule be ignored: CommonJS code on Node >= 20.19 can require() us.
  const required = await run(process.execPath, ['-e', "const { default: plugin, echoAgent } = require('fastify-session-gateway'); if (typeof plugin !== 'function' || typeof echoAgent !== 'function') process.exit(1)"], app)
  t.equal(required.code, 0, 'CommonJS can require() it', { output: required.output })
})

/** The TypeScript blocks of README's Usage section, in order. */
function usageBlocks (readme: string): string[] {
  const section = readme.slice(readme.indexOf('\n## Usage\n'), readme.indexOf('\n## ', readme.indexOf('\n## Usage\n') + 1))
  return [...section.matchAll(/^```ts\n([^]*?)^```$/gm)].map(([, code]) => code as string)
}

/** A heading's anchor, as GitHub and npm make it. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replaceAll(' ', '-')
}
