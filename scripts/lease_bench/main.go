// lease_bench: lease keep-alive throughput over raw LeaseKeepAlive streams, one lease and one
// stream per client, each request answered before the next (etcd's Go client, 3.4); with
// -op grant-revoke, each request is a LeaseGrant (TTL 60) then a LeaseRevoke of that lease (the
// pair is one operation: qps counts pairs, latencies are of the pair).
//
// Built by scripts/_ebench.ts into .bench/lease_bench (`deno task bench` does it when needed), as
// ../shared/bench/build.sh builds ebench (GOPATH with /usr/share/gocode, GO111MODULE=off).
// Usage: lease_bench -endpoints 127.0.0.1:2379 [-op keepalive|grant-revoke] -clients 50 -total 50000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

func main() {
	endpoint := flag.String("endpoints", "127.0.0.1:2379", "")
	clients := flag.Int("clients", 50, "")
	total := flag.Int("total", 50000, "")
	op := flag.String("op", "keepalive", "keepalive|grant-revoke")
	flag.Parse()
	if *op != "keepalive" && *op != "grant-revoke" {
		fmt.Println("unknown -op", *op)
		os.Exit(2)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer cli.Close()
	lc := pb.NewLeaseClient(cli.ActiveConnection())
	var done int64
	var errs int64
	lat := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	per := *total / *clients
	start := time.Now()
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			if *op == "grant-revoke" {
				for i := 0; i < per; i++ {
					t := time.Now()
					g, err := lc.LeaseGrant(context.Background(), &pb.LeaseGrantRequest{TTL: 60})
					if err == nil {
						_, err = lc.LeaseRevoke(context.Background(), &pb.LeaseRevokeRequest{ID: g.ID})
					}
					if err != nil {
						atomic.AddInt64(&errs, 1)
						return
					}
					lat[c] = append(lat[c], time.Since(t))
					atomic.AddInt64(&done, 1)
				}
				return
			}
			g, err := lc.LeaseGrant(context.Background(), &pb.LeaseGrantRequest{TTL: 60})
			if err != nil {
				atomic.AddInt64(&errs, 1)
				return
			}
			s, err := lc.LeaseKeepAlive(context.Background())
			if err != nil {
				atomic.AddInt64(&errs, 1)
				return
			}
			for i := 0; i < per; i++ {
				t := time.Now()
				if err := s.Send(&pb.LeaseKeepAliveRequest{ID: g.ID}); err != nil {
					atomic.AddInt64(&errs, 1)
					return
				}
				r, err := s.Recv()
				if err != nil || r.TTL != 60 {
					atomic.AddInt64(&errs, 1)
					return
				}
				lat[c] = append(lat[c], time.Since(t))
				atomic.AddInt64(&done, 1)
			}
			s.CloseSend()
		}(c)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	p := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(q*float64(len(all)-1))].Microseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]interface{}{"op": *op, "clients": *clients, "done": done, "errors": errs, "seconds": secs, "qps": float64(done) / secs, "p50_ms": p(0.5), "p99_ms": p(0.99)})
	fmt.Println(string(out))
}
