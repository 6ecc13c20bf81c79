import assert from "node:assert/strict";
import {
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { MvccStore } from "../../mvcc/mod.ts";
import { applyPut, range } from "./mod.ts";
import { keys, putReq, rangeReq } from "./_testing.ts";

/**
 * The state etcd 3.4.23 was driven into for these expectations (revisions 2..41):
 *   for i in 00..29: etcdctl put k$i v$((i % 4))
 *   for k in k05 k10 k03 k10 k22 k07 k22 k22 k29 k01: etcdctl put $k x
 * and the outputs below are what `etcdctl get k --prefix --sort-by=... -w json` printed.
 * Ties come out in Go's (unstable) sort.Sort order, which detcd must reproduce.
 */
function etcdState(): MvccStore {
  const store = new MvccStore();
  for (let i = 0; i < 30; i++) {
    applyPut(store, putReq(`k${String(i).padStart(2, "0")}`, `v${i % 4}`));
  }
  for (const k of ["k05", "k10", "k03", "k10", "k22", "k07", "k22", "k22", "k29", "k01"]) {
    applyPut(store, putReq(k, "x"));
  }
  return store;
}

const T = RangeRequest_SortTarget;
const O = RangeRequest_SortOrder;
const ks = (list: string) => list.split(" ").map((n) => `k${n}`);

const table: {
  name: string;
  target: RangeRequest_SortTarget;
  order: RangeRequest_SortOrder;
  limit?: bigint;
  want: string[];
  more?: boolean;
}[] = [
  {
    name: "--sort-by=VERSION --limit=3 (order NONE sorts only the first limit+1 keys)",
    target: T.VERSION,
    order: O.NONE,
    limit: 3n,
    want: ks("00 02 01"),
    more: true,
  },
  {
    name: "--sort-by=VERSION --order=ASCEND --limit=3 (sorts everything, then limits)",
    target: T.VERSION,
    order: O.ASCEND,
    limit: 3n,
    want: ks("21 02 15"),
    more: true,
  },
  {
    name: "--sort-by=VERSION",
    target: T.VERSION,
    order: O.NONE,
    want: ks(
      "21 02 15 14 04 28 06 27 08 09 26 11 12 13 25 24 16 17 18 19 20 00 23 01 29 07 05 03 10 22",
    ),
  },
  {
    name: "--sort-by=VERSION --order=DESCEND",
    target: T.VERSION,
    order: O.DESCEND,
    want: ks(
      "22 10 07 01 29 03 05 14 18 09 06 11 12 13 00 15 16 17 08 19 20 21 04 23 24 25 26 27 28 02",
    ),
  },
  {
    name: "--sort-by=VALUE",
    target: T.VALUE,
    order: O.NONE,
    want: ks(
      "20 28 24 04 08 16 00 12 25 21 13 17 09 14 26 02 06 18 19 23 15 11 27 07 10 05 22 03 01 29",
    ),
  },
  {
    name: "--sort-by=VALUE --order=DESCEND",
    target: T.VALUE,
    order: O.DESCEND,
    want: ks(
      "01 29 03 05 07 22 10 15 27 23 19 11 14 18 02 26 06 21 17 09 13 25 20 08 16 24 12 04 28 00",
    ),
  },
  {
    name: "--sort-by=CREATE --order=DESCEND --limit=5",
    target: T.CREATE,
    order: O.DESCEND,
    limit: 5n,
    want: ks("29 28 27 26 25"),
    more: true,
  },
  {
    name: "--sort-by=KEY --order=DESCEND --limit=5",
    target: T.KEY,
    order: O.DESCEND,
    limit: 5n,
    want: ks("29 28 27 26 25"),
    more: true,
  },
];

Deno.test("sorted ranges list ties in the same order as etcd 3.4.23", () => {
  const store = etcdState();
  assert.equal(store.revision, 41);
  for (const t of table) {
    const resp = range(
      store,
      rangeReq("k", "l", { sortTarget: t.target, sortOrder: t.order, limit: t.limit ?? 0n }),
    );
    assert.deepEqual(keys(resp.kvs), t.want, t.name);
    assert.equal(resp.count, 30n, t.name);
    assert.equal(resp.more, t.more ?? false, t.name);
  }
});

Deno.test("sorting by MOD orders by mod_revision", () => {
  const store = etcdState();
  const asc = range(store, rangeReq("k", "l", { sortTarget: T.MOD, sortOrder: O.ASCEND }));
  const mods = asc.kvs.map((kv) => Number(kv.modRevision));
  assert.deepEqual(mods, [...mods].sort((a, b) => a - b));
  assert.equal(keys(asc.kvs).at(-1), "k01");
});
