import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { KeyRing } from '../../src/index.js';
import { STRICT_APP, typeCheck } from '../support/tsc.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

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
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'SESSION_KEYS'));
  return spawn(process.execPath, [file], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

describe("the README's quick start (app.mjs)", () => {
  it('should stop at start-up with a clear error when SESSION_KEYS is not set', async () => {
    const child = run(quickStart(), { PORT: String(await freePort()) });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).not.to.equal(0);
    expect(stderr).to.match(/ERR_SESSION_INVALID_KEY/);
    expect(stderr).to.match(/SESSION_KEYS is not set\. Make keys with `npx koa-sealed-session keygen`/);
  });

  it('should count up on 127.0.0.1 with a key in SESSION_KEYS, not counting /favicon.ico', async () => {
    const port = await freePort();
    const child = run(quickStart(), { PORT: String(port), SESSION_KEYS: KeyRing.generateKey().toString('base64url') });
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
        const favicon = await fetch(`http://127.0.0.1:${port}/favicon.ico`, { headers: { cookie } });
        expect(favicon.status).to.equal(404);
        expect(favicon.headers.get('set-cookie')).to.equal(null);
      }
      expect(counts).to.deep.equal(['0', '1', '2']);
    } finally {
      child.kill();
      await once(child, 'exit');
    }
  });
});

describe("the README's TypeScript quick start (app.ts)", () => {
  it('should type-check under strict with moduleResolution nodenext, get typed from SessionData', async function () {
    this.timeout(60_000);
    const readme = readFileSync(`${root}README.md`, 'utf8');
    const block = /```ts\n(\/\/ app\.ts\n[\s\S]*?)```/.exec(readme)?.[1];
    if (block === undefined) throw new Error('the README has no ```ts block starting with // app.ts');
    const dir = `${root}build/readme-ts`;
    mkdirSync(dir, { recursive: true });
    // The package is this checkout's source: the import and the augmentation name it by path.
    writeFileSync(`${dir}/app.ts`, block.replaceAll("'koa-sealed-session'", "'../../src/index.js'"));
    // A line that must not type-check if get() were untyped: proves the check can fail.
    writeFileSync(
      `${dir}/wrong.ts`,
      `${block.replaceAll("'koa-sealed-session'", "'../../src/index.js'")}\nexport const s: string = (null as unknown as import('koa').Context).session.get('counter') ?? '';\n`,
    );
    // One run for both files (each its own module): app.ts must be clean, wrong.ts must fail where it should.
    const { errors, output } = await typeCheck(dir, 'tsconfig.json', STRICT_APP, ['app.ts', 'wrong.ts']);
    expect(
      errors.filter((line) => !line.includes('wrong.ts(')),
      'app.ts type-checks',
    ).to.deep.equal([]);
    expect(errors, 'wrong.ts does not').to.have.length(1);
    expect(output).to.match(/wrong\.ts[\s\S]*Type 'number' is not assignable to type 'string'/);
  });
});
