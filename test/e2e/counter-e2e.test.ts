import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, startCommand, type Started } from '../support/browser.js';

describe('the session counter (npm start) in a real browser (Chromium through playwright-core)', function () {
  this.timeout(90_000);
  let demo: Started;
  let context: BrowserContext;
  let page: Page;
  const profile = mkdtempSync(join(tmpdir(), 'kss-chromium-'));
  before(async () => {
    // As a user starts it; the build is incremental, so after npm test's own it takes a few seconds.
    demo = await startCommand('npm', ['start'], { timeoutMs: 60_000, env: { SESSION_KEYS: '' } });
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = context.pages()[0] ?? (await context.newPage());
  });
  after(async () => {
    await context?.close();
    await demo?.stop();
    rmSync(profile, { recursive: true, force: true });
  });

  const count = async () => Number(await page.textContent('h1'));
  const sessionCookie = async () => (await context.cookies()).find((cookie) => cookie.name === 'session');

  it('should say it made a development key without printing it', () => {
    expect(demo.output).to.include('made a development key');
    expect(demo.output).not.to.match(/[A-Za-z0-9_-]{43}/);
  });

  it('should count up by one per reload (the favicon request counting nothing), in an HttpOnly, SameSite=Lax cookie', async () => {
    await page.goto(demo.url);
    expect(await count()).to.equal(0);
    for (const expected of [1, 2, 3]) {
      await page.reload();
      expect(await count()).to.equal(expected);
    }
    // What a browser asks for beside the page counts nothing.
    expect((await page.goto(`${demo.url}/favicon.ico`))?.status()).to.equal(404);
    await page.goto(demo.url);
    expect(await count()).to.equal(4);
    const cookie = await sessionCookie();
    expect(cookie?.httpOnly).to.equal(true);
    expect(cookie?.sameSite).to.equal('Lax');
    // The page cannot read it, nor overwrite it from script.
    expect(await page.evaluate('document.cookie')).not.to.include('session=');
    await page.evaluate("document.cookie = 'session=forged; path=/'");
    expect((await sessionCookie())?.value).to.equal(cookie?.value);
  });

  it('should show the count on the page (a screenshot of it changes as it counts)', async () => {
    await page.goto(demo.url);
    const before = await page.locator('h1').screenshot();
    const shown = await count();
    await page.reload();
    const after = await page.locator('h1').screenshot();
    expect(await count()).to.equal(shown + 1);
    expect(before.subarray(0, 8).toString('hex')).to.equal('89504e470d0a1a0a'); // PNG
    expect(before.equals(after), 'the rendered count changed').to.equal(false);
    expect(await page.screenshot()).to.have.length.above(1000);
  });

  it('should start afresh when the cookie was tampered with', async () => {
    await page.goto(demo.url);
    expect(await count()).to.be.above(0);
    const cookie = (await sessionCookie()) as NonNullable<Awaited<ReturnType<typeof sessionCookie>>>;
    const flipped = cookie.value.slice(0, 40) + (cookie.value[40] === 'A' ? 'B' : 'A') + cookie.value.slice(41);
    await context.addCookies([{ ...cookie, value: flipped }]);
    await page.reload();
    expect(await count()).to.equal(0);
  });

  it('should answer 500 to a page that grows the session past the limit, the browser keeping its cookie and count', async () => {
    await page.goto(demo.url);
    const shown = await count();
    const before = (await sessionCookie())?.value;
    const res = await page.goto(`${demo.url}/grow`);
    expect(res?.status()).to.equal(500);
    expect((await sessionCookie())?.value).to.equal(before);
    await page.goto(demo.url);
    expect(await count()).to.equal(shown + 1);
  });
});
