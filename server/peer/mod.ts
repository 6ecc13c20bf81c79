/**
 * Member-to-member traffic on the peer URLs. Each member opens one long-lived TCP connection to
 * every peer: an HTTP/1.1 request `POST /raft/stream` with the cluster ID and the sender's ID in
 * headers, upgraded (101) to a raw stream of length-prefixed frames (u32 big endian + the encoded
 * Raft message). A member of another cluster (412) or a removed member (410) is refused before the
 * upgrade. The same port answers plain HTTP/1.1: GET /members and /version (asked by a member that
 * joins with `--initial-cluster-state existing`), POST /members/promote/<id> (a follower
 * forwarding a learner promotion to the leader) and POST /leases/{renew,timetolive}/<id> (lease
 * calls of a follower whose leader serves no call stream). A follower's lease calls travel on a
 * second upgraded connection to the leader, `POST /peer/calls`: multiplexed JSON frames both ways.
 *
 * Four parts, one concern each:
 * - `server.ts` ({@linkcode listenPeers}): accepts Raft streams and answers the plain endpoints;
 * - `transport.ts` ({@linkcode PeerTransport}): the outgoing Raft stream to each peer, its
 *   reconnects, and what Raft is told when a peer cannot be reached;
 * - `calls.ts` ({@linkcode PeerCalls}): a follower's lease renewals and TimeToLive on one
 *   multiplexed stream per leader, and the leader's side of it;
 * - `client.ts` ({@linkcode fetchRemoteCluster}, {@linkcode forwardPromote},
 *   {@linkcode forwardLeaseRenew}, {@linkcode forwardLeaseTimeToLive}): one-shot calls to a peer.
 *
 * Why not HTTP/2 like etcd's peers: Deno's node:http2 aborted the whole process (an nghttp2
 * assertion in GOAWAY handling) when a peer was killed mid-stream; plain sockets are also cheaper.
 * detcd members talk to detcd members only, so the framing is ours to choose.
 *
 * @example Serve the peer port and reach the other members
 * ```ts ignore
 * import { listenPeers, type PeerHandler, PeerTransport } from "./mod.ts";
 *
 * // `handler` answers for the member once it runs (null while it starts: peers get 503).
 * const handler = (): PeerHandler | null => member;
 * const transport = new PeerTransport(handler, logger);
 * transport.addPeer(peerId, ["http://127.0.0.1:2380"]);
 * const peers = await listenPeers(["http://127.0.0.1:12380"], handler, logger);
 * // ... the member's Ready loop calls transport.send(messages) ...
 * peers.close();
 * transport.close();
 * ```
 *
 * @module
 */

export type { PeerHandler } from "./handler.ts";
export { listenPeers } from "./server.ts";
export { PeerTransport } from "./transport.ts";
export { PeerCalls } from "./calls.ts";
export { loadPeerTls, type PeerTls, PeerTlsError, type PeerTlsFlags } from "./tls.ts";
export {
  fetchPeerHashKV,
  fetchPeerVersion,
  fetchRemoteCluster,
  forwardLeaseRenew,
  forwardLeaseTimeToLive,
  forwardPromote,
  type PeerHashKV,
  type RemoteMember,
} from "./client.ts";
