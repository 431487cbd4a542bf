// A page that fires several requests at once, one of them the login: in Chromium, the login's cookie survives the
// requests that left with the pre-login cookie and answer after it (expressjs/session#923).
import { expect } from 'chai';
import Koa from 'koa';
import { KeyRing, MemoryStore, StoreSessionBackend, session, type StoreWrite } from '../../src/index.js';
import { chromiumSuite } from '../support/browser.js';

/** A store that keeps no marker for a renewed id: how the store backend behaved before it did. */
class MarkerlessStore extends MemoryStore {
  override write(key: string, write: StoreWrite): Promise<boolean> {
    return super.write(key, { ...write, graceMs: undefined });
  }
}

const PAGE = `<!doctype html><p id="out">…</p><script>
(async () => {
  await fetch('/count');
  // All at once, as a page's scripts do: the requests beside the login leave with the pre-login cookie.
  await Promise.all([fetch('/login'), fetch('/count'), fetch('/count'), fetch('/count')]);
  const me = await (await fetch('/me')).json();
  document.getElementById('out').textContent = me.user ?? 'signed out';
})();
</script>`;

describe('a login beside parallel requests, in a real browser (Chromium through playwright-core)', function () {
  this.timeout(60_000);
  const browser = chromiumSuite();

  /** The app: /count requests beside the login wait, before their session loads, until the login has answered. */
  const serve = async (store: MemoryStore): Promise<string> => {
    let loggedIn!: () => void;
    const login = new Promise<void>((resolve) => (loggedIn = resolve));
    let counts = 0;
    const app = new Koa();
    app.use(async (ctx, next) => {
      if (ctx.path === '/count' && ++counts > 1) await login;
      if (ctx.path === '/login') ctx.res.once('finish', () => setTimeout(loggedIn, 20));
      await next();
    });
    app.use(session(new StoreSessionBackend(store, new KeyRing([KeyRing.generateKey()]))));
    app.use((ctx) => {
      if (ctx.path === '/') {
        ctx.type = 'html';
        ctx.body = PAGE;
        return;
      }
      if (ctx.path === '/login') {
        ctx.session.renew();
        ctx.session.set('userId', 'ada');
      } else if (ctx.path === '/count') {
        ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
      }
      ctx.body = { user: ctx.session.get('userId') ?? null };
    });
    return `${await browser.serve(app)}/`;
  };

  const outcome = async (url: string): Promise<string> => {
    const { page } = browser;
    await page.goto(url);
    await page.waitForFunction("document.getElementById('out').textContent !== '…'", undefined, { timeout: 10_000 });
    return (await page.textContent('#out')) ?? '';
  };

  it('should stay signed in: the requests that answer after the login with the pre-login cookie set no cookie', async () => {
    expect(await outcome(await serve(new MemoryStore()))).to.equal('ada');
  });

  it('should sign the user out without the renewed id’s marker (the test can fail)', async () => {
    expect(await outcome(await serve(new MarkerlessStore()))).to.equal('signed out');
  });
});
