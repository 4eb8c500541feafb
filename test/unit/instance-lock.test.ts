// The instance lock: held for the process's life, freed by the kernel when
// the holder dies, and naming the holder's pid to the one refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { acquireInstanceLock, chainLockHolder, InstanceLockedError } from '../../src/app/instance-lock';
import { PACKAGE_ROOT } from '../../src/config/paths';

const MODULE = path.join(PACKAGE_ROOT, 'dist', 'src', 'app', 'instance-lock.js');

describe('instance lock', () => {
  it('refuses a second holder of the state dir or the chain, naming the first pid, and frees on release', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    for (const d of ['a', 'b']) mkdirSync(path.join(dir, d));
    try {
      const a = acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: 'NFIPS', lockDir: path.join(dir, 'locks') });
      // Same chain, own state dir.
      assert.throws(() => acquireInstanceLock({ stateDir: path.join(dir, 'b'), chain: 'NFIPS', lockDir: path.join(dir, 'locks') }), (e: unknown) =>
        e instanceof InstanceLockedError && e.pid === process.pid && /chain NFIPS/.test(e.message));
      // Same state dir, other chain.
      assert.throws(() => acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: 'OTHER', lockDir: path.join(dir, 'locks') }), (e: unknown) =>
        e instanceof InstanceLockedError && e.pid === process.pid && /--state-dir/.test(e.message));
      assert.equal(chainLockHolder(path.join(dir, 'locks'), 'NFIPS')?.pid, process.pid);
      // The refused attempt left nothing held: b's state lock is free.
      const b = acquireInstanceLock({ stateDir: path.join(dir, 'b'), chain: 'OTHER', lockDir: path.join(dir, 'locks') });
      b.release();
      a.release();
      assert.equal(chainLockHolder(path.join(dir, 'locks'), 'NFIPS'), null);
      acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: 'NFIPS', lockDir: path.join(dir, 'locks') }).release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is freed by the kernel when the holder is killed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    try {
      const t = { stateDir: dir, chain: 'NFIPS', lockDir: path.join(dir, 'locks') };
      const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(MODULE)}).acquireInstanceLock(${JSON.stringify(t)}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await once(child.stdout, 'data');
      assert.throws(() => acquireInstanceLock(t), (e: unknown) => e instanceof InstanceLockedError && e.pid === child.pid);
      child.kill('SIGKILL');
      await once(child, 'exit');
      acquireInstanceLock(t).release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a symbolic link in the lock file\'s place', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    try {
      writeFileSync(path.join(dir, 'elsewhere'), '');
      symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'nfips.lock'));
      assert.throws(() => acquireInstanceLock({ stateDir: dir, chain: 'NFIPS', lockDir: path.join(dir, 'locks') }), /nfips\.lock: it is a symbolic link/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
