// tls_handshake: new TLS connections per second against one endpoint. Each of -conc dialers
// repeatedly opens a TCP connection, completes a full TLS handshake (ALPN h2, no session
// resumption: every handshake is a full one), optionally sends the HTTP/2 client preface and waits
// for the server's SETTINGS frame (-h2), then closes. Standard library only.
//
// Build (no network needed): GO111MODULE=off go build -o .bench/tls_handshake ./scripts/tls_handshake
// (scripts/bench.ts --tls builds it there when it is missing.)
// Usage: tls_handshake -endpoint 127.0.0.1:2379 -cacert ca.pem [-cert c.pem -key c-key.pem]
//
//	[-conc 8] [-total 2000] [-h2]
//
// Prints one JSON line: {"op":"handshake","clients":C,"total":N,"errors":E,"seconds":S,"qps":R,
// "p50_ms":..,"p99_ms":..,"first_error":..}, the same shape as ebench's.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Op       string  `json:"op"`
	Clients  int     `json:"clients"`
	Total    int     `json:"total"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	QPS      float64 `json:"qps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	FirstErr string  `json:"first_error,omitempty"`
}

// The HTTP/2 client connection preface followed by an empty SETTINGS frame.
var preface = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "host:port of the TLS endpoint")
	cacert := flag.String("cacert", "", "CA bundle that signed the server certificate")
	cert := flag.String("cert", "", "client certificate (for client-certificate auth)")
	key := flag.String("key", "", "client key")
	conc := flag.Int("conc", 8, "concurrent dialers")
	total := flag.Int("total", 2000, "connections")
	h2 := flag.Bool("h2", false, "after the handshake, send the HTTP/2 preface and wait for SETTINGS")
	timeout := flag.Duration("timeout", 10*time.Second, "bound on each connection")
	flag.Parse()

	config := &tls.Config{NextProtos: []string{"h2"}}
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cacert:", err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "cacert: no certificates in", *cacert)
			os.Exit(2)
		}
		config.RootCAs = pool
	}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cert:", err)
			os.Exit(2)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	host, _, err := net.SplitHostPort(*endpoint)
	if err != nil {
		fmt.Fprintln(os.Stderr, "endpoint:", err)
		os.Exit(2)
	}
	config.ServerName = host

	one := func() error {
		deadline := time.Now().Add(*timeout)
		raw, err := net.DialTimeout("tcp", *endpoint, *timeout)
		if err != nil {
			return err
		}
		defer raw.Close()
		raw.SetDeadline(deadline)
		conn := tls.Client(raw, config)
		if err := conn.Handshake(); err != nil {
			return err
		}
		if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
			return fmt.Errorf("ALPN: negotiated %q, not h2", got)
		}
		if *h2 {
			if _, err := conn.Write(preface); err != nil {
				return err
			}
			header := make([]byte, 9)
			if _, err := io.ReadFull(conn, header); err != nil {
				return err
			}
			if header[3] != 4 {
				return errors.New("the server's first frame is not SETTINGS")
			}
		}
		// A full TLS 1.3 handshake finishes on the client's side before the server has read the
		// client's Finished (and, with client certificates, its certificate): close_notify and the
		// close follow, and the server still does its share of the work.
		return conn.Close()
	}

	lat := make([]time.Duration, *total)
	var next int64 = -1
	var errs int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(*total) {
					return
				}
				t0 := time.Now()
				if err := one(); err != nil {
					if atomic.AddInt64(&errs, 1) == 1 {
						firstErr.Store(err.Error())
					}
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	r := result{
		Op:      "handshake",
		Clients: *conc,
		Total:   *total,
		Errors:  errs,
		Seconds: elapsed.Seconds(),
		QPS:     float64(*total) / elapsed.Seconds(),
		P50ms:   ms(lat[len(lat)/2]),
		P99ms:   ms(lat[len(lat)*99/100]),
	}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstErr = e
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if errs > 0 {
		os.Exit(1)
	}
}
