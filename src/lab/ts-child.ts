/**
 * Running TypeScript modules of this repo in a child `node` (e.g. inside a namespace via
 * `lab.spawn(ns, process.execPath, [...await tsNodeArgs(), file])`). A socket belongs to the
 * namespace of the process that opens it, so anything that must live in a lab namespace (a raw
 * socket, a peer) runs in a child. Node 20 cannot run .ts itself; these module hooks transpile with
 * the project's own TypeScript (type-only, no checking) and map './x.js' imports to './x.ts'.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HOOKS = (tsPath: string): string => `
import { readFile, access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
const ts = createRequire(import.meta.url)(${JSON.stringify(tsPath)});
export async function resolve(specifier, context, next) {
  const parent = context.parentURL ?? '';
  if (parent.endsWith('.ts') && /^\\.{1,2}\\//.test(specifier) && specifier.endsWith('.js')) {
    const url = new URL(specifier.slice(0, -3) + '.ts', parent);
    try { await access(fileURLToPath(url)); return { url: url.href, shortCircuit: true }; } catch {}
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const fileName = fileURLToPath(url);
    const out = ts.transpileModule(await readFile(fileName, 'utf8'), {
      fileName,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true },
    });
    return { format: 'module', source: out.outputText, shortCircuit: true };
  }
  return next(url, context);
}
`;

const REGISTER = `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`;

let cached: string[] | undefined;

const HOOKS_PREFIX = 'chimney-ts-hooks-';

/**
 * Hook folders of processes that are gone: a process killed without its 'exit' handler (a test
 * worker stopped by its runner) leaves its folder behind; the next one removes it.
 */
export function sweepStaleHookDirs(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(HOOKS_PREFIX)) continue;
    const pid = Number(name.slice(HOOKS_PREFIX.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    try {
      process.kill(pid, 0); // still running (or not ours to signal): keep it
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

/** Arguments for `node` that make it run .ts files of this repo: ['--import', <url>]. */
export function tsNodeArgs(): string[] {
  if (cached) return cached;
  const tsPath = createRequire(import.meta.url).resolve('typescript');
  const dir = join(tmpdir(), `${HOOKS_PREFIX}${process.pid}`);
  if (!existsSync(join(dir, 'register.mjs'))) {
    sweepStaleHookDirs();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hooks.mjs'), HOOKS(tsPath));
    writeFileSync(join(dir, 'register.mjs'), REGISTER);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  cached = ['--import', pathToFileURL(join(dir, 'register.mjs')).href];
  return cached;
}
