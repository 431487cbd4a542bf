// The package as consumers meet it: packed with npm, unpacked into a fresh app, run from ESM, CommonJS and
// TypeScript, on Koa 2 and Koa 3, on Node 20 and every later current Node, and checked by publint and
// arethetypeswrong.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeBinary, OTHER_NODES } from '../support/node-versions.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const modules = join(root, 'node_modules');

const APP = `
const keyRing = new KeyRing([KeyRing.generateKey()]);
const app = new Koa();
app.use(session(CookieSessionBackend.private(keyRing, { serializer: new MsgpackSerializer() })));
app.use((ctx) => {
  ctx.session.views = (ctx.session.views ?? 0) + 1;
  ctx.body = String(ctx.session.get('views'));
});
const server = app.listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  let cookie = '';
  const seen = [];
  for (let i = 0; i < 3; i++) {
    const res = await fetch(url, { headers: { cookie } });
    cookie = (res.headers.get('set-cookie') || '').split(';')[0] || cookie;
    seen.push(await res.text());
  }
  console.log(seen.join(','));
  server.close();
});
`;

const TS_APP = `import Koa from 'koa';
import { session, CookieSessionBackend, KeyRing, type SessionView } from 'koa-sealed-session';
declare module 'koa-sealed-session' {
  interface SessionData { views: number }
}
const app = new Koa();
app.use(session(CookieSessionBackend.signed(new KeyRing([KeyRing.generateKey()]))));
app.use((ctx) => {
  const view: SessionView = ctx.session;
  const views: number = (view.views ?? 0) + 1;
  ctx.session.set('views', views);
  // @ts-expect-error a declared key takes its declared type
  ctx.session.views = 'many';
  ctx.body = String(views);
});
`;

describe('the packed package, as consumers install it', function () {
  this.timeout(120_000);
  let dir: string;
  let tarball: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'koa-sealed-session-pack-'));
    await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root });
    const name = readdirSync(dir).find((file) => file.endsWith('.tgz'));
    if (name === undefined) throw new Error('npm pack wrote no tarball');
    tarball = join(dir, name);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A fresh app folder with the tarball unpacked as koa-sealed-session and `koa` being the given package. */
  async function appFolder(label: string, koa: string): Promise<string> {
    const app = join(dir, label);
    const installed = join(app, 'node_modules', 'koa-sealed-session');
    mkdirSync(installed, { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
    symlinkSync(join(modules, koa), join(app, 'node_modules', 'koa'));
    symlinkSync(join(modules, 'msgpackr'), join(app, 'node_modules', 'msgpackr'));
    mkdirSync(join(app, 'node_modules', '@types'));
    for (const types of ['koa', 'node']) symlinkSync(join(modules, '@types', types), join(app, 'node_modules', '@types', types));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: label, private: true }));
    return app;
  }

  /** An app folder counting from ESM and from CommonJS, on the given Koa. */
  async function countingApp(label: string, koa: string): Promise<string> {
    const app = await appFolder(label, koa);
    writeFileSync(
      join(app, 'esm.mjs'),
      `import Koa from 'koa';\nimport { session, CookieSessionBackend, KeyRing, MsgpackSerializer } from 'koa-sealed-session';\n${APP}`,
    );
    writeFileSync(
      join(app, 'cjs.cjs'),
      `const Koa = require('koa');\nconst { session, CookieSessionBackend, KeyRing, MsgpackSerializer } = require('koa-sealed-session');\n${APP}`,
    );
    return app;
  }

  const KOAS = [
    ['Koa 3', 'koa'],
    ['Koa 2', 'koa2'],
  ] as const;

  for (const [label, koa] of KOAS) {
    it(`should count by property access from ESM import and from CommonJS require(), on ${label}`, async () => {
      const app = await countingApp(label.replace(' ', ''), koa);
      for (const file of ['esm.mjs', 'cjs.cjs']) {
        const { stdout } = await run(process.execPath, [file], { cwd: app, timeout: 20_000 });
        expect(stdout.trim(), `${label} ${file}`).to.equal('1,2,3');
      }
    });
  }

  for (const version of OTHER_NODES) {
    it(`should count from ESM and CommonJS on Koa 3 and Koa 2, on Node ${version} from the npm registry`, async () => {
      const node = await nodeBinary(version);
      for (const [label, koa] of KOAS) {
        const app = await countingApp(`${label.replace(' ', '')}-node${version}`, koa);
        for (const file of ['esm.mjs', 'cjs.cjs']) {
          const { stdout } = await run(node, [file], { cwd: app, timeout: 20_000 });
          expect(stdout.trim(), `Node ${version}, ${label}, ${file}`).to.equal('1,2,3');
        }
      }
    });
  }

  for (const moduleResolution of ['nodenext', 'bundler']) {
    it(`should type-check a strict TypeScript app with moduleResolution ${moduleResolution}`, async () => {
      const app = await appFolder(`ts-${moduleResolution}`, 'koa');
      writeFileSync(join(app, 'app.ts'), TS_APP);
      const module = moduleResolution === 'bundler' ? 'esnext' : 'nodenext';
      const compilerOptions = { strict: true, noEmit: true, skipLibCheck: false, target: 'es2022', module, moduleResolution, types: ['node'] };
      writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['app.ts'] }));
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'ts-app', private: true, type: 'module' }));
      await run(process.execPath, [join(modules, 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app }).catch((err: Error & { stdout?: string }) => {
        throw new Error(`tsc failed:\n${err.stdout ?? err.message}`);
      });
    });
  }

  it('should pass publint', async () => {
    const { stdout } = await run(join(modules, '.bin', 'publint'), [tarball]);
    expect(stdout).to.contain('All good!');
  });

  it('should pass arethetypeswrong, but for require() of ESM, which Node 20.19+ (our engines range) supports', async () => {
    // cjs-resolves-to-esm: attw assumes require() cannot load ESM; Node >= 20.19, the only Node this package
    // supports ("engines"), can, and the CommonJS run above proves it.
    await run(join(modules, '.bin', 'attw'), [tarball, '--ignore-rules', 'cjs-resolves-to-esm']).catch((err: Error & { stdout?: string }) => {
      throw new Error(`attw found problems:\n${err.stdout ?? err.message}`);
    });
  });
});
