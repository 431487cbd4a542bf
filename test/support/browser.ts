// What the browser tests share: Debian's chromium, and a way to start an example as a user would.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Debian's chromium, as .ci/run installs it. */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The repository's root, from build/test/. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  /** What it printed on stdout before its URL. */
  readonly output: string;
  /** Stops the command and everything it started (npm runs node under it). */
  stop(): Promise<void>;
}

/** Runs a command that serves on 127.0.0.1 (PORT=0: a free port); resolves with its URL once it prints it. */
export async function startCommand(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Started> {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  // Its output, kept for a failure to start; the errors a test provokes on purpose (a 500) stay out of the test's output.
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => void (errors = (errors + chunk.toString()).slice(-4000)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    try {
      process.kill(-(child.pid as number), 'SIGTERM');
    } catch {
      child.kill();
    }
    await exited;
  };
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const timer = setTimeout(() => void stop(), options.timeoutMs ?? 10_000);
  let output = '';
  for await (const line of lines) {
    errors = (errors + line + '\n').slice(-4000);
    output += `${line}\n`;
    const url = /(http:\/\/127\.0\.0\.1:\d+)\//.exec(line)?.[1];
    if (url !== undefined) {
      clearTimeout(timer);
      return { child, url, output, stop };
    }
  }
  clearTimeout(timer);
  throw new Error(`${command} ${args.join(' ')} did not start: ${errors}`);
}

/** Starts a built example (build/examples/<name>.js). */
export function startExample(name: string, env: Record<string, string> = {}): Promise<Started> {
  return startCommand(process.execPath, [fileURLToPath(new URL(`../../examples/${name}.js`, import.meta.url))], { env });
}
