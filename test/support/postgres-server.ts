import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/** A real PostgreSQL server of the test's own, on a free port of 127.0.0.1, its data in a temporary directory. */
export interface PostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:PORT/postgres`: trust authentication, for tests only. */
  readonly url: string;
  /** SIGSTOP to the server and every backend: open connections stay open and nothing answers, as a stalled server. */
  pause(): void;
  resume(): void;
  /** A fast shutdown, then a start on the same port and data directory: what was committed is still there. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** The postmaster's pid and its children's (backends and background workers): for CPU time from /proc. */
  processes(): number[];
  /** psql against this server: the rows of `sql`, unaligned, one per line; it fails after `timeoutMs` (10 s). */
  psql(sql: string, timeoutMs?: number): string;
}

// initdb and postgres refuse to run as root: as root, they run as the postgres user (Debian's package makes it).
export const asRoot = process.getuid?.() === 0;
const command = (bin: string, args: readonly string[]): [string, string[]] =>
  asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, [...args]];

/** Where Debian keeps the server binaries (not on the PATH): the newest version installed. */
function binDir(): string {
  const found = spawnSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1'], { encoding: 'utf8' }).stdout.trim();
  if (found === '') throw new Error('PostgreSQL is not installed (Debian: apt-get install postgresql); .ci/run installs it');
  return found;
}

/**
 * Starts PostgreSQL: initdb into a temporary directory, then `postgres` on a free port with fsync off. Fails (never
 * skips) when the binaries are missing.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'koa-sealed-session-pg-'));
  chmodSync(dir, 0o700);
  if (asRoot) {
    const { uid, gid } = userOf('postgres');
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const [initCmd, initArgs] = command(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const [cmd, args] = command(join(bin, 'postgres'), [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'shared_preload_libraries=pg_stat_statements',
    ]);
    // Its own process group: pause() stops the postmaster and every backend at once.
    child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    const deadline = Date.now() + 15_000;
    while (spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q']).status !== 0) {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode} before it accepted connections`);
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections on ${port} within 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const shutdown = async () => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.pid === undefined) return;
    resume(); // a paused server cannot shut down
    let exited = false;
    running.once('exit', () => (exited = true));
    // Through pg_ctl, by the server's own pid file: runuser, the child here as root, passes no signal on.
    const [cmd, args] = command(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w']);
    const stopped = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
    if (stopped.status !== 0) throw new Error(`pg_ctl stop failed: ${stopped.stderr}`);
    // runuser stops itself when it sees postgres stopped, which can come after a resume's SIGCONT: a runuser left
    // stopped never reaps postgres nor exits. Continue its group until it has.
    const deadline = Date.now() + 15_000;
    while (!exited) {
      if (Date.now() > deadline) throw new Error('runuser did not exit within 15 s of pg_ctl stop');
      signal(-running.pid, 'SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child = undefined;
  };
  await start();
  // Each backend PostgreSQL forks is a process group of its own (setsid): the signal goes to runuser's group (the
  // postmaster) and to every child of the postmaster, whose pid heads its data directory's postmaster.pid.
  const processes = () => {
    const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' })
      .stdout.split('\n')
      .map(Number)
      .filter((pid) => pid > 0);
    return [postmaster, ...children];
  };
  // A backend can end between ps listing it and the signal (a client closing its connection): nothing to signal.
  const signal = (pid: number, name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  };
  let paused = false;
  const pause = () => {
    if (child?.pid === undefined || paused) return;
    // The postmaster first, so that it forks no backend the listing below would miss.
    process.kill(-child.pid, 'SIGSTOP');
    paused = true;
    for (const pid of processes().slice(1)) signal(pid, 'SIGSTOP');
  };
  const resume = () => {
    if (child?.pid === undefined || !paused) return;
    // The backends first, the postmaster last: it forks nothing while its children are still stopped.
    for (const pid of processes().slice(1)) signal(pid, 'SIGCONT');
    process.kill(-child.pid, 'SIGCONT');
    paused = false;
  };
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    processes,
    pause,
    resume,
    restart: async () => {
      await shutdown();
      await start();
    },
    stop: async () => {
      await shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
    psql: (sql, timeoutMs = 10_000) => {
      const out = spawnSync(
        'psql',
        ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
        {
          encoding: 'utf8',
          timeout: timeoutMs,
        },
      );
      if (out.error !== undefined) throw new Error(`psql failed: ${out.error.message}`);
      if (out.status !== 0) throw new Error(`psql failed: ${out.stderr}`);
      return out.stdout.trim();
    },
  };
}

/** A system user's uid and gid (the postgres user Debian's package makes). */
export function userOf(name: string): { uid: number; gid: number } {
  const uid = Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`no ${name} user: install Debian's postgresql package`);
  return { uid, gid };
}
