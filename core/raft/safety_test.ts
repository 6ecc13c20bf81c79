import { assert } from "../testing.ts";
import { Network, seededRandomInt } from "./_testing.ts";
import { type NodeId, ProposalDroppedError, StateType } from "./types.ts";

/**
 * Randomized scenarios (partitions, crashes/restarts, message loss, compaction) checking Raft's
 * safety properties after every step: at most one leader per term, and every member's applied
 * sequence is a prefix of the longest one (state machine safety). Each failure names its seed.
 */
function runSeed(seed: number, preVote: boolean): void {
  const rnd = seededRandomInt(seed);
  const ids: NodeId[] = [1n, 2n, 3n, 4n, 5n];
  const net = Network.bootstrap(ids, { seed, preVote, checkQuorum: preVote });
  net.deliver();
  const leaders = new Map<number, NodeId>();
  let proposals = 0;
  for (let step = 0; step < 400; step++) {
    const r = rnd(100);
    if (r < 5) {
      const cut = ids.filter(() => rnd(2) === 0);
      net.partition(cut, ids.filter((x) => !cut.includes(x)));
    } else if (r < 10) {
      net.heal();
    } else if (r < 12) {
      const id = ids[rnd(ids.length)];
      if (net.isDown(id)) net.restart(id);
      else if (ids.filter((x) => net.isDown(x)).length < 2) net.crash(id);
    } else if (r < 14) {
      const id = ids[rnd(ids.length)];
      const n = net.node(id);
      if (!net.isDown(id) && n.appliedIndex > n.storage.firstIndex()) n.compact();
    } else if (r < 40) {
      const id = ids[rnd(ids.length)];
      if (!net.isDown(id)) {
        try {
          net.propose(id, `p${proposals++}`);
        } catch (e) {
          if (!(e instanceof ProposalDroppedError)) throw e;
        }
      }
    }
    net.drop = rnd(10) === 0 ? () => rnd(5) === 0 : null;
    net.tickAll(1);
    net.deliver();
    for (const id of ids) {
      if (net.isDown(id)) continue;
      const st = net.node(id).raw.status();
      if (st.state !== StateType.Leader) continue;
      const prev = leaders.get(st.term);
      assert(prev === undefined || prev === id, `seed ${seed}: two leaders in term ${st.term}`);
      leaders.set(st.term, id);
    }
    let longest: string[] = [];
    for (const id of ids) {
      const a = net.node(id).applied;
      if (a.length > longest.length) longest = a;
    }
    for (const id of ids) {
      const a = net.node(id).applied;
      for (let i = 0; i < a.length; i++) {
        assert(
          a[i] === longest[i],
          `seed ${seed} step ${step}: node ${id} applied diverges at ${i}`,
        );
      }
    }
  }
  // Liveness once healed: everything converges.
  net.heal();
  net.drop = null;
  for (const id of ids) if (net.isDown(id)) net.restart(id);
  for (let i = 0; i < 100; i++) {
    net.tickAll(1);
    net.deliver();
  }
  const lead = net.leader();
  assert(lead !== 0n, `seed ${seed}: no leader after healing`);
  net.propose(lead, "final");
  for (let i = 0; i < 5; i++) {
    net.tickAll(1);
    net.deliver();
  }
  const want = net.node(lead).applied;
  for (const id of ids) {
    assert(
      JSON.stringify(net.node(id).applied) === JSON.stringify(want),
      `seed ${seed}: node ${id} did not converge`,
    );
  }
}

Deno.test("safety: random partitions, crashes, loss and compaction keep logs consistent", () => {
  for (let seed = 1; seed <= 15; seed++) runSeed(seed, false);
});

Deno.test("safety: the same with PreVote and CheckQuorum", () => {
  for (let seed = 100; seed <= 115; seed++) runSeed(seed, true);
});
