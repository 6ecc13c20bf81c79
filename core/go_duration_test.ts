import assert from "node:assert/strict";
import { formatGoDurationMs } from "./go_duration.ts";

Deno.test("formatGoDurationMs prints as Go's time.Duration.String", () => {
  // Each pair checked with Go: fmt.Println(time.Duration(ns)).
  const cases: [number, string][] = [
    [0, "0s"],
    [0.000001, "1ns"],
    [0.0015, "1.5µs"],
    [100, "100ms"],
    [200, "200ms"],
    [35.123456, "35.123456ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [60_000, "1m0s"],
    [123_500, "2m3.5s"],
    [3_600_000, "1h0m0s"],
    [3_723_000.000001, "1h2m3.000000001s"],
    [-250, "-250ms"],
  ];
  for (const [ms, want] of cases) assert.equal(formatGoDurationMs(ms), want, `${ms} ms`);
});
