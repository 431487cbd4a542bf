import { closeServers } from './helpers.js';

// Root hooks: every server a test opened is closed, so mocha exits by itself.
export const mochaHooks = {
  async afterEach(): Promise<void> {
    await closeServers();
  },
};
