package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// profileResult is a CPU profile of the server under warm GET /me.
type profileResult struct {
	mode   string
	file   string
	rps    float64
	groups []group
	top    []group // functions by flat time
}

type group struct {
	name string
	pct  float64
}

// What a warm /me spends its time in: the share of samples with a frame matching each prefix
// anywhere on the stack (cumulative; groups nest, so they do not add up to 100).
var profileGroups = []struct{ name, match string }{
	{"fasthttp: serve the connection (everything on the request path)", "github.com/valyala/fasthttp.(*Server).serveConn"},
	{"  fasthttp: read and parse the request", "github.com/valyala/fasthttp.(*Request).readLimitBody"},
	{"  fasthttp: write the response", "github.com/valyala/fasthttp.writeResponse"},
	{"  Fiber: router and handler chain", "github.com/gofiber/fiber/v2.(*App).handler"},
	{"    our guard (app.sessions.Guard)", "github.com/gofiber-template/sessions/app.(*sessions).Guard"},
	{"      our storage: Store.GetDecoded (a hit copies and decodes nothing)", "github.com/gofiber-template/sessions/storage.(*Store).GetDecoded"},
	{"        SHA-256 of the cookie", "crypto/sha256.Sum256"},
	{"        gob decode of the session (on a miss; none on a warm request)", "encoding/gob.(*Decoder)"},
	{"      our storage: Store.Touch (a refresh, once per touch interval; none on a warm request)", "github.com/gofiber-template/sessions/storage.(*Store).Touch"},
	{"    handlers.Me (JSON)", "github.com/gofiber-template/sessions/handlers.Me"},
	{"runtime: allocation (mallocgc, anywhere)", "runtime.mallocgc"},
	{"runtime: garbage collector (background mark)", "runtime.gcBgMarkWorker"},
	{"runtime: scheduler and netpoll", "runtime.schedule"},
	{"syscalls (read, write, epoll)", "syscall."},
}

// profile takes a CPU profile of the tiered server under warm load.
func (b *bench) profile(ctx context.Context) ([]profileResult, error) {
	p, err := b.profileOnce(ctx, "tiered")
	if err != nil {
		return nil, err
	}
	return []profileResult{p}, nil
}

func (b *bench) profileOnce(ctx context.Context, mode string) (profileResult, error) {
	r := profileResult{mode: mode}
	srv, err := b.start(ctx, mode, false, -1)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	if err := b.warm(srv, mode); err != nil {
		return r, err
	}
	d := max(b.o.duration, 3*time.Second)
	secs := int(d.Seconds()) - 1
	type got struct {
		b   []byte
		err error
	}
	prof := make(chan got, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.ctl, secs))
		if err != nil {
			prof <- got{nil, err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		prof <- got{body, err}
	}()
	w, err := runWrk(ctx, "http://"+srv.addr+"/me", d, b.o.conns, "", b.script, b.cookieFile, b.seqFile)
	if err != nil {
		return r, err
	}
	r.rps = w.RPS
	g := <-prof
	if g.err != nil {
		return r, g.err
	}
	r.file = filepath.Join(b.o.out, "cpu-"+mode+".pprof")
	if err := os.WriteFile(r.file, g.b, 0o644); err != nil {
		return r, err
	}
	p, err := profile.Parse(bytes.NewReader(g.b))
	if err != nil {
		return r, err
	}
	var total int64
	cum := make([]int64, len(profileGroups))
	flat := map[string]int64{}
	for _, s := range p.Sample {
		v := s.Value[len(s.Value)-1] // cpu nanoseconds
		total += v
		seen := make([]bool, len(profileGroups))
		for li, loc := range s.Location {
			for lj, ln := range loc.Line {
				name := ln.Function.Name
				if li == 0 && lj == 0 {
					flat[name] += v
				}
				for gi, pg := range profileGroups {
					if !seen[gi] && strings.HasPrefix(name, pg.match) {
						seen[gi] = true
						cum[gi] += v
					}
				}
			}
		}
	}
	if total == 0 {
		return r, fmt.Errorf("empty CPU profile")
	}
	for gi, pg := range profileGroups {
		r.groups = append(r.groups, group{pg.name, 100 * float64(cum[gi]) / float64(total)})
	}
	for name, v := range flat {
		r.top = append(r.top, group{name, 100 * float64(v) / float64(total)})
	}
	sort.Slice(r.top, func(i, j int) bool { return r.top[i].pct > r.top[j].pct })
	r.top = r.top[:min(12, len(r.top))]
	return r, nil
}
