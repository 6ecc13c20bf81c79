/**
 * The whole-cluster simulation harness: `runSimulation({ seed })` runs one seeded scenario and
 * rejects with a SimulationFailure (seed + reproduce command) when a checker fails.
 */
export { runSimulation, type SimOptions, type SimResult, SimulationFailure } from "./cluster.ts";
export { checkHistory, type Op } from "./history.ts";
export { Prng } from "./prng.ts";
export { SimDisk } from "./sim_disk.ts";
