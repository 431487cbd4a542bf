#!/usr/bin/env node
// npx koa-sealed-session <keygen | keys | inspect | schema> [options]: make keys, check a ring, open a cookie and
// say why it does or does not open, print a store's SQL. Never prints a key. Exit codes: see HELP.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KeyRing, ringKeyIds } from '../crypto/key-ring.js';
import { SessionError } from '../core/errors.js';
import { UserError, hex } from './common.js';
import { inspectCookie, table } from './inspect.js';
import { PostgresStore } from '../postgres/postgres-store.js';

const HELP = `Usage: npx koa-sealed-session <command> [options]

Commands:
  keygen [--count N]             print N new keys (default 1), comma-separated: the value of SESSION_KEYS
  keys [KEYS]                    list the ring's key ids: which one seals, which are older, which are staged
  inspect [KEYS] [--name session] [--mode signed|private|store] [--redis-url URL] [--prefix sess:]
          [--timeout 5000] <cookie>
                                 open a cookie value (or a whole Cookie header) and show what it holds, or why
                                 it does not open; a store cookie is opened as the app opens it, through its
                                 record in Redis (--redis-url), within --timeout ms
  schema postgres [--table koa_sessions] [--schema NAME]
                                 print the SQL that creates PostgresStore's table, indexes and functions

KEYS: --keys-env VARIABLE (default SESSION_KEYS) or --keys-file FILE, holding keys as KeyRing.fromEnv reads them:
      base64url keys, newest first, separated by commas; staged ones marked "staged:".
Options: --json (inspect, keys): print JSON instead of a table. --help: this text.

Exit codes: 0 done (the cookie opened); 1 the cookie does not open (the reason is printed); 2 wrong usage;
            3 the keys are missing or invalid; 4 the store could not be read.
Keys are never printed, and a store cookie's id only as its hash (the store's key).`;

function keyRingOf(values: { 'keys-env'?: string; 'keys-file'?: string }): KeyRing {
  try {
    if (values['keys-file'] !== undefined) {
      const file = values['keys-file'];
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        throw new UserError(`Cannot read the keys file ${file}.`, 3);
      }
      return KeyRing.fromEnv(file, { [file]: text.trim() });
    }
    return KeyRing.fromEnv(values['keys-env'] ?? 'SESSION_KEYS');
  } catch (err) {
    if (err instanceof SessionError) {
      throw new UserError(`${err.message} Name the variable that holds the keys with --keys-env, or a file with --keys-file.`, 3);
    }
    throw err;
  }
}

function timeoutOf(text: string | undefined): number {
  const ms = text === undefined ? 5000 : Number(text);
  if (!Number.isInteger(ms) || ms < 1 || ms > 60_000) throw new UserError('--timeout takes whole milliseconds from 1 to 60000.', 2);
  return ms;
}

function keygen(count: string | undefined): string {
  const n = count === undefined ? 1 : Number(count);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new UserError('--count takes a whole number from 1 to 16.', 2);
  return Array.from({ length: n }, () => KeyRing.generateKey().toString('base64url')).join(',');
}

function keys(ring: KeyRing, json: boolean): string {
  const ids = ringKeyIds(ring).map(({ id, role }) => ({ id: hex(id), role }));
  if (json) return JSON.stringify({ keys: ids }, null, 2);
  return ids
    .map(({ id, role }) => `${id}  ${role === 'sealing' ? 'seals (newest)' : role === 'retired' ? 'opens (older)' : 'opens (staged)'}`)
    .join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean' },
        count: { type: 'string' },
        'keys-env': { type: 'string' },
        'keys-file': { type: 'string' },
        name: { type: 'string' },
        mode: { type: 'string' },
        'redis-url': { type: 'string' },
        prefix: { type: 'string' },
        timeout: { type: 'string' },
        table: { type: 'string' },
        schema: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UserError(`${(err as Error).message}\nSee --help.`, 2);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help === true || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (command === undefined) throw new UserError(`a command, please.\n\n${HELP}`, 2);
  if (values['keys-env'] !== undefined && values['keys-file'] !== undefined) throw new UserError('Give --keys-env or --keys-file, not both.', 2);
  switch (command) {
    case 'keygen':
      process.stdout.write(`${keygen(values.count)}\n`);
      return 0;
    case 'keys':
      process.stdout.write(`${keys(keyRingOf(values), values.json === true)}\n`);
      return 0;
    case 'inspect': {
      if (rest.length !== 1) throw new UserError('inspect takes one cookie value or Cookie header (quote it). See --help.', 2);
      const report = await inspectCookie(keyRingOf(values), rest[0] as string, {
        name: values.name ?? 'session',
        mode: values.mode,
        redisUrl: values['redis-url'],
        prefix: values.prefix ?? 'sess:',
        timeoutMs: timeoutOf(values.timeout),
      });
      process.stdout.write(`${values.json === true ? JSON.stringify(report, null, 2) : table(report)}\n`);
      return report.opens ? 0 : 1;
    }
    case 'schema': {
      if (rest.length !== 1 || rest[0] !== 'postgres') throw new UserError('schema takes the store it prints: schema postgres. See --help.', 2);
      try {
        process.stdout.write(PostgresStore.schema({ table: values.table, schema: values.schema }));
      } catch (err) {
        if (err instanceof SessionError) throw new UserError(err.message.replace(/^PostgresStore\.schema: option "(\w+)"/, '--$1'), 2);
        throw err;
      }
      return 0;
    }
    default:
      throw new UserError(`Unknown command ${JSON.stringify(command)}. See --help.`, 2);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UserError) {
      process.stderr.write(`koa-sealed-session: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`koa-sealed-session: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 70;
  },
);
