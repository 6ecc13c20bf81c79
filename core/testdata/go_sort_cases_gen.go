// Generates go_sort_cases.json with Go 1.19 (the Go etcd 3.4.23 was built with):
//   cd core/testdata && GO111MODULE=off go run go_sort_cases_gen.go > go_sort_cases.json
// Each case: sort.Sort (or sort.Reverse) over items ordered by value only; crc = CRC-32C of
// the resulting original indexes joined by commas. go_sort_test.ts regenerates the inputs.
//go:build ignore

package main

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
)

type item struct{ v, id int }
type byV []item

func (s byV) Len() int           { return len(s) }
func (s byV) Less(i, j int) bool { return s[i].v < s[j].v }
func (s byV) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }

type tc struct {
	Name    string `json:"name"`
	Values  []int  `json:"-"`
	Reverse bool   `json:"reverse"`
	Crc     uint32 `json:"crc"`
}

func gen(kind string, n, distinct int, seed uint32) []int {
	out := make([]int, n)
	x := seed
	for i := range out {
		x = x*1103515245 + 12345
		switch kind {
		case "random":
			out[i] = int((x >> 16) % uint32(distinct))
		case "ascending":
			out[i] = i / distinct
		case "descending":
			out[i] = (n - i) / distinct
		case "sawtooth":
			out[i] = i % distinct
		case "organ":
			if i < n/2 {
				out[i] = i / distinct
			} else {
				out[i] = (n - i) / distinct
			}
		}
	}
	return out
}

func main() {
	var cases []tc
	for _, kind := range []string{"random", "ascending", "descending", "sawtooth", "organ"} {
		for _, n := range []int{2, 12, 13, 49, 50, 51, 100, 257, 1000} {
			for _, d := range []int{1, 2, 3, 7, 1000} {
				for _, rev := range []bool{false, true} {
					vals := gen(kind, n, d, uint32(n*31+d))
					s := make(byV, n)
					for i, v := range vals {
						s[i] = item{v, i}
					}
					if rev {
						sort.Sort(sort.Reverse(s))
					} else {
						sort.Sort(s)
					}
					ids := make([]string, n)
					for i := range s {
						ids[i] = fmt.Sprint(s[i].id)
					}
					crc := crc32.Checksum([]byte(strings.Join(ids, ",")), crc32.MakeTable(crc32.Castagnoli))
					cases = append(cases, tc{fmt.Sprintf("%s n=%d distinct=%d reverse=%v", kind, n, d, rev), vals, rev, crc})
				}
			}
		}
	}
	b, _ := json.Marshal(cases)
	fmt.Println(string(b))
}
