import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { KeyRing } from '../src/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The README's quick start, as a new user saves it, importing the build instead of the installed package. */
function quickStart(): string {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const block = /```js\n(\/\/ app\.mjs\n[\s\S]*?)```/.exec(readme)?.[1];
  if (block === undefined) throw new Error('the README has no ```js block starting with // app.mjs');
  const dir = `${root}build/readme`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/app.mjs`;
  writeFileSync(file, block.replace("from 'koa-sealed-session'", "from '../src/index.js'"));
  return file;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

function run(file: string, env: Record<string, string>) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'SESSION_KEY'));
  return spawn(process.execPath, [file], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

describe("the README's quick start (app.mjs)", () => {
  it('should stop at start-up with a clear error when SESSION_KEY is not set', async () => {
    const child = run(quickStart(), { PORT: String(await freePort()) });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).not.to.equal(0);
    expect(stderr).to.match(/ERR_SESSION_INVALID_KEY/);
    expect(stderr).to.match(/KeyRing key 0 is empty\. If it is read from an environment variable, that variable is not set here/);
  });

  it('should count up on 127.0.0.1 with a key in SESSION_KEY', async () => {
    const port = await freePort();
    const child = run(quickStart(), { PORT: String(port), SESSION_KEY: KeyRing.generateKey().toString('base64url') });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the quick start did not start')), 10_000);
        child.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes(`http://127.0.0.1:${port}/`)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      let cookie = '';
      const counts: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${port}/`, { headers: cookie === '' ? {} : { cookie } });
        const setCookie = res.headers.get('set-cookie') ?? '';
        cookie = setCookie.slice(0, setCookie.indexOf(';'));
        counts.push(await res.text());
      }
      expect(counts).to.deep.equal(['0', '1', '2']);
    } finally {
      child.kill();
      await once(child, 'exit');
    }
  });
});
