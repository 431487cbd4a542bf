// One HTTP request served in this process, as Node's HTTP server serves it but for the socket: a fresh
// IncomingMessage whose Cookie header is a new string (as the parser makes one from the bytes it read), a fresh
// ServerResponse whose headers Node validates and writes out, and the app's own Koa callback in between. The
// bytes go to a sink, which counts them.
import type Koa from 'koa';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';

/** A stand-in for the connection: takes every write, keeps the count. */
class Sink extends Writable {
  bytes = 0;
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.bytes += chunk.length;
    done();
  }
}

/** What one request left: its status, its Set-Cookie header and the bytes of the response. */
export interface Served {
  readonly status: number;
  readonly setCookie: string | string[] | number | undefined;
  readonly bytes: number;
}

/**
 * Serves GET `path` with `cookie` (the whole Cookie header, as bytes, so each request gets a string of its own) to
 * the app's callback; resolves once the response has been written.
 */
export function serveInProcess(handle: ReturnType<Koa['callback']>, path: string, cookie: Buffer): Promise<Served> {
  const socket = new Socket();
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = path;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  req.headers = { host: '127.0.0.1', cookie: cookie.toString('latin1') };
  req.complete = true;
  req.push(null);
  const res = new ServerResponse(req);
  const sink = new Sink();
  res.assignSocket(sink as unknown as Socket);
  return new Promise<Served>((resolve, reject) => {
    res.once('finish', () => {
      res.detachSocket(sink as unknown as Socket);
      resolve({ status: res.statusCode, setCookie: res.getHeader('set-cookie'), bytes: sink.bytes });
    });
    res.once('error', reject);
    void handle(req, res);
  });
}
