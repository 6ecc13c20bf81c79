/**
 * What detcd needs from the platform it runs on, behind core's interfaces: the Deno file system
 * as core's `Disk`. The server (its data directory) and detcdctl (`snapshot restore`) both use
 * it, so neither reaches into the other for it; core itself never touches the platform.
 *
 * @example
 * ```ts
 * import { DenoDisk } from "./mod.ts";
 *
 * const disk = new DenoDisk();
 * const dir = await Deno.makeTempDir();
 * await disk.writeFileAtomic(`${dir}/db`, new Uint8Array([1, 2, 3])); // fsynced, then renamed
 * await disk.readFile(`${dir}/db`); // the three bytes
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export { DenoDisk, openReadAt } from "./deno_disk.ts";
