import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../examples/counter.js', import.meta.url));

describe('the example app (npm start)', () => {
  it('should serve a page on 127.0.0.1 whose count goes up on every reload', async () => {
    const child = spawn(process.execPath, [script], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the example did not start: ${output}`)), 10_000);
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /http:\/\/127\.0\.0\.1:\d+\//.exec(output);
          if (match !== null) {
            clearTimeout(timer);
            resolve(match[0]);
          }
        });
      });
      expect(output).to.match(/development key/);
      let cookie = '';
      const counts: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(url, { headers: cookie === '' ? {} : { cookie } });
        const setCookie = res.headers.get('set-cookie');
        if (setCookie !== null) cookie = setCookie.slice(0, setCookie.indexOf(';'));
        counts.push(/<h1>(\d+)<\/h1>/.exec(await res.text())?.[1] ?? '?');
      }
      expect(counts).to.deep.equal(['0', '1', '2']);
    } finally {
      child.kill();
      await once(child, 'exit');
    }
  });
});
