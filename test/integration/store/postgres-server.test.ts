import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { startPostgres, type PostgresServer } from '../../support/postgres-server.js';

// The PostgreSQL the store tests will run against: started by the tests, and paused, stopped and restarted by them.
describe('a PostgreSQL server of the tests own (test/support/postgres-server.ts)', function () {
  this.timeout(60_000);
  let pg: PostgresServer;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.stop();
  });

  it('should answer on its own port, keep what was committed across a restart, and answer nothing while paused', async () => {
    expect(pg.port).to.not.equal(5432);
    pg.psql('CREATE TABLE t (v text); INSERT INTO t VALUES ($$kept$$)');
    await pg.restart();
    expect(pg.psql('SELECT v FROM t')).to.equal('kept');
    // An open connection is stalled too: its backend is a process of its own.
    const open = spawn('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-X', '-A', '-t', '-f', '-'], { stdio: 'pipe' });
    let answered = '';
    open.stdout.on('data', (chunk: Buffer) => (answered += chunk.toString()));
    open.stdin.write('SELECT 1;\n');
    for (let i = 0; answered === '' && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(answered.trim()).to.equal('1');
    pg.pause();
    try {
      open.stdin.write('SELECT 2;\n');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(answered.trim(), 'an open connection answers nothing while paused').to.equal('1');
      const stalled = spawnSync('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-X', '-A', '-t', '-c', 'SELECT 1'], {
        encoding: 'utf8',
        timeout: 1000,
      });
      // Killed by the timeout: the connection was accepted by the kernel, and nothing answered.
      expect(stalled.signal).to.equal('SIGTERM');
    } finally {
      pg.resume();
    }
    for (let i = 0; !answered.includes('2') && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(answered.trim().split('\n')).to.deep.equal(['1', '2']);
    open.stdin.end();
    expect(pg.psql('SELECT 1')).to.equal('1');
  });

  it('should pause and resume while connections open and close, and restart after it was paused many times', async () => {
    // Backends end between the listing of them and their signal; runuser stops itself after a resume now and then.
    const churn = Array.from({ length: 4 }, () =>
      spawn('sh', ['-c', `for i in $(seq 40); do psql -h 127.0.0.1 -p ${pg.port} -U postgres -X -A -t -c 'SELECT 1' >/dev/null 2>&1; done`]),
    );
    const ended = Promise.all(churn.map((c) => new Promise((resolve) => c.once('exit', resolve))));
    for (let i = 0; i < 30; i++) {
      pg.pause();
      await new Promise((resolve) => setTimeout(resolve, 5));
      pg.resume();
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    for (const c of churn) c.kill();
    await ended;
    const began = Date.now();
    await pg.restart();
    expect(Date.now() - began, 'restart').to.be.below(10_000);
    expect(pg.psql('SELECT 1')).to.equal('1');
  });
});
