/**
 * A TCP proxy in front of one member's peer port, so a chaos run can cut or stall the links between
 * members of a real cluster on loopback. Each member advertises its proxy's port and listens on
 * another; every peer connection (etcd's rafthttp streams and pipeline posts, detcd's streams) goes
 * through the destination's proxy.
 *
 * The proxy learns who is calling from the first request's `X-Server-From` header (the sender's
 * member ID, in hex), which etcd 3.4 and detcd both send on every Raft connection; connections
 * without it (version probes) are let through. A {@link LinkPolicy} says, per (from, to), whether
 * bytes pass, the connection is dropped (closed at once, and new ones closed after their header),
 * or stalls (nothing forwarded either way until the policy changes).
 */
import net from "node:net";

export type LinkState = "pass" | "drop" | "stall";

/** The state of the link from member `from` (-1: unknown sender) to member `to`. */
export type LinkPolicy = (from: number, to: number) => LinkState;

const MAX_HEAD_BYTES = 16 * 1024;

interface Link {
  from: number;
  client: net.Socket;
  upstream: net.Socket;
  stalled: boolean;
}

/** Proxies connections to member `index`'s real peer port. */
export class PeerProxy {
  readonly #server: net.Server;
  readonly #links = new Set<Link>();
  readonly #pending = new Set<net.Socket>();
  #closed = false;

  /**
   * @param index the destination member's index
   * @param listenPort the port the member advertises
   * @param targetPort the port the member listens on
   * @param senderOf maps an `X-Server-From` ID to a member index (-1: unknown)
   */
  constructor(
    readonly index: number,
    readonly listenPort: number,
    readonly targetPort: number,
    private readonly senderOf: (idHex: string) => number,
    private readonly policy: LinkPolicy,
  ) {
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.listenPort, "127.0.0.1", () => resolve());
    });
  }

  /** Applies the policy again to every open connection (after it changed). */
  refresh(): void {
    for (const link of [...this.#links]) this.#apply(link);
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const link of this.#links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    for (const socket of this.#pending) socket.destroy();
    this.#links.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    if (this.#closed) {
      client.destroy();
      return;
    }
    this.#pending.add(client);
    client.on("error", () => {});
    let head: Uint8Array = new Uint8Array();
    const onData = (chunk: Uint8Array) => {
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      head = joined;
      const text = new TextDecoder("latin1").decode(head);
      if (!text.includes("\r\n\r\n") && head.length < MAX_HEAD_BYTES) return;
      client.off("data", onData);
      client.pause();
      this.#pending.delete(client);
      const match = /\r\nx-server-from:\s*([0-9a-f]+)\s*\r\n/i.exec(text);
      const from = match ? this.senderOf(match[1].toLowerCase()) : -1;
      this.#open(client, from, head);
    };
    client.on("data", onData);
    client.on("close", () => this.#pending.delete(client));
  }

  #open(client: net.Socket, from: number, head: Uint8Array): void {
    if (this.policy(from, this.index) === "drop") {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const link: Link = { from, client, upstream, stalled: false };
    this.#links.add(link);
    const end = () => {
      this.#links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", end);
    client.on("error", end);
    upstream.on("close", end);
    client.on("close", end);
    upstream.write(head);
    client.on("data", (chunk: Uint8Array) => {
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on("data", (chunk: Uint8Array) => {
      if (!client.write(chunk)) upstream.pause();
    });
    upstream.on("drain", () => {
      if (!link.stalled) client.resume();
    });
    client.on("drain", () => {
      if (!link.stalled) upstream.resume();
    });
    this.#apply(link);
  }

  #apply(link: Link): void {
    const state = this.policy(link.from, this.index);
    if (state === "drop") {
      this.#links.delete(link);
      link.client.destroy();
      link.upstream.destroy();
    } else if (state === "stall") {
      link.stalled = true;
      link.client.pause();
      link.upstream.pause();
    } else {
      link.stalled = false;
      link.client.resume();
      link.upstream.resume();
    }
  }
}

/**
 * The links a chaos run has cut or stalled, by (from, to). A member's proxy asks it about every
 * connection; unknown senders (-1) pass unless their destination is cut from everyone.
 */
export class Partitions {
  #links = new Map<string, LinkState>();
  #isolated = new Set<number>();

  constructor(readonly size: number) {}

  policy: LinkPolicy = (from, to) => {
    if (from < 0) return this.#isolated.has(to) ? "drop" : "pass";
    return this.#links.get(`${from}>${to}`) ?? "pass";
  };

  /** Cuts (or stalls) every link between `group` and the other members, both ways. */
  separate(group: readonly number[], state: "drop" | "stall" = "drop"): void {
    for (const a of group) {
      for (let b = 0; b < this.size; b++) {
        if (group.includes(b)) continue;
        this.#links.set(`${a}>${b}`, state);
        this.#links.set(`${b}>${a}`, state);
      }
    }
    if (group.length === 1 && state === "drop") this.#isolated.add(group[0]);
  }

  healAll(): void {
    this.#links.clear();
    this.#isolated.clear();
  }

  describe(): string {
    return [...this.#links].map(([k, v]) => `${k}:${v}`).join(" ") || "none";
  }
}
