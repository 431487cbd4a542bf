import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
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
    pg.pause();
    try {
      const stalled = spawnSync('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-X', '-A', '-t', '-c', 'SELECT 1'], {
        encoding: 'utf8',
        timeout: 1000,
      });
      // Killed by the timeout: the connection was accepted by the kernel, and nothing answered.
      expect(stalled.signal).to.equal('SIGTERM');
    } finally {
      pg.resume();
    }
    expect(pg.psql('SELECT 1')).to.equal('1');
  });
});
