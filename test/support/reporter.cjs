'use strict';
// Mocha's spec reporter, closed by the one summary line CI reads: "N passed, N failed".
const Mocha = require('mocha');

class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    let passed = 0;
    let failed = 0;
    runner.on(Mocha.Runner.constants.EVENT_TEST_PASS, () => {
      passed += 1;
    });
    runner.on(Mocha.Runner.constants.EVENT_TEST_FAIL, () => {
      failed += 1;
    });
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      process.nextTick(() => console.log(`${passed} passed, ${failed} failed`));
    });
  }
}

module.exports = SpecWithSummary;
