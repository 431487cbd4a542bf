import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asRoot, userOf, type PostgresServer } from './postgres-server.js';
import { freePort, waitForPort } from './redis-server.js';

/** A real PgBouncer of the test's own in front of a test PostgreSQL, on a free port of 127.0.0.1. */
export interface PgBouncer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:PORT/postgres`, through the pooler: trust authentication, for tests only. */
  readonly url: string;
  /** PgBouncer's pid (under runuser when root): for its CPU time from /proc. */
  processes(): number[];
  stop(): Promise<void>;
}

/** Where Debian's package puts it: /usr/sbin, which a user's PATH may lack. */
function binary(): string {
  for (const candidate of ['pgbouncer', '/usr/sbin/pgbouncer']) {
    if (spawnSync(candidate, ['--version']).status === 0) return candidate;
  }
  throw new Error('PgBouncer is not installed (Debian: apt-get install pgbouncer); .ci/run installs it');
}

/**
 * Starts PgBouncer in transaction mode (each transaction on whichever server connection is free, as hosted poolers
 * run it) with `poolSize` server connections, fewer than the clients' pools, so that one client connection's
 * statements land on several server connections. Fails (never skips) when the binary is missing.
 */
export async function startPgBouncer(server: PostgresServer, poolSize = 3): Promise<PgBouncer> {
  const bin = binary();
  const dir = mkdtempSync(join(tmpdir(), 'koa-sealed-session-pgbouncer-'));
  chmodSync(dir, 0o700);
  const port = await freePort();
  writeFileSync(join(dir, 'users.txt'), '"postgres" ""\n');
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=127.0.0.1 port=${server.port} dbname=postgres user=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 500',
      // After a failed connection to PostgreSQL (a restart), try again within a second rather than the default 15.
      'server_login_retry = 1',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      // node-postgres and postgres.js send these at connect; PgBouncer refuses unknown startup parameters.
      'ignore_startup_parameters = extra_float_digits,options',
      '',
    ].join('\n'),
  );
  // PgBouncer refuses to run as root: as root, it runs as the postgres user (Debian's postgresql package makes it).
  if (asRoot) {
    const { uid, gid } = userOf('postgres');
    for (const path of [dir, join(dir, 'users.txt'), join(dir, 'pgbouncer.ini')]) chownSync(path, uid, gid);
  }
  const args = [join(dir, 'pgbouncer.ini')];
  // Its own process group: runuser passes no signal on, so stop() signals the group.
  const child: ChildProcess = spawn(asRoot ? 'runuser' : bin, asRoot ? ['-u', 'postgres', '--', bin, ...args] : args, {
    stdio: 'ignore',
    detached: true,
  });
  // To the whole group; it may be gone already (exited on its own): nothing to signal then.
  const signal = (name: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  };
  const log = () => {
    try {
      return readFileSync(join(dir, 'pgbouncer.log'), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  };
  try {
    await waitForPort(port, 10_000, 'pgbouncer', () => child.exitCode !== null);
  } catch (error) {
    if (child.exitCode === null) signal('SIGKILL');
    throw new Error(`${(error as Error).message}: ${log()}`);
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    processes: () => {
      if (child.pid === undefined) return [];
      if (!asRoot) return [child.pid];
      return spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' })
        .stdout.split('\n')
        .map(Number)
        .filter((pid) => pid > 0);
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        // SIGTERM: PgBouncer closes every connection and exits at once; SIGKILL if it has not within 5 s.
        signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), 5000);
        await exited.finally(() => clearTimeout(timer));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
