/**
 * Runs a range of seeds and lists every failure instead of stopping at the first (for hunting
 * bugs, not for CI): `deno run -A tests/simulation/sweep.ts 1 1000`. DETCD_SIM_WAL_ROLL=1 and
 * DETCD_SIM_STRICT_PEERS=1 switch on the scenarios the simulation test leaves out by default.
 * Prints the failing seeds and, summed over the passing ones, every counter of the runs' stats
 * (operations checked, crashes, partitions, compactions, seeds the checker left undecided, ...).
 */
import { runSimulation } from "./mod.ts";

const from = Number(Deno.args[0] ?? 1);
const to = Number(Deno.args[1] ?? from + 99);
const walRoll = Deno.env.get("DETCD_SIM_WAL_ROLL") === "1";
const learnRemotes = Deno.env.get("DETCD_SIM_STRICT_PEERS") !== "1";
const started = performance.now();
let events = 0;
let simulatedMs = 0;
const failed: number[] = [];
/** Every counter of SimStats summed over the passing seeds. */
const totals: Record<string, number> = {};
for (let seed = from; seed <= to; seed++) {
  try {
    const result = await runSimulation({ seed, walRoll, learnRemotes });
    events += result.events;
    simulatedMs += result.simulatedMs;
    for (const [name, value] of Object.entries(result.stats)) {
      if (typeof value === "number") totals[name] = (totals[name] ?? 0) + value;
    }
    if ((seed - from + 1) % 1000 === 0) {
      const s = ((performance.now() - started) / 1000).toFixed(0);
      console.log(`${seed - from + 1} seeds done (${failed.length} failed), ${s}s`);
    }
  } catch (e) {
    failed.push(seed);
    console.log(`FAIL ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}`);
  }
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(
  `${to - from + 1} seeds, ${failed.length} failed [${failed.join(" ")}], ${events} events, ${
    (simulatedMs / 3_600_000).toFixed(2)
  } simulated hours, ${seconds}s`,
);
console.log(`totals over the passing seeds: ${JSON.stringify(totals)}`);
