import assert from "node:assert/strict";
import { goFloat } from "./metrics.ts";

Deno.test("goFloat formats as Go's strconv.FormatFloat(v, 'g', -1, 64)", () => {
  // Each pair checked against Go 1.19's output (the Prometheus client's sample format).
  const cases: Array<[number, string]> = [
    [0, "0"],
    [1, "1"],
    [20480, "20480"],
    [999999, "999999"],
    [1e6, "1e+06"],
    [2147483648, "2.147483648e+09"],
    [26222592, "2.6222592e+07"],
    [0.5, "0.5"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [-3, "-3"],
    [1.5e21, "1.5e+21"],
  ];
  for (const [v, s] of cases) assert.equal(goFloat(v), s, String(v));
});
