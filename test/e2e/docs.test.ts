import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lib from '../../src/index.js';
import { STRICT_APP, typeCheck } from '../support/tsc.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PAGES = ['README.md', 'CONTRIBUTING.md', 'SECURITY.md', ...readdirSync(`${root}docs`).map((name) => `docs/${name}`)].filter((page) =>
  page.endsWith('.md'),
);

interface Block {
  readonly page: string;
  readonly line: number;
  readonly lang: string;
  readonly code: string;
}

/** Every ```js and ```ts block of the user-facing pages, where it starts. */
function codeBlocks(): Block[] {
  const blocks: Block[] = [];
  for (const page of PAGES) {
    const lines = readFileSync(`${root}${page}`, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(js|ts)\s*$/.exec(lines[i] as string);
      if (open === null) continue;
      const end = lines.indexOf('```', i + 1);
      blocks.push({ page, line: i + 1, lang: open[1] as string, code: lines.slice(i + 1, end).join('\n') });
      i = end;
    }
  }
  return blocks;
}

// What a fragment takes from the page around it: names it uses but neither imports nor declares.
const CONTEXT: Record<string, string> = {
  // An app that set app.keys, as koa-session asks: an array of secrets.
  app: "import('koa') & { keys: string[] }",
  ctx: "import('koa').Context",
  keyRing: "import('../../src/index.js').KeyRing",
  redis: "import('redis').RedisClientType",
  pool: "import('pg').Pool",
  user: '{ id: string }',
  remember: 'boolean',
  DAY: 'number',
  handle: 'string',
  config: 'Record<string, unknown>',
  oldStore: "import('../../src/index.js').KoaSessionStore",
};
const LIBRARY = new Set(Object.keys(lib));
// Types a shape block names, from the package's own declarations.
const TYPES = ['SessionRecord', 'SessionHandle', 'SessionWrite', 'StoredSession', 'SessionStore', 'StoreRecord', 'StoreWrite'];

/** A block as a module of its own: the package by path, and what it takes from its page declared before it. */
function moduleOf(block: Block): string {
  const code = block.code
    .replaceAll("'koa-sealed-session/backend'", "'../../src/backend.js'")
    .replaceAll("'koa-sealed-session'", "'../../src/index.js'");
  const imported = new Set(
    [...code.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}/g)].flatMap((m) => (m[1] as string).split(',').map((s) => s.trim().replace(/^type /, ''))),
  );
  for (const m of code.matchAll(/import\s+(\w+)\s+from/g)) imported.add(m[1] as string);
  const declared = new Set([...code.matchAll(/(?:const|let|function|class|interface)\s+(\w+)/g)].map((m) => m[1] as string));
  const uses = (name: string) => new RegExp(`(?<![\\w.'])${name}\\b`).test(code) && !imported.has(name) && !declared.has(name);
  const js = block.lang === 'js';
  const fromLib = [...LIBRARY].filter(uses);
  const types = js ? [] : TYPES.filter((name) => uses(name) && !LIBRARY.has(name));
  const names = [...fromLib, ...types.map((name) => `type ${name}`)];
  const head = [
    names.length === 0 ? '' : `import { ${names.join(', ')} } from '../../src/index.js';`,
    ...Object.entries(CONTEXT)
      .filter(([name]) => uses(name))
      // A JavaScript file declares with JSDoc: the name has the type, the value is never read.
      .map(([name, type]) => (js ? `/** @type {${type}} */ const ${name} = /** @type {any} */ (undefined);` : `declare const ${name}: ${type};`)),
  ];
  return `${head.filter((line) => line !== '').join('\n')}\n${code}\nexport {};\n`;
}

describe('the code blocks of README.md and docs/', () => {
  it('should type-check every js and ts block under strict, as a module of its own, against this build', async function () {
    this.timeout(90_000);
    const blocks = codeBlocks();
    expect(blocks.length).to.be.greaterThan(15);
    const dir = `${root}build/doc-blocks`;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = blocks.map((block, i) => {
      const file = `block-${String(i).padStart(2, '0')}.${block.lang}`;
      writeFileSync(`${dir}/${file}`, moduleOf(block));
      return file;
    });
    // A block that must fail proves the check can: the quick start's counter is a number, not a string.
    writeFileSync(`${dir}/wrong.ts`, "declare const ctx: import('koa').Context;\nexport const s: string = ctx.session.get('counter') ?? '';\n");
    // Packages a block names that are not installed here, or ship no types.
    const ambient = [
      "declare module '@koa/bodyparser' { const bodyParser: () => import('koa').Middleware; export default bodyParser; }",
      "declare module 'koa-passport' { const passport: { initialize(): import('koa').Middleware; session(): import('koa').Middleware }; export default passport; }",
      "declare module 'koa-csrf' { const CSRF: new () => import('koa').Middleware; export default CSRF; }",
    ].join('\n');
    writeFileSync(`${dir}/ambient.d.ts`, ambient);
    const ts = files.filter((file) => file.endsWith('.ts'));
    const js = files.filter((file) => file.endsWith('.js'));
    // JavaScript as an editor checks it (checkJs): types where they are known, no annotations asked for; the ts
    // blocks come along for the SessionData they declare.
    const jsOptions = { ...STRICT_APP, strict: false, allowJs: true, checkJs: true, module: 'esnext', moduleResolution: 'bundler' };
    const errors = (
      await Promise.all([
        typeCheck(dir, 'tsconfig.json', STRICT_APP, [...ts, 'wrong.ts', 'ambient.d.ts']),
        typeCheck(dir, 'tsconfig.js.json', jsOptions, [...js, ...ts, 'ambient.d.ts']),
      ])
    ).flatMap((result) => result.errors);
    expect(errors.some((line) => line.includes('wrong.ts'))).to.equal(true, 'wrong.ts must fail: the check cannot fail otherwise');
    const named = errors
      .filter((line) => !line.includes('wrong.ts'))
      .map((line) => {
        const index = Number(/block-(\d+)/.exec(line)?.[1]);
        const block = blocks[index];
        return block === undefined ? line : `${block.page}:${block.line}: ${line}`;
      });
    expect(named).to.deep.equal([]);
  });

  it('should link only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      const text = readFileSync(`${root}${page}`, 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target as string)) continue;
        const [path, anchor] = (target as string).split('#') as [string, string | undefined];
        const file = path === '' ? `${root}${page}` : join(root, dirname(page), path);
        if (!existsSync(file)) {
          broken.push(`${page}: ${target}`);
          continue;
        }
        if (anchor !== undefined && file.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${target}`);
      }
    }
    expect(broken).to.deep.equal([]);
  });

  it('should show on the PostgreSQL page the table PostgresStore.schema() creates, as it creates it', () => {
    const text = readFileSync(`${root}docs/postgresql.md`, 'utf8');
    const block = /```sql\n([\s\S]*?)\n```/.exec(text)?.[1];
    expect(block, 'a sql block').to.be.a('string');
    expect(block).to.include('CREATE TABLE');
    expect(lib.PostgresStore.schema().startsWith(`${block as string}\n`), 'the page shows the start of the schema, unchanged').to.equal(true);
  });
});

/** GitHub's anchors for a page's headings. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const [, heading] of markdown.matchAll(/^#+ (.*)$/gm)) {
    anchors.add(
      (heading as string)
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return anchors;
}
