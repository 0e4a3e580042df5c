// The processes the browser tests drive: the seeding worker and `replayflow serve`.

import { spawn } from 'node:child_process';
import path from 'node:path';

/** Starts `cmd` and resolves `found` with the first stdout match of `pattern`. */
export function startProcess(cmd, args, pattern, timeoutMs) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  let err = '';
  const found = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(cmd)} did not start in time\n${out}\n${err}`)), timeoutMs);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = pattern.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    });
    child.stderr.on('data', (chunk) => { err += chunk; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(cmd)} exited with ${code}\n${out}\n${err}`));
    });
  });
  return { child, found };
}

/** Ends a started process, if it still runs. */
export function stop(child) {
  if (child && child.exitCode === null) child.kill('SIGTERM');
}
