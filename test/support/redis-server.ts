import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real redis-server of the test's own, on a free port of 127.0.0.1, in a temporary directory. */
export interface RedisServer {
  readonly port: number;
  /** The redis-server process, while it runs. */
  readonly pid: number | undefined;
  readonly url: string;
  /** SIGSTOP: the server holds connections but answers nothing, as a stalled one does. */
  pause(): void;
  resume(): void;
  /** Shuts down (saving, when persistence is on), then starts again on the same port and directory. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Calls of each command since the last reset, from Redis' own INFO commandstats. */
  commandCounts(): Record<string, number>;
  resetStats(): void;
  /** redis-cli against this server; its output. */
  cli(...args: string[]): string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on 127.0.0.1:`port`; fails after `timeoutMs`, or when `exited()` says the server did. */
export async function waitForPort(port: number, timeoutMs: number, what = 'redis-server', exited = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (exited()) throw new Error(`${what} exited before it listened on ${port}`);
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Starts redis-server. Fails (never skips) when the binary is missing: `.ci/run` installs Debian's redis-server.
 * `extra` are more redis-server arguments (`--cluster-enabled yes`, say).
 */
export async function startRedis(options: { persistence?: boolean; extra?: string[]; port?: number; dir?: string } = {}): Promise<RedisServer> {
  const which = spawnSync('redis-server', ['--version']);
  if (which.error !== undefined || which.status !== 0) {
    throw new Error('redis-server is not installed: the store tests need it (apt-get install redis-server redis-tools).');
  }
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'kss-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--protected-mode',
    'no',
    '--appendonly',
    options.persistence === true ? 'yes' : 'no',
    '--appendfsync',
    'always',
    ...(options.extra ?? []),
  ];
  let child: ChildProcess;
  const start = async () => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    await waitForPort(port, 10_000);
  };
  await start();
  const cli = (...cliArgs: string[]) => {
    const out = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...cliArgs], { encoding: 'utf8', timeout: 10_000 });
    if (out.error !== undefined) throw new Error(`redis-cli failed: ${out.error.message} (apt-get install redis-tools)`);
    return out.stdout;
  };
  const exited = () =>
    new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  return {
    port,
    get pid() {
      return child.pid;
    },
    url: `redis://127.0.0.1:${port}`,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async restart() {
      child.kill('SIGCONT');
      cli('SHUTDOWN');
      await exited();
      await start();
    },
    async stop() {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      await exited();
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
    commandCounts() {
      const counts: Record<string, number> = {};
      for (const line of cli('INFO', 'commandstats').split('\n')) {
        const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
        if (match !== null) counts[match[1] as string] = Number(match[2]);
      }
      // The test's own redis-cli calls.
      for (const name of Object.keys(counts)) if (name === 'info' || name.startsWith('config')) delete counts[name];
      return counts;
    },
    resetStats: () => void cli('CONFIG', 'RESETSTAT'),
    cli,
  };
}

/** A local Redis Cluster of three masters, each a redis-server of the test's own. */
export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** Keys matching `pattern` on every master. */
  keys(pattern: string): string[];
  /** Calls of each command summed over the masters, from INFO commandstats. */
  commandCounts(): Record<string, number>;
  resetStats(): void;
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < 3; i += 1) {
      nodes.push(await startRedis({ extra: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'] }));
    }
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    const deadline = Date.now() + 20_000;
    while (!nodes.every((node) => node.cli('CLUSTER', 'INFO').includes('cluster_state:ok'))) {
      if (Date.now() > deadline) throw new Error('the Redis Cluster did not reach cluster_state:ok within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (err) {
    await Promise.all(nodes.map((node) => node.stop()));
    throw err;
  }
  return {
    nodes,
    keys: (pattern) =>
      nodes.flatMap((node) =>
        node
          .cli('--scan', '--pattern', pattern)
          .split('\n')
          .filter((line) => line !== ''),
      ),
    commandCounts() {
      const total: Record<string, number> = {};
      for (const node of nodes) {
        for (const [name, calls] of Object.entries(node.commandCounts())) {
          if (name.startsWith('cluster')) continue; // the clients' topology discovery
          total[name] = (total[name] ?? 0) + calls;
        }
      }
      return total;
    },
    resetStats: () => nodes.forEach((node) => node.resetStats()),
    stop: async () => void (await Promise.all(nodes.map((node) => node.stop()))),
  };
}

/** Commands the app sent: each script call, and with a client that pipelines its read, the read's HGETALL. */
export function roundTrips(counts: Record<string, number>, batches: boolean): number {
  return (counts.evalsha ?? 0) + (counts.eval ?? 0) + (batches ? (counts.hgetall ?? 0) : 0);
}
