// CPU used by a server and every process under it, while a benchmark runs: the ward process with its PTY
// children, or OpenSSH's sshd listener with its per-connection sshd and the programs they run.
//
// Why sampled: reading the tree once before and once after misses the processes that end in between, and the
// parent's cutime/cstime does not make up for it: sshd's session process outlives its parent (it ends as a
// zombie of init), so a 300 MB transfer left one clock tick in the listener's cutime while the per-connection
// sshd had used over a second. Each process is read every `intervalMs` and counted from its first to its last
// reading; a process that ends loses at most its last interval.
//
// Why schedstat: /proc/PID/stat counts in clock ticks (10 ms) per process, and 200 sshd processes each using
// under a tick per interval read as zero in total. /proc/PID/schedstat has the run time in nanoseconds.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_NS = 10_000_000; // USER_HZ = 100: the unit of /proc/PID/stat times on Linux

/** Parent of every process. */
function parents(): Map<number, number> {
  const ppid = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name is in parentheses and may hold spaces and ')': the fields start after the last ') '.
      const f = readFileSync(`/proc/${name}/stat`, 'utf8')
        .replace(/^.*\) /s, '')
        .split(' ');
      ppid.set(Number(name), Number(f[1]));
    } catch {
      // the process ended while we looked
    }
  }
  return ppid;
}

/** Nanoseconds of CPU the process has used, or undefined if it is gone. */
function runNs(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
        .replace(/^.*\) /s, '')
        .split(' ')
        .map(Number);
      return (f[11]! + f[12]!) * TICK_NS;
    } catch {
      return undefined;
    }
  }
}

function under(ppid: Map<number, number>, root: number, pid: number): boolean {
  for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; p = ppid.get(p), hops++) {
    if (p === root) return true;
  }
  return false;
}

/**
 * Starts sampling the tree under `root`; stop() ends it and returns the CPU seconds the tree used meanwhile.
 * A reading walks all of /proc (a few ms with hundreds of processes), so long-lived trees can take a long interval.
 */
export function sampleTreeCpu(root: number, intervalMs = 100): { stop(): number } {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  let started = false;
  const sample = () => {
    const ppid = parents();
    for (const pid of ppid.keys()) {
      if (!under(ppid, root, pid)) continue;
      const ns = runNs(pid);
      if (ns === undefined) continue;
      // A process first seen after the start began at zero: count all of its CPU.
      if (!first.has(pid)) first.set(pid, started ? 0 : ns);
      last.set(pid, ns);
    }
  };
  sample();
  started = true;
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      let ns = 0;
      for (const [pid, t] of last) ns += t - first.get(pid)!;
      return ns / 1e9;
    },
  };
}
