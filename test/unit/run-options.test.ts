import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQueueRange, resolveRunOptions } from '../../src/config/run-options';

describe('nfips run options', () => {
  it('fills the documented defaults', () => {
    const o = resolveRunOptions({});
    assert.deepEqual(o.queues, { first: 0, last: 1 });
    assert.equal(o.hook, 'forward');
    assert.deepEqual(o.mark, { value: 1, mask: 1 });
    assert.equal(o.verdictMode, 'repeat');
    assert.equal(o.failClosed, false);
    assert.equal(o.copyRange, 256);
    assert.equal(o.queueMaxlen, 4096);
    assert.match(o.rules, /rules\/default\.json$/);
    assert.equal(o.logFile, '/var/log/nfips/nfips.json');
  });

  it('parses queue ranges', () => {
    assert.deepEqual(parseQueueRange('3'), { first: 3, last: 3 });
    assert.deepEqual(parseQueueRange('2-5'), { first: 2, last: 5 });
    assert.deepEqual(parseQueueRange('2:5'), { first: 2, last: 5 });
    assert.throws(() => parseQueueRange('5-2'), /5 is greater than 2/);
    assert.throws(() => parseQueueRange('a'), /expected N or A-B/);
    assert.throws(() => parseQueueRange('0-65536'), /0 to 65535/);
    assert.throws(() => parseQueueRange('0-100'), /at most 32 queues/);
  });

  it('collects every bad flag into one error', () => {
    assert.throws(
      () => resolveRunOptions({ hook: 'prerouting', mark: '0/0', copyRange: 10, exclude: ['10.0.0.0/40'], verdictMode: 'maybe' }),
      (e: Error) =>
        /--hook "prerouting": expected one of forward, input, both/.test(e.message) &&
        /invalid mark "0\/0"/.test(e.message) &&
        /--copy-range 10: expected an integer from 64 to 65535/.test(e.message) &&
        /--exclude "10\.0\.0\.0\/40"/.test(e.message) &&
        /--verdict-mode "maybe"/.test(e.message),
    );
  });
});
