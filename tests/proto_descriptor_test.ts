/**
 * Guards the wire contract: detcd's proto/ holds copies of etcd 3.4's API protos with options and
 * comments stripped (scripts/import_protos.ts), and real etcd clients only work if every message,
 * field (name, number, type, label, type name, oneof), enum value and RPC method (path, types,
 * streaming) stayed exactly what etcd ships. This compares the descriptors generated into gen/
 * against descriptors compiled from Debian's original .proto files, field by field.
 *
 * Their side is a FileDescriptorSet committed in tests/testdata/etcd_protos/etcd_api.binpb, so
 * the comparison runs anywhere. When Debian's sources (golang-etcd-server-dev and its gogoproto
 * and googleapis dependencies) and buf are present, another test recompiles them and checks the
 * committed set still says the same; `DETCD_UPDATE_TESTDATA=1` makes it rewrite the file.
 */
import assert from "node:assert/strict";
import {
  clearField,
  clone,
  createFileRegistry,
  type DescEnum,
  type DescFile,
  type DescMessage,
  fromBinary,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { file_authpb_auth } from "../gen/authpb/auth_pb.ts";
import { file_etcdserverpb_rpc } from "../gen/etcdserverpb/rpc_pb.ts";
import { file_mvccpb_kv } from "../gen/mvccpb/kv_pb.ts";
import { file_v3electionpb_v3election } from "../gen/v3electionpb/v3election_pb.ts";
import { file_v3lockpb_v3lock } from "../gen/v3lockpb/v3lock_pb.ts";

/** The etcd API packages detcd must serve wire-identically. */
const API_PACKAGES = ["etcdserverpb", "mvccpb", "authpb", "v3electionpb", "v3lockpb"];

const OUR_FILES: DescFile[] = [
  file_mvccpb_kv,
  file_authpb_auth,
  file_etcdserverpb_rpc,
  file_v3electionpb_v3election,
  file_v3lockpb_v3lock,
];

const COMMITTED_SET = new URL("./testdata/etcd_protos/etcd_api.binpb", import.meta.url);

/** Where Debian puts the originals, and where each lands in the import tree etcd's files expect. */
const DEBIAN_ETCD = "/usr/share/gocode/src/go.etcd.io/etcd";
const DEBIAN_SOURCES: Record<string, string> = {
  [`${DEBIAN_ETCD}/mvcc/mvccpb/kv.proto`]: "etcd/mvcc/mvccpb/kv.proto",
  [`${DEBIAN_ETCD}/auth/authpb/auth.proto`]: "etcd/auth/authpb/auth.proto",
  [`${DEBIAN_ETCD}/etcdserver/etcdserverpb/rpc.proto`]: "etcd/etcdserver/etcdserverpb/rpc.proto",
  [`${DEBIAN_ETCD}/etcdserver/api/v3election/v3electionpb/v3election.proto`]:
    "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
  [`${DEBIAN_ETCD}/etcdserver/api/v3lock/v3lockpb/v3lock.proto`]:
    "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
  "/usr/share/gocode/src/github.com/gogo/protobuf/gogoproto/gogo.proto": "gogoproto/gogo.proto",
  "/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis/google/api/annotations.proto":
    "google/api/annotations.proto",
  "/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis/google/api/http.proto":
    "google/api/http.proto",
};
const BUF = new URL("../node_modules/.bin/buf", import.meta.url).pathname;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const canRebuild = exists(BUF) && Object.keys(DEBIAN_SOURCES).every(exists);

// ---------------------------------------------------------------------------------------------
// The contract: one line per wire-relevant fact, so a difference reads as a one-line diff.

function describeMessage(message: DescMessage, lines: string[]): void {
  const name = message.typeName;
  lines.push(`message ${name}`);
  for (const oneof of message.oneofs) {
    lines.push(`oneof ${name}.${oneof.name} {${oneof.fields.map((f) => f.name).join(", ")}}`);
  }
  for (const field of message.fields) {
    const proto = field.proto;
    const type = FieldDescriptorProto_Type[proto.type] ?? `type#${proto.type}`;
    const label = FieldDescriptorProto_Label[proto.label] ?? `label#${proto.label}`;
    const typeName = proto.typeName === "" ? "" : ` ${proto.typeName}`;
    const oneof = field.oneof ? ` oneof=${field.oneof.name}` : "";
    const optional = proto.proto3Optional ? " proto3_optional" : "";
    const packed = field.fieldKind === "list" && field.packed ? " packed" : "";
    lines.push(
      `field ${name}.${field.name} = ${field.number} ${label} ${type}${typeName}${oneof}` +
        `${optional}${packed} json=${field.jsonName}`,
    );
  }
  for (const nested of message.nestedEnums) describeEnum(nested, lines);
  for (const nested of message.nestedMessages) describeMessage(nested, lines);
}

function describeEnum(descEnum: DescEnum, lines: string[]): void {
  lines.push(`enum ${descEnum.typeName}`);
  for (const value of descEnum.values) {
    lines.push(`value ${descEnum.typeName}.${value.name} = ${value.number}`);
  }
}

/** Every wire-relevant fact of one package, sorted, from whichever files declare it. */
function contractOf(files: Iterable<DescFile>, packageName: string): string[] {
  const lines: string[] = [];
  for (const file of files) {
    if (file.proto.package !== packageName) continue;
    lines.push(`package ${packageName} syntax=${file.proto.syntax}`);
    for (const message of file.messages) describeMessage(message, lines);
    for (const descEnum of file.enums) describeEnum(descEnum, lines);
    for (const service of file.services) {
      lines.push(`service ${service.typeName}`);
      for (const method of service.methods) {
        lines.push(
          `rpc ${service.typeName}/${method.name}(${
            method.proto.clientStreaming ? "stream " : ""
          }${method.input.typeName}) returns (${
            method.proto.serverStreaming ? "stream " : ""
          }${method.output.typeName}) kind=${method.methodKind}`,
        );
      }
    }
  }
  return lines.sort();
}

/** Lines only one side has; both empty means the packages are wire-identical. */
function contractDiff(
  ours: string[],
  theirs: string[],
): { onlyOurs: string[]; onlyTheirs: string[] } {
  const theirSet = new Set(theirs);
  const ourSet = new Set(ours);
  return {
    onlyOurs: ours.filter((line) => !theirSet.has(line)),
    onlyTheirs: theirs.filter((line) => !ourSet.has(line)),
  };
}

function assertSameContract(
  packageName: string,
  ours: string[],
  theirs: string[],
  labels = { ours: "ours", theirs: "etcd" },
): void {
  assert.ok(theirs.length > 0, `${labels.theirs} side has no package ${packageName}`);
  assert.ok(ours.length > 0, `${labels.ours} side has no package ${packageName}`);
  const { onlyOurs, onlyTheirs } = contractDiff(ours, theirs);
  if (onlyOurs.length === 0 && onlyTheirs.length === 0) return;
  assert.fail(
    `package ${packageName} differs from etcd 3.4 (${labels.ours} vs ${labels.theirs}):\n` +
      onlyTheirs.map((line) => `  - ${labels.theirs}: ${line}`).join("\n") + "\n" +
      onlyOurs.map((line) => `  + ${labels.ours}: ${line}`).join("\n"),
  );
}

function loadSet(bytes: Uint8Array): DescFile[] {
  return [...createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes)).files];
}

/** Compiles Debian's originals with buf into a FileDescriptorSet (no source info: smaller). */
async function buildDebianSet(): Promise<Uint8Array> {
  const workspace = await Deno.makeTempDir({ prefix: "detcd-etcd-protos-" });
  try {
    for (const [source, target] of Object.entries(DEBIAN_SOURCES)) {
      const path = `${workspace}/${target}`;
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.copyFile(source, path);
    }
    await Deno.writeTextFile(`${workspace}/buf.yaml`, "version: v2\n");
    const output = await new Deno.Command(BUF, {
      args: ["build", workspace, "--exclude-source-info", "-o", `${workspace}/set.binpb`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(`buf build failed: ${new TextDecoder().decode(output.stderr)}`);
    }
    return await Deno.readFile(`${workspace}/set.binpb`);
  } finally {
    await Deno.remove(workspace, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------

const etcdFiles = loadSet(await Deno.readFile(COMMITTED_SET));

Deno.test("the committed etcd descriptor set declares every API package with its services", () => {
  const packages = new Set(etcdFiles.map((file) => file.proto.package));
  for (const packageName of API_PACKAGES) assert.ok(packages.has(packageName), packageName);
  const services = etcdFiles.flatMap((file) => file.services.map((s) => s.typeName)).sort();
  assert.deepEqual(services, [
    "etcdserverpb.Auth",
    "etcdserverpb.Cluster",
    "etcdserverpb.KV",
    "etcdserverpb.Lease",
    "etcdserverpb.Maintenance",
    "etcdserverpb.Watch",
    "v3electionpb.Election",
    "v3lockpb.Lock",
  ]);
});

for (const packageName of API_PACKAGES) {
  Deno.test(`gen/ descriptors of package ${packageName} match etcd 3.4 field by field`, () => {
    assertSameContract(
      packageName,
      contractOf(OUR_FILES, packageName),
      contractOf(etcdFiles, packageName),
      { ours: "gen/", theirs: "etcd" },
    );
  });
}

/** Our rpc.proto descriptor, edited, resolved against our other generated files. */
function editedRpcFile(edit: (file: FileDescriptorProto) => void): DescFile {
  const proto = clone(FileDescriptorProtoSchema, file_etcdserverpb_rpc.proto);
  edit(proto);
  const dependencies: Record<string, DescFile> = {
    [file_mvccpb_kv.proto.name]: file_mvccpb_kv,
    [file_authpb_auth.proto.name]: file_authpb_auth,
  };
  const registry = createFileRegistry(proto, (name) => dependencies[name]);
  const file = registry.getFile(proto.name);
  assert.ok(file);
  return file;
}

function messageProto(file: FileDescriptorProto, name: string) {
  const message = file.messageType.find((m) => m.name === name);
  assert.ok(message, name);
  return message;
}

function fieldProto(file: FileDescriptorProto, messageName: string, fieldName: string) {
  const field = messageProto(file, messageName).field.find((f) => f.name === fieldName);
  assert.ok(field, `${messageName}.${fieldName}`);
  return field;
}

const wireChanges: {
  change: string;
  edit: (file: FileDescriptorProto) => void;
  /** A fragment of the etcd-side line the diff must report as missing from ours. */
  missing: string;
}[] = [
  {
    change: "a renumbered field",
    edit: (f) => fieldProto(f, "RangeRequest", "limit").number = 33,
    missing: "field etcdserverpb.RangeRequest.limit = 3 ",
  },
  {
    change: "a renamed field",
    edit: (f) => fieldProto(f, "PutRequest", "prev_kv").name = "prevkv",
    missing: "field etcdserverpb.PutRequest.prev_kv = 4",
  },
  {
    change: "a field of another scalar type",
    edit: (f) =>
      fieldProto(f, "ResponseHeader", "revision").type = FieldDescriptorProto_Type.UINT64,
    missing: "field etcdserverpb.ResponseHeader.revision = 3 OPTIONAL INT64",
  },
  {
    change: "a singular field made repeated",
    edit: (f) => fieldProto(f, "RangeRequest", "key").label = FieldDescriptorProto_Label.REPEATED,
    missing: "field etcdserverpb.RangeRequest.key = 1 OPTIONAL BYTES",
  },
  {
    change: "a message field pointing at another message",
    edit: (f) => fieldProto(f, "RangeResponse", "kvs").typeName = ".mvccpb.Event",
    missing: "field etcdserverpb.RangeResponse.kvs = 2 REPEATED MESSAGE .mvccpb.KeyValue",
  },
  {
    change: "a field taken out of its oneof",
    edit: (f) =>
      clearField(fieldProto(f, "Compare", "lease"), FieldDescriptorProtoSchema.field.oneofIndex),
    missing: "field etcdserverpb.Compare.lease = 8 OPTIONAL INT64 oneof=target_union",
  },
  {
    change: "a renumbered enum value",
    edit: (f) => {
      const sortOrder = messageProto(f, "RangeRequest").enumType.find((e) =>
        e.name === "SortOrder"
      );
      assert.ok(sortOrder);
      sortOrder.value[2].number = 5;
    },
    missing: "value etcdserverpb.RangeRequest.SortOrder.DESCEND = 2",
  },
  {
    change: "a renamed enum value",
    edit: (f) => {
      const alarmType = f.enumType.find((e) => e.name === "AlarmType");
      assert.ok(alarmType);
      alarmType.value[1].name = "NO_SPACE";
    },
    missing: "value etcdserverpb.AlarmType.NOSPACE = 1",
  },
  {
    change: "a bidirectional stream made unary",
    edit: (f) => {
      const watch = f.service.find((s) => s.name === "Watch");
      assert.ok(watch);
      watch.method[0].clientStreaming = false;
      watch.method[0].serverStreaming = false;
    },
    missing: "rpc etcdserverpb.Watch/Watch(stream etcdserverpb.WatchRequest) returns (stream",
  },
  {
    change: "a method with another request type",
    edit: (f) => {
      const kv = f.service.find((s) => s.name === "KV");
      assert.ok(kv);
      kv.method[1].inputType = ".etcdserverpb.RangeRequest";
    },
    missing: "rpc etcdserverpb.KV/Put(etcdserverpb.PutRequest)",
  },
  {
    change: "a message dropped",
    edit: (f) => {
      f.messageType = f.messageType.filter((m) => m.name !== "HashKVRequest");
      const maintenance = f.service.find((s) => s.name === "Maintenance");
      assert.ok(maintenance);
      maintenance.method = maintenance.method.filter((m) => m.name !== "HashKV");
    },
    missing: "message etcdserverpb.HashKVRequest",
  },
];

for (const { change, edit, missing } of wireChanges) {
  Deno.test(`the contract comparison reports ${change}`, () => {
    const ours = contractOf(
      [editedRpcFile(edit), file_mvccpb_kv, file_authpb_auth],
      "etcdserverpb",
    );
    const theirs = contractOf(etcdFiles, "etcdserverpb");
    const { onlyTheirs } = contractDiff(ours, theirs);
    assert.ok(
      onlyTheirs.some((line) => line.startsWith(missing)),
      `expected a missing line starting with "${missing}", got:\n${onlyTheirs.join("\n")}`,
    );
    assert.throws(() => assertSameContract("etcdserverpb", ours, theirs), /differs from etcd 3\.4/);
  });
}

Deno.test({
  name: "the committed etcd descriptor set matches a fresh buf build of Debian's protos",
  ignore: !canRebuild,
  fn: async () => {
    const fresh = await buildDebianSet();
    const updating = Deno.env.get("DETCD_UPDATE_TESTDATA") === "1";
    if (updating) await Deno.writeFile(COMMITTED_SET, fresh);
    const freshFiles = loadSet(fresh);
    for (const packageName of API_PACKAGES) {
      if (!updating) {
        assertSameContract(
          packageName,
          contractOf(etcdFiles, packageName),
          contractOf(freshFiles, packageName),
          { ours: "committed set", theirs: "fresh build" },
        );
      }
      // And ours against the fresh build directly, so a stale committed set cannot hide drift.
      assertSameContract(
        packageName,
        contractOf(OUR_FILES, packageName),
        contractOf(freshFiles, packageName),
        { ours: "gen/", theirs: "fresh build" },
      );
    }
  },
});
