/**
 * detcdctl's public surface for the rest of detcd (tests, tools): run the CLI in-process, or
 * talk gRPC to an etcd-compatible server with the same client the CLI uses.
 *
 * @example
 * ```ts
 * import { BufferSink, bytesSource, runCli, StdinReader } from "./mod.ts";
 *
 * const stdout = new BufferSink();
 * const code = await runCli(["version"], {
 *   stdout,
 *   stderr: new BufferSink(),
 *   stdin: new StdinReader(bytesSource("")),
 *   env: [],
 *   now: () => new Date(),
 * });
 * stdout.text(); // "etcdctl version: 3.4.23\nAPI version: 3.4\n", and code is 0
 * ```
 *
 * @module
 */

export { runCli } from "./main.ts";
export { BufferSink, bytesSource, type CliIo, ExitCode, processIo, StdinReader } from "./io.ts";
export {
  type BidiStream,
  type CallOptions,
  Code,
  codeName,
  ConnectError,
  GrpcConnection,
  GrpcError,
  parseEndpoint,
  type ResponseStream,
} from "./grpc_client.ts";
export { type ClientConfig, EtcdClient, EtcdClientError } from "./etcd_client.ts";
