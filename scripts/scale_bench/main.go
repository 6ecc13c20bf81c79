// scale_bench: the load and probe sides of the storage-scale benchmark (scripts/bench_scale.ts),
// on etcd's own Go client (3.4).
//
//	-mode load:  puts -keys distinct keys of -keylen bytes with -val byte values, -clients at a
//	             time; prints {"op":"load","total":...,"seconds":...,"qps":...}.
//	-mode probe: one serializable Get of one key every -every until -for has passed (or stdin
//	             closes); prints {"op":"probe","total":...,"p50_ms","p99_ms","max_ms","errors"}.
//	             The latency a client sees while the member does something else (a snapshot).
//	             With -raw also "lat_ms": every latency in the order taken (for pooling runs).
//	-mode defrag: on a member loaded with -keys keys (-mode load), overwrites the first half of
//	             them, starts -clients writers (puts to their own keys), and after 2 s compacts at
//	             the revision before them (half the stored data is garbage then) and defragments,
//	             while they write, and 1 s more; prints {"op":"defrag","compact_seconds",
//	             "seconds","db_before","db_in_use_before","db_after","db_in_use_after",
//	             "writes_during","p99_ms_before","max_ms_before","p99_ms_during","max_ms_during",
//	             "errors"}: how long compaction and defragment took, what they reclaimed, and the
//	             longest pause a writer saw from the compaction to 1 s after the defragment
//	             (etcd #9222: etcd's defragment blocks every request).
//	-mode watchers: -total puts by -clients writers over -keys keys with no watcher open, then
//	             the same with -watchers idle single-key watchers and -rangewatchers idle prefix
//	             watchers open (on keys and prefixes nothing writes: each put is checked against
//	             them but sent to none); prints {"op":"watchers","qps_without","qps_with",
//	             "p99_ms_without","p99_ms_with","watchers","rangewatchers","errors"}: what idle
//	             watchers cost every write (issue 15: an index for range watchers, not a scan).
//	             "mark: no watchers" and "mark: watchers open" on stderr, each followed by a 2 s
//	             pause, let the caller sample the member's memory. With -holder the watchers are
//	             opened by another process (-mode holdwatchers): after "mark: no watchers" this
//	             one prints "mark: open watchers" and waits for a line on stdin saying they are.
//	-mode holdwatchers: opens the -watchers and -rangewatchers idle watchers of -mode watchers,
//	             prints "mark: watchers open" on stderr and holds them until stdin closes. The
//	             writers' process then carries no watchers: what is measured is the member's cost,
//	             not that of a client holding 11,000 watch channels beside the writers.
//
// Build like ../shared/bench/build.sh builds ebench (GOPATH with /usr/share/gocode, GO111MODULE=off):
//
//	d=$(mktemp -d); mkdir -p $d/src/scalebench; cp scripts/scale_bench/main.go $d/src/scalebench/
//	cd $d/src/scalebench && GO111MODULE=off GOPATH=$d:/usr/share/gocode go build -o /tmp/scale_bench .
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// scaleKey is key i padded to keylen bytes: "scale/" + zero-padded decimal.
func scaleKey(i, keylen int) string {
	s := fmt.Sprintf("%d", i)
	pad := keylen - len("scale/") - len(s)
	if pad < 0 {
		pad = 0
	}
	return "scale/" + strings.Repeat("0", pad) + s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func main() {
	endpoint := flag.String("endpoints", "127.0.0.1:2379", "")
	mode := flag.String("mode", "load", "load|probe|defrag|watchers")
	total := flag.Int("total", 40000, "puts per phase (watchers)")
	watchers := flag.Int("watchers", 10000, "idle single-key watchers (watchers)")
	rangeWatchers := flag.Int("rangewatchers", 1000, "idle prefix watchers (watchers)")
	holder := flag.Bool("holder", false, "watchers opened by a -mode holdwatchers process (watchers)")
	keys := flag.Int("keys", 200000, "distinct keys to load")
	keylen := flag.Int("keylen", 64, "key length in bytes")
	vsize := flag.Int("val", 256, "value size in bytes")
	clients := flag.Int("clients", 64, "concurrent writers (load)")
	every := flag.Duration("every", 10*time.Millisecond, "probe interval")
	dur := flag.Duration("for", 60*time.Second, "probe for at most this long")
	raw := flag.Bool("raw", false, "probe: also print every latency (ms) as lat_ms")
	flag.Parse()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoint, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer cli.Close()
	out := map[string]interface{}{"op": *mode}
	switch *mode {
	case "load":
		val := strings.Repeat("v", *vsize)
		var next int64 = -1
		var errs int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < *clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := atomic.AddInt64(&next, 1)
					if i >= int64(*keys) {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err := cli.Put(ctx, scaleKey(int(i), *keylen), val)
					cancel()
					if err != nil {
						if atomic.AddInt64(&errs, 1) == 1 {
							fmt.Fprintln(os.Stderr, "put:", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		out["total"], out["errors"], out["seconds"] = *keys, errs, el.Seconds()
		out["qps"] = float64(*keys) / el.Seconds()
	case "probe":
		stop := make(chan struct{})
		go func() { // stdin closing ends the probe early
			buf := make([]byte, 1)
			for {
				if _, err := os.Stdin.Read(buf); err != nil {
					close(stop)
					return
				}
			}
		}()
		var lat []time.Duration
		var errs int
		deadline := time.After(*dur)
		tick := time.NewTicker(*every)
		defer tick.Stop()
	loop:
		for {
			select {
			case <-stop:
				break loop
			case <-deadline:
				break loop
			case <-tick.C:
				t := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Get(ctx, scaleKey(0, *keylen), clientv3.WithSerializable())
				cancel()
				lat = append(lat, time.Since(t))
				if err != nil {
					errs++
				}
			}
		}
		if *raw {
			all := make([]float64, len(lat))
			for i, d := range lat {
				all[i] = ms(d)
			}
			out["lat_ms"] = all
		}
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		out["total"], out["errors"] = len(lat), errs
		if len(lat) > 0 {
			out["p50_ms"] = ms(lat[len(lat)/2])
			out["p99_ms"] = ms(lat[len(lat)*99/100])
			out["max_ms"] = ms(lat[len(lat)-1])
		}
	case "defrag":
		runDefrag(cli, *endpoint, *keys, *keylen, *vsize, *clients, out)
	case "watchers":
		runWatchers(cli, *keys, *keylen, *vsize, *clients, *total, *watchers, *rangeWatchers, *holder, out)
	case "holdwatchers":
		openIdleWatchers(context.Background(), cli, *watchers, *rangeWatchers)
		fmt.Fprintln(os.Stderr, "mark: watchers open")
		buf := make([]byte, 1)
		for {
			if _, err := os.Stdin.Read(buf); err != nil {
				return
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", *mode)
		os.Exit(2)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

// runDefrag is -mode defrag (see the header).
func runDefrag(cli *clientv3.Client, endpoint string, keys, keylen, vsize, writers int, out map[string]interface{}) {
	ctx := context.Background()
	val := strings.Repeat("y", vsize)
	// Overwrite half the keys, 64 at a time.
	var next int64 = -1
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= keys/2 {
					return
				}
				if _, err := cli.Put(ctx, scaleKey(i, keylen), val); err != nil {
					fmt.Fprintln(os.Stderr, "overwrite:", err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	before, err := cli.Status(ctx, endpoint)
	if err != nil {
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(1)
	}
	type sample struct {
		at  time.Time
		lat time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var errs int64
	stop := make(chan struct{})
	var writersDone sync.WaitGroup
	for w := 0; w < writers; w++ {
		writersDone.Add(1)
		go func(w int) {
			defer writersDone.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				t := time.Now()
				c, cancel := context.WithTimeout(ctx, 60*time.Second)
				_, err := cli.Put(c, fmt.Sprintf("defrag/%d/%d", w, n%100), val)
				cancel()
				if err != nil {
					atomic.AddInt64(&errs, 1)
				}
				mu.Lock()
				samples = append(samples, sample{t, time.Since(t)})
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(2 * time.Second)
	// What an operator runs: compact away the overwritten half, then defragment.
	dstart := time.Now()
	if _, err := cli.Compact(ctx, before.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		fmt.Fprintln(os.Stderr, "compact:", err)
		os.Exit(1)
	}
	compacted := time.Now()
	if _, err := cli.Defragment(ctx, endpoint); err != nil {
		fmt.Fprintln(os.Stderr, "defragment:", err)
		os.Exit(1)
	}
	dend := time.Now()
	time.Sleep(time.Second)
	close(stop)
	writersDone.Wait()
	after, _ := cli.Status(ctx, endpoint)
	var beforeLat, duringLat []time.Duration
	for _, s := range samples {
		end := s.at.Add(s.lat)
		switch {
		case end.Before(dstart):
			beforeLat = append(beforeLat, s.lat)
		case s.at.Before(dend.Add(time.Second)):
			duringLat = append(duringLat, s.lat)
		}
	}
	pct := func(l []time.Duration, p int) float64 {
		if len(l) == 0 {
			return 0
		}
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
		i := len(l) * p / 100
		if i >= len(l) {
			i = len(l) - 1
		}
		return ms(l[i])
	}
	out["compact_seconds"] = compacted.Sub(dstart).Seconds()
	out["seconds"] = dend.Sub(compacted).Seconds()
	out["db_before"], out["db_in_use_before"] = before.DbSize, before.DbSizeInUse
	out["db_after"], out["db_in_use_after"] = after.DbSize, after.DbSizeInUse
	out["writes_during"] = len(duringLat)
	out["p99_ms_before"], out["max_ms_before"] = pct(beforeLat, 99), pct(beforeLat, 100)
	out["p99_ms_during"], out["max_ms_during"] = pct(duringLat, 99), pct(duringLat, 100)
	out["errors"] = errs
}

// putPhase runs total puts by clients writers over keys keys; returns puts/s, p99 and errors.
func putPhase(cli *clientv3.Client, keys, keylen, vsize, clients, total int) (float64, float64, int64) {
	val := strings.Repeat("v", vsize)
	var next int64 = -1
	var errs int64
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(total) {
					return
				}
				t := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Put(ctx, scaleKey(int(i)%keys, keylen), val)
				cancel()
				lat[i] = time.Since(t)
				if err != nil {
					atomic.AddInt64(&errs, 1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return float64(total) / el.Seconds(), ms(lat[len(lat)*99/100]), errs
}

// openIdleWatchers opens idle single-key and prefix watchers on keys nothing writes and returns
// once every one is created; they last as long as ctx.
func openIdleWatchers(ctx context.Context, cli *clientv3.Client, watchers, rangeWatchers int) {
	created := make(chan struct{}, 1024)
	open := func(key string, opts ...clientv3.OpOption) {
		ch := cli.Watch(ctx, key, append(opts, clientv3.WithCreatedNotify())...)
		go func() {
			first := true
			for range ch {
				if first {
					created <- struct{}{}
					first = false
				}
			}
		}()
	}
	for i := 0; i < watchers; i++ {
		open(fmt.Sprintf("idle/key/%08d", i))
	}
	for i := 0; i < rangeWatchers; i++ {
		open(fmt.Sprintf("idle/prefix/%06d/", i), clientv3.WithPrefix())
	}
	for i := 0; i < watchers+rangeWatchers; i++ {
		<-created
	}
}

// runWatchers is -mode watchers (see the header).
func runWatchers(cli *clientv3.Client, keys, keylen, vsize, clients, total, watchers, rangeWatchers int, holder bool, out map[string]interface{}) {
	putPhase(cli, keys, keylen, vsize, clients, total/4) // warm up
	qps0, p990, errs0 := putPhase(cli, keys, keylen, vsize, clients, total)
	// Marks on stderr let the caller sample the member's memory before and after the watchers
	// open (it waits a second after each mark; the pause gives it two).
	fmt.Fprintln(os.Stderr, "mark: no watchers")
	time.Sleep(2 * time.Second)
	if holder {
		fmt.Fprintln(os.Stderr, "mark: open watchers")
		line := make([]byte, 1)
		for line[0] != '\n' {
			if _, err := os.Stdin.Read(line); err != nil {
				fmt.Fprintln(os.Stderr, "no word that the watchers are open:", err)
				os.Exit(2)
			}
		}
	} else {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		openIdleWatchers(ctx, cli, watchers, rangeWatchers)
	}
	fmt.Fprintln(os.Stderr, "mark: watchers open")
	time.Sleep(2 * time.Second)
	qps1, p991, errs1 := putPhase(cli, keys, keylen, vsize, clients, total)
	out["qps_without"], out["qps_with"] = qps0, qps1
	out["p99_ms_without"], out["p99_ms_with"] = p990, p991
	out["watchers"], out["rangewatchers"] = watchers, rangeWatchers
	out["errors"] = errs0 + errs1
}
