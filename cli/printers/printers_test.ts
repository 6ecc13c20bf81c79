import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  DeleteRangeResponseSchema,
  MemberAddResponseSchema,
  MemberListResponseSchema,
  MemberPromoteResponseSchema,
  MemberRemoveResponseSchema,
  MoveLeaderResponseSchema,
  PutResponseSchema,
  RangeResponseSchema,
  ResponseHeaderSchema,
  ResponseOpSchema,
  TxnResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { BufferSink, ExitSignal } from "../io.ts";
import { newPrinter, type PrinterOutput } from "./mod.ts";
import { goCamelCase } from "./go_json.ts";

const enc = new TextEncoder();

function output(): { out: PrinterOutput; stdout: BufferSink; stderr: BufferSink } {
  const stdout = new BufferSink();
  const stderr = new BufferSink();
  return {
    stdout,
    stderr,
    out: {
      stdout: (d) => stdout.write(d),
      stderr: (d) => stderr.write(d),
      fail: (code, message) => {
        stderr.write(`Error: ${message}\n`);
        throw new ExitSignal(code);
      },
    },
  };
}

const header = create(ResponseHeaderSchema, {
  clusterId: 2375181864447732657n,
  memberId: 9368506742490709939n,
  revision: 4n,
  raftTerm: 2n,
});
const kv = create(KeyValueSchema, {
  key: enc.encode("foo"),
  value: enc.encode("b\u00e9<r>"),
  createRevision: 2n,
  modRevision: 4n,
  version: 3n,
});
const range = create(RangeResponseSchema, { header, kvs: [kv], count: 1n });

Deno.test("json printer writes Go's encoding of the gogo structs (omitempty, base64, bare int64)", () => {
  const { out, stdout } = output();
  newPrinter("json", false, out)!.get(range);
  assert.equal(
    stdout.text(),
    '{"header":{"cluster_id":2375181864447732657,"member_id":9368506742490709939,"revision":4,"raft_term":2},' +
      '"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":4,"version":3,"value":"YsOpPHI+"}],"count":1}\n',
  );
});

Deno.test('json printer writes txn oneofs as {"Response":{"ResponsePut":...}}', () => {
  const { out, stdout } = output();
  const txn = create(TxnResponseSchema, {
    header,
    succeeded: true,
    responses: [
      create(ResponseOpSchema, {
        response: {
          case: "responsePut",
          value: create(PutResponseSchema, {
            header: create(ResponseHeaderSchema, { revision: 5n }),
          }),
        },
      }),
      create(ResponseOpSchema, {}),
    ],
  });
  newPrinter("json", false, out)!.txn(txn);
  assert.equal(
    stdout.text(),
    '{"header":{"cluster_id":2375181864447732657,"member_id":9368506742490709939,"revision":4,"raft_term":2},' +
      '"succeeded":true,"responses":[{"Response":{"ResponsePut":{"header":{"revision":5}}}},{"Response":null}]}\n',
  );
  assert.equal(goCamelCase("response_delete_range"), "ResponseDeleteRange");
  assert.equal(goCamelCase("peerURLs"), "PeerURLs");
});

Deno.test("simple printer writes raw bytes, or \\x hex with --hex", () => {
  const raw = output();
  newPrinter("simple", false, raw.out)!.get(range);
  assert.equal(raw.stdout.text(), "foo\nb\u00e9<r>\n");
  const hex = output();
  newPrinter("simple", true, hex.out)!.get(range);
  assert.equal(hex.stdout.text(), "\\x66\\x6f\\x6f\n\\x62\\xc3\\xa9\\x3c\\x72\\x3e\n");
});

Deno.test("fields printer quotes strings like Go's %q", () => {
  const { out, stdout } = output();
  newPrinter("fields", false, out)!.get(range);
  assert.equal(
    stdout.text(),
    [
      '"ClusterID" : 2375181864447732657',
      '"MemberID" : 9368506742490709939',
      '"Revision" : 4',
      '"RaftTerm" : 2',
      '"Key" : "foo"',
      '"CreateRevision" : 2',
      '"ModRevision" : 4',
      '"Version" : 3',
      '"Value" : "bé<r>"',
      '"Lease" : 0',
      '"More" : false',
      '"Count" : 1',
      "",
    ].join("\n"),
  );
});

Deno.test("member list prints hex IDs in simple and table formats", () => {
  const members = create(MemberListResponseSchema, {
    header,
    members: [{
      ID: 0x82039f3eee02bfb3n,
      name: "h2",
      peerURLs: ["http://127.0.0.1:25380"],
      clientURLs: ["http://127.0.0.1:25379"],
    }],
  });
  const simple = output();
  newPrinter("simple", false, simple.out)!.memberList(members);
  assert.equal(
    simple.stdout.text(),
    "82039f3eee02bfb3, started, h2, http://127.0.0.1:25380, http://127.0.0.1:25379, false\n",
  );
  const table = output();
  newPrinter("table", false, table.out)!.memberList(members);
  assert.match(
    table.stdout.text(),
    /\| 82039f3eee02bfb3 \| started \| {3}h2 \| http:\/\/127\.0\.0\.1:25380 \|/,
  );
});

Deno.test("formats without a result kind fail with exit code 4", () => {
  const calls: [string, (p: ReturnType<typeof newPrinter>) => void][] = [
    ["table", (p) => p!.get(range)],
    ["protobuf", (p) => p!.endpointStatus([])],
  ];
  for (const [format, call] of calls) {
    const { out, stderr } = output();
    assert.throws(
      () => call(newPrinter(format, false, out)),
      (e: unknown) => e instanceof ExitSignal && e.code === 4,
    );
    assert.equal(stderr.text(), `Error: ${format} not supported as output format\n`);
  }
  assert.equal(newPrinter("yaml", false, output().out), undefined);
});

Deno.test("member add, remove and move-leader print etcdctl's simple lines (%16x pads IDs)", () => {
  const o = output();
  const p = newPrinter("simple", false, o.out)!;
  p.memberAdd(create(MemberAddResponseSchema, { header, member: { ID: 0xabcn } }));
  p.memberRemove(0x10a6e1366f720547n, create(MemberRemoveResponseSchema, { header }));
  p.moveLeader(0x1n, 0x10a6e1366f720547n, create(MoveLeaderResponseSchema, { header }));
  assert.equal(
    o.stdout.text(),
    "Member              abc added to cluster 20f657524b5b6bb1\n" +
      "Member 10a6e1366f720547 removed from cluster 20f657524b5b6bb1\n" +
      "Leadership transferred from 1 to 10a6e1366f720547\n",
  );
});

Deno.test("member promote panics in every format but simple, after the promotion", () => {
  for (const format of ["json", "protobuf", "table", "fields"]) {
    const o = output();
    const p = newPrinter(format, false, o.out)!;
    assert.throws(
      () => p.memberPromote(1n, create(MemberPromoteResponseSchema, { header })),
      (e) => e instanceof ExitSignal && e.code === 2,
    );
    assert.match(o.stderr.text(), /^panic: runtime error: invalid memory address/);
  }
});

Deno.test("member add and move-leader are unsupported by table and fields (exit 4)", () => {
  for (const format of ["table", "fields"]) {
    const o = output();
    const p = newPrinter(format, false, o.out)!;
    assert.throws(
      () => p.memberAdd(create(MemberAddResponseSchema, { header })),
      (e) => e instanceof ExitSignal && e.code === 4,
    );
    assert.throws(
      () => p.moveLeader(1n, 2n, create(MoveLeaderResponseSchema, { header })),
      (e) => e instanceof ExitSignal && e.code === 4,
    );
    assert.equal(o.stderr.text(), `Error: ${format} not supported as output format\n`.repeat(2));
  }
});

Deno.test("simple and fields printers walk a txn's responses alike, unknown ones included", () => {
  const txn = create(TxnResponseSchema, {
    header,
    succeeded: false,
    responses: [
      create(ResponseOpSchema, {
        response: { case: "responsePut", value: create(PutResponseSchema, { header }) },
      }),
      create(ResponseOpSchema, { response: { case: "responseRange", value: range } }),
      create(ResponseOpSchema, {
        response: {
          case: "responseDeleteRange",
          value: create(DeleteRangeResponseSchema, { header, deleted: 1n, prevKvs: [kv] }),
        },
      }),
      create(ResponseOpSchema, {}),
    ],
  });
  const simple = output();
  newPrinter("simple", false, simple.out)!.txn(txn);
  assert.equal(
    simple.stdout.text(),
    "FAILURE\n\nOK\n\nfoo\nb\u00e9<r>\n\n1\nfoo\nb\u00e9<r>\n\nunexpected response null\n",
  );
  const fields = output();
  newPrinter("fields", false, fields.out)!.txn(txn);
  const lines = fields.stdout.text().split("\n");
  assert.equal(lines.filter((l) => l.startsWith('"Revision"')).length, 4);
  assert.deepEqual(lines.filter((l) => /^"(Succeeded|Deleted|Count|More|Unknown)"/.test(l)), [
    '"Succeeded" : false',
    '"More" : false',
    '"Count" : 1',
    '"Deleted" : 1',
    '"Unknown" : "<nil>"',
  ]);
});
