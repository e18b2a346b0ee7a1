// A JavaScript guest for mpwasm's `worker` world: `square`, `add` and
// `boom` tasks over JSON, and a main for `mpwasm run`. Built with
// componentize-js (see README.md beside this file).
import { worker, log } from 'mpwasm:runtime/runtime@0.1.0';

const TASKS = {
  square: (x) => x * x,
  add: (a, b) => a + b,
  boom: (x) => { throw new Error(`bad input ${x}`); },
};

// A batch: each payload a little-endian u32 length, then its bytes.
function* payloads(batch) {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let pos = 0;
  while (pos < batch.byteLength) {
    if (pos + 4 > batch.byteLength) throw { tag: 'bad-input', val: 'truncated batch' };
    const len = view.getUint32(pos, true);
    pos += 4;
    if (pos + len > batch.byteLength) throw { tag: 'bad-input', val: 'truncated batch' };
    yield batch.subarray(pos, pos + len);
    pos += len;
  }
}

function encode(parts) {
  const total = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const p of parts) {
    view.setUint32(pos, p.length, true);
    out.set(p, pos + 4);
    pos += 4 + p.length;
  }
  return out;
}

export const tasks = {
  names() {
    return Object.keys(TASKS);
  },
  call(name, codec, firstIndex, inputs) {
    const task = TASKS[name];
    if (!task) throw { tag: 'unknown-task', val: name };
    if (codec !== 'json') throw { tag: 'bad-input', val: 'this guest reads JSON' };
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    const results = [];
    const failures = [];
    let i = 0;
    for (const payload of payloads(inputs)) {
      try {
        const arg = JSON.parse(decoder.decode(payload));
        const value = task.length > 1 && Array.isArray(arg) ? task(...arg) : task(arg);
        results.push(encoder.encode(JSON.stringify(value)));
      } catch (e) {
        results.push(new Uint8Array(0));
        failures.push([i, { tag: 'failed', val: String(e) }]);
      }
      i += 1;
    }
    return { results: encode(results), failures };
  },
};

export const program = {
  main(args) {
    const me = worker();
    console.log(`hello from JavaScript main in worker ${me.id}, name ${me.name}, args ${JSON.stringify(args.slice(1))}`);
    log('info', 'a line in the host log');
    return 0;
  },
};
