import assert from "node:assert/strict";
import {
  Counter,
  exponentialBuckets,
  goFloat,
  Histogram,
  registeredFamilies,
  setMetricsClock,
} from "./metrics.ts";

Deno.test("exponentialBuckets are Prometheus' (etcd's disk buckets: 1 ms to 8.192 s)", () => {
  const b = exponentialBuckets(0.001, 2, 14);
  assert.equal(b.length, 14);
  assert.deepEqual(b.slice(0, 3).map(goFloat), ["0.001", "0.002", "0.004"]);
  assert.equal(goFloat(b[13]), "8.192");
});

Deno.test("a histogram counts into cumulative buckets with +Inf, sum and count", () => {
  const h = new Histogram("test_metrics_histogram_seconds", "A test histogram.", [0.1, 1]);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const f = registeredFamilies().find((f) => f.name === "test_metrics_histogram_seconds")!;
  assert.equal(f.type, "histogram");
  assert.deepEqual(
    f.samples.map((s) => `${s.suffix}${JSON.stringify(s.labels)} ${s.value}`),
    [
      '_bucket[["le","0.1"]] 1',
      '_bucket[["le","1"]] 2',
      '_bucket[["le","+Inf"]] 3',
      "_sum[] 5.55",
      "_count[] 3",
    ],
  );
});

Deno.test("a counter's series are sorted by label values; a name registers once", () => {
  const c = new Counter("test_metrics_counter_total", "A test counter.");
  c.incWith({ b: "2", a: "z" });
  c.incWith({ a: "y", b: "9" }, 3);
  const f = registeredFamilies().find((f) => f.name === "test_metrics_counter_total")!;
  assert.deepEqual(f.samples.map((s) => [s.labels, s.value]), [
    [[["a", "y"], ["b", "9"]], 3],
    [[["a", "z"], ["b", "2"]], 1],
  ]);
  assert.throws(() => new Counter("test_metrics_counter_total", "again"), /registered twice/);
});

Deno.test("a histogram's timer reads the injected metrics clock, in its unit", () => {
  let now = 1000;
  setMetricsClock(() => now);
  try {
    const seconds = new Histogram("test_metrics_timer_seconds", "Timed in seconds.", [0.1, 1]);
    const millis = new Histogram(
      "test_metrics_timer_ms",
      "Timed in ms.",
      [100, 1000],
      "milliseconds",
    );
    const s = seconds.startTimer();
    const m = millis.startTimer();
    now += 250;
    s();
    m();
    const sum = (name: string) =>
      registeredFamilies().find((f) => f.name === name)!.samples.find((x) => x.suffix === "_sum")!
        .value;
    assert.equal(sum("test_metrics_timer_seconds"), 0.25);
    assert.equal(sum("test_metrics_timer_ms"), 250);
  } finally {
    setMetricsClock(() => performance.now());
  }
});
