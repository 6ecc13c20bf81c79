/**
 * The whole-cluster simulation harness: `runSimulation({ seed })` runs one seeded scenario and
 * rejects with a SimulationFailure (seed + reproduce command) when a checker fails. The parts
 * (network, faults, membership changes, workloads, checkers) are modules of their own, imported
 * directly by the harness's own files; README.md has the module map.
 *
 * @example
 * ```ts
 * import { runSimulation } from "./mod.ts";
 *
 * const result = await runSimulation({ seed: 7, chaosMs: 6_000 });
 * console.log(result.eventHash, result.events);
 * ```
 *
 * @module
 */
export { runSimulation, type SimOptions, type SimResult, SimulationFailure } from "./cluster.ts";
export { checkHistory, type Op } from "./history.ts";
export { Prng } from "./prng.ts";
export { SimDisk } from "./sim_disk.ts";
