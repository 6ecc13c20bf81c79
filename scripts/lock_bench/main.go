// lock_bench: lock acquire/release throughput with contending clients (etcd's Go client, 3.4),
// over etcd's Lock service (v3lockpb Lock + Unlock, -mode rpc) or the clientv3/concurrency mutex
// etcdctl's `lock` uses (-mode mutex). Every client holds a session (a lease of 10 s) and loops:
// acquire the one lock name, release it. Prints one JSON line (ebench's shape): acquire+release
// pairs per second and the latency percentiles of a pair.
//
// Build like ../shared/bench/build.sh builds ebench (GOPATH with /usr/share/gocode, GO111MODULE=off):
//   d=$(mktemp -d); mkdir -p $d/src/lockbench; cp scripts/lock_bench/main.go $d/src/lockbench/
//   cd $d/src/lockbench && GO111MODULE=off GOPATH=$d:/usr/share/gocode go build -o /tmp/lock_bench .
// Usage: lock_bench -endpoints 127.0.0.1:2379 -clients 10 -total 2000 -mode rpc
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
	"go.etcd.io/etcd/clientv3/concurrency"
	"go.etcd.io/etcd/etcdserver/api/v3lock/v3lockpb"
)

func main() {
	endpoint := flag.String("endpoints", "127.0.0.1:2379", "")
	clients := flag.Int("clients", 10, "")
	total := flag.Int("total", 2000, "")
	mode := flag.String("mode", "rpc", "rpc (Lock service) or mutex (clientv3/concurrency)")
	flag.Parse()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	sessions := make([]*concurrency.Session, *clients)
	for w := range sessions {
		if sessions[w], err = concurrency.NewSession(cli, concurrency.WithTTL(10)); err != nil {
			fmt.Fprintln(os.Stderr, "session:", err)
			os.Exit(2)
		}
	}
	locks := v3lockpb.NewLockClient(cli.ActiveConnection())
	lat := make([]time.Duration, *total)
	var next int64 = -1
	var errs int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(*total) || ctx.Err() != nil {
					return
				}
				t := time.Now()
				var err error
				if *mode == "mutex" {
					m := concurrency.NewMutex(sessions[w], "bench-lock")
					if err = m.Lock(ctx); err == nil {
						err = m.Unlock(ctx)
					}
				} else {
					var r *v3lockpb.LockResponse
					r, err = locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("bench-lock"), Lease: int64(sessions[w].Lease())})
					if err == nil {
						_, err = locks.Unlock(ctx, &v3lockpb.UnlockRequest{Key: r.Key})
					}
				}
				lat[i] = time.Since(t)
				if err != nil {
					atomic.AddInt64(&errs, 1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	done := lat[:0]
	for _, l := range lat {
		if l > 0 {
			done = append(done, l)
		}
	}
	sort.Slice(done, func(a, b int) bool { return done[a] < done[b] })
	out := map[string]interface{}{"op": "lock-" + *mode, "clients": *clients, "total": len(done), "errors": errs, "seconds": el.Seconds()}
	if len(done) > 0 {
		out["qps"] = float64(len(done)) / el.Seconds()
		out["p50_ms"] = float64(done[len(done)/2].Microseconds()) / 1000
		out["p99_ms"] = float64(done[len(done)*99/100].Microseconds()) / 1000
	}
	if s, ok := firstErr.Load().(string); ok {
		out["first_error"] = s
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
