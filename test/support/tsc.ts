import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** How a user's strict TypeScript app compiles: what the README and docs promise their code type-checks under. */
export const STRICT_APP = {
  strict: true,
  module: 'nodenext',
  moduleResolution: 'nodenext',
  target: 'es2022',
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
} as const;

/**
 * Writes `dir/name` as a project of `files` with `compilerOptions`, runs this checkout's tsc on it, and answers its
 * `error TS` lines and its whole output (an error's explanation follows on lines of its own).
 */
export async function typeCheck(
  dir: string,
  name: string,
  compilerOptions: object,
  files: readonly string[],
): Promise<{ errors: string[]; output: string }> {
  writeFileSync(`${dir}/${name}`, JSON.stringify({ compilerOptions, files }));
  const child = spawn(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${dir}/${name}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  return { errors: out.split('\n').filter((line) => /error TS/.test(line)), output: out };
}
