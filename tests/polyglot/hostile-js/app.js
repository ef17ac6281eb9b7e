// A JavaScript step that misbehaves on request, to prove the sandbox holds for JS guests.
// `mode`: echo (returns `in`), loop, bomb (allocates until stopped), recurse (past the
// stack), trap (throws), huge (an output of `mib` MiB), env (what of a process
// environment it sees), read (the file at `path`: inside its grant, outside it, or through
// a symlink out of it). JavaScript has no way to block (no sleep, no blocking read):
// its waiting is the host's, in the async imports the engine drives.
import * as kiln from './kiln.js';

function deep(n) {
  return deep(n + 1) + 1;
}

export const step = kiln.step({
  describe: kiln.descriptor('hostile-js', 'Misbehaves on request')
    .optionalInput('in', 'text', 'returned by `echo`')
    .output('out', 'text', 'what the mode returns')
    .output('blob', 'bytes', 'what `huge` returns')
    .config('mode', 'echo', 'echo, loop, bomb, recurse, trap, huge, env or read')
    .config('path', '', 'the file for read')
    .config('mib', '200', 'the size of huge\'s output'),

  run(inputs, config) {
    const mode = config.get('mode');
    switch (mode) {
      case 'echo':
        return { out: inputs.get('in') ?? '', blob: new Uint8Array(0) };
      case 'loop':
        for (;;) {}
      case 'bomb': {
        const hoard = [];
        for (;;) hoard.push(new Uint8Array(1 << 20).fill(7));
      }
      case 'recurse':
        return { out: String(deep(0)), blob: new Uint8Array(0) };
      case 'trap':
        throw new Error('deliberate failure in the hostile JS step');
      case 'huge':
        return { out: '', blob: new Uint8Array(config.number('mib') * (1 << 20)) };
      case 'env':
        return { out: typeof process === 'undefined' ? '' : Object.keys(process.env ?? {}).join(','), blob: new Uint8Array(0) };
      case 'read':
        return { out: kiln.readText(config.get('path')), blob: new Uint8Array(0) };
      default:
        throw kiln.invalidConfig(`unknown mode \`${mode}\``);
    }
  },
});
