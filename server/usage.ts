import { etcdFlags } from "./config.ts";

/** `detcd --help`: the flags detcd accepts, with etcd's defaults. */
export const usage = [
  "Usage:",
  "",
  "  detcd [flags]",
  "    Start an etcd-compatible server.",
  "",
  "  detcd --version",
  "    Show the version of etcd that detcd is compatible with.",
  "",
  "  detcd -h | --help",
  "    Show this help.",
  "",
  "  detcd --config-file",
  "    Path to a YAML configuration file with the same keys as the flags; when given, other",
  "    command line flags and environment variables are ignored.",
  "",
  "Flags (each can also be set as ETCD_<FLAG_NAME>, e.g. ETCD_DATA_DIR):",
  "",
  ...etcdFlags.map(([name, , def]) => `  --${name} '${def}'`),
].join("\n");
