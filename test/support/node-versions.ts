// Other Node releases than the one running, from the npm registry's `node` packages, for the packaging test and the
// benchmark on every current Node. Each is installed once into node_modules/.cache (npm ci starts it afresh).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The current Node lines besides the package's lowest (20, which runs the suite), pinned so that a run is
 * repeatable: a new release is a change of this list, in a commit of its own.
 */
export const OTHER_NODES = ['22.23.3', '24.21.0'] as const;

/**
 * The path of a `node` binary of `version`, installed from the npm registry's `node@version` package when it is
 * not yet in the cache. Throws, with npm's own output, when the install fails: a test that needs it fails.
 */
export async function nodeBinary(version: string): Promise<string> {
  const prefix = join(ROOT, 'node_modules', '.cache', 'koa-sealed-session', `node-${version}`);
  const binary = join(prefix, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(binary)) {
    await run('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix, `node@${version}`], {
      timeout: 180_000,
    }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`could not install node@${version} from the npm registry:\n${err.stderr ?? err.message}`);
    });
  }
  // The `node` package fetches the platform's binary in its preinstall script: a binary that is missing or of
  // another version means that step did not run.
  const { stdout } = await run(binary, ['--version']).catch(() => ({ stdout: '' }));
  if (stdout.trim() !== `v${version}`)
    throw new Error(`node@${version} installed under ${prefix} answers "${stdout.trim()}": its preinstall step did not fetch the binary`);
  return binary;
}
