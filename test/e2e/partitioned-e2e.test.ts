import { expect } from 'chai';
import Koa from 'koa';
import type { Frame, Page } from 'playwright-core';
import { CookieSessionBackend, KeyRing, MemoryStore, StoreSessionBackend, session, type SessionBackend } from '../../src/index.js';
import { chromiumSuite } from '../support/browser.js';

// An app embedded in another site's page keeps its session in a Partitioned cookie (CHIPS): the browser stores it
// for that top-level site only. The embedding page is served from http://localhost, the embedded app from
// http://127.0.0.1: two sites, both loopback, where Chromium takes Secure cookies over plain HTTP.
describe('Partitioned cookies in a real browser (Chromium through playwright-core)', function () {
  this.timeout(60_000);
  const ring = new KeyRing([KeyRing.generateKey()]);
  const browser = chromiumSuite();
  const listen = (app: Koa, host: string) => browser.serve(app, host);

  /** The embedded app: a counter in its session, shown in the page. */
  const embedded = (backend: SessionBackend) => {
    const app = new Koa();
    app.use(session(backend));
    app.use((ctx) => {
      const count = (ctx.session.get<number>('count') ?? 0) + 1;
      ctx.session.set('count', count);
      ctx.type = 'html';
      ctx.body = `<p id="count">${count}</p>`;
    });
    return listen(app, '127.0.0.1');
  };

  /** The embedding site: a page with the embedded app in an iframe. */
  const embedding = (src: string) => {
    const app = new Koa();
    app.use((ctx) => {
      ctx.type = 'html';
      ctx.body = `<iframe src="${src}"></iframe>`;
    });
    return listen(app, 'localhost');
  };

  const countIn = async (frame: Frame | Page) => Number(await frame.textContent('#count'));
  const framedCount = async (top: string) => {
    await browser.page.goto(top);
    const frame = browser.page.frames().find((f) => f !== browser.page.mainFrame());
    if (frame === undefined) throw new Error('the page has no iframe');
    await frame.waitForSelector('#count');
    return countIn(frame);
  };

  for (const [label, make] of [
    ['cookie backend', () => CookieSessionBackend.private(ring, { partitioned: true, sameSite: 'none' })],
    ['store backend', () => new StoreSessionBackend(new MemoryStore(), ring, { partitioned: true, sameSite: 'none' })],
  ] as const) {
    it(`should keep a session in a Partitioned cookie inside an iframe of another site, for that site only (${label})`, async () => {
      const app = await embedded(make());
      const top = await embedding(app);
      // Stored and sent back: the iframe's counter goes on across loads of the embedding page.
      expect([await framedCount(top), await framedCount(top), await framedCount(top)]).to.deep.equal([1, 2, 3]);
      const stored = (await browser.context.cookies(app)).filter((cookie) => cookie.name === 'session');
      expect(stored).to.have.length(1);
      expect(stored[0]?.secure).to.equal(true);
      expect(stored[0]?.partitionKey).to.equal(new URL(top).origin.replace(/:\d+$/, ''));
      // Kept apart: the same app visited as a top-level site does not get the embedded session.
      await browser.page.goto(app);
      expect(await countIn(browser.page)).to.equal(1);
    });
  }

  it('should keep no session in an unpartitioned SameSite=None cookie inside the same iframe: this Chromium blocks third-party cookies', async () => {
    // Why the tests above prove something: without Partitioned, the embedded app starts afresh on every load.
    const app = await embedded(CookieSessionBackend.private(ring, { sameSite: 'none' }));
    const top = await embedding(app);
    expect([await framedCount(top), await framedCount(top)]).to.deep.equal([1, 1]);
    expect(await browser.context.cookies(app)).to.deep.equal([]);
  });
});
