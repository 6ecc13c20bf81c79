/** The lessor's etcd metrics (etcd 3.4.23's names, help texts and types). */
import { Counter, exponentialBuckets, Histogram } from "../metrics.ts";

export const leasesGranted = new Counter(
  "etcd_debugging_lease_granted_total",
  "The total number of granted leases.",
);
export const leasesRevoked = new Counter(
  "etcd_debugging_lease_revoked_total",
  "The total number of revoked leases.",
);
export const leasesRenewed = new Counter(
  "etcd_debugging_lease_renewed_total",
  "The number of renewed leases seen by the leader.",
);
export const leasesExpired = new Counter(
  "etcd_debugging_server_lease_expired_total",
  "The total number of expired leases.",
);

for (const c of [leasesGranted, leasesRevoked, leasesRenewed, leasesExpired]) c.touch();
export const leaseTtls = new Histogram(
  "etcd_debugging_lease_ttl_total",
  "Bucketed histogram of lease TTLs.",
  exponentialBuckets(1, 2, 24),
);
leaseTtls.touch();
