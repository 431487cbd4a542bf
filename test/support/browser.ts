// What the browser tests share: Debian's chromium, and a way to start an example as a user would.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Koa from 'koa';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
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

/** What {@link chromiumSuite} gives a suite's tests. */
export interface ChromiumSuite {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Serves `app` on 127.0.0.1 (a free port) until the suite ends; answers its origin with `host` as the host name. */
  serve(app: Koa, host?: string): Promise<string>;
}

/**
 * Inside a describe: one Chromium profile of its own for the suite, launched before it and removed after, each
 * test starting with no cookies; the apps it serves are closed after the suite.
 */
export function chromiumSuite(): ChromiumSuite {
  const profile = mkdtempSync(join(tmpdir(), 'kss-chromium-'));
  const servers: Server[] = [];
  let context: BrowserContext | undefined;
  let page: Page | undefined;
  before(async () => {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = context.pages()[0] ?? (await context.newPage());
  });
  // Cookies are per host, not per port.
  beforeEach(() => context?.clearCookies());
  after(async () => {
    await context?.close();
    for (const server of servers) server.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('Chromium has not started');
    return value;
  };
  return {
    get context() {
      return started(context);
    },
    get page() {
      return started(page);
    },
    async serve(app, host = '127.0.0.1') {
      const server = app.listen(0, '127.0.0.1');
      await once(server, 'listening');
      servers.push(server);
      return `http://${host}:${(server.address() as AddressInfo).port}`;
    },
  };
}
