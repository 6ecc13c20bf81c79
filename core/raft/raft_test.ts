import { assert, assertEquals, assertThrows } from "../testing.ts";
import { ctxString, Network, TestNode } from "./_testing.ts";
import { encodeConfChange } from "./codec.ts";
import { MemoryStorage } from "./memory_storage.ts";
import { newMessage } from "./raft.ts";
import { RawNode } from "./raw_node.ts";
import {
  ConfChangeType,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  none,
  ProposalDroppedError,
  StateType,
} from "./types.ts";

const te = new TextEncoder();

function state(net: Network, id: NodeId): StateType {
  return net.node(id).raw.status().state;
}

function threeNodes(opts = {}): Network {
  const net = Network.bootstrap([1n, 2n, 3n], opts);
  net.deliver();
  return net;
}

/** Collects messages of one Ready of `n` without delivering them. */
function drain(n: TestNode): Message[] {
  const out: Message[] = [];
  while (n.raw.hasReady()) out.push(...n.handleReady());
  return out;
}

// ---------------------------------------------------------------------------------------------
// §5.1 Terms

Deno.test("§5.1 a follower that sees a higher term adopts it and forgets its vote", () => {
  const net = threeNodes();
  net.elect(1n);
  const n3 = net.node(3n);
  assertEquals(n3.raw.status().vote, 1n);
  const m = newMessage(MessageType.Heartbeat, 3n, 2n, 5);
  n3.raw.step(m);
  const st = n3.raw.status();
  assertEquals(st.term, 5);
  assertEquals(st.vote, none);
  assertEquals(st.lead, 2n);
});

Deno.test("§5.1 a message with a stale term is ignored", () => {
  const net = threeNodes();
  net.elect(1n);
  const n2 = net.node(2n);
  const before = n2.raw.status();
  const app = newMessage(MessageType.App, 2n, 3n, before.term - 1);
  app.entries = [{ term: 1, index: 99, type: EntryType.Normal, data: te.encode("x") }];
  n2.raw.step(app);
  drain(n2);
  assertEquals(n2.raw.status().term, before.term);
  assertEquals(n2.raw.status().lead, 1n);
});

Deno.test("§5.1 a leader that sees a higher term steps down", () => {
  const net = threeNodes();
  net.elect(1n);
  const n1 = net.node(1n);
  n1.raw.step(newMessage(MessageType.AppResp, 1n, 2n, n1.raw.status().term + 1));
  assertEquals(n1.raw.status().state, StateType.Follower);
});

// ---------------------------------------------------------------------------------------------
// §5.2 Leader election

Deno.test("§5.2 a candidate with votes from a majority becomes leader", () => {
  const net = threeNodes();
  net.elect(1n);
  assertEquals(state(net, 1n), StateType.Leader);
  assertEquals(state(net, 2n), StateType.Follower);
  assertEquals(net.node(2n).raw.status().lead, 1n);
  assertEquals(net.node(1n).raw.status().term, 2);
});

Deno.test("§5.2 a follower campaigns after its randomized election timeout", () => {
  const net = threeNodes();
  // Election timeout is randomized in [10, 20): after 20 ticks some node must have campaigned.
  for (let i = 0; i < 20 && net.leader() === none; i++) {
    net.tickAll();
    net.deliver();
  }
  assert(net.leader() !== none, "a leader was elected");
});

Deno.test("§5.2 the randomized election timeout lies in [electionTicks, 2*electionTicks)", () => {
  for (let seed = 1; seed < 30; seed++) {
    const net = Network.bootstrap([1n, 2n, 3n], { seed });
    net.deliver();
    const n = net.node(1n);
    let ticks = 0;
    while (n.raw.status().state === StateType.Follower && ticks < 100) {
      n.raw.tick();
      ticks++;
    }
    assert(ticks >= 10 && ticks < 20, `seed ${seed}: campaigned after ${ticks} ticks`);
  }
});

Deno.test("§5.2 a candidate without a majority does not become leader", () => {
  const net = threeNodes();
  net.partition([1n], [2n, 3n]);
  net.elect(1n);
  assertEquals(state(net, 1n), StateType.Candidate);
});

Deno.test("§5.2 each member votes for at most one candidate per term", () => {
  const net = threeNodes();
  const n3 = net.node(3n);
  const v1 = newMessage(MessageType.Vote, 3n, 1n, 2);
  v1.index = 3;
  v1.logTerm = 1;
  n3.raw.step(v1);
  const v2 = { ...v1, from: 2n };
  n3.raw.step(v2);
  const msgs = drain(n3);
  assertEquals(msgs.map((m) => [m.to, m.type, m.reject]), [
    [1n, MessageType.VoteResp, false],
    [2n, MessageType.VoteResp, true],
  ]);
});

Deno.test("§5.2 a candidate that hears from a leader of the same term steps down", () => {
  const net = threeNodes();
  net.partition([1n], [2n, 3n]);
  net.elect(1n);
  assertEquals(state(net, 1n), StateType.Candidate);
  const n1 = net.node(1n);
  n1.raw.step(newMessage(MessageType.Heartbeat, 1n, 2n, n1.raw.status().term));
  assertEquals(state(net, 1n), StateType.Follower);
  assertEquals(n1.raw.status().lead, 2n);
});

Deno.test("§5.2 a single-voter cluster becomes leader on campaign without messages", () => {
  const net = Network.bootstrap([1n]);
  net.deliver();
  net.node(1n).raw.campaign();
  assertEquals(state(net, 1n), StateType.Leader);
  net.propose(1n, "a");
  net.deliver();
  assertEquals(net.node(1n).applied, ["a"]);
});

Deno.test("§5.2 votes are persisted (mustSync) before the vote response is sent", () => {
  const net = threeNodes();
  const n2 = net.node(2n);
  const v = newMessage(MessageType.Vote, 2n, 1n, 2);
  v.index = 3;
  v.logTerm = 1;
  n2.raw.step(v);
  const rd = n2.raw.ready();
  assertEquals(rd.hardState?.vote, 1n);
  assert(rd.mustSync, "mustSync");
  assertEquals(rd.messages.length, 1);
});

// ---------------------------------------------------------------------------------------------
// §5.3 Log replication

Deno.test("§5.3 a committed proposal is applied on every member in order", () => {
  const net = threeNodes();
  net.elect(1n);
  for (const s of ["a", "b", "c"]) net.propose(1n, s);
  net.deliver();
  for (const id of net.ids()) assertEquals(net.node(id).applied, ["a", "b", "c"]);
});

Deno.test("§5.3 a follower forwards proposals to the leader", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(3n, "from-3");
  net.deliver();
  for (const id of net.ids()) assertEquals(net.node(id).applied, ["from-3"]);
});

Deno.test("§5.3 propose throws ProposalDroppedError when no leader is known", () => {
  const net = threeNodes();
  assertThrows(() => net.propose(2n, "x"), ProposalDroppedError);
});

Deno.test("§5.3 a lagging follower is caught up, conflicting tail replaced", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  // 1 is cut off and appends entries nobody else gets.
  net.isolate(1n);
  net.propose(1n, "lost1");
  net.propose(1n, "lost2");
  net.deliver();
  net.partition([1n], [2n, 3n]);
  net.elect(2n);
  net.propose(2n, "b");
  net.deliver();
  net.heal();
  net.tickAll(1);
  net.deliver();
  for (const id of net.ids()) assertEquals(net.node(id).applied, ["a", "b"], `node ${id}`);
  assertEquals(state(net, 1n), StateType.Follower);
});

Deno.test("§5.3 a far-behind follower is found fast via rejectHint (not one index per round)", () => {
  const net = threeNodes();
  net.elect(1n);
  net.crash(3n);
  for (let i = 0; i < 200; i++) net.propose(1n, `e${i}`);
  net.deliver();
  net.restart(3n);
  const before = net.delivered;
  net.tickAll(1);
  net.deliver();
  assertEquals(net.node(3n).applied.length, 200);
  assert(net.delivered - before < 20, `${net.delivered - before} messages`);
});

Deno.test("§5.3 pipelining is bounded by maxInflightMsgs", () => {
  const net = Network.bootstrap([1n, 2n], { maxInflightMsgs: 3, maxSizePerMsg: 1 });
  net.deliver();
  net.elect(1n);
  net.partition([1n], [2n]);
  for (let i = 0; i < 10; i++) net.propose(1n, `e${i}`);
  net.flushReadies();
  const apps = net.inFlight.filter((m) => m.type === MessageType.App && m.to === 2n);
  assertEquals(apps.length, 3);
  net.inFlight = [];
});

Deno.test("§5.3 maxSizePerMsg bounds entries per append (at least one goes)", () => {
  const net = Network.bootstrap([1n, 2n], { maxSizePerMsg: 20 });
  net.deliver();
  net.elect(1n);
  net.crash(2n);
  for (let i = 0; i < 5; i++) net.propose(1n, "0123456789");
  net.deliver();
  net.restart(2n);
  net.tickAll(1);
  net.flushReadies();
  let maxEnts = 0;
  let rounds = 0;
  while (net.inFlight.length > 0 && rounds++ < 100) {
    for (const m of net.inFlight) {
      if (m.type === MessageType.App) maxEnts = Math.max(maxEnts, m.entries.length);
    }
    net.deliverRound();
  }
  assertEquals(maxEnts, 1);
  assertEquals(net.node(2n).applied.length, 5);
});

Deno.test("§5.3 heartbeats carry commit = min(follower match, leader commit)", () => {
  const net = threeNodes();
  net.elect(1n);
  net.partition([1n, 2n], [3n]);
  net.propose(1n, "a");
  net.deliver();
  net.heal();
  net.tick(1n);
  net.flushReadies();
  const hb = net.inFlight.filter((m) => m.type === MessageType.Heartbeat);
  const leader = net.node(1n).raw.status();
  const to3 = hb.find((m) => m.to === 3n)!;
  const to2 = hb.find((m) => m.to === 2n)!;
  assertEquals(to2.commit, leader.commit);
  assertEquals(to3.commit, leader.progress.get(3n)!.match);
  assert(to3.commit < leader.commit, "follower 3 is behind");
  net.deliver();
});

Deno.test("§5.3 the leader counts its own new entries only after advance (durability)", () => {
  const net = Network.bootstrap([1n]);
  net.deliver();
  net.node(1n).raw.campaign();
  net.deliver();
  const n = net.node(1n);
  const commitBefore = n.raw.status().commit;
  n.raw.propose(te.encode("x"));
  const rd = n.raw.ready();
  assertEquals(rd.entries.length, 1);
  assertEquals(rd.committedEntries.length, 0);
  assertEquals(n.raw.status().commit, commitBefore);
  assertEquals(n.raw.status().progress.get(1n)!.match, commitBefore);
  n.storage.append(rd.entries);
  n.raw.advance(rd);
  assertEquals(n.raw.status().commit, commitBefore + 1);
  const rd2 = n.raw.ready();
  assertEquals(rd2.committedEntries.map((e) => e.index), [commitBefore + 1]);
  n.raw.advance(rd2);
});

Deno.test("§5.3 a leader never commits without its own persisted entry in a 2-node cluster", () => {
  const net = Network.bootstrap([1n, 2n]);
  net.deliver();
  net.elect(1n);
  const n1 = net.node(1n);
  n1.raw.propose(te.encode("x"));
  const rd = n1.raw.ready();
  // Follower acknowledges the entry before the leader advanced: still not committed.
  const app = rd.messages.find((m) => m.type === MessageType.App)!;
  const n2 = net.node(2n);
  n2.raw.step(app);
  const resp = drain(n2).find((m) => m.type === MessageType.AppResp)!;
  n1.raw.step(resp);
  const last = rd.entries[rd.entries.length - 1].index;
  assert(n1.raw.status().commit < last, "not committed before the leader persisted");
  n1.storage.append(rd.entries);
  n1.raw.advance(rd);
  assertEquals(n1.raw.status().commit, last);
});

Deno.test("§5.3 committed entries in a Ready are bounded and never beyond the log", () => {
  const net = Network.bootstrap([1n]);
  net.deliver();
  net.node(1n).raw.campaign();
  net.deliver();
  const n = net.node(1n);
  for (let i = 0; i < 1500; i++) n.raw.propose(te.encode(`${i}`));
  const rd = n.raw.ready();
  n.storage.append(rd.entries);
  n.raw.advance(rd);
  const rd2 = n.raw.ready();
  assertEquals(rd2.committedEntries.length, 1000);
  n.raw.advance(rd2);
  const rd3 = n.raw.ready();
  assertEquals(rd3.committedEntries.length, 500);
  n.raw.advance(rd3);
  assert(!n.raw.hasReady(), "quiet");
});

// ---------------------------------------------------------------------------------------------
// §5.4 Safety

Deno.test("§5.4.1 a member denies its vote to a candidate with a less up-to-date log", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  const n2 = net.node(2n);
  const st = n2.raw.status();
  const v = newMessage(MessageType.Vote, 2n, 3n, st.term + 1);
  v.index = 1;
  v.logTerm = 1;
  n2.raw.step(v);
  const resp = drain(n2).find((m) => m.type === MessageType.VoteResp)!;
  assert(resp.reject, "rejected");
});

Deno.test("§5.4.2 Figure 8: a leader does not commit a previous-term entry by counting replicas", () => {
  // Five members (bootstrap entries 1..5, term-2 no-op at 6). 1 leads term 2 and replicates
  // "t2" (index 7) only to 2.
  const ids = [1n, 2n, 3n, 4n, 5n];
  const net = Network.bootstrap(ids);
  net.deliver();
  net.elect(1n);
  net.partition([1n, 2n], [3n, 4n, 5n]);
  net.propose(1n, "t2");
  net.deliver();
  // 5 wins term 3 with 3 and 4, but its entries reach nobody.
  net.partition([1n], [2n], [3n, 4n, 5n]);
  net.node(5n).raw.campaign();
  net.deliverRound();
  net.deliverRound();
  assertEquals(state(net, 5n), StateType.Leader);
  net.partition([1n], [2n], [3n], [4n], [5n]);
  net.propose(5n, "t3");
  net.deliver();
  // 1 learns of term 3 and wins term 4 with 2 and 3.
  const n1 = net.node(1n);
  n1.raw.step(newMessage(MessageType.AppResp, 1n, 4n, 3));
  net.partition([1n, 2n, 3n], [4n], [5n]);
  // Strip the term-4 entries from appends: followers only ever get "t2" (index 7).
  net.drop = (m) => {
    if (m.type === MessageType.App) m.entries = m.entries.filter((e) => e.term !== 4);
    return false;
  };
  net.elect(1n);
  assertEquals(state(net, 1n), StateType.Leader);
  const st = n1.raw.status();
  assertEquals(st.term, 4);
  assertEquals(st.progress.get(3n)!.match, 7);
  assertEquals(st.progress.get(2n)!.match, 7);
  // A majority (1, 2, 3) stores index 7, but it is from term 2: not committed.
  assertEquals(st.commit, 6);
  assertEquals(net.node(3n).applied, []);
  // Once the term-4 no-op reaches a majority, both commit.
  net.drop = null;
  net.tick(1n);
  net.deliver();
  assertEquals(n1.raw.status().commit, 8);
  for (const id of [1n, 2n, 3n]) assertEquals(net.node(id).applied, ["t2"]);
});

Deno.test("§5.4.2 log.maybeCommit refuses an index whose term is not the current term", () => {
  const net = threeNodes();
  net.elect(1n);
  const n1 = net.node(1n);
  const st = n1.raw.status();
  // Commit index stays at the last index carrying the current term.
  assertEquals(n1.storage.term(st.commit), st.term);
});

Deno.test("§5.4.3 a restarted member restores term, vote, commit and membership", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  const before = net.node(2n).raw.status();
  net.crash(2n);
  net.restart(2n);
  const after = net.node(2n).raw.status();
  assertEquals([after.term, after.vote, after.commit], [before.term, before.vote, before.commit]);
  net.deliver();
  assertEquals(net.node(2n).applied, ["a"]);
  net.propose(1n, "b");
  net.deliver();
  assertEquals(net.node(2n).applied, ["a", "b"]);
});

// ---------------------------------------------------------------------------------------------
// §6 Membership changes

Deno.test("§6 bootstrap emits the peers' AddNode entries as both entries and committedEntries", () => {
  const s = new MemoryStorage();
  const n = new TestNode(1n, s, {});
  n.raw.bootstrap([{ id: 1n, context: te.encode("m1") }, { id: 2n, context: new Uint8Array() }]);
  const rd = n.raw.ready();
  assertEquals(rd.entries.map((e) => [e.index, e.term, e.type]), [
    [1, 1, EntryType.ConfChange],
    [2, 1, EntryType.ConfChange],
  ]);
  assertEquals(rd.committedEntries.length, 2);
  assertEquals(rd.hardState, { term: 1, vote: none, commit: 2 });
  assert(rd.mustSync, "mustSync");
  assertEquals(
    rd.entries[0].data,
    encodeConfChange({ type: ConfChangeType.AddNode, nodeId: 1n, context: te.encode("m1") }),
  );
  const cs = n.raw.applyConfChange({
    type: ConfChangeType.AddNode,
    nodeId: 1n,
    context: new Uint8Array(),
  });
  assertEquals(cs, { voters: [1n, 2n], learners: [] });
  n.raw.advance(rd);
  assertThrows(() => n.raw.bootstrap([{ id: 1n, context: new Uint8Array() }]));
});

Deno.test("§6 adding a member: it catches up and counts toward quorum", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  net.addNode(4n);
  net.proposeConfChange(1n, { type: ConfChangeType.AddNode, nodeId: 4n, context: te.encode("") });
  net.deliver();
  net.tickAll(1);
  net.deliver();
  assertEquals(net.node(1n).confState.voters, [1n, 2n, 3n, 4n]);
  assertEquals(net.node(4n).applied, ["a"]);
  assertEquals(net.node(4n).confState.voters, [1n, 2n, 3n, 4n]);
  // With 4 voters, quorum is 3: two members down means no commit.
  net.crash(3n);
  net.crash(4n);
  net.propose(1n, "b");
  net.deliver();
  assertEquals(net.node(1n).applied, ["a"]);
});

Deno.test("§6 only one conf change may be pending: the leader throws for a second one", () => {
  const net = threeNodes();
  net.elect(1n);
  net.proposeConfChange(1n, { type: ConfChangeType.AddNode, nodeId: 4n, context: te.encode("") });
  assertThrows(
    () =>
      net.proposeConfChange(1n, {
        type: ConfChangeType.AddNode,
        nodeId: 5n,
        context: new Uint8Array(),
      }),
    ProposalDroppedError,
  );
  net.deliver();
  // Applied now: the next one is accepted.
  net.proposeConfChange(1n, {
    type: ConfChangeType.RemoveNode,
    nodeId: 4n,
    context: te.encode(""),
  });
  net.deliver();
  assertEquals(net.node(2n).confState.voters, [1n, 2n, 3n]);
});

Deno.test("§6 a forwarded second conf change becomes an empty Normal entry on the leader", () => {
  const net = threeNodes();
  net.elect(1n);
  net.partition([1n], [2n, 3n]);
  net.proposeConfChange(1n, { type: ConfChangeType.AddNode, nodeId: 4n, context: te.encode("") });
  net.heal();
  net.proposeConfChange(2n, { type: ConfChangeType.AddNode, nodeId: 5n, context: te.encode("") });
  const n1 = net.node(1n);
  net.flushReadies();
  // Deliver only the forwarded proposal to 1 before anything commits.
  const fwd = net.inFlight.filter((m) => m.type === MessageType.Prop);
  assertEquals(fwd.length, 1);
  n1.raw.step(fwd[0]);
  const rd = n1.raw.ready();
  const last = rd.entries[rd.entries.length - 1];
  assertEquals([last.type, last.data.length], [EntryType.Normal, 0]);
  n1.storage.append(rd.entries);
  n1.raw.advance(rd);
  net.inFlight.push(...rd.messages);
  net.deliver();
  assertEquals(net.node(1n).confState.voters, [1n, 2n, 3n, 4n]);
});

Deno.test("§6 removing a member shrinks the quorum and commit advances", () => {
  const net = threeNodes();
  net.elect(1n);
  net.crash(3n);
  net.proposeConfChange(1n, {
    type: ConfChangeType.RemoveNode,
    nodeId: 3n,
    context: te.encode(""),
  });
  net.deliver();
  assertEquals(net.node(1n).confState.voters, [1n, 2n]);
  net.crash(2n);
  net.propose(1n, "x");
  net.deliver();
  assertEquals(net.node(1n).applied, [], "quorum of 2 voters needs both");
  net.restart(2n);
  net.tickAll(1);
  net.deliver();
  assertEquals(net.node(1n).applied, ["x"]);
});

Deno.test("§6 a leader that removes itself steps down; a removed member never campaigns", () => {
  const net = threeNodes();
  net.elect(1n);
  net.proposeConfChange(1n, {
    type: ConfChangeType.RemoveNode,
    nodeId: 1n,
    context: te.encode(""),
  });
  net.deliver();
  assertEquals(state(net, 1n), StateType.Follower);
  assertEquals(net.node(2n).confState.voters, [2n, 3n]);
  for (let i = 0; i < 40; i++) {
    net.tick(1n);
    net.deliver();
  }
  assertEquals(state(net, 1n), StateType.Follower);
  for (let i = 0; i < 40 && net.leader() === none; i++) {
    net.tickAll();
    net.deliver();
  }
  assert([2n, 3n].includes(net.leader()), "a remaining member leads");
});

Deno.test("§6 a member does not campaign with unapplied conf changes", () => {
  const s = new MemoryStorage();
  const n = new TestNode(1n, s, {});
  n.raw.bootstrap([{ id: 1n, context: new Uint8Array() }]);
  // The bootstrap entries are committed but not applied yet.
  n.raw.campaign();
  assertEquals(n.raw.status().state, StateType.Follower);
  while (n.raw.hasReady()) n.handleReady();
  n.raw.campaign();
  assertEquals(n.raw.status().state, StateType.Leader);
});

// ---------------------------------------------------------------------------------------------
// Learners

Deno.test("learners replicate but neither vote, campaign nor count toward quorum", () => {
  const net = threeNodes();
  net.elect(1n);
  net.addNode(4n);
  net.proposeConfChange(1n, {
    type: ConfChangeType.AddLearnerNode,
    nodeId: 4n,
    context: te.encode(""),
  });
  net.deliver();
  net.propose(1n, "a");
  net.deliver();
  net.tickAll(1);
  net.deliver();
  assertEquals(net.node(4n).confState, { voters: [1n, 2n, 3n], learners: [4n] });
  assertEquals(net.node(4n).applied, ["a"]);
  assertEquals(net.node(1n).raw.status().progress.get(4n)!.isLearner, true);
  // A learner never campaigns.
  net.isolate(4n);
  for (let i = 0; i < 50; i++) net.tick(4n);
  net.deliver();
  assertEquals(state(net, 4n), StateType.Follower);
  // Quorum stays 2 of 3 voters: with 3 down, 1 and 2 still commit.
  net.heal();
  net.crash(3n);
  net.propose(1n, "b");
  net.deliver();
  assertEquals(net.node(1n).applied, ["a", "b"]);
});

Deno.test("learners: AddNode promotes a learner; AddLearnerNode on a voter is ignored", () => {
  const net = threeNodes();
  net.elect(1n);
  net.addNode(4n);
  net.proposeConfChange(1n, {
    type: ConfChangeType.AddLearnerNode,
    nodeId: 4n,
    context: te.encode(""),
  });
  net.deliver();
  net.proposeConfChange(1n, { type: ConfChangeType.AddNode, nodeId: 4n, context: te.encode("") });
  net.deliver();
  assertEquals(net.node(1n).confState, { voters: [1n, 2n, 3n, 4n], learners: [] });
  net.proposeConfChange(1n, {
    type: ConfChangeType.AddLearnerNode,
    nodeId: 2n,
    context: te.encode(""),
  });
  net.deliver();
  assertEquals(net.node(1n).confState, { voters: [1n, 2n, 3n, 4n], learners: [] });
});

// ---------------------------------------------------------------------------------------------
// §7 Log compaction

Deno.test("§7 a follower behind the compacted log receives a snapshot and catches up", () => {
  const net = threeNodes();
  net.elect(1n);
  net.crash(3n);
  for (let i = 0; i < 10; i++) net.propose(1n, `e${i}`);
  net.deliver();
  net.node(1n).compact();
  net.restart(3n);
  net.tickAll(1);
  net.deliver();
  net.propose(1n, "after");
  net.deliver();
  const n3 = net.node(3n);
  assertEquals(n3.applied, [...Array.from({ length: 10 }, (_, i) => `e${i}`), "after"]);
  assert(n3.storage.firstIndex() > 1, "3 installed a snapshot");
  assertEquals(n3.confState.voters, [1n, 2n, 3n]);
  const pr = net.node(1n).raw.status().progress.get(3n)!;
  assertEquals(pr.match, net.node(1n).raw.status().commit);
});

Deno.test("§7 a snapshot the follower already covers only fast-forwards its commit", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  const n1 = net.node(1n);
  n1.compact();
  const n2 = net.node(2n);
  const st2 = n2.raw.status();
  const snapMsg = newMessage(MessageType.Snap, 2n, 1n, st2.term);
  snapMsg.snapshot = n1.storage.snapshot();
  // Pretend 2 has not learned the commit index yet.
  n2.raw.step(snapMsg);
  const rd = n2.raw.ready();
  assertEquals(rd.snapshot, null);
  n2.raw.advance(rd);
});

Deno.test("§7 a failed snapshot send makes the leader probe again later", () => {
  const net = threeNodes();
  net.elect(1n);
  net.crash(3n);
  for (let i = 0; i < 5; i++) net.propose(1n, `e${i}`);
  net.deliver();
  net.node(1n).compact();
  net.restart(3n);
  let failed = 0;
  net.drop = (m) => m.type === MessageType.Snap && failed++ === 0;
  for (let i = 0; i < 4; i++) {
    net.tickAll(1);
    net.deliver();
  }
  assertEquals(net.node(3n).applied.length, 5);
  assertEquals(failed, 2, "one failed send, then one that landed");
});

// ---------------------------------------------------------------------------------------------
// §8 Client interaction: ReadIndex

Deno.test("§8 ReadIndex on the leader waits for a heartbeat quorum", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  const n1 = net.node(1n);
  net.readIndex(1n, "r1");
  net.flushReadies();
  assertEquals(n1.readStates.length, 0);
  net.deliver();
  assertEquals(n1.readStates.map(ctxString), ["r1"]);
  assertEquals(n1.readStates[0].index, n1.raw.status().commit);
});

Deno.test("§8 ReadIndex is not answered by a leader cut off from the quorum", () => {
  const net = threeNodes();
  net.elect(1n);
  net.isolate(1n);
  net.readIndex(1n, "r1");
  net.deliver();
  assertEquals(net.node(1n).readStates.length, 0);
});

Deno.test("§8 ReadIndex on a follower is forwarded and answered via ReadIndexResp", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  net.readIndex(3n, "f1");
  net.deliver();
  const rs = net.node(3n).readStates;
  assertEquals(rs.map(ctxString), ["f1"]);
  assertEquals(rs[0].index, net.node(1n).raw.status().commit);
  assertEquals(net.node(1n).readStates.length, 0);
});

Deno.test("§8 a new leader holds ReadIndex until it committed an entry in its term", () => {
  const net = threeNodes();
  net.elect(1n);
  const n1 = net.node(1n);
  // Re-elect 1 at a higher term but do not let the no-op commit yet.
  net.partition([1n], [2n, 3n]);
  n1.raw.campaign();
  net.heal();
  net.flushReadies();
  // Deliver vote round only.
  net.deliverRound();
  assertEquals(n1.raw.status().state, StateType.Leader);
  net.readIndex(1n, "early");
  assertEquals(n1.readStates.length, 0);
  net.deliver();
  assertEquals(n1.readStates.map(ctxString), ["early"]);
  assertEquals(n1.storage.term(n1.readStates[0].index), n1.raw.status().term);
});

Deno.test("§8 a single-voter leader answers ReadIndex immediately", () => {
  const net = Network.bootstrap([1n]);
  net.deliver();
  net.elect(1n);
  net.readIndex(1n, "solo");
  net.deliver();
  assertEquals(net.node(1n).readStates.map(ctxString), ["solo"]);
});

Deno.test("§8 ReadIndex on a follower without a leader is dropped silently", () => {
  const net = threeNodes();
  net.readIndex(2n, "x");
  net.deliver();
  assertEquals(net.node(2n).readStates.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Thesis §9.6 PreVote, §6.2 CheckQuorum, §3.10 leader transfer

Deno.test("PreVote: a partitioned member does not bump its term", () => {
  const net = threeNodes({ preVote: true });
  net.elect(1n);
  const term = net.node(1n).raw.status().term;
  net.isolate(3n);
  for (let i = 0; i < 100; i++) {
    net.tick(3n);
    net.deliver();
  }
  assertEquals(net.node(3n).raw.status().term, term);
  assertEquals(state(net, 3n), StateType.PreCandidate);
  net.heal();
  net.tickAll(1);
  net.deliver();
  assertEquals(net.leader(), 1n);
  assertEquals(net.node(1n).raw.status().term, term);
});

Deno.test("PreVote: a member wins with pre-votes then a real election", () => {
  const net = threeNodes({ preVote: true });
  net.elect(2n);
  assertEquals(net.leader(), 2n);
  assertEquals(net.node(2n).raw.status().term, 2);
});

Deno.test("CheckQuorum: a leader that hears from no quorum steps down", () => {
  const net = threeNodes({ checkQuorum: true });
  net.elect(1n);
  net.isolate(1n);
  for (let i = 0; i < 21; i++) {
    net.tick(1n);
    net.deliver();
  }
  assertEquals(state(net, 1n), StateType.Follower);
});

Deno.test("CheckQuorum: members that heard from a leader recently reject disruptive votes", () => {
  const net = threeNodes({ checkQuorum: true });
  net.elect(1n);
  const term = net.node(1n).raw.status().term;
  net.node(3n).raw.campaign();
  net.deliver();
  assertEquals(net.node(2n).raw.status().term, term);
  assertEquals(net.leader(), 1n);
  // The stuck candidate answers the leader's heartbeat with its higher term (as etcd does), the
  // leader steps down, and a new election at a higher term frees the cluster.
  for (let i = 0; i < 60 && net.leader() === none || i === 0; i++) {
    net.tickAll(1);
    net.deliver();
  }
  assert(net.leader() !== none, "a leader again");
  assert(net.node(net.leader()).raw.status().term > term, "at a higher term");
});

Deno.test("forgetLeader: followers that saw the leader die elect within one election timeout", () => {
  // With PreVote + CheckQuorum a follower ignores (pre)votes while it is in the leader's lease,
  // so without a failure detector a new leader needs up to two election timeouts. Followers that
  // forget the dead leader grant pre-votes at once.
  const ticksToLeader = (forget: boolean) => {
    const net = threeNodes({ preVote: true, checkQuorum: true });
    net.elect(1n);
    net.crash(1n);
    if (forget) {
      net.node(2n).raw.forgetLeader();
      net.node(3n).raw.forgetLeader();
    }
    for (let ticks = 1; ticks <= 40; ticks++) {
      net.tick(2n);
      net.tick(3n);
      net.deliver();
      const lead = net.node(2n).raw.status().lead;
      if (lead !== none && lead !== 1n) return ticks;
    }
    return Infinity;
  };
  const electionTicks = 10;
  for (let round = 0; round < 5; round++) {
    assert(ticksToLeader(true) <= electionTicks, "a new leader within one election timeout");
  }
  assert(ticksToLeader(false) >= electionTicks, "without it, not before the lease runs out");
});

Deno.test("forgetLeader: a live leader's next heartbeat restores it, same term", () => {
  const net = threeNodes({ preVote: true, checkQuorum: true });
  net.elect(1n);
  const term = net.node(1n).raw.status().term;
  net.node(2n).raw.forgetLeader();
  net.flushReadies();
  assertEquals(net.node(2n).raw.status().lead, none);
  net.tick(1n);
  net.deliver();
  assertEquals(net.node(2n).raw.status().lead, 1n);
  assertEquals(net.node(2n).raw.status().term, term);
});

Deno.test("leader transfer: the transferee becomes leader via TimeoutNow", () => {
  const net = threeNodes({ preVote: true, checkQuorum: true });
  net.elect(1n);
  net.propose(1n, "a");
  net.deliver();
  net.node(1n).raw.transferLeader(3n);
  net.deliver();
  assertEquals(net.leader(), 3n);
  net.propose(3n, "b");
  net.deliver();
  for (const id of net.ids()) assertEquals(net.node(id).applied, ["a", "b"]);
});

Deno.test("leader transfer: proposals are dropped while transferring; aborted after timeout", () => {
  const net = threeNodes();
  net.elect(1n);
  net.crash(3n);
  net.propose(1n, "a");
  net.deliver();
  net.node(1n).raw.transferLeader(3n);
  assertEquals(net.node(1n).raw.status().leadTransferee, 3n);
  assertThrows(() => net.propose(1n, "x"), ProposalDroppedError);
  for (let i = 0; i < 10; i++) net.tick(1n);
  net.deliver();
  assertEquals(net.node(1n).raw.status().leadTransferee, none);
  net.propose(1n, "b");
  net.deliver();
  assertEquals(net.node(1n).applied, ["a", "b"]);
});

Deno.test("leader transfer: a lagging transferee is caught up first", () => {
  const net = threeNodes();
  net.elect(1n);
  net.crash(3n);
  net.propose(1n, "a");
  net.deliver();
  net.restart(3n);
  net.node(1n).raw.transferLeader(3n);
  net.deliver();
  assertEquals(net.leader(), 3n);
  assertEquals(net.node(3n).applied, ["a"]);
});

Deno.test("leader transfer requested on a follower is forwarded to the leader", () => {
  const net = threeNodes();
  net.elect(1n);
  net.node(2n).raw.transferLeader(2n);
  net.deliver();
  assertEquals(net.leader(), 2n);
});

// ---------------------------------------------------------------------------------------------
// RawNode surface

Deno.test("RawNode ignores local-only message types from the network", () => {
  const net = threeNodes();
  net.node(2n).raw.step(newMessage(MessageType.Hup, 2n, 1n, 0));
  assertEquals(state(net, 2n), StateType.Follower);
});

Deno.test("RawNode ignores responses from members not in the configuration", () => {
  const net = threeNodes();
  net.elect(1n);
  const n1 = net.node(1n);
  const r = newMessage(MessageType.AppResp, 1n, 9n, n1.raw.status().term);
  r.index = 100;
  n1.raw.step(r);
  assertEquals(n1.raw.status().progress.has(9n), false);
});

Deno.test("Ready: softState and hardState appear only when they changed", () => {
  const net = threeNodes();
  net.elect(1n);
  const n1 = net.node(1n);
  n1.raw.propose(te.encode("a"));
  const rd = n1.raw.ready();
  assertEquals(rd.softState, null);
  assertEquals(rd.hardState, null);
  assertEquals(rd.mustSync, true);
  n1.storage.append(rd.entries);
  n1.raw.advance(rd);
  net.deliver();
  const n2 = net.node(2n);
  n2.raw.tick();
  assertEquals(n2.raw.hasReady(), false);
});

Deno.test("Ready: mustSync is false for a commit-only hard state change", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  // Let the followers get the entries, then see the commit arrive alone.
  net.deliverRound();
  net.deliverRound();
  const n2 = net.node(2n);
  net.deliverRound();
  const rd = n2.raw.hasReady() ? n2.raw.ready() : null;
  if (rd !== null && rd.hardState !== null && rd.entries.length === 0) {
    assertEquals(rd.mustSync, false);
  }
  if (rd !== null) {
    n2.storage.append(rd.entries);
    if (rd.hardState) n2.storage.setHardState(rd.hardState);
    n2.raw.advance(rd);
  }
});

Deno.test("RawNode rejects invalid configuration", () => {
  const s = new MemoryStorage();
  const base = new TestNode(1n, s, {}).config();
  assertThrows(() => new RawNode({ ...base, id: none }));
  assertThrows(() => new RawNode({ ...base, electionTicks: 1, heartbeatTicks: 1 }));
});

Deno.test("entries of the same term replicated twice do not truncate the log", () => {
  const net = threeNodes();
  net.elect(1n);
  net.propose(1n, "a");
  net.propose(1n, "b");
  net.flushReadies();
  const apps = net.inFlight.filter((m) => m.type === MessageType.App && m.to === 2n);
  net.deliver();
  const n2 = net.node(2n);
  const last = n2.storage.lastIndex();
  // Re-deliver an old append: the follower keeps its longer log.
  n2.raw.step(apps[0]);
  drain(n2);
  assertEquals(n2.storage.lastIndex(), last);
  const ents: Entry[] = n2.storage.entries(1, last + 1, Infinity);
  assertEquals(ents.length, last);
});
