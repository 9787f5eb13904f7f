// One run at a time per output: the lock names its owner (pid, host, start time); a second run is
// refused naming that pid; a lock whose owner is gone — killed, or a pid since reused — is detected,
// reported and taken over. The cross-process case uses a real second process killed with SIGKILL.
// waitForLock (shared downloads) waits for a live holder on this host, never for one elsewhere.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { lockOutput, lockPathFor, ownerStatus, releaseHeldLocks, waitForLock, type LockOwner } from '../../src/io/output-lock.ts';
import { UserError } from '../../src/util/errors.ts';
import { REPO_ROOT } from '../helpers/shared.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const tmp = tempDir('crepe-output-lock');
let n = 0;
const freshOut = (): string => path.join(tmp, `run-${n++}`, 'out');

function writeLock(out: string, owner: Partial<LockOwner>): void {
  const full: LockOwner = { pid: 1, hostname: os.hostname(), processStarted: new Date().toISOString(), locked: '2026-01-01T00:00:00.000Z', token: 'other', ...owner };
  const lock = lockPathFor(out);
  mkdirSync(path.dirname(lock), { recursive: true });
  writeFileSync(lock, JSON.stringify(full));
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('lockOutput', () => {
  it('creates <out>.crepe-lock naming this process (and the output\'s folder), and removes it on release', () => {
    const out = freshOut();
    const lock = lockOutput(out);
    assert.equal(lock.path, `${out}.crepe-lock`);
    const owner = JSON.parse(readFileSync(lock.path, 'utf8')) as LockOwner;
    assert.equal(owner.pid, process.pid);
    assert.equal(owner.hostname, os.hostname());
    assert.ok(Math.abs(Date.parse(owner.processStarted) - (Date.now() - process.uptime() * 1000)) < 2000);
    assert.equal(ownerStatus(owner), 'alive', 'this process, with its own start time');
    assert.equal(lock.tookOverFrom, null);
    lock.release();
    assert.ok(!existsSync(lock.path));
    lock.release(); // twice is fine
  });

  it('releaseHeldLocks (a process stopped by a signal) removes every lock this process holds, and only those', () => {
    const [a, b] = [lockOutput(freshOut()), lockOutput(freshOut())];
    a.release();
    mkdirSync(path.dirname(a.path), { recursive: true });
    writeFileSync(a.path, 'another run took it since');
    releaseHeldLocks();
    assert.equal(existsSync(b.path), false);
    assert.equal(readFileSync(a.path, 'utf8'), 'another run took it since');
  });

  it('refuses a second run on the same output, naming the owner\'s pid', () => {
    const out = freshOut();
    const lock = lockOutput(out);
    assert.throws(() => lockOutput(out), (error: unknown) =>
      error instanceof UserError && error.message.includes(`is in use by crepe process ${process.pid}`) && error.message.includes(`${out}.crepe-lock`));
    lock.release();
    lockOutput(out).release();
  });

  it('takes over the lock of a process that no longer runs, and reports it', () => {
    const out = freshOut();
    const dead = deadPid();
    writeLock(out, { pid: dead });
    const notes: string[] = [];
    const lock = lockOutput(out, (note) => notes.push(note));
    assert.equal(lock.tookOverFrom?.pid, dead);
    assert.deepEqual(notes, [`took over the stale lock ${out}.crepe-lock of crepe process ${dead} (since 2026-01-01T00:00:00.000Z), which is no longer running`]);
    assert.equal((JSON.parse(readFileSync(lock.path, 'utf8')) as LockOwner).pid, process.pid);
    lock.release();
  });

  // A library caller's onProgress receives the note: when it throws, the run stops holding no lock.
  it('a stale-lock note that throws leaves no lock behind', () => {
    const out = freshOut();
    writeLock(out, { pid: deadPid() });
    assert.throws(() => lockOutput(out, () => { throw new Error('callback failed'); }), /callback failed/);
    assert.ok(!existsSync(lockPathFor(out)));
    lockOutput(out).release();
  });

  it('a live pid that started after the lock was taken is a reused pid: stale', () => {
    const out = freshOut();
    writeLock(out, { pid: process.pid, processStarted: '2000-01-01T00:00:00.000Z' });
    const lock = lockOutput(out);
    assert.equal(lock.tookOverFrom?.pid, process.pid);
    lock.release();
  });

  it('a zombie (ended, never reaped: an orphan under an init that does not reap) is not alive', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
    // sh starts `sleep 0` and becomes `sleep 5`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0 & exec sleep 5'], { stdio: 'ignore' });
    try {
      let zombie = 0;
      for (let tries = 0; tries < 500 && !zombie; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        const pid = Number(readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim().split(' ')[0]);
        if (pid > 0 && readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')) zombie = pid;
      }
      assert.ok(zombie > 0, 'a zombie appeared');
      const owner: LockOwner = { pid: zombie, hostname: os.hostname(), processStarted: new Date().toISOString(), locked: '', token: 'other' };
      assert.equal(ownerStatus(owner), 'dead');
      assert.equal(ownerStatus({ ...owner, pid: parent.pid! }), 'alive', 'its live parent is alive');
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('a lock from another host is not guessed at: refused, saying how to clear it', () => {
    const out = freshOut();
    writeLock(out, { pid: 4242, hostname: 'elsewhere.example' });
    assert.throws(() => lockOutput(out), (error: unknown) =>
      error instanceof UserError && /in use by crepe process 4242 on host elsewhere\.example .*cannot check a process on another host/.test(error.message));
  });

  it('garbage in a lock file (not written by crepe) counts as stale', () => {
    const out = freshOut();
    writeLock(out, {});
    writeFileSync(lockPathFor(out), 'garbage');
    lockOutput(out).release();
  });

  it('across processes: refused while another process holds it; taken over once that process is killed', async () => {
    const out = freshOut();
    const script = `
      const { lockOutput } = await import('./src/io/output-lock.ts');
      lockOutput(${JSON.stringify(out)});
      process.stdout.write('locked\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => (chunk.toString().includes('locked') ? resolve() : undefined));
        child.on('exit', (code) => reject(new Error(`the locking child exited with ${code}`)));
      });
      assert.throws(() => lockOutput(out), (error: unknown) => error instanceof UserError && error.message.includes(`crepe process ${child.pid} `));
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    const notes: string[] = [];
    const lock = lockOutput(out, (note) => notes.push(note));
    assert.equal(lock.tookOverFrom?.pid, child.pid);
    assert.match(notes[0], new RegExp(`stale lock .* of crepe process ${child.pid} .*no longer running`));
    lock.release();
  });

  it('a run that ends without an output leaves none of the folders it created on the way to it; folders holding something stay', () => {
    const run = path.join(tmp, `run-${n++}`);
    mkdirSync(run);
    const out = path.join(run, 'new', 'deeper', 'out');
    const lock = lockOutput(out);
    assert.ok(existsSync(path.dirname(out)));
    lock.release();
    assert.deepEqual(readdirSync(run), [], 'new/deeper, made for the lock, are gone');

    // A finished output keeps its folder; a folder that existed before is never removed.
    const published = lockOutput(out);
    mkdirSync(out);
    published.release();
    assert.ok(existsSync(out));
    const existing = path.join(tmp, `run-${n++}`, 'out');
    mkdirSync(path.dirname(existing));
    lockOutput(existing).release();
    assert.ok(existsSync(path.dirname(existing)));
  });

  it('a lock that cannot be created (its name too long) leaves no folder behind', () => {
    const run = path.join(tmp, `run-${n++}`);
    mkdirSync(run);
    assert.throws(() => lockOutput(path.join(run, 'new', 'x'.repeat(300))), (error: unknown) => error instanceof UserError && /ENAMETOOLONG/.test(error.message));
    assert.deepEqual(readdirSync(run), []);
    // A path whose first new folder can be made but a later one cannot (longer than PATH_MAX).
    assert.throws(() => lockOutput(path.join(run, `${'a/'.repeat(3000)}out`)), (error: unknown) => error instanceof UserError && /ENAMETOOLONG/.test(error.message));
    assert.deepEqual(readdirSync(run), []);
  });
});

describe('waitForLock', () => {
  it('waits while a live run holds the lock, tells once, and takes it when it is released', async () => {
    const lockPath = lockPathFor(freshOut());
    const first = lockOutput(lockPath.slice(0, -'.crepe-lock'.length));
    const notes: string[] = [];
    let released = false;
    setTimeout(() => {
      released = true;
      first.release();
    }, 120);
    const second = await waitForLock(lockPath, 'the thing', { onWait: (note) => notes.push(note), pollMs: 20 });
    assert.ok(released, 'taken only after the first holder released it');
    assert.equal(notes.length, 1);
    assert.match(notes[0], new RegExp(`^waiting for crepe process ${process.pid} \\(since [0-9T:.Z-]+\\), which holds the thing$`));
    assert.equal(JSON.parse(readFileSync(lockPath, 'utf8')).pid, process.pid);
    second.release();
    assert.ok(!existsSync(lockPath));
  });

  it('a holder on another host is refused at once, not waited on; a dead holder is taken over', async () => {
    const out = freshOut();
    writeLock(out, { pid: 4242, hostname: 'elsewhere.example' });
    await assert.rejects(waitForLock(lockPathFor(out), 'the thing'), (error: unknown) =>
      error instanceof UserError && /^the thing is in use by crepe process 4242 on host elsewhere\.example .*delete the lock file$/.test(error.message));
    const stale = freshOut();
    writeLock(stale, { pid: deadPid() });
    const notes: string[] = [];
    const lock = await waitForLock(lockPathFor(stale), 'the thing', { onWait: (note) => notes.push(note) });
    assert.deepEqual(notes, []);
    lock.release();
  });

  it('an abort ends the wait', async () => {
    const out = freshOut();
    const held = lockOutput(out);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('stopped')), 50);
    await assert.rejects(waitForLock(lockPathFor(out), 'the thing', { signal: controller.signal, pollMs: 10 }), { message: 'stopped' });
    held.release();
  });
});
