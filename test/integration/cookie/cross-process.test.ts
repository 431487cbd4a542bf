import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { KeyRing } from '../../../src/index.js';
import { COMBINATIONS, KEY_A, backendFor } from '../../support/helpers.js';

const run = promisify(execFile);
const index = fileURLToPath(new URL('../../../src/index.js', import.meta.url));

describe('a cookie sealed in another node process', () => {
  for (const { mode, serializer, label } of COMBINATIONS) {
    it(`should open here, and ours there (${label})`, async () => {
      const data = { user: 'ada', when: 1_700_000_000_000, nested: { list: [1, 'two', null, true] } };
      const script = `
        const lib = await import(${JSON.stringify(index)});
        const ring = new lib.KeyRing([Buffer.from(process.argv[1], 'hex')]);
        const backend = lib.CookieSessionBackend[${JSON.stringify(mode)}](ring, {
          serializer: new lib.${serializer().name === 'json' ? 'JsonSerializer' : 'MsgpackSerializer'}(),
        });
        const theirs = backend.seal(JSON.parse(process.argv[2]));
        const ours = backend.open(process.argv[3]);
        process.stdout.write(JSON.stringify({ theirs, ours }));
      `;
      const backend = backendFor(mode, new KeyRing([KEY_A]), { serializer: serializer() });
      const ours = backend.seal({ from: 'parent' });
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, KEY_A.toString('hex'), JSON.stringify(data), ours]);
      const result = JSON.parse(stdout) as { theirs: string; ours: unknown };
      expect(backend.open(result.theirs)).to.deep.equal(data);
      expect(result.ours).to.deep.equal({ from: 'parent' });
    });
  }
});
