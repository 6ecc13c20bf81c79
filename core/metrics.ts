/**
 * Process-wide metrics, as etcd keeps them in Prometheus' default registry: counters, gauges and
 * histograms with labels, registered once by the code that updates them and written out in
 * Prometheus' text format (server/metrics.ts serves the page). One registry per process, as in
 * etcd: members started in one process (tests) share their counters.
 */

export type MetricType = "counter" | "gauge" | "histogram";

/** Label name → value. */
export type Labels = Readonly<Record<string, string>>;

/** One sample line (a histogram's bucket, sum or count included). */
export interface Sample {
  suffix: string;
  labels: [string, string][];
  value: number;
}

/** A family's current samples. */
export interface FamilySnapshot {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

interface Family {
  snapshot(): FamilySnapshot;
}

const registry = new Map<string, Family>();

/** The monotonic clock (ms) durations are timed with; replaceable (a simulation, a test). */
let clock: () => number = () => performance.now();

/** Times metric durations with `now` (ms) instead of performance.now(). */
export function setMetricsClock(now: () => number): void {
  clock = now;
}

/** The metrics clock's reading, ms. */
export function metricsNow(): number {
  return clock();
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sortedPairs(labels: Labels): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Go's client sorts a family's metrics by their label values, pair by pair. */
function compareSamples(a: [string, string][], b: [string, string][]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i][1] !== b[i][1]) return a[i][1] < b[i][1] ? -1 : 1;
  }
  return a.length - b.length;
}

/**
 * A new series' first value. Module-level, as the Histogram's is per instance: a closure made on
 * each call would be an allocation per update of a hot-path counter (a watch event, a put).
 */
const zero = () => 0;

abstract class Metric<V> implements Family {
  protected readonly values = new Map<string, { labels: Labels; value: V }>();

  constructor(readonly name: string, readonly help: string, readonly type: MetricType) {
    if (registry.has(name)) throw new Error(`metric ${name} registered twice`);
    registry.set(name, this);
  }

  /** The unlabelled series, kept aside: updating it costs no key (hot paths). */
  #plain: { labels: Labels; value: V } | undefined;

  protected entry(labels: Labels | undefined, initial: () => V): { labels: Labels; value: V } {
    if (labels === undefined) {
      if (this.#plain === undefined) {
        this.#plain = { labels: {}, value: initial() };
        this.values.set(labelKey({}), this.#plain);
      }
      return this.#plain;
    }
    const key = labelKey(labels);
    let e = this.values.get(key);
    if (e === undefined) {
      e = { labels, value: initial() };
      this.values.set(key, e);
    }
    return e;
  }

  protected abstract samples(labels: Labels, value: V): Sample[];

  snapshot(): FamilySnapshot {
    const entries = [...this.values.values()].map((e) => ({
      pairs: sortedPairs(e.labels),
      e,
    }));
    entries.sort((a, b) => compareSamples(a.pairs, b.pairs));
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      samples: entries.flatMap(({ e }) => this.samples(e.labels, e.value)),
    };
  }
}

/** A value that only goes up. */
export class Counter extends Metric<number> {
  constructor(name: string, help: string) {
    super(name, help, "counter");
  }

  /** Adds `by` to the unlabelled series. */
  inc(by = 1): void {
    this.entry(undefined, zero).value += by;
  }

  /** Adds `by` to the series with these labels. */
  incWith(labels: Labels, by = 1): void {
    this.entry(labels, zero).value += by;
  }

  /** Makes a series appear (at 0) before anything happened. */
  touch(labels?: Labels): void {
    this.entry(labels, zero);
  }

  protected samples(labels: Labels, value: number): Sample[] {
    return [{ suffix: "", labels: sortedPairs(labels), value }];
  }
}

/** A value that goes up and down. */
export class Gauge extends Metric<number> {
  constructor(name: string, help: string) {
    super(name, help, "gauge");
  }

  set(value: number, labels?: Labels): void {
    this.entry(labels, zero).value = value;
  }

  /** Adds `by` (negative to subtract) to the unlabelled series. */
  inc(by = 1): void {
    this.entry(undefined, zero).value += by;
  }

  protected samples(labels: Labels, value: number): Sample[] {
    return [{ suffix: "", labels: sortedPairs(labels), value }];
  }
}

/** Prometheus' ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(v);
  return out;
}

interface HistogramValue {
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram extends Metric<HistogramValue> {
  /** Observed units per millisecond of the metrics clock. */
  readonly #perMs: number;
  readonly #emptyValue = (): HistogramValue => this.#empty();

  constructor(
    name: string,
    help: string,
    readonly buckets: readonly number[],
    unit: "seconds" | "milliseconds" = "seconds",
  ) {
    super(name, help, "histogram");
    this.#perMs = unit === "seconds" ? 1 / 1000 : 1;
  }

  /** Starts timing on the metrics clock; the returned function observes the time since. */
  startTimer(labels?: Labels): () => void {
    const started = clock();
    return () => this.observe((clock() - started) * this.#perMs, labels);
  }

  observe(value: number, labels?: Labels): void {
    const e = this.entry(labels, this.#emptyValue);
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) e.value.counts[i]++;
    e.value.sum += value;
    e.value.count++;
  }

  /** Makes the unlabelled series appear (all zero) before the first observation. */
  touch(labels?: Labels): void {
    this.entry(labels, this.#emptyValue);
  }

  #empty(): HistogramValue {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  protected samples(labels: Labels, value: HistogramValue): Sample[] {
    const pairs = sortedPairs(labels);
    const out: Sample[] = this.buckets.map((le, i) => ({
      suffix: "_bucket",
      labels: [...pairs, ["le", goFloat(le)]],
      value: value.counts[i],
    }));
    out.push(
      { suffix: "_bucket", labels: [...pairs, ["le", "+Inf"]], value: value.count },
      { suffix: "_sum", labels: pairs, value: value.sum },
      { suffix: "_count", labels: pairs, value: value.count },
    );
    return out;
  }
}

/** Every registered family's samples, by name. */
export function registeredFamilies(): FamilySnapshot[] {
  return [...registry.values()].map((f) => f.snapshot());
}

/**
 * Go's strconv.FormatFloat(v, 'g', -1, 64), as the Prometheus client writes sample values: the
 * shortest digits, in exponent form when the exponent is below -4 or at least 6 (`20480`,
 * `2.147483648e+09`, `1e+06`, `1e-05`).
 */
export function goFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const [mantissa, exponent] = v.toExponential().split("e");
  const exp = Number(exponent);
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return String(v);
}
