/**
 * etcd 3.4.23's interval tree (pkg/adt: a red-black tree of intervals ordered by begin, with the
 * max end of every subtree), rebuilt node for node, insert for insert, so that its Contains gives
 * the very answers etcd gives. Only needed for requests whose range end lies at or before their
 * key: for those etcd's search prunes subtrees depending on the tree's shape (so its answer
 * depends on the order permissions were granted in), and no merged-interval rule reproduces it.
 * Every other request is answered by the merged index (range_permissions.ts), which is provably
 * the same and much faster. Private to core/auth.
 *
 * Bytes compare in etcd's "affine" order: an empty byte string is greater than every other.
 */

function affine(a: Uint8Array, b: Uint8Array): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

interface Node {
  begin: Uint8Array;
  end: Uint8Array;
  max: Uint8Array;
  red: boolean;
  left: Node | null;
  right: Node | null;
  parent: Node | null;
}

/** adt's Interval.Compare: -1 when [b1, e1) lies left of [b2, e2), 1 when right, 0 overlapping. */
function compareIntervals(b1: Uint8Array, e1: Uint8Array, b2: Uint8Array, e2: Uint8Array): number {
  if (affine(b1, b2) < 0 && affine(e1, b2) <= 0) return -1;
  if (affine(b1, e2) >= 0) return 1;
  return 0;
}

/** adt.IntervalTree with Insert and Contains, as etcd's permission cache uses it. */
export class EtcdIntervalTree {
  #root: Node | null = null;

  /** Inserts [begin, end) (an empty end is +infinity), rebalancing as adt does. */
  insert(begin: Uint8Array, end: Uint8Array): void {
    const z: Node = { begin, end, max: end, red: true, left: null, right: null, parent: null };
    let y: Node | null = null;
    let x = this.#root;
    while (x !== null) {
      y = x;
      x = affine(z.begin, x.begin) < 0 ? x.left : x.right;
    }
    z.parent = y;
    if (y === null) {
      this.#root = z;
    } else {
      if (affine(z.begin, y.begin) < 0) y.left = z;
      else y.right = z;
      updateMax(y);
    }
    this.#insertFixup(z);
  }

  #insertFixup(node: Node): void {
    let z = node;
    while (z.parent !== null && z.parent.red) {
      const p = z.parent;
      const g = p.parent!;
      if (p === g.left) {
        const y = g.right;
        if (y !== null && y.red) {
          y.red = false;
          p.red = false;
          g.red = true;
          z = g;
        } else {
          if (z === p.right) {
            z = p;
            this.#rotateLeft(z);
          }
          z.parent!.red = false;
          z.parent!.parent!.red = true;
          this.#rotateRight(z.parent!.parent!);
        }
      } else {
        const y = g.left;
        if (y !== null && y.red) {
          y.red = false;
          p.red = false;
          g.red = true;
          z = g;
        } else {
          if (z === p.left) {
            z = p;
            this.#rotateRight(z);
          }
          z.parent!.red = false;
          z.parent!.parent!.red = true;
          this.#rotateLeft(z.parent!.parent!);
        }
      }
    }
    this.#root!.red = false;
  }

  #rotateLeft(x: Node): void {
    const y = x.right;
    if (y === null) return;
    x.right = y.left;
    if (y.left !== null) y.left.parent = x;
    updateMax(x);
    this.#replaceParent(x, y);
    y.left = x;
    updateMax(y);
  }

  #rotateRight(x: Node): void {
    const y = x.left;
    if (y === null) return;
    x.left = y.right;
    if (y.right !== null) y.right.parent = x;
    updateMax(x);
    this.#replaceParent(x, y);
    y.right = x;
    updateMax(y);
  }

  #replaceParent(x: Node, y: Node): void {
    y.parent = x.parent;
    if (x.parent === null) {
      this.#root = y;
    } else {
      if (x === x.parent.left) x.parent.left = y;
      else x.parent.right = y;
      updateMax(x.parent);
    }
    x.parent = y;
  }

  /** adt's Contains: whether the visited intervals cover [begin, end) without a gap. */
  contains(begin: Uint8Array, end: Uint8Array): boolean {
    let minBegin: Uint8Array | null = null;
    let maxEnd: Uint8Array | null = null;
    let contiguous = true;
    visit(this.#root, begin, end, (n) => {
      if (minBegin === null) {
        minBegin = n.begin;
        maxEnd = n.end;
        return true;
      }
      if (affine(maxEnd!, n.begin) < 0) {
        contiguous = false;
        return false;
      }
      if (affine(n.end, maxEnd!) > 0) maxEnd = n.end;
      return true;
    });
    return contiguous && minBegin !== null && affine(maxEnd!, end) >= 0 &&
      affine(minBegin, begin) <= 0;
  }
}

/** adt's updateMax: recompute maxima up the parents, stopping where nothing changed. */
function updateMax(node: Node | null): void {
  for (let x = node; x !== null; x = x.parent) {
    const old = x.max;
    let max = x.end;
    if (x.left !== null && affine(x.left.max, max) > 0) max = x.left.max;
    if (x.right !== null && affine(x.right.max, max) > 0) max = x.right.max;
    if (affine(old, max) === 0) break;
    x.max = max;
  }
}

/** adt's visit, pruning exactly where etcd's does. */
function visit(
  x: Node | null,
  begin: Uint8Array,
  end: Uint8Array,
  fn: (n: Node) => boolean,
): boolean {
  if (x === null) return true;
  const v = compareIntervals(begin, end, x.begin, x.end);
  if (v < 0) {
    if (!visit(x.left, begin, end, fn)) return false;
  } else if (v > 0) {
    if (compareIntervals(x.begin, x.max, begin, end) === 0) {
      if (!visit(x.left, begin, end, fn) || !visit(x.right, begin, end, fn)) return false;
    }
  } else {
    if (!visit(x.left, begin, end, fn) || !fn(x) || !visit(x.right, begin, end, fn)) return false;
  }
  return true;
}
