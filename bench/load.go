package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests int64
	RPS      float64
	P50, P99 time.Duration
	Non2xx   int64
	Errors   int64 // socket errors: connect, read, write, timeout
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reP50      = regexp.MustCompile(`\s50%\s+([\d.]+)(us|ms|s)`)
	reP99      = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk drives url for d with conns connections from one thread (the bench process, and so
// wrk, is pinned to the load core). header is a Cookie header or "", script a Lua file or "".
func runWrk(ctx context.Context, url string, d time.Duration, conns int, header, script string, scriptArgs ...string) (wrkResult, error) {
	args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", max(1, int(d.Round(time.Second)/time.Second))), "--latency", "--timeout", "5s"}
	if header != "" {
		args = append(args, "-H", header)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	if len(scriptArgs) > 0 {
		args = append(args, "--")
		args = append(args, scriptArgs...)
	}
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out.String())
	}
	return parseWrk(out.String())
}

func parseWrk(s string) (wrkResult, error) {
	var r wrkResult
	m := reRequests.FindStringSubmatch(s)
	m2 := reRPS.FindStringSubmatch(s)
	m3, m4 := reP50.FindStringSubmatch(s), reP99.FindStringSubmatch(s)
	if m == nil || m2 == nil || m3 == nil || m4 == nil {
		return r, fmt.Errorf("wrk: cannot parse output:\n%s", s)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.RPS, _ = strconv.ParseFloat(m2[1], 64)
	r.P50, r.P99 = parseLatency(m3[1], m3[2]), parseLatency(m4[1], m4[2])
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSockErr.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.Errors += n
		}
	}
	return r, nil
}

func parseLatency(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch strings.TrimSpace(unit) {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	default:
		return time.Duration(f * float64(time.Second))
	}
}

// luaScript sends GET /me with cookies from a file (one per line) in the order given by a
// file of 1-based indices, cycling; both files are read once per wrk thread.
const luaScript = `
local reqs, seq, i = {}, {}, 0
function init(args)
  for line in io.lines(args[1]) do
    reqs[#reqs + 1] = wrk.format("GET", "/me", {["Cookie"] = "session=" .. line})
  end
  for line in io.lines(args[2]) do seq[#seq + 1] = tonumber(line) end
end
function request()
  i = i + 1
  if i > #seq then i = 1 end
  return reqs[seq[i]]
end
`
