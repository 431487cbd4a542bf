import { expect } from 'chai';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, startExample, type Started } from '../support/browser.js';

describe('the sign-in demo in a real browser (Chromium through playwright-core)', function () {
  this.timeout(60_000);
  let browser: Browser;
  let demo: Started;
  before(async () => {
    demo = await startExample('login');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  it('should sign out the other device on its next request after "sign out all other devices", and remember the remembered one longer', async () => {
    const laptop = await browser.newContext({ userAgent: 'laptop' });
    const phone = await browser.newContext({ userAgent: 'phone' });
    const onLaptop = await laptop.newPage();
    const onPhone = await phone.newPage();
    for (const [page, remember] of [
      [onLaptop, true],
      [onPhone, false],
    ] as const) {
      await page.goto(demo.url);
      await page.fill('#user', 'alice');
      if (remember) await page.check('#remember');
      await page.click('#sign-in');
      expect(await page.textContent('#signed-in')).to.equal('Signed in as alice');
    }
    const [laptopCookie] = await laptop.cookies();
    const [phoneCookie] = await phone.cookies();
    expect(laptopCookie?.httpOnly).to.equal(true);
    expect(laptopCookie?.sameSite).to.equal('Lax');
    // Remembered: 30 days in the browser's store; not remembered: a browser-session cookie (-1), gone with the browser.
    expect((laptopCookie?.expires ?? 0) * 1000 - Date.now()).to.be.within(29.9 * 86_400_000, 30 * 86_400_000);
    expect(phoneCookie?.expires).to.equal(-1);

    await onLaptop.goto(`${demo.url}/devices`);
    expect(await onLaptop.locator('#devices li').count()).to.equal(2);
    expect(await onLaptop.locator('#devices li', { hasText: 'phone' }).count()).to.equal(1);
    expect(await onLaptop.locator('#devices li', { hasText: 'laptop' }).locator('.current').count()).to.equal(1);
    await onLaptop.click('#sign-out-others');
    expect(await onLaptop.locator('#devices li').count()).to.equal(1);

    await onPhone.reload();
    expect(await onPhone.locator('#sign-in').count(), 'the phone is signed out').to.equal(1);
    await onLaptop.goto(demo.url);
    expect(await onLaptop.textContent('#signed-in')).to.equal('Signed in as alice');

    // The phone signs in again; "sign out everywhere" from it ends both.
    await onPhone.fill('#user', 'alice');
    await onPhone.click('#sign-in');
    await onPhone.goto(`${demo.url}/devices`);
    await onPhone.click('#sign-out-everywhere');
    expect(await onPhone.locator('#sign-in').count()).to.equal(1);
    await onLaptop.reload();
    expect(await onLaptop.locator('#sign-in').count(), 'the laptop is signed out too').to.equal(1);
    await laptop.close();
    await phone.close();
  });
});
