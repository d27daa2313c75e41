// Command line of `npm run bench -- [family ...] [--quick] [--threads 1,2] [--out dir]`.
import os from 'node:os';

export const USAGE = `usage: npm run bench -- [family ...] [options]

  family            one or more of the registered families (default: all of them)
  --quick           fewer shapes and samples: the whole run stays under a minute
  --threads 1,2     thread counts to run every case at (default: 1 and all hardware threads)
  --out DIR         where latest.json / latest.md go (default: bench/results)
  --no-load-time    skip the load-time measurement in the header
  --help            this text`;

/** Parses argv (without node and the script); throws an Error with a message on bad input. */
export function parseArgs(argv, knownFamilies) {
  const hw = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const opts = { families: [], quick: false, threads: null, out: null, loadTime: true, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick' || a === '-q') opts.quick = true;
    else if (a === '--help' || a === '-h') opts.help = true;
    else if (a === '--no-load-time') opts.loadTime = false;
    else if (a === '--threads' || a.startsWith('--threads=')) {
      const list = value()
        .split(',')
        .filter((s) => s.trim() !== '')
        .map((s) => Number(s));
      if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 1024))
        throw new Error(`--threads expects a comma-separated list of integers in [1, 1024]`);
      opts.threads = [...new Set(list)];
    } else if (a === '--out' || a.startsWith('--out=')) opts.out = value();
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (!knownFamilies.includes(a)) throw new Error(`unknown family '${a}' (known: ${knownFamilies.join(', ')})`);
    else if (!opts.families.includes(a)) opts.families.push(a);
  }
  if (opts.families.length === 0) opts.families = [...knownFamilies];
  opts.threads ??= [...new Set([1, hw])];
  opts.hardwareThreads = hw;
  return opts;
}
